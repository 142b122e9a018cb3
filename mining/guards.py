"""Cheap checks, before libcst, for the source shapes its native parser cannot survive.

libcst's parser (Rust) recurses once per level of an expression and allocates per level
without bounds, so a few kilobytes of valid-looking Python can take it down: 1,500 nested
parentheses segfault it, 4,000 chained unary minus signs take 1.8 GB (10,000: a SIGSEGV),
a 2,000-arm conditional expression 1.4 GB (5,000: SIGABRT), and a 4,000-link call chain runs
for tens of seconds inside native code, where no signal interrupts it. The scan runs each file
in a sandboxed worker (:mod:`leakwatt.mining.sandbox`) that survives all of that; these guards
make the known shapes an error row at once, without starting a parse.

:func:`pathological` reads the text with Python's :mod:`tokenize` (no parse, no recursion)
and measures, per statement:

* **bracket depth**: CPython's own tokenizer refuses more than 200 nested brackets ("too many
  nested parentheses"), so no file Python can run is refused here;
* **unary operators in a row** (``- - - x``, ``not not x``);
* **binary operators between two commas** at one bracket level (``a + b * c - ...``);
* **conditional-expression arms** (``a if c else b if d else ...``) at one bracket level;
* **call chain links** (``f()()``, ``x.a().b[0].c``): calls, subscripts and attributes in a row.

The limits are far above what people write (measured on the ``.py`` files of keras 3 and
TensorFlow 2.21 as installed, and this project's tests: 2,819 files, 42 MB, at most 8 brackets
deep, 2 unary operators in a row, 25 binary operators in one expression, 2 conditional arms
and 9 chain links) and below what libcst parses in well under a second and 100 MB (measured:
1,000 unary operators, 0.2 s and 81 MB; 1,000 conditional arms, 0.5 s and 200 MB; 1,000
``.b()`` links, 2.6 s, quadratic). A shape the guards do not know still cannot take a
scan down: the sandbox's memory and time limits and its crash handling catch it.
"""

from __future__ import annotations

import io
import tokenize

#: CPython's tokenizer limit (``MAXLEVEL`` in Parser/tokenizer.h): deeper is a SyntaxError.
MAX_BRACKET_DEPTH = 200
#: ``- - x`` (measured maximum in real code: 2).
MAX_UNARY_RUN = 200
#: Binary operators at one bracket level between two commas (measured maximum: 25); higher
#: than the others because libcst handles 1,000 in 0.3 s and long sums are plausible.
MAX_BINARY_CHAIN = 1000
#: Arms of one chained conditional expression (measured maximum: 2).
MAX_CONDITIONAL_ARMS = 200
#: Calls, subscripts and attributes in a row (``a.b().c[0]`` is 4; measured maximum: 9).
MAX_CALL_CHAIN = 200

_UNARY = frozenset({"-", "+", "~", "not"})
_BINARY = frozenset({
    "+", "-", "*", "/", "//", "%", "@", "**", "<<", ">>", "&", "|", "^",
    "<", ">", "==", "!=", "<=", ">=", "and", "or", "in", "is"})
_OPEN = frozenset("([{")
_CLOSE = frozenset(")]}")
#: Tokens after which ``(``, ``[`` or ``.`` continue a chain (a call, subscript, attribute).
_CHAINABLE_OPS = frozenset({")", "]", "}"})
_KEYWORDS = frozenset({
    "and", "as", "assert", "async", "await", "del", "elif", "else", "except", "for", "from",
    "global", "if", "import", "in", "is", "lambda", "nonlocal", "not", "or", "raise", "return",
    "while", "with", "yield"})
_RESETS = frozenset({",", ";", "=", ":", ":="})
_SKIP = frozenset({tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT,
                   tokenize.ENCODING})


def _could_exceed(text: str) -> bool:
    """Whether any limit can be reached at all (most texts: a few ``str.count`` calls)."""
    opens = text.count("(") + text.count("[") + text.count("{")
    if opens > min(MAX_BRACKET_DEPTH, MAX_CALL_CHAIN) or text.count(".") > MAX_CALL_CHAIN:
        return True
    if text.count("else") > MAX_CONDITIONAL_ARMS:
        return True
    unary = text.count("-") + text.count("+") + text.count("~") + text.count("not")
    if unary > MAX_UNARY_RUN:
        return True
    ops = sum(text.count(c) for c in "*/%@<>=!&|^") + unary + text.count("and") + \
        text.count("or") + text.count("in") + text.count("is")
    return ops > MAX_BINARY_CHAIN


def pathological(text: str) -> str | None:
    """Why libcst must not be given ``text`` (one line), or None when it is safe to parse.

    None also for text that does not tokenize: the parser then reports the syntax error.
    """
    if not _could_exceed(text):
        return None
    depth = 0
    unary_run = 0
    # per open bracket level: [binary operators, conditional arms, chain links]
    levels: list[list[int]] = [[0, 0, 0]]
    prev: tokenize.TokenInfo | None = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in _SKIP:
                continue
            if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                levels = [[0, 0, 0]]
                depth, unary_run, prev = 0, 0, None
                continue
            s = tok.string
            is_op = tok.type == tokenize.OP or (tok.type == tokenize.NAME and s in _KEYWORDS)
            level = levels[-1]
            # unary operators in a row: an operator in operand position
            if is_op and s in _UNARY and (prev is None or _expects_operand(prev)):
                unary_run += 1
                if unary_run > MAX_UNARY_RUN:
                    return (f"more than {MAX_UNARY_RUN} unary operators in a row at line "
                            f"{tok.start[0]}; not parsed")
            elif prev is not None and not (tok.type == tokenize.OP and s in _UNARY):
                unary_run = 0
            chains = prev is not None and (
                prev.type in (tokenize.NAME, tokenize.STRING, tokenize.NUMBER)
                and prev.string not in _KEYWORDS or prev.string in _CHAINABLE_OPS)
            if s in _OPEN and tok.type == tokenize.OP:
                if chains:
                    level[2] += 1
                    if level[2] > MAX_CALL_CHAIN:
                        return (f"a chain of more than {MAX_CALL_CHAIN} calls, subscripts "
                                f"or attributes at line {tok.start[0]}; not parsed")
                else:
                    level[2] = 0
                depth += 1
                if depth > MAX_BRACKET_DEPTH:
                    return (f"brackets nested more than {MAX_BRACKET_DEPTH} deep at line "
                            f"{tok.start[0]} (Python allows {MAX_BRACKET_DEPTH}); not parsed")
                levels.append([0, 0, 0])
            elif s in _CLOSE and tok.type == tokenize.OP:
                depth = max(0, depth - 1)
                if len(levels) > 1:
                    levels.pop()
            elif s == "." and tok.type == tokenize.OP:
                if chains:
                    level[2] += 1
                    if level[2] > MAX_CALL_CHAIN:
                        return (f"a chain of more than {MAX_CALL_CHAIN} calls, subscripts "
                                f"or attributes at line {tok.start[0]}; not parsed")
            elif is_op and s in _RESETS:
                level[0] = level[1] = level[2] = 0
            else:
                if not (tok.type == tokenize.NAME and prev is not None and prev.string == "."):
                    level[2] = 0
                if is_op and s in _BINARY and prev is not None and not _expects_operand(prev):
                    level[0] += 1
                    if level[0] > MAX_BINARY_CHAIN:
                        return (f"more than {MAX_BINARY_CHAIN} binary operators in one "
                                f"expression at line {tok.start[0]}; not parsed")
                elif tok.type == tokenize.NAME and s == "else" and prev is not None:
                    level[1] += 1
                    if level[1] > MAX_CONDITIONAL_ARMS:
                        return (f"a conditional expression of more than "
                                f"{MAX_CONDITIONAL_ARMS} arms at line {tok.start[0]}; "
                                "not parsed")
            prev = tok
    except (tokenize.TokenError, SyntaxError, ValueError):
        return None
    return None


def _expects_operand(prev: tokenize.TokenInfo) -> bool:
    """Whether the token after ``prev`` starts an operand (so ``-`` there is unary)."""
    if prev.type == tokenize.OP:
        return prev.string not in _CHAINABLE_OPS
    return prev.type == tokenize.NAME and prev.string in _KEYWORDS


__all__ = ["MAX_BINARY_CHAIN", "MAX_BRACKET_DEPTH", "MAX_CALL_CHAIN", "MAX_CONDITIONAL_ARMS",
           "MAX_UNARY_RUN", "pathological"]
