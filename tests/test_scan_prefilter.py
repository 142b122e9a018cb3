"""The pre-filter (leakwatt.mining.prefilter.reduce_source) must never change what the rules report.

Every check compares ``scan_source(prefilter=True)`` with the whole-file reference
``scan_source(prefilter=False)`` on fixtures written for the cross-statement cases the rules
depend on (builders and callers in different functions, clearing helpers, module-level code read
as one function, sessions closed elsewhere, graph-mode modules, nested imports and aliases), and
on every VALID/INVALID example of every rule.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from leakwatt.mining import scan
from leakwatt.mining.prefilter import reduce_source
from leakwatt.mining.rules import RULES
from leakwatt.mining.scan import scan_bytes, scan_paths, scan_source

FIXTURES = Path(__file__).parent / "fixtures" / "scan" / "prefilter"
FILES = sorted(FIXTURES.glob("*.py"))
#: fixture -> (rule, line) pairs the whole-file scan reports; the pre-filter must keep them all.
EXPECTED = {
    "builder_in_loop.py": {("IMR", 23)},
    "crlf_endings.py": {("UTR", 12)},
    "nested_aliases.py": {("IMR", 15), ("IMR", 23)},
    "search_wrapper.py": {("IMR", 7)},
    "sessions_and_graph.py": {("US", 8), ("US", 28)},
    "subclass_and_objective.py": {("IMR", 23), ("IMR", 30)},
    "tabs_and_decorators.py": {("IMR", 11)},
    "deep_methods.py": {("IMR", 31), ("UTR", 43)},
}


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")  # keep "\r\n" as written


def _key(findings: list) -> list[tuple]:
    return [tuple(sorted(f.to_dict().items())) for f in findings]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_prefilter_keeps_every_finding(path: Path) -> None:
    source = _read(path)
    full = scan_source(source, path.name, prefilter=False)
    fast = scan_source(source, path.name)
    assert _key(fast) == _key(full)
    if path.name in EXPECTED:
        assert EXPECTED[path.name] <= {(f.rule, f.line) for f in full}
        assert reduce_source(source) != ""


@pytest.mark.parametrize("path", [FIXTURES / n for n in sorted(EXPECTED)], ids=lambda p: p.name)
def test_prefilter_drops_statements_yet_keeps_lines(path: Path) -> None:
    source = _read(path)
    reduced = reduce_source(source)
    assert reduced is not None and reduced != ""
    original, kept = source.split("\n"), reduced.split("\n")
    assert len(kept) == len(original)
    dropped = [i for i, line in enumerate(kept) if not line.strip() and original[i].strip()]
    assert dropped, "the fixture should let the pre-filter drop something"
    for i, line in enumerate(kept):
        if line.strip() and line != original[i]:
            assert "import" in line  # a nested import re-emitted on its own line


@pytest.mark.parametrize("code", sorted(RULES))
def test_prefilter_agrees_on_rule_examples(code: str) -> None:
    cls = RULES[code]
    examples = [v.code for v in cls.VALID] + [i.code for i in cls.INVALID]
    assert examples
    for source in examples:
        for rules in (None, [code]):
            full = scan_source(source, "example.py", rules, prefilter=False)
            assert _key(scan_source(source, "example.py", rules)) == _key(full), source


def test_file_without_seed_is_not_parsed_by_libcst() -> None:
    assert reduce_source(_read(FIXTURES / "no_seed.py")) == ""
    assert reduce_source("import os\nprint(os.getcwd())\n") == ""


def test_unparsable_and_star_import_sources_go_to_libcst_whole() -> None:
    assert reduce_source("import tensorflow as tf\nprint 'py2'\n") is None
    assert reduce_source("from keras.models import *\nm = Sequential()\n") is None
    assert scan_source("import tensorflow as tf\nprint 'py2'\n") == []  # read as Python 2
    with pytest.raises(scan.ScanError, match="Python 2 source"):
        scan_source("import tensorflow as tf\nprint 'py2'\ndef f((a, b)): pass\n")


def test_selected_rules_change_the_seeds() -> None:
    source = "import tensorflow as tf\n\ndef f(m, xs):\n    for x in xs:\n        m.predict(x)\n"
    assert reduce_source(source, ["US"]) == ""
    assert reduce_source(source, ["DIR"]) != ""


def test_cache_is_a_bounded_lru(monkeypatch: pytest.MonkeyPatch) -> None:
    scan.clear_cache()
    monkeypatch.setattr(scan._CACHE, "size", 2)
    blobs = [f"import tensorflow as tf\nx{i} = 1\n".encode() for i in range(3)]
    scan_bytes(blobs[0], "a.py")
    scan_bytes(blobs[1], "b.py")
    scan_bytes(blobs[0], "a.py")  # a is now the most recently used
    scan_bytes(blobs[2], "c.py")  # evicts b
    assert len(scan._CACHE) == 2
    keys = [scan.cache_key(b, list(RULES), scan.DEFAULT_MAX_BYTES) for b in blobs]
    assert keys[1] not in scan._CACHE and keys[0] in scan._CACHE and keys[2] in scan._CACHE
    scan.clear_cache()


def test_parallel_scan_matches_serial(tmp_path: Path) -> None:
    for i in range(3):  # enough files for the process pool
        for f in FILES:
            shutil.copy(f, tmp_path / f"{i}_{f.name}")
    scan.clear_cache()
    serial = scan_paths([tmp_path], jobs=1)
    scan.clear_cache()
    parallel = scan_paths([tmp_path], jobs=2)
    assert serial.files_scanned == parallel.files_scanned == 3 * len(FILES)
    assert _key(serial.findings) == _key(parallel.findings)
    assert len(serial.findings) >= 3 * sum(len(v) for v in EXPECTED.values())
