"""Python 2 source read as Python 3: tabs expanded and a token-level rewrite within lines.

TF1-era projects hold Python 2 files (``print x``, ``except IOError, e:``), and a scan that
only parses Python 3 loses every finding in them. When a file does not parse, the engine
(:mod:`leakwatt.mining.scan`) asks :func:`python3_text` for a text it can parse:

1. **Tabs.** Python 2 read a tab in indentation as a move to the next multiple of 8 columns,
   whatever the spaces around it; Python 3 refuses indentation whose meaning depends on the
   tab size (``TabError``). The leading whitespace of each line (not of lines inside a
   multi-line string) is rewritten as the spaces Python 2 saw.
2. **Python 2 constructs**, rewritten token by token with the standard library's
   :mod:`tokenize` (on Python 3.11 a pure-Python tokenizer that reads Python 2 tokens without
   failing: a backtick is an ``ERRORTOKEN``, ``0777`` two numbers, ``ur`` a name):

   * ``print x, y`` / ``print >>f, x`` / ``print x,`` / a bare ``print`` ->
     ``print(x, y)`` / ``print(x, file=f)`` / ``print(x, end=' ')`` / ``print()``;
   * ``exec code in ns`` -> ``exec(code, ns)``;
   * ``except X, e:`` -> ``except X as e:``;
   * ``raise E, msg`` -> ``raise E(msg)`` (``raise E, msg, tb`` -> ``raise
     E(msg).with_traceback(tb)``);
   * backticks ```x``` -> ``repr(x)``; ``0777`` -> ``0o777``; ``123L`` -> ``123``;
     ``ur"..."`` -> ``r"..."``; ``<>`` -> ``!=``.

   Only code that is not valid Python 3 is touched (each of these is a syntax error in
   Python 3), so the Python 3 parts of a mixed file pass through unchanged.

Every edit stays within its line: no line is added or removed, so findings keep the line
numbers of the file. Columns shift where an edit lies before them on the same line;
:meth:`Readable.column` maps a column of the rewritten text back to the file's. libcst then
parses the rewritten text; the caller marks the file's result (``note``) so users know.

No library was used: ``lib2to3`` (the only maintained Python 2 reader in the standard
library) is deprecated and removed in Python 3.13, and its fixers rewrite across lines;
libcst parses Python 3 grammars only.
"""

from __future__ import annotations

import ast
import io
import keyword
import re
import tokenize
import warnings
from dataclasses import dataclass

#: One edit of a line: (1-based row, start column, end column, replacement), columns 0-based
#: positions in that row's text (before any edit of this layer).
Edit = tuple[int, int, int, str]

#: Construct names (used in notes and error messages).
TABS = "tabs in indentation"
PRINT = "print statement"
EXEC = "exec statement"
EXCEPT = "except X, e"
RAISE = "raise E, msg"
BACKTICKS = "backticks"
OCTAL = "octal literal"
LONG = "long integer suffix"
UR_PREFIX = "ur string prefix"
NOT_EQUAL = "<> operator"

_TAB_SIZE = 8
_LEADING_WS = re.compile(r"[ \t\f]*")
_STRUCTURE = frozenset({tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER})
#: Keywords that can start an operand (so ``print not x`` is a print statement).
_OPERAND_KEYWORDS = frozenset({"not", "lambda", "None", "True", "False", "yield", "await"})
#: Operators that can start the operand of a print statement. ``(`` is not one: ``print (x)``
#: already parses as Python 3.
_OPERAND_OPS = frozenset({"-", "+", "~", "[", "{", ">>"})
#: What stops a rewritten Python 2 file from parsing, by the line the parser stops at.
_BLOCKERS = (
    (re.compile(r"\b(?:def\s+\w+\s*\([^)]*\(|lambda\s*\()"), "tuple parameter"),
    (re.compile(r"^\s*print\b(?!\s*\()"), PRINT),
    (re.compile(r"^\s*exec\b(?!\s*\()"), EXEC),
    (re.compile(r"`"), BACKTICKS),
    (re.compile(r"^\s*except\b[^:]*,"), EXCEPT),
    (re.compile(r"^\s*raise\b[^#]*,"), RAISE),
)


class LegacyError(Exception):
    """The text does not parse as Python 3 even after the rewrite (``str``: why, one line)."""

    def __init__(self, message: str, rewritten: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        #: The constructs that were rewritten before the parse still failed.
        self.rewritten = rewritten


@dataclass(frozen=True)
class Readable:
    """A Python 3 text read from a file that was not one, with how to map columns back."""

    text: str
    #: What was rewritten, each with the first line it was found on: ``(construct, line)``.
    rewritten: tuple[tuple[str, int], ...]
    #: Edit layers in the order they were applied (tabs, then Python 2 constructs), by row.
    layers: tuple[dict[int, tuple[Edit, ...]], ...]

    @property
    def python2(self) -> bool:
        """Whether Python 2 constructs were rewritten (not only tab indentation)."""
        return any(what != TABS for what, _ in self.rewritten)

    def column(self, line: int, col: int) -> int:
        """The file's 1-based column of 1-based ``col`` on ``line`` of :attr:`text`."""
        c = col - 1
        for layer in reversed(self.layers):
            c = _map_back(layer.get(line, ()), c)
        return c + 1

    def note(self) -> str:
        """One line for the scan result: what was read how."""
        parts = ", ".join(f"{what} at line {line}" for what, line in self.rewritten
                          if what != TABS)
        tabs = any(what == TABS for what, _ in self.rewritten)
        tab_text = "indentation tabs read as Python 2 did (to the next multiple of 8 columns)"
        if not self.python2:
            return f"tabs: {tab_text}; scanned"
        extra = f"; {tab_text}" if tabs else ""
        return (f"python2: read as Python 2 source ({parts}), rewritten within lines to parse"
                f"{extra}; line numbers are the file's")


def syntax_error(text: str) -> SyntaxError | None:
    """Python 3's syntax error in ``text`` (``ast``), or None when it parses."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
    except SyntaxError as err:
        return err
    except (ValueError, RecursionError, MemoryError):
        return SyntaxError("cannot parse")
    return None


def python3_text(source: str) -> Readable:
    """``source`` (which does not parse as Python 3) made parseable: its indentation tabs
    expanded and its Python 2 constructs rewritten within their lines (module docstring).
    LegacyError, with the reason, when the result still does not parse."""
    text = source
    layers: list[dict[int, tuple[Edit, ...]]] = []
    rewritten: list[tuple[str, int]] = []
    expanded, tab_edits = expand_indent_tabs(text)
    if tab_edits:
        text = expanded
        layers.append(tab_edits)
        rewritten.append((TABS, min(tab_edits)))
        if syntax_error(text) is None:
            return Readable(text, tuple(rewritten), tuple(layers))
    try:
        new, edits, found = rewrite_python2(text)
    except (tokenize.TokenError, SyntaxError) as exc:
        reason = exc.args[0] if exc.args else type(exc).__name__
        raise LegacyError(f"the tokenizer stops: {' '.join(str(reason).split())}",
                          tuple(w for w, _ in rewritten)) from None
    if found:
        text = new
        layers.append(edits)
        rewritten.extend(found)
    err = syntax_error(text)
    if err is None and found:
        return Readable(text, tuple(rewritten), tuple(layers))
    names = tuple(w for w, _ in rewritten)
    if err is None:  # only tabs, and they did not help (cannot happen: checked above)
        raise LegacyError("does not parse", names)
    raise LegacyError(blocker(text, err), names)


def blocker(text: str, err: SyntaxError) -> str:
    """What stops ``text`` from parsing, one line: the Python 2 construct on the line the
    parser stops at when one is recognised, else Python's message, with the line number."""
    line_no = err.lineno or 0
    lines = text.split("\n")
    line = lines[line_no - 1] if 0 < line_no <= len(lines) else ""
    for pattern, what in _BLOCKERS:
        if pattern.search(line):
            return f"{what} at line {line_no}"
    kind = "indentation error" if isinstance(err, IndentationError) else "syntax error"
    return f"{kind} at line {line_no}: {err.msg}"


# --------------------------------------------------------------------------------------------
# Tabs
# --------------------------------------------------------------------------------------------


def expand_indent_tabs(text: str) -> tuple[str, dict[int, tuple[Edit, ...]]]:
    """``text`` with the tabs of every line's leading whitespace expanded as Python 2 did (a
    tab moves to the next multiple of 8 columns, a form feed to column 0), and the edits.
    Lines that start inside a multi-line string are left alone (when the text tokenizes)."""
    if "\t" not in text:
        return text, {}
    inside = _string_rows(text)
    lines = text.split("\n")
    edits: dict[int, tuple[Edit, ...]] = {}
    for row, line in enumerate(lines, start=1):
        ws = _LEADING_WS.match(line).group()  # type: ignore[union-attr]
        if "\t" not in ws or row in inside or ws == line.rstrip("\r"):
            continue  # no tab, inside a string, or a blank line
        col = 0
        for ch in ws:
            if ch == "\t":
                col = (col // _TAB_SIZE + 1) * _TAB_SIZE
            elif ch == " ":
                col += 1
            else:  # form feed
                col = 0
        spaces = " " * col
        edits[row] = ((row, 0, len(ws), spaces),)
        lines[row - 1] = spaces + line[len(ws):]
    return "\n".join(lines), edits


def _string_rows(text: str) -> set[int]:
    """Rows that begin inside a multi-line string token (empty when ``text`` does not
    tokenize: then every line's indentation is read)."""
    rows: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                rows.update(range(tok.start[0] + 1, tok.end[0] + 1))
    except (tokenize.TokenError, SyntaxError):
        return set()
    return rows


# --------------------------------------------------------------------------------------------
# Python 2 constructs
# --------------------------------------------------------------------------------------------


def rewrite_python2(text: str) -> tuple[str, dict[int, tuple[Edit, ...]],
                                        list[tuple[str, int]]]:
    """``text`` with its Python 2 constructs rewritten within their lines, the edits by row,
    and the constructs found (each with its first line). tokenize.TokenError or SyntaxError
    (an IndentationError) when ``text`` does not tokenize."""
    toks = [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
            if t.type not in (tokenize.COMMENT, tokenize.NL)
            and not (t.type == tokenize.ERRORTOKEN and t.string.isspace())]
    lines = text.split("\n")
    out: list[Edit] = []
    found: dict[str, int] = {}

    def add(what: str, *edits: Edit) -> None:
        out.extend(edits)
        found.setdefault(what, edits[0][0])

    depth = 0
    at_start = True
    backtick_open = False
    for i, tok in enumerate(toks):
        if tok.type in _STRUCTURE:
            depth, at_start, backtick_open = 0, True, False
            continue
        starts, at_start = at_start, False
        s = tok.string
        if tok.type == tokenize.OP:
            if s in "([{":
                depth += 1
            elif s in ")]}":
                depth = max(0, depth - 1)
            elif s in (";", ":") and depth == 0:
                at_start = True  # ``if x: print y``, ``a = 1; print a``
            elif s == "<" and i + 1 < len(toks) and _adjacent(tok, toks[i + 1], ">"):
                add(NOT_EQUAL, (tok.start[0], tok.start[1], toks[i + 1].end[1], "!="))
        elif tok.type == tokenize.NAME:
            if starts and depth == 0 and s in _STATEMENTS:
                what, edits = _STATEMENTS[s](toks, i, _statement_end(toks, i), lines)
                if edits:
                    add(what, *edits)
            elif s in ("L", "l") and i and toks[i - 1].type == tokenize.NUMBER and \
                    _touches(toks[i - 1], tok) and not _octal_head(toks, i - 1):
                add(LONG, (tok.start[0], tok.start[1], tok.end[1], ""))
            elif s.lower() == "ur" and i + 1 < len(toks) and \
                    toks[i + 1].type == tokenize.STRING and _touches(tok, toks[i + 1]):
                add(UR_PREFIX, (tok.start[0], tok.start[1], tok.end[1], s[1]))
        elif tok.type == tokenize.NUMBER:
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            if re.fullmatch(r"0+", s) and nxt is not None and nxt.type == tokenize.NUMBER \
                    and _touches(tok, nxt) and re.fullmatch(r"[0-7]+", nxt.string):
                end = nxt.end[1]
                after = toks[i + 2] if i + 2 < len(toks) else None
                if after is not None and after.string in ("L", "l") and _touches(nxt, after):
                    end = after.end[1]  # ``0777L``
                add(OCTAL, (tok.start[0], tok.start[1], end, "0o" + nxt.string))
        elif tok.type == tokenize.ERRORTOKEN and s == "`":
            add(BACKTICKS, (tok.start[0], tok.start[1], tok.end[1],
                            ")" if backtick_open else "repr("))
            backtick_open = not backtick_open
    if backtick_open:  # an unpaired backtick: leave the file to the parser's error
        out = [e for e in out if e[3] not in ("repr(", ")") or not _is_backtick(lines, e)]
        found.pop(BACKTICKS, None)
    by_row: dict[int, list[Edit]] = {}
    for edit in out:
        by_row.setdefault(edit[0], []).append(edit)
    applied: dict[int, tuple[Edit, ...]] = {}
    for row, edits in by_row.items():
        kept: list[Edit] = []
        for edit in sorted(edits, key=lambda e: (e[1], e[2])):
            if kept and edit[1] < kept[-1][2]:
                continue  # overlaps an earlier edit (never for valid Python 2)
            kept.append(edit)
        line = lines[row - 1]
        parts: list[str] = []
        pos = 0
        for _, start, end, new in kept:
            parts.append(line[pos:start])
            parts.append(new)
            pos = end
        parts.append(line[pos:])
        lines[row - 1] = "".join(parts)
        applied[row] = tuple(kept)
    order = sorted(found.items(), key=lambda kv: kv[1])
    return "\n".join(lines), applied, order


def _is_backtick(lines: list[str], edit: Edit) -> bool:
    row, start, end, _ = edit
    return lines[row - 1][start:end] == "`"


def _touches(a: tokenize.TokenInfo, b: tokenize.TokenInfo) -> bool:
    """``b`` starts where ``a`` ends (no space between them)."""
    return a.end == b.start


def _adjacent(a: tokenize.TokenInfo, b: tokenize.TokenInfo, string: str) -> bool:
    return b.type == tokenize.OP and b.string == string and _touches(a, b)


def _octal_head(toks: list[tokenize.TokenInfo], i: int) -> bool:
    """``toks[i]`` is the digits of an octal literal (``0`` ``777``): its ``L`` is part of the
    octal edit."""
    return i > 0 and re.fullmatch(r"0+", toks[i - 1].string) is not None and \
        toks[i - 1].type == tokenize.NUMBER and _touches(toks[i - 1], toks[i])


def _statement_end(toks: list[tokenize.TokenInfo], i: int) -> int:
    """Index of the token that ends the simple statement starting at ``toks[i]``: its
    NEWLINE (or ENDMARKER), or a ``;`` outside brackets."""
    depth = 0
    for j in range(i + 1, len(toks)):
        t = toks[j]
        if t.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
            return j
        if t.type == tokenize.OP:
            if t.string in "([{":
                depth += 1
            elif t.string in ")]}":
                depth = max(0, depth - 1)
            elif t.string == ";" and depth == 0:
                return j
    return len(toks)


def _operand_start(tok: tokenize.TokenInfo) -> bool:
    """Whether ``tok`` can begin the operand of a ``print``/``exec`` statement."""
    if tok.type == tokenize.NAME:
        return not keyword.iskeyword(tok.string) or tok.string in _OPERAND_KEYWORDS
    if tok.type in (tokenize.NUMBER, tokenize.STRING):
        return True
    if tok.type == tokenize.ERRORTOKEN:
        return tok.string == "`"
    return tok.type == tokenize.OP and tok.string in _OPERAND_OPS


def _depth0_positions(toks: list[tokenize.TokenInfo], start: int, end: int,
                      string: str, kind: int = tokenize.OP) -> list[int]:
    """Indices in ``toks[start:end]`` of tokens ``string`` outside brackets."""
    out = []
    depth = 0
    for k in range(start, end):
        t = toks[k]
        if t.type == tokenize.OP and t.string in "([{":
            depth += 1
        elif t.type == tokenize.OP and t.string in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0 and t.type == kind and t.string == string:
            out.append(k)
    return out


def _text(lines: list[str], first: tokenize.TokenInfo, last: tokenize.TokenInfo) -> str | None:
    """The source from ``first`` to ``last`` when both are on one line, else None."""
    if first.start[0] != last.end[0]:
        return None
    return lines[first.start[0] - 1][first.start[1]:last.end[1]]


def _call_edits(name: tokenize.TokenInfo, first: tokenize.TokenInfo,
                last: tokenize.TokenInfo, tail: str) -> list[Edit]:
    """``name first ... last`` -> ``name(first ... last<tail>``: the space after the name
    becomes ``(`` (on the name's line) and ``tail`` follows the last token."""
    if first.start[0] != name.end[0]:
        return []  # the operand starts on the next line (a backslash): not rewritten
    return [(name.end[0], name.end[1], first.start[1], "("),
            (last.end[0], last.end[1], last.end[1], tail)]


def _print(toks: list[tokenize.TokenInfo], i: int, end: int,
           lines: list[str]) -> tuple[str, list[Edit]]:
    name = toks[i]
    if i + 1 == end:  # a bare ``print``
        return PRINT, [(name.end[0], name.end[1], name.end[1], "()")]
    first = toks[i + 1]
    if not _operand_start(first):
        return PRINT, []
    last = toks[end - 1]
    trailing = last.type == tokenize.OP and last.string == ","
    if first.type == tokenize.OP and first.string == ">>":
        commas = _depth0_positions(toks, i + 2, end, ",")
        dest_end = commas[0] if commas else end
        if dest_end == i + 2:
            return PRINT, []
        dest = _text(lines, toks[i + 2], toks[dest_end - 1])
        if dest is None:
            return PRINT, []
        if not commas:  # ``print >>f``
            return PRINT, [(name.end[0], name.end[1], toks[dest_end - 1].end[1],
                            f"(file={dest})")]
        if commas[0] + 1 == end:  # ``print >>f,``
            if toks[commas[0]].end[0] != name.end[0]:
                return PRINT, []
            return PRINT, [(name.end[0], name.end[1], toks[commas[0]].end[1],
                            f"(file={dest}, end=' ')")]
        rest = toks[commas[0] + 1]
        if rest.start[0] != name.end[0]:
            return PRINT, []
        tail = f" file={dest}, end=' ')" if trailing else f", file={dest})"
        return PRINT, [(name.end[0], name.end[1], rest.start[1], "("),
                       (last.end[0], last.end[1], last.end[1], tail)]
    return PRINT, _call_edits(name, first, last, " end=' ')" if trailing else ")")


def _exec(toks: list[tokenize.TokenInfo], i: int, end: int,
          lines: list[str]) -> tuple[str, list[Edit]]:
    if i + 1 == end:
        return EXEC, []
    first = toks[i + 1]
    if not _operand_start(first) or first.string in ("[", "{", ">>", "-", "+", "~"):
        return EXEC, []
    edits = _call_edits(toks[i], first, toks[end - 1], ")")
    if not edits:
        return EXEC, []
    for k in _depth0_positions(toks, i + 2, end, "in", tokenize.NAME)[:1]:
        prev = toks[k - 1]
        if prev.end[0] != toks[k].start[0]:
            return EXEC, []
        edits.append((prev.end[0], prev.end[1], toks[k].end[1], ","))
    return EXEC, edits


def _except(toks: list[tokenize.TokenInfo], i: int, end: int,
            lines: list[str]) -> tuple[str, list[Edit]]:
    colon = _depth0_positions(toks, i + 1, end, ":")
    if not colon:
        return EXCEPT, []
    commas = _depth0_positions(toks, i + 1, colon[0], ",")
    if len(commas) != 1 or commas[0] + 1 >= colon[0]:
        return EXCEPT, []
    comma = toks[commas[0]]
    return EXCEPT, [(comma.start[0], comma.start[1], comma.end[1], " as")]


def _raise(toks: list[tokenize.TokenInfo], i: int, end: int,
           lines: list[str]) -> tuple[str, list[Edit]]:
    commas = _depth0_positions(toks, i + 1, end, ",")
    if not commas or len(commas) > 2 or commas[-1] + 1 == end:
        return RAISE, []
    first = toks[commas[0]]
    after = toks[commas[0] + 1]
    if after.start[0] != first.end[0]:
        return RAISE, []
    edits = [(first.start[0], first.start[1], after.start[1], "(")]
    if len(commas) == 2:
        second = toks[commas[1]]
        after2 = toks[commas[1] + 1]
        if after2.start[0] != second.end[0]:
            return RAISE, []
        edits.append((second.start[0], second.start[1], after2.start[1],
                      ").with_traceback("))
    last = toks[end - 1]
    edits.append((last.end[0], last.end[1], last.end[1], ")"))
    return RAISE, edits


_STATEMENTS = {"print": _print, "exec": _exec, "except": _except, "raise": _raise}


def _map_back(edits: tuple[Edit, ...], col: int) -> int:
    """A 0-based column after ``edits`` (sorted, not overlapping) -> the column before them.
    A column inside a replacement maps into the text it replaced (its end at most)."""
    shift = 0
    for _, start, end, new in edits:
        new_start = start + shift
        new_end = new_start + len(new)
        if col < new_start:
            break
        if col < new_end:
            return start + min(col - new_start, max(0, end - start - 1))
        shift += len(new) - (end - start)
    return col - shift


__all__ = ["BACKTICKS", "EXCEPT", "EXEC", "LONG", "NOT_EQUAL", "OCTAL", "PRINT", "RAISE",
           "TABS", "UR_PREFIX", "LegacyError", "Readable", "blocker", "expand_indent_tabs",
           "python3_text", "rewrite_python2", "syntax_error"]
