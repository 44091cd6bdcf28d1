"""Fixtures of the PEP's tests: the real identity manager (in-process, its own clock), a world
of users, roles and NGSI policies in it made through its public API, and the real broker
behind the PEP guard.

The world (docs/authorization.md's farmer example):

* application ``farm-app`` (opaque and JWT tokens, JWTs signed with the identity manager's
  RS256 key), and ``other-app``;
* organization ``coop-org``, whose members get role ``farmer``; ``alice`` is a member;
* permission ``farmers-fields`` (role ``farmer``): read and update ``Field`` entities under
  ``/farm1/#`` of tenant ``coop``, not their ``owner``; tenant ``coop`` bound to
  ``coop-org``;
* ``bob`` holds role ``viewer``: read anything in tenant ``town`` (nothing in ``coop``);
* ``carol`` holds no role; ``pep`` is the PEP's own login, provider of ``farm-app``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest

from broker.app import create_app as create_broker
from broker.config import Config as BrokerConfig
from ngsi.client.asgi import ASGITransport
from ngsi.client.response import Response
from ngsi.context import from_headers
from ngsi.server.guards import Incoming
from security.pep.guard import PEP
from security.pep.settings import Settings
from tests.security.idm.conftest import Clock, IdM, make_config, running

IDM_URL = "http://idm.test"
PASSWORDS = {"alice": "alice-password", "bob": "bob-password", "carol": "carol-password", "pep": "pep-password"}

FARMERS = {
    "policies": [{
        "id": "farmers-fields",
        "description": "Farmers read and update the fields of farm 1, not their owner",
        "actions": ["read", "update"],
        "tenant": "coop",
        "servicePaths": ["/farm1/#"],
        "entities": {"types": ["Field"]},
        "attrs": {"deny": ["owner"]},
    }],
    "tenantBindings": {"coop": "coop-org"},
}
VIEWERS = {"id": "town-viewers", "actions": ["read"], "tenant": "town"}


class CountingTransport:
    """An ngsi.client transport that counts calls by path before passing them on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    async def request(self, method: str, url: str, headers: Any, body: bytes, timeout: float | None) -> Response:
        self.calls[httpx.URL(url).path] += 1
        return await self.inner.request(method, url, headers, body, timeout)

    async def aclose(self) -> None:
        pass

    def total(self) -> int:
        return sum(self.calls.values())


class Monotonic:
    """The PEP's monotonic clock, moved by tests."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class World:
    idm: IdM
    app: dict[str, Any] = field(default_factory=dict)
    other_app: dict[str, Any] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    org: dict[str, Any] = field(default_factory=dict)

    def a(self, app: Mapping[str, Any] | None = None) -> str:
        return f"/v1/applications/{(app or self.app)['id']}"

    async def ok(self, response: Any) -> Any:
        result = await response
        assert result.status_code in (200, 201, 204), result.text
        return result

    async def build(self) -> World:
        idm, h = self.idm, self.idm.admin()
        for name, password in PASSWORDS.items():
            self.users[name] = await idm.user(name, password)
        self.app = await idm.application(name="farm-app", jwt_algorithm="RS256")
        self.other_app = await idm.application(name="other-app", jwt_algorithm="RS256")
        for name in ("farmer", "viewer"):
            r = await self.ok(idm.http.post(f"{self.a()}/roles", headers=h, json={"role": {"name": name}}))
            self.roles[name] = r.json()["role"]
        await self.permission("farmers-fields", FARMERS, "farmer")
        await self.permission("town-viewers", VIEWERS, "viewer")
        org = await self.ok(idm.http.post("/v1/organizations", headers=h,
                                          json={"organization": {"name": "coop-org", "description": "the coop"}}))
        self.org = org.json()["organization"]
        alice = self.users["alice"]["id"]
        await self.ok(idm.http.put(f"/v1/organizations/{self.org['id']}/users/{alice}/organization_roles/member",
                                   headers=h))
        await self.ok(idm.http.put(
            f"{self.a()}/organizations/{self.org['id']}/roles/{self.roles['farmer']['id']}/organization_roles/member",
            headers=h))
        await self.ok(idm.http.put(f"{self.a()}/users/{self.users['bob']['id']}/roles/{self.roles['viewer']['id']}",
                                   headers=h))
        await self.ok(idm.http.put(f"{self.a()}/users/{self.users['pep']['id']}/roles/provider", headers=h))
        return self

    async def permission(self, name: str, ngsi: Any, role: str) -> dict[str, Any]:
        h = self.idm.admin()
        body = {"permission": {"name": name, "action": "NGSI", "resource": "ngsi", "ngsi": ngsi}}
        r = await self.ok(self.idm.http.post(f"{self.a()}/permissions", headers=h, json=body))
        permission = r.json()["permission"]
        await self.ok(self.idm.http.put(f"{self.a()}/roles/{self.roles[role]['id']}/permissions/{permission['id']}",
                                        headers=h))
        return dict(permission)

    async def token(self, user: str, *, jwt: bool = False, app: Mapping[str, Any] | None = None) -> str:
        form = {"scope": "jwt"} if jwt else {}
        r = await self.idm.password_token(dict(app or self.app), user, PASSWORDS[user], **form)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    async def remove_org_role(self) -> None:
        r = await self.idm.http.delete(
            f"{self.a()}/organizations/{self.org['id']}/roles/{self.roles['farmer']['id']}/organization_roles/member",
            headers=self.idm.admin())
        assert r.status_code == 204, r.text

    def settings(self, **changes: Any) -> Settings:
        base = Settings(
            idm_url=IDM_URL, app_id=self.app["id"], username="pep", password=PASSWORDS["pep"], pdp="ours",
            multiservice=True,
        )
        return replace(base, **changes)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def world(tmp_path: Any, anyio_backend: str) -> AsyncIterator[World]:
    async with running(make_config(tmp_path, issuer=IDM_URL), Clock()) as idm:
        yield await World(idm).build()


@dataclass
class Stack:
    """The broker behind a PEP guard, reached over HTTP in-process; the PEP reaches the
    identity manager in-process too, through a counting transport."""

    world: World
    pep: PEP
    http: httpx.AsyncClient
    transport: CountingTransport
    monotonic: Monotonic
    contexts: list[Any]

    async def get(self, path: str, token: str | None = None, tenant: str = "coop", path_header: str = "/farm1",
                  **headers: str) -> httpx.Response:
        return await self.http.get(path, headers=self.headers(token, tenant, path_header, headers))

    def headers(self, token: str | None, tenant: str, service_path: str, extra: Mapping[str, str]) -> dict[str, str]:
        sent = {"Fiware-Service": tenant, "Fiware-ServicePath": service_path}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(extra)
        return sent


class stack:
    """``async with stack(world, **settings) as s``: the broker (memory store, multiservice)
    behind ``PEP(world.settings(**settings))``."""

    def __init__(self, world: World, guards_after: Iterable[Any] = (), **changes: Any) -> None:
        self.world = world
        self.changes = changes
        self.guards_after = list(guards_after)

    async def __aenter__(self) -> Stack:
        self.counting = CountingTransport(ASGITransport(self.world.idm.app))
        self.monotonic = Monotonic()
        clock = self.world.idm.clock
        pep = PEP(self.world.settings(**self.changes), transport=self.counting, now=clock, monotonic=self.monotonic)
        contexts: list[Any] = []

        async def record(request: Any) -> None:
            contexts.append(request.ctx)

        self.app = create_broker(BrokerConfig(db_uri="memory://", multiservice=True),
                                 guards=[pep, record, *self.guards_after])
        self.lifespan = self.app.router.lifespan_context(self.app)
        await self.lifespan.__aenter__()
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://broker.test")
        return Stack(self.world, pep, self.http, self.counting, self.monotonic, contexts)

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await self.lifespan.__aexit__(None, None, None)


def incoming(method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes = b"",
             query: bytes = b"") -> Incoming:
    """A request as a guard sees it (headers: lowercase names), its body ready to be read."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    return Incoming(method, path, query, lowered, ("192.0.2.1", 1234), from_headers(lowered, "c-1"), receive)
