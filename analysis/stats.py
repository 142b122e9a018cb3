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
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from leakwatt.common import LeakwattError, atomic_write_csv

if TYPE_CHECKING:
    from leakwatt.params import AnalyzeParams

RUNS_REQUIRED = (
    "pair_id", "smell", "variant", "rep", "device", "status", "duration_s", "energy_kwh",
    "cpu_energy_kwh", "ram_energy_kwh", "gpu_energy_kwh", "emissions_kg", "peak_rss_mb",
    "cpu_power_source",
)
TEXT_COLUMNS = ("pair_id", "smell", "variant", "device", "status")
MEASURE_COLUMNS = (
    "duration_s", "energy_kwh", "cpu_energy_kwh", "ram_energy_kwh", "gpu_energy_kwh",
    "emissions_kg", "peak_rss_mb",
)
#: optional runs.csv columns that are analysed like the contract metrics when present.
OPTIONAL_METRICS = ("rss_growth_mb_per_s", "rapl_energy_kwh")
#: optional numeric columns that may be negative (a shrinking RSS has negative growth).
SIGNED_COLUMNS = ("rss_growth_mb_per_s",)
DEFAULT_METRICS = (
    "energy_kwh", "emissions_kg", "duration_s", "cpu_energy_kwh", "gpu_energy_kwh", "peak_rss_mb",
)
VARIANTS = ("smelly", "clean")
KEY = ("pair_id", "device", "variant", "rep")
TESTS = ("paired_t", "wilcoxon")
ZERO_METHOD = "pratt"
TARGET_POWER = 0.8
WILCOXON_ARE = 3.0 / math.pi

STATS_COLUMNS = [
    "pair_id", "smell", "metric", "test", "n", "pct_change", "ci_low", "ci_high", "p_value",
    "p_adj", "effect_size",
    "device", "effect_size_name", "statistic", "mean_smelly", "mean_clean", "median_smelly",
    "median_clean", "mean_diff", "sd_diff", "shapiro_p", "power", "n_needed", "n_failed",
    "status", "note",
]
SUMMARY_COLUMNS = [
    "smell", "device", "metric", "pairs", "pairs_tested", "median_pct_change", "min_pct_change",
    "max_pct_change", "pairs_increase", "significant_wilcoxon", "significant_paired_t", "note",
]
FAILURES_COLUMNS = [
    "pair_id", "smell", "device", "variant", "rep", "status", "error", "consequence", "source",
    "line",
]
SKIPPED_COLUMNS = ["device", "metric", "reason"]

_MISSING_TOKENS = {"", "nan", "none", "na", "<na>", "null"}


@dataclass
class StatsResult:
    """Tidy outputs of :func:`paired_stats` (``stats.csv``, ``failures.csv``, ``summary.csv``)."""

    stats: pd.DataFrame
    failures: pd.DataFrame
    summary: pd.DataFrame
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SKIPPED_COLUMNS))


# ----------------------------------------------------------------------------- validation


def _blank(series: pd.Series) -> pd.Series:
    return series.isna() | series.astype(str).str.strip().str.lower().isin(_MISSING_TOKENS)


def _lines(df: pd.DataFrame) -> pd.Series:
    if "_line" in df.columns:
        return df["_line"].astype(int)
    return pd.Series(np.arange(len(df)) + 2, index=df.index)


def validate_runs(df: pd.DataFrame, source: str = "runs.csv") -> pd.DataFrame:
    """Check a runs frame against the runs.csv contract and return it typed.

    Raises a one-line :class:`LeakwattError` naming ``source`` and the line (the CSV line number,
    header = line 1) for missing columns, empty keys, unknown variants, non-integer ``rep``,
    non-numeric or negative measurements, duplicated ``(pair_id, device, variant, rep)`` keys and
    a pair whose rows disagree on the smell. Extra columns are kept. The result carries
    ``_source`` and ``_line`` so that later messages and ``failures.csv`` can point at the row.
    """
    missing = [c for c in RUNS_REQUIRED if c not in df.columns]
    if missing:
        raise LeakwattError(
            f"{source}: line 1: missing column(s) {', '.join(missing)} "
            f"(runs.csv needs {', '.join(RUNS_REQUIRED)})")
    out = df.copy()
    out["_line"] = _lines(df).to_numpy()
    if "_source" not in out.columns:
        out["_source"] = source
    lines = out["_line"]

    for col in (*TEXT_COLUMNS, "cpu_power_source"):
        blank = _blank(out[col])
        text = out[col].where(~blank, "").astype(str).str.strip()
        if col in TEXT_COLUMNS and blank.any():
            i = blank.idxmax()
            raise LeakwattError(f"{source}: line {lines[i]}: empty {col}")
        out[col] = text

    bad_variant = ~out["variant"].isin(VARIANTS)
    if bad_variant.any():
        i = bad_variant.idxmax()
        raise LeakwattError(
            f"{source}: line {lines[i]}: unknown variant {out.at[i, 'variant']!r} "
            f"(expected smelly or clean)")

    rep = pd.to_numeric(out["rep"], errors="coerce")
    bad_rep = rep.isna() | ~np.isfinite(rep) | (rep != np.round(rep)) | (rep < 0)
    if bad_rep.any():
        i = bad_rep.idxmax()
        raise LeakwattError(
            f"{source}: line {lines[i]}: rep {df.at[i, 'rep']!r} is not a non-negative integer")
    out["rep"] = rep.astype(int)

    numeric = list(MEASURE_COLUMNS) + [c for c in OPTIONAL_METRICS if c in out.columns]
    for col in numeric:
        raw = out[col]
        blank = _blank(raw)
        values = pd.to_numeric(raw.where(~blank, np.nan), errors="coerce").astype(float)
        bad = (~blank & values.isna()) | np.isinf(values)
        if bad.any():
            i = bad.idxmax()
            raise LeakwattError(
                f"{source}: line {lines[i]}: {col} {raw[i]!r} is not a number")
        negative = (values < 0) & (out["status"] == "ok")
        if col not in SIGNED_COLUMNS and negative.any():
            i = negative.idxmax()
            raise LeakwattError(f"{source}: line {lines[i]}: {col} {raw[i]!r} is negative")
        out[col] = values

    if "scale" in out.columns:
        out["scale"] = out["scale"].where(~_blank(out["scale"]), "").astype(str)
    if "error" in out.columns:
        out["error"] = out["error"].where(~_blank(out["error"]), "").astype(str)
    _check_duplicates(out)
    _check_smell(out)
    return out


def _where(df: pd.DataFrame, i: Any) -> str:
    return f"{df.at[i, '_source']}: line {df.at[i, '_line']}"


def _check_duplicates(df: pd.DataFrame) -> None:
    dup = df.duplicated(list(KEY), keep="first")
    if dup.any():
        i = dup.idxmax()
        key = {k: df.at[i, k] for k in KEY}
        same = (df[list(KEY)] == pd.Series(key)).all(axis=1)
        first = same.idxmax()
        described = ", ".join(f"{k}={v}" for k, v in key.items())
        raise LeakwattError(
            f"{_where(df, i)}: duplicate run ({described}); first seen at {_where(df, first)}")


def _check_smell(df: pd.DataFrame) -> None:
    for _pair, group in df.groupby("pair_id", sort=False):
        smells = group["smell"]
        if smells.nunique() > 1:
            first = group.index[0]
            other = smells.index[(smells != smells.iloc[0]).to_numpy()][0]
            raise LeakwattError(
                f"{_where(df, other)}: pair {group.at[first, 'pair_id']!r} has smell "
                f"{df.at[other, 'smell']!r} here but {df.at[first, 'smell']!r} at "
                f"{_where(df, first)}")


def read_runs(path: str | Path) -> pd.DataFrame:
    """Read and validate one runs CSV (all cells read as text, then checked and typed)."""
    frame = _read_csv(path, "runs file")
    return validate_runs(frame, source=str(path))


def _read_csv(path: str | Path, what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise LeakwattError(f"{path}: {what} not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise LeakwattError(f"{path}: {what} is empty (no header line)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LeakwattError(f"{path}: cannot parse {what}: {str(exc).splitlines()[0]}") from None
    frame.index = pd.RangeIndex(len(frame))
    frame["_line"] = np.arange(len(frame)) + 2
    return frame


def combine_runs(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate validated runs frames (several devices or files) and re-check the keys."""
    if not frames:
        raise LeakwattError("no runs file given")
    runs = pd.concat(list(frames), ignore_index=True, sort=False)
    _check_duplicates(runs)
    _check_smell(runs)
    return runs


def add_net_energy(runs: pd.DataFrame, idle: pd.DataFrame,
                   source: str = "idle.csv") -> pd.DataFrame:
    """Add ``net_energy_kwh`` = energy_kwh - idle power of the device x duration_s.

    Idle power per device is sum(energy_kwh) / sum(duration_s) over the idle rows of that device
    (only ``ok`` rows when the file has a ``status`` column).
    Devices without idle rows get no net value (empty cells).
    """
    for col in ("device", "duration_s", "energy_kwh"):
        if col not in idle.columns:
            raise LeakwattError(f"{source}: line 1: missing column {col}")
    idle = idle.copy()
    for col in ("duration_s", "energy_kwh"):
        blank = _blank(idle[col])
        values = pd.to_numeric(idle[col].where(~blank, np.nan), errors="coerce")
        bad = ~blank & values.isna()
        if bad.any():
            i = bad.idxmax()
            raise LeakwattError(
                f"{source}: line {_lines(idle)[i]}: {col} {idle.at[i, col]!r} is not a number")
        idle[col] = values
    if "status" in idle.columns:
        idle = idle[idle["status"].astype(str).str.strip() == "ok"]
    idle = idle.dropna(subset=["duration_s", "energy_kwh"])
    idle = idle[idle["duration_s"] > 0]
    power = idle.groupby(idle["device"].astype(str).str.strip())[["energy_kwh", "duration_s"]].sum()
    kwh_per_s = power["energy_kwh"] / power["duration_s"]
    out = runs.copy()
    out["net_energy_kwh"] = out["energy_kwh"] - out["device"].map(kwh_per_s) * out["duration_s"]
    return out


# ----------------------------------------------------------------------------- statistics


def _f(value: Any) -> float:
    """A float, or NaN for anything undefined (written as an empty cell)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def _seed(seed: int, *parts: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and the row's identity, independent of row order."""
    return np.random.default_rng([seed, zlib.crc32("\x1f".join(parts).encode())])


def pct_change(smelly: np.ndarray, clean: np.ndarray) -> float:
    """100 x (mean smelly - mean clean) / mean clean; NaN when the clean mean is 0."""
    base = float(np.mean(clean))
    if base == 0:
        return math.nan
    return 100.0 * (float(np.mean(smelly)) - base) / base


def bootstrap_pct_ci(smelly: np.ndarray, clean: np.ndarray, n_boot: int,
                     rng: np.random.Generator, confidence: float = 0.95) -> tuple[float, float]:
    """Paired percentile bootstrap CI of :func:`pct_change` (reps resampled as pairs)."""
    if len(smelly) < 2:
        return math.nan, math.nan
    if np.all(smelly == smelly[0]) and np.all(clean == clean[0]):
        value = pct_change(smelly, clean)
        return value, value

    def statistic(s: np.ndarray, c: np.ndarray, axis: int = -1) -> np.ndarray:
        base = np.mean(c, axis=axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            return 100.0 * (np.mean(s, axis=axis) - base) / base

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sps.bootstrap((smelly, clean), statistic, paired=True, vectorized=True,
                            n_resamples=n_boot, confidence_level=confidence,
                            method="percentile", rng=rng)
    return _f(res.confidence_interval.low), _f(res.confidence_interval.high)


def rank_biserial(diff: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation (R+ - R-) / (R+ + R-) with Pratt's ranking.

    Zero differences take part in ranking |d| but count for neither side (as in
    ``scipy.stats.wilcoxon(zero_method="pratt")``). +1: every nonzero difference is positive.
    """
    ranks = sps.rankdata(np.abs(diff))
    r_plus = float(ranks[diff > 0].sum())
    r_minus = float(ranks[diff < 0].sum())
    if r_plus + r_minus == 0:
        return math.nan
    return (r_plus - r_minus) / (r_plus + r_minus)


def cohen_dz(diff: np.ndarray) -> float:
    """Cohen's d_z = mean(d) / sd(d) (ddof=1) of the paired differences; NaN when sd is 0."""
    if len(diff) < 2:
        return math.nan
    sd = float(np.std(diff, ddof=1))
    return float(np.mean(diff)) / sd if sd > 0 else math.nan


def t_power(effect_size: float, n: float, alpha: float) -> float:
    """Power of a two-sided one-sample/paired t-test at d_z ``effect_size`` with ``n`` pairs.

    The same formula as ``statsmodels.stats.power.TTestPower().power`` (noncentral t with
    nc = d_z * sqrt(n), df = n - 1), computed with scipy's ``nct`` tails directly because
    statsmodels returns NaN for large effects (for example d_z = 3 at n = 10).
    """
    es = abs(effect_size)
    if not math.isfinite(es) or not n >= 2:
        return math.nan
    df = n - 1
    nc = es * math.sqrt(n)
    crit = float(sps.t.isf(alpha / 2, df))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        upper = float(sps.nct.sf(crit, df, nc))
        lower = float(sps.nct.cdf(-crit, df, nc))
    upper = upper if math.isfinite(upper) else float(sps.norm.sf(crit - nc))
    lower = lower if math.isfinite(lower) else 0.0
    return min(1.0, upper + lower)


def pairs_needed(effect_size: float, alpha: float, power: float = TARGET_POWER,
                 limit: int = 10**7) -> float:
    """Smallest n (>= 2) at which a two-sided paired t-test reaches ``power`` at d_z."""
    es = abs(effect_size)
    if not math.isfinite(es) or es == 0:
        return math.nan
    if t_power(es, 2, alpha) >= power:
        return 2.0
    low, high = 2, 4
    while t_power(es, high, alpha) < power:
        low, high = high, high * 2
        if high > limit:
            return math.nan
    while high - low > 1:
        mid = (low + high) // 2
        if t_power(es, mid, alpha) >= power:
            high = mid
        else:
            low = mid
    return float(high)


def wilcoxon_min_n(alpha: float) -> int:
    """Fewest pairs whose exact two-sided signed-rank p-value can be <= alpha (2 / 2**n)."""
    return max(2, math.ceil(math.log2(2.0 / alpha) - 1e-12))


def achieved_power(effect_size: float, n: float, alpha: float) -> float:
    return t_power(effect_size, n, alpha)


def _base_row(pair_id: str, smell: str, device: str, metric: str, smelly: np.ndarray,
              clean: np.ndarray, n_failed: int) -> dict[str, Any]:
    n = len(smelly)
    row: dict[str, Any] = {
        "pair_id": pair_id, "smell": smell, "device": device, "metric": metric, "n": n,
        "n_failed": n_failed,
    }
    if n:
        diff = smelly - clean
        row.update(
            mean_smelly=float(np.mean(smelly)), mean_clean=float(np.mean(clean)),
            median_smelly=float(np.median(smelly)), median_clean=float(np.median(clean)),
            mean_diff=float(np.mean(diff)), pct_change=pct_change(smelly, clean))
        if n > 1:
            row["sd_diff"] = float(np.std(diff, ddof=1))
    return row


def compare_pair(pair_id: str, smell: str, device: str, metric: str, smelly: np.ndarray,
                 clean: np.ndarray, *, alpha: float = 0.05, n_boot: int = 10000, seed: int = 2606,
                 min_complete_reps: int = 3, detectable_pct: float = 5.0, n_failed: int = 0,
                 why_empty: str = "") -> list[dict[str, Any]]:
    """The two test rows (paired_t, wilcoxon) for one pair and metric; ``p_adj`` left empty.

    ``smelly[i]`` and ``clean[i]`` are the values of complete repetition i. ``why_empty`` is the
    note used when there are no complete repetitions.
    """
    smelly = np.asarray(smelly, dtype=float)
    clean = np.asarray(clean, dtype=float)
    n = len(smelly)
    base = _base_row(pair_id, smell, device, metric, smelly, clean, n_failed)
    t_row = {**base, "test": "paired_t", "effect_size_name": "cohen_dz"}
    w_row = {**base, "test": "wilcoxon", "effect_size_name": "rank_biserial"}
    rows = [t_row, w_row]

    if n == 0:
        status = "all failed" if why_empty.startswith("all ") else "insufficient data"
        for row in rows:
            row.update(status=status, note=why_empty or "no complete repetitions")
        return rows
    if n < max(min_complete_reps, 2):
        note = (f"{n} complete rep(s) < min_complete_reps {max(min_complete_reps, 2)}; "
                "not tested"
                + (f" ({why_empty})" if why_empty else ""))
        for row in rows:
            row.update(status="insufficient data", note=note)
        return rows

    notes: list[str] = []
    if why_empty:
        notes.append(why_empty)
    diff = smelly - clean
    rng = _seed(seed, pair_id, device, metric)
    ci_low, ci_high = bootstrap_pct_ci(smelly, clean, n_boot, rng, confidence=1 - alpha)
    if math.isnan(base.get("pct_change", math.nan)):
        notes.append("clean mean is 0: % change undefined")
    constant_diff = bool(np.all(diff == diff[0]))
    shapiro_p = math.nan
    if n >= 3 and not constant_diff:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            shapiro_p = _f(sps.shapiro(diff).pvalue)
    for row in rows:
        row.update(ci_low=ci_low, ci_high=ci_high, shapiro_p=shapiro_p)

    sd = float(np.std(diff, ddof=1))
    mean_clean = float(np.mean(clean))
    target_es = (detectable_pct / 100.0 * abs(mean_clean) / sd) if sd > 0 else math.nan
    n_t = pairs_needed(target_es, alpha)
    joined = "; ".join(notes)

    if constant_diff and diff[0] == 0:
        note = "smelly and clean are equal in every complete rep: nothing to test"
        for row in rows:
            row.update(status="constant", note="; ".join(filter(None, [note, joined])))
        return rows

    if constant_diff:
        t_row.update(status="constant", note="; ".join(filter(None, [
            f"every paired difference is {diff[0]:.6g}: zero variance, t undefined", joined])))
    else:
        res = sps.ttest_rel(smelly, clean)
        dz = cohen_dz(diff)
        t_row.update(status="tested", statistic=_f(res.statistic), p_value=_f(res.pvalue),
                     effect_size=dz, power=achieved_power(dz, n, alpha), n_needed=n_t,
                     note=joined)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sps.wilcoxon(smelly, clean, zero_method=ZERO_METHOD, alternative="two-sided")
    dz = cohen_dz(diff)
    w_notes = list(notes)
    zeros = int(np.sum(diff == 0))
    if zeros:
        w_notes.append(f"{zeros} zero difference(s) ranked and dropped (Pratt)")
    floor = wilcoxon_min_n(alpha)
    w_power = achieved_power(dz, n * WILCOXON_ARE, alpha)
    if n < floor:
        w_power = 0.0
        w_notes.append(f"with {n} pairs the exact two-sided p cannot fall below "
                       f"{2.0 / 2 ** n:.4g}")
    w_row.update(
        status="tested", statistic=_f(res.statistic), p_value=_f(res.pvalue),
        effect_size=rank_biserial(diff), power=w_power,
        n_needed=(float(max(floor, math.ceil(n_t / WILCOXON_ARE))) if math.isfinite(n_t)
                  else math.nan),
        note="; ".join(w_notes))
    return rows


def holm(stats: pd.DataFrame) -> pd.Series:
    """Holm-adjusted p-values over every ``tested`` row with a p-value; NaN elsewhere."""
    p_adj = pd.Series(math.nan, index=stats.index, dtype=float)
    if stats.empty:
        return p_adj
    family = (stats["status"] == "tested") & stats["p_value"].notna()
    if family.any():
        p_adj[family] = multipletests(stats.loc[family, "p_value"].to_numpy(float),
                                      method="holm")[1]
    return p_adj


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


# ----------------------------------------------------------------------------- the stage


def load_runs(runs_paths: Sequence[str | Path], idle_paths: Sequence[str | Path] = ()
              ) -> pd.DataFrame:
    """Read, validate and concatenate runs files; add ``net_energy_kwh`` when idle files exist."""
    runs = combine_runs([read_runs(p) for p in runs_paths])
    idle_frames = []
    for path in idle_paths:
        frame = _read_csv(path, "idle baseline file")
        frame["_source"] = str(path)
        idle_frames.append(frame)
    if idle_frames:
        idle = pd.concat(idle_frames, ignore_index=True)
        runs = add_net_energy(runs, idle, source=", ".join(str(p) for p in idle_paths))
    return runs


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
    "DEFAULT_METRICS", "FAILURES_COLUMNS", "RUNS_REQUIRED", "STATS_COLUMNS", "SUMMARY_COLUMNS",
    "StatsResult", "add_net_energy", "analysis_metrics", "analyze", "bootstrap_pct_ci",
    "cohen_dz", "combine_runs", "compare_pair", "holm", "list_failures", "load_runs",
    "paired_stats", "pairs_needed", "pct_change", "rank_biserial", "read_runs", "summarize",
    "t_power", "validate_runs", "wilcoxon_min_n", "write_result",
]
