"""Reading what a scan is given, defensively: regular files only, bounded reads, PEP 263
encodings, deep nesting and a per-file time budget.

A scanned folder holds whatever its owner put there. Only regular files are read: a FIFO
named ``f.py`` would block ``open`` forever and a symlink to ``/dev/zero`` has ``st_size``
0 and no end. The type is checked with ``os.stat`` before opening, the file is opened
non-blocking and checked again with ``fstat`` (it could be swapped in between), and at most
``max_bytes + 1`` bytes are read whatever the size says. Each failure is a :class:`ReadError`
whose message becomes the file's error row.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import re
import signal
import stat
import sys
import threading
import tokenize
from collections.abc import Callable, Iterator
from typing import TypeVar

from leakwatt.common import LeakwattError

T = TypeVar("T")

#: Recursion limit and thread stack for the second try at a file whose nesting exhausted the
#: default limit (a 1,000-long ``elif`` chain or ``a + b + ...`` chain is valid Python and
#: libcst's parser and visitors recurse once per level).
DEEP_RECURSION_LIMIT = 60_000
DEEP_STACK_BYTES = 512 * 1024 * 1024


class ReadError(LeakwattError):
    """A path that cannot be read as a source file (not regular, unreadable, too large)."""


class FileTimeout(Exception):  # noqa: N818 - raised inside the scan of one file only
    """The scan of one file ran past its time budget."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The bytes of the regular file ``path`` (symlinks followed), at most ``max_bytes + 1``
    of them (a longer read tells the caller the file is too large). ReadError otherwise."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ReadError(f"cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ReadError(f"not a regular file ({_kind(st.st_mode)}); not read")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ReadError(f"cannot read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped between the stat and the open
            raise ReadError(f"not a regular file ({_kind(st.st_mode)}); not read")
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise ReadError(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


#: Byte-order marks of the wide Unicode encodings, longest first (the UTF-32-LE mark begins
#: with the UTF-16-LE one). Python itself reads only UTF-8 source, but editors on Windows save
#: UTF-16 with a BOM, and such a file is text, not binary.
WIDE_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
             (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def wide_bom(data: bytes) -> str | None:
    """``utf-16`` or ``utf-32`` when ``data`` starts with that encoding's BOM, else None."""
    for bom, encoding in WIDE_BOMS:
        if data.startswith(bom):
            return encoding
    return None


def source_encoding(data: bytes) -> str:
    """The encoding PEP 263 gives ``data`` (a BOM, else a coding cookie on line 1 or 2, else
    UTF-8), as :func:`tokenize.detect_encoding` reads it; a UTF-16 or UTF-32 BOM gives that
    encoding (the codec then strips the BOM). LookupError/SyntaxError for an unknown or
    inconsistent declaration."""
    wide = wide_bom(data)
    if wide is not None:
        return wide
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return encoding


#: A PEP 263 coding cookie (the regular expression of :mod:`tokenize`), on line 1 or 2.
_COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+", re.MULTILINE)


def _has_cookie(data: bytes) -> bool:
    return any(_COOKIE.match(line) for line in data.split(b"\n", 2)[:2])


def _not_utf8(data: bytes) -> ValueError:
    """The error of a file that declares no encoding and is not UTF-8 (often Latin-1 or
    cp1252 saved by an old editor): Python itself would refuse it."""
    try:
        data.decode("utf-8")
        where = ""
    except UnicodeDecodeError as exc:
        where = f" (byte 0x{data[exc.start]:02x} at offset {exc.start})"
    return ValueError(f"not UTF-8 and no coding cookie (PEP 263){where}")


def decode_source(data: bytes) -> str:
    """``data`` as text in its declared encoding (PEP 263); ValueError with a one-line reason
    when it does not decode."""
    try:
        encoding = source_encoding(data)
    except (SyntaxError, LookupError) as exc:
        if not _has_cookie(data) and not data.startswith(codecs.BOM_UTF8) \
                and "encoding declaration" in str(exc):
            raise _not_utf8(data) from None  # tokenize: "invalid or missing ..."
        raise ValueError(f"bad encoding declaration: {' '.join(str(exc).split())}") from None
    try:
        return data.decode(encoding)
    except LookupError as exc:  # a codec that is not a text encoding: ``# coding: rot13``
        raise ValueError(f"bad encoding declaration: {' '.join(str(exc).split())}") from None
    except UnicodeDecodeError as exc:
        if encoding == "utf-8" and not _has_cookie(data):  # no BOM, no cookie
            raise _not_utf8(data) from None
        name = "UTF-8" if encoding.startswith("utf-8") else encoding
        raise ValueError(f"not {name} (byte 0x{data[exc.start]:02x} at offset {exc.start})"
                         ) from None


def run_deep(func: Callable[[], T]) -> T:
    """``func()`` in a thread with a large stack and recursion limit (the second try at a
    file whose nesting exhausted the default limit). Exceptions are re-raised here."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = func()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            box["error"] = exc

    old_limit = sys.getrecursionlimit()
    old_stack = threading.stack_size()
    try:
        threading.stack_size(DEEP_STACK_BYTES)
        sys.setrecursionlimit(max(old_limit, DEEP_RECURSION_LIMIT))
        worker = threading.Thread(target=target, name="leakwatt-deep-scan")
        worker.start()
        worker.join()
    finally:
        threading.stack_size(old_stack)
        sys.setrecursionlimit(old_limit)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


@contextlib.contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    """Raise :class:`FileTimeout` in this block once it has run ``seconds`` (wall clock).

    Uses ``SIGALRM`` (POSIX, main thread only: scan workers are processes, so each file's
    scan runs in a main thread); elsewhere, or with ``seconds`` None or 0, no budget applies.
    """
    usable = (bool(seconds) and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise FileTimeout(f"over the time budget of {seconds:g} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))  # type: ignore[arg-type]
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
