"""The credentials issued for an app (``orchestrator/apps/platform.py``) by the real identity
manager, in-process: a role scoped to the manifest, a service account holding it that gets
tokens with the password grant through the platform's client; all removed on revoke. And
the local back end injects them into the app's environment and revokes them on undeploy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ngsi.client import ASGITransport
from orchestrator.appserver.config import Config
from orchestrator.apps.local import LocalBackend
from orchestrator.apps.manifest import parse_manifest
from orchestrator.apps.platform import Identity, grants
from orchestrator.waziup_api.store import open_store
from security.authz.policy import parse_policy_set
from tests.security.idm.conftest import ADMIN_PASSWORD, Clock, make_config, running

pytestmark = pytest.mark.anyio

MANIFEST = parse_manifest({
    "name": "pump-ctl", "runtime": "shell", "entry": "sleep 60", "tenant": "farm7", "servicePath": "/field1",
    "needs": {"history": "read", "commands": [{"type": "Pump"}]},
})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_grants_follow_the_manifest() -> None:
    found = {grant["id"]: grant for grant in grants("pump-ctl", MANIFEST, "farm7")}
    assert found["app-pump-ctl-read"]["actions"] == ["read", "subscribe"]
    assert found["app-pump-ctl-read"]["servicePaths"] == ["/field1/#"]
    assert found["app-pump-ctl-own"]["entities"] == {"idPattern": "^urn:waziup:pump-ctl:"}
    assert found["app-pump-ctl-commands"] == {"id": "app-pump-ctl-commands", "actions": ["update"], "tenant": "farm7",
                                              "servicePaths": ["/field1/#"], "entities": {"types": ["Pump"]}}
    assert all(grant["tenant"] == "farm7" for grant in found.values())


async def test_issue_and_revoke(tmp_path: Path, anyio_backend: str) -> None:
    async with running(make_config(tmp_path), Clock()) as idm:
        app = await idm.application(name="waziup")
        identity = Identity("http://idm.test", "admin@test.com", ADMIN_PASSWORD, app["id"], app["secret"],
                            transport=ASGITransport(idm.app))
        issued = await identity.issue("pump-ctl", MANIFEST, "farm7")
        own = {"id": issued.app_id, "secret": issued.app_secret}  # the app's own OAuth client, not the platform's
        assert issued.app_id and issued.app_id != app["id"]
        token = await idm.password_token(own, issued.username, issued.password)
        assert token.status_code == 200, token.text
        # the role is the app's own application's, and so is what its token is judged by
        user = (await idm.http.get("/user", params={"access_token": token.json()["access_token"]})).json()
        assert user["app_id"] == issued.app_id and [r["id"] for r in user["roles"]] == [issued.role_id]
        roles = (await idm.http.get(f"/v1/applications/{issued.app_id}/users/{issued.user_id}/roles",
                                    headers=idm.admin())).json()
        assert [r["role_id"] for r in roles["role_user_assignments"]] == [issued.role_id]
        perms = (await idm.http.get(f"/v1/applications/{issued.app_id}/roles/{issued.role_id}/permissions",
                                    headers=idm.admin())).json()
        assert len(perms["role_permission_assignments"]) == len(grants("pump-ctl", MANIFEST, "farm7"))
        platform_roles = (await idm.http.get(f"/v1/applications/{app['id']}/roles", headers=idm.admin())).json()
        assert all(role["id"] != issued.role_id for role in platform_roles["roles"])  # nothing in the platform's

        # the PEP reads these: every grant is a valid policy of the app's role, none skipped
        export = (await idm.http.get("/v1/ngsi_policies", params={"app_id": issued.app_id},
                                     headers=idm.admin())).json()
        assert export["skipped"] == []
        mine = [p for p in export["policies"] if p["id"].startswith("app-pump-ctl-")]
        assert len(mine) == len(grants("pump-ctl", MANIFEST, "farm7"))
        assert all(p["subject"]["roles"] == [issued.role_id] for p in mine)
        parse_policy_set({"policies": export["policies"], "tenantBindings": export["tenantBindings"]})

        await identity.revoke(issued)
        assert (await idm.password_token(own, issued.username, issued.password)).status_code != 200
        apps_left = (await idm.http.get("/v1/applications", headers=idm.admin())).json()["applications"]
        assert all(a["id"] != issued.app_id for a in apps_left)  # the client, its roles and permissions gone


async def test_backend_injects_and_revokes(tmp_path: Path, anyio_backend: str) -> None:
    app_dir = tmp_path / "pump-ctl"
    app_dir.mkdir()
    (app_dir / "waziup-app.yaml").write_text(
        "name: pump-ctl\nruntime: shell\nentry: env > seen.env; exec sleep 60\ntenant: farm7\n")
    async with running(make_config(tmp_path / "idm"), Clock()) as idm:
        app = await idm.application(name="waziup")
        config = Config(data_dir=str(tmp_path / "data"), broker_url="http://127.0.0.1:9", idm_url="http://idm.test",
                        client_id=app["id"], client_secret=app["secret"], admin_user="admin@test.com",
                        admin_password=ADMIN_PASSWORD)
        identity = Identity(config.idm_url, config.admin_user, config.admin_password, app["id"], app["secret"],
                            transport=ASGITransport(idm.app))
        store = open_store(config.store_url)
        await store.open()
        backend = LocalBackend(config, store, identity=identity, environ={"PATH": "/usr/bin:/bin",
                                                                           "WAZIUP_ORCH_ADMIN_PASSWORD": "secret"})
        await backend.open()
        try:
            status = await backend.deploy(str(app_dir))
            assert status["credentials"] is True and status["tenant"] == "farm7"
            env = _env(tmp_path / "data" / "apps" / "pump-ctl" / "src" / "seen.env")
            assert env["WAZIUP_TOKEN_URL"] == "http://idm.test/oauth2/token"
            assert env["WAZIUP_CLIENT_ID"] != app["id"] and app["secret"] not in env.values()  # its own client
            own = {"id": env["WAZIUP_CLIENT_ID"], "secret": env["WAZIUP_CLIENT_SECRET"]}
            assert env["WAZIUP_TENANT"] == "farm7" and env["WAZIUP_ENTITY_PREFIX"] == "urn:waziup:pump-ctl:"
            assert "WAZIUP_ORCH_ADMIN_PASSWORD" not in env  # the orchestrator's secrets stay with it
            token = await idm.password_token(own, env["WAZIUP_USERNAME"], env["WAZIUP_PASSWORD"])
            assert token.status_code == 200
            await backend.undeploy("pump-ctl")
            assert (await idm.password_token(own, env["WAZIUP_USERNAME"], env["WAZIUP_PASSWORD"])).status_code != 200
            users = (await idm.http.get("/v1/users", headers=idm.admin())).json()["users"]
            assert not any(u.get("username") == "app-pump-ctl" for u in users)
        finally:
            await backend.close()
            await store.close()


def _env(path: Path) -> dict[str, Any]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}
