"""UGE: Unbounded Graph Expansion (TF1 graph growth and TF2 retracing)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import libcst as cst

from leakwatt.mining.rules.api import Fix, Invalid, Report, Rule, Seeds, Valid, dedent
from leakwatt.mining.rules.context import ModuleContext
from leakwatt.mining.rules.fixes import replace_expr
from leakwatt.mining.rules.index import CallSite, FuncInfo, Loop
from leakwatt.mining.rules.kit import (
    REPEATED_HOOKS,
    call_name,
    called_in_loop,
    iter_loops,
    loop_iter,
    resolve_callee,
)
from leakwatt.mining.rules.values import is_session_ctor, is_tf_function

# -- graph-mode facts shared with GCB -----------------------------------------------------------

#: ``tensorflow.*`` calls that create no graph operation (configuration, files, logging,
#: graph and session management, protos, collections).
_NO_OP_LAST = frozenset({
    "Session", "InteractiveSession", "ConfigProto", "GPUOptions", "RunOptions", "RunMetadata",
    "Graph", "get_default_graph", "reset_default_graph", "set_random_seed", "device",
    "name_scope", "variable_scope", "get_variable_scope", "global_variables",
    "trainable_variables", "local_variables", "get_collection", "get_collection_ref",
    "TensorShape", "Dimension", "DType", "as_dtype", "latest_checkpoint",
    "get_checkpoint_state", "FileWriter", "Coordinator", "start_queue_runners", "Example",
    "Features", "Feature", "BytesList", "Int64List", "FloatList", "SequenceExample",
    "TFRecordWriter", "TFRecordOptions", "as_bytes", "as_text", "as_str", "enable_eager_execution",
    "disable_eager_execution", "executing_eagerly", "disable_v2_behavior", "get_default_session",
    "list_physical_devices", "list_logical_devices", "set_memory_growth", "set_verbosity",
    "NewCheckpointReader", "load_checkpoint", "list_variables", "GraphDef", "import_graph_def",
    "function", "get_logger", "ClusterSpec", "Server", "make_template", "is_gpu_available",
    "is_built_with_cuda", "gpu_device_name", "config", "Summary", "SummaryWriter",
    "create_file_writer", "merge_all", "CheckpointSaverHook", "SessionRunHook",
    "MonitoredTrainingSession", "Scaffold", "ExponentialMovingAverage", "GradientTape",
    "global_step", "write_graph", "Timeline", "Value", "SessionRunArgs",
})
#: ``tensorflow.<sub>.*`` submodules whose calls create no graph operation.
_NO_OP_SUBMODULES = frozenset({"gfile", "io.gfile", "logging", "app", "flags", "errors", "test",
                               "python_io", "saved_model", "profiler", "sysconfig", "config",
                               "debugging.set_log_device_placement", "autograph", "estimator",
                               "distribute", "lite", "tpu", "python.client"})
#: Loops over the graph's own structure (layers, variables, a dict of weights): they run a
#: bounded number of times while the graph is built or loaded, not once per step.
_STRUCTURE_ITER = re.compile(
    r"(?:^|_)(?:layers?|vars?|variables?|params?|parameters?|weights?|ops?|tensors?|names?|"
    r"keys?|scopes?)$|_dict$",
    re.IGNORECASE)
_GRAPH_RECEIVER = re.compile(r"(?:^|_|\.)(?:graph|g\d*)$", re.IGNORECASE)
_SESSION_RECEIVER = re.compile(r"sess", re.IGNORECASE)


def creates_op(qn: str | None) -> bool:
    """A call of ``qn`` adds operations to the default graph in graph mode (``tf.*`` ops,
    ``tf.placeholder``, ``tf.train.Saver``, optimizers' ``minimize`` is a method and not here)."""
    if not qn or not qn.startswith("tensorflow."):
        return False
    rest = qn[len("tensorflow."):]
    parts = rest.split(".")
    last = parts[-1]
    if not last or last[0] == "_" or last.endswith("Optimizer") or any(
            p in _NO_OP_LAST for p in parts):
        return False
    return not any(rest == sub or rest.startswith(sub + ".") for sub in _NO_OP_SUBMODULES)


def runs_graph(ctx: ModuleContext, site: CallSite) -> bool:
    """``sess.run(...)``, ``t.eval(feed_dict=...)``, ``op.run(feed_dict=...)`` or a
    ``K.function(...)`` (a graph callable)."""
    method = site.method
    if site.qn in ("keras.backend.function", "keras.backend.eval"):
        return True
    if method not in ("run", "eval"):
        return False
    recv = site.receiver
    text = ctx.code(recv) if recv is not None else ""
    if method == "run" and (_SESSION_RECEIVER.search(text) or (
            isinstance(recv, cst.Call) and is_session_ctor(ctx.names.resolve(recv.func)))):
        return True
    return any(a.keyword is not None and a.keyword.value in ("feed_dict", "session")
               for a in site.node.args) or (method == "eval" and graph_module(ctx))


def graph_module(ctx: ModuleContext) -> bool:
    """The module is TF1 graph-mode code: it builds a Session, a placeholder, disables eager
    execution or asks Keras for its session."""
    return ctx.analysis(_graph_module)


_GRAPH_MODE_QNS = frozenset({"tensorflow.placeholder", "tensorflow.disable_eager_execution",
                             "tensorflow.disable_v2_behavior", "keras.backend.get_session",
                             "tensorflow.get_default_session", "tensorflow.placeholder_with_default"})


def _graph_module(ctx: ModuleContext) -> bool:
    return any(is_session_ctor(s.qn) or s.qn in _GRAPH_MODE_QNS for s in ctx.calls)


def fresh_graph_item(ctx: ModuleContext, item: cst.BaseExpression, fn: FuncInfo) -> bool:
    """A ``with`` item that makes a new graph the default: ``tf.Graph().as_default()``,
    ``g.as_default()`` for ``g = tf.Graph()`` or a name like ``graph``."""
    if not (isinstance(item, cst.Call) and call_name(item.func) == "as_default"
            and isinstance(item.func, cst.Attribute)):
        return False
    recv = item.func.value
    if isinstance(recv, cst.Call):
        return ctx.names.resolve(recv.func) == "tensorflow.Graph"
    if isinstance(recv, cst.Name):
        ev = ctx.last_assign(fn, recv.value, 10**9)
        if ev is not None and isinstance(ev.value, cst.Call):
            return ctx.names.resolve(ev.value.func) == "tensorflow.Graph"
    text = ctx.code(recv)
    return bool(_GRAPH_RECEIVER.search(text)) and not _SESSION_RECEIVER.search(text)


def _resets(ctx: ModuleContext, site: CallSite) -> bool:
    """A call that starts a new default graph (``reset_default_graph``, ``clear_session``)."""
    return site.qn in ("tensorflow.reset_default_graph", "keras.backend.clear_session")


def in_fresh_graph(ctx: ModuleContext, site: CallSite) -> bool:
    """``site`` runs under a ``with <new graph>.as_default():`` block."""
    return any(fresh_graph_item(ctx, w, site.func) for w in site.withs
               if isinstance(w, cst.BaseExpression))


def _sites_in(fn: FuncInfo, loop: Loop) -> Iterator[CallSite]:
    return (s for s in fn.calls if loop in s.loops)


class UnboundedGraphExpansion(Rule):
    """Graph operations created again on every iteration of a loop that also runs the graph
    (TF1 / Keras-2 graph mode), or a ``tf.function`` traced again on every iteration (TF2).

    *Graph variants.* In graph mode every ``tf.*`` call adds nodes to the default graph, which
    never shrinks: a loop (or a function called from one) that both creates operations
    (``tf.argmax``, ``tf.assign``, ``tf.global_variables_initializer()``, ``tf.train.Saver()``,
    ``tf.placeholder`` ...) and runs the graph (``sess.run``, ``t.eval(feed_dict=...)``,
    ``op.run(feed_dict=...)``, ``K.function``) grows the graph, and each ``run`` gets slower,
    on every step. Configuration, file, logging and graph-management calls (``tf.ConfigProto``,
    ``tf.gfile``, ``tf.summary.FileWriter``, ``tf.name_scope`` ...) are not operations. Not
    reported: operations built once before the loop (the graph may then be finalized); a loop
    that builds a fresh graph per iteration (``with tf.Graph().as_default():``,
    ``tf.reset_default_graph()`` or ``clear_session()`` in the iteration); loops that only build
    the graph (stacking layers) and run nothing. The finding is at each statement that creates
    an operation inside the loop.

    *Operations built by the functions a loop calls.* The loop's calls are followed into the
    module's functions and methods, three calls deep: ``helper(x)``, ``self.build_acc()``,
    ``model.build_decoder()`` on an instance of a module class (``model = Seq2Seq()``, or
    ``self.model`` stored as one), ``Model(config)`` (its ``__init__``), and, where nothing
    says what the receiver holds (a parameter, ``self.agent = agent``), the one module class
    defining a method of that name (lower confidence, named in the finding's ``via``; not
    for names library objects share, ``update``, ``run``, ``predict`` ...). An optimizer's
    ``minimize`` counts as an operation. When a callee creates operations on every call and
    the loop runs the graph, the finding is at the call in the loop, and its message names
    the chain of callees and the operation (``via`` too). Not reported: callees that only
    run the graph, feed placeholders or compute with numpy; operations built once behind a
    cache guard (``if self.acc_op is None:``, ``if not hasattr(self, "op"):``, ``if k not in
    cache:``, or after ``if self.op is not None: return self.op``); a ``tf.function`` callee
    (traced once); a callee that resets the default graph or builds under a fresh one. A
    Keras hook (``on_epoch_end``) that creates operations and runs the graph is reported at
    its operations.

    *Retrace variants.* A ``@tf.function`` (or ``f = tf.function(g)``) called inside a loop
    with a Python number that changes per iteration (a ``range``/``enumerate`` index, a numeric
    loop target, a counter incremented in the loop, or a number computed from one in the
    iteration: ``lr_scale = 0.5 ** epoch``, named in the finding's ``via``) is traced again
    for each new value, and each trace is a new concrete graph kept by the function.
    ``tf.function(...)`` created inside a step loop (or called right away in any loop) traces
    on every iteration. Not reported: a function with an ``input_signature``, tensor arguments
    (dataset batches), constant Python arguments (``training=True``), a number wrapped in
    ``tf.constant``. The finding is at the call (or at ``tf.function(...)``).

    Autofix (retrace with a Python number): wrap the argument in ``tf.constant(...)`` (spelled
    with the module's own alias), offered only when the called function is in the same module
    and uses that parameter only as an argument of ``tf``/``keras`` calls, where a tensor
    behaves like the number (not in Python control flow, ``range`` or indexing).
    """

    CODE = "UGE"
    NAME = "Unbounded Graph Expansion"
    MESSAGE = ("Graph grows on every iteration: operations are created (or a tf.function is "
               "retraced) inside a loop that runs the graph, so each step gets slower and memory "
               "grows. Build the operations once before the loop (and graph.finalize()), or pass "
               "tensors (tf.constant(x)) instead of changing Python numbers to a tf.function")
    SEEDS = Seeds(api=frozenset({"function", "Session", "InteractiveSession"}),
                  calls=frozenset({"run", "eval"}))
    VARIANTS = {
        "graph-op-in-loop": "tf operations created inside a loop that also runs the graph",
        "graph-op-in-called-fn": "tf operations created in a function called from a loop "
                                 "that runs the graph (reported at the call in the loop)",
        "retrace-python-arg": "a tf.function called in a loop with a Python number that "
                              "changes per iteration",
        "function-per-step": "tf.function(...) created on every iteration of a loop",
    }
    VALID = [
        Valid(dedent("""
            import tensorflow as tf
            x = tf.placeholder(tf.float32, [None, 10])
            pred = tf.argmax(model(x), 1)
            sess = tf.Session()
            sess.graph.finalize()
            for batch in batches:
                print(sess.run(pred, feed_dict={x: batch}))
            """)),
        Valid(dedent("""
            import tensorflow as tf
            for lr in [0.1, 0.01]:
                with tf.Graph().as_default():
                    x = tf.placeholder(tf.float32, [None, 10])
                    loss = tf.reduce_mean(tf.square(x))
                    with tf.Session() as sess:
                        sess.run(loss, feed_dict={x: data})
            """)),
        Valid(dedent("""
            import tensorflow.compat.v1 as tf
            layers = []
            h = inputs
            for units in [64, 32]:
                h = tf.layers.dense(h, units)
            with tf.Session() as sess:
                sess.run(h)
            """)),
        Valid(dedent("""
            import tensorflow as tf

            @tf.function
            def step(x, training):
                return model(x, training=training)

            for x in dataset:
                step(x, True)
            """)),
        Valid(dedent("""
            import tensorflow as tf

            @tf.function(input_signature=[tf.TensorSpec([], tf.int64)])
            def log(i):
                tf.summary.scalar("i", i, step=i)

            for i in range(100):
                log(i)
            """)),
        Valid(dedent("""
            import tensorflow as tf
            for epoch in range(10):
                for x in dataset:
                    loss = tf.reduce_mean(model(x))
                tf.print(loss)
            """)),
        Valid(dedent("""
            import tensorflow as tf
            for i in range(3):
                tf.reset_default_graph()
                x = tf.placeholder(tf.float32)
                with tf.Session() as sess:
                    sess.run(x * 2, feed_dict={x: i})
            """)),
        Valid(dedent("""
            import tensorflow as tf

            @tf.function
            def train_step(x, lr_scale):
                return model(x) * lr_scale

            for epoch in range(100):
                lr_scale = tf.constant(0.5 ** (epoch // 10))
                base = 0.5
                train_step(batch, lr_scale)
                train_step(batch, base)
            """)),
        Valid(dedent("""
            import tensorflow as tf

            class Evaluator:
                def __init__(self):
                    self.acc_op = None

                def accuracy(self, sess, logits, labels):
                    if self.acc_op is None:
                        self.acc_op = tf.reduce_mean(tf.cast(tf.equal(logits, labels), tf.float32))
                    return sess.run(self.acc_op)

            evaluator = Evaluator()
            for epoch in range(10):
                print(evaluator.accuracy(sess, logits, labels))
            """)),
    ]
    INVALID = [
        Invalid(dedent("""
            import tensorflow as tf

            class Translator:
                def decode_op(self):
                    return tf.argmax(self.logits, axis=-1)

                def translate(self, sess, line):
                    ids = self.decode_op()
                    return sess.run(ids, feed_dict={self.src: line})

            translator = Translator()
            for line in lines:
                print(translator.translate(sess, line))
            """), line=5, variant="graph-op-in-called-fn"),
        Invalid(dedent("""
            import tensorflow as tf

            @tf.function
            def train_step(x, step):
                tf.summary.scalar("step", tf.cast(step, tf.float32), step=step)
                return model(x)

            for step in range(1000):
                train_step(batch, step)
            """), line=9, variant="retrace-python-arg", expected_replacement=dedent("""
            import tensorflow as tf

            @tf.function
            def train_step(x, step):
                tf.summary.scalar("step", tf.cast(step, tf.float32), step=step)
                return model(x)

            for step in range(1000):
                train_step(batch, tf.constant(step))
            """)),
        Invalid(dedent("""
            import tensorflow as tf
            x = tf.placeholder(tf.float32, [None, 10])
            sess = tf.Session()
            for batch in batches:
                pred = tf.argmax(model(x), 1)
                print(sess.run(pred, feed_dict={x: batch}))
            """), line=5, variant="graph-op-in-loop"),
        Invalid(dedent("""
            import tensorflow.compat.v1 as tf1

            def evaluate(sess, x, y):
                acc = tf1.reduce_mean(tf1.cast(tf1.equal(x, y), tf1.float32))
                return sess.run(acc)

            for epoch in range(100):
                print(evaluate(sess, a, b))
            """), line=4, variant="graph-op-in-called-fn"),
        Invalid(dedent("""
            import tensorflow as tf
            sess = tf.Session()
            while True:
                sess.run(tf.global_variables_initializer())
                sess.run(train_op)
            """), line=4, variant="graph-op-in-loop"),
        Invalid(dedent("""
            import tensorflow as tf
            from keras import backend as K
            for image in images:
                f = K.function([model.input], [model.layers[-1].output])
                outs = f([image])
            """), line=4, variant="graph-op-in-loop"),
        Invalid(dedent("""
            import tensorflow as tf

            def loss_fn(x):
                return tf.reduce_sum(x)

            for x in dataset:
                f = tf.function(loss_fn)
                f(x)
            """), line=7, variant="function-per-step"),
        Invalid(dedent("""
            import tensorflow as tf
            step_fn = tf.function(lambda x, lr: x * lr)
            for lr in [0.1, 0.01, 0.001]:
                step_fn(x, lr)
            """), line=4, variant="retrace-python-arg"),
        Invalid(dedent("""
            import tensorflow as tf

            @tf.function
            def train_step(x, lr_scale):
                return model(x) * lr_scale

            for epoch in range(100):
                lr_scale = 0.5 ** (epoch // 10)
                train_step(batch, lr_scale)
            """), line=9, variant="retrace-python-arg"),
    ]

    def check(self, ctx: ModuleContext) -> Iterable[Report]:
        yield from self._graph(ctx)
        yield from self._retrace(ctx)

    # -- TF1 graph growth ----------------------------------------------------------------------
    def _graph(self, ctx: ModuleContext) -> Iterator[Report]:
        if not any(runs_graph(ctx, s) for s in ctx.calls):
            return
        if any(s.method == "finalize" and s.receiver is not None
               and "graph" in ctx.code(s.receiver).lower() for s in ctx.calls):
            return  # a finalized graph raises on any new operation: built once by design
        repeated = ctx.analysis(called_in_loop)
        callers = _loop_callers(ctx)
        seen_stmts: set[int] = set()
        covered: set[int] = set()  # callees whose operations are reported at a loop's call
        yield from self._calls_that_build(ctx, covered)
        for site in ctx.calls:
            if not _op_site(ctx, site):
                continue
            if site.parent_call is not None and creates_op(ctx.names.resolve(
                    site.parent_call.func)):
                continue  # one report per expression: the outermost operation
            if id(site.stmt) in seen_stmts or _guarded(ctx, site):
                continue
            fn = site.func
            if site.loops:
                loop = self._running_loop(ctx, fn, site)
                if loop is None:
                    continue
                seen_stmts.add(id(site.stmt))
                yield Report(node=site.node, variant="graph-op-in-loop", confidence=0.8,
                             loop_kind=loop.kind, function=fn.qualname, stmt=site.stmt)
            elif id(fn) in repeated and fn.node is not None and not in_fresh_graph(ctx, site):
                if id(fn) in covered or is_tf_function(fn):
                    continue  # reported where the loop calls it; a tf.function traces once
                sites = [c for c in callers.get(id(fn), []) if not (  # not a rebound name
                    isinstance(c.node.func, cst.Name)
                    and ctx.last_assign(c.func, c.node.func.value, c.seq) is not None)]
                if not self._called_from_running_loop(ctx, fn, sites):
                    continue
                seen_stmts.add(id(site.stmt))
                yield Report(node=site.node, variant="graph-op-in-called-fn", confidence=0.65,
                             function=fn.qualname, stmt=site.stmt)

    def _calls_that_build(self, ctx: ModuleContext, covered: set[int]) -> Iterator[Report]:
        """Calls, in a loop that runs the graph, of a module function or method that creates
        operations on every call, itself or through the functions it calls
        (:func:`_builds_ops`, ``_CALL_DEPTH`` levels deep): reported at the operation, with
        the loop's function and its call in the message. ``covered`` receives the ids of the
        functions on each reported chain (their operations are not reported again)."""
        op_stmts = {id(s.stmt) for s in ctx.calls
                    if s.loops and _op_site(ctx, s) and not _guarded(ctx, s)}
        seen: set[int] = set()
        reported: set[int] = set()
        for site in ctx.calls:
            if not site.loops or is_tf_function(site.func) or id(site.stmt) in op_stmts \
                    or id(site.stmt) in seen:
                continue  # a statement that creates an operation itself is reported as such
            if in_fresh_graph(ctx, site) or _guarded(ctx, site):
                continue
            target, how = resolve_callee(ctx, site.func, site.node, site.seq)
            if target is None or target is site.func or target.node is None:
                continue
            found = _builds_ops(ctx, target, _CALL_DEPTH)
            if found is None:
                continue
            op, chain = found
            loop = self._running_loop(ctx, site.func, site)
            if loop is None:
                continue
            covered.update(id(f) for f in chain)
            seen.add(id(site.stmt))
            if id(op.stmt) in reported:
                continue  # one finding per operation, however many loops call its function
            reported.add(id(op.stmt))
            names = " -> ".join(f"{f.qualname}()" for f in chain)
            call_text = " ".join(ctx.code(site.node).split())
            call_text = call_text if len(call_text) <= 60 else call_text[:57] + "..."
            message = (f"Graph grows on every iteration: this operation is created each time "
                       f"a loop in {site.func.qualname}() calls {names} ({call_text}), and "
                       "that loop runs the graph, so each step gets slower and memory grows. "
                       "Build the operations once before the loop (and graph.finalize()), or "
                       "cache them")
            via = f"called per iteration through {names}" + (f"; {how}" if how else "")
            # Reported at the operation, as an operation written in the loop is (and as the
            # labelled sets place these sites); the loop's call is named in the message.
            yield Report(node=op.node, variant="graph-op-in-called-fn",
                         confidence=0.55 if how else 0.65, message=message,
                         loop_kind=loop.kind, function=chain[-1].qualname, stmt=op.stmt,
                         via=via[:300])

    def _running_loop(self, ctx: ModuleContext, fn: FuncInfo, site: CallSite) -> Loop | None:
        """The innermost loop around ``site`` whose iteration also runs the graph, unless an
        iteration starts a fresh graph."""
        for loop in iter_loops(site.loops[-1]):
            if _structure_loop(loop):
                return None
            inside = list(_sites_in(fn, loop))
            if any(_resets(ctx, s) or _reaches_reset(ctx, s) for s in inside):
                return None
            if any(fresh_graph_item(ctx, item.item, fn) for item, _, loops in fn.with_items
                   if loop in loops):
                return None
            if any(runs_graph(ctx, s) or _reaches_run(ctx, s) for s in inside):
                return loop
        return None

    def _called_from_running_loop(self, ctx: ModuleContext, fn: FuncInfo,
                                  sites: list[CallSite]) -> bool:
        fn_runs = ctx.reaches(fn, lambda s: runs_graph(ctx, s), "uge-run")
        if ctx.reaches(fn, lambda s: _resets(ctx, s), "uge-reset"):
            return False
        if fn.class_name and fn.name in REPEATED_HOOKS:
            return fn_runs
        for call in sites:
            caller = call.func
            loop = call.loops[-1]
            if _structure_loop(loop):
                continue
            inside = list(_sites_in(caller, loop))
            if any(_resets(ctx, s) for s in inside) or in_fresh_graph(ctx, call):
                continue
            if fn_runs or any(runs_graph(ctx, s) or _reaches_run(ctx, s) for s in inside):
                return True
        return False

    # -- TF2 retracing ---------------------------------------------------------------------
    def _retrace(self, ctx: ModuleContext) -> Iterator[Report]:
        traced = _traced_functions(ctx)
        traced_names = _traced_names(ctx)
        tf_alias = ctx.names.find_alias("tensorflow") or "tf"
        for site in ctx.calls:
            if site.qn == "tensorflow.function" and site.loops:
                if self._per_step_function(ctx, site):
                    yield Report(node=site.node, variant="function-per-step", confidence=0.75,
                                 loop_kind=site.loops[-1].kind, function=site.func.qualname,
                                 stmt=site.stmt)
                continue
            if not site.loops:
                continue
            func = site.node.func
            target: FuncInfo | None = None
            if isinstance(func, cst.Name | cst.Attribute):
                local = ctx.resolve_local_function(site)
                if local is not None and id(local) in traced:
                    target = local
                elif not (isinstance(func, cst.Name) and func.value in traced_names):
                    continue
            else:
                continue
            for i, arg in enumerate(site.node.args):
                how = "" if arg.star else _changing_number(ctx, site, arg.value)
                if not how:
                    continue
                fix = None
                if target is not None and _param_tensor_safe(ctx, target, i, arg):
                    fix = _wrap_constant(arg.value, tf_alias)
                yield Report(node=site.node, variant="retrace-python-arg", confidence=0.7,
                             loop_kind=site.loops[-1].kind, function=site.func.qualname,
                             stmt=site.stmt, fix=fix,
                             via="" if how == "counter" else how)
                break

    @staticmethod
    def _per_step_function(ctx: ModuleContext, site: CallSite) -> bool:
        """``tf.function(g)`` in a loop whose result is called in the same iteration (directly
        or through the name it is bound to), or in a ``while`` loop."""
        loop = site.loops[-1]
        if loop.kind == "while":
            return True
        for other in site.func.calls:
            if other.node.func is site.node:
                return True  # tf.function(g)(x)
        for target in site.assigned_to:
            if isinstance(target, cst.Name):
                name = target.value
                if any(s.simple_name == name and loop in s.loops and s.seq > site.seq
                       for s in site.func.calls):
                    return True
        return False


def _structure_loop(loop: Loop) -> bool:
    """A loop over ``.items()``/``.keys()``/``.values()`` or over names that read like graph
    structure (``layers``, ``variables``, ``style_layers``, ``data_dict``)."""
    it, _ = loop_iter(loop)
    todo = [it] if it is not None else []
    while todo:
        expr = todo.pop()
        if isinstance(expr, cst.Call):
            name = call_name(expr.func)
            if name in ("items", "keys", "values", "iteritems", "trainable_variables",
                        "global_variables"):
                return True
            if name in ("zip", "enumerate", "list", "sorted", "reversed", "iteritems"):
                todo.extend(a.value for a in expr.args)
        elif isinstance(expr, cst.Name | cst.Attribute):
            last = expr.value if isinstance(expr, cst.Name) else expr.attr.value
            if _STRUCTURE_ITER.search(last):
                return True
    return False


def _reaches_run(ctx: ModuleContext, site: CallSite) -> bool:
    target, _ = resolve_callee(ctx, site.func, site.node, site.seq)
    return target is not None and ctx.reaches(target, lambda s: runs_graph(ctx, s), "uge-run")


def _reaches_reset(ctx: ModuleContext, site: CallSite) -> bool:
    target, _ = resolve_callee(ctx, site.func, site.node, site.seq)
    return target is not None and ctx.reaches(target, lambda s: _resets(ctx, s), "uge-reset")


# -- operations created by the functions a loop calls --------------------------------------------

#: How many calls deep a loop's call is followed into the module's functions and methods.
_CALL_DEPTH = 3
#: The last name of a receiver that holds an optimizer (``opt``, ``self.optimizer``).
_OPTIMIZER_NAME = re.compile(r"(?:^|_)(?:opt|optim|optimizer|optimiser)$", re.IGNORECASE)
#: ``tensorflow.*`` calls that look up what the graph already holds (or create it once): they
#: add no operation when a loop calls them again.
_NOT_NEW_OPS = frozenset({"get_global_step", "get_or_create_global_step", "checkpoint_exists",
                          "get_tensor_by_name", "get_operation_by_name", "get_variable_scope",
                          "get_default_session", "executing_eagerly"})


def _op_site(ctx: ModuleContext, site: CallSite) -> bool:
    """``site`` creates graph operations: a ``tf.*`` operation (:func:`creates_op`, less the
    look-ups of :data:`_NOT_NEW_OPS`), a ``K.function``, or an optimizer's ``minimize`` (it
    adds the gradient and update operations; the optimizer a ``tf.*Optimizer(...)`` call, a
    name bound to one, or a receiver named like one)."""
    if site.qn == "keras.backend.function":
        return True
    if creates_op(site.qn):
        return (site.qn or "").rsplit(".", 1)[-1] not in _NOT_NEW_OPS
    if site.method != "minimize" or site.qn is not None:
        return False
    recv = site.receiver
    bound: cst.BaseExpression | None = recv
    if isinstance(recv, cst.Name):
        ev = ctx.last_assign(site.func, recv.value, site.seq)
        bound = ev.value if ev is not None and isinstance(ev.value, cst.Call) else recv
    if isinstance(bound, cst.Call):
        qn = ctx.names.resolve(bound.func) or ""
        if qn.startswith("tensorflow.") and qn.endswith("Optimizer"):
            return True
    last = recv.value if isinstance(recv, cst.Name) else (
        recv.attr.value if isinstance(recv, cst.Attribute) else "")
    return bool(_OPTIMIZER_NAME.search(last))


def _builds_ops(ctx: ModuleContext, fn: FuncInfo, depth: int
                ) -> tuple[CallSite, tuple[FuncInfo, ...]] | None:
    """The first operation ``fn`` creates on every call, itself or through the module
    functions it calls (``depth`` levels, counting ``fn``), and the chain of functions from
    ``fn`` to it; None when it creates none. Not counted: a ``tf.function`` (traced once),
    a function that starts a fresh default graph (``reset_default_graph``), operations under
    a fresh graph (``with tf.Graph().as_default():``) or built once behind a cache guard
    (:func:`_guarded`: ``if self.op is None:``)."""
    table = ctx.analysis(_BuildMemo).table
    key = (id(fn), depth)
    if key in table:
        return table[key]
    table[key] = None  # recursion guard
    result = None
    if fn.node is not None and not is_tf_function(fn) and not ctx.reaches(
            fn, lambda s: _resets(ctx, s), "uge-reset"):
        for site in fn.calls:
            if _op_site(ctx, site) and not _guarded(ctx, site) and not in_fresh_graph(ctx, site):
                result = (site, (fn,))
                break
        if result is None and depth > 1:
            for site in fn.calls:
                if _guarded(ctx, site) or in_fresh_graph(ctx, site):
                    continue
                func = site.node.func
                if isinstance(func, cst.Attribute) and not (
                        isinstance(func.value, cst.Name) and func.value.value == "self"):
                    continue  # below the loop's own call: functions, self.m(), Cls(...)
                target, how = resolve_callee(ctx, fn, site.node, site.seq)
                if how or target is None or target is fn:
                    continue
                found = _builds_ops(ctx, target, depth - 1)
                if found is not None:
                    result = (found[0], (fn, *found[1]))
                    break
    table[key] = result
    return result


class _BuildMemo:
    """Per-module memo of :func:`_builds_ops` (a module analysis)."""

    def __init__(self, ctx: ModuleContext) -> None:
        self.table: dict[tuple[int, int], tuple[CallSite, tuple[FuncInfo, ...]] | None] = {}


def _guarded(ctx: ModuleContext, site: CallSite) -> bool:
    """``site`` runs only while something is not built yet: under ``if self.op is None:``,
    ``if not self.built:``, ``if key not in cache:``, ``if not hasattr(self, "op"):``, or
    after an early return of what was built (``if self.op is not None: return self.op``)."""
    return id(site.node) in ctx.analysis(_Guards).of(site.func)


class _Guards:
    """Per-module: the calls of each function that a cache guard keeps to the first call."""

    def __init__(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        self._by_fn: dict[int, frozenset[int]] = {}

    def of(self, fn: FuncInfo) -> frozenset[int]:
        found = self._by_fn.get(id(fn))
        if found is None:
            out: set[int] = set()
            if fn.node is None:
                self._walk(list(self.ctx.module.body), out, top=False)
            elif isinstance(fn.node.body, cst.IndentedBlock):
                self._walk(list(fn.node.body.body), out, top=True)
            found = self._by_fn[id(fn)] = frozenset(out)
        return found

    def _walk(self, stmts: list[cst.BaseStatement], out: set[int], top: bool) -> None:
        """Collect into ``out`` the ids of the calls in ``stmts`` that a cache guard protects
        (``top``: the statements of a function's own body, where an early return counts)."""
        after_exit = False
        for stmt in stmts:
            if after_exit:
                out.update(_calls_under(stmt))
            elif isinstance(stmt, cst.If):
                self._if(stmt, out)
                after_exit = top and self._returns_built(stmt)
            elif isinstance(stmt, cst.BaseCompoundStatement) and not isinstance(
                    stmt, cst.FunctionDef | cst.ClassDef):
                suites = [getattr(stmt, "body", None)]
                for name in ("orelse", "finalbody"):
                    part = getattr(stmt, name, None)
                    if isinstance(part, cst.Else | cst.Finally):
                        suites.append(part.body)
                suites.extend(h.body for h in getattr(stmt, "handlers", ()))
                for suite in suites:
                    if isinstance(suite, cst.IndentedBlock):
                        self._walk(list(suite.body), out, top=False)

    def _if(self, stmt: cst.If, out: set[int]) -> None:
        if _absent(stmt.test):
            out.update(_calls_under(stmt.body))
        elif isinstance(stmt.body, cst.IndentedBlock):
            self._walk(list(stmt.body.body), out, top=False)
        orelse = stmt.orelse
        if isinstance(orelse, cst.If):
            self._if(orelse, out)
        elif isinstance(orelse, cst.Else) and isinstance(orelse.body, cst.IndentedBlock):
            self._walk(list(orelse.body.body), out, top=False)

    def _returns_built(self, stmt: cst.If) -> bool:
        """``if self.op is not None: return self.op`` (``if key in cache: return cache[key]``,
        ``if hasattr(self, "op"): return self.op``, ``if self.built: return``): the rest of
        the function builds what the first call keeps."""
        subject = _present(stmt.test)
        if subject is None:
            return False
        code = self.ctx.code
        lines = stmt.body.body if isinstance(stmt.body, cst.IndentedBlock) else [stmt.body]
        for line in lines:
            if not isinstance(line, cst.SimpleStatementLine | cst.SimpleStatementSuite):
                continue
            for small in line.body:
                if not isinstance(small, cst.Return):
                    continue
                if small.value is None:
                    if not subject or _BUILT_FLAG.search(subject):
                        return True  # ``if self.built: return``, ``if hasattr(...): return``
                elif not subject or subject in code(small.value):
                    return True
        return False


#: A flag saying that what a function builds exists already (``if self.built: return``).
_BUILT_FLAG = re.compile(r"built|initiali[sz]ed|created|ready|setup|cache", re.IGNORECASE)


def _absent(test: cst.BaseExpression) -> bool:
    """A test that holds while something is not built yet: ``x is None``, ``x == None``,
    ``k not in cache``, ``not x``, ``not hasattr(obj, "x")`` (or one of them in and/or)."""
    if isinstance(test, cst.BooleanOperation):
        return _absent(test.left) or _absent(test.right)
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        inner = test.expression
        return isinstance(inner, cst.Name | cst.Attribute | cst.Subscript) or (
            isinstance(inner, cst.Call) and call_name(inner.func) in ("hasattr", "getattr"))
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        cmp = test.comparisons[0]
        if isinstance(cmp.operator, cst.NotIn):
            return True
        return isinstance(cmp.operator, cst.Is | cst.Equal) and isinstance(
            cmp.comparator, cst.Name) and cmp.comparator.value == "None"
    return False


def _present(test: cst.BaseExpression) -> str | None:
    """What a test finds already built, as code the early return must mention (``""``: any
    value): ``x is not None`` and ``x`` -> ``x``, ``k in cache`` -> ``cache``,
    ``hasattr(obj, "x")`` -> ``""``. None: not such a test."""
    module = cst.Module([])
    if isinstance(test, cst.Name | cst.Attribute):
        return module.code_for_node(test)
    if isinstance(test, cst.Call):
        return "" if call_name(test.func) == "hasattr" else None
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        cmp = test.comparisons[0]
        if isinstance(cmp.operator, cst.In):
            return module.code_for_node(cmp.comparator)
        if isinstance(cmp.operator, cst.IsNot | cst.NotEqual) and isinstance(
                cmp.comparator, cst.Name) and cmp.comparator.value == "None":
            return module.code_for_node(test.left)
    return None


class _CallIds(cst.CSTVisitor):
    def __init__(self) -> None:
        self.ids: set[int] = set()

    def visit_Call(self, node: cst.Call) -> None:
        self.ids.add(id(node))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False


def _calls_under(node: cst.CSTNode) -> set[int]:
    """The ids of the calls under ``node`` (not in functions or classes defined there)."""
    visitor = _CallIds()
    node.visit(visitor)
    return visitor.ids


def _loop_callers(ctx: ModuleContext) -> dict[int, list[CallSite]]:
    out: dict[int, list[CallSite]] = {}
    for site in ctx.calls:
        if site.loops:
            target = ctx.resolve_local_function(site)
            if target is not None and target is not site.func:
                out.setdefault(id(target), []).append(site)
    return out


def _has_signature(fn: FuncInfo) -> bool:
    if fn.node is None:
        return False
    for dec in fn.node.decorators:
        d = dec.decorator
        if isinstance(d, cst.Call) and any(
                a.keyword is not None and a.keyword.value == "input_signature" for a in d.args):
            return True
    return False


def _traced_functions(ctx: ModuleContext) -> set[int]:
    """Ids of same-module functions decorated with ``tf.function`` (no input_signature)."""
    return {id(fn) for fn in ctx.functions if is_tf_function(fn) and not _has_signature(fn)}


def _traced_names(ctx: ModuleContext) -> set[str]:
    """Names bound to ``tf.function(...)`` results (without ``input_signature``)."""
    out: set[str] = set()
    for site in ctx.calls:
        if site.qn != "tensorflow.function" or any(
                a.keyword is not None and a.keyword.value == "input_signature"
                for a in site.node.args):
            continue
        for target in site.assigned_to:
            if isinstance(target, cst.Name):
                out.add(target.value)
    return out


_NUMERIC_WRAPPERS = frozenset({"range", "enumerate", "reversed", "tqdm", "trange"})


#: Calls that keep a Python number a Python number (``float(i)``, ``math.exp(-k * epoch)``).
_NUMERIC_CALLS = frozenset({"float", "int", "round", "abs", "min", "max", "pow"})


def _changing_number(ctx: ModuleContext, site: CallSite, expr: cst.BaseExpression,
                     depth: int = 0) -> str:
    """Whether ``expr`` is a Python number that changes per iteration of a loop around
    ``site``: a ``range``/``enumerate`` index, a loop target over a list of numbers, a counter
    incremented in the loop, or arithmetic / ``float()``/``int()``/``math.*`` of one of these,
    also through a name assigned such a value in the loop (``lr_scale = 0.5 ** epoch``).
    Returns ``""`` when it is not, else how: ``"counter"`` for the loop's own number, or
    ``"derived from <name>"``."""
    if depth > 6:
        return ""
    if isinstance(expr, cst.BinaryOperation):
        return (_changing_number(ctx, site, expr.left, depth + 1)
                or _changing_number(ctx, site, expr.right, depth + 1))
    if isinstance(expr, cst.UnaryOperation):
        return _changing_number(ctx, site, expr.expression, depth + 1)
    if isinstance(expr, cst.Call) and expr.args and _numeric_call(ctx, expr):
        for a in expr.args:
            found = _changing_number(ctx, site, a.value, depth + 1)
            if found:
                return found
        return ""
    if not isinstance(expr, cst.Name):
        return ""
    name = expr.value
    fn = site.func
    for loop in site.loops:
        it, target = loop_iter(loop)
        if it is not None and target is not None and _numeric_target(it, target, name):
            return "counter"
        if any(isinstance(ev.target, cst.Name) and ev.target.value == name and loop in ev.loops
               and isinstance(ev.value, cst.Integer | cst.Float)
               for ev in fn.aug_assigns):
            return "counter"
    ev = ctx.last_assign(fn, name, site.seq)
    if (ev is not None and ev.kind == "assign" and ev.value is not None and ev.func is fn
            and any(loop in ev.loops for loop in site.loops)
            and _changing_number(ctx, site, ev.value, depth + 1)):
        return f"derived from the loop counter through {name} = {ctx.code(ev.value)}"[:160]
    return ""


def _numeric_call(ctx: ModuleContext, call: cst.Call) -> bool:
    """``float(x)``, ``int(x)``, ``round(x)``, ``math.exp(x)``: a Python number of a number."""
    if isinstance(call.func, cst.Name):
        return call.func.value in _NUMERIC_CALLS and call.func.value not in ctx.module_funcs
    if isinstance(call.func, cst.Attribute) and isinstance(call.func.value, cst.Name):
        return call.func.value.value == "math"
    return False


def _numeric_target(it: cst.BaseExpression, target: cst.BaseExpression, name: str) -> bool:
    if isinstance(it, cst.Call):
        fname = call_name(it.func)
        if fname in ("range", "trange"):
            return isinstance(target, cst.Name) and target.value == name
        if fname == "enumerate":
            return (isinstance(target, cst.Tuple) and bool(target.elements)
                    and isinstance(target.elements[0].value, cst.Name)
                    and target.elements[0].value.value == name)
        if fname in ("reversed", "tqdm", "list") and it.args:
            return _numeric_target(it.args[0].value, target, name)
        return False
    if isinstance(it, cst.List | cst.Tuple) and it.elements:
        return (isinstance(target, cst.Name) and target.value == name
                and all(isinstance(e.value, cst.Integer | cst.Float) for e in it.elements))
    return False


def _param_tensor_safe(ctx: ModuleContext, fn: FuncInfo, index: int, arg: cst.Arg) -> bool:
    """The parameter ``arg`` binds in ``fn`` is read only as an argument of tf/keras calls."""
    node = fn.node
    if node is None:
        return False
    params = [*node.params.posonly_params, *node.params.params]
    if arg.keyword is not None:
        pname = arg.keyword.value
    elif index < len(params):
        pname = params[index].name.value
    else:
        return False
    ok = True
    uses = 0

    class _Uses(cst.CSTVisitor):
        def __init__(self) -> None:
            self.depth = 0

        def visit_Call(self, call: cst.Call) -> bool:
            qn = ctx.names.resolve(call.func) or ""
            tf_call = qn.split(".", 1)[0] in ("tensorflow", "keras")
            for a in call.args:
                if tf_call:
                    self.depth += 1
                a.value.visit(self)
                if tf_call:
                    self.depth -= 1
            call.func.visit(self)
            return False

        def visit_Name(self, n: cst.Name) -> None:
            nonlocal ok, uses
            if n.value == pname:
                uses += 1
                if self.depth == 0:
                    ok = False

        def visit_Attribute(self, a: cst.Attribute) -> bool:
            a.value.visit(self)
            return False

        def visit_FunctionDef(self, f: cst.FunctionDef) -> bool:
            return False

    node.body.visit(_Uses())
    return ok and uses > 0


def _wrap_constant(expr: cst.BaseExpression, alias: str) -> Fix:
    def build(updated: cst.BaseExpression) -> cst.BaseExpression:
        func = cst.parse_expression(f"{alias}.constant")
        return cst.Call(func=func, args=[cst.Arg(value=updated)])

    return replace_expr(expr, build, "uge-constant")
