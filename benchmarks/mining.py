"""Mining throughput on local mirrors: pin scans, history walks, and the cost of growing a corpus.

Usage::

    python benchmarks/mining.py [--mirror-dir /work/.mirror] [--repos 10] [--jobs 0]
                                [--corpus-from-mirrors]

Takes ``--repos`` repositories of ``data/corpus.csv`` that have a mirror in ``--mirror-dir``
(plus one more for the re-mining step): by default a fixed set of modest-size Keras/TF projects,
topped up with the mirrored corpus repositories that have the fewest commits up to their pin.
``--corpus-from-mirrors`` takes every ``owner+name`` mirror in ``--mirror-dir`` as the corpus
instead (pinned at the mirror's ``HEAD``), for machines whose mirrors are not corpus projects.
Every run uses fresh temporary clone and result caches, so runs are independent. It prints:

1. repositories per minute at the pin: ``mine_corpus`` with ``history`` off, cold clones
   (cloned from the mirrors) -- clone + scan of every ``.py``/``.ipynb`` file;
2. commits per second in history: ``mine_corpus`` with ``history`` on, cold clones and no
   results cache, commits walked / wall time (end to end: clone, pin scan and history walk);
3. the re-mining cost ratio: mining the N repositories plus one more with the results cache
   that run 2 left, divided by run 2's time (the target is about 1/N);
4. the git side of the history walk alone (no detectors), on the N clones of run 2, three ways:
   git plumbing only (``git log`` + one ``diff-tree --stdin`` + one ``cat-file --batch``, what
   ``walk_history`` does), pydriller listing the commits plus the same plumbing, and pydriller
   alone (its per-commit diff of the modified files and their contents before and after). Each
   way reads every changed ``.py``/``.ipynb`` version; the first two must list the same commits.

All three use ``params.jobs`` worker processes (0 = all cores) as the ``mine`` stage does.
Wall times on a shared machine are noisy (13-20 %); the load average is printed with them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from leakwatt.common import LeakwattError  # noqa: E402
from leakwatt.mining.clone import find_mirror, repo_key  # noqa: E402
from leakwatt.mining.corpus import CorpusEntry, load_corpus  # noqa: E402
from leakwatt.mining.git import (  # noqa: E402
    BlobReader,
    CommitInfo,
    changed_files,
    list_commits,
    rev_parse_head,
    run_git,
)
from leakwatt.mining.history import PY_SUFFIXES, PYTHON_PATHSPEC  # noqa: E402
from leakwatt.mining.mine import mine_corpus  # noqa: E402
from leakwatt.params import MineParams  # noqa: E402

#: Modest-size repositories (17-310 commits, 1-49 Python files at the pin), in this order; the
#: last one is the repository added in step 3 when ``--repos 10``.
DEFAULT_REPOS = (
    "CyberZHG/keras-bert", "keras-rl/keras-rl", "divamgupta/image-segmentation-keras",
    "keon/deep-q-learning", "experiencor/keras-yolo3", "CyberZHG/keras-self-attention",
    "broadinstitute/keras-resnet", "titu1994/DenseNet", "qubvel/efficientnet",
    "keras-team/keras-applications", "philipperemy/keras-attention",
)


def commit_count(mirror: Path, commit: str) -> int:
    res = run_git(["rev-list", "--count", commit], cwd=mirror)
    out = res.stdout.decode().strip()
    return int(out) if res.returncode == 0 and out else 10**9


def mirror_corpus(mirror_dir: str) -> list[CorpusEntry]:
    """Every ``owner+name`` mirror in ``mirror_dir`` as a corpus entry pinned at its HEAD."""
    entries = []
    for folder in sorted(Path(mirror_dir).iterdir()):
        owner, plus, name = folder.name.partition("+")
        if not plus:
            continue
        entry = CorpusEntry(url=f"https://github.com/{owner}/{name}", commit="",
                            name=f"{owner}/{name}")
        mirror = find_mirror(entry.url, mirror_dir)
        head = rev_parse_head(mirror) if mirror is not None else None
        if head is not None:
            entries.append(CorpusEntry(url=entry.url, commit=head, name=entry.name))
    return entries


def choose(corpus: list[CorpusEntry], mirror_dir: str, n: int,
           names: tuple[str, ...] = DEFAULT_REPOS) -> list[CorpusEntry]:
    """``n`` mirrored corpus repositories: ``names`` first, then the smallest histories."""
    mirrored = {e.name: e for e in corpus if find_mirror(e.url, mirror_dir) is not None}
    chosen = [mirrored[name] for name in names if name in mirrored][:n]
    if len(chosen) < n:
        rest = sorted((e for e in mirrored.values() if e not in chosen),
                      key=lambda e: (commit_count(find_mirror(e.url, mirror_dir), e.commit),
                                     e.name))
        chosen += rest[: n - len(chosen)]
    if len(chosen) < n:
        raise LeakwattError(f"only {len(chosen)} corpus repositories have a mirror in "
                            f"{mirror_dir}; {n} needed")
    return chosen


def timed(corpus: list[CorpusEntry], work: Path, tag: str, params: MineParams,
          results: Path | None = None) -> tuple[float, dict]:
    start = time.perf_counter()
    summary = mine_corpus(corpus, work / f"out-{tag}", work / f"clones-{tag}", params,
                          results_cache_dir=results, progress=False)
    return time.perf_counter() - start, summary


def history_commits(out_dir: Path) -> int:
    import pandas as pd

    repos = pd.read_csv(out_dir / "repos.csv", dtype=str, keep_default_na=False)
    return int(pd.to_numeric(repos["history_commits"]).sum())


def _read_changes(repo: Path, commits: list[CommitInfo]) -> int:
    """Diff every non-merge commit (one ``diff-tree --stdin``) and read each changed Python
    blob once; returns the bytes read."""
    singles = [(c.sha, c.parents[0] if c.parents else None) for c in commits
               if len(c.parents) <= 1]
    blobs = {blob for changes in changed_files(repo, singles, PYTHON_PATHSPEC).values()
             for ch in changes for blob in (ch.old_blob, ch.new_blob) if blob}
    with BlobReader(repo) as reader:
        return sum(len(reader.read(blob) or b"") for blob in sorted(blobs))


def _pydriller_commits(repo: Path, pin: str) -> list[CommitInfo]:
    from pydriller import Repository

    return [CommitInfo(c.hash, tuple(c.parents), c.committer_date.isoformat(), c.msg or "")
            for c in Repository(str(repo), to_commit=pin, order="topo-order").traverse_commits()]


def _pydriller_alone(repo: Path, pin: str) -> int:
    from pydriller import Repository

    read = 0
    for commit in Repository(str(repo), to_commit=pin, order="topo-order").traverse_commits():
        if commit.merge:
            continue
        for mod in commit.modified_files:
            if (mod.new_path or mod.old_path or "").lower().endswith(PY_SUFFIXES):
                read += len(mod.source_code_before or "") + len(mod.source_code or "")
    return read


def walk_ways(clones: list[tuple[str, Path, str]]) -> None:
    """Step 4: the history walk's git side, three ways, on the same clones. Totals cover the
    clones that every way could walk; pydriller alone fails where a snapshot lacks a blob that
    its full patch needs."""
    try:
        import pydriller  # noqa: F401 - only this comparison needs it
    except ImportError:
        print("4. skipped: pydriller is not installed (pip install -e '.[bench]')")
        return
    timings = {"plumbing": 0.0, "pydriller list + plumbing": 0.0, "pydriller alone": 0.0}
    commits, walked, failed = 0, 0, []
    for name, repo, pin in clones:
        start = time.perf_counter()
        plumbed = list_commits(repo, pin)
        _read_changes(repo, plumbed)
        plumbing = time.perf_counter() - start
        start = time.perf_counter()
        listed = _pydriller_commits(repo, pin)
        _read_changes(repo, listed)
        listing = time.perf_counter() - start
        if listed != plumbed:
            raise SystemExit(f"{name}: git log and pydriller list different commits")
        start = time.perf_counter()
        try:
            _pydriller_alone(repo, pin)
        except Exception as exc:  # noqa: BLE001 - e.g. GitCommandError on a missing blob
            failed.append(f"{name} ({type(exc).__name__})")
            continue
        timings["pydriller alone"] += time.perf_counter() - start
        timings["plumbing"] += plumbing
        timings["pydriller list + plumbing"] += listing
        commits += len(plumbed)
        walked += 1
    base = timings["plumbing"] or float("nan")
    print(f"4. history walk without the detectors, {commits} commits of {walked} clones "
          "(same commits listed by git log and pydriller): " + ", ".join(
              f"{way} {secs:.2f} s ({secs / base:.1f}x)" for way, secs in timings.items()))
    if failed:
        print(f"   pydriller alone failed on {len(failed)} of {len(clones)} clones (left out of "
              "the totals): " + "; ".join(failed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirror-dir", default="/work/.mirror")
    parser.add_argument("--corpus", default=str(ROOT / "data" / "corpus.csv"))
    parser.add_argument("--repos", type=int, default=10,
                        help="repositories in the base corpus (one more is added in step 3)")
    parser.add_argument("--jobs", type=int, default=0, help="worker processes (0 = all cores)")
    parser.add_argument("--names", default="",
                        help="comma-separated owner/name list taken first (default: a fixed "
                             "set of Keras/TF projects)")
    parser.add_argument("--corpus-from-mirrors", action="store_true",
                        help="take the corpus from the mirrors in --mirror-dir, not --corpus")
    args = parser.parse_args(argv)
    if args.repos < 1:
        parser.error("--repos must be at least 1")
    try:
        corpus = (mirror_corpus(args.mirror_dir) if args.corpus_from_mirrors
                  else load_corpus(args.corpus))
        names = tuple(n.strip() for n in args.names.split(",") if n.strip()) or DEFAULT_REPOS
        picked = choose(corpus, args.mirror_dir, args.repos + 1, names)
    except LeakwattError as exc:
        print(f"mining benchmark: error: {exc}", file=sys.stderr)
        return 2
    base, grown = picked[:-1], picked
    n = len(base)
    scan_only = MineParams(mirror_dir=args.mirror_dir, history=False, jobs=args.jobs)
    full = MineParams(mirror_dir=args.mirror_dir, history=True, jobs=args.jobs)
    jobs = args.jobs or os.cpu_count() or 1
    source = "the mirrors" if args.corpus_from_mirrors else args.corpus
    print(f"mining benchmark ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC): "
          f"{n}+1 repositories of {source} from {args.mirror_dir}, jobs={jobs}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    print("repositories: " + ", ".join(e.name for e in base) + f"; added: {grown[-1].name}")
    with tempfile.TemporaryDirectory(prefix="leakwatt-bench-mining-") as tmp:
        work = Path(tmp)
        secs, summary = timed(base, work, "pin", scan_only)
        print(f"1. pin scan, history off, cold clones: {n} repositories in {secs:.1f} s "
              f"({summary['instances']} instances, {summary['scan_errors']} scan errors) "
              f"-> {n / secs * 60:.1f} repositories/min")
        results = work / "results"
        cold, summary = timed(base, work, "full", full, results)
        commits = history_commits(work / "out-full")
        print(f"2. history on, cold clones and results: {commits} commits of {n} repositories "
              f"in {cold:.1f} s ({summary['events']} events) -> {commits / cold:.1f} commits/s "
              "(end to end: clone + pin scan + history)")
        warm, summary = timed(grown, work, "full", full, results)
        print(f"3. re-mine after adding {grown[-1].name} ({history_commits(work / 'out-full')}"
              f" commits in all): {summary['mined']} mined, {summary['cached']} cached, "
              f"{warm:.1f} s vs {cold:.1f} s cold for {n} -> cost ratio {warm / cold:.3f} "
              f"(target about 1/{n} = {1 / n:.3f})")
        failed = [f"{f['name']}: {f['status']}" for f in summary["failed"]]
        if failed:
            print("not mined cleanly: " + "; ".join(failed))
        walk_ways([(e.name, work / "clones-full" / repo_key(e.url), e.commit) for e in base
                   if e.name not in {f["name"] for f in summary["failed"]}])
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
