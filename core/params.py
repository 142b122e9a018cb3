"""params.yaml loading: one frozen dataclass per stage section, unknown keys rejected.

`load_params(path, profile=...)` reads the user's params.yaml and, for a named profile, overlays
``profiles/<profile>.yaml``. Every problem is a :class:`LeakwattError` naming the file and field.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from leakwatt.common import LeakwattError

PROFILES = ("full", "demo", "reference", "gpu", "dose")
#: ``mine.rules`` default: every rule the miner has registered. The floor does not know the
#: rule ids (leakwatt.mining.rules.REGISTRY does); the miner validates them.
ALL_RULES = ("all",)
SCALES = ("tiny", "small", "paper")
DEVICES = ("cpu", "gpu")
#: Keras levels a program can run under (docs/measure.md): Keras 3; Keras 2 (``tf_keras`` via
#: ``TF_USE_LEGACY_KERAS=1``); Keras 2 with eager execution disabled (TF1-compat graph mode).
FRAMEWORKS = ("keras3", "keras2", "keras2-graph")


@dataclass(frozen=True)
class MineParams:
    corpus: str = "real"
    mirror_dir: str = ""
    history: bool = True
    max_commits: int = 0
    rules: tuple[str, ...] = ALL_RULES
    jobs: int = 0
    max_file_kb: int = 1024
    clone_timeout_s: int = 900
    scheduler: str = ""
    #: seconds one file's scan may take; a file over it becomes a scan_errors row (0: none)
    file_budget_s: float = 60.0

    def check(self, where: str) -> None:
        _one_of(where, "corpus", self.corpus, ("real", "demo"))
        if not self.rules:
            raise LeakwattError(f"{where}.rules: must name at least one rule id, or all")
        for rule in self.rules:
            if not isinstance(rule, str) or not rule.isidentifier():
                raise LeakwattError(f"{where}.rules: {rule!r} is not a rule id")
        _at_least(where, "max_commits", self.max_commits, 0)
        _at_least(where, "jobs", self.jobs, 0)  # above the core count: capped, with a note
        _between(where, "max_file_kb", self.max_file_kb, 1, 1024 * 1024)
        _between(where, "clone_timeout_s", self.clone_timeout_s, 1, WEEK_S)
        _between(where, "file_budget_s", self.file_budget_s, 0, DAY_S)


@dataclass(frozen=True)
class ReproduceParams:
    pairs: tuple[str, ...] = ("paper-imr", "paper-imr-del", "paper-imr-once", "paper-imr-xla", "paper-utr")
    scale: str = "paper"
    equivalence_check: bool = True
    equivalence_rtol: float = 1e-4

    def check(self, where: str) -> None:
        _one_of(where, "scale", self.scale, SCALES)
        # an empty list is allowed: a study of mined instances only (reproduce then stops in one
        # line when the instances give no pair either: build_pairs' "no pairs to build")
        _between(where, "equivalence_rtol", self.equivalence_rtol, 0, 1, low_open=True)


@dataclass(frozen=True)
class MeasureParams:
    devices: tuple[str, ...] = ("cpu",)
    frameworks: tuple[str, ...] = FRAMEWORKS
    repetitions: int = 30
    warmup: int = 1
    cooldown_s: float = 10.0
    seed: int = 2606
    country_iso_code: str = "USA"
    carbon_intensity_kg_per_kwh: float = 0.4526
    sample_interval_s: float = 0.5
    timeout_s: float = 7200.0
    memory_limit_mb: int = 16384
    idle_baseline: bool = True
    # issue 18, the dose study (docs/measure.md, "Dose-response"); doses empty = one dose, the
    # scale's rounds (the study before issue 18). Each dose is a number of rounds; the highest
    # dose gets ``repetitions`` counted blocks, the others ``low_dose_repetitions``.
    doses: tuple[int, ...] = ()
    low_dose_repetitions: int = 6
    control_runs: int = 0          # instrumented (control) runs per pair x level x variant
    aa_pairs: tuple[str, ...] = ()  # pairs whose clean program is also measured against itself
    min_window_s: float = 10.0     # the workload is sized so the lowest dose's window is longer

    def check(self, where: str) -> None:
        for device in self.devices:
            _one_of(where, "devices", device, DEVICES)
        if not self.frameworks:
            raise LeakwattError(f"{where}.frameworks: must name at least one of {', '.join(FRAMEWORKS)}")
        for framework in self.frameworks:
            _one_of(where, "frameworks", framework, FRAMEWORKS)
        if len(set(self.frameworks)) != len(self.frameworks):
            raise LeakwattError(f"{where}.frameworks: {list(self.frameworks)} names a level twice")
        _between(where, "repetitions", self.repetitions, 1, 100_000)
        _between(where, "warmup", self.warmup, 0, 1000)
        _between(where, "cooldown_s", self.cooldown_s, 0, DAY_S)
        # the highest grid intensities are about 1.2 kg/kWh; 10 leaves room for any unit slip
        _between(where, "carbon_intensity_kg_per_kwh", self.carbon_intensity_kg_per_kwh, 0, 10)
        _between(where, "sample_interval_s", self.sample_interval_s, 0, 3600, low_open=True)
        _between(where, "timeout_s", self.timeout_s, 1, WEEK_S)
        _between(where, "memory_limit_mb", self.memory_limit_mb, 64, 1 << 30)
        for dose in self.doses:
            if isinstance(dose, bool) or not isinstance(dose, int) or dose < 1:
                raise LeakwattError(f"{where}.doses: each dose is a whole number of rounds >= 1, "
                                    f"got {dose!r}")
        if len(set(self.doses)) != len(self.doses):
            raise LeakwattError(f"{where}.doses: {list(self.doses)} names a dose twice")
        _between(where, "low_dose_repetitions", self.low_dose_repetitions, 1, 100_000)
        _between(where, "control_runs", self.control_runs, 0, 1000)
        _between(where, "min_window_s", self.min_window_s, 0, DAY_S)
        if len(self.country_iso_code) != 3 or not self.country_iso_code.isalpha():
            raise LeakwattError(
                f"{where}.country_iso_code: expected a 3-letter ISO code, got {self.country_iso_code!r}")


#: the tests ``analyze.primary.test`` may name (the columns of stats.csv's ``test``).
PRIMARY_TESTS = ("paired_t", "wilcoxon")


@dataclass(frozen=True)
class PrimaryParams:
    """The pre-registered primary analysis: one metric per power source and one test
    (docs/analysis.md). ``metric`` where a hardware counter measured the energy (RAPL on CPU,
    NVML on GPU); ``metric_estimated`` where CodeCarbon estimated it (no counter: its energy is
    the window's duration times a near-constant power, so the true outcome is time)."""

    metric: str = "energy_kwh"
    test: str = "paired_t"
    metric_estimated: str = "duration_s"

    def check(self, where: str) -> None:
        _one_of(where, "test", self.test, PRIMARY_TESTS)
        for key in ("metric", "metric_estimated"):
            value = getattr(self, key)
            if value == "emissions_kg":
                raise LeakwattError(f"{where}.{key}: emissions_kg is derived (energy x carbon "
                                    "intensity) and not tested; name energy_kwh instead")
            if not value.strip():
                raise LeakwattError(f"{where}.{key}: must name a runs.csv column")


@dataclass(frozen=True)
class AnalyzeParams:
    alpha: float = 0.05
    bootstrap_resamples: int = 10000
    seed: int = 2606
    min_complete_reps: int = 3
    detectable_pct: float = 5.0
    #: below this many complete repetitions a CI is marked unreliable (benchmarks/ci_coverage.py)
    min_ci_n: int = 5
    #: a run is under foreign load when its 1-minute load average (start or end) exceeds
    #: max_load x the logical core count: the study's own runs (TensorFlow uses every core)
    #: account for up to about 1 x the cores, so 1.5 leaves half the cores' worth to others
    max_load: float = 1.5
    primary: PrimaryParams = field(default_factory=PrimaryParams)

    def check(self, where: str) -> None:
        if not (math.isfinite(self.alpha) and 0 < self.alpha < 1):
            raise LeakwattError(f"{where}.alpha: must be between 0 and 1, got {self.alpha}")
        _between(where, "bootstrap_resamples", self.bootstrap_resamples, 100, 10_000_000)
        _between(where, "min_complete_reps", self.min_complete_reps, 2, 100_000)
        _between(where, "min_ci_n", self.min_ci_n, 2, 100_000)
        _between(where, "detectable_pct", self.detectable_pct, 0, 1000, low_open=True)
        _between(where, "max_load", self.max_load, 0, 1000, low_open=True)


@dataclass(frozen=True)
class ReportParams:
    title: str = "leakwatt report"
    figure_dpi: int = 120
    #: the profile the run was made with (each profiles/*.yaml sets it): named in the report's
    #: title and first paragraph, so that a 3-repetition demo is never read as the study
    profile: str = "full"

    def check(self, where: str) -> None:
        _one_of(where, "profile", self.profile, PROFILES)
        # 600 dpi is print quality; 100,000 would ask matplotlib for a canvas of gigabytes
        _between(where, "figure_dpi", self.figure_dpi, 30, 600)


@dataclass(frozen=True)
class Params:
    mine: MineParams = field(default_factory=MineParams)
    reproduce: ReproduceParams = field(default_factory=ReproduceParams)
    measure: MeasureParams = field(default_factory=MeasureParams)
    analyze: AnalyzeParams = field(default_factory=AnalyzeParams)
    report: ReportParams = field(default_factory=ReportParams)


def _one_of(where: str, key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise LeakwattError(f"{where}.{key}: {value!r} is not one of {', '.join(allowed)}")


#: upper bounds of the time parameters (a larger value is a typo, not a plan)
DAY_S = 86_400
WEEK_S = 7 * DAY_S


def _at_least(where: str, key: str, value: float, low: float) -> None:
    if not math.isfinite(value):
        raise LeakwattError(f"{where}.{key}: must be a finite number, got {value}")
    if value < low:
        raise LeakwattError(f"{where}.{key}: must be >= {low}, got {value}")


def _between(where: str, key: str, value: float, low: float, high: float,
             low_open: bool = False) -> None:
    """``value`` finite and in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    if not math.isfinite(value):
        raise LeakwattError(f"{where}.{key}: must be a finite number, got {value}")
    if value < low or (low_open and value == low):
        raise LeakwattError(f"{where}.{key}: must be {'>' if low_open else '>='} {low:g}, "
                            f"got {value}")
    if value > high:
        raise LeakwattError(f"{where}.{key}: must be <= {high:g}, got {value}")


def _coerce(where: str, key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against a dataclass field type (bool, int, float, str, tuple[str, ...])."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise LeakwattError(f"{where}.{key}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        return tuple(_coerce(where, key, item, args[0] if args else str) for item in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise LeakwattError(f"{where}.{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise LeakwattError(f"{where}.{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise LeakwattError(f"{where}.{key}: expected a number, got {value!r}")
        if not math.isfinite(value):  # YAML's .nan, .inf
            raise LeakwattError(f"{where}.{key}: must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise LeakwattError(f"{where}.{key}: expected a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _section(hint, value, f"{where}.{key}")
    raise TypeError(f"unsupported params type {hint!r}")  # a programming error, not user input


def _section(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise LeakwattError(f"{where}: expected a mapping of keys to values, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise LeakwattError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    values = {k: _coerce(where, k, v, hints[k]) for k, v in raw.items()}
    obj = cls(**values)
    obj.check(where)
    return obj


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise LeakwattError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise LeakwattError(f"{path}:{line} invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LeakwattError(f"{path}: expected a mapping of stage sections at the top level")
    return data


def profile_overrides(profile: str, root: Path) -> dict[str, Any]:
    """The overrides of ``profile``: ``root/profiles/<profile>.yaml`` (none for ``full``)."""
    if profile not in PROFILES:
        raise LeakwattError(f"unknown profile {profile!r} (known: {', '.join(PROFILES)})")
    if profile == "full":
        return {}
    return read_yaml(root / "profiles" / f"{profile}.yaml")


def params_from_dict(raw: dict[str, Any], source: str) -> Params:
    sections = {f.name: f for f in dataclasses.fields(Params)}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise LeakwattError(f"{source}: unknown section {unknown[0]!r} (known: {', '.join(sections)})")
    hints = typing.get_type_hints(Params)
    built = {name: _section(hints[name], raw.get(name), f"{source}: {name}") for name in sections}
    return Params(**built)


def load_params(path: str | Path = "params.yaml", profile: str = "full") -> Params:
    """Load and validate params.yaml, with ``profile``'s overrides applied when not ``full``."""
    path = Path(path)
    raw = deep_merge(read_yaml(path), profile_overrides(profile, path.parent))
    return params_from_dict(raw, str(path))


DEFAULT_PARAMS_FILE = "params.yaml"


def load_params_or_defaults(path: str | Path | None = None, profile: str = "full",
                            say: Any = None) -> Params:
    """``path`` when given (it must exist); else ``./params.yaml`` when there is one; else the
    built-in defaults, with one line saying so (to ``say``, default stderr), so that the stage
    commands also run outside the project folder."""
    if path is not None or Path(DEFAULT_PARAMS_FILE).is_file():
        return load_params(path if path is not None else DEFAULT_PARAMS_FILE, profile)
    import sys

    print(f"leakwatt: no {DEFAULT_PARAMS_FILE} in {Path.cwd()}; using the built-in defaults "
          "(choose a file with --params)", file=say or sys.stderr)
    return params_from_dict(profile_overrides(profile, Path.cwd()), "built-in defaults")


def as_dict(params: Any) -> dict[str, Any]:
    """A params dataclass (or Params) as plain YAML-able values (tuples become lists)."""
    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return plain(dataclasses.asdict(params))


__all__ = [
    "FRAMEWORKS", "PRIMARY_TESTS", "AnalyzeParams", "MeasureParams", "MineParams", "Params",
    "PrimaryParams", "ReportParams", "ReproduceParams", "as_dict", "deep_merge", "load_params",
    "load_params_or_defaults",
    "params_from_dict", "profile_overrides", "read_yaml",
]
