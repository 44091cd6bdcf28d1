"""``waziup sources`` against a served app: the component's routes in uvicorn (a thread),
a real broker in-process, a loopback HTTP server as the source."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import uvicorn
import yaml
from starlette.applications import Starlette

from broker.app import create_app
from broker.config import Config as BrokerConfig
from ngsi.client import ASGITransport, NGSIClient
from orchestrator.appserver.config import Config
from orchestrator.sources.cli import main
from orchestrator.sources.component import SourcesComponent
from tests.conftest import free_port
from tests.orchestrator.sources.servers import served


@pytest.fixture
def orchestrator(tmp_path: Path) -> Iterator[str]:
    config = Config(data_dir=str(tmp_path), allowed_hosts=("127.0.0.1",))
    ngsi = NGSIClient("http://broker", transport=ASGITransport(create_app(BrokerConfig(db_uri="memory://")),
                                                                lifespan=True))
    component = SourcesComponent(config, broker=ngsi)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await component.open()
        yield
        await component.close()
        await ngsi.aclose()

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=component.routes(), lifespan=lifespan), host="127.0.0.1",
                                           port=port, log_level="warning", loop="asyncio"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_add_list_run_status_remove(orchestrator: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with served() as server:
        server.json("/obs", {"items": [{"id": "W1", "t": 3}]})
        definition = {"name": "weather", "kind": "http-json", "url": server.url + "/obs", "records": "items",
                      "interval": 3600, "entity": {"id": "id", "type": "'Weather'",
                                                   "attrs": {"t": {"value": "t", "type": "Number"}}}}
        file = tmp_path / "weather.yaml"
        file.write_text(yaml.safe_dump(definition))
        url = ("-url", orchestrator)

        assert run(*url, "add", str(file)) == (0, "source weather: starting\n")
        code, shown = run(*url, "run", "weather")
        assert code == 0 and json.loads(shown)["status"]["state"] == "ok"
        code, listed = run("list", *url)
        assert code == 0 and listed.startswith("weather  http-json  ok  written ")
        code, shown = run(*url, "status", "weather")
        assert code == 0 and json.loads(shown)["definition"]["url"] == server.url + "/obs"

        assert run(*url, "add", str(file))[0] == 1
        assert "409: a source weather exists already" in capsys.readouterr().err
        server.json("/obs", {"error": "gone"}, status=500)
        assert run(*url, "add", str(file), "-replace")[0] == 0
        code, shown = run(*url, "run", "weather")
        assert code == 1 and "answered 500" in json.loads(shown)["status"]["lastError"]
        code, listed = run(*url, "list")
        assert "error: GET " in listed

        assert run(*url, "remove", "weather") == (0, "source weather removed\n")
        assert run(*url, "remove", "weather")[0] == 1
        assert run(*url, "list") == (0, "no source\n")


def test_bad_files_and_unreachable_service(orchestrator: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nkind: ftp\n")
    assert run("-url", orchestrator, "add", str(bad))[0] == 1
    assert "waziup sources: 400: (document): 'entity' is a required property" in capsys.readouterr().err
    assert run("-url", orchestrator, "add", str(tmp_path / "missing.yaml"))[0] == 1
    assert "missing.yaml" in capsys.readouterr().err
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("a: [")
    assert run("-url", orchestrator, "add", str(garbage))[0] == 1
    assert "neither JSON nor YAML" in capsys.readouterr().err
    assert run("-url", f"http://127.0.0.1:{free_port()}", "list")[0] == 1
    assert "waziup sources: http://127.0.0.1:" in capsys.readouterr().err
