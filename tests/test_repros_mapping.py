"""Rule output -> reproduction families, built from real rule output: every registered rule's own
INVALID examples are scanned with the real engine and each finding must land in a family or in
unreproduced.csv with a reason (so rule and mapping cannot drift apart)."""

from __future__ import annotations

import pandas as pd
import pytest

from leakwatt.mining.rules import RULES, Invalid
from leakwatt.mining.scan import scan_source
from leakwatt.pipeline.repros.bodies import BODIES
from leakwatt.pipeline.repros.pairs import (
    FAMILIES,
    IMR_VARIANTS,
    VARIANT_FAMILIES,
    families_from_instances,
    families_of,
)

EXAMPLES = [(code, i, ex) for code, rule in RULES.items() for i, ex in enumerate(rule.INVALID)]


def _instances(code: str, ex: Invalid) -> pd.DataFrame:
    findings = scan_source(ex.code, "example.py", rules=[code])
    assert findings, f"{code} INVALID example reports nothing"
    rows = [dict(f.to_dict(), repo="r", commit="c" * 40) for f in findings]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("code", "index", "example"), EXAMPLES,
                         ids=[f"{c}-{i}" for c, i, _ in EXAMPLES])
def test_every_finding_of_every_rule_example_is_reproduced_or_listed(code: str, index: int,
                                                                     example: Invalid) -> None:
    instances = _instances(code, example)
    specs, unreproduced = families_from_instances(instances)
    covered = sum(len(s.instances) for s in specs)
    listed = int(unreproduced["instances"].sum()) if len(unreproduced) else 0
    for finding in instances.to_dict("records"):
        families, reason = families_of(finding["rule"], finding["variant"],
                                       finding["loop_kind"], finding["training_api"])
        assert bool(families) != bool(reason)
        for family in families:
            assert family in {s.pair_id for s in specs}
            assert FAMILIES[family].smell == code
    # a finding may stand for several pairs (DIR predict: three estimands), never for none
    assert listed + len({id(r) for s in specs for r in s.instances}) >= len(instances)
    assert covered + listed >= len(instances)
    assert set(unreproduced["reason"]) <= {
        families_of(r["rule"], r["variant"], r["loop_kind"], r["training_api"])[1]
        for r in instances.to_dict("records")}


def test_the_kfold_example_maps_to_a_folds_family_not_epochs() -> None:
    kfold = next(ex for ex in RULES["IMR"].INVALID if ex.variant == "kfold")
    instances = _instances("IMR", kfold)
    assert instances[["variant", "loop_kind"]].values.tolist() == [["kfold", "for"]]
    specs, unreproduced = families_from_instances(instances)
    assert [s.pair_id for s in specs] == ["imr-folds-fit"] and unreproduced.empty


@pytest.mark.parametrize(("code", "variant", "expected"), [
    ("DIR", "predict-in-loop", {"dir-predict-on-batch", "dir-predict-batched",
                                "dir-predict-call"}),
    ("DIR", "dataset-in-loop", {"dir-dataset-loop"}),
    ("US", "session-no-close", {"us-session-with"}),
    ("UTR", "append-loss", {"utr-append-loss"}),
    ("UTR", "append-gradients", {"utr-append-gradients"}),
    ("UTR", "dict-store", {"utr-dict-store"}),
])
def test_rule_examples_map_to_their_family(code: str, variant: str, expected: set[str]) -> None:
    example = next(ex for ex in RULES[code].INVALID if ex.variant == variant)
    specs, _ = families_from_instances(_instances(code, example))
    assert {s.pair_id for s in specs} == expected


def test_every_declared_utr_and_imr_variant_has_a_family() -> None:
    for variant in RULES["UTR"].VARIANTS:
        assert families_of("UTR", variant)[0], variant
    assert set(RULES["IMR"].VARIANTS) == IMR_VARIANTS
    for rule, variant in VARIANT_FAMILIES:
        assert variant in RULES[rule].VARIANTS, (rule, variant)  # no stale mapping


def test_unmapped_variants_and_rules_are_unreproduced_with_the_reason() -> None:
    rows = pd.DataFrame([
        {"rule": "US", "variant": "session-set-global", "loop_kind": "", "training_api": ""},
        {"rule": "ZZZ", "variant": "whatever", "loop_kind": "for", "training_api": ""},
        {"rule": "ZZZ", "variant": "whatever", "loop_kind": "for", "training_api": ""},
    ])
    specs, unreproduced = families_from_instances(rows)
    assert specs == []
    assert unreproduced[["rule", "instances", "reason"]].values.tolist() == [
        ["US", 1, "no reproduction template for variant session-set-global of rule US yet"],
        ["ZZZ", 2, "no reproduction template for rule ZZZ yet"]]


def test_every_family_names_existing_bodies() -> None:
    for family in FAMILIES.values():
        assert family.smelly_body in BODIES and family.clean_body in BODIES
