"""Several broker workers over one database behave as one broker, on PostgreSQL and SQLite.

Two broker processes on one database are two workers whose requests can be aimed at
each: a subscription created, changed or deleted through one is used by the other (on
PostgreSQL within a second, LISTEN/NOTIFY; on SQLite by the very next request, which
reads the change log first), notification counters add up, a throttled subscription
fires once across workers, concurrent updates of one entity lose nothing (row locks,
SQLite's writer lock and transactions). Then ``-workers 2`` itself: two processes sharing
one port, and in-memory stores refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.broker.conftest import Receiver
from tests.conftest import ROOT, BrokerProcess

PROPAGATION_LIMIT = 1.0  # seconds


def subscription(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "subject": {"entities": [{"id": "E1", "type": "T"}], "condition": {"attrs": ["n"]}},
        "notification": {"http": {"url": url}, "attrs": ["n"]},
        **extra,
    }


def set_n(client: httpx.Client, value: Any) -> None:
    r = client.patch("/v2/entities/E1/attrs", json={"n": {"value": value, "type": "Number"}})
    assert r.status_code == 204, r.text


def worker_url(db: str) -> str:
    """What ``-workers N`` hands each worker (an SQLite file is opened ``shared``)."""
    from broker.server import shared_store_url

    return shared_store_url(db)


def propagation_limit(db: str) -> float:
    """SQLite workers catch up at the start of each request: nothing to wait for."""
    return 0.0 if db.startswith("sqlite") else PROPAGATION_LIMIT


@pytest.fixture
def two(db: str, broker_process) -> tuple[httpx.Client, httpx.Client]:  # type: ignore[no-untyped-def]
    """Two workers (broker processes) on one database, and a client for each."""
    a = broker_process(["-dbURI", worker_url(db)])
    b = broker_process(["-dbURI", worker_url(db)])
    ca, cb = httpx.Client(base_url=a.url, timeout=10), httpx.Client(base_url=b.url, timeout=10)
    assert ca.post("/v2/entities", json={"id": "E1", "type": "T", "n": {"value": 0}}).status_code == 201
    yield ca, cb
    ca.close()
    cb.close()


def wait_until_used(client: httpx.Client, receiver: Receiver, since: float, expected: int, limit: float) -> float:
    """Update through ``client`` until the receiver has ``expected`` notifications; the delay.
    With ``limit`` 0 the first update must do (the notification may take a moment)."""
    value = 1000
    while receiver.count() < expected:
        value += 1
        set_n(client, value)
        if limit == 0:
            receiver.wait_for(expected, timeout=5)
            break
        if time.monotonic() - since > limit:
            pytest.fail(f"not used by the other worker within {limit} s")
        time.sleep(0.01)
    return time.monotonic() - since


def test_subscription_changes_reach_the_other_worker(db: str, two, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    a, b = two
    limit = propagation_limit(db)
    start = time.monotonic()
    r = a.post("/v2/subscriptions", json=subscription(receiver.url))
    assert r.status_code == 201
    sub_id = r.headers["Location"].rsplit("/", 1)[1]
    delay = wait_until_used(b, receiver, start, 1, limit)
    print(f"created on A, used by B after {delay * 1000:.0f} ms")
    assert b.get(f"/v2/subscriptions/{sub_id}").status_code == 200

    # A change made on B (no more condition on n: on m only) is seen by A.
    r = b.patch(f"/v2/subscriptions/{sub_id}", json={"subject": {"entities": [{"id": "E1", "type": "T"}], "condition": {"attrs": ["m"]}}})
    assert r.status_code == 204
    time.sleep(limit)
    before = receiver.count()
    set_n(a, 5)
    r = a.post("/v2/entities/E1/attrs", json={"m": {"value": 1}})
    assert r.status_code == 204
    receiver.wait_for(before + 1)
    time.sleep(0.3)
    assert receiver.count() == before + 1  # only the change of m fired

    # Deleted on A: B stops using it.
    assert a.delete(f"/v2/subscriptions/{sub_id}").status_code == 204
    time.sleep(limit)
    assert b.get(f"/v2/subscriptions/{sub_id}").status_code == 404
    before = receiver.count()
    b.post("/v2/entities/E1/attrs", json={"m": {"value": 2}})
    time.sleep(0.3)
    assert receiver.count() == before


def test_registrations_reach_the_other_worker(db: str, two, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    a, b = two
    limit = propagation_limit(db)
    reg = {
        "dataProvided": {"entities": [{"id": "R1", "type": "T"}], "attrs": ["x"]},
        "provider": {"http": {"url": receiver.url.rsplit("/", 1)[0] + "/v2"}},
    }
    r = a.post("/v2/registrations", json=reg)
    assert r.status_code == 201, r.text
    reg_id = r.headers["Location"].rsplit("/", 1)[1]
    # B forwards a query of the registered entity to the provider (the receiver).
    deadline = time.monotonic() + limit
    while True:
        b.get("/v2/entities", params={"id": "R1", "type": "T"})
        if receiver.count() or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert receiver.count() >= 1, f"registration not used by the other worker within {limit} s"
    assert b.get(f"/v2/registrations/{reg_id}").status_code == 200
    assert b.delete(f"/v2/registrations/{reg_id}").status_code == 204
    deadline = time.monotonic() + limit
    while a.get(f"/v2/registrations/{reg_id}").status_code != 404:
        assert time.monotonic() < deadline, f"deletion not seen by the other worker within {limit} s"
        time.sleep(0.02)


def test_counters_add_up_across_workers(db: str, two, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    a, b = two
    r = a.post("/v2/subscriptions", json=subscription(receiver.url))
    sub_id = r.headers["Location"].rsplit("/", 1)[1]
    time.sleep(propagation_limit(db))
    n = 40
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda i: set_n(a if i % 2 else b, i + 1), range(n)))
    receiver.wait_for(n)
    time.sleep(1.5)  # counters are flushed every 0.5 s, then the other worker reloads
    for client in (a, b):
        notification = client.get(f"/v2/subscriptions/{sub_id}").json()["notification"]
        assert notification["timesSent"] == n
        assert notification["lastSuccessCode"] == 200


def test_throttled_subscription_fires_once_across_workers(db: str, two, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    a, b = two
    r = a.post("/v2/subscriptions", json=subscription(receiver.url, throttling=30))
    sub_id = r.headers["Location"].rsplit("/", 1)[1]
    time.sleep(propagation_limit(db))
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


class WorkersBroker(BrokerProcess):
    """``-workers N``: spawned workers import everything afresh, which on a loaded machine
    takes longer than the usual start-up wait."""

    startup_seconds = 120


@pytest.fixture
def workers_broker() -> Iterator[Any]:
    started: list[WorkersBroker] = []

    def factory(args: list[str]) -> WorkersBroker:
        broker = WorkersBroker(args)
        started.append(broker)
        return broker.start()

    yield factory
    for broker in started:
        broker.stop()


def test_workers_option_runs_n_processes_on_one_port(db: str, workers_broker, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    broker = workers_broker(["-dbURI", db, "--workers", "2"])
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
        time.sleep(propagation_limit(db))

        def bump(_: int) -> None:
            r = client.patch("/v2/entities/E1/attrs", json={"n": {"value": {"$inc": 1}, "type": "Number"}})
            assert r.status_code == 204, r.text

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(bump, range(100)))
        assert client.get("/v2/entities/E1/attrs/n/value").json() == 100
        receiver.wait_for(100)
    values = sorted(int(n["data"][0]["n"]["value"]) for _, n in receiver.received)
    assert values == list(range(1, 101))  # every state notified once


@pytest.mark.parametrize("url", ["memory://", "sqlite://"])
def test_workers_refused_without_a_shared_database(url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "broker", "-workers", "2", "-dbURI", url],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
        env={k: v for k, v in os.environ.items() if not k.startswith(("ORION_", "WAZIUP_"))},
    )
    assert result.returncode != 0
    assert "-workers 2 needs a database file or server" in result.stderr, result.stderr
