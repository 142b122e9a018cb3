"""US: Unclosed Session."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import libcst as cst

from leakwatt.mining.rules.api import Fix, Invalid, Report, Rule, Seeds, Valid, dedent
from leakwatt.mining.rules.context import ModuleContext
from leakwatt.mining.rules.index import CallSite, FuncInfo
from leakwatt.mining.rules.kit import (
    call_name,
    called_in_loop,
    called_per_iteration,
    method_owner,
    repetition_via,
)
from leakwatt.mining.rules.uge import fresh_graph_item
from leakwatt.mining.rules.values import called_from_other_modules, is_session_ctor


class UnclosedSession(Rule):
    """A TF1 ``Session``/``InteractiveSession`` (any alias, ``tf.compat.v1`` included) that is
    neither used in a ``with`` statement nor closed on every path.

    A session holds its graph's resources and device memory until ``close()``. Closed means:
    ``with tf.Session() as s``, ``with s:``, ``contextlib.closing(...)``, or ``s.close()`` in the
    same block as the constructor or in a ``finally`` clause (``self.sess.close()`` anywhere in
    the class for sessions stored on ``self``). A ``close()`` only inside a branch or loop is
    reported with lower confidence; a session returned to the caller is the caller's business.
    ``with sess.as_default():`` does not close the session. The finding is at the constructor,
    or, for a session a same-module *factory* opens and returns (``def make_session(): return
    tf.Session(config=cfg)``), at each call of the factory: that call is checked like a
    constructor (closed, in a loop).

    *Session in a loop* (``session-in-loop``): a session constructed inside a ``for``/``while``
    loop or a comprehension (or in a function called from one, directly or through other
    functions, a method called on an instance in a loop such as ``net.init_weights()`` per
    trial, also a method another project module calls in a loop: ``via`` names it) costs its
    creation on every iteration, closed or not. It is more severe (``session-in-loop-kept``)
    when the session escapes the iteration: appended to a list, stored on ``self`` or in a
    container, or passed to ``set_session``; then every session and its graph's resources
    stay alive. A session per
    iteration of a loop that builds a fresh graph each time (``with tf.Graph().as_default():``,
    ``tf.reset_default_graph()``, ``clear_session()`` in the iteration, or
    ``Session(graph=g)`` with ``g`` made in the iteration) is its own, milder variant
    (``session-in-loop-fresh-graph``, lower confidence): a session belongs to one graph, yet
    an identical graph and session rebuilt per restart or grid point still costs their creation
    each time. ``Session(graph=g)`` over one graph made before the loop is plain
    ``session-in-loop``. Not reported as such: a session created once outside the loop.
    Fresh-graph sessions are still checked for ``close()`` like any other.

    Autofix: turn ``sess = tf.Session(...)`` and the statements of its block up to the last one
    that uses ``sess`` into ``with tf.Session(...) as sess:`` (what follows stays outside).
    """

    CODE = "US"
    NAME = "Unclosed Session"
    MESSAGE = ("TensorFlow Session is never closed on every path; use "
               "`with tf.compat.v1.Session() as sess:` or call sess.close() in a finally block")
    #: ``close``/``closing`` calls matter (they end a session) only where a Session appears.
    SEEDS = Seeds(api=frozenset({"Session", "InteractiveSession"}),
                  calls_if={"Session": frozenset({"close", "closing"})})
    VARIANTS = {
        "session-no-close": "the session is never closed",
        "session-close-conditional": "close() only on some paths (inside a branch or loop)",
        "session-as-default": "used in `with sess.as_default()`, which does not close it",
        "session-set-global": "handed to keras.backend.set_session and never closed",
        "session-in-loop": "a session constructed on every iteration of a loop (or in a "
                           "function called from one)",
        "session-in-loop-kept": "more severe: a session constructed per iteration that escapes "
                                "it (appended, stored on self, passed to set_session), so "
                                "every session stays alive",
        "session-in-loop-fresh-graph": "milder: a session constructed per iteration of a loop "
                                       "that makes a fresh graph each time (an identical graph "
                                       "and session rebuilt per restart or grid point)",
    }
    IN_LOOP_MESSAGE = ("TensorFlow Session constructed on every iteration of a loop: each "
                       "creation costs time and memory. Create the session once before the "
                       "loop and reuse it")
    FRESH_GRAPH_MESSAGE = ("TensorFlow Session constructed on every iteration, each over a "
                           "fresh graph: the graph and session are rebuilt per iteration. If "
                           "the graph is the same each time, build it and its session once "
                           "before the loop and reuse them")
    KEPT_MESSAGE = ("TensorFlow Session constructed on every iteration and kept (appended, "
                    "stored on self or passed to set_session): every session and its graph "
                    "resources stay alive, more severe than a session closed per iteration. "
                    "Create one session before the loop and reuse it")
    VALID = [
        Valid(dedent("""
            import tensorflow as tf
            with tf.Session() as sess:
                sess.run(op)
            """)),
        Valid(dedent("""
            import tensorflow.compat.v1 as tf1
            sess = tf1.Session()
            try:
                sess.run(op)
            finally:
                sess.close()
            """)),
        Valid(dedent("""
            import tensorflow as tf

            def run():
                sess = tf.compat.v1.InteractiveSession()
                out = sess.run(op)
                sess.close()
                return out
            """)),
        Valid(dedent("""
            import requests
            s = requests.Session()
            s.get(url)
            """)),
        Valid(dedent("""
            import tensorflow as tf

            def make_session():
                return tf.compat.v1.Session(config=cfg)
            """)),
        Valid(dedent("""
            import tensorflow as tf

            class Runner:
                def __init__(self):
                    self.sess = tf.Session()

                def close(self):
                    self.sess.close()
            """)),
        Valid(dedent("""
            import tensorflow as tf
            with tf.Session() as sess:
                for batch in batches:
                    sess.run(train_op, feed_dict={x: batch})
            """)),
        Valid(dedent("""
            import tensorflow as tf
            graph = tf.Graph()
            with graph.as_default():
                build()
            with tf.Session(graph=graph) as sess:
                for lr in [0.1, 0.01]:
                    sess.run(train_op, feed_dict={rate: lr})
            """)),
        Valid(dedent("""
            import tensorflow as tf

            def make_session():
                return tf.Session(config=tf.ConfigProto(allow_soft_placement=True))

            sess = make_session()
            try:
                sess.run(op)
            finally:
                sess.close()
            """)),
    ]
    INVALID = [
        Invalid(dedent("""
            import tensorflow as tf
            sess = tf.Session()
            sess.run(tf.global_variables_initializer())
            print(sess.run(y))
            """), line=2, variant="session-no-close", expected_replacement=dedent("""
            import tensorflow as tf
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                print(sess.run(y))
            """)),
        Invalid(dedent("""
            from tensorflow.compat.v1 import InteractiveSession

            def evaluate(x):
                sess = InteractiveSession()
                if x:
                    sess.close()
                return 1
            """), line=4, variant="session-close-conditional"),
        Invalid(dedent("""
            import tensorflow as tf
            with tf.compat.v1.Session().as_default() as sess:
                sess.run(op)
            """), line=2, variant="session-as-default"),
        Invalid(dedent("""
            import tensorflow as tf
            from keras import backend as K
            K.set_session(tf.Session(config=cfg))
            """), line=3, variant="session-set-global"),
        Invalid(dedent("""
            import tensorflow as tf
            for image in images:
                with tf.Session() as sess:
                    print(sess.run(pred, feed_dict={x: image}))
            """), line=3, variant="session-in-loop"),
        Invalid(dedent("""
            import tensorflow as tf
            sessions = []
            for i in range(10):
                sess = tf.compat.v1.InteractiveSession()
                sessions.append(sess)
            """), line=4, variant="session-in-loop-kept"),
        Invalid(dedent("""
            import tensorflow as tf
            from keras import backend as K

            def predict(x):
                K.set_session(tf.Session())
                return model.predict(x)

            for x in xs:
                predict(x)
            """), line=5, variant="session-in-loop-kept"),
        Invalid(dedent("""
            import tensorflow as tf

            class Agent:
                def act(self, state):
                    while True:
                        self.sess = tf.Session()
                        self.sess.close()
            """), line=6, variant="session-in-loop-kept"),
        Invalid(dedent("""
            import tensorflow as tf
            for lr in [0.1, 0.01]:
                with tf.Graph().as_default():
                    build(lr)
                    with tf.Session() as sess:
                        sess.run(train_op)
            """), line=5, variant="session-in-loop-fresh-graph"),
        Invalid(dedent("""
            import tensorflow as tf
            graph = tf.Graph()
            with graph.as_default():
                build()
            for lr in [0.1, 0.01, 0.001]:
                with tf.Session(graph=graph) as sess:
                    sess.run(train_op, feed_dict={rate: lr})
            """), line=6, variant="session-in-loop"),
        Invalid(dedent("""
            import tensorflow as tf
            for restart in range(5):
                g = tf.Graph()
                with g.as_default():
                    build()
                sess = tf.Session(graph=g)
                sess.run(train_op)
            """), line=6, variant="session-in-loop-fresh-graph"),
        Invalid(dedent("""
            import tensorflow as tf

            def train(folds):
                graph = build_graph()

                def run_fold(fold):
                    with tf.compat.v1.Session(graph=graph) as sess:
                        sess.run(train_op)

                for fold in folds:
                    run_fold(fold)
            """), line=7, variant="session-in-loop"),
        Invalid(dedent("""
            import tensorflow as tf

            def make_session():
                return tf.Session(config=tf.ConfigProto(allow_soft_placement=True))

            for run in range(5):
                tf.reset_default_graph()
                build_model()
                sess = make_session()
                sess.run(tf.global_variables_initializer())
            """), line=9, variant="session-in-loop-fresh-graph"),
        Invalid(dedent("""
            import tensorflow.compat.v1 as tf

            def open_session():
                sess = tf.Session()
                sess.run(tf.global_variables_initializer())
                return sess

            sess = open_session()
            print(sess.run(y))
            """), line=8, variant="session-no-close"),
        Invalid(dedent("""
            import tensorflow as tf

            class Net:
                def init_weights(self):
                    self.sess = tf.Session()
                    self.sess.run(tf.global_variables_initializer())

                def train(self, data):
                    for epoch in range(10):
                        self.sess.run(self.train_op, feed_dict={self.x: data})

            net = Net()
            for trial in range(20):
                net.init_weights()
                net.train(data)
            """), line=5, variant="session-in-loop-kept"),
    ]

    def check(self, ctx: ModuleContext) -> Iterable[Report]:
        finally_bodies: set[int] | None = None
        repeated: frozenset[int] | None = None
        factories = ctx.analysis(_session_factories)
        for site in ctx.calls:
            factory = None
            if not is_session_ctor(site.qn):
                factory = _factory_called(ctx, site, factories)
                if factory is None:
                    continue
            fn = site.func
            if repeated is None:
                repeated = ctx.analysis(called_per_iteration)
            via_of = ctx.analysis(repetition_via)
            remote = ctx.analysis(called_from_other_modules)
            # A factory's own constructor, where the module calls the factory: the finding
            # is at each call that repeats (the call in the loop), as IMR's builders are.
            at_callers = factory is None and not site.loops and factories.get(id(fn), False) \
                and id(fn) not in remote
            if (site.loops or id(fn) in repeated or id(fn) in via_of) and not at_callers:
                via = "" if site.loops or id(fn) in ctx.analysis(called_in_loop) else \
                    via_of.get(id(fn), "")
                if factory is not None:
                    via = "; ".join(v for v in (
                        via, f"the session is opened by {factory.qualname}()") if v)
                report = self._in_loop(ctx, site, bool(site.loops), via, factory)
                if report is not None:
                    yield report
                    if report.variant == "session-in-loop-kept":
                        continue  # kept sessions are the leak; per-iteration ones may
                        # also never be closed (checked below: a second finding)
            if any(item.item is site.node for item, _, _ in fn.with_items):
                continue
            parent = site.parent_call
            if parent is not None:
                pqn = ctx.names.resolve(parent.func) or ""
                if pqn.endswith("closing"):
                    continue
                if pqn.endswith("set_session"):
                    yield self._report(site, "session-set-global", 0.6)
                    continue
            if any(isinstance(item.item, cst.Call) and isinstance(item.item.func, cst.Attribute)
                   and item.item.func.value is site.node for item, _, _ in fn.with_items):
                yield self._report(site, "session-as-default", 0.85)
                continue
            targets = site.assigned_to
            if not targets:
                if isinstance(site.small, cst.Return) and site.small.value is site.node:
                    continue
                yield self._report(site, "session-no-close", 0.85)
                continue
            target = targets[0]
            text = ctx.code(target)
            if isinstance(target, cst.Name) and self._returned(fn, text):
                continue
            closes = [s for s in (fn.calls if isinstance(target, cst.Name) else ctx.calls)
                      if s.method == "close" and s.receiver is not None
                      and ctx.code(s.receiver) == text
                      and (s.seq > site.seq or not isinstance(target, cst.Name))]
            used_in_with = any(ctx.code(item.item) == text and seq > site.seq
                               for item, seq, _ in fn.with_items)
            closing = any(s.qn and s.qn.endswith("closing") and s.node.args and
                          ctx.code(s.node.args[0].value) == text for s in fn.calls)
            if used_in_with or closing:
                continue
            if not closes:
                fix = self._fix(site, text) if isinstance(target, cst.Name) else None
                yield self._report(site, "session-no-close", 0.9, fix)
                continue
            if not isinstance(target, cst.Name):
                continue  # self.sess closed somewhere in the class
            if finally_bodies is None:
                finally_bodies = _finally_bodies(ctx.module)
            if any(c.block is site.block or id(c.block) in finally_bodies for c in closes):
                continue
            yield self._report(site, "session-close-conditional", 0.6)

    def _in_loop(self, ctx: ModuleContext, site: CallSite, direct: bool,
                 via: str = "", factory: FuncInfo | None = None) -> Report | None:
        """A ``session-in-loop`` report for a constructor in a loop (``direct``) or in a
        function called from one; ``session-in-loop-fresh-graph`` when each iteration has a
        fresh graph (and the session does not escape)."""
        kept = _escapes(ctx, site)
        fresh = not kept and (_fresh_graph_per_iteration(ctx, site, direct) or (
            factory is not None and any(s.qn in _RESETS for s in factory.calls)))
        if fresh:
            variant, message = "session-in-loop-fresh-graph", self.FRESH_GRAPH_MESSAGE
            confidence = 0.55 if direct else 0.5
        elif kept:
            variant, message = "session-in-loop-kept", self.KEPT_MESSAGE
            confidence = 0.9 if direct else 0.75
        else:
            variant, message = "session-in-loop", self.IN_LOOP_MESSAGE
            confidence = 0.75 if direct else 0.6
        return Report(node=site.node, variant=variant, confidence=confidence, message=message,
                      loop_kind=site.loops[-1].kind if site.loops else "",
                      function=site.func.qualname, stmt=site.stmt, via=via)

    @staticmethod
    def _returned(fn, text: str) -> bool:  # type: ignore[no-untyped-def]
        return any(isinstance(value, cst.Name) and value.value == text
                   for value, _ in fn.returns)

    @staticmethod
    def _report(site: CallSite, variant: str, confidence: float, fix: Fix | None = None) -> Report:
        return Report(node=site.node, variant=variant, confidence=confidence,
                      function=site.func.qualname, stmt=site.stmt, fix=fix)

    @staticmethod
    def _fix(site: CallSite, name: str) -> Fix | None:
        """``with <ctor> as name:`` around the statements of the constructor's block up to the
        last one that uses ``name``; what follows is left as it was. No fix when a function,
        class or lambda in the rest of the block uses the session (it could run after the
        ``with`` block closed it) or when the wrapped statements define one."""
        block = site.block
        stmt = site.stmt
        if block is None or site.block_index < 0 or not isinstance(
                stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
            return None
        body = list(block.body)  # type: ignore[attr-defined]
        rest = body[site.block_index + 1:]
        last = _last_use(rest, name)
        if any(isinstance(s, cst.FunctionDef | cst.ClassDef) for s in rest[:last + 1]) or any(
                _deferred_use(s, name) for s in rest):
            return None
        from_end = len(body) - site.block_index
        call = site.node

        def is_close(s: cst.CSTNode) -> bool:
            return (isinstance(s, cst.SimpleStatementLine) and len(s.body) == 1
                    and isinstance(s.body[0], cst.Expr)
                    and cst.Module([]).code_for_node(s.body[0]).strip() == f"{name}.close()")

        def apply(updated):  # type: ignore[no-untyped-def]
            stmts = list(updated.body)
            i = len(stmts) - from_end
            assign = stmts[i]
            end = i + 1 + _last_use(stmts[i + 1:], name) + 1
            inner = [_no_blank_indent(s) for s in stmts[i + 1:end] if not is_close(s)] or [
                cst.SimpleStatementLine([cst.Pass()])]
            inner[0] = inner[0].with_changes(leading_lines=_drop_leading_blanks(
                inner[0].leading_lines))
            value = assign.body[0].value if isinstance(assign.body[0], cst.Assign) else call
            new = cst.With(
                items=[cst.WithItem(item=value, asname=cst.AsName(name=cst.Name(name)))],
                body=cst.IndentedBlock(body=inner), leading_lines=assign.leading_lines)
            return updated.with_changes(body=[*stmts[:i], new, *stmts[end:]])

        return Fix(target=block, key=f"us-with:{id(block)}:{site.block_index}", apply=apply)


class _Uses(cst.CSTVisitor):
    """Finds a read or write of a variable (not an attribute or keyword of that name); with
    ``deferred``, only inside a function, class or lambda."""

    def __init__(self, name: str, deferred: bool = False) -> None:
        self.name = name
        self.deferred = deferred
        self.depth = 0
        self.found = False

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)  # ``x.sess`` is not the variable ``sess``
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        node.value.visit(self)  # nor is the keyword of ``f(sess=...)``
        return False

    def visit_Name(self, node: cst.Name) -> None:
        if node.value == self.name and (not self.deferred or self.depth):
            self.found = True

    def _enter(self, node: cst.CSTNode) -> None:
        self.depth += 1

    def _leave(self, node: cst.CSTNode) -> None:
        self.depth -= 1

    visit_FunctionDef = visit_ClassDef = visit_Lambda = _enter  # type: ignore[assignment]
    leave_FunctionDef = leave_ClassDef = leave_Lambda = _leave  # type: ignore[assignment]


def _uses(node: cst.CSTNode, name: str, deferred: bool = False) -> bool:
    finder = _Uses(name, deferred)
    node.visit(finder)
    return finder.found


def _deferred_use(node: cst.CSTNode, name: str) -> bool:
    return _uses(node, name, deferred=True)


def _last_use(stmts: list[cst.CSTNode], name: str) -> int:
    """Index of the last of ``stmts`` that uses ``name`` (-1: none)."""
    return max((k for k, s in enumerate(stmts) if _uses(s, name)), default=-1)


class _NoBlankIndent(cst.CSTTransformer):
    """Blank lines written without indentation: moved into a deeper block, an indented blank
    line would be whitespace-only (pycodestyle W293)."""

    def leave_EmptyLine(self, original_node: cst.EmptyLine,
                        updated_node: cst.EmptyLine) -> cst.EmptyLine:
        if updated_node.comment is None:
            return updated_node.with_changes(indent=False, whitespace=cst.SimpleWhitespace(""))
        return updated_node


def _no_blank_indent(stmt: cst.CSTNode) -> cst.CSTNode:
    return stmt.visit(_NoBlankIndent())  # type: ignore[return-value]


def _drop_leading_blanks(lines: Sequence[cst.EmptyLine]) -> list[cst.EmptyLine]:
    """``lines`` without the blank lines before the first comment (a ``with`` header is not
    followed by a blank line)."""
    out = list(lines)
    while out and out[0].comment is None:
        out.pop(0)
    return out


def _escapes(ctx: ModuleContext, site: CallSite) -> bool:
    """The session outlives its iteration: passed to ``set_session`` (or appended), stored on
    an attribute or subscript, or a name bound to it is appended or stored later."""
    parent = site.parent_call
    if parent is not None and call_name(parent.func) in ("set_session", "append", "extend",
                                                         "insert", "add"):
        return True
    for target in site.assigned_to:
        if isinstance(target, cst.Attribute | cst.Subscript):
            return True
        if isinstance(target, cst.Name):
            for s in site.func.calls:
                if s.seq <= site.seq or call_name(s.node.func) not in (
                        "set_session", "append", "extend", "insert", "add"):
                    continue
                if any(isinstance(a.value, cst.Name) and a.value.value == target.value
                       for a in s.node.args):
                    return True
            for ev in site.func.assigns:
                if (ev.seq > site.seq and isinstance(ev.target, cst.Attribute | cst.Subscript)
                        and isinstance(ev.value, cst.Name) and ev.value.value == target.value):
                    return True
    return False


#: Calls that start a new default graph.
_RESETS = ("tensorflow.reset_default_graph", "keras.backend.clear_session")


def _fresh_graph_per_iteration(ctx: ModuleContext, site: CallSite, direct: bool) -> bool:
    """Each iteration (or each call of the repeated function) builds a new graph."""
    for a in site.node.args:
        if a.keyword is not None and a.keyword.value == "graph":
            return _graph_made_per_iteration(ctx, site, a.value, direct)
    if any(fresh_graph_item(ctx, w, site.func) for w in site.withs
           if isinstance(w, cst.BaseExpression)):
        return True
    fn = site.func
    resets = _RESETS
    if not direct:
        return any(s.qn in resets for s in fn.calls)
    loop = site.loops[-1]
    return any(s.qn in resets and loop in s.loops for s in fn.calls) or any(
        fresh_graph_item(ctx, item.item, fn) for item, _, loops in fn.with_items
        if loop in loops)


def _finally_bodies(module: cst.Module) -> set[int]:
    found: set[int] = set()

    class _V(cst.CSTVisitor):
        def visit_Finally(self, node: cst.Finally) -> None:
            found.add(id(node.body))

    module.visit(_V())
    return found


def _graph_made_per_iteration(ctx: ModuleContext, site: CallSite,
                              graph: cst.BaseExpression, direct: bool = True) -> bool:
    """``Session(graph=g)`` in a loop (``direct``) or in a function called per iteration:
    ``g`` is made in the same iteration or call (``tf.Graph()`` or ``with
    tf.Graph().as_default() as g``), not one graph shared by every iteration (a session per
    grid point over one graph, or per call over a graph the enclosing function built once:
    plain ``session-in-loop``)."""
    if isinstance(graph, cst.Call):
        return ctx.names.resolve(graph.func) == "tensorflow.Graph"
    if not isinstance(graph, cst.Name):
        return False
    ev = ctx.last_assign(site.func, graph.value, site.seq)
    if ev is None or ev.func is not site.func:
        return False  # a closure, a global or a parameter: not made per call here
    if direct and site.loops[-1] not in ev.loops:
        return False
    if ev.kind == "assign" and isinstance(ev.value, cst.Call):
        return ctx.names.resolve(ev.value.func) == "tensorflow.Graph"
    if ev.kind == "with" and ev.source is not None:
        return fresh_graph_item(ctx, ev.source, site.func)
    return False


def _session_factories(ctx: ModuleContext) -> dict[int, bool]:
    """Ids of this module's functions that return a new session (``def make_session():
    return tf.Session(config=cfg)``, or a name bound to a constructor there) -> whether a
    call of it is seen in this module. A module analysis."""
    found: dict[int, bool] = {}
    for fn in ctx.functions:
        if fn.node is None or not fn.returns:
            continue
        for value, seq in fn.returns:
            if isinstance(value, cst.Name):
                ev = ctx.last_assign(fn, value.value, seq + 1)
                value = ev.value if ev is not None and ev.func is fn and ev.kind == "assign" \
                    and ev.value is not None else value
            if isinstance(value, cst.Call) and is_session_ctor(ctx.names.resolve(value.func)):
                found[id(fn)] = False
                break
    if found:
        for site in ctx.calls:
            target = ctx.resolve_local_function(site) or method_owner(ctx, site)
            if target is not None and id(target) in found and target is not site.func:
                found[id(target)] = True
    return found


def _factory_called(ctx: ModuleContext, site: CallSite,
                    factories: dict[int, bool]) -> FuncInfo | None:
    """The session factory (:func:`_session_factories`) that ``site`` calls, if any."""
    if not factories or (site.simple_name is None and site.method is None):
        return None
    target = ctx.resolve_local_function(site) or method_owner(ctx, site)
    return target if target is not None and id(target) in factories \
        and target is not site.func else None
