"""An acknowledged write survives ``kill -9`` of the broker, on SQLite and PostgreSQL,
one request at a time and under concurrent load (every 2xx answer before the kill is
in the database after the restart), with one worker and with ``-workers 2``; ``db`` (in
conftest.py) is an SQLite file or PostgreSQL."""

from __future__ import annotations

import httpx

from tests.conftest import BrokerProcess
from tests.hammer import writes_until_killed


class GroupBroker(BrokerProcess):
    """A broker in a process group of its own, so that ``kill -9`` reaches its workers too."""

    new_session = True
    startup_seconds = 120  # spawned workers import everything afresh: slow on a loaded machine


def test_entities_survive_kill_9(db: str, broker_process) -> None:  # type: ignore[no-untyped-def]
    broker = broker_process(["-dbURI", db])
    acknowledged = []
    with httpx.Client(base_url=broker.url) as client:
        for i in range(200):
            r = client.post("/v2/entities", json={"id": f"E{i}", "type": "T", "n": {"value": i}})
            assert r.status_code == 201
            acknowledged.append(f"E{i}")
        r = client.patch("/v2/entities/E7/attrs", json={"n": {"value": 700}})
        assert r.status_code == 204
    broker.kill()
    broker = broker_process(["-dbURI", db])
    with httpx.Client(base_url=broker.url) as client:
        seen = []
        for offset in range(0, 200, 100):
            r = client.get("/v2/entities", params={"limit": 100, "offset": offset, "options": "keyValues"})
            seen += [e["id"] for e in r.json()]
        assert seen == acknowledged
        assert client.get("/v2/entities/E7", params={"options": "keyValues"}).json()["n"] == 700


def test_writes_under_load_survive_kill_9(db: str) -> None:
    """Threads create entities and append attributes to one shared entity while the broker
    is killed; every write answered 2xx must be there after the restart."""
    _writes_under_load_survive_kill_9(db, workers=1)


def test_writes_under_load_survive_kill_9_two_workers(db: str) -> None:
    """The same with two workers sharing the SQLite file (writer lock, transactions) or
    the PostgreSQL database."""
    _writes_under_load_survive_kill_9(db, workers=2)


def _writes_under_load_survive_kill_9(db: str, workers: int) -> None:
    args = ["-dbURI", db, "-workers", str(workers)]
    broker = GroupBroker(args).start()
    try:
        with httpx.Client(base_url=broker.url, timeout=10) as client:
            assert client.post("/v2/entities", json={"id": "Shared", "type": "T"}).status_code == 201
        created: list[str] = []
        appended: list[str] = []

        def write(client: httpx.Client, i: int, name: str) -> list[str] | None:
            if i % 2:
                r = client.post("/v2/entities", json={"id": name, "type": "T", "n": {"value": i}})
                return created if r.status_code == 201 else None
            r = client.post("/v2/entities/Shared/attrs", json={name: {"value": i}})
            return appended if r.status_code == 204 else None

        # Killed in the middle of the load, once enough writes were acknowledged (how long
        # that takes depends on the machine's load: clients start slowly when it is high).
        writes_until_killed(broker.url, 8, write, lambda: len(created) > 40 and len(appended) > 40, broker.kill,
                            settle=1.5, poll=0.1)
        assert len(created) > 20 and len(appended) > 20, (len(created), len(appended))

        broker = GroupBroker(args).start()
        with httpx.Client(base_url=broker.url, timeout=10) as client:
            ids: set[str] = set()
            offset = 0
            while True:
                page = client.get("/v2/entities", params={"limit": 1000, "offset": offset, "attrs": "id"}).json()
                ids |= {e["id"] for e in page}
                if len(page) < 1000:
                    break
                offset += 1000
            assert set(created) <= ids
            shared = client.get("/v2/entities/Shared", params={"options": "keyValues"}).json()
            assert set(appended) <= set(shared)
        print(f"workers={workers} {db.split(':')[0]}: {len(created)} creations, {len(appended)} appends acknowledged, all present")
    finally:
        broker.kill()
