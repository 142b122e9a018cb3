"""Autofix helpers: build :class:`Fix` objects and apply them to a parsed module."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import libcst as cst

from leakwatt.mining.rules.api import Fix


def _is_docstring(stmt: cst.CSTNode) -> bool:
    return (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
            and isinstance(stmt.body[0], cst.Expr)
            and isinstance(stmt.body[0].value, cst.SimpleString | cst.ConcatenatedString))


def insert_at_top(body: cst.IndentedBlock, code: str, key: str) -> Fix:
    """Insert the statement ``code`` at the top of ``body`` (after a docstring)."""
    new_stmt = cst.parse_statement(code + "\n")

    def apply(updated: cst.IndentedBlock) -> cst.IndentedBlock:
        stmts = list(updated.body)
        at = 1 if stmts and _is_docstring(stmts[0]) else 0
        if at < len(stmts) and isinstance(stmts[at], cst.SimpleStatementLine) and \
                cst.Module([]).code_for_node(stmts[at]).strip() == code:
            return updated
        stmts.insert(at, new_stmt)
        return updated.with_changes(body=stmts)

    return Fix(target=body, key=f"{key}:{id(body)}", apply=apply)


def replace_expr(node: cst.BaseExpression, build: Any, key: str) -> Fix:
    """Replace an expression by ``build(updated_expression)``."""
    return Fix(target=node, key=f"{key}:{id(node)}", apply=build)


class _Applier(cst.CSTTransformer):
    def __init__(self, fixes: Iterable[Fix]) -> None:
        super().__init__()
        self.by_node: dict[int, list[Fix]] = {}
        seen: set[str] = set()
        for fix in fixes:
            if fix.key in seen:
                continue
            seen.add(fix.key)
            self.by_node.setdefault(id(fix.target), []).append(fix)
        self.applied = 0

    def on_leave(self, original_node: Any, updated_node: Any) -> Any:
        updated = super().on_leave(original_node, updated_node)
        for fix in self.by_node.get(id(original_node), []):
            updated = fix.apply(updated)
            self.applied += 1
        return updated


def apply_fixes(module: cst.Module, fixes: Iterable[Fix]) -> tuple[str, int]:
    """The fixed source and how many fixes were applied."""
    applier = _Applier(fixes)
    if not applier.by_node:
        return module.code, 0
    new = module.visit(applier)
    return new.code, applier.applied
