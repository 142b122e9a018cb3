"""Paired statistics over long-format runs: one tidy row per pair x device x metric x test.

The unit of comparison ("pair") is ``(pair_id, device)``: the smelly and the clean program of one
reproduction measured on one device. Repetition ``rep`` of the smelly variant is paired with
repetition ``rep`` of the clean variant; only *complete* repetitions (both runs ``ok`` and both
values present) enter the statistics, and every run left out is listed in ``failures``.

Per pair and metric (pingouin-style, delegating to scipy/statsmodels):

* means and medians per variant; ``pct_change`` = 100 x (mean smelly - mean clean) / mean clean
  with a seeded paired percentile bootstrap CI (``scipy.stats.bootstrap(paired=True)``);
* Shapiro-Wilk on the paired differences (``scipy.stats.shapiro``);
* a paired t-test (``scipy.stats.ttest_rel``, effect size Cohen's d_z = mean(d) / sd(d));
* a Wilcoxon signed-rank test (``scipy.stats.wilcoxon`` with ``zero_method="pratt"``: zero
  differences take part in the ranking and their ranks are then dropped, Pratt 1959, which is
  more conservative than discarding them; with ties or zeros and n <= 13 scipy computes the
  p-value by exhaustive permutation), effect size the matched-pairs rank-biserial correlation
  (R+ - R-) / (R+ + R-) on the same ranks;
* Holm-adjusted p-values over the whole family of tests (every ``tested`` row of the table,
  both tests, all metrics and pairs: ``statsmodels.stats.multitest.multipletests``);
* achieved power of the t-test at the observed d_z and the number of pairs needed to detect a
  ``detectable_pct`` % difference at the observed sd of the differences with 80 % power
  (noncentral t); the Wilcoxon rows use the same numbers scaled by the
  test's asymptotic relative efficiency under normality, 3/pi (Lehmann), an approximation;
  below the fewest pairs at which the exact two-sided p can reach alpha (2 / 2**n <= alpha,
  6 pairs at alpha = 0.05) the Wilcoxon power is 0 and ``n_needed`` at least that number.
  (Power is computed from scipy's noncentral t, the formula of statsmodels' ``TTestPower``,
  whose own implementation returns NaN for large effects.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from leakwatt.analysis.paired import compare_pair, holm
from leakwatt.analysis.runs import OPTIONAL_METRICS, load_runs, validate_runs
from leakwatt.common import atomic_write_csv
from leakwatt.contracts import FAILURES, STATS, SUMMARY, VARIANTS

if TYPE_CHECKING:
    from leakwatt.params import AnalyzeParams

DEFAULT_METRICS = (
    "energy_kwh", "emissions_kg", "duration_s", "cpu_energy_kwh", "gpu_energy_kwh", "peak_rss_mb",
)
STATS_COLUMNS = list(STATS.columns)
SUMMARY_COLUMNS = list(SUMMARY.columns)
FAILURES_COLUMNS = list(FAILURES.columns)
SKIPPED_COLUMNS = ["device", "metric", "reason"]


@dataclass
class StatsResult:
    """Tidy outputs of :func:`paired_stats` (``stats.csv``, ``failures.csv``, ``summary.csv``)."""

    stats: pd.DataFrame
    failures: pd.DataFrame
    summary: pd.DataFrame
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SKIPPED_COLUMNS))



def list_failures(runs: pd.DataFrame) -> pd.DataFrame:
    """Every run that is not ``ok``, plus a ``missing`` row for a rep whose partner is absent."""
    rows: list[dict[str, Any]] = []
    for (pair_id, device), group in runs.groupby(["pair_id", "device"], sort=True):
        smell = group["smell"].iloc[0]
        by_variant = {v: group[group["variant"] == v].set_index("rep") for v in VARIANTS}
        for _, run in group[group["status"] != "ok"].iterrows():
            other = "clean" if run["variant"] == "smelly" else "smelly"
            partner = by_variant[other]
            partner_status = (partner.at[run["rep"], "status"] if run["rep"] in partner.index
                              else "absent")
            rows.append({
                "pair_id": pair_id, "smell": smell, "device": device, "variant": run["variant"],
                "rep": int(run["rep"]), "status": run["status"],
                "error": run.get("error", "") if isinstance(run.get("error", ""), str) else "",
                "consequence": f"rep {run['rep']} excluded ({other} run {partner_status})",
                "source": run.get("_source", ""), "line": run.get("_line", ""),
            })
        for variant in VARIANTS:
            other = "clean" if variant == "smelly" else "smelly"
            mine, theirs = by_variant[variant], by_variant[other]
            for rep in sorted(set(theirs.index) - set(mine.index)):
                rows.append({
                    "pair_id": pair_id, "smell": smell, "device": device, "variant": variant,
                    "rep": int(rep), "status": "missing", "error": "no row in the runs file",
                    "consequence": (f"rep {rep} excluded ({other} run "
                                    f"{theirs.at[rep, 'status']}, {variant} run absent)"),
                    "source": theirs.at[rep, "_source"] if "_source" in theirs else "",
                    "line": "",
                })
    frame = pd.DataFrame(rows, columns=FAILURES_COLUMNS)
    return frame.sort_values(["pair_id", "device", "rep", "variant"], kind="stable",
                             ignore_index=True)


def _available(runs: pd.DataFrame, device: str, metric: str) -> str:
    """'' when ``metric`` can be compared on ``device``, else the reason it is skipped.

    A metric is skipped when its column is absent, or when the device has ok runs and none of
    them holds a nonzero value (CodeCarbon writes 0 for a GPU it does not see). When the device
    has no ok run at all, nothing is skipped: every pair is then reported as ``all failed``.
    """
    if metric not in runs.columns:
        return "column absent from the runs file"
    ok = (runs["device"] == device) & (runs["status"] == "ok")
    if not ok.any():
        return ""
    values = pd.to_numeric(runs.loc[ok, metric], errors="coerce")
    if values.isna().all():
        return "no values in any ok run on this device"
    if (values.fillna(0) == 0).all():
        return "0 in every ok run on this device (not measured here)"
    return ""


def paired_stats(runs: pd.DataFrame,
                 metrics: Sequence[str] = DEFAULT_METRICS,
                 alpha: float = 0.05, n_boot: int = 10000, seed: int = 2606,
                 min_complete_reps: int = 3, detectable_pct: float = 5.0) -> StatsResult:
    """Paired tests for every ``(pair_id, device)`` x metric of a long-format runs frame."""
    if "_line" not in runs.columns or "_source" not in runs.columns:
        runs = validate_runs(runs)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    devices = sorted(runs["device"].unique())
    skip_reason = {(d, m): _available(runs, d, m) for d in devices for m in metrics}
    for (device, metric), reason in skip_reason.items():
        if reason:
            skipped.append({"device": device, "metric": metric, "reason": reason})

    for (pair_id, device), group in runs.groupby(["pair_id", "device"], sort=True):
        smell = str(group["smell"].iloc[0])
        ok = group[group["status"] == "ok"]
        smelly = ok[ok["variant"] == "smelly"].set_index("rep")
        clean = ok[ok["variant"] == "clean"].set_index("rep")
        reps = sorted(set(smelly.index) & set(clean.index))
        n_failed = int((group["status"] != "ok").sum())
        for metric in metrics:
            if skip_reason[(device, metric)]:
                continue
            s = smelly.loc[reps, metric].to_numpy(float) if reps else np.array([])
            c = clean.loc[reps, metric].to_numpy(float) if reps else np.array([])
            keep = np.isfinite(s) & np.isfinite(c)
            why = _why(group, reps, int((~keep).sum()), metric)
            rows.extend(compare_pair(
                str(pair_id), smell, str(device), metric, s[keep], c[keep], alpha=alpha,
                n_boot=n_boot, seed=seed, min_complete_reps=min_complete_reps,
                detectable_pct=detectable_pct, n_failed=n_failed, why_empty=why))

    stats = pd.DataFrame(rows, columns=STATS_COLUMNS)
    stats["p_adj"] = holm(stats)
    stats["note"] = stats["note"].fillna("")
    for col in ("n", "n_failed"):
        stats[col] = stats[col].astype(int)
    failures = list_failures(runs)
    skipped_df = pd.DataFrame(skipped, columns=SKIPPED_COLUMNS)
    summary = summarize(stats, alpha=alpha, runs=runs, skipped=skipped_df)
    return StatsResult(stats=stats, failures=failures, summary=summary, skipped=skipped_df)


def _why(group: pd.DataFrame, reps: list[int], no_value: int, metric: str) -> str:
    statuses = group["status"].value_counts()
    failed = {k: int(v) for k, v in statuses.items() if k != "ok"}
    described = ", ".join(f"{v} {k}" for k, v in sorted(failed.items()))
    if not (group["status"] == "ok").any():
        return f"all {len(group)} runs failed ({described})"
    parts = []
    if failed:
        parts.append(f"{sum(failed.values())} run(s) not ok ({described})")
    if not reps:
        parts.append("no rep has both variants ok")
    if no_value:
        parts.append(f"{no_value} complete rep(s) without a {metric} value")
    return "; ".join(parts)


def summarize(stats: pd.DataFrame, alpha: float = 0.05, runs: pd.DataFrame | None = None,
              skipped: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per smell x device x metric: pairs, median/min/max % change, pairs significant (p_adj)."""
    rows: list[dict[str, Any]] = []
    for (smell, device, metric), group in stats.groupby(["smell", "device", "metric"], sort=True):
        per_pair = group.drop_duplicates("pair_id")
        usable = per_pair[~per_pair["status"].isin(["insufficient data", "all failed"])]
        pct = usable["pct_change"].dropna()
        tested = group[group["status"] == "tested"]
        sig = tested[tested["p_adj"] < alpha]
        left_out = per_pair[per_pair["status"].isin(["insufficient data", "all failed"])]
        note = ""
        if len(left_out):
            note = "not tested: " + ", ".join(
                f"{r.pair_id} ({r.status})" for r in left_out.itertuples())
        rows.append({
            "smell": smell, "device": device, "metric": metric, "pairs": len(per_pair),
            "pairs_tested": int(tested["pair_id"].nunique()),
            "median_pct_change": float(pct.median()) if len(pct) else math.nan,
            "min_pct_change": float(pct.min()) if len(pct) else math.nan,
            "max_pct_change": float(pct.max()) if len(pct) else math.nan,
            "pairs_increase": int((pct > 0).sum()),
            "significant_wilcoxon": int((sig["test"] == "wilcoxon").sum()),
            "significant_paired_t": int((sig["test"] == "paired_t").sum()),
            "note": note,
        })
    if runs is not None and skipped is not None and len(skipped):
        for item in skipped.itertuples():
            for smell in sorted(runs.loc[runs["device"] == item.device, "smell"].unique()):
                rows.append({
                    "smell": smell, "device": item.device, "metric": item.metric,
                    "pairs": int(runs.loc[(runs["device"] == item.device)
                                          & (runs["smell"] == smell), "pair_id"].nunique()),
                    "pairs_tested": 0, "pairs_increase": 0, "significant_wilcoxon": 0,
                    "significant_paired_t": 0, "note": f"skipped: {item.reason}",
                })
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return summary.sort_values(["smell", "device", "metric"], kind="stable", ignore_index=True)


def analysis_metrics(runs: pd.DataFrame, metrics: Sequence[str] = DEFAULT_METRICS) -> list[str]:
    """``metrics`` plus the optional columns present (net energy, RSS growth, second meter)."""
    extra = [m for m in ("net_energy_kwh", *OPTIONAL_METRICS) if m in runs.columns]
    return list(metrics) + [m for m in extra if m not in metrics]


def analyze(runs_paths: Sequence[Path], out_dir: Path, params: AnalyzeParams,
            idle_paths: Sequence[Path] = ()) -> StatsResult:
    """The ``analyze`` stage: write ``stats.csv``, ``summary.csv`` and ``failures.csv``."""
    runs = load_runs(runs_paths, idle_paths)
    result = paired_stats(
        runs, metrics=analysis_metrics(runs), alpha=params.alpha,
        n_boot=params.bootstrap_resamples, seed=params.seed,
        min_complete_reps=params.min_complete_reps, detectable_pct=params.detectable_pct)
    write_result(result, Path(out_dir))
    return result


def write_result(result: StatsResult, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    atomic_write_csv(out_dir / "stats.csv", result.stats.copy(), columns=STATS_COLUMNS)
    atomic_write_csv(out_dir / "summary.csv", result.summary.copy(), columns=SUMMARY_COLUMNS)
    atomic_write_csv(out_dir / "failures.csv", result.failures.copy(), columns=FAILURES_COLUMNS)


__all__ = [
    "DEFAULT_METRICS", "FAILURES_COLUMNS", "STATS_COLUMNS", "SUMMARY_COLUMNS", "StatsResult",
    "analysis_metrics", "analyze", "list_failures", "paired_stats", "summarize", "write_result",
]
