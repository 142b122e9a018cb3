"""Measurement harness: each run a fresh subprocess with a fresh CodeCarbon tracker.

Entry point: :func:`measure_pairs` (resumable run table -> ``runs.csv``, ``idle.csv``,
``environment.json``). Schemas in docs/measure.md.
"""

from __future__ import annotations

from leakwatt.pipeline.harness.measure import environment, measure_pairs, plan_runs, rss_growth_mb_per_s
from leakwatt.pipeline.harness.store import IDLE_COLUMNS, RUNS_COLUMNS

__all__ = ["IDLE_COLUMNS", "RUNS_COLUMNS", "environment", "measure_pairs", "plan_runs",
           "rss_growth_mb_per_s"]
