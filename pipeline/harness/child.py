"""The measured process: a fresh CodeCarbon tracker around one reproduction program (or idling).

Run by the harness as ``python -m leakwatt.pipeline.harness.child --report R.json (--program P | --idle S)
...``. The program runs in this very process (``runpy``), so the process the harness samples for
RSS is the one doing the work. The child always stops its tracker and writes the report, also
when the program raises; it dies with its parent (``PR_SET_PDEATHSIG`` and a parent watch), so a
killed harness leaves no orphan burning energy. Only standard library and CodeCarbon are imported
before the program runs.

Two trackers run: one over the whole process (``process_*`` figures) and one over the measured
window, started when the program calls ``ready()`` (after importing TensorFlow and building its
data; see :mod:`leakwatt.pipeline.harness.window`). A program that never calls ``ready()`` is
measured from its start, and the report says so (``window_start``: ``process``). Both trackers are
CodeCarbon's own; two may run at once (``allow_multiple_runs``) and, from CodeCarbon 3.3, each
keeps its own CPU-load baseline, so they do not disturb each other's readings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import runpy
import signal
import sys
import threading
import time
import traceback
from typing import Any


def _die_with_parent() -> None:
    parent = os.getppid()
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(137)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True, name="leakwatt-parent-watch").start()


def power_sources(tracker: Any) -> dict[str, str]:
    """How CodeCarbon obtained each figure, read from the tracker's hardware objects."""
    cpu, gpu = "none", "none"
    for hw in getattr(tracker, "_hardware", []) or []:
        kind = type(hw).__name__
        if kind == "CPU":
            mode = str(getattr(hw, "_mode", "unknown"))
            cpu = {"intel_rapl": "rapl", "intel_power_gadget": "power_gadget"}.get(mode, mode)
        elif kind == "GPU":
            devices = getattr(getattr(hw, "devices", None), "devices", []) or []
            fallback = [bool(getattr(d, "_use_power_fallback", False)) for d in devices]
            gpu = "nvml_power" if any(fallback) else "nvml_energy_counter"
        elif kind in ("AppleSiliconChip", "Raspberry"):
            cpu = kind.lower()
    return {"cpu_power_source": cpu, "gpu_power_source": gpu, "ram_power_source": "estimated"}


def _gpu_peak_mb() -> float | None:
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return None
    try:
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    except Exception:
        return None


def _tf_sees_gpu() -> bool | None:
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return None
    try:
        return bool(tf.config.list_physical_devices("GPU"))
    except Exception:
        return None


def _figures(data: Any, prefix: str = "") -> dict[str, float]:
    return {f"{prefix}duration_s": float(data.duration),
            f"{prefix}energy_kwh": float(data.energy_consumed),
            f"{prefix}cpu_energy_kwh": float(data.cpu_energy),
            f"{prefix}ram_energy_kwh": float(data.ram_energy),
            f"{prefix}gpu_energy_kwh": float(data.gpu_energy)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leakwatt.pipeline.harness.child")
    parser.add_argument("--report", required=True)
    parser.add_argument("--program")
    parser.add_argument("--idle", type=float)
    parser.add_argument("--scale", default="tiny")
    parser.add_argument("--framework", default="keras3")
    parser.add_argument("--result", default="")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--country", default="USA")
    parser.add_argument("--interval", type=float, default=0.5)
    # the dose study (docs/measure.md, "Dose-response"): rounds, each round's samples, and
    # whether this is a control run that counts the leak (never a measured one)
    parser.add_argument("--rounds", type=int, default=0)
    parser.add_argument("--samples", type=int, default=0)
    parser.add_argument("--instrumented", action="store_true")
    args = parser.parse_args(argv)
    _die_with_parent()

    import logging

    from codecarbon import OfflineEmissionsTracker

    from leakwatt.pipeline.harness import window

    logging.getLogger("codecarbon").setLevel(logging.ERROR)

    def tracker_() -> Any:
        return OfflineEmissionsTracker(country_iso_code=args.country,
                                       measure_power_secs=args.interval, save_to_file=False,
                                       log_level="error", project_name="leakwatt",
                                       allow_multiple_runs=True)

    process_tracker, window_tracker = tracker_(), tracker_()
    report: dict[str, Any] = {"status": "ok", "error": "", "window_start": "process"}
    marks: dict[str, float] = {}

    def start_window() -> None:
        window_tracker.start()
        marks["ready"] = time.monotonic()

    process_tracker.start()
    start = time.perf_counter()
    marks["start"] = time.monotonic()
    try:
        if args.idle is not None:
            start_window()
            time.sleep(args.idle)
        else:
            window.on_ready(start_window)
            os.environ[window.HOOK_ENV] = window.HOOK
            # keras3 is the contract's default: a program that predates --framework still runs
            # under it; any other level is passed on (a program that cannot take it fails loudly)
            os.environ["TF_USE_LEGACY_KERAS"] = "0" if args.framework == "keras3" else "1"
            sys.argv = [args.program, "--scale", args.scale, "--out", args.result]
            if args.framework != "keras3":
                sys.argv += ["--framework", args.framework]
            if args.rounds:
                sys.argv += ["--rounds", str(args.rounds)]
            if args.samples:
                sys.argv += ["--samples", str(args.samples)]
            if args.instrumented:
                sys.argv.append("--instrumented")
            sys.path.insert(0, os.path.dirname(os.path.abspath(args.program)))
            runpy.run_path(args.program, run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (0, None):
            report.update(status="crashed", error=f"program exited with {exc.code}")
    except MemoryError:
        report.update(status="oom", error="MemoryError")
    except BaseException as exc:  # the program's failure is data, not a harness crash
        text = f"{type(exc).__name__}: {exc}".strip().splitlines()
        status = "oom" if "ResourceExhausted" in type(exc).__name__ else "crashed"
        report.update(status=status, error=text[0][:500] if text else type(exc).__name__)
        traceback.print_exc()
    report["workload_s"] = time.perf_counter() - start
    marks["end"] = time.monotonic()
    report.update(start_monotonic=marks["start"], end_monotonic=marks["end"],
                  ready_monotonic=marks.get("ready"),
                  startup_s=marks["ready"] - marks["start"] if "ready" in marks else None)
    try:
        window_emissions = window_tracker.stop() if "ready" in marks else None
        process_emissions = process_tracker.stop()
        whole = process_tracker.final_emissions_data
        report.update(_figures(whole, "process_"))
        if "ready" in marks:
            data, tracker, emissions = (window_tracker.final_emissions_data, window_tracker,
                                        window_emissions)
            report["window_start"] = "ready"
        else:  # never ready(): the window is the whole process
            data, tracker, emissions = whole, process_tracker, process_emissions
        report.update(
            **_figures(data),
            codecarbon_emissions_kg=float(emissions or data.emissions),
            codecarbon_version=str(data.codecarbon_version), cpu_model=str(data.cpu_model),
            gpu_model=str(data.gpu_model), tracking_mode=str(data.tracking_mode),
            **power_sources(tracker))
    except Exception as exc:
        report.update(status="crashed", error=f"CodeCarbon failed: {type(exc).__name__}: {exc}")
    report["child_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report["peak_gpu_mem_mb"] = _gpu_peak_mb()
    sees_gpu = _tf_sees_gpu()
    if args.device == "gpu" and sees_gpu is False and report["status"] == "ok":
        report.update(status="crashed", error="device gpu: TensorFlow saw no GPU in this run")
    tmp = args.report + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(report, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, args.report)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if report["status"] == "ok" else 1)  # skip TF's slow, sometimes hanging teardown


if __name__ == "__main__":
    sys.exit(main())
