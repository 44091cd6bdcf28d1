"""The identity manager's SQLite backend: one file (``<data>/idm.db`` by default), zero set-up.

Calls run synchronously on the event loop, as the broker's SQLite store does: the
identity manager's statements answer from the page cache in microseconds, and a
transaction whose statements await nothing that yields cannot interleave with another
request's, so a read-then-write (consuming a code, rotating a refresh token) is atomic
within the process. WAL mode; every transaction commits before the caller goes on.

The file holds password hashes and the private signing keys: it is created readable by
its owner only (0600), as is its directory when the identity manager creates it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from .sqlstore import Connection, Driver, Row, SQLStore
from .store import Conflict, StoreError


class _SQLiteConnection(Connection):
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        try:
            return self.db.execute(sql, tuple(args)).rowcount
        except sqlite3.IntegrityError as exc:
            raise Conflict(str(exc)) from exc
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        try:
            return list(self.db.execute(sql, tuple(args)).fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc


class SQLiteDriver(Driver):
    def __init__(self, path: str) -> None:
        self.path = path
        self.db: sqlite3.Connection | None = None

    async def open(self) -> None:
        if self.path != ":memory:":
            directory = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(directory):
                os.makedirs(directory, mode=0o700, exist_ok=True)
            if not os.path.exists(self.path):
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")

    async def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        if self.db is None:
            raise StoreError("the store is not open")
        db = self.db
        if db.in_transaction:  # nested use in one task: the outer transaction commits
            yield _SQLiteConnection(db)
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            yield _SQLiteConnection(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class SQLiteStore(SQLStore):
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite://`` (in memory)."""

    def __init__(self, url: str) -> None:
        path = url.partition("?")[0][len("sqlite://"):]
        path = path.removeprefix("/")
        super().__init__(SQLiteDriver(path or ":memory:"))
