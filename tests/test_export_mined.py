"""`leakwatt export-mined`: the demo corpus mined with history, analysed, exported without code."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from leakwatt.analysis.export import CODE_COLUMNS, export_mined, readme_text
from leakwatt.analysis.prevalence import TABLES, read_prevalence, write_prevalence
from leakwatt.analysis.recall import recall_row, recall_table
from leakwatt.common import LeakwattError
from leakwatt.mining.demo import build_demo_corpus
from leakwatt.mining.mine import mine_corpus
from leakwatt.params import MineParams
from leakwatt.pipeline.cli import main

DEMO = Path(__file__).resolve().parent.parent / "data" / "demo"
SHA = "ab" * 20
EXPORTED = {"repos.csv", "instances.csv", "events.csv", "prevalence.csv",
            "prevalence_by_era.csv", "survival.csv", "lifetimes.csv", "overview.csv", "README.md"}


@pytest.fixture(scope="module")
def mined(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo corpus mined through its history, and analyze's prevalence tables of it,
    corrected with a recall table made here (IMR 4 of 5 true sites, UTR 1 of 2)."""
    root = tmp_path_factory.mktemp("export")
    corpus = build_demo_corpus(DEMO, root / "repos")
    summary = mine_corpus(corpus, root / "mined", root / "cache", MineParams(jobs=1),
                          progress=False)
    assert summary["failed"] == []
    recall = recall_table([recall_row("IMR", 4, 1, 0, "tiny.csv", SHA, "2026-12-07T05:00:00Z"),
                           recall_row("UTR", 1, 1, 1, "tiny.csv", SHA, "2026-12-07T05:00:00Z")])
    write_prevalence(root / "mined", root / "analysis", recall)
    return root / "mined", root / "analysis"


def _code_lines() -> set[str]:
    """Statements of the demo projects' sources (long enough to be code, not a bare name)."""
    lines = set()
    for source in DEMO.glob("*/src/**/*.py"):
        for line in source.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if len(line) >= 20 and "(" in line and not line.startswith("#"):
                lines.add(line)
    return lines


def test_export_holds_the_tables_and_no_code(mined: tuple[Path, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    mined_dir, analysis_dir = mined
    out = tmp_path / "results" / "2026-12-08-corpus"
    assert main(["export-mined", "--mined", str(mined_dir), "--analysis", str(analysis_dir),
                 "--out", str(out)]) == 0
    assert f"wrote 9 files to {out}" in capsys.readouterr().err
    assert {p.name for p in out.iterdir()} == EXPORTED

    for name, dropped in CODE_COLUMNS.items():
        source = pd.read_csv(mined_dir / name, dtype=str, keep_default_na=False)
        exported = pd.read_csv(out / name, dtype=str, keep_default_na=False)
        assert not set(dropped) & set(exported.columns)
        assert list(exported.columns) == [c for c in source.columns if c not in dropped]
        pd.testing.assert_frame_equal(exported, source.drop(columns=list(dropped)))
    instances = pd.read_csv(mined_dir / "instances.csv", dtype=str, keep_default_na=False)
    snippets = {s for s in instances["snippet"] if s}
    assert snippets, "the demo's instances quote no code: nothing to check"
    code = _code_lines()
    assert code, "the demo sources were not found"
    for path in out.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not any(s in text for s in snippets), path.name
        assert not any(line in text for line in code), path.name
    for table in TABLES.values():      # analyze's tables, byte for byte
        assert (out / table.file).read_bytes() == (analysis_dir / table.file).read_bytes()


def test_readme_is_read_from_the_data(mined: tuple[Path, Path], tmp_path: Path) -> None:
    mined_dir, analysis_dir = mined
    out = tmp_path / "corpus"
    export_mined(mined_dir, analysis_dir, out)
    text = (out / "README.md").read_text(encoding="utf-8")
    repos = pd.read_csv(mined_dir / "repos.csv", dtype=str, keep_default_na=False)
    events = pd.read_csv(mined_dir / "events.csv", dtype=str, keep_default_na=False)
    walked = int(repos["history_commits"].astype(int).sum())
    assert text.startswith("# Mined corpus: corpus\n")
    assert (f"3 repositories in `repos.csv`: 3 mined (`ok`), 0 not mined. History walked for 3 "
            f"of the 3 mined repositories ({walked} commits; {len(events)} introduction and "
            "removal events in `events.csv`); not walked for 0.") in text
    for row in repos.itertuples():
        n_events = int((events["repo"] == row.name).sum())
        assert (f"| {row.name} | {row.commit[:12]} | ok | walked, {row.history_commits} commits "
                f"| {n_events} |") in text
    prevalence = read_prevalence(analysis_dir)["prevalence"].set_index("rule")
    assert prevalence.loc["IMR", "instances"] == 2 and prevalence.loc["UTR", "instances"] == 1
    assert "| IMR | 2 | 2 / 3 |" in text and "| UTR | 1 | 1 / 3 |" in text
    assert prevalence.loc["UTR", "removed"] >= 1          # the demo's history removes smells
    for rule, r in prevalence.iterrows():
        assert (f"| {rule} | {r['introduced']} | {r['removed']} | {r['removed_code_changed']} / "
                f"{r['removed_deleted_file']} | {r['still_present']} |") in text
    assert "| 2.5 (" in text and "| 2 (" in text        # 2 / 0.8 and 1 / 0.5
    assert f"Recall from tiny.csv @ {SHA[:12]}" in text
    assert "`snippet` of instances.csv; `message` of instances.csv; `snippet` of events.csv" in text
    for name in EXPORTED - {"README.md"}:      # every file listed with what it holds
        assert f"| {name} | " in text


def test_readme_of_a_corpus_with_failures_and_unwalked_history() -> None:
    repos = pd.DataFrame({"url": ["https://x/a", "https://x/b", "https://x/c"],
                          "commit": ["1" * 40, "2" * 40, "3" * 40], "name": ["o/a", "o/b", "o/c"],
                          "status": ["ok", "ok", "clone_failed"],
                          "reason": ["", "", "unreachable"], "history_commits": ["7", "0", ""]})
    instances = pd.DataFrame({"repo": ["o/a", "o/b", "https://x/b"], "rule": ["IMR"] * 3})
    events = pd.DataFrame({"repo": ["o/a"] * 2, "rule": ["IMR"] * 2})
    tables = {
        "prevalence": pd.DataFrame({"rule": ["IMR"], "instances": [3], "repos_affected": [2],
                                    "repos_ok": [2], "instances_per_kloc": [1.5]}),
        "overview": pd.DataFrame({"instances": [3], "kloc": [2.0]}),
        "by_era": pd.DataFrame(columns=["rule", "era", "instances"]),
    }
    text = readme_text("t", repos, instances, events, tables, "`m` (mine)", {}, "today")
    assert ("3 repositories in `repos.csv`: 2 mined (`ok`), 1 not mined (clone_failed 1). "
            "History walked for 1 of the 2 mined repositories (7 commits; 2 introduction and "
            "removal events in `events.csv`); not walked for 1.") in text
    assert "| o/a | 111111111111 | ok | walked, 7 commits | 2 | 1 |" in text
    assert "| o/b | 222222222222 | ok | not walked | 0 | 2 |" in text     # by name and by url
    assert "| o/c | 333333333333 | clone_failed: unreachable | not walked | 0 | 0 |" in text
    assert "Not corrected for recall: analyze was given no recall table." in text


def test_export_refuses_a_used_folder_and_another_runs_analysis(
        mined: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mined_dir, analysis_dir = mined
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine\n", encoding="utf-8")
    assert main(["export-mined", "--mined", str(mined_dir), "--analysis", str(analysis_dir),
                 "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"leakwatt: error: {out}: already exists and is not an empty folder; give a new --out "
        "(an export is never overwritten)"]
    assert [p.name for p in out.iterdir()] == ["keep.txt"]

    other = tmp_path / "other"
    other.mkdir()
    for name in ("repos.csv", "instances.csv"):
        (other / name).write_bytes((mined_dir / name).read_bytes())
    events = pd.read_csv(mined_dir / "events.csv", dtype=str, keep_default_na=False)
    events.iloc[:-1].to_csv(other / "events.csv", index=False)
    with pytest.raises(LeakwattError, match=r"computed from other mining outputs than .*other "
                                            rf"\(events {len(events)} vs {len(events) - 1}\)"):
        export_mined(other, analysis_dir, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
    with pytest.raises(LeakwattError, match=r"no prevalence\.csv; run `leakwatt analyze"):
        export_mined(mined_dir, tmp_path / "empty", tmp_path / "fresh")
    with pytest.raises(LeakwattError, match=r"repos\.csv: not found"):
        export_mined(tmp_path / "nothing", analysis_dir, tmp_path / "fresh")
