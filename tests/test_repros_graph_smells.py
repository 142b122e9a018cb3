"""The catalogue's graph-smell families (UGE, GCB; issue 14): the rules' findings map to them, and
with real tiny TensorFlow under each level a family runs at, both programs of a pair compute the
same losses and weights with the same work while the positive control grows in the smelly
program only."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from leakwatt.pipeline.repros import build_pairs
from leakwatt.pipeline.repros.equivalence import compare_results, compare_work, run_program
from leakwatt.pipeline.repros.graph_smells import FAMILY_SPECS, LEAK_EVIDENCE, VARIANT_FAMILIES
from leakwatt.pipeline.repros.pairs import FAMILIES, families_of
from leakwatt.pipeline.repros.templates import SCALES

RTOL = 1e-4
#: bytes of one fold's training images at tiny scale (3 folds of 256: 171 images of 32x32x3)
TINY_FOLD_IMAGE_BYTES = (SCALES["tiny"]["samples"] - SCALES["tiny"]["samples"] // 3) * 3072 * 4
UNITS = [(spec["family"], level) for spec in FAMILY_SPECS for level in spec["frameworks"]]


def _instances() -> pd.DataFrame:
    return pd.DataFrame([{"repo": "r", "commit": "0" * 40, "path": "t.py", "line": 1,
                          "rule": rule, "variant": variant, "loop_kind": "for"}
                         for rule, variant in VARIANT_FAMILIES])


def test_every_variant_maps_to_a_family_with_its_own_leak_evidence(tmp_path):
    for (rule, variant), families in VARIANT_FAMILIES.items():
        assert families_of(rule, variant) == (families, "")
    assert {f for fams in VARIANT_FAMILIES.values() for f in fams} == {
        "uge-graph-op-in-loop", "uge-retrace-python-arg", "uge-function-per-step",
        "gcb-graph-constant", "gcb-function-closure"}
    table = build_pairs(tmp_path, [], "tiny", instances=_instances()).set_index("pair_id")
    assert not (tmp_path / "unreproduced.csv").exists() or pd.read_csv(
        tmp_path / "unreproduced.csv").empty
    evidence = {}
    for spec in FAMILY_SPECS:
        meta = json.loads((tmp_path / spec["family"] / "meta.json").read_text())
        assert meta["frameworks"] == list(spec["frameworks"])
        assert table.loc[spec["family"], "autofix"] == (
            "yes" if spec["family"] == "uge-retrace-python-arg" else "no")
        evidence[spec["family"]] = meta["leak_evidence"]
        assert meta["leak_evidence"] in LEAK_EVIDENCE.values()
        if spec.get("architecture"):  # the TF1 bodies train their own softmax regression
            assert meta["n_params"] == 30730 and "softmax" in meta["architecture"]
    assert evidence["uge-graph-op-in-loop"].startswith("UGE (graph)")
    assert evidence["uge-retrace-python-arg"] != evidence["uge-function-per-step"]
    assert evidence["gcb-graph-constant"].startswith("GCB (graph)")
    assert len(set(evidence.values())) == len(evidence)
    graph = FAMILIES["uge-graph-op-in-loop"]
    assert graph.frameworks == ("keras2-graph",) == FAMILIES["gcb-graph-constant"].frameworks


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("graph-smells")
    build_pairs(out, [], "tiny", instances=_instances())
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("family", "framework"), UNITS, ids=[f"{f}-{w}" for f, w in UNITS])
def test_pair_is_equivalent_with_equal_work_and_the_leak_grows_in_smelly_only(
        pairs_dir, tmp_path, family, framework):
    results = {}
    for variant in ("smelly", "clean"):
        result, error, _ = run_program(pairs_dir / family / f"{variant}.py", "tiny",
                                       tmp_path / f"{variant}.json", 300, framework=framework)
        assert result is not None, error
        assert result["framework"] == framework
        results[variant] = result
    smelly, clean = results["smelly"], results["clean"]
    diff, detail = compare_results(smelly, clean)
    assert diff <= RTOL, detail
    equal, work_smelly, _, note = compare_work(smelly, clean)
    assert equal, note
    assert smelly["work"]["train_steps"] > 0 and smelly["work"]["optimizer_updates"] > 0

    grown, flat = smelly["leak_counts"], clean["leak_counts"]
    assert len(grown) == len(flat) == SCALES["tiny"]["rounds"]
    assert all(b > a for a, b in zip(grown, grown[1:], strict=False)), grown
    assert len(set(flat)) == 1, flat
    assert grown[0] > flat[0]
    if family.startswith("gcb-"):
        # nothing embedded by the clean program; each smelly fold embeds its training images
        assert flat[0] == 0
        assert all(b - a >= TINY_FOLD_IMAGE_BYTES for a, b in zip(grown, grown[1:],
                                                                  strict=False)), grown
    elif family != "uge-graph-op-in-loop":  # traces: at least one per training step
        steps_per_round = smelly["work"]["train_steps"] / len(grown)
        assert grown[-1] - grown[0] >= steps_per_round * (len(grown) - 1)
        assert flat[0] <= 2  # one trace (two where the first call creates variables)
    print(family, framework, "smelly", grown, "clean", flat, work_smelly)
