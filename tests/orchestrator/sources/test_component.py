"""``/sources`` of the orchestrator's service: the component's routes over a real store
(SQLite), a real broker (in-process) and a loopback HTTP server as the source."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.applications import Starlette

from ngsi.client import NGSIClient, NGSIClientError
from orchestrator.appserver.config import Config
from orchestrator.sources.component import SourcesComponent
from tests.orchestrator.sources.servers import broker, served

pytestmark = pytest.mark.anyio

ENTITY = {"id": "id", "type": "'Sensor'", "attrs": {"temperature": {"value": "t", "type": "Number"}}}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextlib.asynccontextmanager
async def service(config: Config, ngsi: NGSIClient | None) -> AsyncIterator[httpx.AsyncClient]:
    """The component's routes; ``ngsi`` None: the component makes its broker client from ``config``."""
    component = SourcesComponent(config, broker=ngsi)
    await component.open()
    app = Starlette(routes=component.routes())
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orch") as client:
            yield client
    finally:
        await component.close()


def source(url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "s1", "kind": "http-json", "url": url, "interval": 3600, "entity": ENTITY, **extra}


async def test_create_read_update_run_delete(tmp_path: Path) -> None:
    config = Config(data_dir=str(tmp_path), allowed_hosts=("127.0.0.1",), service="farm")
    with served() as server:
        server.json("/a", [{"id": "T1", "t": 20}, {"id": "T2", "t": "21"}])
        async with broker() as ngsi, service(config, ngsi) as api:
            answer = await api.post("/sources", content=yaml.safe_dump(source(server.url + "/a")),
                                    headers={"Content-Type": "application/yaml"})
            assert answer.status_code == 201, answer.text
            assert answer.headers["location"] == "/sources/s1"
            assert answer.json()["definition"]["url"] == server.url + "/a"

            shown = (await api.post("/sources/s1/run")).json()
            assert shown["status"]["state"] == "ok" and shown["status"]["recordsWritten"] >= 2
            assert (await ngsi.get_entity("T1", service="farm"))["temperature"]["value"] == 20
            status_entity = await ngsi.get_entity("urn:waziup:source:s1", service="farm")
            assert status_entity["state"]["value"] == "ok"

            listed = (await api.get("/sources")).json()
            assert [(s["name"], s["kind"], s["status"]["state"]) for s in listed] == [("s1", "http-json", "ok")]
            assert (await api.post("/sources", json=source(server.url + "/a"))).status_code == 409

            server.json("/b", [{"id": "T1", "t": 30}])
            answer = await api.put("/sources/s1", json=source(server.url + "/b"))
            assert answer.status_code == 200 and answer.json()["definition"]["url"].endswith("/b")
            assert (await api.post("/sources/s1/run")).json()["status"]["state"] == "ok"
            assert (await ngsi.get_entity("T1", service="farm"))["temperature"]["value"] == 30

            answer = await api.put("/sources/s2", json={k: v for k, v in source(server.url + "/b").items()
                                                        if k != "name"})
            assert answer.status_code == 201 and answer.json()["name"] == "s2"

            assert (await api.delete("/sources/s1")).status_code == 204
            assert (await api.get("/sources/s1")).json()["error"] == "NotFound"
            assert (await api.delete("/sources/s1")).status_code == 404
            with pytest.raises(NGSIClientError):
                await ngsi.get_entity("urn:waziup:source:s1", service="farm")
            assert await ngsi.get_entity("T1", service="farm")  # the entities stay


@pytest.mark.parametrize(("body", "field"), [
    (b"kind: csv\n", "(document)"),
    (b'{"name": "x", "kind": "http-json", "url": "http://h/", "entity": {"id": "id", "type": "a["}}', "entity.type"),
    (b"[1, 2]", ""),
    (b"\x00\xff", ""),
    (b"a: [", ""),
])
async def test_bad_documents_are_400_naming_the_field(tmp_path: Path, body: bytes, field: str) -> None:
    async with broker() as ngsi, service(Config(data_dir=str(tmp_path)), ngsi) as api:
        answer = await api.post("/sources", content=body)
        assert answer.status_code == 400
        assert answer.json()["error"] == "BadRequest" and answer.json()["description"].startswith(field)
        answer = await api.put("/sources/x", json={"name": "y", **source("http://h/")})
        assert answer.status_code == 400 and answer.json()["description"].startswith("name:")
        answer = await api.post("/sources", content=b"x" * (1024 * 1024 + 1))
        assert answer.status_code == 413
        assert (await api.post("/sources/none/run")).status_code == 404


async def test_a_failing_source_shows_in_the_api_and_as_an_entity(tmp_path: Path) -> None:
    config = Config(data_dir=str(tmp_path), allowed_hosts=("127.0.0.1",))
    with served() as server:
        server.json("/down", {"error": "down"}, status=500)
        async with broker() as ngsi, service(config, ngsi) as api:
            doc = source(server.url + "/down", backoff={"initial": 0.05, "max": 0.1})
            assert (await api.post("/sources", json=doc)).status_code == 201
            for _ in range(100):
                status = (await api.get("/sources/s1")).json()["status"]
                if status["consecutiveFailures"] >= 2:
                    break
                await asyncio.sleep(0.02)
            assert status["state"] == "failing" and "answered 500" in status["lastError"]
            assert status["consecutiveFailures"] >= 2 and 0 < status["retryIn"] <= 0.1
            shown = await ngsi.get_entity("urn:waziup:source:s1")
            assert shown["state"]["value"] == "failing" and "answered 500" in shown["lastError"]["value"]


async def test_loopback_sources_need_allowed_hosts(tmp_path: Path) -> None:
    with served() as server:
        server.json("/a", [{"id": "L1", "t": 1}])
        async with broker() as ngsi, service(Config(data_dir=str(tmp_path)), ngsi) as api:
            assert (await api.post("/sources", json=source(server.url + "/a"))).status_code == 201
            status = (await api.post("/sources/s1/run")).json()["status"]
            assert status["state"] == "failing" and "-allowedHosts" in status["lastError"]
            assert not server.hits


async def test_sources_survive_a_restart(tmp_path: Path) -> None:
    config = Config(data_dir=str(tmp_path), allowed_hosts=("127.0.0.1",))
    with served() as server:
        server.json("/a", [{"id": "P1", "t": 1}])
        async with broker() as ngsi:
            async with service(config, ngsi) as api:
                assert (await api.post("/sources", json=source(server.url + "/a"))).status_code == 201
            server.json("/a", [{"id": "P1", "t": 2}])
            async with service(config, ngsi) as api:
                assert [s["name"] for s in (await api.get("/sources")).json()] == ["s1"]
                assert (await api.post("/sources/s1/run")).json()["status"]["state"] == "ok"
                assert (await ngsi.get_entity("P1"))["temperature"]["value"] == 2


async def test_a_disabled_source_runs_only_when_asked(tmp_path: Path) -> None:
    config = Config(data_dir=str(tmp_path), allowed_hosts=("127.0.0.1",))
    with served() as server:
        server.json("/a", [{"id": "D1", "t": 1}])
        async with broker() as ngsi, service(config, ngsi) as api:
            answer = await api.post("/sources", json=source(server.url + "/a", enabled=False))
            assert answer.status_code == 201 and answer.json()["status"]["state"] == "stopped"
            await asyncio.sleep(0.1)
            assert not server.hits
            status = (await api.post("/sources/s1/run")).json()["status"]
            assert status["state"] == "ok" and status["recordsWritten"] == 1 and len(server.hits) == 1


async def test_done_when_against_a_broker_process(tmp_path: Path, broker_process: Any) -> None:
    """The issue's "done when": a connector polling a local JSON API creates and updates its
    entities in a real broker (a process, over HTTP), and a failing source is reported."""
    real = broker_process(["-dbURI", "memory://", "-multiservice"])
    config = Config(data_dir=str(tmp_path), allowed_hosts=("127.0.0.1",), service="city", broker_url=real.url)
    with served() as server:
        server.json("/now", {"data": [{"id": "Room1", "t": 20}, {"id": "Room2", "t": 21}]})
        async with NGSIClient(real.url, service="city") as ngsi, service(config, None) as api:
            doc = source(server.url + "/now", interval=1, records="data")
            assert (await api.post("/sources", json=doc)).status_code == 201
            failing = source(server.url + "/missing", name="broken", backoff={"initial": 0.05, "max": 0.1})
            assert (await api.post("/sources", json=failing)).status_code == 201

            async def value(entity_id: str) -> Any:
                with contextlib.suppress(NGSIClientError):
                    return (await ngsi.get_entity(entity_id))["temperature"]["value"]
                return None

            for _ in range(100):
                if await value("Room1") == 20 and await value("Room2") == 21:
                    break
                await asyncio.sleep(0.05)
            assert await value("Room1") == 20
            server.json("/now", {"data": [{"id": "Room1", "t": 25}]})
            for _ in range(100):  # the next poll, a second later
                if await value("Room1") == 25:
                    break
                await asyncio.sleep(0.05)
            assert await value("Room1") == 25 and await value("Room2") == 21

            status = (await api.get("/sources/broken")).json()["status"]
            assert status["state"] == "failing" and "answered 404" in status["lastError"]
            shown = await ngsi.get_entity("urn:waziup:source:broken")
            assert shown["state"]["value"] == "failing" and shown["consecutiveFailures"]["value"] >= 1
            assert (await ngsi.get_entity("urn:waziup:source:s1"))["state"]["value"] == "ok"
