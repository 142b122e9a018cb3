"""Mine a corpus: clone, scan every Python file at the pin, walk the history, write the tables.

`mine_corpus` is the library entry point of the ``mine`` stage. Each repository is mined on its
own (in a worker process when ``params.jobs`` allows) into a plain result; failures of one
repository become its ``repos.csv`` row (status + reason), never a crash of the stage. Results
of repositories that mined cleanly are cached by (url, commit, name, detector version, mining
params) so that re-mining a grown corpus only mines the new repositories.

Outputs (written atomically, headers always present): ``repos.csv``, ``instances.csv``,
``events.csv``, ``leak_commits.csv``, ``scan_errors.csv``; columns in ``docs/mining.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from leakwatt.common import LeakwattError, atomic_write_csv, atomic_write_json
from leakwatt.contracts import MINE_OUTPUTS
from leakwatt.mining import scan_cache
from leakwatt.mining.clone import CloneError, checkout, repo_key, validate_url
from leakwatt.mining.corpus import CorpusEntry
from leakwatt.mining.git import (
    MODE_SUBMODULE,
    MODE_SYMLINK,
    BlobReader,
    has_commit,
    is_partial,
    list_tree,
    missing_objects,
    run_git,
)
from leakwatt.mining.history import is_python_path, walk_history
from leakwatt.mining.rules import select_rules
from leakwatt.mining.rules.project import ProjectIndex, ProjectView
from leakwatt.mining.sandbox import DEFAULT_MEMORY_MB, Sandbox
from leakwatt.params import MineParams

MINE_FORMAT = 3  # bump when the per-repository result layout or its meaning changes

# Output file -> header, from the stage table contracts (leakwatt.contracts).
OUTPUTS = {name: list(table.columns) for name, table in MINE_OUTPUTS.items()}
REPO_COLUMNS = OUTPUTS["repos.csv"]
INSTANCE_COLUMNS = OUTPUTS["instances.csv"]
SCAN_ERROR_COLUMNS = OUTPUTS["scan_errors.csv"]
CACHEABLE = ("ok", "empty", "no_python")

DASK_CONNECT_TIMEOUT_S = 30  # how long to wait for the Dask scheduler to answer


def detector_version() -> str:
    from leakwatt.mining.scan import DETECTOR_VERSION

    return str(DETECTOR_VERSION)


def cache_key(entry: CorpusEntry, params: MineParams) -> str:
    """Key of a repository's cached result: everything that can change its rows."""
    payload = {
        "format": MINE_FORMAT, "url": entry.url, "commit": entry.commit, "name": entry.name,
        "detector": detector_version(), "rules": sorted(params.rules), "history": params.history,
        "max_commits": params.max_commits if params.history else 0,
        "max_file_kb": params.max_file_kb,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def _display(path: bytes) -> tuple[str, bool]:
    """Path as text for the tables (undecodable bytes as escapes) and whether it was UTF-8."""
    try:
        return path.decode("utf-8"), True
    except UnicodeDecodeError:
        return path.decode("utf-8", "backslashreplace"), False


#: One file of a checkout, scanned in a sandbox worker: (bytes, path, rules, max bytes,
#: project view, time budget).
BlobTask = tuple[bytes, str, list[str], int, ProjectView | None, float | None]


def scan_blob(task: BlobTask) -> Any:
    """Scan one blob (run in a sandbox worker; see :mod:`leakwatt.mining.sandbox`)."""
    from leakwatt.mining.scan import scan_bytes

    data, path, rules, max_bytes, view, budget_s = task
    return scan_bytes(data, path, rules=rules, max_bytes=max_bytes, project=view,
                      budget_s=budget_s)


def blob_failed(task: BlobTask, reason: str) -> Any:
    """The error result of a blob whose scan crashed or overran its sandbox worker."""
    from leakwatt.mining.scan import FileResult

    return FileResult(path=task[1], error=f"{reason}; not scanned")


def blob_sandbox(params: MineParams, workers: int = 1) -> Sandbox[BlobTask, Any]:
    """The sandbox the files of one repository are scanned in (``mine.file_budget_s``)."""
    return Sandbox(scan_blob, blob_failed, workers=workers,
                   budget_s=params.file_budget_s or None, memory_mb=DEFAULT_MEMORY_MB)


def scan_checkout(work: Path, entry: CorpusEntry, params: MineParams,
                  complete: bool = True, sandbox: Sandbox[BlobTask, Any] | None = None
                  ) -> dict[str, Any]:
    """Scan all .py/.ipynb files of the pinned commit; counts, instances and error rows.

    Files are read from the repository's object store (``git cat-file``), not the work tree,
    so a clone whose checkout failed can still be scanned. ``complete=False`` (the checkout
    failed) also lists the blobs the snapshot lacks: each becomes a ``scan_errors`` row and
    ``out["missing"]`` counts them. Each file is scanned in ``sandbox`` (one of
    :func:`blob_sandbox` when None): a file that crashes the parser or overruns its memory or
    time is a ``scan_errors`` row, and the other files are scanned.
    """
    from leakwatt.mining.era import source_era
    from leakwatt.mining.scan import notebook_limit

    max_bytes = params.max_file_kb * 1024
    out: dict[str, Any] = {"files": 0, "py_files": 0, "notebooks": 0, "parse_errors": 0,
                           "lines": 0, "instances": [], "scan_errors": [], "missing": 0,
                           "missing_python": []}

    def error(path: str, message: str) -> None:
        out["scan_errors"].append({"repo": entry.name, "commit": entry.commit, "path": path,
                                   "error": message})

    tree = [(e.mode, e.kind, e.size, e.path, e.sha) for e in list_tree(work, entry.commit)]
    # A partial clone fetches absent blobs on demand: none of them counts as missing.
    absent = set() if complete or is_partial(work) else missing_objects(
        work, [sha for mode, kind, _, _, sha in tree if kind == "blob"])
    # The rows in tree order: an error message, or the index of a file's scan.
    steps: list[tuple[str, str] | int] = []
    tasks: list[BlobTask] = []
    with BlobReader(work) as reader:
        project, blobs = _project_index(reader, tree, absent, max_bytes)
        for mode, kind, size, raw_path, sha in tree:
            path, utf8 = _display(raw_path)
            if mode == MODE_SUBMODULE:
                steps.append((path, "skipped: submodule (not scanned)"))
                continue
            if kind != "blob":
                continue
            out["files"] += 1
            if sha in absent:
                out["missing"] += 1
                _count_missing_python(out, path, sha)
                steps.append((path, f"missing: blob {sha[:12]} is not in the repository "
                                    "(incomplete snapshot; not scanned)"))
                continue
            if not is_python_path(path):
                continue
            if mode == MODE_SYMLINK:
                steps.append((path, "skipped: symbolic link (not followed)"))
                continue
            out["notebooks" if path.lower().endswith(".ipynb") else "py_files"] += 1
            if not utf8:
                steps.append((path, "warning: path is not valid UTF-8 (shown with escapes)"))
            notebook = path.lower().endswith(".ipynb")
            limit = notebook_limit(max_bytes) if notebook else max_bytes
            if size is not None and size > limit:
                steps.append((path, f"skipped: {size} bytes is over the notebook file bound "
                                    f"({limit} bytes)" if notebook else
                                    f"skipped: {size} bytes is over max_file_kb "
                                    f"({params.max_file_kb} KiB)"))
                continue
            data = blobs.pop(sha, None) or reader.read(sha)
            if data is None:
                out["missing"] += 1
                out["py_files" if path.endswith(".py") else "notebooks"] -= 1
                _count_missing_python(out, path, sha)
                steps.append((path, f"missing: blob {sha[:12]} is not in the repository "
                                    "(incomplete snapshot; not scanned)"))
                continue
            view = project.view(path) if path.endswith(".py") else _notebook_view(project, path,
                                                                                   data)
            steps.append(len(tasks))
            tasks.append((data, path, list(params.rules), max_bytes, view,
                          params.file_budget_s or None))
    if sandbox is None:
        with blob_sandbox(params) as own:
            results = own.map(tasks)
    else:
        results = sandbox.map(tasks)
    for step in steps:
        if not isinstance(step, int):
            error(*step)
            continue
        data, path = tasks[step][0], tasks[step][1]
        result = results[step]
        out["lines"] += int(result.lines or 0)
        if result.error:
            out["parse_errors"] += 1
            error(path, str(result.error))
        elif result.skipped:
            error(path, f"skipped: {result.skipped}")
        if result.note:  # read as Python 2 (or with its tabs expanded): scanned, noted
            error(path, f"note: {result.note}")
        era = source_era(data) if result.findings else ""
        for finding in result.findings:
            row = finding.to_dict()
            row.update({"repo": entry.name, "commit": entry.commit,
                        "path": path if not row.get("path") else row["path"], "era": era})
            out["instances"].append(row)
    return out


def _count_missing_python(out: dict[str, Any], path: str, sha: str) -> None:
    """A missing ``.py``/``.ipynb`` blob still is a Python file of the pin (so the repository
    is not ``no_python``); its blob is named in the repository's status reason."""
    if is_python_path(path):
        out["notebooks" if path.lower().endswith(".ipynb") else "py_files"] += 1
        out["missing_python"].append(f"{path} (blob {sha[:12]})")


def _project_index(reader: BlobReader, tree: list[tuple[str, str, int | None, bytes, str]],
                   absent: set[str], max_bytes: int) -> tuple[ProjectIndex, dict[str, bytes]]:
    """The project index of one commit (its ``.py`` blobs, read once: the bytes are returned
    for the scan to reuse)."""
    texts: dict[str, str] = {}
    blobs: dict[str, bytes] = {}
    for mode, kind, size, raw_path, sha in tree:
        if kind != "blob" or mode in (MODE_SUBMODULE, MODE_SYMLINK) or sha in absent \
                or not raw_path.endswith(b".py") or (size is not None and size > max_bytes):
            continue
        data = reader.read(sha)
        if data is None:
            continue
        blobs[sha] = data
        try:
            texts[raw_path.decode("utf-8")] = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            continue
    return ProjectIndex(texts), blobs


def _notebook_view(project: ProjectIndex, path: str, data: bytes) -> ProjectView | None:
    from leakwatt.mining.notebook import NotebookError, notebook_source

    try:
        return project.view(path, notebook_source(data.decode("utf-8-sig")).source)
    except (NotebookError, UnicodeDecodeError):
        return None


def _clone_with_commit(entry: CorpusEntry, cache_dir: str | os.PathLike[str]) -> Path | None:
    """The cached clone of ``entry`` when it holds the pinned commit (used when the checkout
    failed, e.g. on a snapshot that lacks some blobs), else None."""
    try:
        dest = Path(cache_dir) / repo_key(validate_url(entry.url))
    except LeakwattError:
        return None
    if not dest.is_dir():
        return None
    return dest if has_commit(dest, entry.commit.strip().lower()) else None


def mine_repository(entry: CorpusEntry, cache_dir: str | os.PathLike[str],
                    params: MineParams, history_jobs: int = 1) -> dict[str, Any]:
    """Mine one repository; never raises. Returns ``{"repo": row, "instances": [...],
    "events": [...], "leak_commits": [...], "scan_errors": [...]}``.

    A clone whose checkout fails although it holds the pinned commit (a snapshot without some
    large blobs) is mined from its object store: the missing files become ``scan_errors``
    rows and the ``reason`` says so. ``history_jobs`` worker processes scan history blobs.
    """
    start = time.perf_counter()
    row: dict[str, Any] = {"url": entry.url, "commit": entry.commit, "name": entry.name,
                           "status": "ok", "reason": "", "files": 0, "kloc": 0.0, "py_files": 0,
                           "notebooks": 0, "parse_errors": 0, "seconds": 0.0,
                           "history_commits": 0}
    result: dict[str, Any] = {"repo": row, "instances": [], "events": [], "leak_commits": [],
                              "scan_errors": []}
    try:
        _mine_into(entry, cache_dir, params, history_jobs, row, result)
    except CloneError as exc:
        row["status"], row["reason"] = exc.status, exc.reason
    except Exception as exc:  # noqa: BLE001 - recorded as the repository's status
        row["status"] = "error"
        row["reason"] = f"{type(exc).__name__}: {exc}"[:500]
    row["seconds"] = round(time.perf_counter() - start, 3)
    return result


def _mine_into(entry: CorpusEntry, cache_dir: str | os.PathLike[str], params: MineParams,
               history_jobs: int, row: dict[str, Any], result: dict[str, Any]) -> None:
    """The body of :func:`mine_repository`: fills ``row`` and ``result``; raises on failure."""
    with contextlib.ExitStack() as stack:
        complete = True
        try:
            work = checkout(entry.url, entry.commit, cache_dir,
                            mirror_dir=params.mirror_dir or None,
                            timeout_s=params.clone_timeout_s)
        except CloneError as exc:
            fallback = _clone_with_commit(entry, cache_dir) if exc.status == "clone_failed" \
                else None
            if fallback is None:
                raise
            work, complete = fallback, False
        row["pin_date"] = pin_date(work, entry.commit)
        # One pool of sandboxed workers for the pin's files and the history's blobs.
        sandbox = stack.enter_context(blob_sandbox(params, workers=history_jobs))
        scanned = scan_checkout(work, entry, params, complete=complete, sandbox=sandbox)
        if not complete:
            row["reason"] = (f"checkout failed, mined from the object store; "
                             f"{scanned['missing']} file(s) missing from the snapshot "
                             "(see scan_errors.csv)")
        for key in ("files", "py_files", "notebooks", "parse_errors"):
            row[key] = scanned[key]
        row["kloc"] = round(scanned["lines"] / 1000, 3)
        result["instances"] = scanned["instances"]
        result["scan_errors"] = scanned["scan_errors"]
        if row["files"] == 0:
            row["status"], row["reason"] = "empty", "no files at the pinned commit"
        elif row["py_files"] + row["notebooks"] == 0:
            row["status"], row["reason"] = "no_python", "no .py or .ipynb files at the pinned commit"
        missing_py = scanned["missing_python"]
        if missing_py:
            named = (f"{len(missing_py)} Python file blob(s) missing from the snapshot: "
                     f"{', '.join(missing_py[:5])}{' ...' if len(missing_py) > 5 else ''}")
            if len(missing_py) == row["py_files"] + row["notebooks"]:
                row["status"], row["reason"] = "blob_missing", named  # nothing could be scanned
            else:
                row["reason"] = f"{row['reason']}; {named}" if row["reason"] else named
        if params.history and row["status"] == "ok":
            try:
                history = walk_history(work, entry.commit, repo=entry.name,
                                       rules=list(params.rules), max_commits=params.max_commits,
                                       max_bytes=params.max_file_kb * 1024,
                                       jobs=history_jobs, sandbox=sandbox,
                                       budget_s=params.file_budget_s or None)
            except Exception as exc:  # noqa: BLE001 - one repository must not stop the stage
                row["status"] = "history_failed"
                row["reason"] = f"history walk failed: {type(exc).__name__}: {exc}"[:500]
            else:
                row["history_commits"] = history.commits
                notes = [row["reason"]] if row["reason"] else []
                if history.missing_blobs:
                    notes.append(f"history: {history.missing_blobs} blob(s) missing from the "
                                 "snapshot (those file changes give no events)")
                if history.unreadable_commits:
                    notes.append(f"history: {history.unreadable_commits} commit(s) whose trees "
                                 "are missing from the snapshot (no events from those commits)")
                row["reason"] = "; ".join(notes)
                result["events"] = history.events
                result["leak_commits"] = history.leak_commits


def pin_date(work: Path, commit: str) -> str:
    """The pinned commit's committer date (ISO 8601), '' when git cannot tell."""
    res = run_git(["show", "-s", "--no-show-signature", "--format=%cI", commit.strip()], cwd=work,
                  timeout_s=60)
    return res.stdout.decode().strip() if res.returncode == 0 else ""


def _load_cached(path: Path, key: str, entry: CorpusEntry | None = None) -> dict[str, Any] | None:
    """A cached result, or None (a miss, mined again) when it is absent, unreadable, not
    sealed for ``key`` (:func:`scan_cache.unseal`) or not the shape of a result: a repos row
    of ``entry`` with every column, and a list of rows with every column for each table."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = scan_cache.unseal(json.load(fh), key)
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or set(data) != set(_EMPTY_RESULT):
        return None
    repo = data["repo"]
    if not _row(repo, ("url", "commit", "name", "status")) or repo["status"] not in CACHEABLE:
        return None
    if entry is not None and (repo["url"], repo["commit"], repo["name"]) != (
            entry.url, entry.commit, entry.name):
        return None
    for table, needed in _NEEDED.items():
        rows = data[table]
        if not isinstance(rows, list) or not all(_row(r, needed) for r in rows):
            return None
    return data


#: The fields of a cached table's rows that the tables are sorted and keyed by.
_NEEDED = {"instances": ("path", "rule"), "events": ("seq", "path", "event", "rule"),
           "leak_commits": (), "scan_errors": ("path",)}


def _row(row: object, needed: Sequence[str]) -> bool:
    """Whether ``row`` is a dict of plain JSON scalars holding each of ``needed``, none null."""
    return (isinstance(row, dict) and all(row.get(col) is not None for col in needed)
            and all(isinstance(k, str) and (v is None or isinstance(v, str | int | float | bool))
                    for k, v in row.items()))


_EMPTY_RESULT = {"repo": None, "instances": None, "events": None, "leak_commits": None,
                 "scan_errors": None}


def _crashed(entry: CorpusEntry, exc: BaseException) -> dict[str, Any]:
    row = {"url": entry.url, "commit": entry.commit, "name": entry.name, "status": "error",
           "reason": f"worker failed: {type(exc).__name__}: {exc}"[:500] if str(exc)
           else f"worker failed: {type(exc).__name__}", "files": 0,
           "kloc": 0.0, "py_files": 0, "notebooks": 0, "parse_errors": 0, "seconds": 0.0,
           "history_commits": 0}
    return {"repo": row, "instances": [], "events": [], "leak_commits": [], "scan_errors": []}


def mine_corpus(corpus: list[CorpusEntry], out_dir: str | os.PathLike[str],
                cache_dir: str | os.PathLike[str], params: MineParams,
                results_cache_dir: str | os.PathLike[str] | None = None,
                progress: bool = True, scheduler: str | None = None) -> dict[str, Any]:
    """Mine every corpus repository and write the five tables into ``out_dir``.

    ``cache_dir`` holds the clones; ``results_cache_dir`` (optional) the per-repository results.
    Repositories are mined in ``params.jobs`` local processes (0 = all cores), or, when
    ``scheduler`` is a Dask scheduler address (``tcp://host:8786``), as tasks on that
    ``dask.distributed`` cluster, whose workers must see ``cache_dir`` (and the mirrors) at the
    same paths. Results, progress bar and caching are the same either way.
    Returns a summary: counts, how many repositories were mined vs taken from the cache, and
    ``failed`` (url, name, status, reason of every repository that did not mine cleanly).
    """
    from tqdm import tqdm

    select_rules(params.rules)  # an unknown rule id in params is one line, before any cloning
    out = Path(out_dir)
    results: list[dict[str, Any] | None] = [None] * len(corpus)
    keys: list[str | None] = [None] * len(corpus)
    rcache = Path(results_cache_dir) if results_cache_dir else None
    todo: list[int] = []
    for i, entry in enumerate(corpus):
        if rcache is not None:
            keys[i] = cache_key(entry, params)
            cached = _load_cached(rcache / f"{keys[i]}.json", keys[i], entry)
            if cached is not None:
                results[i] = cached
                continue
        todo.append(i)
    jobs = params.jobs or os.cpu_count() or 1
    bar = tqdm(total=len(corpus), initial=len(corpus) - len(todo), desc="mine", unit="repo",
               file=sys.stderr, disable=not progress, dynamic_ncols=True)

    def done(i: int, res: dict[str, Any]) -> None:
        results[i] = res
        if rcache is not None and res["repo"]["status"] in CACHEABLE:
            atomic_write_json(rcache / f"{keys[i]}.json", scan_cache.seal(str(keys[i]), res))
        bar.set_postfix_str(f"{corpus[i].name}: {res['repo']['status']}", refresh=False)
        bar.update(1)

    try:
        if scheduler and todo:
            _mine_on_dask(scheduler, corpus, todo, cache_dir, params, done)
        elif jobs <= 1 or len(todo) <= 1:
            for i in todo:  # spare cores scan the history blobs of a lone repository
                done(i, mine_repository(corpus[i], cache_dir, params, history_jobs=jobs))
        else:
            _mine_in_processes(corpus, todo, cache_dir, params, jobs, done)
    finally:
        bar.close()
    final = [r for r in results if r is not None]
    write_tables(final, out)
    statuses = Counter(r["repo"]["status"] for r in final)
    return {
        "repositories": len(corpus), "mined": len(todo), "cached": len(corpus) - len(todo),
        "by_status": dict(statuses),
        "instances": sum(len(r["instances"]) for r in final),
        "events": sum(len(r["events"]) for r in final),
        "leak_commits": sum(len(r["leak_commits"]) for r in final),
        "scan_errors": sum(len(r["scan_errors"]) for r in final),
        "failed": [{k: r["repo"][k] for k in ("url", "name", "status", "reason")}
                   for r in final if r["repo"]["status"] not in ("ok", "no_python")],
    }


def _quiet_worker() -> None:
    """Initializer of the repository workers. Ctrl-C reaches every process of the terminal's
    group: the main process handles it (it stops the pool), so a worker ignores it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of repository workers that Ctrl-C stops at once: pending repositories are
    cancelled and running ones killed (``shutdown`` alone would wait for them; a worker's
    sandbox processes die with it, see :mod:`leakwatt.mining.sandbox`)."""
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_quiet_worker)
    try:
        yield pool
    except BaseException:
        # No public way to stop running tasks: the pool's processes, as the stdlib keeps them
        # (taken before ``shutdown``, which forgets them).
        procs = list((getattr(pool, "_processes", None) or {}).values())
        for proc in procs:
            with contextlib.suppress(Exception):
                proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _mine_in_processes(corpus: list[CorpusEntry], todo: list[int],
                       cache_dir: str | os.PathLike[str], params: MineParams, jobs: int,
                       done: Callable[[int, dict[str, Any]], None]) -> None:
    """Mine ``corpus[i]`` for ``i`` in ``todo`` in ``jobs`` worker processes.

    Files are scanned in sandboxes inside the workers, so a file cannot kill one. If a worker
    dies anyway (the kernel's OOM killer, a bug in a native library), the pool is broken and
    every repository still pending in it would fail with it: those are mined again, each in
    a pool of its own, and only a repository that kills its own worker again is an ``error``
    row. The results already in are kept whatever happens.
    """
    workers = min(jobs, len(todo))
    finished: set[int] = set()

    def take(i: int, res: dict[str, Any]) -> None:
        finished.add(i)
        done(i, res)

    try:
        with _process_pool(workers) as pool:
            futures = {pool.submit(mine_repository, corpus[i], cache_dir, params,
                                   max(1, jobs // workers)): i for i in todo}
            for future in as_completed(futures):
                i = futures[future]
                try:
                    res = future.result()
                except BrokenProcessPool:
                    continue  # mined again below, alone
                except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result
                    res = _crashed(corpus[i], exc)
                take(i, res)
    except BrokenProcessPool:
        pass
    for i in todo:
        if i in finished:
            continue
        try:
            with _process_pool(1) as alone:
                res = alone.submit(mine_repository, corpus[i], cache_dir, params,
                                   max(1, jobs)).result()
        except Exception as exc:  # noqa: BLE001 - this repository kills its worker
            res = _crashed(corpus[i], exc)
        take(i, res)


def _mine_on_dask(scheduler: str, corpus: list[CorpusEntry], todo: list[int],
                  cache_dir: str | os.PathLike[str], params: MineParams,
                  done: Callable[[int, dict[str, Any]], None]) -> None:
    """Mine ``corpus[i]`` for ``i`` in ``todo`` as tasks on the Dask cluster at ``scheduler``;
    ``done(i, result)`` is called here, in completion order. A task that fails (e.g. its
    worker died) becomes an ``error`` row, as with local processes."""
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise LeakwattError("mining on a Dask cluster needs dask.distributed: "
                            "pip install 'dask[distributed]'") from None
    try:
        client = Client(scheduler, timeout=f"{DASK_CONNECT_TIMEOUT_S}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise LeakwattError(f"cannot connect to the Dask scheduler at {scheduler!r}: "
                            f"{type(exc).__name__}: {exc}") from None
    try:
        index: dict[str, int] = {}
        futures = []
        for i in todo:
            key = f"mine-{i}-{cache_key(corpus[i], params)[:12]}"
            index[key] = i
            futures.append(client.submit(mine_repository, corpus[i], str(cache_dir), params, 1,
                                         pure=False, retries=0, key=key))
        pending = dask_completed(futures, loop=client.loop)
        del futures  # each result is dropped from the cluster once taken
        for future in pending:
            i = index[future.key]
            try:
                res = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker
                res = _crashed(corpus[i], exc)
            done(i, res)
            del future
    finally:
        client.close()


def write_tables(results: list[dict[str, Any]], out_dir: Path) -> None:
    """Write the five tables (in corpus order, rows sorted within a repository)."""
    import pandas as pd

    tables: dict[str, list[dict[str, Any]]] = {name: [] for name in OUTPUTS}
    for res in results:
        tables["repos.csv"].append(res["repo"])
        tables["instances.csv"].extend(sorted(
            res["instances"], key=lambda r: (r["path"], r.get("line") or 0, r.get("col") or 0,
                                             r["rule"])))
        tables["events.csv"].extend(sorted(
            res["events"], key=lambda r: (r["seq"], r["path"], r["event"] != "removed",
                                          r["rule"], r.get("line") or 0)))
        tables["leak_commits.csv"].extend(res["leak_commits"])
        tables["scan_errors.csv"].extend(sorted(res["scan_errors"], key=lambda r: r["path"]))
    for name, columns in OUTPUTS.items():
        frame = pd.DataFrame(tables[name], dtype=object)  # ints stay ints next to blanks
        if frame.empty:
            frame = pd.DataFrame(columns=columns)
        atomic_write_csv(out_dir / name, frame, columns=columns)


__all__ = ["INSTANCE_COLUMNS", "OUTPUTS", "REPO_COLUMNS", "SCAN_ERROR_COLUMNS", "cache_key",
           "mine_corpus", "mine_repository", "scan_checkout", "write_tables"]
