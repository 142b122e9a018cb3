"""``leakwatt scan``: the linter front end (text, JSON, SARIF output; autofix and diff).

Exit codes, as ruff's: 0 nothing found; 1 findings, or files that could not be scanned or fixed
(each listed under ``errors``); 2 usage error (unknown rule id, empty ``--select``, missing
path). The output itself failing is neither: 141 when the reader closed the pipe
(``leakwatt scan | head -1``; quiet, as a Unix tool killed by SIGPIPE), 74 (``EX_IOERR``) with
one line on stderr when it cannot be written (``> /dev/full``, a full disk).

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
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import difflib
import errno
import inspect
import json
import math
import os
import re
import stat
import sys
import tempfile
import urllib.parse
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from leakwatt.common import LeakwattError, cap_jobs
from leakwatt.mining.guards import pathological
from leakwatt.mining.reading import ReadError, read_regular, source_encoding, wide_bom
from leakwatt.mining.rules import RULES, Rule, fix_source, parse_rule_list, select_rules
from leakwatt.mining.rules.catalogue import anchor
from leakwatt.mining.sandbox import DEFAULT_MEMORY_MB
from leakwatt.mining.scan import (
    DEFAULT_FILE_BUDGET_S,
    DEFAULT_MAX_BYTES,
    DETECTOR_VERSION,
    ScanReport,
    is_suppressed,
    scan_paths,
    suppressions,
)

EXIT_CODES = ("exit status: 0 nothing found; 1 findings, or files that could not be scanned "
              "or fixed; 2 usage error (as ruff); 74 the output could not be written; "
              "141 the output pipe was closed")
#: The output could not be written (sysexits.h ``EX_IOERR``): not "findings" (1).
EXIT_OUTPUT_ERROR = 74
#: The reader closed the pipe: what a shell reports for a tool ended by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="Python files, .ipynb notebooks or folders to scan")
    parser.add_argument("--format", choices=("text", "json", "sarif"), default="text",
                        help="output format (default: text)")
    parser.add_argument("--select", default=None, metavar="RULES",
                        help=f"comma-separated rule ids to run (default: all: {','.join(RULES)})")
    parser.add_argument("--ignore", default=None, metavar="RULES",
                        help="comma-separated rule ids to skip")
    parser.add_argument("--jobs", type=int, default=0, metavar="N",
                        help="worker processes (default 0: all cores)")
    parser.add_argument("--min-confidence", type=float, default=0.0, metavar="X",
                        help="only report findings with confidence >= X (0..1)")
    parser.add_argument("--cache-dir", default=None, metavar="DIR",
                        help="keep findings cached by file-content hash in DIR")
    parser.add_argument("--fix", action="store_true",
                        help=f"rewrite files with the safe autofixes ({', '.join(_fixable())})")
    parser.add_argument("--diff", action="store_true",
                        help="print the autofixes as a unified diff without writing")
    parser.add_argument("--file-budget", type=float, default=DEFAULT_FILE_BUDGET_S,
                        metavar="SECONDS",
                        help="a file whose scan takes longer becomes an error "
                             f"(default {DEFAULT_FILE_BUDGET_S:g}; 0: no limit)")
    parser.add_argument("--file-memory", type=int, default=DEFAULT_MEMORY_MB, metavar="MIB",
                        help="a file whose scan needs more memory becomes an error "
                             f"(default {DEFAULT_MEMORY_MB}; 0: no limit)")


def _fixable() -> list[str]:
    """Ids of the rules that offer an autofix (an ``Invalid`` example with a replacement)."""
    return [code for code, cls in RULES.items()
            if any(i.expected_replacement for i in cls.INVALID)]


def _error(msg: str, stream: TextIO) -> int:
    print(f"leakwatt: error: {msg}", file=stream)
    return 2


def run(args: argparse.Namespace) -> int:
    out: TextIO = getattr(args, "stdout", None) or sys.stdout
    err: TextIO = getattr(args, "stderr", None) or sys.stderr
    try:
        select = parse_rule_list(args.select)
        ignore = parse_rule_list(args.ignore)
        if select is not None and not select:
            raise LeakwattError("--select names no rule (give rule ids, or leave it out)")
        codes = select_rules(select, ignore)
        if not codes:
            raise LeakwattError("no rule left to run after --ignore")
        if not math.isfinite(args.file_budget) or args.file_budget < 0:
            raise LeakwattError(f"--file-budget must be a finite number >= 0 (0: no limit), "
                                f"got {args.file_budget}")
        if args.jobs < 0:
            raise LeakwattError("--jobs must be >= 0")
        if getattr(args, "file_memory", DEFAULT_MEMORY_MB) < 0:
            raise LeakwattError("--file-memory must be >= 0")
        if not 0.0 <= args.min_confidence <= 1.0:  # NaN fails too
            raise LeakwattError("--min-confidence must be between 0 and 1")
        args.jobs = cap_jobs(args.jobs, "--jobs", err)
        for p in args.paths:
            if not os.path.lexists(p):
                raise LeakwattError(f"no such file or directory: {p}")
        memory_mb = getattr(args, "file_memory", DEFAULT_MEMORY_MB) or None
        report = scan_paths(args.paths, select=codes, jobs=args.jobs, cache_dir=args.cache_dir,
                            budget_s=args.file_budget or None, memory_mb=memory_mb)
    except LeakwattError as exc:
        return _error(str(exc), err)
    report.findings = [f for f in report.findings if f.confidence >= args.min_confidence]

    if args.fix or args.diff:
        fixed_paths = _apply_fixes(report, codes, args.min_confidence, write=args.fix,
                                   out=out if args.diff else None)
        notebooks = sorted({f.path for f in report.findings if f.cell is not None})
        if notebooks:
            print(f"leakwatt: notebooks are not fixed ({len(notebooks)} with findings: "
                  f"{', '.join(map(shown, notebooks))})", file=err)
        if args.fix and fixed_paths:
            # Each fixed file is rescanned once, under the first of its names; what was found
            # under its other names (a symlink, ./a.py) is not reported again.
            aliases = set().union(*fixed_paths.values())
            rescanned = scan_paths(sorted(fixed_paths), select=codes, jobs=1,
                                   budget_s=args.file_budget or None, memory_mb=memory_mb)
            rest = [f for f in report.findings if f.path not in aliases]
            report.findings = rest + [f for f in rescanned.findings
                                      if f.confidence >= args.min_confidence]
            print(f"leakwatt: fixed {len(fixed_paths)} file(s)", file=err)

    try:
        if args.format == "json":
            json.dump(report.to_dict(), out, indent=2)
            out.write("\n")
        elif args.format == "sarif":
            json.dump(to_sarif(report, codes, sarif_root(args.paths)), out, indent=2)
            out.write("\n")
        elif not args.diff:
            _print_text(report, out, err)
        elif report.errors:
            for e in report.errors:
                print(f"{shown(e['path'])}: error: {shown(e['error'])}", file=err)
        out.flush()
    except OSError as exc:
        return _output_failed(exc, out, err)
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


def _print_text(report: ScanReport, out: TextIO, err: TextIO) -> None:
    for f in sorted(report.findings, key=lambda f: (f.path, f.cell or 0, f.line, f.col)):
        where = f"{shown(f.path)}:{f.line}:{f.col}" if f.cell is None else \
            f"{shown(f.path)}:cell {f.cell}:{f.line}:{f.col}"
        print(f"{where}: {f.rule} {f.message} [{f.variant}, confidence {f.confidence:.2f}]",
              file=out)
    for e in report.errors:
        print(f"{shown(e['path'])}: error: {shown(e['error'])}", file=err)
    for s in report.skipped:
        print(f"{shown(s['path'])}: skipped: {shown(s['reason'])}", file=err)
    for n in report.notes:  # read as Python 2 (or with tabs expanded), and scanned
        print(f"{shown(n['path'])}: note: {shown(n['note'])}", file=err)
    print(f"leakwatt: {len(report.findings)} finding(s) in {report.files_scanned} file(s), "
          f"{len(report.errors)} error(s), {len(report.skipped)} skipped", file=err)


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


def _apply_fixes(report: ScanReport, codes: list[str], min_conf: float, write: bool,
                 out: TextIO | None) -> dict[str, set[str]]:
    """Fix (``write``) or diff (``out``) the files with findings; a file that cannot be fixed
    becomes an error row of ``report`` and the rest are still fixed.

    A file given under several names (a symlink, ``./a.py`` and ``a.py``, a hard link) is
    fixed and diffed once, under the first of its names. Returns, per file changed, that name
    -> all the names it was given under.
    """
    paths = sorted({f.path for f in report.findings if f.cell is None})
    names: dict[tuple[int, int] | str, list[str]] = {}
    for path in paths:
        names.setdefault(_identity(path), []).append(path)
    changed: dict[str, set[str]] = {}
    for aliases in names.values():
        path = aliases[0]
        try:
            data = read_regular(path, DEFAULT_MAX_BYTES)
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
            new, _ = fix_source(source, path, codes, keep=lambda f, s=supp: (  # type: ignore[misc]
                f.confidence >= min_conf and not is_suppressed(f, s)))
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
    return changed


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
    doc = inspect.cleandoc(cls.__doc__ or "")
    rule: dict[str, Any] = {
        "id": code, "name": sarif_name(cls),
        "shortDescription": {"text": cls.NAME},
        "fullDescription": {"text": cls.MESSAGE},
        "help": {"text": f"{cls.MESSAGE}\n\n{doc}",
                 "markdown": f"**{cls.MESSAGE}**\n\n{doc}"},
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
    results = []
    for f in report.findings:
        results.append({
            "ruleId": f.rule,
            "level": "warning",
            "message": {"text": f"{f.message} [{f.variant}]"},
            "locations": [{"physicalLocation": {
                "artifactLocation": _artifact(f.path, root),
                "region": {"startLine": f.line, "startColumn": f.col,
                           "snippet": {"text": f.snippet}}}}],
            "properties": {"variant": f.variant, "confidence": f.confidence,
                           "function": f.function, "cell": f.cell},
        })
    notifications = [{"level": "error", "message": {"text": e["error"]},
                      "locations": [{"physicalLocation": {
                          "artifactLocation": _artifact(e["path"], root)}}]}
                     for e in report.errors]
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "leakwatt", "version": DETECTOR_VERSION,
                                "informationUri": "https://arxiv.org/abs/2606.19799",
                                "rules": rules}},
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
