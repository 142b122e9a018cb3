"""One measured run: spawn the child, watch its RSS (and GPU memory), enforce the limits.

The watchdog samples the child's process tree every ``sample_interval_s``: RSS above
``memory_limit_mb`` kills it (status ``oom``), wall time above ``timeout_s`` kills it
(``timeout``). RLIMIT_AS is not used because TensorFlow reserves far more virtual memory than it
touches. RAPL (``/sys/class/powercap``) and NVML energy counters, when readable, are read around
the run as a second meter.

Samples are kept only while the program runs: the child reports when its program ended (on the
shared monotonic clock), and a sample taken after that, or one of 0 MB (a process being torn
down), is dropped -- such a point once made an exiting process look like a 42 % memory drop.

The whole process tree is measured, not only the child: worker processes a program starts (a
scikit-learn search with ``n_jobs=-1``) count in the RSS, in ``tree_peak_procs`` (the most
processes the tree had at once) and in ``tree_cpu_s`` (see :class:`TreeWatch`). Descendants still
running when the child has exited (a worker pool the program never shut down) are killed then,
so that they do not burn CPU into the next run.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

POWERCAP = Path("/sys/class/powercap")


@dataclass
class RunOutcome:
    status: str
    error: str
    wall_s: float
    report: dict[str, Any]
    series: list[tuple[float, float, float | None]] = field(default_factory=list)
    exit_code: int | None = None
    rapl_energy_kwh: float | None = None
    nvml_energy_kwh: float | None = None
    #: seconds from the child's start to the program's ready() (None: it never called it)
    ready_s: float | None = None
    #: CPU seconds of the child and all its descendants (:class:`TreeWatch`)
    tree_cpu_s: float | None = None
    #: the most processes (the child included) alive in its tree at one sample
    tree_peak_procs: int | None = None

    @property
    def peak_rss_mb(self) -> float | None:
        sampled = max((rss for _, rss, _ in self.series), default=None)
        child = self.report.get("child_peak_rss_mb")
        values = [v for v in (sampled, child) if v is not None]
        return max(values) if values else None

    @property
    def peak_gpu_mem_mb(self) -> float | None:
        sampled = max((g for _, _, g in self.series if g is not None), default=None)
        values = [v for v in (sampled, self.report.get("peak_gpu_mem_mb")) if v is not None]
        return max(values) if values else None


def rapl_readable() -> bool:
    return _read_rapl_uj() is not None


def _read_rapl_uj() -> dict[str, tuple[int, int]] | None:
    """Package-level RAPL counters (energy_uj, max_energy_range_uj) or None if not readable."""
    zones = sorted(POWERCAP.glob("intel-rapl:*")) if POWERCAP.is_dir() else []
    out = {}
    for zone in zones:
        if zone.name.count(":") != 1:  # sub-zones (core, dram) are inside the package figure
            continue
        try:
            energy = int((zone / "energy_uj").read_text().strip())
            span = int((zone / "max_energy_range_uj").read_text().strip())
        except (OSError, ValueError):
            return None
        out[zone.name] = (energy, span)
    return out or None


def _rapl_delta_kwh(before: dict[str, tuple[int, int]] | None,
                    after: dict[str, tuple[int, int]] | None) -> float | None:
    if not before or not after:
        return None
    total_uj = 0
    for name, (start, span) in before.items():
        end = after.get(name, (start, span))[0]
        total_uj += end - start if end >= start else end + span - start
    return total_uj / 3.6e12


class Nvml:
    """Minimal NVML access (nvidia-ml-py): device memory per process, energy counters."""

    def __init__(self) -> None:
        self.handles: list[Any] = []
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nv = pynvml
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i)
                            for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:
            self.handles = []

    def available(self) -> bool:
        return bool(self.handles)

    def energy_mj(self) -> float | None:
        try:
            return float(sum(self.nv.nvmlDeviceGetTotalEnergyConsumption(h)
                             for h in self.handles)) if self.handles else None
        except Exception:
            return None

    def process_mem_mb(self, pids: set[int]) -> float | None:
        if not self.handles:
            return None
        total = 0
        try:
            for h in self.handles:
                for proc in self.nv.nvmlDeviceGetComputeRunningProcesses(h):
                    if proc.pid in pids and proc.usedGpuMemory:
                        total += proc.usedGpuMemory
        except Exception:
            return None
        return total / 2**20


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return [proc]


def _rss_mb(procs: list[psutil.Process]) -> float | None:
    total, seen = 0, False
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
            seen = True
    return total / 2**20 if seen else None


class TreeWatch:
    """CPU time and process count of a child's process tree, for worker processes' share.

    ``tree_cpu_s`` = the child's own CPU time and that of every descendant the tree waited for
    (exact: the harness's ``RUSAGE_CHILDREN`` grows by the reaped child's usage, which on Linux
    includes its waited-for descendants; the harness runs one child at a time) + for every
    descendant seen by the sampler that outlived the child (never waited for: a worker pool left
    running), its own and its waited-for children's CPU time as read right after the child
    exited. A descendant that ended unwaited between the last sample and the child's exit is
    missed, so the figure is a lower bound. ``tree_peak_procs``: the most processes of the tree,
    the child included and zombies not, at one sample.
    """

    def __init__(self) -> None:
        self.peak_procs = 0
        self.descendants: dict[tuple[int, float], psutil.Process] = {}
        self._before = _children_cpu_s()

    def sample(self, procs: list[psutil.Process]) -> None:
        alive = 0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive += 1
                if p is not procs[0]:
                    self.descendants.setdefault((p.pid, p.create_time()), p)
        self.peak_procs = max(self.peak_procs, alive)

    def finish(self) -> tuple[float, int]:
        """After the child was reaped: (tree_cpu_s, tree_peak_procs); descendants still running
        are killed."""
        total = _children_cpu_s() - self._before
        leftovers = []
        for p in self.descendants.values():
            with contextlib.suppress(psutil.Error):
                times = p.cpu_times()  # readable for a zombie too
                total += times.user + times.system + times.children_user + times.children_system
                if p.status() != psutil.STATUS_ZOMBIE:
                    leftovers.append(p)
        for p in leftovers:
            with contextlib.suppress(psutil.Error):
                p.kill()
        return round(total, 3), self.peak_procs


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _kill_tree(proc: psutil.Process) -> None:
    for p in reversed(_tree(proc)):
        with contextlib.suppress(psutil.Error):
            p.kill()


def run_child(args: list[str], env: dict[str, str], report_path: Path, log_path: Path,
              timeout_s: float, memory_limit_mb: float, sample_interval_s: float,
              nvml: Nvml | None = None) -> RunOutcome:
    """Run ``python -m leakwatt.pipeline.harness.child ARGS`` under the watchdog."""
    report_path.unlink(missing_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    rapl_before = _read_rapl_uj()
    nvml_before = nvml.energy_mj() if nvml else None
    series: list[tuple[float, float, float | None]] = []
    killed = ""
    with open(log_path, "w", encoding="utf-8") as log:
        watch = TreeWatch()
        start = time.monotonic()  # the child reports its marks on this same clock
        popen = subprocess.Popen([sys.executable, "-m", "leakwatt.pipeline.harness.child", *args],
                                 stdout=log, stderr=subprocess.STDOUT, env=env)
        proc = psutil.Process(popen.pid)
        while True:
            elapsed = time.monotonic() - start
            procs = _tree(proc)
            watch.sample(procs)
            rss = _rss_mb(procs)
            gpu = nvml.process_mem_mb({p.pid for p in procs}) if nvml else None
            if rss is not None and popen.poll() is None:
                series.append((round(elapsed, 3), round(rss, 2),
                               None if gpu is None else round(gpu, 2)))
            if popen.poll() is not None:
                break
            if rss is not None and rss > memory_limit_mb:
                killed = f"oom: RSS {rss:.0f} MB over the {memory_limit_mb:g} MB limit"
            elif elapsed > timeout_s:
                killed = f"timeout: still running after {timeout_s:g} s"
            if killed:
                _kill_tree(proc)
                popen.wait()
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=sample_interval_s)
        wall = time.monotonic() - start
        tree_cpu_s, tree_peak_procs = watch.finish()
    report: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError), open(report_path, encoding="utf-8") as fh:
        report = json.load(fh)
    report_path.unlink(missing_ok=True)
    series, ready_s = _program_samples(series, report, start)
    nvml_after = nvml.energy_mj() if nvml else None
    nvml_kwh = (None if nvml_before is None or nvml_after is None
                else (nvml_after - nvml_before) / 3.6e9)
    if killed:
        status, error = killed.split(":", 1)[0], killed.split(": ", 1)[1]
    elif report:
        status, error = report.get("status", "crashed"), report.get("error", "")
    else:
        status = "oom" if popen.returncode == -9 else "crashed"
        error = f"child exited with code {popen.returncode} and no report: {_tail(log_path)}"
    return RunOutcome(status=status, error=error, wall_s=wall, report=report, series=series,
                      exit_code=popen.returncode,
                      rapl_energy_kwh=_rapl_delta_kwh(rapl_before, _read_rapl_uj()),
                      nvml_energy_kwh=nvml_kwh, ready_s=ready_s, tree_cpu_s=tree_cpu_s,
                      tree_peak_procs=tree_peak_procs)


def _program_samples(series: list[tuple[float, float, float | None]], report: dict[str, Any],
                     start: float) -> tuple[list[tuple[float, float, float | None]], float | None]:
    """Drop samples taken after the program ended or of a torn-down process (0 MB); return the
    kept samples and the program's ready() time, both in seconds since ``start``."""
    end = report.get("end_monotonic")
    cutoff = None if end is None else float(end) - start
    kept = [s for s in series if s[1] > 0 and (cutoff is None or s[0] <= cutoff)]
    ready = report.get("ready_monotonic")
    return kept, None if ready is None else round(float(ready) - start, 3)


def _tail(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def child_env(device: str) -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env
