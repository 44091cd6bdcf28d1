"""The local back end end to end (``orchestrator/apps/local.py``): examples/average-app
built, started and subscribed against a real broker process; it writes its derived entity;
a restart of the back end starts it again; undeploy removes its process and subscription.
Failures are explained (the build log's tail, the app's last lines)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.appserver.config import Config
from orchestrator.apps.local import AppError, LocalBackend
from orchestrator.waziup_api.store import open_store
from tests.conftest import BrokerProcess

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = str(ROOT / "examples" / "average-app")


async def until(check: Callable[[], Any], seconds: float = 40) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def room(broker: str, value: float) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.post(broker + "/v2/op/update", json={"actionType": "append", "entities": [
            {"id": "r1", "type": "Room", "temperature": {"type": "Number", "value": value}}]})
        assert answer.status_code == 204


async def average(broker: str, count: int) -> dict[str, Any] | None:
    async with httpx.AsyncClient() as client:
        answer = await client.get(broker + "/v2/entities/urn:waziup:average-app:r1", params={"options": "keyValues"})
    if answer.status_code != 200:
        return None
    doc: dict[str, Any] = answer.json()
    return doc if doc["count"] == count else None


async def subscriptions(broker: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        found: list[dict[str, Any]] = (await client.get(broker + "/v2/subscriptions")).json()
    return [sub for sub in found if sub.get("description") == "waziup-app:average-app"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_deploy_notify_restart_undeploy(tmp_path: Path, broker_process: Callable[[list[str]], BrokerProcess]) -> None:
    broker = broker_process(["-dbURI", "memory://"]).url
    config = Config(data_dir=str(tmp_path), broker_url=broker)

    async def work() -> None:
        store = open_store(config.store_url)
        await store.open()
        backend = LocalBackend(config, store, ingress=False)  # straight to the app (test_component: the ingress)
        await backend.open()
        try:
            await scenario(backend, store)
        finally:  # a failing test leaves no process behind
            await current[-1].close()
            await store.close()

    current: list[LocalBackend] = []

    async def scenario(backend: LocalBackend, store: Any) -> None:
        current.append(backend)
        progress: list[str] = []
        status = await backend.deploy(EXAMPLE, progress.append)
        assert progress[0].startswith("fetching") and "build: creating the venv" in progress
        assert progress[-1] == "deployed average-app"
        assert status["state"] == "running" and status["healthy"] is True and len(status["subscriptions"]) == 1
        for value in (20, 22, 27):
            await room(broker, value)
            await asyncio.sleep(0.2)
        doc = await until(lambda: average(broker, 3))
        assert doc["type"] == "Average" and doc["average"] == pytest.approx(23)
        lines = [line async for line in backend.logs("average-app", 50)]
        assert any("wrote urn:waziup:average-app:r1" in line for line in lines)
        first_pid = status["pid"]

        await backend.close()  # the platform stops ...
        assert not alive(first_pid)
        backend = LocalBackend(config, store, ingress=False)
        current.append(backend)
        await backend.open()  # ... and starts again: the app with it, not rebuilt
        again = await until(lambda: _healthy(backend))
        assert again["pid"] != first_pid and again["subscriptions"] == status["subscriptions"]
        await room(broker, 30)
        await until(lambda: average(broker, 1))  # a new process: its running average starts again
        assert len(await subscriptions(broker)) == 1

        await backend.undeploy("average-app")
        assert not alive(again["pid"])
        assert await subscriptions(broker) == []
        assert await backend.list() == [] and not (tmp_path / "apps" / "average-app").exists()
        with pytest.raises(AppError) as caught:
            await backend.status("average-app")
        assert caught.value.status == 404

    asyncio.run(asyncio.wait_for(work(), 50))


async def _healthy(backend: LocalBackend) -> dict[str, Any] | None:
    status = await backend.status("average-app")
    return status if status["healthy"] else None


def write_app(folder: Path, manifest: str, files: dict[str, str]) -> str:
    folder.mkdir()
    (folder / "waziup-app.yaml").write_text(manifest)
    for name, text in files.items():
        (folder / name).write_text(text)
    return str(folder)


def test_failures_are_explained(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    config = Config(data_dir=str(tmp_path / "data"), broker_url="http://127.0.0.1:9")
    build = write_app(tmp_path / "needs-pkg", "name: needs-pkg\nruntime: python\nentry: app.py\n",
                      {"app.py": "print('hi')\n", "requirements.txt": "surely-not-a-package-xyz==1.0\n"})
    crash = write_app(tmp_path / "crash", "name: crash\nruntime: shell\nentry: echo boom; exit 4\n", {})
    sick = write_app(tmp_path / "sick", "name: sick\nruntime: shell\nentry: sleep 60\n"
                     "health: {command: 'echo no database; exit 1', interval: 0.2, grace: 0}\n", {})

    async def work() -> None:
        store = open_store(config.store_url)
        await store.open()
        backend = LocalBackend(config, store, environ={**os.environ, "WAZIUP_APPS_WHEELS": str(wheels)},
                               backoff_base=5)
        await backend.open()
        try:
            await failures(backend)
        finally:
            await backend.close()
            await store.close()

    async def failures(backend: LocalBackend) -> None:
        with pytest.raises(AppError) as caught:
            await backend.deploy(build)
        assert caught.value.error == "BuildFailed" and "surely-not-a-package-xyz" in caught.value.description
        with pytest.raises(AppError) as caught:
            await backend.deploy(crash)
        assert caught.value.error == "StartFailed" and "boom" in caught.value.description
        with pytest.raises(AppError) as caught:
            await backend.deploy(sick)
        assert caught.value.error == "Unhealthy" and "no database" in caught.value.description
        with pytest.raises(AppError) as caught:
            await backend.deploy(str(tmp_path / "nowhere"))
        assert caught.value.status == 400 and "no such folder" in caught.value.description
        assert await backend.list() == [] and backend.running == {}

    asyncio.run(asyncio.wait_for(work(), 50))


def test_deploying_again_replaces_the_app(tmp_path: Path) -> None:
    config = Config(data_dir=str(tmp_path / "data"), broker_url="http://127.0.0.1:9")
    app = write_app(tmp_path / "again", "name: again\nruntime: shell\nentry: echo v1; exec sleep 60\n", {})

    async def work() -> None:
        store = open_store(config.store_url)
        await store.open()
        backend = LocalBackend(config, store)
        try:
            await replaced(backend)
        finally:
            await backend.close()
            await store.close()

    async def replaced(backend: LocalBackend) -> None:
        first = await backend.deploy(app)
        (tmp_path / "again" / "waziup-app.yaml").write_text("name: again\nruntime: shell\nentry: echo v2; exec sleep 60\n")
        progress: list[str] = []
        second = await backend.deploy(app, progress.append)
        assert "replacing the deployed again" in progress
        assert not alive(first["pid"]) and alive(second["pid"])
        assert [status["name"] for status in await backend.list()] == ["again"]
        assert any(line == "v2" for line in [line async for line in backend.logs("again", 10)])
        await backend.undeploy("again")
        assert not alive(second["pid"])

    asyncio.run(asyncio.wait_for(work(), 30))


def test_an_app_that_cannot_start_again_says_why(tmp_path: Path) -> None:
    config = Config(data_dir=str(tmp_path / "data"), broker_url="http://127.0.0.1:9")
    app = write_app(tmp_path / "fragile", "name: fragile\nruntime: python\nentry: app.py\n",
                    {"app.py": "import time\nprint('up', flush=True)\ntime.sleep(60)\n"})

    async def work() -> None:
        store = open_store(config.store_url)
        await store.open()
        backend = LocalBackend(config, store)
        try:
            await backend.deploy(app)
            await backend.close()
            (tmp_path / "data" / "apps" / "fragile" / "src" / "app.py").unlink()  # lost while the service was down
            backend = LocalBackend(config, store)
            await backend.open()  # the others start; this one is shown stopped
            assert (await backend.status("fragile"))["state"] == "stopped"
            with pytest.raises(AppError) as caught:
                await backend.restart("fragile")
            assert caught.value.status == 503 and "app.py is not a file" in caught.value.description
            await backend.undeploy("fragile")
            assert await backend.list() == []
        finally:
            await backend.close()
            await store.close()

    asyncio.run(asyncio.wait_for(work(), 30))
