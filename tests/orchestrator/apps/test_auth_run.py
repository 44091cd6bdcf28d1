"""``waziup run -auth`` as a user runs it, then ``waziup apps`` against its orchestrator:
examples/average-app is deployed with the administrator's token, gets an account of its
own from the identity manager, receives its subscription through the service's ingress and
writes its derived entity through the broker's PEP with its own token; undeploy removes
its process, subscription, account and role."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.apps.cli import main
from tests.conftest import ROOT, free_port, stop_process
from tests.run_platform import start_run

ADMIN_PASSWORD = "Adm1n-pass-for-tests"
NAMES = ("port", "northPort", "httpPort", "mqttPort", "idmPort", "historyPort", "rulesPort", "dashboardPort", "apiPort",
         "apiMqttPort", "appsPort")


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[dict[str, Any]]:
    ports = {name: free_port() for name in NAMES}
    options = ["-auth", "-host", "127.0.0.1", "-data", str(tmp_path)]
    for name, port in ports.items():
        options += [f"-{name}", str(port)]
    proc, _ = start_run(options, tmp_path, {"WAZIUP_ADMIN_PASSWORD": ADMIN_PASSWORD}, seconds=60)
    try:
        yield {**{name: f"http://127.0.0.1:{port}" for name, port in ports.items()}, "data": tmp_path}
    finally:
        stop_process(proc, timeout=20)


def cli(url: str, token: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(["-url", url, "-token", token, *argv], out=out, err=err), out.getvalue(), err.getvalue()


def test_average_app_on_an_authenticated_platform(platform: dict[str, Any]) -> None:
    state = json.loads((platform["data"] / "platform-auth.json").read_text())
    idm, broker, apps = platform["idmPort"], platform["port"], platform["appsPort"]
    token = httpx.post(idm + "/oauth2/token", auth=(state["app_id"], state["app_secret"]), data={
        "grant_type": "password", "username": "admin@localhost", "password": ADMIN_PASSWORD}).json()["access_token"]
    admin = {"Authorization": f"Bearer {token}"}

    assert cli(apps, "", "list")[0] == 1  # behind the PEP: no token, no answer
    code, out, err = cli(apps, token, "deploy", str(ROOT / "examples" / "average-app"))
    assert code == 0, out + err
    assert "issuing the app's credentials (identity manager)" in out

    httpx.post(broker + "/v2/op/update", headers=admin, json={"actionType": "append", "entities": [
        {"id": "room1", "type": "Room", "temperature": {"type": "Number", "value": 19}}]}).raise_for_status()
    deadline = time.monotonic() + 20
    while (found := httpx.get(broker + "/v2/entities/urn:waziup:average-app:room1", headers=admin)).status_code != 200:
        assert time.monotonic() < deadline, found.text
        time.sleep(0.2)
    code, out, _ = cli(apps, token, "logs", "average-app")
    assert "got a token" in out and "wrote urn:waziup:average-app:room1" in out  # with its own token

    login = httpx.post(idm + "/v1/auth/tokens", json={"name": "admin@localhost", "password": ADMIN_PASSWORD})
    keyrock = {"X-Auth-Token": login.headers["X-Subject-Token"]}

    def accounts() -> list[str]:
        return [u["username"] for u in httpx.get(idm + "/v1/users", headers=keyrock).json()["users"]]

    def clients() -> list[str]:  # the apps' own OAuth clients, each holding the app's role
        return [a["name"] for a in httpx.get(idm + "/v1/applications", headers=keyrock).json()["applications"]]

    assert "app-average-app" in accounts() and "app-average-app" in clients()
    assert cli(apps, token, "undeploy", "average-app")[0] == 0
    assert "app-average-app" not in accounts() and "app-average-app" not in clients()
    assert httpx.get(broker + "/v2/subscriptions", headers=admin).json() == []
