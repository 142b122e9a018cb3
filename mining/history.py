"""Smell histories: when each finding appeared and disappeared, up to the pinned commit.

`walk_history` walks a repository from its first commit to the pin in topological order,
through git's plumbing (:mod:`leakwatt.mining.git`: one ``git log``, one ``diff-tree --stdin``,
one ``cat-file --batch``). For every non-merge commit that touches ``.py``/``.ipynb`` files it scans
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

from leakwatt.contracts import EVENTS, LEAK_COMMITS
from leakwatt.mining.git import BlobReader, Change, changed_files, list_commits

PY_SUFFIXES = (".py", ".ipynb")

LEAK_MESSAGE_RE = re.compile(
    r"memory[\s_-]*leak\w*|\bleak(?:s|ed|ing|age)?\b|\bOOMs?\b|out[\s_-]+of[\s_-]+memory"
    r"|clear_session|gc\.collect|\bdel\s+(?:the\s+)?model|reset_default_graph"
    r"|resource[\s_-]*exhausted\w*|memory[\s_-]+(?:usage|consumption|growth|footprint|issue"
    r"|problem|error|blow[\s-]*up)s?|(?:free|release|releasing|freeing)\s+(?:the\s+)?(?:gpu\s+)?"
    r"memory|gpu\s+memory",
    re.IGNORECASE)

EVENT_COLUMNS = list(EVENTS.columns)
LEAK_COMMIT_COLUMNS = list(LEAK_COMMITS.columns)


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


#: The paths whose changes the walk diffs (any letter case of the extensions).
PYTHON_PATHSPEC = [":(icase)*.py", ":(icase)*.ipynb"]


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
    path = Path(repo_path)
    result = HistoryResult()
    commits = [(c.sha, c.parents, c.date, c.message)
               for c in list_commits(path, pin, max_commits)]
    result.commits = len(commits)
    singles = [(h, parents[0] if parents else None) for h, parents, _, _ in commits
               if len(parents) <= 1]
    changes = changed_files(path, singles, PYTHON_PATHSPEC)
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
           "PYTHON_PATHSPEC",
           "first_line", "is_python_path", "leak_terms", "normalise_snippet", "walk_history"]
