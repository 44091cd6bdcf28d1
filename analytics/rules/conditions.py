"""Does an entity fall under a rule? Type, id or id pattern, service path, ``q``.

Entities arrive in NGSI-v2 normalized form (notifications); ``ngsi.query`` matches the
broker's internal form, so ``internal()`` converts once per change and every rule's
``q`` runs against the result with the broker's own semantics (typed comparisons,
DateTime values as epoch seconds, compound paths, metadata).

Service paths are hierarchical as in Orion (``/farm1/#`` covers ``/farm1/north``),
where Perseo compares the subservice as one opaque string (api.md, last paragraph
before "Notifications").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ngsi.dates import parse_datetime
from ngsi.model import DATE_TYPES
from ngsi.query import Query
from ngsi.regex import search
from ngsi.servicepath import covers

from .model import Subject

# Builtin attributes a notification may carry, and their entity fields in the internal form.
_BUILTIN_DATES: Final = {"dateCreated": "creDate", "dateModified": "modDate", "dateExpires": "expDate"}


def _date_or_value(attr_type: Any, value: Any) -> Any:
    if attr_type in DATE_TYPES and isinstance(value, str):
        seconds = parse_datetime(value)
        return value if seconds is None else seconds
    return value


def internal(entity: Mapping[str, Any], service_path: str) -> dict[str, Any]:
    """The internal form (``ngsi/__init__.py``) of a normalized entity, for ``Query.matches``."""
    attrs: dict[str, Any] = {}
    out: dict[str, Any] = {"id": entity.get("id"), "type": entity.get("type"), "servicePath": service_path,
                           "attrs": attrs}
    for name, body in entity.items():
        if name in ("id", "type"):
            continue
        if isinstance(body, Mapping):
            attr_type, value, raw_md = body.get("type", ""), body.get("value"), body.get("metadata")
        else:  # keyValues: the body is the value
            attr_type, value, raw_md = "", body, None
        md: dict[str, Any] = {}
        if isinstance(raw_md, Mapping):
            for md_name, md_body in raw_md.items():
                if isinstance(md_body, Mapping):
                    md[md_name] = {"type": md_body.get("type", ""),
                                   "value": _date_or_value(md_body.get("type"), md_body.get("value"))}
        value = _date_or_value(attr_type, value)
        if name in _BUILTIN_DATES:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[_BUILTIN_DATES[name]] = float(value)
            continue
        attrs[name] = {"type": attr_type, "value": value, "md": md}
    return out


def matches_query(query: Query | None, entity: dict[str, Any]) -> bool:
    """``query`` (None: always) on an internal-form entity."""
    return query is None or query.matches(entity)


def selects(subject: Subject, service_path: str, entity: dict[str, Any]) -> bool:
    """Is the internal-form ``entity`` at ``service_path`` one the rule looks at?

    The cheap tests run first; ``q`` last.
    """
    if subject.type is not None and entity.get("type") != subject.type:
        return False
    entity_id = entity.get("id")
    if subject.id is not None and entity_id != subject.id:
        return False
    if subject.id_pattern is not None and not (isinstance(entity_id, str) and search(subject.id_pattern, entity_id)):
        return False
    if not covers(subject.scopes, service_path):
        return False
    return matches_query(subject.q, entity)
