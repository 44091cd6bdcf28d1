"""The audit trail's write side in a real identity manager (SQLite, in-process over httpx):
``POST /audit/events`` and ``POST /audit/pseudonymize`` for the platform's other services,
and the events the identity manager records itself: tokens issued and revoked, roles,
permissions and their assignments, memberships and users."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from security.audit.log import AuditLog
from tests.security.idm.conftest import Clock, IdM, basic, make_config, running

pytestmark = pytest.mark.anyio


@pytest.fixture
async def idm(tmp_path: Path, anyio_backend: str) -> AsyncIterator[IdM]:
    async with running(make_config(tmp_path), Clock()) as the_idm:
        yield the_idm


def trail(idm: IdM) -> AuditLog:
    log: AuditLog = idm.app.state.audit
    return log


async def admin_id(idm: IdM) -> str:
    users = (await idm.http.get("/v1/users", headers=idm.admin())).json()["users"]
    return next(u["id"] for u in users if u["email"] == "admin@test.com")


async def events(idm: IdM, *prefixes: str) -> list[Any]:
    return [r for r in await trail(idm).query(limit=1000) if r.action.startswith(prefixes)]


async def verified(idm: IdM) -> bool:
    return bool((await idm.http.get("/audit/verify", headers=idm.admin())).json()["ok"])


# -- POST /audit/events ----------------------------------------------------------------------


async def test_a_service_posts_an_event(idm: IdM) -> None:
    me = await admin_id(idm)
    body = {"action": "request.denied", "target": "/v2/entities/urn:x", "tenant": "farm", "decision": "deny",
            "reason": "no role", "details": {"user": "bob", "method": "GET"}}
    r = await idm.http.post("/audit/events", headers=idm.admin(), json=body)
    assert r.status_code == 201, r.text
    record = r.json()
    assert {k: record[k] for k in ("actor", "actor_kind", "source", *body)} == {
        "actor": me, "actor_kind": "service", "source": "192.0.2.10", **body}
    assert record["seq"] >= 1 and len(record["hash"]) == 64 and record["pseudonymized"] is False
    listed = (await idm.http.get("/audit", headers=idm.admin(), params={"action": "request.denied"})).json()
    assert listed == [record]
    r = await idm.http.post("/audit/events", headers=idm.admin(), json={"action": "app.deployed", "actor_kind": "user"})
    assert r.status_code == 201 and r.json()["actor_kind"] == "user" and r.json()["details"] == {}
    assert await verified(idm)


@pytest.mark.parametrize("body", [
    {}, {"action": ""}, {"action": 3}, {"action": "x" * 129}, {"action": "export", "actor_kind": "robot"},
    {"action": "export", "details": ["a"]}, {"action": "export", "target": 7}, {"action": "export", "reason": "r" * 1025},
])
async def test_a_bad_event_is_400(idm: IdM, body: dict[str, Any]) -> None:
    r = await idm.http.post("/audit/events", headers=idm.admin(), json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == 400, r.text


async def test_only_admins_post(idm: IdM) -> None:
    assert (await idm.http.post("/audit/events", json={"action": "export"})).status_code == 401
    assert (await idm.http.post("/audit/pseudonymize", json={"names": ["x"]})).status_code == 401
    user = await idm.user("carol")
    token = {"X-Auth-Token": await idm.login(user["email"], "pa55word-long")}
    assert (await idm.http.post("/audit/events", headers=token, json={"action": "export"})).status_code == 403
    assert (await idm.http.post("/audit/pseudonymize", headers=token, json={"names": ["x"]})).status_code == 403
    assert [(r.actor, r.target) for r in await events(idm, "request.denied")] == [
        (user["id"], "/audit/events"), (user["id"], "/audit/pseudonymize")]
    assert not await events(idm, "export")


async def test_a_lost_event_is_503(idm: IdM, monkeypatch: pytest.MonkeyPatch) -> None:
    async def lost(**_: Any) -> None:
        return None

    monkeypatch.setattr(trail(idm), "record", lost)
    r = await idm.http.post("/audit/events", headers=idm.admin(), json={"action": "export"})
    assert r.status_code == 503


# -- POST /audit/pseudonymize ----------------------------------------------------------------


async def test_pseudonymizing_a_user_and_a_device(idm: IdM, tmp_path: Path) -> None:
    user = await idm.user("bobby")
    await idm.login(user["email"], "pa55word-long")  # a signin by the user
    for body in [{"action": "export", "target": "urn:dev:bobby-meter", "details": {"owner": user["id"]}},
                 {"action": "erasure", "target": "somebody-else"}]:
        assert (await idm.http.post("/audit/events", headers=idm.admin(), json=body)).status_code == 201
    r = await idm.http.post("/audit/pseudonymize", headers=idm.admin(),
                            json={"names": [user["id"], user["email"], "urn:dev:bobby-meter"]})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["pseudonym"].startswith("erased-") and answer["pseudonymized"] >= 3  # created, signin, export
    listed = (await idm.http.get("/audit", headers=idm.admin(), params={"limit": "1000"})).json()
    text = str(listed)
    assert user["id"] not in text and "urn:dev:bobby-meter" not in text and answer["pseudonym"] in text
    assert listed[-1]["action"] == "audit.pseudonymized" and listed[-1]["actor"] == await admin_id(idm)
    assert "somebody-else" in text
    assert await verified(idm)
    raw = b"".join(f.read_bytes() for f in tmp_path.glob("audit.db*"))
    assert b"urn:dev:bobby-meter" not in raw


@pytest.mark.parametrize("body", [{}, {"names": []}, {"names": "bob"}, {"names": [""]}, {"names": [3]},
                                  {"names": ["x"] * 101}])
async def test_bad_names_are_400(idm: IdM, body: dict[str, Any]) -> None:
    r = await idm.http.post("/audit/pseudonymize", headers=idm.admin(), json=body)
    assert r.status_code == 400, r.text


# -- tokens ----------------------------------------------------------------------------------


async def test_tokens_issued_and_revoked_are_recorded_never_the_token(idm: IdM, tmp_path: Path) -> None:
    user = await idm.user("tina")
    app = await idm.application(token_types=["permanent"])
    r = await idm.password_token(app, user["email"], "pa55word-long")
    assert r.status_code == 200, r.text
    issued = r.json()
    r = await idm.http.post("/oauth2/token", headers=basic(app["id"], app["secret"]),
                            data={"grant_type": "client_credentials"})
    assert r.status_code == 200, r.text
    own = r.json()
    r = await idm.http.post("/oauth2/token", headers=basic(app["id"], app["secret"]),
                            data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]})
    assert r.status_code == 200
    refreshed = r.json()
    r = await idm.http.post("/oauth2/revoke", headers=basic(app["id"], app["secret"]),
                            data={"token": refreshed["access_token"]})
    assert r.status_code == 200
    # the rotated refresh token comes back: its family is revoked
    r = await idm.http.post("/oauth2/token", headers=basic(app["id"], app["secret"]),
                            data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]})
    assert r.status_code == 400

    found = await events(idm, "token.")
    assert [(e.action, e.actor, e.actor_kind, e.target, e.details.get("grant_type")) for e in found] == [
        ("token.issued", user["id"], "user", app["id"], "password"),
        ("token.issued", app["id"], "app", app["id"], "client_credentials"),
        ("token.issued", user["id"], "user", app["id"], "refresh_token"),
        ("token.revoked", app["id"], "app", user["id"], None),
        ("token.revoked", app["id"], "app", user["id"], None)]
    assert found[0].details == {"grant_type": "password", "client_id": app["id"], "scope": "", "format": "opaque",
                                "refresh": True}
    assert found[1].details["refresh"] is False
    assert found[3].details == {"client_id": app["id"], "kind": "access", "family": True}
    assert found[3].reason == "revoked by the client" and "came back" in found[4].reason
    assert all(e.source == "192.0.2.10" for e in found)
    raw = b"".join(f.read_bytes() for f in tmp_path.glob("audit.db*"))
    for token in (issued["access_token"], issued["refresh_token"], own["access_token"], refreshed["access_token"]):
        assert token.encode() not in raw
    assert await verified(idm)


# -- roles, permissions, assignments, memberships, users -------------------------------------


async def test_role_and_permission_changes_are_recorded(idm: IdM) -> None:
    me = await admin_id(idm)
    user = await idm.user("rita")
    app = await idm.application()
    base = f"/v1/applications/{app['id']}"
    h = idm.admin()
    role = (await idm.http.post(f"{base}/roles", headers=h, json={"role": {"name": "reader"}})).json()["role"]
    perm = (await idm.http.post(f"{base}/permissions", headers=h, json={
        "permission": {"name": "read", "action": "GET", "resource": "/v2/entities"}})).json()["permission"]
    await idm.http.patch(f"{base}/permissions/{perm['id']}", headers=h, json={"permission": {"name": "read all"}})
    await idm.http.put(f"{base}/roles/{role['id']}/permissions/{perm['id']}", headers=h)
    await idm.http.put(f"{base}/users/{user['id']}/roles/{role['id']}", headers=h)
    org = (await idm.http.post("/v1/organizations", headers=h, json={"organization": {"name": "coop"}})).json()
    org_id = org["organization"]["id"]
    await idm.http.put(f"{base}/organizations/{org_id}/roles/{role['id']}/organization_roles/member", headers=h)
    await idm.http.put(f"/v1/organizations/{org_id}/users/{user['id']}/organization_roles/member", headers=h)
    await idm.http.delete(f"/v1/organizations/{org_id}/users/{user['id']}/organization_roles/member", headers=h)
    await idm.http.delete(f"{base}/organizations/{org_id}/roles/{role['id']}/organization_roles/member", headers=h)
    await idm.http.delete(f"{base}/users/{user['id']}/roles/{role['id']}", headers=h)
    await idm.http.delete(f"{base}/roles/{role['id']}/permissions/{perm['id']}", headers=h)
    await idm.http.delete(f"{base}/permissions/{perm['id']}", headers=h)
    await idm.http.delete(f"{base}/roles/{role['id']}", headers=h)

    found = await events(idm, "role.", "permission.")
    assert [(e.action, e.target) for e in found] == [
        ("role.created", role["id"]), ("permission.created", perm["id"]), ("permission.updated", perm["id"]),
        ("permission.assigned", perm["id"]), ("role.assigned", user["id"]), ("role.assigned", org_id),
        ("role.assigned", user["id"]), ("role.unassigned", user["id"]), ("role.unassigned", org_id),
        ("role.unassigned", user["id"]), ("permission.unassigned", perm["id"]), ("permission.deleted", perm["id"]),
        ("role.deleted", role["id"])]
    assert all(e.actor == me and e.source == "192.0.2.10" for e in found)
    assert found[0].details == {"app_id": app["id"], "name": "reader"}
    assert found[4].details == {"holder": "user", "app_id": app["id"], "role_id": role["id"]}
    assert found[5].details == {"holder": "organization", "app_id": app["id"], "role_id": role["id"],
                                "organization_role": "member"}
    assert found[6].details == {"holder": "user", "organization_id": org_id, "organization_role": "member"}
    assert [e.action for e in await events(idm, "application.", "organization.")] == [
        "application.created", "organization.created"]
    assert await verified(idm)


async def test_user_changes_are_recorded_without_the_password(idm: IdM, tmp_path: Path) -> None:
    user = await idm.user("uma")
    h = idm.admin()
    await idm.http.patch(f"/v1/users/{user['id']}", headers=h,
                         json={"user": {"admin": True, "password": "a-new-secret-pass", "description": "x"}})
    await idm.http.delete(f"/v1/users/{user['id']}", headers=h)
    found = await events(idm, "user.", "role.")
    assert [(e.action, e.target) for e in found] == [
        ("user.created", user["id"]), ("user.updated", user["id"]), ("role.assigned", user["id"]),
        ("user.deleted", user["id"])]
    assert found[1].details == {"fields": ["admin", "description", "password"], "admin": True}
    assert found[2].details == {"holder": "user", "role_id": "admin"}
    raw = b"".join(f.read_bytes() for f in tmp_path.glob("audit.db*"))
    assert b"a-new-secret-pass" not in raw
