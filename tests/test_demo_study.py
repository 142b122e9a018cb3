"""End to end: `leakwatt study --profile demo` runs the real DVC pipeline offline on a fresh copy.

Real git, real DVC, real TensorFlow at tiny scale, real CodeCarbon: nothing is mocked. The copy
is made from the files git tracks (plus untracked, non-ignored ones), as a fresh clone has them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def fresh_copy(repo_root: Path, dest: Path) -> Path:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo_root,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = repo_root / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def run(args: list[str], cwd: Path, timeout: int) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DVC_NO_ANALYTICS="1",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_demo_study_end_to_end(repo_root: Path, tmp_path: Path) -> None:
    project = fresh_copy(repo_root, tmp_path / "leakwatt")
    params_before = (project / "params.yaml").read_bytes()

    started = time.monotonic()
    result = run(["leakwatt", "study", "--profile", "demo"], project, timeout=1500)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-4000:]
    print(f"demo study took {elapsed:.0f} s")

    # the user's params.yaml is untouched
    assert (project / "params.yaml").read_bytes() == params_before

    # mining found the demo's smells, with a history
    instances = pd.read_csv(project / "data/mined/instances.csv")
    events = pd.read_csv(project / "data/mined/events.csv")
    assert {"IMR", "UTR"} <= set(instances["rule"])
    assert {"introduced", "removed"} <= set(events["event"])

    # every pair measured 3 times per variant, smelly and clean, all ok, energy and mode recorded
    runs = pd.read_csv(project / "data/runs/cpu/runs.csv")
    pairs = pd.read_csv(project / "data/pairs/pairs.csv")
    equivalent = pd.read_csv(project / "data/pairs/equivalence.csv")
    measured = set(equivalent.loc[equivalent["status"] == "equivalent", "pair_id"])
    # the demo corpus's mined instances became pairs, and every pair passed the equivalence check
    assert set(pairs.loc[pairs["source"] == "mined", "smell"]) == {"IMR", "UTR"}
    assert measured == set(pairs["pair_id"]) and {"paper-imr", "paper-utr"} <= measured
    # issue 18: 3 measured runs per variant without instrumentation, plus the demo's one
    # control run per variant (instrumented: it counts the leak outside every measured window)
    priced = runs[runs["instrumented"] == 0]
    assert len(priced) == len(measured) * 2 * 3 and (priced["control_calls"] == 0).all()
    assert len(runs[runs["instrumented"] == 1]) == len(measured) * 2
    assert set(runs["status"]) == {"ok"}
    assert (runs["energy_kwh"] > 0).all()
    assert set(runs["cpu_power_source"]) <= {"rapl", "cpu_load", "constant"}

    # the report shows the paper's table beside this study's measured numbers
    report = (project / "reports/report.md").read_text(encoding="utf-8")
    assert "+31.78 %" in report and "+45.80 %" in report
    for pair in ("paper-imr", "paper-utr"):
        row = re.search(rf"\| {pair} \(cpu\) \| ([0-9.e+-]+) \| ([0-9.e+-]+) \|", report)
        assert row is not None, pair
        assert float(row.group(1)) > 0 and float(row.group(2)) > 0
    html = (project / "reports/report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html

    stats = pd.read_csv(project / "data/analysis/stats.csv")
    assert {"paired_t", "wilcoxon"} <= set(stats["test"])
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert metrics["paper"]

    shown = run(["dvc", "metrics", "show"], project, timeout=120)
    assert shown.returncode == 0 and "reports/metrics.json" in shown.stdout

    # every output file and every column it has is documented in docs/data.md
    documented = (repo_root / "docs" / "data.md").read_text(encoding="utf-8")
    for folder in ("data/mined", "data/pairs", "data/runs/cpu", "data/analysis", "reports/plots"):
        for csv_file in sorted((project / folder).glob("*.csv")):
            assert f"{csv_file.name}" in documented, csv_file
            for column in pd.read_csv(csv_file, nrows=0).columns:
                assert column in documented, f"{csv_file.name}: column {column} not in docs/data.md"

    # a second run redoes nothing: no new measurements
    again = run(["leakwatt", "study", "--profile", "demo"], project, timeout=600)
    assert again.returncode == 0, again.stderr[-4000:]
    assert len(pd.read_csv(project / "data/runs/cpu/runs.csv")) == len(runs)
    assert (project / "params.yaml").read_bytes() == params_before
