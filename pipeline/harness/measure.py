"""The measurement run table: pairs x variants x frameworks x repetitions, interleaved, resumable.

Block ``rep`` holds one run of every (pair, variant, framework) the pair supports, shuffled by a
generator seeded with (seed, device, rep), so the order of a block never changes when repetitions
are added. Warm-up runs (``params.warmup`` per pair, variant and framework, run before the first
missing block of an invocation) go to ``warmup.csv`` and are never counted. The idle baseline of
block ``rep`` (the first ``IDLE_REPS_MAX`` blocks) runs inside that block, at a seeded position in
its second half, so it sees the machine in the same state as the runs around it. A cooldown
sleep follows every run. A framework level (or device) that a pair's ``meta.json`` does not list
is skipped, and the skip is logged and kept in ``environment.json`` (``measurement.skipped``).
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

from leakwatt.common import LeakwattError, atomic_write_csv, atomic_write_json
from leakwatt.contracts import SERIES, WORK_COUNTERS
from leakwatt.params import FRAMEWORKS, MeasureParams, as_dict
from leakwatt.pipeline.harness.runner import Nvml, RunOutcome, child_env, rapl_readable, run_child
from leakwatt.pipeline.harness.store import (
    IDLE_COLUMNS,
    IDLE_KEY,
    RUN_KEY,
    RUNS_COLUMNS,
    AppendStore,
    ensure_writable,
)
from leakwatt.pipeline.harness.supersede import upgrade_columns
from leakwatt.pipeline.repros.equivalence import excluded_pairs
from leakwatt.pipeline.repros.pairs import pair_meta, read_pairs
from leakwatt.pipeline.repros.templates import SCALES

PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: a measurement's run key: the runs.csv key plus the run kind (a control run shares its rep)
MEASURE_KEY = (*RUN_KEY, "instrumented")
IDLE_REPS_MAX = 3
VARIANTS = ("smelly", "clean")


@dataclass(frozen=True)
class PlannedRun:
    pair_id: str
    smell: str
    variant: str
    rep: int
    order: int
    program: str
    framework: str = "keras3"
    #: 1: a control run (the program counts its leak every round; never priced), 0: measured
    instrumented: int = 0


@dataclass(frozen=True)
class IdleSlot:
    """The idle baseline run of block ``rep``."""

    rep: int


def plan_runs(pairs: pd.DataFrame, repetitions: int, seed: int, device: str,
              frameworks: Sequence[str] = ("keras3",),
              supported: Mapping[str, Sequence[str]] | None = None,
              control_runs: int = 0) -> list[PlannedRun]:
    """The full run table in execution order (block by block, shuffled within a block).

    ``supported`` maps a pair id to the framework levels it runs under (all when absent).
    ``control_runs`` instrumented runs of every cell follow the measured blocks (rep 1..n,
    ``instrumented`` 1): the positive control is counted there, never in a measured window."""
    supported = supported or {}
    cells = sorted((str(r["pair_id"]), str(r["smell"]), v, str(r[f"{v}_path"]), fw)
                   for r in pairs.to_dict("records") for v in VARIANTS for fw in frameworks
                   if fw in supported.get(str(r["pair_id"]), FRAMEWORKS))
    plan = []
    for rep in range(1, repetitions + 1):
        block = list(cells)
        random.Random(f"{seed}:{device}:{rep}").shuffle(block)
        for i, (pair_id, smell, variant, program, fw) in enumerate(block):
            plan.append(PlannedRun(pair_id, smell, variant, rep, (rep - 1) * len(cells) + i + 1,
                                   program, fw))
    for rep in range(1, control_runs + 1):
        block = list(cells)
        random.Random(f"{seed}:{device}:{rep}:control").shuffle(block)
        for pair_id, smell, variant, program, fw in block:
            plan.append(PlannedRun(pair_id, smell, variant, rep, len(plan) + 1, program, fw, 1))
    return plan


def interleave_idle(plan: list[PlannedRun], repetitions: int, seed: int,
                    device: str) -> list[PlannedRun | IdleSlot]:
    """``plan`` with the idle run of each of the first ``IDLE_REPS_MAX`` blocks placed at a
    seeded position in the second half of its block (fixed whatever is already done)."""
    out: list[PlannedRun | IdleSlot] = []
    for rep in range(1, repetitions + 1):
        block: list[PlannedRun | IdleSlot] = [r for r in plan if r.rep == rep]
        if rep <= IDLE_REPS_MAX:
            at = random.Random(f"{seed}:{device}:{rep}:idle").randint(len(block) // 2, len(block))
            block.insert(at, IdleSlot(rep))
        out += block
    return out


def supported_frameworks(pairs_dir: Path, pair_id: str) -> tuple[str, ...]:
    """The levels ``pair_id``'s meta.json lists under ``frameworks`` (all when it lists none)."""
    listed = pair_meta(pairs_dir, pair_id).get("frameworks")
    if not listed:
        return FRAMEWORKS
    unknown = [f for f in listed if f not in FRAMEWORKS]
    if unknown:
        raise LeakwattError(f"{Path(pairs_dir) / pair_id / 'meta.json'}: frameworks: "
                            f"{unknown[0]!r} is not one of {', '.join(FRAMEWORKS)}")
    return tuple(listed)


def rss_growth_mb_per_s(series: list[tuple[float, float, float | None]],
                        ready_s: float | None = None) -> float | None:
    """OLS slope of RSS over the measured window (from the program's ready(), which comes after
    the imports and the data); without ready(), over the second half of the run."""
    if not series:
        return None
    end = series[-1][0]
    since = end / 2 if ready_s is None else ready_s
    tail = [(t, rss) for t, rss, _ in series if t >= since]
    if len(tail) < 3:
        return None
    t, rss = np.array(tail).T
    if np.ptp(t) == 0:
        return None
    return float(np.polyfit(t, rss, 1)[0])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _energy_fields(outcome: RunOutcome, params: MeasureParams) -> dict[str, Any]:
    rep = outcome.report
    energy = rep.get("energy_kwh")
    duration = rep.get("duration_s")

    def watts(kwh: float | None) -> float | None:
        return None if kwh is None or not duration else kwh * 3.6e6 / duration

    return {
        "duration_s": duration, "energy_kwh": energy,
        "cpu_energy_kwh": rep.get("cpu_energy_kwh"), "ram_energy_kwh": rep.get("ram_energy_kwh"),
        "gpu_energy_kwh": rep.get("gpu_energy_kwh"),
        "emissions_kg": None if energy is None else energy * params.carbon_intensity_kg_per_kwh,
        "codecarbon_emissions_kg": rep.get("codecarbon_emissions_kg"),
        "cpu_power_source": rep.get("cpu_power_source"),
        "gpu_power_source": rep.get("gpu_power_source"),
        "ram_power_source": rep.get("ram_power_source"),
        "cpu_power_w": watts(rep.get("cpu_energy_kwh")),
        "gpu_power_w": watts(rep.get("gpu_energy_kwh")),
        "ram_power_w": watts(rep.get("ram_energy_kwh")),
        "rapl_energy_kwh": outcome.rapl_energy_kwh, "nvml_energy_kwh": outcome.nvml_energy_kwh,
        "codecarbon_version": rep.get("codecarbon_version"),
        "tracking_mode": rep.get("tracking_mode"),
    }


def _process_fields(rep: dict[str, Any]) -> dict[str, Any]:
    return {k: rep.get(k) for k in ("window_start", "startup_s", "process_duration_s",
                                    "process_energy_kwh", "process_cpu_energy_kwh",
                                    "process_ram_energy_kwh", "process_gpu_energy_kwh")}


def _child_args(params: MeasureParams, device: str, report: Path) -> list[str]:
    return ["--report", str(report), "--device", device, "--country", params.country_iso_code,
            "--interval", str(params.sample_interval_s)]


def _run_program(run: PlannedRun, work: Path, device: str, scale: str,
                 params: MeasureParams, nvml: Nvml | None, log_name: str,
                 extra: Sequence[str] = ()) -> RunOutcome:
    result = work / "results" / f"{log_name}.json"
    result.parent.mkdir(parents=True, exist_ok=True)
    result.unlink(missing_ok=True)
    args = _child_args(params, device, work / "tmp" / f"{log_name}.report.json")
    args += ["--program", run.program, "--scale", scale, "--result", str(result),
             "--framework", run.framework]
    args += list(extra)
    if run.instrumented:
        args.append("--instrumented")
    (work / "tmp").mkdir(parents=True, exist_ok=True)
    outcome = run_child(args, child_env(device), work / "tmp" / f"{log_name}.report.json",
                        work / "logs" / f"{log_name}.log", params.timeout_s,
                        params.memory_limit_mb, params.sample_interval_s, nvml)
    outcome.report["_result_path"] = str(result)
    return outcome


def _result(outcome: RunOutcome) -> dict[str, Any]:
    """The program's result JSON ({} when it wrote none or an unreadable one)."""
    try:
        with open(outcome.report["_result_path"], encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (KeyError, OSError, ValueError):
        return {}


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _program_fields(result: dict[str, Any], run: PlannedRun, evidence: str) -> dict[str, Any]:
    """What the program itself reported: Keras level and versions, leak counts, work, data."""
    counts = [c for c in (_number(v) for v in result.get("leak_counts") or []) if c is not None]
    work = result.get("work") if isinstance(result.get("work"), dict) else {}
    fields = {"framework": run.framework, "tf_version": result.get("tf_version"),
              "keras_version": result.get("keras_version"),
              "data_source": result.get("data_source"),
              "leak_evidence": result.get("leak_evidence") or evidence,
              "leak_count_first": counts[0] if counts else None,
              "leak_count_last": counts[-1] if counts else None,
              "leak_counts": json.dumps(counts) if result else None,
              "final_loss": _number(result.get("final_loss"))}
    fields.update({f"work_{c}": work.get(c, 0) if result else None for c in WORK_COUNTERS})
    return fields


def timing_fields(result: dict[str, Any], instrumented: int, rounds: int, samples: int,
                  batch_size: int, events_per_round: int) -> dict[str, Any]:
    """The run kind, the dose and the program's own per-round clock (issue 18's columns)."""
    ends = [t for t in (_number(v) for v in result.get("round_end_s") or []) if t is not None]
    cpu = [t for t in (_number(v) for v in result.get("round_cpu_s") or []) if t is not None]
    return {"instrumented": instrumented, "rounds": rounds, "samples": samples,
            "batch_size": batch_size, "events_per_round": events_per_round,
            "dose": rounds * events_per_round,
            "control_calls": result.get("control_calls") if result else None,
            "round_end_s": json.dumps([round(t, 4) for t in ends]) if result else None,
            "round_cpu_s": json.dumps([round(t, 4) for t in cpu]) if result else None,
            "window_cpu_s": cpu[-1] if cpu else None}


def events_per_round(smell: str, samples: int, batch_size: int) -> int:
    """Leak events in one round: a UTR round keeps the tensors of every one of its training
    steps; every other family leaks once per round (IMR: one model rebuilt and not released)."""
    if smell == "UTR":
        return max(1, -(-samples // batch_size))
    return 1


def _write_series(path: Path, series: list[tuple[float, float, float | None]]) -> None:
    frame = pd.DataFrame(series, columns=list(SERIES.columns))
    atomic_write_csv(path, frame, columns=list(SERIES.columns))


def _row(run: PlannedRun, outcome: RunOutcome, device: str, scale: str, started: str,
         params: MeasureParams, series_rel: str, loads: tuple[float, float],
         evidence: str = "none recorded") -> dict[str, Any]:
    row = {"pair_id": run.pair_id, "smell": run.smell, "variant": run.variant, "rep": run.rep,
           "device": device, "status": outcome.status, "peak_rss_mb": outcome.peak_rss_mb,
           "scale": scale, "order": run.order, "started_at": started, "error": outcome.error,
           "rss_growth_mb_per_s": rss_growth_mb_per_s(outcome.series, outcome.ready_s),
           "peak_gpu_mem_mb": outcome.peak_gpu_mem_mb, "wall_s": round(outcome.wall_s, 3),
           "workload_s": outcome.report.get("workload_s"),
           "exit_code": outcome.exit_code, "series_path": series_rel,
           "country_iso_code": params.country_iso_code,
           "carbon_intensity_kg_per_kwh": params.carbon_intensity_kg_per_kwh,
           "sample_interval_s": params.sample_interval_s,
           "load_start": round(loads[0], 2), "load_end": round(loads[1], 2),
           "tree_cpu_s": outcome.tree_cpu_s, "tree_peak_procs": outcome.tree_peak_procs}
    result = _result(outcome)
    row.update(_program_fields(result, run, evidence))
    cfg = SCALES.get(scale, SCALES["tiny"])
    row.update(timing_fields(result, getattr(run, "instrumented", 0), cfg["rounds"],
                             cfg["samples"], cfg["batch_size"],
                             events_per_round(run.smell, cfg["samples"], cfg["batch_size"])))
    if outcome.status != "ok":
        row["final_loss"] = None
    row.update(_energy_fields(outcome, params))
    row.update(_process_fields(outcome.report))
    return row


def check_device(device: str) -> Nvml | None:
    """``cpu`` needs nothing (GPUs are hidden from the child); ``gpu`` needs an NVIDIA GPU."""
    if device == "cpu":
        return None
    if device != "gpu":
        raise LeakwattError(f"device {device!r} is not one of cpu, gpu")
    nvml = Nvml()
    if not nvml.available():
        raise LeakwattError("--device gpu: no NVIDIA GPU found (NVML reports none); "
                            "use --device cpu")
    import os

    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        raise LeakwattError("--device gpu: CUDA_VISIBLE_DEVICES is empty, which hides every GPU")
    return nvml


def _load_pairs(pairs_dir: Path, pair_ids: Sequence[str] | None) -> pd.DataFrame:
    # The harness only reads pairs: `reproduce` (pipeline.workflow.reproduce) is the one place
    # that builds them, for `leakwatt measure --pair` too.
    pairs = read_pairs(pairs_dir)
    if pair_ids:
        unknown = [p for p in pair_ids if p not in set(pairs["pair_id"])]
        if unknown:
            raise LeakwattError(f"{pairs_dir / 'pairs.csv'}: no pair {unknown[0]!r} "
                                f"(has: {', '.join(pairs['pair_id'])})")
        pairs = pairs[pairs["pair_id"].isin(list(pair_ids))]
    return pairs.reset_index(drop=True)


def environment(device: str, nvml: Nvml | None) -> dict[str, Any]:
    """Machine, library versions and the project's git sha (no TensorFlow import)."""
    cpu_model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for dist in ("tensorflow", "keras", "tf-keras", "codecarbon", "numpy", "pandas", "psutil",
                 "scikit-learn", "nvidia-ml-py", "leakwatt"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=10, check=False).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        sha = None
    gpus = []
    if nvml is None and device == "cpu":
        probe = Nvml()
        nvml = probe if probe.available() else None
    if nvml is not None:
        try:
            driver = nvml.nv.nvmlSystemGetDriverVersion()
            for h in nvml.handles:
                mem = nvml.nv.nvmlDeviceGetMemoryInfo(h).total / 2**20
                gpus.append({"name": nvml.nv.nvmlDeviceGetName(h), "memory_mb": round(mem),
                             "driver": driver})
        except Exception:
            pass
    return {
        "cpu_model": cpu_model, "cpu_logical_cores": psutil.cpu_count(logical=True),
        "cpu_physical_cores": psutil.cpu_count(logical=False),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 2), "gpus": gpus,
        "platform": platform.platform(), "python": platform.python_version(),
        "versions": versions, "git_sha": sha, "rapl_readable": rapl_readable(),
    }


def _idle_target(runs: pd.DataFrame, device: str) -> float | None:
    """Seconds an idle run lasts: the median measured window of the ``ok`` clean runs so far."""
    measured = pd.to_numeric(runs.get("instrumented", pd.Series(0, index=runs.index)),
                             errors="coerce").fillna(0) == 0
    ok_clean = runs[(runs["device"] == device) & (runs["variant"] == "clean")
                    & (runs["status"] == "ok") & measured]["duration_s"].dropna()
    return None if ok_clean.empty else float(statistics.median(ok_clean))


def _run_idle(store: AppendStore, work: Path, device: str, params: MeasureParams, rep: int,
              target: float, nvml: Nvml | None) -> None:
    started = _now()
    report = work / "tmp" / f"idle__{device}__r{rep}.report.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    outcome = run_child(_child_args(params, device, report) + ["--idle", f"{target:.3f}"],
                        child_env(device), report, work / "logs" / f"idle__{device}__r{rep}.log",
                        params.timeout_s + target, params.memory_limit_mb,
                        params.sample_interval_s, nvml)
    row = {"device": device, "rep": rep, "status": outcome.status, "target_s": target,
           "started_at": started, "error": outcome.error}
    row.update(_energy_fields(outcome, params))
    store.append(row)


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def measure_pairs(pairs_dir: Path, pair_ids: Sequence[str] | None, out_dir: Path, device: str,
                  scale: str, params: MeasureParams, show_progress: bool = True) -> pd.DataFrame:
    """Measure every pair (or ``pair_ids``) of ``pairs_dir`` on ``device``; resumable.

    Writes ``out_dir/runs.csv`` (one row per counted run), ``warmup.csv``, ``idle.csv``,
    ``series/*.csv`` (RSS per run), ``logs/`` and ``environment.json``; returns the runs of
    this device for the measured pairs. Pairs that ``equivalence.csv`` marks other than
    equivalent are skipped and listed in ``environment.json``.
    """
    if params.doses:  # the dose study (issue 18): its own run table, resumable the same way
        from leakwatt.pipeline.harness.dose import measure_doses

        return measure_doses(pairs_dir, pair_ids, out_dir, device, scale, params, show_progress)
    pairs_dir, out_dir = Path(pairs_dir), Path(out_dir)
    if scale not in SCALES:
        raise LeakwattError(f"scale {scale!r} is not one of {', '.join(SCALES)}")
    nvml = check_device(device)
    pairs = _load_pairs(pairs_dir, pair_ids)
    excluded = excluded_pairs(pairs_dir)
    pairs = pairs[~pairs["pair_id"].isin(list(excluded))]
    ensure_writable(out_dir, ("runs.csv", "warmup.csv", "idle.csv"))
    for name in ("runs.csv", "warmup.csv"):
        # rows measured before issue 18 ran their control inside the window: instrumented 1
        upgrade_columns(out_dir / name, RUNS_COLUMNS,
                        {"framework": "keras3", "window_start": "process", "instrumented": "1"})
    store = AppendStore(out_dir / "runs.csv", RUNS_COLUMNS, MEASURE_KEY)
    existing = store.read()
    other_scale = existing[(existing["device"] == device) & (existing["scale"] != scale)]
    if not other_scale.empty:
        raise LeakwattError(f"{store.path}: holds {device} runs at scale "
                            f"{other_scale['scale'].iloc[0]!r}; measure scale {scale!r} into "
                            "another folder")
    supported = {pid: supported_frameworks(pairs_dir, pid) for pid in pairs["pair_id"]}
    skipped = [{"pair_id": pid, "framework": fw,
                "reason": f"{pid}/meta.json lists frameworks {', '.join(levels)} only"}
               for pid, levels in supported.items() for fw in params.frameworks
               if fw not in levels]
    for pid in list(supported):
        devices = pair_meta(pairs_dir, pid).get("devices") or ["cpu", "gpu"]
        if device not in devices:  # e.g. an XLA recompilation pair that only means something on GPU
            skipped += [{"pair_id": pid, "framework": fw,
                         "reason": f"{pid}/meta.json lists devices {', '.join(devices)} only"}
                        for fw in params.frameworks if fw in supported[pid]]
            supported[pid] = ()
    for skip in skipped:
        print(f"leakwatt: measure: skipping {skip['pair_id']} under {skip['framework']}: "
              f"{skip['reason']}", file=sys.stderr, flush=True)
    done = store.keys()
    full_plan = plan_runs(pairs, params.repetitions, params.seed, device, params.frameworks,
                          supported, params.control_runs)
    plan = [r for r in full_plan
            if (r.pair_id, r.variant, r.rep, device, r.framework, r.instrumented) not in done]
    warmups: list[PlannedRun] = []
    if plan:
        cells = sorted({(r.pair_id, r.smell, r.variant, r.program, r.framework) for r in plan
                        if not r.instrumented})
        random.Random(f"{params.seed}:{device}:warmup").shuffle(cells)
        warmups = [PlannedRun(p, s, v, -(k + 1), 0, prog, fw)
                   for k in range(params.warmup) for (p, s, v, prog, fw) in cells]
    idle_store = AppendStore(out_dir / "idle.csv", IDLE_COLUMNS, IDLE_KEY)
    have_idle = idle_store.keys()
    todo = set(plan)
    schedule = [item for item in interleave_idle(full_plan, params.repetitions, params.seed,
                                                 device)
                if (item in todo if isinstance(item, PlannedRun)
                    else params.idle_baseline and (device, item.rep) not in have_idle)]
    env = environment(device, nvml)
    env["measurement"] = {
        "device": device, "scale": scale, "params": as_dict(params),
        "excluded_pairs": excluded, "pairs": sorted(pairs["pair_id"]), "skipped": skipped,
        "cpu_power_sources": sorted(set(existing["cpu_power_source"].dropna().astype(str))),
        "started_at": _now(),
    }
    atomic_write_json(out_dir / "environment.json", env)

    total = len(warmups) + len(schedule)
    if show_progress and total:
        from tqdm import tqdm

        progress: Any = tqdm(total=total, desc=f"measure {device}", unit="run")
    else:
        progress = _NoProgress()
    warm_store = (AppendStore(out_dir / "warmup.csv", RUNS_COLUMNS, MEASURE_KEY) if warmups
                  else None)
    evidence = {pid: str(pair_meta(pairs_dir, pid).get("leak_evidence") or "none recorded")
                for pid in pairs["pair_id"]}
    work = out_dir
    deferred: list[IdleSlot] = []
    try:
        for item in [*warmups, *schedule]:
            if isinstance(item, IdleSlot):
                target = _idle_target(store.read(), device)
                if target is None:  # no ok clean run yet to size it on: try after the rest
                    deferred.append(item)
                    continue
                progress.set_postfix_str(f"idle rep {item.rep}")
                _run_idle(idle_store, work, device, params, item.rep, target, nvml)
                progress.update(1)
                time.sleep(params.cooldown_s)
                continue
            run = item
            counted = run.rep > 0
            name = (f"{run.pair_id}__{run.variant}__{device}__{run.framework}__"
                    f"{'control__' if run.instrumented else ''}"
                    f"{'r' + str(run.rep) if counted else 'warmup' + str(-run.rep)}")
            progress.set_postfix_str(f"{run.pair_id}/{run.variant}/{run.framework} "
                                     f"{'rep ' + str(run.rep) if counted else 'warm-up'}")
            started = _now()
            load_start = os.getloadavg()[0]
            outcome = _run_program(run, work, device, scale, params, nvml, name)
            load_end = os.getloadavg()[0]
            series_rel = f"series/{name}.csv"
            _write_series(out_dir / series_rel, outcome.series)
            row = _row(run, outcome, device, scale, started, params, series_rel,
                       (load_start, load_end), evidence.get(run.pair_id, "none recorded"))
            if counted:
                store.append(row)
            elif warm_store is not None:
                warm_store.append(row)
            progress.update(1)
            time.sleep(params.cooldown_s)
        for slot in deferred:
            target = _idle_target(store.read(), device)
            if target is not None:
                _run_idle(idle_store, work, device, params, slot.rep, target, nvml)
                time.sleep(params.cooldown_s)
            progress.update(1)
    finally:
        progress.close()
    runs = store.read()
    env["measurement"]["cpu_power_sources"] = sorted(
        set(runs.loc[runs["device"] == device, "cpu_power_source"].dropna().astype(str)))
    env["measurement"]["finished_at"] = _now()
    atomic_write_json(out_dir / "environment.json", env)
    mask = (runs["device"] == device) & runs["pair_id"].isin(list(pairs["pair_id"]))
    return runs[mask].reset_index(drop=True)
