"""Every registered rule's VALID and INVALID examples, run as tests (no rule ships untested)."""

from __future__ import annotations

import libcst as cst
import pytest

from leakwatt.mining.rules import REGISTRY, RULES, check_module
from leakwatt.mining.rules.fixes import apply_fixes
from leakwatt.mining.scan import scan_source

VALID_CASES = [
    pytest.param(code, ex.code, id=f"{code}-valid-{i}")
    for code, cls in RULES.items() for i, ex in enumerate(cls.VALID)
]
INVALID_CASES = [
    pytest.param(code, ex, id=f"{code}-invalid-{i}")
    for code, cls in RULES.items() for i, ex in enumerate(cls.INVALID)
]


def _check(code: str, source: str):
    return check_module(cst.parse_module(source), "example.py", [code])


def test_every_rule_has_examples_and_docs() -> None:
    assert list(RULES) == [cls.CODE for cls in REGISTRY]  # one id per rule, registry order
    for code, cls in RULES.items():
        assert code == cls.CODE
        assert cls.__doc__ and cls.MESSAGE and cls.NAME
        assert len(cls.VALID) >= 3 and len(cls.INVALID) >= 3
        for ex in cls.INVALID:
            assert ex.variant is None or ex.variant in cls.VARIANTS
        assert not cls.SEEDS.empty, f"{code}: declare SEEDS so the pre-filter can skip files"


@pytest.mark.parametrize(("code", "example"), INVALID_CASES)
def test_seed_words_let_every_invalid_example_through_the_prefilter(code: str, example) -> None:
    """A rule's SEEDS must cover its own examples: the pre-filtered scan finds what the
    whole-module check finds."""
    whole = scan_source(example.code, "example.py", [code], prefilter=False)
    assert scan_source(example.code, "example.py", [code]) == whole and whole


@pytest.mark.parametrize(("code", "source"), VALID_CASES)
def test_valid_example_is_clean(code: str, source: str) -> None:
    findings, _ = _check(code, source)
    assert findings == [], [f.to_dict() for f in findings]


@pytest.mark.parametrize(("code", "example"), INVALID_CASES)
def test_invalid_example_is_reported(code: str, example) -> None:
    findings, fixes = _check(code, example.code)
    assert findings, f"{code} found nothing in:\n{example.code}"
    assert all(f.rule == code for f in findings)
    if example.line is not None:
        assert example.line in {f.line for f in findings}, [f.to_dict() for f in findings]
    if example.variant is not None:
        at_line = [f for f in findings if example.line is None or f.line == example.line]
        assert example.variant in {f.variant for f in at_line}, [f.to_dict() for f in findings]
    for f in findings:
        assert 0.0 < f.confidence <= 1.0
        assert f.col >= 1 and f.snippet and f.message
    if example.expected_replacement is not None:
        module = cst.parse_module(example.code)
        _, pairs = check_module(module, "example.py", [code])
        fixed, applied = apply_fixes(module, [fx for _, fx in pairs])
        assert applied >= 1
        assert fixed == example.expected_replacement
        again, _ = _check(code, fixed)
        assert again == [], [f.to_dict() for f in again]
