"""The WAZIUP API's own store (``store.py``) on both backends: SQLite and PostgreSQL (a real
cluster, ``tests/pg.py``), the same behaviour, and what survives a reopen."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.pg_cluster import Cluster
from orchestrator.waziup_api.store import Store, StoreError, open_store
from tests.pg import session_cluster

_DATABASE = "waziup_api_test"


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[Cluster]:
    yield from session_cluster(_DATABASE)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/api.db"
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    cluster.psql("DROP TABLE IF EXISTS waziup_api_docs", database=_DATABASE)
    return cluster.url_of(_DATABASE)


async def _opened(url: str) -> Store:
    store = open_store(url)
    await store.open()
    return store


def test_documents_by_collection_and_id(url: str) -> None:
    async def scenario() -> None:
        store = await _opened(url)
        try:
            assert await store.insert("gateways", "GW1", {"id": "GW1", "name": "a"})
            assert not await store.insert("gateways", "GW1", {"id": "GW1", "name": "b"})  # taken: 422 upstream
            assert await store.insert("gateways", "GW2", {"id": "GW2"})
            assert await store.insert("projects", "GW1", {"id": "GW1", "kind": "project"})  # another collection
            await store.put("gateways", "GW1", {"id": "GW1", "name": "c"})  # keeps its place
            assert [d["id"] for d in await store.list("gateways")] == ["GW1", "GW2"]
            assert (await store.get("gateways", "GW1")) == {"id": "GW1", "name": "c"}
            assert await store.delete("gateways", "GW1") and not await store.delete("gateways", "GW1")
            assert await store.get("gateways", "GW1") is None
            assert (await store.get("projects", "GW1")) == {"id": "GW1", "kind": "project"}
        finally:
            await store.close()
        again = await _opened(url)  # what was acknowledged is there after a reopen
        try:
            assert [d["id"] for d in await again.list("gateways")] == ["GW2"]
        finally:
            await again.close()

    asyncio.run(scenario())


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10), max_size=4), st.text(min_size=1, max_size=30))
def test_any_json_document_round_trips_sqlite(doc: dict[str, object], doc_id: str) -> None:
    async def scenario() -> None:
        store = await _opened("sqlite:///:memory:")
        try:
            await store.put("notifications", doc_id, doc)
            assert await store.get("notifications", doc_id) == doc
        finally:
            await store.close()

    asyncio.run(scenario())


def test_unknown_store_url_is_refused() -> None:
    with pytest.raises(StoreError, match="sqlite:///FILE or postgresql"):
        open_store("mongodb://localhost/waziup")
