"""The report's dose-response section (issue 18): cost per leak event, the curve, the held-out
check, the A/A calibration and the paper's figures placed on the curves.

Reads the tables :mod:`leakwatt.analysis.dose` wrote beside stats.csv; recomputes nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from leakwatt.analysis.markup import md_table
from leakwatt.contracts import DOSE_OUTPUTS

UNITS = {"duration_s": "s", "window_cpu_s": "CPU s", "peak_rss_mb": "MB"}


def read_dose_tables(stats_dir: Path) -> dict[str, pd.DataFrame] | None:
    """The dose tables of an analysis folder, or None when it is not a dose study."""
    paths = {name: Path(stats_dir) / name for name in DOSE_OUTPUTS}
    if not all(p.is_file() for p in paths.values()):
        return None
    return {Path(name).stem: pd.read_csv(path) for name, path in paths.items()}


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _f(value: Any, digits: int = 3) -> str:
    v = _num(value)
    return "" if math.isnan(v) else f"{v:.{digits}g}"


def _interval(est: Any, lo: Any, hi: Any, scale: float = 1.0, digits: int = 3) -> str:
    e, a, b = (_num(x) * scale for x in (est, lo, hi))
    if math.isnan(e):
        return ""
    if math.isnan(a) or math.isnan(b):
        return f"{e:.{digits}g}"
    return f"{e:.{digits}g} [{a:.{digits}g}, {b:.{digits}g}]"


def _per_event(metric: str) -> tuple[float, str]:
    """Scale and unit of a per-event cost: milliseconds for time, MB for memory."""
    return (1.0, "MB") if metric == "peak_rss_mb" else (1000.0, "ms")


def dose_figure(tables: dict[str, pd.DataFrame], path: Path, dpi: int) -> Path | None:
    """Mean paired time difference (smelly - clean) against dose, per unit, with the fit."""
    stats = tables["dose_stats"]
    model = tables["cost_model"].set_index(["pair_id", "framework", "metric"])
    rows = stats[(stats["metric"] == "duration_s") & (stats["smell"] != "AA")]
    if rows.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    units = sorted({(r.pair_id, r.framework) for r in rows.itertuples()})
    fig, axes = plt.subplots(1, len(units), figsize=(3.2 * len(units), 3.2), squeeze=False)
    for ax, (pair_id, framework) in zip(axes[0], units, strict=True):
        unit = rows[(rows["pair_id"] == pair_id) & (rows["framework"] == framework)]
        unit = unit.sort_values("dose")
        ax.errorbar(unit["dose"], unit["mean_diff"],
                    yerr=[unit["mean_diff"] - unit["diff_ci_low"],
                          unit["diff_ci_high"] - unit["mean_diff"]], fmt="o", capsize=3)
        key = (pair_id, framework, "duration_s")
        if key in model.index and not math.isnan(_num(model.loc[key, "a"])):
            grid = np.linspace(0, float(unit["dose"].max()), 100)
            a, b = float(model.loc[key, "a"]), float(model.loc[key, "b"])
            ax.plot(grid, a * grid + b * grid ** 2, "-", lw=1)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(f"{pair_id}\n{framework}", fontsize=8)
        ax.set_xlabel("dose (leak events)", fontsize=8)
        ax.set_ylabel("smelly - clean window (s)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def dose_section(tables: dict[str, pd.DataFrame], figure: str = "") -> str:
    """Markdown of the dose-response results."""
    parts = ["Each pair was measured at several doses (the number of times its leak happens: "
             "IMR a model rebuilt without release, UTR a training step whose tensors are kept). "
             "Measured runs carried no instrumentation (the leak was counted in separate control "
             "runs); energy here is CodeCarbon's estimate (no hardware counter), so the outcome "
             "is time: the measured window in seconds, and the process's CPU seconds in it. "
             "Per-event costs come from `d = a·dose + b·dose² + c·order`, fitted by OLS (HC3) to "
             "the paired differences of every block; intervals are 95 % and unadjusted."]
    if figure:
        parts.append(figure)
    model = tables["cost_model"]
    rows = []
    for r in model.itertuples():
        scale, unit = _per_event(r.metric)
        rows.append([f"{r.pair_id} ({r.framework})", r.metric, r.event, r.n,
                     _interval(r.a_linear, r.a_linear_ci_low, r.a_linear_ci_high, scale),
                     _interval(r.marginal_high, r.marginal_high_ci_low, r.marginal_high_ci_high,
                               scale),
                     _interval(r.b, r.b_ci_low, r.b_ci_high, scale), unit,
                     _f(r.bend_dose), r.note if isinstance(r.note, str) else ""])
    parts.append("**Cost per leak event** (`cost_model.csv`): linear fit, marginal cost at the "
                 "highest dose (a + 2·b·dose), and the quadratic term.\n\n" + md_table(
                     ["unit", "metric", "event", "blocks", "per event (linear)",
                      "marginal at highest dose", "b", "unit", "bend at dose", "note"], rows))
    stats = tables["dose_stats"]
    srows = [[f"{r.pair_id} ({r.framework})", int(r.rounds), _f(r.dose, 5), r.metric, r.n,
              _interval(r.pct_change, r.ci_low, r.ci_high), _f(r.p_value, 2), _f(r.p_adj, 2),
              r.family, _f(r.mde_pct, 2)]
             for r in stats.itertuples() if r.metric in ("duration_s", "peak_rss_mb")]
    parts.append("**Per dose** (`dose_stats.csv`; p_adj: Holm over the primary family).\n\n"
                 + md_table(["unit", "rounds", "dose", "metric", "n", "% change [95 % CI]", "p",
                             "p_adj", "family", "detectable %"], srows))
    held = tables["heldout"]
    hrows = [[f"{r.pair_id} ({r.framework})", r.metric, _f(r.heldout_dose, 5), r.model
              if isinstance(r.model, str) else "",
              _interval(r.predicted, r.predicted_ci_low, r.predicted_ci_high),
              _interval(r.measured, r.measured_ci_low, r.measured_ci_high),
              {True: "yes", False: "no"}.get(r.within, "") if isinstance(r.within, bool)
              else str(r.within)]
             for r in held.itertuples()]
    parts.append("**Held-out dose** (`heldout.csv`): the model fitted on the lower doses "
                 "predicts the highest.\n\n" + md_table(
                     ["unit", "metric", "held-out dose", "model", "predicted difference",
                      "measured difference", "measured within prediction"], hrows))
    aa = tables["aa"]
    if len(aa):
        first = aa.iloc[0]
        parts.append(
            f"**Calibration (A/A).** The clean program of {first['pair_id'].split('~')[0]} was "
            f"measured against itself ({int(first['n'])} blocks): over {int(first['tests'])} "
            f"A/A test(s) the observed false-positive rate is {_f(first['fpr_observed'], 2)} "
            f"(95 % Clopper–Pearson [{_f(first['fpr_ci_low'], 2)}, {_f(first['fpr_ci_high'], 2)}]). "
            "Noise floor (smallest % change detectable with 80 % power): "
            + "; ".join(f"{r.metric}: {_f(r.mde_pct, 2)} % in the A/A cell, median "
                        f"{_f(r.mde_pct_median_cells, 2)} % over the study's cells; drift "
                        f"{_f(r.drift_pct_per_block, 2)} % per block"
                        for r in aa.itertuples()) + ".")
    paper = tables["paper_placement"]
    prow = [[f"{r.pair_id} ({r.framework})", r.smell, _f(r.paper_dose, 6),
             _f(r.extrapolation_factor, 3), _f(r.predicted_pct_linear, 3),
             f"+{_f(r.paper_pct, 4)} %", _f(r.dose_for_paper_pct, 5),
             r.note if isinstance(r.note, str) else ""] for r in paper.itertuples()]
    if prow:
        parts.append("**The paper's figures on the curves** (`paper_placement.csv`).\n\n"
                     + md_table(["unit", "smell", "paper's dose", "x highest measured",
                                 "predicted % (linear)", "paper", "dose for the paper's %",
                                 "note"], prow))
    return "\n\n".join(parts)


__all__ = ["dose_figure", "dose_section", "read_dose_tables"]
