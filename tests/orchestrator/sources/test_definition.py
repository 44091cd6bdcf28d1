"""The connector document: valid ones read into dataclasses, invalid ones refused naming the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.sources.definition import (
    DefinitionError, NextLinkPaging, ParamPaging, load_document, parse_definition, parse_text,
)

EXAMPLE = """
name: weather-paris
kind: http-json
url: https://api.example.org/obs
interval: 60
headers: {Accept: application/json}
auth: {bearer_env: WEATHER_TOKEN}
paging: {next: "links.next"}
records: "observations[]"
entity:
  id: "join(':', ['urn:ngsi-ld:WeatherObserved', station])"
  type: "'WeatherObserved'"
  attrs:
    temperature: {value: "temp", type: Number, unitCode: CEL}
    location: {value: "[lon, lat]", type: "geo:point"}
  timestamp: "observed_at"
tenant: paris
servicePath: /weather
batch: 500
"""


def minimal(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": "s1", "kind": "http-json", "url": "http://example.org/x",
                           "entity": {"id": "id", "type": "'T'"}}
    doc.update(extra)
    return doc


def test_the_issue_example_reads() -> None:
    d = parse_text(EXAMPLE)
    assert d.name == "weather-paris" and d.kind == "http-json" and d.interval == 60.0
    assert d.auth is not None and d.auth.scheme == "bearer" and d.auth.env == "WEATHER_TOKEN"
    assert d.paging == NextLinkPaging("links.next", 100)
    assert [a.name for a in d.entity.attrs] == ["temperature", "location"]
    assert d.entity.attrs[0].unit_code == "CEL" and d.tenant == "paris" and d.service_path == "/weather"
    assert d.status_id == "urn:waziup:source:weather-paris"
    assert d.document["name"] == "weather-paris"


def test_json_reads_too_and_param_paging() -> None:
    d = parse_text('{"name": "n", "kind": "http-json", "url": "http://h/x", "paging": {"param": "page", '
                   '"size_param": "per_page", "size": 10}, "entity": {"id": "id", "type": "type"}}')
    assert d.paging == ParamPaging("page", 1, "per_page", 10, 100)


@pytest.mark.parametrize(("change", "field"), [
    ({"kind": "ftp"}, "kind"),
    ({"name": "bad name"}, "name"),
    ({"interval": 0}, "interval"),
    ({"url": "ftp://h/x"}, "url"),
    ({"url": "http://user:pw@h/x"}, "url"),
    ({"headers": {"Authorization": "Bearer x"}}, "headers.Authorization"),
    ({"auth": {"bearer": "literal-token"}}, "auth"),
    ({"paging": {"next": "a[", "max_pages": 2}}, "paging.next"),
    ({"records": "a[?"}, "records"),
    ({"entity": {"id": "id"}}, "entity"),
    ({"entity": {"id": "id(", "type": "'T'"}}, "entity.id"),
    ({"entity": {"id": "id", "type": "'T'", "attrs": {"bad/name": {"value": "x"}}}}, "entity.attrs.bad/name"),
    ({"entity": {"id": "id", "type": "'T'", "attrs": {"id": {"value": "x"}}}}, "entity.attrs.id"),
    ({"entity": {"id": "id", "type": "'T'", "attrs": {"t": {"value": "x", "type": "a b"}}}}, "entity.attrs.t.type"),
    ({"mqtt": {"host": "h", "topic": "t"}}, "mqtt"),
    ({"tenant": "Upper"}, "tenant"),
    ({"backoff": {"initial": 10, "max": 1}}, "backoff.initial"),
    ({"surprise": 1}, "(document)"),
])
def test_refusals_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(minimal(**change))
    assert caught.value.field == field, str(caught.value)
    assert str(caught.value).startswith(field)


def test_kind_specific_needs() -> None:
    with pytest.raises(DefinitionError, match="^url: a csv source needs a url"):
        parse_definition({"name": "c", "kind": "csv", "entity": {"id": "id", "type": "'T'"}})
    with pytest.raises(DefinitionError, match="^mqtt: an mqtt source needs"):
        parse_definition({"name": "m", "kind": "mqtt", "entity": {"id": "id", "type": "'T'"}})
    with pytest.raises(DefinitionError, match="^mqtt.topic"):
        parse_definition({"name": "m", "kind": "mqtt", "mqtt": {"host": "h", "topic": "a/#/b"},
                          "entity": {"id": "id", "type": "'T'"}})
    d = parse_definition({"name": "m", "kind": "mqtt", "mqtt": {"host": "h", "topic": "a/+/b", "tls": True},
                          "entity": {"id": "id", "type": "'T'"}})
    assert d.mqtt is not None and d.mqtt.port == 8883 and d.mqtt.url == "mqtts://h:8883/"
    csv = parse_definition({"name": "c", "kind": "csv", "url": "data/x.csv", "entity": {"id": "id", "type": "'T'"}})
    assert csv.url == "data/x.csv"


def test_load_document_refuses_non_mappings_and_garbage() -> None:
    with pytest.raises(DefinitionError, match="must be an object"):
        load_document("- a\n- b\n")
    with pytest.raises(DefinitionError, match="neither JSON nor YAML"):
        load_document("a: [b")
    with pytest.raises(DefinitionError, match="UTF-8"):
        load_document(b"\xff\xfe")
    laughs = "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nname: *c\n"
    with pytest.raises(DefinitionError, match="aliases"):
        load_document(laughs)
    with pytest.raises(DefinitionError) as caught:
        parse_definition(minimal(description="x" * 5000))
    assert caught.value.field == "description" and len(str(caught.value)) < 400


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
FIELDS = ["name", "kind", "url", "interval", "headers", "auth", "paging", "records", "entity", "tenant",
          "servicePath", "batch", "mqtt", "csv", "backoff", "timeout"]


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(FIELDS), value=json_values)
def test_any_field_any_value_is_read_or_refused_by_name(field: str, value: Any) -> None:
    """Never anything but a Definition or a DefinitionError naming a field."""
    doc = minimal()
    doc[field] = copy.deepcopy(value)
    try:
        parse_definition(doc)
    except DefinitionError as exc:
        assert exc.field and str(exc)


@settings(max_examples=200, deadline=None)
@given(path=st.lists(st.sampled_from(["entity", "id", "type", "attrs", "t", "value", "paging", "next"]),
                     min_size=1, max_size=4), value=json_values)
def test_nested_garbage_is_refused_cleanly(path: list[str], value: Any) -> None:
    doc = minimal(entity={"id": "id", "type": "'T'", "attrs": {"t": {"value": "v"}}})
    target: Any = doc
    for key in path[:-1]:
        if not isinstance(target, dict):
            return
        target = target.setdefault(key, {})
    if isinstance(target, dict):
        target[path[-1]] = value
    try:
        parse_definition(doc)
    except DefinitionError as exc:
        assert str(exc)


def test_the_examples_are_valid() -> None:
    from pathlib import Path

    examples = sorted((Path(__file__).parents[3] / "examples" / "sources").glob("*.yaml"))
    assert len(examples) >= 2
    kinds = {parse_text(path.read_text()).kind for path in examples}
    assert kinds == {"http-json", "csv", "mqtt"}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.sampled_from([
    "name: x\nkind: csv\nurl: a.csv\nentity: {id: id, type: t, attrs: {1: {value: v}}}\n",
    "name: x\ndescription: 2024-01-01\n", "? [a, b]\n: c\n", "x: !!binary aGVsbG8=\n", "x: .nan\n",
]))
def test_any_text_is_a_definition_or_a_definition_error(text: str) -> None:
    try:
        parse_text(text)
    except DefinitionError as exc:
        assert str(exc)
