"""Positions computed per definition, the compact pre-filter text and the parse without
per-node validation must give exactly what the slow, whole-module reference gives."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from leakwatt.mining.prefilter import compact_source
from leakwatt.mining.rules import RULES, check_module
from leakwatt.mining.rules.fastcst import parse_module
from leakwatt.mining.scan import scan_source

FIXTURES = Path(__file__).parent / "fixtures" / "scan" / "prefilter"
SOURCES = {p.name: p.read_bytes().decode("utf-8") for p in sorted(FIXTURES.glob("*.py"))}
for _code, _cls in RULES.items():
    for _n, _ex in enumerate(_cls.INVALID):
        SOURCES[f"{_code}-invalid-{_n}"] = _ex.code


def _where(findings: list) -> list[tuple[str, int, int, str]]:
    return [(f.rule, f.line, f.col, f.snippet) for f in findings]


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_positions_per_definition_match_whole_module(name: str) -> None:
    source = SOURCES[name]
    module = cst.parse_module(source)
    fast, _ = check_module(module, name, None, source)  # positions per definition
    slow, _ = check_module(cst.parse_module(source), name, None, None)  # PositionProvider
    assert _where(fast) == _where(slow)


def test_findings_in_nested_methods_keep_their_lines_after_dropped_statements() -> None:
    source = SOURCES["deep_methods.py"]
    reduced = compact_source(source, list(RULES))
    assert reduced is not None
    text, numbers = reduced
    assert numbers is not None and len(numbers) == text.count("\n") + 1
    assert len(numbers) < source.count("\n")  # the dropped functions' lines are gone
    found = scan_source(source, "deep_methods.py")
    assert [(f.rule, f.line, f.col) for f in found] == [("IMR", 31, 19), ("UTR", 43, 17)]
    assert _where(found) == _where(scan_source(source, "deep_methods.py", prefilter=False))
    lines = source.split("\n")
    assert lines[30][18:].startswith("keras.Sequential(")
    assert lines[42][16:].startswith("losses.append(loss)")


def test_parse_without_validation_builds_the_same_tree_and_restores_validation() -> None:
    source = SOURCES["deep_methods.py"]
    assert parse_module(source).deep_equals(cst.parse_module(source))
    with pytest.raises(cst.ParserSyntaxError):
        parse_module("def broken(:\n")
    with pytest.raises(cst.CSTValidationError):  # nodes built after a parse are checked again
        cst.Name("")
