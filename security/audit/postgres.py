"""The audit log on PostgreSQL (asyncpg): the SQLite store's interface, async, for a
platform whose services share one database (or whose database is backed up and replicated).

URL ``postgresql://user:password@host:port/database``. The key and the head file stay in
the data directory (every host appending to one log needs the same ``audit.key``). Appends
serialise on a transaction-scoped advisory lock, so every process extends one chain. A
trigger refuses DELETE and any UPDATE but the pseudonymization's, as in SQLite.

Limit: PostgreSQL keeps the old versions of pseudonymized rows until VACUUM reclaims them,
and in its WAL and backups; ``pseudonymize`` runs ``VACUUM`` on the table, which makes the
space reusable but does not overwrite it. The byte-level guarantee is SQLite's only
(docs/audit.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import asyncpg

from .record import GENESIS, PSEUDONYMIZED, Anchor, Event, Record, mentions, pseudonymized, seal
from .store import (
    COLUMNS, HEAD_FILE, KEY_FILE, MAX_LIMIT, AuditError, details_text, load_key, mention_filter, read_anchor,
    log, row_record, utcnow, where,
)

_LOCK = 0x1D3_A0D1  # pg_advisory_xact_lock key of the audit chain
_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_records (
    seq BIGINT PRIMARY KEY, time TEXT NOT NULL, actor TEXT NOT NULL, actor_kind TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL, tenant TEXT NOT NULL, source TEXT NOT NULL,
    decision TEXT NOT NULL, reason TEXT NOT NULL, details TEXT NOT NULL, salt TEXT,
    commitment TEXT NOT NULL, hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_actor ON audit_records (actor, seq);
CREATE INDEX IF NOT EXISTS audit_by_action ON audit_records (action, seq);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit_records (time);
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'the audit log is append-only';
    END IF;
    IF NEW.salt IS NOT NULL OR NEW.seq IS DISTINCT FROM OLD.seq OR NEW.time IS DISTINCT FROM OLD.time
       OR NEW.actor_kind IS DISTINCT FROM OLD.actor_kind OR NEW.action IS DISTINCT FROM OLD.action
       OR NEW.tenant IS DISTINCT FROM OLD.tenant OR NEW.decision IS DISTINCT FROM OLD.decision
       OR NEW.reason IS DISTINCT FROM OLD.reason OR NEW.commitment IS DISTINCT FROM OLD.commitment
       OR NEW.hash IS DISTINCT FROM OLD.hash THEN
        RAISE EXCEPTION 'the audit log is append-only (only pseudonymization may change a record)';
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS audit_append_only ON audit_records;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
"""


def _numbered(sql: str) -> str:
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))


class PgAuditStore:
    """:class:`~.store.AuditStore`'s methods, awaited; ``open`` before use."""

    def __init__(self, url: str, data_dir: str | os.PathLike[str], *, keyed: bool = True, create: bool = True,
                 clock: Callable[[], str] = utcnow) -> None:
        self.url = url
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.key = load_key(self.data_dir / KEY_FILE, create=create and keyed) if keyed else None
        self._create = create
        self._clock = clock
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=4)
            if self._create:
                async with self._pool.acquire() as db, db.transaction():
                    await db.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
                    await db.execute(_SCHEMA)
        except (OSError, asyncpg.PostgresError) as exc:
            raise AuditError(f"audit log on PostgreSQL: {exc}") from exc

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise AuditError("the PostgreSQL audit store is not open")
        return self._pool

    async def _insert(self, db: asyncpg.Connection, event: Event) -> Record:
        await db.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        last = await db.fetchrow("SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1")
        seq, previous = (last["seq"] + 1, last["hash"]) if last else (1, GENESIS)
        record = seal(event, seq, self._clock(), previous, self.key)
        row = [getattr(record, c) for c in COLUMNS]
        row[COLUMNS.index("details")] = details_text(record.details)
        marks = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
        await db.execute(f"INSERT INTO audit_records VALUES ({marks})", *row)
        return record

    def _write_head(self, record: Record) -> None:
        """As SQLite's: after the commit, a failure only logged."""
        temporary = self.data_dir / f".{HEAD_FILE}.{os.getpid()}.{id(self)}"
        try:
            temporary.write_text(f'{{"seq": {record.seq}, "hash": "{record.hash}"}}\n')
            os.replace(temporary, self.data_dir / HEAD_FILE)
        except OSError as exc:
            log.error("audit head %s not updated to record %d: %s", self.data_dir / HEAD_FILE, record.seq, exc)

    async def append(self, event: Event) -> Record:
        try:
            async with self.pool.acquire() as db, db.transaction():
                record = await self._insert(db, event)
        except (OSError, asyncpg.PostgresError) as exc:
            raise AuditError(f"audit append failed: {exc}") from exc
        self._write_head(record)
        return record

    async def _read(self, sql: str, args: Iterable[Any] = ()) -> list[Record]:
        try:
            rows = await self.pool.fetch(_numbered(sql), *args)
            return [row_record(tuple(r)) for r in rows]
        except (OSError, asyncpg.PostgresError, TypeError, ValueError) as exc:
            raise AuditError(f"audit log unreadable: {exc}") from exc

    async def query(self, *, actor: str | None = None, action: str | None = None, tenant: str | None = None,
                    since: str | None = None, until: str | None = None, limit: int = 100,
                    offset: int = 0) -> list[Record]:
        clause, args = where(actor, action, tenant, since, until)
        sql = f"SELECT {', '.join(COLUMNS)} FROM audit_records{clause} ORDER BY seq LIMIT ? OFFSET ?"
        return await self._read(sql, [*args, max(0, min(limit, MAX_LIMIT)), max(0, offset)])

    async def records(self) -> list[Record]:
        return await self._read(f"SELECT {', '.join(COLUMNS)} FROM audit_records ORDER BY seq")

    def anchor(self) -> Anchor | None:
        return read_anchor(self.data_dir)

    async def pseudonymize(self, actor_id: str, pseudonym: str, *, aliases: Iterable[str] = (), by: str = "",
                           by_kind: str = "service") -> Record:
        names = {actor_id, *aliases} - {""}
        if not names or pseudonym in names:
            raise ValueError("pseudonymize needs an id and a different pseudonym")
        clause, args = mention_filter(names, find="strpos")
        try:
            async with self.pool.acquire() as db:
                async with db.transaction():
                    await db.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
                    rows = await db.fetch(_numbered(
                        f"SELECT {', '.join(COLUMNS)} FROM audit_records WHERE {clause} ORDER BY seq"), *args)
                    found = [row_record(tuple(r)) for r in rows]
                    changed = [pseudonymized(r, names, pseudonym) for r in found if mentions(r, names)]
                    for r in changed:
                        await db.execute(
                            "UPDATE audit_records SET actor = $1, target = $2, source = $3, details = $4, salt = NULL "
                            "WHERE seq = $5", r.actor, r.target, r.source, details_text(r.details), r.seq)
                    record = await self._insert(db, Event(
                        by or "audit", PSEUDONYMIZED, actor_kind=by_kind, target=pseudonym,
                        details={"pseudonym": pseudonym, "seqs": [r.seq for r in changed]}))
                await db.execute("VACUUM audit_records")
        except (OSError, asyncpg.PostgresError) as exc:
            raise AuditError(f"audit pseudonymization failed: {exc}") from exc
        self._write_head(record)
        return record
