"""Parse what can be parsed: files and notebook cells whose few bad statements are left out.

Each test writes its own script: a TF1 training script with an unclosed session (US, line 6)
and a model built in a loop (IMR, line 9), spoiled by one of the lines real repositories hold
(output pasted after the code, prose, a wrong bracket in a ``feed_dict``, a name starting with
a digit).
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
from fixtures.mining.gitrepo import GitRepo

from leakwatt.mining import scan
from leakwatt.mining.corpus import CorpusEntry
from leakwatt.mining.mine import mine_corpus
from leakwatt.mining.recover import (
    MAX_REGIONS,
    PLACEHOLDER,
    Recovered,
    line_budget,
    line_count,
    recover,
)
from leakwatt.mining.scan import ScanError, scan_bytes, scan_file, scan_source_noted
from leakwatt.params import MineParams
from leakwatt.pipeline.cli import main

SCRIPT = [
    "import tensorflow as tf",
    "import keras",
    "",
    "x = tf.placeholder(tf.float32, [None, 3])",
    "total = tf.reduce_sum(x)",
    "sess = tf.Session()",                                     # 6: US
    "sess.run(total, feed_dict={x: batch})",
    "for fold in range(3):",
    "    model = keras.Sequential([keras.layers.Dense(1)])",   # 9: IMR
    "    model.fit(xs, ys)",
    'print("done")',
]
IMR_COL = SCRIPT[8].index("keras.Sequential") + 1


def script(bad: str, at: int = 12) -> str:
    """:data:`SCRIPT` with line ``at`` replaced by ``bad`` (12: appended after the code)."""
    lines = list(SCRIPT)
    if at == len(lines) + 1:
        lines.append(bad)
    else:
        lines[at - 1] = bad
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("bad", "at"), [
    ("0.8 accuracy", 12),                                      # pasted output
    ("[0.75 0.8]", 12),                                        # a pasted numpy array
    ("Epoch 3/10 - loss: 0.2500 - acc: 0.9100", 12),           # a pasted Keras log line
    ("The model reaches 80% accuracy on the test set.", 12),   # prose
    ("1st_layer = keras.layers.Dense(10)", 12),                # invalid decimal literal
    ("sess.run(total, feed_dict={x: batch)", 7),               # wrong closing bracket
], ids=["output", "array", "keras-log", "prose", "decimal-literal", "feed-dict-bracket"])
def test_one_bad_line_is_left_out_and_the_rest_is_scanned_at_the_files_lines(
        bad: str, at: int) -> None:
    src = script(bad, at)
    with pytest.raises(SyntaxError):
        compile(src, "s.py", "exec")
    findings, note = scan_source_noted(src, "s.py")
    got = {(f.rule, f.line) for f in findings}
    assert {("US", 6), ("IMR", 9)} <= got
    assert next(f.col for f in findings if f.rule == "IMR") == IMR_COL
    assert all(f.line != at for f in findings)
    assert note is not None and note.startswith(f"recovered: left out what does not parse (line {at}: ")
    assert "\n" not in note


def test_the_recovered_text_keeps_every_other_line_and_every_line_break() -> None:
    rows = ["import keras", "xs = load()"] + [f"v{i} = {i}" for i in range(36)] + [
        "result = model.predict(xs,", "                       batch 32)", "print(result)"]
    src = "\r\n".join(rows) + "\r\n"  # a Windows file, 41 lines: two may be blanked
    assert line_count(src) == 41 and line_budget(41) == 2
    fixed = recover(src)
    assert isinstance(fixed, Recovered)
    assert [(r.first, r.last) for r in fixed.regions] == [(39, 40)]  # the whole statement
    assert fixed.blanked == {39, 40}
    assert fixed.text.count("\r\n") == src.count("\r\n") and "\n" not in fixed.text.replace("\r\n", "")
    new = fixed.text.split("\r\n")
    assert len(new) == len(src.split("\r\n"))
    assert new[38] == PLACEHOLDER and new[39] == ""
    assert [r for n, r in enumerate(new, start=1) if n not in fixed.blanked] == [
        r for n, r in enumerate(src.split("\r\n"), start=1) if n not in fixed.blanked]
    compile(fixed.text, "w.py", "exec")


def test_a_blanked_line_inside_a_block_keeps_its_indentation() -> None:
    fixed = recover(script("    0.8 accuracy", 10))  # the loop's last statement
    assert isinstance(fixed, Recovered) and fixed.blanked == {10}
    assert fixed.text.splitlines()[9] == "    " + PLACEHOLDER


def test_a_line_pasted_into_a_block_at_a_shallower_indentation_is_emptied() -> None:
    src = "\n".join([
        "import keras", "", "def train(xs, ys):", "    for fold in range(3):",
        "        model = keras.Sequential([keras.layers.Dense(1)])",
        "This line was pasted into the function by mistake",  # a `pass` here would end it
        "        model.fit(xs, ys)", "    print(\"done\")", "", "x = 1", "y = 2"]) + "\n"
    fixed = recover(src)
    assert isinstance(fixed, Recovered) and fixed.blanked == {6}
    assert fixed.text.splitlines()[5] == ""
    findings, note = scan_source_noted(src, "s.py")
    assert ("IMR", 5) in {(f.rule, f.line) for f in findings}
    assert note is not None and "(line 6: " in note


def test_no_finding_is_ever_reported_on_a_blanked_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # The smelly statement itself is the broken one: it is left out, not reported.
    src = script("    model = keras.Sequential([keras.layers.Dense(1)))", 9)
    findings, note = scan_source_noted(src, "s.py")
    assert ("US", 6) in {(f.rule, f.line) for f in findings}
    assert all(f.line != 9 for f in findings)
    assert note is not None and "(line 9: " in note
    # And whatever the rules said about a blanked line, the engine drops it.
    real = scan._scan_readable

    def everywhere(text, path, rules, prefilter, project):  # type: ignore[no-untyped-def]
        found, said = real(text, path, rules, prefilter, project)
        if PLACEHOLDER in text and found:
            found = [replace(found[0], line=n) for n in range(1, line_count(text) + 1)]
        return found, said

    monkeypatch.setattr(scan, "_scan_readable", everywhere)
    findings, _ = scan_source_noted(script("0.8 accuracy"), "s.py")
    assert sorted(f.line for f in findings) == [n for n in range(1, 13) if n != 12]


def test_python2_source_with_one_bad_line_is_read_as_python2_and_recovered() -> None:
    src = "\n".join([
        "import tensorflow as tf", "import keras", "", "sess = tf.Session()",
        'print "training"', "for fold in range(3):",
        "    model = keras.Sequential([keras.layers.Dense(1)])", "    model.fit(xs, ys)",
        'print "done"', "x = 1", "y = 2", "0.8 accuracy"]) + "\n"
    findings, note = scan_source_noted(src, "old.py")
    assert {("US", 4), ("IMR", 7)} <= {(f.rule, f.line) for f in findings}
    assert note is not None and note.startswith("python2: ") and "print statement at line 5" in note
    assert "recovered: left out what does not parse (line 12: " in note


def test_a_notebook_cell_with_one_bad_line_is_scanned_without_it() -> None:
    nb = {"cells": [
        {"cell_type": "code", "source": ["import tensorflow as tf\n", "import keras\n",
                                         "xs, ys = load()\n"]},
        {"cell_type": "markdown", "source": "Cross-validation"},
        {"cell_type": "code", "source": ["for fold in range(3):\n",
                                         "    model = keras.Sequential([keras.layers.Dense(1)])\n",
                                         "    model.fit(xs, ys)\n", "0.8 accuracy\n"]},
        {"cell_type": "code", "source": ["sess = tf.Session()\n", "sess.run(op)\n",
                                         "print('done')\n"]},
    ]}
    scan.clear_cache()
    res = scan_bytes(json.dumps(nb).encode(), "cv.ipynb")
    assert res.error is None
    assert {("IMR", 3, 2), ("US", 4, 1)} <= {(f.rule, f.cell, f.line) for f in res.findings}
    assert all((f.cell, f.line) != (3, 4) for f in res.findings)
    assert res.note is not None and res.note.startswith(
        "recovered: left out what does not parse (cell 3: line 4: ")


def test_a_file_that_is_mostly_not_python_stays_one_error_row(tmp_path: Path) -> None:
    log = tmp_path / "train_log.py"
    log.write_text("import tensorflow as tf\n" + "".join(
        f"Epoch {i}/30 - loss: 0.{i:02d}\n" for i in range(1, 31)))
    res = scan_file(log)
    assert res.findings == [] and res.note is None and res.error is not None
    assert "\n" not in res.error
    assert res.error.startswith("syntax error at line 2")
    assert res.error.endswith("; not recovered: more than 1 of its 31 lines do not parse")


def test_a_short_file_is_never_recovered() -> None:
    src = "import keras\nfor i in range(3):\n    m = keras.Sequential()\n0.8 accuracy\n"
    assert line_budget(line_count(src)) == 0 and recover(src) == ""
    with pytest.raises(ScanError) as err:
        scan_source_noted(src, "short.py")
    assert "syntax error at line 4" in str(err.value) and "recovered" not in str(err.value)


def test_a_block_header_that_does_not_parse_is_not_blanked() -> None:
    src = script("def train(model xs):", 8)  # its body, lines 9-10, would be orphaned
    assert recover(src) == "the statement at line 8 opens a block"
    with pytest.raises(ScanError, match="not recovered: the statement at line 8 opens a block"):
        scan_source_noted(src, "s.py")


def test_the_bounds_on_statements_lines_and_tries() -> None:
    rows = ["import keras", "for i in range(3):", "    m = keras.Sequential([keras.layers.Dense(1)])",
            "    m.fit(x, y)"] + [f"v{i} = {i}" for i in range(196)]  # 200 lines: 10 may go
    assert line_budget(200) == 10

    def spoiled(*at: int) -> str:
        out = list(rows)
        for n in at:
            out[n - 1] = "0.8 accuracy"
        return "\n".join(out) + "\n"

    three = recover(spoiled(50, 100, 150))
    assert isinstance(three, Recovered) and three.blanked == {50, 100, 150}
    assert len(three.regions) == MAX_REGIONS
    assert recover(spoiled(50, 100, 150, 190)) == f"more than {MAX_REGIONS} statements do not parse"
    assert recover(spoiled(50, 100, 150), max_tries=2) == "still does not parse after 2 tries"
    assert recover(spoiled(50, 51), max_lines=1) == "more than 1 of its 200 lines do not parse"
    findings, note = scan_source_noted(spoiled(50, 100, 150), "s.py")
    assert [(f.rule, f.line) for f in findings] == [("IMR", 3)]
    assert note is not None and "line 50: " in note and "line 100: " in note and "line 150: " in note
    with pytest.raises(ScanError, match="syntax error at line 50.*not recovered: more than 3"):
        scan_source_noted(spoiled(50, 100, 150, 190), "s.py")


def test_leakwatt_scan_prints_the_recovery_note_and_the_findings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "train.py"
    f.write_text(script("[0.75 0.8]"))
    assert main(["scan", str(f), "--jobs", "1", "--isolated"]) == 1
    out, err = capsys.readouterr()
    assert f"{f}:9:{IMR_COL}: IMR " in out and f"{f}:6:" in out
    notes = [line for line in err.splitlines() if line.startswith(f"{f}: note: ")]
    assert len(notes) == 1
    assert notes[0].startswith(f"{f}: note: recovered: left out what does not parse (line 12: ")
    assert "0 error(s)" in err
    assert main(["scan", str(f), "--jobs", "1", "--isolated", "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["errors"] == [] and [n["path"] for n in data["notes"]] == [str(f)]
    assert data["notes"][0]["note"].startswith("recovered: ")


def test_mine_records_the_recovery_in_scan_errors_and_keeps_the_finding(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "proj")
    repo.write("train.py", script("0.8 accuracy")).commit("train, with its output")
    commit = repo.git("rev-parse", "HEAD")
    mine_corpus([CorpusEntry(url=str(repo.path), commit=commit, name="proj")], tmp_path / "out",
                tmp_path / "cache", MineParams(jobs=1, rules=("IMR",)), progress=False)

    def read(name: str) -> list[dict[str, str]]:
        with open(tmp_path / "out" / name, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    (row,) = read("repos.csv")
    assert row["status"] == "ok" and row["parse_errors"] == "0"
    (error,) = read("scan_errors.csv")
    assert error["path"] == "train.py"
    assert error["error"].startswith("note: recovered: left out what does not parse (line 12: ")
    assert [(i["path"], i["rule"], i["line"]) for i in read("instances.csv")] == [
        ("train.py", "IMR", "9")]
