"""Jupyter notebooks as Python source: code cells joined, magics neutralised, lines mapped back.

``notebook_source(data)`` returns the joined source of the code cells and, for every line of it,
the (cell number, line in cell) it came from. IPython magics (``%timeit``, ``%%bash`` cells),
shell escapes (``!pip install``, ``files = !ls``) and help queries (``obj?``) become ``pass``
statements with the same indentation, so line numbers are kept and the cell still parses.
Cell numbers are 1-based positions among all cells of the notebook. nbformat 3 notebooks
(``worksheets[].cells[]``, code in ``input``) are read too, their cells numbered across the
worksheets; a JSON document with neither ``cells`` nor ``worksheets`` is not a notebook.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from leakwatt.common import LeakwattError

_MAGIC = re.compile(r"^(\s*)(%|!|\?)")
_ASSIGN_SHELL = re.compile(r"^(\s*)[\w.,\s\[\]]+=\s*[!%]")
_HELP = re.compile(r"^(\s*)[\w.]+\?\??\s*$")
#: Cell magics whose body is Python; any other cell magic makes the whole cell non-Python.
_PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug"})


class NotebookError(LeakwattError):
    """The notebook is not valid JSON / nbformat."""


@dataclass(frozen=True)
class NotebookSource:
    source: str
    #: line_map[i] = (cell, line in cell) for line i+1 of ``source``
    line_map: list[tuple[int, int]]
    code_cells: int


def _neutralise(line: str) -> str:
    for pattern in (_MAGIC, _ASSIGN_SHELL, _HELP):
        m = pattern.match(line)
        if m:
            return f"{m.group(1)}pass  # leakwatt: notebook magic"
    return line


def _cells(nb: object) -> list[object]:
    """The cells of a notebook: ``cells`` (nbformat 4), or the cells of every worksheet with
    a code cell's ``input`` as its source (nbformat 3 and 2, ``worksheets[].cells[]``)."""
    if not isinstance(nb, dict):
        raise NotebookError("not a valid notebook (no cell list)")
    if "cells" in nb:
        if not isinstance(nb["cells"], list):
            raise NotebookError("not a valid notebook (no cell list)")
        return nb["cells"]
    if "worksheets" not in nb:
        raise NotebookError("not a valid notebook (neither cells nor worksheets)")
    sheets = nb["worksheets"]
    if not isinstance(sheets, list) or not all(
            isinstance(ws, dict) and isinstance(ws.get("cells", []), list) for ws in sheets):
        raise NotebookError(f"not a valid notebook (nbformat {nb.get('nbformat', '?')}: "
                            "worksheets without a cell list)")
    return [{"cell_type": "code", "source": cell.get("input", "")}
            if isinstance(cell, dict) and cell.get("cell_type") == "code" else cell
            for ws in sheets for cell in ws.get("cells", [])]


def notebook_source(data: bytes | str) -> NotebookSource:
    try:
        nb = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotebookError(f"not a valid notebook (JSON error: {exc})") from None
    except RecursionError:  # ``[[[[...]]]]`` 100,000 deep: json recurses once per level
        raise NotebookError("not a valid notebook (JSON nested too deeply to read)") from None
    lines: list[str] = []
    line_map: list[tuple[int, int]] = []
    code_cells = 0
    for number, cell in enumerate(_cells(nb), start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        if isinstance(src, list) and all(isinstance(part, str) for part in src):
            text = "".join(src)
        elif isinstance(src, str):
            text = src
        else:  # nbformat: a string or a list of strings; ``[1, 2]`` or ``[null]`` is neither
            raise NotebookError(f"not a valid notebook (cell {number}: source is not text)")
        cell_lines = text.splitlines() or [""]
        code_cells += 1
        if cell_lines[0].lstrip().startswith("%%"):
            magic = cell_lines[0].lstrip()[2:].split(None, 1)[0] if \
                cell_lines[0].lstrip()[2:].strip() else ""
            cell_lines[0] = "pass  # leakwatt: notebook magic"
            if magic not in _PYTHON_CELL_MAGICS:
                cell_lines = ["pass  # leakwatt: non-Python cell"] + [
                    "" for _ in cell_lines[1:]]
        for i, line in enumerate(cell_lines, start=1):
            lines.append(_neutralise(line))
            line_map.append((number, i))
    return NotebookSource(source="\n".join(lines) + "\n", line_map=line_map,
                          code_cells=code_cells)
