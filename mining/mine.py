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

import hashlib
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from mining.clone import CloneError, checkout, run_git
from mining.corpus import CorpusEntry
from mining.history import EVENT_COLUMNS, LEAK_COMMIT_COLUMNS, is_python_path, walk_history
from pipeline.common import atomic_write_csv, atomic_write_json
from pipeline.params import MineParams

MINE_FORMAT = 1  # bump when the per-repository result layout or its meaning changes

REPO_COLUMNS = ["url", "commit", "name", "status", "reason", "files", "kloc", "py_files",
                "notebooks", "parse_errors", "seconds", "history_commits"]
INSTANCE_COLUMNS = ["repo", "commit", "path", "line", "rule", "variant", "confidence",
                    "function", "snippet", "col", "message", "loop_kind", "model_api",
                    "training_api", "cell"]
SCAN_ERROR_COLUMNS = ["repo", "commit", "path", "error"]
OUTPUTS = {"repos.csv": REPO_COLUMNS, "instances.csv": INSTANCE_COLUMNS,
           "events.csv": EVENT_COLUMNS, "leak_commits.csv": LEAK_COMMIT_COLUMNS,
           "scan_errors.csv": SCAN_ERROR_COLUMNS}
CACHEABLE = ("ok", "empty", "no_python")

_MODE_SYMLINK, _MODE_SUBMODULE = "120000", "160000"


def detector_version() -> str:
    from mining.scan import DETECTOR_VERSION

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


def list_tree(repo: Path, commit: str) -> list[tuple[str, str, int | None, bytes]]:
    """(mode, type, size, path) of every entry of ``commit``'s tree, recursively."""
    res = run_git(["ls-tree", "-r", "-l", "-z", "--full-tree", commit], cwd=repo)
    if res.returncode != 0:
        raise RuntimeError(f"git ls-tree failed: {res.stderr.strip()}")
    entries = []
    for record in res.stdout.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, kind, _sha, size = meta.decode().split(maxsplit=3)
        entries.append((mode, kind, int(size) if size.strip().isdigit() else None, path))
    return entries


def scan_checkout(work: Path, entry: CorpusEntry, params: MineParams) -> dict[str, Any]:
    """Scan all .py/.ipynb files of the checked-out pin; counts, instances and error rows."""
    from mining.scan import scan_bytes

    max_bytes = params.max_file_kb * 1024
    out: dict[str, Any] = {"files": 0, "py_files": 0, "notebooks": 0, "parse_errors": 0,
                           "lines": 0, "instances": [], "scan_errors": []}

    def error(path: str, message: str) -> None:
        out["scan_errors"].append({"repo": entry.name, "commit": entry.commit, "path": path,
                                   "error": message})

    for mode, kind, size, raw_path in list_tree(work, entry.commit):
        path, utf8 = _display(raw_path)
        if mode == _MODE_SUBMODULE:
            error(path, "skipped: submodule (not scanned)")
            continue
        if kind != "blob":
            continue
        out["files"] += 1
        if not is_python_path(path):
            continue
        if mode == _MODE_SYMLINK:
            error(path, "skipped: symbolic link (not followed)")
            continue
        out["notebooks" if path.lower().endswith(".ipynb") else "py_files"] += 1
        if not utf8:
            error(path, "warning: path is not valid UTF-8 (shown with escapes)")
        if size is not None and size > max_bytes:
            error(path, f"skipped: {size} bytes is over max_file_kb ({params.max_file_kb} KiB)")
            continue
        try:
            data = (work / os.fsdecode(raw_path)).read_bytes()
        except OSError as exc:
            error(path, f"unreadable: {exc.strerror or exc}")
            continue
        result = scan_bytes(data, path, rules=list(params.rules), max_bytes=max_bytes)
        out["lines"] += int(result.lines or 0)
        if result.error:
            out["parse_errors"] += 1
            error(path, str(result.error))
        elif result.skipped:
            error(path, f"skipped: {result.skipped}")
        for finding in result.findings:
            row = finding.to_dict()
            row.update({"repo": entry.name, "commit": entry.commit,
                        "path": path if not row.get("path") else row["path"]})
            out["instances"].append(row)
    return out


def mine_repository(entry: CorpusEntry, cache_dir: str | os.PathLike[str],
                    params: MineParams) -> dict[str, Any]:
    """Mine one repository; never raises. Returns ``{"repo": row, "instances": [...],
    "events": [...], "leak_commits": [...], "scan_errors": [...]}``."""
    start = time.perf_counter()
    row: dict[str, Any] = {"url": entry.url, "commit": entry.commit, "name": entry.name,
                           "status": "ok", "reason": "", "files": 0, "kloc": 0.0, "py_files": 0,
                           "notebooks": 0, "parse_errors": 0, "seconds": 0.0,
                           "history_commits": 0}
    result: dict[str, Any] = {"repo": row, "instances": [], "events": [], "leak_commits": [],
                              "scan_errors": []}
    try:
        work = checkout(entry.url, entry.commit, cache_dir,
                        mirror_dir=params.mirror_dir or None, timeout_s=params.clone_timeout_s)
        scanned = scan_checkout(work, entry, params)
        for key in ("files", "py_files", "notebooks", "parse_errors"):
            row[key] = scanned[key]
        row["kloc"] = round(scanned["lines"] / 1000, 3)
        result["instances"] = scanned["instances"]
        result["scan_errors"] = scanned["scan_errors"]
        if row["files"] == 0:
            row["status"], row["reason"] = "empty", "no files at the pinned commit"
        elif row["py_files"] + row["notebooks"] == 0:
            row["status"], row["reason"] = "no_python", "no .py or .ipynb files at the pinned commit"
        if params.history and row["status"] == "ok":
            try:
                history = walk_history(work, entry.commit, repo=entry.name,
                                       rules=list(params.rules), max_commits=params.max_commits,
                                       max_bytes=params.max_file_kb * 1024)
            except Exception as exc:  # noqa: BLE001 - one repository must not stop the stage
                row["status"] = "history_failed"
                row["reason"] = f"history walk failed: {type(exc).__name__}: {exc}"[:500]
            else:
                row["history_commits"] = history.commits
                result["events"] = history.events
                result["leak_commits"] = history.leak_commits
    except CloneError as exc:
        row["status"], row["reason"] = exc.status, exc.reason
    except Exception as exc:  # noqa: BLE001 - recorded as the repository's status
        row["status"] = "error"
        row["reason"] = f"{type(exc).__name__}: {exc}"[:500]
    row["seconds"] = round(time.perf_counter() - start, 3)
    return result


def _load_cached(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or set(data) != set(_EMPTY_RESULT):
        return None
    return data


_EMPTY_RESULT = {"repo": None, "instances": None, "events": None, "leak_commits": None,
                 "scan_errors": None}


def _crashed(entry: CorpusEntry, exc: BaseException) -> dict[str, Any]:
    row = {"url": entry.url, "commit": entry.commit, "name": entry.name, "status": "error",
           "reason": f"worker failed: {type(exc).__name__}: {exc}"[:500], "files": 0,
           "kloc": 0.0, "py_files": 0, "notebooks": 0, "parse_errors": 0, "seconds": 0.0,
           "history_commits": 0}
    return {"repo": row, "instances": [], "events": [], "leak_commits": [], "scan_errors": []}


def mine_corpus(corpus: list[CorpusEntry], out_dir: str | os.PathLike[str],
                cache_dir: str | os.PathLike[str], params: MineParams,
                results_cache_dir: str | os.PathLike[str] | None = None,
                progress: bool = True) -> dict[str, Any]:
    """Mine every corpus repository and write the five tables into ``out_dir``.

    ``cache_dir`` holds the clones; ``results_cache_dir`` (optional) the per-repository results.
    Returns a summary: counts, how many repositories were mined vs taken from the cache, and
    ``failed`` (url, name, status, reason of every repository that did not mine cleanly).
    """
    from tqdm import tqdm

    out = Path(out_dir)
    results: list[dict[str, Any] | None] = [None] * len(corpus)
    keys: list[str | None] = [None] * len(corpus)
    rcache = Path(results_cache_dir) if results_cache_dir else None
    todo: list[int] = []
    for i, entry in enumerate(corpus):
        if rcache is not None:
            keys[i] = cache_key(entry, params)
            cached = _load_cached(rcache / f"{keys[i]}.json")
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
            atomic_write_json(rcache / f"{keys[i]}.json", res)
        bar.set_postfix_str(f"{corpus[i].name}: {res['repo']['status']}", refresh=False)
        bar.update(1)

    try:
        if jobs <= 1 or len(todo) <= 1:
            for i in todo:
                done(i, mine_repository(corpus[i], cache_dir, params))
        else:
            with ProcessPoolExecutor(max_workers=min(jobs, len(todo))) as pool:
                futures = {pool.submit(mine_repository, corpus[i], cache_dir, params): i
                           for i in todo}
                for future in as_completed(futures):
                    i = futures[future]
                    try:
                        res = future.result()
                    except Exception as exc:  # noqa: BLE001 - e.g. a worker killed for memory
                        res = _crashed(corpus[i], exc)
                    done(i, res)
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
           "list_tree", "mine_corpus", "mine_repository", "scan_checkout", "write_tables"]
