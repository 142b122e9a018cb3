"""The project index: what each module of a repository (or scanned folder) defines, and how
the modules import each other, so that rules resolve calls across modules.

Built before the rules run, from the ``.py`` files of one repository commit (``mine``) or one
scanned folder (``scan``). For each module it records, from Python's ``ast`` (about 15 times
cheaper than libcst, and most modules are never parsed at all, see below):

* **functions**: what a call returns -- a Keras model (a *builder*: ``create_model()``), a
  tensor, a scalar tensor, gradients, with the kind of each element when every ``return``
  returns a tuple of one length (``logits, loss = apply_gradient(...)``); and whether the
  function calls ``clear_session()`` (or ``reset_default_graph()``) on every path, directly or
  through another project function (its call sites then release the session);
* **classes**: ``keras.Model`` subclasses, also through other project classes; the overrides of
  ``predict`` (a ``def predict`` that calls no ``predict``, or ``self.predict = <own function>``);
  and what their training-step methods return (a method that opens a ``GradientTape`` or is a
  ``tf.function``: ``agent.optimization()`` returning its losses; other method bodies are not
  kept);
* **module-level values**: Keras models, loss and metric objects, layers
  (``loss_object = tf.keras.losses.SparseCategoricalCrossentropy()`` in ``losses.py``).

Imports are resolved the way Python would find them from the importing file: relative imports
(``from .utils import *``), imports of a sibling module (the ``sys.path`` habit of scripts run
from their own folder: ``from models import create_model`` next to ``models.py``), imports from
the project root, and otherwise the module whose dotted path ends with the imported name
(closest folder first). Star imports bring every public name of the module, including names it
imports itself. Imports of ``tensorflow``/``keras``/``tf_keras`` are never resolved through the
project, so scanning Keras's own sources keeps the canonical names.

A name a file calls but never binds (no import, definition, assignment or parameter: a script
fragment from an article or a course calling a builder of a sibling file it never imports) is
resolved *by name* when exactly one project file defines it at top level (or, where several do,
exactly one file in the caller's own folder: a course repository with a ``create_model`` per
lesson folder); its symbol then carries a ``via`` note (``resolved by name to a unique
definition in models/cnn.py; not imported``) and the rules report it with lower confidence.
Which files define a name is a plain-text look (``def``/``class`` at column 0), and a commit that
changes it invalidates the views that asked for the name. Python 2 files (print statements,
tab indentation) are read the way the scan reads them (:mod:`leakwatt.mining.python2`).

A module is parsed only when another module imports it (and a consumer only when a plain-text
look at its import lines names a project module), and each parse is cached by content hash, so
an index updated for a commit's changed files (:meth:`ProjectIndex.with_changes`) re-parses only
those. The facts a file receives are a :class:`ProjectView`: local dotted name -> :class:`Symbol`,
with a fingerprint the findings caches key on (a file's findings change when an imported
module's facts do).

What the index does not follow: attributes of imported objects (``utils.registry.build()``
beyond one module level), functions passed around as values, and methods of classes defined in
another module other than their training steps (a call in a loop into another module's function
is resolved for what it returns and whether it clears the session; a model built *inside* that
function is reported in its own module only when that module repeats it).

The other way round, a module that opens a ``Session`` or calls ``predict`` learns which of its
functions and methods another project module importing it calls inside a loop
(:attr:`ProjectView.loop_called`: a session opened in ``Agent.act`` that ``train.py`` calls
per step); the importers are found by a plain-text look at import lines (``i:<word>`` probes
keep :meth:`ProjectIndex.with_changes` exact), then resolved. A method name is matched by name
(``agent.act(s)`` in a loop of a module importing the one defining ``act``).
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import keyword
import posixpath
import re
import sys
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache

from leakwatt.mining.python2 import LegacyError, python3_text
from leakwatt.mining.rules.api import TF_ROOTS
from leakwatt.mining.rules.names import canonical
from leakwatt.mining.rules.values import (
    CONTAINER,
    GRADS,
    LAYER,
    LOSSFN,
    METRIC,
    MODEL,
    MODEL_LOADERS,
    PLAIN,
    SCALAR,
    TAPE,
    TENSOR,
    TENSORISH,
    UNKNOWN,
    is_clear,
    is_model_base,
    qualified_kind,
)

#: Kinds a module-level value may carry across modules.
_VALUE_KINDS = frozenset({MODEL, LOSSFN, METRIC, LAYER})
#: Packages whose names the index resolves: TensorFlow/Keras and those of the loader table.
_QN_ROOTS = TF_ROOTS | frozenset(name.split(".", 1)[0] for name in MODEL_LOADERS)
_MODEL_PLAIN = frozenset({"predict", "evaluate", "fit", "fit_generator", "train_on_batch",
                          "test_on_batch", "predict_on_batch", "get_weights", "summary", "save",
                          "save_weights", "load_weights", "compile", "to_json", "count_params"})
_TO_PLAIN = frozenset({"numpy", "item", "tolist"})
_CONVERSIONS = frozenset({"float", "int", "bool", "str", "len", "round", "range"})
#: Top-level names that stand for the standard library or a well-known installed package: a
#: project folder of that name (``keras/src/backend/numpy``) is reached only from beside it or
#: from the project root, never by the dotted-suffix fallback.
_EXTERNAL = frozenset(sys.stdlib_module_names) | frozenset({
    "numpy", "scipy", "pandas", "sklearn", "matplotlib", "torch", "jax", "jaxlib", "flax",
    "optax", "cv2", "PIL", "skimage", "tqdm", "yaml", "h5py", "absl", "gym", "gymnasium",
    "transformers", "datasets", "tensorboard", "seaborn", "requests", "six", "ml_dtypes",
    "optree", "rich", "namex", "packaging", "google", "pytest", "openvino", "onnx", "mlx"})
_IMPORT_LINE = re.compile(r"^[ \t]*(?:from[ \t]+(\.*)([\w.]*)[ \t]+import\b|import[ \t]+([\w.]+))",
                          re.MULTILINE)


@dataclass(frozen=True)
class Symbol:
    """What one name of a project module stands for.

    ``kind``: ``function``, ``class``, ``value`` or ``module``. ``returns``: the kind of a call's
    result (a function), ``model`` for a ``keras.Model`` subclass, the value's kind (a value).
    ``elements``: per-index kinds when a function returns tuples of one length. ``clears``: the
    function calls ``clear_session()`` on every path. ``origin``: ``path:name``.
    """

    kind: str
    returns: str = UNKNOWN
    elements: tuple[str, ...] = ()
    clears: bool = False
    origin: str = ""
    #: how the name was found when not through an import (see :meth:`ProjectIndex.view`)
    via: str = ""
    #: a class's own overrides of Keras ``Model`` methods (``predict`` returning ``self(x)``)
    overrides: tuple[str, ...] = ()
    #: a class's training-step methods that return tensors: (name, returns, elements), the
    #: method's counterparts of ``returns`` and ``elements`` (see :func:`_class_facts`)
    methods: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    @cached_property
    def useful(self) -> bool:
        return bool(self.returns or self.clears or any(self.elements) or self.methods)

    def method(self, name: str) -> tuple[str, tuple[str, ...]] | None:
        """``(returns, elements)`` of the class's method ``name``, when it is one of
        :attr:`methods`."""
        for method, returns, elements in self.methods:
            if method == name:
                return returns, elements
        return None


@dataclass(frozen=True)
class ProjectView:
    """The project facts one file receives: its local dotted names -> symbols."""

    symbols: Mapping[str, Symbol]
    #: (name, importer) pairs: this module's functions and methods that another project module,
    #: importing this one, calls inside a loop (see :meth:`ProjectIndex.view`)
    loop_called: tuple[tuple[str, str], ...] = ()

    def lookup(self, dotted_name: str | None) -> Symbol | None:
        return self.symbols.get(dotted_name) if dotted_name else None

    @property
    def call_names(self) -> frozenset[str]:
        """Last names of the calls that reach a project fact (the pre-filter's seed words)."""
        names = {k.rsplit(".", 1)[-1] for k, s in self.symbols.items()
                 if s.kind != "value" or s.via}  # (a fragment's model from beside it, too)
        # a function or method another module calls per step: what repeats in it is a seed
        names.update(name for name, _ in self.loop_called)
        return frozenset(names)

    @property
    def names(self) -> frozenset[str]:
        """The local names (first part of each dotted name) that carry project facts."""
        return frozenset(k.split(".", 1)[0] for k in self.symbols)

    @cached_property
    def fingerprint(self) -> str:
        text = repr(sorted((k, s.kind, s.returns, s.elements, s.clears, s.via, s.overrides,
                            s.methods) for k, s in self.symbols.items())) + repr(self.loop_called)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Namespaces: what a module's names stand for, without flattening what it imports
# --------------------------------------------------------------------------------------------


class _Node:
    """One dotted-name part: the symbol the name up to here stands for (None: no symbol) and
    the parts that may follow it."""

    __slots__ = ("children", "entry")

    def __init__(self, entry: Symbol | None = None,
                 children: dict[str, _Node] | None = None) -> None:
        self.entry = entry
        self.children: dict[str, _Node] = children if children is not None else {}


def _same(a: _Node, b: _Node) -> bool:
    """Whether two namespaces hold the same names with the same symbols."""
    if a is b:
        return True
    if a.entry != b.entry or a.children.keys() != b.children.keys():
        return False
    return all(_same(child, b.children[part]) for part, child in a.children.items())


class Namespace(Mapping[str, Symbol]):
    """A module's names (dotted: ``utils.create_model``) -> symbols, as a tree of name parts.

    ``import utils`` makes every name of ``utils`` (its own and what it imports in turn) a
    name here, prefixed: flattened, the names multiply with every level of modules importing
    modules (``inference.attention_model.model.model_helper.utils.print_out``). The tree shares
    the imported module's own namespace instead (copied only where a later import or
    definition changes a name under it), and lookups walk it; a file's view keeps only the
    names its code spells.
    """

    __slots__ = ("root",)

    def __init__(self, root: _Node | None = None) -> None:
        self.root = root if root is not None else _Node()

    def node(self, dotted: str) -> _Node | None:
        node: _Node | None = self.root
        for part in dotted.split("."):
            node = node.children.get(part)
            if node is None:
                return None
        return node

    def get(self, dotted: str, default: Symbol | None = None) -> Symbol | None:  # type: ignore[override]
        node = self.node(dotted) if dotted else None
        return node.entry if node is not None and node.entry is not None else default

    def __getitem__(self, dotted: str) -> Symbol:
        found = self.get(dotted)
        if found is None:
            raise KeyError(dotted)
        return found

    def __iter__(self) -> Iterator[str]:  # every dotted name (can be many: see the class doc)
        todo: list[tuple[str, _Node]] = [("", self.root)]
        while todo:
            prefix, node = todo.pop()
            for part, child in node.children.items():
                name = f"{prefix}{part}"
                if child.entry is not None:
                    yield name
                if child.children:
                    todo.append((f"{name}.", child))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Namespace):
            return _same(self.root, other.root)
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def spelled(self, words: set[str]) -> dict[str, Symbol]:
        """The names whose every part is one of ``words`` -> their symbols."""
        out: dict[str, Symbol] = {}
        todo: list[tuple[str, _Node]] = [("", self.root)]
        while todo:
            prefix, node = todo.pop()
            kids = node.children
            for part in ([w for w in words if w in kids] if len(words) < len(kids)
                         else [k for k in kids if k in words]):
                child = kids[part]
                name = f"{prefix}{part}"
                if child.entry is not None:
                    out[name] = child.entry
                if child.children:
                    todo.append((f"{name}.", child))
        return out


class _Builder:
    """A namespace under construction. Nodes it made are its own; the others belong to the
    namespaces of imported modules and are copied before anything under them changes."""

    def __init__(self, base: Namespace | None = None) -> None:
        self.root = _Node(None, dict(base.root.children) if base is not None else {})
        self._own = {id(self.root)}

    def _child(self, node: _Node, part: str) -> _Node:
        """``node``'s child ``part`` (``node`` is own), made or copied to be own."""
        child = node.children.get(part)
        if child is None:
            child = node.children[part] = _Node()
        elif id(child) in self._own:
            return child
        else:
            child = node.children[part] = _Node(child.entry, dict(child.children))
        self._own.add(id(child))
        return child

    def set(self, dotted: str, symbol: Symbol) -> None:
        """``names[dotted] = symbol`` (the names under ``dotted`` stay)."""
        node = self.root
        for part in dotted.split("."):
            node = self._child(node, part)
        node.entry = symbol

    def put(self, prefix: str, source: _Node, overwrite: bool = True) -> None:
        """``names[prefix + "." + n] = s`` for every name ``n`` of ``source`` (``prefix`` ""
        puts them at the top); ``overwrite=False`` keeps names already here (setdefault)."""
        if not source.children:
            return
        node = self.root
        if prefix:
            for part in prefix.split("."):
                node = self._child(node, part)
        self._merge(node, source, overwrite)

    def _merge(self, node: _Node, source: _Node, overwrite: bool) -> None:
        for part, theirs in source.children.items():
            if part not in node.children:
                node.children[part] = theirs  # shared until something under it changes
                continue
            mine = self._child(node, part)
            if theirs.entry is not None and (overwrite or mine.entry is None):
                mine.entry = theirs.entry
            if theirs.children:
                self._merge(mine, theirs, overwrite)

    def namespace(self) -> Namespace:
        return Namespace(self.root)


_EMPTY = Namespace()


# --------------------------------------------------------------------------------------------
# One module's raw facts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Import:
    module: str  # dotted module as written (without leading dots)
    level: int  # relative level (0: absolute)
    name: str | None  # imported name (from-import), "*" for a star import, None for ``import m``
    local: str  # the local name bound


@dataclass
class _Raw:
    imports: list[_Import]
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef]
    #: class name -> its bases (only these are read: the bodies are not kept, so a class-heavy
    #: module costs the index little memory)
    classes: dict[str, list[ast.expr]]
    values: dict[str, ast.expr]
    public: list[str]
    #: class name -> the Keras ``Model`` methods it overrides without calling the Keras one
    #: (``predict`` returning ``self(x)`` builds no ``predict`` pipeline: not DIR)
    overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: class name -> its training-step methods (:func:`_class_facts`; only these bodies are
    #: kept, for the kinds of what they return)
    methods: dict[str, dict[str, ast.FunctionDef | ast.AsyncFunctionDef]] = field(
        default_factory=dict)


#: Recently parsed texts (by content): a history walk meets a text again at merges (the
#: branch's versions, re-read), reverts, and the pin it scanned first. Small, since every
#: index keeps the parses of its own files; a large cache of old versions' syntax trees only
#: slows the garbage collector down.
_RECENT: OrderedDict[str, _Raw | None] = OrderedDict()
_RECENT_MAX = 256


def _parse_raw(text: str) -> _Raw | None:
    """One module's raw facts (None: not valid Python)."""
    key = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
    if key in _RECENT:
        _RECENT.move_to_end(key)
        return _RECENT[key]
    tree = _parse_quietly(text)
    raw = _raw_from_tree(tree, _BODY_MARKERS.search(text) is not None) if tree is not None \
        else None
    _RECENT[key] = raw
    if len(_RECENT) > _RECENT_MAX:
        _RECENT.popitem(last=False)
    return raw


#: Identifiers (and other word tokens) of a source: a view keeps only the symbols whose every
#: dotted part occurs in the file, since rules look symbols up by the dotted names the code
#: spells out (``models.create_model``).
_WORD = re.compile(r"\w+")


def _statements(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """Every statement, nested ones too (no expressions: cheaper than ``ast.walk``)."""
    stack = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, name, None)
            if children:
                stack.extend(reversed(children))


def _imports_of(tree: ast.Module) -> list[_Import]:
    out: list[_Import] = []
    for node in _statements(tree.body):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out.append(_Import(a.name, 0, None, a.asname))
                else:
                    out.append(_Import(a.name, 0, None, a.name))
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                out.append(_Import(node.module or "", node.level or 0, a.name,
                                   a.asname or a.name))
    return out


def _raw_from_tree(tree: ast.Module, bodies: bool = True) -> _Raw:
    """One module's raw facts; with ``bodies`` false (its text names no ``GradientTape``,
    ``tf.function`` or ``self.predict``) class bodies are not walked beyond ``def predict``."""
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    classes: dict[str, list[ast.expr]] = {}
    values: dict[str, ast.expr] = {}
    overrides: dict[str, tuple[str, ...]] = {}
    methods: dict[str, dict[str, ast.FunctionDef | ast.AsyncFunctionDef]] = {}
    for stmt in _top_statements(tree.body):
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            functions[stmt.name] = stmt
        elif isinstance(stmt, ast.ClassDef):
            classes[stmt.name] = list(stmt.bases)
            own, steps = _class_facts(stmt, bodies)
            if own:
                overrides[stmt.name] = own
            if steps:
                methods[stmt.name] = steps
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(
                stmt.targets[0], ast.Name):
            values[stmt.targets[0].id] = stmt.value
    public = [n for n in (*functions, *classes, *values) if not n.startswith("_")]
    return _Raw(_imports_of(tree), functions, classes, values, public, overrides, methods)


#: Keras ``Model`` methods whose override the rules ask about.
_OVERRIDABLE = frozenset({"predict"})
#: Words without which a module's class bodies are not walked (:func:`_class_facts`): a tape, a
#: ``tf.function`` (``@tf.function``, ``@function``) or ``predict`` bound on the instance.
_BODY_MARKERS = re.compile(r"GradientTape|\.function\b|@function\b|self\.predict[ \t]*=(?!=)")
#: Decorators that make a method a compiled step (``tf.function``, by its last name).
_STEP_DECORATORS = frozenset({"function"})


def _calls_method(node: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
               and n.func.attr == name for n in ast.walk(node))


def _class_facts(cls: ast.ClassDef, bodies: bool = True
                 ) -> tuple[tuple[str, ...], dict[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """What the rules ask of a class's body, in one statement walk per method.

    * Its *overrides*: the methods of ``_OVERRIDABLE`` that ``cls`` defines without calling a
      method of that name inside (``super().predict(x)`` still runs Keras's), also bound on
      the instance (``self.predict = predict`` in a method, ``predict`` a function defined
      there, such as a ``tf.function`` over the layers, or a lambda; neither calling a
      ``predict``).
    * Its *step methods*: methods that return something and open a ``GradientTape`` (or are
      a ``tf.function``): an agent's ``optimization()`` returning its losses, which a training
      script in another module keeps per step. What they return is a tensor wherever the
      index can tell (:meth:`_ModuleEval.method_symbols`); other bodies are not kept, so a
      class-heavy module stays cheap. With ``bodies`` false only ``def predict`` is looked at.
    """
    overrides: list[str] = []
    steps: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    for stmt in cls.body:
        if not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if stmt.name in _OVERRIDABLE and not _calls_method(stmt, stmt.name):
            overrides.append(stmt.name)
        if not bodies:
            continue  # (the text names nothing the walk below looks for)
        returns = tape = False
        nested: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        stores: list[tuple[str, ast.expr]] = []
        for sub in _statements(stmt.body):
            if isinstance(sub, ast.Return):
                returns = returns or sub.value is not None
            elif isinstance(sub, ast.With | ast.AsyncWith):
                tape = tape or any(
                    isinstance(item.context_expr, ast.Call) and (_dotted(
                        item.context_expr.func) or "").rsplit(".", 1)[-1] == "GradientTape"
                    for item in sub.items)
            elif isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef):
                nested[sub.name] = sub
            elif isinstance(sub, ast.Assign) and len(sub.targets) == 1:
                target = sub.targets[0]
                if isinstance(target, ast.Attribute) and target.attr in _OVERRIDABLE and \
                        isinstance(target.value, ast.Name) and target.value.id == "self":
                    stores.append((target.attr, sub.value))
        for name, value in stores:  # ``self.predict = predict``
            body: ast.AST | None = value if isinstance(value, ast.Lambda) else (
                nested.get(value.id) if isinstance(value, ast.Name) else None)
            if body is not None and name not in overrides and not _calls_method(body, name):
                overrides.append(name)
        if stmt.name.startswith("__") and stmt.name != "__call__":
            continue
        decorated = any((_dotted(d.func if isinstance(d, ast.Call) else d) or "")
                        .rsplit(".", 1)[-1] in _STEP_DECORATORS for d in stmt.decorator_list)
        if returns and (tape or decorated):
            steps[stmt.name] = stmt
    return tuple(overrides), steps


def _top_statements(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """Module-level statements, looking into ``if``/``try`` blocks (guarded definitions)."""
    for stmt in body:
        if isinstance(stmt, ast.If):
            yield from _top_statements(stmt.body)
            yield from _top_statements(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            yield from _top_statements(stmt.body)
            for h in stmt.handlers:
                yield from _top_statements(h.body)
        else:
            yield stmt


def _dotted(expr: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if isinstance(expr, ast.Name):
        parts.append(expr.id)
        return ".".join(reversed(parts))
    return None


# --------------------------------------------------------------------------------------------
# The index
# --------------------------------------------------------------------------------------------


def module_names(path: str) -> list[str]:
    """Dotted names a file may be imported under, longest first: ``a/b/c.py`` -> a.b.c, b.c,
    c; ``a/b/__init__.py`` -> a.b, b."""
    p = path.replace("\\", "/").lstrip("./")
    if not p.endswith(".py"):
        return []
    parts = p[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts or not all(x.isidentifier() for x in parts):
        return []
    return [".".join(parts[i:]) for i in range(len(parts))]


@dataclass
class ProjectIndex:
    """The modules of one repository commit or scanned folder (paths relative to its root).

    Every computation of a module's facts or a file's view records what it read from the
    index (see :meth:`with_changes`): the index keys it probed (``f:<path>``: its own file's
    text; ``e:<path>``: whether a file exists; ``n:<module>``: the files a dotted module name
    may denote; ``r:<root>`` / ``t:<root>``: whether a top-level name belongs to the project;
    ``d:<name>``: which files define a name at top level; ``s:<folder>``: which files a folder
    holds)
    and the modules whose facts it used (whose text reaches it through those facts). An
    index derived for a commit keeps every cached result whose record the commit's changes do
    not touch (or, early cut-off, whose modules' facts came out the same), and names the
    views that may differ in ``stale_views``.
    """

    files: Mapping[str, str]
    _by_name: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _facts: dict[str, Namespace] = field(default_factory=dict, repr=False)
    _busy: set[str] = field(default_factory=set, repr=False)
    _views: dict[str, ProjectView | None] = field(default_factory=dict, repr=False)
    _raws: dict[str, _Raw | None] = field(default_factory=dict, repr=False)
    _words: dict[str, set[str]] = field(default_factory=dict, repr=False)
    #: path -> its top-level def/class names; name -> the files defining it (lazily built)
    _defnames: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)
    _definers: dict[str, list[str]] | None = field(default=None, repr=False)
    #: path -> the words of its import lines
    _importwords: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)
    #: path -> the names it assigns at column 0 (``model = Sequential()``; lazily, for the
    #: siblings of a script fragment: :meth:`_models_beside`); folder -> its files (lazily)
    _assigned: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)
    _folders: dict[str, list[str]] | None = field(default=None, repr=False)
    #: consumer (``m:<path>``: a module's facts; ``v:<path>``: a file's view) -> index keys read
    _probes: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)
    #: consumer -> module paths whose facts it used
    _deps: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)
    _stack: list[tuple[set[str], set[str]]] = field(default_factory=list, repr=False)
    #: set by :meth:`with_changes`: paths whose view may differ from the previous index's
    stale_views: frozenset[str] = field(default=frozenset(), repr=False)

    def __post_init__(self) -> None:
        if self._by_name:  # derived by ``with_changes``: files normalised, names indexed
            return
        self.files = {p.replace("\\", "/"): t for p, t in self.files.items() if p.endswith(".py")}
        for path in self.files:
            for name in module_names(path):
                self._by_name.setdefault(name, []).append(path)
        self._derive_roots()

    def _derive_roots(self) -> None:
        self._roots = frozenset(n.split(".", 1)[0] for n in self._by_name)
        #: names importable from the project root or from beside some file
        self._top = frozenset(n for n, paths in self._by_name.items() if "." not in n and any(
            p in (f"{n}.py", f"{n}/__init__.py") for p in paths))

    def with_changes(self, changed: Mapping[str, str | None]) -> ProjectIndex:
        """The index after a commit: ``changed`` maps paths to their new text (None: deleted).

        Cached facts and views are kept unless what they read changed: a changed file's text,
        a file added or removed where an import probed for one, a module name or top-level
        name that now denotes other files, or the facts of a module they used (transitively).
        ``stale_views`` of the result names the files whose view was dropped: those, and only
        those, may see other project facts than in this index."""
        files = dict(self.files)
        keys: set[str] = set()
        moved_defs: list[tuple[str, frozenset[str], frozenset[str]]] = []
        moved: list[str] = []  # paths added or removed
        for raw_path, text in changed.items():
            path = raw_path.replace("\\", "/")
            if not path.endswith(".py"):
                continue
            old = files.get(path)
            if text is None:
                files.pop(path, None)
            else:
                files[path] = text
            if old != text:
                keys.add(f"f:{path}")
                before = self._defnames.get(path) if old is not None else frozenset()
                if before is None:
                    before = _defined_in(old or "")
                after = _defined_in(text) if text is not None else frozenset()
                keys.update(f"d:{n}" for n in before ^ after)  # who defines a name changed
                if before != after:
                    moved_defs.append((path, before, after))
                old_words = self._importwords.get(path) if old is not None else frozenset()
                if old_words is None:
                    old_words = _import_words_of(old or "")
                new_words = _import_words_of(text) if text is not None else frozenset()
                keys.update(f"i:{w}" for w in old_words | new_words)  # who imports what
            if (old is None) != (text is None):
                moved.append(path)
                keys.add(f"e:{path}")
        if not keys:
            same = self._carry(ProjectIndex(files, _by_name=dict(self._by_name)), set(), True)
            same._definers = self._definers
            return same
        by_name = dict(self._by_name)
        for path in moved:
            keys.add(f"s:{posixpath.dirname(path)}")  # the files beside it changed
            for name in module_names(path):
                keys.add(f"n:{name}")
                paths = [p for p in by_name.get(name, ()) if p != path]
                if path in files:
                    paths.append(path)
                if paths:
                    by_name[name] = paths
                else:
                    by_name.pop(name, None)
        new = ProjectIndex(files, _by_name=by_name) if by_name else ProjectIndex(files)
        if by_name and moved:
            new._derive_roots()
        elif by_name:
            new._roots, new._top = self._roots, self._top
        keys.update(f"r:{r}" for r in self._roots ^ new._roots)
        keys.update(f"t:{t}" for t in self._top ^ new._top)
        direct = {c for c, read in self._probes.items() if not read.isdisjoint(keys)}
        invalid = set(direct)
        if any(c.startswith("m:") for c in invalid):  # and whatever used those modules' facts
            users: dict[str, list[str]] = {}
            for consumer, modules in self._deps.items():
                for m in modules:
                    users.setdefault(m, []).append(consumer)
            todo = [c[2:] for c in invalid if c.startswith("m:")]
            while todo:
                for consumer in users.get(todo.pop(), ()):
                    if consumer not in invalid:
                        invalid.add(consumer)
                        if consumer.startswith("m:"):
                            todo.append(consumer[2:])
        self._carry(new, invalid, False)
        new._definers = _updated_definers(self._definers, moved_defs)
        self._settle(new, direct, invalid)
        return new

    def _settle(self, new: ProjectIndex, direct: set[str], invalid: set[str]) -> None:
        """Early cut-off: a dropped view (or module's facts) that read nothing the change
        touched itself is restored when the facts of every module it used came out the same
        in ``new`` (those modules are re-evaluated, deepest first); ``new.stale_views`` keeps
        the views that were not restored. A change to ``utils.py`` that leaves its functions'
        facts as they were re-evaluates ``utils.py`` only, not everything importing it."""
        memo: dict[str, bool] = {}

        def same(module: str) -> bool:  # the facts of ``module`` are the same in both
            consumer = f"m:{module}"
            if consumer not in invalid:
                return True
            if module in memo:
                return memo[module]
            memo[module] = False  # an import cycle back to here: treated as changed
            old = self._facts.get(module)
            if old is not None and consumer not in direct and module not in new._facts and all(
                    same(m) for m in self._deps.get(consumer, ())):
                new._facts[module] = old
                new._probes[consumer] = self._probes[consumer]
                new._deps[consumer] = self._deps[consumer]
                result = True
            else:
                result = old is not None and new.facts(module) == old
            memo[module] = result
            return result

        stale = set()
        for consumer in sorted(c for c in invalid if c.startswith("v:")):
            path = consumer[2:]
            if consumer not in direct and path in self._views and all(
                    same(m) for m in self._deps.get(consumer, ())):
                new._views[path] = self._views[path]
                new._probes[consumer] = self._probes[consumer]
                new._deps[consumer] = self._deps[consumer]
            else:
                stale.add(path)
        new.stale_views = frozenset(stale)

    def _carry(self, new: ProjectIndex, invalid: set[str], same: bool) -> ProjectIndex:
        """Copy into ``new`` the cached results not in ``invalid`` (consumer ids)."""
        if same:
            new._roots, new._top = self._roots, self._top
        for consumer, read in self._probes.items():
            if consumer not in invalid:
                new._probes[consumer] = read
                new._deps[consumer] = self._deps.get(consumer, frozenset())
        new._facts = {p: f for p, f in self._facts.items() if f"m:{p}" not in invalid}
        new._views = {p: v for p, v in self._views.items() if f"v:{p}" not in invalid}
        new._raws = {p: r for p, r in self._raws.items() if new.files.get(p) is self.files.get(p)}
        new._words = {p: w for p, w in self._words.items()
                      if new.files.get(p) is self.files.get(p)}
        new._defnames = {p: d for p, d in self._defnames.items()
                         if new.files.get(p) is self.files.get(p)}
        new._importwords = {p: w for p, w in self._importwords.items()
                            if new.files.get(p) is self.files.get(p)}
        new._assigned = {p: a for p, a in self._assigned.items()
                         if new.files.get(p) is self.files.get(p)}
        new.stale_views = frozenset(c[2:] for c in invalid if c.startswith("v:"))
        return new

    def modules_read(self, path: str) -> frozenset[str]:
        """The modules whose facts the view of ``path`` used, directly or through others."""
        seen: set[str] = set()
        todo = list(self._deps.get(f"v:{path}", ()))
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo.extend(self._deps.get(f"m:{m}", ()))
        return frozenset(seen)

    def _raw(self, path: str) -> _Raw | None:
        if path not in self._raws:
            self._raws[path] = _parse_raw(self.files[path])
        return self._raws[path]

    def _read(self, key: str) -> None:
        if self._stack:
            self._stack[-1][0].add(key)

    # -- resolution ------------------------------------------------------------------------
    def resolve_module(self, importer: str, module: str, level: int) -> str | None:
        """The path of the project module ``importer`` reaches with this import, or None."""
        here = posixpath.dirname(importer)
        if level:
            base = here
            for _ in range(level - 1):
                base = posixpath.dirname(base)
            return self._file_at(base, module)
        root = module.split(".", 1)[0]
        if not module or root in TF_ROOTS:
            return None
        self._read(f"r:{root}")
        if root not in self._roots:
            return None
        if root in _EXTERNAL:  # ``import math`` beside ops/math.py
            return self._file_at("", module)
        found = self._file_at(here, module) or self._file_at("", module)
        if found:
            return found
        self._read(f"n:{module}")
        cands = self._by_name.get(module, [])
        if not cands:
            return None
        return max(sorted(cands), key=lambda c: (len(posixpath.commonpath([c, importer]))
                                         if "/" in c and "/" in importer else 0, -len(c)))

    def _file_at(self, base: str, module: str) -> str | None:
        rel = module.replace(".", "/") if module else ""
        stem = posixpath.join(base, rel) if rel else base
        for cand in (f"{stem}.py", posixpath.join(stem, "__init__.py")):
            cand = posixpath.normpath(cand) if cand else cand
            self._read(f"e:{cand}")
            if cand in self.files:
                return cand
        return None

    # -- facts -----------------------------------------------------------------------------
    def facts(self, path: str) -> Namespace:
        """Name -> symbol for everything module ``path`` defines or imports from the project."""
        if self._stack:
            self._stack[-1][1].add(path)
        cached = self._facts.get(path)
        if cached is not None:
            return cached
        if path in self._busy or path not in self.files:
            return _EMPTY
        self._busy.add(path)
        self._stack.append(({f"f:{path}"}, set()))
        try:
            raw = self._raw(path)
            result = _EMPTY if raw is None else _ModuleEval(self, path, raw).symbols()
        finally:
            self._busy.discard(path)
            read, used = self._stack.pop()
            self._probes[f"m:{path}"], self._deps[f"m:{path}"] = frozenset(read), frozenset(used)
        self._facts[path] = result
        return result

    def imported_symbols(self, path: str, imports: Iterable[_Import],
                         words: set[str] | None = None) -> Namespace:
        """Local dotted name -> symbol for the project imports of module ``path``. With
        ``words``, imports whose local name is not spelled by them are left out (the caller
        keeps only spelled names: the others would be dropped anyway)."""
        out = _Builder()
        for imp in imports:
            if words is not None and imp.name != "*" and not all(
                    part in words for part in imp.local.split(".")):
                continue
            if imp.name is None:  # import a.b [as c]
                target = self.resolve_module(path, imp.module, 0)
                if target is not None:
                    out.put(imp.local, self.facts(target).root)
                continue
            target = self.resolve_module(path, imp.module, imp.level)
            if imp.name == "*":
                if target is None:
                    continue
                raw = self._raw(target)
                public = set(raw.public) if raw is not None else set()
                star = _Node()
                for name, node in self.facts(target).root.children.items():
                    hidden = name.startswith("_")
                    entry = node.entry if name in public or not hidden else None
                    children = {} if hidden else node.children
                    if entry is node.entry and children is node.children:
                        star.children[name] = node
                    elif entry is not None or children:
                        star.children[name] = _Node(entry, children)
                out.put("", star, overwrite=False)
                continue
            sym = self.facts(target).get(imp.name) if target is not None else None
            if sym is not None:
                out.set(imp.local, sym)
                continue
            # ``from pkg import models``: a submodule
            sub = (self.resolve_module(path, f"{imp.module}.{imp.name}" if imp.module
                                       else imp.name, imp.level))
            if sub is not None and sub != path:
                out.put(imp.local, self.facts(sub).root)
        return out.namespace()

    def view(self, path: str, text: str | None = None) -> ProjectView | None:
        """The project facts for the file at ``path`` (its text defaults to the indexed one);
        None when it imports nothing the index knows something about."""
        path = path.replace("\\", "/")
        if text is None and path in self._views:
            return self._views[path]
        source = self.files.get(path) if text is None else text
        view = None
        symbols: dict[str, Symbol] = {}
        self._stack.append(({f"f:{path}"}, set()))
        try:
            if source and self._may_import_project(source, path):
                if path in self.files and text is None:
                    raw = self._raw(path)
                    imports = raw.imports if raw is not None else []
                else:
                    imports = _imports_of_text(source)
                words = self._words.get(path) if text is None else None
                if words is None:
                    words = set(_WORD.findall(source))
                    if text is None:
                        self._words[path] = words
                symbols = {k: v for k, v in self.imported_symbols(path, imports, words)
                           .spelled(words).items() if v.useful}
            loop_called: tuple[tuple[str, str], ...] = ()
            if source:
                symbols.update(self._resolved_by_name(path, source, symbols))
                symbols.update(self._models_beside(path, source, symbols))
                loop_called = self._loop_called(path, source) if text is None else ()
            if symbols or loop_called:
                view = ProjectView(symbols, loop_called)
        finally:
            read, used = self._stack.pop()
            self._probes[f"v:{path}"], self._deps[f"v:{path}"] = frozenset(read), frozenset(used)
        if text is None:
            self._views[path] = view
        return view

    # -- functions another module calls from a loop ------------------------------------------
    def _import_words(self, path: str) -> frozenset[str]:
        """The words of a file's import lines (module parts and imported names, cached)."""
        found = self._importwords.get(path)
        if found is None:
            found = self._importwords[path] = _import_words_of(self.files[path])
        return found

    def _loop_called(self, path: str, source: str) -> tuple[tuple[str, str], ...]:
        """(name, importer) for this module's top-level functions and its top-level classes'
        methods that another project module importing it calls inside a loop (``agent.act(s)``
        per environment step, ``predictor.run(x)`` per request in a serving loop). Asked only
        of modules that open a ``Session`` or call ``predict`` (the rules that need it: US,
        DIR); the importers are found by a plain-text look at import lines, then resolved."""
        if path not in self.files or not _LOOP_TARGETS.search(source):
            return ()
        stems = {name.rsplit(".", 1)[-1] for name in module_names(path)}
        for stem in stems:
            self._read(f"i:{stem}")  # a commit touching an import of this name redoes this
        # the importers first (a set look per file), so that a module nobody imports (a test,
        # a script: most of those that call ``predict``) is never parsed here
        importers = [other for other in sorted(self.files)
                     if other != path and not stems.isdisjoint(self._import_words(other))]
        if not importers:
            return ()
        functions, methods = _own_callables(source)
        if not functions and not methods:
            return ()
        out: dict[str, str] = {}
        for other in importers:
            raw = self._raw(other)
            if raw is None:
                continue
            local: dict[str, str] = {}  # local name -> this module's name ("" for the module)
            for imp in raw.imports:
                if imp.name is None:
                    if self.resolve_module(other, imp.module, 0) == path:
                        local[imp.local] = ""
                    continue
                target = self.resolve_module(other, imp.module, imp.level)
                if target == path:
                    local[imp.local] = "" if imp.name == "*" else imp.name
                elif imp.name != "*" and self.resolve_module(
                        other, f"{imp.module}.{imp.name}" if imp.module else imp.name,
                        imp.level) == path:
                    local[imp.local] = ""
            if not local:
                continue
            bare, attrs = _loop_calls(self.files[other])
            for name in bare:
                own = local.get(name)
                if own in functions:
                    out.setdefault(own, other)
                elif name in functions and "*" in {i.name for i in raw.imports}:
                    out.setdefault(name, other)
            for name in attrs & (methods | functions):
                out.setdefault(name, other)
        return tuple(sorted(out.items()))

    # -- resolution by name (names a file calls but never binds) ----------------------------
    def _defined(self, path: str) -> frozenset[str]:
        """The top-level ``def``/``class`` names of a file (a plain-text look, cached)."""
        found = self._defnames.get(path)
        if found is None:
            found = self._defnames[path] = _defined_in(self.files[path])
        return found

    def _definers_of(self) -> dict[str, list[str]]:
        """Name -> the files defining it at top level (built on first use)."""
        if self._definers is None:
            table: dict[str, list[str]] = {}
            for path in self.files:
                for name in self._defined(path):
                    table.setdefault(name, []).append(path)
            self._definers = table
        return self._definers

    def _resolved_by_name(self, path: str, source: str, known: Mapping[str, Symbol]
                 ) -> dict[str, Symbol]:
        """Symbols for the names ``path`` calls without binding them (no import, definition,
        assignment or parameter of that name) that exactly one other project file defines at
        top level, or, where several do, exactly one file in the caller's own folder: a script
        fragment calling a builder of a sibling file it never imports (an article's or a
        course's snippets; a course repository has one folder per lesson, each with its own
        ``create_model``). Lower confidence than an import: the symbol's ``via`` says how it
        was found."""
        called = (set(_CALLED.findall(_TRIPLE_QUOTED.sub("", source))) - _BUILTINS - set(known)
                  - (self._defined(path) if path in self.files and source is self.files[path]
                     else _defined_in(source)))  # its own definitions bind those names
        if called:
            # Cheap first (a package module imports or defines nearly every name it calls,
            # and each name left here can cost a parse below): names its one-line imports
            # bind, and every ``def``/``class`` name at any depth, as :func:`_unbound_calls`
            # counts them; that check still decides for the names left.
            called -= _bound_cheaply(source)
        if not called:
            return {}
        definers = self._definers_of()
        for name in called:
            self._read(f"d:{name}")  # a file defining one of them later changes this view
        unique = {n: definers[n][0] for n in called
                  if len(definers.get(n, ())) == 1 and definers[n][0] != path}
        folder = posixpath.dirname(path)
        beside: dict[str, str] = {}
        for n in called:
            where = [p for p in definers.get(n, ()) if p != path]
            if len(where) > 1:
                mine = [p for p in where if posixpath.dirname(p) == folder]
                if len(mine) == 1:
                    beside[n] = mine[0]
        if beside:  # (cheap first: most such names are imported from elsewhere)
            imported = (self._import_words(path) if path in self.files
                        and source is self.files[path] else _import_words_of(source))
            beside = {n: p for n, p in beside.items() if n not in imported}
        if beside:
            free = _unbound_calls(source, set(beside))
            beside = {n: p for n, p in beside.items() if n in free}
        # only names whose definition the rules can use are worth the parse below (on the
        # keras sources most uniquely-defined names are imported helpers of no interest, and
        # parsing every file for them cost 10 s of the index's serial time)
        symbols: dict[str, Symbol] = {}
        for name, where in (*unique.items(), *beside.items()):
            sym = self.facts(where).get(name)
            if sym is not None and sym.useful and sym.kind in ("function", "class"):
                symbols[name] = sym
        if not symbols:
            return {}
        unbound = _unbound_calls(source, set(symbols))
        out: dict[str, Symbol] = {}
        for name in sorted(unbound):
            if name in unique:
                via = f"resolved by name to a unique definition in {unique[name]}; not imported"
            else:
                via = (f"resolved by name to the one definition in its folder, {beside[name]} "
                       f"({len(definers[name])} files define it); not imported")
            out[name] = replace(symbols[name], via=via)
        return out

    # -- a script fragment's model, from the file beside it ----------------------------------
    def _models_beside(self, path: str, source: str, known: Mapping[str, Symbol]
                       ) -> dict[str, Symbol]:
        """Symbols for the names a *script fragment* (a file with no import at all: an
        article's or a course's next cell, run in the session its sibling script started)
        calls ``predict`` on without binding them, when exactly one other file of its folder
        binds that name at column 0 to a Keras model (``model = Sequential()`` in
        ``Model.py`` beside ``GeneratingText.py``). Their ``via`` says so; the rules report
        them with lower confidence. Files that import anything are not looked at (the cheap
        gate that keeps this off almost every file)."""
        if "import" in source or ".predict" not in source:
            return {}
        names = set(_PREDICTED.findall(source)) - set(known) - _BUILTINS
        if not names:
            return {}
        folder = posixpath.dirname(path)
        self._read(f"s:{folder}")  # a file added beside it (or removed) changes this
        if self._folders is None:
            table: dict[str, list[str]] = {}
            for p in self.files:
                table.setdefault(posixpath.dirname(p), []).append(p)
            self._folders = table
        where: dict[str, list[str]] = {}
        for other in self._folders.get(folder, ()):
            if other == path:
                continue
            self._read(f"f:{other}")  # what it assigns is read from its text
            assigned = self._assigned.get(other)
            if assigned is None:
                assigned = self._assigned[other] = frozenset(_ASSIGNED.findall(self.files[other]))
            for name in names & assigned:
                where.setdefault(name, []).append(other)
        found: dict[str, tuple[str, Symbol]] = {}
        for name, files in where.items():
            if len(files) != 1:
                continue  # two siblings build one: which one ran is unknown
            sym = self.facts(files[0]).get(name)
            if sym is not None and sym.kind == "value" and sym.returns == MODEL:
                found[name] = (files[0], sym)
        if not found:
            return {}
        unbound = _unbound_calls(source, set(found), reads=True)
        return {name: replace(sym, via=f"the model {name} of {other}, the script beside this "
                                       f"fragment (which imports nothing); not imported")
                for name, (other, sym) in found.items() if name in unbound}

    def _may_import_project(self, source: str, path: str) -> bool:
        for m in _IMPORT_LINE.finditer(source):
            dots, mod, plain = m.groups()
            if dots:
                return True
            root = (mod or plain or "").split(".", 1)[0]
            if root in TF_ROOTS:
                continue
            self._read(f"r:{root}")
            if root in _EXTERNAL:
                self._read(f"t:{root}")
            if root in self._roots and (root not in _EXTERNAL or root in self._top):
                return True
        return False


#: Text that makes a module worth asking which of its functions other modules call in a loop.
_LOOP_TARGETS = re.compile(r"\bSession[ \t]*\(|\.predict[ \t]*\(")
#: One import statement's line (continuation lines of parenthesised imports are not read: an
#: imported name found only there just misses the cheap look, never a module's own name).
_IMPORT_STMT = re.compile(r"^[ \t]*(?:from[ \t]+[\w.]+[ \t]+import[ \t]+[^\n]*|import[ \t]+[^\n]*)",
                          re.MULTILINE)


def _import_words_of(text: str) -> frozenset[str]:
    words: set[str] = set()
    for line in _IMPORT_STMT.findall(text):
        words.update(_WORD.findall(line))
    return frozenset(words)


def _parse_quietly(text: str) -> ast.Module | None:
    """``text`` parsed by ``ast``; a file that is not Python 3 (Python 2 print statements,
    tab-and-space indentation: TF1-era course and article code) is read the way the scan reads
    it (:func:`leakwatt.mining.python2.python3_text`), so that a Python 2 script fragment and
    the Python 2 sibling defining its builder still reach each other. None: neither parses."""
    tree = _ast_or_none(text)
    if tree is not None:
        return tree
    try:
        readable = python3_text(text)
    except (LegacyError, SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return _ast_or_none(readable.text)


def _ast_or_none(text: str) -> ast.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _own_callables(source: str) -> tuple[frozenset[str], frozenset[str]]:
    """A module's top-level function names and its top-level classes' method names."""
    tree = _parse_quietly(source)
    if tree is None:
        return frozenset(), frozenset()
    functions: set[str] = set()
    methods: set[str] = set()
    for stmt in _top_statements(tree.body):
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            functions.add(stmt.name)
        elif isinstance(stmt, ast.ClassDef):
            methods.update(s.name for s in stmt.body
                           if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)
                           and not (s.name.startswith("__") and s.name != "__call__"))
    return frozenset(functions), frozenset(methods)


_LOOP_CALLS: OrderedDict[str, tuple[frozenset[str], frozenset[str]]] = OrderedDict()


def _loop_calls(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """Names a module calls inside a ``for``/``while`` loop or comprehension: bare names
    (``act(s)``) and method names (``agent.act(s)``); cached by content."""
    key = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
    if key in _LOOP_CALLS:
        _LOOP_CALLS.move_to_end(key)
        return _LOOP_CALLS[key]
    bare: set[str] = set()
    attrs: set[str] = set()
    tree = _parse_quietly(text)
    loops = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.GeneratorExp,
             ast.DictComp)
    for node in ast.walk(tree) if tree is not None else ():
        if not isinstance(node, loops):
            continue
        inside = node.body if isinstance(node, ast.For | ast.AsyncFor | ast.While) else [node]
        for part in inside:
            for sub in ast.walk(part):
                if isinstance(sub, ast.Call):
                    if isinstance(sub.func, ast.Name):
                        bare.add(sub.func.id)
                    elif isinstance(sub.func, ast.Attribute):
                        attrs.add(sub.func.attr)
    result = (frozenset(bare), frozenset(attrs))
    _LOOP_CALLS[key] = result
    if len(_LOOP_CALLS) > _RECENT_MAX:
        _LOOP_CALLS.popitem(last=False)
    return result


#: A name followed by ``(``, not after a dot: what a file may call by its bare name.
#: (No space before the parenthesis: prose in docstrings, "a tensor of shape (3, 3)", matched
#: that and cost a parse of the file per such word; a call written ``f (x)`` is not looked up.)
#: A triple-quoted string (docstrings: their examples and printed outputs, ``array([1, 2])``,
#: name calls the file does not make); removed before :data:`_CALLED` looks (a cheap look only:
#: the parse in :func:`_unbound_calls` decides for what is left).
_TRIPLE_QUOTED = re.compile(r'"""(?:[^"\\]|\\.|"(?!""))*"""' r"|'''(?:[^'\\]|\\.|'(?!''))*'''",
                            re.DOTALL)
_CALLED = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\(")
#: Top-level ``def``/``class`` names (column 0: nested and guarded ones are left out).
_DEFINED = re.compile(r"^(?:async[ \t]+def|def|class)[ \t]+([A-Za-z_]\w*)", re.MULTILINE)
_BUILTINS = frozenset(dir(builtins)) | frozenset(keyword.kwlist)
#: A name ``predict`` is called on (``model.predict(x)``): what a script fragment may use unbound.
_PREDICTED = re.compile(r"(?<![\w.])([A-Za-z_]\w*)[ \t]*\.[ \t]*predict[ \t]*\(")
#: A name assigned at column 0 (``model = Sequential()``, not ``model == x``).
_ASSIGNED = re.compile(r"^([A-Za-z_]\w*)[ \t]*=(?!=)", re.MULTILINE)


def _defined_in(text: str) -> frozenset[str]:
    return frozenset(_DEFINED.findall(text))


def _updated_definers(table: dict[str, list[str]] | None,
                      moved: list[tuple[str, frozenset[str], frozenset[str]]]
                      ) -> dict[str, list[str]] | None:
    """The name -> defining files table after files changed their top-level definitions
    (None stays None: built on first use). The old table is left as it was."""
    if table is None:
        return None
    new = dict(table)
    for path, before, after in moved:
        for name in before - after:
            left = [p for p in new.get(name, ()) if p != path]
            if left:
                new[name] = left
            else:
                new.pop(name, None)
        for name in after - before:
            new[name] = [*new.get(name, ()), path]
    return new


#: Packages whose star import (``from pylab import *``, common in course scripts) cannot bind a
#: project's builder name: TensorFlow/Keras, the standard library, well-known packages.
_STAR_SAFE = TF_ROOTS | _EXTERNAL | frozenset({"pylab"})


_ANY_DEF = re.compile(r"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+([A-Za-z_]\w*)", re.MULTILINE)
_FROM_IMPORT = re.compile(r"^[ \t]*from[ \t]+[\w.]+[ \t]+import[ \t]+([^\n#(\\]*)$", re.MULTILINE)
_PLAIN_IMPORT = re.compile(r"^[ \t]*import[ \t]+([^\n#(\\]*)$", re.MULTILINE)
_FROM_IMPORT_PAREN = re.compile(r"^[ \t]*from[ \t]+[\w.]+[ \t]+import[ \t]*\(([^()]*)\)",
                                re.MULTILINE)
_ALIAS = re.compile(r"^([A-Za-z_][\w.]*)(?:[ \t]+as[ \t]+([A-Za-z_]\w*))?$")


def _bound_cheaply(source: str) -> set[str]:
    """Names that ``source`` certainly binds, found without parsing: the names of its
    ``import``/``from ... import`` statements on one line or in parentheses without comments
    (what :func:`_unbound_calls` takes from each alias: the ``as`` name, else the first part)
    and every ``def``/``class`` name. A statement it cannot read this way (continued with a
    backslash, with a comment inside, after a ``;``) adds nothing."""
    bound = set(_ANY_DEF.findall(source))
    for rx in (_FROM_IMPORT, _PLAIN_IMPORT, _FROM_IMPORT_PAREN):
        for names in rx.findall(source):
            if ";" in names or "#" in names:
                continue
            for item in names.split(","):
                m = _ALIAS.match(item.strip())
                if m is not None:
                    bound.add(m.group(2) or m.group(1).split(".", 1)[0])
    return bound


def _unbound_calls(source: str, names: set[str], *, reads: bool = False) -> set[str]:
    """The ``names`` that ``source`` calls by their bare name (with ``reads``: reads at all,
    ``model.predict(x)``) and binds nowhere (no import, definition, assignment, loop or
    ``with`` target, parameter or ``except ... as``)."""
    return set(_called_unbound(source, reads) & names)


# One parse and walk per source, however many names are asked about (a file asked about its
# same-folder candidates, then about the symbols kept: each asking parsed it again, 17 of the
# 25 s the keras sources' project views took). Bounded, and keyed by the text itself.
@lru_cache(maxsize=64)
def _called_unbound(source: str, reads: bool = False) -> frozenset[str]:
    """Every name ``source`` calls bare (``reads``: reads at all) and binds nowhere (see
    :func:`_unbound_calls`); empty when a star import of another package may bind any name."""
    tree = _parse_quietly(source)
    if tree is None:
        return frozenset()
    called: set[str] = set()
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            called.add(node.func.id)
        elif reads and isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            called.add(node.id)
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add(node.asname or node.name.split(".", 1)[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names) \
                and node.module and node.module.split(".", 1)[0] not in _STAR_SAFE:
            return frozenset()  # a star import of another package may bind any of them
    return frozenset(called - bound)


def _imports_of_text(text: str) -> list[_Import]:
    tree = _parse_quietly(text)
    return _imports_of(tree) if tree is not None else []


# --------------------------------------------------------------------------------------------
# Evaluating one module's definitions (over ast)
# --------------------------------------------------------------------------------------------


class _ModuleEval:
    """The kinds of one module's functions, classes and values, following its imports.

    A small counterpart of :class:`~leakwatt.mining.rules.values.ValueKinds` over ``ast``: the
    index has to cover whole repositories, and most of their modules are never parsed by
    libcst. Inside a function a name has the kind of its last assignment; names assigned inside
    ``with tf.GradientTape()`` from a call are tensors (the tape records tensor operations).
    """

    def __init__(self, index: ProjectIndex, path: str, raw: _Raw) -> None:
        self.index = index
        self.path = path
        self.raw = raw
        self.aliases: dict[str, str] = {}
        for imp in raw.imports:
            root = imp.module.split(".", 1)[0]
            if imp.level or root not in _QN_ROOTS:
                continue
            if imp.name is None:
                self.aliases[imp.local] = imp.module if imp.local != imp.module else root
                if imp.local == imp.module:
                    self.aliases[root] = root
            elif imp.name != "*":
                self.aliases[imp.local] = f"{imp.module}.{imp.name}"
        #: TensorFlow/Keras modules star-imported (``from keras.layers import *``)
        self.star_modules = [imp.module for imp in raw.imports if imp.name == "*"
                             and not imp.level and imp.module.split(".", 1)[0] in _QN_ROOTS]
        self.imported = index.imported_symbols(path, raw.imports)
        self.fn_memo: dict[str, Symbol] = {}
        self.busy: set[str] = set()
        self.model_classes: set[str] = set()
        self._find_model_classes()

    def qn(self, expr: ast.expr) -> str | None:
        text = _dotted(expr)
        if text is None:
            return None
        head, _, rest = text.partition(".")
        base = self.aliases.get(head)
        if base is None:
            return self._star_qn(head, text)
        return canonical(f"{base}.{rest}" if rest else base)

    def _star_qn(self, head: str, text: str) -> str | None:
        """A name a star import of TensorFlow/Keras may bind (``from keras.models import *``
        in TF1-era course code, then ``Sequential()``): the first star-imported module, last
        import first, under which the name builds a model or clears the session; None
        otherwise."""
        if not self.star_modules or head in _BUILTINS or head in self.raw.functions \
                or head in self.raw.classes or head in self.raw.values \
                or any(imp.local == head for imp in self.raw.imports):
            return None
        for module in reversed(self.star_modules):
            candidate = canonical(f"{module}.{text}")
            if qualified_kind(candidate) == MODEL or is_clear(candidate):
                return candidate  # (only what builders need: other kinds stay unresolved)
        return None

    def _find_model_classes(self) -> None:
        changed = True
        while changed:
            changed = False
            for name, bases in self.raw.classes.items():
                if name in self.model_classes:
                    continue
                for base in bases:
                    sym = self.imported.get(_dotted(base) or "")
                    if is_model_base(self.qn(base)) or (
                            isinstance(base, ast.Name) and base.id in self.model_classes) or (
                            sym is not None and sym.kind == "class" and sym.returns == MODEL):
                        self.model_classes.add(name)
                        changed = True
                        break

    def symbols(self) -> Namespace:
        out = _Builder(self.imported)  # re-exports (``from .a import f``)
        for name in self.raw.functions:
            out.set(name, self.function(name))
        for name in self.raw.classes:
            out.set(name, Symbol("class", MODEL if name in self.model_classes else UNKNOWN,
                                 origin=f"{self.path}:{name}",
                                 overrides=self.raw.overrides.get(name, ()),
                                 methods=self.method_symbols(name)))
        for name, value in self.raw.values.items():
            kind = self.kind(value, None)
            out.set(name, Symbol("value", kind if kind in _VALUE_KINDS else UNKNOWN,
                                 origin=f"{self.path}:{name}"))
        return out.namespace()

    # -- functions -------------------------------------------------------------------------
    def function(self, name: str) -> Symbol:
        if name in self.fn_memo:
            return self.fn_memo[name]
        if name in self.busy:
            return Symbol("function")
        self.busy.add(name)
        scope = _Scope(self.raw.functions[name])
        result, elements = self.returned(scope)
        clears = any(self.call_clears(c) for c in scope.unconditional_calls)
        sym = Symbol("function", result, elements, clears, f"{self.path}:{name}")
        self.busy.discard(name)
        self.fn_memo[name] = sym
        return sym

    def returned(self, scope: _Scope) -> tuple[str, tuple[str, ...]]:
        """The kind of what a function returns, and per element when every ``return``
        returns a tuple of one length."""
        kinds = [self.kind(r, scope) for r in scope.returns]
        result = UNKNOWN
        for pref in (MODEL, SCALAR, TENSOR, GRADS, CONTAINER):
            if pref in kinds:
                result = TENSOR if pref == CONTAINER else pref
                break
        elements: tuple[str, ...] = ()
        tuples = [r for r in scope.returns if isinstance(r, ast.Tuple)]
        if tuples and len(tuples) == len(scope.returns) and len(
                {len(t.elts) for t in tuples}) == 1:
            per = []
            for i in range(len(tuples[0].elts)):
                ks = [self.kind(t.elts[i], scope) for t in tuples]
                definite = [k for k in ks if k]
                per.append(definite[0] if definite and all(k == definite[0] for k in definite)
                           else UNKNOWN)
            elements = tuple(per)
        return result, elements

    def method_symbols(self, class_name: str) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
        """``(name, returns, elements)`` of the class's step methods (:func:`_class_facts`)
        that return tensors: what ``agent.optimization()`` gives a caller in another module.
        ``self.x`` is not followed (its kind is unknown here); names bound inside the tape
        block from a call are tensors, as for functions."""
        out = []
        for name, node in self.raw.methods.get(class_name, {}).items():
            result, elements = self.returned(_Scope(node))
            if result in TENSORISH or any(k in TENSORISH for k in elements):
                out.append((name, result, elements))
        return tuple(out)

    def call_clears(self, call: ast.Call) -> bool:
        if is_clear(self.qn(call.func)):
            return True
        if isinstance(call.func, ast.Name) and call.func.id in self.raw.functions:
            return self.function(call.func.id).clears
        sym = self.imported.get(_dotted(call.func) or "")
        return sym is not None and sym.clears

    # -- expressions -----------------------------------------------------------------------
    def kind(self, expr: ast.expr, scope: _Scope | None, depth: int = 0) -> str:
        if depth > 12:
            return UNKNOWN
        if isinstance(expr, ast.Call):
            return self.call_kind(expr, scope, depth + 1)
        if isinstance(expr, ast.Name):
            if scope is not None:
                if expr.id in scope.tapes:
                    return TAPE
                if expr.id in scope.tape_values:
                    return TENSOR
                value = scope.last.get(expr.id)
                if value is not None:
                    if isinstance(value, tuple):  # an element of an unpacked call
                        src, idx = value
                        kind = self.element_kind(src, idx, scope, depth + 1)
                    else:
                        kind = self.kind(value, scope, depth + 1)
                    # what a tape differentiates is a tensor, whatever computed it
                    return TENSOR if not kind and expr.id in scope.differentiated else kind
                if expr.id in scope.params:
                    return UNKNOWN
            if expr.id in self.raw.values and scope is not None:
                return self.kind(self.raw.values[expr.id], None, depth + 1)
            sym = self.imported.get(expr.id)
            if sym is not None and sym.kind == "value":
                return sym.returns
            return UNKNOWN
        if isinstance(expr, ast.Tuple | ast.List):
            kinds = [self.kind(e, scope, depth + 1) for e in expr.elts]
            return CONTAINER if any(k in TENSORISH for k in kinds) else UNKNOWN
        if isinstance(expr, ast.BinOp):
            ks = {self.kind(expr.left, scope, depth + 1), self.kind(expr.right, scope, depth + 1)}
            if ks & {TENSOR, GRADS}:
                return TENSOR
            return SCALAR if SCALAR in ks else UNKNOWN
        if isinstance(expr, ast.Subscript):
            k = self.kind(expr.value, scope, depth + 1)
            return TENSOR if k in (TENSOR, GRADS, CONTAINER) else SCALAR if k == SCALAR else UNKNOWN
        if isinstance(expr, ast.UnaryOp) and not isinstance(expr.op, ast.Not):
            return self.kind(expr.operand, scope, depth + 1)  # ``-tf.reduce_mean(...)``
        if isinstance(expr, ast.Constant):
            return PLAIN
        return UNKNOWN

    def element_kind(self, call: ast.expr, idx: int, scope: _Scope | None, depth: int) -> str:
        if isinstance(call, ast.Call):
            sym = self.callee_symbol(call.func)
            if sym is not None and sym.elements and idx < len(sym.elements):
                return sym.elements[idx]
        k = self.kind(call, scope, depth)
        return TENSOR if k in (TENSOR, GRADS, CONTAINER) else UNKNOWN

    def callee_symbol(self, func: ast.expr) -> Symbol | None:
        if isinstance(func, ast.Name):
            if func.id in self.raw.functions:
                return self.function(func.id)
            if func.id in self.raw.classes:
                return Symbol("class", MODEL if func.id in self.model_classes else UNKNOWN)
        return self.imported.get(_dotted(func) or "")

    def call_kind(self, call: ast.Call, scope: _Scope | None, depth: int) -> str:
        func = call.func
        qn = self.qn(func)
        if qn is not None and not (isinstance(func, ast.Name) and func.id in self.raw.functions):
            return qualified_kind(qn)  # (a module function of that name shadows the import)
        if isinstance(func, ast.Name) and func.id in _CONVERSIONS:
            return PLAIN
        sym = self.callee_symbol(func)
        if sym is not None:
            return sym.returns if sym.kind in ("function", "class") else _called(sym.returns)
        if isinstance(func, ast.Attribute):
            recv = self.kind(func.value, scope, depth)
            method = func.attr
            if recv == TAPE:
                return GRADS if method == "gradient" else UNKNOWN
            if recv == MODEL:
                return PLAIN if method in _MODEL_PLAIN else TENSOR if method in (
                    "call", "__call__", "predict_step") else UNKNOWN
            if recv == METRIC:
                return SCALAR if method == "result" else UNKNOWN
            if recv in (TENSOR, SCALAR):
                return PLAIN if method in _TO_PLAIN else recv
            return UNKNOWN
        if isinstance(func, ast.Name):
            return _called(self.kind(func, scope, depth))
        return UNKNOWN


def _called(kind: str) -> str:
    if kind in (MODEL, LAYER):
        return TENSOR
    if kind in (LOSSFN, METRIC):
        return SCALAR
    return UNKNOWN


class _Scope:
    """One function's bindings (last assignment of each name), returns, the names assigned
    from calls inside a ``GradientTape`` block, the names a tape differentiates
    (``tape.gradient(loss, ...)`` after the last binding of ``loss``), and its unconditional
    calls."""

    def __init__(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        a = node.args
        self.params = {p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)}
        if a.vararg:
            self.params.add(a.vararg.arg)
        if a.kwarg:
            self.params.add(a.kwarg.arg)
        self.last: dict[str, ast.expr | tuple[ast.expr, int]] = {}
        self.returns: list[ast.expr] = []
        self.tape_values: set[str] = set()
        self.tapes: set[str] = set()
        self.differentiated: set[str] = set()
        self.unconditional_calls: list[ast.Call] = []
        self._walk(node.body, in_tape=False, unconditional=True)

    def _walk(self, body: list[ast.stmt], in_tape: bool, unconditional: bool) -> None:
        for stmt in body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            if self.tapes and isinstance(stmt, ast.Assign | ast.AnnAssign | ast.Expr) and \
                    stmt.value is not None:
                self._note_gradients(stmt.value)
            if isinstance(stmt, ast.Return) and stmt.value is not None:
                self.returns.append(stmt.value)
            elif isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for t in targets:
                    self._bind(t, stmt.value, in_tape)
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) \
                    and unconditional:
                self.unconditional_calls.append(stmt.value)
            if isinstance(stmt, ast.With | ast.AsyncWith):
                tape = in_tape
                for item in stmt.items:
                    text = _dotted(item.context_expr.func) if isinstance(
                        item.context_expr, ast.Call) else None
                    if text and text.rsplit(".", 1)[-1] == "GradientTape":
                        tape = True
                        if isinstance(item.optional_vars, ast.Name):
                            self.tapes.add(item.optional_vars.id)
                self._walk(stmt.body, tape, unconditional)
            elif isinstance(stmt, ast.Try):
                self._walk(stmt.body, in_tape, unconditional)
                for h in stmt.handlers:
                    self._walk(h.body, in_tape, False)
                self._walk(stmt.orelse, in_tape, False)
                self._walk(stmt.finalbody, in_tape, unconditional)
            elif isinstance(stmt, ast.If | ast.For | ast.While | ast.AsyncFor):
                self._walk(stmt.body, in_tape, False)
                self._walk(stmt.orelse, in_tape, False)

    def _note_gradients(self, value: ast.expr) -> None:
        """``tape.gradient(name, ...)`` in ``value`` (also inside ``zip(...)``): ``name``, as
        bound now, is a tensor."""
        for node in ast.walk(value):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr == "gradient" and isinstance(node.func.value, ast.Name) \
                    and node.func.value.id in self.tapes and node.args and \
                    isinstance(node.args[0], ast.Name):
                self.differentiated.add(node.args[0].id)

    def _bind(self, target: ast.expr, value: ast.expr, in_tape: bool) -> None:
        if isinstance(target, ast.Name):
            self.last[target.id] = value
            self.tape_values.discard(target.id)
            self.differentiated.discard(target.id)
            if in_tape and isinstance(value, ast.Call):
                self.tape_values.add(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            for i, el in enumerate(target.elts):
                if isinstance(el, ast.Name):
                    if isinstance(value, ast.Tuple | ast.List) and i < len(value.elts):
                        self.last[el.id] = value.elts[i]
                    else:
                        self.last[el.id] = (value, i)
                    self.tape_values.discard(el.id)
                    self.differentiated.discard(el.id)
                    if in_tape and isinstance(value, ast.Call):
                        self.tape_values.add(el.id)


def build_index(files: Mapping[str, str]) -> ProjectIndex:
    """A :class:`ProjectIndex` over ``files`` (relative path -> source text)."""
    return ProjectIndex(files)


__all__ = ["Namespace", "ProjectIndex", "ProjectView", "Symbol", "build_index", "module_names"]
