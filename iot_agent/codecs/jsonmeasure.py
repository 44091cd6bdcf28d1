"""IoT Agent JSON payloads (iotagent-json ``docs/usermanual.md``).

* Measures: a flat JSON object (one measure) or an array of objects
  (multimeasure); each object is one measure dict.  Any other JSON, an empty
  array or invalid JSON is a ``ParseError``.
* One attribute (``/iot/json/attrs/<attr>``, MQTT ``.../attrs/<attr>``):
  JSON when it parses, otherwise UTF-8 text over HTTP ``text/plain`` and a hex
  string for ``application/octet-stream`` or non-JSON MQTT bytes (the agent's
  fix for json#609).
* Commands: the agent sends ``{"<cmd>": value}``; the device answers
  ``{"<cmd>": result}`` on ``/cmdexe`` or ``/iot/json/commands``.
* Configuration request: ``{"type": "configuration"|"subscription", "fields": [...]}``.
"""

from __future__ import annotations

import json
from typing import Any

from iot_agent.codecs import payload_text
from iot_agent.errors import ParseError

__all__ = [
    "load_json",
    "parse_measures",
    "parse_attribute_value",
    "format_command",
    "parse_command_results",
    "parse_configuration",
]


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def load_json(data: str | bytes) -> Any:
    """Strict JSON (no NaN/Infinity); ``ParseError`` otherwise."""
    text = payload_text(data)
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ParseError("payload is not valid JSON") from None


def parse_measures(data: str | bytes | Any) -> list[dict[str, Any]]:
    """Object -> ``[obj]``; array of objects -> list.  Text/bytes are JSON-decoded first."""
    doc = load_json(data) if isinstance(data, (str, bytes, bytearray)) else data
    if isinstance(doc, dict):
        return [doc]
    if isinstance(doc, list):
        if not doc:
            raise ParseError("empty array of measures")
        if not all(isinstance(m, dict) for m in doc):
            raise ParseError("every element of a measure array must be an object")
        return list(doc)
    raise ParseError("a measure payload must be a JSON object or an array of objects")


def parse_attribute_value(data: bytes, content_type: str | None = None) -> Any:
    """The value of a single-attribute message (see the module doc)."""
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if ctype == "application/octet-stream":
        return bytes(data).hex()
    try:
        return load_json(data)
    except ParseError:
        pass
    if ctype in ("text/plain", "application/json"):
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(data).hex()
    return bytes(data).hex()


def format_command(command: str, value: Any) -> dict[str, Any]:
    """The JSON the agent sends to the device for one command."""
    return {command: value}


def parse_command_results(data: str | bytes | Any) -> list[tuple[str, Any]]:
    """``{"cmd": result, ...}`` -> [(cmd, result), ...] (an object with at least one key)."""
    doc = load_json(data) if isinstance(data, (str, bytes, bytearray)) else data
    if not isinstance(doc, dict) or not doc:
        raise ParseError("a command result must be a non-empty JSON object")
    return list(doc.items())


def parse_configuration(data: str | bytes | Any) -> tuple[str, list[str]]:
    """``{"type": "configuration", "fields": ["a"]}`` -> ("configuration", ["a"])."""
    doc = load_json(data) if isinstance(data, (str, bytes, bytearray)) else data
    if not isinstance(doc, dict):
        raise ParseError("a configuration request must be a JSON object")
    kind, fields = doc.get("type"), doc.get("fields")
    if kind not in ("configuration", "subscription"):
        raise ParseError("configuration 'type' must be 'configuration' or 'subscription'")
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields):
        raise ParseError("configuration 'fields' must be a non-empty array of names")
    return kind, list(fields)
