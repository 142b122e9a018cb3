"""Worker processes where one file's scan can crash, run away with memory or overrun its
budget, and only that file is lost.

libcst parses in native code: a pathological file can segfault it, abort it on a failed
allocation, allocate gigabytes, or hold it for a minute in a loop no signal interrupts (the
``SIGALRM`` budget of :func:`leakwatt.mining.reading.time_budget` only fires between Python
bytecodes). So every file's parse and analysis in ``leakwatt scan`` and ``leakwatt mine`` runs in
a :class:`Sandbox`: a few long-lived worker processes, forked once with the rules already
imported, fed tasks in chunks over a socket (no process per file on the normal path). Each
worker limits its own address space (``RLIMIT_AS``: a runaway allocation fails in the worker,
as a ``MemoryError`` or an abort, instead of swapping the machine). The parent times every
task from outside and ``SIGKILL``\\s a worker whose task runs past its budget. A worker that
dies is replaced; its task becomes an error naming the cause (``crashed: SIGSEGV in the
parser``, ``over the memory limit``, ``over the time budget``), and the tasks queued behind
it go to the next worker.

Why ``RLIMIT_AS`` here and not in the measurement harness (``pipeline/harness/runner.py``
explains why it is not used there): a scan worker runs no TensorFlow, whose address-space
reservations dwarf its use; it holds Python, libcst and one file. The limit is set relative to
the worker's size when it starts, so it bounds what one file may add.

Workers are started with ``os.fork`` (they inherit the imported modules and cost a few
milliseconds); where there is no ``fork`` (Windows) tasks run in this process without a
sandbox.
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Address space one file's scan may add to a worker (``leakwatt scan --file-memory``).
#: Normal files need tens of MB; libcst's deep-recursion retry reserves a 512 MiB thread stack.
DEFAULT_MEMORY_MB = 2048
#: Seconds a worker is given past a task's budget before it is killed: the worker's own
#: ``SIGALRM`` budget reports a Python-level overrun first (with the same message); the kill is
#: for native code that does not return to Python.
KILL_GRACE_S = 0.5
#: Bytes of a dead worker's stderr kept to tell an allocation failure from another abort.
_STDERR_TAIL = 4096
_SUPPORTED = hasattr(os, "fork") and sys.platform != "win32"


def over_budget(budget_s: float) -> str:
    return f"over the time budget of {budget_s:g} s"


@dataclass
class _Worker:
    pid: int
    conn: Connection
    stderr: Any  # a temporary file the worker's fd 2 writes to
    queue: collections.deque[int] = field(default_factory=collections.deque)
    started: float = 0.0  # when its first queued task started (parent's clock)
    rss: int = 0  # resident bytes when it was forked
    peak: int = 0  # its peak resident bytes, once it has been reaped


def _rss_limit(extra_mb: int) -> int:
    """This process's address space now plus ``extra_mb`` MiB, in bytes."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[0])
        current = pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        current = 0
    return current + extra_mb * 1024 * 1024


def _die_with_parent(parent: int) -> None:
    """On Linux, have the kernel kill this worker when the process that forked it ends (a
    scan or mine killed with SIGKILL leaves no worker behind)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent ended before the request took effect
        os._exit(0)


def _close_inherited(keep: set[int]) -> None:
    """Close every descriptor but ``keep`` in a new worker. It inherits all of its parent's:
    a pipe to ``git cat-file --batch`` that the worker holds open would keep git waiting for
    input after the parent closed its own end, and the parent waiting for git forever."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 4096))
    for fd in fds:
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _resident() -> int:
    """This process's resident bytes now (0 where /proc is absent)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _worker_loop(conn: Connection, memory_mb: int | None, parent: int) -> None:
    """The body of a worker: receive ``(func, [(index, task), ...])``, send ``(index, status,
    value)`` per task; ``None`` ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent(parent)
    if memory_mb:
        try:
            import resource

            limit = _rss_limit(memory_mb)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ImportError, ValueError, OSError):
            pass  # no RLIMIT_AS here (macOS ignores it): the time limit still applies
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        func, tasks = msg
        for index, task in tasks:
            try:
                reply: tuple[int, str, Any] = (index, "ok", func(task))
            except MemoryError:
                reply = (index, "memory", None)
            except BaseException as exc:  # noqa: BLE001 - reported, the worker goes on
                reply = (index, "error", f"{type(exc).__name__}: {exc}"[:300])
            try:
                conn.send(reply)
            except MemoryError:
                conn.send((index, "memory", None))
            except pickle.PicklingError as exc:
                conn.send((index, "error", f"result not picklable: {exc}"[:300]))


def _describe(status: int, stderr_tail: str, memory_mb: int | None, grew: int = 0) -> str:
    """The cause of a worker's death, for the error row of the task it was running. ``grew``:
    how many bytes its resident size had grown by at its peak. A worker at its memory limit
    dies by an abort (Rust's failed allocation says so on stderr) or, when its stack cannot
    grow any more, by SIGSEGV: a segfault after growing to 3/4 of the limit is the limit."""
    memory = ("over the memory limit" + (f" ({memory_mb} MiB)" if memory_mb else ""))
    if "memory allocation of" in stderr_tail or "MemoryError" in stderr_tail \
            or "std::bad_alloc" in stderr_tail or "Cannot allocate memory" in stderr_tail:
        return memory
    if memory_mb and grew >= 0.75 * memory_mb * 1024 * 1024 and os.WIFSIGNALED(status) \
            and os.WTERMSIG(status) in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS):
        return memory
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        if sig == signal.SIGKILL:  # not ours (ours is reported as over the budget): the OOM killer
            return f"crashed: killed by {name} (out of memory?)"
        return f"crashed: {name} in the parser"
    return f"crashed: worker exited with status {os.WEXITSTATUS(status)}"


class Sandbox(Generic[T, R]):
    """A pool of ``workers`` sandboxed processes that run ``func(task)`` for many tasks.

    ``budget_s``: seconds one task may take (None or 0: no limit); ``memory_mb``: address space
    one task may add (None: no limit). ``failed(task, reason)`` makes the result of a task that
    crashed its worker, ran out of memory or time, or raised. Use as a context manager (the
    workers end with it); :meth:`map` may be called many times on one pool.
    """

    def __init__(self, func: Callable[[T], R], failed: Callable[[T, str], R],
                 workers: int = 1, budget_s: float | None = None,
                 memory_mb: int | None = DEFAULT_MEMORY_MB, chunk: int = 1) -> None:
        self.func = func
        self.failed = failed
        self.size = max(1, workers)
        self.budget_s = budget_s or None
        self.memory_mb = memory_mb
        self.chunk = max(1, chunk)
        self._workers: list[_Worker] = []
        #: How many workers were replaced after a crash or a kill (for tests and reports).
        self.restarts = 0

    # -- workers ------------------------------------------------------------------------
    def _start(self) -> _Worker:
        parent, child = socket.socketpair()
        # the worker's stderr, read after a crash; it lives as long as the worker
        err = tempfile.TemporaryFile(prefix="leakwatt-worker-")  # noqa: SIM115
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        me = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the caller's code
            code = 0
            try:
                parent.close()
                os.dup2(err.fileno(), 2)
                fd = child.detach()
                _close_inherited({0, 1, 2, fd})
                _worker_loop(Connection(fd), self.memory_mb, me)
            except BaseException:  # noqa: BLE001 - a worker ends here, whatever happened
                code = 70
            finally:
                os._exit(code)
        child.close()
        return _Worker(pid, Connection(parent.detach()), err, rss=_resident())

    def _reap(self, worker: _Worker, kill: bool) -> int:
        """End ``worker`` (SIGKILL when ``kill``) and return its wait status."""
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            worker.conn.close()
        status = 0
        deadline = time.monotonic() + 5.0
        while True:
            try:
                pid, status, usage = os.wait4(worker.pid, 0 if kill else os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                worker.peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
                break
            if time.monotonic() > deadline:  # a worker that closed its socket but lingers
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
                kill = True
                continue
            time.sleep(0.005)
        return status

    def _stderr_tail(self, worker: _Worker) -> str:
        try:
            size = os.fstat(worker.stderr.fileno()).st_size
            data = os.pread(worker.stderr.fileno(), _STDERR_TAIL, max(0, size - _STDERR_TAIL))
        except OSError:
            return ""
        finally:
            with contextlib.suppress(OSError):
                worker.stderr.close()
        return data.decode("utf-8", "replace")

    def close(self) -> None:
        """End every worker (asked to stop; killed when it does not)."""
        for worker in self._workers:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(None)
        for worker in self._workers:
            self._reap(worker, kill=bool(worker.queue))
            with contextlib.suppress(OSError):
                worker.stderr.close()
        self._workers = []

    def __enter__(self) -> Sandbox[T, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running ------------------------------------------------------------------------
    def map(self, tasks: Iterable[T], func: Callable[[T], R] | None = None,
            failed: Callable[[T, str], R] | None = None) -> list[R]:
        """``func(task)`` for every task, in order; a task that fails gives ``failed(task,
        reason)`` (both default to the pool's). Tasks are taken from ``tasks`` as workers need
        them."""
        saved = self.func, self.failed
        self.func, self.failed = func or self.func, failed or self.failed
        try:
            if not _SUPPORTED:
                return [self._in_process(task) for task in tasks]
            return self._map(tasks)
        finally:
            self.func, self.failed = saved

    def _map(self, tasks: Iterable[T]) -> list[R]:
        source = iter(enumerate(tasks))
        held: dict[int, T] = {}
        results: dict[int, R] = {}
        retry: collections.deque[int] = collections.deque()
        exhausted = False

        def next_chunk() -> list[int]:
            nonlocal exhausted
            out: list[int] = []
            while len(out) < self.chunk and retry:
                out.append(retry.popleft())
            while len(out) < self.chunk and not exhausted:
                item = next(source, None)
                if item is None:
                    exhausted = True
                    break
                held[item[0]] = item[1]
                out.append(item[0])
            return out

        def feed(worker: _Worker) -> None:
            # One chunk at a time, sent to an idle worker only: a worker is then always
            # reading when it is sent to, so a send never blocks this loop (a chunk of blobs
            # can be larger than the socket's buffer) while another worker needs killing.
            if worker.queue:
                return
            indices = next_chunk()
            if not indices:
                return
            worker.started = time.monotonic()
            worker.queue.extend(indices)
            # A worker that died takes its tasks back through _lost.
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send((self.func, [(i, held[i]) for i in indices]))

        def finish(index: int, result: R) -> None:
            results[index] = result
            held.pop(index, None)

        while True:
            while len(self._workers) < self.size and (retry or not exhausted):
                worker = self._start()
                self._workers.append(worker)
                feed(worker)
                if not worker.queue:  # nothing left for it
                    break
            for worker in self._workers:
                feed(worker)
            busy = [w for w in self._workers if w.queue]
            if not busy:
                break
            timeout = None
            if self.budget_s:
                now = time.monotonic()
                timeout = max(0.0, min(w.started + self.budget_s + KILL_GRACE_S - now
                                       for w in busy))
            ready = wait([w.conn for w in busy], timeout)
            now = time.monotonic()
            for worker in busy:
                if worker.conn in ready:
                    try:
                        while worker.queue:
                            index, status, value = worker.conn.recv()
                            finish(index, self._result(held[index], status, value))
                            worker.queue.popleft()
                            worker.started = time.monotonic()
                            if not worker.conn.poll():
                                break
                        continue
                    except (EOFError, OSError):
                        self._lost(worker, None, retry, finish, held)
                        continue
                if self.budget_s and worker.queue and \
                        now >= worker.started + self.budget_s + KILL_GRACE_S:
                    self._lost(worker, over_budget(self.budget_s), retry, finish, held)
        return [results[i] for i in sorted(results)]

    def _result(self, task: T, status: str, value: Any) -> R:
        if status == "ok":
            return value  # type: ignore[no-any-return]
        if status == "memory":
            return self.failed(task, "over the memory limit"
                               + (f" ({self.memory_mb} MiB)" if self.memory_mb else ""))
        return self.failed(task, f"internal error: {value}")

    def _lost(self, worker: _Worker, reason: str | None, retry: collections.deque[int],
              finish: Callable[[int, R], None], held: dict[int, T]) -> None:
        """``worker`` died (``reason`` None) or overran (``reason``): fail its current task,
        queue the others again and drop the worker (the loop starts a fresh one)."""
        status = self._reap(worker, kill=True)
        tail = self._stderr_tail(worker)
        self._workers.remove(worker)
        self.restarts += 1
        if not worker.queue:
            return
        current = worker.queue.popleft()
        if reason is None:
            reason = _describe(status, tail, self.memory_mb, worker.peak - worker.rss)
        finish(current, self.failed(held[current], reason))
        retry.extendleft(reversed(worker.queue))
        worker.queue.clear()

    def _in_process(self, task: T) -> R:
        try:
            return self.func(task)
        except MemoryError:
            return self.failed(task, "over the memory limit")
        except Exception as exc:  # noqa: BLE001 - as in a worker
            return self.failed(task, f"internal error: {type(exc).__name__}: {exc}"[:300])


__all__ = ["DEFAULT_MEMORY_MB", "KILL_GRACE_S", "Sandbox", "over_budget"]
