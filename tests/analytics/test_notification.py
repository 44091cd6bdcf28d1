"""``POST /v2/notify`` bodies and headers into batches (``notification.py``): what is
stored from normalized and keyValues entities, service paths, ``Waziup-Sequence``, and
that any input is a batch or a 400, never another exception."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.history.errors import BadRequest
from analytics.history.instants import parse_instant
from analytics.history.model import Sample
from analytics.history.notification import parse_notification, parse_sequence, service_paths

NOW = 1_700_000_000_000


def parse(body: Any, **headers: Any) -> Any:
    return parse_notification(orjson.dumps(body), tenant="t", service_path=headers.get("path"),
                              time_index_attribute=headers.get("custom"), sequence=headers.get("sequence"), now=NOW)


def test_normalized_and_key_values_entities() -> None:
    batch = parse({"subscriptionId": "s", "data": [
        {"id": "R1", "type": "Room", "temperature": {"type": "Number", "value": 21.5, "metadata": {}},
         "colour": {"type": "Text", "value": "white"}, "on": {"type": "Boolean", "value": True}},
        {"id": "R2", "type": "Room", "temperature": 22, "shape": {"value": 3, "unit": "C"}, "tags": ["a"],
         "seen": "2020-01-01T00:00:00Z", "nothing": None},
    ]})
    first, second = batch.elements
    assert first.samples == (Sample("temperature", "Number", 21.5, None), Sample("colour", "Text", None, "white"),
                             Sample("on", "Boolean", 1.0, None))
    assert first.time_index == NOW and first.service_path == "/" and batch.subscription == "s"
    assert {s.attr: s.attr_type for s in second.samples} == {
        "temperature": "Integer", "shape": "StructuredValue", "tags": "Array", "seen": "DateTime", "nothing": "Text"}
    assert batch.values == 8 and not batch.sequenced


def test_time_index_header_and_paths() -> None:
    body = {"data": [{"id": "a", "type": "T", "when": "2019-01-01T00:00:00Z"}, {"id": "b", "type": "T"}]}
    batch = parse(body, custom="when", path="/x, /y/z")
    assert [e.time_index for e in batch.elements] == [parse_instant("2019-01-01T00:00:00Z"), NOW]
    assert [e.service_path for e in batch.elements] == ["/x", "/y/z"]
    assert [e.service_path for e in parse(body, path="/x/").elements] == ["/x", "/x"]


@pytest.mark.parametrize(("body", "headers"), [
    ([], {}), ({}, {}), ({"data": {}}, {}), ({"data": [1]}, {}), ({"data": [{"id": "a"}]}, {}),
    ({"data": [{"id": 1, "type": "T"}]}, {}), ({"data": [{"id": "", "type": "T"}]}, {}),
    ({"data": [{"id": "a" * 257, "type": "T"}]}, {}), ({"data": [{"id": "a\x00", "type": "T"}]}, {}),
    ({"data": [{"id": "a", "type": "T", "": 1}]}, {}), ({"subscriptionId": 3, "data": []}, {}),
    ({"data": [{"id": "a", "type": "T"}]}, {"path": "x"}), ({"data": [{"id": "a", "type": "T"}]}, {"path": "/a/#"}),
    ({"data": [{"id": "a", "type": "T"}]}, {"path": "/a,/b"}),
    ({"subscriptionId": "s", "data": [{"id": "a", "type": "T"}]}, {"sequence": "1,2"}),
    ({"subscriptionId": "s", "data": [{"id": "a", "type": "T"}] * 2}, {"sequence": "2,1"}),
    ({"subscriptionId": "s", "data": [{"id": "a", "type": "T"}]}, {"sequence": "x"}),
    ({"subscriptionId": "s", "data": [{"id": "a", "type": "T"}]}, {"sequence": str(2**63)}),
    ({"data": [{"id": "a", "type": "T"}]}, {"sequence": "1"}),
])
def test_bad_notifications_are_400(body: Any, headers: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        parse(body, **headers)


def test_not_json_is_400() -> None:
    for raw in (b"", b"{", b"\xff", b'{"data": [1e999999]}', b'{"data":"\\ud800"}'):
        with pytest.raises(BadRequest):
            parse_notification(raw, tenant="", service_path=None, now=NOW)


def test_sequences() -> None:
    batch = parse({"subscriptionId": "s", "data": [{"id": "a", "type": "T"}] * 3}, sequence=" 4, 7,9 ")
    assert batch.sequenced and [e.sequence for e in batch.elements] == [4, 7, 9]
    assert parse_sequence("", 0) == []
    assert service_paths(None, 2) == ["/", "/"]


any_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)
entity_like = st.fixed_dictionaries({"id": st.text(max_size=5), "type": st.text(max_size=5)},
                                    optional={"a": any_json, "TimeInstant": any_json})
bodies = st.fixed_dictionaries({}, optional={"subscriptionId": any_json,
                                             "data": st.lists(entity_like | any_json, max_size=3)}) | any_json
headers = st.none() | st.text(max_size=12) | st.sampled_from(["/", "/a,/b", "1,2", "0", "/a/#"])


@settings(max_examples=300, deadline=None, database=None)
@given(bodies, headers, headers, headers)
def test_any_input_is_a_batch_or_a_400(body: Any, path: str | None, custom: str | None, sequence: str | None) -> None:
    try:
        batch = parse_notification(orjson.dumps(body), tenant="", service_path=path, time_index_attribute=custom,
                                   sequence=sequence, now=NOW)
    except BadRequest:
        return
    for element in batch.elements:
        assert element.entity_id and element.service_path.startswith("/")
        for sample in element.samples:
            assert sample.num is None or sample.txt is None
