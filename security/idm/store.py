"""The identity manager's store contract, and the backend chosen by URL.

One interface, like the broker's (``broker/store/base.py``): ``sqlite:///path`` (the
default, ``<data>/idm.db``) or ``postgresql://user:password@host/db``. Both backends are
one SQL implementation (``sqlstore.py``) over a small driver each (``sqlite.py``,
``postgres.py``), since the identity manager's queries are plain portable SQL.

Every change of what decides a PEP question (roles, permissions, their assignments,
organization memberships, users and applications deleted or disabled) bumps the
``policy_version`` counter in the same transaction, so a PEP caching decisions learns
that it must forget them by reading one number (``X-Policy-Version`` on ``/user``,
``GET /v1/policy_version``).
"""

from __future__ import annotations

import importlib
from typing import Self

from .model import (
    Application,
    Membership,
    Organization,
    OrganizationRole,
    Permission,
    Role,
    SigningKey,
    Token,
    User,
    UserRole,
)

BACKENDS = {
    "sqlite": "security.idm.sqlite:SQLiteStore",
    "postgresql": "security.idm.postgres:PostgresStore",
    "postgres": "security.idm.postgres:PostgresStore",
}


class StoreError(Exception):
    """The store failed to do what was asked."""


class Conflict(StoreError):
    """A unique key is taken (a username, an e-mail address, an id)."""


class IdmStore:
    """Async contract of the identity manager's storage; lists come in creation order."""

    async def open(self) -> None:
        raise NotImplementedError()

    async def close(self) -> None:
        raise NotImplementedError()

    # -- users: username and e-mail (kept lowercase) are unique --------------------------
    async def create_user(self, user: User) -> None:
        """Raises Conflict when the id, username or e-mail is taken."""
        raise NotImplementedError()

    async def get_user(self, user_id: str) -> User | None:
        raise NotImplementedError()

    async def find_user(self, login: str) -> User | None:
        """The user whose e-mail (any case) or username is ``login``."""
        raise NotImplementedError()

    async def list_users(self) -> list[User]:
        raise NotImplementedError()

    async def save_user(self, user: User) -> None:
        """Update; raises Conflict for a username or e-mail another user has."""
        raise NotImplementedError()

    async def delete_user(self, user_id: str) -> bool:
        """With the user's memberships, roles and tokens."""
        raise NotImplementedError()

    async def any_admin(self) -> bool:
        raise NotImplementedError()

    # -- organizations --------------------------------------------------------------------
    async def create_organization(self, organization: Organization, owner_id: str) -> None:
        """The organization, with ``owner_id`` as its owner."""
        raise NotImplementedError()

    async def get_organization(self, organization_id: str) -> Organization | None:
        raise NotImplementedError()

    async def list_organizations(self) -> list[Organization]:
        raise NotImplementedError()

    async def save_organization(self, organization: Organization) -> None:
        raise NotImplementedError()

    async def delete_organization(self, organization_id: str) -> bool:
        raise NotImplementedError()

    async def put_membership(self, membership: Membership) -> None:
        raise NotImplementedError()

    async def delete_membership(self, organization_id: str, user_id: str, role: str | None = None) -> bool:
        """One role of the user in the organization, or (``role`` None) all of them."""
        raise NotImplementedError()

    async def memberships(self, *, organization_id: str | None = None, user_id: str | None = None) -> list[Membership]:
        raise NotImplementedError()

    # -- applications -------------------------------------------------------------------
    async def create_application(self, application: Application, provider_id: str | None) -> None:
        """The application; ``provider_id`` (its creator) gets its ``provider`` role."""
        raise NotImplementedError()

    async def get_application(self, app_id: str) -> Application | None:
        raise NotImplementedError()

    async def list_applications(self) -> list[Application]:
        raise NotImplementedError()

    async def save_application(self, application: Application) -> None:
        raise NotImplementedError()

    async def delete_application(self, app_id: str) -> bool:
        """With its roles, permissions, assignments and tokens."""
        raise NotImplementedError()

    # -- roles and permissions (internal ones: app_id "", listed with every application's) --
    async def create_role(self, role: Role) -> None:
        raise NotImplementedError()

    async def get_role(self, app_id: str, role_id: str) -> Role | None:
        raise NotImplementedError()

    async def list_roles(self, app_id: str) -> list[Role]:
        raise NotImplementedError()

    async def save_role(self, role: Role) -> None:
        raise NotImplementedError()

    async def delete_role(self, app_id: str, role_id: str) -> bool:
        raise NotImplementedError()

    async def create_permission(self, permission: Permission) -> None:
        raise NotImplementedError()

    async def get_permission(self, app_id: str, permission_id: str) -> Permission | None:
        raise NotImplementedError()

    async def list_permissions(self, app_id: str) -> list[Permission]:
        raise NotImplementedError()

    async def save_permission(self, permission: Permission) -> None:
        raise NotImplementedError()

    async def delete_permission(self, app_id: str, permission_id: str) -> bool:
        raise NotImplementedError()

    async def put_role_permission(self, role_id: str, permission_id: str) -> None:
        raise NotImplementedError()

    async def delete_role_permission(self, role_id: str, permission_id: str) -> bool:
        raise NotImplementedError()

    async def permissions_of_roles(self, role_ids: list[str]) -> list[Permission]:
        """Every permission assigned to one of the roles (each once)."""
        raise NotImplementedError()

    # -- role assignments ---------------------------------------------------------------
    async def put_user_role(self, assignment: UserRole) -> None:
        raise NotImplementedError()

    async def delete_user_role(self, assignment: UserRole) -> bool:
        raise NotImplementedError()

    async def user_roles(self, *, app_id: str | None = None, user_id: str | None = None) -> list[UserRole]:
        raise NotImplementedError()

    async def put_organization_role(self, assignment: OrganizationRole) -> None:
        raise NotImplementedError()

    async def delete_organization_role(self, assignment: OrganizationRole) -> bool:
        raise NotImplementedError()

    async def organization_roles(
        self, *, app_id: str | None = None, organization_id: str | None = None
    ) -> list[OrganizationRole]:
        raise NotImplementedError()

    # -- tokens (keyed by the SHA-256 of their value) ----------------------------------------
    async def save_token(self, token: Token) -> None:
        raise NotImplementedError()

    async def get_token(self, token_hash: str) -> Token | None:
        raise NotImplementedError()

    async def consume_token(self, token_hash: str) -> bool:
        """Mark a token revoked if it was not: True for the one caller that did it (an
        authorization code is used, a refresh token rotated, exactly once)."""
        raise NotImplementedError()

    async def revoke_token(self, token_hash: str) -> bool:
        raise NotImplementedError()

    async def revoke_family(self, family: str) -> int:
        raise NotImplementedError()

    async def revoke_user_tokens(self, user_id: str, *, kinds: tuple[str, ...] | None = None) -> int:
        raise NotImplementedError()

    async def purge_tokens(self, now: float) -> int:
        """Forget tokens expired before ``now`` (revoked ones too, once expired)."""
        raise NotImplementedError()

    # -- signing keys ---------------------------------------------------------------------
    async def save_key(self, key: SigningKey) -> None:
        raise NotImplementedError()

    async def list_keys(self) -> list[SigningKey]:
        raise NotImplementedError()

    async def retire_key(self, kid: str, at: float) -> None:
        raise NotImplementedError()

    async def extend_key(self, kid: str, until: float) -> None:
        """``signed_until = max(signed_until, until)``."""
        raise NotImplementedError()

    async def delete_key(self, kid: str) -> None:
        raise NotImplementedError()

    # -- change notification --------------------------------------------------------------
    async def policy_version(self) -> int:
        raise NotImplementedError()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def open_store(url: str) -> IdmStore:
    """The store for a URL (``sqlite:///path``, ``postgresql://...``), importing only that backend."""
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    target = BACKENDS.get(scheme)
    if target is None:
        raise StoreError(f"unsupported database URL scheme {scheme!r} (known: {', '.join(BACKENDS)})")
    module, _, name = target.partition(":")
    store: IdmStore = getattr(importlib.import_module(module), name)(url)
    return store
