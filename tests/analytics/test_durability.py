"""An acknowledged notification survives ``kill -9`` of the history service, on SQLite
and PostgreSQL: every notification answered 200 before the kill, sent by concurrent
clients, is there after a restart; and the Waziup-Sequence cursor was committed with the
values (a redelivery after the restart stores nothing twice)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.analytics.conftest import HistoryProcess
from tests.hammer import writes_until_killed


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/history.db"
    return str(request.getfixturevalue("pg_url"))


def notification(eid: str, value: int) -> dict[str, object]:
    return {"subscriptionId": "s", "data": [{"id": eid, "type": "T", "n": {"type": "Integer", "value": value}}]}


def test_acknowledged_notifications_survive_kill_9(db: str) -> None:
    service = HistoryProcess(["-dbURI", db]).start()
    acknowledged: list[str] = []
    try:
        with httpx.Client(base_url=service.url, timeout=10) as client:
            sequenced = {"subscriptionId": "durable", "data": [
                {"id": f"S{i}", "type": "Seq", "n": i} for i in range(1, 4)]}
            answer = client.post("/v2/notify", json=sequenced, headers={"waziup-sequence": "1,2,3"})
            assert answer.status_code == 200

        def write(client: httpx.Client, i: int, eid: str) -> list[str] | None:
            answer = client.post("/v2/notify", json=notification(eid, i))
            return acknowledged if answer.status_code == 200 else None

        writes_until_killed(service.url, 4, write, lambda: len(acknowledged) >= 100, service.kill)
        assert len(acknowledged) >= 100
    finally:
        service.kill()

    service = HistoryProcess(["-dbURI", db]).start()
    try:
        with httpx.Client(base_url=service.url, timeout=30) as client:
            listed = client.get("/v2/entities", params={"type": "T", "limit": 10000})
            assert listed.status_code == 200
            stored = {e["entityId"] for e in listed.json()}
            assert set(acknowledged) <= stored, sorted(set(acknowledged) - stored)[:5]
            redelivered = {"subscriptionId": "durable", "data": [
                {"id": f"S{i}", "type": "Seq", "n": i * 10} for i in range(2, 5)]}
            assert client.post("/v2/notify", json=redelivered, headers={"waziup-sequence": "2,3,4"}).status_code == 200
            values = client.get("/v2/types/Seq/attrs/n/value").json()["values"]
            assert {e["entityId"]: e["values"] for e in values} == {"S1": [1], "S2": [2], "S3": [3], "S4": [40]}
    finally:
        service.stop()
