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
    assert only_clean == ['"""leakwatt reproduction program: pair `paper-imr`, variant `clean`.',
                          "Usage: python clean.py --scale tiny|small|paper --out RESULT.json "
                          "[--deterministic]",
                          'VARIANT = "clean"',
                          '"""FIX (IMR): as the smelly loop, but keras.backend.clear_session() '
                          'before every rebuild."""',
                          "keras.backend.clear_session()"]
    assert "all_logits.append(logits)" in (tmp_path / "paper-utr" / "smelly.py").read_text()
    assert "float(train_step(xb, yb))" in (tmp_path / "paper-utr" / "clean.py").read_text()


def test_unknown_pair_and_scale_are_one_line_errors(tmp_path):
    with pytest.raises(LeakwattError, match="unknown built-in pair 'paper-xyz'"):
        build_pairs(tmp_path, ["paper-xyz"], "tiny")
    with pytest.raises(LeakwattError, match="scale 'huge'"):
        build_pairs(tmp_path, PAPER, "huge")
    assert not (tmp_path / "pairs.csv").exists()


INSTANCES = pd.DataFrame([
    {"repo": "r1", "commit": "a" * 40, "path": "cv.py", "line": 10, "rule": "IMR",
     "variant": "rebuild_in_loop", "loop_kind": "folds", "model_api": "functional",
     "training_api": "fit"},
    {"repo": "r2", "commit": "b" * 40, "path": "cv.py", "line": 3, "rule": "IMR",
     "variant": "rebuild_in_loop", "loop_kind": "kfold", "model_api": "Model",
     "training_api": "fit"},
    {"repo": "r3", "commit": "c" * 40, "path": "t.py", "line": 7, "rule": "IMR",
     "variant": "rebuild_in_loop", "loop_kind": "epochs", "model_api": "subclass",
     "training_api": "train_on_batch"},
    {"repo": "r4", "commit": "d" * 40, "path": "u.py", "line": 9, "rule": "UTR",
     "variant": "append", "loop_kind": "steps", "model_api": None, "training_api": "tape"},
    {"repo": "r5", "commit": "e" * 40, "path": "s.py", "line": 1, "rule": "US",
     "variant": "no_close", "loop_kind": None, "model_api": None, "training_api": None},
])


def test_mined_instances_become_one_pair_per_family(tmp_path):
    table = build_pairs(tmp_path, ["paper-imr"], "tiny", instances=INSTANCES)
    mined = table[table["source"] == "mined"].set_index("pair_id")
    assert sorted(mined.index) == ["imr-epochs-train-on-batch", "imr-folds-fit",
                                   "utr-tape-append"]
    assert mined.loc["imr-folds-fit", "instances"] == 2
    meta = json.loads((tmp_path / "imr-folds-fit" / "meta.json").read_text())
    assert meta["model_api"] == "functional"
    assert {i["repo"] for i in meta["instances"]} == {"r1", "r2"}
    assert "keras.Model(inputs" in (tmp_path / "imr-folds-fit" / "smelly.py").read_text()
    sub = (tmp_path / "imr-epochs-train-on-batch" / "clean.py").read_text()
    assert "class CNN(keras.Model)" in sub and "train_on_batch" in sub
    unreproduced = pd.read_csv(tmp_path / "unreproduced.csv")
    assert unreproduced[["rule", "instances"]].values.tolist() == [["US", 1]]


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
