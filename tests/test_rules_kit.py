"""The shared analysis kit: one definition of each predicate the rules share."""

from __future__ import annotations

import libcst as cst
import pytest

from leakwatt.mining.rules import ModuleContext
from leakwatt.mining.rules.kit import (
    DIR_STEPS,
    UTR_STEPS,
    bound_names,
    call_bindings,
    called_in_loop,
    called_per_iteration,
    is_param,
    lambda_repeats,
    method_owner,
    names_read,
    step_loop,
)
from leakwatt.mining.rules.values import ValueKinds, kinds_for


def _ctx(source: str) -> ModuleContext:
    return ModuleContext(cst.parse_module(source))


def test_is_param_covers_every_kind_of_parameter() -> None:
    ctx = _ctx("def f(a, /, b, *args, c, **kw):\n    pass\n")
    fn = ctx.module_funcs["f"]
    assert all(is_param(fn, n) for n in ("a", "b", "args", "c", "kw"))
    assert not is_param(fn, "d") and not is_param(ctx.module_func, "a")
    assert is_param(fn.node, "b")  # a FunctionDef works too
    assert not is_param(fn, "args", star=False) and not is_param(fn, "kw", star=False)


def test_name_helpers() -> None:
    expr = cst.parse_expression("(a, [b, c.d])")
    assert [n.value for n in bound_names(expr)] == ["a", "b"]
    read = cst.parse_expression("model.predict(x[i], verbose=v, fn=lambda q: q)")
    assert sorted(n.value for n in names_read(read)) == ["i", "model", "v", "x"]


def test_module_analyses_are_computed_once_and_typed() -> None:
    ctx = _ctx("def step(x):\n    return x\n\nfor i in range(3):\n    step(i)\n")
    first = ctx.analysis(called_in_loop)
    assert first is ctx.analysis(called_in_loop)  # memoised per module
    assert id(ctx.module_funcs["step"]) in first
    assert kinds_for(ctx) is ctx.analysis(ValueKinds)


LOOPS = """\
import tensorflow as tf

ds = tf.data.Dataset.from_tensor_slices([1, 2])


def f(xs, states, d, n_steps):
    for x in xs:
        pass
    for s in states:
        pass
    for k, v in d.items():
        pass
    for i in range(n_steps):
        pass
    for b in ds:
        pass
    for y in xs:
        with tf.GradientTape() as tape:
            pass
    for i in range(n_steps + 1):
        pass
    while True:
        break
    [z for z in states]
"""


@pytest.mark.parametrize(("index", "utr", "dir_"), [
    (0, False, False),  # for x in xs
    (1, False, True),   # states: one sample per iteration for DIR only
    (2, False, False),  # .items(): re-keys a mapping
    (3, True, False),   # range(n_steps): UTR looks into range's bound
    (4, True, True),    # a tf.data dataset
    (5, True, False),   # a GradientTape makes a training step (UTR)
    (6, True, False),   # n_steps + 1
    (7, True, True),    # while
    (8, False, True),   # a comprehension over states (DIR counts comprehensions)
])
def test_step_loop_policies(index: int, utr: bool, dir_: bool) -> None:
    ctx = _ctx(LOOPS)
    fn = ctx.module_funcs["f"]
    loop = fn.loops[index]
    kinds = kinds_for(ctx)
    assert step_loop(ctx, kinds, fn, loop, UTR_STEPS) is utr
    assert step_loop(ctx, kinds, fn, loop, DIR_STEPS) is dir_
    assert step_loop(ctx, kinds, fn, None, UTR_STEPS)  # a function called per step


PER_ITERATION = """
class Agent:
    def act(self, s):
        return self._q(s)

    def _q(self, s):
        return s

    def remember(self, s):
        pass

    def run(self, env):
        pass


class Env:
    def reset(self):
        return 0


def once():
    pass


agent = Agent()
for t in range(10):
    agent.act(t)
    agent.remember(t)
    env.reset()
    helper.run(t)
once()
"""


def test_called_per_iteration_follows_calls_and_instances() -> None:
    ctx = _ctx(PER_ITERATION)
    methods = ctx.classes["Agent"].methods
    repeated = ctx.analysis(called_per_iteration)
    # act (an inference name on a loop call), _q (called by act), remember (an Agent instance)
    assert {n for n, m in methods.items() if id(m) in repeated} == {"act", "_q", "remember"}
    # ``env.reset()``: env's binding is not seen and ``reset`` is a library method's name;
    # ``helper.run(t)``: likewise (``run``); once() is called outside any loop
    assert id(ctx.classes["Env"].methods["reset"]) not in repeated
    assert id(ctx.module_funcs["once"]) not in repeated
    assert id(methods["_q"]) not in ctx.analysis(called_in_loop)  # (only the closure has it)


def test_method_owner_needs_one_class_and_a_fitting_receiver() -> None:
    ctx = _ctx(PER_ITERATION + "other = make()\nfor t in range(3):\n    other.remember(t)\n")
    sites = {ctx.code(s.node): s for s in ctx.calls}
    assert method_owner(ctx, sites["agent.remember(t)"]) is ctx.classes["Agent"].methods[
        "remember"]
    assert method_owner(ctx, sites["other.remember(t)"]) is None  # bound to something else
    assert method_owner(ctx, sites["env.reset()"]) is None


def test_lambda_repeats_and_call_bindings() -> None:
    ctx = _ctx("ys = list(map(lambda f: model.predict(load(f)), files))\n"
               "act = lambda s: net.predict(s)\n"
               "while True:\n    act(state)\n"
               "once = lambda: net.predict(x)\n")
    found = ctx.analysis(lambda_repeats)
    by_code = {ctx.code(s.node): found.get(id(s.node)) for s in ctx.calls}
    assert by_code["model.predict(load(f))"] == ("a lambda run per item by map()",
                                                 frozenset({"f"}), True)
    assert by_code["net.predict(s)"] == ("a lambda bound to act, called per iteration",
                                         frozenset({"s"}), False)
    assert by_code["net.predict(x)"] is None  # bound, never called in a loop
    fn = _ctx("def f(a, b=1, *, c):\n    pass\n").module_funcs["f"]
    call = cst.parse_expression("f(1, c=3)")
    assert isinstance(call, cst.Call)
    assert [(p, cst.Module([]).code_for_node(v)) for p, v in call_bindings(fn, call)] == [
        ("a", "1"), ("c", "3")]


HELPERS = """\
import tensorflow as tf


def one_step(model, x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x) - y))
    opt.apply_gradients(zip(tape.gradient(loss, model.weights), model.weights))
    return loss


def whole_fit(model, batches):
    for x, y in batches:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x) - y))
        opt.apply_gradients(zip(tape.gradient(loss, model.weights), model.weights))
    return loss


def f(pairs, members):
    for x, y in pairs:
        one_step(net, x, y)
    for m in members:
        whole_fit(m, pairs)
"""


def test_a_loop_calling_a_one_step_helper_is_a_utr_step_loop() -> None:
    ctx = _ctx(HELPERS)
    fn = ctx.module_funcs["f"]
    kinds = kinds_for(ctx)
    per_batch, per_member = fn.loops
    assert step_loop(ctx, kinds, fn, per_batch, UTR_STEPS)
    assert not step_loop(ctx, kinds, fn, per_batch, DIR_STEPS)  # (DIR asks about its input)
    # a helper that loops over batches itself trains a whole model per call
    assert not step_loop(ctx, kinds, fn, per_member, UTR_STEPS)
