"""Fixtures of the identity manager's tests: stores on SQLite and PostgreSQL, an app with
an injected clock driven through real HTTP (httpx over ASGI, in-process), and helpers
that make users, applications and tokens through the public API.

PostgreSQL: one throw-away cluster per session (``devtools/pg_cluster.py``); the tests
that need it FAIL (never skip) when it cannot start, as the broker's do.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from devtools.pg_cluster import Cluster, ClusterError
from security.idm.app import create_app
from security.idm.config import Config
from security.idm.store import IdmStore, open_store

_DATABASE = "waziup_idm_test"
_RESET = (
    "DROP TABLE IF EXISTS idm_users, idm_organizations, idm_memberships, idm_applications, idm_roles, "
    "idm_permissions, idm_role_permissions, idm_user_roles, idm_organization_roles, idm_tokens, "
    "idm_signing_keys, idm_counters, idm_privacy_policies, idm_privacy_state, idm_privacy_budget CASCADE"
)
ADMIN_PASSWORD = "Adm1n-pass-for-tests"


@pytest.fixture(scope="session")
def idm_pg_cluster() -> Iterator[Cluster]:
    """The cluster stops after the session, or as soon as its start or set-up fails."""
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(Cluster())
        except (ClusterError, OSError) as exc:
            pytest.fail(f"PostgreSQL could not start: {exc}", pytrace=False)
        cluster.create_database(_DATABASE, postgis=False)
        yield cluster


@pytest.fixture
def idm_pg_url(idm_pg_cluster: Cluster) -> str:
    idm_pg_cluster.psql(_RESET, database=_DATABASE)
    return idm_pg_cluster.url_of(_DATABASE)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under xdist the PostgreSQL tests share one worker, so one cluster."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if "idm_pg_url" in getattr(item, "fixturenames", ()) or (
            callspec is not None and callspec.params.get("backend") == "postgresql"
        ):
            item.add_marker(pytest.mark.xdist_group("postgresql"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/idm.db"
    return str(request.getfixturevalue("idm_pg_url"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(store_url: str, anyio_backend: str) -> AsyncIterator[IdmStore]:
    the_store = open_store(store_url)
    await the_store.open()
    yield the_store
    await the_store.close()


class Clock:
    """The app's time, moved by tests (no sleeps)."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


@dataclass
class IdM:
    """A running identity manager reached over HTTP in-process, with its clock."""

    http: httpx.AsyncClient
    clock: Clock
    app: Any
    admin_token: str = ""
    printed: list[str] = field(default_factory=list)

    def admin(self) -> dict[str, str]:
        return {"X-Auth-Token": self.admin_token}

    async def login(self, name: str, password: str) -> str:
        r = await self.http.post("/v1/auth/tokens", json={"name": name, "password": password})
        assert r.status_code == 201, r.text
        return r.headers["X-Subject-Token"]

    async def user(self, username: str, password: str = "pa55word-long", *, email: str | None = None) -> dict[str, Any]:
        r = await self.http.post(
            "/v1/users", headers=self.admin(),
            json={"user": {"username": username, "email": email or f"{username}@test.com", "password": password}},
        )
        assert r.status_code == 201, r.text
        return dict(r.json()["user"])

    async def application(self, token: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {
            "name": "app", "description": "an app", "redirect_uri": "http://client.test/callback", "url": "http://client.test",
            "grant_type": ["authorization_code", "password", "client_credentials", "refresh_token"],
            "token_types": ["jwt", "permanent"],
        }
        body.update(fields)
        r = await self.http.post("/v1/applications", headers={"X-Auth-Token": token or self.admin_token},
                                 json={"application": body})
        assert r.status_code == 201, r.text
        return dict(r.json()["application"])

    async def password_token(self, app: dict[str, Any], username: str, password: str, **form: str) -> httpx.Response:
        return await self.http.post(
            "/oauth2/token", headers=basic(app["id"], app["secret"]),
            data={"grant_type": "password", "username": username, "password": password, **form},
        )


def make_config(tmp_path: Any, store_url: str | None = None, **overrides: Any) -> Config:
    fields: dict[str, Any] = {
        "data_dir": str(tmp_path), "db_uri": store_url or "", "issuer": "http://idm.test", "admin_email": "admin@test.com",
        "admin_password": ADMIN_PASSWORD,
    }
    fields.update(overrides)
    return Config(**fields)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def idm(tmp_path: Any, clock: Clock, anyio_backend: str) -> AsyncIterator[IdM]:
    """An identity manager on a fresh SQLite file, the admin logged in."""
    async with running(make_config(tmp_path), clock) as the_idm:
        yield the_idm


class running:
    """``async with running(config, clock) as idm``: the app's lifespan around an httpx client."""

    def __init__(self, config: Config, clock: Clock, **kwargs: Any) -> None:
        self.printed: list[str] = []
        self.app = create_app(config, clock=clock, show=self.printed.append, **kwargs)
        self.clock = clock
        self.config = config

    async def __aenter__(self) -> IdM:
        self.lifespan = self.app.router.lifespan_context(self.app)
        await self.lifespan.__aenter__()
        transport = httpx.ASGITransport(app=self.app, client=("192.0.2.10", 50000))
        self.http = httpx.AsyncClient(transport=transport, base_url="http://idm.test")
        idm = IdM(self.http, self.clock, self.app, printed=self.printed)
        if self.config.admin_password:
            idm.admin_token = await idm.login(self.config.admin_email, self.config.admin_password)
        return idm

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await self.lifespan.__aexit__(None, None, None)


@pytest.fixture(autouse=True)
def _no_idm_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("IDM_"):
            monkeypatch.delenv(name, raising=False)
