"""`leakwatt study` on a small real DVC project: profiles reach DVC, params.yaml is restored."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from leakwatt.common import LeakwattError
from leakwatt.pipeline.study import backup_path, restore_interrupted, run_study

# One stage that records which repetitions value DVC ran it with.
DVC_YAML = """\
stages:
  echo:
    cmd: python -c "import yaml; p = yaml.safe_load(open('params.yaml')); open('out.txt', 'w').write(str(p['measure']['repetitions']))"
    params:
      - measure.repetitions
    outs:
      - out.txt
"""


@pytest.fixture
def project(tmp_path: Path, repo_root: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copy(repo_root / "params.yaml", root / "params.yaml")
    shutil.copytree(repo_root / "profiles", root / "profiles")
    (root / "dvc.yaml").write_text(DVC_YAML, encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([str(Path(sys.executable).with_name("dvc")), "init", "-q"], cwd=root, check=True)
    return root


def test_demo_profile_runs_with_demo_values_and_restores_params(project: Path) -> None:
    before = (project / "params.yaml").read_bytes()
    assert run_study(project, "demo") == 0
    assert (project / "out.txt").read_text() == "3"
    assert (project / "params.yaml").read_bytes() == before
    assert not backup_path(project).exists()

    assert run_study(project, "full") == 0
    assert (project / "out.txt").read_text() == "30"
    assert (project / "params.yaml").read_bytes() == before


def test_failing_pipeline_still_restores_params(project: Path) -> None:
    before = (project / "params.yaml").read_bytes()
    (project / "dvc.yaml").write_text(DVC_YAML.replace("python -c", "python -c 'raise SystemExit(3)' #"))
    assert run_study(project, "demo") != 0
    assert (project / "params.yaml").read_bytes() == before


def test_interrupted_profile_run_is_repaired(project: Path) -> None:
    user = (project / "params.yaml").read_bytes()
    backup = backup_path(project)
    backup.parent.mkdir(parents=True, exist_ok=True)
    backup.write_bytes(user)
    (project / "params.yaml").write_text("# left behind by a killed demo run\n")
    assert restore_interrupted(project)
    assert (project / "params.yaml").read_bytes() == user
    assert not restore_interrupted(project)


def test_invalid_profile_params_write_nothing(project: Path) -> None:
    (project / "profiles" / "demo.yaml").write_text("measure:\n  repetitions: -1\n")
    before = (project / "params.yaml").read_bytes()
    with pytest.raises(LeakwattError, match="measure.repetitions"):
        run_study(project, "demo")
    assert (project / "params.yaml").read_bytes() == before


def test_not_a_dvc_project(tmp_path: Path) -> None:
    with pytest.raises(LeakwattError, match="not a leakwatt DVC project"):
        run_study(tmp_path, "demo")


def test_stages_are_told_the_profile_they_run_under(project: Path) -> None:
    (project / "dvc.yaml").write_text(
        "stages:\n  who:\n    cmd: python -c \"import os, pathlib; "
        "pathlib.Path('who.txt').write_text(os.environ['LEAKWATT_PROFILE'])\"\n"
        "    params:\n      - measure.repetitions\n    outs:\n      - who.txt\n", encoding="utf-8")
    assert run_study(project, "demo") == 0
    assert (project / "who.txt").read_text() == "demo"
    assert run_study(project, "full") == 0
    assert (project / "who.txt").read_text() == "full"


def test_report_commands_name_the_profile_that_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    from leakwatt.pipeline.workflow import default_commands

    monkeypatch.setenv("LEAKWATT_PROFILE", "demo")
    assert default_commands()[0].startswith("leakwatt study --profile demo")
    assert not any("full profile" in c for c in default_commands())
    monkeypatch.delenv("LEAKWATT_PROFILE")
    assert "full profile" in default_commands()[0]
