"""The rules' shared analysis kit: loops, step loops, parameters and names.

One definition of each predicate more than one rule (or the pre-filter) asks: whether a name is
a function's parameter, which functions run once per iteration (called from a loop, Keras
hooks), which names read like inference functions, the loops around a loop, what a loop
iterates over, and whether a loop runs once per training step, batch or sample
(:func:`step_loop`, under a rule's :class:`StepPolicy`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import libcst as cst

from leakwatt.mining.rules.index import CallSite, ClassInfo, FuncInfo, Loop
from leakwatt.mining.rules.values import DATASET, LOSSFN, called_from_other_modules

if TYPE_CHECKING:
    from leakwatt.mining.rules.context import ModuleContext
    from leakwatt.mining.rules.values import ValueKinds

#: Keras callback and model hooks the framework calls once per batch or epoch.
REPEATED_HOOKS = frozenset({"on_batch_end", "on_epoch_end", "on_train_batch_end",
                            "on_test_batch_end", "on_predict_batch_end", "train_step",
                            "test_step", "on_batch_begin", "on_epoch_begin"})
#: Names of functions called once per input (an agent's ``act``, ``predict_image`` ...).
INFERENCE_FUNCS = re.compile(
    r"^(act|get_action|choose_action|select_action|pick_action|sample_action|compute_action|"
    r"action_values?|get_value|policy|infer|inference|"
    r"predict\w*|classify|detect|recognize|get_q\w*|q_values?)$", re.IGNORECASE)
#: Calls that make a loop a training or inference step loop (``step``: ``env.step(action)``,
#: ``optimizer.step()``: one iteration per environment or optimisation step).
STEP_CALLS = frozenset({"gradient", "apply_gradients", "train_on_batch", "test_on_batch", "step",
                        "predict_on_batch", "minimize", "train_step", "test_step"})
_MAPPING_VIEWS = frozenset({"items", "keys", "values"})
_LATE = 10**9  # a sequence number after every statement: "the binding in force at the end"


# -- parameters and names ----------------------------------------------------------------------

def is_param(fn: FuncInfo | cst.FunctionDef, name: str, *, star: bool = True) -> bool:
    """``name`` is a parameter of ``fn`` (``*args``/``**kwargs`` too unless ``star=False``).

    The module scope (``FuncInfo`` without a node) has no parameters.
    """
    node = fn.node if isinstance(fn, FuncInfo) else fn
    if node is None:
        return False
    params = node.params
    every = [*params.posonly_params, *params.params, *params.kwonly_params]
    if star:
        if isinstance(params.star_arg, cst.Param):
            every.append(params.star_arg)
        if params.star_kwarg is not None:
            every.append(params.star_kwarg)
    return any(p.name.value == name for p in every)


def bound_names(expr: cst.BaseExpression) -> list[cst.Name]:
    """The names a target binds or a tuple lists: ``a``, ``(a, [b, c])`` -> a, b, c."""
    if isinstance(expr, cst.Name):
        return [expr]
    if isinstance(expr, cst.Tuple | cst.List):
        return [n for el in expr.elements for n in bound_names(el.value)]
    return []


def names_read(expr: cst.BaseExpression) -> list[cst.Name]:
    """Names read by ``expr``: receivers and arguments, not attribute or keyword names, and
    nothing inside a lambda or comprehension."""
    out: list[cst.Name] = []
    todo: list[cst.CSTNode] = [expr]
    while todo:
        node = todo.pop()
        if isinstance(node, cst.Name):
            out.append(node)
        elif isinstance(node, cst.Attribute):
            todo.append(node.value)
        elif isinstance(node, cst.Call):
            if isinstance(node.func, cst.Attribute):
                todo.append(node.func.value)
            todo.extend(a.value for a in node.args)
        elif isinstance(node, cst.Lambda | cst.ListComp | cst.GeneratorExp | cst.SetComp
                        | cst.DictComp):
            continue
        else:
            todo.extend(node.children)
    return out


def call_name(func: cst.BaseExpression) -> str:
    """The last name of a called expression: ``f`` for ``f(...)`` and ``x.f(...)``."""
    if isinstance(func, cst.Name):
        return func.value
    if isinstance(func, cst.Attribute):
        return func.attr.value
    return ""


# -- loops -------------------------------------------------------------------------------------

def iter_loops(loop: Loop | None) -> Iterator[Loop]:
    """``loop`` and the loops around it, innermost first."""
    while loop is not None:
        yield loop
        loop = loop.parent


def loop_iter(loop: Loop) -> tuple[cst.BaseExpression | None, cst.BaseExpression | None]:
    """What a ``for`` loop or comprehension iterates over, and its target (None, None for
    ``while``)."""
    node = loop.node
    if isinstance(node, cst.For):
        return node.iter, node.target
    for_in = getattr(node, "for_in", None)
    if isinstance(for_in, cst.CompFor):
        return for_in.iter, for_in.target
    return None, None


def called_in_loop(ctx: ModuleContext) -> frozenset[int]:
    """Ids of same-module functions called (directly) from inside a loop, plus Keras hooks.

    A module analysis: ask for it as ``ctx.analysis(called_in_loop)``.
    """
    out: set[int] = set()
    by_method: dict[str, list[FuncInfo]] = {}
    for cls in ctx.classes.values():
        for name, method in cls.methods.items():
            by_method.setdefault(name, []).append(method)
    for site in ctx.calls:
        if site.loops:
            target = ctx.resolve_local_function(site)
            if target is None and site.method and INFERENCE_FUNCS.match(site.method):
                # ``agent.get_action(state)`` once per step: the one module class defining
                # that inference method (only those names, which the pre-filter keeps too)
                owners = by_method.get(site.method, [])
                target = owners[0] if len(owners) == 1 else None
            if target is not None and target is not site.func:
                out.add(id(target))
    for fn in ctx.functions:
        if fn.class_name and fn.name in REPEATED_HOOKS:
            out.add(id(fn))
    return frozenset(out)


def _evaluates(kinds: ValueKinds, fn: FuncInfo, site: CallSite) -> bool:
    """An evaluation step: a loss object called (``loss_object(y, model(x))``) or a metric
    updated, as a validation or test loop over batches does without a ``GradientTape``."""
    if site.method == "update_state":
        return True
    recv = site.receiver
    if site.simple_name is None and not (isinstance(recv, cst.Name) and recv.value == "self"):
        return False  # only ``loss_fn(...)`` and ``self.loss_fn(...)``: cheap enough per loop
    return kinds.expr_kind(site.node.func, fn, site.seq) == LOSSFN


@dataclass(frozen=True)
class StepPolicy:
    """What makes a loop a *step loop* (one iteration per batch, sample, step or episode).

    Always: a ``while`` loop, and a ``for`` whose iterable (looked through ``wrappers`` such as
    ``enumerate(...)``) is a ``tf.data`` dataset or has a last name matching ``words``. The
    rules differ in what else counts, and each difference is a field, so both rules share one
    predicate and the differences stay visible:

    * UTR asks whether tensors are kept *per training step*: a loop that holds a
      ``GradientTape`` or a step call (``apply_gradients``, ``train_on_batch``) is one
      (``step_calls``); ``.items()``/``.keys()``/``.values()`` iterations never are
      (``mapping_views``); ``a + b`` bounds are looked into (``arithmetic``); a dataset is
      recognised by its constructor call or the binding of a plain name.
    * DIR asks whether ``predict``'s input is *one batch*: comprehensions count
      (``comprehensions``) and so do loop targets named like a sample (``targets``); every
      expression looked at is asked whether it is a dataset (``every_kind``); its ``words``
      add states, frames and images.
    """

    words: re.Pattern[str]
    wrappers: frozenset[str]
    step_calls: bool = False
    mapping_views: bool = False
    every_kind: bool = False
    arithmetic: bool = False
    comprehensions: bool = False
    targets: bool = False


#: UTR: names of iterables (or ``range`` bounds) that stand for data batches or training steps.
UTR_STEPS = StepPolicy(
    words=re.compile(
        r"(?:^|_)(?:ds|data|dataset|datasets|loader|iter|iterator|batch|batches|gen|generator|"
        r"step|steps|epoch|epochs|episode|episodes|sample|samples|queue)(?:$|_)", re.IGNORECASE),
    wrappers=frozenset({"enumerate", "zip", "tqdm", "iter", "list", "range", "trange",
                        "reversed", "islice"}),
    step_calls=True, mapping_views=True, arithmetic=True)
#: DIR: iterables (or loop targets) whose iterations are steps, batches or single samples.
DIR_STEPS = StepPolicy(
    words=re.compile(
        r"(?:^|_)(?:batch|batches|minibatch|minibatches|sample|samples|state|states|obs|frame|"
        r"frames|img|imgs|image|images|step|steps|episode|episodes|ds|dataset|loader|iter|"
        r"iterator|stream|window|windows)(?:$|_)", re.IGNORECASE),
    wrappers=frozenset({"enumerate", "zip", "tqdm", "iter", "list", "reversed", "trange"}),
    every_kind=True, comprehensions=True, targets=True)


def step_loop(ctx: ModuleContext, kinds: ValueKinds, fn: FuncInfo, loop: Loop | None,
              policy: StepPolicy) -> bool:
    """Whether ``loop`` (in ``fn``; None: a function called once per step) runs once per
    step, batch or sample under ``policy``."""
    if loop is None or loop.kind == "while":
        return True
    if policy.step_calls and any(
            loop in site.loops and (site.qn == "tensorflow.GradientTape"
                                    or site.method in STEP_CALLS
                                    or _evaluates(kinds, fn, site)) for site in fn.calls):
        return True
    if policy.step_calls and _calls_step_helper(ctx, fn, loop):
        return True
    if loop.kind == "comprehension" and not policy.comprehensions:
        return False
    it, target = loop_iter(loop)
    if it is None:
        return False
    todo: list[cst.BaseExpression] = [it]
    while todo:
        expr = todo.pop()
        if policy.every_kind and kinds.expr_kind(expr, fn, _LATE) == DATASET:
            return True
        if isinstance(expr, cst.Call):
            fname = call_name(expr.func)
            if fname in policy.wrappers:
                todo.extend(a.value for a in expr.args)
                continue
            if policy.mapping_views and fname in _MAPPING_VIEWS:
                return False
            if policy.words.search(fname) or (
                    not policy.every_kind and kinds.expr_kind(expr, fn, _LATE) == DATASET):
                return True
        elif isinstance(expr, cst.Name | cst.Attribute):
            last = expr.value if isinstance(expr, cst.Name) else expr.attr.value
            if policy.words.search(last):
                return True
            if not policy.every_kind and isinstance(expr, cst.Name):
                ev = ctx.last_assign(fn, expr.value, _LATE)
                if ev is not None and ev.value is not None and kinds.expr_kind(
                        ev.value, fn, ev.seq) == DATASET:
                    return True
        elif policy.arithmetic and isinstance(expr, cst.BinaryOperation):
            todo.extend((expr.left, expr.right))
    return policy.targets and target is not None and any(
        policy.words.search(n.value) for n in names_read(target))


def step_helpers(ctx: ModuleContext) -> frozenset[int]:
    """Ids of the module's functions that do one training step themselves: outside any loop
    of their own they open a ``GradientTape`` or call a step method (``apply_gradients``,
    ``train_on_batch``, ``tape.gradient``; :data:`STEP_CALLS`). A function that loops over
    batches itself trains for an epoch or more: a loop calling it is not a step loop for
    that. A module analysis."""
    return frozenset(id(fn) for fn in ctx.functions if fn.node is not None and any(
        not site.loops and (site.qn == "tensorflow.GradientTape" or site.method in STEP_CALLS)
        for site in fn.calls))


def _calls_step_helper(ctx: ModuleContext, fn: FuncInfo, loop: Loop) -> bool:
    """``loop`` calls a same-module function that does one training step (``logits, loss =
    apply_gradient(optimizer, model, x, y)`` per batch): the loop is a step loop, as if the
    tape were written in it."""
    helpers = ctx.analysis(step_helpers)
    if not helpers:
        return False
    for site in fn.calls:
        if loop in site.loops and (site.simple_name is not None or site.method is not None):
            target = ctx.resolve_local_function(site)
            if target is not None and target is not fn and id(target) in helpers:
                return True
    return False



# -- calls into the module's own classes -------------------------------------------------------

#: Method names too common on library objects (progress bars, dicts, lists, files, sessions,
#: environments, Keras models) to be matched to a module class by the name alone.
COMMON_METHODS = frozenset({
    "update", "run", "eval", "get", "set", "add", "append", "extend", "insert", "pop", "remove",
    "clear", "copy", "write", "read", "close", "save", "restore", "load", "items", "keys",
    "values", "format", "join", "split", "reset", "step", "render", "sample", "put", "send",
    "start", "stop", "set_postfix", "set_description", "flush", "log", "info", "debug",
    "warning", "error", "shuffle", "next", "call", "predict", "fit", "evaluate", "summary",
    "compile", "numpy", "mean", "sum", "reshape", "astype", "result", "update_state",
    "reset_states", "reset_state", "apply_gradients", "minimize", "gradient", "assign",
    "train_on_batch", "test_on_batch", "predict_on_batch", "print", "show", "plot", "item", "tolist"})


def instance_class(ctx: ModuleContext, fn: FuncInfo, expr: cst.BaseExpression,
                   seq: int) -> str | None:
    """The module class ``expr`` holds an instance of: a name whose binding in force at
    ``seq`` (or in an enclosing scope) is ``Cls(...)``, or ``self.attr`` whose every store in
    the class is ``Cls(...)`` of one module class. None when that cannot be told."""
    values: list[cst.BaseExpression | None]
    if isinstance(expr, cst.Name):
        ev = ctx.last_assign(fn, expr.value, seq)
        if ev is None or ev.kind != "assign":
            return None
        values = [ev.value]
    elif (isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name)
          and expr.value.value == "self" and fn.class_name):
        cls = ctx.classes.get(fn.class_name)
        values = [ev.value for ev in cls.attr_assigns.get(expr.attr.value, [])] \
            if cls is not None else []
    else:
        return None
    names = {v.func.value for v in values if isinstance(v, cst.Call)
             and isinstance(v.func, cst.Name) and v.func.value in ctx.classes}
    matched = sum(1 for v in values if isinstance(v, cst.Call) and isinstance(v.func, cst.Name)
                  and v.func.value in ctx.classes)
    if len(names) == 1 and values and matched == len(values):
        return names.pop()
    return None


def _binding_unknown(ctx: ModuleContext, fn: FuncInfo, expr: cst.BaseExpression,
                     seq: int) -> bool:
    """Nothing here says what ``expr`` holds: a parameter or an unbound name, a loop target,
    a name or ``self.attr`` bound only to other names (``self.agent = agent``), an attribute
    of another object (``env.agent``). A name bound to a call or a literal is known to hold
    something else than an instance of a module class (``pbar = tqdm(...)``)."""
    if isinstance(expr, cst.Name):
        if expr.value in ("self", "cls"):
            return False
        ev = ctx.last_assign(fn, expr.value, seq)
        return ev is None or ev.value is None or isinstance(
            ev.value, cst.Name | cst.Attribute | cst.Subscript)
    if (isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name)
            and expr.value.value == "self" and fn.class_name):
        cls = ctx.classes.get(fn.class_name)
        events = cls.attr_assigns.get(expr.attr.value, []) if cls is not None else []
        return all(ev.value is None or isinstance(ev.value, cst.Name | cst.Attribute
                                                  | cst.Subscript) for ev in events)
    return isinstance(expr, cst.Attribute)


def resolve_callee(ctx: ModuleContext, fn: FuncInfo, call: cst.Call, seq: int, *,
                   common: frozenset[str] = COMMON_METHODS) -> tuple[FuncInfo | None, str]:
    """The module function or method that ``call`` (in ``fn``, at ``seq``) runs, and how it was
    found (``""``: by a binding; else a ``via`` note).

    Beyond :meth:`ModuleContext.resolve_local_function` (``f()``, ``self.m()``): ``Cls(...)``
    runs ``Cls.__init__``; ``obj.m()`` where ``obj`` is an instance of a module class
    (:func:`instance_class`) runs that class's ``m``; and where nothing says what ``obj``
    holds (a parameter, ``self.agent = agent``), the one module class defining a method ``m``
    is matched by name, unless ``m`` is one of ``common`` (names library objects share)."""
    func = call.func
    if isinstance(func, cst.Name) and ctx.last_assign(fn, func.value, seq) is not None:
        return None, ""  # rebound (``resize = tffunc(...)(resize)``): not what it defines
    target = ctx.local_function_by_ref(func, fn)
    if target is not None:
        return target, ""
    if isinstance(func, cst.Name):
        if func.value in ctx.classes and ctx.last_assign(fn, func.value, seq) is None:
            return ctx.method(func.value, "__init__"), ""
        return None, ""
    if not isinstance(func, cst.Attribute):
        return None, ""
    method, recv = func.attr.value, func.value
    cls_name = instance_class(ctx, fn, recv, seq)
    if cls_name is not None:
        return ctx.method(cls_name, method), ""
    if method in common or method.startswith("__") or ctx.names.resolve(func) is not None \
            or not _binding_unknown(ctx, fn, recv, seq):
        return None, ""
    owners = ctx.analysis(method_owners).get(method, ())
    if len(owners) != 1:
        return None, ""
    text = " ".join(ctx.code(recv).split())[:60]
    return owners[0].methods[method], (f"{text}.{method}() matched by name to "
                                       f"{owners[0].name}.{method}, the one method of that name "
                                       f"in this module")


def method_owners(ctx: ModuleContext) -> dict[str, tuple[ClassInfo, ...]]:
    """Method name -> the module classes defining it (a module analysis:
    ``ctx.analysis(method_owners)``)."""
    out: dict[str, list[ClassInfo]] = {}
    for cls in ctx.classes.values():
        for name in cls.methods:
            out.setdefault(name, []).append(cls)
    return {name: tuple(found) for name, found in out.items()}
# -- what runs once per iteration, beyond a direct call in a loop ------------------------------

#: Method names of Keras models, sessions, containers and environments: a call of one of these
#: in a loop is taken for the library's method, not for a module class's method of that name,
#: unless the receiver is known to be an instance of that class.
_LIBRARY_METHODS = frozenset({
    "fit", "fit_generator", "evaluate", "compile", "summary", "save", "save_weights",
    "load_weights", "train_on_batch", "test_on_batch", "predict_on_batch", "get_weights",
    "set_weights", "run", "close", "append", "extend", "get", "update", "add", "pop", "items",
    "keys", "values", "format", "join", "split", "step", "reset", "render", "sample", "read",
    "write", "put", "copy", "numpy", "eval", "call"})


def call_bindings(target: FuncInfo, call: cst.Call) -> list[tuple[str, cst.BaseExpression]]:
    """(parameter, argument) pairs of a call of ``target`` (``self`` skipped for a method;
    nothing after a ``*args``/``**kwargs`` argument)."""
    node = target.node
    if node is None:
        return []
    params = [p.name.value for p in (*node.params.posonly_params, *node.params.params)]
    if target.class_name and params and params[0] in ("self", "cls"):
        params = params[1:]
    out: list[tuple[str, cst.BaseExpression]] = []
    i = 0
    for a in call.args:
        if a.star:
            return out
        if a.keyword is not None:
            out.append((a.keyword.value, a.value))
        elif i < len(params):
            out.append((params[i], a.value))
            i += 1
    return out


def method_owner(ctx: ModuleContext, site: CallSite) -> FuncInfo | None:
    """The module class method that ``obj.m(...)`` (not ``self.m``) calls: the one class of
    this module defining ``m``, when ``obj`` is bound to an instance of it (``agent =
    Agent()``, ``self.agent = Agent()``) or, for a name that is not a library method's
    (``_LIBRARY_METHODS``), when ``obj``'s binding is not seen (a parameter, a global)."""
    name, recv = site.method, site.receiver
    if name is None or recv is None or name.startswith("__"):
        return None
    if isinstance(recv, cst.Name) and recv.value in ("self", "cls"):
        return None  # :meth:`ModuleContext.resolve_local_function` resolves those
    owners = [cls for cls in ctx.classes.values() if name in cls.methods]
    if len(owners) != 1:
        return None
    cls = owners[0]
    values: list[cst.BaseExpression] = []
    if isinstance(recv, cst.Name):
        ev = ctx.last_assign(site.func, recv.value, site.seq)
        if ev is not None:
            if ev.kind != "assign" or ev.value is None:
                return None
            values.append(ev.value)
    elif (isinstance(recv, cst.Attribute) and isinstance(recv.value, cst.Name)
          and recv.value.value == "self" and site.func.class_name):
        own = ctx.classes.get(site.func.class_name)
        values.extend(ev.value for ev in (own.attr_assigns.get(recv.attr.value, [])
                                          if own is not None else []) if ev.value is not None)
    else:
        return None
    if values:
        if not all(isinstance(v, cst.Call) and isinstance(v.func, cst.Name)
                   and v.func.value == cls.name for v in values):
            return None
    elif name in _LIBRARY_METHODS:
        return None
    return cls.methods[name]


def called_per_iteration(ctx: ModuleContext) -> frozenset[int]:
    """Ids of same-module functions that run once per iteration of some loop: those of
    :func:`called_in_loop`, methods a loop calls on an instance (:func:`method_owner`:
    ``trainer.init_weights()`` per trial), the ``__init__`` of a module class instantiated in a
    loop, and, transitively, every same-module function these call (``act`` calls
    ``self._q(state)``, which predicts; a class instantiated there runs its ``__init__``). A
    module analysis: ``ctx.analysis(called_per_iteration)``."""
    seeds = set(ctx.analysis(called_in_loop))
    for site in ctx.calls:
        if not site.loops:
            continue
        owner = method_owner(ctx, site) if site.method else None
        if owner is None and site.simple_name is not None:
            cls = ctx.local_class(site)  # ``Trainer(cfg)`` per trial runs its ``__init__``
            owner = ctx.method(cls.name, "__init__") if cls is not None else None
        if owner is not None and owner is not site.func:
            seeds.add(id(owner))
    return frozenset(reached_from(ctx, seeds))


def reached_from(ctx: ModuleContext, seeds: Iterable[int]) -> dict[int, int]:
    """The same-module functions ``seeds`` (function ids) call, directly or through others,
    and the seeds themselves -> the seed each was first reached from (class instantiation
    reaches ``__init__``)."""
    by_id = {id(f): f for f in ctx.functions}
    out = {i: i for i in seeds if i in by_id}
    work = list(out)
    while work:
        start = work.pop()
        fn = by_id[start]
        for _, target in ctx.callees(fn):
            if id(target) not in out:
                out[id(target)] = out[start]
                work.append(id(target))
    return out


#: Calls that run a function argument once per item (``map(lambda f: ..., files)``,
#: ``df["path"].apply(lambda p: ...)``).
PER_ITEM_CALLS = frozenset({"map", "filter", "starmap", "imap", "apply", "applymap",
                            "transform", "sorted", "min", "max", "reduce"})


def lambda_repeats(ctx: ModuleContext) -> dict[int, tuple[str, frozenset[str], bool]]:
    """Calls inside a lambda that runs once per item or iteration -> (how, the lambda's
    parameters, whether it runs per item of a ``map``-like call rather than as a function
    called per iteration): a lambda passed to ``map``/``filter``/``.apply``/``sorted(key=...)``
    (``PER_ITEM_CALLS``), or bound to a name or ``self`` attribute that a loop, or a function
    run per iteration (:func:`called_per_iteration`), calls (``act = lambda s:
    model.predict(s)``; ``while ...: act(state)``). A module analysis."""
    out: dict[int, tuple[str, frozenset[str], bool]] = {}

    def collect(lam: cst.Lambda, how: str, per_item: bool) -> None:
        params = frozenset(p.name.value for p in (*lam.params.posonly_params,
                                                   *lam.params.params,
                                                   *lam.params.kwonly_params))
        todo: list[cst.CSTNode] = [lam.body]
        while todo:
            node = todo.pop()
            if isinstance(node, cst.Call):
                out.setdefault(id(node), (how, params, per_item))
            todo.extend(node.children)

    for site in ctx.calls:
        name = call_name(site.node.func)
        if name in PER_ITEM_CALLS:
            for a in site.node.args:
                if isinstance(a.value, cst.Lambda):
                    collect(a.value, f"a lambda run per item by {name}()", True)
    bound: dict[str, list[cst.Lambda]] = {}
    for fn in ctx.functions:
        for ev in fn.assigns:
            if ev.kind != "assign" or not isinstance(ev.value, cst.Lambda):
                continue
            target = ev.target
            if isinstance(target, cst.Name):
                bound.setdefault(target.value, []).append(ev.value)
            elif (isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name)
                  and target.value.value == "self"):
                bound.setdefault(f"self.{target.attr.value}", []).append(ev.value)
    if bound:
        repeated = ctx.analysis(called_per_iteration)
        for site in ctx.calls:
            func = site.node.func
            key = func.value if isinstance(func, cst.Name) else (
                f"self.{func.attr.value}" if isinstance(func, cst.Attribute) and isinstance(
                    func.value, cst.Name) and func.value.value == "self" else None)
            if key in bound and (site.loops or id(site.func) in repeated):
                for lam in bound[key]:
                    collect(lam, f"a lambda bound to {key}, called per iteration", False)
    return out


def repetition_via(ctx: ModuleContext) -> dict[int, str]:
    """Functions that run once per iteration other than by a direct call in a loop of this
    module -> how (a finding's ``via``): reached through other functions or an instance
    (:func:`called_per_iteration`), or called in a loop by another project module
    (:func:`~leakwatt.mining.rules.values.called_from_other_modules`), directly or through
    the same-module functions it calls. A module analysis."""
    direct = ctx.analysis(called_in_loop)
    repeated = ctx.analysis(called_per_iteration)
    remote = ctx.analysis(called_from_other_modules)
    by_id = {id(f): f for f in ctx.functions}
    out: dict[int, str] = {}
    for fid in repeated:
        if fid not in direct and fid in by_id:
            out[fid] = (f"{by_id[fid].qualname} runs once per loop iteration (called from a "
                        f"loop through another function or an instance)")
    for fid, seed in reached_from(ctx, remote).items():
        if fid in repeated:
            continue
        name = by_id[fid].qualname
        out[fid] = (f"{name} is called from a loop in {remote[fid]}" if fid == seed else
                    f"{name} is called by {by_id[seed].qualname}, which is called from a loop "
                    f"in {remote[seed]}")
    return out
