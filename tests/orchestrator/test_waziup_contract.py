"""The WAZIUP cloud API v2 contract (``shared/reference/waziup-api-v2.md``), one behaviour per
test, each citing its section. One platform for the module (``waziup run`` on free ports),
real clients (httpx, paho-mqtt 3.1.1); no sleeps except polling with deadlines."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest

from tests.orchestrator.test_waziup_api import Subscriber, admin, http, platform, users

__all__ = ["admin", "http", "platform", "users"]  # module-scoped fixtures, re-used here

Headers = dict[str, str]
TEXT = {"Content-Type": "text/plain;charset=utf-8"}


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def device(http: httpx.Client, headers: Headers, body: dict[str, Any] | None = None, **fields: Any) -> str:
    doc = {"id": uid("D"), **(body or {}), **fields}
    answer = http.post("/devices", headers=headers, json=doc)
    assert answer.status_code == 204, answer.text
    return str(doc["id"])


def no_null(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, dict):
        return all(no_null(v) for v in value.values())
    if isinstance(value, list):
        return all(no_null(v) for v in value)
    return True


def until(check: Callable[[], bool], seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def scalar_ways(value: str) -> list[tuple[Headers, bytes]]:
    """§1: a scalar as text/plain raw text, and as a JSON string."""
    return [(TEXT, value.encode()), ({"Content-Type": "application/json"}, json.dumps(value).encode())]


# -- §1 conventions --------------------------------------------------------------------------


def test_device_scalar_puts_accept_text_and_json(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§1: scalar PUT bodies as text/plain and as a JSON string on name, gateway_id,
    visibility, deployed; 400 on other values."""
    alice = users["alice"]
    dev = device(http, alice)
    for field, values in (("name", ["N1", "N2"]), ("gateway_id", ["GW-a", "GW-b"]),
                          ("visibility", ["private", "public"])):
        for value in values:
            for kind, body in scalar_ways(value):
                answer = http.put(f"/devices/{dev}/{field}", headers={**alice, **kind}, content=body)
                assert answer.status_code == 204, (field, kind, answer.text)
                assert http.get(f"/devices/{dev}", headers=alice).json()[field] == value
    for raw, expected in (("true", True), ("false", False)):
        for kind, body in ((TEXT, raw.encode()), ({"Content-Type": "application/json"}, raw.encode())):
            assert http.put(f"/devices/{dev}/deployed", headers={**alice, **kind}, content=body).status_code == 204
            assert http.get(f"/devices/{dev}", headers=alice).json()["deployed"] is expected
    assert http.put(f"/devices/{dev}/visibility", headers={**alice, **TEXT}, content=b"secret").status_code == 400
    assert http.put(f"/devices/{dev}/deployed", headers={**alice, **TEXT}, content=b"maybe").status_code == 400


def test_sensor_scalar_puts_accept_text_and_json(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§1, §3 sensors: name, unit, quantity_kind, sensor_kind as text/plain and JSON string."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S1"}])
    for field in ("name", "unit", "quantity_kind", "sensor_kind"):
        for n, (kind, body) in enumerate(scalar_ways(f"{field}-v")):
            value = f"{field}-v"
            answer = http.put(f"/devices/{dev}/sensors/S1/{field}", headers={**alice, **kind}, content=body)
            assert answer.status_code == 204, (field, n, answer.text)
            assert http.get(f"/devices/{dev}/sensors/S1", headers=alice).json()[field] == value


def test_actuator_scalar_puts_accept_text_and_json(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§1, §3 actuators: name, actuator_kind, value_type (one of six, else 400)."""
    alice = users["alice"]
    dev = device(http, alice, actuators=[{"id": "A1"}])
    for field, value in (("name", "Fan"), ("actuator_kind", "Motor"), ("value_type", "number")):
        for kind, body in scalar_ways(value):
            answer = http.put(f"/devices/{dev}/actuators/A1/{field}", headers={**alice, **kind}, content=body)
            assert answer.status_code == 204, (field, answer.text)
            stored = "actuator_value_type" if field == "value_type" else field
            assert http.get(f"/devices/{dev}/actuators/A1", headers=alice).json()[stored] == value
    for kind, body in scalar_ways("float"):
        assert http.put(f"/devices/{dev}/actuators/A1/value_type", headers={**alice, **kind},
                        content=body).status_code == 400


def test_json_output_has_no_null_and_posted_members_deep_equal(http: httpx.Client,
                                                               users: dict[str, Headers]) -> None:
    """§1: no null in JSON output; posted sensors, actuators and location come back deep-equal."""
    alice = users["alice"]
    sensors = [{"id": "S1", "name": "temp", "sensor_kind": "Thermometer", "quantity_kind": "AirTemperature",
                "unit": "DegreeCelsius", "meta": {"a": [1, {"b": "c"}]}}, {"id": "S2"}]
    actuators = [{"id": "A1", "name": "fan", "actuator_kind": "Motor", "actuator_value_type": "bool"}]
    location = {"latitude": 14.5, "longitude": -17.25}
    dev = device(http, alice, sensors=sensors, actuators=actuators, location=location)
    got = http.get(f"/devices/{dev}", headers=alice).json()
    assert got["sensors"] == sensors and got["actuators"] == actuators and got["location"] == location
    assert {"date_created", "date_modified", "owner"} <= set(got)
    for path in (f"/devices/{dev}", "/devices", f"/devices/{dev}/sensors", f"/devices/{dev}/actuators",
                 "/gateways", "/projects", "/notifications", "/users", "/users/me"):
        assert no_null(http.get(path, headers=alice).json()), path


# -- §2 authentication and authorisation -----------------------------------------------------


def test_owner_is_the_caller_never_the_body(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§2: owner comes from the caller; a posted owner is ignored."""
    dev = device(http, users["alice"], owner="bob")
    assert http.get(f"/devices/{dev}", headers=users["alice"]).json()["owner"] == "alice"


def test_guest_creates_with_owner_guest(http: httpx.Client) -> None:
    """§2: anonymous callers are the guest, who may create; owner "guest"."""
    dev = device(http, {})
    assert http.get(f"/devices/{dev}").json()["owner"] == "guest"


def test_bad_token_is_guest_not_401(http: httpx.Client) -> None:
    """§2: a token that does not verify is served as guest (not 401)."""
    answer = http.get("/devices", headers={"Authorization": "Bearer not-a-token"})
    assert answer.status_code == 200
    assert http.get("/users/me", headers={"Authorization": "Bearer nope"}).json()["username"] == "guest"


def test_bad_credentials_give_401(http: httpx.Client) -> None:
    """§2: POST /auth/token with bad credentials gives 401."""
    assert http.post("/auth/token", json={"username": "alice", "password": "wrong"}).status_code == 401


def test_private_device_403_for_others_and_404_missing(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§2: a private device of someone else is 403 on GET, a missing one 404."""
    dev = device(http, users["alice"], visibility="private")
    assert http.get(f"/devices/{dev}", headers=users["bob"]).status_code == 403
    assert http.get(f"/devices/{dev}").status_code == 403
    assert http.get(f"/devices/{uid('none')}", headers=users["bob"]).status_code == 404


def test_non_owner_update_and_delete_403(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§2: devices:update and devices:delete only for owner and admin, even on a public device."""
    dev = device(http, users["alice"], sensors=[{"id": "S1"}])
    bob = users["bob"]
    assert http.put(f"/devices/{dev}/name", headers={**bob, **TEXT}, content=b"x").status_code == 403
    assert http.put(f"/devices/{dev}/sensors/S1/name", headers={**bob, **TEXT}, content=b"x").status_code == 403
    assert http.post(f"/devices/{dev}/sensors", headers=bob, json={"id": "S9"}).status_code == 403
    assert http.post(f"/devices/{dev}/actuators", headers=bob, json={"id": "A9"}).status_code == 403
    assert http.delete(f"/devices/{dev}", headers=bob).status_code == 403
    assert http.delete(f"/devices/{dev}").status_code == 403


def test_admin_may_do_all(http: httpx.Client, admin: Headers, users: dict[str, Headers]) -> None:
    """§2: the admin holds every scope on every resource."""
    dev = device(http, users["alice"], visibility="private", sensors=[{"id": "S1"}])
    assert http.get(f"/devices/{dev}", headers=admin).status_code == 200
    assert http.put(f"/devices/{dev}/name", headers={**admin, **TEXT}, content=b"adm").status_code == 204
    assert http.post(f"/devices/{dev}/sensors/S1/value", headers=admin, json={"value": 1}).status_code == 204
    assert http.delete(f"/devices/{dev}", headers=admin).status_code == 204
    assert http.get(f"/devices/{dev}", headers=admin).status_code == 404


def _scopes(http: httpx.Client, kind: str, headers: Headers) -> dict[str, set[str]]:
    answer = http.get(f"/auth/permissions/{kind}", headers=headers)
    assert answer.status_code == 200
    return {p["resource"]: set(p["scopes"]) for p in answer.json()}


def test_permissions_devices_scopes(http: httpx.Client, admin: Headers, users: dict[str, Headers]) -> None:
    """§2: scope sets on devices: owner and admin all five; others exactly view, data:view,
    data:create on a public device and nothing on a private one."""
    alice, bob = users["alice"], users["bob"]
    pub, priv = device(http, alice), device(http, alice, visibility="private")
    every = {"devices:update", "devices:view", "devices:delete", "devices-data:create", "devices-data:view"}
    public = {"devices:view", "devices-data:view", "devices-data:create"}
    assert _scopes(http, "devices", alice)[pub] == every == _scopes(http, "devices", alice)[priv]
    assert _scopes(http, "devices", admin)[priv] == every
    for other in (bob, {}):
        held = _scopes(http, "devices", other)
        assert held[pub] == public and priv not in held


def test_permissions_gateways_and_projects_scopes(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§2: gateways: others get gateways:view on public ones only; projects: owner only."""
    alice, bob = users["alice"], users["bob"]
    pub, priv = uid("GW"), uid("GW")
    assert http.post("/gateways", headers=alice, json={"id": pub, "name": "p"}).status_code in (200, 204)
    assert http.post("/gateways", headers=alice, json={"id": priv, "name": "q", "visibility": "private"}
                     ).status_code in (200, 204)
    gws = _scopes(http, "gateways", bob)
    assert gws[pub] == {"gateways:view"} and priv not in gws
    assert _scopes(http, "gateways", alice)[priv] == {"gateways:view", "gateways:update", "gateways:delete"}
    project = http.post("/projects", headers=alice, json={"name": "P"}).text
    assert _scopes(http, "projects", alice)[project] == {"projects:view", "projects:update", "projects:delete"}
    assert project not in _scopes(http, "projects", bob)


# -- §3 devices --------------------------------------------------------------------------------


def test_device_create_errors(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3: 400 no id, 400 bad id "=", 422 duplicate."""
    alice = users["alice"]
    assert http.post("/devices", headers=alice, json={"name": "x"}).status_code == 400
    assert http.post("/devices", headers=alice, json={"id": "a=b"}).status_code == 400
    dev = device(http, alice)
    assert http.post("/devices", headers=alice, json={"id": dev}).status_code == 422


def test_device_delete_deletes_datapoints(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3: DELETE /devices/{id} deletes its datapoints: none left after re-creating it."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S1"}])
    assert http.post(f"/devices/{dev}/sensors/S1/value", headers=alice, json={"value": 3}).status_code == 204
    assert len(http.get("/sensors_data", params={"device_id": dev}, headers=alice).json()) == 1
    assert http.delete(f"/devices/{dev}", headers=alice).status_code == 204
    device(http, alice, id=dev, sensors=[{"id": "S1"}])
    assert http.get("/sensors_data", params={"device_id": dev}, headers=alice).json() == []


def test_device_query_and_paging(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3, §7: q=gateway_id==GW, limit/offset with offset applied first."""
    alice = users["alice"]
    gw = uid("GWq")
    made = [device(http, alice, gateway_id=gw) for _ in range(3)]
    found = http.get("/devices", params={"q": f"gateway_id=={gw}"}, headers=alice).json()
    assert sorted(d["id"] for d in found) == sorted(made)
    every = [d["id"] for d in http.get("/devices", params={"q": f"gateway_id=={gw}"}, headers=alice).json()]
    page = http.get("/devices", params={"q": f"gateway_id=={gw}", "offset": 1, "limit": 1}, headers=alice).json()
    assert [d["id"] for d in page] == every[1:2]


def test_owner_put_keeps_visibility(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3: PUT /devices/{id}/owner leaves visibility unchanged."""
    alice = users["alice"]
    dev = device(http, alice, visibility="public")
    assert http.put(f"/devices/{dev}/owner", headers={**alice, **TEXT}, content=b"bob").status_code == 204
    got = http.get(f"/devices/{dev}", headers=users["bob"]).json()
    assert got["owner"] == "bob" and got["visibility"] == "public"


def test_device_meta_and_location(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3: meta is any JSON read back as is; location PUT."""
    alice = users["alice"]
    dev = device(http, alice)
    meta = {"x": [1, "two", {"three": False}]}
    assert http.put(f"/devices/{dev}/meta", headers=alice, json=meta).status_code == 204
    loc = {"latitude": 1.5, "longitude": 2.5}
    assert http.put(f"/devices/{dev}/location", headers=alice, json=loc).status_code == 204
    got = http.get(f"/devices/{dev}", headers=alice).json()
    assert got["meta"] == meta and got["location"] == loc


# -- §3 sensors and values ---------------------------------------------------------------------


def test_sensor_upsert_replaces(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3: POST an existing sensor id replaces it (204, not 422); 400 without an id."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S1", "name": "old", "unit": "u"}])
    assert http.post(f"/devices/{dev}/sensors", headers=alice, json={"id": "S1", "name": "new"}).status_code == 204
    sensor = http.get(f"/devices/{dev}/sensors/S1", headers=alice).json()
    assert sensor == {"id": "S1", "name": "new"}
    assert http.post(f"/devices/{dev}/sensors", headers=alice, json={"name": "x"}).status_code == 400
    assert http.get(f"/devices/{dev}/sensors/NOPE", headers=alice).status_code == 404


def test_unknown_sensor_value_404(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3: pushing a value to an unknown sensor is 404."""
    dev = device(http, users["alice"])
    assert http.post(f"/devices/{dev}/sensors/NOPE/value", headers=users["alice"], json={"value": 1}
                     ).status_code == 404


@pytest.mark.parametrize("value", [12.5, 7, "text", True, False, [1, "a", None], {"k": {"n": [1]}}])
def test_value_types_round_trip(http: httpx.Client, users: dict[str, Headers], value: Any) -> None:
    """§3: number, string, bool, array and object values are kept exactly."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S1"}])
    assert http.post(f"/devices/{dev}/sensors/S1/value", headers=alice, json={"value": value}).status_code == 204
    assert http.get(f"/devices/{dev}/sensors/S1", headers=alice).json()["value"]["value"] == value
    points = http.get(f"/devices/{dev}/sensors/S1/values", headers=alice).json()
    assert [p["value"] for p in points] == [value]


def test_text_plain_value_is_a_string(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3: a text/plain value is stored as a string (26.6 becomes "26.6")."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S1"}])
    assert http.post(f"/devices/{dev}/sensors/S1/value", headers={**alice, **TEXT}, content=b"26.6"
                     ).status_code == 204
    assert http.get(f"/devices/{dev}/sensors/S1", headers=alice).json()["value"]["value"] == "26.6"


def test_timestamp_precision(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3: current value in whole seconds, history in milliseconds."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S1"}])
    body = {"value": 1, "timestamp": "2016-06-08T18:20:27.873Z"}
    assert http.post(f"/devices/{dev}/sensors/S1/value", headers=alice, json=body).status_code == 204
    current = http.get(f"/devices/{dev}/sensors/S1", headers=alice).json()["value"]
    assert current["timestamp"] == "2016-06-08T18:20:27Z" and current["date_received"].endswith("Z")
    history = http.get("/sensors_data", params={"device_id": dev}, headers=alice).json()
    assert history[0]["timestamp"] == "2016-06-08T18:20:27.873Z"


def test_sensor_delete_deletes_its_datapoints(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3: DELETE a sensor deletes its datapoints (the other sensor's stay)."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S1"}, {"id": "S2"}])
    for sensor in ("S1", "S2"):
        assert http.post(f"/devices/{dev}/sensors/{sensor}/value", headers=alice, json={"value": 1}
                         ).status_code == 204
    assert http.delete(f"/devices/{dev}/sensors/S1", headers=alice).status_code == 204
    assert http.get(f"/devices/{dev}/sensors/S1", headers=alice).status_code == 404
    assert http.post(f"/devices/{dev}/sensors", headers=alice, json={"id": "S1"}).status_code == 204
    points = http.get("/sensors_data", params={"device_id": dev}, headers=alice).json()
    assert [p["sensor_id"] for p in points] == ["S2"]


def test_values_batch(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3, §7: POST …/values stores a batch, in order."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S1"}])
    batch = [{"value": 1, "timestamp": "2020-01-01T00:00:00Z"}, {"value": 2}, {"value": "three"}]
    assert http.post(f"/devices/{dev}/sensors/S1/values", headers=alice, json=batch).status_code == 204
    points = http.get(f"/devices/{dev}/sensors/S1/values", headers=alice).json()
    assert [p["value"] for p in points] == [1, 2, "three"]
    assert http.get(f"/devices/{dev}/sensors/S1", headers=alice).json()["value"]["value"] == "three"


def test_calibration_applied_on_read(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3, §7: linear calibration applied on read, not with calibrated=false."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S1"}])
    calib = {"linear": {"enabled": True, "value_min": {"sensor_value": 0, "real_value": 10},
                        "value_max": {"sensor_value": 10, "real_value": 30}}}
    assert http.put(f"/devices/{dev}/sensors/S1/calib", headers=alice, json=calib).status_code == 204
    assert http.post(f"/devices/{dev}/sensors/S1/value", headers=alice, json={"value": 5}).status_code == 204
    assert [p["value"] for p in http.get(f"/devices/{dev}/sensors/S1/values", headers=alice).json()] == [20]
    raw = http.get(f"/devices/{dev}/sensors/S1/values", params={"calibrated": "false"}, headers=alice).json()
    assert [p["value"] for p in raw] == [5]
    assert http.get(f"/devices/{dev}/sensors/S1", headers=alice).json()["calib"] == calib


# -- §3 actuators ------------------------------------------------------------------------------


def test_actuator_upsert_and_errors(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3: actuators upsert (204), 400 without id, 404 unknown."""
    alice = users["alice"]
    dev = device(http, alice, actuators=[{"id": "A1", "name": "old"}])
    assert http.post(f"/devices/{dev}/actuators", headers=alice, json={"id": "A1", "name": "new"}).status_code == 204
    assert http.get(f"/devices/{dev}/actuators/A1", headers=alice).json() == {"id": "A1", "name": "new"}
    assert http.post(f"/devices/{dev}/actuators", headers=alice, json={"name": "x"}).status_code == 400
    assert http.get(f"/devices/{dev}/actuators/NOPE", headers=alice).status_code == 404


def test_actuator_value_stored_and_published(platform: Any, http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3, §6: PUT …/value with JSON false, 56.6, "x": stored and published on MQTT."""
    alice = users["alice"]
    dev = device(http, alice, actuators=[{"id": "A1"}])
    watcher = Subscriber(platform.mqtt, f"devices/{dev}/actuators/A1/value", username="alice",
                         password="alice-Pa55word")
    try:
        for value in (False, 56.6, "x"):
            assert http.put(f"/devices/{dev}/actuators/A1/value", headers=alice, json=value).status_code == 204
            assert http.get(f"/devices/{dev}/actuators/A1", headers=alice).json()["value"] == value
            assert watcher.next() == (f"devices/{dev}/actuators/A1/value", value)
    finally:
        watcher.close()


# -- §3 gateways -------------------------------------------------------------------------------


def _gateway(http: httpx.Client, headers: Headers, **fields: Any) -> str:
    gid = uid("GW")
    answer = http.post("/gateways", headers=headers, json={"id": gid, "name": "g", **fields})
    assert answer.status_code in (200, 204), answer.text
    return gid


def test_gateway_create_errors_and_private(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3 gateways: 422 duplicate, 400 no id, 403 private of someone else, 404 missing."""
    alice = users["alice"]
    gid = _gateway(http, alice, visibility="private")
    assert http.post("/gateways", headers=alice, json={"id": gid}).status_code == 422
    assert http.post("/gateways", headers=alice, json={"name": "x"}).status_code == 400
    assert http.get(f"/gateways/{gid}", headers=users["bob"]).status_code == 403
    assert http.get(f"/gateways/{gid}", headers=alice).json()["owner"] == "alice"
    assert http.get(f"/gateways/{uid('none')}", headers=alice).status_code == 404
    assert http.delete(f"/gateways/{gid}", headers=users["bob"]).status_code == 403


def test_gateway_owner_put_sets_private(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3 gateways: PUT owner (JSON string) also sets visibility private; PUT name as text."""
    alice = users["alice"]
    gid = _gateway(http, alice)
    assert http.put(f"/gateways/{gid}/name", headers={**alice, **TEXT}, content=b"MyGW").status_code == 204
    assert http.put(f"/gateways/{gid}/owner", headers=alice, json="bob").status_code == 204
    got = http.get(f"/gateways/{gid}", headers=users["bob"]).json()
    assert got["owner"] == "bob" and got["visibility"] == "private" and got["name"] == "MyGW"


def test_gateway_connected_follows_mqtt_client(platform: Any, http: httpx.Client,
                                               users: dict[str, Headers]) -> None:
    """§3, §6: connected while an MQTT client with the gateway's id is connected; false
    within ~1 s after it disconnects."""
    alice = users["alice"]
    gid = _gateway(http, alice)
    assert http.get(f"/gateways/{gid}", headers=alice).json()["connected"] is False
    client = Subscriber(platform.mqtt, "", client_id=gid)
    try:
        assert until(lambda: http.get(f"/gateways/{gid}", headers=alice).json()["connected"] is True, 1.5)
    finally:
        client.close()
    assert until(lambda: http.get(f"/gateways/{gid}", headers=alice).json()["connected"] is False, 1.5)


def test_gateway_full_heartbeat_vpn(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3, §7: full=true adds devices; heartbeat sets last_seen; vpn a clear error, not 500."""
    alice = users["alice"]
    gid = _gateway(http, alice)
    dev = device(http, alice, gateway_id=gid)
    assert "devices" not in http.get(f"/gateways/{gid}", headers=alice).json()
    full = http.get(f"/gateways/{gid}", params={"full": "true"}, headers=alice).json()
    assert [d["id"] for d in full["devices"]] == [dev]
    listed = http.get("/gateways", params={"full": "true"}, headers=alice).json()
    assert [d["id"] for g in listed if g["id"] == gid for d in g["devices"]] == [dev]
    assert "last_seen" not in http.get(f"/gateways/{gid}", headers=alice).json()
    assert http.put(f"/gateways/{gid}/heartbeat", headers=alice).status_code == 204
    assert http.get(f"/gateways/{gid}", headers=alice).json()["last_seen"].endswith("Z")
    vpn = http.get(f"/gateways/{gid}/vpn", headers=alice)
    assert 400 <= vpn.status_code < 600 and vpn.status_code != 500 and vpn.text


# -- §3 projects -------------------------------------------------------------------------------


def test_projects_lifecycle(http: httpx.Client, admin: Headers, users: dict[str, Headers]) -> None:
    """§3 projects: 200 text id; own-only list (admin all); full; PUT device_ids replaces;
    DELETE then GET 404."""
    alice, bob = users["alice"], users["bob"]
    dev = device(http, alice)
    made = http.post("/projects", headers=alice, json={"name": "P", "device_ids": ["x"]})
    assert made.status_code == 200 and made.headers["content-type"].startswith("text/plain")
    pid = made.text
    assert not pid.startswith('"')
    bobs = http.post("/projects", headers=bob, json={"name": "B"}).text
    assert pid in [p["id"] for p in http.get("/projects", headers=alice).json()]
    assert bobs not in [p["id"] for p in http.get("/projects", headers=alice).json()]
    assert {pid, bobs} <= {p["id"] for p in http.get("/projects", headers=admin).json()}
    assert http.get(f"/projects/{pid}", headers=bob).status_code == 403
    assert http.put(f"/projects/{pid}/device_ids", headers=alice, json=[dev]).status_code == 204
    assert http.put(f"/projects/{pid}/name", headers=alice, json="P2").status_code == 204
    got = http.get(f"/projects/{pid}", headers=alice).json()
    assert got["device_ids"] == [dev] and got["name"] == "P2" and got["owner"] == "alice"
    full = http.get(f"/projects/{pid}", params={"full": "true"}, headers=alice).json()
    assert [d["id"] for d in full["devices"]] == [dev]
    assert http.delete(f"/projects/{pid}", headers=alice).status_code == 204
    assert http.get(f"/projects/{pid}", headers=alice).status_code == 404


def test_malformed_project_ids_give_an_error(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3 projects: DELETE /projects/undefined or a JSON list in the path: an error status."""
    for path in ("/projects/undefined", '/projects/["a","b"]'):
        answer = http.delete(path, headers=users["alice"], timeout=5)
        assert 400 <= answer.status_code < 500


# -- §3, §5 notifications ----------------------------------------------------------------------


def _notif(devices: list[str], sensors: list[str], expression: str = "", **extra: Any) -> dict[str, Any]:
    return {"description": "d", "condition": {"devices": devices, "sensors": sensors, "expression": expression},
            "action": {"type": "SocialAction", "value": {"usernames": ["alice"], "channels": ["none"],
                                                         "message": "hi"}}, **extra}


def _create_notif(http: httpx.Client, body: dict[str, Any]) -> str:
    made = http.post("/notifications", json=body)
    assert made.status_code == 200, made.text
    assert made.headers["content-type"].startswith("text/plain")
    assert re.fullmatch(r"[0-9a-f]{24}", made.text)
    return made.text


def test_notification_routes(http: httpx.Client) -> None:
    """§3 notifications: 200 text 24-hex id; status defaults active; 400 malformed id on GET;
    404 well-formed unknown; DELETE unknown, 123 and already deleted 404; PATCH 204."""
    nid = _create_notif(http, _notif(["X"], ["S"]))
    assert http.get(f"/notifications/{nid}").json()["status"] == "active"
    assert nid in [n["id"] for n in http.get("/notifications").json()]
    assert http.get("/notifications/123").status_code == 400
    assert http.get("/notifications/" + "a" * 24).status_code == 404
    assert http.patch(f"/notifications/{nid}", json={"description": "new"}).status_code == 204
    assert http.get(f"/notifications/{nid}").json()["description"] == "new"
    assert http.post("/notifications", json={"description": "no condition"}).status_code == 400
    assert http.delete("/notifications/" + "b" * 24).status_code == 404
    assert http.delete("/notifications/123").status_code == 404
    assert http.delete(f"/notifications/{nid}").status_code == 204
    assert http.delete(f"/notifications/{nid}").status_code == 404


def test_inactive_never_fires(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§5 rule 7: PUT status inactive (text and JSON): the notification never fires."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S"}])
    nid = _create_notif(http, _notif([dev], ["S"]))
    assert http.put(f"/notifications/{nid}/status", headers=TEXT, content=b"inactive").status_code == 204
    assert http.put(f"/notifications/{nid}/status", json="inactive").status_code == 204
    assert http.post(f"/devices/{dev}/sensors/S/value", headers=alice, json={"value": 1}).status_code == 204
    shown = http.get(f"/notifications/{nid}").json()
    assert shown["status"] == "inactive" and shown["times_sent"] == 0


def test_fires_once_at_creation(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§5 rule 2: create (condition holds), set inactive, push: times_sent is 1."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S"}])
    assert http.post(f"/devices/{dev}/sensors/S/value", headers=alice, json={"value": 50}).status_code == 204
    nid = _create_notif(http, _notif([dev], ["S"], "S>40"))
    assert http.put(f"/notifications/{nid}/status", headers=TEXT, content=b"inactive").status_code == 204
    assert http.post(f"/devices/{dev}/sensors/S/value", headers=alice, json={"value": 60}).status_code == 204
    assert http.get(f"/notifications/{nid}").json()["times_sent"] == 1


def test_throttling(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§5 rule 3: throttling 3600: two pushes fire once; the creation-time firing does not
    delay the first value-triggered one."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S"}])
    nid = _create_notif(http, _notif([dev], ["S"], throttling=3600))
    for value in (1, 2):
        assert http.post(f"/devices/{dev}/sensors/S/value", headers=alice, json={"value": value}).status_code == 204
    assert http.get(f"/notifications/{nid}").json()["times_sent"] == 1
    assert http.post(f"/devices/{dev}/sensors/S/value", headers=alice, json={"value": 3}).status_code == 204
    dev2 = device(http, alice, sensors=[{"id": "S"}])
    assert http.post(f"/devices/{dev2}/sensors/S/value", headers=alice, json={"value": 1}).status_code == 204
    nid2 = _create_notif(http, _notif([dev2], ["S"], throttling=3600))
    assert http.get(f"/notifications/{nid2}").json()["times_sent"] == 1  # at creation
    assert http.post(f"/devices/{dev2}/sensors/S/value", headers=alice, json={"value": 2}).status_code == 204
    assert http.get(f"/notifications/{nid2}").json()["times_sent"] == 2  # not delayed by it


def test_social_action_channel_none_counts(platform: Any, http: httpx.Client, users: dict[str, Headers]) -> None:
    """§5 rules 4, 5, §3 socials: a SocialAction on channel none counts each firing, with
    success, and logs the message."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S"}])
    body = _notif([dev], ["S"], "S>10", throttling=0)
    message = uid("logged-message")
    body["action"]["value"]["message"] = message
    nid = _create_notif(http, body)
    for value in (5, 20, 30):
        assert http.post(f"/devices/{dev}/sensors/S/value", headers=alice, json={"value": value}).status_code == 204
    shown = http.get(f"/notifications/{nid}").json()
    assert shown["times_sent"] == 2 and shown["last_success_code"] == 204
    assert shown["last_notif"].endswith("Z") and shown["last_success"].endswith("Z")
    assert until(lambda: (platform.data / "run.log").read_text().count(message) == 2)


def test_actuation_substitutes_as_text(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§5 rule 6: "${TC1}" with TC1 = 100 gives the string "100"."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "TC1"}], actuators=[{"id": "A"}])
    body = {"condition": {"devices": [dev], "sensors": ["TC1"], "expression": ""},
            "action": {"type": "ActuationAction", "value": {"device_id": dev, "actuator_id": "A",
                                                            "actuator_value": "${TC1}"}}, "throttling": 1}
    nid = _create_notif(http, body)
    assert http.post(f"/devices/{dev}/sensors/TC1/value", headers=alice, json={"value": 100}).status_code == 204
    assert http.get(f"/devices/{dev}/actuators/A", headers=alice).json()["value"] == "100"
    assert http.get(f"/notifications/{nid}").json()["last_success_code"] == 204


# -- §3 socials and users ----------------------------------------------------------------------


def test_socials(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3 socials: channel none 200 text id; unknown user 400; twitter without credentials
    400; GET; DELETE 200; batch 204."""
    made = http.post("/socials", json={"username": "alice", "channel": "none", "message": "hello"})
    assert made.status_code == 200 and made.headers["content-type"].startswith("text/plain")
    sid = made.text
    assert http.get(f"/socials/{sid}").json()["message"] == "hello"
    assert http.post("/socials", json={"username": uid("nobody"), "channel": "none", "message": "m"}
                     ).status_code == 400
    assert http.post("/socials", json={"username": "alice", "channel": "twitter", "message": "m"}).status_code == 400
    assert http.delete(f"/socials/{sid}").status_code == 200
    assert http.get(f"/socials/{sid}").status_code == 404
    batch = {"usernames": ["alice", "bob"], "channels": ["none", "sms"], "message": "all"}
    assert http.post("/socials/batch", json=batch).status_code == 204
    assert isinstance(http.get("/socials").json(), list)


def test_users(http: httpx.Client, admin: Headers, users: dict[str, Headers]) -> None:
    """§3 users: admin sees email and phone, others only public fields; /users/me; 404;
    POST /users by a non-admin 403; sms_credit by the admin."""
    alice, bob = users["alice"], users["bob"]
    made = http.post("/users", headers=admin, json={"username": "carol", "password": "Carol-Pa55word",
                                                    "email": "carol@example.org", "phone": "+33 1"})
    assert made.status_code == 200 and made.text
    as_admin = {u["username"]: u for u in http.get("/users", headers=admin).json()}
    assert as_admin["alice"]["phone"] == "+221 00 00 00"
    assert as_admin["carol"]["email"] == "carol@example.org" and as_admin["carol"]["id"] == made.text
    assert no_null(list(as_admin.values()))
    as_bob = {u["username"]: u for u in http.get("/users", headers=bob).json()}
    assert "phone" not in as_bob["alice"] and "email" not in as_bob["alice"] and "sms_credit" not in as_bob["alice"]
    assert "email" not in as_bob["carol"] and "phone" not in as_bob["carol"]
    assert all("email" not in u and "phone" not in u for u in http.get("/users").json())  # nor the guest
    me = http.get("/users/me", headers=alice).json()
    assert me["username"] == "alice"
    assert http.get(f"/users/{me['id']}", headers=alice).json()["username"] == "alice"
    assert http.get(f"/users/{uid('nobody')}", headers=admin).status_code == 404
    assert http.post("/users", headers=bob, json={"username": "eve", "password": "Eve-Pa55word"}).status_code == 403
    assert http.post("/users", json={"username": "eve", "password": "Eve-Pa55word"}).status_code == 403
    assert http.put(f"/users/{me['id']}/sms_credit", headers=admin, json=42).status_code == 204
    assert http.get(f"/users/{me['id']}", headers=admin).json()["sms_credit"] == 42
    assert http.put(f"/users/{me['id']}/sms_credit", headers=bob, json=1000).status_code == 403


@pytest.mark.parametrize("name", ["sensor_kinds", "actuator_kinds", "quantity_kinds", "units"])
def test_ontologies(http: httpx.Client, name: str) -> None:
    """§3, §7: the four ontologies are JSON lists."""
    answer = http.get(f"/ontologies/{name}")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    assert isinstance(answer.json(), list) and answer.json()


# -- §6 MQTT -----------------------------------------------------------------------------------


def test_mqtt_anonymous_publish_stored_and_notifies(platform: Any, http: httpx.Client,
                                                    users: dict[str, Headers]) -> None:
    """§6: an anonymous publish on a public sensor topic is stored (before PUBACK) and fires
    notifications (§5 rule 1)."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S"}])
    nid = _create_notif(http, _notif([dev], ["S"], "S>1"))
    guest = Subscriber(platform.mqtt, "")
    try:
        guest.publish(f"devices/{dev}/sensors/S/value", {"value": 5, "timestamp": "2020-01-02T03:04:05Z"})
    finally:
        guest.close()
    sensor = http.get(f"/devices/{dev}/sensors/S").json()
    assert sensor["value"]["value"] == 5 and sensor["value"]["timestamp"] == "2020-01-02T03:04:05Z"
    assert http.get(f"/notifications/{nid}").json()["times_sent"] == 1


def test_mqtt_bad_credentials_refused(platform: Any) -> None:
    """§6: bad credentials are refused (CONNACK rc != 0)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.username_pw_set("alice", "wrong-password")
    codes: list[Any] = []
    client.on_connect = lambda c, u, flags, rc, props: codes.append(rc)
    client.connect("127.0.0.1", platform.mqtt)
    client.loop_start()
    try:
        assert until(lambda: bool(codes), 5)
        assert codes[0] != 0 and codes[0].is_failure
    finally:
        client.disconnect()
        client.loop_stop()


def test_mqtt_guest_publish_to_private_acked_not_stored(platform: Any, http: httpx.Client,
                                                        users: dict[str, Headers]) -> None:
    """§6: a guest's QoS1 publish to a private device gets PUBACK and is not stored."""
    alice = users["alice"]
    dev = device(http, alice, visibility="private", sensors=[{"id": "S"}])
    guest = Subscriber(platform.mqtt, "")
    try:
        guest.publish(f"devices/{dev}/sensors/S/value", {"value": 9})  # asserts the PUBACK
    finally:
        guest.close()
    assert "value" not in http.get(f"/devices/{dev}/sensors/S", headers=alice).json()
    assert http.get("/sensors_data", params={"device_id": dev}, headers=alice).json() == []


def test_mqtt_actuator_topic_sets_actuator(platform: Any, http: httpx.Client, users: dict[str, Headers]) -> None:
    """§6: a publish on an actuator topic sets the actuator."""
    alice = users["alice"]
    dev = device(http, alice, actuators=[{"id": "A"}])
    client = Subscriber(platform.mqtt, "", username="alice", password="alice-Pa55word")
    try:
        client.publish(f"devices/{dev}/actuators/A/value", 56.6)
    finally:
        client.close()
    assert http.get(f"/devices/{dev}/actuators/A", headers=alice).json()["value"] == 56.6


# -- OpenAPI -----------------------------------------------------------------------------------


def test_openapi_is_json(http: httpx.Client) -> None:
    """The API describes itself: GET /api/v2/openapi.json is JSON."""
    answer = http.get("/openapi.json")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    assert isinstance(answer.json(), dict)


# -- more of §2, §3, §5, §6 --------------------------------------------------------------------


def test_private_device_members_and_data_403(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§2: others hold no scope on a private device: its sensors, actuators, values and
    history are 403, and a push to it is 403."""
    alice, bob = users["alice"], users["bob"]
    dev = device(http, alice, visibility="private", sensors=[{"id": "S"}], actuators=[{"id": "A"}])
    for path in (f"/devices/{dev}/sensors", f"/devices/{dev}/actuators", f"/devices/{dev}/sensors/S",
                 f"/devices/{dev}/sensors/S/values"):
        assert http.get(path, headers=bob).status_code == 403, path
    assert http.get("/sensors_data", params={"device_id": dev}, headers=bob).status_code == 403
    assert http.post(f"/devices/{dev}/sensors/S/value", headers=bob, json={"value": 1}).status_code == 403
    assert http.put(f"/devices/{dev}/actuators/A/value", headers=bob, json=1).status_code == 403
    assert dev not in [d["id"] for d in http.get("/devices", headers=bob).json()]
    assert dev in [d["id"] for d in http.get("/devices", headers=alice).json()]


def test_public_device_data_by_others(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§2: anyone holds devices-data:create and :view on a public device."""
    dev = device(http, users["alice"], sensors=[{"id": "S"}])
    assert http.post(f"/devices/{dev}/sensors/S/value", headers=users["bob"], json={"value": 4}).status_code == 204
    assert [p["value"] for p in http.get("/sensors_data", params={"device_id": dev}).json()] == [4]


def test_sensors_data_filters(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3: /sensors_data over several devices and sensors, sort dsc, default limit 20,
    date_from and date_to."""
    alice = users["alice"]
    one, two = device(http, alice, sensors=[{"id": "A"}, {"id": "B"}]), device(http, alice, sensors=[{"id": "A"}])
    for n in range(12):
        for dev in (one, two):
            assert http.post(f"/devices/{dev}/sensors/A/value", headers=alice, json={"value": n}).status_code == 204
    assert http.post(f"/devices/{one}/sensors/B/value", headers=alice, json={"value": "b"}).status_code == 204
    both = http.get("/sensors_data", params={"device_id": f"{one},{two}", "sensor_id": "A"}, headers=alice).json()
    assert len(both) == 20 and {p["device_id"] for p in both} == {one, two}
    newest = http.get("/sensors_data", params={"device_id": one, "sort": "dsc", "limit": 2}, headers=alice).json()
    assert [p["value"] for p in newest] == ["b", 11]
    received = [p["date_received"] for p in
                http.get("/sensors_data", params={"device_id": one, "limit": 100}, headers=alice).json()]
    assert received == sorted(received) and len(received) == 13
    window = http.get("/sensors_data", params={"device_id": one, "limit": 100, "date_from": received[5],
                                               "date_to": received[7]}, headers=alice).json()
    assert all(received[5] <= p["date_received"] <= received[7] for p in window) and len(window) >= 1


def test_users_filters(http: httpx.Client, admin: Headers, users: dict[str, Headers]) -> None:
    """§3 users: username, limit and offset on GET /users."""
    found = http.get("/users", params={"username": "bob"}, headers=admin).json()
    assert [u["username"] for u in found] == ["bob"]
    every = [u["username"] for u in http.get("/users", headers=admin).json()]
    page = http.get("/users", params={"offset": 1, "limit": 1}, headers=admin).json()
    assert [u["username"] for u in page] == every[1:2]


def test_guest_me(http: httpx.Client) -> None:
    """§2: without a token /users/me is the guest, not admin."""
    me = http.get("/users/me").json()
    assert me["username"] == "guest" and me.get("admin", False) is False


def test_expression_and_expires(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§5: `;` is AND; a watched sensor only; past `expires` never fires; `expires` and
    `throttling: 1` round-trip exactly."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "A"}, {"id": "B"}])
    both = _create_notif(http, _notif([dev], ["A"], "A>10;B==on", throttling=0))
    expired = _create_notif(http, _notif([dev], ["A"], "", expires="2001-01-01T00:00:00Z", throttling=1))
    shown = http.get(f"/notifications/{expired}").json()
    assert shown["expires"] == "2001-01-01T00:00:00Z" and shown["throttling"] == 1
    assert http.post(f"/devices/{dev}/sensors/A/value", headers=alice, json={"value": 20}).status_code == 204
    assert http.get(f"/notifications/{both}").json()["times_sent"] == 0  # B has no value: false
    assert http.post(f"/devices/{dev}/sensors/B/value", headers=alice, json={"value": "on"}).status_code == 204
    assert http.get(f"/notifications/{both}").json()["times_sent"] == 0  # B is not watched
    assert http.post(f"/devices/{dev}/sensors/A/value", headers=alice, json={"value": 21}).status_code == 204
    assert http.get(f"/notifications/{both}").json()["times_sent"] == 1
    assert http.get(f"/notifications/{expired}").json()["times_sent"] == 0


def test_notif_round_trips_and_patch_keeps_counters(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§4: description, condition, action round-trip exactly (extra keys inside kept); §3
    PATCH replaces fields and keeps times_sent."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S"}], actuators=[{"id": "A"}])
    body = {"description": "x", "condition": {"devices": [dev], "sensors": ["S"], "expression": "", "extra": 1},
            "action": {"type": "ActuationAction", "value": {"device_id": dev, "actuator_id": "A",
                                                            "actuator_value": "MyVal1"}, "k": [1]},
            "throttling": 0}
    nid = _create_notif(http, body)
    shown = http.get(f"/notifications/{nid}").json()
    assert {k: shown[k] for k in body} == body and no_null(shown)
    assert not any(k.startswith("_") for k in shown)
    assert http.post(f"/devices/{dev}/sensors/S/value", headers=alice, json={"value": 1}).status_code == 204
    assert http.get(f"/devices/{dev}/actuators/A", headers=alice).json()["value"] == "MyVal1"  # a constant as is
    assert http.patch(f"/notifications/{nid}", json={"description": "y"}).status_code == 204
    shown = http.get(f"/notifications/{nid}").json()
    assert shown["description"] == "y" and shown["times_sent"] == 1 and shown["condition"] == body["condition"]


def test_http_value_to_mqtt_keeps_whole_second_timestamp(platform: Any, http: httpx.Client,
                                                         users: dict[str, Headers]) -> None:
    """§6: HTTP to MQTT: a timestamp without a fraction is published identical."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S"}])
    watcher = Subscriber(platform.mqtt, f"devices/{dev}/sensors/+/value")
    try:
        body = {"value": "x", "timestamp": "2016-06-08T18:20:27Z"}
        assert http.post(f"/devices/{dev}/sensors/S/value", headers=alice, json=body).status_code == 204
        assert watcher.next() == (f"devices/{dev}/sensors/S/value", body)
    finally:
        watcher.close()


def _raw_connect(port: int, client_id: str) -> socket.socket:
    """A bare MQTT 3.1.1 CONNECT (clean session, keepalive 60) and its accepting CONNACK."""
    cid = client_id.encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x3c"
    payload = len(cid).to_bytes(2, "big") + cid
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"\x10" + bytes([len(variable) + len(payload)]) + variable + payload)
    assert sock.recv(4) == b"\x20\x02\x00\x00"
    return sock


def test_gateway_presence_on_socket_close(platform: Any, http: httpx.Client, users: dict[str, Headers]) -> None:
    """§6: a gateway connected by client id, disconnected when its socket just closes
    (no DISCONNECT), within ~1 s; shown in the list too."""
    alice = users["alice"]
    gid = _gateway(http, alice)
    sock = _raw_connect(platform.mqtt, gid)
    try:
        assert until(lambda: http.get(f"/gateways/{gid}", headers=alice).json()["connected"] is True, 1.5)
        assert [g["connected"] for g in http.get("/gateways", headers=alice).json() if g["id"] == gid] == [True]
    finally:
        sock.close()
    assert until(lambda: http.get(f"/gateways/{gid}", headers=alice).json()["connected"] is False, 1.5)


def test_gateway_guest_and_delete(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§2, §3: a guest's gateway is owned by "guest"; DELETE by the owner 204, then 404;
    location PUT round-trips."""
    gid = _gateway(http, {})
    assert http.get(f"/gateways/{gid}").json()["owner"] == "guest"
    alice = users["alice"]
    mine = _gateway(http, alice, location={"latitude": 1, "longitude": 2})
    assert http.get(f"/gateways/{mine}", headers=alice).json()["location"] == {"latitude": 1, "longitude": 2}
    assert http.put(f"/gateways/{mine}/location", headers=alice, json={"latitude": 3, "longitude": 4}
                    ).status_code == 204
    assert http.get(f"/gateways/{mine}", headers=alice).json()["location"] == {"latitude": 3, "longitude": 4}
    assert http.delete(f"/gateways/{mine}", headers=alice).status_code == 204
    assert http.get(f"/gateways/{mine}", headers=alice).status_code == 404


def test_projects_non_owner_403_and_gateway_full(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§2: projects: update and delete by others 403; §3 full=true adds gateways too."""
    alice, bob = users["alice"], users["bob"]
    gid = _gateway(http, alice)
    pid = http.post("/projects", headers=alice, json={"name": "P", "gateway_ids": [gid]}).text
    assert http.put(f"/projects/{pid}/name", headers=bob, json="mine").status_code == 403
    assert http.delete(f"/projects/{pid}", headers=bob).status_code == 403
    assert http.put(f"/projects/{pid}/gateway_ids", headers=alice, json="notalist").status_code == 400
    full = http.get("/projects", params={"full": "true"}, headers=alice).json()
    assert [[g["id"] for g in p["gateways"]] for p in full if p["id"] == pid] == [[gid]]


def test_sms_credit_text_plain(http: httpx.Client, admin: Headers, users: dict[str, Headers]) -> None:
    """§3 users: PUT sms_credit takes an int as text too; a non-int is 400."""
    me = http.get("/users/me", headers=users["bob"]).json()
    assert http.put(f"/users/{me['id']}/sms_credit", headers={**admin, **TEXT}, content=b"7").status_code == 204
    assert http.get("/users/me", headers=users["bob"]).json()["sms_credit"] == 7
    assert http.put(f"/users/{me['id']}/sms_credit", headers={**admin, **TEXT}, content=b"many").status_code == 400


def test_posted_nulls_are_absent_fields(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§1, §4: null for a text field of a posted Device, Sensor or Actuator is an absent
    field (the reference's Maybe fields), so the JSON output holds no null for it."""
    alice = users["alice"]
    dev = device(http, alice, name=None, gateway_id=None, sensors=[{"id": "S", "name": None, "unit": None}],
                 actuators=[{"id": "A", "actuator_kind": None, "actuator_value_type": None}])
    got = http.get(f"/devices/{dev}", headers=alice).json()
    assert no_null(got)
    assert got["sensors"] == [{"id": "S"}] and got["actuators"] == [{"id": "A"}] and "name" not in got
    assert http.post(f"/devices/{dev}/sensors", headers=alice, json={"id": "S2", "unit": None}).status_code == 204
    assert http.get(f"/devices/{dev}/sensors/S2", headers=alice).json() == {"id": "S2"}


def test_notif_on_malformed_device_id_is_created(http: httpx.Client) -> None:
    """§3 notifications: a condition naming an id no device can have is created (200) and
    listed, not answered 400 while stored anyway."""
    nid = _create_notif(http, _notif(["a b", "x/y"], ["S"]))
    assert nid in [n["id"] for n in http.get("/notifications").json()]
    assert http.get(f"/notifications/{nid}").json()["condition"]["devices"] == ["a b", "x/y"]


@pytest.mark.parametrize(("posted", "current", "history"), [
    ("2016-10-04T02:03:28.783385", "2016-10-04T02:03:28Z", "2016-10-04T02:03:28.783Z"),  # LowCostLoRaGw's
    ("2016-06-08T20:20:27.873+02:00", "2016-06-08T18:20:27Z", "2016-06-08T18:20:27.873Z"),
    ("2016-06-08T18:20:27Z", "2016-06-08T18:20:27Z", "2016-06-08T18:20:27Z"),
])
def test_history_timestamps_are_utc_milliseconds(http: httpx.Client, users: dict[str, Headers], posted: str,
                                                 current: str, history: str) -> None:
    """§1 (ISO-8601 UTC with Z), §3: the history keeps milliseconds, in UTC; the current
    value whole seconds; a timestamp without a fraction comes back identical."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S"}])
    assert http.post(f"/devices/{dev}/sensors/S/value", headers=alice, json={"value": 1, "timestamp": posted}
                     ).status_code == 204
    assert http.get(f"/devices/{dev}/sensors/S", headers=alice).json()["value"]["timestamp"] == current
    assert [p["timestamp"] for p in http.get("/sensors_data", params={"device_id": dev}, headers=alice).json()] \
        == [history]


def test_mqtt_subscribe_to_private_is_granted(platform: Any, http: httpx.Client, users: dict[str, Headers]) -> None:
    """§6: subscribing is always accepted (private devices' topics, wildcards); the guest
    just receives nothing of a private device."""
    dev = device(http, users["alice"], visibility="private", sensors=[{"id": "S"}])
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    granted: list[Any] = []
    client.on_subscribe = lambda c, u, mid, codes, props: granted.extend(codes)
    client.connect("127.0.0.1", platform.mqtt)
    client.loop_start()
    try:
        client.subscribe([(f"devices/{dev}/#", 1), ("devices/+/sensors/+/value", 1)])
        assert until(lambda: len(granted) == 2, 5)
        assert all(not code.is_failure for code in granted)
    finally:
        client.disconnect()
        client.loop_stop()


def test_mqtt_bad_payloads_dropped_connection_kept(platform: Any, http: httpx.Client,
                                                   users: dict[str, Headers]) -> None:
    """§6: a publish that does not store (not JSON, a lone surrogate, NaN, unknown sensor)
    is acknowledged and dropped; the connection goes on and the next good value is stored."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S"}], actuators=[{"id": "A"}])
    client = Subscriber(platform.mqtt, "", username="alice", password="alice-Pa55word")
    try:
        for topic, payload in ((f"devices/{dev}/sensors/S/value", b"not json"),
                               (f"devices/{dev}/sensors/S/value", b'{"value": "\\ud800"}'),
                               (f"devices/{dev}/sensors/S/value", b'{"value": NaN}'),
                               (f"devices/{dev}/sensors/NOPE/value", b'{"value": 1}'),
                               (f"devices/{dev}/actuators/A/value", b"[" * 5000),
                               (f"devices/{dev}/actuators/A/value", b'"\\udfff"')):
            info = client.client.publish(topic, payload, qos=1)
            info.wait_for_publish(timeout=5)
            assert info.is_published(), (topic, payload[:20])
        client.publish(f"devices/{dev}/sensors/S/value", {"value": 3})
    finally:
        client.close()
    assert http.get(f"/devices/{dev}/sensors/S", headers=alice).json()["value"]["value"] == 3
    assert "value" not in http.get(f"/devices/{dev}/actuators/A", headers=alice).json()
    assert [p["value"] for p in http.get("/sensors_data", params={"device_id": dev}, headers=alice).json()] == [3]


@pytest.mark.parametrize("body", [b'{"x": NaN}', b"[1e999]", b'"\\ud800"', b"[" * 5000])
def test_unreadable_json_bodies_are_400(http: httpx.Client, users: dict[str, Headers], body: bytes) -> None:
    """§1: JSON bodies that are not JSON text (NaN, 1e999, a lone surrogate, nested past the
    parser) are a 400, never stored (they could not be written back) nor a 500."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S"}], actuators=[{"id": "A"}])
    json_type = {**alice, "Content-Type": "application/json"}
    for method, path in (("PUT", f"/devices/{dev}/meta"), ("PUT", f"/devices/{dev}/sensors/S/meta"),
                         ("PUT", f"/devices/{dev}/actuators/A/value"), ("POST", f"/devices/{dev}/sensors/S/value"),
                         ("PUT", f"/devices/{dev}/name"), ("POST", "/notifications"), ("POST", "/devices")):
        assert http.request(method, path, headers=json_type, content=body).status_code == 400, (method, path)
    assert no_null(http.get(f"/devices/{dev}", headers=alice).json())


def test_gateway_presence_survives_a_takeover(platform: Any, http: httpx.Client, users: dict[str, Headers]) -> None:
    """§6: a second connection with the gateway's client id takes the first one over; the
    gateway stays connected (the old one's disconnect must not win), until the new one goes."""
    alice = users["alice"]
    gid = _gateway(http, alice)
    first = _raw_connect(platform.mqtt, gid)
    second = _raw_connect(platform.mqtt, gid)
    try:
        assert first.recv(16) == b""  # the broker closed the old connection
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:  # connected all along, past the 1 s check
            assert http.get(f"/gateways/{gid}", headers=alice).json()["connected"] is True
            time.sleep(0.1)
    finally:
        first.close()
        second.close()
    assert until(lambda: http.get(f"/gateways/{gid}", headers=alice).json()["connected"] is False, 1.5)


def test_concurrent_values_all_stored(http: httpx.Client, platform: Any, users: dict[str, Headers]) -> None:
    """§3 "storing a value happens in one step": concurrent pushes to one device are each
    stored once, in the current value and in the history."""
    from concurrent.futures import ThreadPoolExecutor

    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S"}, {"id": "T"}])

    def push(n: int) -> int:
        with httpx.Client(base_url=platform.api, timeout=15) as client:
            return client.post(f"/devices/{dev}/sensors/{'ST'[n % 2]}/value", headers=alice,
                               json={"value": n}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(push, range(24))) == {204}
    points = http.get("/sensors_data", params={"device_id": dev, "limit": 100}, headers=alice).json()
    assert sorted(p["value"] for p in points) == list(range(24))
    sensors = {s["id"]: s["value"]["value"] for s in http.get(f"/devices/{dev}/sensors", headers=alice).json()}
    assert sensors["S"] % 2 == 0 and sensors["T"] % 2 == 1


def test_sensor_ids_with_a_comma_are_refused(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3: sensor ids are listed comma-separated (``sensor_id=a,b``): an id holding a comma
    would read and delete other sensors' datapoints, so it is a 400."""
    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "a"}])
    assert http.post(f"/devices/{dev}/sensors", headers=alice, json={"id": "a,b"}).status_code == 400
    assert http.post(f"/devices/{dev}/actuators", headers=alice, json={"id": "a,b"}).status_code == 400
    assert http.post("/devices", headers=alice, json={"id": uid("D"), "sensors": [{"id": "x,y"}]}).status_code == 400


def test_ids_with_plus_store_and_notify(http: httpx.Client, users: dict[str, Headers]) -> None:
    """§3: ids with ``+`` are Orion-valid: the value is stored and notifications fire (no
    MQTT topic can name it, so it is not mirrored there), never a 500."""
    alice = users["alice"]
    dev = device(http, alice, id=uid("D+1"), sensors=[{"id": "S+1"}], actuators=[{"id": "A+1"}])
    nid = _create_notif(http, _notif([dev], ["S+1"]))
    assert http.post(f"/devices/{dev}/sensors/S+1/value", headers=alice, json={"value": 5}).status_code == 204
    assert http.get(f"/devices/{dev}/sensors/S+1", headers=alice).json()["value"]["value"] == 5
    assert http.get(f"/notifications/{nid}").json()["times_sent"] == 1
    assert http.put(f"/devices/{dev}/actuators/A+1/value", headers=alice, json=1).status_code == 204
    assert http.get(f"/devices/{dev}/actuators/A+1", headers=alice).json()["value"] == 1


def test_concurrent_gateway_and_project_updates_all_kept(http: httpx.Client, platform: Any,
                                                         users: dict[str, Headers]) -> None:
    """§3: each answered PUT is kept: concurrent updates of one gateway (names, heartbeats,
    location) or one project (name, device_ids, gateway_ids) do not undo one another."""
    from concurrent.futures import ThreadPoolExecutor

    alice = users["alice"]
    gid = _gateway(http, alice)
    pid = http.post("/projects", headers=alice, json={"name": "P"}).text

    def put(job: tuple[str, Any]) -> int:
        path, body = job
        with httpx.Client(base_url=platform.api, timeout=15) as client:
            return client.put(path, headers=alice, json=body).status_code

    for _ in range(3):
        jobs = [(f"/gateways/{gid}/heartbeat", None)] * 10 + [(f"/gateways/{gid}/location",
                                                               {"latitude": 1, "longitude": 2})] * 4
        jobs += [(f"/projects/{pid}/device_ids", ["d"]), (f"/projects/{pid}/gateway_ids", ["g"]),
                 (f"/projects/{pid}/name", "N")] * 3
        jobs.insert(7, (f"/gateways/{gid}/name", "final"))
        with ThreadPoolExecutor(12) as pool:
            assert set(pool.map(put, jobs)) == {204}
        got = http.get(f"/gateways/{gid}", headers=alice).json()
        assert got["name"] == "final" and got["location"] == {"latitude": 1, "longitude": 2}
        project = http.get(f"/projects/{pid}", headers=alice).json()
        assert (project["name"], project["device_ids"], project["gateway_ids"]) == ("N", ["d"], ["g"])
        assert http.put(f"/gateways/{gid}/name", headers=alice, json="other").status_code == 204
        assert http.put(f"/projects/{pid}", headers=alice, json={}).status_code in (404, 405)
        for name, empty in (("name", "P"), ("device_ids", []), ("gateway_ids", [])):
            assert http.put(f"/projects/{pid}/{name}", headers=alice, json=empty).status_code == 204
        assert http.put(f"/gateways/{gid}/location", headers=alice, json={"latitude": 0, "longitude": 0}
                        ).status_code == 204


def test_throttling_holds_under_concurrent_values(http: httpx.Client, platform: Any,
                                                  users: dict[str, Headers]) -> None:
    """§5 rule 3: throttling is the minimum interval between two value-triggered firings,
    also when the values arrive together."""
    from concurrent.futures import ThreadPoolExecutor

    alice = users["alice"]
    dev = device(http, alice, sensors=[{"id": "S"}], actuators=[{"id": "A"}])
    social = _create_notif(http, _notif([dev], ["S"], throttling=3600))
    act = _create_notif(http, {"condition": {"devices": [dev], "sensors": ["S"], "expression": ""},
                               "action": {"type": "ActuationAction", "value": {
                                   "device_id": dev, "actuator_id": "A", "actuator_value": "${S}"}},
                               "throttling": 3600})

    def push(n: int) -> int:
        with httpx.Client(base_url=platform.api, timeout=15) as client:
            return client.post(f"/devices/{dev}/sensors/S/value", headers=alice, json={"value": n}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(push, range(16))) == {204}
    assert http.get(f"/notifications/{social}").json()["times_sent"] == 1
    assert http.get(f"/notifications/{act}").json()["times_sent"] == 1


def test_mqtt_guest_actuator_publish_on_private_dropped(platform: Any, http: httpx.Client,
                                                        users: dict[str, Headers]) -> None:
    """§6: on an actuator topic the same check applies: a guest's publish on a private
    device is acknowledged, not set and not relayed to its owner."""
    alice = users["alice"]
    dev = device(http, alice, visibility="private", actuators=[{"id": "A"}])
    owner = Subscriber(platform.mqtt, f"devices/{dev}/#", username="alice", password="alice-Pa55word")
    guest = Subscriber(platform.mqtt, "")
    try:
        guest.publish(f"devices/{dev}/actuators/A/value", 1)
        assert owner.nothing(0.3)
    finally:
        guest.close()
        owner.close()
    assert "value" not in http.get(f"/devices/{dev}/actuators/A", headers=alice).json()
