"""Tenants x roles x actions x resources through the PEP guard in front of the real broker,
asking the real identity manager (issue 11, "Tests": allowed and denied, over HTTP).

The world is conftest.py's: ``alice`` is a farmer through ``coop-org`` (read and update
``Field`` entities under ``/farm1/#`` of tenant ``coop``, never their ``owner``), ``bob`` a
viewer (read anything of tenant ``town``), ``carol`` holds no role. ``expected`` below is
the same policy written out by hand, independently of ``security.authz``: every request of
the matrix is sent and its status compared with it (2xx when allowed, 403 when denied).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from .conftest import PASSWORDS, World, stack

pytestmark = pytest.mark.anyio

USERS = ("alice", "bob", "carol")
TENANTS = ("coop", "town")
# (service path, entity type, entity id) of the seeded entities, in each tenant
RESOURCES = (("/farm1", "Field", "F1"), ("/farm2", "Field", "F2"), ("/farm1", "Barn", "B1"))
ACTIONS = ("list", "read", "read owner", "update", "update owner", "create", "delete", "subscribe")


@dataclass(frozen=True)
class Case:
    user: str
    tenant: str
    path: str
    type: str
    id: str
    action: str

    def __str__(self) -> str:
        return f"{self.user} {self.action} {self.type} {self.id} in {self.tenant}{self.path}"


def expected(case: Case) -> bool:
    """The world's policies, by hand."""
    if case.user == "alice":
        farm = case.tenant == "coop" and case.path == "/farm1" and case.type == "Field"
        return farm and case.action in ("list", "read", "update")
    if case.user == "bob":
        return case.tenant == "town" and case.action in ("list", "read", "read owner")
    return False


def cases() -> Iterator[Case]:
    for user in USERS:
        for tenant in TENANTS:
            for path, kind, ident in RESOURCES:
                for action in ACTIONS:
                    yield Case(user, tenant, path, kind, ident, action)


async def send(http: httpx.AsyncClient, case: Case, token: str) -> httpx.Response:
    h = {"Fiware-Service": case.tenant, "Fiware-ServicePath": case.path, "Authorization": f"Bearer {token}"}
    one = f"/v2/entities/{case.id}"
    if case.action == "list":
        return await http.get(f"/v2/entities?type={case.type}", headers=h)
    if case.action == "read":
        return await http.get(f"{one}?type={case.type}&attrs=crop", headers=h)
    if case.action == "read owner":
        return await http.get(f"{one}/attrs/owner?type={case.type}", headers=h)
    if case.action == "update":
        return await http.patch(f"{one}/attrs?type={case.type}", json={"crop": {"value": "rye"}}, headers=h)
    if case.action == "update owner":
        return await http.patch(f"{one}/attrs?type={case.type}", json={"owner": {"value": case.user}}, headers=h)
    if case.action == "create":
        return await http.post("/v2/entities", json={"id": f"new-{case.id}", "type": case.type}, headers=h)
    if case.action == "delete":
        return await http.delete(f"{one}?type={case.type}", headers=h)
    subscription = {"subject": {"entities": [{"idPattern": ".*", "type": case.type}]},
                    "notification": {"http": {"url": "http://receiver.example.org/notify"}}}
    return await http.post("/v2/subscriptions", json=subscription, headers=h)


async def seed(world: World, http: httpx.AsyncClient) -> None:
    """Every resource in both tenants, made by a user who may do anything (role ``seeder``)."""
    h = world.idm.admin()
    role = await world.ok(world.idm.http.post(f"{world.a()}/roles", headers=h, json={"role": {"name": "seeder"}}))
    world.roles["seeder"] = role.json()["role"]
    await world.permission("seed-all", {"id": "seed-all", "actions": ["*"], "tenant": "*"}, "seeder")
    seeder = world.users["pep"]["id"]
    await world.ok(world.idm.http.put(f"{world.a()}/users/{seeder}/roles/{world.roles['seeder']['id']}", headers=h))
    # tenant coop is bound to coop-org: the seeder must be a member, whatever its roles
    await world.ok(world.idm.http.put(f"/v1/organizations/{world.org['id']}/users/{seeder}/organization_roles/member",
                                      headers=h))
    token = await world.token("pep")
    for tenant in TENANTS:
        for path, kind, ident in RESOURCES:
            entity: dict[str, Any] = {"id": ident, "type": kind, "crop": {"value": "wheat"}, "owner": {"value": "dan"}}
            r = await http.post("/v2/entities", json=entity, headers={
                "Fiware-Service": tenant, "Fiware-ServicePath": path, "Authorization": f"Bearer {token}"})
            assert r.status_code == 201, r.text


async def test_every_user_tenant_action_and_resource_is_decided_as_the_policies_say(world: World) -> None:
    assert set(USERS) <= set(PASSWORDS)
    async with stack(world) as s:
        await seed(world, s.http)
        s.monotonic.advance(1.0)  # the seeder's role is new: let the PEP see the policy version move
        tokens = {user: await world.token(user) for user in USERS}
        wrong = []
        allowed = denied = 0
        for case in cases():
            answer = await send(s.http, case, tokens[case.user])
            if expected(case):
                allowed += 1
                if not 200 <= answer.status_code < 300:
                    wrong.append(f"{case}: expected 2xx, got {answer.status_code} {answer.text[:200]}")
                elif case.action == "read":
                    assert "owner" not in answer.json()
            else:
                denied += 1
                if answer.status_code != 403:
                    wrong.append(f"{case}: expected 403, got {answer.status_code} {answer.text[:200]}")
        assert not wrong, "\n".join(wrong)
        assert allowed >= 10 and denied >= 100  # the matrix has both sides
        # nothing denied changed anything: the seeded owners are as they were
        seeder = await world.token("pep")
        for tenant in TENANTS:
            for path, kind, ident in RESOURCES:
                r = await s.http.get(f"/v2/entities/{ident}?type={kind}&options=keyValues", headers={
                    "Fiware-Service": tenant, "Fiware-ServicePath": path, "Authorization": f"Bearer {seeder}"})
                assert r.status_code == 200 and r.json()["owner"] == "dan", (tenant, path, ident, r.text)
                created = await s.http.get(f"/v2/entities/new-{ident}?type={kind}", headers={
                    "Fiware-Service": tenant, "Fiware-ServicePath": path, "Authorization": f"Bearer {seeder}"})
                assert created.status_code == 404
