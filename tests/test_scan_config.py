"""`leakwatt scan` as a Python project's linter (issue 20): `[tool.leakwatt]` in pyproject.toml,
the flags over it, quieter defaults, `--diff`/`--fix` semantics, well-formatted autofixes and
SARIF that CI systems accept. Every test builds its project in tmp_path and runs the real
command line (`leakwatt.pipeline.cli.main`)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from leakwatt.common import package_version
from leakwatt.mining.rules import RULES, fix_source
from leakwatt.mining.rules.catalogue import rule_markdown
from leakwatt.pipeline import cli

REPO = Path(__file__).resolve().parents[1]

#: IMR (loop-rebuild): a model built on every iteration of a loop
IMR_LOOP = ("import tensorflow as tf\n"
            "for i in range(3):\n"
            "    model = tf.keras.Sequential([tf.keras.layers.Dense(1)])\n"
            "    model.fit(x, y)\n")
#: IMR straight-line: the same variable rebuilt in straight-line code (reported at line 4)
IMR_STRAIGHT = ("import keras\n"
                "model = keras.Sequential([keras.layers.Dense(1)])\n"
                "model.fit(x, y)\n"
                "model = keras.Sequential([keras.layers.Dense(2)])\n"
                "model.fit(x, y)\n")
#: US with an autofix: the session is used twice, then unrelated code follows
US_SCRIPT = ("import tensorflow as tf\n"
             "\n"
             "sess = tf.compat.v1.Session()\n"
             "\n"
             "sess.run(init)\n"
             "\n"
             "print(sess.run(y))\n"
             "\n"
             "\n"
             "def report(values):\n"
             "    return sum(values)\n"
             "\n"
             "\n"
             "print(report([1, 2]))\n")


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    here = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(here)


def scan(*argv: str, cwd: Path | None = None) -> tuple[int, str, str]:
    """``leakwatt scan ARGV`` in this process; (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with _cwd(cwd or Path.cwd()), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            rc = cli.main(["scan", "--jobs", "1", *argv])
        except SystemExit as exc:  # argparse usage errors
            rc = int(exc.code or 0)
    return rc, out.getvalue(), err.getvalue()


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def found(out: str, root: Path) -> list[tuple[str, str]]:
    """(path relative to root, rule) of every finding in JSON output."""
    data = json.loads(out)
    return sorted((Path(f["path"]).resolve().relative_to(root.resolve()).as_posix(), f["rule"])
                  for f in data["findings"])


# --- configuration ----------------------------------------------------------------------------


def test_exclude_in_pyproject_removes_the_findings_under_tests(tmp_path: Path) -> None:
    proj = write(tmp_path / "proj", {"src/train.py": IMR_LOOP, "tests/test_train.py": IMR_LOOP})
    rc, out, _ = scan(str(proj), "--format", "json")
    assert rc == 1 and found(out, proj) == [("src/train.py", "IMR"), ("tests/test_train.py", "IMR")]
    (proj / "pyproject.toml").write_text('[project]\nname = "p"\n\n[tool.leakwatt]\n'
                                         'exclude = ["tests"]\n')
    rc, out, _ = scan(str(proj), "--format", "json")
    assert rc == 1 and found(out, proj) == [("src/train.py", "IMR")]
    # the same from inside the project, scanning "."
    rc, out, _ = scan(".", "--format", "json", cwd=proj)
    assert [Path(f["path"]).as_posix() for f in json.loads(out)["findings"]] == ["src/train.py"]
    # a file named on the command line is scanned all the same, unless force-exclude
    rc, out, _ = scan(str(proj / "tests" / "test_train.py"), "--format", "json")
    assert found(out, proj) == [("tests/test_train.py", "IMR")]
    rc, out, err = scan(str(proj / "tests" / "test_train.py"), "--force-exclude")
    assert rc == 0 and out == "" and "No Python files found" in err


def test_the_nearest_pyproject_with_the_table_is_used_and_one_without_is_passed_over(
        tmp_path: Path) -> None:
    proj = write(tmp_path / "proj", {
        "pyproject.toml": '[tool.leakwatt]\nselect = ["US"]\n',
        "pkg/pyproject.toml": '[project]\nname = "inner"\n',
        "pkg/train.py": IMR_LOOP + "sess = tf.compat.v1.Session()\n"})
    rc, out, err = scan(str(proj / "pkg" / "train.py"), "--format", "json", "--verbose")
    assert rc == 1 and found(out, proj) == [("pkg/train.py", "US")]
    assert f"configuration: {proj / 'pyproject.toml'}" in err
    # flags override the file: --select starts afresh, --isolated reads no file
    rc, out, _ = scan(str(proj / "pkg"), "--format", "json", "--select", "IMR")
    assert found(out, proj) == [("pkg/train.py", "IMR")]
    rc, out, _ = scan(str(proj / "pkg"), "--format", "json", "--isolated")
    assert found(out, proj) == [("pkg/train.py", "IMR"), ("pkg/train.py", "US")]
    # --config names the file
    other = write(tmp_path / "other", {"lw.toml": '[tool.leakwatt]\nignore = ["US"]\n'})
    rc, out, _ = scan(str(proj / "pkg"), "--format", "json", "--config", str(other / "lw.toml"))
    assert found(out, proj) == [("pkg/train.py", "IMR")]


def test_flags_go_on_top_of_the_file(tmp_path: Path) -> None:
    proj = write(tmp_path / "proj", {
        "pyproject.toml": '[tool.leakwatt]\nmin-confidence = 0.99\nignore = ["UTR"]\n',
        "a.py": IMR_LOOP + "sess = tf.compat.v1.Session()\n"})
    rc, out, _ = scan(str(proj), "--format", "json")
    assert rc == 0 and found(out, proj) == []  # every finding is below 0.99
    rc, out, _ = scan(str(proj), "--format", "json", "--min-confidence", "0")
    assert found(out, proj) == [("a.py", "IMR"), ("a.py", "US")]
    rc, out, _ = scan(str(proj), "--format", "json", "--min-confidence", "0", "--ignore", "US")
    assert found(out, proj) == [("a.py", "IMR")]  # --ignore adds to the file's


def test_per_file_ignores_from_the_file_and_the_flag(tmp_path: Path) -> None:
    proj = write(tmp_path / "proj", {
        "pyproject.toml": '[tool.leakwatt.per-file-ignores]\n"scripts/*" = ["IMR"]\n'
                          '"legacy.py" = ["IMR", "US"]\n',
        "scripts/run.py": IMR_LOOP, "legacy.py": IMR_LOOP, "src/legacy.py": IMR_LOOP,
        "src/train.py": IMR_LOOP})
    rc, out, _ = scan(str(proj), "--format", "json")
    assert found(out, proj) == [("src/train.py", "IMR")]
    rc, out, _ = scan(str(proj), "--format", "json", "--per-file-ignores", "src/*:imr")
    assert found(out, proj) == [("legacy.py", "IMR"), ("scripts/run.py", "IMR")]


def test_default_excludes_and_extend_exclude(tmp_path: Path) -> None:
    proj = write(tmp_path / "proj", {
        "build/lib/gen.py": IMR_LOOP, "dist/x.py": IMR_LOOP, "node_modules/m.py": IMR_LOOP,
        "src/a.py": IMR_LOOP, "src/old_a.py": IMR_LOOP})
    rc, out, _ = scan(str(proj), "--format", "json")
    assert found(out, proj) == [("src/a.py", "IMR"), ("src/old_a.py", "IMR")]
    rc, out, _ = scan(str(proj), "--format", "json", "--extend-exclude", "old_*.py")
    assert found(out, proj) == [("src/a.py", "IMR")]
    # exclude replaces the default list (as ruff's): build/ and dist/ are scanned again
    (proj / "pyproject.toml").write_text('[tool.leakwatt]\nexclude = ["node_modules"]\n'
                                         'extend-exclude = ["src/old_*"]\n')
    rc, out, _ = scan(str(proj), "--format", "json")
    assert found(out, proj) == [("build/lib/gen.py", "IMR"), ("dist/x.py", "IMR"),
                                ("src/a.py", "IMR")]


@pytest.mark.parametrize(("table", "said"), [
    ("selekt = [\"IMR\"]", "[tool.leakwatt]: unknown key 'selekt'"),
    ("min-confidence = \"high\"", "[tool.leakwatt] min-confidence: expected a number from 0 to 1"),
    ("min-confidence = 2", "[tool.leakwatt] min-confidence: expected a number from 0 to 1"),
    ("exclude = \"tests\"", "[tool.leakwatt] exclude: expected a list of glob patterns"),
    ("file-memory = 1.5", "[tool.leakwatt] file-memory: expected a whole number of MiB"),
    ("imr-straight-line-in-tests = 1", "[tool.leakwatt] imr-straight-line-in-tests: expected true"),
    ("select = [\"IMR\", \"XYZ\"]", "[tool.leakwatt] select: unknown rule id(s) XYZ"),
    ("[tool.leakwatt.per-file-ignores]\n\"a.py\" = [\"NOPE\"]", "per-file-ignores"),
    ("select = [", "not valid TOML"),
])
def test_a_bad_setting_is_one_line_naming_file_and_key_and_exit_2(tmp_path: Path, table: str,
                                                                  said: str) -> None:
    proj = write(tmp_path / "proj", {"pyproject.toml": f"[tool.leakwatt]\n{table}\n",
                                     "a.py": IMR_LOOP})
    rc, out, err = scan(str(proj))
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"leakwatt: error: {proj / 'pyproject.toml'}")
    assert said in lines[0]


@pytest.mark.parametrize("argv", [["--statistics", "--format", "sarif"],
                                  ["--per-file-ignores", "no-colon"],
                                  ["--max-file-kb", "0"]])
def test_bad_flags_exit_2(tmp_path: Path, argv: list[str]) -> None:
    write(tmp_path, {"a.py": IMR_LOOP})
    rc, out, err = scan(str(tmp_path / "a.py"), *argv)
    assert rc == 2 and out == "" and err.startswith("leakwatt: error: ")


def test_max_file_kb_skips_larger_files(tmp_path: Path) -> None:
    write(tmp_path, {"big.py": IMR_LOOP + "# padding\n" * 300, "small.py": IMR_LOOP})
    (tmp_path / "pyproject.toml").write_text("[tool.leakwatt]\nmax-file-kb = 2\n")
    rc, out, err = scan(str(tmp_path), "--format", "json")
    data = json.loads(out)
    assert [Path(f["path"]).name for f in data["findings"]] == ["small.py"]
    assert [Path(s["path"]).name for s in data["skipped"]] == ["big.py"]
    assert data["skipped"][0]["reason"].startswith("larger than 2048 bytes")
    rc, out, err = scan(str(tmp_path), "--format", "json", "--max-file-kb", "64")
    assert sorted(Path(f["path"]).name for f in json.loads(out)["findings"]) == ["big.py",
                                                                                 "small.py"]


# --- output -----------------------------------------------------------------------------------


def test_statistics_counts_per_rule_and_variant(tmp_path: Path) -> None:
    write(tmp_path, {"a.py": IMR_LOOP, "b.py": IMR_LOOP, "c.py": IMR_STRAIGHT,
                     "d.py": "import tensorflow as tf\nsess = tf.compat.v1.Session()\n"})
    rc, out, _ = scan(str(tmp_path), "--statistics", "--format", "json")
    assert rc == 1
    rows = [(r["count"], r["rule"], r["variant"]) for r in json.loads(out)]
    variant = json.loads(scan(str(tmp_path / "a.py"), "--format", "json")[1])["findings"][0][
        "variant"]
    assert rows == [(2, "IMR", variant), (1, "IMR", "straight-line"),
                    (1, "US", "session-no-close")]
    rc, out, _ = scan(str(tmp_path), "--statistics")
    lines = [line.split("\t") for line in out.splitlines()]
    assert [(c.strip(), r.strip(), v.strip()) for c, r, v, _ in lines] == [
        ("2", "IMR", variant), ("1", "IMR", "straight-line"), ("1", "US", "session-no-close")]
    assert lines[0][3] == RULES["IMR"].NAME


def test_quiet_prints_findings_only_and_silent_nothing(tmp_path: Path) -> None:
    write(tmp_path, {"a.py": IMR_LOOP, "gen.py": "# @generated by a tool\n" + IMR_LOOP})
    rc, out, err = scan(str(tmp_path))
    assert rc == 1 and out.startswith(f"{tmp_path / 'a.py'}:3:") and "finding(s)" in err
    rc, out, err = scan(str(tmp_path), "-q")
    assert rc == 1 and out.startswith(f"{tmp_path / 'a.py'}:3:") and err == ""
    rc, out, err = scan(str(tmp_path), "--silent")
    assert rc == 1 and out == "" and err == ""
    rc, out, err = scan(str(tmp_path / "gen.py"), "-s")
    assert rc == 0 and out == "" and err == ""


def test_no_python_file_is_a_warning_and_exit_0(tmp_path: Path) -> None:
    write(tmp_path, {"notes.txt": "hello\n", "node_modules/x.py": IMR_LOOP})
    rc, out, err = scan(str(tmp_path))
    assert rc == 0 and out == ""
    assert err.strip() == "leakwatt: warning: No Python files found under the given path(s)"
    rc, out, _ = scan(str(tmp_path), "--format", "json")
    assert rc == 0 and json.loads(out)["files_scanned"] == 0


def test_generated_files_are_one_line_and_verbose_lists_them(tmp_path: Path) -> None:
    write(tmp_path, {f"gen_{i}_pb2.py": "# Generated by the protocol buffer compiler.  "
                                        "DO NOT EDIT!\n" + IMR_LOOP for i in range(5)})
    write(tmp_path, {"a.py": IMR_LOOP})
    rc, out, err = scan(str(tmp_path))
    assert rc == 1 and len([ln for ln in out.splitlines() if not ln.startswith("  = ")]) == 1
    assert "leakwatt: skipped 5 generated files (--verbose lists them)" in err.splitlines()
    assert "gen_0_pb2.py" not in err
    rc, out, err = scan(str(tmp_path), "--verbose")
    assert sum("skipped: generated file" in line for line in err.splitlines()) == 5
    assert "(--verbose lists them)" not in err


@pytest.mark.parametrize("name", ["tests/helpers.py", "test_model.py", "model_test.py",
                                  "conftest.py", "test/util.py"])
def test_imr_straight_line_in_tests_is_left_out_unless_asked(tmp_path: Path, name: str) -> None:
    proj = write(tmp_path / "proj", {name: IMR_STRAIGHT, "src/model.py": IMR_STRAIGHT})
    rc, out, _ = scan(str(proj), "--format", "json")
    assert found(out, proj) == [("src/model.py", "IMR")]
    rc, out, _ = scan(str(proj), "--format", "json", "--imr-straight-line-in-tests")
    assert found(out, proj) == sorted([(name, "IMR"), ("src/model.py", "IMR")])
    (proj / "pyproject.toml").write_text("[tool.leakwatt]\nimr-straight-line-in-tests = true\n")
    rc, out, _ = scan(str(proj), "--format", "json")
    assert found(out, proj) == sorted([(name, "IMR"), ("src/model.py", "IMR")])


def test_other_imr_variants_in_tests_are_still_reported(tmp_path: Path) -> None:
    proj = write(tmp_path / "proj", {"tests/test_loop.py": IMR_LOOP})
    rc, out, _ = scan(str(proj), "--format", "json")
    assert rc == 1 and found(out, proj) == [("tests/test_loop.py", "IMR")]


def test_a_latin1_file_without_a_cookie_says_so(tmp_path: Path) -> None:
    (tmp_path / "old.py").write_bytes("# caf\xe9\nimport os\n".encode("latin-1"))
    (tmp_path / "late.py").write_bytes("import os\nx = 'caf\xe9'\n".encode("latin-1"))
    rc, _, err = scan(str(tmp_path))
    assert rc == 1
    assert (f"{tmp_path / 'old.py'}: error: not UTF-8 and no coding cookie (PEP 263) "
            "(byte 0xe9 at offset 5)") in err
    assert (f"{tmp_path / 'late.py'}: error: not UTF-8 and no coding cookie (PEP 263) "
            "(byte 0xe9 at offset 18)") in err
    assert "bad encoding declaration" not in err


# --- --diff and --fix -------------------------------------------------------------------------


def test_diff_never_writes_even_with_fix(tmp_path: Path) -> None:
    target = tmp_path / "s.py"
    target.write_text(US_SCRIPT)
    before = target.read_bytes()
    for argv in (["--diff"], ["--fix", "--diff"], ["--diff", "--fix", "--format", "json"]):
        rc, out, err = scan(str(target), *argv)
        assert rc == 1, err
        assert out.startswith(f"--- a/{target}\n+++ b/{target}\n")
        assert "+with tf.compat.v1.Session() as sess:\n" in out
        assert "would fix 1 finding in 1 file" in err
        assert target.read_bytes() == before
    clean = tmp_path / "clean.py"
    clean.write_text("import tensorflow as tf\nwith tf.compat.v1.Session() as s:\n    s.run(x)\n")
    rc, out, err = scan(str(clean), "--fix", "--diff")
    assert rc == 0 and out == "" and "would fix 0 findings in 0 files" in err


def test_fix_says_how_many_findings_in_how_many_files(tmp_path: Path) -> None:
    write(tmp_path, {"a.py": US_SCRIPT, "b.py": US_SCRIPT.replace("sess", "session"),
                     "c.py": IMR_STRAIGHT})
    rc, out, err = scan(str(tmp_path), "--fix")
    assert "leakwatt: fixed 2 findings in 2 files" in err.splitlines()
    assert rc == 1 and out.splitlines()[0].startswith(f"{tmp_path / 'c.py'}:4:")  # no autofix
    assert "with tf.compat.v1.Session() as session:" in (tmp_path / "b.py").read_text()


def test_us_fix_wraps_only_up_to_the_last_use_of_the_session(tmp_path: Path) -> None:
    fixed, applied = fix_source(US_SCRIPT, "s.py", ["US"])
    assert len(applied) == 1
    assert fixed == ("import tensorflow as tf\n"
                     "\n"
                     "with tf.compat.v1.Session() as sess:\n"
                     "    sess.run(init)\n"
                     "\n"
                     "    print(sess.run(y))\n"
                     "\n"
                     "\n"
                     "def report(values):\n"
                     "    return sum(values)\n"
                     "\n"
                     "\n"
                     "print(report([1, 2]))\n")


@pytest.mark.parametrize("source", [
    # a function defined after the session that uses it may run after the block: no fix
    "import tensorflow as tf\nsess = tf.compat.v1.Session()\nsess.run(a)\n"
    "def later():\n    return sess.run(b)\n",
    "import tensorflow as tf\nsess = tf.compat.v1.Session()\nrun = lambda: sess.run(b)\n",
])
def test_us_fix_is_not_offered_when_the_session_is_used_later_by_a_function(source: str) -> None:
    fixed, applied = fix_source(source, "s.py", ["US"])
    assert applied == [] and fixed == source


def _ruff_w(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache",
                           "--select", "W", "--output-format", "concise", *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


def _example_fixes() -> list[tuple[str, str]]:
    """(name, source) of every rule example that has an autofix, plus the US script above."""
    cases = [("us_script", US_SCRIPT)]
    for code, cls in RULES.items():
        cases += [(f"{code.lower()}_{i}", ex.code) for i, ex in enumerate(cls.INVALID)
                  if ex.expected_replacement]
    return cases


def test_ruff_finds_no_whitespace_problem_in_any_fixed_file(tmp_path: Path) -> None:
    """pycodestyle's W rules (trailing whitespace, whitespace-only lines, W605...) over every
    file `leakwatt scan --fix` rewrote: each autofixable rule example and the US script, also
    indented one level (inside a function) where blank lines between moved statements are the
    trap, and a copy of the scan fixture project."""
    for name, source in _example_fixes():
        write(tmp_path / "fixed", {f"{name}.py": source})
        indented = "def main():\n" + "".join(
            f"    {line}" if line.strip() else line for line in source.splitlines(True))
        write(tmp_path / "fixed", {f"{name}_in_function.py": indented})
    sources = {p: p.read_text() for p in (tmp_path / "fixed").glob("*.py")}
    assert _ruff_w(list(sources)).returncode == 0  # clean before the fix
    rc, _, err = scan(str(tmp_path / "fixed"), "--fix")
    changed = [p for p, text in sources.items() if p.read_text() != text]
    assert len(changed) >= len(_example_fixes()) + 1, err
    ruff = _ruff_w(changed)
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr


# --- SARIF ------------------------------------------------------------------------------------

#: The parts of the SARIF 2.1.0 schema (OASIS, sarif-schema-2.1.0.json) that a log of this
#: linter exercises: every object's required properties, the types and enumerations of the
#: properties it writes and the URI and format constraints. NOT the official schema file: no
#: installed package ships it and this test must run offline, so this is a hand-written
#: subset, transcribed from the specification's required structure (sections 3.13 sarifLog,
#: 3.14 run, 3.18-3.19 tool/toolComponent, 3.49 reportingDescriptor, 3.27 result, 3.28
#: location, 3.29 physicalLocation, 3.4 artifactLocation, 3.30 region, 3.11 message,
#: 3.12 multiformatMessageString, 3.58 notification). It checks the structure, not
#: everything the official schema does.
_MESSAGE = {"type": "object", "properties": {"text": {"type": "string"},
                                              "markdown": {"type": "string"}},
            "anyOf": [{"required": ["text"]}, {"required": ["id"]}]}
_MULTIFORMAT = {"type": "object", "required": ["text"],
                "properties": {"text": {"type": "string"}, "markdown": {"type": "string"}}}
_ARTIFACT_LOCATION = {"type": "object", "properties": {
    "uri": {"type": "string", "format": "uri-reference"}, "uriBaseId": {"type": "string"}},
    "additionalProperties": True}
_REGION = {"type": "object", "properties": {
    "startLine": {"type": "integer", "minimum": 1},
    "startColumn": {"type": "integer", "minimum": 1},
    "snippet": {"type": "object", "properties": {"text": {"type": "string"}}}}}
_LOCATION = {"type": "object", "properties": {"physicalLocation": {
    "type": "object", "properties": {"artifactLocation": _ARTIFACT_LOCATION, "region": _REGION},
    "anyOf": [{"required": ["address"]}, {"required": ["artifactLocation"]}]}}}
_LEVEL = {"enum": ["none", "note", "warning", "error"]}
SARIF_STRUCTURE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "required": ["version", "runs"],
    "properties": {
        "$schema": {"type": "string", "format": "uri"},
        "version": {"const": "2.1.0"},
        "runs": {"type": "array", "items": {
            "type": "object", "required": ["tool"],
            "properties": {
                "tool": {"type": "object", "required": ["driver"], "properties": {"driver": {
                    "type": "object", "required": ["name"],
                    "properties": {
                        "name": {"type": "string"}, "version": {"type": "string"},
                        "informationUri": {"type": "string", "format": "uri"},
                        "rules": {"type": "array", "items": {
                            "type": "object", "required": ["id"],
                            "properties": {
                                "id": {"type": "string"}, "name": {"type": "string"},
                                "shortDescription": _MULTIFORMAT,
                                "fullDescription": _MULTIFORMAT, "help": _MULTIFORMAT,
                                "helpUri": {"type": "string", "format": "uri"},
                                "defaultConfiguration": {"type": "object", "properties": {
                                    "level": _LEVEL}}}}}}}}},
                "columnKind": {"enum": ["utf16CodeUnits", "unicodeCodePoints"]},
                "originalUriBaseIds": {"type": "object", "additionalProperties": {
                    "type": "object", "properties": {"uri": {"type": "string",
                                                             "format": "uri"}}}},
                "results": {"type": "array", "items": {
                    "type": "object", "required": ["message"],
                    "properties": {
                        "ruleId": {"type": "string"},
                        "ruleIndex": {"type": "integer", "minimum": -1},
                        "level": _LEVEL, "message": _MESSAGE,
                        "locations": {"type": "array", "items": _LOCATION},
                        "properties": {"type": "object"}}}},
                "invocations": {"type": "array", "items": {
                    "type": "object", "required": ["executionSuccessful"],
                    "properties": {
                        "executionSuccessful": {"type": "boolean"},
                        "toolExecutionNotifications": {"type": "array", "items": {
                            "type": "object", "required": ["message"],
                            "properties": {"level": _LEVEL, "message": _MESSAGE,
                                           "locations": {"type": "array",
                                                         "items": _LOCATION}}}}}}}}}}}}


def test_sarif_has_the_structure_ci_systems_require(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")  # the dev extra installs it
    proj = write(tmp_path / "my proj", {"src/train.py": IMR_LOOP, "src/bad.py": "def (:\n",
                                        "nb/a b.py": "import tensorflow as tf\n"
                                                     "sess = tf.compat.v1.Session()\n"})
    rc, out, _ = scan(str(proj), "--format", "sarif")
    log = json.loads(out)
    checker = jsonschema.Draft202012Validator(
        SARIF_STRUCTURE, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(checker.iter_errors(log), key=str)
    assert errors == [], errors[0]
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["version"] == package_version() and driver["version"][0].isdigit()
    rules = {r["id"]: r for r in driver["rules"]}
    for code, cls in RULES.items():
        assert rules[code]["help"]["markdown"] == rule_markdown(code)
        assert cls.MESSAGE in rules[code]["help"]["text"]
        assert rules[code]["fullDescription"]["text"] and "\n" not in \
            rules[code]["fullDescription"]["text"]
        assert "helpUri" not in rules[code] or rules[code]["helpUri"].startswith("https://")
    base = run["originalUriBaseIds"]["%SRCROOT%"]["uri"]
    assert base == Path(os.path.abspath(proj)).as_uri() + "/"
    uris = sorted(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                  for r in run["results"])
    assert uris == ["nb/a%20b.py", "src/train.py"]
    for r in run["results"]:
        assert r["locations"][0]["physicalLocation"]["artifactLocation"]["uriBaseId"] == \
            "%SRCROOT%"
        assert driver["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
    (note,) = run["invocations"][0]["toolExecutionNotifications"]
    assert note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "src/bad.py"


# --- the demo corpus ships with the package ----------------------------------------------------


def test_mine_demo_runs_from_any_folder(tmp_path: Path) -> None:
    from leakwatt.mining.demo import bundled_demo_dir

    assert bundled_demo_dir() == REPO / "data" / "demo"
    out, err = io.StringIO(), io.StringIO()
    with _cwd(tmp_path), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["mine", "--demo", "--no-history", "--jobs", "1", "--out", "mined",
                       "--cache-dir", "repos"])
    assert rc == 0, err.getvalue()
    with open(tmp_path / "mined" / "repos.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["name"], r["status"]) for r in rows] == [
        ("demo/gradtape-loop", "ok"), ("demo/hparam-search", "ok"), ("demo/kfold-cnn", "ok")]
    assert not (tmp_path / "data").exists()  # nothing expected in the current folder


def test_sarif_validates_against_the_official_schema_when_given(tmp_path: Path) -> None:
    """The official OASIS schema (sarif-schema-2.1.0.json, draft-04) is not shipped by any
    package on PyPI and is not ours to commit as a fixture, so this test runs where a copy is
    named by ``LEAKWATT_SARIF_SCHEMA`` (get it from https://docs.oasis-open.org/sarif/sarif/
    v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json); the structure test above always runs."""
    jsonschema = pytest.importorskip("jsonschema")
    where = os.environ.get("LEAKWATT_SARIF_SCHEMA")
    if not where:
        pytest.skip("LEAKWATT_SARIF_SCHEMA names no copy of the official SARIF 2.1.0 schema")
    schema = json.loads(Path(where).read_text(encoding="utf-8"))
    assert schema["properties"]["version"]["enum"] == ["2.1.0"], "not the 2.1.0 schema"
    proj = write(tmp_path / "p", {"src/train.py": IMR_LOOP, "src/bad.py": "def (:\n",
                                  "src/s.py": "import tensorflow as tf\n"
                                              "sess = tf.compat.v1.Session()\n"})
    _, out, _ = scan(str(proj), "--format", "sarif")
    checker = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = sorted(checker.iter_errors(json.loads(out)), key=str)
    assert errors == [], errors[0]
