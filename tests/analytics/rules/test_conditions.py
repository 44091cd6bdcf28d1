"""Which entities a rule looks at: type, id, id pattern, service path and q."""

from __future__ import annotations

from analytics.rules.conditions import internal, selects
from analytics.rules.model import Subject, parse_rule

FIELD = {
    "id": "Field:1",
    "type": "Field",
    "temperature": {"type": "Number", "value": 41, "metadata": {"accuracy": {"type": "Number", "value": 0.5}}},
    "status": {"type": "Text", "value": "on", "metadata": {}},
    "seen": {"type": "DateTime", "value": "2024-05-01T10:00:00Z", "metadata": {}},
    "dateModified": {"type": "DateTime", "value": "2024-05-01T11:00:00Z", "metadata": {}},
}


def subject(**condition: object) -> Subject:
    return parse_rule({"name": "r", "condition": condition,
                       "action": {"type": "post", "parameters": {"url": "http://x"}}}).subject


def test_internal_form_is_what_ngsi_query_reads() -> None:
    e = internal(FIELD, "/farm1/north")
    assert e["servicePath"] == "/farm1/north"
    assert e["attrs"]["temperature"] == {"type": "Number", "value": 41,
                                         "md": {"accuracy": {"type": "Number", "value": 0.5}}}
    assert e["attrs"]["seen"]["value"] == 1714557600.0  # DateTime as epoch seconds
    assert "dateModified" not in e["attrs"] and e["modDate"] == 1714561200.0


def test_q_runs_with_the_brokers_semantics() -> None:
    e = internal(FIELD, "/farm1")
    assert selects(subject(q="temperature>40;status==on"), "/farm1", e)
    assert not selects(subject(q="temperature>41"), "/farm1", e)
    assert not selects(subject(q="temperature=='41'"), "/farm1", e)  # typed: a string never equals a number
    assert selects(subject(q="seen<2024-05-02"), "/farm1", e)
    assert selects(subject(q="dateModified>2024-05-01T10:30:00Z"), "/farm1", e)
    assert not selects(subject(q="humidity"), "/farm1", e)


def test_type_id_and_id_pattern() -> None:
    e = internal(FIELD, "/")
    assert selects(subject(type="Field"), "/", e)
    assert not selects(subject(type="Room"), "/", e)
    assert selects(subject(id="Field:1"), "/", e)
    assert not selects(subject(id="Field:2"), "/", e)
    assert selects(subject(idPattern="^Field:[0-9]+$"), "/", e)
    assert not selects(subject(idPattern="^Room"), "/", e)


def test_service_paths_are_hierarchical_with_hash() -> None:
    e = internal(FIELD, "/farm1/north")
    assert selects(subject(servicePath="/farm1/#"), "/farm1/north", e)
    assert selects(subject(), "/farm1/north", e)  # no servicePath: every path
    assert not selects(subject(servicePath="/farm1"), "/farm1/north", e)
    assert not selects(subject(servicePath="/farm2/#"), "/farm1/north", e)
    assert selects(subject(servicePath="/farm2, /farm1/north"), "/farm1/north", e)


def test_key_values_attributes_are_tolerated() -> None:
    e = internal({"id": "x", "type": "T", "temperature": 50}, "/")
    assert selects(subject(q="temperature>40"), "/", e)
