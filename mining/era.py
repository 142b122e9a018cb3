"""Which TensorFlow era a source file belongs to: TF1 graph-mode code or TF2 eager code.

Issue 14's smells (UGE's graph variants, GCB, session pile-up) live in TF1-era code, so mined
instances record the era of the file they were found in, and prevalence can be split by it.
The era is read from the file's text (imports and APIs), once per file:

* ``tf1``: the file imports TensorFlow or Keras and uses a TF1 graph-mode API:
  ``Session``/``InteractiveSession``, ``placeholder``, ``tf.compat.v1``,
  ``disable_eager_execution``,
  ``disable_v2_behavior``, ``get_session``/``set_session``, ``sess.run(``, ``tf.contrib``,
  ``reset_default_graph``, ``global_variables_initializer``.
* ``tf2``: it imports TensorFlow or Keras (``keras``, ``tf_keras``, ``scikeras``) and uses none
  of those: eager code, including Keras code that never touches a session.
* ``""``: it mentions neither (no era can be told).

A plain text test rather than the detectors' name resolution: it must cost next to nothing per
file, it works on notebooks' JSON as it stands, and a TF1 API named in a comment of TF2 code
is rare enough not to matter for a per-era prevalence split.
"""

from __future__ import annotations

import re

TF1 = "tf1"
TF2 = "tf2"
ERAS = (TF1, TF2, "")

_TF1_API = re.compile(
    r"\b(?:InteractiveSession|Session\s*\(|placeholder(?:_with_default)?\s*\(|compat\.v1\b|"
    r"disable_eager_execution|disable_v2_behavior|get_session\s*\(|set_session\s*\(|"
    r"sess(?:ion)?\.run\s*\(|tf\.contrib\b|reset_default_graph|global_variables_initializer|"
    r"initialize_all_variables)")
_TF_IMPORT = re.compile(
    r"\b(?:import|from)\s+(?:tensorflow|keras|tf_keras|scikeras)\b")


def source_era(text: str | bytes) -> str:
    """``tf1``, ``tf2`` or ``""`` for one file's text (see the module docstring)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not _TF_IMPORT.search(text):
        return ""
    return TF1 if _TF1_API.search(text) else TF2
