"""The IoT agent's moving parts against real processes: the context broker, Mosquitto
(the session ``mosquitto`` fixture of tests/conftest.py) and the agent itself, started as
``waziup iot-agent`` exactly as users start it. Tests talk to them over HTTP and MQTT only,
each test in its own ``fiware-service`` so that one module's stack serves all its tests.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self, TypeVar

import httpx
import paho.mqtt.client as paho
import pytest

from tests.conftest import BrokerProcess, ServiceProcess, free_port


class AgentStack(ServiceProcess):
    """The IoT agent as a process (``waziup iot-agent``), its registry in memory unless
    ``extra`` options say otherwise, on loopback ports, with a broker and an MQTT broker."""

    def __init__(self, broker: BrokerProcess, mqtt_host: str, mqtt_port: int, extra: list[str]) -> None:
        self.broker = broker
        self.mqtt_host, self.mqtt_port = mqtt_host, mqtt_port
        self.north_port, self.http_port = free_port(), free_port()
        self.north = f"http://127.0.0.1:{self.north_port}"
        self.south = f"http://127.0.0.1:{self.http_port}"
        self.extra = extra

    def start(self) -> Self:
        self.launch(
            [
                "-m", "orchestrator.cli", "iot-agent",
                "--registry-type", "memory",
                "--north-host", "127.0.0.1", "--north-port", str(self.north_port),
                "--http-host", "127.0.0.1", "--http-port", str(self.http_port),
                "--mqtt-host", self.mqtt_host, "--mqtt-port", str(self.mqtt_port),
                "--cb-url", self.broker.url, "--provider-url", self.north,
                "--allowed-destinations", "127.0.0.1,localhost",  # the tests' devices listen on loopback
                *self.extra,
            ],
            self.north + "/iot/about", "the IoT agent",
        )
        return self

    # -- helpers ---------------------------------------------------------------------------

    def provision(self, service: str, *, groups: list[dict[str, Any]] = (), devices: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
        headers = tenant(service)
        if groups:
            response = httpx.post(self.north + "/iot/groups", json={"groups": list(groups)}, headers=headers)
            assert response.status_code == 201, response.text
        if devices:
            response = httpx.post(self.north + "/iot/devices", json={"devices": list(devices)}, headers=headers)
            assert response.status_code == 201, response.text

    def robots(self, *devices: dict[str, Any], resource: str = "/iot/d", **group: Any) -> tuple[str, str]:
        """A new tenant with a group of ``Robot`` entities on ``resource`` (and ``group``'s
        other fields) under the apikey ``k<service>``, and ``devices`` under that key: the
        start of every command test. Returns (service, apikey)."""
        service = new_service()
        key = "k" + service
        self.provision(
            service,
            groups=[{"apikey": key, "resource": resource, "entity_type": "Robot", **group}],
            devices=[{**device, "apikey": key} for device in devices],
        )
        return service, key

    def entity(self, service: str, entity_id: str) -> dict[str, Any] | None:
        response = httpx.get(f"{self.broker.url}/v2/entities/{entity_id}", headers=tenant(service))
        return response.json() if response.status_code == 200 else None

    def wait_entity(self, service: str, entity_id: str, check: Callable[[dict[str, Any]], bool] = lambda e: True, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.entity(service, entity_id)
            if last is not None and check(last):
                return last
            time.sleep(0.05)
        raise AssertionError(f"entity {entity_id} not as expected within {timeout} s: {last}")


AgentStackT = TypeVar("AgentStackT", bound=AgentStack)


def tenant(service: str, path: str = "/") -> dict[str, str]:
    return {"fiware-service": service, "fiware-servicepath": path}


def new_service() -> str:
    return "t" + uuid.uuid4().hex[:12]


@contextlib.contextmanager
def running(agent_for: Callable[[BrokerProcess], AgentStackT], broker_data: Path) -> Iterator[AgentStackT]:
    """A multiservice broker keeping its files in ``broker_data``, and the agent
    ``agent_for`` makes for it; both started, both stopped at the end (each module's stack)."""
    broker = BrokerProcess(["-multiservice", "-data", str(broker_data)]).start()
    try:
        agent = agent_for(broker)
        try:
            yield agent.start()
        finally:
            agent.stop()
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def stack(mosquitto: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentStack]:
    polling = ["--polling-expiration", "5000", "--polling-daemon-frequency", "200"]
    with running(lambda broker: AgentStack(broker, mosquitto.host, mosquitto.port, polling),
                 tmp_path_factory.mktemp("broker")) as agent:
        yield agent


class MqttDevice:
    """A paho client playing a device: publish, and collect what the agent sends it."""

    def __init__(self, host: str, port: int) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="dev-" + uuid.uuid4().hex[:8])
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, bytes(m.payload)))
        self.client.connect(host, port)
        self.client.loop_start()

    def subscribe(self, topic: str) -> None:
        result, mid = self.client.subscribe(topic, qos=1)
        assert result == paho.MQTT_ERR_SUCCESS
        time.sleep(0.2)

    def publish(self, topic: str, payload: str | bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def wait(self, topic: str, timeout: float = 10) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for got_topic, payload in self.received:
                if got_topic == topic:
                    self.received.remove((got_topic, payload))
                    return payload
            time.sleep(0.02)
        raise AssertionError(f"nothing on {topic} within {timeout} s (got {self.received})")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def device(stack: AgentStack) -> Iterator[MqttDevice]:
    dev = MqttDevice(stack.mqtt_host, stack.mqtt_port)
    yield dev
    dev.close()
