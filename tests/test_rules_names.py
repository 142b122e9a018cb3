"""Name resolution from imports and alias assignments, and the rules using it."""

from __future__ import annotations

import libcst as cst
import pytest

from leakwatt.mining.rules import check_module
from leakwatt.mining.rules.context import ModuleContext
from leakwatt.mining.rules.names import canonical
from leakwatt.mining.scan import scan_source


@pytest.mark.parametrize(("raw", "expected"), [
    ("tensorflow.keras.models.Sequential", "keras.models.Sequential"),
    ("tf_keras.Sequential", "keras.Sequential"),
    ("keras.src.models.sequential.Sequential", "keras.models.sequential.Sequential"),
    ("tensorflow.compat.v1.Session", "tensorflow.Session"),
    ("tensorflow.compat.v1.keras.backend.clear_session", "keras.backend.clear_session"),
    ("tensorflow.python.keras.backend", "keras.backend"),
    ("numpy.asarray", "numpy.asarray"),
])
def test_canonical(raw: str, expected: str) -> None:
    assert canonical(raw) == expected


@pytest.mark.parametrize(("header", "call", "expected"), [
    ("import tensorflow as tf", "tf.keras.Sequential", "keras.Sequential"),
    ("from tensorflow import keras", "keras.models.Model", "keras.models.Model"),
    ("import keras", "keras.Sequential", "keras.Sequential"),
    ("from keras import backend as K", "K.clear_session", "keras.backend.clear_session"),
    ("import tensorflow as tf\nK = tf.keras.backend", "K.clear_session",
     "keras.backend.clear_session"),
    ("import tensorflow.compat.v1 as tf", "tf.Session", "tensorflow.Session"),
    ("import tf_keras", "tf_keras.models.load_model", "keras.models.load_model"),
    ("from keras.src.models import Sequential", "Sequential", "keras.models.Sequential"),
    ("from tensorflow.keras.models import Sequential as Seq", "Seq", "keras.models.Sequential"),
    ("from tensorflow.keras.models import *", "Sequential", "keras.models.Sequential"),
    ("import numpy as np", "tf.Session", None),
])
def test_resolver(header: str, call: str, expected: str | None) -> None:
    ctx = ModuleContext(cst.parse_module(f"{header}\n{call}()\n"))
    assert ctx.calls[-1].qn == expected


ALIASES = [
    "import tensorflow as tf\nSeq = tf.keras.Sequential",
    "from tensorflow.keras.models import Sequential as Seq",
    "import tf_keras as k\nSeq = k.Sequential",
    "from keras.src.models import Sequential as Seq",
    "import tensorflow.compat.v1 as v1\nSeq = v1.keras.Sequential",
]


@pytest.mark.parametrize("header", ALIASES)
def test_imr_fires_for_every_import_spelling(header: str) -> None:
    src = f"{header}\nfor i in range(3):\n    m = Seq()\n    m.fit(x, y)\n"
    assert [f.rule for f in scan_source(src, rules=["IMR"])] == ["IMR"]


@pytest.mark.parametrize("clear", [
    "import tensorflow as tf\nK = tf.keras.backend\nclear = K.clear_session",
    "from tensorflow.keras.backend import clear_session as clear",
    "import tensorflow.compat.v1 as tf\nclear = tf.reset_default_graph",
    "from tf_keras.backend import clear_session as clear",
])
def test_clear_session_under_any_alias_silences_imr(clear: str) -> None:
    src = (f"{clear}\nimport keras\nfor i in range(3):\n    clear()\n"
           "    m = keras.Sequential()\n    m.fit(x, y)\n")
    findings, _ = check_module(cst.parse_module(src), "t.py", ["IMR"])
    assert findings == []


def test_same_named_function_from_other_library_is_not_a_model() -> None:
    src = ("import tensorflow as tf\nfrom mylib import Sequential, load_model\n"
           "for i in range(3):\n    m = Sequential()\n    n = load_model(p)\n")
    assert scan_source(src) == []
