"""Resumed measurements never mix rows from changed programs or another scale."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from leakwatt.pipeline.harness.supersede import FINGERPRINTS, retire_superseded_runs


def make_pairs(root: Path, programs: dict[str, str]) -> Path:
    rows = []
    for pair_id, body in programs.items():
        (root / pair_id).mkdir(parents=True, exist_ok=True)
        (root / pair_id / "smelly.py").write_text(f"# smelly\n{body}\n")
        (root / pair_id / "clean.py").write_text(f"# clean\n{body}\n")
        rows.append({"pair_id": pair_id, "smelly_path": f"{pair_id}/smelly.py",
                     "clean_path": f"{pair_id}/clean.py"})
    pd.DataFrame(rows).to_csv(root / "pairs.csv", index=False)
    return root


def write_runs(out: Path, pairs: list[str], scale: str) -> None:
    rows = [{"pair_id": p, "variant": v, "rep": r, "device": "cpu", "status": "ok", "scale": scale}
            for p in pairs for v in ("smelly", "clean") for r in (1, 2)]
    pd.DataFrame(rows).to_csv(out / "runs.csv", index=False)


def test_first_measurement_records_fingerprints(tmp_path: Path) -> None:
    pairs = make_pairs(tmp_path / "pairs", {"a": "x = 1", "b": "y = 2"})
    out = tmp_path / "runs"
    assert retire_superseded_runs(pairs, out, "tiny") == {}
    assert set(json.loads((out / FINGERPRINTS).read_text())) == {"a", "b"}


def test_unchanged_pairs_keep_their_rows(tmp_path: Path) -> None:
    pairs = make_pairs(tmp_path / "pairs", {"a": "x = 1", "b": "y = 2"})
    out = tmp_path / "runs"
    retire_superseded_runs(pairs, out, "tiny")
    write_runs(out, ["a", "b"], "tiny")
    before = (out / "runs.csv").read_bytes()
    assert retire_superseded_runs(pairs, out, "tiny") == {}
    assert (out / "runs.csv").read_bytes() == before


def test_changed_program_retires_only_its_pair(tmp_path: Path) -> None:
    pairs = make_pairs(tmp_path / "pairs", {"a": "x = 1", "b": "y = 2"})
    out = tmp_path / "runs"
    retire_superseded_runs(pairs, out, "tiny")
    write_runs(out, ["a", "b"], "tiny")
    (out / "idle.csv").write_text("device,rep\ncpu,1\n")
    (pairs / "b" / "smelly.py").write_text("# smelly, edited\n")
    assert retire_superseded_runs(pairs, out, "tiny") == {"runs.csv": 4, "idle.csv": 1}
    kept = pd.read_csv(out / "runs.csv")
    assert set(kept["pair_id"]) == {"a"} and len(kept) == 4
    archived = list((out / "superseded").glob("*/runs.csv"))
    assert len(archived) == 1
    assert set(pd.read_csv(archived[0])["pair_id"]) == {"b"}
    assert not (out / "idle.csv").exists()


def test_other_scale_is_retired(tmp_path: Path) -> None:
    pairs = make_pairs(tmp_path / "pairs", {"a": "x = 1"})
    out = tmp_path / "runs"
    retire_superseded_runs(pairs, out, "tiny")
    write_runs(out, ["a"], "tiny")
    assert retire_superseded_runs(pairs, out, "paper") == {"runs.csv": 4}
    assert len(pd.read_csv(out / "runs.csv")) == 0


def test_rows_without_fingerprints_are_retired_not_dropped(tmp_path: Path) -> None:
    pairs = make_pairs(tmp_path / "pairs", {"a": "x = 1"})
    out = tmp_path / "runs"
    out.mkdir()
    write_runs(out, ["a"], "tiny")
    assert retire_superseded_runs(pairs, out, "tiny") == {"runs.csv": 4}
    archived = pd.read_csv(next((out / "superseded").glob("*/runs.csv")))
    assert len(archived) == 4
