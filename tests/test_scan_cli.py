"""`leakwatt scan` through leakwatt.mining.lint.run on a folder of good, bad and unparsable files."""

from __future__ import annotations

import argparse
import io
import json
import shutil
from pathlib import Path

import pytest

from leakwatt.mining import lint
from leakwatt.mining.rules import RULES
from leakwatt.mining.rules.catalogue import anchor
from leakwatt.mining.scan import ScanReport

FIXTURES = Path(__file__).parent / "fixtures" / "scan" / "project"


def _run(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    lint.add_arguments(parser)
    args = parser.parse_args(list(argv))
    args.stdout, args.stderr = io.StringIO(), io.StringIO()
    rc = lint.run(args)
    return rc, args.stdout.getvalue(), args.stderr.getvalue()


def test_json_reports_findings_and_errors_without_crashing() -> None:
    rc, out, _ = _run(str(FIXTURES), "--format", "json", "--jobs", "1")
    assert rc == 1
    data = json.loads(out)
    assert data["files_scanned"] == 8
    found = {(Path(f["path"]).name, f["rule"], f["line"], f["cell"]) for f in data["findings"]}
    assert found == {("imr_search.py", "IMR", 11, None), ("utr_loop.py", "UTR", 9, None),
                     ("notebook.ipynb", "IMR", 3, 3)}
    for f in data["findings"]:
        assert {"rule", "path", "line", "col", "message", "variant", "confidence"} <= set(f)
    errors = {Path(e["path"]).name: e["error"] for e in data["errors"]}
    assert set(errors) == {"py2_script.py", "latin1.py", "blob.py"}
    assert "Python 2" in errors["py2_script.py"] and "line 2" in errors["py2_script.py"]
    assert "not UTF-8" in errors["latin1.py"]
    assert errors["blob.py"] == "binary file"


def test_select_and_ignore() -> None:
    rc, out, _ = _run(str(FIXTURES), "--format", "json", "--select", "utr")
    assert rc == 1
    assert {f["rule"] for f in json.loads(out)["findings"]} == {"UTR"}
    rc, out, _ = _run(str(FIXTURES / "sub"), "--format", "json", "--ignore", "UTR,IMR")
    # no findings, but sub/ holds files that cannot be scanned: exit 1, as ruff does
    assert rc == 1 and json.loads(out)["findings"] == [] and json.loads(out)["errors"]


def test_clean_file_exits_zero_and_text_format() -> None:
    rc, out, err = _run(str(FIXTURES / "clean.py"))
    assert rc == 0 and out == ""
    assert "0 finding(s) in 1 file(s)" in err
    rc, out, _ = _run(str(FIXTURES / "imr_search.py"))
    assert rc == 1
    assert out.startswith(f"{FIXTURES / 'imr_search.py'}:11:13: IMR ")


@pytest.mark.parametrize("argv", [["--select", "XYZ"], ["--ignore", "IMR,NOPE"]])
def test_usage_errors_exit_two(argv: list[str]) -> None:
    rc, _, err = _run(str(FIXTURES), *argv)
    assert rc == 2 and err.startswith("leakwatt: error: unknown rule id")


def test_missing_path_exits_two(tmp_path: Path) -> None:
    rc, _, err = _run(str(tmp_path / "missing.py"))
    assert rc == 2 and "no such file" in err


def test_sarif_is_well_formed() -> None:
    rc, out, _ = _run(str(FIXTURES), "--format", "sarif")
    log = json.loads(out)
    assert rc == 1 and log["version"] == "2.1.0"
    run = log["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == list(RULES)
    assert len(run["results"]) == 3
    region = run["results"][0]["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] >= 1 and region["startColumn"] >= 1
    assert len(run["invocations"][0]["toolExecutionNotifications"]) == 3


def test_diff_and_fix_rewrite_and_rescan_clean(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    shutil.copytree(FIXTURES, target)
    before = (target / "imr_search.py").read_text()
    rc, out, _ = _run(str(target / "imr_search.py"), "--diff")
    assert rc == 1
    assert "+    keras.backend.clear_session()" in out
    assert (target / "imr_search.py").read_text() == before  # --diff never writes

    rc, out, err = _run(str(target), "--fix", "--format", "json", "--jobs", "1")
    data = json.loads(out)
    assert "leakwatt: fixed 2 findings in 2 files" in err
    fixed = (target / "imr_search.py").read_text()
    assert "    keras.backend.clear_session()\n    model = build(units)" in fixed
    utr = (target / "sub" / "utr_loop.py").read_text()
    assert "losses.append(float(loss))" in utr
    assert "losses.append(loss * 2)  # leakwatt: ignore[UTR]" in utr  # suppressed: untouched
    # only the notebook (not auto-fixed) still has a finding
    assert rc == 1
    assert [Path(f["path"]).name for f in data["findings"]] == ["notebook.ipynb"]


def test_pre_commit_hook_definition() -> None:
    import yaml

    hooks = yaml.safe_load((Path(__file__).parents[1] / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "leakwatt-scan")
    assert hook["entry"].split()[:2] == ["leakwatt", "scan"]
    assert hook["language"] == "python"
    assert "python" in hook["types_or"] and "jupyter" in hook["types_or"]


def test_sarif_rule_names_are_pascal_case_identifiers() -> None:
    rules = lint.to_sarif(ScanReport())["runs"][0]["tool"]["driver"]["rules"]
    names = {r["id"]: r["name"] for r in rules}
    assert names["DIR"] == "DatasetIteratorRetention"  # NAME "Dataset-Iterator Retention"
    for code, cls in RULES.items():
        assert names[code].isidentifier() and names[code][0].isupper(), names[code]
        assert names[code].lower() == "".join(c for c in cls.NAME.lower() if c.isalnum())


DOCS = Path(__file__).parents[1] / "docs" / "rules.md"


def test_sarif_help_uri_is_absolute_or_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    """helpUri points at the rule's section of docs/rules.md in the project's repository (the
    distribution's Project-URL); without one it is left out and ``help`` carries the text."""
    monkeypatch.setattr(lint, "project_url", lambda: "https://example.org/leakwatt")
    rules = lint.to_sarif(ScanReport())["runs"][0]["tool"]["driver"]["rules"]
    for rule in rules:
        cls = RULES[rule["id"]]
        assert rule["helpUri"] == (
            f"https://example.org/leakwatt/blob/main/docs/rules.md#{anchor(cls)}")
        assert f"## {cls.CODE}: {cls.NAME}" in DOCS.read_text(encoding="utf-8")
        assert cls.MESSAGE in rule["help"]["text"]
    monkeypatch.setattr(lint, "project_url", lambda: None)
    for rule in lint.to_sarif(ScanReport())["runs"][0]["tool"]["driver"]["rules"]:
        assert "helpUri" not in rule and rule["help"]["markdown"]


def test_catalogue_anchor_matches_the_rendered_heading() -> None:
    assert anchor(RULES["DIR"]) == "dir-dataset-iterator-retention"


def test_project_url_reads_the_distribution_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    class Meta:
        def get_all(self, key: str) -> list[str]:
            assert key == "Project-URL"
            return ["Homepage, https://home.example", "Repository, https://git.example/lw/"]

    monkeypatch.setattr(lint.metadata, "metadata", lambda name: Meta())
    assert lint.project_url() == "https://git.example/lw"
