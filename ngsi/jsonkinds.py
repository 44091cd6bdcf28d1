"""Which JSON kind a decoded value is, for the places that name it in their own words.

JEXL's ``typeOf`` ("String", "Number"...), the IoT agents' JavaScript ``typeof``
("string", "number", "object") and MongoDB's type names in the update operators' errors
("int", "double", "array"...) all sort a value the same way first and only then differ
in the word they give it. ``json_kind`` does the sorting once; each caller keeps a small
table from kind to its word, with its own word for what is not JSON.
"""

from __future__ import annotations

from typing import Any, Final

# The kinds: JSON's types, with numbers split as Python has them (MongoDB names them apart).
NULL, BOOLEAN, INTEGER, FLOAT = "null", "boolean", "integer", "float"
STRING, ARRAY, OBJECT = "string", "array", "object"

# Exact types first (one dict lookup); the order matters for subclasses only: a bool is
# an int to ``isinstance``, so BOOLEAN must come before INTEGER.
_KINDS: Final[dict[type, str]] = {
    type(None): NULL, bool: BOOLEAN, int: INTEGER, float: FLOAT, str: STRING, list: ARRAY, dict: OBJECT,
}


def json_kind(value: Any) -> str | None:
    """``value``'s JSON kind (``NULL``, ``BOOLEAN``, ``INTEGER``, ``FLOAT``, ``STRING``,
    ``ARRAY``, ``OBJECT``), or None for anything else (a tuple, JEXL's undefined...).

    A subclass (an ``IntEnum``, an ``OrderedDict``) is of the kind of the JSON type it
    derives from, as ``isinstance`` tests would have it."""
    kind = _KINDS.get(type(value))
    if kind is None:
        for base, base_kind in _KINDS.items():
            if isinstance(value, base):
                return base_kind
    return kind
