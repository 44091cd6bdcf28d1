"""The orchestrator's service as a real process (``python -m orchestrator.appserver``):
an app deployed through it with the CLI is started again when the service is; after a
``kill -9`` of the service, the app it left running is killed and replaced, not doubled;
its subscription keeps notifying it through the service's ingress."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.apps.cli import main
from tests.conftest import ROOT, BrokerProcess, free_port, stop_process, wait_until_answering

EXAMPLE = str(ROOT / "examples" / "average-app")


class Service:
    def __init__(self, data: Path, broker: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [sys.executable, "-m", "orchestrator.appserver", "-host", "127.0.0.1", "-port", str(self.port),
                     "-data", str(data), "-brokerURL", broker]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until_answering(self.proc, self.url + "/apps", "the orchestrator's service")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def service(tmp_path: Path, broker_process: Callable[[list[str]], BrokerProcess]) -> Iterator[tuple[Service, str]]:
    broker = broker_process(["-dbURI", "memory://"]).url
    the_service = Service(tmp_path / "data", broker)
    try:
        yield the_service, broker
    finally:
        stop_process(the_service.proc)
        for pid_file in (tmp_path / "data" / "apps").glob("*/app.pid"):  # never leave an app behind
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            except (OSError, ValueError):
                pass


def cli(url: str, *argv: str) -> int:
    return main(["-url", url, *argv], out=io.StringIO(), err=io.StringIO())


def status(url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        found: dict[str, Any] = httpx.get(url + "/apps/average-app").json()
        if found.get("healthy"):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.2)


def notified(broker: str, room: str) -> None:
    httpx.post(broker + "/v2/op/update", json={"actionType": "append", "entities": [
        {"id": room, "type": "Room", "temperature": {"type": "Number", "value": 5}}]}).raise_for_status()
    deadline = time.monotonic() + 15
    while httpx.get(broker + f"/v2/entities/urn:waziup:average-app:{room}").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_apps_outlive_restarts_of_the_service(service: tuple[Service, str]) -> None:
    svc, broker = service
    svc.start()
    assert cli(svc.url, "deploy", EXAMPLE) == 0
    first = status(svc.url)["pid"]
    notified(broker, "a")

    svc.proc.terminate()  # type: ignore[union-attr]  # a clean stop stops the app ...
    svc.proc.wait()  # type: ignore[union-attr]
    assert not alive(first)
    svc.start()  # ... and a start starts it again
    second = status(svc.url)["pid"]
    assert second != first
    notified(broker, "b")

    svc.kill()  # kill -9: the app is left running ...
    assert alive(second)
    svc.start()  # ... until the service starts again, which replaces it
    third = status(svc.url)["pid"]
    assert third != second and not alive(second)
    notified(broker, "c")
    assert len(httpx.get(broker + "/v2/subscriptions").json()) == 1

    assert cli(svc.url, "undeploy", "average-app") == 0
    assert not alive(third) and httpx.get(broker + "/v2/subscriptions").json() == []
