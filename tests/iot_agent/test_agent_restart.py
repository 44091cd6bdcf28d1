"""What the agent keeps across restarts, even a kill -9: commands acknowledged to the broker,
pre-processor windows, the ids of its subscriptions. The agent runs with its SQLite store
and is killed and started again as a process; the store itself is tested directly too."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from iot_agent.preprocess import PreprocessState, preprocess
from iot_agent.provisioning.state import StoredCommand, persisted_preprocess_state
from iot_agent.provisioning.store import MemoryProvisioningStore, SQLiteProvisioningStore
from tests.conftest import BrokerProcess

from .conftest import AgentStack, MqttDevice, new_service, running, tenant
from .test_commands import command, status, subscriptions


class DurableStack(AgentStack):
    """The agent with its SQLite store in ``data``."""

    def __init__(self, broker: BrokerProcess, mqtt_host: str, mqtt_port: int, data: Path) -> None:
        super().__init__(broker, mqtt_host, mqtt_port, ["--registry-type", "sqlite", "--data-dir", str(data)])
        self.db = data / "iot_agent.db"

    def stored_commands(self, device_id: str) -> list[str]:
        with contextlib.closing(sqlite3.connect(self.db)) as db:
            return [row[0] for row in db.execute("SELECT name FROM commands WHERE device_id = ? ORDER BY seq", (device_id,))]


@pytest.fixture(scope="module")
def durable(mosquitto: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DurableStack]:
    data = tmp_path_factory.mktemp("agent")
    with running(lambda broker: DurableStack(broker, mosquitto.host, mosquitto.port, data),
                 tmp_path_factory.mktemp("broker")) as agent:
        yield agent


def kill_and_restart(stack: AgentStack) -> None:
    assert stack.proc is not None
    stack.proc.kill()  # SIGKILL: nothing gets flushed
    stack.proc.wait()
    stack.start()


def values(entity: dict[str, Any]) -> dict[str, Any]:
    return {k: v["value"] for k, v in entity.items() if isinstance(v, dict)}


def test_poll_command_survives_a_kill(durable: DurableStack) -> None:
    service, key = durable.robots(
        {"device_id": "p1", "transport": "HTTP",
         "commands": [{"name": "open", "type": "command"}, {"name": "close", "type": "command"}]}
    )
    assert command(durable, service, "Robot:p1", "open", "now").status_code == 204
    assert command(durable, service, "Robot:p1", "close", "later").status_code == 204
    kill_and_restart(durable)  # at once: the broker had its 204, the device has not polled yet
    polled = httpx.get(durable.south + "/iot/d", params={"i": "p1", "k": key, "getCmd": "1"})
    assert polled.status_code == 200
    assert sorted(polled.text.split("#")) == ["p1@close|later", "p1@open|now"]
    durable.wait_entity(service, "Robot:p1", lambda e: status(e, "open") == "DELIVERED")

    # delivered but unanswered: still awaited after another restart, not sent twice
    kill_and_restart(durable)
    assert httpx.get(durable.south + "/iot/d", params={"i": "p1", "k": key, "getCmd": "1"}).text == ""
    answer = httpx.post(durable.south + "/iot/d", params={"i": "p1", "k": key}, content="p1@open|opened", headers={"content-type": "text/plain"})
    assert answer.status_code == 200, answer.text
    entity = durable.wait_entity(service, "Robot:p1", lambda e: status(e, "open") == "OK")
    assert entity["open_info"]["value"] == "opened"
    assert durable.stored_commands("p1") == ["close"]  # answered: gone from the store


def test_preprocess_windows_survive_a_kill(durable: AgentStack) -> None:
    service = new_service()
    key = "k" + service
    durable.provision(
        service,
        groups=[{
            "apikey": key, "resource": "/iot/d", "entity_type": "Thing",
            "preprocess": [
                {"step": "average", "attr": "t", "window": 3},
                {"step": "aggregate", "attr": "n", "count": 3, "functions": ["sum"]},
            ],
        }],
    )

    def send(data: str) -> None:
        response = httpx.get(durable.south + "/iot/d", params={"i": "w1", "k": key, "d": data})
        assert response.status_code == 200, response.text

    send("t|3|n|1")
    send("t|6|n|2")
    durable.wait_entity(service, "Thing:w1", lambda e: values(e).get("t") == 4.5)
    kill_and_restart(durable)
    send("t|9|n|4")
    # the window held 3 and 6 (9 without them); the aggregate closes with its third reading
    entity = durable.wait_entity(service, "Thing:w1", lambda e: values(e).get("t") == 6)
    assert values(entity)["n"] == 7


def test_subscriptions_removed_after_a_restart(durable: AgentStack) -> None:
    service = new_service()
    key = "k" + service
    durable.provision(
        service,
        devices=[{"device_id": "s1", "apikey": key, "entity_type": "Robot", "transport": "MQTT", "cmdMode": "notification",
                  "commands": [{"name": "turn", "type": "command"}]}],
    )
    assert len(subscriptions(durable, service)) == 1
    kill_and_restart(durable)
    assert httpx.delete(durable.north + "/iot/devices/s1", headers=tenant(service)).status_code == 204
    assert subscriptions(durable, service) == []


# -- the store, directly ----------------------------------------------------------------------


KEY = ("svc", "/", "dev", "k")


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_store_commands(tmp_path: Path, kind: str) -> None:
    async def run() -> None:
        store = MemoryProvisioningStore() if kind == "memory" else SQLiteProvisioningStore(str(tmp_path / "a.db"))
        await store.open()
        state = store.state
        first = StoredCommand(KEY, "open", {"a": [1, 2]}, 100.0, "http-poll")
        push = StoredCommand(KEY, "open", "x", 101.0, "mqtt")
        state.put_commands([first, push])
        newer = StoredCommand(KEY, "open", "again", 102.0, "http-poll")
        state.put_commands([newer])  # replaces the waiting poll command of that name, not the push
        assert [(c.value, c.how) for c in state.load_commands()] == [("x", "mqtt"), ("again", "http-poll")]
        state.set_delivered([newer.id])
        assert [c.delivered for c in state.load_commands()] == [False, True]
        state.drop_commands([push.id])
        assert [c.id for c in state.load_commands()] == [newer.id]
        state.forget_device(KEY)
        assert state.load_commands() == []
        state.add_link(KEY, "subscription", "s1")
        state.add_link(KEY, "registration", "r1")
        assert state.links(KEY) == [("subscription", "s1"), ("registration", "r1")]
        state.drop_links(KEY)
        assert state.links(KEY) == []
        await store.close()

    asyncio.run(run())


def test_store_sqlite_reopened(tmp_path: Path) -> None:
    async def run() -> None:
        path = str(tmp_path / "b.db")
        store = SQLiteProvisioningStore(path)
        await store.open()
        store.state.put_commands([StoredCommand(KEY, "open", 1, 100.0, "http-poll")])
        live = persisted_preprocess_state(store.state, KEY)
        preprocess([{"t": 2}, {"t": 4}], [{"step": "average", "attr": "t", "window": 5}], live, 0.0)
        await store.close()
        # API keys are MQTT passwords under -auth: the store is its owner's only, WAL included
        for name in ("b.db", "b.db-wal", "b.db-shm"):
            if (tmp_path / name).exists():
                assert (tmp_path / name).stat().st_mode & 0o077 == 0, name

        again = SQLiteProvisioningStore(path)
        await again.open()
        assert [(c.name, c.value, c.created) for c in again.state.load_commands()] == [("open", 1, 100.0)]
        loaded = persisted_preprocess_state(again.state, KEY)
        assert loaded.to_dict() == live.to_dict() and loaded.series == {"0:t": [2, 4]}
        assert preprocess([{"t": 6}], [{"step": "average", "attr": "t", "window": 5}], loaded, 0.0) == [{"t": 4}]
        await again.close()

    asyncio.run(run())


def test_on_change_only_when_the_state_changes() -> None:
    saved: list[dict[str, Any]] = []
    state = PreprocessState(on_change=lambda s: saved.append(s.to_dict()))
    preprocess([{"t": 5}], [{"step": "range", "attr": "t", "max": 10}], state, 0.0)
    assert saved == []  # a stateless step that rejected nothing
    preprocess([{"t": 50}], [{"step": "range", "attr": "t", "max": 10}], state, 0.0)
    assert saved[-1]["rejected"] == {"range": 1}
    preprocess([{"t": 1}], [{"step": "average", "attr": "t"}], state, 0.0)
    assert len(saved) == 2 and saved[-1]["series"] == {"0:t": [1]}
    assert "on_change" not in saved[-1]


def test_push_not_made_before_a_kill_is_made_on_restart(durable: DurableStack, mosquitto: Any) -> None:
    """The window between the broker's 204 and the MQTT publish is too short to hit with a
    kill, so the command is written to the store of a stopped agent, as that kill leaves it."""
    service, key = durable.robots(
        {"device_id": "m1", "protocol": "IoTA-UL", "transport": "MQTT", "commands": [{"name": "turn", "type": "command"}]}
    )
    device = MqttDevice(mosquitto.host, mosquitto.port)
    try:
        device.subscribe(f"/{key}/m1/cmd")
        assert durable.proc is not None
        durable.proc.kill()
        durable.proc.wait()

        async def store_command() -> None:
            store = SQLiteProvisioningStore(str(durable.db))
            await store.open()
            store.state.put_commands([StoredCommand((service, "/", "m1", key), "turn", "left", time.time(), "mqtt")])
            await store.close()

        asyncio.run(store_command())
        durable.start()
        assert device.wait(f"/{key}/m1/cmd") == b"m1@turn|left"
        durable.wait_entity(service, "Robot:m1", lambda e: status(e, "turn") == "PENDING")
        device.publish(f"/ul/{key}/m1/cmdexe", "m1@turn|ok")
        durable.wait_entity(service, "Robot:m1", lambda e: status(e, "turn") == "OK")
        assert durable.stored_commands("m1") == []
    finally:
        device.close()
