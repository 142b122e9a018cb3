"""The installed distribution is one import namespace, `leakwatt`, over a ground floor.

The repository keeps mining/, pipeline/ and analysis/ at its top level; pyproject.toml maps them
(and core/, the floor) under `leakwatt`. These tests build the real wheel contents with pip and
read the real import graph, so a new subpackage left out of the list, or an upward import, fails.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
FOLDERS = {"leakwatt": "core", "leakwatt.mining": "mining", "leakwatt.pipeline": "pipeline",
           "leakwatt.analysis": "analysis"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == FOLDERS
    found = set()
    for name, folder in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    assert sorted(config["packages"]) == sorted(found)


@pytest.mark.slow
def test_install_puts_only_leakwatt_at_the_top(tmp_path: Path) -> None:
    target = tmp_path / "T"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT)], check=True, cwd=tmp_path)
    importable = {p.name for p in target.iterdir() if p.name != "bin"}  # bin/: console scripts
    assert {n for n in importable if not n.endswith(".dist-info")} == {"leakwatt"}
    assert (target / "leakwatt" / "mining" / "rules" / "imr.py").is_file()
    out = subprocess.run([sys.executable, "-c", "import leakwatt.pipeline.cli as c; print(c.__file__)"],
                         cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith(str(target))


def test_cli_module_runs_from_any_folder(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "leakwatt.pipeline.cli", "--help"], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    assert "scan" in out and "measure" in out


def test_packages_stand_on_the_floor_and_not_on_pipeline() -> None:
    upward = []
    for folder in ("mining", "analysis"):
        for path in (ROOT / folder).rglob("*.py"):
            bad = {m for m in _imports(path) if m == "leakwatt.pipeline" or m.startswith("leakwatt.pipeline.")
                   or m.split(".")[0] in ("pipeline", "mining", "analysis")}
            if bad:
                upward.append(f"{path.relative_to(ROOT)}: {sorted(bad)}")
    for path in (ROOT / "core").rglob("*.py"):
        bad = {m for m in _imports(path) if m.startswith(("leakwatt.mining", "leakwatt.pipeline",
                                                            "leakwatt.analysis"))}
        if bad:
            upward.append(f"{path.relative_to(ROOT)}: {sorted(bad)}")
    assert upward == []
