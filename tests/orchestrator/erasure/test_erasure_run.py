"""Erasure and consent on ``waziup run -auth`` as users run it (docs/lifecycle.md): a device
provisioned with a pending command, measured, seen at the broker and in the history, is
erased through ``waziup erase`` (the orchestrator's ``/erasure``, behind its PEP); then
its entity, its history, its provisioning and its command are gone and the identity
manager's trail holds an ``erasure.device`` record (the device's id pseudonymized) whose
chain verifies. Consent withdrawn: the data goes and new measures are dropped; given
back: they are stored again. An owner's erasure takes each of their devices."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.erasure.cli import consent_main, main as erase_main
from security.audit.store import DB_FILE, HEAD_FILE, KEY_FILE
from tests.conftest import ROOT, free_port, stop_process
from tests.run_platform import start_run

pytestmark = pytest.mark.xdist_group("erasure_run")  # one platform for the module's tests, which count its records
ADMIN_PASSWORD = "Adm1n-pass-for-tests"
TENANT = "farm"
NAMES = ("port", "northPort", "httpPort", "mqttPort", "idmPort", "historyPort", "rulesPort", "dashboardPort", "apiPort",
         "apiMqttPort", "appsPort")


class Platform:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.ports = {name: free_port() for name in NAMES}
        url = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        self.broker, self.north, self.south = url["port"], url["northPort"], url["httpPort"]
        self.idm, self.history, self.apps = url["idmPort"], url["historyPort"], url["appsPort"]
        self.proc: Any = None
        self.token = ""

    def start(self) -> Platform:
        options = ["-auth", "-host", "127.0.0.1", "-data", str(self.data)]
        for name, port in self.ports.items():
            options += [f"-{name}", str(port)]
        self.proc, _ = start_run(options, self.data, {"WAZIUP_ADMIN_PASSWORD": ADMIN_PASSWORD}, seconds=90)
        state = json.loads((self.data / "platform-auth.json").read_text())
        self.token = httpx.post(self.idm + "/oauth2/token", auth=(state["app_id"], state["app_secret"]), data={
            "grant_type": "password", "username": "admin@localhost", "password": ADMIN_PASSWORD,
        }).json()["access_token"]
        return self

    def headers(self, path: str = "/") -> dict[str, str]:
        return {"Fiware-Service": TENANT, "Fiware-ServicePath": path, "Authorization": f"Bearer {self.token}"}

    def keyrock(self) -> dict[str, str]:
        login = httpx.post(self.idm + "/v1/auth/tokens", json={"name": "admin@localhost", "password": ADMIN_PASSWORD})
        return {"X-Auth-Token": login.headers["X-Subject-Token"]}

    def entity(self, entity_id: str) -> httpx.Response:
        return httpx.get(f"{self.broker}/v2/entities/{entity_id}", headers=self.headers())

    def history_of(self, entity_id: str, attr: str = "temperature") -> httpx.Response:
        return httpx.get(f"{self.history}/v2/entities/{entity_id}/attrs/{attr}/value", headers=self.headers())

    def measure(self, device: str, text: str) -> None:
        answer = httpx.get(self.south + "/iot/d", params={"i": device, "k": "kfarm", "d": text})
        assert answer.status_code == 200, answer.text

    def provision(self, *devices: dict[str, Any]) -> None:
        answer = httpx.post(self.north + "/iot/devices", headers=self.headers(), json={"devices": list(devices)})
        assert answer.status_code == 201, answer.text

    def audit(self, action: str) -> list[dict[str, Any]]:
        answer = httpx.get(self.idm + "/audit", params={"action": action, "limit": "1000"}, headers=self.keyrock())
        assert answer.status_code == 200, answer.text
        return list(answer.json())

    def cli(self, main: Callable[..., int], *argv: str) -> tuple[int, dict[str, Any], str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(["-url", self.apps, "-token", self.token, "-service", TENANT, *argv], out=out, err=err)
        text = out.getvalue()
        return code, (json.loads(text) if text.strip() else {}), err.getvalue()


def until(check: Callable[[], Any], what: str, seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    running = Platform(tmp_path_factory.mktemp("erasure")).start()
    try:
        group = {"apikey": "kfarm", "resource": "/iot/d", "entity_type": "Robot", "autoprovision": False,
                 "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}]}
        created = httpx.post(running.north + "/iot/groups", headers=running.headers(), json={"groups": [group]})
        assert created.status_code == 201, created.text
        yield running
    finally:
        stop_process(running.proc, timeout=20)


def measured(platform: Platform, device: str, value: int) -> None:
    """A measure of ``device``, seen at the broker and in the history."""
    platform.measure(device, f"t|{value}")
    entity_id = f"Robot:{device}"
    until(lambda: platform.entity(entity_id).status_code == 200
          and platform.entity(entity_id).json()["temperature"]["value"] == value, f"{entity_id} at the broker")
    until(lambda: platform.history_of(entity_id).status_code == 200
          and value in platform.history_of(entity_id).json()["values"], f"{entity_id} in the history")


def test_a_device_with_a_pending_command_is_erased(platform: Platform) -> None:
    platform.provision({"device_id": "d1", "apikey": "kfarm", "commands": [{"name": "ring", "type": "command"}]})
    measured(platform, "d1", 21)
    until(lambda: httpx.get(platform.broker + "/v2/registrations", headers=platform.headers()).json(),
          "the command's registration")
    ring = httpx.patch(platform.broker + "/v2/entities/Robot:d1/attrs?type=Robot", headers=platform.headers(),
                       json={"ring": {"type": "command", "value": "now"}})
    assert ring.status_code == 204, ring.text
    until(lambda: platform.entity("Robot:d1").json().get("ring_status", {}).get("value") == "PENDING", "PENDING")

    code, report, err = platform.cli(erase_main, "device", "d1")
    assert code == 0, (report, err)
    assert report["device"] == "d1" and report["tenant"] == TENANT and report["servicePath"] == "/"
    assert report["entity"] == {"id": "Robot:d1", "type": "Robot"}
    assert report["deleted"] == {"provisioning": True, "pendingCommands": 1, "entity": True,
                                 "historyPoints": "deleted"}
    assert report["errors"] == [] and report["audit"] == "recorded" and report["pseudonymized"] is True

    assert platform.entity("Robot:d1").status_code == 404
    assert platform.history_of("Robot:d1").status_code == 404
    assert httpx.get(platform.north + "/iot/devices/d1", headers=platform.headers()).status_code == 404
    assert httpx.get(platform.broker + "/v2/registrations", headers=platform.headers()).json() == []
    # its command went with it: provisioned again, the device polls and gets nothing
    platform.provision({"device_id": "d1", "apikey": "kfarm", "commands": [{"name": "ring", "type": "command"}]})
    polled = httpx.get(platform.south + "/iot/d", params={"i": "d1", "k": "kfarm", "getCmd": "1"})
    assert polled.status_code == 200 and polled.text == "", polled.text
    httpx.delete(platform.north + "/iot/devices/d1", headers=platform.headers())

    records = platform.audit("erasure.device")
    assert len(records) == 1
    record = records[0]
    assert record["tenant"] == TENANT and record["target"] != "d1" and record["pseudonymized"]
    assert record["details"]["deleted"]["pendingCommands"] == 1
    assert '"d1"' not in json.dumps(record)  # the device's id is pseudonymized everywhere in it
    verify = httpx.get(platform.idm + "/audit/verify", headers=platform.keyrock()).json()
    assert verify["ok"] is True, verify
    tampered_erasure_is_found(platform.data, record["seq"])
    # erasing it again: nothing left, nothing failed
    code, again, _ = platform.cli(erase_main, "device", "d1")
    assert code == 0 and again["deleted"] == {"provisioning": False, "pendingCommands": 0, "entity": False,
                                             "historyPoints": "none"}


def tampered_erasure_is_found(data: Path, seq: int) -> None:
    """``waziup audit verify`` on a copy of the trail (the platform keeps running on its
    own) finds the erasure's record once someone edits it."""
    copy = data.parent / (data.name + "-audit-copy")
    copy.mkdir()
    for name in (HEAD_FILE, KEY_FILE):  # the head first: the records copied after are at least as many
        shutil.copy2(data / name, copy / name)
    source, target = sqlite3.connect(data / DB_FILE), sqlite3.connect(copy / DB_FILE)
    source.backup(target)
    source.close()
    verify = [str(Path(sys.executable).parent / "waziup"), "audit", "verify", "-data", str(copy)]
    intact = subprocess.run(verify, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert intact.returncode == 0 and intact.stdout.startswith("chain intact"), intact.stdout + intact.stderr
    target.executescript("DROP TRIGGER audit_no_delete; DROP TRIGGER audit_only_pseudonymize;"
                         f"UPDATE audit_records SET reason = 'nothing happened' WHERE seq = {seq}")
    target.close()
    broken = subprocess.run(verify, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1 and broken.stdout.startswith(f"chain BROKEN at record {seq} (altered)"), broken.stdout


def test_consent_withdrawn_then_given(platform: Platform) -> None:
    platform.provision({"device_id": "d2", "apikey": "kfarm"})
    measured(platform, "d2", 10)

    code, report, err = platform.cli(consent_main, "d2", "withdraw")
    assert code == 0, (report, err)
    assert report["consent"] is False and report["errors"] == [] and report["audit"] == "recorded"
    assert report["deleted"]["entity"] is True and report["deleted"]["historyPoints"] == "deleted"
    assert report["deleted"]["provisioning"] is False  # kept: the flag lives there
    device = httpx.get(platform.north + "/iot/devices/d2", headers=platform.headers())
    assert device.status_code == 200 and device.json()["consent"] is False
    assert platform.entity("Robot:d2").status_code == 404 and platform.history_of("Robot:d2").status_code == 404

    platform.measure("d2", "t|11")  # dropped by the agent: neither forwarded nor stored
    platform.provision({"device_id": "d2b", "apikey": "kfarm"})
    measured(platform, "d2b", 1)  # a measure sent after it went all the way
    assert platform.entity("Robot:d2").status_code == 404 and platform.history_of("Robot:d2").status_code == 404

    code, report, err = platform.cli(consent_main, "d2", "give")
    assert code == 0 and report["consent"] is True and report["errors"] == [], (report, err)
    measured(platform, "d2", 12)
    assert platform.history_of("Robot:d2").json()["values"] == [12]
    assert [r["target"] for r in platform.audit("consent.given")] == ["d2"]
    assert len(platform.audit("consent.withdrawn")) == 1


def test_an_owners_devices_are_erased(platform: Platform) -> None:
    platform.provision({"device_id": "d3", "apikey": "kfarm",
                        "static_attributes": [{"name": "owner", "type": "Text", "value": "alice"}]},
                       {"device_id": "d4", "apikey": "kfarm",
                        "static_attributes": [{"name": "owner", "type": "Text", "value": "bob"}]})
    measured(platform, "d3", 3)
    measured(platform, "d4", 4)
    for entity in ({"id": "W1", "type": "Device", "owner": "alice", "temperature": 1},  # WAZIUP devices
                   {"id": "W2", "type": "Device", "owner": "bob", "temperature": 2}):
        made = httpx.post(platform.broker + "/v2/entities?options=keyValues", headers=platform.headers(), json=entity)
        assert made.status_code == 201, made.text

    code, report, err = platform.cli(erase_main, "owner", "alice")
    assert code == 0, (report, err)
    assert sorted(d["device"] for d in report["devices"]) == ["W1", "d3"]
    assert all(d["errors"] == [] and d["deleted"]["entity"] for d in report["devices"])
    assert "not covered" in report["subscriptions"] and report["audit"] == "recorded"
    assert platform.entity("Robot:d3").status_code == 404 and platform.entity("W1").status_code == 404
    assert httpx.get(platform.north + "/iot/devices/d3", headers=platform.headers()).status_code == 404
    assert platform.entity("Robot:d4").status_code == 200 and platform.entity("W2").status_code == 200
    assert httpx.get(platform.north + "/iot/devices/d4", headers=platform.headers()).status_code == 200
    assert len(platform.audit("erasure.owner")) == 1
    assert httpx.get(platform.idm + "/audit/verify", headers=platform.keyrock()).json()["ok"] is True


def test_erasure_needs_a_token_and_the_tenants_admin(platform: Platform) -> None:
    platform.provision({"device_id": "d5", "apikey": "kfarm"})
    answer = httpx.post(platform.apps + "/erasure/devices/d5", headers={"Fiware-Service": TENANT})
    assert answer.status_code == 401
    assert httpx.get(platform.north + "/iot/devices/d5", headers=platform.headers()).status_code == 200
    bad = httpx.put(platform.apps + "/erasure/devices/d5/consent", headers=platform.headers(), json={"consent": "no"})
    assert bad.status_code == 400
