"""The change feed's outbox (``broker/feed.py``) in each kind of store: its tables and the
four operations the feed needs, written once per SQL dialect; the stores call them.

Rows: ``(seq, stream, tenant, service_path, payload)``. ``seq`` only grows, and grows in
commit order, because the receiver keeps "the highest sequence committed" as its cursor:
a row committed after a higher one had been delivered would be skipped as seen.

* SQLite: ``AUTOINCREMENT`` (a plain rowid would reuse the numbers of deleted rows), and
  one writer at a time anyway.
* PostgreSQL: appends take a transaction-scoped advisory lock before the sequence gives
  their numbers (``waziup_outbox_append``), so two connections cannot commit out of order.

The lease (``outbox_leases``): one delivering process per stream among workers sharing
the store; a holder that stops renewing it for ``seconds`` loses it to the next taker.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

Row = tuple[str, str, bytes]  # (tenant, service path, payload)
Stored = tuple[int, str, str, bytes]  # (seq, tenant, service path, payload)

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    tenant TEXT NOT NULL,
    service_path TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_stream ON outbox (stream, seq);
CREATE TABLE IF NOT EXISTS outbox_leases (stream TEXT PRIMARY KEY, holder TEXT NOT NULL, until REAL NOT NULL);
"""

PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq bigserial PRIMARY KEY,
    stream text NOT NULL,
    tenant text NOT NULL,
    service_path text NOT NULL,
    payload bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_stream ON outbox (stream, seq);
CREATE TABLE IF NOT EXISTS outbox_leases (stream text PRIMARY KEY, holder text NOT NULL, until double precision NOT NULL);
CREATE OR REPLACE FUNCTION waziup_outbox_append(p_stream text, p_tenants text[], p_paths text[], p_payloads bytea[])
RETURNS void AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7279);
    INSERT INTO outbox (stream, tenant, service_path, payload)
    SELECT p_stream, t, p, d FROM unnest(p_tenants, p_paths, p_payloads) AS u(t, p, d);
END $$ LANGUAGE plpgsql;
"""

_LEASE = (
    "INSERT INTO outbox_leases (stream, holder, until) VALUES ({0}, {1}, {2}) "
    "ON CONFLICT (stream) DO UPDATE SET holder = excluded.holder, until = excluded.until "
    "WHERE outbox_leases.holder = excluded.holder OR outbox_leases.until < {3}"
)
_READ = "SELECT seq, tenant, service_path, payload FROM outbox WHERE stream = {0} ORDER BY seq LIMIT {1}"
_REMOVE = "DELETE FROM outbox WHERE stream = {0} AND seq <= {1}"
_HOLDER = "SELECT holder FROM outbox_leases WHERE stream = {0}"


# -- SQLite: called with the store's connection, inside its writer lock for writes ------------


def sqlite_append(db: sqlite3.Connection, stream: str, rows: Sequence[Row]) -> None:
    db.executemany(
        "INSERT INTO outbox (stream, tenant, service_path, payload) VALUES (?, ?, ?, ?)",
        [(stream, tenant, path, payload) for tenant, path, payload in rows],
    )


def sqlite_read(db: sqlite3.Connection, stream: str, limit: int) -> list[Stored]:
    return [(int(s), t, p, bytes(d)) for s, t, p, d in db.execute(_READ.format("?", "?"), (stream, limit)).fetchall()]


def sqlite_remove(db: sqlite3.Connection, stream: str, upto: int) -> None:
    db.execute(_REMOVE.format("?", "?"), (stream, upto))


def sqlite_lease(db: sqlite3.Connection, stream: str, holder: str, seconds: float) -> bool:
    now = time.time()
    db.execute(_LEASE.format("?", "?", "?", "?"), (stream, holder, now + seconds, now))
    row = db.execute(_HOLDER.format("?"), (stream,)).fetchone()
    return row is not None and row[0] == holder


# -- PostgreSQL: called with the store's pool (asyncpg) ---------------------------------------


async def pg_append(pool: Any, stream: str, rows: Sequence[Row]) -> None:
    await pool.execute(
        "SELECT waziup_outbox_append($1, $2, $3, $4)",
        stream, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
    )


async def pg_read(pool: Any, stream: str, limit: int) -> list[Stored]:
    return [(int(s), t, p, bytes(d)) for s, t, p, d in await pool.fetch(_READ.format("$1", "$2"), stream, limit)]


async def pg_remove(pool: Any, stream: str, upto: int) -> None:
    await pool.execute(_REMOVE.format("$1", "$2"), stream, upto)


async def pg_lease(pool: Any, stream: str, holder: str, seconds: float) -> bool:
    now = time.time()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_LEASE.format("$1", "$2", "$3", "$4"), stream, holder, now + seconds, now)
        return bool(await conn.fetchval(_HOLDER.format("$1"), stream) == holder)


# -- in memory (tests, the memory store) -------------------------------------------------------


class MemoryOutbox:
    """The same contract without a database: lost with the process, as the memory store is."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, str, str, bytes]] = []
        self.last = 0
        self.leases: dict[str, tuple[str, float]] = {}

    def append(self, stream: str, rows: Sequence[Row]) -> None:
        for tenant, path, payload in rows:
            self.last += 1
            self.rows.append((self.last, stream, tenant, path, payload))

    def read(self, stream: str, limit: int) -> list[Stored]:
        return [(s, t, p, d) for s, st, t, p, d in self.rows if st == stream][:limit]

    def remove(self, stream: str, upto: int) -> None:
        self.rows = [row for row in self.rows if row[1] != stream or row[0] > upto]

    def lease(self, stream: str, holder: str, seconds: float) -> bool:
        now = time.time()
        current = self.leases.get(stream)
        if current is None or current[0] == holder or current[1] < now:
            self.leases[stream] = (holder, now + seconds)
            return True
        return False
