"""UGE through the functions a session loop calls: operations built in a callee, not in the loop.

Each case is a small program written for one situation; positives give the lines UGE must
report (the operation in the callee, the loop's call named in the message), hard negatives
(``[]``) are near misses that must stay silent.
"""

from __future__ import annotations

import pytest

from leakwatt.mining.scan import scan_paths, scan_source


def _uge(source: str) -> list[int]:
    found = scan_source(source, "t.py", rules=["UGE"])
    # the pre-filter keeps the callees the loop reaches
    assert found == scan_source(source, "t.py", rules=["UGE"], prefilter=False)
    return [f.line for f in found]


def _line_of(source: str, text: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), start=1) if text in line)


POSITIVES = {
    "learning rate assigned per epoch by a method": ("""\
import tensorflow as tf


class Trainer:
    def __init__(self, sess):
        self.sess = sess
        self.lr = tf.Variable(0.1, trainable=False)

    def decay_lr(self, epoch):
        self.sess.run(tf.assign(self.lr, 0.1 * 0.95 ** epoch))

    def fit(self, batches, epochs):
        for epoch in range(epochs):
            self.decay_lr(epoch)
            for x in batches:
                self.sess.run(self.train_op, feed_dict={self.x: x})
""", ["self.sess.run(tf.assign("]),
    "metric built three calls down from an instance's method": ("""\
import tensorflow as tf


def accuracy_op(logits, labels):
    return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), labels), tf.float32))


class Evaluator:
    def evaluate(self, sess, feed):
        return sess.run(self.metric(), feed_dict=feed)

    def metric(self):
        return accuracy_op(self.logits, self.labels)


evaluator = Evaluator()
sess = tf.Session()
for epoch in range(10):
    sess.run(train_op)
    print(evaluator.evaluate(sess, feed))
""", ["return tf.reduce_mean(tf.cast("]),
    "model rebuilt per restart through its __init__": ("""\
import tensorflow as tf


class Model:
    def __init__(self, n_hidden):
        self.x = tf.placeholder(tf.float32, [None, 8])
        self.loss = tf.reduce_mean(tf.layers.dense(self.x, n_hidden))
        self.train_op = tf.train.AdamOptimizer(0.01).minimize(self.loss)


sess = tf.Session()
for run in range(20):
    model = Model(32)
    sess.run(tf.global_variables_initializer())
    sess.run(model.train_op, feed_dict={model.x: data})
""", ["self.x = tf.placeholder(", "sess.run(tf.global_variables_initializer())"]),
    "optimizer minimize in a per-epoch helper": ("""\
import tensorflow as tf


def make_train_op(loss, lr):
    return tf.train.GradientDescentOptimizer(lr).minimize(loss)


sess = tf.Session()
for epoch in range(10):
    train_op = make_train_op(loss, 0.1 / (epoch + 1))
    sess.run(train_op)
""", ["return tf.train.GradientDescentOptimizer("]),
    "a model per input line in a serving loop": ("""\
import sys

import tensorflow as tf


class Translator:
    def __init__(self, sess):
        self.sess = sess

    def translate(self, line):
        ids = self.encode(line)
        return self.sess.run(tf.argmax(self.decoder(ids), -1))


translator = Translator(tf.Session())
for line in sys.stdin:
    print(translator.translate(line))
""", ["return self.sess.run(tf.argmax("]),
    "optimizer held by self, minimize called per run": ("""\
import tensorflow as tf


class Agent:
    def __init__(self):
        self.optimizer = tf.train.AdamOptimizer(1e-3)

    def build_update(self, loss):
        return self.optimizer.minimize(loss)

    def train(self, sess, episodes):
        for episode in range(episodes):
            op = self.build_update(self.loss)
            sess.run(op, feed_dict=self.feed(episode))
""", ["return self.optimizer.minimize(loss)"]),
}

NEGATIVES = {
    "callee only runs the graph and computes with numpy": """\
import numpy as np
import tensorflow as tf


class Model:
    def __init__(self):
        self.x = tf.placeholder(tf.float32, [None, 4])
        self.pred = tf.argmax(tf.layers.dense(self.x, 3), 1)

    def predict(self, sess, batch):
        out = sess.run(self.pred, feed_dict={self.x: batch})
        return np.asarray(out)

    def score(self, sess, batch, labels):
        return float(np.mean(self.predict(sess, batch) == labels))


model = Model()
sess = tf.Session()
for batch, labels in batches:
    print(model.score(sess, batch, labels))
""",
    "operations built once behind cache guards": """\
import tensorflow as tf


class Metrics:
    def __init__(self):
        self._ops = {}
        self.loss_op = None

    def op(self, name, tensor):
        if name not in self._ops:
            self._ops[name] = tf.reduce_mean(tensor)
        return self._ops[name]

    def accuracy(self):
        if hasattr(self, "_acc"):
            return self._acc
        self._acc = tf.reduce_mean(tf.cast(self.correct, tf.float32))
        return self._acc

    def loss(self, logits, labels):
        if self.loss_op is None:
            self.loss_op = tf.reduce_mean(tf.square(logits - labels))
        return self.loss_op


metrics = Metrics()
for epoch in range(10):
    sess.run([metrics.op("loss", loss), metrics.accuracy(), metrics.loss(logits, labels)])
""",
    "a builder that returns early once built": """\
import tensorflow as tf


class Net:
    def build(self):
        if self.built:
            return
        self.x = tf.placeholder(tf.float32, [None, 4])
        self.y = tf.reduce_sum(self.x)
        self.built = True


net = Net()
for batch in batches:
    net.build()
    print(sess.run(net.y, feed_dict={net.x: batch}))
""",
    "an early return after a loop in the cache check": """\
import tensorflow as tf


class Cache:
    def ops(self, names):
        if self._ops is not None:
            for name in names:
                print(name)
            return self._ops
        self._ops = [tf.reduce_sum(self.x)]
        return self._ops


cache = Cache()
for batch in batches:
    sess.run(cache.ops(["a"]), feed_dict={x: batch})
""",
    "a helper rebound to a wrapper that builds its graph once": """\
import numpy as np
import tensorflow as tf


def graph_once(f):
    x = tf.placeholder(tf.float32)
    out = f(x)
    return lambda value: out.eval({x: value}, session=sess)


def double(img):
    return tf.multiply(img, 2.0)


def run(img):
    for octave in range(4):
        img = double(img) + sess.run(noise)
    return img


if __name__ == "__main__":
    double = graph_once(double)
    run(np.zeros(3))
""",
    "graph built before the loop by the same builder": """\
import tensorflow as tf


def build(n):
    x = tf.placeholder(tf.float32, [None, n])
    return x, tf.reduce_sum(x)


x, total = build(4)
sess = tf.Session()
for batch in batches:
    print(sess.run(total, feed_dict={x: batch}))
""",
    "eager loop calling an op helper in a file that exports with a session": """\
import tensorflow as tf


def normalize(x):
    return tf.math.l2_normalize(x, axis=-1)


def export(path):
    with tf.compat.v1.Session() as sess:
        sess.run(init_op)
        saver.save(sess, path)


for batch in dataset:
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(normalize(batch)))
    optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
""",
    "tf.function callee is traced once": """\
import tensorflow as tf


@tf.function
def step(x):
    return tf.reduce_sum(x)


sess = tf.compat.v1.Session()
for batch in batches:
    sess.run(step(batch))
""",
    "callee builds and runs in a fresh graph": """\
import tensorflow as tf


def build_and_score(cfg, data):
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 4])
        y = tf.reduce_sum(x * cfg)
        with tf.Session() as sess:
            return sess.run(y, feed_dict={x: data})


for cfg in configs:
    print(build_and_score(cfg, data))
""",
    "default graph reset on every restart": """\
import tensorflow as tf


class Model:
    def __init__(self, n_hidden):
        self.x = tf.placeholder(tf.float32, [None, 8])
        self.loss = tf.reduce_mean(tf.layers.dense(self.x, n_hidden))


for run in range(20):
    tf.reset_default_graph()
    model = Model(32)
    sess = tf.Session()
    sess.run(model.loss, feed_dict={model.x: data})
""",
    "a progress bar's update is not matched to a module method by name": """\
import tensorflow as tf
from tqdm import tqdm


class Builder:
    def update(self, x):
        return tf.reduce_sum(x)


def train(sess, batches):
    pbar = tqdm(total=len(batches))
    for batch in batches:
        sess.run(train_op, feed_dict={x: batch})
        pbar.update(1)
""",
}


@pytest.mark.parametrize("case", list(POSITIVES))
def test_uge_ops_built_by_callees_are_reported_at_the_operation(case: str) -> None:
    source, texts = POSITIVES[case]
    assert _uge(source) == sorted(_line_of(source, t) for t in texts)


@pytest.mark.parametrize("case", list(NEGATIVES))
def test_uge_callee_hard_negatives_stay_silent(case: str) -> None:
    assert _uge(NEGATIVES[case]) == []


def test_the_finding_names_the_callee_chain_and_the_operation() -> None:
    source = POSITIVES["metric built three calls down from an instance's method"][0]
    (f,) = scan_source(source, "t.py", rules=["UGE"])
    assert f.variant == "graph-op-in-called-fn"
    assert "Evaluator.evaluate() -> Evaluator.metric() -> accuracy_op()" in f.message
    assert f.line == _line_of(source, "return tf.reduce_mean(tf.cast(")
    assert "evaluator.evaluate(sess, feed)" in f.message  # the loop's call
    assert f.via.startswith("called per iteration through Evaluator.evaluate()")
    assert f.confidence == 0.65


def test_a_method_matched_by_name_only_says_so_with_lower_confidence() -> None:
    source = """\
import tensorflow as tf


class Summaries:
    def build_image_summary(self, images):
        return tf.summary.image("samples", images)


def train(sess, summaries, writer, batches):
    for step, batch in enumerate(batches):
        sess.run(train_op, feed_dict={x: batch})
        summary = sess.run(summaries.build_image_summary(generated))
        writer.add_summary(summary, step)
"""
    (f,) = scan_source(source, "t.py", rules=["UGE"])
    assert f.line == _line_of(source, 'return tf.summary.image("samples", images)')
    assert "summaries.build_image_summary(generated)" in f.message
    assert "matched by name to Summaries.build_image_summary" in f.via
    assert f.confidence < 0.65


def test_a_keras_hook_is_still_reported_at_its_operation() -> None:
    source = """\
import tensorflow as tf
from keras import backend as K
from keras.callbacks import Callback


class LrLogger(Callback):
    def on_epoch_end(self, epoch, logs=None):
        sess = K.get_session()
        lr = sess.run(tf.cast(self.model.optimizer.lr, tf.float32))
        print(epoch, lr)
"""
    assert _uge(source) == [_line_of(source, "tf.cast(")]


def test_a_callee_in_a_scanned_folder_is_reported_once(tmp_path) -> None:
    (tmp_path / "train.py").write_text(POSITIVES["optimizer minimize in a per-epoch helper"][0])
    report = scan_paths([tmp_path], select=["UGE"], jobs=1)
    assert [(f.line, f.variant) for f in report.findings] == [(5, "graph-op-in-called-fn")]
