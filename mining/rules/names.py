"""Resolve names in a module to canonical TensorFlow/Keras qualified names, cheaply.

Instead of libcst's whole-scope ``QualifiedNameProvider`` (far too slow for mining), the resolver
reads the module's import statements and simple alias assignments (``K = tf.keras.backend``) and
maps each local name to the dotted name it stands for. Dotted names are then canonicalised so
that the many spellings of one API compare equal::

    tensorflow.keras.models.Sequential   -> keras.models.Sequential
    tf_keras.Sequential                  -> keras.Sequential
    keras.src.models.Sequential          -> keras.models.Sequential
    tensorflow.compat.v1.Session         -> tensorflow.Session
"""

from __future__ import annotations

import builtins

import libcst as cst

# Longest prefixes first; applied repeatedly until nothing changes.
_CANON_PREFIXES: tuple[tuple[str, str], ...] = (
    ("tensorflow.compat.v1.keras", "keras"),
    ("tensorflow.compat.v2.keras", "keras"),
    ("tensorflow.python.keras", "keras"),
    ("tensorflow.contrib.keras.api.keras", "keras"),
    ("tensorflow.contrib.keras", "keras"),
    ("tensorflow.keras", "keras"),
    ("keras._tf_keras.keras", "keras"),
    ("keras.api._v2.keras", "keras"),
    ("keras.api", "keras"),
    ("keras.src", "keras"),
    ("tf_keras.src", "keras"),
    ("tf_keras", "keras"),
    ("tensorflow.compat.v1", "tensorflow"),
    ("tensorflow.compat.v2", "tensorflow"),
    ("tensorflow._api.v2.compat.v1", "tensorflow"),
    ("tensorflow._api.v2", "tensorflow"),
)

#: Top-level packages whose names the resolver tracks.
TRACKED_ROOTS = ("tensorflow", "keras", "tf_keras", "numpy", "sklearn", "optuna", "hyperopt",
                 "skopt", "scikeras", "keras_tuner", "kerastuner", "bayes_opt", "gc", "contextlib")


def canonical(name: str) -> str:
    """Map one dotted name to its canonical spelling (see the module docstring)."""
    changed = True
    while changed:
        changed = False
        for prefix, repl in _CANON_PREFIXES:
            if name == prefix or name.startswith(prefix + "."):
                name = repl + name[len(prefix):]
                changed = True
                break
    return name


def dotted(expr: cst.BaseExpression) -> str | None:
    """``a.b.c`` as a string for a Name/Attribute chain, else None."""
    parts: list[str] = []
    node: cst.BaseExpression = expr
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        parts.append(node.value)
        return ".".join(reversed(parts))
    return None


def _module_name(node: cst.BaseExpression | None) -> str | None:
    if node is None:
        return None
    return dotted(node)


class NameResolver:
    """Local name -> qualified name, from imports and alias assignments anywhere in a module.

    Imports inside functions and ``try`` blocks count too: a project uses one spelling of a name
    consistently far more often than it shadows an import, and this keeps resolution one pass.
    """

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.star_modules: list[str] = []

    # -- building -------------------------------------------------------------------------
    def add_import(self, node: cst.Import) -> None:
        for alias in node.names:
            full = dotted(alias.name)
            if full is None:
                continue
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.aliases[alias.asname.name.value] = full
            else:
                root = full.split(".", 1)[0]
                # ``import tensorflow.keras`` binds ``tensorflow``.
                self.aliases.setdefault(root, root)

    def add_import_from(self, node: cst.ImportFrom) -> None:
        if node.relative:
            return
        module = _module_name(node.module)
        if module is None:
            return
        if isinstance(node.names, cst.ImportStar):
            self.star_modules.append(module)
            return
        for alias in node.names:
            name = dotted(alias.name)
            if name is None:
                continue
            local = name
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
            self.aliases[local] = f"{module}.{name}"

    def add_assign(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        """``K = tf.keras.backend``: record an alias when the value is a tracked dotted name."""
        if not isinstance(target, cst.Name):
            return
        full = self.resolve(value)
        if full is not None and full.split(".", 1)[0] in ("tensorflow", "keras"):
            self.aliases[target.value] = full

    # -- querying -------------------------------------------------------------------------
    def resolve(self, expr: cst.BaseExpression) -> str | None:
        """Canonical qualified name of a Name/Attribute chain, or None when it is not imported."""
        text = dotted(expr)
        if text is None:
            return None
        head, _, rest = text.partition(".")
        base = self.aliases.get(head)
        if base is None:
            if not self.star_modules or head in _BUILTIN_NAMES:
                return None
            base = f"{self.star_modules[-1]}.{head}"
        full = f"{base}.{rest}" if rest else base
        return canonical(full)

    def find_alias(self, canonical_target: str) -> str | None:
        """The local spelling of ``canonical_target`` (e.g. ``keras.backend``), if imported."""
        best: str | None = None
        for local, full in sorted(self.aliases.items()):
            canon = canonical(full)
            if canon == canonical_target:
                return local
            if canonical_target.startswith(canon + ".") and best is None:
                best = local + canonical_target[len(canon):]
        return best

    def imports_any(self, roots: tuple[str, ...] = ("tensorflow", "keras")) -> bool:
        values = list(self.aliases.values()) + self.star_modules
        return any(canonical(v).split(".", 1)[0] in roots for v in values)


_BUILTIN_NAMES = frozenset(dir(builtins))
