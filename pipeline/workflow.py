"""The study's steps as functions: what both the DVC stages and the `leakwatt` CLI call.

Each function wires already-validated params to the libraries in mining/, pipeline/repros,
pipeline/harness and analysis/; none of them holds study logic of its own.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from leakwatt.common import LeakwattError
from leakwatt.params import AnalyzeParams, MeasureParams, MineParams, ReportParams, ReproduceParams

if TYPE_CHECKING:  # pandas is imported lazily: the CLI's --help should not pay for it
    import pandas as pd


def log(message: str) -> None:
    print(f"leakwatt: {message}", file=sys.stderr, flush=True)


def mine(corpus_path: Path, demo_dir: Path, cache_dir: Path, out_dir: Path,
         params: MineParams) -> None:
    """Mine the real corpus (``params.corpus == 'real'``) or the bundled demo corpus."""
    from leakwatt.mining.corpus import load_corpus
    from leakwatt.mining.mine import mine_corpus

    if params.corpus == "demo":
        from leakwatt.mining.demo import build_demo_corpus

        entries = build_demo_corpus(demo_dir, cache_dir / "demo")
        log(f"built {len(entries)} demo repositories from {demo_dir}")
    else:
        entries = load_corpus(corpus_path)
        log(f"{len(entries)} repositories in {corpus_path}")
    summary = mine_corpus(entries, out_dir, cache_dir, params,
                          results_cache_dir=cache_dir / ".results",
                          scheduler=params.scheduler or None)
    report_failed_repositories(out_dir / "repos.csv")
    log(f"{summary.get('instances', 0)} smell instances, {summary.get('events', 0)} history events, "
        f"{summary.get('cached', 0)} repositories from cache, written to {out_dir}")


def report_failed_repositories(repos_csv: Path) -> None:
    """Say, one line each, which repositories could not be mined and why."""
    import pandas as pd

    repos = pd.read_csv(repos_csv, dtype=str, keep_default_na=False)
    failed = repos[repos["status"] != "ok"]
    for row in failed.itertuples():
        log(f"not mined: {row.url} @ {row.commit[:12]}: {row.status}: {row.reason}")
    log(f"{len(repos) - len(failed)} of {len(repos)} repositories mined")


def read_instances(instances_csv: Path) -> pd.DataFrame:
    import pandas as pd

    if not instances_csv.exists():
        raise LeakwattError(f"{instances_csv}: instances file not found (run `leakwatt mine` first)")
    return pd.read_csv(instances_csv, dtype={"commit": str}, keep_default_na=False)


def reproduce(instances_csv: Path | None, out_dir: Path, params: ReproduceParams) -> None:
    """Write the program pairs and, when enabled, check each pair's equivalence."""
    from leakwatt.pipeline.repros import build_pairs

    instances = read_instances(instances_csv) if instances_csv is not None else None
    pairs = build_pairs(out_dir, params.pairs, params.scale, instances)
    log(f"wrote {len(pairs)} pairs to {out_dir}")
    if params.equivalence_check:
        from leakwatt.pipeline.repros.equivalence import check_pairs

        checked = check_pairs(out_dir, params.equivalence_rtol)
        for row in checked.itertuples():
            log(f"equivalence {row.pair_id}: {row.status} ({row.detail})")


def measure(pairs_dir: Path, out_dir: Path, device: str, scale: str, params: MeasureParams,
            pair_ids: Sequence[str] | None = None, show_progress: bool = True) -> None:
    from leakwatt.pipeline.harness import measure_pairs
    from leakwatt.pipeline.harness.supersede import retire_superseded_runs

    if (pairs_dir / "pairs.csv").is_file():
        for name, count in retire_superseded_runs(pairs_dir, out_dir, scale).items():
            log(f"{out_dir / name}: {count} row(s) measured on changed programs or another scale "
                f"moved to {out_dir / 'superseded'}")
    runs = measure_pairs(pairs_dir, pair_ids, out_dir, device, scale, params,
                         show_progress=show_progress)
    counts = runs["status"].value_counts().to_dict() if len(runs) else {}
    log(f"{len(runs)} runs in {out_dir / 'runs.csv'}: {counts}")


def runs_files(runs_dir: Path) -> list[Path]:
    """``runs_dir/<device>/runs.csv`` for every measured device (sorted)."""
    files = sorted(runs_dir.glob("*/runs.csv"))
    if not files:
        raise LeakwattError(f"{runs_dir}: no <device>/runs.csv found (run the measure stage first)")
    return files


def analyze(runs_paths: Sequence[Path], mined_dir: Path | None, out_dir: Path,
            params: AnalyzeParams) -> None:
    from leakwatt.analysis.stats import analyze as analyze_runs

    idle = [p.parent / "idle.csv" for p in runs_paths if (p.parent / "idle.csv").exists()]
    result = analyze_runs(runs_paths, out_dir, params, idle_paths=idle)
    log(f"wrote {len(result.stats)} rows to {out_dir / 'stats.csv'}")
    if mined_dir is not None and (mined_dir / "repos.csv").exists():
        from leakwatt.analysis.prevalence import write_prevalence

        write_prevalence(mined_dir, out_dir)
        log(f"wrote prevalence tables to {out_dir}")


def report(analysis_dir: Path, runs_paths: Sequence[Path], mined_dir: Path | None,
           pairs_dir: Path | None, out_dir: Path, params: ReportParams, alpha: float,
           commands: Sequence[str] = ()) -> None:
    from leakwatt.analysis.report import render_report

    environments = [p.parent / "environment.json" for p in runs_paths
                    if (p.parent / "environment.json").exists()]
    equivalence = pairs_dir / "equivalence.csv" if pairs_dir is not None else None
    render_report(analysis_dir, runs_paths, mined_dir, out_dir, params,
                  environment_paths=environments,
                  equivalence_path=equivalence if equivalence and equivalence.exists() else None,
                  commands=commands or default_commands(), alpha=alpha)
    log(f"wrote {out_dir / 'report.md'} and {out_dir / 'report.html'}")


def default_commands() -> list[str]:
    return ["leakwatt study  # = dvc repro (full profile)",
            "leakwatt study --profile demo  # offline demo",
            "dvc metrics show", "dvc plots show"]
