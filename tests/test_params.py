from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from leakwatt.common import LeakwattError
from leakwatt.params import load_params


def write_params(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_repository_params_load_for_both_profiles(repo_root: Path) -> None:
    full = load_params(repo_root / "params.yaml")
    demo = load_params(repo_root / "params.yaml", "demo")
    assert full.measure.repetitions == 30
    assert full.reproduce.scale == "paper"
    assert full.mine.corpus == "real"
    assert demo.measure.repetitions == 3
    assert demo.reproduce.scale == "tiny"
    assert demo.mine.corpus == "demo"
    # values the demo profile does not override come from params.yaml
    assert demo.analyze.alpha == full.analyze.alpha


def test_params_are_frozen(repo_root: Path) -> None:
    params = load_params(repo_root / "params.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.measure.repetitions = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"measure": {"repetitons": 3}}, "measure.repetitons: unknown key"),
        ({"measure": {"repetitions": "many"}}, "measure.repetitions: expected an integer"),
        ({"measure": {"repetitions": 0}}, "measure.repetitions: must be >= 1"),
        ({"measure": {"devices": ["tpu"]}}, "measure.devices: 'tpu' is not one of cpu, gpu"),
        ({"reproduce": {"scale": "huge"}}, "reproduce.scale: 'huge' is not one of"),
        ({"mine": {"history": "yes"}}, "mine.history: expected true or false"),
        ({"analyze": {"alpha": 1.5}}, "analyze.alpha: must be between 0 and 1"),
        ({"measure": {"country_iso_code": "US"}}, "measure.country_iso_code"),
        ({"mesure": {}}, "unknown section 'mesure'"),
        ({"measure": [1, 2]}, "measure: expected a mapping"),
    ],
)
def test_bad_params_name_file_and_field(tmp_path: Path, data: dict, message: str) -> None:
    path = write_params(tmp_path, data)
    with pytest.raises(LeakwattError) as err:
        load_params(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("measure:\n  repetitions: [1,\n", encoding="utf-8")
    with pytest.raises(LeakwattError, match="invalid YAML"):
        load_params(path)


def test_missing_params_file(tmp_path: Path) -> None:
    with pytest.raises(LeakwattError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")


def test_unknown_profile(repo_root: Path) -> None:
    with pytest.raises(LeakwattError, match="unknown profile 'fast'"):
        load_params(repo_root / "params.yaml", "fast")


def test_empty_builtin_pairs_make_a_mined_only_study(tmp_path: Path) -> None:
    """reproduce.pairs may be empty (pairs from mined instances only); with no instances either,
    reproduce stops in one line instead of writing an empty pairs table."""
    from leakwatt.pipeline.repros.pairs import build_pairs

    params = load_params(write_params(tmp_path, {"reproduce": {"pairs": [], "scale": "tiny"}}))
    assert params.reproduce.pairs == ()
    with pytest.raises(LeakwattError, match="no pairs to build"):
        build_pairs(tmp_path / "pairs", params.reproduce.pairs, "tiny")
    assert not (tmp_path / "pairs" / "pairs.csv").exists()
