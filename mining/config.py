"""``[tool.leakwatt]`` in ``pyproject.toml``: the linter's settings, found and checked as ruff's.

Which file: the nearest ``pyproject.toml`` holding a ``[tool.leakwatt]`` table, walking up from
the *first* path given to ``leakwatt scan`` (from the folder itself, or from a file's folder);
one project's settings apply to the whole run, as ruff does without ``--config`` when it is
given several paths. A ``pyproject.toml`` without the table is passed over, so a monorepo's
inner packaging file does not hide the project's settings. ``--config FILE`` names the file
instead; ``--isolated`` reads none. Command-line flags override what the file says.

The file is checked before anything is scanned: TOML that does not parse, an unknown key, a
value of the wrong type or an unknown rule id is one line naming the file and the key, and exit
status 2 (a usage error), never a silently ignored setting.

Paths (``exclude``, ``extend-exclude``, ``per-file-ignores``) are globs with ruff's meaning: a
pattern without ``/`` matches a file or folder name (``tests`` leaves out every folder named
tests and all below it, ``*_pb2.py`` every such file); a pattern with ``/`` matches the path
relative to the folder of the configuration file (``src/legacy/*``; the current folder when
there is none). Matching is :func:`fnmatch.fnmatchcase`, where ``*`` also crosses ``/``. As in
ruff, ``exclude`` replaces the default list (:data:`DEFAULT_EXCLUDE`) and ``extend-exclude``
adds to it, and a path given on the command line is scanned even when excluded unless
``force-exclude`` is set (pre-commit passes every changed file by name).
"""

from __future__ import annotations

import fnmatch
import math
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from leakwatt.common import LeakwattError
from leakwatt.mining.rules import parse_rule_list
from leakwatt.mining.sandbox import DEFAULT_MEMORY_MB
from leakwatt.mining.scan import DEFAULT_FILE_BUDGET_S, DEFAULT_MAX_BYTES

#: Folders (and files) left out of a folder scan unless ``exclude`` replaces the list: ruff's
#: defaults, plus ``__pycache__`` and ``build``. The scan engine itself also skips every
#: dot-folder, virtual environments and ``site-packages`` (the miner's own rule).
DEFAULT_EXCLUDE: tuple[str, ...] = (
    ".bzr", ".direnv", ".eggs", ".git", ".git-rewrite", ".hg", ".ipynb_checkpoints",
    ".mypy_cache", ".nox", ".pants.d", ".pyenv", ".pytest_cache", ".pytype", ".ruff_cache",
    ".svn", ".tox", ".venv", ".vscode", "__pycache__", "__pypackages__", "_build", "buck-out",
    "build", "dist", "node_modules", "site-packages", "venv")


class ConfigError(LeakwattError):
    """A configuration file that cannot be used (one line naming the file and the key)."""


@dataclass(frozen=True)
class Settings:
    """The linter's settings after the configuration file (command-line flags go on top)."""

    #: the file read, or None (no configuration found, or ``--isolated``)
    path: Path | None = None
    #: the folder that relative patterns are matched against (the file's folder, else cwd)
    root: Path = field(default_factory=Path.cwd)
    select: list[str] | None = None
    ignore: list[str] = field(default_factory=list)
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    extend_exclude: tuple[str, ...] = ()
    force_exclude: bool = False
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    min_confidence: float = 0.0
    file_budget: float = DEFAULT_FILE_BUDGET_S
    file_memory: int = DEFAULT_MEMORY_MB
    max_file_kb: int = DEFAULT_MAX_BYTES // 1024
    imr_straight_line_in_tests: bool = False


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _fraction(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


def _seconds(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)


#: key -> (check, what the value must be). Keys are ruff's spelling (kebab-case).
_KEYS: dict[str, tuple[Callable[[object], bool], str]] = {
    "select": (_is_str_list, "a list of rule ids"),
    "ignore": (_is_str_list, "a list of rule ids"),
    "exclude": (_is_str_list, "a list of glob patterns"),
    "extend-exclude": (_is_str_list, "a list of glob patterns"),
    "force-exclude": (lambda v: isinstance(v, bool), "true or false"),
    "per-file-ignores": (lambda v: isinstance(v, dict) and all(_is_str_list(x) for x in v.values()),
                         "a table of glob pattern = list of rule ids"),
    "min-confidence": (_fraction, "a number from 0 to 1"),
    "file-budget": (_seconds, "a number of seconds >= 0 (0: no limit)"),
    "file-memory": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                    "a whole number of MiB >= 0 (0: no limit)"),
    "max-file-kb": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
                    "a whole number of KiB > 0"),
    "imr-straight-line-in-tests": (lambda v: isinstance(v, bool), "true or false"),
}


def find_config(paths: Sequence[str | os.PathLike[str]]) -> tuple[Path, dict[str, Any]] | None:
    """The nearest ``pyproject.toml`` with a ``[tool.leakwatt]`` table above the first of
    ``paths``, and that table; None when there is none up to the file system's root."""
    if not paths:
        return None
    start = Path(os.path.abspath(paths[0]))
    folder = start if start.is_dir() else start.parent
    for candidate in (folder, *folder.parents):
        pyproject = candidate / "pyproject.toml"
        if not pyproject.is_file():
            continue
        table = _tool_table(pyproject, required=False)
        if table is not None:
            return pyproject, table
    return None


def _tool_table(path: Path, required: bool) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    tool = data.get("tool")
    table = tool.get("leakwatt") if isinstance(tool, dict) else None
    if table is None:
        if required:
            raise ConfigError(f"{path}: has no [tool.leakwatt] table")
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: tool.leakwatt must be a table")
    return table


def load_settings(paths: Sequence[str | os.PathLike[str]], config: str | None = None,
                  isolated: bool = False) -> Settings:
    """The settings for a scan of ``paths``: from ``config`` (a TOML file with a
    ``[tool.leakwatt]`` table) when given, else from :func:`find_config`; the defaults when
    ``isolated`` or when there is no configuration. ConfigError on any bad value."""
    if isolated:
        return Settings()
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"{config}: configuration file not found")
        table = _tool_table(path, required=True)
        assert table is not None
        found: tuple[Path, dict[str, Any]] | None = (path.absolute(), table)
    else:
        found = find_config(paths)
    if found is None:
        return Settings()
    return settings_from_table(*found)


def settings_from_table(path: Path, table: Mapping[str, Any]) -> Settings:
    """:class:`Settings` from a ``[tool.leakwatt]`` table read from ``path``."""
    where = f"{path}: [tool.leakwatt]"
    for key, value in table.items():
        if key not in _KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(_KEYS)})")
        check, what = _KEYS[key]
        if not check(value):
            raise ConfigError(f"{where} {key}: expected {what}, got {value!r}")

    def rules(key: str, value: list[str]) -> list[str]:
        try:
            return parse_rule_list(value) or []
        except LeakwattError as exc:
            raise ConfigError(f"{where} {key}: {exc}") from None

    select = rules("select", table["select"]) if "select" in table else None
    if select is not None and not select:
        raise ConfigError(f"{where} select: names no rule (leave it out to run every rule)")
    per_file = {pattern: rules(f"per-file-ignores.{pattern!r}", codes)
                for pattern, codes in table.get("per-file-ignores", {}).items()}
    defaults = Settings()
    return Settings(
        path=path, root=path.parent, select=select,
        ignore=rules("ignore", table.get("ignore", [])),
        exclude=tuple(table.get("exclude", defaults.exclude)),
        extend_exclude=tuple(table.get("extend-exclude", ())),
        force_exclude=table.get("force-exclude", False),
        per_file_ignores=per_file,
        min_confidence=float(table.get("min-confidence", defaults.min_confidence)),
        file_budget=float(table.get("file-budget", defaults.file_budget)),
        file_memory=table.get("file-memory", defaults.file_memory),
        max_file_kb=table.get("max-file-kb", defaults.max_file_kb),
        imr_straight_line_in_tests=table.get("imr-straight-line-in-tests", False))


def _relative(path: Path, root: Path) -> PurePosixPath | None:
    try:
        return PurePosixPath(Path(os.path.abspath(path)).relative_to(root).as_posix())
    except ValueError:
        return None


def matches(path: str | os.PathLike[str], patterns: Sequence[str], root: Path) -> bool:
    """Whether ``path`` itself matches one of ``patterns`` (ruff's meaning): a pattern without
    ``/`` against its name (``tests``, ``*_pb2.py``), one with ``/`` against its path relative
    to ``root`` (``src/legacy/*``; a leading ``**/`` may also match nothing)."""
    p = Path(os.path.abspath(path))
    rel = _relative(p, Path(os.path.abspath(root)))
    for pattern in patterns:
        pattern = pattern.removeprefix("./").rstrip("/")
        if "/" not in pattern:
            if fnmatch.fnmatchcase(p.name, pattern):
                return True
        elif rel is not None and any(
                fnmatch.fnmatchcase(rel.as_posix(), pat)
                for pat in (pattern, pattern.removeprefix("**/"))):
            return True
    return False


def excluded(path: str | os.PathLike[str], patterns: Sequence[str], root: Path) -> bool:
    """Whether ``path`` or one of its folders below ``root`` matches ``patterns``: what a folder
    walk would have left out (``force-exclude`` applies it to the paths given)."""
    p = Path(os.path.abspath(path))
    top = Path(os.path.abspath(root))
    for candidate in (p, *p.parents):
        if candidate == top:
            break
        if matches(candidate, patterns, top):
            return True
        if top not in candidate.parents:  # outside the root: the path itself only
            break
    return False


def ignored_rules(path: str | os.PathLike[str], per_file: Mapping[str, list[str]],
                  root: Path) -> set[str]:
    """The rule ids ``per-file-ignores`` switches off for ``path`` (its name or its path
    relative to ``root`` matches the pattern, as for ``exclude``)."""
    out: set[str] = set()
    for pattern, codes in per_file.items():
        if matches(path, [pattern], root):
            out.update(codes)
    return out


#: Where a test lives: a folder named tests or test, or test_*.py, *_test.py, conftest.py.
_TEST_DIRS = frozenset({"tests", "test"})


def is_test_file(path: str | os.PathLike[str], root: Path) -> bool:
    """Whether ``path`` is test code: named ``test_*.py``, ``*_test.py`` or ``conftest.py``, or
    inside a ``tests``/``test`` folder below ``root`` (the folder above the scanned root does
    not count: scanning ``~/tests/project`` is not scanning tests)."""
    p = Path(path)
    name = p.name
    if name == "conftest.py" or (name.startswith("test_") and name.endswith(".py")) \
            or name.endswith("_test.py"):
        return True
    rel = _relative(p, Path(os.path.abspath(root)))
    folders = rel.parts[:-1] if rel is not None else ()
    return any(part in _TEST_DIRS for part in folders)
