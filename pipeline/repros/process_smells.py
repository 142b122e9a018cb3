"""Training bodies and families of the catalogue's process smells (issue 14): UP and US
session-in-loop.

Each body follows the contract of :mod:`leakwatt.pipeline.repros.bodies` (a ``train`` function,
``record_leak`` once per round with the family's positive control, work counted in ``WORK``).
Importing this module registers its bodies in ``bodies.BODIES`` and its leak evidence in
``bodies.LEAK_EVIDENCE``; :mod:`leakwatt.pipeline.repros.pairs` turns :data:`FAMILY_SPECS` into
families and merges :data:`VARIANT_FAMILIES` into its rule-variant mapping.

* **UP** (``up-search-n-jobs``): a scikit-learn ``GridSearchCV`` over a small Keras classifier
  with ``n_jobs=-1`` vs ``n_jobs=1`` (the rule's autofix). The programs need scikit-learn (and
  its joblib); the estimator is the program's own scikit-learn wrapper around a Keras model,
  seeded inside ``fit`` so that a fit gives the same model in any process. A worker process's
  ``WORK`` is not the program's, so every fit counts its own work and the search's scorers bring
  the counts (and the pid that did the fit) back through ``cv_results_``.
* **US session-in-loop** (``us-session-in-loop``, ``us-session-in-loop-kept``): a
  ``tf.compat.v1`` session created on every fold of the loop (closed at the end of the fold, or
  kept in a list) vs one session created before the loop and reused. The initial weights come
  from a seeded NumPy draw (a constant initializer), so running the initializer again in the
  same session restarts every fold from the same point, exactly like a fresh session does.
"""

from __future__ import annotations

from string import Template
from typing import Any

from leakwatt.pipeline.repros import bodies

#: body name -> source (registered in bodies.BODIES below)
BODIES: dict[str, str] = {}
#: body prefix -> what record_leak counts
LEAK_EVIDENCE: dict[str, str] = {
    "up": "UP: after every round (one configuration of the hyperparameter search, in the "
          "search's order), the number of the search's cross-validation fits so far that ran "
          "in a worker process rather than in the program's own (each worker imports "
          "TensorFlow and builds its models there; every fit reports its pid through the "
          "search's scorers); 0 throughout with n_jobs=1. The result's work also holds the "
          "worker processes used (worker_processes) and their resident memory after the search "
          "(workers_rss_mb); runs.csv has the whole process tree (tree_cpu_s, tree_peak_procs, "
          "peak_rss_mb)",
    "usloop": "US session-in-loop: after every round (fold), the number of tf.compat.v1 "
              "sessions constructed so far (counted by wrapping Session.__init__); each "
              "construction is the cost, whether or not the session is closed afterwards",
    "uskept": "US session-in-loop-kept: after every round (fold), the number of tf.compat.v1 "
              "sessions constructed by the program that are still open (tracked by weak "
              "reference; TF's own _closed flag)",
}

# --------------------------------------------------------------------------- UP

#: The search's workload (meta.json ``architecture``): the rounds are the search's
#: configurations (learning rates), UP_FOLDS folds each.
UP_FOLDS = 2
UP_UNITS = 32
UP_PARAMS = 32 * 32 * 3 * UP_UNITS + UP_UNITS + UP_UNITS * 10 + 10
UP_ARCHITECTURE = (
    f"scikit-learn GridSearchCV over a Keras classifier wrapped by the program itself: Flatten > "
    f"Dense({UP_UNITS}, relu) > Dense(10) logits ({UP_PARAMS:,} parameters; seeded Glorot initializers), "
    f"plain SGD, 1 epoch per fit; one learning rate per round (LEARNING_RATE x (r + 1) / rounds), "
    f"{UP_FOLDS}-fold KFold (no shuffling), scored by mean cross-entropy, refit on all samples")

_UP_HELPERS = '''\
from sklearn.base import BaseEstimator, ClassifierMixin


def build_mlp(keras, units):
    """The search's model: Flatten > Dense(units, relu) > Dense(10) logits, seeded initializers."""
    layers = keras.layers
    seeded = keras.initializers.GlorotUniform
    return keras.Sequential([
        keras.Input(shape=INPUT_SHAPE),
        layers.Flatten(),
        layers.Dense(units, activation="relu", kernel_initializer=seeded(seed=SEED)),
        layers.Dense(NUM_CLASSES, kernel_initializer=seeded(seed=SEED + 1)),
    ])


def cross_entropy(logits, labels):
    """Mean sparse cross-entropy of logits (NumPy)."""
    import numpy as np

    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean())


class KerasMLPClassifier(BaseEstimator, ClassifierMixin):
    """A scikit-learn classifier around a small Keras model (the program's own wrapper).

    fit seeds Keras itself, so a fit gives the same model in any process, and counts its own
    work in ``work_`` (a worker process's WORK is not the program's); ``pid_`` is the process
    that fitted it. In a worker, ``import tensorflow`` gets the program's Keras level: the
    worker inherits TF_USE_LEGACY_KERAS from the program's environment.
    """

    def __init__(self, learning_rate=LEARNING_RATE, units=32, epochs=1, batch_size=32,
                 deterministic=False):
        self.learning_rate = learning_rate
        self.units = units
        self.epochs = epochs
        self.batch_size = batch_size
        self.deterministic = deterministic

    def fit(self, x, y):
        import importlib

        import numpy as np
        import tensorflow as tf

        keras = tf.keras
        keras.utils.set_random_seed(SEED)
        if self.deterministic:
            tf.config.experimental.enable_op_determinism()
        model = build_mlp(keras, self.units)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=self.learning_rate),
                      loss=make_loss(keras))
        steps = []
        counter = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs=None: steps.append(batch))
        model.fit(x, y, batch_size=self.batch_size, epochs=self.epochs, shuffle=False, verbose=0,
                  callbacks=[counter])
        root = keras.__name__.split(".")[0]
        self.model_ = model
        self.classes_ = np.arange(NUM_CLASSES)
        self.pid_ = os.getpid()
        self.keras_major_ = int(str(importlib.import_module(root).__version__).split(".")[0])
        self.work_ = {"train_steps": len(steps),
                      "optimizer_updates": int(model.optimizer.iterations.numpy()),
                      "examples_seen": self.epochs * len(x), "examples_predicted": 0}
        return self

    def logits(self, x):
        import numpy as np

        self.work_["examples_predicted"] += len(x)
        return np.asarray(self.model_.predict(x, batch_size=self.batch_size, verbose=0))

    def predict(self, x):
        return self.logits(x).argmax(axis=1)


def search_scorers():
    """The search's scorers: the negated cross-entropy (``loss``, what the search ranks by;
    first, since it counts the predictions the others read), then what each fit did and where
    (its work counters, its pid and its Keras major version), read back from cv_results_."""

    def loss(estimator, x, y):
        return -cross_entropy(estimator.logits(x), y)

    def reader(key):
        return lambda estimator, x, y: float(estimator.work_[key])

    scorers = {"loss": loss}
    scorers.update({key: reader(key) for key in
                    ("train_steps", "optimizer_updates", "examples_seen", "examples_predicted")})
    scorers["pid"] = lambda estimator, x, y: float(estimator.pid_)
    scorers["keras_major"] = lambda estimator, x, y: float(estimator.keras_major_)
    return scorers


def op_determinism(tf):
    """Whether this program enabled op determinism (--deterministic): the fits do the same.
    (TensorFlow exports only the setter; the getter is its own config module's.)"""
    from tensorflow.python.framework import config

    return bool(config.is_op_determinism_enabled())


def workers_rss_mb(pids):
    """Resident memory of the worker processes still alive, in MB (psutil)."""
    import psutil

    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            pass
    return round(total / 2**20, 1)


'''

_UP_BODY = '''\
def train(keras, tf, x, y, cfg):
    """$doc"""
    from sklearn.model_selection import GridSearchCV, KFold

    rounds = cfg["rounds"]
    rates = [LEARNING_RATE * (r + 1) / rounds for r in range(rounds)]
    clf = KerasMLPClassifier(units=$units, batch_size=cfg["batch_size"],
                             deterministic=op_determinism(tf))
    search = GridSearchCV(clf, {"learning_rate": rates}, scoring=search_scorers(), refit="loss",
                          cv=KFold(n_splits=$folds), error_score="raise", n_jobs=$n_jobs)
    search.fit(x, y)
    results, me = search.cv_results_, os.getpid()
    best = search.best_estimator_  # refit on every sample, in this process
    majors = {int(v) for k in range(search.n_splits_) for v in results[f"split{k}_test_keras_major"]}
    if majors != {best.keras_major_}:
        raise SystemExit(f"the search's fits ran under Keras {sorted(majors)}, the program under "
                         f"Keras {best.keras_major_}")
    round_losses, in_workers, workers = [], 0, set()
    for r in range(rounds):
        round_losses.append(-float(results["mean_test_loss"][r]))
        for k in range(search.n_splits_):
            for key in ("train_steps", "optimizer_updates", "examples_seen", "examples_predicted"):
                WORK[key] += int(results[f"split{k}_test_{key}"][r])
            pid = int(results[f"split{k}_test_pid"][r])
            if pid != me:
                in_workers += 1
                workers.add(pid)
        record_leak(lambda: in_workers)
    for key, value in best.work_.items():
        WORK[key] += value
    WORK["worker_processes"] = len(workers)
    WORK["workers_rss_mb"] = workers_rss_mb(workers)
    return round_losses, best.model_
'''


def _up(n_jobs: str, doc: str) -> str:
    return _UP_HELPERS + Template(_UP_BODY).substitute(doc=doc, n_jobs=n_jobs, units=UP_UNITS,
                                                       folds=UP_FOLDS)


BODIES["up_search_parallel"] = _up(
    "-1", "SMELL (UP): a grid search over a Keras classifier with n_jobs=-1, one worker process "
          "per core,\n    each importing TensorFlow and building its own models")
BODIES["up_search_serial"] = _up(
    "1", "FIX (UP): the rule's autofix, the same grid search with n_jobs=1 (one process)")

# --------------------------------------------------------------------------- US session-in-loop

#: The session-in-loop workload: the US family's softmax regression, initial weights drawn once.
SESSION_ARCHITECTURE = (
    "softmax regression on the flattened 32x32x3 images (3072 x 10 weights + 10 biases, 30,730 "
    "parameters) built once as a tf.compat.v1 graph, plain SGD (learning rate 0.05); initial "
    "weights from a seeded NumPy Glorot draw (a constant initializer), so running the "
    "initializer again restarts a fold exactly as a fresh session does")
SESSION_PARAMS = 30730

_SESSION_HELPERS = bodies.SESSION_MODEL + '''\
def count_sessions(tf):
    """Count every tf.compat.v1 session constructed from now on in WORK["sessions_created"];
    the returned WeakSet holds them (for open_sessions)."""
    import weakref

    sessions = weakref.WeakSet()
    cls = tf.compat.v1.Session
    original = cls.__init__

    def counted(self, *args, **kwargs):
        original(self, *args, **kwargs)
        WORK["sessions_created"] += 1
        sessions.add(self)

    cls.__init__ = counted
    return sessions


def open_sessions(sessions):
    """The counted sessions not closed yet (``_closed``: TF's own flag)."""
    return sum(1 for session in list(sessions) if not session._closed)


def softmax_net(tf):
    """A TF1-style graph: softmax regression on the flattened images, trained by plain SGD.
    The initial weights are a seeded NumPy Glorot draw held by the initializer, so every run of
    ``init`` (in a new session or the same one) starts from the same point."""
    import numpy as np

    tf1 = tf.compat.v1
    features = INPUT_SHAPE[0] * INPUT_SHAPE[1] * INPUT_SHAPE[2]
    limit = (6.0 / (features + NUM_CLASSES)) ** 0.5
    w0 = np.random.default_rng(SEED).uniform(-limit, limit, (features, NUM_CLASSES))
    net = tf.Graph()
    with net.as_default():
        xs = tf1.placeholder(tf.float32, (None, *INPUT_SHAPE))
        ys = tf1.placeholder(tf.int64, (None,))
        flat = tf.reshape(xs, (-1, features))
        w = tf1.get_variable("w", initializer=w0.astype("float32"))
        b = tf1.get_variable("b", initializer=np.zeros(NUM_CLASSES, dtype="float32"))
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=ys, logits=tf.matmul(flat, w) + b))
        step = tf1.train.GradientDescentOptimizer(LEARNING_RATE).minimize(loss)
        init = tf1.global_variables_initializer()
    return net, xs, ys, loss, step, init, [w, b]


'''

_SESSION_BODY = '''\
def train(keras, tf, x, y, cfg):
    """$doc"""
    tf1 = tf.compat.v1
    net, xs, ys, loss, step, init, variables = softmax_net(tf)
    sessions = count_sessions(tf)
    folds = cfg["rounds"]
    fold_size = len(x) // folds
    round_losses, weights = [], None
    with net.as_default():  # the program's one graph is the default graph of every session
$loop
    return round_losses, SessionModel(weights)
'''
_FOLD = '''\
low, high = fold * fold_size, (fold + 1) * fold_size
keep = list(range(0, low)) + list(range(high, len(x)))
'''
_FOLD_TRAIN = '''\
sess.run(init)  # every fold starts from the same initial weights
losses = []
for xb, yb in batches(x[keep], y[keep], cfg["batch_size"]):
    value, _ = sess.run([loss, step], feed_dict={xs: xb, ys: yb})
    losses.append(float(value))
    WORK["train_steps"] += 1
    WORK["optimizer_updates"] += 1
    WORK["examples_seen"] += len(xb)
round_losses.append(sum(losses) / len(losses))
weights = sess.run(variables)
'''


def _session_body(kind: str, count: str) -> str:
    """``kind``: ``per-fold`` (a ``with`` session per fold), ``kept`` (a session per fold,
    appended to a list) or ``once`` (one ``with`` session around the loop)."""
    record = f"record_leak(lambda: {count})\n"
    if kind == "per-fold":
        doc = ("SMELL (US session-in-loop): a tf.compat.v1 session is created for every fold "
               "(closed at the\n    end of the fold by its `with` block)")
        loop = ("for fold in range(folds):\n" + bodies.indent_lines(_FOLD, 4)
                + "    with tf1.Session() as sess:\n" + bodies.indent_lines(_FOLD_TRAIN, 8)
                + "    " + record)
    elif kind == "kept":
        doc = ("SMELL (US session-in-loop-kept): a tf.compat.v1 session is created for every "
               "fold and kept\n    in a list (never closed), so every session stays alive")
        loop = ("kept = []\nfor fold in range(folds):\n" + bodies.indent_lines(_FOLD, 4)
                + "    sess = tf1.Session()\n    kept.append(sess)\n" + bodies.indent_lines(_FOLD_TRAIN, 4)
                + "    " + record)
    else:
        doc = ("FIX (US session-in-loop): one tf.compat.v1 session created before the loop and "
               "reused by\n    every fold (the initializer runs again at the start of each fold)")
        loop = ("with tf1.Session() as sess:\n    for fold in range(folds):\n"
                + bodies.indent_lines(_FOLD, 8) + bodies.indent_lines(_FOLD_TRAIN, 8) + "        " + record)
    return _SESSION_HELPERS + Template(_SESSION_BODY).substitute(
        doc=doc, loop=bodies.indent_lines(loop, 8).rstrip("\n"))


_CREATED = 'WORK["sessions_created"]'
BODIES["usloop_session_per_fold"] = _session_body("per-fold", _CREATED)
BODIES["usloop_session_once"] = _session_body("once", _CREATED)
BODIES["uskept_session_per_fold_kept"] = _session_body("kept", "open_sessions(sessions)")
BODIES["uskept_session_once"] = _session_body("once", "open_sessions(sessions)")

# --------------------------------------------------------------------------- families

#: keyword arguments of pairs.Family, one dict per family
FAMILY_SPECS: tuple[dict[str, Any], ...] = (
    {"family": "up-search-n-jobs", "smell": "UP", "smelly_body": "up_search_parallel",
     "clean_body": "up_search_serial", "estimand": "up-n-jobs-all-vs-one",
     "summary": "scikit-learn grid search (cross-validation) over a Keras classifier with "
                "n_jobs=-1 vs n_jobs=1",
     "what_differs": "clean.py passes n_jobs=1 to GridSearchCV (the rule's autofix); nothing "
                     "else differs. Every fit is seeded inside the estimator, so the search "
                     "finds the same scores in one process as in many. Measure the whole "
                     "process tree: the workers' CPU and memory are not the program process's "
                     "(runs.csv tree_cpu_s, tree_peak_procs; peak_rss_mb is the tree's). On a "
                     "one-core machine n_jobs=-1 is one process and the pair measures nothing",
     "autofix": "yes: the UP autofix sets n_jobs=1",
     "frameworks": ("keras3", "keras2"), "architecture": UP_ARCHITECTURE, "n_params": UP_PARAMS},
    {"family": "us-session-in-loop", "smell": "US", "smelly_body": "usloop_session_per_fold",
     "clean_body": "usloop_session_once", "estimand": "us-session-per-fold-vs-once",
     "summary": "TF1-compat session created (and closed) on every fold vs one session created "
                "before the loop and reused",
     "what_differs": "smelly.py opens a `with tf.compat.v1.Session()` block inside the fold "
                     "loop; clean.py opens one around the loop and runs the initializer again "
                     "at the start of each fold (as a new session does). Same graph, data, "
                     "steps and results",
     "autofix": "no: the US rule offers no autofix for a session in a loop (moving the session "
                "out of the loop needs to know the graph does not change per iteration)",
     "architecture": SESSION_ARCHITECTURE, "n_params": SESSION_PARAMS},
    {"family": "us-session-in-loop-kept", "smell": "US",
     "smelly_body": "uskept_session_per_fold_kept", "clean_body": "uskept_session_once",
     "estimand": "us-session-per-fold-kept-vs-once",
     "summary": "TF1-compat session created on every fold and kept in a list (never closed) vs "
                "one session created before the loop and reused",
     "what_differs": "smelly.py creates `sess = tf.compat.v1.Session()` on every fold and "
                     "appends it to a list, so every session stays open; clean.py opens one "
                     "`with` session around the loop and runs the initializer again at the "
                     "start of each fold. Same graph, data, steps and results",
     "autofix": "no: the US rule offers no autofix for a session in a loop (moving the session "
                "out of the loop needs to know the graph does not change per iteration)",
     "architecture": SESSION_ARCHITECTURE, "n_params": SESSION_PARAMS},
)
#: (rule, variant) -> the families that reproduce it
VARIANT_FAMILIES: dict[tuple[str, str], tuple[str, ...]] = {
    ("UP", "search-n-jobs"): ("up-search-n-jobs",),
    ("UP", "cross-val-n-jobs"): ("up-search-n-jobs",),
    ("US", "session-in-loop"): ("us-session-in-loop",),
    ("US", "session-in-loop-kept"): ("us-session-in-loop-kept",),
}

bodies.BODIES.update(BODIES)
bodies.LEAK_EVIDENCE.update(LEAK_EVIDENCE)
