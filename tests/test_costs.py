"""The linter's cost table (issue 20, item 6): built from results/, shipped in the package, shown
by findings and by `leakwatt rules`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from leakwatt.mining import cost_table, costs
from leakwatt.pipeline.cost_table import build_table, priced_variants, render, write_table

ROOT = Path(__file__).resolve().parent.parent

STATS_FIELDS = ["pair_id", "smell", "metric", "test", "n", "pct_change", "ci_low", "ci_high",
                "p_adj", "mean_smelly", "mean_clean", "mean_diff", "device", "framework",
                "n_foreign_load", "ci_reliable", "dose"]


def _write(path: Path, fields: list[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in fields})


def _stats_row(pair: str, metric: str, pct: float, diff: float, framework: str = "keras3",
               **extra: object) -> dict:
    row = {"pair_id": pair, "smell": "UGE", "metric": metric, "test": "paired_t", "n": 5,
           "pct_change": pct, "ci_low": pct - 10, "ci_high": pct + 10, "p_adj": "",
           "mean_smelly": 2.0, "mean_clean": 1.0, "mean_diff": diff, "device": "cpu",
           "framework": framework, "n_foreign_load": 0, "ci_reliable": "True"}
    row.update(extra)
    return row


def _result(root: Path, name: str, pair: str, source: str, stats: list[dict],
            measured: bool = True, control_runs: bool = True) -> Path:
    folder = root / name
    if measured:
        fields = ["pair_id", "device", "status", "cpu_power_source"]
        _write(folder / "runs.csv", fields + (["instrumented"] if control_runs else []),
               [{"pair_id": pair, "device": "cpu", "status": "ok", "cpu_power_source": source,
                 "instrumented": 0}])
    _write(folder / "pairs" / "pairs.csv", ["pair_id", "description", "scale"],
           [{"pair_id": pair, "description": f"{pair} program pair", "scale": "tiny"}])
    if stats:
        _write(folder / "analysis" / "stats.csv", STATS_FIELDS, stats)
    return folder


def test_the_shipped_table_matches_the_committed_results() -> None:
    current, target = write_table(ROOT, check=True)
    assert current, f"{target} is stale: run `leakwatt costs`"


def test_a_pair_is_priced_by_the_newest_folder_that_measured_it(tmp_path: Path) -> None:
    pair = "uge-retrace-python-arg"
    _result(tmp_path, "2026-01-01-old", pair, "constant",
            [_stats_row(pair, "duration_s", 50.0, 1.0), _stats_row(pair, "peak_rss_mb", 3.0, 7.5)])
    _result(tmp_path, "2026-02-01-new", pair, "constant",
            [_stats_row(pair, "duration_s", 300.0, 3.0),
             _stats_row(pair, "duration_s", 100.0, 1.5, framework="keras2"),
             _stats_row(pair, "peak_rss_mb", 4.0, 9.25)])
    # newer still: it re-analyses the runs of another folder but measured nothing itself
    _result(tmp_path, "2026-03-01-reanalysis", pair, "constant",
            [_stats_row(pair, "duration_s", -99.0, -1.0)], measured=False)
    # newest: a measurement in progress (no analysis yet)
    _result(tmp_path, "2026-04-01-running", pair, "constant", [])

    table, notes = build_table(tmp_path)

    entry = table["UGE"]["retrace-python-arg"][0]
    assert entry["result"] == "2026-02-01-new"
    assert entry["metric"] == "duration_s" and entry["unit"] == "time"
    by_level = {level["framework"]: level for level in entry["levels"]}
    assert by_level["keras3"]["pct_change"] == 300.0
    assert by_level["keras3"]["memory_mb"] == 9.25
    assert by_level["keras2"]["memory_mb"] is None  # no memory row for that level
    assert len(table["UGE"]["retrace-python-arg"]) == 1
    assert "2026-04-01-running skipped (no analysis yet)" in notes
    assert "2026-03-01-reanalysis (no finding priced)" in notes


def test_energy_is_priced_only_where_a_hardware_counter_measured_it(tmp_path: Path) -> None:
    pair = "uge-retrace-python-arg"
    _result(tmp_path, "2026-01-01-rapl", pair, "RAPL",
            [_stats_row(pair, "energy_kwh", 12.0, 0.1), _stats_row(pair, "duration_s", 30.0, 1)])
    entry = build_table(tmp_path)[0]["UGE"]["retrace-python-arg"][0]
    assert (entry["metric"], entry["unit"]) == ("energy_kwh", "energy")
    assert entry["levels"][0]["pct_change"] == 12.0


def test_a_dose_result_adds_the_cost_per_event(tmp_path: Path) -> None:
    pair = "uge-retrace-python-arg"
    folder = _result(tmp_path, "2026-01-01-dose", pair, "constant",
                     [_stats_row(pair, "duration_s", 40.0, 4.0, dose=50)])
    _write(folder / "analysis" / "cost_model.csv",
           ["pair_id", "smell", "device", "framework", "metric", "event", "a_linear",
            "a_linear_ci_low", "a_linear_ci_high", "doses"],
           [{"pair_id": pair, "smell": "UGE", "device": "cpu", "framework": "keras3",
             "metric": "duration_s", "event": "trace", "a_linear": 0.08,
             "a_linear_ci_low": 0.05, "a_linear_ci_high": 0.11, "doses": "5;15;50"},
            {"pair_id": pair, "smell": "UGE", "device": "cpu", "framework": "keras3",
             "metric": "peak_rss_mb", "event": "trace", "a_linear": 0.5,
             "a_linear_ci_low": 0.2, "a_linear_ci_high": 0.8, "doses": "5;15;50"}])
    entry = build_table(tmp_path)[0]["UGE"]["retrace-python-arg"][0]
    level = entry["levels"][0]
    assert level["per_event"]["a"] == 0.08 and level["per_event"]["event"] == "trace"
    assert level["memory_per_event_mb"] == 0.5
    assert entry["dose_note"] == "at dose 50 (the highest measured)"
    assert "+0.08 s per trace" in costs.summary(entry)


def test_a_convex_cost_says_what_the_last_event_costs_beside_the_average(tmp_path: Path) -> None:
    pair = "uge-retrace-python-arg"
    folder = _result(tmp_path, "2026-01-01-dose", pair, "constant",
                     [_stats_row(pair, "duration_s", 90.0, 9.0, dose=50),
                      _stats_row(pair, "duration_s", 80.0, 8.0, framework="keras2", dose=50)])
    columns = ["pair_id", "smell", "device", "framework", "metric", "event", "a_linear",
               "a_linear_ci_low", "a_linear_ci_high", "doses", "b_ci_low", "marginal_high",
               "marginal_high_ci_low", "marginal_high_ci_high"]
    base = {"pair_id": pair, "smell": "UGE", "device": "cpu", "metric": "duration_s",
            "event": "trace", "a_linear": 2.5, "a_linear_ci_low": 2.0, "a_linear_ci_high": 3.0,
            "doses": "[5.0, 15.0, 50.0]", "marginal_high": 5.8, "marginal_high_ci_low": 4.9,
            "marginal_high_ci_high": 6.7}
    _write(folder / "analysis" / "cost_model.csv", columns,
           [{**base, "framework": "keras3", "b_ci_low": 0.04},   # resolved curvature
            {**base, "framework": "keras2", "b_ci_low": -0.01}])  # curvature not resolved
    entry = build_table(tmp_path)[0]["UGE"]["retrace-python-arg"][0]
    by_level = {level["framework"]: level for level in entry["levels"]}
    assert by_level["keras3"]["per_event"]["grows"] is True
    assert by_level["keras3"]["per_event"]["at_dose"] == 50
    assert by_level["keras3"]["per_event"]["marginal_high"] == 5.8
    assert "grows" not in by_level["keras2"]["per_event"]
    text = costs.summary(entry)
    assert "at dose 50 one more costs +5.8 s [+4.9, +6.7]" in text
    assert text.count("grows with each") == 1


def test_a_mined_corpus_folder_is_not_a_measurement_and_is_not_named(tmp_path: Path) -> None:
    pair = "uge-retrace-python-arg"
    _result(tmp_path, "2026-01-01-dose", pair, "constant",
            [_stats_row(pair, "duration_s", 40.0, 4.0)])
    corpus = tmp_path / "2026-02-01-corpus"       # what `export-mined` writes: no runs.csv
    corpus.mkdir()
    (corpus / "prevalence.csv").write_text("rule,instances\nUGE,3\n", encoding="utf-8")
    running = tmp_path / "2026-03-01-running"     # a measurement without analysis yet
    running.mkdir()
    (running / "runs.csv").write_text("run_id\n", encoding="utf-8")
    table, notes = build_table(tmp_path)
    assert table["UGE"]["retrace-python-arg"][0]["result"] == "2026-01-01-dose"
    assert not any("corpus" in note for note in notes)
    assert "2026-03-01-running skipped (no analysis yet)" in notes


def test_foreign_load_marks_a_cost_provisional(tmp_path: Path) -> None:
    pair = "up-search-n-jobs"
    _result(tmp_path, "2026-01-01-busy", pair, "constant",
            [_stats_row(pair, "duration_s", 280.0, 20.0, n_foreign_load=10)])
    entry = build_table(tmp_path)[0]["UP"]["search-n-jobs"][0]
    assert entry["provisional"] == "10 run(s) under foreign load"
    assert "provisional: 10 run(s) under foreign load" in costs.summary(entry)


def test_the_paper_pairs_price_the_variants_they_reproduce() -> None:
    assert {rule for rule, _ in priced_variants("paper-imr")} == {"IMR"}
    assert {v for r, v in priced_variants("paper-imr")} >= {"loop-fit", "builder-in-loop"}
    assert "kfold" not in {v for _, v in priced_variants("paper-imr")}
    assert {v for _, v in priced_variants("paper-utr")} == {
        "append-loss", "append-output", "append-gradients"}
    assert priced_variants("paper-imr-once") == []  # another remedy: prices no finding


def test_rendered_module_round_trips(tmp_path: Path) -> None:
    pair = "gcb-graph-constant"
    _result(tmp_path, "2026-01-01-x", pair, "constant",
            [_stats_row(pair, "duration_s", 34.3, 0.5, framework="keras2-graph")])
    table, notes = build_table(tmp_path)
    namespace: dict = {}
    exec(compile(render(table, notes), "cost_table.py", "exec"), namespace)  # our own output
    assert namespace["TABLE"] == table
    assert namespace["GENERATED_FROM"] == "2026-01-01-x"


def test_a_variant_nobody_measured_says_so() -> None:
    assert costs.cost("IMR", "no-such-variant") is None
    assert costs.reason("IMR", "no-such-variant").startswith("cost not measured yet")
    assert costs.finding_text("NOPE", "x") == "cost not measured yet"


def test_rules_imr_prints_its_cost_table(capsys: pytest.CaptureFixture[str]) -> None:
    from leakwatt.pipeline.cli import main

    assert main(["rules", "IMR"]) == 0
    out = capsys.readouterr().out
    assert "### Measured cost" in out
    entry = costs.cost("IMR", "loop-fit")
    assert entry is not None, "the committed reference result measures paper-imr"
    row = next(line for line in out.splitlines() if "`loop-fit`" in line and "keras3" in line)
    assert "`builder-in-loop`" in row  # variants priced by one measurement share a row
    assert entry["result"] in out


def test_shipped_table_is_plain_data() -> None:
    # the light install reads it without pandas: it must be built of JSON-able values only
    json.dumps(cost_table.TABLE)


def _scan(tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> str:
    from leakwatt.pipeline.cli import main

    script = tmp_path / "train.py"
    script.write_text("import tensorflow as tf\n\nfor epoch in range(3):\n"
                      "    model = tf.keras.Sequential([tf.keras.layers.Dense(1)])\n"
                      "    model.fit(x, y)\n", encoding="utf-8")
    assert main(["scan", str(script), "--isolated", "--format", fmt]) == 1
    return capsys.readouterr().out


def test_a_json_finding_carries_its_cost_traced_to_a_result(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    finding = json.loads(_scan(tmp_path, "json", capsys))["findings"][0]
    assert (finding["rule"], finding["variant"]) == ("IMR", "loop-fit")
    assert finding["cost"] == costs.cost("IMR", "loop-fit")
    assert (ROOT / "results" / finding["cost"]["result"]).is_dir()
    assert finding["cost_reason"] == ""


def test_text_and_sarif_findings_carry_the_cost(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    lines = _scan(tmp_path, "text", capsys).splitlines()
    assert lines[1].startswith("  = measured cost: ") and "results/" in lines[1]
    sarif = json.loads(_scan(tmp_path, "sarif", capsys))
    props = sarif["runs"][0]["results"][0]["properties"]
    assert props["cost"]["pair_id"] == "paper-imr" and props["costReason"] == ""


def test_a_result_whose_control_ran_inside_the_window_is_provisional(tmp_path: Path) -> None:
    pair = "gcb-graph-constant"
    _result(tmp_path, "2026-01-01-old", pair, "constant",
            [_stats_row(pair, "duration_s", 30.0, 0.5)], control_runs=False)
    entry = build_table(tmp_path)[0]["GCB"]["graph-constant"][0]
    assert "positive control ran inside the measured window" in entry["provisional"]
