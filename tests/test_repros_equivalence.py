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

    result = check_pairs(tmp_path, rtol=1e-4, timeout_s=300, frameworks=["keras3"])
    result = result.set_index("pair_id")

    assert list(pd.read_csv(tmp_path / "equivalence.csv").columns) == EQUIVALENCE_COLUMNS
    for pair_id in ("paper-imr", "paper-imr-once", "paper-utr"):
        assert result.loc[pair_id, "status"] == "equivalent", result.loc[pair_id, "detail"]
        assert result.loc[pair_id, "max_rel_diff"] <= 1e-4
        assert result.loc[pair_id, "equal_work"] == "yes", result.loc[pair_id, "detail"]
    assert result.loc["altered-seed", "status"] == "different"
    assert result.loc["altered-seed", "max_rel_diff"] > 1e-4
    assert result.loc["crashing", "status"] == "crashed"
    assert "RuntimeError: boom" in result.loc["crashing", "detail"]
    assert set(excluded_pairs(tmp_path)) == {"altered-seed", "crashing"}


FAKE = '''\
import argparse, json
parser = argparse.ArgumentParser()
parser.add_argument("--scale"); parser.add_argument("--out"); parser.add_argument("--framework")
parser.add_argument("--deterministic", action="store_true")
parser.add_argument("--instrumented", action="store_true")
args = parser.parse_args()
work = {"train_steps": 24, "optimizer_updates": STEPS, "examples_seen": 768}
json.dump({"round_losses": [2.3, 2.2], "final_loss": 2.2, "weights_abs_sums": [1.0, 2.0],
           "work": work, "framework": args.framework}, open(args.out, "w"))
'''


def _fake_pair(root, pair_id, clean_steps, frameworks):
    import json

    pair = root / pair_id
    pair.mkdir(parents=True)
    (pair / "smelly.py").write_text(FAKE.replace("STEPS", "24"))
    (pair / "clean.py").write_text(FAKE.replace("STEPS", str(clean_steps)))
    (pair / "meta.json").write_text(json.dumps({"frameworks": frameworks, "devices": ["cpu"]}))
    return {"pair_id": pair_id, "smell": "IMR", "smelly_path": f"{pair_id}/smelly.py",
            "clean_path": f"{pair_id}/clean.py", "status": "built"}


def test_equal_work_is_checked_per_framework_and_unequal_pairs_are_excluded(tmp_path):
    """Programs standing in for a pair (same results; the clean one applies fewer optimizer
    updates) run through the real check: excluded with the reason, in pairs.csv too."""
    rows = [_fake_pair(tmp_path, "same", 24, ["keras3", "keras2-graph"]),
            _fake_pair(tmp_path, "less", 20, ["keras3"])]
    pd.DataFrame(rows).to_csv(tmp_path / "pairs.csv", index=False)

    result = check_pairs(tmp_path, rtol=1e-4, timeout_s=60,
                         frameworks=["keras3", "keras2", "keras2-graph"])

    assert result[["pair_id", "framework", "status", "equal_work"]].values.tolist() == [
        ["same", "keras3", "equivalent", "yes"], ["same", "keras2-graph", "equivalent", "yes"],
        ["less", "keras3", "unequal_work", "no"]]
    less = result[result["pair_id"] == "less"].iloc[0]
    assert "optimizer_updates 24 vs 20" in less["detail"]
    assert less["work_clean"] == "train_steps=24;optimizer_updates=20;examples_seen=768;" \
                                 "examples_predicted=0"
    pairs = pd.read_csv(tmp_path / "pairs.csv").set_index("pair_id")
    assert pairs.loc["same", "status"] == "equivalent"
    assert pairs.loc["less", "status"] == "excluded"
    assert "keras3/cpu: unequal_work" in pairs.loc["less", "status_reason"]
    assert set(excluded_pairs(tmp_path)) == {"less"}
    assert excluded_pairs(tmp_path, device="gpu") == {}
