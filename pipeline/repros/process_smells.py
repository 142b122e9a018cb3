"""Training bodies and families of the catalogue's process smells (issue 14): UP and US
session-in-loop.

Each body follows the contract of :mod:`leakwatt.pipeline.repros.bodies` (a ``train`` function,
``record_leak`` once per round with the family's positive control, work counted in ``WORK``).
Importing this module registers its bodies in ``bodies.BODIES`` and its leak evidence in
``bodies.LEAK_EVIDENCE``; :mod:`leakwatt.pipeline.repros.pairs` turns :data:`FAMILY_SPECS` into
families and merges :data:`VARIANT_FAMILIES` into its rule-variant mapping.
"""

from __future__ import annotations

from typing import Any

from leakwatt.pipeline.repros import bodies

#: body name -> source (registered in bodies.BODIES below)
BODIES: dict[str, str] = {}
#: body prefix -> what record_leak counts
LEAK_EVIDENCE: dict[str, str] = {}
#: keyword arguments of pairs.Family, one dict per family
FAMILY_SPECS: tuple[dict[str, Any], ...] = ()
#: (rule, variant) -> the families that reproduce it
VARIANT_FAMILIES: dict[tuple[str, str], tuple[str, ...]] = {}

bodies.BODIES.update(BODIES)
bodies.LEAK_EVIDENCE.update(LEAK_EVIDENCE)
