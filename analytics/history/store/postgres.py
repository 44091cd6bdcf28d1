"""The PostgreSQL history store (asyncpg): for deployments that outgrow one file or share
one database between services (hence the ``history_`` prefix of every table).

The tables are the SQLite store's (``base.py``), with what PostgreSQL adds:

* ``history_points`` is range-partitioned by time index, one partition per UTC month,
  created on demand (``CREATE TABLE ... PARTITION OF``, under an advisory lock, in a
  transaction of its own before the ingestion's, so that no ingestion holds the
  partition lock). A query's time bounds prune partitions at execution; ``ORDER BY t``
  reads them in order (ordered Append) and stops at the ``LIMIT``.
* its primary key (series, t, rid) is the btree of every per-series read; a BRIN index
  on ``t`` (a few pages per partition) serves scans by time alone (retention).
* ``history_retention_rules`` holds the tenants' own retention rules (``PUT /v2/retention``);
* no extension is needed (Debian's PostgreSQL 15 without PostGIS works): geo filters
  run in Python on the locations read (``engine.py``).

Writes are one statement per table for a whole notification (``unnest`` of column
arrays), in one transaction; the subscription's cursor row is locked (``FOR UPDATE``)
first, so two deliveries of one subscription, even through two service processes, store
each element once. Upserts of roll-ups and last values go in key order: concurrent
notifications cannot deadlock on them.

The roll-up mark (``base.py``, in ``history_meta``) is guarded by an advisory lock: every
ingestion and delete holds it shared, a roll-up pass exclusive. An ingestion reads the mark
in a statement after it took the lock (the hourly upsert returns it), so the pass either
saw its hourly rows or moved the mark before it looked: its values before the mark reach
``daily`` either way, with no extra round trip for that.

URL: ``postgresql://user:password@host:port/database?pool_size=10``; other query
parameters are asyncpg's (``sslmode``...).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import asyncpg

from ngsi.store_lifecycle import ErrorMapping, WhileOpen, keep_session, open_pool, postgres_dsn

from ..instants import DAY, HOUR, floor, month_bounds, month_name, whole
from ..model import Batch, Ingested, Latest, Partial, Point, Series, SeriesFilter, SeriesKey
from .base import (
    NOTHING_ROLLED, ROLLED, HistoryStore, Level, RetentionRow, StoreError, chunks, edge_days, edge_hours, keep_after,
    plan, series_keys,
)

log = logging.getLogger("waziup.history.store")

CHUNK = 1000  # series per DELETE of a retention pass
STATEMENT_TIMEOUT_MS = 30_000
_LOCK = 0x6869_7374_6F72_79  # "history": schema and partition creation, across processes
_ROLLUP_LOCK = 0x6869_7374_6461_79  # "histday": shared by writers, exclusive for a roll-up pass
_PARTITION_NAME = re.compile(r"history_points_y\d{4}m\d{2}")

CAUGHT: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError, OSError, TimeoutError,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS history_series (
    id bigserial PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL, sp text COLLATE "C" NOT NULL, etype text COLLATE "C" NOT NULL,
    eid text COLLATE "C" NOT NULL, attr text COLLATE "C" NOT NULL, atype text COLLATE "C" NOT NULL,
    UNIQUE (tenant, etype, eid, attr, sp, atype)
);
CREATE INDEX IF NOT EXISTS history_series_eid ON history_series (tenant, eid);
CREATE INDEX IF NOT EXISTS history_series_attr ON history_series (tenant, attr);
CREATE TABLE IF NOT EXISTS history_points (
    series bigint NOT NULL, t bigint NOT NULL, rid bigint NOT NULL, num double precision, txt text,
    PRIMARY KEY (series, t, rid)
) PARTITION BY RANGE (t);
CREATE INDEX IF NOT EXISTS history_points_t ON history_points USING brin (t);
CREATE TABLE IF NOT EXISTS history_hourly (
    series bigint NOT NULL, h bigint NOT NULL, cnt bigint NOT NULL,
    vsum double precision, vmin double precision, vmax double precision,
    PRIMARY KEY (series, h)
);
CREATE TABLE IF NOT EXISTS history_daily (
    series bigint NOT NULL, d bigint NOT NULL, cnt bigint NOT NULL,
    vsum double precision, vmin double precision, vmax double precision,
    PRIMARY KEY (series, d)
);
CREATE TABLE IF NOT EXISTS history_meta (key text COLLATE "C" PRIMARY KEY, value bigint NOT NULL);
CREATE TABLE IF NOT EXISTS history_latest (
    series bigint PRIMARY KEY, t bigint NOT NULL, rid bigint NOT NULL, num double precision, txt text,
    seen bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS history_cursors (
    tenant text COLLATE "C" NOT NULL, subscription text COLLATE "C" NOT NULL, seq bigint NOT NULL,
    PRIMARY KEY (tenant, subscription)
);
CREATE TABLE IF NOT EXISTS history_retention_rules (
    tenant text COLLATE "C" NOT NULL, entity_type text COLLATE "C" NOT NULL, days integer NOT NULL,
    PRIMARY KEY (tenant, entity_type)
);
CREATE SEQUENCE IF NOT EXISTS history_notifications;
"""

_SERIES_COLUMNS = "id, tenant, sp, etype, eid, attr, atype"
_KEY_ARRAYS = "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])"

_ROLLUP_UPSERT = """
INSERT INTO {table} AS o (series, {key}, cnt, vsum, vmin, vmax)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[], $5::float8[], $6::float8[])
ON CONFLICT (series, {key}) DO UPDATE SET
    cnt = o.cnt + excluded.cnt,
    vsum = COALESCE(o.vsum + excluded.vsum, o.vsum, excluded.vsum),
    vmin = LEAST(o.vmin, excluded.vmin),
    vmax = GREATEST(o.vmax, excluded.vmax)
"""
_MARK = f"(SELECT value FROM history_meta WHERE key = '{ROLLED}')"
# the hourly upsert, answering the roll-up mark as it is under the shared lock
_HOURLY_UPSERT = f"WITH up AS ({_ROLLUP_UPSERT.format(table='history_hourly', key='h')}) SELECT {_MARK}"
_DAILY_UPSERT = _ROLLUP_UPSERT.format(table="history_daily", key="d")
_DAY_OF_H = f"h - ((h % {DAY}) + {DAY}) % {DAY}"

_HOURS = Level("history_hourly", "h", HOUR, "history_points", "t",
               "count(*) FILTER (WHERE num IS NOT NULL OR txt IS NOT NULL)",
               "count(*) FILTER (WHERE num IS NOT NULL OR txt IS NOT NULL), sum(num), min(num), max(num)")
_DAYS = Level("history_daily", "d", DAY, "history_hourly", "h", "COALESCE(sum(cnt), 0)",
              "sum(cnt)::bigint, sum(vsum), min(vmin), max(vmax)")

_LATEST_UPSERT = """
INSERT INTO history_latest AS o (series, t, rid, num, txt, seen)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[], $5::text[], $6::bigint[])
ON CONFLICT (series) DO UPDATE SET
    num = CASE WHEN excluded.t >= o.t THEN excluded.num ELSE o.num END,
    txt = CASE WHEN excluded.t >= o.t THEN excluded.txt ELSE o.txt END,
    rid = CASE WHEN excluded.t >= o.t THEN excluded.rid ELSE o.rid END,
    t = GREATEST(o.t, excluded.t),
    seen = GREATEST(o.seen, excluded.seen)
"""


# every driver failure as a StoreError (the one exception a store raises)
_mapped = ErrorMapping(CAUGHT, StoreError, "postgresql: {name}: {exc}")


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as column lists, for ``unnest``."""
    return [[row[i] for row in rows] for i in range(width)] if rows else [[] for _ in range(width)]


def _where(selection: SeriesFilter) -> tuple[str, list[Any]]:
    params: list[Any] = [selection.tenant]
    clauses = ["tenant = $1"]

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    for column, values in (("etype", selection.entity_types), ("eid", selection.entity_ids),
                           ("attr", selection.attrs)):
        if values is not None:
            clauses.append(f"{column} = ANY({param(list(values))}::text[])")
    scopes = [] if ("/", True) in selection.scopes else selection.scopes
    ors = []
    for path, subtree in scopes:
        if subtree:  # '/' sorts right before '0' in the "C" collation: the subtree is an index range
            ors.append(f"(sp = {param(path)} OR (sp >= {param(path + '/')} AND sp < {param(path + '0')}))")
        else:
            ors.append(f"sp = {param(path)}")
    if ors:
        clauses.append("(" + " OR ".join(ors) + ")")
    return " AND ".join(clauses), params


class PostgresStore(WhileOpen[asyncpg.Pool], HistoryStore):
    def __init__(self, url: str) -> None:
        self.dsn, self.pool_size = postgres_dsn(url, pool_size=10, most=1000, error=StoreError)
        self._handle: asyncpg.Pool | None = None  # the pool while open (WhileOpen)
        self._ids: dict[SeriesKey, int] = {}
        self._partitions: set[str] = set()

    pool = WhileOpen.handle

    def closed_error(self) -> Exception:
        return StoreError("the history store is not open")

    async def open(self) -> None:
        with _mapped:
            self._handle = await open_pool(
                self.dsn, self.pool_size, lock=_LOCK, schema=_SCHEMA, reset=keep_session,
                server_settings={"statement_timeout": str(STATEMENT_TIMEOUT_MS), "jit": "off"},
            )
            # every process inserts the mark before it ingests: none reads the table without it
            async with self.pool.acquire() as conn:
                await conn.execute("INSERT INTO history_meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                                   ROLLED, NOTHING_ROLLED)
                rows = await conn.fetch("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                        "WHERE i.inhparent = 'history_points'::regclass")
            self._partitions = {row[0] for row in rows}

    async def close(self) -> None:
        if self._handle is not None:
            with _mapped:
                await self._handle.close()
            self._handle = None

    async def ping(self) -> None:
        with _mapped:
            await self.pool.fetchval("SELECT 1")

    # -- ingestion ----------------------------------------------------------------------------

    async def _ensure_partitions(self, instants: set[int]) -> None:
        missing = {}
        for t in instants:
            name = "history_points_" + month_name(t)
            if name not in self._partitions:
                missing[name] = month_bounds(t)
        if not missing:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            for name, (start, end) in sorted(missing.items()):
                assert _PARTITION_NAME.fullmatch(name)  # built from digits only: safe to write into DDL
                await conn.execute(f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF history_points "
                                   f"FOR VALUES FROM ({int(start)}) TO ({int(end)})")
        self._partitions.update(missing)

    async def ingest(self, batch: Batch) -> Ingested:
        with _mapped:
            await self._ensure_partitions({e.time_index for e in batch.elements if e.samples})
            created: dict[SeriesKey, int] = {}
            async with self.pool.acquire() as conn, conn.transaction():
                cursor = None
                if batch.sequenced:
                    await conn.execute("INSERT INTO history_cursors (tenant, subscription, seq) VALUES ($1, $2, -1) "
                                       "ON CONFLICT DO NOTHING", batch.tenant, batch.subscription)
                    cursor = await conn.fetchval("SELECT seq FROM history_cursors WHERE tenant = $1 AND "
                                                 "subscription = $2 FOR UPDATE", batch.tenant, batch.subscription)
                elements, top = keep_after(batch, cursor)
                ids = await self._series_ids(conn, series_keys(batch.tenant, elements), created)
                number = await conn.fetchval("SELECT nextval('history_notifications') "
                                             "FROM pg_advisory_xact_lock_shared($1)", _ROLLUP_LOCK)
                rows = plan(batch, elements, ids, int(number))
                if rows.points:
                    await conn.execute("INSERT INTO history_points (series, t, rid, num, txt) SELECT * FROM "
                                       "unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[], $5::text[])",
                                       *_columns(rows.points, 5))
                    mark = await conn.fetchval(_HOURLY_UPSERT, *_columns(rows.hourly, 6))
                    daily = rows.daily(int(mark))
                    if daily:
                        await conn.execute(_DAILY_UPSERT, *_columns(daily, 6))
                    await conn.execute(_LATEST_UPSERT, *_columns(rows.latest, 6))
                if top is not None:
                    await conn.execute("UPDATE history_cursors SET seq = GREATEST(seq, $3) WHERE tenant = $1 AND "
                                       "subscription = $2", batch.tenant, batch.subscription, top)
        self._ids.update(created)  # committed: these series exist for every later notification
        return Ingested(len(elements), len(rows.points), len(batch.elements) - len(elements))

    async def _series_ids(self, conn: asyncpg.Connection, keys: set[SeriesKey],
                          created: dict[SeriesKey, int]) -> dict[SeriesKey, int]:
        ids = {key: self._ids[key] for key in keys if key in self._ids}
        missing = sorted(keys - ids.keys())  # in key order: concurrent inserts lock alike
        if missing:
            columns = _columns(missing, 6)
            await conn.execute(f"INSERT INTO history_series (tenant, sp, etype, eid, attr, atype) "
                               f"SELECT * FROM {_KEY_ARRAYS} ON CONFLICT DO NOTHING", *columns)
            rows = await conn.fetch(f"SELECT {_SERIES_COLUMNS} FROM history_series WHERE "
                                    f"(tenant, sp, etype, eid, attr, atype) IN (SELECT * FROM {_KEY_ARRAYS})", *columns)
            for row in rows:
                key = SeriesKey(*row[1:])
                ids[key] = created[key] = row[0]
        return ids

    # -- reads --------------------------------------------------------------------------------

    async def find_series(self, selection: SeriesFilter) -> list[Series]:
        where, params = _where(selection)
        with _mapped:
            rows = await self.pool.fetch(f"SELECT {_SERIES_COLUMNS} FROM history_series WHERE {where}", *params)
        return [Series(*row) for row in rows]

    async def all_series(self) -> list[Series]:
        with _mapped:
            rows = await self.pool.fetch(f"SELECT {_SERIES_COLUMNS} FROM history_series")
        return [Series(*row) for row in rows]

    async def points(self, series: Sequence[int], lo: int, hi: int, *, descending: bool,
                     limit: int) -> dict[int, list[Point]]:
        order = "DESC" if descending else "ASC"
        sql = (f"SELECT s.id, p.t, p.rid, p.num, p.txt FROM unnest($1::bigint[]) AS s(id) CROSS JOIN LATERAL ("
               f"SELECT t, rid, num, txt FROM history_points WHERE series = s.id AND t >= $2 AND t <= $3 "
               f"ORDER BY t {order}, rid {order} LIMIT $4) p")
        with _mapped:
            rows = await self.pool.fetch(sql, list(series), lo, hi, limit)
        found: dict[int, list[Point]] = {s: [] for s in series}
        for row in rows:  # LATERAL keeps each series' rows in its subquery's order
            found[row[0]].append(Point(row[1], row[2], row[3], row[4]))
        return found

    async def more_points(self, series: int, lo: int, hi: int, *, descending: bool, limit: int,
                          after: tuple[int, int]) -> list[Point]:
        order, past = ("DESC", "<") if descending else ("ASC", ">")
        sql = (f"SELECT t, rid, num, txt FROM history_points WHERE series = $1 AND t >= $2 AND t <= $3 "
               f"AND (t, rid) {past} ($4, $5) ORDER BY t {order}, rid {order} LIMIT $6")
        with _mapped:
            rows = await self.pool.fetch(sql, series, lo, hi, after[0], after[1], limit)
        return [Point(*row) for row in rows]

    async def aggregate_raw(self, series: Sequence[int], lo: int, hi: int,
                            step: int) -> list[tuple[int, int, Partial]]:
        sql = ("SELECT series, t - ((t % $4) + $4) % $4 AS slot, "
               "count(*) FILTER (WHERE num IS NOT NULL OR txt IS NOT NULL), sum(num), min(num), max(num) "
               "FROM history_points WHERE series = ANY($1::bigint[]) AND t >= $2 AND t <= $3 GROUP BY series, slot")
        with _mapped:
            rows = await self.pool.fetch(sql, list(series), lo, hi, step)
        return [(row[0], row[1], Partial(row[2], row[3], row[4], row[5])) for row in rows]

    async def aggregate_hourly(self, series: Sequence[int], first: int, end: int) -> list[tuple[int, int, Partial]]:
        sql = ("SELECT series, h, cnt, vsum, vmin, vmax FROM history_hourly "
               "WHERE series = ANY($1::bigint[]) AND h >= $2 AND h < $3")
        with _mapped:
            rows = await self.pool.fetch(sql, list(series), first, end)
        return [(row[0], row[1], Partial(row[2], row[3], row[4], row[5])) for row in rows]

    async def aggregate_daily(self, series: Sequence[int], first: int, end: int) -> list[tuple[int, int, Partial]]:
        sql = (f"SELECT series, d, cnt, vsum, vmin, vmax FROM history_daily WHERE series = ANY($1::bigint[]) "
               f"AND d >= $2 AND d < $3 UNION ALL "
               f"SELECT series, {_DAY_OF_H} AS day, sum(cnt)::bigint, sum(vsum), min(vmin), max(vmax) "
               f"FROM history_hourly WHERE series = ANY($1::bigint[]) AND h >= GREATEST($2, {_MARK}) AND h < $3 "
               f"GROUP BY series, day")
        with _mapped:  # one statement, one snapshot: the mark splits the days as the tables were
            rows = await self.pool.fetch(sql, list(series), first, end)
        return [(row[0], row[1], Partial(row[2], row[3], row[4], row[5])) for row in rows]

    async def latest(self, series: Sequence[int]) -> list[Latest]:
        with _mapped:
            rows = await self.pool.fetch("SELECT series, t, rid, num, txt, seen FROM history_latest "
                                         "WHERE series = ANY($1::bigint[])", list(series))
        return [Latest(*row) for row in rows]

    async def last_in_range(self, series: Sequence[int], lo: int, hi: int) -> dict[int, int]:
        sql = ("SELECT s.id, (SELECT max(t) FROM history_points WHERE series = s.id AND t >= $2 AND t <= $3) "
               "FROM unnest($1::bigint[]) AS s(id)")
        with _mapped:
            rows = await self.pool.fetch(sql, list(series), lo, hi)
        return {row[0]: row[1] for row in rows if row[1] is not None}

    # -- deletion -----------------------------------------------------------------------------

    async def delete(self, series: Sequence[int], lo: int, hi: int) -> int:
        ids = list(series)
        with _mapped:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", _ROLLUP_LOCK)
                # which partly covered hours and days can be summed again: judged before anything goes
                hours = {edge: await _complete(conn, _HOURS, ids, edge) for edge in edge_hours(lo, hi)}
                days = {edge: await _complete(conn, _DAYS, ids, edge) for edge in edge_days(lo, hi)}
                status = await conn.execute("DELETE FROM history_points WHERE series = ANY($1::bigint[]) "
                                            "AND t >= $2 AND t <= $3", ids, lo, hi)
                deleted = int(status.split()[-1])
                await _resum(conn, _HOURS, ids, lo, hi, hours)
                await _resum(conn, _DAYS, ids, lo, hi, days)  # after the hours: a day is summed from them
                stale = await conn.fetch("SELECT series FROM history_latest WHERE series = ANY($1::bigint[]) "
                                         "AND t >= $2 AND t <= $3", ids, lo, hi)
                for (s,) in stale:
                    row = await conn.fetchrow("SELECT t, rid, num, txt FROM history_points WHERE series = $1 "
                                              "ORDER BY t DESC, rid DESC LIMIT 1", s)
                    if row is None:
                        await conn.execute("DELETE FROM history_latest WHERE series = $1", s)
                    else:
                        await conn.execute("UPDATE history_latest SET t = $2, rid = $3, num = $4, txt = $5 "
                                           "WHERE series = $1", s, *row)
        return deleted

    async def purge(self, series: Sequence[int], before: int) -> int:
        deleted = 0
        with _mapped:
            for chunk in chunks(list(series), CHUNK):
                status = await self.pool.execute("DELETE FROM history_points WHERE series = ANY($1::bigint[]) "
                                                 "AND t < $2", list(chunk), before)
                deleted += int(status.split()[-1])
        return deleted

    # -- roll-ups -----------------------------------------------------------------------------

    async def roll_up(self, before: int) -> int:
        before, written = floor(before, DAY), 0
        with _mapped:
            while True:  # a day per transaction: the exclusive lock holds ingestion back that long only
                step = await self._roll_day(before)
                if step is None:
                    return written
                written += step

    async def _roll_day(self, before: int) -> int | None:
        """Sum the first day after the mark that has hourly rows into ``daily`` and move the
        mark past it (or to ``before`` when there is none before it). None: done already."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _ROLLUP_LOCK)
            mark = int(await conn.fetchval(f"SELECT {_MARK}"))
            if mark >= before:
                return None
            # the first hour at or after the mark: one probe of the (series, h) key per series
            first = await conn.fetchval("SELECT min(x.h) FROM history_series s CROSS JOIN LATERAL "
                                        "(SELECT min(h) AS h FROM history_hourly WHERE series = s.id AND h >= $1) x",
                                        mark)
            day = before if first is None else min(before, floor(int(first), DAY))
            written = 0
            if day < before:
                status = await conn.execute(
                    "INSERT INTO history_daily (series, d, cnt, vsum, vmin, vmax) "
                    "SELECT s.id, $1, x.c, x.total, x.low, x.high FROM history_series s CROSS JOIN LATERAL "
                    "(SELECT sum(cnt)::bigint AS c, sum(vsum) AS total, min(vmin) AS low, max(vmax) AS high "
                    "FROM history_hourly WHERE series = s.id AND h >= $1 AND h < $2) x WHERE x.c IS NOT NULL "
                    "ON CONFLICT (series, d) DO UPDATE SET cnt = excluded.cnt, vsum = excluded.vsum, "
                    "vmin = excluded.vmin, vmax = excluded.vmax", day, day + DAY)
                written = int(status.split()[-1])
                day += DAY
            await conn.execute("UPDATE history_meta SET value = $2 WHERE key = $1", ROLLED, day)
            return written

    async def purge_hourly(self, series: Sequence[int], before: int) -> int:
        deleted = 0
        with _mapped:
            for chunk in chunks(list(series), CHUNK):
                status = await self.pool.execute(f"DELETE FROM history_hourly WHERE series = ANY($1::bigint[]) "
                                                 f"AND h < LEAST($2, {_MARK})", list(chunk), before)
                deleted += int(status.split()[-1])
        return deleted

    # -- tenants' retention rules ---------------------------------------------------------------

    async def retention_rules(self, tenant: str | None = None) -> list[RetentionRow]:
        where, params = ("WHERE tenant = $1", [tenant]) if tenant is not None else ("", [])
        with _mapped:
            rows = await self.pool.fetch(f"SELECT tenant, entity_type, days FROM history_retention_rules {where} "
                                         "ORDER BY tenant, entity_type", *params)
        return [(row[0], row[1], int(row[2])) for row in rows]

    async def replace_retention_rules(self, tenant: str, rules: Sequence[tuple[str, int]]) -> None:
        with _mapped:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute("DELETE FROM history_retention_rules WHERE tenant = $1", tenant)
                if rules:
                    await conn.execute("INSERT INTO history_retention_rules (tenant, entity_type, days) "
                                       "SELECT $1, * FROM unnest($2::text[], $3::integer[])", tenant,
                                       [t for t, _ in rules], [d for _, d in rules])


async def _complete(conn: asyncpg.Connection, level: Level, ids: list[int], edge: int) -> list[int]:
    """The series whose roll-up of the slot ``edge`` still sums all its source rows (none
    of these went to retention): only those can be summed again after a partial delete."""
    rows = await conn.fetch(f"SELECT r.series FROM {level.table} r WHERE r.series = ANY($1::bigint[]) "
                            f"AND r.{level.key} = $2 AND r.cnt = (SELECT {level.count} FROM {level.source} "
                            f"WHERE series = r.series AND {level.time} >= $2 AND {level.time} < $3)",
                            ids, edge, edge + level.step)
    return [row[0] for row in rows]


async def _resum(conn: asyncpg.Connection, level: Level, ids: list[int], lo: int, hi: int,
                 complete: dict[int, list[int]]) -> None:
    """After a delete of [lo, hi]: the roll-ups of the slots it covers whole dropped, those
    of its partly covered slots summed again from their source where ``complete``."""
    first, end = whole(lo, hi, level.step)
    if first < end:
        await conn.execute(f"DELETE FROM {level.table} WHERE series = ANY($1::bigint[]) AND {level.key} >= $2 "
                           f"AND {level.key} < $3", ids, first, end)
    for edge, kept in complete.items():
        if not kept:
            continue
        await conn.execute(f"DELETE FROM {level.table} WHERE series = ANY($1::bigint[]) AND {level.key} = $2",
                           kept, edge)
        await conn.execute(f"INSERT INTO {level.table} (series, {level.key}, cnt, vsum, vmin, vmax) "
                           f"SELECT series, $2, {level.sums} FROM {level.source} WHERE series = ANY($1::bigint[]) "
                           f"AND {level.time} >= $2 AND {level.time} < $3 GROUP BY series", kept, edge, edge + level.step)
