"""What a finding costs, as the study measured it (issue 20, item 6).

The linter's findings carry the measured cost of their rule and variant: the newest committed
result under ``results/`` that measured a reproduction of that variant, per framework level, with
the result folder as provenance. The numbers live in one generated module,
:mod:`leakwatt.mining.cost_table`, rebuilt from ``results/`` by ``leakwatt costs`` (the study
install) and checked against the committed results by ``tests/test_costs.py``; this module only
reads it, with the standard library, so the light install (``pip install leakwatt``) has it too.

Units are named truly: where the result's energy was CodeCarbon's estimate (no RAPL/NVML
counter), the priced metric is the measured window's **time** (``duration_s``), not energy.
"""

from __future__ import annotations

from typing import Any

from leakwatt.mining import cost_table

#: the reason given when no committed result measured a rule's variant
NOT_MEASURED = "cost not measured yet"


def measurements(rule: str, variant: str) -> list[dict[str, Any]]:
    """The committed measurements that price ``rule``/``variant``, newest result first."""
    return list(cost_table.TABLE.get(rule, {}).get(variant, []))


def cost(rule: str, variant: str) -> dict[str, Any] | None:
    """The cost object of a finding (JSON/SARIF ``cost``): the newest measurement, or None."""
    found = measurements(rule, variant)
    if not found:
        return None
    newest = dict(found[0])
    newest["summary"] = summary(newest)
    return newest


def reason(rule: str, variant: str) -> str:
    """Why a finding has no cost: said in its ``cost_reason`` when ``cost`` is null."""
    if rule not in cost_table.TABLE:
        return f"{NOT_MEASURED}: no committed result measured a reproduction of {rule}"
    return (f"{NOT_MEASURED}: no committed result measured a reproduction of {rule} variant "
            f"{variant} (measured: {', '.join(sorted(cost_table.TABLE[rule]))})")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f} %"


def _interval(level: dict[str, Any]) -> str:
    low, high = level.get("ci_low"), level.get("ci_high")
    if low is None or high is None:
        return ""
    return f" [{low:+.1f}, {high:+.1f}]"


def _level_text(level: dict[str, Any], unit: str) -> str:
    per_event = level.get("per_event")
    if per_event:
        text = (f"{per_event['a']:+.3g} s per {per_event['event']} "
                f"[{per_event['a_ci_low']:+.3g}, {per_event['a_ci_high']:+.3g}]")
        if per_event.get("grows"):
            low, high = per_event.get("marginal_high_ci_low"), per_event.get("marginal_high_ci_high")
            bounds = "" if low is None or high is None else f" [{low:+.3g}, {high:+.3g}]"
            text += (f" (the average; the cost grows with each: at dose {per_event['at_dose']} "
                     f"one more costs {per_event['marginal_high']:+.3g} s{bounds})")
        memory = level.get("memory_per_event_mb")
        if memory is not None:
            text += f", {memory:+.2f} MB peak RSS per {per_event['event']}"
        return f"{level['framework']}: {text}"
    text = f"{level['framework']}: {unit} {_pct(level.get('pct_change'))}{_interval(level)}"
    if level.get("memory_mb") is not None:
        text += f", peak RSS {level['memory_mb']:+.1f} MB"
    return text


def summary(entry: dict[str, Any]) -> str:
    """One line: the cost per level, the dose it was measured at and where it comes from."""
    unit = entry.get("unit", "time")
    levels = "; ".join(_level_text(level, unit) for level in entry.get("levels", []))
    dose = entry.get("dose_note") or ""
    tail = f"results/{entry['result']}, pair {entry['pair_id']}"
    if entry.get("provisional"):
        tail += f"; provisional: {entry['provisional']}"
    return f"{levels} ({dose + '; ' if dose else ''}{tail})"


def cost_and_reason(rule: str, variant: str) -> tuple[dict[str, Any] | None, str]:
    """The cost object (or None) and, when None, why ("cost not measured yet: ...")."""
    found = cost(rule, variant)
    return found, "" if found is not None else reason(rule, variant)


def annotate(finding: dict[str, Any]) -> dict[str, Any]:
    """A finding's JSON dict with ``cost`` and ``cost_reason`` (:func:`cost_and_reason`)."""
    finding["cost"], finding["cost_reason"] = cost_and_reason(
        str(finding.get("rule", "")), str(finding.get("variant", "")))
    return finding


def finding_text(rule: str, variant: str) -> str:
    """The cost line printed under a finding in text output."""
    found = cost(rule, variant)
    if found is None:
        return NOT_MEASURED
    return f"measured cost: {found['summary']}"


def rule_cost_markdown(rule: str) -> str:
    """``leakwatt rules ID``: the rule's measured costs, one table row per variant and level."""
    table = cost_table.TABLE.get(rule, {})
    out = ["### Measured cost", ""]
    if not table:
        out.append(f"{NOT_MEASURED}: no committed result measured a reproduction of {rule}.")
        return "\n".join(out)
    unit = "time"
    out += ["| variants | level | change | 95 % CI | peak RSS | per event | result (pair) |",
            "|---|---|---|---|---|---|---|"]
    # variants priced by the same measurement share its rows
    groups: dict[tuple[str, str, str], list[str]] = {}
    entries: dict[tuple[str, str, str], dict[str, Any]] = {}
    for variant in sorted(table):
        entry = table[variant][0]
        key = (entry["result"], entry["pair_id"], entry["device"])
        groups.setdefault(key, []).append(variant)
        entries[key] = entry
    for key, variants in groups.items():
        entry = entries[key]
        unit = entry.get("unit", unit)
        names = ", ".join(f"`{v}`" for v in variants)
        for level in entry["levels"]:
            interval = _interval(level).strip(" []") or "n/a"
            memory = ("n/a" if level.get("memory_mb") is None
                      else f"{level['memory_mb']:+.1f} MB")
            per_event = level.get("per_event")
            per = (f"{per_event['a']:+.3g} s / {per_event['event']}" if per_event else "")
            out.append(f"| {names} | {level['framework']} | {_pct(level.get('pct_change'))} "
                       f"| {interval} | {memory} | {per} | {entry['result']} "
                       f"({entry['pair_id']}, {entry['device']}) |")
    notes = sorted({f"{e[0]['pair_id']}: {e[0]['pair']}" for e in table.values()})
    provisional = sorted({f"{e[0]['pair_id']} ({e[0]['result']}): {e[0]['provisional']}"
                          for e in table.values() if e[0].get("provisional")})
    doses = sorted({f"{e[0]['pair_id']}: {e[0]['dose_note']}" for e in table.values()
                    if e[0].get("dose_note")})
    out += ["", f"Change: the {unit} of the smelly program relative to the clean one, per run "
            "(no hardware energy counter: time, not energy). Intervals are unadjusted 95 % "
            "t-intervals. Pairs:", ""]
    out += [f"- {n}" for n in notes]
    if doses:
        out += ["", "Measured at:", ""] + [f"- {d}" for d in doses]
    if provisional:
        out += ["", "Provisional:", ""] + [f"- {p}" for p in provisional]
    missing = [v for v in _variants(rule) if v not in table]
    if missing:
        out += ["", f"{NOT_MEASURED} for: " + ", ".join(f"`{v}`" for v in missing) + "."]
    out += ["", f"Table generated from `results/` by `leakwatt costs` "
            f"({cost_table.GENERATED_FROM})."]
    return "\n".join(out)


def _variants(rule: str) -> list[str]:
    from leakwatt.mining.rules import RULES

    cls = RULES.get(rule)
    return list(getattr(cls, "VARIANTS", {})) if cls is not None else []


__all__ = ["NOT_MEASURED", "annotate", "cost", "cost_and_reason", "finding_text", "measurements", "reason",
           "rule_cost_markdown", "summary"]
