"""Paired statistics: agreement with scipy/statsmodels, worked examples, edge cases, bad input."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from leakwatt.analysis.paired import compare_pair, pairs_needed, rank_biserial, t_power
from leakwatt.analysis.runs import validate_runs
from leakwatt.analysis.stats import analyze, paired_stats
from leakwatt.common import LeakwattError
from leakwatt.contracts import FAILURES, STATS, SUMMARY
from leakwatt.params import AnalyzeParams

_SYNTH = Path(__file__).parent / "fixtures" / "analysis" / "synth.py"
_spec = importlib.util.spec_from_file_location("leakwatt_analysis_synth", _SYNTH)
_synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_synth)
synthetic_runs = _synth.synthetic_runs


def _arrays(runs: pd.DataFrame, pair_id: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    ok = runs[(runs["pair_id"] == pair_id) & (runs["status"] == "ok")]
    s = ok[ok["variant"] == "smelly"].set_index("rep")[metric].sort_index()
    c = ok[ok["variant"] == "clean"].set_index("rep")[metric].sort_index()
    reps = s.index.intersection(c.index)
    return s[reps].to_numpy(float), c[reps].to_numpy(float)


@pytest.fixture(scope="module")
def known_effect() -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = synthetic_runs(n=12, effect=1.3, noise=0.03)
    return runs, paired_stats(runs).stats


def test_tests_agree_with_scipy(known_effect):
    runs, stats = known_effect
    for pair_id in ("paper-imr", "paper-utr"):
        for metric in ("energy_kwh", "peak_rss_mb"):
            s, c = _arrays(runs, pair_id, metric)
            rows = stats[(stats["pair_id"] == pair_id) & (stats["metric"] == metric)]
            t = rows[rows["test"] == "paired_t"].iloc[0]
            w = rows[rows["test"] == "wilcoxon"].iloc[0]
            ref_t = sps.ttest_rel(s, c)
            ref_w = sps.wilcoxon(s, c, zero_method="pratt")
            assert t["p_value"] == pytest.approx(ref_t.pvalue, rel=1e-12)
            assert t["statistic"] == pytest.approx(ref_t.statistic, rel=1e-12)
            assert w["p_value"] == pytest.approx(ref_w.pvalue, rel=1e-12)
            assert w["statistic"] == pytest.approx(ref_w.statistic)
            d = s - c
            assert t["effect_size"] == pytest.approx(d.mean() / d.std(ddof=1))
            assert t["shapiro_p"] == pytest.approx(sps.shapiro(d).pvalue)
            assert t["n"] == w["n"] == 12
            assert t["pct_change"] == pytest.approx(100 * (s.mean() - c.mean()) / c.mean())
            assert t["mean_smelly"] == pytest.approx(s.mean())
            assert t["median_clean"] == pytest.approx(np.median(c))


def test_ci_holds_the_true_effect_and_the_estimate(known_effect):
    _, stats = known_effect
    energy = stats[stats["metric"] == "energy_kwh"]
    assert len(energy) == 4
    for row in energy.itertuples():
        assert row.ci_low < 30.0 < row.ci_high
        assert row.ci_low <= row.pct_change <= row.ci_high
        assert row.status == "tested"


def test_holm_over_the_primary_family_only(known_effect):
    _, stats = known_effect
    primary = stats[stats["family"] == "primary"]
    # the pre-registered family: energy x paired t, one row per pair (x device x framework)
    assert set(primary["metric"]) == {"energy_kwh"} and set(primary["test"]) == {"paired_t"}
    assert len(primary) == 2
    expected = multipletests(primary["p_value"], method="holm")[1]
    np.testing.assert_allclose(primary["p_adj"], expected)
    exploratory = stats[stats["family"] == "exploratory"]
    assert exploratory["p_adj"].isna().all() and exploratory["p_value"].notna().all()
    assert set(exploratory["test"]) == {"paired_t", "wilcoxon"}
    assert exploratory["metric"].nunique() == 4   # gpu_energy_kwh is all 0 on cpu: skipped
    assert "emissions_kg" not in set(stats["metric"])   # derived, never tested


def test_power_and_pairs_needed_match_statsmodels():
    for es, n in ((0.5, 10), (0.3, 40), (1.2, 5)):
        assert t_power(es, n, 0.05) == pytest.approx(
            TTestPower().power(effect_size=es, nobs=n, alpha=0.05))
    for es in (0.2, 0.5, 1.0):
        n = pairs_needed(es, 0.05)
        assert n == math.ceil(TTestPower().solve_power(effect_size=es, alpha=0.05, power=0.8))
    # statsmodels returns NaN here; the power is in fact ~1
    assert t_power(3.0, 10, 0.05) > 0.999


def test_n_needed_in_rows(known_effect):
    runs, stats = known_effect
    s, c = _arrays(runs, "paper-imr", "energy_kwh")
    d = s - c
    t = stats[(stats["pair_id"] == "paper-imr") & (stats["metric"] == "energy_kwh")
              & (stats["test"] == "paired_t")].iloc[0]
    target = 0.05 * c.mean() / d.std(ddof=1)
    # the primary family has 2 tests: power and n_needed at the alpha Holm gives, 0.05 / 2
    assert t["family"] == "primary" and t["power_alpha"] == pytest.approx(0.025)
    assert t["n_needed"] == pairs_needed(target, 0.025)
    assert "power" not in stats.columns  # issue 18: no post-hoc power
    w = stats[(stats["pair_id"] == "paper-imr") & (stats["metric"] == "energy_kwh")
              & (stats["test"] == "wilcoxon")].iloc[0]
    assert w["family"] == "exploratory" and w["power_alpha"] == pytest.approx(0.05)


def test_wilcoxon_worked_example_with_ties_and_a_zero():
    # d = 0, 1, -1, 2, 2, 3. Pratt: rank |d| with the zero (ranks 1, 2.5, 2.5, 4.5, 4.5, 6),
    # drop the zero's rank: R+ = 2.5 + 4.5 + 4.5 + 6 = 17.5, R- = 2.5; T = min = 2.5.
    # Under H0 the 5 nonzero signs are fair coins: P(R- <= 2.5) = (1 + 2) / 32, two-sided 6/32.
    # Rank-biserial (R+ - R-) / (R+ + R-) = 15 / 20 = 0.75.
    d = np.array([0.0, 1, -1, 2, 2, 3])
    clean = np.full(6, 10.0)
    rows = compare_pair("p", "IMR", "cpu", "energy_kwh", clean + d, clean)
    w = next(r for r in rows if r["test"] == "wilcoxon")
    assert w["status"] == "tested"
    assert w["statistic"] == pytest.approx(2.5)
    assert w["p_value"] == pytest.approx(6 / 32)
    assert w["effect_size"] == pytest.approx(0.75)
    assert "1 zero difference" in w["note"]


def test_wilcoxon_worked_example_with_ties_only():
    # |d| = 1, 1, 2, 2, 1, 3 -> ranks 2, 2, 4.5, 4.5, 2, 6; R- = 2 (the -1), R+ = 19.
    # P(R- <= 2) = (1 + 3) / 64, two-sided 8/64; r = 17 / 21.
    d = np.array([1.0, 1, 2, 2, -1, 3])
    assert rank_biserial(d) == pytest.approx(17 / 21)
    rows = compare_pair("p", "IMR", "cpu", "x", 5 + d, np.full(6, 5.0))
    w = next(r for r in rows if r["test"] == "wilcoxon")
    assert w["statistic"] == pytest.approx(2.0)
    assert w["p_value"] == pytest.approx(8 / 64)


def test_wilcoxon_too_few_pairs_has_zero_power():
    rows = compare_pair("p", "IMR", "cpu", "x", np.array([2.0, 3.1, 4.3, 5.2]),
                        np.array([1.0, 2.0, 3.0, 4.0]))
    w = next(r for r in rows if r["test"] == "wilcoxon")
    assert "power" not in w
    assert w["n_needed"] >= 6
    assert "cannot fall below 0.125" in w["note"]


def test_one_complete_pair_is_insufficient_data():
    runs = synthetic_runs(n=1)
    result = paired_stats(runs)
    energy = result.stats[result.stats["metric"] == "energy_kwh"]
    assert set(energy["status"]) == {"insufficient data"}
    assert energy["p_value"].isna().all() and energy["p_adj"].isna().all()
    assert energy["pct_change"].notna().all()
    assert all("1 complete rep(s) < min_complete_reps 3" in n for n in energy["note"])
    assert (result.summary.loc[result.summary["metric"] == "energy_kwh", "pairs_tested"] == 0).all()


def test_insufficient_reps_after_failures_lists_the_failures():
    runs = synthetic_runs(n=3)
    crashed = (runs["pair_id"] == "paper-imr") & (runs["rep"] == 1) & (runs["variant"] == "clean")
    runs.loc[crashed, ["status", "error"]] = ["crashed", "RuntimeError: boom"]
    result = paired_stats(runs)
    imr = result.stats[(result.stats["pair_id"] == "paper-imr")]
    assert set(imr["status"]) == {"insufficient data"}
    assert (imr["n"] == 2).all() and (imr["n_failed"] == 1).all()
    utr = result.stats[(result.stats["pair_id"] == "paper-utr")]
    assert set(utr["status"]) == {"tested"}
    failures = result.failures[result.failures["status"] != "absent"]
    assert len(failures) == 1
    row = failures.iloc[0]
    assert (row["pair_id"], row["variant"], row["rep"], row["status"]) == (
        "paper-imr", "clean", 1, "crashed")
    assert row["error"] == "RuntimeError: boom"
    assert "rep 1 excluded" in row["consequence"]


def test_missing_partner_row_is_listed():
    runs = synthetic_runs(n=4)
    runs = runs[~((runs["pair_id"] == "paper-utr") & (runs["rep"] == 2)
                  & (runs["variant"] == "smelly"))]
    result = paired_stats(runs)
    missing = result.failures[result.failures["status"] == "missing"]
    assert missing[["pair_id", "variant", "rep"]].values.tolist() == [["paper-utr", "smelly", 2]]
    assert (result.stats.loc[result.stats["pair_id"] == "paper-utr", "n"] == 3).all()


def test_all_runs_failed():
    runs = synthetic_runs(n=3)
    runs["status"] = "timeout"
    runs["energy_kwh"] = np.nan
    result = paired_stats(runs)
    assert len(result.stats) > 0
    assert set(result.stats["status"]) == {"all failed"}
    assert all(n.startswith("all 6 runs failed (6 timeout)") for n in result.stats["note"])
    assert result.stats["p_value"].isna().all()
    assert len(result.failures) == len(runs)
    energy = result.summary[result.summary["metric"] == "energy_kwh"]
    assert energy["note"].str.contains("all failed").all()


def test_constant_data():
    # identical variants: nothing to test, % change 0, no NaN-filled rows without a status
    runs = synthetic_runs(n=5, effect=1.0, noise=0.0)
    result = paired_stats(runs, metrics=["energy_kwh"])
    assert set(result.stats["status"]) == {"constant"}
    assert (result.stats["pct_change"] == 0).all()
    assert result.stats["note"].str.contains("equal in every complete rep").all()
    assert result.stats["p_adj"].isna().all()


def test_constant_nonzero_difference():
    rows = compare_pair("p", "UTR", "cpu", "x", np.full(5, 1.5), np.full(5, 1.0))
    t, w = rows
    assert t["status"] == "constant" and "zero variance" in t["note"]
    assert w["status"] == "tested"
    assert w["p_value"] == pytest.approx(sps.wilcoxon(np.full(5, 0.5)).pvalue)
    assert w["effect_size"] == 1.0
    assert t["pct_change"] == pytest.approx(50.0)
    assert t["ci_low"] == t["ci_high"] == pytest.approx(50.0)


def test_constant_difference_up_to_rounding():
    # the same difference written through CSV differs in its last bits: still constant
    clean = np.array([1.1e-5, 2.3e-5, 3.7e-5, 4.1e-5, 5.9e-5])
    smelly = clean + 1e-6
    assert np.ptp(smelly - clean) > 0     # not exactly equal in floating point
    t, _ = compare_pair("p", "UTR", "cpu", "x", smelly, clean)
    assert t["status"] == "constant" and "zero variance" in t["note"]
    same, _ = compare_pair("p", "UTR", "cpu", "x", clean * (1 + 1e-13), clean)
    assert same["status"] == "constant" and "equal in every complete rep" in same["note"]


def test_metric_absent_or_not_measured_is_skipped():
    runs = synthetic_runs(n=4).drop(columns=["peak_rss_mb"])
    runs["peak_rss_mb"] = ""            # present but empty
    result = paired_stats(runs)
    assert not result.stats["metric"].isin(["gpu_energy_kwh", "peak_rss_mb"]).any()
    reasons = dict(zip(result.skipped["metric"], result.skipped["reason"], strict=True))
    assert "0 in every ok run" in reasons["gpu_energy_kwh"]
    assert "no values" in reasons["peak_rss_mb"]
    notes = result.summary.set_index(["smell", "metric"])["note"]
    assert notes[("IMR", "gpu_energy_kwh")].startswith("skipped:")
    absent = paired_stats(synthetic_runs(n=4), metrics=["energy_kwh", "rapl_energy_kwh"])
    assert "column absent" in absent.skipped.iloc[0]["reason"]


def test_ci_is_the_delta_method_t_interval():
    rng = np.random.default_rng(3)
    clean = rng.lognormal(0, 0.2, 7)
    smelly = 1.3 * rng.lognormal(0, 0.2, 7)
    t, w = compare_pair("p", "IMR", "cpu", "x", smelly, clean)
    r = smelly.mean() / clean.mean()
    se = np.std(smelly - r * clean, ddof=1) / (np.sqrt(7) * clean.mean())
    q = sps.t.ppf(0.975, 6)
    assert t["ci_low"] == pytest.approx(100 * (r - q * se - 1))
    assert t["ci_high"] == pytest.approx(100 * (r + q * se - 1))
    assert t["ci_reliable"] and w["ci_low"] == t["ci_low"]
    assert t["log_ratio"] == pytest.approx(np.log(r))
    assert t["log_ratio_se"] == pytest.approx(se / r)


def test_ci_below_min_ci_n_is_marked_unreliable():
    rng = np.random.default_rng(4)
    clean = rng.lognormal(0, 0.2, 4)
    t, _ = compare_pair("p", "IMR", "cpu", "x", clean * 1.2, clean * rng.lognormal(0, .1, 4),
                        min_ci_n=5)
    assert t["ci_reliable"] is False and "CI unreliable: 4 reps < min_ci_n 5" in t["note"]
    t5, _ = compare_pair("p", "IMR", "cpu", "x", clean * 1.2, clean, min_ci_n=4)
    assert t5["ci_reliable"] is True


# ----------------------------------------------------------------------------- bad input


def _write(tmp_path: Path, runs: pd.DataFrame) -> Path:
    path = tmp_path / "runs.csv"
    runs.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.drop(columns=["energy_kwh"]),
     r"runs\.csv: line 1: missing column\(s\) energy_kwh"),
    (lambda r: r.assign(variant=r["variant"].where(r.index != 3, "leaky")),
     r"runs\.csv: line 5: unknown variant 'leaky'"),
    (lambda r: r.assign(energy_kwh=r["energy_kwh"].astype(object).where(r.index != 6, "12kWh")),
     r"runs\.csv: line 8: energy_kwh '12kWh' is not a number"),
    (lambda r: r.assign(rep=r["rep"].astype(object).where(r.index != 2, "two")),
     r"runs\.csv: line 4: rep 'two' is not a non-negative integer"),
    (lambda r: pd.concat([r, r.iloc[[4]]], ignore_index=True),
     r"runs\.csv: line 10: duplicate run \(pair_id=paper-imr, device=cpu, framework=keras3, "
     r"variant=clean, rep=2\); "
     r"first seen at .*runs\.csv: line 6"),
    (lambda r: r.assign(smell=r["smell"].where(r.index != 1, "UTR")),
     r"runs\.csv: line 3: pair 'paper-imr' has smell 'UTR' here but 'IMR'"),
    (lambda r: r.assign(pair_id=r["pair_id"].where(r.index != 0, "")),
     r"runs\.csv: line 2: empty pair_id"),
])
def test_bad_runs_file_names_the_line(tmp_path, mutate, message):
    runs = mutate(synthetic_runs(n=4, pairs=(("paper-imr", "IMR"),)))
    path = _write(tmp_path, runs)
    with pytest.raises(LeakwattError, match=message):
        analyze([path], tmp_path / "out", AnalyzeParams(bootstrap_resamples=200))
    assert not (tmp_path / "out").exists()


def test_duplicate_across_two_files(tmp_path):
    runs = synthetic_runs(n=3, pairs=(("paper-imr", "IMR"),))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    runs.to_csv(tmp_path / "a" / "runs.csv", index=False)
    runs.iloc[[0]].to_csv(tmp_path / "b" / "runs.csv", index=False)
    message = r"b/runs\.csv: line 2: duplicate run .*first seen at .*a/runs\.csv: line 2"
    with pytest.raises(LeakwattError, match=message):
        analyze([tmp_path / "a" / "runs.csv", tmp_path / "b" / "runs.csv"], tmp_path / "out",
                AnalyzeParams(bootstrap_resamples=200))


def test_validate_runs_on_a_frame_names_the_row():
    runs = synthetic_runs(n=2)
    runs.loc[1, "variant"] = "dirty"
    with pytest.raises(LeakwattError, match=r"^mine\.csv: line 3: unknown variant 'dirty'"):
        validate_runs(runs, source="mine.csv")


def test_missing_runs_file(tmp_path):
    with pytest.raises(LeakwattError, match="runs file not found"):
        analyze([tmp_path / "nope.csv"], tmp_path / "out", AnalyzeParams())


# ----------------------------------------------------------------------------- the stage


def test_analyze_writes_the_contract_files(tmp_path):
    runs = synthetic_runs(n=6, device="cpu")
    gpu = synthetic_runs(n=6, device="gpu", seed=3)
    gpu["gpu_energy_kwh"] = gpu["energy_kwh"] * 0.7
    gpu.loc[0, "status"] = "oom"
    (tmp_path / "cpu").mkdir()
    (tmp_path / "gpu").mkdir()
    runs.drop(columns=["scale", "error"]).to_csv(tmp_path / "cpu" / "runs.csv", index=False)
    gpu.assign(rss_growth_mb_per_s=np.where(gpu["variant"] == "smelly", 2.0, -0.1)
               + np.random.default_rng(1).normal(0, 0.05, len(gpu))).to_csv(
        tmp_path / "gpu" / "runs.csv", index=False)
    pd.DataFrame({"device": ["cpu", "gpu", "cpu"], "status": ["ok", "ok", "crashed"],
                  "duration_s": [100.0, 100.0, 5.0], "cpu_power_source": ["rapl"] * 3,
                  "gpu_power_source": ["", "nvml", ""],
                  "energy_kwh": [0.0001, 0.0002, 0.5]}).to_csv(tmp_path / "idle.csv", index=False)
    out = tmp_path / "analysis"
    result = analyze([tmp_path / "cpu" / "runs.csv", tmp_path / "gpu" / "runs.csv"], out,
                     AnalyzeParams(bootstrap_resamples=500), idle_paths=[tmp_path / "idle.csv"])
    stats = pd.read_csv(out / "stats.csv")
    assert list(stats.columns) == list(STATS.columns)
    STATS.validate(stats, "stats.csv")
    FAILURES.validate(pd.read_csv(out / "failures.csv"), "failures.csv")
    assert list(pd.read_csv(out / "summary.csv").columns) == list(SUMMARY.columns)
    failures = pd.read_csv(out / "failures.csv")
    assert list(failures.columns) == list(FAILURES.columns)
    runs_failed = failures[failures["status"] == "oom"]
    assert len(runs_failed) == 1
    assert runs_failed.iloc[0]["source"].endswith("gpu/runs.csv")
    assert runs_failed.iloc[0]["line"] == 2
    # gpu_energy_kwh is 0 in every cpu run and the cpu file has no RSS growth column: each is
    # listed as absent on cpu, not silently dropped
    absent = failures[failures["status"] == "absent"]
    assert sorted(zip(absent["device"], absent["metric"], strict=True)) == [
        ("cpu", "gpu_energy_kwh"), ("cpu", "rss_growth_mb_per_s")]
    metrics = set(zip(stats["device"], stats["metric"], strict=True))
    assert ("gpu", "gpu_energy_kwh") in metrics and ("cpu", "gpu_energy_kwh") not in metrics
    assert ("gpu", "rss_growth_mb_per_s") in metrics
    assert ("cpu", "net_energy_kwh") in metrics
    net = result.stats[(result.stats["metric"] == "net_energy_kwh")
                       & (result.stats["device"] == "cpu")].iloc[0]
    gross = result.stats[(result.stats["metric"] == "energy_kwh")
                         & (result.stats["device"] == "cpu")].iloc[0]
    idle_kwh_per_s = 0.0001 / 100
    assert net["mean_clean"] == pytest.approx(
        gross["mean_clean"] - idle_kwh_per_s * result.stats[
            (result.stats["metric"] == "duration_s") & (result.stats["device"] == "cpu")
        ].iloc[0]["mean_clean"])
    # the file holds no literal NaN text; undefined values are empty cells
    text = (out / "stats.csv").read_text()
    assert "nan" not in text.lower().replace("net_energy", "")
    assert len(stats) == len(result.stats)
