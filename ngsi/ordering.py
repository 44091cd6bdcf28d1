"""MongoDB's order of values, which Orion's sorting and update operators ($min, $max) follow.

Null < numbers < strings < objects < arrays < booleans; within a kind, the natural order
(objects and arrays element by element).
"""

from __future__ import annotations

from typing import Any


# BSON canonical type order: null < numbers < strings < objects < arrays < booleans.
def _rank(value: Any) -> int:
    if value is None:
        return 1
    if isinstance(value, bool):
        return 8
    if isinstance(value, (int, float)):
        return 2
    if isinstance(value, str):
        return 3
    if isinstance(value, dict):
        return 4
    return 5  # list


def compare(a: Any, b: Any) -> int:
    """-1, 0 or 1, the way MongoDB orders two values."""
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 1:
        return 0
    if ra == 4:
        for (ka, va), (kb, vb) in zip(a.items(), b.items()):
            if ka != kb:
                return -1 if ka < kb else 1
            c = compare(va, vb)
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    if ra == 5:
        for va, vb in zip(a, b):
            c = compare(va, vb)
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    return (a > b) - (a < b)
