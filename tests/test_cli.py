"""The `leakwatt` console script: every subcommand has help, and user errors are one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from leakwatt.pipeline.cli import main

SUBCOMMANDS = ["scan", "corpus", "mine", "reproduce", "measure", "analyze", "report", "study",
               "export-mined"]


def leakwatt(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("leakwatt")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_console_script_lists_every_subcommand() -> None:
    result = leakwatt("--help")
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    assert f"leakwatt {name}" in capsys.readouterr().out


def test_bad_params_file_is_one_line_error(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("analyze:\n  alpha: 2\n", encoding="utf-8")
    result = leakwatt("analyze", "--params", str(params), "--runs", "x.csv", "--out", str(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"leakwatt: error: {params}: analyze.alpha: must be between 0 and 1, got 2.0"]


def test_stage_entry_point_reports_params_errors(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("measure:\n  devices: [tpu]\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "leakwatt.pipeline.stages.measure", "--params", str(params), "--pairs",
         str(tmp_path), "--device", "cpu", "--out", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "measure.devices: 'tpu' is not one of cpu, gpu" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_mine_says_which_repositories_it_could_not_clone(tmp_path: Path, repo_root: Path) -> None:
    # An https URL on a closed loopback port: a real clone attempt that fails at once, offline.
    corpus = tmp_path / "corpus.csv"
    sha = "0123456789abcdef0123456789abcdef01234567"
    corpus.write_text("url,commit,name,domain,why,stars\n"
                      f"https://127.0.0.1:9/team/unreachable.git,{sha},team/unreachable,research,test,\n",
                      encoding="utf-8")
    result = leakwatt("mine", "--params", str(repo_root / "params.yaml"), "--corpus", str(corpus),
                      "--out", str(tmp_path / "mined"), "--cache-dir", str(tmp_path / "repos"),
                      "--no-history", cwd=tmp_path)
    assert (f"leakwatt: not mined: https://127.0.0.1:9/team/unreachable.git @ {sha[:12]}: clone_failed:"
            in result.stderr)
    assert "leakwatt: 0 of 1 repositories mined" in result.stderr
    repos = (tmp_path / "mined" / "repos.csv").read_text(encoding="utf-8")
    assert "clone_failed" in repos
    # nothing could be cloned and there are no mirrors: the stage stops, in one line (issue 10)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("leakwatt: error:")]
    assert len(errors) == 1 and "none of the 1 corpus repositories could be cloned" in errors[0]


def test_workflow_imports_do_not_load_tensorflow() -> None:
    """The workflow's imports are ordinary top-of-file imports, none of which loads TensorFlow."""
    code = ("import sys, leakwatt.pipeline.workflow, leakwatt.pipeline.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "[]"
    code = "import sys, leakwatt.pipeline.cli; print('pandas' in sys.modules)"
    lazy = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert lazy.stdout.strip() == "False"  # `leakwatt scan` / --help do not pay for the study


def test_report_with_mined_but_no_prevalence_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "analysis").mkdir()
    result = leakwatt("report", "--analysis", str(tmp_path / "analysis"), "--runs", "x.csv",
                      "--mined", str(tmp_path / "mined"), "--out", str(tmp_path / "reports"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"leakwatt: error: {tmp_path / 'analysis' / 'prevalence.csv'}: not found; run "
        f"`leakwatt analyze --mined {tmp_path / 'mined'}` first (the report reads the prevalence "
        "tables analyze writes)"]


@pytest.mark.slow
def test_measure_builtin_pair_builds_it_through_reproduce(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = leakwatt("measure", "--pair", "paper-imr", "--scale", "tiny", "--device", "cpu",
                      "--repetitions", "1", "--warmup", "0", "--cooldown", "0", "--no-progress",
                      "--frameworks", "keras3",  # one level: this test is about the pairs' origin
                      "--control-runs", "0",  # measured runs only (no instrumented control runs)
                      "--out", str(out), cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    assert "wrote 1 pairs to" in result.stderr  # the reproduce step's own log line
    import pandas as pd

    from leakwatt.contracts import PAIRS, RUNS

    pairs = PAIRS.validate(pd.read_csv(out / "pairs" / "pairs.csv"))
    assert pairs["pair_id"].tolist() == ["paper-imr"]
    assert not (out / "pairs" / "equivalence.csv").exists()  # no equivalence check on this path
    runs = RUNS.validate(pd.read_csv(out / "runs.csv"))
    assert sorted(runs["variant"]) == ["clean", "smelly"] and set(runs["status"]) == {"ok"}
