"""The store contract (``security/idm/store.py``) on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import pytest

from security.idm.model import (
    Application, Membership, Organization, OrganizationRole, Permission, Role, SigningKey, Token, User, UserRole,
)
from security.idm.store import Conflict, IdmStore, StoreError, open_store

pytestmark = pytest.mark.anyio


def user(uid: str, name: str | None = None, email: str | None = None) -> User:
    return User(uid, name or uid, email or f"{uid}@Test.com", "hash", created_at=1.0)


async def test_users_unique_username_and_case_insensitive_email(store: IdmStore) -> None:
    await store.create_user(user("u1"))
    with pytest.raises(Conflict):
        await store.create_user(user("u2", name="u1"))
    with pytest.raises(Conflict):
        await store.create_user(user("u3", email="U1@test.COM"))
    assert (await store.find_user("u1@TEST.com")).id == "u1"  # type: ignore[union-attr]
    assert (await store.find_user("u1")).id == "u1"  # type: ignore[union-attr]
    assert await store.find_user("nobody") is None
    await store.create_user(user("u2"))
    with pytest.raises(Conflict):
        await store.save_user(user("u2", name="u1"))
    assert [u.id for u in await store.list_users()] == ["u1", "u2"]


async def test_policy_version_moves_with_every_policy_change(store: IdmStore) -> None:
    versions = [await store.policy_version()]

    async def moved() -> None:
        versions.append(await store.policy_version())
        assert versions[-1] > versions[-2]

    await store.create_user(user("u1"))
    await store.create_application(Application("a1", "app", "h"), "u1")
    await moved()
    await store.roles.create(Role("r1", "role", "a1"))
    await moved()
    await store.permissions.create(Permission("p1", "perm", "a1", action="GET", resource="/x"))
    await moved()
    await store.put_role_permission("r1", "p1")
    await moved()
    await store.put_user_role(UserRole("a1", "u1", "r1"))
    await moved()
    await store.create_organization(Organization("o1", "org"), "u1")
    await moved()
    await store.put_membership(Membership("o1", "u1", "member"))
    await moved()
    await store.put_organization_role(OrganizationRole("a1", "o1", "r1", "member"))
    await moved()
    await store.save_user((await store.get_user("u1")).replace(enabled=False))  # type: ignore[union-attr]
    await moved()
    await store.delete_role_permission("r1", "p1")
    await moved()
    before = await store.policy_version()
    await store.save_user((await store.get_user("u1")).replace(description="same policy"))  # type: ignore[union-attr]
    assert await store.policy_version() == before


async def test_roles_permissions_and_assignments(store: IdmStore) -> None:
    await store.create_user(user("u1"))
    await store.create_application(Application("a1", "app", "h", redirect_uris=("http://x/cb",)), "u1")
    app = await store.get_application("a1")
    assert app is not None and app.redirect_uris == ("http://x/cb",)
    assert [r.id for r in await store.roles.in_app("a1")][:2] == ["provider", "purchaser"]
    assert await store.user_roles(app_id="a1") == [UserRole("a1", "u1", "provider")]
    await store.roles.create(Role("r1", "reader", "a1"))
    await store.roles.create(Role("r2", "other app", "a2"))
    assert await store.roles.get("a1", "r2") is None
    p = Permission("p1", "read", "a1", action="GET", resource="/v2/.*", is_regex=True, ngsi={"types": ["Room"]})
    await store.permissions.create(p)
    assert await store.permissions.get("a1", "p1") == p
    await store.put_role_permission("r1", "p1")
    await store.put_role_permission("r1", "p1")  # idempotent
    assert [x.id for x in await store.permissions_of_roles(["r1"])] == ["p1"]
    assert {x.id for x in await store.permissions_of_roles(["provider"])} == {"1", "2", "3", "4", "5", "6"}
    assert await store.roles.delete("a1", "r1")
    assert await store.permissions_of_roles(["r1"]) == []
    assert await store.delete_application("a1")
    assert await store.user_roles(user_id="u1") == []
    assert await store.permissions.in_app("a1") == [x for x in await store.permissions.in_app("a1") if x.is_internal]


async def test_tokens_consume_once_and_revoke_family(store: IdmStore) -> None:
    code = Token("c", "code", "a1", "u1", "openid", 10.0, 310.0, family="f1", extra={"redirect_uri": "http://x"})
    await store.save_token(code)
    assert await store.get_token("c") == code
    assert await store.consume_token("c")
    assert not await store.consume_token("c")
    await store.save_token(Token("a", "access", "a1", "u1", "", 10.0, None, family="f1"))
    await store.save_token(Token("r", "refresh", "a1", "u1", "", 10.0, 99.0, family="f1"))
    await store.save_token(Token("other", "access", "a1", "u1", "", 10.0, 20.0, family="f2"))
    assert await store.revoke_family("f1") == 2
    assert (await store.get_token("a")).revoked  # type: ignore[union-attr]
    assert not (await store.get_token("other")).revoked  # type: ignore[union-attr]
    assert await store.purge_tokens(100.0) == 2  # r and other expired; c (until 310) kept
    assert await store.get_token("a") is not None  # permanent: kept


async def test_signing_keys(store: IdmStore) -> None:
    await store.save_key(SigningKey("k1", "RS256", "pem", 1.0))
    await store.extend_key("k1", 50.0)
    await store.extend_key("k1", 40.0)
    await store.retire_key("k1", 60.0)
    assert await store.list_keys() == [SigningKey("k1", "RS256", "pem", 1.0, 60.0, 50.0)]
    await store.delete_key("k1")
    assert await store.list_keys() == []


async def test_data_survives_reopening(store_url: str, anyio_backend: str) -> None:
    first = open_store(store_url)
    await first.open()
    await first.create_user(user("u1"))
    await first.close()
    second = open_store(store_url)
    await second.open()  # the schema again: no error, internal rows not doubled
    assert (await second.get_user("u1")) is not None
    assert len([r for r in await second.roles.in_app("x") if r.is_internal]) == 2
    await second.close()


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(StoreError):
        open_store("mongodb://x")
