"""Parse what can be parsed: a file whose few bad statements stop the parse, scanned without them.

Real scripts hold lines that are not Python: output pasted after the code (``0.8 accuracy``,
``[0.75 0.8]``), a line of prose, a ``feed_dict`` closed with the wrong bracket, a name that
starts with a digit (``1st_layer``). One such line used to make the whole file an error row.
When a file (or a notebook cell) does not parse even after the Python 2 and tab readings
(:mod:`leakwatt.mining.python2`), :func:`recover` blanks the statement Python's own parser
stops at and parses again:

* **Where.** ``ast``'s ``SyntaxError`` gives the line the parser stops at and the line its
  error ends on. The statement holding that line starts where the text before it, read by
  :mod:`tokenize`, last ended a logical line (a mismatched bracket is reported on its closing
  line, the statement began lines earlier); it ends at the first logical line end at or
  after the error's last line, when the brackets up to there match. The error is looked for
  in the text as the Python 2 reading would rewrite it, so that a Python 2 script with one
  bad line is located at that line, not at its first ``print`` statement.
* **How.** The statement's first line becomes ``pass`` at its own indentation (a block whose
  only statement was the bad one still parses) and its other lines become empty; where the
  ``pass`` itself does not parse (the bad line was indented where no block opens), or would
  end the block around it (the line is indented less than the code on both sides: a merge
  conflict marker, prose pasted into a function), the first line becomes empty too. No line
  is added or removed and no other line changes, so findings keep the file's line numbers
  and columns.
* **Bounds.** At most :data:`MAX_REGIONS` blanked statements (adjacent ones count once) and
  :data:`MAX_TRIES` tries, and at most :data:`MAX_PERCENT` % of the file's lines (at least
  one), in files of :data:`MIN_LINES` lines or more: a short file, or one that is mostly not
  Python, stays an error row, with the reason. Recovery runs only on files that failed every
  other reading, and each try is one parse (two when the text is read as Python 2).
* **Not recovered.** An indentation error (the line is usually real code in an ambiguous
  block) unless it is the continuation of a statement already blanked, and a statement that
  opens a block (a ``def``, ``for`` or ``if`` line that does not parse, with its indented
  body below it: blanking it would orphan the body).

The caller (:mod:`leakwatt.mining.scan`) drops any finding on a blanked line, which cannot
happen for a rule's own reasons (a ``pass`` holds nothing), and notes the file's result
(``recovered: ...``) the way it notes a file read as Python 2. A blanked statement is code the
scan did not see: it can hide a finding, and, rarely, make one (a ``sess.close()]`` left out
leaves the session open); the note says which lines were left out.

No library was used: parso's error-recovering parser (jedi's) would locate error nodes, but
it is one more dependency whose grammar trails Python's, and the question here is what Python
itself refuses, which ``ast`` answers.
"""

from __future__ import annotations

import contextlib
import io
import re
import tokenize
from dataclasses import dataclass

from leakwatt.mining.python2 import expand_indent_tabs, rewrite_python2, syntax_error

#: Statements blanked in one file at most (a notebook: in all its cells together).
MAX_REGIONS = 3
#: Parses tried in one file at most (each blanks one more statement or empties a ``pass``).
MAX_TRIES = 6
#: Blanked lines, in per cent of the file's lines, at most (at least one line).
MAX_PERCENT = 5
#: Files (notebooks: code lines) shorter than this are never recovered: one bad line in a
#: five-line file is a fifth of it, too much to tell a bad line from a file that is not Python.
MIN_LINES = 10
#: What a blanked statement's first line becomes (at that line's indentation).
PLACEHOLDER = "pass  # leakwatt: not parsed"

_BREAK = re.compile(r"\r\n|\r|\n")  # Python's line breaks (a form feed is not one)
_INDENT = re.compile(r"[ \t\f]*")
_COMMENT = re.compile(r"#[^'\"]*$")  # a trailing comment without quotes in it
_LAYOUT = frozenset({tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT})
_PAIRS = {"(": ")", "[": "]", "{": "}"}


@dataclass(frozen=True)
class Region:
    """Lines ``first`` to ``last`` (1-based, inclusive) blanked, and Python's reason."""

    first: int
    last: int
    reason: str

    def where(self) -> str:
        span = f"line {self.first}" if self.first == self.last else \
            f"lines {self.first}-{self.last}"
        return f"{span}: {self.reason}"


@dataclass(frozen=True)
class Recovered:
    """A text that parses, made from one that did not by blanking :attr:`regions`."""

    text: str
    regions: tuple[Region, ...]

    @property
    def blanked(self) -> frozenset[int]:
        """The blanked lines (1-based): no finding may be reported on them."""
        return frozenset(n for r in self.regions for n in range(r.first, r.last + 1))

    def where(self) -> str:
        """The blanked statements, one line: ``line 31: invalid syntax; lines 40-41: ...``."""
        return "; ".join(r.where() for r in self.regions)

    def note(self) -> str:
        """One line for the scan result of a file."""
        return (f"recovered: left out what does not parse ({self.where()}); the other lines "
                "scanned, with the file's line numbers")


@dataclass
class _Blank:
    first: int
    last: int
    reason: str
    empty: bool = False  # the first line emptied, not ``pass`` (the ``pass`` did not parse)


def line_count(text: str) -> int:
    """Lines in ``text`` as Python counts them (``\\n``, ``\\r\\n`` or ``\\r`` ends one)."""
    rows, _ = _split(text)
    return len(rows) - (rows[-1] == "")


def line_budget(lines: int) -> int:
    """Lines that may be blanked in a file of ``lines`` lines (0: none, it is too short)."""
    return 0 if lines < MIN_LINES else max(1, lines * MAX_PERCENT // 100)


def recover(source: str, max_lines: int | None = None, max_regions: int = MAX_REGIONS,
            max_tries: int = MAX_TRIES) -> Recovered | str:
    """``source``, which does not parse (as Python 3, nor read as Python 2), with the few
    statements that stop its parse blanked (module docstring), or why it cannot be: a one-line
    reason, ``""`` where recovery does not apply (a short file, an indentation error, an error
    without a line). ``max_lines``: blanked lines at most (None: :func:`line_budget`)."""
    rows, breaks = _split(source)
    count = len(rows) - (rows[-1] == "")
    if max_lines is None:
        max_lines = line_budget(count)
    if max_lines < 1 or max_regions < 1:
        return ""
    found = _blocking_error(source)
    if found is None:
        return ""
    err, probe = found
    if not err.lineno or isinstance(err, IndentationError):
        return ""
    regions: list[_Blank] = []
    for _ in range(max_tries):
        row = err.lineno or 0
        if not 1 <= row <= count:
            return f"the parser stops at line {row}, past the last line"
        inside = next((r for r in regions if r.first <= row <= r.last), None)
        if inside is not None:  # the placeholder itself does not parse there
            if inside.empty:
                return f"line {row} does not parse even when left empty"
            inside.empty = True
        elif isinstance(err, IndentationError):
            above = _region_above(rows, regions, row)
            if above is None or str(err.msg).startswith("expected"):
                return f"indentation error at line {row}"
            above.last = row  # the continuation of a blanked statement
        else:
            probe_rows, _ = _split(probe)
            first = _statement_start(probe_rows, row)
            last = _statement_end(probe_rows, first, _error_end(err, count))
            if _opens_block(rows, first, last):
                return f"the statement at line {first} opens a block"
            region = _add(regions, _Blank(first, last, " ".join(str(err.msg).split())[:120]))
            region.empty = _outdented(rows, region.first, region.last)
        if len(regions) > max_regions:
            return f"more than {max_regions} statements do not parse"
        if sum(r.last - r.first + 1 for r in regions) > max_lines:
            return f"more than {max_lines} of its {count} lines do not parse"
        text = _blanked(rows, breaks, regions)
        found = _blocking_error(text)
        if found is None:
            return Recovered(text, tuple(Region(r.first, r.last, r.reason)
                                         for r in sorted(regions, key=lambda r: r.first)))
        err, probe = found
        if not err.lineno:
            return ""
    return f"still does not parse after {max_tries} tries"


def _split(text: str) -> tuple[list[str], list[str]]:
    """``text``'s lines and the break that ends each (the last line's is ``""``; after a
    final break the last line is ``""``)."""
    rows: list[str] = []
    breaks: list[str] = []
    pos = 0
    for m in _BREAK.finditer(text):
        rows.append(text[pos:m.start()])
        breaks.append(m.group())
        pos = m.end()
    rows.append(text[pos:])
    breaks.append("")
    return rows, breaks


def _blocking_error(text: str) -> tuple[SyntaxError, str] | None:
    """Python's syntax error in ``text`` as the scan would read it, with the text it was found
    in: ``text`` itself, or its Python 2 reading (tabs expanded, Python 2 statements rewritten
    within their lines, so its line numbers are ``text``'s). None: it parses, one way or the
    other."""
    err = syntax_error(text)
    if err is None:
        return None
    probe, _ = expand_indent_tabs(text)
    with contextlib.suppress(tokenize.TokenError, SyntaxError):  # else: not tokenizable
        probe = rewrite_python2(probe)[0]
    if probe == text:
        return err, text
    read = syntax_error(probe)
    return None if read is None else (read, probe)


def _error_end(err: SyntaxError, count: int) -> int:
    """The last line of ``err`` (its line when Python gives no end), within the file."""
    lineno = err.lineno or 1
    end = err.end_lineno if isinstance(err.end_lineno, int) else lineno
    return min(max(lineno, end), count)


def _statement_start(rows: list[str], row: int) -> int:
    """The first line of the logical line that holds line ``row``: where the text before it
    last ended a statement (it may have left a bracket, a backslash or a string open)."""
    if row <= 1:
        return 1
    text = "\n".join(rows[:row - 1]) + "\n"
    start: int | None = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                start = None
            elif start is None and tok.type not in _LAYOUT:
                start = tok.start[0]
    except (tokenize.TokenError, SyntaxError):  # the text ends inside a statement
        return start if start is not None else row
    return row


def _statement_end(rows: list[str], first: int, end: int) -> int:
    """The last line of the statement that starts on line ``first`` and holds line ``end``:
    the first logical line end at or after ``end`` when the brackets up to it match, else
    ``end`` (the statement's own brackets do not say where it ends)."""
    text = "\n".join(rows[first - 1:]) + "\n"
    stack: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            row = tok.start[0] + first - 1
            if tok.type == tokenize.OP and tok.string in _PAIRS:
                stack.append(_PAIRS[tok.string])
            elif tok.type == tokenize.OP and tok.string in ")]}":
                if not stack or stack.pop() != tok.string:
                    return end
            elif tok.type == tokenize.NEWLINE and row >= end:
                return min(row, len(rows))
            elif tok.type == tokenize.ENDMARKER:
                return end
    except (tokenize.TokenError, SyntaxError):
        return end
    return end


def _opens_block(rows: list[str], first: int, last: int) -> bool:
    """Whether the statement on lines ``first``-``last`` is a block header: its first or last
    line ends with a colon (``def``, ``for``, ``if`` ... ``:``) and the next line of code is
    indented deeper (a body). A line of prose or output that ends with a colon is not one."""
    if not any(_COMMENT.sub("", rows[n - 1]).rstrip().endswith(":") for n in {first, last}):
        return False
    for row in rows[last:]:
        if _is_code(row):
            return _width(row) > _width(rows[first - 1])
    return False


def _outdented(rows: list[str], first: int, last: int) -> bool:
    """Whether line ``first`` is indented less than the code on both sides of lines
    ``first``-``last``: it sits inside a block at a shallower indentation (a merge conflict
    marker, a line of prose pasted into a function), where a ``pass`` would end the block; its
    line is emptied instead."""
    width = _width(rows[first - 1])
    before = next((r for r in reversed(rows[:first - 1]) if _is_code(r)), None)
    after = next((r for r in rows[last:] if _is_code(r)), None)
    return (before is not None and after is not None and _width(before) > width
            and _width(after) > width)


def _is_code(row: str) -> bool:
    """Whether ``row`` holds more than blanks and a comment."""
    return bool(row.strip()) and not row.lstrip().startswith("#")


def _width(row: str) -> int:
    """The indentation of ``row`` in columns (a tab to the next multiple of 8)."""
    ws = _INDENT.match(row).group()  # type: ignore[union-attr]
    return len(ws.expandtabs(8))


def _region_above(rows: list[str], regions: list[_Blank], row: int) -> _Blank | None:
    """The blanked region that line ``row`` follows, with only blank or comment lines
    between them; None if there is none."""
    for region in regions:
        between = rows[region.last:row - 1]
        if region.last < row and not any(_is_code(r) for r in between):
            return region
    return None


def _add(regions: list[_Blank], new: _Blank) -> _Blank:
    """Add ``new`` to ``regions``, merged with those it overlaps or touches (they count as
    one statement; the earliest one's reason is kept); the region it became."""
    kept: list[_Blank] = []
    for r in regions:
        if r.first <= new.last + 1 and new.first <= r.last + 1:
            reason = r.reason if r.first < new.first else new.reason
            new = _Blank(min(r.first, new.first), max(r.last, new.last), reason)
        else:
            kept.append(r)
    regions[:] = [*kept, new]
    return new


def _blanked(rows: list[str], breaks: list[str], regions: list[_Blank]) -> str:
    """The text with each region's first line made :data:`PLACEHOLDER` at its indentation
    (or empty) and its other lines empty; every line break kept."""
    out = list(rows)
    for r in regions:
        indent = _INDENT.match(rows[r.first - 1]).group()  # type: ignore[union-attr]
        out[r.first - 1] = "" if r.empty else indent + PLACEHOLDER
        for n in range(r.first, r.last):
            out[n] = ""
    return "".join(row + brk for row, brk in zip(out, breaks, strict=True))


__all__ = ["MAX_PERCENT", "MAX_REGIONS", "MAX_TRIES", "MIN_LINES", "PLACEHOLDER", "Recovered",
           "Region", "line_budget", "line_count", "recover"]
