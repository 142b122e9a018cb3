"""Issue 18: the dose study. Measured runs carry no instrumentation, the plan is counterbalanced
and resumable, and the dose-response analysis recovers a known cost per event.

The programs here are real: the generated reproduction programs under TensorFlow at tiny scale
(marked slow), and small non-TensorFlow programs that honour the program contract for the
harness (they run under the real child process and real CodeCarbon).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leakwatt.analysis import dose as dose_analysis
from leakwatt.analysis.stats import analyze, is_dose_study
from leakwatt.contracts import RUNS
from leakwatt.params import AnalyzeParams, MeasureParams
from leakwatt.pipeline.harness.dose import AA_SMELL, DOSE_KEY, measure_doses, plan_dose_runs
from leakwatt.pipeline.harness.measure import events_per_round
from leakwatt.pipeline.repros import build_pairs
from leakwatt.pipeline.repros.bodies import BODIES

PARAMS = MeasureParams(repetitions=4, low_dose_repetitions=2, doses=(2, 6, 20), control_runs=1,
                       aa_pairs=("p1",), warmup=0, cooldown_s=0.0, sample_interval_s=0.2,
                       timeout_s=60, memory_limit_mb=2048, idle_baseline=False,
                       frameworks=("keras3",))
COMBOS = [("p1", "IMR", "keras3", "p1/smelly.py", "p1/clean.py"),
          ("p2", "UTR", "keras3", "p2/smelly.py", "p2/clean.py")]


# -- the plan ---------------------------------------------------------------------------------

def test_plan_counts_every_cell_as_asked() -> None:
    plan = plan_dose_runs(COMBOS, PARAMS.doses, PARAMS, "cpu", aa=[("p1", "keras3", "p1/clean.py")])
    measured = Counter((r.pair_id, r.variant, r.rounds) for r in plan if not r.instrumented)
    for pid in ("p1", "p2"):
        for variant in ("smelly", "clean"):
            assert measured[(pid, variant, 20)] == 4  # repetitions at the highest dose
            assert measured[(pid, variant, 2)] == measured[(pid, variant, 6)] == 2
    controls = [r for r in plan if r.instrumented]
    assert sorted((r.pair_id, r.variant, r.rounds, r.rep) for r in controls) == sorted(
        (p, v, 2, 1) for p in ("p1", "p2") for v in ("smelly", "clean"))
    aa = [r for r in plan if r.smell == AA_SMELL]
    assert len(aa) == 8 and {r.program for r in aa} == {"p1/clean.py"}
    assert {r.rounds for r in aa} == {2} and {r.pair_id for r in aa} == {"p1~aa"}
    # keys are unique: a control run shares its rep with a measured run, not its key
    keys = [(r.pair_id, r.variant, r.rep, r.framework, r.rounds, r.instrumented) for r in plan]
    assert len(set(keys)) == len(keys)


def test_plan_runs_both_variants_back_to_back_in_abba_order() -> None:
    plan = plan_dose_runs(COMBOS, PARAMS.doses, PARAMS, "cpu")
    for first, second in zip(plan[::2], plan[1::2], strict=True):
        assert (first.pair_id, first.rounds, first.rep, first.instrumented) == (
            second.pair_id, second.rounds, second.rep, second.instrumented)
        assert {first.variant, second.variant} == {"smelly", "clean"}
        assert first.first_variant == first.variant == second.first_variant
    by_cell: dict[tuple, list[str]] = {}
    for r in plan[::2]:
        by_cell.setdefault((r.pair_id, r.rounds, r.instrumented), []).append(r.variant)
    for cell, firsts in by_cell.items():
        # alternating from block to block: ABBA, balanced over every even number of blocks
        assert all(a != b for a, b in zip(firsts, firsts[1:], strict=False)), cell
        if len(firsts) % 2 == 0:
            assert firsts.count("smelly") == firsts.count("clean"), cell
    assert [r.order for r in plan] == list(range(1, len(plan) + 1))


def test_plan_keeps_its_blocks_when_repetitions_are_added() -> None:
    small = plan_dose_runs(COMBOS, PARAMS.doses, PARAMS, "cpu")
    more = MeasureParams(**{**PARAMS.__dict__, "repetitions": 6})
    large = plan_dose_runs(COMBOS, more.doses, more, "cpu")
    key = [(r.pair_id, r.variant, r.rep, r.rounds, r.instrumented, r.first_variant)
           for r in small]
    assert [(r.pair_id, r.variant, r.rep, r.rounds, r.instrumented, r.first_variant)
            for r in large][:len(key)] == key


def test_events_per_round() -> None:
    assert events_per_round("IMR", 1000, 64) == 1
    assert events_per_round("UTR", 1000, 64) == 16  # 15 full batches and one of 40
    assert events_per_round("UTR", 1024, 64) == 16


# -- the programs -------------------------------------------------------------------------------

def test_every_body_hands_its_control_to_record_leak_unevaluated() -> None:
    """A body that computed its control before calling record_leak would run it in every
    measured window; each passes a callable, evaluated only with --instrumented."""
    for name, body in BODIES.items():
        calls = re.findall(r"record_leak\(([^\n]*)", body)
        assert calls, name
        assert all(c.startswith("lambda:") for c in calls), (name, calls)


def _run_program(path: Path, out: Path, *extra: str) -> dict:
    subprocess.run([sys.executable, str(path), "--scale", "tiny", "--out", str(out), *extra],
                   check=True, capture_output=True, timeout=240, cwd=path.parent)
    return json.loads(out.read_text())


@pytest.mark.slow
def test_a_measured_run_runs_no_control_code_and_a_control_run_counts(tmp_path: Path) -> None:
    build_pairs(tmp_path / "pairs", ["paper-imr"], "tiny")
    smelly = tmp_path / "pairs" / "paper-imr" / "smelly.py"
    measured = _run_program(smelly, tmp_path / "m.json", "--rounds", "3", "--samples", "64",
                            "--framework", "keras2-graph")
    assert measured["instrumented"] == 0 and measured["control_calls"] == 0
    assert measured["leak_counts"] == []
    ends = measured["round_end_s"]
    assert len(ends) == 3 and all(b > a for a, b in zip([0.0, *ends[:-1]], ends, strict=True))
    assert len(measured["round_cpu_s"]) == 3 and measured["samples"] == 64
    assert measured["work"]["train_steps"] == 3 * 2  # 64 samples in batches of 32, 3 rounds
    control = _run_program(smelly, tmp_path / "c.json", "--rounds", "3", "--samples", "64",
                           "--framework", "keras2-graph", "--instrumented")
    assert control["instrumented"] == 1 and control["control_calls"] == 3
    counts = control["leak_counts"]
    assert len(counts) == 3 and counts[0] < counts[1] < counts[2]  # the graph grows: the leak
    # the same computation either way
    assert control["weights_sha256"] == measured["weights_sha256"]


# -- the harness, with small programs that honour the contract ------------------------------------

FAKE = """\
import argparse, json, time
p = argparse.ArgumentParser()
for a in ("--scale", "--out", "--framework"):
    p.add_argument(a)
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--samples", type=int, default=32)
p.add_argument("--instrumented", action="store_true")
args = p.parse_args()
per_round = args.samples / 32 * 0.01 + {extra}
t0, ends, kept, counts = time.perf_counter(), [], [], []
for r in range(args.rounds):
    time.sleep(per_round + {growth} * r)
    kept.append(r)
    ends.append(time.perf_counter() - t0)
    if args.instrumented:
        counts.append(float(len(kept) if {leaks} else 0))
json.dump({{"final_loss": 0.5, "round_losses": [0.5] * args.rounds, "round_end_s": ends,
           "round_cpu_s": [0.0] * args.rounds, "leak_counts": counts,
           "instrumented": int(args.instrumented), "control_calls": len(counts),
           "work": {{"train_steps": args.rounds}}}}, open(args.out, "w"))
"""


def _fake_pairs(root: Path) -> Path:
    rows = []
    for pid, smell in (("p1", "IMR"),):
        for variant, (extra, growth, leaks) in (("smelly", ("0.0", "0.004", "True")),
                                                ("clean", ("0.0", "0.0", "False"))):
            path = root / pid / f"{variant}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(FAKE.format(extra=extra, growth=growth, leaks=leaks))
        rows.append({"pair_id": pid, "smell": smell, "variant_family": "test",
                     "description": "test", "scale": "tiny", "instances": 0, "source": "mined",
                     "smelly_path": f"{pid}/smelly.py", "clean_path": f"{pid}/clean.py"})
    pd.DataFrame(rows).to_csv(root / "pairs.csv", index=False)
    return root


@pytest.mark.slow
def test_dose_study_end_to_end_resumes_and_is_analysed(tmp_path: Path) -> None:
    pairs = _fake_pairs(tmp_path / "pairs")
    params = MeasureParams(repetitions=2, low_dose_repetitions=2, doses=(2, 6), control_runs=1,
                           aa_pairs=("p1",), warmup=0, cooldown_s=0.0, sample_interval_s=0.2,
                           timeout_s=60, memory_limit_mb=2048, idle_baseline=False,
                           frameworks=("keras3",), min_window_s=0.5)
    out = tmp_path / "out"
    runs = measure_doses(pairs, None, out, "cpu", "tiny", params, show_progress=False)
    meta = json.loads((out / "meta.json").read_text())
    samples = meta["workload"]["p1|keras3"]["samples"]
    assert samples % 32 == 0 and samples >= 32
    assert list(pd.read_csv(out / "runs.csv").columns) == list(RUNS.columns)
    # 2 variants x (2 doses x 2 blocks + 1 control) + A/A 2 x 2
    assert len(runs) == 2 * (2 * 2 + 1) + 4 and (runs["status"] == "ok").all()
    measured = runs[runs["instrumented"] == 0]
    assert (measured["control_calls"] == 0).all()
    assert (runs.loc[runs["instrumented"] == 1, "control_calls"] == 2).all()
    assert (measured["samples"] == samples).all()
    assert len(json.loads(measured["round_end_s"].iloc[0])) == measured["rounds"].iloc[0]
    # resume: nothing left to do, nothing measured twice
    again = measure_doses(pairs, None, out, "cpu", "tiny", params, show_progress=False)
    assert len(again) == len(runs)
    assert not pd.DataFrame(again)[list(DOSE_KEY)].duplicated().any()
    # the analysis prices measured runs only and takes the controls from the control runs
    assert is_dose_study(pd.read_csv(out / "runs.csv"))
    result = analyze([out / "runs.csv"], tmp_path / "analysis", AnalyzeParams())
    controls = result.controls.set_index("pair_id")
    assert controls.loc["p1", "manifested"] in ("yes", "unknown")  # 1 control block: n < 2
    assert controls.loc["p1", "growth_smelly"] == 1 or controls.loc["p1", "n"] == 1
    stats = pd.read_csv(tmp_path / "analysis" / "stats.csv")
    assert "power" not in stats.columns
    # the classic table is each unit's highest dose (the A/A cell has only the lowest)
    assert set(stats.loc[stats["pair_id"] == "p1", "rounds"]) == {6}
    assert set(stats.loc[stats["pair_id"] == "p1~aa", "rounds"]) == {2}
    assert set(stats.loc[stats["pair_id"] == "p1~aa", "family"]) == {"calibration"}
    # no CodeCarbon energy counter here: the primary metric is time
    assert set(stats.loc[stats["family"] == "primary", "metric"]) == {"duration_s"}
    for name in ("dose_stats", "cost_model", "heldout", "round_costs", "aa", "paper_placement"):
        assert (tmp_path / "analysis" / f"{name}.csv").is_file(), name


# -- the analysis, on runs with a known cost per event -------------------------------------------

def _synthetic_runs(a: float, b: float, doses=(5, 15, 50), reps=(6, 6, 10), noise=0.05,
                    seed=1, smell="IMR", aa=True) -> pd.DataFrame:
    """Runs whose smelly window is the clean one plus a·dose + b·dose², with noise."""
    rng = np.random.default_rng(seed)
    rows = []
    base = {c: "" for c in RUNS.columns}
    cells = [("p", smell, doses, reps)] + ([("p~aa", AA_SMELL, doses[:1], (10,))] if aa else [])
    for pid, sm, ds, rs in cells:
        for dose, n in zip(ds, rs, strict=True):
            for rep in range(1, n + 1):
                block = 1.0 + 0.01 * rep  # drift, absorbed by the pairing
                clean = (2.0 + 0.5 * dose) * block
                for variant in ("smelly", "clean"):
                    extra = (a * dose + b * dose ** 2) if (variant == "smelly" and sm != AA_SMELL) else 0
                    value = (clean + extra) * (1 + noise * rng.standard_normal())
                    ends = np.cumsum(np.full(dose, value / dose))
                    rows.append({**base, "pair_id": pid, "smell": sm, "variant": variant,
                                 "rep": rep, "device": "cpu", "status": "ok",
                                 "duration_s": value, "energy_kwh": value * 6e-6,
                                 "cpu_energy_kwh": value * 1e-6, "ram_energy_kwh": value * 5e-6,
                                 "gpu_energy_kwh": 0.0, "emissions_kg": value * 3e-6,
                                 "peak_rss_mb": 500 + (2.0 * dose if variant == "smelly"
                                                       and sm != AA_SMELL else 0)
                                 + rng.normal(0, 0.5),
                                 "cpu_power_source": "cpu_load", "framework": "keras3",
                                 "instrumented": 0, "rounds": dose, "dose": dose,
                                 "samples": 1000, "events_per_round": 1, "batch_size": 64,
                                 "window_cpu_s": 2 * value,
                                 "round_end_s": json.dumps(list(ends)),
                                 "first_variant": "smelly" if rep % 2 else "clean"})
    return pd.DataFrame(rows)


def test_cost_model_recovers_a_known_cost_per_event_and_predicts_the_held_out_dose() -> None:
    runs = _synthetic_runs(a=0.08, b=0.0, noise=0.02)
    tables = _analyse(runs)
    model = tables["cost_model"].set_index("metric")
    time_row = model.loc["duration_s"]
    assert time_row["a_linear_ci_low"] < 0.08 < time_row["a_linear_ci_high"]
    assert time_row["a_linear"] == pytest.approx(0.08, rel=0.25)
    assert time_row["b_ci_low"] <= 0 <= time_row["b_ci_high"]
    assert math.isnan(time_row["bend_dose"])
    mem = model.loc["peak_rss_mb"]
    assert mem["a_linear"] == pytest.approx(2.0, rel=0.05)  # MB per event
    held = tables["heldout"].set_index("metric").loc["duration_s"]
    assert held["heldout_dose"] == 50 and bool(held["intervals_overlap"])
    assert held["predicted"] == pytest.approx(0.08 * 50, rel=0.3)


def test_a_quadratic_cost_is_resolved_as_a_bend() -> None:
    tables = _analyse(_synthetic_runs(a=0.2, b=0.004, noise=0.01))
    row = tables["cost_model"].set_index("metric").loc["duration_s"]
    assert row["b_ci_low"] > 0 and row["bend_dose"] == pytest.approx(0.2 / 0.008, rel=0.5)
    assert row["marginal_high"] > row["marginal_low"]
    # the straight line with an intercept crosses dose 0 below 0 here: the curve, not a fixed gap
    assert row["intercept_ci_high"] < 0 and "faster than linearly" in row["note"]
    assert "fixed difference" not in row["note"]


def test_a_fixed_difference_per_run_is_told_apart_from_a_cost_per_event() -> None:
    """The intercept fit: a constant smelly-clean gap per run is not booked as cost per event."""
    plain = _analyse(_synthetic_runs(a=0.08, b=0.0, noise=0.01))
    row = plain["cost_model"].set_index("metric").loc["duration_s"]
    assert row["intercept_ci_low"] <= 0 <= row["intercept_ci_high"]
    assert row["a_free"] == pytest.approx(0.08, rel=0.25) and "intercept" not in row["note"]
    runs = _synthetic_runs(a=0.08, b=0.0, noise=0.01)
    smelly = (runs["variant"] == "smelly") & (runs["smell"] == "IMR")
    runs.loc[smelly, "duration_s"] = runs.loc[smelly, "duration_s"].astype(float) + 3.0
    row = _analyse(runs)["cost_model"].set_index("metric").loc["duration_s"]
    assert row["intercept_ci_low"] > 0 and row["intercept"] == pytest.approx(3.0, rel=0.2)
    assert row["a_free"] == pytest.approx(0.08, rel=0.3)
    assert "intercept's interval excludes 0" in row["note"]


def test_aa_cell_calibrates_false_positives_and_noise_floor() -> None:
    tables = _analyse(_synthetic_runs(a=0.08, b=0.0))
    aa = tables["aa"].set_index("metric").loc["duration_s"]
    assert aa["pair_id"] == "p~aa" and aa["tests"] >= 1
    assert 0 <= aa["fpr_observed"] <= 1 and aa["fpr_ci_low"] <= aa["fpr_observed"]
    assert aa["mde_pct"] > 0 and aa["mde_pct_median_cells"] > 0
    memory = tables["aa"].set_index("metric").loc["peak_rss_mb"]  # every metric has its floor
    assert memory["mde_pct_median_cells"] > 0
    stats = tables["dose_stats"]
    assert set(stats.loc[stats["smell"] == AA_SMELL, "family"]) == {"calibration"}
    primary = stats[stats["family"] == "primary"]
    assert set(primary["metric"]) == {"duration_s"} and primary["p_adj"].notna().all()
    assert (primary["p_adj"] >= primary["p_value"]).all()


def test_round_costs_and_paper_placement() -> None:
    tables = _analyse(_synthetic_runs(a=0.08, b=0.0))
    rounds = tables["round_costs"]
    assert sorted(rounds["round"]) == list(range(1, 51)) and (rounds["rounds"] == 50).all()
    paper = tables["paper_placement"].iloc[0]
    assert paper["paper_dose"] == 50 and paper["paper_pct"] == 31.78
    assert paper["predicted_pct"] > 0 and "extrapolated" in paper["note"]
    utr = _analyse(_synthetic_runs(a=0.001, b=0.0, smell="UTR"))["paper_placement"].iloc[0]
    assert utr["paper_dose"] == 50 * 782 and utr["extrapolation_factor"] > 100


def test_the_paper_pct_is_sought_only_from_the_lowest_measured_dose_up() -> None:
    """A curve fitted on doses 5-50 is not read below dose 5, where it and the clean line are
    extrapolations (here +40 % at dose 1, which the search used to report)."""
    paper = _analyse(_synthetic_runs(a=1.0, b=0.0, noise=0.01))["paper_placement"].iloc[0]
    assert paper["dose_for_paper_pct"] == 5


def _analyse(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    import tempfile

    from leakwatt.analysis.runs import validate_runs

    with tempfile.TemporaryDirectory() as tmp:
        return dose_analysis.dose_analysis(validate_runs(runs), Path(tmp), AnalyzeParams())


def test_program_usage_documents_the_dose_flags() -> None:
    from leakwatt.pipeline.repros.templates import ProgramSpec, render

    source = render(ProgramSpec("x", "smelly", "imr_epochs_rebuild"))
    assert "--rounds N" in source and "--instrumented" in source
    assert textwrap.dedent(source).count("def record_leak(count)") == 1
