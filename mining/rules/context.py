"""``ModuleContext``: one parsed module, its index, and the analyses rules share.

Built once per module by the engine (:func:`leakwatt.mining.rules.check_module`). Analyses
that several rules need (value kinds, functions called from loops ...) are computed on first
use and memoised per module by :meth:`ModuleContext.analysis`, keyed by the function that
computes them, so each has one definition and one typed result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

import libcst as cst

from leakwatt.mining.rules.index import (
    AssignEvent,
    CallSite,
    ClassInfo,
    FuncInfo,
    Indexer,
    Loop,
)
from leakwatt.mining.rules.kit import is_param
from leakwatt.mining.rules.names import NameResolver, dotted

if TYPE_CHECKING:
    from leakwatt.mining.rules.project import ProjectView, Symbol

T = TypeVar("T")


class ModuleContext:
    """Everything the rules need about one parsed module, built in a single walk."""

    def __init__(self, module: cst.Module, path: str = "<string>",
                 project: ProjectView | None = None) -> None:
        self.module = module
        self.path = path
        #: What the modules this one imports from its project define (None: nothing known).
        self.project = project
        self.names = NameResolver()
        self.module_func = FuncInfo(node=None, name="<module>", qualname="<module>",
                                    class_name=None, parent=None)
        self.functions: list[FuncInfo] = [self.module_func]
        self.module_funcs: dict[str, FuncInfo] = {}
        self.classes: dict[str, ClassInfo] = {}
        self.calls: list[CallSite] = []
        self._analyses: dict[Callable[[ModuleContext], object], object] = {}
        self._reaches: dict[str, dict[int, bool]] = {}
        #: id of each statement and call -> where it sits: the index of its top-level statement
        #: in ``module.body``, then its def's index in each enclosing class or function body
        self.top: dict[int, tuple[int, ...]] = {}
        Indexer(self).walk(module)

    def analysis(self, compute: Callable[[ModuleContext], T]) -> T:
        """``compute(self)``, computed once per module (``ctx.analysis(ValueKinds)``)."""
        try:
            return self._analyses[compute]  # type: ignore[return-value]
        except KeyError:
            result = self._analyses[compute] = compute(self)
            return result

    # -- helpers shared by rules --------------------------------------------------------------
    def project_symbol(self, expr: cst.BaseExpression, scope: FuncInfo | None = None
                       ) -> Symbol | None:
        """The project symbol ``expr`` (``create_model``, ``models.create_model``) names, when
        it is imported from another module of the project and not shadowed by a definition or
        an assignment here."""
        if self.project is None:
            return None
        text = dotted(expr)
        if text is None:
            return None
        head = text.split(".", 1)[0]
        if head in self.module_funcs or head in self.classes:
            return None
        if scope is not None:
            ev = self.last_assign(scope, head, 10**9)
            if ev is not None and ev.func is not self.module_func:
                return None  # a local variable of that name
        return self.project.lookup(text)

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    def snippet(self, node: cst.CSTNode | None) -> str:
        if node is None:
            return ""
        if isinstance(node, cst.BaseCompoundStatement):
            header = {
                cst.For: lambda n: f"for {self.code(n.target)} in {self.code(n.iter)}:",
                cst.While: lambda n: f"while {self.code(n.test)}:",
                cst.If: lambda n: f"if {self.code(n.test)}:",
            }.get(type(node))
            text = header(node) if header else self.code(node).splitlines()[0]
        elif isinstance(node, cst.SimpleStatementLine):
            text = "; ".join(self.code(s) for s in node.body)
        else:
            text = self.code(node)
        text = " ".join(text.split())
        return text if len(text) <= 200 else text[:197] + "..."

    def resolve_local_function(self, site: CallSite) -> FuncInfo | None:
        """The same-module function a call refers to: ``f()``, nested ``f()`` or ``self.m()``."""
        func = site.node.func
        if isinstance(func, cst.Name):
            scope: FuncInfo | None = site.func
            while scope is not None:
                if func.value in scope.children:
                    return scope.children[func.value]
                scope = scope.parent
            return self.module_funcs.get(func.value)
        if (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
                and func.value.value in ("self", "cls") and site.func.class_name):
            return self.method(site.func.class_name, func.attr.value)
        return None

    def local_function_by_ref(self, expr: cst.BaseExpression, scope: FuncInfo) -> FuncInfo | None:
        """A function passed by reference (``study.optimize(objective)``)."""
        if isinstance(expr, cst.Name):
            s: FuncInfo | None = scope
            while s is not None:
                if expr.value in s.children:
                    return s.children[expr.value]
                s = s.parent
            return self.module_funcs.get(expr.value)
        if (isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name)
                and expr.value.value == "self" and scope.class_name):
            return self.method(scope.class_name, expr.attr.value)
        return None

    def method(self, class_name: str, name: str, _seen: frozenset[str] = frozenset()) -> FuncInfo | None:
        cls = self.classes.get(class_name)
        if cls is None or class_name in _seen:
            return None
        if name in cls.methods:
            return cls.methods[name]
        for base in cls.bases:
            if isinstance(base, cst.Name) and base.value in self.classes:
                found = self.method(base.value, name, _seen | {class_name})
                if found is not None:
                    return found
        return None

    def local_class(self, site: CallSite) -> ClassInfo | None:
        func = site.node.func
        if isinstance(func, cst.Name) and func.value in self.classes:
            return self.classes[func.value]
        return None

    def callees(self, fn: FuncInfo) -> Iterator[tuple[CallSite, FuncInfo]]:
        """Same-module functions called from ``fn`` (class instantiation calls ``__init__``)."""
        for site in fn.calls:
            target = self.resolve_local_function(site)
            if target is None:
                cls = self.local_class(site)
                if cls is not None:
                    target = self.method(cls.name, "__init__")
            if target is not None and target is not fn:
                yield site, target

    def reaches(self, fn: FuncInfo, pred: Callable[[CallSite], bool], key: str) -> bool:
        """Whether ``fn`` or a same-module function it calls has a call site matching ``pred``."""
        memo = self._reaches.setdefault(key, {})
        if id(fn) in memo:
            return memo[id(fn)]
        memo[id(fn)] = False  # recursion guard
        result = any(pred(s) for s in fn.calls) or any(
            self.reaches(t, pred, key) for _, t in self.callees(fn))
        memo[id(fn)] = result
        return result

    def enclosing_class(self, fn: FuncInfo) -> ClassInfo | None:
        return self.classes.get(fn.class_name) if fn.class_name else None

    def last_assign(self, fn: FuncInfo, name: str, seq: int) -> AssignEvent | None:
        """The latest binding of ``name`` before ``seq`` in ``fn`` or an enclosing scope."""
        scope: FuncInfo | None = fn
        while scope is not None:
            best = None
            for ev in scope.assigns:
                if (isinstance(ev.target, cst.Name) and ev.target.value == name
                        and (ev.seq < seq or scope is not fn)
                        and (best is None or ev.seq > best.seq)):
                    best = ev
            if best is not None:
                return best
            if scope.node is not None and is_param(scope, name):
                return None
            scope = scope.parent
        return None

    def held_values(self, fn: FuncInfo, expr: cst.BaseExpression, seq: int
                    ) -> list[tuple[cst.BaseExpression | None, FuncInfo]]:
        """What ``expr`` (in ``fn``, at ``seq``) was assigned, each with the scope of its
        assignment: a name's binding in force (none when it is not a plain assignment), or
        every store of ``self.attr`` in the enclosing class. A value is None where the store
        has no single value (an unpacking, an augmented assignment). Empty for anything else."""
        if isinstance(expr, cst.Name):
            ev = self.last_assign(fn, expr.value, seq)
            return [(ev.value, ev.func)] if ev is not None and ev.kind == "assign" else []
        if (isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name)
                and expr.value.value == "self" and fn.class_name):
            cls = self.classes.get(fn.class_name)
            return [(ev.value, ev.func)
                    for ev in (cls.attr_assigns.get(expr.attr.value, []) if cls else [])]
        return []

    def created_in_loop(self, fn: FuncInfo, name: str, loop: Loop) -> bool:
        """``name`` is (re)bound inside ``loop`` by an assignment creating a fresh container."""
        for ev in fn.assigns:
            if (ev.kind == "assign" and isinstance(ev.target, cst.Name)
                    and ev.target.value == name and loop in ev.loops):
                return True
        return False
