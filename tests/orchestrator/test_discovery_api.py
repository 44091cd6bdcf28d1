"""``GET /discovery/sensors`` and ``waziup discover`` (issue 17 §2): the component's routes on
a Starlette app served by uvicorn on a loopback port, over a real broker and IoT agent
(their ASGI apps, in-process); the done-when query, the filters, the errors, the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import io
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from broker.app import create_app as broker_app
from broker.config import Config as BrokerConfig
from iot_agent.app import create_app as agent_app
from iot_agent.config import Config as AgentConfig
from iot_agent.provisioning.store import MemoryProvisioningStore
from ngsi.client import ASGITransport, NGSIClient
from ngsi.dates import format_datetime
from orchestrator.appserver.config import Config
from orchestrator.discovery import api, cli
from orchestrator.discovery.component import DiscoveryComponent
from orchestrator.discovery.model import Query
from tests.conftest import free_port

POINT = "5.30,4.00"


def _at(lat: float, lon: float) -> dict[str, Any]:
    return {"type": "geo:json", "value": {"type": "Point", "coordinates": [lon, lat]}}


def _ago(seconds: float) -> dict[str, Any]:
    return {"type": "DateTime", "value": format_datetime(time.time() - seconds)}


async def _populate(broker: NGSIClient, agent: NGSIClient) -> None:
    """Temperatures under four names, near the point or not, fresh or not, in two tenants."""
    farm, waziup = {"service": "farm"}, {"service": "waziup"}
    await broker.create_entity({"id": "Room1", "type": "Room", "location": _at(5.300, 4.000), "TimeInstant": _ago(60),
                                "temperature": {"type": "Number", "value": 21}, "humidity": {"type": "Number", "value": 50}},
                               **farm)
    await broker.create_entity({"id": "Probe1", "type": "Probe", "location": _at(5.302, 4.003), "value": {
        "type": "Number", "value": 19, "metadata": {"unitCode": {"type": "Text", "value": "degC"}}}}, **farm)
    await broker.create_entity({"id": "Field1", "type": "Field", "location": _at(5.31, 4.01),
                                "soilMoisture": {"type": "Number", "value": 30}}, **farm)
    for entity_id, (lat, lon), age in (("LoRa-1", (5.305, 4.002), 600), ("LoRa-2", (45.0, 6.0), 60),
                                        ("LoRa-3", (5.301, 4.001), 7200)):
        await broker.create_entity({
            "id": entity_id, "type": "Device", "location": _at(lat, lon), "owner": {"type": "Text", "value": "bob"},
            "TC1": {"type": "SensingDevice", "value": 20, "metadata": {
                "unit": {"type": "Text", "value": "DegreeCelsius"}, "timestamp": _ago(age)}},
        }, **waziup)
    # a private WAZIUP device: its owner's (and the platform's own queries)
    await broker.create_entity({
        "id": "LoRa-P", "type": "Device", "location": _at(5.3002, 4.0002), "owner": {"type": "Text", "value": "carol"},
        "visibility": {"type": "Text", "value": "private"},
        "TC1": {"type": "SensingDevice", "value": 20, "metadata": {"timestamp": _ago(30)}},
    }, **waziup)
    # a provisioned device that never sent anything: known, near, but not seen
    await agent.request("POST", "/iot/groups", json={"groups": [{
        "apikey": "k", "resource": "/iot/d", "entity_type": "Thermo",
        "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}],
        "static_attributes": [{"name": "location", "type": "geo:point", "value": "5.3001, 4.0001"}]}]},
        service="farm", service_path="/")
    await agent.request("POST", "/iot/devices", json={"devices": [{"device_id": "d1", "apikey": "k"}]},
                        service="farm", service_path="/")


class Served:
    """The component's routes under uvicorn in a thread, on a free loopback port."""

    def __init__(self) -> None:
        self.broker = NGSIClient("http://broker", transport=ASGITransport(
            broker_app(BrokerConfig(db_uri="memory://", multiservice=True)), lifespan=True))
        self.agent = NGSIClient("http://agent", transport=ASGITransport(
            agent_app(AgentConfig(), registry=MemoryProvisioningStore(), ngsi=self.broker), lifespan=True))
        self.component = DiscoveryComponent(Config(), broker=self.broker, agent=self.agent, tenants=["farm", "waziup"],
                                            interval=3600)

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            await _populate(self.broker, self.agent)
            await self.component.open()
            try:
                yield
            finally:
                await self.component.close()
                await self.agent.aclose()
                await self.broker.aclose()

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = Starlette(routes=self.component.routes(), lifespan=lifespan)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the discovery app did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def get(self, **params: Any) -> httpx.Response:
        headers = params.pop("headers", None)
        return httpx.get(self.url + "/discovery/sensors", params=params, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with Served() as running:
        yield running


def pairs(hits: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(h["entityId"], h["attr"]) for h in hits}


def test_the_issues_query_returns_the_right_sensors_with_explained_scores(served: Served) -> None:
    """Done when: ``tempreature near <point> seen in the last hour``."""
    response = served.get(q="tempreature", near=f"{POINT},2000", seen="60")
    assert response.status_code == 200
    hits = response.json()
    assert pairs(hits) == {("Room1", "temperature"), ("LoRa-1", "TC1"), ("Probe1", "value")}
    for hit in hits:
        assert hit["score"] >= 80
        assert "~ `temperature`" in hit["reasons"][0], hit["reasons"]
        assert hit["source"] == "broker" and hit["location"] and hit["seen"].endswith("Z")
    lora = next(h for h in hits if h["entityId"] == "LoRa-1")
    assert (lora["tenant"], lora["entityType"], lora["unit"], lora["owner"]) == ("waziup", "Device", "DegreeCelsius", "bob")
    assert any(r.startswith("`TC1`: names AirTemperature") for r in lora["reasons"])
    probe = next(h for h in hits if h["entityId"] == "Probe1")
    assert any("`degC`: unit DegreeCelsius" in r for r in probe["reasons"])


def test_without_the_freshness_filter_the_stale_and_the_silent_come_back(served: Served) -> None:
    hits = served.get(q="tempreature", near=f"{POINT},2000").json()
    assert pairs(hits) == {("Room1", "temperature"), ("LoRa-1", "TC1"), ("Probe1", "value"), ("LoRa-3", "TC1"),
                           ("Thermo:d1", "temperature")}
    assert next(h for h in hits if h["entityId"] == "Thermo:d1")["source"] == "iot-agent"
    everywhere = served.get(q="tempreature").json()
    assert ("LoRa-2", "TC1") in pairs(everywhere)


def test_orion_geo_parameters_polygons_tenants_and_the_service_header(served: Served) -> None:
    orion = served.get(q="tempreature", georel="near;maxDistance:2000", geometry="point", coords=POINT, seen="60").json()
    assert pairs(orion) == {("Room1", "temperature"), ("LoRa-1", "TC1"), ("Probe1", "value")}
    square = "5.29,3.99;5.29,4.006;5.306,4.006;5.306,3.99"
    assert ("LoRa-2", "TC1") not in pairs(served.get(q="temperature", within=square).json())
    farm = served.get(q="temperature", tenant="farm").json()
    assert {h["tenant"] for h in farm} == {"farm"}
    assert {h["tenant"] for h in served.get(q="temperature", headers={"Fiware-Service": "waziup"}).json()} == {"waziup"}
    both = served.get(q="temperature", tenant="farm,waziup", limit="2").json()
    assert len(both) == 2


@pytest.mark.parametrize("params", [
    {}, {"q": ""}, {"q": "t", "near": "5,4"}, {"q": "t", "near": "95,4,100"}, {"q": "t", "near": "5,4,-1"},
    {"q": "t", "near": "a,b,c"}, {"q": "t", "within": "1,1;2,2"}, {"q": "t", "seen": "soon"}, {"q": "t", "seen": "0"},
    {"q": "t", "limit": "0"}, {"q": "t", "limit": "99999999999999999999"}, {"q": "t", "color": "red"},
    {"q": "t", "georel": "near", "geometry": "point", "coords": POINT}, {"q": "t", "georel": "near;maxDistance:5"},
    {"q": "t", "near": "nan,4,100"}, {"q": "x" * 300}, {"q": "t", "limit": "00001000000"}, {"q": "t", "limit": "²"},
    {"q": "t", "georel": "coveredBy", "geometry": "polygon", "coords": "1,1;2,2"},
])
def test_bad_parameters_are_orions_400(served: Served, params: dict[str, str]) -> None:
    response = served.get(**params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "BadRequest" and body["description"]


def test_refresh_on_demand_and_find_for_the_apps(served: Served) -> None:
    response = httpx.post(served.url + "/discovery/refresh", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"sensors": 9, "seconds": response.json()["seconds"], "problems": []}
    # ``find``: the same search, for the apps part (now: the component's clock)
    hits = asyncio.run(served.component.find(Query("humidty", tenants=frozenset({"farm"}), seen_within=3600)))
    assert [(h.sensor.entity_id, h.sensor.attr) for h in hits] == [("Room1", "humidity")]
    assert "`humidty` ~ `humidity` (93): names AirHumidity" in hits[0].reasons
    near = Query("tempreature", near=(5.30, 4.00, 2000), seen_within=3600)
    assert ("LoRa-P", "TC1") in {(h.sensor.entity_id, h.sensor.attr) for h in asyncio.run(served.component.find(near))}


def test_a_private_device_is_its_owners(served: Served) -> None:
    """The anonymous caller (no guards here) sees public sensors only, as the WAZIUP API's guest."""
    assert "LoRa-P" not in {h["entityId"] for h in served.get(q="tempreature").json()}


def test_the_cli_prints_a_table_and_json(served: Served) -> None:
    out = io.StringIO()
    assert cli.main(["tempreature", "-near", f"{POINT},2000", "-seen", "60", "-url", served.url], out) == 0
    text = out.getvalue()
    for name in ("Room1", "LoRa-1", "Probe1"):
        assert name in text
    assert "LoRa-3" not in text and "~ `temperature`" in text
    out = io.StringIO()
    assert cli.main(["soil", "moisture", "-tenant", "farm", "-json", "-url", served.url], out) == 0
    assert pairs(json.loads(out.getvalue())) == {("Field1", "soilMoisture")}
    out = io.StringIO()
    assert cli.main(["temperature", "-service", "waziup", "--json", "--url", served.url], out) == 0
    assert {hit["tenant"] for hit in json.loads(out.getvalue())} == {"waziup"}  # as the Fiware-Service header


def test_the_cli_says_what_went_wrong(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["t", "-near", "5,4", "-url", served.url], io.StringIO()) == 1
    assert "400: near: lat,lon,metres" in capsys.readouterr().err
    assert cli.main(["t", "-url", f"http://127.0.0.1:{free_port()}"], io.StringIO()) == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["q", "near", "within", "seen", "tenant", "limit", "georel", "geometry",
                                           "coords", "x"]), st.text(max_size=30)), max_size=6),
       st.none() | st.text(max_size=10))
def test_any_parameters_are_a_query_or_a_bad_param(params: list[tuple[str, str]], header: str | None) -> None:
    try:
        query = api.parse_query(params, header, 1000.0)
    except api.BadParam as exc:
        assert str(exc)
    else:
        assert query.text.strip() and 1 <= query.limit <= api.MAX_LIMIT
