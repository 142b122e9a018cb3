"""The stage table contracts: documented exactly in docs/data.md, used by writers and readers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from leakwatt import contracts
from leakwatt.common import LeakwattError
from leakwatt.contracts import RUNS, STATS, Table

DATA_MD = Path(__file__).resolve().parents[1] / "docs" / "data.md"
#: tables documented by reference to another one rather than by their own heading.
SAME_AS = {"warmup.csv": "runs.csv"}


def documented_tables() -> dict[str, tuple[set[str], str]]:
    """``### `file` ...`` heading -> (columns documented under it, the section's text).

    Columns come from the first cell of a ``| column | meaning |`` table (comma-separated names)
    or, without a table, from the first back-quoted comma-separated list of the section.
    """
    text = DATA_MD.read_text(encoding="utf-8")
    out: dict[str, tuple[set[str], str]] = {}
    for section in re.split(r"\n(?=#{2,3} )", text):
        heading, _, body = section.partition("\n")
        name = re.match(r"### `([^`]+\.csv)`", heading)
        if not name:
            continue
        rows = [line for line in body.splitlines() if line.startswith("| ")
                and not line.startswith("| column |")]
        if rows:
            cells = [row.split("|")[1] for row in rows]
        else:
            listed = re.search(r"`([a-z_]+(?:,\s+[a-z_]+)+)`", body)
            assert listed, f"docs/data.md: {name[1]}: no column table or list"
            cells = [listed[1]]
        columns = {c.strip().strip("`") for cell in cells for c in cell.split(",")}
        out[Path(name[1]).name if "/" in name[1] and not name[1].startswith("plots/")
            and not name[1].startswith("series/") else name[1]] = (columns, body)
    return out


def _heading_for(table: Table, docs: dict[str, tuple[set[str], str]]) -> str:
    matches = [name for name in docs if name == table.file]
    assert matches, f"docs/data.md has no `### `{table.file}`` section"
    return matches[0]


@pytest.mark.parametrize("table", [t for t in contracts.TABLES if t.file not in SAME_AS],
                         ids=lambda t: t.file)
def test_every_contract_column_is_documented_and_nothing_else(table: Table) -> None:
    docs = documented_tables()
    documented, body = docs[_heading_for(table, docs)]
    assert sorted(set(table.columns) - documented) == [], "in the contract, not documented"
    assert sorted(documented - set(table.columns)) == [], "documented, not in the contract"
    for column, allowed in table.values.items():
        for value in allowed:
            assert f"`{value}`" in body, f"{table.file}: {column} value {value!r} not documented"
    rows = {c.strip(): line for line in body.splitlines() if line.startswith("| ")
            for c in line.split("|")[1].split(",")}
    for column in table.contract:  # marked *contract* where the section has a column table
        if rows:
            assert "*contract*" in rows[column], f"{table.file}: {column} not marked *contract*"


def test_every_documented_table_has_a_contract() -> None:
    files = {t.file for t in contracts.TABLES}
    assert sorted(set(documented_tables()) - files) == []
    for copy, original in SAME_AS.items():
        by_file = {t.file: t for t in contracts.TABLES}
        assert by_file[copy].columns == by_file[original].columns
        assert f"`{copy}` has the same columns" in DATA_MD.read_text(encoding="utf-8")


def test_writers_take_their_headers_from_the_contracts() -> None:
    from leakwatt.analysis import prevalence, stats
    from leakwatt.mining import corpus, history, mine
    from leakwatt.pipeline.harness import store
    from leakwatt.pipeline.repros import equivalence, pairs

    assert {name: list(cols) for name, cols in mine.OUTPUTS.items()} == {
        name: list(t.columns) for name, t in contracts.MINE_OUTPUTS.items()}
    assert list(history.EVENT_COLUMNS) == list(contracts.EVENTS.columns)
    assert list(corpus.CORPUS_COLUMNS) == list(contracts.CORPUS.columns)
    assert list(contracts.PAIRS.columns) == pairs.PAIRS_COLUMNS
    assert list(contracts.EQUIVALENCE.columns) == equivalence.EQUIVALENCE_COLUMNS
    assert list(RUNS.columns) == store.RUNS_COLUMNS and RUNS.key == store.RUN_KEY
    assert list(STATS.columns) == stats.STATS_COLUMNS
    assert {name: t.file for name, t in prevalence.TABLES.items()} == {
        "prevalence": "prevalence.csv", "survival": "survival.csv",
        "lifetimes": "lifetimes.csv", "overview": "overview.csv",
        "by_era": "prevalence_by_era.csv"}


def test_contract_columns_lead_their_tables_and_are_never_dropped() -> None:
    # the contract columns of issue 2 (runs) and of the analysis (stats) stay first, in order
    assert RUNS.columns[:14] == RUNS.contract and RUNS.contract[:6] == (
        "pair_id", "smell", "variant", "rep", "device", "status")
    assert STATS.columns[:11] == STATS.contract
    for table in contracts.TABLES:
        assert set(table.required) <= set(table.columns)


def test_validate_names_file_line_and_column() -> None:
    frame = pd.DataFrame({c: ["x", "x"] for c in RUNS.columns})
    for column, allowed in RUNS.values.items():  # every categorical column valid to begin with
        frame[column] = sorted(allowed)[0]
    frame["variant"] = ["smelly", "clean"]
    frame["scale"] = ["tiny", ""]
    frame["status"] = ["ok", "exploded"]
    with pytest.raises(LeakwattError, match=r"^data/runs/cpu/runs\.csv: line 3: status "
                                            r"'exploded' is not one of crashed, ok, oom, timeout$"):
        RUNS.validate(frame, "data/runs/cpu/runs.csv")
    frame["status"] = ["ok", "oom"]
    assert RUNS.validate(frame) is frame  # blank scale is allowed
    with pytest.raises(LeakwattError, match=r"^stats\.csv: line 1: missing column\(s\) p_adj"):
        STATS.validate(pd.DataFrame(columns=[c for c in STATS.columns if c != "p_adj"]))


def test_a_table_cannot_name_unknown_columns() -> None:
    with pytest.raises(ValueError, match="required names unknown column"):
        Table("x.csv", "test", columns=("a",), required=("b",))


def test_contracts_sit_on_the_ground_floor() -> None:
    code = ("import sys, leakwatt.contracts; "
            "print(sorted(m for m in sys.modules if m.startswith(('leakwatt.mining', "
            "'leakwatt.pipeline', 'leakwatt.analysis', 'pandas'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"
