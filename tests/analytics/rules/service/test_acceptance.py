"""The issue's acceptance cases, against a real broker process and real HTTP receivers:
update, post, command and email actions, throttling, no-signal, the destination policy."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from typing import Any, Self

import httpx
import pytest

from analytics.rules.service.config import Config
from tests.broker.conftest import Receiver
from tests.loopback_receiver import LoopbackReceiver

from .conftest import Clock, eventually, serve

pytestmark = pytest.mark.anyio


def _attr(ngsi: httpx.Client, entity: str, name: str) -> Any:
    answer = ngsi.get(f"/v2/entities/{entity}/attrs/{name}/value")
    return answer.json() if answer.status_code == 200 else None


async def _firings(svc: Any, rule: str) -> list[dict[str, Any]]:
    answer = await svc.http.get(f"/rules/{rule}/firings")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


HOT = {"name": "hot_room", "condition": {"type": "Room", "q": "temperature>40"},
       "action": {"type": "update", "interval": "2000",
                  "parameters": {"attributes": [{"name": "alarm", "type": "Boolean", "value": "true"}]}}}


async def test_a_hot_room_gets_its_alarm_within_a_second_and_once_per_interval(
        config: Config, ngsi: httpx.Client, clock: Clock) -> None:
    async with serve(config, clock) as svc:
        assert (await svc.http.post("/rules", json=HOT)).status_code == 200
        ngsi.post("/v2/entities", json={"id": "Room1", "type": "Room", "temperature": {"value": 20, "type": "Number"}})
        ngsi.post("/v2/entities", json={"id": "Room2", "type": "Room", "temperature": {"value": 41, "type": "Number"}})
        await eventually(lambda: _attr(ngsi, "Room2", "alarm") is True)  # created hot: fires too
        assert _attr(ngsi, "Room1", "alarm") is None
        crossed = time.monotonic()
        ngsi.patch("/v2/entities/Room1/attrs", json={"temperature": {"value": 45, "type": "Number"}})
        await eventually(lambda: _attr(ngsi, "Room1", "alarm") is True, timeout=1.0, every=0.01)
        assert time.monotonic() - crossed < 1.0
        # more hot readings within the 2 s interval: no more firings for Room1
        for value in (46, 47, 48):
            ngsi.patch("/v2/entities/Room1/attrs", json={"temperature": {"value": value, "type": "Number"}})
        await asyncio.sleep(0.3)
        room1 = [f for f in await _firings(svc, "hot_room") if f["entity"]["id"] == "Room1"]
        assert len(room1) == 1 and room1[0]["actions"][0]["outcome"] == {"ok": True}
        clock.offset += 2.5  # the interval has passed
        ngsi.patch("/v2/entities/Room1/attrs", json={"temperature": {"value": 49, "type": "Number"}})
        await eventually(lambda: _count(svc, "Room1", 2))
        # a reading below the threshold never fires
        clock.offset += 2.5
        ngsi.patch("/v2/entities/Room1/attrs", json={"temperature": {"value": 30, "type": "Number"}})
        await asyncio.sleep(0.3)
        assert await _count(svc, "Room1", 2)


async def _count(svc: Any, entity: str, n: int) -> bool:
    return len([f for f in await _firings(svc, "hot_room") if f["entity"]["id"] == entity]) == n


async def test_a_post_action_sends_its_templated_body(config: Config, ngsi: httpx.Client) -> None:
    async with LoopbackReceiver(path="/alerts") as receiver:
        config = replace(config, allowed_hosts=("127.0.0.1",))
        rule = {"name": "post_hot", "condition": {"type": "Sensor", "q": "temperature>30"},
                "action": {"type": "post",
                           "template": "{\"sensor\": \"${id}\", \"t\": ${temperature}, \"rule\": \"${ruleName}\"}",
                           "parameters": {"url": receiver.url + "/${id}", "qs": {"level": "${temperature}"},
                                          "headers": {"Content-Type": "application/json", "X-Rule": "${ruleName}"}}}}
        async with serve(config) as svc:
            assert (await svc.http.post("/rules", json=rule)).status_code == 200
            ngsi.post("/v2/entities", json={"id": "S1", "type": "Sensor", "temperature": {"value": 35.5, "type": "Number"}})
            await eventually(lambda: receiver.acknowledged)
            line, headers, body = receiver.acknowledged[0]
            assert line.startswith("POST /alerts/S1?level=35.5 ")
            assert headers["x-rule"] == "post_hot" and headers["content-type"] == "application/json"
            assert json.loads(body) == {"sensor": "S1", "t": 35.5, "rule": "post_hot"}


async def test_the_destination_policy_refuses_post_destinations(config: Config, ngsi: httpx.Client) -> None:
    """Loopback is not allowed by default: refused when the rule is created (400) and,
    for a URL made by a template, when the action is sent (a failed firing)."""
    async with LoopbackReceiver() as receiver, serve(config) as svc:
        fixed = {"name": "to_loopback", "condition": {"type": "Sensor"},
                 "action": {"type": "post", "parameters": {"url": receiver.url}}}
        answer = await svc.http.post("/rules", json=fixed)
        assert answer.status_code == 400
        assert "action/parameters/url" in answer.json()["error"] and "-allowedHosts" in answer.json()["error"]
        metadata = dict(fixed, name="to_metadata", action={"type": "post",
                                                           "parameters": {"url": "http://169.254.169.254/latest"}})
        answer = await svc.http.post("/rules", json=metadata)
        assert answer.status_code == 400 and "metadata" in answer.json()["error"]
        templated = {"name": "templated_url", "condition": {"type": "Probe"},
                     "action": {"type": "post", "parameters": {"url": "http://${target}/hook"}}}
        assert (await svc.http.post("/rules", json=templated)).status_code == 200
        target = receiver.url.split("//", 1)[1].split("/", 1)[0]
        ngsi.post("/v2/entities", json={"id": "P1", "type": "Probe", "target": {"value": target, "type": "Text"}})
        firings = await eventually(lambda: _firings(svc, "templated_url"))
        outcome = firings[0]["actions"][0]["outcome"]
        assert outcome["ok"] is False and "destination policy" in outcome["error"]
        assert receiver.requests == []


async def test_a_silent_device_fires_a_no_signal_rule(config: Config, ngsi: httpx.Client, clock: Clock) -> None:
    """"No signal for 1 minute": the test moves the service's clock instead of waiting."""
    rule = {"name": "silent_device", "condition": {"type": "Device", "nosignal": {
                "attribute": "temperature", "reportInterval": 60, "checkInterval": 1}},
            "action": {"type": "update",
                       "parameters": {"attributes": [{"name": "silent", "type": "Text", "value": "${lastTime}"}]}}}
    async with serve(config, clock) as svc:
        assert (await svc.http.post("/rules", json=rule)).status_code == 200
        for device in ("D1", "D2"):
            ngsi.post("/v2/entities", json={"id": device, "type": "Device", "temperature": {"value": 20, "type": "Number"}})

        def watched() -> int:
            states = svc.service.engine.state()["nosignal"]
            return sum(len(s["state"]["watches"]) for s in states if s["rule"] == "silent_device")

        await eventually(lambda: watched() == 2)
        await asyncio.sleep(0.3)  # the first check has run (nothing silent yet)
        clock.offset += 30
        ngsi.patch("/v2/entities/D2/attrs", json={"temperature": {"value": 20, "type": "Number"}})  # the same value
        await eventually(lambda: svc.service.engine.state()["nosignal"][0]["state"]["watches"][1]["last"]
                         > time.time() + 20)
        clock.offset += 50  # D1 silent for 80 s, D2 for 50 s
        await eventually(lambda: _attr(ngsi, "D1", "silent"), timeout=3)
        await asyncio.sleep(0.3)
        assert _attr(ngsi, "D2", "silent") is None
        firings = await _firings(svc, "silent_device")
        assert [f["entity"]["id"] for f in firings] == ["D1"] and firings[0]["reason"] == "nosignal"


async def test_a_command_action_reaches_the_device_through_the_broker(config: Config, ngsi: httpx.Client) -> None:
    """The broker forwards the command attribute to the IoT agent its registration names (a
    receiver here), as FIWARE does."""
    agent = Receiver()
    try:
        ngsi.post("/v2/entities", json={"id": "Valve1", "type": "Valve", "pressure": {"value": 1, "type": "Number"}})
        answer = ngsi.post("/v2/registrations", json={
            "dataProvided": {"entities": [{"id": "Valve1", "type": "Valve"}], "attrs": ["open"]},
            "provider": {"http": {"url": agent.base + "/v2"}}})
        assert answer.status_code == 201, answer.text
        rule = {"name": "open_valve", "condition": {"type": "Valve", "q": "pressure>5"},
                "action": {"type": "command", "parameters": {"command": "open", "value": "${pressure}"}}}
        async with serve(config) as svc:
            assert (await svc.http.post("/rules", json=rule)).status_code == 200
            ngsi.patch("/v2/entities/Valve1/attrs", json={"pressure": {"value": 7, "type": "Number"}})
            await eventually(lambda: agent.count())
            path, body = agent.received[0]
            assert path.startswith("/v2/op/update")
            (entity,) = body["entities"]
            assert (entity["id"], entity["open"]["type"], entity["open"]["value"]) == ("Valve1", "command", 7)
    finally:
        agent.close()


class FakeSMTP:
    """An SMTP server on loopback that accepts every message and keeps it."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 fake ESMTP\r\n")
        while line := await reader.readline():
            command = line.decode().strip().upper()
            if command == "DATA":
                writer.write(b"354 go on\r\n")
                data = await reader.readuntil(b"\r\n.\r\n")
                self.messages.append(data.decode())
                writer.write(b"250 kept\r\n")
            elif command == "QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()


async def test_an_email_action_goes_through_the_smtp_server(config: Config, ngsi: httpx.Client) -> None:
    async with FakeSMTP() as smtp:
        config = replace(config, smtp_host="127.0.0.1", smtp_port=smtp.port)
        rule = {"name": "mail_hot", "condition": {"type": "Oven", "q": "temperature>200"},
                "action": {"type": "email", "template": "Oven ${id} is at ${temperature} degrees",
                           "parameters": {"to": "ops@example.com", "from": "rules@example.com",
                                          "subject": "hot ${id}"}}}
        async with serve(config) as svc:
            assert (await svc.http.post("/rules", json=rule)).status_code == 200
            ngsi.post("/v2/entities", json={"id": "Oven1", "type": "Oven", "temperature": {"value": 250, "type": "Number"}})
            await eventually(lambda: smtp.messages)
            assert "Subject: hot Oven1" in smtp.messages[0] and "Oven Oven1 is at 250 degrees" in smtp.messages[0]
            assert "To: ops@example.com" in smtp.messages[0]


async def test_an_update_with_a_filter_reaches_every_matching_entity(config: Config, ngsi: httpx.Client) -> None:
    for lamp in ("L1", "L2"):
        ngsi.post("/v2/entities", json={"id": lamp, "type": "Lamp", "power": {"value": "on", "type": "Text"}})
    rule = {"name": "lights_out", "condition": {"type": "MainSwitch", "q": "state==off"},
            "action": {"type": "update", "parameters": {"filter": {"type": "Lamp"}, "actionType": "UPDATE",
                                                        "attributes": [{"name": "power", "type": "Text",
                                                                        "value": "${state}"}]}}}
    async with serve(config) as svc:
        assert (await svc.http.post("/rules", json=rule)).status_code == 200
        ngsi.post("/v2/entities", json={"id": "Main", "type": "MainSwitch", "state": {"value": "off", "type": "Text"}})
        await eventually(lambda: _attr(ngsi, "L1", "power") == "off" and _attr(ngsi, "L2", "power") == "off")
