"""The offline demo corpus: reproducible repositories whose mining finds the scripted smells."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from leakwatt.common import LeakwattError
from leakwatt.mining.demo import build_demo_corpus, load_spec
from leakwatt.mining.mine import mine_corpus
from leakwatt.params import MineParams

DEMO = Path(__file__).resolve().parent.parent / "data" / "demo"


def read(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_demo_builds_with_stable_shas(tmp_path):
    first = build_demo_corpus(DEMO, tmp_path / "a")
    second = build_demo_corpus(DEMO, tmp_path / "b")
    assert [e.name for e in first] == ["demo/gradtape-loop", "demo/hparam-search",
                                       "demo/kfold-cnn"]
    assert [e.commit for e in first] == [e.commit for e in second]
    assert all(len(e.commit) == 40 and Path(e.url).is_dir() for e in first)
    marker = tmp_path / "a" / "kfold-cnn" / ".git" / "index"
    before = marker.stat().st_mtime_ns
    assert build_demo_corpus(DEMO, tmp_path / "a") == first  # reused, not rebuilt
    assert marker.stat().st_mtime_ns == before


def test_demo_rebuilds_when_its_sources_change(tmp_path):
    demo = tmp_path / "demo"
    shutil.copytree(DEMO / "kfold-cnn", demo / "kfold-cnn")
    (before,) = build_demo_corpus(demo, tmp_path / "work")
    src = demo / "kfold-cnn" / "src" / "sweep.py"
    src.write_text(src.read_text() + "\n# tweak\n")
    (after,) = build_demo_corpus(demo, tmp_path / "work")
    assert after.commit != before.commit


def test_demo_spec_errors_name_file_and_field(tmp_path):
    project = tmp_path / "demo" / "p"
    project.mkdir(parents=True)
    (project / "history.yaml").write_text(
        "name: demo/p\ncommits:\n  - message: m\n    date: '2024-01-01T00:00:00+00:00'\n"
        "    write: {a.py: src/missing.py}\n")
    with pytest.raises(LeakwattError, match=r"history.yaml: commits\[1\].write.a.py: source"):
        load_spec(project)
    (project / "history.yaml").write_text(
        "name: demo/p\ncommits:\n  - message: m\n    date: 'x'\n    delete: [../escape.py]\n")
    with pytest.raises(LeakwattError, match="must be a relative path inside the repository"):
        load_spec(project)


def test_demo_mining_finds_the_scripted_smells(tmp_path):
    corpus = build_demo_corpus(DEMO, tmp_path / "repos")
    summary = mine_corpus(corpus, tmp_path / "out", tmp_path / "cache",
                          MineParams(jobs=1), progress=False)
    assert summary["failed"] == []
    rows = read(tmp_path / "out" / "repos.csv")
    assert [(r["name"], r["status"], r["history_commits"]) for r in rows] == [
        ("demo/gradtape-loop", "ok", "5"), ("demo/hparam-search", "ok", "5"),
        ("demo/kfold-cnn", "ok", "5")]
    instances = read(tmp_path / "out" / "instances.csv")
    assert [(i["repo"], i["path"], i["rule"], i["function"]) for i in instances] == [
        ("demo/gradtape-loop", "trainer/loop.py", "UTR", "evaluate"),
        ("demo/hparam-search", "search.py", "IMR", "random_search"),
        ("demo/kfold-cnn", "sweep.py", "IMR", "main")]
    events = read(tmp_path / "out" / "events.csv")
    assert [(e["repo"].split("/")[1], e["seq"], e["rule"], e["path"], e["event"], e["removal"])
            for e in events] == [
        ("gradtape-loop", "1", "UTR", "train_loop.py", "introduced", ""),
        ("gradtape-loop", "2", "UTR", "train_loop.py", "removed", "code_changed"),
        ("gradtape-loop", "3", "UTR", "train_loop.py", "introduced", ""),
        ("hparam-search", "1", "IMR", "search.py", "introduced", ""),
        ("hparam-search", "2", "IMR", "legacy_grid.py", "introduced", ""),
        ("hparam-search", "2", "UTR", "legacy_grid.py", "introduced", ""),
        ("hparam-search", "3", "IMR", "legacy_grid.py", "removed", "deleted_file"),
        ("hparam-search", "3", "UTR", "legacy_grid.py", "removed", "deleted_file"),
        ("kfold-cnn", "1", "IMR", "train.py", "introduced", ""),
        ("kfold-cnn", "3", "IMR", "train.py", "removed", "code_changed"),
        ("kfold-cnn", "4", "IMR", "sweep.py", "introduced", ""),
    ]
    leaks = read(tmp_path / "out" / "leak_commits.csv")
    assert [(c["repo"], c["matched"]) for c in leaks] == [
        ("demo/gradtape-loop", "memory leak"), ("demo/hparam-search", "oom"),
        ("demo/kfold-cnn", "memory growth;clear_session")]
    assert read(tmp_path / "out" / "scan_errors.csv") == []
