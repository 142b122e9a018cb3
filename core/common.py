"""Small shared pieces: the one error type users see, and atomic writes.

Every stage output is written to a temporary file in the same folder and renamed into place,
so an interrupted stage never leaves a half-written file behind; on Linux the temporary file has
no name until it is complete, so not even a SIGKILL leaves one behind. Output faults that reach
the command line (a full disk) are one line and exit status :data:`EXIT_OUTPUT_ERROR`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


class LeakwattError(Exception):
    """A problem with the user's input or environment, shown as one line without a traceback."""


#: Exit status of a command that could not write its output (a full disk, a read-only or
#: vanished folder, an I/O error): ``EX_IOERR`` of sysexits.h, apart from 1 (scan: findings)
#: and 2 (usage errors).
EXIT_OUTPUT_ERROR = 74


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError that reached the command line: what, and on which file."""
    what = exc.strerror or str(exc) or type(exc).__name__
    where = exc.filename if exc.filename is not None else None
    if where is not None and str(where).startswith("/proc/self/fd/"):
        where = None  # the unnamed temporary file of atomic_open: say what it was for
    return f"{where}: {what}" if where is not None else f"cannot write or read: {what}"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cap_jobs(jobs: int, what: str, say: Any = None) -> int:
    """``jobs`` (0: all cores) capped at the usable cores, with one line on stderr (or to
    ``say``) when it was above them: more processes than cores only cost memory."""
    cores = usable_cores()
    if jobs > cores:
        import sys

        print(f"leakwatt: note: {what} {jobs} is more than the {cores} usable core(s); "
              f"using {cores}", file=say or sys.stderr)
        return cores
    return jobs


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8",
                newline: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    Where the platform has ``O_TMPFILE`` (Linux) the temporary file has no name until it is
    complete and fsync'ed, so not even a SIGKILL can leave one behind; it is then linked under
    a temporary name and renamed over ``path`` at once. Elsewhere a named temporary file is
    used, removed on any exception (Ctrl-C included).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    fd = _unnamed_file(target.parent)
    named = fd is None
    tmp: str | None = None
    if fd is None:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding,
                       newline=None if binary else newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
            if not named:
                tmp = _link_unnamed(fh.fileno(), target)
        assert tmp is not None
        if named:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give it normal permissions
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno and exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(target)) from None  # name the output
        raise


def _unnamed_file(folder: Path) -> int | None:
    """A descriptor of a new unnamed file in ``folder`` (``O_TMPFILE``), or None."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag:
        return None
    try:
        return os.open(folder, flag | os.O_RDWR | getattr(os, "O_CLOEXEC", 0), 0o666 & ~_umask())
    except OSError:  # a file system without O_TMPFILE support: use a named file
        return None


@functools.cache
def _libc() -> Any:
    """The C library, for ``linkat`` (which ``os.link`` cannot call with ``AT_EMPTY_PATH``)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc if hasattr(libc, "linkat") else None
    except OSError:
        return None


_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000


def _link_unnamed(fd: int, target: Path) -> str:
    """Give the complete unnamed file ``fd`` a temporary name beside ``target``: ``linkat``
    with ``AT_EMPTY_PATH``, else through ``/proc/self/fd``, else (neither allowed here) a
    named copy."""
    name = str(target.parent / f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    libc = _libc()
    if libc is not None and libc.linkat(fd, b"", _AT_FDCWD, os.fsencode(name),
                                        _AT_EMPTY_PATH) == 0:
        return name
    with contextlib.suppress(OSError):
        os.link(f"/proc/self/fd/{fd}", name, follow_symlinks=True)
        return name
    copy_fd, copy = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        while chunk := os.read(fd, 1 << 20):
            view = memoryview(chunk)
            while view:
                view = view[os.write(copy_fd, view):]
        os.fsync(copy_fd)
        os.chmod(copy, 0o666 & ~_umask())
    except BaseException:
        os.close(copy_fd)
        with contextlib.suppress(OSError):
            os.unlink(copy)
        raise
    os.close(copy_fd)
    return copy


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


def package_version() -> str:
    """The installed distribution's version (``leakwatt --version``, SARIF's driver version)."""
    from importlib import metadata

    try:
        return metadata.version("leakwatt")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"
