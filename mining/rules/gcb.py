"""GCB: Graph-Constant Bottleneck."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import libcst as cst

from leakwatt.mining.rules.api import Invalid, Report, Rule, Seeds, Valid, dedent
from leakwatt.mining.rules.context import ModuleContext
from leakwatt.mining.rules.index import FuncInfo
from leakwatt.mining.rules.kit import call_name, is_param
from leakwatt.mining.rules.uge import fresh_graph_item, graph_module
from leakwatt.mining.rules.values import is_tf_function

#: Calls whose result is data read from a file or a dataset loader (last name).
_LOADERS = frozenset({"loadtxt", "genfromtxt", "fromfile", "load_npz", "read_csv", "read_table",
                      "read_excel", "read_parquet", "read_hdf", "read_pickle", "read_json",
                      "load_data", "load_svmlight_file", "fetch_openml", "fetch_mldata",
                      "fetch_20newsgroups", "fetch_lfw_people", "fetch_olivetti_faces"})
#: ``load`` counts on these receivers only (``np.load``, ``pickle.load``), not ``tfds.load``.
_LOAD_RECEIVERS = frozenset({"np", "numpy", "pickle", "joblib", "cPickle", "pkl"})
#: NumPy constructors whose first argument is a shape.
_SHAPED = frozenset({"zeros", "ones", "empty", "full", "rand", "randn", "random", "normal",
                     "uniform", "standard_normal", "randint"})
#: Elements from which a literal shape counts as large (one mebi-element, 4-8 MiB).
LARGE = 1 << 20
#: Calls and methods that keep an array's data origin (a copy, a view, a conversion).
_KEEPS = frozenset({"array", "asarray", "float32", "float64", "int32", "int64", "astype",
                    "reshape", "squeeze", "expand_dims", "transpose", "to_numpy", "copy",
                    "flatten", "ravel", "concatenate", "stack", "vstack", "hstack", "asmatrix",
                    "as_matrix", "get_values", "todense", "toarray", "T"})
_CONSTANTS = frozenset({"tensorflow.constant", "tensorflow.convert_to_tensor"})


class GraphConstantBottleneck(Rule):
    """A NumPy array loaded from data embedded in the graph as a constant.

    ``tf.constant(arr)`` (or ``tf.convert_to_tensor(arr)``) in TF1 graph-mode code (the module
    builds a ``Session`` or a ``placeholder``, disables eager execution, or the call sits in a
    ``with tf.Graph().as_default():`` block) or inside a ``@tf.function`` copies the whole array
    into a ``Const`` node of the graph: the data is held twice, the ``GraphDef`` can exceed its
    2 GiB limit, and a ``tf.function`` holds one copy per trace. A ``@tf.function`` that reads a
    module-level array does the same: the array is captured as a constant of every trace. The
    array must have a *data origin*: ``np.load``, ``np.loadtxt``, ``pd.read_csv(...).values``, a
    dataset's ``load_data()``, or a NumPy constructor with a literal shape of at least 2^20
    elements, followed through assignments, unpacking, ``.astype``/``.reshape``/``np.array``,
    indexing and arithmetic. Not reported: a small literal (``tf.constant([1, 2, 3])``), a
    ``tf.constant(arr)`` in eager code outside any graph or ``tf.function``, arrays passed to a
    ``tf.function`` as arguments. The finding is at ``tf.constant(...)``, or for a closure at
    the first statement of the ``tf.function`` that reads the array.

    No autofix: the remedy (feed through a ``placeholder``/``tf.data`` pipeline, or pass the
    array as an argument) changes the program's structure.
    """

    CODE = "GCB"
    NAME = "Graph-Constant Bottleneck"
    MESSAGE = ("Large data array embedded in the graph as a constant: the array is copied into "
               "the GraphDef (held twice, 2 GiB graph limit, once per tf.function trace). Feed "
               "it through a placeholder or a tf.data pipeline, or pass it to the tf.function "
               "as an argument")
    SEEDS = Seeds(api=frozenset({"constant", "convert_to_tensor", "function"}))
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
    ]

    def check(self, ctx: ModuleContext) -> Iterable[Report]:
        graph = None
        for site in ctx.calls:
            if site.qn not in _CONSTANTS or not site.node.args:
                continue
            arg = site.node.args[0].value
            fn = site.func
            traced = _in_tf_function(fn)
            if not traced:
                if graph is None:
                    graph = graph_module(ctx)
                under_graph = any(fresh_graph_item(ctx, w, fn) for w in site.withs
                                  if isinstance(w, cst.BaseExpression))
                if not (graph or under_graph):
                    continue
            if not _data_origin(ctx, arg, fn, site.seq, 0):
                continue
            yield Report(node=site.node,
                         variant="function-constant" if traced else "graph-constant",
                         confidence=0.75, function=fn.qualname, stmt=site.stmt)
        yield from self._closures(ctx)

    def _closures(self, ctx: ModuleContext) -> Iterator[Report]:
        module = ctx.module_func
        for fn in ctx.functions:
            if fn.node is None or not is_tf_function(fn):
                continue
            local = {ev.target.value for ev in fn.assigns if isinstance(ev.target, cst.Name)}
            for stmt in fn.node.body.body:
                hit = _first_global_read(ctx, stmt, fn, local, module)
                if hit is not None:
                    yield Report(node=hit, variant="function-closure", confidence=0.7,
                                 function=fn.qualname, stmt=stmt)
                    break


def _in_tf_function(fn: FuncInfo | None) -> bool:
    while fn is not None and fn.node is not None:
        if is_tf_function(fn):
            return True
        fn = fn.parent
    return False


def _first_global_read(ctx: ModuleContext, stmt: cst.CSTNode, fn: FuncInfo, local: set[str],
                       module: FuncInfo) -> cst.Name | None:
    found: list[cst.Name] = []

    class _Reads(cst.CSTVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            if (not found and n.value not in local and not is_param(fn, n.value)
                    and _data_origin(ctx, n, module, 10**9, 0)):
                found.append(n)

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


def _data_origin(ctx: ModuleContext, expr: cst.BaseExpression, fn: FuncInfo, seq: int,
                 depth: int) -> bool:
    """``expr`` is (derived from) an array with a data origin (see the rule's docstring)."""
    if depth > 6:
        return False
    if isinstance(expr, cst.Name):
        ev = ctx.last_assign(fn, expr.value, seq)
        if ev is None:
            return False
        value = ev.value if ev.value is not None else (ev.source if ev.kind == "unpack"
                                                       else None)
        return value is not None and _data_origin(ctx, value, ev.func, ev.seq, depth + 1)
    if isinstance(expr, cst.Attribute):
        return _data_origin(ctx, expr.value, fn, seq, depth + 1)
    if isinstance(expr, cst.Subscript):
        return _data_origin(ctx, expr.value, fn, seq, depth + 1)
    if isinstance(expr, cst.BinaryOperation):
        return (_data_origin(ctx, expr.left, fn, seq, depth + 1)
                or _data_origin(ctx, expr.right, fn, seq, depth + 1))
    if isinstance(expr, cst.List | cst.Tuple):
        return any(_data_origin(ctx, e.value, fn, seq, depth + 1) for e in expr.elements)
    if not isinstance(expr, cst.Call):
        return False
    name = call_name(expr.func)
    recv = expr.func.value if isinstance(expr.func, cst.Attribute) else None
    if name in _LOADERS:
        return True
    if name == "load" and recv is not None and ctx.code(recv) in _LOAD_RECEIVERS:
        return True
    qn = ctx.names.resolve(expr.func) or ""
    if name in _SHAPED and (qn.startswith("numpy.") or (recv is not None and ctx.code(
            recv).split(".")[0] in ("np", "numpy"))):
        return _large_shape(expr)
    if name in _KEEPS:
        if recv is not None and _data_origin(ctx, recv, fn, seq, depth + 1):
            return True
        return any(_data_origin(ctx, a.value, fn, seq, depth + 1) for a in expr.args
                   if a.keyword is None)
    return False


def _large_shape(call: cst.Call) -> bool:
    """A literal shape of at least ``LARGE`` elements: ``np.zeros((4096, 1024))``,
    ``np.random.rand(4096, 1024)``, ``np.random.normal(0, 1, size=(...))``."""
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
        return False
    total = 1
    for d in dims:
        total *= d
    return total >= LARGE


def _int(expr: cst.BaseExpression) -> int:
    if isinstance(expr, cst.Integer):
        return int(expr.value.replace("_", ""), 0)
    return -1
