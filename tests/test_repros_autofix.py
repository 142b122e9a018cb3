"""The fix is what is measured: for every family whose rule has an autofix, the real autofix
(``fix_source``, what ``leakwatt scan --fix`` runs) applied to the rendered smelly.py gives
clean.py, up to formatting and docstrings; the smelly program is reported by its rule with one of
the variants the family stands for, and the clean program is not reported at all."""

from __future__ import annotations

import ast

import pytest

from leakwatt.mining.rules import fix_source
from leakwatt.mining.scan import scan_source
from leakwatt.pipeline.repros.pairs import BUILTIN_PAIRS, FAMILIES, VARIANT_FAMILIES
from leakwatt.pipeline.repros.templates import ProgramSpec, render

#: The programs import TensorFlow lazily in their header (the framework switch picks Keras 3 or
#: tf_keras at run time and disables eager execution under keras2-graph), so a static scan of the
#: whole file can neither tell that ``tf``/``keras`` are TensorFlow's nor that the training code
#: runs eagerly (UTR skips a module that disables eager execution). The scanned program is
#: therefore the rendered file from the model builder on (model, shared helpers, body, footer:
#: everything the variants' bodies live in) under these imports.
IMPORTS = "import tensorflow as tf\nkeras = tf.keras\n\n\n"


def _program(body: str, variant: str) -> str:
    source = render(ProgramSpec(pair_id="p", variant=variant, body=body))
    return IMPORTS + source[source.index("def build_model("):]


def _normalised(source: str) -> str:
    """The module without docstrings, as an AST dump (formatting-free)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef) and node.body and \
                isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            node.body = node.body[1:]
    return ast.dump(tree)


def _variants(family: str) -> set[str]:
    smell = FAMILIES[family].smell
    if smell == "IMR":
        return {"kfold", "builder-in-loop", "loop-fit"}
    return {v for (rule, v), fams in VARIANT_FAMILIES.items() if family in fams and rule == smell}


def _shared_variants(family: str) -> set[str]:
    """Variants both programs of a family have by design (not the one it measures)."""
    return {"session-in-loop"} if family == "us-session-with" else set()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_smelly_is_reported_and_clean_is_the_autofix_or_says_why_not(family: str) -> None:
    spec = FAMILIES[family]
    smelly = _program(spec.smelly_body, "smelly")
    clean = _program(spec.clean_body, "clean")
    findings = scan_source(smelly, "smelly.py", rules=[spec.smell])
    assert {f.variant for f in findings} & _variants(family), findings
    # A pair isolates one leak; the programs may share another smell of the same rule that
    # the pair does not measure (us-session-with opens a session per fold over one graph in
    # both programs: `session-in-loop`, measured by its own family), never the measured one.
    others = _shared_variants(family)
    assert {f.variant for f in findings} <= _variants(family) | others, findings
    assert {f.variant for f in scan_source(clean, "clean.py", rules=[spec.smell])} <= others
    fixed, applied = fix_source(smelly, "smelly.py", rules=[spec.smell])
    if spec.autofix.startswith("yes"):
        assert applied, f"{family}: the rule offers no autofix on smelly.py"
        assert _normalised(fixed) == _normalised(clean)
    else:
        assert spec.autofix.startswith("no: ")
        assert _normalised(fixed) != _normalised(clean)


def test_paper_imr_clean_is_the_imr_autofix() -> None:
    spec = BUILTIN_PAIRS["paper-imr"]
    fixed, applied = fix_source(_program(spec.smelly_body, "smelly"), rules=["IMR"])
    assert applied and _normalised(fixed) == _normalised(_program(spec.clean_body, "clean"))
    for pair in BUILTIN_PAIRS.values():
        assert pair.has_autofix == (pair.pair_id == "paper-imr"), pair.pair_id


def test_normalisation_still_sees_a_changed_statement() -> None:
    spec = FAMILIES["utr-append-loss"]
    clean = _program(spec.clean_body, "clean")
    assert _normalised(clean) != _normalised(clean.replace("loss.numpy()", "float(loss)"))
