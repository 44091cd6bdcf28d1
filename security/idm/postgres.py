"""The identity manager's PostgreSQL backend (asyncpg), for several identity managers on
one database or a database that is backed up and replicated with the rest.

URL: ``postgresql://user:password@host:port/database?pool_size=5`` (``postgres://`` too;
other query parameters are asyncpg's, e.g. ``sslmode``). The SQL is the SQLite backend's
(``sqlstore.py``) with ``?`` numbered into ``$1, $2...``; a read-then-write that must
happen once (consuming an authorization code, rotating a refresh token) is one
conditional ``UPDATE``, atomic across processes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode

import asyncpg

from ngsi.store_lifecycle import keep_session

from .sqlstore import Connection, Driver, Row, SQLStore
from .store import Conflict, StoreError

_SCHEMA_LOCK = 0x1D3_0001  # pg_advisory_xact_lock key: one process creates the schema at a time
_MARK = re.compile(r"\?")


def _numbered(sql: str) -> str:
    count = 0

    def number(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"${count}"

    return _MARK.sub(number, sql)


def _dsn(url: str) -> tuple[str, int]:
    _scheme, sep, rest = url.partition("://")
    if not sep:
        raise StoreError("bad PostgreSQL URL")
    base, _, query = rest.partition("?")
    pool_size, kept = 5, []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "pool_size":
            if not value.isdigit():
                raise StoreError(f"bad pool_size {value!r} in the PostgreSQL URL")
            pool_size = max(1, int(value))
        else:
            kept.append((name, value))
    return "postgresql://" + base + ("?" + urlencode(kept) if kept else ""), pool_size


class _PostgresConnection(Connection):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        try:
            status = await self.conn.execute(_numbered(sql), *args)
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(str(exc)) from exc
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"postgresql: {type(exc).__name__}: {exc}") from exc
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        try:
            return [tuple(row) for row in await self.conn.fetch(_numbered(sql), *args)]
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"postgresql: {type(exc).__name__}: {exc}") from exc


class PostgresDriver(Driver):
    def __init__(self, url: str) -> None:
        self.dsn, self.pool_size = _dsn(url)
        self.pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        try:
            self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size, reset=keep_session)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"postgresql: cannot connect: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        if self.pool is None:
            raise StoreError("the store is not open")
        async with self.pool.acquire() as conn, conn.transaction():
            yield _PostgresConnection(conn)

    async def schema_lock(self, db: Connection) -> None:
        await db.execute("SELECT pg_advisory_xact_lock(?)", [_SCHEMA_LOCK])


class PostgresStore(SQLStore):
    def __init__(self, url: str) -> None:
        super().__init__(PostgresDriver(url))
