"""Recall on a labelled set (recall.csv) and instance counts corrected for the detectors' misses.

The intervals are checked against scipy's exact binomial interval and a published value; the
benchmark is run on a purpose-built repository and label set; analyze and the report are run
with and without a recall table.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fixtures.mining.gitrepo import IMR_LOOP, GitRepo
from scipy.stats import binomtest

from leakwatt.analysis.recall import (
    NO_RECALL_TABLE,
    RECALL_COLUMNS,
    correct_for_recall,
    corrected_text,
    load_recall,
    read_recall,
    recall_row,
    recall_table,
)
from leakwatt.common import LeakwattError

ROOT = Path(__file__).resolve().parents[1]
COMMIT = "c0ffee" + "0" * 34
WHEN = "2026-12-07T05:00:00+00:00"


def _row(rule: str, tp: int, fn: int, fp: int = 0, label_set: str = "set_a.csv",
         commit: str = COMMIT) -> dict:
    return recall_row(rule, tp, fn, fp, label_set, commit, WHEN)


def _write(path: Path, rows: list[dict]) -> Path:
    recall_table(rows).to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------------- recall_row

@pytest.mark.parametrize("tp, n", [(0, 5), (1, 2), (3, 10), (8, 10), (9, 9), (47, 60)])
def test_interval_is_the_exact_binomial_one(tp: int, n: int) -> None:
    row = _row("IMR", tp, n - tp)
    exact = binomtest(tp, n).proportion_ci(0.95, method="exact")
    assert row["recall"] == pytest.approx(tp / n)
    assert (row["recall_lo"], row["recall_hi"]) == pytest.approx((exact.low, exact.high))
    assert row["true_sites"] == n


def test_published_worked_example_and_the_ends() -> None:
    # 8 of 10: the Clopper-Pearson 95 % interval is 0.444 to 0.975 (standard tables)
    row = _row("UTR", 8, 2, fp=1)
    assert row["recall_lo"] == pytest.approx(0.4439, abs=5e-4)
    assert row["recall_hi"] == pytest.approx(0.9748, abs=5e-4)
    assert row["precision"] == pytest.approx(8 / 9)
    none_found = _row("GCB", 0, 9)
    assert none_found["recall"] == 0 and none_found["recall_lo"] == 0.0
    assert 0 < none_found["recall_hi"] < 0.4
    all_found = _row("UP", 5, 0)
    assert all_found["recall_hi"] == 1.0 and all_found["recall_lo"] < 1.0
    assert all_found["precision"] == 1.0
    empty = _row("DIR", 0, 0)
    assert math.isnan(empty["recall"]) and math.isnan(empty["recall_lo"])
    assert math.isnan(empty["precision"])
    with pytest.raises(LeakwattError, match=r"recall of IMR: fn must be a count"):
        _row("IMR", 3, -1)
    with pytest.raises(LeakwattError, match=r"tp must be a count"):
        recall_row("IMR", 2.5, 1, 0, "s", "c", WHEN)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- read_recall

def test_read_recall_round_trip_and_checks(tmp_path: Path) -> None:
    path = _write(tmp_path / "recall.csv", [_row("IMR", 8, 2, 1), _row("DIR", 0, 0)])
    table = read_recall(path)
    assert list(table.columns) == RECALL_COLUMNS
    assert table["rule"].tolist() == ["DIR", "IMR"]
    imr = table.set_index("rule").loc["IMR"]
    assert (imr["tp"], imr["fn"], imr["fp"], imr["recall"]) == (8, 2, 1, pytest.approx(0.8))

    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    raw.loc[raw["rule"] == "IMR", "recall"] = "0.9"
    raw.to_csv(path, index=False)
    with pytest.raises(LeakwattError, match=r"recall\.csv: line 2: recall '0\.9' does not match "
                                            r"its counts \(tp 8, fn 2, fp 1 give 0\.8\)"):
        read_recall(path)
    raw.loc[raw["rule"] == "IMR", "recall"] = "0.8"
    raw.loc[raw["rule"] == "DIR", "recall_hi"] = "0.5"   # a value where the counts give none
    raw.to_csv(path, index=False)
    with pytest.raises(LeakwattError, match=r"line 3: recall_hi '0\.5' does not match"):
        read_recall(path)
    raw.loc[raw["rule"] == "DIR", "recall_hi"] = ""
    raw.loc[raw["rule"] == "IMR", "true_sites"] = "11"
    raw.to_csv(path, index=False)
    with pytest.raises(LeakwattError, match=r"line 2: true_sites 11 is not tp \+ fn \(8 \+ 2\)"):
        read_recall(path)
    raw.loc[raw["rule"] == "IMR", "true_sites"] = "ten"
    raw.to_csv(path, index=False)
    with pytest.raises(LeakwattError, match=r"line 2: true_sites 'ten' is not a count"):
        read_recall(path)
    raw.drop(columns=["fn"]).to_csv(path, index=False)
    with pytest.raises(LeakwattError, match=r"line 1: missing column\(s\) fn"):
        read_recall(path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(LeakwattError, match="empty file"):
        read_recall(path)


def test_label_sets_of_one_commit_are_pooled_and_two_commits_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "recall.csv", [_row("IMR", 8, 2, 1, "set_a.csv"),
                                            _row("IMR", 4, 6, 0, "set_b.csv"),
                                            _row("UTR", 5, 5, 0, "set_a.csv")])
    imr = read_recall(path).set_index("rule").loc["IMR"]
    pooled = _row("IMR", 12, 8, 1, "set_a.csv+set_b.csv")
    assert imr["label_set"] == "set_a.csv+set_b.csv"
    assert (imr["tp"], imr["fn"], imr["fp"], imr["true_sites"]) == (12, 8, 1, 20)
    assert (imr["recall_lo"], imr["recall_hi"]) == pytest.approx(
        (pooled["recall_lo"], pooled["recall_hi"]))
    _write(path, [_row("IMR", 8, 2, 1, "set_a.csv"),
                  _row("IMR", 4, 6, 0, "set_b.csv", commit="beef" * 10)])
    with pytest.raises(LeakwattError, match=r"IMR was scored at 2 commits .*same code"):
        read_recall(path)


def test_load_recall_notes_a_missing_table(tmp_path: Path) -> None:
    assert load_recall(None) == (None, NO_RECALL_TABLE)
    frame, note = load_recall(tmp_path / "recall.csv")
    assert frame is None
    assert note == f"no recall table at {tmp_path / 'recall.csv'}"


# ----------------------------------------------------------------------------- correction

def test_correction_divides_instances_by_recall_and_says_why_when_it_cannot() -> None:
    recall = recall_table([_row("IMR", 8, 2, 1), _row("GCB", 0, 9), _row("DIR", 0, 0)])
    table = pd.DataFrame({"rule": ["IMR", "GCB", "DIR", "UTR"], "instances": [40, 7, 3, 5],
                          "share_repos_affected": [0.5, 0.1, 0.1, 0.2]})
    out = correct_for_recall(table, recall).set_index("rule")
    imr = _row("IMR", 8, 2, 1)
    assert out.loc["IMR", "corrected_instances"] == pytest.approx(40 / 0.8)
    assert out.loc["IMR", "corrected_instances_lo"] == pytest.approx(40 / imr["recall_hi"])
    assert out.loc["IMR", "corrected_instances_hi"] == pytest.approx(40 / imr["recall_lo"])
    assert out.loc["IMR", "precision"] == pytest.approx(8 / 9)       # beside it, not applied
    assert (out.loc["IMR", "recall_label_set"], out.loc["IMR", "recall_commit"]) == (
        "set_a.csv", COMMIT)
    assert out.loc["IMR", "recall_true_sites"] == 10 and out.loc["IMR", "correction_note"] == ""
    # nothing found of 9 true sites: a lower bound only
    assert math.isnan(out.loc["GCB", "corrected_instances"])
    assert out.loc["GCB", "corrected_instances_lo"] == pytest.approx(
        7 / _row("GCB", 0, 9)["recall_hi"])
    assert math.isinf(out.loc["GCB", "corrected_instances_hi"])
    assert "recall 0 on set_a.csv (0 of 9 true sites found)" in out.loc["GCB", "correction_note"]
    assert math.isnan(out.loc["DIR", "corrected_instances"])
    assert out.loc["DIR", "correction_note"] == "no true site of the rule in set_a.csv: " \
                                                "recall unknown"
    assert math.isnan(out.loc["UTR", "recall"])
    assert out.loc["UTR", "correction_note"] == "no row for the rule in the recall table"
    # columns are added, never changed: repository shares stay as observed
    pd.testing.assert_frame_equal(out.reset_index()[list(table.columns)], table)
    assert corrected_text(out.loc["IMR"].to_dict()) == "50 (41–90)"
    assert corrected_text(out.loc["GCB"].to_dict()).endswith("(no upper bound)")
    assert corrected_text(out.loc["UTR"].to_dict()) == ""

    bare = correct_for_recall(table, None, "no recall table at x.csv")
    assert set(bare["correction_note"]) == {"no recall table at x.csv"}
    assert bare["corrected_instances"].isna().all()


def test_prevalence_tables_carry_the_correction(tmp_path: Path) -> None:
    from leakwatt.analysis.prevalence import prevalence, read_prevalence, write_prevalence

    repos = pd.DataFrame({"url": ["https://x/a", "https://x/b"], "commit": ["1" * 40, "2" * 40],
                          "name": ["a", "b"], "status": ["ok", "ok"], "kloc": ["2.0", "1.0"]})
    instances = pd.DataFrame({"repo": ["a", "a", "a", "b"], "rule": ["IMR"] * 3 + ["UTR"],
                              "era": ["tf1", "tf2", "tf2", "tf2"]})
    events = pd.DataFrame(columns=["repo", "rule", "path", "event", "commit", "date"])
    # a commit of digits only stays text through the CSV files
    recall = recall_table([_row("IMR", 3, 1, commit="0123456789" * 4)])
    tables = prevalence(repos, instances, events, recall=recall)
    imr = tables["prevalence"].set_index("rule").loc["IMR"]
    assert imr["instances"] == 3 and imr["corrected_instances"] == pytest.approx(4.0)
    assert imr["share_repos_affected"] == pytest.approx(0.5)      # not corrected
    era = tables["by_era"].set_index(["rule", "era"])
    assert era.loc[("IMR", "tf2"), "corrected_instances"] == pytest.approx(2 / 0.75)
    assert era.loc[("IMR", "unknown"), "corrected_instances"] == 0
    assert era.loc[("UTR", "tf2"), "correction_note"] == "no row for the rule in the recall table"

    mined = tmp_path / "mined"
    mined.mkdir()
    repos.to_csv(mined / "repos.csv", index=False)
    instances.to_csv(mined / "instances.csv", index=False)
    events.to_csv(mined / "events.csv", index=False)
    write_prevalence(mined, tmp_path / "out", recall)
    back = read_prevalence(tmp_path / "out")
    assert back is not None
    row = back["prevalence"].set_index("rule").loc["IMR"]
    assert row["recall_commit"] == "0123456789" * 4
    assert row["corrected_instances"] == pytest.approx(4.0)
    assert back["prevalence"].set_index("rule").loc["UTR", "correction_note"].startswith("no row")

    from leakwatt.analysis.sections import prevalence_section

    text = prevalence_section(back, {})
    assert "Recall from set_a.csv @ 012345678901 (label set @ the commit" in text
    assert "| IMR | 3 | 0.75 (0.19–0.99), 4 true sites | 1 | 4 (3.02–15) |  |" in text
    assert "misses only" in text and "census" in text
    assert "| IMR | tf2 | 2 | 2.67 (" in text


# ----------------------------------------------------------------------------- analyze, report

def _mined(root: Path) -> Path:
    mined = root / "mined"
    mined.mkdir()
    pd.DataFrame({"url": ["https://x/a"], "commit": ["1" * 40], "name": ["a"], "status": ["ok"],
                  "reason": [""], "kloc": ["1.5"]}).to_csv(mined / "repos.csv", index=False)
    pd.DataFrame({"repo": ["a"] * 4, "rule": ["IMR", "IMR", "IMR", "UTR"],
                  "path": ["t.py"] * 4, "line": ["3", "9", "20", "5"]}).to_csv(
        mined / "instances.csv", index=False)
    pd.DataFrame(columns=["repo", "rule", "path", "event", "commit", "date"]).to_csv(
        mined / "events.csv", index=False)
    return mined


def test_analyze_notes_a_missing_recall_table_and_the_report_shows_the_correction(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from leakwatt.analysis.report import render_report
    from leakwatt.params import AnalyzeParams, ReportParams
    from leakwatt.pipeline.workflow import analyze

    spec = importlib.util.spec_from_file_location(
        "leakwatt_recall_synth", ROOT / "tests" / "fixtures" / "analysis" / "synth.py")
    synth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synth)
    runs = tmp_path / "runs" / "cpu" / "runs.csv"
    runs.parent.mkdir(parents=True)
    synth.synthetic_runs(n=3, pairs=(("paper-imr", "IMR"),)).to_csv(runs, index=False)
    mined, out = _mined(tmp_path), tmp_path / "analysis"
    params = AnalyzeParams(bootstrap_resamples=200)

    absent = tmp_path / "labels" / "recall.csv"
    analyze([runs], mined, out, params, recall_path=absent)
    note = f"no recall table at {absent}"
    assert f"leakwatt: {note}: prevalence is not corrected for recall\n" in \
        capsys.readouterr().err
    table = pd.read_csv(out / "prevalence.csv", keep_default_na=False)
    assert set(table["correction_note"]) == {note}
    assert (table["corrected_instances"] == "").all()

    absent.parent.mkdir()
    _write(absent, [_row("IMR", 6, 2, 0, "fresh_labels.csv"), _row("UTR", 1, 3, 0,
                                                                   "fresh_labels.csv")])
    analyze([runs], mined, out, params, recall_path=absent)
    assert f"prevalence corrected for recall from {absent} (fresh_labels.csv @ c0ffee000000)" \
        in capsys.readouterr().err
    render_report(out, [runs], tmp_path / "reports", ReportParams())
    report = (tmp_path / "reports" / "report.md").read_text(encoding="utf-8")
    section = report.split("## Prevalence in mined projects")[1].split("\n## ")[0]
    assert "Observed and recall-corrected instances per rule" in section
    assert "Recall from fresh_labels.csv @ c0ffee000000" in section
    assert "| IMR | 3 | 0.75 (" in section and "| 4 (" in section
    assert "| UTR | 1 | 0.25 (" in section
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["prevalence"]["IMR"]["corrected_instances"] == pytest.approx(4.0)


def test_dvc_stage_passes_the_recall_table_and_depends_on_its_folder() -> None:
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["analyze"]
    words = stage["cmd"].split()
    path = Path(words[words.index("--recall") + 1])
    assert path == Path("data/labels/recall.csv")
    assert str(path.parent) in stage["deps"]
    assert (ROOT / path.parent).is_dir()       # DVC refuses a dependency that does not exist


# ----------------------------------------------------------------------------- the benchmark

def _benchmark():
    spec = importlib.util.spec_from_file_location(
        "leakwatt_detector_accuracy", ROOT / "benchmarks" / "detector_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module      # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _labelled_repo(tmp_path: Path) -> tuple[Path, str]:
    repo = GitRepo(tmp_path / "mirrors" / "team+proj")
    sha = (repo.write("train.py", IMR_LOOP).write("sweep.py", IMR_LOOP)
           .write("notes.py", "STEPS = 10\n").commit("two fold loops and a constant"))
    return tmp_path / "mirrors", sha


def test_benchmark_writes_the_recall_table(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bench = _benchmark()
    mirrors, sha = _labelled_repo(tmp_path)
    labels = tmp_path / "tiny_labels.csv"
    # IMR_LOOP builds a model per fold at line 12: a true site found (train.py), a true site
    # that is no smell at all so the detectors must miss it (notes.py), and a "hard negative"
    # the detectors do report (sweep.py); no UTR label at all
    labels.write_text(
        "repo,commit,path,line,rule,label,reason\n"
        f"team/proj,{sha},train.py,12,IMR,true,model per fold\n"
        f"team/proj,{sha},notes.py,1,IMR,true,labelled true to make a miss\n"
        f"team/proj,{sha},sweep.py,12,IMR,false,labelled false to make a false positive\n",
        encoding="utf-8")
    out = tmp_path / "recall.csv"
    rc = bench.main(["--labels", str(labels), "--mirror-dir", str(mirrors), "--rules", "IMR,UTR",
                     "--no-semgrep", "--write-recall", str(out)])
    assert rc == 0, capsys.readouterr().out
    raw = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(raw.columns) == RECALL_COLUMNS and raw["rule"].tolist() == ["IMR", "UTR"]
    assert raw.set_index("rule").loc["UTR", "recall"] == ""        # no true site: no recall
    table = read_recall(out).set_index("rule")                      # every value checked
    imr = table.loc["IMR"]
    assert (imr["tp"], imr["fn"], imr["fp"], imr["true_sites"]) == (1, 1, 1, 2)
    assert (imr["precision"], imr["recall"]) == (0.5, 0.5)
    exact = binomtest(1, 2).proportion_ci(0.95, method="exact")
    assert (imr["recall_lo"], imr["recall_hi"]) == pytest.approx((exact.low, exact.high))
    assert imr["label_set"] == "tiny_labels.csv"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert re.fullmatch(rf"{head}(-dirty)?", imr["commit"])
    scored = dt.datetime.fromisoformat(imr["scored_at"])
    assert scored.utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.UTC) - scored) < dt.timedelta(minutes=10)
    assert f"recall table: {out} (2 rules, tiny_labels.csv @ {head[:12]}" in \
        capsys.readouterr().out


def test_benchmark_refuses_a_recall_table_with_unread_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = _benchmark()
    mirrors, sha = _labelled_repo(tmp_path)
    labels = tmp_path / "labels.csv"
    labels.write_text("repo,commit,path,line,rule,label,reason\n"
                      f"team/proj,{sha},train.py,12,IMR,true,model per fold\n"
                      f"team/proj,{sha},gone.py,4,IMR,true,a file the commit does not hold\n",
                      encoding="utf-8")
    out = tmp_path / "recall.csv"
    rc = bench.main(["--labels", str(labels), "--mirror-dir", str(mirrors), "--rules", "IMR",
                     "--no-semgrep", "--write-recall", str(out)])
    assert rc == 1 and not out.exists()
    assert "recall table NOT written: 1 labelled file(s)" in capsys.readouterr().out


def test_benchmark_pools_two_label_sets_into_one_score(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    bench = _benchmark()
    mirrors, sha = _labelled_repo(tmp_path)
    first, second = tmp_path / "set3_labels.csv", tmp_path / "set4_labels.csv"
    header = "repo,commit,path,line,rule,label,reason\n"
    first.write_text(header + f"team/proj,{sha},train.py,12,IMR,true,model per fold\n",
                     encoding="utf-8")
    second.write_text(header + f"team/proj,{sha},notes.py,1,IMR,true,made to be missed\n",
                      encoding="utf-8")
    out = tmp_path / "recall.csv"
    rc = bench.main(["--labels", str(first), str(second), "--mirror-dir", str(mirrors),
                     "--rules", "IMR", "--no-semgrep", "--write-recall", str(out)])
    assert rc == 0, capsys.readouterr().out
    imr = read_recall(out).set_index("rule").loc["IMR"]
    assert (imr["tp"], imr["fn"], imr["true_sites"]) == (1, 1, 2)      # one hit from each set
    assert imr["label_set"] == "set3_labels.csv+set4_labels.csv"


def test_benchmark_refuses_a_site_labelled_in_two_pooled_sets(tmp_path: Path) -> None:
    bench = _benchmark()
    mirrors, sha = _labelled_repo(tmp_path)
    header = "repo,commit,path,line,rule,label,reason\n"
    first, second = tmp_path / "a_labels.csv", tmp_path / "b_labels.csv"
    first.write_text(header + f"team/proj,{sha},train.py,12,IMR,true,model per fold\n",
                     encoding="utf-8")
    second.write_text(header + f"Team/Proj,{sha},train.py,12,IMR,false,disagrees\n",
                      encoding="utf-8")
    with pytest.raises(SystemExit, match="also labelled in"):
        bench.main(["--labels", str(first), str(second), "--mirror-dir", str(mirrors),
                    "--rules", "IMR", "--no-semgrep"])
