"""History mining with and without the project index, side by side on local mirrors.

Usage::

    python benchmarks/history.py --names owner/name,owner/name [--mirror-dir /work/.mirror]
                                 [--rules IMR,UTR,DIR,US] [--jobs 1] [--max-commits 0]
                                 [--before-rev REV] [--repeat 1]
    python benchmarks/history.py --names owner/name,... --verify-index

For each repository (a mirror in ``--mirror-dir``, walked up to its ``HEAD``), in one process:

1. the walk before the project index (``--before-rev REV``: ``mining/history.py`` as it was
   at that commit of this repository, loaded from git; otherwise ``walk_history(...,
   project=False)``, each changed file scanned alone) and ``walk_history(..., project=True)``
   (the index updated per commit, dependent files re-compared), each with empty in-process
   caches, in alternating order (``--repeat N``: N walks per side, the order flipped each
   round, medians reported); wall and CPU time and commits/s;
2. the events of the two walks compared as multisets of (commit, path, event, rule, function,
   snippet). Every event only one walk has is checked against a project index built afresh
   (from ``git ls-tree``, as the pin scan builds it) at the commit and at its parent: it is
   *explained by cross-module resolution* when the file receives project facts on either side;
3. what each walk leaves alive at the pin (introductions minus removals, by rule, function
   and snippet) against a scan of the pin with the project index (what ``instances.csv``
   holds): the mismatches of each walk.

``--verify-index`` instead checks the incremental index: for every commit walked, the view
of every ``.py`` file (the project facts it receives) in the index the walk derived from the
parent's must equal its view in an index built from scratch from that commit's files. Prints
the commits and views compared and every difference; exit 1 when there is one.

Wall times on a shared machine are noisy (15-20 %); the load average is printed with them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import resource
import statistics
import sys
import time
import types
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from leakwatt.mining import scan as scan_module  # noqa: E402
from leakwatt.mining.clone import find_mirror  # noqa: E402
from leakwatt.mining.git import (  # noqa: E402
    MODE_SUBMODULE,
    BlobReader,
    list_tree,
    rev_parse_head,
    run_git,
)
from leakwatt.mining.history import is_python_path, walk_history  # noqa: E402
from leakwatt.mining.notebook import NotebookError, notebook_source  # noqa: E402
from leakwatt.mining.rules import project as project_module  # noqa: E402
from leakwatt.mining.rules.project import ProjectIndex, ProjectView  # noqa: E402


def event_key(e: dict) -> tuple:
    return (e["commit"], e["path"], e["event"], e["rule"], e["function"], e["snippet"])


class FreshIndexes:
    """Project indexes built from scratch at given commits (``ls-tree`` + blob reads)."""

    def __init__(self, repo: Path, reader: BlobReader, max_bytes: int) -> None:
        self.repo, self.reader, self.max_bytes = repo, reader, max_bytes
        self._cache: dict[str, tuple[ProjectIndex, dict[str, str]]] = {}

    def at(self, commit: str) -> tuple[ProjectIndex, dict[str, str]]:
        if commit not in self._cache:
            blobs, texts = {}, {}
            for entry in list_tree(self.repo, commit):
                path = entry.path.decode("utf-8", "backslashreplace")
                if entry.kind != "blob" or entry.mode == MODE_SUBMODULE or not is_python_path(
                        path):
                    continue
                blobs[path] = entry.sha
                data = self.reader.read(entry.sha) if path.endswith(".py") else None
                if data is not None and len(data) <= self.max_bytes:
                    with contextlib.suppress(UnicodeDecodeError):
                        texts[path] = data.decode("utf-8-sig")
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[commit] = (ProjectIndex(texts), blobs)
        return self._cache[commit]

    def view(self, commit: str | None, path: str) -> ProjectView | None:
        if commit is None:
            return None
        index, blobs = self.at(commit)
        if path not in blobs:
            return None
        if path.lower().endswith(".ipynb"):
            data = self.reader.read(blobs[path])
            try:
                code = notebook_source((data or b"").decode("utf-8-sig")).source
            except (NotebookError, UnicodeDecodeError):
                return None
            return index.view(path, code)
        return index.view(path)


def parent_of(repo: Path, commit: str) -> str | None:
    res = run_git(["rev-parse", "--verify", "--quiet", f"{commit}^1"], cwd=repo)
    return res.stdout.decode().strip() or None


def pin_findings(fresh: FreshIndexes, pin: str, rules: list[str], max_bytes: int) -> Counter:
    """(rule, function, snippet) of every finding at the pin, scanned with the project index."""
    index, blobs = fresh.at(pin)
    found: Counter = Counter()
    for path, blob in blobs.items():
        data = fresh.reader.read(blob)
        if data is None:
            continue
        result = scan_module.scan_bytes(data, path, rules=rules, max_bytes=max_bytes,
                                        project=fresh.view(pin, path))
        found.update((f.rule, f.function or "", " ".join((f.snippet or "").split()))
                     for f in result.findings)
    return found


def alive(events: list[dict]) -> Counter:
    count: Counter = Counter()
    for e in events:
        count[(e["rule"], e["function"], e["snippet"])] += 1 if e["event"] == "introduced" else -1
    return +count


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (git, scan workers): less
    sensitive than wall time to other jobs on a shared machine."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def clear_caches() -> None:
    """Empty the findings cache and the index's cache of recent parses."""
    scan_module.clear_cache()
    project_module._RECENT.clear()


def old_walk(rev: str) -> Callable[..., Any]:
    """``walk_history`` of ``mining/history.py`` at commit ``rev`` of this repository."""
    res = run_git(["show", f"{rev}:mining/history.py"], cwd=ROOT)
    if res.returncode != 0:
        raise SystemExit(f"history benchmark: git show {rev}:mining/history.py failed: "
                         f"{res.stderr.strip()}")
    module = types.ModuleType("leakwatt_history_before")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(res.stdout.decode(), f"{rev}:mining/history.py", "exec"), module.__dict__)
    return module.walk_history


def run_walk(repo: Path, pin: str, name: str, rules: list[str], jobs: int, max_commits: int,
             max_bytes: int, project: bool, before: Callable[..., Any] | None
             ) -> tuple[float, float, Any]:
    """One walk, caches emptied first: (wall seconds, CPU seconds, result)."""
    clear_caches()
    kwargs: dict[str, Any] = {"repo": name, "rules": rules, "max_commits": max_commits,
                              "max_bytes": max_bytes, "jobs": jobs}
    walk = walk_history
    if project:
        kwargs["project"] = True
    elif before is not None:
        walk = before
    else:
        kwargs["project"] = False
    start, cpu = time.perf_counter(), cpu_seconds()
    result = walk(repo, pin, **kwargs)
    return time.perf_counter() - start, cpu_seconds() - cpu, result


def bench(name: str, repo: Path, rules: list[str], jobs: int, max_commits: int,
          max_bytes: int, project_first: bool, before: Callable[..., Any] | None,
          repeat: int = 1) -> dict:
    pin = rev_parse_head(repo)
    if pin is None:
        raise SystemExit(f"{name}: no HEAD in {repo}")
    timings: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    results: dict[str, Any] = {}
    order = (True, False) if project_first else (False, True)
    for rep in range(repeat):
        for project in order if rep % 2 == 0 else order[::-1]:
            side = "after" if project else "before"
            wall, cpu, results[side] = run_walk(repo, pin, name, rules, jobs, max_commits,
                                                max_bytes, project, before)
            timings[side].append((wall, cpu))
    t0, c0 = (statistics.median(x) for x in zip(*timings["before"], strict=True))
    t1, c1 = (statistics.median(x) for x in zip(*timings["after"], strict=True))
    before, after = results["before"], results["after"]
    b = Counter(event_key(e) for e in before.events)
    a = Counter(event_key(e) for e in after.events)
    only_before, only_after = b - a, a - b
    explained = unexplained = 0
    examples = []
    with BlobReader(repo) as reader:
        fresh = FreshIndexes(repo, reader, max_bytes)
        for key, n in (only_before + only_after).items():
            commit, path = key[0], key[1]
            views = (fresh.view(commit, path), fresh.view(parent_of(repo, commit), path))
            if any(v is not None for v in views):
                explained += n
            else:
                unexplained += n
                examples.append(key)
        at_pin = pin_findings(fresh, pin, rules, max_bytes)
    mismatch = {side: sum(((alive(res.events) - at_pin) + (at_pin - alive(res.events))).values())
                for side, res in (("before", before), ("after", after))}
    return {"name": name, "commits": after.commits, "python_commits": after.python_commits,
            "t_before": t0, "t_after": t1, "cpu_before": c0, "cpu_after": c1,
            "events_before": len(before.events),
            "events_after": len(after.events), "only_before": sum(only_before.values()),
            "only_after": sum(only_after.values()), "explained": explained,
            "unexplained": unexplained, "examples": examples[:5],
            "via": sum(1 for e in after.events if e.get("via")),
            "dependent_checks": after.dependent_checks, "pin_findings": sum(at_pin.values()),
            "pin_mismatch_before": mismatch["before"], "pin_mismatch_after": mismatch["after"]}


def verify_index(name: str, repo: Path, max_bytes: int) -> int:
    """Compare the walk's incremental index with one built afresh, at every commit (the
    detectors are not run: only the index is checked)."""
    from leakwatt.mining import history

    pin = rev_parse_head(repo)
    checked = {"commits": 0, "views": 0}
    differences: list[str] = []
    saved = (history.ProjectTracker._apply, history.BlobScanner.prefetch,
             history.BlobScanner.findings)

    def checking(self: Any, old: Any, changes: Any) -> Any:
        tree, comparisons = saved[0](self, old, changes)
        texts = {p: self._text(b) for p, b in tree.blobs.items() if p.endswith(".py")}
        fresh = ProjectIndex({p: t for p, t in texts.items() if t is not None})
        for path in texts:
            checked["views"] += 1
            mine, theirs = tree.index.view(path), fresh.view(path)
            if (mine.symbols if mine else {}) != (theirs.symbols if theirs else {}):
                differences.append(path)
        checked["commits"] += 1
        return tree, comparisons

    history.ProjectTracker._apply = checking  # type: ignore[method-assign]
    history.BlobScanner.prefetch = lambda self, items: None  # type: ignore[method-assign]
    history.BlobScanner.findings = lambda self, blob, path, view=None: []  # type: ignore
    try:
        history.walk_history(repo, pin, repo=name, rules=["IMR"], max_bytes=max_bytes)
    finally:
        (history.ProjectTracker._apply, history.BlobScanner.prefetch,
         history.BlobScanner.findings) = saved  # type: ignore[method-assign]
    print(f"{name}: {checked['commits']} commits, {checked['views']} views "
          f"compared with a fresh index: {len(differences)} differ")
    for path in differences[:10]:
        print(f"    differs: {path}")
    return len(differences)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirror-dir", default="/work/.mirror")
    parser.add_argument("--names", required=True, help="comma-separated owner/name list")
    parser.add_argument("--rules", default="IMR,UTR,DIR,US")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--max-commits", type=int, default=0)
    parser.add_argument("--max-kb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=1,
                        help="walks per side and repository, alternating; medians reported")
    parser.add_argument("--verify-index", action="store_true",
                        help="check the walk's incremental index against fresh ones")
    parser.add_argument("--before-rev", default="",
                        help="run the walk of mining/history.py at this commit of this "
                             "repository as the 'without index' side")
    args = parser.parse_args(argv)
    before = old_walk(args.before_rev) if args.before_rev else None
    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    names = [n.strip() for n in args.names.split(",") if n.strip()]
    repos = []
    for name in names:
        mirror = find_mirror(f"https://github.com/{name}", args.mirror_dir)
        if mirror is None:
            print(f"history benchmark: error: no mirror of {name} in {args.mirror_dir}",
                  file=sys.stderr)
            return 2
        repos.append((name, mirror))
    if args.verify_index:
        bad = sum(verify_index(name, mirror, args.max_kb * 1024) for name, mirror in repos)
        return 1 if bad else 0
    print(f"history benchmark ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC): "
          f"{len(repos)} mirrors from {args.mirror_dir}, rules {','.join(rules)}, "
          f"jobs={args.jobs}, {args.repeat} walk(s) per side (medians), {os.cpu_count()} "
          f"cores, load average {os.getloadavg()[0]:.1f} at start; without the index: "
          + (f"mining/history.py at {args.before_rev}" if before else "project=False"))
    rows = []
    for i, (name, mirror) in enumerate(repos):
        row = bench(name, mirror, rules, args.jobs, args.max_commits, args.max_kb * 1024,
                    project_first=bool(i % 2), before=before, repeat=args.repeat)
        rows.append(row)
        print(f"{name}: {row['commits']} commits ({row['python_commits']} touching Python); "
              f"without index {row['t_before']:.1f} s ({row['commits'] / row['t_before']:.1f} "
              f"commits/s), with index {row['t_after']:.1f} s "
              f"({row['commits'] / row['t_after']:.1f} commits/s), "
              f"{row['t_after'] / row['t_before']:.2f}x; CPU {row['cpu_before']:.1f} s -> "
              f"{row['cpu_after']:.1f} s, {row['cpu_after'] / row['cpu_before']:.2f}x")
        print(f"  events {row['events_before']} -> {row['events_after']}: "
              f"{row['only_before']} only without, {row['only_after']} only with the index; "
              f"{row['explained']} explained by cross-module resolution, "
              f"{row['unexplained']} not; {row['via']} events with via "
              f"({row['dependent_checks']} dependent-file comparisons)")
        for key in row["examples"]:
            print(f"    not explained: {key}")
        print(f"  alive at the pin vs the pin scan ({row['pin_findings']} findings): "
              f"{row['pin_mismatch_before']} mismatches without the index, "
              f"{row['pin_mismatch_after']} with it")
    commits = sum(r["commits"] for r in rows)
    t0 = sum(r["t_before"] for r in rows)
    t1 = sum(r["t_after"] for r in rows)
    c0 = sum(r["cpu_before"] for r in rows)
    c1 = sum(r["cpu_after"] for r in rows)
    print(f"total: {commits} commits; without index {t0:.1f} s ({commits / t0:.1f} commits/s), "
          f"with index {t1:.1f} s ({commits / t1:.1f} commits/s), {t1 / t0:.2f}x; "
          f"CPU {c0:.1f} s ({commits / c0:.1f} commits per CPU second) -> {c1:.1f} s "
          f"({commits / c1:.1f}), {c1 / c0:.2f}x; "
          f"events differing {sum(r['only_before'] + r['only_after'] for r in rows)}, "
          f"explained {sum(r['explained'] for r in rows)}, "
          f"not explained {sum(r['unexplained'] for r in rows)}")
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
