"""Attribute values: their NGSI type, how they are cast, stored and given back.

Every stored value has an *effective* NGSI type, decided as QuantumLeap decides the
type of its column (``docs/history.md``, "Types"):

* a declared type QuantumLeap's translation table knows (``Number``, ``Integer``,
  ``Text``, ``Boolean``, ``DateTime`` with its alias ``ISO8601``, ``StructuredValue``,
  ``Array``, ``geo:point``, ``geo:json``; and Orion's other geo types ``geo:line``,
  ``geo:box``, ``geo:polygon``) is kept;
* any other type, or none at all (``keyValues`` notifications), is derived from the
  value (:func:`derive`, QuantumLeap's "derived from the value" rules).

The value is then cast to that type (:func:`cast`, QuantumLeap's casting table); what
does not cast is kept as a null, not refused, so one bad attribute never loses the
rest of a notification.

Storage is two columns whatever the type: ``num`` (a double: numbers, booleans as 0/1,
DateTime as epoch milliseconds) and ``txt`` (text, and JSON for structured values,
arrays and geometries). The effective type is part of a series' key (``model.py``), so
a value is always read back with the type it was stored with (:func:`decode`): an
attribute whose type changes starts a new series instead of being cast into the old
one, where QuantumLeap would null or reject it.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

import orjson

from ngsi.errors import NGSIError
from ngsi.geo import entity_location
from ngsi.numbers import parse_number

from .instants import format_instant, parse_instant

NUMBER, INTEGER, TEXT, BOOLEAN, DATETIME = "Number", "Integer", "Text", "Boolean", "DateTime"
STRUCTURED, ARRAY = "StructuredValue", "Array"
GEO_POINT, GEO_JSON = "geo:point", "geo:json"
GEO_LISTS: Final = frozenset({"geo:line", "geo:box", "geo:polygon"})
GEO_TYPES: Final = frozenset({GEO_POINT, GEO_JSON}) | GEO_LISTS
ALIASES: Final = {"ISO8601": DATETIME}
KNOWN: Final = frozenset({NUMBER, INTEGER, TEXT, BOOLEAN, DATETIME, STRUCTURED, ARRAY}) | GEO_TYPES
NUMERIC: Final = frozenset({NUMBER, INTEGER})  # what sum, avg, min and max apply to
IN_NUM: Final = frozenset({NUMBER, INTEGER, BOOLEAN, DATETIME})  # kept in ``num``; the rest in ``txt``
_JSON_TYPES: Final = frozenset({STRUCTURED, ARRAY, GEO_JSON}) | GEO_LISTS
# A full date and a time: "2020" or "12" alone are text, not instants, when deriving.
_INT64 = 2**63
_LOOKS_LIKE_INSTANT = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d", re.ASCII)

Stored = tuple[str, float | None, str | None]  # (effective type, num, txt)


def effective_type(declared: object, value: Any) -> str:
    """The type a value is stored with: the declared one when QuantumLeap knows it,
    else the one derived from the value."""
    if isinstance(declared, str):
        declared = ALIASES.get(declared, declared)
        if declared in KNOWN:
            return declared
    return derive(value, declared)


def derive(value: Any, declared: object = None) -> str:
    """QuantumLeap's type of a value whose type it does not know (using.md's rules),
    with one fix: a boolean is ``Boolean``, where Python's ``isinstance(True, int)``
    makes the listed order say ``Integer``."""
    if isinstance(value, list):
        return ARRAY
    if isinstance(value, dict):
        return DATETIME if declared == "Property" and value.get("@type") == "DateTime" else STRUCTURED
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float):
        return NUMBER
    if isinstance(value, str) and _LOOKS_LIKE_INSTANT.match(value) and parse_instant(value) is not None:
        return DATETIME
    return TEXT


def cast(declared: object, value: Any) -> Stored:
    """(effective type, num, txt) of one attribute value; a value that does not cast to
    its type is stored as a null of that type (QuantumLeap's casting table)."""
    kind = effective_type(declared, value)
    if kind == DATETIME and isinstance(value, dict) and "@value" in value:
        value = value["@value"]  # NGSI-LD's {"@type": "DateTime", "@value": ...}
    if value is None:
        return kind, None, None
    if kind in IN_NUM:
        return kind, _to_num(kind, value), None
    return kind, None, _to_txt(kind, value)


def _to_num(kind: str, value: Any) -> float | None:
    if kind == BOOLEAN:
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return 1.0 if value.strip().lower() == "true" else 0.0
        return None
    if kind == DATETIME:
        ms = parse_instant(value) if isinstance(value, str) else None
        return None if ms is None else float(ms)
    if isinstance(value, bool):
        return None
    number: float | int | None
    if isinstance(value, (int, float)):
        number = value
    elif isinstance(value, str):
        number = parse_number(value.strip())
    else:
        return None
    if number is None or not math.isfinite(number):
        return None
    if kind == INTEGER:
        whole = int(number)
        return float(whole) if -_INT64 <= whole < _INT64 else None  # a bigint, as QuantumLeap's column
    return float(number)


def _to_txt(kind: str, value: Any) -> str | None:
    if kind == TEXT:
        if isinstance(value, str):
            return _text(value)
        if isinstance(value, (dict, list)):
            return _json(value)
        return str(value)  # QuantumLeap's str(): 1.0 -> "1.0", True -> "True"
    if kind == GEO_POINT:
        return _text(value) if isinstance(value, str) else None
    if kind == GEO_JSON:
        return _json(value) if isinstance(value, dict) else None
    if kind in GEO_LISTS:
        return _json(value) if isinstance(value, list) else None
    # StructuredValue and Array: any JSON container
    return _json(value) if isinstance(value, (dict, list)) else None


def _text(value: str) -> str:
    """Text as every backend can keep it: PostgreSQL's text has no NUL, so U+0000 becomes
    U+FFFD (the replacement character) on all of them alike."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def decode(kind: str, num: float | None, txt: str | None) -> Any:
    """The JSON value of a stored one, as its type renders it."""
    if kind in IN_NUM:
        if num is None:
            return None
        if kind == NUMBER:
            return float(num)
        if kind == INTEGER:
            return int(num)
        if kind == BOOLEAN:
            return bool(num)
        return format_instant(int(num))
    if txt is None:
        return None
    if kind in _JSON_TYPES:
        return orjson.loads(txt)
    return txt


def location(kind: str, txt: str | None) -> dict[str, Any] | None:
    """The GeoJSON geometry (lon/lat) of a stored geo value, None when it has none."""
    if kind not in GEO_TYPES or txt is None:
        return None
    try:
        found = entity_location({"location": {"type": kind, "value": decode(kind, None, txt)}})
    except (NGSIError, ValueError, TypeError, KeyError):
        return None
    return None if found is None else found["geometry"]
