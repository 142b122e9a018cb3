"""Rule registry and engine: run the registered rules over one parsed module.

``RULES`` maps rule ids to rule classes (one module per rule). ``check_module`` builds the
module index once, runs the selected rules and turns their reports into :class:`Finding`
objects with 1-based positions (computed only when something was found).
``catalogue_markdown()`` renders the rule catalogue (``docs/rules.md``) from the rule classes.
"""

from __future__ import annotations

import ast
import inspect
import warnings
from collections.abc import Callable, Iterable, Sequence

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider
from libcst.metadata.position_provider import PositionProvidingCodegenState

from leakwatt.common import LeakwattError
from leakwatt.mining.rules.base import Finding, Fix, Invalid, ModuleContext, Report, Rule, Valid
from leakwatt.mining.rules.dir import DatasetIteratorRetention
from leakwatt.mining.rules.imr import ImproperModelReuse
from leakwatt.mining.rules.us import UnclosedSession
from leakwatt.mining.rules.utr import UnreleasedTensorReference

RULES: dict[str, type[Rule]] = {
    cls.CODE: cls
    for cls in (ImproperModelReuse, UnreleasedTensorReference, DatasetIteratorRetention,
                UnclosedSession)
}

__all__ = ["RULES", "Finding", "Fix", "Invalid", "ModuleContext", "Report", "Rule", "Valid",
           "catalogue_markdown", "check_module", "fix_source", "parse_rule_list", "select_rules"]


def parse_rule_list(text: str | Iterable[str] | None) -> list[str] | None:
    """``"IMR,utr"`` or ``["IMR"]`` -> ``["IMR", "UTR"]``; unknown ids raise LeakwattError."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else [
        part for t in text for part in str(t).split(",")]
    codes = [c.strip().upper() for c in items if c.strip()]
    unknown = [c for c in codes if c not in RULES]
    if unknown:
        raise LeakwattError(f"unknown rule id(s) {', '.join(unknown)}; "
                            f"known: {', '.join(RULES)}")
    return codes


def select_rules(select: Iterable[str] | None = None,
                 ignore: Iterable[str] | None = None) -> list[str]:
    """Rule ids to run, in registry order."""
    chosen = parse_rule_list(list(select)) if select is not None else list(RULES)
    dropped = set(parse_rule_list(list(ignore)) or []) if ignore is not None else set()
    return [c for c in RULES if c in (chosen or []) and c not in dropped]


def check_module(module: cst.Module, path: str = "<string>",
                 rules: Sequence[str] | None = None, source: str | None = None
                 ) -> tuple[list[Finding], list[tuple[Finding, Fix]]]:
    """Run ``rules`` (ids; all when None) over a parsed module.

    Returns the findings and, for those with a safe rewrite, ``(finding, fix)`` pairs whose fix
    applies to this very ``module`` object (see :func:`leakwatt.mining.rules.fixes.apply_fixes`).
    ``source``, the text ``module`` was parsed from, lets positions be computed for the
    statements holding a finding only, instead of for the whole module.
    """
    ctx = ModuleContext(module, path)
    reports: list[tuple[str, Report]] = []
    for code in rules if rules is not None else list(RULES):
        rule = RULES[code]()
        for rep in rule.check(ctx):
            reports.append((code, rep))
    if not reports:
        return [], []
    positions = _positions(ctx, [rep.node for _, rep in reports], source)
    findings: list[Finding] = []
    fixes: list[tuple[Finding, Fix]] = []
    seen: set[tuple[str, int, int, str]] = set()
    for code, rep in reports:
        line, col = positions.get(id(rep.node), (1, 1))
        key = (code, line, col, rep.variant)
        if key in seen:
            continue
        seen.add(key)
        finding = Finding(
            rule=code, path=path, line=line, col=col,
            message=rep.message or RULES[code].MESSAGE, variant=rep.variant,
            confidence=round(rep.confidence, 2), function=rep.function,
            snippet=ctx.snippet(rep.stmt if rep.stmt is not None else rep.node),
            loop_kind=rep.loop_kind, model_api=rep.model_api, training_api=rep.training_api)
        findings.append(finding)
        if rep.fix is not None:
            fixes.append((finding, rep.fix))
    findings.sort(key=lambda f: (f.line, f.col, f.rule))
    return findings, fixes


def _positions(ctx: ModuleContext, nodes: list[cst.CSTNode], source: str | None
               ) -> dict[int, tuple[int, int]]:
    """1-based (line, column) of ``nodes``, keyed by ``id``.

    libcst's ``PositionProvider`` generates the code of the whole module. With the source at
    hand, only the smallest definition holding a node is generated: its top-level statement,
    or the method (or nested function) the indexer placed it in, each on its own with the
    indentation of its ``def`` line, and shifted to the line ``ast`` gives for that statement
    (libcst and ast both start a decorated definition at its ``def``/``class`` line).
    """
    module = ctx.module
    groups: dict[tuple[int, ...], list[cst.CSTNode]] = {}
    for node in nodes:
        path = ctx.top.get(id(node))
        if source is None or path is None or path[0] < 0:
            return _whole_module_positions(module, nodes)
        groups.setdefault(path, []).append(node)
    located = _locate(module, source, list(groups))
    if located is None:
        return _whole_module_positions(module, nodes)
    out: dict[int, tuple[int, int]] = {}
    for path, members in groups.items():
        stmt, line, indent = located[path]
        provider = PositionProvider()
        state = PositionProvidingCodegenState(
            default_indent=module.default_indent, default_newline=module.default_newline,
            provider=provider, indent_tokens=[indent] if indent else [])
        stmt._codegen(state)
        pos = provider._computed
        shift = line - pos[stmt].start.line
        for node in members:
            p = pos.get(node)
            if p is not None:
                out[id(node)] = (p.start.line + shift, p.start.column + 1)
    return out


def _whole_module_positions(module: cst.Module, nodes: list[cst.CSTNode]
                            ) -> dict[int, tuple[int, int]]:
    pos = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    return {id(n): (pos[n].start.line, pos[n].start.column + 1) for n in nodes if n in pos}


def _ast_index(body: Sequence[cst.BaseStatement], index: int) -> int:
    """Index in ``ast``'s statement list of the ``index``-th statement of a libcst body."""
    return sum(len(s.body) if isinstance(s, cst.SimpleStatementLine) else 1
               for s in body[:index])


def _locate(module: cst.Module, source: str, paths: list[tuple[int, ...]]
            ) -> dict[tuple[int, ...], tuple[cst.CSTNode, int, str]] | None:
    """For each path, its statement, the line ``ast`` gives it, and its ``def`` line's indent.

    None when ast and libcst disagree on the statements (the caller then falls back).
    """
    if "\r" in source and source.count("\r") != source.count("\r\n"):
        return None  # lone "\r" line ends: ast and a "\n" split disagree on line numbers
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            body = ast.parse(source).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if _ast_index(module.body, len(module.body)) != len(body):
        return None
    lines: list[str] | None = None
    out: dict[tuple[int, ...], tuple[cst.CSTNode, int, str]] = {}
    for path in paths:
        cst_body: Sequence[cst.BaseStatement] = module.body
        ast_body: list[ast.stmt] = body
        stmt: cst.CSTNode | None = None
        node: ast.stmt | None = None
        for depth, idx in enumerate(path):
            if depth:
                if not isinstance(stmt, cst.ClassDef | cst.FunctionDef) or not isinstance(
                        node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                    return None
                cst_body, ast_body = stmt.body.body, node.body  # type: ignore[assignment]
            k = _ast_index(cst_body, idx)
            if idx >= len(cst_body) or k >= len(ast_body):
                return None
            stmt, node = cst_body[idx], ast_body[k]
        assert stmt is not None and node is not None
        indent = ""
        if len(path) > 1:
            if getattr(stmt, "name", None) is None or stmt.name.value != getattr(  # type: ignore[attr-defined]
                    node, "name", None):
                return None
            if lines is None:
                lines = source.split("\n")
            indent = lines[node.lineno - 1][:node.col_offset]
            if indent.strip():
                return None
        out[path] = (stmt, node.lineno, indent)
    return out


def fix_source(source: str, path: str = "<string>", rules: Sequence[str] | None = None,
               keep: Callable[[Finding], bool] | None = None) -> tuple[str, list[Finding]]:
    """Apply the available autofixes (of findings ``keep`` accepts); new source, fixed findings."""
    from leakwatt.mining.rules.fixes import apply_fixes

    module = cst.parse_module(source)
    _, pairs = check_module(module, path, rules)
    pairs = [(f, fx) for f, fx in pairs if keep is None or keep(f)]
    if not pairs:
        return source, []
    new, _ = apply_fixes(module, [fx for _, fx in pairs])
    return new, [f for f, _ in pairs]


def catalogue_markdown() -> str:
    """The rule catalogue (``docs/rules.md``), generated from the rule classes."""
    out = ["# leakwatt rule catalogue", "",
           "Generated by `leakwatt.mining.rules.catalogue_markdown()` from the rule classes; "
           "regenerate with `python -m leakwatt.mining.rules > docs/rules.md`.", "",
           "| id | name | variants | autofix |", "|---|---|---|---|"]
    for code, cls in RULES.items():
        fixable = "yes" if any(i.expected_replacement for i in cls.INVALID) else "no"
        out.append(f"| {code} | {cls.NAME} | {', '.join(f'`{v}`' for v in cls.VARIANTS)} | "
                   f"{fixable} |")
    for code, cls in RULES.items():
        out += ["", f"## {code}: {cls.NAME}", "", inspect.cleandoc(cls.__doc__ or ""), "",
                f"Message: *{cls.MESSAGE}*", "", "Variants:", ""]
        out += [f"- `{v}`: {desc}" for v, desc in cls.VARIANTS.items()]
        first_bad = cls.INVALID[0] if cls.INVALID else None
        first_good = cls.VALID[1] if len(cls.VALID) > 1 else (cls.VALID[0] if cls.VALID else None)
        if first_bad is not None:
            out += ["", "Reported:", "", "```python", first_bad.code.rstrip(), "```"]
        if first_bad is not None and first_bad.expected_replacement:
            out += ["", "Autofix result:", "", "```python",
                    first_bad.expected_replacement.rstrip(), "```"]
        if first_good is not None:
            out += ["", "Not reported:", "", "```python", first_good.code.rstrip(), "```"]
    return "\n".join(out) + "\n"
