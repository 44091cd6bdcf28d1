"""``/apps`` (``orchestrator/apps/component.py``) served by uvicorn on loopback, driven by
the CLI (``orchestrator/apps/cli.py``) as a user would: deploy examples/average-app with
its progress, list, status, logs (followed while the app works), restart, scale, undeploy;
and the JSON errors of bad requests."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette

from orchestrator.appserver.config import Config
from orchestrator.apps.cli import main
from orchestrator.apps.component import AppsComponent
from tests.conftest import BrokerProcess, free_port

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = str(ROOT / "examples" / "average-app")


@contextlib.contextmanager
def served(component: AppsComponent) -> Iterator[str]:
    """The component served by uvicorn on ``component.config.port``."""
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await component.open()
        yield
        await component.close()

    port = component.config.port
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=component.routes(), lifespan=lifespan), host="127.0.0.1",
                                          port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def cli(url: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["-url", url, *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_against_the_served_component(tmp_path: Path, broker_process: Callable[[list[str]], BrokerProcess]) -> None:
    broker = broker_process(["-dbURI", "memory://"]).url
    component = AppsComponent(Config(data_dir=str(tmp_path), broker_url=broker, port=free_port()))
    with served(component) as url:
        code, out, err = cli(url, "deploy", EXAMPLE)
        assert code == 0, err
        assert "build: creating the venv" in out and "average-app is running (endpoint http://127.0.0.1:" in out

        code, out, _ = cli(url, "list")
        assert code == 0 and "average-app" in out and "running" in out
        code, out, _ = cli(url, "status", "average-app")
        assert code == 0 and '"healthy": true' in out and EXAMPLE in out  # the upload's source is shown

        seen: list[str] = []
        follower = threading.Thread(target=follow, args=(url, seen), daemon=True)
        follower.start()
        time.sleep(0.5)
        httpx.post(broker + "/v2/op/update", json={"actionType": "append", "entities": [
            {"id": "r7", "type": "Room", "temperature": {"type": "Number", "value": 21.5}}]}).raise_for_status()
        follower.join(15)
        assert any("wrote urn:waziup:average-app:r7" in line for line in seen), seen

        sub = httpx.get(broker + "/v2/subscriptions").json()[0]  # through the service's ingress, with the app's key
        assert sub["notification"]["http"]["url"].startswith(url + "/ingress/average-app/")
        assert sub["notification"]["lastSuccessCode"] == 204
        wrong = sub["notification"]["http"]["url"].replace("/ingress/average-app/", "/ingress/average-app/x")
        assert httpx.post(wrong, json={"data": []}).status_code == 404
        ingress = sub["notification"]["http"]["url"]
        assert httpx.post(ingress, json={"data": []}).status_code == 204  # the right key: kept a moment (no store read)
        assert httpx.post(wrong, json={"data": []}).status_code == 404  # a wrong one is never kept

        code, out, _ = cli(url, "logs", "average-app", "-n", "5")
        assert code == 0 and len(out.splitlines()) == 5
        code, _, err = cli(url, "scale", "average-app", "2")
        assert code == 1 and "only on Kubernetes" in err
        code, out, _ = cli(url, "restart", "average-app")
        assert code == 0
        code, out, _ = cli(url, "undeploy", "average-app")
        assert code == 0 and "undeployed" in out
        assert httpx.post(ingress, json={"data": []}).status_code == 404  # undeploy forgets the kept endpoint at once
        code, _, err = cli(url, "status", "average-app")
        assert code == 1 and "NotFound" in err
        assert httpx.get(broker + "/v2/subscriptions").json() == []


def follow(url: str, seen: list[str]) -> None:
    """``GET /apps/average-app/logs?follow=true`` until the app writes its entity."""
    with httpx.stream("GET", url + "/apps/average-app/logs", params={"follow": "true", "tail": "0"},
                      timeout=httpx.Timeout(15)) as answer:
        for line in answer.iter_lines():
            seen.append(line)
            if "wrote urn:waziup" in line:
                return


def test_bad_requests_are_json_errors(tmp_path: Path) -> None:
    component = AppsComponent(Config(data_dir=str(tmp_path), broker_url="http://127.0.0.1:9", port=free_port()))
    with served(component) as url:
        cases = [
            httpx.post(url + "/apps", content=b"{", headers={"Content-Type": "application/json"}),
            httpx.post(url + "/apps", json={"src": "x"}),
            httpx.post(url + "/apps", content=b"x", headers={"Content-Type": "text/plain"}),
            httpx.get(url + "/apps/nothing"),
            httpx.delete(url + "/apps/nothing"),
            httpx.post(url + "/apps/nothing/restart"),
            httpx.post(url + "/apps/nothing/scale", json={"replicas": "two"}),
            httpx.get(url + "/apps/nothing/logs", params={"tail": "-1"}),
        ]
        assert [answer.status_code for answer in cases] == [400, 400, 415, 404, 404, 404, 400, 400]
        assert all(set(answer.json()) == {"error", "description"} for answer in cases)
        # a deploy that starts and fails: 200 with the progress, the last line the failure
        answer = httpx.post(url + "/apps", content=b"not a tarball", headers={"Content-Type": "application/gzip"})
        assert answer.status_code == 200
        assert "error: BadSource: not a tarball" in answer.text and answer.text.startswith("fetching")
        assert httpx.get(url + "/apps").json() == []
        bad = tmp_path / "bad-app"
        bad.mkdir()
        (bad / "waziup-app.yaml").write_text("name: bad-app\nruntime: cobol\nentry: x\n")
        code, out, err = cli(url, "deploy", str(bad))
        assert code == 1 and "error: BadSource: runtime: 'cobol' is not one of" in err and out.startswith("fetching")
        # a tenant's caller sees and acts on its tenant's apps only
        shell = tmp_path / "shell-app"
        shell.mkdir()
        (shell / "waziup-app.yaml").write_text("name: shell-app\nruntime: shell\nentry: exec sleep 60\n")
        code, out, err = cli(url, "-service", "farm1", "deploy", str(shell))
        assert code == 0, err
        assert [a["tenant"] for a in httpx.get(url + "/apps").json()] == ["farm1"]
        assert httpx.get(url + "/apps", headers={"Fiware-Service": "farm2"}).json() == []
        assert httpx.get(url + "/apps/shell-app", headers={"Fiware-Service": "farm2"}).status_code == 404
        assert httpx.delete(url + "/apps/shell-app", headers={"Fiware-Service": "farm2"}).status_code == 404
        (shell / "waziup-app.yaml").write_text("name: other\nruntime: shell\nentry: exec sleep 60\ntenant: farm3\n")
        code, _, err = cli(url, "-service", "farm1", "deploy", str(shell))
        assert code == 1 and "Forbidden" in err and "farm3" in err
        code, _, _ = cli(url, "-service", "farm1", "undeploy", "shell-app")
        assert code == 0

        code, _, err = cli("http://127.0.0.1:9", "list")
        assert code == 1 and "not reachable" in err


def test_a_path_of_the_orchestrators_host_only_from_its_apps_dirs(tmp_path: Path) -> None:
    """``{"source": "/a/path"}`` names a file of the orchestrator's host: refused (403) unless
    it lies under ``-appsDir``, links followed (a link out of it is refused too); uploads and
    URLs are not paths."""
    allowed = tmp_path / "apps"
    app = allowed / "shell-app"
    app.mkdir(parents=True)
    (app / "waziup-app.yaml").write_text("name: shell-app\nruntime: shell\nentry: exec sleep 60\n")
    (allowed / "escape").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    component = AppsComponent(Config(data_dir=str(tmp_path / "data"), broker_url="http://127.0.0.1:9",
                                     port=free_port(), apps_dirs=(str(allowed),)))
    with served(component) as url:
        for refused in ("/etc", str(tmp_path / "elsewhere"), str(allowed / "escape"), str(allowed / ".." / "data")):
            answer = httpx.post(url + "/apps", json={"source": refused})
            assert answer.status_code == 403 and answer.json()["error"] == "Forbidden", refused
        answer = httpx.post(url + "/apps", json={"source": str(app)})
        assert answer.status_code == 200 and "shell-app" in answer.text, answer.text
        assert httpx.delete(url + "/apps/shell-app").status_code in (200, 204)
