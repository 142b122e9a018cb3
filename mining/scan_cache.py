"""The findings cache: results keyed by file content, in process and optionally on disk.

Mining scans the same blobs many times (a file unchanged over a thousand commits). A result is
keyed by the hash of the file's bytes, the detector version (which changes with every rule
module, :func:`leakwatt.mining.rules.detector_version`), the rules run and the size limit.
The in-process cache is a bounded LRU; the disk cache is one JSON file per key, written
atomically. The cache stores plain JSON-able dicts; the engine turns them into results.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")

#: Entries the in-process cache keeps (least recently used are dropped first).
CACHE_SIZE = 20_000


def cache_key(data: bytes, rules: Sequence[str], max_bytes: int, version: str) -> str:
    """Key of a scan of ``data``: content hash, detector ``version``, rules and size limit."""
    h = hashlib.sha256(data)
    h.update(f"\0{version}\0{','.join(sorted(rules))}\0{max_bytes}".encode())
    return h.hexdigest()


class LRU(Generic[T]):
    """A bounded mapping that forgets its least recently used entries."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[str, T] = OrderedDict()

    def get(self, key: str) -> T | None:
        hit = self._data.get(key)
        if hit is not None:
            self._data.move_to_end(key)
        return hit

    def put(self, key: str, value: T) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data


def _file(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.json"


def load(cache_dir: Path, key: str) -> dict | None:
    """The stored entry for ``key``; None when absent or unreadable (a miss)."""
    try:
        raw = json.loads(_file(cache_dir, key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def store(cache_dir: Path, key: str, entry: dict) -> None:
    """Write one cache entry atomically (temporary file, then rename).

    Not fsync'ed: an entry lost or torn by a crash does not parse, counts as a miss and is
    rescanned, and an fsync per file would cost more than the scan of a small file.
    """
    file = _file(cache_dir, key)
    with contextlib.suppress(OSError):  # a cache that cannot be written is only slower
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{key[:8]}", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(entry))
            os.replace(tmp, file)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
