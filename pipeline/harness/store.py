"""Append-only CSV stores keyed by run: ``runs.csv``, ``idle.csv``, ``warmup.csv``.

A row is written, flushed and fsynced as soon as its run ends, so an interrupted measurement
loses at most the run in flight. A torn last line (the harness killed mid-write) is cut off
before the next append. Rows are never rewritten; resuming adds only missing keys.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from leakwatt.common import LeakwattError
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
        """Cut a torn last line (no trailing newline) left by a killed writer."""
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)
                fh.flush()
                os.fsync(fh.fileno())

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
        return pd.read_csv(self.path, dtype={"pair_id": str, "variant": str, "device": str})

    def keys(self) -> set[tuple[Any, ...]]:
        frame = self.read()
        return {tuple(_plain(v) for v in row) for row in
                frame[list(self.key)].itertuples(index=False, name=None)}


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
