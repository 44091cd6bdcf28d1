"""Deprecated features, written from Orion's deprecated.md (and orion-api.md, "Deprecated
features"): what Orion still accepts works as its modern counterpart; what Orion removed
answers as Orion 4 does (an unknown URL, an unknown option). Each test cites the entry it
follows.

Writes, reads and geo queries depend on the store: those tests run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.config import ConfigError, parse
from tests.broker.api_client import (
    ApiClient,
    broker_client,
    create,
    error_of,
    ids_of,
    new_id,
)
from tests.broker.conftest import Receiver, empty_db

ACTION_ERROR = "invalid update action type: right ones are: append, appendStric, delete, replace, update"
SERVICE_NOT_FOUND = "Service not found. Check your URL as probably it is wrong."


@pytest.fixture(scope="module")
def client() -> Iterator[ApiClient]:
    with broker_client(notif_allowed_hosts=("127.0.0.1",)) as c:
        yield c


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The -dbURI of a fresh store of each kind."""
    return empty_db(request, tmp_path)


@pytest.fixture
def stored(store: str) -> Iterator[ApiClient]:
    """A broker on that store."""
    with broker_client(store) as c:
        yield c


def _update(client: ApiClient, action: str, entities: list[dict[str, Any]]) -> httpx.Response:
    return client.post("/v2/op/update", json={"actionType": action, "entities": entities})


def _kv(client: ApiClient, entity_id: str) -> Any:
    response = client.get(f"/v2/entities/{entity_id}", params={"options": "keyValues"})
    return response.json() if response.status_code == 200 else response.status_code


# --- "Usage of APPEND, APPEND_STRICT, UPDATE, DELETE and REPLACE in POST /v2/op/update" -----------


def test_upper_case_action_types_do_what_their_counterparts_do(stored: ApiClient) -> None:
    """deprecated.md, "APPEND, APPEND_STRICT, UPDATE, DELETE and REPLACE in POST /v2/op/update"
    (deprecated in 1.14.0, not removed) and orion-api.md, "Deprecated features": "POST /v2/op/update
    accepts the same action types as NGSIv1"; each acts as ``append``, ``appendStrict``, ``update``,
    ``delete`` and ``replace``."""
    e1, e2 = new_id(), new_id()
    assert _update(stored, "APPEND", [{"id": e1, "type": "T", "A": {"value": 1}, "B": {"value": 2}}]).status_code == 204
    assert _update(stored, "APPEND_STRICT", [{"id": e2, "type": "T", "A": {"value": 1}}]).status_code == 204
    assert _kv(stored, e1) == {"id": e1, "type": "T", "A": 1, "B": 2}
    assert _update(stored, "UPDATE", [{"id": e1, "type": "T", "A": {"value": 10}}]).status_code == 204
    assert _kv(stored, e1) == {"id": e1, "type": "T", "A": 10, "B": 2}
    assert _update(stored, "REPLACE", [{"id": e1, "type": "T", "C": {"value": 3}}]).status_code == 204
    assert _kv(stored, e1) == {"id": e1, "type": "T", "C": 3}
    assert _update(stored, "DELETE", [{"id": e1, "type": "T", "C": {}}]).status_code == 204
    assert _kv(stored, e1) == {"id": e1, "type": "T"}
    assert _update(stored, "DELETE", [{"id": e2, "type": "T"}]).status_code == 204
    assert _kv(stored, e2) == 404


@pytest.mark.parametrize(("legacy", "modern"), [
    ("APPEND_STRICT", "appendStrict"), ("UPDATE", "update"), ("REPLACE", "replace"), ("DELETE", "delete"),
])
def test_upper_case_action_types_fail_as_their_counterparts_do(client: ApiClient, legacy: str, modern: str) -> None:
    """deprecated.md, the same entry: the counterpart's errors too (appendStrict on an existing
    entity, the others on a missing one), with the same status and text."""
    existing, missing = new_id(), new_id()
    create(client, {"id": existing, "type": "T", "A": {"value": 1}})
    target = existing if legacy == "APPEND_STRICT" else missing
    payload = [{"id": target, "type": "T", "A": {"value": 2}}]
    old, new = _update(client, legacy, payload), _update(client, modern, payload)
    assert old.status_code == new.status_code and old.status_code in (404, 422)
    assert old.json() == new.json()


@pytest.mark.parametrize("action", ["Append", "APPENDSTRICT", "appendstrict", "Update", "REMOVE", ""])
def test_other_spellings_are_refused(client: ApiClient, action: str) -> None:
    """deprecated.md lists exactly those five upper-case names; anything else is Orion's 400,
    whose text names only the modern ones."""
    response = _update(client, action, [{"id": new_id(), "type": "T", "A": {"value": 1}}])
    error_of(response, 400, "BadRequest", ACTION_ERROR)


# --- "dateCreated and/or dateModified in the options URL parameter" -------------------------------


def test_options_date_created_and_modified_are_attrs_of_the_same_names(stored: ApiClient) -> None:
    """deprecated.md, "The usage of options URL parameter in order to include dateCreated and/or
    dateModified attributes" (deprecated in 1.5.0, not removed) and orion-api.md, "Deprecated
    features": ``options=dateModified`` does what ``attrs=dateModified,*`` does."""
    eid = new_id()
    create(stored, {"id": eid, "type": "T", "A": {"value": 1}})
    for deprecated, modern, names in [
        ({"options": "dateCreated,dateModified"}, {"attrs": "dateCreated,dateModified,*"}, {"dateCreated", "dateModified"}),
        ({"options": "dateModified"}, {"attrs": "dateModified,*"}, {"dateModified"}),
        ({"options": "dateCreated,keyValues"}, {"attrs": "dateCreated,*", "options": "keyValues"}, {"dateCreated"}),
    ]:
        old, new = stored.get(f"/v2/entities/{eid}", params=deprecated), stored.get(f"/v2/entities/{eid}", params=modern)
        assert old.status_code == 200 and old.json() == new.json()
        assert set(old.json()) == {"id", "type", "A", *names}
    listed = stored.get("/v2/entities", params={"id": eid, "options": "dateModified,keyValues"}).json()
    assert set(listed[0]) == {"id", "type", "A", "dateModified"}


# --- "attributes field in POST /v2/op/query" --------------------------------------------------------


def test_attributes_in_op_query_is_attrs_plus_a_unary_filter(stored: ApiClient) -> None:
    """deprecated.md, "attributes field in POST /v2/op/query" (deprecated in 1.15.0, not removed)
    and orion-api.md, "Deprecated features": "a combination of attrs (to select which attributes
    to include in the response) and unary attribute filter in q within expression (to return
    only entities which have these attributes)"."""
    e1, e2, e3 = new_id(), new_id(), new_id()
    for eid, attrs in ((e1, {"A": 1, "B": 2}), (e2, {"B": 3}), (e3, {"C": 4})):
        create(stored, {"id": eid, "type": "T", **{k: {"value": v} for k, v in attrs.items()}})
    entities = [{"idPattern": f"^({e1}|{e2}|{e3})$"}]
    old = stored.post("/v2/op/query", json={"entities": entities, "attributes": ["A"]})
    new = stored.post("/v2/op/query", json={"entities": entities, "attrs": ["A"], "expression": {"q": "A"}})
    assert old.status_code == 200 and old.json() == new.json()
    assert old.json() == [{"id": e1, "type": "T", "A": {"type": "Number", "value": 1, "metadata": {}}}]
    # Several names: the entities with any of them (Orion's 1080_batch_query_context shows it).
    both = stored.post("/v2/op/query?options=keyValues", json={"entities": entities, "attributes": ["A", "C"]})
    assert sorted(both.json(), key=lambda e: e["id"]) == [{"id": e1, "type": "T", "A": 1}, {"id": e3, "type": "T", "C": 4}]


# --- "GET /v2 operation" -------------------------------------------------------------------------------


def test_get_v2_still_lists_the_entry_points(client: ApiClient) -> None:
    """deprecated.md, "GET /v2 operation" (deprecated in 3.8.0, no removal version): still served."""
    response = client.get("/v2")
    assert response.status_code == 200
    assert response.json() == {
        "entities_url": "/v2/entities", "types_url": "/v2/types",
        "subscriptions_url": "/v2/subscriptions", "registrations_url": "/v2/registrations",
    }


# --- "geo:point, geo:line, geo:box and geo:polygon attribute types" ----------------------------------


def test_deprecated_geo_types_still_locate_entities(stored: ApiClient) -> None:
    """deprecated.md, "geo:point, geo:line, geo:box and geo:polygon attribute types" (deprecated
    in 3.10.0, not removed): entities located by them are still found by geo queries
    (orion-api.md, "Geographical Queries")."""
    point, line, box, polygon = new_id("P"), new_id("L"), new_id("B"), new_id("G")
    create(stored, {"id": point, "type": "Geo", "where": {"type": "geo:point", "value": "40.40, -3.70"}})
    create(stored, {"id": line, "type": "Geo", "where": {"type": "geo:line", "value": ["40.39, -3.71", "40.41, -3.69"]}})
    create(stored, {"id": box, "type": "Geo", "where": {"type": "geo:box", "value": ["40.395, -3.705", "40.405, -3.695"]}})
    create(stored, {"id": polygon, "type": "Geo", "where": {
        "type": "geo:polygon", "value": ["40.39, -3.71", "40.41, -3.71", "40.41, -3.69", "40.39, -3.71"]}})
    near = stored.get("/v2/entities", params={
        "type": "Geo", "georel": "near;maxDistance:100", "geometry": "point", "coords": "40.40,-3.70"})
    assert sorted(ids_of(near)) == sorted([point, line, box, polygon])
    far = stored.get("/v2/entities", params={
        "type": "Geo", "georel": "intersects", "geometry": "polygon",
        "coords": "41.0,2.0;41.1,2.0;41.1,2.1;41.0,2.0"})
    assert ids_of(far) == []


# --- removed: NGSIv1, /ngsi10 and /ngsi9 prefixes, metadata ID operations -----------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("PUT", "/v1/contextEntities/E1"),
    ("DELETE", "/v1/contextEntities/E1"),
    ("GET", "/v1/contextEntities/E1/attributes/A"),
    ("POST", "/v1/updateContext"),
    ("POST", "/NGSI10/updateContext"),
    ("POST", "/v1/queryContext"),
    ("POST", "/NGSI10/queryContext"),
    ("POST", "/ngsi10/queryContext"),
    ("POST", "/ngsi9/registerContext"),
    ("POST", "/v1/registry/registerContext"),
    ("POST", "/v1/subscribeContext"),
    ("GET", "/v1/contextEntities/E1/attributes/A/id1"),
    ("PUT", "/v1/contextEntities/type/T/id/E1/attributes/A/id1"),
])
def test_ngsiv1_operations_are_gone(client: ApiClient, method: str, path: str) -> None:
    """deprecated.md, "NGSIv1 API": "the last remaining NGSIv1 operations where removed in Orion
    4.0.0" (the seven it lists last among them), "/ngsi10 and /ngsi9 as URL path prefixes" and the
    metadata ID operations: unknown URLs now, Orion's 400 "Service not found"."""
    payload: dict[str, Any] = {"json": {"contextElements": []}} if method in ("POST", "PUT") else {}
    response = client.request(method, path, **payload)
    error_of(response, 400, "BadRequest", SERVICE_NOT_FOUND)


# --- removed: initial notification ---------------------------------------------------------------------


def test_no_initial_notification_and_skip_option_still_accepted(client: ApiClient, receiver: Receiver) -> None:
    """deprecated.md, "Initial notification in subscriptions (along with skipInitialNotification
    option)" (removed in 3.2.0): creating a subscription on an existing entity notifies nothing
    until the entity changes; orion-api.md, "Notification Messages" (the ``data`` array "remains
    as a legacy"). ``options=skipInitialNotification`` is still accepted (it changes nothing)."""
    eid = new_id()
    create(client, {"id": eid, "type": "T", "A": {"value": 1}})
    subscription = {"subject": {"entities": [{"id": eid, "type": "T"}]},
                    "notification": {"http": {"url": receiver.url}, "attrs": ["A"]}}
    assert client.post("/v2/subscriptions", json=subscription).status_code == 201
    skipped = client.post("/v2/subscriptions", params={"options": "skipInitialNotification"}, json=subscription)
    assert skipped.status_code == 201
    time.sleep(0.3)
    client.get("/version")  # the in-process notifier runs while a request does
    assert receiver.count() == 0
    assert client.patch(f"/v2/entities/{eid}/attrs", json={"A": {"value": 2}}).status_code == 204
    receiver.wait_for(2)
    assert [body["data"][0]["A"]["value"] for _, body in receiver.received] == [2, 2]


# --- removed: NGSIv1 notification format ---------------------------------------------------------------


def test_legacy_attrs_format_is_refused(client: ApiClient, receiver: Receiver) -> None:
    """deprecated.md, "NGSIv1 format in subscription notifications (notification.atttrsFormat set to
    legacy) removed in Orion 4.0.0"; orion-api.md, "subscription.notification": accepted values are
    normalized, simplifiedNormalized, keyValues, simplifiedKeyValues and values; "If attrsFormat takes
    any value different than those, an error is raised"."""
    response = client.post("/v2/subscriptions", json={
        "subject": {"entities": [{"id": new_id(), "type": "T"}]},
        "notification": {"http": {"url": receiver.url}, "attrsFormat": "legacy"},
    })
    error_of(response, 400, "BadRequest")


# --- removed: XML -----------------------------------------------------------------------------------------


def test_xml_is_gone(client: ApiClient) -> None:
    """deprecated.md, "XML is deprecated since Orion 0.23.0 (removed in Orion 1.0.0)": an XML
    payload is an unsupported media type, an XML-only Accept not acceptable (orion-api.md, "MIME Types")."""
    sent = client.post("/v2/entities", content=b"<contextElement/>", headers={"content-type": "application/xml"})
    error_of(sent, 415, "UnsupportedMediaType", "not supported content type: application/xml")
    asked = client.get("/v2/entities", headers={"accept": "application/xml"})
    error_of(asked, 406, "NotAcceptable", "accepted MIME types: application/json")


# --- removed: location metadata ----------------------------------------------------------------------------


def test_location_metadata_no_longer_locates(client: ApiClient) -> None:
    """deprecated.md, "location metadata to specify entity location" (removed in 3.11.0; "the new
    way of specifying entity location is to use geo:json type"): an attribute with such metadata
    does not place its entity anywhere."""
    eid = new_id()
    create(client, {"id": eid, "type": "Legacy", "position": {
        "type": "Text", "value": "40.40, -3.70", "metadata": {"location": {"type": "string", "value": "WGS84"}}}})
    near = client.get("/v2/entities", params={
        "type": "Legacy", "georel": "near;maxDistance:1000", "geometry": "point", "coords": "40.40,-3.70"})
    assert ids_of(near) == []


# --- removed command-line options ------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["-rush", "localhost:1234"], ["-silent"], ["-ngsi9"], ["-fwdHost", "localhost"], ["-fwdPort", "1027"],
    ["-strictNgsiv1Ids"],
])
def test_removed_options_stop_start_up(argv: list[str]) -> None:
    """deprecated.md: "-rush" (removed in 2.3.0), "--silent" (1.0.0), "-ngsi9", "-fwdHost",
    "-fwdPort" (0.25.0), "-strictNgsiv1Ids" (with NGSIv1): Orion 4 does not know them, so it does
    not start; neither does the broker."""
    with pytest.raises(ConfigError, match="unknown option"):
        parse(argv, {})
