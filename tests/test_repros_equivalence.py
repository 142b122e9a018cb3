"""Equivalence check with real TensorFlow at tiny scale: paper pairs pass, altered pairs fail."""

from __future__ import annotations

import pandas as pd
import pytest

from leakwatt.pipeline.repros import build_pairs
from leakwatt.pipeline.repros.equivalence import EQUIVALENCE_COLUMNS, check_pairs, excluded_pairs


@pytest.mark.slow
def test_paper_pairs_are_equivalent_and_altered_pairs_are_not(tmp_path):
    build_pairs(tmp_path, ["paper-imr", "paper-imr-once", "paper-utr"], "tiny")
    # a pair whose clean variant trains with another seed: different work, must be caught
    build_pairs(tmp_path / "other", ["paper-imr"], "tiny")
    clean = tmp_path / "other" / "paper-imr" / "clean.py"
    clean.write_text(clean.read_text().replace("SEED = 2606", "SEED = 7"))
    # a pair whose smelly variant crashes
    build_pairs(tmp_path / "crash", ["paper-imr"], "tiny")
    smelly = tmp_path / "crash" / "paper-imr" / "smelly.py"
    smelly.write_text(smelly.read_text().replace(
        "def main(argv=None):\n", "def main(argv=None):\n    raise RuntimeError('boom')\n"))
    pairs = pd.read_csv(tmp_path / "pairs.csv")
    extra = pd.DataFrame([
        {"pair_id": "altered-seed", "smell": "IMR", "smelly_path": "other/paper-imr/smelly.py",
         "clean_path": "other/paper-imr/clean.py"},
        {"pair_id": "crashing", "smell": "IMR", "smelly_path": "crash/paper-imr/smelly.py",
         "clean_path": "crash/paper-imr/clean.py"}])
    pd.concat([pairs, extra]).to_csv(tmp_path / "pairs.csv", index=False)

    result = check_pairs(tmp_path, rtol=1e-4, timeout_s=300).set_index("pair_id")

    assert list(pd.read_csv(tmp_path / "equivalence.csv").columns) == EQUIVALENCE_COLUMNS
    for pair_id in ("paper-imr", "paper-imr-once", "paper-utr"):
        assert result.loc[pair_id, "status"] == "equivalent", result.loc[pair_id, "detail"]
        assert result.loc[pair_id, "max_rel_diff"] <= 1e-4
    assert result.loc["altered-seed", "status"] == "different"
    assert result.loc["altered-seed", "max_rel_diff"] > 1e-4
    assert result.loc["crashing", "status"] == "crashed"
    assert "RuntimeError: boom" in result.loc["crashing", "detail"]
    assert set(excluded_pairs(tmp_path)) == {"altered-seed", "crashing"}
