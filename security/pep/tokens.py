"""Where a request's token is, in Wilma's order (pure; reference
``security-history-orchestration.md`` §2 "Token extraction"):

1. ``Authorization: Bearer <token>`` (the scheme in any case);
2. else ``X-Auth-Token: <token>``;
3. else, Wilma's quirk, an ``Authorization`` header of another scheme: its second word,
   base64-decoded, is the token (``Authorization: Basic base64(token)``).

Nothing at all is :func:`token_of` None (401 MissingAuthenticationToken); something that
cannot be a token raises :class:`Malformed` (401 InvalidAuthenticationToken) without
asking anyone: a token is RFC 6750's ``b64token`` (letters, digits and ``-._~+/``, then
``=`` padding), at most 16 KiB. Keyrock's opaque tokens, ours and JWTs all are.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Final

MAX_TOKEN: Final = 16 * 1024
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class Malformed(ValueError):
    """Something is given as a token that cannot be one (the message says what, never the value)."""


_SEEN: dict[str, None] = {}  # tokens already found well-formed (a memo: a JWT's check is 5 µs, a lookup 0.3)
_SEEN_MAX = 4096


def _checked(token: str, where: str) -> str:
    if token in _SEEN:
        return token
    if len(token) > MAX_TOKEN:
        raise Malformed(f"the token in {where} is too long")
    if _B64TOKEN.fullmatch(token) is None:
        raise Malformed(f"the token in {where} is malformed")
    if len(_SEEN) >= _SEEN_MAX:
        _SEEN.clear()
    _SEEN[token] = None
    return token


def token_of(headers: Mapping[str, str]) -> str | None:
    """The token of a request whose headers (lowercase names) are given; None when there is
    none; :class:`Malformed` for a value that is no token."""
    authorization = headers.get("authorization")
    scheme, word = "", ""
    if authorization is not None:
        parts = authorization.strip().split(" ")
        scheme = parts[0]
        if scheme.lower() == "bearer":
            if len(parts) != 2:
                raise Malformed("the Authorization header is not 'Bearer <token>'")
            return _checked(parts[1], "Authorization")
        word = parts[1] if len(parts) == 2 else ""
    given = headers.get("x-auth-token")
    if given is not None:
        return _checked(given.strip(), "X-Auth-Token")
    if authorization is None:
        return None
    if not word or len(word) > MAX_TOKEN * 2:
        raise Malformed("the Authorization header holds no token")
    try:
        decoded = base64.b64decode(word, validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        raise Malformed("the Authorization header's value is not base64") from None
    return _checked(decoded, "Authorization")


def looks_like_jwt(token: str) -> bool:
    """Three base64url parts, the first a JSON object (``eyJ``): worth checking as a JWT."""
    return token.startswith("eyJ") and token.count(".") == 2
