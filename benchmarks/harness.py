"""Measurement-harness benchmark: CodeCarbon tracker overhead and run-to-run variation.

Runs one fixed CPU workload (NumPy matrix products, the same work every time) in fresh
processes, interleaved in a seeded order:
- `bare`: the program alone;
- `tracked`: the program under leakwatt's harness child (`leakwatt.pipeline.harness.child`), i.e. a fresh
  `OfflineEmissionsTracker` sampling every `--interval` seconds, exactly as `measure` runs pairs.

Prints, from this one run: the tracker's overhead on the workload's own time (target <= 2 %),
its overhead on whole-process wall time (tracker start/stop included), and the coefficient of
variation of CodeCarbon's energy over the repeated identical tracked runs.

    python benchmarks/harness.py [--reps 8] [--interval 0.5] [--size 700] [--loops 300]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOAD = '''
import argparse, json, time
import numpy as np
parser = argparse.ArgumentParser()
parser.add_argument("--scale", default="tiny")
parser.add_argument("--out", required=True)
parser.add_argument("--size", type=int, default={size})
parser.add_argument("--loops", type=int, default={loops})
args, _ = parser.parse_known_args()
rng = np.random.default_rng(0)
a = rng.standard_normal((args.size, args.size))
start = time.perf_counter()
acc = 0.0
for _ in range(args.loops):
    acc += float((a @ a).sum())
elapsed = time.perf_counter() - start
with open(args.out, "w") as fh:
    json.dump({{"workload_s": elapsed, "checksum": acc}}, fh)
'''


def run_once(mode: str, program: Path, work: Path, index: int, interval: float) -> dict:
    result = work / f"{mode}-{index}.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if mode == "bare":
        cmd = [sys.executable, str(program), "--out", str(result)]
    else:
        report = work / f"{mode}-{index}.report.json"
        cmd = [sys.executable, "-m", "leakwatt.pipeline.harness.child", "--report", str(report),
               "--program", str(program), "--result", str(result), "--interval", str(interval)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    with open(result, encoding="utf-8") as fh:
        out = json.load(fh)
    out["wall_s"] = wall
    if mode == "tracked":
        with open(work / f"{mode}-{index}.report.json", encoding="utf-8") as fh:
            out.update(json.load(fh))
    return out


def pct(a: float, b: float) -> float:
    return 100.0 * (a - b) / b


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=8)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--size", type=int, default=700)
    parser.add_argument("--loops", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2606)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="leakwatt-bench-") as tmp:
        work = Path(tmp)
        program = work / "workload.py"
        program.write_text(WORKLOAD.format(size=args.size, loops=args.loops), encoding="utf-8")
        order = [(mode, i) for i in range(args.reps) for mode in ("bare", "tracked")]
        rng = random.Random(args.seed)
        blocks = [order[i:i + 2] for i in range(0, len(order), 2)]
        for block in blocks:
            rng.shuffle(block)
        results: dict[str, list[dict]] = {"bare": [], "tracked": []}
        run_once("bare", program, work, -1, args.interval)  # warm-up: page cache, imports
        for block in blocks:
            for mode, i in block:
                results[mode].append(run_once(mode, program, work, i, args.interval))

    bare_w = statistics.median(r["workload_s"] for r in results["bare"])
    tracked_w = statistics.median(r["workload_s"] for r in results["tracked"])
    bare_wall = statistics.median(r["wall_s"] for r in results["bare"])
    tracked_wall = statistics.median(r["wall_s"] for r in results["tracked"])
    energies = [r["energy_kwh"] for r in results["tracked"]]
    cv = statistics.stdev(energies) / statistics.mean(energies) * 100
    bare_cv = statistics.stdev(r["workload_s"] for r in results["bare"]) / bare_w * 100
    source = sorted({r.get("cpu_power_source", "?") for r in results["tracked"]})

    print(f"machine: {os.cpu_count()} cores; workload: {args.loops} products of "
          f"{args.size}x{args.size} matrices, 1 BLAS thread; {args.reps} interleaved reps per mode; "
          f"tracker interval {args.interval} s")
    print(f"median workload time   bare {bare_w:7.3f} s   tracked {tracked_w:7.3f} s   "
          f"overhead {pct(tracked_w, bare_w):+6.2f} %  (target <= 2 %)")
    print(f"median process wall    bare {bare_wall:7.3f} s   tracked {tracked_wall:7.3f} s   "
          f"overhead {pct(tracked_wall, bare_wall):+6.2f} %  (tracker import, start and stop included)")
    print(f"energy over {len(energies)} identical tracked runs: mean {statistics.mean(energies):.3e} kWh, "
          f"CV {cv:.2f} %   (CPU power source: {', '.join(source)})")
    print(f"workload time CV over bare runs: {bare_cv:.2f} %  (the machine's own noise)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
