"""An acknowledged write survives ``kill -9`` of the broker, on SQLite and PostgreSQL,
one request at a time and under concurrent load (every 2xx answer before the kill is
in the database after the restart), with one worker and with ``-workers 2``."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import BrokerProcess


class GroupBroker(BrokerProcess):
    """A broker in a process group of its own, so that ``kill -9`` reaches its workers too."""

    new_session = True
    startup_seconds = 120  # spawned workers import everything afresh: slow on a loaded machine


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/broker.db"
    return str(request.getfixturevalue("pg_url"))


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
        lock = threading.Lock()
        stop = threading.Event()

        def hammer(worker: int) -> None:
            with httpx.Client(base_url=broker.url, timeout=5) as client:
                i = 0
                while not stop.is_set():
                    i += 1
                    name = f"w{worker}x{i}"
                    try:
                        if i % 2:
                            r = client.post("/v2/entities", json={"id": name, "type": "T", "n": {"value": i}})
                            ok, target = r.status_code == 201, created
                        else:
                            r = client.post("/v2/entities/Shared/attrs", json={name: {"value": i}})
                            ok, target = r.status_code == 204, appended
                    except httpx.TransportError:
                        return  # the broker is gone: this write was never acknowledged
                    if ok:
                        with lock:
                            target.append(name)

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(hammer, w) for w in range(8)]
            # Killed in the middle of the load, once enough writes were acknowledged (how long
            # that takes depends on the machine's load: clients start slowly when it is high).
            time.sleep(1.5)
            deadline = time.monotonic() + 60
            while (len(created) <= 40 or len(appended) <= 40) and time.monotonic() < deadline:
                time.sleep(0.1)
            broker.kill()
            stop.set()
            for future in futures:
                future.result()
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
