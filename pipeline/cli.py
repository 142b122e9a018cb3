"""The `leakwatt` command line: one subcommand per study step, plus `scan`, `corpus`, `study` and
`export-mined` (a mined corpus as a result folder without code).

Each subcommand loads params.yaml (``--params``, ``--profile``), applies its flags on top and calls
the same functions in :mod:`leakwatt.pipeline.workflow` that the DVC stages call.

Imports of the study's libraries stay inside the subcommands on purpose: `leakwatt scan` and
`leakwatt --help` must not pay for pandas, scipy, matplotlib and the whole workflow.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from leakwatt.common import EXIT_OUTPUT_ERROR, LeakwattError, describe_os_error, package_version
from leakwatt.params import PROFILES, Params, load_params_or_defaults

T = TypeVar("T", bound=Any)


def _params(args: argparse.Namespace) -> Params:
    return load_params_or_defaults(args.params, args.profile)


def _add_params_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=None, metavar="FILE",
                        help="params file to read tunables from (default: ./params.yaml; "
                             "without one, the built-in defaults)")
    parser.add_argument("--profile", default="full", choices=PROFILES,
                        help="profile overlay applied on the params file (default: full)")


def _replace(section: T, **changes: object) -> T:
    """``section`` with the flags the user gave (``None`` = not given, keep params.yaml's)."""
    return dataclasses.replace(section, **{k: v for k, v in changes.items() if v is not None})


# --- subcommands -------------------------------------------------------------------------------

def cmd_scan(args: argparse.Namespace) -> int:
    from leakwatt.mining import lint

    return lint.run(args)


def cmd_corpus(args: argparse.Namespace) -> int:
    from leakwatt.mining.corpus import add_repository, check_corpus, verify_commit

    if args.action == "check":
        problems = check_corpus(Path(args.corpus))
        for problem in problems:
            print(problem)
        print(f"{args.corpus}: {len(problems)} problem(s)", file=sys.stderr)
        return 1 if problems else 0
    entry = add_repository(Path(args.corpus), args.url, commit=args.commit, name=args.name,
                           domain=args.domain, why=args.why, mirror_dir=args.mirror_dir)
    print(f"added {entry.url} @ {entry.commit} to {args.corpus}")
    if args.commit and verify_commit(entry.url, entry.commit, args.mirror_dir) is None:
        print(f"leakwatt: warning: commit {entry.commit[:12]} not verified (no local copy of "
              f"{entry.url}; give --mirror-dir, or `leakwatt mine` checks it when it clones)",
              file=sys.stderr)
    return 0


def cmd_mine(args: argparse.Namespace) -> int:
    from leakwatt.mining.demo import bundled_demo_dir
    from leakwatt.pipeline.workflow import mine

    params = _params(args)
    mine_params = _replace(params.mine, mirror_dir=args.mirror_dir, jobs=args.jobs,
                           scheduler=args.scheduler,
                           corpus="demo" if args.demo else None,
                           history=False if args.no_history else None)
    mine_params.check("mine (with the command-line flags)")
    if args.demo_dir:
        demo_dir = Path(args.demo_dir)
    else:  # the copy that ships with leakwatt (read only when the demo is mined)
        demo_dir = bundled_demo_dir() if mine_params.corpus == "demo" else Path("data/demo")
    mine(Path(args.corpus), demo_dir, Path(args.cache_dir), Path(args.out), mine_params)
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from leakwatt.pipeline.workflow import reproduce

    params = _params(args)
    rp = _replace(params.reproduce, scale=args.scale,
                  pairs=tuple(args.pairs) if args.pairs else None,
                  equivalence_check=False if args.no_equivalence else None)
    rp.check("reproduce (with the command-line flags)")
    reproduce(Path(args.instances) if args.instances else None, Path(args.out), rp,
              frameworks=params.measure.frameworks)
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    from leakwatt.pipeline.harness.store import ensure_writable
    from leakwatt.pipeline.workflow import measure, reproduce

    params = _params(args)
    scale = args.scale or params.reproduce.scale
    ensure_writable(Path(args.out), ("runs.csv", "warmup.csv", "idle.csv"))
    frameworks = (tuple(f.strip() for f in args.frameworks.split(",") if f.strip())
                  if args.frameworks is not None else None)
    mp = _replace(params.measure, repetitions=args.repetitions, warmup=args.warmup,
                  cooldown_s=args.cooldown, frameworks=frameworks,
                  control_runs=args.control_runs)
    mp.check("measure (with the command-line flags)")
    out = Path(args.out)
    if args.pairs:
        pairs_dir = Path(args.pairs)
    else:  # built-in pairs: built by the reproduce step (no equivalence check) into OUT/pairs
        pairs_dir = out / "pairs"
        reproduce(None, pairs_dir, dataclasses.replace(
            params.reproduce, pairs=tuple(args.pair), scale=scale, equivalence_check=False))
    measure(pairs_dir, out, args.device, scale, mp, pair_ids=args.pair or None,
            show_progress=not args.no_progress)
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from leakwatt.pipeline.workflow import analyze

    params = _params(args)
    ap = _replace(params.analyze, bootstrap_resamples=args.bootstrap, seed=args.seed)
    ap.check("analyze (with the command-line flags)")
    analyze([Path(p) for p in args.runs], Path(args.mined) if args.mined else None,
            Path(args.out), ap, recall_path=Path(args.recall) if args.recall else None)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from leakwatt.pipeline.workflow import report

    params = _params(args)
    report(Path(args.analysis), [Path(p) for p in args.runs],
           Path(args.pairs) if args.pairs else None, Path(args.out), params.report,
           params.analyze.alpha, mined_dir=Path(args.mined) if args.mined else None)
    return 0


def cmd_export_mined(args: argparse.Namespace) -> int:
    from leakwatt.analysis.export import export_mined

    written = export_mined(Path(args.mined), Path(args.analysis), Path(args.out))
    print(f"leakwatt: wrote {len(written)} files to {args.out} (no repository code)",
          file=sys.stderr)
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from leakwatt.pipeline.study import find_root, run_study

    return run_study(find_root(Path.cwd()), args.profile, args.dvc_args)


# --- parser ------------------------------------------------------------------------------------

#: the study's commands and the modules they need beyond the linter (pip install
#: "leakwatt[study]"); `scan` and `rules` need only the light install
STUDY_COMMANDS = ("mine", "reproduce", "measure", "analyze", "report", "study", "costs",
                  "export-mined")
STUDY_MODULES = ("pandas", "numpy", "scipy", "statsmodels", "matplotlib", "markdown_it", "tqdm",
                 "psutil", "codecarbon", "dvc", "tensorflow", "tf_keras", "sklearn")


def missing_study_modules() -> list[str]:
    """The study's modules this environment cannot import (found, not imported: cheap)."""
    from importlib.util import find_spec

    missing = []
    for name in STUDY_MODULES:
        try:
            found = find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def cmd_rules(args: argparse.Namespace) -> int:
    from leakwatt.mining.rules import RULES
    from leakwatt.mining.rules.catalogue import rule_listing, rule_markdown

    out = args.stdout if hasattr(args, "stdout") else sys.stdout
    if not args.rule:
        out.write(rule_listing())
        return 0
    code = args.rule.upper()
    if code not in RULES:
        print(f"leakwatt rules: unknown rule {args.rule!r} (rules: {', '.join(RULES)})",
              file=sys.stderr)
        return 2
    from leakwatt.mining.costs import rule_cost_markdown

    out.write(rule_markdown(code) + "\n\n" + rule_cost_markdown(code) + "\n")
    return 0


def cmd_costs(args: argparse.Namespace) -> int:
    from leakwatt.pipeline.cost_table import TABLE_MODULE, write_table
    from leakwatt.pipeline.study import find_root

    root = Path(args.root) if args.root else find_root(Path.cwd())
    current, target = write_table(root, check=args.check)
    if args.check:
        if not current:
            print(f"leakwatt costs: {target} does not match {root / 'results'}; "
                  "run `leakwatt costs` to rebuild it", file=sys.stderr)
            return 1
        print(f"{TABLE_MODULE} matches {root / 'results'}")
        return 0
    print(f"{TABLE_MODULE} {'unchanged' if current else 'rebuilt'} from {root / 'results'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leakwatt",
        description="Find resource-leak smells in TensorFlow/Keras code and measure their energy "
                    "and CO2 cost (a repeatable generalisation of arXiv 2606.19799).")
    parser.add_argument("--version", action="version", version=f"leakwatt {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from leakwatt.mining import lint
    from leakwatt.mining.rules import rule_ids

    p = sub.add_parser("scan", help="lint Python files, folders and notebooks for leak smells",
                       description="Lint files, folders and .ipynb notebooks for "
                                   f"{', '.join(rule_ids())}.",
                       epilog=lint.EXIT_CODES)
    lint.add_arguments(p)
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("rules", help="list the rules, or explain one (leakwatt rules IMR)",
                       description="Without an id: every rule with its name, variants and "
                                   "whether it has an autofix. With an id: what it finds, why "
                                   "it costs, examples, the fix.")
    p.add_argument("rule", nargs="?", help=f"a rule id ({', '.join(rule_ids())})")
    p.set_defaults(func=cmd_rules)

    p = sub.add_parser("corpus", help="check the corpus file or add a repository to it",
                       description="Validate data/corpus.csv or append a validated, pinned row.")
    p.add_argument("action", choices=["check", "add"],
                   help="check: validate the corpus file; add: append one pinned row")
    p.add_argument("url", nargs="?", help="repository URL (for add)")
    p.add_argument("--corpus", default="data/corpus.csv",
                   help="corpus CSV file (default: data/corpus.csv)")
    p.add_argument("--commit", help="full sha to pin (default: the default branch's head)")
    p.add_argument("--name", help="short repository name (default: from the URL)")
    p.add_argument("--domain", default="", help="application domain, free text")
    p.add_argument("--why", default="", help="why the repository is in the corpus")
    p.add_argument("--mirror-dir", help="folder of local clones or bare mirrors to resolve from")
    p.set_defaults(func=cmd_corpus)

    p = sub.add_parser("mine", help="scan corpus repositories at their pins and walk history",
                       description="Mine a corpus: writes repos.csv, instances.csv, events.csv, "
                                   "leak_commits.csv and scan_errors.csv into --out.")
    _add_params_flags(p)
    p.add_argument("--corpus", default="data/corpus.csv",
                   help="corpus CSV file (default: data/corpus.csv)")
    p.add_argument("--out", required=True, help="output folder for the mining tables")
    p.add_argument("--cache-dir", default="data/repos", help="clone cache (default: data/repos)")
    p.add_argument("--mirror-dir", help="local clones or bare mirrors, used before the network")
    p.add_argument("--demo", action="store_true", help="mine the bundled offline demo corpus")
    p.add_argument("--demo-dir", default=None,
                   help="the demo projects to build (default: the copy that ships with "
                        "leakwatt, data/demo in a checkout)")
    p.add_argument("--jobs", type=int, help="parallel repositories (0: all cores)")
    p.add_argument("--no-history", action="store_true", help="scan the pins only")
    p.add_argument("--scheduler",
                   help="Dask scheduler address: mine on a cluster (pip install leakwatt[dask])")
    p.set_defaults(func=cmd_mine)

    p = sub.add_parser("reproduce", help="write smelly/clean program pairs and check equivalence",
                       description="Write DIR/<pair_id>/{smelly.py, clean.py, meta.json} and "
                                   "DIR/pairs.csv from leakwatt's own templates.")
    _add_params_flags(p)
    p.add_argument("--instances", help="instances.csv from `leakwatt mine` (optional)")
    p.add_argument("--out", required=True, help="output folder for the pairs")
    p.add_argument("--scale", choices=["tiny", "small", "paper"],
                   help="workload size (default: params reproduce.scale)")
    p.add_argument("--pairs", nargs="+", help="built-in pair ids (default: params reproduce.pairs)")
    p.add_argument("--no-equivalence", action="store_true", help="skip the equivalence check")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("measure", help="measure pairs with CodeCarbon, each run a fresh process",
                       description="Measure pairs (smelly and clean interleaved) and append one row "
                                   "per run to OUT/runs.csv; re-running resumes.")
    _add_params_flags(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--pair", action="append", help="a built-in pair id (repeatable)")
    which.add_argument("--pairs", help="a folder written by `leakwatt reproduce`")
    p.add_argument("--out", required=True, help="output folder (runs.csv is appended to)")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                   help="device to run on (default: cpu)")
    p.add_argument("--scale", choices=["tiny", "small", "paper"],
                   help="workload size (default: params reproduce.scale)")
    p.add_argument("--repetitions", type=int,
                   help="runs per program (default: params measure.repetitions)")
    p.add_argument("--warmup", type=int,
                   help="unrecorded warm-up runs (default: params measure.warmup)")
    p.add_argument("--cooldown", type=float,
                   help="seconds of idle between runs (default: params measure.cooldown_s)")
    p.add_argument("--frameworks", metavar="LEVELS",
                   help="comma-separated Keras levels: keras3,keras2,keras2-graph "
                        "(default: params measure.frameworks)")
    p.add_argument("--control-runs", type=int, metavar="N",
                   help="instrumented runs per program that count the leak, outside every "
                        "measured window (default: params measure.control_runs)")
    p.add_argument("--no-progress", action="store_true", help="do not print a progress line")
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser("analyze", help="paired tests, effect sizes and CIs over runs.csv files",
                       description="Write stats.csv, summary.csv and failures.csv into --out.")
    _add_params_flags(p)
    p.add_argument("--runs", nargs="+", required=True, help="runs.csv file(s)")
    p.add_argument("--mined", help="mine output folder, for prevalence tables")
    p.add_argument("--out", required=True, help="output folder for the analysis tables")
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples")
    p.add_argument("--seed", type=int, help="random seed (default: params analyze.seed)")
    p.add_argument("--recall", default="data/labels/recall.csv",
                   help="the detectors' recall per rule, to correct the prevalence (default: "
                        "data/labels/recall.csv; when it is not there, a note and no correction)")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("report", help="render report.md, report.html, figures and metrics.json",
                       description="Render the study report from analysis, runs and mining output.")
    _add_params_flags(p)
    p.add_argument("--analysis", required=True, help="output folder of `leakwatt analyze`")
    p.add_argument("--runs", nargs="+", required=True, help="runs.csv file(s)")
    p.add_argument("--mined", help="mine output folder: checks that --analysis holds its "
                                   "prevalence tables (run `analyze --mined` first)")
    p.add_argument("--pairs", help="pairs folder, to show the programs in the report")
    p.add_argument("--out", required=True, help="output folder for the report")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export-mined", help="write a mined corpus as a result folder, no code",
                       description="Copy repos.csv, instances.csv and events.csv from --mined "
                                   "(without the columns that quote code) and the prevalence, "
                                   "by-era, lifetimes, survival and overview tables from "
                                   "--analysis into --out, with a README generated from them.")
    p.add_argument("--mined", required=True, help="output folder of `leakwatt mine`")
    p.add_argument("--analysis", required=True,
                   help="output folder of `leakwatt analyze --mined` on the same mining outputs")
    p.add_argument("--out", required=True,
                   help="a new or empty folder, e.g. results/2026-12-08-corpus")
    p.set_defaults(func=cmd_export_mined)

    p = sub.add_parser("study", help="run the whole study with DVC (`dvc repro`)",
                       description="Run the DVC pipeline. --profile demo runs offline in minutes; "
                                   "the default (full) is exactly `dvc repro`.")
    p.add_argument("--profile", default="full", choices=PROFILES,
                   help="params profile: demo runs offline in minutes (default: full)")
    p.add_argument("dvc_args", nargs=argparse.REMAINDER,
                   help="extra arguments passed to `dvc repro` (e.g. -- --force)")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("costs", help="rebuild the linter's cost table from results/",
                       description="Rebuild mining/cost_table.py (the measured cost each "
                                   "finding carries) from the committed results/ folders.")
    p.add_argument("--check", action="store_true",
                   help="only compare: exit 1 when the table does not match results/")
    p.add_argument("--root", help="repository root (default: found from the current folder)")
    p.set_defaults(func=cmd_costs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "dvc_args", None) and args.dvc_args[0] == "--":
        args.dvc_args = args.dvc_args[1:]
    if args.command == "corpus" and args.action == "add" and not args.url:
        parser.error("corpus add needs a URL")
    if args.command in STUDY_COMMANDS:
        missing = missing_study_modules()
        if missing:
            print(f"leakwatt {args.command}: the study is not installed (missing: "
                  f"{', '.join(missing)}); install it with: pip install \"leakwatt[study]\"",
                  file=sys.stderr)
            return 2
    try:
        return int(args.func(args))
    except LeakwattError as exc:
        print(f"leakwatt: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("leakwatt: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a full disk, a read-only folder: one line, not a traceback
        print(f"leakwatt: error: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_OUTPUT_ERROR


if __name__ == "__main__":
    sys.exit(main())
