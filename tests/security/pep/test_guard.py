"""The PEP guard in front of the real broker, asking the real identity manager (both in-process;
see conftest.py for the world): Wilma's refusals, the farmer example with its projection,
what is cached and when it is forgotten, JWT attacks, and the other PDPs' paths."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from ngsi.client.asgi import ASGITransport
from security.pep.guard import PEP, PublicPaths
from security.pep.replies import EXPIRED, INVALID, INVALID_ROLE, MISSING

from .conftest import IDM_URL, CountingTransport, Monotonic, World, incoming, stack

pytestmark = pytest.mark.anyio

FIELD = {"id": "urn:ngsi-ld:Field:1", "type": "Field", "crop": {"value": "wheat"}, "owner": {"value": "alice"}}


def wilma(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"type", "title", "detail"}, body
    return dict(body)


# -- refusals --------------------------------------------------------------------------------


async def test_no_token_is_401_with_challenge_and_wilmas_body(world: World) -> None:
    async with stack(world) as s:
        r = await s.get("/v2/entities")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == f'Bearer realm="{IDM_URL}"'
        detail = "Auth-token not found in request header"
        assert wilma(r) == {"type": MISSING, "title": "Unauthorized", "detail": detail}
        assert "fiware-correlator" in r.headers  # the broker's front still adds its headers
        assert s.transport.total() == 0  # nobody was asked


async def test_malformed_unknown_expired_and_revoked_tokens_are_401(world: World) -> None:
    async with stack(world) as s:
        r = await s.get("/v2/entities?type=Field", None, Authorization="Bearer a b")
        assert r.status_code == 401 and wilma(r)["type"] == INVALID
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        r = await s.get("/v2/entities?type=Field", "no-such-token")
        assert r.status_code == 401 and wilma(r)["type"] == INVALID

        revoked = await world.token("alice")
        app = world.app
        basic = base64.b64encode(f"{app['id']}:{app['secret']}".encode()).decode()
        answer = await world.idm.http.post("/oauth2/revoke", data={"token": revoked},
                                           headers={"Authorization": f"Basic {basic}"})
        assert answer.status_code == 200, answer.text
        r = await s.get("/v2/entities?type=Field", revoked)
        assert r.status_code == 401 and wilma(r)["type"] == INVALID

        jwt_token = await world.token("alice", jwt=True)
        opaque = await world.token("alice")
        world.idm.clock.advance(3601)  # both expire (the PEP reads the same wall clock)
        r = await s.get("/v2/entities?type=Field", jwt_token)
        assert r.status_code == 401 and wilma(r)["type"] == EXPIRED
        r = await s.get("/v2/entities?type=Field", opaque)
        assert r.status_code == 401 and wilma(r)["type"] == INVALID  # /user does not say why


async def test_a_token_revoked_after_use_is_refused_once_its_answer_leaves_the_cache(world: World) -> None:
    async with stack(world, cache_time=60) as s:
        token = await world.token("alice")
        assert (await s.get("/v2/entities?type=Field", token)).status_code == 200
        app = world.app
        basic = base64.b64encode(f"{app['id']}:{app['secret']}".encode()).decode()
        await world.idm.http.post("/oauth2/revoke", data={"token": token}, headers={"Authorization": f"Basic {basic}"})
        assert (await s.get("/v2/entities?type=Field", token)).status_code == 200  # revocation moves no version
        world.idm.clock.advance(61)
        assert (await s.get("/v2/entities?type=Field", token)).status_code == 401


# -- the farmer example ----------------------------------------------------------------------


async def test_farmer_reads_and_updates_fields_of_farm1_in_coop_without_owner(world: World) -> None:
    """docs/authorization.md's example; the projection is in the context and the broker applies it."""
    async with stack(world) as s:
        token = await world.token("alice")
        r = await s.http.post("/v2/entities", json=FIELD, headers=s.headers(token, "coop", "/farm1", {}))
        assert r.status_code == 403 and "does not grant create" in wilma(r)["detail"]
    admin_policy = {"id": "coop-admins", "actions": ["*"], "tenant": "coop"}
    await world.permission("coop-admins", admin_policy, "farmer")  # so that alice can create, then read back
    async with stack(world) as s:
        token = await world.token("alice")
        h = s.headers(token, "coop", "/farm1", {})
        assert (await s.http.post("/v2/entities", json=FIELD, headers=h)).status_code == 201
        r = await s.get("/v2/entities?type=Field", token)
        assert r.status_code == 200
        assert "owner" in r.json()[0]  # coop-admins grants every attribute: no projection
        # without the admin policy (gone from the identity manager, seen within a second), the read is projected
        await world.idm.http.delete(f"{world.a()}/roles/{world.roles['farmer']['id']}/permissions/"
                                    f"{(await _permission_id(world, 'coop-admins'))}", headers=world.idm.admin())
        s.monotonic.advance(1.0)
        r = await s.get("/v2/entities?type=Field&options=keyValues", token)
        assert r.status_code == 200, r.text
        assert r.json() == [{"id": FIELD["id"], "type": "Field", "crop": "wheat"}]
        ctx = s.contexts[-1]
        assert ctx.attrs_hidden == frozenset({"owner"}) and ctx.attrs_visible is None
        assert ctx.identity.username == "alice" and "farmer" in ctx.identity.roles
        assert "coop-org" in ctx.identity.organizations and ctx.identity.app_id == world.app["id"]
        one = await s.get(f"/v2/entities/{FIELD['id']}?type=Field", token)
        assert one.status_code == 200 and "owner" not in one.json()
        assert (await s.get(f"/v2/entities/{FIELD['id']}/attrs/owner?type=Field", token)).status_code == 403
        patch = await s.http.patch(f"/v2/entities/{FIELD['id']}/attrs?type=Field", json={"crop": {"value": "rye"}},
                                   headers=s.headers(token, "coop", "/farm1", {}))
        assert patch.status_code == 204, patch.text
        assert s.contexts[-1].attrs_hidden == frozenset()  # writes are never projected
        owner = await s.http.patch(f"/v2/entities/{FIELD['id']}/attrs?type=Field", json={"owner": {"value": "me"}},
                                   headers=s.headers(token, "coop", "/farm1", {}))
        assert owner.status_code == 403 and wilma(owner)["type"] == INVALID_ROLE
        assert "owner" in wilma(owner)["detail"]
        assert (await s.get("/v2/entities?type=Barn", token)).status_code == 403
        assert (await s.get("/v2/entities?type=Field", token, path_header="/farm2")).status_code == 403
        assert (await s.get("/v2/entities?type=Field", token, tenant="town")).status_code == 403


async def _permission_id(world: World, name: str) -> str:
    r = await world.idm.http.get(f"{world.a()}/permissions", headers=world.idm.admin())
    return next(p["id"] for p in r.json()["permissions"] if p["name"] == name)


async def test_a_user_without_a_role_on_the_tenant_is_403_or_401_strictly(world: World) -> None:
    async with stack(world) as s:
        bob, carol = await world.token("bob"), await world.token("carol")
        r = await s.get("/v2/entities?type=Field", bob)
        assert r.status_code == 403
        assert wilma(r) == {"type": INVALID_ROLE, "title": "Forbidden",
                            "detail": wilma(r)["detail"]} and "bound to organization coop-org" in wilma(r)["detail"]
        assert "www-authenticate" not in r.headers
        assert (await s.get("/v2/entities", bob, tenant="town", path_header="/")).status_code == 200
        assert (await s.get("/v2/entities", carol, tenant="town", path_header="/")).status_code == 403
    async with stack(world, deny_status=401) as s:
        r = await s.get("/v2/entities?type=Field", await world.token("bob"))
        assert r.status_code == 401 and wilma(r)["type"] == INVALID_ROLE and wilma(r)["title"] == "Unauthorized"


async def test_public_paths_and_preflights_need_no_token(world: World) -> None:
    async with stack(world) as s:
        assert (await s.http.get("/version")).status_code == 200
        assert (await s.http.get("/version/")).status_code == 200
        r = await s.http.options("/v2/entities", headers={"Origin": "http://a", "Access-Control-Request-Method": "GET"})
        assert r.status_code != 401
        assert (await s.http.get("/v2")).status_code == 401  # only the configured paths
        assert s.transport.total() == 0
    async with stack(world, public_paths=("/v2/*",), pdp="none") as s:
        assert (await s.http.get("/v2/entities")).status_code == 200
    public = PublicPaths(["/v2/*", "/version"])
    assert "/v2/entities" in public and "/version/" in public and "/v2" not in public
    assert "/v2/../admin" not in public and "/v2/./x" not in public  # no dot segments in a public subtree


async def test_magic_key_is_off_unless_configured(world: World) -> None:
    async with stack(world) as s:
        assert (await s.get("/v2/entities", None, **{"X-Auth-Token": "magic"})).status_code == 401
    async with stack(world, magic_key="s3cret-magic") as s:
        assert (await s.get("/v2/entities", None, **{"X-Auth-Token": "s3cret-magic"})).status_code == 200
        assert (await s.get("/v2/entities", None, **{"X-Auth-Token": "s3cret-magiC"})).status_code == 401


# -- caching -----------------------------------------------------------------------------------


async def test_jwt_path_does_not_call_the_identity_manager_per_request(world: World) -> None:
    async with stack(world) as s:
        token = await world.token("alice", jwt=True)
        assert (await s.get("/v2/entities?type=Field", token)).status_code == 200
        first = dict(s.transport.calls)
        assert "/user" not in first  # checked locally
        for _ in range(50):
            assert (await s.get("/v2/entities?type=Field", token)).status_code == 200
        assert dict(s.transport.calls) == first
        s.monotonic.advance(1.0)  # once a second: one cheap version poll, nothing else
        for _ in range(50):
            assert (await s.get("/v2/entities?type=Field", token)).status_code == 200
        assert s.transport.total() == sum(first.values()) + 1
        assert s.transport.calls["/v1/policy_version"] == first["/v1/policy_version"] + 1
    async with stack(world, pdp="none") as s:  # authentication only: not even the version
        token = await world.token("alice", jwt=True)
        for _ in range(20):
            assert (await s.get("/v2/entities", token)).status_code == 200
        s.monotonic.advance(10)
        assert (await s.get("/v2/entities", token)).status_code == 200
        assert set(s.transport.calls) == {"/.well-known/openid-configuration", "/.well-known/jwks.json"}


async def test_opaque_token_is_cached_and_forgotten_within_a_second_of_a_role_removal(world: World) -> None:
    async with stack(world) as s:
        token = await world.token("alice")
        assert (await s.get("/v2/entities?type=Field", token)).status_code == 200
        assert s.transport.calls["/user"] == 1
        for _ in range(20):
            assert (await s.get("/v2/entities?type=Field", token)).status_code == 200
        assert s.transport.calls["/user"] == 1 and s.transport.calls["/v1/policy_version"] == 1
        await world.remove_org_role()
        assert (await s.get("/v2/entities?type=Field", token)).status_code == 200  # within the second: cached
        s.monotonic.advance(1.0)
        r = await s.get("/v2/entities?type=Field", token)
        assert r.status_code == 403, r.text
        assert s.transport.calls["/user"] == 2 and s.transport.calls["/v1/policy_version"] == 2
        assert s.transport.calls["/v1/ngsi_policies"] == 2  # the policy set is fetched again too


async def test_role_removal_takes_effect_within_about_a_second_in_real_time(world: World) -> None:
    async with stack(world) as s:
        s.pep.freshness.clock = time.monotonic  # the real clock, the default 1 s
        token = await world.token("alice")
        assert (await s.get("/v2/entities?type=Field", token)).status_code == 200
        await world.remove_org_role()
        removed = time.monotonic()
        while (await s.get("/v2/entities?type=Field", token)).status_code == 200:
            assert time.monotonic() - removed < 1.5
            await asyncio.sleep(0.05)
        assert time.monotonic() - removed <= 1.2


async def test_a_newer_version_on_a_user_answer_forgets_the_cache_at_once(world: World) -> None:
    async with stack(world) as s:
        alice = await world.token("alice")
        assert (await s.get("/v2/entities?type=Field", alice)).status_code == 200
        await world.remove_org_role()
        await s.get("/v2/entities", await world.token("bob"), tenant="town", path_header="/")  # its /user sees v+1
        assert (await s.get("/v2/entities?type=Field", alice)).status_code == 403  # no clock moved


# -- JWT attacks, through the whole stack --------------------------------------------------------


def _b64(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


async def test_jwt_attacks_are_refused(world: World) -> None:
    async with stack(world) as s:
        good = await world.token("alice", jwt=True)
        claims = jwt.decode(good, options={"verify_signature": False})
        header = jwt.get_unverified_header(good)
        service = world.idm.app.state.service
        key = next(k for k in service.keyring.keys if k.kid == header["kid"])
        private = service.keyring.private_key(key)

        none = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
        pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        signing = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': header['kid']})}.{_b64(claims)}"
        hs_with_public = signing + "." + base64.urlsafe_b64encode(
            hmac.new(pem, signing.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
        wrong_iss = jwt.encode({**claims, "iss": "http://evil.test"}, private, algorithm="RS256",
                               headers={"kid": header["kid"]})
        unknown_kid = jwt.encode(claims, private, algorithm="RS256", headers={"kid": "not-a-kid"})
        for token in (none, hs_with_public, wrong_iss, unknown_kid):
            r = await s.get("/v2/entities?type=Field", token)
            assert r.status_code == 401, (token[:20], r.text)
            assert wilma(r)["type"] == INVALID
        other = await world.token("alice", jwt=True, app=world.other_app)  # another application's audience
        r = await s.get("/v2/entities?type=Field", other)
        assert r.status_code == 401 and wilma(r)["type"] == INVALID_ROLE
        assert (await s.get("/v2/entities?type=Field", good)).status_code == 200

        jwks = s.transport.calls["/.well-known/jwks.json"]
        for i in range(10):  # made-up kids: the JWKS is fetched again at most once per period
            forged = jwt.encode(claims, private, algorithm="RS256", headers={"kid": f"kid-{i}"})
            assert (await s.get("/v2/entities?type=Field", forged)).status_code == 401
        assert s.transport.calls["/.well-known/jwks.json"] <= jwks + 1


async def test_trusted_applications_tokens_pass(world: World) -> None:
    async with stack(world, trusted_apps=(world.other_app["id"],), pdp="none") as s:
        trusted = await world.token("alice", jwt=True, app=world.other_app)
        assert (await s.get("/v2/entities", trusted)).status_code == 200
        assert (await s.get("/v2/entities", await world.token("alice", app=world.other_app))).status_code == 200
    async with stack(world, pdp="none") as s:
        r = await s.get("/v2/entities", await world.token("alice", app=world.other_app))
        assert r.status_code == 401  # our identity manager refuses it for app_id itself


# -- other PDPs ------------------------------------------------------------------------------------


async def test_keyrock_levels_through_user(world: World) -> None:
    h = world.idm.admin()
    body = {"permission": {"name": "read entities", "action": "GET", "resource": "/v2/entities"}}
    permission = (await world.idm.http.post(f"{world.a()}/permissions", headers=h, json=body)).json()["permission"]
    viewer = world.roles["viewer"]["id"]
    await world.idm.http.put(f"{world.a()}/roles/{viewer}/permissions/{permission['id']}", headers=h)
    async with stack(world, pdp="idm") as s:
        bob = await world.token("bob")
        assert (await s.get("/v2/entities", bob, tenant="town", path_header="/")).status_code == 200
        assert s.transport.calls["/user"] == 1  # authentication and decision in one call
        assert (await s.get("/v2/entities", bob, tenant="town", path_header="/")).status_code == 200
        assert s.transport.calls["/user"] == 1
        r = await s.http.post("/v2/entities", json=FIELD, headers=s.headers(bob, "town", "/", {}))
        assert r.status_code == 403 and wilma(r)["type"] == INVALID_ROLE
        assert (await s.get("/v2/types", bob)).status_code == 403


async def test_organizations_header_must_name_one_of_the_users_organizations(world: World) -> None:
    async with stack(world, pdp="none", organizations=True, organizations_header="X-Organization") as s:
        alice = await world.token("alice")
        assert (await s.get("/v2/entities", alice, **{"X-Organization": world.org["id"]})).status_code == 200
        assert (await s.get("/v2/entities", alice, **{"X-Organization": "another"})).status_code == 403
        assert (await s.get("/v2/entities", alice)).status_code == 403


async def test_the_agent_guard_leaves_the_south_measure_routes_to_api_keys(world: World) -> None:
    pep = PEP(world.settings(pdp="none"), service="agent", transport=CountingTransport(ASGITransport(world.idm.app)),
              now=world.idm.clock, monotonic=Monotonic())
    for path in ("/iot/d", "/iot/json", "/iot/json/attrs/t", "/iot/waziup", "/iot/about", "/version"):
        assert await pep(incoming("POST", path, query=b"k=1&i=d1")) is None
    verdict = await pep(incoming("POST", "/iot/devices"))
    assert verdict is not None and verdict.reply is not None and verdict.reply.status_code == 401


async def test_a_rotated_signing_key_is_fetched_and_a_flood_of_made_up_kids_locks_nobody_out(world: World) -> None:
    async with stack(world) as s:
        assert (await s.get("/v2/entities?type=Field", await world.token("alice", jwt=True))).status_code == 200
        keyring = world.idm.app.state.service.keyring
        claims = jwt.decode(await world.token("alice", jwt=True), options={"verify_signature": False})
        forged = jwt.encode(claims, keyring.private_key(keyring.active()), algorithm="RS256", headers={"kid": "made-up"})
        s.monotonic.advance(5.0)
        assert (await s.get("/v2/entities?type=Field", forged)).status_code == 401  # refetches the JWKS now
        await world.idm.app.state.service.rotate_key()
        fresh = await world.token("alice", jwt=True)  # signed with the new key
        assert (await s.get("/v2/entities?type=Field", fresh)).status_code == 401  # no refetch within 5 s
        s.monotonic.advance(5.0)
        assert (await s.get("/v2/entities?type=Field", fresh)).status_code == 200  # not remembered as refused
