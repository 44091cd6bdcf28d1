"""The WAZIUP API's accounts (``orchestrator/waziup_api/accounts.py``) against the real
identity manager, in-process (``ngsi.client.ASGITransport``), its clock shared with the
API's cache so that expiry is tested without sleeping."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ngsi.client import ASGITransport, Response
from orchestrator.waziup_api.accounts import NO_EMAIL_DOMAIN, Accounts, AccountsError, MemoryProfiles, user_shape
from orchestrator.waziup_api.caller import GUEST, Caller
from tests.conftest import free_port
from tests.security.idm.conftest import ADMIN_PASSWORD, Clock, IdM, make_config, running

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Counting:
    """An ngsi.client transport counting calls by path."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    async def request(self, method: str, url: str, headers: Any, body: bytes, timeout: float | None) -> Response:
        self.calls[urlsplit(url).path] += 1
        return await self.inner.request(method, url, headers, body, timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class World:
    idm: IdM
    accounts: Accounts
    transport: Counting
    app: dict[str, Any]
    alice: dict[str, Any]
    profiles: MemoryProfiles


async def _world(tmp_path: Path, clock: Clock, **config: Any) -> AsyncIterator[World]:
    async with running(make_config(tmp_path, **config), clock) as idm:
        app = await idm.application(name="waziup", token_types=["jwt", "permanent"])
        alice = await idm.user("alice", "alice-password", email="alice@waziup.org")
        transport = Counting(ASGITransport(idm.app))
        profiles = MemoryProfiles()
        accounts = Accounts("http://idm.test", app["id"], app["secret"], "admin", ADMIN_PASSWORD, profiles=profiles,
                            transport=transport, clock=clock)
        await accounts.open()
        try:
            yield World(idm, accounts, transport, app, alice, profiles)
        finally:
            await accounts.close()


@pytest.fixture
async def world(tmp_path: Path, anyio_backend: str) -> AsyncIterator[World]:
    async for w in _world(tmp_path, Clock()):
        yield w


# -- tokens and callers ---------------------------------------------------------------------------


async def test_token_by_username_or_email(world: World) -> None:
    accounts = world.accounts
    by_name = await accounts.token("alice", "alice-password")
    by_email = await accounts.token("Alice@waziup.org", "alice-password")
    assert by_name and by_email and by_name != by_email
    assert await accounts.token("alice", "wrong") is None
    assert await accounts.token("nobody", "alice-password") is None
    assert await accounts.token("alice", "") is None and await accounts.token("", "x") is None


async def test_a_misconfigured_application_is_an_error_not_a_bad_password(world: World) -> None:
    wrong = Accounts("http://idm.test", world.app["id"], "not-the-secret", "admin", ADMIN_PASSWORD,
                     transport=ASGITransport(world.idm.app))
    await wrong.open()
    try:
        with pytest.raises(AccountsError) as caught:
            await wrong.token("alice", "alice-password")
        assert caught.value.status == 502
        assert await wrong.caller("Bearer " + (await world.accounts.token("alice", "alice-password") or "")) == GUEST
    finally:
        await wrong.close()


async def test_caller_of_a_token(world: World) -> None:
    accounts = world.accounts
    token = await accounts.token("alice", "alice-password")
    assert await accounts.caller(f"Bearer {token}") == Caller("alice", admin=False, user_id=world.alice["id"])
    assert await accounts.caller(f"bearer  {token} ") == Caller("alice", admin=False, user_id=world.alice["id"])
    admin = await accounts.token("admin", ADMIN_PASSWORD)
    assert await accounts.caller(f"Bearer {admin}") == Caller("admin", admin=True, user_id="admin")


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic YWxpY2U6cHc=", "Bearer garbage",
                                    "Bearer " + "x" * 20000, "Token abc"])
async def test_guest_without_a_valid_token(world: World, header: str | None) -> None:
    caller = await world.accounts.caller(header)
    assert caller == GUEST and caller.guest


async def test_a_token_of_another_application_is_the_guest(world: World) -> None:
    other = await world.idm.application(name="other")
    r = await world.idm.password_token(other, "alice", "alice-password")
    assert await world.accounts.caller("Bearer " + r.json()["access_token"]) == GUEST


async def test_cache(world: World) -> None:
    accounts, calls, clock = world.accounts, world.transport.calls, world.idm.clock
    token = await accounts.token("alice", "alice-password") or ""
    for _ in range(3):
        assert (await accounts.caller("Bearer " + token)).username == "alice"
    assert calls["/oauth2/introspect"] == 1
    assert all(token not in key for key in accounts._cache)  # only the SHA-256 is kept
    for _ in range(2):
        assert await accounts.caller("Bearer garbage") == GUEST
    assert calls["/oauth2/introspect"] == 2  # a refused token is remembered too
    revoked = await world.idm.http.post("/oauth2/revoke", data={"token": token},
                                        auth=(world.app["id"], world.app["secret"]))
    assert revoked.status_code == 200
    assert (await accounts.caller("Bearer " + token)).username == "alice"  # still cached: the accepted delay
    clock.advance(accounts.cache_seconds + 1)
    assert await accounts.caller("Bearer " + token) == GUEST
    assert calls["/oauth2/introspect"] == 3


async def test_the_cache_ends_with_the_token(tmp_path: Path, anyio_backend: str) -> None:
    clock = Clock()
    async for w in _world(tmp_path, clock, access_lifetime=10):
        token = await w.accounts.token("alice", "alice-password")
        assert (await w.accounts.caller(f"Bearer {token}")).username == "alice"
        clock.advance(11)  # expired before the 30 s of the cache
        assert await w.accounts.caller(f"Bearer {token}") == GUEST


async def test_an_unreachable_identity_manager() -> None:
    accounts = Accounts(f"http://127.0.0.1:{free_port()}", "app", "secret", "admin", "pw", timeout=2)
    await accounts.open()
    try:
        assert await accounts.caller("Bearer some-token") == GUEST
        assert accounts._cache == {}  # not remembered: asked again next time
        with pytest.raises(AccountsError) as caught:
            await accounts.token("alice", "pw")
        assert caught.value.status == 502
        assert await accounts.check_password("alice", "pw") is None
        with pytest.raises(AccountsError):
            await accounts.users(limit=None, offset=0, username=None)
    finally:
        await accounts.close()


async def test_check_password(world: World) -> None:
    accounts = world.accounts
    assert await accounts.check_password("alice", "alice-password") == Caller("alice", False, world.alice["id"])
    assert world.transport.calls["/oauth2/revoke"] == 1  # the login's token does not stay alive
    assert await accounts.check_password("admin@test.com", ADMIN_PASSWORD) == Caller("admin", True, "admin")
    assert await accounts.check_password("alice", "nope") is None
    assert await accounts.check_password("", "") is None


# -- users ---------------------------------------------------------------------------------------


async def test_users_list_and_get(world: World) -> None:
    accounts = world.accounts
    await world.profiles.put(world.alice["id"], {"first_name": "Alice", "sms_credit": 3})
    listed = await accounts.users(limit=None, offset=0, username=None)  # the identity manager's order
    by_name = {u["username"]: u for u in listed}
    assert len(listed) == 2
    alice = {"id": world.alice["id"], "username": "alice", "first_name": "Alice", "email": "alice@waziup.org",
             "sms_credit": 3, "admin": False}
    assert by_name["alice"] == alice and list(by_name["alice"]) == ["id", "username", "first_name", "email",
                                                                    "sms_credit", "admin"]
    assert by_name["admin"] == {"id": "admin", "username": "admin", "email": "admin@test.com", "admin": True}
    assert await accounts.users(limit=1, offset=1, username=None) == listed[1:]
    assert await accounts.users(limit=1, offset=0, username=None) == listed[:1]
    assert await accounts.users(limit=0, offset=0, username=None) == []
    assert await accounts.users(limit=None, offset=5, username=None) == []
    assert await accounts.users(limit=None, offset=0, username="alice") == [alice]
    assert await accounts.users(limit=None, offset=0, username="nobody") == []
    assert await accounts.user(world.alice["id"]) == alice
    assert await accounts.user("nobody") is None and await accounts.user("") is None
    assert await accounts.user("../users") is None
    assert await accounts.user_by_username("alice") == alice
    assert await accounts.user_by_username("nobody") is None


async def test_create_user(world: World) -> None:
    accounts = world.accounts
    user_id = await accounts.create_user({"username": "cdupont", "password": "corentin-pass", "first_name": "Corentin",
                                          "last_name": "Dupont", "phone": "+39", "facebook": "fb", "twitter": "tw",
                                          "sms_credit": 10, "admin": True})
    assert await accounts.user(user_id) == {"id": user_id, "username": "cdupont", "first_name": "Corentin",
                                            "last_name": "Dupont", "phone": "+39", "facebook": "fb", "twitter": "tw",
                                            "sms_credit": 10, "admin": False}  # no e-mail given: none shown; no admin
    token = await accounts.token("cdupont", "corentin-pass")
    assert (await accounts.caller(f"Bearer {token}")).user_id == user_id
    with_email = await accounts.create_user({"username": "bob", "email": "bob@waziup.org", "password": "bob-pass"})
    assert (await accounts.user(with_email)) == {"id": with_email, "username": "bob", "email": "bob@waziup.org",
                                                 "admin": False}
    assert world.profiles.kept.get(with_email) is None
    for duplicate in ({"username": "cdupont", "password": "x"}, {"username": "bob2", "email": "BOB@waziup.org",
                                                                   "password": "x"}):
        with pytest.raises(AccountsError) as caught:
            await accounts.create_user(duplicate)
        assert caught.value.status == 422
    for bad in (None, [], "x", {}, {"username": "u"}, {"password": "p"}, {"username": "", "password": "p"},
                {"username": "a b", "password": "p"}, {"username": "u", "password": 3},
                {"username": "u", "password": "p", "sms_credit": "7"}, {"username": "u", "password": "p", "sms_credit": True},
                {"username": "u", "password": "p", "phone": 3}, {"username": "u", "password": "p", "email": "nope"},
                {"username": "u" * 65, "password": "p"}):
        with pytest.raises(AccountsError) as caught:
            await accounts.create_user(bad)
        assert caught.value.status == 400, bad


async def test_sms_credit(world: World) -> None:
    accounts = world.accounts
    await accounts.set_sms_credit(world.alice["id"], 42)
    assert (await accounts.user(world.alice["id"]) or {})["sms_credit"] == 42
    await accounts.set_sms_credit(world.alice["id"], 0)
    assert (await accounts.user(world.alice["id"]) or {})["sms_credit"] == 0
    with pytest.raises(AccountsError) as caught:
        await accounts.set_sms_credit("nobody", 1)
    assert caught.value.status == 404
    with pytest.raises(AccountsError) as caught:
        await accounts.set_sms_credit(world.alice["id"], "1")  # type: ignore[arg-type]
    assert caught.value.status == 400


async def test_the_admin_session_is_renewed(world: World) -> None:
    accounts, calls = world.accounts, world.transport.calls
    await accounts.users(limit=None, offset=0, username=None)
    await accounts.users(limit=None, offset=0, username=None)
    assert calls["/v1/auth/tokens"] == 1
    world.idm.clock.advance(world.idm.app.state.config.api_lifetime + 1)
    assert len(await accounts.users(limit=None, offset=0, username=None)) == 2
    assert calls["/v1/auth/tokens"] == 2


async def test_a_wrong_admin_password(world: World) -> None:
    wrong = Accounts("http://idm.test", world.app["id"], world.app["secret"], "admin", "not-it",
                     transport=ASGITransport(world.idm.app))
    await wrong.open()
    try:
        with pytest.raises(AccountsError) as caught:
            await wrong.user(world.alice["id"])
        assert caught.value.status == 502
    finally:
        await wrong.close()


def test_user_shape_leaves_absent_fields_out() -> None:
    shaped = user_shape({"id": "u", "username": "n", "email": f"n@{NO_EMAIL_DOMAIN}", "admin": None, "enabled": True},
                        {"phone": None, "twitter": "t", "other": 1})
    assert shaped == {"id": "u", "username": "n", "twitter": "t", "admin": False}
