"""DIR: Dataset-Iterator Retention."""

from __future__ import annotations

import re
from collections.abc import Iterable

import libcst as cst

from leakwatt.mining.rules.api import Invalid, Report, Rule, Seeds, Valid, dedent
from leakwatt.mining.rules.context import ModuleContext
from leakwatt.mining.rules.fixes import replace_expr
from leakwatt.mining.rules.index import CallSite, FuncInfo, Loop
from leakwatt.mining.rules.kit import (
    DIR_STEPS,
    INFERENCE_FUNCS,
    call_bindings,
    call_name,
    called_in_loop,
    called_per_iteration,
    is_param,
    lambda_repeats,
    loop_iter,
    names_read,
    repetition_via,
    step_loop,
)
from leakwatt.mining.rules.names import canonical, dotted
from leakwatt.mining.rules.values import (
    DATASET,
    MODEL,
    UNKNOWN,
    ValueKinds,
    is_dataset_ctor,
    is_model_ctor,
    kinds_for,
)

_MODEL_NAME = re.compile(
    r"(model|net|generator|discriminator|encoder|decoder|actor|critic|autoencoder|cnn|lstm|"
    r"rnn|gan|policy|q_?func|brain)", re.IGNORECASE)
#: Names that stand for one batch or one sample (a state, an observation, a frame).
_BATCH_NAME = re.compile(
    r"(?:^|_)(?:batch|minibatch|mb|sample|state|obs|observation|frame|img|image|window|s|s1|s2|"
    r"xb|x_b|step)(?:$|_|\d)", re.IGNORECASE)
#: Inputs that are generators, datasets or Keras Sequences: predict_on_batch cannot take them.
_GENERATOR_NAME = re.compile(
    r"(?:^|_)(?:gen|generator|generators|ds|dataset|datasets|loader|iterator|flow|sequence|seq|"
    r"pipeline|tfds)(?:$|_|\d)", re.IGNORECASE)
_GENERATOR_CALLS = frozenset({"flow", "flow_from_directory", "flow_from_dataframe",
                              "as_numpy_iterator", "batch", "prefetch", "from_generator"})
_SAMPLE_CALLS = frozenset({"expand_dims"})


_DATASET_WORDS = frozenset({"Dataset", "from_tensor_slices", "from_tensors", "from_generator",
                            "TFRecordDataset", "TextLineDataset", "FixedLengthRecordDataset",
                            "list_files", "choose_from_datasets", "sample_from_datasets"})


class DatasetIteratorRetention(Rule):
    """``model.predict(...)`` called inside a loop, or a ``tf.data.Dataset`` pipeline built
    inside a loop or a per-call inference function.

    Each ``predict`` call wraps its input in a new data adapter, ``tf.data`` pipeline and
    iterator (plus a traced predict function on the first call), and these pile up when
    ``predict`` is called once per sample or step; ``model(x)`` and ``predict_on_batch`` do
    not. The receiver must be a Keras model (followed through assignments, builders and
    ``self.attr``) or, with lower confidence, an untyped name that reads like one (``model``,
    ``actor``, ``self.q_net``). In a script fragment whose imports live in its notebook or
    the script it follows, a name bound to a Keras constructor or loader spelled with a
    ``keras``/``tf`` the file never binds (``model = keras.Sequential([...])``, no import,
    star import or assignment of ``keras``) is taken for a Keras model, and so is a name that
    a fragment importing nothing never binds when the one script beside it binds that name
    at top level to a Keras model (``model = Sequential()`` in ``Model.py``, found by the
    project index); both with confidence 0.7, no autofix, and the reason in the finding's
    ``via``. Scikit-learn estimators are not reported, nor a
    model whose class (in this module or another project module) overrides ``predict``
    without calling a ``predict`` inside (``def predict(self, x): return self(x)`` builds no
    pipeline), also by binding one on the instance (``self.predict = predict`` in
    ``__init__``, ``predict`` a ``tf.function`` over the layers defined there). "Called
    from a loop" follows same-module calls transitively (``run`` loops over ``act``, which
    calls ``self._q(state)``, which predicts), methods called on an instance of a module class
    in a loop (``agent.remember_and_act(s)``), and lambdas run per item (``filter(lambda f:
    model.predict(load(f)) > 0.5, files)``, ``map``, ``.apply``) or bound to a name a loop
    calls. Not reported: one ``predict`` over the same whole data set per outer iteration (per
    epoch, grid point, model or fold: the input is not bound or changed in the loop; in a
    called function, a global, a ``self`` attribute set only by methods that run once
    (``__init__``) or by the framework, or a parameter every same-module caller passes such
    data to), which is batched inference, not one pipeline per sample. Datasets built from
    ``tf.data.Dataset.from_tensor_slices`` and friends inside a loop or inside a function
    called from a loop are reported too. The finding is at the call.

    Remedy and autofix: ``model.predict(x)`` becomes ``model.predict_on_batch(x)``, which
    returns NumPy arrays like ``predict`` and so keeps the calling code's semantics. Neither the
    message nor the fix proposes ``model(x, training=False)``: it avoids the pipeline too (and is
    not reported) but returns a tensor where ``predict`` returns NumPy arrays. It is offered
    only when the receiver is known to be a Keras model, the call passes one positional input and
    at most ``verbose=`` (dropped: ``predict_on_batch`` takes no ``verbose``), and that input is
    one batch: a single sample made explicit (``x[None]``, ``np.expand_dims(x, 0)``,
    ``x.reshape(1, -1)``, ``np.array([x])``); a value bound on each iteration of a per-step
    loop (a ``while`` loop, or a ``for`` over batches, samples, frames, states, steps or a
    dataset) or named like one batch (``state``, ``obs``, ``x_batch``), or an element picked by
    the loop index (``X[i]``); or, in a called or inference function, a parameter named like
    one batch. No fix when ``batch_size=``, ``steps=``, ``callbacks=`` or any other keyword is
    passed, when the input is a generator, ``tf.data`` dataset or Keras ``Sequence``, or when it
    is not known to be one batch (one ``predict_on_batch`` over a whole set could exhaust
    memory). Datasets built in a loop, and calls reached through a lambda, get no autofix.
    """

    CODE = "DIR"
    NAME = "Dataset-Iterator Retention"
    MESSAGE = ("model.predict()/tf.data pipeline created on every iteration; each call builds a "
               "new dataset and iterator. Call model.predict_on_batch(x) for one batch (it "
               "returns NumPy like predict), or build the dataset once outside the loop")
    #: Dataset constructors (``tf.data.Dataset.*``, ``tf.data.experimental.load``) and
    #: ``predict`` on anything.
    SEEDS = Seeds(
        api=_DATASET_WORDS, calls=frozenset({"predict"}),
        module_calls={"data": frozenset({"load", "zip", "range"})},
        defs=frozenset({"predict"}),  # a class's own predict decides whether predict() is DIR
        repeats=_DATASET_WORDS | {"predict", "load", "zip", "range"})
    VARIANTS = {
        "predict-in-loop": "model.predict inside a for/while loop or comprehension",
        "predict-in-called-fn": "model.predict in a function called from a loop",
        "predict-in-inference-fn": "model.predict in a per-call inference method (act, infer)",
        "dataset-in-loop": "a tf.data.Dataset built inside a loop",
        "dataset-in-called-fn": "a tf.data.Dataset built in a function called from a loop",
    }
    VALID = [
        Valid(dedent("""
            import tensorflow as tf
            model = tf.keras.models.load_model("m.keras")
            for x in batches:
                y = model(x, training=False)
                z = model.predict_on_batch(x)
            """)),
        Valid(dedent("""
            import keras
            model = keras.models.load_model("m.keras")
            preds = model.predict(all_x, batch_size=256)
            for p in preds:
                print(p)
            """)),
        Valid(dedent("""
            import tensorflow as tf
            from sklearn.linear_model import LogisticRegression
            clf = LogisticRegression().fit(x, y)
            for row in rows:
                print(clf.predict(row))
            """)),
        Valid(dedent("""
            import tensorflow as tf
            ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
            for epoch in range(10):
                for xb, yb in ds:
                    step(xb, yb)
            """)),
        Valid(dedent("""
            import numpy as np
            from tensorflow import keras
            model = keras.models.load_model("m.keras")
            frames = [preprocess(f) for f in raw_frames]
            probs = model.predict(np.stack(frames), batch_size=64, verbose=0)
            """)),
        Valid(dedent("""
            import keras

            def evaluate(model, x_test):
                return model.predict(x_test, verbose=0)

            net = keras.models.load_model("m.keras")
            print(evaluate(net, x_test))
            """)),
        Valid(dedent("""
            import tensorflow as tf

            class Policy(tf.keras.Model):
                def call(self, x):
                    return self.dense(x)

                def predict(self, x):
                    return self(x, training=False)

            policy = Policy()
            while not done:
                action = policy.predict(obs[None])
            """)),
        Valid(dedent("""
            import tensorflow as tf

            class PolicyEstimator:
                def predict(self, state, sess=None):
                    sess = sess or tf.get_default_session()
                    return sess.run(self.probs, {self.state: state})

            def run_episode(env, estimator_policy):
                state = env.reset()
                while True:
                    probs = estimator_policy.predict(state)
                    state, done = env.step(probs.argmax())
            """)),
        Valid(dedent("""
            import keras
            model = keras.models.load_model("m.keras")
            for lr in [0.1, 0.01]:
                model.optimizer.learning_rate = lr
                model.fit(x_train, y_train, epochs=5)
                val_pred = model.predict(x_val, verbose=0)
                print((val_pred.argmax(-1) == y_val).mean())
            """)),
        Valid(dedent("""
            import keras

            class Report(keras.callbacks.Callback):
                def __init__(self, x_val):
                    super().__init__()
                    self.x_val = x_val

                def on_epoch_end(self, epoch, logs=None):
                    preds = self.model.predict(self.x_val, verbose=0)
                    print(preds.mean())
            """)),
        Valid(dedent("""
            import keras

            def evaluate(model, x_test, y_test):
                probs = model.predict(x_test, verbose=0)
                return (probs.argmax(-1) == y_test).mean()

            for units in [16, 32]:
                net = keras.Sequential([keras.layers.Dense(units)])
                net.fit(x_train, y_train)
                print(evaluate(net, x_test, y_test))
            """)),
    ]
    INVALID = [
        Invalid(dedent("""
            from tensorflow import keras
            model = keras.models.load_model("m.keras")
            for frame in frames:
                label = model.predict(frame[None])
            """), line=4, variant="predict-in-loop", expected_replacement=dedent("""
            from tensorflow import keras
            model = keras.models.load_model("m.keras")
            for frame in frames:
                label = model.predict_on_batch(frame[None])
            """)),
        Invalid(dedent("""
            import keras

            class Agent:
                def __init__(self):
                    self.model = keras.Sequential([keras.layers.Dense(2)])

                def act(self, state):
                    return self.model.predict(state).argmax()
            """), line=8, variant="predict-in-inference-fn", expected_replacement=dedent("""
            import keras

            class Agent:
                def __init__(self):
                    self.model = keras.Sequential([keras.layers.Dense(2)])

                def act(self, state):
                    return self.model.predict_on_batch(state).argmax()
            """)),
        Invalid(dedent("""
            import keras

            class Agent:
                def __init__(self):
                    self.model = keras.Sequential([keras.layers.Dense(2)])

                def get_action(self, state):
                    return self.model.predict(state).argmax()

            agent = Agent()
            while not done:
                action = agent.get_action(state)
            """), line=8, variant="predict-in-called-fn"),
        Invalid(dedent("""
            import tensorflow as tf

            class Model(tf.keras.Model):
                def call(self, inputs):
                    return self.dense(inputs)

                def action_value(self, obs):
                    logits, value = self.predict(obs)
                    return logits, value

            model = Model()
            for episode in range(100):
                obs, done = env.reset(), False
                while not done:
                    action, _ = model.action_value(obs[None, :])
                    obs, reward, done, _ = env.step(action)
            """), line=8, variant="predict-in-called-fn"),
        Invalid(dedent("""
            import tensorflow as tf

            def score(model, x):
                ds = tf.data.Dataset.from_tensor_slices(x).batch(8)
                return model.predict(ds)

            for x in chunks:
                score(net, x)
            """), line=4, variant="dataset-in-called-fn"),
        Invalid(dedent("""
            import tensorflow as tf
            for epoch in range(10):
                ds = tf.data.Dataset.from_tensor_slices(x).shuffle(100).batch(32)
                train(ds)
            """), line=3, variant="dataset-in-loop"),
        Invalid(dedent("""
            import tensorflow as tf
            preds = [net.predict(x) for x in samples]
            """), line=2, variant="predict-in-loop"),
        Invalid(dedent("""
            import numpy as np
            import tensorflow as tf

            q_net = tf.keras.Sequential([tf.keras.layers.Dense(4)])
            obs = env.reset()
            while not done:
                q = q_net.predict(np.expand_dims(obs, 0), verbose=0)
                obs, reward, done = env.step(int(q.argmax()))
            """), line=7, variant="predict-in-loop", expected_replacement=dedent("""
            import numpy as np
            import tensorflow as tf

            q_net = tf.keras.Sequential([tf.keras.layers.Dense(4)])
            obs = env.reset()
            while not done:
                q = q_net.predict_on_batch(np.expand_dims(obs, 0))
                obs, reward, done = env.step(int(q.argmax()))
            """)),
        Invalid(dedent("""
            import keras
            classifier = keras.models.load_model("clf.keras")
            for x_batch, _ in test_ds:
                probs = classifier.predict(
                    x_batch,
                    verbose=0,
                )
                keep(probs.argmax(-1))
            """), line=4, variant="predict-in-loop", expected_replacement=dedent("""
            import keras
            classifier = keras.models.load_model("clf.keras")
            for x_batch, _ in test_ds:
                probs = classifier.predict_on_batch(
                    x_batch,
                )
                keep(probs.argmax(-1))
            """)),
        Invalid(dedent("""
            from keras.models import load_model
            net = load_model("net.h5")
            scores = []
            for i in range(len(x_test)):
                scores.append(net.predict(x_test[i]))
            """), line=5, variant="predict-in-loop", expected_replacement=dedent("""
            from keras.models import load_model
            net = load_model("net.h5")
            scores = []
            for i in range(len(x_test)):
                scores.append(net.predict_on_batch(x_test[i]))
            """)),
        Invalid(dedent("""
            import tensorflow as tf

            class Policy(tf.keras.Model):
                def predict(self, x):
                    return super().predict(x, verbose=0)

            policy = Policy()
            while not done:
                action = policy.predict(obs[None])
            """), line=9, variant="predict-in-loop"),
        Invalid(dedent("""
            import numpy as np
            import keras

            class Agent:
                def __init__(self):
                    self.model = keras.Sequential([keras.layers.Dense(2)])

                def _q(self, s):
                    return self.model.predict(s, verbose=0)

                def act(self, state):
                    return int(np.argmax(self._q(state)))

                def run(self, env):
                    state = env.reset()
                    for t in range(500):
                        state, reward, done = env.step(self.act(state))
            """), line=9, variant="predict-in-called-fn"),
        Invalid(dedent("""
            import numpy as np
            from tensorflow import keras

            model = keras.models.load_model("cats.keras")

            def cats(paths):
                return list(filter(lambda p: model.predict(np.load(p)[None])[0, 0] > 0.5, paths))
            """), line=7, variant="predict-in-loop"),
        Invalid(dedent("""
            import keras

            class Classifier:
                def __init__(self, path):
                    self.net = keras.models.load_model(path)

                def label(self, image):
                    return self.net.predict(image[None], verbose=0).argmax()

            clf = Classifier("m.keras")
            for image in images:
                print(clf.label(image))
            """), line=8, variant="predict-in-called-fn"),
        Invalid(dedent("""
            import numpy as np
            from keras.models import load_model
            model = load_model("lstm.h5")
            x_input = x_test[-1:]
            forecast = []
            for hour in range(24):
                yhat = model.predict(x_input, verbose=0)
                forecast.append(yhat[0, 0])
                x_input = np.append(x_input[:, 1:], yhat[:, None], axis=1)
            """), line=7, variant="predict-in-loop"),
    ]

    def check(self, ctx: ModuleContext) -> Iterable[Report]:
        kinds = kinds_for(ctx)
        direct = ctx.analysis(called_in_loop)
        repeated = ctx.analysis(called_per_iteration)
        lambdas = ctx.analysis(lambda_repeats)
        via_of = ctx.analysis(repetition_via)
        for site in ctx.calls:
            fn = site.func
            in_repeated = id(fn) in repeated or id(fn) in via_of
            via = "" if id(fn) in direct else via_of.get(id(fn), "")
            in_inference = bool(fn.node is not None and INFERENCE_FUNCS.match(fn.name))
            if site.method == "predict" and site.receiver is not None:
                conf = self._model_confidence(ctx, site)
                fragment = ""
                if conf == 0.0:
                    fragment = _fragment_model(ctx, site)
                    if not fragment:
                        continue
                    conf = 0.7  # Keras by the spelling of a name this file never imports
                else:
                    fragment = _model_beside(ctx, site)
                    if fragment:
                        conf = min(conf, 0.7)  # the model of the script beside this one
                if _own_predict(ctx, site):
                    continue  # the class overrides predict (``return self(x)``): no pipeline
                if conf < 0.9 and ctx.analysis(_custom_predict):
                    continue  # an untyped receiver where a class of its own defines predict
                per_item = lambdas.get(id(site.node))
                if site.loops:
                    variant, loop_kind = "predict-in-loop", site.loops[-1].kind
                elif per_item is not None and per_item[2]:
                    # (costed like a comprehension: one predict per item)
                    variant, loop_kind = "predict-in-loop", "comprehension"
                elif per_item is not None or in_repeated:  # (a lambda called per iteration)
                    variant, loop_kind, conf = "predict-in-called-fn", "", conf - 0.1
                elif in_inference:
                    variant, loop_kind, conf = "predict-in-inference-fn", "", conf - 0.2
                else:
                    continue
                data = _input(site.node)
                if data is not None and _fixed_input(
                        ctx, site, data, site.loops[-1] if site.loops else None,
                        per_item[1] if per_item is not None else frozenset()):
                    continue  # one whole data set per epoch or grid point: not per sample
                lambda_only = per_item is not None and not site.loops
                fix = None
                if not lambda_only and not fragment \
                        and kinds.expr_kind(site.receiver, fn, site.seq) == MODEL \
                        and _one_batch(ctx, kinds, site, variant):
                    fix = replace_expr(site.node, _to_predict_on_batch, key="dir-on-batch")
                note = per_item[0] if lambda_only and per_item is not None else (
                    via if variant == "predict-in-called-fn" else "")
                if fragment:
                    note = f"{note}; {fragment}" if note else fragment
                yield Report(node=site.node, variant=variant, confidence=conf,
                             loop_kind=loop_kind, training_api="predict",
                             function=fn.qualname, stmt=site.stmt, fix=fix, via=note)
            elif is_dataset_ctor(site.qn):
                if site.receiver is not None and isinstance(site.receiver, cst.Call) and \
                        is_dataset_ctor(ctx.names.resolve(site.receiver.func)):
                    continue
                loops = [lp for lp in site.loops if lp.kind != "comprehension"]
                if loops:
                    variant, loop_kind, conf = "dataset-in-loop", loops[-1].kind, 0.8
                elif in_repeated or in_inference:
                    variant, loop_kind, conf = "dataset-in-called-fn", "", 0.7
                else:
                    continue
                yield Report(node=site.node, variant=variant, confidence=conf,
                             loop_kind=loop_kind, function=fn.qualname, stmt=site.stmt,
                             via=via if variant == "dataset-in-called-fn" else "")

    @staticmethod
    def _model_confidence(ctx: ModuleContext, site: CallSite) -> float:
        kinds = kinds_for(ctx)
        receiver = site.receiver
        assert receiver is not None
        kind = kinds.expr_kind(receiver, site.func, site.seq)
        if kind == MODEL:
            return 0.9
        if kind != UNKNOWN:
            return 0.0
        # Untyped: a parameter or attribute named like a model, never an imported estimator.
        if isinstance(receiver, cst.Name):
            ev = ctx.last_assign(site.func, receiver.value, site.seq)
            if ev is not None and ev.value is not None:
                return 0.0
            name = receiver.value
        elif isinstance(receiver, cst.Attribute):
            name = receiver.attr.value
            if site.func.class_name and isinstance(receiver.value, cst.Name) and \
                    receiver.value.value == "self":
                cls = ctx.classes.get(site.func.class_name)
                if cls is not None and any(ev.value is not None for ev in
                                           cls.attr_assigns.get(name, [])):
                    return 0.0
        else:
            return 0.0
        return 0.6 if _MODEL_NAME.search(name) else 0.0


#: Conventional spellings of TensorFlow and Keras that a script fragment uses without
#: importing them (its notebook or the script it is pasted after does): head -> package.
_FRAGMENT_ROOTS = {"keras": "keras", "tf": "tensorflow", "tensorflow": "tensorflow"}


def _fragment_model(ctx: ModuleContext, site: CallSite) -> str:
    """A ``via`` note when ``predict``'s receiver is a name bound to a Keras model
    constructor or loader spelled with a package this file never binds (``model =
    keras.Sequential([...])`` with no ``import keras``, no star import, no assignment or
    parameter of that name): a fragment of a course or an article whose imports live
    elsewhere. ``""`` otherwise."""
    recv = site.receiver
    if not isinstance(recv, cst.Name):
        return ""
    ev = ctx.last_assign(site.func, recv.value, site.seq)
    if ev is None or ev.kind != "assign" or not isinstance(ev.value, cst.Call):
        return ""
    text = dotted(ev.value.func)
    head, _, rest = (text or "").partition(".")
    root = _FRAGMENT_ROOTS.get(head)
    if root is None or not rest or ctx.names.star_modules or head in ctx.names.aliases:
        return ""
    if ctx.last_assign(ev.func, head, 10**9) is not None or is_param(ev.func, head):
        return ""  # the file binds the name itself
    qn = canonical(f"{root}.{rest}")
    if not is_model_ctor(qn):
        return ""
    return (f"{recv.value} = {text}(...), with {head} never imported in this file (a script "
            f"fragment); taken for Keras's {qn}")


def _model_beside(ctx: ModuleContext, site: CallSite) -> str:
    """The ``via`` of a receiver this file never binds that the project index resolved by
    name (a fragment's ``model``, built by the one script beside it), else ``""``."""
    recv = site.receiver
    if not isinstance(recv, cst.Name) or ctx.last_assign(site.func, recv.value, site.seq) \
            is not None or is_param(site.func, recv.value):
        return ""
    sym = ctx.project_symbol(recv, site.func)
    return sym.via if sym is not None and sym.kind == "value" else ""


# --------------------------------------------------------------------------------------------
# Autofix: predict -> predict_on_batch when the input is one batch
# --------------------------------------------------------------------------------------------


def _to_predict_on_batch(call: cst.Call) -> cst.Call:
    """``m.predict(x[, verbose=v])`` -> ``m.predict_on_batch(x)``, keeping the call's layout."""
    func = call.func
    assert isinstance(func, cst.Attribute)
    first, last = call.args[0], call.args[-1]
    arg = first.with_changes(comma=last.comma, whitespace_after_arg=last.whitespace_after_arg)
    return call.with_changes(func=func.with_changes(attr=cst.Name("predict_on_batch")),
                             args=[arg])


def _explicit_sample(ctx: ModuleContext, expr: cst.BaseExpression) -> bool:
    """``x[None]``, ``x[np.newaxis]``, ``np.expand_dims(x, 0)``, ``x.reshape(1, -1)``,
    ``np.reshape(x, (1, ...))``, ``np.array([x])``: a batch of exactly one sample."""
    if isinstance(expr, cst.Subscript):
        first = expr.slice[0].slice if expr.slice else None
        if isinstance(first, cst.Index):
            value = first.value
            if isinstance(value, cst.Name) and value.value == "None":
                return True
            qn = ctx.names.resolve(value)
            return bool(qn and qn.endswith(".newaxis"))
        return False
    if not isinstance(expr, cst.Call):
        return False
    func = expr.func
    fname = func.attr.value if isinstance(func, cst.Attribute) else (
        func.value if isinstance(func, cst.Name) else "")
    args = [a for a in expr.args if not a.star]
    if fname in _SAMPLE_CALLS:
        return True
    if fname == "reshape" and args:
        qn = ctx.names.resolve(func)
        shape = args[1:] if qn and qn.startswith("numpy.") else args
        if not shape:
            return False
        head = shape[0].value
        if isinstance(head, cst.Tuple | cst.List) and head.elements:
            head = head.elements[0].value
        return isinstance(head, cst.Integer) and head.value == "1"
    if fname in ("array", "asarray", "stack", "convert_to_tensor", "constant") and args:
        value = args[0].value
        return isinstance(value, cst.List | cst.Tuple) and len(value.elements) == 1 and \
            not isinstance(value.elements[0], cst.StarredElement)
    return False


def _generator_input(ctx: ModuleContext, kinds: ValueKinds, site: CallSite,
                     expr: cst.BaseExpression) -> bool:
    """The input is (or may be) a generator, ``tf.data`` dataset or Keras ``Sequence``."""
    fn = site.func
    if kinds.expr_kind(expr, fn, site.seq) == DATASET:
        return True
    if isinstance(expr, cst.GeneratorExp):
        return True
    value: cst.BaseExpression | None = expr
    if isinstance(expr, cst.Name):
        if _GENERATOR_NAME.search(expr.value):
            return True
        ev = ctx.last_assign(fn, expr.value, site.seq)
        value = ev.value if ev is not None else None
    elif isinstance(expr, cst.Attribute) and _GENERATOR_NAME.search(expr.attr.value):
        return True
    if isinstance(value, cst.GeneratorExp):
        return True
    if isinstance(value, cst.Call):
        func = value.func
        name = func.attr.value if isinstance(func, cst.Attribute) else (
            func.value if isinstance(func, cst.Name) else "")
        if name in _GENERATOR_CALLS or _GENERATOR_NAME.search(name) or \
                is_dataset_ctor(ctx.names.resolve(func)):
            return True
        if isinstance(func, cst.Name) and func.value in ctx.classes:
            return True  # an instance of a module class: a Sequence, a loader ...
        target = ctx.local_function_by_ref(func, fn)
        if target is not None and target.node is not None and _has_yield(target.node):
            return True
    return False


def _has_yield(node: cst.FunctionDef) -> bool:
    found = False

    class _V(cst.CSTVisitor):
        def visit_Yield(self, n: cst.Yield) -> None:
            nonlocal found
            found = True

        def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
            return n is node

        def visit_Lambda(self, n: cst.Lambda) -> bool:
            return False

    node.visit(_V())
    return found


def _index_loop_var(loop: Loop) -> str | None:
    """``i`` in ``for i in range(n)`` / ``for i, _ in enumerate(xs)``: an integer index."""
    it, target = loop_iter(loop)
    if not isinstance(it, cst.Call) or not isinstance(it.func, cst.Name):
        return None
    if it.func.value in ("range", "trange") and isinstance(target, cst.Name):
        return target.value
    if it.func.value == "enumerate" and isinstance(target, cst.Tuple) and target.elements:
        first = target.elements[0].value
        return first.value if isinstance(first, cst.Name) else None
    return None


def _one_batch(ctx: ModuleContext, kinds: ValueKinds, site: CallSite, variant: str) -> bool:
    """Whether ``site`` (a ``predict`` call) passes exactly one batch and nothing that
    ``predict_on_batch`` lacks, so that the rewrite keeps its meaning and memory use."""
    args = site.node.args
    if not args or args[0].keyword is not None or args[0].star:
        return False
    if any(a.star or a.keyword is None or a.keyword.value != "verbose" for a in args[1:]):
        return False
    expr = args[0].value
    if _generator_input(ctx, kinds, site, expr):
        return False
    if _explicit_sample(ctx, expr):
        return True
    fn = site.func
    names = names_read(expr)
    if variant == "predict-in-loop":
        loop = site.loops[-1]
        index_var = _index_loop_var(loop)
        if index_var is not None and isinstance(expr, cst.Subscript) and len(expr.slice) >= 1:
            first = expr.slice[0].slice
            if isinstance(first, cst.Index) and isinstance(first.value, cst.Name) and \
                    first.value.value == index_var:
                return True
        per_step = step_loop(ctx, kinds, fn, loop, DIR_STEPS)
        for name in names:
            ev = ctx.last_assign(fn, name.value, site.seq)
            bound_here = ev is not None and loop in ev.loops or _bound_by(loop, name.value)
            if bound_here and (per_step or _BATCH_NAME.search(name.value)):
                return True
        return False
    # In a called or inference function: a parameter (or local) named like one batch.
    for name in names:
        if not _BATCH_NAME.search(name.value):
            continue
        if is_param(fn, name.value, star=False):
            return True
        ev = ctx.last_assign(fn, name.value, site.seq)
        if ev is not None and ev.func is fn:
            return True
    return False


#: Calls whose result is the same data as their input (a copy, view, conversion or stack of
#: it): ``predict(np.asarray(x_val))`` over a fixed set stays a fixed set.
_SAME_DATA = frozenset({"array", "asarray", "astype", "reshape", "copy", "squeeze",
                        "transpose", "stack", "concatenate", "vstack", "hstack", "float32",
                        "to_numpy", "values", "list", "tuple"})


def _input(call: cst.Call) -> cst.BaseExpression | None:
    """``predict``'s input: its first positional argument or ``x=``."""
    for a in call.args:
        if a.keyword is not None and a.keyword.value == "x":
            return a.value
    positional = [a for a in call.args if a.keyword is None and not a.star]
    return positional[0].value if positional else None


def _fixed_input(ctx: ModuleContext, site: CallSite, expr: cst.BaseExpression,
                 loop: Loop | None, varying: frozenset[str], depth: int = 0) -> bool:
    """Whether ``predict``'s input ``expr`` is the same data on every iteration of ``loop``
    (None: on every call of the function ``site`` is in): a whole evaluation set predicted
    once per epoch, grid point or model (``for lr in rates: ...; model.predict(x_test)``; a
    callback's ``on_epoch_end`` predicting ``self.validation_data``), which is one batched
    ``predict`` per outer iteration, not inference per sample. Fixed: literals, names not
    bound in the loop (not bound per call, for a function: a global, or a parameter every
    same-module caller passes fixed data to), ``self`` attributes no per-iteration code sets,
    subscripts and slices of fixed data by fixed indices, and copies or conversions of them
    (``_SAME_DATA``). Never fixed: names that read like one sample or batch (``state``,
    ``obs``, ``frame``, ``x_batch``), a lambda's parameters (``varying``), any other call."""
    if depth > 6:
        return False
    fn = site.func
    if isinstance(expr, cst.Integer | cst.Float | cst.SimpleString | cst.Ellipsis):
        return True
    if isinstance(expr, cst.UnaryOperation):  # ``x_test[-100:]``
        return _fixed_input(ctx, site, expr.expression, loop, varying, depth + 1)
    if isinstance(expr, cst.BinaryOperation):  # ``x_test / 255.0``
        return all(_fixed_input(ctx, site, side, loop, varying, depth + 1)
                   for side in (expr.left, expr.right))
    if isinstance(expr, cst.Tuple | cst.List):  # a model with several inputs
        return bool(expr.elements) and all(
            _fixed_input(ctx, site, e.value, loop, varying, depth + 1) for e in expr.elements)
    if isinstance(expr, cst.Subscript):
        if not _fixed_input(ctx, site, expr.value, loop, varying, depth + 1):
            return False
        for el in expr.slice:
            part = el.slice
            bounds = [part.value] if isinstance(part, cst.Index) else [
                b for b in (part.lower, part.upper, part.step) if b is not None]
            if not all(_fixed_input(ctx, site, b, loop, varying, depth + 1) for b in bounds):
                return False
        return True
    if isinstance(expr, cst.Attribute):
        if _BATCH_NAME.search(expr.attr.value):
            return False
        base = expr.value
        if isinstance(base, cst.Name) and base.value == "self":
            # set by methods that run once (``__init__``, a loader), or by the framework (a
            # callback's validation data); not by one that runs per iteration (``step``)
            cls = ctx.classes.get(fn.class_name) if fn.class_name else None
            stores = cls.attr_assigns.get(expr.attr.value, []) if cls is not None else []
            repeated = ctx.analysis(called_per_iteration)
            return not any(id(ev.func) in repeated or ev.loops for ev in stores) and not \
                _mutated(fn, expr, loop)
        return _fixed_input(ctx, site, base, loop, varying, depth + 1)
    if isinstance(expr, cst.Call):
        if call_name(expr.func) not in _SAME_DATA:
            return False
        parts = [a.value for a in expr.args if not a.star]
        func = expr.func
        if isinstance(func, cst.Attribute) and not (ctx.names.resolve(func) or "").startswith(
                "numpy."):
            parts.append(func.value)  # ``x_val.astype(...)``: the receiver is the data
        return bool(parts) and all(
            _fixed_input(ctx, site, p, loop, varying, depth + 1) for p in parts)
    if not isinstance(expr, cst.Name):
        return False
    name = expr.value
    if name in varying or _BATCH_NAME.search(name) or name in ("None", "True", "False"):
        return name in ("None", "True", "False")
    if loop is not None:
        # bound or changed anywhere in the loop (also after the call: ``x = np.append(x[1:],
        # yhat)`` feeds each prediction back, one step at a time)
        in_loop = [ev for ev in fn.assigns if isinstance(ev.target, cst.Name)
                   and ev.target.value == name and loop in ev.loops]
        if _mutated(fn, expr, loop):
            return False
        if _bound_by(loop, name):
            return _fold_split(loop)  # a fold's index array selects a whole set, not a sample
        if not in_loop:
            return True  # bound before the loop
        ev = in_loop[0]
        return (len(in_loop) == 1 and ev.kind == "assign" and ev.value is not None
                and ev.seq < site.seq
                and _fixed_input(ctx, site, ev.value, loop, varying, depth + 1))
    ev = ctx.last_assign(fn, name, site.seq)
    if ev is not None:
        if not ev.loops and (ev.func is not fn or varying):
            return True  # bound once outside the function (a global, a closure) or lambda
        if ev.kind == "assign" and ev.value is not None and ev.func is fn:
            return _fixed_input(ctx, site, ev.value, loop, varying, depth + 1)
        return False
    if fn.node is None or not is_param(fn, name, star=False):
        return fn.node is not None and not is_param(fn, name)  # a global never assigned here
    callers = [s for s in ctx.calls if ctx.resolve_local_function(s) is fn
               and s.func is not fn]
    passed = [(s, arg) for s in callers for pname, arg in call_bindings(fn, s.node)
              if pname == name]
    return bool(passed) and len(passed) == len(callers) and all(
        _fixed_input(ctx, s, arg, s.loops[-1] if s.loops else None, frozenset(), depth + 1)
        for s, arg in passed)


def _fold_split(loop: Loop) -> bool:
    """``for train_idx, val_idx in kf.split(X)`` (also under ``enumerate``): a loop over the
    folds of a cross-validation splitter, whose targets are index arrays."""
    it, target = loop_iter(loop)
    if isinstance(it, cst.Call) and call_name(it.func) == "enumerate" and it.args:
        it = it.args[0].value
        if isinstance(target, cst.Tuple) and len(target.elements) == 2:
            target = target.elements[1].value
    args = [a for a in it.args if a.keyword is None] if isinstance(it, cst.Call) else []
    return (isinstance(it, cst.Call) and call_name(it.func) == "split"
            and isinstance(it.func, cst.Attribute) and bool(args)
            and not isinstance(args[0].value, cst.SimpleString | cst.FormattedString)
            and isinstance(target, cst.Tuple) and len(target.elements) == 2)


#: Methods that change a container or array in place.
_MUTATORS = frozenset({"append", "extend", "insert", "pop", "popleft", "appendleft", "clear",
                       "fill", "put", "update", "resize", "itemset", "remove", "setdefault"})


def _mutated(fn: FuncInfo, expr: cst.Name | cst.Attribute, loop: Loop | None) -> bool:
    """``expr`` (a name or ``self.attr``) is changed in place in ``loop`` (None: anywhere in
    ``fn``): a subscript or augmented store into it, or a mutating method call on it."""
    def same(node: cst.BaseExpression) -> bool:
        if isinstance(expr, cst.Name):
            return isinstance(node, cst.Name) and node.value == expr.value
        return (isinstance(node, cst.Attribute) and node.attr.value == expr.attr.value
                and isinstance(node.value, cst.Name) and node.value.value == "self")

    for ev in (*fn.assigns, *fn.aug_assigns):
        if loop is not None and loop not in ev.loops:
            continue
        target = ev.target
        if ev.kind == "aug" and same(target):
            return True
        if isinstance(target, cst.Subscript) and same(target.value):
            return True
        if isinstance(expr, cst.Attribute) and same(target):
            return True  # ``self.x = ...`` in the loop (or in this function)
    return any((loop is None or loop in s.loops) and s.method in _MUTATORS
               and s.receiver is not None and same(s.receiver) for s in fn.calls)


def _bound_by(loop: Loop, name: str) -> bool:
    _, target = loop_iter(loop)
    return target is not None and any(n.value == name for n in names_read(target))


def _own_predict(ctx: ModuleContext, site: CallSite) -> bool:
    """The receiver is an instance of a class (of this module, or of another project module)
    that overrides ``predict`` itself without calling a ``predict`` inside (``def predict(self,
    x): return self(x)``): the call builds no Keras predict pipeline."""
    recv, fn = site.receiver, site.func
    class_name: str | None = None
    if isinstance(recv, cst.Name) and recv.value == "self":
        class_name = fn.class_name
    else:
        values = [(v, f) for v, f in ctx.held_values(fn, recv, site.seq) if v is not None]
        calls = [(v, f) for v, f in values if isinstance(v, cst.Call)]
        if not calls or len(calls) != len(values):
            return False
        owners = set()
        for value, vfn in calls:
            assert isinstance(value, cst.Call)
            sym = ctx.project_symbol(value.func, vfn)
            if sym is not None and sym.kind == "class":
                if "predict" not in sym.overrides:
                    return False
                owners.add(f"project:{sym.origin}")
            elif isinstance(value.func, cst.Name) and value.func.value in ctx.classes:
                owners.add(value.func.value)
            else:
                return False
        local = [o for o in owners if not o.startswith("project:")]
        if not local:
            return True  # every construction is a project class overriding predict
        if len(local) != len(owners) or len(local) != 1:
            return False
        class_name = local[0]
    if class_name is None:
        return False
    method = ctx.method(class_name, "predict")
    if method is None:
        return _predict_attribute(ctx, class_name)
    return (method.node is not None
            and not any(s.method == "predict" for s in method.calls))


def _predict_attribute(ctx: ModuleContext, class_name: str) -> bool:
    """The module class ``class_name`` binds ``predict`` on the instance (``self.predict =
    predict`` in ``__init__``, after ``@tf.function def predict(x): ...`` there, or a lambda),
    and no such function calls a ``predict`` inside: instances run that, not Keras's."""
    cls = ctx.classes.get(class_name)
    events = cls.attr_assigns.get("predict", []) if cls is not None else []
    if not events:
        return False
    for ev in events:
        value = ev.value
        if isinstance(value, cst.Name):
            nested = ev.func.children.get(value.value)
            if nested is None or any(s.method == "predict" for s in nested.calls):
                return False
        elif not isinstance(value, cst.Lambda) or ".predict" in ctx.code(value):
            return False
    return True


def _custom_predict(ctx: ModuleContext) -> bool:
    """This module (or a project module it imports a class from) defines a class with a
    ``predict`` of its own that calls no ``predict`` inside (a TF1 estimator's ``predict`` that
    runs ``sess.run``; also one bound on the instance, :func:`_predict_attribute`): an untyped
    receiver named like a model may well be one of those, so the name alone is no evidence of
    a Keras model."""
    for cls in ctx.classes.values():
        method = cls.methods.get("predict")
        if method is not None and not any(s.method == "predict" for s in method.calls):
            return True
        if method is None and "predict" in cls.attr_assigns and _predict_attribute(
                ctx, cls.name):
            return True
    project = ctx.project
    return project is not None and any(
        s.kind == "class" and "predict" in s.overrides for s in project.symbols.values())
