"""The erasure's plan (pure), its report when the audit trail is away (fail-open, but said),
and the apps' ``app.deployed``/``app.undeployed`` records, against a real in-process broker
and identity manager."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from broker.app import create_app as broker_app
from broker.config import Config as BrokerConfig
from ngsi.client import ASGITransport, NGSIClient
from ngsi.context import Identity, RequestContext
from orchestrator.appserver.config import Config
from orchestrator.apps.component import AppsComponent
from orchestrator.audit_client import AuditClient
from orchestrator.erasure import plan
from orchestrator.erasure.run import Eraser, Services
from security.idm.app import create_app as idm_app
from tests.conftest import free_port
from tests.security.idm.conftest import ADMIN_PASSWORD, Clock, make_config


def test_the_target_and_steps_of_a_provisioned_device() -> None:
    record = {"device_id": "d1", "entity_name": "Robot:d1", "entity_type": "Robot", "service": "farm",
              "service_path": "/f", "static_attributes": [{"name": "owner", "type": "Text", "value": "alice"}]}
    target = plan.target_of("d1", "farm", "/", record)
    assert target == plan.Target("d1", "farm", "/f", "Robot:d1", "Robot", True)
    assert [(s.name, s.service, s.method, s.path, s.params) for s in plan.steps(target)] == [
        ("provisioning", "agent", "DELETE", "/iot/devices/d1", ()),
        ("entity", "broker", "DELETE", "/v2/entities/Robot:d1", (("type", "Robot"),)),
        ("historyPoints", "history", "DELETE", "/v2/entities/Robot:d1", (("type", "Robot"),)),
    ]
    assert [s.name for s in plan.steps(target, keep_provisioning=True)] == ["entity", "historyPoints"]
    assert plan.record_owner(record) == "alice"
    unnamed = plan.target_of("d2", "farm", "/", {"device_id": "d2"})
    assert (unnamed.entity_id, unnamed.entity_type) == ("Thing:d2", "Thing")


def test_a_device_the_agent_does_not_know_is_its_entity() -> None:
    target = plan.target_of("W1", "waziup", "/", None, {"id": "W1", "type": "Device"})
    assert target == plan.Target("W1", "waziup", "/", "W1", "Device", False)
    assert [s.name for s in plan.steps(target)] == ["entity", "historyPoints"]
    assert plan.new_report(target)["deleted"] == {"provisioning": False, "pendingCommands": 0, "entity": False,
                                                  "historyPoints": "none"}


def test_pending_commands_and_owners_and_status() -> None:
    entity = {"id": "R", "type": "Robot", "ring_status": {"type": "commandStatus", "value": "PENDING"},
              "open_status": {"type": "commandStatus", "value": "DELIVERED"},
              "stop_status": {"type": "commandStatus", "value": "OK"}, "door_status": {"type": "Text", "value": "PENDING"}}
    assert plan.pending_commands(entity) == 2 and plan.pending_commands(None) == 0
    assert plan.entity_owner({"owner": {"type": "Text", "value": "bob"}}) == "bob"
    assert plan.entity_owner({"owner": "bob"}) == "bob" and plan.entity_owner({}) is None
    assert plan.owner_query("o'neil") == "owner=='oneil'"
    assert plan.status_of({"errors": []}) == 200 and plan.status_of({"errors": ["x"]}) == 502
    assert plan.status_of({"errors": [], "devices": [{"errors": ["y"]}]}) == 502


def test_an_unreachable_trail_is_said_in_the_report() -> None:
    async def work() -> dict[str, Any]:
        transport = ASGITransport(broker_app(BrokerConfig(db_uri="memory://", multiservice=True)), lifespan=True)
        await transport.start()
        broker = NGSIClient("http://broker", transport=transport)
        try:
            await broker.create_entity({"id": "W1", "type": "Device", "owner": {"type": "Text", "value": "a"}},
                                       service="waziup", service_path="/")
            audit = AuditClient(f"http://127.0.0.1:{free_port()}", "admin", "pw")
            report = await Eraser(Services(broker=broker, audit=audit)).erase_device("W1", "waziup", "/")
            try:
                await broker.get_entity("W1", service="waziup")
                raise AssertionError("the entity is still there")
            except Exception as exc:  # noqa: BLE001
                assert getattr(exc, "status", None) == 404
            return report
        finally:
            await broker.aclose()
            await transport.aclose()

    report = asyncio.run(work())
    assert report["deleted"]["entity"] is True and report["audit"] == "failed"
    assert report["notes"] == ["no history service configured"]
    assert len(report["errors"]) == 1 and report["errors"][0].startswith("audit: the erasure.device record was not")
    assert plan.status_of(report) == 502


class FakeBackend:
    """Only what the routes call; the apps' real back ends have their own tests."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def deploy(self, source: Any, progress: Any, label: Any, scope: Any) -> dict[str, Any]:
        return {"name": "average-app", "tenant": scope or "farm", "source": "x", "backend": "local",
                "state": "running"}

    async def status(self, name: str, scope: Any) -> dict[str, Any]:
        return {"name": name, "tenant": "farm"}

    async def undeploy(self, name: str, scope: Any) -> None: ...


def test_deploys_and_undeploys_are_in_the_trail(tmp_path: Path) -> None:
    apps_dir = tmp_path / "apps"
    apps_dir.mkdir()

    async def work() -> list[dict[str, Any]]:
        idm = idm_app(make_config(tmp_path / "idm"), clock=Clock(1_900_000_000.0), show=lambda _: None)
        idm_transport = ASGITransport(idm, lifespan=True)
        await idm_transport.start()
        config = Config(data_dir=str(tmp_path), idm_url="http://idm.test", admin_user="admin@test.com",
                        admin_password=ADMIN_PASSWORD, apps_dirs=(str(apps_dir),))
        component = AppsComponent(config, backend=FakeBackend())
        component.audit = AuditClient.from_config(config, transport=idm_transport)
        await component.open()
        app = Starlette(routes=component.routes())

        async def with_caller(scope: Any, receive: Any, send: Any) -> None:  # as the PEP leaves it
            if scope["type"] == "http":
                scope.setdefault("state", {})["ctx"] = RequestContext(identity=Identity(user_id="u-42"))
            await app(scope, receive, send)

        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=with_caller), base_url="http://o") as http:
                deployed = await http.post("/apps", json={"source": str(apps_dir)},
                                           headers={"Fiware-Service": "farm", "Accept": "application/x-ndjson"})
                assert json.loads(deployed.text.splitlines()[-1])["done"] is True
                assert (await http.delete("/apps/average-app")).status_code == 204
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=idm), base_url="http://idm.test") as http:
                login = await http.post("/v1/auth/tokens", json={"name": "admin@test.com", "password": ADMIN_PASSWORD})
                token = {"X-Auth-Token": login.headers["X-Subject-Token"]}
                records = [r for r in (await http.get("/audit", headers=token)).json()
                           if r["action"].startswith("app.")]
                assert (await http.get("/audit/verify", headers=token)).json()["ok"] is True
            return records
        finally:
            await component.close()
            await idm_transport.aclose()

    records = asyncio.run(work())
    assert [(r["action"], r["target"], r["tenant"], r["details"].get("actor")) for r in records] == [
        ("app.deployed", "average-app", "farm", "u-42"), ("app.undeployed", "average-app", "farm", "u-42")]
