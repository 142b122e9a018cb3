"""IMR: Improper Model Reuse."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import libcst as cst

from leakwatt.mining.rules.api import TF_ROOTS, Invalid, Report, Rule, Seeds, Valid, dedent
from leakwatt.mining.rules.context import ModuleContext
from leakwatt.mining.rules.fixes import insert_at_top
from leakwatt.mining.rules.index import AssignEvent, CallSite, FuncInfo, Loop
from leakwatt.mining.rules.kit import INFERENCE_FUNCS, call_name, is_param
from leakwatt.mining.rules.uge import fresh_graph_item
from leakwatt.mining.rules.values import (
    MODEL,
    MODEL_LOADERS,
    is_clear,
    is_model_ctor,
    kinds_for,
    model_subclasses,
)

if TYPE_CHECKING:
    from leakwatt.mining.rules.project import Symbol

_TRAIN_METHODS = {"fit": "fit", "fit_generator": "fit", "train_on_batch": "train_on_batch"}
_SEARCH_NAMES = frozenset({"GridSearchCV", "RandomizedSearchCV", "cross_val_score",
                           "cross_validate", "BayesSearchCV", "HalvingGridSearchCV",
                           "HalvingRandomSearchCV", "cross_val_predict", "learning_curve",
                           "validation_curve"})
_OBJECTIVE_CALLS = frozenset({"optimize", "fmin", "gp_minimize", "forest_minimize",
                              "gbrt_minimize", "dummy_minimize", "BayesianOptimization",
                              "minimize"})
#: keras-tuner's tuners clear the Keras session between trials themselves.
_TUNER_PREFIXES = ("keras_tuner.", "kerastuner.")
_OBJECTIVE_KWARGS = ("func", "fn", "f", "objective")
#: scikit-learn wrappers of a Keras builder (``tf.keras``/Keras 2, scikeras, Keras 3): a search
#: or cross-validation over one calls the builder once per fold and grid point.
_WRAPPERS = frozenset({"KerasClassifier", "KerasRegressor", "SKLearnClassifier",
                       "SKLearnRegressor"})
_APPEND = frozenset({"append", "extend", "insert", "add", "appendleft"})


@dataclass
class _Repeat:
    variant: str
    loop_kind: str
    cleared: bool
    fix_target: Loop | FuncInfo | None


_MODEL_WORDS = frozenset({"Sequential", "Model", "Functional", "load_model", "model_from_json",
                          "model_from_yaml", "model_from_config", "clone_model", "applications"})
#: The pre-filter's words for the loader table (``load_qmodel``, ``import_graph_def`` ...): not
#: ``load`` itself (other rules need ``np.load`` as a plain seed), but the ``saved_model`` and
#: ``tensorflow_hub`` parts of ``tf.saved_model.load`` and ``hub.load``.
_LOADER_WORDS = frozenset(name.rsplit(".", 1)[-1] for name in MODEL_LOADERS) - {"load"} | {
    "saved_model", "tensorflow_hub"}
#: Training calls: where one repeats (in a loop), the model it trains may come from a factory
#: the loop binds (``for arch in [ResNet50, VGG16]: model = arch()``).
_TRAIN_WORDS = frozenset({"fit", "fit_generator", "train_on_batch"})
_LOADER_ROOTS = frozenset(name.split(".", 1)[0] for name in MODEL_LOADERS)


class ImproperModelReuse(Rule):
    """A Keras model is constructed again and again in one execution while the previous one is
    not released.

    Constructions are ``Sequential(...)``, ``Model(...)``, instantiating a ``keras.Model``
    subclass, ``load_model``, ``clone_model``, ``model_from_json``, ``keras.applications.*``,
    the third-party loaders and graph imports of the loader table
    (``leakwatt.mining.rules.values.MODEL_LOADERS``: ``qkeras.utils.load_qmodel``,
    ``tensorflow_hub.load``/``KerasLayer``, ``tf.saved_model.load``, a frozen graph's
    ``tf.import_graph_def``, ``tf.train.import_meta_graph``) and builder functions that return
    such a model: same-module ones (a module function shadowing an imported Keras name, such as
    a local ``load_model`` wrapping the Keras one, is followed into its body), other project
    modules' (imported, or resolved by name to the project's one definition, or to the one
    definition in the caller's folder, when a script fragment calls a sibling file's builder
    without importing it: lower confidence, and the finding's ``via`` says so), and
    *higher-order* builders: a parameter that is called, where the same-module call sites pass
    a builder or model class (or a class whose ``__init__`` builds a Keras model), or a name
    bound to the items of a list or dict of them (``for arch in [ResNet50, build_cnn]: model =
    arch()``; also a dict a helper receives as a parameter, ``dict(cnn=build_cnn)``; ``via``
    names the binding). IMR is reported when a construction happens inside a ``for``/``while``
    loop, inside a function called from a loop, in a web request handler
    (``@app.route("/...")``: once per request; and a frozen graph imported into the default
    graph in a per-input inference function such as ``predict``), or passed as a search
    objective (optuna, hyperopt, skopt, a scikit-learn wrapper's ``build_fn``/``model``,
    keyword or positional, directly or through a lambda or ``functools.partial``, when the
    module runs a search or cross-validation: reported in the builder (the definition in force
    where the wrapper is built, when a script or notebook redefines the builder), or at the
    wrapper when the builder is another module's), or rebuilt in straight-line code over the same
    variable; and no ``clear_session()`` (any alias) or
    ``tf.compat.v1.reset_default_graph()`` runs on the same iteration path (also inside a called
    function). Models kept on purpose (appended to an ensemble list), layers built in a loop,
    one model reused with ``load_weights``, factories that build no Keras model (scikit-learn
    estimators) and a model loaded once beside a request handler are not IMR.
    The finding is at the construction call inside the loop or repeated function (a
    same-module ``build_fn`` included), at the builder call when a builder returning the model
    is called in the loop, or at the scikit-learn wrapper that receives another module's
    ``build_fn``.

    Autofix: insert ``keras.backend.clear_session()`` (spelled with the module's own alias) at
    the top of the loop body, or of the repeatedly called objective or same-module builder.
    """

    CODE = "IMR"
    NAME = "Improper Model Reuse"
    MESSAGE = ("Keras model constructed repeatedly without clear_session(); each copy stays "
               "in the backend's global state and memory grows per iteration. Call "
               "keras.backend.clear_session() before building each new model")
    #: Model constructors and loaders; a scikit-learn search or cross-validation anywhere in
    #: the module makes a ``build_fn`` repeat.
    SEEDS = Seeds(
        roots=TF_ROOTS | _LOADER_ROOTS,
        api=_MODEL_WORDS | _LOADER_WORDS,
        calls=frozenset({"GridSearchCV", "RandomizedSearchCV", "cross_val_score",
                         "cross_validate", "BayesSearchCV", "HalvingGridSearchCV",
                         "HalvingRandomSearchCV", "cross_val_predict", "learning_curve",
                         "validation_curve"}) | _TRAIN_WORDS | _WRAPPERS,
        repeats=_MODEL_WORDS | _LOADER_WORDS | _TRAIN_WORDS)
    VARIANTS = {
        "loop-fit": "model built and trained inside a loop",
        "loop-build": "model built or loaded inside a loop (no training seen in the loop)",
        "kfold": "model built per fold of a cross-validation loop",
        "builder-in-loop": "a same-module builder returning a model is called inside a loop",
        "called-in-loop": "model built in a function that is called from a loop",
        "search-objective": "model built in a hyper-parameter search objective",
        "build-fn": "build_fn of a scikit-learn wrapper used in a search",
        "straight-line": "the same variable rebuilt in straight-line code",
        "request-handler": "model built or loaded (or a frozen graph imported) in a web request "
                           "handler, once per request; or a frozen graph imported into the "
                           "default graph in a per-input inference function (predict, infer)",
    }

    VALID = [
        Valid(dedent("""
            import tensorflow as tf
            model = tf.keras.Sequential([tf.keras.layers.Dense(1)])
            model.compile(loss="mse")
            for epoch in range(10):
                model.fit(x, y, epochs=1)
            """)),
        Valid(dedent("""
            from tensorflow import keras
            from keras import backend as K
            for lr in [0.1, 0.01]:
                K.clear_session()
                model = keras.Sequential([keras.layers.Dense(1)])
                model.fit(x, y)
            """)),
        Valid(dedent("""
            import tensorflow.compat.v1 as tf
            from tensorflow.keras.models import Sequential
            for fold in range(5):
                tf.reset_default_graph()
                model = Sequential()
                model.fit(x, y)
            """)),
        Valid(dedent("""
            import keras
            models = []
            for seed in range(5):
                m = keras.Sequential([keras.layers.Dense(1)])
                m.fit(x, y)
                models.append(m)
            """)),
        Valid(dedent("""
            import keras
            ensemble = [keras.Sequential([keras.layers.Dense(1)]) for _ in range(5)]
            """)),
        Valid(dedent("""
            import keras
            from keras import layers
            model = keras.Sequential()
            for units in [64, 32, 16]:
                model.add(layers.Dense(units))
            """)),
        Valid(dedent("""
            import keras
            model = keras.models.load_model("init.keras")
            model.save_weights("init.weights.h5")
            for fold in range(5):
                model.load_weights("init.weights.h5")
                model.fit(x, y)
            """)),
        Valid(dedent("""
            import tensorflow as tf

            def build():
                tf.keras.backend.clear_session()
                return tf.keras.Sequential([tf.keras.layers.Dense(1)])

            for lr in [0.1, 0.01]:
                model = build()
                model.fit(x, y)
            """)),
        Valid(dedent("""
            import tensorflow as tf

            def reset():
                tf.keras.backend.clear_session()

            for lr in [0.1, 0.01]:
                reset()
                model = tf.keras.Sequential([tf.keras.layers.Dense(1)])
                model.fit(x, y)
            """)),
        Valid(dedent("""
            import keras_tuner as kt
            import keras

            def build_model(hp):
                return keras.Sequential([keras.layers.Dense(hp.Int("u", 8, 64))])

            tuner = kt.RandomSearch(build_model, objective="val_loss", max_trials=10)
            """)),
        Valid(dedent("""
            import keras
            import keras_tuner

            def build(hp):
                return keras.Sequential([keras.layers.Dense(hp.Int("units", 4, 32))])

            tuner = keras_tuner.BayesianOptimization(build, objective="val_loss", max_trials=5)
            tuner.search(x, y)
            """)),
        Valid(dedent("""
            from tensorflow import keras
            base = keras.applications.MobileNetV2(include_top=False, weights=None)
            base = keras.Model(base.input, base.get_layer("block_13_expand_relu").output)
            """)),
        Valid(dedent("""
            from sklearn.ensemble import RandomForestClassifier
            for n in [10, 100]:
                clf = RandomForestClassifier(n_estimators=n)
                clf.fit(x, y)
            """)),
        Valid(dedent("""
            import keras
            if small:
                model = keras.Sequential([keras.layers.Dense(8)])
            else:
                model = keras.Sequential([keras.layers.Dense(64)])
            model.fit(x, y)
            """)),
        Valid(dedent("""
            from sklearn.ensemble import RandomForestClassifier
            from sklearn.linear_model import LogisticRegression

            def evaluate(make, x, y):
                clf = make()
                clf.fit(x, y)

            for make in [RandomForestClassifier, LogisticRegression]:
                evaluate(make, x, y)
            """)),
        Valid(dedent("""
            from flask import Flask
            from tensorflow import keras

            app = Flask(__name__)
            model = keras.models.load_model("m.keras")

            @app.route("/predict")
            def predict():
                return str(model.predict_on_batch(x))
            """)),
        Valid(dedent("""
            import keras
            from keras.models import load_model

            def load_model(path):
                keras.backend.clear_session()
                return keras.models.load_model(path)

            for path in paths:
                model = load_model(path)
                model.evaluate(x, y)
            """)),
        Valid(dedent("""
            import keras
            from scikeras.wrappers import KerasClassifier
            from sklearn.model_selection import GridSearchCV

            def build(units):
                keras.backend.clear_session()
                return keras.Sequential([keras.layers.Dense(units)])

            clf = KerasClassifier(lambda: build(32))
            GridSearchCV(clf, {"epochs": [1, 2]}).fit(x, y)
            """)),
    ]
    INVALID = [
        Invalid(dedent("""
            import tensorflow as tf
            for lr in [0.1, 0.01, 0.001]:
                model = tf.keras.Sequential([tf.keras.layers.Dense(1)])
                model.compile(optimizer=tf.keras.optimizers.Adam(lr), loss="mse")
                model.fit(x, y)
            """), line=3, variant="loop-fit", expected_replacement=dedent("""
            import tensorflow as tf
            for lr in [0.1, 0.01, 0.001]:
                tf.keras.backend.clear_session()
                model = tf.keras.Sequential([tf.keras.layers.Dense(1)])
                model.compile(optimizer=tf.keras.optimizers.Adam(lr), loss="mse")
                model.fit(x, y)
            """)),
        Invalid(dedent("""
            from keras import backend as K
            from tensorflow.keras.models import Sequential
            from tensorflow.keras.layers import Dense

            def create_model(units):
                model = Sequential()
                model.add(Dense(units))
                model.compile(loss="mse")
                return model

            for units in [8, 16, 32]:
                m = create_model(units)
                m.fit(x, y)
            """), line=12, variant="builder-in-loop", expected_replacement=dedent("""
            from keras import backend as K
            from tensorflow.keras.models import Sequential
            from tensorflow.keras.layers import Dense

            def create_model(units):
                model = Sequential()
                model.add(Dense(units))
                model.compile(loss="mse")
                return model

            for units in [8, 16, 32]:
                K.clear_session()
                m = create_model(units)
                m.fit(x, y)
            """)),
        Invalid(dedent("""
            import keras
            from sklearn.model_selection import KFold
            for train_idx, val_idx in KFold(5).split(x):
                model = keras.Sequential([keras.layers.Dense(1)])
                model.fit(x[train_idx], y[train_idx])
            """), line=4, variant="kfold"),
        Invalid(dedent("""
            import tensorflow as tf
            while True:
                model = tf.keras.models.load_model(next_checkpoint())
                print(model.evaluate(x, y))
            """), line=3, variant="loop-build"),
        Invalid(dedent("""
            import tf_keras as keras

            class Net(keras.Model):
                def call(self, x):
                    return x

            for run in range(3):
                net = Net()
                net.fit(x, y)
            """), line=8, variant="loop-fit"),
        Invalid(dedent("""
            import optuna
            from tensorflow import keras

            def objective(trial):
                model = keras.Sequential([keras.layers.Dense(trial.suggest_int("u", 4, 64))])
                model.fit(x, y)
                return model.evaluate(x, y)

            study = optuna.create_study()
            study.optimize(objective, n_trials=50)
            """), line=5, variant="search-objective"),
        Invalid(dedent("""
            import keras

            def train_one(cfg):
                model = keras.applications.ResNet50(weights=None)
                model.fit(x, y)

            for cfg in configs:
                train_one(cfg)
            """), line=4, variant="called-in-loop"),
        Invalid(dedent("""
            from keras.models import Sequential
            from scikeras.wrappers import KerasClassifier
            from sklearn.model_selection import GridSearchCV

            def make():
                model = Sequential()
                model.compile(loss="mse")
                return model

            clf = KerasClassifier(build_fn=make)
            GridSearchCV(clf, {"epochs": [1, 2]}).fit(x, y)
            """), line=6, variant="build-fn"),
        Invalid(dedent("""
            import keras
            model = keras.Sequential([keras.layers.Dense(1)])
            model.fit(x, y)
            model = keras.Sequential([keras.layers.Dense(2)])
            model.fit(x, y)
            """), line=4, variant="straight-line"),
        Invalid(dedent("""
            import keras

            class Agent:
                def __init__(self):
                    self.model = keras.Sequential([keras.layers.Dense(2)])

            for episode in range(100):
                agent = Agent()
                agent.model.fit(x, y)
            """), line=8, variant="builder-in-loop"),
        Invalid(dedent("""
            import keras

            def build_cnn():
                return keras.Sequential([keras.layers.Conv2D(8, 3)])

            def build_mlp():
                return keras.Sequential([keras.layers.Dense(8)])

            def evaluate(build_fn, x, y):
                model = build_fn()
                model.fit(x, y)

            for arch in [build_cnn, build_mlp]:
                evaluate(arch, x, y)
            """), line=10, variant="called-in-loop"),
        Invalid(dedent("""
            from tensorflow import keras

            for arch in [keras.applications.ResNet50, keras.applications.VGG16]:
                model = arch(weights=None, classes=10)
                model.fit(x, y)
            """), line=4, variant="builder-in-loop"),
        Invalid(dedent("""
            from qkeras.utils import load_qmodel

            for path in checkpoints:
                model = load_qmodel(path)
                print(model.evaluate(x, y))
            """), line=4, variant="loop-build"),
        Invalid(dedent("""
            import tensorflow as tf
            from flask import Flask

            app = Flask(__name__)

            @app.route("/predict", methods=["POST"])
            def predict():
                graph_def = tf.GraphDef()
                with tf.gfile.GFile("frozen.pb", "rb") as f:
                    graph_def.ParseFromString(f.read())
                tf.import_graph_def(graph_def, name="")
                return "ok"
            """), line=11, variant="request-handler"),
        Invalid(dedent("""
            from keras.models import Sequential
            from keras.layers import Dense
            from keras.wrappers.scikit_learn import KerasRegressor
            from sklearn.model_selection import cross_val_score

            def baseline(units):
                model = Sequential([Dense(units), Dense(1)])
                model.compile(loss="mse", optimizer="adam")
                return model

            reg = KerasRegressor(lambda: baseline(32), epochs=50, verbose=0)
            print(cross_val_score(reg, X, y, cv=10).mean())
            """), line=7, variant="build-fn"),
        Invalid(dedent("""
            from tensorflow import keras

            def cnn():
                return keras.Sequential([keras.layers.Conv1D(8, 3), keras.layers.Dense(1)])

            def mlp():
                return keras.Sequential([keras.layers.Dense(16), keras.layers.Dense(1)])

            def compare(candidates, x, y):
                scores = {}
                for name, make in candidates.items():
                    model = make()
                    model.compile(loss="mse")
                    scores[name] = model.fit(x, y).history["loss"][-1]
                return scores

            compare({"cnn": cnn, "mlp": mlp}, x, y)
            """), line=12, variant="builder-in-loop"),
        Invalid(dedent("""
            import keras

            class CNN:
                def __init__(self):
                    self.net = keras.Sequential([keras.layers.Dense(4)])

                def train(self, x, y):
                    self.net.fit(x, y)

            MODELS = {"cnn": CNN}

            def evaluate(make, x, y):
                m = make()
                m.train(x, y)

            for name, make in MODELS.items():
                evaluate(make, x, y)
            """), line=13, variant="called-in-loop"),
        Invalid(dedent("""
            import keras
            from keras.models import Sequential
            from keras.layers import Dense
            from keras.wrappers.scikit_learn import KerasClassifier
            from sklearn.model_selection import GridSearchCV

            def build_classifier():
                keras.backend.clear_session()
                return Sequential([Dense(1)])

            clf = KerasClassifier(build_fn=build_classifier)

            def build_classifier(optimizer):
                model = Sequential([Dense(1)])
                model.compile(optimizer=optimizer, loss="binary_crossentropy")
                return model

            clf = KerasClassifier(build_fn=build_classifier)
            GridSearchCV(clf, {"optimizer": ["adam", "rmsprop"]}, cv=10).fit(x, y)
            """), line=14, variant="build-fn"),
    ]

    def check(self, ctx: ModuleContext) -> Iterable[Report]:
        analysis = _Analysis(ctx)
        yield from analysis.run()


class _Analysis:
    def __init__(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        self.kinds = kinds_for(ctx)
        self.subclasses = model_subclasses(ctx)
        self.reported: set[int] = set()
        #: per function: ids of its loops some call inside which clears the session, and its
        #: calls and stores that can keep a model (computed once: asking per construction
        #: site made long module-level scripts quadratic)
        self._clearing_loops: dict[int, set[int]] = {}
        self._keepers: dict[int, tuple[list[CallSite], list]] = {}
        self._training: dict[tuple[int, int], str] = {}
        self._constructions: dict[int, tuple[str, bool]] = {}
        #: id of a construction call -> how it was resolved beyond the module's imports
        self.via: dict[int, str] = {}
        self._callers: dict[int, list[CallSite]] | None = None
        self._bound_names: dict[int, set[str]] = {}
        #: wrapper constructions (``KerasClassifier(build_fn=create_model)``) in a module that
        #: searches, with the builder they get (see ``wrapped``)
        self.wrapped_builders: list[tuple[CallSite, FuncInfo | Symbol]] = []

    # -- classification -------------------------------------------------------------------
    def direct_ctor(self, site: CallSite) -> str:
        if self._shadowed(site):
            return ""  # a same-module function of that name: followed into its body instead
        api = is_model_ctor(site.qn)
        if api:
            return api
        cls = self.ctx.local_class(site)
        if cls is not None and cls.name in self.subclasses:
            return "subclass"
        return ""

    def _shadowed(self, site: CallSite) -> bool:
        """``load_model(p)`` where the module defines its own ``load_model`` (a wrapper of the
        Keras one, say) besides importing Keras's: the call runs the module's function."""
        return (site.qn is not None and isinstance(site.node.func, cst.Name)
                and self.ctx.resolve_local_function(site) is not None)

    def construction(self, site: CallSite) -> tuple[str, bool]:
        """(model_api, is_builder_call) of a call that yields a new model, else ("", False)."""
        key = id(site.node)
        found = self._constructions.get(key)
        if found is None:
            found = self._constructions[key] = self._construction(site)
        return found

    def _construction(self, site: CallSite) -> tuple[str, bool]:
        api = self.direct_ctor(site)
        if api:
            return api, False
        sym = self.ctx.project_symbol(site.node.func, site.func)
        if sym is not None and sym.returns == MODEL:  # another project module's builder/class
            if sym.via:
                self.via[id(site.node)] = sym.via
            return ("builder", True) if sym.kind == "function" else ("subclass", False)
        target = self.ctx.resolve_local_function(site)
        if target is not None and target is not site.func:
            if self.kinds.return_kind(target) == MODEL:
                return "builder", True
            return "", False
        cls = self.ctx.local_class(site)
        if cls is not None:
            init = self.ctx.method(cls.name, "__init__")
            if init is not None and self.ctx.reaches(init, lambda s: bool(self.direct_ctor(s)),
                                                     "imr-ctor"):
                return "builder", True
        factory = self.higher_order(site)
        if factory is not None:
            api, via = factory
            self.via[id(site.node)] = via
            return api, True
        return "", False

    def build_fn_target(self, ref: cst.BaseExpression, site: CallSite, depth: int = 0
                        ) -> FuncInfo | Symbol | None:
        """What a scikit-learn wrapper's ``build_fn``/``model`` argument builds with: a
        same-module function, or another project module's builder or model class (imported,
        or resolved by name); looked through ``functools.partial(f, ...)``, a lambda calling
        one (``lambda: create_model(64)``) and a name bound to either."""
        ctx = self.ctx
        if depth > 3:
            return None
        if isinstance(ref, cst.Call) and call_name(ref.func) == "partial" and ref.args:
            return self.build_fn_target(ref.args[0].value, site, depth + 1)
        if isinstance(ref, cst.Lambda):
            body = ref.body
            return self.build_fn_target(body.func, site, depth + 1) if isinstance(
                body, cst.Call) else None
        if isinstance(ref, cst.Name):
            ev = ctx.last_assign(site.func, ref.value, site.seq)
            if ev is not None:
                if ev.kind == "assign" and isinstance(ev.value, cst.Lambda | cst.Call):
                    return self.build_fn_target(ev.value, site, depth + 1)
                return None
        target = ctx.local_function_by_ref(ref, site.func)
        if target is not None:
            return _definition_in_force(ctx, target, site)
        sym = ctx.project_symbol(ref, site.func)
        if sym is not None and sym.returns == MODEL and sym.kind in ("function", "class"):
            return sym
        return None

    # -- higher-order builders ----------------------------------------------------------------
    def higher_order(self, site: CallSite) -> tuple[str, str] | None:
        """``build_fn(cfg)`` where ``build_fn`` is a parameter that the same-module call sites
        pass a model builder or class (``evaluate(create_model, ...)``), or a name bound to the
        items of a list (or dict) of them (``for arch in [ResNet50, build_cnn]: arch()``):
        (model_api, via)."""
        func = site.node.func
        if not isinstance(func, cst.Name):
            return None
        name, fn = func.value, site.func
        if not self._may_bind(fn, name):
            return None  # (cheap: most called names are bound nowhere here)
        ev = self.ctx.last_assign(fn, name, site.seq)
        if ev is None:
            if fn.node is None or not is_param(fn, name):
                return None
            for caller, arg in self._arguments(fn, name):
                found = self.factory(arg, caller.func, caller.seq, 0)
                if found:
                    return found, (f"higher-order builder: parameter {name} of {fn.qualname} "
                                   f"receives {_code(self.ctx, arg)} (called from "
                                   f"{caller.func.qualname})")
            return None
        found = self._bound_factory(ev, 0)
        if found:
            source = ev.source if ev.source is not None else ev.value
            return found, (f"higher-order builder: {name} is bound to "
                           f"{_code(self.ctx, source) if source is not None else name}")
        return None

    def _may_bind(self, fn: FuncInfo, name: str) -> bool:
        """``name`` is a parameter of ``fn`` or assigned in it or an enclosing scope."""
        scope: FuncInfo | None = fn
        while scope is not None:
            names = self._bound_names.get(id(scope))
            if names is None:
                names = self._bound_names[id(scope)] = {
                    ev.target.value for ev in scope.assigns if isinstance(ev.target, cst.Name)}
            if name in names or (scope.node is not None and is_param(scope, name)):
                return True
            scope = scope.parent
        return False

    def _bound_factory(self, ev: AssignEvent, depth: int) -> str:
        """The model_api when a binding holds a model factory: ``f = build_cnn``, ``for f in
        [a, b]``, ``f = BUILDERS[name]`` over a dict literal of them."""
        if ev.kind == "assign" and ev.value is not None:
            value = ev.value
            if isinstance(value, cst.Subscript):  # BUILDERS[name]
                return self._items_factory(value.value, ev.func, ev.seq, depth + 1)
            return self.factory(value, ev.func, ev.seq, depth + 1)
        if ev.kind == "for" and ev.source is not None:
            return self._items_factory(ev.source, ev.func, ev.seq, depth + 1)
        return ""

    def _items_factory(self, expr: cst.BaseExpression, fn: FuncInfo, seq: int,
                       depth: int) -> str:
        """A list, tuple, set or dict literal (or a name bound to one, or ``d.items()`` /
        ``d.values()`` / ``enumerate(xs)`` of one) holding model factories."""
        if depth > 8:
            return ""
        if isinstance(expr, cst.Call) and expr.args and isinstance(expr.func, cst.Name) \
                and expr.func.value in ("enumerate", "list", "tuple", "reversed", "sorted"):
            return self._items_factory(expr.args[0].value, fn, seq, depth + 1)
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) \
                and expr.func.attr.value in ("items", "values"):
            return self._items_factory(expr.func.value, fn, seq, depth + 1)
        if isinstance(expr, cst.Name):
            ev = self.ctx.last_assign(fn, expr.value, seq)
            if ev is not None and ev.kind == "assign" and ev.value is not None:
                return self._items_factory(ev.value, ev.func, ev.seq, depth + 1)
            if ev is None and fn.node is not None and is_param(fn, expr.value):
                # ``def evaluate_all(models): for name, make in models.items(): make()``: the
                # collections the same-module call sites pass
                for caller, arg in self._arguments(fn, expr.value):
                    found = self._items_factory(arg, caller.func, caller.seq, depth + 1)
                    if found:
                        return found
            return ""
        values: list[cst.BaseExpression] = []
        if isinstance(expr, cst.Call) and call_name(expr.func) == "dict":  # dict(cnn=build_cnn)
            values = [a.value for a in expr.args if a.keyword is not None]
        elif isinstance(expr, cst.List | cst.Tuple | cst.Set):
            values = [e.value for e in expr.elements if isinstance(e, cst.Element)]
        elif isinstance(expr, cst.Dict):
            values = [e.value for e in expr.elements if isinstance(e, cst.DictElement)]
        for value in values:
            if isinstance(value, cst.Tuple) and value.elements:  # ("cnn", build_cnn)
                inner = [e.value for e in value.elements]
            else:
                inner = [value]
            for v in inner:
                found = self.factory(v, fn, seq, depth + 1)
                if found:
                    return found
        return ""

    def factory(self, expr: cst.BaseExpression, fn: FuncInfo, seq: int, depth: int) -> str:
        """The model_api when ``expr`` (not called) is a model builder or class: a Keras
        constructor or loader (``keras.applications.ResNet50``), a same-module builder or
        ``keras.Model`` subclass, another project module's, ``functools.partial`` of one, or
        a lambda that builds one."""
        if depth > 8:
            return ""
        ctx = self.ctx
        if isinstance(expr, cst.Call):
            if call_name(expr.func) == "partial" and expr.args:
                return self.factory(expr.args[0].value, fn, seq, depth + 1)
            return ""
        if isinstance(expr, cst.Lambda):
            body = expr.body
            if isinstance(body, cst.Call):
                return self.factory(body.func, fn, seq, depth + 1)
            return ""
        if not isinstance(expr, cst.Name | cst.Attribute):
            return ""
        if isinstance(expr, cst.Name):
            ev = ctx.last_assign(fn, expr.value, seq)
            if ev is not None:
                return self._bound_factory(ev, depth + 1)
            local = ctx.local_function_by_ref(expr, fn)
            if local is not None:
                return "builder" if self.kinds.return_kind(local) == MODEL else ""
            if expr.value in self.subclasses:
                return "subclass"
            cls = ctx.classes.get(expr.value)
            init = ctx.method(cls.name, "__init__") if cls is not None else None
            if init is not None and ctx.reaches(init, lambda s: bool(self.direct_ctor(s)),
                                                "imr-ctor"):
                return "builder"  # a wrapper class whose constructor builds a Keras model
        sym = ctx.project_symbol(expr, fn)
        if sym is not None:
            if sym.returns != MODEL:
                return ""
            return "builder" if sym.kind == "function" else "subclass"
        return is_model_ctor(ctx.names.resolve(expr))

    def _arguments(self, fn: FuncInfo, name: str) -> list[tuple[CallSite, cst.BaseExpression]]:
        """(call site, argument) for parameter ``name`` at each same-module call of ``fn``."""
        if self._callers is None:
            self._callers = {}
            for s in self.ctx.calls:
                callee = self.ctx.resolve_local_function(s)
                if callee is not None and callee is not s.func:
                    self._callers.setdefault(id(callee), []).append(s)
        node = fn.node
        if node is None:
            return []
        params = [p.name.value for p in (*node.params.posonly_params, *node.params.params)]
        if fn.class_name and params and params[0] in ("self", "cls"):
            params = params[1:]
        out: list[tuple[CallSite, cst.BaseExpression]] = []
        for s in self._callers.get(id(fn), []):
            positional = 0
            for a in s.node.args:
                if a.star:
                    break
                if a.keyword is not None:
                    if a.keyword.value == name:
                        out.append((s, a.value))
                    continue
                if positional < len(params) and params[positional] == name:
                    out.append((s, a.value))
                positional += 1
        return out

    def site_clears(self, site: CallSite) -> bool:
        if is_clear(site.qn):
            return True
        sym = self.ctx.project_symbol(site.node.func, site.func)
        if sym is not None and sym.clears:
            return True
        target = self.ctx.resolve_local_function(site)
        if target is None:
            cls = self.ctx.local_class(site)
            if cls is not None:
                target = self.ctx.method(cls.name, "__init__")
        return target is not None and self.fn_clears(target)

    def fn_clears(self, fn: FuncInfo) -> bool:
        return self.ctx.reaches(fn, lambda s: is_clear(s.qn), "clear")

    def loop_clears(self, fn: FuncInfo, loop: Loop) -> bool:
        clearing = self._clearing_loops.get(id(fn))
        if clearing is None:
            clearing = self._clearing_loops[id(fn)] = {
                id(lp) for s in fn.calls if s.loops and self.site_clears(s) for lp in s.loops}
        return id(loop) in clearing

    def training_api(self, fn: FuncInfo, loop: Loop | None) -> str:
        key = (id(fn), id(loop))
        if key not in self._training:
            self._training[key] = self._training_api(fn, loop)
        return self._training[key]

    def _training_api(self, fn: FuncInfo, loop: Loop | None) -> str:
        found = ""
        for s in fn.calls:
            if loop is not None and loop not in s.loops:
                continue
            m = s.method
            if m in _TRAIN_METHODS:
                return _TRAIN_METHODS[m]
            if s.qn == "tensorflow.GradientTape":
                found = found or "gradient_tape"
            elif m == "predict":
                found = found or "predict"
        return found

    def kept(self, site: CallSite, loop: Loop) -> bool:
        """The constructed model is kept on purpose (an ensemble), not replaced."""
        if site.comp_element and loop.kind == "comprehension":
            return True
        if site.parent_call is not None:
            pf = site.parent_call.func
            if isinstance(pf, cst.Attribute) and pf.attr.value in _APPEND:
                return True
        targets = site.assigned_to
        if any(isinstance(t, cst.Subscript) for t in targets):
            return True
        names = {t.value for t in targets if isinstance(t, cst.Name)}
        if not names:
            return False
        fn = site.func
        keepers = self._keepers.get(id(fn))
        if keepers is None:
            keepers = self._keepers[id(fn)] = (
                [s for s in fn.calls if s.method in _APPEND],
                [ev for ev in fn.assigns + fn.aug_assigns if ev.value is not None and (
                    isinstance(ev.target, cst.Subscript) or ev.kind == "aug")])
        for s in keepers[0]:
            if loop in s.loops and any(
                    isinstance(a.value, cst.Name) and a.value.value in names for a in s.node.args):
                return True
        for ev in keepers[1]:
            if loop not in ev.loops:
                continue
            if isinstance(ev.target, cst.Subscript) and isinstance(ev.value, cst.Name) \
                    and ev.value.value in names:
                return True
            if ev.kind == "aug" and any(
                    isinstance(n, cst.Name) and n.value in names for n in _names_in(ev.value)):
                return True
        return False

    def in_fresh_graph(self, site: CallSite) -> bool:
        for item in site.withs:
            if isinstance(item, cst.Call) and isinstance(item.func, cst.Attribute) \
                    and item.func.attr.value == "as_default":
                inner = item.func.value
                if isinstance(inner, cst.Call) and \
                        self.ctx.names.resolve(inner.func) == "tensorflow.Graph":
                    return True
        return False

    # -- repeated functions ------------------------------------------------------------------
    def repeated_functions(self) -> dict[int, _Repeat]:
        ctx = self.ctx
        rep: dict[int, _Repeat] = {}
        fn_by_id: dict[int, FuncInfo] = {id(f): f for f in ctx.functions}
        work: list[FuncInfo] = []
        has_search = any((s.qn or s.simple_name or s.method or "").rsplit(".", 1)[-1]
                         in _SEARCH_NAMES for s in ctx.calls)

        def mark(fn: FuncInfo, info: _Repeat) -> None:
            old = rep.get(id(fn))
            if old is None:
                rep[id(fn)] = info
                work.append(fn)
            elif old.cleared and not info.cleared:
                old.cleared = False

        for site in ctx.calls:
            # callbacks: search objectives and scikit-learn wrappers' build_fn
            name = (site.qn or site.simple_name or site.method or "").rsplit(".", 1)[-1]
            if name in _OBJECTIVE_CALLS and not (site.qn or "").startswith(_TUNER_PREFIXES):
                refs = [a.value for a in site.node.args
                        if a.keyword is None or a.keyword.value in _OBJECTIVE_KWARGS][:1]
                for ref in refs:
                    target = ctx.local_function_by_ref(ref, site.func)
                    if target is not None:
                        mark(target, _Repeat("search-objective", "", self.fn_clears(target),
                                             target))
            if name in _WRAPPERS and has_search:
                ref = _build_fn_arg(site.node)
                target = self.build_fn_target(ref, site) if ref is not None else None
                if isinstance(target, FuncInfo):
                    # a same-module builder: reported at its model construction, where the
                    # labelled sets place these sites and where the fix goes
                    mark(target, _Repeat("build-fn", "", self.fn_clears(target), target))
                elif target is not None:  # another module's builder: at the wrapper
                    self.wrapped_builders.append((site, target))
            if site.loops and not self.construction(site)[0]:
                target = ctx.resolve_local_function(site)
                if target is None:
                    cls = ctx.local_class(site)
                    target = ctx.method(cls.name, "__init__") if cls is not None else None
                if target is not None and target is not site.func:
                    loop = site.loops[-1]
                    cleared = self.loop_clears(site.func, loop) or self.fn_clears(target)
                    mark(target, _Repeat("called-in-loop", loop.kind, cleared,
                                         loop if loop.body is not None else None))
        for fn in ctx.functions:  # web request handlers: called once per request
            if fn.node is None:
                continue
            if _request_handler(fn.node) or (INFERENCE_FUNCS.match(fn.name) and any(
                    is_model_ctor(s.qn) == "graph-import" for s in fn.calls)):
                # (a frozen graph imported in ``predict``/``infer``: once per input)
                mark(fn, _Repeat("request-handler", "", self.fn_clears(fn), fn))
        while work:
            fn = work.pop()
            info = rep[id(fn)]
            for site, target in ctx.callees(fn):
                if self.construction(site)[0] or site.loops:
                    continue
                mark(target, _Repeat(info.variant, info.loop_kind,
                                     info.cleared or self.fn_clears(target), info.fix_target))
        return {k: v for k, v in rep.items() if k in fn_by_id}

    # -- reporting ---------------------------------------------------------------------------
    def run(self) -> Iterator[Report]:
        ctx = self.ctx
        repeated = self.repeated_functions()
        for site in ctx.calls:
            api, builder = self.construction(site)
            if not api or self.in_fresh_graph(site) or (api == "graph-import" and any(
                    fresh_graph_item(ctx, w, site.func) for w in site.withs
                    if isinstance(w, cst.BaseExpression))):
                continue  # (a graph imported into a graph of its own does not pile up)
            if api == "hub" and any(s is not site and s.stmt is site.stmt and self.direct_ctor(s)
                                    for s in site.func.calls):
                continue  # a hub layer inside a model built on the same line: one finding
            fn = site.func
            if site.loops:
                loop = site.loops[-1]
                if self.kept(site, loop) or self.loop_clears(fn, loop):
                    continue
                if builder and self.site_clears(site):
                    continue
                training = self.training_api(fn, loop)
                if _is_kfold(ctx, loop):
                    variant = "kfold"
                elif builder:
                    variant = "builder-in-loop"
                elif training in ("fit", "train_on_batch", "gradient_tape"):
                    variant = "loop-fit"
                else:
                    variant = "loop-build"
                conf = 0.9 if training or builder else 0.75
                if loop.kind == "comprehension":
                    conf = 0.6
                # The release call goes at the top of the loop's body, so only where that is
                # before the construction: a model built in the loop's header (a ``while``
                # test's walrus) would be released between its construction and its use.
                in_body = loop.body is not None and _contains(loop.body, site.node)
                yield self.report(site, variant, conf, loop.kind, api, training,
                                  loop if in_body else None)
                continue
            info = repeated.get(id(fn))
            if info is not None:
                if info.cleared or self.fn_clears(fn):
                    continue
                if builder and self.site_clears(site):
                    continue
                if fn.node is not None and info.variant == "called-in-loop" and \
                        self.kinds.return_kind(fn) == MODEL:
                    continue  # a builder: reported at its call in the loop
                conf = 0.85 if info.variant in ("search-objective", "build-fn") else (
                    0.7 if info.variant == "request-handler" else 0.8)
                yield self.report(site, info.variant, conf, info.loop_kind, api,
                                  self.training_api(fn, None), info.fix_target)
        yield from self.wrapped()
        yield from self.straight_line(repeated)

    def wrapped(self) -> Iterator[Report]:
        """``KerasClassifier(build_fn=create_model)`` in a module that searches or
        cross-validates: every fold and grid point calls the builder again. Reported at the
        wrapper, where the builder is handed over (as a builder called in a loop is reported at
        its call), unless the builder clears the session or builds no Keras model; the autofix
        clears the session at the top of a same-module builder."""
        for site, target in self.wrapped_builders:
            if isinstance(target, FuncInfo):
                if self.fn_clears(target) or not self.ctx.reaches(
                        target, lambda s: bool(self.construction(s)[0]), "imr-builds"):
                    continue
                yield self.report(site, "build-fn", 0.85, "", "builder",
                                  self.training_api(target, None) or "fit", target)
                continue
            if target.clears:
                continue  # another module's builder that releases the previous model itself
            if target.via:
                self.via[id(site.node)] = target.via
            yield self.report(site, "build-fn", 0.8, "", "builder", "fit", None)

    def straight_line(self, repeated: dict[int, _Repeat]) -> Iterator[Report]:
        ctx = self.ctx
        for fn in ctx.functions:
            if id(fn) in repeated:
                continue
            seen: dict[tuple[str, int], CallSite] = {}
            for site in fn.calls:
                if site.loops:
                    continue
                api, _ = self.construction(site)
                if not api:
                    continue
                names = [t.value for t in site.assigned_to if isinstance(t, cst.Name)]
                if len(names) != 1:
                    continue
                key = (names[0], id(site.block))
                prev = seen.get(key)
                seen[key] = site
                if prev is None:
                    continue
                if any(prev.seq < s.seq < site.seq and self.site_clears(s) for s in fn.calls):
                    continue
                if self.in_fresh_graph(site) or _rewraps(ctx, site, names[0]):
                    continue
                yield self.report(site, "straight-line", 0.6, "straight-line", api,
                                  self.training_api(fn, None), None)

    def report(self, site: CallSite, variant: str, confidence: float, loop_kind: str,
               api: str, training: str, fix_target: Loop | FuncInfo | None) -> Report:
        via = self.via.get(id(site.node), "")
        if via:  # resolved beyond the module's own imports: less sure
            confidence = min(confidence, 0.7)
        return Report(node=site.node, variant=variant, confidence=confidence,
                      loop_kind=loop_kind, model_api=api, training_api=training,
                      function=site.func.qualname, stmt=site.stmt,
                      fix=self.fix(fix_target), via=via)

    def fix(self, target: Loop | FuncInfo | None):  # type: ignore[no-untyped-def]
        if target is None:
            return None
        alias = clear_session_call(self.ctx)
        if alias is None:
            return None
        body = target.body if isinstance(target, Loop) else (
            target.node.body if target.node is not None else None)
        if not isinstance(body, cst.IndentedBlock):
            return None
        return insert_at_top(body, f"{alias}()", key="imr-clear-session")


def clear_session_call(ctx: ModuleContext) -> str | None:
    """``K.clear_session`` / ``keras.backend.clear_session`` / ``tf.keras.backend...``."""
    names = ctx.names
    for local, full in sorted(names.aliases.items()):
        from leakwatt.mining.rules.names import canonical

        canon = canonical(full)
        if canon == "keras.backend.clear_session":
            return local
        if canon == "keras.backend":
            return f"{local}.clear_session"
    for local, full in sorted(names.aliases.items()):
        from leakwatt.mining.rules.names import canonical

        if canonical(full) == "keras" and local.isidentifier():
            return f"{local}.backend.clear_session"
    for local, full in sorted(names.aliases.items()):
        if full in ("tensorflow", "tensorflow.compat.v1", "tensorflow.compat.v2"):
            return f"{local}.keras.backend.clear_session"
    return None


def _is_kfold(ctx: ModuleContext, loop: Loop) -> bool:
    node = loop.node
    if not isinstance(node, cst.For):
        return False
    it = node.iter
    if isinstance(it, cst.Call) and isinstance(it.func, cst.Name) and it.func.value == "enumerate" \
            and it.args:
        it = it.args[0].value
    if isinstance(it, cst.Call) and isinstance(it.func, cst.Attribute) and \
            it.func.attr.value == "split":
        return True
    text = ctx.code(node.iter).lower() + " " + ctx.code(node.target).lower()
    return "fold" in text


def _rewraps(ctx: ModuleContext, site: CallSite, name: str) -> bool:
    """``m = Model(m.inputs, m.layers[-2].output)``: the new model wraps the previous one's
    own layers (no second copy is built), also through names bound from them in between
    (``c2 = m.get_layer("conv2").output``; ``m = Model(inputs, c2)``)."""
    for arg in site.node.args:
        for node in _walk(arg.value):
            if not isinstance(node, cst.Name):
                continue
            if node.value == name:
                return True
            ev = ctx.last_assign(site.func, node.value, site.seq)
            value = None if ev is None else (ev.value if ev.value is not None else ev.source)
            if value is not None and any(isinstance(n, cst.Name) and n.value == name
                                         for n in _walk(value)):
                return True
    return False


def _contains(tree: cst.CSTNode, node: cst.CSTNode) -> bool:
    """Whether ``node`` (by identity) is ``tree`` or inside it."""
    return any(n is node for n in _walk(tree))


def _walk(expr: cst.CSTNode) -> Iterator[cst.CSTNode]:
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children)


def _names_in(expr: cst.BaseExpression) -> Iterator[cst.BaseExpression]:
    if isinstance(expr, cst.List | cst.Tuple):
        for el in expr.elements:
            yield el.value
    else:
        yield expr


def _code(ctx: ModuleContext, node: cst.CSTNode) -> str:
    text = " ".join(ctx.code(node).split())
    return text if len(text) <= 80 else text[:77] + "..."


#: Decorator methods that register a web request handler (Flask ``@app.route``, FastAPI
#: ``@app.post``, aiohttp ``@routes.get``): the function runs once per request.
_ROUTE_DECORATORS = frozenset({"route", "get", "post", "put", "patch", "api_route",
                               "websocket"})


def _request_handler(node: cst.FunctionDef) -> bool:
    for dec in node.decorators:
        d = dec.decorator
        if (isinstance(d, cst.Call) and isinstance(d.func, cst.Attribute)
                and d.func.attr.value in _ROUTE_DECORATORS
                and isinstance(d.func.value, cst.Name) and d.func.value.value != "self"
                and d.args and isinstance(d.args[0].value, cst.SimpleString | cst.FormattedString)
                and d.args[0].keyword is None):
            return True
    return False


def _build_fn_arg(call: cst.Call) -> cst.BaseExpression | None:
    """The builder a scikit-learn wrapper gets: ``build_fn=`` (``tf.keras``/Keras 2),
    ``model=`` (scikeras, Keras 3) or the first positional argument (both)."""
    for a in call.args:
        if a.keyword is not None and a.keyword.value in ("build_fn", "model"):
            return a.value
    positional = [a for a in call.args if a.keyword is None and not a.star]
    return positional[0].value if positional else None


def _definition_in_force(ctx: ModuleContext, target: FuncInfo, site: CallSite) -> FuncInfo:
    """The module-level ``def`` of ``target``'s name that ran last before ``site``'s top-level
    statement: a script or notebook that redefines ``build_classifier`` before its second
    search hands that one over (the name resolves to the first definition otherwise)."""
    if target.parent is not ctx.module_func or target.class_name is not None:
        return target
    same = [f for f in ctx.functions if f.name == target.name and f.node is not None
            and f.parent is ctx.module_func and f.class_name is None]
    if len(same) < 2:
        return target
    at = ctx.top.get(id(site.node), (-1,))[0]
    best, best_at = target, -1
    for f in same:
        where = ctx.top.get(id(f.node), (-1,))[0]
        if best_at < where < at:
            best, best_at = f, where
    return best
