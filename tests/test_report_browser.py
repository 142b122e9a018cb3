"""report.html as a real browser shows it: headless Chromium (Debian's ``chromium``).

The report is rendered from synthetic inputs, then opened unchanged inside an iframe of a probe
page written next to it; the probe's script reads the report's DOM once it has loaded (every
figure is a data URI, so its images have loaded by then) and writes what it finds as JSON into
the probe page, which Chromium prints with ``--dump-dom``. A second Chromium run takes a
full-page screenshot. Without Chromium the tests skip, or fail when ``CI`` is set.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from leakwatt.analysis.prevalence import write_prevalence
from leakwatt.analysis.report import render_report
from leakwatt.analysis.stats import analyze
from leakwatt.params import AnalyzeParams, ReportParams

pytestmark = pytest.mark.slow

_SYNTH = Path(__file__).parent / "fixtures" / "analysis" / "synth.py"
_spec = importlib.util.spec_from_file_location("leakwatt_analysis_synth_browser", _SYNTH)
_synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_synth)
synthetic_runs = _synth.synthetic_runs

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--allow-file-access-from-files")
WINDOW_WIDTH = 1280
EXPECTED_FIGURES = {"energy_per_pair.png", "forest.png", "memory.png", "rss_over_time.png",
                    "prevalence.png", "survival.png"}

# Runs inside the probe page: read the report in the iframe, write JSON into <pre id="result">.
PROBE = r"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>probe</title></head><body>
<pre id="result">pending</pre>
<iframe id="report" src="REPORT" style="width:WIDTHpx;height:900px;border:0"></iframe>
<script>
const frame = document.getElementById('report');
// a number with its unit, a p-value bound or a CI, as the report prints them in tables
const NUMBER = new RegExp([
  String.raw`\[[+-]?[\d.]+(?:e[+-]?\d+)?, [+-]?[\d.]+(?:e[+-]?\d+)?\]`,
  String.raw`< \d[\d.]*`, String.raw`[+-]?\d[\d.]*(?:e[+-]?\d+)? %`].join('|'), 'g');
function numbers(table) {  // every such token in the table's cells, with the lines it spans
  const doc = table.ownerDocument, found = [];
  const walker = doc.createTreeWalker(table.tBodies[0] || table, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const m of node.data.matchAll(NUMBER)) {
      const range = doc.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const tops = new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top)));
      found.push({text: m[0], lines: tops.size});
    }
  }
  return found;
}
frame.addEventListener('load', () => {
  const out = document.getElementById('result');
  try {
    const doc = frame.contentDocument;
    const view = doc.documentElement;
    const body = doc.body.getBoundingClientRect();
    const images = Array.from(doc.images).map(img => {
      const box = img.getBoundingClientRect();
      const next = img.closest('p') ? img.closest('p').nextElementSibling : null;
      return {alt: img.alt, complete: img.complete, naturalWidth: img.naturalWidth,
              naturalHeight: img.naturalHeight, width: box.width, height: box.height,
              right: box.right, caption: next ? next.innerText : ''};
    });
    const tables = Array.from(doc.querySelectorAll('table')).map(t => {
      const box = t.getBoundingClientRect();
      return {headers: Array.from(t.querySelectorAll('thead th')).map(th => th.innerText.trim()),
              rows: t.querySelectorAll('tbody tr').length, text: t.innerText,
              scrollWidth: t.scrollWidth, clientWidth: t.clientWidth, right: box.right,
              numbers: numbers(t)};
    });
    out.textContent = JSON.stringify({
      title: doc.title, images: images, tables: tables, bodyRight: body.right,
      headings: Array.from(doc.querySelectorAll('h1, h2')).map(h => h.innerText.trim()),
      scrollWidth: view.scrollWidth, clientWidth: view.clientWidth,
      scrollHeight: view.scrollHeight});
  } catch (err) {
    out.textContent = 'probe error: ' + err;
  }
});
</script></body></html>
"""


def chromium() -> str:
    """The Chromium executable; skip without one, or fail when CI is set."""
    found = os.environ.get("LEAKWATT_CHROMIUM") or next(
        (path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)
    if found:
        return found
    message = ("headless Chromium not found (looked for " + ", ".join(CHROMIUM_NAMES)
               + "; install Debian's `chromium` as .ci/run does, or set LEAKWATT_CHROMIUM)")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def run_chromium(work: Path, *args: str) -> str:
    """Run headless Chromium with a fresh, empty profile in ``work``; return its stdout."""
    profile = work / f"profile-{len(list(work.glob('profile-*')))}"
    profile.mkdir(parents=True)
    cmd = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish within 120 s: {' '.join(cmd)}")
    if done.returncode != 0:
        pytest.fail(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def probe(report: Path, work: Path) -> dict[str, Any]:
    """What the browser shows of ``report`` (an HTML file), via the probe page."""
    page = report.parent / "probe.html"
    page.write_text(PROBE.replace("REPORT", report.name).replace("WIDTH", str(WINDOW_WIDTH)),
                    encoding="utf-8")
    dom = run_chromium(work, "--virtual-time-budget=10000", "--dump-dom", page.as_uri())
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, flags=re.S)
    assert found, f"probe page not in Chromium's DOM dump: {dom[:500]}"
    text = html.unescape(found.group(1))
    assert not text.startswith(("pending", "probe error")), text
    return json.loads(text)


def _mined(root: Path) -> Path:
    mined = root / "mined"
    mined.mkdir()
    pd.DataFrame({"url": ["https://x/a", "https://x/b", "https://x/c"],
                  "commit": ["1" * 40, "2" * 40, "3" * 40], "name": ["a", "b", "c"],
                  "status": ["ok", "ok", "ok"], "reason": ["", "", ""], "files": [4, 2, 3],
                  "kloc": [3.0, 1.0, 2.0]}).to_csv(mined / "repos.csv", index=False)
    pd.DataFrame({"repo": ["https://x/a", "https://x/b", "https://x/b"],
                  "commit": ["1" * 40, "2" * 40, "2" * 40], "path": ["t.py", "u.py", "v.py"],
                  "line": [3, 7, 9], "rule": ["IMR", "UTR", "UTR"],
                  "variant": ["loop", "list", "list"]}).to_csv(mined / "instances.csv",
                                                               index=False)
    pd.DataFrame({"repo": ["https://x/a"] * 4 + ["https://x/b"] * 2,
                  "rule": ["IMR", "IMR", "UTR", "UTR", "UTR", "UTR"],
                  "path": ["t.py", "t.py", "w.py", "w.py", "u.py", "v.py"],
                  "event": ["introduced", "removed", "introduced", "removed", "introduced",
                            "introduced"],
                  "commit": ["c0", "c1", "c2", "c3", "d0", "d1"],
                  "date": ["2022-01-01", "2022-02-01", "2022-01-10", "2022-04-01",
                           "2022-02-01", "2022-03-01"], "message": [""] * 6,
                  "removal": ["", "code_changed", "", "deleted_file", "", ""]}).to_csv(
        mined / "events.csv", index=False)
    pd.DataFrame({"repo": ["https://x/a"], "commit": ["c1"], "date": ["2022-02-01"],
                  "message": ["fix memory leak in training loop"], "matched": ["leak"]}).to_csv(
        mined / "leak_commits.csv", index=False)
    return mined


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A report with every figure: known effects for IMR and UTR, RSS series, mining tables."""
    chromium()  # skip (or fail under CI) before spending time on rendering
    root = tmp_path_factory.mktemp("browser")
    runs = synthetic_runs(n=6, effect=1.3)
    (root / "series").mkdir()
    paths = []
    for _, run in runs.iterrows():
        rel = f"series/{run['pair_id']}-{run['variant']}-{run['rep']}.csv"
        growth = 40.0 if run["variant"] == "smelly" else 0.0
        pd.DataFrame({"t_s": [0.0, 1.0, 2.0, 3.0],
                      "rss_mb": [300.0 + k * growth for k in range(4)]}).to_csv(
            root / rel, index=False)
        paths.append(rel)
    runs["series_path"] = paths
    runs.to_csv(root / "runs.csv", index=False)
    (root / "environment.json").write_text(json.dumps({
        "cpu_model": "Test CPU 9000", "cores": 2, "ram_gb": 8, "gpu": None,
        "versions": {"tensorflow": "2.21.0", "codecarbon": "3.0"}, "git_sha": "abc1234"}))
    analyze([root / "runs.csv"], root / "analysis", AnalyzeParams(bootstrap_resamples=300))
    out = root / "reports"
    write_prevalence(_mined(root), root / "analysis")
    render_report(root / "analysis", [root / "runs.csv"], out, ReportParams(title="Browser check"),
                  environment_paths=[root / "environment.json"],
                  commands=["leakwatt analyze --runs runs.csv --out analysis",
                            "leakwatt report"])
    assert {p.name for p in (out / "figures").glob("*.png")} == EXPECTED_FIGURES
    return out / "report.html"


@pytest.fixture(scope="module")
def seen(report, tmp_path_factory) -> dict[str, Any]:
    return probe(report, tmp_path_factory.mktemp("chromium"))


def _table(seen: dict[str, Any], *headers: str) -> dict[str, Any]:
    matches = [t for t in seen["tables"] if set(headers) <= set(t["headers"])]
    assert len(matches) == 1, f"{len(matches)} tables with headers {headers}"
    return matches[0]


def test_every_figure_loads(seen):
    images = seen["images"]
    assert len(images) == len(EXPECTED_FIGURES)
    for img in images:
        assert img["complete"] and img["naturalWidth"] > 0 and img["naturalHeight"] > 0, img
        assert img["width"] > 0 and img["height"] > 0, img


def test_figures_fit_the_page_and_have_captions(seen):
    for img in seen["images"]:
        assert img["right"] <= seen["bodyRight"] + 1, img["alt"]
        # shrunk to less than 70 % of its pixels, a figure's 8 pt labels become unreadable
        assert img["width"] >= 0.7 * min(img["naturalWidth"], seen["clientWidth"]), img
        assert img["caption"].startswith("Figure "), img["alt"]
    numbers = [int(re.match(r"Figure (\d+)\.", i["caption"]).group(1)) for i in seen["images"]]
    assert numbers == list(range(1, len(numbers) + 1))


def test_paper_and_stats_tables_are_shown(seen, report):
    assert seen["title"] == "Browser check (full profile)"  # the title names the profile
    paper_table = _table(seen, "smell", "paper kWh (NVIDIA Tesla T4)", "change [95 % CI]")
    for text in ("+31.78 %", "+45.80 %", "0.025646", "paper-imr (cpu)", "paper-utr (cpu)"):
        assert text in paper_table["text"], text
    stats = pd.read_csv(report.parent.parent / "analysis" / "stats.csv")
    stats_table = _table(seen, "pair (device, framework)", "metric", "test", "p_adj", "effect size")
    assert stats_table["rows"] == len(stats)
    assert "rank_biserial" in stats_table["text"] and "cohen_dz" in stats_table["text"]
    _table(seen, "smell", "device", "metric", "median % change")
    prevalence = _table(seen, "rule", "instances", "per KLOC")
    assert prevalence["rows"] == 2
    _table(seen, "package", "version")
    for heading in ("The paper beside this study", "Figures", "Paired statistics",
                    "Prevalence in mined projects", "Threats to validity", "Environment"):
        assert heading in seen["headings"]


def test_nothing_overflows_and_numbers_stay_on_one_line(seen):
    assert seen["scrollWidth"] <= seen["clientWidth"], "the page scrolls sideways"
    tokens = [n for table in seen["tables"] for n in table["numbers"]]
    # (fewer since emissions_kg is derived, not tested: 87 tokens in the synthetic report)
    assert len(tokens) > 60 and {"+31.78 %", "< 0.0001"} <= {n["text"] for n in tokens}
    split = [n["text"] for n in tokens if n["lines"] != 1]
    assert not split, f"numbers broken across lines: {split[:8]}"
    for table in seen["tables"]:
        assert table["right"] <= seen["bodyRight"] + 1, table["headers"]
    for headers in (("smell", "paper kWh (NVIDIA Tesla T4)"), ("pair (device, framework)", "effect size")):
        table = _table(seen, *headers)
        assert table["scrollWidth"] <= table["clientWidth"], f"{headers[1]} table scrolls"


def test_screenshot(report, seen, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    height = int(seen["scrollHeight"])
    run_chromium(tmp_path, f"--window-size={WINDOW_WIDTH},{height}", f"--screenshot={shot}",
                 report.as_uri())
    with Image.open(shot) as img:
        assert img.size == (WINDOW_WIDTH, height)
        gray = img.convert("L")
        # content all the way down: the last quarter of the page is not blank
        bottom = gray.crop((0, 3 * height // 4, WINDOW_WIDTH, height))
        assert bottom.getextrema()[0] < 128
        dark = sum(gray.histogram()[:200]) / (WINDOW_WIDTH * height)
        assert dark > 0.01


def test_probe_sees_a_broken_figure(report, tmp_path):
    """The check can fail: a report whose image data is corrupt shows naturalWidth 0."""
    text = report.read_text(encoding="utf-8")
    first = re.search(r'src="data:image/png;base64,([^"]+)"', text)
    broken = base64.b64encode(b"not a png").decode("ascii")
    page = tmp_path / "broken.html"
    page.write_text(text[:first.start(1)] + broken + text[first.end(1):], encoding="utf-8")
    images = probe(page, tmp_path)["images"]
    assert [i["naturalWidth"] == 0 for i in images] == [True] + [False] * (len(images) - 1)
