"""OAuth 2.0 flows over real HTTP, with authlib's own client where it applies.

Reference: ``reference/keyrock/oauth_documentation.md`` (grants, Basic client auth,
``scope=permanent``/``jwt``, "Revoke Token"), ``oidc_documentation.md`` (id_token of the
code flow), ``security-history-orchestration.md`` §1 "OAuth2 endpoints"; RFC 7636 (PKCE),
RFC 7009 (revocation), RFC 7662 (introspection).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from .conftest import IdM, basic

pytestmark = pytest.mark.anyio

CALLBACK = "http://client.test/callback"


def oauth_client(idm: IdM, app: dict[str, Any], **kwargs: Any) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=app["id"], client_secret=app.get("secret"), redirect_uri=CALLBACK,
        transport=idm.http._transport, base_url="http://idm.test", **kwargs,
    )


async def sign_in(idm: IdM, url: str, username: str, password: str, decision: str = "allow") -> httpx.Response:
    """Open the sign-in page at ``url`` and submit it as a browser would."""
    page = await idm.http.get(url)
    assert page.status_code == 200, page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    fields = {k: v.replace("&amp;", "&").replace("&quot;", '"').replace("&#x27;", "'") for k, v in fields.items()}
    fields.update(username=username, password=password, decision=decision)
    return await idm.http.post("/oauth2/authorize", data=fields, cookies=page.cookies)


async def code_of_sign_in(idm: IdM, url: str, username: str = "alice", password: str = "alice-password") -> str:
    """Sign in at ``url`` and allow: the authorization code the redirect back carries."""
    r = await sign_in(idm, url, username, password)
    return parse_qs(urlsplit(r.headers["location"]).query)["code"][0]


async def test_password_grant_keyrock_shape(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application()
    r = await idm.password_token(app, "alice", "alice-password")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert r.headers["cache-control"] == "no-store"
    wrong = await idm.password_token(app, "alice", "nope")
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"


async def test_password_grant_with_authlib_client(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application()
    async with oauth_client(idm, app) as client:
        token = await client.fetch_token("/oauth2/token", username="alice@test.com", password="alice-password")
    assert token["token_type"] == "bearer" and token["refresh_token"]


async def test_client_must_authenticate_and_be_allowed_the_grant(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application(grant_type=["client_credentials"])
    bad_secret = await idm.http.post("/oauth2/token", headers=basic(app["id"], "wrong"),
                                     data={"grant_type": "password", "username": "alice", "password": "alice-password"})
    assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"
    not_allowed = await idm.password_token(app, "alice", "alice-password")
    assert not_allowed.status_code == 400 and not_allowed.json()["error"] == "unauthorized_client"


async def test_client_credentials_token_has_no_user_nor_refresh(idm: IdM) -> None:
    app = await idm.application()
    async with oauth_client(idm, app) as client:
        token = await client.fetch_token("/oauth2/token", grant_type="client_credentials")
    assert "refresh_token" not in token
    r = await idm.http.get("/user", params={"access_token": token["access_token"]})
    assert r.status_code == 200 and r.json() == {}


async def test_permanent_token_never_expires_and_has_no_refresh(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application()
    r = await idm.password_token(app, "alice", "alice-password", scope="permanent")
    body = r.json()
    assert "expires_in" not in body and "refresh_token" not in body and body["scope"] == "permanent"
    idm.clock.advance(10 * 365 * 86400)
    assert (await idm.http.get("/user", params={"access_token": body["access_token"]})).status_code == 200


async def test_permanent_and_jwt_need_the_application_token_types(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application(token_types=[])
    for scope in ("permanent", "jwt", "jwt,permanent"):
        r = await idm.password_token(app, "alice", "alice-password", scope=scope)
        assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


async def test_access_token_expires_on_the_clock(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application()
    access = (await idm.password_token(app, "alice", "alice-password")).json()["access_token"]
    idm.clock.advance(3599)
    assert (await idm.http.get("/user", params={"access_token": access})).status_code == 200
    idm.clock.advance(1)
    r = await idm.http.get("/user", params={"access_token": access})
    assert r.status_code == 401 and r.json() == {"error": "invalid_token"}


async def test_refresh_rotates_and_reuse_revokes_the_family(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application()
    first = (await idm.password_token(app, "alice", "alice-password")).json()
    refresh = lambda token: idm.http.post("/oauth2/token", headers=basic(app["id"], app["secret"]),
                                         data={"grant_type": "refresh_token", "refresh_token": token})
    second = (await refresh(first["refresh_token"])).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await idm.http.get("/user", params={"access_token": second["access_token"]})).status_code == 200
    reused = await refresh(first["refresh_token"])  # a thief replays the old one
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    for token in (first["access_token"], second["access_token"]):
        assert (await idm.http.get("/user", params={"access_token": token})).status_code == 401
    assert (await refresh(second["refresh_token"])).status_code == 400  # the current one died with its family


async def test_refresh_token_expires_after_14_days(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application()
    token = (await idm.password_token(app, "alice", "alice-password")).json()
    idm.clock.advance(14 * 86400)
    r = await idm.http.post("/oauth2/token", headers=basic(app["id"], app["secret"]),
                            data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
    assert r.status_code == 400


async def test_revoking_a_refresh_token_revokes_its_access_tokens(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application()
    token = (await idm.password_token(app, "alice", "alice-password")).json()
    async with oauth_client(idm, app) as client:
        r = await client.revoke_token("/oauth2/revoke", token=token["refresh_token"], token_type_hint="refresh_token")
    assert r.status_code == 200
    assert (await idm.http.get("/user", params={"access_token": token["access_token"]})).status_code == 401


async def test_revoking_an_access_token(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application()
    token = (await idm.password_token(app, "alice", "alice-password")).json()
    r = await idm.http.post("/oauth2/revoke", headers=basic(app["id"], app["secret"]),
                            data={"token": token["access_token"], "token_type_hint": "access_token"})
    assert r.status_code == 200
    assert (await idm.http.get("/user", params={"access_token": token["access_token"]})).status_code == 401
    unknown = await idm.http.post("/oauth2/revoke", headers=basic(app["id"], app["secret"]), data={"token": "nothing"})
    assert unknown.status_code == 200  # RFC 7009 §2.2: an unknown token is no error


async def test_introspection(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application()
    token = (await idm.password_token(app, "alice", "alice-password")).json()
    async with oauth_client(idm, app) as client:
        r = await client.introspect_token("/oauth2/introspect", token=token["access_token"])
        body = r.json()
        assert body["active"] is True and body["username"] == "alice" and body["client_id"] == app["id"]
        assert body["exp"] - body["iat"] == 3600
        idm.clock.advance(3600)
        assert (await client.introspect_token("/oauth2/introspect", token=token["access_token"])).json() == {"active": False}
        assert (await client.introspect_token("/oauth2/introspect", token="garbage")).json() == {"active": False}
    no_auth = await idm.http.post("/oauth2/introspect", data={"token": token["access_token"]})
    assert no_auth.status_code in (400, 401)


async def test_authorization_code_flow_with_pkce_and_openid(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application(token_types=[])  # no jwt_secret: ID tokens signed with the identity manager's key
    verifier = generate_token(48)
    async with oauth_client(idm, app, code_challenge_method="S256", scope="openid") as client:
        url, state = client.create_authorization_url("http://idm.test/oauth2/authorize", code_verifier=verifier, nonce="n-1")
        r = await sign_in(idm, url, "alice", "alice-password")
        assert r.status_code == 302
        location = r.headers["location"]
        assert location.startswith(CALLBACK) and parse_qs(urlsplit(location).query)["state"] == [state]
        token = await client.fetch_token("/oauth2/token", authorization_response=location, code_verifier=verifier)
    assert token["token_type"] == "bearer" and "id_token" in token
    jwks = (await idm.http.get("/.well-known/jwks.json")).json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token["id_token"])["kid"]]
    claims = jwt.decode(token["id_token"], key.key, algorithms=["RS256"], audience=app["id"], issuer="http://idm.test",
                        options={"verify_exp": False, "verify_iat": False})  # the app's clock is not the wall clock
    assert claims["iat"] <= idm.clock.now < claims["exp"]
    assert claims["username"] == "alice" and claims["nonce"] == "n-1" and claims["sub"] == claims["id"]


async def test_code_is_single_use_and_replay_revokes_its_tokens(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application()
    code = await code_of_sign_in(
        idm, f"/oauth2/authorize?response_type=code&client_id={app['id']}&redirect_uri={CALLBACK}&state=s")
    exchange = lambda: idm.http.post("/oauth2/token", headers=basic(app["id"], app["secret"]),
                                    data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK})
    first = await exchange()
    assert first.status_code == 200
    again = await exchange()
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert (await idm.http.get("/user", params={"access_token": first.json()["access_token"]})).status_code == 401


async def test_code_expires_after_5_minutes(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application()
    code = await code_of_sign_in(idm, f"/oauth2/authorize?response_type=code&client_id={app['id']}&redirect_uri={CALLBACK}")
    idm.clock.advance(300)
    late = await idm.http.post("/oauth2/token", headers=basic(app["id"], app["secret"]),
                               data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK})
    assert late.status_code == 400


async def test_public_client_needs_pkce_s256(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application(client_type="public", grant_type=["authorization_code", "refresh_token"])
    assert app["secret"] is None
    base = f"/oauth2/authorize?response_type=code&client_id={app['id']}&redirect_uri={CALLBACK}&state=s"
    without = await idm.http.get(base)
    assert without.status_code == 302 and "error=invalid_request" in without.headers["location"]
    verifier = generate_token(48)
    plain = await idm.http.get(base + f"&code_challenge={verifier}&code_challenge_method=plain")
    assert plain.status_code == 302 and "error=invalid_request" in plain.headers["location"]
    challenge = create_s256_code_challenge(verifier)
    code = await code_of_sign_in(idm, base + f"&code_challenge={challenge}&code_challenge_method=S256")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "client_id": app["id"]}
    wrong = await idm.http.post("/oauth2/token", data={**form, "code_verifier": generate_token(48)})
    assert wrong.status_code == 400
    form["code"] = await code_of_sign_in(idm, base + f"&code_challenge={challenge}&code_challenge_method=S256")
    ok = await idm.http.post("/oauth2/token", data={**form, "code_verifier": verifier})
    assert ok.status_code == 200, ok.text


async def test_authorize_refuses_unknown_redirect_and_client_on_a_page(idm: IdM) -> None:
    app = await idm.application()
    r = await idm.http.get(f"/oauth2/authorize?response_type=code&client_id={app['id']}&redirect_uri=http://evil.test/cb")
    assert r.status_code == 400 and "text/html" in r.headers["content-type"] and "location" not in r.headers
    r = await idm.http.get("/oauth2/authorize?response_type=code&client_id=nobody&redirect_uri=http://evil.test/cb")
    assert r.status_code == 400 and "location" not in r.headers


async def test_the_sign_in_form_may_lead_back_to_the_application_only(idm: IdM) -> None:
    """CSP ``form-action`` covers the redirects after a form's submission (CSP Level 3, as
    Chromium enforces it): the sign-in page must allow its redirect URI's origin, and no other
    (found by the dashboard's browser test, where Chromium blocked the way back)."""
    app = await idm.application()
    page = await idm.http.get(f"/oauth2/authorize?response_type=code&client_id={app['id']}&redirect_uri={CALLBACK}")
    policy = page.headers["content-security-policy"]
    assert "form-action 'self' http://client.test;" in policy and "default-src 'none'" in policy
    refused = await idm.http.get(f"/oauth2/authorize?response_type=code&client_id={app['id']}&redirect_uri=http://evil.test/x")
    assert "evil.test" not in refused.headers["content-security-policy"]


async def test_authorize_page_escapes_and_needs_csrf(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application(name="<script>alert(1)</script>")
    url = f"/oauth2/authorize?response_type=code&client_id={app['id']}&redirect_uri={CALLBACK}&state=%22%3E%3Cb%3E"
    page = await idm.http.get(url)
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text and '"><b>' not in page.text
    assert page.headers["x-frame-options"] == "DENY"
    forged = {"response_type": "code", "client_id": app["id"], "redirect_uri": CALLBACK, "username": "alice",
              "password": "alice-password", "decision": "allow", "csrf_token": "guess"}
    r = await idm.http.post("/oauth2/authorize", data=forged, cookies={"idm_csrf": "other"})
    assert r.status_code == 403


async def test_deny_redirects_with_access_denied(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application()
    r = await sign_in(idm, f"/oauth2/authorize?response_type=code&client_id={app['id']}&redirect_uri={CALLBACK}&state=x",
                      "alice", "alice-password", decision="deny")
    assert r.status_code == 302 and "error=access_denied" in r.headers["location"] and "state=x" in r.headers["location"]


async def test_lockout_per_account(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application()
    for _ in range(5):
        assert (await idm.password_token(app, "alice", "guess")).json()["error"] == "invalid_grant"
    locked = await idm.password_token(app, "alice", "alice-password")  # the right password, but locked
    assert locked.status_code == 400 and "locked" in locked.json()["error_description"]
    assert int(locked.headers["retry-after"]) > 0
    v1 = await idm.http.post("/v1/auth/tokens", json={"name": "alice", "password": "alice-password"})
    assert v1.status_code == 429 and "locked" in v1.json()["error"]["message"]
    idm.clock.advance(300)
    assert (await idm.password_token(app, "alice", "alice-password")).status_code == 200


async def test_lockout_per_address(idm: IdM) -> None:
    app = await idm.application()
    for i in range(20):
        await idm.user(f"user{i}", "their-password")
    for i in range(20):  # one wrong guess per account: password spraying from one address
        await idm.password_token(app, f"user{i}", "summer2024")
    r = await idm.password_token(app, "user0", "their-password")
    assert r.status_code == 400 and "locked" in r.json()["error_description"]
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=idm.app, client=("198.51.100.7", 1)), base_url="http://idm.test")
    async with other:
        r = await other.post("/oauth2/token", headers=basic(app["id"], app["secret"]),
                             data={"grant_type": "password", "username": "user0", "password": "their-password"})
    assert r.status_code == 200


async def test_login_page_lockout_says_locked(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application()
    url = f"/oauth2/authorize?response_type=code&client_id={app['id']}&redirect_uri={CALLBACK}"
    for _ in range(5):
        assert (await sign_in(idm, url, "alice", "wrong")).status_code == 401
    r = await sign_in(idm, url, "alice", "alice-password")
    assert r.status_code == 429 and "locked" in r.text
