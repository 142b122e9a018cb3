"""Smell histories: when each finding appeared and disappeared, up to the pinned commit.

`walk_history` walks a repository from its first commit to the pin in topological order,
through git's plumbing (:mod:`leakwatt.mining.git`: one ``git log``, one ``diff-tree --stdin``,
one ``cat-file --batch``). For every non-merge commit that touches ``.py``/``.ipynb`` files it scans
only the modified files, before and after the commit, and compares the findings as multisets of
``(rule, enclosing function, normalised snippet)``: line numbers are ignored, so code that moves
within a file (or a file that git sees as renamed) produces no event. A finding present after
but not before is ``introduced``; one present before but not after is ``removed``, with
``removal = "deleted_file"`` when the commit deleted the file and ``"code_changed"`` otherwise.

Files are scanned with the project facts they receive (:mod:`leakwatt.mining.rules.project`),
as at the pin: each commit's project index is its parent's, updated with the ``.py`` files the
commit changed (:meth:`ProjectIndex.with_changes`). The findings of a file depend on the index
facts it resolves through, so a commit that changes only ``models.py`` (``create_model()``
stops building a Keras model, or starts calling ``clear_session()``) also compares, before and
after, every file whose view of the project it changed (``train.py``, whose blob did not
change); those events name the changed modules in ``via``. Scans are cached by (blob, file
kind, fingerprint of the project facts), not by blob alone.

Comparing each commit with its own parent (rather than keeping one running state) keeps the
events right on branchy histories: merges add no events, because every change they bring in
was already seen on the branch that made it (a merge still updates the index its children
start from).

Commits whose messages speak of leaks (memory leak, OOM, ``clear_session``, ``gc.collect`` ...)
are collected as ``leak_commits``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leakwatt.contracts import EVENTS, LEAK_COMMITS
from leakwatt.mining.git import (
    MODE_SUBMODULE,
    BlobReader,
    Change,
    CommitInfo,
    changed_files,
    list_commits,
    list_tree,
)
from leakwatt.mining.rules.project import ProjectIndex, ProjectView
from leakwatt.mining.sandbox import Sandbox

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


#: One blob's scan in a sandbox worker: (bytes, path, rules, max bytes, project view, budget).
ScanTask = tuple[bytes, str, list[str] | None, int, ProjectView | None, float | None]


def _scan_one(task: ScanTask) -> tuple[list[Any], bool]:
    from leakwatt.mining.scan import scan_bytes

    data, path, rules, max_bytes, view, budget_s = task
    result = scan_bytes(data, path, rules=rules, max_bytes=max_bytes, project=view,
                        budget_s=budget_s)
    return list(result.findings), bool(result.error)


def _scan_failed(task: ScanTask, reason: str) -> tuple[list[Any], bool]:
    """A blob whose scan crashed or overran its worker: no findings, one error."""
    return [], True


def fingerprint(view: ProjectView | None) -> str:
    """The key part for the project facts a scan received ("" for none)."""
    return view.fingerprint if view is not None else ""


#: ``(blob, path, project view)``: one scan the walk needs.
ScanItem = tuple[str, str, ProjectView | None]


class BlobScanner:
    """Findings of git blobs by (blob sha, file kind, project facts), each scanned once.

    A file's findings depend on its bytes and on the project facts it resolves calls through
    (the fingerprint of its :class:`ProjectView`), so the same blob is scanned again when an
    imported module's facts change, and never otherwise. ``prefetch`` scans a batch up front;
    ``findings`` answers from what was scanned (scanning on a miss). Every scan runs in
    ``sandbox`` (:mod:`leakwatt.mining.sandbox`): a blob that crashes the parser or overruns
    ``budget_s`` counts as a scan error and gives no findings.
    """

    def __init__(self, reader: BlobReader, rules: Iterable[str] | None, max_bytes: int,
                 jobs: int = 1, sandbox: Sandbox[Any, Any] | None = None,
                 budget_s: float | None = None) -> None:
        self.reader = reader
        self.rules = list(rules) if rules is not None else None
        self.max_bytes = max_bytes
        self.jobs = max(1, jobs)
        self.budget_s = budget_s or None
        self._own = sandbox is None
        self.sandbox: Sandbox[Any, Any] = sandbox if sandbox is not None else Sandbox(
            _scan_one, _scan_failed, workers=self.jobs, budget_s=self.budget_s)
        self._found: dict[tuple[str, str, str], list[Any] | None] = {}
        self.scans = 0
        self.errors = 0
        self.missing = 0

    def close(self) -> None:
        """End the sandbox's workers when this scanner started them."""
        if self._own:
            self.sandbox.close()

    @staticmethod
    def key(blob: str, path: str, view: ProjectView | None = None) -> tuple[str, str, str]:
        return blob, os.path.splitext(path)[1].lower(), fingerprint(view)

    def _task(self, blob: str, path: str, view: ProjectView | None) -> ScanTask | None:
        data = self.reader.read(blob)
        if data is None:
            self._found[self.key(blob, path, view)] = None
            self.missing += 1
            return None
        return data, path, self.rules, self.max_bytes, view, self.budget_s

    def _store(self, key: tuple[str, str, str], found: list[Any], error: bool) -> None:
        self._found[key] = found
        self.scans += 1
        self.errors += int(error)

    def prefetch(self, items: Iterable[ScanItem]) -> None:
        """Scan every not yet scanned ``(blob, path, view)`` of ``items``."""
        todo: dict[tuple[str, str, str], tuple[str, ProjectView | None]] = {}
        for blob, path, view in items:
            key = self.key(blob, path, view)
            if key not in self._found and key not in todo:
                todo[key] = (path, view)
        keys: list[tuple[str, str, str]] = []

        def tasks() -> Iterable[ScanTask]:  # blobs are read as the workers need them
            for key, (path, view) in todo.items():
                task = self._task(key[0], path, view)
                if task is not None:
                    keys.append(key)
                    yield task

        results = self.sandbox.map(tasks(), _scan_one, _scan_failed)
        for key, (found, error) in zip(keys, results, strict=True):
            self._store(key, found, error)

    def findings(self, blob: str | None, path: str | None,
                 view: ProjectView | None = None) -> list[Any] | None:
        """Findings of ``blob`` as file ``path`` with the project facts ``view``; [] for no
        blob or a non-Python path, None when the blob is missing from the repository."""
        if blob is None or not path or not is_python_path(path):
            return []
        key = self.key(blob, path, view)
        if key not in self._found:
            task = self._task(blob, path, view)
            if task is not None:
                self._store(key, *self.sandbox.map([task], _scan_one, _scan_failed)[0])
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
    #: commits whose trees are missing from the snapshot (compared with nothing: no events)
    unreadable_commits: int = 0
    #: file comparisons made because an imported module changed (the file's blob did not)
    dependent_checks: int = 0


#: Commits whose blobs are scanned together (bounds the memory of a parallel batch).
CHUNK_COMMITS = 256


@dataclass(frozen=True)
class Comparison:
    """One file of a commit, before and after, with the project facts of each side.

    ``via``: the changed project modules that made a file whose blob did not change worth
    comparing (``;``-separated); empty when the commit changed the file itself."""

    change: Change
    before: ProjectView | None = None
    after: ProjectView | None = None
    via: str = ""

    def scans(self) -> Iterable[ScanItem]:
        ch = self.change
        for blob, path, view in ((ch.old_blob, ch.old_path, self.before),
                                 (ch.new_blob, ch.new_path, self.after)):
            if blob and path and is_python_path(path):
                yield blob, path, view


@dataclass
class _Tree:
    """What the walk keeps of one commit's tree: its project index, the blob of every
    ``.py``/``.ipynb`` path, and each notebook's code and project view (the index caches the
    views of ``.py`` files itself)."""

    index: ProjectIndex
    blobs: dict[str, str]
    notebooks: dict[str, tuple[str | None, ProjectView | None]]


def _is_notebook(path: str) -> bool:
    return path.lower().endswith(".ipynb")


class ProjectTracker:
    """The project index of each commit of a walk, derived from its (first) parent's.

    :meth:`advance` takes the commits in topological order. A commit's tree is kept until
    its last child in the walk has been advanced; a parent outside the walk (a root of a
    ``max_commits`` window) is read from git once (``ls-tree``).
    """

    def __init__(self, repo_path: Path, reader: BlobReader, max_bytes: int,
                 commits: list[CommitInfo]) -> None:
        self.repo_path = repo_path
        self.reader = reader
        self.max_bytes = max_bytes
        self._children = Counter(c.parents[0] for c in commits if c.parents)
        self._trees: dict[str, _Tree] = {}
        self.dependent_checks = 0

    # -- reading ---------------------------------------------------------------------------
    def _text(self, blob: str | None) -> str | None:
        """A ``.py`` blob's text as the pin scan's index reads it (None: missing, over
        ``max_bytes`` or not UTF-8)."""
        data = self.reader.read(blob) if blob else None
        if data is None or len(data) > self.max_bytes:
            return None
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return None

    def _notebook_code(self, blob: str | None) -> str | None:
        from leakwatt.mining.notebook import NotebookError, notebook_source

        data = self.reader.read(blob) if blob else None
        if data is None:
            return None
        try:
            return notebook_source(data.decode("utf-8-sig")).source
        except (NotebookError, UnicodeDecodeError):
            return None

    def _from_git(self, sha: str) -> _Tree:
        blobs = {}
        for entry in list_tree(self.repo_path, sha):
            path = entry.path.decode("utf-8", "backslashreplace")
            if entry.kind == "blob" and entry.mode != MODE_SUBMODULE and is_python_path(path):
                blobs[path] = entry.sha
        texts = {p: self._text(b) for p, b in blobs.items() if p.endswith(".py")}
        index = ProjectIndex({p: t for p, t in texts.items() if t is not None})
        notebooks = {}
        for path, blob in blobs.items():
            if _is_notebook(path):
                code = self._notebook_code(blob)
                notebooks[path] = (code, index.view(path, code) if code else None)
            else:
                index.view(path)  # every file's view is recorded (see ProjectIndex)
        return _Tree(index, blobs, notebooks)

    def _tree(self, sha: str | None) -> _Tree:
        if sha is None:
            return _Tree(ProjectIndex({}), {}, {})
        tree = self._trees.get(sha)
        if tree is None:
            tree = self._trees[sha] = self._from_git(sha)
        return tree

    # -- advancing -------------------------------------------------------------------------
    def advance(self, commit: CommitInfo, changes: list[Change] | None) -> list[Comparison]:
        """Move to ``commit`` (``changes``: its ``.py``/``.ipynb`` changes against its first
        parent) and return the comparisons its events come from (none for a merge)."""
        parent = commit.parents[0] if commit.parents else None
        old = self._tree(parent)
        new, comparisons = self._apply(old, changes or [])
        if parent is not None:
            self._children[parent] -= 1
            if self._children[parent] <= 0:
                self._trees.pop(parent, None)
        if self._children[commit.sha] > 0:
            self._trees[commit.sha] = new
        return comparisons if len(commit.parents) <= 1 else []

    def _apply(self, old: _Tree, changes: list[Change]) -> tuple[_Tree, list[Comparison]]:
        if not changes:
            return old, []
        blobs = dict(old.blobs)
        notebooks = dict(old.notebooks)
        texts: dict[str, str | None] = {}
        for ch in changes:  # removals first: a path may be removed and added by one commit
            if ch.old_path and ch.old_path != ch.new_path:
                blobs.pop(ch.old_path, None)
                notebooks.pop(ch.old_path, None)
                if ch.old_path.endswith(".py"):
                    texts[ch.old_path] = None
        for ch in changes:
            path = ch.new_path
            if not path or not is_python_path(path):
                continue
            if ch.new_blob:
                blobs[path] = ch.new_blob
            else:
                blobs.pop(path, None)
            if path.endswith(".py"):
                texts[path] = self._text(ch.new_blob)
        index = old.index.with_changes(texts) if texts else old.index
        comparisons = []
        touched: set[str] = set()
        for ch in changes:
            touched.update(p for p in (ch.old_path, ch.new_path) if p)
            before = self._old_view(old, ch.old_path)
            after = None
            if ch.new_path and _is_notebook(ch.new_path):
                code = self._notebook_code(ch.new_blob)
                after = index.view(ch.new_path, code) if code else None
                notebooks[ch.new_path] = (code, after)
            elif ch.new_path:
                after = index.view(ch.new_path)
            comparisons.append(Comparison(ch, before, after))
        for path in sorted(index.stale_views if texts else ()):
            if path in touched or path not in blobs:
                continue
            before = self._old_view(old, path)
            if _is_notebook(path):
                code = notebooks.get(path, (None, None))[0]
                after = index.view(path, code) if code else None
                notebooks[path] = (code, after)
            else:
                after = index.view(path)
            if fingerprint(before) == fingerprint(after):
                continue
            via = sorted((old.index.modules_read(path) | index.modules_read(path)) & set(texts))
            self.dependent_checks += 1
            blob = blobs[path]
            comparisons.append(Comparison(Change("M", path, path, blob, blob), before, after,
                                          ";".join(via)))
        return _Tree(index, blobs, notebooks), comparisons

    @staticmethod
    def _old_view(old: _Tree, path: str | None) -> ProjectView | None:
        if not path:
            return None
        if _is_notebook(path):
            return old.notebooks.get(path, (None, None))[1]
        return old.index.view(path)


def walk_history(repo_path: str | os.PathLike[str], pin: str, repo: str = "",
                 rules: Iterable[str] | None = None, max_commits: int = 0,
                 max_bytes: int = 1_048_576, jobs: int = 1,
                 project: bool = True, sandbox: Sandbox[Any, Any] | None = None,
                 budget_s: float | None = None) -> HistoryResult:
    """Events and leak-related commits of ``repo_path`` up to ``pin`` (inclusive).

    ``max_commits`` > 0 keeps only the newest N commits (topological order); each kept commit is
    still compared with its own parent, so the window only limits how far back events go.
    ``repo`` fills the ``repo`` column of the rows. ``jobs`` > 1 scans the blobs of each batch
    of commits in that many worker processes (the events do not depend on it).
    ``project=False`` scans every file alone, without the project index (each file as if it
    were the whole project: what the walk did before the index; kept for comparisons).
    Blobs are scanned in ``sandbox`` (a pool of ``jobs`` sandboxed workers when None; see
    :mod:`leakwatt.mining.sandbox`), each within ``budget_s`` seconds (None: no limit).
    """
    path = Path(repo_path)
    result = HistoryResult()
    commits = list_commits(path, pin, max_commits)
    result.commits = len(commits)
    singles = [(c.sha, c.parents[0] if c.parents else None) for c in commits
               if len(c.parents) <= 1]
    unreadable: set[str] = set()  # trees missing from a partial snapshot: no events there
    changes = changed_files(path, singles, PYTHON_PATHSPEC, unreadable=unreadable)
    if project:  # merges add no events, but their children's index starts from them
        merges = [(c.sha, c.parents[0]) for c in commits if len(c.parents) > 1]
        changes.update(changed_files(path, merges, PYTHON_PATHSPEC, renames=False,
                                     unreadable=unreadable))
    result.unreadable_commits = len(unreadable)
    origin: dict[str, str] = {}  # current path -> path where its history started (renames)
    with BlobReader(path) as reader, contextlib.closing(
            BlobScanner(reader, rules, max_bytes, jobs=jobs, sandbox=sandbox,
                        budget_s=budget_s)) as scanner:
        tracker = ProjectTracker(path, reader, max_bytes, commits) if project else None
        for chunk_start in range(0, len(commits), CHUNK_COMMITS):
            chunk = commits[chunk_start:chunk_start + CHUNK_COMMITS]
            plans = []
            for commit in chunk:
                found = changes.get(commit.sha)
                if tracker is not None:
                    plans.append(tracker.advance(commit, found))
                else:
                    plans.append([Comparison(ch) for ch in found or ()]
                                 if len(commit.parents) <= 1 else [])
            scanner.prefetch(item for plan in plans for cmp in plan for item in cmp.scans())
            for offset, (commit, plan) in enumerate(zip(chunk, plans, strict=True)):
                _commit_events(result, scanner, origin, repo, chunk_start + offset, commit,
                               bool(changes.get(commit.sha)), plan)
    result.scan_errors = scanner.errors
    result.missing_blobs = scanner.missing
    result.dependent_checks = tracker.dependent_checks if tracker is not None else 0
    return result


def _commit_events(result: HistoryResult, scanner: BlobScanner, origin: dict[str, str],
                   repo: str, seq: int, commit: CommitInfo, python: bool,
                   comparisons: list[Comparison]) -> None:
    sha, date, message = commit.sha, commit.date, commit.message
    terms = leak_terms(message)
    if terms:
        result.leak_commits.append({"repo": repo, "commit": sha, "date": date,
                                    "message": first_line(message), "matched": ";".join(terms)})
    if not python or len(commit.parents) > 1:
        return
    result.python_commits += 1
    for cmp in comparisons:
        ch = cmp.change
        old_path, new_path = ch.old_path, ch.new_path
        if old_path and new_path and old_path != new_path:
            origin[new_path] = origin.pop(old_path, old_path)
        before = scanner.findings(ch.old_blob, old_path, cmp.before) if old_path else []
        after = scanner.findings(ch.new_blob, new_path, cmp.after) if new_path else []
        if before is None or after is None:  # a blob the snapshot lacks: no events guessed
            continue
        before_keys = Counter(finding_key(f) for f in before)
        after_keys = Counter(finding_key(f) for f in after)
        deleted = ch.status == "D" or not is_python_path(new_path)
        base = {"repo": repo, "commit": sha, "date": date, "message": first_line(message),
                "seq": seq, "via": cmp.via}
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


__all__ = ["EVENT_COLUMNS", "BlobScanner", "Comparison", "HistoryResult", "LEAK_COMMIT_COLUMNS",
           "LEAK_MESSAGE_RE", "PYTHON_PATHSPEC", "ProjectTracker", "fingerprint",
           "first_line", "is_python_path", "leak_terms", "normalise_snippet", "walk_history"]
