"""Precision and recall of leakwatt's detectors on a hand-labelled set of real repositories.

Usage::

    python benchmarks/detector_accuracy.py [--labels FILE ...] [--mirror-dir DIR] [--verbose]
                                            [--write-recall PATH]

Any labels file in the same format can be scored (``--labels``, e.g. a held-out set; several
files are pooled into one score, e.g. two blind draws that judge the same rules); the
repositories are read from a folder of fetched git dirs or clones (``--mirror-dir``, laid out
``owner+name``, ``owner+name/repo`` or ``owner+name.git``), else cloned. Each labelled file is
scanned with its repository's project index at the pinned commit (every ``.py`` file of that
commit), as ``leakwatt mine`` does; ``--no-project`` scans the files alone.

The default labelled sites are in ``data/labels/detector_labels.csv`` (``repo, commit, path, line, rule,
label, reason``; see ``data/labels/README.md``). Each labelled file is materialised at its pinned
commit from a local mirror (``git show COMMIT:PATH``) or, when no mirror holds the repository,
from a clone made by :func:`leakwatt.mining.clone.checkout`. leakwatt's detectors then scan those files.
A finding matches a label when repo, path and rule agree and the line is within +-2 (and, in
notebooks, the cell is the same). Per rule: TP = ``true`` labels with a matching finding,
FN = ``true`` labels without one, FP = ``false`` labels (hard negatives) with a matching finding.
Findings on unlabelled lines of labelled files are counted as "unlabelled findings" and listed
with ``--verbose`` so they can be labelled. The same files are then scanned with semgrep and
the rules in ``benchmarks/semgrep/leak-rules.yaml`` (notebooks converted to Python first).

``--write-recall PATH`` writes leakwatt's score as the recall table ``analyze`` corrects the
prevalence with (``data/labels/recall.csv``; columns in docs/data.md): one row per rule scored,
with TP, FN, FP, precision, recall and its exact 95 % interval
(:func:`leakwatt.analysis.recall.recall_row`), the label set's file name, the commit of the
code scored and the time.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from leakwatt.analysis.recall import recall_row, recall_table  # noqa: E402
from leakwatt.common import atomic_write_csv  # noqa: E402
from leakwatt.mining.clone import CloneError, checkout, find_mirror  # noqa: E402
from leakwatt.mining.git import BlobReader, list_tree, run_git  # noqa: E402
from leakwatt.mining.notebook import NotebookError, notebook_source  # noqa: E402
from leakwatt.mining.rules.project import ProjectIndex, ProjectView  # noqa: E402
from leakwatt.mining.scan import scan_bytes  # noqa: E402

LABELS = ROOT / "data" / "labels" / "detector_labels.csv"
SEMGREP_RULES = ROOT / "benchmarks" / "semgrep" / "leak-rules.yaml"
RULES = ("IMR", "UTR", "DIR", "US")
SEMGREP_IDS = {"leak-imr": "IMR", "leak-utr": "UTR"}
TOLERANCE = 2
#: the code whose detectors are scored: uncommitted changes here mark the commit ``-dirty``
CODE_DIRS = ("core", "mining")


@dataclass(frozen=True)
class Label:
    repo: str
    commit: str
    path: str
    cell: int  # 0 for .py files
    line: int
    rule: str
    label: bool
    reason: str


@dataclass(frozen=True)
class Hit:
    repo: str
    path: str
    cell: int
    line: int
    rule: str
    snippet: str = ""


def parse_line(text: str) -> tuple[int, int]:
    """``"12"`` -> (0, 12); ``"7:3"`` (notebook cell 7, line 3) -> (7, 3)."""
    if ":" in text:
        cell, line = text.split(":", 1)
        return int(cell), int(line)
    return 0, int(text)


def load_labels(path: Path) -> list[Label]:
    out = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            cell, line = parse_line(row["line"].strip())
            lab = row["label"].strip().lower()
            if lab not in ("true", "false"):
                raise SystemExit(f"{path}: label must be true/false, got {lab!r}")
            out.append(Label(row["repo"].strip(), row["commit"].strip(), row["path"].strip(),
                             cell, line, row["rule"].strip().upper(), lab == "true",
                             row["reason"].strip()))
    return out


def load_label_sets(paths: list[Path]) -> list[Label]:
    """The labels of several files, pooled. A site (repository, file, cell, line, rule) that two
    files both label is refused: pooled, it would count twice."""
    out: list[Label] = []
    seen: dict[tuple[str, str, int, int, str], Path] = {}
    for path in paths:
        for lab in load_labels(path):
            key = (lab.repo.lower(), lab.path, lab.cell, lab.line, lab.rule)
            if key in seen and seen[key] != path:
                raise SystemExit(f"{path}: site {lab.repo} {lab.path}:{lab.line} {lab.rule} is "
                                 f"also labelled in {seen[key]}; pooled sets must not overlap")
            seen[key] = path
            out.append(lab)
    return out


def _project_from_mirror(mirror: Path, commit: str) -> ProjectIndex:
    texts: dict[str, str] = {}
    entries = [e for e in list_tree(mirror, commit)
               if e.kind == "blob" and e.path.endswith(b".py") and (e.size or 0) < 1_048_576]
    with BlobReader(mirror) as reader:
        for e in entries:
            data = reader.read(e.sha)
            try:
                if data is not None:
                    texts[e.path.decode("utf-8")] = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                continue
    return ProjectIndex(texts)


def _project_from_tree(tree: Path) -> ProjectIndex:
    texts: dict[str, str] = {}
    for f in tree.rglob("*.py"):
        if ".git" in f.parts or not f.is_file() or f.stat().st_size >= 1_048_576:
            continue
        try:
            texts[f.relative_to(tree).as_posix()] = f.read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError):
            continue
    return ProjectIndex(texts)


def file_view(index: ProjectIndex | None, path: str, data: bytes) -> ProjectView | None:
    """The project facts the labelled file at ``path`` receives (notebooks: their code)."""
    if index is None:
        return None
    if not path.endswith(".ipynb"):
        return index.view(path)
    try:
        return index.view(path, notebook_source(data.decode("utf-8-sig")).source)
    except (NotebookError, UnicodeDecodeError):
        return None


def materialise(labels: list[Label], dest: Path, mirror_dir: str | None, cache_dir: Path,
                projects: dict[str, ProjectIndex] | None = None
                ) -> tuple[dict[tuple[str, str], bytes], list[str]]:
    """Bytes of every labelled file at its pinned commit; (files, problems). With
    ``projects`` (a dict), each repository's project index is put in it (repo -> index)."""
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for lab in labels:
        wanted[(lab.repo, lab.commit)].add(lab.path)
    files: dict[tuple[str, str], bytes] = {}
    problems: list[str] = []
    for (repo, commit), paths in sorted(wanted.items()):
        url = f"https://github.com/{repo}"
        mirror = find_mirror(url, mirror_dir)
        tree: Path | None = None
        if mirror is None:
            try:
                tree = checkout(url, commit, cache_dir)
            except CloneError as exc:
                problems.append(f"{repo}: {exc.reason}")
                continue
        if projects is not None:
            try:
                projects[repo] = (_project_from_mirror(mirror, commit) if mirror is not None
                                  else _project_from_tree(tree))  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - a broken snapshot: score without it
                problems.append(f"{repo}: no project index ({type(exc).__name__}: {exc})")
        for path in sorted(paths):
            if mirror is not None:
                res = run_git(["show", f"{commit}:{path}"], cwd=mirror, timeout_s=120)
                if res.returncode != 0:
                    problems.append(f"{repo}:{path}: {res.stderr.strip().splitlines()[-1:]}")
                    continue
                data = res.stdout
            else:
                assert tree is not None
                try:
                    data = (tree / path).read_bytes()
                except OSError as exc:
                    problems.append(f"{repo}:{path}: {exc}")
                    continue
            files[(repo, path)] = data
            out = dest / repo.replace("/", "+") / path
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
    return files, problems


def leakwatt_hits(files: dict[tuple[str, str], bytes],
                  projects: dict[str, ProjectIndex] | None = None
                  ) -> tuple[list[Hit], list[str]]:
    hits, errors = [], []
    for (repo, path), data in sorted(files.items()):
        view = file_view((projects or {}).get(repo), path, data)
        res = scan_bytes(data, path, project=view)
        if res.error:
            errors.append(f"{repo}:{path}: {res.error}")
        if res.skipped:
            errors.append(f"{repo}:{path}: skipped ({res.skipped})")
        for f in res.findings:
            hits.append(Hit(repo, path, f.cell or 0, f.line, f.rule, f.snippet))
    return hits, errors


def semgrep_hits(files: dict[tuple[str, str], bytes], work: Path,
                 semgrep: str) -> tuple[list[Hit], str | None]:
    """Run semgrep on the labelled files (notebooks as their joined code cells)."""
    root = work / "semgrep"
    line_maps: dict[str, tuple[str, str, list[tuple[int, int]] | None]] = {}
    for i, ((repo, path), data) in enumerate(sorted(files.items())):
        text = data.decode("utf-8", "replace")
        lmap = None
        if path.endswith(".ipynb"):
            try:
                nb = notebook_source(text)
            except NotebookError:
                continue
            text, lmap = nb.source, nb.line_map
        rel = f"f{i:04d}.py"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
        line_maps[rel] = (repo, path, lmap)
    cmd = [semgrep, "--config", str(SEMGREP_RULES), "--json", "--metrics=off", "--quiet",
           "--disable-version-check", str(root)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=900)
    try:
        results = json.loads(proc.stdout)["results"]
    except (ValueError, KeyError):
        return [], f"semgrep failed (exit {proc.returncode}): {proc.stderr.strip()[-200:]}"
    hits = []
    for r in results:
        rel = Path(r["path"]).name
        rule = SEMGREP_IDS.get(r["check_id"].rsplit(".", 1)[-1])
        if rule is None or rel not in line_maps:
            continue
        repo, path, lmap = line_maps[rel]
        line = r["start"]["line"]
        cell = 0
        if lmap is not None and 0 < line <= len(lmap):
            cell, line = lmap[line - 1]
        hits.append(Hit(repo, path, cell, line, rule))
    return hits, None


def _matches(hit: Hit, lab: Label) -> bool:
    return (hit.repo == lab.repo and hit.path == lab.path and hit.rule == lab.rule
            and hit.cell == lab.cell and abs(hit.line - lab.line) <= TOLERANCE)


def score(labels: list[Label], hits: list[Hit], rules: tuple[str, ...]) -> dict[str, dict]:
    by_file: dict[tuple[str, str, str], list[Hit]] = defaultdict(list)
    for h in hits:
        by_file[(h.repo, h.path, h.rule)].append(h)
    out: dict[str, dict] = {}
    labelled_files = {(lab.repo, lab.path) for lab in labels}
    # Each finding counts for one label only: the nearest within the tolerance (ties: the
    # earlier label), so one report cannot both hit a true site and "hit" a negative beside it.
    assigned: dict[Label, list[Hit]] = defaultdict(list)
    for (repo, path, rule), file_hits in by_file.items():
        candidates = [lab for lab in labels if (lab.repo, lab.path, lab.rule) == (repo, path, rule)]
        for h in file_hits:
            near = [lab for lab in candidates if _matches(h, lab)]
            if near:
                assigned[min(near, key=lambda lab: (abs(h.line - lab.line), lab.line))].append(h)
    for rule in rules:
        tp = fp = fn = 0
        missed, false_pos = [], []
        used: set[Hit] = set()
        for lab in (x for x in labels if x.rule == rule):
            found = assigned.get(lab, [])
            used.update(found)
            if lab.label and found:
                tp += 1
            elif lab.label:
                fn += 1
                missed.append(lab)
            elif found:
                fp += 1
                false_pos.append(lab)
        unlabelled = [h for h in hits if h.rule == rule and (h.repo, h.path) in labelled_files
                      and h not in used]
        p = tp / (tp + fp) if tp + fp else float("nan")
        r = tp / (tp + fn) if tp + fn else float("nan")
        f1 = 2 * p * r / (p + r) if tp else 0.0
        out[rule] = {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": f1,
                     "unlabelled": unlabelled, "missed": missed, "false_pos": false_pos,
                     "n_true": tp + fn, "n_false": sum(1 for x in labels
                                                       if x.rule == rule and not x.label)}
    return out


def _fmt(x: float) -> str:
    return "  n/a" if x != x else f"{x:5.2f}"


def _where(repo: str, path: str, cell: int, line: int) -> str:
    return f"{repo}:{path}:{f'{cell}:' if cell else ''}{line}"


def print_table(title: str, res: dict[str, dict], rules: tuple[str, ...]) -> None:
    print(f"\n{title}")
    print(f"{'rule':<5} {'true':>4} {'neg':>4} {'TP':>4} {'FP':>4} {'FN':>4} "
          f"{'prec':>5} {'recall':>6} {'F1':>5} {'unlabelled findings':>20}")
    for rule in rules:
        m = res[rule]
        print(f"{rule:<5} {m['n_true']:>4} {m['n_false']:>4} {m['tp']:>4} {m['fp']:>4} "
              f"{m['fn']:>4} {_fmt(m['precision'])} {_fmt(m['recall']):>6} {_fmt(m['f1'])} "
              f"{len(m['unlabelled']):>20}")


def code_commit(root: Path = ROOT) -> str:
    """``HEAD`` of the checkout at ``root``, with ``-dirty`` when ``core/`` or ``mining/`` hold
    changes not committed (modified or untracked files): the recall then belongs to no commit.
    ``unknown`` outside a git checkout."""
    head = run_git(["rev-parse", "HEAD"], cwd=root, timeout_s=60)
    if head.returncode != 0:
        return "unknown"
    status = run_git(["status", "--porcelain", "--", *CODE_DIRS], cwd=root, timeout_s=120)
    dirty = status.returncode != 0 or bool(status.stdout.strip())
    return head.stdout.decode().strip() + ("-dirty" if dirty else "")


def write_recall(path: Path, res: dict[str, dict], rules: tuple[str, ...], label_set: str,
                 commit: str, now: dt.datetime | None = None) -> int:
    """Write leakwatt's score (:func:`score`) as ``recall.csv``: one row per rule in ``rules``,
    ``label_set`` naming the labels file (several pooled files: their names joined by ``+``).
    Returns the number of rows."""
    scored_at = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    table = recall_table(recall_row(rule, res[rule]["tp"], res[rule]["fn"], res[rule]["fp"],
                                    label_set, commit, scored_at) for rule in rules)
    atomic_write_csv(path, table)
    return len(table)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--labels", type=Path, nargs="+", default=[LABELS],
                    help="labels file(s); several are pooled into one score (blind sets of "
                         "the same rules, e.g. two independent draws), a site named twice is "
                         "an error")
    ap.add_argument("--mirror-dir", default="/work/.mirror",
                    help="folder of local clones/mirrors (owner+name); '' to clone instead")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="where clones go when no mirror has a repository (default: temp)")
    ap.add_argument("--verbose", action="store_true",
                    help="list misses, false positives and unlabelled findings")
    ap.add_argument("--no-semgrep", action="store_true")
    ap.add_argument("--no-project", action="store_true",
                    help="scan each labelled file alone (no project index)")
    ap.add_argument("--rules", default="",
                    help="comma-separated rule ids to score (default: IMR,UTR,DIR,US, or with "
                         "--all-rules every rule the labels name)")
    ap.add_argument("--all-rules", action="store_true",
                    help="score every rule that appears in the labels file")
    ap.add_argument("--write-recall", type=Path, metavar="PATH",
                    help="write leakwatt's recall per rule (with its exact 95 %% interval) to "
                         "PATH, the table analyze corrects prevalence with "
                         "(data/labels/recall.csv)")
    args = ap.parse_args(argv)

    labels = load_label_sets(args.labels)
    rules = RULES
    if args.rules:
        rules = tuple(r.strip().upper() for r in args.rules.split(",") if r.strip())
    elif args.all_rules:
        order = ("IMR", "UTR", "DIR", "US", "UGE", "GCB", "UP")
        named = {lab.rule for lab in labels}
        rules = tuple(r for r in order if r in named) + tuple(sorted(named - set(order)))
    n_true = sum(lab.label for lab in labels)
    repos = {lab.repo for lab in labels}
    print(f"labels: {len(labels)} sites ({n_true} true, {len(labels) - n_true} hard negatives) "
          f"in {len({(lab.repo, lab.path) for lab in labels})} files of {len(repos)} repositories")
    with tempfile.TemporaryDirectory(prefix="leakwatt-acc-") as tmp:
        work = Path(tmp)
        cache = args.cache_dir or work / "clones"
        projects: dict[str, ProjectIndex] | None = None if args.no_project else {}
        files, problems = materialise(labels, work / "files", args.mirror_dir or None, cache,
                                      projects)
        for p in problems:
            print(f"warning: could not materialise {p}")
        hits, errors = leakwatt_hits(files, projects)
        for e in errors:
            print(f"note: {e}")
        res = score(labels, hits, rules)
        mode = "files alone" if args.no_project else "with each repository's project index"
        print_table(f"leakwatt (leakwatt.mining.scan.scan_bytes, all rules, {mode})", res,
                    rules)
        status = 0
        if args.write_recall and problems:
            # an unread file would count its true sites as misses of the detectors
            print(f"\nrecall table NOT written: {len(problems)} labelled file(s) or repositories "
                  "could not be read (warnings above); their sites would count as misses")
            status = 1
        elif args.write_recall:
            commit = code_commit()
            label_set = "+".join(p.name for p in args.labels)
            rows = write_recall(args.write_recall, res, rules, label_set, commit)
            print(f"\nrecall table: {args.write_recall} ({rows} rules, {label_set} @ "
                  f"{commit[:12]}{' (uncommitted code)' if commit.endswith('-dirty') else ''})")
        if args.verbose:
            for rule in rules:
                for lab in res[rule]["missed"]:
                    print(f"  MISS {rule} {_where(lab.repo, lab.path, lab.cell, lab.line)}"
                          f"  ({lab.reason})")
                for lab in res[rule]["false_pos"]:
                    print(f"  FP   {rule} {_where(lab.repo, lab.path, lab.cell, lab.line)}"
                          f"  ({lab.reason})")
                for h in res[rule]["unlabelled"]:
                    print(f"  UNLABELLED {rule} {_where(h.repo, h.path, h.cell, h.line)}"
                          f"  {h.snippet[:70]}")
        if args.no_semgrep:
            print("\nsemgrep: skipped (--no-semgrep)")
        else:
            semgrep = shutil.which("semgrep") or str(Path(sys.executable).parent / "semgrep")
            if not Path(semgrep).exists():
                print("\nsemgrep: not installed (pip install semgrep)")
            else:
                sg_hits, err = semgrep_hits(files, work, semgrep)
                if err:
                    print(f"\nsemgrep: {err}")
                else:
                    sg = score(labels, sg_hits, ("IMR", "UTR"))
                    print_table(f"semgrep ({SEMGREP_RULES.relative_to(ROOT)})", sg,
                                ("IMR", "UTR"))
                    print("\nside by side (precision / recall)")
                    for rule in ("IMR", "UTR"):
                        print(f"  {rule}: leakwatt {_fmt(res[rule]['precision'])} / "
                              f"{_fmt(res[rule]['recall'])}   semgrep "
                              f"{_fmt(sg[rule]['precision'])} / {_fmt(sg[rule]['recall'])}")
    print("\nother tools:")
    print("  CodeSmile: not run - no installable distribution on PyPI "
          "(`pip install codesmile` / `code-smile`: no matching distribution)")
    print("  SpecDetect4AI: not run - no installable distribution on PyPI "
          "(`pip install specdetect4ai`: no matching distribution)")
    print("  dslinter: not run - does not install on Python 3.11")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
