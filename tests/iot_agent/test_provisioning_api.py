"""The provisioning API through the north app: groups, devices, errors, persistence."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from iot_agent.app import create_app
from iot_agent.config import Config, parse
from iot_agent.provisioning.store import MemoryProvisioningStore, ProvisioningStore, SQLiteProvisioningStore

pytestmark = pytest.mark.anyio

H = {"fiware-service": "SmartGondor", "fiware-servicepath": "/gardens"}
GROUP = {
    "resource": "/iot/d",
    "apikey": "801230BJKL23Y9090DSFL123HJK09H324HV8732",
    "entity_type": "Thing",
    "trust": "8970A9078A803H3BL98PINEQRW8342HBAMS",
    "cbHost": "http://unexistentHost:1026",
    "commands": [{"name": "wheel1", "type": "Wheel"}],
    "lazy": [{"name": "luminescence", "type": "Lumens"}],
    "attributes": [{"object_id": "t", "name": "temperature", "type": "Number", "metadata": {"unitCode": {"type": "Text", "value": "CEL"}}}],
    "static_attributes": [{"name": "location", "type": "geo:point", "value": "0,0"}],
    "internal_attributes": [{"customField": 1}],
    "explicitAttrs": "['temperature']",
    "timestamp": True,
    "autoprovision": False,
    "preprocess": [{"step": "range", "attr": "t", "min": -40, "max": 80}],
}
DEVICE = {
    "device_id": "light1",
    "protocol": "GENERIC_PROTO",
    "entity_type": "TheLightType",
    "timezone": "America/Santiago",
    "transport": "HTTP",
    "endpoint": "http://fakedevice:1234",
    "attributes": [{"object_id": "s", "name": "state", "type": "Boolean", "expression": "s == 1"}],
    "commands": [{"name": "on", "type": "command"}],
    "static_attributes": [{"name": "floor", "type": "Number", "value": 3}],
}


@contextlib.asynccontextmanager
async def agent(registry: ProvisioningStore | None = None, config: Config | None = None) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(config or Config(), registry=registry or MemoryProvisioningStore())
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://agent") as client:
            yield client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def north(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    async with agent() as client:
        yield client


def error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"name", "message"}
    return response.status_code, body["name"]


# -- groups ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path,key", [("/iot/groups", "groups"), ("/iot/services", "services")])
async def test_group_round_trip(north: httpx.AsyncClient, path: str, key: str) -> None:
    created = await north.post(path, json={key: [GROUP]}, headers=H)
    assert created.status_code == 201
    assert created.json() == {}
    listed = await north.get(path, headers=H)
    assert listed.status_code == 200
    assert listed.json() == {"count": 1, key: [{**GROUP, "service": "smartgondor", "subservice": "/gardens"}]}


async def test_groups_and_services_are_one_registry(north: httpx.AsyncClient) -> None:
    await north.post("/iot/groups", json={"groups": [GROUP]}, headers=H)
    assert (await north.get("/iot/services", headers=H)).json()["count"] == 1


async def test_unknown_group_fields_are_dropped_and_tenant_comes_from_headers(north: httpx.AsyncClient) -> None:
    group = {"resource": "/iot/json", "apikey": "k", "bogus": 1, "service": "other", "subservice": "/x"}
    assert (await north.post("/iot/groups", json={"groups": [group]}, headers=H)).status_code == 201
    assert (await north.get("/iot/groups", headers=H)).json()["groups"] == [
        {"resource": "/iot/json", "apikey": "k", "service": "smartgondor", "subservice": "/gardens"}
    ]


async def test_duplicate_group(north: httpx.AsyncClient) -> None:
    await north.post("/iot/groups", json={"groups": [GROUP]}, headers=H)
    other_tenant = {"fiware-service": "other", "fiware-servicepath": "/"}
    again = await north.post("/iot/groups", json={"groups": [GROUP]}, headers=other_tenant)
    assert error(again) == (400, "DUPLICATE_GROUP")
    assert again.json()["message"] == (
        f"A device configuration already exists for resource /iot/d and API Key {GROUP['apikey']}"
    )
    twice = await north.post("/iot/groups", json={"groups": [{"resource": "/a", "apikey": "x"}] * 2}, headers=H)
    assert error(twice) == (400, "DUPLICATE_GROUP")
    assert (await north.get("/iot/groups", headers=H)).json()["count"] == 1  # all or nothing


async def test_group_listing_by_subservice(north: httpx.AsyncClient) -> None:
    for n, path in enumerate(["/a", "/b", "/b"]):
        headers = {"fiware-service": "s", "fiware-servicepath": path}
        await north.post("/iot/groups", json={"groups": [{"resource": "/iot/d", "apikey": f"k{n}"}]}, headers=headers)
    assert (await north.get("/iot/groups", headers={"fiware-service": "s", "fiware-servicepath": "/b"})).json()["count"] == 2
    every = await north.get("/iot/groups", headers={"fiware-service": "s", "fiware-servicepath": "/*"})
    assert [g["apikey"] for g in every.json()["groups"]] == ["k0", "k1", "k2"]
    page = await north.get("/iot/groups?limit=1&offset=1", headers={"fiware-service": "s", "fiware-servicepath": "/*"})
    assert page.json()["count"] == 3 and [g["apikey"] for g in page.json()["groups"]] == ["k1"]
    assert (await north.get("/iot/groups", headers={"fiware-service": "S", "fiware-servicepath": "/a"})).json()["count"] == 1


async def test_group_update_and_delete(north: httpx.AsyncClient) -> None:
    await north.post("/iot/groups", json={"groups": [GROUP]}, headers=H)
    query = f"?resource=/iot/d&apikey={GROUP['apikey']}"
    updated = await north.put("/iot/groups" + query, json={"entity_type": "NewType", "timestamp": False}, headers=H)
    assert updated.status_code == 204
    group = (await north.get("/iot/groups", headers=H)).json()["groups"][0]
    assert (group["entity_type"], group["timestamp"], group["trust"]) == ("NewType", False, GROUP["trust"])
    missing = await north.put("/iot/groups?resource=/iot/d&apikey=nope", json={"entity_type": "X"}, headers=H)
    assert error(missing) == (404, "DEVICE_GROUP_NOT_FOUND")
    wrong_tenant = await north.delete("/iot/groups" + query, headers={**H, "fiware-servicepath": "/other"})
    assert error(wrong_tenant) == (404, "DEVICE_GROUP_NOT_FOUND")
    assert (await north.delete("/iot/groups" + query, headers=H)).status_code == 204
    assert (await north.get("/iot/groups", headers=H)).json() == {"count": 0, "groups": []}


async def test_group_update_onto_a_taken_key(north: httpx.AsyncClient) -> None:
    await north.post("/iot/groups", json={"groups": [{"resource": "/a", "apikey": "1"}, {"resource": "/a", "apikey": "2"}]}, headers=H)
    clash = await north.put("/iot/groups?resource=/a&apikey=1", json={"apikey": "2"}, headers=H)
    assert error(clash) == (400, "DUPLICATE_GROUP")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"groups": {}},
        {"groups": [{"apikey": "k"}]},
        {"groups": [{"resource": "/iot/d"}]},
        {"groups": [{"resource": "/iot/d", "apikey": 1}]},
        {"groups": [{"resource": "/iot/d", "apikey": "k", "timestamp": "yes"}]},
        {"groups": [{"resource": "/iot/d", "apikey": "k", "attributes": [{"name": "t"}]}]},
        {"groups": [{"resource": "/iot/d", "apikey": "k", "static_attributes": [{"name": "t", "type": "T"}]}]},
        {"groups": [{"resource": "iot/d", "apikey": "k"}]},
        [],
        "text",
    ],
)
async def test_bad_group_bodies(north: httpx.AsyncClient, body: Any) -> None:
    response = await north.post("/iot/groups", json=body, headers=H)
    assert error(response) == (400, "BAD_REQUEST")
    assert response.json()["message"] == "Request error connecting to the Context Broker: Errors found validating request."


async def test_invalid_json(north: httpx.AsyncClient) -> None:
    response = await north.post("/iot/groups", content=b"{not json", headers={**H, "content-type": "application/json"})
    assert error(response) == (400, "WRONG_SYNTAX")


@pytest.mark.parametrize(
    "headers,missing",
    [({}, ["fiware-service", "fiware-servicepath"]), ({"fiware-service": "s"}, ["fiware-servicepath"]), ({"fiware-servicepath": "/"}, ["fiware-service"])],
)
@pytest.mark.parametrize("method,path", [("GET", "/iot/groups"), ("POST", "/iot/services"), ("GET", "/iot/devices"), ("DELETE", "/iot/devices/d1"), ("POST", "/iot/op/delete")])
async def test_missing_headers(north: httpx.AsyncClient, headers: dict[str, str], missing: list[str], method: str, path: str) -> None:
    response = await north.request(method, path, headers=headers, json={})
    assert error(response) == (400, "MISSING_HEADERS")
    assert response.json()["message"] == "Some headers were missing from the request: " + str(missing).replace("'", '"').replace(", ", ",")


# -- devices ---------------------------------------------------------------------------------


async def test_device_round_trip(north: httpx.AsyncClient) -> None:
    created = await north.post("/iot/devices", json={"devices": [DEVICE]}, headers=H)
    assert (created.status_code, created.json()) == (201, {})
    expected = {**DEVICE, "service": "smartgondor", "service_path": "/gardens", "entity_name": "TheLightType:light1"}
    got = await north.get("/iot/devices/light1", headers=H)
    assert (got.status_code, got.json()) == (200, expected)
    assert (await north.get("/iot/devices", headers=H)).json() == {"count": 1, "devices": [expected]}


async def test_device_takes_its_type_from_the_group(north: httpx.AsyncClient) -> None:
    await north.post("/iot/groups", json={"groups": [{"resource": "/iot/d", "apikey": "k", "entity_type": "Sensor"}]}, headers=H)
    await north.post("/iot/devices", json={"devices": [{"device_id": "d1", "apikey": "k"}, {"device_id": "d2", "entity_name": "Mine"}]}, headers=H)
    d1 = (await north.get("/iot/devices/d1", headers=H)).json()
    assert (d1["entity_type"], d1["entity_name"]) == ("Sensor", "Sensor:d1")
    d2 = (await north.get("/iot/devices/d2", headers=H)).json()
    assert (d2["entity_type"], d2["entity_name"]) == ("Sensor", "Mine")


async def test_device_default_type(anyio_backend: str) -> None:
    async with agent(config=Config(default_type="Thing")) as north:
        await north.post("/iot/devices", json={"devices": [{"device_id": "d1"}]}, headers=H)
        d1 = (await north.get("/iot/devices/d1", headers=H)).json()
    assert d1 == {"device_id": "d1", "service": "smartgondor", "service_path": "/gardens", "entity_type": "Thing", "entity_name": "Thing:d1"}


async def test_duplicate_device(north: httpx.AsyncClient) -> None:
    await north.post("/iot/devices", json={"devices": [DEVICE]}, headers=H)
    again = await north.post("/iot/devices", json={"devices": [DEVICE]}, headers=H)
    assert error(again) == (409, "DUPLICATE_DEVICE_ID")
    assert again.json()["message"] == "A device with the same pair (Service, DeviceId) was found:light1"
    # Another subservice, or another apikey, is another device.
    assert (await north.post("/iot/devices", json={"devices": [DEVICE]}, headers={**H, "fiware-servicepath": "/b"})).status_code == 201
    assert (await north.post("/iot/devices", json={"devices": [{**DEVICE, "apikey": "k2"}]}, headers=H)).status_code == 201


async def test_device_not_found(north: httpx.AsyncClient) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = await north.request(method, "/iot/devices/ghost", headers=H, json={})
        assert error(response) == (404, "DEVICE_NOT_FOUND")
        assert response.json()["message"] == "No device was found with id:ghost"


async def test_device_update(north: httpx.AsyncClient) -> None:
    await north.post("/iot/devices", json={"devices": [DEVICE]}, headers=H)
    change = {"entity_name": "Light:1", "attributes": [], "device_id": "ignored", "polling": True}
    assert (await north.put("/iot/devices/light1", json=change, headers=H)).status_code == 204
    got = (await north.get("/iot/devices/light1", headers=H)).json()
    assert (got["device_id"], got["entity_name"], got["attributes"], got["polling"], got["timezone"]) == (
        "light1", "Light:1", [], True, "America/Santiago",
    )
    bad = await north.put("/iot/devices/light1", json={"attributes": "no"}, headers=H)
    assert error(bad) == (400, "BAD_REQUEST")


async def test_device_paging(north: httpx.AsyncClient) -> None:
    await north.post("/iot/devices", json={"devices": [{"device_id": f"d{n}"} for n in range(5)]}, headers=H)
    page = (await north.get("/iot/devices?limit=2&offset=1", headers=H)).json()
    assert page["count"] == 5 and [d["device_id"] for d in page["devices"]] == ["d1", "d2"]
    assert error(await north.get("/iot/devices?limit=-1", headers=H)) == (400, "WRONG_SYNTAX")
    assert error(await north.get("/iot/devices?offset=x", headers=H)) == (400, "WRONG_SYNTAX")


async def test_device_delete_and_op_delete(north: httpx.AsyncClient) -> None:
    await north.post("/iot/devices", json={"devices": [{"device_id": f"d{n}", "apikey": "k"} for n in range(4)]}, headers=H)
    assert (await north.delete("/iot/devices/d0", headers=H)).status_code == 204
    ok = await north.post("/iot/op/delete", json={"devices": [{"deviceId": "d1", "apikey": "k"}]}, headers=H)
    assert ok.status_code == 204
    partial = await north.post("/iot/op/delete", json={"devices": [{"deviceId": "ghost", "apikey": "k"}, {"deviceId": "d2", "apikey": "k"}]}, headers=H)
    assert error(partial) == (404, "DEVICE_NOT_FOUND")
    assert [d["device_id"] for d in (await north.get("/iot/devices", headers=H)).json()["devices"]] == ["d3"]


async def test_about_and_version(north: httpx.AsyncClient) -> None:
    for path in ("/iot/about", "/version"):
        body = (await north.get(path)).json()
        assert body["port"] == 4041 and body["baseRoot"] == "/" and "libVersion" in body


async def test_listeners_see_provisioning(anyio_backend: str) -> None:
    events: list[tuple[str, Any, Any]] = []
    app = create_app(Config(), registry=MemoryProvisioningStore())

    async def listener(event: str, old: Any, new: Any) -> None:
        events.append((event, old and old["device_id"] if event == "device" else old, new and new.get("device_id")))

    app.state.provisioning_listeners.append(listener)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://agent") as north:
            await north.post("/iot/devices", json={"devices": [{"device_id": "d1"}]}, headers=H)
            await north.put("/iot/devices/d1", json={"timezone": "UTC"}, headers=H)
            await north.delete("/iot/devices/d1", headers=H)
    assert events == [("device", None, "d1"), ("device", "d1", "d1"), ("device", "d1", None)]


async def test_sqlite_registry_survives_a_restart(tmp_path: Path, anyio_backend: str) -> None:
    config = parse(["--data-dir", str(tmp_path)], environ={})
    assert config.registry_path == str(tmp_path / "iot_agent.db")
    async with agent(SQLiteProvisioningStore(str(config.registry_path))) as north:
        await north.post("/iot/groups", json={"groups": [GROUP]}, headers=H)
        await north.post("/iot/devices", json={"devices": [DEVICE]}, headers=H)
        assert error(await north.post("/iot/devices", json={"devices": [DEVICE]}, headers=H)) == (409, "DUPLICATE_DEVICE_ID")
    async with agent(SQLiteProvisioningStore(str(config.registry_path))) as north:
        assert (await north.get("/iot/groups", headers=H)).json()["groups"][0]["preprocess"] == GROUP["preprocess"]
        assert (await north.get("/iot/devices/light1", headers=H)).json()["static_attributes"] == DEVICE["static_attributes"]
        assert error(await north.post("/iot/groups", json={"groups": [GROUP]}, headers=H)) == (400, "DUPLICATE_GROUP")


# -- configuration ---------------------------------------------------------------------------


def test_config_from_environment_and_flags() -> None:
    config = parse(
        ["--north-port", "4061", "--timestamp", "--cb-url=http://orion:1026/"],
        environ={"IOTA_NORTH_PORT": "1", "IOTA_CB_HOST": "cb", "IOTA_MQTT_HOST": "mosquitto", "IOTA_AUTOCAST": "false", "IOTA_REGISTRY_TYPE": "mongodb"},
    )
    assert (config.north_port, config.timestamp, config.broker_url, config.mqtt_host, config.autocast) == (4061, True, "http://orion:1026", "mosquitto", False)
    assert config.registry_type == "sqlite"
    assert parse([], environ={"IOTA_CB_HOST": "cb", "IOTA_CB_PORT": "1027"}).broker_url == "http://cb:1027"
    assert parse(["--registry-type", "memory"], environ={}).registry_path is None


@pytest.mark.parametrize(
    "argv,env",
    [(["--north-port", "x"], {}), (["--nope"], {}), (["--north-port"], {}), ([], {"IOTA_HTTP_PORT": "70000"}), ([], {"IOTA_TIMESTAMP": "maybe"}), (["--cmd-mode", "x"], {})],
)
def test_config_errors(argv: list[str], env: dict[str, str]) -> None:
    from iot_agent.config import ConfigError

    with pytest.raises(ConfigError):
        parse(argv, environ=env)
