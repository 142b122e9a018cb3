"""DVC stage `measure@<device>`: data/pairs/ -> data/runs/<device>/{runs.csv, environment.json}."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leakwatt.params import Params
from leakwatt.pipeline.stages._args import run_stage, stage_parser
from leakwatt.pipeline.workflow import measure


def body(args: argparse.Namespace, params: Params) -> None:
    measure(Path(args.pairs), Path(args.out), args.device, params.reproduce.scale, params.measure)


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("measure", __doc__ or "")
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--device", required=True, choices=["cpu", "gpu"])
    parser.add_argument("--out", required=True)
    return run_stage(parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
