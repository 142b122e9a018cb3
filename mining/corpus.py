"""The corpus file: one row per repository, pinned to a full commit sha.

``corpus add`` stores a remote URL in its one canonical spelling
(:func:`leakwatt.mining.clone.canonical_url`: ``https://host/owner/name``) and refuses a
repository already present under any spelling (case, ``www.``, ``.git``, ``..``, scp form).

Columns: ``url, commit`` (required) and ``name, domain, why, stars`` (descriptive; ``stars`` may
be empty). ``name`` identifies the repository in every mining output (``repo`` column) and
defaults to ``owner/name`` from the URL.
"""

from __future__ import annotations

import csv
import io
import os
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from leakwatt.common import LeakwattError, atomic_write_text
from leakwatt.contracts import CORPUS
from leakwatt.mining.clone import (
    SHA_RE,
    CloneError,
    canonical_url,
    find_mirror,
    is_local,
    repo_parts,
    resolve_head,
    url_identity,
    validate_url,
)
from leakwatt.mining.git import has_commit

CORPUS_COLUMNS = list(CORPUS.columns)
REQUIRED_COLUMNS = ("url", "commit")


@dataclass(frozen=True)
class CorpusEntry:
    url: str
    commit: str
    name: str
    domain: str = ""
    why: str = ""
    stars: int | None = None


def default_name(url: str) -> str:
    """``owner/name`` for remote URLs, the folder name for local paths."""
    owner, name = repo_parts(url)
    return f"{owner}/{name}" if owner and not is_local(url) else name


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and (line number, row) pairs; blank lines and ``#`` comment lines are skipped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LeakwattError(f"{path}: corpus file not found") from None
    except UnicodeDecodeError as exc:
        raise LeakwattError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for record in reader:
            line = reader.line_num
            if not record or all(not cell.strip() for cell in record):
                continue
            if record[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = [cell.strip() for cell in record]
                continue
            values = {col: (record[i].strip() if i < len(record) else "")
                      for i, col in enumerate(header)}
            if len(record) > len(header):
                values["__extra__"] = ",".join(record[len(header):])
            rows.append((line, values))
    except csv.Error as exc:
        raise LeakwattError(f"{path}: line {reader.line_num}: malformed CSV ({exc})") from None
    if header is None:
        raise LeakwattError(f"{path}: empty corpus file (expected header {','.join(CORPUS_COLUMNS)})")
    return header, rows


def credentials_problem(url: str) -> str | None:
    """Why ``url`` may not be stored (it carries a password or an access token), or None.

    ``https://user:pass@host/...`` and ``https://TOKEN@host/...`` would be copied into
    repos.csv, the logs and every clone's config; ``ssh://git@host/...`` and ``git@host:...``
    name an ssh login, not a secret, and are kept.
    """
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return None
    if parts.password is not None or parts.scheme.lower() in ("http", "https", "ftp", "ftps",
                                                               "git"):
        host = parts.netloc.rsplit("@", 1)[1]
        return (f"the URL carries credentials before @{host} (not stored: give the URL without "
                "them and let git's credential helper supply them)")
    return None


def _row_problems(row: dict[str, str]) -> list[tuple[str, str]]:
    """(field, problem) pairs for one row."""
    problems: list[tuple[str, str]] = []
    if "__extra__" in row:
        problems.append(("row", "more cells than header columns"))
    url = row.get("url", "")
    if not url:
        problems.append(("url", "missing"))
    elif credentials_problem(url):
        problems.append(("url", str(credentials_problem(url))))
    else:
        try:
            validate_url(url)
        except LeakwattError as exc:
            problems.append(("url", str(exc)))
    commit = row.get("commit", "")
    if not commit:
        problems.append(("commit", "missing (pin a full 40-character sha)"))
    elif not SHA_RE.fullmatch(commit.lower()):
        what = "too short" if len(commit) < 40 and all(c in "0123456789abcdefABCDEF"
                                                       for c in commit) else "not a sha"
        problems.append(("commit", f"{commit!r} is {what} (pin a full 40-character sha)"))
    stars = row.get("stars", "")
    if stars:
        try:
            if int(stars) < 0:
                raise ValueError
        except ValueError:
            problems.append(("stars", f"{stars!r} is not a non-negative integer"))
    return problems


def load_corpus(path: str | os.PathLike[str]) -> list[CorpusEntry]:
    """Read and validate a corpus CSV; the first problem raises :class:`LeakwattError` naming the
    file, line and field."""
    path = Path(path)
    header, rows = _read_rows(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise LeakwattError(f"{path}: missing column {missing[0]!r} "
                            f"(expected {','.join(CORPUS_COLUMNS)})")
    entries: list[CorpusEntry] = []
    seen_urls: dict[str, int] = {}
    seen_names: dict[str, int] = {}
    for line, row in rows:
        problems = _row_problems(row)
        if problems:
            field, problem = problems[0]
            raise LeakwattError(f"{path}: line {line}: field {field}: {problem}")
        url = validate_url(row["url"])
        name = row.get("name") or default_name(url)
        key = url_identity(url)
        if key in seen_urls:
            raise LeakwattError(f"{path}: line {line}: field url: duplicate of line {seen_urls[key]}")
        if name in seen_names:
            raise LeakwattError(
                f"{path}: line {line}: field name: {name!r} duplicates line {seen_names[name]}")
        seen_urls[key] = line
        seen_names[name] = line
        stars = row.get("stars", "")
        entries.append(CorpusEntry(url=url, commit=row["commit"].lower(), name=name,
                                   domain=row.get("domain", ""), why=row.get("why", ""),
                                   stars=int(stars) if stars else None))
    return entries


def check_corpus(path: str | os.PathLike[str]) -> list[str]:
    """Every problem in a corpus file, one line each (empty list: the file is valid)."""
    path = Path(path)
    try:
        header, rows = _read_rows(path)
    except LeakwattError as exc:
        return [str(exc)]
    problems: list[str] = []
    for col in CORPUS_COLUMNS:
        if col not in header:
            kind = "missing required column" if col in REQUIRED_COLUMNS else "missing column"
            problems.append(f"{path}: {kind} {col!r}")
    dupes = [c for c in set(header) if header.count(c) > 1]
    for col in sorted(dupes):
        problems.append(f"{path}: column {col!r} appears more than once")
    seen_urls: dict[str, int] = {}
    seen_names: dict[str, int] = {}
    for line, row in rows:
        for field, problem in _row_problems(row):
            problems.append(f"{path}: line {line}: field {field}: {problem}")
        url = row.get("url", "")
        if url:
            key = url_identity(url)
            if key in seen_urls:
                problems.append(f"{path}: line {line}: field url: duplicate of line {seen_urls[key]}")
            else:
                seen_urls[key] = line
            name = row.get("name") or default_name(url)
            if name in seen_names:
                problems.append(f"{path}: line {line}: field name: {name!r} duplicates line "
                                f"{seen_names[name]}")
            else:
                seen_names[name] = line
    return problems


def _csv_text(entries: Iterable[CorpusEntry]) -> str:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CORPUS_COLUMNS)
    for e in entries:
        writer.writerow([e.url, e.commit, e.name, e.domain, e.why,
                         "" if e.stars is None else e.stars])
    return buf.getvalue()


def write_corpus(path: str | os.PathLike[str], entries: Iterable[CorpusEntry]) -> None:
    """Write ``entries`` as a corpus CSV (atomically)."""
    atomic_write_text(path, _csv_text(entries))


def add_repository(path: str | os.PathLike[str], url: str, commit: str | None = None,
                   name: str | None = None, domain: str = "", why: str = "",
                   mirror_dir: str | os.PathLike[str] | None = None,
                   stars: int | None = None) -> CorpusEntry:
    """Append a validated row to the corpus at ``path`` (created if missing) and return it.

    Without ``commit`` the default branch head is resolved from a local path or mirror, else
    with ``git ls-remote``; offline, that fails with a message asking for ``--commit``.
    """
    path = Path(path)
    secret = credentials_problem(url)
    if secret:
        raise LeakwattError(secret)
    url = canonical_url(url)
    if commit is not None:
        commit = commit.strip().lower()
        if not SHA_RE.fullmatch(commit):
            raise LeakwattError(f"commit {commit!r}: expected a full 40-character sha")
        if verify_commit(url, commit, mirror_dir) is False:
            raise LeakwattError(f"commit {commit[:12]} is not in {url} (checked in its local "
                                "copy); pin a commit of the repository")
    entries = load_corpus(path) if path.exists() else []
    key = url_identity(url)
    for existing in entries:
        if url_identity(existing.url) == key:
            same = "" if existing.url == url else f" as {existing.url}"
            raise LeakwattError(f"{path}: {url} is already in the corpus{same} "
                                f"(pinned at {existing.commit[:12]})")
    name = (name or default_name(url)).strip()
    if any(e.name == name for e in entries):
        raise LeakwattError(f"{path}: name {name!r} is already used; pass another name")
    if commit is None:
        try:
            commit = resolve_head(url, mirror_dir=mirror_dir)
        except CloneError as exc:
            raise LeakwattError(f"cannot pin {url}: {exc.reason}") from None
    entry = CorpusEntry(url=url, commit=commit, name=name, domain=domain, why=why, stars=stars)
    if path.exists():
        # Append one row in the file's column order and line ending; the other lines (comments,
        # extra columns, CRLF) are not rewritten.
        header, _ = _read_rows(path)
        data = path.read_bytes()
        newline = "\r\n" if b"\r\n" in data.split(b"\n", 1)[0] + b"\n" else "\n"
        values = {"url": entry.url, "commit": entry.commit, "name": entry.name,
                  "domain": entry.domain, "why": entry.why,
                  "stars": "" if entry.stars is None else str(entry.stars)}
        buf = io.StringIO(newline="")
        csv.writer(buf, lineterminator=newline).writerow([values.get(col, "") for col in header])
        lead = newline if data and not data.endswith(b"\n") else ""
        with open(path, "ab") as fh:
            fh.write((lead + buf.getvalue()).encode("utf-8"))
    else:
        write_corpus(path, [entry])
    return entry


def verify_commit(url: str, commit: str, mirror_dir: str | os.PathLike[str] | None = None
                  ) -> bool | None:
    """Whether ``commit`` is in the repository, checked in its local path or mirror; None when
    there is no local copy to check (the pin is then verified when mining clones it)."""
    local = Path(os.path.expanduser(url)) if is_local(url) else find_mirror(url, mirror_dir)
    if local is None or not local.is_dir():
        return None
    return has_commit(local, commit)


__all__ = ["CORPUS_COLUMNS", "CorpusEntry", "add_repository", "check_corpus",
           "credentials_problem", "default_name", "load_corpus", "verify_commit", "write_corpus"]
