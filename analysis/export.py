"""A mined corpus as a result folder that can be committed: its tables, no repository code.

:func:`export_mined` copies ``repos.csv``, ``instances.csv`` and ``events.csv`` from a ``mine``
output folder, leaving out every column that quotes a repository's code (:data:`CODE_COLUMNS`),
and the tables ``analyze`` computed from them (observed and recall-corrected prevalence per rule
and per era, lifetimes, survival, the overview), byte for byte; then it writes a README.md whose
every number is read from those tables (:func:`readme_text`). It refuses an analysis folder
computed from other mining outputs, and an output folder that already holds files.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from leakwatt.analysis.markup import fmt, fmt_count, inert, md_table
from leakwatt.analysis.prevalence import TABLES as ANALYSIS_TABLES
from leakwatt.analysis.prevalence import read_prevalence
from leakwatt.analysis.recall import corrected_text, recall_sources, recall_text
from leakwatt.common import LeakwattError, atomic_open, atomic_write_csv, atomic_write_text
from leakwatt.contracts import EVENTS, INSTANCES, REPOS, Table

#: columns of the mined tables that quote repository code, never exported: the reported
#: statement (``snippet``, in both tables) and a finding's ``message``, which for GCB quotes the
#: array's origin expression as written (``np.load(path)``). Kept: paths, lines, enclosing
#: function names and ``via`` (module and function names, no statements), and events.csv's
#: ``message``, the commit message's first line (the author's words, not code).
CODE_COLUMNS: Mapping[str, tuple[str, ...]] = {INSTANCES.file: ("snippet", "message"),
                                               EVENTS.file: ("snippet",)}
MINED_TABLES: tuple[Table, ...] = (REPOS, INSTANCES, EVENTS)
OK = "ok"
README = "README.md"
#: the prevalence.csv columns the README's history table reads
#: what each of analyze's tables holds, for the README's list of files
ANALYSIS_WHAT = {"prevalence": "observed and recall-corrected instances per rule, history counts",
                 "by_era": "observed and recall-corrected instances per rule and era",
                 "survival": "Kaplan–Meier survival curves per rule",
                 "lifetimes": "one row per instance seen in history",
                 "overview": "the mining run in one row"}
HISTORY_COLUMNS = {"introduced", "removed", "removed_code_changed", "removed_deleted_file",
                   "still_present", "km_median_days"}


def _read_mined(mined_dir: Path) -> dict[str, pd.DataFrame]:
    tables = {}
    for table in MINED_TABLES:
        path = mined_dir / table.file
        if not path.is_file():
            raise LeakwattError(f"{path}: not found (export-mined reads what `leakwatt mine` "
                                "wrote)")
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            raise LeakwattError(f"{path}: empty file (no header line)") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise LeakwattError(f"{path}: cannot parse: {str(exc).splitlines()[0]}") from None
        tables[table.file] = table.validate(frame, str(path))
    return tables


def _check_same_run(mined: dict[str, pd.DataFrame], overview: pd.Series, mined_dir: Path,
                    analysis_dir: Path) -> None:
    """The analysis tables were computed from these mining outputs (their counts agree)."""
    repos, events = mined[REPOS.file], mined[EVENTS.file]
    here = {"repos_total": len(repos), "repos_ok": int((repos["status"] == OK).sum()),
            "events": len(events)}
    there = {k: int(overview[k]) for k in here}
    if here != there:
        differ = ", ".join(f"{k} {there[k]} vs {here[k]}" for k in here if here[k] != there[k])
        raise LeakwattError(f"{analysis_dir}: its prevalence tables were computed from other "
                            f"mining outputs than {mined_dir} ({differ}); run `leakwatt analyze "
                            f"--mined {mined_dir}` again")


def _per_repo(frame: pd.DataFrame, repos: pd.DataFrame) -> list[int]:
    """Rows of ``frame`` (instances or events) per repository of ``repos``, matched by url or
    name (the miner writes either)."""
    counts = Counter(frame["repo"].astype(str))
    return [counts[url] + (counts[name] if name and name != url else 0)
            for url, name in zip(repos["url"], repos["name"] if "name" in repos else repos["url"],
                                 strict=True)]


def readme_text(title: str, repos: pd.DataFrame, instances: pd.DataFrame,
                events: pd.DataFrame, tables: Mapping[str, pd.DataFrame], sources: str,
                dropped: Mapping[str, tuple[str, ...]], written: str) -> str:
    """The README of an exported corpus: every number read from the tables given."""
    ok = repos["status"] == OK
    history = pd.to_numeric(repos.get("history_commits", pd.Series("", index=repos.index)),
                            errors="coerce").fillna(0).astype(int)
    walked = ok & (history > 0)
    failed = Counter(repos.loc[~ok, "status"])
    failed_text = (" (" + ", ".join(f"{status} {n}" for status, n in sorted(failed.items())) + ")"
                   if failed else "")
    removed = "; ".join(f"`{c}` of {f}" for f, cols in dropped.items() for c in cols)
    parts = [
        f"# {title}",
        f"Written by `leakwatt export-mined` on {written} from {sources}. Every number on this "
        "page is read from the tables in this folder. No repository code is included: "
        f"{removed or 'no column quoted code'} left out.",
        "## Repositories",
        f"{len(repos)} repositories in `repos.csv`: {int(ok.sum())} mined (`ok`), "
        f"{int((~ok).sum())} not mined{failed_text}. History walked for {int(walked.sum())} of "
        f"the {int(ok.sum())} mined repositories ({int(history[walked].sum())} commits; "
        f"{len(events)} introduction and removal events in `events.csv`); not walked for "
        f"{int((ok & ~walked).sum())}.",
    ]
    n_inst, n_events = _per_repo(instances, repos), _per_repo(events, repos)
    rows = []
    for i, r in enumerate(repos.to_dict("records")):
        status = r["status"] if r["status"] == OK else f"{r['status']}: {r.get('reason', '')}"
        rows.append([r.get("name") or r["url"], str(r.get("commit", ""))[:12], status,
                     f"walked, {history.iloc[i]} commits" if history.iloc[i] > 0
                     else "not walked", n_events[i], n_inst[i]])
    parts.append(md_table(["repository", "pinned commit", "status", "history", "events",
                           "instances"], rows))
    prevalence, overview = tables["prevalence"], tables["overview"].iloc[0]
    parts += ["## Instances per rule",
              f"{int(overview['instances'])} instances at the pinned commits of the mined "
              f"repositories ({fmt(overview['kloc'])} KLOC), from `prevalence.csv`."]
    if len(prevalence):
        parts.append(md_table(
            ["rule", "instances", "repositories affected", "per KLOC", "recall (95 % CI)",
             "recall-corrected instances (95 % CI)", "note"],
            [[r["rule"], int(r["instances"]), f"{int(r['repos_affected'])} / {int(r['repos_ok'])}",
              fmt(r["instances_per_kloc"], 3), recall_text(r), corrected_text(r),
              r.get("correction_note", "")] for r in prevalence.to_dict("records")]))
    used = recall_sources(prevalence)
    notes = sorted({str(n) for n in prevalence.get("correction_note", pd.Series(dtype=object))
                    .fillna("") if str(n)})
    parts.append(f"Recall from {', '.join(inert(s) for s in used)} (label set @ commit of the "
                 "detectors scored); the correction divides the observed count by the recall "
                 "and corrects instance counts for misses only (not repository shares; precision "
                 "is shown, not applied); its interval covers the recall's uncertainty only "
                 "(the corpus is mined in full, a census)." if used else
                 "Not corrected for recall: "
                 f"{inert('; '.join(notes)) or 'analyze was given no recall table'}.")
    if len(prevalence) and set(prevalence.columns) >= HISTORY_COLUMNS:
        parts += ["## History per rule",
                  "Instances introduced and removed in the walked histories, from "
                  "`prevalence.csv` (Kaplan–Meier curves in `survival.csv`, one row per "
                  "instance in `lifetimes.csv`).",
                  md_table(["rule", "introduced", "removed", "fixed / file deleted",
                            "still present", "lost in history", "Kaplan–Meier median days"],
                           [[r["rule"], int(r["introduced"]), int(r["removed"]),
                             f"{int(r['removed_code_changed'])} / {int(r['removed_deleted_file'])}",
                             int(r["still_present"]), fmt_count(r.get("lost_in_history")),
                             fmt(r["km_median_days"], 4)]
                            for r in prevalence.to_dict("records")]),
                  "*Lost in history*: instances the walk saw introduced and never saw removed "
                  "that the pinned commit does not hold (a snapshot that lacks a deleted file's "
                  "last blob, or a branching history walked as one line); their end is unknown, "
                  "so the survival curves leave them out instead of counting them as survivors."]
    by_era = tables["by_era"]
    if len(by_era):
        parts += ["## Instances per rule and era",
                  md_table(["rule", "era", "instances", "recall-corrected instances (95 % CI)"],
                           [[r["rule"], r["era"], int(r["instances"]), corrected_text(r)]
                            for r in by_era.to_dict("records")])]
    files = [[REPOS.file, "one row per corpus repository (mine)"],
             [INSTANCES.file, "one row per smell instance at the pin (mine), without code"],
             [EVENTS.file, "introductions and removals in history (mine), without code"]]
    files += [[t.file, f"{ANALYSIS_WHAT.get(name, name)} (analyze)"]
              for name, t in ANALYSIS_TABLES.items()]
    parts += ["## Files", md_table(["file", "what"], files),
              "Columns: docs/data.md of leakwatt."]
    return "\n\n".join(parts) + "\n"


def export_mined(mined_dir: Path, analysis_dir: Path, out_dir: Path,
                 now: dt.datetime | None = None) -> list[Path]:
    """Write the exported corpus into ``out_dir`` (new or empty); returns the files written."""
    mined_dir, analysis_dir, out_dir = Path(mined_dir), Path(analysis_dir), Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise LeakwattError(f"{out_dir}: already exists and is not an empty folder; give a new "
                            "--out (an export is never overwritten)")
    mined = _read_mined(mined_dir)
    tables = read_prevalence(analysis_dir)
    if tables is None:
        raise LeakwattError(f"{analysis_dir}: no prevalence.csv; run `leakwatt analyze --mined "
                            f"{mined_dir}` first")
    _check_same_run(mined, tables["overview"].iloc[0], mined_dir, analysis_dir)
    written: list[Path] = []
    dropped: dict[str, tuple[str, ...]] = {}
    for table in MINED_TABLES:
        frame = mined[table.file]
        code = tuple(c for c in CODE_COLUMNS.get(table.file, ()) if c in frame.columns)
        if code:
            dropped[table.file] = code
        atomic_write_csv(out_dir / table.file, frame.drop(columns=list(code)))
        written.append(out_dir / table.file)
    for table in ANALYSIS_TABLES.values():
        with atomic_open(out_dir / table.file, "wb") as fh:
            fh.write((analysis_dir / table.file).read_bytes())
        written.append(out_dir / table.file)
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    text = readme_text(f"Mined corpus: {out_dir.name}", mined[REPOS.file],
                       mined[INSTANCES.file], mined[EVENTS.file], tables,
                       f"`{mined_dir.name}` (mine) and `{analysis_dir.name}` (analyze)", dropped,
                       stamp)
    atomic_write_text(out_dir / README, text)
    written.append(out_dir / README)
    return written


__all__ = ["CODE_COLUMNS", "MINED_TABLES", "export_mined", "readme_text"]
