"""The ``report`` stage: report.md, a self-contained report.html, figures, metrics.json, plots.

It reads what ``analyze`` wrote (``stats.csv``, ``summary.csv``, ``failures.csv`` and, when the
mining outputs were analysed, ``prevalence.csv``, ``survival.csv``, ``lifetimes.csv``,
``overview.csv``), checked against their contracts in :mod:`leakwatt.contracts`, plus the runs
files, the equivalence check and the environment files, so every number can be traced through
``dvc.lock``. The Markdown is built in :mod:`leakwatt.analysis.sections`, the HTML in
:mod:`leakwatt.analysis.markup`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from leakwatt.analysis import figures, paper
from leakwatt.analysis.dose_report import dose_figure, read_dose_tables
from leakwatt.analysis.markup import json_safe, to_html
from leakwatt.analysis.prevalence import read_prevalence
from leakwatt.analysis.recall import RECALL_METRICS
from leakwatt.analysis.runs import load_runs
from leakwatt.analysis.sections import build_markdown, primary_rows, report_title
from leakwatt.common import LeakwattError, atomic_write_csv, atomic_write_json, atomic_write_text
from leakwatt.contracts import (
    CONTROLS,
    EQUIVALENCE,
    FAILURES,
    PLOT_ENERGY_RUNS,
    PLOT_PCT_CHANGE,
    PLOT_SURVIVAL,
    STATS,
    SUMMARY,
    Table,
)

if TYPE_CHECKING:
    from leakwatt.params import ReportParams


def _read_csv(path: Path, table: Table, required: bool = True) -> pd.DataFrame:
    """``path`` read and checked against ``table``; headers only when absent and not required."""
    if not path.is_file():
        if required:
            raise LeakwattError(f"{path}: not found (run the analyze stage first)")
        return pd.DataFrame(columns=list(table.columns))
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise LeakwattError(f"{path}: empty file (no header line)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LeakwattError(f"{path}: cannot parse: {str(exc).splitlines()[0]}") from None
    return table.validate(frame, str(path))


def read_environment(paths: Sequence[Path]) -> list[dict[str, Any]]:
    envs = []
    for path in paths:
        path = Path(path)
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise LeakwattError(f"{path}: environment file not found") from None
        except json.JSONDecodeError as exc:
            raise LeakwattError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise LeakwattError(f"{path}: expected a JSON object")
        envs.append({"_source": str(path), **data})
    return envs


def headline(stats: pd.DataFrame, alpha: float = 0.05) -> dict[str, Any]:
    """Per unit, the primary comparison (metrics.json): pairs -> device -> framework -> change,
    CI (and whether it is reliable), p_adj and n. No per-smell figure: pairs that estimate
    different things are not pooled here (the report pools by estimand)."""
    primary = primary_rows(stats)
    pairs: dict[str, Any] = {}
    for r in primary.itertuples():
        reliable = getattr(r, "ci_reliable", True)
        pairs.setdefault(str(r.pair_id), {}).setdefault(str(r.device), {})[str(r.framework)] = {
            "smell": r.smell, "metric": r.metric, "test": r.test, "n": r.n,
            "status": r.status, "pct_change": r.pct_change, "ci_low": r.ci_low,
            "ci_high": r.ci_high, "ci_reliable": bool(reliable) if reliable == reliable else None,
            "p_adj": r.p_adj, "significant": bool(r.p_adj < alpha) if r.p_adj == r.p_adj
            else False,
        }
    return {"pairs": pairs, "primary_tests": int(primary["p_adj"].notna().sum())}


def _normalise(stats: pd.DataFrame) -> pd.DataFrame:
    """stats.csv as the report reads it: framework filled (keras3 before it was a factor)."""
    stats = stats.copy()
    if "framework" not in stats.columns:
        stats["framework"] = "keras3"
    stats["framework"] = stats["framework"].fillna("keras3").astype(str)
    return stats


def read_estimands(pairs_dir: Path | None) -> dict[str, str]:
    """pair_id -> estimand from pairs.csv (empty when the file or the column is absent)."""
    if pairs_dir is None or not (Path(pairs_dir) / "pairs.csv").is_file():
        return {}
    frame = pd.read_csv(Path(pairs_dir) / "pairs.csv", dtype=str, keep_default_na=False)
    if "estimand" not in frame.columns:
        return {}
    return {r.pair_id: r.estimand.strip() for r in frame.itertuples() if r.estimand.strip()}


def _plots(stats: pd.DataFrame, runs: pd.DataFrame, tables: dict[str, pd.DataFrame] | None,
           plots_dir: Path) -> list[Path]:
    written = []
    energy = primary_rows(stats)
    pct = pd.DataFrame({
        "pair": energy["pair_id"] + " (" + energy["device"] + ")", "smell": energy["smell"],
        "device": energy["device"], "pct_change": energy["pct_change"],
        "ci_low": energy["ci_low"], "ci_high": energy["ci_high"], "n": energy["n"]})
    paper_rows = pd.DataFrame([{"pair": f"paper {s} ({paper.DEVICE})", "smell": s,
                                "device": "gpu", "pct_change": r.pct_change_energy}
                               for s, r in paper.SMELLS.items()])
    pct = pd.concat([pct, paper_rows], ignore_index=True)
    atomic_write_csv(plots_dir / "pct_change.csv", pct, columns=list(PLOT_PCT_CHANGE.columns))
    written.append(plots_dir / "pct_change.csv")
    ok = runs[runs["status"] == "ok"]
    per_run = pd.DataFrame({
        "pair": ok["pair_id"] + " (" + ok["device"] + ")", "variant": ok["variant"],
        "rep": ok["rep"], "energy_kwh": ok["energy_kwh"], "duration_s": ok["duration_s"],
        "peak_rss_mb": ok["peak_rss_mb"]})
    atomic_write_csv(plots_dir / "energy_runs.csv", per_run,
                     columns=list(PLOT_ENERGY_RUNS.columns))
    written.append(plots_dir / "energy_runs.csv")
    survival = (tables["survival"] if tables is not None
                else pd.DataFrame(columns=["rule", "time_unit", "time", "survival"]))
    days = survival[survival["time_unit"] == "days"][["rule", "time", "survival"]]
    atomic_write_csv(plots_dir / "survival.csv", days.rename(columns={"time": "days"}).copy(),
                     columns=list(PLOT_SURVIVAL.columns))
    written.append(plots_dir / "survival.csv")
    return written


def render_report(stats_dir: Path, runs_paths: Sequence[Path], out_dir: Path,
                  params: ReportParams,
                  environment_paths: Sequence[Path] = (), equivalence_path: Path | None = None,
                  commands: Sequence[str] = (), alpha: float = 0.05,
                  pairs_dir: Path | None = None) -> dict[str, Any]:
    """Write report.md, report.html, figures/*.png, plots/*.csv and metrics.json into out_dir.

    Returns the metrics written to ``metrics.json``.
    """
    stats_dir, out_dir = Path(stats_dir), Path(out_dir)
    stats = _normalise(_read_csv(stats_dir / STATS.file, STATS))
    controls = _read_csv(stats_dir / CONTROLS.file, CONTROLS, required=False)
    summary = _read_csv(stats_dir / SUMMARY.file, SUMMARY, required=False)
    failures = _read_csv(stats_dir / FAILURES.file, FAILURES, required=False)
    for frame in (stats, summary, failures):
        for col in ("note", "error", "consequence"):
            if col in frame.columns:
                frame[col] = frame[col].fillna("").astype(str)
    runs = load_runs(runs_paths)
    envs = read_environment(environment_paths)
    equivalence = (_read_csv(Path(equivalence_path), EQUIVALENCE)
                   if equivalence_path is not None else None)
    tables = read_prevalence(stats_dir)
    dose = read_dose_tables(stats_dir)

    fig_dir = out_dir / "figures"
    dpi = params.figure_dpi
    figs: dict[str, Path | None] = {
        "dose": (dose_figure(dose, fig_dir / "dose_response.png", dpi)
                 if dose is not None else None),
        "energy": figures.energy_per_pair(runs, fig_dir / "energy_per_pair.png", dpi),
        "forest": figures.forest(stats, fig_dir / "forest.png", dpi),
        "memory": figures.memory(runs, fig_dir / "memory.png", dpi),
        "rss": figures.rss_over_time(runs, fig_dir / "rss_over_time.png", dpi),
        "prevalence": (figures.prevalence_bars(tables["prevalence"], fig_dir / "prevalence.png",
                                               dpi) if tables is not None else None),
        "survival": (figures.survival_curves(tables["survival"], fig_dir / "survival.png", dpi,
                                                 lifetimes=tables["lifetimes"])
                     if tables is not None else None),
    }
    for stale in fig_dir.glob("*.png") if fig_dir.is_dir() else []:
        if stale not in {p for p in figs.values() if p is not None}:
            stale.unlink()
    _plots(stats, runs, tables, out_dir / "plots")

    metrics = headline(stats, alpha)
    metrics["paper"] = {s: r.pct_change_energy for s, r in paper.SMELLS.items()}
    metrics["runs"] = {"total": len(runs), "ok": int((runs["status"] == "ok").sum()),
                       "failed": int((runs["status"] != "ok").sum())}
    if tables is not None:
        metrics["prevalence"] = {
            r.rule: {"instances": r.instances, "instances_per_kloc": r.instances_per_kloc,
                     "share_repos_affected": r.share_repos_affected,
                     "median_survival_days": r.median_survival_days, "share_fixed": r.share_fixed,
                     # issue 21: null when analyze had no recall table (or an old table)
                     **{c: getattr(r, c, None) for c in RECALL_METRICS}}
            for r in tables["prevalence"].itertuples()}
        overview = tables["overview"].iloc[0]
        metrics["mining"] = {"repos_total": int(overview["repos_total"]),
                             "repos_ok": int(overview["repos_ok"]),
                             "kloc": float(overview["kloc"]),
                             "instances": int(overview["instances"])}
    if dose is not None:
        metrics["dose"] = {
            f"{r.pair_id}/{r.framework}/{r.metric}": {
                "per_event": r.a_linear, "ci_low": r.a_linear_ci_low,
                "ci_high": r.a_linear_ci_high, "event": r.event}
            for r in dose["cost_model"].itertuples()}
    metrics = json_safe(metrics)

    text = build_markdown(params.title, runs, stats, summary, failures, equivalence, tables,
                          envs, figs, commands, metrics, alpha, controls=controls,
                          estimands=read_estimands(pairs_dir), dose=dose,
                          profile=params.profile)
    atomic_write_text(out_dir / "report.md", text)
    drawn = [p.name for p in figs.values() if p is not None]
    atomic_write_text(out_dir / "report.html",
                      to_html(text, out_dir, report_title(params.title, params.profile), drawn))
    atomic_write_json(out_dir / "metrics.json", metrics)
    return metrics



__all__ = ["headline", "read_environment", "read_estimands", "render_report"]
