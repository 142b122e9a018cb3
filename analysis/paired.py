"""Paired tests and effect sizes for one pair and metric (pingouin-style, via scipy/statsmodels).

:func:`compare_pair` returns the two test rows (paired t, Wilcoxon) of ``stats.csv`` for the
values of the complete repetitions of one pair; :func:`holm` adjusts the p-values of a whole
table. The methods are described in :mod:`leakwatt.analysis.stats`.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

ZERO_METHOD = "pratt"
TARGET_POWER = 0.8
WILCOXON_ARE = 3.0 / math.pi
#: differences within this fraction of the values' magnitude count as equal
CONSTANT_RTOL = 1e-9


def _f(value: Any) -> float:
    """A float, or NaN for anything undefined (written as an empty cell)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def pct_change(smelly: np.ndarray, clean: np.ndarray) -> float:
    """100 x (mean smelly - mean clean) / mean clean; NaN when the clean mean is 0."""
    base = float(np.mean(clean))
    if base == 0:
        return math.nan
    return 100.0 * (float(np.mean(smelly)) - base) / base


def ratio_t_ci(smelly: np.ndarray, clean: np.ndarray, confidence: float = 0.95
               ) -> tuple[float, float]:
    """t-interval for :func:`pct_change` by the delta method on the ratio of paired means.

    R = mean(s) / mean(c) is linearised as mean(s - R c) / mean(c): its standard error is
    sd(s_i - R c_i) / (sqrt(n) |mean(c)|) and the interval R +- t_{n-1} se, reported as
    100 (R - 1). ``benchmarks/ci_coverage.py`` checks its coverage at this machine's noise
    (93-97 % from n = 5, where the paired percentile and BCa bootstraps give 83-85 %).
    """
    n = len(smelly)
    base = float(np.mean(clean)) if n else 0.0
    if n < 2 or base == 0:
        return math.nan, math.nan
    ratio = float(np.mean(smelly)) / base
    resid = smelly - ratio * clean
    se = float(np.std(resid, ddof=1)) / (math.sqrt(n) * abs(base))
    q = float(sps.t.ppf(0.5 + confidence / 2, n - 1))
    return 100.0 * (ratio - q * se - 1.0), 100.0 * (ratio + q * se - 1.0)


def log_ratio_se(smelly: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """log(mean(s) / mean(c)) and its delta-method standard error (for random-effects pooling)."""
    n = len(smelly)
    if n < 2:
        return math.nan, math.nan
    ms, mc = float(np.mean(smelly)), float(np.mean(clean))
    if ms <= 0 or mc <= 0:
        return math.nan, math.nan
    ratio = ms / mc
    se_ratio = float(np.std(smelly - ratio * clean, ddof=1)) / (math.sqrt(n) * mc)
    return math.log(ratio), se_ratio / ratio


def bootstrap_pct_ci(smelly: np.ndarray, clean: np.ndarray, n_boot: int,
                     rng: np.random.Generator, confidence: float = 0.95,
                     method: str = "BCa") -> tuple[float, float]:
    """Paired bootstrap CI of :func:`pct_change` (``scipy.stats.bootstrap``, reps resampled as
    pairs). Not used for stats.csv: ``benchmarks/ci_coverage.py`` compares it with
    :func:`ratio_t_ci`, and at n <= 10 it under-covers."""
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
                            method=method, rng=rng)
    return _f(res.confidence_interval.low), _f(res.confidence_interval.high)


def constant_difference(smelly: np.ndarray, clean: np.ndarray) -> tuple[bool, bool]:
    """(every paired difference equal, all of them zero), up to float rounding.

    Differences of energies near 1e-5 kWh differ in their last bits even when the inputs are
    "the same" numbers written through CSV, so equality is judged relative to the values' size.
    """
    diff = smelly - clean
    scale = max(float(np.max(np.abs(smelly))), float(np.max(np.abs(clean))), 1e-300)
    tol = CONSTANT_RTOL * scale
    constant = float(np.ptp(diff)) <= tol
    return constant, constant and abs(float(np.mean(diff))) <= tol


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
              clean: np.ndarray, n_failed: int, framework: str) -> dict[str, Any]:
    n = len(smelly)
    row: dict[str, Any] = {
        "pair_id": pair_id, "smell": smell, "device": device, "framework": framework,
        "metric": metric, "n": n, "n_failed": n_failed,
    }
    if n:
        diff = smelly - clean
        row.update(
            mean_smelly=float(np.mean(smelly)), mean_clean=float(np.mean(clean)),
            median_smelly=float(np.median(smelly)), median_clean=float(np.median(clean)),
            mean_diff=float(np.mean(diff)), pct_change=pct_change(smelly, clean))
        if n > 1:
            row["sd_diff"] = float(np.std(diff, ddof=1))
            row["log_ratio"], row["log_ratio_se"] = log_ratio_se(smelly, clean)
    return row


def compare_pair(pair_id: str, smell: str, device: str, metric: str, smelly: np.ndarray,
                 clean: np.ndarray, *, alpha: float = 0.05, min_complete_reps: int = 3,
                 detectable_pct: float = 5.0, n_failed: int = 0, why_empty: str = "",
                 framework: str = "keras3", min_ci_n: int = 5,
                 power_alpha: float | None = None) -> list[dict[str, Any]]:
    """The two test rows (paired_t, wilcoxon) for one pair and metric; ``p_adj`` left empty.

    ``smelly[i]`` and ``clean[i]`` are the values of complete repetition i. ``why_empty`` is the
    note used when there are no complete repetitions. The CI is :func:`ratio_t_ci` at
    1 - ``alpha``; with fewer than ``min_ci_n`` repetitions it is still computed but marked
    ``ci_reliable`` = False. Power and ``n_needed`` are computed at ``power_alpha`` (default
    ``alpha``): the per-test alpha the row's multiple-test family gives it.
    """
    smelly = np.asarray(smelly, dtype=float)
    clean = np.asarray(clean, dtype=float)
    n = len(smelly)
    p_alpha = alpha if power_alpha is None else power_alpha
    base = _base_row(pair_id, smell, device, metric, smelly, clean, n_failed, framework)
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
    ci_low, ci_high = ratio_t_ci(smelly, clean, confidence=1 - alpha)
    reliable = n >= min_ci_n
    if not reliable:
        notes.append(f"CI unreliable: {n} reps < min_ci_n {min_ci_n} (its coverage is not "
                     "assured below that)")
    if math.isnan(base.get("pct_change", math.nan)):
        notes.append("clean mean is 0: % change undefined")
    constant_diff, all_zero = constant_difference(smelly, clean)
    shapiro_p = math.nan
    if n >= 3 and not constant_diff:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            shapiro_p = _f(sps.shapiro(diff).pvalue)
    for row in rows:
        row.update(ci_low=ci_low, ci_high=ci_high, shapiro_p=shapiro_p, ci_reliable=reliable,
                   power_alpha=p_alpha, ci_adjusted=False)

    sd = float(np.std(diff, ddof=1))
    mean_clean = float(np.mean(clean))
    target_es = (detectable_pct / 100.0 * abs(mean_clean) / sd) if sd > 0 else math.nan
    n_t = pairs_needed(target_es, p_alpha)
    joined = "; ".join(notes)

    if all_zero:
        note = "smelly and clean are equal in every complete rep: nothing to test"
        for row in rows:
            row.update(status="constant", note="; ".join(filter(None, [note, joined])))
        return rows

    if constant_diff:
        t_row.update(status="constant", note="; ".join(filter(None, [
            f"every paired difference is {float(np.mean(diff)):.6g} (within rounding): zero "
            "variance, t undefined", joined])))
    else:
        res = sps.ttest_rel(smelly, clean)
        dz = cohen_dz(diff)
        # no post-hoc ("observed") power: it is a function of the p-value and adds nothing
        # (Hoenig & Heisey 2001); n_needed, for the stated detectable_pct, is kept
        t_row.update(status="tested", statistic=_f(res.statistic), p_value=_f(res.pvalue),
                     effect_size=dz, n_needed=n_t, note=joined)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sps.wilcoxon(smelly, clean, zero_method=ZERO_METHOD, alternative="two-sided")
    w_notes = list(notes)
    zeros = int(np.sum(diff == 0))
    if zeros:
        w_notes.append(f"{zeros} zero difference(s) ranked and dropped (Pratt)")
    floor = wilcoxon_min_n(p_alpha)
    if n < floor:
        w_notes.append(f"with {n} pairs the exact two-sided p cannot fall below "
                       f"{2.0 / 2 ** n:.4g}")
    w_row.update(
        status="tested", statistic=_f(res.statistic), p_value=_f(res.pvalue),
        effect_size=rank_biserial(diff),
        n_needed=(float(max(floor, math.ceil(n_t / WILCOXON_ARE))) if math.isfinite(n_t)
                  else math.nan),
        note="; ".join(w_notes))
    return rows


def holm(stats: pd.DataFrame, family: pd.Series | None = None) -> pd.Series:
    """Holm-adjusted p-values over the ``tested`` rows with a p-value inside ``family`` (a
    boolean mask; default every row); NaN elsewhere."""
    p_adj = pd.Series(math.nan, index=stats.index, dtype=float)
    if stats.empty:
        return p_adj
    members = (stats["status"] == "tested") & stats["p_value"].notna()
    if family is not None:
        members &= family.astype(bool)
    if members.any():
        p_adj[members] = multipletests(stats.loc[members, "p_value"].to_numpy(float),
                                       method="holm")[1]
    return p_adj


__all__ = ["CONSTANT_RTOL", "achieved_power", "bootstrap_pct_ci", "cohen_dz", "compare_pair",
           "constant_difference", "holm", "log_ratio_se", "pairs_needed", "pct_change",
           "rank_biserial", "ratio_t_ci", "t_power", "wilcoxon_min_n"]
