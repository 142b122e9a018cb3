"""DIR: Dataset-Iterator Retention."""

from __future__ import annotations

import re
from collections.abc import Iterable

import libcst as cst

from mining.rules.base import CallSite, Invalid, ModuleContext, Report, Rule, Valid, dedent
from mining.rules.utr import called_in_loop
from mining.rules.values import MODEL, UNKNOWN, is_dataset_ctor, kinds_for

_MODEL_NAME = re.compile(
    r"(model|net|generator|discriminator|encoder|decoder|actor|critic|autoencoder|cnn|lstm|"
    r"rnn|gan|policy|q_?func|brain)", re.IGNORECASE)
_INFERENCE_FUNCS = re.compile(
    r"^(act|get_action|choose_action|select_action|pick_action|policy|infer|inference|"
    r"predict\w*|classify|detect|recognize|get_q\w*|q_values?)$", re.IGNORECASE)


class DatasetIteratorRetention(Rule):
    """``model.predict(...)`` called inside a loop, or a ``tf.data.Dataset`` pipeline built
    inside a loop or a per-call inference function.

    Each ``predict`` call wraps its input in a new data adapter, ``tf.data`` pipeline and
    iterator (plus a traced predict function on the first call), and these pile up when
    ``predict`` is called once per sample or step; ``model(x)`` and ``predict_on_batch`` do
    not. The receiver must be a Keras model (followed through assignments, builders and
    ``self.attr``) or, with lower confidence, an untyped name that reads like one (``model``,
    ``actor``, ``self.q_net``). Scikit-learn estimators are not reported. Datasets built from
    ``tf.data.Dataset.from_tensor_slices`` and friends inside a loop or inside a function called
    from a loop are reported too. The finding is at the call.
    """

    CODE = "DIR"
    NAME = "Dataset-Iterator Retention"
    MESSAGE = ("model.predict()/tf.data pipeline created on every iteration; each call builds a "
               "new dataset and iterator. Call the model directly (model(x, training=False)) or "
               "predict_on_batch(), or build the dataset once")
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
    ]
    INVALID = [
        Invalid(dedent("""
            from tensorflow import keras
            model = keras.models.load_model("m.keras")
            for frame in frames:
                label = model.predict(frame[None])
            """), line=4, variant="predict-in-loop"),
        Invalid(dedent("""
            import keras

            class Agent:
                def __init__(self):
                    self.model = keras.Sequential([keras.layers.Dense(2)])

                def act(self, state):
                    return self.model.predict(state).argmax()

            agent = Agent()
            while not done:
                action = agent.act(state)
            """), line=8, variant="predict-in-inference-fn"),
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
    ]

    def check(self, ctx: ModuleContext) -> Iterable[Report]:
        kinds = kinds_for(ctx)
        repeated = called_in_loop(ctx)
        for site in ctx.calls:
            fn = site.func
            in_repeated = id(fn) in repeated
            in_inference = bool(fn.node is not None and _INFERENCE_FUNCS.match(fn.name))
            if site.method == "predict" and site.receiver is not None:
                conf = self._model_confidence(ctx, site)
                if conf == 0.0:
                    continue
                if site.loops:
                    variant, loop_kind = "predict-in-loop", site.loops[-1].kind
                elif in_repeated:
                    variant, loop_kind, conf = "predict-in-called-fn", "", conf - 0.1
                elif in_inference:
                    variant, loop_kind, conf = "predict-in-inference-fn", "", conf - 0.2
                else:
                    continue
                yield Report(node=site.node, variant=variant, confidence=conf,
                             loop_kind=loop_kind, training_api="predict",
                             function=fn.qualname, stmt=site.stmt)
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
                             loop_kind=loop_kind, function=fn.qualname, stmt=site.stmt)
        del kinds

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
