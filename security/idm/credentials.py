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
* Passwords migrated from Keycloak keep Keycloak's PBKDF2 hash, written as
  ``$keycloak-pbkdf2-<sha1|sha256|sha512>$<iterations>$<salt, base64>$<hash, base64>``
  (standard base64; the derived key is as long as the hash kept, as Keycloak derives it),
  so that users keep their passwords; :func:`needs_upgrade` tells the login to replace
  such a hash by an argon2id one once the password is known to be right.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))  # verified against when the user does not exist


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


KEYCLOAK_PREFIX = "$keycloak-pbkdf2-"
KEYCLOAK_DIGESTS = ("sha1", "sha256", "sha512")
_MAX_ITERATIONS = 10_000_000  # a hash claiming more is malformed, not a reason to spin for minutes


def keycloak_hash(digest_name: str, iterations: int, salt: bytes, derived: bytes) -> str:
    """The stored form of a Keycloak PBKDF2 credential (see the module text)."""
    if digest_name not in KEYCLOAK_DIGESTS:
        raise ValueError(f"unsupported PBKDF2 digest {digest_name!r}")
    b64 = base64.b64encode
    return f"{KEYCLOAK_PREFIX}{digest_name}${iterations}${b64(salt).decode()}${b64(derived).decode()}"


def _verify_keycloak(password_hash: str, password: str) -> bool:
    try:
        digest_name, iterations, salt, derived = password_hash[len(KEYCLOAK_PREFIX):].split("$")
        count = int(iterations)
        salt_bytes = base64.b64decode(salt, validate=True)
        expected = base64.b64decode(derived, validate=True)
    except (ValueError, binascii.Error):
        return False
    if digest_name not in KEYCLOAK_DIGESTS or not 0 < count <= _MAX_ITERATIONS or not expected:
        return False
    actual = hashlib.pbkdf2_hmac(digest_name, password.encode("utf-8", "surrogatepass"), salt_bytes, count, len(expected))
    return hmac.compare_digest(actual, expected)


def needs_upgrade(password_hash: str) -> bool:
    """Whether a hash that just verified should be replaced by a fresh argon2id one: any
    imported (Keycloak) hash, or an argon2 hash made with weaker parameters than today's."""
    if password_hash.startswith(KEYCLOAK_PREFIX):
        return True
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return False


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` is the one ``password_hash`` was made from (False for a
    malformed hash; the same work when ``password_hash`` is None). A hash imported from
    Keycloak is checked with PBKDF2 as Keycloak did."""
    if password_hash is not None and password_hash.startswith(KEYCLOAK_PREFIX):
        return _verify_keycloak(password_hash, password)
    try:
        # "" is an account without a password (imported without one): it never verifies
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
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
