"""Adding a rule is one module and one registry line: a throwaway rule, registered for one test,
is scanned, pre-filtered, selectable, documented, versioned and left to unreproduced.csv."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator

import libcst as cst
import pandas as pd
import pytest

from leakwatt.common import LeakwattError
from leakwatt.mining import lint, scan
from leakwatt.mining.prefilter import reduce_source
from leakwatt.mining.rules import (
    RULES,
    Invalid,
    ModuleContext,
    Report,
    Rule,
    Seeds,
    Valid,
    check_module,
    detector_version,
    parse_rule_list,
    select_rules,
)
from leakwatt.mining.rules.catalogue import catalogue_markdown
from leakwatt.params import MineParams
from leakwatt.pipeline.repros.pairs import families_from_instances


class FrobnicateInLoop(Rule):
    """``frobnicate()`` called inside a loop (a made-up smell for this test)."""

    CODE = "ZZF"
    NAME = "Frobnicate In Loop"
    MESSAGE = "frobnicate() in a loop; call it once before the loop"
    SEEDS = Seeds(triggers=("frobnicate",), calls=frozenset({"frobnicate"}))
    VARIANTS = {"call-in-loop": "frobnicate() inside a for/while loop"}
    VALID = [Valid("frobnicate()\nfor i in range(3):\n    print(i)\n")]
    INVALID = [Invalid("for i in range(3):\n    frobnicate()\n", line=2,
                       variant="call-in-loop")]

    def check(self, ctx: ModuleContext) -> Iterable[Report]:
        for site in ctx.calls:
            if site.simple_name == "frobnicate" and site.loops:
                yield Report(node=site.node, variant="call-in-loop", confidence=0.9,
                             function=site.func.qualname, stmt=site.stmt)


class Seedless(FrobnicateInLoop):
    """The same rule with no seed words declared."""

    CODE = "ZZS"
    NAME = "Seedless"
    SEEDS = Seeds(triggers=("frobnicate",))


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Rule]]:
    monkeypatch.setitem(RULES, FrobnicateInLoop.CODE, FrobnicateInLoop)
    scan.clear_cache()
    yield FrobnicateInLoop
    scan.clear_cache()


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Texts the engine hands to libcst."""
    seen: list[str] = []
    real = scan.parse_module

    def spy(text: str) -> cst.Module:
        seen.append(text)
        return real(text)

    monkeypatch.setattr(scan, "parse_module", spy)
    return seen


SMELLY = "import os\n\n\ndef other():\n    return os.sep\n\n\nfor i in range(3):\n    frobnicate()\n"


def test_registered_rule_is_scanned_and_selectable(registered: type[Rule]) -> None:
    found = scan.scan_source(SMELLY, "x.py")  # all rules: the new one included
    assert [(f.rule, f.line, f.variant, f.message) for f in found] == [
        ("ZZF", 9, "call-in-loop", registered.MESSAGE)]
    assert parse_rule_list("zzf") == ["ZZF"] and "ZZF" in parse_rule_list(["all"])
    assert select_rules(None) == list(RULES) and select_rules(None, ["ZZF"])[-1] != "ZZF"
    params = MineParams(rules=("all",))
    params.check("mine")
    assert select_rules(params.rules)[-1] == "ZZF"
    result = scan.scan_bytes(SMELLY.encode(), "x.py", rules=["ZZF"])
    assert [f.line for f in result.findings] == [9]


def test_registered_rule_is_prefiltered(registered: type[Rule], parses: list[str]) -> None:
    # Only its seed word: parsed (the unrelated function is dropped) and flagged.
    assert scan.scan_source(SMELLY, "x.py", ["ZZF"])
    assert len(parses) == 1 and "frobnicate()" in parses[0] and "def other" not in parses[0]
    assert reduce_source(SMELLY, ["ZZF"]) not in ("", None)
    # Without its trigger or seed word: skipped before libcst runs.
    parses.clear()
    assert scan.scan_source(SMELLY.replace("frobnicate", "print"), "x.py", ["ZZF"]) == []
    assert scan.scan_source("x = 'frobnicate'\n", "x.py", ["ZZF"]) == []  # trigger, no seed
    assert parses == []
    assert reduce_source("x = 'frobnicate'\n", ["ZZF"]) == ""


def test_a_rule_without_seed_words_sees_whole_files(monkeypatch: pytest.MonkeyPatch,
                                                    parses: list[str]) -> None:
    monkeypatch.setitem(RULES, Seedless.CODE, Seedless)
    assert reduce_source(SMELLY, ["ZZS"]) is None  # not reduced: nothing is lost
    assert [f.line for f in scan.scan_source(SMELLY, "x.py", ["ZZS"])] == [9]
    assert parses == [SMELLY]


def test_registered_rule_examples_hold(registered: type[Rule]) -> None:
    for ex in registered.VALID:
        assert check_module(cst.parse_module(ex.code), "e.py", ["ZZF"])[0] == []
    for bad in registered.INVALID:
        findings, _ = check_module(cst.parse_module(bad.code), "e.py", ["ZZF"])
        assert [(f.line, f.variant) for f in findings] == [(bad.line, bad.variant)]


def test_registered_rule_is_documented_versioned_and_in_the_help(registered: type[Rule],
                                                                 monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    text = catalogue_markdown()
    assert "## ZZF: Frobnicate In Loop" in text and registered.MESSAGE in text
    assert "| ZZF | Frobnicate In Loop | `call-in-loop` | no |" in text
    assert "## Adding a rule" in text
    with_rule = detector_version()
    monkeypatch.delitem(RULES, "ZZF")
    assert detector_version() != with_rule  # the caches key on it: no manual bump
    monkeypatch.setitem(RULES, "ZZF", registered)
    parser = argparse.ArgumentParser()
    lint.add_arguments(parser)
    assert "ZZF" in parser.format_help()


def test_instances_of_a_rule_without_a_template_are_unreproduced(registered: type[Rule]
                                                                 ) -> None:
    rows = pd.DataFrame([{"rule": "ZZF", "variant": "call-in-loop", "loop_kind": "for",
                          "training_api": "", "model_api": ""}])
    specs, unreproduced = families_from_instances(rows)
    assert specs == []
    assert unreproduced.to_dict("records")[0]["reason"] == \
        "no reproduction template for rule ZZF yet"


def test_unknown_rule_ids_are_one_line_errors() -> None:
    with pytest.raises(LeakwattError, match="unknown rule id.*NOPE.*known: IMR"):
        parse_rule_list(["IMR", "nope"])
    with pytest.raises(LeakwattError, match="mine.rules"):
        MineParams(rules=()).check("mine")
    with pytest.raises(LeakwattError, match="not a rule id"):
        MineParams(rules=("IMR,UTR",)).check("mine")
    with pytest.raises(LeakwattError, match="unknown rule id"):
        scan.scan_bytes(b"import keras\n", "x.py", rules=["NOPE"])
