"""Shared argument handling for the DVC stage entry points.

Each is run as `python -m leakwatt.pipeline.stages.X`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from leakwatt.common import EXIT_OUTPUT_ERROR, LeakwattError, describe_os_error
from leakwatt.params import Params, load_params_or_defaults


def stage_parser(name: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m leakwatt.pipeline.stages.{name}",
                                     description=description)
    parser.add_argument("--params", default=None, metavar="FILE",
                        help="params file (default: ./params.yaml; without one, the built-in "
                             "defaults)")
    return parser


def run_stage(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace, Params], None],
              argv: Sequence[str] | None = None) -> int:
    """Parse arguments, load params once, run ``body``; user errors become one line and exit 2."""
    args = parser.parse_args(argv)
    try:
        params = load_params_or_defaults(args.params)
        body(args, params)
    except LeakwattError as exc:
        print(f"leakwatt: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("leakwatt: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a full disk, a read-only folder: one line, not a traceback
        print(f"leakwatt: error: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_OUTPUT_ERROR
    return 0
