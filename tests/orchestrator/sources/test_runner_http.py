"""Polled sources for real: a loopback HTTP server serving JSON and CSV, the real broker
(in-process), the runner writing entities, failing, backing off and recovering."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ngsi.client import NGSIClient
from ngsi.client.http11 import HTTPClient
from ngsi.destinations import Gate, Policy
from orchestrator.sources.connectors import Context
from orchestrator.sources.definition import parse_definition
from orchestrator.sources.runner import SourceRunner, Writer
from tests.conftest import free_port
from tests.orchestrator.sources.servers import broker, served

pytestmark = pytest.mark.anyio

ENTITY = {"id": "join(':', ['urn:ngsi-ld:WeatherObserved', station])", "type": "'WeatherObserved'",
          "attrs": {"temperature": {"value": "temp", "type": "Number", "unitCode": "CEL"},
                    "location": {"value": "[lon, lat]", "type": "geo:point"}},
          "timestamp": "observed_at"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextlib.asynccontextmanager
async def running(doc: dict[str, Any], allow: tuple[str, ...] = ("127.0.0.1",), files: Path | None = None,
                  environ: dict[str, str] | None = None) -> AsyncIterator[tuple[SourceRunner, NGSIClient]]:
    """A runner of ``doc`` (not started: tests call run_now, or start it) and the broker's client."""
    definition = parse_definition({"entity": ENTITY, "kind": "http-json", **doc})
    async with broker() as ngsi:
        gate = Gate(Policy(allow, setting="-allowedHosts"))
        http = HTTPClient(gate=gate)
        context = Context(gate, http, environ or {}, files)
        runner = SourceRunner(definition, Writer(ngsi, definition.tenant, definition.service_path), context,
                              rand=lambda: 0.999)
        try:
            yield runner, ngsi
        finally:
            await runner.stop()
            await http.aclose()


def obs(station: str, temp: Any, when: str = "2024-05-01T10:00:00Z") -> dict[str, Any]:
    return {"station": station, "temp": temp, "lon": 2.35, "lat": 48.85, "observed_at": when}


async def test_json_api_with_next_links_creates_then_updates_entities() -> None:
    with served() as server:
        server.json("/obs", {"observations": [obs("P1", 20.5), obs("P2", 18)], "links": {"next": "/obs2?page=2"}})
        server.json("/obs2", {"observations": [obs("P3", "17.25"), {"temp": 1}], "links": {}})
        doc = {"name": "weather", "url": server.url + "/obs", "records": "observations[]",
               "paging": {"next": "links.next"}, "auth": {"bearer_env": "TOKEN"}, "tenant": "paris",
               "servicePath": "/weather", "batch": 2, "headers": {"X-Trace": "t1"}}
        async with running(doc, environ={"TOKEN": "s3cret"}) as (runner, ngsi):
            status = await runner.run_now()
            assert status.state == "ok", status.last_error
            assert status.records_written == 3 and status.records_skipped == 1
            entities = await ngsi.query(type="WeatherObserved", service="paris", service_path="/weather")
            assert sorted(e["id"] for e in entities) == [f"urn:ngsi-ld:WeatherObserved:P{n}" for n in (1, 2, 3)]
            p1 = await ngsi.get_entity("urn:ngsi-ld:WeatherObserved:P1", service="paris", service_path="/weather")
            assert p1["temperature"]["value"] == 20.5 and p1["location"]["value"] == "48.85,2.35"
            assert p1["temperature"]["metadata"]["unitCode"]["value"] == "CEL"
            assert p1["TimeInstant"]["value"] == "2024-05-01T10:00:00.000Z"
            assert all(headers["authorization"] == "Bearer s3cret" and headers["x-trace"] == "t1"
                       for _, headers in server.hits)

            server.json("/obs", {"observations": [obs("P1", 25, "2024-05-01T11:00:00Z")], "links": {}})
            status = await runner.run_now()
            assert status.state == "ok" and status.records_written == 4
            p1 = await ngsi.get_entity("urn:ngsi-ld:WeatherObserved:P1", service="paris", service_path="/weather")
            assert p1["temperature"]["value"] == 25 and p1["TimeInstant"]["value"] == "2024-05-01T11:00:00.000Z"
            shown = await ngsi.get_entity("urn:waziup:source:weather", service="paris", service_path="/weather")
            assert shown["type"] == "DataSource" and shown["state"]["value"] == "ok"
            assert shown["recordsWritten"]["value"] == 4 and shown["recordsSkipped"]["value"] == 1


async def test_page_parameter_paging_stops_at_a_short_page() -> None:
    def page(query: dict[str, list[str]]) -> tuple[int, str, bytes]:
        n, size = int(query["page"][0]), int(query["per_page"][0])
        items = [obs(f"S{n}-{i}", i) for i in range(size if n < 3 else 1)]
        return 200, "application/json", json.dumps(items).encode()

    with served() as server:
        server.routes["/list"] = page
        doc = {"name": "paged", "url": server.url + "/list?x=1",
               "paging": {"param": "page", "size_param": "per_page", "size": 2, "max_pages": 10}}
        async with running(doc) as (runner, ngsi):
            status = await runner.run_now()
            assert status.state == "ok" and status.records_written == 5, status.last_error
            assert [path for path, _ in server.hits] == [f"/list?x=1&page={n}&per_page=2" for n in (1, 2, 3)]
            assert await ngsi.count(type="WeatherObserved") == 5


async def test_page_parameter_paging_stops_when_the_api_ignores_it() -> None:
    with served() as server:
        server.json("/same", [obs("A", 1), obs("B", 2)])
        async with running({"name": "same", "url": server.url + "/same", "paging": {"param": "p"}}) as (runner, _):
            status = await runner.run_now()
            assert status.state == "ok" and status.records_written == 2 and len(server.hits) == 2


CSV = "station,temp,lon,lat,observed_at\nC1,12.5,5.3,4.0,1714557600\nC2,n/a,5.3,4.0,1714557600\nbad id,1,2,3,4\n"


async def test_csv_from_a_url_and_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "obs.csv").write_text(CSV.replace("C1", "F1").replace("C2", "F2"))
    with served() as server:
        server.csv("/obs.csv", CSV)
        for url in (server.url + "/obs.csv", "obs.csv", f"file://{tmp_path}/obs.csv"):
            async with running({"name": "csv", "kind": "csv", "url": url}, files=tmp_path) as (runner, ngsi):
                status = await runner.run_now()
                assert status.state == "ok", status.last_error
                assert (status.records_written, status.records_skipped, status.values_dropped) == (2, 1, 1)
                first = "C1" if url.startswith("http") else "F1"
                one = await ngsi.get_entity(f"urn:ngsi-ld:WeatherObserved:{first}")
                assert one["temperature"]["value"] == 12.5 and one["location"]["value"] == "4,5.3"
                assert one["TimeInstant"]["value"] == "2024-05-01T10:00:00.000Z"


async def test_csv_files_outside_the_sources_directory_are_refused(tmp_path: Path) -> None:
    (tmp_path / "inside").mkdir()
    (tmp_path / "secret.csv").write_text(CSV)
    for url in ("../secret.csv", f"file://{tmp_path}/secret.csv", "/etc/passwd"):
        async with running({"name": "csv", "kind": "csv", "url": url}, files=tmp_path / "inside") as (runner, _):
            status = await runner.run_now()
            assert status.state == "failing" and "files are read from" in status.last_error


@pytest.mark.parametrize("failure", ["500", "bad-json", "unreachable", "missing-secret"])
async def test_a_failing_source_backs_off_and_recovers(failure: str) -> None:
    with served() as server:
        url = server.url + "/obs"
        if failure == "500":
            server.json("/obs", {"error": "boom"}, status=500)
        elif failure == "bad-json":
            server.routes["/obs"] = (200, "application/json", b"{not json")
        elif failure == "unreachable":
            url = f"http://127.0.0.1:{free_port()}/obs"
        doc = {"name": "flaky", "url": url, "interval": 3600, "backoff": {"initial": 0.05, "max": 0.2},
               **({"auth": {"bearer_env": "NOPE"}} if failure == "missing-secret" else {})}
        async with running(doc) as (runner, ngsi):
            runner.start()
            for _ in range(200):  # the interval is an hour: only the back-off brings runs this soon
                await asyncio.sleep(0.02)
                if runner.status.consecutive_failures >= 3:
                    break
            status = runner.status
            assert status.state == "failing" and status.consecutive_failures >= 3
            expected = {"500": "answered 500", "bad-json": "not JSON", "unreachable": "Could not connect",
                        "missing-secret": "NOPE"}[failure]
            assert expected in status.last_error
            assert 0.1 <= status.retry_in <= 0.2  # doubled from 0.05, capped at 0.2
            shown = await ngsi.get_entity("urn:waziup:source:flaky")
            assert shown["state"]["value"] == "failing" and shown["consecutiveFailures"]["value"] >= 3
            if failure in ("500", "bad-json"):
                server.json("/obs", [obs("R1", 1)])
                status = await runner.run_now(5)
                assert status.state == "ok" and status.consecutive_failures == 0 and status.records_written == 1
                assert status.next_run is not None and status.retry_in == 0


async def test_loopback_is_refused_without_allowed_hosts() -> None:
    with served() as server:
        server.json("/obs", [obs("L1", 1)])
        doc = {"name": "local", "url": server.url + "/obs"}
        async with running(doc, allow=()) as (runner, ngsi):
            status = await runner.run_now()
            assert status.state == "failing" and "refused by the destination policy" in status.last_error
            assert "-allowedHosts" in status.last_error and not server.hits
        async with running(doc, allow=(f"127.0.0.1:{server.port}",)) as (runner, ngsi):
            assert (await runner.run_now()).state == "ok"
            assert await ngsi.count(type="WeatherObserved") == 1


async def test_a_batch_the_broker_refuses_fails_the_run() -> None:
    with served() as server:
        server.json("/obs", [obs("B1", 1)])
        doc = {"name": "refused", "url": server.url + "/obs", "tenant": "t1"}
        async with running(doc) as (runner, ngsi):
            runner.writer = Writer(NGSIClient("http://broker", transport=ngsi.transport, service_path="/a"),
                                   "t1", "/not valid")
            status = await runner.run_now()
            assert status.state == "failing" and "the broker refused a batch: 400" in status.last_error
