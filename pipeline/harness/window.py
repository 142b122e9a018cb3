"""The measured window's start signal: a program's ``ready()`` reaches the child through here.

The child runs the program in its own process (``runpy``) and names :func:`fire` in the
environment variable :data:`HOOK_ENV` as ``module:function``; the program's ``ready()`` imports
it and calls it once, right before its measured loop. A program run on its own (no variable set)
imports nothing of leakwatt. This module is deliberately tiny: it is imported into the measured
process and must not pull in anything else.
"""

from __future__ import annotations

from collections.abc import Callable

HOOK_ENV = "LEAKWATT_READY_HOOK"
HOOK = f"{__name__}:fire"

_callbacks: list[Callable[[], None]] = []


def on_ready(callback: Callable[[], None]) -> None:
    """Run ``callback`` when the program calls ``ready()``."""
    _callbacks.append(callback)


def fire() -> None:
    """Called by the program's ``ready()``; runs the registered callbacks once each."""
    while _callbacks:
        _callbacks.pop(0)()
