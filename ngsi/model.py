"""Request payloads to the internal entity form (see ``ngsi/__init__.py``), with Orion's checks.

Parsing is separate from storing: these functions only look at the payload, so the
broker can validate a whole request before it touches the store.

Orion reads a payload in two passes, and which error a faulty payload gets depends on
them: first the JSON *structure* of the whole payload, in payload order (JSON types of
fields, unknown fields, the shape of metadata, nesting depth, date formats, repeated
keys), and only then the *checks* of the entity (lengths and characters of ids, types
and names, forbidden characters in values). A payload with a fault of each kind reports
the structural one, wherever the other is. ``_parse_*`` functions are the first pass,
``_check_*`` the second.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .dates import parse_datetime
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

NESTING_ERROR = f"attribute or metadata value has overpassed maximum nesting limit: {MAX_NESTING}"


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


def _too_deep(value: Any) -> bool:
    """True when a compound value nests deeper than Orion's limit (iterative: values may nest thousands deep)."""
    todo: list[tuple[Any, int]] = [(value, 0)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, (dict, list)):
            level += 1
            if level > MAX_NESTING:
                return True
            children = item.values() if isinstance(item, dict) else item
            todo.extend((child, level) for child in children if isinstance(child, (dict, list)))
    return False


def check_nesting(value: Any) -> None:
    """Orion's JSON reader refuses deep values, so this is a ParseError, not a BadRequest."""
    if isinstance(value, (dict, list)) and _too_deep(value):
        raise BadRequest(NESTING_ERROR, error="ParseError")


def _date_value(value: Any, where: str) -> Any:
    """DateTime values are stored as epoch seconds; null stays null."""
    if value is None:
        return None
    if isinstance(value, str):
        seconds = parse_datetime(value)
        if seconds is not None:
            return seconds
    if isinstance(value, dict) and len(value) == 1:
        # An update operator ({"$min": "2025-04-15T10:59:59Z"}): its operand is the date.
        (operator, operand), = value.items()
        if operator in ("$min", "$max", "$set"):
            return {operator: _date_value(operand, where) if isinstance(operand, str) else operand}
    raise BadRequest(f"date has invalid format in {where}")


# -- repeated keys ---------------------------------------------------------------------------


class _Repeats(dict):  # type: ignore[type-arg]
    """A JSON object of the raw payload in which some keys appear more than once."""

    repeated: tuple[str, ...] = ()


# A JSON string followed by a colon: an object key. In valid JSON an unescaped quote
# followed by ':' only ends a key, and a match never spans an unescaped quote, so the
# matches are exactly the keys.
_KEY_BYTES = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"[ \t\n\r]*:', re.DOTALL)
_KEY_STR = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"[ \t\n\r]*:', re.DOTALL)


def _members(value: Any) -> int:
    """How many object members a parsed JSON tree holds (iterative: trees may be deep)."""
    count = 0
    todo = [value]
    while todo:
        item = todo.pop()
        if type(item) is dict:
            count += len(item)
            todo.extend(child for child in item.values() if type(child) is dict or type(child) is list)
        else:
            todo.extend(child for child in item if type(child) is dict or type(child) is list)
    return count


def duplicate_keys(raw: bytes | str | None, parsed: Any = None) -> Any:
    """The payload re-read with its repeated keys marked, or None when no object repeats a key.

    Orion's JSON reader keeps every member of an object, so it sees a repeated attribute
    or ``value`` key and refuses it; orjson (like any dict-building parser) keeps the last
    one silently. The stdlib reader with a pairs hook tells them apart at C speed; the
    marked tree is handed to ``parse_entity``/``parse_attrs`` as ``dups``.

    ``parsed``, the payload as already parsed, makes the common case cheap: when the raw
    text has as many keys as the tree has members, no key repeats and nothing is re-read.
    """
    if not raw:
        return None
    if type(parsed) is dict or type(parsed) is list:
        # Every key is followed by a colon, so fewer colons than members cannot be; as many
        # means no colon in a string and no repeated key. Otherwise count the keys themselves.
        members = _members(parsed)
        binary = isinstance(raw, (bytes, bytearray))
        if raw.count(b":" if binary else ":") == members:  # type: ignore[arg-type]
            return None
        if len((_KEY_BYTES if binary else _KEY_STR).findall(raw)) == members:  # type: ignore[arg-type]
            return None
    found = False

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        found = True
        seen: set[str] = set()
        repeated: list[str] = []
        for key, _ in pairs:
            if key in seen and key not in repeated:
                repeated.append(key)
            seen.add(key)
        marked = _Repeats(obj)
        marked.repeated = tuple(repeated)
        return marked

    try:
        tree = json.loads(raw, object_pairs_hook=hook)
    except (ValueError, RecursionError):
        return None  # not JSON, or too deep for the stdlib reader: other errors win anyway
    return tree if found else None


def _repeated(dups: Any) -> tuple[str, ...]:
    return dups.repeated if isinstance(dups, _Repeats) else ()


def _child(dups: Any, key: Any) -> Any:
    if isinstance(dups, dict):
        return dups.get(key)
    if isinstance(dups, list) and isinstance(key, int) and 0 <= key < len(dups):
        return dups[key]
    return None


# -- first pass: structure -------------------------------------------------------------------


def _json_string(value: Any, message: str) -> str:
    """A member the payload must give as a JSON string (an id, a type); else BadRequest(message)."""
    if not isinstance(value, str):
        raise BadRequest(message)
    return value


def _typed(value_type: str | None, value: Any, where: str) -> tuple[str, Any]:
    """Orion's reading of an attribute's or a metadata's type and value: a missing type is
    inferred from the value, and a date type's value is stored as epoch seconds."""
    if value_type is None:
        value_type = infer_type(value)
    if value_type in DATE_TYPES:
        value = _date_value(value, where)
    return value_type, value


def _parse_metadata(body: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(body, dict):
        raise BadRequest("metadata must be a JSON object")
    result: dict[str, dict[str, Any]] = {}
    for name, md in body.items():
        if not isinstance(md, dict):
            raise BadRequest("metadata must be a JSON object")
        md_type: str | None = None
        value: Any = None
        for key, item in md.items():
            if key == "type":
                md_type = _json_string(item, "invalid JSON type for attribute metadata type")
            elif key == "value":
                check_nesting(item)
                value = item
            else:
                raise BadRequest("invalid JSON field for attribute metadata")
        md_type, value = _typed(md_type, value, "metadata value")
        result[name] = {"type": md_type, "value": value}
    return result


def _parse_attr(body: Any, key_values: bool, dups: Any) -> dict[str, Any]:
    if key_values:
        check_nesting(body)
        return {"type": infer_type(body), "value": body, "md": {}}
    if not isinstance(body, dict):
        raise BadRequest("attribute must be a JSON object, unless keyValues option is used")
    attr_type: str | None = None
    value: Any = None
    md: dict[str, dict[str, Any]] = {}
    repeated = _repeated(dups)
    for key, item in body.items():
        if key == "type":
            attr_type = _json_string(item, "invalid JSON type for attribute type")
        elif key == "value":
            if key in repeated:
                raise BadRequest("duplicated value key in attribute")
            check_nesting(item)
            value = item
        elif key == "metadata":
            md = _parse_metadata(item)
        else:
            raise BadRequest("unrecognized property for context attribute")
    attr_type, value = _typed(attr_type, value, "attribute value")
    return {"type": attr_type, "value": value, "md": md}


def _parse_attr_member(name: str, body: Any, key_values: bool, dups: Any) -> dict[str, Any]:
    if name in _repeated(dups):
        raise BadRequest(f"duplicated attribute /{name}/")
    return _parse_attr(body, key_values, _child(dups, name))


# -- second pass: checks ---------------------------------------------------------------------


def _text_unrestricted(attr_type: str, md: dict[str, dict[str, Any]]) -> bool:
    return attr_type == TEXT_UNRESTRICTED or md.get(TEXT_UNRESTRICTED, {}).get("value") is True


def _check_metadata(md: dict[str, dict[str, Any]]) -> None:
    """Names, types and string values of metadata.

    Only a metadata value that is a string is checked for forbidden characters: Orion's
    metadata check looks at string values alone, so a structured metadata value
    (``{"field_value": "20.0'"}``) is stored as given. No metadata type lifts the check:
    ``TextUnrestricted`` frees attribute values only (orion-api.md, "General syntax
    restrictions").
    """
    for name, item in md.items():
        check_identifier("metadata name", name)
        check_identifier("metadata type", item["type"])
        if isinstance(item["value"], str):
            check_text_value(item["value"], "metadata value")


def _check_attr(name: str, attr: dict[str, Any]) -> None:
    check_identifier("attribute name", name)
    check_identifier("attribute type", attr["type"])
    if attr["type"] not in DATE_TYPES and not _text_unrestricted(attr["type"], attr["md"]):
        check_text_value(attr["value"], "attribute value")
    _check_metadata(attr["md"])


# -- public API ------------------------------------------------------------------------------


def parse_metadata(body: Any) -> dict[str, dict[str, Any]]:
    md = _parse_metadata(body)
    _check_metadata(md)
    return md


def make_attr(attr_type: str, value: Any, md: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Check a value against its type and build the attribute (without dates)."""
    check_nesting(value)
    if attr_type in DATE_TYPES:
        value = _date_value(value, "attribute value")
    elif not _text_unrestricted(attr_type, md):
        check_text_value(value, "attribute value")
    return {"type": attr_type, "value": value, "md": md}


def parse_attr(name: str, body: Any, *, key_values: bool = False, dups: Any = None) -> dict[str, Any]:
    """One attribute of a payload: ``{"type", "value", "metadata"}`` or, with keyValues, the bare value."""
    attr = _parse_attr(body, key_values, dups)
    _check_attr(name, attr)
    return attr


def parse_attrs(body: Any, *, key_values: bool = False, dups: Any = None) -> dict[str, dict[str, Any]]:
    """The attributes object of PATCH/POST/PUT /v2/entities/{id}/attrs."""
    if not isinstance(body, dict):
        raise BadRequest("attribute must be a JSON object")
    if not body:
        raise BadRequest("empty payload")
    attrs: dict[str, dict[str, Any]] = {}
    for name, value in body.items():
        if name == "id":
            raise BadRequest("entity id specified in payload")
        if name == "type":
            raise BadRequest("entity type specified in payload")
        attrs[name] = _parse_attr_member(name, value, key_values, dups)
    for name, attr in attrs.items():
        _check_attr(name, attr)
    return attrs


def parse_entity(
    body: Any, *, key_values: bool = False, id_pattern: bool = False, batch: bool = False, dups: Any = None
) -> dict[str, Any]:
    """An entity of POST /v2/entities or of a batch operation: id, type and attributes.

    ``batch``: an entity of /v2/op/update, which may name ``idPattern`` instead of ``id``
    and has its own messages for a missing id. ``id_pattern``: a batch action other than
    append, where an empty type means "any type" (implies ``batch``). ``dups`` is the
    matching node of ``duplicate_keys(raw)``.
    """
    batch = batch or id_pattern
    if not isinstance(body, dict):
        raise BadRequest("entity must be a JSON object")
    entity_id: str | None = None
    entity_type: str | None = None
    pattern: str | None = None
    attrs: dict[str, dict[str, Any]] = {}
    for name, value in body.items():
        if name == "id":
            entity_id = _json_string(value, "Invalid JSON type for entity id")
        elif name == "type":
            entity_type = _json_string(value, "Invalid JSON type for entity type")
        elif name == "idPattern" and batch:
            pattern = _json_string(value, "Invalid JSON type for entity idPattern")
        else:
            attrs[name] = _parse_attr_member(name, value, key_values, dups)
    if batch:
        if entity_id is None and pattern is None:
            raise BadRequest("nor /id/ nor /idPattern/ present")
        if not entity_id and not pattern:
            raise BadRequest("id and idPattern cannot be both empty at the same time")
    if entity_id is not None or not batch:
        check_identifier("entity id", entity_id or "")
    if entity_type is not None:
        check_identifier("entity type", entity_type, allow_empty=id_pattern)
    for name, attr in attrs.items():
        _check_attr(name, attr)
    result: dict[str, Any] = {"id": entity_id, "type": entity_type, "attrs": attrs}
    if pattern is not None:
        result["idPattern"] = pattern
    return result
