"""Build the linter's cost table from the committed results (``leakwatt costs``; issue 20, item 6).

Every folder of ``results/`` that holds an analysis (``analysis/stats.csv``) is read, newest
first (folders are named by date). A pair is priced by the newest folder whose own ``runs.csv``
measured it (a folder that only re-analyses another folder's runs, as the catalogue result does
with the reference's paper pairs, is not its provenance). A folder whose analysis is not there
yet (a measurement in progress) is skipped and named in ``GENERATED_FROM``'s notes.

Which finding a pair prices:

- a mined family prices the rule variants that ``pipeline.repros.pairs`` maps to it (the same
  mapping ``leakwatt reproduce`` uses to build pairs from mined instances);
- the paper's pairs stand for the variants their programs reproduce, against the rule's own
  remedy: ``paper-imr`` (a model rebuilt every round without vs with ``clear_session()``) for the
  IMR variants whose family is an epochs loop, ``paper-utr`` (a GradientTape loop keeping loss,
  logits and gradient tensors vs floats) for UTR ``append-loss``/``append-output``/
  ``append-gradients``. ``paper-imr-del``/``-once``/``-xla`` compare other remedies and price no
  finding.

The priced metric is the one the analysis calls primary for the device's power source: energy
only where a hardware counter measured it (RAPL, NVML), else the window's time (``duration_s``).
Memory is the peak-RSS difference. Where the folder fitted a dose-response model
(``analysis/cost_model.csv``), the per-event cost (seconds and MB per leak event: the slope of
its linear fit, ``a_linear``, with its interval) is added.

The table is written as a Python module (``mining/cost_table.py``), so that it ships in the
light install without package data and is read without any dependency.
"""

from __future__ import annotations

import csv
import math
import pprint
import re
from pathlib import Path
from typing import Any

from leakwatt.common import LeakwattError, atomic_write_text

#: the module the linter reads (relative to the repository root)
TABLE_MODULE = Path("mining") / "cost_table.py"
#: UTR variants the paper's UTR program reproduces (it keeps loss, logits and gradient tensors)
PAPER_UTR_VARIANTS = ("append-loss", "append-output", "append-gradients")
#: the memory metric reported beside the priced one
MEMORY_METRIC = "peak_rss_mb"
_PRIMARY_TEST = "paired_t"
_HEADER = '''\
"""The measured cost of each rule variant, per framework level (generated: do not edit).

Rebuilt from the committed results by ``leakwatt costs`` (``pipeline/cost_table.py`` says how);
``tests/test_costs.py`` checks that it matches ``results/``. Read by ``leakwatt.mining.costs``.
"""

# ruff: noqa: E501
'''


def _stand_ins() -> dict[str, list[tuple[str, str]]]:
    from leakwatt.pipeline.repros.pairs import IMR_VARIANTS, families_of

    epochs = sorted(v for v in IMR_VARIANTS if families_of("IMR", v)[0][0].startswith("imr-epochs"))
    return {"paper-imr": [("IMR", v) for v in epochs],
            "paper-utr": [("UTR", v) for v in PAPER_UTR_VARIANTS]}


def priced_variants(pair_id: str) -> list[tuple[str, str]]:
    """The (rule, variant) findings a measured pair prices (see the module docstring)."""
    from leakwatt.pipeline.repros.pairs import IMR_VARIANTS, VARIANT_FAMILIES, families_of

    stand_ins = _stand_ins()
    if pair_id in stand_ins:
        return stand_ins[pair_id]
    found = {(rule, variant) for (rule, variant), families in VARIANT_FAMILIES.items()
             if pair_id in families}
    found |= {("IMR", v) for v in IMR_VARIANTS if pair_id in families_of("IMR", v)[0]}
    return sorted(found)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _number(value: str | None) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return round(number, 4) if math.isfinite(number) else None


def _measured(folder: Path) -> dict[tuple[str, str], set[str]]:
    """(pair, device) -> the power sources of the folder's own counted runs."""
    out: dict[tuple[str, str], set[str]] = {}
    for runs in sorted(folder.glob("runs.csv")) + sorted(folder.glob("*/runs.csv")):
        for row in _read(runs):
            if row.get("status") != "ok" or row.get("instrumented", "0") not in ("", "0"):
                continue
            device = row.get("device", "cpu")
            col = "gpu_power_source" if device == "gpu" else "cpu_power_source"
            out.setdefault((row["pair_id"], device), set()).add(row.get(col, "") or "")
    return out


def _control_outside(folder: Path) -> bool:
    """Whether the folder's runs kept the leak's control out of the measured windows: their
    runs.csv has the ``instrumented`` column (issue 18: separate control runs). Older runs
    counted the leak inside every measured round (a GC and heap walk), so their costs
    include the instrument's."""
    for runs in sorted(folder.glob("runs.csv")) + sorted(folder.glob("*/runs.csv")):
        with runs.open(newline="", encoding="utf-8") as fh:
            if "instrumented" not in (next(csv.reader(fh), None) or []):
                return False
    return True


def _descriptions(folder: Path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for pairs in sorted(folder.glob("*/pairs.csv")):
        for row in _read(pairs):
            out.setdefault(row["pair_id"], row)
    return out


def _priced_metric(device: str, sources: set[str]) -> tuple[str, str]:
    wanted = "nvml" if device == "gpu" else "rapl"
    counted = bool(sources) and all(wanted in s.lower() for s in sources)
    return ("energy_kwh", "energy") if counted else ("duration_s", "time")


def _growth(model: dict[str, str]) -> dict[str, Any]:
    """The last event's cost where the curve is resolved to grow faster than linearly.

    The linear slope is an average over the measured doses; under a convex cost (a quadratic
    term whose interval excludes 0 and is positive) the event at the highest dose costs more
    than that average, and a user reading only the slope would under-price a long leak. The
    quadratic model's marginal cost at the highest dose says how much more."""
    low = _number(model.get("b_ci_low"))
    marginal = _number(model.get("marginal_high"))
    doses = [float(d) for d in re.findall(r"[0-9.]+", model.get("doses") or "")]
    if low is None or low <= 0 or marginal is None or not doses:
        return {}
    return {"grows": True, "at_dose": int(max(doses)) if max(doses).is_integer() else max(doses),
            "marginal_high": marginal,
            "marginal_high_ci_low": _number(model.get("marginal_high_ci_low")),
            "marginal_high_ci_high": _number(model.get("marginal_high_ci_high"))}


def _entry(folder: Path, pair_id: str, device: str, sources: set[str],
           stats: list[dict[str, str]], cost_model: list[dict[str, str]],
           description: dict[str, str]) -> dict[str, Any] | None:
    metric, unit = _priced_metric(device, sources)

    def rows(m: str) -> dict[str, dict[str, str]]:
        return {r["framework"]: r for r in stats
                if r["pair_id"] == pair_id and r["device"] == device and r["metric"] == m
                and r["test"] == _PRIMARY_TEST and r.get("smell") != "AA"}

    priced, memory = rows(metric), rows(MEMORY_METRIC)
    if not priced:
        return None
    levels: list[dict[str, Any]] = []
    foreign = unreliable = 0
    doses = set()
    for framework in sorted(priced):
        row = priced[framework]
        level: dict[str, Any] = {
            "framework": framework, "n": int(float(row.get("n") or 0)),
            "pct_change": _number(row.get("pct_change")), "ci_low": _number(row.get("ci_low")),
            "ci_high": _number(row.get("ci_high")), "p_adj": _number(row.get("p_adj")),
            "mean_smelly": _number(row.get("mean_smelly")),
            "mean_clean": _number(row.get("mean_clean")),
        }
        mem = memory.get(framework)
        level["memory_mb"] = _number(mem.get("mean_diff")) if mem else None
        level["memory_pct"] = _number(mem.get("pct_change")) if mem else None
        for model in cost_model:
            if (model["pair_id"], model["device"], model["framework"]) != (
                    pair_id, device, framework):
                continue
            # the linear fit's slope: the average cost of one event over the measured doses
            # (the quadratic model's `a` is the marginal cost at dose 0; cost_model.csv has both)
            slope = _number(model.get("a_linear"))
            if model["metric"] == metric and slope is not None:
                level["per_event"] = {
                    "a": slope, "a_ci_low": _number(model.get("a_linear_ci_low")),
                    "a_ci_high": _number(model.get("a_linear_ci_high")),
                    "event": model.get("event") or "event", "doses": model.get("doses", "")}
                level["per_event"].update(_growth(model))
            elif model["metric"] == MEMORY_METRIC and slope is not None:
                level["memory_per_event_mb"] = slope
        foreign += int(float(row.get("n_foreign_load") or 0))
        unreliable += row.get("ci_reliable", "True") == "False"
        if row.get("dose"):
            doses.add(row["dose"])
        levels.append(level)
    scale = description.get("scale", "")
    dose_note = (f"at dose {', '.join(sorted(doses))} (the highest measured)" if doses
                 else f"one dose: the {scale} program" if scale else "")
    provisional = []
    if not _control_outside(folder):
        provisional.append("its positive control ran inside the measured window (before "
                           "issue 18's control runs)")
    if foreign:
        provisional.append(f"{foreign} run(s) under foreign load")
    if unreliable:
        provisional.append("n below the minimum for a reliable interval")
    return {"result": folder.name, "pair_id": pair_id, "device": device,
            "pair": description.get("description", ""), "metric": metric, "unit": unit,
            "dose_note": dose_note, "provisional": "; ".join(provisional), "levels": levels}


def build_table(results_dir: Path) -> tuple[dict[str, dict[str, list[dict[str, Any]]]], list[str]]:
    """The cost table and the notes on what it was built from (folders read and skipped)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise LeakwattError(f"{results_dir}: no results folder")
    table: dict[str, dict[str, list[dict[str, Any]]]] = {}
    priced: set[tuple[str, str]] = set()
    notes: list[str] = []
    for folder in sorted((p for p in results_dir.iterdir() if p.is_dir()), reverse=True):
        stats_path = folder / "analysis" / "stats.csv"
        if not (folder / "runs.csv").is_file() and not stats_path.is_file():
            continue  # not a measurement (a mined corpus, `export-mined`): nothing to price
        if not stats_path.is_file():
            notes.append(f"{folder.name} skipped (no analysis yet)")
            continue
        stats = _read(stats_path)
        model_path = folder / "analysis" / "cost_model.csv"
        cost_model = _read(model_path) if model_path.is_file() else []
        descriptions = _descriptions(folder)
        used = False
        for (pair_id, device), sources in sorted(_measured(folder).items()):
            if (pair_id, device) in priced:
                continue
            entry = _entry(folder, pair_id, device, sources, stats, cost_model,
                           descriptions.get(pair_id, {}))
            if entry is None:
                continue
            variants = priced_variants(pair_id)
            if not variants:
                continue
            priced.add((pair_id, device))
            used = True
            for rule, variant in variants:
                table.setdefault(rule, {}).setdefault(variant, []).append(entry)
        notes.append(f"{folder.name}{'' if used else ' (no finding priced)'}")
    for variants in table.values():
        for entries in variants.values():
            entries.sort(key=lambda e: (e["result"], e["device"] == "cpu"), reverse=True)
    return table, notes


def render(table: dict[str, Any], notes: list[str]) -> str:
    """The generated module's text. One measurement prices several variants (``paper-imr``
    prices five IMR variants), so each is written once (``MEASUREMENTS``) and the variants
    name it by index; ``TABLE`` (rule -> variant -> measurements) is rebuilt from them."""
    measurements: list[dict[str, Any]] = []
    index: dict[int, int] = {}  # id() of an entry of build_table -> its position
    variants: dict[str, dict[str, list[int]]] = {}
    for rule in sorted(table):
        for variant in sorted(table[rule]):
            refs = variants.setdefault(rule, {}).setdefault(variant, [])
            for entry in table[rule][variant]:
                if id(entry) not in index:
                    index[id(entry)] = len(measurements)
                    measurements.append(entry)
                refs.append(index[id(entry)])
    return (f"{_HEADER}\nGENERATED_FROM = {'; '.join(notes)!r}\n\n"
            f"MEASUREMENTS: list = {pprint.pformat(measurements, width=100, sort_dicts=True)}\n\n"
            f"VARIANTS: dict = {pprint.pformat(variants, width=100, sort_dicts=True)}\n\n"
            "TABLE: dict = {rule: {variant: [MEASUREMENTS[i] for i in refs]\n"
            "                      for variant, refs in by_variant.items()}\n"
            "               for rule, by_variant in VARIANTS.items()}\n")


def write_table(root: Path, check: bool = False) -> tuple[bool, Path]:
    """Rebuild ``mining/cost_table.py`` under ``root`` from ``root/results``; with ``check``,
    only compare. Returns (whether the file is current, its path)."""
    table, notes = build_table(Path(root) / "results")
    text = render(table, notes)
    target = Path(root) / TABLE_MODULE
    current = target.is_file() and target.read_text(encoding="utf-8") == text
    if not check and not current:
        atomic_write_text(target, text)
    return current, target


__all__ = ["PAPER_UTR_VARIANTS", "TABLE_MODULE", "build_table", "priced_variants", "render",
           "write_table"]
