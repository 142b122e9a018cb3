"""Paired tests and effect sizes for one pair and metric (pingouin-style, via scipy/statsmodels).

:func:`compare_pair` returns the two test rows (paired t, Wilcoxon) of ``stats.csv`` for the
values of the complete repetitions of one pair; :func:`holm` adjusts the p-values of a whole
table. The methods are described in :mod:`leakwatt.analysis.stats`.
"""

from __future__ import annotations

import math
import warnings
import zlib
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

ZERO_METHOD = "pratt"
TARGET_POWER = 0.8
WILCOXON_ARE = 3.0 / math.pi


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



__all__ = ["achieved_power", "bootstrap_pct_ci", "cohen_dz", "compare_pair", "holm",
           "pairs_needed", "pct_change", "rank_biserial", "t_power", "wilcoxon_min_n"]
