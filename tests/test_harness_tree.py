"""The harness measures a program's whole process tree (issue 14, UP): CPU time of the program
and of every worker it starts (waited for or left running), the most processes at once, and
workers left running are killed when the program ends. Real processes that burn real CPU."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from leakwatt.params import MeasureParams
from leakwatt.pipeline.harness import measure_pairs
from leakwatt.pipeline.harness.runner import TreeWatch, _tree

#: a program that starts three workers burning ``BURN`` CPU seconds each, waits for two of them
#: and leaves the third running (it sleeps after burning), then writes the pid of the third.
WORKERS = """\
import json
import subprocess
import sys
import time

BURN = {burn}
BURNER = ("import time\\nend = time.process_time() + {burn}\\n"
          "while time.process_time() < end:\\n    pass\\n")
waited = [subprocess.Popen([sys.executable, "-c", BURNER]) for _ in range(2)]
left = subprocess.Popen([sys.executable, "-c", BURNER + "time.sleep(120)\\n"])
for worker in waited:
    worker.wait()
time.sleep(2 * BURN + 1.0)  # the third has finished burning and sleeps
out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else "{out}"
with open(out, "w") as fh:
    json.dump({{"final_loss": 0.5, "round_losses": [0.5], "left": left.pid}}, fh)
"""


def _gone(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_tree_watch_counts_waited_and_left_workers_and_kills_the_left_one(tmp_path: Path):
    out = tmp_path / "result.json"
    program = WORKERS.format(burn=0.5, out=out)
    watch = TreeWatch()
    popen = subprocess.Popen([sys.executable, "-c", program])
    root = psutil.Process(popen.pid)
    while popen.poll() is None:
        watch.sample(_tree(root))
        time.sleep(0.05)
    cpu_s, peak = watch.finish()
    left = json.loads(out.read_text())["left"]
    assert peak == 4  # the program and its three workers at once
    # three workers burned 0.5 s each; the program itself adds its interpreter's start-up
    assert 1.5 <= cpu_s < 1.5 + 2.0, cpu_s
    assert _gone(left), "the worker the program left running was not killed"


@pytest.mark.slow
def test_runs_csv_has_the_tree_cpu_time_and_process_count(tmp_path: Path):
    pair = tmp_path / "pairs" / "tree"
    pair.mkdir(parents=True)
    for variant in ("smelly", "clean"):
        (pair / f"{variant}.py").write_text(textwrap.dedent(WORKERS.format(
            burn=1.0 if variant == "smelly" else 0.2, out="")))
    pd.DataFrame([{"pair_id": "tree", "smell": "UP", "variant_family": "test",
                   "description": "test", "scale": "tiny", "instances": 0, "source": "mined",
                   "smelly_path": "tree/smelly.py", "clean_path": "tree/clean.py"}]).to_csv(
        tmp_path / "pairs" / "pairs.csv", index=False)
    params = MeasureParams(repetitions=1, warmup=0, cooldown_s=0.0, sample_interval_s=0.2,
                           timeout_s=120, memory_limit_mb=2048, idle_baseline=False,
                           frameworks=("keras3",))
    measure_pairs(tmp_path / "pairs", None, tmp_path / "out", "cpu", "tiny", params,
                  show_progress=False)
    runs = pd.read_csv(tmp_path / "out" / "runs.csv").set_index("variant")
    assert (runs["status"] == "ok").all(), runs["error"].tolist()
    assert runs["tree_peak_procs"].tolist() == [4, 4]
    # 3 x 1.0 s vs 3 x 0.2 s of worker CPU on top of the same measuring child
    assert runs.loc["smelly", "tree_cpu_s"] >= 3.0
    assert runs.loc["smelly", "tree_cpu_s"] - runs.loc["clean", "tree_cpu_s"] > 1.5
    for variant in ("smelly", "clean"):
        result = json.loads(next((tmp_path / "out" / "results").glob(
            f"tree__{variant}__*.json")).read_text())
        assert _gone(result["left"]), f"{variant}: the left worker outlived its run"
