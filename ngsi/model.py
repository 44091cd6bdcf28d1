"""Request payloads to the internal entity form (see ``ngsi/__init__.py``), with Orion's checks.

Parsing is separate from storing: these functions only look at the payload, so the
broker can validate a whole request before it touches the store.
"""

from __future__ import annotations

from typing import Any

from .errors import BadRequest
from .names import check_identifier, check_text_value

DEFAULT_ENTITY_TYPE = "Thing"
MAX_NESTING = 50
DATE_TYPES = ("DateTime", "ISO8601")
TEXT_UNRESTRICTED = "TextUnrestricted"

# Builtin attributes: computed from the entity, shown only when asked for.
BUILTIN_ATTRS = ("dateCreated", "dateModified", "dateExpires")
# Builtin metadata: computed, shown only when asked for (previousValue and actionType appear
# only in notifications).
BUILTIN_METADATA = ("dateCreated", "dateModified", "previousValue", "actionType")


def infer_type(value: Any) -> str:
    """Orion's default type for a value given without one."""
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, (int, float)):
        return "Number"
    if isinstance(value, str):
        return "Text"
    if value is None:
        return "None"
    return "StructuredValue"


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_NESTING:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def check_nesting(value: Any) -> None:
    if isinstance(value, (dict, list)) and _depth(value) > MAX_NESTING:
        raise BadRequest(f"attribute or metadata value has overpassed maximum nesting limit: {MAX_NESTING}")


def _date_value(value: Any, where: str) -> Any:
    """DateTime values are stored as epoch seconds; null stays null."""
    if value is None:
        return None
    from .dates import parse_datetime

    if isinstance(value, str):
        seconds = parse_datetime(value)
        if seconds is not None:
            return seconds
    raise BadRequest(f"date has invalid format in {where}")


def parse_metadata(body: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(body, dict):
        raise BadRequest("metadata must be a JSON object")
    result: dict[str, dict[str, Any]] = {}
    for name, md in body.items():
        check_identifier("metadata name", name)
        if not isinstance(md, dict):
            md_type, value = infer_type(md), md
        else:
            for key in md:
                if key not in ("type", "value"):
                    raise BadRequest("unrecognized property for context attribute")
            value = md.get("value")
            md_type = md.get("type")
            if md_type is None:
                md_type = infer_type(value)
            elif not isinstance(md_type, str):
                raise BadRequest("invalid JSON type for metadata type")
            else:
                check_identifier("metadata type", md_type)
        check_nesting(value)
        if md_type in DATE_TYPES:
            value = _date_value(value, "metadata value")
        elif md_type != TEXT_UNRESTRICTED:
            check_text_value(value, "metadata value")
        result[name] = {"type": md_type, "value": value}
    return result


def _text_unrestricted(attr_type: str, md: dict[str, dict[str, Any]]) -> bool:
    return attr_type == TEXT_UNRESTRICTED or md.get(TEXT_UNRESTRICTED, {}).get("value") is True


def make_attr(attr_type: str, value: Any, md: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Check a value against its type and build the attribute (without dates)."""
    check_nesting(value)
    if attr_type in DATE_TYPES:
        value = _date_value(value, "attribute value")
    elif not _text_unrestricted(attr_type, md):
        check_text_value(value, "attribute value")
    return {"type": attr_type, "value": value, "md": md}


def parse_attr(name: str, body: Any, *, key_values: bool = False) -> dict[str, Any]:
    """One attribute of a payload: ``{"type", "value", "metadata"}`` or, with keyValues, the bare value."""
    check_identifier("attribute name", name)
    if key_values:
        return make_attr(infer_type(body), body, {})
    if not isinstance(body, dict):
        raise BadRequest("attribute must be a JSON object, unless keyValues option is used")
    for key in body:
        if key not in ("type", "value", "metadata"):
            raise BadRequest("unrecognized property for context attribute")
    value = body.get("value")
    attr_type = body.get("type")
    if attr_type is None:
        attr_type = infer_type(value)
    elif not isinstance(attr_type, str):
        raise BadRequest("invalid JSON type for attribute type")
    else:
        check_identifier("attribute type", attr_type)
    md = parse_metadata(body["metadata"]) if "metadata" in body else {}
    return make_attr(attr_type, value, md)


def parse_attrs(body: Any, *, key_values: bool = False) -> dict[str, dict[str, Any]]:
    """The attributes object of PATCH/POST/PUT /v2/entities/{id}/attrs."""
    if not isinstance(body, dict):
        raise BadRequest("attribute must be a JSON object")
    if "id" in body:
        raise BadRequest("entity id specified in payload")
    if "type" in body:
        raise BadRequest("entity type specified in payload")
    return {name: parse_attr(name, value, key_values=key_values) for name, value in body.items()}


def parse_entity(body: Any, *, key_values: bool = False, id_pattern: bool = False) -> dict[str, Any]:
    """An entity of POST /v2/entities or of a batch operation: id, type and attributes.

    ``id_pattern`` allows ``idPattern`` instead of ``id`` (batch update by pattern).
    """
    if not isinstance(body, dict):
        raise BadRequest("entity must be a JSON object")
    entity_id = body.get("id")
    pattern = body.get("idPattern") if id_pattern else None
    if "id" in body and not isinstance(entity_id, str):
        raise BadRequest("Invalid JSON type for entity id")
    if "type" in body and not isinstance(body["type"], str):
        raise BadRequest("Invalid JSON type for entity type")
    if entity_id is None and pattern is None:
        raise BadRequest("entity id not found" if not id_pattern else "nor /id/ nor /idPattern/ present")
    if entity_id is not None:
        check_identifier("entity id", entity_id)
    entity_type = body.get("type")
    if entity_type is not None:
        check_identifier("entity type", entity_type, allow_empty=id_pattern)
    attrs = {}
    for name, value in body.items():
        if name in ("id", "type") or (id_pattern and name == "idPattern"):
            continue
        attrs[name] = parse_attr(name, value, key_values=key_values)
    result: dict[str, Any] = {"id": entity_id, "type": entity_type, "attrs": attrs}
    if pattern is not None:
        result["idPattern"] = pattern
    return result
