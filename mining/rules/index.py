"""The module indexer: one fast walk over a parsed module that records what the rules query.

Instead of giving every rule libcst's full scope metadata, the engine walks each module once:
call sites with their enclosing loops, function, statement and assignment target; assignment
events in source order; functions, classes and their ``self.attr`` stores; and the imports the
name resolver reads. The records live here; :class:`~leakwatt.mining.rules.context.ModuleContext`
holds them and answers the rules' questions.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import libcst as cst

if TYPE_CHECKING:
    from leakwatt.mining.rules.context import ModuleContext


@dataclass(eq=False)
class Loop:
    node: cst.CSTNode
    kind: str  # "for" | "while" | "comprehension"
    body: cst.BaseSuite | None
    parent: Loop | None


@dataclass(eq=False)
class FuncInfo:
    node: cst.FunctionDef | None
    name: str
    qualname: str
    class_name: str | None
    parent: FuncInfo | None
    calls: list[CallSite] = field(default_factory=list)
    assigns: list[AssignEvent] = field(default_factory=list)
    returns: list[tuple[cst.BaseExpression, int]] = field(default_factory=list)
    children: dict[str, FuncInfo] = field(default_factory=dict)
    loops: list[Loop] = field(default_factory=list)
    aug_assigns: list[AssignEvent] = field(default_factory=list)
    with_items: list[tuple[cst.WithItem, int, tuple[Loop, ...]]] = field(default_factory=list)
    decorators: list[str] = field(default_factory=list)


@dataclass(eq=False)
class ClassInfo:
    node: cst.ClassDef
    name: str
    bases: list[cst.BaseExpression]
    methods: dict[str, FuncInfo] = field(default_factory=dict)
    # self.attr = value events across all methods
    attr_assigns: dict[str, list[AssignEvent]] = field(default_factory=dict)


@dataclass(eq=False)
class CallSite:
    node: cst.Call
    seq: int
    qn: str | None
    func: FuncInfo
    loops: tuple[Loop, ...]
    stmt: cst.CSTNode | None
    small: cst.CSTNode | None
    withs: tuple[cst.CSTNode, ...]
    parent_call: cst.Call | None
    comp_element: bool
    block: cst.CSTNode | None
    block_index: int

    @property
    def method(self) -> str | None:
        f = self.node.func
        return f.attr.value if isinstance(f, cst.Attribute) else None

    @property
    def receiver(self) -> cst.BaseExpression | None:
        f = self.node.func
        return f.value if isinstance(f, cst.Attribute) else None

    @property
    def simple_name(self) -> str | None:
        f = self.node.func
        return f.value if isinstance(f, cst.Name) else None

    @property
    def assigned_to(self) -> list[cst.BaseExpression]:
        small = self.small
        if isinstance(small, cst.Assign) and small.value is self.node:
            return [t.target for t in small.targets]
        if isinstance(small, cst.AnnAssign) and small.value is self.node:
            return [small.target]
        return []


@dataclass(eq=False)
class AssignEvent:
    target: cst.BaseExpression
    value: cst.BaseExpression | None  # None: bound by a for loop / with / unpacking
    seq: int
    loops: tuple[Loop, ...]
    stmt: cst.CSTNode | None
    func: FuncInfo
    kind: str  # "assign" | "aug" | "for" | "with" | "unpack"
    source: cst.BaseExpression | None = None  # for-iter / with-item / unpacked value
    index: int | None = None  # position in an unpacked tuple
    op: cst.BaseAugOp | None = None
    block: cst.CSTNode | None = None
    block_index: int = -1


def _flatten_targets(target: cst.BaseExpression) -> list[tuple[cst.BaseExpression, int | None]]:
    if isinstance(target, cst.Tuple | cst.List):
        out: list[tuple[cst.BaseExpression, int | None]] = []
        for i, el in enumerate(target.elements):
            value = el.value
            if isinstance(value, cst.Tuple | cst.List):
                out.extend((t, None) for t, _ in _flatten_targets(value))
            else:
                out.append((value, i))
        return out
    return [(target, None)]


#: Fields that hold only whitespace, comments or punctuation: the walk never enters them.
_SKIP_FIELDS = frozenset({"lpar", "rpar", "comma", "leading_lines", "header", "footer", "newline",
                          "semicolon", "equal", "operator", "lines_after_decorators", "colon",
                          "trailing_whitespace", "dot", "lbracket", "rbracket", "lbrace",
                          "rbrace", "first_colon", "second_colon", "empty_lines", "first_line",
                          "last_line", "comment", "asynchronous", "star_tok"})
_DISPATCH: dict[type, tuple[Any, Any, tuple[str, ...], int]] = {}


def _child_fields(t: type) -> tuple[str, ...]:
    """A node type's child fields in the order libcst visits them (read from its source)."""
    names = [f.name for f in dataclasses.fields(t)]
    try:
        order = re.findall(r'visit_\w+\(\s*self,\s*"(\w+)"',
                           inspect.getsource(t._visit_and_replace_children))
    except (OSError, TypeError):
        order = []
    order = [n for n in order if n in names] or names
    return tuple(n for n in order if n not in _SKIP_FIELDS and not n.startswith("whitespace"))


def _dispatch_entry(t: type) -> tuple[Any, Any, tuple[str, ...], int]:
    kind = 1 if issubclass(t, cst.BaseStatement) else 2 if issubclass(
        t, cst.BaseSmallStatement) else 0
    return (getattr(Indexer, f"visit_{t.__name__}", None),
            getattr(Indexer, f"leave_{t.__name__}", None), _child_fields(t), kind)


class Indexer:
    def __init__(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        self.seq = 0
        self.func = ctx.module_func
        self.class_stack: list[ClassInfo] = []
        self.loops: list[Loop] = []
        self.stmts: list[cst.CSTNode] = []
        self.smalls: list[cst.CSTNode] = []
        self.withs: list[cst.CSTNode] = []
        self.calls: list[cst.Call] = []
        self.args: list[cst.Arg] = []
        self.blocks: list[tuple[cst.CSTNode, int]] = []
        self.comp_elts: list[cst.BaseExpression] = []
        #: Where the node being walked sits: the index of its top-level statement in
        #: ``module.body``, then the index in each class or function body on the way down
        #: (only through ``def``/``class`` bodies, so a method is ``(class, method)``).
        self.top: tuple[int, ...] = (-1,)
        self._top_node: cst.CSTNode | None = None  # the statement ``self.top`` ends at
        self._suites: list[tuple[cst.CSTNode, dict[int, int]]] = []

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def _loops(self) -> tuple[Loop, ...]:
        return tuple(self.loops)

    # -- the walk --------------------------------------------------------------------------
    def walk(self, node: cst.CSTNode) -> None:
        """Visit ``node`` and its children in libcst's order, like ``node.visit(self)``.

        libcst's own traversal rebuilds every node it passes (it is shared with transformers);
        this one only reads child fields, skips whitespace and punctuation, and is several
        times faster. ``visit_X`` returning False stops the descent, as in libcst.
        """
        t = type(node)
        entry = _DISPATCH.get(t)
        if entry is None:
            entry = _DISPATCH[t] = _dispatch_entry(t)
        visit, leave, fields, kind = entry
        if kind == 1:
            self.stmts.append(node)
            if self._suites:
                block, index = self._suites[-1]
                self.blocks.append((block, index.get(id(node), -1)))
                if len(self.stmts) == 1:
                    self.top = (index.get(id(node), -1),)
                    self._top_node = node
            else:
                self.blocks.append((None, -1))
            self.ctx.top[id(node)] = self.top
        elif kind == 2:
            self.smalls.append(node)
            self.ctx.top[id(node)] = self.top
        elif t is cst.Call:
            self.ctx.top[id(node)] = self.top
        if visit is None or visit(self, node) is not False:
            for name in fields:
                value = getattr(node, name)
                if isinstance(value, cst.CSTNode):
                    self.walk(value)
                elif isinstance(value, list | tuple):
                    for child in value:
                        if isinstance(child, cst.CSTNode):
                            self.walk(child)
        if leave is not None:
            leave(self, node)
        if kind == 1:
            self.stmts.pop()
            self.blocks.pop()
        elif kind == 2:
            self.smalls.pop()

    @staticmethod
    def _suite(node: Any) -> tuple[cst.CSTNode, dict[int, int]]:
        return node, {id(s): i for i, s in enumerate(node.body)}

    def visit_Module(self, node: cst.Module) -> None:
        self._suites = [self._suite(node)]

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        self._suites.append(self._suite(node))

    def leave_IndentedBlock(self, original_node: cst.IndentedBlock) -> None:
        self._suites.pop()

    def visit_SimpleStatementSuite(self, node: cst.SimpleStatementSuite) -> None:
        self._suites.append(self._suite(node))

    def leave_SimpleStatementSuite(self, original_node: cst.SimpleStatementSuite) -> None:
        self._suites.pop()

    @property
    def _cur_block(self) -> tuple[cst.CSTNode | None, int]:
        return self.blocks[-1] if self.blocks else (None, -1)

    # -- imports and definitions --------------------------------------------------------
    def visit_Import(self, node: cst.Import) -> None:
        self.ctx.names.add_import(node)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        self.ctx.names.add_import_from(node)

    def _enter_def(self, node: cst.ClassDef | cst.FunctionDef
                   ) -> tuple[tuple[int, ...], cst.CSTNode | None]:
        """Extend ``self.top`` by a def that sits directly in the body of the def it ends at."""
        saved = (self.top, self._top_node)
        parent = self.stmts[-2] if len(self.stmts) > 1 else None
        block, index = self.blocks[-1] if self.blocks else (None, -1)
        if (parent is not None and parent is self._top_node and index >= 0
                and isinstance(parent, cst.ClassDef | cst.FunctionDef)
                and block is parent.body and isinstance(block, cst.IndentedBlock)):
            self.top = (*self.top, index)
            self._top_node = node
        return saved

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        saved_top = self._enter_def(node)
        info = ClassInfo(node=node, name=node.name.value, bases=[a.value for a in node.bases])
        if self.func is self.ctx.module_func and not self.class_stack:
            self.ctx.classes.setdefault(info.name, info)
        self.class_stack.append(info)
        for base in node.bases:
            self.walk(base)
        self.walk(node.body)
        self.class_stack.pop()
        self.top, self._top_node = saved_top
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        cls = self.class_stack[-1] if self.class_stack else None
        outer = self.func
        if cls is not None and (outer is self.ctx.module_func or outer.class_name != cls.name):
            qual = f"{cls.name}.{node.name.value}"
        elif outer is self.ctx.module_func:
            qual = node.name.value
        else:
            qual = f"{outer.qualname}.{node.name.value}"
        info = FuncInfo(node=node, name=node.name.value, qualname=qual,
                        class_name=cls.name if cls else None, parent=outer)
        for dec in node.decorators:
            d = dec.decorator.func if isinstance(dec.decorator, cst.Call) else dec.decorator
            info.decorators.append(self.ctx.names.resolve(d) or (cst.Module([]).code_for_node(d)))
        self.ctx.functions.append(info)
        if cls is not None and (outer is self.ctx.module_func or outer.class_name != cls.name):
            cls.methods.setdefault(info.name, info)
        elif outer is self.ctx.module_func:
            self.ctx.module_funcs.setdefault(info.name, info)
        else:
            outer.children.setdefault(info.name, info)
        saved = (self.func, self.loops, self.withs)
        self.func, self.loops, self.withs = info, [], []
        saved_classes = self.class_stack
        self.class_stack = []
        saved_top = self._enter_def(node)
        self.walk(node.body)
        self.top, self._top_node = saved_top
        self.class_stack = saved_classes
        self.func, self.loops, self.withs = saved
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return True

    # -- loops ----------------------------------------------------------------------------
    def _bind_targets(self, target: cst.BaseExpression, kind: str,
                      source: cst.BaseExpression | None) -> None:
        block, idx = self._cur_block
        for t, i in _flatten_targets(target):
            ev = AssignEvent(target=t, value=None, seq=self._next(), loops=self._loops(),
                             stmt=self.stmts[-1] if self.stmts else None, func=self.func,
                             kind=kind, source=source, index=i, block=block, block_index=idx)
            self.func.assigns.append(ev)

    def visit_For(self, node: cst.For) -> bool:
        self.walk(node.iter)
        loop = Loop(node=node, kind="for", body=node.body,
                    parent=self.loops[-1] if self.loops else None)
        self.func.loops.append(loop)
        self.loops.append(loop)
        self._bind_targets(node.target, "for", node.iter)
        self.walk(node.target)
        self.walk(node.body)
        self.loops.pop()
        if node.orelse is not None:
            self.walk(node.orelse)
        return False

    def visit_While(self, node: cst.While) -> bool:
        loop = Loop(node=node, kind="while", body=node.body,
                    parent=self.loops[-1] if self.loops else None)
        self.func.loops.append(loop)
        self.loops.append(loop)
        self.walk(node.test)
        self.walk(node.body)
        self.loops.pop()
        if node.orelse is not None:
            self.walk(node.orelse)
        return False

    def _visit_comp(self, node: Any, elts: list[cst.BaseExpression]) -> bool:
        for_in: cst.CompFor = node.for_in
        self.walk(for_in.iter)
        loop = Loop(node=node, kind="comprehension", body=None,
                    parent=self.loops[-1] if self.loops else None)
        self.func.loops.append(loop)
        self.loops.append(loop)
        self._bind_targets(for_in.target, "for", for_in.iter)
        for cond in for_in.ifs:
            self.walk(cond)
        inner = for_in.inner_for_in
        while inner is not None:
            self.walk(inner.iter)
            self._bind_targets(inner.target, "for", inner.iter)
            for cond in inner.ifs:
                self.walk(cond)
            inner = inner.inner_for_in
        self.comp_elts.extend(elts)
        for e in elts:
            self.walk(e)
        self.loops.pop()
        return False

    def visit_ListComp(self, node: cst.ListComp) -> bool:
        return self._visit_comp(node, [node.elt])

    def visit_SetComp(self, node: cst.SetComp) -> bool:
        return self._visit_comp(node, [node.elt])

    def visit_GeneratorExp(self, node: cst.GeneratorExp) -> bool:
        return self._visit_comp(node, [node.elt])

    def visit_DictComp(self, node: cst.DictComp) -> bool:
        return self._visit_comp(node, [node.key, node.value])

    # -- with ------------------------------------------------------------------------------
    def visit_With(self, node: cst.With) -> bool:
        for item in node.items:
            self.walk(item.item)
            self.func.with_items.append((item, self.seq, self._loops()))
            if item.asname is not None:
                self._bind_targets(item.asname.name, "with", item.item)
        self.withs.extend(item.item for item in node.items)
        self.walk(node.body)
        for _ in node.items:
            self.withs.pop()
        return False

    # -- assignments -----------------------------------------------------------------------
    def visit_Assign(self, node: cst.Assign) -> bool:
        self.walk(node.value)
        block, idx = self._cur_block
        for t in node.targets:
            target = t.target
            if isinstance(target, cst.Tuple | cst.List):
                self._bind_targets(target, "unpack", node.value)
            else:
                self._record_assign(target, node.value, "assign", block, idx)
            if self.func is self.ctx.module_func or isinstance(target, cst.Name):
                self.ctx.names.add_assign(target, node.value)
            self.walk(target)
        return False

    def visit_AnnAssign(self, node: cst.AnnAssign) -> bool:
        if node.value is not None:
            self.walk(node.value)
            block, idx = self._cur_block
            self._record_assign(node.target, node.value, "assign", block, idx)
        self.walk(node.target)
        return False

    def visit_AugAssign(self, node: cst.AugAssign) -> bool:
        self.walk(node.value)
        block, idx = self._cur_block
        ev = AssignEvent(target=node.target, value=node.value, seq=self._next(),
                         loops=self._loops(), stmt=self.stmts[-1] if self.stmts else None,
                         func=self.func, kind="aug", op=node.operator, block=block,
                         block_index=idx)
        self.func.aug_assigns.append(ev)
        self.walk(node.target)
        return False

    def _record_assign(self, target: cst.BaseExpression, value: cst.BaseExpression, kind: str,
                       block: cst.CSTNode | None, idx: int) -> None:
        ev = AssignEvent(target=target, value=value, seq=self._next(), loops=self._loops(),
                         stmt=self.stmts[-1] if self.stmts else None, func=self.func,
                         kind=kind, block=block, block_index=idx)
        self.func.assigns.append(ev)
        if (isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name)
                and target.value.value == "self" and self.func.class_name is not None):
            cls = self.ctx.classes.get(self.func.class_name)
            if cls is not None:
                cls.attr_assigns.setdefault(target.attr.value, []).append(ev)

    def visit_Return(self, node: cst.Return) -> None:
        if node.value is not None:
            self.func.returns.append((node.value, self.seq))

    # -- calls -----------------------------------------------------------------------------
    def visit_Arg(self, node: cst.Arg) -> None:
        self.args.append(node)

    def leave_Arg(self, original_node: cst.Arg) -> None:
        self.args.pop()

    def visit_Call(self, node: cst.Call) -> None:
        parent_call = None
        if self.args and self.args[-1].value is node and self.calls:
            parent_call = self.calls[-1]
        block, idx = self._cur_block
        site = CallSite(node=node, seq=self._next(), qn=self.ctx.names.resolve(node.func),
                        func=self.func, loops=self._loops(),
                        stmt=self.stmts[-1] if self.stmts else None,
                        small=self.smalls[-1] if self.smalls else None,
                        withs=tuple(self.withs), parent_call=parent_call,
                        comp_element=any(e is node for e in self.comp_elts),
                        block=block, block_index=idx)
        self.func.calls.append(site)
        self.ctx.calls.append(site)
        self.calls.append(node)

    def leave_Call(self, original_node: cst.Call) -> None:
        self.calls.pop()
