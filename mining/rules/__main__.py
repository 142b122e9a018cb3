"""``python -m leakwatt.mining.rules``: print the rule catalogue (docs/rules.md) to stdout."""

from __future__ import annotations

import sys

from leakwatt.mining.rules.catalogue import catalogue_markdown

sys.stdout.write(catalogue_markdown())
