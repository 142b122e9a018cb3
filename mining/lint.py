"""``leakwatt scan``: the linter front end (text, JSON, SARIF output; autofix and diff).

Exit codes: 0 no findings, 1 findings, 2 usage error (unknown rule id, missing path). Files that
cannot be parsed are listed under ``errors`` and do not change the exit code.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import json
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from leakwatt.common import LeakwattError, atomic_write_text
from leakwatt.mining.rules import RULES, Rule, fix_source, parse_rule_list, select_rules
from leakwatt.mining.rules.catalogue import anchor
from leakwatt.mining.scan import (
    DETECTOR_VERSION,
    ScanReport,
    is_suppressed,
    scan_paths,
    suppressions,
)


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
        codes = select_rules(select, ignore)
        if args.jobs < 0:
            raise LeakwattError("--jobs must be >= 0")
        if not 0.0 <= args.min_confidence <= 1.0:
            raise LeakwattError("--min-confidence must be between 0 and 1")
        for p in args.paths:
            if not Path(p).exists():
                raise LeakwattError(f"no such file or directory: {p}")
        report = scan_paths(args.paths, select=codes, jobs=args.jobs, cache_dir=args.cache_dir)
    except LeakwattError as exc:
        return _error(str(exc), err)
    report.findings = [f for f in report.findings if f.confidence >= args.min_confidence]

    if args.fix or args.diff:
        fixed_paths = _apply_fixes(report, codes, args.min_confidence, write=args.fix,
                                   out=out if args.diff else None)
        if args.fix and fixed_paths:
            rescanned = scan_paths(sorted(fixed_paths), select=codes, jobs=1)
            rest = [f for f in report.findings if f.path not in fixed_paths]
            report.findings = rest + [f for f in rescanned.findings
                                      if f.confidence >= args.min_confidence]
            print(f"leakwatt: fixed {len(fixed_paths)} file(s)", file=err)

    if args.format == "json":
        json.dump(report.to_dict(), out, indent=2)
        out.write("\n")
    elif args.format == "sarif":
        json.dump(to_sarif(report, codes), out, indent=2)
        out.write("\n")
    elif not args.diff:
        _print_text(report, out, err)
    return 1 if report.findings else 0


def _print_text(report: ScanReport, out: TextIO, err: TextIO) -> None:
    for f in sorted(report.findings, key=lambda f: (f.path, f.cell or 0, f.line, f.col)):
        where = f"{f.path}:{f.line}:{f.col}" if f.cell is None else \
            f"{f.path}:cell {f.cell}:{f.line}:{f.col}"
        print(f"{where}: {f.rule} {f.message} [{f.variant}, confidence {f.confidence:.2f}]",
              file=out)
    for e in report.errors:
        print(f"{e['path']}: error: {e['error']}", file=err)
    for s in report.skipped:
        print(f"{s['path']}: skipped: {s['reason']}", file=err)
    print(f"leakwatt: {len(report.findings)} finding(s) in {report.files_scanned} file(s), "
          f"{len(report.errors)} error(s), {len(report.skipped)} skipped", file=err)


def _apply_fixes(report: ScanReport, codes: list[str], min_conf: float, write: bool,
                 out: TextIO | None) -> set[str]:
    paths = sorted({f.path for f in report.findings if f.cell is None})
    changed: set[str] = set()
    for path in paths:
        try:
            source = Path(path).read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError):
            continue
        supp = suppressions(source)
        try:
            new, _ = fix_source(source, path, codes, keep=lambda f, s=supp: (  # type: ignore[misc]
                f.confidence >= min_conf and not is_suppressed(f, s)))
        except Exception:  # noqa: BLE001 - unparsable files are already in errors
            continue
        if new == source:
            continue
        changed.add(path)
        if out is not None:
            out.writelines(difflib.unified_diff(
                source.splitlines(keepends=True), new.splitlines(keepends=True),
                fromfile=f"a/{path}", tofile=f"b/{path}"))
        if write:
            atomic_write_text(path, new)
    return changed


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


def to_sarif(report: ScanReport, codes: list[str] | None = None) -> dict[str, Any]:
    """A SARIF 2.1.0 log of the report (one run, one result per finding)."""
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
                "artifactLocation": {"uri": Path(f.path).as_posix()},
                "region": {"startLine": f.line, "startColumn": f.col,
                           "snippet": {"text": f.snippet}}}}],
            "properties": {"variant": f.variant, "confidence": f.confidence,
                           "function": f.function, "cell": f.cell},
        })
    notifications = [{"level": "error", "message": {"text": e["error"]},
                      "locations": [{"physicalLocation": {
                          "artifactLocation": {"uri": Path(e["path"]).as_posix()}}}]}
                     for e in report.errors]
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "leakwatt", "version": DETECTOR_VERSION,
                                "informationUri": "https://arxiv.org/abs/2606.19799",
                                "rules": rules}},
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
