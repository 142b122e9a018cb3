"""GCB: Graph-Constant Bottleneck."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import libcst as cst

from leakwatt.mining.rules.api import Invalid, Report, Rule, Seeds, Valid, dedent
from leakwatt.mining.rules.context import ModuleContext
from leakwatt.mining.rules.index import AssignEvent, CallSite, FuncInfo
from leakwatt.mining.rules.kit import (
    INFERENCE_FUNCS,
    call_bindings,
    call_name,
    called_per_iteration,
    is_param,
    reached_from,
)
from leakwatt.mining.rules.names import canonical, dotted
from leakwatt.mining.rules.uge import fresh_graph_item, graph_module
from leakwatt.mining.rules.values import is_tf_function

#: Calls whose result is data read from a file or a dataset loader (last name, any receiver).
_LOADERS = frozenset({"loadtxt", "genfromtxt", "fromfile", "load_npz", "read_csv", "read_table",
                      "read_excel", "read_parquet", "read_hdf", "read_pickle", "read_json",
                      "read_feather", "read_sql", "load_data", "load_svmlight_file",
                      "fetch_openml", "fetch_mldata", "fetch_20newsgroups", "fetch_lfw_people",
                      "fetch_olivetti_faces", "loadmat",
                      # scikit-learn's downloaded data sets (20k to 800k rows)
                      "fetch_california_housing", "fetch_covtype", "fetch_kddcup99",
                      "fetch_rcv1", "fetch_lfw_pairs", "fetch_species_distributions"})
#: ``load``/``loads`` count on these receivers only (``np.load``, ``pickle.load``), not
#: ``tfds.load`` or ``json.load`` (a configuration file).
_LOAD_RECEIVERS = frozenset({"np", "numpy", "pickle", "joblib", "cPickle", "pkl", "cp",
                             "_pickle", "dill", "hickle", "hkl"})
#: Qualified loaders (through any import alias): pickles, NumPy files, MATLAB files (pretrained
#: weights shipped as ``.mat``), HDF5 files (read by subscripting the ``File``).
_LOAD_QNS = frozenset({"pickle.load", "pickle.loads", "_pickle.load", "cPickle.load",
                       "six.moves.cPickle.load", "joblib.load", "dill.load", "numpy.load",
                       "scipy.io.loadmat", "h5py.File", "hickle.load"})
#: Methods returning a model's or layer's trained weights as NumPy arrays.
_WEIGHTS = frozenset({"get_weights"})
#: NumPy constructors whose first argument is a shape.
_SHAPED = frozenset({"zeros", "ones", "empty", "full", "rand", "randn", "random", "normal",
                     "uniform", "standard_normal", "randint"})
#: Elements from which a literal shape counts as large (one mebi-element, 4-8 MiB): a smaller
#: literal shape, like a literal list, is a small constant, not a bottleneck.
LARGE = 1 << 20
#: Calls and methods that keep an array's data origin (a copy, a view, a conversion, a field
#: of a loaded dict: ``save.get("x")``, ``np.load(p).item()``).
_KEEPS = frozenset({"array", "asarray", "float32", "float64", "int32", "int64", "astype",
                    "reshape", "squeeze", "expand_dims", "transpose", "to_numpy", "copy",
                    "flatten", "ravel", "concatenate", "stack", "vstack", "hstack", "asmatrix",
                    "as_matrix", "get_values", "todense", "toarray", "T", "item", "get",
                    "values", "items", "asfarray", "ascontiguousarray",
                    # Python containers of the same data (``dict(features)``, ``list(ids)``)
                    "dict", "list", "tuple",
                    # a fitted scaler's output (``scaler.fit_transform(housing.data)``)
                    "fit_transform", "transform",
                    # pandas row and column selections of a whole table
                    "reindex", "head", "tail", "dropna", "fillna", "drop", "sort_values",
                    "sort_index", "reset_index",
                    # scikit-learn and Keras helpers returning (parts of) the same data
                    "train_test_split", "shuffle", "to_categorical", "normalize", "scale",
                    "minmax_scale"})
#: NumPy's index tricks that stack arrays: ``np.c_[ones, data]`` holds ``data``.
_STACKERS = frozenset({"numpy.c_", "numpy.r_"})
#: Last names of the data-origin calls and of the calls that make a module graph-mode code
#: (``uge.graph_module``): the pre-filter keeps them beside an embedding call. ``GFile``: a
#: TF1 reader of a text corpus (see :func:`_reads_files`).
_ORIGIN_WORDS = _LOADERS | _WEIGHTS | frozenset({
    "load", "loads", "File", "Session", "InteractiveSession", "placeholder",
    "placeholder_with_default", "disable_eager_execution", "disable_v2_behavior", "get_session",
    "get_default_session", "variable_scope", "global_variables_initializer", "Saver", "GFile",
    "FastGFile"})
#: Calls that embed a value in the graph -> the keyword naming that value.
_EMBEDDERS = {"tensorflow.constant": "value", "tensorflow.convert_to_tensor": "value",
              "tensorflow.Variable": "initial_value", "tensorflow.constant_initializer": "value",
              "tensorflow.get_variable": "initializer",
              # TF1 queue producers over in-memory arrays (``[images, labels]``)
              "tensorflow.train.slice_input_producer": "tensor_list",
              "tensorflow.train.input_producer": "input_tensor"}
#: Embedding calls that hold a whole array only in a graph (TF1 code, an Estimator
#: ``input_fn``, a ``tf.function``): ``tf.data.Dataset.from_tensor_slices(arrays)`` (the
#: arrays become ``Const`` nodes of the input graph) and ``tf.one_hot(labels, n)`` over a whole
#: label array. Last name -> the keyword naming the value. In eager code they copy the array
#: once into an eager tensor, and a module that shows neither mode is not assumed to be graph
#: code for them.
_GRAPH_EMBEDDERS = {"from_tensor_slices": "tensors", "from_tensors": "tensors",
                    "one_hot": "indices"}
#: Text that makes a module worth seeding the graph-only embedders for (the pre-filter's
#: ``calls_if`` markers): TF1 sessions and switches, Estimator input functions.
_GRAPH_MARKERS = ("Session", "placeholder(", "input_fn", "disable_eager_execution",
                  "disable_v2_behavior")


class GraphConstantBottleneck(Rule):
    """A NumPy array loaded from data embedded in the graph as a constant.

    ``tf.constant(arr)`` (or ``tf.convert_to_tensor(arr)``, ``tf.Variable(arr)``,
    ``tf.constant_initializer(arr)``, ``tf.get_variable(..., initializer=arr)``,
    ``tf.train.slice_input_producer([arr, ...])``) in TF1 graph-mode code (the module builds a
    ``Session`` or a ``placeholder``, disables eager execution, calls a TF1 graph-building API
    such as ``tf.variable_scope``,
    ``tf.get_variable`` or ``tf.train.Saver`` (a model module whose session lives in the
    script importing it) or a TF1-only API (``tf.random_normal``, ``tf.train.AdamOptimizer``,
    the queue input producers such as ``tf.train.range_input_producer`` ...;
    also spelled through a star import of a project module that imports TensorFlow as ``tf``),
    or the call sits in a ``with tf.Graph().as_default():`` / ``with graph.as_default():`` block
    or in an Estimator input function (handed over as ``input_fn=``, by name or through a
    lambda, and what it calls)) or inside a ``@tf.function`` copies the whole array into
    a ``Const`` node of the graph: the data is held twice, the ``GraphDef`` can exceed its 2 GiB
    limit, and a ``tf.function`` holds one copy per trace.
    ``tf.data.Dataset.from_tensor_slices(arrays)`` and ``tf.one_hot(labels, depth)`` over a
    whole array do the same there (not in eager code, where they make one eager copy). A
    ``@tf.function`` that reads a module-level array does the same: the array is captured as a
    constant of every trace.

    The array must have a *data origin*: a pickle (``pickle.load``, ``joblib.load``; the
    notMNIST course pattern unpacks arrays from a pickled dict), ``np.load``/``np.loadtxt``, a
    MATLAB file (``scipy.io.loadmat``: pretrained weights embedded per layer), an HDF5 file
    (``h5py.File``), a table (``pd.read_csv(...).values``, ``np.asarray(df["col"])``), a
    dataset's ``load_data()`` or a scikit-learn ``fetch_*`` data set, a model's trained weights
    (``get_weights()``), or a NumPy constructor with a literal shape of at least 2^20 elements.
    It is followed through assignments (``with``/``for`` bindings and unpacking too, and each
    branch of an ``if``/``else`` that binds the name: ``value = self.data_dict[name][0]`` or
    else a fresh initial value), subscripts and slices, ``np.c_[...]``/``np.r_[...]``,
    ``.astype``/``.reshape``/``np.array``/``.item()``/``.get()``, ``dict(...)``/``list(...)``,
    a scaler's ``fit_transform``/``transform``, ``train_test_split``, ``to_categorical``, pandas
    row selections (``reindex``, ``head``, ``dropna`` ...), arithmetic and comparisons (a
    one-hot mask ``np.arange(10) == labels[:, None]``), an array indexed by a loaded one
    (``np.eye(10)[labels]``), dict and tuple literals (``({"X": X}, y)``), ``self.attr``
    stores, the return values of same-module functions (``train, labels = reformat(train,
    labels)``) and function parameters (the arguments the same-module call sites pass: the
    finding's ``via`` says so). The message names the origin, with a size estimate when a literal
    shape gives one. Three cases are reported with lower confidence, the ``via`` saying why: a
    *loader helper* that embeds loaded data on each of its calls (``def conv(x, i): return
    tf.nn.conv2d(x, tf.constant(layers[i][0][0][0][0]), ...)`` called per layer, or called
    from a loop) in a module that shows neither graph mode nor eager execution (its session
    lives in the script importing it; a module with ``GradientTape``, ``tf.function``,
    ``.numpy()`` or ``tf.config`` is eager); weights handed in by another module: a
    parameter named like weights (``parameters``, ``weights``, ``*_weights``, ``pretrained*``;
    not ``params``, often hyper-parameters) of a function no same-module code calls, when the
    function is inference-named (``def predict(X, parameters): W1 =
    tf.convert_to_tensor(parameters["W1"])``, every call embedding them again) or the module
    reads data itself (``net_preloaded(weights, image)`` beside the ``load_net()`` that
    returns ``scipy.io.loadmat`` layers to the calling script); and a data set handed in by
    another module: a parameter named like one (``data``, ``raw_data``, ``dataset``,
    ``train_images``, ``x_train`` ...; not ``data_format`` or ``input_data``) of a function no
    same-module code calls, in a module that reads data itself, also a text corpus through
    ``tf.gfile.GFile`` (``ptb_producer(raw_data, ...)`` beside the reader that turns the corpus
    into word ids). Not reported: a
    small literal (``tf.constant([1, 2, 3])``, ``np.zeros((3, 3))``), a ``tf.constant(arr)`` in
    eager code outside any graph or ``tf.function``, arrays passed to a ``tf.function`` as
    arguments, values read from a JSON or text configuration. The finding is at
    ``tf.constant(...)``, or for a closure at the first statement of the ``tf.function`` that
    reads the array.

    No autofix: the remedy (feed through a ``placeholder``/``tf.data`` pipeline, or pass the
    array as an argument) changes the program's structure.
    """

    CODE = "GCB"
    NAME = "Graph-Constant Bottleneck"
    MESSAGE = ("Large data array embedded in the graph as a constant: the array is copied into "
               "the GraphDef (held twice, 2 GiB graph limit, once per tf.function trace). Feed "
               "it through a placeholder or a tf.data pipeline, or pass it to the tf.function "
               "as an argument")
    #: The embedding calls; where one appears, the calls that load data too (the origin may sit
    #: in a statement the embedding one does not name: ``self.w = np.load(p)`` in ``__init__``).
    #: The graph-only embedders (``from_tensor_slices``, ``one_hot``: common in eager code, as
    #: in Keras's own sources) only where a TF1 or Estimator marker appears.
    SEEDS = Seeds(api=frozenset({"constant", "convert_to_tensor", "function", "Variable",
                                 "constant_initializer", "get_variable", "slice_input_producer",
                                 "input_producer"}),
                  calls_if={**{marker: _ORIGIN_WORDS for marker in (
                      "constant", "convert_to_tensor", "Variable", "get_variable",
                      "input_producer")},
                      **{marker: _ORIGIN_WORDS | frozenset(_GRAPH_EMBEDDERS)
                         for marker in _GRAPH_MARKERS}})
    VARIANTS = {
        "graph-constant": "tf.constant(arr) of loaded data in TF1 graph-mode code",
        "function-constant": "tf.constant(arr) of loaded data inside a tf.function",
        "function-closure": "a tf.function reads a module-level array of loaded data",
    }
    VALID = [
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf
            x_train = np.load("x.npy")
            x = tf.placeholder(tf.float32, [None, 784])
            with tf.Session() as sess:
                sess.run(train_op, feed_dict={x: x_train})
            """)),
        Valid(dedent("""
            import tensorflow as tf
            mask = tf.constant([[1, 0], [0, 1]], dtype=tf.float32)
            with tf.Session() as sess:
                sess.run(mask)
            """)),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf
            data = np.load("x.npy")
            x = tf.constant(data)
            print(tf.reduce_mean(x))
            """)),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf
            eye = tf.constant(np.zeros((3, 3)))
            sess = tf.Session()
            sess.run(eye)
            """)),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf
            data = np.load("x.npy")

            @tf.function
            def step(x):
                return tf.reduce_sum(x)

            step(data)
            """)),
        Valid(dedent("""
            import json
            import numpy as np
            import tensorflow as tf
            with open("config.json") as fh:
                cfg = json.load(fh)
            graph = tf.Graph()
            with graph.as_default():
                scale = tf.constant(cfg["scale"])
                eye = tf.constant(np.array([[1.0, 0.0], [0.0, 1.0]]))
                w = tf.Variable(tf.truncated_normal([784, 10]))
            """)),
        Valid(dedent("""
            import tensorflow as tf

            def build(values):
                with tf.Graph().as_default() as g:
                    table = tf.constant(values)
                return g

            build([0.5, 1.0, 2.0])
            """)),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf
            weights = np.load("w.npy")
            w = tf.Variable(weights)
            print(tf.reduce_sum(w))
            """)),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf

            weights = np.load("w.npz")

            def dense(x, name):
                return tf.matmul(x, tf.constant(weights[name]))

            h = dense(tf.ones((1, 4)), "w1")
            print(dense(h, "w2").numpy())
            """)),
        Valid(dedent("""
            import tensorflow as tf

            def predict(X, threshold):
                t = tf.constant(threshold)
                x = tf.placeholder(tf.float32, [None, 4])
                with tf.Session() as sess:
                    return sess.run(tf.greater(x, t), feed_dict={x: X})
            """)),
        Valid(dedent("""
            import tensorflow as tf

            def _conv(x, kernels):
                return tf.nn.conv2d(x, tf.constant(kernels), strides=(1, 1, 1, 1), padding="SAME")

            def net_preloaded(weights, image):
                for w in weights:
                    image = _conv(image, w)
                return image
            """)),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf

            features = np.load("features.npy")
            targets = np.load("targets.npy")
            ds = tf.data.Dataset.from_tensor_slices((features, targets)).shuffle(1000).batch(32)
            hot = tf.one_hot(targets, 10)
            model = tf.keras.Sequential([tf.keras.layers.Dense(10)])
            model.fit(ds, epochs=3)
            """)),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf

            ids = tf.one_hot(np.arange(10), 10)
            ds = tf.data.Dataset.from_tensor_slices(np.arange(10))
            with tf.Session() as sess:
                sess.run(ids)
            """)),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf

            value = np.load("w.npy")
            if value.ndim > 1:
                value = 1.0
            else:
                value = 0.0
            scale = tf.constant(value)
            sess = tf.Session()
            """)),
    ]
    INVALID = [
        Invalid(dedent("""
            import numpy as np
            import tensorflow as tf
            x_train = np.load("x_train.npy").astype(np.float32)
            x = tf.constant(x_train)
            with tf.Session() as sess:
                sess.run(train_op)
            """), line=4, variant="graph-constant"),
        Invalid(dedent("""
            import pandas as pd
            import tensorflow.compat.v1 as tf
            tf.disable_eager_execution()
            df = pd.read_csv("train.csv")
            features = tf.convert_to_tensor(df.values[:, 1:] / 255.0)
            """), line=5, variant="graph-constant"),
        Invalid(dedent("""
            import tensorflow as tf
            (x_train, y_train), _ = tf.keras.datasets.mnist.load_data()

            @tf.function
            def loss(w):
                return tf.reduce_mean(tf.matmul(x_train.reshape(-1, 784), w))
            """), line=6, variant="function-closure"),
        Invalid(dedent("""
            import numpy as np
            import tensorflow as tf
            table = np.random.rand(4096, 1024)

            @tf.function
            def lookup(i):
                t = tf.constant(table)
                return tf.gather(t, i)
            """), line=7, variant="function-constant"),
        Invalid(dedent("""
            import numpy as np
            import tensorflow as tf
            g = tf.Graph()
            with g.as_default():
                data = tf.constant(np.loadtxt("big.txt"))
            """), line=5, variant="graph-constant"),
        Invalid(dedent("""
            import pickle
            import numpy as np
            import tensorflow as tf

            with open("notMNIST.pickle", "rb") as f:
                save = pickle.load(f)
                train_dataset = save["train_dataset"]
                train_labels = save["train_labels"]

            def reformat(dataset, labels):
                dataset = dataset.reshape((-1, 784)).astype(np.float32)
                labels = (np.arange(10) == labels[:, None]).astype(np.float32)
                return dataset, labels

            train_dataset, train_labels = reformat(train_dataset, train_labels)
            graph = tf.Graph()
            with graph.as_default():
                tf_train_dataset = tf.constant(train_dataset[:10000, :])
            """), line=18, variant="graph-constant"),
        Invalid(dedent("""
            import scipy.io
            import tensorflow as tf

            weights = scipy.io.loadmat("vgg19.mat")["layers"][0]

            def conv(x, i):
                w = weights[i][0][0][0][0][0]
                return tf.nn.conv2d(x, tf.constant(w), strides=[1, 1, 1, 1], padding="SAME")

            x = tf.placeholder(tf.float32, [1, 224, 224, 3])
            h = conv(x, 0)
            """), line=8, variant="graph-constant"),
        Invalid(dedent("""
            import numpy as np
            import tensorflow.compat.v1 as tf
            tf.disable_eager_execution()

            class Predictor:
                def __init__(self, path):
                    self.w = np.load(path)

                def predict(self, x):
                    w = tf.convert_to_tensor(self.w)
                    return tf.matmul(x, w)
            """), line=10, variant="graph-constant"),
        Invalid(dedent("""
            import pickle
            import tensorflow as tf

            def build(data):
                with tf.Graph().as_default() as g:
                    init = tf.Variable(data, trainable=False)
                return g

            with open("d.pkl", "rb") as fh:
                arrays = pickle.load(fh)
            build(arrays["x"])
            """), line=6, variant="graph-constant"),
        Invalid(dedent("""
            import scipy.io
            import tensorflow as tf

            def load_vgg(path, image):
                layers = scipy.io.loadmat(path)["layers"][0]

                def conv(x, i):
                    kernel, bias = layers[i][0][0][0][0]
                    return tf.nn.conv2d(x, tf.constant(kernel), [1, 1, 1, 1], "SAME") + bias

                h = conv(image, 0)
                h = conv(h, 2)
                return conv(h, 5)
            """), line=9, variant="graph-constant"),
        Invalid(dedent("""
            import numpy as np
            import scipy.io
            import tensorflow as tf

            LAYERS = ("conv1_1", "relu1_1", "conv1_2", "relu1_2")

            def load_net(path):
                data = scipy.io.loadmat(path)
                return data["layers"][0], np.mean(data["normalization"][0][0][0], axis=(0, 1))

            def _conv(x, kernels, bias):
                out = tf.nn.conv2d(x, tf.constant(kernels), strides=(1, 1, 1, 1), padding="SAME")
                return tf.nn.bias_add(out, bias)

            def net_preloaded(weights, image):
                current = image
                for i, name in enumerate(LAYERS):
                    if name.startswith("conv"):
                        kernels, bias = weights[i][0][0][0][0]
                        current = _conv(current, np.transpose(kernels, (1, 0, 2, 3)), bias.reshape(-1))
                    else:
                        current = tf.nn.relu(current)
                return current
            """), line=12, variant="graph-constant"),
        Invalid(dedent("""
            import tensorflow as tf

            def predict(X, parameters):
                W1 = tf.convert_to_tensor(parameters["W1"])
                b1 = tf.convert_to_tensor(parameters["b1"])
                x = tf.placeholder("float", [12288, 1])
                z1 = tf.add(tf.matmul(W1, x), b1)
                sess = tf.Session()
                return sess.run(tf.argmax(z1), feed_dict={x: X})
            """), line=4, variant="graph-constant"),
        Invalid(dedent("""
            import numpy as np
            import tensorflow as tf

            table = np.load("embeddings.npy")
            ids = tf.constant(table)
            loss = tf.reduce_mean(tf.random_normal([8]))
            train_op = tf.train.AdamOptimizer(1e-3).minimize(loss)
            """), line=5, variant="graph-constant"),
        Invalid(dedent("""
            import numpy as np
            import tensorflow as tf

            def make_input(features, labels):
                return tf.data.Dataset.from_tensor_slices((dict(features), labels)).batch(32)

            images = np.load("images.npy")
            targets = np.load("targets.npy")
            estimator = tf.estimator.DNNClassifier(hidden_units=[64], n_classes=10)
            estimator.train(input_fn=lambda: make_input({"pixels": images}, targets))
            """), line=5, variant="graph-constant"),
        Invalid(dedent("""
            import tensorflow as tf
            from keras.datasets import cifar10

            (x_train, y_train), _ = cifar10.load_data()
            labels = tf.one_hot(y_train, 10)
            with tf.Session() as sess:
                sess.run(labels)
            """), line=5, variant="graph-constant"),
        Invalid(dedent("""
            import numpy as np
            import tensorflow as tf

            class Net:
                def __init__(self, path):
                    self.params = np.load(path, allow_pickle=True).item()

                def var(self, name, shape):
                    if name in self.params:
                        init = self.params[name]
                    else:
                        init = tf.truncated_normal(shape, stddev=0.01)
                    return tf.Variable(init, name=name)
            """), line=13, variant="graph-constant"),
        Invalid(dedent("""
            import numpy as np
            import tensorflow as tf
            from sklearn.datasets import fetch_california_housing
            from sklearn.preprocessing import StandardScaler

            housing = fetch_california_housing()
            scaled = StandardScaler().fit_transform(housing.data)
            X = tf.constant(np.c_[np.ones((len(scaled), 1)), scaled], dtype=tf.float32)
            with tf.Session() as sess:
                print(X.eval().shape)
            """), line=8, variant="graph-constant"),
        Invalid(dedent("""
            import tensorflow as tf

            def read_ids(path, vocab):
                with tf.gfile.GFile(path, "r") as f:
                    return [vocab[w] for w in f.read().split() if w in vocab]

            def producer(raw_data, batch_size, num_steps):
                data = tf.convert_to_tensor(raw_data, dtype=tf.int32)
                i = tf.train.range_input_producer(10, shuffle=False).dequeue()
                return tf.reshape(data[: batch_size * num_steps], [batch_size, num_steps]), i
            """), line=8, variant="graph-constant"),
        Invalid(dedent("""
            from keras.datasets import cifar10
            from resnet import *

            (x_train, y_train), _ = cifar10.load_data()
            x = tf.placeholder(tf.float32, [None, 32, 32, 3])
            y_train_hot = tf.one_hot(y_train, 10)
            """), line=6, variant="graph-constant"),
    ]

    def check(self, ctx: ModuleContext) -> Iterable[Report]:
        graph = None
        origins = _Origins(ctx)
        guesses: _Origins | None = None
        for site in ctx.calls:
            embedded = _embedded_value(ctx, site)
            if embedded is None:
                continue
            arg, graph_only = embedded
            fn = site.func
            traced = _in_tf_function(fn)
            assumed = False
            if not traced:
                if graph is None:
                    graph = ctx.analysis(_graph_code)
                under_graph = graph or any(
                    fresh_graph_item(ctx, w, fn) for w in site.withs
                    if isinstance(w, cst.BaseExpression)) or id(fn) in ctx.analysis(_input_fns)
                if not under_graph:
                    # a loader helper called per layer, in a module that shows neither mode
                    # (its session lives in the script importing it)
                    if graph_only or id(fn) not in ctx.analysis(_called_repeatedly) or \
                            ctx.analysis(_eager_code):
                        continue
                    assumed = True
            origin = origins.of(arg, fn, site.seq)
            if origin is None:
                if guesses is None:
                    guesses = _Origins(ctx, guess=True)
                origin = guesses.of(arg, fn, site.seq)
            if origin is None:
                continue
            if assumed:
                origin = origin.through(
                    f"graph mode assumed: {fn.qualname}() embeds it on each of its calls (per "
                    f"layer or input) and the module uses no eager-only API")
            yield Report(node=site.node,
                         variant="function-constant" if traced else "graph-constant",
                         confidence=0.6 if assumed or origin.guess else (
                             0.75 if not origin.via else 0.7),
                         message=_message(origin), function=fn.qualname, stmt=site.stmt,
                         via=origin.via)
        yield from self._closures(ctx, origins)

    def _closures(self, ctx: ModuleContext, origins: _Origins) -> Iterator[Report]:
        module = ctx.module_func
        for fn in ctx.functions:
            if fn.node is None or not is_tf_function(fn):
                continue
            local = {ev.target.value for ev in fn.assigns if isinstance(ev.target, cst.Name)}
            for stmt in fn.node.body.body:
                hit = _first_global_read(stmt, fn, local, module, origins)
                if hit is not None:
                    name, origin = hit
                    yield Report(node=name, variant="function-closure", confidence=0.7,
                                 message=_message(origin), function=fn.qualname, stmt=stmt,
                                 via=origin.via)
                    break


#: Last names of the ``_EMBEDDERS`` (a cheap first test, before a star import's fallback).
_EMBEDDER_NAMES = frozenset(qn.rsplit(".", 1)[-1] for qn in _EMBEDDERS)


def _embedded_value(ctx: ModuleContext, site: CallSite
                    ) -> tuple[cst.BaseExpression, bool] | None:
    """The value a call embeds in the graph, and whether the call embeds it only in a graph
    (``_GRAPH_EMBEDDERS``): ``tf.constant(v)``, ``tf.convert_to_tensor(v)``, ``tf.Variable(v)``
    / ``tf.Variable(initial_value=v)``, ``tf.constant_initializer(v)``,
    ``tf.get_variable(..., initializer=v)``, ``tf.data.Dataset.from_tensor_slices(v)``,
    ``tf.one_hot(v, depth)``."""
    qn = site.qn
    if qn is None:
        return None
    keyword = _EMBEDDERS.get(qn)
    graph_only = False
    if keyword is None:
        last = qn.rsplit(".", 1)[-1]
        if last not in _EMBEDDER_NAMES and last not in _GRAPH_EMBEDDERS:
            return None
        qn = _tf_qn(ctx, qn)
        keyword = _EMBEDDERS.get(qn)
        if keyword is None:
            if not (qn == "tensorflow.one_hot" or (qn.startswith("tensorflow.") and qn.endswith(
                    (".Dataset.from_tensor_slices", ".Dataset.from_tensors")))):
                return None
            keyword, graph_only = _GRAPH_EMBEDDERS[last], True
    args = site.node.args
    for a in args:
        if a.keyword is not None and a.keyword.value == keyword:
            return a.value, graph_only
    if qn == "tensorflow.get_variable":
        return None  # its first positional argument is the variable's name
    positional = [a for a in args if a.keyword is None and not a.star]
    return (positional[0].value, graph_only) if positional else None


def _tf_qn(ctx: ModuleContext, qn: str) -> str:
    """``tf.x`` in a module that binds ``tf`` only through a star import of a project module
    (``from ResNet50 import *``, which imports TensorFlow as ``tf`` itself): the resolver reads
    it as ``ResNet50.tf.x``; this is ``tensorflow.x``. Other names are returned as they are."""
    names = ctx.names
    if not names.star_modules or qn.startswith("tensorflow.") or "tf" in names.aliases:
        return qn
    for star in names.star_modules:
        if qn.startswith(star + ".tf."):
            return canonical("tensorflow." + qn[len(star) + 4:])
    return qn


def _input_fns(ctx: ModuleContext) -> frozenset[int]:
    """Ids of the functions an Estimator runs to build its input graph (a graph even in TF2
    code): handed over as ``input_fn=`` (by name, through a lambda calling one, or a name
    bound to such a lambda), and the same-module functions they call. A module analysis."""
    seeds: list[int] = []
    for site in ctx.calls:
        for a in site.node.args:
            if a.keyword is not None and a.keyword.value == "input_fn":
                target = _input_target(ctx, a.value, site.func, site.seq, 0)
                if target is not None:
                    seeds.append(id(target))
    return frozenset(reached_from(ctx, seeds)) if seeds else frozenset()


def _input_target(ctx: ModuleContext, expr: cst.BaseExpression, fn: FuncInfo, seq: int,
                  depth: int) -> FuncInfo | None:
    if isinstance(expr, cst.Lambda):
        body = expr.body
        return ctx.local_function_by_ref(body.func, fn) if isinstance(body, cst.Call) else None
    target = ctx.local_function_by_ref(expr, fn)
    if target is None and isinstance(expr, cst.Name) and depth < 2:
        ev = ctx.last_assign(fn, expr.value, seq)
        if ev is not None and ev.kind == "assign" and ev.value is not None:
            return _input_target(ctx, ev.value, ev.func, ev.seq, depth + 1)
    return target


def _message(origin: _Origin) -> str:
    size = f", {_human(origin.size)}" if origin.size else ""
    return f"{GraphConstantBottleneck.MESSAGE} (data: {origin.what}{size})"


def _human(elements: int) -> str:
    """``4194304`` -> ``about 4.2M elements (16 MiB as float32)``."""
    mib = elements * 4 / (1 << 20)
    count = f"{elements / 1e6:.1f}M" if elements >= 10**6 else f"{elements / 1e3:.0f}k"
    return f"about {count} elements ({mib:.0f} MiB as float32)"


def _in_tf_function(fn: FuncInfo | None) -> bool:
    while fn is not None and fn.node is not None:
        if is_tf_function(fn):
            return True
        fn = fn.parent
    return False


def _first_global_read(stmt: cst.CSTNode, fn: FuncInfo, local: set[str], module: FuncInfo,
                       origins: _Origins) -> tuple[cst.Name, _Origin] | None:
    found: list[tuple[cst.Name, _Origin]] = []

    class _Reads(cst.CSTVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            if found or n.value in local or is_param(fn, n.value):
                return
            origin = origins.of(n, module, 10**9)
            if origin is not None:
                found.append((n, origin))

        def visit_Attribute(self, a: cst.Attribute) -> bool:
            a.value.visit(self)
            return False

        def visit_Arg(self, a: cst.Arg) -> bool:
            a.value.visit(self)
            return False

        def visit_FunctionDef(self, f: cst.FunctionDef) -> bool:
            return False

        def visit_Lambda(self, f: cst.Lambda) -> bool:
            return False

    stmt.visit(_Reads())
    return found[0] if found else None


# --------------------------------------------------------------------------------------------
# Data origins: where an embedded array comes from
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Origin:
    """An array's data origin: what it is (``pickle.load``, ``np.zeros((4096, 1024))``), its
    size in elements when a literal shape tells it, and how it was reached when that went
    through a function's parameter or return value (the finding's ``via``)."""

    what: str
    size: int = 0
    via: str = ""
    #: read from a name rather than traced to a load (``predict(X, parameters)``)
    guess: bool = False

    def through(self, via: str) -> _Origin:
        return _Origin(self.what, self.size, f"{via}; {self.via}" if self.via else via,
                       self.guess)


_MAX_DEPTH = 32  # (subscript and attribute chains cost no depth: ``w[i][0][0][0]``)


class _Origins:
    """Data origins of expressions in one module, followed through assignments (also ``with``
    and ``for`` bindings and unpacking), subscripts and slices, attributes, arithmetic, copies
    and conversions (``_KEEPS``), ``self.attr`` stores, the return values of same-module
    functions (their parameters bound to the call's arguments) and a function's parameters
    (the arguments its same-module call sites pass)."""

    def __init__(self, ctx: ModuleContext, guess: bool = False) -> None:
        self.ctx = ctx
        #: also read weights-named parameters nobody here passes data to as weights (see
        #: :meth:`_param`)
        self.guess = guess
        self._busy: set[tuple[int, int, int]] = set()
        self._memo: dict[tuple[int, int, int], _Origin | None] = {}
        self._callers: dict[int, list[CallSite]] | None = None
        #: per function: the blocks that are branches of an ``if`` chain (``_if_branches``)
        self._branches: dict[int, dict[int, tuple[int, int]]] = {}

    def of(self, expr: cst.BaseExpression, fn: FuncInfo, seq: int) -> _Origin | None:
        return self._of(expr, fn, seq, 0, {})

    def _of(self, expr: cst.BaseExpression, fn: FuncInfo, seq: int, depth: int,
            binds: dict[tuple[int, str], tuple[cst.BaseExpression, FuncInfo, int]]
            ) -> _Origin | None:
        if depth > _MAX_DEPTH:
            return None
        key = (id(expr), id(fn), seq)
        if not binds and key in self._memo:
            return self._memo[key]
        if key in self._busy:
            return None
        self._busy.add(key)
        try:
            found = self._origin(expr, fn, seq, depth + 1, binds)
        finally:
            self._busy.discard(key)
        if not binds:  # (a chain of rebindings that read a name twice is not exponential)
            self._memo[key] = found
        return found

    def _origin(self, expr: cst.BaseExpression, fn: FuncInfo, seq: int, depth: int,
                binds: dict[tuple[int, str], tuple[cst.BaseExpression, FuncInfo, int]]
                ) -> _Origin | None:
        ctx = self.ctx
        while isinstance(expr, cst.Subscript) or (
                isinstance(expr, cst.Attribute) and not (
                    isinstance(expr.value, cst.Name) and expr.value.value == "self")):
            if isinstance(expr, cst.Subscript) and ctx.names.resolve(expr.value) in _STACKERS:
                for element in expr.slice:  # ``np.c_[np.ones((m, 1)), housing.data]``
                    if isinstance(element.slice, cst.Index):
                        found = self._of(element.slice.value, fn, seq, depth, binds)
                        if found is not None:
                            return found
                return None
            if isinstance(expr, cst.Subscript) and isinstance(expr.value, cst.Call):
                # ``np.eye(10)[labels]``: an array indexed by a loaded one is as large as it
                found = self._of(expr.value, fn, seq, depth, binds)
                for element in expr.slice:
                    if found is None and isinstance(element.slice, cst.Index):
                        found = self._of(element.slice.value, fn, seq, depth, binds)
                return found
            expr = expr.value  # a slice, a field or a view of the same data
        if isinstance(expr, cst.Name):
            return self._name(expr.value, fn, seq, depth, binds)
        if isinstance(expr, cst.Attribute):
            if (isinstance(expr.value, cst.Name) and expr.value.value == "self"
                    and fn.class_name):
                return self._self_attr(fn.class_name, expr.attr.value, depth, binds)
            return self._of(expr.value, fn, seq, depth, binds)
        if isinstance(expr, cst.BinaryOperation):
            return (self._of(expr.left, fn, seq, depth, binds)
                    or self._of(expr.right, fn, seq, depth, binds))
        if isinstance(expr, cst.UnaryOperation):
            return self._of(expr.expression, fn, seq, depth, binds)
        if isinstance(expr, cst.Comparison):  # ``np.arange(10) == labels[:, None]``: a mask
            found = self._of(expr.left, fn, seq, depth, binds)
            for target in expr.comparisons:
                if found is None:
                    found = self._of(target.comparator, fn, seq, depth, binds)
            return found
        if isinstance(expr, cst.ListComp | cst.GeneratorExp | cst.SetComp):  # per-item arrays
            return self._of(expr.elt, fn, seq, depth, binds)
        if isinstance(expr, cst.DictComp):
            return self._of(expr.value, fn, seq, depth, binds)
        if isinstance(expr, cst.Dict):  # ``({"X": X}, y)``: a dataset's named features
            for el in expr.elements:
                if isinstance(el, cst.DictElement):
                    found = self._of(el.value, fn, seq, depth, binds)
                    if found is not None:
                        return found
            return None
        if isinstance(expr, cst.List | cst.Tuple):
            for e in expr.elements:
                found = self._of(e.value, fn, seq, depth, binds)
                if found is not None:
                    return found
            return None
        if not isinstance(expr, cst.Call):
            return None
        name = call_name(expr.func)
        recv = expr.func.value if isinstance(expr.func, cst.Attribute) else None
        qn = ctx.names.resolve(expr.func) or ""
        recv_text = ctx.code(recv) if recv is not None else ""
        if name in _LOADERS:
            return _Origin(f"{recv_text + '.' if recv_text else ''}{name}()")
        if qn in _LOAD_QNS or (name in ("load", "loads") and recv is not None
                               and recv_text in _LOAD_RECEIVERS):
            return _Origin(f"{recv_text or qn.rsplit('.', 1)[0]}.{name}()")
        if name in _WEIGHTS and recv is not None:
            return _Origin(f"{ctx.code(expr.func)}() (trained weights)")
        # a NumPy function (``np.array(x)``), not a method of an array (``np.load(p).astype``)
        numpy = qn.startswith("numpy.") or (recv is not None and (dotted(recv) or "").split(
            ".", 1)[0] in ("np", "numpy"))
        if name in _SHAPED and numpy:
            size = _shape_size(expr)
            if size >= LARGE:
                return _Origin(_short(ctx.code(expr)), size)
            return None
        if name in _KEEPS:
            if recv is not None and not numpy:
                found = self._of(recv, fn, seq, depth, binds)
                if found is not None:
                    return found
            for a in expr.args:
                if a.keyword is None and not a.star:
                    found = self._of(a.value, fn, seq, depth, binds)
                    if found is not None:
                        return found
            if name in ("array", "asarray") and numpy and expr.args:
                column = _column(expr.args[0].value)
                if column is not None:  # ``np.asarray(df["price"])``: a column of a table
                    return _Origin(f"{ctx.code(expr.func)}({column})")
            return None
        target = ctx.local_function_by_ref(expr.func, fn)
        if target is not None and target is not fn:
            return self._returned(target, expr, fn, seq, None, depth, binds)
        return None

    def _name(self, name: str, fn: FuncInfo, seq: int, depth: int,
              binds: dict[tuple[int, str], tuple[cst.BaseExpression, FuncInfo, int]]
              ) -> _Origin | None:
        ctx = self.ctx
        ev = ctx.last_assign(fn, name, seq)
        if ev is None:
            scope: FuncInfo | None = fn
            while scope is not None and scope.node is not None and not is_param(scope, name):
                scope = scope.parent
            if scope is None or scope.node is None:
                return None
            bound = binds.get((id(scope), name))
            if bound is not None:
                return self._of(bound[0], bound[1], bound[2], depth, binds)
            if any(key[0] == id(scope) for key in binds):
                return None  # a parameter of a followed call that this call leaves unset
            return self._param(scope, name, depth)
        found = self._binding(ev, depth, binds)
        if found is None and ev.block is not None:
            # ``if loaded: value = data[k]`` / ``else: value = init``: the last binding in
            # the source is one branch; the other may be the one that runs
            for other in self._other_branches(ev, name):
                found = self._binding(other, depth, binds)
                if found is not None:
                    break
        return found

    def _binding(self, ev: AssignEvent, depth: int,
                 binds: dict[tuple[int, str], tuple[cst.BaseExpression, FuncInfo, int]]
                 ) -> _Origin | None:
        """The origin of what one binding of a name holds."""
        ctx = self.ctx
        if ev.kind == "assign" and ev.value is not None:
            return self._of(ev.value, ev.func, ev.seq, depth, binds)
        source = ev.source
        if source is None:
            return None
        if ev.kind == "unpack" and isinstance(source, cst.Call):
            target = ctx.local_function_by_ref(source.func, ev.func)
            if target is not None and target is not ev.func:
                return self._returned(target, source, ev.func, ev.seq, ev.index, depth, binds)
        if ev.kind == "unpack" and isinstance(source, cst.Tuple | cst.List) \
                and ev.index is not None and ev.index < len(source.elements):
            return self._of(source.elements[ev.index].value, ev.func, ev.seq, depth, binds)
        if ev.kind in ("unpack", "with", "for"):
            return self._of(source, ev.func, ev.seq, depth, binds)
        return None

    def _other_branches(self, ev: AssignEvent, name: str) -> list[AssignEvent]:
        """Earlier bindings of ``name`` in the other branches of the ``if`` chain one of whose
        branches holds ``ev`` (each directly in its branch's block)."""
        fn = ev.func
        branches = self._branches.get(id(fn))
        if branches is None:
            root = fn.node.body if fn.node is not None else self.ctx.module
            branches = self._branches[id(fn)] = _if_branches(root)
        mine = branches.get(id(ev.block))
        if mine is None:
            return []
        out: list[AssignEvent] = []
        for other in fn.assigns:
            if other.seq >= ev.seq or other.block is ev.block or not (
                    isinstance(other.target, cst.Name) and other.target.value == name):
                continue
            where = branches.get(id(other.block))
            if where is not None and where[0] == mine[0] and where[1] != mine[1]:
                out.append(other)
        return out

    def _self_attr(self, class_name: str, attr: str, depth: int,
                   binds: dict[tuple[int, str], tuple[cst.BaseExpression, FuncInfo, int]]
                   ) -> _Origin | None:
        cls = self.ctx.classes.get(class_name)
        if cls is None:
            return None
        for ev in cls.attr_assigns.get(attr, []):
            if ev.value is not None:
                found = self._of(ev.value, ev.func, ev.seq, depth, binds)
                if found is not None:
                    return found
        return None

    def _returned(self, target: FuncInfo, call: cst.Call, fn: FuncInfo, seq: int,
                  index: int | None, depth: int,
                  binds: dict[tuple[int, str], tuple[cst.BaseExpression, FuncInfo, int]]
                  ) -> _Origin | None:
        """The origin of what ``target`` returns for this call (element ``index`` of a
        returned tuple), its parameters bound to the call's arguments."""
        if target.node is None:
            return None
        inner = dict(binds)
        for pname, arg in call_bindings(target, call):
            inner[(id(target), pname)] = (arg, fn, seq)
        for value, rseq in target.returns:
            if index is not None:
                if not isinstance(value, cst.Tuple) or index >= len(value.elements):
                    continue
                value = value.elements[index].value
            found = self._of(value, target, rseq + 1, depth, inner)
            if found is not None:
                return found.through(f"returned by {target.qualname}()")
        return None

    def _param(self, target: FuncInfo, name: str, depth: int) -> _Origin | None:
        """A parameter: the data its same-module call sites pass."""
        if self._callers is None:
            self._callers = {}
            for site in self.ctx.calls:
                callee = self.ctx.resolve_local_function(site)
                if callee is not None and callee is not site.func:
                    self._callers.setdefault(id(callee), []).append(site)
        for site in self._callers.get(id(target), []):
            for pname, arg in call_bindings(target, site.node):
                if pname != name:
                    continue
                found = self._of(arg, site.func, site.seq, depth, {})
                if found is not None:
                    line = f" (called from {site.func.qualname})"
                    return found.through(f"parameter {name} of {target.qualname}{line}")
        if self.guess and id(target) not in self._callers and _WEIGHTS_PARAM.match(name) and (
                INFERENCE_FUNCS.match(target.name) or self.ctx.analysis(_loads_data)):
            # Trained or pretrained weights handed in by another module: ``def predict(X,
            # parameters)`` (each call embeds them again), or ``net_preloaded(weights, image)``
            # beside the ``load_net()`` that reads them with ``scipy.io.loadmat``.
            return _Origin(f"parameter {name} of {target.qualname}() (weights passed in)",
                           via=f"{target.qualname}() is called from another module; its "
                               f"parameter {name} is read as trained or pretrained weights "
                               f"(not traced to a load)", guess=True)
        if self.guess and id(target) not in self._callers and _DATA_PARAM.match(name) and \
                self.ctx.analysis(_reads_files):
            # A data set handed in by another module: ``ptb_producer(raw_data, ...)`` beside
            # the ``ptb_raw_data()`` that reads the corpus; the training script passes one's
            # result to the other.
            return _Origin(f"parameter {name} of {target.qualname}() (data passed in)",
                           via=f"{target.qualname}() is called from another module; its "
                               f"parameter {name} is read as a data set that this module's "
                               f"readers load (not traced to a load)", guess=True)
        return None


def _if_branches(root: cst.Module | cst.BaseSuite) -> dict[int, tuple[int, int]]:
    """The blocks of ``root`` (not inside a nested ``def`` or ``class``) that are branches of
    an ``if``/``elif``/``else`` chain: block id -> (id of the chain's ``if``, the branch's
    position in the chain)."""
    out: dict[int, tuple[int, int]] = {}
    stack: list[cst.CSTNode] = [root]
    while stack:
        suite = stack.pop()
        body = suite.body if isinstance(suite, cst.Module | cst.IndentedBlock) else ()
        for stmt in body:
            if not isinstance(stmt, cst.BaseCompoundStatement) or isinstance(
                    stmt, cst.FunctionDef | cst.ClassDef):
                continue
            if isinstance(stmt, cst.If):
                node: cst.CSTNode | None = stmt
                k = 0
                while isinstance(node, cst.If):
                    out[id(node.body)] = (id(stmt), k)
                    stack.append(node.body)
                    k += 1
                    node = node.orelse
                if isinstance(node, cst.Else):
                    out[id(node.body)] = (id(stmt), k)
                    stack.append(node.body)
                continue
            # for, while, with, try: their blocks may hold an ``if`` (``match`` cases are not
            # followed)
            for part in (stmt, getattr(stmt, "orelse", None), getattr(stmt, "finalbody", None),
                         *getattr(stmt, "handlers", ())):
                block = getattr(part, "body", None)
                if isinstance(block, cst.BaseSuite):
                    stack.append(block)
    return out


def _column(expr: cst.BaseExpression) -> str | None:
    """``df["price"]`` / ``data["x"]``: a named column or field of a table or record."""
    if isinstance(expr, cst.Subscript) and len(expr.slice) == 1:
        index = expr.slice[0].slice
        if isinstance(index, cst.Index) and isinstance(index.value, cst.SimpleString):
            return cst.Module([]).code_for_node(expr)
    return None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."


def _shape_size(call: cst.Call) -> int:
    """The element count of a literal shape (``np.zeros((4096, 1024))``,
    ``np.random.rand(4096, 1024)``, ``np.random.normal(0, 1, size=(...))``); 0 when the shape
    is not a literal."""
    name = call_name(call.func)
    positional = [a.value for a in call.args if a.keyword is None]
    keyword = [a.value for a in call.args if a.keyword is not None
               and a.keyword.value in ("shape", "size")]
    if keyword:
        shape = keyword[:1]
    elif name in ("rand", "randn"):
        shape = positional
    elif name in ("normal", "uniform", "randint"):
        shape = positional[2:3]
    else:
        shape = positional[:1]
    dims: list[int] = []
    for value in shape:
        if isinstance(value, cst.Tuple | cst.List):
            dims.extend(_int(e.value) for e in value.elements)
        else:
            dims.append(_int(value))
    if not dims or any(d <= 0 for d in dims):
        return 0
    total = 1
    for d in dims:
        total *= d
    return total


def _int(expr: cst.BaseExpression) -> int:
    if isinstance(expr, cst.Integer):
        return int(expr.value.replace("_", ""), 0)
    return -1


#: TF1 graph-building APIs (``tf.compat.v1`` spells them too): a module calling one builds a
#: graph even when the ``Session`` that runs it lives in another module (a ``vgg_model.py``
#: that a training script imports).
_TF1_GRAPH_QNS = frozenset({"tensorflow.variable_scope", "tensorflow.get_variable",
                            "tensorflow.global_variables_initializer", "tensorflow.train.Saver"})
_TF1_GRAPH_PREFIXES = ("tensorflow.contrib.", "tensorflow.layers.")
#: What makes a module graph code (``uge.graph_module``) when ``tf`` comes from a star import
#: of a project module (:func:`_tf_qn`).
_STAR_GRAPH_QNS = frozenset({"tensorflow.placeholder", "tensorflow.disable_eager_execution",
                             "tensorflow.disable_v2_behavior", "tensorflow.Session",
                             "tensorflow.InteractiveSession"})


def _graph_code(ctx: ModuleContext) -> bool:
    """GCB's graph-mode module: :func:`uge.graph_module` or a TF1 graph-building API (also
    spelled through a star import of a project module that imports TensorFlow)."""
    if graph_module(ctx):
        return True
    star = bool(ctx.names.star_modules) and "tf" not in ctx.names.aliases
    for s in ctx.calls:
        qn = s.qn
        if qn is None:
            continue
        if star:
            qn = _tf_qn(ctx, qn)
            if qn in _STAR_GRAPH_QNS:
                return True
        if qn in _TF1_GRAPH_QNS or qn.startswith(_TF1_GRAPH_PREFIXES) or _tf1_only(qn):
            return True
    return False


#: TF1-only APIs (removed from the TF2 namespace): a module calling one runs as TF1 graph code
#: (or through ``tf.compat.v1`` with eager execution off), so an embedded array is a
#: ``Const`` node there too. The queue-based input producers run only in a graph.
_TF1_ONLY_QNS = frozenset({
    "tensorflow.truncated_normal", "tensorflow.random_normal", "tensorflow.random_uniform",
    "tensorflow.to_float", "tensorflow.to_int32", "tensorflow.log", "tensorflow.assign",
    "tensorflow.trainable_variables", "tensorflow.global_variables",
    "tensorflow.initialize_all_variables", "tensorflow.summary.FileWriter",
    "tensorflow.image.resize_images", "tensorflow.squared_difference", "tensorflow.Print",
    "tensorflow.get_collection", "tensorflow.train.exponential_decay",
    "tensorflow.nn.softmax_cross_entropy_with_logits_v2", "tensorflow.add_to_collection",
    "tensorflow.train.range_input_producer", "tensorflow.train.string_input_producer",
    "tensorflow.train.slice_input_producer", "tensorflow.train.input_producer",
    "tensorflow.train.batch", "tensorflow.train.shuffle_batch",
    "tensorflow.train.start_queue_runners"})


def _tf1_only(qn: str | None) -> bool:
    return qn is not None and (qn in _TF1_ONLY_QNS or (
        qn.startswith("tensorflow.train.") and qn.endswith("Optimizer")))


#: Calls only eager (TF2) code makes: a module with one is not assumed to build a graph.
_EAGER_QNS = frozenset({"tensorflow.GradientTape", "tensorflow.executing_eagerly",
                        "tensorflow.enable_eager_execution", "tensorflow.function"})


def _eager_code(ctx: ModuleContext) -> bool:
    """The module shows eager execution: ``GradientTape``, ``tf.function``, ``.numpy()``,
    ``tf.executing_eagerly()``, ``enable_eager_execution()``, a ``tf.config`` call."""
    return any(s.qn in _EAGER_QNS or s.method == "numpy" or (
        s.qn or "").startswith("tensorflow.config.") for s in ctx.calls) or any(
        is_tf_function(fn) for fn in ctx.functions if fn.node is not None)


def _called_repeatedly(ctx: ModuleContext) -> frozenset[int]:
    """Ids of same-module functions that run more than once: called from two or more places
    (a ``conv(x, i)`` helper per layer), from a loop, or from a function that runs more than
    once; the closure over same-module calls. A module analysis."""
    counts: dict[int, int] = {}
    for site in ctx.calls:
        target = ctx.resolve_local_function(site)
        if target is not None and target is not site.func:
            counts[id(target)] = counts.get(id(target), 0) + 1
    seeds = set(ctx.analysis(called_per_iteration)) | {k for k, n in counts.items() if n > 1}
    return frozenset(reached_from(ctx, seeds))


#: Parameter names that hold trained or pretrained weights.
_WEIGHTS_PARAM = re.compile(
    r"^(?:parameters|weights|trained_\w+|pretrained_?\w*|\w+_weights|weights_\w+|net_params|"
    r"model_params)$", re.IGNORECASE)


def _loads_data(ctx: ModuleContext) -> bool:
    """The module reads data or weights itself (``scipy.io.loadmat``, ``np.load``, a pickle,
    an HDF5 file, ``get_weights()``): a weights-named parameter of one of its functions is
    likely what its loader returned to the calling script. A module analysis."""
    return any(call_name(s.node.func) in _LOADERS or (s.qn or "") in _LOAD_QNS
               or s.method in _WEIGHTS for s in ctx.calls)


#: Parameter names that hold a data set (``raw_data``, ``train_images``, ``x_train``); not
#: ``data_format``, ``data_dir``, ``input_data`` (often a placeholder) or ``*_size``.
_DATA_PARAM = re.compile(
    r"^(?:data|raw_data|dataset|corpus|(?:raw|train|training|test|testing|valid|validation|val|"
    r"eval|full|all)_(?:data|dataset|set|x|y|ids|words|images|labels)|[xy]_(?:train|test|val|"
    r"valid))$", re.IGNORECASE)
#: TF1 readers of text files (a corpus read word by word).
_GFILE_QNS = frozenset({"tensorflow.gfile.GFile", "tensorflow.gfile.FastGFile",
                        "tensorflow.io.gfile.GFile"})


def _reads_files(ctx: ModuleContext) -> bool:
    """The module reads data itself (:func:`_loads_data`, or a text corpus through
    ``tf.gfile.GFile``): a data-named parameter of a function no code here calls is likely
    what its reader returned to the calling script. A module analysis."""
    return ctx.analysis(_loads_data) or any(s.qn in _GFILE_QNS for s in ctx.calls)
