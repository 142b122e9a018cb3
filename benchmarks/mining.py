"""Mining throughput on local mirrors: pin scans, history walks, and the cost of growing a corpus.

Usage::

    python benchmarks/mining.py [--mirror-dir /work/.mirror] [--repos 10] [--jobs 0]

Takes ``--repos`` repositories of ``data/corpus.csv`` that have a mirror in ``--mirror-dir``
(plus one more for the re-mining step): by default a fixed set of modest-size Keras/TF projects,
topped up with the mirrored corpus repositories that have the fewest commits up to their pin.
Every run uses fresh temporary clone and result caches, so runs are independent. It prints:

1. repositories per minute at the pin: ``mine_corpus`` with ``history`` off, cold clones
   (cloned from the mirrors) -- clone + scan of every ``.py``/``.ipynb`` file;
2. commits per second in history: ``mine_corpus`` with ``history`` on, cold clones and no
   results cache, commits walked / wall time (end to end: clone, pin scan and history walk);
3. the re-mining cost ratio: mining the N repositories plus one more with the results cache
   that run 2 left, divided by run 2's time (the target is about 1/N).

All three use ``params.jobs`` worker processes (0 = all cores) as the ``mine`` stage does.
Wall times on a shared machine are noisy (13-20 %); the load average is printed with them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from leakwatt.common import LeakwattError  # noqa: E402
from leakwatt.mining.clone import find_mirror  # noqa: E402
from leakwatt.mining.corpus import CorpusEntry, load_corpus  # noqa: E402
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
    res = subprocess.run(["git", "rev-list", "--count", commit], cwd=mirror,
                         capture_output=True, text=True, check=False)
    return int(res.stdout.strip()) if res.returncode == 0 and res.stdout.strip() else 10**9


def choose(corpus: list[CorpusEntry], mirror_dir: str, n: int) -> list[CorpusEntry]:
    """``n`` mirrored corpus repositories: DEFAULT_REPOS first, then the smallest histories."""
    mirrored = {e.name: e for e in corpus if find_mirror(e.url, mirror_dir) is not None}
    chosen = [mirrored[name] for name in DEFAULT_REPOS if name in mirrored][:n]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirror-dir", default="/work/.mirror")
    parser.add_argument("--corpus", default=str(ROOT / "data" / "corpus.csv"))
    parser.add_argument("--repos", type=int, default=10,
                        help="repositories in the base corpus (one more is added in step 3)")
    parser.add_argument("--jobs", type=int, default=0, help="worker processes (0 = all cores)")
    args = parser.parse_args(argv)
    if args.repos < 1:
        parser.error("--repos must be at least 1")
    try:
        picked = choose(load_corpus(args.corpus), args.mirror_dir, args.repos + 1)
    except LeakwattError as exc:
        print(f"mining benchmark: error: {exc}", file=sys.stderr)
        return 2
    base, grown = picked[:-1], picked
    n = len(base)
    scan_only = MineParams(mirror_dir=args.mirror_dir, history=False, jobs=args.jobs)
    full = MineParams(mirror_dir=args.mirror_dir, history=True, jobs=args.jobs)
    jobs = args.jobs or os.cpu_count() or 1
    print(f"mining benchmark ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC): "
          f"{n}+1 repositories of {args.corpus} from {args.mirror_dir}, jobs={jobs}, "
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
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
