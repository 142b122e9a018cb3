"""Smell histories: when each finding appeared and disappeared, up to the pinned commit.

`walk_history` walks a repository with pydriller from its first commit to the pin in
topological order. For every non-merge commit that touches ``.py``/``.ipynb`` files it scans
only the modified files, before and after the commit, and compares the findings as multisets of
``(rule, enclosing function, normalised snippet)``: line numbers are ignored, so code that moves
within a file (or a file that git sees as renamed) produces no event. A finding present after
but not before is ``introduced``; one present before but not after is ``removed``, with
``removal = "deleted_file"`` when the commit deleted the file and ``"code_changed"`` otherwise.

Comparing each commit with its own parent (rather than keeping one running state) keeps the
events right on branchy histories: merges add no events, because every change they bring in
was already seen on the branch that made it.

Commits whose messages speak of leaks (memory leak, OOM, ``clear_session``, ``gc.collect`` ...)
are collected as ``leak_commits``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leakwatt.mining.clone import run_git

PY_SUFFIXES = (".py", ".ipynb")

LEAK_MESSAGE_RE = re.compile(
    r"memory[\s_-]*leak\w*|\bleak(?:s|ed|ing|age)?\b|\bOOMs?\b|out[\s_-]+of[\s_-]+memory"
    r"|clear_session|gc\.collect|\bdel\s+(?:the\s+)?model|reset_default_graph"
    r"|resource[\s_-]*exhausted\w*|memory[\s_-]+(?:usage|consumption|growth|footprint|issue"
    r"|problem|error|blow[\s-]*up)s?|(?:free|release|releasing|freeing)\s+(?:the\s+)?(?:gpu\s+)?"
    r"memory|gpu\s+memory",
    re.IGNORECASE)

EVENT_COLUMNS = ["repo", "rule", "path", "event", "commit", "date", "message", "function",
                 "snippet", "removal", "line", "seq", "instance"]
LEAK_COMMIT_COLUMNS = ["repo", "commit", "date", "message", "matched"]


def is_python_path(path: str | None) -> bool:
    return bool(path) and path.lower().endswith(PY_SUFFIXES)  # type: ignore[union-attr]


def normalise_snippet(snippet: str | None) -> str:
    """Whitespace-insensitive form of a statement, for matching findings across commits."""
    return " ".join((snippet or "").split())


def leak_terms(message: str) -> list[str]:
    """The distinct leak-related phrases in a commit message, lower-cased, in order."""
    seen: list[str] = []
    for match in LEAK_MESSAGE_RE.finditer(message or ""):
        term = " ".join(match.group(0).lower().split())
        if term not in seen:
            seen.append(term)
    return seen


def first_line(message: str, limit: int = 200) -> str:
    line = (message or "").strip().splitlines()[0] if (message or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


class BlobReader:
    """Contents of git objects by sha, through one long-lived ``git cat-file --batch``.

    ``read`` returns None for an object that is not in the repository (an incomplete snapshot).
    """

    def __init__(self, repo: str | os.PathLike[str]) -> None:
        import subprocess

        from leakwatt.mining.clone import _SAFE_CONFIG, git_env

        self._proc = subprocess.Popen(
            ["git", *_SAFE_CONFIG, "cat-file", "--batch"], cwd=repo, env=git_env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def read(self, sha: str) -> bytes | None:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(sha.encode() + b"\n")
        self._proc.stdin.flush()
        header = self._proc.stdout.readline()
        parts = header.split()
        if len(parts) != 3 or parts[1] == b"missing":
            if not header:
                raise RuntimeError("git cat-file --batch ended unexpectedly")
            return None
        data = self._proc.stdout.read(int(parts[2]))
        self._proc.stdout.read(1)  # the newline after the contents
        return data

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Change:
    """One ``.py``/``.ipynb`` file changed by a commit (``git diff-tree --raw -M``)."""

    status: str  # A(dded), D(eleted), M(odified), R(enamed), T(ype changed)
    old_path: str | None
    new_path: str | None
    old_blob: str | None
    new_blob: str | None


_NULL_SHA = "0" * 40
_PATHSPEC = [":(icase)*.py", ":(icase)*.ipynb"]
_SKIP_MODES = ("160000",)  # submodules: their "blob" is a commit of another repository


def _decode_path(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def python_changes(repo: str | os.PathLike[str],
                   commits: list[tuple[str, str | None]]) -> dict[str, list[Change]]:
    """The Python files each ``(commit, parent)`` changes, in one ``git diff-tree --stdin``.

    Only ``.py``/``.ipynb`` paths are diffed (rename detection runs among them), so no other
    blob is ever read: a snapshot that lacks a large data file still has a history.
    """
    import subprocess

    from leakwatt.mining.clone import _SAFE_CONFIG, git_env

    if not commits:
        return {}
    lines = "".join(f"{c} {p}\n" if p else f"{c}\n" for c, p in commits).encode()
    proc = subprocess.run(
        ["git", *_SAFE_CONFIG, "diff-tree", "--stdin", "-r", "-M", "--root", "--no-abbrev",
         "-z", "--raw", "--", *_PATHSPEC],
        cwd=repo, env=git_env(), input=lines, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git diff-tree failed: {proc.stderr.decode('utf-8', 'replace')}")
    out: dict[str, list[Change]] = {}
    tokens = proc.stdout.split(b"\0")
    current: list[Change] | None = None
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token:
            continue
        if not token.startswith(b":"):
            current = out.setdefault(token.decode().strip(), [])
            continue
        old_mode, new_mode, old_sha, new_sha, status = token[1:].decode().split()
        kind = status[0]
        paths = [_decode_path(tokens[i])]
        i += 1
        if kind in ("R", "C"):
            paths.append(_decode_path(tokens[i]))
            i += 1
        if current is None:
            raise RuntimeError("git diff-tree: a change without its commit")
        old_path = paths[0] if kind != "A" else None
        new_path = paths[-1] if kind != "D" else None
        if old_mode in _SKIP_MODES:
            old_path, old_sha = None, _NULL_SHA
        if new_mode in _SKIP_MODES:
            new_path, new_sha = None, _NULL_SHA
        if old_path is None and new_path is None:
            continue
        current.append(Change(kind, old_path, new_path,
                              old_sha if old_sha != _NULL_SHA else None,
                              new_sha if new_sha != _NULL_SHA else None))
    return out


def _scan_one(task: tuple[bytes, str, list[str] | None, int]) -> tuple[list[Any], bool]:
    from leakwatt.mining.scan import scan_bytes

    data, path, rules, max_bytes = task
    result = scan_bytes(data, path, rules=rules, max_bytes=max_bytes)
    return list(result.findings), bool(result.error)


class BlobScanner:
    """Findings of git blobs by (blob sha, file kind), each blob scanned once.

    ``prefetch`` scans a batch of blobs up front, in ``jobs`` worker processes when more than
    one is allowed; ``findings`` answers from what was scanned (scanning on a miss).
    """

    def __init__(self, reader: BlobReader, rules: Iterable[str] | None, max_bytes: int,
                 jobs: int = 1) -> None:
        self.reader = reader
        self.rules = list(rules) if rules is not None else None
        self.max_bytes = max_bytes
        self.jobs = max(1, jobs)
        self._found: dict[tuple[str, str], list[Any] | None] = {}
        self.scans = 0
        self.errors = 0
        self.missing = 0

    @staticmethod
    def key(blob: str, path: str) -> tuple[str, str]:
        return blob, os.path.splitext(path)[1].lower()

    def _task(self, blob: str, path: str) -> tuple[bytes, str, list[str] | None, int] | None:
        data = self.reader.read(blob)
        if data is None:
            self._found[self.key(blob, path)] = None
            self.missing += 1
            return None
        return data, path, self.rules, self.max_bytes

    def _store(self, key: tuple[str, str], found: list[Any], error: bool) -> None:
        self._found[key] = found
        self.scans += 1
        self.errors += int(error)

    def prefetch(self, items: Iterable[tuple[str, str]]) -> None:
        """Scan every not yet scanned ``(blob, path)`` of ``items``."""
        todo: dict[tuple[str, str], str] = {}
        for blob, path in items:
            key = self.key(blob, path)
            if key not in self._found and key not in todo:
                todo[key] = path
        if self.jobs <= 1 or len(todo) < 4 * self.jobs:
            for (blob, _), path in todo.items():
                self.findings(blob, path)
            return
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        pending: dict[Any, tuple[str, str]] = {}
        queue = iter(todo.items())
        with ProcessPoolExecutor(max_workers=self.jobs) as pool:
            while True:
                while len(pending) < 4 * self.jobs:
                    nxt = next(queue, None)
                    if nxt is None:
                        break
                    (blob, _), path = nxt
                    task = self._task(blob, path)
                    if task is not None:
                        pending[pool.submit(_scan_one, task)] = nxt[0]
                if not pending:
                    break
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    self._store(pending.pop(future), *future.result())

    def findings(self, blob: str | None, path: str | None) -> list[Any] | None:
        """Findings of ``blob`` as file ``path``; [] for no blob or a non-Python path, None
        when the blob is missing from the repository."""
        if blob is None or not path or not is_python_path(path):
            return []
        key = self.key(blob, path)
        if key not in self._found:
            task = self._task(blob, path)
            if task is not None:
                self._store(key, *_scan_one(task))
        found = self._found[key]
        if found is None:
            return None
        return [_retarget(f, path) for f in found]


def _retarget(finding: Any, path: str) -> Any:
    """A cached finding reported for another path with the same content."""
    if getattr(finding, "path", path) == path:
        return finding
    try:
        import dataclasses
        return dataclasses.replace(finding, path=path)
    except TypeError:
        return finding


def finding_key(finding: Any) -> tuple[str, str, str]:
    return (finding.rule, finding.function or "", normalise_snippet(finding.snippet))


@dataclass
class HistoryResult:
    commits: int = 0
    python_commits: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    leak_commits: list[dict[str, Any]] = field(default_factory=list)
    scan_errors: int = 0
    missing_blobs: int = 0


def _window(repo: Path, pin: str, max_commits: int) -> list[str] | None:
    if max_commits <= 0:
        return None
    res = run_git(["rev-list", "--topo-order", f"--max-count={max_commits}", pin], cwd=repo)
    if res.returncode != 0:
        raise RuntimeError(f"git rev-list failed: {res.stderr.strip()}")
    return res.stdout.decode().split()


#: Commits whose blobs are scanned together (bounds the memory of a parallel batch).
CHUNK_COMMITS = 256


def walk_history(repo_path: str | os.PathLike[str], pin: str, repo: str = "",
                 rules: Iterable[str] | None = None, max_commits: int = 0,
                 max_bytes: int = 1_048_576, jobs: int = 1) -> HistoryResult:
    """Events and leak-related commits of ``repo_path`` up to ``pin`` (inclusive).

    ``max_commits`` > 0 keeps only the newest N commits (topological order); each kept commit is
    still compared with its own parent, so the window only limits how far back events go.
    ``repo`` fills the ``repo`` column of the rows. ``jobs`` > 1 scans the blobs of each batch
    of commits in that many worker processes (the events do not depend on it).
    """
    from pydriller import Repository

    path = Path(repo_path)
    window = _window(path, pin, max_commits)
    result = HistoryResult()
    walker = Repository(str(path), to_commit=pin, order="topo-order", only_commits=window)
    commits = [(c.hash, tuple(c.parents), c.committer_date.isoformat(), c.msg or "")
               for c in walker.traverse_commits()]
    result.commits = len(commits)
    singles = [(h, parents[0] if parents else None) for h, parents, _, _ in commits
               if len(parents) <= 1]
    changes = python_changes(path, singles)
    origin: dict[str, str] = {}  # current path -> path where its history started (renames)
    with BlobReader(path) as reader:
        scanner = BlobScanner(reader, rules, max_bytes, jobs=jobs)
        for chunk_start in range(0, len(commits), CHUNK_COMMITS):
            chunk = commits[chunk_start:chunk_start + CHUNK_COMMITS]
            scanner.prefetch((blob, p) for h, _, _, _ in chunk for ch in changes.get(h, ())
                             for blob, p in ((ch.old_blob, ch.old_path),
                                             (ch.new_blob, ch.new_path))
                             if blob and p and is_python_path(p))
            for offset, (sha, parents, date, message) in enumerate(chunk):
                _commit_events(result, scanner, origin, repo, chunk_start + offset, sha,
                               parents, date, message, changes.get(sha))
    result.scan_errors = scanner.errors
    result.missing_blobs = scanner.missing
    return result


def _commit_events(result: HistoryResult, scanner: BlobScanner, origin: dict[str, str],
                   repo: str, seq: int, sha: str, parents: tuple[str, ...], date: str,
                   message: str, changes: list[Change] | None) -> None:
    terms = leak_terms(message)
    if terms:
        result.leak_commits.append({"repo": repo, "commit": sha, "date": date,
                                    "message": first_line(message), "matched": ";".join(terms)})
    if not changes or len(parents) > 1:
        return
    result.python_commits += 1
    for ch in changes:
        old_path, new_path = ch.old_path, ch.new_path
        if old_path and new_path and old_path != new_path:
            origin[new_path] = origin.pop(old_path, old_path)
        before = scanner.findings(ch.old_blob, old_path) if old_path else []
        after = scanner.findings(ch.new_blob, new_path) if new_path else []
        if before is None or after is None:  # a blob the snapshot lacks: no events guessed
            continue
        before_keys = Counter(finding_key(f) for f in before)
        after_keys = Counter(finding_key(f) for f in after)
        deleted = ch.status == "D" or not is_python_path(new_path)
        base = {"repo": repo, "commit": sha, "date": date, "message": first_line(message),
                "seq": seq}
        for event, findings, keys, other, where in (
                ("removed", before, before_keys, after_keys, old_path),
                ("introduced", after, after_keys, before_keys, new_path)):
            surplus = keys - other
            for finding in findings:
                key = finding_key(finding)
                if surplus[key] <= 0:
                    continue
                surplus[key] -= 1
                start = origin.get(where, where)  # type: ignore[arg-type]
                instance = hashlib.sha1(
                    "\x1f".join((repo, str(start), *key)).encode("utf-8", "surrogateescape")
                ).hexdigest()[:12]
                result.events.append({
                    **base, "rule": key[0], "path": where, "event": event,
                    "function": key[1], "snippet": key[2], "line": finding.line,
                    "removal": ("deleted_file" if deleted else "code_changed")
                    if event == "removed" else "",
                    "instance": instance})
        if ch.status == "D" and old_path:
            origin.pop(old_path, None)


__all__ = ["EVENT_COLUMNS", "HistoryResult", "LEAK_COMMIT_COLUMNS", "LEAK_MESSAGE_RE",
           "first_line", "is_python_path", "leak_terms", "normalise_snippet", "walk_history"]
