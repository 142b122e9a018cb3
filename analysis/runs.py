"""Reading runs.csv: check every row against the runs contract, type it, add net energy.

The contract is :data:`leakwatt.contracts.RUNS`; this module adds what a reader needs beyond the
header: typed, non-negative measurements, integer repetitions, unique run keys and one smell per
pair, each failure a one-line :class:`LeakwattError` naming the file and line. Validated frames
carry ``_source`` and ``_line`` so later messages and ``failures.csv`` can point at the row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leakwatt.common import LeakwattError
from leakwatt.contracts import IDLE, RUN_MEASURES, RUNS, VARIANTS

RUNS_REQUIRED = RUNS.required
TEXT_COLUMNS = ("pair_id", "smell", "variant", "device", "status")
MEASURE_COLUMNS = RUN_MEASURES
#: optional runs.csv columns that are analysed like the contract metrics when present.
OPTIONAL_METRICS = ("rss_growth_mb_per_s", "rapl_energy_kwh", "window_cpu_s", "tree_cpu_s")
#: optional numeric columns that may be negative (a shrinking RSS has negative growth).
SIGNED_COLUMNS = ("rss_growth_mb_per_s",)
KEY = ("pair_id", "device", "framework", "variant", "rep")
#: The largest values one run of one program can plausibly record, far above any real run; a
#: larger one is a corrupt or hand-edited row (1e308 kWh makes every change +inf %, a rep of
#: 1e20 wraps to a negative int64), refused with its line rather than analysed.
MAX_REP = 1_000_000
VALUE_LIMITS = {"duration_s": 1e8, "peak_rss_mb": 1e9, "rss_growth_mb_per_s": 1e7}
#: energies (kWh), emissions (kg) and any other numeric column
DEFAULT_VALUE_LIMIT = 1e6
#: the framework of runs measured before the framework became a factor (issue 9): Keras 3.
DEFAULT_FRAMEWORK = "keras3"
#: idle power counts as measured only from these sources (CPU: Intel RAPL; GPU: NVML).
MEASURED_CPU_SOURCES = ("rapl",)
MEASURED_GPU_SOURCES = ("nvml",)

_MISSING_TOKENS = {"", "nan", "none", "na", "<na>", "null"}


def _blank(series: pd.Series) -> pd.Series:
    return series.isna() | series.astype(str).str.strip().str.lower().isin(_MISSING_TOKENS)


def _lines(df: pd.DataFrame) -> pd.Series:
    if "_line" in df.columns:
        return df["_line"].astype(int)
    return pd.Series(np.arange(len(df)) + 2, index=df.index)


def validate_runs(df: pd.DataFrame, source: str = "runs.csv") -> pd.DataFrame:
    """Check a runs frame against the runs.csv contract and return it typed.

    Raises a one-line :class:`LeakwattError` naming ``source`` and the line (the CSV line number,
    header = line 1) for missing columns, empty keys, unknown variants, non-integer ``rep``,
    non-numeric or negative measurements, duplicated ``(pair_id, device, variant, rep)`` keys and
    a pair whose rows disagree on the smell. Extra columns are kept. The result carries
    ``_source`` and ``_line`` so that later messages and ``failures.csv`` can point at the row.
    """
    missing = [c for c in RUNS_REQUIRED if c not in df.columns]
    if missing:
        raise LeakwattError(
            f"{source}: line 1: missing column(s) {', '.join(missing)} "
            f"(runs.csv needs {', '.join(RUNS_REQUIRED)})")
    out = df.copy()
    out["_line"] = _lines(df).to_numpy()
    if "_source" not in out.columns:
        out["_source"] = source
    lines = out["_line"]

    for col in (*TEXT_COLUMNS, "cpu_power_source"):
        blank = _blank(out[col])
        text = out[col].where(~blank, "").astype(str).str.strip()
        if col in TEXT_COLUMNS and blank.any():
            i = blank.idxmax()
            raise LeakwattError(f"{source}: line {lines[i]}: empty {col}")
        out[col] = text

    bad_variant = ~out["variant"].isin(VARIANTS)
    if bad_variant.any():
        i = bad_variant.idxmax()
        raise LeakwattError(
            f"{source}: line {lines[i]}: unknown variant {out.at[i, 'variant']!r} "
            f"(expected smelly or clean)")

    RUNS.validate(out, source)  # status and (where filled) scale within their value sets
    rep = pd.to_numeric(out["rep"], errors="coerce")
    bad_rep = rep.isna() | ~np.isfinite(rep) | (rep != np.round(rep)) | (rep < 0)
    if bad_rep.any():
        i = bad_rep.idxmax()
        raise LeakwattError(
            f"{source}: line {lines[i]}: rep {df.at[i, 'rep']!r} is not a non-negative integer")
    big_rep = rep > MAX_REP
    if big_rep.any():
        i = big_rep.idxmax()
        raise LeakwattError(f"{source}: line {lines[i]}: rep {df.at[i, 'rep']!r} is out of range "
                            f"(at most {MAX_REP:,})")
    out["rep"] = rep.astype(int)

    numeric = list(MEASURE_COLUMNS) + [c for c in OPTIONAL_METRICS if c in out.columns]
    for col in numeric:
        raw = out[col]
        blank = _blank(raw)
        values = pd.to_numeric(raw.where(~blank, np.nan), errors="coerce").astype(float)
        bad = (~blank & values.isna()) | np.isinf(values)
        if bad.any():
            i = bad.idxmax()
            raise LeakwattError(
                f"{source}: line {lines[i]}: {col} {raw[i]!r} is not a number")
        limit = VALUE_LIMITS.get(col, DEFAULT_VALUE_LIMIT)
        huge = values.abs() > limit
        if huge.any():
            i = huge.idxmax()
            raise LeakwattError(f"{source}: line {lines[i]}: {col} {raw[i]!r} is out of range "
                                f"(at most {limit:g} for one run)")
        negative = (values < 0) & (out["status"] == "ok")
        if col not in SIGNED_COLUMNS and negative.any():
            i = negative.idxmax()
            raise LeakwattError(f"{source}: line {lines[i]}: {col} {raw[i]!r} is negative")
        out[col] = values

    if "framework" not in out.columns:
        out["framework"] = DEFAULT_FRAMEWORK
    out["framework"] = (out["framework"].where(~_blank(out["framework"]), DEFAULT_FRAMEWORK)
                        .astype(str).str.strip())
    if "scale" in out.columns:
        out["scale"] = out["scale"].where(~_blank(out["scale"]), "").astype(str)
    if "error" in out.columns:
        out["error"] = out["error"].where(~_blank(out["error"]), "").astype(str)
    for col in ("rounds", "instrumented", "dose"):
        if col in out.columns:
            out[col] = pd.to_numeric(out[col].where(~_blank(out[col]), np.nan), errors="coerce")
    _check_duplicates(out)
    _check_smell(out)
    return out


def _where(df: pd.DataFrame, i: Any) -> str:
    return f"{df.at[i, '_source']}: line {df.at[i, '_line']}"


def run_key(df: pd.DataFrame) -> list[str]:
    """The columns that identify a run: :data:`KEY`, plus the dose (``rounds``) and the run kind
    (``instrumented``) where the frame has them (issue 18: a control run shares its rep)."""
    return [*KEY, *(c for c in ("rounds", "instrumented") if c in df.columns)]


def run_kind(df: pd.DataFrame) -> pd.Series:
    """Per run: ``measured`` (instrumented 0: no control code ran in its window), ``control``
    (instrumented 1: the leak was counted every round; never priced) or ``legacy`` (no
    ``instrumented`` value: measured before issue 18, the control inside the window)."""
    if "instrumented" not in df.columns:
        return pd.Series("legacy", index=df.index)
    flag = pd.to_numeric(df["instrumented"], errors="coerce")
    return pd.Series(np.select([flag == 0, flag == 1], ["measured", "control"], "legacy"),
                     index=df.index)


def _check_duplicates(df: pd.DataFrame) -> None:
    key_cols = run_key(df)
    dup = df.duplicated(key_cols, keep="first")
    if dup.any():
        i = dup.idxmax()
        key = {k: df.at[i, k] for k in key_cols}
        same = (df[key_cols] == pd.Series(key)).all(axis=1)
        first = same.idxmax()
        described = ", ".join(f"{k}={v}" for k, v in key.items())
        raise LeakwattError(
            f"{_where(df, i)}: duplicate run ({described}); first seen at {_where(df, first)}")


def _check_smell(df: pd.DataFrame) -> None:
    for _pair, group in df.groupby("pair_id", sort=False):
        smells = group["smell"]
        if smells.nunique() > 1:
            first = group.index[0]
            other = smells.index[(smells != smells.iloc[0]).to_numpy()][0]
            raise LeakwattError(
                f"{_where(df, other)}: pair {group.at[first, 'pair_id']!r} has smell "
                f"{df.at[other, 'smell']!r} here but {df.at[first, 'smell']!r} at "
                f"{_where(df, first)}")


def read_runs(path: str | Path) -> pd.DataFrame:
    """Read and validate one runs CSV (all cells read as text, then checked and typed)."""
    frame = _read_csv(path, "runs file")
    return validate_runs(frame, source=str(path))


def _read_csv(path: str | Path, what: str) -> pd.DataFrame:
    path = Path(path)
    if path.is_dir():
        hint = (f" (it holds {', '.join(str(p) for p in sorted(path.glob('*/runs.csv'))[:3])})"
                if any(path.glob("*/runs.csv")) else "")
        raise LeakwattError(f"{path}: is a folder, not a {what}{hint}")
    if not path.is_file():
        raise LeakwattError(f"{path}: {what} not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise LeakwattError(f"{path}: {what} is empty (no header line)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LeakwattError(f"{path}: cannot parse {what}: {str(exc).splitlines()[0]}") from None
    frame.index = pd.RangeIndex(len(frame))
    frame["_line"] = np.arange(len(frame)) + 2
    return frame


def combine_runs(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate validated runs frames (several devices or files) and re-check the keys."""
    if not frames:
        raise LeakwattError("no runs file given")
    runs = pd.concat(list(frames), ignore_index=True, sort=False)
    _check_duplicates(runs)
    _check_smell(runs)
    return runs


def _idle_measured(idle: pd.DataFrame, device: str) -> str:
    """'' when every idle row of ``device`` was measured (RAPL; NVML too on a GPU), else why not."""
    cpu = idle.get("cpu_power_source", pd.Series("", index=idle.index)).astype(str).str.strip()
    bad_cpu = sorted(set(cpu) - set(MEASURED_CPU_SOURCES))
    if bad_cpu:
        return (f"idle CPU power on {device} was estimated ({', '.join(s or 'unknown' for s in bad_cpu)}"
                "), not measured with RAPL: subtracting an estimate can flip the sign of the "
                "difference")
    if device == "gpu":
        gpu = idle.get("gpu_power_source", pd.Series("", index=idle.index)).astype(str).str.strip()
        bad_gpu = sorted(set(gpu) - set(MEASURED_GPU_SOURCES))
        if bad_gpu:
            return (f"idle GPU power was not read from NVML ({', '.join(s or 'unknown' for s in bad_gpu)})")
    return ""


def add_net_energy(runs: pd.DataFrame, idle: pd.DataFrame,
                   source: str = "idle.csv") -> pd.DataFrame:
    """Add ``net_energy_kwh`` = energy_kwh - idle power of the device x duration_s.

    Idle power per device is sum(energy_kwh) / sum(duration_s) over the idle rows of that device
    (only ``ok`` rows when the file has a ``status`` column). Net energy is computed only where it
    means something: the idle power was measured (``cpu_power_source`` rapl, and on a GPU
    ``gpu_power_source`` nvml), and it is below the run's own mean power. Elsewhere the cell is
    empty and ``net_energy_why`` (a column of the frame, not written to any table) says why.
    """
    for col in IDLE.required:
        if col not in idle.columns:
            raise LeakwattError(f"{source}: line 1: missing column {col}")
    idle = idle.copy()
    for col in ("duration_s", "energy_kwh"):
        blank = _blank(idle[col])
        values = pd.to_numeric(idle[col].where(~blank, np.nan), errors="coerce")
        bad = ~blank & values.isna()
        if bad.any():
            i = bad.idxmax()
            raise LeakwattError(
                f"{source}: line {_lines(idle)[i]}: {col} {idle.at[i, col]!r} is not a number")
        idle[col] = values
    if "status" in idle.columns:
        idle = idle[idle["status"].astype(str).str.strip() == "ok"]
    idle = idle.dropna(subset=["duration_s", "energy_kwh"])
    idle = idle[idle["duration_s"] > 0]
    idle_device = idle["device"].astype(str).str.strip()
    out = runs.copy()
    out["net_energy_kwh"] = np.nan
    out["net_energy_why"] = ""
    for device, rows in out.groupby("device", sort=True):
        mine = idle[idle_device == device]
        if mine.empty:
            out.loc[rows.index, "net_energy_why"] = f"no ok idle baseline on {device}"
            continue
        why = _idle_measured(mine, str(device))
        if why:
            out.loc[rows.index, "net_energy_why"] = why
            continue
        kwh_per_s = float(mine["energy_kwh"].sum() / mine["duration_s"].sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            run_power = rows["energy_kwh"] / rows["duration_s"]
        above = run_power > kwh_per_s
        net = rows["energy_kwh"] - kwh_per_s * rows["duration_s"]
        out.loc[rows.index[above.to_numpy()], "net_energy_kwh"] = net[above]
        below = rows.index[(~above & rows["energy_kwh"].notna()).to_numpy()]
        out.loc[below, "net_energy_why"] = (
            f"the run's mean power is not above the idle power of {device} "
            f"({kwh_per_s * 3.6e6:.3g} W)")
    return out


def drop_after_exit(series: pd.DataFrame, wall_s: float | None = None) -> pd.DataFrame:
    """A run's RSS series without the samples taken after the program exited.

    A live process never has 0 MB resident: a trailing sample at 0 MB (older harness versions
    took one after exit) is dropped, as is any sample later than the run's ``wall_s``.
    """
    if series.empty or "rss_mb" not in series.columns:
        return series
    rss = pd.to_numeric(series["rss_mb"], errors="coerce")
    keep = rss.notna() & (rss > 0)
    if wall_s is not None and np.isfinite(wall_s) and "t_s" in series.columns:
        keep &= pd.to_numeric(series["t_s"], errors="coerce") <= wall_s
    last = int(np.flatnonzero(keep.to_numpy())[-1]) + 1 if keep.any() else 0
    trimmed = series.iloc[:last]
    return trimmed[(pd.to_numeric(trimmed["rss_mb"], errors="coerce") > 0).to_numpy()]


def rss_growth(series: pd.DataFrame) -> float:
    """OLS slope (MB/s) of RSS over the second half of a run, as the harness computes it."""
    if len(series) == 0:
        return np.nan
    t = pd.to_numeric(series["t_s"], errors="coerce").to_numpy(float)
    rss = pd.to_numeric(series["rss_mb"], errors="coerce").to_numpy(float)
    tail = t >= t[-1] / 2
    if tail.sum() < 3 or np.ptp(t[tail]) == 0:
        return np.nan
    return float(np.polyfit(t[tail], rss[tail], 1)[0])


def series_file(run: pd.Series) -> Path | None:
    """The run's ``series_path`` file (relative to its runs.csv), when it exists."""
    rel = str(run.get("series_path", "") or "")
    source = str(run.get("_source", "") or "")
    if not rel or rel.lower() == "nan" or not source:
        return None
    path = Path(source).parent / rel
    return path if path.is_file() else None


def recompute_rss_growth(runs: pd.DataFrame) -> pd.DataFrame:
    """``rss_growth_mb_per_s`` recomputed from each run's series without post-exit samples.

    Series written before the harness stopped sampling after exit end with a 0 MB point that
    drives the slope negative; runs without a readable series keep their recorded value.
    """
    if "series_path" not in runs.columns or "rss_growth_mb_per_s" not in runs.columns:
        return runs
    out = runs.copy()
    for i, run in out.iterrows():
        path = series_file(run)
        if path is None:
            continue
        try:
            series = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.ParserError):
            continue
        if not {"t_s", "rss_mb"} <= set(series.columns):
            continue
        wall = pd.to_numeric(pd.Series([run.get("wall_s")]), errors="coerce").iloc[0]
        out.at[i, "rss_growth_mb_per_s"] = rss_growth(drop_after_exit(series, wall))
    return out


def foreign_load(runs: pd.DataFrame, cores: Mapping[str, float], max_load: float
                 ) -> pd.Series:
    """True for runs whose 1-minute load average at start or end exceeded ``max_load`` x the
    device's core count (``cores``: runs.csv path -> logical cores, from environment.json).

    Runs without ``load_start``/``load_end`` or a known core count are not flagged."""
    flagged = pd.Series(False, index=runs.index)
    cols = [c for c in ("load_start", "load_end") if c in runs.columns]
    if not cols:
        return flagged
    limit = runs["_source"].map(lambda s: max_load * cores[s] if s in cores else np.nan)
    for col in cols:
        load = pd.to_numeric(runs[col], errors="coerce")
        flagged |= (load > limit).fillna(False).astype(bool)
    return flagged


def load_runs(runs_paths: Sequence[str | Path], idle_paths: Sequence[str | Path] = ()
              ) -> pd.DataFrame:
    """Read, validate and concatenate runs files; add ``net_energy_kwh`` when idle files exist.

    RSS growth is recomputed from the series files without the samples taken after exit."""
    runs = recompute_rss_growth(combine_runs([read_runs(p) for p in runs_paths]))
    idle_frames = []
    for path in idle_paths:
        frame = _read_csv(path, "idle baseline file")
        frame["_source"] = str(path)
        idle_frames.append(frame)
    if idle_frames:
        idle = pd.concat(idle_frames, ignore_index=True)
        runs = add_net_energy(runs, idle, source=", ".join(str(p) for p in idle_paths))
    return runs


__all__ = ["DEFAULT_FRAMEWORK", "KEY", "MEASURE_COLUMNS", "OPTIONAL_METRICS", "RUNS_REQUIRED",
           "add_net_energy", "combine_runs", "drop_after_exit", "foreign_load", "load_runs",
           "read_runs", "recompute_rss_growth", "rss_growth", "run_key", "run_kind", "series_file",
           "validate_runs"]
