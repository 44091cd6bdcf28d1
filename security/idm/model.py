"""The identity manager's records, as plain frozen dataclasses (no I/O, no framework).

They mirror Keyrock's tables (ging/fiware-idm ``models/*.js``; the /v1 shapes in
``reference/keyrock/apiary.apib``) closely enough that the /v1 API renders them in
Keyrock's JSON, with the differences that security asks for:

* secrets are never kept: a user's password is an argon2id hash; an application's client
  secret and every token (access, refresh, authorization code, /v1 API token) are kept as
  the SHA-256 of their value (they are long random strings, so a fast hash is enough and a
  stolen database holds no usable credential). ``Application.jwt_secret`` is the one
  exception: it is an HMAC key the identity manager must sign with (Keyrock's HS256 JWTs);
* times are seconds since the epoch (floats); the /v1 API renders them in ISO 8601.

Internal roles and permissions are Keyrock's seeded ones: the roles ``provider`` (all six
internal permissions: whoever holds it administers the application) and ``purchaser``
(permission 5, assign the application's public roles), shared by every application.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Self

PROVIDER = "provider"
PURCHASER = "purchaser"
INTERNAL_ROLES: dict[str, str] = {PROVIDER: "Provider", PURCHASER: "Purchaser"}
# Keyrock's seeded internal permissions (seeders/*): id -> name
INTERNAL_PERMISSIONS: dict[str, str] = {
    "1": "Get and assign all internal application roles",
    "2": "Manage the application",
    "3": "Manage roles",
    "4": "Manage authorizations",
    "5": "Get and assign all public application roles",
    "6": "Get and assign only public owned roles",
}
INTERNAL_ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {PROVIDER: ("1", "2", "3", "4", "5", "6"), PURCHASER: ("5",)}

ORGANIZATION_ROLES = ("owner", "member")
GRANT_TYPES = ("authorization_code", "implicit", "password", "client_credentials", "refresh_token")
TOKEN_TYPES = ("bearer", "jwt", "permanent")

# token kinds
ACCESS = "access"
REFRESH = "refresh"
CODE = "code"
API = "api"


class Record:
    """Base of the records that get changed: they are frozen, so a change is a copy."""

    __slots__ = ()

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]  # every subclass is a dataclass


@dataclass(frozen=True, slots=True)
class User(Record):
    id: str
    username: str
    email: str
    password_hash: str
    enabled: bool = True
    admin: bool = False
    date_password: float = 0.0
    description: str | None = None
    website: str | None = None
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Organization(Record):
    id: str
    name: str
    description: str | None = None
    website: str | None = None
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Membership:
    """A user's role in an organization: ``owner`` or ``member`` (Keyrock's user_organization)."""

    organization_id: str
    user_id: str
    role: str


@dataclass(frozen=True, slots=True)
class Application(Record):
    """An OAuth client. ``client_type`` ``public`` (a browser or mobile app that cannot keep
    a secret) authenticates with its id alone and must use PKCE S256; ``confidential`` (the
    default, as every Keyrock application) with HTTP Basic. ``jwt_algorithm`` says how its
    JWTs are signed: ``HS256`` with ``jwt_secret`` (Keyrock's way) or the identity manager's
    key (RS256 or ES256, published in the JWKS)."""

    id: str
    name: str
    secret_hash: str
    description: str = ""
    url: str = ""
    redirect_uris: tuple[str, ...] = ()
    redirect_sign_out_uri: str | None = None
    grant_types: tuple[str, ...] = ()
    token_types: tuple[str, ...] = ("bearer",)
    jwt_secret: str | None = None
    jwt_algorithm: str = "HS256"
    client_type: str = "confidential"
    created_at: float = 0.0

    @property
    def public(self) -> bool:
        return self.client_type == "public"


@dataclass(frozen=True, slots=True)
class Role(Record):
    """``app_id`` is "" for the internal roles every application shares."""

    id: str
    name: str
    app_id: str
    is_internal: bool = False


@dataclass(frozen=True, slots=True)
class Permission(Record):
    """Keyrock's permission fields, plus ``ngsi``: a free-form JSON policy that NGSI-aware
    authorization reads (this package stores and returns it, and never interprets it)."""

    id: str
    name: str
    app_id: str
    description: str | None = None
    is_internal: bool = False
    action: str | None = None
    resource: str | None = None
    is_regex: bool = False
    xml: str | None = None
    authorization_service_header: str | None = None
    use_authorization_service_header: bool = False
    regex_entity_ids: str | None = None
    regex_attributes: str | None = None
    regex_types: str | None = None
    ngsi: Any = None

    def as_policy(self) -> dict[str, Any]:
        """The mapping ``security.authz.keyrock.decide`` takes."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True, slots=True)
class UserRole:
    app_id: str
    user_id: str
    role_id: str


@dataclass(frozen=True, slots=True)
class OrganizationRole:
    app_id: str
    organization_id: str
    role_id: str
    organization_role: str  # member | owner: which of the organization's users get the role


@dataclass(frozen=True, slots=True)
class Token(Record):
    """Any credential the identity manager issued, keyed by the SHA-256 of its value.

    ``kind``: access, refresh, code (authorization code) or api (/v1 X-Subject-Token).
    ``family``: the chain of tokens one authorization started (a code, a password login):
    refresh-token rotation keeps it, and reuse of a rotated refresh token (or of a code)
    revokes the whole family. ``expires_at`` None: permanent. ``extra``: what a kind needs
    besides (a code's redirect URI, PKCE challenge and nonce; an access token's format).
    """

    hash: str
    kind: str
    client_id: str | None
    user_id: str | None
    scope: str = ""
    issued_at: float = 0.0
    expires_at: float | None = None
    revoked: bool = False
    family: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def live(self, now: float) -> bool:
        return not self.revoked and not self.expired(now)


@dataclass(frozen=True, slots=True)
class SigningKey(Record):
    """A key pair the identity manager signs JWTs with. The newest not retired signs;
    ``signed_until`` is the latest expiry of what it signed (``PERMANENT`` once it signed a
    token that never expires): the JWKS publishes a retired key until then."""

    kid: str
    alg: str
    private_pem: str
    created_at: float
    retired_at: float | None = None
    signed_until: float = 0.0


PERMANENT = 1e18  # "never expires" where a number is needed (far past any clock)
