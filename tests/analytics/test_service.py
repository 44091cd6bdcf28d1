"""The service around the routes: the request seam runs the configured guards, and a
failing database answers 503 (notifications: nothing acknowledged) and fails /health."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from analytics.history.app import create_app
from analytics.history.config import Config
from analytics.history.model import Batch, Ingested
from analytics.history.store import StoreError
from analytics.history.store.sqlite import SQLiteStore
from ngsi.server.guards import Incoming, Verdict, admit, reject
from ngsi.server.reply import json_reply

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def members_only(incoming: Incoming) -> Verdict:
    if incoming.headers.get("x-member") != "yes":
        return reject(json_reply({"error": "Forbidden", "description": "members only"}, 403))
    return admit()


def test_guards_run_before_the_routes(tmp_path: Path) -> None:
    app = create_app(Config(db_uri=f"sqlite:///{tmp_path}/h.db"), guards=[members_only])
    with TestClient(app) as client:
        assert client.get("/version").status_code == 403
        assert client.get("/version", headers={"x-member": "yes"}).status_code == 200


class BrokenStore(SQLiteStore):
    async def ingest(self, batch: Batch) -> Ingested:
        raise StoreError("disk on fire")

    async def ping(self) -> None:
        raise StoreError("disk on fire")


def test_a_failing_database(tmp_path: Path) -> None:
    app = create_app(Config(), store=BrokenStore(f"sqlite:///{tmp_path}/h.db"))
    with TestClient(app) as client:
        answer = client.post("/v2/notify", json={"data": [{"id": "a", "type": "T", "x": 1}]})
        assert answer.status_code == 503 and answer.json()["error"] == "Service Unavailable"
        health = client.get("/health")
        assert health.status_code == 424 and health.json()["status"] == "fail"
        assert "disk on fire" in health.json()["details"]["database"]["output"]
