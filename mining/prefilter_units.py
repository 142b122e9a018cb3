"""The pre-filter's view of a module: ``ast`` units, what each mentions, and the rendering.

A unit is a top-level statement, or, for a class whose members sit on their own lines, the
class header (the class line and class-level statements) and one unit per method. One walk per
unit (:func:`walk_unit`) collects the names it mentions, defines, stores and calls, and whether
it holds loops and container stores; :func:`render` writes the kept units back at their lines.
The choice of units to keep is :mod:`leakwatt.mining.prefilter`'s.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from leakwatt.mining.rules.kit import PER_ITEM_CALLS

_FUNCS = ast.FunctionDef | ast.AsyncFunctionDef
_COMPS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


@dataclass(eq=False)
class Unit:
    nodes: list[ast.stmt]
    ranges: list[tuple[int, int]]  # 1-based inclusive line ranges
    kind: str  # "stmt" | "header" | "method" | "import" | "alias"
    name: str = ""  # a function's, class's or method's name
    header: int = -1  # a method's class header unit
    callables: set[str] = field(default_factory=set)  # functions, methods, classes it defines
    values: set[str] = field(default_factory=set)  # other names and ``self.x`` it stores
    tokens: set[str] = field(default_factory=set)  # names and ``self.x`` it mentions
    nested_imports: list[ast.Import | ast.ImportFrom] = field(default_factory=list)
    bases: set[str] = field(default_factory=set)  # names in a class header's bases
    seed: bool = False
    loop: bool = False
    store: bool = False  # stores into a container outside any loop (UTR if called in a loop)
    weak: bool = False  # a constructor or predict call that needs a caller to count

    @property
    def dunder(self) -> bool:
        return self.kind == "method" and self.name.startswith("__") and self.name.endswith("__")


def _start(node: ast.stmt) -> int:
    decos = getattr(node, "decorator_list", None)
    return min([node.lineno] + [d.lineno for d in decos]) if decos else node.lineno


def _dotted_parts(expr: ast.expr) -> list[str] | None:
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return None
    parts.append(expr.id)
    return parts[::-1]


def import_pairs(node: ast.Import | ast.ImportFrom) -> list[tuple[str, str]]:
    """(local name, dotted name) pairs an import binds, as ``NameResolver`` reads them."""
    if isinstance(node, ast.Import):
        return [(a.asname, a.name) if a.asname else (a.name.split(".", 1)[0],
                                                     a.name.split(".", 1)[0])
                for a in node.names]
    if node.level or not node.module:
        return []
    return [(a.asname or a.name, f"{node.module}.{a.name}") for a in node.names]


def _split_class(node: ast.ClassDef) -> bool:
    prev_end = node.lineno
    for stmt in node.body:
        if _start(stmt) <= prev_end:  # ``class A: pass`` or two statements on one line
            return False
        prev_end = stmt.end_lineno or stmt.lineno
    return True


def _is_alias_assign(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Attribute | ast.Name)
            and all(isinstance(t, ast.Name) for t in stmt.targets))


def split_units(tree: ast.Module) -> list[Unit]:
    units: list[Unit] = []
    prev_end = 0
    for stmt in tree.body:
        start, end = _start(stmt), stmt.end_lineno or stmt.lineno
        if start <= prev_end and units:  # ``a = 1; b = 2``: one unit
            last = units[-1]
            last.nodes.append(stmt)
            last.ranges[-1] = (last.ranges[-1][0], max(end, last.ranges[-1][1]))
            last.kind = "stmt"
            prev_end = max(prev_end, end)
            continue
        prev_end = end
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            units.append(Unit([stmt], [(start, end)], "import"))
        elif _is_alias_assign(stmt):
            units.append(Unit([stmt], [(start, end)], "alias"))
        elif isinstance(stmt, ast.ClassDef) and _split_class(stmt):
            header = Unit([], [(start, _start(stmt.body[0]) - 1)], "header", name=stmt.name)
            header.callables.add(stmt.name)
            hidx = len(units)
            units.append(header)
            for sub in stmt.body:
                rng = (_start(sub), sub.end_lineno or sub.lineno)
                if isinstance(sub, _FUNCS):
                    units.append(Unit([sub], [rng], "method", name=sub.name, header=hidx))
                else:
                    header.nodes.append(sub)
                    header.ranges.append(rng)
            header.bases = _names_in(stmt.bases + stmt.keywords)
            header.tokens.update(header.bases, _names_in(stmt.decorator_list))
        else:
            name = stmt.name if isinstance(stmt, _FUNCS | ast.ClassDef) else ""
            units.append(Unit([stmt], [(start, end)], "stmt", name=name))
    return units


def _names_in(nodes: Iterable[ast.AST]) -> set[str]:
    out: set[str] = set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                out.add(sub.id)
            elif isinstance(sub, ast.Attribute):
                out.add(sub.attr)
    return out


_AST_SKIP = frozenset({"ctx", "op", "type_comment", "kind", "conversion"})
_AST_FIELDS: dict[type, tuple[str, ...]] = {}


def _ast_fields(t: type) -> tuple[str, ...]:
    fields = _AST_FIELDS.get(t)
    if fields is None:
        fields = _AST_FIELDS[t] = tuple(f for f in t._fields if f not in _AST_SKIP)  # type: ignore[attr-defined]
    return fields


@dataclass(eq=False)
class Facts:
    """What one walk over a unit finds."""

    calls: list[list[str]] = field(default_factory=list)  # dotted names of calls
    aliases: list[tuple[int, list[str], list[str]]] = field(default_factory=list)
    stored: set[str] = field(default_factory=set)
    attrs: set[str] = field(default_factory=set)
    defs: set[str] = field(default_factory=set)
    store_call: bool = False
    loop: bool = False
    comp: bool = False
    loop_store: bool = False


#: Pushed under a loop's children: popping it means the walk has left that loop.
_LEFT_LOOP = object()


def walk_unit(unit: Unit, store_methods: frozenset[str]) -> Facts:
    """One pass over a unit's ast: names it mentions, defines and calls, loops and stores."""
    facts = Facts()
    tokens, stored, attrs, calls = unit.tokens, facts.stored, facts.attrs, facts.calls
    in_loops = 0  # loops (and comprehensions) the walk is inside of
    stack: list[Any] = list(unit.nodes)
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        if node is _LEFT_LOOP:
            in_loops -= 1
            continue
        t = type(node)
        if t is ast.Name:
            tokens.add(node.id)
            if type(node.ctx) is ast.Store:
                stored.add(node.id)
            continue
        if t is ast.Attribute:
            recv = node.value
            if type(recv) is ast.Name and recv.id in ("self", "cls"):
                tokens.add(node.attr)
                if type(node.ctx) is ast.Store:
                    attrs.add(node.attr)
            push(recv)
            continue
        if t is ast.Constant:
            continue
        if t is ast.Call:
            if in_loops and type(node.func) is ast.Attribute:
                # A method called on an instance inside a loop (``agent.remember_and_act(s)``
                # per step, ``net.init_weights()`` per trial) repeats that module method: its
                # name is a use here, as ``self.m`` is (loops only: every ``obj.m()`` would tie
                # too many units together).
                tokens.add(node.func.attr)
            parts = _dotted_parts(node.func)
            if parts:
                calls.append(parts)
                if parts[-1] in store_methods and len(parts) > 1:
                    facts.store_call = True
                if parts[-1] in PER_ITEM_CALLS and any(
                        type(a) is ast.Lambda for a in (*node.args, *(
                            k.value for k in node.keywords))):
                    facts.comp = True  # a lambda run per item: calls in it repeat
        elif t is ast.For or t is ast.AsyncFor or t is ast.While:
            facts.loop = True
            in_loops += 1
            push(_LEFT_LOOP)  # popped after every node below this one
        elif t in _COMPS:
            facts.comp = True
            in_loops += 1
            push(_LEFT_LOOP)
        elif t is ast.AugAssign:
            facts.loop_store = facts.loop_store or type(node.op) is ast.Add
        elif t is ast.Assign or t is ast.AnnAssign:
            targets = node.targets if t is ast.Assign else [node.target]
            facts.loop_store = facts.loop_store or any(type(x) is ast.Subscript for x in targets)
            if t is ast.Assign and type(node.value) in (ast.Attribute, ast.Name):
                names = [x.id for x in targets if type(x) is ast.Name]
                parts = _dotted_parts(node.value)
                if names and parts:
                    facts.aliases.append((node.lineno, names, parts))
        elif t is ast.FunctionDef or t is ast.AsyncFunctionDef or t is ast.ClassDef:
            facts.defs.add(node.name)
            # A bare decorator (``@tf.function``) is a call of that name at definition time.
            calls.extend(p for p in map(_dotted_parts, node.decorator_list) if p)
        elif t is ast.Import or t is ast.ImportFrom:
            unit.nested_imports.append(node)
            continue
        for name in _ast_fields(t):
            value = getattr(node, name, None)
            if type(value) is list:
                for item in value:
                    if isinstance(item, ast.AST):
                        push(item)
            elif isinstance(value, ast.AST):
                push(value)
    if unit.kind == "method":
        unit.callables = {unit.name}
        unit.values = attrs  # the ``self.x`` it stores
    elif unit.kind == "stmt" and len(unit.nodes) == 1 and isinstance(unit.nodes[0], _FUNCS):
        unit.callables = {unit.name}  # a function's locals are not visible outside
    else:
        unit.callables |= facts.defs
        unit.values = stored | attrs
    unit.loop = facts.loop or facts.comp  # calls in comprehensions count as in a loop
    return facts


def module_level_code(unit: Unit) -> bool:
    """Whether a unit holds statements the indexer files under ``<module>``."""
    if unit.kind == "header":
        body = unit.nodes
    elif unit.kind == "stmt":
        node = unit.nodes[0]
        if len(unit.nodes) > 1 or isinstance(node, ast.If | ast.Try | ast.With | ast.For
                                             | ast.While | ast.Expr | ast.Assign
                                             | ast.AugAssign | ast.AnnAssign):
            return True
        if isinstance(node, _FUNCS):
            return False
        body = node.body if isinstance(node, ast.ClassDef) else [node]
    else:
        return False
    return any(not isinstance(b, _FUNCS | ast.Pass)
               and not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant))
               for b in body)


def render(source: str, units: list[Unit], keep: set[int], compact: bool = False
            ) -> tuple[str, list[int] | None]:
    lines = source.split("\n")
    out = [""] * len(lines)
    dropped = bytearray(len(lines)) if compact else None  # 1: a line of a dropped unit
    has_body: set[int] = set()
    for i, u in enumerate(units):
        kept = i in keep or u.kind in ("import", "alias")
        if kept:
            for a, b in u.ranges:
                out[a - 1:b] = lines[a - 1:b]
            if u.kind == "method":
                has_body.add(u.header)
            elif u.kind == "header" and len(u.ranges) > 1:
                has_body.add(i)
            continue
        if dropped is not None:
            for a, b in u.ranges:
                dropped[a - 1:b] = b"\1" * (b - a + 1)
        indent = ""
        if u.kind == "method" and u.header in keep:
            first = lines[u.ranges[0][0] - 1]
            indent = first[:len(first) - len(first.lstrip())]
            if u.nested_imports:
                has_body.add(u.header)
        for node in u.nested_imports:
            at = node.lineno - 1
            text = ast.unparse(node)
            out[at] = f"{out[at]}; {text}" if out[at].strip() else indent + text
            if dropped is not None:
                dropped[at] = 0
    for i, u in enumerate(units):
        if u.kind == "header" and i in keep and i not in has_body:
            first_line = units[i + 1].ranges[0][0] - 1  # the class's first method
            first = lines[first_line]
            out[first_line] = first[:len(first) - len(first.lstrip())] + "pass"
            if dropped is not None:
                dropped[first_line] = 0
    fixed = [o + "\r" if line.endswith("\r") and not o.endswith("\r") else o
             for o, line in zip(out, lines, strict=True)]
    if dropped is None:
        return "\n".join(fixed), None
    # Blank and comment lines between statements carry nothing the rules read: drop them too
    # (a line after one ending in a backslash stays; a parse error would fall back anyway).
    covered = bytearray(len(lines))
    for u in units:
        for a, b in u.ranges:
            covered[a - 1:b] = b"\1" * (b - a + 1)
    prev = ""
    for n, line in enumerate(fixed):
        if dropped[n]:
            continue
        if not covered[n] and not prev.endswith("\\"):
            bare = line.strip()
            if not bare or bare.startswith("#"):
                dropped[n] = 1
                continue
        prev = line.rstrip("\r")
    numbers = [n for n, gone in enumerate(dropped, start=1) if not gone]
    return "\n".join(fixed[n - 1] for n in numbers), numbers
