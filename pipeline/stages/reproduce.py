"""DVC stage `reproduce`: instances.csv -> data/pairs/ (program pairs, pairs.csv, equivalence.csv)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leakwatt.params import Params
from leakwatt.pipeline.stages._args import run_stage, stage_parser
from leakwatt.pipeline.workflow import reproduce


def body(args: argparse.Namespace, params: Params) -> None:
    reproduce(Path(args.instances), Path(args.out), params.reproduce,
              frameworks=params.measure.frameworks)


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("reproduce", __doc__ or "")
    parser.add_argument("--instances", required=True)
    parser.add_argument("--out", required=True)
    return run_stage(parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
