"""Equivalence check: both programs of a pair must compute the same thing with the same work.

Each program runs once in a fresh subprocess at ``tiny`` scale with ``--deterministic``
(TensorFlow op determinism, fixed seeds), under every framework level the pair supports (or those
asked for) and on the device that is measured (``cpu`` hides GPUs). Two checks, per level:

* equal results: the per-round losses, the final loss and the per-variable weight sums of the two
  results agree within ``rtol``;
* equal work: the work counters the programs count themselves (``work`` in the result:
  :data:`~leakwatt.pipeline.repros.bodies.WORK_KEYS`, training steps, optimizer updates,
  examples seen and predicted) are identical. A clean variant that trains less is not cheaper
  because the leak is gone, so such a pair is excluded (status ``unequal_work``).

``pairs.csv`` gets each pair's overall ``status`` (``equivalent`` or ``excluded``) and the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from leakwatt.common import LeakwattError, atomic_write_csv
from leakwatt.contracts import EQUIVALENCE, PAIRS
from leakwatt.pipeline.repros.bodies import WORK_KEYS
from leakwatt.pipeline.repros.pairs import DEVICES, FRAMEWORKS, pair_meta, read_pairs

EQUIVALENCE_COLUMNS = list(EQUIVALENCE.columns)
STATUSES = ("equivalent", "different", "unequal_work", "crashed")


def run_program(program: Path, scale: str, result_path: Path, timeout_s: float,
                deterministic: bool = True, framework: str | None = None,
                device: str = "cpu", instrumented: bool = True
                ) -> tuple[dict[str, Any] | None, str, float]:
    """Run one generated program in a fresh subprocess (GPUs hidden unless ``device`` is gpu)
    under ``framework``; (result, error, seconds).

    ``instrumented`` (default): the program counts its leak every round (``leak_counts``). The
    equivalence check is never a measured run, so its results also carry the pair's positive
    control; the harness's measured runs never pass ``--instrumented``."""
    cmd = [sys.executable, str(program), "--scale", scale, "--out", str(result_path)]
    if deterministic:
        cmd.append("--deterministic")
    if instrumented:
        cmd.append("--instrumented")
    if framework is not None:
        cmd += ["--framework", framework]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
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


def compare_work(smelly: dict[str, Any], clean: dict[str, Any]) -> tuple[bool, str, str, str]:
    """(equal, smelly counters, clean counters, note) over :data:`WORK_KEYS`."""
    a, b = smelly.get("work"), clean.get("work")
    if not isinstance(a, dict) or not isinstance(b, dict):
        missing = [v for v, w in (("smelly", a), ("clean", b)) if not isinstance(w, dict)]
        return False, "", "", f"no work counters in the {' and '.join(missing)} result"

    def text(work: dict[str, Any]) -> str:
        return ";".join(f"{k}={int(work.get(k) or 0)}" for k in WORK_KEYS)

    differ = [k for k in WORK_KEYS if int(a.get(k) or 0) != int(b.get(k) or 0)]
    note = ("work differs: " + ", ".join(f"{k} {int(a.get(k) or 0)} vs {int(b.get(k) or 0)}"
                                        for k in differ)) if differ else "equal work"
    return not differ, text(a), text(b), note


def _levels(pairs_dir: Path, pair_id: str, frameworks: Sequence[str] | None) -> list[str]:
    listed = pair_meta(pairs_dir, pair_id).get("frameworks") or list(FRAMEWORKS)
    return [fw for fw in (frameworks or FRAMEWORKS) if fw in listed]


def check_pairs(pairs_dir: Path, rtol: float, timeout_s: float = 600, scale: str = "tiny",
                frameworks: Sequence[str] | None = None, device: str = "cpu") -> pd.DataFrame:
    """Run every pair of ``pairs_dir/pairs.csv`` once per variant and framework level on
    ``device``; write ``equivalence.csv`` and each pair's ``status`` into ``pairs.csv``.

    ``frameworks``: the levels to check (default: all); a pair is checked under those of them
    its ``meta.json`` lists. A pair declared for other devices only gets no row and keeps its
    status.
    """
    pairs_dir = Path(pairs_dir)
    if device not in DEVICES:
        raise LeakwattError(f"device {device!r} is not one of {', '.join(DEVICES)}")
    unknown = [fw for fw in frameworks or () if fw not in FRAMEWORKS]
    if unknown:
        raise LeakwattError(f"framework {unknown[0]!r} is not one of {', '.join(FRAMEWORKS)}")
    table = read_pairs(pairs_dir)
    rows = []
    with tempfile.TemporaryDirectory(prefix="leakwatt-eq-") as tmp:
        for pair in table.to_dict("records"):
            devices = pair_meta(pairs_dir, pair["pair_id"]).get("devices") or list(DEVICES)
            if device not in devices:
                continue
            for framework in _levels(pairs_dir, pair["pair_id"], frameworks):
                rows.append(_check_one(pair, Path(tmp), scale, timeout_s, rtol, framework,
                                       device))
    frame = pd.DataFrame(rows, columns=EQUIVALENCE_COLUMNS)
    atomic_write_csv(pairs_dir / "equivalence.csv", frame, columns=EQUIVALENCE_COLUMNS)
    _mark_pairs(pairs_dir, frame)
    return frame


def _check_one(pair: dict[str, Any], tmp: Path, scale: str, timeout_s: float, rtol: float,
               framework: str, device: str) -> dict[str, Any]:
    results: dict[str, dict[str, Any] | None] = {}
    errors, seconds = {}, {}
    for variant in ("smelly", "clean"):
        out = tmp / f"{pair['pair_id']}-{variant}-{framework}.json"
        results[variant], errors[variant], seconds[variant] = run_program(
            Path(pair[f"{variant}_path"]), scale, out, timeout_s, framework=framework,
            device=device)
    row: dict[str, Any] = {"pair_id": pair["pair_id"], "framework": framework, "device": device,
                           "smelly_s": round(seconds["smelly"], 2),
                           "clean_s": round(seconds["clean"], 2)}
    smelly, clean = results["smelly"], results["clean"]
    if smelly is None or clean is None:
        row.update(status="crashed", max_rel_diff=None, detail="; ".join(
            f"{v}: {errors[v]}" for v in ("smelly", "clean") if errors[v]))
        return row
    diff, detail = compare_results(smelly, clean)
    equal, work_smelly, work_clean, work_note = compare_work(smelly, clean)
    status = ("different" if not diff <= rtol else "equivalent" if equal else "unequal_work")
    row.update(status=status, max_rel_diff=diff, detail=f"{detail} (rtol {rtol:g}); {work_note}",
               work_smelly=work_smelly, work_clean=work_clean,
               equal_work="yes" if equal else "no")
    return row


def _mark_pairs(pairs_dir: Path, checked: pd.DataFrame) -> None:
    """Write each checked pair's overall status (and why it is excluded) into pairs.csv."""
    path = pairs_dir / "pairs.csv"
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in PAIRS.columns:
        if column not in table.columns:
            table[column] = ""
    for i, pair_id in table["pair_id"].items():
        mine = checked[checked["pair_id"] == pair_id]
        if mine.empty:
            continue
        bad = mine[mine["status"] != "equivalent"]
        table.at[i, "status"] = "excluded" if len(bad) else "equivalent"
        table.at[i, "status_reason"] = "; ".join(
            f"{r['framework']}/{r['device']}: {r['status']}: {r['detail']}"
            for r in bad.to_dict("records"))
    atomic_write_csv(path, table, columns=list(PAIRS.columns))


def excluded_pairs(pairs_dir: Path, device: str | None = None) -> dict[str, str]:
    """Pairs that ``equivalence.csv`` (when present) marks other than equivalent under any
    framework level (on ``device`` when given), with why."""
    path = Path(pairs_dir) / "equivalence.csv"
    if not path.is_file():
        return {}
    frame = pd.read_csv(path, dtype={"pair_id": str})
    if device is not None and "device" in frame.columns:
        frame = frame[frame["device"].fillna(device) == device]
    bad = frame[frame["status"] != "equivalent"]
    out: dict[str, str] = {}
    for r in bad.to_dict("records"):
        level = f"{r['framework']}: " if isinstance(r.get("framework"), str) else ""
        out.setdefault(str(r["pair_id"]), f"{level}{r['status']}: {r['detail']}")
    return out
