"""Payload parsing: Orion's two passes (structure, then checks) and their error texts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ngsi.errors import BadRequest
from ngsi.model import duplicate_keys, parse_attr, parse_attrs, parse_entity


def error(call: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(BadRequest) as info:
        call(*args, **kwargs)
    return info.value.error, info.value.description


def entity_error(body: Any, **kwargs: Any) -> str:
    return error(parse_entity, body, **kwargs)[1]


def test_plain_entity() -> None:
    parsed = parse_entity({"id": "E", "type": "T", "A": {"value": 1}, "B": {"type": "DateTime", "value": "2020-01-01T00:00:00Z"}})
    assert parsed["id"] == "E" and parsed["type"] == "T"
    assert parsed["attrs"]["A"] == {"type": "Number", "value": 1, "md": {}}
    assert parsed["attrs"]["B"]["value"] == 1577836800.0


def test_key_values() -> None:
    parsed = parse_entity({"id": "E", "A": "x", "B": {"y": 1}}, key_values=True)
    assert parsed["type"] is None
    assert parsed["attrs"]["A"]["type"] == "Text"
    assert parsed["attrs"]["B"]["type"] == "StructuredValue"


def test_missing_id() -> None:
    assert entity_error({}) == "entity id length: 0, min length supported: 1"
    assert entity_error({"type": "T", "A": 1}, key_values=True) == "entity id length: 0, min length supported: 1"
    assert entity_error({"type": "T"}, batch=True) == "nor /id/ nor /idPattern/ present"
    assert entity_error({"id": ""}, batch=True) == "id and idPattern cannot be both empty at the same time"


def test_json_types() -> None:
    assert entity_error({"id": True}) == "Invalid JSON type for entity id"
    assert entity_error({"id": "E", "type": 19}) == "Invalid JSON type for entity type"
    assert entity_error({"id": "E", "A": {"type": False}}) == "invalid JSON type for attribute type"
    assert entity_error({"id": "E", "A": 1}) == "attribute must be a JSON object, unless keyValues option is used"
    assert entity_error({"id": "E", "A": {"value": 1, "x": 1}}) == "unrecognized property for context attribute"


def test_metadata_structure() -> None:
    md = lambda m: {"id": "E", "A": {"value": 1, "metadata": m}}  # noqa: E731
    assert entity_error(md({"m": 14})) == "metadata must be a JSON object"
    assert entity_error(md({"m": {"type": False}})) == "invalid JSON type for attribute metadata type"
    assert entity_error(md({"m": {"value": 3, "invalid": True}})) == "invalid JSON field for attribute metadata"
    assert entity_error(md({"m": {"type": "DateTime", "value": "x"}})) == "date has invalid format in metadata value"


def test_structure_before_checks() -> None:
    """A structural fault wins over a check fault, wherever each is in the payload."""
    body = {"id": "E<", "A": {"type": "(bad)", "value": 1}, "B": {"value": 1, "oops": 1}}
    assert entity_error(body) == "unrecognized property for context attribute"
    # metadata shape before the attribute's own date value (1110)
    body = {"id": "E", "A": {"type": "DateTime", "value": 19, "metadata": {"m": 10}}}
    assert entity_error(body) == "metadata must be a JSON object"


def test_checks() -> None:
    assert entity_error({"id": "E<"}) == "Invalid characters in entity id"
    assert entity_error({"id": "x" * 257}) == "entity id length: 257, max length supported: 256"
    assert entity_error({"id": "E", "type": ""}) == "entity type length: 0, min length supported: 1"
    assert parse_entity({"id": "E", "type": ""}, id_pattern=True)["type"] == ""
    assert entity_error({"id": "E", "A": {"value": "a<b"}}) == "Invalid characters in attribute value"
    assert entity_error({"id": "E", "A": {"value": 1, "metadata": {"m": {"type": ": B", "value": 1}}}}) == (
        "Invalid characters in metadata type"
    )


def test_text_unrestricted_is_recursive() -> None:
    value = {"(A)": "(A)", "(B)": {"(A)": "(A)"}, "(C)": ["(A)"]}
    parsed = parse_entity({"id": "E", "A": {"type": "TextUnrestricted", "value": value}})
    assert parsed["attrs"]["A"]["value"] == value
    assert entity_error({"id": "E", "A": {"type": "T", "value": {"x": ["(A)"]}}}) == "Invalid characters in attribute value"


def test_nesting_is_a_parse_error() -> None:
    deep: Any = 1
    for _ in range(2000):
        deep = [deep]
    body = {"id": "E", "A": {"type": ": bad", "value": deep}}
    kind, text = error(parse_entity, body)
    assert (kind, text) == ("ParseError", "attribute or metadata value has overpassed maximum nesting limit: 50")


def test_attrs_payload() -> None:
    assert error(parse_attrs, {})[1] == "empty payload"
    assert error(parse_attrs, {"id": "E"})[1] == "entity id specified in payload"
    assert error(parse_attrs, {"type": "T"})[1] == "entity type specified in payload"
    assert parse_attrs({"A": {"value": {"$inc": 1}}})["A"]["value"] == {"$inc": 1}


def test_single_attr() -> None:
    assert parse_attr("A", {}) == {"type": "None", "value": None, "md": {}}
    assert error(parse_attr, "A<", {"value": 1})[1] == "Invalid characters in attribute name"


def test_duplicate_keys() -> None:
    raw = '{"id": "E1", "type": "T1", "attr": "value", "attr": 1}'
    body = json.loads(raw)
    assert error(parse_entity, body, key_values=True, dups=duplicate_keys(raw))[1] == "duplicated attribute /attr/"
    raw = '{"id": "E", "A": {"type": "T", "value": 1, "value": 2, "metadata": {"m": {"type": ": x", "value": 1}}}}'
    assert error(parse_entity, json.loads(raw), dups=duplicate_keys(raw))[1] == "duplicated value key in attribute"
    raw = '{"A": {"value": 1}, "A": {"value": 2}}'
    assert error(parse_attrs, json.loads(raw), dups=duplicate_keys(raw))[1] == "duplicated attribute /A/"


def test_duplicate_keys_only_where_orion_sees_them() -> None:
    assert duplicate_keys(b'{"id": "E", "A": {"value": 1}}') is None
    assert duplicate_keys(b"not json") is None
    assert duplicate_keys(b"") is None
    raw = '{"id": "E", "A": {"value": {"x": 1, "x": 2}}}'
    assert parse_entity(json.loads(raw), dups=duplicate_keys(raw))["attrs"]["A"]["value"] == {"x": 2}


@pytest.mark.parametrize(
    ("raw", "repeats"),
    [
        (b'{"a":1,"a":2}', True), (b'{"a":{"value":1,"value":2}}', True), (b'{"a":"x\\":","b":1}', False),
        (b'{"k":"\\\\","k":1}', True), (b'{"a\\"b":1, "c" : {"d":[{"e":1},{"e":2,"e":3}]}}', True),
        (b'[{"":1},{"":2,"":3}]', True), (b'{"":1}', False), (b'{"a":"1:2","b":"3"}', False),
        (b'{"a":"1:2","a":"3"}', True), (b'{"a":"\\\\\\":","a":1}', True), (b'{"a" \n:"\\u0022:",  "a"\t: 1}', True),
        (b'{"temperature":{"value":1,"type":"Number"},"pressure":{"value":2,"type":"Number"}}', False),
        (b'[1, 2, "a:b"]', False), (b'{"t":{"value":"2024-01-01T10:00:00Z","type":"DateTime"},"t":{"value":1}}', True),
    ],
)
def test_duplicate_keys_shortcut_agrees_with_the_full_reading(raw: bytes, repeats: bool) -> None:
    """With the parsed tree given, counting keys decides; the answer must be the full reading's."""
    from ngsi.jsonout import loads

    full = duplicate_keys(raw)
    assert (full is not None) == repeats
    assert duplicate_keys(raw, loads(raw)) == full
    assert duplicate_keys(raw.decode(), loads(raw)) == full
