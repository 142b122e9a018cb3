"""The README's promises: its test command is what CI runs, its stage table matches dvc.yaml."""

from __future__ import annotations

import re
from pathlib import Path

import yaml


def readme_commands(root: Path) -> list[str]:
    text = (root / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```bash\n(.+?)\n```", text, flags=re.S)


def test_ci_runs_the_readme_test_command(repo_root: Path) -> None:
    commands = readme_commands(repo_root)
    test_command = next(c for c in commands if "pytest" in c)
    ci = (repo_root / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command.strip() in ci.splitlines()


def test_readme_main_command_runs_dvc_repro(repo_root: Path) -> None:
    first = readme_commands(repo_root)[0]
    assert "pip install" in first and first.rstrip().endswith("dvc repro")


def test_stage_table_matches_dvc_yaml(repo_root: Path) -> None:
    text = (repo_root / "README.md").read_text(encoding="utf-8")
    with open(repo_root / "dvc.yaml", encoding="utf-8") as fh:
        stages = yaml.safe_load(fh)["stages"]
    for name, stage in stages.items():
        desc = (stage.get("desc") or stage["do"]["desc"]).strip()
        shown = name if "foreach" not in stage else f"{name}@<device>"
        assert f"| `{shown}` | {desc} |" in text, name
