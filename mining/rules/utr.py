"""UTR: Unreleased Tensor References."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import libcst as cst

from leakwatt.mining.rules.api import Invalid, Report, Rule, Seeds, Valid, dedent
from leakwatt.mining.rules.context import ModuleContext
from leakwatt.mining.rules.fixes import replace_expr
from leakwatt.mining.rules.index import CallSite, FuncInfo, Loop
from leakwatt.mining.rules.kit import (
    COMMON_METHODS,
    UTR_STEPS,
    bound_names,
    called_in_loop,
    is_param,
    resolve_callee,
    step_loop,
)
from leakwatt.mining.rules.modes import EAGER_OFF_CALLS, GRAPH_API_CALLS, GraphModes
from leakwatt.mining.rules.values import (
    CONTAINER,
    GRADS,
    LAYER,
    SCALAR,
    TENSOR,
    TENSORISH,
    UNKNOWN,
    ValueKinds,
    called_from_other_modules,
    kinds_for,
)

_STORE_METHODS = frozenset({"append", "extend", "insert", "appendleft", "add"})
#: The pre-filter keeps what decides whether a statement builds a graph
#: (:mod:`leakwatt.mining.rules.modes`): graph-building calls, sessions, graph contexts.
_MODE_WORDS = frozenset(qn.rsplit(".", 1)[1] for qn in GRAPH_API_CALLS | EAGER_OFF_CALLS) | {
    "Session", "InteractiveSession", "Graph"}


def _statement_loop(loops: tuple[Loop, ...]) -> Loop | None:
    """Innermost for/while loop (comprehensions build their own fresh list)."""
    for loop in reversed(loops):
        if loop.kind != "comprehension":
            return loop
    return None


def _root_name(expr: cst.BaseExpression) -> cst.BaseExpression:
    while isinstance(expr, cst.Subscript | cst.Attribute) and not (
            isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name)
            and expr.value.value == "self"):
        expr = expr.value
    return expr


def _wrap_numpy(expr: cst.BaseExpression) -> cst.BaseExpression:
    if not isinstance(expr, cst.Name | cst.Attribute | cst.Call | cst.Subscript):
        expr = expr.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return cst.Call(func=cst.Attribute(value=expr, attr=cst.Name("numpy")))


def _convert(kind: str, expr: cst.BaseExpression, kinds: ValueKinds, fn: FuncInfo,
             seq: int) -> cst.BaseExpression:
    if kind == SCALAR and not _unreduced_loss(expr, kinds, fn, seq):
        return cst.Call(func=cst.Name("float"), args=[cst.Arg(expr)])
    if kind == SCALAR:  # a per-sample loss (reduction="none"): float() would raise
        return _wrap_numpy(expr)
    if kind == GRADS:
        return cst.ListComp(
            elt=_wrap_numpy(cst.Name("_g")),
            for_in=cst.CompFor(target=cst.Name("_g"), iter=expr))
    if kind == CONTAINER and isinstance(expr, cst.Tuple | cst.List):
        elements = []
        for el in expr.elements:
            k = kinds.expr_kind(el.value, fn, seq)
            new = _convert(k, el.value, kinds, fn, seq) if k in TENSORISH else el.value
            elements.append(el.with_changes(value=new))
        return expr.with_changes(elements=elements)
    return _wrap_numpy(expr)


#: ``reduction=`` values after which a loss object's call returns one number.
_SCALAR_REDUCTIONS = frozenset({"sum", "sum_over_batch_size", "mean", "auto", "SUM",
                                "SUM_OVER_BATCH_SIZE", "AUTO"})


def _unreduced_loss(expr: cst.BaseExpression, kinds: ValueKinds, fn: FuncInfo, seq: int,
                    depth: int = 0) -> bool:
    """``expr`` may be the call of a loss object built with a ``reduction=`` that is not
    known to reduce to a scalar (``reduction="none"``, ``Reduction.NONE``, a variable): its
    value is a per-sample tensor, so ``float()`` is no safe fix for it."""
    if depth > 8:
        return True
    ctx = kinds.ctx
    if isinstance(expr, cst.Name):
        ev = ctx.last_assign(fn, expr.value, seq)
        return ev is not None and ev.value is not None and _unreduced_loss(
            ev.value, kinds, ev.func, ev.seq, depth + 1)
    if isinstance(expr, cst.BinaryOperation):
        return any(_unreduced_loss(v, kinds, fn, seq, depth + 1) for v in (expr.left, expr.right))
    if not isinstance(expr, cst.Call):
        return False
    for arg in expr.args:
        if arg.keyword is not None and arg.keyword.value == "reduction":
            value = arg.value
            if isinstance(value, cst.SimpleString):
                return value.evaluated_value not in _SCALAR_REDUCTIONS
            if isinstance(value, cst.Attribute):
                return value.attr.value not in _SCALAR_REDUCTIONS
            return True
    func = expr.func
    if isinstance(func, cst.Call | cst.Name):
        return _unreduced_loss(func, kinds, fn, seq, depth + 1)
    if (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
            and func.value.value == "self" and fn.class_name):
        cls = ctx.classes.get(fn.class_name)
        for ev in cls.attr_assigns.get(func.attr.value, []) if cls is not None else []:
            if ev.value is not None and _unreduced_loss(ev.value, kinds, ev.func, ev.seq,
                                                        depth + 1):
                return True
    return False


class UnreleasedTensorReference(Rule):
    """A tensor is stored across loop iterations in a container that outlives the loop.

    Tensor values are results of ``tf.*``/``keras.ops`` operations, model and layer calls, loss
    and metric objects (``loss_fn(y, p)``, ``metric.result()``), ``tape.gradient`` and
    ``tf.Variable`` reads, followed through simple local data flow (assignments, tuple unpacking,
    ``self.attr`` stores, returns of same-module functions, batches drawn from a
    ``tf.data.Dataset``). Stores are ``list.append/extend/insert``, ``+= [...]`` on a list,
    ``d[k] = ...`` with a changing key, ``self.attr.append(...)`` and module-level lists, inside a
    ``for``/``while`` loop or a function called from one (Keras callback hooks included).
    Converted values (``float()``, ``int()``, ``.numpy()``, ``np.asarray``, ``.item()``,
    ``K.get_value``) and containers created inside the iteration are not UTR; values whose
    tensor-ness is unknown are not reported. The finding is at the storing statement.

    Also tensors: whatever a ``tf.function`` returns (it returns tensors, also nested in tuples
    and dicts, so ``step(x)["loss"]`` is one), the result of a Keras ``model.predict_step``, and
    ``result()`` of a metric looked up in a dict or list built from metric objects only
    (``metrics = {n: tf.keras.metrics.Mean(name=n) for n in names}``).

    Per-step results collected and combined after the loop: tensors kept over a *step loop* are
    UTR even when the list is concatenated, stacked or reduced after the loop, because every
    step's tensor (and its device buffer) stays alive until then; converting each one
    (``.numpy()``) or a ``tf.TensorArray`` avoids that. A step loop is a ``while`` loop, a loop
    that takes gradients or applies them (itself, or through a same-module helper that does
    one step per call: ``logits, loss = apply_gradient(model, x, y)`` per batch), or a ``for``
    loop over a ``tf.data`` dataset, an iterator, or a name or ``range`` bound that says data
    or steps (``ds``, ``train_iter``, ``n_batches``, ``n_max_steps``, ``epochs``, ``episodes``).
    Lists that hold the parts of *one* computation are not UTR: a local list in a layer's
    ``call``/``__call__``/``build``; a list created inside an enclosing iteration and filled by
    inner loops that are not step loops (per variable, per output, per head); and a list filled
    by a loop that is not a step loop
    and then passed to a call or returned (per-GPU gradients, per-scale outputs). Calls of module
    functions named like container methods (``tf.add``, ``ops.add``) are not stores, and a dict
    re-keyed over its own ``.items()`` does not grow per step.

    Beyond the step loop: a list of losses or metrics averaged with numpy or ``statistics``
    after the loop (``np.mean(episode_losses)``) is a per-episode or per-epoch history,
    reported whatever loop fills it (a loop over ``range(200)`` environment steps, over
    validation samples). A parameter of a function called once per step (``record(loss)``)
    has the kind its same-module callers pass, and the function ``tf.py_function`` runs gets
    eager tensors once per call; a module-level list they append to is kept until something
    empties it (``xs.clear()`` anywhere in the module), which counts as bounded. Tensors
    returned by a helper of the same file or project are tensors, and so are those a method
    of a module class returns when it is called on an instance (``losses.append(agent.update(
    batch))``, also through ``loss = agent.update(batch)``): an instance bound to
    ``Agent(...)`` (or ``self.agent`` stored as one), or, where nothing says what the receiver
    holds (a parameter), the one module class defining a method of that name, matched by name
    (lower confidence, named in the finding's ``via``). Across modules: a training-step method
    (one that opens a ``GradientTape`` or is a ``tf.function``) of a class imported from
    another project module, called on an instance bound to that class (``agent =
    HER_Agent(env)``; ``v_loss, pi_loss = agent.optimization()``), returns what its body
    computes, per element of a returned tuple (lower confidence, named in the ``via``). A name
    that a ``GradientTape`` differentiates (``tape.gradient(loss, ...)``) is a tensor whatever
    computed it (``loss = loss_fn(y, logits)`` with ``loss_fn`` a parameter).

    Not UTR: an index store into a list (``slots[i] = t`` replaces an item; only a dict grows
    by key); a list emptied inside the loop that fills it; a list of one update's statistics:
    created in the body of a function run once per step or update (called from a loop, or
    named ``update``, ``learn``, ``train_step`` ...), filled by its loops and reduced before
    it returns (``np.mean(losses)``, ``tf.add_n(losses)``), never returned, stored or handed
    on (its tensors are freed when the call returns; a function named for an epoch or an
    evaluation, ``run_epoch``, ``evaluate``, keeps an epoch's history and is reported); a
    running total (``total += loss``: each sum replaces the previous one, no container keeps
    the old tensors); the output of a layer created in place or in the same iteration, or a
    symbolic tensor traced back to ``keras.Input`` (a model being built, not run); code that
    builds a TF1 graph. Graph code is decided per function and region
    (:mod:`leakwatt.mining.rules.modes`): eager execution disabled,
    ``with tf.Graph().as_default():`` and ``with Session()`` blocks, functions that build a
    session or call graph-building APIs and what they call, module-level code a session runs,
    and modules that call graph-building APIs, except where the loop shows eager code (a
    ``GradientTape``, ``.numpy()``, a ``tf.function`` call). A ``Session`` opened and closed
    elsewhere in a file does not hide an eager training loop.

    Autofix: convert at the store, ``float(...)`` for scalar losses and metrics, ``.numpy()``
    otherwise.
    """

    CODE = "UTR"
    NAME = "Unreleased Tensor References"
    MESSAGE = ("Tensor stored across loop iterations without conversion; the container keeps "
               "every tensor (and its buffers) alive. Store float(t) or t.numpy() instead")
    SEEDS = Seeds(api=_MODE_WORDS | {"py_function"}, calls=frozenset({"as_default"}),
                  calls_if={".clear()": frozenset({"clear"})},
                  defs=frozenset({"get_updates"}), stores=_STORE_METHODS)
    VARIANTS = {
        "append-loss": "a loss tensor appended to a history list",
        "append-metric": "a metric result tensor appended to a list",
        "append-gradients": "gradients from tape.gradient stored in a list",
        "append-output": "a model or layer output appended to a list",
        "append-tensor": "another tensor appended to a list",
        "dict-store": "a tensor stored in a dict/list under a changing key",
    }

    VALID = [
        Valid(dedent("""
            import tensorflow as tf
            losses = []
            for x, y in data:
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(tf.square(model(x) - y))
                losses.append(float(loss))
            """)),
        Valid(dedent("""
            import tensorflow as tf
            history = []
            for step in range(100):
                loss = tf.reduce_mean(tf.random.normal([4]))
                history.append(loss.numpy())
            """)),
        Valid(dedent("""
            import tensorflow as tf
            for epoch in range(10):
                batch_losses = []
                loss = tf.reduce_sum(tf.ones([2]))
                batch_losses.append(loss)
            """)),
        Valid(dedent("""
            import tensorflow as tf
            import numpy as np
            metric = tf.keras.metrics.Mean()
            accs = []
            for x in batches:
                metric.update_state(tf.reduce_mean(x))
                accs.append(np.asarray(tf.reduce_mean(x)))
            """)),
        Valid(dedent("""
            import tensorflow as tf
            names = []
            for layer in layers_list:
                names.append(layer.name)
                names.append(compute(layer))
            """)),
        Valid(dedent("""
            import keras
            scores = []
            for x in batches:
                scores.append(model.predict(x))
            """)),
        Valid(dedent("""
            import tensorflow as tf
            x = tf.placeholder(tf.float32, [None, 4])
            costs = []
            for k in range(3):
                costs.append(tf.reduce_mean(tf.square(x * k)))
            total = tf.add_n(costs)
            """)),
        Valid(dedent("""
            from keras import backend as K

            class ScaledSGD:
                def get_updates(self, loss, params):
                    grads = K.gradients(loss, params)
                    self.updates = []
                    for p, g in zip(params, grads):
                        self.updates.append(K.update(p, p - 0.1 * g))
                    return self.updates
            """)),
        Valid(dedent("""
            import numpy as np
            from keras import ops

            def to_image(t):
                t = ops.clip(t * 255.0, 0, 255)
                return ops.convert_to_numpy(t)

            frames = []
            for z in latents:
                frames.append(to_image(ops.tanh(z)))
            """)),
        Valid(dedent("""
            import tensorflow as tf
            logs = {}
            for step in range(10):
                logs["loss"] = tf.reduce_mean(tf.ones([3]))
            """)),
        Valid(dedent("""
            import tensorflow as tf

            def encoder(x):
                h = tf.add(tf.matmul(x, w), b)
                return h

            for x in batches:
                encoder(x)
            """)),
        Valid(dedent("""
            import tensorflow as tf
            for iteration in range(10):
                mean_grads = []
                for i in range(len(variables)):
                    mean_grads.append(tf.reduce_mean(stacked[i], axis=0))
                optimizer.apply_gradients(zip(mean_grads, variables))
            """)),
        Valid(dedent("""
            import tensorflow as tf

            def average(tower_grads):
                avg = []
                for grads in zip(*tower_grads):
                    avg.append(tf.reduce_mean(tf.stack(grads), 0))
                return avg

            for x in batches:
                average(compute(x))
            """)),
        Valid(dedent("""
            import tensorflow as tf

            class Head(tf.keras.layers.Layer):
                def call(self, x):
                    hiddens = []
                    for dense in self.denses:
                        x = tf.nn.relu(dense(x))
                        hiddens.append(x)
                    return hiddens
            """)),
        Valid(dedent("""
            import tensorflow as tf
            merged = {}
            for name, parts in collected.items():
                merged[name] = tf.concat(parts, 0)
            """)),
        Valid(dedent("""
            import tensorflow as tf

            def play(x):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(model(x))
                return 1.0, loss

            rewards = []
            for x in batches:
                reward, loss = play(x)
                rewards.append(reward)
            """)),
        Valid(dedent("""
            import tensorflow as tf

            def train_step(batch):
                return net(batch)

            history = []
            for batch in dataset:
                results = train_step(batch)
                history.append(results["loss"])
            """)),
        Valid(dedent("""
            import tensorflow as tf

            @tf.function
            def train_step(batch):
                return net(batch)

            history = []
            for batch in dataset:
                results = train_step(batch)
                history.append(results["loss"].numpy())
            """)),
        Valid(dedent("""
            import tensorflow as tf
            metrics = {name: tf.keras.metrics.Mean(name=name) for name in ("loss", "acc")}
            curve = []
            for step in range(n_steps):
                metrics["loss"].update_state(step_loss(step))
                curve.append(float(metrics["loss"].result()))
            """)),
        Valid(dedent("""
            import tensorflow as tf
            trackers = {name: Tracker(name) for name in ("loss", "acc")}
            curve = []
            for step in range(n_steps):
                curve.append(trackers["loss"].result())
            """)),
        Valid(dedent("""
            import tensorflow as tf

            def collect(model, batches):
                outputs = []
                for batch in batches:
                    outputs.append(model.predict_on_batch(batch))
                return outputs
            """)),
    ]
    VALID += [
        Valid(dedent("""
            import tensorflow as tf

            def encode(features, inputs):
                outputs = {}
                for name in features:
                    outputs[name] = tf.cast(inputs[name], "float32")
                return outputs
            """)),
        Valid(dedent("""
            import tensorflow as tf

            class Scale(tf.keras.layers.Layer):
                def save_own_variables(self, store):
                    for i, v in enumerate(self.weights):
                        store[f"{i}"] = tf.identity(v)
            """)),
        Valid(dedent("""
            import tensorflow as tf

            class Momentum(tf.keras.optimizers.Optimizer):
                def build(self, var_list):
                    self._momentums = []
                    for var in var_list:
                        self._momentums.append(tf.zeros_like(var))
            """)),
        Valid(dedent("""
            import tensorflow as tf

            def fill(cache, variables):
                for i, var in enumerate(variables):
                    cache[var.name] = tf.identity(var)
            """)),
        Valid(dedent("""
            import tensorflow as tf

            def dynamic_shape(x):
                shape = []
                for i in range(len(x.shape)):
                    shape.append(tf.shape(x)[i])
                return tf.stack(shape)
            """)),
        Valid(dedent("""
            import tensorflow as tf
            log = []
            for epoch in range(10):
                loss = tf.reduce_mean(train_epoch())
                log.append(epoch)
            """)),
        Valid(dedent("""
            import tensorflow as tf
            tf.compat.v1.disable_eager_execution()

            def build(x):
                outs = []
                for k in range(3):
                    outs.append(tf.reduce_mean(x * k))
                return outs
            """)),
        Valid(dedent("""
            import tensorflow as tf
            boundaries = [None] * n_layers
            for i in range(n_layers):
                boundaries[i] = tf.reduce_max(xs[i])
            """)),
        Valid(dedent("""
            import tensorflow as tf
            window = []
            for step in range(steps):
                window.append(tf.reduce_mean(batch_loss(step)))
                if len(window) == 10:
                    print(float(tf.add_n(window)))
                    window.clear()
            """)),
        Valid(dedent("""
            import tensorflow as tf
            with tf.Graph().as_default():
                outputs = []
                for step in range(num_steps):
                    outputs.append(tf.reduce_mean(cell(inputs[step])))
            """)),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf

            class PPOAgent:
                def update(self, batches, epochs):
                    losses = []
                    for _ in range(epochs):
                        for states, advantages in batches:
                            with tf.GradientTape() as tape:
                                loss = -tf.reduce_mean(self.policy(states) * advantages)
                            grads = tape.gradient(loss, self.policy.trainable_variables)
                            self.opt.apply_gradients(zip(grads, self.policy.trainable_variables))
                            losses.append(loss)
                    return float(np.mean(losses))
            """)),
    ]
    INVALID = [
        Invalid(dedent("""
            import tensorflow as tf
            sess = tf.compat.v1.Session()
            sess.close()
            losses = []
            for x, y in dataset:
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(model(x))
                losses.append(loss)
            """), line=8, variant="append-loss"),
        Invalid(dedent("""
            import tensorflow as tf
            history = []

            def record(value):
                history.append(value)

            for x in dataset:
                record(tf.reduce_mean(model(x)))
            """), line=5, variant="append-loss"),
        Invalid(dedent("""
            import numpy as np
            import tensorflow as tf
            for epoch in range(n_epochs):
                errors = []
                for i in range(len(x_val)):
                    errors.append(tf.reduce_mean(tf.square(model(x_val[i]) - y_val[i])))
                print("val mse", np.mean(errors))
            """), line=6, variant="append-loss"),
        Invalid(dedent("""
            import numpy as np
            import tensorflow as tf
            loss_object = tf.keras.losses.SparseCategoricalCrossentropy()
            val_losses = []
            for x, y in zip(x_val, y_val):
                val_loss = loss_object(y, model(x))
                val_losses.append(val_loss)
            print(np.mean(val_losses))
            """), line=7, variant="append-loss"),
        Invalid(dedent("""
            import tensorflow as tf

            def export(path):
                with tf.compat.v1.Session() as sess:
                    save(sess, path)

            losses = []
            for x, y in dataset:
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(model(x))
                losses.append(loss)
            """), line=11, variant="append-loss"),
        Invalid(dedent("""
            import tensorflow as tf
            loss_fn = tf.keras.losses.SparseCategoricalCrossentropy()
            losses = []
            for x, y in dataset:
                with tf.GradientTape() as tape:
                    loss = loss_fn(y, model(x, training=True))
                losses.append(loss)
            """), line=7, variant="append-loss", expected_replacement=dedent("""
            import tensorflow as tf
            loss_fn = tf.keras.losses.SparseCategoricalCrossentropy()
            losses = []
            for x, y in dataset:
                with tf.GradientTape() as tape:
                    loss = loss_fn(y, model(x, training=True))
                losses.append(float(loss))
            """)),
        Invalid(dedent("""
            from tensorflow import keras
            import tensorflow as tf
            model = keras.Sequential([keras.layers.Dense(1)])
            outputs = []
            for batch in batches:
                out = model(batch)
                outputs.append(out * 2)
            """), line=7, variant="append-output", expected_replacement=dedent("""
            from tensorflow import keras
            import tensorflow as tf
            model = keras.Sequential([keras.layers.Dense(1)])
            outputs = []
            for batch in batches:
                out = model(batch)
                outputs.append((out * 2).numpy())
            """)),
        Invalid(dedent("""
            import tensorflow as tf
            all_grads = []
            for x in xs:
                with tf.GradientTape() as tape:
                    y = tf.reduce_sum(w * x)
                grads = tape.gradient(y, [w])
                all_grads.extend(grads)
            """), line=7, variant="append-gradients"),
        Invalid(dedent("""
            import tensorflow as tf

            class Trainer:
                def __init__(self):
                    self.history = []
                    self.acc = tf.keras.metrics.Accuracy()

                def train(self, steps):
                    for step in range(steps):
                        self.history.append(self.acc.result())
            """), line=10, variant="append-metric"),
        Invalid(dedent("""
            import tensorflow as tf

            @tf.function
            def train_step(x):
                return tf.reduce_mean(x), tf.reduce_max(x)

            losses = []
            for epoch in range(5):
                for x in batches:
                    loss, peak = train_step(x)
                    losses += [loss]
            """), line=11, variant="append-loss"),
        Invalid(dedent("""
            import tensorflow as tf
            per_step = {}
            for step in range(10):
                per_step[step] = tf.reduce_mean(tf.ones([3]))
            """), line=4, variant="dict-store"),
        Invalid(dedent("""
            import tensorflow as tf
            ds = tf.data.Dataset.from_tensor_slices(x).batch(32)
            labels = []
            for step, (xb, yb) in enumerate(ds):
                labels.append((xb, yb))
            """), line=5, variant="append-tensor"),
        Invalid(dedent("""
            import tensorflow as tf
            ds = tf.data.Dataset.from_tensor_slices(x).batch(32)
            outputs = []
            for xb in ds:
                outputs.append(tf.nn.softmax(xb))
            probs = tf.concat(outputs, axis=0)
            """), line=5, variant="append-tensor"),
        Invalid(dedent("""
            import tensorflow as tf
            all_grads = []
            for episode in range(10):
                episode_grads = []
                for step in range(100):
                    with tf.GradientTape() as tape:
                        loss = tf.reduce_sum(w * step)
                    episode_grads.append(tape.gradient(loss, [w]))
                all_grads.append(episode_grads)
            """), line=9, variant="append-gradients"),
        Invalid(dedent("""
            import tensorflow as tf

            def play(x):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(model(x))
                return 1.0, loss

            history = []
            for x in batches:
                reward, loss = play(x)
                history.append(loss)
            """), line=11, variant="append-loss"),
        Invalid(dedent("""
            import tensorflow as tf

            @tf.function
            def train_step(batch):
                return net(batch)

            history = []
            for batch in dataset:
                results = train_step(batch)
                history.append(results["loss"])
            """), line=10, variant="append-loss", expected_replacement=dedent("""
            import tensorflow as tf

            @tf.function
            def train_step(batch):
                return net(batch)

            history = []
            for batch in dataset:
                results = train_step(batch)
                history.append(results["loss"].numpy())
            """)),
        Invalid(dedent("""
            import tensorflow as tf
            metrics = {name: tf.keras.metrics.Mean(name=name) for name in ("loss", "acc")}
            curve = []
            for step in range(n_steps):
                metrics["loss"].update_state(step_loss(step))
                curve.append(metrics["loss"].result())
            """), line=6, variant="append-loss", expected_replacement=dedent("""
            import tensorflow as tf
            metrics = {name: tf.keras.metrics.Mean(name=name) for name in ("loss", "acc")}
            curve = []
            for step in range(n_steps):
                metrics["loss"].update_state(step_loss(step))
                curve.append(float(metrics["loss"].result()))
            """)),
        Invalid(dedent("""
            import tensorflow as tf

            def collect(model, batches):
                outputs = []
                for batch in batches:
                    outputs.append(model.predict_step(batch))
                return tf.concat(outputs, 0)
            """), line=6, variant="append-tensor"),
        Invalid(dedent("""
            import tensorflow as tf

            class Agent:
                def update(self, states, targets):
                    with tf.GradientTape() as tape:
                        loss = tf.reduce_mean(tf.square(self.q(states) - targets))
                    grads = tape.gradient(loss, self.q.trainable_variables)
                    self.opt.apply_gradients(zip(grads, self.q.trainable_variables))
                    return loss

            agent = Agent()
            losses = []
            for states, targets in replay_batches:
                losses.append(agent.update(states, targets))
            """), line=14, variant="append-loss", expected_replacement=dedent("""
            import tensorflow as tf

            class Agent:
                def update(self, states, targets):
                    with tf.GradientTape() as tape:
                        loss = tf.reduce_mean(tf.square(self.q(states) - targets))
                    grads = tape.gradient(loss, self.q.trainable_variables)
                    self.opt.apply_gradients(zip(grads, self.q.trainable_variables))
                    return loss

            agent = Agent()
            losses = []
            for states, targets in replay_batches:
                losses.append(float(agent.update(states, targets)))
            """)),
    ]

    def check(self, ctx: ModuleContext) -> Iterable[Report]:
        modes = ctx.analysis(GraphModes)
        if modes.everywhere:
            return  # eager execution is off: every list of tensors is graph structure
        kinds = kinds_for(ctx)
        py_funcs = ctx.analysis(py_function_targets)
        repeated = ctx.analysis(called_in_loop) | py_funcs
        for fn in ctx.functions:
            if fn.name in _STATE_HOOKS and fn.class_name:
                continue
            yield from self._check_function(ctx, kinds, modes, fn, id(fn) in repeated,
                                            id(fn) in py_funcs)

    def _outlives(self, ctx: ModuleContext, fn: FuncInfo, container: cst.BaseExpression,
                  loop: Loop | None) -> bool:
        root = _root_name(container)
        if isinstance(root, cst.Attribute):
            return True  # self.attr
        if not isinstance(root, cst.Name):
            return False
        if loop is None:  # a repeated function: only stores that survive the call count
            if fn.node is not None and (any(
                    isinstance(ev.target, cst.Name) and ev.target.value == root.value
                    for ev in fn.assigns) or is_param(fn, root.value)):
                return False
            # a module-level list: kept until it is cleared (a list emptied elsewhere, at an
            # epoch's end, holds one epoch at most)
            return not _cleared_anywhere(ctx, root.value)
        return not ctx.created_in_loop(fn, root.value, loop) and not _cleared_in(
            fn, root.value, loop)

    def _value_kind(self, ctx: ModuleContext, kinds: ValueKinds, fn: FuncInfo,
                    value: cst.BaseExpression, seq: int, py_function: bool) -> str:
        """The kind of a stored value; a parameter of a repeated function takes the kind of
        what its callers pass (``log(loss)`` per step), and of a ``tf.py_function`` target
        is a tensor (TensorFlow hands it eager tensors)."""
        kind = kinds.expr_kind(value, fn, seq)
        if kind != UNKNOWN or not isinstance(value, cst.Name) or fn.node is None:
            return kind
        if not is_param(fn, value.value, star=False) or ctx.last_assign(fn, value.value, seq):
            return kind
        if py_function:
            return TENSOR
        return _argument_kind(ctx, kinds, fn, value.value)

    def _check_function(self, ctx: ModuleContext, kinds: ValueKinds, modes: GraphModes,
                        fn: FuncInfo, repeated: bool, py_function: bool = False
                        ) -> Iterator[Report]:
        for site in fn.calls:
            if site.method not in _STORE_METHODS or not site.node.args or site.qn is not None:
                continue  # a resolved qualified name is a module function (tf.add), not a store
            loop = _statement_loop(site.loops)
            if loop is None and (site.loops or not repeated):
                continue
            receiver = site.receiver
            assert receiver is not None
            if not self._outlives(ctx, fn, receiver, loop):
                continue
            arg = site.node.args[-1] if site.method == "insert" else site.node.args[0]
            if arg.star:
                continue
            kind = self._value_kind(ctx, kinds, fn, arg.value, site.seq, py_function)
            via = ""
            if kind == UNKNOWN:
                kind, via = _method_result(ctx, kinds, fn, arg.value, site.seq)
            if kind not in TENSORISH:
                continue
            if _per_call_stats(ctx, fn, receiver, loop, site.seq, repeated):
                continue  # filled and reduced within one call of a per-step function
            history = _history(ctx, kinds, fn, receiver, arg.value, kind, site.seq)
            if not history and self._one_computation(ctx, kinds, fn, receiver, loop):
                continue
            if self._kept_state(ctx, kinds, fn, receiver, loop) or (
                    not history and not step_loop(ctx, kinds, fn, loop, UTR_STEPS)
                    and self._collected_result(ctx, fn, receiver, site.seq)):
                continue
            if self._built_once(ctx, kinds, fn, arg.value, loop, site.seq):
                continue
            if modes.graph(fn, site.stmt, site.seq, loop):
                continue  # a list of symbolic tensors: graph structure, built once
            yield self._report(ctx, kinds, fn, site.seq, site.node, arg.value, kind, site.stmt,
                               loop, repeated, "append", via=via)
        for ev in fn.aug_assigns:
            loop = _statement_loop(ev.loops)
            if loop is None or not isinstance(ev.op, cst.AddAssign) or ev.value is None:
                continue
            if not isinstance(ev.value, cst.List | cst.Tuple) and not self._is_list(
                    ctx, fn, ev.target, ev.seq):
                continue
            if not self._outlives(ctx, fn, ev.target, loop):
                continue
            kind = kinds.expr_kind(ev.value, fn, ev.seq)
            via = ""
            if kind == UNKNOWN and isinstance(ev.value, cst.List | cst.Tuple) \
                    and len(ev.value.elements) == 1:
                kind, via = _method_result(ctx, kinds, fn, ev.value.elements[0].value, ev.seq)
            if kind not in TENSORISH or _per_call_stats(ctx, fn, ev.target, loop, ev.seq, False):
                continue
            history = _history(ctx, kinds, fn, ev.target, ev.value, kind, ev.seq)
            if (not history and self._one_computation(ctx, kinds, fn, ev.target, loop)) or \
                    self._kept_state(ctx, kinds, fn, ev.target, loop):
                continue
            if not history and not step_loop(ctx, kinds, fn, loop, UTR_STEPS) and \
                    self._collected_result(ctx, fn, ev.target, ev.seq):
                continue
            if self._built_once(ctx, kinds, fn, ev.value, loop, ev.seq):
                continue
            value = ev.value
            if isinstance(value, cst.List | cst.Tuple) and len(value.elements) == 1:
                value = value.elements[0].value
                if not via:
                    kind = kinds.expr_kind(value, fn, ev.seq)
            if modes.graph(fn, ev.stmt, ev.seq, loop):
                continue
            yield self._report(ctx, kinds, fn, ev.seq, ev.stmt or ev.target, value, kind,
                               ev.stmt, loop, False, "append", via=via)
        for ev in fn.assigns:
            loop = _statement_loop(ev.loops)
            if loop is None or ev.kind != "assign" or not isinstance(ev.target, cst.Subscript):
                continue
            if ev.value is None or not self._changing_key(ev.target) or _over_mapping(loop):
                continue
            container = _root_name(ev.target.value)
            if not self._outlives(ctx, fn, ev.target.value, loop) or self._kept_state(
                    ctx, kinds, fn, container, loop):
                continue
            if _holds_list(ctx, fn, container, ev.seq):
                continue  # ``slots[i] = t`` replaces an item: a list never grows by index
            kind = kinds.expr_kind(ev.value, fn, ev.seq)
            if kind not in TENSORISH or (
                    not step_loop(ctx, kinds, fn, loop, UTR_STEPS)
                    and self._collected_result(ctx, fn, container, ev.seq)):
                continue  # a per-call dict filled and returned (or handed on)
            if self._built_once(ctx, kinds, fn, ev.value, loop, ev.seq):
                continue
            if modes.graph(fn, ev.stmt, ev.seq, loop):
                continue
            yield self._report(ctx, kinds, fn, ev.seq, ev.stmt or ev.target, ev.value, kind,
                               ev.stmt, loop, False, "dict")

    @staticmethod
    def _built_once(ctx: ModuleContext, kinds: ValueKinds, fn: FuncInfo,
                    value: cst.BaseExpression, loop: Loop | None, seq: int) -> bool:
        """Structure built once, not values kept per step: the symbolic tensors of a
        functional Keras model under construction, traced back to ``keras.Input``, or the
        output of a layer created right there (``Dense(n)(x)``, or a layer constructed in the
        same loop iteration): each iteration adds a layer to a model being built (a list of
        heads or blocks), which running a model never does."""
        if _symbolic(ctx, kinds, fn, value, seq, set()):
            return True
        return (loop is None or not step_loop(ctx, kinds, fn, loop, UTR_STEPS)) and \
            _fresh_layer_output(ctx, kinds, fn, value, seq, loop)

    @staticmethod
    def _one_computation(ctx: ModuleContext, kinds: ValueKinds, fn: FuncInfo,
                         container: cst.BaseExpression, loop: Loop | None) -> bool:
        """A local list that holds the parts of one computation, not per-step results: built
        inside a layer's forward pass (``call``/``__call__``/``build``), or created inside an
        enclosing loop's iteration and filled by an inner loop that is not a step loop (per
        variable, per output, per head)."""
        if loop is None or not isinstance(container, cst.Name):
            return False
        name = container.value
        if fn.class_name and fn.name in _FORWARD_METHODS:
            return True
        lp: Loop | None = loop
        while lp is not None:  # the loops between the container's creation and the store
            if lp.kind != "comprehension":
                if lp is not loop and ctx.created_in_loop(fn, name, lp):
                    return True  # created in an enclosing iteration, filled by non-step loops
                if step_loop(ctx, kinds, fn, lp, UTR_STEPS):
                    return False
            lp = lp.parent
        return False

    @staticmethod
    def _kept_state(ctx: ModuleContext, kinds: ValueKinds, fn: FuncInfo,
                    container: cst.BaseExpression, loop: Loop | None) -> bool:
        """State built once, not per step: a loop that is not a step loop filling a container
        the caller passed in (a serialisation ``store``, a caller's dict), or filling
        ``self.attr`` in a method that creates an object's state (``build``, ``__init__``,
        an optimizer's slot creation)."""
        if loop is None or step_loop(ctx, kinds, fn, loop, UTR_STEPS):
            return False
        root = _root_name(container)
        if isinstance(root, cst.Name):
            return is_param(fn, root.value)
        return bool(fn.class_name) and fn.name in _STATE_METHODS

    @staticmethod
    def _collected_result(ctx: ModuleContext, fn: FuncInfo, container: cst.BaseExpression,
                          seq: int) -> bool:
        """A list of tensors built to be combined or returned (``outputs`` of a layer loop, per-GPU
        gradients): after the loop it is passed to a call or returned. Only asked for loops
        that are not step loops."""
        if not isinstance(container, cst.Name):
            return False
        name = container.value
        for s in fn.calls:
            if s.seq > seq and any(isinstance(a.value, cst.Name) and a.value.value == name
                                   for a in s.node.args):
                return True
        return fn.node is not None and any(
            name in {n.value for n in bound_names(v)} for v, _ in fn.returns)

    @staticmethod
    def _changing_key(target: cst.Subscript) -> bool:
        for el in target.slice:
            if isinstance(el.slice, cst.Index) and isinstance(
                    el.slice.value, cst.BaseString | cst.BaseNumber):
                return False
        return True

    @staticmethod
    def _is_list(ctx: ModuleContext, fn: FuncInfo, target: cst.BaseExpression, seq: int) -> bool:
        if not isinstance(target, cst.Name):
            return False
        ev = ctx.last_assign(fn, target.value, seq)
        if ev is None or ev.value is None:
            return False
        v = ev.value
        return isinstance(v, cst.List | cst.ListComp) or (
            isinstance(v, cst.Call) and isinstance(v.func, cst.Name) and v.func.value == "list")

    def _report(self, ctx: ModuleContext, kinds: ValueKinds, fn: FuncInfo, seq: int,
                node: cst.CSTNode, value: cst.BaseExpression, kind: str,
                stmt: cst.CSTNode | None, loop: Loop | None, repeated: bool,
                store: str, via: str = "") -> Report:
        text = ctx.code(value).lower()
        if store == "dict":
            variant = "dict-store"
        elif kind == GRADS or "grad" in text:
            variant = "append-gradients"
        elif "loss" in text:
            variant = "append-loss"
        elif "result()" in text or "acc" in text or "metric" in text:
            variant = "append-metric"
        elif isinstance(value, cst.Call | cst.BinaryOperation) and _calls_model(
                ctx, kinds, fn, value, seq) or self._from_model_call(ctx, kinds, fn, value, seq):
            variant = "append-output"
        elif kind == SCALAR:
            variant = "append-loss"
        else:
            variant = "append-tensor"
        confidence = 0.7 if repeated or loop is None else 0.9
        if kind not in (SCALAR, GRADS) and _from_dataset(ctx, kinds, fn, value, seq):
            confidence = 0.7
        if via:
            confidence = min(confidence, 0.6)  # the method was matched by its name only
        fix = replace_expr(value, lambda upd, k=kind: _convert(k, upd, kinds, fn, seq),
                           key="utr-convert")
        return Report(node=node, variant=variant, confidence=confidence,
                      loop_kind=loop.kind if loop is not None else "",
                      training_api="gradient_tape" if _has_tape(fn) else "",
                      function=fn.qualname, stmt=stmt, fix=fix, via=via)

    @staticmethod
    def _from_model_call(ctx: ModuleContext, kinds: ValueKinds, fn: FuncInfo,
                         value: cst.BaseExpression, seq: int) -> bool:
        names = [value] if isinstance(value, cst.Name) else []
        if isinstance(value, cst.BinaryOperation):
            names = [v for v in (value.left, value.right) if isinstance(v, cst.Name)]
        for name in names:
            ev = ctx.last_assign(fn, name.value, seq)  # type: ignore[attr-defined]
            if ev is not None and isinstance(ev.value, cst.Call) and _calls_model(
                    ctx, kinds, fn, ev.value, ev.seq):
                return True
        return False


_FORWARD_METHODS = frozenset({"call", "__call__", "build", "_build"})
#: Methods that create an object's state once (its variables, an optimizer's slots).
_STATE_METHODS = frozenset({"__init__", "build", "_build", "_create_slots", "_create_all_weights",
                            "add_slot", "_prepare", "_create_hypers", "build_from_config",
                            "set_weights"})
#: Serialisation hooks: they copy an object's variables into a store handed to them once.
_STATE_HOOKS = frozenset({"save_own_variables", "load_own_variables", "save_assets",
                          "load_assets", "get_config", "__getstate__", "__setstate__",
                          "_save_own_variables", "_load_own_variables", "get_build_config"})


def _over_mapping(loop: Loop) -> bool:
    """``for k, v in d.items()``: re-keys a fixed mapping, it does not grow per step."""
    node = loop.node
    return isinstance(node, cst.For) and isinstance(node.iter, cst.Call) and isinstance(
        node.iter.func, cst.Attribute) and node.iter.func.attr.value in ("items", "keys", "values")


def _calls_model(ctx: ModuleContext, kinds: ValueKinds, fn: FuncInfo, value: cst.BaseExpression,
                 seq: int) -> bool:
    if isinstance(value, cst.BinaryOperation):
        return any(_calls_model(ctx, kinds, fn, v, seq) for v in (value.left, value.right))
    if not isinstance(value, cst.Call):
        return False
    from leakwatt.mining.rules.values import LAYER, MODEL

    return kinds.expr_kind(value.func, fn, seq) in (MODEL, LAYER)


def _from_dataset(ctx: ModuleContext, kinds: ValueKinds, fn: FuncInfo, value: cst.BaseExpression,
                  seq: int) -> bool:
    names: list[cst.BaseExpression] = [value]
    if isinstance(value, cst.Tuple | cst.List):
        names = [e.value for e in value.elements]
    for name in names:
        if isinstance(name, cst.Name):
            ev = ctx.last_assign(fn, name.value, seq)
            if ev is not None and ev.kind == "for":
                return True
    return False


def _has_tape(fn: FuncInfo) -> bool:
    return any(s.qn == "tensorflow.GradientTape" for s in fn.calls)



# -- what a store keeps ------------------------------------------------------------------------

#: ``tf.py_function`` runs its Python function eagerly, once per call of the graph function or
#: dataset element that holds it, and hands it eager tensors.
_PY_FUNCTIONS = frozenset({"tensorflow.py_function"})
#: Averaging a list with numpy or ``statistics`` turns it into a number that no gradient ever
#: sees: the list is a history of values being logged, not the parts of one computation.
#: (Python's ``sum`` is not one: ``sum(losses)`` adds the terms of one loss.)
_AVERAGERS = frozenset({"mean", "average", "nanmean", "median", "std", "var", "fmean"})
#: Names of values that are logged (with a tensor kind that is not a scalar loss or metric).
_LOGGED = re.compile(r"loss|acc|metric|reward|score|error|perplexity|return")
#: Keras symbolic inputs: what flows from them is a functional model being built.
_KERAS_INPUTS = frozenset({"keras.Input", "keras.layers.Input"})


def py_function_targets(ctx: ModuleContext) -> frozenset[int]:
    """Ids of the same-module functions handed to ``tf.py_function`` (a module analysis)."""
    out: set[int] = set()
    for site in ctx.calls:
        if site.qn not in _PY_FUNCTIONS:
            continue
        func = next((a.value for a in site.node.args
                     if a.keyword is not None and a.keyword.value == "func"), None)
        if func is None and site.node.args and site.node.args[0].keyword is None:
            func = site.node.args[0].value
        target = ctx.local_function_by_ref(func, site.func) if func is not None else None
        if target is not None:
            out.add(id(target))
    return frozenset(out)


def _history(ctx: ModuleContext, kinds: ValueKinds, fn: FuncInfo,
             container: cst.BaseExpression, value: cst.BaseExpression, kind: str,
             seq: int) -> bool:
    """A list of loss or metric values averaged with numpy or ``statistics`` after the store
    (``np.mean(episode_losses)``): a per-episode or per-epoch history, whatever loop fills
    it, not the parts of one computation."""
    if kind != SCALAR and not _LOGGED.search(ctx.code(value).lower()):
        return False
    text = ctx.code(container)
    for site in fn.calls:
        if site.seq <= seq:
            continue
        qn = site.qn or ""
        averages = (qn.startswith("numpy.") and qn.rsplit(".", 1)[1] in _AVERAGERS) or (
            site.method in _AVERAGERS and isinstance(site.receiver, cst.Name)
            and site.receiver.value == "statistics")
        if averages and any(ctx.code(a.value) == text for a in site.node.args):
            return True
    return False


def _cleared_in(fn: FuncInfo, name: str, loop: Loop) -> bool:
    """``name.clear()`` or ``name[:] = []`` inside ``loop``: the list holds one iteration."""
    for site in fn.calls:
        if site.method == "clear" and isinstance(site.receiver, cst.Name) and \
                site.receiver.value == name and loop in site.loops:
            return True
    return any(loop in ev.loops and _empties(ev.target, name) for ev in fn.assigns)


def _cleared_anywhere(ctx: ModuleContext, name: str) -> bool:
    """The module-level list ``name`` is emptied somewhere with ``name.clear()`` (a seed of the
    pre-filter, so the statement is kept wherever it is)."""
    return any(site.method == "clear" and isinstance(site.receiver, cst.Name)
               and site.receiver.value == name for site in ctx.calls)


def _empties(target: cst.BaseExpression, name: str) -> bool:
    """``name[:] = ...``: the list's items replaced at once."""
    return isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name) and \
        target.value.value == name and len(target.slice) == 1 and isinstance(
            target.slice[0].slice, cst.Slice) and target.slice[0].slice.lower is None and \
        target.slice[0].slice.upper is None


def _argument_kind(ctx: ModuleContext, kinds: ValueKinds, fn: FuncInfo, name: str) -> str:
    """The kind every same-module caller passes for parameter ``name`` of ``fn`` (a helper
    that logs what it is given: ``log(loss)`` per step); unknown unless all are tensors."""
    assert fn.node is not None
    params = fn.node.params
    positional = [*params.posonly_params, *params.params]
    index = next((i for i, p in enumerate(positional) if p.name.value == name), None)
    bound = 1 if fn.class_name and positional and positional[0].name.value in ("self", "cls") \
        else 0
    found: list[str] = []
    for site in ctx.calls:
        if site.func is fn or ctx.resolve_local_function(site) is not fn:
            continue
        arg = next((a.value for a in site.node.args
                    if a.keyword is not None and a.keyword.value == name), None)
        if arg is None and index is not None:
            plain = [a for a in site.node.args if a.keyword is None]
            if any(a.star for a in plain):
                return UNKNOWN
            at = index - (bound if isinstance(site.node.func, cst.Attribute) else 0)
            if 0 <= at < len(plain):
                arg = plain[at].value
        if arg is None:
            return UNKNOWN
        found.append(kinds.expr_kind(arg, site.func, site.seq))
    if found and all(k in TENSORISH for k in found):
        return found[0] if len(set(found)) == 1 else TENSOR
    return UNKNOWN


def _list_value(value: cst.BaseExpression) -> bool:
    """A list: ``[...]``, ``[None] * n``, a list comprehension, ``list(...)``."""
    if isinstance(value, cst.List | cst.ListComp):
        return True
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Multiply):
        return isinstance(value.left, cst.List) or isinstance(value.right, cst.List)
    return isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and \
        value.func.value == "list"


def _holds_list(ctx: ModuleContext, fn: FuncInfo, container: cst.BaseExpression,
                seq: int) -> bool:
    """``container`` (a name or ``self.attr``) is bound to a list: an index store replaces
    one of its items (``boundaries[i] = b``), it never adds one."""
    if isinstance(container, cst.Name):
        ev = ctx.last_assign(fn, container.value, seq)
        return ev is not None and ev.value is not None and _list_value(ev.value)
    if (isinstance(container, cst.Attribute) and isinstance(container.value, cst.Name)
            and container.value.value == "self" and fn.class_name):
        cls = ctx.classes.get(fn.class_name)
        events = cls.attr_assigns.get(container.attr.value, []) if cls is not None else []
        return bool(events) and all(ev.value is not None and _list_value(ev.value)
                                    for ev in events)
    return False


def _symbolic(ctx: ModuleContext, kinds: ValueKinds, fn: FuncInfo, expr: cst.BaseExpression,
              seq: int, seen: set[tuple[int, int]], depth: int = 0) -> bool:
    """``expr`` flows from a ``keras.Input`` through layer calls and Keras functions: a
    symbolic tensor of a functional model being built."""
    if depth > 16 or (id(expr), seq) in seen:
        return False
    seen.add((id(expr), seq))
    if isinstance(expr, cst.Name):
        ev = ctx.last_assign(fn, expr.value, seq)
        return ev is not None and ev.value is not None and _symbolic(
            ctx, kinds, ev.func, ev.value, ev.seq, seen, depth + 1)
    if isinstance(expr, cst.Call):
        qn = ctx.names.resolve(expr.func)
        if qn in _KERAS_INPUTS:
            return True
        layer_call = isinstance(expr.func, cst.Call | cst.Name) and kinds.expr_kind(
            expr.func, fn, seq) == LAYER
        keras_function = qn is not None and qn.startswith("keras.")
        if layer_call or keras_function:
            return any(_symbolic(ctx, kinds, fn, a.value, seq, seen, depth + 1)
                       for a in expr.args[:2])
        return False
    if isinstance(expr, cst.BinaryOperation):
        return _symbolic(ctx, kinds, fn, expr.left, seq, seen, depth + 1) or _symbolic(
            ctx, kinds, fn, expr.right, seq, seen, depth + 1)
    if isinstance(expr, cst.Subscript):
        return _symbolic(ctx, kinds, fn, expr.value, seq, seen, depth + 1)
    if isinstance(expr, cst.List | cst.Tuple):
        return any(_symbolic(ctx, kinds, fn, e.value, seq, seen, depth + 1)
                   for e in expr.elements[:4])
    return False


def _fresh_layer_output(ctx: ModuleContext, kinds: ValueKinds, fn: FuncInfo,
                        value: cst.BaseExpression, seq: int, loop: Loop | None) -> bool:
    """``value`` is the output of a layer created in place (``Dense(1)(h)``) or in the same
    loop iteration (``head = Dense(1)`` then ``head(h)``)."""
    expr, scope, at = value, fn, seq
    for _ in range(4):
        if not isinstance(expr, cst.Name):
            break
        ev = ctx.last_assign(scope, expr.value, at)
        if ev is None or ev.value is None:
            return False
        expr, scope, at = ev.value, ev.func, ev.seq
    if not isinstance(expr, cst.Call):
        return False
    func = expr.func
    if isinstance(func, cst.Call):
        return kinds.expr_kind(func, scope, at) == LAYER
    if isinstance(func, cst.Name) and loop is not None:
        ev = ctx.last_assign(scope, func.value, at)
        return ev is not None and ev.value is not None and loop in ev.loops and \
            kinds.expr_kind(ev.value, ev.func, ev.seq) == LAYER
    return False


# -- values returned by the methods of the module's classes --------------------------------------

#: Method names matched by name alone for a returned tensor: those of
#: :data:`~leakwatt.mining.rules.kit.COMMON_METHODS` but ``update`` (an agent's or a trainer's
#: update step is the very method whose loss is kept; ``dict.update`` returns None, which no
#: one stores).
_RESULT_COMMON = COMMON_METHODS - {"update"}


def _method_result(ctx: ModuleContext, kinds: ValueKinds, fn: FuncInfo,
                   value: cst.BaseExpression, seq: int) -> tuple[str, str]:
    """The kind of what a module class's method returns, for a value computed by calling it
    on an instance (``agent.update(batch)``), directly or through the name it was bound to
    (``loss = agent.update(batch)``; ``loss, acc = trainer.train_step(x)``), and the ``via``
    note when the method was matched by its name only (:func:`resolve_callee`).
    ``(UNKNOWN, "")`` when it is not a tensor or cannot be told."""
    call: cst.BaseExpression | None = value
    index: int | None = None
    scope, at = fn, seq
    if isinstance(value, cst.Name):
        ev = ctx.last_assign(fn, value.value, seq)
        call = None
        if ev is not None and ev.kind == "assign":
            call, scope, at = ev.value, ev.func, ev.seq
        elif ev is not None and ev.kind == "unpack" and ev.index is not None:
            call, index, scope, at = ev.source, ev.index, ev.func, ev.seq
    if not isinstance(call, cst.Call) or not isinstance(call.func, cst.Attribute):
        return UNKNOWN, ""
    target, via = resolve_callee(ctx, scope, call, at, common=_RESULT_COMMON)
    if target is None:
        return _project_method_result(ctx, scope, call, at, index)
    if target.node is None or target.name == "__init__":
        return UNKNOWN, ""
    if index is None:
        kind = kinds.return_kind(target)
    else:
        found: set[str] = set()
        for ret, rseq in target.returns:
            if not isinstance(ret, cst.Tuple) or len(ret.elements) <= index:
                return UNKNOWN, ""
            found.add(kinds.expr_kind(ret.elements[index].value, target, rseq + 1))
        found.discard(UNKNOWN)
        kind = found.pop() if len(found) == 1 else UNKNOWN
    return (kind, via) if kind in TENSORISH else (UNKNOWN, "")


def _project_method_result(ctx: ModuleContext, fn: FuncInfo, call: cst.Call, seq: int,
                           index: int | None) -> tuple[str, str]:
    """``obj.m(...)`` where ``obj`` holds an instance of a class of *another* project module
    (``agent = HER_Agent(env)`` with ``HER_Agent`` imported, or ``self.agent`` stored as
    one) and ``m`` is one of that class's training-step methods that return tensors
    (:attr:`~leakwatt.mining.rules.project.Symbol.methods`): the kind of the result (of its
    element ``index`` when it was unpacked), and a ``via`` note naming the class's module."""
    if ctx.project is None:
        return UNKNOWN, ""
    func = call.func
    assert isinstance(func, cst.Attribute)
    recv = func.value
    values = ctx.held_values(fn, recv, seq)
    if not values or not all(isinstance(v, cst.Call) for v, _ in values):
        return UNKNOWN, ""
    symbols = {ctx.project_symbol(v.func, vfn) for v, vfn in values if isinstance(v, cst.Call)}
    sym = symbols.pop() if len(symbols) == 1 else None
    if sym is None or sym.kind != "class":
        return UNKNOWN, ""
    method = func.attr.value
    found = sym.method(method)
    if found is None:
        return UNKNOWN, ""
    returns, elements = found
    if index is not None:
        returns = elements[index] if index < len(elements) else UNKNOWN
    kind = returns
    if kind not in TENSORISH:
        return UNKNOWN, ""
    path, _, cls_name = sym.origin.partition(":")
    text = " ".join(ctx.code(recv).split())[:60]
    return kind, (f"{text}.{method}() runs {cls_name or 'a class'}.{method} of "
                  f"{path or 'another project module'}, a training step that returns tensors")


# -- lists that live for one call of a per-step function ------------------------------------------

#: Names of functions that do one update per call (an agent's ``update``/``learn``, a
#: ``train_step``): what they collect and reduce lives for one call.
_UPDATE_NAMES = re.compile(
    r"^_?(?:update|learn|train_step|train_batch|train_on_batch|optimi[sz]e|replay|fit_batch|"
    r"update_\w+|learn_\w+|\w+_update|\w+_train_step)$")
#: Functions run once per epoch or evaluation: a list they fill and average is the epoch's
#: history (as in a loop over epochs), not one update's statistics.
_PER_EPOCH_NAMES = re.compile(r"epoch|eval|valid|test|predict|infer", re.IGNORECASE)
#: Calls that reduce a list of tensors to one value (or one array) it does not keep.
_NUMPY_REDUCERS = frozenset({"mean", "average", "nanmean", "sum", "nansum", "median", "std",
                             "var", "stack", "concatenate", "array", "asarray", "max", "min"})
_TF_REDUCERS = frozenset({"add_n", "stack", "concat", "reduce_mean", "reduce_sum", "reduce_max",
                          "reduce_min", "convert_to_tensor"})


def per_step_callees(ctx: ModuleContext) -> frozenset[int]:
    """Ids of the module functions and methods called inside a loop, also through instances
    of module classes (``agent.update(batch)``; :func:`resolve_callee`), or called per step
    by another project module (a module analysis)."""
    out = {id(fn) for fn in ctx.functions if id(fn) in called_from_other_modules(ctx)}
    for site in ctx.calls:
        if site.loops:
            target, _ = resolve_callee(ctx, site.func, site.node, site.seq,
                                       common=_RESULT_COMMON)
            if target is not None and target is not site.func:
                out.add(id(target))
    return frozenset(out)


def _reduces(site: CallSite) -> bool:
    """A call that reduces a list to a number or an array it does not keep: numpy's and
    TensorFlow's reductions and stacks, ``statistics``, ``sum``/``len``/``max``/``min``."""
    qn = site.qn or ""
    root, _, rest = qn.partition(".")
    last = rest.rsplit(".", 1)[-1] if rest else ""
    if root == "numpy":
        return last in _NUMPY_REDUCERS
    if root == "tensorflow":
        return last in _TF_REDUCERS
    if root == "statistics" or (site.method in _AVERAGERS and isinstance(site.receiver, cst.Name)
                                and site.receiver.value == "statistics"):
        return True
    return site.simple_name in ("sum", "len", "max", "min") and not site.qn


def _per_call_stats(ctx: ModuleContext, fn: FuncInfo, container: cst.BaseExpression,
                    loop: Loop | None, seq: int, repeated: bool) -> bool:
    """A list of one call's statistics: created in ``fn``'s own body (outside its loops),
    filled in its loops and reduced before it returns (``np.mean(losses)``,
    ``tf.add_n(losses)``), never returned, stored or handed to anything else, in a function
    that runs once per step or update (by name an ``update``/``learn``/``train_step``, or
    called from a loop and not named for an epoch or an evaluation). The list and its
    tensors are freed when the call returns: bounded by one update's work, not kept across
    the training run."""
    if loop is None or fn.node is None or not isinstance(container, cst.Name):
        return False
    name = container.value
    ev = ctx.last_assign(fn, name, seq)
    if ev is None or ev.func is not fn or ev.kind != "assign" or ev.loops or ev.value is None \
            or not _list_value(ev.value):
        return False
    if not _UPDATE_NAMES.match(fn.name) and (_PER_EPOCH_NAMES.search(fn.name) or not (
            repeated or id(fn) in ctx.analysis(per_step_callees))):
        return False  # a function run once, or once per epoch: its list is a history
    reduced = False
    for site in fn.calls:
        if site.seq <= seq or not any(isinstance(a.value, cst.Name) and a.value.value == name
                                      for a in site.node.args):
            continue
        if not _reduces(site):
            return False  # handed to something that may keep it
        reduced = reduced or site.simple_name != "len"
    if not reduced:
        return False
    for later in fn.assigns:  # ``self.history = losses``, ``out[k] = losses``
        if later.seq > seq and isinstance(later.value, cst.Name) and later.value.value == name:
            return False
    return not any(name in {n.value for n in bound_names(v)} or (
        isinstance(v, cst.Name) and v.value == name) for v, _ in fn.returns)
