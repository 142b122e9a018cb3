"""Report figures (matplotlib, Agg backend), each written atomically as a PNG.

Every function takes tidy frames, writes one figure and returns its path, or ``None`` when the
data holds nothing to draw (the report then says why).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from leakwatt.analysis import paper  # noqa: E402
from leakwatt.analysis.runs import drop_after_exit, series_file  # noqa: E402
from leakwatt.common import atomic_open  # noqa: E402

COLORS = {"clean": "#1b7837", "smelly": "#b2182b"}
PAPER_COLOR = "#e08214"
METRIC_LABELS = {"energy_kwh": "energy", "emissions_kg": "CO2 emissions", "duration_s": "duration",
                 "cpu_energy_kwh": "CPU energy", "gpu_energy_kwh": "GPU energy",
                 "peak_rss_mb": "peak resident memory"}


def _save(fig: plt.Figure, path: Path, dpi: int) -> Path:
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return path


def _grid(count: int, ncols: int = 3, size: tuple[float, float] = (3.6, 3.0)
          ) -> tuple[plt.Figure, list[plt.Axes]]:
    ncols = max(1, min(ncols, count))
    nrows = int(np.ceil(count / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows),
                             squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def _paired_panel(ax: plt.Axes, group: pd.DataFrame, column: str, scale: float) -> None:
    wide = group.pivot_table(index="rep", columns="variant", values=column, aggfunc="first")
    for _, row in wide.iterrows():
        if {"clean", "smelly"} <= set(row.index) and row.notna().all():
            ax.plot([0, 1], [row["clean"] * scale, row["smelly"] * scale], color="#999999",
                    lw=0.8, zorder=1)
    for x, variant in enumerate(("clean", "smelly")):
        if variant not in wide.columns:
            continue
        values = wide[variant].dropna().to_numpy() * scale
        ax.scatter(np.full(len(values), x), values, color=COLORS[variant], s=18, zorder=2)
        if len(values):
            ax.hlines(values.mean(), x - 0.2, x + 0.2, color=COLORS[variant], lw=2, zorder=3)
    ax.set_xticks([0, 1], ["clean", "smelly"])
    ax.set_xlim(-0.5, 1.5)


def energy_per_pair(runs: pd.DataFrame, path: Path, dpi: int = 120) -> Path | None:
    """Energy of each ok run per variant, one panel per pair and device, reps joined by lines."""
    ok = runs[(runs["status"] == "ok") & runs["energy_kwh"].notna()]
    groups = list(ok.groupby(["pair_id", "device"], sort=True))
    if not groups:
        return None
    fig, axes = _grid(len(groups))
    for ax, ((pair_id, device), group) in zip(axes, groups, strict=True):
        _paired_panel(ax, group, "energy_kwh", 1000.0)
        ax.set_title(f"{pair_id} ({device})", fontsize=9)
        ax.set_ylabel("energy per run (Wh)")
    fig.suptitle("Energy per variant; grey lines join the runs of one repetition", fontsize=10)
    return _save(fig, path, dpi)


def forest(stats: pd.DataFrame, path: Path, dpi: int = 120, metric: str = "energy_kwh"
           ) -> Path | None:
    """% change in ``metric`` per pair, device and framework with its 95 % CI (the CI is the
    same on both test rows; the paired-t row is drawn), the paper's two results marked."""
    rows = stats[(stats["metric"] == metric) & (stats["test"] == "paired_t")
                 & stats["pct_change"].notna()]
    if "framework" not in rows.columns:
        rows = rows.assign(framework="keras3")
    rows = rows.sort_values(["smell", "pair_id", "device", "framework"])
    labels = [f"{r.pair_id} ({r.device}, {r.framework}) [{r.smell}]" for r in rows.itertuples()]
    paper_labels = [f"paper {smell} ({paper.DEVICE})" for smell in paper.SMELLS]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * (len(labels) + len(paper_labels)) + 1.4))
    y = np.arange(len(labels))[::-1] + len(paper_labels)
    if len(rows):
        pct = rows["pct_change"].to_numpy(float)
        low = rows["ci_low"].to_numpy(float)
        high = rows["ci_high"].to_numpy(float)
        has_ci = np.isfinite(low) & np.isfinite(high)
        err = np.vstack([np.where(has_ci, pct - low, 0), np.where(has_ci, high - pct, 0)])
        ax.errorbar(pct, y, xerr=err, fmt="o", color="#2166ac", capsize=3,
                    label="this study (95 % CI)")
    py = np.arange(len(paper_labels))[::-1]
    paper_pct = np.array([row.pct_change_energy for row in paper.SMELLS.values()], dtype=float)
    ax.scatter(paper_pct, py, marker="D",
               color=PAPER_COLOR, s=45, zorder=3, label=f"paper ({paper.DEVICE}, no CI published)")
    ax.axvline(0, color="#444444", lw=0.8)
    ax.set_yticks(list(y) + list(py), labels + paper_labels, fontsize=8)
    ax.set_xlabel(f"% change in {METRIC_LABELS.get(metric, metric)}, smelly vs clean")
    ax.legend(fontsize=8, loc="best")
    ax.set_title("Effect of each smell", fontsize=10)
    return _save(fig, path, dpi)


def memory(runs: pd.DataFrame, path: Path, dpi: int = 120, smell: str = "UTR") -> Path | None:
    """Peak RSS (and RSS growth when recorded) per variant for ``smell``'s pairs (all if none)."""
    ok = runs[(runs["status"] == "ok") & runs["peak_rss_mb"].notna()]
    chosen = ok[ok["smell"] == smell] if (ok["smell"] == smell).any() else ok
    if chosen.empty:
        return None
    columns = [("peak_rss_mb", "peak RSS (MB)")]
    if "rss_growth_mb_per_s" in chosen.columns and chosen["rss_growth_mb_per_s"].notna().any():
        columns.append(("rss_growth_mb_per_s", "RSS growth (MB/s)"))
    groups = list(chosen.groupby(["pair_id", "device"], sort=True))
    fig, axes = _grid(len(groups) * len(columns), ncols=len(columns) * min(2, len(groups)))
    panels = [(g, c) for g in groups for c in columns]
    for ax, (((pair_id, device), group), (column, label)) in zip(axes, panels, strict=True):
        _paired_panel(ax, group, column, 1.0)
        ax.set_title(f"{pair_id} ({device})", fontsize=9)
        ax.set_ylabel(label)
    which = smell if (ok["smell"] == smell).any() else "all"
    fig.suptitle(f"Memory per variant ({which} pairs)", fontsize=10)
    return _save(fig, path, dpi)


def prevalence_bars(table: pd.DataFrame, path: Path, dpi: int = 120) -> Path | None:
    """Instances per KLOC and share of repositories affected, per rule."""
    if table is None or table.empty:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    rules = table["rule"].tolist()
    left.bar(rules, table["instances_per_kloc"].fillna(0), color="#4393c3")
    left.set_ylabel("instances per KLOC")
    right.bar(rules, 100 * table["share_repos_affected"].fillna(0), color="#d6604d")
    right.set_ylabel("% of repositories affected")
    right.set_ylim(0, 100)
    fig.suptitle("Prevalence at the pinned commits", fontsize=10)
    return _save(fig, path, dpi)


def survival_curves(survival: pd.DataFrame, path: Path, dpi: int = 120, unit: str = "days",
                    lifetimes: pd.DataFrame | None = None) -> Path | None:
    """Kaplan-Meier curves of smell instances per rule (time since introduction).

    With ``lifetimes`` (columns rule, ``unit``, removed), instances still present are marked
    with a + at their censoring time and each curve runs on to its last observation, so a rule
    whose instances were all still present is a visible line, not a lone point at 0.
    """
    if survival is None or survival.empty:
        return None
    curves = survival[survival["time_unit"] == unit]
    if curves.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for rule, curve in curves.groupby("rule", sort=True):
        times = curve["time"].to_numpy(float)
        surv = curve["survival"].to_numpy(float)
        low, high = curve["ci_low"].to_numpy(float), curve["ci_high"].to_numpy(float)
        censored, label = np.array([]), str(rule)
        if lifetimes is not None and unit in lifetimes.columns:
            mine = lifetimes[lifetimes["rule"] == rule]
            removed = mine["removed"].astype(str).str.lower().isin(["true", "1"])
            censored = pd.to_numeric(mine.loc[~removed, unit], errors="coerce").dropna()
            censored = censored.to_numpy(float)
            label = f"{rule} (n = {len(mine)}, {len(censored)} still present)"
        if len(censored) and censored.max() > times.max():
            times = np.append(times, censored.max())
            surv, low, high = np.append(surv, surv[-1]), np.append(low, low[-1]), \
                np.append(high, high[-1])
        line, = ax.step(times, surv, where="post", label=label)
        ax.fill_between(times, low, high, step="post", alpha=0.15, color=line.get_color())
        if len(censored):
            at = np.searchsorted(times, censored, side="right") - 1
            ax.plot(censored, surv[np.clip(at, 0, None)], "+", color=line.get_color(), ms=10,
                    mew=1.6, clip_on=False)
        elif len(times) == 1:
            ax.plot(times, surv, "o", color=line.get_color(), ms=4)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(f"{unit} since the instance was introduced")
    ax.set_ylabel("share still present")
    ax.legend(fontsize=8)
    ax.set_title("Kaplan-Meier survival of smell instances (+ = still present)", fontsize=10)
    return _save(fig, path, dpi)


def rss_over_time(runs: pd.DataFrame, path: Path, dpi: int = 120, smell: str = "UTR"
                  ) -> Path | None:
    """RSS over each run's time (the harness's ``series_path`` files, columns t_s, rss_mb) for
    ``smell``'s pairs (all pairs if it has none); ``None`` when no series file is readable."""
    if "series_path" not in runs.columns:
        return None
    ok = runs[runs["status"] == "ok"]
    chosen = ok[ok["smell"] == smell] if (ok["smell"] == smell).any() else ok
    panels = []
    for key, group in chosen.groupby(["pair_id", "device"], sort=True):
        lines = []
        for _, run in group.iterrows():
            file = series_file(run)
            if file is None:
                continue
            try:
                series = pd.read_csv(file)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
                continue
            if {"t_s", "rss_mb"} <= set(series.columns) and len(series):
                wall = pd.to_numeric(pd.Series([run.get("wall_s")]), errors="coerce").iloc[0]
                lines.append((run["variant"], drop_after_exit(series, wall)))
        if lines:
            panels.append((key, lines))
    if not panels:
        return None
    fig, axes = _grid(len(panels), ncols=2, size=(4.8, 3.0))
    for ax, ((pair_id, device), lines) in zip(axes, panels, strict=True):
        for variant, series in lines:
            ax.plot(series["t_s"], series["rss_mb"], color=COLORS.get(variant, "#333333"),
                    lw=0.9, alpha=0.7)
        ax.set_title(f"{pair_id} ({device})", fontsize=9)
        ax.set_xlabel("seconds into the run")
        ax.set_ylabel("RSS (MB)")
        for variant, color in COLORS.items():
            ax.plot([], [], color=color, label=variant)
        ax.legend(fontsize=7)
    which = smell if (ok["smell"] == smell).any() else "all"
    fig.suptitle(f"Resident memory over time, one line per run ({which} pairs)", fontsize=10)
    return _save(fig, path, dpi)


__all__ = ["energy_per_pair", "forest", "memory", "prevalence_bars", "rss_over_time",
           "survival_curves"]
