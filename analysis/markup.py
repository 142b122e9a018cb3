"""Markdown and HTML building blocks of the report: number formats, pipe tables, the HTML page.

The HTML is the report's Markdown rendered with markdown-it-py (CommonMark + tables), with every
local figure embedded as a base64 PNG data URI so the file opens anywhere on its own.
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


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


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


def to_html(markdown_text: str, out_dir: Path, title: str) -> str:
    """Render Markdown to a standalone HTML page with every local figure inlined."""
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown_text)

    def inline(match: re.Match[str]) -> str:
        src = html.unescape(match.group(1))
        path = out_dir / src
        if src.startswith(("data:", "http:", "https:")) or not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([^"]+)"', inline, body)
    body = re.sub(r"<(td|li)>(.*?)</\1>",
                  lambda m: f"<{m[1]}>{NUMBER_TOKEN.sub(_nowrap, m[2])}</{m[1]}>", body)
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"{body}</body>\n</html>\n")



__all__ = ["fmt", "fmt_ci", "fmt_p", "fmt_pct", "fmt_share", "isnum", "json_safe", "md_table",
           "to_html"]
