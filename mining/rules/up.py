"""UP: Unnecessary Parallelism."""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from leakwatt.mining.rules.api import Fix, Invalid, Report, Rule, Seeds, Valid, dedent
from leakwatt.mining.rules.context import ModuleContext
from leakwatt.mining.rules.fixes import replace_expr
from leakwatt.mining.rules.index import FuncInfo
from leakwatt.mining.rules.kit import call_name

#: scikit-learn searches and cross-validation helpers that take ``n_jobs``.
_SEARCHES = frozenset({"GridSearchCV", "RandomizedSearchCV", "HalvingGridSearchCV",
                       "HalvingRandomSearchCV"})
_CROSS_VAL = frozenset({"cross_val_score", "cross_validate", "cross_val_predict",
                        "learning_curve", "validation_curve", "permutation_test_score"})
_WRAPPERS = frozenset({"KerasClassifier", "KerasRegressor", "SKLearnClassifier",
                       "SKLearnRegressor"})
_WRAPPER_ROOTS = frozenset({"keras", "tensorflow", "scikeras"})
_FRAMEWORK_ROOTS = ("keras", "tensorflow")


class UnnecessaryParallelism(Rule):
    """A scikit-learn search or cross-validation over a Keras model run in several processes.

    ``GridSearchCV``, ``RandomizedSearchCV`` (and the halving searches, and a module class deriving
    from one: ``class LoggedSearch(GridSearchCV)``) and ``cross_val_score``,
    ``cross_validate``, ``cross_val_predict``, ``learning_curve``, ``validation_curve`` with
    ``n_jobs=-1`` (or a literal > 1, ``os.cpu_count()``, or a name bound to one) over a
    ``KerasClassifier``/``KerasRegressor`` (the ``tf.keras``/Keras 2 wrappers or scikeras; Keras
    3's ``keras.wrappers.SKLearnClassifier``/``SKLearnRegressor``; a module class written as a
    scikit-learn estimator, with a base from ``sklearn``, whose methods call Keras or
    TensorFlow; also inside a ``Pipeline``) start one worker process per job, and every worker
    imports TensorFlow and builds its own models: memory grows with the number of workers while
    TensorFlow, which already uses every core in one process, gets no faster. Not reported:
    ``n_jobs=-1`` over scikit-learn estimators (where it helps), ``n_jobs=1``/``None`` over
    Keras models, estimators the module does not show to be Keras wrappers. The finding is at
    the search or cross-validation call.

    Autofix: ``n_jobs=1`` (the same search, one process).
    """

    CODE = "UP"
    NAME = "Unnecessary Parallelism"
    MESSAGE = ("Search or cross-validation over a Keras model with n_jobs != 1: each worker "
               "process imports TensorFlow and builds its own models (memory grows per worker, "
               "TensorFlow already uses every core). Use n_jobs=1")
    #: ``def fit``: the methods of a hand-written wrapper class (kept for the pre-filter, which
    #: otherwise keeps a used class's header and dunder methods only)
    #: ``api``: a module class deriving from a search (``class MySearch(GridSearchCV)``)
    SEEDS = Seeds(calls=_SEARCHES | _CROSS_VAL, defs=frozenset({"fit"}), api=_SEARCHES)
    VARIANTS = {
        "search-n-jobs": "GridSearchCV/RandomizedSearchCV over a Keras wrapper with n_jobs != 1",
        "cross-val-n-jobs": "cross_val_score/cross_validate/... over a Keras wrapper with "
                            "n_jobs != 1",
    }
    VALID = [
        Valid(dedent("""
            from sklearn.ensemble import RandomForestClassifier
            from sklearn.model_selection import GridSearchCV
            import keras
            grid = GridSearchCV(RandomForestClassifier(), {"n_estimators": [10, 100]}, n_jobs=-1)
            grid.fit(X, y)
            """)),
        Valid(dedent("""
            from keras.wrappers.scikit_learn import KerasClassifier
            from sklearn.model_selection import GridSearchCV
            clf = KerasClassifier(build_fn=build, epochs=10)
            grid = GridSearchCV(clf, params, n_jobs=1, cv=3)
            grid.fit(X, y)
            """)),
        Valid(dedent("""
            from scikeras.wrappers import KerasRegressor
            from sklearn.model_selection import cross_val_score
            reg = KerasRegressor(model=build)
            scores = cross_val_score(reg, X, y, cv=5)
            """)),
        Valid(dedent("""
            from sklearn.linear_model import LogisticRegression
            from sklearn.model_selection import cross_val_score
            import tensorflow as tf
            scores = cross_val_score(LogisticRegression(), X, y, cv=10, n_jobs=-1)
            """)),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf
            from sklearn.base import BaseEstimator
            from sklearn.model_selection import GridSearchCV

            class Centroid(BaseEstimator):
                def fit(self, X, y):
                    self.centre_ = np.mean(X, axis=0)
                    return self

            grid = GridSearchCV(Centroid(), {}, n_jobs=-1)
            """)),
        Valid(dedent("""
            import tensorflow as tf
            from sklearn.ensemble import RandomForestClassifier
            from sklearn.model_selection import GridSearchCV

            class QuietSearch(GridSearchCV):
                pass

            search = QuietSearch(RandomForestClassifier(), {"n_estimators": [10, 100]}, n_jobs=-1)
            """)),
    ]
    INVALID = [
        Invalid(dedent("""
            from keras.wrappers.scikit_learn import KerasClassifier
            from sklearn.model_selection import GridSearchCV
            clf = KerasClassifier(build_fn=build, epochs=10)
            grid = GridSearchCV(estimator=clf, param_grid=params, n_jobs=-1, cv=3)
            grid.fit(X, y)
            """), line=4, variant="search-n-jobs", expected_replacement=dedent("""
            from keras.wrappers.scikit_learn import KerasClassifier
            from sklearn.model_selection import GridSearchCV
            clf = KerasClassifier(build_fn=build, epochs=10)
            grid = GridSearchCV(estimator=clf, param_grid=params, n_jobs=1, cv=3)
            grid.fit(X, y)
            """)),
        Invalid(dedent("""
            import tensorflow as tf
            from sklearn.model_selection import cross_val_score
            reg = tf.keras.wrappers.scikit_learn.KerasRegressor(build_fn=build, epochs=100)
            results = cross_val_score(reg, X, y, cv=10, n_jobs=4)
            """), line=4, variant="cross-val-n-jobs"),
        Invalid(dedent("""
            import os
            from scikeras.wrappers import KerasClassifier
            from sklearn.model_selection import RandomizedSearchCV
            from sklearn.pipeline import Pipeline
            from sklearn.preprocessing import StandardScaler
            N_JOBS = -1
            pipe = Pipeline([("scale", StandardScaler()), ("net", KerasClassifier(model=build))])
            search = RandomizedSearchCV(pipe, dist, n_iter=20, n_jobs=N_JOBS)
            """), line=8, variant="search-n-jobs"),
        Invalid(dedent("""
            import tensorflow as tf
            from sklearn.base import BaseEstimator, ClassifierMixin
            from sklearn.model_selection import cross_val_score

            class KerasMLP(BaseEstimator, ClassifierMixin):
                def __init__(self, units=32):
                    self.units = units

                def fit(self, X, y):
                    self.model_ = tf.keras.Sequential([tf.keras.layers.Dense(self.units)])
                    self.model_.compile(loss="mse")
                    self.model_.fit(X, y)
                    return self

            scores = cross_val_score(KerasMLP(), X, y, cv=5, n_jobs=-1)
            """), line=15, variant="cross-val-n-jobs"),
        Invalid(dedent("""
            import keras
            from sklearn.model_selection import GridSearchCV
            clf = keras.wrappers.SKLearnClassifier(model=build, fit_kwargs={"epochs": 5})
            grid = GridSearchCV(clf, params, cv=3, n_jobs=-1)
            """), line=4, variant="search-n-jobs"),
        Invalid(dedent("""
            from keras.wrappers.scikit_learn import KerasClassifier
            from sklearn.model_selection import GridSearchCV

            class LoggedSearch(GridSearchCV):
                def _run_search(self, evaluate_candidates):
                    print("searching")
                    super()._run_search(evaluate_candidates)

            clf = KerasClassifier(build_fn=build, epochs=10)
            search = LoggedSearch(clf, {"batch_size": [16, 32]}, n_jobs=-1)
            search.fit(X, y)
            """), line=10, variant="search-n-jobs", expected_replacement=dedent("""
            from keras.wrappers.scikit_learn import KerasClassifier
            from sklearn.model_selection import GridSearchCV

            class LoggedSearch(GridSearchCV):
                def _run_search(self, evaluate_candidates):
                    print("searching")
                    super()._run_search(evaluate_candidates)

            clf = KerasClassifier(build_fn=build, epochs=10)
            search = LoggedSearch(clf, {"batch_size": [16, 32]}, n_jobs=1)
            search.fit(X, y)
            """)),
    ]

    def check(self, ctx: ModuleContext) -> Iterable[Report]:
        for site in ctx.calls:
            name = call_name(site.node.func)
            if name not in _SEARCHES and name not in _CROSS_VAL:
                name = _search_subclass(ctx, site.node.func) or ""
                if not name:
                    continue
            elif site.qn is not None and not site.qn.startswith("sklearn."):
                continue
            n_jobs = next((a for a in site.node.args
                           if a.keyword is not None and a.keyword.value == "n_jobs"), None)
            if n_jobs is None or not _parallel(ctx, n_jobs.value, site.func, site.seq):
                continue
            estimator = next((a.value for a in site.node.args
                              if a.keyword is not None and a.keyword.value == "estimator"), None)
            if estimator is None:
                positional = [a for a in site.node.args if a.keyword is None and not a.star]
                estimator = positional[0].value if positional else None
            if estimator is None or not _keras_wrapper(ctx, estimator, site.func, site.seq, 0):
                continue
            yield Report(node=site.node,
                         variant="search-n-jobs" if name in _SEARCHES else "cross-val-n-jobs",
                         confidence=0.85, function=site.func.qualname, stmt=site.stmt,
                         fix=_one_job(n_jobs.value))


def _search_subclass(ctx: ModuleContext, func: cst.BaseExpression,
                     seen: frozenset[str] = frozenset()) -> str | None:
    """The scikit-learn search a module class derives from (``class MySearch(GridSearchCV)``,
    also through other module classes): its name, else None."""
    if not isinstance(func, cst.Name) or func.value in seen:
        return None
    cls = ctx.classes.get(func.value)
    if cls is None:
        return None
    for base in cls.bases:
        qn = ctx.names.resolve(base) or ""
        last = call_name(base)
        if qn.startswith("sklearn.") and last in _SEARCHES:
            return last
        found = _search_subclass(ctx, base, seen | {func.value})
        if found:
            return found
    return None


def _parallel(ctx: ModuleContext, expr: cst.BaseExpression, fn: FuncInfo, seq: int) -> bool:
    """``expr`` asks for more than one process: -1 (or any negative), a literal > 1,
    ``cpu_count()``, or a name bound to one of these."""
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        return isinstance(expr.expression, cst.Integer)
    if isinstance(expr, cst.Integer):
        return int(expr.value.replace("_", ""), 0) > 1
    if isinstance(expr, cst.Call):
        return call_name(expr.func) in ("cpu_count", "process_cpu_count")
    if isinstance(expr, cst.Name):
        ev = ctx.last_assign(fn, expr.value, seq)
        if ev is not None and ev.value is not None and not isinstance(ev.value, cst.Name):
            return _parallel(ctx, ev.value, ev.func, ev.seq)
    return False


def _is_wrapper_call(ctx: ModuleContext, call: cst.Call) -> bool:
    qn = ctx.names.resolve(call.func)
    if qn is None:
        return isinstance(call.func, cst.Name) and _keras_estimator_class(ctx, call.func.value)
    root, _, rest = qn.partition(".")
    return root in _WRAPPER_ROOTS and rest.rsplit(".", 1)[-1] in _WRAPPERS


def _keras_estimator_class(ctx: ModuleContext, name: str) -> bool:
    """``name`` is a module class written as a scikit-learn estimator (a base resolving into
    ``sklearn``) whose methods call Keras or TensorFlow: a hand-written Keras wrapper, as code
    written since the ``tf.keras`` wrappers were removed (TensorFlow 2.12) has."""
    cls = ctx.classes.get(name)
    if cls is None or not any((ctx.names.resolve(base) or "").startswith("sklearn.")
                              for base in cls.bases):
        return False
    return any(site.func.class_name == name and site.qn is not None
               and site.qn.split(".", 1)[0] in _FRAMEWORK_ROOTS for site in ctx.calls)


def _keras_wrapper(ctx: ModuleContext, expr: cst.BaseExpression, fn: FuncInfo, seq: int,
                   depth: int) -> bool:
    """``expr`` is (or holds, as in a ``Pipeline``) a ``KerasClassifier``/``KerasRegressor``."""
    if depth > 4:
        return False
    if isinstance(expr, cst.Name):
        ev = ctx.last_assign(fn, expr.value, seq)
        return ev is not None and ev.value is not None and _keras_wrapper(
            ctx, ev.value, ev.func, ev.seq, depth + 1)
    found = False

    class _Find(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> bool:
            nonlocal found
            if _is_wrapper_call(ctx, call):
                found = True
            return not found

        def visit_Name(self, n: cst.Name) -> None:
            nonlocal found
            if not found and n is not expr and _keras_wrapper(ctx, n, fn, seq, depth + 1):
                found = True

        def visit_Attribute(self, a: cst.Attribute) -> bool:
            return False

    expr.visit(_Find())
    return found


def _one_job(expr: cst.BaseExpression) -> Fix:
    return replace_expr(expr, lambda updated: cst.Integer("1"), "up-n-jobs")
