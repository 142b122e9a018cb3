"""`leakwatt study`: run the DVC pipeline under a profile without losing the user's params.yaml.

The `full` profile is params.yaml as the user keeps it, so `leakwatt study` is `dvc repro`.
Another profile (``profiles/<name>.yaml``) is applied by writing the merged values into
params.yaml for the length of the run -- DVC tracks params by file, and `dvc repro` has no
per-run override -- and restoring the user's bytes afterwards, even on error or Ctrl-C. A copy is
kept in ``.dvc/tmp/`` first, so a run killed hard is repaired by the next `leakwatt study`.
SIGINT or SIGTERM to `leakwatt study` stops the `dvc repro` it started (and the stage processes
under it: dvc runs in its own process group, which gets the signal), then params.yaml is
restored and leakwatt exits with 128 + the signal number.
DVC's run cache makes switching back and forth cheap: a profile's stages already run with the
same params and deps are restored, not re-run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
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


#: Names the profile of a `leakwatt study` run for its stages (the report's Reproduce section).
PROFILE_ENV = "LEAKWATT_PROFILE"


def dvc_env(profile: str = "full") -> dict[str, str]:
    """The environment for `dvc repro`: no analytics, the profile named in ``LEAKWATT_PROFILE``,
    and this interpreter first on PATH so that the stages' `python -m leakwatt.pipeline.stages.X`
    run with the same installed leakwatt."""
    env = dict(os.environ)
    env["DVC_NO_ANALYTICS"] = "1"
    env[PROFILE_ENV] = profile
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


#: Seconds the pipeline gets to stop after SIGTERM before it is killed.
STOP_GRACE_S = 20.0


def run_pipeline(command: Sequence[str], root: Path, profile: str = "full") -> int:
    """Run ``command`` (``dvc repro``) in its own process group and return its exit code.

    On SIGINT or SIGTERM the whole group (dvc and the stage it is running) gets SIGTERM, then
    SIGKILL after :data:`STOP_GRACE_S`; the return value is then ``128 + signal``. Without
    this, a stopped `leakwatt study` left `dvc repro` measuring on its own.
    """
    proc = subprocess.Popen(list(command), cwd=root, env=dvc_env(profile), start_new_session=True)
    received: list[int] = []

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def stop(signum: int, frame: object) -> None:
        first = not received
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        if first:  # the wait below has no timeout: a timer kills what outlives the grace
            timer = threading.Timer(STOP_GRACE_S, kill)
            timer.daemon = True
            timer.start()

    main = threading.current_thread() is threading.main_thread()
    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)} \
        if main else {}
    try:
        code = proc.wait()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if received:
        kill()  # stage processes left in the group
        _log(f"stopped by {signal.Signals(received[0]).name}: the pipeline was stopped")
        return 128 + received[0]
    return code


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
        return run_pipeline(command, root, profile)

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
        return run_pipeline(command, root, profile)
    finally:
        os.replace(backup, user_file)
        _log("params.yaml restored to your version")


def find_root(start: Path) -> Path:
    for candidate in [start, *start.parents]:
        if (candidate / "dvc.yaml").exists() and (candidate / ".dvc").is_dir():
            return candidate
    raise LeakwattError(f"{start}: not inside a leakwatt DVC project (no dvc.yaml found above it)")


__all__ = ["find_root", "profile_params_text", "restore_interrupted", "run_study"]
