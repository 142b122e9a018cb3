"""US: Unclosed Session."""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from leakwatt.mining.rules.api import Fix, Invalid, Report, Rule, Seeds, Valid, dedent
from leakwatt.mining.rules.context import ModuleContext
from leakwatt.mining.rules.index import CallSite
from leakwatt.mining.rules.values import is_session_ctor


class UnclosedSession(Rule):
    """A TF1 ``Session``/``InteractiveSession`` (any alias, ``tf.compat.v1`` included) that is
    neither used in a ``with`` statement nor closed on every path.

    A session holds its graph's resources and device memory until ``close()``. Closed means:
    ``with tf.Session() as s``, ``with s:``, ``contextlib.closing(...)``, or ``s.close()`` in the
    same block as the constructor or in a ``finally`` clause (``self.sess.close()`` anywhere in
    the class for sessions stored on ``self``). A ``close()`` only inside a branch or loop is
    reported with lower confidence; a session returned to the caller is the caller's business.
    ``with sess.as_default():`` does not close the session. The finding is at the constructor.

    Autofix: turn ``sess = tf.Session(...)`` and the rest of its block into
    ``with tf.Session(...) as sess:``.
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
    }
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
    ]

    def check(self, ctx: ModuleContext) -> Iterable[Report]:
        finally_bodies: set[int] | None = None
        for site in ctx.calls:
            if not is_session_ctor(site.qn):
                continue
            fn = site.func
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
        block = site.block
        stmt = site.stmt
        if block is None or site.block_index < 0 or not isinstance(
                stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
            return None
        body = list(block.body)  # type: ignore[attr-defined]
        rest = body[site.block_index + 1:]
        if any(isinstance(s, cst.FunctionDef | cst.ClassDef) for s in rest):
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
            inner = [s for s in stmts[i + 1:] if not is_close(s)] or [
                cst.SimpleStatementLine([cst.Pass()])]
            value = assign.body[0].value if isinstance(assign.body[0], cst.Assign) else call
            new = cst.With(
                items=[cst.WithItem(item=value, asname=cst.AsName(name=cst.Name(name)))],
                body=cst.IndentedBlock(body=inner), leading_lines=assign.leading_lines)
            return updated.with_changes(body=[*stmts[:i], new])

        return Fix(target=block, key=f"us-with:{id(block)}:{site.block_index}", apply=apply)


def _finally_bodies(module: cst.Module) -> set[int]:
    found: set[int] = set()

    class _V(cst.CSTVisitor):
        def visit_Finally(self, node: cst.Finally) -> None:
            found.add(id(node.body))

    module.visit(_V())
    return found
