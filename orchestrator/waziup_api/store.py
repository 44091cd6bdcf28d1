"""The API's own store: what has no place in the broker (contract: gateways, projects,
notifications, social messages, and the user profile fields the identity manager has no
column for), as JSON documents by collection and id.

SQLite in WAL mode with ``synchronous=FULL``: the API answers only after the commit, so an
acknowledged write survives ``kill -9`` and power loss. The documents are small and the
operations few per request, so one connection in a worker thread is enough and the event
loop only awaits.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

T = TypeVar("T")
COLLECTIONS = ("gateways", "projects", "notifications", "socials", "profiles")


class Store:
    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="waziup-api-store")

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE IF NOT EXISTS docs (coll TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,"
                   " doc TEXT NOT NULL, PRIMARY KEY (coll, id))")
        db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL)")
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._pool.shutdown(wait=True)

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    async def get(self, coll: str, doc_id: str) -> dict[str, Any] | None:
        def work() -> dict[str, Any] | None:
            row = self.db.execute("SELECT doc FROM docs WHERE coll=? AND id=?", (coll, doc_id)).fetchone()
            return json.loads(row[0]) if row else None
        return await self._run(work)

    async def list(self, coll: str) -> list[dict[str, Any]]:
        """Every document of ``coll``, oldest first."""
        def work() -> list[dict[str, Any]]:
            rows = self.db.execute("SELECT doc FROM docs WHERE coll=? ORDER BY seq", (coll,)).fetchall()
            return [json.loads(row[0]) for row in rows]
        return await self._run(work)

    async def insert(self, coll: str, doc_id: str, doc: dict[str, Any]) -> bool:
        """Add a document; False (nothing written) when ``doc_id`` is taken."""
        def work() -> bool:
            try:
                self.db.execute("INSERT INTO docs (coll, id, seq, doc) VALUES (?, ?, "
                                "(SELECT COALESCE(MAX(seq), 0) + 1 FROM docs), ?)", (coll, doc_id, json.dumps(doc)))
            except sqlite3.IntegrityError:
                return False
            return True
        return await self._run(work)

    async def put(self, coll: str, doc_id: str, doc: dict[str, Any]) -> None:
        """Write a document, replacing any of that id (keeping its place in ``list``)."""
        def work() -> None:
            self.db.execute("INSERT INTO docs (coll, id, seq, doc) VALUES (?, ?, "
                            "(SELECT COALESCE(MAX(seq), 0) + 1 FROM docs), ?) "
                            "ON CONFLICT (coll, id) DO UPDATE SET doc=excluded.doc", (coll, doc_id, json.dumps(doc)))
        await self._run(work)

    async def delete(self, coll: str, doc_id: str) -> bool:
        def work() -> bool:
            return self.db.execute("DELETE FROM docs WHERE coll=? AND id=?", (coll, doc_id)).rowcount > 0
        return await self._run(work)
