"""How common the smells are and how long they live, from the ``mine`` stage's outputs.

* **Prevalence** per rule over the repositories mined successfully (``repos.csv`` status ``ok``):
  instances at the pin, instances per KLOC, share of repositories with at least one instance.
* **Lifetimes** from ``events.csv``: each ``removed`` event closes the open ``introduced`` event
  with the same ``instance`` id when events carry one (stable across renames); otherwise the
  oldest open one of the same repository, rule and file, preferring the same enclosing function
  and snippet. Open instances are right-censored at the last date (and commit index) seen for their
  repository. Time is measured in days and, when ``events.csv`` has a ``commit_index`` or
  ``seq`` column (the commit's position in the walked history), in commits.
* **Survival**: Kaplan-Meier curves per rule (``statsmodels.duration.survfunc.SurvfuncRight``,
  Greenwood standard errors), medians of the removed instances' lifetimes, and the share of
  removals that fixed the code (``code_changed``) vs deleted the file (``deleted_file``).
* **Recall correction** (issue 21): with a recall table (``recall.csv``, one row per rule from a
  labelled set), each rule's instance count in ``prevalence.csv`` and ``prevalence_by_era.csv``
  gets a corrected count ``instances / recall`` with the interval ``[instances / recall_hi,
  instances / recall_lo]`` (:mod:`leakwatt.analysis.recall`). It corrects instance counts for
  misses only, not repository shares; precision is reported beside it and not applied; the
  interval covers the recall's uncertainty only (the corpus is a census, not a sample).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.duration.survfunc import SurvfuncRight

from leakwatt.analysis.recall import NO_RECALL_TABLE, correct_for_recall
from leakwatt.common import LeakwattError, atomic_write_csv
from leakwatt.contracts import (
    EVENTS,
    INSTANCES,
    LIFETIMES,
    OVERVIEW,
    PREVALENCE,
    PREVALENCE_BY_ERA,
    REPOS,
    SURVIVAL,
)

PREVALENCE_COLUMNS = list(PREVALENCE.columns)
LIFETIME_COLUMNS = list(LIFETIMES.columns)
#: lifetimes.csv ``fate``: removed in history, present at the pin (censored there), or lost
#: (open in history, absent at the pin: end unknown; see :func:`reconcile_with_pin`)
FATE_REMOVED, FATE_PRESENT, FATE_LOST = "removed", "present", "lost"
SURVIVAL_COLUMNS = list(SURVIVAL.columns)
OVERVIEW_COLUMNS = list(OVERVIEW.columns)
BY_ERA_COLUMNS = list(PREVALENCE_BY_ERA.columns)
#: instances.csv ``era`` (leakwatt.mining.era) -> the name the by-era table uses
ERA_NAMES = {"tf1": "tf1", "tf2": "tf2", "": "unknown"}
REPOS_REQUIRED = REPOS.required
INSTANCES_REQUIRED = INSTANCES.required
EVENTS_REQUIRED = EVENTS.required
OK_STATUS = "ok"
#: events.csv columns that give a commit's position in the walked history (first found wins).
INDEX_COLUMNS = ("commit_index", "seq")
Z95 = 1.959963984540054


def _require(frame: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise LeakwattError(f"{source}: line 1: missing column(s) {', '.join(missing)}")


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series("", index=frame.index, dtype=object)
    return frame[column].fillna("").astype(str).str.strip()


def _numbers(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    raw = _text(frame, column)
    values = pd.to_numeric(raw.where(raw != "", np.nan), errors="coerce")
    bad = (raw != "") & values.isna()
    if bad.any():
        i = bad.idxmax()
        raise LeakwattError(
            f"{source}: line {frame.index.get_loc(i) + 2}: {column} {raw[i]!r} is not a number")
    return values.astype(float)


def _dates(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    raw = _text(frame, column)
    values = pd.to_datetime(raw.where(raw != "", None), errors="coerce", utc=True,
                            format="mixed")
    bad = values.isna()
    if bad.any():
        i = bad.idxmax()
        raise LeakwattError(
            f"{source}: line {frame.index.get_loc(i) + 2}: {column} {raw[i]!r} is not a date")
    return values


def _repo_keys(repos: pd.DataFrame) -> dict[str, str]:
    """Identifier (url or name) -> url, for every repository row."""
    keys: dict[str, str] = {}
    for url, name in zip(_text(repos, "url"), _text(repos, "name"), strict=True):
        keys[url] = url
        if name:
            keys.setdefault(name, url)
    return keys


def lifetimes(events: pd.DataFrame, repos: pd.DataFrame | None = None,
              source: str = "events.csv") -> tuple[pd.DataFrame, pd.Series]:
    """One row per introduced instance: how long it lived and whether it was removed.

    Returns the lifetimes frame and the number of unmatched ``removed`` events per rule.
    """
    _require(events, EVENTS_REQUIRED, source)
    ev = events.copy()
    ev.index = pd.RangeIndex(len(ev))
    kind = _text(ev, "event")
    bad = ~kind.isin(["introduced", "removed"])
    if bad.any():
        i = bad.idxmax()
        raise LeakwattError(
            f"{source}: line {i + 2}: event {kind[i]!r} is not introduced or removed")
    ev["event"] = kind
    for col in ("repo", "rule", "path", "commit", "function", "snippet", "removal"):
        ev[col] = _text(ev, col)
    ev["_date"] = _dates(ev, "date", source)
    index_col = next((c for c in INDEX_COLUMNS if c in events.columns), None)
    has_index = index_col is not None
    ev["_cidx"] = _numbers(ev, index_col, source) if index_col else np.nan
    ev["instance"] = _text(ev, "instance")
    ev["_order"] = np.arange(len(ev))
    sort_by = ["repo", "_cidx", "_date", "_order"] if has_index else ["repo", "_date", "_order"]
    ev = ev.sort_values(sort_by, kind="stable")

    censor_date = ev.groupby("repo")["_date"].max() if len(ev) else pd.Series(dtype=object)
    censor_cidx = ev.groupby("repo")["_cidx"].max() if len(ev) else pd.Series(dtype=float)
    if repos is not None and len(repos):
        # repos.csv's pin_date (the pinned commit's date): instances still present are
        # censored there, not at the repository's last event
        date_col = next((c for c in ("pin_date", "date", "commit_date") if c in repos.columns
                         and _text(repos, c).ne("").any()), None)
        if date_col is not None:
            pinned = dict(zip(_text(repos, "url"), pd.to_datetime(
                _text(repos, date_col), errors="coerce", utc=True, format="mixed"), strict=True))
            keys = _repo_keys(repos)
            for repo in censor_date.index:
                date = pinned.get(keys.get(repo, ""))
                if date is not None and pd.notna(date):
                    censor_date[repo] = max(censor_date[repo], date)

    open_: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    rows: list[dict[str, Any]] = []
    unmatched: dict[str, int] = {}
    for event in ev.to_dict("records"):
        key = ((event["repo"], "instance", event["instance"]) if event["instance"]
               else (event["repo"], event["rule"], event["path"]))
        if event["event"] == "introduced":
            open_.setdefault(key, []).append(event)
            continue
        candidates = open_.get(key, [])
        if not candidates:
            unmatched[event["rule"]] = unmatched.get(event["rule"], 0) + 1
            continue
        chosen = next((c for c in candidates if c["function"] == event["function"]
                       and c["snippet"] == event["snippet"]), None)
        if chosen is None:
            chosen = next((c for c in candidates if c["function"] == event["function"]),
                          candidates[0])
        candidates.remove(chosen)
        rows.append(_lifetime(chosen, event["commit"], event["_date"], event["_cidx"], True,
                              event["removal"]))
    for items in open_.values():
        for intro in items:
            repo = intro["repo"]
            rows.append(_lifetime(intro, "", censor_date.get(repo, intro["_date"]),
                                  censor_cidx.get(repo, math.nan), False, ""))
    frame = pd.DataFrame(rows, columns=LIFETIME_COLUMNS)
    frame = frame.sort_values(["repo", "rule", "path", "introduced_date"], kind="stable",
                              ignore_index=True)
    return frame, pd.Series(unmatched, dtype=int)


def _lifetime(intro: dict[str, Any], end_commit: str, end_date: Any, end_cidx: float,
              removed: bool, removal: str) -> dict[str, Any]:
    days = max(0.0, (end_date - intro["_date"]).total_seconds() / 86400.0)
    commits = end_cidx - intro["_cidx"]
    return {
        "repo": intro["repo"], "rule": intro["rule"], "path": intro["path"],
        "function": intro["function"], "introduced_commit": intro["commit"],
        "introduced_date": intro["_date"].isoformat(), "end_commit": end_commit,
        "end_date": end_date.isoformat(), "days": days,
        "commits": max(0.0, commits) if math.isfinite(commits) else math.nan,
        "removed": bool(removed), "removal": removal,
        "fate": FATE_REMOVED if removed else FATE_PRESENT,
    }


def reconcile_with_pin(life: pd.DataFrame, instances: pd.DataFrame,
                       repos: pd.DataFrame) -> pd.DataFrame:
    """Mark the open lifetimes the pinned commit does not hold as ``lost`` (``fate``).

    The history walk ends every instance it saw introduced with a removal event or leaves it
    open until the pin. Some removals are never seen: a file deleted where the snapshot lacks its
    last blob (no events are guessed there), an instance introduced on two branches that merged,
    or a path whose rename a parallel branch's change hid (the walk orders a branching history
    as one line). Such an instance would count as surviving to the pin, which the pin scan
    contradicts. Per ``ok`` repository, rule and enclosing function (rule only when
    ``instances`` has no ``function`` column), the open lifetimes beyond the number of
    instances the pin holds are ``lost``: their end is unknown, so survival leaves them out
    rather than censor them at the pin. Which open ones are kept: those whose path the pin has
    for that group first, then the most recently introduced (an older open one has had more
    commits in which to lose its removal). ``instances`` are the ok repositories' pin
    instances (``_url`` set, as :func:`_ok_instances` returns them)."""
    if life.empty:
        return life
    out = life.copy()
    keys = _repo_keys(repos)
    ok_urls = set(_text(repos, "url")[_text(repos, "status") == OK_STATUS])
    url = _text(out, "repo").map(lambda r: keys.get(r, r))
    candidates = out[(out["fate"] == FATE_PRESENT) & url.isin(ok_urls)]
    if candidates.empty:
        return out
    by_function = "function" in instances.columns
    group_cols = ["_url", "rule", "function"] if by_function else ["_url", "rule"]
    inst = instances.assign(rule=_text(instances, "rule"), path=_text(instances, "path"),
                            function=_text(instances, "function") if by_function else "")
    pin_count = inst.groupby(group_cols).size()
    pin_paths = inst.groupby(group_cols)["path"].agg(set)
    lost: list[Any] = []
    for key, group in candidates.assign(_url=url).groupby(group_cols, sort=False):
        keep = int(pin_count.get(key, 0))
        if len(group) <= keep:
            continue
        paths = pin_paths.get(key, set())
        ranked = group.assign(_elsewhere=~group["path"].isin(paths)).sort_values(
            ["_elsewhere", "introduced_date"], ascending=[True, False], kind="stable")
        lost.extend(ranked.index[keep:])
    out.loc[lost, "fate"] = FATE_LOST
    return out


def kaplan_meier(durations: np.ndarray, observed: np.ndarray) -> pd.DataFrame:
    """Kaplan-Meier estimate (statsmodels) as a step table starting at (0, 1).

    ``ci_low``/``ci_high`` are pointwise 95 % bounds from Greenwood's standard error, clipped to
    [0, 1].
    """
    durations = np.asarray(durations, dtype=float)
    observed = np.asarray(observed, dtype=int)
    rows = [{"time": 0.0, "survival": 1.0, "se": 0.0, "ci_low": 1.0, "ci_high": 1.0,
             "at_risk": len(durations), "events": 0}]
    if len(durations) and observed.any():
        sf = SurvfuncRight(durations, observed)
        for t, s, se, risk, events in zip(sf.surv_times, sf.surv_prob, sf.surv_prob_se,
                                          sf.n_risk, sf.n_events, strict=True):
            se = float(se) if np.isfinite(se) else 0.0
            rows.append({"time": float(t), "survival": float(s), "se": se,
                         "ci_low": max(0.0, s - Z95 * se), "ci_high": min(1.0, s + Z95 * se),
                         "at_risk": int(risk), "events": int(events)})
    if len(durations) and durations.max() > rows[-1]["time"]:
        last = dict(rows[-1])
        last.update(time=float(durations.max()), at_risk=int((durations >= durations.max()).sum()),
                    events=0)
        rows.append(last)
    return pd.DataFrame(rows)


def km_median(durations: np.ndarray, observed: np.ndarray) -> float:
    """Kaplan-Meier median: the first time the curve is at or below 0.5; NaN when it never is."""
    curve = kaplan_meier(durations, observed)
    below = curve[curve["survival"] <= 0.5 + 1e-9]  # products of fractions are inexact
    return float(below["time"].iloc[0]) if len(below) else math.nan


def prevalence(repos: pd.DataFrame, instances: pd.DataFrame, events: pd.DataFrame,
               leak_commits: pd.DataFrame | None = None, recall: pd.DataFrame | None = None,
               no_recall: str = NO_RECALL_TABLE) -> dict[str, pd.DataFrame]:
    """Prevalence and survival tables from the mining outputs (any may hold headers only).

    Returns ``{"prevalence", "survival", "lifetimes", "overview", "by_era"}`` (columns in
    ``PREVALENCE_COLUMNS``, ``SURVIVAL_COLUMNS``, ``LIFETIME_COLUMNS``, ``OVERVIEW_COLUMNS``,
    ``BY_ERA_COLUMNS``). ``recall`` (:func:`leakwatt.analysis.recall.read_recall`) fills the
    prevalence and by-era tables' recall-correction columns
    (:func:`~leakwatt.analysis.recall.correct_for_recall`: instance counts corrected for misses
    only; repository shares are not corrected, precision is not applied, the interval is the
    recall's); without it they are NaN and ``correction_note`` says ``no_recall``.
    """
    _require(repos, REPOS_REQUIRED, "repos.csv")
    _require(instances, INSTANCES_REQUIRED, "instances.csv")
    repos = repos.reset_index(drop=True)
    kloc = _numbers(repos, "kloc", "repos.csv")
    ok = _text(repos, "status") == OK_STATUS
    kloc_ok = float(kloc[ok].fillna(0).sum())
    inst, inst_ok = _ok_instances(repos, instances)
    outside = len(inst) - len(inst_ok)

    life, unmatched = lifetimes(events, repos)
    life = reconcile_with_pin(life, inst_ok, repos)
    rules = sorted(set(inst["rule"]) | set(life["rule"]) | set(unmatched.index))
    rules = [r for r in rules if r]
    rows = []
    curves = []
    for rule in rules:
        mine = inst_ok[inst_ok["rule"] == rule]
        lt_all = life[life["rule"] == rule]
        lt = lt_all[lt_all["fate"] != FATE_LOST]  # end unknown: not censored at the pin
        removed = lt[lt["removed"].astype(bool)]  # an empty object column would select columns
        fixed = int((removed["removal"] == "code_changed").sum())
        deleted = int((removed["removal"] == "deleted_file").sum())
        notes = []
        other = int((inst["rule"] == rule).sum()) - len(mine)
        if other:
            notes.append(f"{other} instance(s) in repositories not ok or not in repos.csv")
        affected = mine["_url"].nunique()
        n_removed = len(removed)
        rows.append({
            "rule": rule, "repos_ok": int(ok.sum()), "repos_affected": int(affected),
            "share_repos_affected": affected / ok.sum() if ok.sum() else math.nan,
            "instances": len(mine), "kloc": kloc_ok,
            "instances_per_kloc": len(mine) / kloc_ok if kloc_ok > 0 else math.nan,
            "introduced": len(lt_all), "removed": n_removed, "removed_code_changed": fixed,
            "removed_deleted_file": deleted,
            "share_fixed": fixed / n_removed if n_removed else math.nan,
            "share_deleted": deleted / n_removed if n_removed else math.nan,
            "still_present": int((lt["fate"] == FATE_PRESENT).sum()),
            "lost_in_history": int((lt_all["fate"] == FATE_LOST).sum()),
            "median_survival_days": float(removed["days"].median()) if n_removed else math.nan,
            "median_survival_commits": (float(removed["commits"].median())
                                        if n_removed and removed["commits"].notna().any()
                                        else math.nan),
            "km_median_days": km_median(lt["days"].to_numpy(), lt["removed"].to_numpy()),
            "unmatched_removals": int(unmatched.get(rule, 0)),
            "note": "; ".join(notes),
        })
        for unit in ("days", "commits"):
            valid = lt[lt[unit].notna()]
            if len(valid):
                curve = kaplan_meier(valid[unit].to_numpy(), valid["removed"].to_numpy())
                curve.insert(0, "time_unit", unit)
                curve.insert(0, "rule", rule)
                curves.append(curve)
    table = correct_for_recall(pd.DataFrame(rows, columns=PREVALENCE_COLUMNS), recall, no_recall)
    survival = (pd.concat(curves, ignore_index=True) if curves
                else pd.DataFrame(columns=SURVIVAL_COLUMNS))[SURVIVAL_COLUMNS]

    leaks = leak_commits if leak_commits is not None else pd.DataFrame(columns=["repo"])
    overview = pd.DataFrame([{
        "repos_total": len(repos), "repos_ok": int(ok.sum()), "repos_failed": int((~ok).sum()),
        "kloc": kloc_ok, "instances": len(inst_ok), "events": len(events),
        "leak_commits": len(leaks),
        "repos_with_leak_commits": int(_text(leaks, "repo").replace("", np.nan).nunique()),
        "note": (f"{outside} instance(s) outside ok repositories not counted" if outside
                 else ""),
    }], columns=OVERVIEW_COLUMNS)
    return {"prevalence": table, "survival": survival, "lifetimes": life, "overview": overview,
            "by_era": correct_for_recall(_by_era(inst_ok, int(ok.sum())), recall, no_recall)}


def _ok_instances(repos: pd.DataFrame, instances: pd.DataFrame
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All instances (``_url`` matched through repos.csv, ``rule`` as text) and those of the
    repositories mined successfully."""
    ok = _text(repos, "status") == OK_STATUS
    ok_urls = set(_text(repos, "url")[ok])
    inst = instances.reset_index(drop=True).copy()
    inst["_url"] = _text(inst, "repo").map(_repo_keys(repos.reset_index(drop=True)))
    inst["rule"] = _text(inst, "rule")
    return inst, inst[inst["_url"].isin(ok_urls)]


def prevalence_by_era(repos: pd.DataFrame, instances: pd.DataFrame,
                      recall: pd.DataFrame | None = None,
                      no_recall: str = NO_RECALL_TABLE) -> pd.DataFrame:
    """Instances per rule and era of the file they were found in (``era`` of instances.csv:
    ``tf1`` graph-mode code, ``tf2`` eager code, ``unknown`` when the file names neither, or
    when instances.csv predates the column), over the repositories mined successfully.

    ``share_of_rule`` is the era's share of the rule's instances, ``share_repos_affected`` the
    share of the ok repositories with at least one instance of the rule in a file of that era.
    No per-KLOC rate: mining counts lines per repository, not per era.

    With ``recall``, each row's ``instances`` is corrected by the rule's recall, as in
    :func:`prevalence`; the labelled sets are not split by era, so this assumes the rule finds
    its instances equally well in both eras.
    """
    _require(repos, REPOS_REQUIRED, "repos.csv")
    _require(instances, INSTANCES_REQUIRED, "instances.csv")
    _, inst_ok = _ok_instances(repos, instances)
    table = _by_era(inst_ok, int((_text(repos, "status") == OK_STATUS).sum()))
    return correct_for_recall(table, recall, no_recall)


def _by_era(inst_ok: pd.DataFrame, n_ok: int) -> pd.DataFrame:
    inst = inst_ok.copy()
    era = _text(inst, "era") if "era" in inst.columns else pd.Series("", index=inst.index)
    unknown = sorted(set(era) - set(ERA_NAMES))
    if unknown:
        raise LeakwattError(f"instances.csv: era {unknown[0]!r} is not one of tf1, tf2 or empty")
    inst["_era"] = era.map(ERA_NAMES)
    rows = []
    for rule, mine in inst[inst["rule"] != ""].groupby("rule", sort=True):
        for name in ("tf1", "tf2", "unknown"):
            part = mine[mine["_era"] == name]
            affected = int(part["_url"].nunique())
            rows.append({"rule": rule, "era": name, "instances": len(part),
                         "share_of_rule": len(part) / len(mine) if len(mine) else math.nan,
                         "repos_affected": affected,
                         "share_repos_affected": affected / n_ok if n_ok else math.nan})
    return pd.DataFrame(rows, columns=BY_ERA_COLUMNS)


def _read(path: Path, required: bool = True) -> pd.DataFrame | None:
    if not path.is_file():
        if required:
            raise LeakwattError(f"{path}: mining output not found")
        return None
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise LeakwattError(f"{path}: empty file (no header line)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LeakwattError(f"{path}: cannot parse: {str(exc).splitlines()[0]}") from None


def read_mined(mined_dir: Path) -> dict[str, pd.DataFrame | None]:
    mined_dir = Path(mined_dir)
    return {
        "repos": _read(mined_dir / "repos.csv"),
        "instances": _read(mined_dir / "instances.csv"),
        "events": _read(mined_dir / "events.csv"),
        "leak_commits": _read(mined_dir / "leak_commits.csv", required=False),
    }


def prevalence_from_dir(mined_dir: Path, recall: pd.DataFrame | None = None,
                        no_recall: str = NO_RECALL_TABLE) -> dict[str, pd.DataFrame]:
    """:func:`prevalence` on ``mined_dir``'s repos.csv, instances.csv, events.csv
    (and leak_commits.csv when present), corrected with ``recall`` when given."""
    mined = read_mined(mined_dir)
    try:
        return prevalence(mined["repos"], mined["instances"], mined["events"],
                          mined["leak_commits"], recall, no_recall)
    except LeakwattError as exc:
        raise LeakwattError(f"{Path(mined_dir)}/{exc}") from None


#: table name in :func:`prevalence`'s result -> its contract (and file name in analyze's output).
TABLES = {"prevalence": PREVALENCE, "survival": SURVIVAL, "lifetimes": LIFETIMES,
          "overview": OVERVIEW, "by_era": PREVALENCE_BY_ERA}
#: text columns of the recall correction (a commit of digits only must stay text)
TEXT_COLUMNS = ("recall_label_set", "recall_commit", "correction_note")


def write_prevalence(mined_dir: Path, out_dir: Path, recall: pd.DataFrame | None = None,
                     no_recall: str = NO_RECALL_TABLE) -> dict[str, pd.DataFrame]:
    """Write ``prevalence.csv``, ``prevalence_by_era.csv``, ``survival.csv``, ``lifetimes.csv``
    and ``overview.csv`` (the first two corrected with ``recall`` when given; see
    :func:`prevalence`)."""
    tables = prevalence_from_dir(mined_dir, recall, no_recall)
    out_dir = Path(out_dir)
    for name, table in TABLES.items():
        atomic_write_csv(out_dir / table.file, tables[name].copy(), columns=list(table.columns))
    return tables


def read_prevalence(analysis_dir: Path) -> dict[str, pd.DataFrame] | None:
    """The tables :func:`write_prevalence` wrote into ``analysis_dir`` (typed as they were
    computed), or None when ``analyze`` was run without mining outputs."""
    analysis_dir = Path(analysis_dir)
    if not (analysis_dir / PREVALENCE.file).is_file():
        return None
    tables: dict[str, pd.DataFrame] = {}
    for name, table in TABLES.items():
        path = analysis_dir / table.file
        if not path.is_file():
            raise LeakwattError(f"{path}: not found beside {PREVALENCE.file} "
                                "(run the analyze stage again)")
        try:
            header = set(pd.read_csv(path, nrows=0).columns)
            frame = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS if c in header})
        except pd.errors.EmptyDataError:
            raise LeakwattError(f"{path}: empty file (no header line)") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise LeakwattError(f"{path}: cannot parse: {str(exc).splitlines()[0]}") from None
        for column in TEXT_COLUMNS:
            if column in frame.columns:
                frame[column] = frame[column].fillna("").astype(str)
        tables[name] = table.validate(frame, str(path))
    tables["by_era"]["era"] = tables["by_era"]["era"].fillna("unknown").astype(str)
    for name in ("prevalence", "overview"):
        if "note" in tables[name].columns:
            tables[name]["note"] = tables[name]["note"].fillna("").astype(str)
    lifetimes_ = tables["lifetimes"]
    lifetimes_["removed"] = lifetimes_["removed"].astype(str).str.lower().eq("true")
    if len(tables["overview"]) != 1:
        raise LeakwattError(f"{analysis_dir / OVERVIEW.file}: expected one row, "
                            f"found {len(tables['overview'])}")
    return tables


__all__ = [
    "LIFETIME_COLUMNS", "OVERVIEW_COLUMNS", "PREVALENCE_COLUMNS", "SURVIVAL_COLUMNS",
    "kaplan_meier", "km_median", "lifetimes", "prevalence", "prevalence_by_era",
    "prevalence_from_dir", "read_mined",
    "read_prevalence", "write_prevalence",
]
