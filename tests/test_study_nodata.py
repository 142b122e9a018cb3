"""Issue 10 item 6: `dvc repro` with an unreachable corpus and no mirrors stops at `mine`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

# the real mine stage of dvc.yaml, alone (its deps are copied into the project below)
UNREACHABLE = "https://leakwatt-no-such-host.invalid/owner/repo"   # .invalid never resolves


@pytest.mark.slow
def test_dvc_repro_stops_at_mine_when_nothing_can_be_cloned(tmp_path: Path,
                                                            repo_root: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    mine = dict(stages["mine"])
    mine["deps"] = ["data/corpus.csv", "data/demo"]
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"mine": mine}}), encoding="utf-8")
    params = yaml.safe_load((repo_root / "params.yaml").read_text(encoding="utf-8"))
    params["mine"].update(corpus="real", mirror_dir="", clone_timeout_s=20)
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    (root / "data").mkdir()
    shutil.copytree(repo_root / "data" / "demo", root / "data" / "demo")
    (root / "data" / "corpus.csv").write_text(
        f"url,commit,name\n{UNREACHABLE},{'a' * 40},owner/repo\n"
        f"{UNREACHABLE}2,{'b' * 40},owner/repo2\n", encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc = str(Path(sys.executable).with_name("dvc"))
    subprocess.run([dvc, "init", "-q"], cwd=root, check=True)
    res = subprocess.run([dvc, "repro"], cwd=root, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "DVC_NO_ANALYTICS": "1"})
    assert res.returncode != 0
    errors = [line for line in res.stderr.splitlines() if line.startswith("leakwatt: error:")]
    assert len(errors) == 1, res.stderr
    line = errors[0]
    assert "none of the 2 corpus repositories could be cloned" in line
    assert "mine.mirror_dir is not set" in line
    assert "leakwatt study --profile demo" in line
    assert not (root / "dvc.lock").exists()
