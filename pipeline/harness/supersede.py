"""Keep resumed measurements honest when what they measured has changed.

`runs.csv` is resumed by (pair_id, variant, rep, device, framework). That is only right while each pair's
programs and the scale are the ones the earlier rows measured. Before measuring, rows whose pair
program changed (by content hash) or that were measured at another scale are moved out of
``runs.csv`` (and ``warmup.csv``) into ``superseded/<timestamp>/`` beside it -- kept, never dropped,
and no longer counted -- so that the DVC stage re-measures exactly the pairs that changed and a
user who adds one repository to the corpus re-measures only the pair it brings.

A ``runs.csv`` written before a column existed (``framework`` came with issue 9) is upgraded in
place by :func:`upgrade_columns`: every row is kept, the new columns are appended, and the ones
with a known meaning for old rows are filled (every earlier run was Keras 3, measured over the
whole process). Whether those rows still count is then the fingerprint's decision, as above.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from leakwatt.common import atomic_write_csv, atomic_write_json

FINGERPRINTS = "pairs_fingerprint.json"


def pair_fingerprints(pairs_dir: Path, scale: str) -> dict[str, str]:
    """sha256 over each pair's smelly and clean program, and the scale they are run at."""
    pairs = pd.read_csv(pairs_dir / "pairs.csv", dtype=str, keep_default_na=False)
    prints = {}
    for row in pairs.itertuples():
        digest = hashlib.sha256(scale.encode())
        for rel in (row.smelly_path, row.clean_path):
            digest.update(b"\0" + (pairs_dir / rel).read_bytes())
        prints[row.pair_id] = digest.hexdigest()
    return prints


def upgrade_columns(path: Path, columns: Sequence[str], fill: Mapping[str, str]) -> list[str]:
    """Append the ``columns`` that ``path``'s header lacks, filling them from ``fill`` (else
    empty), and keep every row; returns the columns added. A header with columns this version
    does not know is left alone (the store then reports what it lacks)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return []
    rows = pd.read_csv(path, dtype=str, keep_default_na=False)
    added = [c for c in columns if c not in rows.columns]
    if not added:
        return []
    for column in added:
        rows[column] = fill.get(column, "")
    atomic_write_csv(path, rows, columns=[*rows.columns])
    print(f"leakwatt: {path}: added column(s) {', '.join(added)} to {len(rows)} earlier row(s) "
          f"({', '.join(f'{k}={v}' for k, v in fill.items() if k in added)})", file=sys.stderr,
          flush=True)
    return added


def _split(path: Path, stale_pairs: set[str], scale: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    if not path.is_file() or path.stat().st_size == 0:
        return None
    rows = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "pair_id" not in rows.columns:
        return None
    stale = rows["pair_id"].isin(stale_pairs)
    if "scale" in rows.columns:
        stale |= rows["scale"].ne(scale) & rows["scale"].ne("")
    return rows[~stale], rows[stale]


def retire_superseded_runs(pairs_dir: Path, out_dir: Path, scale: str) -> dict[str, int]:
    """Move rows measured on other programs or another scale to ``out_dir/superseded/``.

    Returns the number of rows moved per file. Rows of pairs that were measured before this
    mechanism existed (no fingerprint file) are treated as changed.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    current = pair_fingerprints(pairs_dir, scale)
    fp_path = out_dir / FINGERPRINTS
    previous: dict[str, str] = {}
    if fp_path.is_file():
        with open(fp_path, encoding="utf-8") as fh:
            previous = json.load(fh)
    stale_pairs = {pid for pid, digest in previous.items() if current.get(pid) != digest}
    moved: dict[str, int] = {}
    archive = out_dir / "superseded" / time.strftime("%Y%m%dT%H%M%S")
    for name in ("runs.csv", "warmup.csv"):
        path = out_dir / name
        known = _split(path, stale_pairs, scale)
        if known is None:
            continue
        keep, stale = known
        if not fp_path.is_file():  # rows from before fingerprints: nothing says what they measured
            keep, stale = keep.iloc[0:0], pd.concat([keep, stale])
        if stale.empty:
            continue
        atomic_write_csv(archive / name, stale)
        atomic_write_csv(path, keep)
        moved[name] = len(stale)
    idle = out_dir / "idle.csv"
    if moved and idle.is_file():
        # the idle baseline is sized on the clean runs it sat beside: retire it with them
        archive.mkdir(parents=True, exist_ok=True)
        idle.replace(archive / "idle.csv")
        moved["idle.csv"] = 1
    atomic_write_json(fp_path, current)
    return moved
