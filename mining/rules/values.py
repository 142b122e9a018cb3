"""What a qualified name or an expression stands for: model constructors, cleanups, tensors.

``ValueKinds`` follows simple local data flow (the latest assignment before a use, ``self.attr``
stores anywhere in the class, return values of same-module functions) to tell whether an
expression evaluates to a Keras model, a tensor, a loss object, a gradient tape, etc. When the
kind is unknown it says so, and the rules do not report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from leakwatt.mining.rules.index import AssignEvent, CallSite, FuncInfo

if TYPE_CHECKING:
    from leakwatt.mining.rules.context import ModuleContext

TENSOR = "tensor"
SCALAR = "scalar_tensor"
CONTAINER = "container_tensor"  # a tuple/list/dict literal holding tensors
GRADS = "gradients"
MODEL = "model"
LOSSFN = "lossfn"
METRIC = "metric"
LAYER = "layer"
TAPE = "tape"
VARIABLE = "variable"
DATASET = "dataset"
SESSION = "session"
PLAIN = "plain"  # known not to be a tensor (numbers, strings, numpy, python floats)
UNKNOWN = ""

TENSORISH = frozenset({TENSOR, SCALAR, CONTAINER, GRADS})

# tf.* namespaces that do not return tensors.
_TF_NON_TENSOR = frozenset({
    "config", "io", "data", "summary", "train", "saved_model", "distribute", "debugging",
    "test", "device", "name_scope", "get_logger", "Graph", "GradientTape", "function", "print",
    "TensorSpec", "random", "autograph", "compat", "estimator", "lite", "experimental", "sysconfig",
    "Session", "InteractiveSession", "ConfigProto", "GPUOptions", "errors", "dtypes", "DType",
    "TensorShape", "Module", "keras", "executing_eagerly", "profiler", "tpu", "types", "version",
    "logging", "app", "flags", "gfile", "placeholder", "global_variables_initializer",
    "reset_default_graph", "get_default_graph", "set_random_seed", "disable_eager_execution",
    "enable_eager_execution", "control_dependencies", "variable_scope", "get_variable",
    "initializers", "optimizers", "layers", "contrib", "Variable", "SparseTensor",
})
_TF_RANDOM_TENSOR = frozenset({"normal", "uniform", "categorical", "shuffle", "truncated_normal",
                               "gamma", "poisson", "stateless_normal", "stateless_uniform"})
_CONVERSIONS = frozenset({"float", "int", "bool", "str", "len", "repr", "round", "format"})
_TENSOR_TO_PLAIN_METHODS = frozenset({"numpy", "item", "tolist", "__float__", "__int__"})
_TENSOR_PLAIN_ATTRS = frozenset({"shape", "dtype", "ndim", "name", "device", "op", "graph"})
_MODEL_PLAIN_METHODS = frozenset({
    "predict", "evaluate", "fit", "fit_generator", "train_on_batch", "test_on_batch",
    "predict_on_batch", "predict_generator", "evaluate_generator", "get_weights", "summary",
    "save", "save_weights", "load_weights", "compile", "to_json", "count_params", "get_config",
})
#: Keras ``Model`` step methods: they return the batch's outputs (``predict_step``) or its metric
#: results (``train_step``, ``test_step``), all tensors.
_MODEL_STEP_METHODS = frozenset({"predict_step", "train_step", "test_step"})
#: Kinds of objects kept in a dict or list (``metrics["acc"].result()``).
_OBJECT_KINDS = frozenset({MODEL, LOSSFN, METRIC, LAYER})


#: Third-party loaders and graph imports that return a model (or put one into the default
#: graph), by canonical qualified name -> the ``model_api`` a finding gets. The one table to
#: extend when a library's loader is missed; docs/rules.md (IMR) lists it. Keras's own
#: constructors and loaders (``load_model``, ``model_from_json`` ...) are recognised by
#: :func:`is_model_ctor` itself.
MODEL_LOADERS: dict[str, str] = {
    "qkeras.utils.load_qmodel": "load",  # QKeras: a quantised Keras model from a file
    "qkeras.load_qmodel": "load",
    "tensorflow_hub.load": "load",  # a SavedModel from TF Hub
    "tensorflow_hub.KerasLayer": "hub",  # a Keras layer holding a whole hub model
    "tensorflow.saved_model.load": "load",  # a SavedModel (TF2)
    "tensorflow.saved_model.loader.load": "graph-import",  # a SavedModel into a session (TF1)
    "tensorflow.import_graph_def": "graph-import",  # a frozen TF1 graph into the default graph
    "tensorflow.train.import_meta_graph": "graph-import",  # a checkpoint's graph (TF1)
}


def is_model_ctor(qn: str | None) -> str:
    """The ``model_api`` of a call to ``qn`` when it constructs a Keras model, else ``""``."""
    if qn in MODEL_LOADERS:
        return MODEL_LOADERS[qn]
    if not qn or not qn.startswith("keras."):
        return ""
    last = qn.rsplit(".", 1)[-1]
    if last == "Sequential":
        return "sequential"
    if last in ("Model", "Functional"):
        return "functional"
    public = qn.count(".") <= 2  # keras.models.load_model, not keras.legacy.saving.x.load_model
    if last in ("load_model", "model_from_json", "model_from_yaml", "model_from_config"):
        return "load" if public else ""
    if last == "clone_model":
        return "clone" if public else ""
    if qn.startswith("keras.applications.") and last[:1].isupper():
        return "applications"
    return ""


def is_model_base(qn: str | None) -> bool:
    return bool(qn) and qn.startswith("keras.") and qn.rsplit(".", 1)[-1] in (  # type: ignore[union-attr]
        "Model", "Sequential", "Functional")


def is_clear(qn: str | None) -> bool:
    """``clear_session()`` under any alias, or a TF1 default-graph reset."""
    if not qn:
        return False
    last = qn.rsplit(".", 1)[-1]
    if qn.startswith("keras.") and last == "clear_session":
        return True
    return qn in ("tensorflow.reset_default_graph", "tensorflow.keras.backend.clear_session")


def is_session_ctor(qn: str | None) -> bool:
    return qn in ("tensorflow.Session", "tensorflow.InteractiveSession",
                  "tensorflow.client.session.Session")


def is_dataset_ctor(qn: str | None) -> bool:
    if not qn or not qn.startswith("tensorflow.data."):
        return False
    last = qn.rsplit(".", 1)[-1]
    return last in ("from_tensor_slices", "from_tensors", "from_generator", "range", "zip",
                    "TFRecordDataset", "TextLineDataset", "FixedLengthRecordDataset", "list_files",
                    "Dataset", "load", "choose_from_datasets", "sample_from_datasets")


def model_subclasses(ctx: ModuleContext) -> frozenset[str]:
    """Names of module classes that (transitively) subclass ``keras.Model`` (once per module)."""
    return ctx.analysis(_find_model_subclasses)


def _find_model_subclasses(ctx: ModuleContext) -> frozenset[str]:
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, cls in ctx.classes.items():
            if name in found:
                continue
            for base in cls.bases:
                sym = ctx.project_symbol(base)
                if is_model_base(ctx.names.resolve(base)) or (
                        isinstance(base, cst.Name) and base.value in found) or (
                        sym is not None and sym.kind == "class" and sym.returns == MODEL):
                    found.add(name)
                    changed = True
                    break
    return frozenset(found)


def qualified_kind(qn: str) -> str:
    """The kind of the result of calling the tensorflow/keras name ``qn`` (canonical)."""
    if is_model_ctor(qn):
        return MODEL
    if is_session_ctor(qn):
        return SESSION
    root, _, rest = qn.partition(".")
    parts = rest.split(".") if rest else []
    last = parts[-1] if parts else ""
    if root in ("numpy", "builtins", "math", "statistics"):
        return PLAIN
    if root == "keras" and parts:
        head = parts[0]
        if last in ("convert_to_numpy", "get_value", "batch_get_value"):
            return PLAIN
        if head == "losses":
            return LOSSFN if last[:1].isupper() else SCALAR
        if head == "metrics":
            return METRIC if last[:1].isupper() else TENSOR
        if head == "layers":
            return LAYER if last[:1].isupper() else UNKNOWN
        if head in ("ops", "activations"):
            return TENSOR
        if last in ("convert_to_numpy", "get_value", "batch_get_value"):
            return PLAIN
        if head == "backend":
            if last in ("get_value", "eval", "batch_get_value"):
                return PLAIN
            if last in ("clear_session", "set_session", "get_session", "set_learning_phase",
                        "set_floatx", "floatx", "image_data_format", "epsilon"):
                return UNKNOWN
            return TENSOR
        return UNKNOWN
    if root == "tensorflow" and parts:
        head = parts[0]
        if head == "GradientTape":
            return TAPE
        if head == "Variable":
            return VARIABLE
        if head == "data":
            return DATASET
        if head == "random":
            return TENSOR if last in _TF_RANDOM_TENSOR else UNKNOWN
        if head in _TF_NON_TENSOR:
            return UNKNOWN
        if last.startswith("reduce_") or head == "losses":
            return SCALAR
        if last[:1].isupper():
            return UNKNOWN  # classes: tf.TensorArray, tf.Module ...
        return TENSOR
    return UNKNOWN


class ValueKinds:
    """Evaluate expression kinds in one module (memoised per function)."""

    def __init__(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        self._returns: dict[int, str] = {}
        self._attrs: dict[tuple[str, str], str] = {}
        self._stack: set[object] = set()
        #: (expression, function, seq) -> kind. A name's kind is its binding's, so without
        #: this a chain of rebindings that each read the name twice (``shape = (shape[0] // 2,
        #: shape[1] // 2)`` in every branch of an if/elif table) is evaluated once per path:
        #: exponential in the branches. With it, each binding is evaluated once.
        self._memo: dict[tuple[int, int, int], str] = {}
        #: function id -> its ``x.gradient(name, ...)`` calls (see :meth:`_differentiated`)
        self._gradient_targets: dict[int, list[tuple[int, CallSite]]] = {}

    # -- calls -------------------------------------------------------------------------------
    def call_kind(self, node: cst.Call, fn: FuncInfo, seq: int) -> str:
        ctx = self.ctx
        sym = ctx.project_symbol(node.func, fn)
        if sym is not None:  # a function, model class or object of another project module
            return sym.returns if sym.kind in ("function", "class") else self._called_object(
                sym.returns)
        qn = ctx.names.resolve(node.func)
        func = node.func
        if qn is not None and isinstance(func, cst.Name):
            shadow = self._local_function(func, fn)  # a module function shadowing an import
            if shadow is not None:
                return self.return_kind(shadow)
        if qn is not None:
            return self.qualified_call_kind(qn)
        if isinstance(func, cst.Name):
            if func.value in _CONVERSIONS:
                return PLAIN
            if func.value in ctx.classes:
                if func.value in model_subclasses(ctx):
                    return MODEL
                return UNKNOWN
            target = self._local_function(func, fn)
            if target is not None:
                return self.return_kind(target)
            callee = self.expr_kind(func, fn, seq)
            return self._called_object(callee)
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if (isinstance(func.value, cst.Name) and func.value.value == "self"
                    and fn.class_name):
                target = ctx.method(fn.class_name, method)
                if target is not None:
                    return self.return_kind(target)
            recv = self.expr_kind(func.value, fn, seq)
            if method == "predict_step" and recv in (MODEL, UNKNOWN):
                return TENSOR  # Keras ``Model.predict_step``: the batch's outputs
            if recv == MODEL:
                if method in _MODEL_PLAIN_METHODS:
                    return PLAIN
                if method in ("call", "__call__") or method in _MODEL_STEP_METHODS:
                    return TENSOR
                if method in ("compiled_loss", "compute_loss"):
                    return SCALAR
                return UNKNOWN
            if recv == TAPE:
                return GRADS if method == "gradient" else UNKNOWN
            if recv == METRIC:
                return SCALAR if method == "result" else UNKNOWN
            if recv == LOSSFN:
                return SCALAR if method in ("call", "__call__") else UNKNOWN
            if recv == VARIABLE:
                if method in _TENSOR_TO_PLAIN_METHODS:
                    return PLAIN
                if method in ("read_value", "value", "assign", "assign_add", "assign_sub"):
                    return TENSOR
                return UNKNOWN
            if recv in (TENSOR, SCALAR):
                if method in _TENSOR_TO_PLAIN_METHODS:
                    return PLAIN
                return recv
            if recv == DATASET:
                return DATASET if method not in ("as_numpy_iterator", "cardinality") else UNKNOWN
            if recv == LAYER:
                return TENSOR if method in ("call", "__call__") else UNKNOWN
            # ``self.loss_fn(y, p)``, ``self.generator(z)``: calling a stored object
            return self._called_object(self.expr_kind(func, fn, seq))
        return UNKNOWN

    def qualified_call_kind(self, qn: str) -> str:
        return qualified_kind(qn)

    @staticmethod
    def _called_object(kind: str) -> str:
        if kind in (MODEL, LAYER):
            return TENSOR
        if kind in (LOSSFN, METRIC):
            return SCALAR
        return UNKNOWN

    def _local_function(self, func: cst.Name, fn: FuncInfo) -> FuncInfo | None:
        scope: FuncInfo | None = fn
        while scope is not None:
            if func.value in scope.children:
                return scope.children[func.value]
            scope = scope.parent
        return self.ctx.module_funcs.get(func.value)

    # -- functions and attributes -----------------------------------------------------------
    def return_kind(self, fn: FuncInfo) -> str:
        key = id(fn)
        if key in self._returns:
            return self._returns[key]
        if key in self._stack:
            return UNKNOWN
        self._stack.add(key)
        kinds = [self.expr_kind(value, fn, seq + 1) for value, seq in fn.returns]
        self._stack.discard(key)
        result = UNKNOWN
        for pref in (MODEL, SCALAR, TENSOR, GRADS, CONTAINER):
            if pref in kinds:
                result = pref
                break
        if result == CONTAINER:
            result = TENSOR  # a function returning (loss, acc): each element a tensor
        if result == UNKNOWN and is_tf_function(fn) and any(
                not _is_none(value) for value, _ in fn.returns):
            result = TENSOR  # a tf.function returns tensors (nested in tuples and dicts)
        self._returns[key] = result
        return result

    def attr_kind(self, class_name: str, attr: str) -> str:
        key = (class_name, attr)
        if key in self._attrs:
            return self._attrs[key]
        self._attrs[key] = UNKNOWN
        cls = self.ctx.classes.get(class_name)
        kinds: list[str] = []
        if cls is not None:
            for ev in cls.attr_assigns.get(attr, []):
                if ev.value is not None:
                    kinds.append(self.expr_kind(ev.value, ev.func, ev.seq))
            if not kinds:
                for base in cls.bases:
                    if isinstance(base, cst.Name) and base.value in self.ctx.classes:
                        kinds.append(self.attr_kind(base.value, attr))
        definite = [k for k in kinds if k != UNKNOWN]
        result = definite[0] if definite and all(k == definite[0] for k in definite) else UNKNOWN
        self._attrs[key] = result
        return result

    # -- expressions --------------------------------------------------------------------------
    def expr_kind(self, expr: cst.BaseExpression, fn: FuncInfo, seq: int) -> str:
        key = (id(expr), id(fn), seq)
        kind = self._memo.get(key)
        if kind is None:
            kind = self._memo[key] = self._expr_kind(expr, fn, seq)
        return kind

    def _expr_kind(self, expr: cst.BaseExpression, fn: FuncInfo, seq: int) -> str:
        if isinstance(expr, cst.Call):
            return self.call_kind(expr, fn, seq)
        if isinstance(expr, cst.Name):
            if expr.value in ("True", "False", "None"):
                return PLAIN
            if expr.value == "self" and fn.class_name and fn.class_name in model_subclasses(
                    self.ctx):
                return MODEL  # ``self.predict(obs)`` in a keras.Model subclass's method
            ev = self.ctx.last_assign(fn, expr.value, seq)
            if ev is None:
                sym = self.ctx.project_symbol(expr)
                return sym.returns if sym is not None and sym.kind == "value" else UNKNOWN
            if ev.kind == "assign" and isinstance(ev.value, cst.List) and not ev.value.elements:
                return self._filled_list_kind(fn, expr.value, ev.seq, seq)
            kind = self.event_kind(ev)
            if kind == UNKNOWN and ev.kind in ("assign", "unpack") and self._differentiated(ev):
                return TENSOR  # ``tape.gradient(loss, ...)``: what a tape differentiates
            return kind
        if isinstance(expr, cst.Attribute):
            if (isinstance(expr.value, cst.Name) and expr.value.value == "self"
                    and fn.class_name):
                return self.attr_kind(fn.class_name, expr.attr.value)
            recv = self.expr_kind(expr.value, fn, seq)
            if recv in (TENSOR, SCALAR, VARIABLE):
                return PLAIN if expr.attr.value in _TENSOR_PLAIN_ATTRS else TENSOR
            return UNKNOWN
        if isinstance(expr, cst.Subscript):
            recv = self.expr_kind(expr.value, fn, seq)
            if recv in (TENSOR, GRADS, CONTAINER):
                return TENSOR
            if recv == SCALAR:
                return SCALAR
            if recv == UNKNOWN:
                return self._held_object_kind(expr.value, fn, seq)
            return UNKNOWN
        if isinstance(expr, cst.BinaryOperation):
            left = self.expr_kind(expr.left, fn, seq)
            right = self.expr_kind(expr.right, fn, seq)
            kinds = {left, right}
            if kinds & {TENSOR, GRADS, VARIABLE}:
                return TENSOR
            if SCALAR in kinds:
                return SCALAR
            if kinds == {PLAIN}:
                return PLAIN
            return UNKNOWN
        if isinstance(expr, cst.UnaryOperation):
            return self.expr_kind(expr.expression, fn, seq)
        if isinstance(expr, cst.Tuple | cst.List | cst.Set):
            kinds = [self.expr_kind(e.value, fn, seq) for e in expr.elements
                     if isinstance(e, cst.Element)]
            return CONTAINER if any(k in TENSORISH for k in kinds) else UNKNOWN
        if isinstance(expr, cst.Dict):
            kinds = [self.expr_kind(e.value, fn, seq) for e in expr.elements
                     if isinstance(e, cst.DictElement)]
            return CONTAINER if any(k in TENSORISH for k in kinds) else UNKNOWN
        if isinstance(expr, cst.BaseNumber | cst.BaseString):
            return PLAIN
        if isinstance(expr, cst.IfExp):
            a = self.expr_kind(expr.body, fn, seq)
            b = self.expr_kind(expr.orelse, fn, seq)
            return a if a == b else UNKNOWN
        return UNKNOWN

    def _differentiated(self, ev: AssignEvent) -> bool:
        """The name ``ev`` binds is the target of a later ``tape.gradient(name, ...)`` in the
        same function, with this binding still in force: a tape differentiates only tensors,
        so the value is one whatever computed it (``loss = loss_object(y, logits)`` with the
        loss object a parameter of a training-step helper)."""
        if not isinstance(ev.target, cst.Name):
            return False
        fn, name = ev.func, ev.target.value
        targets = self._gradient_targets.get(id(fn))
        if targets is None:  # once per function: the names given to ``.gradient(...)``
            targets = self._gradient_targets[id(fn)] = [
                (site.seq, site) for site in fn.calls
                if site.method == "gradient" and site.node.args
                and isinstance(site.node.args[0].value, cst.Name)]
        for seq, site in targets:
            arg = site.node.args[0].value
            assert isinstance(arg, cst.Name)
            if seq <= ev.seq or arg.value != name or site.receiver is None:
                continue
            if self.ctx.last_assign(fn, name, seq) is ev and \
                    self.expr_kind(site.receiver, fn, seq) == TAPE:
                return True
        return False

    def event_kind(self, ev: AssignEvent) -> str:
        if ev.kind in ("assign",) and ev.value is not None:
            return self.expr_kind(ev.value, ev.func, ev.seq)
        if ev.source is None:
            return UNKNOWN
        src = self.expr_kind(ev.source, ev.func, ev.seq)
        if ev.kind == "with":
            return src
        if ev.kind == "for":
            if src in (DATASET, TENSOR, GRADS):
                return TENSOR
            if _is_builtin_call(ev.source, "range"):
                return PLAIN  # an int counter
            if _is_builtin_call(ev.source, "enumerate") and ev.index == 0:
                return PLAIN
            # for step, (x, y) in enumerate(ds)
            if isinstance(ev.source, cst.Call) and isinstance(ev.source.func, cst.Name) \
                    and ev.source.func.value == "enumerate" and ev.source.args:
                inner = self.expr_kind(ev.source.args[0].value, ev.func, ev.seq)
                if inner in (DATASET, TENSOR, GRADS) and ev.index != 0:
                    return TENSOR
            return UNKNOWN
        if ev.kind == "unpack":
            element = self._returned_element_kind(ev)
            if element is not None:
                return element
            if src in (TENSOR, GRADS, CONTAINER):
                return TENSOR
            if isinstance(ev.source, cst.Tuple) and ev.index is not None \
                    and ev.index < len(ev.source.elements):
                el = ev.source.elements[ev.index]
                return self.expr_kind(el.value, ev.func, ev.seq)
            return UNKNOWN
        return UNKNOWN

    def _held_object_kind(self, expr: cst.BaseExpression, fn: FuncInfo, seq: int) -> str:
        """``metrics["acc"]`` where ``metrics`` (a local name or ``self.attr``) was built as a
        dict or list literal or comprehension whose values are all one kind of object (metric,
        loss object, model, layer): that kind. Otherwise unknown."""
        values: list[tuple[cst.BaseExpression, FuncInfo, int]] = []
        if isinstance(expr, cst.Name):
            ev = self.ctx.last_assign(fn, expr.value, seq)
            if ev is not None and ev.kind == "assign" and ev.value is not None:
                values.append((ev.value, ev.func, ev.seq))
        elif (isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name)
              and expr.value.value == "self" and fn.class_name):
            cls = self.ctx.classes.get(fn.class_name)
            for ev in cls.attr_assigns.get(expr.attr.value, []) if cls is not None else []:
                if ev.value is not None:
                    values.append((ev.value, ev.func, ev.seq))
        kinds: list[str] = []
        for value, vfn, vseq in values:
            if isinstance(value, cst.Dict):
                elts = [e.value for e in value.elements if isinstance(e, cst.DictElement)]
            elif isinstance(value, cst.List | cst.Tuple):
                elts = [e.value for e in value.elements if isinstance(e, cst.Element)]
            elif isinstance(value, cst.DictComp):
                elts = [value.value]
            elif isinstance(value, cst.ListComp):
                elts = [value.elt]
            else:
                return UNKNOWN
            kinds.extend(self.expr_kind(e, vfn, vseq) for e in elts)
        if kinds and kinds[0] in _OBJECT_KINDS and all(k == kinds[0] for k in kinds):
            return kinds[0]
        return UNKNOWN

    def _filled_list_kind(self, fn: FuncInfo, name: str, start: int, seq: int) -> str:
        """``xs = []`` later filled with ``xs.append(t)``: a list of tensors when a tensor is
        appended to it between its creation and ``seq``."""
        key = ("list", id(fn), name, start)
        if key in self._stack:
            return UNKNOWN
        self._stack.add(key)  # type: ignore[arg-type]
        try:
            for site in fn.calls:
                if not start < site.seq < seq or site.method not in ("append", "extend") \
                        or not isinstance(site.receiver, cst.Name) \
                        or site.receiver.value != name or not site.node.args:
                    continue
                if self.expr_kind(site.node.args[0].value, fn, site.seq) in TENSORISH:
                    return CONTAINER
        finally:
            self._stack.discard(key)  # type: ignore[arg-type]
        return UNKNOWN

    def _returned_element_kind(self, ev: AssignEvent) -> str | None:
        """``a, b = f(...)`` with a same-module ``f`` that returns tuples: the kind of the
        element at ``ev.index`` (None when that cannot be told)."""
        src = ev.source
        if not isinstance(src, cst.Call) or ev.index is None:
            return None
        sym = self.ctx.project_symbol(src.func, ev.func)
        if sym is not None and sym.kind == "function":
            if ev.index < len(sym.elements) and sym.elements[ev.index]:
                return sym.elements[ev.index]
            return None
        if not isinstance(src.func, cst.Name):
            return None
        target = self._local_function(src.func, ev.func)
        if target is None or not target.returns or id(target) in self._stack:
            return None
        kinds = []
        self._stack.add(id(target))
        try:
            for value, rseq in target.returns:
                if not isinstance(value, cst.Tuple) or len(value.elements) <= ev.index:
                    return None
                kinds.append(self.expr_kind(value.elements[ev.index].value, target, rseq + 1))
        finally:
            self._stack.discard(id(target))
        definite = [k for k in kinds if k != UNKNOWN]
        if definite and all(k == definite[0] for k in definite):
            return definite[0]
        return TENSOR if is_tf_function(target) else UNKNOWN

    def site_value_kind(self, site: CallSite, expr: cst.BaseExpression) -> str:
        return self.expr_kind(expr, site.func, site.seq)


def _is_builtin_call(expr: cst.BaseExpression | None, name: str) -> bool:
    return isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) \
        and expr.func.value == name


def is_tf_function(fn: FuncInfo) -> bool:
    """``fn`` is decorated with ``tf.function`` (any alias, with or without arguments)."""
    return any(d in ("tensorflow.function", "tensorflow.compat.v2.function")
               for d in fn.decorators)


def _is_none(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Name) and expr.value == "None"


def kinds_for(ctx: ModuleContext) -> ValueKinds:
    """The module's :class:`ValueKinds`, built once per module."""
    return ctx.analysis(ValueKinds)


def called_from_other_modules(ctx: ModuleContext) -> dict[int, str]:
    """Ids of this module's top-level functions and top-level classes' methods that another
    project module calls inside a loop -> that module's path (from the project view's
    ``loop_called``; a module analysis: ``ctx.analysis(called_from_other_modules)``)."""
    project = ctx.project
    if project is None or not project.loop_called:
        return {}
    callers = dict(project.loop_called)
    out: dict[int, str] = {}
    for fn in ctx.functions:
        if fn.node is None or fn.name not in callers:
            continue
        top_level = fn.parent is ctx.module_func and (
            fn.class_name is None or fn.class_name in ctx.classes)
        if top_level:
            out[id(fn)] = callers[fn.name]
    return out
