"""JSON in and out of the broker, Orion's way: one import point for routes (see ngsi.jsonout),
and the checks of request members every payload parser makes."""

from __future__ import annotations

from typing import Any, TypeVar

from ngsi.errors import BadRequest
from ngsi.jsonout import dumps, loads

__all__ = ["dumps", "loads", "member", "required"]

T = TypeVar("T")


def _of(value: Any, wanted: type[T]) -> bool:
    """``value`` is a JSON ``wanted``: true/false are no numbers here, as in JSON."""
    return isinstance(value, wanted) and not (isinstance(value, bool) and wanted is not bool)


def member(obj: dict[str, Any], key: str, wanted: type[T], error: str) -> T | None:
    """``obj[key]``, None when the member is absent; BadRequest(``error``) when it is there
    but not a ``wanted`` (``null`` included: given, it must be of the type)."""
    if key not in obj:
        return None
    value = obj[key]
    if not _of(value, wanted):
        raise BadRequest(error)
    return value


def required(obj: dict[str, Any], key: str, wanted: type[T], missing: str, wrong: str) -> T:
    """``obj[key]``, which must be there: BadRequest(``missing``) when it is absent or
    ``null``, BadRequest(``wrong``) when it is not a ``wanted``."""
    value = obj.get(key)
    if value is None:
        raise BadRequest(missing)
    if not _of(value, wanted):
        raise BadRequest(wrong)
    return value
