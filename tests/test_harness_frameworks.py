"""Keras 3, Keras 2 and graph mode as a factor, end to end through `leakwatt measure` (real TF).

The growth assertions are the positive controls of issue 9: under keras2-graph the smelly IMR
program's default graph grows round by round and the clean one's does not; paper-utr's smelly
program keeps tensors that the clean one drops.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from leakwatt.contracts import RUNS
from leakwatt.pipeline.cli import main

LEVELS = ["keras3", "keras2", "keras2-graph"]


def _measure(out, pair: str, frameworks: str) -> pd.DataFrame:
    code = main(["measure", "--pair", pair, "--scale", "tiny", "--device", "cpu",
                 "--repetitions", "1", "--warmup", "0", "--cooldown", "0", "--control-runs", "1",
                 "--frameworks", frameworks, "--out", str(out), "--no-progress"])
    assert code == 0
    runs = pd.read_csv(out / "runs.csv")
    RUNS.validate(runs, "runs.csv")
    return runs


@pytest.mark.slow
def test_paper_imr_under_every_level(tmp_path):
    every = _measure(tmp_path, "paper-imr", ",".join(LEVELS))
    assert sorted(zip(every["framework"], every["variant"], every["instrumented"],
                      strict=True)) == sorted(
        (f, v, k) for f in LEVELS for v in ("smelly", "clean") for k in (0, 1))
    assert set(every["status"]) == {"ok"}, every[["framework", "variant", "error"]]
    measured = every[every["instrumented"] == 0]
    # issue 18: no control code ran in a measured window, and its rows carry no counts
    assert (measured["control_calls"] == 0).all()
    assert measured["leak_count_first"].isna().all()
    assert (measured["round_end_s"].map(lambda t: len(json.loads(t))) == 3).all()
    runs = every[every["instrumented"] == 1]
    assert (runs["control_calls"] == 3).all()
    versions = dict(zip(runs["framework"], runs["keras_version"].astype(str), strict=False))
    assert versions["keras3"].startswith("3.")
    assert versions["keras2"].startswith("2.") and versions["keras2-graph"].startswith("2.")
    assert (runs["leak_evidence"].str.len() > 0).all()
    assert runs[["leak_count_first", "leak_count_last"]].notna().all().all()
    for row in runs.itertuples():
        counts = json.loads(row.leak_counts)
        assert counts[0] == row.leak_count_first and counts[-1] == row.leak_count_last
    graph = runs[runs["framework"] == "keras2-graph"].set_index("variant")
    assert graph.loc["smelly", "leak_count_last"] > graph.loc["smelly", "leak_count_first"]
    assert graph.loc["clean", "leak_count_last"] <= graph.loc["clean", "leak_count_first"]
    assert every["final_loss"].nunique() == 1  # one training, whatever the level or run kind
    env = json.loads((tmp_path / "environment.json").read_text())
    assert env["versions"]["tf-keras"] and env["measurement"]["params"]["frameworks"] == LEVELS


@pytest.mark.slow
def test_paper_utr_smelly_keeps_tensors_and_clean_does_not(tmp_path):
    every = _measure(tmp_path, "paper-utr", "keras3")
    assert set(every["status"]) == {"ok"}, every[["variant", "error"]]
    runs = every[every["instrumented"] == 1]
    by = runs.set_index("variant")
    assert by.loc["smelly", "leak_count_last"] > by.loc["smelly", "leak_count_first"]
    assert by.loc["clean", "leak_count_last"] <= by.loc["clean", "leak_count_first"]
    assert (runs["work_train_steps"] > 0).all()
    assert by.loc["smelly", "work_train_steps"] == by.loc["clean", "work_train_steps"]
