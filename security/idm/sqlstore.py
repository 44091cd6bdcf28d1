"""The identity manager's store in portable SQL, over a driver per database.

SQLite and PostgreSQL both run this SQL (``?`` placeholders, which the PostgreSQL driver
numbers; ``INSERT ... ON CONFLICT DO NOTHING``; booleans as 0/1 integers; JSON as text).
A driver (``sqlite.py``, ``postgres.py``) only runs statements and transactions and maps
its unique-key violation to :class:`~security.idm.store.Conflict`.

Permissions are kept as a JSON document beside their key (Keyrock's permission has a
dozen optional fields, never queried one by one); everything that is looked up has a
column and an index.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson

from .model import (
    INTERNAL_PERMISSIONS,
    INTERNAL_ROLE_PERMISSIONS,
    INTERNAL_ROLES,
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
from .store import IdmStore

Row = Sequence[Any]

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS idm_users (
        id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, email TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL, enabled INTEGER NOT NULL, admin INTEGER NOT NULL,
        date_password DOUBLE PRECISION NOT NULL, description TEXT, website TEXT,
        created_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS idm_organizations (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT, website TEXT,
        created_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS idm_memberships (
        organization_id TEXT NOT NULL, user_id TEXT NOT NULL, role TEXT NOT NULL,
        PRIMARY KEY (organization_id, user_id, role))""",
    "CREATE INDEX IF NOT EXISTS idm_memberships_user ON idm_memberships (user_id)",
    """CREATE TABLE IF NOT EXISTS idm_applications (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, secret_hash TEXT NOT NULL, description TEXT NOT NULL,
        url TEXT NOT NULL, redirect_uris TEXT NOT NULL, redirect_sign_out_uri TEXT, grant_types TEXT NOT NULL,
        token_types TEXT NOT NULL, jwt_secret TEXT, jwt_algorithm TEXT NOT NULL, client_type TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS idm_roles (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, app_id TEXT NOT NULL, is_internal INTEGER NOT NULL,
        seq BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS idm_roles_app ON idm_roles (app_id)",
    """CREATE TABLE IF NOT EXISTS idm_permissions (
        id TEXT PRIMARY KEY, app_id TEXT NOT NULL, doc TEXT NOT NULL, seq BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS idm_permissions_app ON idm_permissions (app_id)",
    """CREATE TABLE IF NOT EXISTS idm_role_permissions (
        role_id TEXT NOT NULL, permission_id TEXT NOT NULL, PRIMARY KEY (role_id, permission_id))""",
    """CREATE TABLE IF NOT EXISTS idm_user_roles (
        app_id TEXT NOT NULL, user_id TEXT NOT NULL, role_id TEXT NOT NULL, seq BIGINT NOT NULL,
        PRIMARY KEY (app_id, user_id, role_id))""",
    "CREATE INDEX IF NOT EXISTS idm_user_roles_user ON idm_user_roles (user_id)",
    """CREATE TABLE IF NOT EXISTS idm_organization_roles (
        app_id TEXT NOT NULL, organization_id TEXT NOT NULL, role_id TEXT NOT NULL,
        organization_role TEXT NOT NULL, seq BIGINT NOT NULL,
        PRIMARY KEY (app_id, organization_id, role_id, organization_role))""",
    "CREATE INDEX IF NOT EXISTS idm_organization_roles_org ON idm_organization_roles (organization_id)",
    """CREATE TABLE IF NOT EXISTS idm_tokens (
        hash TEXT PRIMARY KEY, kind TEXT NOT NULL, client_id TEXT, user_id TEXT, scope TEXT NOT NULL,
        issued_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION, revoked INTEGER NOT NULL,
        family TEXT, extra TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS idm_tokens_family ON idm_tokens (family)",
    "CREATE INDEX IF NOT EXISTS idm_tokens_user ON idm_tokens (user_id)",
    "CREATE INDEX IF NOT EXISTS idm_tokens_client ON idm_tokens (client_id)",
    "CREATE INDEX IF NOT EXISTS idm_tokens_expiry ON idm_tokens (expires_at)",
    """CREATE TABLE IF NOT EXISTS idm_signing_keys (
        kid TEXT PRIMARY KEY, alg TEXT NOT NULL, private_pem TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        retired_at DOUBLE PRECISION, signed_until DOUBLE PRECISION NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS idm_counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
]

_POLICY = "policy_version"
_SEQ = "seq"


class Connection:
    """One connection of a driver, inside or outside a transaction."""

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run a statement; the number of rows it changed."""
        raise NotImplementedError()

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError()


class Driver:
    async def open(self) -> None:
        raise NotImplementedError()

    async def close(self) -> None:
        raise NotImplementedError()

    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """A connection whose statements commit together (or not at all, on an exception)."""
        raise NotImplementedError()

    async def schema_lock(self, db: Connection) -> None:
        """Called first in the transaction that creates the schema: processes starting
        together on one server database must not create it twice at once."""
        return


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _user(row: Row) -> User:
    return User(row[0], row[1], row[2], row[3], bool(row[4]), bool(row[5]), row[6], row[7], row[8], row[9])


def _organization(row: Row) -> Organization:
    return Organization(row[0], row[1], row[2], row[3], row[4])


def _application(row: Row) -> Application:
    return Application(
        id=row[0], name=row[1], secret_hash=row[2], description=row[3], url=row[4],
        redirect_uris=tuple(orjson.loads(row[5])), redirect_sign_out_uri=row[6],
        grant_types=tuple(orjson.loads(row[7])), token_types=tuple(orjson.loads(row[8])),
        jwt_secret=row[9], jwt_algorithm=row[10], client_type=row[11], created_at=row[12],
    )


def _role(row: Row) -> Role:
    return Role(row[0], row[1], row[2], bool(row[3]))


def _permission(row: Row) -> Permission:
    doc = orjson.loads(row[2])
    fields = {f.name for f in dataclasses.fields(Permission)}
    return Permission(id=row[0], app_id=row[1], **{k: v for k, v in doc.items() if k in fields and k not in ("id", "app_id")})


def _token(row: Row) -> Token:
    return Token(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]), row[8], orjson.loads(row[9]))


def _key(row: Row) -> SigningKey:
    return SigningKey(row[0], row[1], row[2], row[3], row[4], row[5])


_USER_COLUMNS = "id, username, email, password_hash, enabled, admin, date_password, description, website, created_at"
_APP_COLUMNS = (
    "id, name, secret_hash, description, url, redirect_uris, redirect_sign_out_uri, grant_types, token_types, "
    "jwt_secret, jwt_algorithm, client_type, created_at"
)
_TOKEN_COLUMNS = "hash, kind, client_id, user_id, scope, issued_at, expires_at, revoked, family, extra"
_SELECT_ROLES = "SELECT id, name, app_id, is_internal FROM idm_roles"
_SELECT_PERMISSIONS = "SELECT id, app_id, doc FROM idm_permissions"


def _user_args(user: User) -> list[Any]:
    return [user.id, user.username, user.email.lower(), user.password_hash, int(user.enabled), int(user.admin),
            user.date_password, user.description, user.website, user.created_at]


def _app_args(app: Application) -> list[Any]:
    return [app.id, app.name, app.secret_hash, app.description, app.url, _json(list(app.redirect_uris)),
            app.redirect_sign_out_uri, _json(list(app.grant_types)), _json(list(app.token_types)), app.jwt_secret,
            app.jwt_algorithm, app.client_type, app.created_at]


def _permission_doc(permission: Permission) -> str:
    doc = {f.name: getattr(permission, f.name) for f in dataclasses.fields(Permission) if f.name not in ("id", "app_id")}
    return _json(doc)


class SQLStore(IdmStore):
    """:class:`~security.idm.store.IdmStore` in SQL; subclasses give the driver."""

    driver: Driver

    async def open(self) -> None:
        await self.driver.open()
        async with self.driver.transaction() as db:
            await self.driver.schema_lock(db)
            for statement in SCHEMA:
                await db.execute(statement)
            for name in (_POLICY, _SEQ):
                await db.execute("INSERT INTO idm_counters (name, value) VALUES (?, 0) ON CONFLICT DO NOTHING", [name])
            for role_id, name in INTERNAL_ROLES.items():
                await db.execute(
                    "INSERT INTO idm_roles (id, name, app_id, is_internal, seq) VALUES (?, ?, '', 1, 0) ON CONFLICT DO NOTHING",
                    [role_id, name],
                )
            for permission_id, name in INTERNAL_PERMISSIONS.items():
                doc = _permission_doc(Permission(permission_id, name, "", is_internal=True))
                await db.execute(
                    "INSERT INTO idm_permissions (id, app_id, doc, seq) VALUES (?, '', ?, 0) ON CONFLICT DO NOTHING",
                    [permission_id, doc],
                )
            for role_id, permission_ids in INTERNAL_ROLE_PERMISSIONS.items():
                for permission_id in permission_ids:
                    await db.execute(
                        "INSERT INTO idm_role_permissions (role_id, permission_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                        [role_id, permission_id],
                    )

    async def close(self) -> None:
        await self.driver.close()

    async def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        async with self.driver.transaction() as db:
            return await db.fetch(sql, args)

    async def _one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        rows = await self._fetch(sql, args)
        return rows[0] if rows else None

    async def _change(self, sql: str, args: Sequence[Any] = (), *, policy: bool = False) -> int:
        async with self.driver.transaction() as db:
            count = await db.execute(sql, args)
            if policy and count:
                await _bump(db)
            return count

    async def _of_app(self, select: str, app_id: str, item_id: str | None = None) -> list[Row]:
        """What ``select`` reads of the roles or permissions of an application, which has the
        internal ones too (app_id ""): all of them in creation order, or the one ``item_id``."""
        if item_id is None:
            return await self._fetch(f"{select} WHERE app_id = ? OR app_id = '' ORDER BY seq, id", [app_id])
        return await self._fetch(f"{select} WHERE id = ? AND (app_id = ? OR app_id = '')", [item_id, app_id])

    async def _delete(self, sql: str, args: Sequence[Any], key: str, *cleanup: str) -> bool:
        """Run the DELETE ``sql``; if it removed a row, also what referred to it (``cleanup``,
        statements on ``key``) and bump the policy version, in the same transaction."""
        async with self.driver.transaction() as db:
            count = await db.execute(sql, args)
            if count:
                for statement in cleanup:
                    await db.execute(statement, [key])
                await _bump(db)
            return bool(count)

    async def _insert_in_order(self, sql: str, args: Sequence[Any]) -> None:
        """Run the INSERT ``sql`` whose last parameter is the creation-order number (which
        lists sort by); bump the policy version if it added a row."""
        async with self.driver.transaction() as db:
            if await db.execute(sql, [*args, await _next(db)]):
                await _bump(db)

    # -- users ------------------------------------------------------------------------------
    async def create_user(self, user: User) -> None:
        await self._change(f"INSERT INTO idm_users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _user_args(user))

    async def get_user(self, user_id: str) -> User | None:
        row = await self._one(f"SELECT {_USER_COLUMNS} FROM idm_users WHERE id = ?", [user_id])
        return _user(row) if row else None

    async def find_user(self, login: str) -> User | None:
        row = await self._one(f"SELECT {_USER_COLUMNS} FROM idm_users WHERE email = ?", [login.lower()])
        if row is None:
            row = await self._one(f"SELECT {_USER_COLUMNS} FROM idm_users WHERE username = ?", [login])
        return _user(row) if row else None

    async def list_users(self) -> list[User]:
        return [_user(r) for r in await self._fetch(f"SELECT {_USER_COLUMNS} FROM idm_users ORDER BY created_at, id")]

    async def save_user(self, user: User) -> None:
        args = _user_args(user)
        async with self.driver.transaction() as db:
            before = await db.fetch("SELECT enabled, admin FROM idm_users WHERE id = ?", [user.id])
            await db.execute(
                "UPDATE idm_users SET username = ?, email = ?, password_hash = ?, enabled = ?, admin = ?, "
                "date_password = ?, description = ?, website = ?, created_at = ? WHERE id = ?",
                [*args[1:], user.id],
            )
            if before and (bool(before[0][0]), bool(before[0][1])) != (user.enabled, user.admin):
                await _bump(db)

    async def delete_user(self, user_id: str) -> bool:
        return await self._delete(
            "DELETE FROM idm_users WHERE id = ?", [user_id], user_id,
            "DELETE FROM idm_memberships WHERE user_id = ?",
            "DELETE FROM idm_user_roles WHERE user_id = ?",
            "UPDATE idm_tokens SET revoked = 1 WHERE user_id = ?",
        )

    async def any_admin(self) -> bool:
        return bool(await self._fetch("SELECT id FROM idm_users WHERE admin = 1 LIMIT 1"))

    # -- organizations ------------------------------------------------------------------
    async def create_organization(self, organization: Organization, owner_id: str) -> None:
        o = organization
        async with self.driver.transaction() as db:
            await db.execute(
                "INSERT INTO idm_organizations (id, name, description, website, created_at) VALUES (?, ?, ?, ?, ?)",
                [o.id, o.name, o.description, o.website, o.created_at],
            )
            await db.execute(
                "INSERT INTO idm_memberships (organization_id, user_id, role) VALUES (?, ?, 'owner')", [o.id, owner_id]
            )
            await _bump(db)

    async def get_organization(self, organization_id: str) -> Organization | None:
        row = await self._one(
            "SELECT id, name, description, website, created_at FROM idm_organizations WHERE id = ?", [organization_id]
        )
        return _organization(row) if row else None

    async def list_organizations(self) -> list[Organization]:
        rows = await self._fetch("SELECT id, name, description, website, created_at FROM idm_organizations ORDER BY created_at, id")
        return [_organization(r) for r in rows]

    async def save_organization(self, organization: Organization) -> None:
        o = organization
        await self._change(
            "UPDATE idm_organizations SET name = ?, description = ?, website = ? WHERE id = ?",
            [o.name, o.description, o.website, o.id],
        )

    async def delete_organization(self, organization_id: str) -> bool:
        return await self._delete(
            "DELETE FROM idm_organizations WHERE id = ?", [organization_id], organization_id,
            "DELETE FROM idm_memberships WHERE organization_id = ?",
            "DELETE FROM idm_organization_roles WHERE organization_id = ?",
        )

    async def put_membership(self, membership: Membership) -> None:
        m = membership
        await self._change(
            "INSERT INTO idm_memberships (organization_id, user_id, role) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [m.organization_id, m.user_id, m.role], policy=True,
        )

    async def delete_membership(self, organization_id: str, user_id: str, role: str | None = None) -> bool:
        if role is None:
            sql, args = "DELETE FROM idm_memberships WHERE organization_id = ? AND user_id = ?", [organization_id, user_id]
        else:
            sql = "DELETE FROM idm_memberships WHERE organization_id = ? AND user_id = ? AND role = ?"
            args = [organization_id, user_id, role]
        return bool(await self._change(sql, args, policy=True))

    async def memberships(self, *, organization_id: str | None = None, user_id: str | None = None) -> list[Membership]:
        where, args = _where(organization_id=organization_id, user_id=user_id)
        rows = await self._fetch(f"SELECT organization_id, user_id, role FROM idm_memberships{where} ORDER BY organization_id, user_id, role", args)
        return [Membership(*r) for r in rows]

    # -- applications -----------------------------------------------------------------------
    async def create_application(self, application: Application, provider_id: str | None) -> None:
        async with self.driver.transaction() as db:
            await db.execute(f"INSERT INTO idm_applications ({_APP_COLUMNS}) VALUES ({', '.join('?' * 13)})", _app_args(application))
            if provider_id is not None:
                await db.execute(
                    "INSERT INTO idm_user_roles (app_id, user_id, role_id, seq) VALUES (?, ?, 'provider', ?)",
                    [application.id, provider_id, await _next(db)],
                )
            await _bump(db)

    async def get_application(self, app_id: str) -> Application | None:
        row = await self._one(f"SELECT {_APP_COLUMNS} FROM idm_applications WHERE id = ?", [app_id])
        return _application(row) if row else None

    async def list_applications(self) -> list[Application]:
        return [_application(r) for r in await self._fetch(f"SELECT {_APP_COLUMNS} FROM idm_applications ORDER BY created_at, id")]

    async def save_application(self, application: Application) -> None:
        args = _app_args(application)
        columns = [c.strip() for c in _APP_COLUMNS.split(",")][1:]
        await self._change(
            f"UPDATE idm_applications SET {', '.join(c + ' = ?' for c in columns)} WHERE id = ?", [*args[1:], application.id],
            policy=True,
        )

    async def delete_application(self, app_id: str) -> bool:
        return await self._delete(
            "DELETE FROM idm_applications WHERE id = ?", [app_id], app_id,
            "DELETE FROM idm_role_permissions WHERE role_id IN (SELECT id FROM idm_roles WHERE app_id = ?)",
            "DELETE FROM idm_roles WHERE app_id = ?",
            "DELETE FROM idm_permissions WHERE app_id = ?",
            "DELETE FROM idm_user_roles WHERE app_id = ?",
            "DELETE FROM idm_organization_roles WHERE app_id = ?",
            "UPDATE idm_tokens SET revoked = 1 WHERE client_id = ?",
        )

    # -- roles -----------------------------------------------------------------------------
    async def create_role(self, role: Role) -> None:
        await self._insert_in_order(
            "INSERT INTO idm_roles (id, name, app_id, is_internal, seq) VALUES (?, ?, ?, ?, ?)",
            [role.id, role.name, role.app_id, int(role.is_internal)],
        )

    async def get_role(self, app_id: str, role_id: str) -> Role | None:
        rows = await self._of_app(_SELECT_ROLES, app_id, role_id)
        return _role(rows[0]) if rows else None

    async def list_roles(self, app_id: str) -> list[Role]:
        return [_role(r) for r in await self._of_app(_SELECT_ROLES, app_id)]

    async def save_role(self, role: Role) -> None:
        await self._change("UPDATE idm_roles SET name = ? WHERE id = ? AND app_id = ?", [role.name, role.id, role.app_id], policy=True)

    async def delete_role(self, app_id: str, role_id: str) -> bool:
        return await self._delete(
            "DELETE FROM idm_roles WHERE id = ? AND app_id = ?", [role_id, app_id], role_id,
            "DELETE FROM idm_role_permissions WHERE role_id = ?",
            "DELETE FROM idm_user_roles WHERE role_id = ?",
            "DELETE FROM idm_organization_roles WHERE role_id = ?",
        )

    # -- permissions -------------------------------------------------------------------------
    async def create_permission(self, permission: Permission) -> None:
        await self._insert_in_order(
            "INSERT INTO idm_permissions (id, app_id, doc, seq) VALUES (?, ?, ?, ?)",
            [permission.id, permission.app_id, _permission_doc(permission)],
        )

    async def get_permission(self, app_id: str, permission_id: str) -> Permission | None:
        rows = await self._of_app(_SELECT_PERMISSIONS, app_id, permission_id)
        return _permission(rows[0]) if rows else None

    async def list_permissions(self, app_id: str) -> list[Permission]:
        return [_permission(r) for r in await self._of_app(_SELECT_PERMISSIONS, app_id)]

    async def save_permission(self, permission: Permission) -> None:
        await self._change(
            "UPDATE idm_permissions SET doc = ? WHERE id = ? AND app_id = ?",
            [_permission_doc(permission), permission.id, permission.app_id], policy=True,
        )

    async def delete_permission(self, app_id: str, permission_id: str) -> bool:
        return await self._delete(
            "DELETE FROM idm_permissions WHERE id = ? AND app_id = ?", [permission_id, app_id], permission_id,
            "DELETE FROM idm_role_permissions WHERE permission_id = ?",
        )

    async def put_role_permission(self, role_id: str, permission_id: str) -> None:
        await self._change(
            "INSERT INTO idm_role_permissions (role_id, permission_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [role_id, permission_id], policy=True,
        )

    async def delete_role_permission(self, role_id: str, permission_id: str) -> bool:
        return bool(await self._change(
            "DELETE FROM idm_role_permissions WHERE role_id = ? AND permission_id = ?", [role_id, permission_id], policy=True
        ))

    async def permissions_of_roles(self, role_ids: list[str]) -> list[Permission]:
        if not role_ids:
            return []
        marks = ", ".join("?" * len(role_ids))
        rows = await self._fetch(
            "SELECT p.id, p.app_id, p.doc FROM idm_permissions p WHERE p.id IN "
            f"(SELECT permission_id FROM idm_role_permissions WHERE role_id IN ({marks})) ORDER BY p.seq, p.id",
            role_ids,
        )
        return [_permission(r) for r in rows]

    # -- role assignments -------------------------------------------------------------------
    async def put_user_role(self, assignment: UserRole) -> None:
        a = assignment
        await self._insert_in_order(
            "INSERT INTO idm_user_roles (app_id, user_id, role_id, seq) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [a.app_id, a.user_id, a.role_id],
        )

    async def delete_user_role(self, assignment: UserRole) -> bool:
        a = assignment
        return bool(await self._change(
            "DELETE FROM idm_user_roles WHERE app_id = ? AND user_id = ? AND role_id = ?", [a.app_id, a.user_id, a.role_id],
            policy=True,
        ))

    async def user_roles(self, *, app_id: str | None = None, user_id: str | None = None) -> list[UserRole]:
        where, args = _where(app_id=app_id, user_id=user_id)
        rows = await self._fetch(f"SELECT app_id, user_id, role_id FROM idm_user_roles{where} ORDER BY seq", args)
        return [UserRole(*r) for r in rows]

    async def put_organization_role(self, assignment: OrganizationRole) -> None:
        a = assignment
        await self._insert_in_order(
            "INSERT INTO idm_organization_roles (app_id, organization_id, role_id, organization_role, seq) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [a.app_id, a.organization_id, a.role_id, a.organization_role],
        )

    async def delete_organization_role(self, assignment: OrganizationRole) -> bool:
        a = assignment
        return bool(await self._change(
            "DELETE FROM idm_organization_roles WHERE app_id = ? AND organization_id = ? AND role_id = ? "
            "AND organization_role = ?", [a.app_id, a.organization_id, a.role_id, a.organization_role], policy=True,
        ))

    async def organization_roles(
        self, *, app_id: str | None = None, organization_id: str | None = None
    ) -> list[OrganizationRole]:
        where, args = _where(app_id=app_id, organization_id=organization_id)
        rows = await self._fetch(
            f"SELECT app_id, organization_id, role_id, organization_role FROM idm_organization_roles{where} ORDER BY seq", args
        )
        return [OrganizationRole(*r) for r in rows]

    # -- tokens -----------------------------------------------------------------------------
    async def save_token(self, token: Token) -> None:
        t = token
        await self._change(
            f"INSERT INTO idm_tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [t.hash, t.kind, t.client_id, t.user_id, t.scope, t.issued_at, t.expires_at, int(t.revoked), t.family,
             _json(t.extra)],
        )

    async def get_token(self, token_hash: str) -> Token | None:
        row = await self._one(f"SELECT {_TOKEN_COLUMNS} FROM idm_tokens WHERE hash = ?", [token_hash])
        return _token(row) if row else None

    async def consume_token(self, token_hash: str) -> bool:
        return bool(await self._change("UPDATE idm_tokens SET revoked = 1 WHERE hash = ? AND revoked = 0", [token_hash]))

    # A revocation moves the policy version too: PEPs drop what they cached of the token at
    # once, instead of letting it pass until their cache entry ages out.
    async def revoke_token(self, token_hash: str) -> bool:
        return bool(await self._change(
            "UPDATE idm_tokens SET revoked = 1 WHERE hash = ? AND revoked = 0", [token_hash], policy=True
        ))

    async def revoke_family(self, family: str) -> int:
        return await self._change(
            "UPDATE idm_tokens SET revoked = 1 WHERE family = ? AND revoked = 0", [family], policy=True
        )

    async def revoke_user_tokens(self, user_id: str, *, kinds: tuple[str, ...] | None = None) -> int:
        if kinds is None:
            return await self._change(
                "UPDATE idm_tokens SET revoked = 1 WHERE user_id = ? AND revoked = 0", [user_id], policy=True
            )
        marks = ", ".join("?" * len(kinds))
        return await self._change(
            f"UPDATE idm_tokens SET revoked = 1 WHERE user_id = ? AND revoked = 0 AND kind IN ({marks})", [user_id, *kinds],
            policy=True,
        )

    async def purge_tokens(self, now: float) -> int:
        return await self._change("DELETE FROM idm_tokens WHERE expires_at IS NOT NULL AND expires_at < ?", [now])

    # -- signing keys -----------------------------------------------------------------------
    async def save_key(self, key: SigningKey) -> None:
        await self._change(
            "INSERT INTO idm_signing_keys (kid, alg, private_pem, created_at, retired_at, signed_until) VALUES (?, ?, ?, ?, ?, ?)",
            [key.kid, key.alg, key.private_pem, key.created_at, key.retired_at, key.signed_until],
        )

    async def list_keys(self) -> list[SigningKey]:
        rows = await self._fetch(
            "SELECT kid, alg, private_pem, created_at, retired_at, signed_until FROM idm_signing_keys ORDER BY created_at, kid"
        )
        return [_key(r) for r in rows]

    async def retire_key(self, kid: str, at: float) -> None:
        await self._change("UPDATE idm_signing_keys SET retired_at = ? WHERE kid = ? AND retired_at IS NULL", [at, kid])

    async def extend_key(self, kid: str, until: float) -> None:
        await self._change("UPDATE idm_signing_keys SET signed_until = ? WHERE kid = ? AND signed_until < ?", [until, kid, until])

    async def delete_key(self, kid: str) -> None:
        await self._change("DELETE FROM idm_signing_keys WHERE kid = ?", [kid])

    async def policy_version(self) -> int:
        row = await self._one("SELECT value FROM idm_counters WHERE name = ?", [_POLICY])
        return int(row[0]) if row else 0


def _where(**filters: str | None) -> tuple[str, list[Any]]:
    given = [(name, value) for name, value in filters.items() if value is not None]
    if not given:
        return "", []
    return " WHERE " + " AND ".join(f"{name} = ?" for name, _ in given), [value for _, value in given]


async def _bump(db: Connection) -> None:
    await db.execute("UPDATE idm_counters SET value = value + 1 WHERE name = ?", [_POLICY])


async def _next(db: Connection) -> int:
    """The next number of the creation-order sequence (both databases, one statement each)."""
    await db.execute("UPDATE idm_counters SET value = value + 1 WHERE name = ?", [_SEQ])
    rows = await db.fetch("SELECT value FROM idm_counters WHERE name = ?", [_SEQ])
    return int(rows[0][0])

