"""Issue 10: the primary family, derived CO2, net energy, RSS after exit, foreign load, controls."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests

from leakwatt.analysis.runs import drop_after_exit, load_runs, rss_growth
from leakwatt.analysis.sections import pooled_estimates
from leakwatt.analysis.stats import analyze, paired_stats, positive_controls
from leakwatt.common import LeakwattError
from leakwatt.contracts import STATS
from leakwatt.params import AnalyzeParams, PrimaryParams, params_from_dict

_SYNTH = Path(__file__).parent / "fixtures" / "analysis" / "synth.py"
_spec = importlib.util.spec_from_file_location("leakwatt_analysis_synth_primary", _SYNTH)
_synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_synth)
synthetic_runs = _synth.synthetic_runs


def test_stage_family_holm_over_primary_rows_only_and_no_emissions_rows(tmp_path):
    runs = synthetic_runs(n=8, effect=1.03, noise=0.03)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    analyze([tmp_path / "runs.csv"], tmp_path / "out", AnalyzeParams())
    stats = pd.read_csv(tmp_path / "out" / "stats.csv")
    STATS.validate(stats, "stats.csv")
    assert set(stats["family"]) == {"primary", "exploratory"}
    primary = stats[stats["family"] == "primary"]
    assert len(primary) == 2 and set(primary["pair_id"]) == {"paper-imr", "paper-utr"}
    # issue 18: CodeCarbon estimated the energy (cpu_load, no RAPL): the primary outcome is time
    assert set(primary["metric"]) == {"duration_s"} and set(primary["test"]) == {"paired_t"}
    np.testing.assert_allclose(primary["p_adj"],
                               multipletests(primary["p_value"], method="holm")[1])
    # a Holm over the whole table would give larger p_adj: the family really is smaller
    tested = stats[stats["status"] == "tested"]
    whole = pd.Series(multipletests(tested["p_value"], method="holm")[1], index=tested.index)
    assert (whole[primary.index] >= primary["p_adj"]).all()
    assert (whole[primary.index] > primary["p_adj"]).any()
    assert stats.loc[stats["family"] == "exploratory", "p_adj"].isna().all()
    assert "emissions_kg" not in set(stats["metric"])
    assert set(stats["framework"]) == {"keras3"}     # no framework column: Keras 3


def test_primary_metric_follows_the_power_source(tmp_path):
    """Energy is primary only where a hardware counter measured it (RAPL here)."""
    measured = synthetic_runs(n=6, effect=1.03, noise=0.03, source="rapl")
    measured.to_csv(tmp_path / "runs.csv", index=False)
    analyze([tmp_path / "runs.csv"], tmp_path / "out", AnalyzeParams())
    stats = pd.read_csv(tmp_path / "out" / "stats.csv")
    assert set(stats.loc[stats["family"] == "primary", "metric"]) == {"energy_kwh"}
    assert "power" not in stats.columns and (stats["ci_adjusted"] == False).all()  # noqa: E712


def test_primary_params_choose_the_family():
    runs = synthetic_runs(n=8)
    stats = paired_stats(runs, primary_metric="duration_s", primary_test="wilcoxon").stats
    primary = stats[stats["family"] == "primary"]
    assert set(zip(primary["metric"], primary["test"], strict=True)) == {
        ("duration_s", "wilcoxon")}
    with pytest.raises(LeakwattError, match="emissions_kg is derived"):
        params_from_dict({"analyze": {"primary": {"metric": "emissions_kg"}}}, "params.yaml")
    with pytest.raises(LeakwattError, match=r"analyze\.primary\.test: 'anova' is not one of"):
        params_from_dict({"analyze": {"primary": {"test": "anova"}}}, "params.yaml")
    loaded = params_from_dict({"analyze": {"primary": {"test": "wilcoxon"}}}, "params.yaml")
    assert loaded.analyze.primary == PrimaryParams(metric="energy_kwh", test="wilcoxon")


def test_frameworks_are_separate_units():
    k3 = synthetic_runs(n=5, pairs=(("paper-imr", "IMR"),))
    k2 = synthetic_runs(n=5, pairs=(("paper-imr", "IMR"),), seed=9)
    runs = pd.concat([k3.assign(framework="keras3"), k2.assign(framework="keras2")],
                     ignore_index=True)
    stats = paired_stats(runs).stats
    primary = stats[stats["family"] == "primary"]
    assert sorted(primary["framework"]) == ["keras2", "keras3"]
    assert (primary["n"] == 5).all()
    np.testing.assert_allclose(primary["p_adj"],
                               multipletests(primary["p_value"], method="holm")[1])


def _idle(path: Path, source: str, watts: float) -> Path:
    kwh_per_s = watts / 3.6e6
    pd.DataFrame({"device": ["cpu", "cpu"], "rep": [1, 2], "status": ["ok", "ok"],
                  "duration_s": [100.0, 100.0], "energy_kwh": [kwh_per_s * 100] * 2,
                  "cpu_power_source": [source, source]}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("source", "watts", "why"), [
    ("cpu_load", 3.0, "was estimated (cpu_load), not measured with RAPL"),
    ("rapl", 500.0, "mean power is not above the idle power"),
])
def test_net_energy_only_when_idle_is_measured_and_below_the_workload(tmp_path, source, watts,
                                                                      why):
    runs = synthetic_runs(n=5, source="rapl")      # ~36 W workloads
    runs.to_csv(tmp_path / "runs.csv", index=False)
    result = analyze([tmp_path / "runs.csv"], tmp_path / "out", AnalyzeParams(),
                     idle_paths=[_idle(tmp_path / "idle.csv", source, watts)])
    assert "net_energy_kwh" not in set(result.stats["metric"])
    absent = result.failures[(result.failures["status"] == "absent")
                             & (result.failures["metric"] == "net_energy_kwh")]
    assert len(absent) == 1 and why in absent.iloc[0]["error"]
    note = result.summary.loc[result.summary["metric"] == "net_energy_kwh", "note"]
    assert note.str.contains(why, regex=False).all() and len(note)


def test_net_energy_when_measured(tmp_path):
    runs = synthetic_runs(n=5, source="rapl")
    runs.to_csv(tmp_path / "runs.csv", index=False)
    loaded = load_runs([tmp_path / "runs.csv"], [_idle(tmp_path / "idle.csv", "rapl", 3.6)])
    expected = loaded["energy_kwh"] - 1e-6 * loaded["duration_s"]
    np.testing.assert_allclose(loaded["net_energy_kwh"], expected)
    assert (loaded["net_energy_kwh"] > 0).all()


def test_blank_value_in_an_ok_run_is_listed(tmp_path):
    runs = synthetic_runs(n=5).astype({"peak_rss_mb": object})
    hole = (runs["pair_id"] == "paper-utr") & (runs["rep"] == 2) & (runs["variant"] == "clean")
    runs.loc[hole, "peak_rss_mb"] = ""
    result = paired_stats(runs)
    blank = result.failures[result.failures["status"] == "blank"]
    assert len(blank) == 1
    row = blank.iloc[0]
    assert (row["pair_id"], row["variant"], row["rep"], row["metric"]) == (
        "paper-utr", "clean", 2, "peak_rss_mb")
    rss = result.stats[(result.stats["pair_id"] == "paper-utr")
                       & (result.stats["metric"] == "peak_rss_mb")]
    assert (rss["n"] == 4).all()


def test_rss_samples_after_exit_are_dropped(tmp_path):
    # an old series: RSS rising to 4.8 s, then a 0 MB sample taken after the program exited
    t = np.arange(0.0, 5.0, 0.25)
    series = pd.DataFrame({"t_s": list(t) + [5.1], "rss_mb": list(300 + 10 * t) + [0.0],
                           "gpu_mem_mb": [""] * (len(t) + 1)})
    kept = drop_after_exit(series)
    assert len(kept) == len(t) and (kept["rss_mb"] > 0).all()
    assert rss_growth(kept) == pytest.approx(10.0)
    assert rss_growth(series) < 0          # what the 0 MB point did to the slope
    runs = synthetic_runs(n=3, pairs=(("paper-utr", "UTR"),))
    (tmp_path / "series").mkdir()
    series.to_csv(tmp_path / "series" / "r.csv", index=False)
    runs["series_path"] = "series/r.csv"
    runs["rss_growth_mb_per_s"] = -42.0
    runs.to_csv(tmp_path / "runs.csv", index=False)
    loaded = load_runs([tmp_path / "runs.csv"])
    np.testing.assert_allclose(loaded["rss_growth_mb_per_s"], 10.0)


def test_foreign_load_is_counted(tmp_path):
    runs = synthetic_runs(n=4, pairs=(("paper-imr", "IMR"),))
    runs["load_start"] = 1.0
    runs["load_end"] = 1.5
    runs.loc[0, "load_end"] = 3.5          # 2 cores x max_load 1.5 = 3.0
    runs.loc[3, "load_start"] = 3.1
    runs.to_csv(tmp_path / "runs.csv", index=False)
    (tmp_path / "environment.json").write_text(json.dumps({"cpu_logical_cores": 2}))
    result = analyze([tmp_path / "runs.csv"], tmp_path / "out", AnalyzeParams(max_load=1.5))
    assert (result.stats["n_foreign_load"] == 2).all()
    quiet = analyze([tmp_path / "runs.csv"], tmp_path / "out2", AnalyzeParams(max_load=2.0))
    assert (quiet.stats["n_foreign_load"] == 0).all()


def test_positive_controls():
    runs = synthetic_runs(n=5, pairs=(("paper-imr", "IMR"), ("paper-utr", "UTR")))
    runs["leak_evidence"] = "ops in the default graph"
    runs["leak_count_first"] = 170
    rng = np.random.default_rng(5)
    grows = (runs["pair_id"] == "paper-imr") & (runs["variant"] == "smelly")
    runs["leak_count_last"] = 170 + np.where(grows, 6500 + rng.integers(0, 50, len(runs)), 0)
    controls = positive_controls(runs).set_index("pair_id")
    imr, utr = controls.loc["paper-imr"], controls.loc["paper-utr"]
    assert imr["manifested"] == "yes" and imr["ci_low"] > 0 and imr["growth_clean"] == 0
    d = (runs[grows].sort_values("rep")["leak_count_last"].to_numpy(float) - 170)
    assert imr["diff"] == pytest.approx(d.mean())
    assert utr["manifested"] == "no" and "cost of the code change" in utr["note"]
    none = positive_controls(synthetic_runs(n=3)).iloc[0]
    assert none["manifested"] == "unknown"


def test_pooling_only_within_an_estimand_matches_statsmodels():
    pairs = (("imr-a", "IMR"), ("imr-b", "IMR"), ("imr-c", "IMR"))
    runs = pd.concat([synthetic_runs(n=6, effect=e, noise=0.05, seed=s, pairs=(p,))
                      for p, e, s in zip(pairs, (1.1, 1.3, 0.9), (1, 2, 3), strict=True)],
                     ignore_index=True)
    stats = paired_stats(runs).stats
    pooled, alone = pooled_estimates(stats, {"imr-a": "release", "imr-b": "release",
                                             "imr-c": "build-once"})
    assert len(pooled) == 1 and alone == ["imr-c (cpu, keras3)"]
    prim = stats[(stats["family"] == "primary") & stats["pair_id"].isin(["imr-a", "imr-b"])]
    ref = combine_effects(prim["log_ratio"].to_numpy(), prim["log_ratio_se"].to_numpy() ** 2,
                          method_re="dl", use_t=False).summary_frame().loc["random effect"]
    assert pooled[0][3] == "release" and pooled[0][4] == 2
    assert f"{100 * (math.exp(ref['eff']) - 1):+.2f} %" in pooled[0][5]
    unpooled, alone = pooled_estimates(stats, None)
    assert unpooled == [] and len(alone) == 3
