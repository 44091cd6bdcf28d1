"""The single-entity API as a client sees it: /v2/entities (POST), /v2/entities/{id},
/attrs, /attrs/{name} and /attrs/{name}/value: statuses, headers and bodies.

Each group cites the section of Orion's NGSI-v2 manual (orion-api.md) it follows. Tests
marked ``xfail(strict=True)`` state where the broker differs from the manual today.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

import broker.app
from tests.broker.api_client import ApiClient, broker_client, create, error_of, ids_of, new_id

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ENTITY_NOT_FOUND = "The requested entity has not been found. Check type and id"
ATTRIBUTE_NOT_FOUND = "The entity does not have such an attribute"


@pytest.fixture(scope="module")
def client() -> Iterator[ApiClient]:
    with broker_client() as c:
        yield c


def _kv(client: ApiClient, entity_id: str, **params: str) -> Any:
    response = client.get(f"/v2/entities/{entity_id}", params={"options": "keyValues", **params})
    assert response.status_code == 200, response.text
    return response.json()


def _parse_date(text: str) -> float:
    assert ISO_MS.match(text), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


# --- Create Entity `POST /v2/entities`; Partial Representations (default types) -----------


def test_create_answers_201_with_location_and_no_body(client: ApiClient) -> None:
    eid = new_id()
    response = client.post("/v2/entities", json={"id": eid, "type": "Room", "temperature": {"value": 21.7}})
    assert response.status_code == 201
    assert response.headers["location"] == f"/v2/entities/{eid}?type=Room"
    assert response.content == b""


def test_created_entity_reads_back_normalized_with_default_attribute_types(client: ApiClient) -> None:
    eid = new_id()
    create(client, {
        "id": eid, "type": "Room",
        "n": {"value": 21.7}, "s": {"value": "hi"}, "b": {"value": True}, "o": {"value": {"x": [1, 2]}},
        "a": {"value": [1]}, "z": {"value": None}, "omitted": {"type": "Number"},
        "custom": {"value": 1, "type": "urn:x",
                   "metadata": {"unit": {"value": "C"}, "acc": {"value": 0.9, "type": "Float"}}},
    })
    response = client.get(f"/v2/entities/{eid}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "id": eid, "type": "Room",
        "n": {"type": "Number", "value": 21.7, "metadata": {}},
        "s": {"type": "Text", "value": "hi", "metadata": {}},
        "b": {"type": "Boolean", "value": True, "metadata": {}},
        "o": {"type": "StructuredValue", "value": {"x": [1, 2]}, "metadata": {}},
        "a": {"type": "StructuredValue", "value": [1], "metadata": {}},
        "z": {"type": "None", "value": None, "metadata": {}},
        "omitted": {"type": "Number", "value": None, "metadata": {}},  # value omitted: null
        "custom": {"type": "urn:x", "value": 1, "metadata": {
            "unit": {"type": "Text", "value": "C"}, "acc": {"type": "Float", "value": 0.9},
        }},
    }


def test_create_without_type_uses_thing(client: ApiClient) -> None:
    eid = new_id()
    response = create(client, {"id": eid})
    assert response.headers["location"] == f"/v2/entities/{eid}?type=Thing"
    assert client.get(f"/v2/entities/{eid}").json() == {"id": eid, "type": "Thing"}


def test_create_existing_entity_is_422_already_exists(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "type": "T", "A": {"value": 1}})
    response = client.post("/v2/entities", json={"id": eid, "type": "T", "A": {"value": 2}})
    error_of(response, 422, "Unprocessable", "Already Exists")
    assert _kv(client, eid)["A"] == 1


def test_same_id_with_another_type_is_another_entity(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "type": "T1"})
    response = client.post("/v2/entities", json={"id": eid, "type": "T2"})
    assert response.status_code == 201
    assert response.headers["location"] == f"/v2/entities/{eid}?type=T2"


def test_upsert_creates_then_updates_with_204_and_location(client: ApiClient) -> None:
    eid = new_id()
    first = client.post("/v2/entities", params={"options": "upsert"},
                        json={"id": eid, "type": "T", "A": {"value": 1}, "B": {"value": 1}})
    assert first.status_code == 204
    assert first.headers["location"] == f"/v2/entities/{eid}?type=T"
    second = client.post("/v2/entities", params={"options": "upsert"},
                         json={"id": eid, "type": "T", "A": {"value": 2}, "C": {"value": 3}})
    assert second.status_code == 204
    assert second.headers["location"] == f"/v2/entities/{eid}?type=T"
    # An existing entity gets an append: A updated, C added, B kept.
    assert _kv(client, eid) == {"id": eid, "type": "T", "A": 2, "B": 1, "C": 3}


def test_create_with_key_values(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "type": "T", "s": "x", "n": 5, "o": {"x": 1}, "l": [1], "b": False},
           options="keyValues")
    body = client.get(f"/v2/entities/{eid}").json()
    assert {name: body[name]["type"] for name in ("s", "n", "o", "l", "b")} == {
        "s": "Text", "n": "Number", "o": "StructuredValue", "l": "StructuredValue", "b": "Boolean",
    }
    assert body["o"]["value"] == {"x": 1}


# --- Error Responses; Identifiers syntax restrictions; General syntax restrictions ---------


@pytest.mark.parametrize(
    ("payload", "error", "description"),
    [
        ("{bad json", "ParseError", "Errors found in incoming JSON buffer"),
        ("[1, 2]", "BadRequest", None),
        ('"text"', "BadRequest", None),
        ('{"type": "T"}', "BadRequest", "entity id length: 0, min length supported: 1"),
        ('{"id": ""}', "BadRequest", "entity id length: 0, min length supported: 1"),
        ('{"id": 5}', "BadRequest", "Invalid JSON type for entity id"),
        ('{"id": "X", "A": 5}', "BadRequest", "attribute must be a JSON object, unless keyValues option is used"),
        ('{"id": "X", "A": {"value": 1, "foo": 2}}', "BadRequest", "unrecognized property for context attribute"),
        ('{"id": "X", "A": {"value": 1}, "A": {"value": 2}}', "BadRequest", "duplicated attribute /A/"),
        ('{"id": "X", "A": {"value": "a<b"}}', "BadRequest", "Invalid characters in attribute value"),
        ('{"id": "X", "A": {"value": 1, "type": "T("}}', "BadRequest", "Invalid characters in attribute type"),
        ('{"id": "X", "A": {"value": 1, "metadata": {"m;": {"value": 1}}}}', "BadRequest",
         "Invalid characters in metadata name"),
        ('{"id": "X", "A": {"value": 1, "metadata": {"m": {"value": "="}}}}', "BadRequest",
         "Invalid characters in metadata value"),
    ],
)
def test_bad_create_payloads_get_orion_errors(client: ApiClient, payload: str, error: str, description: str | None) -> None:
    response = client.post("/v2/entities", content=payload, headers={"Content-Type": "application/json"})
    error_of(response, 400, error, description)


def test_bad_payload_creates_nothing(client: ApiClient) -> None:
    eid = new_id()
    response = client.post("/v2/entities", json={"id": eid, "A": {"value": 1}, "B": {"value": "bad>"}})
    error_of(response, 400, "BadRequest")
    error_of(client.get(f"/v2/entities/{eid}"), 404, "NotFound")


@pytest.mark.parametrize("field", ["id", "type"])
def test_identifier_length_limit_is_256(client: ApiClient, field: str) -> None:
    long_ok = new_id("L").ljust(256, "x")
    entity = {"id": long_ok, "type": "T"} if field == "id" else {"id": new_id(), "type": "t" * 256}
    assert client.post("/v2/entities", json=entity).status_code == 201
    entity = {"id": "i" * 257} if field == "id" else {"id": new_id(), "type": "t" * 257}
    error_of(client.post("/v2/entities", json=entity), 400, "BadRequest",
             f"entity {field} length: 257, max length supported: 256")


def test_attribute_name_length_limit(client: ApiClient) -> None:
    response = client.post("/v2/entities", json={"id": new_id(), "a" * 257: {"value": 1}})
    error_of(response, 400, "BadRequest", "attribute name length: 257, max length supported: 256")


@pytest.mark.parametrize("char", [" ", "#", "?", "/", "&", "<", ">", "(", ")", ";", "=", '"', "'", "\t", "é"])
def test_forbidden_characters_in_ids(client: ApiClient, char: str) -> None:
    error_of(client.post("/v2/entities", json={"id": f"I{char}x"}), 400, "BadRequest", "Invalid characters in entity id")
    error_of(client.post("/v2/entities", json={"id": new_id(), "type": f"T{char}x"}), 400, "BadRequest",
             "Invalid characters in entity type")
    error_of(client.post("/v2/entities", json={"id": new_id(), f"a{char}b": {"value": 1}}), 400, "BadRequest",
             "Invalid characters in attribute name")


@pytest.mark.parametrize("char", ["%", ":", "-", "_", "@", "."])
def test_allowed_punctuation_in_ids(client: ApiClient, char: str) -> None:
    eid = new_id() + char + "x"
    create(client, {"id": eid, "type": f"T{char}", f"a{char}": {"value": 1}})
    assert client.get("/v2/entities", params={"id": eid}).json()[0]["type"] == f"T{char}"


def test_text_unrestricted_skips_the_value_check(client: ApiClient) -> None:
    # Special Attribute Types (TextUnrestricted); Special Metadata Types (TextUnrestricted)
    eid = new_id()
    create(client, {
        "id": eid,
        "A": {"type": "TextUnrestricted", "value": "I'm <free>"},
        "B": {"value": "x=(1)", "metadata": {"TextUnrestricted": {"value": True, "type": "Boolean"}}},
    })
    assert _kv(client, eid) == {"id": eid, "type": "Thing", "A": "I'm <free>", "B": "x=(1)"}


# --- Retrieve Entity `GET /v2/entities/{entityId}`; Simplified Entity Representation ------


@pytest.fixture
def room(client: ApiClient) -> str:
    eid = new_id("Room")
    create(client, {
        "id": eid, "type": "Room",
        "temperature": {"value": 21, "metadata": {"unit": {"value": "C"}, "accuracy": {"value": 0.9}}},
        "humidity": {"value": 21},
        "name": {"value": "lab"},
    })
    return eid


def test_get_entity_not_found(client: ApiClient) -> None:
    error_of(client.get(f"/v2/entities/{new_id()}"), 404, "NotFound", ENTITY_NOT_FOUND)


def test_get_entity_key_values(client: ApiClient, room: str) -> None:
    assert _kv(client, room) == {"id": room, "type": "Room", "temperature": 21, "humidity": 21, "name": "lab"}


def test_get_entity_values_follow_the_attrs_order(client: ApiClient, room: str) -> None:
    response = client.get(f"/v2/entities/{room}", params={"options": "values", "attrs": "name,temperature"})
    assert response.json() == ["lab", 21]
    response = client.get(f"/v2/entities/{room}", params={"options": "values", "attrs": "temperature,name"})
    assert response.json() == [21, "lab"]


def test_get_entity_unique_leaves_out_repeated_values(client: ApiClient, room: str) -> None:
    response = client.get(f"/v2/entities/{room}", params={"options": "unique", "attrs": "temperature,humidity,name"})
    assert response.json() == [21, "lab"]


def test_get_entity_attrs_projection(client: ApiClient, room: str) -> None:
    body = client.get(f"/v2/entities/{room}", params={"attrs": "name,nothing"}).json()
    assert body == {"id": room, "type": "Room", "name": {"type": "Text", "value": "lab", "metadata": {}}}
    body = client.get(f"/v2/entities/{room}", params={"attrs": "nothing"}).json()
    assert body == {"id": room, "type": "Room"}


def test_get_entity_attributes_come_in_the_attrs_order(client: ApiClient, room: str) -> None:
    body = client.get(f"/v2/entities/{room}", params={"attrs": "temperature,name", "options": "keyValues"}).json()
    assert list(body) == ["id", "type", "temperature", "name"]


def test_get_entity_metadata_filter(client: ApiClient, room: str) -> None:
    # Filtering out attributes and metadata
    body = client.get(f"/v2/entities/{room}", params={"metadata": "unit", "attrs": "temperature"}).json()
    assert body["temperature"]["metadata"] == {"unit": {"type": "Text", "value": "C"}}
    body = client.get(f"/v2/entities/{room}", params={"metadata": "nothing", "attrs": "temperature"}).json()
    assert body["temperature"]["metadata"] == {}
    body = client.get(f"/v2/entities/{room}", params={"metadata": "*,dateCreated", "attrs": "temperature"}).json()
    assert set(body["temperature"]["metadata"]) == {"unit", "accuracy", "dateCreated"}


def test_get_entity_type_disambiguates(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "type": "A", "x": {"value": "a"}})
    create(client, {"id": eid, "type": "B", "x": {"value": "b"}})
    error_of(client.get(f"/v2/entities/{eid}"), 409, "TooManyResults",
             "More than one matching entity. Please refine your query")
    assert _kv(client, eid, type="B")["x"] == "b"
    error_of(client.get(f"/v2/entities/{eid}", params={"type": "C"}), 404, "NotFound", ENTITY_NOT_FOUND)
    error_of(client.get(f"/v2/entities/{eid}/attrs/x/value"), 409, "TooManyResults")
    assert client.get(f"/v2/entities/{eid}/attrs/x/value", params={"type": "A"}).text == '"a"'


def test_get_entity_attrs_omits_id_and_type(client: ApiClient, room: str) -> None:
    # Retrieve Entity Attributes `GET /v2/entities/{entityId}/attrs`
    response = client.get(f"/v2/entities/{room}/attrs", params={"options": "keyValues"})
    assert response.json() == {"temperature": 21, "humidity": 21, "name": "lab"}
    response = client.get(f"/v2/entities/{room}/attrs", params={"attrs": "name"})
    assert response.json() == {"name": {"type": "Text", "value": "lab", "metadata": {}}}
    error_of(client.get(f"/v2/entities/{new_id()}/attrs"), 404, "NotFound", ENTITY_NOT_FOUND)


# --- Update or Append Entity Attributes `POST /v2/entities/{entityId}/attrs` ---------------


def test_post_attrs_updates_and_appends(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "type": "T", "A": {"value": 1}, "B": {"value": 1}})
    response = client.post(f"/v2/entities/{eid}/attrs", json={"A": {"value": 10}, "C": {"value": 3}})
    assert response.status_code == 204 and response.content == b""
    assert _kv(client, eid) == {"id": eid, "type": "T", "A": 10, "B": 1, "C": 3}


def test_post_attrs_key_values(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "A": {"value": 1}})
    assert client.post(f"/v2/entities/{eid}/attrs", params={"options": "keyValues"}, json={"C": [1, 2]}).status_code == 204
    assert client.get(f"/v2/entities/{eid}/attrs/C").json() == {"type": "StructuredValue", "value": [1, 2], "metadata": {}}


def test_post_attrs_append_strict_all_existing_is_unprocessable(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "type": "T", "A": {"value": 1}, "B": {"value": 1}})
    response = client.post(f"/v2/entities/{eid}/attrs", params={"options": "append"},
                           json={"A": {"value": 2}, "B": {"value": 2}})
    error_of(response, 422, "Unprocessable",
             f"one or more of the attributes in the request already exist: {eid} - [ A, B ]")
    # The entity type shows in the description only when the request gives it.
    response = client.post(f"/v2/entities/{eid}/attrs", params={"options": "append", "type": "T"},
                           json={"A": {"value": 2}})
    error_of(response, 422, "Unprocessable",
             f"one or more of the attributes in the request already exist: {eid}/T - [ A ]")
    assert _kv(client, eid) == {"id": eid, "type": "T", "A": 1, "B": 1}


def test_post_attrs_append_strict_some_existing_is_partial_update(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "type": "T", "A": {"value": 1}})
    response = client.post(f"/v2/entities/{eid}/attrs", params={"options": "append"},
                           json={"A": {"value": 2}, "D": {"value": 4}})
    error_of(response, 422, "PartialUpdate",
             f"one or more of the attributes in the request already exist: {eid} - [ A ]")
    assert _kv(client, eid) == {"id": eid, "type": "T", "A": 1, "D": 4}


def test_post_attrs_to_missing_entity_is_404(client: ApiClient) -> None:
    response = client.post(f"/v2/entities/{new_id()}/attrs", json={"A": {"value": 1}})
    error_of(response, 404, "NotFound", ENTITY_NOT_FOUND)


# --- Update Existing Entity Attributes `PATCH /v2/entities/{entityId}/attrs` ---------------


def test_patch_updates_existing_attributes(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "type": "T", "A": {"value": 1}, "B": {"value": 1}})
    response = client.patch(f"/v2/entities/{eid}/attrs", json={"A": {"value": 2, "type": "Counter"}})
    assert response.status_code == 204
    assert client.get(f"/v2/entities/{eid}/attrs/A").json() == {"type": "Counter", "value": 2, "metadata": {}}
    assert _kv(client, eid)["B"] == 1


def test_patch_missing_attributes(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "type": "T", "A": {"value": 1}})
    response = client.patch(f"/v2/entities/{eid}/attrs", json={"C": {"value": 1}, "D": {"value": 1}})
    error_of(response, 422, "Unprocessable", f"do not exist: {eid} - [ C, D ]")
    response = client.patch(f"/v2/entities/{eid}/attrs", params={"type": "T"},
                            json={"A": {"value": 5}, "C": {"value": 1}})
    error_of(response, 422, "PartialUpdate", f"do not exist: {eid}/T - [ C ]")
    assert _kv(client, eid) == {"id": eid, "type": "T", "A": 5}  # the existing one was updated


def test_patch_missing_entity_is_404(client: ApiClient) -> None:
    error_of(client.patch(f"/v2/entities/{new_id()}/attrs", json={"A": {"value": 1}}), 404, "NotFound", ENTITY_NOT_FOUND)


# --- Replace all entity attributes `PUT /v2/entities/{entityId}/attrs` ---------------------


def test_put_attrs_replaces_all_attributes(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "type": "T", "A": {"value": 1}, "B": {"value": 1}})
    assert client.put(f"/v2/entities/{eid}/attrs", json={"C": {"value": 3}}).status_code == 204
    assert _kv(client, eid) == {"id": eid, "type": "T", "C": 3}
    error_of(client.put(f"/v2/entities/{new_id()}/attrs", json={"C": {"value": 3}}), 404, "NotFound", ENTITY_NOT_FOUND)


# --- Remove Entity `DELETE /v2/entities/{entityId}` ----------------------------------------


def test_delete_entity(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "type": "T"})
    create(client, {"id": eid, "type": "U"})
    error_of(client.delete(f"/v2/entities/{eid}", params={"type": "V"}), 404, "NotFound", ENTITY_NOT_FOUND)
    response = client.delete(f"/v2/entities/{eid}", params={"type": "T"})
    assert response.status_code == 204 and response.content == b""
    error_of(client.get(f"/v2/entities/{eid}", params={"type": "T"}), 404, "NotFound")
    assert client.get(f"/v2/entities/{eid}").json()["type"] == "U"
    assert client.delete(f"/v2/entities/{eid}").status_code == 204
    error_of(client.delete(f"/v2/entities/{eid}"), 404, "NotFound", ENTITY_NOT_FOUND)


# --- Get attribute data / Update Attribute Data / Remove a Single Attribute ----------------


def test_get_attribute(client: ApiClient, room: str) -> None:
    response = client.get(f"/v2/entities/{room}/attrs/name")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"type": "Text", "value": "lab", "metadata": {}}
    body = client.get(f"/v2/entities/{room}/attrs/temperature", params={"metadata": "unit"}).json()
    assert body["metadata"] == {"unit": {"type": "Text", "value": "C"}}
    error_of(client.get(f"/v2/entities/{room}/attrs/nothing"), 404, "NotFound", ATTRIBUTE_NOT_FOUND)
    error_of(client.get(f"/v2/entities/{new_id()}/attrs/name"), 404, "NotFound", ENTITY_NOT_FOUND)


def test_put_attribute_replaces_value_and_type(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "A": {"value": 1, "type": "Number"}})
    assert client.put(f"/v2/entities/{eid}/attrs/A", json={"value": "x", "type": "Code"}).status_code == 204
    assert client.get(f"/v2/entities/{eid}/attrs/A").json() == {"type": "Code", "value": "x", "metadata": {}}
    error_of(client.put(f"/v2/entities/{eid}/attrs/B", json={"value": 1}), 404, "NotFound", ATTRIBUTE_NOT_FOUND)
    error_of(client.put(f"/v2/entities/{new_id()}/attrs/A", json={"value": 1}), 404, "NotFound", ENTITY_NOT_FOUND)


def test_metadata_update_semantics_and_override(client: ApiClient) -> None:
    # Metadata update semantics; `overrideMetadata` option
    eid = new_id()
    create(client, {"id": eid, "temperature": {"value": 25, "metadata": {
        "unit": {"value": "celsius"}, "avg": {"value": 25.4}}}})
    update = {"value": 26, "type": "Number", "metadata": {"avg": {"value": 25.6, "type": "Number"},
                                                          "accuracy": {"value": 98.7, "type": "Number"}}}
    assert client.put(f"/v2/entities/{eid}/attrs/temperature", json=update).status_code == 204
    metadata = client.get(f"/v2/entities/{eid}/attrs/temperature").json()["metadata"]
    assert metadata == {"unit": {"type": "Text", "value": "celsius"}, "avg": {"type": "Number", "value": 25.6},
                        "accuracy": {"type": "Number", "value": 98.7}}
    response = client.put(f"/v2/entities/{eid}/attrs/temperature", params={"options": "overrideMetadata"},
                          json={"value": 27, "metadata": {"avg": {"value": 1}}})
    assert response.status_code == 204
    assert client.get(f"/v2/entities/{eid}/attrs/temperature").json() == {
        "type": "Number", "value": 27, "metadata": {"avg": {"type": "Number", "value": 1}},
    }
    response = client.patch(f"/v2/entities/{eid}/attrs", params={"options": "overrideMetadata"},
                            json={"temperature": {"value": 28}})
    assert response.status_code == 204
    assert client.get(f"/v2/entities/{eid}/attrs/temperature").json()["metadata"] == {}


def test_delete_attribute(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "A": {"value": 1}, "B": {"value": 2}})
    response = client.delete(f"/v2/entities/{eid}/attrs/A")
    assert response.status_code == 204 and response.content == b""
    assert _kv(client, eid) == {"id": eid, "type": "Thing", "B": 2}
    error_of(client.delete(f"/v2/entities/{eid}/attrs/A"), 404, "NotFound", ATTRIBUTE_NOT_FOUND)
    error_of(client.delete(f"/v2/entities/{new_id()}/attrs/A"), 404, "NotFound", ENTITY_NOT_FOUND)


# --- Get Attribute Value / Update Attribute Value (.../attrs/{attrName}/value); MIME Types ---


@pytest.fixture
def valued(client: ApiClient) -> str:
    eid = new_id()
    create(client, {"id": eid, "n": {"value": 1}, "f": {"value": -12.5}, "s": {"value": "hi"},
                    "o": {"value": {"x": [1, 2]}}, "a": {"value": ["a", "b"]}, "z": {"value": None},
                    "b": {"value": True}, "d": {"value": "2017-06-17T07:21:24Z", "type": "DateTime"}})
    return eid


@pytest.mark.parametrize(
    ("name", "text"),
    [("n", "1"), ("f", "-12.5"), ("s", '"hi"'), ("z", "null"), ("b", "true"), ("d", "2017-06-17T07:21:24.000Z")],
)
def test_get_scalar_value_is_text_plain(client: ApiClient, valued: str, name: str, text: str) -> None:
    response = client.get(f"/v2/entities/{valued}/attrs/{name}/value")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain"
    assert response.text == text
    for accept in ("text/plain", "text/*", "*/*", "application/json, text/plain"):
        response = client.get(f"/v2/entities/{valued}/attrs/{name}/value", headers={"Accept": accept})
        assert (response.status_code, response.headers["content-type"], response.text) == (200, "text/plain", text)


def test_get_scalar_value_as_json_only_is_406(client: ApiClient, valued: str) -> None:
    response = client.get(f"/v2/entities/{valued}/attrs/s/value", headers={"Accept": "application/json"})
    error_of(response, 406, "NotAcceptable", "accepted MIME types: text/plain")


@pytest.mark.parametrize(("name", "value"), [("o", {"x": [1, 2]}), ("a", ["a", "b"])])
def test_get_structured_value(client: ApiClient, valued: str, name: str, value: Any) -> None:
    response = client.get(f"/v2/entities/{valued}/attrs/{name}/value")
    assert (response.status_code, response.headers["content-type"]) == (200, "application/json")
    assert response.json() == value
    response = client.get(f"/v2/entities/{valued}/attrs/{name}/value", headers={"Accept": "text/plain"})
    assert (response.status_code, response.headers["content-type"]) == (200, "text/plain")
    assert response.json() == value  # the same JSON text
    response = client.get(f"/v2/entities/{valued}/attrs/{name}/value", headers={"Accept": "image/png"})
    error_of(response, 406, "NotAcceptable")


def test_structured_value_type_follows_the_first_accepted(client: ApiClient, valued: str) -> None:
    response = client.get(f"/v2/entities/{valued}/attrs/o/value", headers={"Accept": "text/plain, application/json"})
    assert response.headers["content-type"] == "text/plain"


def test_get_value_not_found(client: ApiClient, valued: str) -> None:
    error_of(client.get(f"/v2/entities/{valued}/attrs/nothing/value"), 404, "NotFound", ATTRIBUTE_NOT_FOUND)
    error_of(client.get(f"/v2/entities/{new_id()}/attrs/n/value"), 404, "NotFound", ENTITY_NOT_FOUND)


@pytest.mark.parametrize(
    ("text", "value"),
    [("42", 42), ("-12.1", -12.1), ("3.2e2", 320), ('"STRING"', "STRING"), ("true", True), ("false", False),
     ("null", None)],
)
def test_put_value_as_text_plain(client: ApiClient, text: str, value: Any) -> None:
    eid = new_id()
    create(client, {"id": eid, "A": {"value": 0, "type": "Custom", "metadata": {"m": {"value": 1}}}})
    response = client.put(f"/v2/entities/{eid}/attrs/A/value", content=text, headers={"Content-Type": "text/plain"})
    assert response.status_code == 204
    # Only the value changes: type and metadata stay.
    assert client.get(f"/v2/entities/{eid}/attrs/A").json() == {
        "type": "Custom", "value": value, "metadata": {"m": {"type": "Number", "value": 1}},
    }


@pytest.mark.parametrize(("text", "description"), [
    ("abc", "attribute value type not recognized"),
    ('"abc', "Missing citation-mark at end of string"),
])
def test_put_bad_text_value(client: ApiClient, text: str, description: str) -> None:
    eid = new_id()
    create(client, {"id": eid, "A": {"value": 7}})
    response = client.put(f"/v2/entities/{eid}/attrs/A/value", content=text, headers={"Content-Type": "text/plain"})
    error_of(response, 400, "BadRequest", description)
    assert _kv(client, eid)["A"] == 7


def test_put_value_as_json(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "A": {"value": 0, "type": "Number"}})
    assert client.put(f"/v2/entities/{eid}/attrs/A/value", json={"a": "1", "b": 2}).status_code == 204
    assert client.get(f"/v2/entities/{eid}/attrs/A").json() == {
        "type": "Number", "value": {"a": "1", "b": 2}, "metadata": {},
    }
    assert client.put(f"/v2/entities/{eid}/attrs/A/value", json=["a", "b"]).status_code == 204
    assert client.get(f"/v2/entities/{eid}/attrs/A/value").json() == ["a", "b"]
    error_of(client.put(f"/v2/entities/{eid}/attrs/A/value", json=5), 400, "BadRequest",
             "Neither JSON Object nor JSON Array for attribute::value")
    error_of(client.put(f"/v2/entities/{eid}/attrs/A/value", content="<a/>", headers={"Content-Type": "application/xml"}),
             415, "UnsupportedMediaType")
    error_of(client.put(f"/v2/entities/{eid}/attrs/B/value", json=[1]), 404, "NotFound", ATTRIBUTE_NOT_FOUND)
    error_of(client.put(f"/v2/entities/{new_id()}/attrs/A/value", json=[1]), 404, "NotFound", ENTITY_NOT_FOUND)


# --- Builtin Attributes; Builtin Metadata; Datetime support; Filtering out attributes ------


def test_date_created_and_modified_builtins(client: ApiClient) -> None:
    eid = new_id()
    before = time.time()
    create(client, {"id": eid, "A": {"value": 1}})
    time.sleep(0.01)
    assert client.patch(f"/v2/entities/{eid}/attrs", json={"A": {"value": 2}}).status_code == 204
    plain = client.get(f"/v2/entities/{eid}").json()
    assert set(plain) == {"id", "type", "A"}  # builtins are not rendered by default
    only = client.get(f"/v2/entities/{eid}", params={"attrs": "dateModified"}).json()
    assert set(only) == {"id", "type", "dateModified"}  # builtins only: no user attributes
    body = client.get(f"/v2/entities/{eid}", params={"attrs": "*,dateCreated,dateModified"}).json()
    assert set(body) == {"id", "type", "A", "dateCreated", "dateModified"}
    assert body["dateCreated"]["type"] == body["dateModified"]["type"] == "DateTime"
    created, modified = _parse_date(body["dateCreated"]["value"]), _parse_date(body["dateModified"]["value"])
    assert before - 1 <= created < modified <= time.time() + 1
    assert only["dateModified"]["value"] == body["dateModified"]["value"]


def test_deprecated_date_options_add_the_builtins(client: ApiClient) -> None:
    # Differences regarding the original NGSIv2 spec / Deprecated features: options=dateCreated
    eid = new_id()
    create(client, {"id": eid, "A": {"value": 1}})
    body = client.get(f"/v2/entities/{eid}", params={"options": "dateCreated,dateModified,keyValues"}).json()
    assert set(body) == {"id", "type", "A", "dateCreated", "dateModified"}
    assert ISO_MS.match(body["dateCreated"])


def test_attribute_date_metadata(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "A": {"value": 1, "metadata": {"m": {"value": 1}}}, "B": {"value": 1}})
    time.sleep(0.01)
    client.patch(f"/v2/entities/{eid}/attrs", json={"A": {"value": 2}})
    body = client.get(f"/v2/entities/{eid}", params={"metadata": "dateCreated,dateModified"}).json()
    a_md, b_md = body["A"]["metadata"], body["B"]["metadata"]
    assert set(a_md) == {"dateCreated", "dateModified"}  # builtins only: "m" is left out
    assert a_md["dateCreated"]["type"] == "DateTime"
    assert _parse_date(a_md["dateCreated"]["value"]) < _parse_date(a_md["dateModified"]["value"])
    assert b_md["dateCreated"] == b_md["dateModified"]  # B was not touched


def test_service_path_builtin(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid}, headers={"Fiware-ServicePath": "/x/y"})
    body = client.get(f"/v2/entities/{eid}", params={"attrs": "servicePath"}).json()
    assert body["servicePath"] == {"type": "Text", "value": "/x/y", "metadata": {}}


def test_user_attribute_named_like_a_builtin(client: ApiClient) -> None:
    # User attributes or metadata matching builtin name: rendered as the user's, filtered as the builtin.
    eid = new_id()
    create(client, {"id": eid, "dateModified": {"value": "2050-01-01", "type": "DateTime"}})
    assert _kv(client, eid)["dateModified"] == "2050-01-01T00:00:00.000Z"
    assert _kv(client, eid, attrs="dateModified")["dateModified"] == "2050-01-01T00:00:00.000Z"
    assert ids_of(client.get("/v2/entities", params={"id": eid, "q": "dateModified>2049-12-31"})) == []


def test_datetime_values_are_normalized_to_utc_milliseconds(client: ApiClient) -> None:
    # Datetime support
    eid = new_id()
    create(client, {"id": eid,
                    "d": {"value": "2017-06-17", "type": "DateTime"},
                    "e": {"value": "2017-06-17T07:21:24.238+02:00", "type": "DateTime"},
                    "f": {"value": "2017-06-17T07:21", "type": "ISO8601"}})
    body = _kv(client, eid)
    assert (body["d"], body["e"], body["f"]) == (
        "2017-06-17T00:00:00.000Z", "2017-06-17T05:21:24.238Z", "2017-06-17T07:21:00.000Z",
    )
    response = client.post("/v2/entities", json={"id": new_id(), "d": {"value": "yesterday", "type": "DateTime"}})
    error_of(response, 400, "BadRequest")


# --- Transient Entities (dateExpires) ---------------------------------------------------


def test_date_expires_lifecycle(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "A": {"value": 1},
                    "dateExpires": {"value": "2099-07-07T21:35:00Z", "type": "DateTime"}})
    assert set(client.get(f"/v2/entities/{eid}").json()) == {"id", "type", "A"}  # a builtin: hidden by default
    body = client.get(f"/v2/entities/{eid}", params={"attrs": "dateExpires"}).json()
    assert body["dateExpires"] == {"type": "DateTime", "value": "2099-07-07T21:35:00.000Z", "metadata": {}}
    # Update dateExpires attribute in entity that previously has it
    response = client.put(f"/v2/entities/{eid}/attrs/dateExpires",
                          json={"value": "2098-12-31T23:59:00Z", "type": "DateTime"})
    assert response.status_code == 204
    assert _kv(client, eid, attrs="dateExpires")["dateExpires"] == "2098-12-31T23:59:00.000Z"
    # Remove dateExpires attribute from entity
    assert client.delete(f"/v2/entities/{eid}/attrs/dateExpires").status_code == 204
    assert _kv(client, eid, attrs="dateExpires") == {"id": eid, "type": "Thing"}
    # Add dateExpires attribute to entity that previously doesn't have it
    response = client.post(f"/v2/entities/{eid}/attrs",
                           json={"dateExpires": {"value": "2097-10-12T14:23:00Z", "type": "DateTime"}})
    assert response.status_code == 204
    assert _kv(client, eid, attrs="dateExpires,A") == {"id": eid, "type": "Thing", "A": 1,
                                                          "dateExpires": "2097-10-12T14:23:00.000Z"}


@pytest.mark.parametrize("attr", [
    {"value": "not a date", "type": "DateTime"},
    {"value": "2099-01-01T00:00:00Z", "type": "Text"},
    {"value": 5, "type": "Number"},
])
def test_date_expires_must_be_a_datetime(client: ApiClient, attr: dict[str, Any]) -> None:
    eid = new_id()
    error_of(client.post("/v2/entities", json={"id": eid, "dateExpires": attr}), 400, "BadRequest")
    create(client, {"id": eid})
    error_of(client.post(f"/v2/entities/{eid}/attrs", json={"dateExpires": attr}), 400, "BadRequest")


def test_expired_entities_are_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    # Deletion of expired entities (Orion: within a minute). The purge interval (broker.app) is
    # shortened so that the purge runs within the test.
    monkeypatch.setattr(broker.app, "EXPIRY_INTERVAL", 0.02)
    with broker_client() as c:
        gone, kept = new_id(), new_id()
        create(c, {"id": gone, "dateExpires": {"value": "2000-01-01T00:00:00Z", "type": "DateTime"}})
        create(c, {"id": kept, "dateExpires": {"value": "2099-01-01T00:00:00Z", "type": "DateTime"}})
        deadline = time.monotonic() + 5
        while c.get(f"/v2/entities/{gone}").status_code != 404:
            assert time.monotonic() < deadline, "the expired entity was not purged"
            time.sleep(0.02)
        assert c.get(f"/v2/entities/{kept}").status_code == 200


# --- Multi tenancy ------------------------------------------------------------------------


def test_tenants_are_isolated(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "type": "T", "A": {"value": "a"}}, headers={"Fiware-Service": "tenanta"})
    create(client, {"id": eid, "type": "T", "A": {"value": "b"}}, headers={"Fiware-Service": "tenantb"})
    assert client.get(f"/v2/entities/{eid}/attrs/A/value", headers={"Fiware-Service": "tenanta"}).text == '"a"'
    assert client.get(f"/v2/entities/{eid}/attrs/A/value", headers={"Fiware-Service": "tenantb"}).text == '"b"'
    error_of(client.get(f"/v2/entities/{eid}"), 404, "NotFound")  # the default tenant has none
    error_of(client.get(f"/v2/entities/{eid}", headers={"Fiware-Service": "tenantc"}), 404, "NotFound")
    assert client.get("/v2/entities", headers={"Fiware-Service": "tenantc"}).json() == []
    assert client.delete(f"/v2/entities/{eid}", headers={"Fiware-Service": "tenanta"}).status_code == 204
    assert client.get(f"/v2/entities/{eid}", headers={"Fiware-Service": "tenantb"}).status_code == 200


def test_tenant_names_are_case_insensitive(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid}, headers={"Fiware-Service": "MyService"})
    assert client.get(f"/v2/entities/{eid}", headers={"Fiware-Service": "myservice"}).status_code == 200


@pytest.mark.parametrize(("tenant", "description"), [
    ("bad-name", "bad character in tenant name - only underscore and alphanumeric characters are allowed"),
    ("a" * 51, "bad length - a tenant name can be max 50 characters long"),
])
def test_bad_tenant_names(client: ApiClient, tenant: str, description: str) -> None:
    error_of(client.get("/v2/entities", headers={"Fiware-Service": tenant}), 400, "BadRequest", description)


def test_without_multiservice_the_service_header_is_ignored() -> None:
    with broker_client(multiservice=False) as c:
        eid = new_id()
        create(c, {"id": eid}, headers={"Fiware-Service": "tenanta"})
        assert c.get(f"/v2/entities/{eid}").status_code == 200
        assert c.get(f"/v2/entities/{eid}", headers={"Fiware-Service": "other"}).status_code == 200


# --- Service path: Entity service path ----------------------------------------------------


@pytest.fixture
def paths(client: ApiClient) -> tuple[dict[str, str], dict[str, str]]:
    """Entities in /a, /a/b, /b and / of a tenant of their own: (headers, path -> id)."""
    tenant = {"Fiware-Service": new_id("sp").lower()}
    ids = {}
    for path in ("/a", "/a/b", "/b", "/"):
        ids[path] = new_id()
        create(client, {"id": ids[path], "type": "T"}, headers={**tenant, "Fiware-ServicePath": path})
    return tenant, ids


@pytest.mark.parametrize(("header", "expected"), [
    ("/a", ["/a"]),
    ("/a/", ["/a"]),  # trailing slashes are discarded
    ("/a/#", ["/a", "/a/b"]),
    ("/a, /b", ["/a", "/b"]),
    ("/a/b,/b", ["/a/b", "/b"]),
    ("/", ["/"]),
    ("/#", ["/a", "/a/b", "/b", "/"]),
    (None, ["/a", "/a/b", "/b", "/"]),  # no header: /# for queries
])
def test_service_path_scopes_queries(client: ApiClient, paths: Any, header: str | None, expected: list[str]) -> None:
    tenant, ids = paths
    headers = tenant if header is None else {**tenant, "Fiware-ServicePath": header}
    assert sorted(ids_of(client.get("/v2/entities", headers=headers))) == sorted(ids[p] for p in expected)


def test_service_path_scopes_single_entity_operations(client: ApiClient, paths: Any) -> None:
    tenant, ids = paths
    in_a = ids["/a"]
    error_of(client.get(f"/v2/entities/{in_a}", headers={**tenant, "Fiware-ServicePath": "/b"}), 404, "NotFound")
    assert client.get(f"/v2/entities/{in_a}", headers={**tenant, "Fiware-ServicePath": "/a"}).status_code == 200
    assert client.get(f"/v2/entities/{in_a}", headers=tenant).status_code == 200
    response = client.patch(f"/v2/entities/{in_a}/attrs", json={"x": {"value": 1}},
                            headers={**tenant, "Fiware-ServicePath": "/b"})
    error_of(response, 404, "NotFound", ENTITY_NOT_FOUND)
    response = client.post(f"/v2/entities/{in_a}/attrs", json={"x": {"value": 1}},
                           headers={**tenant, "Fiware-ServicePath": "/a"})
    assert response.status_code == 204
    error_of(client.delete(f"/v2/entities/{in_a}", headers={**tenant, "Fiware-ServicePath": "/b"}), 404, "NotFound")
    assert client.delete(f"/v2/entities/{in_a}", headers={**tenant, "Fiware-ServicePath": "/a"}).status_code == 204


def test_same_entity_in_two_service_paths(client: ApiClient) -> None:
    tenant = {"Fiware-Service": new_id("sp").lower()}
    eid = new_id()
    create(client, {"id": eid, "type": "Tree", "h": {"value": 1}}, headers={**tenant, "Fiware-ServicePath": "/p1"})
    create(client, {"id": eid, "type": "Tree", "h": {"value": 2}}, headers={**tenant, "Fiware-ServicePath": "/p2"})
    assert len(ids_of(client.get("/v2/entities", params={"id": eid}, headers=tenant))) == 2
    response = client.get(f"/v2/entities/{eid}/attrs/h/value", headers={**tenant, "Fiware-ServicePath": "/p2"})
    assert response.text == "2"


@pytest.mark.parametrize(("header", "description"), [
    ("a", "Only /absolute/ Service Paths allowed [a service path must begin with /]"),
    ("/a b", "a component of ServicePath contains an illegal character"),
    ("/a-b", "a component of ServicePath contains an illegal character"),
    ("/a//b", "empty component in ServicePath"),
    ("/" + "x" * 51, "component-name too long in ServicePath"),
    ("/1/2/3/4/5/6/7/8/9/10/11", "too many components in ServicePath"),
    (",".join(f"/p{i}" for i in range(11)), "too many service paths - a maximum of ten service paths is allowed"),
])
def test_bad_service_paths(client: ApiClient, header: str, description: str) -> None:
    error_of(client.get("/v2/entities", headers={"Fiware-ServicePath": header}), 400, "BadRequest", description)


def test_service_path_limits_accepted(client: ApiClient) -> None:
    deep = "/" + "/".join(f"l{i}" for i in range(10))
    assert client.get("/v2/entities", headers={"Fiware-ServicePath": deep}).status_code == 200
    assert client.get("/v2/entities", headers={"Fiware-ServicePath": "/" + "x" * 50}).status_code == 200
    ten = ",".join(f"/p{i}" for i in range(10))
    assert client.get("/v2/entities", headers={"Fiware-ServicePath": ten}).status_code == 200


@pytest.mark.parametrize(("method", "several", "wildcard"), [
    ("create", "more than one service path in context update request",
     "servicepath with wildcard # is not allowed in patch update request"),
    ("patch", "more than one servicepath in patch update request is not allowed",
     "servicepath with wildcard # is not allowed in patch update request"),
    ("delete", "more than one servicepath is not allowed in DELETE operation",
     "servicepath with wildcard # is not allowed in DELETE operation"),
])
def test_writes_take_one_plain_service_path(client: ApiClient, method: str, several: str, wildcard: str) -> None:
    """Each write refuses a header naming ``several`` paths and one with a ``wildcard``,
    in Orion's words (which differ by operation)."""
    eid = new_id()
    create(client, {"id": eid}, headers={"Fiware-ServicePath": "/a"})
    for header, description in (("/a,/b", several), ("/a/#", wildcard)):
        headers = {"Fiware-ServicePath": header}
        if method == "create":
            response = client.post("/v2/entities", json={"id": new_id()}, headers=headers)
        elif method == "patch":
            response = client.post(f"/v2/entities/{eid}/attrs", json={"x": {"value": 1}}, headers=headers)
        else:
            response = client.delete(f"/v2/entities/{eid}", headers=headers)
        error_of(response, 400, "BadRequest", description)


# --- Update operators for attribute values ---------------------------------------------------


@pytest.mark.parametrize(("initial", "operation", "final"), [
    (10, {"$inc": 2}, 12),
    (10, {"$inc": -2.5}, 7.5),
    (3, {"$mul": 2}, 6),
    (10, {"$min": 2}, 2),
    (10, {"$min": 20}, 10),
    (10, {"$max": 12}, 12),
    (10, {"$max": 4}, 10),
    ([1, 2, 3], {"$push": 3}, [1, 2, 3, 3]),
    ([1, 2, 3], {"$push": {"$each": [4, 5]}}, [1, 2, 3, 4, 5]),
    ([1, 2, 3], {"$push": {"$each": [-1, 0], "$position": 0}}, [-1, 0, 1, 2, 3]),
    ([1, 2, 3], {"$addToSet": 4}, [1, 2, 3, 4]),
    ([1, 2, 3], {"$addToSet": 3}, [1, 2, 3]),
    ([1, 2, 3, 2], {"$pull": 2}, [1, 3]),
    ([1, 2, 3], {"$pullAll": [2, 3]}, [1]),
    ({"X": 1, "Y": 2}, {"$set": {"Y": 20, "Z": 30}}, {"X": 1, "Y": 20, "Z": 30}),
    ({"X": 1, "Y": 2}, {"$unset": {"X": 1}}, {"Y": 2}),
    ({"X": 1, "Y": 2}, {"$set": {"Y": 20, "Z": 30}, "$unset": {"X": 1}}, {"Y": 20, "Z": 30}),
])
def test_update_operators(client: ApiClient, initial: Any, operation: dict[str, Any], final: Any) -> None:
    eid = new_id()
    create(client, {"id": eid, "A": {"value": initial, "type": "Quantity"}})
    response = client.put(f"/v2/entities/{eid}/attrs/A", json={"value": operation, "type": "Quantity"})
    assert response.status_code == 204, response.text
    assert client.get(f"/v2/entities/{eid}/attrs/A").json() == {"type": "Quantity", "value": final, "metadata": {}}


def test_update_operators_in_other_updates(client: ApiClient) -> None:
    eid = new_id()
    create(client, {"id": eid, "A": {"value": 1, "type": "Number"}})
    assert client.patch(f"/v2/entities/{eid}/attrs", json={"A": {"value": {"$inc": 2}, "type": "Number"}}).status_code == 204
    assert client.post(f"/v2/entities/{eid}/attrs", json={"A": {"value": {"$mul": 10}, "type": "Number"}}).status_code == 204
    assert client.put(f"/v2/entities/{eid}/attrs/A/value", json={"$inc": 1}).status_code == 204
    assert client.get(f"/v2/entities/{eid}/attrs/A").json() == {"type": "Number", "value": 31, "metadata": {}}


def test_update_operators_at_creation(client: ApiClient) -> None:
    # Usage in create or replace entity operations
    eid = new_id()
    create(client, {"id": eid,
                    "inc": {"value": {"$inc": 4}, "type": "Number"},
                    "mul": {"value": {"$mul": 1000}, "type": "Number"},
                    "set": {"value": {"$set": {"X": 1}}, "type": "Object"},
                    "push": {"value": {"$push": 4}, "type": "Array"},
                    "unset": {"value": {"$unset": 1}, "type": "Object"},
                    "pull": {"value": {"$pull": 1}, "type": "Array"},
                    "B": {"value": 3, "type": "Number"}})
    assert _kv(client, eid) == {"id": eid, "type": "Thing", "inc": 4, "mul": 0, "set": {"X": 1}, "push": [4], "B": 3}


def test_refused_update_operators_leave_the_value(client: ApiClient) -> None:
    # How Orion deals with operators: Orion passes MongoDB's refusal on as a 500; the broker
    # answers a 400 (its rule: client mistakes are not server errors).
    eid = new_id()
    create(client, {"id": eid, "A": {"value": 10, "type": "Number"}, "O": {"value": {"X": 1}, "type": "Object"}})
    response = client.put(f"/v2/entities/{eid}/attrs/A", json={"value": {"$inc": "foo"}, "type": "Number"})
    error_of(response, 400, "BadRequest")
    response = client.put(f"/v2/entities/{eid}/attrs/O",
                          json={"value": {"$set": {"X": 20}, "$unset": {"X": 1}}, "type": "Object"})
    error_of(response, 400, "BadRequest")
    assert _kv(client, eid) == {"id": eid, "type": "Thing", "A": 10, "O": {"X": 1}}


# --- Error Responses (HTTP layer); General syntax restrictions; MIME Types ---------------------


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PUT", "/v2/entities", "POST, GET"),
    ("DELETE", "/v2/entities", "POST, GET"),
    ("POST", "/v2/entities/E1", "GET, DELETE"),
    ("PATCH", "/v2/entities/E1", "GET, DELETE"),
    ("DELETE", "/v2/entities/E1/attrs", "GET, PATCH, POST, PUT"),
    ("POST", "/v2/entities/E1/attrs/A", "GET, PUT, DELETE"),
    ("PATCH", "/v2/entities/E1/attrs/A/value", "GET, PUT"),
    ("DELETE", "/v2/entities/E1/attrs/A/value", "GET, PUT"),
    ("POST", "/v2/types", "GET"),
    ("DELETE", "/v2/types/T", "GET"),
    ("GET", "/v2/op/update", "POST"),
    ("PUT", "/v2/op/query", "POST"),
])
def test_405_with_allow_header(client: ApiClient, method: str, path: str, allow: str) -> None:
    if method in ("POST", "PUT", "PATCH"):  # a valid payload: only the method is wrong
        response = client.request(method, path, json={"a": {"value": 1}})
    else:
        response = client.request(method, path)
    error_of(response, 405, "MethodNotAllowed")
    assert response.headers["allow"] == allow


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v2/entities"), ("POST", "/v2/entities/E1/attrs"), ("PATCH", "/v2/entities/E1/attrs"),
    ("PUT", "/v2/entities/E1/attrs"), ("PUT", "/v2/entities/E1/attrs/A"), ("POST", "/v2/op/update"),
])
def test_411_for_empty_payloads(client: ApiClient, method: str, path: str) -> None:
    response = client.request(method, path, content=b"", headers={"Content-Type": "application/json"})
    error_of(response, 411, "ContentLengthRequired", "Zero/No Content-Length in PUT/POST/PATCH request")


def test_413_for_payloads_over_the_limit(client: ApiClient) -> None:
    eid = new_id()
    payload = json.dumps({"id": eid, "A": {"value": "x" * (1024 * 1024)}})
    response = client.post("/v2/entities", content=payload, headers={"Content-Type": "application/json"})
    error_of(response, 413, "RequestEntityTooLarge")
    assert client.get(f"/v2/entities/{eid}").status_code == 404


def test_payload_limit_is_configurable() -> None:
    with broker_client(payload_max=100) as c:
        body = {"id": new_id(), "A": {"value": "x" * 100}}
        error_of(c.post("/v2/entities", json=body), 413, "RequestEntityTooLarge")
        assert c.post("/v2/entities", json={"id": new_id()}).status_code == 201


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
def test_415_for_non_json_payloads(client: ApiClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/v2/entities", content=b'{"id": "X"}', headers=headers)
    error_of(response, 415, "UnsupportedMediaType")


def test_json_content_type_with_charset_is_accepted(client: ApiClient) -> None:
    response = client.post("/v2/entities", content=b'{"id": "%s"}' % new_id().encode(),
                           headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 201


def test_content_type_on_get_is_refused(client: ApiClient) -> None:
    response = client.get("/v2/entities", headers={"Content-Type": "application/json"})
    error_of(response, 400, "BadRequest",
             "Orion accepts no payload for GET/DELETE requests. HTTP header Content-Type is thus forbidden")


def test_unacceptable_accept_header_is_406(client: ApiClient, room: str) -> None:
    """MIME Types: 'Clients issuing HTTP requests with accept types different than those
    [application/json, text/plain] will get a 406 Not Acceptable error', on every resource;
    text/plain is for an attribute's value: a text-only client gets no JSON payload either
    (its errors are text/plain, as before)."""
    described = "accepted MIME types: application/json"
    error_of(client.get(f"/v2/entities/{room}", headers={"Accept": "application/xml"}), 406, "NotAcceptable", described)
    error_of(client.get("/v2/types", headers={"Accept": "image/png, text/html"}), 406, "NotAcceptable", described)
    eid = new_id()
    error_of(client.post("/v2/entities", json={"id": eid}, headers={"Accept": "image/png"}), 406, "NotAcceptable")
    assert client.get(f"/v2/entities/{eid}").status_code == 404  # refused before anything was written
    for accept in ("application/json", "*/*", "application/*", "text/*;q=0.5, application/json", "application/json;q=0.1"):
        assert client.get(f"/v2/entities/{room}", headers={"Accept": accept}).status_code == 200, accept
    text_only = client.get(f"/v2/entities/{room}", headers={"Accept": "text/plain"})
    assert (text_only.status_code, text_only.headers["content-type"]) == (406, "text/plain")
    assert text_only.json() == {"error": "NotAcceptable", "description": described}
    created = client.post("/v2/entities", json={"id": eid}, headers={"Accept": "text/plain"})
    assert created.status_code == 201  # no payload to refuse: a write is answered as usual


def test_trailing_slash_is_ignored(client: ApiClient, room: str) -> None:
    assert client.get(f"/v2/entities/{room}/").json() == client.get(f"/v2/entities/{room}").json()
    assert client.get(f"/v2/entities/{room}/attrs/name/value/").text == '"lab"'
    assert ids_of(client.get("/v2/entities/", params={"id": room})) == [room]
    eid = new_id()
    assert client.post("/v2/entities/", json={"id": eid}).status_code == 201


def test_correlator_is_echoed_or_made(client: ApiClient, room: str) -> None:
    for path in (f"/v2/entities/{room}", f"/v2/entities/{new_id()}"):  # success and error
        response = client.get(path, headers={"Fiware-Correlator": "my-correlator-1"})
        assert response.headers["fiware-correlator"] == "my-correlator-1"
    made = [client.get(f"/v2/entities/{room}").headers["fiware-correlator"] for _ in range(2)]
    assert made[0] != made[1]
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", c) for c in made)
    response = client.post("/v2/entities", json={"id": new_id()}, headers={"Fiware-Correlator": "c-2"})
    assert response.headers["fiware-correlator"] == "c-2"


def test_url_and_parameter_checks(client: ApiClient, room: str) -> None:
    error_of(client.get("/v2/entities/E<1"), 400, "BadRequest", "invalid character in URI")
    error_of(client.get("/v2/nothing"), 400, "BadRequest", "Service not found. Check your URL as probably it is wrong.")
    error_of(client.get(f"/v2/entities/{room}", params={"attrs": "a<b"}), 400, "BadRequest",
             "invalid character in URI parameter")
    error_of(client.get(f"/v2/entities/{room}", params={"attrs": ""}), 400, "BadRequest",
             "Empty right-hand-side for URI param /attrs/")
    error_of(client.get(f"/v2/entities/{room}", params={"options": "bogus"}), 400, "BadRequest",
             "Invalid value for URI param /options/")
    error_of(client.get(f"/v2/entities/{room}", params={"options": "keyValues,values"}), 400, "BadRequest",
             "Invalid value for URI param /options/")
    error_of(client.get("/v2/entities//"), 400, "BadRequest", "entity id length: 0, min length supported: 1")


def test_errors_follow_a_text_only_accept(client: ApiClient) -> None:
    response = client.get(f"/v2/entities/{new_id()}", headers={"Accept": "text/plain"})
    assert (response.status_code, response.headers["content-type"]) == (404, "text/plain")
    assert response.json() == {"error": "NotFound", "description": ENTITY_NOT_FOUND}
