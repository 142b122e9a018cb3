"""Each libcst private-API assumption the engine makes, as its own test.

The scan engine leans on libcst internals for speed (mining/rules/fastcst.py, and the indexer's
walk in mining/rules/index.py); pyproject.toml pins libcst to the release range these tests
pass on. When a libcst upgrade breaks one of them, the message says what to do: either adapt
the named function to the new internals, or drop that speed-up (the public API fallback is
named) and widen the pin only once the whole suite passes.
"""

from __future__ import annotations

import inspect
from importlib import metadata

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from leakwatt.mining.rules import fastcst
from leakwatt.mining.rules.index import _child_fields

SOURCE = """\
import tensorflow as tf


class Net(tf.keras.Model):
    def call(self, x):
        for i in range(3):
            x = self.dense(x) + i
        return x


def train(ds):
    losses = []
    for xb in ds:
        losses.append(tf.reduce_sum(xb))
    return losses
"""


def test_libcst_version_is_inside_the_pin() -> None:
    version = tuple(int(p) for p in metadata.version("libcst").split(".")[:2])
    assert (1, 9) <= version < (1, 10), (
        f"libcst {metadata.version('libcst')} is outside the tested pin (pyproject.toml): run "
        "this file and the scan tests on it, then move the pin")


def test_post_init_is_defined_on_cstnode_and_runs_validation() -> None:
    assert "__post_init__" in cst.CSTNode.__dict__, (
        "libcst no longer defines CSTNode.__post_init__: fastcst.parse_module cannot switch "
        "validation off; make it call libcst.parse_module directly")
    with pytest.raises(cst.CSTValidationError):
        cst.Name("")  # validation runs from __post_init__ ...
    saved = cst.CSTNode.__dict__["__post_init__"]
    cst.CSTNode.__post_init__ = fastcst._skip_validation  # type: ignore[method-assign]
    try:
        cst.Name("")  # ... and swapping it out on the base class switches it off
    finally:
        cst.CSTNode.__post_init__ = saved  # type: ignore[method-assign]
    with pytest.raises(cst.CSTValidationError):
        cst.Name("")


def test_the_parser_builds_nodes_through_post_init(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(fastcst, "_skip_validation", lambda node: calls.append(type(node)))
    module = fastcst.parse_module(SOURCE)
    assert calls, ("libcst's parser no longer runs CSTNode.__post_init__: the unvalidated "
                   "parse saves nothing; make fastcst.parse_module call libcst.parse_module")
    assert module.deep_equals(cst.parse_module(SOURCE))
    with pytest.raises(cst.CSTValidationError):
        cst.Name("")  # restored after the parse


def test_position_codegen_state_takes_the_arguments_the_engine_passes() -> None:
    from libcst.metadata.position_provider import PositionProvidingCodegenState

    params = inspect.signature(PositionProvidingCodegenState).parameters
    missing = {"default_indent", "default_newline", "provider", "indent_tokens"} - set(params)
    assert not missing, (
        f"PositionProvidingCodegenState lost {missing}: adapt fastcst.statement_positions, or "
        "make fastcst.node_positions always use _whole_module_positions (public API, slower)")


def test_codegen_of_one_statement_fills_the_providers_computed_ranges() -> None:
    module = cst.parse_module(SOURCE)
    method = module.body[1].body.body[0]  # Net.call, generated on its own at its indent
    assert isinstance(method, cst.FunctionDef)
    assert hasattr(method, "_codegen"), "CSTNode._codegen is gone: see fastcst.statement_positions"
    ranges = fastcst.statement_positions(module, method, "    ")
    assert isinstance(ranges, dict) and method in ranges, (
        "PositionProvider._computed no longer holds the ranges after _codegen: adapt "
        "fastcst.statement_positions or fall back to _whole_module_positions")
    whole = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    shift = whole[method].start.line - ranges[method].start.line
    for node, rng in ranges.items():
        assert (rng.start.line + shift, rng.start.column) == (
            whole[node].start.line, whole[node].start.column)


@pytest.mark.parametrize("node_type", [cst.Call, cst.For, cst.FunctionDef, cst.ClassDef,
                                       cst.Assign, cst.Attribute, cst.With, cst.CompFor])
def test_child_visit_order_is_read_from_libcst_source(node_type: type) -> None:
    source = inspect.getsource(node_type._visit_and_replace_children)
    fields = _child_fields(node_type)
    assert fields and all(f'"{f}"' in source for f in fields), (
        f"{node_type.__name__}._visit_and_replace_children no longer names its children as "
        "visit_*(self, \"field\", ...): the indexer's walk (index._child_fields) would fall back "
        "to dataclass field order; adapt its regular expression")
    order = [f for f in fields if source.find(f'"{f}"') >= 0]
    assert order == sorted(order, key=lambda f: source.find(f'"{f}"')), (
        "the indexer visits children in another order than libcst does")
