"""Finding fields and cross-function cases beyond the rules' own examples."""

from __future__ import annotations

from leakwatt.mining.scan import scan_source


def test_finding_fields_for_method_builder_in_while_loop() -> None:
    src = """\
import tensorflow as tf


class Trainer:
    def build(self):
        return tf.keras.Sequential([tf.keras.layers.Dense(1)])

    def train(self):
        while self.running:
            self.model = self.build()
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(self.model(x))
"""
    (f,) = scan_source(src, "t.py", rules=["IMR"])
    d = f.to_dict()
    assert (d["rule"], d["line"], d["col"]) == ("IMR", 10, 26)
    assert d["function"] == "Trainer.train" and d["variant"] == "builder-in-loop"
    assert d["loop_kind"] == "while" and d["model_api"] == "builder"
    assert d["training_api"] == "gradient_tape"
    assert d["snippet"] == "self.model = self.build()"
    assert d["cell"] is None and d["path"] == "t.py"


def test_clear_session_inside_called_function_counts() -> None:
    src = """\
import keras


def reset():
    keras.backend.clear_session()


def train_one(cfg):
    reset()
    model = keras.Sequential()
    model.fit(x, y)


for cfg in cfgs:
    train_one(cfg)
"""
    assert scan_source(src, rules=["IMR"]) == []
    assert len(scan_source(src.replace("    reset()\n", ""), rules=["IMR"])) == 1


def test_utr_follows_returns_and_self_attributes() -> None:
    src = """\
import tensorflow as tf


class Loop:
    def __init__(self):
        self.loss_fn = tf.keras.losses.MeanSquaredError()
        self.losses = []

    def step(self, x, y):
        return self.loss_fn(y, x)

    def run(self, data):
        for x, y in data:
            loss = self.step(x, y)
            self.losses.append(loss)
            self.losses.append(loss.numpy())
            self.losses.append(int(loss))
"""
    findings = scan_source(src, rules=["UTR"])
    assert [(f.line, f.variant, f.function) for f in findings] == [
        (15, "append-loss", "Loop.run")]


def test_rl_agent_predict_and_no_sklearn_false_positive() -> None:
    src = """\
import numpy as np
from tensorflow.keras.models import Sequential
from sklearn.ensemble import RandomForestRegressor


class DQN:
    def __init__(self):
        self.q_network = self._build()
        self.forest = RandomForestRegressor()

    def _build(self):
        return Sequential()

    def replay(self, batch):
        for s in batch:
            target = self.q_network.predict(s)
            other = self.forest.predict(s)
"""
    findings = scan_source(src, rules=["DIR"])
    assert [(f.line, f.variant, f.confidence) for f in findings] == [
        (16, "predict-in-loop", 0.9)]


def test_us_session_in_tf_compat_v1_module_level() -> None:
    src = "import tensorflow as tf\nsess = tf.compat.v1.Session()\nsess.run(x)\n"
    (f,) = scan_source(src, rules=["US"])
    assert (f.line, f.col, f.variant) == (2, 8, "session-no-close")


def test_utr_skips_tensor_lists_built_to_stack_or_return() -> None:
    src = """\
import tensorflow as tf


def adjust(inputs):
    out = []
    for x in inputs:
        out.append(tf.squeeze(x))
    return out


def merged(inputs):
    parts = []
    for x in inputs:
        parts.append(tf.abs(x))
    return tf.concat(parts, 0)


def train(data):
    losses = []
    for x in data:
        losses.append(tf.reduce_mean(x))
    return losses
"""
    assert [(f.line, f.function) for f in scan_source(src, rules=["UTR"])] == [(21, "train")]
