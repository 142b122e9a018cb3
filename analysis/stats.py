"""Paired statistics over long-format runs: one tidy row per pair x device x framework x metric x test.

The unit of analysis is ``(pair_id, device, framework)``: the smelly and the clean program of one
reproduction measured on one device under one Keras level (runs without a ``framework`` column
are Keras 3). Repetition ``rep`` of the smelly variant is paired with repetition ``rep`` of the
clean variant; only *complete* repetitions (both runs ``ok`` and both values present) enter the
statistics, and every run or value left out is listed in ``failures``.

Per unit and metric (pingouin-style, delegating to scipy/statsmodels):

* means and medians per variant; ``pct_change`` = 100 x (mean smelly - mean clean) / mean clean
  with a t-interval by the delta method on the ratio of means (``paired.ratio_t_ci``; its
  coverage is checked by ``benchmarks/ci_coverage.py``); below ``min_ci_n`` repetitions the CI is
  marked ``ci_reliable`` = False;
* Shapiro-Wilk on the paired differences (``scipy.stats.shapiro``);
* a paired t-test (``scipy.stats.ttest_rel``, effect size Cohen's d_z = mean(d) / sd(d));
* a Wilcoxon signed-rank test (``scipy.stats.wilcoxon`` with ``zero_method="pratt"``: zero
  differences take part in the ranking and their ranks are then dropped, Pratt 1959, which is
  more conservative than discarding them; with ties or zeros and n <= 13 scipy computes the
  p-value by exhaustive permutation), effect size the matched-pairs rank-biserial correlation
  (R+ - R-) / (R+ + R-) on the same ranks;
* ``family``: the pre-registered primary analysis (``analyze.primary``: one metric, one test) is
  ``primary`` and Holm-adjusted as one family over every unit
  (``statsmodels.stats.multitest.multipletests``); every other row is ``exploratory`` and keeps
  its unadjusted p-value only (``p_adj`` empty). ``emissions_kg`` is energy x a carbon
  intensity, so it is derived, not tested;
* achieved power of the t-test at the observed d_z and the number of pairs needed to detect a
  ``detectable_pct`` % difference at the observed sd of the differences with 80 % power
  (noncentral t), at ``power_alpha``: alpha / m for the m primary tests (the alpha Holm gives
  the smallest p; a conservative bound) and alpha for exploratory rows; the Wilcoxon rows use
  the same numbers scaled by the test's asymptotic relative efficiency under normality, 3/pi
  (Lehmann), an approximation; below the fewest pairs at which the exact two-sided p can reach
  that alpha (2 / 2**n <= alpha) the Wilcoxon power is 0 and ``n_needed`` at least that number.
  (Power is computed from scipy's noncentral t, the formula of statsmodels' ``TTestPower``,
  whose own implementation returns NaN for large effects.)

The positive controls (``controls.csv``) say per unit whether the leak manifested: the growth of
the program's own leak count (``leak_count_last - leak_count_first``) in the smelly runs against
the clean runs of the same repetitions, with a paired t-interval.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from leakwatt.analysis.paired import compare_pair, holm
from leakwatt.analysis.runs import (
    OPTIONAL_METRICS,
    foreign_load,
    load_runs,
    run_kind,
    validate_runs,
)
from leakwatt.common import LeakwattError, atomic_write_csv
from leakwatt.contracts import CONTROLS, FAILURES, STATS, SUMMARY, VARIANTS

if TYPE_CHECKING:
    from leakwatt.params import AnalyzeParams

#: the metrics compared by default. ``emissions_kg`` is not among them: it is energy x a
#: carbon intensity, so testing it again would only double the family (it is reported derived).
DEFAULT_METRICS = (
    "energy_kwh", "duration_s", "cpu_energy_kwh", "gpu_energy_kwh", "peak_rss_mb",
)
DERIVED_METRICS = ("emissions_kg",)
PRIMARY_METRIC = "energy_kwh"
PRIMARY_TEST = "paired_t"
UNIT = ["pair_id", "device", "framework"]
#: the smell of an A/A cell (the clean program as both variants; docs/analysis.md)
AA_SMELL = "AA"
STATS_COLUMNS = list(STATS.columns)
SUMMARY_COLUMNS = list(SUMMARY.columns)
FAILURES_COLUMNS = list(FAILURES.columns)
CONTROLS_COLUMNS = list(CONTROLS.columns)
SKIPPED_COLUMNS = ["device", "metric", "reason"]


@dataclass
class StatsResult:
    """Tidy outputs of :func:`paired_stats` (stats, failures, summary and controls tables)."""

    stats: pd.DataFrame
    failures: pd.DataFrame
    summary: pd.DataFrame
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SKIPPED_COLUMNS))
    controls: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CONTROLS_COLUMNS))


def _units(runs: pd.DataFrame) -> pd.DataFrame:
    if "framework" not in runs.columns:
        runs = runs.assign(framework="keras3")
    return runs


def list_failures(runs: pd.DataFrame, metrics: Sequence[str] = (),
                  skipped: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every value left out of the statistics.

    A run that is not ``ok``; a ``missing`` row for a rep whose partner is absent; a ``blank``
    row for each ``ok`` run without a value of one of ``metrics`` (that rep is left out of that
    metric); an ``absent`` row (no pair, variant or rep) for each metric that ``skipped`` says
    has no value on a device.
    """
    runs = _units(runs)
    rows: list[dict[str, Any]] = []
    for (pair_id, device, framework), group in runs.groupby(UNIT, sort=True):
        smell = group["smell"].iloc[0]
        unit = {"pair_id": pair_id, "smell": smell, "device": device, "framework": framework}
        by_variant = {v: group[group["variant"] == v].set_index("rep") for v in VARIANTS}
        for _, run in group[group["status"] != "ok"].iterrows():
            other = "clean" if run["variant"] == "smelly" else "smelly"
            partner = by_variant[other]
            partner_status = (partner.at[run["rep"], "status"] if run["rep"] in partner.index
                              else "absent")
            rows.append({
                **unit, "variant": run["variant"], "rep": int(run["rep"]),
                "status": run["status"],
                "error": run.get("error", "") if isinstance(run.get("error", ""), str) else "",
                "consequence": f"rep {run['rep']} excluded ({other} run {partner_status})",
                "source": run.get("_source", ""), "line": run.get("_line", ""), "metric": "",
            })
        for variant in VARIANTS:
            other = "clean" if variant == "smelly" else "smelly"
            mine, theirs = by_variant[variant], by_variant[other]
            for rep in sorted(set(theirs.index) - set(mine.index)):
                rows.append({
                    **unit, "variant": variant, "rep": int(rep), "status": "missing",
                    "error": "no row in the runs file",
                    "consequence": (f"rep {rep} excluded ({other} run "
                                    f"{theirs.at[rep, 'status']}, {variant} run absent)"),
                    "source": theirs.at[rep, "_source"] if "_source" in theirs else "",
                    "line": "", "metric": "",
                })
        skip = set() if skipped is None else set(
            skipped.loc[skipped["device"] == device, "metric"])
        ok = group[group["status"] == "ok"]
        for metric in metrics:
            if metric in skip or metric not in ok.columns:
                continue
            blank = ok[pd.to_numeric(ok[metric], errors="coerce").isna()]
            for _, run in blank.iterrows():
                why = str(run.get(f"{metric.removesuffix('_kwh')}_why", "") or "")
                rows.append({
                    **unit, "variant": run["variant"], "rep": int(run["rep"]), "status": "blank",
                    "error": why or f"no {metric} value in an ok run",
                    "consequence": f"rep {run['rep']} excluded from {metric}",
                    "source": run.get("_source", ""), "line": run.get("_line", ""),
                    "metric": metric,
                })
    frame = pd.DataFrame(rows, columns=FAILURES_COLUMNS)
    frame = frame.sort_values(["pair_id", "device", "framework", "rep", "variant", "metric"],
                              kind="stable", ignore_index=True)
    if skipped is not None and len(skipped):
        absent = pd.DataFrame([{
            "pair_id": "", "smell": "", "device": r.device, "variant": "", "rep": "",
            "status": "absent", "error": r.reason, "framework": "", "metric": r.metric,
            "consequence": f"{r.metric} not compared on {r.device}", "source": "", "line": "",
        } for r in skipped.itertuples()], columns=FAILURES_COLUMNS)
        frame = pd.concat([frame, absent], ignore_index=True) if len(frame) else absent
    return frame


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
        why_col = f"{metric.removesuffix('_kwh')}_why"
        whys = sorted(set(runs.loc[ok, why_col].astype(str)) - {""}) if why_col in runs else []
        return "; ".join(whys) if whys else "no values in any ok run on this device"
    if (values.fillna(0) == 0).all():
        return "0 in every ok run on this device (not measured here)"
    return ""


def paired_stats(runs: pd.DataFrame,
                 metrics: Sequence[str] = DEFAULT_METRICS,
                 alpha: float = 0.05, min_complete_reps: int = 3, detectable_pct: float = 5.0,
                 min_ci_n: int = 5, primary_metric: str | Mapping[str, str] = PRIMARY_METRIC,
                 primary_test: str = PRIMARY_TEST,
                 foreign: pd.Series | None = None,
                 controls_from: pd.DataFrame | None = None) -> StatsResult:
    """Paired tests for every ``(pair_id, device, framework)`` x metric of a runs frame.

    ``foreign`` (optional, aligned with ``runs``) flags runs measured under foreign load; each
    row counts them in ``n_foreign_load``. ``primary_metric`` is one metric, or one per device
    (:func:`primary_metrics`). Rows of an A/A cell (smell ``AA``, the clean program against
    itself) are family ``calibration``: never in the primary family. ``controls_from``: the
    runs the positive controls are computed from (default ``runs``).
    """
    if "_line" not in runs.columns or "_source" not in runs.columns:
        runs = validate_runs(runs)
    runs = _units(runs)
    metrics = [m for m in metrics if m not in DERIVED_METRICS]
    primary_of = (dict(primary_metric) if isinstance(primary_metric, Mapping)
                  else {str(d): primary_metric for d in runs["device"].unique()})
    for metric in sorted(set(primary_of.values()), reverse=True):
        if metric not in metrics:
            metrics = [metric, *metrics]
    skipped: list[dict[str, Any]] = []
    devices = sorted(runs["device"].unique())
    skip_reason = {(d, m): _available(runs, d, m) for d in devices for m in metrics}
    for (device, metric), reason in skip_reason.items():
        if reason:
            skipped.append({"device": device, "metric": metric, "reason": reason})

    cells: list[tuple[dict[str, Any], np.ndarray, np.ndarray]] = []
    for (pair_id, device, framework), group in runs.groupby(UNIT, sort=True):
        smell = str(group["smell"].iloc[0])
        ok = group[group["status"] == "ok"]
        smelly = ok[ok["variant"] == "smelly"].set_index("rep")
        clean = ok[ok["variant"] == "clean"].set_index("rep")
        reps = sorted(set(smelly.index) & set(clean.index))
        n_failed = int((group["status"] != "ok").sum())
        n_foreign = int(foreign.loc[group.index].sum()) if foreign is not None else 0
        for metric in metrics:
            if skip_reason[(device, metric)]:
                if metric == primary_of.get(str(device)):  # "no data", never left out silently
                    cells.append(({"pair_id": str(pair_id), "smell": smell,
                                   "device": str(device), "framework": str(framework),
                                   "metric": metric, "n_failed": n_failed, "why_empty": "",
                                   "n_foreign_load": n_foreign,
                                   "no_data": skip_reason[(device, metric)]},
                                  np.array([]), np.array([])))
                continue
            s = smelly.loc[reps, metric].to_numpy(float) if reps else np.array([])
            c = clean.loc[reps, metric].to_numpy(float) if reps else np.array([])
            keep = np.isfinite(s) & np.isfinite(c)
            key = {"pair_id": str(pair_id), "smell": smell, "device": str(device),
                   "framework": str(framework), "metric": metric, "n_failed": n_failed,
                   "why_empty": _why(group, reps, int((~keep).sum()), metric),
                   "n_foreign_load": n_foreign}
            cells.append((key, s[keep], c[keep]))

    def rows_for(primary_alpha: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for key, s, c in cells:
            def compare(power_alpha: float, key: dict[str, Any] = key, s: np.ndarray = s,
                        c: np.ndarray = c) -> list[dict[str, Any]]:
                return compare_pair(
                    key["pair_id"], key["smell"], key["device"], key["metric"], s, c,
                    alpha=alpha, min_complete_reps=min_complete_reps,
                    detectable_pct=detectable_pct, n_failed=key["n_failed"],
                    why_empty=key["why_empty"], framework=key["framework"], min_ci_n=min_ci_n,
                    power_alpha=power_alpha)
            rows = compare(alpha)
            is_primary = (key["metric"] == primary_of.get(key["device"])
                          and key["smell"] != AA_SMELL)
            if key.get("no_data"):
                for row in rows:
                    row.update(status="no data", note=f"no data: {key['no_data']}")
            elif is_primary and primary_alpha != alpha:
                rows = [adj if adj["test"] == primary_test else row
                        for row, adj in zip(rows, compare(primary_alpha), strict=True)]
            for row in rows:
                row["n_foreign_load"] = key["n_foreign_load"]
            out.extend(rows)
        return out

    def table(primary_alpha: float) -> pd.DataFrame:
        frame = pd.DataFrame(rows_for(primary_alpha), columns=STATS_COLUMNS)
        primary = (frame["metric"] == frame["device"].map(primary_of)) & (
            frame["test"] == primary_test)
        frame["family"] = np.select([frame["smell"] == AA_SMELL, primary],
                                    ["calibration", "primary"], "exploratory")
        return frame

    stats = table(alpha)
    primary = stats["family"] == "primary"
    m = int((primary & (stats["status"] == "tested") & stats["p_value"].notna()).sum())
    if m > 1:  # power at the alpha the family gives each test (Holm's first step, alpha / m)
        stats = table(alpha / m)
        primary = stats["family"] == "primary"
    stats["p_adj"] = holm(stats, primary)
    stats["note"] = stats["note"].fillna("")
    for col in ("n", "n_failed", "n_foreign_load"):
        stats[col] = stats[col].astype(int)
    skipped_df = pd.DataFrame(skipped, columns=SKIPPED_COLUMNS)
    failures = list_failures(runs, metrics, skipped_df)
    summary = summarize(stats, alpha=alpha, runs=runs, skipped=skipped_df)
    controls = positive_controls(runs if controls_from is None else _units(controls_from), alpha)
    return StatsResult(stats=stats, failures=failures, summary=summary, skipped=skipped_df,
                       controls=controls)


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


def positive_controls(runs: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per unit: did the leak the pair is named after manifest? (``controls.csv``)

    Growth = ``leak_count_last - leak_count_first`` of each ok run. Over the complete
    repetitions, ``diff`` = mean(growth smelly - growth clean) with a paired t-interval at
    1 - alpha. ``manifested`` is ``yes`` when the interval lies above 0 (or, with zero variance,
    every smelly run grew more than its clean partner), ``no`` otherwise, and ``unknown`` when
    the runs carry no leak counts or fewer than 2 complete repetitions.
    """
    runs = _units(runs)
    rows: list[dict[str, Any]] = []
    has_counts = {"leak_count_first", "leak_count_last"} <= set(runs.columns)
    for (pair_id, device, framework), group in runs.groupby(UNIT, sort=True):
        row: dict[str, Any] = {"pair_id": pair_id, "smell": group["smell"].iloc[0],
                               "device": device, "framework": framework, "manifested": "unknown"}
        evidence = (sorted(set(group["leak_evidence"].astype(str)) - {"", "nan"})
                    if "leak_evidence" in group.columns else [])
        row["leak_evidence"] = "; ".join(evidence)
        if not has_counts:
            row["note"] = "runs carry no leak counts (leak_count_first/leak_count_last)"
            rows.append(row)
            continue
        ok = group[group["status"] == "ok"].copy()
        ok["growth"] = (pd.to_numeric(ok["leak_count_last"], errors="coerce")
                        - pd.to_numeric(ok["leak_count_first"], errors="coerce"))
        g = ok.pivot_table(index="rep", columns="variant", values="growth", aggfunc="first")
        g = g.dropna() if set(VARIANTS) <= set(g.columns) else g.iloc[0:0]
        n = len(g)
        row["n"] = n
        if n < 2:
            row["note"] = f"{n} complete rep(s) with leak counts in both variants"
            rows.append(row)
            continue
        d = (g["smelly"] - g["clean"]).to_numpy(float)
        mean, sd = float(d.mean()), float(d.std(ddof=1))
        half = float(sps.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
        row.update(growth_smelly=float(g["smelly"].mean()), growth_clean=float(g["clean"].mean()),
                   diff=mean, ci_low=mean - half, ci_high=mean + half)
        manifested = (mean - half > 0) if sd > 0 else bool((d > 0).all())
        row["manifested"] = "yes" if manifested else "no"
        row["note"] = ("" if manifested else
                       "the leak did not manifest: an energy difference here is the cost of the "
                       "code change, not of the leak")
        rows.append(row)
    return pd.DataFrame(rows, columns=CONTROLS_COLUMNS)


def summarize(stats: pd.DataFrame, alpha: float = 0.05, runs: pd.DataFrame | None = None,
              skipped: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per smell x device x framework x metric: pairs, median/min/max % change (descriptive:
    the pairs may estimate different things), pairs significant (primary p_adj only)."""
    rows: list[dict[str, Any]] = []
    if "framework" not in stats.columns:
        stats = stats.assign(framework="keras3")
    for (smell, device, framework, metric), group in stats.groupby(
            ["smell", "device", "framework", "metric"], sort=True):
        per_pair = group.drop_duplicates("pair_id")
        usable = per_pair[~per_pair["status"].isin(["insufficient data", "all failed", "no data"])]
        pct = usable["pct_change"].dropna()
        tested = group[group["status"] == "tested"]
        sig = tested[tested["p_adj"] < alpha]
        left_out = per_pair[per_pair["status"].isin(["insufficient data", "all failed", "no data"])]
        note = ""
        if len(left_out):
            note = "not tested: " + ", ".join(
                f"{r.pair_id} ({r.status})" for r in left_out.itertuples())
        rows.append({
            "smell": smell, "device": device, "framework": framework, "metric": metric,
            "pairs": len(per_pair),
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
        runs = _units(runs)
        for item in skipped.itertuples():
            on_device = runs[runs["device"] == item.device]
            for (smell, framework), part in on_device.groupby(["smell", "framework"], sort=True):
                rows.append({
                    "smell": smell, "device": item.device, "framework": framework,
                    "metric": item.metric, "pairs": int(part["pair_id"].nunique()),
                    "pairs_tested": 0, "pairs_increase": 0, "significant_wilcoxon": 0,
                    "significant_paired_t": 0, "note": f"skipped: {item.reason}",
                })
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return summary.sort_values(["smell", "device", "framework", "metric"], kind="stable",
                               ignore_index=True)


def analysis_metrics(runs: pd.DataFrame, metrics: Sequence[str] = DEFAULT_METRICS) -> list[str]:
    """``metrics`` plus the optional columns present (net energy, RSS growth, second meter)."""
    extra = [m for m in ("net_energy_kwh", *OPTIONAL_METRICS) if m in runs.columns]
    return list(metrics) + [m for m in extra if m not in metrics]


def core_counts(runs_paths: Sequence[Path]) -> dict[str, float]:
    """runs.csv path -> logical cores, from the environment.json written beside it."""
    cores: dict[str, float] = {}
    for path in runs_paths:
        env = Path(path).parent / "environment.json"
        try:
            with open(env, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            continue
        count = data.get("cpu_logical_cores") if isinstance(data, dict) else None
        if isinstance(count, int | float) and count > 0:
            cores[str(path)] = float(count)
    return cores


def analyze(runs_paths: Sequence[Path], out_dir: Path, params: AnalyzeParams,
            idle_paths: Sequence[Path] = (), cores: Mapping[str, float] | None = None
            ) -> StatsResult:
    """The ``analyze`` stage: write stats.csv, summary.csv, failures.csv and controls.csv."""
    runs = load_runs(runs_paths, idle_paths)
    kind = run_kind(runs)
    # issue 18: priced runs carry no instrumentation; the controls come from the control runs.
    # Runs from before (no `instrumented` value) are both, as they were measured.
    controls_from = runs[kind == "control"] if (kind == "control").any() else runs[kind == "legacy"]
    cost = runs[kind != "control"]
    cost = highest_dose(cost)
    metrics = analysis_metrics(cost)
    for key in ("metric", "metric_estimated"):
        name = getattr(params.primary, key)
        if name not in metrics or name not in cost.columns:
            raise LeakwattError(
                f"analyze.primary.{key}: {name!r} is not a metric of the runs table (valid: "
                f"{', '.join(m for m in metrics if m in cost.columns)})")
    foreign = foreign_load(cost, core_counts(runs_paths) if cores is None else cores,
                           params.max_load)
    result = paired_stats(
        cost, metrics=metrics, alpha=params.alpha,
        min_complete_reps=params.min_complete_reps, detectable_pct=params.detectable_pct,
        min_ci_n=params.min_ci_n, primary_metric=primary_metrics(cost, params.primary),
        primary_test=params.primary.test, foreign=foreign, controls_from=controls_from)
    result.stats = _with_dose(result.stats, cost)
    write_result(result, Path(out_dir))
    if is_dose_study(runs):
        from leakwatt.analysis.dose import dose_analysis

        dose_analysis(runs, Path(out_dir), params)
    return result


def is_dose_study(runs: pd.DataFrame) -> bool:
    """Runs of the dose study (issue 18): some unit measured at more than one dose."""
    if "rounds" not in runs.columns:
        return False
    measured = runs[run_kind(runs) == "measured"]
    if measured.empty:
        return False
    return bool((_units(measured).groupby(UNIT)["rounds"].nunique() > 1).any())


def highest_dose(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of each unit's highest dose (``rounds``), where a unit has several: stats.csv is
    the classic paired analysis of the dose with the most repetitions; the dose-response tables
    (:mod:`leakwatt.analysis.dose`) use every dose."""
    if "rounds" not in runs.columns or runs["rounds"].isna().all():
        return runs
    runs = _units(runs)
    top = runs.groupby(UNIT)["rounds"].transform("max")
    return runs[(runs["rounds"] == top) | top.isna()]


def _with_dose(stats: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    if "rounds" not in runs.columns or runs["rounds"].isna().all():
        return stats
    runs = _units(runs)
    per_unit = runs.groupby(UNIT).agg(rounds=("rounds", "max"), dose=("dose", "max")
                                      if "dose" in runs.columns else ("rounds", "max"))
    keyed = stats.set_index(UNIT)
    for col in ("rounds", "dose"):
        keyed[col] = per_unit[col].reindex(keyed.index).to_numpy()
    return keyed.reset_index()[STATS_COLUMNS]


def primary_metrics(runs: pd.DataFrame, primary: Any) -> dict[str, str]:
    """The pre-registered primary metric of each device, by how its energy was obtained:
    ``primary.metric`` (energy) where a hardware counter measured it (CPU: RAPL; GPU: NVML),
    ``primary.metric_estimated`` (time, by default) where CodeCarbon estimated it (no counter:
    its energy is duration x a near-constant power, an estimate, not a measurement)."""
    out: dict[str, str] = {}
    estimated = getattr(primary, "metric_estimated", "") or primary.metric
    for device, group in runs.groupby("device"):
        col = "gpu_power_source" if device == "gpu" else "cpu_power_source"
        sources = set(group.get(col, pd.Series(dtype=str)).dropna().astype(str)) - {"", "nan"}
        wanted = ("nvml",) if device == "gpu" else ("rapl",)
        counted = bool(sources) and all(any(w in src for w in wanted) for src in sources)
        out[str(device)] = primary.metric if counted else estimated
    return out


def write_result(result: StatsResult, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    atomic_write_csv(out_dir / "stats.csv", result.stats.copy(), columns=STATS_COLUMNS)
    atomic_write_csv(out_dir / "summary.csv", result.summary.copy(), columns=SUMMARY_COLUMNS)
    atomic_write_csv(out_dir / "failures.csv", result.failures.copy(), columns=FAILURES_COLUMNS)
    atomic_write_csv(out_dir / "controls.csv", result.controls.copy(), columns=CONTROLS_COLUMNS)


__all__ = [
    "CONTROLS_COLUMNS", "DEFAULT_METRICS", "DERIVED_METRICS", "FAILURES_COLUMNS",
    "PRIMARY_METRIC", "PRIMARY_TEST", "STATS_COLUMNS", "SUMMARY_COLUMNS", "StatsResult",
    "analysis_metrics", "analyze", "core_counts", "list_failures", "paired_stats",
    "positive_controls", "summarize", "write_result",
]
