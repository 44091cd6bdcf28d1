"""How entities, attribute values and entity types are rendered, as Orion's manual says.

Written from orion-api.md: "Simplified Entity Representation" (keyValues, values, unique
modes), "Get Attribute Value" (``GET /v2/entities/{id}/attrs/{name}/value`` for each kind
of value under each ``Accept`` header the section describes), "Update Attribute Value"
(the ``text/plain`` algorithm), "List Entity Types" (``GET /v2/types``: paging, ``count``,
``values``, ``noAttrDetail``) and "Retrieve entity information for a given type"
(``GET /v2/types/{type}``). Each test's docstring cites its section.

The types listing is computed from the stored entities, so the module runs on SQLite and on
PostgreSQL; each test works in a tenant of its own.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.broker.api_client import ApiClient, error_of

from .conftest import TenantEntities

ENTITY_NOT_FOUND = "The requested entity has not been found. Check type and id"
ATTRIBUTE_NOT_FOUND = "The entity does not have such an attribute"


class Tenant(TenantEntities):
    def json(self, path: str, **params: str) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        return response.json()


@pytest.fixture
def tenant(client: ApiClient) -> Tenant:
    return Tenant(client, "render")


# --- Simplified Entity Representation -------------------------------------------------------


@pytest.fixture
def car(tenant: Tenant) -> Tenant:
    tenant.add({"id": "Car1", "type": "Car", "branch": {"value": "Ford"}, "colour": {"value": "black"},
                "engine": {"value": 78.3}, "paint": {"value": "black"}})
    return tenant


def test_key_values_mode(car: Tenant) -> None:
    """orion-api.md, "Simplified Entity Representation": keyValues "represents the entity
    attributes by their values only, leaving out the information about type and metadata"."""
    assert car.json("/v2/entities/Car1", options="keyValues") == {
        "id": "Car1", "type": "Car", "branch": "Ford", "colour": "black", "engine": 78.3, "paint": "black"}


@pytest.mark.parametrize("path", ["/v2/entities/Car1", "/v2/entities/Car1/attrs"])
def test_values_mode_follows_the_attrs_order(car: Tenant, path: str) -> None:
    """orion-api.md, "Simplified Entity Representation": values mode is "an array of attribute
    values", id and type left out; "The order of the attributes in the array is specified by
    the attrs URI param (e.g. attrs=branch,colour,engine)"."""
    assert car.json(path, options="values", attrs="branch,colour,engine") == ["Ford", "black", 78.3]
    assert car.json(path, options="values", attrs="engine,branch,colour") == [78.3, "Ford", "black"]
    assert car.json(path, options="values", attrs="engine,missing,branch") == [78.3, "Ford"]


@pytest.mark.parametrize("options", [None, "keyValues"])
def test_attrs_gives_the_order_of_the_attributes(car: Tenant, options: str | None) -> None:
    """orion-api.md, "List Entities", "Retrieve Entity" and "Retrieve Entity Attributes",
    ``attrs``: "The attributes are retrieved in the order specified by this parameter"."""
    params = {"attrs": "engine,dateCreated,branch", **({"options": options} if options else {})}
    assert list(car.json("/v2/entities/Car1", **params)) == ["id", "type", "engine", "dateCreated", "branch"]
    assert list(car.json("/v2/entities/Car1/attrs", **params)) == ["engine", "dateCreated", "branch"]
    assert list(car.json("/v2/entities", **params)[0]) == ["id", "type", "engine", "dateCreated", "branch"]
    response = car.client.post("/v2/op/query", params={"options": options} if options else None, headers=car.headers,
                               json={"entities": [{"id": "Car1"}], "attrs": ["paint", "colour"]})
    assert list(response.json()[0]) == ["id", "type", "paint", "colour"]


def test_values_mode_without_attrs_has_every_value(car: Tenant) -> None:
    """orion-api.md, "Simplified Entity Representation": without attrs "the order is
    arbitrary": every value is there, once."""
    assert sorted(map(json.dumps, car.json("/v2/entities/Car1", options="values"))) == sorted(
        map(json.dumps, ["Ford", "black", 78.3, "black"]))


def test_values_mode_in_lists_and_batch_queries(car: Tenant) -> None:
    """orion-api.md, "Simplified Entity Representation": each entity of a list is its array
    of values, in the attrs order (``attrs`` URI param, or ``attrs`` of POST /v2/op/query)."""
    car.add({"id": "Car2", "type": "Car", "branch": {"value": "Seat"}, "engine": {"value": 60}})
    assert car.json("/v2/entities", options="values", attrs="engine,branch") == [[78.3, "Ford"], [60, "Seat"]]
    response = car.client.post("/v2/op/query", params={"options": "values"}, headers=car.headers,
                               json={"entities": [{"idPattern": ".*"}], "attrs": ["branch", "engine"]})
    assert response.status_code == 200, response.text
    assert response.json() == [["Ford", 78.3], ["Seat", 60]]


def test_unique_mode_does_not_repeat_values(car: Tenant) -> None:
    """orion-api.md, "Simplified Entity Representation": unique mode "is just like values
    mode, except that values are not repeated"."""
    assert car.json("/v2/entities/Car1", options="unique", attrs="colour,branch,paint,engine") == [
        "black", "Ford", 78.3]
    assert car.json("/v2/entities", options="unique", attrs="paint,colour") == [["black"]]


# --- Get Attribute Value --------------------------------------------------------------------


VALUES = {"S": "S", "I": 3.14, "B": True, "N": None, "O": {"o1": 1, "o2": "2"}, "A": [1, 2, 3]}


@pytest.fixture
def values(tenant: Tenant) -> Tenant:
    tenant.add({"id": "E1", **VALUES}, options="keyValues")
    return tenant


def _value(tenant: Tenant, attr: str, accept: str | None) -> httpx.Response:
    return tenant.get(f"/v2/entities/E1/attrs/{attr}/value", accept=accept)


# (Accept header, media type of an object or array value) -- None: no Accept header.
COMPOUND_ACCEPTS = [
    (None, "application/json"),
    ("application/json", "application/json"),
    ("application/*", "application/json"),
    ("text/plain", "text/plain"),
    ("text/*", "text/plain"),
    ("*/*", "application/json"),
    ("application/json, text/plain", "application/json"),
    ("text/plain, application/json", "text/plain"),
    ("text/*;q=0.3,application/json;q=0.8", "text/plain"),
    ("image/png, text/plain", "text/plain"),
]


@pytest.mark.parametrize("attr", ["O", "A"])
@pytest.mark.parametrize(("accept", "media"), COMPOUND_ACCEPTS)
def test_an_object_or_array_value_is_json_or_text(values: Tenant, attr: str, accept: str | None, media: str) -> None:
    """orion-api.md, "Get Attribute Value": a JSON Array or Object is returned "as a JSON with
    a response type of application/json or text/plain (whichever is the first in Accept header
    or application/json in case of Accept: */*)"."""
    response = _value(values, attr, accept)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media
    assert json.loads(response.content) == VALUES[attr]


@pytest.mark.parametrize("attr", ["O", "A"])
@pytest.mark.parametrize("accept", ["image/png", "text/html, image/*"])
def test_an_object_or_array_value_is_406_for_other_types(values: Tenant, attr: str, accept: str) -> None:
    """orion-api.md, "Get Attribute Value": "Else return a HTTP error "406 Not Acceptable:
    accepted MIME types: application/json, text/plain"."""
    error_of(_value(values, attr, accept), 406, "NotAcceptable", "accepted MIME types: application/json, text/plain")


TEXTS = {"S": b'"S"', "I": b"3.14", "B": b"true", "N": b"null"}


@pytest.mark.parametrize("attr", ["S", "I", "B", "N"])
@pytest.mark.parametrize("accept", [None, "text/plain", "text/*", "*/*", "text/plain, application/json",
                                    "application/json, text/plain", "text/*;q=0.3,application/json;q=0.8"])
def test_a_simple_value_is_text(values: Tenant, attr: str, accept: str | None) -> None:
    """orion-api.md, "Get Attribute Value": a string, number, null or boolean is returned as
    text when the Accept header "can be expanded to text/plain"; "In case of a string,
    citation marks are used at the beginning and end"."""
    response = _value(values, attr, accept)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain"
    assert response.content == TEXTS[attr]


@pytest.mark.parametrize("attr", ["S", "I", "B", "N"])
@pytest.mark.parametrize("accept", ["application/json", "application/*", "image/png"])
def test_a_simple_value_is_406_without_text(values: Tenant, attr: str, accept: str) -> None:
    """orion-api.md, "Get Attribute Value": "Else return a HTTP error "406 Not Acceptable:
    accepted MIME types: text/plain"."""
    error_of(_value(values, attr, accept), 406, "NotAcceptable", "accepted MIME types: text/plain")


def test_value_of_a_missing_entity_or_attribute_is_404(values: Tenant) -> None:
    """orion-api.md, "Get Attribute Value": 404 with the texts of the section."""
    error_of(values.get("/v2/entities/Nope/attrs/S/value"), 404, "NotFound", ENTITY_NOT_FOUND)
    error_of(values.get("/v2/entities/E1/attrs/Nope/value"), 404, "NotFound", ATTRIBUTE_NOT_FOUND)


# --- Update Attribute Value ------------------------------------------------------------------


@pytest.mark.parametrize(("text", "stored"), [
    ('"hello"', "hello"),
    ("true", True),
    ("false", False),
    ("null", None),
    ("42", 42),
    ("-3.5", -3.5),
])
def test_put_text_value(values: Tenant, text: str, stored: Any) -> None:
    """orion-api.md, "Update Attribute Value": a ``text/plain`` payload between citation marks
    is a string, ``true``/``false`` a boolean, ``null`` null, otherwise a number."""
    headers = dict(values.headers, **{"Content-Type": "text/plain"})
    response = values.client.put("/v2/entities/E1/attrs/S/value", content=text, headers=headers)
    assert response.status_code == 204, response.text
    assert values.json("/v2/entities/E1", options="keyValues")["S"] == stored


def test_put_text_value_that_is_no_number_is_refused(values: Tenant) -> None:
    """orion-api.md, "Update Attribute Value": "If not a valid number, then an error is
    returned and the attribute's value is unchanged"."""
    headers = dict(values.headers, **{"Content-Type": "text/plain"})
    response = values.client.put("/v2/entities/E1/attrs/I/value", content="twelve", headers=headers)
    error_of(response, 400, "BadRequest")
    assert values.json("/v2/entities/E1", options="keyValues")["I"] == 3.14


@pytest.mark.parametrize("value", [{"address": "Ronda de la Comunicacion s/n", "zipCode": 28050}, [1, "two"]])
def test_put_json_value(values: Tenant, value: Any) -> None:
    """orion-api.md, "Update Attribute Value": an ``application/json`` payload is the JSON
    object or array of the new value."""
    response = values.client.put("/v2/entities/E1/attrs/S/value", json=value, headers=values.headers)
    assert response.status_code == 204, response.text
    assert values.json("/v2/entities/E1/attrs/S/value") == value


# --- List Entity Types, Retrieve entity information for a given type -----------------------


TYPE_COUNT = 30


@pytest.fixture
def many_types(tenant: Tenant) -> Tenant:
    """Types T00..T29 (one entity each, T00 two) plus "Bare" (no attributes) and "alpha"."""
    entities = [{"id": f"E{i}", "type": f"T{i:02d}", "speed": {"value": i},
                 "fuel": {"value": "x", "type": ["gasoline", "diesel"][i % 2]}} for i in range(TYPE_COUNT)]
    entities += [{"id": "Extra", "type": "T00", "fuel": {"value": 1, "type": "Number"}, "temp": {"value": 2}},
                 {"id": "B", "type": "Bare"}, {"id": "a", "type": "alpha", "x": {"value": 1}}]
    response = tenant.client.post("/v2/op/update", headers=tenant.headers,
                                  json={"actionType": "append", "entities": entities})
    assert response.status_code == 204, response.text
    return tenant


ALL_TYPES = ["Bare"] + [f"T{i:02d}" for i in range(TYPE_COUNT)] + ["alpha"]


def test_types_are_listed_in_order_with_attrs_and_counts(many_types: Tenant) -> None:
    """orion-api.md, "List Entity Types": a JSON array with ``type``, ``attrs`` (each attribute
    with the ``types`` found for it) and ``count``; "Results are ordered by entity type in
    alphabetical order"; a page holds 20 at most by default ("Pagination")."""
    listed = many_types.json("/v2/types")
    assert [item["type"] for item in listed] == ALL_TYPES[:20]
    assert listed[0] == {"type": "Bare", "attrs": {}, "count": 1}
    t00 = listed[1]
    assert t00["type"] == "T00" and t00["count"] == 2
    assert set(t00["attrs"]) == {"speed", "fuel", "temp"}
    assert sorted(t00["attrs"]["fuel"]["types"]) == ["Number", "gasoline"]
    assert t00["attrs"]["speed"] == {"types": ["Number"]}
    assert listed[2] == {"type": "T01", "count": 1,
                         "attrs": {"speed": {"types": ["Number"]}, "fuel": {"types": ["diesel"]}}}


def test_types_paging_and_count(many_types: Tenant) -> None:
    """orion-api.md, "List Entity Types": ``limit``, ``offset`` and ``options=count`` (the
    total in ``Fiware-Total-Count``); "Pagination": an offset beyond the end gives []."""
    response = many_types.get("/v2/types", limit="5", offset="10", options="count")
    assert response.status_code == 200
    assert response.headers["Fiware-Total-Count"] == str(len(ALL_TYPES))
    assert [item["type"] for item in response.json()] == ALL_TYPES[10:15]
    assert [item["type"] for item in many_types.json("/v2/types", limit="1000")] == ALL_TYPES
    assert [item["type"] for item in many_types.json("/v2/types", offset="30")] == ALL_TYPES[30:]
    assert many_types.json("/v2/types", offset="100") == []


def test_types_values_option(many_types: Tenant) -> None:
    """orion-api.md, "List Entity Types": with ``values`` "the operation returns a JSON array
    with a list of entity type names as strings"; paging and count still apply."""
    assert many_types.json("/v2/types", options="values", limit="1000") == ALL_TYPES
    response = many_types.get("/v2/types", options="values,count", limit="3", offset="29")
    assert response.json() == ALL_TYPES[29:32]
    assert response.headers["Fiware-Total-Count"] == str(len(ALL_TYPES))


def test_types_no_attr_detail(many_types: Tenant) -> None:
    """orion-api.md, "List Entity Types" and "Retrieve entity information for a given type":
    with ``noAttrDetail`` the ``types`` list of each attribute "is set to []"."""
    listed = many_types.json("/v2/types", options="noAttrDetail", limit="2")
    assert listed == [{"type": "Bare", "attrs": {}, "count": 1},
                      {"type": "T00", "attrs": {"fuel": {"types": []}, "speed": {"types": []}, "temp": {"types": []}},
                       "count": 2}]
    assert many_types.json("/v2/types/T00", options="noAttrDetail") == {
        "attrs": {"fuel": {"types": []}, "speed": {"types": []}, "temp": {"types": []}}, "count": 2}


def test_one_type(many_types: Tenant) -> None:
    """orion-api.md, "Retrieve entity information for a given type": ``attrs`` and ``count`` of
    the type, no ``type`` field."""
    info = many_types.json("/v2/types/T00")
    assert set(info) == {"attrs", "count"} and info["count"] == 2
    assert sorted(info["attrs"]["fuel"]["types"]) == ["Number", "gasoline"]
    assert many_types.json("/v2/types/T07") == {
        "attrs": {"fuel": {"types": ["diesel"]}, "speed": {"types": ["Number"]}}, "count": 1}
    assert many_types.json("/v2/types/Bare") == {"attrs": {}, "count": 1}


def test_unknown_type_is_404(many_types: Tenant) -> None:
    """orion-api.md, "Retrieve entity information for a given type": no entity of the type is
    an error (Orion's text, functional test 1028 get_entity_type)."""
    error_of(many_types.get("/v2/types/Nope"), 404, "NotFound", "Entity type not found")


def test_types_follow_the_service_path(tenant: Tenant) -> None:
    """orion-api.md, "List Entity Types": ``Fiware-ServicePath`` narrows the entities whose
    types are listed ("Service path": a query is on ``/#`` without the header)."""
    for path, entity in (("/a", {"id": "E1", "type": "Ta"}), ("/b", {"id": "E2", "type": "Tb"})):
        response = tenant.client.post("/v2/entities", json=entity,
                                      headers=dict(tenant.headers, **{"Fiware-ServicePath": path}))
        assert response.status_code == 201
    assert [t["type"] for t in tenant.json("/v2/types")] == ["Ta", "Tb"]
    only_a = tenant.client.get("/v2/types", headers=dict(tenant.headers, **{"Fiware-ServicePath": "/a"}))
    assert [t["type"] for t in only_a.json()] == ["Ta"]
