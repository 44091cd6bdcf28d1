"""The API's own store: what has no place in the broker (contract: gateways, projects,
notifications, social messages, and the user profile fields the identity manager has no
column for), as JSON documents by collection and id, chosen by URL as the other services'
stores are:

* ``sqlite:///FILE`` (default ``<data>/waziup-api.db``): WAL with ``synchronous=FULL``, so an
  acknowledged write survives ``kill -9`` and power loss. The documents are small and the
  operations few per request, so one connection in a worker thread is enough and the event
  loop only awaits.
* ``postgresql://...`` (asyncpg; ``waziup run`` uses the broker's database when it runs on
  one): the table ``waziup_api_docs``, each write one committed statement.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Protocol, TypeVar

from ngsi.store_lifecycle import ErrorMapping, WhileOpen, open_pool, postgres_dsn, prepare_sqlite_path

T = TypeVar("T")
COLLECTIONS = ("gateways", "projects", "notifications", "socials", "profiles")


class StoreError(Exception):
    """The store failed (answered 503: nothing was written, or the write is unknown)."""


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def get(self, coll: str, doc_id: str) -> dict[str, Any] | None: ...
    async def list(self, coll: str) -> list[dict[str, Any]]: ...  # oldest first
    async def insert(self, coll: str, doc_id: str, doc: dict[str, Any]) -> bool: ...  # False: the id is taken
    async def put(self, coll: str, doc_id: str, doc: dict[str, Any]) -> None: ...  # keeps its place in list
    async def delete(self, coll: str, doc_id: str) -> bool: ...


def open_store(url: str) -> Store:
    """The store a URL names: ``sqlite:///FILE`` or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
        return PostgresStore(url)
    raise StoreError(f"unsupported store URL {url!r}: sqlite:///FILE or postgresql://...")


class SqliteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="waziup-api-store")

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        prepare_sqlite_path(self.path, mode=0o600)  # it holds users' phone numbers and e-mails' kin
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE IF NOT EXISTS docs (coll TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,"
                   " doc TEXT NOT NULL, PRIMARY KEY (coll, id))")
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


_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS waziup_api_docs (
    coll text NOT NULL, id text NOT NULL, seq bigserial, doc text NOT NULL, PRIMARY KEY (coll, id)
);
"""
_PG_LOCK = 0x7761_7A61_7069  # "wazapi": schema creation, across processes


def _pg_failures() -> tuple[type[BaseException], ...]:
    import asyncpg  # type: ignore[import-untyped]  # only a PostgreSQL store needs the driver

    return (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class PostgresStore(WhileOpen[Any]):
    def __init__(self, url: str) -> None:
        self.dsn, self.pool_size = postgres_dsn(url, pool_size=4, most=100, error=StoreError)
        self._handle: Any = None
        self._mapped = ErrorMapping(_pg_failures(), StoreError, "postgresql: {name}: {exc}")

    pool = WhileOpen.handle

    def closed_error(self) -> Exception:
        return StoreError("the store is not open")

    async def open(self) -> None:
        with self._mapped:
            self._handle = await open_pool(self.dsn, self.pool_size, lock=_PG_LOCK, schema=_PG_SCHEMA,
                                           server_settings={"statement_timeout": "30000"})

    async def close(self) -> None:
        if self._handle is not None:
            with self._mapped:
                await self._handle.close()
            self._handle = None

    async def get(self, coll: str, doc_id: str) -> dict[str, Any] | None:
        with self._mapped:
            text = await self.pool.fetchval("SELECT doc FROM waziup_api_docs WHERE coll = $1 AND id = $2", coll, doc_id)
        return None if text is None else dict(json.loads(text))

    async def list(self, coll: str) -> list[dict[str, Any]]:
        with self._mapped:
            rows = await self.pool.fetch("SELECT doc FROM waziup_api_docs WHERE coll = $1 ORDER BY seq", coll)
        return [json.loads(row[0]) for row in rows]

    async def insert(self, coll: str, doc_id: str, doc: dict[str, Any]) -> bool:
        with self._mapped:
            done = await self.pool.execute("INSERT INTO waziup_api_docs (coll, id, doc) VALUES ($1, $2, $3) "
                                           "ON CONFLICT (coll, id) DO NOTHING", coll, doc_id, json.dumps(doc))
        return bool(done.endswith(" 1"))

    async def put(self, coll: str, doc_id: str, doc: dict[str, Any]) -> None:
        with self._mapped:
            await self.pool.execute("INSERT INTO waziup_api_docs (coll, id, doc) VALUES ($1, $2, $3) "
                                    "ON CONFLICT (coll, id) DO UPDATE SET doc = excluded.doc", coll, doc_id,
                                    json.dumps(doc))

    async def delete(self, coll: str, doc_id: str) -> bool:
        with self._mapped:
            done = await self.pool.execute("DELETE FROM waziup_api_docs WHERE coll = $1 AND id = $2", coll, doc_id)
        return bool(done.endswith(" 1"))
