"""The offline demo corpus: small git repositories built from scripted histories.

Each folder ``<demo_dir>/<project>/`` holds ``history.yaml`` and the source files it refers to.
``history.yaml``::

    name: demo/kfold-cnn          # the corpus name (``repo`` column of the mining outputs)
    domain: ...                   # descriptive corpus columns
    why: ...
    commits:
      - message: Add 5-fold cross validation
        date: "2024-01-15T14:30:00+00:00"
        move: {old/path.py: new/path.py}      # optional, applied first
        delete: [path.py]                     # optional
        write: {train.py: src/train_v2.py}    # repository path: source under the project

`build_demo_corpus` turns each history into a real git repository under ``work_dir`` with fixed
author, committer, e-mail and dates, so the commit shas are the same on every machine. A
repository whose recorded spec hash matches is reused as it is.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from leakwatt.common import LeakwattError
from leakwatt.mining.corpus import CorpusEntry
from leakwatt.mining.git import run_git

DEMO_BUILD_VERSION = 1
SPEC_FILE = "history.yaml"
AUTHOR = ("leakwatt demo", "demo@leakwatt.invalid")
_MARKER = "leakwatt-demo-spec"  # inside .git: the spec hash the repository was built from


def bundled_demo_dir() -> Path:
    """The demo corpus that ships with leakwatt: ``data/demo`` of a source checkout (editable
    install), else the copy a wheel installs as ``leakwatt/demo_data`` (pyproject.toml maps the
    one onto the other), so that ``leakwatt mine --demo`` runs from any folder."""
    import leakwatt

    installed = Path(leakwatt.__file__).resolve().parent / "demo_data"
    checkout = Path(__file__).resolve().parents[1] / "data" / "demo"
    for candidate in (checkout, installed):
        if candidate.is_dir():
            return candidate
    raise LeakwattError(f"the bundled demo corpus is missing (looked in {checkout} and "
                        f"{installed}); reinstall leakwatt or give --demo-dir")


def _fail(spec_path: Path, where: str, problem: str) -> LeakwattError:
    return LeakwattError(f"{spec_path}: {where}: {problem}")


def load_spec(project_dir: Path) -> dict[str, Any]:
    """Read and validate ``history.yaml`` of one demo project."""
    spec_path = project_dir / SPEC_FILE
    try:
        with open(spec_path, encoding="utf-8") as fh:
            spec = yaml.safe_load(fh)
    except FileNotFoundError:
        raise LeakwattError(f"{spec_path}: demo history file not found") from None
    except yaml.YAMLError as exc:
        raise LeakwattError(f"{spec_path}: invalid YAML: {exc}") from None
    if not isinstance(spec, dict):
        raise _fail(spec_path, "top level", "expected a mapping")
    if not isinstance(spec.get("name"), str) or not spec["name"].strip():
        raise _fail(spec_path, "name", "missing")
    commits = spec.get("commits")
    if not isinstance(commits, list) or not commits:
        raise _fail(spec_path, "commits", "expected a non-empty list")
    root = project_dir.resolve()
    for i, commit in enumerate(commits, 1):
        where = f"commits[{i}]"
        if not isinstance(commit, dict):
            raise _fail(spec_path, where, "expected a mapping")
        unknown = set(commit) - {"message", "date", "write", "delete", "move"}
        if unknown:
            raise _fail(spec_path, f"{where}.{sorted(unknown)[0]}", "unknown key")
        if not isinstance(commit.get("message"), str) or not commit["message"].strip():
            raise _fail(spec_path, f"{where}.message", "missing")
        if not isinstance(commit.get("date"), str):
            raise _fail(spec_path, f"{where}.date", "missing (an ISO 8601 date with offset)")
        for key in ("write", "move"):
            value = commit.get(key, {}) or {}
            if not isinstance(value, dict):
                raise _fail(spec_path, f"{where}.{key}", "expected a mapping")
            for dst in value:
                _safe_rel(spec_path, f"{where}.{key}", str(dst))
        for dst, src in (commit.get("write") or {}).items():
            source = (project_dir / str(src)).resolve()
            if not source.is_relative_to(root) or not source.is_file():
                raise _fail(spec_path, f"{where}.write.{dst}", f"source {src!r} not found")
        for old, new in (commit.get("move") or {}).items():
            _safe_rel(spec_path, f"{where}.move.{old}", str(new))
        deletes = commit.get("delete", []) or []
        if not isinstance(deletes, list):
            raise _fail(spec_path, f"{where}.delete", "expected a list")
        for path in deletes:
            _safe_rel(spec_path, f"{where}.delete", str(path))
    return spec


def _safe_rel(spec_path: Path, where: str, path: str) -> None:
    parts = Path(path).parts
    if not path or Path(path).is_absolute() or ".." in parts or (parts and parts[0] == ".git"):
        raise _fail(spec_path, where, f"{path!r} must be a relative path inside the repository")


def spec_hash(project_dir: Path, spec: dict[str, Any]) -> str:
    """Hash of everything a demo repository is built from."""
    digest = hashlib.sha256(f"leakwatt-demo-{DEMO_BUILD_VERSION}\0".encode())
    digest.update((project_dir / SPEC_FILE).read_bytes())
    for commit in spec["commits"]:
        for dst, src in sorted((commit.get("write") or {}).items()):
            digest.update(f"\0{dst}\0{src}\0".encode())
            digest.update((project_dir / str(src)).read_bytes())
    return digest.hexdigest()


def _git_env(date: str) -> dict[str, str]:
    """Only the fixed identity and dates reach git (no GIT_* or user/system config of the
    caller), so the shas are the same on every machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({
        "GIT_AUTHOR_NAME": AUTHOR[0], "GIT_AUTHOR_EMAIL": AUTHOR[1], "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": AUTHOR[0], "GIT_COMMITTER_EMAIL": AUTHOR[1],
        "GIT_COMMITTER_DATE": date, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C",
    })
    return env


def _git(repo: Path, args: list[str], date: str = "2000-01-01T00:00:00+00:00",
         stdin: bytes | None = None) -> str:
    res = run_git(
        ["-c", "commit.gpgsign=false", "-c", "core.autocrlf=false",
         "-c", "init.defaultBranch=main", *args],
        cwd=repo, env=_git_env(date), input=stdin)
    if res.returncode != 0:
        raise LeakwattError(f"building demo repository {repo}: git {args[0]} failed: "
                            f"{res.stderr.strip()}")
    return res.stdout.decode("utf-8", "replace").strip()


def _build(project_dir: Path, spec: dict[str, Any], dest: Path, digest: str) -> None:
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _git(tmp, ["init", "--quiet", "--initial-branch=main"])
        for commit in spec["commits"]:
            for old, new in (commit.get("move") or {}).items():
                target = tmp / str(new)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp / str(old), target)
            for path in commit.get("delete") or []:
                (tmp / str(path)).unlink()
            for dst, src in (commit.get("write") or {}).items():
                target = tmp / str(dst)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes((project_dir / str(src)).read_bytes())
                target.chmod(0o644)
            _git(tmp, ["add", "--all"], commit["date"])
            _git(tmp, ["commit", "--quiet", "--allow-empty", "--cleanup=strip", "-F", "-"],
                 commit["date"], stdin=commit["message"].encode("utf-8"))
        (tmp / ".git" / _MARKER).write_text(digest + "\n", encoding="utf-8")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _built_head(dest: Path, digest: str) -> str | None:
    marker = dest / ".git" / _MARKER
    try:
        if marker.read_text(encoding="utf-8").strip() != digest:
            return None
    except OSError:
        return None
    try:
        return _git(dest, ["rev-parse", "--verify", "HEAD^{commit}"])
    except LeakwattError:
        return None


def project_dirs(demo_dir: str | os.PathLike[str]) -> list[Path]:
    """Demo project folders (those with a ``history.yaml``), sorted by name."""
    root = Path(demo_dir)
    if not root.is_dir():
        raise LeakwattError(f"{root}: demo folder not found")
    found = sorted(p for p in root.iterdir() if (p / SPEC_FILE).is_file())
    if not found:
        raise LeakwattError(f"{root}: no demo projects (folders with {SPEC_FILE})")
    return found


def build_demo_corpus(demo_dir: str | os.PathLike[str],
                      work_dir: str | os.PathLike[str]) -> list[CorpusEntry]:
    """Build (or reuse) one git repository per demo project under ``work_dir``.

    Returns corpus entries with ``url`` = the repository path (as under ``work_dir``) and
    ``commit`` = its head sha, which is the same on every machine.
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    entries: list[CorpusEntry] = []
    for project in project_dirs(demo_dir):
        spec = load_spec(project)
        digest = spec_hash(project, spec)
        dest = work / project.name
        head = _built_head(dest, digest)
        if head is None:
            _build(project, spec, dest, digest)
            head = _git(dest, ["rev-parse", "--verify", "HEAD^{commit}"])
        entries.append(CorpusEntry(url=str(dest), commit=head, name=spec["name"].strip(),
                                   domain=str(spec.get("domain", "") or ""),
                                   why=str(spec.get("why", "") or ""), stars=None))
    return entries


__all__ = ["build_demo_corpus", "load_spec", "project_dirs", "spec_hash"]
