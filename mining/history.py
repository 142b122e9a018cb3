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
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mining.clone import run_git

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


class ScanCache:
    """Findings by (content hash, file kind): a file's content after one commit is its content
    before the next commit that touches it, so most history scans are cache hits."""

    def __init__(self, rules: Iterable[str] | None, max_bytes: int, size: int = 4096) -> None:
        self.rules = list(rules) if rules is not None else None
        self.max_bytes = max_bytes
        self.size = size
        self._cache: OrderedDict[tuple[str, str], list[Any]] = OrderedDict()
        self.scans = 0
        self.errors = 0

    def findings(self, data: bytes | None, path: str) -> list[Any]:
        if data is None or not is_python_path(path):
            return []
        key = (hashlib.sha1(data).hexdigest(), os.path.splitext(path)[1].lower())
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return [_retarget(f, path) for f in hit]
        from mining.scan import scan_bytes

        result = scan_bytes(data, path, rules=self.rules, max_bytes=self.max_bytes)
        self.scans += 1
        if result.error:
            self.errors += 1
        found = list(result.findings)
        self._cache[key] = found
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return found


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


def _python_commits(repo: Path, pin: str) -> set[str]:
    res = run_git(["log", "--full-history", "--format=%H", pin, "--", "*.py", "*.ipynb",
                   "*.PY", "*.IPYNB"], cwd=repo)
    if res.returncode != 0:
        raise RuntimeError(f"git log failed: {res.stderr.strip()}")
    return set(res.stdout.decode().split())


def _window(repo: Path, pin: str, max_commits: int) -> list[str] | None:
    if max_commits <= 0:
        return None
    res = run_git(["rev-list", "--topo-order", f"--max-count={max_commits}", pin], cwd=repo)
    if res.returncode != 0:
        raise RuntimeError(f"git rev-list failed: {res.stderr.strip()}")
    return res.stdout.decode().split()


def walk_history(repo_path: str | os.PathLike[str], pin: str, repo: str = "",
                 rules: Iterable[str] | None = None, max_commits: int = 0,
                 max_bytes: int = 1_048_576) -> HistoryResult:
    """Events and leak-related commits of ``repo_path`` up to ``pin`` (inclusive).

    ``max_commits`` > 0 keeps only the newest N commits (topological order); each kept commit is
    still compared with its own parent, so the window only limits how far back events go.
    ``repo`` fills the ``repo`` column of the rows.
    """
    from pydriller import Repository
    from pydriller.domain.commit import ModificationType

    path = Path(repo_path)
    window = _window(path, pin, max_commits)
    py_commits = _python_commits(path, pin)
    cache = ScanCache(rules, max_bytes)
    result = HistoryResult()
    origin: dict[str, str] = {}  # current path -> path where its history started (renames)
    walker = Repository(str(path), to_commit=pin, order="topo-order", only_commits=window)
    for seq, commit in enumerate(walker.traverse_commits()):
        result.commits += 1
        date = commit.committer_date.isoformat()
        message = commit.msg or ""
        terms = leak_terms(message)
        if terms:
            result.leak_commits.append({"repo": repo, "commit": commit.hash, "date": date,
                                        "message": first_line(message),
                                        "matched": ";".join(terms)})
        if commit.hash not in py_commits or len(commit.parents) > 1:
            continue
        result.python_commits += 1
        for mf in commit.modified_files:
            old_path, new_path = mf.old_path, mf.new_path
            if not (is_python_path(old_path) or is_python_path(new_path)):
                continue
            if old_path and new_path and old_path != new_path:
                origin[new_path] = origin.pop(old_path, old_path)
            before = cache.findings(mf.content_before, old_path) if old_path else []
            after = cache.findings(mf.content, new_path) if new_path else []
            before_keys = Counter(finding_key(f) for f in before)
            after_keys = Counter(finding_key(f) for f in after)
            deleted = mf.change_type == ModificationType.DELETE or not is_python_path(new_path)
            base = {"repo": repo, "commit": commit.hash, "date": date,
                    "message": first_line(message), "seq": seq}
            for event, findings, keys, other, where in (
                    ("removed", before, before_keys, after_keys, old_path),
                    ("introduced", after, after_keys, before_keys, new_path)):
                surplus = keys - other
                for finding in findings:
                    key = finding_key(finding)
                    if surplus[key] <= 0:
                        continue
                    surplus[key] -= 1
                    start = origin.get(where, where)
                    instance = hashlib.sha1(
                        "\x1f".join((repo, start, *key)).encode("utf-8", "surrogateescape")
                    ).hexdigest()[:12]
                    result.events.append({
                        **base, "rule": key[0], "path": where, "event": event,
                        "function": key[1], "snippet": key[2], "line": finding.line,
                        "removal": ("deleted_file" if deleted else "code_changed")
                        if event == "removed" else "",
                        "instance": instance})
            if mf.change_type == ModificationType.DELETE and old_path:
                origin.pop(old_path, None)
    result.scan_errors = cache.errors
    return result


__all__ = ["EVENT_COLUMNS", "HistoryResult", "LEAK_COMMIT_COLUMNS", "LEAK_MESSAGE_RE",
           "first_line", "is_python_path", "leak_terms", "normalise_snippet", "walk_history"]
