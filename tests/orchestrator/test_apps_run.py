"""Issue 17's done-when on ``waziup run`` as ``make run`` starts it (no ``-auth``; the
identity manager runs for the WAZIUP API, so apps get accounts too), with the ``waziup``
command a user types: ``waziup apps deploy examples/average-app`` and
``examples/nodered-app`` build, start, receive the subscriptions they asked for (through
the orchestrator's ingress: the broker may call nothing else on loopback) and write their
derived entities; ``waziup apps logs -f`` follows a running app (a line written after it
started appears); ``undeploy`` removes the process, the subscriptions and the account."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, free_port, stop_process
from tests.run_platform import start_run

ADMIN_PASSWORD = "Adm1n-pass-for-tests"
NAMES = ("port", "northPort", "httpPort", "mqttPort", "idmPort", "historyPort", "apiPort", "apiMqttPort", "appsPort")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("apps-run")
    ports = {name: free_port() for name in NAMES}
    options = ["-host", "127.0.0.1", "-data", str(data), "-rulesPort", "0", "-dashboardPort", "0"]
    for name, port in ports.items():
        options += [f"-{name}", str(port)]
    proc, banner = start_run(options, data, {"WAZIUP_ADMIN_PASSWORD": ADMIN_PASSWORD}, seconds=90)
    try:
        yield {**{name: f"http://127.0.0.1:{port}" for name, port in ports.items()}, "data": data, "banner": banner}
    finally:
        stop_process(proc, timeout=20)


def waziup(url: str, *argv: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``waziup apps -url URL argv...`` as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAZIUP_")}
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", "apps", "-url", url, *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def eventually(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {seconds:g} s: {what}"
        time.sleep(0.2)


def entity(broker: str, entity_id: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{broker}/v2/entities/{entity_id}", params={"options": "keyValues"})
    return answer.json() if answer.status_code == 200 else None


def room(broker: str, room_id: str, temperature: float) -> None:
    httpx.post(broker + "/v2/op/update", json={"actionType": "append", "entities": [
        {"id": room_id, "type": "Room", "temperature": {"type": "Number", "value": temperature}}]}).raise_for_status()


def keyrock_users(platform: dict[str, Any]) -> list[str]:
    idm = platform["idmPort"]
    login = httpx.post(idm + "/v1/auth/tokens", json={"name": "admin@localhost", "password": ADMIN_PASSWORD})
    users = httpx.get(idm + "/v1/users", headers={"X-Auth-Token": login.headers["X-Subject-Token"]}).json()["users"]
    return [user["username"] for user in users]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_the_banner_names_the_apps_service(platform: dict[str, Any]) -> None:
    assert f"apps {platform['appsPort'].replace('127.0.0.1', 'localhost')}/apps" in platform["banner"]


def test_average_app_from_deploy_to_undeploy(platform: dict[str, Any]) -> None:
    apps, broker = platform["appsPort"], platform["port"]
    done = waziup(apps, "deploy", str(ROOT / "examples" / "average-app"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "build" in done.stdout.lower() and "average-app" in done.stdout  # progress shown while building

    room(broker, "room7", 18)
    room(broker, "room7", 22)
    average = eventually(lambda: (e := entity(broker, "urn:waziup:average-app:room7")) and e.get("count") == 2 and e,
                         30, "the average of the two values")
    assert average["type"] == "Average" and average["average"] == pytest.approx(20)

    status = waziup(apps, "status", "average-app")
    assert status.returncode == 0, status.stdout + status.stderr
    shown = json.loads(status.stdout)
    assert shown["state"] == "running" and shown["credentials"] is True and shown["healthy"] is True
    pid = shown["pid"]
    assert alive(pid)
    subscriptions = httpx.get(broker + "/v2/subscriptions").json()
    assert [s["description"] for s in subscriptions] == ["waziup-app:average-app"]
    assert "/ingress/average-app/" in subscriptions[0]["notification"]["http"]["url"]
    assert "app-average-app" in keyrock_users(platform)

    gone = waziup(apps, "undeploy", "average-app")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    eventually(lambda: not alive(pid), 15, "the app's process to end")
    assert httpx.get(broker + "/v2/subscriptions").json() == []
    assert "app-average-app" not in keyrock_users(platform)
    assert httpx.get(apps + "/apps/average-app").status_code == 404


def test_node_red_flow_reacts_and_its_logs_are_followed(platform: dict[str, Any]) -> None:
    apps, broker = platform["appsPort"], platform["port"]
    done = waziup(apps, "deploy", str(ROOT / "examples" / "nodered-app"))
    assert done.returncode == 0, done.stdout + done.stderr

    room(broker, "room9", 35)
    alert = eventually(lambda: entity(broker, "urn:waziup:temperature-alerts:room9"), 30, "the flow's alert")
    assert alert["active"] is True and alert["temperature"] == 35 and alert["room"] == "room9"
    endpoint = httpx.get(apps + "/apps/temperature-alerts").json()["endpoint"]
    assert httpx.get(endpoint + "/health").status_code == 200
    assert httpx.get(endpoint + "/flows").status_code == 404  # no editor, no admin API: it has no login

    env = {k: v for k, v in os.environ.items() if not k.startswith("WAZIUP_")}
    follower = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "apps", "-url", apps, "logs",
                                 "temperature-alerts", "-f"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert follower.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        time.sleep(1)  # following: what the flow logs from now on must come through
        room(broker, "room9", 20)
        deadline = time.monotonic() + 30
        seen = []
        while not any("room9 active=false" in line for line in seen):
            assert time.monotonic() < deadline, "".join(seen)
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                pass
    finally:
        stop_process(follower, timeout=5)  # type: ignore[arg-type]
    assert entity(broker, "urn:waziup:temperature-alerts:room9")["active"] is False  # type: ignore[index]

    gone = waziup(apps, "undeploy", "temperature-alerts")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert httpx.get(broker + "/v2/subscriptions").json() == []
    assert "app-temperature-alerts" not in keyrock_users(platform)
