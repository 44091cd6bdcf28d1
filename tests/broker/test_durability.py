"""An acknowledged write survives ``kill -9`` of the broker (SQLite default store)."""

from __future__ import annotations

from pathlib import Path

import httpx


def test_entities_survive_kill_9(tmp_path: Path, broker_process) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path}/broker.db"
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
