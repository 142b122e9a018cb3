"""The harness end to end: real CodeCarbon, real subprocesses, real TensorFlow for paper-imr."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from leakwatt.common import LeakwattError
from leakwatt.contracts import RUNS
from leakwatt.params import MeasureParams
from leakwatt.pipeline.harness import IDLE_COLUMNS, RUNS_COLUMNS, measure_pairs
from leakwatt.pipeline.repros import build_pairs

CONTRACT = list(RUNS.contract)
FAST = MeasureParams(repetitions=1, warmup=0, cooldown_s=0.0, sample_interval_s=0.2,
                     timeout_s=60, memory_limit_mb=2048, idle_baseline=False,
                     frameworks=("keras3",))

PROGRAM = """\
import argparse
import json
import time

parser = argparse.ArgumentParser()
parser.add_argument("--scale")
parser.add_argument("--out")
parser.add_argument("--deterministic", action="store_true")
args = parser.parse_args()
{body}
with open(args.out, "w") as fh:
    json.dump({{"final_loss": 0.5, "round_losses": [0.5]}}, fh)
"""


def fake_pair(root: Path, pair_id: str, smelly_body: str, clean_body: str) -> Path:
    """A pair of small non-TensorFlow programs honouring the program contract."""
    for variant, body in (("smelly", smelly_body), ("clean", clean_body)):
        path = root / pair_id / f"{variant}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(PROGRAM.format(body=textwrap.dedent(body)))
    row = {"pair_id": pair_id, "smell": "IMR", "variant_family": "test", "description": "test",
           "scale": "tiny", "instances": 0, "source": "mined",
           "smelly_path": f"{pair_id}/smelly.py", "clean_path": f"{pair_id}/clean.py"}
    csv = root / "pairs.csv"
    old = pd.read_csv(csv) if csv.exists() else pd.DataFrame()
    pd.concat([old, pd.DataFrame([row])]).to_csv(csv, index=False)
    return root


def test_harness_only_reads_pairs(tmp_path):
    """Pairs are built by `reproduce` alone: naming a built-in pair builds nothing here."""
    with pytest.raises(LeakwattError, match=r"pairs\.csv: not found \(run `leakwatt reproduce`"):
        measure_pairs(tmp_path / "pairs", ["paper-imr"], tmp_path / "out", "cpu", "tiny", FAST,
                      show_progress=False)
    assert not (tmp_path / "pairs").exists()


@pytest.mark.slow
def test_paper_imr_two_reps_then_resume_then_three_reps(tmp_path):
    out = tmp_path / "out"
    params = MeasureParams(repetitions=2, warmup=0, cooldown_s=0.0, sample_interval_s=0.2,
                           timeout_s=240, memory_limit_mb=6144, idle_baseline=True,
                           frameworks=("keras3",))
    build_pairs(tmp_path / "pairs", ["paper-imr"], "tiny")
    runs = measure_pairs(tmp_path / "pairs", ["paper-imr"], out, "cpu", "tiny", params,
                         show_progress=False)
    frame = pd.read_csv(out / "runs.csv")
    assert list(frame.columns) == RUNS_COLUMNS and list(frame.columns[:14]) == CONTRACT
    assert len(frame) == len(runs) == 4
    assert sorted(zip(frame["variant"], frame["rep"], strict=True)) == [
        ("clean", 1), ("clean", 2), ("smelly", 1), ("smelly", 2)]
    assert set(frame["status"]) == {"ok"} and set(frame["device"]) == {"cpu"}
    RUNS.validate(frame, "runs.csv")
    assert (frame["energy_kwh"] > 0).all() and (frame["duration_s"] > 0).all()
    assert frame["cpu_power_source"].isin(["rapl", "cpu_load", "constant"]).all()
    assert set(frame["ram_power_source"]) == {"estimated"}
    assert frame["emissions_kg"].tolist() == pytest.approx((frame["energy_kwh"] * 0.4526).tolist())
    assert (frame["peak_rss_mb"] > 100).all()  # TensorFlow was loaded in the measured process
    assert frame["final_loss"].nunique() == 1  # both variants did the same training
    # the measured window starts at ready(): after the imports, inside the whole process
    assert set(frame["framework"]) == {"keras3"} and set(frame["window_start"]) == {"ready"}
    assert frame["keras_version"].str.startswith("3.").all()
    assert set(frame["data_source"]) == {"synthetic"} and frame["tf_version"].notna().all()
    assert (frame["startup_s"] > 1).all()  # importing TensorFlow alone takes longer
    assert (frame["process_duration_s"] > frame["duration_s"] + frame["startup_s"] - 1).all()
    assert (frame["process_energy_kwh"] > frame["energy_kwh"]).all()
    assert frame[["load_start", "load_end"]].notna().all().all()
    for series in frame["series_path"]:
        samples = pd.read_csv(out / series)
        assert len(samples) >= 3 and (samples["rss_mb"] > 0).all()  # no sample after exit
    idle = pd.read_csv(out / "idle.csv")
    assert list(idle.columns) == IDLE_COLUMNS and len(idle) == 2
    assert (idle["status"] == "ok").all() and (idle["energy_kwh"] > 0).all()
    env = pd.read_json(out / "environment.json", typ="series")
    assert env["versions"]["tensorflow"] and env["measurement"]["device"] == "cpu"
    assert env["measurement"]["cpu_power_sources"] == sorted(set(frame["cpu_power_source"]))

    again = measure_pairs(tmp_path / "pairs", ["paper-imr"], out, "cpu", "tiny", params,
                          show_progress=False)
    assert len(again) == 4 and len(pd.read_csv(out / "runs.csv")) == 4
    assert len(pd.read_csv(out / "idle.csv")) == 2

    three = MeasureParams(**{**params.__dict__, "repetitions": 3})
    measure_pairs(tmp_path / "pairs", ["paper-imr"], out, "cpu", "tiny", three,
                  show_progress=False)
    after = pd.read_csv(out / "runs.csv")
    assert len(after) == 6 and not after.duplicated(["pair_id", "variant", "rep"]).any()
    # the idle run of block 1 ran with block 1, before block 2 began (not after all runs)
    idle_1 = idle.set_index("rep").loc[1, "started_at"]
    assert frame.loc[frame["rep"] == 1, "started_at"].min() <= idle_1
    assert idle_1 <= frame.loc[frame["rep"] == 2, "started_at"].min()
    assert after.iloc[:4].equals(frame)  # earlier rows untouched
    assert sorted(after.iloc[4:]["rep"]) == [3, 3]
    assert len(pd.read_csv(out / "idle.csv")) == 3


@pytest.mark.slow
def test_crashing_variant_is_a_row_and_is_not_rerun(tmp_path):
    pairs = fake_pair(tmp_path / "pairs", "crashy", "raise ValueError('smelly broke')",
                      "time.sleep(0.2)")
    params = MeasureParams(**{**FAST.__dict__, "warmup": 1})
    measure_pairs(pairs, None, tmp_path / "out", "cpu", "tiny", params, show_progress=False)
    runs = pd.read_csv(tmp_path / "out" / "runs.csv").set_index("variant")
    assert runs.loc["smelly", "status"] == "crashed"
    assert runs.loc["smelly", "error"] == "ValueError: smelly broke"
    assert runs.loc["smelly", "energy_kwh"] > 0  # the tracker still stopped and reported
    assert runs.loc["clean", "status"] == "ok" and runs.loc["clean", "final_loss"] == 0.5
    warm = pd.read_csv(tmp_path / "out" / "warmup.csv")
    assert len(warm) == 2 and (warm["rep"] < 0).all()
    measure_pairs(pairs, None, tmp_path / "out", "cpu", "tiny", params, show_progress=False)
    assert len(pd.read_csv(tmp_path / "out" / "runs.csv")) == 2
    assert len(pd.read_csv(tmp_path / "out" / "warmup.csv")) == 2  # nothing missing: no warm-up


@pytest.mark.slow
def test_timeout_and_memory_limit_kill_the_run(tmp_path):
    pairs = fake_pair(tmp_path / "pairs", "limits", "time.sleep(120)",
                      "blob = b'x' * (700 * 2**20)\ntime.sleep(120)")
    params = MeasureParams(**{**FAST.__dict__, "timeout_s": 10, "memory_limit_mb": 400})
    start = time.monotonic()
    measure_pairs(pairs, None, tmp_path / "out", "cpu", "tiny", params, show_progress=False)
    assert time.monotonic() - start < 60
    runs = pd.read_csv(tmp_path / "out" / "runs.csv").set_index("variant")
    assert runs.loc["smelly", "status"] == "timeout"
    assert runs.loc["clean", "status"] == "oom" and runs.loc["clean", "peak_rss_mb"] > 400
    assert "400 MB" in runs.loc["clean", "error"]


KILLABLE = """\
import sys
from pathlib import Path
from leakwatt.pipeline.harness import measure_pairs
from leakwatt.params import MeasureParams
params = MeasureParams(repetitions=3, warmup=0, cooldown_s=0.0, sample_interval_s=0.2,
                       timeout_s=60, memory_limit_mb=2048, idle_baseline=False,
                       frameworks=("keras3",))
measure_pairs(Path(sys.argv[1]), None, Path(sys.argv[2]), "cpu", "tiny", params,
              show_progress=False)
"""


@pytest.mark.slow
def test_killed_measurement_resumes_without_loss_or_duplicates(tmp_path):
    pairs = fake_pair(tmp_path / "pairs", "sleepy", "time.sleep(1.0)", "time.sleep(1.0)")
    out = tmp_path / "out"
    harness = subprocess.Popen([sys.executable, "-c", KILLABLE, str(pairs), str(out)],
                               cwd=Path(__file__).resolve().parents[1])
    runs_csv = out / "runs.csv"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if runs_csv.exists() and len(runs_csv.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    else:
        harness.kill()
        pytest.fail("the harness wrote no rows in 90 s")
    children = psutil.Process(harness.pid).children(recursive=True)
    os.kill(harness.pid, signal.SIGKILL)
    harness.wait()
    gone, alive = psutil.wait_procs(children, timeout=5)

    def running(proc: psutil.Process) -> bool:
        # an exited child whose parent was killed stays a zombie until init reaps it: not running
        try:
            return proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    assert not [p for p in alive if running(p)], "a measured child outlived the killed harness"
    before = pd.read_csv(runs_csv)
    assert 2 <= len(before) < 6

    measure_pairs(pairs, None, out, "cpu", "tiny",
                  MeasureParams(**{**FAST.__dict__, "repetitions": 3}), show_progress=False)
    after = pd.read_csv(runs_csv)
    assert len(after) == 6
    assert not after.duplicated(["pair_id", "variant", "rep", "device"]).any()
    assert after.iloc[:len(before)].equals(before)
    assert set(after["status"]) == {"ok"}
