"""MQTT notifications against a real Mosquitto (the Orion kit skips its MQTT cases).

A broker process publishes the notifications of ``notification.mqtt`` / ``mqttCustom``
subscriptions; a paho client subscribed to Mosquitto checks topic, payload, QoS and the
retain flag; GET shows Orion's counters (lastSuccess without lastSuccessCode, failures
without lastFailureReason) and never the password.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.subscriptions.mqtt import MqttError, MqttMessage, MqttPublisher
from tests.broker.conftest import MqttListener
from tests.conftest import MOSQUITTO_PASSWD, MOSQUITTO_USER, Mosquitto, free_port


@pytest.fixture
def broker(broker_process: Any, tmp_path: Path) -> Iterator[httpx.Client]:
    process = broker_process(["-data", str(tmp_path)])
    with httpx.Client(base_url=process.url, timeout=10) as client:
        yield client


@pytest.fixture
def subscribers(mosquitto: Mosquitto) -> Iterator[Any]:
    made: list[MqttListener] = []

    def factory(topic: str, qos: int = 2) -> MqttListener:
        made.append(MqttListener(mosquitto.host, mosquitto.port, topic, qos))
        return made[-1]

    yield factory
    for sub in made:
        sub.close()


def subscribe(client: httpx.Client, notification: dict[str, Any], entity: str = "Room1") -> str:
    body = {"subject": {"entities": [{"id": entity, "type": "Room"}]}, "notification": notification}
    r = client.post("/v2/subscriptions", json=body)
    assert r.status_code == 201, r.text
    return r.headers["Location"].rsplit("/", 1)[1]


def get_notification(client: httpx.Client, sub_id: str) -> dict[str, Any]:
    r = client.get(f"/v2/subscriptions/{sub_id}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_counters(client: httpx.Client, sub_id: str, key: str, value: Any, timeout: float = 5) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        sub = get_notification(client, sub_id)
        if sub["notification"].get(key) == value or time.monotonic() > deadline:
            return sub
        time.sleep(0.05)


def set_temperature(client: httpx.Client, value: Any, entity: str = "Room1") -> None:
    r = client.post("/v2/entities?options=upsert", json={"id": entity, "type": "Room", "temperature": {"value": value}})
    assert r.status_code in (201, 204), r.text


def test_mqtt_notification_topic_payload_qos_and_counters(broker: httpx.Client, mosquitto: Mosquitto, subscribers: Any) -> None:
    listener = subscribers("waziup/test/rooms")
    url = f"mqtt://{mosquitto.host}:{mosquitto.port}"
    sub_id = subscribe(broker, {"mqtt": {"url": url, "topic": "waziup/test/rooms", "qos": 1}, "attrs": ["temperature"]})
    set_temperature(broker, 20)
    set_temperature(broker, 25)
    for expected in (20, 25):
        topic, payload, qos, retain = listener.next()
        assert (topic, qos, retain) == ("waziup/test/rooms", 1, False)
        assert json.loads(payload) == {
            "subscriptionId": sub_id,
            "data": [{"id": "Room1", "type": "Room", "temperature": {"type": "Number", "value": expected, "metadata": {}}}],
        }
    sub = wait_counters(broker, sub_id, "timesSent", 2)
    notification = sub["notification"]
    assert notification["mqtt"] == {"url": url, "topic": "waziup/test/rooms", "qos": 1, "retain": False}
    assert notification["timesSent"] == 2
    assert "lastSuccess" in notification and "lastNotification" in notification
    for absent in ("lastSuccessCode", "lastFailure", "lastFailureReason", "failsCounter"):
        assert absent not in notification
    assert sub["status"] == "active"


def test_retain_flag_reaches_late_subscribers(broker: httpx.Client, mosquitto: Mosquitto, subscribers: Any) -> None:
    url = f"mqtt://{mosquitto.host}:{mosquitto.port}"
    topic = f"waziup/retained/{free_port()}"
    live = subscribers(topic)
    sub_id = subscribe(broker, {"mqtt": {"url": url, "topic": topic, "qos": 2, "retain": True}, "attrsFormat": "keyValues"})
    set_temperature(broker, 7)
    got_topic, payload, qos, _ = live.next()
    assert (got_topic, qos) == (topic, 2)
    assert json.loads(payload)["data"] == [{"id": "Room1", "type": "Room", "temperature": 7}]
    late = subscribers(topic)  # a retained message is handed to new subscribers, flagged
    got_topic, payload, _, retain = late.next()
    assert retain is True and json.loads(payload)["subscriptionId"] == sub_id
    assert get_notification(broker, sub_id)["notification"]["mqtt"]["retain"] is True


def test_mqtt_custom_macros_in_topic_payload_json_and_ngsi(broker: httpx.Client, mosquitto: Mosquitto, subscribers: Any) -> None:
    url = f"mqtt://{mosquitto.host}:{mosquitto.port}"
    listener = subscribers("custom/#")
    subscribe(broker, {"mqttCustom": {"url": url, "topic": "custom/text/${id}", "payload": "t:${temperature}"}})
    subscribe(broker, {"mqttCustom": {"url": url, "topic": "custom/json/${type}", "json": {"t": "${temperature}", "k": "x"}}})
    ngsi_id = subscribe(broker, {"mqttCustom": {"url": url, "topic": "custom/ngsi", "ngsi": {"extra": {"value": "${id}"}}}})
    set_temperature(broker, 31)
    got = {}
    for _ in range(3):
        topic, payload, qos, retain = listener.next()
        assert (qos, retain) == (0, False)
        got[topic] = payload
    assert got["custom/text/Room1"] == b"t:31"
    assert json.loads(got["custom/json/Room"]) == {"t": 31, "k": "x"}
    assert json.loads(got["custom/ngsi"]) == {
        "subscriptionId": ngsi_id,
        "data": [{"id": "Room1", "type": "Room", "temperature": {"type": "Number", "value": 31, "metadata": {}},
                  "extra": {"type": "Text", "value": "Room1", "metadata": {}}}],
    }
    listener.none(0.3)
    shown = get_notification(broker, ngsi_id)["notification"]["mqttCustom"]
    assert shown == {"url": url, "topic": "custom/ngsi", "qos": 0, "retain": False,
                     "ngsi": {"extra": {"type": "Text", "value": "${id}"}}}


def test_user_and_password_and_password_never_shown(broker: httpx.Client, mosquitto: Mosquitto, subscribers: Any) -> None:
    url = f"mqtt://{mosquitto.host}:{mosquitto.auth_port}"
    listener = subscribers("auth/#")  # the anonymous listener: one broker, both listeners see the message
    good = subscribe(broker, {"mqtt": {"url": url, "topic": "auth/good", "user": MOSQUITTO_USER, "passwd": MOSQUITTO_PASSWD}})
    bad = subscribe(broker, {"mqtt": {"url": url, "topic": "auth/bad", "user": MOSQUITTO_USER, "passwd": "wrong"}})
    set_temperature(broker, 1)
    topic, _, _, _ = listener.next()
    assert topic == "auth/good"
    listener.none(0.3)
    ok = wait_counters(broker, good, "timesSent", 1)["notification"]
    assert ok["mqtt"] == {"url": url, "topic": "auth/good", "qos": 0, "retain": False,
                          "user": MOSQUITTO_USER, "passwd": "*****"}
    assert "lastSuccess" in ok
    failed = wait_counters(broker, bad, "failsCounter", 1)["notification"]
    assert "lastFailure" in failed and "lastFailureReason" not in failed
    listing = broker.get("/v2/subscriptions").text
    assert MOSQUITTO_PASSWD not in listing and "wrong" not in listing


def test_mqtt_broker_down_counts_failures(broker: httpx.Client) -> None:
    # Bound but not listening: connections are refused. (A merely free port can become
    # the client's own ephemeral port, and connecting to it then connects to itself.)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    url = f"mqtt://127.0.0.1:{closed.getsockname()[1]}"
    sub_id = subscribe(broker, {"mqtt": {"url": url, "topic": "t"}, "maxFailsLimit": 2})
    for value in (1, 2, 3):
        set_temperature(broker, value)
        wait_counters(broker, sub_id, "failsCounter", value)
    sub = get_notification(broker, sub_id)
    notification = sub["notification"]
    assert notification["failsCounter"] == 3 and notification["timesSent"] == 3
    assert "lastFailure" in notification and "lastSuccess" not in notification
    assert "lastFailureReason" not in notification
    assert sub["status"] == "inactive"  # past maxFailsLimit
    closed.close()


@pytest.mark.parametrize(("mqtt", "description"), [
    ({"topic": "t"}, "url mqtt notification is missing"),
    ({"url": "mqtt://localhost:1883"}, "topic mqtt notification is missing"),
    ({"url": "http://localhost:1883", "topic": "t"}, "Invalid URL parsing notification url"),
    ({"url": "mqtt://localhost:1883", "topic": "t", "qos": 3}, "mqtt qos field must be an integer in the 0 to 2 range"),
    ({"url": "mqtt://localhost:1883", "topic": "t", "user": "u"}, "you must use user and passwd fields simultaneously"),
    ({"url": "mqtt://localhost:1883", "topic": "t", "passwd": "p"}, "you must use user and passwd fields simultaneously"),
    ({"url": "mqtt://localhost:1883", "topic": "a/#"}, "forbidden characters in mqtt /topic/"),
    ({"url": "mqtt://localhost:1883", "topic": "t", "retain": "yes"}, "retain is not a bool"),
])
def test_mqtt_validation(mqtt: dict[str, Any], description: str) -> None:
    from broker.subscriptions.model import parse_subscription
    from ngsi.errors import BadRequest

    body = {"subject": {"entities": [{"id": "E"}]}, "notification": {"mqtt": mqtt}}
    with pytest.raises(BadRequest) as info:
        parse_subscription(body)
    assert info.value.description == description


def test_publisher_keeps_one_connection_per_broker_and_credentials(mosquitto: Mosquitto, subscribers: Any) -> None:
    listener = subscribers("reuse/#")
    url = f"mqtt://{mosquitto.host}:{mosquitto.port}"
    auth_url = f"mqtt://{mosquitto.host}:{mosquitto.auth_port}"

    async def scenario() -> None:
        publisher = MqttPublisher()
        try:
            for i in range(5):
                await publisher.publish(MqttMessage("s", "", url, "reuse/a", str(i).encode()))
            first = dict(publisher._connections)
            assert len(first) == 1
            await asyncio.gather(*(publisher.publish(MqttMessage("s", "", url, "reuse/a", b"x")) for _ in range(10)))
            assert publisher._connections == first  # the same client, reused concurrently
            await publisher.publish(MqttMessage("s", "", auth_url, "reuse/b", b"y", user=MOSQUITTO_USER, passwd=MOSQUITTO_PASSWD))
            assert len(publisher._connections) == 2
            with pytest.raises(MqttError):
                await publisher.publish(MqttMessage("s", "", auth_url, "reuse/c", b"z", user=MOSQUITTO_USER, passwd="no"))
            assert len(publisher._connections) == 2
        finally:
            await publisher.aclose()

    asyncio.run(scenario())
    payloads = [listener.next()[1] for _ in range(16)]
    assert sorted(payloads) == [b"0", b"1", b"2", b"3", b"4"] + [b"x"] * 10 + [b"y"]
    listener.none(0.3)


def test_publisher_closes_connections_unused_for_max_age(mosquitto: Mosquitto) -> None:
    url = f"mqtt://{mosquitto.host}:{mosquitto.port}"

    async def scenario() -> None:
        publisher = MqttPublisher(max_age=0.2)
        try:
            await publisher.publish(MqttMessage("s", "", url, "age/a", b"1"))
            [first] = publisher._connections.values()
            await publisher.publish(MqttMessage("s", "", url, "age/a", b"2"))
            assert list(publisher._connections.values()) == [first]
            await asyncio.sleep(0.3)
            await publisher.publish(MqttMessage("s", "", url, "age/a", b"3"))
            [second] = publisher._connections.values()
            assert second is not first
        finally:
            await publisher.aclose()

    asyncio.run(scenario())
