"""The one gateway to git: every git process that mining starts is started here.

Mining drives git's plumbing directly (``ls-tree``, ``diff-tree --stdin``, ``cat-file
--batch``, ``log``) instead of going through pydriller/GitPython: one process answers a whole
repository's question where pydriller computes a full patch per commit, so the history walk's
git side takes a fraction of a second (the numbers, and the command that measures them, are in
``docs/mining.md``). All of it runs with the same hardening:

- :data:`SAFE_CONFIG`: the ``ext::`` transport is refused, no hooks run, paths are printed
  unquoted (``core.quotePath=false``; we read ``-z`` output anyway);
- :func:`git_env`: git never prompts (``GIT_TERMINAL_PROMPT=0``, ssh in batch mode), downloads
  no LFS objects, speaks the C locale, and ignores a ``GIT_DIR``/``GIT_WORK_TREE`` of the
  caller's environment;
- :func:`run_git` puts git in its own process group and kills the whole group on timeout.

URLs are checked before they reach git by :func:`leakwatt.mining.clone.validate_url`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

#: ``-c`` options given to every git command.
SAFE_CONFIG = ("-c", "protocol.ext.allow=never", "-c", "core.hooksPath=/dev/null",
               "-c", "advice.detachedHead=false", "-c", "core.quotePath=false")

NULL_SHA = "0" * 40
MODE_SYMLINK, MODE_SUBMODULE = "120000", "160000"

PathLike = str | os.PathLike[str]


def git_env(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for git: never prompt, no LFS downloads, C locale; ``overrides`` last."""
    env = dict(os.environ)
    env.update({
        "GIT_TERMINAL_PROMPT": "0",
        "GCM_INTERACTIVE": "never",
        "GIT_LFS_SKIP_SMUDGE": "1",
        "LC_ALL": "C",
        "LANG": "C",
    })
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=30")
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    env.update(overrides or {})
    return env


class GitTimeout(subprocess.TimeoutExpired):
    """git did not finish in time (its process group was killed)."""


@dataclass
class GitResult:
    returncode: int
    stdout: bytes
    stderr: str


def run_git(args: list[str], cwd: PathLike | None = None, timeout_s: float | None = None,
            input: bytes | None = None, env: Mapping[str, str] | None = None) -> GitResult:
    """Run ``git <SAFE_CONFIG> <args>`` and collect its output; ``input`` is its stdin
    (otherwise stdin is closed), ``env`` replaces :func:`git_env` entirely.

    On timeout the whole process group is killed and :class:`GitTimeout` raised; otherwise the
    exit status is returned, never raised.
    """
    proc = subprocess.Popen(
        ["git", *SAFE_CONFIG, *args], cwd=cwd, env=dict(env) if env is not None else git_env(),
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(input=input, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise GitTimeout(exc.cmd, exc.timeout) from None
    return GitResult(proc.returncode, out, err.decode("utf-8", "replace"))


def _checked(args: list[str], cwd: PathLike, input: bytes | None = None) -> bytes:
    """stdout of a git command that must succeed; RuntimeError with git's message otherwise."""
    res = run_git(args, cwd=cwd, input=input)
    if res.returncode != 0:
        raise RuntimeError(f"git {args[0]} failed: {res.stderr.strip()}")
    return res.stdout


def has_commit(repo: PathLike, commit: str, timeout_s: float | None = None) -> bool:
    """Whether ``commit`` names a commit in ``repo``'s object store."""
    return run_git(["cat-file", "-e", f"{commit}^{{commit}}"], cwd=repo,
                   timeout_s=timeout_s).returncode == 0


def is_partial(repo: PathLike) -> bool:
    """Whether ``repo`` is a partial clone (absent blobs are fetched on demand)."""
    res = run_git(["config", "--get", "extensions.partialClone"], cwd=repo)
    return res.returncode == 0 and bool(res.stdout.strip())


class BlobReader:
    """Contents of git objects by sha, through one long-lived ``git cat-file --batch``.

    ``read`` returns None for an object that is not in the repository (an incomplete snapshot).
    Use as a context manager: the process ends on exit.
    """

    def __init__(self, repo: PathLike) -> None:
        self._proc = subprocess.Popen(
            ["git", *SAFE_CONFIG, "cat-file", "--batch"], cwd=repo, env=git_env(),
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


def missing_objects(repo: PathLike, shas: list[str]) -> set[str]:
    """The objects of ``shas`` that ``repo``'s object store lacks (one ``git cat-file
    --batch-check``; in a partial clone, promised objects count as present)."""
    if not shas:
        return set()
    res = run_git(["cat-file", "--batch-check"], cwd=repo,
                  input="".join(f"{s}\n" for s in shas).encode())
    return {line.split()[0] for line in res.stdout.decode().splitlines()
            if line.endswith(" missing")}


@dataclass(frozen=True)
class TreeEntry:
    """One entry of a recursive ``git ls-tree -l``; ``size`` is None where git does not know
    it (submodules, blobs missing from the snapshot); ``path`` is raw bytes."""

    mode: str
    kind: str
    size: int | None
    path: bytes
    sha: str


def list_tree(repo: PathLike, commit: str) -> list[TreeEntry]:
    """Every entry of ``commit``'s tree, recursively (one ``git ls-tree -r -l -z``)."""
    entries = []
    for record in _checked(["ls-tree", "-r", "-l", "-z", "--full-tree", commit], repo).split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, kind, sha, size = meta.decode().split(maxsplit=3)
        entries.append(TreeEntry(mode, kind, int(size) if size.strip().isdigit() else None,
                                 path, sha))
    return entries


@dataclass(frozen=True)
class Change:
    """One file changed by a commit (``git diff-tree --raw -M``); submodule sides are None."""

    status: str  # A(dded), D(eleted), M(odified), R(enamed), T(ype changed)
    old_path: str | None
    new_path: str | None
    old_blob: str | None
    new_blob: str | None


def _decode_path(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def changed_files(repo: PathLike, commits: list[tuple[str, str | None]],
                  pathspec: list[str], renames: bool = True,
                  unreadable: set[str] | None = None) -> dict[str, list[Change]]:
    """The files matching ``pathspec`` that each ``(commit, parent)`` changes (parent None: a
    root commit), all in one ``git diff-tree --stdin``. Rename detection runs among the
    matching paths only, so no other blob is ever read; ``renames=False`` turns it off (a
    rename is then a deletion and an addition, and git reads no blob at all).

    ``unreadable``: when given, a commit whose trees git cannot read (an object missing from
    a partial snapshot) is added to it and has no entry, and the others are still compared
    (the batch is halved until the failing commits are alone); when None, that is a
    RuntimeError."""
    if not commits:
        return {}
    lines = "".join(f"{c} {p}\n" if p else f"{c}\n" for c, p in commits).encode()
    args = ["diff-tree", "--stdin", "-r", *(["-M"] if renames else []), "--root",
            "--no-abbrev", "-z", "--raw", "--", *pathspec]
    res = run_git(args, cwd=repo, input=lines)
    if res.returncode != 0:
        if unreadable is None or "unable to read" not in res.stderr:
            raise RuntimeError(f"git diff-tree failed: {res.stderr.strip()}")
        if len(commits) == 1:
            unreadable.add(commits[0][0])
            return {}
        half = len(commits) // 2
        return {**changed_files(repo, commits[:half], pathspec, renames, unreadable),
                **changed_files(repo, commits[half:], pathspec, renames, unreadable)}
    stdout = res.stdout
    out: dict[str, list[Change]] = {}
    tokens = stdout.split(b"\0")
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
        if old_mode == MODE_SUBMODULE:  # its "blob" is a commit of another repository
            old_path, old_sha = None, NULL_SHA
        if new_mode == MODE_SUBMODULE:
            new_path, new_sha = None, NULL_SHA
        if old_path is None and new_path is None:
            continue
        current.append(Change(kind, old_path, new_path,
                              old_sha if old_sha != NULL_SHA else None,
                              new_sha if new_sha != NULL_SHA else None))
    return out


@dataclass(frozen=True)
class CommitInfo:
    """A commit as the history walk needs it; ``date`` is the committer date (ISO 8601)."""

    sha: str
    parents: tuple[str, ...]
    date: str
    message: str


def _commit_date(stamp: str) -> str:
    """``%ct %ci`` (``<unix time> <date> <time> <+hhmm>``) as ISO 8601 in the committer's own
    offset, as GitPython (hence pydriller) renders ``committed_datetime``."""
    fields = stamp.split()
    seconds, offset = fields[0], fields[-1]
    sign = -1 if offset.startswith("-") else 1
    delta = dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
    return dt.datetime.fromtimestamp(int(seconds), dt.timezone(sign * delta)).isoformat()


def list_commits(repo: PathLike, pin: str, max_commits: int = 0) -> list[CommitInfo]:
    """The commits reachable from ``pin`` (inclusive), oldest first in topological order
    (``git log --topo-order --reverse``); ``max_commits`` > 0 keeps the newest N of them."""
    args = ["log", "--no-show-signature", "--no-color", "--no-mailmap", "--topo-order",
            "--reverse", "-z", "--format=%H%n%P%n%ct %ci%n%B"]
    if max_commits > 0:
        args.append(f"--max-count={max_commits}")
    commits = []
    for record in _checked([*args, pin, "--"], repo).split(b"\0"):
        if not record:
            continue
        sha, parents, stamp, message = record.decode("utf-8", "replace").split("\n", 3)
        commits.append(CommitInfo(sha, tuple(parents.split()), _commit_date(stamp),
                                  message.strip()))
    return commits


def rev_parse_head(repo: PathLike, timeout_s: float | None = None) -> str | None:
    """The commit at ``HEAD`` of ``repo``, or None (not a repository, no commits)."""
    res = run_git(["rev-parse", "--verify", "HEAD^{commit}"], cwd=repo, timeout_s=timeout_s)
    return res.stdout.decode().strip() if res.returncode == 0 else None


__all__ = ["SAFE_CONFIG", "BlobReader", "Change", "CommitInfo", "GitResult", "GitTimeout",
           "TreeEntry",
           "changed_files", "git_env", "has_commit", "is_partial", "list_commits", "list_tree",
           "missing_objects", "rev_parse_head", "run_git"]
