"""Update operators ($inc, $set, ...), tested from Orion's manual against the real broker.

Sources: user/update_operators.md (why operators exist: no read-calculate-update cycle, no
race) and orion-api.md, "Update operators for attribute values" (each operator, "How Orion
deals with operators", "Usage in create or replace entity operations"). Each test cites the
section it follows. Where the manual is silent (what a notification shows), the test follows
Orion's behaviour in its functional cases (test/functionalTest/cases/3814_*), and says so.

The whole module runs on SQLite and on PostgreSQL. The broker works operators out itself
(``ngsi/operators.py``) inside the store's atomic read-modify-write (``Store.modify``), so the
stores differ in how they keep the values (JSON numbers, nested arrays and objects) and in how
they make concurrent updates atomic: both are checked here.

Where the broker knowingly differs from the manual:
- a refused operator (``{"$inc": "foo"}``, ``$set`` into a string, ``$set`` and ``$unset`` of
  one key) is a 400 BadRequest with MongoDB's explanation, not Orion's 500
  InternalServerError: a client's mistake never looks like a server crash here;
- ``$push``/``$addToSet`` creating an attribute store ``[x]`` as the manual's reference (the
  empty array) gives, where Orion stores ``[[x]]`` for an object or array ``x`` (and notifies
  ``[x]``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.broker.api_client import ApiClient, broker_client, create, error_of, new_id
from tests.broker.conftest import Receiver

from .conftest import fresh_store


@pytest.fixture(scope="module")
def listener() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# -- helpers -------------------------------------------------------------------------------------


def _entity(client: ApiClient, **attrs: tuple[Any, str]) -> str:
    """A new entity of type T with attributes name=(value, type); returns its id."""
    eid = new_id()
    create(client, {"id": eid, "type": "T", **{n: {"value": v, "type": t} for n, (v, t) in attrs.items()}})
    return eid


def _attrs(client: ApiClient, eid: str) -> dict[str, Any]:
    """The entity's attributes as name: value (keyValues), without id and type."""
    response = client.get(f"/v2/entities/{eid}", params={"options": "keyValues"})
    assert response.status_code == 200, response.text
    return {k: v for k, v in response.json().items() if k not in ("id", "type")}


def _value(client: ApiClient, eid: str, name: str = "A") -> Any:
    response = client.get(f"/v2/entities/{eid}/attrs/{name}")
    assert response.status_code == 200, response.text
    return response.json()["value"]


def _subscribe(client: ApiClient, listener: Receiver, eid: str) -> str:
    """A subscription to every change of ``eid``, notified on a path of its own; returns the path."""
    path = f"/{eid}"
    body = {"subject": {"entities": [{"id": eid, "type": "T"}]},
            "notification": {"http": {"url": listener.base + path}}}
    response = client.post("/v2/subscriptions", json=body)
    assert response.status_code == 201, response.text
    return path


def _notified(client: ApiClient, listener: Receiver, path: str, count: int) -> list[dict[str, Any]]:
    """The entities of exactly ``count`` notifications sent to ``path``, in order (keyValues-like:
    name: value). The broker's loop runs only while the client drives it, so waiting drives it."""
    def received() -> list[dict[str, Any]]:
        with listener.lock:
            return [body for p, body in listener.received if p == path]

    deadline = time.monotonic() + 10
    while len(received()) < count and time.monotonic() < deadline:
        client._run(asyncio.sleep(0.02))
    settle = time.monotonic() + 0.3  # and no more than that
    while time.monotonic() < settle:
        client._run(asyncio.sleep(0.02))
    bodies = received()
    assert len(bodies) == count, bodies
    entities = []
    for body in bodies:
        (entity,) = body["data"]
        entities.append({k: (v["value"] if isinstance(v, dict) else v) for k, v in entity.items()
                         if k not in ("id", "type")})
    return entities


def _put(client: ApiClient, eid: str, value: Any, type_: str, name: str = "A") -> Any:
    return client.put(f"/v2/entities/{eid}/attrs/{name}", json={"value": value, "type": type_})


# -- orion-api.md, "Update operators for attribute values" > "Supported operators" ----------------


TABLE: list[tuple[Any, dict[str, Any], Any]] = [  # the manual's table: previous value, operation, final value
    (2, {"$inc": 2}, 4),
    (3, {"$mul": 2}, 6),
    (2, {"$min": 1}, 1),
    (2, {"$max": 10}, 10),
    ([1, 2, 3], {"$push": 3}, [1, 2, 3, 3]),
    ([1, 2, 3], {"$addToSet": 4}, [1, 2, 3, 4]),
    ([1, 2, 3], {"$pull": 2}, [1, 3]),
    ([1, 2, 3], {"$pullAll": [2, 3]}, [1]),
    ({"X": 1, "Y": 2}, {"$set": {"Y": 20, "Z": 30}}, {"X": 1, "Y": 20, "Z": 30}),
    ({"X": 1, "Y": 2}, {"$unset": {"X": 1}}, {"Y": 2}),
]


@pytest.mark.parametrize(("previous", "operation", "final"), TABLE, ids=[next(iter(op)) for _, op, _ in TABLE])
def test_supported_operators_table(
    client: ApiClient, listener: Receiver, previous: Any, operation: dict[str, Any], final: Any
) -> None:
    """orion-api.md, "Supported operators": each row of the table (previous value, operation,
    final value), stored and notified (the notification shows the final value, not the
    operation: the manual is silent, Orion's cases 3814_attribute_update_operators show it)."""
    eid = _entity(client, A=(previous, "Thing"))
    path = _subscribe(client, listener, eid)
    response = _put(client, eid, operation, "Thing")
    assert response.status_code == 204, response.text
    assert client.get(f"/v2/entities/{eid}/attrs/A").json() == {"value": final, "type": "Thing", "metadata": {}}
    assert _notified(client, listener, path, 1) == [{"A": final}]


# -- "Supported operators" > each operator --------------------------------------------------------


@pytest.mark.parametrize(("increment", "final"), [(2, 12), (-3, 7), (0.5, 10.5), (-2.25, 7.75)])
def test_inc(client: ApiClient, increment: float, final: float) -> None:
    """orion-api.md, "Supported operators" > "$inc": 10 with {"$inc": 2} is 12; "only accept
    numeric values (either positive or negative, integer or decimal)"."""
    eid = _entity(client, A=(10, "Number"))
    assert _put(client, eid, {"$inc": increment}, "Number").status_code == 204
    assert _value(client, eid) == final


@pytest.mark.parametrize(("factor", "final"), [(2, 20), (-1, -10), (0.5, 5), (-0.25, -2.5)])
def test_mul(client: ApiClient, factor: float, final: float) -> None:
    """orion-api.md, "Supported operators" > "$mul": 10 with {"$mul": 2} is 20; numbers
    positive or negative, integer or decimal."""
    eid = _entity(client, A=(10, "Number"))
    assert _put(client, eid, {"$mul": factor}, "Number").status_code == 204
    assert _value(client, eid) == final


@pytest.mark.parametrize("op", ["$inc", "$mul"])
@pytest.mark.parametrize("argument", ["foo", "2", True, None, [1], {"x": 1}])
def test_inc_and_mul_refuse_non_numeric_arguments(client: ApiClient, op: str, argument: Any) -> None:
    """orion-api.md, "$inc"/"$mul": "This operator only accept numeric values"; "How Orion deals
    with operators": otherwise MongoDB's error (Orion: a 500; the broker: a 400), value kept."""
    eid = _entity(client, A=(10, "Number"))
    body = error_of(_put(client, eid, {op: argument}, "Number"), 400, "BadRequest")
    assert "with non-numeric argument: {attrs.A.value: " in body["description"]
    assert _value(client, eid) == 10


@pytest.mark.parametrize(("op", "argument", "final"), [
    ("$min", 2, 2), ("$min", 20, 10), ("$max", 12, 12), ("$max", 4, 10),
])
def test_min_and_max_on_numbers(client: ApiClient, op: str, argument: int, final: int) -> None:
    """orion-api.md, "$min": 10 with {"$min": 2} is 2, with {"$min": 20} unchanged; "$max": 10
    with {"$max": 12} is 12, with {"$max": 4} unchanged."""
    eid = _entity(client, A=(10, "Number"))
    assert _put(client, eid, {op: argument}, "Number").status_code == 204
    assert _value(client, eid) == final


@pytest.mark.parametrize(("op", "argument", "final"), [
    ("$min", "apple", "apple"), ("$min", "cherry", "banana"), ("$max", "cherry", "cherry"), ("$max", "apple", "banana"),
])
def test_min_and_max_on_strings(client: ApiClient, op: str, argument: str, final: str) -> None:
    """orion-api.md, "$min"/"$max": "Apart from numbers, other value types are supported (eg,
    strings ...)": strings compare in their order."""
    eid = _entity(client, A=("banana", "Text"))
    assert _put(client, eid, {op: argument}, "Text").status_code == 204
    assert _value(client, eid) == final


@pytest.mark.parametrize(("op", "argument", "final"), [
    ("$min", "2023-04-15T10:59:59.000Z", "2023-04-15T10:59:59.000Z"),
    ("$min", "2025-04-15T10:59:59.000Z", "2024-04-15T10:59:59.000Z"),
    ("$max", "2026-04-15T10:59:59.000Z", "2026-04-15T10:59:59.000Z"),
    ("$max", "2022-04-15T10:59:59.000Z", "2024-04-15T10:59:59.000Z"),
])
def test_min_and_max_on_datetimes(client: ApiClient, op: str, argument: str, final: str) -> None:
    """orion-api.md, "$min"/"$max": "... (eg, strings or DateTime)": dates compare in time."""
    eid = _entity(client, A=("2024-04-15T10:59:59.000Z", "DateTime"))
    assert _put(client, eid, {op: argument}, "DateTime").status_code == 204
    assert _value(client, eid) == final


def test_push_plain_each_and_position(client: ApiClient) -> None:
    """orion-api.md, "$push": [1, 2, 3] with 3 is [1, 2, 3, 3]; then {"$each": [4, 5]} gives
    [1, 2, 3, 3, 4, 5]; then {"$each": [-1, 0], "$position": 0} gives [-1, 0, 1, 2, 3, 3, 4, 5]."""
    eid = _entity(client, A=([1, 2, 3], "Array"))
    assert _put(client, eid, {"$push": 3}, "Array").status_code == 204
    assert _value(client, eid) == [1, 2, 3, 3]
    assert _put(client, eid, {"$push": {"$each": [4, 5]}}, "Array").status_code == 204
    assert _value(client, eid) == [1, 2, 3, 3, 4, 5]
    assert _put(client, eid, {"$push": {"$each": [-1, 0], "$position": 0}}, "Array").status_code == 204
    assert _value(client, eid) == [-1, 0, 1, 2, 3, 3, 4, 5]


def test_push_keeps_objects_and_arrays_as_items(client: ApiClient) -> None:
    """orion-api.md, "$push": "add an item to the array", whatever the item."""
    eid = _entity(client, A=([1], "Array"))
    assert _put(client, eid, {"$push": {"y": 2}}, "Array").status_code == 204
    assert _put(client, eid, {"$push": ["z"]}, "Array").status_code == 204
    assert _value(client, eid) == [1, {"y": 2}, ["z"]]


def test_add_to_set_avoids_duplicates(client: ApiClient) -> None:
    """orion-api.md, "$addToSet": [1, 2, 3] with 4 is [1, 2, 3, 4]; with 3, unchanged."""
    eid = _entity(client, A=([1, 2, 3], "Array"))
    assert _put(client, eid, {"$addToSet": 4}, "Array").status_code == 204
    assert _value(client, eid) == [1, 2, 3, 4]
    assert _put(client, eid, {"$addToSet": 3}, "Array").status_code == 204
    assert _value(client, eid) == [1, 2, 3, 4]


def test_pull_removes_all_occurrences(client: ApiClient) -> None:
    """orion-api.md, "$pull": "removes all occurrences of the item passed as parameter":
    [1, 2, 3] with 2 is [1, 3]."""
    eid = _entity(client, A=([1, 2, 3], "Array"), B=([2, 1, 2, 3, 2], "Array"))
    assert _put(client, eid, {"$pull": 2}, "Array").status_code == 204
    assert _put(client, eid, {"$pull": 2}, "Array", name="B").status_code == 204
    assert _attrs(client, eid) == {"A": [1, 3], "B": [1, 3]}


def test_pull_all_removes_every_member_given(client: ApiClient) -> None:
    """orion-api.md, "$pullAll": "All the occurrences of any of the members of the array used
    as parameter are removed": [1, 2, 3] with [2, 3] is [1]."""
    eid = _entity(client, A=([1, 2, 3], "Array"), B=([3, 1, 2, 3, 2], "Array"))
    assert _put(client, eid, {"$pullAll": [2, 3]}, "Array").status_code == 204
    assert _put(client, eid, {"$pullAll": [2, 3]}, "Array", name="B").status_code == 204
    assert _attrs(client, eid) == {"A": [1], "B": [1]}


@pytest.mark.parametrize(("op", "argument"), [("$push", 1), ("$addToSet", 1), ("$pull", 1), ("$pullAll", [1])])
def test_array_operators_on_a_non_array_are_refused(client: ApiClient, op: str, argument: Any) -> None:
    """orion-api.md, "$push"... "To be used with attributes which value is an array"; "How Orion
    deals with operators": MongoDB refuses them on anything else (Orion: 500; broker: 400)."""
    eid = _entity(client, A=("foo", "Text"))
    error_of(_put(client, eid, {op: argument}, "Array"), 400, "BadRequest")
    assert _value(client, eid) == "foo"


def test_set_adds_and_updates_sub_keys(client: ApiClient) -> None:
    """orion-api.md, "$set": {"X": 1, "Y": 2} with {"$set": {"Y": 20, "Z": 30}} is
    {"X": 1, "Y": 20, "Z": 30}."""
    eid = _entity(client, A=({"X": 1, "Y": 2}, "Object"))
    assert _put(client, eid, {"$set": {"Y": 20, "Z": 30}}, "Object").status_code == 204
    assert _value(client, eid) == {"X": 1, "Y": 20, "Z": 30}


def test_set_with_a_non_object_is_a_regular_update(client: ApiClient) -> None:
    """orion-api.md, "$set": {"$set": "foo"} "has the same effect than a regular update"."""
    eid = _entity(client, A=({"X": 1}, "Object"), B=({"X": 1}, "Object"))
    assert _put(client, eid, {"$set": "foo"}, "Object").status_code == 204
    assert _put(client, eid, "foo", "Object", name="B").status_code == 204
    assert _attrs(client, eid) == {"A": "foo", "B": "foo"}


def test_set_on_an_empty_object(client: ApiClient) -> None:
    """orion-api.md, "$set": "$set will work if the previous attribute value is an empty object"."""
    eid = _entity(client, A=({}, "Object"))
    assert _put(client, eid, {"$set": {"Y": 20, "Z": 30}}, "Object").status_code == 204
    assert _value(client, eid) == {"Y": 20, "Z": 30}


def test_set_on_an_attribute_that_does_not_exist_yet(client: ApiClient) -> None:
    """orion-api.md, "$set": "$set will work if the attribute doesn't previously exist in the
    entity (although the entity itself has to exist ...)"."""
    eid = _entity(client, B=(1, "Number"))
    response = client.post(f"/v2/entities/{eid}/attrs", json={"A": {"value": {"$set": {"X": 1}}, "type": "Object"}})
    assert response.status_code == 204, response.text
    assert _attrs(client, eid) == {"A": {"X": 1}, "B": 1}
    response = client.post(f"/v2/entities/{new_id()}/attrs", json={"A": {"value": {"$set": {"X": 1}}, "type": "Object"}})
    error_of(response, 404, "NotFound", "The requested entity has not been found. Check type and id")


def test_set_into_a_non_object_is_refused(client: ApiClient, listener: Receiver) -> None:
    """orion-api.md, "$set": "$set will not work if the previous value of the attribute is not
    an object (i.e. a context string like "foo")": Orion's InternalServerError is a 400 here,
    with MongoDB's explanation; the value stays and nothing is notified."""
    eid = _entity(client, A=("foo", "Text"))
    path = _subscribe(client, listener, eid)
    body = error_of(_put(client, eid, {"$set": {"Y": 20, "Z": 30}}, "Number"), 400, "BadRequest")
    assert body["description"].endswith("Cannot create field 'Y' in element {value: \"foo\"}")
    assert client.get(f"/v2/entities/{eid}/attrs/A").json() == {"value": "foo", "type": "Text", "metadata": {}}
    assert _notified(client, listener, path, 0) == []


@pytest.mark.parametrize("removal", [{"X": 1}, {"X": None}, {"X": "anything"}])
def test_unset_removes_sub_keys_whatever_their_value(client: ApiClient, removal: dict[str, Any]) -> None:
    """orion-api.md, "$unset": {"X": 1, "Y": 2} with {"$unset": {"X": 1}} is {"Y": 2}; "The
    actual value of the sub-key used with $unset is not relevant" ({"X": null} too)."""
    eid = _entity(client, A=({"X": 1, "Y": 2}, "Object"))
    assert _put(client, eid, {"$unset": removal}, "Object").status_code == 204
    assert _value(client, eid) == {"Y": 2}


@pytest.mark.parametrize("removal", ["X", 1, None, ["X"], {"W": 1}])
def test_unset_ignores_non_objects_and_missing_sub_keys(client: ApiClient, removal: Any) -> None:
    """orion-api.md, "$unset": "if the value of $unset is not an object, it will be ignored.
    Not existing sub-keys are also ignored"."""
    eid = _entity(client, A=({"X": 1, "Y": 2}, "Object"))
    assert _put(client, eid, {"$unset": removal}, "Object").status_code == 204
    assert _value(client, eid) == {"X": 1, "Y": 2}


def test_set_and_unset_combined(client: ApiClient) -> None:
    """orion-api.md, "Combining $set and $unset": {"X": 1, "Y": 2} with {"$set": {"Y": 20, "Z":
    30}, "$unset": {"X": 1}}. The manual prints {"Y": 20} as the result, a slip: $set keeps
    Z (Orion's case set_and_unset_same_time shows {"Y": 20, "Z": 30})."""
    eid = _entity(client, A=({"X": 1, "Y": 2}, "Object"))
    operation = {"$set": {"Y": 20, "Z": 30}, "$unset": {"X": 1}}
    assert _put(client, eid, operation, "Object").status_code == 204
    assert _value(client, eid) == {"Y": 20, "Z": 30}


def test_set_and_unset_of_one_sub_key_is_an_error(client: ApiClient) -> None:
    """orion-api.md, "Combining $set and $unset": "The sub-keys in the $set value cannot be at
    the same time in the $unset value ... would result in error" (MongoDB's conflict; a 400)."""
    eid = _entity(client, A=({"X": 1, "Y": 2}, "Object"))
    response = _put(client, eid, {"$set": {"X": 20, "Z": 30}, "$unset": {"X": 1}}, "Object")
    body = error_of(response, 400, "BadRequest")
    assert body["description"].endswith("Updating the path 'attrs.A.value.X' would create a conflict at 'attrs.A.value.X'")
    assert _value(client, eid) == {"X": 1, "Y": 2}


# -- "How Orion deals with operators" ---------------------------------------------------------------


def test_mongodb_error_is_passed_on_never_as_a_crash(client: ApiClient, listener: Receiver) -> None:
    """orion-api.md, "How Orion deals with operators": {"$inc": "foo"} fails with MongoDB's
    "Cannot increment with non-numeric argument: {attrs.A.value: "foo"}". Orion answers 500
    InternalServerError; the broker 400 BadRequest with the same text, nothing written."""
    eid = _entity(client, A=(10, "Number"))
    path = _subscribe(client, listener, eid)
    body = error_of(_put(client, eid, {"$inc": "foo"}, "Number"), 400, "BadRequest")
    assert body["description"].endswith('Cannot increment with non-numeric argument: {attrs.A.value: "foo"}')
    assert _value(client, eid) == 10
    assert _notified(client, listener, path, 0) == []


@pytest.mark.parametrize(("current", "op"), [("foo", "$inc"), ([1], "$mul"), ({"x": 1}, "$inc")])
def test_arithmetic_on_a_non_number_is_refused(client: ApiClient, current: Any, op: str) -> None:
    """orion-api.md, "How Orion deals with operators": "$inc operator only support numerical
    values in MongoDB" (the stored value too): refused, value kept."""
    eid = _entity(client, A=(current, "Thing"))
    error_of(_put(client, eid, {op: 1}, "Number"), 400, "BadRequest")
    assert _value(client, eid) == current


def test_a_value_mixing_operators_and_keys(client: ApiClient) -> None:
    """orion-api.md, "How Orion deals with operators": for {"x": 1, "$inc": 1, "$mul": 10} Orion
    gives "randomly" +1, *10 or the literal object; the broker always the literal object (a
    value is an operation only when all its keys are operators)."""
    eid = _entity(client, A=(10, "Number"))
    weird = {"x": 1, "$inc": 1, "$mul": 10}
    assert _put(client, eid, weird, "Number").status_code == 204
    assert _value(client, eid) == weird


def test_two_operators_on_one_value_are_refused(client: ApiClient) -> None:
    """orion-api.md, "How Orion deals with operators": "use only one operator" ($set with $unset
    excepted); MongoDB refuses two updates of one path, and so does the broker (400)."""
    eid = _entity(client, A=(10, "Number"))
    body = error_of(_put(client, eid, {"$inc": 1, "$mul": 10}, "Number"), 400, "BadRequest")
    assert "would create a conflict at 'attrs.A.value'" in body["description"]
    assert _value(client, eid) == 10


# -- every update flavour ------------------------------------------------------------------------------


def test_every_update_request_takes_operators(client: ApiClient) -> None:
    """orion-api.md, "Update operators for attribute values": the example is POST
    /v2/entities/E/attrs/A, the subsections PUT; the operator is in the attribute's value,
    so every request that updates a value takes one: batch update and append, POST, PATCH,
    PUT of attributes, PUT of a value (Orion's case cover_all_update_flavours_with_operators)."""
    eid = _entity(client, **{f"A{i}": (10 * i, "Number") for i in range(1, 7)})

    def op(i: int) -> dict[str, Any]:
        return {f"A{i}": {"value": {"$inc": i}, "type": "Number"}}

    for action, i in (("update", 1), ("append", 2)):
        body = {"actionType": action, "entities": [{"id": eid, "type": "T", **op(i)}]}
        assert client.post("/v2/op/update", json=body).status_code == 204
    assert client.post(f"/v2/entities/{eid}/attrs", json=op(3)).status_code == 204
    assert client.patch(f"/v2/entities/{eid}/attrs", json=op(4)).status_code == 204
    assert client.put(f"/v2/entities/{eid}/attrs/A5", json={"value": {"$inc": 5}, "type": "Number"}).status_code == 204
    assert client.put(f"/v2/entities/{eid}/attrs/A6/value", json={"$inc": 6}).status_code == 204
    assert _attrs(client, eid) == {f"A{i}": 11 * i for i in range(1, 7)}


def test_value_update_keeps_type_and_metadata(client: ApiClient) -> None:
    """orion-api.md, "Update operators" with PUT /v2/entities/{id}/attrs/{attrName}/value (the
    value changes, the type and metadata stay, as for any value update)."""
    eid = new_id()
    create(client, {"id": eid, "type": "T",
                    "A": {"value": [1], "type": "List", "metadata": {"unit": {"value": "m", "type": "Text"}}}})
    assert client.put(f"/v2/entities/{eid}/attrs/A/value", json={"$push": 2}).status_code == 204
    assert client.get(f"/v2/entities/{eid}/attrs/A").json() == {
        "value": [1, 2], "type": "List", "metadata": {"unit": {"value": "m", "type": "Text"}}}


def test_key_values_updates_take_operators(client: ApiClient) -> None:
    """orion-api.md, "Update operators": the operator is the attribute's value, also in the
    keyValues form of an update (POST/PATCH /v2/entities/{id}/attrs?options=keyValues)."""
    eid = _entity(client, A=(1, "Number"), B=([1], "Array"))
    response = client.patch(f"/v2/entities/{eid}/attrs", params={"options": "keyValues"},
                            json={"A": {"$inc": 2}, "B": {"$push": 2}})
    assert response.status_code == 204, response.text
    assert _attrs(client, eid) == {"A": 3, "B": [1, 2]}


def test_operators_on_missing_attributes_or_entities(client: ApiClient) -> None:
    """orion-api.md, "Update operators": an operator is a value like another, so the requests'
    own rules hold: updating an attribute that does not exist fails (PUT attrs/{name} and
    attrs/{name}/value: 404; PATCH: 422), as does updating an entity that does not exist (404)."""
    eid = _entity(client, A=(1, "Number"))
    error_of(_put(client, eid, {"$inc": 1}, "Number", name="Z"), 404, "NotFound",
             "The entity does not have such an attribute")
    error_of(client.put(f"/v2/entities/{eid}/attrs/Z/value", json={"$inc": 1}), 404, "NotFound",
             "The entity does not have such an attribute")
    error_of(client.patch(f"/v2/entities/{eid}/attrs", json={"Z": {"value": {"$inc": 1}, "type": "Number"}}),
             422, "Unprocessable", f"do not exist: {eid} - [ Z ]")
    error_of(_put(client, new_id(), {"$inc": 1}, "Number"), 404, "NotFound",
             "The requested entity has not been found. Check type and id")
    assert _attrs(client, eid) == {"A": 1}


# -- "Usage in create or replace entity operations" ------------------------------------------------

CREATION = {
    "inc": ({"$inc": 4}, "Number"),
    "mul": ({"$mul": 1000}, "Number"),
    "minAbove": ({"$min": 3}, "Number"),
    "minBelow": ({"$min": -3}, "Number"),
    "maxAbove": ({"$max": 3}, "Number"),
    "maxBelow": ({"$max": -3}, "Number"),
    "dateMin": ({"$min": "2025-04-15T10:59:59.000Z"}, "DateTime"),
    "dateMax": ({"$max": "2024-04-15T10:59:59.000Z"}, "DateTime"),
    "set": ({"$set": {"X": 1}}, "Object"),
    "push": ({"$push": 4}, "Array"),
    "pushEach": ({"$push": {"$each": [4, 5]}}, "Array"),
    "pushObject": ({"$push": {"y": 2}}, "Array"),
    "addToSet": ({"$addToSet": 4}, "Array"),
    "pull": ({"$pull": 4}, "Array"),
    "pullAll": ({"$pullAll": [4]}, "Array"),
    "unset": ({"$unset": {"X": 1}}, "Object"),
    "B": (3, "Number"),
}
CREATED = {
    "inc": 4, "mul": 0, "minAbove": 0, "minBelow": -3, "maxAbove": 3, "maxBelow": 0,
    "dateMin": "1970-01-01T00:00:00.000Z", "dateMax": "2024-04-15T10:59:59.000Z",
    "set": {"X": 1}, "push": [4], "pushEach": [4, 5], "pushObject": [{"y": 2}], "addToSet": [4], "B": 3,
}


def _creation_attrs() -> dict[str, Any]:
    return {name: {"value": value, "type": type_} for name, (value, type_) in CREATION.items()}


def test_operators_on_entity_creation(client: ApiClient, listener: Receiver) -> None:
    """orion-api.md, "Usage in create or replace entity operations": numeric operators take 0 as
    reference ({"$inc": 4} is 4, {"$mul": 1000} is 0, $min/$max compare with 0), the epoch for a
    DateTime's $min/$max, {} for $set, [] for $push and $addToSet; $pull, $pullAll and $unset are
    ignored: their attribute is not created. The creation's notification shows the same values."""
    eid = new_id()
    subscription = {"subject": {"entities": [{"idPattern": f"^{eid}$"}]},
                    "notification": {"http": {"url": f"{listener.base}/{eid}"}}}
    assert client.post("/v2/subscriptions", json=subscription).status_code == 201
    response = client.post("/v2/entities", json={"id": eid, "type": "T", **_creation_attrs()})
    assert response.status_code == 201, response.text
    assert _attrs(client, eid) == CREATED
    assert _notified(client, listener, f"/{eid}", 1) == [CREATED]


def test_manual_example_of_an_ignored_operator_on_creation(client: ApiClient) -> None:
    """orion-api.md, "Usage in create or replace entity operations": "creating an entity with 2
    attributes, the first one containing an operator "A": {"value": {"$unset": 1}, ... } and the
    second one "B": {"value": 3, ...} ... will result in an entity with just one attribute, B"."""
    eid = new_id()
    create(client, {"id": eid, "type": "T", "A": {"value": {"$unset": 1}, "type": "Object"},
                    "B": {"value": 3, "type": "Number"}})
    assert client.get(f"/v2/entities/{eid}").json() == {
        "id": eid, "type": "T", "B": {"value": 3, "type": "Number", "metadata": {}}}


@pytest.mark.parametrize("how", ["PUT attrs", "batch replace"])
def test_operators_on_entity_replace_use_the_references(client: ApiClient, how: str) -> None:
    """orion-api.md, "Usage in create or replace entity operations": a replace starts from the
    references, not from the previous values (Orion's case replace_entity_with_operators: A=1,
    B=2 replaced by B={"$inc": 3}, C=3 gives B=3, C=3)."""
    eid = _entity(client, A=(1, "Number"), B=(2, "Number"), L=([7], "Array"))
    attrs = {"B": {"value": {"$inc": 3}, "type": "Number"}, "C": {"value": 3, "type": "Number"},
             "L": {"value": {"$pull": 7}, "type": "Array"}}
    if how == "PUT attrs":
        response = client.put(f"/v2/entities/{eid}/attrs", json=attrs)
    else:
        response = client.post("/v2/op/update", json={"actionType": "replace",
                                                       "entities": [{"id": eid, "type": "T", **attrs}]})
    assert response.status_code == 204, response.text
    assert _attrs(client, eid) == {"B": 3, "C": 3}


@pytest.mark.parametrize("how", ["upsert", "batch append", "batch appendStrict"])
def test_operators_creating_an_entity_through_other_requests(client: ApiClient, how: str) -> None:
    """orion-api.md, "Usage in create or replace entity operations": an entity created by
    POST /v2/entities?options=upsert or by a batch append (appendStrict) is a creation too."""
    eid = new_id()
    if how == "upsert":
        response = client.post("/v2/entities", params={"options": "upsert"},
                               json={"id": eid, "type": "T", **_creation_attrs()})
    else:
        response = client.post("/v2/op/update", json={"actionType": how.split()[1],
                                                       "entities": [{"id": eid, "type": "T", **_creation_attrs()}]})
    assert response.status_code in (201, 204), response.text
    assert _attrs(client, eid) == CREATED


@pytest.mark.parametrize("how", ["upsert", "batch append", "POST attrs"])
def test_append_to_an_existing_entity(client: ApiClient, how: str) -> None:
    """orion-api.md, "Update operators" and "Usage in create or replace entity operations": an
    append to an existing entity operates on the attributes it has and creates the others from
    the references (Orion's case append_attribute_with_operator)."""
    eid = _entity(client, A=(1, "Number"), L=([1, 2], "Array"))
    attrs = {"A": {"value": {"$inc": 2}, "type": "Number"}, "N": {"value": {"$inc": 5}, "type": "Number"},
             "L": {"value": {"$pull": 2}, "type": "Array"}, "M": {"value": {"$push": 9}, "type": "Array"},
             "G": {"value": {"$pullAll": [1]}, "type": "Array"}}
    if how == "upsert":
        response = client.post("/v2/entities", params={"options": "upsert"}, json={"id": eid, "type": "T", **attrs})
    elif how == "batch append":
        response = client.post("/v2/op/update", json={"actionType": "append",
                                                       "entities": [{"id": eid, "type": "T", **attrs}]})
    else:
        response = client.post(f"/v2/entities/{eid}/attrs", json=attrs)
    assert response.status_code == 204, response.text
    assert _attrs(client, eid) == {"A": 3, "N": 5, "L": [1], "M": [9]}


@pytest.mark.parametrize("how", ["POST attrs?options=append", "batch appendStrict"])
def test_append_strict_with_operators(client: ApiClient, how: str) -> None:
    """orion-api.md, "Update operators" with the append-only flavours: a new attribute is
    created from the references, an existing one is refused and kept (422 PartialUpdate,
    "already exist", as Orion's case append_and_append_only_combinations answers)."""
    eid = _entity(client, A=(1, "Number"))
    attrs = {"A": {"value": {"$inc": 2}, "type": "Number"}, "N": {"value": {"$mul": 5}, "type": "Number"}}
    if how.startswith("POST"):
        response = client.post(f"/v2/entities/{eid}/attrs", params={"options": "append"}, json=attrs)
        label = eid
    else:
        response = client.post("/v2/op/update", json={"actionType": "appendStrict",
                                                       "entities": [{"id": eid, "type": "T", **attrs}]})
        label = f"{eid}/T"
    body = error_of(response, 422, "PartialUpdate")
    assert body["description"] == f"one or more of the attributes in the request already exist: {label} - [ A ]"
    assert _attrs(client, eid) == {"A": 1, "N": 0}


def test_batch_update_and_delete_with_operators(client: ApiClient) -> None:
    """orion-api.md, "Update operators" and "POST /v2/op/update": actionType update applies the
    operator to the existing attribute (a missing one is an error, nothing created); delete
    removes the attribute, its value (an operator here) "is not relevant"."""
    eid = _entity(client, A=(1, "Number"), B=(2, "Number"))
    body = {"actionType": "update", "entities": [{"id": eid, "type": "T",
                                                  "A": {"value": {"$mul": 7}, "type": "Number"},
                                                  "Z": {"value": {"$inc": 1}, "type": "Number"}}]}
    error_of(client.post("/v2/op/update", json=body), 422, "PartialUpdate")
    assert _attrs(client, eid) == {"A": 7, "B": 2}
    body = {"actionType": "delete", "entities": [{"id": eid, "type": "T",
                                                  "B": {"value": {"$inc": 1}, "type": "Number"}}]}
    assert client.post("/v2/op/update", json=body).status_code == 204
    assert _attrs(client, eid) == {"A": 7}


# -- what is notified (the manual is silent; Orion's cases 3814_attribute_update_operators) -----------


def test_notification_shows_the_resulting_value(client: ApiClient, listener: Receiver) -> None:
    """The notification of an operator update carries the attribute's new value, never the
    operator (Orion's cases inc_operator, push_operator, set_and_unset_same_time ...)."""
    eid = _entity(client, A=(1, "Number"), L=(["a"], "Array"), O=({"X": 1, "Y": 2}, "Object"))
    path = _subscribe(client, listener, eid)
    assert _put(client, eid, {"$inc": 2}, "Number").status_code == 204
    assert client.patch(f"/v2/entities/{eid}/attrs", json={
        "L": {"value": {"$push": {"$each": ["b", "c"]}}, "type": "Array"},
        "O": {"value": {"$set": {"Y": 20, "Z": 30}, "$unset": {"X": 1}}, "type": "Object"}}).status_code == 204
    assert client.put(f"/v2/entities/{eid}/attrs/A/value", json={"$mul": 10}).status_code == 204
    assert _notified(client, listener, path, 3) == [
        {"A": 3, "L": ["a"], "O": {"X": 1, "Y": 2}},
        {"A": 3, "L": ["a", "b", "c"], "O": {"Y": 20, "Z": 30}},
        {"A": 30, "L": ["a", "b", "c"], "O": {"Y": 20, "Z": 30}},
    ]


def test_an_operator_update_always_notifies(client: ApiClient, listener: Receiver) -> None:
    """An update with an operator counts as a change even when the value stays ($min 20 on 10,
    $addToSet of a present item, $unset of a missing key): Orion hands the operation to MongoDB
    and cannot compare values (its cases min_operator, addtoset_operator, unset_operator)."""
    eid = _entity(client, A=(10, "Number"), L=([1], "Array"), O=({"X": 1}, "Object"))
    path = _subscribe(client, listener, eid)
    assert _put(client, eid, {"$min": 20}, "Number").status_code == 204
    assert _put(client, eid, {"$addToSet": 1}, "Array", name="L").status_code == 204
    assert _put(client, eid, {"$unset": {"W": 1}}, "Object", name="O").status_code == 204
    assert _notified(client, listener, path, 3) == [{"A": 10, "L": [1], "O": {"X": 1}}] * 3


# -- user/update_operators.md: atomic, no race between applications ------------------------------------


@pytest.fixture
def race_db(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database two brokers share, as workers do: an SQLite file opened ``shared``, or PostgreSQL."""
    if store.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/race.db?shared=1"
    return fresh_store(request, "postgresql", tmp_path, suffix="_race")


def test_concurrent_increments_lose_nothing(race_db: str) -> None:
    """user/update_operators.md: applications A and B both send {"$inc": 1} to Zone1's count
    at the same time; "Orion ensures that operations are executed atomically": 43 plus every
    increment, whatever their order. Here A and B are two brokers on one database (the
    broker's workers), each sending many increments, some of them concurrently. (The manual
    writes POST /v2/entities/Zone1/attrs/count; that URL takes GET, PUT and DELETE, in Orion
    as here, so PUT it is.)"""
    increments, per_broker = 15, 2
    with broker_client(race_db) as setup:
        create(setup, {"id": "Zone1", "type": "Zone", "count": {"value": 43, "type": "Number"}})
    ready = threading.Barrier(2)

    def application() -> None:
        with broker_client(race_db) as c:
            ready.wait()

            async def burst() -> list[int]:
                sends = [c._http.put("/v2/entities/Zone1/attrs/count",
                                      json={"value": {"$inc": 1}, "type": "Number"})
                         for _ in range(per_broker)]
                return [r.status_code for r in await asyncio.gather(*sends)]

            for _ in range(increments):
                assert c._run(burst()) == [204] * per_broker

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(application) for _ in range(2)]:
            future.result()
    with broker_client(race_db) as check:
        assert _value(check, "Zone1", "count") == 43 + 2 * increments * per_broker
