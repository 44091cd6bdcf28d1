"""Local JWT checks: what the identity manager signs passes; every forgery and misuse is refused
(``alg: none``, HS256 with the public key as secret, another issuer or application, an
unknown kid, a private key in the JWKS, expired, not yet valid, an ID token)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from security.pep.jwtcheck import (
    Expired,
    NotLocal,
    OtherApplication,
    Refused,
    UnknownKey,
    keys_from_jwks,
    verify,
)

NOW = 1_700_000_000.0
ISSUER = "http://idm.test"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def jwk(private: Any, kid: str, alg: str, **extra: Any) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
    doc: dict[str, Any] = algorithm.to_jwk(private.public_key(), as_dict=True)
    doc.update({"kid": kid, "alg": alg, "use": "sig", **extra})
    return doc


JWKS = {"keys": [jwk(RSA_KEY, "r1", "RS256"), jwk(EC_KEY, "e1", "ES256")]}
KEYS = keys_from_jwks(JWKS)
CLAIMS = {"iss": ISSUER, "aud": "app1", "app_id": "app1", "type": "user", "id": "u1", "username": "alice",
          "iat": int(NOW), "exp": int(NOW) + 3600}


def sign(claims: dict[str, Any] | None = None, key: Any = RSA_KEY, alg: str = "RS256", kid: str | None = "r1",
         **changes: Any) -> str:
    body = {**CLAIMS, **(claims or {})}
    body.update(changes)
    body = {k: v for k, v in body.items() if v is not None}  # None: leave the claim out
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid} if kid else None)


def check(token: str, **options: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {"keys": KEYS, "secret": None, "issuer": ISSUER, "audiences": frozenset({"app1"}),
                                 "now": NOW}
    arguments.update(options)
    return verify(token, **arguments)


def b64(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


def test_the_identity_managers_tokens_pass() -> None:
    assert check(sign())["username"] == "alice"
    assert check(sign(key=EC_KEY, alg="ES256", kid="e1"))["id"] == "u1"
    assert check(sign(), audiences=None)["id"] == "u1"  # no application configured: any
    assert check(sign(aud=["other", "app1"]))["id"] == "u1"


def test_keyrock_hs256_with_the_configured_secret() -> None:
    secret = "s" * 32
    token = jwt.encode({k: v for k, v in CLAIMS.items() if k not in ("iss", "aud")}, secret, algorithm="HS256")
    assert check(token, secret=secret)["username"] == "alice"  # app_id stands for aud, no iss: Keyrock's shape
    with pytest.raises(NotLocal):
        check(token)  # no secret here: the identity manager checks it
    with pytest.raises(Refused):
        check(token, secret="t" * 32)


def test_alg_none_is_refused() -> None:
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(CLAIMS)}."
    with pytest.raises(Refused):
        check(token)
    with pytest.raises(Refused):
        check(f"{b64({'alg': 'None', 'kid': 'r1'})}.{b64(CLAIMS)}.")


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64({"alg": "HS256", "typ": "JWT", "kid": "r1"})
    payload = b64(CLAIMS)
    signature = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    with pytest.raises(NotLocal):
        check(token)  # no application secret here: never checked with the public key
    with pytest.raises(Refused):
        check(token, secret="the-real-app-secret-of-32-bytes!!")


def test_an_algorithm_other_than_the_keys_is_refused() -> None:
    with pytest.raises(Refused):
        check(sign(key=EC_KEY, alg="ES256", kid="r1"))  # the RSA key's kid, another algorithm
    with pytest.raises(Refused):
        check(sign(alg="RS512"))


def test_wrong_issuer_audience_kid_and_times() -> None:
    with pytest.raises(Refused):
        check(sign(iss="http://evil.test"))
    with pytest.raises(Refused):
        check(sign(iss=None))
    with pytest.raises(OtherApplication):
        check(sign(aud="app2", app_id="app2"))
    with pytest.raises(Refused):
        check(sign(aud=None))  # an asymmetric token names its audience
    with pytest.raises(UnknownKey):
        check(sign(kid="nope"))
    with pytest.raises(UnknownKey):
        check(sign(kid=None))
    with pytest.raises(Expired):
        check(sign(exp=int(NOW) - 1))
    with pytest.raises(Refused):
        check(sign(nbf=int(NOW) + 3600))
    with pytest.raises(Refused):
        check(sign(exp="tomorrow"))
    assert check(sign(exp=None))["id"] == "u1"  # permanent


def test_an_id_token_is_not_an_access_token() -> None:
    with pytest.raises(Refused):
        check(sign(type=None, nonce="n"))


def test_a_bad_signature_is_refused() -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(Refused):
        check(sign(key=other))


def test_no_key_set_or_issuer_means_ask_the_identity_manager() -> None:
    with pytest.raises(NotLocal):
        check(sign(), keys=None)
    with pytest.raises(NotLocal):
        check(sign(), issuer=None)


def test_the_jwks_keeps_only_usable_public_signing_keys() -> None:
    private = jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY, as_dict=True)
    doc = {"keys": [
        jwk(RSA_KEY, "ok", "RS256"),
        {**private, "kid": "private", "alg": "RS256"},
        jwk(RSA_KEY, "enc", "RS256", use="enc"),
        {**jwk(RSA_KEY, "x", "RS256"), "alg": "ES256", "kid": "mixed"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
        {"kid": "junk"},
        "not an object",
    ]}
    assert set(keys_from_jwks(doc)) == {"ok"}
    assert keys_from_jwks({"keys": "no"}) == {} and keys_from_jwks([]) == {}


@settings(max_examples=300)
@given(st.one_of(
    st.text(max_size=300),
    st.builds(lambda h, p, s: f"{h}.{p}.{s}", st.text("eyJ0123456789abcdefABCDEF_-", max_size=60),
              st.text("eyJ0123456789abcdef_-", max_size=60), st.text("abc_-", max_size=40)),
    st.builds(lambda h, p: f"{b64(h)}.{b64(p)}.c2ln",
              st.dictionaries(st.sampled_from(["alg", "kid", "typ"]),
                              st.sampled_from(["RS256", "HS256", "none", "r1", 1])),
              st.dictionaries(st.sampled_from(list(CLAIMS)), st.one_of(st.none(), st.integers(), st.text(max_size=5)))),
))
def test_fuzzed_tokens_never_pass_and_never_crash(token: str) -> None:
    with pytest.raises((Refused, NotLocal)):
        check(token, secret="s" * 32)
