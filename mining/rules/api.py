"""The rule API: what a rule declares and what it produces.

A rule is a class in its own module (shaped like a Fixit 2 rule): a docstring that becomes its
catalogue entry, ``CODE``, ``NAME``, ``MESSAGE`` (the smell and its remedy), ``VARIANTS``,
``SEEDS`` (the words the pre-filter looks for, :class:`Seeds`), ``VALID`` and ``INVALID``
examples (the examples are the tests), and a ``check(ctx)`` method that yields :class:`Report`
objects over a :class:`~leakwatt.mining.rules.context.ModuleContext`. The engine turns reports
into :class:`Finding` objects.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import libcst as cst

if TYPE_CHECKING:
    from leakwatt.mining.rules.context import ModuleContext

#: Root packages whose names the rules resolve calls under.
TF_ROOTS = frozenset({"tensorflow", "keras", "tf_keras"})


# --------------------------------------------------------------------------------------------
# Findings and examples
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One detected smell site. ``line``/``col`` are 1-based; ``cell`` is set for notebooks."""

    rule: str
    path: str
    line: int
    col: int
    message: str
    variant: str
    confidence: float
    function: str = "<module>"
    snippet: str = ""
    loop_kind: str = ""
    model_api: str = ""
    training_api: str = ""
    cell: int | None = None
    #: How the rule reached the site when it went beyond the module's own imports (a builder
    #: resolved by name to another file, a higher-order builder, a derived loop value ...).
    via: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Valid:
    """Code on which a rule must report nothing."""

    code: str


@dataclass(frozen=True)
class Invalid:
    """Code on which a rule must report; optional expected line, variant and autofix result."""

    code: str
    line: int | None = None
    variant: str | None = None
    expected_replacement: str | None = None


def dedent(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


# --------------------------------------------------------------------------------------------
# Reports, fixes and the rule base class (rules produce Reports, the engine makes Findings)
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Fix:
    """Replace ``target`` (a node of the parsed module) by ``apply(updated_target)``.

    ``key`` deduplicates fixes: two findings in one loop insert ``clear_session()`` once.
    """

    target: cst.CSTNode
    key: str
    apply: Callable[[Any], Any]


@dataclass(eq=False)
class Report:
    node: cst.CSTNode
    variant: str
    confidence: float
    message: str | None = None
    loop_kind: str = ""
    model_api: str = ""
    training_api: str = ""
    function: str = "<module>"
    stmt: cst.CSTNode | None = None
    fix: Fix | None = None
    #: see :attr:`Finding.via`
    via: str = ""


@dataclass(frozen=True)
class Seeds:
    """What the pre-filter (:mod:`leakwatt.mining.prefilter`) looks for on a rule's behalf.

    A file is parsed by libcst only when it contains one of ``triggers`` (plain substrings);
    then only the statements that hold a *seed*, and those connected to them by name, are
    parsed. A statement is a seed for this rule when it holds

    * a call whose dotted name has a word of ``api`` under an import of one of ``roots``
      (``tf.keras.Sequential()``, ``from keras.models import load_model``), or a class whose
      bases name one;
    * a call whose last name is in ``calls`` (whatever it is called on), or in
      ``calls_if[marker]`` when the source contains ``marker``;
    * a call of ``module_calls[sub]`` under a ``roots`` import's submodule ``sub``
      (``tf.data.load``), where an import of the submodule itself counts as an ``api`` name;
    * a definition named in ``defs``;
    * a call of one of the container methods in ``stores`` (``xs.append(...)``), a ``+=`` or a
      subscript store, next to a loop (or in a Keras hook, or in a function called from a
      loop elsewhere).

    Words in ``repeats`` (a model or dataset constructor, ``predict``) count only where they
    repeat (in a loop, twice in one function, in module-level code, in an inference-named
    function or hook, or in a function another statement calls): a lone site elsewhere is not a
    seed. The rule's other words are seeds wherever they appear.

    A rule that declares no words at all (``Seeds()`` with empty sets, the default) is not
    pre-filtered: every file holding a trigger is parsed whole, so that forgetting the seeds
    costs speed, never findings.
    """

    triggers: tuple[str, ...] = ("keras", "tensorflow")
    roots: frozenset[str] = TF_ROOTS
    api: frozenset[str] = frozenset()
    calls: frozenset[str] = frozenset()
    calls_if: Mapping[str, frozenset[str]] = field(default_factory=dict)
    module_calls: Mapping[str, frozenset[str]] = field(default_factory=dict)
    defs: frozenset[str] = frozenset()
    stores: frozenset[str] = frozenset()
    repeats: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        """No seed word: the pre-filter must keep the whole file for this rule."""
        return not (self.api or self.calls or self.calls_if or self.module_calls or self.defs
                    or self.stores)


class Rule:
    """Base class of every rule. Subclasses set the class attributes and implement ``check``."""

    CODE: ClassVar[str] = ""
    NAME: ClassVar[str] = ""
    MESSAGE: ClassVar[str] = ""
    #: The pre-filter's words for this rule (see :class:`Seeds`).
    SEEDS: ClassVar[Seeds] = Seeds()
    VARIANTS: ClassVar[dict[str, str]] = {}
    VALID: ClassVar[list[Valid]] = []
    INVALID: ClassVar[list[Invalid]] = []

    def check(self, ctx: ModuleContext) -> Iterable[Report]:  # pragma: no cover - abstract
        raise NotImplementedError
