"""Training bodies and families of the catalogue's graph smells (issue 14): UGE and GCB.

Each body follows the contract of :mod:`leakwatt.pipeline.repros.bodies` (a ``train`` function,
``record_leak`` once per round with the family's positive control, work counted in ``WORK``).
Importing this module registers its bodies in ``bodies.BODIES`` and its leak evidence in
``bodies.LEAK_EVIDENCE``; :mod:`leakwatt.pipeline.repros.pairs` turns :data:`FAMILY_SPECS` into
families and merges :data:`VARIANT_FAMILIES` into its rule-variant mapping.

Five families:

* ``uge-graph-op-in-loop`` (keras2-graph): a TF1 graph whose step loop builds the op that logs
  the batch's loss again before every ``sess.run`` vs the op built once and the graph
  finalized; control: operations in the graph.
* ``uge-retrace-python-arg`` (eager): a ``@tf.function`` step called with the step counter as a
  Python int (one trace per value) vs the counter wrapped in ``tf.constant`` (the rule's
  autofix); control: the function's trace count.
* ``uge-function-per-step`` (eager): ``tf.function(step_fn)`` created before every step vs once;
  control: traces of the step function.
* ``gcb-graph-constant`` (keras2-graph): k-fold TF1 training whose fold data enters each fold's
  graph as ``tf.constant`` vs a variable initialised from a fed placeholder (TF1's own remedy);
  control: bytes of data embedded in graph constants so far.
* ``gcb-function-closure`` (eager): k-fold training whose per-fold ``@tf.function`` turns the
  fold's NumPy arrays, read from its closure, into constants vs takes them as tensor arguments;
  control: bytes of data embedded in the traced graphs so far.

The GCB bodies read their arrays back with ``np.load`` from ``.npy`` files they write to a
temporary directory (both variants alike): the rule reports an array with a data origin it can
see, and a generated program's data is a parameter of ``train``.
"""

from __future__ import annotations

from string import Template
from typing import Any

from leakwatt.pipeline.repros import bodies

#: body name -> source (registered in bodies.BODIES below)
BODIES: dict[str, str] = {}
#: body prefix -> what record_leak counts (the longest registered prefix of a body's name wins)
LEAK_EVIDENCE: dict[str, str] = {
    "uge_graph": "UGE (graph): after every round, the number of operations in the tf.compat.v1 "
                 "graph the loop trains in (a loop that builds operations before every "
                 "sess.run adds them to the graph, which never shrinks)",
    "uge_retrace": "UGE (retracing): after every round, the trace count of the step's "
                   "tf.function (experimental_get_tracing_count(): one concrete graph per "
                   "distinct Python value of an argument)",
    "uge_function": "UGE (function per step): after every round, the number of times the step's "
                    "Python function has been traced so far (counted by the function itself "
                    "while tracing; a new tf.function traces again)",
    "gcb_graph": "GCB (graph): after every fold, the bytes of data embedded in graph constants "
                 "so far: the sum over the folds' graphs of the Const nodes of at least 1 KiB "
                 "(data; the shape and hyperparameter constants every graph has are a few bytes)",
    "gcb_function": "GCB (tf.function): after every fold, the bytes of data embedded in the "
                    "traced graphs so far: the sum over the folds' traces of the Const nodes of "
                    "at least 1 KiB (data; shape constants are a few bytes)",
}

# --------------------------------------------------------------------------- shared helpers

_SESSION_MODEL = bodies.SESSION_MODEL

_SOFTMAX = _SESSION_MODEL + '''\
FLAT_FEATURES = INPUT_SHAPE[0] * INPUT_SHAPE[1] * INPUT_SHAPE[2]


def softmax_variables(tf):
    """Weights and biases of a softmax regression on the flattened images (default graph)."""
    tf1 = tf.compat.v1
    w = tf1.get_variable("w", (FLAT_FEATURES, NUM_CLASSES),
                         initializer=tf1.glorot_uniform_initializer(seed=SEED))
    b = tf1.get_variable("b", (NUM_CLASSES,), initializer=tf1.zeros_initializer())
    return w, b


'''

_DATA_HELPERS = '''\
#: Const nodes of at least this many bytes hold data (one 32x32x3 float32 image is 12,288 bytes;
#: the shape, axis and hyperparameter constants of every graph are a few bytes).
DATA_CONST_BYTES = 1024


def data_const_bytes(graph):
    """GCB's positive control: bytes of the graph's Const nodes of at least DATA_CONST_BYTES
    (0 without walking the graph in a measured, uninstrumented run)."""
    if not INSTRUMENTED:
        return 0
    control_call()
    total = 0
    for op in graph.get_operations():
        if op.type == "Const":
            out = op.outputs[0]
            size = (out.shape.num_elements() or 0) * out.dtype.size
            if size >= DATA_CONST_BYTES:
                total += size
    return total


def save_arrays(np, folder, x, y):
    """Write the training arrays as .npy files (read back with np.load, as TF1-era scripts
    read their data); the two paths."""
    x_path, y_path = os.path.join(folder, "x_train.npy"), os.path.join(folder, "y_train.npy")
    np.save(x_path, x)
    np.save(y_path, y)
    return x_path, y_path


'''

_READ_ARRAYS = '''\
    import tempfile

    import numpy as np

    with tempfile.TemporaryDirectory(prefix="leakwatt-data-") as folder:
        x_path, y_path = save_arrays(np, folder, x, y)
        x_train = np.load(x_path)
        y_train = np.load(y_path)
'''


# --------------------------------------------------------------------------- UGE, TF1 graph

_UGE_GRAPH = '''\
def train(keras, tf, x, y, cfg):
    """$doc"""
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        xs = tf1.placeholder(tf.float32, (None, *INPUT_SHAPE))
        ys = tf1.placeholder(tf.int64, (None,))
        w, b = softmax_variables(tf)
        logits = tf.matmul(tf.reshape(xs, (-1, FLAT_FEATURES)), w) + b
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ys, logits=logits))
        step = tf1.train.GradientDescentOptimizer(LEARNING_RATE).minimize(loss)
$once        init = tf1.global_variables_initializer()
$finalize
    round_losses = []
    with graph.as_default(), tf1.Session(graph=graph) as sess:
        sess.run(init)
        for _ in range(cfg["rounds"]):
            losses = []
            for xb, yb in batches(x, y, cfg["batch_size"]):
                feed = {xs: xb, ys: yb}
$per_step                losses.append(float(sess.run(batch_loss, feed_dict=feed)))  # logged before the step
                sess.run(step, feed_dict=feed)
                WORK["train_steps"] += 1
                WORK["optimizer_updates"] += 1
                WORK["examples_seen"] += len(xb)
            round_losses.append(sum(losses) / len(losses))
            record_leak(lambda: len(graph.get_operations()))
        weights = sess.run([w, b])
    return round_losses, SessionModel(weights)
'''
_UGE_OPS = '''\
batch_loss = tf.reduce_mean(
    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ys, logits=logits))
'''
BODIES["uge_graph_ops_in_loop"] = _SOFTMAX + Template(_UGE_GRAPH).substitute(
    doc="SMELL (UGE graph-op-in-loop): the step loop builds the op that logs the batch's loss "
        "again\n    before every sess.run, so the graph grows by a copy of it every step",
    once="", finalize="", per_step=bodies.indent_lines(_UGE_OPS, 16))
BODIES["uge_graph_ops_once"] = _SOFTMAX + Template(_UGE_GRAPH).substitute(
    doc="FIX (UGE): the op that logs the batch's loss is built once before the loop and the "
        "graph is\n    finalized (any new operation would raise)",
    once=bodies.indent_lines(_UGE_OPS, 8), finalize="    graph.finalize()\n", per_step="")

# --------------------------------------------------------------------------- UGE, TF2 retracing

_STEP_HELPERS = bodies._COUNTING  # optimizer_updates(): the optimizer's own update counter

_UGE_RETRACE = '''\
#: inverse-time decay of the learning rate per step: rate = LEARNING_RATE / (1 + DECAY * step)
LR_DECAY = 0.01


def train(keras, tf, x, y, cfg):
    """$doc"""
    model = build_model(keras)
    optimizer = make_optimizer(keras)
    loss_fn = make_loss(keras)

    @tf.function
    def train_step(xb, yb, step):
        scale = 1.0 / (1.0 + LR_DECAY * tf.cast(step, tf.float32))
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip([g * scale for g in grads], model.trainable_variables))
        return loss

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(cfg["batch_size"])
    round_losses, step = [], 0
    for _ in range(cfg["rounds"]):
        losses = []
        for xb, yb in dataset:
            loss = train_step(xb, yb, $step)
            losses.append(float(loss))
            step += 1
            WORK["train_steps"] += 1
            WORK["examples_seen"] += int(xb.shape[0])
        round_losses.append(sum(losses) / len(losses))
        record_leak(lambda: train_step.experimental_get_tracing_count())
    WORK["optimizer_updates"] += optimizer_updates(keras, tf, optimizer)
    return round_losses, model
'''
BODIES["uge_retrace_python_arg"] = _STEP_HELPERS + Template(_UGE_RETRACE).substitute(
    doc="SMELL (UGE retrace-python-arg): the tf.function step gets the step counter (its "
        "learning-rate\n    decay) as a Python int, so every step traces a new concrete graph",
    step="step")
BODIES["uge_retrace_tensor_arg"] = _STEP_HELPERS + Template(_UGE_RETRACE).substitute(
    doc="FIX (UGE): the rule's autofix, the step counter passed as tf.constant(step) (one trace)",
    step="tf.constant(step)")

_UGE_FUNCTION = '''\
def train(keras, tf, x, y, cfg):
    """$doc"""
    model = build_model(keras)
    optimizer = make_optimizer(keras)
    loss_fn = make_loss(keras)

    def step_fn(xb, yb):
        WORK["traces"] += 1  # Python code of a tf.function runs while it is traced only
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(cfg["batch_size"])
$once    round_losses = []
    for _ in range(cfg["rounds"]):
        losses = []
        for xb, yb in dataset:
$per_step            loss = train_step(xb, yb)
            losses.append(float(loss))
            WORK["train_steps"] += 1
            WORK["examples_seen"] += int(xb.shape[0])
        round_losses.append(sum(losses) / len(losses))
        record_leak(lambda: WORK["traces"])
    WORK["optimizer_updates"] += optimizer_updates(keras, tf, optimizer)
    return round_losses, model
'''
_MAKE_FUNCTION = "train_step = tf.function(step_fn)\n"
BODIES["uge_function_per_step"] = _STEP_HELPERS + Template(_UGE_FUNCTION).substitute(
    doc="SMELL (UGE function-per-step): tf.function(step_fn) is created again before every "
        "step, so\n    every step traces the step function into a new graph",
    once="", per_step=bodies.indent_lines(_MAKE_FUNCTION, 12))
BODIES["uge_function_once"] = _STEP_HELPERS + Template(_UGE_FUNCTION).substitute(
    doc="FIX (UGE): tf.function(step_fn) is created once before the loop (one trace)",
    once=bodies.indent_lines(_MAKE_FUNCTION, 4), per_step="")

# --------------------------------------------------------------------------- GCB, TF1 graph

_GCB_GRAPH = '''\
def train(keras, tf, x, y, cfg):
    """$doc"""
    tf1 = tf.compat.v1
''' + _READ_ARRAYS + '''\
    n = cfg["batch_size"]

    def run_fold(keep):
        """A fresh graph and session for the fold; (mean loss, weights, data bytes in Consts)."""
        graph = tf.Graph()
        with graph.as_default():
$data
            start = tf1.placeholder(tf.int32, ())
            xb, yb = data_x[start:start + n], data_y[start:start + n]
            w, b = softmax_variables(tf)
            logits = tf.matmul(tf.reshape(xb, (-1, FLAT_FEATURES)), w) + b
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=yb, logits=logits))
            step = tf1.train.GradientDescentOptimizer(LEARNING_RATE).minimize(loss)
            init = tf1.global_variables_initializer()
        with tf1.Session(graph=graph) as sess:
            sess.run(init)
$load            losses = []
            for low in range(0, len(keep), n):
                value, _ = sess.run([loss, step], feed_dict={start: low})
                losses.append(float(value))
                WORK["train_steps"] += 1
                WORK["optimizer_updates"] += 1
                WORK["examples_seen"] += min(n, len(keep) - low)
            return sum(losses) / len(losses), sess.run([w, b]), data_const_bytes(graph)

    folds = cfg["rounds"]
    fold_size = len(x_train) // folds
    round_losses, weights, embedded = [], None, 0
    for fold in range(folds):
        low, high = fold * fold_size, (fold + 1) * fold_size
        fold_loss, weights, fold_bytes = run_fold(
            list(range(0, low)) + list(range(high, len(x_train))))
        round_losses.append(fold_loss)
        embedded += fold_bytes
        record_leak(lambda: embedded)
    return round_losses, SessionModel(weights)
'''
BODIES["gcb_graph_constant"] = _SOFTMAX + _DATA_HELPERS + Template(_GCB_GRAPH).substitute(
    doc="SMELL (GCB graph-constant): each fold's training arrays enter its TF1 graph as "
        "tf.constant\n    (copied into the GraphDef), the step slices its batch out of them",
    data=bodies.indent_lines("data_x = tf.constant(x_train[keep])\n"
                 "data_y = tf.constant(y_train[keep])", 12), load="")
BODIES["gcb_graph_variable"] = _SOFTMAX + _DATA_HELPERS + Template(_GCB_GRAPH).substitute(
    doc="FIX (GCB): each fold's arrays are fed once through placeholders into non-trainable "
        "variables\n    (TF1's remedy: no copy in the GraphDef); the step slices its batch out of "
        "them",
    data=bodies.indent_lines("x_in = tf1.placeholder(tf.float32, (len(keep), *INPUT_SHAPE))\n"
                 "y_in = tf1.placeholder(tf.int64, (len(keep),))\n"
                 "data_x = tf1.Variable(x_in, trainable=False, collections=[])\n"
                 "data_y = tf1.Variable(y_in, trainable=False, collections=[])", 12),
    load=bodies.indent_lines("sess.run([data_x.initializer, data_y.initializer],\n"
                 "         feed_dict={x_in: x_train[keep], y_in: y_train[keep]})\n", 12))

# --------------------------------------------------------------------------- GCB, tf.function

_GCB_FUNCTION = '''\
def train(keras, tf, x, y, cfg):
    """$doc"""
''' + _READ_ARRAYS + '''\
    model = build_model(keras)
    optimizer = make_optimizer(keras)
    loss_fn = make_loss(keras)
    initial = model.get_weights()
    n = cfg["batch_size"]
    traced = []

    def apply_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    def run_fold(keep):
        """The fold's training from the initial weights; (mean loss, data bytes in Consts)."""
        model.set_weights(initial)
$data
        @tf.function
        def train_step($params):
            traced.append(tf.compat.v1.get_default_graph())  # while tracing: this trace's graph
$slices
            return apply_step(xb, yb)

        losses = []
        for low in range(0, len(keep), n):
            loss = train_step($args)
            losses.append(float(loss))
            WORK["train_steps"] += 1
            WORK["examples_seen"] += min(n, len(keep) - low)
        return sum(losses) / len(losses), sum(data_const_bytes(g) for g in traced)

    folds = cfg["rounds"]
    fold_size = len(x_train) // folds
    round_losses, embedded = [], 0
    for fold in range(folds):
        low, high = fold * fold_size, (fold + 1) * fold_size
        fold_loss, fold_bytes = run_fold(list(range(0, low)) + list(range(high, len(x_train))))
        traced.clear()
        round_losses.append(fold_loss)
        embedded += fold_bytes
        record_leak(lambda: embedded)
    WORK["optimizer_updates"] += optimizer_updates(keras, tf, optimizer)
    return round_losses, model
'''
BODIES["gcb_function_closure"] = _STEP_HELPERS + _DATA_HELPERS + Template(
    _GCB_FUNCTION).substitute(
    doc="SMELL (GCB function-constant / closure): each fold's tf.function reads the fold's "
        "NumPy arrays\n    from its closure and turns them into tensors with tf.constant, so its "
        "trace embeds them as\n    constants; the step slices its batch out of them",
    data=bodies.indent_lines("x_fold = x_train[keep]\ny_fold = y_train[keep]\n", 8), params="low",
    slices=bodies.indent_lines("xb = tf.constant(x_fold)[low:low + n]\n"
                   "yb = tf.constant(y_fold)[low:low + n]", 12),
    args="tf.constant(low)")
BODIES["gcb_function_argument"] = _STEP_HELPERS + _DATA_HELPERS + Template(
    _GCB_FUNCTION).substitute(
    doc="FIX (GCB): each fold's arrays are converted to tensors eagerly and passed to the "
        "tf.function\n    as arguments (no copy in its graph); the step slices its batch out of "
        "them",
    data=bodies.indent_lines("x_fold = tf.convert_to_tensor(x_train[keep])\n"
                 "y_fold = tf.convert_to_tensor(y_train[keep])\n", 8), params="xs, ys, low",
    slices=bodies.indent_lines("xb = xs[low:low + n]\nyb = ys[low:low + n]", 12),
    args="x_fold, y_fold, tf.constant(low)")

# --------------------------------------------------------------------------- families

#: The TF1 workload of the graph families (no Keras model).
SOFTMAX_PARAMS = 30730
_GRAPH_ONE = ("softmax regression on the flattened 32x32x3 images (3072 x 10 weights + 10 "
              "biases, 30,730 parameters) built as a tf.compat.v1 graph, plain SGD "
              "(GradientDescentOptimizer, learning rate 0.05), one session for the run")
_GRAPH_FOLDS = ("softmax regression on the flattened 32x32x3 images (3072 x 10 weights + 10 "
                "biases, 30,730 parameters) built as a tf.compat.v1 graph, plain SGD "
                "(GradientDescentOptimizer, learning rate 0.05), k-fold: a fresh graph and "
                "session per fold (rounds = folds), each from the same seeded initial weights")
_GRAPH_LEVEL = ("keras2-graph",)
_EAGER = ("keras3", "keras2")
_NO_UGE_FIX = ("no: the UGE rule offers an autofix only for a retraced Python number; {what} "
               "changes the program's structure")
_NO_GCB_FIX = ("no: the GCB rule has no autofix (feeding the data or passing it as an argument "
               "changes the program's structure)")

FAMILY_SPECS: tuple[dict[str, Any], ...] = (
    {"family": "uge-graph-op-in-loop", "smell": "UGE",
     "smelly_body": "uge_graph_ops_in_loop", "clean_body": "uge_graph_ops_once",
     "estimand": "uge-graph-ops-per-step-vs-once",
     "summary": "TF1 graph training whose step loop builds the op that logs the batch's loss "
                "again before every sess.run vs the op built once before the loop and the graph "
                "finalized",
     "what_differs": "clean.py builds the batch-loss op once before the loop and calls "
                     "graph.finalize(); smelly.py builds it inside the step loop (same values "
                     "and updates, a graph that grows by it every step). Both run the logged "
                     "loss and the training step as two sess.run calls per step",
     "autofix": _NO_UGE_FIX.format(what="moving operations out of the loop"),
     "frameworks": _GRAPH_LEVEL, "architecture": _GRAPH_ONE, "n_params": SOFTMAX_PARAMS},
    {"family": "uge-retrace-python-arg", "smell": "UGE",
     "smelly_body": "uge_retrace_python_arg", "clean_body": "uge_retrace_tensor_arg",
     "estimand": "uge-retrace-python-arg-vs-tensor",
     "summary": "@tf.function training step called with the step counter (its learning-rate "
                "decay) as a Python int, one trace per step, vs the counter as a tensor",
     "what_differs": "clean.py passes tf.constant(step) instead of step (the rule's autofix); "
                     "nothing else differs",
     "autofix": "yes: the UGE autofix wraps the changing Python number in tf.constant(...)",
     "frameworks": _EAGER},
    {"family": "uge-function-per-step", "smell": "UGE",
     "smelly_body": "uge_function_per_step", "clean_body": "uge_function_once",
     "estimand": "uge-function-per-step-vs-once",
     "summary": "tf.function(step_fn) created before every training step (a trace per step) "
                "vs created once before the loop",
     "what_differs": "clean.py creates train_step = tf.function(step_fn) once before the loop; "
                     "smelly.py creates it inside the step loop",
     "autofix": _NO_UGE_FIX.format(what="hoisting tf.function(...) out of the loop"),
     "frameworks": _EAGER},
    {"family": "gcb-graph-constant", "smell": "GCB",
     "smelly_body": "gcb_graph_constant", "clean_body": "gcb_graph_variable",
     "estimand": "gcb-graph-constant-vs-fed-variable",
     "summary": "k-fold TF1 graph training whose fold arrays (read with np.load) enter each "
                "fold's graph as tf.constant vs fed once through placeholders into "
                "non-trainable variables",
     "what_differs": "clean.py creates each fold's data tensors as variables initialised from "
                     "placeholders and runs their initializers with the arrays fed; smelly.py "
                     "creates them with tf.constant. The training graph that slices batches "
                     "out of them is the same",
     "autofix": _NO_GCB_FIX, "frameworks": _GRAPH_LEVEL, "architecture": _GRAPH_FOLDS,
     "n_params": SOFTMAX_PARAMS},
    {"family": "gcb-function-closure", "smell": "GCB",
     "smelly_body": "gcb_function_closure", "clean_body": "gcb_function_argument",
     "estimand": "gcb-function-constant-vs-argument",
     "summary": "k-fold training whose per-fold @tf.function turns the fold's NumPy arrays "
                "(read with np.load), taken from its closure, into tf.constant tensors (one "
                "embedded copy per trace) vs takes them as tensor arguments",
     "what_differs": "clean.py converts each fold's arrays to tensors eagerly and passes them "
                     "to the tf.function as arguments; smelly.py calls tf.constant on the "
                     "closed-over arrays inside it. The rule reports a closure over a "
                     "module-level array as function-closure; a generated body's arrays are "
                     "local, so the smelly program takes the function-constant form, which "
                     "embeds the same Const",
     "autofix": _NO_GCB_FIX, "frameworks": _EAGER},
)

#: (rule, variant) -> the families that reproduce it
VARIANT_FAMILIES: dict[tuple[str, str], tuple[str, ...]] = {
    ("UGE", "graph-op-in-loop"): ("uge-graph-op-in-loop",),
    ("UGE", "graph-op-in-called-fn"): ("uge-graph-op-in-loop",),
    ("UGE", "retrace-python-arg"): ("uge-retrace-python-arg",),
    ("UGE", "function-per-step"): ("uge-function-per-step",),
    ("GCB", "graph-constant"): ("gcb-graph-constant",),
    ("GCB", "function-constant"): ("gcb-function-closure",),
    ("GCB", "function-closure"): ("gcb-function-closure",),
}

bodies.BODIES.update(BODIES)
bodies.LEAK_EVIDENCE.update(LEAK_EVIDENCE)
