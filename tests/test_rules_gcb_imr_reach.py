"""GCB and IMR reach added after the fresh2 set was spent (its misses, as patterns written
here): ``Dataset.from_tensor_slices`` and ``tf.one_hot`` over loaded arrays in graph code and
Estimator input functions, origins through ``if``/``else`` branches, ``np.c_`` and a scaler,
a corpus reader's data-named parameter, ``tf`` through a project star import, and a
``build_fn`` redefined before its search; each with its hard negatives. Every case is source
written here, scanned with and without the pre-filter."""

from __future__ import annotations

import json
import textwrap

import pytest

from leakwatt.mining.scan import scan_bytes, scan_source


def _scan(src: str, rule: str) -> list:
    """Findings of ``rule`` in ``src``; the pre-filtered scan must find what the whole one
    finds."""
    src = textwrap.dedent(src).lstrip()
    found = scan_source(src, "t.py", [rule])
    assert found == scan_source(src, "t.py", [rule], prefilter=False)
    return found


def _lines(src: str, rule: str) -> list[tuple[int, str]]:
    return sorted((f.line, f.variant) for f in _scan(src, rule))


# -- GCB: Dataset.from_tensor_slices and tf.one_hot -----------------------------------------

#: a TF1 Estimator script: a factory returns the input function, the frame comes from a CSV
#: through pandas row selections and a parsing helper
ESTIMATOR_FACTORY = textwrap.dedent("""
    import numpy as np
    import pandas as pd
    import tensorflow as tf
    from tensorflow.python.data import Dataset

    frame = pd.read_csv("digits.csv", header=None)
    frame = frame.head(10000)
    frame = frame.reindex(np.random.permutation(frame.index))

    def split(table):
        labels = table[0]
        pixels = table.loc[:, 1:784] / 255.0
        return labels, pixels

    def make_input(features, labels, batch_size):
        def _input_fn():
            raw = {"pixels": features}
            ds = Dataset.from_tensor_slices((raw, np.array(labels)))
            return ds.batch(batch_size).make_one_shot_iterator().get_next()
        return _input_fn

    def train(steps, examples, targets):
        optimizer = tf.train.AdagradOptimizer(learning_rate=0.05)
        clf = tf.estimator.LinearClassifier(feature_columns=[], n_classes=10, optimizer=optimizer)
        clf.train(input_fn=make_input(examples, targets, 32), steps=steps)

    targets, examples = split(frame[:7500])
    train(100, examples=examples, targets=targets)
    """).lstrip()

#: an input function called through lambdas, its features rebuilt by a dict comprehension
ESTIMATOR_LAMBDA = textwrap.dedent("""
    import numpy as np
    import pandas as pd
    import tensorflow as tf

    housing = pd.read_csv("housing.csv")
    housing = housing.reindex(np.random.permutation(housing.index))

    def my_input_fn(features, targets, batch_size=1):
        features = {key: np.array(value) for key, value in dict(features).items()}
        ds = tf.data.Dataset.from_tensor_slices((features, targets))
        return ds.batch(batch_size).repeat()

    def train_model(steps, feature="rooms"):
        data = housing[[feature]]
        target = housing["value"]
        regressor = tf.estimator.LinearRegressor(feature_columns=[])
        regressor.train(input_fn=lambda: my_input_fn(data, target), steps=steps)
    """).lstrip()


def test_gcb_from_tensor_slices_in_an_estimator_input_function() -> None:
    (f,) = _scan(ESTIMATOR_FACTORY, "GCB")
    assert (f.line, f.variant) == (18, "graph-constant")
    assert "read_csv" in f.message and "parameter features of make_input" in f.via
    (g,) = _scan(ESTIMATOR_LAMBDA, "GCB")
    assert (g.line, g.variant) == (10, "graph-constant")
    assert "read_csv" in g.message and "my_input_fn" in g.via


def test_gcb_input_function_of_a_tf2_estimator_is_a_graph() -> None:
    """No TF1 marker in the module: the function handed over as ``input_fn=`` (through a
    name bound to a lambda) builds the Estimator's input graph all the same."""
    src = """
        import numpy as np
        import tensorflow as tf

        (x_train, y_train), _ = tf.keras.datasets.mnist.load_data()
        x_train = x_train.astype(np.float32).reshape(-1, 784) / 255.0

        def create_dataset(X, y=None, batch_size=32):
            dataset = tf.data.Dataset.from_tensor_slices(({"X": X}, y))
            return dataset.batch(batch_size)

        input_fn = lambda: create_dataset(x_train, y_train)
        clf = tf.estimator.DNNClassifier(hidden_units=[300], n_classes=10)
        clf.train(input_fn=input_fn)
        """
    (f,) = _scan(src, "GCB")
    assert (f.line, f.variant) == (8, "graph-constant") and "load_data" in f.message


@pytest.mark.parametrize("src", [
    # eager TF2: the dataset copies the arrays once, no graph keeps them
    """
    import numpy as np
    import tensorflow as tf
    x, y = np.load("x.npy"), np.load("y.npy")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    hot = tf.one_hot(y, 10)
    tf.keras.Sequential([tf.keras.layers.Dense(10)]).fit(ds, epochs=2)
    """,
    # eager training step over one-hot labels of a loaded set, a helper called twice
    """
    import tensorflow as tf
    (x, y), (xt, yt) = tf.keras.datasets.cifar10.load_data()

    def encode(labels):
        return tf.one_hot(labels, 10)

    y_hot, yt_hot = encode(y), encode(yt)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(y_hot)
    """,
    # a ten-element range in a TF1 graph and an input function
    """
    import numpy as np
    import tensorflow as tf
    ds = tf.data.Dataset.from_tensor_slices(np.arange(10))

    def input_fn():
        return tf.data.Dataset.from_tensor_slices({"x": np.arange(10.0)}).batch(2)

    tf.estimator.LinearRegressor(feature_columns=[]).train(input_fn=input_fn)
    with tf.Session() as sess:
        sess.run(tf.one_hot([0, 1, 2], 3))
    """,
    # an input function over literal rows
    ESTIMATOR_LAMBDA.replace('pd.read_csv("housing.csv")',
                             'pd.DataFrame({"rooms": [1.0, 2.0], "value": [3.0, 4.0]})'),
], ids=["eager-dataset", "eager-one-hot", "arange", "literal-frame"])
def test_gcb_graph_only_embedders_near_misses(src: str) -> None:
    assert _scan(src, "GCB") == []


def test_gcb_one_hot_of_loaded_labels_in_graph_code() -> None:
    src = """
        import tensorflow as tf
        from keras.datasets import cifar10

        (x_train, y_train), (x_test, y_test) = cifar10.load_data()
        X = tf.placeholder(tf.float32, shape=[None, 32, 32, 3])
        train_hot = tf.squeeze(tf.one_hot(y_train, 10), axis=1)
        depth_hot = tf.one_hot(indices=y_test, depth=10)
        """
    assert _lines(src, "GCB") == [(6, "graph-constant"), (7, "graph-constant")]


def test_gcb_tf_through_a_star_import_of_a_project_module() -> None:
    """``from resnet import *`` brings ``tf`` with the project's network: the session and
    placeholders are TF1 graph code all the same."""
    src = textwrap.dedent("""
        from keras.datasets import cifar10
        import numpy as np
        from resnet import *

        (X_train, y_train), _ = cifar10.load_data()
        X = tf.placeholder(tf.float32, shape=[None, 32, 32, 3])
        Y_hot = tf.one_hot(y_train, 10)
        with tf.Session() as sess:
            sess.run(Y_hot)
        """).lstrip()
    assert _lines(src, "GCB") == [(7, "graph-constant")]
    eager = src.replace("X = tf.placeholder(tf.float32, shape=[None, 32, 32, 3])\n", "").replace(
        "with tf.Session() as sess:\n    sess.run(Y_hot)\n", "print(Y_hot)\n")
    assert "placeholder" not in eager and "Session" not in eager
    assert _scan(eager, "GCB") == []


def test_gcb_origins_through_splits_masks_indexing_and_queue_producers() -> None:
    src = """
        import numpy as np
        import pandas as pd
        import tensorflow as tf
        from sklearn.model_selection import train_test_split

        frame = pd.read_csv("train.csv")
        X_train, X_test, y_train, y_test = train_test_split(frame.values[:, 1:], frame.values[:, 0])
        x = tf.placeholder(tf.float32, [None, 784])
        test_x = tf.constant(X_test)
        test_y = tf.constant(np.eye(10)[y_test.astype(int)])
        mask = tf.constant((np.arange(10) == y_train[:, None]).astype(np.float32))
        images, labels = tf.train.slice_input_producer([X_train, y_train])
        eye = tf.constant(np.eye(10)[3])
        """
    assert _lines(src, "GCB") == [(9, "graph-constant"), (10, "graph-constant"),
                                  (11, "graph-constant"), (12, "graph-constant")]


# -- GCB: origins through branches, np.c_ and a scaler ----------------------------------------

TRAINABLE = textwrap.dedent("""
    import numpy as np
    import tensorflow as tf

    class Net:
        def __init__(self, npy_path=None, trainable=True):
            if npy_path is not None:
                self.data_dict = np.load(npy_path, encoding="latin1").item()
            else:
                self.data_dict = None
            self.trainable = trainable

        def conv(self, x, name, shape):
            with tf.variable_scope(name):
                return tf.nn.conv2d(x, self.get_var(tf.truncated_normal(shape), name, 0),
                                    [1, 1, 1, 1], "SAME")

        def get_var(self, initial_value, name, idx):
            if self.data_dict is not None and name in self.data_dict:
                value = self.data_dict[name][idx]
            else:
                value = initial_value
            if self.trainable:
                var = tf.Variable(value, name=name)
            else:
                var = tf.constant(value, dtype=tf.float32, name=name)
            return var
    """).lstrip()


def test_gcb_each_branch_of_an_if_binding_is_an_origin() -> None:
    assert _lines(TRAINABLE, "GCB") == [(23, "graph-constant"), (25, "graph-constant")]
    # both branches bind generated values: nothing loaded reaches the variable
    fresh = TRAINABLE.replace("value = self.data_dict[name][idx]",
                              "value = tf.zeros_like(initial_value)")
    assert _scan(fresh, "GCB") == []


@pytest.mark.parametrize("src", [
    # a loaded array rebound by both branches to scalars before it is embedded
    """
    import numpy as np
    import tensorflow as tf
    value = np.load("w.npy")
    if value.ndim > 1:
        value = 1.0
    else:
        value = 0.0
    scale = tf.constant(value)
    sess = tf.Session()
    """,
    # the loaded branch belongs to another ``if`` than the last binding
    """
    import numpy as np
    import tensorflow as tf

    def build(path, fresh):
        if fresh:
            w = np.load(path)
            print(w.shape)
        if path:
            w = 0.5
        else:
            w = 1.5
        return tf.Variable(w)

    x = tf.placeholder(tf.float32)
    """,
], ids=["scalars-in-both-branches", "another-if"])
def test_gcb_branch_near_misses(src: str) -> None:
    assert _scan(src, "GCB") == []


def test_gcb_housing_matrix_in_notebook_cells() -> None:
    """A TF1 notebook: the housing data from ``fetch_california_housing`` stacked with a bias
    column by ``np.c_`` (raw, then scaled) becomes a graph constant; a scalar constant does
    not."""
    cells = [
        ["import numpy as np\n", "import tensorflow as tf\n",
         "from sklearn.datasets import fetch_california_housing\n",
         "from sklearn.preprocessing import StandardScaler\n"],
        ["w = tf.constant(3)\n", "with tf.Session() as sess:\n", "    print(w.eval())\n"],
        ["housing = fetch_california_housing()\n", "m, n = housing.data.shape\n",
         "with_bias = np.c_[np.ones((m, 1)), housing.data]\n",
         "X = tf.constant(with_bias, dtype=tf.float32, name='X')\n"],
        ["scaler = StandardScaler()\n", "scaled = scaler.fit_transform(housing.data)\n",
         "scaled_with_bias = np.c_[np.ones((m, 1)), scaled]\n"],
        ["X = tf.constant(scaled_with_bias, dtype=tf.float32, name='X')\n",
         "theta = tf.Variable(tf.random_uniform([n + 1, 1], -1.0, 1.0))\n"],
    ]
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": src} for src in cells],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    res = scan_bytes(json.dumps(nb).encode(), "housing.ipynb", ["GCB"])
    assert res.error is None
    assert sorted((f.cell, f.line) for f in res.findings) == [(3, 4), (5, 1)]
    assert all("fetch_california_housing" in f.message for f in res.findings)


# -- GCB: a corpus reader's data-named parameter ------------------------------------------------

READER = textwrap.dedent("""
    import collections
    import tensorflow as tf

    def _read_words(filename):
        with tf.gfile.GFile(filename, "r") as f:
            return f.read().replace("\\n", "<eos>").split()

    def raw_data(path):
        words = _read_words(path)
        vocab = dict((w, i) for i, (w, _) in enumerate(collections.Counter(words).items()))
        return [vocab[w] for w in words]

    def producer(raw_data, batch_size, num_steps, name=None):
        with tf.name_scope(name, "Producer", [raw_data, batch_size, num_steps]):
            raw_data = tf.convert_to_tensor(raw_data, name="raw_data", dtype=tf.int32)
            i = tf.train.range_input_producer(10, shuffle=False).dequeue()
            return tf.strided_slice(raw_data, [i], [i + num_steps]), i
    """).lstrip()


def test_gcb_corpus_passed_in_to_a_reader_module_producer() -> None:
    (f,) = _scan(READER, "GCB")
    assert (f.line, f.variant) == (15, "graph-constant")
    assert f.confidence == 0.6
    assert "producer() is called from another module" in f.via
    assert "parameter raw_data of producer() (data passed in)" in f.message


@pytest.mark.parametrize("src", [
    # the module reads nothing itself
    READER.replace('with tf.gfile.GFile(filename, "r") as f:\n        return f.read()',
                   'if filename:\n        return "a b c"'),
    # a parameter named like an option, not a data set
    READER.replace("def producer(raw_data,", "def producer(data_format, raw,").replace(
        "tf.convert_to_tensor(raw_data,", "tf.convert_to_tensor(data_format,"),
    # the same module calls it with a literal list: traced, and nothing is loaded
    READER + "\nx, i = producer([1, 2, 3, 4], 1, 2)\n",
], ids=["no-reader", "option-name", "called-here-with-a-literal"])
def test_gcb_data_parameter_near_misses(src: str) -> None:
    assert _scan(src, "GCB") == []


# -- IMR: a build_fn redefined before its search -------------------------------------------------

REDEFINED = textwrap.dedent("""
    import keras
    from keras.models import Sequential
    from keras.layers import Dense
    from keras.wrappers.scikit_learn import KerasClassifier
    from sklearn.model_selection import GridSearchCV, cross_val_score

    def build_classifier():
        model = Sequential([Dense(6), Dense(1)])
        model.compile(optimizer="adam", loss="binary_crossentropy")
        return model

    clf = KerasClassifier(build_fn=build_classifier, batch_size=10, epochs=100)
    scores = cross_val_score(estimator=clf, X=x, y=y, cv=10)

    def build_classifier(optimizer):
        model = Sequential([Dense(6), Dense(1)])
        model.compile(optimizer=optimizer, loss="binary_crossentropy")
        return model

    clf = KerasClassifier(build_fn=build_classifier)
    search = GridSearchCV(clf, {"optimizer": ["adam", "rmsprop"]}, cv=10)
    search.fit(x, y)
    """).lstrip()


def test_imr_each_redefined_build_fn_is_the_one_its_wrapper_gets() -> None:
    assert _lines(REDEFINED, "IMR") == [(8, "build-fn"), (16, "build-fn")]


@pytest.mark.parametrize(("src", "expected"), [
    # the redefinition releases the previous model: only the first search leaks
    (REDEFINED.replace("def build_classifier(optimizer):\n",
                       "def build_classifier(optimizer):\n    keras.backend.clear_session()\n"),
     [(8, "build-fn")]),
    # no wrapper after the redefinition: the second definition is never searched
    (REDEFINED.replace("clf = KerasClassifier(build_fn=build_classifier)\n", "")
     .replace("search = GridSearchCV(clf,", "search = GridSearchCV(other,"),
     [(8, "build-fn")]),
    # the first definition clears the session and is the one searched
    (REDEFINED.replace("def build_classifier():\n",
                       "def build_classifier():\n    keras.backend.clear_session()\n")
     .replace("clf = KerasClassifier(build_fn=build_classifier)\n", "")
     .replace("search = GridSearchCV(clf,", "search = GridSearchCV(other,"), []),
], ids=["second-clears", "second-never-searched", "first-clears"])
def test_imr_redefined_build_fn_near_misses(src: str, expected: list) -> None:
    assert _lines(src, "IMR") == expected
