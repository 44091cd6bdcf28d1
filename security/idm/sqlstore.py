"""The identity manager's store in portable SQL, over a driver per database.

SQLite and PostgreSQL both run this SQL (``?`` placeholders, which the PostgreSQL driver
numbers; ``INSERT ... ON CONFLICT DO NOTHING``; booleans as 0/1 integers; JSON as text).
A driver (``sqlite.py``, ``postgres.py``) only runs statements and transactions and maps
its unique-key violation to :class:`~security.idm.store.Conflict`. :class:`SQLStore` is
the store's one implementation, so its methods are the store's contract (lists come in
creation order); ``store.py`` names it ``IdmStore``.

Permissions are kept as a JSON document beside their key (Keyrock's permission has a
dozen optional fields, never queried one by one); everything that is looked up has a
column and an index.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

import orjson

from .model import (
    INTERNAL_PERMISSIONS, INTERNAL_ROLE_PERMISSIONS, INTERNAL_ROLES, Application, Membership, Organization,
    OrganizationRole, Permission, Role, SigningKey, Token, User, UserRole,
)

Row = Sequence[Any]
_Record = TypeVar("_Record")
_Item = TypeVar("_Item", Role, Permission)

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
    # privacy (security/privacy, docs/privacy.md): the policy documents, the pseudonyms' key
    # ring (a secret, as the signing keys are) and each consumer's epsilon spent per policy
    "CREATE TABLE IF NOT EXISTS idm_privacy_policies (id TEXT PRIMARY KEY, doc TEXT NOT NULL, seq BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS idm_privacy_state (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS idm_privacy_budget (
        consumer TEXT NOT NULL, policy_id TEXT NOT NULL, period_start DOUBLE PRECISION NOT NULL,
        spent DOUBLE PRECISION NOT NULL, PRIMARY KEY (consumer, policy_id))""",
]

_POLICY = "policy_version"
_SEQ = "seq"
_KEY_RING = "key_ring"  # the idm_privacy_state row of the pseudonyms' keys
BUDGET_TOLERANCE = 1e-9  # as security.privacy.budget's: ten spends of 0.1 fit an allowance of 1.0


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


def _user_args(user: User) -> list[Any]:
    return [user.id, user.username, user.email.lower(), user.password_hash, int(user.enabled), int(user.admin),
            user.date_password, user.description, user.website, user.created_at]


def _organization(row: Row) -> Organization:
    return Organization(row[0], row[1], row[2], row[3], row[4])


def _organization_args(o: Organization) -> list[Any]:
    return [o.id, o.name, o.description, o.website, o.created_at]


def _application(row: Row) -> Application:
    return Application(
        id=row[0], name=row[1], secret_hash=row[2], description=row[3], url=row[4],
        redirect_uris=tuple(orjson.loads(row[5])), redirect_sign_out_uri=row[6],
        grant_types=tuple(orjson.loads(row[7])), token_types=tuple(orjson.loads(row[8])),
        jwt_secret=row[9], jwt_algorithm=row[10], client_type=row[11], created_at=row[12],
    )


def _app_args(app: Application) -> list[Any]:
    return [app.id, app.name, app.secret_hash, app.description, app.url, _json(list(app.redirect_uris)),
            app.redirect_sign_out_uri, _json(list(app.grant_types)), _json(list(app.token_types)), app.jwt_secret,
            app.jwt_algorithm, app.client_type, app.created_at]


def _role(row: Row) -> Role:
    return Role(row[0], row[1], row[2], bool(row[3]))


def _role_args(role: Role) -> list[Any]:
    return [role.id, role.name, role.app_id, int(role.is_internal)]


def _permission(row: Row) -> Permission:
    doc = orjson.loads(row[2])
    fields = {f.name for f in dataclasses.fields(Permission)}
    return Permission(id=row[0], app_id=row[1], **{k: v for k, v in doc.items() if k in fields and k not in ("id", "app_id")})


def _permission_doc(permission: Permission) -> str:
    doc = {f.name: getattr(permission, f.name) for f in dataclasses.fields(Permission) if f.name not in ("id", "app_id")}
    return _json(doc)


def _permission_args(permission: Permission) -> list[Any]:
    return [permission.id, permission.app_id, _permission_doc(permission)]


def _token(row: Row) -> Token:
    return Token(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]), row[8], orjson.loads(row[9]))


def _token_args(t: Token) -> list[Any]:
    return [t.hash, t.kind, t.client_id, t.user_id, t.scope, t.issued_at, t.expires_at, int(t.revoked), t.family,
            _json(t.extra)]


def _key(row: Row) -> SigningKey:
    return SigningKey(row[0], row[1], row[2], row[3], row[4], row[5])


def _key_args(key: SigningKey) -> list[Any]:
    return [key.kid, key.alg, key.private_pem, key.created_at, key.retired_at, key.signed_until]


@dataclass(frozen=True)
class _Table(Generic[_Record]):
    """A table of whole records: its columns in the record's field order (the key first),
    how a row becomes the record and the record its values, the order lists come in and
    what deleting a record takes with it. The statements every table shares are built
    from this, once."""

    name: str
    columns: tuple[str, ...]
    record: Callable[[Row], _Record]
    values: Callable[[_Record], list[Any]]
    order: str = "created_at, id"
    dependents: tuple[str, ...] = ()  # statements on a deleted record's key, in the same transaction

    @property
    def select(self) -> str:
        return f"SELECT {', '.join(self.columns)} FROM {self.name}"

    def insert(self, *extra: str) -> str:
        """An INSERT of every column, and the ``extra`` ones after them."""
        columns = [*self.columns, *extra]
        return f"INSERT INTO {self.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"

    def update(self, *columns: str) -> str:
        """An UPDATE of ``columns`` (none given: every one but the key) of the record with a key."""
        changed = columns or self.columns[1:]
        return f"UPDATE {self.name} SET {', '.join(c + ' = ?' for c in changed)} WHERE {self.columns[0]} = ?"


_USERS = _Table(
    "idm_users",
    ("id", "username", "email", "password_hash", "enabled", "admin", "date_password", "description", "website", "created_at"),
    _user, _user_args,
    dependents=("DELETE FROM idm_memberships WHERE user_id = ?", "DELETE FROM idm_user_roles WHERE user_id = ?",
                "UPDATE idm_tokens SET revoked = 1 WHERE user_id = ?"),
)
_ORGANIZATIONS = _Table(
    "idm_organizations", ("id", "name", "description", "website", "created_at"), _organization, _organization_args,
    dependents=("DELETE FROM idm_memberships WHERE organization_id = ?",
                "DELETE FROM idm_organization_roles WHERE organization_id = ?"),
)
_APPLICATIONS = _Table(
    "idm_applications",
    ("id", "name", "secret_hash", "description", "url", "redirect_uris", "redirect_sign_out_uri", "grant_types",
     "token_types", "jwt_secret", "jwt_algorithm", "client_type", "created_at"),
    _application, _app_args,
    dependents=(
        "DELETE FROM idm_role_permissions WHERE role_id IN (SELECT id FROM idm_roles WHERE app_id = ?)",
        "DELETE FROM idm_roles WHERE app_id = ?",
        "DELETE FROM idm_permissions WHERE app_id = ?",
        "DELETE FROM idm_user_roles WHERE app_id = ?",
        "DELETE FROM idm_organization_roles WHERE app_id = ?",
        "UPDATE idm_tokens SET revoked = 1 WHERE client_id = ?",
    ),
)
_ROLES = _Table(
    "idm_roles", ("id", "name", "app_id", "is_internal"), _role, _role_args, order="seq, id",
    dependents=("DELETE FROM idm_role_permissions WHERE role_id = ?", "DELETE FROM idm_user_roles WHERE role_id = ?",
                "DELETE FROM idm_organization_roles WHERE role_id = ?"),
)
_PERMISSIONS = _Table(
    "idm_permissions", ("id", "app_id", "doc"), _permission, _permission_args, order="seq, id",
    dependents=("DELETE FROM idm_role_permissions WHERE permission_id = ?",),
)
_TOKENS = _Table(
    "idm_tokens",
    ("hash", "kind", "client_id", "user_id", "scope", "issued_at", "expires_at", "revoked", "family", "extra"),
    _token, _token_args,
)
_KEYS = _Table(
    "idm_signing_keys", ("kid", "alg", "private_pem", "created_at", "retired_at", "signed_until"), _key, _key_args,
    order="created_at, kid",
)


class AppItems(Generic[_Item]):
    """An application's roles, or its permissions: the two are created, read, changed and
    deleted alike. The internal ones (app_id "", Keyrock's seeded ones) belong to every
    application: they are listed and found with each one's. Every change bumps the policy
    version."""

    def __init__(self, store: SQLStore, table: _Table[_Item], changeable: str) -> None:
        self._store = store
        self._table: _Table[_Item] = table
        self._changeable = changeable  # the one column ``save`` writes

    async def create(self, item: _Item) -> None:
        await self._store._insert_in_order(self._table.insert("seq"), self._table.values(item))

    async def get(self, app_id: str, item_id: str) -> _Item | None:
        t = self._table
        rows = await self._store._fetch(f"{t.select} WHERE id = ? AND (app_id = ? OR app_id = '')", [item_id, app_id])
        return t.record(rows[0]) if rows else None

    async def in_app(self, app_id: str) -> list[_Item]:
        """The application's items with the internal ones, in creation order."""
        t = self._table
        rows = await self._store._fetch(f"{t.select} WHERE app_id = ? OR app_id = '' ORDER BY {t.order}", [app_id])
        return [t.record(r) for r in rows]

    async def save(self, item: _Item) -> None:
        t = self._table
        value = t.values(item)[t.columns.index(self._changeable)]
        await self._store._change(f"{t.update(self._changeable)} AND app_id = ?", [value, item.id, item.app_id], policy=True)

    async def delete(self, app_id: str, item_id: str) -> bool:
        """With what refers to it (a role's assignments, a permission's place in roles)."""
        return await self._store._delete(self._table, item_id, app_id=app_id)


class PolicyConflict(Exception):
    """A privacy policy that may not be stored: its id is taken, or it ties with another
    (the message says which). Not a ``store.Conflict``: that module imports this one."""


# Given the other stored policy documents, why the one being written may not join them (a
# conflict), or None.
PolicyCheck = Callable[[list[dict[str, Any]]], str | None]


class PrivacyStore:
    """The privacy policies, the key ring of the pseudonyms and the epsilon ledger.

    A write of a policy or of the key ring bumps the policy version *first*: on PostgreSQL
    that locks the counter's row, so concurrent writers (of any process) queue there and
    each checks the set as the one before it left it (never two conflicting policies, never
    two rotations that both make ``k2``). Rows are locked before the counter, as every
    other change of the store does, so that the order never deadlocks."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store

    async def policies(self) -> list[dict[str, Any]]:
        """The documents, in creation order."""
        rows = await self._store._fetch("SELECT doc FROM idm_privacy_policies ORDER BY seq, id")
        return [orjson.loads(r[0]) for r in rows]

    async def policy(self, policy_id: str) -> dict[str, Any] | None:
        row = await self._store._one("SELECT doc FROM idm_privacy_policies WHERE id = ?", [policy_id])
        return orjson.loads(row[0]) if row else None

    async def create(self, policy_id: str, doc: dict[str, Any], check: PolicyCheck) -> None:
        """Store a new policy; PolicyConflict when the id is taken or ``check`` objects."""
        async with self._store.driver.transaction() as db:
            seq = await _next(db)
            await _bump(db)
            if await db.fetch("SELECT id FROM idm_privacy_policies WHERE id = ?", [policy_id]):
                raise PolicyConflict(f"Privacy policy {policy_id!r} already exists")
            await _checked(db, policy_id, check)
            await db.execute("INSERT INTO idm_privacy_policies (id, doc, seq) VALUES (?, ?, ?)",
                             [policy_id, _json(doc), seq])

    async def replace(self, policy_id: str, doc: dict[str, Any], check: PolicyCheck) -> bool:
        """Replace a policy (False: there is none); PolicyConflict when ``check`` objects."""
        async with self._store.driver.transaction() as db:
            if not await db.execute("UPDATE idm_privacy_policies SET doc = ? WHERE id = ?", [_json(doc), policy_id]):
                return False
            await _bump(db)
            await _checked(db, policy_id, check)
            return True

    async def delete(self, policy_id: str) -> bool:
        """With its ledger: a policy made again under the same id starts a new budget."""
        async with self._store.driver.transaction() as db:
            if not await db.execute("DELETE FROM idm_privacy_policies WHERE id = ?", [policy_id]):
                return False
            await db.execute("DELETE FROM idm_privacy_budget WHERE policy_id = ?", [policy_id])
            await _bump(db)
            return True

    # -- the key ring (``KeyRing.to_dict()``; the callers make and rotate it) -----------------
    async def key_ring(self, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The ring, made by ``make`` and stored when there is none yet. Not a change of
        policy: nobody held keys before; processes racing to make it all keep the first."""
        async with self._store.driver.transaction() as db:
            found = await db.fetch("SELECT value FROM idm_privacy_state WHERE name = ?", [_KEY_RING])
            if found:
                return dict(orjson.loads(found[0][0]))
            await db.execute("INSERT INTO idm_privacy_state (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                             [_KEY_RING, _json(make())])
            found = await db.fetch("SELECT value FROM idm_privacy_state WHERE name = ?", [_KEY_RING])
            return dict(orjson.loads(found[0][0]))

    async def rotate_keys(self, rotate: Callable[[dict[str, Any] | None], dict[str, Any]]) -> dict[str, Any]:
        """Store ``rotate(ring)`` (``ring`` None when none was made yet) and return it."""
        async with self._store.driver.transaction() as db:
            await _bump(db)
            found = await db.fetch("SELECT value FROM idm_privacy_state WHERE name = ?", [_KEY_RING])
            ring = rotate(dict(orjson.loads(found[0][0])) if found else None)
            await db.execute(
                "INSERT INTO idm_privacy_state (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value", [_KEY_RING, _json(ring)])
            return ring

    # -- the epsilon ledger ------------------------------------------------------------------
    async def spend(self, consumer: str, policy_id: str, epsilon: float, allowance: float,
                    period_start: float) -> tuple[bool, float]:
        """Add ``epsilon`` to what ``consumer`` spent under the policy in the period that
        starts at ``period_start``, unless that would pass ``allowance``: (granted, spent
        now). The check and the addition are one conditional UPDATE of a locked row, so
        concurrent spends (of any process) never pass the allowance together. A ledger
        row of another period starts again from 0."""
        key = [consumer, policy_id]
        async with self._store.driver.transaction() as db:
            await db.execute("INSERT INTO idm_privacy_budget (consumer, policy_id, period_start, spent) "
                             "VALUES (?, ?, ?, 0) ON CONFLICT DO NOTHING", [*key, period_start])
            await db.execute("UPDATE idm_privacy_budget SET period_start = ?, spent = 0 "
                             "WHERE consumer = ? AND policy_id = ? AND period_start <> ?", [period_start, *key, period_start])
            granted = await db.execute("UPDATE idm_privacy_budget SET spent = spent + ? "
                                       "WHERE consumer = ? AND policy_id = ? AND spent + ? <= ?",
                                       [epsilon, *key, epsilon, allowance + BUDGET_TOLERANCE])
            rows = await db.fetch("SELECT spent FROM idm_privacy_budget WHERE consumer = ? AND policy_id = ?", key)
            return bool(granted), float(rows[0][0])

    async def spent(self, consumer: str, policy_id: str, period_start: float) -> float:
        """What ``consumer`` spent under the policy in the period that starts at ``period_start``."""
        row = await self._store._one(
            "SELECT spent FROM idm_privacy_budget WHERE consumer = ? AND policy_id = ? AND period_start = ?",
            [consumer, policy_id, period_start])
        return float(row[0]) if row else 0.0


async def _checked(db: Connection, policy_id: str, check: PolicyCheck) -> None:
    """Run ``check`` on the stored policies but ``policy_id``; PolicyConflict with its objection."""
    rows = await db.fetch("SELECT doc FROM idm_privacy_policies WHERE id <> ? ORDER BY seq, id", [policy_id])
    problem = check([orjson.loads(r[0]) for r in rows])
    if problem:
        raise PolicyConflict(problem)


class SQLStore:
    """The identity manager's store, in SQL over a driver (the subclasses give it).

    Every change of what decides a PEP question bumps the policy version in the same
    transaction (``store.py``)."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.roles = AppItems(self, _ROLES, "name")
        self.permissions = AppItems(self, _PERMISSIONS, "doc")
        self.privacy = PrivacyStore(self)

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

    async def _find(self, table: _Table[_Record], column: str, value: Any) -> _Record | None:
        """The record whose ``column`` is ``value``, or None."""
        row = await self._one(f"{table.select} WHERE {column} = ?", [value])
        return table.record(row) if row else None

    async def _listed(self, table: _Table[_Record]) -> list[_Record]:
        """Every record of the table, in its order."""
        return [table.record(r) for r in await self._fetch(f"{table.select} ORDER BY {table.order}")]

    @asynccontextmanager
    async def _policy_change(self) -> AsyncIterator[Connection]:
        """A transaction whose statements change what PEPs decide by: once they are done, it
        bumps the policy version in the same transaction."""
        async with self.driver.transaction() as db:
            yield db
            await _bump(db)

    async def _change(self, sql: str, args: Sequence[Any] = (), *, policy: bool = False) -> int:
        async with self.driver.transaction() as db:
            count = await db.execute(sql, args)
            if policy and count:
                await _bump(db)
            return count

    async def _delete(self, table: _Table[Any], key: str, *, app_id: str | None = None) -> bool:
        """Delete the record ``key`` (of the application ``app_id``: a role or permission); if
        there was one, also what depends on it (``table.dependents``), and bump the policy
        version, in the same transaction."""
        where, args = _where(**{table.columns[0]: key, "app_id": app_id})
        async with self.driver.transaction() as db:
            count = await db.execute(f"DELETE FROM {table.name}{where}", args)
            if count:
                for statement in table.dependents:
                    await db.execute(statement, [key])
                await _bump(db)
            return bool(count)

    async def _insert_in_order(self, sql: str, args: Sequence[Any]) -> None:
        """Run the INSERT ``sql`` whose last parameter is the creation-order number (which
        lists sort by); bump the policy version if it added a row."""
        async with self.driver.transaction() as db:
            if await db.execute(sql, [*args, await _next(db)]):
                await _bump(db)

    # -- users: username and e-mail (kept lowercase) are unique --------------------------------
    async def create_user(self, user: User) -> None:
        """Raises Conflict when the id, username or e-mail is taken."""
        await self._change(_USERS.insert(), _USERS.values(user))

    async def get_user(self, user_id: str) -> User | None:
        return await self._find(_USERS, "id", user_id)

    async def find_user(self, login: str) -> User | None:
        """The user whose e-mail (any case) or username is ``login``."""
        found = await self._find(_USERS, "email", login.lower())
        if found is None:
            found = await self._find(_USERS, "username", login)
        return found

    async def list_users(self) -> list[User]:
        return await self._listed(_USERS)

    async def save_user(self, user: User) -> None:
        """Update; raises Conflict for a username or e-mail another user has. Only a change
        of ``enabled`` or ``admin`` moves the policy version."""
        async with self.driver.transaction() as db:
            before = await db.fetch("SELECT enabled, admin FROM idm_users WHERE id = ?", [user.id])
            await db.execute(_USERS.update(), [*_USERS.values(user)[1:], user.id])
            if before and (bool(before[0][0]), bool(before[0][1])) != (user.enabled, user.admin):
                await _bump(db)

    async def upgrade_password_hash(self, user_id: str, old_hash: str, new_hash: str) -> bool:
        """Replace the hash of the same password (a login re-hashing it), only if it is still
        ``old_hash``: nothing else of the user is written, so a change made meanwhile (a new
        password, the account disabled) is never undone."""
        return bool(await self._change("UPDATE idm_users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                                       [new_hash, user_id, old_hash]))

    async def delete_user(self, user_id: str) -> bool:
        """With the user's memberships, roles and tokens."""
        return await self._delete(_USERS, user_id)

    async def any_admin(self) -> bool:
        return bool(await self._fetch("SELECT id FROM idm_users WHERE admin = 1 LIMIT 1"))

    # -- organizations ------------------------------------------------------------------
    async def create_organization(self, organization: Organization, owner_id: str) -> None:
        """The organization, with ``owner_id`` as its owner."""
        async with self._policy_change() as db:
            await db.execute(_ORGANIZATIONS.insert(), _ORGANIZATIONS.values(organization))
            await db.execute(
                "INSERT INTO idm_memberships (organization_id, user_id, role) VALUES (?, ?, 'owner')", [organization.id, owner_id]
            )

    async def get_organization(self, organization_id: str) -> Organization | None:
        return await self._find(_ORGANIZATIONS, "id", organization_id)

    async def list_organizations(self) -> list[Organization]:
        return await self._listed(_ORGANIZATIONS)

    async def save_organization(self, organization: Organization) -> None:
        o = organization
        await self._change(_ORGANIZATIONS.update("name", "description", "website"), [o.name, o.description, o.website, o.id])

    async def delete_organization(self, organization_id: str) -> bool:
        return await self._delete(_ORGANIZATIONS, organization_id)

    async def put_membership(self, membership: Membership) -> None:
        m = membership
        await self._change(
            "INSERT INTO idm_memberships (organization_id, user_id, role) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [m.organization_id, m.user_id, m.role], policy=True,
        )

    async def delete_membership(self, organization_id: str, user_id: str, role: str | None = None) -> bool:
        """One role of the user in the organization, or (``role`` None) all of them."""
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
        """The application; ``provider_id`` (its creator) gets its ``provider`` role."""
        async with self._policy_change() as db:
            await db.execute(_APPLICATIONS.insert(), _APPLICATIONS.values(application))
            if provider_id is not None:
                await db.execute(
                    "INSERT INTO idm_user_roles (app_id, user_id, role_id, seq) VALUES (?, ?, 'provider', ?)",
                    [application.id, provider_id, await _next(db)],
                )

    async def get_application(self, app_id: str) -> Application | None:
        return await self._find(_APPLICATIONS, "id", app_id)

    async def list_applications(self) -> list[Application]:
        return await self._listed(_APPLICATIONS)

    async def save_application(self, application: Application) -> None:
        await self._change(_APPLICATIONS.update(), [*_APPLICATIONS.values(application)[1:], application.id], policy=True)

    async def delete_application(self, app_id: str) -> bool:
        """With its roles, permissions, assignments and tokens."""
        return await self._delete(_APPLICATIONS, app_id)

    # -- roles and permissions: the CRUD of both is ``self.roles`` and ``self.permissions`` --
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
        """Every permission assigned to one of the roles (each once)."""
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

    # -- tokens (keyed by the SHA-256 of their value) ----------------------------------------
    async def save_token(self, token: Token) -> None:
        await self._change(_TOKENS.insert(), _TOKENS.values(token))

    async def get_token(self, token_hash: str) -> Token | None:
        return await self._find(_TOKENS, "hash", token_hash)

    async def consume_token(self, token_hash: str) -> bool:
        """Mark a token revoked if it was not: True for the one caller that did it (an
        authorization code is used, a refresh token rotated, exactly once)."""
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
        """Forget tokens expired before ``now`` (revoked ones too, once expired)."""
        return await self._change("DELETE FROM idm_tokens WHERE expires_at IS NOT NULL AND expires_at < ?", [now])

    # -- signing keys -----------------------------------------------------------------------
    async def save_key(self, key: SigningKey) -> None:
        await self._change(_KEYS.insert(), _KEYS.values(key))

    async def list_keys(self) -> list[SigningKey]:
        return await self._listed(_KEYS)

    async def retire_key(self, kid: str, at: float) -> None:
        await self._change("UPDATE idm_signing_keys SET retired_at = ? WHERE kid = ? AND retired_at IS NULL", [at, kid])

    async def extend_key(self, kid: str, until: float) -> None:
        """``signed_until = max(signed_until, until)``."""
        await self._change("UPDATE idm_signing_keys SET signed_until = ? WHERE kid = ? AND signed_until < ?", [until, kid, until])

    async def delete_key(self, kid: str) -> None:
        await self._change("DELETE FROM idm_signing_keys WHERE kid = ?", [kid])

    # -- change notification --------------------------------------------------------------
    async def policy_version(self) -> int:
        row = await self._one("SELECT value FROM idm_counters WHERE name = ?", [_POLICY])
        return int(row[0]) if row else 0

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


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

