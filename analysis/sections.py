"""The report's Markdown: its sections, tables and threats to validity, built from plain strings.

Every function takes the frames :mod:`leakwatt.analysis.report` read (``stats.csv``,
``summary.csv``, ``failures.csv``, the runs, the prevalence tables of ``analyze``) and returns
Markdown; none reads a file.
"""

from __future__ import annotations

import math
import platform
import warnings
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from leakwatt.analysis import paper
from leakwatt.analysis.markup import (
    fmt,
    fmt_ci,
    fmt_count,
    fmt_p,
    fmt_pct,
    fmt_share,
    inert,
    isnum,
    md_table,
)
from leakwatt.analysis.recall import corrected_text, recall_sources, recall_text

ESTIMATED_SOURCES = {"cpu_load", "constant"}
#: the defaults of analyze.primary, used only for a stats.csv written before ``family`` existed
HEADLINE_METRIC = "energy_kwh"
PRIMARY_TEST = "paired_t"
NOT_TESTED = ("insufficient data", "all failed", "no data")
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



def primary_rows(stats: pd.DataFrame) -> pd.DataFrame:
    """The pre-registered primary rows (``family`` = primary) of stats.csv."""
    if "family" in stats.columns and stats["family"].notna().any():
        return stats[stats["family"] == "primary"]
    return stats[(stats["metric"] == HEADLINE_METRIC) & (stats["test"] == PRIMARY_TEST)]


def primary_label(stats: pd.DataFrame) -> tuple[str, str]:
    """(metric, test) of the primary family."""
    rows = primary_rows(stats)
    if len(rows):
        return str(rows["metric"].iloc[0]), str(rows["test"].iloc[0])
    return HEADLINE_METRIC, PRIMARY_TEST


TEST_NAMES = {"paired_t": "paired t", "wilcoxon": "Wilcoxon"}


def data_source_sentence(runs: pd.DataFrame) -> str:
    ok = runs[runs["status"] == "ok"]
    if "data_source" not in runs.columns or not ok["data_source"].astype(str).str.strip().ne(
            "").any():
        return ("The runs do not record their data source (synthetic data or real CIFAR-10); "
                "they predate the `data_source` column.")
    counts = ok["data_source"].astype(str).str.strip().replace("", "unrecorded").value_counts()
    described = ", ".join(f"{inert(k)}: {v}" for k, v in counts.items())
    if set(counts.index) == {"synthetic"}:
        return (f"**The programs trained on synthetic data**, not CIFAR-10 ({described} "
                "completed runs): the shapes and work match, the learning does not.")
    return f"Training data of the completed runs: {described}."


def load_sentence(stats: pd.DataFrame, runs: pd.DataFrame) -> str:
    if not {"load_start", "load_end"} & set(runs.columns):
        return ""
    if "n_foreign_load" not in stats.columns or stats["n_foreign_load"].isna().all():
        return ""
    units = stats.drop_duplicates(["pair_id", "device", "framework"])
    flagged = int(pd.to_numeric(units["n_foreign_load"], errors="coerce").fillna(0).sum())
    if not flagged:
        return "No run was measured under foreign load (1-minute load average, `analyze.max_load`)."
    return (f"**{flagged} of {len(runs)} runs were measured under foreign load** (1-minute load "
            "average at their start or end above `analyze.max_load` x the core count): other "
            "work on the machine inflates their time and energy; the `n_foreign_load` column of "
            "stats.csv says which comparisons hold them.")


#: what each profile is for, said in the report's first paragraph
PROFILE_PURPOSE = {
    "full": "the full study (`dvc repro`)",
    "demo": "the offline demo: a smoke run of the pipeline, too few repetitions to price a leak",
    "reference": "the CPU reference measurement of the paper's pairs",
    "gpu": "the paper's pairs at the paper's scale on a GPU",
    "dose": "the dose-response study: each leak measured at several doses",
}


def report_title(title: str, profile: str) -> str:
    """The report's title, naming the profile the run was made with."""
    return f"{title} ({profile} profile)" if profile else title


def _span(values: Sequence[Any]) -> str:
    unique = sorted({v for v in values if v == v and str(v) != ""}, key=str)
    if not unique:
        return "unknown"
    if all(isinstance(v, int | float) for v in unique) and len(unique) > 1:
        return f"{fmt(min(unique), 6)}-{fmt(max(unique), 6)}"
    return ", ".join(str(v) for v in unique)


def run_description(runs: pd.DataFrame, profile: str) -> str:
    """The report's first paragraph: the profile, its repetitions, scale, levels and devices,
    read from the runs themselves (so a demo can never pass for the study)."""
    purpose = PROFILE_PURPOSE.get(profile, f"profile {profile}")
    ok = runs[runs["status"] == "ok"] if "status" in runs.columns else runs
    if "instrumented" in ok.columns:
        ok = ok[pd.to_numeric(ok["instrumented"], errors="coerce").fillna(0) == 0]
    unit = [c for c in ("pair_id", "device", "framework", "variant", "dose") if c in ok.columns]
    reps = ok.groupby(unit, dropna=False).size().tolist() if len(ok) and unit else []
    parts = [f"This report is a run of the **{inert(profile)}** profile ({purpose}):",
             f"{_span([int(r) for r in reps])} counted repetitions per program"
             if reps else "no counted repetition",
             f"at scale {inert(_span(ok['scale'].tolist()))}" if "scale" in ok.columns else "",
             f"under {inert(_span(ok['framework'].tolist()))}"
             if "framework" in ok.columns else "",
             f"on {inert(_span(ok['device'].tolist()))}" if "device" in ok.columns else "",
             f"({len(ok)} counted runs of {ok['pair_id'].nunique()} pairs)."
             if "pair_id" in ok.columns else "."]
    return " ".join(p for p in parts if p)


def power_source_paragraph(runs: pd.DataFrame, stats: pd.DataFrame | None = None) -> str:
    text = _power_sources(runs)
    extra = [data_source_sentence(runs)]
    if stats is not None:
        extra.append(load_sentence(stats, runs))
    return " ".join([text, *[e for e in extra if e]])


def _power_sources(runs: pd.DataFrame) -> str:
    ok = runs[runs["status"] == "ok"]
    counts = ok["cpu_power_source"].replace("", "unknown").value_counts()
    total = int(counts.sum())
    if total == 0:
        return ("**No run completed**, so this report has no energy measurement to show; the "
                "failures are listed below.")
    described = ", ".join(f"{inert(k)}: {v}" for k, v in counts.items())
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


def carbon_intensity(runs: pd.DataFrame) -> dict[str, float]:
    """kg CO2 per kWh per device, from the ok runs (emissions_kg / energy_kwh)."""
    ok = runs[runs["status"] == "ok"]
    out: dict[str, float] = {}
    for device, group in ok.groupby("device"):
        energy = pd.to_numeric(group["energy_kwh"], errors="coerce").sum()
        co2 = pd.to_numeric(group["emissions_kg"], errors="coerce").sum()
        if energy > 0:
            out[str(device)] = float(co2 / energy)
    return out


def paper_table(stats: pd.DataFrame, intensity: dict[str, float] | None = None) -> str:
    """The paper's rows beside this study's primary rows; CO2 is derived (energy x intensity)."""
    energy = primary_rows(stats)
    intensity = intensity or {}
    metric, test = primary_label(stats)
    headers = ["smell", f"paper kWh ({paper.DEVICE})", "paper CO2 kg", "paper change",
               "framework", "this study: pair (device)", f"clean {metric} (mean)",
               f"smelly {metric} (mean)", "clean CO2 kg", "smelly CO2 kg",
               "change [95 % CI]", f"p_adj ({TEST_NAMES.get(test, test)})", "n"]
    rows: list[list[Any]] = [["clean baseline", f"{paper.CLEAN.energy_kwh:.6f}",
                              f"{paper.CLEAN.emissions_kg:.6f}", "—", "",
                              "each pair's clean variant", "", "", "", "", "", "", ""]]
    smells = list(paper.SMELLS) + sorted(set(energy["smell"]) - set(paper.SMELLS))
    for smell in smells:
        ref = paper.SMELLS.get(smell)
        ref_cells = ([f"{ref.energy_kwh:.6f}", f"{ref.emissions_kg:.6f}",
                      fmt_pct(ref.pct_change_energy)
                      + (f" (CO2 {fmt_pct(ref.pct_change_emissions)})"
                         if ref.pct_change_emissions != ref.pct_change_energy else "")]
                     if ref else ["—", "—", "not in the paper"])
        mine = energy[energy["smell"] == smell].sort_values(["pair_id", "device", "framework"])
        if mine.empty:
            rows.append([smell, *ref_cells, "", "not measured in this study", *[""] * 7])
            continue
        for r in mine.itertuples():
            k = intensity.get(r.device) if metric == "energy_kwh" else None
            rows.append([
                smell, *ref_cells, r.framework, f"{r.pair_id} ({r.device})",
                fmt(r.mean_clean), fmt(r.mean_smelly),
                fmt(r.mean_clean * k) if k and isnum(r.mean_clean) else "",
                fmt(r.mean_smelly * k) if k and isnum(r.mean_smelly) else "",
                f"{fmt_pct(r.pct_change)} {fmt_ci(r.ci_low, r.ci_high)}".strip()
                + ("" if r.status == "tested" else f" ({r.status})")
                + ("" if _reliable(r) else " (CI unreliable)"),
                fmt_p(r.p_adj), r.n])
    return md_table(headers, rows)


def _reliable(r: Any) -> bool:
    value = getattr(r, "ci_reliable", True)
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0")
    return bool(value) if isinstance(value, bool | int | float) and value == value else True


def stats_table(stats: pd.DataFrame) -> str:
    headers = ["pair (device, framework)", "metric", "test", "family", "n",
               "% change [95 % CI, unadjusted]", "p", "p_adj", "effect size",
               "Shapiro p", "pairs for 5 %", "status", "note"]
    rows = []
    for r in stats.itertuples():
        ci = fmt_ci(r.ci_low, r.ci_high)
        if ci and not _reliable(r):
            ci += " (unreliable)"
        rows.append([
            f"{r.pair_id} ({r.device}, {r.framework})", r.metric, r.test, r.family, r.n,
            f"{fmt_pct(r.pct_change)} {ci}".strip(), fmt_p(r.p_value),
            fmt_p(r.p_adj),
            f"{fmt(r.effect_size, 3)} ({r.effect_size_name})" if isnum(r.effect_size) else "",
            fmt_p(r.shapiro_p), fmt(r.n_needed, 6), r.status,
            r.note if isinstance(r.note, str) else ""])
    return md_table(headers, rows)


def pooled_estimates(stats: pd.DataFrame, estimands: dict[str, str] | None,
                     no_interval: list[str] | None = None
                     ) -> tuple[list[list[Any]], list[str]]:
    """Random-effects % change per smell x device x framework x estimand (2+ pairs), and the
    pairs shown one by one (no estimand, or alone in theirs).

    Pairs are pooled only when they estimate the same thing (the ``estimand`` of pairs.csv):
    ``statsmodels.stats.meta_analysis.combine_effects`` (DerSimonian-Laird) on each pair's
    log ratio of means with its delta-method variance, back-transformed to a % change. A group
    whose pooled interval cannot be computed is not pooled (no estimate without its interval):
    the group and its pairs are named in ``no_interval`` when a list is given.
    """
    from statsmodels.stats.meta_analysis import combine_effects

    rows = primary_rows(stats)
    rows = rows[~rows["status"].isin(NOT_TESTED)].copy()
    estimands = estimands or {}
    rows["estimand"] = rows["pair_id"].map(lambda p: estimands.get(p, ""))
    pooled: list[list[Any]] = []
    alone: list[str] = []
    for (smell, device, framework, estimand), group in rows.groupby(
            ["smell", "device", "framework", "estimand"], sort=True):
        lr = pd.to_numeric(group.get("log_ratio"), errors="coerce")
        se = pd.to_numeric(group.get("log_ratio_se"), errors="coerce")
        usable = group[(lr.notna() & (se > 0)).to_numpy()]
        if not estimand or len(usable) < 2:
            alone += [f"{r.pair_id} ({r.device}, {r.framework})" for r in group.itertuples()]
            continue
        # statsmodels also computes the WLS-scaled variants, whose scale can be negative for
        # two or three pairs (sqrt of a negative: RuntimeWarning); only the DerSimonian-Laird
        # random effect is used here, and it is checked below
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = combine_effects(lr[usable.index].to_numpy(float),
                                  (se[usable.index].to_numpy(float)) ** 2,
                                  method_re="dl", use_t=False)
            frame = res.summary_frame()
        eff, low, high = frame.loc["random effect", ["eff", "ci_low", "ci_upp"]]
        if not all(math.isfinite(float(v)) for v in (eff, low, high)):
            # no estimate without its interval (issue 20): say why, and show the pairs alone
            if no_interval is not None:
                no_interval.append(f"{smell} ({device}, {framework}, {estimand}; pairs "
                                   f"{', '.join(sorted(usable['pair_id']))})")
            continue
        pct = [100 * (math.exp(v) - 1) for v in (eff, low, high)]
        pooled.append([smell, device, framework, estimand, len(usable),
                       f"{fmt_pct(pct[0])} {fmt_ci(pct[1], pct[2])}",
                       fmt(max(0.0, float(res.tau2)), 3),
                       ", ".join(sorted(usable["pair_id"]))])
    return pooled, alone


def pooled_section(stats: pd.DataFrame, summary: pd.DataFrame,
                   estimands: dict[str, str] | None) -> str:
    no_interval: list[str] = []
    pooled, alone = pooled_estimates(stats, estimands, no_interval)
    parts = []
    if pooled:
        parts.append("Random-effects estimates (DerSimonian-Laird, statsmodels) of the primary "
                     "metric's change, over pairs that estimate the same thing (their "
                     "`estimand` in pairs.csv); pairs with different estimands are never "
                     "pooled:")
        parts.append(md_table(["smell", "device", "framework", "estimand", "pairs",
                               "pooled change [95 % CI]", "tau²", "pairs pooled"], pooled))
    if no_interval:
        parts.append("No pooled estimate for " + ", ".join(inert(g) for g in no_interval)
                     + ": the random-effects interval could not be computed (its variance "
                     "estimate is not finite), and an estimate is not shown without its "
                     "interval; read its pairs one by one in the headline table.")
    if alone:
        parts.append("No pooled estimate for " + ", ".join(alone) + ": "
                     + ("no pairs.csv estimand was given to the report"
                        if not estimands else "no other pair shares its estimand")
                     + "; read these pairs one by one in the headline table.")
    if not parts:
        parts.append("No primary comparison was tested.")
    if len(summary):
        parts.append("Descriptive counts per smell (`summary.csv`; the range spans pairs that "
                     "may estimate different things, so it is no effect estimate):")
        parts.append(summary_table(summary))
    return "\n\n".join(parts)


def summary_table(summary: pd.DataFrame) -> str:
    headers = ["smell", "device", "framework", "metric", "pairs", "tested", "median % change",
               "range", "pairs up", "significant (primary, Holm)", "note"]
    rows = []
    for r in summary.itertuples():
        rng = (f"{fmt_pct(r.min_pct_change)} to {fmt_pct(r.max_pct_change)}"
               if isnum(r.min_pct_change) else "")
        framework = getattr(r, "framework", "")
        rows.append([r.smell, r.device, framework if isinstance(framework, str) else "",
                     r.metric, r.pairs, r.pairs_tested,
                     fmt_pct(r.median_pct_change), rng, r.pairs_increase,
                     f"{r.significant_wilcoxon + r.significant_paired_t}",
                     r.note if isinstance(r.note, str) else ""])
    return md_table(headers, rows)


def failures_section(stats: pd.DataFrame, failures: pd.DataFrame,
                     equivalence: pd.DataFrame | None) -> str:
    parts = []
    failures = failures.copy()
    for col in ("framework", "metric", "variant", "pair_id"):
        if col not in failures.columns:
            failures[col] = ""
        failures[col] = failures[col].fillna("").astype(str)
    absent = failures[failures["status"] == "absent"]
    left = failures[failures["status"] != "absent"]
    if left.empty:
        parts.append("Every run completed, every repetition has both variants and every "
                     "compared value is present.")
    else:
        counts = left["status"].value_counts()
        parts.append(f"{len(left)} run(s) or value(s) left out of the paired statistics ("
                     + ", ".join(f"{v} {k}" for k, v in counts.items()) + "):")
        rows = [[f"{r.pair_id} ({r.device}, {r.framework or 'keras3'})", r.variant,
                 int(r.rep) if isnum(r.rep) else r.rep,
                 r.status, r.error if isinstance(r.error, str) else "", r.consequence]
                for r in left.itertuples()]
        parts.append(md_table(["pair (device, framework)", "variant", "rep", "status", "error",
                               "consequence"], rows))
    if len(absent):
        parts.append("Metrics not compared at all: " + "; ".join(
            f"{inert(r.metric)} on {inert(r.device)} ({inert(r.error)})"
            for r in absent.itertuples()) + ".")
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
            equivalence: pd.DataFrame | None, alpha: float,
            summary: pd.DataFrame | None = None) -> list[str]:
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
    if not scales:  # environment.json keeps the scale under "measurement"
        scales = sorted({str(_env_scale(e)) for e in envs if _env_scale(e)})
    if scales and scales != [paper.SCALE]:
        out.append(f"**Scale.** Workloads ran at scale {inert(', '.join(scales))}, not the paper's "
                   f"{paper.WORKLOAD}; absolute energies are not comparable with the paper's, "
                   "and a leak's cost may grow with the number of rounds.")
    elif not scales:
        out.append("**Scale.** The runs do not record their workload scale; compare with the "
                   f"paper's {paper.WORKLOAD} with care.")
    metric, test = primary_label(stats)
    tested = primary_rows(stats)
    tested = tested[~tested["status"].isin(NOT_TESTED)]
    if len(tested):
        n_min, n_max = int(tested["n"].min()), int(tested["n"].max())
        span = f"{n_min}" if n_min == n_max else f"{n_min}–{n_max}"
        text = f"**Repetitions.** {span} complete repetitions per comparison."
        wil = stats[(stats["metric"] == metric) & (stats["test"] == "wilcoxon")
                    & (stats["status"] == "tested")]
        floor = [f"{r.pair_id} ({r.device}, {r.framework}, n = {int(r.n)}: p >= "
                 f"{2.0 / 2 ** int(r.n):.4g})" for r in wil.itertuples()
                 if 2.0 / 2 ** int(r.n) >= alpha]
        if floor:
            text += (f" With so few pairs the exact two-sided Wilcoxon p cannot reach {alpha} "
                     f"for {', '.join(floor)}.")
        unreliable = [r for r in tested.itertuples() if not _reliable(r)]
        if unreliable:
            text += (f" {len(unreliable)} primary comparison(s) have fewer repetitions than "
                     "`analyze.min_ci_n`, below which the CI's coverage was not shown "
                     "(benchmarks/ci_coverage.py); their CIs are marked unreliable.")
        needed = pd.to_numeric(tested["n_needed"], errors="coerce")
        short = tested[needed > pd.to_numeric(tested["n"], errors="coerce")]
        if len(short):
            text += (f" {len(short)} primary comparison(s) have fewer pairs than a 5 % change "
                     "would need for 80 % power at the alpha their family gives them (the "
                     "`pairs for 5 %` column; no post-hoc power is reported).")
        out.append(text)
    devices = sorted(set(runs["device"]))
    gpu_names = sorted({name for e in envs for name in _env_gpus(e)})
    cpu_names = sorted({str(e.get("cpu_model")) for e in envs if e.get("cpu_model")})
    if "gpu" not in devices:
        cpu = inert(", ".join(cpu_names)) or "model not recorded"
        out.append(f"**Device.** Measured on CPU only ({cpu}); the paper measured on an "
                   f"{paper.DEVICE} GPU, where leaked "
                   "device memory and host-device traffic behave differently.")
    elif not any("T4" in name for name in gpu_names):
        out.append(f"**Device.** GPU runs used {inert(', '.join(gpu_names)) or 'an unrecorded GPU'}, "
                   f"not the paper's {paper.DEVICE}.")
    out.append("**Re-implementation.** The pairs are leakwatt's own re-implementations "
               "(`pipeline/repros`); the authors' code, architecture, batch size and injected "
               "code are unpublished, so this is a conceptual replication, not an exact one.")
    primary = primary_rows(stats)
    family = int(((primary["status"] == "tested") & primary["p_value"].notna()).sum())
    if family:
        out.append(f"**Multiple comparisons.** The pre-registered primary analysis is "
                   f"{metric} by the {TEST_NAMES.get(test, test)} test (`analyze.primary`); its "
                   f"p_adj is Holm-adjusted over its {family} test(s) (pairs x devices x "
                   "frameworks). Every other row is exploratory: its p-value is unadjusted and "
                   "supports no claim on its own.")
    energy_t = stats[(stats["metric"] == metric) & stats["shapiro_p"].notna()
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
    out.append(idle_threat(stats, summary))
    return out


def idle_threat(stats: pd.DataFrame, summary: pd.DataFrame | None) -> str:
    """What the report can say about net energy (energy above the idle baseline)."""
    if (stats["metric"] == "net_energy_kwh").any():
        return ("**Idle power.** Net energy (energy minus the measured idle power x duration) is "
                "analysed beside gross energy; its rows are exploratory.")
    skipped = (summary[(summary["metric"] == "net_energy_kwh")
                       & summary["note"].astype(str).str.startswith("skipped:")]
               if summary is not None and len(summary) else pd.DataFrame())
    if len(skipped):
        why = "; ".join(sorted(set(skipped["note"].astype(str).str.removeprefix("skipped: "))))
        return ("**Idle power.** An idle baseline was recorded but net energy is not reported: "
                f"{why}. Energies are gross, including the machine's idle draw.")
    return ("**Idle power.** No idle baseline was analysed: energies are gross, including the "
            "machine's idle draw, and percentages are relative to that gross figure.")


def _env_scale(env: dict[str, Any]) -> Any:
    measurement = env.get("measurement")
    if isinstance(measurement, dict) and measurement.get("scale"):
        return measurement["scale"]
    return env.get("scale")


def _env_gpus(env: dict[str, Any]) -> list[str]:
    """GPU names of an environment.json (``gpus``: a list of {name, ...})."""
    gpus = env.get("gpus") or []
    names = []
    for gpu in gpus if isinstance(gpus, list) else []:
        name = gpu.get("name") if isinstance(gpu, dict) else gpu
        if name:
            names.append(str(name))
    return names


def environment_section(envs: list[dict[str, Any]], runs: pd.DataFrame) -> str:
    parts = []
    if not envs:
        parts.append("No environment file was given to the report.")
    for env in envs:
        flat = flatten({k: v for k, v in env.items() if k != "_source"})
        parts.append(f"From {inert(env['_source'])}:")
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
             fmt(r.km_median_days, 4), r.still_present,
             fmt_count(getattr(r, "lost_in_history", None)), r.note]
            for r in table.itertuples()]
    parts.append(md_table([
        "rule", "instances", "per KLOC", "repositories affected", "introduced", "removed",
        "fixed / file deleted", "median days to removal", "median commits to removal",
        "KM median days", "still present", "lost in history", "note"], rows))
    parts.append("Medians to removal cover removed instances only; the Kaplan-Meier median "
                 "also counts instances still present (censored at the pinned commit's date, or "
                 "at the last commit seen when repos.csv has no `pin_date`). Instances *lost in "
                 "history* (seen introduced, never seen removed, not at the pin: a snapshot gap "
                 "or a branching history walked as one line) are left out of it: their end is "
                 "unknown.")
    by_era = tables.get("by_era")
    correction = recall_correction(table, by_era)
    if correction:
        parts.append(correction)
    if by_era is not None and len(by_era):
        parts.append(era_table(by_era))
    parts += [figure_md(figs, name) for name in ("prevalence", "survival") if figs.get(name)]
    return "\n\n".join(parts)


#: what the recall correction does and does not do (leakwatt.analysis.recall), said wherever
#: corrected counts are shown
RECALL_CAVEAT = ("The correction divides each rule's observed instances by its recall on the "
                 "labelled set; its interval runs from observed / upper recall bound to observed / "
                 "lower recall bound, the recall's exact (Clopper-Pearson) 95 % interval. "
                 "It corrects instance counts for misses only, not the shares of repositories "
                 "affected; precision is shown beside it and not applied (its hard negatives are "
                 "not a sample of the findings); the interval covers the recall's uncertainty "
                 "only, the corpus being mined in full (a census), and assumes the labelled "
                 "set's recall holds in the corpus.")


def recall_correction(table: pd.DataFrame, by_era: pd.DataFrame | None = None) -> str:
    """Observed instances beside the recall-corrected ones, per rule (and per rule and era),
    naming the label set and commit the recall came from; '' for a table written before the
    correction existed."""
    if "corrected_instances" not in table.columns or table.empty:
        return ""
    sources = recall_sources(table)
    if not sources:
        notes = sorted({str(n) for n in table["correction_note"].fillna("") if str(n)})
        return ("Not corrected for the detectors' recall: "
                f"{inert('; '.join(notes)) or 'no recall table'}.")
    rows = [[r["rule"], int(r["instances"]), recall_text(r), fmt(r["precision"], 2),
             corrected_text(r), r["correction_note"]]
            for r in table.to_dict("records")]
    parts = [f"Observed and recall-corrected instances per rule. Recall from "
             f"{', '.join(inert(s) for s in sources)} (label set @ the commit of the detectors "
             "scored).",
             md_table(["rule", "observed instances", "recall (95 % CI), true sites",
                       "precision", "recall-corrected instances (95 % CI)", "note"], rows)]
    if by_era is not None and "corrected_instances" in by_era.columns and len(by_era):
        era_rows = [[r["rule"], r["era"], int(r["instances"]), corrected_text(r)]
                    for r in by_era.to_dict("records") if int(r["instances"])]
        if era_rows:
            parts.append("By era of the file (the same recall for both eras: the labelled sets "
                         "are not split by era):\n\n"
                         + md_table(["rule", "era", "observed instances",
                                     "recall-corrected instances (95 % CI)"], era_rows))
    parts.append(RECALL_CAVEAT)
    return "\n\n".join(parts)


#: figure key -> (alt text, caption); the report numbers the figures it shows in this order.
FIGURES: dict[str, tuple[str, str]] = {
    "dose": ("Time overhead against dose, per pair and Keras level",
             "Mean paired difference of the measured window (smelly - clean, seconds) at each "
             "dose with its 95 % t-interval, and the fitted cost curve a·dose + b·dose² "
             "(`cost_model.csv`)."),
    "forest": ("% change in energy per pair, with the paper's results",
               "Change in energy, smelly vs clean, per pair and device: the mean change with its "
               "95 % t-interval on the ratio of means (delta method; blue) and the paper's two results on an "
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


def era_table(by_era: pd.DataFrame) -> str:
    """Instances per rule split by the era of their file (``prevalence_by_era.csv``)."""
    eras = ("tf1", "tf2", "unknown")
    cells: dict[tuple[str, str], Any] = {(str(r.rule), str(r.era)): r for r in by_era.itertuples()}
    rows = []
    for rule in sorted({str(r) for r in by_era["rule"]}):
        row: list[Any] = [rule]
        for era in eras:
            r = cells.get((rule, era))
            row.append("" if r is None else
                       f"{int(r.instances)} ({fmt_share(r.share_of_rule)}); "
                       f"{int(r.repos_affected)} repos ({fmt_share(r.share_repos_affected)})")
        rows.append(row)
    return ("Instances per rule by the era of the file they were found in (`era` of "
            "instances.csv: `tf1` is graph-mode code with sessions, placeholders or "
            "`tf.compat.v1`; `tf2` is eager TensorFlow/Keras code; `unknown` names neither). "
            "Each cell: instances (share of the rule's instances); repositories with at least "
            "one (share of the repositories mined).\n\n"
            + md_table(["rule", "TF1 graph code", "TF2 eager code", "unknown"], rows))


def figure_md(figs: dict[str, Path | None], name: str) -> str:
    """A figure and its numbered caption (its number from its place in ``FIGURES``)."""
    shown = [key for key in FIGURES if figs.get(key)]
    alt, caption = FIGURES[name]
    path = figs[name]
    if path is None:
        raise ValueError(f"figure {name!r} was not drawn")  # callers only ask for drawn figures
    return (f"![{alt}](figures/{path.name})\n\n"
            f"*Figure {shown.index(name) + 1}. {caption}*")



def headline_section(stats: pd.DataFrame, controls: pd.DataFrame | None, alpha: float) -> str:
    """Per pair and device, the frameworks side by side: the primary change, its CI and p_adj,
    and whether the leak manifested (the positive control)."""
    rows = primary_rows(stats)
    if rows.empty:
        return "No pair produced a primary comparison."
    metric, test = primary_label(stats)
    frameworks = sorted(set(rows["framework"].astype(str)),
                        key=lambda f: (f != paper.FRAMEWORK, f))
    manifested: dict[tuple[str, str, str], str] = {}
    if controls is not None and len(controls):
        manifested = {(str(r.pair_id), str(r.device), str(r.framework)): str(r.manifested)
                      for r in controls.itertuples()}
    table: list[list[Any]] = []
    change_only: list[str] = []
    for (pair_id, device), group in rows.groupby(["pair_id", "device"], sort=True):
        by_fw = {str(r.framework): r for r in group.itertuples()}
        cells = []
        for fw in frameworks:
            r = by_fw.get(fw)
            if r is None:
                cells.append("not measured")
                continue
            leak = manifested.get((str(pair_id), str(device), fw), "unknown")
            ci = fmt_ci(r.ci_low, r.ci_high) + ("" if _reliable(r) else " (unreliable)")
            cell = (f"{fmt_pct(r.pct_change)} {ci}".strip()
                    + (f"; p_adj {fmt_p(r.p_adj)}" if r.status == "tested" else f"; {r.status}")
                    + f"; leak seen: {leak}")
            if leak == "no":
                cell += " — cost of the code change, not of the leak"
                change_only.append(f"{pair_id} ({device}, {fw})")
            cells.append(cell)
        table.append([f"{pair_id} ({device})", str(group["smell"].iloc[0]), *cells])
    headers = ["pair (device)", "smell"] + [
        f"{fw}" + (" (the paper's setting on GPU)" if fw == paper.FRAMEWORK else "")
        for fw in frameworks]
    intro = (f"Primary analysis (pre-registered in `analyze.primary`): change in {metric}, "
             f"smelly vs clean, {TEST_NAMES.get(test, test)} test, Holm-adjusted over the "
             f"primary family, alpha {alpha}. Frameworks side by side; the paper ran "
             f"{paper.FRAMEWORK_NOTE} on an {paper.DEVICE}, so the `{paper.FRAMEWORK}` column "
             "on a GPU matches its setting most closely. \"Leak seen\" is the positive "
             "control (controls.csv): whether the smelly program's own leak count grew more "
             "than the clean one's.")
    parts = [intro, md_table(headers, table)]
    if change_only:
        parts.append("Where the leak did not manifest (" + ", ".join(change_only) + "), the "
                     "difference is what the code change costs, not what the leak costs.")
    ref = [f"{smell} {fmt_pct(r.pct_change_energy)}" for smell, r in paper.SMELLS.items()]
    parts.append(f"The paper reported energy changes of {', '.join(ref)} on an {paper.DEVICE}.")
    return "\n\n".join(parts)


def build_markdown(title: str, runs: pd.DataFrame, stats: pd.DataFrame, summary: pd.DataFrame,
                   failures: pd.DataFrame, equivalence: pd.DataFrame | None,
                   tables: dict[str, pd.DataFrame] | None, envs: list[dict[str, Any]],
                   figs: dict[str, Path | None], commands: Sequence[str],
                   metrics: dict[str, Any], alpha: float,
                   controls: pd.DataFrame | None = None,
                   estimands: dict[str, str] | None = None,
                   dose: dict[str, pd.DataFrame] | None = None, profile: str = "") -> str:
    first = power_source_paragraph(runs, stats)
    if profile:
        first = run_description(runs, profile) + " " + first
    md: list[str] = [f"# {report_title(title, profile)}", first]
    md.append("## Headline\n\n" + headline_section(stats, controls, alpha))
    if dose is not None:
        from leakwatt.analysis.dose_report import dose_section

        md.append("## Cost per leak event (dose-response)\n\n"
                  + dose_section(dose, figure_md(figs, "dose") if figs.get("dose") else ""))
    md.append("## The paper beside this study\n\n"
              f"The paper ({paper.SOURCE}) trained a {paper.WORKLOAD} on an {paper.DEVICE}, "
              f"measured with {paper.METER}. This study's numbers are means over complete "
              "repetitions; the change is 100 x (mean smelly - mean clean) / mean clean with a "
              "95 % t-interval on the ratio of means (delta method). CO2 is derived: energy x "
              "the carbon intensity CodeCarbon applied, so its change equals the energy change "
              "and it is not tested separately.\n\n"
              + paper_table(stats, carbon_intensity(runs)))
    fig_md = [figure_md(figs, name) for name in ("forest", "energy", "memory", "rss")
              if figs.get(name)]
    if not figs.get("energy"):
        fig_md.append("No completed run to plot energy for.")
    md.append("## Figures\n\n" + "\n\n".join(fig_md))
    md.append("## Paired statistics\n\n"
              "One row per pair x device x framework x metric x test (`stats.csv`). Paired "
              "t-test with Cohen's d_z; Wilcoxon signed-rank (zero differences handled by "
              "Pratt's method) with the matched-pairs rank-biserial correlation. `family`: the "
              "primary rows are Holm-adjusted (p_adj) as one family; exploratory rows show "
              "their unadjusted p only; `calibration` rows are A/A cells (the clean program "
              "against itself). Confidence intervals are unadjusted 95 % intervals. A CI marked "
              "unreliable rests on fewer repetitions than `analyze.min_ci_n`. `pairs for 5 %` is "
              "the pairs needed to detect a 5 % change with 80 % power at the alpha the row's "
              "family gives it (no post-hoc power is reported: it restates the p-value).\n\n"
              + (stats_table(stats) if len(stats) else "No comparison could be made."))
    md.append("## Failures and excluded pairs\n\n" + failures_section(stats, failures,
                                                                      equivalence))
    md.append("## Per-smell summary\n\n" + pooled_section(stats, summary, estimands))
    md.append("## Prevalence in mined projects\n\n" + prevalence_section(tables, figs))
    md.append("## Threats to validity\n\n" + "\n".join(
        f"- {t}" for t in threats(runs, stats, envs, equivalence, alpha, summary)))
    md.append("## Environment\n\n" + environment_section(envs, runs))
    versions = library_versions()
    cmd_block = "\n".join(commands) if commands else "(no commands recorded)"
    md.append("## Reproduce\n\nCommands that produced this report:\n\n```\n" + cmd_block
              + "\n```\n\nVersions used to render it:\n\n"
              + md_table(["package", "version"], sorted(versions.items())))
    return "\n\n".join(md) + "\n"

__all__ = ["build_markdown", "carbon_intensity", "data_source_sentence", "environment_section",
           "era_table", "failures_section", "figure_md", "flatten", "headline_section", "idle_threat",
           "library_versions", "load_sentence", "paper_table", "pooled_estimates",
           "pooled_section", "power_source_paragraph", "prevalence_section", "primary_label",
           "primary_rows", "report_title", "run_description", "stats_table", "summary_table",
           "threats"]
