"""Harness pieces without TensorFlow: run table, RSS growth, append store, device check."""

from __future__ import annotations

import pandas as pd
import pytest

from leakwatt.common import LeakwattError
from leakwatt.pipeline.harness import RUNS_COLUMNS, plan_runs, rss_growth_mb_per_s
from leakwatt.pipeline.harness.measure import check_device
from leakwatt.pipeline.harness.runner import Nvml
from leakwatt.pipeline.harness.store import RUN_KEY, AppendStore

PAIRS = pd.DataFrame([{"pair_id": p, "smell": "IMR", "smelly_path": f"{p}/s.py",
                       "clean_path": f"{p}/c.py"} for p in ("a", "b", "c")])


def test_blocks_hold_every_cell_once_and_do_not_move_when_reps_grow():
    plan2 = plan_runs(PAIRS, 2, seed=1, device="cpu")
    plan3 = plan_runs(PAIRS, 3, seed=1, device="cpu")
    assert plan3[:12] == plan2 and [r.order for r in plan3] == list(range(1, 19))
    for rep in (1, 2, 3):
        block = [(r.pair_id, r.variant) for r in plan3 if r.rep == rep]
        assert sorted(block) == sorted((p, v) for p in "abc" for v in ("smelly", "clean"))
    orders = {tuple((r.pair_id, r.variant) for r in plan3 if r.rep == rep) for rep in (1, 2, 3)}
    assert len(orders) > 1  # shuffled, not the same order every block
    assert plan_runs(PAIRS, 3, seed=2, device="cpu") != plan3


def test_rss_growth_is_the_slope_of_the_second_half():
    series = [(t * 0.5, 500.0 if t < 10 else 500.0 + 4.0 * t * 0.5, None) for t in range(21)]
    assert rss_growth_mb_per_s(series) == pytest.approx(4.0)
    assert rss_growth_mb_per_s([(0.0, 1.0, None)]) is None
    assert rss_growth_mb_per_s([]) is None


def test_store_cuts_a_torn_line_and_keys_rows(tmp_path):
    path = tmp_path / "runs.csv"
    store = AppendStore(path, RUNS_COLUMNS, RUN_KEY)
    store.append({"pair_id": "a", "variant": "smelly", "rep": 1, "device": "cpu",
                  "status": "ok"})
    with open(path, "a") as fh:
        fh.write("a,IMR,clean,1,cp")  # a writer killed mid-row
    store = AppendStore(path, RUNS_COLUMNS, RUN_KEY)
    assert store.keys() == {("a", "smelly", 1, "cpu")}
    store.append({"pair_id": "a", "variant": "clean", "rep": 1, "device": "cpu",
                  "status": "crashed", "error": "x, \"quoted\"\nsecond line"})
    frame = store.read()
    assert len(frame) == 2 and frame.loc[1, "error"] == "x, \"quoted\"\nsecond line"


def test_store_refuses_a_foreign_header(tmp_path):
    (tmp_path / "runs.csv").write_text("pair_id,other\nx,1\n")
    with pytest.raises(LeakwattError, match="lacks column 'smell'"):
        AppendStore(tmp_path / "runs.csv", RUNS_COLUMNS, RUN_KEY)


@pytest.mark.skipif(Nvml().available(), reason="this machine has an NVIDIA GPU")
def test_gpu_device_without_a_gpu_is_a_clear_error():
    with pytest.raises(LeakwattError, match="--device gpu: no NVIDIA GPU found"):
        check_device("gpu")
    assert check_device("cpu") is None
