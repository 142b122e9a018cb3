"""The pre-filter: which statements of a file can take part in a finding.

libcst parsing and indexing cost about 15 times ``ast.parse``. Before libcst sees a file, the
pre-filter checks it for a rule's trigger words, parses it with ``ast`` and splits it into units:
top-level statements, with classes split into a header (the class line and class-level
statements) and one unit per method. A *seed* unit mentions a name a finding needs (a model
constructor, ``predict``, a dataset constructor, ``Session``, a store into a container next to a
loop, or a local alias of one of these). Kept are the seeds and every unit connected to one
through a name one unit defines and another mentions (callers and callees both ways,
``self.attr`` stores, base classes, a class and its dunder methods). The rules relate nodes only
through such names, so the kept units see the same context as in the whole file. Dropped units
become blank lines in ``reduce_source``, so line and column numbers do not move; the engine
drops their lines altogether (libcst reads fewer lines) and maps the findings' lines back.
Their nested imports are re-emitted on their own lines because the name resolver reads imports
anywhere in a module. When no unit is a seed, libcst does not run at all.

The seed words are each rule's own (``Rule.SEEDS``, :class:`~leakwatt.mining.rules.api.Seeds`),
merged here for the rules selected; nothing in this module names a rule.
"""

from __future__ import annotations

import ast
import functools
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from leakwatt.mining.prefilter_units import (
    Facts,
    Unit,
    import_pairs,
    module_level_code,
    render,
    split_units,
    walk_unit,
)
from leakwatt.mining.rules import RULES, Rule, select_rules
from leakwatt.mining.rules.kit import INFERENCE_FUNCS, REPEATED_HOOKS


@dataclass(frozen=True)
class _Words:
    """The seed words of a set of rules, merged (see ``Seeds``)."""

    triggers: tuple[str, ...]
    roots: frozenset[str]
    api: frozenset[str]
    calls: frozenset[str]
    calls_if: tuple[tuple[str, frozenset[str]], ...]
    #: submodule -> call names under it (``tf.data.load``)
    module_calls: Mapping[str, frozenset[str]]
    defs: frozenset[str]
    stores: frozenset[str]
    #: words that count only where they repeat (their rules' ``repeats``)
    repeat: frozenset[str]
    #: a selected rule declares no seed words: parse whole files
    whole: bool


def seed_words(codes: tuple[str, ...]) -> _Words:
    """The merged seed words of the rules ``codes`` (as registered now)."""
    return _merge(tuple(RULES[c] for c in codes))


@functools.lru_cache(maxsize=64)
def _merge(rules: tuple[type[Rule], ...]) -> _Words:
    seeds = [r.SEEDS for r in rules]
    strong = frozenset().union(*(
        (s.api | s.calls | frozenset().union(*s.module_calls.values())) - s.repeats
        for s in seeds))
    repeat = frozenset().union(*(s.repeats for s in seeds)) - strong
    module_calls: dict[str, frozenset[str]] = {}
    for s in seeds:
        for sub, calls in s.module_calls.items():
            module_calls[sub] = module_calls.get(sub, frozenset()) | calls
    triggers: dict[str, None] = {}
    for s in seeds:
        triggers.update(dict.fromkeys(s.triggers))
    return _Words(
        triggers=tuple(triggers),
        roots=frozenset().union(*(s.roots for s in seeds)),
        api=frozenset().union(*(s.api for s in seeds)),
        calls=frozenset().union(*(s.calls for s in seeds)),
        calls_if=tuple((m, w) for s in seeds for m, w in s.calls_if.items()),
        module_calls=module_calls,
        defs=frozenset().union(*(s.defs for s in seeds)),
        stores=frozenset().union(*(s.stores for s in seeds)),
        repeat=repeat,
        whole=any(s.empty for s in seeds))


def triggered(source: str, codes: Sequence[str], project: Iterable[str] = ()) -> bool:
    """Whether ``source`` holds a trigger word of one of the rules ``codes`` (a plain
    substring test: without one, no rule can fire and nothing is parsed). ``project``: names
    the file imports from project modules that carry facts (a builder from ``models.py``): a
    script without a TensorFlow import is triggered by them."""
    return bool(codes) and (any(t in source for t in seed_words(tuple(codes)).triggers)
                            or any(n in source for n in project))


def _submodule(words: _Words, parts: list[str]) -> bool:
    """An import of (or alias for) a seed submodule such as ``tensorflow.data``."""
    return any(sub in parts[1:] for sub in words.module_calls)


def _seed_strength(unit: Unit, facts: Facts, words: _Words, qn_words: set[str],
                   plain_words: frozenset[str], heads: set[str]) -> int:
    """0: no seed; 2: a seed; 1: a seed only if another unit calls it (see below).

    Findings are reported at calls (IMR, DIR, US) and at stores (UTR): a seed has a call whose
    dotted name holds a seed word (``api`` words only under a tensorflow/keras name), a class
    whose bases mention one, a store into a container next to a for/while loop, a Keras hook
    that stores, or an alias assignment the name resolver records. A word of a rule that
    ``repeats`` (a model or dataset constructor, ``predict``) counts only when it repeats: in a
    loop, twice in one function, in module-level code, in an inference-named function or Keras
    hook, or in a function another unit calls (a loop there, a search objective, a
    ``build_fn``); otherwise it is weak.
    """
    repeats = 0
    for parts in facts.calls:
        last = parts[-1]
        if last in plain_words:
            if last not in words.repeat:
                return 2
            repeats += 1
        elif parts[0] in heads:
            hit = qn_words.intersection(parts)
            if hit:
                if not hit <= words.repeat:
                    return 2
                repeats += 1
            else:
                for sub, calls in words.module_calls.items():
                    if last in calls and sub in parts[:-1]:
                        if last not in words.repeat:
                            return 2
                        repeats += 1
                        break
    if any(parts[0] in heads for _, _, parts in facts.aliases):
        return 2  # ``K = tf.keras.backend`` inside a function still feeds the resolver
    if unit.kind == "header" and not qn_words.isdisjoint(unit.bases):
        return 2
    if not words.defs.isdisjoint(facts.defs) or unit.name in words.defs:
        return 2
    if words.stores and facts.loop and (facts.store_call or facts.loop_store):
        return 2
    if unit.kind == "method" and unit.name in REPEATED_HOOKS:
        return 2 if unit.store or repeats else 0
    if not repeats:
        return 0
    if (repeats > 1 or unit.loop or unit.dunder or module_level_code(unit)
            or any(INFERENCE_FUNCS.match(n) for n in facts.defs | {unit.name})
            or unit.name in plain_words):  # (a project function another module loops over)
        return 2
    return 1


def reduce_source(source: str, rules: Iterable[str] | None = None) -> str | None:
    """The part of ``source`` the rules need, with the other statements blanked out.

    Returns ``""`` when no finding is possible (libcst need not run), ``None`` when the whole
    source must be parsed (it does not parse with ``ast``, it star-imports, or nothing can be
    dropped), and otherwise a source in which every kept statement keeps its line and column.
    """
    reduced = _reduce(source, select_rules(rules), compact=False)
    return reduced if reduced is None else reduced[0]


def _reduce(source: str, codes: list[str], compact: bool, project: frozenset[str] = frozenset()
            ) -> tuple[str, list[int] | None] | None:
    """``reduce_source``'s work; ``compact`` drops the lines of dropped statements instead of
    blanking them (libcst then reads fewer lines) and returns, with the text, each of its
    lines' line number in ``source``. ``("", None)``: no finding possible."""
    if not triggered(source, codes, project):
        return "", None
    words = seed_words(tuple(codes))
    if words.whole:
        return None  # a rule without seed words sees every file whole
    if "\r" in source and source.count("\r") != source.count("\r\n"):
        return None  # lone "\r" line ends: ast and a "\n" split disagree on line numbers
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes in old code are not our business
            tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None  # libcst reports the error (or parses what ast cannot)
    units = split_units(tree)
    facts: dict[int, Facts] = {}
    imports: list[ast.Import | ast.ImportFrom] = []
    aliases: list[tuple[int, list[str], list[str]]] = []
    for i, u in enumerate(units):
        if u.kind == "import":
            imports.extend(u.nodes)  # type: ignore[arg-type]
        else:
            f = facts[i] = walk_unit(u, words.stores)
            imports.extend(u.nested_imports)
            aliases.extend(f.aliases)

    # Local names bound to tensorflow/keras, and those standing for a seed word themselves.
    qn_words = set(words.api)
    plain = set(words.calls) | project  # calls of project builders and tensor functions
    for marker, extra in words.calls_if:
        if marker in source:
            plain |= extra
    heads: set[str] = set()
    for node in imports:
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            return None  # a star import can make any name resolve: keep everything
        for local, full in import_pairs(node):
            parts = full.split(".")
            if parts[0] in words.roots:
                heads.add(local)
                if not qn_words.isdisjoint(parts) or _submodule(words, parts):
                    qn_words.add(local)
    for _, names, parts in sorted(aliases, key=lambda a: a[0]):
        if parts[0] in heads:
            hit = not qn_words.isdisjoint(parts) or _submodule(words, parts)
            heads.update(names)
            if hit:
                qn_words.update(names)

    defines: dict[str, list[int]] = {}
    seeds: list[int] = []
    pending = False
    plain_words = frozenset(plain)
    for i, f in facts.items():
        u = units[i]
        u.store = bool(words.stores) and f.store_call and not f.loop  # UTR if called in a loop
        if u.kind == "alias":
            continue  # kept as it is; it holds no call and needs no other unit
        for name in u.callables | u.values:
            defines.setdefault(name, []).append(i)
        strength = _seed_strength(u, f, words, qn_words, plain_words, heads)
        u.seed = strength == 2
        if u.seed:
            seeds.append(i)
        elif u.store or strength == 1:
            u.weak = strength == 1
            pending = True
    if not seeds and not pending:
        return "", None
    users: dict[str, list[int]] = {}
    dunders: dict[int, list[int]] = {}
    for i, u in enumerate(units):
        # A membership test per token: ``tokens.intersection(defines)`` would turn the dict
        # into a set for every unit (quadratic in the file's length).
        for name in [t for t in u.tokens if t in defines]:
            users.setdefault(name, []).append(i)
        if u.dunder:
            dunders.setdefault(u.header, []).append(i)
    # A store outside a loop counts where its function is called from a loop elsewhere; a
    # weak seed where another unit calls it at all.
    for i, u in enumerate(units):
        if u.seed:
            continue
        if (u.store and any(units[j].loop for j in users.get(u.name, ()))) or (
                u.weak and any(j != i for name in u.callables for j in users.get(name, ()))):
            u.seed = True
            seeds.append(i)
    if not seeds:
        return "", None

    # Module-level code (top-level statements and class-level statements) is one function to
    # the rules, ``<module>``: its calls, loops and ``with`` items are read together.
    group = [i for i, u in enumerate(units) if module_level_code(u)]
    in_group = set(group)

    keep = set(seeds)
    work = list(seeds)
    while work:
        i = work.pop()
        u = units[i]
        nxt: list[int] = []
        if i in in_group:
            nxt.extend(group)
            in_group.clear()
        for name in [t for t in u.tokens if t in defines]:  # what it uses
            nxt.extend(defines[name])
        for name in u.callables:  # who calls it (a call in a loop repeats the callee)
            nxt.extend(users.get(name, ()))
        if u.kind == "method":
            nxt.append(u.header)
            if u.dunder:
                nxt.extend(dunders.get(u.header, ()))
        elif u.kind == "header":
            nxt.extend(dunders.get(i, ()))
        for j in nxt:
            if j not in keep:
                keep.add(j)
                work.append(j)
    if all(i in keep or u.kind in ("import", "alias") for i, u in enumerate(units)):
        return None
    return render(source, units, keep, compact)


def compact_source(source: str, codes: list[str], project: Iterable[str] = ()
                   ) -> tuple[str, list[int] | None] | None:
    """What the engine parses: like :func:`reduce_source`, but the lines of dropped statements
    are removed (libcst reads fewer lines) and each remaining line's number in ``source`` comes
    with the text. ``("", None)``: no finding possible; None: parse the whole source.
    ``project``: call names that reach a project fact (seeds, see :func:`triggered`)."""
    return _reduce(source, codes, compact=True, project=frozenset(project))
