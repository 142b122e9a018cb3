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
#: folders installed as data under `leakwatt` (no __init__.py): the demo corpus
DATA = {"leakwatt.demo_data": "data/demo"}


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
    assert config["package-dir"] == FOLDERS | DATA
    found = set()
    for name, folder in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    assert sorted(config["packages"]) == sorted(found | set(DATA))


@pytest.mark.slow
def test_install_puts_only_leakwatt_at_the_top(tmp_path: Path) -> None:
    target = tmp_path / "T"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT)], check=True, cwd=tmp_path)
    importable = {p.name for p in target.iterdir() if p.name != "bin"}  # bin/: console scripts
    assert {n for n in importable if not n.endswith(".dist-info")} == {"leakwatt"}
    assert (target / "leakwatt" / "mining" / "rules" / "imr.py").is_file()
    # the demo corpus ships as package data: `leakwatt mine --demo` from any folder
    demo = target / "leakwatt" / "demo_data"
    def files(top: Path) -> list[str]:  # pip byte-compiles the demo sources: not data
        return sorted(p.relative_to(top).as_posix() for p in top.rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts)

    shipped, in_repo = files(demo), files(ROOT / "data" / "demo")
    assert shipped == in_repo and "kfold-cnn/history.yaml" in shipped
    where = subprocess.run(
        [sys.executable, "-c", "from leakwatt.mining.demo import bundled_demo_dir as b; print(b())"],
        cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True).stdout.strip()
    assert where == str(demo.resolve())
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


LIGHT_SMELLY = ("import tensorflow as tf\n"
                "for i in range(3):\n"
                "    model = tf.keras.Sequential([tf.keras.layers.Dense(1)])\n"
                "    model.fit(x, y)\n")


@pytest.mark.slow
def test_the_light_install_is_the_linter_without_the_study(tmp_path: Path) -> None:
    """Issue 20: `pip install .` into a fresh venv (from PyPI: libcst, PyYAML) installs no
    TensorFlow, DVC or CodeCarbon; `leakwatt scan` finds a smell without importing TensorFlow or
    pandas; a study command stops in one line naming the extra."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(ROOT)], check=True, cwd=tmp_path,
                   timeout=900)
    listed = subprocess.run([str(py), "-m", "pip", "list", "--format=freeze"], check=True,
                            capture_output=True, text=True).stdout.lower()
    names = {line.split("==")[0] for line in listed.splitlines()}
    assert {"leakwatt", "libcst", "pyyaml"} <= names
    assert not names & {"tensorflow", "tf-keras", "dvc", "codecarbon", "pandas", "scikit-learn"}
    (tmp_path / "train.py").write_text(LIGHT_SMELLY)
    probe = ("import sys\nfrom leakwatt.pipeline.cli import main\n"
             "code = main(['scan', 'train.py', '--format', 'json'])\n"
             "assert 'tensorflow' not in sys.modules and 'pandas' not in sys.modules\n"
             "sys.exit(code)\n")
    scan = subprocess.run([str(py), "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert scan.returncode == 1, scan.stderr
    assert '"IMR"' in scan.stdout
    version = subprocess.run([str(venv / "bin" / "leakwatt"), "--version"], capture_output=True,
                             text=True, check=True).stdout
    assert version.strip() == "leakwatt 0.1.0"
    study = subprocess.run([str(venv / "bin" / "leakwatt"), "analyze", "--runs", "runs.csv",
                            "--out", "out"], cwd=tmp_path, capture_output=True, text=True)
    assert study.returncode == 2 and not study.stdout
    lines = study.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install "leakwatt[study]"' in lines[0], study.stderr
    assert not (tmp_path / "out").exists()


def test_rules_command_lists_and_explains(capsys: pytest.CaptureFixture[str]) -> None:
    from leakwatt.mining.rules import RULES
    from leakwatt.pipeline.cli import main

    assert main(["rules"]) == 0
    listing = capsys.readouterr().out
    assert [line.split()[0] for line in listing.splitlines()[:len(RULES)]] == list(RULES)
    assert "7 rules" in listing
    assert main(["rules", "imr"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("## IMR: Improper Model Reuse") and "Reported:" in text
    assert main(["rules", "XYZ"]) == 2
    assert "unknown rule 'XYZ'" in capsys.readouterr().err


def test_version_flag_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib import metadata

    from leakwatt.pipeline.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"leakwatt {metadata.version('leakwatt')}"
