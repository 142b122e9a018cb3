"""The measurement run table: pairs x variants x repetitions, interleaved, resumable.

Block ``rep`` holds one run of every (pair, variant), shuffled by a generator seeded with
(seed, device, rep), so the order of a block never changes when repetitions are added. Warm-up
runs (``params.warmup`` per pair and variant, run before the first missing block of an
invocation) go to ``warmup.csv`` and are never counted. A cooldown sleep follows every run.
"""

from __future__ import annotations

import platform
import random
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

from leakwatt.common import LeakwattError, atomic_write_csv, atomic_write_json
from leakwatt.contracts import SERIES
from leakwatt.params import MeasureParams, as_dict
from leakwatt.pipeline.harness.runner import Nvml, RunOutcome, child_env, rapl_readable, run_child
from leakwatt.pipeline.harness.store import IDLE_COLUMNS, IDLE_KEY, RUN_KEY, RUNS_COLUMNS, AppendStore
from leakwatt.pipeline.repros.equivalence import excluded_pairs
from leakwatt.pipeline.repros.pairs import read_pairs
from leakwatt.pipeline.repros.templates import SCALES

PROJECT_ROOT = Path(__file__).resolve().parents[2]
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


def plan_runs(pairs: pd.DataFrame, repetitions: int, seed: int, device: str) -> list[PlannedRun]:
    """The full run table in execution order (block by block, shuffled within a block)."""
    cells = sorted((str(r["pair_id"]), str(r["smell"]), v, str(r[f"{v}_path"]))
                   for r in pairs.to_dict("records") for v in VARIANTS)
    plan = []
    for rep in range(1, repetitions + 1):
        block = list(cells)
        random.Random(f"{seed}:{device}:{rep}").shuffle(block)
        for i, (pair_id, smell, variant, program) in enumerate(block):
            plan.append(PlannedRun(pair_id, smell, variant, rep, (rep - 1) * len(cells) + i + 1,
                                   program))
    return plan


def rss_growth_mb_per_s(series: list[tuple[float, float, float | None]]) -> float | None:
    """OLS slope of RSS over the second half of the run (the first half holds the imports)."""
    if not series:
        return None
    end = series[-1][0]
    tail = [(t, rss) for t, rss, _ in series if t >= end / 2]
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


def _child_args(params: MeasureParams, device: str, report: Path) -> list[str]:
    return ["--report", str(report), "--device", device, "--country", params.country_iso_code,
            "--interval", str(params.sample_interval_s)]


def _run_program(run: PlannedRun, work: Path, device: str, scale: str,
                 params: MeasureParams, nvml: Nvml | None, log_name: str) -> RunOutcome:
    result = work / "results" / f"{log_name}.json"
    result.parent.mkdir(parents=True, exist_ok=True)
    result.unlink(missing_ok=True)
    args = _child_args(params, device, work / "tmp" / f"{log_name}.report.json")
    args += ["--program", run.program, "--scale", scale, "--result", str(result)]
    (work / "tmp").mkdir(parents=True, exist_ok=True)
    outcome = run_child(args, child_env(device), work / "tmp" / f"{log_name}.report.json",
                        work / "logs" / f"{log_name}.log", params.timeout_s,
                        params.memory_limit_mb, params.sample_interval_s, nvml)
    outcome.report["_result_path"] = str(result)
    return outcome


def _final_loss(outcome: RunOutcome) -> float | None:
    try:
        return float(pd.read_json(outcome.report["_result_path"], typ="series")["final_loss"])
    except Exception:
        return None


def _write_series(path: Path, series: list[tuple[float, float, float | None]]) -> None:
    frame = pd.DataFrame(series, columns=list(SERIES.columns))
    atomic_write_csv(path, frame, columns=list(SERIES.columns))


def _row(run: PlannedRun, outcome: RunOutcome, device: str, scale: str, started: str,
         params: MeasureParams, series_rel: str) -> dict[str, Any]:
    row = {"pair_id": run.pair_id, "smell": run.smell, "variant": run.variant, "rep": run.rep,
           "device": device, "status": outcome.status, "peak_rss_mb": outcome.peak_rss_mb,
           "scale": scale, "order": run.order, "started_at": started, "error": outcome.error,
           "rss_growth_mb_per_s": rss_growth_mb_per_s(outcome.series),
           "peak_gpu_mem_mb": outcome.peak_gpu_mem_mb, "wall_s": round(outcome.wall_s, 3),
           "workload_s": outcome.report.get("workload_s"),
           "final_loss": _final_loss(outcome) if outcome.status == "ok" else None,
           "exit_code": outcome.exit_code, "series_path": series_rel,
           "country_iso_code": params.country_iso_code,
           "carbon_intensity_kg_per_kwh": params.carbon_intensity_kg_per_kwh,
           "sample_interval_s": params.sample_interval_s}
    row.update(_energy_fields(outcome, params))
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
    for dist in ("tensorflow", "keras", "codecarbon", "numpy", "pandas", "psutil",
                 "nvidia-ml-py", "leakwatt"):
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


def _run_idle(store: AppendStore, work: Path, device: str, params: MeasureParams,
              runs: pd.DataFrame, nvml: Nvml | None, progress: Any) -> None:
    if not params.idle_baseline:
        return
    ok_clean = runs[(runs["device"] == device) & (runs["variant"] == "clean")
                    & (runs["status"] == "ok")]["duration_s"].dropna()
    if ok_clean.empty:
        return
    target = float(statistics.median(ok_clean))
    have = store.keys()
    for rep in range(1, min(params.repetitions, IDLE_REPS_MAX) + 1):
        if (device, rep) in have:
            continue
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
        progress.update(1)
        time.sleep(params.cooldown_s)


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
    pairs_dir, out_dir = Path(pairs_dir), Path(out_dir)
    if scale not in SCALES:
        raise LeakwattError(f"scale {scale!r} is not one of {', '.join(SCALES)}")
    nvml = check_device(device)
    pairs = _load_pairs(pairs_dir, pair_ids)
    excluded = excluded_pairs(pairs_dir)
    pairs = pairs[~pairs["pair_id"].isin(list(excluded))]
    out_dir.mkdir(parents=True, exist_ok=True)
    store = AppendStore(out_dir / "runs.csv", RUNS_COLUMNS, RUN_KEY)
    existing = store.read()
    other_scale = existing[(existing["device"] == device) & (existing["scale"] != scale)]
    if not other_scale.empty:
        raise LeakwattError(f"{store.path}: holds {device} runs at scale "
                            f"{other_scale['scale'].iloc[0]!r}; measure scale {scale!r} into "
                            "another folder")
    done = store.keys()
    plan = [r for r in plan_runs(pairs, params.repetitions, params.seed, device)
            if (r.pair_id, r.variant, r.rep, device) not in done]
    warmups: list[PlannedRun] = []
    if plan:
        cells = sorted({(r.pair_id, r.smell, r.variant, r.program) for r in plan})
        random.Random(f"{params.seed}:{device}:warmup").shuffle(cells)
        warmups = [PlannedRun(p, s, v, -(k + 1), 0, prog)
                   for k in range(params.warmup) for (p, s, v, prog) in cells]
    idle_store = AppendStore(out_dir / "idle.csv", IDLE_COLUMNS, IDLE_KEY)
    idle_todo = 0
    if params.idle_baseline:
        have_idle = idle_store.keys()
        idle_todo = sum((device, rep) not in have_idle
                        for rep in range(1, min(params.repetitions, IDLE_REPS_MAX) + 1))
    env = environment(device, nvml)
    env["measurement"] = {
        "device": device, "scale": scale, "params": as_dict(params),
        "excluded_pairs": excluded, "pairs": sorted(pairs["pair_id"]),
        "cpu_power_sources": sorted(set(existing["cpu_power_source"].dropna().astype(str))),
        "started_at": _now(),
    }
    atomic_write_json(out_dir / "environment.json", env)

    total = len(warmups) + len(plan) + idle_todo
    if show_progress and total:
        from tqdm import tqdm

        progress: Any = tqdm(total=total, desc=f"measure {device}", unit="run")
    else:
        progress = _NoProgress()
    warm_store = AppendStore(out_dir / "warmup.csv", RUNS_COLUMNS, RUN_KEY) if warmups else None
    work = out_dir
    try:
        for run in warmups + plan:
            counted = run.rep > 0
            name = (f"{run.pair_id}__{run.variant}__{device}__"
                    f"{'r' + str(run.rep) if counted else 'warmup' + str(-run.rep)}")
            progress.set_postfix_str(f"{run.pair_id}/{run.variant} "
                                     f"{'rep ' + str(run.rep) if counted else 'warm-up'}")
            started = _now()
            outcome = _run_program(run, work, device, scale, params, nvml, name)
            series_rel = f"series/{name}.csv"
            _write_series(out_dir / series_rel, outcome.series)
            row = _row(run, outcome, device, scale, started, params, series_rel)
            if counted:
                store.append(row)
            elif warm_store is not None:
                warm_store.append(row)
            progress.update(1)
            time.sleep(params.cooldown_s)
        runs = store.read()
        _run_idle(idle_store, work, device, params, runs, nvml, progress)
    finally:
        progress.close()
    runs = store.read()
    env["measurement"]["cpu_power_sources"] = sorted(
        set(runs.loc[runs["device"] == device, "cpu_power_source"].dropna().astype(str)))
    env["measurement"]["finished_at"] = _now()
    atomic_write_json(out_dir / "environment.json", env)
    mask = (runs["device"] == device) & runs["pair_id"].isin(list(pairs["pair_id"]))
    return runs[mask].reset_index(drop=True)
