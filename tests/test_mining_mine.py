"""Mining a corpus: tables, statuses for bad repositories, the results cache, parallelism."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest
from fixtures.mining.gitrepo import IMR_FIXED, IMR_LOOP, PY2, UTR_LOOP, GitRepo

from leakwatt.mining.corpus import CorpusEntry
from leakwatt.mining.mine import OUTPUTS, mine_corpus
from leakwatt.params import MineParams

PARAMS = MineParams(jobs=1, rules=("IMR", "UTR"))


def read(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def entry(repo: GitRepo, name: str, commit: str | None = None) -> CorpusEntry:
    return CorpusEntry(url=str(repo.path), commit=commit or repo.git("rev-parse", "HEAD"),
                       name=name)


def smelly_repo(path, extra: str = "") -> GitRepo:
    repo = GitRepo(path)
    repo.write("train.py", IMR_LOOP).commit("folds")
    repo.write("train.py", IMR_FIXED).write("loop.py", UTR_LOOP).commit(
        "clear_session per fold; add loop" + extra)
    return repo


def test_tables_and_headers(tmp_path):
    repo = smelly_repo(tmp_path / "proj")
    summary = mine_corpus([entry(repo, "proj")], tmp_path / "out", tmp_path / "cache", PARAMS,
                          progress=False)
    for name, columns in OUTPUTS.items():
        with open(tmp_path / "out" / name, encoding="utf-8") as fh:
            assert fh.readline().strip().split(",")[: len(columns)] == columns
    (row,) = read(tmp_path / "out" / "repos.csv")
    assert (row["status"], row["py_files"], row["notebooks"], row["files"]) == ("ok", "2", "0", "2")
    assert float(row["kloc"]) > 0 and row["history_commits"] == "2"
    instances = read(tmp_path / "out" / "instances.csv")
    assert [(i["repo"], i["path"], i["rule"], i["function"]) for i in instances] == [
        ("proj", "loop.py", "UTR", "train")]
    assert instances[0]["line"].isdigit()
    events = read(tmp_path / "out" / "events.csv")
    assert [(e["rule"], e["path"], e["event"], e["removal"]) for e in events] == [
        ("IMR", "train.py", "introduced", ""), ("UTR", "loop.py", "introduced", ""),
        ("IMR", "train.py", "removed", "code_changed")]
    assert [c["matched"] for c in read(tmp_path / "out" / "leak_commits.csv")] == ["clear_session"]
    assert summary["instances"] == 1 and summary["events"] == 3 and summary["failed"] == []


def test_py2_files_are_scanned_with_a_note_and_non_utf8_files_are_error_rows(tmp_path):
    repo = GitRepo(tmp_path / "proj")
    repo.write("legacy.py", PY2).write("latin1.py", b"# caf\xe9\nx = 1\n")
    repo.write("loop.py", UTR_LOOP).commit("mixed bag")
    mine_corpus([entry(repo, "proj")], tmp_path / "out", tmp_path / "cache", PARAMS,
                progress=False)
    (row,) = read(tmp_path / "out" / "repos.csv")
    assert row["status"] == "ok" and row["parse_errors"] == "1"  # latin1.py only
    errors = read(tmp_path / "out" / "scan_errors.csv")
    assert [e["path"] for e in errors] == ["latin1.py", "legacy.py"]
    assert all(e["error"] and e["repo"] == "proj" for e in errors)
    note = errors[1]["error"]
    line = (repo.path / "legacy.py").read_text().splitlines().index('print "training"') + 1
    assert note.startswith("note: python2: ") and f"print statement at line {line}" in note
    instances = read(tmp_path / "out" / "instances.csv")
    assert [i["rule"] for i in instances if i["path"] == "loop.py"] == ["UTR"]


def test_odd_files_are_recorded_not_fatal(tmp_path):
    repo = GitRepo(tmp_path / "proj")
    repo.write("big.py", "x = 1\n" * 400)
    repo.write("loop.py", UTR_LOOP)
    (repo.path / "link.py").symlink_to("link.py")  # a symlink loop
    repo.write("raw/data.py", b"\0\1\2" * 100)  # binary content under a .py name
    sub = GitRepo(tmp_path / "sub")
    sub_head = sub.write("m.py", "z = 3\n").commit("sub")
    repo.git("add", "--all")
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{sub_head},vendor/sub")
    repo.commit("odd files", add=False)
    params = MineParams(jobs=1, rules=("IMR", "UTR"), max_file_kb=1)
    mine_corpus([entry(repo, "proj")], tmp_path / "out", tmp_path / "cache", params,
                progress=False)
    (row,) = read(tmp_path / "out" / "repos.csv")
    assert row["status"] == "ok", row
    errors = {e["path"]: e["error"] for e in read(tmp_path / "out" / "scan_errors.csv")}
    assert errors["big.py"].startswith("skipped: 2400 bytes is over max_file_kb")
    assert errors["link.py"] == "skipped: symbolic link (not followed)"
    assert errors["vendor/sub"] == "skipped: submodule (not scanned)"
    assert "raw/data.py" in errors  # binary: skipped or an error, but recorded
    assert [i["path"] for i in read(tmp_path / "out" / "instances.csv")] == ["loop.py"]


def test_non_utf8_path(tmp_path):
    repo = GitRepo(tmp_path / "proj")
    name = b"caf\xe9.py"
    (repo.path / name.decode("utf-8", "surrogateescape")).write_bytes(UTR_LOOP.encode())
    repo.commit("latin-1 file name")
    mine_corpus([entry(repo, "proj")], tmp_path / "out", tmp_path / "cache", PARAMS,
                progress=False)
    errors = read(tmp_path / "out" / "scan_errors.csv")
    assert [(e["path"], e["error"].split(":")[0]) for e in errors] == [("caf\\xe9.py", "warning")]
    assert [i["path"] for i in read(tmp_path / "out" / "instances.csv")] == ["caf\\xe9.py"]


def test_bad_repositories_become_rows(tmp_path):
    good = smelly_repo(tmp_path / "good")
    empty = tmp_path / "empty"
    subprocess.run(["git", "init", "--quiet", str(empty)], check=True)
    docs = GitRepo(tmp_path / "docs")
    docs.write("README.md", "hello\n").commit("docs only")
    corpus = [
        CorpusEntry(str(tmp_path / "missing"), "a" * 40, "missing"),
        CorpusEntry(str(good.path), "0123456789" * 4, "vanished"),
        CorpusEntry(str(empty), "b" * 40, "empty"),
        entry(docs, "docs"),
        entry(good, "good"),
        CorpusEntry("https://git.example.invalid/o/r", "c" * 40, "offline"),
    ]
    summary = mine_corpus(corpus, tmp_path / "out", tmp_path / "cache", PARAMS, progress=False)
    rows = read(tmp_path / "out" / "repos.csv")
    assert [(r["name"], r["status"]) for r in rows] == [
        ("missing", "clone_failed"), ("vanished", "commit_missing"), ("empty", "empty"),
        ("docs", "no_python"), ("good", "ok"), ("offline", "clone_failed")]
    assert all(r["reason"] for r in rows if r["status"] != "ok")
    assert {f["name"] for f in summary["failed"]} == {"missing", "vanished", "empty", "offline"}
    assert summary["by_status"]["ok"] == 1


def test_cache_remines_only_new_repositories(tmp_path):
    repos = [smelly_repo(tmp_path / f"p{i}") for i in range(3)]
    corpus = [entry(r, f"p{i}") for i, r in enumerate(repos)]
    kw = {"cache_dir": tmp_path / "clones", "params": PARAMS,
          "results_cache_dir": tmp_path / "results", "progress": False}
    first = mine_corpus(corpus[:2], tmp_path / "out1", **kw)
    assert (first["mined"], first["cached"]) == (2, 0)
    second = mine_corpus(corpus[:2], tmp_path / "out2", **kw)
    assert (second["mined"], second["cached"]) == (0, 2)
    for name in OUTPUTS:
        if name != "repos.csv":  # repos.csv differs only in nothing: seconds come from the cache
            assert (tmp_path / "out1" / name).read_text() == (tmp_path / "out2" / name).read_text()
    assert (tmp_path / "out1" / "repos.csv").read_text() == (
        tmp_path / "out2" / "repos.csv").read_text()
    third = mine_corpus(corpus, tmp_path / "out3", **kw)
    assert (third["mined"], third["cached"]) == (1, 2)
    assert [r["name"] for r in read(tmp_path / "out3" / "repos.csv")] == ["p0", "p1", "p2"]
    changed = mine_corpus(corpus, tmp_path / "out4", **{**kw, "params": MineParams(
        jobs=1, rules=("IMR", "UTR"), max_commits=1)})
    assert changed["mined"] == 3  # a params change invalidates every cached result


def test_failures_are_not_cached(tmp_path):
    corpus = [CorpusEntry(str(tmp_path / "later"), "a" * 40, "later")]
    kw = {"cache_dir": tmp_path / "clones", "params": PARAMS,
          "results_cache_dir": tmp_path / "results", "progress": False}
    assert mine_corpus(corpus, tmp_path / "out", **kw)["by_status"] == {"clone_failed": 1}
    repo = smelly_repo(tmp_path / "later")
    fixed = [entry(repo, "later")]
    assert mine_corpus(fixed, tmp_path / "out", **kw)["by_status"] == {"ok": 1}


def test_parallel_matches_sequential(tmp_path):
    repos = [smelly_repo(tmp_path / f"p{i}") for i in range(3)]
    corpus = [entry(r, f"p{i}") for i, r in enumerate(repos)]
    mine_corpus(corpus, tmp_path / "seq", tmp_path / "c1", PARAMS, progress=False)
    par = MineParams(jobs=2, rules=("IMR", "UTR"))
    mine_corpus(corpus, tmp_path / "par", tmp_path / "c2", par, progress=False)
    for name in OUTPUTS:
        if name == "repos.csv":
            strip = [{k: v for k, v in r.items() if k != "seconds"}
                     for r in read(tmp_path / "seq" / name)]
            assert strip == [{k: v for k, v in r.items() if k != "seconds"}
                             for r in read(tmp_path / "par" / name)]
        else:
            assert (tmp_path / "seq" / name).read_text() == (tmp_path / "par" / name).read_text()


def test_history_off(tmp_path):
    repo = smelly_repo(tmp_path / "proj")
    params = MineParams(jobs=1, rules=("IMR", "UTR"), history=False)
    summary = mine_corpus([entry(repo, "proj")], tmp_path / "out", tmp_path / "c", params,
                          progress=False)
    assert summary["events"] == 0 and summary["instances"] == 1
    assert read(tmp_path / "out" / "repos.csv")[0]["history_commits"] == "0"


def test_notebook_instances_carry_the_cell(tmp_path):
    import json

    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# Training\n"]},
             {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
              "source": UTR_LOOP.lstrip("\n").splitlines(keepends=True)}]
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    repo = GitRepo(tmp_path / "nb")
    repo.write("explore.ipynb", json.dumps(notebook, indent=1)).commit("notebook")
    mine_corpus([entry(repo, "nb")], tmp_path / "out", tmp_path / "c", PARAMS, progress=False)
    (row,) = read(tmp_path / "out" / "repos.csv")
    assert (row["status"], row["py_files"], row["notebooks"]) == ("ok", "0", "1")
    (inst,) = read(tmp_path / "out" / "instances.csv")
    assert (inst["path"], inst["rule"], inst["cell"]) == ("explore.ipynb", "UTR", "2")  # 1-based, all cells
    assert [e["event"] for e in read(tmp_path / "out" / "events.csv")] == ["introduced"]


def test_a_notebook_over_max_file_kb_with_small_code_is_mined(tmp_path):
    import json

    plot = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "A" * 4000}}
    cells = [{"cell_type": "code", "metadata": {}, "execution_count": 1, "outputs": [plot],
              "source": UTR_LOOP.lstrip("\n").splitlines(keepends=True)}]
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    repo = GitRepo(tmp_path / "nb")
    repo.write("plots.ipynb", json.dumps(notebook)).write("big.py", "x = 1\n" * 400)
    repo.commit("a notebook of plots")
    params = MineParams(jobs=1, rules=("IMR", "UTR"), max_file_kb=1)
    mine_corpus([entry(repo, "nb")], tmp_path / "out", tmp_path / "c", params, progress=False)
    (inst,) = read(tmp_path / "out" / "instances.csv")
    assert (inst["path"], inst["rule"]) == ("plots.ipynb", "UTR")
    errors = {e["path"]: e["error"] for e in read(tmp_path / "out" / "scan_errors.csv")}
    assert set(errors) == {"big.py"}  # a .py file is still bounded by its size


def test_empty_corpus_writes_headers(tmp_path):
    summary = mine_corpus([], tmp_path / "out", tmp_path / "c", PARAMS, progress=False)
    assert summary["repositories"] == 0
    for name, columns in OUTPUTS.items():
        assert (tmp_path / "out" / name).read_text().strip().split(",") == columns


def drop_blob(repo: GitRepo, rev_path: str) -> str:
    """Delete the (loose) blob of ``rev:path`` from the repository's object store."""
    sha = repo.git("rev-parse", rev_path)
    (repo.path / ".git" / "objects" / sha[:2] / sha[2:]).unlink()
    return sha


def test_snapshot_missing_a_data_blob_is_still_mined(tmp_path):
    repo = GitRepo(tmp_path / "proj")
    repo.write("data/volume.bin", b"\x00\x01" * 5000).write("train.py", IMR_LOOP)
    intro = repo.commit("folds and data")
    repo.write("data/volume.bin", b"\x02\x03" * 5000).write("train.py", IMR_FIXED)
    repo.write("loop.py", UTR_LOOP)
    pin = repo.commit("clear_session per fold; new data")
    old = drop_blob(repo, f"{intro}:data/volume.bin")
    new = drop_blob(repo, f"{pin}:data/volume.bin")
    assert subprocess.run(["git", "cat-file", "-e", new], cwd=repo.path).returncode != 0
    summary = mine_corpus([entry(repo, "proj")], tmp_path / "out", tmp_path / "cache", PARAMS,
                          progress=False)
    (row,) = read(tmp_path / "out" / "repos.csv")
    assert row["status"] == "ok", row
    assert "1 file(s) missing" in row["reason"] and row["history_commits"] == "2"
    assert (row["files"], row["py_files"]) == ("3", "2")
    errors = read(tmp_path / "out" / "scan_errors.csv")
    assert [(e["path"], e["error"].split(":")[0]) for e in errors] == [
        ("data/volume.bin", "missing")]
    assert new[:12] in errors[0]["error"] and old != new
    assert [i["rule"] for i in read(tmp_path / "out" / "instances.csv")] == ["UTR"]
    events = read(tmp_path / "out" / "events.csv")
    assert [(e["rule"], e["event"], e["commit"]) for e in events] == [
        ("IMR", "introduced", intro), ("UTR", "introduced", pin), ("IMR", "removed", pin)]
    assert summary["failed"] == []


def test_missing_python_blob_is_an_error_row_not_a_guess(tmp_path):
    repo = GitRepo(tmp_path / "proj")
    repo.write("README.md", "x\n").write("train.py", IMR_LOOP).write("loop.py", UTR_LOOP)
    pin = repo.commit("scripts")
    drop_blob(repo, f"{pin}:train.py")
    mine_corpus([entry(repo, "proj")], tmp_path / "out", tmp_path / "cache", PARAMS,
                progress=False)
    (row,) = read(tmp_path / "out" / "repos.csv")
    assert row["status"] == "ok" and "1 file(s) missing" in row["reason"]
    assert "history: 1 blob(s) missing" in row["reason"]
    assert [(e["path"], e["error"].split(":")[0])
            for e in read(tmp_path / "out" / "scan_errors.csv")] == [("train.py", "missing")]
    assert [(e["rule"], e["path"]) for e in read(tmp_path / "out" / "events.csv")] == [
        ("UTR", "loop.py")]


def test_many_cores_few_repositories_scan_history_in_parallel(tmp_path):
    repos = []
    for r in range(2):
        repo = GitRepo(tmp_path / f"p{r}")
        for i in range(12):  # enough distinct blobs for the history scan to use a pool
            repo.write(f"m{i}.py", IMR_LOOP.replace("folds=3", f"folds={i + r}"))
            repo.write("loop.py", UTR_LOOP if i % 2 else UTR_LOOP.replace("losses", "ls"))
            repo.commit(f"step {i}")
        repos.append(repo)
    corpus = [entry(r, f"p{i}") for i, r in enumerate(repos)]
    mine_corpus(corpus, tmp_path / "seq", tmp_path / "c1", PARAMS, progress=False)
    wide = MineParams(jobs=4, rules=("IMR", "UTR"))  # 2 workers, each scanning with 2 more
    mine_corpus(corpus, tmp_path / "par", tmp_path / "c2", wide, progress=False)
    for name in OUTPUTS:
        if name != "repos.csv":
            assert (tmp_path / "seq" / name).read_text() == (tmp_path / "par" / name).read_text()
    assert len(read(tmp_path / "par" / "events.csv")) > 20


def test_unknown_rule_in_params_is_one_line_before_any_clone(tmp_path: Path) -> None:
    from leakwatt.common import LeakwattError

    entry = CorpusEntry(url="https://github.com/o/never-cloned", commit="a" * 40, name="o/never-cloned",
                        domain="", why="")
    with pytest.raises(LeakwattError, match="unknown rule id.*NOPE"):
        mine_corpus([entry], tmp_path / "out", tmp_path / "clones", MineParams(rules=("NOPE",)),
                    progress=False)
    assert not (tmp_path / "clones").exists() or not any((tmp_path / "clones").iterdir())
