"""Equivalence check: both programs of a pair must do the same training work.

Each program runs once in a fresh subprocess at ``tiny`` scale with ``--deterministic``
(TensorFlow op determinism, fixed seeds) and GPUs hidden; the per-round losses, the final loss
and the per-variable weight sums of the two results must agree within ``rtol``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from leakwatt.common import atomic_write_csv
from leakwatt.contracts import EQUIVALENCE
from leakwatt.pipeline.repros.pairs import read_pairs

EQUIVALENCE_COLUMNS = list(EQUIVALENCE.columns)
STATUSES = ("equivalent", "different", "crashed")


def run_program(program: Path, scale: str, result_path: Path, timeout_s: float,
                deterministic: bool = True) -> tuple[dict[str, Any] | None, str, float]:
    """Run one generated program in a fresh CPU-only subprocess; (result, error, seconds)."""
    cmd = [sys.executable, str(program), "--scale", scale, "--out", str(result_path)]
    if deterministic:
        cmd.append("--deterministic")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=program.parent, env=env, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout_s:g} s", time.perf_counter() - start
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return None, f"exit code {proc.returncode}: {tail[-1] if tail else 'no message'}", seconds
    try:
        with open(result_path, encoding="utf-8") as fh:
            return json.load(fh), "", seconds
    except (OSError, ValueError) as exc:
        return None, f"no readable result ({exc})", seconds


def _rel(a: float, b: float) -> float:
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else abs(a - b) / scale


def compare_results(smelly: dict[str, Any], clean: dict[str, Any]) -> tuple[float, str]:
    """Largest relative difference over losses and weight sums, and a note on what differed."""
    notes: list[str] = []
    diffs: list[float] = []
    for key in ("round_losses", "weights_abs_sums"):
        a, b = smelly.get(key) or [], clean.get(key) or []
        if len(a) != len(b) or not a:
            notes.append(f"{key}: lengths {len(a)} vs {len(b)}")
            diffs.append(float("inf"))
            continue
        worst = max(_rel(float(x), float(y)) for x, y in zip(a, b, strict=True))
        diffs.append(worst)
        notes.append(f"{key}: max rel diff {worst:.3g}")
    diffs.append(_rel(float(smelly.get("final_loss", 0.0)), float(clean.get("final_loss", 0.0))))
    if smelly.get("weights_sha256") == clean.get("weights_sha256"):
        notes.append("weights bit-identical")
    return max(diffs), "; ".join(notes)


def check_pairs(pairs_dir: Path, rtol: float, timeout_s: float = 600,
                scale: str = "tiny") -> pd.DataFrame:
    """Run every pair of ``pairs_dir/pairs.csv`` once per variant; write ``equivalence.csv``."""
    pairs_dir = Path(pairs_dir)
    table = read_pairs(pairs_dir)
    rows = []
    with tempfile.TemporaryDirectory(prefix="leakwatt-eq-") as tmp:
        for pair in table.to_dict("records"):
            results: dict[str, dict[str, Any] | None] = {}
            errors, seconds = {}, {}
            for variant in ("smelly", "clean"):
                out = Path(tmp) / f"{pair['pair_id']}-{variant}.json"
                results[variant], errors[variant], seconds[variant] = run_program(
                    Path(pair[f"{variant}_path"]), scale, out, timeout_s)
            row: dict[str, Any] = {"pair_id": pair["pair_id"],
                                   "smelly_s": round(seconds["smelly"], 2),
                                   "clean_s": round(seconds["clean"], 2)}
            smelly, clean = results["smelly"], results["clean"]
            if smelly is None or clean is None:
                row.update(status="crashed", max_rel_diff=None, detail="; ".join(
                    f"{v}: {errors[v]}" for v in ("smelly", "clean") if errors[v]))
            else:
                diff, detail = compare_results(smelly, clean)
                row.update(status="equivalent" if diff <= rtol else "different",
                           max_rel_diff=diff, detail=f"{detail} (rtol {rtol:g})")
            rows.append(row)
    frame = pd.DataFrame(rows, columns=EQUIVALENCE_COLUMNS)
    atomic_write_csv(pairs_dir / "equivalence.csv", frame, columns=EQUIVALENCE_COLUMNS)
    return frame


def excluded_pairs(pairs_dir: Path) -> dict[str, str]:
    """Pairs that ``equivalence.csv`` (when present) marks other than equivalent, with why."""
    path = Path(pairs_dir) / "equivalence.csv"
    if not path.is_file():
        return {}
    frame = pd.read_csv(path, dtype={"pair_id": str})
    bad = frame[frame["status"] != "equivalent"]
    return {str(r["pair_id"]): f"{r['status']}: {r['detail']}" for r in bad.to_dict("records")}
