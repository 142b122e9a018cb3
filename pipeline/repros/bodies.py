"""Training bodies of the reproduction programs: the only lines a pair's smelly.py and clean.py
do not share.

A body is the source of ``def train(keras, tf, x, y, cfg) -> (round_losses, model)`` preceded by
the helpers it uses; it may call what every program's header defines (``build_model``,
``make_optimizer``, ``make_loss``, ``batches``, ``SEED``, ``FRAMEWORK``, ``WORK``,
``record_leak``, ``graph_op_count``, ``live_keras_models``, ``tensor_bytes``).
:func:`leakwatt.pipeline.repros.templates.render` puts one body between the shared header and
footer. All of this is leakwatt's own code; mined code is never copied here.

Every body

* calls ``record_leak(lambda: count)`` once at the end of every round with its family's
  positive control (:data:`LEAK_EVIDENCE` says what is counted): the round's end is timestamped
  in every run, the callable is called only in instrumented (control) runs, and
* counts the work it does in ``WORK``: ``train_steps`` (batches trained, counted by a callback
  or the loop), ``optimizer_updates`` (the optimizer's own ``iterations`` counter),
  ``examples_seen`` (training examples) and ``examples_predicted`` (inference examples). The
  equivalence check compares these between the two variants (:data:`WORK_KEYS`).

Where a rule has an autofix, the clean body of a mined family is exactly the smelly body with the
autofix applied (``tests/test_repros_autofix.py`` runs the real fix on the rendered smelly.py).
"""

from __future__ import annotations

from string import Template

#: The work counters both variants of a pair must agree on (equal work).
WORK_KEYS = ("train_steps", "optimizer_updates", "examples_seen", "examples_predicted")

#: What each family's ``record_leak`` counts (meta.json ``leak_evidence``), by body prefix.
LEAK_EVIDENCE = {
    "imr": "IMR: after every round, the number of ops in the default graph under keras2-graph "
           "(a model left in the graph keeps its ops there), the number of live Keras models "
           "otherwise (models still reachable after the round; header helper "
           "live_keras_models)",
    "utr": "UTR: after every round, the bytes of the tensors the loop's containers still hold "
           "(header helper tensor_bytes; Python floats and NumPy arrays count 0)",
    "dir": "DIR: after every round, the number of tf.data datasets constructed so far (each "
           "model.predict call wraps its input in a new pipeline; counted by wrapping "
           "tf.data.Dataset.__init__), or the ops in the default graph under keras2-graph",
    "us": "US: after every round, the number of tf.compat.v1 sessions created by the loop that "
          "are still open (tracked by weak reference; CPython closes a session nobody "
          "references when it frees it, so the count grows only while sessions stay "
          "referenced)",
}

#: Training bodies: helpers, then ``def train(keras, tf, x, y, cfg) -> (round_losses, model)``.
BODIES: dict[str, str] = {}

# --------------------------------------------------------------------------- shared helpers

_COUNTING = '''\
def optimizer_updates(keras, tf, optimizer):
    """The optimizer's own count of applied updates (its ``iterations`` variable)."""
    if tf.executing_eagerly():
        return int(optimizer.iterations.numpy())
    return int(keras.backend.get_value(optimizer.iterations))


def fit_counted(keras, tf, model, x, y, cfg, epochs=1):
    """model.fit with its work counted in WORK: batches trained (a callback), optimizer updates
    (the optimizer's counter before and after) and examples seen (y None: x is a batched
    tf.data dataset of len(DATA) examples)."""
    steps = []
    counter = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs=None: steps.append(batch))
    before = optimizer_updates(keras, tf, model.optimizer)
    if y is None:
        history = model.fit(x, epochs=epochs, verbose=0, callbacks=[counter])
    else:
        history = model.fit(x, y, batch_size=cfg["batch_size"], epochs=epochs, shuffle=False,
                            verbose=0, callbacks=[counter])
    WORK["train_steps"] += len(steps)
    WORK["optimizer_updates"] += optimizer_updates(keras, tf, model.optimizer) - before
    WORK["examples_seen"] += epochs * (cfg["samples"] if y is None else len(x))
    return history


def train_batches_counted(keras, tf, model, x, y, cfg):
    """train_on_batch over the batches of (x, y), work counted; the per-batch losses."""
    before = optimizer_updates(keras, tf, model.optimizer)
    losses = []
    for xb, yb in batches(x, y, cfg["batch_size"]):
        losses.append(float(model.train_on_batch(xb, yb)))
        WORK["train_steps"] += 1
        WORK["examples_seen"] += len(xb)
    WORK["optimizer_updates"] += optimizer_updates(keras, tf, model.optimizer) - before
    return losses


'''

_IMR_LEAK = '''\
def imr_leak_count():
    """IMR's positive control: ops in the default graph in graph mode, else live Keras models."""
    return graph_op_count() if FRAMEWORK == "keras2-graph" else live_keras_models()


'''

# --------------------------------------------------------------------------- IMR

_RELEASE = {
    "rebuild": "",
    "clear": "        keras.backend.clear_session()\n",
    "del": "        if model is not None:\n            del model\n            gc.collect()\n",
}
_RELEASE_DOC = {
    "rebuild": "SMELL (IMR): a new model is built and compiled every round in a loop and nothing "
               "releases\n    the previous one",
    "clear": "FIX (IMR): as the smelly loop, but keras.backend.clear_session() before every "
             "rebuild",
    "del": "ALTERNATIVE FIX (IMR): as the smelly loop, but the previous model is deleted and\n"
           "    gc.collect() runs before every rebuild",
}
_TRAIN_ROUND = {
    "fit": '''\
        history = fit_counted(keras, tf, model, $xs, $ys, cfg)
        round_losses.append(float(history.history["loss"][-1]))''',
    "train_on_batch": '''\
        losses = train_batches_counted(keras, tf, model, $xs, $ys, cfg)
        round_losses.append(sum(losses) / len(losses))''',
}

_IMR_EPOCHS = '''\
def train(keras, tf, x, y, cfg):
    """$doc; weights are carried over from round to round, so training is unchanged."""
$imports    round_losses, weights, model = [], None, None
    for _ in range(cfg["rounds"]):
$release        model = build_model(keras)
        model.compile(optimizer=make_optimizer(keras), loss=make_loss(keras)$compile_extra)
        if weights is None:  # round 1 sets its own initial weights too, so every round
            weights = model.get_weights()  # builds the same ops (the graph-mode leak count)
        model.set_weights(weights)
$train
        weights = model.get_weights()
        record_leak(lambda: imr_leak_count())
    return round_losses, model
'''

_IMR_FOLDS = '''\
def train(keras, tf, x, y, cfg):
    """$doc; one model per fold/trial, each starting from the same initial weights."""
$imports    folds = cfg["rounds"]
    fold_size = len(x) // folds
    round_losses, initial, model = [], None, None
    for fold in range(folds):
$release        low, high = fold * fold_size, (fold + 1) * fold_size
        keep = list(range(0, low)) + list(range(high, len(x)))
        model = build_model(keras)
        model.compile(optimizer=make_optimizer(keras), loss=make_loss(keras))
        if initial is None:
            initial = model.get_weights()
        model.set_weights(initial)
$train
        model.evaluate(x[low:high], y[low:high], verbose=0)
        record_leak(lambda: imr_leak_count())
    return round_losses, model
'''


def _imr(loop: str, api: str, release: str, compile_extra: str = "") -> str:
    template = _IMR_EPOCHS if loop == "epochs" else _IMR_FOLDS
    xs, ys = ("x", "y") if loop == "epochs" else ("x[keep]", "y[keep]")
    train = Template(_TRAIN_ROUND[api]).substitute(xs=xs, ys=ys)
    body = Template(template).substitute(
        doc=_RELEASE_DOC[release], imports="    import gc\n\n" if release == "del" else "",
        release=_RELEASE[release], train=train, compile_extra=compile_extra)
    return _COUNTING + _IMR_LEAK + body


for _api in ("fit", "train_on_batch"):
    _stem = "" if _api == "fit" else "_train_on_batch"
    for _release in ("rebuild", "clear", "del"):
        BODIES[f"imr_epochs{_stem}_{_release}"] = _imr("epochs", _api, _release)
        BODIES[f"imr_folds_{_api}_{_release}"] = _imr("folds", _api, _release)

BODIES["imr_epochs_rebuild_xla"] = _imr("epochs", "fit", "rebuild", ", jit_compile=True")

_IMR_ONCE = '''\
def train(keras, tf, x, y, cfg):
    """$doc"""
    model = build_model(keras)
    model.compile(optimizer=make_optimizer(keras), loss=make_loss(keras)$compile_extra)
    round_losses = []
    for _ in range(cfg["rounds"]):
        history = fit_counted(keras, tf, model, x, y, cfg)
        round_losses.append(float(history.history["loss"][-1]))
        record_leak(lambda: imr_leak_count())
    return round_losses, model
'''
BODIES["imr_epochs_once"] = _COUNTING + _IMR_LEAK + Template(_IMR_ONCE).substitute(
    doc="FIX (IMR, another estimand): the model is built and compiled once and fit one epoch "
        "per round.", compile_extra="")
BODIES["imr_epochs_once_xla"] = _COUNTING + _IMR_LEAK + Template(_IMR_ONCE).substitute(
    doc="FIX (IMR, XLA): the model is built and compiled once with jit_compile=True (compiled "
        "by XLA once)\n    and fit one epoch per round.", compile_extra=", jit_compile=True")

# --------------------------------------------------------------------------- UTR

_UTR_SETUP = '''\
    model = build_model(keras)
    optimizer = make_optimizer(keras)
    loss_fn = make_loss(keras)
    metric = keras.metrics.Mean()

    @tf.function
    def train_step(xb, yb):
        with tf.GradientTape() as tape:
            logits = model(xb, training=True)
            loss = loss_fn(yb, logits)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss, logits, grads

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(cfg["batch_size"])
'''

_UTR_BODY = '''\
def train(keras, tf, x, y, cfg):
    """$doc"""
''' + _UTR_SETUP + '''\
    kept = $container
    round_losses = []
    step = 0
    for _ in range(cfg["rounds"]):
        step_losses = []
        for xb, yb in dataset:
            loss, logits, grads = train_step(xb, yb)
$store
            step_losses.append(float(loss))
            step += 1
            WORK["train_steps"] += 1
            WORK["examples_seen"] += int(xb.shape[0])
        round_losses.append(sum(step_losses) / len(step_losses))
        record_leak(lambda: tensor_bytes(kept))
    WORK["optimizer_updates"] += optimizer_updates(keras, tf, optimizer)
    return round_losses, model
'''

#: UTR variant -> (what the smelly loop stores, the store statement, its container).
_UTR_STORES = {
    "append-loss": ("each step's loss tensor", "kept.append(loss)", "[]"),
    "append-output": ("each step's model output on the batch (an inference call)",
                      "kept.append(model(xb, training=False))", "[]"),
    "append-gradients": ("each step's gradient tensors", "kept.append(grads)", "[]"),
    "append-metric": ("each step's running-mean metric result tensor",
                      "metric.update_state(loss)\n            kept.append(metric.result())", "[]"),
    "append-tensor": ("each step's input batch tensor", "kept.append(xb)", "[]"),
    "dict-store": ("each step's loss tensor in a dict keyed by the step", "kept[step] = loss",
                   "{}"),
}
#: The rule's autofix of each store (tests/test_repros_autofix.py checks it against the rule).
_UTR_FIXED = {
    "append-loss": "kept.append(loss.numpy())",
    "append-output": "kept.append(model(xb, training=False).numpy())",
    "append-gradients": "kept.append([_g.numpy() for _g in grads])",
    "append-metric": "metric.update_state(loss)\n            kept.append(float(metric.result()))",
    "append-tensor": "kept.append(xb.numpy())",
    "dict-store": "kept[step] = loss.numpy()",
}


def _utr(variant: str, fixed: bool) -> str:
    what, store, container = _UTR_STORES[variant]
    doc = (f"FIX (UTR {variant}): the rule's autofix, the stored value converted to Python/NumPy"
           if fixed else f"SMELL (UTR {variant}): a GradientTape loop keeps {what} for the "
                         "whole run")
    return _COUNTING + Template(_UTR_BODY).substitute(
        doc=doc, container=container,
        store="            " + (_UTR_FIXED[variant] if fixed else store))


for _variant in _UTR_STORES:
    _key = _variant.replace("-", "_")
    BODIES[f"utr_{_key}_keep"] = _utr(_variant, False)
    BODIES[f"utr_{_key}_fixed"] = _utr(_variant, True)

BODIES["utr_tape_keep"] = _COUNTING + '''\
def train(keras, tf, x, y, cfg):
    """SMELL (UTR): a GradientTape loop that keeps every step's loss and logits tensors for the
    whole run, and every step's gradient tensors for the whole round (epoch), in Python lists."""
''' + _UTR_SETUP + '''\
    all_losses, all_logits, round_losses = [], [], []
    for _ in range(cfg["rounds"]):
        round_grads = []
        first = len(all_losses)
        for xb, yb in dataset:
            loss, logits, grads = train_step(xb, yb)
            all_losses.append(loss)
            all_logits.append(logits)
            round_grads.append(grads)
            WORK["train_steps"] += 1
            WORK["examples_seen"] += int(xb.shape[0])
        round_losses.append(tf.reduce_mean(tf.stack(all_losses[first:])))
        record_leak(lambda: tensor_bytes([all_losses, all_logits, round_grads]))
    WORK["optimizer_updates"] += optimizer_updates(keras, tf, optimizer)
    return [float(v) for v in round_losses], model
'''

BODIES["utr_tape_float"] = _COUNTING + '''\
def train(keras, tf, x, y, cfg):
    """FIX (UTR): the same GradientTape loop, keeping only Python floats (float(loss)); logits
    and gradients are not kept past the step."""
''' + _UTR_SETUP + '''\
    round_losses = []
    for _ in range(cfg["rounds"]):
        step_losses = []
        for xb, yb in dataset:
            loss, logits, grads = train_step(xb, yb)
            step_losses.append(float(loss))
            WORK["train_steps"] += 1
            WORK["examples_seen"] += int(xb.shape[0])
        round_losses.append(sum(step_losses) / len(step_losses))
        record_leak(lambda: tensor_bytes(step_losses))
    WORK["optimizer_updates"] += optimizer_updates(keras, tf, optimizer)
    return round_losses, model
'''

# --------------------------------------------------------------------------- DIR

_DIR_HELPERS = '''\
def count_datasets(tf):
    """Count every tf.data dataset constructed from now on in WORK["datasets_built"]
    (control runs only: a measured run's tf.data is left untouched)."""
    if not INSTRUMENTED:
        return
    control_call()
    base = tf.data.Dataset
    original = base.__init__

    def counted(self, *args, **kwargs):
        WORK["datasets_built"] += 1
        original(self, *args, **kwargs)

    base.__init__ = counted


def dir_leak_count():
    """DIR's positive control: datasets constructed so far (ops in the graph in graph mode)."""
    return graph_op_count() if FRAMEWORK == "keras2-graph" else WORK["datasets_built"]


def mean_loss(logits, labels):
    """Mean sparse cross-entropy of logits (NumPy), the round's figure for the equivalence."""
    import numpy as np

    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean())


'''

_DIR_PREDICT = '''\
def train(keras, tf, x, y, cfg):
    """$doc"""
    import numpy as np

    count_datasets(tf)
    model = build_model(keras)
    n = cfg["batch_size"]
    round_losses = []
    for r in range(cfg["rounds"]):
        start = (r * n) % (len(x) - n + 1)
$predict
        round_losses.append(mean_loss(logits, y[start:start + n]))
        record_leak(lambda: dir_leak_count())
    return round_losses, model
'''
_PER_SAMPLE = '''\
        rows = []
        for sample in x[start:start + n]:
            rows.append($call)
            WORK["predict_calls"] += 1
            WORK["examples_predicted"] += 1
        logits = np.concatenate(rows)'''
_DIR_PREDICTS = {
    "predict": ("SMELL (DIR): model.predict called once per sample in a loop; every call builds "
                "a new\n    data adapter, tf.data pipeline and iterator",
                Template(_PER_SAMPLE).substitute(call="model.predict(sample[None], verbose=0)")),
    "on_batch": ("FIX (DIR): the rule's autofix, model.predict_on_batch per sample (no "
                 "pipeline per call)",
                 Template(_PER_SAMPLE).substitute(call="model.predict_on_batch(sample[None])")),
    "call": ("FIX (DIR, another estimand): the model called directly per sample, "
             "model(x, training=False)",
             Template(_PER_SAMPLE).substitute(
                 call="np.asarray(model(sample[None], training=False))")),
}
for _name, (_doc, _predict) in _DIR_PREDICTS.items():
    BODIES[f"dir_predict_{_name}"] = _DIR_HELPERS + Template(_DIR_PREDICT).substitute(
        doc=_doc, predict=_predict)
BODIES["dir_predict_batched"] = _DIR_HELPERS + '''\
def train(keras, tf, x, y, cfg):
    """FIX (DIR, another estimand): one batched model.predict call over every round's samples,
    before the loop; each round scores its slice."""
    import numpy as np

    count_datasets(tf)
    model = build_model(keras)
    n = cfg["batch_size"]
    starts = [(r * n) % (len(x) - n + 1) for r in range(cfg["rounds"])]
    index = np.concatenate([np.arange(start, start + n) for start in starts])
    all_logits = model.predict(x[index], verbose=0)
    WORK["predict_calls"] += 1
    WORK["examples_predicted"] += len(index)
    round_losses = []
    for r, start in enumerate(starts):
        logits = all_logits[r * n:(r + 1) * n]
        round_losses.append(mean_loss(logits, y[start:start + n]))
        record_leak(lambda: dir_leak_count())
    return round_losses, model
'''

_DIR_DATASET = '''\
def train(keras, tf, x, y, cfg):
    """$doc"""
    count_datasets(tf)
    model = build_model(keras)
    model.compile(optimizer=make_optimizer(keras), loss=make_loss(keras))
$before    round_losses = []
    for _ in range(cfg["rounds"]):
$inside        history = fit_counted(keras, tf, model, dataset, None, cfg)
        round_losses.append(float(history.history["loss"][-1]))
        record_leak(lambda: dir_leak_count())
    return round_losses, model
'''
_DATASET = 'dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(cfg["batch_size"])\n'
BODIES["dir_dataset_loop"] = _COUNTING + _DIR_HELPERS + Template(_DIR_DATASET).substitute(
    doc="SMELL (DIR): the tf.data pipeline is built again on every round (epoch) in the loop",
    before="", inside="        " + _DATASET)
BODIES["dir_dataset_once"] = _COUNTING + _DIR_HELPERS + Template(_DIR_DATASET).substitute(
    doc="FIX (DIR): the tf.data pipeline is built once before the loop",
    before="    " + _DATASET, inside="")

# --------------------------------------------------------------------------- US

#: the model a session body returns (program source; the US and catalogue session bodies share it)
SESSION_MODEL = '''\
class SessionModel:
    """The weights read out of the last session (what the result's weights summary reads)."""

    def __init__(self, weights):
        self.weights = weights

    def get_weights(self):
        return self.weights


'''

_US_HELPERS = SESSION_MODEL + '''\
def track_sessions(tf):
    """A WeakSet that every tf.compat.v1 session constructed from now on is added to (control
    runs only: a measured run's sessions are left untouched, and the set stays empty)."""
    import weakref

    sessions = weakref.WeakSet()
    if not INSTRUMENTED:
        return sessions
    control_call()
    cls = tf.compat.v1.Session
    original = cls.__init__

    def tracked(self, *args, **kwargs):
        original(self, *args, **kwargs)
        sessions.add(self)

    cls.__init__ = tracked
    return sessions


def open_sessions(sessions):
    """US's positive control: the tracked sessions not closed yet (``_closed``: TF's own flag)."""
    control_call()
    return sum(1 for session in list(sessions) if not session._closed)


def softmax_graph(tf):
    """A TF1-style graph: softmax regression on the flattened images, trained by plain SGD."""
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        xs = tf1.placeholder(tf.float32, (None, *INPUT_SHAPE))
        ys = tf1.placeholder(tf.int64, (None,))
        flat = tf.reshape(xs, (-1, INPUT_SHAPE[0] * INPUT_SHAPE[1] * INPUT_SHAPE[2]))
        w = tf1.get_variable("w", (flat.shape[1], NUM_CLASSES),
                             initializer=tf1.glorot_uniform_initializer(seed=SEED))
        b = tf1.get_variable("b", (NUM_CLASSES,), initializer=tf1.zeros_initializer())
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=ys, logits=tf.matmul(flat, w) + b))
        step = tf1.train.GradientDescentOptimizer(LEARNING_RATE).minimize(loss)
        init = tf1.global_variables_initializer()
    return graph, xs, ys, loss, step, init, [w, b]


'''

_US_BODY = '''\
def train(keras, tf, x, y, cfg):
    """$doc"""
    tf1 = tf.compat.v1
    graph, xs, ys, loss, step, init, variables = softmax_graph(tf)
    sessions = track_sessions(tf)

    def run_fold(keep):
$session

    folds = cfg["rounds"]
    fold_size = len(x) // folds
    round_losses, weights = [], None
    for fold in range(folds):
        low, high = fold * fold_size, (fold + 1) * fold_size
        fold_loss, weights = run_fold(list(range(0, low)) + list(range(high, len(x))))
        round_losses.append(fold_loss)
        record_leak(lambda: open_sessions(sessions))
    return round_losses, SessionModel(weights)
'''
_US_ROUND = '''\
sess.run(init)
losses = []
for xb, yb in batches(x[keep], y[keep], cfg["batch_size"]):
    value, _ = sess.run([loss, step], feed_dict={xs: xb, ys: yb})
    losses.append(float(value))
    WORK["train_steps"] += 1
    WORK["optimizer_updates"] += 1
    WORK["examples_seen"] += len(xb)
return sum(losses) / len(losses), sess.run(variables)
'''


def indent_lines(text: str, spaces: int) -> str:
    """``text`` with every non-blank line indented by ``spaces`` (program source assembly)."""
    return "".join(" " * spaces + line if line.strip() else line
                   for line in text.splitlines(keepends=True))


def _indent(text: str, spaces: int) -> str:
    return indent_lines(text, spaces).rstrip("\n")


BODIES["us_session_no_close"] = _US_HELPERS + Template(_US_BODY).substitute(
    doc="SMELL (US): each fold trains in a tf.compat.v1 session that is never closed",
    session=_indent("sess = tf1.Session(graph=graph)\n" + _US_ROUND, 8))
BODIES["us_session_with"] = _US_HELPERS + Template(_US_BODY).substitute(
    doc="FIX (US): the rule's autofix, each fold's session in a `with` block (closed at its end)",
    session=_indent("with tf1.Session(graph=graph) as sess:\n" + _indent(_US_ROUND, 4), 8))
