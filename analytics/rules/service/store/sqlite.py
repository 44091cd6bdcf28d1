"""``sqlite:///FILE``: the default store, one file under the data directory.

WAL and ``synchronous=NORMAL``: a rule written before the API answers survives a kill of
the service. One connection, used by one thread: the event loop only awaits, and writes
are serialised as SQLite serialises them anyway. ``sqlite3`` errors become ``StoreError``
here.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson

from ngsi.store_lifecycle import ErrorMapping

from .base import FiringRecord, RulesStore, StoredRule, StoreError

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rules (
    tenant TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL, enabled INTEGER NOT NULL,
    subscription TEXT, created REAL NOT NULL, modified REAL NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS engine_state (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS firings (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, rule TEXT NOT NULL, t REAL NOT NULL,
    firing TEXT NOT NULL, outcomes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS firings_rule_t ON firings (tenant, rule, t);
"""


_mapped = ErrorMapping((sqlite3.Error,), StoreError, "sqlite: {exc}")


def _dumps(value: Any) -> str:
    """JSON text; the standard library for what orjson refuses (integers past 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, default=str)


def _path(url: str) -> str:
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    if not path:
        raise StoreError(f"no file in {url!r}")
    return path


class SQLiteStore(RulesStore):
    def __init__(self, url: str) -> None:
        self.path = _path(url)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rules-sqlite")
        self._db: sqlite3.Connection | None = None

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            assert self._db is not None, "the store is not open"
            with _mapped:
                return work(self._db)

        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def open(self) -> None:
        def connect() -> None:
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            with _mapped:
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
                self._db = db

        await asyncio.get_running_loop().run_in_executor(self._pool, connect)

    async def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._pool, shut)
        self._pool.shutdown(wait=True)

    async def rules(self) -> list[StoredRule]:
        rows = await self._run(lambda db: db.execute(
            "SELECT tenant, name, doc, enabled, subscription, created, modified FROM rules ORDER BY tenant, created, name"
        ).fetchall())
        return [StoredRule(t, n, orjson.loads(d), bool(e), s, c, m) for t, n, d, e, s, c, m in rows]

    async def put_rule(self, rule: StoredRule) -> None:
        await self._run(lambda db: db.execute(
            "INSERT OR REPLACE INTO rules VALUES (?, ?, ?, ?, ?, ?, ?)",
            (rule.tenant, rule.name, _dumps(rule.doc), int(rule.enabled), rule.subscription,
             rule.created, rule.modified)))

    async def delete_rule(self, tenant: str, name: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("BEGIN")
            db.execute("DELETE FROM rules WHERE tenant = ? AND name = ?", (tenant, name))
            db.execute("DELETE FROM firings WHERE tenant = ? AND rule = ?", (tenant, name))
            db.execute("COMMIT")

        await self._run(work)

    async def load_state(self) -> dict[str, Any] | None:
        row = await self._run(lambda db: db.execute("SELECT doc FROM engine_state WHERE id = 1").fetchone())
        return None if row is None else dict(orjson.loads(row[0]))

    async def save_state(self, state: dict[str, Any]) -> None:
        text = _dumps(state)
        await self._run(lambda db: db.execute("INSERT OR REPLACE INTO engine_state VALUES (1, ?)", (text,)))

    async def add_firings(self, records: list[FiringRecord]) -> None:
        rows = [(r.tenant, r.rule, r.time, _dumps(r.firing), _dumps(r.outcomes))
                for r in records]

        def work(db: sqlite3.Connection) -> None:
            db.execute("BEGIN")
            db.executemany("INSERT INTO firings (tenant, rule, t, firing, outcomes) VALUES (?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")

        await self._run(work)

    async def firings(self, tenant: str, rule: str, since: float | None, until: float | None, limit: int,
                      offset: int) -> tuple[list[FiringRecord], int]:
        where = "tenant = ? AND rule = ? AND t >= ? AND t <= ?"
        args = (tenant, rule, float("-inf") if since is None else since, float("inf") if until is None else until)

        def work(db: sqlite3.Connection) -> tuple[list[Any], int]:
            total = db.execute(f"SELECT count(*) FROM firings WHERE {where}", args).fetchone()[0]
            rows = db.execute(f"SELECT t, firing, outcomes FROM firings WHERE {where} ORDER BY t DESC, id DESC "
                              "LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
            return rows, int(total)

        rows, total = await self._run(work)
        return [FiringRecord(tenant, rule, t, orjson.loads(f), orjson.loads(o)) for t, f, o in rows], total

    async def prune_firings(self, keep: int) -> None:
        await self._run(lambda db: db.execute(
            "DELETE FROM firings WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER "
            "(PARTITION BY tenant, rule ORDER BY t DESC, id DESC) AS n FROM firings) WHERE n > ?)", (keep,)))
