"""``leakwatt scan``: the linter front end (text, JSON, SARIF output; autofix and diff).

Exit codes, as ruff's: 0 nothing found; 1 findings, or files that could not be scanned or fixed
(each listed under ``errors``); 2 usage error (unknown rule id, empty ``--select``, missing
path, a bad ``[tool.leakwatt]`` setting). With ``--diff``: 1 when a file would change (or could
not be read), 0 when no autofix applies. No Python file or notebook under the paths given is a
warning and exit status 0, as ruff's. The output itself failing is neither: 141 when the reader
closed the pipe (``leakwatt scan | head -1``; quiet, as a Unix tool killed by SIGPIPE), 74
(``EX_IOERR``) with one line on stderr when it cannot be written (``> /dev/full``, a full disk).

Settings come from ``[tool.leakwatt]`` in the project's ``pyproject.toml``
(:mod:`leakwatt.mining.config`), command-line flags on top: a flag given replaces the file's
value, except ``--ignore`` and ``--extend-exclude``, which add to it (``--select`` starts the
rule choice afresh, dropping the file's ``select`` and ``ignore``, as ruff's does).

Every file is parsed and analysed in a sandboxed worker process (:mod:`leakwatt.mining.sandbox`):
a file that crashes libcst's parser, needs more than ``--file-memory`` MiB or runs past
``--file-budget`` seconds is an error row naming the cause, and the other files' findings are
all reported.

``--fix`` writes a file only where that cannot damage it: the file's own encoding, BOM, line
endings and final line ending are kept; a symlink's target is fixed (the link stays a link); the
new text is written to a temporary file beside the target, fsync'ed, read back and renamed over
it with the target's mode and owner (a hard-linked file is rewritten in place, room claimed
first); a read-only file is refused. Whatever fails (a full disk, a read-only folder) leaves the
file byte-identical and is an error row; the others are still fixed. A file given under several
names is fixed, and reported after the fix, once. Notebooks are not fixed (one line says so).
``--diff`` never writes, with or without ``--fix``.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import difflib
import errno
import inspect
import io
import json
import math
import os
import re
import stat
import sys
import tempfile
import urllib.parse
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from leakwatt.common import LeakwattError, cap_jobs, package_version
from leakwatt.mining import costs
from leakwatt.mining.config import Settings, excluded, ignored_rules, is_test_file, load_settings, matches
from leakwatt.mining.guards import pathological
from leakwatt.mining.reading import ReadError, read_regular, source_encoding, wide_bom
from leakwatt.mining.rules import RULES, Finding, Rule, fix_source, parse_rule_list, select_rules
from leakwatt.mining.rules.catalogue import anchor, rule_markdown
from leakwatt.mining.scan import (
    DEFAULT_MAX_BYTES,
    DETECTOR_VERSION,
    ScanReport,
    is_suppressed,
    scan_paths,
    suppressions,
)

EXIT_CODES = ("exit status: 0 nothing found; 1 findings, or files that could not be scanned "
              "or fixed (with --diff: files that would change); 2 usage error or bad "
              "[tool.leakwatt] setting (as ruff); 74 the output could not be written; "
              "141 the output pipe was closed")
#: The output could not be written (sysexits.h ``EX_IOERR``): not "findings" (1).
EXIT_OUTPUT_ERROR = 74
#: The reader closed the pipe: what a shell reports for a tool ended by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141
#: Skip reasons summed up in one line (``--verbose`` lists each file): machine-made files.
GENERATED_REASONS = frozenset({"generated file", "very long lines (minified or generated)"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="Python files, .ipynb notebooks or folders to scan")
    parser.add_argument("--format", choices=("text", "json", "sarif"), default="text",
                        help="output format (default: text)")
    parser.add_argument("--select", default=None, metavar="RULES",
                        help=f"comma-separated rule ids to run (default: all: {','.join(RULES)}); "
                             "replaces the configuration's select and ignore")
    parser.add_argument("--ignore", default=None, metavar="RULES",
                        help="comma-separated rule ids to skip (added to the configuration's)")
    parser.add_argument("--exclude", default=None, metavar="PATTERNS",
                        help="comma-separated globs of files and folders to leave out of a "
                             "folder scan; replaces the configuration's and the default list "
                             f"({', '.join(defaults.exclude[:4])}, ..., venv)")
    parser.add_argument("--extend-exclude", default=None, metavar="PATTERNS",
                        help="comma-separated globs left out in addition to exclude")
    parser.add_argument("--force-exclude", action="store_true", default=None,
                        help="apply exclude to the paths given too (for pre-commit)")
    parser.add_argument("--per-file-ignores", action="append", default=None,
                        metavar="PATTERN:RULES",
                        help="skip RULES (comma-separated) in files matching PATTERN "
                             "(repeatable; replaces the configuration's)")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="read [tool.leakwatt] from FILE (default: the nearest "
                             "pyproject.toml with one, above the first PATH)")
    parser.add_argument("--isolated", action="store_true",
                        help="read no configuration file")
    parser.add_argument("--jobs", type=int, default=0, metavar="N",
                        help="worker processes (default 0: all cores)")
    parser.add_argument("--min-confidence", type=float, default=None, metavar="X",
                        help="only report findings with confidence >= X (0..1; default 0)")
    parser.add_argument("--imr-straight-line-in-tests", action="store_true", default=None,
                        help="report IMR straight-line findings in test files too (left out "
                             "by default: a test builds a fresh model per case on purpose)")
    parser.add_argument("--cache-dir", default=None, metavar="DIR",
                        help="keep findings cached by file-content hash in DIR")
    parser.add_argument("--fix", action="store_true",
                        help=f"rewrite files with the safe autofixes ({', '.join(_fixable())})")
    parser.add_argument("--diff", action="store_true",
                        help="print the autofixes as a unified diff; never writes, even with "
                             "--fix (exit 1 when a file would change)")
    parser.add_argument("--statistics", action="store_true",
                        help="print the number of findings per rule and variant instead of "
                             "the findings (text or json)")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true",
                      help="print the findings (and unscannable files) only: no summary, "
                           "notes or warnings")
    loud.add_argument("-s", "--silent", action="store_true",
                      help="print nothing; the exit status still tells")
    loud.add_argument("-v", "--verbose", action="store_true",
                      help="also say which configuration file was read and list every "
                           "generated file skipped")
    parser.add_argument("--file-budget", type=float, default=None, metavar="SECONDS",
                        help="a file whose scan takes longer becomes an error "
                             f"(default {defaults.file_budget:g}; 0: no limit)")
    parser.add_argument("--file-memory", type=int, default=None, metavar="MIB",
                        help="a file whose scan needs more memory becomes an error "
                             f"(default {defaults.file_memory}; 0: no limit)")
    parser.add_argument("--max-file-kb", type=int, default=None, metavar="KIB",
                        help="larger files are skipped, and said so "
                             f"(default {defaults.max_file_kb})")


def _fixable() -> list[str]:
    """Ids of the rules that offer an autofix (an ``Invalid`` example with a replacement)."""
    return [code for code, cls in RULES.items()
            if any(i.expected_replacement for i in cls.INVALID)]


def _error(msg: str, stream: TextIO) -> int:
    print(f"leakwatt: error: {msg}", file=stream)
    return 2


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class Options:
    """One scan's settings: the configuration file's, with the command-line flags on top."""

    settings: Settings
    codes: list[str]
    exclude: tuple[str, ...]
    force_exclude: bool
    per_file_ignores: dict[str, list[str]]
    min_confidence: float
    file_budget: float
    file_memory: int
    max_bytes: int
    imr_straight_line_in_tests: bool


def _patterns(text: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


def _per_file_flags(items: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        pattern, sep, codes = item.rpartition(":")
        if not sep or not pattern.strip():
            raise LeakwattError(f"--per-file-ignores takes PATTERN:RULES, got {item!r}")
        out.setdefault(pattern.strip(), []).extend(parse_rule_list(codes) or [])
    return out


def _given(flag: Any, configured: Any) -> Any:
    return configured if flag is None else flag


def resolve_options(args: argparse.Namespace) -> Options:
    """The settings of this scan (LeakwattError, a usage error, for anything wrong)."""
    for p in args.paths:
        if not os.path.lexists(p):
            raise LeakwattError(f"no such file or directory: {p}")
    settings = load_settings(args.paths, getattr(args, "config", None),
                             getattr(args, "isolated", False))
    if args.select is not None:
        select = parse_rule_list(args.select)
        if not select:
            raise LeakwattError("--select names no rule (give rule ids, or leave it out)")
        ignore = parse_rule_list(args.ignore) or []
    else:
        select = settings.select
        ignore = settings.ignore + (parse_rule_list(args.ignore) or [])
    codes = select_rules(select, ignore)
    if not codes:
        raise LeakwattError("no rule left to run after ignore")
    if getattr(args, "statistics", False) and args.format == "sarif":
        raise LeakwattError("--statistics is for --format text or json")
    exclude = (_patterns(args.exclude) if getattr(args, "exclude", None) is not None
               else settings.exclude)
    exclude += settings.extend_exclude + _patterns(getattr(args, "extend_exclude", None))
    flags = getattr(args, "per_file_ignores", None)
    per_file = _per_file_flags(flags) if flags is not None else settings.per_file_ignores
    budget = _given(args.file_budget, settings.file_budget)
    if not math.isfinite(budget) or budget < 0:
        raise LeakwattError(f"--file-budget must be a finite number >= 0 (0: no limit), "
                            f"got {budget}")
    memory = _given(getattr(args, "file_memory", None), settings.file_memory)
    if memory < 0:
        raise LeakwattError("--file-memory must be >= 0")
    max_kb = _given(getattr(args, "max_file_kb", None), settings.max_file_kb)
    if max_kb <= 0:
        raise LeakwattError("--max-file-kb must be > 0")
    min_conf = _given(args.min_confidence, settings.min_confidence)
    if not 0.0 <= min_conf <= 1.0:  # NaN fails too
        raise LeakwattError("--min-confidence must be between 0 and 1")
    if args.jobs < 0:
        raise LeakwattError("--jobs must be >= 0")
    return Options(
        settings=settings, codes=codes, exclude=exclude,
        force_exclude=bool(_given(getattr(args, "force_exclude", None), settings.force_exclude)),
        per_file_ignores=per_file, min_confidence=min_conf, file_budget=budget,
        file_memory=memory, max_bytes=max_kb * 1024,
        imr_straight_line_in_tests=bool(_given(getattr(args, "imr_straight_line_in_tests", None),
                                               settings.imr_straight_line_in_tests)))


def _in_tests_hidden(opts: Options, root: Path) -> Callable[[Finding], bool]:
    """True for an IMR ``straight-line`` finding in test code, left out by default: a test
    builds a fresh model per case on purpose (``imr-straight-line-in-tests`` reports them)."""
    def hidden(f: Finding) -> bool:
        return (not opts.imr_straight_line_in_tests and f.rule == "IMR"
                and f.variant == "straight-line" and is_test_file(f.path, root))
    return hidden


def run(args: argparse.Namespace) -> int:
    out: TextIO = getattr(args, "stdout", None) or sys.stdout
    err: TextIO = getattr(args, "stderr", None) or sys.stderr
    silent = bool(getattr(args, "silent", False))
    quiet = silent or bool(getattr(args, "quiet", False))
    verbose = bool(getattr(args, "verbose", False))
    if silent:
        out = io.StringIO()
    note: TextIO = io.StringIO() if quiet else err  # notes, warnings, summaries
    try:
        opts = resolve_options(args)
        args.jobs = cap_jobs(args.jobs, "--jobs", note)
        paths = list(args.paths)
        root = opts.settings.root
        if opts.force_exclude:
            paths = [p for p in paths if not excluded(p, opts.exclude, root)]
        if verbose:
            where = opts.settings.path or "none found (built-in defaults)"
            print(f"leakwatt: configuration: {where}", file=note)
        budget = opts.file_budget or None
        memory_mb = opts.file_memory or None
        exclude = ((lambda p: matches(p, opts.exclude, root)) if opts.exclude else None)
        report = scan_paths(paths, select=opts.codes, jobs=args.jobs, cache_dir=args.cache_dir,
                            max_bytes=opts.max_bytes, budget_s=budget, memory_mb=memory_mb,
                            exclude=exclude) if paths else ScanReport()
    except LeakwattError as exc:
        return _error(str(exc), err)

    test_root = root if opts.settings.path is not None else Path(sarif_root(args.paths))
    hidden = _in_tests_hidden(opts, test_root)

    def keep(f: Finding) -> bool:
        if f.confidence < opts.min_confidence or hidden(f):
            return False
        return not (opts.per_file_ignores
                    and f.rule in ignored_rules(f.path, opts.per_file_ignores, root))

    in_tests = sum(1 for f in report.findings if f.confidence >= opts.min_confidence
                   and hidden(f))
    report.findings = [f for f in report.findings if keep(f)]
    nothing = report.files_scanned == 0 and not report.errors and not report.skipped
    if nothing:
        print("leakwatt: warning: No Python files found under the given path(s)", file=note)
    if in_tests and verbose:
        print(f"leakwatt: {_count(in_tests, 'IMR straight-line finding')} in test files not "
              "reported (imr-straight-line-in-tests = true reports them)", file=note)

    changed: dict[str, set[str]] = {}
    if args.fix or args.diff:
        changed, fixed = _apply_fixes(report, opts.codes, keep, write=args.fix and not args.diff,
                                      out=out if args.diff else None, max_bytes=opts.max_bytes)
        notebooks = sorted({f.path for f in report.findings if f.cell is not None})
        if notebooks:
            print(f"leakwatt: notebooks are not fixed ({len(notebooks)} with findings: "
                  f"{', '.join(map(shown, notebooks))})", file=note)
        if args.diff:
            print(f"leakwatt: would fix {_count(fixed, 'finding')} in "
                  f"{_count(len(changed), 'file')}", file=note)
        elif changed:
            # Each fixed file is rescanned once, under the first of its names; what was found
            # under its other names (a symlink, ./a.py) is not reported again.
            aliases = set().union(*changed.values())
            rescanned = scan_paths(sorted(changed), select=opts.codes, jobs=1,
                                   max_bytes=opts.max_bytes, budget_s=budget,
                                   memory_mb=memory_mb)
            rest = [f for f in report.findings if f.path not in aliases]
            report.findings = rest + [f for f in rescanned.findings if keep(f)]
        if args.fix and not args.diff:
            print(f"leakwatt: fixed {_count(fixed, 'finding')} in "
                  f"{_count(len(changed), 'file')}", file=note)

    try:
        if args.diff:
            for e in report.errors:
                print(f"{shown(e['path'])}: error: {shown(e['error'])}", file=err if not silent
                      else out)
        elif getattr(args, "statistics", False):
            _print_statistics(report, args.format, out)
        elif args.format == "json":
            data = report.to_dict()
            for finding in data["findings"]:
                costs.annotate(finding)  # `cost` (or null) and `cost_reason`
            json.dump(data, out, indent=2)
            out.write("\n")
        elif args.format == "sarif":
            json.dump(to_sarif(report, opts.codes, sarif_root(args.paths)), out, indent=2)
            out.write("\n")
        elif not nothing:
            _print_text(report, out, err if not silent else out, note, verbose)
        out.flush()
    except OSError as exc:
        return _output_failed(exc, out, err)
    if args.diff:
        return 1 if changed or report.errors else 0
    return 1 if report.findings or report.errors else 0


def _output_failed(exc: OSError, out: TextIO, err: TextIO) -> int:
    """The exit status (and one line) for output that could not be written: quiet for a
    closed pipe, as Unix tools are; one line for anything else (a full disk, ``/dev/full``).
    The unwritable stream is pointed at ``/dev/null`` so that Python's own flush at exit
    does not print a traceback of the same error."""
    for stream in (out, err):
        try:
            fd = stream.fileno()
        except (OSError, ValueError, AttributeError):
            continue
        try:
            stream.flush()
        except OSError:
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, fd)
                os.close(devnull)
    if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
        return EXIT_BROKEN_PIPE
    with contextlib.suppress(OSError):
        print(f"leakwatt: error: cannot write the output: {exc.strerror or exc}", file=err)
        err.flush()
    return EXIT_OUTPUT_ERROR



def _print_text(report: ScanReport, out: TextIO, err: TextIO, note: TextIO,
                verbose: bool = False) -> None:
    """Findings on ``out``; unscannable files on ``err``; skipped files and the summary on
    ``note`` (generated files in one line unless ``verbose``)."""
    for f in sorted(report.findings, key=lambda f: (f.path, f.cell or 0, f.line, f.col)):
        where = f"{shown(f.path)}:{f.line}:{f.col}" if f.cell is None else \
            f"{shown(f.path)}:cell {f.cell}:{f.line}:{f.col}"
        print(f"{where}: {f.rule} {f.message} [{f.variant}, confidence {f.confidence:.2f}]",
              file=out)
        print(f"  = {costs.finding_text(f.rule, f.variant)}", file=out)
    for e in report.errors:
        print(f"{shown(e['path'])}: error: {shown(e['error'])}", file=err)
    generated = [s for s in report.skipped if s["reason"] in GENERATED_REASONS]
    for s in report.skipped:
        if verbose or s["reason"] not in GENERATED_REASONS:
            print(f"{shown(s['path'])}: skipped: {shown(s['reason'])}", file=note)
    if generated and not verbose:
        print(f"leakwatt: skipped {_count(len(generated), 'generated file')} "
              "(--verbose lists them)", file=note)
    for n in report.notes:  # read as Python 2 (or with tabs expanded), and scanned
        print(f"{shown(n['path'])}: note: {shown(n['note'])}", file=note)
    print(f"leakwatt: {len(report.findings)} finding(s) in {report.files_scanned} file(s), "
          f"{len(report.errors)} error(s), {len(report.skipped)} skipped", file=note)


def statistics(report: ScanReport) -> list[dict[str, Any]]:
    """Findings per rule and variant, most frequent first (then by rule and variant), as
    ruff's ``--statistics``."""
    counts = Counter((f.rule, f.variant) for f in report.findings)
    fixable = set(_fixable())
    return [{"rule": rule, "variant": variant, "count": n, "name": RULES[rule].NAME,
             "rule_has_autofix": rule in fixable}
            for (rule, variant), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def _print_statistics(report: ScanReport, fmt: str, out: TextIO) -> None:
    rows = statistics(report)
    if fmt == "json":
        json.dump(rows, out, indent=2)
        out.write("\n")
        return
    if not rows:
        return
    width = max(len(str(r["count"])) for r in rows)
    vwidth = max(len(r["variant"]) for r in rows)
    for r in rows:
        print(f"{r['count']:>{width}}\t{r['rule']}\t{r['variant']:<{vwidth}}\t{r['name']}",
              file=out)



def shown(text: str) -> str:
    """``text`` (a file name, an error) safe for a terminal line: control characters (a
    newline that would forge a finding line, an ANSI escape) and other unprintable ones are
    written as Python escapes (``\\n``, ``\\x1b``); every printable character, accented
    ones included, is kept."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii")
                       if ord(ch) > 0xFF or ch in "\n\r\t" else f"\\x{ord(ch):02x}")
    return "".join(out)


class FixError(LeakwattError):
    """A file the autofix may not or could not write (the reason, one line)."""


def _apply_fixes(report: ScanReport, codes: list[str], keep: Callable[[Finding], bool],
                 write: bool, out: TextIO | None, max_bytes: int = DEFAULT_MAX_BYTES
                 ) -> tuple[dict[str, set[str]], int]:
    """Fix (``write``) or diff (``out``) the findings ``keep`` accepts; a file that cannot be
    fixed becomes an error row of ``report`` and the rest are still fixed.

    A file given under several names (a symlink, ``./a.py`` and ``a.py``, a hard link) is
    fixed and diffed once, under the first of its names. Returns, per file changed, that name
    -> all the names it was given under; and how many findings the changes fix.
    """
    paths = sorted({f.path for f in report.findings if f.cell is None})
    names: dict[tuple[int, int] | str, list[str]] = {}
    for path in paths:
        names.setdefault(_identity(path), []).append(path)
    changed: dict[str, set[str]] = {}
    fixed = 0
    for aliases in names.values():
        path = aliases[0]
        try:
            data = read_regular(path, max_bytes)
            encoding = source_encoding(data)
            source = data.decode(encoding)
        except (ReadError, SyntaxError, LookupError, UnicodeDecodeError):
            continue  # the scan could not read it either: already in errors
        shape = pathological(source)  # the fix parses the whole file, in this process
        if shape is not None:
            report.errors.append({"path": path, "error": f"not fixed: {shape}"})
            continue
        supp = suppressions(source)
        try:
            new, done = fix_source(source, path, codes, keep=lambda f, s=supp: (  # type: ignore[misc]
                keep(f) and not is_suppressed(f, s)))
        except Exception:  # noqa: BLE001 - unparsable files are already in errors
            continue
        if new == source:
            continue
        if out is not None:
            out.writelines(difflib.unified_diff(
                source.splitlines(keepends=True), new.splitlines(keepends=True),
                fromfile=f"a/{shown(path)}", tofile=f"b/{shown(path)}"))
        if write:
            try:
                write_fixed(path, new, encoding, data)
            except FixError as exc:
                report.errors.append({"path": path, "error": f"not fixed: {exc}"})
                continue
        changed[path] = set(aliases)
        fixed += len(done)
    return changed, fixed


def _identity(path: str) -> tuple[int, int] | str:
    """What makes two names one file: device and inode (its real path when it cannot be
    stat'ed)."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return (st.st_dev, st.st_ino)


def write_fixed(path: str | os.PathLike[str], text: str, encoding: str, old: bytes) -> None:
    """Write the fixed ``text`` over ``path`` so that no failure can damage the file.

    ``encoding`` is the one the file was read with (``utf-8-sig`` keeps a BOM) and ``old`` its
    bytes then: a file changed since is not overwritten. The new bytes go to a temporary file
    in the file's own folder, are fsync'ed and read back, and the temporary file is renamed
    over the target (a symlink's target: the link stays a link), with the target's mode and
    owner. A file with several hard links cannot be renamed over without splitting them; it is
    rewritten in place, see :func:`_rewrite_in_place`. Every failure (no space, a read-only
    file or folder, a file changed meanwhile) is a :class:`FixError` and leaves the file as it
    was, byte for byte.
    """
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError as exc:
        raise FixError(f"cannot stat: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise FixError("not a regular file")
    if not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(
            real, os.W_OK):
        raise FixError("read-only file (make it writable to fix it)")
    try:
        payload = _encode_like(text, encoding, old)
    except UnicodeEncodeError as exc:
        raise FixError(f"the fix cannot be written in the file's encoding {encoding}: "
                       f"{exc.reason}") from None
    folder = os.path.dirname(real) or "."
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".leakwatt-fix-", suffix=".tmp")
    except OSError as exc:
        raise FixError(f"cannot write beside it in {folder}: {exc.strerror or exc}") from None
    renamed = False
    try:
        try:
            _write_all(fd, payload)
            os.fsync(fd)
            if _read_all(tmp) != payload:
                raise FixError("the temporary copy did not read back intact; not written")
            if st.st_nlink > 1:
                os.close(fd)
                fd = -1
                os.unlink(tmp)  # frees the room the in-place rewrite needs
                tmp = ""
                _rewrite_in_place(real, payload, old)
                return
            with contextlib.suppress(OSError):  # keep mode and owner (chown: root only)
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
                os.fchown(fd, st.st_uid, st.st_gid)
            os.close(fd)
            fd = -1
            if _read_all(real) != old:
                raise FixError("changed while it was being fixed; not written")
            os.replace(tmp, real)
            renamed = True
            _fsync_dir(folder)
        except OSError as exc:
            raise FixError(f"cannot write: {exc.strerror or exc}") from None
    finally:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        if tmp and not renamed:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _encode_like(text: str, encoding: str, old: bytes) -> bytes:
    """``text`` in ``encoding``; a UTF-16/32 file keeps its own BOM and byte order (the
    ``utf-16`` codec would write the machine's)."""
    if wide_bom(old) is None:
        return text.encode(encoding)
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
                       (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if old.startswith(bom):
            return bom + text.encode(codec)
    return text.encode(encoding)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_all(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _fsync_dir(folder: str) -> None:
    """Make the rename durable (best effort: not every platform can open a folder)."""
    with contextlib.suppress(OSError):
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _rewrite_in_place(real: str, payload: bytes, old: bytes) -> None:
    """Rewrite a hard-linked file in place without ever leaving it damaged.

    The room is claimed first: the part of ``payload`` beyond the old length is written past
    the old end (on ENOSPC the file is truncated back to its old length, i.e. unchanged); only
    then is the head overwritten, which reuses blocks the file already holds. Should that still
    fail, the old bytes are put back before the error is raised.
    """
    fd = os.open(real, os.O_RDWR)
    try:
        if _read_fd(fd) != old:
            raise FixError("changed while it was being fixed; not written")
        if len(payload) > len(old):
            try:
                os.lseek(fd, len(old), os.SEEK_SET)
                _write_all(fd, payload[len(old):])
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, len(old))
                raise
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            _write_all(fd, payload[:len(old)] if len(payload) > len(old) else payload)
            os.ftruncate(fd, len(payload))
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.lseek(fd, 0, os.SEEK_SET)
                _write_all(fd, old)
                os.ftruncate(fd, len(old))
                os.fsync(fd)
            raise
    finally:
        os.close(fd)


def _read_fd(fd: int) -> bytes:
    chunks = []
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def sarif_name(cls: type[Rule]) -> str:
    """A SARIF rule name: the rule's NAME in PascalCase (``DatasetIteratorRetention``)."""
    return "".join(w[:1].upper() + w[1:] for w in re.split(r"[^0-9A-Za-z]+", cls.NAME) if w)


def project_url() -> str | None:
    """The repository URL the installed distribution declares (``[project.urls]`` in
    pyproject.toml: ``Repository``, else ``Source`` or ``Homepage``), or None."""
    try:
        entries = metadata.metadata("leakwatt").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None
    urls = {}
    for entry in entries:
        label, _, url = entry.partition(",")
        urls[label.strip().lower()] = url.strip()
    for label in ("repository", "source", "homepage"):
        if urls.get(label, "").startswith(("https://", "http://")):
            return urls[label].rstrip("/")
    return None


def help_uri(cls: type[Rule], base: str | None) -> str | None:
    """Absolute URL of a rule's section of docs/rules.md in the project's repository, or None
    when the project declares no repository URL (SARIF readers then show the ``help`` text,
    which carries the whole catalogue entry; a relative URI would not resolve for them)."""
    return f"{base}/blob/main/docs/rules.md#{anchor(cls)}" if base else None


def _sarif_rule(code: str, cls: type[Rule], base: str | None) -> dict[str, Any]:
    """A SARIF reportingDescriptor from the rule class: ``fullDescription`` is the first
    paragraph of its docstring, ``help`` its message and whole docstring (text) and its
    catalogue entry (markdown: what it finds, variants, examples, the autofix), as
    ``leakwatt rules ID`` prints it."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    first = " ".join(doc.split("\n\n")[0].split()) or cls.MESSAGE
    rule: dict[str, Any] = {
        "id": code, "name": sarif_name(cls),
        "shortDescription": {"text": cls.NAME},
        "fullDescription": {"text": first},
        "help": {"text": f"{cls.MESSAGE}\n\n{doc}", "markdown": rule_markdown(code)},
        "defaultConfiguration": {"level": "warning"}}
    uri = help_uri(cls, base)
    if uri is not None:
        rule["helpUri"] = uri
    return rule


def sarif_root(paths: Sequence[str | os.PathLike[str]]) -> str:
    """The folder SARIF locations are relative to: the deepest folder holding every scanned
    path (a folder given, or the folder of a file given)."""
    folders = [os.path.abspath(p) if os.path.isdir(p) else os.path.dirname(os.path.abspath(p))
               for p in paths]
    return os.path.commonpath(folders) if folders else os.getcwd()


def _artifact(path: str, root: str) -> dict[str, Any]:
    """A SARIF artifactLocation: the path relative to ``root`` (``%SRCROOT%``), its segments
    percent-encoded (RFC 3986), never climbing out of the root; a file outside the root (it
    cannot be, for a root from :func:`sarif_root`) is given as an absolute ``file:`` URI."""
    full = os.path.abspath(path)
    rel = os.path.relpath(full, root)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        return {"uri": Path(full).as_uri()}
    return {"uri": urllib.parse.quote(Path(rel).as_posix(), safe="/"), "uriBaseId": "%SRCROOT%"}


def to_sarif(report: ScanReport, codes: list[str] | None = None,
             root: str | None = None) -> dict[str, Any]:
    """A SARIF 2.1.0 log of the report (one run, one result per finding). Locations are
    relative to ``root`` (default: the deepest folder holding every file in the report),
    declared as ``originalUriBaseIds["%SRCROOT%"]``."""
    if root is None:
        root = sarif_root([f.path for f in report.findings]
                          + [e["path"] for e in report.errors] or ["."])
    root = os.path.abspath(root)
    base = project_url()
    rules = [_sarif_rule(code, cls, base)
             for code, cls in RULES.items() if codes is None or code in codes]
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    results = []
    for f in report.findings:
        results.append({
            "ruleId": f.rule,
            **({"ruleIndex": index[f.rule]} if f.rule in index else {}),
            "level": "warning",
            "message": {"text": f"{f.message} [{f.variant}]"},
            "locations": [{"physicalLocation": {
                "artifactLocation": _artifact(f.path, root),
                "region": {"startLine": f.line, "startColumn": f.col,
                           "snippet": {"text": f.snippet}}}}],
            "properties": {"variant": f.variant, "confidence": f.confidence,
                           "function": f.function, "cell": f.cell,
                           **dict(zip(("cost", "costReason"),
                                      costs.cost_and_reason(f.rule, f.variant), strict=True))},
        })
    notifications = [{"level": "error", "message": {"text": e["error"]},
                      "locations": [{"physicalLocation": {
                          "artifactLocation": _artifact(e["path"], root)}}]}
                     for e in report.errors]
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "leakwatt", "version": package_version(),
                                "informationUri": "https://arxiv.org/abs/2606.19799",
                                "rules": rules,
                                "properties": {"detectorVersion": DETECTOR_VERSION}}},
            "columnKind": "unicodeCodePoints",
            "originalUriBaseIds": {"%SRCROOT%": {"uri": Path(root).as_uri().rstrip("/") + "/"}},
            "results": results,
            "invocations": [{"executionSuccessful": True,
                             "toolExecutionNotifications": notifications}],
        }],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leakwatt scan",
                                     description="Find TensorFlow/Keras resource-leak smells.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
