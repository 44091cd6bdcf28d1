"""Commands through the broker: registration, forwarding, delivery, results, expiry."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from iot_agent.commands.payload import command_payload, parse_results
from iot_agent.device import attribute_names, cmd_mode

from .conftest import AgentStack, MqttDevice, new_service, tenant


def status(entity: dict[str, object], cmd: str) -> object:
    attr = entity.get(f"{cmd}_status")
    return attr.get("value") if isinstance(attr, dict) else None


def command(stack: AgentStack, service: str, entity_id: str, cmd: str, value: object, entity_type: str = "Robot") -> httpx.Response:
    return httpx.put(
        f"{stack.broker.url}/v2/entities/{entity_id}/attrs/{cmd}",
        params={"type": entity_type},
        json={"type": "command", "value": value},
        headers=tenant(service),
    )


def registrations(stack: AgentStack, service: str) -> list[dict[str, object]]:
    result: list[dict[str, object]] = httpx.get(f"{stack.broker.url}/v2/registrations", headers=tenant(service)).json()
    return result


def test_pure_helpers() -> None:
    device = {"device_id": "r1", "commands": [{"name": "turn", "type": "command"}], "protocol": "IoTA-UL"}
    group = {"resource": "/iot/json", "commands": [{"name": "turn", "type": "command"}, {"name": "stop", "type": "command"}]}
    assert attribute_names(device, group, "commands") == ["turn", "stop"]
    assert command_payload(device, group, "turn", "left") == b"r1@turn|left"
    assert command_payload({"device_id": "r1"}, group, "turn", "left") == b'{"turn":"left"}'
    assert parse_results(device, None, b"r1@turn|done") == [("turn", "done")]
    assert parse_results({"device_id": "r1"}, None, b'{"turn": {"ok": true}}') == [("turn", {"ok": True})]
    # cmdMode: device, else group, else the agent's; advancedNotification (a draft) runs as legacy
    assert cmd_mode({"cmdMode": "notification"}, {"cmdMode": "legacy"}) == "notification"
    assert cmd_mode({}, {"cmdMode": "notification"}) == "notification"
    assert cmd_mode({}, None, "notification") == "notification"
    assert cmd_mode({"cmdMode": "advancedNotification"}, {"cmdMode": "notification"}) == "legacy"
    assert cmd_mode({}, {}) == "legacy"


def test_mqtt_command_round_trip(stack: AgentStack, device: MqttDevice) -> None:
    service, key = stack.robots(
        {
            "device_id": "robot1",
            "protocol": "IoTA-UL",
            "transport": "MQTT",
            "commands": [{"name": "turn", "type": "command"}],
            "attributes": [{"object_id": "b", "name": "battery", "type": "Number"}],
        }
    )
    regs = registrations(stack, service)
    assert len(regs) == 1
    assert regs[0]["dataProvided"] == {"entities": [{"id": "Robot:robot1", "type": "Robot"}], "attrs": ["turn"]}
    assert regs[0]["provider"]["http"]["url"] == stack.north + "/v2"  # type: ignore[index]

    device.subscribe(f"/{key}/robot1/cmd")
    device.publish(f"/ul/{key}/robot1/attrs", "b|90")
    stack.wait_entity(service, "Robot:robot1")

    response = command(stack, service, "Robot:robot1", "turn", "left")
    assert response.status_code == 204, response.text
    assert device.wait(f"/{key}/robot1/cmd") == b"robot1@turn|left"
    stack.wait_entity(service, "Robot:robot1", lambda e: status(e, "turn") == "PENDING")

    device.publish(f"/ul/{key}/robot1/cmdexe", "robot1@turn|turned left")
    entity = stack.wait_entity(service, "Robot:robot1", lambda e: status(e, "turn") == "OK")
    assert entity["turn_status"]["type"] == "commandStatus"
    assert entity["turn_info"] == {"type": "commandResult", "value": "turned left", "metadata": {}}
    assert entity["battery"]["value"] == 90

    # deleting the device removes its registration
    assert httpx.delete(stack.north + "/iot/devices/robot1", headers=tenant(service)).status_code == 204
    assert registrations(stack, service) == []


def test_json_mqtt_command(stack: AgentStack, device: MqttDevice) -> None:
    service, key = stack.robots(
        {"device_id": "j1", "transport": "MQTT"}, resource="/iot/json", commands=[{"name": "beep", "type": "command"}]
    )
    device.subscribe(f"/{key}/j1/cmd")
    assert command(stack, service, "Robot:j1", "beep", {"times": 2}).status_code == 204
    assert device.wait(f"/{key}/j1/cmd") == b'{"beep":{"times":2}}'
    device.publish(f"/json/{key}/j1/cmdexe", '{"beep": "done"}')
    entity = stack.wait_entity(service, "Robot:j1", lambda e: status(e, "beep") == "OK")
    assert entity["beep_info"]["value"] == "done"


def test_http_poll_command_and_expiry(stack: AgentStack) -> None:
    service, key = stack.robots(
        {"device_id": "poll1", "transport": "HTTP", "commands": [{"name": "open", "type": "command"}, {"name": "close", "type": "command"}]}
    )
    assert command(stack, service, "Robot:poll1", "open", "now").status_code == 204
    stack.wait_entity(service, "Robot:poll1", lambda e: status(e, "open") == "PENDING")
    polled = httpx.get(stack.south + "/iot/d", params={"i": "poll1", "k": key, "getCmd": "1"})
    assert polled.status_code == 200 and polled.text == "poll1@open|now"
    stack.wait_entity(service, "Robot:poll1", lambda e: status(e, "open") == "DELIVERED")
    assert httpx.get(stack.south + "/iot/d", params={"i": "poll1", "k": key, "getCmd": "1"}).text == ""
    answer = httpx.post(stack.south + "/iot/d", params={"i": "poll1", "k": key}, content="poll1@open|opened", headers={"content-type": "text/plain"})
    assert answer.status_code == 200, answer.text
    entity = stack.wait_entity(service, "Robot:poll1", lambda e: status(e, "open") == "OK")
    assert entity["open_info"]["value"] == "opened"

    # a command nobody polls expires (the stack runs with --polling-expiration 5000)
    assert command(stack, service, "Robot:poll1", "close", "x").status_code == 204
    entity = stack.wait_entity(service, "Robot:poll1", lambda e: status(e, "close") == "ERROR", timeout=20)
    assert entity["close_info"]["value"] == "EXPIRED"


class _Device(http.server.BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        _Device.received.append(body)
        answer = body.split(b"|")[0] + b"|done"
        self.send_response(200)
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_device() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Device)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cmd"
    server.shutdown()


def test_http_push_command(stack: AgentStack, http_device: str) -> None:
    service, _ = stack.robots(
        {"device_id": "push1", "transport": "HTTP", "endpoint": http_device, "commands": [{"name": "ring", "type": "command"}]}
    )
    assert command(stack, service, "Robot:push1", "ring", 3).status_code == 204
    entity = stack.wait_entity(service, "Robot:push1", lambda e: status(e, "ring") == "OK")
    assert entity["ring_info"]["value"] == "done"
    assert b"push1@ring|3" in _Device.received


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [("http://169.254.169.254/latest/meta-data/", "link-local/cloud-metadata"), ("http://10.9.8.7/cmd", "private")],
)
def test_http_push_to_a_refused_endpoint(stack: AgentStack, endpoint: str, why: str) -> None:
    """Device endpoints are URLs clients chose: the destination policy decides
    (IOTA_ALLOWED_DESTINATIONS; metadata addresses never), and a refusal is the command's ERROR."""
    service, _ = stack.robots(
        {"device_id": "push2", "transport": "HTTP", "endpoint": endpoint, "commands": [{"name": "ring", "type": "command"}]}
    )
    assert command(stack, service, "Robot:push2", "ring", 1).status_code == 204
    entity = stack.wait_entity(service, "Robot:push2", lambda e: status(e, "ring") == "ERROR")
    assert why in entity["ring_info"]["value"]


def test_lazy_attribute_query_and_unknown_command(stack: AgentStack) -> None:
    service = new_service()
    key = "k" + service
    stack.provision(
        service,
        devices=[{"device_id": "lz", "apikey": key, "entity_type": "Robot", "lazy": [{"name": "level", "type": "Number"}]}],
    )
    # Orion asks the provider for the lazy attribute; the agent has no device to ask
    got = httpx.post(
        stack.north + "/v2/op/query",
        json={"entities": [{"id": "Robot:lz", "type": "Robot"}], "attrs": ["level"]},
        headers=tenant(service),
    )
    assert got.status_code == 200
    assert got.json() == [{"id": "Robot:lz", "type": "Robot", "level": {"type": "Number", "value": "", "metadata": {}}}]
    bad = httpx.post(
        stack.north + "/v2/op/update",
        json={"actionType": "update", "entities": [{"id": "Robot:lz", "type": "Robot", "nope": {"type": "command", "value": 1}}]},
        headers=tenant(service),
    )
    assert (bad.status_code, bad.json()["name"]) == (400, "COMMAND_NOT_FOUND")
    missing = httpx.post(
        stack.north + "/v2/op/update",
        json={"actionType": "update", "entities": [{"id": "Robot:none", "type": "Robot", "x": {"value": 1}}]},
        headers=tenant(service),
    )
    assert (missing.status_code, missing.json()["name"]) == (404, "DEVICE_NOT_FOUND")
    time.sleep(0)


# -- cmdMode notification -------------------------------------------------------------------


def subscriptions(stack: AgentStack, service: str) -> list[dict[str, object]]:
    result: list[dict[str, object]] = httpx.get(f"{stack.broker.url}/v2/subscriptions", headers=tenant(service)).json()
    return result


def test_notification_mode_mqtt(stack: AgentStack, device: MqttDevice) -> None:
    service, key = stack.robots(
        {
            "device_id": "n1",
            "protocol": "IoTA-UL",
            "transport": "MQTT",
            "commands": [{"name": "turn", "type": "command"}, {"name": "stop", "type": "command"}],
            "lazy": [{"name": "level", "type": "Number"}],
        },
        cmdMode="notification",
    )
    # provisioning creates the entity at once, every command null
    entity = stack.wait_entity(service, "Robot:n1")
    assert entity["turn"] == {"type": "command", "value": None, "metadata": {}}
    assert entity["stop"] == {"type": "command", "value": None, "metadata": {}}
    # one subscription per command, notifying <provider>/notify; commands are not registered
    subs = subscriptions(stack, service)
    assert sorted(s["subject"]["condition"]["attrs"][0] for s in subs) == ["stop", "turn"]  # type: ignore[index]
    assert {s["notification"]["http"]["url"] for s in subs} == {stack.north + "/notify"}  # type: ignore[index]
    assert all(s["subject"]["entities"] == [{"id": "Robot:n1", "type": "Robot"}] for s in subs)
    regs = registrations(stack, service)
    assert [r["dataProvided"]["attrs"] for r in regs] == [["level"]]  # type: ignore[index]

    device.subscribe(f"/{key}/n1/cmd")
    assert command(stack, service, "Robot:n1", "turn", "left").status_code == 204
    assert device.wait(f"/{key}/n1/cmd") == b"n1@turn|left"
    stack.wait_entity(service, "Robot:n1", lambda e: status(e, "turn") == "PENDING")
    device.publish(f"/ul/{key}/n1/cmdexe", "n1@turn|turned")
    entity = stack.wait_entity(service, "Robot:n1", lambda e: status(e, "turn") == "OK")
    assert entity["turn_info"]["value"] == "turned"
    assert entity["turn"]["value"] == "left"  # the broker keeps the value it was sent
    # the same value again is a second command; the other command was not sent
    assert command(stack, service, "Robot:n1", "turn", "left").status_code == 204
    assert device.wait(f"/{key}/n1/cmd") == b"n1@turn|left"
    time.sleep(0.3)
    assert [t for t, _ in device.received] == []

    # deleting the device removes its subscriptions (and the lazy registration)
    assert httpx.delete(stack.north + "/iot/devices/n1", headers=tenant(service)).status_code == 204
    assert subscriptions(stack, service) == []
    assert registrations(stack, service) == []


def test_notification_mode_http_poll(stack: AgentStack) -> None:
    service, key = stack.robots(
        {"device_id": "np", "transport": "HTTP", "cmdMode": "notification", "commands": [{"name": "open", "type": "command"}]},
        resource="/iot/json",
    )
    assert registrations(stack, service) == []
    assert len(subscriptions(stack, service)) == 1
    assert command(stack, service, "Robot:np", "open", {"how": "wide"}).status_code == 204
    stack.wait_entity(service, "Robot:np", lambda e: status(e, "open") == "PENDING")
    polled = httpx.get(stack.south + "/iot/json", params={"i": "np", "k": key, "getCmd": "1"})
    assert polled.status_code == 200 and polled.json() == {"open": {"how": "wide"}}
    stack.wait_entity(service, "Robot:np", lambda e: status(e, "open") == "DELIVERED")
    answer = httpx.post(stack.south + "/iot/json/commands", params={"i": "np", "k": key}, json={"open": "opened"})
    assert answer.status_code == 200, answer.text
    entity = stack.wait_entity(service, "Robot:np", lambda e: status(e, "open") == "OK")
    assert entity["open_info"]["value"] == "opened"


def test_notify_endpoint_errors(stack: AgentStack) -> None:
    service = new_service()
    bad = httpx.post(stack.north + "/notify", content=b"{nope", headers=tenant(service))
    assert (bad.status_code, bad.json()["name"]) == (400, "WRONG_SYNTAX")
    unknown = httpx.post(
        stack.north + "/notify",
        json={"subscriptionId": "x", "data": [{"id": "Robot:ghost", "type": "Robot", "turn": {"type": "command", "value": 1}}]},
        headers=tenant(service),
    )
    assert (unknown.status_code, unknown.json()["name"]) == (404, "DEVICE_NOT_FOUND")
