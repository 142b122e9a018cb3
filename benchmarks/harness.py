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

With ``--first-vs-later RUNS.csv`` (a runs.csv measured with ``--warmup 0`` and at least two
repetitions) it instead prints, per framework level, how much longer each cell's first counted
run was than its later ones (measured window and start-up): the data behind ``measure.warmup``.
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


def first_vs_later(runs_csv: Path) -> int:
    """Each (pair, variant, framework) cell's rep-1 run against the median of its later reps."""
    import pandas as pd

    runs = pd.read_csv(runs_csv)
    runs = runs[runs["status"] == "ok"]
    cell = ["pair_id", "variant", "framework"]
    print(f"{runs_csv}: {len(runs)} ok runs; load average at start "
          f"{runs['load_start'].min():.1f}-{runs['load_start'].max():.1f}")
    print("framework     cells  first/later window (median, range)  first/later start-up  "
          "first-of-invocation window / its cell's later")
    for framework, group in runs.groupby("framework"):
        ratios, startups = [], []
        for _, runs_of_cell in group.groupby(cell):
            first = runs_of_cell[runs_of_cell["rep"] == 1]
            later = runs_of_cell[runs_of_cell["rep"] > 1]
            if first.empty or later.empty:
                continue
            ratios.append(float(first["duration_s"].iloc[0] / later["duration_s"].median()))
            startups.append(float(first["startup_s"].iloc[0] / later["startup_s"].median()))
        if not ratios:
            continue
        opener = group.sort_values("order").iloc[0]
        same = group[(group[cell] == opener[cell]).all(axis=1) & (group["rep"] > 1)]
        lead = (f"{opener['duration_s'] / same['duration_s'].median():.2f}" if len(same)
                else "n/a")
        print(f"{framework:13s} {len(ratios):5d}  {statistics.median(ratios):5.2f} "
              f"({min(ratios):.2f}-{max(ratios):.2f})                  "
              f"{statistics.median(startups):5.2f}                 {lead}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=8)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--size", type=int, default=700)
    parser.add_argument("--loops", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2606)
    parser.add_argument("--first-vs-later", type=Path, metavar="RUNS_CSV",
                        help="print first-run vs later-run durations of a runs.csv instead")
    args = parser.parse_args()
    if args.first_vs_later:
        return first_vs_later(args.first_vs_later)

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
