"""The findings cache: results keyed by file content, in process and optionally on disk.

Mining scans the same blobs many times (a file unchanged over a thousand commits). A result is
keyed by the hash of the file's bytes, the detector version (which changes with every rule
module, :func:`leakwatt.mining.rules.detector_version`), the rules run and the size limit.
The in-process cache is a bounded LRU; the disk cache is one JSON file per key, written
atomically. The cache stores plain JSON-able dicts; the engine turns them into results.

A cache folder is data like any other: it can be torn, stale or edited. Every disk entry is
sealed (:func:`seal`): it carries the cache schema version, its own key and a SHA-256 over the
two and its content, and an entry whose seal does not match (another schema, another key, a
result rewritten to "no findings") is a miss, scanned again. The engine then checks the
content's shape and field types (:func:`leakwatt.mining.scan._load_disk`); the miner's results
cache uses the same seal (:func:`leakwatt.mining.mine._load_cached`).
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
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Version of the sealed entry layout (:func:`seal`); entries of another version are misses.
SCHEMA = 2

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


def _checksum(key: str, content: Any) -> str:
    body = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(f"leakwatt-cache\0{SCHEMA}\0{key}\0{body}".encode()).hexdigest()


def seal(key: str, content: Any) -> dict[str, Any]:
    """``content`` (JSON-able) wrapped with the schema version, ``key`` and their checksum."""
    plain = json.loads(json.dumps(content, default=str))  # as it will read back
    return {"schema": SCHEMA, "key": key, "checksum": _checksum(key, plain), "entry": plain}


def unseal(raw: Any, key: str) -> Any | None:
    """The content of a sealed entry for ``key``; None unless schema, key and checksum match."""
    if not isinstance(raw, dict) or set(raw) != {"schema", "key", "checksum", "entry"}:
        return None
    if raw["schema"] != SCHEMA or raw["key"] != key or not isinstance(raw["checksum"], str):
        return None
    try:
        ok = raw["checksum"] == _checksum(key, raw["entry"])
    except (TypeError, ValueError):
        return None
    return raw["entry"] if ok else None


def load(cache_dir: Path, key: str) -> dict | None:
    """The stored entry for ``key``; None when absent, unreadable or not sealed for ``key``
    (a miss)."""
    try:
        raw = json.loads(_file(cache_dir, key).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    entry = unseal(raw, key)
    return entry if isinstance(entry, dict) else None


def store(cache_dir: Path, key: str, entry: dict) -> None:
    """Write one sealed cache entry atomically (temporary file, then rename).

    Not fsync'ed: an entry lost or torn by a crash does not parse, counts as a miss and is
    rescanned, and an fsync per file would cost more than the scan of a small file.
    """
    file = _file(cache_dir, key)
    with contextlib.suppress(OSError, ValueError):  # a cache that cannot be written is slower
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{key[:8]}", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(seal(key, entry)))
            os.replace(tmp, file)
        except BaseException as exc:  # Ctrl-C included: no temporary file is left behind
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if not isinstance(exc, OSError | ValueError):
                raise
