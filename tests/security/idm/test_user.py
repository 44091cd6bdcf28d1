"""``GET /user`` as PEPs (Wilma) call it, its decisions, ``X-Policy-Version``, and
``POST /pdp/open_policy_agent``.

Reference: ``reference/keyrock/oauth_documentation.md`` "Get user information and roles",
"Validate authorization"; ``security-history-orchestration.md`` §1 "Token validation for
PEPs", "Decision logic", §2 "Levels" (what Wilma sends).
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import IdM

pytestmark = pytest.mark.anyio


class World:
    """alice with role ``reader`` in an application; bob in an organization that has role
    ``writer`` for its members; permissions for each."""

    def __init__(self, idm: IdM) -> None:
        self.idm = idm

    async def build(self) -> World:
        idm = self.idm
        self.alice = await idm.user("alice", "alice-password")
        self.bob = await idm.user("bob", "bob-password")
        self.app = await idm.application()
        a = f"/v1/applications/{self.app['id']}"
        h = idm.admin()
        self.reader = (await idm.http.post(f"{a}/roles", headers=h, json={"role": {"name": "reader"}})).json()["role"]
        self.writer = (await idm.http.post(f"{a}/roles", headers=h, json={"role": {"name": "writer"}})).json()["role"]
        permissions = {
            "read": {"name": "read", "action": "GET", "resource": "/v2/entities", "is_regex": False},
            "read one": {"name": "read one", "action": "GET", "resource": "^/v2/entities/room[0-9]+$", "is_regex": True},
            "tenant": {"name": "tenant", "action": "DELETE", "resource": "/v2/entities", "use_authorization_service_header": True,
                       "authorization_service_header": "smartcity"},
            "write rooms": {"name": "write rooms", "action": "PATCH", "resource": "/v2/op/update",
                            "regex_entity_ids": "^room", "regex_attributes": "^temperature$", "regex_types": "^Room$"},
        }
        self.perms: dict[str, dict[str, Any]] = {}
        for key, body in permissions.items():
            r = await idm.http.post(f"{a}/permissions", headers=h, json={"permission": body})
            assert r.status_code == 201, r.text
            self.perms[key] = r.json()["permission"]
        for key in ("read", "read one", "tenant"):
            assert (await idm.http.put(f"{a}/roles/{self.reader['id']}/permissions/{self.perms[key]['id']}", headers=h)).status_code == 201
        await idm.http.put(f"{a}/roles/{self.writer['id']}/permissions/{self.perms['write rooms']['id']}", headers=h)
        await idm.http.put(f"{a}/users/{self.alice['id']}/roles/{self.reader['id']}", headers=h)
        org = (await idm.http.post("/v1/organizations", headers=h, json={"organization": {"name": "ops", "description": "d"}})).json()
        self.org = org["organization"]
        await idm.http.put(f"/v1/organizations/{self.org['id']}/users/{self.bob['id']}/organization_roles/member", headers=h)
        r = await idm.http.put(f"{a}/organizations/{self.org['id']}/roles/{self.writer['id']}/organization_roles/member", headers=h)
        assert r.status_code == 201, r.text
        self.alice_token = (await idm.password_token(self.app, "alice", "alice-password")).json()["access_token"]
        self.bob_token = (await idm.password_token(self.app, "bob", "bob-password")).json()["access_token"]
        return self

    async def ask(self, token: str, **params: str) -> dict[str, Any]:
        r = await self.idm.http.get("/user", params={"access_token": token, "app_id": self.app["id"], **params})
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture
async def world(idm: IdM) -> World:
    return await World(idm).build()


async def test_user_object_shape(world: World) -> None:
    body = await world.ask(world.alice_token)
    assert list(body) == ["organizations", "displayName", "roles", "app_id", "trusted_apps", "isGravatarEnabled", "email",
                          "id", "authorization_decision", "app_azf_domain", "username"]
    assert body["roles"] == [{"id": world.reader["id"], "name": "reader"}]
    assert body["authorization_decision"] == "" and body["app_id"] == world.app["id"] and body["id"] == world.alice["id"]
    bob = await world.ask(world.bob_token)
    assert bob["roles"] == []
    assert bob["organizations"] == [{"id": world.org["id"], "name": "ops", "description": "d", "website": None,
                                     "roles": [{"id": world.writer["id"], "name": "writer"}]}]


async def test_bearer_header_and_errors(world: World) -> None:
    idm = world.idm
    r = await idm.http.get("/user", headers={"Authorization": f"Bearer {world.alice_token}"})
    assert r.status_code == 200
    assert (await idm.http.get("/user", params={"access_token": "nope"})).json() == {"error": "invalid_token"}
    assert (await idm.http.get("/user")).status_code == 400
    both = await idm.http.get("/user", params={"access_token": world.alice_token, "authzforce": "true", "action": "GET",
                                               "resource": "/v2/entities"})
    assert both.status_code == 400


async def test_basic_decisions(world: World) -> None:
    t = world.alice_token
    assert (await world.ask(t, action="GET", resource="/v2/entities"))["authorization_decision"] == "Permit"
    assert (await world.ask(t, action="POST", resource="/v2/entities"))["authorization_decision"] == "Deny"
    assert (await world.ask(t, action="GET", resource="/v2/entities/ROOM7"))["authorization_decision"] == "Permit"
    assert (await world.ask(t, action="GET", resource="/v2/entities/car7"))["authorization_decision"] == "Deny"
    tenant = {"action": "DELETE", "resource": "/v2/entities"}
    assert (await world.ask(t, **tenant, authorization_service_header="smartcity"))["authorization_decision"] == "Permit"
    assert (await world.ask(t, **tenant, authorization_service_header="other"))["authorization_decision"] == "Deny"
    assert (await world.ask(t, **tenant))["authorization_decision"] == "Deny"
    r = await world.idm.http.get("/user", params={"access_token": t, "action": "POST", "resource": "/x"})
    assert "no permission for action" in r.headers["x-decision-reason"]


async def test_permissions_through_organizations(world: World) -> None:
    # basic level: entity regexes are not looked at
    assert (await world.ask(world.bob_token, action="PATCH", resource="/v2/op/update"))["authorization_decision"] == "Permit"
    assert (await world.ask(world.alice_token, action="PATCH", resource="/v2/op/update"))["authorization_decision"] == "Deny"


async def test_payload_level_decisions(tmp_path: Any, clock: Any, anyio_backend: str) -> None:
    from .conftest import make_config, running

    async with running(make_config(tmp_path, pdp_level="payload"), clock) as idm:
        world = await World(idm).build()
        base = {"action": "PATCH", "resource": "/v2/op/update"}
        ok = await world.ask(world.bob_token, **base, ids="room1,room2", attrs="temperature", types="Room")
        assert ok["authorization_decision"] == "Permit"
        for bad in ({"ids": "car1", "attrs": "temperature", "types": "Room"}, {"ids": "room1", "attrs": "pressure", "types": "Room"},
                    {"ids": "room1", "attrs": "temperature", "types": "Car"}, {"attrs": "temperature", "types": "Room"}):
            assert (await world.ask(world.bob_token, **base, **bad))["authorization_decision"] == "Deny", bad


async def test_policy_version_moves_with_roles(world: World) -> None:
    idm = world.idm
    r = await idm.http.get("/user", params={"access_token": world.alice_token})
    before = int(r.headers["x-policy-version"])
    assert (await idm.http.get("/v1/policy_version")).json() == {"policy_version": before}
    a = f"/v1/applications/{world.app['id']}"
    r = await idm.http.delete(f"{a}/users/{world.alice['id']}/roles/{world.reader['id']}", headers=idm.admin())
    assert r.status_code == 204
    after = int((await idm.http.get("/user", params={"access_token": world.alice_token})).headers["x-policy-version"])
    assert after > before
    assert (await world.ask(world.alice_token, action="GET", resource="/v2/entities"))["authorization_decision"] == "Deny"


async def test_disabled_user_tokens_stop_working(world: World) -> None:
    idm = world.idm
    r = await idm.http.patch(f"/v1/users/{world.alice['id']}", headers=idm.admin(), json={"user": {"enabled": False}})
    assert r.status_code == 200
    assert (await idm.http.get("/user", params={"access_token": world.alice_token})).status_code == 401


async def test_open_policy_agent_pdp(world: World) -> None:
    idm = world.idm
    base = {"appId": world.app["id"], "action": "PATCH", "resource": "/v2/op/update", "roles": [world.writer["id"]],
            "ids": ["room1"], "attrs": ["temperature"], "types": ["Room"]}
    assert (await idm.http.post("/pdp/open_policy_agent", json=base)).json() == {"allow": True}
    assert (await idm.http.post("/pdp/open_policy_agent", json={"input": base})).json() == {"allow": True}
    assert (await idm.http.post("/pdp/open_policy_agent", json={**base, "ids": ["car1"]})).json() == {"allow": False}
    assert (await idm.http.post("/pdp/open_policy_agent", json={**base, "idPatterns": [".*"]})).json() == {"allow": False}
    assert (await idm.http.post("/pdp/open_policy_agent", json={**base, "roles": [world.reader["id"]]})).json() == {"allow": False}
    bad = await idm.http.post("/pdp/open_policy_agent", json={"appId": 3})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == 400
