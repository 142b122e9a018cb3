"""Harness pieces without TensorFlow: run table, RSS growth, append store, device check,
framework levels, idle interleaving, header upgrade, samples after exit."""

from __future__ import annotations

import pandas as pd
import pytest

from leakwatt.common import LeakwattError
from leakwatt.pipeline.harness import RUNS_COLUMNS, plan_runs, rss_growth_mb_per_s
from leakwatt.pipeline.harness.measure import (
    IDLE_REPS_MAX,
    IdleSlot,
    check_device,
    interleave_idle,
    supported_frameworks,
)
from leakwatt.pipeline.harness.runner import Nvml, _program_samples
from leakwatt.pipeline.harness.store import RUN_KEY, AppendStore
from leakwatt.pipeline.harness.supersede import upgrade_columns

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
                  "status": "ok", "framework": "keras3"})
    with open(path, "a") as fh:
        fh.write("a,IMR,clean,1,cp")  # a writer killed mid-row
    store = AppendStore(path, RUNS_COLUMNS, RUN_KEY)
    assert store.keys() == {("a", "smelly", 1, "cpu", "keras3")}
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


def test_frameworks_multiply_the_cells_a_pair_supports():
    levels = ("keras3", "keras2", "keras2-graph")
    plan = plan_runs(PAIRS, 2, seed=1, device="cpu", frameworks=levels,
                     supported={"c": ("keras3",)})
    block = sorted((r.pair_id, r.variant, r.framework) for r in plan if r.rep == 1)
    expected = sorted([(p, v, f) for p in "ab" for v in ("smelly", "clean") for f in levels]
                      + [("c", v, "keras3") for v in ("smelly", "clean")])
    assert block == expected and len(plan) == 2 * len(expected)
    assert [r.order for r in plan] == list(range(1, len(plan) + 1))
    assert {r.framework for r in plan_runs(PAIRS, 1, seed=1, device="cpu")} == {"keras3"}


def test_idle_runs_sit_in_the_second_half_of_the_first_blocks():
    plan = plan_runs(PAIRS, 5, seed=1, device="cpu")
    schedule = interleave_idle(plan, 5, seed=1, device="cpu")
    assert [x for x in schedule if not isinstance(x, IdleSlot)] == plan
    slots = [(i, x.rep) for i, x in enumerate(schedule) if isinstance(x, IdleSlot)]
    assert [rep for _, rep in slots] == list(range(1, IDLE_REPS_MAX + 1))
    for index, rep in slots:
        block = [i for i, x in enumerate(schedule) if not isinstance(x, IdleSlot) and x.rep == rep]
        assert block[0] + len(block) // 2 <= index <= block[-1] + 1  # inside its block
    assert interleave_idle(plan, 5, seed=1, device="cpu") == schedule


def test_pair_meta_names_the_levels_it_supports(tmp_path):
    (tmp_path / "p").mkdir()
    assert supported_frameworks(tmp_path, "p") == ("keras3", "keras2", "keras2-graph")
    (tmp_path / "p" / "meta.json").write_text('{"frameworks": ["keras3", "keras2"]}')
    assert supported_frameworks(tmp_path, "p") == ("keras3", "keras2")
    (tmp_path / "p" / "meta.json").write_text('{"frameworks": ["keras4"]}')
    with pytest.raises(LeakwattError, match="frameworks: 'keras4' is not one of"):
        supported_frameworks(tmp_path, "p")


def test_rows_written_before_the_framework_column_are_kept_as_keras3(tmp_path):
    old = [c for c in RUNS_COLUMNS if c not in ("framework", "window_start", "load_start")]
    frame = pd.DataFrame([{"pair_id": "a", "smell": "IMR", "variant": v, "rep": 1,
                           "device": "cpu", "status": "ok"} for v in ("smelly", "clean")],
                         columns=old)
    frame.to_csv(tmp_path / "runs.csv", index=False)
    added = upgrade_columns(tmp_path / "runs.csv", RUNS_COLUMNS,
                            {"framework": "keras3", "window_start": "process"})
    assert added == ["framework", "window_start", "load_start"]
    store = AppendStore(tmp_path / "runs.csv", RUNS_COLUMNS, RUN_KEY)
    assert store.keys() == {("a", v, 1, "cpu", "keras3") for v in ("smelly", "clean")}
    assert set(store.read()["window_start"]) == {"process"}
    assert upgrade_columns(tmp_path / "runs.csv", RUNS_COLUMNS, {}) == []


def test_samples_after_the_program_ended_are_dropped():
    series = [(0.5, 100.0, None), (1.0, 300.0, None), (1.5, 320.0, None), (2.0, 0.0, None),
              (2.5, 310.0, None)]
    report = {"end_monotonic": 1002.2, "ready_monotonic": 1000.8}
    kept, ready = _program_samples(series, report, start=1000.0)
    assert kept == series[:3] and ready == pytest.approx(0.8)
    kept, ready = _program_samples(series, {}, start=1000.0)  # no report: only 0 MB goes
    assert kept == [s for s in series if s[1] > 0] and ready is None


def test_rss_growth_starts_at_ready():
    series = [(t * 0.5, 200.0 + 10.0 * t * 0.5, None) for t in range(4)]
    series += [(t * 0.5, 500.0 + 2.0 * t * 0.5, None) for t in range(4, 21)]
    assert rss_growth_mb_per_s(series, ready_s=2.0) == pytest.approx(2.0)


def test_levels_and_devices_a_pair_does_not_list_are_skipped_and_said(tmp_path, capsys):
    from leakwatt.params import MeasureParams
    from leakwatt.pipeline.harness import measure_pairs

    for pid, meta in (("gpuonly", '{"devices": ["gpu"]}'), ("eager", '{"frameworks": ["keras3"]}')):
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "meta.json").write_text(meta)
        for variant in ("smelly", "clean"):
            (tmp_path / pid / f"{variant}.py").write_text("")
    pd.DataFrame([{"pair_id": p, "smell": "IMR", "smelly_path": f"{p}/smelly.py",
                   "clean_path": f"{p}/clean.py"} for p in ("gpuonly", "eager")]).to_csv(
        tmp_path / "pairs.csv", index=False)
    params = MeasureParams(repetitions=1, warmup=0, idle_baseline=False,
                           frameworks=("keras2",))
    runs = measure_pairs(tmp_path, None, tmp_path / "out", "cpu", "tiny", params,
                         show_progress=False)
    assert runs.empty
    env = pd.read_json(tmp_path / "out" / "environment.json", typ="series")
    reasons = {(s["pair_id"], s["framework"]): s["reason"] for s in env["measurement"]["skipped"]}
    assert reasons == {("gpuonly", "keras2"): "gpuonly/meta.json lists devices gpu only",
                       ("eager", "keras2"): "eager/meta.json lists frameworks keras3 only"}
    assert "skipping eager under keras2" in capsys.readouterr().err


def test_measurement_profiles(repo_root):
    from leakwatt.params import FRAMEWORKS, load_params

    full = load_params(repo_root / "params.yaml")
    assert full.measure.frameworks == FRAMEWORKS  # dvc repro runs every level by default
    demo = load_params(repo_root / "params.yaml", "demo")
    assert demo.measure.frameworks == ("keras3",)  # the demo stays about 5 minutes
    reference = load_params(repo_root / "params.yaml", "reference")
    assert reference.measure.devices == ("cpu",) and reference.measure.repetitions >= 10
    assert reference.measure.frameworks == FRAMEWORKS and reference.reproduce.scale == "tiny"
    from leakwatt.pipeline.repros import BUILTIN_PAIRS

    paper = {p for p, spec in BUILTIN_PAIRS.items() if spec.source == "paper"}
    assert set(reference.reproduce.pairs) == paper  # every paper pair, nothing else built in
    gpu = load_params(repo_root / "params.yaml", "gpu")
    assert gpu.measure.devices == ("gpu",) and gpu.reproduce.scale == "paper"
    with pytest.raises(LeakwattError, match=r"frameworks: 'keras4' is not one of"):
        from leakwatt.params import params_from_dict

        params_from_dict({"measure": {"frameworks": ["keras3", "keras4"]}}, "p.yaml")
