"""MQTT notifications as Orion's manual describes them (issue 13).

Written from /work/shared/reference/orion/user/mqtt_notifications.md and orion-api.md
(`subscription.notification.mqtt`, `subscription.notification.mqttCustom`, 'Custom
Notifications'); each test cites the section it follows. Orion's functional test kit
has no MQTT case, so where the manual gives no error text the tests check the status
and the error name only.

A broker process (python -m broker) publishes to a real Mosquitto (tests/conftest.py);
a paho client subscribed there sees topic, payload, QoS and the retain flag as any
MQTT client would.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.broker.api_client import new_id
from tests.broker.conftest import MqttListener
from tests.conftest import MOSQUITTO_PASSWD, MOSQUITTO_USER, BrokerProcess, Mosquitto


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker process (with -multiservice: each test works in a tenant of its own)."""
    process = BrokerProcess(["-data", str(tmp_path_factory.mktemp("mqtt-broker")), "-multiservice"]).start()
    try:
        yield process.url
    finally:
        process.stop()


class Api:
    """One test's tenant on the broker, and listeners on Mosquitto."""

    def __init__(self, base: str, mosquitto: Mosquitto) -> None:
        self.tenant = new_id("m")
        self.http = httpx.Client(base_url=base, timeout=10, headers={"Fiware-Service": self.tenant})
        self.mosquitto = mosquitto
        self.mqtt_url = f"mqtt://{mosquitto.host}:{mosquitto.port}"
        self.listeners: list[MqttListener] = []

    def topic(self, suffix: str = "") -> str:
        return f"{self.tenant}/notif{suffix}"

    def listen(self, topic_filter: str | None = None, mosquitto: Mosquitto | None = None) -> MqttListener:
        where = mosquitto or self.mosquitto
        listener = MqttListener(where.host, where.port, topic_filter or self.topic("/#"))
        self.listeners.append(listener)
        return listener

    def post_sub(self, notification: dict[str, Any], **top: Any) -> httpx.Response:
        body = {"subject": {"entities": [{"idPattern": ".*"}]}, "notification": notification, **top}
        return self.http.post("/v2/subscriptions", json=body)

    def subscribe(self, notification: dict[str, Any], **top: Any) -> str:
        response = self.post_sub(notification, **top)
        assert response.status_code == 201, response.text
        return str(response.headers["location"].rsplit("/", 1)[1])

    def refused(self, notification: dict[str, Any], description: str | None = None) -> None:
        response = self.post_sub(notification)
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["error"] == "BadRequest", body
        if description is not None:
            assert body["description"] == description, body

    def get_sub(self, sub_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v2/subscriptions/{sub_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_sub(self, sub_id: str, key: str, value: Any, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            sub = self.get_sub(sub_id)
            if sub["notification"].get(key) == value:
                return sub
            assert time.monotonic() < deadline, f"{key} never became {value}: {sub}"
            time.sleep(0.05)

    def upsert(self, entity_id: str = "Room1", **attrs: Any) -> None:
        body = {"id": entity_id, "type": "Room", **{k: {"value": v} for k, v in attrs.items()}}
        response = self.http.post("/v2/entities", params={"options": "upsert"}, json=body)
        assert response.status_code in (201, 204), response.text

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()
        self.http.close()


@pytest.fixture
def api(broker: str, mosquitto: Mosquitto) -> Iterator[Api]:
    a = Api(broker, mosquitto)
    yield a
    a.close()


def normalized(value: Any, attr_type: str = "Number") -> dict[str, Any]:
    return {"type": attr_type, "value": value, "metadata": {}}


# =========================================================================== Introduction


def test_notification_is_published_on_the_topic_with_the_http_payload(api: Api) -> None:
    """mqtt_notifications.md, 'Introduction': "a MQTT message is published in a given MQTT
    broker ... each time a notification is triggered", "the notification payload is the
    same" as HTTP's; qos "If omitted then QoS 0 is used", retain "If omitted then retain
    false is used"; GET shows the mqtt object."""
    listener = api.listen()
    sub_id = api.subscribe({"mqtt": {"url": api.mqtt_url, "topic": api.topic()}, "attrs": ["temperature"]})
    api.upsert(temperature=21, humidity=40)
    topic, payload, qos, retain = listener.next()
    assert (topic, qos, retain) == (api.topic(), 0, False)
    assert json.loads(payload) == {"subscriptionId": sub_id,
                                   "data": [{"id": "Room1", "type": "Room", "temperature": normalized(21)}]}
    listener.none(0.2)
    assert api.get_sub(sub_id)["notification"]["mqtt"] == {"url": api.mqtt_url, "topic": api.topic(),
                                                           "qos": 0, "retain": False}


def test_mqtt_subscriptions_work_like_http_ones(api: Api) -> None:
    """mqtt_notifications.md, 'Introduction': "From an operational point of view, MQTT
    subscriptions are like HTTP ones ... (e.g. the notification payload is the same, you can
    set an expiration date, a filtering expression, etc.)": attrsFormat, q, expires."""
    listener = api.listen()
    api.subscribe({"mqtt": {"url": api.mqtt_url, "topic": api.topic("/kv")}, "attrsFormat": "simplifiedKeyValues"})
    body = {"subject": {"entities": [{"idPattern": ".*"}], "condition": {"expression": {"q": "temperature>30"}}},
            "notification": {"mqtt": {"url": api.mqtt_url, "topic": api.topic("/hot")}, "attrsFormat": "keyValues"}}
    assert api.http.post("/v2/subscriptions", json=body).status_code == 201
    expired = api.subscribe({"mqtt": {"url": api.mqtt_url, "topic": api.topic("/expired")}},
                            expires="2001-01-01T00:00:00Z")
    api.upsert(temperature=20)
    api.upsert(temperature=35)
    got = [listener.next() for _ in range(3)]
    listener.none(0.3)
    by_topic: dict[str, list[Any]] = {}
    for topic, payload, _, _ in got:
        by_topic.setdefault(topic, []).append(json.loads(payload))
    assert by_topic[api.topic("/kv")] == [{"id": "Room1", "type": "Room", "temperature": 20},
                                          {"id": "Room1", "type": "Room", "temperature": 35}]
    [hot] = by_topic[api.topic("/hot")]
    assert hot["data"] == [{"id": "Room1", "type": "Room", "temperature": 35}]
    assert api.get_sub(expired)["status"] == "expired"


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_qos(api: Api, qos: int) -> None:
    """mqtt_notifications.md, 'Introduction' > qos: "the MQTT QoS value to use in the
    notifications associated to the subscription (0, 1 or 2)"."""
    listener = api.listen()
    sub_id = api.subscribe({"mqtt": {"url": api.mqtt_url, "topic": api.topic(), "qos": qos}})
    api.upsert(t=1)
    topic, _, got_qos, _ = listener.next()
    assert (topic, got_qos) == (api.topic(), qos)
    assert api.get_sub(sub_id)["notification"]["mqtt"]["qos"] == qos


def test_retain(api: Api) -> None:
    """mqtt_notifications.md, 'Introduction' > retain: "the MQTT retain value to use": a client
    subscribing later gets the retained notification, flagged retained."""
    sub_id = api.subscribe({"mqtt": {"url": api.mqtt_url, "topic": api.topic("/r"), "retain": True}})
    live = api.listen(api.topic("/r"))
    api.upsert(t=3)
    assert json.loads(live.next()[1])["data"][0]["t"] == normalized(3)
    late = api.listen(api.topic("/r"))
    topic, payload, _, retain = late.next()
    assert topic == api.topic("/r") and retain is True and json.loads(payload)["subscriptionId"] == sub_id
    assert api.get_sub(sub_id)["notification"]["mqtt"]["retain"] is True


# =========================================================================== the mqtt object


def test_url_must_be_mqtt_without_path(api: Api) -> None:
    """mqtt_notifications.md, 'Introduction' > url: "URL must start with mqtt:// and never
    contains a path (i.e. it only includes host and port)" (also orion-api.md,
    `subscription.notification.mqtt`)."""
    for url in ("http://localhost:1883", "localhost:1883", "mqtt://", "mqtt://localhost:99999"):
        api.refused({"mqtt": {"url": url, "topic": "t"}})
    for url in ("mqtt://localhost:1883/path", "mqtt://localhost/a/b"):
        api.refused({"mqtt": {"url": url, "topic": "t"}})
    for url in ("mqtt://localhost:1883", "mqtt://localhost:1883/", "mqtt://127.0.0.1"):
        api.subscribe({"mqtt": {"url": url, "topic": "t"}})
    api.refused({"mqtt": {"topic": "t"}})


def test_topic_qos_retain_user_passwd_checks(api: Api) -> None:
    """mqtt_notifications.md, 'Introduction': topic (mandatory, orion-api.md
    `subscription.notification.mqtt`), qos 0, 1 or 2, retain true or false, user and passwd
    "If used, both fields have to be used together"."""
    url = api.mqtt_url
    api.refused({"mqtt": {"url": url}})
    for qos in (3, -1, "1", 1.5):
        api.refused({"mqtt": {"url": url, "topic": "t", "qos": qos}})
    api.refused({"mqtt": {"url": url, "topic": "t", "retain": "true"}})
    api.refused({"mqtt": {"url": url, "topic": "t", "user": "u"}}, "you must use user and passwd fields simultaneously")
    api.refused({"mqtt": {"url": url, "topic": "t", "passwd": "p"}}, "you must use user and passwd fields simultaneously")


def test_user_and_password(api: Api) -> None:
    """mqtt_notifications.md, 'Introduction' > user and passwd: "to be used in the case MQTT
    broker needs user/password based authentication ... the password is always offuscated
    when retrieving subscription information (e.g. GET /v2/subscriptions)"; a broker refusing
    the credentials is a failure ('Introduction': lastFailure, no lastFailureReason)."""
    mosquitto = api.mosquitto
    url = f"mqtt://{mosquitto.host}:{mosquitto.auth_port}"
    listener = api.listen()  # the anonymous listener of the same Mosquitto sees every message
    good = api.subscribe({"mqtt": {"url": url, "topic": api.topic("/good"), "user": MOSQUITTO_USER,
                                   "passwd": MOSQUITTO_PASSWD}})
    bad = api.subscribe({"mqtt": {"url": url, "topic": api.topic("/bad"), "user": MOSQUITTO_USER,
                                  "passwd": "not-" + MOSQUITTO_PASSWD}})
    api.upsert(t=1)
    assert listener.next()[0] == api.topic("/good")
    listener.none(0.3)
    shown = api.get_sub(good)["notification"]["mqtt"]
    assert shown["user"] == MOSQUITTO_USER and shown["passwd"] != MOSQUITTO_PASSWD
    failed = api.wait_sub(bad, "failsCounter", 1)["notification"]
    assert "lastFailure" in failed and "lastFailureReason" not in failed and "lastSuccess" not in failed
    listing = api.http.get("/v2/subscriptions").text
    assert MOSQUITTO_PASSWD not in listing


def test_counters_have_no_code_and_no_reason(api: Api) -> None:
    """mqtt_notifications.md, 'Introduction': MQTT subscriptions don't include lastSuccessCode
    nor lastFailureReason; "lastSuccess and lastFailure ... are supported in MQTT
    subscriptions in the same way than in HTTP subscriptions" (and timesSent, failsCounter,
    maxFailsLimit: orion-api.md, `subscription.notification`)."""
    listener = api.listen()
    ok = api.subscribe({"mqtt": {"url": api.mqtt_url, "topic": api.topic()}})
    closed = socket.socket()  # bound, not listening: connections are refused
    closed.bind(("127.0.0.1", 0))
    down = api.subscribe({"mqtt": {"url": f"mqtt://127.0.0.1:{closed.getsockname()[1]}", "topic": "t"},
                          "maxFailsLimit": 1})
    api.upsert(t=1)
    api.upsert(t=2)
    listener.next()
    listener.next()
    success = api.wait_sub(ok, "timesSent", 2)["notification"]
    assert "lastSuccess" in success and "lastNotification" in success
    for absent in ("lastSuccessCode", "lastFailure", "lastFailureReason", "failsCounter"):
        assert absent not in success
    sub = api.wait_sub(down, "failsCounter", 2)
    failure = sub["notification"]
    assert "lastFailure" in failure and "lastFailureReason" not in failure and "lastSuccessCode" not in failure
    assert sub["status"] == "inactive"  # failsCounter 2 > maxFailsLimit 1
    closed.close()


# =========================================================================== Custom notifications


def test_mqtt_custom_macros_in_topic_payload_json_and_ngsi(api: Api) -> None:
    """mqtt_notifications.md, 'Custom notifications': "Macro replacement is performed in topic,
    payload, json and ngsi fields"; orion-api.md 'Text based payload', 'JSON payloads', 'NGSI
    payload patching' (the normalized format with subscriptionId)."""
    listener = api.listen()
    url = api.mqtt_url
    api.subscribe({"mqttCustom": {"url": url, "topic": api.topic("/text/${id}"), "payload": "t is ${temperature}"}})
    api.subscribe({"mqttCustom": {"url": url, "topic": api.topic("/json/${type}"),
                                  "json": {"t": "${temperature}", "s": "T=${temperature}"}}})
    ngsi = api.subscribe({"mqttCustom": {"url": url, "topic": api.topic("/ngsi"),
                                         "ngsi": {"id": "x:${id}", "extra": {"value": "${temperature}", "type": "Number"}}}})
    api.upsert(temperature=31)
    got = {topic: payload for topic, payload, _, _ in (listener.next() for _ in range(3))}
    listener.none(0.3)
    assert got[api.topic("/text/Room1")] == b"t is 31"
    assert json.loads(got[api.topic("/json/Room")]) == {"t": 31, "s": "T=31"}
    assert json.loads(got[api.topic("/ngsi")]) == {"subscriptionId": ngsi, "data": [
        {"id": "x:Room1", "type": "Room", "temperature": normalized(31), "extra": normalized(31)}]}


def test_mqtt_custom_fixed_fields(api: Api) -> None:
    """mqtt_notifications.md, 'Custom notifications': "url, qos, retain, user and passwd are
    fixed values" (no macro replacement); "The same fields used in mqtt can be used in
    mqttCustom"; GET shows them with the password obfuscated."""
    mosquitto = api.mosquitto
    url = f"mqtt://{mosquitto.host}:{mosquitto.auth_port}"
    listener = api.listen()
    sub_id = api.subscribe({"mqttCustom": {"url": url, "topic": api.topic("/${id}"), "qos": 1, "retain": False,
                                           "user": MOSQUITTO_USER, "passwd": MOSQUITTO_PASSWD,
                                           "payload": "${id}"}})
    api.upsert(t=1)
    topic, payload, qos, retain = listener.next()
    assert (topic, payload, qos, retain) == (api.topic("/Room1"), b"Room1", 1, False)
    shown = api.get_sub(sub_id)["notification"]["mqttCustom"]
    assert shown["url"] == url and shown["topic"] == api.topic("/${id}") and shown["qos"] == 1
    assert shown["user"] == MOSQUITTO_USER and shown["passwd"] != MOSQUITTO_PASSWD and shown["payload"] == "${id}"


def test_mqtt_custom_has_no_headers_qs_or_method(api: Api) -> None:
    """mqtt_notifications.md, 'Custom notifications': "headers, qs and method cannot be used, as
    they doesn't have equivalence in MQTT"."""
    for field, value in (("headers", {"a": "b"}), ("qs", {"a": "b"}), ("method", "PUT")):
        api.refused({"mqttCustom": {"url": api.mqtt_url, "topic": "t", field: value}})


def test_mqtt_custom_omitting_payload(api: Api) -> None:
    """orion-api.md, `subscription.notification.mqttCustom` > payload: "In case of empty string
    or omitted, the default payload ... is used. If null, notification will not include any
    payload"."""
    listener = api.listen()
    api.subscribe({"mqttCustom": {"url": api.mqtt_url, "topic": api.topic("/null"), "payload": None}})
    default = api.subscribe({"mqttCustom": {"url": api.mqtt_url, "topic": api.topic("/empty"), "payload": ""}})
    api.upsert(t=1)
    got = {topic: payload for topic, payload, _, _ in (listener.next() for _ in range(2))}
    assert got[api.topic("/null")] == b""
    assert json.loads(got[api.topic("/empty")]) == {"subscriptionId": default,
                                                    "data": [{"id": "Room1", "type": "Room", "t": normalized(1)}]}


def test_mqtt_custom_payload_json_ngsi_are_exclusive(api: Api) -> None:
    """orion-api.md, `subscription.notification.mqttCustom`: "payload, json or ngsi cannot be
    used at the same time, they are mutually exclusive"."""
    api.refused({"mqttCustom": {"url": api.mqtt_url, "topic": "t", "payload": "x", "json": {"a": 1}}},
                "only one of payload, json or ngsi fields accepted at the same time in httpCustom, mqttCustom or "
                "kafkaCustom")


# =========================================================================== Connection management


def test_connection_is_made_at_the_first_notification(api: Api) -> None:
    """mqtt_notifications.md, 'Connection management': "the connection to it is done first time
    a MQTT notification is published", not when the subscription is created."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    try:
        api.subscribe({"mqtt": {"url": f"mqtt://127.0.0.1:{server.getsockname()[1]}", "topic": "t"}})
        with pytest.raises(socket.timeout):
            server.accept()
        api.upsert(t=1)
        server.settimeout(5)
        connection, _ = server.accept()
        with connection:
            connection.settimeout(5)
            assert connection.recv(1)[0] >> 4 == 1  # an MQTT CONNECT packet
    finally:
        server.close()


def test_connection_is_recreated_after_the_broker_was_down(api: Api, tmp_path: Path) -> None:
    """mqtt_notifications.md, 'Connection management': "Orion also closes connection in case of
    MQTT notification errors (e.g. MQTT broker is down), so it will be re-created next time a
    successfully MQTT notification gets published"."""
    own = Mosquitto(tmp_path).start()
    try:
        url = f"mqtt://{own.host}:{own.port}"
        sub_id = api.subscribe({"mqtt": {"url": url, "topic": api.topic(), "qos": 1}})
        listener = api.listen(api.topic(), own)
        api.upsert(t=1)
        assert json.loads(listener.next()[1])["data"][0]["t"] == normalized(1)
        listener.close()
        api.listeners.remove(listener)
        own.stop()
        api.upsert(t=2)
        api.wait_sub(sub_id, "failsCounter", 1)
        own.start()
        listener = api.listen(api.topic(), own)
        api.upsert(t=3)
        assert json.loads(listener.next()[1])["data"][0]["t"] == normalized(3)
        notification = api.wait_sub(sub_id, "failsCounter", None)["notification"]  # a success resets it
        assert notification["timesSent"] == 3 and "lastSuccess" in notification
    finally:
        own.stop()

