"""The rule registry and the per-module engine.

``REGISTRY`` is the one place that lists the rules: adding a rule is one new module (a
:class:`Rule` subclass with its code, name, message, variants, seed words and examples) and one
line here. Everything else derives from it: ``RULES`` (id -> class), the ids ``--select``
accepts and the CLI help lists (:func:`rule_ids`), the params' ``mine.rules`` (``all`` by
default, validated here), the pre-filter's seed words (:mod:`leakwatt.mining.prefilter`), the
detector version the findings caches key on (:func:`detector_version`), the catalogue
``docs/rules.md`` (:mod:`leakwatt.mining.rules.catalogue`) and the example tests.

``check_module`` builds the module index once, runs the selected rules and turns their reports
into :class:`Finding` objects with 1-based positions (computed only when something was found).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import libcst as cst

from leakwatt.common import LeakwattError
from leakwatt.mining.rules.api import Finding, Fix, Invalid, Report, Rule, Seeds, Valid
from leakwatt.mining.rules.context import ModuleContext
from leakwatt.mining.rules.dir import DatasetIteratorRetention
from leakwatt.mining.rules.fastcst import node_positions
from leakwatt.mining.rules.fixes import apply_fixes
from leakwatt.mining.rules.gcb import GraphConstantBottleneck
from leakwatt.mining.rules.imr import ImproperModelReuse
from leakwatt.mining.rules.project import ProjectIndex, ProjectView
from leakwatt.mining.rules.uge import UnboundedGraphExpansion
from leakwatt.mining.rules.up import UnnecessaryParallelism
from leakwatt.mining.rules.us import UnclosedSession
from leakwatt.mining.rules.utr import UnreleasedTensorReference

#: Every rule, in report order. Adding a rule: one module, one line here (docs/rules.md).
REGISTRY: tuple[type[Rule], ...] = (
    ImproperModelReuse,
    UnreleasedTensorReference,
    DatasetIteratorRetention,
    UnclosedSession,
    UnboundedGraphExpansion,
    GraphConstantBottleneck,
    UnnecessaryParallelism,
)
#: Rule id -> rule class, derived from ``REGISTRY`` (tests may add a rule to it for a while).
RULES: dict[str, type[Rule]] = {cls.CODE: cls for cls in REGISTRY}
#: Bumped by hand when the engine (not a rule module) changes what it finds.
DETECTOR_BASE_VERSION = "1.4"
#: ``mine.rules`` / ``--select`` word for every registered rule.
ALL = "ALL"

__all__ = ["ALL", "REGISTRY", "RULES", "Finding", "Fix", "Invalid", "ModuleContext",
           "ProjectIndex", "ProjectView", "Report", "Rule", "Seeds", "Valid", "check_module",
           "detector_version", "fix_source", "parse_rule_list", "rule_ids", "select_rules"]


def rule_ids() -> list[str]:
    """The registered rule ids, in registry order."""
    return list(RULES)


def detector_version() -> str:
    """``<base>+<hash>``: the manual base version and a hash of the source of the rule package
    and of every registered rule's module, so that adding or changing a rule changes it (the
    findings caches key on it) without a manual bump."""
    return _version(tuple(RULES.items()))


@functools.lru_cache(maxsize=8)
def _version(rules: tuple[tuple[str, type[Rule]], ...]) -> str:
    files = {Path(__file__).parent / name for name in _PACKAGE_MODULES}
    files.update(Path(inspect.getfile(cls)) for _, cls in rules)
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    h.update(",".join(code for code, _ in rules).encode())
    return f"{DETECTOR_BASE_VERSION}+{h.hexdigest()[:12]}"


_PACKAGE_MODULES = sorted(p.name for p in Path(__file__).parent.glob("*.py"))


def parse_rule_list(text: str | Iterable[str] | None) -> list[str] | None:
    """``"IMR,utr"`` or ``["IMR"]`` -> ``["IMR", "UTR"]``; ``all`` stands for every registered
    rule; unknown ids raise LeakwattError."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else [
        part for t in text for part in str(t).split(",")]
    codes = [c.strip().upper() for c in items if c.strip()]
    if ALL in codes:
        codes = [c for c in codes if c != ALL] + [c for c in RULES if c not in codes]
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
                 rules: Sequence[str] | None = None, source: str | None = None,
                 project: ProjectView | None = None
                 ) -> tuple[list[Finding], list[tuple[Finding, Fix]]]:
    """Run ``rules`` (ids; all when None) over a parsed module.

    Returns the findings and, for those with a safe rewrite, ``(finding, fix)`` pairs whose fix
    applies to this very ``module`` object (see :func:`leakwatt.mining.rules.fixes.apply_fixes`).
    ``source``, the text ``module`` was parsed from, lets positions be computed for the
    statements holding a finding only, instead of for the whole module. ``project``: what the
    modules it imports from its project define (:mod:`leakwatt.mining.rules.project`).
    """
    ctx = ModuleContext(module, path, project)
    reports: list[tuple[str, Report]] = []
    for code in rules if rules is not None else list(RULES):
        rule = RULES[code]()
        for rep in rule.check(ctx):
            reports.append((code, rep))
    if not reports:
        return [], []
    positions = node_positions(ctx.module, ctx.top, [rep.node for _, rep in reports], source)
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
            loop_kind=rep.loop_kind, model_api=rep.model_api, training_api=rep.training_api,
            via=rep.via)
        findings.append(finding)
        if rep.fix is not None:
            fixes.append((finding, rep.fix))
    findings.sort(key=lambda f: (f.line, f.col, f.rule))
    return findings, fixes


def fix_source(source: str, path: str = "<string>", rules: Sequence[str] | None = None,
               keep: Callable[[Finding], bool] | None = None) -> tuple[str, list[Finding]]:
    """Apply the available autofixes (of findings ``keep`` accepts); new source, fixed findings."""
    module = cst.parse_module(source)
    _, pairs = check_module(module, path, rules)
    pairs = [(f, fx) for f, fx in pairs if keep is None or keep(f)]
    if not pairs:
        return source, []
    new, _ = apply_fixes(module, [fx for _, fx in pairs])
    return _keep_final_newline(source, new), [f for f, _ in pairs]


def _keep_final_newline(source: str, new: str) -> str:
    """``new`` ending as ``source`` does: libcst drops the final ``\\r`` of a CR-only file
    (it reads ``\\r`` alone as a line break inside the module but not at its end)."""
    for ending in ("\r\n", "\n", "\r"):
        if source.endswith(ending):
            return new if new.endswith(("\n", "\r")) else new + ending
    return new
