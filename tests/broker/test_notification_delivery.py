"""Notifications under load, end to end: a real broker process and a real HTTP receiver.

1,000 updates against 10 subscriptions deliver every expected notification exactly once
(no loss, no duplicate), with the updated values, in update order per subscription and
entity, and the counters add up; a receiver that is down is counted as failures
(failsCounter, lastFailure, lastFailureReason), and past maxFailsLimit the subscription
turns inactive, as Orion does.
"""

from __future__ import annotations

import socket
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.broker.conftest import Receiver

ENTITIES = 10
UPDATES = 1000
SUBS = 10  # subscription i covers E(i) and E(i+1): 2 notifications per update


@pytest.fixture
def broker(broker_process: Any, tmp_path: Path) -> Iterator[httpx.Client]:
    process = broker_process(["-data", str(tmp_path)])
    with httpx.Client(base_url=process.url, timeout=10) as client:
        yield client


def create_sub(client: httpx.Client, entities: list[dict[str, str]], notification: dict[str, Any]) -> str:
    body = {"subject": {"entities": entities, "condition": {"attrs": ["n"]}}, "notification": notification}
    r = client.post("/v2/subscriptions", json=body)
    assert r.status_code == 201, r.text
    return r.headers["Location"].rsplit("/", 1)[1]


def test_thousand_updates_ten_subscriptions_no_loss(broker: httpx.Client, receiver: Receiver) -> None:
    for k in range(ENTITIES):
        r = broker.post("/v2/entities", json={"id": f"E{k}", "type": "T", "n": {"value": -1, "type": "Number"}})
        assert r.status_code == 201, r.text
    subs: dict[str, tuple[str, set[str]]] = {}  # receiver path -> (subscription id, entity ids it covers)
    for i in range(SUBS):
        path = f"/sub{i}"
        covered = {f"E{i}", f"E{(i + 1) % ENTITIES}"}
        fmt = "keyValues" if i % 2 else "normalized"
        sub_id = create_sub(broker, [{"id": e, "type": "T"} for e in sorted(covered)],
                            {"http": {"url": receiver.base + path}, "attrs": ["n"], "attrsFormat": fmt})
        subs[path] = (sub_id, covered)

    # Update u sets E(u % 10).n = u; each entity is written by one thread, so in order.
    def writer(entities: list[int]) -> None:
        with httpx.Client(base_url=str(broker.base_url), timeout=10) as client:
            for u in range(UPDATES):
                if u % ENTITIES in entities:
                    r = client.patch(f"/v2/entities/E{u % ENTITIES}/attrs", json={"n": {"value": u, "type": "Number"}})
                    assert r.status_code == 204, r.text

    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(writer, [[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]))
    expected = {
        path: {(f"E{u % ENTITIES}", u) for u in range(UPDATES) if f"E{u % ENTITIES}" in covered}
        for path, (_, covered) in subs.items()
    }
    total = sum(len(v) for v in expected.values())
    assert total == 2 * UPDATES
    # ~20 s on a busy 2-core machine; the margin is for a busier one, not the expectation.
    receiver.wait_for(total, timeout=45 - (time.monotonic() - started))
    time.sleep(0.3)  # anything extra would be a duplicate
    assert receiver.count() == total

    got: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for path, body in receiver.received:
        sub_id = subs[path][0]
        assert body["subscriptionId"] == sub_id
        [entity] = body["data"]
        if int(path[4:]) % 2:  # keyValues
            assert set(entity) == {"id", "type", "n"} and entity["type"] == "T"
            got[path].append((entity["id"], entity["n"]))
        else:
            assert entity["n"]["type"] == "Number" and entity["n"]["metadata"] == {}
            got[path].append((entity["id"], entity["n"]["value"]))
    for path, pairs in got.items():
        assert len(pairs) == len(set(pairs)), f"duplicates on {path}"
        assert set(pairs) == expected[path], f"wrong notifications on {path}"
        for entity_id in subs[path][1]:  # per subscription and entity: update order
            values = [v for e, v in pairs if e == entity_id]
            assert values == sorted(values), f"{path} got {entity_id} out of order"
    assert set(got) == set(subs)

    deadline = time.monotonic() + 5
    for path, (sub_id, _) in subs.items():
        while True:
            notification = broker.get(f"/v2/subscriptions/{sub_id}").json()["notification"]
            if notification.get("lastSuccess") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert notification["timesSent"] == len(expected[path])
        assert notification["lastSuccessCode"] == 200
        assert "failsCounter" not in notification and "lastFailure" not in notification


def closed_port() -> socket.socket:
    """A port bound but not listening: connections to it are refused. (A port merely free
    may become a client's own ephemeral port, which then connects to itself.)"""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def test_receiver_down_counts_failures(broker: httpx.Client) -> None:
    down = closed_port()
    url = f"http://127.0.0.1:{down.getsockname()[1]}/notify"
    plain = create_sub(broker, [{"id": "E1", "type": "T"}], {"http": {"url": url}})
    limited = create_sub(broker, [{"id": "E1", "type": "T"}], {"http": {"url": url}, "maxFailsLimit": 3})
    subs: dict[str, Any] = {}

    def settled(count: int) -> None:
        """Wait until failure number ``count`` is recorded (the limited one stops at 4)."""
        nonlocal subs
        deadline = time.monotonic() + 10
        while True:
            subs = {sub["id"]: sub for sub in broker.get("/v2/subscriptions").json()}
            done = (subs[plain]["notification"].get("failsCounter"), subs[limited]["notification"].get("failsCounter"))
            if done == (count, min(count, 4)) or time.monotonic() > deadline:
                return
            time.sleep(0.02)

    r = broker.post("/v2/entities", json={"id": "E1", "type": "T", "n": {"value": 0, "type": "Number"}})
    assert r.status_code == 201, r.text
    settled(1)
    for value in range(1, 5):  # one at a time: each outcome is known before the next trigger
        r = broker.patch("/v2/entities/E1/attrs", json={"n": {"value": value, "type": "Number"}})
        assert r.status_code == 204, r.text
        settled(value + 1)
    notification = subs[plain]["notification"]
    assert notification["timesSent"] == 5 and notification["failsCounter"] == 5
    assert notification["lastFailureReason"] == "Could not connect to server"
    assert "lastFailure" in notification and "lastSuccess" not in notification and "lastSuccessCode" not in notification
    assert subs[plain]["status"] == "active"  # no maxFailsLimit: failures never disable it
    # maxFailsLimit 3: the 4th failure in a row disables it, and nothing is sent after that.
    limited_sub = subs[limited]
    assert limited_sub["status"] == "inactive"
    assert limited_sub["notification"]["timesSent"] == 4 and limited_sub["notification"]["failsCounter"] == 4
    down.close()


def test_catch_all_under_bursts_waits_instead_of_dropping(broker_process: Any, tmp_path: Path) -> None:
    """A catch-all subscription, a receiver taking 10 ms per notification and batches of
    100 updates against a queue of 40 (-notificationMode threadpool:40:4): the writes wait
    for the notifications (back-pressure), none is dropped, each entity's arrive in order."""
    process = broker_process(["-data", str(tmp_path), "-notificationMode", "threadpool:40:4"])
    slow = Receiver(delay=0.01)
    try:
        with httpx.Client(base_url=process.url, timeout=30) as client:
            sub_id = create_sub(client, [{"idPattern": ".*", "type": "T"}], {"http": {"url": slow.base + "/all"}})
            for round_ in range(3):
                entities = [{"id": f"E{k}", "type": "T", "n": {"value": round_ * 100 + k, "type": "Number"}}
                            for k in range(100)]
                r = client.post("/v2/op/update", json={"actionType": "append", "entities": entities})
                assert r.status_code == 204, r.text
            slow.wait_for(300, timeout=30)
            time.sleep(0.3)
            assert slow.count() == 300
            per_entity: dict[str, list[int]] = defaultdict(list)
            for _, body in slow.received:
                [entity] = body["data"]
                per_entity[entity["id"]].append(entity["n"]["value"])
            assert per_entity == {f"E{k}": [k, 100 + k, 200 + k] for k in range(100)}
            deadline = time.monotonic() + 5
            while True:
                notification = client.get(f"/v2/subscriptions/{sub_id}").json()["notification"]
                if notification.get("lastSuccess") or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert notification["timesSent"] == 300
            assert "failsCounter" not in notification and "lastFailureReason" not in notification
    finally:
        slow.close()


def test_hanging_receiver_times_out_without_slowing_writes(broker: httpx.Client) -> None:
    """A receiver that accepts and never answers: each notification fails after the
    subscription's timeout with libcurl's "Timeout was reached", and writes go on at speed."""
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(64)  # connections complete in the kernel's backlog; nothing is ever read
    url = f"http://127.0.0.1:{hang.getsockname()[1]}/notify"
    try:
        sub_id = create_sub(broker, [{"idPattern": ".*", "type": "T"}], {"http": {"url": url, "timeout": 300}})
        started = time.monotonic()
        for value in range(40):
            r = broker.post("/v2/entities?options=upsert", json={"id": f"E{value}", "type": "T",
                                                                  "n": {"value": value, "type": "Number"}})
            assert r.status_code == 204, r.text
        assert time.monotonic() - started < 6  # 40 x 300 ms one after the other would be 12 s
        deadline = time.monotonic() + 10
        while True:
            notification = broker.get(f"/v2/subscriptions/{sub_id}").json()["notification"]
            if notification.get("failsCounter", 0) >= 40 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert notification["timesSent"] == 40 and notification["failsCounter"] == 40
        assert notification["lastFailureReason"] == "Timeout was reached"
    finally:
        hang.close()
