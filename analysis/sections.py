"""The report's Markdown: its sections, tables and threats to validity, built from plain strings.

Every function takes the frames :mod:`leakwatt.analysis.report` read (``stats.csv``,
``summary.csv``, ``failures.csv``, the runs, the prevalence tables of ``analyze``) and returns
Markdown; none reads a file.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from leakwatt.analysis import paper
from leakwatt.analysis.markup import fmt, fmt_ci, fmt_p, fmt_pct, fmt_share, isnum, md_table

ESTIMATED_SOURCES = {"cpu_load", "constant"}
HEADLINE_METRIC = "energy_kwh"
PRIMARY_TEST = "wilcoxon"
LIBRARIES = ("numpy", "pandas", "scipy", "statsmodels", "matplotlib", "markdown-it-py",
             "codecarbon", "tensorflow", "dvc")
EQUIVALENT = "equivalent"
CODECARBON_ACCURACY = ("an external validation (arXiv 2509.22092) found CodeCarbon's absolute "
                       "estimates off by up to 40 %")


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
            f"{fmt(r.effect_size, 3)} ({r.effect_size_name})" if isnum(r.effect_size) else "",
            fmt_p(r.shapiro_p), fmt(r.power, 2), fmt(r.n_needed, 6), r.status,
            r.note if isinstance(r.note, str) else ""])
    return md_table(headers, rows)


def summary_table(summary: pd.DataFrame) -> str:
    headers = ["smell", "device", "metric", "pairs", "tested", "median % change",
               "range", "pairs up", "significant (Wilcoxon / t)", "note"]
    rows = []
    for r in summary.itertuples():
        rng = (f"{fmt_pct(r.min_pct_change)} to {fmt_pct(r.max_pct_change)}"
               if isnum(r.min_pct_change) else "")
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
        bad = equivalence[equivalence["status"].astype(str) != EQUIVALENT]
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
    overview = {k: (int(v) if k != "kloc" and isnum(v) else v)
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
              if isnum(r.share_fixed) or isnum(r.share_deleted) else ""),
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

__all__ = ["build_markdown", "environment_section", "failures_section", "figure_md", "flatten",
           "library_versions", "paper_table", "power_source_paragraph", "prevalence_section",
           "stats_table", "summary_table", "threats"]
