"""DIR autofix: predict -> predict_on_batch only when the input is one batch."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from leakwatt.mining.rules import check_module, fix_source

_MODEL = "import numpy as np\nimport tensorflow as tf\nmodel = tf.keras.models.load_model('m.keras')\n"

NO_FIX = {
    "batch-size-kw": "for frame in frames:\n    p = model.predict(frame[None], batch_size=1)\n",
    "batch-size-positional": "for frame in frames:\n    p = model.predict(frame[None], 1)\n",
    "steps": "while True:\n    p = model.predict(state[None], steps=1)\n",
    "callbacks": "for frame in frames:\n    p = model.predict(frame[None], callbacks=[cb])\n",
    "x-keyword": "for frame in frames:\n    p = model.predict(x=frame[None])\n",
    "star-args": "for frame in frames:\n    p = model.predict(*frame)\n",
    "dataset-built-in-loop": "for chunk in chunks:\n"
                             "    d = tf.data.Dataset.from_tensor_slices(chunk).batch(8)\n"
                             "    p = model.predict(d)\n",
    "generator-name": "for epoch in range(3):\n    val_gen = make_gen()\n"
                      "    p = model.predict(val_gen)\n",
    "flow": "for frame in frames:\n    p = model.predict(datagen.flow(frame))\n",
    "local-generator": "def batches_of(x):\n    yield x\n\n"
                       "for frame in frames:\n    p = model.predict(batches_of(frame))\n",
    "wrapper-predict-whole-X": "class Wrapper:\n    def __init__(self):\n"
                               "        self.model = tf.keras.models.load_model('m.keras')\n\n"
                               "    def predict(self, X):\n        return self.model.predict(X)\n",
}


#: One ``predict`` over the same whole data set per outer iteration: batched inference once
#: per epoch, grid point, fold or model, not a pipeline per sample (not DIR).
WHOLE_SET = {
    "per-epoch": "for epoch in range(10):\n    model.fit(x, y)\n"
                 "    p = model.predict(x_val, verbose=0)\n",
    "per-grid-point-generator": "for lr in [0.1, 0.01]:\n    p = model.predict(val_gen)\n",
    "converted-slice": "for lr in rates:\n    p = model.predict(np.asarray(x_test[:500]))\n",
    "per-model": "for net in [model, model]:\n    p = net.predict(x_test, verbose=0)\n",
    "per-fold": "for tr, va in kf.split(X):\n    x_val = X[va]\n    p = model.predict(x_val)\n",
    "helper-per-epoch": "def score(net, data):\n    return net.predict(data).mean()\n\n"
                        "for epoch in range(5):\n    print(score(model, x_test))\n",
}
#: ... and its near misses: the input changes per iteration (reported).
PER_ITERATION = {
    "assigned-after-the-call": "x_in = x_test[-1:]\nfor hour in range(24):\n"
                               "    y = model.predict(x_in)\n    x_in = np.roll(x_in, 1)\n",
    "mutated-in-place": "for t in range(9):\n    p = model.predict(hist)\n    hist[0] = p\n",
    "indexed-by-the-loop": "for i in range(100):\n    p = model.predict(x_test[i:i + 1])\n",
    "split-words-not-folds": "for word in text.split():\n    p = model.predict(word)\n",
    "helper-per-sample": "def score(net, data):\n    return net.predict(data).mean()\n\n"
                         "for row in rows:\n    print(score(model, row))\n",
}


@pytest.mark.parametrize("body", list(WHOLE_SET.values()), ids=list(WHOLE_SET))
def test_whole_set_predicted_once_per_outer_iteration_is_not_reported(body: str) -> None:
    findings, _ = _findings_and_fixes(_MODEL + body)
    assert findings == [], [f.to_dict() for f in findings]


@pytest.mark.parametrize("body", list(PER_ITERATION.values()), ids=list(PER_ITERATION))
def test_input_that_changes_per_iteration_is_still_reported(body: str) -> None:
    findings, _ = _findings_and_fixes(_MODEL + body)
    assert [f.rule for f in findings] == ["DIR"], [f.to_dict() for f in findings]


def _findings_and_fixes(source: str):
    return check_module(cst.parse_module(source), "t.py", ["DIR"])


@pytest.mark.parametrize("body", list(NO_FIX.values()), ids=list(NO_FIX))
def test_predict_not_one_batch_is_reported_without_fix(body: str) -> None:
    source = _MODEL + body
    findings, fixes = _findings_and_fixes(source)
    assert any(f.training_api == "predict" for f in findings), findings
    assert fixes == []
    assert fix_source(source, "t.py", ["DIR"]) == (source, [])


def test_untyped_receiver_gets_no_fix() -> None:
    source = textwrap.dedent("""
        import tensorflow as tf

        class Agent:
            def act(self, state):
                return self.model.predict(state)
        """)
    findings, fixes = _findings_and_fixes(source)
    assert [f.variant for f in findings] == ["predict-in-inference-fn"]
    assert fixes == []


def test_dataset_in_loop_gets_no_fix() -> None:
    source = _MODEL + "for e in range(3):\n    d = tf.data.Dataset.from_tensor_slices(x).batch(4)\n"
    findings, fixes = _findings_and_fixes(source)
    assert [f.variant for f in findings] == ["dataset-in-loop"]
    assert fixes == []


@pytest.mark.parametrize(("before", "after"), [
    ("model.predict(state.reshape(1, -1))", "model.predict_on_batch(state.reshape(1, -1))"),
    ("model.predict(np.reshape(s, (1, 4)), verbose=False)",
     "model.predict_on_batch(np.reshape(s, (1, 4)))"),
    ("model.predict(np.array([s]))", "model.predict_on_batch(np.array([s]))"),
    ("model.predict(s[np.newaxis], verbose = 0)", "model.predict_on_batch(s[np.newaxis])"),
    ("model.predict(s[None, ...])", "model.predict_on_batch(s[None, ...])"),
])
def test_explicit_single_sample_is_fixed_and_rescans_clean(before: str, after: str) -> None:
    source = _MODEL + f"while not done:\n    q = {before}\n    s = step(q)\n"
    fixed, fixed_findings = fix_source(source, "t.py", ["DIR"])
    assert len(fixed_findings) == 1
    assert fixed == source.replace(before, after)
    assert _findings_and_fixes(fixed) == ([], [])


def test_only_the_one_batch_call_is_fixed() -> None:
    source = _MODEL + ("for epoch in range(5):\n"
                       "    for xb in train_batches:\n"
                       "        p = model.predict(xb)\n"
                       "    v = model.predict(x_val)\n")
    fixed, fixed_findings = fix_source(source, "t.py", ["DIR"])
    assert [f.line for f in fixed_findings] == [6]
    assert "p = model.predict_on_batch(xb)\n" in fixed
    assert "v = model.predict(x_val)\n" in fixed  # (a whole set per epoch: not reported)
    findings, _ = _findings_and_fixes(fixed)
    assert findings == []
