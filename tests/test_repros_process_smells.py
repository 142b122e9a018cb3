"""The catalogue's process smells as pairs (issue 14): UP (a scikit-learn search with n_jobs=-1
over a Keras classifier vs n_jobs=1) and US session-in-loop(-kept) (a TF1-compat session per fold
vs one session). Rendered from the real templates, run with real TensorFlow (and scikit-learn)
through the real equivalence check, with the positive control read from each program's result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from leakwatt.mining.rules import RULES
from leakwatt.pipeline.repros import build_pairs, equivalence
from leakwatt.pipeline.repros.bodies import BODIES, WORK_KEYS
from leakwatt.pipeline.repros.pairs import EAGER, FAMILIES, FRAMEWORKS, families_of
from leakwatt.pipeline.repros.process_smells import FAMILY_SPECS, UP_PARAMS

#: family -> (rule, variant) of one instance standing for it, and the levels it runs under
CASES = {
    "up-search-n-jobs": (("UP", "search-n-jobs"), EAGER),
    "us-session-in-loop": (("US", "session-in-loop"), FRAMEWORKS),
    "us-session-in-loop-kept": (("US", "session-in-loop-kept"), FRAMEWORKS),
}


def _build(tmp_path: Path, family: str) -> Path:
    (rule, variant), _ = CASES[family]
    rows = pd.DataFrame([{"rule": rule, "variant": variant, "loop_kind": "for",
                          "training_api": "", "repo": "r", "commit": "c" * 40, "path": "a.py",
                          "line": 3}])
    table = build_pairs(tmp_path, [], "tiny", instances=rows)
    assert table["pair_id"].tolist() == [family]
    return tmp_path


def test_families_bodies_and_variants_are_registered() -> None:
    assert {spec["family"] for spec in FAMILY_SPECS} == set(CASES)
    for family, ((rule, variant), levels) in CASES.items():
        assert families_of(rule, variant) == ((family,), "")
        assert variant in RULES[rule].VARIANTS
        spec = FAMILIES[family]
        assert spec.smelly_body in BODIES and spec.clean_body in BODIES
        assert spec.frameworks == levels
    assert families_of("UP", "cross-val-n-jobs") == (("up-search-n-jobs",), "")


def test_meta_names_the_workload_levels_and_what_is_counted(tmp_path: Path) -> None:
    up = json.loads((_build(tmp_path / "up", "up-search-n-jobs") / "up-search-n-jobs"
                     / "meta.json").read_text())
    assert up["frameworks"] == ["keras3", "keras2"]
    assert up["n_params"] == UP_PARAMS == 98666 and "GridSearchCV" in up["architecture"]
    assert up["leak_evidence"].startswith("UP: ") and up["autofix"].startswith("yes")
    kept = json.loads((_build(tmp_path / "us", "us-session-in-loop-kept")
                       / "us-session-in-loop-kept" / "meta.json").read_text())
    assert kept["frameworks"] == list(FRAMEWORKS) and kept["autofix"].startswith("no: ")
    assert "still open" in kept["leak_evidence"] and kept["n_params"] == 30730


def _checked(tmp_path: Path, family: str, monkeypatch: pytest.MonkeyPatch
             ) -> tuple[pd.DataFrame, dict[tuple[str, str], dict[str, Any]]]:
    """The real equivalence check over the family's pair; every program's result kept."""
    pairs_dir = _build(tmp_path, family)
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    real = equivalence.run_program

    def keep(program: Path, *args: Any, **kwargs: Any) -> Any:
        result, error, seconds = real(program, *args, **kwargs)
        assert result is not None, f"{program.name} under {kwargs.get('framework')}: {error}"
        seen[(program.stem, kwargs["framework"])] = result
        return result, error, seconds

    monkeypatch.setattr(equivalence, "run_program", keep)
    table = equivalence.check_pairs(pairs_dir, rtol=1e-4, timeout_s=300)
    return table, seen


def _assert_equivalent(table: pd.DataFrame, levels: tuple[str, ...]) -> None:
    assert table["framework"].tolist() == list(levels)
    for row in table.to_dict("records"):
        assert row["status"] == "equivalent", row["detail"]
        assert row["equal_work"] == "yes" and row["work_smelly"] == row["work_clean"]


@pytest.mark.slow
def test_up_search_is_equivalent_and_only_the_smelly_search_runs_in_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table, seen = _checked(tmp_path, "up-search-n-jobs", monkeypatch)
    _assert_equivalent(table, EAGER)
    for level in EAGER:
        smelly, clean = seen[("smelly", level)], seen[("clean", level)]
        # 3 learning rates x 2 folds of 128 training samples (4 steps of 32) + the refit on 256
        assert smelly["work"]["train_steps"] == 3 * 2 * 4 + 8
        assert smelly["work"]["examples_predicted"] == 256 * 3  # each config scores every fold
        assert smelly["leak_counts"] == [2.0, 4.0, 6.0], smelly["leak_counts"]
        assert clean["leak_counts"] == [0.0, 0.0, 0.0]
        assert smelly["work"]["worker_processes"] >= 2
        assert clean["work"]["worker_processes"] == 0
        assert smelly["work"]["workers_rss_mb"] > 100  # each worker imported TensorFlow
        assert clean["work"]["workers_rss_mb"] == 0
        assert smelly["keras_version"].split(".")[0] == ("3" if level == "keras3" else "2")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["us-session-in-loop", "us-session-in-loop-kept"])
def test_session_in_loop_pairs_are_equivalent_and_the_control_grows_in_smelly_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, family: str) -> None:
    table, seen = _checked(tmp_path, family, monkeypatch)
    _assert_equivalent(table, FRAMEWORKS)
    assert set(table["max_rel_diff"]) == {0.0}  # the same ops on the same data, bit for bit
    for level in FRAMEWORKS:
        smelly, clean = seen[("smelly", level)], seen[("clean", level)]
        assert smelly["leak_counts"] == [1.0, 2.0, 3.0], (level, smelly["leak_counts"])
        assert clean["leak_counts"] == [1.0, 1.0, 1.0], (level, clean["leak_counts"])
        assert smelly["work"]["sessions_created"] == 3 and clean["work"]["sessions_created"] == 1
        for key in WORK_KEYS:
            assert smelly["work"].get(key, 0) == clean["work"].get(key, 0)
