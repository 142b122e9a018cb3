"""Python 2 sources and mixed tab indentation, read through the within-line rewrite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leakwatt.mining import scan
from leakwatt.mining.python2 import (
    LegacyError,
    expand_indent_tabs,
    python3_text,
    rewrite_python2,
    syntax_error,
)
from leakwatt.mining.scan import ScanError, scan_bytes, scan_paths, scan_source, scan_source_noted

#: A TF1-era Python 2 script: a session never closed (US) and a model rebuilt in a loop (IMR),
#: among print statements, ``except X, e``, backticks, octal and long literals.
PY2_SCRIPT = """\
import tensorflow as tf
import keras

x = tf.placeholder(tf.float32, [None, 3])
total = tf.reduce_sum(x)
sess = tf.Session()
print "sum:", sess.run(total, feed_dict={x: [[1, 2, 3]]})
for fold in range(3):
    print >>log, "fold %d" % fold; model = keras.Sequential([keras.layers.Dense(1)])
    model.fit(xs, ys)
try:
    open("out.txt")
except IOError, e:
    print `e`
mask = 0777
big = 10L
"""


@pytest.mark.parametrize(("before", "after"), [
    ('print "a", b\n', 'print("a", b)\n'),
    ("print\n", "print()\n"),
    ("print x,\n", "print(x, end=' ')\n"),
    ("print >>f, x\n", "print(x, file=f)\n"),
    ('print >>sys.stderr, "a", b  # why\n', 'print("a", b, file=sys.stderr)  # why\n'),
    ("print >>f\n", "print(file=f)\n"),
    ("if x: print y\n", "if x: print(y)\n"),
    ('print "a", (1,\n       2)\n', 'print("a", (1,\n       2))\n'),
    ("exec code in ns\n", "exec(code, ns)\n"),
    ('exec "x = 1"\n', 'exec("x = 1")\n'),
    ("try:\n    f()\nexcept (IOError, OSError), e:\n    pass\n",
     "try:\n    f()\nexcept (IOError, OSError) as e:\n    pass\n"),
    ('raise ValueError, "bad"\n', 'raise ValueError("bad")\n'),
    ("raise E, msg, tb\n", "raise E(msg).with_traceback(tb)\n"),
    ("y = `x`\n", "y = repr(x)\n"),
    ("m = 0777\n", "m = 0o777\n"),
    ("m = 0777L\n", "m = 0o777\n"),
    ("n = 10L + 0x1fL\n", "n = 10 + 0x1f\n"),
    ('s = ur"\\d"\n', 's = r"\\d"\n'),
    ("if a <> b: pass\n", "if a != b: pass\n"),
])
def test_each_python2_construct_is_rewritten_within_its_line(before: str, after: str) -> None:
    text, _, found = rewrite_python2(before)
    assert text == after
    assert text.count("\n") == before.count("\n") and found
    assert syntax_error(text) is None


def test_python3_code_is_left_alone() -> None:
    src = ('print("a", b)\nprint (x), y\nexec(code)\nraise ValueError("a, b")\n'
           "try:\n    pass\nexcept (A, B) as e:\n    pass\nx = 1e-08 + 0o7 + 0x1F\n"
           'print = log\ns = rb"\\d"\n')
    text, edits, found = rewrite_python2(src)
    assert (text, edits, found) == (src, {}, [])


def test_columns_map_back_to_the_file() -> None:
    readable = python3_text('print "x", y; z = f(1)\n')
    assert readable.text == 'print("x", y); z = f(1)\n'
    # ``f`` is at column 19 of the file and 20 of the rewritten line
    assert readable.text.index("f(") + 1 == 20
    assert readable.column(1, 20) == 19
    assert readable.column(1, 1) == 1  # before any edit
    assert readable.python2 and readable.note().startswith("python2: ")
    assert "print statement at line 1" in readable.note()


def test_a_python2_tf1_script_is_scanned_with_the_files_lines_and_columns() -> None:
    findings, note = scan_source_noted(PY2_SCRIPT, "old.py")
    got = {(f.rule, f.line) for f in findings}
    assert ("US", 6) in got and ("IMR", 9) in got
    imr = next(f for f in findings if f.rule == "IMR")
    line = PY2_SCRIPT.splitlines()[8]
    assert imr.col == line.index("keras.Sequential") + 1  # the file's column, not the rewrite's
    assert note is not None and note.startswith("python2: ")
    for what in ("print statement at line 7", "except X, e at line 13", "backticks at line 14",
                 "octal literal at line 15", "long integer suffix at line 16"):
        assert what in note
    assert scan_source(PY2_SCRIPT, "old.py") == findings


def test_a_python2_file_without_findings_is_scanned_not_an_error() -> None:
    assert scan_source("import tensorflow as tf\nprint 'x'\n", "old.py") == []
    res = scan_bytes(b"import tensorflow as tf\nprint 'x'\n", "old2.py")
    assert res.error is None and res.note is not None and "print statement" in res.note


def test_what_still_does_not_parse_says_which_construct_blocked_it() -> None:
    src = "import keras\nprint 'x'\ndef swap((a, b)):\n    return b, a\n"
    with pytest.raises(ScanError) as err:
        scan_source(src, "old.py")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("old.py: Python 2 source (print statement at line 2)")
    assert "tuple parameter at line 3" in msg
    with pytest.raises(LegacyError) as legacy:
        python3_text(src)
    assert "print statement" in legacy.value.rewritten


def test_plain_syntax_errors_are_not_called_python2() -> None:
    with pytest.raises(ScanError, match="syntax error at line 2") as err:
        scan_source("import keras\ndef f(:\n    pass\n", "broken.py")
    assert "Python 2" not in str(err.value)
    src = "import tensorflow as tf\n\ndef f():\n    eps = 1e-08\n  return eps\n"
    with pytest.raises(ScanError, match="indentation error at line 5") as err:
        scan_source(src, "bad.py")
    assert "Python 2" not in str(err.value)


def test_mixed_tab_indentation_is_read_as_python2_did() -> None:
    src = ("import keras\nfor i in range(3):\n\tm = keras.Sequential([keras.layers.Dense(1)])\n"
           "        m.fit(x, y)\n")
    assert isinstance(syntax_error(src), TabError)
    expanded, edits = expand_indent_tabs(src)
    assert expanded.splitlines()[2] == " " * 8 + src.splitlines()[2][1:] and list(edits) == [3]
    findings, note = scan_source_noted(src, "tabs.py")
    assert [(f.rule, f.line, f.col) for f in findings] == [("IMR", 3, src.splitlines()[2].index(
        "keras") + 1)]
    assert note is not None and note.startswith("tabs: ")


def test_tabs_inside_a_multiline_string_are_kept() -> None:
    src = 'x = """\n\tkept\n"""\nif x:\n\ty = 1\n        z = 2\n'
    expanded, edits = expand_indent_tabs(src)
    assert "\tkept" in expanded and 2 not in edits and 5 in edits


def test_guards_still_apply_to_python2_files() -> None:
    src = "import keras\nprint 'x'\ny = " + "(" * 300 + "1" + ")" * 300 + "\n"
    with pytest.raises(ScanError) as err:
        scan_source(src, "deep.py")
    assert "nested" in str(err.value) or "brackets" in str(err.value)


def test_scan_paths_reports_the_note_and_json_keeps_every_old_key(tmp_path: Path) -> None:
    (tmp_path / "old.py").write_text(PY2_SCRIPT)
    (tmp_path / "new.py").write_text("import keras\nmodel = keras.Sequential()\n")
    report = scan_paths([tmp_path], jobs=1)
    assert report.errors == []
    assert [n["path"] for n in report.notes] == [str(tmp_path / "old.py")]
    data = report.to_dict()
    assert {"findings", "errors", "skipped", "files_scanned", "notes"} == set(data)
    assert any(f["rule"] == "US" and f["line"] == 6 for f in data["findings"])


def test_a_python2_notebook_cell_is_read_and_a_broken_cell_is_still_named() -> None:
    nb = {"cells": [
        {"cell_type": "code", "source": ["import keras\n"]},
        {"cell_type": "code", "source": [
            "for i in range(2):\n",
            "    print 'fold', i; m = keras.Sequential([keras.layers.Dense(1)])\n",
            "    m.fit(x, y)\n"]},
        {"cell_type": "code", "source": ["def f(:\n"]},
    ]}
    scan.clear_cache()
    res = scan_bytes(json.dumps(nb).encode(), "nb.ipynb")
    line = "    print 'fold', i; m = keras.Sequential([keras.layers.Dense(1)])"
    assert [(f.rule, f.cell, f.line, f.col) for f in res.findings] == [
        ("IMR", 2, 2, line.index("keras") + 1)]
    assert res.note is not None and res.note.startswith("python2: cell 2: ")
    assert res.error is not None and "cell(s) 3" in res.error


def test_leakwatt_scan_reaches_python2_big_notebooks_and_tape_loops_beside_sessions(
        tmp_path: Path) -> None:
    """The done-when checks of issue #21, through the ``leakwatt scan`` front end."""
    import argparse
    import io

    from leakwatt.mining import lint

    (tmp_path / "tf1_script.py").write_text(PY2_SCRIPT)
    image = "A" * 2_600_000  # two base64 image outputs: a 5 MB notebook with 4 lines of code
    cells = [{"cell_type": "code", "source": src, "metadata": {}, "execution_count": 1,
              "outputs": [{"output_type": "display_data", "metadata": {},
                           "data": {"image/png": image}}]}
             for src in (["import keras\n"],
                         ["for i in range(3):\n",
                          "    m = keras.Sequential([keras.layers.Dense(1)])\n",
                          "    m.fit(x, y)\n"])]
    nb = json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    (tmp_path / "big.ipynb").write_text(nb)
    assert (tmp_path / "big.ipynb").stat().st_size > 5_000_000
    (tmp_path / "eager.py").write_text(
        "import tensorflow as tf\n\nsess = tf.compat.v1.Session()\nsess.close()\n\n"
        "losses = []\nfor x, y in dataset:\n    with tf.GradientTape() as tape:\n"
        "        loss = tf.reduce_mean(tf.square(model(x) - y))\n    losses.append(loss)\n")
    parser = argparse.ArgumentParser()
    lint.add_arguments(parser)
    args = parser.parse_args([str(tmp_path), "--format", "json", "--jobs", "1"])
    args.stdout, args.stderr = io.StringIO(), io.StringIO()
    assert lint.run(args) == 1
    data = json.loads(args.stdout.getvalue())
    found = {(Path(f["path"]).name, f["rule"], f["line"], f["cell"]) for f in data["findings"]}
    assert {("tf1_script.py", "US", 6, None), ("tf1_script.py", "IMR", 9, None),
            ("big.ipynb", "IMR", 2, 2), ("eager.py", "UTR", 10, None)} <= found
    assert data["errors"] == [] and data["skipped"] == []
    assert [Path(n["path"]).name for n in data["notes"]] == ["tf1_script.py"]
