"""Deep pages (offset >= sqlquery.PAGE_CACHE_OFFSET), which the SQL stores read by id from a
list of ordered ids instead of walking OFFSET rows: every page must equal the memory
store's answer after inserts and deletes, made by this process or, on PostgreSQL, another."""

from __future__ import annotations


import pytest

from broker.store import Selector, Store
from broker.store.postgres import PostgresStore
from broker.store.sqlquery import PAGE_CACHE_OFFSET

from .test_contract import entity, ids

pytestmark = pytest.mark.anyio

N = PAGE_CACHE_OFFSET + 60


async def fill(store: Store, n: int = N) -> None:
    await store.modify_many("", [
        (Selector(ids=(f"E{i:04}",)), lambda found, i=i: ("insert", entity(f"E{i:04}", "T" if i % 3 else "U")))
        for i in range(n)
    ])


async def test_deep_pages_follow_inserts_deletes_and_types(store: Store) -> None:
    await fill(store)
    expected = [f"E{i:04}" for i in range(N)]
    offset = PAGE_CACHE_OFFSET + 5
    assert await ids(store, limit=10, offset=offset) == expected[offset : offset + 10]
    assert await store.count("", Selector()) == N
    await store.delete("", entity(expected[3], "U"))  # before the page: everything shifts
    expected.pop(3)
    assert await ids(store, limit=10, offset=offset) == expected[offset : offset + 10]
    await store.insert("", entity("Z"))
    expected.append("Z")
    assert await ids(store, offset=N - 3) == expected[N - 3 :]
    assert await store.count("", Selector()) == len(expected)
    # An update changes no page.
    await store.modify("", Selector(ids=(expected[offset],)), lambda found: ("save", found[0]))
    assert await ids(store, limit=10, offset=offset) == expected[offset : offset + 10]
    typed = [eid for eid in expected if eid == "Z" or int(eid[1:]) % 3]
    got = await ids(store, selector=Selector(types=("T",)), limit=7, offset=PAGE_CACHE_OFFSET - 10)
    assert got == typed[PAGE_CACHE_OFFSET - 10 : PAGE_CACHE_OFFSET - 3]
    assert await ids(store, offset=10_000) == []
    assert await ids(store, tenant="other", offset=PAGE_CACHE_OFFSET) == []


async def test_postgres_pages_see_what_another_process_inserted_and_deleted(two: tuple[PostgresStore, PostgresStore]) -> None:
    a, b = two
    await fill(a)
    expected = [f"E{i:04}" for i in range(N)]
    offset = PAGE_CACHE_OFFSET
    assert await ids(a, limit=5, offset=offset) == expected[offset : offset + 5]  # a lists the ids
    await b.delete("", entity(expected[0], "U"))
    expected.pop(0)
    assert await ids(a, limit=5, offset=offset) == expected[offset : offset + 5]
    await b.insert("", entity("Z"))
    expected.append("Z")
    assert await ids(a, offset=len(expected) - 2) == expected[-2:]
    assert await a.count("", Selector()) == len(expected)
    await b.insert("", entity("Y"))
    assert await a.count("", Selector()) == len(expected) + 1
    await b.insert("other", entity("X"))  # another tenant's change leaves this list valid
    statements: list[str] = []
    for con in {holder._con for holder in a.pool._holders if holder._con is not None}:
        con.add_query_logger(lambda record: statements.append(record.query))
    assert await ids(a, limit=5, offset=offset) == expected[offset : offset + 5]
    assert len(statements) == 1 and "OFFSET" not in statements[0] and "seq = ANY" in statements[0], statements
