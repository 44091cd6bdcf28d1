"""A QuantumLeap-like ``POST /v2/notify``: the history bench's baseline (``bench/history.py``).

``python bench/ql_baseline.py PORT DB_URL`` (``sqlite:////abs/file.db`` or ``postgresql://...``).

What QuantumLeap 1.0 does per notification, on the history service's server stack (Starlette
on uvicorn + httptools + uvloop, the same as ``bench/baseline_app.py``) and the same drivers
and durability (SQLite WAL with ``synchronous=NORMAL`` written by one writer thread, or an
asyncpg pool of 10 on the same PostgreSQL): the entities are grouped by type; each type has one
*wide* table (``et<type>``: entity_id, entity_type, time_index, fiware_servicepath, then one
column per attribute, added with ``ALTER TABLE`` when a new attribute appears, and an index on
(entity_id, time_index) as QuantumLeap's Timescale backend makes); every entity is one
``INSERT`` (``executemany``); one transaction, committed before the 200, per notification.

It is a lean QuantumLeap: no metadata table, no geo columns, no original-entity column, no
casting table, the known columns cached in the process (QuantumLeap asks the database, or
Redis), time index in epoch ms from ``TimeInstant`` or ``dateModified`` when given, else the
arrival time. So its figures are an upper bound of what QuantumLeap's storage scheme gives on
this stack, and a ratio against it does not flatter ours.

``GET /stats?type=T&sum=ATTR`` answers ``{"rows": <rows of T>, "sum": <sum of ATTR>}``: the bench
counts what was stored against what was acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import re
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

BASE_COLUMNS = ("entity_id", "entity_type", "time_index", "fiware_servicepath")
SQL_TYPES = {  # NGSI type -> (SQLite, PostgreSQL) column type; anything else is JSON text
    "Number": ("REAL", "double precision"), "Integer": ("INTEGER", "bigint"),
    "Boolean": ("INTEGER", "boolean"), "Text": ("TEXT", "text"),
}
_NAME = re.compile(r"[^a-z0-9_]")


def table_of(entity_type: str) -> str:
    return "et" + _NAME.sub("_", entity_type.lower())


def column_of(attr: str) -> str:
    return "a_" + _NAME.sub("_", attr.lower())


def _ms(text: Any) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        return int(datetime.datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        return None


def _time_index(entity: dict[str, Any], now: int) -> int:
    for name in ("TimeInstant", "dateModified"):
        raw = entity.get(name)
        found = _ms(raw.get("value") if isinstance(raw, dict) else raw)
        if found is not None:
            return found
    return now


def _value(ngsi_type: str, value: Any) -> Any:
    if ngsi_type in ("Number", "Integer"):
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if ngsi_type == "Boolean":
        return value if isinstance(value, bool) else None
    if ngsi_type == "Text":
        return value if isinstance(value, str) else orjson.dumps(value).decode()
    return orjson.dumps(value).decode()


def rows_by_type(data: list[Any], service_path: str, now: int) -> dict[str, tuple[dict[str, str], list[dict[str, Any]]]]:
    """Per entity type: its columns (name -> NGSI type) and one row (column -> value) per entity."""
    groups: dict[str, tuple[dict[str, str], list[dict[str, Any]]]] = {}
    for entity in data:
        columns, rows = groups.setdefault(entity["type"], ({}, []))
        row: dict[str, Any] = {"entity_id": entity["id"], "entity_type": entity["type"],
                               "time_index": _time_index(entity, now), "fiware_servicepath": service_path}
        for name, raw in entity.items():
            if name in ("id", "type"):
                continue
            ngsi_type, value = (raw.get("type", "Text"), raw.get("value")) if isinstance(raw, dict) else ("Text", raw)
            column = column_of(name)
            columns.setdefault(column, ngsi_type)
            row[column] = _value(columns[column], value)
        rows.append(row)
    return groups


class SQLiteSink:
    def __init__(self, path: str) -> None:
        self.path = path
        self.db: sqlite3.Connection | None = None
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="ql-writer")
        self.known: dict[str, set[str]] = {}

    async def run(self, work: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.writer, work, *args)

    def _open(self) -> None:
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")

    def _ensure(self, table: str, columns: dict[str, str]) -> None:
        assert self.db is not None
        known = self.known.get(table)
        if known is None:
            self.db.execute(f"CREATE TABLE IF NOT EXISTS {table} (entity_id TEXT, entity_type TEXT, "
                            "time_index INTEGER, fiware_servicepath TEXT)")
            self.db.execute(f"CREATE INDEX IF NOT EXISTS ix_{table}_eid_and_tx ON {table} (entity_id, time_index)")
            known = self.known[table] = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
        for column, ngsi_type in columns.items():
            if column not in known:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {SQL_TYPES.get(ngsi_type, ('TEXT',))[0]}")
                known.add(column)

    def _insert(self, groups: dict[str, tuple[dict[str, str], list[dict[str, Any]]]]) -> None:
        assert self.db is not None
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for entity_type, (columns, rows) in groups.items():
                table = table_of(entity_type)
                self._ensure(table, columns)
                names = [*BASE_COLUMNS, *columns]
                sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
                self.db.executemany(sql, [[row.get(n) for n in names] for row in rows])  # one INSERT per entity
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _stats(self, entity_type: str, attr: str) -> dict[str, Any]:
        assert self.db is not None
        table, column = table_of(entity_type), column_of(attr)
        try:
            rows, total = self.db.execute(f"SELECT count(*), sum({column}) FROM {table}").fetchone()
        except sqlite3.OperationalError:
            return {"rows": 0, "sum": 0}
        return {"rows": rows, "sum": total or 0}

    async def open(self) -> None:
        await self.run(self._open)

    async def insert(self, groups: dict[str, tuple[dict[str, str], list[dict[str, Any]]]]) -> None:
        await self.run(self._insert, groups)

    async def stats(self, entity_type: str, attr: str) -> dict[str, Any]:
        return await self.run(self._stats, entity_type, attr)

    async def close(self) -> None:
        self.writer.shutdown(wait=True)
        if self.db is not None:
            self.db.close()


class PostgresSink:
    def __init__(self, url: str) -> None:
        self.url = url
        self.pool: Any = None
        self.known: dict[str, set[str]] = {}
        self.ddl = asyncio.Lock()

    async def open(self) -> None:
        import asyncpg

        self.pool = await asyncpg.create_pool(self.url, min_size=1, max_size=10)

    async def _ensure(self, table: str, columns: dict[str, str]) -> None:
        known = self.known.get(table, set())
        if all(c in known for c in columns):
            return
        async with self.ddl, self.pool.acquire() as conn:  # DDL in a transaction of its own
            if table not in self.known:
                await conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (entity_id text, entity_type text, "
                                   "time_index bigint, fiware_servicepath text)")
                await conn.execute(f"CREATE INDEX IF NOT EXISTS ix_{table}_eid_and_tx ON {table} "
                                   "(entity_id, time_index DESC)")
                self.known[table] = set(BASE_COLUMNS)
            for column, ngsi_type in columns.items():
                if column not in self.known[table]:
                    await conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} "
                                       f"{SQL_TYPES.get(ngsi_type, ('', 'text'))[1]}")
                    self.known[table].add(column)

    async def insert(self, groups: dict[str, tuple[dict[str, str], list[dict[str, Any]]]]) -> None:
        for entity_type, (columns, _) in groups.items():
            await self._ensure(table_of(entity_type), columns)
        async with self.pool.acquire() as conn, conn.transaction():
            for entity_type, (columns, rows) in groups.items():
                names = [*BASE_COLUMNS, *columns]
                sql = (f"INSERT INTO {table_of(entity_type)} ({', '.join(names)}) "
                       f"VALUES ({', '.join(f'${i + 1}' for i in range(len(names)))})")
                await conn.executemany(sql, [[row.get(n) for n in names] for row in rows])  # one INSERT per entity

    async def stats(self, entity_type: str, attr: str) -> dict[str, Any]:
        table, column = table_of(entity_type), column_of(attr)
        if table not in self.known:
            return {"rows": 0, "sum": 0}
        row = await self.pool.fetchrow(f"SELECT count(*), sum({column}) FROM {table}")
        return {"rows": row[0], "sum": row[1] or 0}

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()


def create_app(url: str) -> Starlette:
    sink: SQLiteSink | PostgresSink = (SQLiteSink(url[len("sqlite:///"):]) if url.startswith("sqlite:///")
                                       else PostgresSink(url))

    async def notify(request: Request) -> Response:
        try:
            document = orjson.loads(await request.body())
            data = document["data"]
            groups = rows_by_type(data, request.headers.get("fiware-servicepath", "/"), int(time.time() * 1000))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            return JSONResponse({"error": "Bad Request", "description": str(exc)}, 400)
        await sink.insert(groups)
        return PlainTextResponse("Notification successfully processed")

    async def stats(request: Request) -> Response:
        return JSONResponse(await sink.stats(request.query_params["type"], request.query_params.get("sum", "a0")))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sink.open()
        try:
            yield
        finally:
            await sink.close()

    return Starlette(routes=[Route("/v2/notify", notify, methods=["POST"]), Route("/stats", stats)], lifespan=lifespan)


if __name__ == "__main__":
    uvicorn.run(
        create_app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), http="httptools", loop="uvloop",
        log_level="warning", access_log=False, server_header=False, lifespan="on",
    )
