"""DVC stage `report`: data/analysis (incl. prevalence) + runs + pairs -> reports/ (report.md, ...)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leakwatt.params import Params
from leakwatt.pipeline.stages._args import run_stage, stage_parser
from leakwatt.pipeline.workflow import report, runs_files


def body(args: argparse.Namespace, params: Params) -> None:
    report(Path(args.analysis), runs_files(Path(args.runs)), Path(args.pairs), Path(args.out),
           params.report, params.analyze.alpha)


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("report", __doc__ or "")
    parser.add_argument("--analysis", required=True)
    parser.add_argument("--runs", required=True, help="folder holding <device>/runs.csv")
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--out", required=True)
    return run_stage(parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
