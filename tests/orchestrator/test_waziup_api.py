"""The WAZIUP cloud API v2 on ``waziup run``, as WAZIUP's gateways, scripts and apps use it.

One platform for the module (``waziup run`` on free ports, its identity manager, broker,
history and the API with its MQTT broker), real clients (``requests`` in the cloud script,
paho-mqtt 3.1.1), and the contract (``shared/reference/waziup-api-v2.md``) cited by section.
"""

from __future__ import annotations

import json
import queue
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest

from tests.conftest import free_port, stop_process
from tests.run_platform import start_run
from tests.orchestrator.cloud_waziup import post_value

ADMIN_PASSWORD = "Adm1n-pass-for-waziup-api"
WAZIUP = {"Fiware-Service": "waziup", "Fiware-ServicePath": "/"}


class Platform:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.ports = {name: free_port() for name in ("port", "northPort", "httpPort", "mqttPort", "mqttTlsPort",
                                                     "idmPort", "historyPort", "apiPort", "apiMqttPort", "appsPort")}
        self.api = f"http://127.0.0.1:{self.ports['apiPort']}/api/v2"
        self.broker = f"http://127.0.0.1:{self.ports['port']}"
        self.history = f"http://127.0.0.1:{self.ports['historyPort']}"
        self.mqtt = self.ports["apiMqttPort"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Platform:
        options = ["-host", "127.0.0.1", "-data", str(self.data), "-rulesPort", "0", "-dashboardPort", "0"]
        for name, port in self.ports.items():
            options += [f"-{name}", str(port)]
        self.proc, _ = start_run(options, self.data, {"WAZIUP_ADMIN_PASSWORD": ADMIN_PASSWORD})
        return self

    def stop(self) -> None:
        stop_process(self.proc, timeout=20)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    running = Platform(tmp_path_factory.mktemp("waziup-api")).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def http(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.api, timeout=15) as client:
        yield client


def token(http: httpx.Client, username: str, password: str) -> dict[str, str]:
    answer = http.post("/auth/token", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")  # §1: the bare token
    assert not answer.text.startswith('"')
    return {"Authorization": "Bearer " + answer.text}


@pytest.fixture(scope="module")
def admin(http: httpx.Client) -> dict[str, str]:
    return token(http, "admin", ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def users(http: httpx.Client, admin: dict[str, str]) -> dict[str, dict[str, str]]:
    """alice and bob, created by the administrator through ``POST /users``."""
    made = {}
    for name in ("alice", "bob"):
        answer = http.post("/users", headers=admin, json={"username": name, "password": f"{name}-Pa55word",
                                                          "first_name": name.title(), "phone": "+221 00 00 00"})
        assert answer.status_code == 200, answer.text
        made[name] = token(http, name, f"{name}-Pa55word")
    return made


class Subscriber:
    """A paho-mqtt 3.1.1 client collecting what it receives."""

    def __init__(self, port: int, topic: str, *, client_id: str = "", username: str | None = None,
                 password: str | None = None) -> None:
        self.messages: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        if username:
            self.client.username_pw_set(username, password)
        subscribed = queue.Queue[int]()
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, json.loads(m.payload)))
        self.client.on_subscribe = lambda c, u, mid, codes, props: subscribed.put(mid)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if topic:
            self.client.subscribe(topic, qos=1)
            subscribed.get(timeout=5)

    def publish(self, topic: str, payload: Any) -> None:
        info = self.client.publish(topic, json.dumps(payload), qos=1)
        info.wait_for_publish(timeout=5)
        assert info.is_published()  # acknowledged (PUBACK), stored or dropped

    def next(self, timeout: float = 2.0) -> tuple[str, Any]:
        return self.messages.get(timeout=timeout)

    def nothing(self, seconds: float = 0.5) -> bool:
        try:
            self.messages.get(timeout=seconds)
        except queue.Empty:
            return True
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- the "done when" ----------------------------------------------------------------


def test_cloud_script_flow_reaches_broker_history_and_mqtt(platform: Platform, http: httpx.Client,
                                                           users: dict[str, dict[str, str]]) -> None:
    """The LoRa gateway's cloud flow: token, device and sensor made if missing, value posted;
    seen in the device, the broker, the history and on MQTT (§3 "Storing a value")."""
    watcher = Subscriber(platform.mqtt, "devices/+/sensors/+/value", username="alice", password="alice-Pa55word")
    try:
        post_value(platform.api, "alice", "alice-Pa55word", "LoRa-1", "TC1", 21.5, "2016-06-08T18:20:27.873Z")
        assert watcher.next() == ("devices/LoRa-1/sensors/TC1/value",
                                  {"value": 21.5, "timestamp": "2016-06-08T18:20:27Z"})  # §6, whole seconds
        post_value(platform.api, "alice", "alice-Pa55word", "LoRa-1", "TC1", 22)  # both exist now
        assert watcher.next() == ("devices/LoRa-1/sensors/TC1/value", {"value": 22})
    finally:
        watcher.close()
    device = http.get("/devices/LoRa-1", headers=users["alice"]).json()
    assert device["owner"] == "alice" and device["gateway_id"] == "GW-LoRa-1"
    sensor = device["sensors"][0]
    assert sensor["id"] == "TC1" and sensor["value"]["value"] == 22 and "timestamp" not in sensor["value"]
    entity = httpx.get(f"{platform.broker}/v2/entities/LoRa-1", headers=WAZIUP, params={"options": "keyValues"}).json()
    assert entity["type"] == "Device" and entity["TC1"] == 22 and entity["owner"] == "alice"
    history = httpx.get(f"{platform.history}/v2/entities/LoRa-1/attrs/TC1", headers=WAZIUP).json()
    assert history["values"] == [21.5, 22]


def test_sensors_data_json_and_csv(http: httpx.Client, users: dict[str, dict[str, str]]) -> None:
    """§3 history: milliseconds kept, default sort by reception, CSV of §7."""
    alice = users["alice"]
    assert http.post("/devices", headers=alice, json={"id": "Hist-1", "sensors": [{"id": "S1"}, {"id": "S2"}]}
                     ).status_code == 204
    pushed = [("S1", {"value": 1.5, "timestamp": "2016-06-08T18:20:27.873Z"}), ("S2", {"value": "on"}),
              ("S1", {"value": {"a": [1, True, None]}}), ("S1", {"value": False, "timestamp": "2016-06-08T18:20:28Z"})]
    for sensor, body in pushed:
        assert http.post(f"/devices/Hist-1/sensors/{sensor}/value", headers=alice, json=body).status_code == 204
    points = http.get("/sensors_data", params={"device_id": "Hist-1"}, headers=alice).json()
    assert [(p["sensor_id"], p["value"], p.get("timestamp")) for p in points] == [
        ("S1", 1.5, "2016-06-08T18:20:27.873Z"), ("S2", "on", None), ("S1", {"a": [1, True, None]}, None),
        ("S1", False, "2016-06-08T18:20:28Z")]  # types kept, a timestamp without a fraction identical
    assert all(p["device_id"] == "Hist-1" and p["date_received"].endswith("Z") for p in points)
    newest = http.get("/sensors_data", params={"device_id": "Hist-1", "sensor_id": "S1", "sort": "dsc", "limit": 1},
                      headers=alice).json()
    assert [p["value"] for p in newest] == [False]  # body[0] is the value just pushed
    paged = http.get("/devices/Hist-1/sensors/S1/values", params={"offset": 1, "limit": 1}, headers=alice).json()
    assert [p["value"] for p in paged] == [{"a": [1, True, None]}]
    csv = http.get("/sensors_data", params={"device_id": "Hist-1", "sensor_id": "S2"},
                   headers={**alice, "Accept": "text/csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0] == "device_id,sensor_id,value,timestamp,date_received"
    assert lines[1].startswith('Hist-1,S2,"on",,20')
    assert http.get("/sensors_data", headers=alice).status_code == 400  # device_id is required


def test_notification_sets_the_actuator_over_http_and_mqtt(platform: Platform, http: httpx.Client,
                                                             users: dict[str, dict[str, str]]) -> None:
    """§5: ``TC1>40`` sets the actuator before the value's answer, and MQTT tells."""
    alice = users["alice"]
    assert http.post("/devices", headers=alice, json={
        "id": "Farm-1", "sensors": [{"id": "TC1"}], "actuators": [{"id": "FAN", "actuator_value_type": "string"}],
    }).status_code == 204
    notif = {"description": "cool it", "condition": {"devices": ["Farm-1"], "sensors": ["TC1"], "expression": "TC1>40"},
             "action": {"type": "ActuationAction",
                        "value": {"device_id": "Farm-1", "actuator_id": "FAN", "actuator_value": "on at ${TC1}"}},
             "throttling": 1}
    made = http.post("/notifications", json=notif)  # no token: the notifications routes check nothing (§3)
    assert made.status_code == 200 and made.headers["content-type"].startswith("text/plain")
    notif_id = made.text
    fan = Subscriber(platform.mqtt, "devices/Farm-1/actuators/FAN/value", username="alice",
                     password="alice-Pa55word")
    try:
        assert http.post("/devices/Farm-1/sensors/TC1/value", headers=alice, json={"value": 39}).status_code == 204
        assert http.get("/notifications/" + notif_id).json()["times_sent"] == 0
        assert http.post("/devices/Farm-1/sensors/TC1/value", headers=alice, json={"value": 41}).status_code == 204
        # synchronous (§5 rule 1): read right after the answer
        assert http.get("/devices/Farm-1/actuators/FAN", headers=alice).json()["value"] == "on at 41"
        shown = http.get("/notifications/" + notif_id).json()
        assert shown["times_sent"] == 1 and shown["last_success_code"] == 204
        assert {k: shown[k] for k in notif} == notif  # round-trips exactly (§4)
        assert fan.next() == ("devices/Farm-1/actuators/FAN/value", "on at 41")
    finally:
        fan.close()


def test_guest_pushes_to_public_not_private_and_sees_no_private_messages(
        platform: Platform, http: httpx.Client, users: dict[str, dict[str, str]]) -> None:
    """§2: anonymous is the guest; §6: a refused publish is acknowledged and dropped, and a
    private device's messages reach only those who may view it."""
    alice = users["alice"]
    for device, visibility in (("Pub-1", "public"), ("Priv-1", "private")):
        assert http.post("/devices", headers=alice, json={"id": device, "visibility": visibility,
                                                          "sensors": [{"id": "S"}]}).status_code == 204
    assert http.post("/devices/Pub-1/sensors/S/value", json={"value": 1}).status_code == 204
    assert http.post("/devices/Priv-1/sensors/S/value", json={"value": 1}).status_code == 403
    assert http.get("/devices/Priv-1").status_code == 403  # 403, not 404 (§2)
    guest = Subscriber(platform.mqtt, "devices/#")
    owner = Subscriber(platform.mqtt, "devices/Priv-1/#", username="alice", password="alice-Pa55word")
    try:
        guest.publish("devices/Priv-1/sensors/S/value", {"value": 99})  # acknowledged...
        assert owner.nothing()  # ...but dropped: not relayed
        assert "value" not in http.get("/devices/Priv-1/sensors/S", headers=alice).json()  # nor stored
        guest.publish("devices/Pub-1/sensors/S/value", {"value": 7})
        assert guest.next() == ("devices/Pub-1/sensors/S/value", {"value": 7})
        assert http.get("/devices/Pub-1/sensors/S").json()["value"]["value"] == 7  # stored before PUBACK
        assert http.post("/devices/Priv-1/sensors/S/value", headers=alice, json={"value": 2}).status_code == 204
        assert owner.next() == ("devices/Priv-1/sensors/S/value", {"value": 2})
        assert guest.nothing()  # the guest may not view Priv-1's data
    finally:
        guest.close()
        owner.close()
