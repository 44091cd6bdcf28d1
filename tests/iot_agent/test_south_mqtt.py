"""MQTT south: measures published on Mosquitto reach the broker as entities."""

from __future__ import annotations

import time

import httpx
import pytest

from iot_agent.south.mqtt import SUBSCRIPTIONS, Topic, parse_topic

from .conftest import AgentStack, MqttDevice, new_service, tenant

GROUP = {
    "apikey": "",
    "resource": "/iot/d",
    "entity_type": "Thing",
    "attributes": [
        {"object_id": "t", "name": "temperature", "type": "Number"},
        {"object_id": "h", "name": "humidity", "type": "Number"},
    ],
}


def group(apikey: str, **extra: object) -> dict[str, object]:
    return {**GROUP, "apikey": apikey, **extra}


def values(entity: dict[str, object]) -> dict[str, object]:
    return {k: v["value"] for k, v in entity.items() if isinstance(v, dict)}  # type: ignore[index]


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("/ul/key/dev1/attrs", Topic("ul", "key", "dev1", "attrs")),
        ("ul/key/dev1/attrs", Topic("ul", "key", "dev1", "attrs")),
        ("/json/key/dev1/attrs/t", Topic("json", "key", "dev1", "attr", "t")),
        ("/key/dev1/attrs", Topic(None, "key", "dev1", "attrs")),
        ("key/dev1/attrs/t", Topic(None, "key", "dev1", "attr", "t")),
        ("/ul/key/dev1/cmdexe", Topic("ul", "key", "dev1", "cmdexe")),
        ("/key/dev1/cmdexe", Topic(None, "key", "dev1", "cmdexe")),
        ("/json/key/dev1/configuration/commands", Topic("json", "key", "dev1", "configuration")),
        ("/key/dev1/cmd", None),
        ("/key/dev1/configuration/values", None),
        ("/xx/key/dev1/attrs", None),
        ("attrs", None),
    ],
)
def test_topics(topic: str, expected: Topic | None) -> None:
    assert parse_topic(topic) == expected


def test_subscriptions_do_not_overlap() -> None:
    """Each device topic matches one subscription only, so no message is handled twice."""
    import paho.mqtt.client as paho

    for topic in ("/ul/k/d/attrs", "ul/k/d/attrs", "/k/d/attrs", "k/d/attrs", "/ul/k/d/attrs/t", "/k/d/cmdexe"):
        assert sum(paho.topic_matches_sub(s, topic) for s in SUBSCRIPTIONS) == 1, topic


def test_ul_measure_becomes_entity(stack: AgentStack, device: MqttDevice) -> None:
    service = new_service()
    stack.provision(service, groups=[group("k" + service)])
    device.publish(f"/ul/k{service}/sensor01/attrs", "t|21.5|h|60")
    entity = stack.wait_entity(service, "Thing:sensor01")
    assert entity["temperature"] == {"type": "Number", "value": 21.5, "metadata": {}}
    assert entity["humidity"]["value"] == 60
    # the device was autoprovisioned with the group's type
    listed = httpx.get(stack.north + "/iot/devices/sensor01", headers=tenant(service)).json()
    assert listed["entity_name"] == "Thing:sensor01" and listed["transport"] == "MQTT"


def test_topic_forms_and_single_attribute(stack: AgentStack, device: MqttDevice) -> None:
    service = new_service()
    key = "k" + service
    stack.provision(service, groups=[group(key)])
    device.publish(f"{'ul'}/{key}/d1/attrs", "t|1")  # no leading slash
    stack.wait_entity(service, "Thing:d1", lambda e: values(e).get("temperature") == 1)
    device.publish(f"/{key}/d1/attrs", "t|2")  # legacy, no protocol: the group's resource says UL
    stack.wait_entity(service, "Thing:d1", lambda e: values(e).get("temperature") == 2)
    device.publish(f"/ul/{key}/d1/attrs/h", "77")
    stack.wait_entity(service, "Thing:d1", lambda e: values(e).get("humidity") == 77)


def test_json_object_and_multimeasure(stack: AgentStack, device: MqttDevice) -> None:
    service = new_service()
    key = "k" + service
    stack.provision(service, groups=[group(key, resource="/iot/json")])
    device.publish(f"/json/{key}/j1/attrs", '{"t": 30, "extra": "on"}')
    entity = stack.wait_entity(service, "Thing:j1")
    assert values(entity) == {"temperature": 30, "extra": "on"}
    device.publish(
        f"/json/{key}/j1/attrs",
        '[{"t": 31, "TimeInstant": "2024-01-01T00:00:02Z"}, {"t": 32, "TimeInstant": "2024-01-01T00:00:01Z"}]',
    )
    # sorted by TimeInstant: the last written is the latest reading
    stack.wait_entity(service, "Thing:j1", lambda e: values(e).get("temperature") == 31)


def test_provisioned_device_mapping_and_statics(stack: AgentStack, device: MqttDevice) -> None:
    service = new_service()
    key = "k" + service
    stack.provision(
        service,
        groups=[group(key)],
        devices=[
            {
                "device_id": "p1",
                "apikey": key,
                "entity_name": "urn:Room:1",
                "entity_type": "Room",
                "attributes": [{"object_id": "t", "name": "temp", "type": "Number", "expression": "t * 10"}],
                "static_attributes": [{"name": "floor", "type": "Number", "value": 3}],
            }
        ],
    )
    device.publish(f"/ul/{key}/p1/attrs", "t|2")
    entity = stack.wait_entity(service, "urn:Room:1")
    assert entity["type"] == "Room"
    assert values(entity) == {"temp": 20, "floor": 3}


def test_unknown_apikey_and_bad_payload_are_dropped(stack: AgentStack, device: MqttDevice) -> None:
    service = new_service()
    key = "k" + service
    stack.provision(service, groups=[group(key, autoprovision=False)])
    device.publish(f"/ul/nobody{service}/x/attrs", "t|1")
    device.publish(f"/ul/{key}/notprovisioned/attrs", "t|1")
    device.publish(f"/ul/{key}/notprovisioned/attrs", "t||")
    time.sleep(0.5)
    assert stack.entity(service, "Thing:x") is None
    assert stack.entity(service, "Thing:notprovisioned") is None
    # the agent is still serving
    stack.provision(service, devices=[{"device_id": "ok", "apikey": key}])
    device.publish(f"/ul/{key}/ok/attrs", "t|5")
    stack.wait_entity(service, "Thing:ok", lambda e: values(e).get("temperature") == 5)


def test_embedded_mqtt_broker_of_waziup_run() -> None:
    """`waziup run`'s amqtt broker takes the agent's topics (and stops on SIGTERM)."""
    import subprocess
    import sys

    from orchestrator.run_all import _mqtt_ready
    from tests.conftest import ROOT, free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.run_all", "mqtt-broker", "127.0.0.1", str(port)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while not _mqtt_ready(port):
            assert proc.poll() is None and time.monotonic() < deadline, "amqtt did not start"
            time.sleep(0.1)
        dev = MqttDevice("127.0.0.1", port)
        dev.subscribe("/k/d/cmd")
        dev.publish("/k/d/cmd", "d@ping|1")
        assert dev.wait("/k/d/cmd") == b"d@ping|1"
        dev.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_readings_of_a_device_keep_their_order(stack: AgentStack, device: MqttDevice) -> None:
    service = new_service()
    key = "k" + service
    stack.provision(service, groups=[group(key)])
    for i in range(1, 21):
        device.client.publish(f"/ul/{key}/burst/attrs", f"t|{i}", qos=1)
    entity = stack.wait_entity(service, "Thing:burst", lambda e: values(e).get("temperature") == 20)
    time.sleep(0.3)
    assert values(stack.entity(service, "Thing:burst") or entity)["temperature"] == 20
