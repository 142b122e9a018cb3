"""The dose study (issue 18): every pair at several doses, measured runs without instrumentation.

A *dose* is how many times a pair's leak happens in one run: the program's rounds times the leak
events of one round (:func:`events_per_round`: one rebuilt model per round for IMR, one kept step
per training step for UTR, one round otherwise). ``measure.doses`` lists the rounds of each dose
level; the highest dose gets ``measure.repetitions`` counted blocks, the others
``measure.low_dose_repetitions``.

The run table (:func:`plan_dose_runs`):

* a **cell** is (pair, Keras level, rounds); its two variants run back to back, and which runs
  first alternates from block to block from a seeded start (ABBA counterbalancing: over an even
  number of blocks each order occurs equally often); the cells of a block are shuffled by a
  generator seeded with (seed, device, block), so the plan never changes when blocks are added;
* **measured runs** (``instrumented`` 0) carry no control code: the program only timestamps the
  end of every round (``time.perf_counter``; ``round_end_s``), and its result says how many
  control-helper calls ran (``control_calls``, 0 here);
* **control runs** (``instrumented`` 1): ``measure.control_runs`` per pair, level and variant, at
  the lowest dose, in the first blocks: the same programs with ``--instrumented``, which count the
  leak every round (graph ops, live models, tensor bytes); their windows are never priced;
* an **A/A cell** per pair of ``measure.aa_pairs`` (its pair id with ``~aa``, smell ``AA``): the
  clean program as both variants, at the lowest dose, ``repetitions`` blocks, so the analysis
  can state its own false-positive rate and noise floor.

The workload (samples per round) of each pair and level is sized before the first counted run so
that the lowest dose's window lasts at least ``measure.min_window_s`` (:func:`calibrate_workload`:
two short clean and smelly runs at two sample counts, a line fitted to round time against samples)
and kept in ``meta.json`` beside runs.csv, so a resumed study uses the same workload.
"""

from __future__ import annotations

import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from leakwatt.common import LeakwattError, atomic_write_json
from leakwatt.params import MeasureParams, as_dict
from leakwatt.pipeline.harness.measure import (
    VARIANTS,
    _load_pairs,
    _now,
    _number,
    _result,
    _row,
    _run_program,
    _write_series,
    check_device,
    environment,
    events_per_round,
    pair_meta,
    supported_frameworks,
    timing_fields,
)
from leakwatt.pipeline.harness.runner import Nvml, RunOutcome
from leakwatt.pipeline.harness.store import RUN_KEY, RUNS_COLUMNS, AppendStore, ensure_writable
from leakwatt.pipeline.harness.supersede import upgrade_columns
from leakwatt.pipeline.repros.equivalence import excluded_pairs
from leakwatt.pipeline.repros.templates import SCALES

#: a dose study's run key: the runs.csv key plus the dose and the run kind
DOSE_KEY = (*RUN_KEY, "rounds", "instrumented")
AA_SUFFIX = "~aa"
AA_SMELL = "AA"
#: calibration: rounds per run and the two sample counts (in batches) a round is timed at
CALIBRATION_ROUNDS = 3
CALIBRATION_BATCHES = (8, 32)
#: the workload is sized for this multiple of ``min_window_s`` (round time varies run to run)
WINDOW_MARGIN = 1.2


@dataclass(frozen=True)
class DoseRun:
    """One run of the dose study (the attributes :func:`measure._row` reads, plus the dose)."""

    pair_id: str
    smell: str
    variant: str
    rep: int
    order: int
    program: str
    framework: str
    rounds: int
    instrumented: int
    first_variant: str
    block_position: int
    base_pair: str


def _first_variant(seed: int, device: str, cell: tuple[str, str, int, int], rep: int) -> str:
    start = random.Random(f"{seed}:{device}:{cell}:abba").randint(0, 1)
    return VARIANTS[(start + rep) % 2]


def plan_dose_runs(combos: Sequence[tuple[str, str, str, str, str]], doses: Sequence[int],
                   params: MeasureParams, device: str,
                   aa: Sequence[tuple[str, str, str]] = ()) -> list[DoseRun]:
    """The whole dose study in execution order.

    ``combos``: (pair_id, smell, framework, smelly_path, clean_path) for every pair and level;
    ``aa``: (pair_id, framework, clean_path) of the A/A cells. Returns every counted run
    (measured and control), block by block."""
    doses = sorted(doses)
    low, high = doses[0], doses[-1]
    reps_of = {d: (params.repetitions if d == high else params.low_dose_repetitions)
               for d in doses}
    blocks = max([*reps_of.values(), params.control_runs, params.repetitions if aa else 0])
    # (pair_id, smell, framework, rounds, instrumented, smelly program, clean program, base)
    cells: list[tuple[str, str, str, int, int, str, str, str]] = []
    for pair_id, smell, fw, smelly, clean in combos:
        cells += [(pair_id, smell, fw, d, 0, smelly, clean, pair_id) for d in doses]
        cells.append((pair_id, smell, fw, low, 1, smelly, clean, pair_id))
    for pair_id, fw, clean in aa:
        cells.append((pair_id + AA_SUFFIX, AA_SMELL, fw, low, 0, clean, clean, pair_id))
    plan: list[DoseRun] = []
    for rep in range(1, blocks + 1):
        block = []
        for cell in cells:
            pair_id, smell, fw, rounds, instrumented, smelly, clean, base = cell
            if instrumented:
                wanted = rep <= params.control_runs
            elif smell == AA_SMELL:
                wanted = rep <= params.repetitions
            else:
                wanted = rep <= reps_of[rounds]
            if wanted:
                block.append(cell)
        block.sort()
        random.Random(f"{params.seed}:{device}:{rep}:dose").shuffle(block)
        for position, cell in enumerate(block, 1):
            pair_id, smell, fw, rounds, instrumented, smelly, clean, base = cell
            first = _first_variant(params.seed, device, (pair_id, fw, rounds, instrumented), rep)
            for variant in (first, "clean" if first == "smelly" else "smelly"):
                plan.append(DoseRun(pair_id, smell, variant, rep, len(plan) + 1,
                                    smelly if variant == "smelly" else clean, fw, rounds,
                                    instrumented, first, position, base))
    return plan


def _round_times(result: dict[str, Any]) -> list[float]:
    ends = [t for t in (_number(v) for v in result.get("round_end_s") or []) if t is not None]
    return [b - a for a, b in zip([0.0, *ends[:-1]], ends, strict=True)]


def _run(run: DoseRun, out_dir: Path, device: str, scale: str, samples: int,
         params: MeasureParams, nvml: Nvml | None, name: str) -> RunOutcome:
    return _run_program(run, out_dir, device, scale, params, nvml, name,  # type: ignore[arg-type]
                        extra=("--rounds", str(run.rounds), "--samples", str(samples)))


def calibrate_workload(out_dir: Path, combo: tuple[str, str, str, str, str], device: str,
                       scale: str, params: MeasureParams, low_dose: int,
                       nvml: Nvml | None) -> dict[str, Any]:
    """Samples per round for one (pair, level) so that the lowest dose's window lasts
    ``WINDOW_MARGIN`` x ``min_window_s``: each variant is run for ``CALIBRATION_ROUNDS`` rounds
    at two sample counts, round time (the median of rounds 2..) is fitted as a line in samples,
    and the larger of the two variants' answers is kept (the faster variant sets the size).
    Calibration runs are uninstrumented and never counted (``calibration.csv``)."""
    pair_id, smell, fw, smelly, clean = combo
    batch = SCALES[scale]["batch_size"]
    target = WINDOW_MARGIN * params.min_window_s / low_dose
    store = AppendStore(out_dir / "calibration.csv", RUNS_COLUMNS, DOSE_KEY)
    points: dict[str, list[tuple[int, float]]] = {v: [] for v in VARIANTS}
    for k, batches in enumerate(CALIBRATION_BATCHES):
        for variant, program in (("smelly", smelly), ("clean", clean)):
            run = DoseRun(pair_id, smell, variant, -(k + 1), 0, program, fw, CALIBRATION_ROUNDS,
                          0, variant, 0, pair_id)
            name = f"calibrate__{pair_id}__{variant}__{device}__{fw}__b{batches}"
            samples = batches * batch
            outcome = _run(run, out_dir, device, scale, samples, params, nvml, name)
            result = _result(outcome)
            times = _round_times(result)
            load = os.getloadavg()[0]
            row = _row(run, outcome, device, scale, _now(), params, "", (load, load),  # type: ignore[arg-type]
                       "calibration run")
            row.update(_dose_fields(run, result, samples, batch))
            store.append(row)
            if outcome.status != "ok" or len(times) < 2:
                raise LeakwattError(f"calibrating {pair_id} under {fw}: the {variant} program "
                                    f"ended {outcome.status} ({outcome.error or 'no round times'}); "
                                    f"see {out_dir / 'logs' / (name + '.log')}")
            points[variant].append((samples, statistics.median(times[1:])))
            time.sleep(params.cooldown_s)
    answers = {}
    for variant, pts in points.items():
        (s1, t1), (s2, t2) = pts
        slope = max((t2 - t1) / (s2 - s1), 1e-9)
        intercept = t1 - slope * s1
        answers[variant] = (target - intercept) / slope
    wanted = max(answers.values())
    samples = int(min(max(math.ceil(wanted / batch), 1) * batch, 50000))
    return {"samples": samples, "batch_size": batch, "round_target_s": round(target, 3),
            "calibration": {v: [{"samples": s, "round_s": round(t, 4)} for s, t in pts]
                            for v, pts in points.items()},
            "calibrated_at": _now()}


def _dose_fields(run: DoseRun, result: dict[str, Any], samples: int,
                 batch: int) -> dict[str, Any]:
    events = events_per_round(run.smell if run.smell != AA_SMELL else "", samples, batch)
    fields = timing_fields(result, run.instrumented, run.rounds, samples, batch, events)
    fields.update(first_variant=run.first_variant, block_position=run.block_position)
    return fields


def measure_doses(pairs_dir: Path, pair_ids: Sequence[str] | None, out_dir: Path, device: str,
                  scale: str, params: MeasureParams, show_progress: bool = True) -> pd.DataFrame:
    """Run the dose study of ``pairs_dir``'s pairs (or ``pair_ids``) into ``out_dir``; resumable
    (runs already in runs.csv are kept; the workload in meta.json is reused)."""
    pairs_dir, out_dir = Path(pairs_dir), Path(out_dir)
    if scale not in SCALES:
        raise LeakwattError(f"scale {scale!r} is not one of {', '.join(SCALES)}")
    if not params.doses:
        raise LeakwattError("measure.doses is empty: the dose study needs at least one dose")
    nvml = check_device(device)
    pairs = _load_pairs(pairs_dir, pair_ids)
    pairs = pairs[~pairs["pair_id"].isin(list(excluded_pairs(pairs_dir)))]
    unknown_aa = [p for p in params.aa_pairs if p not in set(pairs["pair_id"])]
    if unknown_aa:
        raise LeakwattError(f"measure.aa_pairs: {unknown_aa[0]!r} is not a measured pair "
                            f"(measured: {', '.join(pairs['pair_id'])})")
    ensure_writable(out_dir, ("runs.csv", "warmup.csv", "meta.json"))
    upgrade_columns(out_dir / "runs.csv", RUNS_COLUMNS, {})
    store = AppendStore(out_dir / "runs.csv", RUNS_COLUMNS, DOSE_KEY)
    existing = store.read()
    if not existing.empty and (existing["scale"].astype(str) != scale).any():
        raise LeakwattError(f"{store.path}: holds runs at another scale; measure scale "
                            f"{scale!r} into another folder")
    combos, aa, skipped = [], [], []
    for r in pairs.to_dict("records"):
        pid = str(r["pair_id"])
        meta = pair_meta(pairs_dir, pid)
        devices = meta.get("devices") or ["cpu", "gpu"]
        for fw in params.frameworks:
            if fw not in supported_frameworks(pairs_dir, pid) or device not in devices:
                skipped.append({"pair_id": pid, "framework": fw,
                                "reason": "not supported by the pair's meta.json"})
                continue
            combos.append((pid, str(r["smell"]), fw, str(r["smelly_path"]), str(r["clean_path"])))
            if pid in params.aa_pairs and fw == params.frameworks[0]:
                aa.append((pid, fw, str(r["clean_path"])))
    if not combos:
        raise LeakwattError("the dose study has nothing to measure (no pair supports the levels "
                            f"{', '.join(params.frameworks)} on {device})")
    meta_path = out_dir / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    workload = meta.setdefault("workload", {})
    meta.update(doses_rounds=sorted(params.doses), scale=scale, device=device,
                min_window_s=params.min_window_s, params=as_dict(params))
    low = min(params.doses)
    for combo in combos:
        key = f"{combo[0]}|{combo[2]}"
        if key not in workload:
            print(f"leakwatt: measure: sizing the workload of {combo[0]} under {combo[2]} "
                  f"(lowest dose {low} rounds, window >= {params.min_window_s:g} s)",
                  file=sys.stderr, flush=True)
            workload[key] = calibrate_workload(out_dir, combo, device, scale, params, low, nvml)
            atomic_write_json(meta_path, meta)
    atomic_write_json(meta_path, meta)
    samples_of = {(pid, fw): int(workload[f"{pid}|{fw}"]["samples"]) for pid, _, fw, _, _ in combos}

    plan = plan_dose_runs(combos, params.doses, params, device, aa)
    done = store.keys()
    todo = [r for r in plan if (r.pair_id, r.variant, r.rep, device, r.framework, r.rounds,
                                r.instrumented) not in done]
    env = environment(device, nvml)
    env["measurement"] = {"device": device, "scale": scale, "params": as_dict(params),
                          "kind": "dose", "pairs": sorted(pairs["pair_id"]), "skipped": skipped,
                          "planned_runs": len(plan), "started_at": _now()}
    atomic_write_json(out_dir / "environment.json", env)
    warmups: list[DoseRun] = []
    if todo and params.warmup:
        seen = sorted({(r.pair_id, r.smell, r.variant, r.program, r.framework, r.base_pair)
                       for r in todo if not r.instrumented})
        random.Random(f"{params.seed}:{device}:dose-warmup").shuffle(seen)
        warmups = [DoseRun(p, s, v, -(k + 1), 0, prog, fw, low, 0, v, 0, base)
                   for k in range(params.warmup) for (p, s, v, prog, fw, base) in seen]
    warm_store = AppendStore(out_dir / "warmup.csv", RUNS_COLUMNS, DOSE_KEY) if warmups else None
    total = len(warmups) + len(todo)
    progress: Any = None
    if show_progress and total:
        from tqdm import tqdm

        progress = tqdm(total=total, desc=f"measure doses {device}", unit="run")
    try:
        for run in [*warmups, *todo]:
            counted = run.rep > 0
            kind = "control" if run.instrumented else "measured"
            name = (f"{run.pair_id}__{run.variant}__{device}__{run.framework}__d{run.rounds}__"
                    f"{kind}__{'r' + str(run.rep) if counted else 'warmup' + str(-run.rep)}")
            samples = samples_of[(run.base_pair, run.framework)]
            batch = SCALES[scale]["batch_size"]
            if progress is not None:
                progress.set_postfix_str(f"{run.pair_id}/{run.variant}/{run.framework} "
                                         f"d{run.rounds} {kind} rep {run.rep}")
            started = _now()
            load_start = os.getloadavg()[0]
            outcome = _run(run, out_dir, device, scale, samples, params, nvml, name)
            load_end = os.getloadavg()[0]
            series_rel = f"series/{name}.csv"
            _write_series(out_dir / series_rel, outcome.series)
            result = _result(outcome)
            row = _row(run, outcome, device, scale, started, params, series_rel,  # type: ignore[arg-type]
                       (load_start, load_end),
                       str(pair_meta(pairs_dir, run.base_pair).get("leak_evidence") or "none"))
            row.update(_dose_fields(run, result, samples, batch))
            if counted:
                store.append(row)
            elif warm_store is not None:
                warm_store.append(row)
            if progress is not None:
                progress.update(1)
            time.sleep(params.cooldown_s)
    finally:
        if progress is not None:
            progress.close()
    env["measurement"]["finished_at"] = _now()
    atomic_write_json(out_dir / "environment.json", env)
    return store.read()
