"""Report rendering on synthetic inputs: files, paper numbers, figures embedded, metrics."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from leakwatt.analysis.prevalence import write_prevalence
from leakwatt.analysis.report import render_report
from leakwatt.analysis.stats import analyze
from leakwatt.common import LeakwattError
from leakwatt.params import AnalyzeParams, ReportParams

_SYNTH = Path(__file__).parent / "fixtures" / "analysis" / "synth.py"
_spec = importlib.util.spec_from_file_location("leakwatt_analysis_synth", _SYNTH)
_synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_synth)
synthetic_runs = _synth.synthetic_runs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _mined(root: Path) -> Path:
    mined = root / "mined"
    mined.mkdir()
    pd.DataFrame({"url": ["https://x/a", "https://x/b"], "commit": ["1" * 40, "2" * 40],
                  "name": ["a", "b"], "status": ["ok", "ok"], "reason": ["", ""],
                  "files": ["4", "2"], "kloc": ["3.0", "1.0"]}).to_csv(mined / "repos.csv",
                                                                       index=False)
    pd.DataFrame({"repo": ["https://x/a", "https://x/b"], "commit": ["1" * 40, "2" * 40],
                  "path": ["t.py", "u.py"], "line": ["3", "7"], "rule": ["IMR", "UTR"],
                  "variant": ["loop", "list"]}).to_csv(mined / "instances.csv", index=False)
    pd.DataFrame({"repo": ["https://x/a"] * 3, "rule": ["IMR", "IMR", "UTR"],
                  "path": ["t.py"] * 3, "event": ["introduced", "removed", "introduced"],
                  "commit": ["c0", "c1", "c2"],
                  "date": ["2022-01-01", "2022-02-01", "2022-03-01"], "message": [""] * 3,
                  "removal": ["", "code_changed", ""]}).to_csv(mined / "events.csv", index=False)
    pd.DataFrame(columns=["repo", "commit", "date", "message", "matched"]).to_csv(
        mined / "leak_commits.csv", index=False)
    return mined


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    runs = synthetic_runs(n=6, effect=1.3)
    crashed = (runs["pair_id"] == "paper-utr") & (runs["rep"] == 5) & (runs["variant"] == "smelly")
    runs.loc[crashed, ["status", "error"]] = ["oom", "MemoryError"]
    runs_path = root / "runs.csv"
    runs.to_csv(runs_path, index=False)
    (root / "environment.json").write_text(json.dumps({
        "cpu_model": "Test CPU 9000", "cores": 2, "ram_gb": 8, "gpu": None,
        "versions": {"tensorflow": "2.21.0", "codecarbon": "3.0"}, "git_sha": "abc1234"}))
    pd.DataFrame({"pair_id": ["paper-imr", "paper-utr"], "status": ["equivalent", "different"],
                  "max_rel_diff": [0.0, 0.2], "detail": ["", "losses differ"]}).to_csv(
        root / "equivalence.csv", index=False)
    analyze([runs_path], root / "analysis", AnalyzeParams(bootstrap_resamples=500))
    out = root / "reports"
    write_prevalence(_mined(root), root / "analysis")
    metrics = render_report(
        root / "analysis", [runs_path], out, ReportParams(title="Test report"),
        environment_paths=[root / "environment.json"],
        equivalence_path=root / "equivalence.csv",
        commands=["leakwatt analyze --runs runs.csv --out analysis"])
    return out, metrics


def test_outputs_exist(rendered):
    out, _ = rendered
    for name in ("report.md", "report.html", "metrics.json", "plots/pct_change.csv",
                 "plots/energy_runs.csv", "plots/survival.csv"):
        assert (out / name).is_file(), name
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert pngs == ["energy_per_pair.png", "forest.png", "memory.png", "prevalence.png",
                    "survival.png"]
    for png in (out / "figures").glob("*.png"):
        assert png.read_bytes().startswith(PNG_MAGIC)


def test_first_paragraph_flags_estimated_power(rendered):
    out, _ = rendered
    text = (out / "report.md").read_text()
    first = text.split("\n\n")[1]
    assert "estimate, not a measurement" in first
    assert "cpu_load" in first


def test_paper_numbers_beside_the_study(rendered):
    out, metrics = rendered
    text = (out / "report.md").read_text()
    section = text.split("## The paper beside this study")[1].split("\n## ")[0]
    for number in ("0.025646", "0.011608", "0.033797", "0.015297", "+31.78 %", "0.037393",
                   "0.016921", "+45.80 %", "+45.77 %"):
        assert number in section, number
    imr = metrics["pairs"]["paper-imr"]["cpu"]["keras3"]
    assert f"{imr['pct_change']:+.2f} %" in section
    for pair in ("paper-imr", "paper-utr"):   # as tests/test_demo_study.py reads the table
        row = re.search(rf"\| keras3 \| {pair} \(cpu\) \| ([0-9.e+-]+) \| ([0-9.e+-]+) \|",
                        section)
        assert row is not None and float(row.group(1)) > 0 and float(row.group(2)) > 0, pair
    # CO2 is derived from energy (x the runs' intensity), never tested on its own
    assert "CO2 is derived" in section


def test_sections_built_from_the_facts(rendered):
    out, _ = rendered
    text = (out / "report.md").read_text()
    for heading in ("## Paired statistics", "## Failures and excluded pairs",
                    "## Per-smell summary", "## Prevalence in mined projects",
                    "## Threats to validity", "## Environment", "## Reproduce"):
        assert heading in text
    threats = text.split("## Threats to validity")[1].split("\n## ")[0]
    assert "scale tiny" in threats
    assert "CPU only (Test CPU 9000)" in threats
    assert "re-implementations" in threats
    assert "1 of 24 runs did not complete" in threats
    failures = text.split("## Failures and excluded pairs")[1].split("\n## ")[0]
    assert "| paper-utr (cpu, keras3) | smelly | 5 | oom | MemoryError |" in failures
    assert "gpu_energy_kwh on cpu (0 in every ok run" in failures
    assert "losses differ" in failures
    assert "Test CPU 9000" in text.split("## Environment")[1]
    assert "leakwatt analyze --runs runs.csv --out analysis" in text
    assert "| scipy |" in text


def test_no_nan_text_in_tables(rendered):
    out, _ = rendered
    text = (out / "report.md").read_text()
    assert not re.search(r"\bnan\b", text, flags=re.IGNORECASE)


def test_html_is_self_contained(rendered):
    out, _ = rendered
    html = (out / "report.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) == 5
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    assert html.count("<table>") >= 5
    assert "<title>Test report (full profile)</title>" in html
    assert "+31.78 %" in html


def test_metrics_json(rendered):
    out, metrics = rendered
    data = json.loads((out / "metrics.json").read_text())
    assert data == metrics
    stats = pd.read_csv(out.parent / "analysis" / "stats.csv")
    row = stats[(stats["pair_id"] == "paper-imr") & (stats["family"] == "primary")].iloc[0]
    # cpu_load runs (no RAPL): the primary outcome is time (issue 18)
    assert row["metric"] == "duration_s" and row["test"] == "paired_t"
    imr = data["pairs"]["paper-imr"]["cpu"]["keras3"]
    assert imr["pct_change"] == pytest.approx(row["pct_change"])
    assert imr["p_adj"] == pytest.approx(row["p_adj"])
    assert imr["n"] == 6 and imr["test"] == "paired_t" and imr["ci_reliable"] is True
    assert data["pairs"]["paper-utr"]["cpu"]["keras3"]["n"] == 5
    assert imr["ci_low"] <= imr["pct_change"] <= imr["ci_high"]
    assert imr["ci_low"] == pytest.approx(row["ci_low"])
    assert data["primary_tests"] == 2
    assert data["paper"] == {"IMR": 31.78, "UTR": 45.8}
    assert data["prevalence"]["IMR"]["instances_per_kloc"] == pytest.approx(0.25)
    assert data["runs"] == {"total": 24, "ok": 23, "failed": 1}


def test_plots_data(rendered):
    out, _ = rendered
    pct = pd.read_csv(out / "plots" / "pct_change.csv")
    assert {"paper-imr (cpu)", "paper IMR (NVIDIA Tesla T4)"} <= set(pct["pair"])
    runs = pd.read_csv(out / "plots" / "energy_runs.csv")
    assert len(runs) == 23


def test_rapl_runs_without_mining(tmp_path):
    runs = synthetic_runs(n=4, source="rapl", scale="paper", pairs=(("paper-imr", "IMR"),))
    runs.to_csv(tmp_path / "runs.csv", index=False)
    analyze([tmp_path / "runs.csv"], tmp_path / "analysis", AnalyzeParams(bootstrap_resamples=200))
    metrics = render_report(tmp_path / "analysis", [tmp_path / "runs.csv"],
                            tmp_path / "reports", ReportParams())
    text = (tmp_path / "reports" / "report.md").read_text()
    assert "measured from Intel RAPL counters for all 8" in text.split("\n\n")[1]
    assert "Mining outputs were not given" in text
    assert "UTR | 0.037393" in text and "not measured in this study" in text
    assert "prevalence" not in metrics
    assert sorted(p.name for p in (tmp_path / "reports" / "figures").glob("*.png")) == [
        "energy_per_pair.png", "forest.png", "memory.png"]
    threats = text.split("## Threats to validity")[1]
    assert "**Scale.**" not in threats
    # the Wilcoxon floor is judged per pair, from that pair's own n
    assert ("exact two-sided Wilcoxon p cannot reach 0.05 for paper-imr (cpu, keras3, n = 4: "
            "p >= 0.125)") in threats
    assert "**Repetitions.** 4 complete repetitions per comparison" in threats
    assert "fewer repetitions than `analyze.min_ci_n`" in threats


def test_all_failed_still_renders(tmp_path):
    runs = synthetic_runs(n=3, pairs=(("paper-imr", "IMR"),))
    runs["status"] = "crashed"
    runs.to_csv(tmp_path / "runs.csv", index=False)
    analyze([tmp_path / "runs.csv"], tmp_path / "analysis", AnalyzeParams(bootstrap_resamples=200))
    render_report(tmp_path / "analysis", [tmp_path / "runs.csv"], tmp_path / "reports",
                  ReportParams())
    text = (tmp_path / "reports" / "report.md").read_text()
    assert "**No run completed**" in text.split("\n\n")[1]
    assert "all failed" in text
    assert (tmp_path / "reports" / "figures" / "forest.png").is_file()   # the paper's points


def test_bad_environment_file(tmp_path):
    runs = synthetic_runs(n=3, pairs=(("paper-imr", "IMR"),))
    runs.to_csv(tmp_path / "runs.csv", index=False)
    analyze([tmp_path / "runs.csv"], tmp_path / "analysis", AnalyzeParams(bootstrap_resamples=200))
    (tmp_path / "environment.json").write_text("{not json")
    with pytest.raises(LeakwattError, match=r"environment\.json: line 1: invalid JSON"):
        render_report(tmp_path / "analysis", [tmp_path / "runs.csv"], tmp_path / "reports",
                      ReportParams(), environment_paths=[tmp_path / "environment.json"])
    assert not (tmp_path / "reports" / "report.md").exists()


def test_missing_stats(tmp_path):
    with pytest.raises(LeakwattError, match=r"stats\.csv: not found \(run the analyze stage"):
        render_report(tmp_path, [], tmp_path / "reports", ReportParams())


def test_rss_series_are_plotted_when_the_harness_kept_them(tmp_path):
    runs = synthetic_runs(n=3, pairs=(("paper-utr", "UTR"),))
    (tmp_path / "series").mkdir()
    paths = []
    for i, run in runs.iterrows():
        rel = f"series/{run['variant']}-{run['rep']}.csv"
        growth = 5.0 if run["variant"] == "smelly" else 0.0
        pd.DataFrame({"t_s": [0.0, 0.5, 1.0], "rss_mb": [300, 300 + growth, 300 + 2 * growth],
                      "gpu_mem_mb": ["", "", ""]}).to_csv(tmp_path / rel, index=False)
        paths.append(rel if i else "series/missing.csv")    # one file absent: skipped
    runs["series_path"] = paths
    runs.to_csv(tmp_path / "runs.csv", index=False)
    analyze([tmp_path / "runs.csv"], tmp_path / "analysis", AnalyzeParams(bootstrap_resamples=200))
    render_report(tmp_path / "analysis", [tmp_path / "runs.csv"], tmp_path / "reports",
                  ReportParams())
    assert (tmp_path / "reports" / "figures" / "rss_over_time.png").read_bytes().startswith(
        PNG_MAGIC)
    assert "figures/rss_over_time.png" in (tmp_path / "reports" / "report.md").read_text()


def test_html_keeps_numbers_whole_and_captions_figures(rendered):
    out, _ = rendered
    text = (out / "report.md").read_text()
    captions = re.findall(r"^\*Figure (\d+)\. ", text, flags=re.MULTILINE)
    assert captions == ["1", "2", "3", "4", "5"]
    assert "\n\n*Figure 6." not in text
    html = (out / "report.html").read_text()
    assert '<span class="n">+31.78 %</span>' in html
    assert '<span class="n">&lt; 0.0001</span>' in html
    assert re.search(r'<span class="n">\[[+-]\d+\.\d\d, [+-]\d+\.\d\d\]</span>', html)
    assert "span.n{white-space:nowrap}" in html
    # the spans change the HTML only: a cell's text reads as in report.md
    assert "+31.78 %" in re.sub(r"<[^>]+>", "", html)


def test_prevalence_and_repetitions_text(rendered):
    out, _ = rendered
    text = (out / "report.md").read_text()
    prevalence = text.split("## Prevalence in mined projects")[1].split("\n## ")[0]
    utr = next(line for line in prevalence.splitlines() if line.startswith("| UTR |"))
    assert " / |" not in utr and "| / " not in utr       # nothing removed: no bare "/"
    assert "| 100 % / 0 % |" in prevalence
    threats = text.split("## Threats to validity")[1].split("\n## ")[0]
    assert "5–6 complete repetitions per comparison" in threats
    assert "Holm-adjusted over its 2 test(s)" in threats
    headline = text.split("## Headline")[1].split("\n## ")[0]
    assert "| paper-imr (cpu) | IMR | +" in headline and "keras3 (the paper's setting" in headline


def test_prevalence_comes_from_the_analyze_outputs(tmp_path):
    """The report reads analyze's prevalence tables; it never recomputes them from data/mined."""
    runs = synthetic_runs(n=3, pairs=(("paper-imr", "IMR"),))
    runs.to_csv(tmp_path / "runs.csv", index=False)
    analyze([tmp_path / "runs.csv"], tmp_path / "analysis", AnalyzeParams(bootstrap_resamples=200))
    write_prevalence(_mined(tmp_path), tmp_path / "analysis")
    table = pd.read_csv(tmp_path / "analysis" / "prevalence.csv")
    table.loc[table["rule"] == "IMR", "instances"] = 4242
    table.to_csv(tmp_path / "analysis" / "prevalence.csv", index=False)
    metrics = render_report(tmp_path / "analysis", [tmp_path / "runs.csv"], tmp_path / "reports",
                            ReportParams())
    assert metrics["prevalence"]["IMR"]["instances"] == 4242
    assert "| IMR | 4242 |" in (tmp_path / "reports" / "report.md").read_text()
    (tmp_path / "analysis" / "overview.csv").unlink()
    with pytest.raises(LeakwattError, match=r"overview\.csv: not found beside prevalence\.csv"):
        render_report(tmp_path / "analysis", [tmp_path / "runs.csv"], tmp_path / "reports",
                      ReportParams())


def test_title_and_first_paragraph_name_the_profile(tmp_path):
    runs = synthetic_runs(n=3, effect=1.2)
    runs_path = tmp_path / "runs.csv"
    runs.to_csv(runs_path, index=False)
    analyze([runs_path], tmp_path / "analysis", AnalyzeParams(bootstrap_resamples=200))
    render_report(tmp_path / "analysis", [runs_path], tmp_path / "out",
                  ReportParams(title="Leak study", profile="demo"))
    text = (tmp_path / "out" / "report.md").read_text()
    title, first = text.split("\n\n")[:2]
    assert title == "# Leak study (demo profile)"
    assert first.startswith("This report is a run of the **demo** profile (the offline demo")
    assert "3 counted repetitions per program at scale tiny" in first
    assert "estimate, not a measurement" in first  # the power source still opens the report
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<title>Leak study (demo profile)</title>" in html


def test_an_unknown_profile_is_refused():
    with pytest.raises(LeakwattError, match="profile"):
        ReportParams(profile="nightly").check("report")
