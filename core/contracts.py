"""Stage table contracts: the columns and value sets of every table a stage writes or reads.

One :class:`Table` per file, defined once here and used by the writers (``mine``, ``reproduce``,
``measure``, ``analyze``, ``report``), the readers and the tests; ``docs/data.md`` documents
exactly these columns (``tests/test_contracts.py`` checks both ways).

* ``columns``: the header in the order written. New columns are appended; none is ever renamed or
  dropped.
* ``contract``: the columns other code and users rely on (marked *contract* in docs/data.md).
* ``required``: what a reader needs; :meth:`Table.validate` rejects a table without them.
* ``values``: the closed value sets of categorical columns; an empty cell is allowed in a column
  that is not required (a hand-made table may leave optional columns empty).

This module is part of the ground floor: it imports nothing of ``mining``, ``pipeline`` or
``analysis``, and not pandas either (frames are duck-typed), so importing it costs nothing.
Rule ids (``IMR``, ``UTR``, ...) are deliberately not a closed set here: the detector registry
owns them, so adding a rule does not touch the contracts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from leakwatt.common import LeakwattError


@dataclass(frozen=True)
class Table:
    """The contract of one CSV table: its columns, required columns and value sets."""

    file: str
    stage: str
    columns: tuple[str, ...]
    contract: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    values: Mapping[str, frozenset[str]] = field(default_factory=dict)
    key: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"{self.file}: duplicate column in the contract")
        for name, cols in (("contract", self.contract), ("required", self.required),
                           ("values", tuple(self.values)), ("key", self.key)):
            unknown = [c for c in cols if c not in self.columns]
            if unknown:
                raise ValueError(f"{self.file}: {name} names unknown column(s) {unknown}")

    def missing(self, header: Iterable[str]) -> list[str]:
        """The required columns absent from ``header``, in contract order."""
        present = set(header)
        return [c for c in self.required if c not in present]

    def validate(self, frame: Any, source: str | None = None) -> Any:
        """Check ``frame`` (a pandas DataFrame) against the contract and return it unchanged.

        Raises a one-line :class:`LeakwattError` naming ``source`` (default: the file name), the
        CSV line (header = line 1; the frame's ``_line`` column when it has one) and the column:
        for a missing required column, and for a value outside a column's value set.
        """
        where = source or self.file
        missing = self.missing(frame.columns)
        if missing:
            raise LeakwattError(f"{where}: line 1: missing column(s) {', '.join(missing)} "
                                f"({self.file} needs {', '.join(self.required)})")
        for column, allowed in self.values.items():
            if column not in frame.columns:
                continue
            text = frame[column].fillna("").astype(str).str.strip()
            bad = ~text.isin(allowed)
            if column not in self.required:
                bad &= text != ""
            if bad.any():
                i = int(bad.to_numpy().argmax())
                line = (int(frame["_line"].iloc[i]) if "_line" in frame.columns else i + 2)
                raise LeakwattError(
                    f"{where}: line {line}: {column} {text.iloc[i]!r} is not one of "
                    f"{', '.join(sorted(allowed))}")
        return frame


def _set(*values: str) -> frozenset[str]:
    return frozenset(values)


# ----------------------------------------------------------------------------- inputs

CORPUS = Table(
    "corpus.csv", "input",
    columns=("url", "commit", "name", "domain", "why", "stars"),
    required=("url", "commit"))

LABELS = Table(
    "detector_labels.csv", "input",
    columns=("repo", "commit", "path", "line", "rule", "label", "reason"),
    required=("repo", "commit", "path", "line", "rule", "label"),
    values={"label": _set("true", "false")})

#: issue 21: each rule's recall on a labelled set (benchmarks/detector_accuracy.py
#: --write-recall); analyze corrects the prevalence tables' instance counts with it.
RECALL = Table(
    "recall.csv", "input",
    columns=("rule", "label_set", "commit", "scored_at", "true_sites", "tp", "fn", "fp",
             "precision", "recall", "recall_lo", "recall_hi"),
    required=("rule", "label_set", "commit", "true_sites", "tp", "fn", "fp", "recall",
              "recall_lo", "recall_hi"),
    key=("rule", "label_set"))

# ----------------------------------------------------------------------------- mine

REPO_STATUSES = _set("ok", "no_python", "empty", "clone_failed", "commit_missing", "timeout",
                     "invalid_url", "history_failed", "error", "blob_missing")

REPOS = Table(
    "repos.csv", "mine",
    columns=("url", "commit", "name", "status", "reason", "files", "kloc", "py_files",
             "notebooks", "parse_errors", "seconds", "history_commits", "pin_date"),
    required=("url", "status", "kloc"),
    values={"status": REPO_STATUSES})

INSTANCES = Table(
    "instances.csv", "mine",
    columns=("repo", "commit", "path", "line", "rule", "variant", "confidence", "function",
             "snippet", "col", "message", "loop_kind", "model_api", "training_api", "cell",
             "era", "via"),
    contract=("repo", "commit", "path", "line", "rule", "variant"),
    required=("repo", "rule"))

EVENTS = Table(
    "events.csv", "mine",
    columns=("repo", "rule", "path", "event", "commit", "date", "message", "function",
             "snippet", "removal", "line", "seq", "instance", "via"),
    contract=("repo", "rule", "path", "event", "commit", "date"),
    required=("repo", "rule", "path", "event", "commit", "date"),
    values={"event": _set("introduced", "removed"),
            "removal": _set("deleted_file", "code_changed")})

LEAK_COMMITS = Table(
    "leak_commits.csv", "mine",
    columns=("repo", "commit", "date", "message", "matched"))

SCAN_ERRORS = Table(
    "scan_errors.csv", "mine",
    columns=("repo", "commit", "path", "error"))

# ----------------------------------------------------------------------------- reproduce

SCALES = _set("tiny", "small", "paper")

PAIRS = Table(
    "pairs.csv", "reproduce",
    columns=("pair_id", "smell", "variant_family", "description", "scale", "instances",
             "source", "smelly_path", "clean_path", "estimand", "frameworks", "devices",
             "autofix", "status", "status_reason"),
    required=("pair_id", "smell", "smelly_path", "clean_path"),
    # status: built (not checked yet), equivalent (measured), excluded (status_reason says why)
    values={"scale": SCALES, "source": _set("paper", "mined"), "autofix": _set("yes", "no"),
            "status": _set("built", "equivalent", "excluded")},
    key=("pair_id",))

EQUIVALENCE = Table(
    "equivalence.csv", "reproduce",
    columns=("pair_id", "status", "max_rel_diff", "detail", "smelly_s", "clean_s", "framework",
             "device", "work_smelly", "work_clean", "equal_work"),
    required=("pair_id", "status", "max_rel_diff", "detail"),
    values={"status": _set("equivalent", "different", "unequal_work", "crashed"),
            "equal_work": _set("yes", "no")},
    key=("pair_id", "framework", "device"))

UNREPRODUCED = Table(
    "unreproduced.csv", "reproduce",
    columns=("rule", "variant", "loop_kind", "training_api", "instances", "reason"))

# ----------------------------------------------------------------------------- measure

VARIANTS = ("smelly", "clean")
#: the Keras levels a run is measured under (leakwatt.params.FRAMEWORKS; docs/measure.md).
FRAMEWORKS = ("keras3", "keras2", "keras2-graph")
DATA_SOURCES = _set("synthetic", "cifar10-npz")
#: where a run's measured window began: at the program's ready() or (never called) its start.
WINDOW_STARTS = _set("ready", "process")
#: the work counters a program reports (``work`` in its result JSON), one column each.
WORK_COUNTERS = ("train_steps", "optimizer_updates", "examples_seen", "predict_calls")
RUN_STATUSES = _set("ok", "crashed", "timeout", "oom")
#: the CPU power sources of an x86 machine: measured (``rapl``) or estimated by CodeCarbon.
CPU_POWER_SOURCES = _set("rapl", "cpu_load", "constant")
#: the numeric contract columns of runs.csv (measurements; never negative in an ``ok`` run).
RUN_MEASURES = ("duration_s", "energy_kwh", "cpu_energy_kwh", "ram_energy_kwh", "gpu_energy_kwh",
                "emissions_kg", "peak_rss_mb")
_RUNS_CONTRACT = ("pair_id", "smell", "variant", "rep", "device", "status", *RUN_MEASURES,
                  "cpu_power_source")

RUNS = Table(
    "runs.csv", "measure",
    columns=(*_RUNS_CONTRACT,
             "scale", "order", "started_at", "error", "codecarbon_emissions_kg", "cpu_power_w",
             "gpu_power_w", "ram_power_w", "gpu_power_source", "ram_power_source",
             "rss_growth_mb_per_s", "peak_gpu_mem_mb", "rapl_energy_kwh", "nvml_energy_kwh",
             "wall_s", "workload_s", "final_loss", "exit_code", "series_path",
             "country_iso_code", "carbon_intensity_kg_per_kwh", "sample_interval_s",
             "codecarbon_version", "tracking_mode",
             # issues 9/10: the Keras level, the positive control, the work done, the window
             "framework", "tf_version", "keras_version", "data_source", "leak_evidence",
             "leak_count_first", "leak_count_last", "leak_counts",
             *(f"work_{c}" for c in WORK_COUNTERS),
             "window_start", "startup_s", "process_duration_s", "process_energy_kwh",
             "process_cpu_energy_kwh", "process_ram_energy_kwh", "process_gpu_energy_kwh",
             "load_start", "load_end",
             # issue 14: worker processes count (UP), so the whole process tree is measured
             "tree_cpu_s", "tree_peak_procs",
             # issue 18: the dose study. instrumented: 1 for a control run (the leak counted every
             # round), 0 for a measured run (no control code ran: control_calls 0); dose: leak
             # events (rounds x events_per_round); round_end_s: seconds from ready() to the end of
             # every round (JSON list); first_variant: which variant of the cell ran first in
             # its block (counterbalanced)
             "instrumented", "dose", "rounds", "samples", "batch_size", "events_per_round",
             "control_calls", "round_end_s", "first_variant", "block_position",
             # CPU seconds of the program's process (every thread) from ready() to the end of
             # every round (JSON list) and in the whole window (time.process_time)
             "round_cpu_s", "window_cpu_s"),
    contract=_RUNS_CONTRACT,
    required=_RUNS_CONTRACT,
    # cpu_power_source is open: CodeCarbon names its own modes (CPU_POWER_SOURCES are the usual)
    values={"variant": frozenset(VARIANTS), "status": RUN_STATUSES, "scale": SCALES,
            "framework": frozenset(FRAMEWORKS), "data_source": DATA_SOURCES,
            "window_start": WINDOW_STARTS},
    key=("pair_id", "variant", "rep", "device", "framework"))

#: warm-up runs: executed, not counted; the same columns as runs.csv.
WARMUP = Table("warmup.csv", "measure", columns=RUNS.columns, values=RUNS.values, key=RUNS.key)

IDLE = Table(
    "idle.csv", "measure",
    columns=("device", "rep", "status", "target_s", "duration_s", "energy_kwh", "cpu_energy_kwh",
             "ram_energy_kwh", "gpu_energy_kwh", "emissions_kg", "cpu_power_source",
             "cpu_power_w", "ram_power_w", "gpu_power_source", "rapl_energy_kwh",
             "nvml_energy_kwh", "started_at", "error"),
    required=("device", "duration_s", "energy_kwh"),
    key=("device", "rep"))

#: ``series/<run>.csv``: a run's sampled memory, referenced by runs.csv's ``series_path``.
SERIES = Table("series/<run>.csv", "measure", columns=("t_s", "rss_mb", "gpu_mem_mb"))

# ----------------------------------------------------------------------------- analyze

TESTS = ("paired_t", "wilcoxon")
#: ``no data``: the primary metric holds no value but 0 (or none) in every ok run of the
#: device, so it cannot be compared; its rows say so instead of vanishing from stats.csv.
STATS_STATUSES = _set("tested", "insufficient data", "all failed", "constant", "no data")
#: ``primary``: the pre-registered metric x test (analyze.primary), Holm-adjusted as one family;
#: ``exploratory``: every other row (unadjusted p only).
FAMILIES = _set("primary", "exploratory", "calibration")
_STATS_CONTRACT = ("pair_id", "smell", "metric", "test", "n", "pct_change", "ci_low", "ci_high",
                   "p_value", "p_adj", "effect_size")

STATS = Table(
    "stats.csv", "analyze",
    columns=(*_STATS_CONTRACT,
             "device", "effect_size_name", "statistic", "mean_smelly", "mean_clean",
             "median_smelly", "median_clean", "mean_diff", "sd_diff", "shapiro_p",
             "n_needed", "n_failed", "status", "note", "framework", "family", "ci_reliable",
             "power_alpha", "log_ratio", "log_ratio_se", "n_foreign_load", "ci_adjusted",
             "rounds", "dose"),
    contract=_STATS_CONTRACT,
    # every column: the report reads the descriptive ones too
    required=(*_STATS_CONTRACT,
              "device", "effect_size_name", "statistic", "mean_smelly", "mean_clean",
              "median_smelly", "median_clean", "mean_diff", "sd_diff", "shapiro_p",
              "n_needed", "n_failed", "status", "note"),
    values={"test": frozenset(TESTS), "status": STATS_STATUSES,
            "effect_size_name": _set("cohen_dz", "rank_biserial"),
            "family": FAMILIES})

_SUMMARY_COLUMNS = ("smell", "device", "metric", "pairs", "pairs_tested", "median_pct_change",
                    "min_pct_change", "max_pct_change", "pairs_increase", "significant_wilcoxon",
                    "significant_paired_t", "note")
SUMMARY = Table("summary.csv", "analyze", columns=(*_SUMMARY_COLUMNS, "framework"),
                required=_SUMMARY_COLUMNS)

_FAILURES_COLUMNS = ("pair_id", "smell", "device", "variant", "rep", "status", "error",
                     "consequence", "source", "line")
FAILURES = Table(
    "failures.csv", "analyze", columns=(*_FAILURES_COLUMNS, "framework", "metric"),
    # every column must be present; variant may be empty (an ``absent`` row names no run)
    required=tuple(c for c in _FAILURES_COLUMNS if c != "variant"),
    # blank: an ok run without a value of ``metric``; absent: ``metric`` has no value in any ok
    # run of the device (one row per device, no pair/variant/rep)
    values={"variant": frozenset(VARIANTS),
            "status": (RUN_STATUSES - {"ok"}) | {"missing", "blank", "absent"}})

CONTROLS = Table(
    "controls.csv", "analyze",
    columns=("pair_id", "smell", "device", "framework", "leak_evidence", "n", "growth_smelly",
             "growth_clean", "diff", "ci_low", "ci_high", "manifested", "note"),
    required=("pair_id", "device", "framework", "manifested"),
    values={"manifested": _set("yes", "no", "unknown")})

# issue 18: the dose-response tables of a dose study (leakwatt.analysis.dose)
_DOSE_UNIT = ("pair_id", "smell", "device", "framework")
DOSE_STATS = Table(
    "dose_stats.csv", "analyze",
    columns=(*_DOSE_UNIT, "rounds", "dose", "metric", "n", "mean_smelly", "mean_clean",
             "mean_diff", "sd_diff", "diff_ci_low", "diff_ci_high", "pct_change", "ci_low",
             "ci_high", "ci_adjusted", "p_value", "p_adj", "mde_pct", "family"),
    required=(*_DOSE_UNIT, "rounds", "dose", "metric", "n", "family"),
    values={"family": FAMILIES})
COST_MODEL = Table(
    "cost_model.csv", "analyze",
    columns=(*_DOSE_UNIT, "metric", "event", "n", "doses", "a", "a_ci_low", "a_ci_high", "b",
             "b_ci_low", "b_ci_high", "b_p", "order_effect", "order_p", "r2", "a_linear",
             "a_linear_ci_low", "a_linear_ci_high", "marginal_low", "marginal_low_ci_low",
             "marginal_low_ci_high", "marginal_high", "marginal_high_ci_low",
             "marginal_high_ci_high", "bend_dose", "note", "intercept", "intercept_ci_low",
             "intercept_ci_high", "intercept_p", "a_free", "a_free_ci_low", "a_free_ci_high"),
    required=(*_DOSE_UNIT, "metric", "n"))
HELDOUT = Table(
    "heldout.csv", "analyze",
    columns=(*_DOSE_UNIT, "metric", "heldout_dose", "fit_doses", "n_fit", "n_heldout", "model",
             "predicted", "predicted_ci_low", "predicted_ci_high", "measured", "measured_ci_low",
             "measured_ci_high", "predicted_pct", "measured_pct", "within", "intervals_overlap",
             "note"),
    required=(*_DOSE_UNIT, "metric", "heldout_dose"))
ROUND_COSTS = Table(
    "round_costs.csv", "analyze",
    columns=(*_DOSE_UNIT, "rounds", "round", "n", "smelly_s", "clean_s", "diff_s", "diff_ci_low",
             "diff_ci_high", "slope_smelly", "slope_clean", "slope_diff", "slope_diff_ci_low",
             "slope_diff_ci_high"),
    required=(*_DOSE_UNIT, "round", "diff_s"))
AA_TABLE = Table(
    "aa.csv", "analyze",
    columns=("pair_id", "device", "framework", "rounds", "metric", "n", "pct_change", "ci_low",
             "ci_high", "p_value", "false_positive", "fpr_observed", "fpr_ci_low", "fpr_ci_high",
             "tests", "mde_pct", "mde_pct_median_cells", "drift_pct_per_block"),
    required=("pair_id", "metric", "p_value", "fpr_observed"))
PAPER_PLACEMENT = Table(
    "paper_placement.csv", "analyze",
    columns=(*_DOSE_UNIT, "paper_dose", "max_measured_dose", "extrapolation_factor",
             "predicted_overhead_s", "predicted_overhead_linear_s",
             "predicted_overhead_linear_ci_low_s", "predicted_overhead_linear_ci_high_s",
             "paper_clean_s_extrapolated", "predicted_pct", "predicted_pct_linear", "paper_pct",
             "dose_for_paper_pct", "note"),
    required=(*_DOSE_UNIT, "paper_dose", "predicted_pct"))
DOSE_OUTPUTS = {t.file: t for t in (DOSE_STATS, COST_MODEL, HELDOUT, ROUND_COSTS, AA_TABLE,
                                     PAPER_PLACEMENT)}

_PREVALENCE_COLUMNS = (
    "rule", "repos_ok", "repos_affected", "share_repos_affected", "instances", "kloc",
    "instances_per_kloc", "introduced", "removed", "removed_code_changed", "removed_deleted_file",
    "share_fixed", "share_deleted", "still_present", "median_survival_days",
    "median_survival_commits", "km_median_days", "unmatched_removals", "note")
#: issue 21: the rule's recall on a labelled set (recall.csv) and the instance count corrected
#: for the misses it implies (leakwatt.analysis.recall.correct_for_recall); not required, so a
#: table written before them still reads.
RECALL_CORRECTION = (
    "precision", "recall", "recall_lo", "recall_hi", "recall_true_sites", "recall_label_set",
    "recall_commit", "corrected_instances", "corrected_instances_lo", "corrected_instances_hi",
    "correction_note")
#: instances open in the history walk that the pin does not hold (their removal was not seen:
#: a snapshot gap or a branch the walk linearised); left out of survival
HISTORY_RECONCILED = ("lost_in_history",)
PREVALENCE = Table("prevalence.csv", "analyze",
                   columns=(*_PREVALENCE_COLUMNS, *RECALL_CORRECTION, *HISTORY_RECONCILED),
                   required=_PREVALENCE_COLUMNS)

_BY_ERA_COUNTS = ("rule", "era", "instances", "share_of_rule", "repos_affected",
                  "share_repos_affected")
PREVALENCE_BY_ERA = Table("prevalence_by_era.csv", "analyze",
                          columns=(*_BY_ERA_COUNTS, *RECALL_CORRECTION),
                          required=("rule", "era", "instances"),
                          values={"era": _set("tf1", "tf2", "unknown")})

LIFETIMES = Table(
    "lifetimes.csv", "analyze",
    columns=("repo", "rule", "path", "function", "introduced_commit", "introduced_date",
             "end_commit", "end_date", "days", "commits", "removed", "removal", "fate"),
    required=("rule", "days", "removed"))

SURVIVAL = Table(
    "survival.csv", "analyze",
    columns=("rule", "time_unit", "time", "survival", "se", "ci_low", "ci_high", "at_risk",
             "events"),
    required=("rule", "time_unit", "time", "survival", "ci_low", "ci_high"),
    values={"time_unit": _set("days", "commits")})

_OVERVIEW_COUNTS = ("repos_total", "repos_ok", "repos_failed", "kloc", "instances", "events",
                    "leak_commits", "repos_with_leak_commits")
OVERVIEW = Table("overview.csv", "analyze", columns=(*_OVERVIEW_COUNTS, "note"),
                 required=_OVERVIEW_COUNTS)

# ----------------------------------------------------------------------------- report

PLOT_PCT_CHANGE = Table(
    "plots/pct_change.csv", "report",
    columns=("pair", "smell", "device", "pct_change", "ci_low", "ci_high", "n"))
PLOT_ENERGY_RUNS = Table(
    "plots/energy_runs.csv", "report",
    columns=("pair", "variant", "rep", "energy_kwh", "duration_s", "peak_rss_mb"))
PLOT_SURVIVAL = Table("plots/survival.csv", "report", columns=("rule", "days", "survival"))

#: every table, in the order data flows.
TABLES: tuple[Table, ...] = (
    CORPUS, LABELS, RECALL, REPOS, INSTANCES, EVENTS, LEAK_COMMITS, SCAN_ERRORS, PAIRS, EQUIVALENCE,
    UNREPRODUCED, RUNS, WARMUP, IDLE, SERIES, STATS, SUMMARY, FAILURES, CONTROLS, DOSE_STATS,
    COST_MODEL, HELDOUT, ROUND_COSTS, AA_TABLE, PAPER_PLACEMENT, PREVALENCE,
    PREVALENCE_BY_ERA, LIFETIMES, SURVIVAL, OVERVIEW, PLOT_PCT_CHANGE, PLOT_ENERGY_RUNS,
    PLOT_SURVIVAL,
)
#: the tables each stage writes, by file name.
MINE_OUTPUTS = {t.file: t for t in (REPOS, INSTANCES, EVENTS, LEAK_COMMITS, SCAN_ERRORS)}
ANALYZE_OUTPUTS = {t.file: t for t in (STATS, SUMMARY, FAILURES, CONTROLS, PREVALENCE,
                                        PREVALENCE_BY_ERA, LIFETIMES, SURVIVAL, OVERVIEW)}

__all__ = [
    "AA_TABLE", "COST_MODEL", "DOSE_OUTPUTS", "DOSE_STATS", "HELDOUT", "PAPER_PLACEMENT",
    "ROUND_COSTS",
    "ANALYZE_OUTPUTS", "CONTROLS", "CORPUS", "CPU_POWER_SOURCES", "DATA_SOURCES", "EQUIVALENCE",
    "EVENTS", "FAILURES", "FAMILIES", "FRAMEWORKS", "IDLE",
    "INSTANCES", "LABELS", "LEAK_COMMITS", "LIFETIMES", "MINE_OUTPUTS", "OVERVIEW",
    "PAIRS", "PLOT_ENERGY_RUNS", "PLOT_PCT_CHANGE", "PLOT_SURVIVAL", "PREVALENCE",
    "PREVALENCE_BY_ERA", "RECALL", "RECALL_CORRECTION", "REPOS",
    "REPO_STATUSES", "RUNS", "RUN_MEASURES", "RUN_STATUSES", "SCALES", "SCAN_ERRORS", "SERIES",
    "STATS", "STATS_STATUSES", "SUMMARY", "SURVIVAL", "TABLES", "TESTS", "Table", "UNREPRODUCED",
    "VARIANTS", "WARMUP", "WINDOW_STARTS", "WORK_COUNTERS",
]
