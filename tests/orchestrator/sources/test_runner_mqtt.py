"""An MQTT source for real: Mosquitto (the session fixture), the runner subscribed, the
messages written as entities in batches; refused without -allowedHosts."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ngsi.client import NGSIClient, NGSIClientError
from ngsi.client.http11 import HTTPClient
from ngsi.client.mqtt import MqttClient
from ngsi.destinations import Gate, Policy
from orchestrator.sources.connectors import Context
from orchestrator.sources.definition import parse_definition
from orchestrator.sources.runner import SourceRunner, Writer
from tests.conftest import MOSQUITTO_PASSWD, MOSQUITTO_USER, Mosquitto
from tests.orchestrator.sources.servers import broker

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextlib.asynccontextmanager
async def running(doc: dict[str, Any], allow: tuple[str, ...] = ("127.0.0.1",),
                  environ: dict[str, str] | None = None) -> AsyncIterator[tuple[SourceRunner, NGSIClient]]:
    definition = parse_definition(doc)
    async with broker() as ngsi:
        gate = Gate(Policy(allow, setting="-allowedHosts"))
        http = HTTPClient(gate=gate)
        runner = SourceRunner(definition, Writer(ngsi, definition.tenant, None), Context(gate, http, environ or {}),
                              rand=lambda: 0.999)
        runner.start()
        try:
            yield runner, ngsi
        finally:
            await runner.stop()
            await http.aclose()


def mqtt_source(mosquitto: Mosquitto, name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "mqtt",
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "topic": f"{name}/+/data", "flush": 0.1,
                     **extra.pop("mqtt", {})},
            "entity": {"id": "join(':', ['urn:ngsi-ld:Device', device])", "type": "'Device'",
                       "attrs": {"temperature": {"value": "t", "type": "Number"}}},
            **extra}


async def until(check: Callable[[], Any], seconds: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            result = await check() if asyncio.iscoroutinefunction(check) else check()
            if result:
                return result
        except NGSIClientError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {seconds} s")
        await asyncio.sleep(0.05)


async def test_messages_become_entities(mosquitto: Mosquitto) -> None:
    doc = mqtt_source(mosquitto, "farm", tenant="farm", batch=2)
    async with running(doc) as (runner, ngsi):
        await until(lambda: runner.status.state == "ok")
        async with MqttClient(mosquitto.host, mosquitto.port) as publisher:
            for n in range(5):
                await publisher.publish(f"farm/d{n}/data", json.dumps({"device": f"d{n}", "t": n}).encode(), qos=1)
            await publisher.publish("farm/x/data", b"not json", qos=1)
            await publisher.publish("farm/d0/data", json.dumps({"device": "d0", "t": "42.5"}).encode(), qos=1)

        async def written() -> bool:
            return (await ngsi.get_entity("urn:ngsi-ld:Device:d0", service="farm"))["temperature"]["value"] == 42.5
        await until(written)
        assert await ngsi.count(type="Device", service="farm") == 5
        await until(lambda: runner.status.records_written == 6 and runner.status.records_skipped == 1)
        shown = await ngsi.get_entity("urn:waziup:source:farm", service="farm")
        assert shown["kind"]["value"] == "mqtt" and shown["state"]["value"] == "ok"


async def test_records_expression_and_topic_and_credentials(mosquitto: Mosquitto) -> None:
    doc = mqtt_source(mosquitto, "multi", records="readings[]",
                      mqtt={"port": mosquitto.auth_port, "username_env": "MQ_USER", "password_env": "MQ_PASS"})
    doc["entity"]["attrs"]["topic"] = {"value": "_topic", "type": "Text"}
    environ = {"MQ_USER": MOSQUITTO_USER, "MQ_PASS": MOSQUITTO_PASSWD}
    async with running(doc, environ=environ) as (runner, ngsi):
        await until(lambda: runner.status.state == "ok")
        async with MqttClient(mosquitto.host, mosquitto.auth_port, username=MOSQUITTO_USER,
                              password=MOSQUITTO_PASSWD) as publisher:
            payload = {"readings": [{"device": "a", "t": 1}, {"device": "b", "t": 2}]}
            await publisher.publish("multi/g1/data", json.dumps(payload).encode(), qos=1)
        await until(lambda: runner.status.records_written == 2)
        b = await ngsi.get_entity("urn:ngsi-ld:Device:b")
        assert b["temperature"]["value"] == 2 and b["topic"]["value"] == "multi/g1/data"


async def test_bad_credentials_fail_and_back_off(mosquitto: Mosquitto) -> None:
    doc = mqtt_source(mosquitto, "denied", mqtt={"port": mosquitto.auth_port, "username_env": "U",
                                                 "password_env": "P"}, backoff={"initial": 0.05, "max": 0.1})
    async with running(doc, environ={"U": "nobody", "P": "wrong"}) as (runner, ngsi):
        await until(lambda: runner.status.consecutive_failures >= 2)
        assert runner.status.state == "failing" and "MQTT mqtt://127.0.0.1" in runner.status.last_error
        assert (await ngsi.get_entity("urn:waziup:source:denied"))["state"]["value"] == "failing"


async def test_an_mqtt_broker_on_loopback_needs_allowed_hosts(mosquitto: Mosquitto) -> None:
    async with running(mqtt_source(mosquitto, "local"), allow=()) as (runner, _):
        await until(lambda: runner.status.state == "failing")
        assert "refused by the destination policy" in runner.status.last_error
        assert "-allowedHosts" in runner.status.last_error


async def test_a_lost_connection_is_reported_then_recovered(tmp_path: Any) -> None:
    """A Mosquitto of the test's own, stopped and started again on the same port."""
    own = await asyncio.to_thread(Mosquitto(tmp_path).start)
    try:
        async with running(mqtt_source(own, "lost")) as (runner, ngsi):
            await until(lambda: runner.status.state == "ok")
            await asyncio.to_thread(own.stop)
            await until(lambda: runner.status.state == "failing")
            assert "connection lost" in runner.status.last_error
            await asyncio.to_thread(own.start)
            await until(lambda: runner.status.state == "ok", 15)
            async with MqttClient(own.host, own.port) as publisher:
                await publisher.publish("lost/d9/data", json.dumps({"device": "d9", "t": 9}).encode(), qos=1)
            await until(lambda: runner.status.records_written == 1)
            assert (await ngsi.get_entity("urn:ngsi-ld:Device:d9"))["temperature"]["value"] == 9
    finally:
        await asyncio.to_thread(own.stop)
