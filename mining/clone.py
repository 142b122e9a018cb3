"""Safe, cached clones of corpus repositories, checked out at their pinned commit.

`checkout(url, commit, cache_dir)` returns a work tree of ``url`` at ``commit``. Clones are kept
under ``cache_dir`` in one folder per URL (a readable name plus a hash of the URL), so re-mining
costs no network. A ``mirror_dir`` of existing clones or bare mirrors, matched by repository
name, is used before any network access; network clones are partial (``--filter=blob:none``).

Git runs through :mod:`leakwatt.mining.git` (never prompts, runs no hooks, no ``ext::``
transport), and only ``https://``, ``ssh://``, ``git@host:path`` and local paths are accepted:
transport helpers (``ext::``, ``file::``) and option-like arguments (``--upload-pack=...``) are
rejected before git sees them, and URLs reach git only after ``--``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

from leakwatt.common import LeakwattError
from leakwatt.mining.git import GitTimeout, has_commit, rev_parse_head, run_git

SHA_RE = re.compile(r"[0-9a-f]{40}")
_SCP_RE = re.compile(r"(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*):(?P<path>.+)")
_HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*(:\d+)?")


class CloneError(LeakwattError):
    """A repository could not be cloned or checked out; ``status`` names the kind of failure.

    ``status`` is one of ``invalid_url``, ``clone_failed``, ``timeout``, ``empty``,
    ``commit_missing`` (the ``repos.csv`` status values), ``reason`` a one-line explanation.
    """

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def validate_url(url: str) -> str:
    """Return ``url`` (stripped) if it is an accepted repository location, else raise.

    Accepted: ``https://host/path``, ``ssh://[user@]host[:port]/path``, ``user@host:path``
    (scp-like, e.g. ``git@github.com:owner/repo.git``) and local paths (absolute, ``./``,
    ``../``, ``~/`` or an existing folder). Everything else raises :class:`LeakwattError`.
    """
    if not isinstance(url, str) or not url.strip():
        raise LeakwattError("repository URL is empty")
    url = url.strip()
    if url.startswith("-"):
        raise LeakwattError(f"repository URL {url!r} looks like a command-line option; refused")
    if "::" in url:
        raise LeakwattError(
            f"repository URL {url!r} uses a git transport helper ('<helper>::'); refused")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise LeakwattError(f"repository URL {url!r} contains whitespace or control characters")
    lowered = url.lower()
    if "://" in url:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("https", "ssh"):
            hint = " (use https://)" if scheme in ("http", "git") else ""
            hint = " (give the local path itself)" if scheme == "file" else hint
            raise LeakwattError(
                f"repository URL {url!r}: scheme {scheme!r} is not accepted{hint}; "
                "use https://, ssh://, git@host:path or a local path")
        user, _, host = parts.netloc.rpartition("@")
        if user.startswith("-"):
            raise LeakwattError(f"repository URL {url!r}: user {user!r} looks like a "
                                "command-line option; refused")
        if not host or not _HOST_RE.fullmatch(host):
            raise LeakwattError(f"repository URL {url!r} has no valid host")
        if not parts.path.strip("/"):
            raise LeakwattError(f"repository URL {url!r} names no repository path")
        if parts.query or parts.fragment:
            raise LeakwattError(f"repository URL {url!r} must not carry a query or fragment")
        return url
    match = _SCP_RE.fullmatch(url)
    if match:
        if match["user"].startswith("-"):
            raise LeakwattError(f"repository URL {url!r}: user {match['user']!r} looks like a "
                                "command-line option; refused")
        if match["path"].startswith("-") or not match["path"].strip("/"):
            raise LeakwattError(f"repository URL {url!r} has an invalid repository path")
        return url
    if url.startswith(("/", "./", "../", "~/")) or Path(url).is_dir():
        return url
    if lowered.startswith(("github.com/", "gitlab.com/", "bitbucket.org/", "www.")):
        raise LeakwattError(f"repository URL {url!r} has no scheme; did you mean https://{url}?")
    raise LeakwattError(
        f"repository URL {url!r} is not accepted: use https://, ssh://, git@host:path "
        "or a local path (absolute, ./, ../ or an existing folder)")


#: Hosts whose owner and repository names are case-insensitive (one repository, any case).
CASE_INSENSITIVE_HOSTS = frozenset({"github.com", "gitlab.com", "bitbucket.org"})


def canonical_url(url: str) -> str:
    """The one spelling ``corpus add`` stores for a remote repository URL (local paths are
    returned as :func:`validate_url` accepts them).

    ``https://host/owner/name``: host lowercased, without ``www.`` or a trailing dot; no user
    or credentials; ``.``, ``..`` and empty path segments resolved (a path climbing above the
    host is refused); no ``.git`` suffix or trailing slash. ``git@host:path`` (scp form) and
    ``ssh://host/path`` name the same repository as https and are written as https, except
    an ssh URL with a port, which only ssh reaches (kept as ``ssh://user@host:port/path``).
    """
    url = validate_url(url)
    if is_local(url):
        return url
    if "://" in url:
        parts = urlsplit(url)
        user, _, hostport = parts.netloc.rpartition("@")
        scheme, path = parts.scheme.lower(), parts.path
    else:
        match = _SCP_RE.fullmatch(url)
        assert match is not None  # validate_url accepted it and it is not local
        scheme, user, hostport, path = "ssh", match["user"], match["host"], "/" + match["path"]
    host, _, port = hostport.partition(":")
    host = host.lower().rstrip(".")
    host = host.removeprefix("www.")
    segments: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if not segments:
                raise LeakwattError(f"repository URL {url!r}: its path climbs above the host")
            segments.pop()
            continue
        segments.append(seg)
    if segments:
        segments[-1] = segments[-1].removesuffix(".git")
    if not segments or not segments[-1]:
        raise LeakwattError(f"repository URL {url!r} names no repository path")
    if scheme == "ssh" and port:  # the login stays: ssh would otherwise use the local user's
        return f"ssh://{user + '@' if user else ''}{host}:{port}/{'/'.join(segments)}"
    return f"https://{host}{':' + port if port else ''}/{'/'.join(segments)}"


def url_identity(url: str) -> str:
    """What makes two URLs one repository: the canonical URL, case-folded on hosts whose
    paths are case-insensitive; a URL that cannot be made canonical is its own identity."""
    try:
        canonical = canonical_url(url)
    except LeakwattError:
        return url.strip()
    if is_local(canonical):
        return normalise_url(canonical)
    host = urlsplit(canonical).hostname or ""
    return canonical.lower() if host in CASE_INSENSITIVE_HOSTS else canonical


def is_local(url: str) -> bool:
    """True for local-path URLs (after :func:`validate_url`)."""
    return "://" not in url and not _SCP_RE.fullmatch(url)


def repo_parts(url: str) -> tuple[str, str]:
    """(owner, name) of a repository URL or path; owner may be empty."""
    path = url
    if "://" in url:
        path = urlsplit(url).path
    else:
        match = _SCP_RE.fullmatch(url)
        if match:
            path = match["path"]
    pieces = [p for p in path.replace("\\", "/").split("/") if p and p not in (".", "..")]
    if not pieces:
        return "", "repo"
    name = pieces[-1].removesuffix(".git") or "repo"
    owner = pieces[-2] if len(pieces) > 1 else ""
    return owner, name


def normalise_url(url: str) -> str:
    """A comparison key for URLs: no trailing slash or ``.git``, case-folded host, local paths
    made absolute."""
    url = url.strip()
    if is_local(url):
        return str(Path(os.path.expanduser(url)).resolve()).removesuffix(".git")
    url = url.rstrip("/").removesuffix(".git")
    if "://" in url:
        parts = urlsplit(url)
        return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path}"
    return url


def repo_key(url: str) -> str:
    """Cache folder name for ``url``: a sanitised ``owner+name`` and a hash of the URL."""
    owner, name = repo_parts(url)
    readable = re.sub(r"[^A-Za-z0-9._+-]+", "_", f"{owner}+{name}" if owner else name)[:60]
    digest = hashlib.sha1(normalise_url(url).encode("utf-8")).hexdigest()[:10]
    return f"{readable}-{digest}"


def _is_git_dir(path: Path) -> bool:
    return (path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())


def find_mirror(url: str, mirror_dir: str | os.PathLike[str] | None) -> Path | None:
    """The local clone or bare mirror for ``url`` in ``mirror_dir``, matched by name.

    Tried in order: ``owner+name``, ``owner__name``, ``owner/name``, ``name`` (each also with
    ``.git``, and with a ``repo`` folder inside, the layout of snapshot stores). Returns None
    when ``mirror_dir`` is unset or holds no match.
    """
    if not mirror_dir:
        return None
    root = Path(mirror_dir).expanduser()
    owner, name = repo_parts(url)
    stems = [f"{owner}+{name}", f"{owner}__{name}", f"{owner}/{name}"] if owner else []
    stems.append(name)
    for stem in stems:
        for candidate in (root / stem, root / f"{stem}.git", root / stem / "repo"):
            if candidate.is_dir() and _is_git_dir(candidate):
                return candidate
    return None


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no message from git"


def _has_refs(repo: Path, timeout_s: float | None) -> bool:
    res = run_git(["for-each-ref", "--count=1"], cwd=repo, timeout_s=timeout_s)
    return res.returncode == 0 and bool(res.stdout.strip())


def resolve_head(url: str, mirror_dir: str | os.PathLike[str] | None = None,
                 timeout_s: float = 60) -> str:
    """The commit at the default branch head of ``url`` (a local mirror first, then the network).

    Raises :class:`CloneError` with a clear reason when neither answers (e.g. offline).
    """
    url = validate_url(url)
    local = Path(os.path.expanduser(url)) if is_local(url) else find_mirror(url, mirror_dir)
    try:
        if local is not None:
            head = rev_parse_head(local, timeout_s=timeout_s) if local.is_dir() else None
            if head is not None:
                return head
            if is_local(url):
                raise CloneError("clone_failed",
                                 f"{url}: not a git repository with commits, cannot resolve HEAD")
        res = run_git(["ls-remote", "--", url, "HEAD"], timeout_s=timeout_s)
    except GitTimeout:
        raise CloneError("timeout", f"{url}: no answer to git ls-remote within {timeout_s:.0f} s "
                                    "(offline?); pass the commit explicitly") from None
    if res.returncode != 0:
        raise CloneError("clone_failed",
                         f"{url}: cannot resolve the default branch ({_last_line(res.stderr)}); "
                         "offline? pass the commit explicitly")
    for line in res.stdout.decode("utf-8", "replace").splitlines():
        sha, _, ref = line.partition("\t")
        if ref == "HEAD" and SHA_RE.fullmatch(sha):
            return sha
    raise CloneError("empty", f"{url}: the remote has no HEAD (empty repository?)")


def checkout(url: str, commit: str, cache_dir: str | os.PathLike[str],
             mirror_dir: str | os.PathLike[str] | None = None, timeout_s: float = 900) -> Path:
    """Return a work tree of ``url`` with ``commit`` checked out (detached).

    The clone lives in ``cache_dir/<repo_key(url)>`` and is reused. Sources in order: the local
    path itself (local URLs), a match in ``mirror_dir``, then the network (partial clone).
    Raises :class:`CloneError` (``status`` = ``invalid_url`` / ``clone_failed`` / ``timeout`` /
    ``empty`` / ``commit_missing``).
    """
    try:
        url = validate_url(url)
    except LeakwattError as exc:
        raise CloneError("invalid_url", str(exc)) from None
    commit = (commit or "").strip().lower()
    if not SHA_RE.fullmatch(commit):
        raise CloneError("commit_missing", f"{url}: pinned commit {commit!r} is not a full sha")
    dest = Path(cache_dir) / repo_key(url)
    sources: list[tuple[str, bool]] = []  # (source, partial?)
    if is_local(url):
        local = Path(os.path.expanduser(url))
        if not local.is_dir():
            raise CloneError("clone_failed", f"{url}: local path does not exist")
        sources.append((str(local.resolve()), False))
    else:
        mirror = find_mirror(url, mirror_dir)
        if mirror is not None:
            sources.append((str(mirror.resolve()), False))
        sources.append((url, True))
    try:
        return _checkout(url, commit, dest, sources, timeout_s)
    except GitTimeout:
        raise CloneError("timeout", f"{url}: git did not finish within {timeout_s:.0f} s") from None


def _checkout(url: str, commit: str, dest: Path, sources: list[tuple[str, bool]],
              timeout_s: float) -> Path:
    errors: list[str] = []
    if not _is_git_dir(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
        cloned = False
        for source, partial in sources:
            shutil.rmtree(tmp, ignore_errors=True)
            args = ["clone", "--quiet", "--no-checkout"]
            if partial:
                args.append("--filter=blob:none")
            res = run_git([*args, "--", source, str(tmp)], timeout_s=timeout_s)
            if res.returncode == 0:
                cloned = True
                break
            errors.append(_last_line(res.stderr))
        if not cloned:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CloneError("clone_failed", f"{url}: clone failed: {'; '.join(errors)}")
        if _is_git_dir(dest):  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    if not has_commit(dest, commit, timeout_s):
        for source, _ in sources:
            res = run_git(["fetch", "--quiet", "--", source, commit], cwd=dest, timeout_s=timeout_s)
            if res.returncode == 0 and has_commit(dest, commit, timeout_s):
                break
            if res.returncode != 0:
                errors.append(_last_line(res.stderr))
        else:
            if not _has_refs(dest, timeout_s):
                raise CloneError("empty", f"{url}: repository has no commits")
            raise CloneError("commit_missing",
                             f"{url}: pinned commit {commit[:12]} is not in the repository "
                             "(history rewritten or commit deleted?)")
    res = run_git(["checkout", "--quiet", "--force", "--detach", commit], cwd=dest,
                  timeout_s=timeout_s)
    if res.returncode != 0:
        raise CloneError("clone_failed",
                         f"{url}: checkout of {commit[:12]} failed: {_last_line(res.stderr)}")
    run_git(["clean", "-ffdxq"], cwd=dest, timeout_s=timeout_s)
    return dest


__all__ = ["CloneError", "SHA_RE", "checkout", "find_mirror", "is_local", "normalise_url",
           "repo_key", "repo_parts", "resolve_head", "validate_url"]
