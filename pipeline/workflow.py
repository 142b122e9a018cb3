"""The study's steps as functions: what both the DVC stages and the `leakwatt` CLI call.

Each function wires already-validated params to the libraries in mining/, pipeline/repros,
pipeline/harness and analysis/; none of them holds study logic of its own. The imports are
ordinary: a stage needs them all anyway, and none of them imports TensorFlow (only the measured
programs do; ``tests/test_cli.py`` checks it). The CLI stays fast by importing this module only
inside the subcommand that runs.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from leakwatt.analysis.prevalence import TABLES as PREVALENCE_TABLES
from leakwatt.analysis.prevalence import write_prevalence
from leakwatt.analysis.recall import load_recall, recall_sources
from leakwatt.analysis.report import render_report
from leakwatt.analysis.stats import analyze as analyze_runs
from leakwatt.common import LeakwattError, cap_jobs, usable_cores
from leakwatt.contracts import INSTANCES, PREVALENCE, REPOS
from leakwatt.mining.corpus import load_corpus
from leakwatt.mining.demo import build_demo_corpus
from leakwatt.mining.mine import mine_corpus
from leakwatt.params import AnalyzeParams, MeasureParams, MineParams, ReportParams, ReproduceParams
from leakwatt.pipeline.harness import measure_pairs
from leakwatt.pipeline.harness.supersede import retire_superseded_runs
from leakwatt.pipeline.repros import build_pairs
from leakwatt.pipeline.repros.equivalence import check_pairs


def log(message: str) -> None:
    print(f"leakwatt: {message}", file=sys.stderr, flush=True)


def mine(corpus_path: Path, demo_dir: Path, cache_dir: Path, out_dir: Path,
         params: MineParams) -> None:
    """Mine the real corpus (``params.corpus == 'real'``) or the bundled demo corpus."""
    if params.corpus != "demo":
        refuse_output_holding_input("mine", out_dir, [corpus_path])
    if params.jobs > usable_cores():
        params = dataclasses.replace(params, jobs=cap_jobs(params.jobs, "mine.jobs"))
    if params.corpus == "demo":
        entries = build_demo_corpus(demo_dir, cache_dir / "demo")
        log(f"built {len(entries)} demo repositories from {demo_dir}")
    else:
        entries = load_corpus(corpus_path)
        log(f"{len(entries)} repositories in {corpus_path}")
    summary = mine_corpus(entries, out_dir, cache_dir, params,
                          results_cache_dir=cache_dir / ".results",
                          scheduler=params.scheduler or None)
    report_failed_repositories(out_dir / "repos.csv")
    stop_without_data(out_dir / "repos.csv", params)
    log(f"{summary.get('instances', 0)} smell instances, {summary.get('events', 0)} history events, "
        f"{summary.get('cached', 0)} repositories from cache, written to {out_dir}")


def refuse_output_holding_input(stage: str, out_dir: Path, inputs: Sequence[Path]) -> None:
    """A usage error when the output folder is, or holds, one of the stage's inputs: the
    stage would overwrite what it reads (``analyze --runs out/summary.csv --out out``)."""
    out = Path(out_dir).resolve()
    for path in inputs:
        held = Path(path).resolve()
        if held == out or out in held.parents:
            raise LeakwattError(f"{stage}: the output folder {out_dir} holds its input {path}; "
                                "give another --out")


def report_failed_repositories(repos_csv: Path) -> None:
    """Say, one line each, which repositories could not be mined and why."""
    repos = REPOS.validate(pd.read_csv(repos_csv, dtype=str, keep_default_na=False),
                           str(repos_csv))
    failed = repos[repos["status"] != "ok"]
    for row in failed.itertuples():
        log(f"not mined: {row.url} @ {row.commit[:12]}: {row.status}: {row.reason}")
    log(f"{len(repos) - len(failed)} of {len(repos)} repositories mined")


#: repository statuses that mean a checkout was obtained (the rest: nothing was cloned).
CLONED = ("ok", "no_python", "empty", "history_failed", "blob_missing")


def stop_without_data(repos_csv: Path, params: MineParams) -> None:
    """Fail the stage in one line when not one corpus repository could be cloned.

    Without a clone there are no instances, so ``reproduce`` would fall back to the paper pairs
    and ``measure`` would run them for days on a study with no data of its own.
    """
    repos = pd.read_csv(repos_csv, dtype=str, keep_default_na=False)
    if len(repos) == 0 or repos["status"].isin(CLONED).any():
        return
    first = repos.iloc[0]
    mirrors = (f"mine.mirror_dir ({params.mirror_dir}) holds none of them"
               if params.mirror_dir else "mine.mirror_dir is not set")
    raise LeakwattError(
        f"mine: none of the {len(repos)} corpus repositories could be cloned (e.g. "
        f"{first['url']}: {first['status']}: {first['reason']}) and {mirrors}; the study would "
        "have no data: point mine.mirror_dir at local mirrors of the corpus, or run the offline "
        "demo with `leakwatt study --profile demo`")


def read_instances(instances_csv: Path) -> pd.DataFrame:
    if not instances_csv.exists():
        raise LeakwattError(f"{instances_csv}: instances file not found (run `leakwatt mine` first)")
    frame = pd.read_csv(instances_csv, dtype={"commit": str}, keep_default_na=False)
    return INSTANCES.validate(frame, str(instances_csv))


def reproduce(instances_csv: Path | None, out_dir: Path, params: ReproduceParams,
              frameworks: Sequence[str] | None = None) -> None:
    """Write the program pairs and, when enabled, check each pair's equivalence under the
    framework levels that will be measured (``frameworks``; all when None).

    This is the one place pairs are built (the ``reproduce`` stage, ``leakwatt reproduce`` and
    ``leakwatt measure --pair``); the harness only reads them.
    """
    instances = read_instances(instances_csv) if instances_csv is not None else None
    pairs = build_pairs(out_dir, params.pairs, params.scale, instances)
    log(f"wrote {len(pairs)} pairs to {out_dir}")
    if params.equivalence_check:
        checked = check_pairs(out_dir, params.equivalence_rtol, frameworks=frameworks)
        for row in checked.itertuples():
            log(f"equivalence {row.pair_id} ({row.framework}): {row.status} ({row.detail})")


def measure(pairs_dir: Path, out_dir: Path, device: str, scale: str, params: MeasureParams,
            pair_ids: Sequence[str] | None = None, show_progress: bool = True) -> None:
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
            params: AnalyzeParams, recall_path: Path | None = None) -> None:
    """Statistics of the runs and, with mining outputs, prevalence and survival; the prevalence
    corrected for the detectors' recall when ``recall_path`` (recall.csv) is there, else a
    one-line note says it is not."""
    refuse_output_holding_input("analyze", out_dir,
                                [*runs_paths, *([mined_dir] if mined_dir is not None else [])])
    idle = [p.parent / "idle.csv" for p in runs_paths if (p.parent / "idle.csv").exists()]
    result = analyze_runs(runs_paths, out_dir, params, idle_paths=idle)
    log(f"wrote {len(result.stats)} rows to {out_dir / 'stats.csv'}")
    if mined_dir is not None and (mined_dir / REPOS.file).exists():
        recall, no_recall = load_recall(recall_path)
        if recall is None:
            log(f"{no_recall}: prevalence is not corrected for recall")
        else:
            log(f"prevalence corrected for recall from {recall_path} "
                f"({', '.join(recall_sources(recall, 'label_set', 'commit'))})")
        write_prevalence(mined_dir, out_dir, recall, no_recall)
        log(f"wrote prevalence tables to {out_dir}")
    else:  # no stale prevalence tables from an earlier run with mining outputs
        for table in PREVALENCE_TABLES.values():
            (out_dir / table.file).unlink(missing_ok=True)


def report(analysis_dir: Path, runs_paths: Sequence[Path], pairs_dir: Path | None,
           out_dir: Path, params: ReportParams, alpha: float,
           commands: Sequence[str] = (), mined_dir: Path | None = None) -> None:
    """Render the report from what ``analyze`` wrote into ``analysis_dir`` (prevalence included).

    ``mined_dir`` is only checked: naming mining outputs whose prevalence ``analyze`` did not
    compute is an error rather than a report silently without prevalence.
    """
    refuse_output_holding_input("report", out_dir, [
        analysis_dir, *runs_paths, *(p for p in (pairs_dir, mined_dir) if p is not None)])
    if mined_dir is not None and not (analysis_dir / PREVALENCE.file).is_file():
        raise LeakwattError(f"{analysis_dir / PREVALENCE.file}: not found; run "
                            f"`leakwatt analyze --mined {mined_dir}` first (the report reads the "
                            "prevalence tables analyze writes)")
    environments = [p.parent / "environment.json" for p in runs_paths
                    if (p.parent / "environment.json").exists()]
    equivalence = pairs_dir / "equivalence.csv" if pairs_dir is not None else None
    render_report(analysis_dir, runs_paths, out_dir, params,
                  environment_paths=environments,
                  equivalence_path=equivalence if equivalence and equivalence.exists() else None,
                  commands=commands or default_commands(), alpha=alpha, pairs_dir=pairs_dir)
    log(f"wrote {out_dir / 'report.md'} and {out_dir / 'report.html'}")


def default_commands(profile: str | None = None) -> list[str]:
    """The commands that reproduce this report: the profile `leakwatt study` ran it under
    (``LEAKWATT_PROFILE``, set by :func:`leakwatt.pipeline.study.dvc_env`), else a plain
    `dvc repro`, i.e. the full study."""
    profile = profile or os.environ.get("LEAKWATT_PROFILE") or "full"
    study = ("leakwatt study  # = dvc repro (full profile)" if profile == "full"
             else f"leakwatt study --profile {profile}  # profiles/{profile}.yaml over params.yaml")
    return [study, "dvc metrics show", "dvc plots show"]
