"""Sensor discovery's registry (issue 17 §2): what the broker's entities, the IoT agent's
devices and groups and the registrations say about sensors (``harvest.py``, pure), and the
``Registry`` reading them from a real broker and a real IoT agent (their ASGI apps,
in-process, through ``ngsi.client.ASGITransport``)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.app import create_app as broker_app
from broker.config import Config as BrokerConfig
from iot_agent.app import create_app as agent_app
from iot_agent.config import Config as AgentConfig
from iot_agent.provisioning.store import MemoryProvisioningStore
from ngsi.client import ASGITransport, NGSIClient
from ngsi.dates import format_datetime, parse_datetime
from orchestrator.appserver.config import Config
from orchestrator.discovery import harvest
from orchestrator.discovery.component import DiscoveryComponent
from orchestrator.discovery.model import Query, Sensor
from orchestrator.discovery.registry import Registry
from tests.conftest import BrokerProcess, free_port

T0 = parse_datetime("2026-12-04T10:00:00Z")
assert T0 is not None


def attrs_of(sensors: list[Sensor]) -> set[str]:
    return {s.attr for s in sensors}


# -- harvest (pure) -------------------------------------------------------------------------------


def test_an_entity_gives_its_measured_attributes_with_unit_place_time_and_owner() -> None:
    entity = {
        "id": "Dev1", "type": "Device",
        "TC1": {"type": "SensingDevice", "value": 21.5, "metadata": {
            "unit": {"type": "Text", "value": "DegreeCelsius"}, "quantity_kind": {"type": "Text", "value": "AirTemperature"},
            "timestamp": {"type": "Text", "value": format_datetime(T0 - 30)}}},
        "pressure": {"type": "Number", "value": 1013, "metadata": {"unitCode": {"type": "Text", "value": "A97"}}},
        "on": {"type": "Boolean", "value": True},
        "fan": {"type": "Actuator", "value": 1},
        "status": {"type": "Text", "value": "ok"},
        "refGateway": {"type": "Relationship", "value": "GW1"},
        "owner": {"type": "Text", "value": "alice"},
        "name": {"type": "Text", "value": "my device"},
        "location": {"type": "geo:json", "value": {"type": "Point", "coordinates": [4.0, 5.3]}},
        "dateModified": {"type": "DateTime", "value": format_datetime(T0)},
    }
    sensors = {s.attr: s for s in harvest.entity_sensors(entity, "waziup")}
    assert set(sensors) == {"TC1", "pressure", "on"}
    tc = sensors["TC1"]
    assert (tc.unit, tc.kind, tc.lat, tc.lon, tc.owner, tc.seen) == ("DegreeCelsius", "AirTemperature", 5.3, 4.0,
                                                                    "alice", T0 - 30)
    assert sensors["pressure"].unit == "A97" and sensors["pressure"].seen == T0  # the entity's dateModified
    assert all(s.tenant == "waziup" and s.source == "broker" and not s.private for s in sensors.values())
    hidden = harvest.entity_sensors({**entity, "visibility": {"type": "Text", "value": "private"}}, "waziup")
    assert hidden and all(s.private for s in hidden)


def test_time_instant_wins_over_date_modified_and_geo_point_is_read() -> None:
    entity = {
        "id": "R", "type": "Room",
        "temperature": {"type": "Number", "value": 20, "metadata": {
            "dateModified": {"type": "DateTime", "value": format_datetime(T0)}}},
        "TimeInstant": {"type": "DateTime", "value": format_datetime(T0 - 7200)},
        "position": {"type": "geo:point", "value": "45.1, 6.2"},
    }
    [sensor] = harvest.entity_sensors(entity, "")
    assert sensor.seen == T0 - 7200  # measured two hours ago, however late the broker got it
    assert (sensor.lat, sensor.lon) == (45.1, 6.2)


def test_a_polygon_location_is_placed_at_its_corners_mean() -> None:
    square = {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 2], [0, 2]]]}
    assert harvest.point_of("geo:json", square) == (1.0, 1.0)
    assert harvest.point_of("geo:point", "95, 0") is None
    assert harvest.point_of("geo:point", "north") is None


def test_a_device_has_its_attributes_and_its_groups() -> None:
    group = {"service": "farm", "subservice": "/a", "apikey": "k", "entity_type": "Probe", "attributes": [
        {"object_id": "t", "name": "temperature", "type": "Number", "metadata": {"unitCode": {"type": "Text", "value": "CEL"}}},
        {"object_id": "h", "name": "humidity", "type": "Number"},
    ], "static_attributes": [{"name": "location", "type": "geo:point", "value": "5.3, 4.0"}]}
    device = {"device_id": "d1", "apikey": "k", "service": "farm", "service_path": "/a",
              "attributes": [{"object_id": "h", "name": "humidity", "type": "Number", "unit": "%"}],
              "lazy": [{"name": "battery", "type": "Number"}]}
    assert harvest.group_of(device, [group]) is group
    sensors = {s.attr: s for s in harvest.device_sensors(device, group)}
    assert set(sensors) == {"humidity", "battery", "temperature"}
    assert sensors["humidity"].unit == "%" and sensors["temperature"].unit == "CEL"  # the device's own, the group's
    assert {(s.entity_id, s.entity_type, s.service_path, s.source, s.lat) for s in sensors.values()} == {
        ("Probe:d1", "Probe", "/a", "iot-agent", 5.3)}
    assert harvest.group_units([group]) == {("farm", "Probe", "temperature"): "CEL"}


def test_registrations_list_each_provided_attribute() -> None:
    registration = {"id": "r1", "dataProvided": {"entities": [{"id": "Pump1", "type": "Pump"}, {"idPattern": "Valve.*"}],
                                                  "attrs": ["flow", "pressure"]},
                    "provider": {"http": {"url": "http://provider:1234/v2"}}}
    sensors = harvest.registration_sensors(registration, "farm")
    assert {(s.entity_id, s.attr) for s in sensors} == {("Pump1", "flow"), ("Pump1", "pressure"),
                                                        ("Valve.*", "flow"), ("Valve.*", "pressure")}
    assert {s.source for s in sensors} == {"registration"}


def test_merge_keeps_the_brokers_entry_completed_by_the_agents() -> None:
    on_broker = Sensor("farm", "Probe:d1", "Probe", "temperature", seen=T0)
    on_agent = Sensor("farm", "Probe:d1", "Probe", "temperature", unit="CEL", lat=1.0, lon=2.0, source="iot-agent")
    unseen = Sensor("farm", "Probe:d2", "Probe", "temperature", source="iot-agent")
    auto = Sensor("farm", "Probe:d9", "Probe", "humidity", seen=T0)
    merged = {(s.entity_id, s.attr): s for s in harvest.merge([on_broker, auto], [on_agent, unseen], [],
                                                                {("farm", "Probe", "humidity"): "%"})}
    assert merged[("Probe:d1", "temperature")] == Sensor("farm", "Probe:d1", "Probe", "temperature", unit="CEL",
                                                         lat=1.0, lon=2.0, seen=T0)
    assert merged[("Probe:d2", "temperature")] is unseen
    assert merged[("Probe:d9", "humidity")].unit == "%"  # an autoprovisioned device's entity: its group's unit


SENSORS = st.builds(
    Sensor, st.sampled_from(["a", "b"]), st.sampled_from(["E1", "E2", "E3"]), st.just("T"), st.sampled_from(["x", "y"]),
    unit=st.none() | st.just("CEL"), lat=st.none() | st.just(1.0), lon=st.none() | st.just(2.0),
    seen=st.none() | st.floats(0, 1e9),
).filter(lambda s: (s.lat is None) == (s.lon is None))


@settings(max_examples=100, deadline=None)
@given(st.lists(SENSORS, max_size=8), st.lists(SENSORS, max_size=8), st.lists(SENSORS, max_size=4))
def test_merge_gives_one_sensor_per_key_the_brokers_first(
    broker: list[Sensor], agent: list[Sensor], registered: list[Sensor],
) -> None:
    def key(s: Sensor) -> tuple[str, str, str]:
        return (s.tenant, s.entity_id, s.attr)

    merged = harvest.merge(broker, agent, registered)
    assert len({key(s) for s in merged}) == len(merged)
    assert {key(s) for s in merged} == {key(s) for s in [*broker, *agent, *registered]}
    last_of_broker = {key(s): s for s in broker}
    for s in merged:
        if key(s) in last_of_broker:
            assert s.seen == last_of_broker[key(s)].seen and s.source == "broker"
        assert (s.lat is None) == (s.lon is None)


JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
ATTR = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["Number", "Text", "geo:json", "geo:point", "Relationship", "SensingDevice"]) | st.text(max_size=5),
    "value": JSON, "metadata": st.dictionaries(st.sampled_from(["unitCode", "TimeInstant", "unit", "x"]), JSON, max_size=3),
})


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=10), ATTR | JSON, max_size=6), JSON, JSON)
def test_any_json_gives_sensors_or_nothing_never_an_error(attrs: dict[str, Any], device: Any, registration: Any) -> None:
    entity = {**attrs, "id": "E", "type": "T"}
    sensors = harvest.entity_sensors(entity, "t")
    assert attrs_of(sensors) <= set(attrs) - harvest.TIME_NAMES - harvest.DESCRIPTIVE_NAMES
    for s in sensors:
        assert (s.lat is None) == (s.lon is None)
        assert s.lat is None or (-90 <= s.lat <= 90 and -180 <= s.lon <= 180)  # type: ignore[operator]
    if isinstance(device, dict):
        harvest.device_sensors(device, None)
        harvest.group_units([device])
        harvest.registration_sensors(device, "t")
    harvest.entity_sensors(registration if isinstance(registration, dict) else {}, "t")


# -- the registry against a real broker and IoT agent --------------------------------------------------


async def _platform() -> tuple[NGSIClient, NGSIClient]:
    broker = NGSIClient("http://broker", transport=ASGITransport(
        broker_app(BrokerConfig(db_uri="memory://", multiservice=True)), lifespan=True))
    agent = NGSIClient("http://agent", transport=ASGITransport(
        agent_app(AgentConfig(), registry=MemoryProvisioningStore(), ngsi=broker), lifespan=True))
    return broker, agent


def test_the_registry_reads_entities_devices_groups_and_registrations() -> None:
    async def scenario() -> None:
        broker, agent = await _platform()
        try:
            await broker.create_entity({
                "id": "Room1", "type": "Room",
                "temperature": {"type": "Number", "value": 21, "metadata": {"unitCode": {"type": "Text", "value": "CEL"}}},
                "location": {"type": "geo:json", "value": {"type": "Point", "coordinates": [4.0, 5.3]}},
                "owner": {"type": "Text", "value": "alice"},
            }, service="farm", service_path="/north")
            await broker.create_entity({"id": "Tank", "type": "Tank", "level": {"type": "Number", "value": 3}})  # default tenant
            await broker.create_registration({
                "dataProvided": {"entities": [{"id": "Pump1", "type": "Pump"}], "attrs": ["flow"]},
                "provider": {"http": {"url": "http://provider.example.com/v2"}},
            }, service="farm")
            await agent.request("POST", "/iot/groups", json={"groups": [{
                "apikey": "k", "resource": "/iot/d", "entity_type": "Probe",
                "attributes": [{"object_id": "t", "name": "temperature", "type": "Number",
                                "metadata": {"unitCode": {"type": "Text", "value": "CEL"}}}]}]},
                service="farm", service_path="/north")
            await agent.request("POST", "/iot/devices", json={"devices": [
                {"device_id": f"d{i}", "apikey": "k"} for i in range(3)]}, service="farm", service_path="/north")
            registry = Registry(broker, agent, tenants=["farm", ""])
            status = await registry.refresh()
            assert status.problems == [] and status.sensors == 6
            found = {(s.tenant, s.entity_id, s.attr, s.source) for s in registry.index.sensors}
            assert found == {("farm", "Room1", "temperature", "broker"), ("", "Tank", "level", "broker"),
                             ("farm", "Pump1", "flow", "registration"),
                             *{("farm", f"Probe:d{i}", "temperature", "iot-agent") for i in range(3)}}
            room = next(s for s in registry.index.sensors if s.entity_id == "Room1")
            assert (room.unit, room.lat, room.lon, room.owner) == ("CEL", 5.3, 4.0, "alice") and room.seen

            old = registry.index
            await broker.create_entity({"id": "Room2", "type": "Room", "temperature": {"type": "Number", "value": 3}},
                                       service="farm")
            hits = registry.search(Query("tempreature", tenants=frozenset({"farm"})))
            assert "Room2" not in {h.sensor.entity_id for h in hits}  # not until the next refresh
            await registry.refresh()
            assert registry.index is not old  # swapped whole
            hits = registry.search(Query("tempreature", tenants=frozenset({"farm"})))
            assert "Room2" in {h.sensor.entity_id for h in hits}
        finally:
            await agent.aclose()
            await broker.aclose()

    asyncio.run(scenario())


def test_a_source_that_fails_is_reported_and_the_others_still_count() -> None:
    async def scenario() -> None:
        broker, agent = await _platform()
        down = NGSIClient("http://127.0.0.1:9", timeout=2)  # nothing listens on the discard port
        try:
            await broker.create_entity({"id": "Room1", "type": "Room", "temperature": {"type": "Number", "value": 1}},
                                       service="farm")
            registry = Registry(broker, down, tenants=["farm"])
            status = await registry.refresh()
            assert status.sensors == 1
            assert len(status.problems) == 1 and "IoT agent devices of tenant 'farm'" in status.problems[0]
            registry.broker = down  # the broker goes away: what it gave last time stays
            status = await registry.refresh()
            assert status.sensors == 1 and len(status.problems) == 3
            assert [h.sensor.entity_id for h in registry.search(Query("temperature"))] == ["Room1"]
        finally:
            await down.aclose()
            await agent.aclose()
            await broker.aclose()

    asyncio.run(scenario())


def test_the_refresh_loop_runs_until_cancelled() -> None:
    async def scenario() -> None:
        broker, agent = await _platform()
        try:
            registry = Registry(broker, None, tenants=["farm"], interval=0.05)
            task = asyncio.create_task(registry.run())
            await asyncio.sleep(0.02)
            await broker.create_entity({"id": "Late", "type": "Room", "temperature": {"type": "Number", "value": 1}},
                                       service="farm")
            for _ in range(100):
                if registry.status.sensors == 1:
                    break
                await asyncio.sleep(0.02)
            task.cancel()
            assert registry.status.sensors == 1
        finally:
            await agent.aclose()
            await broker.aclose()

    asyncio.run(scenario())


# -- the component on a real broker process, with the clients it makes itself ---------------------


def test_the_component_reads_a_broker_process_with_its_own_clients(
    broker_process: Callable[[list[str]], BrokerProcess],
) -> None:
    broker = broker_process(["-dbURI", "memory://"])
    created = httpx.post(broker.url + "/v2/entities", headers={"Fiware-Service": "farm"},
                         json={"id": "Room1", "type": "Room", "temperature": {"type": "Number", "value": 20}})
    assert created.status_code == 201, created.text

    async def scenario() -> None:
        component = DiscoveryComponent(Config(broker_url=broker.url, service="farm"), interval=3600)
        await component.open()
        try:
            hits = await component.find(Query("tempreature"))
            assert [(h.sensor.tenant, h.sensor.entity_id) for h in hits] == [("farm", "Room1")]
            assert component.registry.agent is None  # no -iotaURL
        finally:
            await component.close()
        assert component._task is None

    asyncio.run(scenario())


def test_a_silent_broker_does_not_hold_the_services_start() -> None:
    """``open`` waits ``startup_wait`` for the first read, then serves (nothing yet)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", free_port()))
    silent.listen()  # connections complete in the backlog; nobody ever answers

    async def scenario() -> None:
        url = "http://127.0.0.1:%d" % silent.getsockname()[1]
        component = DiscoveryComponent(Config(broker_url=url, service="farm"), startup_wait=0.2, interval=3600)
        started = time.monotonic()
        await component.open()
        try:
            assert time.monotonic() - started < 2
            assert await component.find(Query("temperature")) == []
        finally:
            await component.close()

    try:
        asyncio.run(scenario())
    finally:
        silent.close()
