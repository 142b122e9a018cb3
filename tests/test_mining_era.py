"""The era mined instances record (TF1 graph-mode vs TF2 eager code), on real snippets."""

from __future__ import annotations

import json

import pytest

from leakwatt.mining.era import ERAS, TF1, TF2, source_era

CASES = [
    ("import tensorflow as tf\nsess = tf.Session()\n", TF1),
    ("import tensorflow as tf\nx = tf.placeholder(tf.float32, [None])\n", TF1),
    ("import tensorflow.compat.v1 as tf\ntf.disable_v2_behavior()\n", TF1),
    ("from keras import backend as K\nK.set_session(s)\n", TF1),
    ("import tensorflow as tf\nfor b in ds:\n    out = sess.run(op)\n", TF1),
    ("import tensorflow as tf\n\n@tf.function\ndef f(x):\n    return x\n", TF2),
    ("from tensorflow import keras\nmodel = keras.Sequential()\n", TF2),
    ("from scikeras.wrappers import KerasClassifier\n", TF2),
    ("import requests\ns = requests.Session\n", ""),
    ("import numpy as np\n", ""),
    ("import requests\ns = requests.Session()\n", ""),
]


@pytest.mark.parametrize(("source", "era"), CASES)
def test_source_era(source: str, era: str) -> None:
    assert source_era(source) == era
    assert source_era(source.encode()) == era
    assert era in ERAS


def test_notebook_json_is_read_as_it_stands() -> None:
    nb = {"cells": [{"cell_type": "code", "source": ["import tensorflow as tf\n",
                                                      "sess = tf.InteractiveSession()\n"]}]}
    assert source_era(json.dumps(nb)) == TF1


def test_mined_instances_record_the_era_of_their_file(tmp_path) -> None:
    """A real git repository with one TF1 graph-mode file and one TF2 eager file: each mined
    instance carries its file's era in instances.csv."""
    import csv

    from fixtures.mining.gitrepo import GitRepo

    from leakwatt.mining.corpus import CorpusEntry
    from leakwatt.mining.mine import mine_corpus
    from leakwatt.params import MineParams

    repo = GitRepo(tmp_path / "proj")
    repo.write("graph.py", """
        import tensorflow as tf
        x = tf.placeholder(tf.float32, [None, 10])
        sess = tf.Session()
        for batch in batches:
            pred = tf.argmax(model(x), 1)
            print(sess.run(pred, feed_dict={x: batch}))
        """).write("eager.py", """
        import tensorflow as tf

        @tf.function
        def train_step(x, step):
            return model(x)

        for step in range(1000):
            train_step(batch, step)
        """).commit("two eras")
    entry = CorpusEntry(url=str(repo.path), commit=repo.git("rev-parse", "HEAD"), name="proj")
    mine_corpus([entry], tmp_path / "out", tmp_path / "cache",
                MineParams(jobs=1, rules=("UGE", "US"), history=False), progress=False)
    with open(tmp_path / "out" / "instances.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    eras = {(r["path"], r["rule"], r["era"]) for r in rows}
    assert ("graph.py", "UGE", TF1) in eras and ("graph.py", "US", TF1) in eras
    assert ("eager.py", "UGE", TF2) in eras
    assert {r["era"] for r in rows} == {TF1, TF2}
