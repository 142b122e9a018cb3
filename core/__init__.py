"""leakwatt: what resource-leak smells in TensorFlow/Keras programs cost in energy and CO2.

This package is the ground floor of the installed namespace. The repository keeps its three
packages at the top level (``mining/``, ``pipeline/``, ``analysis/``) and setuptools maps them to
``leakwatt.mining``, ``leakwatt.pipeline`` and ``leakwatt.analysis`` (see ``pyproject.toml``); this
folder (``core/``) is ``leakwatt`` itself and holds what every package may import: the error type
and atomic writes (:mod:`leakwatt.common`), the params types (:mod:`leakwatt.params`) and the stage
table contracts (:mod:`leakwatt.contracts`). Nothing here imports ``mining``, ``pipeline`` or
``analysis``.
"""
