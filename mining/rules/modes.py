"""Eager or graph: which statements of a module build a TF1/Keras-2 graph, decided per region.

A Python list of tensors means two different things. In eager code (TF2) each element holds a
computed tensor and its device buffer: a list kept over training steps is a leak (UTR). In
graph code (TF1 ``Session`` scripts, ``tf.compat.v1.disable_eager_execution()``, Keras-2
optimizers' ``get_updates``) the elements are symbolic nodes: a list of them is the graph's
structure (an unrolled RNN's per-step outputs, per-tower losses), built once and not a leak.
The rules therefore need to know, for one statement, whether it builds a graph.

The answer used to be one per file: a ``Session`` or a ``placeholder`` anywhere made every
function of the module graph code, so one ``tf.compat.v1.Session()`` opened and closed to
export a model silenced the eager training loop beside it. It is now decided per function and
per region, in this order (:meth:`GraphModes.graph`):

1. **Eager execution disabled** (``disable_eager_execution()``, ``disable_v2_behavior()``)
   anywhere: every statement builds a graph. This switch is process-wide, so it is the one
   file-level decision left.
2. **Graph contexts**: statements inside ``with tf.Graph().as_default():``, ``with
   g.as_default():`` or ``with tf.compat.v1.Session() as sess:`` (entering a session enters
   its graph) build a graph, whatever else they do.
3. **Eager evidence**: a statement whose loops (or whose function, outside a loop) hold a
   ``tf.GradientTape``, a ``.numpy()`` call, or a call of a same-module ``tf.function`` or of
   a function that holds a ``GradientTape``, is eager code. This overrides the weaker clues
   below: it is what TF2 code looks like, and none of it belongs in a TF1 graph builder.
4. **Graph functions**: a function that builds a ``Session`` or calls a graph-building API
   (``placeholder``, ``get_variable``, ``variable_scope``, ``tf.gradients``, collections,
   ``K.function``, ``K.update``...), an optimizer's ``get_updates``, the same-module functions
   they call and those called from a graph context, and the functions nested in all of
   these.
5. **Module-level code run with a session**: TF1 scripts build their graph at module level,
   then open a session to run it; so module-level statements from the start of the file to
   ``sess.close()`` (to the end when the session is never closed), or to a ``with
   tf.Session()`` block, build a graph, and so do the functions they call. Code after the
   session is closed (or after its ``with`` block) does not.
6. **Graph-building API anywhere in the file**: the rest of the module (TF1-era modules build
   their graph in helpers that hold none of those calls themselves, called from another
   module). Only a graph-building API counts here, never a ``Session`` alone.
"""

from __future__ import annotations

import re

import libcst as cst

from leakwatt.mining.rules.context import ModuleContext
from leakwatt.mining.rules.index import CallSite, FuncInfo, Loop
from leakwatt.mining.rules.kit import iter_loops
from leakwatt.mining.rules.values import is_session_ctor, is_tf_function

#: Calls that only exist in TF1 / Keras-2 graph mode: a function using them builds a graph.
GRAPH_API_CALLS = frozenset({
    "tensorflow.placeholder", "tensorflow.get_variable", "tensorflow.variable_scope",
    "tensorflow.gradients", "tensorflow.global_variables_initializer",
    "tensorflow.get_collection", "tensorflow.add_to_collection", "keras.backend.function",
    "keras.backend.update", "keras.backend.update_add", "keras.backend.update_sub",
    "keras.backend.placeholder", "keras.backend.gradients", "keras.backend.get_session",
})
#: Calls that switch the whole process to graph mode.
EAGER_OFF_CALLS = frozenset({"tensorflow.disable_eager_execution",
                             "tensorflow.disable_v2_behavior"})
#: A receiver of ``.as_default()`` that names a graph (``graph``, ``self.g``, ``train_graph``)
#: when its binding cannot be seen. ``sess.as_default()`` only makes a session the default,
#: not its graph: eager code stays eager under it.
_GRAPH_NAME = re.compile(r"(?i)(?:^|[._])(?:g|graph|\w*_graph|graph_\w*)$")
_TAPE = "tensorflow.GradientTape"


class GraphModes:
    """Which statements of a module build a graph (module docstring); built once per module
    with ``ctx.analysis(GraphModes)``."""

    def __init__(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        #: Eager execution is disabled somewhere: every statement builds a graph.
        self.everywhere = any(s.qn in EAGER_OFF_CALLS for s in ctx.calls)
        #: A graph-building API is called somewhere in the module.
        self.api_file = any(s.qn in GRAPH_API_CALLS for s in ctx.calls)
        #: ids of the statements inside graph contexts (``with tf.Graph().as_default()``).
        self.contexts: frozenset[int] = frozenset()
        #: (first seq, last seq) of module-level code after a bare ``Session`` and its close.
        self.session_spans: tuple[tuple[int, int], ...] = ()
        self.functions: frozenset[int] = frozenset()
        self._eager_sites: dict[int, list[CallSite]] = {}
        if self.everywhere:
            return
        self.contexts = frozenset(self._graph_contexts())
        self.session_spans = tuple(self._session_spans())
        self.functions = frozenset(self._graph_functions())

    # -- the question ------------------------------------------------------------------------
    def graph(self, fn: FuncInfo, stmt: cst.CSTNode | None, seq: int,
              loop: Loop | None) -> bool:
        """Whether the statement ``stmt`` (sequence number ``seq``, innermost loop ``loop``)
        of ``fn`` builds a graph (the order of the module docstring)."""
        if self.everywhere:
            return True
        if stmt is not None and id(stmt) in self.contexts:
            return True
        if self.eager(fn, loop):
            return False
        if id(fn) in self.functions:
            return True
        if fn is self.ctx.module_func and any(a <= seq <= b for a, b in self.session_spans):
            return True
        return self.api_file

    def eager(self, fn: FuncInfo, loop: Loop | None) -> bool:
        """Eager evidence around a statement: in the loops around it (any of them), or, for
        a statement outside loops, anywhere in ``fn``."""
        sites = self._eager_sites.get(id(fn))
        if sites is None:
            sites = self._eager_sites[id(fn)] = [s for s in fn.calls if self._eager_site(s)]
        if not sites:
            return False
        if loop is None:
            return True
        chain = {id(lp) for lp in iter_loops(loop)}
        return any(any(id(lp) in chain for lp in s.loops) for s in sites)

    # -- what makes code eager ----------------------------------------------------------------
    def _eager_site(self, site: CallSite) -> bool:
        if site.qn == _TAPE or (site.method == "numpy" and not site.node.args):
            return True
        target = self.ctx.resolve_local_function(site)
        if target is None:
            return False
        return is_tf_function(target) or self.ctx.reaches(
            target, lambda s: s.qn == _TAPE, "modes-gradient-tape")

    # -- graph contexts -----------------------------------------------------------------------
    def _graph_item(self, expr: cst.BaseExpression) -> bool:
        """A ``with`` item that makes a graph the default: a ``Session`` entered (it enters its
        graph), or ``.as_default()`` of a graph."""
        if not isinstance(expr, cst.Call):
            return False
        if is_session_ctor(self.ctx.names.resolve(expr.func)):
            return True
        func = expr.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "as_default"):
            return False
        recv = func.value
        if isinstance(recv, cst.Call):
            return self.ctx.names.resolve(recv.func) == "tensorflow.Graph"
        text = self.ctx.code(recv).replace(" ", "")
        if isinstance(recv, cst.Name):
            for fn in self.ctx.functions:  # ``g = tf.Graph()`` in any scope
                for ev in fn.assigns:
                    if isinstance(ev.target, cst.Name) and ev.target.value == recv.value \
                            and isinstance(ev.value, cst.Call) \
                            and self.ctx.names.resolve(ev.value.func) == "tensorflow.Graph":
                        return True
        return bool(_GRAPH_NAME.search(text))

    def _graph_contexts(self) -> set[int]:
        """ids of the statements inside graph ``with`` blocks (not inside functions or
        classes defined there: those run when they are called)."""
        if not any(s.method == "as_default" or is_session_ctor(s.qn) for s in self.ctx.calls):
            return set()
        out: set[int] = set()
        todo: list[cst.CSTNode] = [self.ctx.module]
        while todo:
            node = todo.pop()
            if isinstance(node, cst.With) and any(self._graph_item(i.item) for i in node.items):
                _statements(node.body, out)
                continue  # everything inside is graph code already
            for child in node.children:
                if isinstance(child, cst.BaseStatement | cst.BaseSuite) or _holds_body(child):
                    todo.append(child)
        return out

    def _session_spans(self) -> list[tuple[int, int]]:
        """Module-level code that runs with a session, as (first, last) seqs: from the start
        of the module (TF1 scripts build their graph first, then open the session to run it)
        to ``sess.close()`` (the end of the module when it is never closed), or to a ``with
        tf.Session()`` block (whose body is a graph context already)."""
        module = self.ctx.module_func
        entered: set[int] = set()  # sessions entered by ``with``: their block is a context
        for item, _, _ in module.with_items:
            expr = item.item
            entered.add(id(expr))
            if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
                entered.add(id(expr.func.value))
        spans = []
        for site in module.calls:
            if not is_session_ctor(site.qn):
                continue
            if id(site.node) in entered:
                spans.append((0, site.seq))
                continue
            names = [t.value for t in site.assigned_to if isinstance(t, cst.Name)]
            end = 10**12 if names else site.seq
            for later in module.calls:
                if later.seq > site.seq and later.method == "close" and isinstance(
                        later.receiver, cst.Name) and later.receiver.value in names:
                    end = later.seq
                    break
            spans.append((0, end))
        return spans

    # -- graph functions ----------------------------------------------------------------------
    def _graph_functions(self) -> set[int]:
        ctx = self.ctx
        module = ctx.module_func
        work = [fn for fn in ctx.functions if fn is not module and (
            fn.name == "get_updates" or any(
                s.qn in GRAPH_API_CALLS or is_session_ctor(s.qn) for s in fn.calls))]
        if module is not None and any(s.qn in GRAPH_API_CALLS for s in module.calls):
            work.append(module)
        # functions called from a graph context or after a module-level session
        for site in ctx.calls:
            inside = site.stmt is not None and id(site.stmt) in self.contexts
            after = site.func is module and any(a <= site.seq <= b
                                               for a, b in self.session_spans)
            if inside or after:
                target = ctx.resolve_local_function(site)
                if target is not None and target is not module:
                    work.append(target)
        found = {id(fn) for fn in work}
        while work:
            fn = work.pop()
            nxt = [t for _, t in ctx.callees(fn)] + list(fn.children.values())
            for target in nxt:
                if id(target) not in found and target is not module:
                    found.add(id(target))
                    work.append(target)
        for fn in ctx.functions:  # nested in a graph function
            parent = fn.parent
            while parent is not None and id(fn) not in found:
                if id(parent) in found and parent.node is not None:
                    found.add(id(fn))
                parent = parent.parent
        return found


def _holds_body(node: cst.CSTNode) -> bool:
    """The parts of a compound statement that hold statements (``else``, ``except``,
    ``finally``, ``case``)."""
    return isinstance(node, cst.Else | cst.ExceptHandler | cst.ExceptStarHandler | cst.Finally
                      | cst.MatchCase)


def _statements(node: cst.CSTNode, out: set[int]) -> None:
    """Add the ids of the statements under ``node`` (not inside ``def`` or ``class``)."""
    todo = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, cst.BaseStatement):
            out.add(id(n))
            if isinstance(n, cst.SimpleStatementLine | cst.FunctionDef | cst.ClassDef):
                continue
        for child in n.children:
            if isinstance(child, cst.BaseStatement | cst.BaseSuite) or _holds_body(child):
                todo.append(child)


__all__ = ["EAGER_OFF_CALLS", "GRAPH_API_CALLS", "GraphModes"]
