"""Nothing acknowledged is lost between the broker and the history, whatever is killed.

A steady stream of updates of ``Room1.temperature`` goes to the broker (each a new value),
whose change feed (``-feedURL``, broker/feed.py) points at the history service. Midway the
history service is killed with SIGKILL and started again, then the broker is. At the end
every value the broker acknowledged is in the history exactly once; the only other values
allowed are writes whose answer was lost with the killed broker (applied or not, the client
could not know). On SQLite and on PostgreSQL (both services on the same server, as
``waziup run`` puts them).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from devtools.pg_cluster import Cluster
from tests.analytics.conftest import HistoryProcess
from tests.conftest import BrokerProcess

PHASE = 1.5  # seconds of updates between two kills


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(broker's -dbURI, history's -dbURI)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/broker.db", f"sqlite:///{tmp_path}/history.db"
    history = str(request.getfixturevalue("pg_url"))
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    cluster.psql("DROP DATABASE IF EXISTS feed_broker WITH (FORCE)")
    cluster.psql("CREATE DATABASE feed_broker")
    return cluster.url_of("feed_broker"), history


class Writer(threading.Thread):
    """Updates Room1.temperature with 1, 2, 3... one at a time; remembers which were
    acknowledged (204) and which got no answer (the broker was down or died)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.acknowledged: list[int] = []
        self.unanswered: list[int] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        value = 0
        while not self.stopping.is_set():
            value += 1
            body = {"temperature": {"type": "Number", "value": value}}
            try:
                with httpx.Client(base_url=self.url, timeout=5) as client:
                    answer = client.post("/v2/entities/Room1/attrs?type=Room", json=body)
            except httpx.TransportError:
                self.unanswered.append(value)
                time.sleep(0.05)
                continue
            assert answer.status_code == 204, answer.text
            self.acknowledged.append(value)


def _history_values(history: HistoryProcess) -> list[int]:
    answer = httpx.get(f"{history.url}/v2/entities/Room1/attrs/temperature", params={"limit": 10000}, timeout=10)
    if answer.status_code == 404:
        return []
    assert answer.status_code == 200, answer.text
    return [int(v) for v in answer.json()["values"]]


def test_every_acknowledged_update_reaches_the_history_once(databases: tuple[str, str]) -> None:
    broker_db, history_db = databases
    history = HistoryProcess(["-dbURI", history_db]).start()
    broker = BrokerProcess(["-dbURI", broker_db, "-feedURL", f"{history.url}/v2/notify"]).start()
    writer = Writer(broker.url)
    try:
        created = httpx.post(f"{broker.url}/v2/entities", json={"id": "Room1", "type": "Room"}, timeout=10)
        assert created.status_code == 201
        writer.start()
        time.sleep(PHASE)
        history.kill()
        time.sleep(PHASE)  # the broker acknowledges on; its outbox holds what the history misses
        history.start()
        time.sleep(PHASE)
        broker.kill()
        time.sleep(PHASE / 3)
        broker.start()
        time.sleep(PHASE)
        writer.stopping.set()
        writer.join(timeout=30)
        assert len(writer.acknowledged) > 20, "too few updates to tell anything"
        deadline = time.monotonic() + 60
        stored = _history_values(history)
        while not set(writer.acknowledged) <= set(stored) and time.monotonic() < deadline:
            time.sleep(0.2)
            stored = _history_values(history)
    finally:
        writer.stopping.set()
        broker.stop()
        history.stop()
    missing = sorted(set(writer.acknowledged) - set(stored))
    assert not missing, f"{len(missing)} acknowledged updates missing from the history: {missing[:20]}"
    assert len(stored) == len(set(stored)), "an update stored twice"
    assert set(stored) - set(writer.acknowledged) <= set(writer.unanswered)
    assert stored == sorted(stored), "the history's order is not the updates' order"
