"""Store fixtures: ``store`` (each backend in turn) and ``two`` (two PostgreSQL stores on one
database, as two workers). The PostgreSQL ones (``pg_cluster``, ``pg_url``) live one level
up, in ``tests/broker/conftest.py``, shared with the worker and durability tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.store import Store
from broker.store.memory import MemoryStore
from broker.store.postgres import PostgresStore
from broker.store.sqlite import SQLiteStore

BACKENDS = ["memory", "sqlite", "sqlite-shared", "postgresql"]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str) -> AsyncIterator[Store]:
    if request.param == "memory":
        the_store: Store = MemoryStore()
    elif request.param == "sqlite":
        the_store = SQLiteStore(f"sqlite:///{tmp_path}/store.db")
    elif request.param == "sqlite-shared":  # as -workers N opens it: writer lock, transactions, change log
        the_store = SQLiteStore(f"sqlite:///{tmp_path}/store.db?shared=1")
    else:
        # Asked for only here, so that memory/SQLite runs don't start PostgreSQL.
        the_store = PostgresStore(request.getfixturevalue("pg_url"))
    await the_store.open()
    try:
        yield the_store
    finally:
        await the_store.close()



@pytest.fixture
async def two(pg_url: str, anyio_backend: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    await a.open()
    await b.open()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()



@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
