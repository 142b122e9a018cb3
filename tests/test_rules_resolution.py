"""Issue 21: what the rules reach beyond a module's own imports (names resolved by name to the
project's one definition, star-import chains, higher-order builders, functions shadowing Keras
names, the loader table, class overrides across files), what GCB traces to a data origin, the
fresh-graph session variant and retracing through a derived number; each with its near misses.
Every case is a folder of files written here and scanned with its project index."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from leakwatt.mining.rules import fix_source
from leakwatt.mining.rules.project import ProjectIndex
from leakwatt.mining.rules.values import MODEL
from leakwatt.mining.scan import clear_cache, scan_paths, scan_source

BUILDER = textwrap.dedent("""
    from tensorflow import keras


    def create_model(units=8):
        model = keras.Sequential([keras.layers.Dense(units), keras.layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        return model
    """).lstrip()
#: an article's snippet: calls the builder of a sibling file it never imports
SNIPPET = textwrap.dedent("""
    import numpy as np

    x, y = np.zeros((10, 2)), np.zeros(10)
    for units in [8, 16, 32]:
        model = create_model(units)
        model.fit(x, y)
    """).lstrip()


def _findings(folder: Path, files: dict[str, str], rules: list[str] | None = None) -> list:
    """Write ``files`` (name -> text) under ``folder`` and scan it with its project index."""
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    clear_cache()
    report = scan_paths([folder], select=rules, jobs=1)
    assert report.errors == []
    return report.findings


def _scan(folder: Path, files: dict[str, str], rules: list[str] | None = None
          ) -> list[tuple[str, str, int, str]]:
    """(path relative to ``folder``, rule, line, variant) of each finding, sorted."""
    return sorted((Path(f.path).resolve().relative_to(folder.resolve()).as_posix(), f.rule,
                   f.line, f.variant) for f in _findings(folder, files, rules))


# -- resolution by name -------------------------------------------------------------------------

def test_snippet_calling_a_sibling_builder_it_never_imports(tmp_path: Path) -> None:
    findings = _findings(tmp_path, {"models.py": BUILDER, "snippet.py": SNIPPET}, ["IMR"])
    assert [(Path(f.path).name, f.line, f.variant) for f in findings] == [
        ("snippet.py", 5, "builder-in-loop")]
    (f,) = findings
    assert f.via == "resolved by name to a unique definition in models.py; not imported"
    assert f.confidence <= 0.7


def test_snippet_calling_the_one_builder_of_its_own_folder(tmp_path: Path) -> None:
    """A course repository: each lesson folder has its own ``create_model``; the lesson's
    snippet calls the one beside it."""
    findings = _findings(tmp_path, {"lesson1/models.py": BUILDER, "lesson1/snippet.py": SNIPPET,
                                    "lesson2/models.py": BUILDER}, ["IMR"])
    assert [(Path(f.path).parent.name, Path(f.path).name, f.line, f.variant)
            for f in findings] == [("lesson1", "snippet.py", 5, "builder-in-loop")]
    assert findings[0].via == ("resolved by name to the one definition in its folder, "
                               "lesson1/models.py (2 files define it); not imported")
    assert findings[0].confidence <= 0.7


#: The same snippet and builder as Python 2 (print statements): TF1-era course code.
BUILDER_PY2 = BUILDER.replace("    return model\n", '    print "built", units\n    return model\n')
SNIPPET_PY2 = SNIPPET + '    print "units", units\n'
#: ... and a builder that star-imports Keras (TF1-era course code)
BUILDER_STAR = textwrap.dedent("""
    from keras.models import *
    from keras.layers import *


    def create_model(units=8):
        model = Sequential([Dense(units), Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        return model
    """).lstrip()


@pytest.mark.parametrize(("builder", "snippet"), [
    (BUILDER_PY2, SNIPPET_PY2), (BUILDER, SNIPPET_PY2), (BUILDER_PY2, SNIPPET),
    (BUILDER, "from pylab import *\n" + SNIPPET), (BUILDER_STAR, SNIPPET),
], ids=["both-python2", "snippet-python2", "builder-python2", "star-import-of-pylab",
        "builder-star-imports-keras"])
def test_by_name_resolution_of_legacy_course_code(tmp_path: Path, builder: str,
                                                  snippet: str) -> None:
    findings = _findings(tmp_path, {"models.py": builder, "snippet.py": snippet}, ["IMR"])
    line = 6 if snippet.startswith("from pylab") else 5
    assert [(Path(f.path).name, f.line, f.variant) for f in findings] == [
        ("snippet.py", line, "builder-in-loop")]


@pytest.mark.parametrize("files", [
    # two files define it, neither beside the snippet: which one runs is unknown
    {"a/models.py": BUILDER, "b/models2.py": BUILDER, "snippet.py": SNIPPET},
    # two files beside it define it
    {"models.py": BUILDER, "models2.py": BUILDER, "other/models3.py": BUILDER,
     "snippet.py": SNIPPET},
    # a star import of a package that is not known: it may bind the name
    {"models.py": BUILDER, "snippet.py": "from zoo.builders import *\n" + SNIPPET},
    # the snippet binds the name itself (an import from outside the project)
    {"models.py": BUILDER, "snippet.py": "from zoo import create_model\n" + SNIPPET},
    # ... or a parameter / assignment of that name
    {"models.py": BUILDER,
     "snippet.py": "create_model = make_factory()\n" + SNIPPET},
    # the one definition builds no model
    {"models.py": "def create_model(units=8):\n    return units\n", "snippet.py": SNIPPET},
], ids=["two-definitions-elsewhere", "two-definitions-beside", "star-import", "imported",
        "assigned", "not-a-builder"])
def test_resolution_by_name_near_misses(tmp_path: Path, files: dict[str, str]) -> None:
    assert _scan(tmp_path, files, ["IMR"]) == []


def test_by_name_view_follows_commits() -> None:
    index = ProjectIndex({"snippet.py": SNIPPET})
    assert index.view("snippet.py") is None
    added = index.with_changes({"models.py": BUILDER})
    assert "snippet.py" in added.stale_views
    view = added.view("snippet.py")
    assert view is not None and view.symbols["create_model"].returns == MODEL
    assert view.symbols["create_model"].via.startswith("resolved by name")
    twice = added.with_changes({"models2.py": BUILDER})  # a second definition beside it
    assert "snippet.py" in twice.stale_views and twice.view("snippet.py") is None
    elsewhere = added.with_changes({"lib/models.py": BUILDER})  # one beside, one elsewhere
    assert "snippet.py" in elsewhere.stale_views
    found = elsewhere.view("snippet.py")
    assert found is not None and found.symbols["create_model"].via.startswith(
        "resolved by name to the one definition in its folder, models.py")
    back = twice.with_changes({"models2.py": None})  # (the name table is updated, not rebuilt)
    assert back.view("snippet.py") == view and back._definers == added._definers
    unrelated = added.with_changes({"notes.py": "def other():\n    return 1\n"})
    assert "snippet.py" not in unrelated.stale_views
    assert unrelated.view("snippet.py") == view


# -- star-import chains, higher-order builders, shadowing, loaders ------------------------------

def test_builder_through_a_chain_of_star_imports(tmp_path: Path) -> None:
    found = _scan(tmp_path, {
        "nets/models.py": BUILDER,
        "nets/__init__.py": "",
        "common.py": "from nets.models import *\n",
        "helpers.py": "from common import *\n",
        "train.py": "from helpers import *\n\nfor lr in [0.1, 0.01]:\n"
                    "    m = create_model()\n    m.fit(x, y)\n"}, ["IMR"])
    assert found == [("train.py", "IMR", 4, "builder-in-loop")]


HIGHER_ORDER = """
    from models import create_model
    from zoo import make_forest


    def evaluate(build_fn, x, y):
        model = build_fn()
        model.fit(x, y)


    for name in ["a", "b"]:
        evaluate(create_model, x, y)
    for name in ["a", "b"]:
        evaluate(make_forest, x, y)
    """


def test_higher_order_builder_from_another_module(tmp_path: Path) -> None:
    findings = _findings(tmp_path, {"models.py": BUILDER, "train.py": HIGHER_ORDER}, ["IMR"])
    assert [(Path(f.path).name, f.line, f.variant) for f in findings] == [
        ("train.py", 6, "called-in-loop")]
    assert "parameter build_fn of evaluate receives create_model" in findings[0].via


SEARCH = """
    from models import create_model
    from scikeras.wrappers import KerasRegressor
    from sklearn.model_selection import GridSearchCV

    reg = KerasRegressor(model=create_model, epochs=5, verbose=0)
    search = GridSearchCV(reg, {"model__units": [8, 16]}, cv=3)
    search.fit(x, y)
    """


def test_build_fn_from_another_module_searched_here(tmp_path: Path) -> None:
    """Every fold and grid point rebuilds the model in ``models.py``: reported at the wrapper,
    the one place in this module that repeats it."""
    assert _scan(tmp_path, {"models.py": BUILDER, "search.py": SEARCH}, ["IMR"]) == [
        ("search.py", "IMR", 5, "build-fn")]


@pytest.mark.parametrize("files", [
    # the builder releases the previous model itself
    {"models.py": BUILDER.replace("    model = keras.Sequential",
                                  "    keras.backend.clear_session()\n    model = keras.Sequential"),
     "search.py": SEARCH},
    # the wrapper is built but never searched or cross-validated
    {"models.py": BUILDER, "search.py": SEARCH.replace(
        "search = GridSearchCV(reg, {\"model__units\": [8, 16]}, cv=3)\n    search.fit(x, y)\n",
        "reg.fit(x, y)\n")},
    # the factory builds no Keras model
    {"models.py": "def create_model(units=8):\n    return Forest(units)\n", "search.py": SEARCH},
], ids=["builder-clears", "no-search", "not-a-keras-builder"])
def test_build_fn_from_another_module_near_misses(tmp_path: Path, files: dict[str, str]) -> None:
    assert _scan(tmp_path, files, ["IMR"]) == []


def test_higher_order_with_no_model_factory_is_not_imr(tmp_path: Path) -> None:
    assert _scan(tmp_path, {"train.py": HIGHER_ORDER.replace(
        "from models import create_model", "from zoo import create_model")}, ["IMR"]) == []


def test_dict_of_builders_looked_up_per_item() -> None:
    src = textwrap.dedent("""
        import keras

        def cnn():
            return keras.Sequential([keras.layers.Conv2D(4, 3)])

        def mlp():
            return keras.Sequential([keras.layers.Dense(4)])

        BUILDERS = {"cnn": cnn, "mlp": mlp}
        for name in ["cnn", "mlp"]:
            build = BUILDERS[name]
            model = build()
            model.fit(x, y)
        """).lstrip()
    findings = scan_source(src, "t.py", ["IMR"])
    assert [(f.line, f.variant) for f in findings] == [(12, "builder-in-loop")]
    assert findings[0].via.startswith("higher-order builder: build is bound to BUILDERS[name]")
    # the same table of scikit-learn estimators: nothing
    sk = src.replace("keras.Sequential([keras.layers.Conv2D(4, 3)])", "Forest()").replace(
        "keras.Sequential([keras.layers.Dense(4)])", "Logistic()")
    assert scan_source(sk, "t.py", ["IMR"]) == []


SHADOW = """
    import keras
    from keras.models import load_model as keras_load_model


    def load_model(path):
        {clear}return keras_load_model(path, compile=False)
    """
LOOP = "from utils import load_model\n\nfor path in paths:\n    m = load_model(path)\n" \
       "    m.evaluate(x, y)\n"


def test_project_function_shadowing_a_keras_name(tmp_path: Path) -> None:
    found = _scan(tmp_path, {"utils.py": SHADOW.format(clear=""), "main.py": LOOP}, ["IMR"])
    assert found == [("main.py", "IMR", 4, "builder-in-loop")]


def test_shadowing_function_that_clears_the_session_is_followed(tmp_path: Path) -> None:
    clear = "keras.backend.clear_session()\n        "
    assert _scan(tmp_path, {"utils.py": SHADOW.format(clear=clear), "main.py": LOOP},
                 ["IMR"]) == []


def test_module_function_shadowing_its_own_keras_import() -> None:
    src = textwrap.dedent("""
        import keras
        from keras.models import load_model

        def load_model(path):
            return keras.models.load_model(path)

        for path in paths:
            model = load_model(path)
            model.evaluate(x, y)
        """).lstrip()
    findings = scan_source(src, "t.py", ["IMR"])
    assert [(f.line, f.variant, f.model_api) for f in findings] == [
        (8, "builder-in-loop", "builder")]


@pytest.mark.parametrize(("call", "api"), [
    ("hub.load(url)", "load"),
    ("tf.saved_model.load(path)", "load"),
    ("model_from_json(open(path).read())", "load"),
    ("load_qmodel(path)", "load"),
])
def test_loader_table_in_a_loop(call: str, api: str) -> None:
    src = ("import tensorflow as tf\nimport tensorflow_hub as hub\n"
           "from qkeras.utils import load_qmodel\nfrom tensorflow.keras.models import "
           f"model_from_json\nfor path in paths:\n    m = {call}\n    use(m)\n")
    findings = scan_source(src, "t.py", ["IMR"])
    assert [(f.line, f.model_api) for f in findings] == [(6, api)]
    assert scan_source(src.replace("for path in paths:\n    m", "if ready:\n    m"), "t.py",
                       ["IMR"]) == []


def test_hub_layer_inside_a_model_built_in_a_loop_is_one_finding() -> None:
    src = ("import tensorflow as tf\nimport tensorflow_hub as hub\nfor url in urls:\n"
           "    m = tf.keras.Sequential([hub.KerasLayer(url), tf.keras.layers.Dense(1)])\n"
           "    m.fit(x, y)\n")
    findings = scan_source(src, "t.py", ["IMR"])
    assert [(f.line, f.model_api) for f in findings] == [(4, "sequential")]


def test_frozen_graph_imported_per_request_and_once() -> None:
    handler = textwrap.dedent("""
        import tensorflow as tf
        from flask import Flask

        app = Flask(__name__)

        @app.route("/classify")
        def handle():
            graph_def = tf.GraphDef()
            graph_def.ParseFromString(open("frozen.pb", "rb").read())
            tf.import_graph_def(graph_def, name="")
            return "ok"
        """).lstrip()
    findings = scan_source(handler, "app.py", ["IMR"], prefilter=False)
    assert [(f.line, f.variant, f.model_api) for f in findings] == [
        (10, "request-handler", "graph-import")]
    once = handler.replace('@app.route("/classify")\n', "")  # handle() is called once
    assert scan_source(once, "app.py", ["IMR"], prefilter=False) == []
    fresh = handler.replace('    tf.import_graph_def(graph_def, name="")',
                            '    with tf.Graph().as_default():\n'
                            '        tf.import_graph_def(graph_def, name="")')
    assert scan_source(fresh, "app.py", ["IMR"], prefilter=False) == []


# -- DIR: predict overridden in a Model subclass of another module ------------------------------

POLICY = """
    import tensorflow as tf


    class Policy(tf.keras.Model):
        def call(self, x):
            return self.dense(x)
    {predict}
    """
RUN = """
    from nets import Policy

    policy = Policy()
    while not done:
        action = policy.predict(obs[None])
    """


def test_predict_of_a_project_model_class_across_files(tmp_path: Path) -> None:
    found = _scan(tmp_path, {"nets.py": POLICY.format(predict=""), "run.py": RUN}, ["DIR"])
    assert found == [("run.py", "DIR", 5, "predict-in-loop")]


def test_predict_overridden_with_a_direct_call_is_not_dir(tmp_path: Path) -> None:
    own = "\n        def predict(self, x):\n            return self(x, training=False)\n"
    assert _scan(tmp_path, {"nets.py": POLICY.format(predict=own), "run.py": RUN},
                 ["DIR"]) == []


# -- GCB -----------------------------------------------------------------------------------------

def test_gcb_message_names_the_origin_and_size() -> None:
    src = ("import numpy as np\nimport tensorflow as tf\nx = tf.placeholder(tf.float32)\n"
           "table = tf.constant(np.random.rand(4096, 1024))\n")
    (f,) = scan_source(src, "t.py", ["GCB"])
    assert "data: np.random.rand(4096, 1024)" in f.message
    assert "about 4.2M elements (16 MiB as float32)" in f.message
    small = src.replace("4096, 1024", "64, 64")
    assert scan_source(small, "t.py", ["GCB"]) == []


def test_gcb_through_a_parameter_and_a_dataframe_column() -> None:
    src = textwrap.dedent("""
        import numpy as np
        import pandas as pd
        import tensorflow as tf

        def build(prices):
            graph = tf.Graph()
            with graph.as_default():
                series = tf.constant(prices)
            return graph

        df = pd.read_csv("prices.csv")
        build(np.asarray(df["close"]))
        build([1.0, 2.0])
        """).lstrip()
    (f,) = scan_source(src, "t.py", ["GCB"])
    assert f.line == 8 and f.variant == "graph-constant"
    assert f.via == "parameter prices of build (called from <module>)"
    assert "read_csv" in f.message


def test_gcb_hdf5_weights_per_layer_and_a_config_value() -> None:
    src = textwrap.dedent("""
        import h5py
        import json
        import tensorflow.compat.v1 as tf
        tf.disable_eager_execution()

        with h5py.File("weights.h5", "r") as f:
            kernels = [f[name][:] for name in f]
        cfg = json.load(open("cfg.json"))
        w0 = tf.Variable(kernels[0])
        lr = tf.constant(cfg["lr"])
        """).lstrip()
    findings = scan_source(src, "t.py", ["GCB"])
    assert [f.line for f in findings] == [9]


# -- US and UGE ----------------------------------------------------------------------------------

def test_fresh_graph_session_per_restart_is_reported_and_still_checked_for_close() -> None:
    src = textwrap.dedent("""
        import tensorflow as tf
        for restart in range(3):
            g = tf.Graph()
            with g.as_default():
                build()
            sess = tf.Session(graph=g)
            sess.run(op)
        """).lstrip()
    findings = scan_source(src, "t.py", ["US"])
    assert sorted((f.line, f.variant) for f in findings) == [
        (6, "session-in-loop-fresh-graph"), (6, "session-no-close")]
    fresh = next(f for f in findings if f.variant == "session-in-loop-fresh-graph")
    assert fresh.confidence < 0.6
    closed = src.replace("    sess.run(op)\n", "    sess.run(op)\n    sess.close()\n")
    assert [f.variant for f in scan_source(closed, "t.py", ["US"])] == [
        "session-in-loop-fresh-graph"]


def test_retrace_through_a_value_derived_from_the_counter() -> None:
    src = textwrap.dedent("""
        import math
        import tensorflow as tf

        @tf.function
        def step(x, scale):
            return x * scale

        for epoch in range(10):
            warm = min(1.0, epoch / 5)
            scale = math.exp(-0.1 * epoch) * warm
            step(batch, scale)
            step(batch, tf.constant(scale))
        """).lstrip()
    findings = scan_source(src, "t.py", ["UGE"])
    assert [(f.line, f.variant) for f in findings] == [(11, "retrace-python-arg")]
    assert findings[0].via.startswith("derived from the loop counter through scale = ")
    fixed = src.replace("warm = min(1.0, epoch / 5)", "warm = 1.0").replace(
        "math.exp(-0.1 * epoch) * warm", "warm * 2")
    assert scan_source(fixed, "t.py", ["UGE"]) == []


# -- methods another module calls from a loop (US sessions, DIR predict) ------------------------

AGENT = """
    import tensorflow as tf


    class Agent:
        def __init__(self):
            self.model = tf.keras.Sequential([tf.keras.layers.Dense(2)])

        def step(self, obs):
            return self.model.predict(obs)

        def evaluate(self, x):
            sess = tf.compat.v1.Session()
            out = sess.run(x)
            sess.close()
            return out
    """
TRAIN = """
    from agent import Agent

    agent = Agent()
    while True:
        agent.step(obs)
        agent.evaluate(x)
    """


def test_methods_called_per_step_from_another_module(tmp_path: Path) -> None:
    findings = _findings(tmp_path, {"agent.py": AGENT, "train.py": TRAIN}, ["DIR", "US"])
    assert sorted((Path(f.path).name, f.rule, f.line, f.variant, f.via) for f in findings) == [
        ("agent.py", "DIR", 9, "predict-in-called-fn",
         "Agent.step is called from a loop in train.py"),
        ("agent.py", "US", 12, "session-in-loop",
         "Agent.evaluate is called from a loop in train.py")]


Q_AGENT = """
    import numpy as np
    import tensorflow as tf


    class Agent:
        def __init__(self):
            self.model = tf.keras.Sequential([tf.keras.layers.Dense(2)])

        def act(self, state):
            return int(np.argmax(self._q(state)))

        def _q(self, s):
            return self.model.predict(s, verbose=0)
    """


def test_predict_reached_through_a_method_another_module_calls_per_step(tmp_path: Path
                                                                        ) -> None:
    train = "from agent import Agent\n\nagent = Agent()\nwhile True:\n    obs = step(agent.act(obs))\n"
    findings = _findings(tmp_path, {"agent.py": Q_AGENT, "train.py": train}, ["DIR"])
    assert [(Path(f.path).name, f.line, f.variant, f.via) for f in findings] == [
        ("agent.py", 13, "predict-in-called-fn",
         "Agent._q is called by Agent.act, which is called from a loop in train.py")]
    once = train.replace("while True:\n    obs = ", "obs = ")
    assert _scan(tmp_path, {"agent.py": Q_AGENT, "train.py": once}, ["DIR"]) == []


@pytest.mark.parametrize("train", [
    TRAIN.replace("while True:\n        agent.step(obs)\n        agent.evaluate(x)",
                  "agent.step(obs)\n    agent.evaluate(x)"),  # called once
    TRAIN.replace("from agent import Agent", "from zoo import Agent"),  # another Agent
], ids=["no-loop", "not-imported"])
def test_methods_called_once_or_of_another_class(tmp_path: Path, train: str) -> None:
    assert _scan(tmp_path, {"agent.py": AGENT, "train.py": train}, ["DIR", "US"]) == []


def test_loop_callers_follow_commits() -> None:
    agent, train = textwrap.dedent(AGENT).lstrip(), textwrap.dedent(TRAIN).lstrip()
    index = ProjectIndex({"agent.py": agent, "train.py": train})
    view = index.view("agent.py")
    assert view is not None and view.loop_called == (("evaluate", "train.py"),
                                                      ("step", "train.py"))
    once = index.with_changes({"train.py": "from agent import Agent\nAgent().step(obs)\n"})
    assert "agent.py" in once.stale_views and once.view("agent.py") is None
    other = index.with_changes({"notes.py": "import os\nfor p in ps:\n    os.step(p)\n"})
    assert "agent.py" not in other.stale_views and other.view("agent.py") == view


QNET = """
    import tensorflow as tf


    class QNet(tf.keras.Model):
        def call(self, x):
            return self.dense(x)

        def values(self, obs):
            return self.predict(obs)
    {predict}
    """
STEPS = """
    from nets import QNet

    net = QNet()
    for episode in range(100):
        obs, done = env.reset(), False
        while not done:
            q = net.values(obs[None])
            obs, reward, done, _ = env.step(q.argmax())
    """


def test_self_predict_in_a_model_subclass_called_per_step_elsewhere(tmp_path: Path) -> None:
    findings = _findings(tmp_path, {"nets.py": QNET.format(predict=""), "steps.py": STEPS},
                         ["DIR"])
    assert [(Path(f.path).name, f.line, f.variant, f.via) for f in findings] == [
        ("nets.py", 9, "predict-in-called-fn", "QNet.values is called from a loop in steps.py")]
    own = "\n        def predict(self, x):\n            return self(x, training=False)\n"
    assert _scan(tmp_path, {"nets.py": QNET.format(predict=own), "steps.py": STEPS},
                 ["DIR"]) == []


def test_gcb_pretrained_weights_per_layer_in_a_graph_building_module() -> None:
    """A model module with no Session of its own (the training script imports it): TF1
    graph-building calls make it graph code; weights come from a ``.mat`` file through a
    helper's return value and two parameters."""
    src = textwrap.dedent("""
        import scipy.io
        import tensorflow as tf

        def _kernel(layers, i):
            w = layers[0][i][0][0][2][0][0]
            return w, w.shape

        def conv(layers, x, i, name):
            with tf.variable_scope(name):
                w, _ = _kernel(layers, i)
                return tf.nn.conv2d(x, tf.constant(w), [1, 1, 1, 1], "SAME")

        def build(path, image):
            mat = scipy.io.loadmat(path)
            return conv(mat["layers"], image, 0, "conv1_1")
        """).lstrip()
    (f,) = scan_source(src, "vgg.py", ["GCB"])
    assert f.line == 11 and f.variant == "graph-constant"
    assert f.via == ("returned by _kernel(); parameter layers of conv (called from build)")
    eager = src.replace("with tf.variable_scope(name):", "if name:")
    assert scan_source(eager, "vgg.py", ["GCB"]) == []


def test_frozen_graph_imported_per_prediction() -> None:
    src = textwrap.dedent("""
        import tensorflow as tf

        def predict(image):
            graph_def = tf.GraphDef()
            graph_def.ParseFromString(open("frozen.pb", "rb").read())
            tf.import_graph_def(graph_def, name="")
            with tf.Session() as sess:
                return sess.run("out:0", feed_dict={"in:0": image})
        """).lstrip()
    findings = scan_source(src, "serve.py", ["IMR"])
    assert [(f.line, f.variant, f.model_api) for f in findings] == [
        (6, "request-handler", "graph-import")]
    own_graph = src.replace('    tf.import_graph_def(graph_def, name="")\n',
                            '    graph = tf.Graph()\n    with graph.as_default():\n'
                            '        tf.import_graph_def(graph_def, name="")\n')
    assert scan_source(own_graph, "serve.py", ["IMR"]) == []
    once = src.replace("def predict(image):", "def load_and_run(image):")
    assert scan_source(once, "serve.py", ["IMR"]) == []


def test_custom_estimator_predict_makes_name_guesses_no_evidence() -> None:
    src = textwrap.dedent("""
        import tensorflow as tf

        class ValueEstimator:
            def predict(self, state, sess=None):
                return (sess or tf.get_default_session()).run(self.value, {self.state: state})

        def episode(policy_model, keras_model, states):
            for state in states:
                policy_model.predict(state)
                keras_model.predict(state)

        net = tf.keras.Sequential([tf.keras.layers.Dense(1)])
        for state in states:
            net.predict(state)
        """).lstrip()
    findings = scan_source(src, "ac.py", ["DIR"])
    assert [(f.line, f.variant) for f in findings] == [(14, "predict-in-loop")]
    keras_only = src.replace("class ValueEstimator:", "class ValueEstimator:\n    pass\n\n\n"
                             "class Unused:")
    assert len(scan_source(keras_only.replace("def predict", "def value"), "ac.py",
                           ["DIR"])) == 3


def test_straight_line_rewrap_through_outputs_taken_from_the_previous_model() -> None:
    src = textwrap.dedent("""
        import keras
        inputs = keras.Input((32, 32, 3))
        backbone = keras.applications.ResNet50(include_top=False, input_tensor=inputs)
        c4, c5 = [backbone.get_layer(n).output for n in ["conv4_block6_out", "conv5_block3_out"]]
        backbone = keras.Model(inputs=inputs, outputs={4: c4, 5: c5})
        """).lstrip()
    assert scan_source(src, "t.py", ["IMR"]) == []
    rebuilt = src.replace("outputs={4: c4, 5: c5}", "outputs=keras.layers.Dense(2)(inputs)")
    assert [(f.line, f.variant) for f in scan_source(rebuilt, "t.py", ["IMR"])] == [
        (5, "straight-line")]


# -- DIR: predict bound on the instance; Keras spelled without an import in a fragment ----------

#: a Model subclass whose __init__ binds ``predict`` to a tf.function over its layers
POLICY_ATTR = """
    import tensorflow as tf


    class Policy(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = tf.keras.layers.Dense(16, activation="relu")
            self.head = tf.keras.layers.Dense(1, activation="sigmoid")

            @tf.function
            def predict(x):
                {body}

            self.predict = predict
    """
SCORE = """
    from nets import Policy


    def score(model, env, episodes):
        total = 0.0
        for _ in range(episodes):
            state, done = env.reset(), False
            while not done:
                state, reward, done = env.step(model.predict(state))
                total += reward
        return total
    """
OWN_BODY = "return self.head(self.hidden(x))"
KERAS_BODY = "return self.inner.predict(x, verbose=0)"


@pytest.mark.parametrize("run", [RUN, SCORE], ids=["instance-of-the-class", "untyped-parameter"])
def test_predict_bound_on_the_instance_to_a_direct_call_is_not_dir(tmp_path: Path,
                                                                    run: str) -> None:
    assert _scan(tmp_path, {"nets.py": POLICY_ATTR.format(body=OWN_BODY), "run.py": run},
                 ["DIR"]) == []


def test_predict_bound_on_the_instance_to_keras_predict_is_still_dir(tmp_path: Path) -> None:
    found = _scan(tmp_path, {"nets.py": POLICY_ATTR.format(body=KERAS_BODY), "run.py": RUN},
                  ["DIR"])
    assert found == [("run.py", "DIR", 5, "predict-in-loop")]


def _dir_lines(src: str) -> list[int]:
    found = scan_source(src, "t.py", ["DIR"])
    assert found == scan_source(src, "t.py", ["DIR"], prefilter=False)
    return [f.line for f in found]


def test_predict_bound_on_the_instance_in_the_same_module() -> None:
    body = textwrap.dedent(POLICY_ATTR).lstrip()
    loop = "\n\npolicy = Policy()\nfor frame in frames:\n    action = policy.predict(frame[None])\n"
    own = body.format(body=OWN_BODY) + loop
    assert _dir_lines(own) == []
    keras_predict = body.format(body=KERAS_BODY) + loop
    assert _dir_lines(keras_predict) == [keras_predict.count("\n")]


#: a course fragment: the notebook it is pasted into imports keras and numpy
FRAGMENT = textwrap.dedent("""
    model = keras.Sequential([keras.layers.Dense(8), keras.layers.Dense(4)])
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    for i in range(400):
        x_pred = np.zeros((1, 4))
        x_pred[0, i % 4] = 1.0
        preds = model.predict(x_pred, verbose=0)[0]
    """).lstrip()


@pytest.mark.parametrize("spelling", ["keras.Sequential", "tf.keras.Sequential",
                                      "keras.models.load_model"])
def test_keras_model_of_a_fragment_that_never_imports_keras(spelling: str) -> None:
    src = FRAGMENT.replace("keras.Sequential", spelling, 1)
    if spelling.endswith("load_model"):
        src = src.replace("([keras.layers.Dense(8), keras.layers.Dense(4)])", '("lm.keras")')
    assert _dir_lines(src) == [6]
    (f,) = scan_source(src, "t.py", ["DIR"])
    assert f.variant == "predict-in-loop"
    assert f"with {spelling.split('.')[0]} never imported in this file" in f.via
    assert f.confidence == 0.7
    assert fix_source(src, "t.py", ["DIR"]) == (src, [])  # not sure it is Keras: no autofix


@pytest.mark.parametrize("prefix", [
    "keras = load_backend()\n",  # the fragment binds the name itself
    "from zoo.models import *\n",  # a star import may bind it
    "import zoo as keras\n",  # an import binds it to something else
], ids=["assigned", "star-import", "imported-alias"])
def test_fragment_names_bound_here_are_not_taken_for_keras(prefix: str) -> None:
    assert _dir_lines(prefix + FRAGMENT) == []


def test_fragment_value_that_is_not_a_model_is_not_dir() -> None:
    src = FRAGMENT.replace("model = keras.Sequential([keras.layers.Dense(8), "
                           "keras.layers.Dense(4)])", "model = keras.utils.Progbar(400)")
    assert _dir_lines(src) == []


#: a course's training script and the fragment run after it in the same session
TRAIN_SCRIPT = textwrap.dedent("""
    import numpy as np
    from keras.models import Sequential
    from keras.layers import Dense, LSTM

    model = Sequential()
    model.add(LSTM(64, input_shape=(40, 1)))
    model.add(Dense(30, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    model.fit(np.zeros((8, 40, 1)), np.zeros((8, 30)), epochs=1)
    """).lstrip()
GENERATE = textwrap.dedent("""
    pattern = list(seed)
    for i in range(500):
        x = np.reshape(pattern, (1, len(pattern), 1)) / 30.0
        prediction = model.predict(x, verbose=0)
        index = int(np.argmax(prediction))
        pattern = pattern[1:] + [index]
    """).lstrip()


def test_fragment_predicting_with_the_model_of_the_script_beside_it(tmp_path: Path) -> None:
    findings = _findings(tmp_path, {"lesson/train.py": TRAIN_SCRIPT,
                                    "lesson/generate.py": GENERATE,
                                    "other/train.py": TRAIN_SCRIPT}, ["DIR"])
    assert [(Path(f.path).parent.name, Path(f.path).name, f.line, f.variant)
            for f in findings] == [("lesson", "generate.py", 4, "predict-in-loop")]
    (f,) = findings
    assert f.via.startswith("the model model of lesson/train.py, the script beside")
    assert f.confidence == 0.7


@pytest.mark.parametrize("files", [
    # two scripts beside it build a model of that name: which one ran is unknown
    {"train.py": TRAIN_SCRIPT, "train2.py": TRAIN_SCRIPT, "generate.py": GENERATE},
    # the one beside it builds no Keras model
    {"train.py": "from sklearn.linear_model import Ridge\n\nmodel = Ridge()\n",
     "generate.py": GENERATE},
    # the script is in another folder
    {"lesson1/train.py": TRAIN_SCRIPT, "lesson2/generate.py": GENERATE},
    # a file that imports is not a fragment of another script's session
    {"train.py": TRAIN_SCRIPT, "generate.py": "import numpy as np\n" + GENERATE},
    # the fragment binds the name itself
    {"train.py": TRAIN_SCRIPT, "generate.py": "model = load(path)\n" + GENERATE},
], ids=["two-scripts-beside", "not-keras", "another-folder", "imports", "bound-here"])
def test_fragment_model_near_misses(tmp_path: Path, files: dict[str, str]) -> None:
    assert _scan(tmp_path, files, ["DIR"]) == []


def test_fragment_model_view_follows_commits() -> None:
    index = ProjectIndex({"generate.py": GENERATE})
    assert index.view("generate.py") is None
    added = index.with_changes({"train.py": TRAIN_SCRIPT})
    assert "generate.py" in added.stale_views
    view = added.view("generate.py")
    assert view is not None and view.symbols["model"].returns == MODEL
    assert "model" in view.call_names  # a fragment without TensorFlow words is scanned
    twice = added.with_changes({"train2.py": TRAIN_SCRIPT})  # a second one beside it
    assert "generate.py" in twice.stale_views and twice.view("generate.py") is None
    back = twice.with_changes({"train2.py": None})
    assert back.view("generate.py") == view
    renamed = added.with_changes({"train.py": TRAIN_SCRIPT.replace("model", "net")})
    assert "generate.py" in renamed.stale_views and renamed.view("generate.py") is None
