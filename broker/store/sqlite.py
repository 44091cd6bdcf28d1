"""Embedded SQLite store: one file, zero set-up, the broker's default.

Durability: the database runs in WAL mode and every write is committed before the
broker answers, so an acknowledged write is in the operating system's hands and
survives ``kill -9`` of the broker (``synchronous=NORMAL`` trades only power-loss
safety of the last transactions for speed; set ``?synchronous=FULL`` in the URL to
have that too).

Calls are synchronous on the event loop: SQLite answers from the page cache in
microseconds, faster than a hop to a thread, and it keeps each read-modify-write of
the broker atomic within one worker.

Several processes on one file (``-workers N``, or ``?shared=1`` in the URL) make the
store ``shared``:

* writers take an exclusive ``flock`` on ``<file>-wlock`` for the length of one write
  transaction (tens of microseconds, nothing awaited meanwhile). A worker waits for
  the other's transaction to end instead of meeting SQLITE_BUSY, whose handler sleeps
  1, 2, 5, 10... ms while blocking the event loop; the lock goes with a killed process;
* ``modify`` and ``modify_subscription`` read and write in one ``BEGIN IMMEDIATE``
  transaction under that lock, so concurrent read-modify-writes of different workers
  apply one after the other and counters add up;
* every write of a subscription or registration appends a row to ``changes`` in its
  own transaction and, after the commit, publishes the row's number in a word of shared
  memory (the lock file, mapped). ``sync`` (called at the start of each request)
  compares that word with the last row this process handled, without a system call,
  and when it moved hands the other processes' changes to the ``listen`` callback
  before the request runs: a change a worker acknowledged is used by every request
  another worker starts afterwards. The log keeps the last ``CHANGES_KEPT`` rows; a
  process further behind reloads everything (``"*"``).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import mmap
import os
import secrets
import sqlite3
import time
from contextlib import contextmanager, nullcontext
from collections.abc import Sequence
from typing import Any, Callable, ContextManager, Iterator
from urllib.parse import parse_qs

import orjson

from ngsi.store_lifecycle import WhileOpen, prepare_sqlite_path

from . import outbox, sqlquery
from .base import (
    DOC_TABLES, ChangeCallback, DocKind, DriverErrors, Entity, Selector, Store, StoreError, Write,
    pattern_search,
)

log = logging.getLogger("waziup.store")

CHANGES_KEPT = 1000  # rows of the change log kept for processes that are behind
LOCK_SPINS = 3  # turns of the event loop before a worker blocks on the writer lock
# Connection tuning, measured at 10,000 entities (docs/storage.md): the default 2 MB page
# cache does not hold a 6 MB database; memory-mapped reads share the OS page cache
# between workers instead of copying pages into each process.
CACHE_KIB = 32 * 1024
MMAP_BYTES = 256 * 1024 * 1024

# Subscription and registration changes, for the other processes of a shared store.
_CHANGES_SCHEMA = """
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    kind TEXT NOT NULL,
    tenant TEXT NOT NULL,
    id TEXT NOT NULL
);
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    seq INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    sp TEXT NOT NULL,
    exp REAL,
    doc BLOB NOT NULL,
    UNIQUE (tenant, id, type, sp)
);
CREATE INDEX IF NOT EXISTS entities_type ON entities (tenant, type);
CREATE INDEX IF NOT EXISTS entities_sp ON entities (tenant, sp);
CREATE INDEX IF NOT EXISTS entities_exp ON entities (exp) WHERE exp IS NOT NULL;
CREATE TABLE IF NOT EXISTS subscriptions (
    tenant TEXT NOT NULL,
    id TEXT PRIMARY KEY,
    doc BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS registrations (
    tenant TEXT NOT NULL,
    id TEXT PRIMARY KEY,
    doc BLOB NOT NULL
);
"""

_mapped_errors = DriverErrors(sqlite3.IntegrityError, (sqlite3.Error,), "sqlite: {exc}")


def _path_from_url(url: str) -> tuple[str, dict[str, list[str]]]:
    """SQLAlchemy's convention: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite://`` in memory."""
    rest, _, query = url.partition("?")
    path = rest[len("sqlite:///") :] if rest.startswith("sqlite:///") else ""
    return path or ":memory:", parse_qs(query)


def _where(tenant: str, selector: Selector, *, unindexed: bool = False) -> tuple[str, list[Any]]:
    """The selector's WHERE clause. ``unindexed``: "+" on every column, for a query whose rows
    another index (an attribute's, see sqlquery.py) or a list of ids finds."""
    plus = "+" if unindexed else ""
    clauses = [f"{plus}tenant = ?"]
    params: list[Any] = [tenant]
    if selector.ids is not None:
        clauses.append(f"id IN ({','.join('?' * len(selector.ids))})")
        params.extend(selector.ids)
    if selector.id_pattern is not None:
        clauses.append("id REGEXP ?")
        params.append(selector.id_pattern)
    if selector.types is not None:
        # "+type": with ids given, the (tenant, id, ...) index must win (see "+sp" below).
        column = "+type" if selector.ids is not None or unindexed else "type"
        clauses.append(f"{column} IN ({','.join('?' * len(selector.types))})")
        params.extend(selector.types)
    if selector.type_pattern is not None:
        clauses.append("type REGEXP ?")
        params.append(selector.type_pattern)
    scopes = []
    # With ids given, the unique (tenant, id, ...) index is the one to use; without statistics
    # SQLite may pick (tenant, sp) instead and scan every entity of the path: "+sp" rules it out.
    sp = "+sp" if selector.ids is not None or unindexed else "sp"
    # A "/" subtree among the scopes matches every path (checked first: no stray params).
    for path, subtree in () if ("/", True) in selector.service_paths else selector.service_paths:
        if subtree:
            # '/' sorts right before '0': [path + '/', path + '0') is the subtree, served by the index.
            scopes.append(f"({sp} = ? OR ({sp} >= ? AND {sp} < ?))")
            params.extend([path, path + "/", path + "0"])
        else:
            scopes.append(f"{sp} = ?")
            params.append(path)
    if scopes:
        clauses.append("(" + " OR ".join(scopes) + ")")
    return " AND ".join(clauses), params


def _flag(values: list[str] | None) -> bool:
    return bool(values) and values[-1].lower() in ("1", "true", "yes", "on")


class _WriteLock:
    """The cross-process writer lock of a shared store: an exclusive ``flock``, reentrant
    within the process (a ``modify`` transaction calls ``insert``/``save``/``delete``).

    Held only while a write transaction runs synchronously, never across an ``await``, so
    a waiting worker blocks for the rest of another worker's transaction (tens of
    microseconds). ``waits``/``waited`` count the contended acquisitions (logged at close).
    """

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if os.fstat(self.fd).st_size < 8:
                os.ftruncate(self.fd, 8)  # the published word below
            self.word = mmap.mmap(self.fd, 8)
        except OSError:
            os.close(self.fd)
            raise
        self.depth = 0
        self.waits = 0
        self.waited = 0.0

    def published(self) -> int:
        """The last change-log row a writer published (shared memory, no system call)."""
        return int.from_bytes(self.word[:8], "little")

    def publish(self, seq: int) -> None:
        """Called under the lock, after the COMMIT of change-log row ``seq``."""
        self.word[:8] = seq.to_bytes(8, "little")

    def try_enter(self) -> bool:
        """``__enter__`` if the lock is free now; False (nothing held) when another process has it."""
        if self.depth == 0:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        self.depth += 1
        return True

    def enter_blocking(self) -> None:
        """``__enter__`` without the accounting (the caller measures the whole wait)."""
        if self.depth == 0:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.depth += 1

    def __enter__(self) -> None:
        if self.depth == 0:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                started = time.perf_counter()
                fcntl.flock(self.fd, fcntl.LOCK_EX)
                self.waits += 1
                self.waited += time.perf_counter() - started
        self.depth += 1

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1
        if self.depth == 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.word.close()
        os.close(self.fd)


class SQLiteStore(WhileOpen[sqlite3.Connection], Store):
    def __init__(self, url: str) -> None:
        self.path, options = _path_from_url(url)
        self.synchronous = options.get("synchronous", ["NORMAL"])[0].upper()
        self.shared = _flag(options.get("shared"))
        if self.shared and self.path == ":memory:":
            raise StoreError("a shared SQLite store needs a file (sqlite:///path?shared=1)")
        self._handle: sqlite3.Connection | None = None  # the connection while open (WhileOpen)
        self._queries = sqlquery.SQLiteQueries()  # q pushdown and page cache (sqlquery.py)
        self._write_lock: _WriteLock | None = None
        # Taken around every write: the cross-process lock when shared, else nothing.
        self._lock: ContextManager[Any] = nullcontext()
        self.origin = secrets.token_hex(8)  # tells this process's own changes apart
        self._seen = 0  # last row of ``changes`` this process handled
        self._on_change: ChangeCallback | None = None
        self._sync_lock: asyncio.Lock | None = None
        self._logged = 0  # change-log row written by the current transaction

    def closed_error(self) -> Exception:
        return StoreError("the SQLite store is not open")

    db = WhileOpen.handle  # the connection, under the name sqlquery.py and the tests use

    async def open(self) -> None:
        prepare_sqlite_path(self.path)
        if self.shared:
            try:
                self._write_lock = _WriteLock(self.path + "-wlock")
            except OSError as exc:
                raise StoreError(f"sqlite: cannot open the writer lock file: {exc}") from exc
            self._lock = self._write_lock
        with _mapped_errors, self._lock:  # workers starting together create the schema once
            # The busy timeout only covers what the writer lock does not: WAL recovery after
            # a crash, and a foreign process writing the file.
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous if self.synchronous in ('OFF', 'NORMAL', 'FULL') else 'NORMAL'}")
            db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            db.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            db.execute("PRAGMA temp_store=MEMORY")
            db.create_function("REGEXP", 2, pattern_search, deterministic=True)
            db.executescript(_SCHEMA)
            db.executescript(_CHANGES_SCHEMA)
            db.executescript(outbox.SQLITE_SCHEMA)
            if self._write_lock is not None:  # repairs a word left behind by a writer killed before publishing
                (last,) = db.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()
                self._write_lock.publish(int(last))
            db.executescript(sqlquery.SQLITE_SCHEMA)
            self._queries.load(db)
        self._handle = db

    async def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._write_lock is not None:
            lock = self._write_lock
            log.info("writer lock of %s: waited for another process %d times, %.1f ms in all", self.path, lock.waits, lock.waited * 1000)
            lock.close()
            self._write_lock = None
            self._lock = nullcontext()

    async def find(
        self, tenant: str, selector: Selector, *, limit: int | None = None, offset: int = 0
    ) -> list[Entity]:
        if selector.hint is not None and selector.ids is None:
            return self._find_hinted(tenant, selector, limit, offset)
        if offset >= sqlquery.PAGE_CACHE_OFFSET:
            with _mapped_errors:
                docs = self._queries.page(self.db, _where, tenant, selector, limit, offset)
            if docs is not None:
                return [orjson.loads(doc) for doc in docs]
        where, params = _where(tenant, selector)
        sql = f"SELECT doc FROM entities WHERE {where} ORDER BY seq"
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            params += [-1 if limit is None else limit, offset]
        with _mapped_errors:
            rows = self.db.execute(sql, params).fetchall()
        return [orjson.loads(row[0]) for row in rows]

    def _find_hinted(self, tenant: str, selector: Selector, limit: int | None, offset: int) -> list[Entity]:
        """A superset of the hint's entities among the selector's (sqlquery.py)."""
        sql, params, indexed = self._queries.find_sql(_where, tenant, selector)
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            params += [-1 if limit is None else limit, offset]
        with _mapped_errors:
            rows, seconds = sqlquery.timed(lambda: self.db.execute(sql, params).fetchall())
            if not indexed:
                assert selector.hint is not None
                self._queries.after_scan(self.db, selector.hint.attr, seconds, self._lock)
        return [orjson.loads(row[0]) for row in rows]

    async def count(self, tenant: str, selector: Selector) -> int:
        if selector.hint is None:
            with _mapped_errors:
                return self._queries.count(self.db, _where, tenant, selector)
        where, params = _where(tenant, selector)
        with _mapped_errors:
            (n,) = self.db.execute(f"SELECT count(*) FROM entities WHERE {where}", params).fetchone()
        return int(n)

    async def insert(self, tenant: str, entity: Entity) -> None:
        with _mapped_errors, self._lock:
            self.db.execute(
                "INSERT INTO entities (tenant, id, type, sp, exp, doc) VALUES (?, ?, ?, ?, ?, ?)",
                (tenant, entity["id"], entity["type"], entity["servicePath"], entity.get("expDate"), orjson.dumps(entity)),
            )

    async def save(self, tenant: str, entity: Entity) -> None:
        with _mapped_errors, self._lock:
            self.db.execute(
                "INSERT INTO entities (tenant, id, type, sp, exp, doc) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (tenant, id, type, sp) DO UPDATE SET exp = excluded.exp, doc = excluded.doc",
                (tenant, entity["id"], entity["type"], entity["servicePath"], entity.get("expDate"), orjson.dumps(entity)),
            )

    async def delete(self, tenant: str, entity: Entity) -> bool:
        with _mapped_errors, self._lock:
            cursor = self.db.execute(
                "DELETE FROM entities WHERE tenant = ? AND id = ? AND type = ? AND sp = ?",
                (tenant, entity["id"], entity["type"], entity["servicePath"]),
            )
        return cursor.rowcount > 0

    async def purge_expired(self, now: float) -> list[tuple[str, Entity]]:
        with _mapped_errors, self._lock:
            rows = self.db.execute(
                "DELETE FROM entities WHERE exp IS NOT NULL AND exp < ? RETURNING tenant, doc", (now,)
            ).fetchall()
        return [(tenant, orjson.loads(doc)) for tenant, doc in rows]

    # -- the change feed's outbox (broker/store/outbox.py) --

    async def outbox_append(self, stream: str, rows: Sequence[outbox.Row]) -> None:
        with self._transaction() as db:
            outbox.sqlite_append(db, stream, rows)

    async def outbox_read(self, stream: str, limit: int) -> list[outbox.Stored]:
        with _mapped_errors:
            return outbox.sqlite_read(self.db, stream, limit)

    async def outbox_remove(self, stream: str, upto: int) -> None:
        with _mapped_errors, self._lock:
            outbox.sqlite_remove(self.db, stream, upto)

    async def outbox_lease(self, stream: str, holder: str, seconds: float) -> bool:
        with self._transaction() as db:
            return outbox.sqlite_lease(db, stream, holder, seconds)

    # -- atomic read-modify-writes (a transaction under the writer lock when shared) --

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` under the writer lock; ROLLBACK on any exception.
        The body must not yield to the event loop: other coroutines share the connection."""
        db = self.db
        with _mapped_errors, self._lock:
            db.execute("BEGIN IMMEDIATE")
            self._logged = 0
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            if self._logged and self._write_lock is not None:
                self._write_lock.publish(self._logged)  # before the lock goes, so in order

    async def _take_write_lock(self) -> _WriteLock:
        """The writer lock, held on return (the caller must not yield before releasing it).

        When another worker holds it, this worker first lets its event loop run what is
        ready (a few turns: a transaction lasts tens of microseconds), then blocks in
        ``flock``, which the kernel ends the moment the lock is released. Polling instead
        (``LOCK_NB`` every millisecond) was measured worse under W1 PATCH with 2 workers:
        the holder takes the lock again before the poller looks, and the poller starves."""
        lock = self._write_lock
        if lock is None:
            raise self.closed_error()
        if lock.try_enter():
            return lock
        started = time.perf_counter()
        for _ in range(LOCK_SPINS):
            await asyncio.sleep(0)
            if lock.try_enter():
                break
        else:
            lock.enter_blocking()
        lock.waits += 1
        lock.waited += time.perf_counter() - started
        return lock

    async def modify(self, tenant: str, selector: Selector, fn: Callable[[list[Entity]], Write]) -> None:
        """One worker: the base version is atomic (nothing in it yields). Shared: the same
        steps inside one transaction, so another process's write can't come in between."""
        if not self.shared:
            await super().modify(tenant, selector, fn)
            return
        lock = await self._take_write_lock()
        try:
            with self._transaction():
                await super().modify(tenant, selector, fn)  # find/insert/save/delete never yield
        finally:
            lock.__exit__()

    # -- subscriptions and registrations: (tenant, document) by id, in creation order --

    def _upsert(self, db: sqlite3.Connection, table: str, tenant: str, doc: dict[str, Any]) -> None:
        db.execute(
            f"INSERT INTO {table} (tenant, id, doc) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, doc = excluded.doc",
            (tenant, doc["id"], orjson.dumps(doc)),
        )

    def _log_change(self, db: sqlite3.Connection, kind: str, tenant: str, doc_id: str) -> None:
        cursor = db.execute(
            "INSERT INTO changes (origin, kind, tenant, id) VALUES (?, ?, ?, ?)", (self.origin, kind, tenant, doc_id)
        )
        seq = self._logged = int(cursor.lastrowid or 0)
        if seq % 100 == 0:
            db.execute("DELETE FROM changes WHERE seq <= ?", (seq - CHANGES_KEPT,))

    async def save_doc(self, kind: DocKind, tenant: str, doc: dict[str, Any]) -> None:
        table = DOC_TABLES[kind]
        if not self.shared:
            with _mapped_errors:
                self._upsert(self.db, table, tenant, doc)
            return
        with self._transaction() as db:
            self._upsert(db, table, tenant, doc)
            self._log_change(db, kind, tenant, doc["id"])

    async def delete_doc(self, kind: DocKind, tenant: str, doc_id: str) -> bool:
        sql = f"DELETE FROM {DOC_TABLES[kind]} WHERE tenant = ? AND id = ?"
        if not self.shared:
            with _mapped_errors:
                return self.db.execute(sql, (tenant, doc_id)).rowcount > 0
        with self._transaction() as db:
            deleted = db.execute(sql, (tenant, doc_id)).rowcount > 0
            if deleted:
                self._log_change(db, kind, tenant, doc_id)
        return deleted

    async def load_docs(self, kind: DocKind) -> list[tuple[str, dict[str, Any]]]:
        with _mapped_errors:
            rows = self.db.execute(f"SELECT tenant, doc FROM {DOC_TABLES[kind]} ORDER BY rowid").fetchall()
        return [(tenant, orjson.loads(doc)) for tenant, doc in rows]

    async def get_doc(self, kind: DocKind, tenant: str, doc_id: str) -> dict[str, Any] | None:
        with _mapped_errors:
            row = self.db.execute(
                f"SELECT doc FROM {DOC_TABLES[kind]} WHERE tenant = ? AND id = ?", (tenant, doc_id)
            ).fetchone()
        return None if row is None else orjson.loads(row[0])

    async def modify_subscription(
        self, tenant: str, sub_id: str, fn: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any] | None:
        if not self.shared:
            return await super().modify_subscription(tenant, sub_id, fn)
        with self._transaction() as db:
            row = db.execute("SELECT doc FROM subscriptions WHERE tenant = ? AND id = ?", (tenant, sub_id)).fetchone()
            if row is None:
                return None
            sub = fn(orjson.loads(row[0]))
            self._upsert(db, "subscriptions", tenant, sub)
            self._log_change(db, "subscription", tenant, sub_id)
        return sub

    # -- changes of the other processes (see the module's docstring) --

    async def listen(self, callback: ChangeCallback) -> None:
        """From now on, ``sync`` hands ``callback`` the changes other processes commit."""
        if not self.shared:
            return
        with _mapped_errors:
            (last,) = self.db.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()
        self._seen = int(last)
        self._sync_lock = asyncio.Lock()
        self._on_change = callback

    def _changes(self) -> list[tuple[int, str, str, str, str]]:
        return self.db.execute(
            "SELECT seq, origin, kind, tenant, id FROM changes WHERE seq > ? ORDER BY seq", (self._seen,)
        ).fetchall()

    async def sync(self) -> None:
        """Apply what other processes changed since the last call: one indexed read when
        nothing did. Requests arriving during a reload wait for it (``_sync_lock``)."""
        if self._on_change is None or self._sync_lock is None or self._write_lock is None:
            return
        if self._write_lock.published() == self._seen:  # the usual case: no SQL at all
            return
        try:
            if not self._changes():
                return
            async with self._sync_lock:
                rows = self._changes()
                if rows and rows[0][0] != self._seen + 1:  # the log was pruned past what this process saw
                    self._seen = rows[-1][0]
                    await self._deliver("*", "", "")
                    return
                for seq, origin, kind, tenant, doc_id in rows:
                    self._seen = seq
                    if origin != self.origin:
                        await self._deliver(kind, tenant, doc_id)
        except sqlite3.Error as exc:  # the request goes on; the next one tries again
            log.warning("reading the change log failed: %s", exc)

    async def _deliver(self, kind: str, tenant: str, doc_id: str) -> None:
        try:
            result = self._on_change(kind, tenant, doc_id) if self._on_change is not None else None
            if result is not None:
                await result
        except Exception:  # one bad reload must not stop the others
            log.exception("handling the change of %s %s failed", kind, doc_id)
