from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from security.privacy import transforms as tf
from security.privacy.engine import (
    apply, apply_history_series, apply_notification, apply_rows, history_query_refusal, k_anonymize, visible_names,
)
from security.privacy.keys import KeyRing
from security.privacy.policy import Consumer, Policy, parse_policy

from .strategies import key_values_entities, normalized_entities, policy_docs

KEYS = KeyRing.generate(b"s" * 32)
BOB = Consumer("user", "bob")
EVE = Consumer("user", "eve")


def _names(node: Any) -> Iterator[str]:
    """Every attribute, metadata and listed name of an NGSI entity or notification."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("id", "type", "value", "subscriptionId"):
                continue
            if key not in ("data", "attrs"):
                yield key
            if isinstance(value, dict):
                yield from (k for k in (value.get("metadata") or {}))
            if key == "data":
                for entity in value:
                    yield from _names(entity)
            if key == "attrs":
                yield from value


def _run(policy: Policy, entity: dict[str, Any], key_values: bool = False, consumer: Consumer = BOB) -> dict[str, Any]:
    return apply(policy, entity, keys=KEYS, consumer=consumer, rng=random.Random(0), key_values=key_values)


@given(policy_docs(), normalized_entities())
def test_a_dropped_attribute_never_appears_in_entities(doc: dict[str, Any], entity: dict[str, Any]) -> None:
    policy = parse_policy(doc)
    out = _run(policy, entity)
    assert not any(policy.drops(n) for n in _names(out))
    body = apply_notification(policy, {"subscriptionId": "s", "data": [entity], "attrs": list(entity)},
                              keys=KEYS, consumer=BOB, rng=random.Random(0))
    assert not any(policy.drops(n) for n in _names(body))


@given(policy_docs(), key_values_entities())
def test_a_dropped_attribute_never_appears_in_key_values(doc: dict[str, Any], entity: dict[str, Any]) -> None:
    policy = parse_policy(doc)
    assert not any(policy.drops(n) for n in _names(_run(policy, entity, key_values=True)))
    for fmt in ("keyValues", "simplifiedKeyValues"):
        body = {"subscriptionId": "s", "data": [entity]} if fmt == "keyValues" else entity
        out = apply_notification(policy, body, keys=KEYS, consumer=BOB, attrs_format=fmt, rng=random.Random(0))
        assert not any(policy.drops(n) for n in _names(out))


@given(policy_docs(), key_values_entities())
def test_the_values_format_loses_the_dropped_positions(doc: dict[str, Any], entity: dict[str, Any]) -> None:
    policy = parse_policy(doc)
    names = [n for n in entity if n not in ("id", "type")]
    body = {"subscriptionId": "s", "data": [[entity[n] for n in names]]}
    out = apply_notification(policy, body, keys=KEYS, consumer=BOB, attrs_format="values", attrs=names)
    assert len(out["data"][0]) == len(visible_names(policy, names))
    with pytest.raises(ValueError):
        apply_notification(policy, body, keys=KEYS, consumer=BOB, attrs_format="values")


@given(policy_docs(), normalized_entities())
def test_pseudonymized_ids_never_equal_the_original_and_differ_per_consumer(doc: dict[str, Any],
                                                                             entity: dict[str, Any]) -> None:
    doc["idTransform"] = {"transform": "pseudonymize"}
    policy = parse_policy(doc)
    bob, eve = _run(policy, entity), _run(policy, entity, consumer=EVE)
    assert bob["id"] != entity["id"] and bob["id"] != eve["id"] and bob["id"] == _run(policy, entity)["id"]
    assert bob["type"] == entity["type"]


def test_the_input_is_left_alone() -> None:
    policy = parse_policy({"id": "p", "consumer": {"kind": "public"}, "attributes": {"*": [{"transform": "drop"}]}})
    entity = {"id": "e", "type": "T", "a": {"type": "Number", "value": 1, "metadata": {}}}
    assert _run(policy, entity) == {"id": "e", "type": "T"}
    assert entity == {"id": "e", "type": "T", "a": {"type": "Number", "value": 1, "metadata": {}}}


HOUSEHOLD = parse_policy({
    "id": "household-hourly", "consumer": {"kind": "user", "id": "bob"},
    "attributes": {"power": [{"transform": "noise", "epsilon": 0.5, "sensitivity": 100}],
                   "location": [{"transform": "generalize", "grid": 1000}],
                   "owner": [{"transform": "pseudonymize"}], "serial": [{"transform": "drop"}],
                   "TimeInstant": [{"transform": "generalize", "period": "PT1H"}]},
    "idTransform": {"transform": "pseudonymize"}, "budget": {"epsilon": 5, "period": "P1D"},
    "aggregation": {"methods": ["avg"], "period": "hour"},
})


def test_references_join_and_metadata_follow_their_attribute() -> None:
    meter = {"id": "urn:meter:1", "type": "Meter",
             "refHouse": {"type": "Relationship", "value": "urn:house:1", "metadata": {}},
             "feeds": {"type": "Relationship", "value": ["urn:house:1", "urn:house:2"], "metadata": {}},
             "refNote": {"type": "Text", "value": "urn:house:1"},
             "power": {"type": "Number", "value": 1200, "metadata": {
                 "TimeInstant": {"type": "DateTime", "value": "2024-01-01T10:33:00.000Z"},
                 "previousValue": {"type": "Number", "value": 1100},
                 "serial": {"type": "Text", "value": "SN-1"},
                 "unitCode": {"type": "Text", "value": "WTT"}}},
             "location": {"type": "geo:line", "value": ["45.07,7.68", "45.08,7.69"]},
             "serial": {"type": "Text", "value": "SN-1"}}
    house = {"id": "urn:house:1", "type": "House"}
    out, house_out = _run(HOUSEHOLD, meter), _run(HOUSEHOLD, house)
    assert out["refHouse"]["value"] == house_out["id"] != "urn:house:1"
    assert out["feeds"]["value"][0] == house_out["id"]
    assert out["refNote"]["value"] == house_out["id"]  # a ref* name is a reference too
    metadata = out["power"]["metadata"]
    assert metadata["TimeInstant"]["value"] == "2024-01-01T10:00:00.000Z"
    assert metadata["previousValue"]["value"] != 1100 and "serial" not in metadata
    assert metadata["unitCode"] == {"type": "Text", "value": "WTT"}
    assert out["location"]["type"] == "geo:point" and "serial" not in out


def test_explicit_steps_on_a_reference_win() -> None:
    policy = parse_policy({"id": "p", "consumer": {"kind": "public"}, "idTransform": {"transform": "pseudonymize"},
                           "attributes": {"refHouse": [{"transform": "drop"}]}})
    assert "refHouse" not in _run(policy, {"id": "e", "type": "T", "refHouse": "h"}, key_values=True)


# -- history (shapes of analytics/history/render.py) -----------------------------------------

T1, T2 = "2024-01-01T10:33:00.000+00:00", "2024-01-01T11:05:00.000+00:00"
H1, H2 = "2024-01-01T10:00:00.000+00:00", "2024-01-01T11:00:00.000+00:00"


def _history(answer: Any, **kw: Any) -> Any:
    return apply_history_series(HOUSEHOLD, answer, keys=KEYS, consumer=BOB, rng=random.Random(3), **kw)


def test_history_entity_answers() -> None:
    out = _history({"entityId": "urn:meter:1", "entityType": "Meter", "index": [T1, T2],
                    "attributes": [{"attrName": "power", "values": [1, 2]},
                                   {"attrName": "serial", "values": ["a", "b"]},
                                   {"attrName": "temperature", "values": [20, 21]}]})
    assert out["entityId"] == _run(HOUSEHOLD, {"id": "urn:meter:1", "type": "Meter"})["id"]
    assert out["index"] == [H1, H2]
    assert [a["attrName"] for a in out["attributes"]] == ["power", "temperature"]
    assert out["attributes"][0]["values"] != [1, 2] and out["attributes"][1]["values"] == [20, 21]
    value = _history({"index": [T1], "values": [{"attrName": "serial", "values": ["a"]},
                                                {"attrName": "power", "values": [5]}]})
    assert [a["attrName"] for a in value["values"]] == ["power"]


def test_history_one_attribute_answers() -> None:
    out = _history({"entityId": "m", "entityType": "Meter", "attrName": "serial", "index": [T1], "values": ["a"]})
    assert out["index"] == [] and out["values"] == []
    out = _history({"index": [T1], "values": ["a"]}, attr="serial")
    assert out == {"index": [], "values": []}
    out = _history({"index": [T1], "values": [3.0]}, attr="temperature")
    assert out == {"index": [H1], "values": [3.0]}
    with pytest.raises(ValueError):
        _history({"index": [T1], "values": [3.0]})


def test_history_type_and_attrs_answers() -> None:
    series = {"entityId": "m", "index": [T1], "values": ["a"]}
    assert _history({"entityType": "Meter", "attrName": "serial", "entities": [series]})["entities"] == []
    assert _history({"values": [series]}, attr="serial") == {"values": []}
    listed = _history({"attrs": [{"attrName": "serial", "types": [{"entityType": "Meter", "entities": [series]}]},
                                 {"attrName": "temperature", "types": [{"entityType": "Meter",
                                                                        "entities": [{**series, "values": [1]}]}]}]})
    assert [a["attrName"] for a in listed["attrs"]] == ["temperature"]
    assert listed["attrs"][0]["types"][0]["entities"][0]["index"] == [H1]
    last = _history([{"entityId": "m", "entityType": "Meter", "attributes": [
        {"attrName": "serial", "attrType": "Text", "value": "a", "index": T1, "lastSeen": T2},
        {"attrName": "location", "attrType": "geo:point", "value": "45.07,7.68", "index": T1, "lastSeen": T2}]}])
    assert [a["attrName"] for a in last[0]["attributes"]] == ["location"]
    assert last[0]["attributes"][0]["index"] == H1 and last[0]["attributes"][0]["value"] != "45.07,7.68"


def test_history_queries_must_be_the_aggregates_the_policy_allows() -> None:
    assert history_query_refusal(HOUSEHOLD, "avg", "hour") is None
    assert history_query_refusal(HOUSEHOLD, "avg", "day") is None
    assert history_query_refusal(HOUSEHOLD, None, None) is not None
    assert history_query_refusal(HOUSEHOLD, "max", "hour") is not None
    assert history_query_refusal(HOUSEHOLD, "avg", "minute") is not None
    assert HOUSEHOLD.epsilon_of(["power"]) == 0.5


# -- k-anonymity -----------------------------------------------------------------------------

rows = st.lists(st.fixed_dictionaries({"cell": st.sampled_from("abcd"), "hour": st.integers(0, 3),
                                       "value": st.integers()}), max_size=60)


@given(rows, st.integers(1, 6))
def test_k_anonymity_leaves_no_group_smaller_than_k(table: list[dict[str, Any]], k: int) -> None:
    kept = k_anonymize(table, ["cell", "hour"], k)
    groups: dict[tuple[Any, ...], int] = {}
    for row in kept:
        groups[(row["cell"], row["hour"])] = groups.get((row["cell"], row["hour"]), 0) + 1
    assert all(size >= k for size in groups.values())
    # only whole groups go, the rest keeps its order
    assert kept == [r for r in table if sum(1 for s in table if (s["cell"], s["hour"]) == (r["cell"], r["hour"])) >= k]


def test_pseudonyms_look_like_pseudonyms() -> None:
    assert tf.pseudonymize("x", b"k", "user:bob").startswith(tf.PREFIX)


# -- every QuantumLeap route, as analytics/history/render.py builds its answer ---------------


def _render_answers() -> list[tuple[str, Any, str | None]]:
    from analytics.history import render
    from analytics.history.engine import Answer, Block, LastValue

    ms = 1_704_105_180_000  # 2024-01-01T10:33:00Z
    blocks = [Block("Meter", f"urn:meter:{i}", [ms, ms + 1_800_000],
                    {"power": [1.0, 2.0], "serial": ["a", "b"], "temperature": [20, 21]}) for i in (1, 2)]
    answer = Answer(blocks, ["power", "serial", "temperature"])
    one = Answer(blocks[:1], answer.attrs)
    last = [(("Meter", "urn:meter:1"), [LastValue("serial", "Text", "a", ms, ms), LastValue("power", "Number", 1, ms, ms)])]
    return [
        ("entity_attr", render.entity_attr(one, "serial"), None),
        ("entity_attr_value", render.entity_attr_value(one, "serial"), "serial"),
        ("entity", render.entity(one), None),
        ("entity_value", render.entity_value(one), None),
        ("type_attr", render.type_attr(answer, "Meter", "serial"), None),
        ("type_attr_value", render.type_attr_value(answer, "serial"), "serial"),
        ("type_entities", render.type_entities(answer, "Meter"), None),
        ("type_entities_value", render.type_entities_value(answer), None),
        ("attr", render.attr(answer, "serial"), None),
        ("attr_value", render.attr_value(answer, "serial"), "serial"),
        ("attrs", render.attrs(answer), None),
        ("attrs_value", render.attrs_value(answer), None),
        ("entity_list", render.entity_list([("Meter", "urn:meter:1", ms)]), None),
        ("last", render.last(last), None),
    ]


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


HISTORY_ANSWERS = _render_answers()


@pytest.mark.parametrize(("route", "answer", "attr"), HISTORY_ANSWERS, ids=lambda x: x if isinstance(x, str) else "")
def test_every_history_route_hides_what_the_policy_hides(route: str, answer: Any, attr: str | None) -> None:
    out = _history(answer, attr=attr)
    # the answer about the route's own attribute keeps its name, and says nothing else
    inner = out if not isinstance(out, dict) else {k: v for k, v in out.items() if k != "attrName"}
    pairs = list(_walk(inner))
    assert all(v != "serial" for k, v in pairs if k == "attrName")
    assert all(v not in ("a", "b") for k, v in pairs if k in ("values", "value"))
    assert not any(isinstance(v, list) and {"a", "b"} & set(map(str, v)) for k, v in pairs if k == "values")
    assert all(v.startswith("pz:") for k, v in pairs if k == "entityId")
    assert all(t.endswith(":00:00.000+00:00") for k, v in pairs if k == "index"
               for t in (v if isinstance(v, list) else [v]))


@given(policy_docs())
def test_a_dropped_attribute_never_appears_in_history_answers(doc: dict[str, Any]) -> None:
    policy = parse_policy(doc)
    for _, answer, attr in HISTORY_ANSWERS:
        out = apply_history_series(policy, answer, keys=KEYS, consumer=BOB, rng=random.Random(0), attr=attr)
        inner = out if not isinstance(out, dict) else {k: v for k, v in out.items() if k != "attrName"}
        assert not any(policy.drops(v) for k, v in _walk(inner) if k == "attrName")
        about = out.get("attrName", attr) if isinstance(out, dict) else None
        if about is not None and policy.drops(about):
            assert not out.get("values") and not out.get("index") and not out.get("entities") and not out.get("types")


def test_export_rows_lose_dropped_attributes_and_follow_the_steps() -> None:
    rows = [{"tenant": "energy", "entityId": "urn:meter:1", "entityType": "Meter", "attrName": name,
             "attrType": kind, "timeIndex": T1, "value": value}
            for name, kind, value in (("serial", "Text", "SN-1"), ("power", "Number", 5.0),
                                      ("refHouse", "Relationship", "urn:house:1"), ("temperature", "Number", 20))]
    out = apply_rows(HOUSEHOLD, rows, keys=KEYS, consumer=BOB, rng=random.Random(0))
    assert [r["attrName"] for r in out] == ["power", "refHouse", "temperature"]
    assert {r["entityId"] for r in out} == {_run(HOUSEHOLD, {"id": "urn:meter:1", "type": "Meter"})["id"]}
    assert out[1]["value"] == _run(HOUSEHOLD, {"id": "urn:house:1", "type": "House"})["id"]
    assert out[0]["value"] != 5.0 and out[2]["value"] == 20 and all(r["timeIndex"] == H1 for r in out)
    assert rows[0]["value"] == "SN-1"  # the input is left alone
