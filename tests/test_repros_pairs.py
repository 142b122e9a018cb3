"""Building reproduction pairs: files, pairs.csv, meta.json, mined families (no TensorFlow)."""

from __future__ import annotations

import ast
import json

import pandas as pd
import pytest

from leakwatt.common import LeakwattError
from leakwatt.pipeline.repros import BUILTIN_PAIRS, PAIRS_COLUMNS, build_pairs, read_pairs
from leakwatt.pipeline.repros.pairs import families_from_instances

PAPER = ["paper-imr", "paper-imr-once", "paper-utr"]


def test_build_paper_pairs_writes_programs_meta_and_pairs_csv(tmp_path):
    table = build_pairs(tmp_path, PAPER, "small")
    assert list(table.columns) == PAIRS_COLUMNS
    assert list(table["pair_id"]) == PAPER
    assert set(table["source"]) == {"paper"} and set(table["scale"]) == {"small"}
    on_disk = pd.read_csv(tmp_path / "pairs.csv")
    assert list(on_disk["pair_id"]) == PAPER
    for pair_id in PAPER:
        meta = json.loads((tmp_path / pair_id / "meta.json").read_text())
        assert meta["reimplementation"] is True and meta["instances"] == []
        assert "2606.19799" in meta["note"]
        assert meta["scales"]["paper"] == {"samples": 50000, "rounds": 50, "batch_size": 64}
        for variant in ("smelly", "clean"):
            source = (tmp_path / pair_id / f"{variant}.py").read_text()
            ast.parse(source)  # a complete, valid program
            assert f'VARIANT = "{variant}"' in source and "--deterministic" in source
            assert "leakwatt" not in source.split('"""', 2)[2].replace("leakwatt reproduction", "")


def _called(source: str) -> set[str]:
    return {node.func.attr for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}


def test_smelly_and_clean_differ_only_in_the_training_body(tmp_path):
    build_pairs(tmp_path, ["paper-imr", "paper-utr"], "tiny")
    smelly = (tmp_path / "paper-imr" / "smelly.py").read_text()
    clean = (tmp_path / "paper-imr" / "clean.py").read_text()
    assert "clear_session" in _called(clean) and "clear_session" not in _called(smelly)
    only_clean = [ln.strip() for ln in clean.splitlines() if ln not in smelly.splitlines()]
    # besides the variant's name (docstring, usage line, VARIANT) only the body's docstring and
    # the one call differ
    others = [ln for ln in only_clean[:-1] if "clean" not in ln]
    assert others == ['"""FIX (IMR): as the smelly loop, but keras.backend.clear_session() before '
                      'every rebuild; weights are carried over from round to round, so training '
                      'is unchanged."""'], only_clean
    assert only_clean[-1] == "keras.backend.clear_session()"
    assert "all_logits.append(logits)" in (tmp_path / "paper-utr" / "smelly.py").read_text()
    assert "step_losses.append(float(loss))" in (tmp_path / "paper-utr" / "clean.py").read_text()


def test_every_body_records_the_leak_each_round_and_counts_its_work(tmp_path):
    from leakwatt.pipeline.repros.bodies import BODIES

    for name, body in BODIES.items():
        train = ast.parse(body).body[-1]
        assert isinstance(train, ast.FunctionDef) and train.name == "train", name
        calls = {n.func.id for n in ast.walk(train)
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert "record_leak" in calls, name
        assert "WORK" in body, name


def test_meta_names_estimand_leak_evidence_frameworks_and_autofix(tmp_path):
    table = build_pairs(tmp_path, list(BUILTIN_PAIRS), "tiny").set_index("pair_id")
    estimands = table["estimand"].to_dict()
    assert estimands["paper-imr"] != estimands["paper-imr-once"] != estimands["paper-imr-del"]
    assert len(set(estimands.values())) == len(estimands)
    assert table.loc["paper-imr", "autofix"] == "yes"
    assert table.loc["paper-imr-once", "autofix"] == "no"
    assert set(table["status"]) == {"built"}
    assert table.loc["paper-imr-xla", "devices"] == "gpu"
    utr = json.loads((tmp_path / "paper-utr" / "meta.json").read_text())
    assert utr["frameworks"] == ["keras3", "keras2"]  # GradientTape: eager only
    assert utr["leak_evidence"].startswith("UTR: ") and "tensor_bytes" in utr["leak_evidence"]
    imr = json.loads((tmp_path / "paper-imr" / "meta.json").read_text())
    assert imr["frameworks"] == ["keras3", "keras2", "keras2-graph"]
    assert imr["estimand"] == "imr-release-clear-session" and imr["autofix"].startswith("yes")
    assert "graph" in imr["leak_evidence"] and imr["work_counters"][0] == "train_steps"


def test_unknown_pair_and_scale_are_one_line_errors(tmp_path):
    with pytest.raises(LeakwattError, match="unknown built-in pair 'paper-xyz'"):
        build_pairs(tmp_path, ["paper-xyz"], "tiny")
    with pytest.raises(LeakwattError, match="scale 'huge'"):
        build_pairs(tmp_path, PAPER, "huge")
    assert not (tmp_path / "pairs.csv").exists()


INSTANCES = pd.DataFrame([
    {"repo": "r1", "commit": "a" * 40, "path": "cv.py", "line": 10, "rule": "IMR",
     "variant": "kfold", "loop_kind": "for", "model_api": "functional", "training_api": "fit"},
    {"repo": "r2", "commit": "b" * 40, "path": "cv.py", "line": 3, "rule": "IMR",
     "variant": "search-objective", "loop_kind": "", "model_api": "Model",
     "training_api": "fit"},
    {"repo": "r3", "commit": "c" * 40, "path": "t.py", "line": 7, "rule": "IMR",
     "variant": "loop-fit", "loop_kind": "for", "model_api": "subclass",
     "training_api": "train_on_batch"},
    {"repo": "r4", "commit": "d" * 40, "path": "u.py", "line": 9, "rule": "UTR",
     "variant": "append-loss", "loop_kind": "for", "model_api": None,
     "training_api": "gradient_tape"},
    {"repo": "r5", "commit": "e" * 40, "path": "s.py", "line": 1, "rule": "US",
     "variant": "session-set-global", "loop_kind": None, "model_api": None,
     "training_api": None},
    {"repo": "r6", "commit": "f" * 40, "path": "s.py", "line": 4, "rule": "US",
     "variant": "session-no-close", "loop_kind": None, "model_api": None, "training_api": None},
])


def test_mined_instances_become_one_pair_per_family(tmp_path):
    table = build_pairs(tmp_path, ["paper-imr"], "tiny", instances=INSTANCES)
    mined = table[table["source"] == "mined"].set_index("pair_id")
    assert sorted(mined.index) == ["imr-epochs-train-on-batch", "imr-folds-fit",
                                   "us-session-with", "utr-append-loss"]
    assert mined.loc["imr-folds-fit", "instances"] == 2
    assert mined.loc["imr-folds-fit", "estimand"] == "imr-release-clear-session"
    meta = json.loads((tmp_path / "imr-folds-fit" / "meta.json").read_text())
    assert meta["model_api"] == "functional"
    assert {i["repo"] for i in meta["instances"]} == {"r1", "r2"}
    assert "keras.Model(inputs" in (tmp_path / "imr-folds-fit" / "smelly.py").read_text()
    sub = (tmp_path / "imr-epochs-train-on-batch" / "clean.py").read_text()
    assert "class CNN(keras.Model)" in sub and "train_on_batch" in sub
    us = (tmp_path / "us-session-with" / "clean.py").read_text()
    assert "with tf1.Session(graph=graph) as sess:" in us
    unreproduced = pd.read_csv(tmp_path / "unreproduced.csv")
    assert unreproduced[["rule", "variant", "instances"]].values.tolist() == [
        ["US", "session-set-global", 1]]


def test_families_need_a_rule_column():
    with pytest.raises(LeakwattError, match="missing column 'rule'"):
        families_from_instances(pd.DataFrame({"variant": ["x"]}))


def test_read_pairs_rejects_missing_programs(tmp_path):
    build_pairs(tmp_path, ["paper-imr"], "tiny")
    (tmp_path / "paper-imr" / "clean.py").unlink()
    with pytest.raises(LeakwattError, match="clean_path 'paper-imr/clean.py' does not exist"):
        read_pairs(tmp_path)
    with pytest.raises(LeakwattError, match="not found"):
        read_pairs(tmp_path / "nowhere")


def test_builtin_pairs_cover_the_paper():
    assert {p.smell for p in BUILTIN_PAIRS.values()} == {"IMR", "UTR"}
    assert {"paper-imr", "paper-imr-once", "paper-utr"} <= set(BUILTIN_PAIRS)
