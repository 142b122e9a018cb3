"""Scan speed: ``leakwatt scan`` against ``ast.parse``, ``libcst.parse_module`` and semgrep.

One run, one set of files (default: keras 3.15's own sources, ``keras/src`` from the PyPI wheel,
downloaded once into ``benchmarks/.cache/``; ``--tree PATH`` scans another folder). Prints the
machine, then wall times for

* ``leakwatt scan`` through its real command line (all cores, a fresh findings cache), and the
  re-scan with that cache warm;
* ``ast.parse`` and ``libcst.parse_module`` of every file (in this process, one core, as in the
  figures of issue 3);
* semgrep with two leak rules (``benchmarks/semgrep/speed-rules.yaml``, ``--jobs`` = cores);

plus files/s, KLOC/s, the share of files (and lines) the pre-filter hands to libcst, and the
ratios leakwatt/ast, leakwatt/libcst, leakwatt/semgrep. ``--verify`` also checks that the
pre-filter changes no finding (whole-file scan of every file; slow). Timings on a shared machine
vary by 15-20 %: compare figures from the same run only.

    .venv/bin/python benchmarks/scan_speed.py [--tree PATH] [--repeat N] [--verify]

``--scaling`` instead checks that the scan time of one file grows linearly with its length: a
generated valid TF/Keras file of 10k and of 40k lines (the same mix of helper functions, a
model class, a training loop with findings), each scanned by the engine (pre-filter, libcst,
rules), best of ``--repeat``; the ratio should be near 4 (a quadratic path gives 16). Exit 1
when it is above 6.

    .venv/bin/python benchmarks/scan_speed.py --scaling [--repeat N]

``--arguments`` checks that a scan is linear in the number of its arguments (issue 19):
``N`` small files (default 4,000) scanned through the command line as one folder and as ``N``
explicit file arguments (what pre-commit passes), alternately, ``--repeat`` times; prints both
medians and their ratio. Exit 1 when the ratio is above 2.

    .venv/bin/python benchmarks/scan_speed.py --arguments [--files N] [--repeat N]

``--sandbox`` times what the sandbox (``leakwatt.mining.sandbox``: every file in a worker
process with memory and time limits, and the tokenizer guards before libcst) costs on the
normal path: the same files (``--tree``, default keras 3.15 sources) scanned by
``scan_paths`` as it is, and as it was before issue 19 (in this process with one job, a
``ProcessPoolExecutor`` otherwise; no guards), alternately, ``--repeat`` times each, for
``--jobs`` 1 and all cores; prints medians and the ratio sandboxed/unsandboxed.

    .venv/bin/python benchmarks/scan_speed.py --sandbox [--tree PATH] [--repeat N]

``--against REV`` times this checkout's scan against the code of another revision in the same
run (issue 21: the keras sources must scan within 1.3x of the time before the rule changes):
``git archive REV`` is installed without dependencies into a temporary folder, and the two
command lines (``python -m leakwatt.pipeline.cli scan TREE --format json``, a fresh cache
each) alternate ``--repeat`` times; prints each run with the load average before it, the
medians, their ratio and the findings per rule of each. Exit 1 when the ratio is above 1.3.

    .venv/bin/python benchmarks/scan_speed.py --against 4e15791 [--tree PATH] [--repeat N]
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CACHE = ROOT / "benchmarks" / ".cache"
KERAS_SPEC = "keras==3.15.*"
SEMGREP_RULES = ROOT / "benchmarks" / "semgrep" / "speed-rules.yaml"


def keras_tree() -> Path:
    """``keras/src`` of the keras 3.15 wheel, downloaded (not installed) on first use."""
    wheels = sorted(CACHE.glob("keras-3.15.*-py3-none-any.whl"))
    if not wheels:
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary",
                        ":all:", "--quiet", KERAS_SPEC, "-d", str(CACHE)], check=True)
        wheels = sorted(CACHE.glob("keras-3.15.*-py3-none-any.whl"))
    wheel = wheels[-1]
    dest = CACHE / wheel.name.removesuffix("-py3-none-any.whl")
    if not (dest / "keras" / "src").is_dir():
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(dest, [n for n in zf.namelist() if n.startswith("keras/src/")])
    return dest / "keras" / "src"


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{os.cpu_count()} cores ({model or platform.processor() or '?'}), "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
            f"load average {load}")


RUNS: dict[str, list[float]] = {}


def timed(label: str, fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median wall time of ``repeat`` calls (every run is kept in RUNS for the report)."""
    times, result = RUNS.setdefault(label, []), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def leakwatt_cmd() -> list[str]:
    script = Path(sys.executable).with_name("leakwatt")
    return [str(script)] if script.exists() else [sys.executable, "-m", "leakwatt.pipeline.cli"]


def run_leakwatt(tree: Path, cache_dir: Path) -> dict:
    out = subprocess.run([*leakwatt_cmd(), "scan", "--format", "json", "--cache-dir",
                          str(cache_dir), str(tree)], capture_output=True, text=True, cwd=ROOT)
    if out.returncode not in (0, 1):
        raise SystemExit(f"leakwatt scan failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def run_semgrep(semgrep: str, rules: Path, files: list[Path], jobs: int) -> dict:
    out = subprocess.run([semgrep, "scan", "--config", str(rules), "--metrics=off",
                          "--disable-version-check", "--json", "--quiet", "--jobs", str(jobs),
                          *map(str, files)], capture_output=True, text=True)
    if out.returncode not in (0, 1):
        raise SystemExit(f"semgrep failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def scaling_source(lines: int) -> str:
    """A valid Python file of about ``lines`` lines: helper functions calling each other, model
    classes and a training loop that builds a model per iteration (an IMR finding per block)."""
    head = "import tensorflow as tf\nfrom tensorflow import keras\n\n"
    block = ("def helper_{i}(x, scale={i}):\n"
             "    y = x * scale + {i}\n"
             "    if y > 10:\n"
             "        y = helper_{j}(y - 1)\n"
             "    return y\n\n"
             "class Net{i}(keras.Model):\n"
             "    def __init__(self):\n"
             "        super().__init__()\n"
             "        self.dense = keras.layers.Dense({i} % 7 + 1)\n\n"
             "    def call(self, x):\n"
             "        return self.dense(x)\n\n"
             "for trial_{i} in range(3):\n"
             "    model = keras.Sequential([keras.layers.Dense(helper_{i}(2))])\n"
             "    model.fit(xs, ys)\n\n")
    per = block.count("\n")
    n = max(1, (lines - head.count("\n")) // per)
    return head + "".join(block.format(i=i, j=max(0, i - 1)) for i in range(n))


def line_scaling(repeat: int = 3, sizes: tuple[int, int] = (10_000, 40_000)) -> int:
    """Print the scan time of a ``sizes[0]``- and a ``sizes[1]``-line file and their ratio;
    1 when the ratio is above 6 (not linear), else 0."""
    from leakwatt.mining.scan import scan_source

    times = []
    for lines in sizes:
        text = scaling_source(lines)
        best = float("inf")
        findings = 0
        for _ in range(max(1, repeat)):
            start = time.perf_counter()
            findings = len(scan_source(text, f"scaling_{lines}.py"))
            best = min(best, time.perf_counter() - start)
        times.append(best)
        print(f"{text.count(chr(10)):>6} lines, {len(text) / 1e6:.2f} MB: {best:7.2f} s "
              f"(best of {max(1, repeat)}), {findings} finding(s)")
    ratio = times[1] / times[0]
    print(f"ratio {sizes[1] // 1000}k/{sizes[0] // 1000}k lines: {ratio:.2f} "
          f"(linear: {sizes[1] / sizes[0]:.0f}; quadratic: {(sizes[1] / sizes[0]) ** 2:.0f})")
    return 0 if ratio <= 6 else 1


def argument_scaling(count: int = 4000, repeat: int = 3) -> int:
    """Print the CLI scan time of ``count`` small files as one folder and as ``count`` explicit
    arguments (alternating runs, medians) and their ratio; 1 when it is above 2, else 0."""
    print(f"scan arguments, {dt.datetime.now().isoformat(timespec='seconds')}")
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="leakwatt-args-") as tmp:
        folder = Path(tmp) / "proj"
        folder.mkdir()
        for i in range(count):
            body = (f"import tensorflow as tf\n\n\ndef step_{i}(x):\n    return x * {i}\n"
                    if i % 10 else
                    f"import tensorflow as tf\n\nfor trial in range(3):\n"
                    f"    model = tf.keras.Sequential()\n    model.fit(x{i}, y)\n")
            (folder / f"m{i:05d}.py").write_text(body)
        files = sorted(str(p) for p in folder.glob("*.py"))
        times: dict[str, list[float]] = {"folder": [], "arguments": []}
        findings: dict[str, int] = {}
        for _ in range(repeat):
            for label, paths in (("folder", [str(folder)]), ("arguments", files)):
                t0 = time.perf_counter()
                out = subprocess.run([*leakwatt_cmd(), "scan", "--format", "json", *paths],
                                     capture_output=True, text=True, cwd=ROOT)
                times[label].append(time.perf_counter() - t0)
                if out.returncode not in (0, 1):
                    raise SystemExit(f"leakwatt scan failed ({out.returncode}): "
                                     f"{out.stderr[-2000:]}")
                findings[label] = len(json.loads(out.stdout)["findings"])
    t_folder = statistics.median(times["folder"])
    t_args = statistics.median(times["arguments"])
    print(f"{count} files as one folder:        {t_folder:6.2f} s  ({findings['folder']} findings)")
    print(f"{count} files as {count} arguments: {t_args:6.2f} s  ({findings['arguments']} findings)")
    print(f"ratio arguments/folder: {t_args / t_folder:.2f} (target: within 2)")
    print("runs (s): " + "; ".join(f"{k} " + " ".join(f"{t:.2f}" for t in v)
                                   for k, v in times.items()))
    if findings["folder"] != findings["arguments"]:
        print("the two scans found different findings")
        return 1
    return 0 if t_args / t_folder <= 2 else 1


def sandbox_overhead(tree: Path, repeat: int = 3) -> int:
    """Print the time of ``scan_paths`` over ``tree`` sandboxed (as it is) and unsandboxed (as
    it was), alternating, for one job and all cores, and the ratios."""
    from concurrent.futures import ProcessPoolExecutor

    from leakwatt.mining import scan

    files = scan.iter_source_files([tree])
    print(f"sandbox overhead, {dt.datetime.now().isoformat(timespec='seconds')}")
    print(f"machine: {machine()}")
    print(f"tree: {tree} ({len(files)} files)")
    guard = scan.pathological
    codes = scan.select_rules(None)

    def before(jobs: int) -> tuple[int, int]:
        """scan_paths before issue 19: in this process for one job, else a process pool."""
        scan.pathological = lambda text: None  # type: ignore[assignment]
        try:
            views = scan.project_views([tree], files)
            args = [(str(f), codes, scan.DEFAULT_MAX_BYTES, None, v, scan.DEFAULT_FILE_BUDGET_S)
                    for f, v in zip(files, views, strict=True)]
            if jobs <= 1:
                results = [scan._worker(a) for a in args]
            else:
                order = sorted(range(len(files)), key=lambda i: -scan._size(files[i]))
                chunk = min(8, max(1, len(files) // (jobs * 32)))
                with ProcessPoolExecutor(max_workers=jobs) as pool:
                    results = list(pool.map(scan._worker, [args[i] for i in order],
                                            chunksize=chunk))
        finally:
            scan.pathological = guard  # type: ignore[assignment]
        return sum(len(r.findings) for r in results), sum(1 for r in results if r.error)

    def after(jobs: int) -> tuple[int, int]:
        report = scan.scan_paths([tree], jobs=jobs)
        return len(report.findings), len(report.errors)

    cores = os.cpu_count() or 1
    status = 0
    for jobs in sorted({1, cores}):
        times: dict[str, list[float]] = {"unsandboxed": [], "sandboxed": []}
        counts: dict[str, tuple[int, int]] = {}
        for _ in range(repeat):
            for label, fn in (("unsandboxed", before), ("sandboxed", after)):
                scan.clear_cache()
                t0 = time.perf_counter()
                counts[label] = fn(jobs)
                times[label].append(time.perf_counter() - t0)
        t_before = statistics.median(times["unsandboxed"])
        t_after = statistics.median(times["sandboxed"])
        print(f"--jobs {jobs}: unsandboxed {t_before:6.2f} s ({counts['unsandboxed'][0]} findings, "
              f"{counts['unsandboxed'][1]} errors); sandboxed {t_after:6.2f} s "
              f"({counts['sandboxed'][0]} findings, {counts['sandboxed'][1]} errors); "
              f"ratio {t_after / t_before:.2f}")
        print("  runs (s): " + "; ".join(f"{k} " + " ".join(f"{t:.2f}" for t in v)
                                         for k, v in times.items()))
        if counts["unsandboxed"] != counts["sandboxed"]:
            print("  the two scans differ in findings or errors")
            status = 1
    return status


#: the slowdown issue 21 allows the rule changes on the keras sources
AGAINST_LIMIT = 1.3


def install_revision(rev: str, into: Path) -> Path:
    """The package of revision ``rev`` (``git archive``) installed, without dependencies, into
    ``into/site``; returns that folder (put first on PYTHONPATH, it shadows this checkout)."""
    src, site = into / "src", into / "site"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(site), str(src)], check=True)
    return site


def against_revision(rev: str, tree: Path, repeat: int = 3) -> int:
    """This checkout's scan against revision ``rev``'s, alternating (see the module doc)."""
    print(f"scan speed against {rev}, {dt.datetime.now().isoformat(timespec='seconds')}")
    print(f"machine: {machine()}")
    work = Path(tempfile.mkdtemp(prefix="leakwatt-against-"))
    try:
        site = install_revision(rev, work)
        env_old = {**os.environ, "PYTHONPATH": str(site)}
        env_new = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        labels = {"before": (env_old, rev), "after": (env_new, f"HEAD {head} + work tree")}
        times: dict[str, list[float]] = {k: [] for k in labels}
        found: dict[str, dict[str, int]] = {}
        for i in range(repeat):
            for label in (("before", "after") if i % 2 == 0 else ("after", "before")):
                env, _ = labels[label]
                cache = work / f"cache-{label}-{i}"
                load = os.getloadavg()[0]
                t0 = time.perf_counter()
                out = subprocess.run([sys.executable, "-m", "leakwatt.pipeline.cli", "scan",
                                      "--format", "json", "--cache-dir", str(cache), str(tree)],
                                     capture_output=True, text=True, cwd=work, env=env)
                elapsed = time.perf_counter() - t0
                if out.returncode not in (0, 1):
                    raise SystemExit(f"{label}: scan failed ({out.returncode}): "
                                     f"{out.stderr[-2000:]}")
                report = json.loads(out.stdout)
                counts: dict[str, int] = {}
                for f in report["findings"]:
                    counts[f["rule"]] = counts.get(f["rule"], 0) + 1
                found[label] = counts
                times[label].append(elapsed)
                print(f"  round {i + 1} {label:6s} {elapsed:7.2f} s  (load before {load:.2f})")
        med = {k: statistics.median(v) for k, v in times.items()}
        ratio = med["after"] / med["before"]
        for label, (_, what) in labels.items():
            rules = ", ".join(f"{r} {n}" for r, n in sorted(found[label].items())) or "none"
            print(f"{label} ({what}): median {med[label]:.2f} s; findings: {rules}")
        print(f"ratio after/before: {ratio:.2f}x (limit {AGAINST_LIMIT}x)")
        return 0 if ratio <= AGAINST_LIMIT else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=None,
                        help="folder to scan (default: keras 3.15 sources, keras/src)")
    parser.add_argument("--semgrep-rules", type=Path, default=SEMGREP_RULES,
                        help="semgrep rules to time against (default: the two leak rules)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool; medians shown")
    parser.add_argument("--verify", action="store_true",
                        help="also check that the pre-filter changes no finding (slow)")
    parser.add_argument("--scaling", action="store_true",
                        help="only check that scan time is linear in a file's line count")
    parser.add_argument("--arguments", action="store_true",
                        help="only time a folder against its files given as arguments")
    parser.add_argument("--files", type=int, default=4000,
                        help="files for --arguments (default 4000)")
    parser.add_argument("--sandbox", action="store_true",
                        help="only time the sandboxed scan against the unsandboxed one")
    parser.add_argument("--against", metavar="REV",
                        help="only time this checkout's scan against revision REV's")
    args = parser.parse_args(argv)
    if args.against:
        return against_revision(args.against, (args.tree or keras_tree()).resolve(),
                                args.repeat if args.repeat > 1 else 3)
    if args.scaling:
        print(machine())
        return line_scaling(args.repeat if args.repeat > 1 else 3)
    if args.arguments:
        return argument_scaling(args.files, args.repeat if args.repeat > 1 else 3)
    if args.sandbox:
        return sandbox_overhead((args.tree or keras_tree()).resolve(),
                                args.repeat if args.repeat > 1 else 3)

    import libcst as cst

    from leakwatt.mining.prefilter import reduce_source
    from leakwatt.mining.scan import iter_source_files, scan_source

    tree = (args.tree or keras_tree()).resolve()
    files = [p for p in iter_source_files([tree]) if p.suffix == ".py"]
    texts: list[str] = []
    for p in files:
        try:
            texts.append(p.read_bytes().decode("utf-8-sig"))
        except (OSError, UnicodeDecodeError):
            texts.append("")
    lines = sum(t.count("\n") for t in texts)
    cores = os.cpu_count() or 1
    print(f"scan speed, {dt.datetime.now().isoformat(timespec='seconds')}")
    print(f"machine: {machine()}")
    print(f"tree: {tree} ({len(files)} .py files, {lines:,} lines)")

    # leakwatt, through the real command line: cold (empty cache), then warm.
    cache_dir = Path(tempfile.mkdtemp(prefix="leakwatt-speed-"))
    try:
        cold_times = RUNS.setdefault("leakwatt cold", [])
        report: dict = {}
        for _ in range(args.repeat):
            shutil.rmtree(cache_dir, ignore_errors=True)
            t0 = time.perf_counter()
            report = run_leakwatt(tree, cache_dir)
            cold_times.append(time.perf_counter() - t0)
        t_cold = statistics.median(cold_times)
        t_warm, _ = timed("leakwatt warm", lambda: run_leakwatt(tree, cache_dir), args.repeat)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)

    def parse_all_ast() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for t in texts:
                with contextlib.suppress(SyntaxError, ValueError):
                    ast.parse(t)

    def parse_all_cst() -> None:
        for t in texts:
            with contextlib.suppress(Exception):  # count the time, not the failures
                cst.parse_module(t)

    t_ast, _ = timed("ast.parse", parse_all_ast, args.repeat)
    t_cst, _ = timed("libcst", parse_all_cst, args.repeat)

    semgrep = shutil.which("semgrep") or str(Path(sys.executable).with_name("semgrep"))
    t_sg: float | None = None
    sg: dict = {}
    if Path(semgrep).exists():
        t_sg, sg = timed("semgrep", lambda: run_semgrep(semgrep, args.semgrep_rules, files, cores),
                         args.repeat)  # type: ignore[assignment]
    # What the pre-filter hands to libcst.
    parsed_files = parsed_lines = 0
    for t in texts:
        reduced = reduce_source(t)
        if reduced is None:
            parsed_files += 1
            parsed_lines += t.count("\n")
        elif reduced:
            parsed_files += 1
            parsed_lines += sum(1 for line in reduced.split("\n") if line.strip())
    nonblank = sum(sum(1 for line in t.split("\n") if line.strip()) for t in texts)

    print()
    print(f"leakwatt scan (CLI, {cores} processes, cold cache): {t_cold:7.2f} s  "
          f"{len(files) / t_cold:6.1f} files/s  {lines / 1000 / t_cold:6.1f} KLOC/s  "
          f"({len(report.get('findings', []))} findings, {len(report.get('errors', []))} "
          f"errors, {report.get('files_scanned', 0)} files)")
    print(f"leakwatt scan (CLI, warm cache re-scan):     {t_warm:7.2f} s")
    print(f"files parsed with libcst: {parsed_files}/{len(files)} "
          f"({parsed_files / max(len(files), 1):.0%}); non-blank lines handed to libcst: "
          f"{parsed_lines:,}/{nonblank:,} ({parsed_lines / max(nonblank, 1):.0%})")
    print(f"ast.parse, all files (1 process):          {t_ast:7.2f} s")
    print(f"libcst.parse_module, all files (1 process): {t_cst:7.2f} s")
    if t_sg is not None:
        print(f"semgrep {_semgrep_version(semgrep)}, 2 rules, --jobs {cores}:    {t_sg:7.2f} s  "
              f"({len(sg.get('results', []))} results, {len(sg.get('errors', []))} errors, "
              f"{len(sg.get('paths', {}).get('scanned', []))} files)")
    else:
        print("semgrep: not installed (pip install semgrep)")
    print()
    print(f"ratio leakwatt/ast.parse:    {t_cold / t_ast:6.2f}")
    print(f"ratio leakwatt/libcst parse: {t_cold / t_cst:6.2f}")
    if t_sg is not None:
        verdict = "at least as fast as" if t_cold <= t_sg else "SLOWER than"
        print(f"ratio leakwatt/semgrep:      {t_cold / t_sg:6.2f}  (leakwatt {verdict} semgrep)")
    if args.repeat > 1:
        print("runs (s): " + "; ".join(f"{k} " + " ".join(f"{t:.2f}" for t in v)
                                       for k, v in RUNS.items()))

    if args.verify:
        t0 = time.perf_counter()
        differ = []
        for p, t in zip(files, texts, strict=True):
            def run(prefilter: bool, text: str = t, path: Path = p) -> object:
                try:
                    return [f.to_dict() for f in scan_source(text, str(path), prefilter=prefilter)]
                except Exception as exc:  # noqa: BLE001 - errors must match too
                    return repr(exc)
            if run(True) != run(False):
                differ.append(p)
        print(f"\nverify: pre-filter vs whole-file scan differ on {len(differ)} file(s) "
              f"({time.perf_counter() - t0:.0f} s)")
        for p in differ[:20]:
            print(f"  {p}")
        if differ:
            return 1
    return 0


def _semgrep_version(semgrep: str) -> str:
    out = subprocess.run([semgrep, "--version"], capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "?"


if __name__ == "__main__":
    raise SystemExit(main())
