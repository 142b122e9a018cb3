"""Reading runs.csv: check every row against the runs contract, type it, add net energy.

The contract is :data:`leakwatt.contracts.RUNS`; this module adds what a reader needs beyond the
header: typed, non-negative measurements, integer repetitions, unique run keys and one smell per
pair, each failure a one-line :class:`LeakwattError` naming the file and line. Validated frames
carry ``_source`` and ``_line`` so later messages and ``failures.csv`` can point at the row.
"""

from __future__ import annotations

from collections.abc import Sequence
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
OPTIONAL_METRICS = ("rss_growth_mb_per_s", "rapl_energy_kwh")
#: optional numeric columns that may be negative (a shrinking RSS has negative growth).
SIGNED_COLUMNS = ("rss_growth_mb_per_s",)
KEY = ("pair_id", "device", "variant", "rep")

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
        negative = (values < 0) & (out["status"] == "ok")
        if col not in SIGNED_COLUMNS and negative.any():
            i = negative.idxmax()
            raise LeakwattError(f"{source}: line {lines[i]}: {col} {raw[i]!r} is negative")
        out[col] = values

    if "scale" in out.columns:
        out["scale"] = out["scale"].where(~_blank(out["scale"]), "").astype(str)
    if "error" in out.columns:
        out["error"] = out["error"].where(~_blank(out["error"]), "").astype(str)
    _check_duplicates(out)
    _check_smell(out)
    return out


def _where(df: pd.DataFrame, i: Any) -> str:
    return f"{df.at[i, '_source']}: line {df.at[i, '_line']}"


def _check_duplicates(df: pd.DataFrame) -> None:
    dup = df.duplicated(list(KEY), keep="first")
    if dup.any():
        i = dup.idxmax()
        key = {k: df.at[i, k] for k in KEY}
        same = (df[list(KEY)] == pd.Series(key)).all(axis=1)
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


def add_net_energy(runs: pd.DataFrame, idle: pd.DataFrame,
                   source: str = "idle.csv") -> pd.DataFrame:
    """Add ``net_energy_kwh`` = energy_kwh - idle power of the device x duration_s.

    Idle power per device is sum(energy_kwh) / sum(duration_s) over the idle rows of that device
    (only ``ok`` rows when the file has a ``status`` column).
    Devices without idle rows get no net value (empty cells).
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
    power = idle.groupby(idle["device"].astype(str).str.strip())[["energy_kwh", "duration_s"]].sum()
    kwh_per_s = power["energy_kwh"] / power["duration_s"]
    out = runs.copy()
    out["net_energy_kwh"] = out["energy_kwh"] - out["device"].map(kwh_per_s) * out["duration_s"]
    return out



def load_runs(runs_paths: Sequence[str | Path], idle_paths: Sequence[str | Path] = ()
              ) -> pd.DataFrame:
    """Read, validate and concatenate runs files; add ``net_energy_kwh`` when idle files exist."""
    runs = combine_runs([read_runs(p) for p in runs_paths])
    idle_frames = []
    for path in idle_paths:
        frame = _read_csv(path, "idle baseline file")
        frame["_source"] = str(path)
        idle_frames.append(frame)
    if idle_frames:
        idle = pd.concat(idle_frames, ignore_index=True)
        runs = add_net_energy(runs, idle, source=", ".join(str(p) for p in idle_paths))
    return runs


__all__ = ["KEY", "MEASURE_COLUMNS", "OPTIONAL_METRICS", "RUNS_REQUIRED", "add_net_energy",
           "combine_runs", "load_runs", "read_runs", "validate_runs"]
