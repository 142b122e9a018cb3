"""History walking: events from purpose-built repositories, one scenario each."""

from __future__ import annotations

import pytest
from fixtures.mining.gitrepo import (
    CLEAN,
    IMR_FIXED,
    IMR_LOOP,
    IMR_MOVED,
    UTR_FIXED,
    UTR_LOOP,
    GitRepo,
)

from leakwatt.mining.history import leak_terms, normalise_snippet, walk_history


def events_of(result, rule=None):
    return [(e["event"], e["path"], e["removal"]) for e in result.events
            if rule is None or e["rule"] == rule]


def test_smell_fixed_later(tmp_path):
    repo = GitRepo(tmp_path / "r")
    repo.write("train.py", CLEAN).commit("initial trainer")
    intro = repo.write("train.py", IMR_LOOP).commit("train on folds")
    repo.write("README.md", "docs\n").commit("docs")
    fix = repo.write("train.py", IMR_FIXED).commit("clear the session between folds")
    result = walk_history(repo.path, fix, repo="r")
    assert [(e["event"], e["commit"], e["rule"], e["removal"]) for e in result.events] == [
        ("introduced", intro, "IMR", ""), ("removed", fix, "IMR", "code_changed")]
    introduced, removed = result.events
    assert introduced["function"] == removed["function"] == "train_folds"
    assert introduced["instance"] == removed["instance"]
    assert introduced["seq"] == 1 and removed["seq"] == 3
    assert introduced["date"].startswith("2024-01-02")
    assert result.commits == 4
    assert [c["commit"] for c in result.leak_commits] == []


def test_code_moved_within_file_is_not_a_removal(tmp_path):
    repo = GitRepo(tmp_path / "r")
    intro = repo.write("train.py", IMR_LOOP).commit("folds")
    pin = repo.write("train.py", IMR_MOVED).commit("reorder functions")
    result = walk_history(repo.path, pin, repo="r")
    assert [(e["event"], e["commit"]) for e in result.events] == [("introduced", intro)]


def test_file_deleted(tmp_path):
    repo = GitRepo(tmp_path / "r")
    repo.write("keep.py", CLEAN).write("legacy.py", UTR_LOOP).commit("add scripts")
    pin = repo.delete("legacy.py").commit("remove legacy script")
    result = walk_history(repo.path, pin, repo="r")
    assert events_of(result, "UTR") == [("introduced", "legacy.py", ""),
                                        ("removed", "legacy.py", "deleted_file")]
    assert result.events[-1]["commit"] == pin


def test_renamed_file_keeps_its_smell(tmp_path):
    repo = GitRepo(tmp_path / "r")
    repo.write("loop.py", UTR_LOOP).commit("loop")
    pin = repo.move("loop.py", "pkg/loop.py").write("pkg/__init__.py", "").commit("package")
    result = walk_history(repo.path, pin, repo="r")
    assert events_of(result) == [("introduced", "loop.py", "")]


def test_rename_then_fix_pairs_by_instance(tmp_path):
    repo = GitRepo(tmp_path / "r")
    repo.write("loop.py", UTR_LOOP).commit("loop")
    repo.move("loop.py", "pkg/loop.py").commit("package")
    pin = repo.write("pkg/loop.py", UTR_FIXED).commit("keep floats, not tensors")
    result = walk_history(repo.path, pin, repo="r")
    assert events_of(result) == [("introduced", "loop.py", ""),
                                 ("removed", "pkg/loop.py", "code_changed")]
    assert result.events[0]["instance"] == result.events[1]["instance"]


def test_smell_on_side_branch_merged(tmp_path):
    repo = GitRepo(tmp_path / "r")
    repo.write("train.py", CLEAN).commit("initial")
    repo.git("checkout", "--quiet", "-b", "feature")
    intro = repo.write("loop.py", UTR_LOOP).commit("loop on a branch")
    repo.git("checkout", "--quiet", "main")
    repo.write("README.md", "x\n").commit("docs on main")
    repo.git("merge", "--quiet", "--no-ff", "--no-edit", "feature")
    pin = repo.git("rev-parse", "HEAD")
    result = walk_history(repo.path, pin, repo="r")
    assert [(e["event"], e["commit"]) for e in result.events] == [("introduced", intro)]
    assert result.commits == 4


def test_max_commits_keeps_newest(tmp_path):
    repo = GitRepo(tmp_path / "r")
    repo.write("train.py", IMR_LOOP).commit("folds")
    repo.write("a.py", "x = 1\n").commit("a")
    pin = repo.write("train.py", IMR_FIXED).commit("fix")
    result = walk_history(repo.path, pin, repo="r", max_commits=2)
    assert result.commits == 2
    assert [(e["event"], e["commit"]) for e in result.events] == [("removed", pin)]


def test_leak_commit_messages(tmp_path):
    repo = GitRepo(tmp_path / "r")
    repo.write("a.py", "x = 1\n").commit("Fix memory leak in training loop")
    repo.write("a.py", "x = 2\n").commit("call clear_session between trials")
    repo.write("a.py", "x = 3\n").commit("Refactor data loader")
    pin = repo.write("a.py", "x = 4\n").commit("avoid OOM: gc.collect() after each epoch")
    result = walk_history(repo.path, pin, repo="r")
    assert [c["matched"] for c in result.leak_commits] == [
        "memory leak", "clear_session", "oom;gc.collect"]
    assert result.leak_commits[-1]["commit"] == pin


@pytest.mark.parametrize("message, terms", [
    ("Fix memory leak", ["memory leak"]),
    ("Out of memory on GPU", ["out of memory"]),
    ("ResourceExhaustedError when training", ["resourceexhaustederror"]),
    ("use tf.compat.v1.reset_default_graph()", ["reset_default_graph"]),
    ("del model after each fold", ["del model"]),
    ("Bloom filter for tokens", []),
    ("Zoom images", []),
    ("leaky relu activation", []),
])
def test_leak_terms(message, terms):
    assert leak_terms(message) == terms


def test_normalise_snippet():
    assert normalise_snippet("model  =\n   build_model( )") == "model = build_model( )"


def test_parallel_blob_scans_give_the_same_events(tmp_path, monkeypatch):
    import leakwatt.mining.history as history

    repo = GitRepo(tmp_path / "r")
    for i in range(10):
        repo.write(f"m{i}.py", IMR_LOOP.replace("folds=3", f"folds={i}"))
        repo.write("loop.py", UTR_LOOP if i % 2 else UTR_FIXED).commit(f"step {i}")
    pin = repo.delete("m3.py").commit("drop m3")
    sequential = walk_history(repo.path, pin, repo="r")
    pools = []
    real_pool = history.BlobScanner.prefetch

    def spy(self, items):
        items = list(items)
        pools.append(self.jobs > 1 and len({self.key(*item) for item in items}) >= 4 * self.jobs)
        return real_pool(self, items)

    monkeypatch.setattr(history, "CHUNK_COMMITS", 6)  # two batches
    monkeypatch.setattr(history.BlobScanner, "prefetch", spy)
    parallel = walk_history(repo.path, pin, repo="r", jobs=2)
    assert any(pools)
    assert parallel.events == sequential.events and parallel.commits == 11
    utr = [e["event"] for e in sequential.events if e["rule"] == "UTR"]
    assert utr == ["introduced", "removed"] * 4 + ["introduced"]
    assert len(sequential.events) == 10 + 9 + 1  # IMR per file, UTR in/out, m3 deleted


def test_uppercase_extension_and_data_files(tmp_path):
    repo = GitRepo(tmp_path / "r")
    repo.write("Train.PY", IMR_LOOP).write("weights.h5", b"\0\1" * 100).commit("upper case")
    pin = repo.write("Train.PY", IMR_FIXED).write("weights.h5", b"\2" * 100).commit("fix")
    result = walk_history(repo.path, pin, repo="r")
    assert events_of(result) == [("introduced", "Train.PY", ""),
                                 ("removed", "Train.PY", "code_changed")]


def test_a_commit_whose_tree_is_missing_gives_no_events_and_the_rest_is_walked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A partial snapshot (a mirror missing one tree object) loses that commit's comparison,
    counted in ``unreadable_commits``, not the whole repository's history."""
    import os

    from fixtures.mining.gitrepo import IMR_LOOP, GitRepo

    repo = GitRepo(tmp_path / "r")
    repo.write("a/train.py", IMR_LOOP).commit("smelly a")
    repo.write("b/other.py", "x = 1\n").commit("a file in a new folder")
    broken = repo.git("rev-parse", "HEAD:b")  # a tree only this commit introduces
    pin = repo.write("c/train.py", IMR_LOOP).commit("smelly c")
    obj = tmp_path / "r" / ".git" / "objects" / broken[:2] / broken[2:]
    assert obj.exists()  # a loose object (no pack in a fresh repository)
    os.chmod(obj, 0o644)
    obj.unlink()

    result = walk_history(tmp_path / "r", pin, repo="r", rules=["IMR"], jobs=1)
    assert result.commits == 3 and result.unreadable_commits >= 1
    introduced = {(e["path"], e["event"]) for e in result.events}
    assert ("a/train.py", "introduced") in introduced
    assert ("c/train.py", "introduced") in introduced
