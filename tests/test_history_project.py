"""History mining through the project index: events in files whose findings resolve through
another module of the repository, at the commits that change that module.

Every scenario is a real git repository built here; the detectors run on it for real.
"""

from __future__ import annotations

import json

from fixtures.mining.gitrepo import CLEAN, GitRepo

from leakwatt.mining.history import walk_history
from leakwatt.mining.rules.project import ProjectIndex
from leakwatt.mining.scan import scan_paths

# Code written for these tests (not taken from any project).

MODELS = """
from tensorflow import keras


def create_model():
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model
"""

# create_model no longer builds a Keras model (a config dict for some other framework).
MODELS_PLAIN = """
def create_model():
    return {"layers": [4, 1], "loss": "mse"}
"""

# create_model releases the previous session on every path before it builds the model.
MODELS_CLEARS = """
from tensorflow import keras


def create_model():
    keras.backend.clear_session()
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model
"""

# No TensorFlow import at all: the model comes from the project's own module.
TRAIN = """
from models import create_model


def train_folds(x, y):
    for fold in range(5):
        model = create_model()
        model.fit(x, y, epochs=1, verbose=0)
"""

TRAIN_CLEARED = """
from tensorflow import keras

from models import create_model


def train_folds(x, y):
    for fold in range(5):
        keras.backend.clear_session()
        model = create_model()
        model.fit(x, y, epochs=1, verbose=0)
"""

UNRELATED = """
import json


def load(path):
    with open(path) as fh:
        return json.load(fh)
"""


def imr(result):
    return [(e["event"], e["commit"], e["path"], e["removal"], e["via"])
            for e in result.events if e["rule"] == "IMR"]


def kfold_repo(tmp_path) -> tuple[GitRepo, str, str]:
    repo = GitRepo(tmp_path / "r")
    first = repo.write("models.py", MODELS).write("util.py", UNRELATED).commit("model builder")
    second = repo.write("train.py", TRAIN).commit("k-fold training")
    return repo, first, second


def test_builder_imported_from_another_module_is_introduced_in_the_loop_file(tmp_path):
    repo, first, second = kfold_repo(tmp_path)
    result = walk_history(repo.path, second, repo="r", rules=["IMR"])
    assert imr(result) == [("introduced", second, "train.py", "", "")]
    (event,) = result.events
    assert (event["function"], event["snippet"], event["line"]) == (
        "train_folds", "model = create_model()", 6)
    # each file alone (the walk before the project index) misses it
    assert walk_history(repo.path, second, repo="r", rules=["IMR"], project=False).events == []


def test_a_commit_changing_only_the_builder_module_removes_the_instance(tmp_path):
    repo, _, second = kfold_repo(tmp_path)
    third = repo.write("models.py", MODELS_PLAIN).commit("config dicts, not Keras models")
    fourth = repo.write("models.py", MODELS).commit("back to Keras")
    result = walk_history(repo.path, fourth, repo="r", rules=["IMR"])
    assert imr(result) == [
        ("introduced", second, "train.py", "", ""),
        ("removed", third, "train.py", "code_changed", "models.py"),
        ("introduced", fourth, "train.py", "", "models.py")]
    assert len({e["instance"] for e in result.events}) == 1
    assert result.dependent_checks == 2  # train.py twice; util.py imports nothing of the project


def test_clear_session_in_the_loop_removes_the_instance(tmp_path):
    repo, _, second = kfold_repo(tmp_path)
    third = repo.write("train.py", TRAIN_CLEARED).commit("clear_session per fold")
    result = walk_history(repo.path, third, repo="r", rules=["IMR"])
    assert imr(result) == [("introduced", second, "train.py", "", ""),
                           ("removed", third, "train.py", "code_changed", "")]


def test_a_builder_that_starts_clearing_the_session_removes_the_instance(tmp_path):
    repo, _, second = kfold_repo(tmp_path)
    third = repo.write("models.py", MODELS_CLEARS).commit("builder releases the old session")
    result = walk_history(repo.path, third, repo="r", rules=["IMR"])
    assert imr(result) == [("introduced", second, "train.py", "", ""),
                           ("removed", third, "train.py", "code_changed", "models.py")]


def test_the_module_added_after_its_importer(tmp_path):
    repo = GitRepo(tmp_path / "r")
    repo.write("train.py", TRAIN).commit("trainer first")
    second = repo.write("models.py", MODELS).commit("then the builder it imports")
    third = repo.delete("models.py").commit("builder removed")
    result = walk_history(repo.path, third, repo="r", rules=["IMR"])
    assert imr(result) == [("introduced", second, "train.py", "", "models.py"),
                           ("removed", third, "train.py", "code_changed", "models.py")]


def test_changes_reach_through_star_imports_of_a_package(tmp_path):
    repo = GitRepo(tmp_path / "r")
    repo.write("pkg/__init__.py", "from .nets import *\n").write("pkg/nets.py", MODELS)
    repo.write("train.py", TRAIN.replace("from models import", "from pkg import"))
    first = repo.commit("package")
    second = repo.write("pkg/nets.py", MODELS_PLAIN).commit("plain configs")
    result = walk_history(repo.path, second, repo="r", rules=["IMR"])
    assert imr(result) == [("introduced", first, "train.py", "", ""),
                           ("removed", second, "train.py", "code_changed", "pkg/nets.py")]


def test_a_merge_updates_the_index_its_children_start_from(tmp_path):
    repo, _, second = kfold_repo(tmp_path)
    repo.git("checkout", "--quiet", "-b", "plain")
    on_branch = repo.write("models.py", MODELS_PLAIN).commit("plain configs on a branch")
    repo.git("checkout", "--quiet", "main")
    repo.write("README.md", "docs\n").commit("docs on main")
    repo.git("merge", "--quiet", "--no-ff", "--no-edit", "plain")
    after_merge = repo.write("models.py", MODELS).commit("Keras again")
    result = walk_history(repo.path, after_merge, repo="r", rules=["IMR"])
    # the merge brings the plain builder to main (no events of its own); the next commit
    # compares against that
    assert imr(result) == [("introduced", second, "train.py", "", ""),
                           ("removed", on_branch, "train.py", "code_changed", "models.py"),
                           ("introduced", after_merge, "train.py", "", "models.py")]


def test_a_window_starts_from_its_parents_tree(tmp_path):
    repo, _, _ = kfold_repo(tmp_path)
    repo.write("util.py", UNRELATED + "\nX = 1\n").commit("constant")
    pin = repo.write("models.py", MODELS_PLAIN).commit("plain configs")
    result = walk_history(repo.path, pin, repo="r", rules=["IMR"], max_commits=2)
    assert imr(result) == [("removed", pin, "train.py", "code_changed", "models.py")]


def test_a_notebook_importing_the_builder(tmp_path):
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
              "source": TRAIN.strip().splitlines(keepends=True)}]
    notebook = json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                           "nbformat_minor": 5})
    repo = GitRepo(tmp_path / "r")
    first = repo.write("models.py", MODELS).write("folds.ipynb", notebook).commit("notebook")
    second = repo.write("models.py", MODELS_PLAIN).commit("plain configs")
    result = walk_history(repo.path, second, repo="r", rules=["IMR"])
    assert imr(result) == [("introduced", first, "folds.ipynb", "", ""),
                           ("removed", second, "folds.ipynb", "code_changed", "models.py")]


def test_what_history_leaves_at_the_pin_is_what_the_pin_scan_finds(tmp_path):
    repo, _, _ = kfold_repo(tmp_path)
    repo.write("models.py", MODELS_PLAIN).commit("plain")
    repo.write("eval.py", TRAIN.replace("train_folds", "eval_folds")).commit("eval loop")
    repo.write("models.py", MODELS).commit("Keras")
    pin = repo.write("train.py", TRAIN_CLEARED).write("base.py", CLEAN).commit("clear")
    result = walk_history(repo.path, pin, repo="r", rules=["IMR", "UTR"])
    alive: dict[tuple[str, str, str, str], int] = {}
    for e in result.events:
        key = (e["path"], e["rule"], e["function"], e["snippet"])
        alive[key] = alive.get(key, 0) + (1 if e["event"] == "introduced" else -1)
    report = scan_paths([repo.path], select=["IMR", "UTR"], jobs=1)
    at_pin = sorted((str(f.path).split("/r/", 1)[1], f.rule, f.function, f.snippet)
                    for f in report.findings)
    assert sorted(k for k, n in alive.items() if n > 0) == at_pin == [
        ("eval.py", "IMR", "eval_folds", "model = create_model()")]


def test_index_names_the_views_a_change_can_alter():
    index = ProjectIndex({"models.py": MODELS, "train.py": TRAIN, "util.py": UNRELATED,
                          "pkg/__init__.py": "", "pkg/a.py": "from . import b\n"})
    for path in index.files:
        index.view(path)
    assert index.view("train.py") is not None
    changed = index.with_changes({"models.py": MODELS_PLAIN})
    assert changed.stale_views == {"models.py", "train.py"}
    assert changed.view("train.py") is None
    assert changed.modules_read("train.py") == {"models.py"}
    # a module appearing where an import looked for one
    added = index.with_changes({"pkg/b.py": MODELS})
    assert added.stale_views == {"pkg/a.py"}
    untouched = index.with_changes({"util.py": UNRELATED + "\nX = 1\n"})
    assert untouched.stale_views == {"util.py"}
    assert untouched.view("train.py") is index.view("train.py")  # carried over, not recomputed
    # models.py changed but its facts did not: train.py's view is kept (early cut-off)
    same_facts = index.with_changes({"models.py": MODELS.replace("Dense(1)", "Dense(2)")})
    assert same_facts.stale_views == {"models.py"}
    assert same_facts.view("train.py") is index.view("train.py")


def test_views_hold_only_the_names_a_file_spells():
    index = ProjectIndex({"models.py": MODELS + "\n\ndef other():\n    return create_model()\n",
                          "train.py": TRAIN, "pkg/__init__.py": "import models\n",
                          "run.py": "import pkg\n\nm = pkg.models.create_model()\n"})
    assert set(index.view("train.py").symbols) == {"create_model"}  # not ``other``
    assert set(index.view("run.py").symbols) == {"pkg.models.create_model"}
    assert index.view("run.py", "import pkg\n") is None


def test_a_change_that_keeps_the_facts_compares_no_dependent_file(tmp_path):
    repo, _, second = kfold_repo(tmp_path)
    third = repo.write("models.py", MODELS + "\n\ndef describe():\n    return 'mlp'\n").commit(
        "describe the model")
    result = walk_history(repo.path, third, repo="r", rules=["IMR"])
    assert imr(result) == [("introduced", second, "train.py", "", "")]
    assert result.dependent_checks == 0
