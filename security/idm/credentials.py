"""Credentials: how passwords, client secrets and tokens are made, kept and compared.

* Passwords (people choose them, so they can be guessed) are kept as argon2id hashes
  (``argon2-cffi``'s defaults: RFC 9106's low-memory profile); verifying one costs tens of
  milliseconds and megabytes on purpose, so callers run it off the event loop.
* Client secrets and tokens (256 random bits the identity manager made) are kept as their
  SHA-256: nothing to guess, so a slow hash would only slow every request down, and a
  stolen database still holds no usable credential.
* Every comparison of a secret is constant-time (``hmac.compare_digest``).
* When there is no user to check a password against, :func:`verify_password` still spends
  the time of one argon2 verification, so that a wrong login name cannot be told from a
  wrong password by the time the answer takes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))  # verified against when the user does not exist


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` is the one ``password_hash`` was made from (False for a
    malformed hash; the same work when ``password_hash`` is None)."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    """An opaque credential: 256 bits, URL-safe (access and refresh tokens, codes, secrets)."""
    return secrets.token_urlsafe(32)


def new_password() -> str:
    """A generated password (the first admin's when none is given): 144 bits."""
    return secrets.token_urlsafe(18)


def digest(value: str) -> str:
    """How a token or client secret is kept and looked up: hex SHA-256."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def same_digest(value: str, kept: str) -> bool:
    return hmac.compare_digest(digest(value), kept)


def same(a: str, b: str) -> bool:
    """Constant-time equality of two strings (any characters)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))
