"""Batch operations as a client sees them: POST /v2/op/update and POST /v2/op/query.

Each group cites the section of Orion's NGSI-v2 manual (orion-api.md) it follows. Tests
marked ``xfail(strict=True)`` state where the broker differs from the manual today.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.broker.api_client import ApiClient, broker_client, create, error_of, ids_of, new_id


@pytest.fixture(scope="module")
def client() -> Iterator[ApiClient]:
    with broker_client() as c:
        yield c


def _update(client: ApiClient, action: str, entities: list[dict[str, Any]], **kwargs: Any) -> httpx.Response:
    return client.post("/v2/op/update", json={"actionType": action, "entities": entities}, **kwargs)


def _kv(client: ApiClient, entity_id: str, **params: str) -> Any:
    response = client.get(f"/v2/entities/{entity_id}", params={"options": "keyValues", **params})
    assert response.status_code == 200, response.text
    return response.json()


def _missing(client: ApiClient, entity_id: str) -> bool:
    return client.get(f"/v2/entities/{entity_id}").status_code == 404


# --- Update `POST /v2/op/update`: the action types ------------------------------------------


def test_append_creates_and_updates(client: ApiClient) -> None:
    e1, e2 = new_id(), new_id()
    response = _update(client, "append", [
        {"id": e1, "type": "Room", "temperature": {"value": 21.7}, "humidity": {"value": 60}},
        {"id": e2, "type": "Room", "temperature": {"value": 22.9}},
    ])
    assert response.status_code == 204 and response.content == b""
    assert _kv(client, e1) == {"id": e1, "type": "Room", "temperature": 21.7, "humidity": 60}
    # append on an existing entity: POST /v2/entities/<id>/attrs
    response = _update(client, "append", [{"id": e1, "type": "Room", "temperature": {"value": 5}, "co2": {"value": 1}}])
    assert response.status_code == 204
    assert _kv(client, e1) == {"id": e1, "type": "Room", "temperature": 5, "humidity": 60, "co2": 1}
    assert _kv(client, e2)["temperature"] == 22.9


def test_append_without_type_creates_a_thing(client: ApiClient) -> None:
    eid = new_id()
    assert _update(client, "append", [{"id": eid, "A": {"value": 1}}]).status_code == 204
    assert _kv(client, eid) == {"id": eid, "type": "Thing", "A": 1}


def test_append_with_key_values(client: ApiClient) -> None:
    eid = new_id()
    assert _update(client, "append", [{"id": eid, "A": 3, "B": "x"}], params={"options": "keyValues"}).status_code == 204
    assert client.get(f"/v2/entities/{eid}/attrs/A").json() == {"type": "Number", "value": 3, "metadata": {}}


def test_append_goes_to_the_service_path(client: ApiClient) -> None:
    eid = new_id()
    assert _update(client, "append", [{"id": eid}], headers={"Fiware-ServicePath": "/s/t"}).status_code == 204
    assert _kv(client, eid, attrs="servicePath")["servicePath"] == "/s/t"
    error_of(client.get(f"/v2/entities/{eid}", headers={"Fiware-ServicePath": "/s"}), 404, "NotFound")


def test_append_strict(client: ApiClient) -> None:
    e1, e2, e3 = new_id(), new_id(), new_id()
    _update(client, "append", [{"id": e1, "type": "T", "A": {"value": 1}, "B": {"value": 1}},
                               {"id": e2, "type": "T", "A": {"value": 1}, "B": {"value": 1}}])
    # appendStrict on a new entity creates it
    assert _update(client, "appendStrict", [{"id": e3, "type": "T", "A": {"value": 1}}]).status_code == 204
    # all attributes already exist everywhere: Unprocessable
    response = _update(client, "appendStrict", [{"id": e1, "type": "T", "A": {"value": 2}, "B": {"value": 2}},
                                                {"id": e2, "type": "T", "A": {"value": 2}, "B": {"value": 2}}])
    error_of(response, 422, "Unprocessable",
             f"one or more of the attributes in the request already exist: {e1}/T - [ A, B ], {e2}/T - [ A, B ]")
    # E1 gets C, E2 has nothing new: PartialUpdate naming E2 only
    response = _update(client, "appendStrict", [{"id": e1, "type": "T", "C": {"value": 3}},
                                                {"id": e2, "type": "T", "A": {"value": 2}, "B": {"value": 2}}])
    error_of(response, 422, "PartialUpdate",
             f"one or more of the attributes in the request already exist: {e2}/T - [ A, B ]")
    assert _kv(client, e1) == {"id": e1, "type": "T", "A": 1, "B": 1, "C": 3}
    assert _kv(client, e2) == {"id": e2, "type": "T", "A": 1, "B": 1}
    # the type shows in the description only when the request gives it
    error_of(_update(client, "appendStrict", [{"id": e1, "A": {"value": 1}}]), 422, "Unprocessable",
             f"one or more of the attributes in the request already exist: {e1} - [ A ]")


def test_update(client: ApiClient) -> None:
    e1, e2 = new_id(), new_id()
    _update(client, "append", [{"id": e1, "type": "T", "A": {"value": 1}}, {"id": e2, "type": "T", "A": {"value": 1}}])
    assert _update(client, "update", [{"id": e1, "type": "T", "A": {"value": 2}},
                                      {"id": e2, "A": {"value": 3}}]).status_code == 204
    assert (_kv(client, e1)["A"], _kv(client, e2)["A"]) == (2, 3)


def test_update_failures(client: ApiClient) -> None:
    e1, f, g = new_id(), new_id(), new_id()
    _update(client, "append", [{"id": e1, "type": "T", "A": {"value": 1}}])
    # none of the entities exist: NotFound
    response = _update(client, "update", [{"id": f, "type": "T", "A": {"value": 1}},
                                          {"id": g, "type": "T", "A": {"value": 1}}])
    error_of(response, 404, "NotFound", f"do not exist: {f}/T - [entity itself], {g}/T [entity itself]")
    # the existing entity fails fully (missing attributes): Unprocessable
    response = _update(client, "update", [{"id": e1, "type": "T", "C": {"value": 1}, "D": {"value": 1}},
                                          {"id": g, "type": "T", "A": {"value": 1}}])
    error_of(response, 422, "Unprocessable", f"do not exist: {e1}/T - [ C, D ], {g}/T [entity itself]")
    # one attribute of the existing entity is updated: PartialUpdate
    response = _update(client, "update", [{"id": e1, "type": "T", "A": {"value": 9}, "D": {"value": 1}},
                                          {"id": g, "type": "T", "A": {"value": 1}}])
    error_of(response, 422, "PartialUpdate", f"do not exist: {e1}/T - [ D ], {g}/T [entity itself]")
    assert _kv(client, e1) == {"id": e1, "type": "T", "A": 9}
    assert _missing(client, g)  # update never creates


def test_replace(client: ApiClient) -> None:
    e1, f, g = new_id(), new_id(), new_id()
    _update(client, "append", [{"id": e1, "type": "T", "A": {"value": 1}, "B": {"value": 1}}])
    assert _update(client, "replace", [{"id": e1, "type": "T", "C": {"value": 3}}]).status_code == 204
    assert _kv(client, e1) == {"id": e1, "type": "T", "C": 3}
    response = _update(client, "replace", [{"id": f, "type": "T", "A": {"value": 1}},
                                           {"id": g, "type": "T", "A": {"value": 1}}])
    error_of(response, 404, "NotFound", f"do not exist: {f}/T - [entity itself], {g}/T [entity itself]")
    response = _update(client, "replace", [{"id": e1, "type": "T", "Z": {"value": 1}},
                                           {"id": g, "type": "T", "A": {"value": 1}}])
    error_of(response, 422, "PartialUpdate", f"do not exist: {g}/T - [entity itself]")
    assert _kv(client, e1) == {"id": e1, "type": "T", "Z": 1}


def test_delete_attributes_and_entities(client: ApiClient) -> None:
    e1, e2, nope = new_id(), new_id(), new_id()
    _update(client, "append", [{"id": e1, "type": "T", "A": {"value": 1}, "B": {"value": 2}},
                               {"id": e2, "type": "T", "A": {"value": 1}}])
    # attributes named in the entity are deleted, whatever their value
    assert _update(client, "delete", [{"id": e1, "type": "T", "A": {}}]).status_code == 204
    assert _kv(client, e1) == {"id": e1, "type": "T", "B": 2}
    error_of(_update(client, "delete", [{"id": e1, "type": "T", "Q": {"value": 1}}]), 422, "Unprocessable",
             f"do not exist: {e1}/T - [ Q ]")
    # an entity without attributes is deleted itself
    response = _update(client, "delete", [{"id": e1, "type": "T"}, {"id": nope}])
    error_of(response, 422, "PartialUpdate", f"do not exist: {nope} - [entity itself]")
    assert _missing(client, e1)
    assert _update(client, "delete", [{"id": e2}]).status_code == 204
    error_of(_update(client, "delete", [{"id": e2}]), 404, "NotFound", f"do not exist: {e2} - [entity itself]")


def test_failed_entity_does_not_stop_the_others(client: ApiClient) -> None:
    e1, e2, nope = new_id(), new_id(), new_id()
    _update(client, "append", [{"id": e1, "A": {"value": 1}}, {"id": e2, "A": {"value": 1}}])
    response = _update(client, "update", [{"id": e1, "A": {"value": 2}}, {"id": nope, "A": {"value": 2}},
                                          {"id": e2, "A": {"value": 2}}])
    error_of(response, 422, "PartialUpdate", f"do not exist: {nope} - [entity itself]")
    assert (_kv(client, e1)["A"], _kv(client, e2)["A"]) == (2, 2)


def test_overrides_metadata_on_request(client: ApiClient) -> None:
    # Metadata update semantics, `overrideMetadata` option (batch update accepts it)
    eid = new_id()
    _update(client, "append", [{"id": eid, "A": {"value": 1, "metadata": {"m": {"value": 1}}}}])
    _update(client, "update", [{"id": eid, "A": {"value": 2, "metadata": {"n": {"value": 2}}}}])
    assert set(client.get(f"/v2/entities/{eid}/attrs/A").json()["metadata"]) == {"m", "n"}
    _update(client, "update", [{"id": eid, "A": {"value": 3, "metadata": {"n": {"value": 3}}}}],
            params={"options": "overrideMetadata"})
    assert set(client.get(f"/v2/entities/{eid}/attrs/A").json()["metadata"]) == {"n"}


# Differences regarding the original NGSIv2 spec, Deprecated features: "POST /v2/op/update accepts
# the same action types as NGSIv1, that is APPEND, APPEND_STRICT, UPDATE, DELETE and REPLACE".
@pytest.mark.parametrize("action", ["APPEND", "APPEND_STRICT"])
def test_deprecated_upper_case_action_types(client: ApiClient, action: str) -> None:
    eid = new_id()
    assert _update(client, action, [{"id": eid, "A": {"value": 1}}]).status_code == 204
    assert _kv(client, eid)["A"] == 1


def test_unknown_action_types_are_refused(client: ApiClient) -> None:
    for action in ("bogus", "append_strict", "Append", ""):
        error_of(_update(client, action, [{"id": new_id()}]), 400, "BadRequest",
                 "invalid update action type: right ones are: append, appendStric, delete, replace, update")


@pytest.mark.parametrize(("payload", "description"), [
    ({"entities": [{"id": "X"}]}, "Invalid JSON payload, mandatory field /actionType/ not found"),
    ({"actionType": "append"}, "Invalid JSON payload, mandatory field /entities/ not found"),
    ({"actionType": "append", "entities": []}, "empty entities vector"),
    ({"actionType": "append", "entities": [{"id": "X"}], "extra": 1}, "Unrecognized field in JSON payload: /extra/"),
    ({"actionType": "append", "entities": [{"type": "T"}]}, "nor /id/ nor /idPattern/ present"),
    ({"actionType": "append", "entities": [{"id": "X", "A": {"value": "<"}}]}, "Invalid characters in attribute value"),
    ({}, "empty payload"),
    ([], None),
])
def test_bad_update_payloads(client: ApiClient, payload: Any, description: str | None) -> None:
    error_of(client.post("/v2/op/update", json=payload), 400, "BadRequest", description)


def test_bad_entity_writes_nothing(client: ApiClient) -> None:
    good = new_id()
    response = _update(client, "append", [{"id": good, "A": {"value": 1}}, {"id": new_id(), "A": 5}])
    error_of(response, 400, "BadRequest")
    assert _missing(client, good)  # the whole payload is checked before anything is written


def test_update_with_id_pattern_is_not_implemented(client: ApiClient) -> None:
    response = _update(client, "update", [{"idPattern": ".*", "type": "T", "A": {"value": 1}}])
    assert response.status_code == 501


# --- Query `POST /v2/op/query` --------------------------------------------------------------


@pytest.fixture(scope="module")
def world(client: ApiClient) -> dict[str, str]:
    """A tenant with rooms and cars, created in order Q1, Q2, Q3, Q4."""
    headers = {"Fiware-Service": new_id("q").lower()}
    response = _update(client, "append", [
        {"id": "Q1", "type": "Room", "temperature": {"value": 21, "metadata": {"accuracy": {"value": 0.9}}},
         "humidity": {"value": 40}},
        {"id": "Q2", "type": "Room", "temperature": {"value": 25}, "pressure": {"value": 1}},
        {"id": "Q3", "type": "Car", "speed": {"value": 80}, "temperature": {"value": 40},
         "location": {"type": "geo:json", "value": {"type": "Point", "coordinates": [-3.7, 40.4]}}},
        {"id": "Q4", "type": "Car", "speed": {"value": 90}},
    ], headers=headers)
    assert response.status_code == 204
    return headers


def _query(client: ApiClient, headers: dict[str, str], body: Any, **params: str) -> httpx.Response:
    return client.post("/v2/op/query", json=body, params=params or None, headers=headers)


@pytest.mark.parametrize(("body", "expected"), [
    ({"entities": [{"idPattern": ".*", "type": "Room"}]}, ["Q1", "Q2"]),
    ({"entities": [{"idPattern": ".*", "type": "Room"}, {"id": "Q4", "type": "Car"}]}, ["Q1", "Q2", "Q4"]),
    ({"entities": [{"id": "Q3"}]}, ["Q3"]),
    ({"entities": [{"id": "Q3", "type": "Room"}]}, []),
    ({"entities": [{"idPattern": "^Q[34]", "typePattern": "^C"}]}, ["Q3", "Q4"]),
    ({"entities": [{"idPattern": ".*", "typePattern": "oo"}]}, ["Q1", "Q2"]),
    ({"entities": [{"id": "nothing"}]}, []),
    ({"entities": [{"idPattern": ".*"}], "expression": {"q": "temperature>22"}}, ["Q2", "Q3"]),
    ({"expression": {"q": "temperature>22;speed"}}, ["Q3"]),
    ({"expression": {"q": "!temperature"}}, ["Q4"]),
    ({"expression": {"mq": "temperature.accuracy==0.9"}}, ["Q1"]),
    ({"expression": {"georel": "near;maxDistance:1000", "geometry": "point", "coords": "40.4,-3.7"}}, ["Q3"]),
    ({"attrs": ["speed"]}, ["Q1", "Q2", "Q3", "Q4"]),  # attrs selects no entity, only attributes
])
def test_query_selection(client: ApiClient, world: dict[str, str], body: dict[str, Any], expected: list[str]) -> None:
    response = _query(client, world, body)
    assert response.headers["content-type"] == "application/json"
    assert ids_of(response) == expected


def test_query_projection(client: ApiClient, world: dict[str, str]) -> None:
    body = _query(client, world, {"entities": [{"id": "Q1"}], "attrs": ["temperature"]}).json()
    assert body == [{"id": "Q1", "type": "Room", "temperature": {
        "type": "Number", "value": 21, "metadata": {"accuracy": {"type": "Number", "value": 0.9}}}}]
    body = _query(client, world, {"entities": [{"id": "Q1"}], "attrs": ["temperature"], "metadata": ["nothing"]}).json()
    assert body[0]["temperature"]["metadata"] == {}
    body = _query(client, world, {"entities": [{"id": "Q2"}], "attrs": ["dateCreated", "*"]}, options="keyValues").json()
    assert set(body[0]) == {"id", "type", "temperature", "pressure", "dateCreated"}


def test_query_representations(client: ApiClient, world: dict[str, str]) -> None:
    body = _query(client, world, {"entities": [{"idPattern": ".*", "type": "Car"}]}, options="keyValues").json()
    assert body == [{"id": "Q3", "type": "Car", "speed": 80, "temperature": 40,
                     "location": {"type": "Point", "coordinates": [-3.7, 40.4]}},
                    {"id": "Q4", "type": "Car", "speed": 90}]
    body = _query(client, world, {"entities": [{"idPattern": ".*", "type": "Room"}], "attrs": ["temperature", "humidity"]},
                  options="values").json()
    assert body == [[21, 40], [25]]


def test_query_paging_order_and_count(client: ApiClient, world: dict[str, str]) -> None:
    everything = {"entities": [{"idPattern": ".*"}]}
    response = _query(client, world, everything, options="count", limit="2", offset="1")
    assert ids_of(response) == ["Q2", "Q3"]
    assert response.headers["fiware-total-count"] == "4"
    assert "fiware-total-count" not in _query(client, world, everything).headers
    assert ids_of(_query(client, world, everything, orderBy="!id", limit="3")) == ["Q4", "Q3", "Q2"]
    assert ids_of(_query(client, world, everything, orderBy="temperature")) == ["Q4", "Q1", "Q2", "Q3"]
    response = _query(client, world, {"expression": {"q": "temperature"}}, options="count", limit="1")
    assert (ids_of(response), response.headers["fiware-total-count"]) == (["Q1"], "3")
    assert _query(client, world, everything, offset="10").json() == []
    error_of(_query(client, world, everything, limit="1001"), 400, "BadRequest", "Bad pagination limit: /1001/ [max: 1000]")


def test_query_follows_service_path(client: ApiClient) -> None:
    headers = {"Fiware-Service": new_id("q").lower()}
    create(client, {"id": "InA", "type": "T"}, headers={**headers, "Fiware-ServicePath": "/a"})
    create(client, {"id": "InB", "type": "T"}, headers={**headers, "Fiware-ServicePath": "/b"})
    body = {"entities": [{"idPattern": ".*"}]}
    assert ids_of(_query(client, {**headers, "Fiware-ServicePath": "/a"}, body)) == ["InA"]
    assert ids_of(_query(client, {**headers, "Fiware-ServicePath": "/a,/b"}, body)) == ["InA", "InB"]
    assert ids_of(_query(client, headers, body)) == ["InA", "InB"]


def test_deprecated_attributes_field(client: ApiClient, world: dict[str, str]) -> None:
    # Deprecated features: `attributes` = attrs + a unary filter on them
    body = _query(client, world, {"attributes": ["pressure"]}, options="keyValues").json()
    assert body == [{"id": "Q2", "type": "Room", "pressure": 1}]


@pytest.mark.parametrize(("body", "description"), [
    ({}, "empty payload"),
    ({"foo": 1}, "Invalid JSON payload, no relevant fields found"),
    ({"entities": [{"type": "Room"}]}, "nor /id/ nor /idPattern/ present"),
    ({"entities": [{"id": "Q1", "idPattern": "x"}]}, "Incompatible parameters: id, IdPattern"),
    ({"entities": [{"idPattern": "["}]}, "Invalid regex for entity idPattern"),
    ({"attrs": "speed"}, "the field /attrs/ must be a JSON array"),
    ({"entities": [{"id": "Q1"}], "other": 1}, "Unrecognized field in JSON payload: /other/"),
    ({"expression": {"q": ""}}, "q is empty"),
    ({"expression": {"q": "temperature>>1"}}, None),
    ({"expression": {"georel": "near;maxDistance:10", "geometry": "point"}},
     "partial geo expression: geometry, georel and coords have to be provided together"),
])
def test_bad_query_payloads(client: ApiClient, world: dict[str, str], body: Any, description: str | None) -> None:
    error_of(_query(client, world, body), 400, "BadRequest", description)


def test_query_http_rules(client: ApiClient) -> None:
    error_of(client.post("/v2/op/query", content=b"{bad", headers={"Content-Type": "application/json"}), 400, "ParseError")
    error_of(client.post("/v2/op/query", content=b'{"entities": []}', headers={"Content-Type": "text/plain"}),
             415, "UnsupportedMediaType")
    error_of(client.post("/v2/op/query", content=b"", headers={"Content-Type": "application/json"}),
             411, "ContentLengthRequired")
