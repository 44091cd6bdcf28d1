"""Several broker workers over one PostgreSQL database behave as one broker.

Two broker processes on one database are two workers whose requests can be aimed at
each: a subscription created, changed or deleted through one is used by the other within
a second (LISTEN/NOTIFY), notification counters add up, a throttled subscription fires
once across workers, concurrent updates of one entity lose nothing (row locks). Then
``-workers 2`` itself: two processes sharing one port, and SQLite refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT

PROPAGATION_LIMIT = 1.0  # seconds


class Receiver:
    """A loopback HTTP server that records the notifications it gets."""

    def __init__(self) -> None:
        received = self.received = []  # type: list[tuple[float, dict[str, Any]]]
        lock = self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    received.append((time.monotonic(), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def wait_for(self, n: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.count() >= n, f"{self.count()} notifications, expected {n}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def subscription(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "subject": {"entities": [{"id": "E1", "type": "T"}], "condition": {"attrs": ["n"]}},
        "notification": {"http": {"url": url}, "attrs": ["n"]},
        **extra,
    }


def set_n(client: httpx.Client, value: Any) -> None:
    r = client.patch("/v2/entities/E1/attrs", json={"n": {"value": value, "type": "Number"}})
    assert r.status_code == 204, r.text


@pytest.fixture
def two(pg_url: str, broker_process) -> tuple[httpx.Client, httpx.Client]:  # type: ignore[no-untyped-def]
    """Two workers (broker processes) on one database, and a client for each."""
    a = broker_process(["-dbURI", pg_url])
    b = broker_process(["-dbURI", pg_url])
    ca, cb = httpx.Client(base_url=a.url, timeout=10), httpx.Client(base_url=b.url, timeout=10)
    assert ca.post("/v2/entities", json={"id": "E1", "type": "T", "n": {"value": 0}}).status_code == 201
    yield ca, cb
    ca.close()
    cb.close()


def wait_until_used(client: httpx.Client, receiver: Receiver, since: float, expected: int) -> float:
    """Update through ``client`` until the receiver has ``expected`` notifications; the delay."""
    value = 1000
    while receiver.count() < expected:
        if time.monotonic() - since > PROPAGATION_LIMIT:
            pytest.fail(f"not used by the other worker within {PROPAGATION_LIMIT} s")
        value += 1
        set_n(client, value)
        time.sleep(0.01)
    return time.monotonic() - since


def test_subscription_changes_reach_the_other_worker(two, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    a, b = two
    start = time.monotonic()
    r = a.post("/v2/subscriptions", json=subscription(receiver.url))
    assert r.status_code == 201
    sub_id = r.headers["Location"].rsplit("/", 1)[1]
    delay = wait_until_used(b, receiver, start, 1)
    print(f"created on A, used by B after {delay * 1000:.0f} ms")
    assert b.get(f"/v2/subscriptions/{sub_id}").status_code == 200

    # A change made on B (no more condition on n: on m only) is seen by A.
    r = b.patch(f"/v2/subscriptions/{sub_id}", json={"subject": {"entities": [{"id": "E1", "type": "T"}], "condition": {"attrs": ["m"]}}})
    assert r.status_code == 204
    time.sleep(PROPAGATION_LIMIT)
    before = receiver.count()
    set_n(a, 5)
    r = a.post("/v2/entities/E1/attrs", json={"m": {"value": 1}})
    assert r.status_code == 204
    receiver.wait_for(before + 1)
    time.sleep(0.3)
    assert receiver.count() == before + 1  # only the change of m fired

    # Deleted on A: B stops using it.
    assert a.delete(f"/v2/subscriptions/{sub_id}").status_code == 204
    time.sleep(PROPAGATION_LIMIT)
    assert b.get(f"/v2/subscriptions/{sub_id}").status_code == 404
    before = receiver.count()
    b.post("/v2/entities/E1/attrs", json={"m": {"value": 2}})
    time.sleep(0.3)
    assert receiver.count() == before


def test_registrations_reach_the_other_worker(two) -> None:  # type: ignore[no-untyped-def]
    a, b = two
    reg = {
        "dataProvided": {"entities": [{"id": "R1", "type": "T"}], "attrs": ["x"]},
        "provider": {"http": {"url": "http://127.0.0.1:9/v2"}},
    }
    r = a.post("/v2/registrations", json=reg)
    assert r.status_code == 201, r.text
    reg_id = r.headers["Location"].rsplit("/", 1)[1]
    deadline = time.monotonic() + PROPAGATION_LIMIT
    while b.get(f"/v2/registrations/{reg_id}").status_code != 200:
        assert time.monotonic() < deadline, "registration not seen by the other worker within 1 s"
        time.sleep(0.02)
    assert b.delete(f"/v2/registrations/{reg_id}").status_code == 204
    deadline = time.monotonic() + PROPAGATION_LIMIT
    while a.get(f"/v2/registrations/{reg_id}").status_code != 404:
        assert time.monotonic() < deadline, "deletion not seen by the other worker within 1 s"
        time.sleep(0.02)


def test_counters_add_up_across_workers(two, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    a, b = two
    r = a.post("/v2/subscriptions", json=subscription(receiver.url))
    sub_id = r.headers["Location"].rsplit("/", 1)[1]
    time.sleep(PROPAGATION_LIMIT)
    n = 40
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda i: set_n(a if i % 2 else b, i + 1), range(n)))
    receiver.wait_for(n)
    time.sleep(1.5)  # counters are flushed every 0.5 s, then the other worker reloads
    for client in (a, b):
        notification = client.get(f"/v2/subscriptions/{sub_id}").json()["notification"]
        assert notification["timesSent"] == n
        assert notification["lastSuccessCode"] == 200


def test_throttled_subscription_fires_once_across_workers(two, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    a, b = two
    r = a.post("/v2/subscriptions", json=subscription(receiver.url, throttling=30))
    sub_id = r.headers["Location"].rsplit("/", 1)[1]
    time.sleep(PROPAGATION_LIMIT)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: set_n(a if i % 2 else b, i), range(40)))
    time.sleep(1.5)
    assert receiver.count() == 1
    for client in (a, b):
        assert client.get(f"/v2/subscriptions/{sub_id}").json()["notification"]["timesSent"] == 1


def test_concurrent_increments_through_both_workers_lose_nothing(two) -> None:  # type: ignore[no-untyped-def]
    a, b = two
    per_worker = 100

    def bump(client: httpx.Client) -> None:
        for _ in range(per_worker):
            r = client.patch("/v2/entities/E1/attrs", json={"n": {"value": {"$inc": 1}, "type": "Number"}})
            assert r.status_code == 204, r.text

    # Clients are not thread-safe for our purpose here: one per thread.
    clients = [httpx.Client(base_url=str(c.base_url), timeout=10) for c in (a, b, a, b)]
    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(bump, clients))
    for c in clients:
        c.close()
    assert a.get("/v2/entities/E1/attrs/n/value").json() == 4 * per_worker


def test_concurrent_appends_through_both_workers_lose_nothing(two) -> None:  # type: ignore[no-untyped-def]
    """Read-check: each request appends its own attribute; all must be there in the end."""
    a, b = two

    def append(i: int) -> None:
        client = a if i % 2 else b
        r = client.post("/v2/entities/E1/attrs", json={f"a{i}": {"value": i}})
        assert r.status_code == 204, r.text

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(append, range(200)))
    attrs = a.get("/v2/entities/E1", params={"options": "keyValues"}).json()
    assert {f"a{i}" for i in range(200)} <= set(attrs)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_workers_option_runs_n_processes_on_one_port(pg_url: str, broker_process, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    broker = broker_process(["-dbURI", pg_url, "--workers", "2"])
    assert broker.proc is not None
    deadline = time.monotonic() + 20
    while len(_children(broker.proc.pid)) < 2:  # the two workers (multiprocessing may add a tracker)
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # A new connection per request: the kernel spreads them over both workers.
    fresh = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=broker.url, timeout=10, limits=fresh) as client:
        assert client.post("/v2/entities", json={"id": "E1", "type": "T", "n": {"value": 0}}).status_code == 201
        assert client.post("/v2/subscriptions", json=subscription(receiver.url)).status_code == 201
        time.sleep(PROPAGATION_LIMIT)

        def bump(_: int) -> None:
            r = client.patch("/v2/entities/E1/attrs", json={"n": {"value": {"$inc": 1}, "type": "Number"}})
            assert r.status_code == 204, r.text

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(bump, range(100)))
        assert client.get("/v2/entities/E1/attrs/n/value").json() == 100
        receiver.wait_for(100)
    values = sorted(int(n["data"][0]["n"]["value"]) for _, n in receiver.received)
    assert values == list(range(1, 101))  # every state notified once


def test_workers_refused_with_sqlite(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "broker", "-workers", "2", "-dbURI", f"sqlite:///{tmp_path}/b.db"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
        env={k: v for k, v in os.environ.items() if not k.startswith(("ORION_", "WAZIUP_"))},
    )
    assert result.returncode != 0
    assert "PostgreSQL" in result.stderr and "-workers 2" in result.stderr
