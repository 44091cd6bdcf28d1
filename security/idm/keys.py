"""JSON Web Tokens: the identity manager's signing keys, their rotation, signing and checking.

Two kinds of JWT, as ``reference/keyrock/oauth_documentation.md`` ("Select Token Type") and
``oidc_documentation.md`` describe, plus the asymmetric kind OpenID Connect clients expect:

* **the identity manager's key** (RS256 by default, or ES256): JWT access tokens and ID
  tokens anyone can check with the public keys of ``/.well-known/jwks.json``, found by the
  ``kid`` of the token's header;
* **an application's secret** (HS256 with its ``jwt_secret``, Keyrock's way): the
  application and its PEP (Wilma's ``pep.token.secret``) check them with the secret.

Checking refuses, whatever the token says about itself: ``alg: none`` and every algorithm
but the one of the key that is to check it (so an HS256 token "signed" with a public key
is checked as nothing but HS256 with the application's secret, and fails); an unknown
``kid``; a bad signature; ``exp`` passed and ``iat``/``nbf`` in the future (against the
injected clock); another issuer; another audience when one is asked for.

Rotation: the newest key not retired signs. When it is older than the rotation period, a
new key replaces it and the old one is retired; a retired key stays in the JWKS for as
long as a token it signed may be alive (``signed_until``, the latest expiry it signed;
forever once it signed a permanent token), then it is deleted.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .model import SigningKey

ASYMMETRIC = ("RS256", "ES256")
HMAC = "HS256"
MAX_JWT = 16 * 1024  # characters: longer is no token of ours
_LEEWAY = 30.0  # seconds of clock skew allowed for iat/nbf in the future


class InvalidJWT(Exception):
    """The token is no valid JWT of this identity manager (the message says why; never shown to clients)."""


def new_key(alg: str, now: float) -> SigningKey:
    if alg == "RS256":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"unsupported signing algorithm {alg!r} (known: {', '.join(ASYMMETRIC)})")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return SigningKey(kid=secrets.token_urlsafe(12), alg=alg, private_pem=pem, created_at=now)


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


@dataclass
class KeyRing:
    """The keys as the store has them, their parsed forms cached by kid."""

    keys: list[SigningKey] = field(default_factory=list)
    _private: dict[str, Any] = field(default_factory=dict, repr=False)
    _public: dict[str, Any] = field(default_factory=dict, repr=False)

    def replace(self, keys: Iterable[SigningKey]) -> None:
        self.keys = sorted(keys, key=lambda k: (k.created_at, k.kid))
        known = {k.kid for k in self.keys}
        for cache in (self._private, self._public):
            for kid in list(cache):
                if kid not in known:
                    del cache[kid]

    def active(self) -> SigningKey | None:
        live = [k for k in self.keys if k.retired_at is None]
        return live[-1] if live else None

    def published(self, now: float) -> list[SigningKey]:
        """The keys whose tokens may still be alive: the JWKS."""
        return [k for k in self.keys if k.retired_at is None or k.signed_until > now]

    def expired(self, now: float) -> list[SigningKey]:
        return [k for k in self.keys if k.retired_at is not None and k.signed_until <= now]

    def private_key(self, key: SigningKey) -> Any:
        if key.kid not in self._private:
            self._private[key.kid] = serialization.load_pem_private_key(key.private_pem.encode(), password=None)
        return self._private[key.kid]

    def public_key(self, key: SigningKey) -> Any:
        if key.kid not in self._public:
            self._public[key.kid] = self.private_key(key).public_key()
        return self._public[key.kid]

    def jwks(self, now: float) -> dict[str, list[dict[str, Any]]]:
        out = []
        for key in self.published(now):
            algorithm = jwt.algorithms.RSAAlgorithm if key.alg == "RS256" else jwt.algorithms.ECAlgorithm
            jwk = algorithm.to_jwk(self.public_key(key), as_dict=True)
            jwk.update(kid=key.kid, alg=key.alg, use="sig")
            out.append(jwk)
        return {"keys": out}

    def sign(self, claims: Mapping[str, Any], key: SigningKey) -> str:
        return jwt.encode(dict(claims), self.private_key(key), algorithm=key.alg, headers={"kid": key.kid})

    def verify(
        self,
        token: str,
        *,
        now: float,
        issuer: str,
        audience: str | None = None,
        app_secret: Callable[[str], str | None] = lambda app_id: None,
    ) -> dict[str, Any]:
        """The claims of a JWT this identity manager issued, or InvalidJWT.

        ``app_secret(app_id)`` gives the HS256 secret of an application that signs with one
        (None otherwise); the application is the one the token names (``app_id``/``aud``):
        naming another only checks the signature against that one's secret."""
        if len(token) > MAX_JWT:
            raise InvalidJWT("too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidJWT(f"malformed: {exc}") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in (*ASYMMETRIC, HMAC):
            raise InvalidJWT(f"algorithm {alg!r} refused")
        try:
            if alg == HMAC:
                unverified = jwt.decode(token, options={"verify_signature": False})
                app_id = unverified.get("app_id") or unverified.get("aud")
                secret = app_secret(app_id) if isinstance(app_id, str) else None
                if not secret:
                    raise InvalidJWT("no application secret for this token")
                claims = jwt.decode(token, secret, algorithms=[HMAC], options=_OPTIONS)
            else:
                kid = header.get("kid")
                key = next((k for k in self.published(now) if k.kid == kid), None) if isinstance(kid, str) else None
                if key is None:
                    raise InvalidJWT(f"unknown kid {kid!r}")
                if key.alg != alg:
                    raise InvalidJWT(f"algorithm {alg!r} is not the key's {key.alg!r}")
                claims = jwt.decode(token, self.public_key(key), algorithms=[key.alg], options=_OPTIONS)
        except jwt.PyJWTError as exc:
            raise InvalidJWT(f"{type(exc).__name__}: {exc}") from None
        _check_claims(claims, now=now, issuer=issuer, audience=audience)
        return claims


_OPTIONS: Any = {"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False, "verify_iss": False}


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidJWT(f"{name} is not a number")
    return float(value)


def _check_claims(claims: Mapping[str, Any], *, now: float, issuer: str, audience: str | None) -> None:
    if claims.get("iss") != issuer:
        raise InvalidJWT("another issuer")
    exp = _number(claims, "exp")
    if exp is not None and now >= exp:
        raise InvalidJWT("expired")
    for name in ("iat", "nbf"):
        value = _number(claims, name)
        if value is not None and value > now + _LEEWAY:
            raise InvalidJWT(f"{name} in the future")
    if audience is not None:
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if audience not in audiences:
            raise InvalidJWT("another audience")


def sign_hs256(claims: Mapping[str, Any], secret: str) -> str:
    return jwt.encode(dict(claims), secret, algorithm=HMAC)
