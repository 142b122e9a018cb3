"""`leakwatt reproduce --instances FILE` on instances found by the real scanner in small files
written here: a k-fold loop gives an ``imr-folds-*`` pair, a per-sample predict loop ``dir-*``
pairs, an unclosed session a ``us-*`` pair; with real tiny TensorFlow every pair passes the
equivalence and equal-work check, and the smelly runs show their positive control."""

from __future__ import annotations

import json
import textwrap

import pandas as pd
import pytest

from leakwatt.contracts import INSTANCES
from leakwatt.mining.scan import scan_paths
from leakwatt.pipeline.cli import main as cli_main
from leakwatt.pipeline.repros.equivalence import check_pairs, run_program

SOURCES = {
    "kfold.py": """
        import keras
        from sklearn.model_selection import KFold

        for train_idx, val_idx in KFold(5).split(x):
            model = keras.Sequential([keras.layers.Dense(1)])
            model.compile(loss="mse")
            model.fit(x[train_idx], y[train_idx])
        """,
    "predict.py": """
        from tensorflow import keras

        model = keras.models.load_model("m.keras")
        for frame in frames:
            label = model.predict(frame[None])
        """,
    "session.py": """
        import tensorflow as tf

        sess = tf.compat.v1.Session()
        sess.run(init)
        print(sess.run(y))
        """,
}


def _instances(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name, code in SOURCES.items():
        (src / name).write_text(textwrap.dedent(code).lstrip())
    report = scan_paths([src])
    rows = [dict(f.to_dict(), repo="fixture", commit="0" * 40) for f in report.findings]
    frame = pd.DataFrame(rows)
    path = tmp_path / "instances.csv"
    frame.reindex(columns=list(INSTANCES.columns)).to_csv(path, index=False)
    return frame, path


@pytest.mark.slow
def test_reproduce_writes_folds_dir_and_us_pairs_that_do_equal_work(tmp_path):
    found, path = _instances(tmp_path)
    assert set(zip(found["rule"], found["variant"], strict=True)) == {
        ("IMR", "kfold"), ("DIR", "predict-in-loop"), ("US", "session-no-close")}
    out = tmp_path / "pairs"
    assert cli_main(["reproduce", "--instances", str(path), "--out", str(out), "--scale",
                     "tiny", "--pairs", "paper-imr", "--no-equivalence"]) == 0
    pairs = pd.read_csv(out / "pairs.csv").set_index("pair_id")
    assert {"imr-folds-fit", "dir-predict-on-batch", "dir-predict-batched",
            "dir-predict-call", "us-session-with"} <= set(pairs.index)
    assert not (out / "unreproduced.csv").exists() or pd.read_csv(
        out / "unreproduced.csv").empty

    # the measured code path: Keras 3 for all, and graph mode (TF1-era code) for the session pair
    graph_pairs = pd.read_csv(out / "pairs.csv")
    graph_pairs[graph_pairs["pair_id"] == "us-session-with"].to_csv(out / "pairs.csv", index=False)
    graph = check_pairs(out, rtol=1e-4, timeout_s=300, frameworks=["keras2-graph"])
    pairs.reset_index().to_csv(out / "pairs.csv", index=False)
    checked = check_pairs(out, rtol=1e-4, timeout_s=300, frameworks=["keras3"])
    assert len(graph) == 1 and set(checked["pair_id"]) == set(pairs.index)
    for frame in (checked, graph):
        bad = frame[(frame["status"] != "equivalent") | (frame["equal_work"] != "yes")]
        assert bad.empty, bad[["pair_id", "framework", "status", "detail"]].to_dict("records")

    # positive control: the smelly DIR program builds datasets per sample, the autofix none
    counts = {}
    for variant in ("smelly", "clean"):
        result_path = tmp_path / f"dir-{variant}.json"
        result, error, _ = run_program(out / "dir-predict-on-batch" / f"{variant}.py", "tiny",
                                       result_path, 300, framework="keras3")
        assert result is not None, error
        counts[variant] = result["leak_counts"]
    assert counts["smelly"][-1] > counts["smelly"][0] > 0
    assert counts["clean"][-1] == counts["clean"][0]
    meta = json.loads((out / "us-session-with" / "meta.json").read_text())
    assert meta["leak_evidence"].startswith("US: ") and meta["autofix"].startswith("yes")
