"""Markdown and HTML building blocks of the report: number formats, pipe tables, the HTML page.

The HTML is the report's Markdown rendered with markdown-it-py (CommonMark + tables), with every
figure the report drew embedded as a base64 PNG data URI so the file opens anywhere on its own.
Text from data files is escaped (:func:`inert`, and every table cell) and only the report's own
figures may be linked or embedded (:func:`to_html`): a runs.csv cell cannot pull a local file
or a URL into a shared report.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from markdown_it import MarkdownIt

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;line-height:1.45;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.85em;display:block;max-width:100%;
width:max-content;overflow-x:auto;
font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
span.n{white-space:nowrap}
th{background:#f2f2f2} img{max-width:100%;height:auto;border:1px solid #eee}
p:has(> img){margin-bottom:0.2em} p:has(> img) + p{margin-top:0;font-size:0.9em;color:#444}
code,pre{background:#f6f6f6} pre{padding:0.6em;overflow-x:auto}
"""



def isnum(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def fmt(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits; '' for missing or undefined values."""
    if not isnum(value):
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) \
            else str(value)
    return f"{float(value):.{digits}g}"


def fmt_count(value: Any) -> str:
    """A count as a whole number; '' for a missing one (a table written before its column)."""
    return str(int(float(value))) if isnum(value) else ""


def fmt_pct(value: Any, digits: int = 2) -> str:
    return f"{float(value):+.{digits}f} %" if isnum(value) else ""


def fmt_p(value: Any) -> str:
    if not isnum(value):
        return ""
    value = float(value)
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"


def fmt_ci(low: Any, high: Any) -> str:
    if not (isnum(low) and isnum(high)):
        return ""
    return f"[{float(low):+.2f}, {float(high):+.2f}]"


#: Characters of Markdown that can start a link, an image, an autolink, a code span or an
#: escape. Text that came from data files (a runs.csv ``error`` cell can hold whatever a crashed
#: program printed) is shown with these escaped, so it cannot make the report link to, or
#: embed, a local file or a URL. (Emphasis characters are left alone: they reference nothing,
#: and ``pair_id`` stays readable in report.md.)
_ACTIVE = re.compile(r"[\\`<>\[\]!]")
#: What the report itself writes into cells with brackets or ``<``: CIs ``[+1.00, +2.00]`` and
#: p-value bounds ``< 0.0001`` (kept as written: they cannot form a link).
_OWN_TOKEN = re.compile(r"\[[+-]?[\d.]+(?:e[+-]?\d+)?, [+-]?[\d.]+(?:e[+-]?\d+)?\]|< \d[\d.]*")


def inert(value: Any) -> str:
    """``value`` as Markdown text that renders as itself: every character that could start a
    link, image, autolink or code span is backslash-escaped and line breaks become spaces (a
    line of its own could be a link reference definition)."""
    text = "" if value is None else str(value)
    text = " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text
    return _ACTIVE.sub(lambda m: "\\" + m.group(0), text)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    parts, last = [], 0
    for m in _OWN_TOKEN.finditer(text):
        parts += [inert(text[last:m.start()]), m.group(0)]
        last = m.end()
    parts.append(inert(text[last:]))
    return "".join(parts).replace("|", "\\|")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub/CommonMark pipe table."""
    out = ["| " + " | ".join(_cell(h) for h in headers) + " |",
           "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.integer | int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value) if math.isfinite(float(value)) else None
    return value


def fmt_share(value: Any) -> str:
    return f"{100 * float(value):.0f} %" if isnum(value) else ""


# ----------------------------------------------------------------------------- rendering


#: In the HTML's table cells and list items, numbers with their unit, p-value bounds, CIs and
#: "k / n" counts stay on one line (text may wrap between them): "< 0.0001" never splits.
NUMBER_TOKEN = re.compile(
    r"\[[+-]?[\d.]+(?:e[+-]?\d+)?, [+-]?[\d.]+(?:e[+-]?\d+)?\]"        # a CI
    r"|&lt; \d[\d.]*"                                                  # a p-value bound
    r"|[+-]?\d[\d.]*(?:e[+-]?\d+)? %"                                    # a percentage
    r"|\b\d+ / \d+\b")                                                  # k of n


def _nowrap(match: re.Match[str]) -> str:
    return f'<span class="n">{match.group(0)}</span>'


def to_html(markdown_text: str, out_dir: Path, title: str,
            figures: Sequence[str] = ()) -> str:
    """Render Markdown to a standalone HTML page with the report's own figures inlined.

    ``figures``: the file names under ``out_dir/figures`` that the report drew. Only those are
    embedded (as ``figures/<name>``, read from that folder, never through a symlink); any other
    link or image target (a path, a ``file:`` URL, a figure not drawn by this report) is not
    rendered as a link or image at all, whatever the Markdown says.
    """
    fig_dir = (out_dir / "figures").resolve()
    allowed = {f"figures/{name}" for name in figures}
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.validateLink = lambda url: url in allowed or url.startswith("#")  # type: ignore[method-assign]
    body = md.render(markdown_text)

    def inline(match: re.Match[str]) -> str:
        src = html.unescape(match.group(1))
        if src not in allowed:
            return 'src=""'
        path = out_dir / src
        if path.is_symlink() or path.resolve().parent != fig_dir or not path.is_file():
            return 'src=""'
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([^"]*)"', inline, body)
    body = re.sub(r"<(td|li)>(.*?)</\1>",
                  lambda m: f"<{m[1]}>{NUMBER_TOKEN.sub(_nowrap, m[2])}</{m[1]}>", body)
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"{body}</body>\n</html>\n")



__all__ = ["fmt", "fmt_ci", "fmt_p", "fmt_pct", "fmt_share", "inert", "isnum", "json_safe",
           "md_table", "to_html"]
