"""Everything in the engine that relies on libcst internals, in one module.

Two speed-ups lean on libcst's private API, each guarded by tests/test_scan_libcst.py (which
says what to do when a libcst release breaks one) and by the libcst pin in pyproject.toml:

* :func:`parse_module` parses without running ``CSTNode.__post_init__`` (the per-node
  validation) by swapping it out on the class for the length of the parse;
* :func:`node_positions` computes positions for the statements that hold a finding only, by
  generating each on its own through ``PositionProvidingCodegenState`` and ``_codegen``.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Mapping, Sequence

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider
from libcst.metadata.position_provider import PositionProvidingCodegenState


def _skip_validation(node: cst.CSTNode) -> None:
    return None


def parse_module(text: str) -> cst.Module:
    """``libcst.parse_module`` without the per-node validation of the constructors.

    Every node the parser builds runs ``CSTNode._validate`` from ``__post_init__`` (about an
    eighth of the parse time), which checks invariants a syntactically valid parse already
    has. Nodes built elsewhere (autofixes) are still validated: the check is restored right
    after the parse.
    """
    base = cst.CSTNode
    saved = base.__dict__["__post_init__"]
    base.__post_init__ = _skip_validation  # type: ignore[method-assign,assignment]
    try:
        return cst.parse_module(text)
    finally:
        base.__post_init__ = saved  # type: ignore[method-assign]


def node_positions(module: cst.Module, top: Mapping[int, tuple[int, ...]],
                   nodes: list[cst.CSTNode], source: str | None) -> dict[int, tuple[int, int]]:
    """1-based (line, column) of ``nodes``, keyed by ``id``.

    libcst's ``PositionProvider`` generates the code of the whole module. With the source at
    hand, only the smallest definition holding a node is generated: its top-level statement,
    or the method (or nested function) the indexer placed it in (``top``: node id -> its path,
    see :attr:`ModuleContext.top <leakwatt.mining.rules.context.ModuleContext.top>`), each on its own with the
    indentation of its ``def`` line, and shifted to the line ``ast`` gives for that statement
    (libcst and ast both start a decorated definition at its ``def``/``class`` line).
    """
    if source is None:
        return _whole_module_positions(module, nodes)
    groups: dict[tuple[int, ...], list[cst.CSTNode]] = {}
    for node in nodes:
        path = top.get(id(node))
        if path is None or path[0] < 0:
            return _whole_module_positions(module, nodes)
        groups.setdefault(path, []).append(node)
    located = _locate(module, source, list(groups))
    if located is None:
        return _whole_module_positions(module, nodes)
    out: dict[int, tuple[int, int]] = {}
    for path, members in groups.items():
        stmt, line, indent = located[path]
        pos = statement_positions(module, stmt, indent)
        shift = line - pos[stmt].start.line
        for node in members:
            p = pos.get(node)
            if p is not None:
                out[id(node)] = (p.start.line + shift, p.start.column + 1)
    return out


def statement_positions(module: cst.Module, stmt: cst.CSTNode, indent: str
                        ) -> Mapping[cst.CSTNode, CodeRange]:
    """Positions of the nodes of ``stmt``, generated on its own (its first line is line 1),
    with ``indent`` as the indentation it sits at.

    libcst internals (tests/test_scan_libcst.py guards each): ``PositionProvidingCodegenState``
    takes these four keyword arguments, ``CSTNode._codegen(state)`` generates a node, and the
    provider's ``_computed`` dict holds the ranges afterwards.
    """
    provider = PositionProvider()
    state = PositionProvidingCodegenState(
        default_indent=module.default_indent, default_newline=module.default_newline,
        provider=provider, indent_tokens=[indent] if indent else [])
    stmt._codegen(state)
    return provider._computed  # type: ignore[return-value]


def _whole_module_positions(module: cst.Module, nodes: list[cst.CSTNode]
                            ) -> dict[int, tuple[int, int]]:
    pos = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    return {id(n): (pos[n].start.line, pos[n].start.column + 1) for n in nodes if n in pos}


def _ast_index(body: Sequence[cst.BaseStatement], index: int) -> int:
    """Index in ``ast``'s statement list of the ``index``-th statement of a libcst body."""
    return sum(len(s.body) if isinstance(s, cst.SimpleStatementLine) else 1
               for s in body[:index])


def _locate(module: cst.Module, source: str, paths: list[tuple[int, ...]]
            ) -> dict[tuple[int, ...], tuple[cst.CSTNode, int, str]] | None:
    """For each path, its statement, the line ``ast`` gives it, and its ``def`` line's indent.

    None when ast and libcst disagree on the statements (the caller then falls back).
    """
    if "\r" in source and source.count("\r") != source.count("\r\n"):
        return None  # lone "\r" line ends: ast and a "\n" split disagree on line numbers
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            body = ast.parse(source).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if _ast_index(module.body, len(module.body)) != len(body):
        return None
    lines: list[str] | None = None
    out: dict[tuple[int, ...], tuple[cst.CSTNode, int, str]] = {}
    prefix: dict[int, list[int]] = {}  # body -> running ast statement counts (linear, once)

    def ast_index(body: Sequence[cst.BaseStatement], index: int) -> int:
        counts = prefix.get(id(body))
        if counts is None:
            counts = [0]
            for s in body:
                counts.append(counts[-1] + (len(s.body) if isinstance(s, cst.SimpleStatementLine)
                                            else 1))
            prefix[id(body)] = counts
        return counts[min(index, len(body))]

    for path in paths:
        cst_body: Sequence[cst.BaseStatement] = module.body
        ast_body: list[ast.stmt] = body
        stmt: cst.CSTNode | None = None
        node: ast.stmt | None = None
        for depth, idx in enumerate(path):
            if depth:
                if not isinstance(stmt, cst.ClassDef | cst.FunctionDef) or not isinstance(
                        node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                    return None
                cst_body, ast_body = stmt.body.body, node.body  # type: ignore[assignment]
            k = ast_index(cst_body, idx)
            if idx >= len(cst_body) or k >= len(ast_body):
                return None
            stmt, node = cst_body[idx], ast_body[k]
        assert stmt is not None and node is not None
        indent = ""
        if len(path) > 1:
            if getattr(stmt, "name", None) is None or stmt.name.value != getattr(  # type: ignore[attr-defined]
                    node, "name", None):
                return None
            if lines is None:
                lines = source.split("\n")
            indent = lines[node.lineno - 1][:node.col_offset]
            if indent.strip():
                return None
        out[path] = (stmt, node.lineno, indent)
    return out
