"""Small shared pieces: the one error type users see, and atomic writes.

Every stage output is written to a temporary file in the same folder and renamed into place,
so an interrupted stage never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


class LeakwattError(Exception):
    """A problem with the user's input or environment, shown as one line without a traceback."""


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8",
                newline: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding,
                       newline=None if binary else newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    with atomic_open(path, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")


def atomic_write_csv(path: str | os.PathLike[str], frame: Any, columns: list[str] | None = None) -> None:
    """Write a pandas DataFrame as CSV atomically; ``columns`` fixes the header even when empty."""
    if columns is not None:
        for col in columns:
            if col not in frame.columns:
                frame[col] = None
        rest = [c for c in frame.columns if c not in columns]
        frame = frame[list(columns) + rest]
    with atomic_open(path, "w", newline="") as fh:
        frame.to_csv(fh, index=False)
