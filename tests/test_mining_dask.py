"""Mining on a Dask cluster (a real LocalCluster with two worker processes)."""

from __future__ import annotations

import csv
import socket

import pytest
from fixtures.mining.gitrepo import IMR_FIXED, IMR_LOOP, UTR_LOOP, GitRepo

from leakwatt.common import LeakwattError
from leakwatt.mining import mine
from leakwatt.mining.corpus import CorpusEntry
from leakwatt.mining.mine import OUTPUTS, mine_corpus
from leakwatt.params import MineParams

distributed = pytest.importorskip("distributed")

PARAMS = MineParams(jobs=1, rules=("IMR", "UTR"))


def read(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def corpus_of(tmp_path, n: int) -> list[CorpusEntry]:
    entries = []
    for i in range(n):
        repo = GitRepo(tmp_path / f"p{i}")
        repo.write("train.py", IMR_LOOP).commit("folds")
        if i % 2:
            repo.write("train.py", IMR_FIXED).commit("clear_session per fold")
        repo.write(f"loop{i}.py", UTR_LOOP).write("notes.txt", f"{i}\n").commit("loop")
        entries.append(CorpusEntry(str(repo.path), repo.git("rev-parse", "HEAD"), f"p{i}"))
    entries.append(CorpusEntry(str(tmp_path / "missing"), "a" * 40, "missing"))
    return entries


def without_seconds(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_dask_cluster_matches_local_processes(tmp_path):
    corpus = corpus_of(tmp_path, 3)
    local = mine_corpus(corpus, tmp_path / "local", tmp_path / "c1", PARAMS, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        kw = {"results_cache_dir": tmp_path / "results", "progress": False,
              "scheduler": cluster.scheduler_address}
        first = mine_corpus(corpus, tmp_path / "dask", tmp_path / "c2", PARAMS, **kw)
        with distributed.Client(cluster.scheduler_address) as client:
            ran_on = client.run(lambda: 1)
        again = mine_corpus(corpus, tmp_path / "dask2", tmp_path / "c2", PARAMS, **kw)
    assert len(ran_on) == 2
    for name in OUTPUTS:
        if name == "repos.csv":
            assert without_seconds(read(tmp_path / "local" / name)) == without_seconds(
                read(tmp_path / "dask" / name))
        else:
            assert (tmp_path / "local" / name).read_text() == (tmp_path / "dask" / name).read_text()
    assert [r["status"] for r in read(tmp_path / "dask" / "repos.csv")] == [
        "ok", "ok", "ok", "clone_failed"]
    assert {k: first[k] for k in ("mined", "cached", "by_status", "events")} == {
        "mined": 4, "cached": 0, "by_status": local["by_status"], "events": local["events"]}
    assert (again["mined"], again["cached"]) == (1, 3)  # only the failed one is tried again
    assert (tmp_path / "dask2" / "events.csv").read_text() == (
        tmp_path / "local" / "events.csv").read_text()


def test_unreachable_scheduler_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(mine, "DASK_CONNECT_TIMEOUT_S", 2)
    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    corpus = corpus_of(tmp_path, 1)
    with pytest.raises(LeakwattError, match="cannot connect to the Dask scheduler"):
        mine_corpus(corpus, tmp_path / "out", tmp_path / "c", PARAMS, progress=False,
                    scheduler=f"tcp://127.0.0.1:{port}")
    assert not (tmp_path / "out" / "repos.csv").exists()
