"""Perseo's ``${...}`` string substitution (plain_rules.md, "String substitution syntax").

The variables of an event are the entity's ``id`` and ``type``, each attribute's value
by name, and virtual fields the engine adds (``service``, ``subservice``, ``ruleName``,
window aggregates, no-signal fields). As in Perseo:

* ``${attr__metadata__md}`` is the value of metadata ``md`` of ``attr`` ("Metadata
  values"); ``${obj__key}`` and ``${array__0}`` walk into object and array values, one
  ``__`` per level ("JSON and Array fields in attributes").
* A variable that does not exist renders as ``[?]`` (perseo-fe's ``expandVar``).
* ``render_value`` is the "expanded to numerical, boolean or JSON stringified values"
  rule of update values and ``post`` ``json`` fields: a string that is exactly one
  placeholder becomes the variable's number, boolean or null (objects and arrays become
  their JSON text, as Perseo says native JSON is not supported).

Ours: ``render_json_text`` renders a ``post`` template whose Content-Type is JSON so that
the result stays valid JSON whatever the values: inside a string literal a value is
JSON-escaped, outside one it is a JSON literal. Nothing here raises on any entity.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final

UNKNOWN: Final = "[?]"
_PLACEHOLDER: Final = re.compile(r"\$\{([^{}]*)\}")
_MISSING: Any = object()
_JSON_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")

Vars = Mapping[str, Any]


def event_vars(entity: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The variables of an NGSI-v2 normalized entity: id, type, attribute values and
    ``attr__metadata__md`` for each metadata item, then ``extra`` (which wins)."""
    out: dict[str, Any] = {}
    for name, attr in entity.items():
        if name in ("id", "type"):
            out[name] = attr
        elif isinstance(attr, Mapping):
            out[name] = attr.get("value")
            metadata = attr.get("metadata")
            if isinstance(metadata, Mapping):
                for md_name, md in metadata.items():
                    out[f"{name}__metadata__{md_name}"] = md.get("value") if isinstance(md, Mapping) else md
        else:  # keyValues-style attribute: take it as the value
            out[name] = attr
    if extra:
        out.update(extra)
    return out


def lookup(variables: Vars, name: str) -> Any:
    """The value of ``name``, walking ``__`` suffixes into objects and arrays; ``_MISSING`` if none.

    The longest known prefix wins, so an attribute whose own name holds ``__`` is found.
    """
    if name in variables:
        return variables[name]
    parts = name.split("__")
    for k in range(len(parts) - 1, 0, -1):
        head = "__".join(parts[:k])
        if head in variables:
            return _descend(variables[head], parts[k:])
    return _MISSING


def _descend(value: Any, path: list[str]) -> Any:
    for key in path:
        if isinstance(value, Mapping):
            if key not in value:
                return _MISSING
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return _MISSING
    return value


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as null: JSON has no NaN or Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def to_json(value: Any) -> str:
    """Compact JSON text (as JavaScript's ``JSON.stringify``), never raising on JSON-like values."""
    try:
        return json.dumps(json_safe(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return "null"


def to_text(value: Any) -> str:
    """How a value reads inside a text, as JavaScript would print it."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    return to_json(value)


def render_text(template: str, variables: Vars) -> str:
    """Replace every ``${name}`` with the variable's text (``[?]`` when unknown)."""

    def one(match: re.Match[str]) -> str:
        value = lookup(variables, match.group(1))
        return UNKNOWN if value is _MISSING else to_text(value)

    return _PLACEHOLDER.sub(one, template)


def cast_text(text: str) -> Any:
    """A string that reads as a JSON number, boolean or null becomes that value (Perseo's
    cast of update values); anything else stays a string."""
    stripped = text.strip()
    if stripped == "true":
        return True
    if stripped == "false":
        return False
    if stripped == "null":
        return None
    if _JSON_NUMBER.match(stripped):
        number = float(stripped)
        if not math.isfinite(number):
            return text
        if number.is_integer() and re.fullmatch(r"-?[0-9]+", stripped):
            return int(stripped)
        return number
    return text


def render_value(template: Any, variables: Vars) -> Any:
    """Render a JSON value for an update value or a ``post`` ``json`` field.

    Strings are substituted; one that is exactly ``${name}`` keeps a number, boolean or
    null native; objects and arrays render their keys and values recursively.
    """
    if isinstance(template, str):
        match = _PLACEHOLDER.fullmatch(template)
        if match:
            value = lookup(variables, match.group(1))
            if value is _MISSING:
                return UNKNOWN
            if value is None or isinstance(value, (bool, int)):
                return value
            if isinstance(value, float):
                return value if math.isfinite(value) else None
            return to_text(value)
        return render_text(template, variables)
    if isinstance(template, Mapping):
        return {render_text(str(k), variables): render_value(v, variables) for k, v in template.items()}
    if isinstance(template, list):
        return [render_value(v, variables) for v in template]
    return template


def render_json_text(template: str, variables: Vars) -> str:
    """Substitute a JSON text template so that the result is JSON if the template is.

    A placeholder inside a string literal gets the value's text, JSON-escaped; outside
    one it gets the value as a JSON literal (``null`` when unknown), so that
    ``{"t": ${temperature}, "who": "${id}"}`` stays valid for any temperature and id.
    """
    out: list[str] = []
    in_string = False
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c == "$":
            match = _PLACEHOLDER.match(template, i)
            if match:
                value = lookup(variables, match.group(1))
                if in_string:
                    text = UNKNOWN if value is _MISSING else to_text(value)
                    out.append(json.dumps(text, ensure_ascii=False)[1:-1])
                else:
                    out.append("null" if value is _MISSING else to_json(value))
                i = match.end()
                continue
        out.append(c)
        if in_string and c == "\\" and i + 1 < n:
            out.append(template[i + 1])
            i += 2
            continue
        if c == '"':
            in_string = not in_string
        i += 1
    return "".join(out)
