"""Local checks of the identity manager's JWTs (pure: keys, secret, issuer and time are given).

Two kinds, as the identity manager issues them (docs/security.md, "Local JWT checks"):

* signed with the identity manager's key (RS256 or ES256), found by the token's ``kid`` in
  the JWKS; the algorithm is the key's, whatever the token's header claims;
* signed HS256 with the application's secret (Keyrock's way, Wilma's ``pep.token.secret``),
  checked only when that secret is configured.

Refused, whatever the token says about itself: ``alg: none`` and any algorithm but these
three; an algorithm other than the named key's; an HS256 token is checked with the
application's secret only, never with a public key (the classic "HS256 signed with the
RSA public key" forgery); an unknown ``kid`` (:class:`UnknownKey`: the caller may refetch
the JWKS once); a bad signature; ``exp`` passed (:class:`Expired`, Wilma's
ExpiredAuthenticationToken); ``nbf``/``iat`` in the future beyond a leeway; another
issuer; another application (``aud`` or Keyrock's ``app_id`` claim not among the accepted
ones: :class:`OtherApplication`); no ``type`` claim (an ID token is not an access token).

A token that cannot be checked here (HS256 without the secret; an asymmetric one while no
key set or issuer is known, e.g. behind a Keyrock without discovery) raises
:class:`NotLocal`: the caller asks the identity manager instead. Revocation is invisible
here: a JWT is good until its ``exp``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import jwt

ASYMMETRIC: Final = ("RS256", "ES256")
HMAC: Final = "HS256"
LEEWAY: Final = 30.0  # seconds of clock skew allowed for iat/nbf
_OPTIONS: Final[Any] = {
    "verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False, "verify_iss": False,
}
_CURVES: Final = {"ES256": "P-256"}


class Refused(Exception):
    """Not a valid JWT for this PEP (the message says why: for logs, not for clients)."""


class Expired(Refused):
    pass


class OtherApplication(Refused):
    pass


class UnknownKey(Refused):
    """No key of the set has the token's kid (the caller may refetch the set once)."""


class NotLocal(Exception):
    """This token cannot be checked here: ask the identity manager."""


@dataclass(frozen=True, slots=True)
class Key:
    kid: str
    alg: str
    key: Any  # the public key object


def keys_from_jwks(doc: Any) -> dict[str, Key]:
    """The usable signing keys of a JWKS document by kid: RS256 and ES256 (P-256) public
    keys with a kid; anything else in it is left out."""
    keys: dict[str, Key] = {}
    entries = doc.get("keys") if isinstance(doc, dict) else None
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict):
            continue
        kid, kty, alg = entry.get("kid"), entry.get("kty"), entry.get("alg")
        if not isinstance(kid, str) or not kid or entry.get("use", "sig") != "sig":
            continue
        if alg is None:
            alg = "RS256" if kty == "RSA" else "ES256" if kty == "EC" else None
        if alg not in ASYMMETRIC or (alg == "RS256") != (kty == "RSA"):
            continue
        if alg in _CURVES and entry.get("crv") != _CURVES[alg]:
            continue
        if "d" in entry:  # a private key has no business in a JWKS: do not use it
            continue
        try:
            keys[kid] = Key(kid, alg, jwt.PyJWK(entry, algorithm=alg).key)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
    return keys


@dataclass(frozen=True, slots=True)
class Header:
    alg: str
    kid: str | None


def header_of(token: str) -> Header:
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise Refused(f"malformed JWT: {type(exc).__name__}") from None
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in (*ASYMMETRIC, HMAC):
        raise Refused(f"algorithm {str(alg)[:20]!r} refused")
    return Header(alg, kid if isinstance(kid, str) else None)


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Refused(f"{name} is not a number")
    return float(value)


def check_claims(
    claims: Mapping[str, Any], *, now: float, issuer: str | None, audiences: frozenset[str] | None, need_aud: bool
) -> None:
    """Time, issuer, application and kind of a token whose signature is good."""
    exp = _number(claims, "exp")
    for name in ("iat", "nbf"):
        value = _number(claims, name)
        if value is not None and value > now + LEEWAY:
            raise Refused(f"{name} in the future")
    if claims.get("type") not in ("user", "app"):
        raise Refused("not an access token (no type user or app)")
    iss = claims.get("iss")
    if issuer is not None and (iss is not None or need_aud) and iss != issuer:
        raise Refused("another issuer")
    aud = claims.get("aud")
    named = [a for a in (aud if isinstance(aud, list) else [aud]) if isinstance(a, str)]
    if need_aud and not named:
        raise Refused("no audience")
    if audiences is not None:
        app = claims.get("app_id")
        if not (set(named) & audiences) and not (not named and isinstance(app, str) and app in audiences):
            raise OtherApplication("issued to another application")
    if exp is not None and now >= exp:
        raise Expired("expired")


def verify(
    token: str,
    *,
    keys: Mapping[str, Key] | None,
    secret: str | None,
    issuer: str | None,
    audiences: frozenset[str] | None,
    now: float,
) -> dict[str, Any]:
    """The claims of a good token; Refused (Expired, OtherApplication) or NotLocal.

    ``keys`` None: no JWKS is known (asymmetric tokens are NotLocal); ``issuer`` None: the
    issuer is unknown (likewise). ``audiences`` None: any application."""
    header = header_of(token)
    try:
        if header.alg == HMAC:
            if not secret:
                raise NotLocal("HS256 without the application's secret")
            claims = jwt.decode(token, secret, algorithms=[HMAC], options=_OPTIONS)
            need_aud = False
        else:
            if keys is None or issuer is None:
                raise NotLocal("no key set or issuer known")
            key = keys.get(header.kid) if header.kid is not None else None
            if key is None:
                raise UnknownKey("unknown kid")
            if key.alg != header.alg:
                raise Refused(f"algorithm {header.alg} is not the key's {key.alg}")
            claims = jwt.decode(token, key.key, algorithms=[key.alg], options=_OPTIONS)
            need_aud = True
    except jwt.PyJWTError as exc:
        raise Refused(f"{type(exc).__name__}") from None
    if not isinstance(claims, dict):
        raise Refused("the payload is not an object")
    check_claims(claims, now=now, issuer=issuer, audiences=audiences, need_aud=need_aud)
    return claims
