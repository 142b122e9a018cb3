"""DVC stage `analyze`: data/runs/*/runs.csv + data/mined -> data/analysis/ (stats.csv, ...)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leakwatt.params import Params
from leakwatt.pipeline.stages._args import run_stage, stage_parser
from leakwatt.pipeline.workflow import analyze, runs_files


def body(args: argparse.Namespace, params: Params) -> None:
    analyze(runs_files(Path(args.runs)), Path(args.mined), Path(args.out), params.analyze,
            recall_path=Path(args.recall) if args.recall else None)


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("analyze", __doc__ or "")
    parser.add_argument("--runs", required=True, help="folder holding <device>/runs.csv")
    parser.add_argument("--mined", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--recall", help="the detectors' recall per rule (recall.csv); when it "
                                         "is not there, prevalence is not corrected (a note)")
    return run_stage(parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
