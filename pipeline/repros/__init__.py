"""Reproduction templates: self-contained smelly/clean program pairs and their equivalence check.

Entry points: :func:`build_pairs` (write pair programs and ``pairs.csv``),
:func:`leakwatt.pipeline.repros.equivalence.check_pairs` (run both variants deterministically and compare).
TensorFlow is imported only by the generated programs, never by this package.
"""

from __future__ import annotations

from leakwatt.pipeline.repros.pairs import (
    BUILTIN_PAIRS,
    PAIRS_COLUMNS,
    build_pairs,
    families_from_instances,
    read_pairs,
)
from leakwatt.pipeline.repros.templates import SCALES

__all__ = ["BUILTIN_PAIRS", "PAIRS_COLUMNS", "SCALES", "build_pairs", "families_from_instances",
           "read_pairs"]
