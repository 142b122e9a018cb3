"""The ``report`` stage: report.md, a self-contained report.html, figures, metrics.json, plots.

The Markdown is built from plain strings; the HTML is the same Markdown rendered with
markdown-it-py (CommonMark + tables), with every figure embedded as a base64 PNG data URI so the
file opens anywhere on its own. Every number comes from ``stats.csv``/``summary.csv``/
``failures.csv`` (the ``analyze`` stage), the runs files, the mining outputs and the
environment files, so it can be traced through ``dvc.lock``.
"""

from __future__ import annotations

import base64
import html
import json
import math
import platform
import re
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from markdown_it import MarkdownIt

from leakwatt.analysis import figures, paper
from leakwatt.analysis.prevalence import prevalence_from_dir
from leakwatt.analysis.stats import (
    FAILURES_COLUMNS,
    STATS_COLUMNS,
    SUMMARY_COLUMNS,
    load_runs,
)
from leakwatt.common import LeakwattError, atomic_write_csv, atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from leakwatt.params import ReportParams

ESTIMATED_SOURCES = {"cpu_load", "constant"}
HEADLINE_METRIC = "energy_kwh"
PRIMARY_TEST = "wilcoxon"
LIBRARIES = ("numpy", "pandas", "scipy", "statsmodels", "matplotlib", "markdown-it-py",
             "codecarbon", "tensorflow", "dvc")
EQUIVALENCE_OK = {"ok", "pass", "passed", "equivalent"}
CODECARBON_ACCURACY = ("an external validation (arXiv 2509.22092) found CodeCarbon's absolute "
                       "estimates off by up to 40 %")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;line-height:1.45;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.85em;display:block;max-width:100%;
width:max-content;overflow-x:auto;
font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
span.n{white-space:nowrap}
th{background:#f2f2f2} img{max-width:100%;height:auto;border:1px solid #eee}
p:has(> img){margin-bottom:0.2em} p:has(> img) + p{margin-top:0;font-size:0.9em;color:#444}
code,pre{background:#f6f6f6} pre{padding:0.6em;overflow-x:auto}
"""


# ----------------------------------------------------------------------------- formatting


def _isnum(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def fmt(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits; '' for missing or undefined values."""
    if not _isnum(value):
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) \
            else str(value)
    return f"{float(value):.{digits}g}"


def fmt_pct(value: Any, digits: int = 2) -> str:
    return f"{float(value):+.{digits}f} %" if _isnum(value) else ""


def fmt_p(value: Any) -> str:
    if not _isnum(value):
        return ""
    value = float(value)
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"


def fmt_ci(low: Any, high: Any) -> str:
    if not (_isnum(low) and _isnum(high)):
        return ""
    return f"[{float(low):+.2f}, {float(high):+.2f}]"


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub/CommonMark pipe table."""
    out = ["| " + " | ".join(_cell(h) for h in headers) + " |",
           "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.integer | int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value) if math.isfinite(float(value)) else None
    return value


# ----------------------------------------------------------------------------- inputs


def _read_csv(path: Path, columns: Sequence[str], required: bool = True) -> pd.DataFrame:
    if not path.is_file():
        if required:
            raise LeakwattError(f"{path}: not found (run the analyze stage first)")
        return pd.DataFrame(columns=list(columns))
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise LeakwattError(f"{path}: empty file (no header line)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LeakwattError(f"{path}: cannot parse: {str(exc).splitlines()[0]}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise LeakwattError(f"{path}: line 1: missing column(s) {', '.join(missing)}")
    return frame


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


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = ", ".join(str(v) for v in value)
        else:
            out[name] = value
    return out


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


# ----------------------------------------------------------------------------- metrics


def headline(stats: pd.DataFrame, alpha: float = 0.05) -> dict[str, Any]:
    """Per pair and per smell x device: % change in energy, CI, p_adj and n (for metrics.json)."""
    energy = stats[stats["metric"] == HEADLINE_METRIC]
    pairs: dict[str, Any] = {}
    for (pair_id, device), group in energy.groupby(["pair_id", "device"], sort=True):
        by_test = {r.test: r for r in group.itertuples()}
        first = group.iloc[0]
        entry = {
            "smell": first["smell"], "n": first["n"], "status": first["status"],
            "pct_change_energy": first["pct_change"], "ci_low": first["ci_low"],
            "ci_high": first["ci_high"],
        }
        for test, row in by_test.items():
            entry[f"p_adj_{test}"] = row.p_adj
        pairs.setdefault(str(pair_id), {})[str(device)] = entry
    smells: dict[str, Any] = {}
    primary = energy[energy["test"] == PRIMARY_TEST]
    for (smell, device), group in primary.groupby(["smell", "device"], sort=True):
        usable = group[~group["status"].isin(["insufficient data", "all failed"])]
        pct = usable["pct_change"].dropna()
        smells.setdefault(str(smell), {})[str(device)] = {
            "pairs": int(len(group)),
            "pct_change_energy": float(pct.median()) if len(pct) else None,
            "p_adj": float(group["p_adj"].max()) if group["p_adj"].notna().any() else None,
            "n": int(group["n"].min()) if len(group) else 0,
            "pairs_significant": int((group["p_adj"] < alpha).sum()),
            "paper_pct_change_energy": (paper.SMELLS[smell].pct_change_energy
                                        if smell in paper.SMELLS else None),
        }
    return {"pairs": pairs, "smells": smells}


# ----------------------------------------------------------------------------- sections


def power_source_paragraph(runs: pd.DataFrame) -> str:
    ok = runs[runs["status"] == "ok"]
    counts = ok["cpu_power_source"].replace("", "unknown").value_counts()
    total = int(counts.sum())
    if total == 0:
        return ("**No run completed**, so this report has no energy measurement to show; the "
                "failures are listed below.")
    described = ", ".join(f"{k}: {v}" for k, v in counts.items())
    estimated = int(sum(v for k, v in counts.items() if k in ESTIMATED_SOURCES))
    unknown = int(sum(v for k, v in counts.items()
                      if k not in ESTIMATED_SOURCES and k != "rapl"))
    parts = []
    if estimated:
        parts.append(
            f"**CPU energy is an estimate, not a measurement, for {estimated} of {total} "
            f"completed runs** (CPU power source {described}): CodeCarbon could not read Intel "
            "RAPL counters and estimated CPU power from the processor's TDP and its load "
            "(`cpu_load`) or as a constant (`constant`). On such runs energy is close to "
            "duration times a near-constant power, so an energy difference mostly restates a "
            "duration difference and cannot show a leak's extra power.")
    elif unknown:
        parts.append(f"CPU power source of the completed runs: {described}; runs whose source is "
                     "not `rapl` may be estimates.")
    else:
        parts.append(f"CPU energy was measured from Intel RAPL counters for all {total} completed "
                     "runs.")
    if (ok["device"] == "gpu").any():
        parts.append("GPU energy comes from NVML.")
    parts.append("RAM energy is CodeCarbon's estimate from installed memory, not a measurement.")
    return " ".join(parts)


def paper_table(stats: pd.DataFrame) -> str:
    energy = stats[(stats["metric"] == HEADLINE_METRIC) & (stats["test"] == PRIMARY_TEST)]
    co2 = stats[(stats["metric"] == "emissions_kg") & (stats["test"] == PRIMARY_TEST)]
    co2_by = {(r.pair_id, r.device): r for r in co2.itertuples()}
    headers = ["smell", f"paper kWh ({paper.DEVICE})", "paper CO2 kg", "paper change",
               "this study: pair (device)", "clean kWh (mean)", "smelly kWh (mean)",
               "clean CO2 kg", "smelly CO2 kg", "energy change [95 % CI]", "CO2 change",
               "p_adj (Wilcoxon)", "n"]
    rows: list[list[Any]] = [["clean baseline", f"{paper.CLEAN.energy_kwh:.6f}",
                              f"{paper.CLEAN.emissions_kg:.6f}", "—", "each pair's clean variant",
                              "", "", "", "", "", "", "", ""]]
    smells = list(paper.SMELLS) + sorted(set(energy["smell"]) - set(paper.SMELLS))
    for smell in smells:
        ref = paper.SMELLS.get(smell)
        ref_cells = ([f"{ref.energy_kwh:.6f}", f"{ref.emissions_kg:.6f}",
                      fmt_pct(ref.pct_change_energy)
                      + (f" (CO2 {fmt_pct(ref.pct_change_emissions)})"
                         if ref.pct_change_emissions != ref.pct_change_energy else "")]
                     if ref else ["—", "—", "not in the paper"])
        mine = energy[energy["smell"] == smell].sort_values(["pair_id", "device"])
        if mine.empty:
            rows.append([smell, *ref_cells, "not measured in this study", *[""] * 8])
            continue
        for r in mine.itertuples():
            c = co2_by.get((r.pair_id, r.device))
            rows.append([
                smell, *ref_cells, f"{r.pair_id} ({r.device})", fmt(r.mean_clean),
                fmt(r.mean_smelly), fmt(c.mean_clean) if c else "",
                fmt(c.mean_smelly) if c else "",
                f"{fmt_pct(r.pct_change)} {fmt_ci(r.ci_low, r.ci_high)}".strip()
                + ("" if r.status == "tested" else f" ({r.status})"),
                fmt_pct(c.pct_change) if c else "", fmt_p(r.p_adj), r.n])
    return md_table(headers, rows)


def stats_table(stats: pd.DataFrame) -> str:
    headers = ["pair (device)", "metric", "test", "n", "% change [95 % CI]", "p", "p_adj",
               "effect size", "Shapiro p", "power", "pairs for 5 %", "status", "note"]
    rows = []
    for r in stats.itertuples():
        rows.append([
            f"{r.pair_id} ({r.device})", r.metric, r.test, r.n,
            f"{fmt_pct(r.pct_change)} {fmt_ci(r.ci_low, r.ci_high)}".strip(), fmt_p(r.p_value),
            fmt_p(r.p_adj),
            f"{fmt(r.effect_size, 3)} ({r.effect_size_name})" if _isnum(r.effect_size) else "",
            fmt_p(r.shapiro_p), fmt(r.power, 2), fmt(r.n_needed, 6), r.status,
            r.note if isinstance(r.note, str) else ""])
    return md_table(headers, rows)


def summary_table(summary: pd.DataFrame) -> str:
    headers = ["smell", "device", "metric", "pairs", "tested", "median % change",
               "range", "pairs up", "significant (Wilcoxon / t)", "note"]
    rows = []
    for r in summary.itertuples():
        rng = (f"{fmt_pct(r.min_pct_change)} to {fmt_pct(r.max_pct_change)}"
               if _isnum(r.min_pct_change) else "")
        rows.append([r.smell, r.device, r.metric, r.pairs, r.pairs_tested,
                     fmt_pct(r.median_pct_change), rng, r.pairs_increase,
                     f"{r.significant_wilcoxon} / {r.significant_paired_t}",
                     r.note if isinstance(r.note, str) else ""])
    return md_table(headers, rows)


def failures_section(stats: pd.DataFrame, failures: pd.DataFrame,
                     equivalence: pd.DataFrame | None) -> str:
    parts = []
    if failures.empty:
        parts.append("Every run completed and every repetition has both variants.")
    else:
        counts = failures["status"].value_counts()
        parts.append(f"{len(failures)} run(s) left out of the paired statistics ("
                     + ", ".join(f"{v} {k}" for k, v in counts.items()) + "):")
        rows = [[f"{r.pair_id} ({r.device})", r.variant, r.rep, r.status,
                 r.error if isinstance(r.error, str) else "", r.consequence]
                for r in failures.itertuples()]
        parts.append(md_table(["pair (device)", "variant", "rep", "status", "error",
                               "consequence"], rows))
    untested = stats[stats["status"] != "tested"]
    if len(untested):
        rows = []
        for (pair_id, device, metric), group in untested.groupby(
                ["pair_id", "device", "metric"], sort=True):
            first = group.iloc[0]
            test = "both" if len(group) > 1 else first["test"]
            rows.append([f"{pair_id} ({device})", metric, test, first["status"], first["note"]])
        parts.append("Comparisons not tested:")
        parts.append(md_table(["pair (device)", "metric", "test", "status", "why"], rows))
    if equivalence is not None and len(equivalence):
        bad = equivalence[~equivalence["status"].astype(str).str.lower().isin(EQUIVALENCE_OK)]
        if len(bad):
            parts.append(f"{len(bad)} pair(s) failed the equivalence check and were not "
                         "measured (their variants did not end with the same losses/weights):")
            parts.append(md_table(["pair", "status", "max rel. diff", "detail"], [
                [r.pair_id, r.status, fmt(r.max_rel_diff), r.detail]
                for r in bad.itertuples()]))
        else:
            parts.append(f"All {len(equivalence)} pair(s) passed the equivalence check.")
    return "\n\n".join(parts)


def threats(runs: pd.DataFrame, stats: pd.DataFrame, envs: list[dict[str, Any]],
            equivalence: pd.DataFrame | None, alpha: float) -> list[str]:
    """Threats to validity derived from the facts of this run."""
    out: list[str] = []
    ok = runs[runs["status"] == "ok"]
    sources = set(ok["cpu_power_source"]) - {""}
    if sources & ESTIMATED_SOURCES:
        out.append("**Measurement mode.** CPU power was estimated (" +
                   ", ".join(sorted(sources & ESTIMATED_SOURCES)) + "), not read from RAPL; "
                   "energy differences then track duration differences. Both variants of a "
                   "pair share the mode, so the comparison is fair, but it cannot show extra "
                   "power drawn by a leak.")
    out.append(f"**Meter accuracy.** All energies come from CodeCarbon; {CODECARBON_ACCURACY}. "
               "Differences measured side by side on one machine are more trustworthy than "
               "absolute kWh, so compare percentages, not kWh, with the paper.")
    scales = sorted(set(runs["scale"]) - {""}) if "scale" in runs.columns else []
    if not scales:
        scales = sorted({str(e.get("scale")) for e in envs if e.get("scale")})
    if scales and scales != [paper.SCALE]:
        out.append(f"**Scale.** Workloads ran at scale {', '.join(scales)}, not the paper's "
                   f"{paper.WORKLOAD}; absolute energies are not comparable with the paper's, "
                   "and a leak's cost may grow with the number of rounds.")
    elif not scales:
        out.append("**Scale.** The runs do not record their workload scale; compare with the "
                   f"paper's {paper.WORKLOAD} with care.")
    tested = stats[(stats["metric"] == HEADLINE_METRIC) & (stats["test"] == PRIMARY_TEST)]
    if len(tested):
        n_min, n_max = int(tested["n"].min()), int(tested["n"].max())
        min_p = 2.0 / 2 ** n_max if n_max else 1.0
        span = f"{n_min}" if n_min == n_max else f"{n_min}–{n_max}"
        text = (f"**Repetitions.** {span} complete repetitions per pair; with "
                f"{n_max} repetitions the exact two-sided Wilcoxon p-value cannot fall below "
                f"{min_p:.4g}")
        text += (f", so no Wilcoxon test here can reach p < {alpha}." if min_p >= alpha
                 else ".")
        low_power = stats[(stats["metric"] == HEADLINE_METRIC) & (stats["test"] == "paired_t")
                          & (stats["power"] < 0.8)]
        if len(low_power):
            text += (f" {len(low_power)} energy comparison(s) have achieved power below 0.8; "
                     "the `pairs for 5 %` column says how many pairs would detect a 5 % change.")
        out.append(text)
    devices = sorted(set(runs["device"]))
    gpu_names = sorted({str(e.get("gpu")) for e in envs if e.get("gpu")})
    cpu_names = sorted({str(e.get("cpu_model")) for e in envs if e.get("cpu_model")})
    if "gpu" not in devices:
        cpu = ", ".join(cpu_names) or "model not recorded"
        out.append(f"**Device.** Measured on CPU only ({cpu}); the paper measured on an "
                   f"{paper.DEVICE} GPU, where leaked "
                   "device memory and host-device traffic behave differently.")
    elif not any("T4" in name for name in gpu_names):
        out.append(f"**Device.** GPU runs used {', '.join(gpu_names) or 'an unrecorded GPU'}, "
                   f"not the paper's {paper.DEVICE}.")
    out.append("**Re-implementation.** The pairs are leakwatt's own re-implementations "
               "(`pipeline/repros`); the authors' code, architecture, batch size and injected "
               "code are unpublished, so this is a conceptual replication, not an exact one.")
    family = int(((stats["status"] == "tested") & stats["p_value"].notna()).sum())
    if family:
        out.append(f"**Multiple comparisons.** p_adj is Holm-adjusted over all {family} tests in "
                   "this report (every metric, pair, device and both tests).")
    energy_t = stats[(stats["metric"] == HEADLINE_METRIC) & stats["shapiro_p"].notna()
                     & (stats["test"] == "paired_t")]
    non_normal = int((energy_t["shapiro_p"] < alpha).sum())
    if non_normal:
        out.append(f"**Normality.** Shapiro-Wilk rejects normal paired differences for "
                   f"{non_normal} of {len(energy_t)} energy comparisons; prefer the Wilcoxon rows "
                   "there.")
    failed = int((runs["status"] != "ok").sum())
    if failed:
        out.append(f"**Failures.** {failed} of {len(runs)} runs did not complete; their "
                   "repetitions were excluded from both variants (listed above).")
    if equivalence is None:
        out.append("**Equivalence.** No equivalence-check results were given to the report; "
                   "that both variants of a pair do the same training work is assumed, "
                   "not shown here.")
    if "net_energy_kwh" not in runs.columns:
        out.append("**Idle power.** No idle baseline was analysed: energies are gross, "
                   "including the machine's idle draw, and percentages are relative to that "
                   "gross figure.")
    return out


def environment_section(envs: list[dict[str, Any]], runs: pd.DataFrame) -> str:
    parts = []
    if not envs:
        parts.append("No environment file was given to the report.")
    for env in envs:
        flat = flatten({k: v for k, v in env.items() if k != "_source"})
        parts.append(f"From `{env['_source']}`:")
        parts.append(md_table(["key", "value"], [[k, v] for k, v in sorted(flat.items())]))
    devices = runs.groupby("device")["status"].value_counts().unstack(fill_value=0)
    rows = [[device, *[int(devices.at[device, c]) if c in devices.columns else 0
                       for c in ("ok",)], int(devices.loc[device].sum())]
            for device in devices.index]
    parts.append(md_table(["device", "ok runs", "runs"], rows))
    return "\n\n".join(parts)


def prevalence_section(tables: dict[str, pd.DataFrame] | None, figs: dict[str, Path | None]
                       ) -> str:
    if tables is None:
        return "Mining outputs were not given to the report; no prevalence figures."
    overview = {k: (int(v) if k != "kloc" and _isnum(v) else v)
                for k, v in tables["overview"].iloc[0].items()}
    table = tables["prevalence"]
    parts = [f"{overview['repos_ok']} of {overview['repos_total']} repositories mined "
             f"({fmt(overview['kloc'])} KLOC); {overview['instances']} smell instances at the "
             f"pinned commits; {overview['events']} history events; "
             f"{overview['leak_commits']} commit(s) whose message speaks of leaks."]
    if table.empty:
        parts.append("No smell instance or history event was found.")
        return "\n\n".join(parts)
    rows = [[r.rule, r.instances, fmt(r.instances_per_kloc, 3),
             f"{r.repos_affected} / {r.repos_ok} ({fmt_share(r.share_repos_affected)})",
             r.introduced, r.removed,
             (f"{fmt_share(r.share_fixed)} / {fmt_share(r.share_deleted)}"
              if _isnum(r.share_fixed) or _isnum(r.share_deleted) else ""),
             fmt(r.median_survival_days, 4), fmt(r.median_survival_commits, 4),
             fmt(r.km_median_days, 4), r.still_present, r.note]
            for r in table.itertuples()]
    parts.append(md_table([
        "rule", "instances", "per KLOC", "repositories affected", "introduced", "removed",
        "fixed / file deleted", "median days to removal", "median commits to removal",
        "KM median days", "still present", "note"], rows))
    parts.append("Medians to removal cover removed instances only; the Kaplan-Meier median "
                 "also counts instances still present (censored at the last commit seen).")
    parts += [figure_md(figs, name) for name in ("prevalence", "survival") if figs.get(name)]
    return "\n\n".join(parts)


#: figure key -> (alt text, caption); the report numbers the figures it shows in this order.
FIGURES: dict[str, tuple[str, str]] = {
    "forest": ("% change in energy per pair, with the paper's results",
               "Change in energy, smelly vs clean, per pair and device: the mean change with its "
               "95 % paired-bootstrap CI (blue) and the paper's two results on an "
               f"{paper.DEVICE} (orange diamonds; the paper published no CI)."),
    "energy": ("Energy per variant per pair",
               "Energy of each completed run (Wh) per variant; grey lines join the clean and "
               "smelly runs of one repetition, bars mark the variant's mean."),
    "memory": ("Memory per variant",
               "Peak resident memory (MB) of each completed run per variant, for the UTR pairs "
               "(all pairs when there is none); grey lines join one repetition."),
    "rss": ("Resident memory over time",
            "Resident memory (MB) over each run, one line per run, from the harness's series "
            "files; a leak shows as a rising line."),
    "prevalence": ("Prevalence per rule",
                   "Smell instances per KLOC (left) and share of the mined repositories with at "
                   "least one instance (right), per rule, at the pinned commits."),
    "survival": ("Survival of smell instances",
                 "Kaplan-Meier estimate of the share of smell instances still present, by days "
                 "since the instance was introduced, with 95 % CIs (shaded); + marks instances "
                 "still present at the last commit seen (censored)."),
}


def figure_md(figs: dict[str, Path | None], name: str) -> str:
    """A figure and its numbered caption (its number from its place in ``FIGURES``)."""
    shown = [key for key in FIGURES if figs.get(key)]
    alt, caption = FIGURES[name]
    path = figs[name]
    if path is None:
        raise ValueError(f"figure {name!r} was not drawn")  # callers only ask for drawn figures
    return (f"![{alt}](figures/{path.name})\n\n"
            f"*Figure {shown.index(name) + 1}. {caption}*")


def fmt_share(value: Any) -> str:
    return f"{100 * float(value):.0f} %" if _isnum(value) else ""


# ----------------------------------------------------------------------------- rendering


#: In the HTML's table cells and list items, numbers with their unit, p-value bounds, CIs and
#: "k / n" counts stay on one line (text may wrap between them): "< 0.0001" never splits.
NUMBER_TOKEN = re.compile(
    r"\[[+-]?[\d.]+(?:e[+-]?\d+)?, [+-]?[\d.]+(?:e[+-]?\d+)?\]"        # a CI
    r"|&lt; \d[\d.]*"                                                  # a p-value bound
    r"|[+-]?\d[\d.]*(?:e[+-]?\d+)? %"                                    # a percentage
    r"|\b\d+ / \d+\b")                                                  # k of n


def _nowrap(match: re.Match[str]) -> str:
    return f'<span class="n">{match.group(0)}</span>'


def to_html(markdown_text: str, out_dir: Path, title: str) -> str:
    """Render Markdown to a standalone HTML page with every local figure inlined."""
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown_text)

    def inline(match: re.Match[str]) -> str:
        src = html.unescape(match.group(1))
        path = out_dir / src
        if src.startswith(("data:", "http:", "https:")) or not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([^"]+)"', inline, body)
    body = re.sub(r"<(td|li)>(.*?)</\1>",
                  lambda m: f"<{m[1]}>{NUMBER_TOKEN.sub(_nowrap, m[2])}</{m[1]}>", body)
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"{body}</body>\n</html>\n")


def _plots(stats: pd.DataFrame, runs: pd.DataFrame, tables: dict[str, pd.DataFrame] | None,
           plots_dir: Path) -> list[Path]:
    written = []
    energy = stats[(stats["metric"] == HEADLINE_METRIC) & (stats["test"] == PRIMARY_TEST)]
    pct = pd.DataFrame({
        "pair": energy["pair_id"] + " (" + energy["device"] + ")", "smell": energy["smell"],
        "device": energy["device"], "pct_change": energy["pct_change"],
        "ci_low": energy["ci_low"], "ci_high": energy["ci_high"], "n": energy["n"]})
    paper_rows = pd.DataFrame([{"pair": f"paper {s} ({paper.DEVICE})", "smell": s,
                                "device": "gpu", "pct_change": r.pct_change_energy}
                               for s, r in paper.SMELLS.items()])
    pct = pd.concat([pct, paper_rows], ignore_index=True)
    atomic_write_csv(plots_dir / "pct_change.csv", pct)
    written.append(plots_dir / "pct_change.csv")
    ok = runs[runs["status"] == "ok"]
    per_run = pd.DataFrame({
        "pair": ok["pair_id"] + " (" + ok["device"] + ")", "variant": ok["variant"],
        "rep": ok["rep"], "energy_kwh": ok["energy_kwh"], "duration_s": ok["duration_s"],
        "peak_rss_mb": ok["peak_rss_mb"]})
    atomic_write_csv(plots_dir / "energy_runs.csv", per_run)
    written.append(plots_dir / "energy_runs.csv")
    survival = (tables["survival"] if tables is not None
                else pd.DataFrame(columns=["rule", "time_unit", "time", "survival"]))
    days = survival[survival["time_unit"] == "days"][["rule", "time", "survival"]]
    atomic_write_csv(plots_dir / "survival.csv", days.rename(columns={"time": "days"}).copy(),
                     columns=["rule", "days", "survival"])
    written.append(plots_dir / "survival.csv")
    return written


def render_report(stats_dir: Path, runs_paths: Sequence[Path], mined_dir: Path | None,
                  out_dir: Path, params: ReportParams,
                  environment_paths: Sequence[Path] = (), equivalence_path: Path | None = None,
                  commands: Sequence[str] = (), alpha: float = 0.05) -> dict[str, Any]:
    """Write report.md, report.html, figures/*.png, plots/*.csv and metrics.json into out_dir.

    Returns the metrics written to ``metrics.json``.
    """
    stats_dir, out_dir = Path(stats_dir), Path(out_dir)
    stats = _read_csv(stats_dir / "stats.csv", STATS_COLUMNS)
    summary = _read_csv(stats_dir / "summary.csv", SUMMARY_COLUMNS, required=False)
    failures = _read_csv(stats_dir / "failures.csv", FAILURES_COLUMNS, required=False)
    for frame in (stats, summary, failures):
        for col in ("note", "error", "consequence"):
            if col in frame.columns:
                frame[col] = frame[col].fillna("").astype(str)
    runs = load_runs(runs_paths)
    envs = read_environment(environment_paths)
    equivalence = (_read_csv(Path(equivalence_path), ["pair_id", "status", "max_rel_diff",
                                                      "detail"])
                   if equivalence_path is not None else None)
    tables = prevalence_from_dir(Path(mined_dir)) if mined_dir is not None else None

    fig_dir = out_dir / "figures"
    dpi = params.figure_dpi
    figs: dict[str, Path | None] = {
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
                     "median_survival_days": r.median_survival_days, "share_fixed": r.share_fixed}
            for r in tables["prevalence"].itertuples()}
        overview = tables["overview"].iloc[0]
        metrics["mining"] = {"repos_total": int(overview["repos_total"]),
                             "repos_ok": int(overview["repos_ok"]),
                             "kloc": float(overview["kloc"]),
                             "instances": int(overview["instances"])}
    metrics = _json_safe(metrics)

    text = build_markdown(params.title, runs, stats, summary, failures, equivalence, tables,
                          envs, figs, commands, metrics, alpha)
    atomic_write_text(out_dir / "report.md", text)
    atomic_write_text(out_dir / "report.html", to_html(text, out_dir, params.title))
    atomic_write_json(out_dir / "metrics.json", metrics)
    return metrics


def build_markdown(title: str, runs: pd.DataFrame, stats: pd.DataFrame, summary: pd.DataFrame,
                   failures: pd.DataFrame, equivalence: pd.DataFrame | None,
                   tables: dict[str, pd.DataFrame] | None, envs: list[dict[str, Any]],
                   figs: dict[str, Path | None], commands: Sequence[str],
                   metrics: dict[str, Any], alpha: float) -> str:
    md: list[str] = [f"# {title}", power_source_paragraph(runs)]
    lines = []
    for smell, devices in metrics.get("smells", {}).items():
        for device, entry in devices.items():
            ref = entry.get("paper_pct_change_energy")
            t_rows = stats[(stats["metric"] == HEADLINE_METRIC) & (stats["test"] == "paired_t")
                           & (stats["smell"] == smell) & (stats["device"] == device)]
            lines.append(
                f"- **{smell}** on {device}: energy {fmt_pct(entry['pct_change_energy'])} "
                f"(median over {entry['pairs']} pair(s), {entry['pairs_significant']} "
                f"significant by Wilcoxon and {int((t_rows['p_adj'] < alpha).sum())} by paired t "
                f"at Holm-adjusted p < {alpha}, n >= {entry['n']} repetitions)"
                + (f"; the paper reported {fmt_pct(ref)} on an {paper.DEVICE}." if ref else "."))
    md.append("## Headline\n\n" + ("\n".join(lines) if lines
                                   else "No pair produced an energy comparison."))
    md.append("## The paper beside this study\n\n"
              f"The paper ({paper.SOURCE}) trained a {paper.WORKLOAD} on an {paper.DEVICE}, "
              f"measured with {paper.METER}. This study's numbers are means over complete "
              "repetitions; the change is 100 x (mean smelly - mean clean) / mean clean with a "
              "seeded paired bootstrap 95 % CI.\n\n" + paper_table(stats))
    fig_md = [figure_md(figs, name) for name in ("forest", "energy", "memory", "rss")
              if figs.get(name)]
    if not figs.get("energy"):
        fig_md.append("No completed run to plot energy for.")
    md.append("## Figures\n\n" + "\n\n".join(fig_md))
    md.append("## Paired statistics\n\n"
              "One row per pair x metric x test (`stats.csv`). Paired t-test with Cohen's d_z; "
              "Wilcoxon signed-rank (zero differences handled by Pratt's method) with the "
              "matched-pairs rank-biserial correlation; p_adj is Holm-adjusted over the whole "
              "table; power is the achieved power of the test at the observed effect, "
              "`pairs for 5 %` the pairs needed to detect a 5 % change with 80 % power.\n\n"
              + (stats_table(stats) if len(stats) else "No comparison could be made."))
    md.append("## Failures and excluded pairs\n\n" + failures_section(stats, failures,
                                                                      equivalence))
    md.append("## Per-smell summary\n\n" + (summary_table(summary) if len(summary)
                                            else "No summary rows."))
    md.append("## Prevalence in mined projects\n\n" + prevalence_section(tables, figs))
    md.append("## Threats to validity\n\n" + "\n".join(
        f"- {t}" for t in threats(runs, stats, envs, equivalence, alpha)))
    md.append("## Environment\n\n" + environment_section(envs, runs))
    versions = library_versions()
    cmd_block = "\n".join(commands) if commands else "(no commands recorded)"
    md.append("## Reproduce\n\nCommands that produced this report:\n\n```\n" + cmd_block
              + "\n```\n\nVersions used to render it:\n\n"
              + md_table(["package", "version"], sorted(versions.items())))
    return "\n\n".join(md) + "\n"


__all__ = ["build_markdown", "flatten", "fmt", "headline", "md_table", "read_environment",
           "render_report", "threats", "to_html"]
