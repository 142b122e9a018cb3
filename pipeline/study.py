"""`leakwatt study`: run the DVC pipeline under a profile without losing the user's params.yaml.

The `full` profile is params.yaml as the user keeps it, so `leakwatt study` is `dvc repro`.
Another profile (``profiles/<name>.yaml``) is applied by writing the merged values into
params.yaml for the length of the run -- DVC tracks params by file, and `dvc repro` has no
per-run override -- and restoring the user's bytes afterwards, even on error or Ctrl-C. A copy is
kept in ``.dvc/tmp/`` first, so a run killed hard is repaired by the next `leakwatt study`.
DVC's run cache makes switching back and forth cheap: a profile's stages already run with the
same params and deps are restored, not re-run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from leakwatt.common import LeakwattError, atomic_write_text
from leakwatt.params import deep_merge, load_params, profile_overrides, read_yaml

BACKUP_NAME = "leakwatt-params.user.yaml"


def _log(message: str) -> None:
    print(f"leakwatt: {message}", file=sys.stderr, flush=True)


def backup_path(root: Path) -> Path:
    return root / ".dvc" / "tmp" / BACKUP_NAME


def restore_interrupted(root: Path) -> bool:
    """Put back a params.yaml left behind by a study that was killed; True when one was."""
    backup = backup_path(root)
    if not backup.exists():
        return False
    os.replace(backup, root / "params.yaml")
    _log(f"restored params.yaml from {backup} (an earlier profile run was interrupted)")
    return True


def dvc_env() -> dict[str, str]:
    """The environment for `dvc repro`: no analytics, and this interpreter first on PATH so that
    the stages' `python -m leakwatt.pipeline.stages.X` run with the same installed leakwatt."""
    env = dict(os.environ)
    env["DVC_NO_ANALYTICS"] = "1"
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def dvc_executable() -> str:
    beside = Path(sys.executable).with_name("dvc")
    if beside.exists():
        return str(beside)
    found = shutil.which("dvc")
    if found is None:
        raise LeakwattError("dvc not found: install leakwatt with `pip install .` first")
    return found


def profile_params_text(root: Path, profile: str) -> str:
    """The params.yaml text a profile run uses: the user's values with the profile's overlaid."""
    merged = deep_merge(read_yaml(root / "params.yaml"), profile_overrides(profile, root))
    load_params(root / "params.yaml", profile)  # validate before anything is written
    header = (f"# Written by `leakwatt study --profile {profile}` for the length of its run;\n"
              f"# your own params.yaml is restored afterwards (copy in .dvc/tmp/{BACKUP_NAME}).\n")
    return header + yaml.safe_dump(merged, sort_keys=False)


def run_study(root: Path, profile: str = "full", dvc_args: Sequence[str] = ()) -> int:
    """Run `dvc repro` under ``profile`` in the DVC project at ``root``; return its exit code."""
    root = root.resolve()
    if not (root / "dvc.yaml").exists() or not (root / ".dvc").is_dir():
        raise LeakwattError(f"{root}: not a leakwatt DVC project (no dvc.yaml or .dvc/)")
    restore_interrupted(root)
    params = load_params(root / "params.yaml", profile)
    command = [dvc_executable(), "repro", *dvc_args]
    if profile == "full":
        _log(f"running the full study: {' '.join(command)}")
        return subprocess.call(command, cwd=root, env=dvc_env())

    user_file = root / "params.yaml"
    backup = backup_path(root)
    backup.parent.mkdir(parents=True, exist_ok=True)
    text = profile_params_text(root, profile)
    shutil.copy2(user_file, backup)
    try:
        atomic_write_text(user_file, text)
        _log(f"profile {profile}: running {' '.join(command)} with profiles/{profile}.yaml "
             f"over params.yaml ({len(params.measure.devices)} device(s), "
             f"{params.measure.repetitions} repetitions, scale {params.reproduce.scale})")
        return subprocess.call(command, cwd=root, env=dvc_env())
    finally:
        os.replace(backup, user_file)
        _log("params.yaml restored to your version")


def find_root(start: Path) -> Path:
    for candidate in [start, *start.parents]:
        if (candidate / "dvc.yaml").exists() and (candidate / ".dvc").is_dir():
            return candidate
    raise LeakwattError(f"{start}: not inside a leakwatt DVC project (no dvc.yaml found above it)")


__all__ = ["find_root", "profile_params_text", "restore_interrupted", "run_study"]
