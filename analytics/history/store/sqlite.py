"""The SQLite history store: one file under the data directory, the default.

Durability: WAL, and ``synchronous=NORMAL``: a committed notification is in the
operating system's hands when the service answers, so it survives ``kill -9`` of the
service (a power cut may lose the last transactions; ``?synchronous=FULL`` in the URL
closes that too).

Threads: SQLite's C code runs without the GIL, so the work is done off the event loop:
one writer thread owns the only writing connection (SQLite has one writer at a time
anyway, and this makes every ingestion's read-check-write of the cursor atomic), and
reader threads each own a connection that sees the last committed state (WAL readers do
not block the writer, nor it them). The event loop only awaits.

Group commit: notifications that arrive while the writer is busy wait in ``_pending`` and
are written together, one savepoint each, in one transaction: one commit (and one share of
the WAL's checkpoints) for many notifications. Each is answered once that transaction
committed; one that fails rolls back to its savepoint only.

Schema and indexes: ``points``, ``hourly`` and ``daily`` are ``WITHOUT ROWID`` tables
clustered on their keys ((series, t, rid), (series, h), (series, d)), so an attribute's
values in a time range are one contiguous range of one B-tree.

The roll-up mark (``base.py``) is read in every write transaction, not kept in memory: the
writer holds SQLite's write lock then, so no pass (of this process or another on the same
file) moves it before the ingestion commits.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import parse_qs

from ..instants import DAY, HOUR, floor, whole
from ..model import Batch, Ingested, Latest, Partial, Point, Series, SeriesFilter, SeriesKey
from .base import (
    NOTHING_ROLLED, ROLLED, HistoryStore, Level, RetentionRow, StoreError, chunks, edge_days, edge_hours, keep_after,
    plan, series_keys,
)

T = TypeVar("T")
READERS = 2  # reader threads (connections); the machine has two cores
CHUNK = 500  # series ids per statement (SQLite's variable limit is far above)
CACHE_KIB = 64 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL, sp TEXT NOT NULL, etype TEXT NOT NULL, eid TEXT NOT NULL,
    attr TEXT NOT NULL, atype TEXT NOT NULL,
    UNIQUE (tenant, etype, eid, attr, sp, atype)
);
CREATE INDEX IF NOT EXISTS series_eid ON series (tenant, eid);
CREATE INDEX IF NOT EXISTS series_attr ON series (tenant, attr);
CREATE TABLE IF NOT EXISTS points (
    series INTEGER NOT NULL, t INTEGER NOT NULL, rid INTEGER NOT NULL, num REAL, txt TEXT,
    PRIMARY KEY (series, t, rid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hourly (
    series INTEGER NOT NULL, h INTEGER NOT NULL, cnt INTEGER NOT NULL, vsum REAL, vmin REAL, vmax REAL,
    PRIMARY KEY (series, h)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS daily (
    series INTEGER NOT NULL, d INTEGER NOT NULL, cnt INTEGER NOT NULL, vsum REAL, vmin REAL, vmax REAL,
    PRIMARY KEY (series, d)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest (
    series INTEGER PRIMARY KEY, t INTEGER NOT NULL, rid INTEGER NOT NULL, num REAL, txt TEXT, seen INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    tenant TEXT NOT NULL, subscription TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (tenant, subscription)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS retention_rules (
    tenant TEXT NOT NULL, entity_type TEXT NOT NULL, days INTEGER NOT NULL,
    PRIMARY KEY (tenant, entity_type)
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('notifications', 0);
"""

_MARK = f"(SELECT value FROM meta WHERE key = '{ROLLED}')"

_ROLLUP_UPSERT = """
INSERT INTO {table} (series, {key}, cnt, vsum, vmin, vmax) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (series, {key}) DO UPDATE SET
    cnt = cnt + excluded.cnt,
    vsum = COALESCE(vsum + excluded.vsum, vsum, excluded.vsum),
    vmin = COALESCE(min(vmin, excluded.vmin), vmin, excluded.vmin),
    vmax = COALESCE(max(vmax, excluded.vmax), vmax, excluded.vmax)
"""
_HOURLY_UPSERT = _ROLLUP_UPSERT.format(table="hourly", key="h")
_DAILY_UPSERT = _ROLLUP_UPSERT.format(table="daily", key="d")
_DAY_OF_H = f"h - ((h % {DAY}) + {DAY}) % {DAY}"  # SQLite's % keeps the sign: days before 1970 too

_HOURS = Level("hourly", "h", HOUR, "points", "t", "count(COALESCE(num, txt))",
               "count(COALESCE(num, txt)), sum(num), min(num), max(num)")
_DAYS = Level("daily", "d", DAY, "hourly", "h", "COALESCE(sum(cnt), 0)",
              "sum(cnt), sum(vsum), min(vmin), max(vmax)")

# SET expressions read the row as it was: t is compared before it changes.
_LATEST_UPSERT = """
INSERT INTO latest (series, t, rid, num, txt, seen) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (series) DO UPDATE SET
    num = CASE WHEN excluded.t >= t THEN excluded.num ELSE num END,
    txt = CASE WHEN excluded.t >= t THEN excluded.txt ELSE txt END,
    rid = CASE WHEN excluded.t >= t THEN excluded.rid ELSE rid END,
    t = max(t, excluded.t),
    seen = max(seen, excluded.seen)
"""

_SERIES_COLUMNS = "id, tenant, sp, etype, eid, attr, atype"


def path_from_url(url: str) -> tuple[str, dict[str, list[str]]]:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db``; ``sqlite://`` is refused:
    readers and the writer need one file to share."""
    rest, _, query = url.partition("?")
    path = rest[len("sqlite:///"):] if rest.startswith("sqlite:///") else ""
    if not path:
        raise StoreError(f"the SQLite history store needs a file: {url!r}")
    return path, parse_qs(query)


def _marks(n: int) -> str:
    return ",".join("?" * n)


def series_where(selection: SeriesFilter) -> tuple[str, list[Any]]:
    """The WHERE clause of a selection on ``series`` (shared with tests of the SQL)."""
    clauses, params = ["tenant = ?"], [selection.tenant]
    for column, values in (("etype", selection.entity_types), ("eid", selection.entity_ids),
                           ("attr", selection.attrs)):
        if values is not None:
            clauses.append(f"{column} IN ({_marks(len(values))})")
            params.extend(values)
    scopes = [] if ("/", True) in selection.scopes else selection.scopes
    ors = []
    for path, subtree in scopes:
        if subtree:  # '/' sorts right before '0': [path + '/', path + '0') is the subtree
            ors.append("(sp = ? OR (sp >= ? AND sp < ?))")
            params.extend([path, path + "/", path + "0"])
        else:
            ors.append("sp = ?")
            params.append(path)
    if ors:
        clauses.append("(" + " OR ".join(ors) + ")")
    return " AND ".join(clauses), params


class SQLiteStore(HistoryStore):
    def __init__(self, url: str) -> None:
        self.path, options = path_from_url(url)
        self.synchronous = options.get("synchronous", ["NORMAL"])[0].upper()
        if self.synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"bad synchronous={self.synchronous!r} in the SQLite URL")
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._ids: dict[SeriesKey, int] = {}  # committed series, known to the writer
        self._pending: list[tuple[Batch, asyncio.Future[Ingested]]] = []  # waiting for the writer
        self._draining = False
        self._drains: set[asyncio.Task[None]] = set()

    # -- connections and threads -------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        db.execute("PRAGMA temp_store=MEMORY")
        with self._lock:
            self._connections.append(db)
        return db

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    async def _run(self, pool: ThreadPoolExecutor | None, work: Callable[..., T], *args: Any) -> T:
        if pool is None:
            raise StoreError("the history store is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, work, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc

    async def _write(self, work: Callable[..., T], *args: Any) -> T:
        return await self._run(self._writer, work, *args)

    async def _read(self, work: Callable[..., T], *args: Any) -> T:
        return await self._run(self._readers, work, *args)

    async def open(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {directory}: {exc}") from exc
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="history-writer")
        self._readers = ThreadPoolExecutor(READERS, thread_name_prefix="history-reader")
        await self._write(self._create)

    def _create(self) -> None:
        db = self._db()
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (ROLLED, NOTHING_ROLLED))

    async def close(self) -> None:
        for task in list(self._drains):  # what was acknowledged or is being written, finished first
            await task
        for pool in (self._writer, self._readers):
            if pool is not None:
                pool.shutdown(wait=True)
        self._writer = self._readers = None
        with self._lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    async def ping(self) -> None:
        await self._read(lambda: self._db().execute("SELECT 1").fetchone())

    # -- ingestion ----------------------------------------------------------------------------

    async def ingest(self, batch: Batch) -> Ingested:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Ingested] = loop.create_future()
        self._pending.append((batch, future))
        if not self._draining:
            self._draining = True
            task = loop.create_task(self._drain())  # not the request's: a client leaving stops nothing
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        """Write what waits, together, until nothing does."""
        taken: list[tuple[Batch, asyncio.Future[Ingested]]] = []
        try:
            while self._pending:
                taken, self._pending = self._pending, []
                outcomes = await self._write(self._ingest_together, [b for b, _ in taken])
                for (_, waiter), outcome in zip(taken, outcomes):
                    if isinstance(outcome, BaseException):
                        waiter.set_exception(outcome)
                    else:
                        waiter.set_result(outcome)
        except Exception as exc:  # the transaction itself failed: nothing of theirs is stored
            for _, waiter in [*taken, *self._pending]:
                if not waiter.done():
                    waiter.set_exception(exc)
            self._pending = []
        finally:
            self._draining = False

    def _ingest_together(self, batches: list[Batch]) -> list[Ingested | BaseException]:
        """One transaction, a savepoint per batch; the outcome of each, in order."""
        db = self._db()
        created: dict[SeriesKey, int] = {}
        outcomes: list[Ingested | BaseException] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            mark = _mark(db)
            for batch in batches:
                db.execute("SAVEPOINT batch")
                mine: dict[SeriesKey, int] = {}
                try:
                    outcomes.append(self._ingest_one(db, batch, mine, mark))
                except sqlite3.Error as exc:
                    db.execute("ROLLBACK TO batch")
                    outcomes.append(StoreError(f"sqlite: {exc}"))
                else:
                    created.update(mine)
                db.execute("RELEASE batch")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._ids.update(created)  # only once committed: a rolled back series does not exist
        return outcomes

    def _ingest_one(self, db: sqlite3.Connection, batch: Batch, created: dict[SeriesKey, int],
                    mark: int) -> Ingested:
        """One batch inside the current transaction; ``created`` gets the series it made;
        ``mark`` is the roll-up mark (its values before it also go into ``daily``)."""
        cursor = None
        if batch.sequenced:
            row = db.execute("SELECT seq FROM cursors WHERE tenant = ? AND subscription = ?",
                             (batch.tenant, batch.subscription)).fetchone()
            cursor = None if row is None else int(row[0])
        elements, top = keep_after(batch, cursor)
        ids = self._series_ids(db, series_keys(batch.tenant, elements), created)
        number = db.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'notifications' RETURNING value").fetchone()[0]
        rows = plan(batch, elements, ids, int(number))
        db.executemany("INSERT INTO points (series, t, rid, num, txt) VALUES (?, ?, ?, ?, ?)", rows.points)
        db.executemany(_HOURLY_UPSERT, rows.hourly)
        daily = rows.daily(mark)
        if daily:
            db.executemany(_DAILY_UPSERT, daily)
        db.executemany(_LATEST_UPSERT, rows.latest)
        if top is not None:
            db.execute("INSERT INTO cursors (tenant, subscription, seq) VALUES (?, ?, ?) "
                       "ON CONFLICT (tenant, subscription) DO UPDATE SET seq = max(seq, excluded.seq)",
                       (batch.tenant, batch.subscription, top))
        return Ingested(len(elements), len(rows.points), len(batch.elements) - len(elements))

    def _series_ids(self, db: sqlite3.Connection, keys: set[SeriesKey], created: dict[SeriesKey, int]) -> dict[
            SeriesKey, int]:
        ids = {}
        for key in keys:
            found = self._ids.get(key)
            if found is None:
                row = db.execute(
                    "INSERT INTO series (tenant, sp, etype, eid, attr, atype) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (tenant, etype, eid, attr, sp, atype) DO UPDATE SET tenant = tenant RETURNING id", key).fetchone()
                found = created[key] = int(row[0])
            ids[key] = found
        return ids

    # -- reads --------------------------------------------------------------------------------

    async def find_series(self, selection: SeriesFilter) -> list[Series]:
        where, params = series_where(selection)
        return await self._read(self._series, f"SELECT {_SERIES_COLUMNS} FROM series WHERE {where}", params)

    async def all_series(self) -> list[Series]:
        return await self._read(self._series, f"SELECT {_SERIES_COLUMNS} FROM series", [])

    def _series(self, sql: str, params: list[Any]) -> list[Series]:
        return [Series(*row) for row in self._db().execute(sql, params)]

    async def points(self, series: Sequence[int], lo: int, hi: int, *, descending: bool,
                     limit: int) -> dict[int, list[Point]]:
        return await self._read(self._points, list(series), lo, hi, descending, limit)

    def _points(self, series: list[int], lo: int, hi: int, descending: bool, limit: int) -> dict[int, list[Point]]:
        order = "DESC" if descending else "ASC"
        sql = (f"SELECT t, rid, num, txt FROM points WHERE series = ? AND t >= ? AND t <= ? "
               f"ORDER BY t {order}, rid {order} LIMIT ?")
        db = self._db()
        db.execute("BEGIN")  # one snapshot for every series
        try:
            return {s: [Point(*row) for row in db.execute(sql, (s, lo, hi, limit))] for s in series}
        finally:
            db.execute("COMMIT")

    async def more_points(self, series: int, lo: int, hi: int, *, descending: bool, limit: int,
                          after: tuple[int, int]) -> list[Point]:
        order, past = ("DESC", "<") if descending else ("ASC", ">")
        sql = (f"SELECT t, rid, num, txt FROM points WHERE series = ? AND t >= ? AND t <= ? "
               f"AND (t, rid) {past} (?, ?) ORDER BY t {order}, rid {order} LIMIT ?")
        rows = await self._read(self._all, sql, (series, lo, hi, after[0], after[1], limit))
        return [Point(*row) for row in rows]

    def _all(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return list(self._db().execute(sql, params))

    def _chunked(self, series: Sequence[int], sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """``sql`` (with ``{ids}`` for the series' marks, first) over series in chunks."""
        db = self._db()
        rows: list[tuple[Any, ...]] = []
        for chunk in chunks(list(series), CHUNK):
            rows += db.execute(sql.format(ids=_marks(len(chunk))), [*chunk, *params]).fetchall()
        return rows

    async def aggregate_raw(self, series: Sequence[int], lo: int, hi: int,
                            step: int) -> list[tuple[int, int, Partial]]:
        step = int(step)  # an int, written into the statement: SQLite's % needs no parameter order games
        sql = (f"SELECT series, t - ((t % {step}) + {step}) % {step} AS slot, count(COALESCE(num, txt)), sum(num), "
               "min(num), max(num) FROM points WHERE series IN ({ids}) AND t >= ? AND t <= ? GROUP BY series, slot")
        rows = await self._read(self._chunked, series, sql, (lo, hi))
        return [(row[0], row[1], Partial(row[2], row[3], row[4], row[5])) for row in rows]

    async def aggregate_hourly(self, series: Sequence[int], first: int, end: int) -> list[tuple[int, int, Partial]]:
        sql = "SELECT series, h, cnt, vsum, vmin, vmax FROM hourly WHERE series IN ({ids}) AND h >= ? AND h < ?"
        rows = await self._read(self._chunked, series, sql, (first, end))
        return [(row[0], row[1], Partial(row[2], row[3], row[4], row[5])) for row in rows]

    async def aggregate_daily(self, series: Sequence[int], first: int, end: int) -> list[tuple[int, int, Partial]]:
        return await self._read(self._daily, list(series), first, end)

    def _daily(self, series: list[int], first: int, end: int) -> list[tuple[int, int, Partial]]:
        """Daily rows exist only before the mark; hourly rows are summed from the mark on.
        One statement per chunk of series is one snapshot: a pass moving the mark meanwhile
        cannot make a day counted twice or not at all."""
        db = self._db()
        found = []
        for chunk in chunks(series, CHUNK):
            marks = _marks(len(chunk))
            sql = (f"SELECT series, d, cnt, vsum, vmin, vmax FROM daily WHERE series IN ({marks}) AND d >= ? "
                   f"AND d < ? UNION ALL "
                   f"SELECT series, {_DAY_OF_H} AS day, sum(cnt), sum(vsum), min(vmin), max(vmax) FROM hourly "
                   f"WHERE series IN ({marks}) AND h >= max(?, {_MARK}) AND h < ? GROUP BY series, day")
            for row in db.execute(sql, [*chunk, first, end, *chunk, first, end]):
                found.append((row[0], row[1], Partial(row[2], row[3], row[4], row[5])))
        return found

    async def latest(self, series: Sequence[int]) -> list[Latest]:
        sql = "SELECT series, t, rid, num, txt, seen FROM latest WHERE series IN ({ids})"
        return [Latest(*row) for row in await self._read(self._chunked, series, sql, ())]

    async def last_in_range(self, series: Sequence[int], lo: int, hi: int) -> dict[int, int]:
        return await self._read(self._last_in_range, list(series), lo, hi)

    def _last_in_range(self, series: list[int], lo: int, hi: int) -> dict[int, int]:
        db = self._db()
        found = {}
        for s in series:  # max() over the key's range: one index probe per series
            row = db.execute("SELECT max(t) FROM points WHERE series = ? AND t >= ? AND t <= ?", (s, lo, hi)).fetchone()
            if row[0] is not None:
                found[s] = int(row[0])
        return found

    # -- deletion -----------------------------------------------------------------------------

    async def delete(self, series: Sequence[int], lo: int, hi: int) -> int:
        return await self._write(self._delete, list(series), lo, hi)

    def _delete(self, series: list[int], lo: int, hi: int) -> int:
        db = self._db()
        deleted = 0
        db.execute("BEGIN IMMEDIATE")
        try:
            for chunk in chunks(series, CHUNK):
                ids, marks = list(chunk), _marks(len(chunk))
                # which partly covered hours and days can be summed again: judged before anything goes
                hours = {edge: _complete(db, _HOURS, ids, marks, edge) for edge in edge_hours(lo, hi)}
                days = {edge: _complete(db, _DAYS, ids, marks, edge) for edge in edge_days(lo, hi)}
                deleted += db.execute(f"DELETE FROM points WHERE series IN ({marks}) AND t >= ? AND t <= ?",
                                      [*ids, lo, hi]).rowcount
                _resum(db, _HOURS, ids, marks, lo, hi, hours)
                _resum(db, _DAYS, ids, marks, lo, hi, days)  # after the hours: a day is summed from them
                self._fix_latest(db, ids, marks, lo, hi)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return deleted

    def _fix_latest(self, db: sqlite3.Connection, ids: list[int], marks: str, lo: int, hi: int) -> None:
        stale = [row[0] for row in db.execute(
            f"SELECT series FROM latest WHERE series IN ({marks}) AND t >= ? AND t <= ?", [*ids, lo, hi])]
        for s in stale:
            row = db.execute("SELECT t, rid, num, txt FROM points WHERE series = ? ORDER BY t DESC, rid DESC LIMIT 1",
                             (s,)).fetchone()
            if row is None:
                db.execute("DELETE FROM latest WHERE series = ?", (s,))
            else:
                db.execute("UPDATE latest SET t = ?, rid = ?, num = ?, txt = ? WHERE series = ?", (*row, s))

    async def purge(self, series: Sequence[int], before: int) -> int:
        return await self._write(self._purge, list(series), before)

    def _purge(self, series: list[int], before: int) -> int:
        db = self._db()
        deleted = 0
        for chunk in chunks(series, CHUNK):  # one short transaction per chunk: ingestion goes on between
            deleted += db.execute(f"DELETE FROM points WHERE series IN ({_marks(len(chunk))}) AND t < ?",
                                  [*chunk, before]).rowcount
        return deleted

    # -- roll-ups -----------------------------------------------------------------------------

    async def roll_up(self, before: int) -> int:
        before, written = floor(before, DAY), 0
        while True:  # a day per job: notifications waiting for the writer go in between
            step = await self._write(self._roll_day, before)
            if step is None:
                return written
            written += step

    def _roll_day(self, before: int) -> int | None:
        """Sum the first day after the mark that has hourly rows into ``daily`` and move the
        mark past it (or to ``before`` when there is none before it). None: done already."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            mark = _mark(db)
            if mark >= before:
                db.execute("COMMIT")
                return None
            # the first hour at or after the mark: one probe of the (series, h) key per series
            first = db.execute("SELECT min((SELECT min(h) FROM hourly WHERE series = s.id AND h >= ?)) FROM series s",
                               (mark,)).fetchone()[0]
            day = before if first is None else min(before, floor(int(first), DAY))
            written = 0
            if day < before:
                written = db.execute(
                    "INSERT INTO daily (series, d, cnt, vsum, vmin, vmax) "
                    "SELECT h.series, ?, sum(h.cnt), sum(h.vsum), min(h.vmin), max(h.vmax) "
                    "FROM series s CROSS JOIN hourly h ON h.series = s.id AND h.h >= ? AND h.h < ? WHERE true "
                    "GROUP BY h.series ON CONFLICT (series, d) DO UPDATE SET cnt = excluded.cnt, "
                    "vsum = excluded.vsum, vmin = excluded.vmin, vmax = excluded.vmax",
                    (day, day, day + DAY)).rowcount
                day += DAY
            db.execute("UPDATE meta SET value = ? WHERE key = ?", (day, ROLLED))
            db.execute("COMMIT")
            return written
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    async def purge_hourly(self, series: Sequence[int], before: int) -> int:
        deleted = 0
        for chunk in chunks(list(series), CHUNK):  # a job per chunk: notifications go in between
            deleted += await self._write(self._purge_hourly, list(chunk), before)
        return deleted

    def _purge_hourly(self, chunk: list[int], before: int) -> int:
        return self._db().execute(f"DELETE FROM hourly WHERE series IN ({_marks(len(chunk))}) AND h < min(?, {_MARK})",
                                  [*chunk, before]).rowcount

    # -- tenants' retention rules ---------------------------------------------------------------

    async def retention_rules(self, tenant: str | None = None) -> list[RetentionRow]:
        where, params = ("WHERE tenant = ?", [tenant]) if tenant is not None else ("", [])
        rows = await self._read(self._all, f"SELECT tenant, entity_type, days FROM retention_rules {where} "
                                           "ORDER BY tenant, entity_type", params)
        return [(row[0], row[1], int(row[2])) for row in rows]

    async def replace_retention_rules(self, tenant: str, rules: Sequence[tuple[str, int]]) -> None:
        await self._write(self._replace_rules, tenant, list(rules))

    def _replace_rules(self, tenant: str, rules: list[tuple[str, int]]) -> None:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM retention_rules WHERE tenant = ?", (tenant,))
            db.executemany("INSERT INTO retention_rules (tenant, entity_type, days) VALUES (?, ?, ?)",
                           [(tenant, entity_type, days) for entity_type, days in rules])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


def _mark(db: sqlite3.Connection) -> int:
    """The roll-up mark: days before it are in ``daily``."""
    return int(db.execute("SELECT value FROM meta WHERE key = ?", (ROLLED,)).fetchone()[0])


def _complete(db: sqlite3.Connection, level: Level, ids: list[int], marks: str, edge: int) -> list[int]:
    """The series whose roll-up of the slot ``edge`` still sums all its source rows (none
    of these went to retention): only those can be summed again after a partial delete."""
    sql = (f"SELECT r.series FROM {level.table} r WHERE r.series IN ({marks}) AND r.{level.key} = ? AND r.cnt = "
           f"(SELECT {level.count} FROM {level.source} WHERE series = r.series AND {level.time} >= ? "
           f"AND {level.time} < ?)")
    return [row[0] for row in db.execute(sql, [*ids, edge, edge, edge + level.step])]


def _resum(db: sqlite3.Connection, level: Level, ids: list[int], marks: str, lo: int, hi: int,
           complete: dict[int, list[int]]) -> None:
    """After a delete of [lo, hi]: the roll-ups of the slots it covers whole dropped, those
    of its partly covered slots summed again from their source where ``complete``."""
    first, end = whole(lo, hi, level.step)
    if first < end:
        db.execute(f"DELETE FROM {level.table} WHERE series IN ({marks}) AND {level.key} >= ? AND {level.key} < ?",
                   [*ids, first, end])
    for edge, kept in complete.items():
        if not kept:
            continue
        kept_marks = _marks(len(kept))
        db.execute(f"DELETE FROM {level.table} WHERE series IN ({kept_marks}) AND {level.key} = ?", [*kept, edge])
        db.execute(f"INSERT INTO {level.table} (series, {level.key}, cnt, vsum, vmin, vmax) SELECT series, ?, "
                   f"{level.sums} FROM {level.source} WHERE series IN ({kept_marks}) AND {level.time} >= ? "
                   f"AND {level.time} < ? GROUP BY series", [edge, *kept, edge, edge + level.step])
