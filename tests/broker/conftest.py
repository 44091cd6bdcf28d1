"""Fixtures for every broker test: PostgreSQL (store contract, workers, durability) and a
notification receiver (end-to-end notification tests).

One throw-away cluster per test session (``devtools/pg_cluster.py``), its test database
emptied for each test. The cluster FAILS the tests that need it when PostgreSQL can't
start (never a skip): a machine without PostgreSQL must not pass the suite silently.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from devtools.pg_cluster import Cluster
from tests.pg import session_cluster

_DATABASE = "waziup_test"
# What a PostgresStore creates; dropped before each test instead of a database per test,
# which costs seconds and ~10 MB each (PostGIS's spatial_ref_sys) on a busy machine.
_RESET = "DROP TABLE IF EXISTS entities, entity_changes, subscriptions, registrations, outbox, outbox_leases CASCADE; DROP FUNCTION IF EXISTS waziup_geom(text)"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A running cluster with a test database that has PostGIS when installed."""
    yield from session_cluster(_DATABASE, postgis=True)


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    """URL of the test database, emptied of what earlier tests stored."""
    pg_cluster.psql(_RESET, database=_DATABASE)
    return pg_cluster.url.rsplit("/", 1)[0] + "/" + _DATABASE


def empty_db(request: pytest.FixtureRequest, directory: Path) -> str:
    """The -dbURI of an empty database of the kind ``request.param`` names: an SQLite file
    in ``directory``, or the PostgreSQL test database."""
    if request.param == "sqlite":
        return f"sqlite:///{directory}/broker.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database a test's brokers share (workers, restarts): an SQLite file, or PostgreSQL."""
    return empty_db(request, tmp_path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``pytest -n N --dist loadgroup`` the PostgreSQL tests share one worker, so one cluster."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = "pg_url" in getattr(item, "fixturenames", ()) or (
            callspec is not None and callspec.params.get("store") == "postgresql"
        )
        if on_postgres:
            item.add_marker(pytest.mark.xdist_group("postgresql"))


class Receiver:
    """A threaded keep-alive HTTP server on loopback recording (path, JSON body) of each POST:
    the notifications of a real broker process (or a query it forwards to a provider).
    ``url`` is a path on it fit for a subscription, ``base`` its root for paths of one's
    own; with ``delay`` each POST is answered that many seconds late (a slow receiver)."""

    def __init__(self, delay: float = 0.0) -> None:
        received: list[tuple[str, dict[str, Any]]] = []
        lock = threading.Lock()
        self.received, self.lock = received, lock

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the broker's pooled client expects

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if delay:
                    time.sleep(delay)
                with lock:
                    received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = self.base + "/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def wait_for(self, n: int, timeout: float = 10) -> None:
        """Until ``n`` POSTs have arrived; fails the test when they have not within ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.count() < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.count() >= n, f"{self.count()} notifications received, {n} expected"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class MqttListener:
    """A paho client subscribed to a topic filter on an MQTT broker, queueing (topic,
    payload, qos, retain) of each message: what any MQTT client would see of a notification."""

    def __init__(self, host: str, port: int, topic: str, qos: int = 2) -> None:
        self.messages: queue.Queue[tuple[str, bytes, int, bool]] = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        subscribed: queue.Queue[int] = queue.Queue()
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload), m.qos, bool(m.retain)))
        self.client.on_subscribe = lambda c, u, mid, codes, props: subscribed.put(mid)
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe(topic, qos=qos)
        subscribed.get(timeout=5)

    def next(self, timeout: float = 5) -> tuple[str, bytes, int, bool]:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no MQTT message within {timeout} s") from None

    def none(self, wait: float = 0.5) -> None:
        time.sleep(wait)
        assert self.messages.empty(), f"unexpected message {self.messages.get()}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
