"""The project index: calls resolved across a project's modules, in `scan` and in `mine`."""

from __future__ import annotations

import argparse
import csv
import io
import textwrap
from pathlib import Path

import pytest
from fixtures.mining.gitrepo import GitRepo

from leakwatt.mining import lint
from leakwatt.mining.corpus import CorpusEntry
from leakwatt.mining.mine import mine_corpus
from leakwatt.mining.rules.project import ProjectIndex, module_names
from leakwatt.mining.rules.values import GRADS, MODEL, SCALAR, TENSOR
from leakwatt.mining.scan import clear_cache, scan_paths, scan_source
from leakwatt.params import MineParams

MODELS = textwrap.dedent("""
    from tensorflow import keras


    def create_model(units=8):
        model = keras.Sequential([keras.layers.Dense(units), keras.layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        return model
    """).lstrip()
TRAIN_NO_TF = textwrap.dedent("""
    import numpy as np
    from models import create_model

    x, y = np.zeros((10, 2)), np.zeros(10)
    for fold in range(5):
        model = create_model()
        model.fit(x, y)
    """).lstrip()
TRAIN_TF = "import tensorflow as tf\n" + TRAIN_NO_TF
BUILDER_LINE = {TRAIN_NO_TF: 6, TRAIN_TF: 7}


def _folder(tmp_path: Path, train: str) -> Path:
    (tmp_path / "models.py").write_text(MODELS)
    (tmp_path / "train.py").write_text(train)
    return tmp_path


@pytest.mark.parametrize("train", [TRAIN_NO_TF, TRAIN_TF], ids=["no-tf-import", "tf-import"])
def test_scan_folder_reports_builder_from_another_module(tmp_path: Path, train: str) -> None:
    clear_cache()
    folder = _folder(tmp_path, train)
    report = scan_paths([folder], jobs=1)
    found = [(Path(f.path).name, f.rule, f.line, f.variant) for f in report.findings]
    assert found == [("train.py", "IMR", BUILDER_LINE[train], "kfold")]
    assert report.errors == []


@pytest.mark.parametrize("train", [TRAIN_NO_TF, TRAIN_TF], ids=["no-tf-import", "tf-import"])
def test_leakwatt_scan_cli_on_the_folder(tmp_path: Path, train: str) -> None:
    clear_cache()
    folder = _folder(tmp_path, train)
    parser = argparse.ArgumentParser()
    lint.add_arguments(parser)
    args = parser.parse_args([str(folder)])
    args.stdout, args.stderr = io.StringIO(), io.StringIO()
    rc = lint.run(args)
    out = args.stdout.getvalue()
    assert rc == 1
    assert f"train.py:{BUILDER_LINE[train]}:" in out and "IMR" in out


def test_without_the_index_the_other_module_is_unknown(tmp_path: Path) -> None:
    # The same script alone (no project): the builder is unknown, so nothing is reported.
    assert scan_source(TRAIN_TF, "train.py") == []
    assert scan_source(TRAIN_NO_TF, "train.py") == []


@pytest.mark.parametrize("train", [TRAIN_NO_TF, TRAIN_TF], ids=["no-tf-import", "tf-import"])
def test_mine_reports_builder_from_another_module(tmp_path: Path, train: str) -> None:
    clear_cache()
    repo = GitRepo(tmp_path / "proj")
    repo.write("models.py", MODELS).write("train.py", train).commit("k-fold training")
    entry = CorpusEntry(url=str(repo.path), commit=repo.git("rev-parse", "HEAD"), name="proj")
    mine_corpus([entry], tmp_path / "out", tmp_path / "cache",
                MineParams(jobs=1, rules=("IMR",), history=False), progress=False)
    with open(tmp_path / "out" / "instances.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["path"], r["rule"], r["line"]) for r in rows] == [
        ("train.py", "IMR", str(BUILDER_LINE[train]))]


def test_builder_that_clears_the_session_releases(tmp_path: Path) -> None:
    clear_cache()
    (tmp_path / "models.py").write_text(MODELS.replace(
        "    model = keras", "    keras.backend.clear_session()\n    model = keras"))
    (tmp_path / "train.py").write_text(TRAIN_TF)
    assert scan_paths([tmp_path], jobs=1).findings == []


def test_relative_star_and_package_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "nets").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "nets" / "__init__.py").write_text("")
    (pkg / "nets" / "builders.py").write_text(MODELS)
    (pkg / "utils.py").write_text("from .nets.builders import create_model\n")
    (pkg / "run.py").write_text(textwrap.dedent("""
        from .utils import *
        from pkg.nets import builders

        for lr in [0.1, 0.01]:
            a = create_model()
            a.fit(x, y)
        for lr in [0.1, 0.01]:
            b = builders.create_model()
            b.fit(x, y)
        """).lstrip())
    clear_cache()
    found = [(Path(f.path).name, f.line) for f in scan_paths([tmp_path], jobs=1).findings]
    assert found == [("run.py", 5), ("run.py", 8)]


def test_function_facts_across_modules() -> None:
    steps = textwrap.dedent("""
        import tensorflow as tf
        from tensorflow import keras
        from nets import Net

        loss_object = keras.losses.SparseCategoricalCrossentropy()

        def apply_gradient(optimizer, loss_fn, model, x, y):
            with tf.GradientTape() as tape:
                logits = model(x)
                loss = loss_fn(y, logits)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return logits, loss

        def grads_of(model, x):
            with tf.GradientTape() as tape:
                y = model(x)
            return tape.gradient(y, model.trainable_variables)

        def mean(x):
            return tf.reduce_mean(x)

        def reset():
            keras.backend.clear_session()

        def maybe_reset(flag):
            if flag:
                keras.backend.clear_session()

        def make():
            return Net()
        """)
    nets = "import keras\n\nclass Base(keras.Model):\n    pass\n\nclass Net(Base):\n    pass\n"
    index = ProjectIndex({"lib/steps.py": steps, "lib/nets.py": nets})
    facts = index.facts("lib/steps.py")
    assert facts["apply_gradient"].elements == (TENSOR, TENSOR)
    assert facts["grads_of"].returns == GRADS
    assert facts["mean"].returns == SCALAR
    assert facts["reset"].clears and not facts["maybe_reset"].clears
    assert facts["make"].returns == MODEL
    assert facts["Net"].returns == MODEL and facts["loss_object"].returns == "lossfn"
    assert index.resolve_module("lib/train.py", "steps", 0) == "lib/steps.py"
    view = index.view("lib/train.py", "from steps import apply_gradient as ag, loss_object\n")
    assert view is not None and set(view.symbols) == {"ag", "loss_object"}
    assert index.view("lib/train.py", "import tensorflow as tf\n") is None


def test_index_updates_from_changed_files() -> None:
    index = ProjectIndex({"models.py": MODELS, "train.py": TRAIN_TF})
    assert index.view("train.py") is not None
    changed = index.with_changes({"models.py": "def create_model():\n    return 1\n"})
    assert changed.view("train.py") is None
    assert index.with_changes({"models.py": None}).view("train.py") is None
    assert index.view("train.py") is not None  # the old index is unchanged


def test_module_names() -> None:
    assert module_names("a/b/c.py") == ["a.b.c", "b.c", "c"]
    assert module_names("a/b/__init__.py") == ["a.b", "b"]
    assert module_names("a-b/c.py") == []


def test_tensors_returned_by_another_modules_function_are_kept(tmp_path: Path) -> None:
    (tmp_path / "steps.py").write_text(textwrap.dedent("""
        import tensorflow as tf

        def apply_gradient(optimizer, loss_object, model, x, y):
            with tf.GradientTape() as tape:
                logits = model(x)
                loss = loss_object(y_true=y, y_pred=logits)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return logits, loss
        """).lstrip())
    (tmp_path / "train.py").write_text(textwrap.dedent("""
        from steps import apply_gradient

        losses = []
        for epoch in range(10):
            for x, y in dataset:
                logits, loss = apply_gradient(opt, loss_object, model, x, y)
                losses.append(loss)
        """).lstrip())
    clear_cache()
    found = [(Path(f.path).name, f.rule, f.line) for f in scan_paths([tmp_path], jobs=1).findings]
    assert found == [("train.py", "UTR", 7)]
    (tmp_path / "train.py").write_text((tmp_path / "train.py").read_text().replace(
        "losses.append(loss)", "losses.append(float(loss))"))
    clear_cache()
    assert scan_paths([tmp_path], jobs=1).findings == []


# -- the cheap look before a parse (scan speed, issue 21) -----------------------------------

def test_names_bound_cheaply_are_bound_for_the_parse_too() -> None:
    """``_bound_cheaply`` only ever removes names that the parse (``_unbound_calls``) also
    counts as bound: one-line and parenthesised imports, ``as`` names, defs at any depth."""
    from leakwatt.mining.rules.project import _bound_cheaply, _unbound_calls

    source = (
        "import numpy as np, os.path\n"
        "from models import create_model as cm, build\n"
        "from layers import (\n    dense,\n    conv as c2,\n)\n"
        "from other import (a,  # a comment stops the cheap look\n    b)\n"
        "import k; kk()\n"
        "def outer(p):\n    class Inner:\n        async def run(self):\n            pass\n"
        "    q()\n"
        "s = 'a tensor of shape (3, 3)'\n"
        "cm(); build(); dense(); c2(); a(); b(); create_model(); q(); np(); Inner(); run()\n"
    )
    cheap = _bound_cheaply(source)
    assert cheap == {"np", "os", "cm", "build", "dense", "c2", "outer", "Inner", "run"}
    called = {"cm", "build", "dense", "c2", "a", "b", "create_model", "q", "np", "Inner",
              "run", "kk"}
    unbound = _unbound_calls(source, called)
    assert unbound == {"create_model", "q", "kk"}
    assert not cheap & unbound


def test_prose_before_a_parenthesis_is_not_a_call_to_resolve(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A docstring's "of shape (3, 3)" does not make ``shape`` a name to resolve by name; a
    real bare call of a sibling's builder still is."""
    from leakwatt.mining.rules.project import ProjectIndex

    index = ProjectIndex({
        "lib/ops.py": "def shape(x):\n    return x\n",
        "lib/builders.py": ("from tensorflow import keras\n\n"
                            "def create_model():\n    return keras.Sequential()\n"),
        "lib/use.py": ('"""Returns a tensor of shape (3, 3)."""\nimport numpy as np\n'
                       "for i in range(3):\n    m = create_model()\n"),
    })
    view = index.view("lib/use.py")
    assert view is not None
    assert "create_model" in view.symbols and "shape" not in view.symbols
    assert "not imported" in view.symbols["create_model"].via
