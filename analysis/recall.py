"""Detector recall on a labelled set, and instance counts corrected for what the detectors miss.

* :func:`recall_row` turns one rule's score on a labelled set (TP, FN, FP) into a row of
  ``recall.csv`` (``leakwatt.contracts.RECALL``): precision, recall and the exact
  (Clopper-Pearson) 95 % interval of the recall, from ``statsmodels``'
  ``proportion_confint(method="beta")``. ``benchmarks/detector_accuracy.py --write-recall``
  writes the table; :func:`load_recall` reads it back, checked.
* :func:`correct_for_recall` adds the correction to a table of observed instance counts per rule
  (``prevalence.csv``, ``prevalence_by_era.csv``): ``corrected_instances = instances / recall``,
  with the interval ``[instances / recall_hi, instances / recall_lo]``.

What the correction is, and is not:

* It corrects **instance counts for misses only** (false negatives). Repository shares are not
  corrected: a missed instance may sit in a repository that already has a found one, so the
  share of affected repositories cannot be scaled by the recall.
* Precision is reported beside it and **not applied**: the labelled sets measure it on hard
  negatives chosen to be difficult, not on a random sample of findings, so it does not estimate
  the share of false findings among the corpus's instances.
* The interval covers the **recall's uncertainty only**: the corpus is mined completely (a
  census, not a sample), so the observed counts carry no sampling error of their own. It assumes
  the labelled set's recall holds in the corpus (and, for the by-era table, in both eras: the
  labelled sets are not split by era).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from leakwatt.common import LeakwattError
from leakwatt.contracts import RECALL, RECALL_CORRECTION

RECALL_COLUMNS = list(RECALL.columns)
CORRECTION_COLUMNS = list(RECALL_CORRECTION)
#: the recall interval's confidence level (exact binomial, two-sided)
CONFIDENCE = 0.95
#: how far a recall.csv value may differ from the one its counts give (rounding in the file)
TOLERANCE = 1e-6
#: ``correction_note`` when analyze was given no recall table
NO_RECALL_TABLE = "no recall table given"
#: the correction columns metrics.json carries per rule (prevalence.<rule>)
RECALL_METRICS = ("recall", "recall_lo", "recall_hi", "corrected_instances",
                  "corrected_instances_lo", "corrected_instances_hi")


def _count_arg(rule: str, name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):  # None, NaN, inf, text
        number = -1
    if isinstance(value, bool) or number != value or number < 0:
        raise LeakwattError(f"recall of {rule}: {name} must be a count (>= 0), got {value!r}")
    return number


def recall_row(rule: str, tp: int, fn: int, fp: int, label_set: str, commit: str,
               scored_at: str, confidence: float = CONFIDENCE) -> dict[str, Any]:
    """One ``recall.csv`` row from a rule's counts on a labelled set.

    ``true_sites = tp + fn``; ``precision = tp / (tp + fp)`` and ``recall = tp / true_sites``
    (NaN when undefined); ``recall_lo``/``recall_hi`` the exact Clopper-Pearson interval
    (0 below when ``tp`` is 0, 1 above when every true site was found).
    """
    tp, fn, fp = (_count_arg(rule, name, value) for name, value in (("tp", tp), ("fn", fn),
                                                                     ("fp", fp)))
    true_sites = tp + fn
    recall = lo = hi = math.nan
    if true_sites:
        recall = tp / true_sites
        low, high = proportion_confint(tp, true_sites, alpha=1 - confidence, method="beta")
        # statsmodels already gives 0 and 1 at the ends; said here so no NaN from the beta
        # quantile at a zero shape parameter can leak into the table
        lo = 0.0 if tp == 0 else float(low)
        hi = 1.0 if tp == true_sites else float(high)
    return {"rule": rule, "label_set": label_set, "commit": commit, "scored_at": scored_at,
            "true_sites": true_sites, "tp": tp, "fn": fn, "fp": fp,
            "precision": tp / (tp + fp) if tp + fp else math.nan,
            "recall": recall, "recall_lo": lo, "recall_hi": hi}


def recall_table(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The rows of :func:`recall_row` as a frame with ``recall.csv``'s columns, in order."""
    return pd.DataFrame(list(rows), columns=RECALL_COLUMNS)


def _counts(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    text = frame[column].astype(str).str.strip()
    values = pd.to_numeric(text, errors="coerce")
    bad = values.isna() | (values < 0) | (values != values.round())
    if bad.any():
        i = int(bad.to_numpy().argmax())
        raise LeakwattError(f"{source}: line {i + 2}: {column} {text.iloc[i]!r} is not a count")
    return values.astype(int)


def _check_written(frame: pd.DataFrame, computed: pd.DataFrame, source: str) -> None:
    """Every written precision/recall/interval agrees with the one its counts give."""
    for column in ("precision", "recall", "recall_lo", "recall_hi"):
        if column not in frame.columns:
            continue
        text = frame[column].astype(str).str.strip()
        written = pd.to_numeric(text.where(text != "", "nan"), errors="coerce")
        for i, (shown, value, expected) in enumerate(zip(text, written, computed[column],
                                                         strict=True)):
            if math.isnan(expected):
                agrees = shown == "" or math.isnan(value)
            else:
                agrees = not math.isnan(value) and abs(value - expected) <= TOLERANCE
            if not agrees:
                raise LeakwattError(
                    f"{source}: line {i + 2}: {column} {shown!r} does not match its counts "
                    f"(tp {frame['tp'].iloc[i]}, fn {frame['fn'].iloc[i]}, fp "
                    f"{frame['fp'].iloc[i]} give {expected:.6g})")


def read_recall(path: Path) -> pd.DataFrame:
    """``recall.csv`` checked against its counts, one row per rule.

    Rows of one rule from several label sets are pooled (their counts summed, the interval
    recomputed, ``label_set`` joined with ``+``) when they were scored at the same commit; a rule
    scored at two commits is an error, as is any written value its counts do not give.
    """
    source = str(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise LeakwattError(f"{source}: empty file (no header line)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LeakwattError(f"{source}: cannot parse: {str(exc).splitlines()[0]}") from None
    RECALL.validate(frame, source)
    frame = frame.reset_index(drop=True)
    for column in ("rule", "label_set", "commit", "scored_at"):
        frame[column] = frame[column].astype(str).str.strip() if column in frame else ""
    empty = frame["rule"] == ""
    if empty.any():
        raise LeakwattError(f"{source}: line {int(empty.to_numpy().argmax()) + 2}: empty rule")
    counts = {c: _counts(frame, c, source) for c in ("true_sites", "tp", "fn", "fp")}
    off = counts["true_sites"] != counts["tp"] + counts["fn"]
    if off.any():
        i = int(off.to_numpy().argmax())
        raise LeakwattError(f"{source}: line {i + 2}: true_sites {counts['true_sites'][i]} is not "
                            f"tp + fn ({counts['tp'][i]} + {counts['fn'][i]})")
    computed = recall_table(
        recall_row(r, tp, fn, fp, s, c, t) for r, tp, fn, fp, s, c, t in zip(
            frame["rule"], counts["tp"], counts["fn"], counts["fp"], frame["label_set"],
            frame["commit"], frame["scored_at"], strict=True))
    _check_written(frame, computed, source)
    rows = []
    for rule, group in computed.groupby("rule", sort=True):
        commits = sorted(set(group["commit"]))
        if len(commits) > 1:
            raise LeakwattError(f"{source}: {rule} was scored at {len(commits)} commits "
                                f"({', '.join(c[:12] for c in commits)}); score every label set "
                                "with the same code")
        rows.append(group.iloc[0].to_dict() if len(group) == 1 else recall_row(
            str(rule), int(group["tp"].sum()), int(group["fn"].sum()), int(group["fp"].sum()),
            "+".join(group["label_set"]), commits[0], max(group["scored_at"])))
    return recall_table(rows)


def load_recall(path: Path | None) -> tuple[pd.DataFrame | None, str]:
    """(the recall table, "") or, when ``path`` is not given or not there, (None, why there is
    none: the ``correction_note`` of every row). A malformed table is an error."""
    if path is None:
        return None, NO_RECALL_TABLE
    if not Path(path).is_file():
        return None, f"no recall table at {path}"
    return read_recall(Path(path)), ""


def _correction(observed: float, r: dict[str, Any] | None, absent: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(CORRECTION_COLUMNS, math.nan)
    row.update(recall_label_set="", recall_commit="", correction_note=absent)
    if r is None:
        return row
    row.update(precision=r["precision"], recall=r["recall"], recall_lo=r["recall_lo"],
               recall_hi=r["recall_hi"], recall_true_sites=r["true_sites"],
               recall_label_set=r["label_set"], recall_commit=r["commit"], correction_note="")
    if not r["true_sites"]:
        row["correction_note"] = f"no true site of the rule in {r['label_set']}: recall unknown"
        return row
    if r["tp"] == 0:
        # nothing found of n true sites: recall may be 0, so no finite upper bound exists
        row.update(corrected_instances_lo=observed / r["recall_hi"],
                   corrected_instances_hi=math.inf,
                   correction_note=f"recall 0 on {r['label_set']} (0 of {r['true_sites']} true "
                                   "sites found): no point estimate, no upper bound")
        return row
    row.update(corrected_instances=observed / r["recall"],
               corrected_instances_lo=observed / r["recall_hi"],
               corrected_instances_hi=observed / r["recall_lo"])
    return row


def correct_for_recall(table: pd.DataFrame, recall: pd.DataFrame | None,
                       absent: str = NO_RECALL_TABLE, count: str = "instances") -> pd.DataFrame:
    """``table`` (one row per rule, or per rule and era) with ``CORRECTION_COLUMNS`` set from
    the rule's row of ``recall`` (:func:`read_recall`).

    ``corrected_instances = table[count] / recall`` with ``[count / recall_hi, count /
    recall_lo]``; a rule without a recall row gets NaN and a ``correction_note`` saying why
    (``absent`` when no recall table was given at all). See the module docstring for what this
    corrects and what it does not.
    """
    out = table.copy()
    by_rule = ({} if recall is None else
               {str(r["rule"]): r for r in recall.to_dict("records")})
    missing = absent if recall is None else "no row for the rule in the recall table"
    rows = [_correction(float(n), by_rule.get(str(rule)), missing)
            for rule, n in zip(out["rule"], out[count], strict=True)]
    corrections = pd.DataFrame(rows, columns=CORRECTION_COLUMNS, index=out.index)
    for column in CORRECTION_COLUMNS:
        out[column] = corrections[column]
    return out


def recall_sources(table: pd.DataFrame, label_set_column: str = "recall_label_set",
                   commit_column: str = "recall_commit") -> list[str]:
    """``label set @ commit`` (first 12 characters) for each distinct source of the recall in
    ``table`` (a corrected table, or with the column names given, recall.csv), in order of
    first appearance; [] when none."""
    if label_set_column not in table.columns:
        return []
    seen: dict[str, None] = {}
    for label_set, commit in zip(table[label_set_column].fillna("").astype(str),
                                 table[commit_column].fillna("").astype(str), strict=True):
        if label_set:
            seen.setdefault(f"{label_set} @ {commit[:12]}" if commit else label_set, None)
    return list(seen)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _count(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.3g}"


def recall_text(row: Mapping[str, Any]) -> str:
    """``0.80 (0.44–0.97), 10 true sites`` from a corrected row; '' when it has no recall."""
    if not _finite(row.get("recall")):
        return ""
    return (f"{float(row['recall']):.2f} ({float(row['recall_lo']):.2f}–"
            f"{float(row['recall_hi']):.2f}), {int(float(row['recall_true_sites']))} true sites")


def corrected_text(row: Mapping[str, Any]) -> str:
    """``125 (103–160)``: the corrected instance count and its interval; ``≥ 40 (no upper
    bound)`` when the recall may be 0; '' when there is no correction."""
    low, high = row.get("corrected_instances_lo"), row.get("corrected_instances_hi")
    if not _finite(low):
        return ""
    if not _finite(high):
        return f"≥ {_count(float(low))} (no upper bound)"
    point = row.get("corrected_instances")
    shown = _count(float(point)) if _finite(point) else "?"
    return f"{shown} ({_count(float(low))}–{_count(float(high))})"


__all__ = ["CONFIDENCE", "CORRECTION_COLUMNS", "NO_RECALL_TABLE", "RECALL_COLUMNS", "RECALL_METRICS",
           "corrected_text", "recall_text",
           "correct_for_recall", "load_recall", "read_recall", "recall_row", "recall_sources",
           "recall_table"]
