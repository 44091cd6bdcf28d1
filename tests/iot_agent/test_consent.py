"""A device's ``consent`` (docs/lifecycle.md): kept in its provisioning, returned by GET,
changed by PUT; while it is false the device's measures, on every southbound path, are
dropped at the one gate (``Southbound.submit``), counted and logged at most once a minute."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import pytest

from iot_agent.config import Config
from iot_agent.provisioning.store import MemoryProvisioningStore, device_key
from iot_agent.south.ingest import Southbound
from ngsi.client import NGSIClient

from .conftest import AgentStack, MqttDevice, new_service, tenant

GROUP = {"resource": "/iot/d", "entity_type": "Thing",
         "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}]}


def temperature(stack: AgentStack, service: str, entity_id: str) -> Any:
    entity = stack.entity(service, entity_id)
    return None if entity is None else entity["temperature"]["value"]


def test_consent_is_provisioned_returned_and_updated(stack: AgentStack) -> None:
    service = new_service()
    key = "k" + service
    stack.provision(service, groups=[{**GROUP, "apikey": key}],
                    devices=[{"device_id": "c1", "apikey": key, "consent": False}, {"device_id": "c2", "apikey": key}])
    one = httpx.get(stack.north + "/iot/devices/c1", headers=tenant(service)).json()
    assert one["consent"] is False
    assert "consent" not in httpx.get(stack.north + "/iot/devices/c2", headers=tenant(service)).json()  # absent: given
    bad = httpx.put(stack.north + "/iot/devices/c1", headers=tenant(service), json={"consent": "no"})
    assert bad.status_code == 400
    refused = httpx.post(stack.north + "/iot/devices", headers=tenant(service),
                         json={"devices": [{"device_id": "c3", "consent": 0}]})
    assert refused.status_code == 400
    assert httpx.put(stack.north + "/iot/devices/c1", headers=tenant(service), json={"consent": True}).status_code == 204
    assert httpx.get(stack.north + "/iot/devices/c1", headers=tenant(service)).json()["consent"] is True


def test_measures_of_a_device_without_consent_are_dropped_on_http(stack: AgentStack) -> None:
    service = new_service()
    key = "k" + service
    stack.provision(service, groups=[{**GROUP, "apikey": key}],
                    devices=[{"device_id": "h1", "apikey": key, "consent": False}, {"device_id": "h2", "apikey": key}])
    assert httpx.get(stack.south + "/iot/d", params={"i": "h1", "k": key, "d": "t|20"}).status_code == 200
    assert httpx.post(stack.south + "/iot/d", params={"i": "h2", "k": key}, content="t|5").status_code == 200
    stack.wait_entity(service, "Thing:h2")  # the other device's measure went through, after h1's
    assert stack.entity(service, "Thing:h1") is None
    # given back: measures flow again
    assert httpx.put(stack.north + "/iot/devices/h1", headers=tenant(service), json={"consent": True}).status_code == 204
    assert httpx.get(stack.south + "/iot/d", params={"i": "h1", "k": key, "d": "t|21"}).status_code == 200
    stack.wait_entity(service, "Thing:h1", lambda e: e["temperature"]["value"] == 21)
    # withdrawn again: the entity keeps its last value
    assert httpx.put(stack.north + "/iot/devices/h1", headers=tenant(service), json={"consent": False}).status_code == 204
    assert httpx.get(stack.south + "/iot/d", params={"i": "h1", "k": key, "d": "t|22"}).status_code == 200
    assert httpx.post(stack.south + "/iot/d", params={"i": "h2", "k": key}, content="t|6").status_code == 200
    stack.wait_entity(service, "Thing:h2", lambda e: e["temperature"]["value"] == 6)
    assert temperature(stack, service, "Thing:h1") == 21


def test_measures_of_a_device_without_consent_are_dropped_on_mqtt(stack: AgentStack, device: MqttDevice) -> None:
    service = new_service()
    key = "k" + service
    stack.provision(service, groups=[{**GROUP, "apikey": key}],
                    devices=[{"device_id": "m1", "apikey": key, "consent": False, "transport": "MQTT"},
                             {"device_id": "m2", "apikey": key, "transport": "MQTT"}])
    device.publish(f"/{key}/m1/attrs", "t|30")
    device.publish(f"/{key}/m2/attrs", "t|31")
    stack.wait_entity(service, "Thing:m2")
    time.sleep(0.3)
    assert stack.entity(service, "Thing:m1") is None
    assert httpx.put(stack.north + "/iot/devices/m1", headers=tenant(service), json={"consent": True}).status_code == 204
    device.publish(f"/{key}/m1/attrs", "t|32")
    stack.wait_entity(service, "Thing:m1", lambda e: e["temperature"]["value"] == 32)


def test_the_gate_counts_and_logs_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    posted: list[bytes] = []

    async def poster(url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        posted.append(body)
        return 204, b""

    async def work() -> None:
        south = Southbound(MemoryProvisioningStore(), NGSIClient("http://broker.invalid"), Config(), poster=poster)
        try:
            device = {"device_id": "g1", "service": "s", "service_path": "/", "entity_name": "T:g1",
                      "entity_type": "T", "consent": False}
            with caplog.at_level(logging.INFO, logger="waziup.iot_agent.south"):
                for second in (0.0, 1.0, 59.0, 61.0):
                    entities, accepted = south.submit(device, None, [{"t": 1}, {"t": 2}], now=1000.0 + second)
                    assert entities == [] and accepted is None
            assert south.withheld[device_key(device)] == 8
            said = [r for r in caplog.records if "consent withdrawn" in r.getMessage()]
            assert len(said) == 2  # at 0 s and at 61 s
            given = {**device, "consent": True}
            entities, accepted = south.submit(given, None, [{"t": 3}], now=2000.0)
            assert [e["id"] for e in entities] == ["T:g1"] and accepted is not None
            await accepted
            assert posted
        finally:
            await south.aclose()

    asyncio.run(work())
