"""DVC stage `mine`: corpus (real or demo) -> data/mined/{repos,instances,events,leak_commits}.csv."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leakwatt.params import Params
from leakwatt.pipeline.stages._args import run_stage, stage_parser
from leakwatt.pipeline.workflow import mine


def body(args: argparse.Namespace, params: Params) -> None:
    mine(Path(args.corpus), Path(args.demo_dir), Path(args.cache_dir), Path(args.out), params.mine)


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("mine", __doc__ or "")
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--demo-dir", required=True)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--out", required=True)
    return run_stage(parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
