"""JWT access tokens and ID tokens: Keyrock's HS256 ones, the identity manager's asymmetric
ones, every forgery refused, and key rotation that keeps old keys while their tokens live.

Reference: ``reference/keyrock/oauth_documentation.md`` "Select Token Type" (``scope=jwt``,
the application's ``jwt_secret``, payload = the user object + type, iat, exp),
``oidc_documentation.md`` "Validate ID Tokens".
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from security.idm.model import PERMANENT

from .conftest import IdM, basic

pytestmark = pytest.mark.anyio


async def _jwt_app(idm: IdM, **fields: Any) -> tuple[dict[str, Any], str]:
    await idm.user("alice", "alice-password")
    app = await idm.application(**fields)
    r = await idm.password_token(app, "alice", "alice-password", scope="jwt")
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "jwt"
    return app, r.json()["access_token"]


async def _user_status(idm: IdM, token: str, **params: str) -> int:
    return (await idm.http.get("/user", params={"access_token": token, **params})).status_code


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_keyrock_hs256_jwt_checks_with_the_app_secret(idm: IdM) -> None:
    app, token = await _jwt_app(idm)
    claims = jwt.decode(token, app["jwt_secret"], algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False,
                                                                                  "verify_aud": False})
    assert claims["type"] == "user" and claims["username"] == "alice" and claims["app_id"] == app["id"]
    assert claims["exp"] - claims["iat"] == 3600
    assert set(claims) >= {"organizations", "displayName", "roles", "email", "id", "authorization_decision"}
    assert await _user_status(idm, token) == 200
    assert await _user_status(idm, token, app_id=app["id"]) == 200


async def test_asymmetric_jwt_checks_with_the_jwks(idm: IdM) -> None:
    app = await idm.application(jwt_algorithm="RS256")
    await idm.user("alice", "alice-password")
    token = (await idm.password_token(app, "alice", "alice-password", scope="jwt")).json()["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["kid"]
    keys = jwt.PyJWKSet.from_dict((await idm.http.get("/.well-known/jwks.json")).json())
    claims = jwt.decode(token, keys[header["kid"]].key, algorithms=["RS256"], audience=app["id"], issuer="http://idm.test",
                        options={"verify_exp": False, "verify_iat": False})
    assert claims["sub"] == claims["id"]
    assert await _user_status(idm, token) == 200


async def test_forged_jwts_are_refused(idm: IdM) -> None:
    app, token = await _jwt_app(idm)
    _header, payload, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = {
        "alg none": _b64({"alg": "none", "typ": "JWT"}) + "." + payload + ".",
        "bad signature": jwt.encode(claims, "not-the-secret", algorithm="HS256"),
        "wrong issuer": jwt.encode({**claims, "iss": "http://evil.test"}, app["jwt_secret"], algorithm="HS256"),
        "wrong audience": jwt.encode({**claims, "aud": "another-app"}, app["jwt_secret"], algorithm="HS256"),
        "expired": jwt.encode({**claims, "exp": int(idm.clock.now) - 1}, app["jwt_secret"], algorithm="HS256"),
        "unknown kid": jwt.encode(claims, "x" * 32, algorithm="HS256", headers={"kid": "nope"}),
        "truncated": token[:-5],
    }
    # RS256 -> HS256 confusion: an HS256 token whose HMAC key is the public key (PEM) of the JWKS
    service = idm.app.state.service
    key = service.keyring.active()
    public_pem = service.keyring.public_key(key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    import hashlib
    import hmac
    signing_input = _b64({"alg": "HS256", "typ": "JWT", "kid": key.kid}) + "." + payload
    mac = base64.urlsafe_b64encode(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()).rstrip(b"=")
    forged["HS256 with the public key"] = signing_input + "." + mac.decode()
    # an RS256 token signed by another key under our kid
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged["foreign key, our kid"] = jwt.encode({**claims, "aud": app["id"]}, other, algorithm="RS256", headers={"kid": key.kid})
    # our own key, but a token we never issued (not recorded): refused too
    forged["unrecorded"] = service.keyring.sign({**claims, "jti": "new"}, key)
    for what, value in forged.items():
        r = await idm.http.get("/user", params={"access_token": value})
        assert r.status_code == 401, what
        assert r.json() == {"error": "invalid_token"}, what


async def test_jwt_expiry_and_revocation(idm: IdM) -> None:
    app, token = await _jwt_app(idm)
    r = await idm.http.post("/oauth2/revoke", headers=basic(app["id"], app["secret"]), data={"token": token})
    assert r.status_code == 200
    assert await _user_status(idm, token) == 401
    await idm.password_token(app, "alice", "alice-password")
    fresh = (await idm.password_token(app, "alice", "alice-password", scope="jwt")).json()["access_token"]
    idm.clock.advance(3600)
    assert await _user_status(idm, fresh) == 401


async def test_token_for_another_application_is_refused(idm: IdM) -> None:
    _app, token = await _jwt_app(idm)
    other = await idm.application(name="other")
    assert await _user_status(idm, token, app_id=other["id"]) == 401


async def test_key_rotation_keeps_old_keys_until_their_tokens_expire(idm: IdM) -> None:
    app = await idm.application(jwt_algorithm="RS256")
    await idm.user("alice", "alice-password")
    old = (await idm.password_token(app, "alice", "alice-password", scope="jwt")).json()["access_token"]
    old_kid = jwt.get_unverified_header(old)["kid"]
    idm.clock.advance(30 * 86400)  # the key is due for rotation
    new = (await idm.password_token(app, "alice", "alice-password", scope="jwt")).json()["access_token"]
    new_kid = jwt.get_unverified_header(new)["kid"]
    assert new_kid != old_kid
    published = {k["kid"] for k in (await idm.http.get("/.well-known/jwks.json")).json()["keys"]}
    assert new_kid in published  # the old one signed a token that expired 29 days ago: gone
    assert old_kid not in published


async def test_retired_key_stays_published_while_its_tokens_live(idm: IdM) -> None:
    app = await idm.application(jwt_algorithm="RS256")
    await idm.user("alice", "alice-password")
    service = idm.app.state.service
    old = (await idm.password_token(app, "alice", "alice-password", scope="jwt")).json()["access_token"]
    old_kid = jwt.get_unverified_header(old)["kid"]
    idm.clock.advance(600)
    await service.rotate_key()
    published = {k["kid"] for k in (await idm.http.get("/.well-known/jwks.json")).json()["keys"]}
    assert {old_kid, service.keyring.active().kid} <= published
    assert await _user_status(idm, old) == 200  # still checks with the retired key
    idm.clock.advance(3000)  # the old token has expired: its key is no longer published
    published = {k["kid"] for k in (await idm.http.get("/.well-known/jwks.json")).json()["keys"]}
    assert old_kid not in published


async def test_permanent_jwt_pins_its_key(idm: IdM) -> None:
    app = await idm.application(jwt_algorithm="RS256")
    await idm.user("alice", "alice-password")
    token = (await idm.password_token(app, "alice", "alice-password", scope="jwt,permanent")).json()["access_token"]
    assert "exp" not in jwt.decode(token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(token)["kid"]
    assert next(k for k in idm.app.state.service.keyring.keys if k.kid == kid).signed_until == PERMANENT
    await idm.app.state.service.rotate_key()
    idm.clock.advance(365 * 86400)
    assert kid in {k["kid"] for k in (await idm.http.get("/.well-known/jwks.json")).json()["keys"]}
    assert await _user_status(idm, token) == 200


async def test_discovery_document(idm: IdM) -> None:
    body = (await idm.http.get("/.well-known/openid-configuration")).json()
    assert body["issuer"] == "http://idm.test"
    assert body["jwks_uri"] == "http://idm.test/.well-known/jwks.json"
    assert body["token_endpoint"] == "http://idm.test/oauth2/token"
    assert body["code_challenge_methods_supported"] == ["S256"]


async def test_userinfo(idm: IdM) -> None:
    await idm.user("alice", "alice-password")
    app = await idm.application()
    token = (await idm.password_token(app, "alice", "alice-password")).json()["access_token"]
    r = await idm.http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["preferred_username"] == "alice" and r.json()["email"] == "alice@test.com"
    assert (await idm.http.get("/userinfo", headers={"Authorization": "Bearer nope"})).status_code == 401
