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

from mining.rules.base import Finding, Fix, Invalid, ModuleContext, Report, Rule, Valid
from mining.rules.dir import DatasetIteratorRetention
from mining.rules.imr import ImproperModelReuse
from mining.rules.us import UnclosedSession
from mining.rules.utr import UnreleasedTensorReference
from pipeline.common import LeakwattError

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
    applies to this very ``module`` object (see :func:`mining.rules.fixes.apply_fixes`).
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
    hand, only the top-level statements holding a node are generated, each on its own, and
    shifted to the line ``ast`` gives for that statement (libcst and ast both start a decorated
    definition at its ``def``/``class`` line; the statement's columns do not change).
    """
    module = ctx.module
    starts = _top_lines(module, source) if source is not None else None
    groups: dict[int, list[cst.CSTNode]] = {}
    for node in nodes:
        top = ctx.top.get(id(node), -1)
        if starts is None or top < 0:
            return _whole_module_positions(module, nodes)
        groups.setdefault(top, []).append(node)
    out: dict[int, tuple[int, int]] = {}
    for top, members in groups.items():
        stmt = module.body[top]
        mini = module.with_changes(header=(), body=(stmt,), footer=())
        pos = MetadataWrapper(mini, unsafe_skip_copy=True).resolve(PositionProvider)
        shift = starts[top] - pos[stmt].start.line
        for node in members:
            p = pos.get(node)
            if p is not None:
                out[id(node)] = (p.start.line + shift, p.start.column + 1)
    return out


def _whole_module_positions(module: cst.Module, nodes: list[cst.CSTNode]
                            ) -> dict[int, tuple[int, int]]:
    pos = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    return {id(n): (pos[n].start.line, pos[n].start.column + 1) for n in nodes if n in pos}


def _top_lines(module: cst.Module, source: str) -> list[int] | None:
    """The first line of each statement in ``module.body`` (None if ast disagrees)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            body = ast.parse(source).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    starts: list[int] = []
    k = 0
    for stmt in module.body:
        if k >= len(body):
            return None
        starts.append(body[k].lineno)
        k += len(stmt.body) if isinstance(stmt, cst.SimpleStatementLine) else 1
    return starts if k == len(body) else None


def fix_source(source: str, path: str = "<string>", rules: Sequence[str] | None = None,
               keep: Callable[[Finding], bool] | None = None) -> tuple[str, list[Finding]]:
    """Apply the available autofixes (of findings ``keep`` accepts); new source, fixed findings."""
    from mining.rules.fixes import apply_fixes

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
           "Generated by `mining.rules.catalogue_markdown()` from the rule classes; "
           "regenerate with `python -m mining.rules > docs/rules.md`.", "",
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
