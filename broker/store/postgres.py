"""PostgreSQL store (asyncpg): for brokers that share one database or outgrow one file.

Same behaviour as the SQLite store: one ``entities`` table keyed by (tenant, id, type,
service path), creation order kept by a ``bigserial`` sequence, indexes for the
filters a store answers (tenant+type, tenant+service path, expiry, creation order).

Documents: each entity is kept twice. ``raw`` holds the exact JSON bytes the broker
wrote and is what reads return, because NGSI renders attributes, metadata and
object values in insertion order and ``jsonb`` sorts object keys. ``doc`` holds the
same document as ``jsonb`` for queries pushed into SQL later (``q``/``mq``); it is
NULL for the rare document PostgreSQL can't store as ``jsonb`` (a ``\\u0000`` in a
string). With PostGIS, ``geom`` holds ``entity["location"]["geometry"]`` under a GIST
index, for geo queries pushed down later (the broker evaluates them in Python now).

Text columns use the "C" collation: comparisons are by code point, as in SQLite, and
the service path subtree test can be an index range ('/' sorts right before '0').

``idPattern``/``typePattern`` run as PostgreSQL regexes (``~``). PostgreSQL's AREs and
Python's ``re`` (the contract's reference, see ``Selector.matches``) agree on common
syntax; a pattern using syntax only Python has (``(?P<..>``, ``\\b``, ``\\A``, ...) or
one PostgreSQL refuses is evaluated in Python on the rows of the other filters.

URL: ``postgresql://user:password@host:port/database?pool_size=10`` (``postgres://``
and ``postgresql+asyncpg://`` too); other query parameters are asyncpg's (``sslmode``...).

Several broker processes (``-workers N``, or brokers on several hosts) may share one
database, so the store is ``shared``:

* a read-modify-write of an entity (``modify``) runs in one transaction that locks the
  rows it read (``SELECT ... FOR UPDATE``): two concurrent updates of an entity apply one
  after the other, none is lost. Two concurrent creations of one entity collide on the
  unique key; the loser runs again and finds the winner's entity;
* subscriptions' counters and throttling go through ``modify_subscription`` (row lock
  too), so increments made by different workers add up and a throttled or oneshot
  subscription fires once across workers;
* every write of a subscription or registration sends a ``NOTIFY waziup_changes`` in its
  transaction (delivered on commit); each store ``listen``s on a dedicated connection and
  hands the changes other processes made to the registries, which reload those items.
  When that connection drops, notifications may be lost: after reconnecting the callback
  gets ``"*"`` (reload everything).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode

import asyncpg
import orjson

from ngsi.regex import compile_pattern
from ngsi.store_lifecycle import WhileOpen, keep_session

from . import outbox, pgpages, sqlquery
from .base import (
    DOC_TABLES, AlreadyExists, ChangeCallback, DocKind, DriverErrors, Entity, Selector, Store, StoreError, Write,
    entity_key, pattern_search,
)
from .rowcache import Row, RowCache

log = logging.getLogger("waziup.store")

CHANNEL = "waziup_changes"
RECONNECT_DELAY = 1.0  # seconds between attempts to get the listening connection back
MODIFY_ATTEMPTS = 3  # runs of a read-modify-write whose insert lost a race
CACHED_ATTEMPTS = 4  # lock-free runs of a read-modify-write before it takes the row lock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    seq bigserial PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    type text COLLATE "C" NOT NULL,
    sp text COLLATE "C" NOT NULL,
    exp double precision,
    raw bytea NOT NULL,
    doc jsonb,
    ver bigint NOT NULL DEFAULT 0,
    UNIQUE (tenant, id, type, sp)
);
ALTER TABLE entities ADD COLUMN IF NOT EXISTS ver bigint NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS entities_order ON entities (tenant, seq);
CREATE INDEX IF NOT EXISTS entities_type ON entities (tenant, type);
CREATE INDEX IF NOT EXISTS entities_sp ON entities (tenant, sp);
CREATE INDEX IF NOT EXISTS entities_exp ON entities (exp) WHERE exp IS NOT NULL;
CREATE TABLE IF NOT EXISTS subscriptions (
    seq bigserial,
    tenant text COLLATE "C" NOT NULL,
    id text COLLATE "C" PRIMARY KEY,
    raw bytea NOT NULL,
    doc jsonb
);
CREATE TABLE IF NOT EXISTS registrations (
    seq bigserial,
    tenant text COLLATE "C" NOT NULL,
    id text COLLATE "C" PRIMARY KEY,
    raw bytea NOT NULL,
    doc jsonb
);
"""

# ST_GeomFromGeoJSON refuses some geometries the broker accepts (it validated them with
# shapely already): such an entity is stored without ``geom`` rather than not at all.
# Positions may carry an altitude (orion-api.md, "GeoJSON"); the column is 2D, so the
# geometry is flattened (a 3D one would fail the insert, outside the handler below).
_POSTGIS_SCHEMA = """
ALTER TABLE entities ADD COLUMN IF NOT EXISTS geom geometry(Geometry, 4326);
CREATE INDEX IF NOT EXISTS entities_geom ON entities USING gist (geom);
CREATE OR REPLACE FUNCTION waziup_geom(geojson text) RETURNS geometry
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF geojson IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN ST_SetSRID(ST_Force2D(ST_GeomFromGeoJSON(geojson)), 4326);
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;
"""


# Serialises schema creation across brokers starting together on one database
# (CREATE OR REPLACE FUNCTION and CREATE EXTENSION race otherwise).
_SCHEMA_LOCK = 0x7761_7A69_7570  # "waziup"
# No statement runs longer (PostgreSQL cancels it; the request gets an error): a pattern
# that is expensive for PostgreSQL's regex engine cannot hold a connection for long.
STATEMENT_TIMEOUT_MS = 30_000

# Every driver-level failure a call can raise; all become StoreError (tested).
CAUGHT: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
    re.error,
)

# Python-only regex syntax, or syntax PostgreSQL's AREs read differently.
_PYTHON_ONLY_REGEX = re.compile(
    r"\\[^dDwWsS\W]"  # escapes other than classes and escaped punctuation (\b \A \Z \1 \x ...)
    r"|\(\?(?![:=!]|<[=!])"  # groups other than (?: (?= (?! (?<= (?<!
    r"|\[[:=.]"  # POSIX classes, which Python reads as plain sets
)


_mapped_errors = DriverErrors(asyncpg.UniqueViolationError, CAUGHT, "postgresql: {name}: {exc}")


def _dsn_from_url(url: str) -> tuple[str, int]:
    """asyncpg's DSN for a store URL, and the pool size it asks for."""
    _scheme, sep, rest = url.partition("://")
    if not sep:
        raise StoreError(f"bad PostgreSQL URL {url!r}")
    base, _, query = rest.partition("?")
    options = parse_qsl(query, keep_blank_values=True)
    pool_size = 10
    kept = []
    for name, value in options:
        if name == "pool_size":
            try:
                pool_size = max(1, int(value))
            except ValueError:
                raise StoreError(f"bad pool_size {value!r} in the PostgreSQL URL") from None
        else:
            kept.append((name, value))
    dsn = "postgresql://" + base + ("?" + urlencode(kept) if kept else "")
    return dsn, pool_size


def _pg_regex_ok(pattern: str) -> bool:
    return _PYTHON_ONLY_REGEX.search(pattern) is None


class _Where:
    """The WHERE clause of a selector; patterns PostgreSQL can't run are left to ``python``."""

    def __init__(self, tenant: str, selector: Selector, *, sql_patterns: bool = True) -> None:
        self.selector = selector
        self.params: list[Any] = [tenant]
        clauses = ["tenant = $1"]
        self.python_patterns: list[tuple[str, str]] = []  # (field, pattern)

        def param(value: Any) -> str:
            self.params.append(value)
            return f"${len(self.params)}"

        if selector.ids is not None:
            clauses.append(f"id = ANY({param(list(selector.ids))}::text[])")
        if selector.types is not None:
            clauses.append(f"type = ANY({param(list(selector.types))}::text[])")
        for column, pattern in (("id", selector.id_pattern), ("type", selector.type_pattern)):
            if pattern is None:
                continue
            if compile_pattern(pattern) is None:  # what RE2 refuses is refused on every backend
                raise StoreError(f"invalid regular expression: {pattern!r}")
            if sql_patterns and _pg_regex_ok(pattern):
                clauses.append(f"{column} ~ {param(pattern)}")
            else:
                self.python_patterns.append((column, pattern))
        scopes = []
        # A "/" subtree among the scopes matches every path.
        for path, subtree in () if ("/", True) in selector.service_paths else selector.service_paths:
            if subtree:
                # [path + '/', path + '0') is the subtree, served by the (tenant, sp) index.
                scopes.append(f"sp = {param(path)} OR (sp >= {param(path + '/')} AND sp < {param(path + '0')})")
            else:
                scopes.append(f"sp = {param(path)}")
        if scopes:
            clauses.append("(" + " OR ".join(f"({s})" for s in scopes) + ")")
        hint = selector.hint
        # A q hint (sqlquery.py): a superset of the q filter's matches; the broker decides.
        self.hinted: str | None = None
        if hint is not None and selector.ids is None and sqlquery.pushable_attr(hint.attr):
            condition = sqlquery.pg_condition(hint, param)
            if condition is not None:
                clauses.append(condition)
                self.hinted = hint.attr
        self.sql = " AND ".join(clauses)

    def keep(self, entity: Entity) -> bool:
        """The pattern filters left to Python (same test as ``Selector.matches``)."""
        for column, pattern in self.python_patterns:
            if not pattern_search(pattern, entity[column]):
                return False
        return True


def _listable(where: _Where) -> bool:
    """Whether the selector's entities can be listed by id for paging (pgpages.py): not when
    a q hint is in the SQL (values change with every update) or patterns run in Python."""
    return where.hinted is None and not where.python_patterns and where.selector.ids is None


def _one_id(selector: Selector) -> bool:
    """A selector the row cache can answer: one id, no pattern (types and scopes are checked
    with ``Selector.matches``)."""
    return selector.ids is not None and len(selector.ids) == 1 and selector.id_pattern is None and selector.hint is None


def _by_ids(selector: Selector) -> bool:
    return selector.ids is not None and selector.id_pattern is None and selector.hint is None


def _matching(selector: Selector, entity_id: str, rows: tuple[Row, ...]) -> list[Row]:
    return [row for row in rows if selector.matches({"id": entity_id, "type": row.type, "servicePath": row.sp})]


@dataclass
class _Slot:
    seq: int | None  # the stored row's, None for an entity this batch created
    order: tuple[int, int]  # stored rows first (by seq), then the batch's new ones in order
    raw: bytes | None  # None: deleted (or never there)
    params: list[Any] | None = None  # the INSERT/UPDATE parameters of its last write
    dirty: bool = False
    recreated: bool = False  # deleted and created again: a new row, at the end


class _Batch:
    """The rows of a ``modify_many`` as its steps see them: the stored ones, changed by each
    step in turn. ``statements`` gives what to send, final states only."""

    def __init__(self, stored: Iterable[tuple[int, tuple[str, str, str], bytes]]) -> None:
        self.slots: dict[tuple[str, str, str], _Slot] = {}
        self.by_id: dict[str, list[tuple[str, str, str]]] = {}
        self.created = 0
        for seq, key, raw in stored:
            self._add(key, _Slot(seq, (0, seq), raw))

    def _add(self, key: tuple[str, str, str], slot: _Slot) -> _Slot:
        self.slots[key] = slot
        self.by_id.setdefault(key[0], []).append(key)
        return slot

    def find(self, selector: Selector) -> list[bytes]:
        hits = []
        for entity_id in selector.ids or ():
            for key in self.by_id.get(entity_id, ()):
                slot = self.slots[key]
                if slot.raw is not None and selector.matches({"id": key[0], "type": key[1], "servicePath": key[2]}):
                    hits.append((slot.order, slot.raw))
        hits.sort(key=lambda hit: hit[0])
        return [raw for _, raw in hits[:2]]

    def write(self, op: str, key: tuple[str, str, str], params: list[Any] | None) -> None:
        slot = self.slots.get(key) or self._add(key, _Slot(None, (1, 0), None))
        slot.dirty = True
        if op == "delete" or params is None:
            slot.raw = slot.params = None
            return
        if slot.raw is None:  # a creation, perhaps after a delete in this batch
            slot.recreated = slot.seq is not None
            slot.order = (1, self.created)
            self.created += 1
        slot.raw, slot.params = params[5], params

    def statements(self) -> tuple[list[int], list[tuple[int, list[Any]]], list[list[Any]]]:
        """(seqs to delete, (seq, params) to update, params to insert in creation order)."""
        dirty = [slot for slot in self.slots.values() if slot.dirty]
        gone = [s.seq for s in dirty if s.seq is not None and (s.raw is None or s.recreated)]
        updates = [(s.seq, s.params) for s in dirty if s.seq is not None and s.params is not None and not s.recreated]
        new = sorted((s for s in dirty if s.params is not None and (s.seq is None or s.recreated)), key=lambda s: s.order)
        return gone, updates, [s.params for s in new if s.params is not None]


def _entity_params(tenant: str, entity: Entity) -> list[Any]:
    raw = orjson.dumps(entity)
    # jsonb has no NUL character: such a document keeps only its raw bytes.
    doc = None if b"\\u0000" in raw else raw.decode()
    return [tenant, entity["id"], entity["type"], entity["servicePath"], entity.get("expDate"), raw, doc]


class PostgresStore(WhileOpen[asyncpg.Pool], Store):
    shared = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.origin = secrets.token_hex(8)  # tells this store's own notifications apart
        self._listeners: list[asyncio.Task[None]] = []
        self.dsn, self.pool_size = _dsn_from_url(url)
        self._handle: asyncpg.Pool | None = None  # the pool while open (WhileOpen)
        self.postgis = False
        self._columns = "tenant, id, type, sp, exp, raw, doc"
        self._values = "$1, $2, $3, $4, $5, $6, $7::jsonb"
        self._attr_indexes: set[str] = set()  # attributes indexed for q (sqlquery.py)
        self._rows = RowCache()  # the rows of recently written ids (rowcache.py)
        self._pages = pgpages.Pages()  # ordered ids for deep pages (pgpages.py)
        self._set_update_sql()

    def _set_update_sql(self) -> None:
        """UPDATEs by seq: ``_update_sql`` checks ``ver`` too ($2), ``_update_by_seq_sql`` doesn't."""
        geom_checked = ", geom = waziup_geom($6)" if self.postgis else ""
        geom = ", geom = waziup_geom($5)" if self.postgis else ""
        self._update_sql = (
            f"UPDATE entities SET exp = $3, raw = $4, doc = $5::jsonb, ver = ver + 1{geom_checked} WHERE seq = $1 AND ver = $2"
        )
        self._update_by_seq_sql = f"UPDATE entities SET exp = $2, raw = $3, doc = $4::jsonb, ver = ver + 1{geom} WHERE seq = $1"

    def closed_error(self) -> Exception:
        return StoreError("the PostgreSQL store is not open")

    pool = WhileOpen.handle  # the pool, under the name the tests use

    async def open(self) -> None:
        with _mapped_errors:
            pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=self.pool_size, reset=keep_session,
                server_settings={"statement_timeout": str(STATEMENT_TIMEOUT_MS)},
            )
            try:
                async with pool.acquire() as conn:
                    await self._create_schema(conn)
            except BaseException:
                pool.terminate()
                raise
        self._handle = pool
        if self.postgis:
            self._columns += ", geom"
            self._values += ", waziup_geom($8)"
            self._set_update_sql()

    async def _create_schema(self, conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
            await conn.execute(_SCHEMA)
            await pgpages.create_schema(conn)
            await conn.execute(outbox.PG_SCHEMA)
            available = await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'")
            if available:
                try:
                    async with conn.transaction():  # a savepoint: lacking the right to create it is no failure
                        await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
                except asyncpg.PostgresError:
                    pass
            self.postgis = bool(await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'postgis'"))
            if self.postgis:
                await conn.execute(_POSTGIS_SCHEMA)

    async def close(self) -> None:
        for task in self._listeners:
            task.cancel()
        for task in self._listeners:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._listeners = []
        if self._handle is not None:
            pool, self._handle = self._handle, None
            try:
                await asyncio.wait_for(pool.close(), timeout=5)
            except (TimeoutError, *CAUGHT):
                pool.terminate()

    def _params(self, tenant: str, entity: Entity) -> list[Any]:
        params = _entity_params(tenant, entity)
        if self.postgis:
            location = entity.get("location")
            params.append(None if not location else orjson.dumps(location["geometry"]).decode())
        return params

    async def find(
        self, tenant: str, selector: Selector, *, limit: int | None = None, offset: int = 0
    ) -> list[Entity]:
        where = _Where(tenant, selector)
        with _mapped_errors:
            try:
                began = time.perf_counter()
                found = await self._find(where, limit, offset)
                if where.hinted is not None and where.hinted not in self._attr_indexes:
                    await self._index_attr(where.hinted, time.perf_counter() - began)
                return found
            except asyncpg.InvalidRegularExpressionError:
                # A pattern Python accepts and PostgreSQL doesn't: run it in Python.
                return await self._find(_Where(tenant, selector, sql_patterns=False), limit, offset)

    async def _index_attr(self, attr: str, seconds: float) -> None:
        """Index an attribute whose hinted query was slow (sqlquery.py), once per process;
        at most MAX_ATTR_INDEXES of them. Another worker creating it too is no failure."""
        if seconds < sqlquery.INDEX_AFTER:
            return
        self._attr_indexes.add(attr)
        existing = await self.pool.fetchval(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'entities' AND indexname LIKE 'entities\\_attr\\_%'"
        )
        if existing >= sqlquery.MAX_ATTR_INDEXES:
            return
        try:
            await self.pool.execute(sqlquery.PG_RAW_INDEX)
            await self.pool.execute(sqlquery.pg_index_sql(attr))
            # Statistics of the indexed expression exist only after an ANALYZE: without them
            # the planner guesses that many rows match and walks the creation-order index
            # for a `LIMIT 20 ... ORDER BY seq` (76 queries/s instead of thousands, measured).
            await self.pool.execute("ANALYZE entities")
        except asyncpg.PostgresError as exc:  # e.g. two workers creating it at once
            log.info("index for q on %r not created: %s", attr, exc)

    async def _find(self, where: _Where, limit: int | None, offset: int) -> list[Entity]:
        if offset >= sqlquery.PAGE_CACHE_OFFSET and _listable(where):
            raws = await self._pages.page(self.pool, where.sql, where.params, where.params[0], where.selector, limit, offset)
            if raws is not None:
                return [orjson.loads(raw) for raw in raws]
        sql = f"SELECT raw FROM entities WHERE {where.sql} ORDER BY seq"
        params = list(where.params)
        if not where.python_patterns:
            sql += f" LIMIT ${len(params) + 1} OFFSET ${len(params) + 2}"
            params += [limit, offset]  # LIMIT NULL is no limit
        rows = await self.pool.fetch(sql, *params)
        found = [orjson.loads(row[0]) for row in rows]
        if where.python_patterns:
            found = [e for e in found if where.keep(e)]
            found = found[offset:] if limit is None else found[offset : offset + limit]
        return found

    async def count(self, tenant: str, selector: Selector) -> int:
        where = _Where(tenant, selector)
        with _mapped_errors:
            try:
                return await self._count(where)
            except asyncpg.InvalidRegularExpressionError:
                return await self._count(_Where(tenant, selector, sql_patterns=False))

    async def _count(self, where: _Where) -> int:
        if _listable(where):
            return await self._pages.count(self.pool, where.sql, where.params, where.params[0], where.selector)
        if where.python_patterns:
            rows = await self.pool.fetch(f"SELECT id, type FROM entities WHERE {where.sql}", *where.params)
            return sum(1 for row in rows if where.keep({"id": row[0], "type": row[1]}))
        return int(await self.pool.fetchval(f"SELECT count(*) FROM entities WHERE {where.sql}", *where.params))

    async def insert(self, tenant: str, entity: Entity) -> None:
        self._rows.evict((tenant, entity["id"]))
        with _mapped_errors:
            await self._insert(self.pool, tenant, entity)

    async def save(self, tenant: str, entity: Entity) -> None:
        self._rows.evict((tenant, entity["id"]))
        with _mapped_errors:
            await self._save_entity(self.pool, tenant, entity)

    async def delete(self, tenant: str, entity: Entity) -> bool:
        self._rows.evict((tenant, entity["id"]))
        with _mapped_errors:
            return await self._delete_entity(self.pool, tenant, entity)

    # ``db``: the pool, or the connection of a transaction (both have ``execute``).

    async def _insert(self, db: Any, tenant: str, entity: Entity) -> None:
        await db.execute(f"INSERT INTO entities ({self._columns}) VALUES ({self._values})", *self._params(tenant, entity))

    async def _save_entity(self, db: Any, tenant: str, entity: Entity) -> None:
        update = "exp = excluded.exp, raw = excluded.raw, doc = excluded.doc, ver = entities.ver + 1"
        if self.postgis:
            update += ", geom = excluded.geom"
        await db.execute(
            f"INSERT INTO entities ({self._columns}) VALUES ({self._values}) "
            f"ON CONFLICT (tenant, id, type, sp) DO UPDATE SET {update}",
            *self._params(tenant, entity),
        )

    async def _delete_entity(self, db: Any, tenant: str, entity: Entity) -> bool:
        status = await db.execute(
            "DELETE FROM entities WHERE tenant = $1 AND id = $2 AND type = $3 AND sp = $4",
            tenant,
            entity["id"],
            entity["type"],
            entity["servicePath"],
        )
        return bool(status != "DELETE 0")

    async def modify(self, tenant: str, selector: Selector, fn: Callable[[list[Entity]], Write]) -> None:
        """A write no other process interferes with is one round trip (``_modify_cached``);
        otherwise the rows read are locked until the write commits (module docstring)."""
        for attempt in range(MODIFY_ATTEMPTS):
            try:
                with _mapped_errors:
                    if _one_id(selector) and await self._modify_cached(tenant, selector, fn):
                        return
                    try:
                        await self._modify(_Where(tenant, selector), tenant, fn)
                    except asyncpg.InvalidRegularExpressionError:
                        await self._modify(_Where(tenant, selector, sql_patterns=False), tenant, fn)
                return
            except AlreadyExists:
                if attempt == MODIFY_ATTEMPTS - 1:
                    raise

    async def _modify(self, where: _Where, tenant: str, fn: Callable[[list[Entity]], Write]) -> None:
        limit = "" if where.python_patterns else " LIMIT 2"
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(f"SELECT raw FROM entities WHERE {where.sql} ORDER BY seq{limit} FOR UPDATE", *where.params)
            found = [e for e in (orjson.loads(row[0]) for row in rows) if where.keep(e)][:2]
            write = fn(found)
            if write is None:
                return
            op, entity = write
            self._rows.evict((tenant, entity["id"]))
            if op == "insert":
                await self._insert(conn, tenant, entity)
            elif op == "save":
                await self._save_entity(conn, tenant, entity)
            else:
                await self._delete_entity(conn, tenant, entity)

    async def _modify_cached(self, tenant: str, selector: Selector, fn: Callable[[list[Entity]], Write]) -> bool:
        """Read-modify-write without a lock: the rows come from the row cache (rowcache.py)
        or one read, and a save is ``UPDATE ... WHERE seq AND ver``, which misses when another
        process wrote the row since; ``fn`` then runs again on the row as it is now. False
        when that keeps happening (the caller takes the locking path)."""
        entity_id = selector.ids[0]  # type: ignore[index]
        key = (tenant, entity_id)
        rows = self._rows.get(key)
        for _ in range(CACHED_ATTEMPTS):
            matching = [] if rows is None else _matching(selector, entity_id, rows)
            fresh = not matching
            if fresh:  # absence is for the database to tell
                rows = await self._read_rows(tenant, entity_id)
                self._rows.put(key, rows)
                matching = _matching(selector, entity_id, rows)
            found = matching[:2]
            try:
                write = fn([orjson.loads(row.raw) for row in found])
            except Exception:
                if fresh:
                    raise
                rows = None  # decided on cached rows: only the database's may fail a request
                continue
            if write is None:
                if fresh:
                    return True
                rows = None  # "nothing to write" may come from a stale row: ask the database
                continue
            op, entity = write
            if op == "save" and len(found) == 1 and entity_key(entity) == (entity_id, found[0].type, found[0].sp):
                row = found[0]
                params = self._params(tenant, entity)
                status = await self.pool.execute(self._update_sql, row.seq, row.ver, *params[4:])
                if status == "UPDATE 1":
                    self._rows.replace(key, Row(row.seq, row.ver + 1, row.type, row.sp, params[5]))
                    return True
                rows = None  # written (or deleted) by another process meanwhile: read again
                continue
            self._rows.evict(key)
            if op == "delete" and len(found) == 1 and entity_key(entity) == (entity_id, found[0].type, found[0].sp):
                status = await self.pool.execute("DELETE FROM entities WHERE seq = $1 AND ver = $2", found[0].seq, found[0].ver)
                if status == "DELETE 1":
                    return True
                rows = None
                continue
            if op == "insert":
                await self._insert(self.pool, tenant, entity)
            elif op == "save":
                await self._save_entity(self.pool, tenant, entity)
            else:
                await self._delete_entity(self.pool, tenant, entity)
            return True
        self._rows.evict(key)
        return False

    async def _read_rows(self, tenant: str, entity_id: str) -> tuple[Row, ...]:
        records = await self.pool.fetch(
            "SELECT seq, ver, type, sp, raw FROM entities WHERE tenant = $1 AND id = $2 ORDER BY seq", tenant, entity_id
        )
        return tuple(Row(*record) for record in records)

    async def modify_many(self, tenant: str, steps: Sequence[tuple[Selector, Callable[[list[Entity]], Write]]]) -> None:
        """One transaction for the lot: one locking read of every row the steps name, the
        steps run in Python, then at most one DELETE, one batch of UPDATEs and one of INSERTs."""
        if not all(_by_ids(selector) for selector, _ in steps):
            await super().modify_many(tenant, steps)
            return
        for attempt in range(MODIFY_ATTEMPTS):
            try:
                with _mapped_errors:
                    failure = await self._modify_many(tenant, steps)
                break
            except AlreadyExists:
                if attempt == MODIFY_ATTEMPTS - 1:
                    raise
        if failure is not None:
            raise failure

    async def _modify_many(
        self, tenant: str, steps: Sequence[tuple[Selector, Callable[[list[Entity]], Write]]]
    ) -> Exception | None:
        """Runs the steps; the exception of the step that raised (the steps before it are
        written, as if each had been its own ``modify``)."""
        ids = sorted({entity_id for selector, _ in steps for entity_id in selector.ids or ()})
        failure: Exception | None = None
        async with self.pool.acquire() as conn, conn.transaction():
            records = await conn.fetch(
                "SELECT seq, id, type, sp, raw FROM entities WHERE tenant = $1 AND id = ANY($2::text[]) ORDER BY seq FOR UPDATE",
                tenant, ids,
            )
            batch = _Batch((record[0], (record[1], record[2], record[3]), record[4]) for record in records)
            for selector, fn in steps:
                found = batch.find(selector)
                try:
                    write = fn([orjson.loads(raw) for raw in found])
                except Exception as exc:  # noqa: BLE001 - handed back to the caller after the commit
                    failure = exc
                    break
                if write is not None:
                    op, entity = write
                    batch.write(op, entity_key(entity), None if op == "delete" else self._params(tenant, entity))
            gone, updates, inserts = batch.statements()
            if gone:
                await conn.execute("DELETE FROM entities WHERE seq = ANY($1::bigint[])", gone)
            if updates:
                await conn.executemany(self._update_by_seq_sql, [[seq, *params[4:]] for seq, params in updates])
            if inserts:
                await conn.executemany(f"INSERT INTO entities ({self._columns}) VALUES ({self._values})", inserts)
        for entity_id in ids:
            self._rows.evict((tenant, entity_id))
        return failure

    async def outbox_append(self, stream: str, rows: Sequence[outbox.Row]) -> None:
        with _mapped_errors:
            await outbox.pg_append(self.pool, stream, rows)

    async def outbox_read(self, stream: str, limit: int) -> list[outbox.Stored]:
        with _mapped_errors:
            return await outbox.pg_read(self.pool, stream, limit)

    async def outbox_remove(self, stream: str, upto: int) -> None:
        with _mapped_errors:
            await outbox.pg_remove(self.pool, stream, upto)

    async def outbox_lease(self, stream: str, holder: str, seconds: float) -> bool:
        with _mapped_errors:
            return await outbox.pg_lease(self.pool, stream, holder, seconds)

    async def purge_expired(self, now: float) -> list[tuple[str, Entity]]:
        with _mapped_errors:
            rows = await self.pool.fetch(
                "DELETE FROM entities WHERE exp IS NOT NULL AND exp < $1 RETURNING seq, tenant, raw", now
            )
        rows = sorted(rows, key=lambda row: row[0])
        if rows:
            self._rows.clear()
        return [(row[1], orjson.loads(row[2])) for row in rows]

    # -- subscriptions and registrations: (tenant, document) by id, in creation order --

    async def load_docs(self, kind: DocKind) -> list[tuple[str, dict[str, Any]]]:
        with _mapped_errors:
            rows = await self.pool.fetch(f"SELECT tenant, raw FROM {DOC_TABLES[kind]} ORDER BY seq")
        return [(row[0], orjson.loads(row[1])) for row in rows]

    async def _notify(self, conn: asyncpg.Connection, kind: DocKind, tenant: str, doc_id: str) -> None:
        payload = orjson.dumps([self.origin, kind, tenant, doc_id]).decode()
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)

    async def save_doc(self, kind: DocKind, tenant: str, doc: dict[str, Any]) -> None:
        with _mapped_errors:
            async with self.pool.acquire() as conn, conn.transaction():
                await self._write_doc(conn, kind, tenant, doc)

    async def _write_doc(self, conn: asyncpg.Connection, kind: DocKind, tenant: str, doc: dict[str, Any]) -> None:
        raw = orjson.dumps(doc)
        await conn.execute(
            f"INSERT INTO {DOC_TABLES[kind]} (tenant, id, raw, doc) VALUES ($1, $2, $3, $4::jsonb) "
            "ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, raw = excluded.raw, doc = excluded.doc",
            tenant,
            doc["id"],
            raw,
            None if b"\\u0000" in raw else raw.decode(),
        )
        await self._notify(conn, kind, tenant, doc["id"])

    async def delete_doc(self, kind: DocKind, tenant: str, doc_id: str) -> bool:
        with _mapped_errors:
            async with self.pool.acquire() as conn, conn.transaction():
                status = await conn.execute(
                    f"DELETE FROM {DOC_TABLES[kind]} WHERE tenant = $1 AND id = $2", tenant, doc_id
                )
                if status != "DELETE 0":
                    await self._notify(conn, kind, tenant, doc_id)
        return status != "DELETE 0"

    async def get_doc(self, kind: DocKind, tenant: str, doc_id: str) -> dict[str, Any] | None:
        with _mapped_errors:
            raw = await self.pool.fetchval(
                f"SELECT raw FROM {DOC_TABLES[kind]} WHERE tenant = $1 AND id = $2", tenant, doc_id
            )
        return None if raw is None else orjson.loads(raw)

    async def modify_subscription(
        self, tenant: str, sub_id: str, fn: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any] | None:
        with _mapped_errors:
            async with self.pool.acquire() as conn, conn.transaction():
                raw = await conn.fetchval(
                    "SELECT raw FROM subscriptions WHERE tenant = $1 AND id = $2 FOR UPDATE", tenant, sub_id
                )
                if raw is None:
                    return None
                sub = fn(orjson.loads(raw))
                await self._write_doc(conn, "subscription", tenant, sub)
        return sub

    # -- change notifications between processes --

    async def listen(self, callback: ChangeCallback) -> None:
        """Start handing other processes' changes to ``callback``, one at a time, in order."""
        queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        connected = asyncio.Event()
        self._listeners.append(asyncio.create_task(self._listen_loop(queue, connected)))
        self._listeners.append(asyncio.create_task(self._deliver(queue, callback)))
        try:
            await asyncio.wait_for(connected.wait(), timeout=10)
        except TimeoutError:
            log.warning("PostgreSQL LISTEN not established yet: changes of other workers arrive once it is")

    async def _listen_loop(self, queue: asyncio.Queue[tuple[str, str, str]], connected: asyncio.Event) -> None:
        first = True
        while True:
            conn: asyncpg.Connection | None = None
            try:
                lost = asyncio.Event()
                conn = await asyncpg.connect(self.dsn)
                conn.add_termination_listener(lambda _conn: lost.set())

                def on_payload(_conn: object, _pid: int, _channel: str, payload: str) -> None:
                    try:
                        origin, kind, tenant, doc_id = orjson.loads(payload)
                    except (orjson.JSONDecodeError, ValueError, TypeError):
                        return
                    if origin != self.origin:
                        queue.put_nowait((kind, tenant, doc_id))

                await conn.add_listener(CHANNEL, on_payload)
                if not first:  # what changed while nobody listened is unknown
                    queue.put_nowait(("*", "", ""))
                first = False
                connected.set()
                await lost.wait()
                log.warning("PostgreSQL LISTEN connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except CAUGHT as exc:
                log.warning("PostgreSQL LISTEN connection failed (%s); retrying", exc)
            finally:
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(RECONNECT_DELAY)

    async def _deliver(self, queue: asyncio.Queue[tuple[str, str, str]], callback: ChangeCallback) -> None:
        while True:
            kind, tenant, doc_id = await queue.get()
            try:
                result = callback(kind, tenant, doc_id)
                if result is not None:
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad reload must not stop the others
                log.exception("handling the change of %s %s failed", kind, doc_id)
