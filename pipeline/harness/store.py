"""Append-only CSV stores keyed by run: ``runs.csv``, ``idle.csv``, ``warmup.csv``.

A row is written, flushed and fsynced as soon as its run ends, so an interrupted measurement
loses at most the run in flight. A torn last line (the harness killed mid-write) is cut off
before the next append; a torn row that still ends in a newline (its cell count is not the
header's) is moved to ``<file>.torn`` so that its run is measured again. Otherwise rows are
never rewritten; resuming adds only missing keys. :func:`ensure_writable` checks, before
anything is measured, that the output can be written.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from leakwatt.common import LeakwattError, atomic_write_text
from leakwatt.contracts import IDLE, RUNS

# Columns and keys are the contracts of leakwatt.contracts (RUNS, WARMUP, IDLE).
RUNS_COLUMNS = list(RUNS.columns)
RUN_KEY = RUNS.key
IDLE_COLUMNS = list(IDLE.columns)
IDLE_KEY = IDLE.key


class AppendStore:
    """A CSV file appended one fsynced row at a time, with a fixed header."""

    def __init__(self, path: Path, columns: Sequence[str], key: Sequence[str]) -> None:
        self.path = Path(path)
        self.key = tuple(key)
        self.columns = list(columns)
        self._repair()
        if self.path.is_file() and self.path.stat().st_size > 0:
            with open(self.path, newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), [])
            missing = [c for c in columns if c not in header]
            if missing:
                raise LeakwattError(f"{self.path}: existing file lacks column {missing[0]!r}; "
                                    "use another output folder")
            self.columns = header
        else:
            self._append_line(self.columns)

    def _repair(self) -> None:
        """Cut a torn last line (no trailing newline) left by a killed writer, and move rows
        whose cell count is not the header's (torn, even when they end in a newline) aside to
        ``<file>.torn``: their keys are then missing and their runs are measured again."""
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)
                fh.flush()
                os.fsync(fh.fileno())
            data = data[:cut]
        text = data.decode("utf-8", errors="replace")
        records = list(csv.reader(io.StringIO(text, newline="")))
        if not records:
            return
        width = len(records[0])
        torn = [r for r in records[1:] if r and len(r) != width]
        if not torn:
            return
        kept = [records[0]] + [r for r in records[1:] if r and len(r) == width]
        for name, rows in ((self.path.name + ".torn", torn), (self.path.name, kept)):
            buf = io.StringIO(newline="")
            csv.writer(buf, lineterminator="\n").writerows(rows)
            if name == self.path.name:
                atomic_write_text(self.path, buf.getvalue())
            else:
                with open(self.path.with_name(name), "a", newline="", encoding="utf-8") as fh:
                    fh.write(buf.getvalue())

    def _append_line(self, values: Sequence[Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            csv.writer(fh, lineterminator="\n").writerow(values)
            fh.flush()
            os.fsync(fh.fileno())

    def append(self, row: dict[str, Any]) -> None:
        self._append_line(["" if row.get(c) is None else row.get(c) for c in self.columns])

    def read(self) -> pd.DataFrame:
        if not self.path.is_file():
            return pd.DataFrame(columns=self.columns)
        return pd.read_csv(self.path, dtype={"pair_id": str, "variant": str, "device": str,
                                             "framework": str})

    def keys(self) -> set[tuple[Any, ...]]:
        frame = self.read()
        return {tuple(_plain(v) for v in row) for row in
                frame[list(self.key)].itertuples(index=False, name=None)}


def ensure_writable(folder: Path, names: Sequence[str] = ()) -> None:
    """Raise a one-line LeakwattError unless ``folder`` (created if missing) and its existing
    files ``names`` can be written: checked before anything is measured, so that no run is
    measured and then lost. A file or folder without write permission bits counts as read-only
    even for root (who could write it anyway)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LeakwattError(f"{folder}: cannot create the output folder "
                            f"({exc.strerror or exc}); nothing measured") from None
    writable = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    if not folder.stat().st_mode & writable:
        raise LeakwattError(f"{folder}: output folder is read-only; nothing measured")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".leakwatt-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise LeakwattError(f"{folder}: output folder cannot be written "
                            f"({exc.strerror or exc}); nothing measured") from None
    for name in names:
        path = folder / name
        if path.exists() and (not path.stat().st_mode & writable
                              or not os.access(path, os.W_OK)):
            raise LeakwattError(f"{path}: read-only; nothing measured (make it writable or "
                                "measure into another folder)")


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
