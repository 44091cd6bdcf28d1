"""``q`` pushdown and the SQLite page cache change no answer.

The memory store ignores hints and scans: it is the reference. For random entities and
random ``q`` expressions, every SQL backend (SQLite and PostgreSQL, with and without the
attribute indexes) must return through ``listing.run`` exactly the entities, order and
count the reference returns, and its hinted ``find`` must keep every match (a superset).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from broker import listing
from broker.entities import EntityService
from ngsi.context import RequestContext
from broker.store import Selector, Store
from broker.store import sqlquery
from broker.store.memory import MemoryStore
from broker.store.postgres import PostgresStore
from broker.store.sqlite import SQLiteStore, _where
from ngsi.errors import BadRequest
from ngsi.query import parse_q

pytestmark = pytest.mark.anyio

ATTRS = ["a", "b", "x-y"]
SCALARS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([2**53 + 1, 2**53, 2**60, -(2**63), 2**64 - 1, 1.5, -0.0, 2.5, 1e308, -1.7e308, -1e-300, 0.1,
                     0.30000000000000004]),
    st.sampled_from(["", "a", "b", "ab", "[", "[x", "5", "abc", "é", "Z", "true"]),
    st.booleans(),
    st.none(),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.lists(st.lists(SCALARS, max_size=2), max_size=2),
    st.dictionaries(st.sampled_from(["x", "a"]), SCALARS, max_size=2),
)
ENTITY = st.tuples(st.sampled_from(["T", "U"]), st.dictionaries(st.sampled_from(ATTRS), VALUES, max_size=3))
COMMON_RHS = st.sampled_from(["0", "1", "-2", "2", "3", "a", "b", "ab", "[x", "1..2", "a..b", "1,3", "a,ab"])
RHS = COMMON_RHS | st.sampled_from(
    ["0", "1", "-2", "2.5", "3", "1e3", "0x1", "-0", "abc", "a", "'5'", "'['", "[x", "5", "true", "false", "null",
     "1,2", "a,b", "'a','[x'", "0..2", "-5..1.5", "a..b", "'['..'[z'", "2..1", "9007199254740993", "1e308",
     "2020-01-01T00:00:00Z", "inf", "nan", "1e999", "null,a", "é", "9007199254740992", "1152921504606846976",
     "0.30000000000000004", "0.1", "-1.7e308", "1e308", "-1e-300..0.1", "18446744073709551615"]
)
OPS = st.sampled_from(["==", "=="]) | st.sampled_from(["==", "!=", ">", ">=", "<", "<=", ":", "~="])
ITEM = st.one_of(
    st.builds(lambda a, op, rhs: f"{a}{op}{rhs}", st.sampled_from(ATTRS), OPS, RHS),
    st.sampled_from(ATTRS),
    st.builds(lambda a: "!" + a, st.sampled_from(ATTRS)),
    st.builds(lambda a, op, rhs: f"{a}.x{op}{rhs}", st.sampled_from(ATTRS), OPS, RHS),
)
Q = st.lists(ITEM, min_size=1, max_size=3).map(";".join)


def make(i: int, etype: str, attrs: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"E{i}",
        "type": etype,
        "servicePath": "/",
        "attrs": {name: {"type": "Any", "value": value, "md": {}} for name, value in attrs.items()},
        "creDate": 1700000000.0 + i,
        "modDate": 1700000000.0 + i,
    }


@pytest.fixture(params=["sqlite", "sqlite-indexed", "postgresql", "postgresql-indexed"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str) -> AsyncIterator[Store]:
    if request.param.startswith("sqlite"):
        the_store: Store = SQLiteStore(f"sqlite:///{tmp_path}/store.db")
    else:
        the_store = PostgresStore(request.getfixturevalue("pg_url"))
    await the_store.open()
    if request.param == "sqlite-indexed":
        assert isinstance(the_store, SQLiteStore)
        for attr in ATTRS:
            the_store._queries.after_scan(the_store.db, attr, 1.0, nullcontext())
    elif request.param == "postgresql-indexed":
        assert isinstance(the_store, PostgresStore)
        for attr in ATTRS:
            await the_store._index_attr(attr, 1.0)
    try:
        yield the_store
    finally:
        await the_store.close()


async def _clear(store: Store) -> None:
    if isinstance(store, SQLiteStore):
        store.db.execute("DELETE FROM entities")
    else:
        assert isinstance(store, PostgresStore)
        await store.pool.execute("DELETE FROM entities")


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(entities=st.lists(ENTITY, max_size=12), queries=st.lists(Q, min_size=1, max_size=6))
async def test_pushed_down_queries_answer_like_a_scan(store: Store, entities: list[Any], queries: list[str]) -> None:
    await _clear(store)
    reference = MemoryStore()
    docs = [make(i, etype, attrs) for i, (etype, attrs) in enumerate(entities)]
    for doc in docs:
        await store.insert("", doc)
        await reference.insert("", doc)
    for text in queries:
        try:
            q = parse_q(text)
        except BadRequest:
            continue
        expected = [d["id"] for d in docs if d["type"] == "T" and q.matches(d)]
        hint = listing.hint_for([q])
        if hint is not None:
            kept = {e["id"] for e in await store.find("", Selector(types=("T",), hint=hint))}
            assert set(expected) <= kept, (text, hint)
        for limit, offset in ((20, 0), (2, 1)):
            query = listing.EntityQuery(selectors=[Selector(types=("T",))], filters=[q], limit=limit, offset=offset)
            got, total = await listing.run(EntityService(store), RequestContext(), query, count=True)
            want, want_total = await listing.run(EntityService(reference), RequestContext(), query, count=True)
            assert [e["id"] for e in got] == [e["id"] for e in want] == expected[offset : offset + limit], text
            assert total == want_total == len(expected)


def test_hints_of_items() -> None:
    def hint(text: str) -> Any:
        h = listing.hint_for([parse_q(text)])
        return None if h is None else (h.attr, h.kind, h.intervals)

    assert hint("group==5") == ("group", "number", ((5.0, 5.0),))
    assert hint("a>3;b==x") == ("b", "string", (("x", "x"),))  # equality preferred
    assert hint("a<3") == ("a", "number", ((None, 3.0),))
    assert hint("a==1..2") == ("a", "number", ((1.0, 2.0),))
    assert hint("a==x,y") == ("a", "string", (("x", "x"), ("y", "y")))
    for unpushable in ("a!=1", "a", "!a", "a~=x", "a==true", "a==null", "a.b==1", "dateCreated>2020-01-01", "a==x,null"):
        assert hint(unpushable) is None, unpushable


async def _room_store(tmp_path: Path, n: int) -> SQLiteStore:
    store = SQLiteStore(f"sqlite:///{tmp_path}/rooms.db")
    await store.open()
    for i in range(n):
        await store.insert("", make(i, "Room", {"group": i % 10}))
    return store


async def test_a_slow_hinted_query_indexes_its_attribute(tmp_path: Path, anyio_backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await _room_store(tmp_path, 50)
    try:
        hinted = Selector(types=("Room",), hint=listing.hint_for([parse_q("group==3")]))
        monkeypatch.setattr(sqlquery, "INDEX_AFTER", 10.0)
        assert len(await store.find("", hinted)) == 5
        assert "group" not in store._queries.indexed
        monkeypatch.setattr(sqlquery, "INDEX_AFTER", 0.0)
        assert len(await store.find("", hinted)) == 5
        assert "group" in store._queries.indexed
        sql, params, indexed = store._queries.find_sql(_where, "", hinted)
        assert indexed
        plan = " ".join(row[3] for row in store.db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        assert "USING INDEX entities_attr_" in plan and "(tenant=? AND <expr>>? AND <expr><?)" in plan, plan
        assert "SCAN" not in plan, plan
        assert [e["id"] for e in await store.find("", hinted)] == [f"E{i}" for i in range(3, 50, 10)]
        # Another process's store learns the index from the database.
        other = SQLiteStore(f"sqlite:///{tmp_path}/rooms.db")
        await other.open()
        assert "group" in other._queries.indexed
        await other.close()
    finally:
        await store.close()


async def test_page_cache_follows_inserts_and_deletes_of_other_processes(tmp_path: Path, anyio_backend: str) -> None:
    store = await _room_store(tmp_path, 300)
    other = sqlite3.connect(f"{tmp_path}/rooms.db", isolation_level=None)  # another process, in effect
    try:
        rooms = Selector(types=("Room",))

        async def page(offset: int) -> list[str]:
            return [e["id"] for e in await store.find("", rooms, limit=5, offset=offset)]

        assert await page(200) == [f"E{i}" for i in range(200, 205)]
        assert await store.count("", rooms) == 300
        other.execute("DELETE FROM entities WHERE id = 'E201'")
        assert await page(200) == ["E200", "E202", "E203", "E204", "E205"]
        assert await store.count("", rooms) == 299
        await store.insert("", make(300, "Room", {}))
        await store.insert("", make(301, "Other", {}))
        assert await page(295) == ["E296", "E297", "E298", "E299", "E300"]
        assert await store.count("", rooms) == 300
        # An update keeps the cached ids (and the page shows the new document).
        doc = make(203, "Room", {"group": 99})
        await store.save("", doc)
        (found,) = [e for e in await store.find("", rooms, limit=5, offset=200) if e["id"] == "E203"]
        assert found["attrs"]["group"]["value"] == 99
        # The largest id deleted and reused by another row: seen through the delete counter.
        other.execute("DELETE FROM entities WHERE id = 'E300'")
        other.execute(
            "INSERT INTO entities (tenant, id, type, sp, doc) VALUES ('', 'E999', 'Room', '/', ?)",
            (b'{"id":"E999","type":"Room","servicePath":"/","attrs":{},"creDate":1,"modDate":1}',),
        )
        assert await page(297) == ["E298", "E299", "E999"]
        assert await store.count("", rooms) == 300
    finally:
        other.close()
        await store.close()


async def test_postgresql_hinted_query_can_use_the_attribute_index(pg_url: str, anyio_backend: str) -> None:
    from broker.store.postgres import _Where

    store = PostgresStore(pg_url)
    await store.open()
    try:
        for i in range(200):
            await store.insert("", make(i, "Room", {"group": i % 10}))
        await store._index_attr("group", 1.0)
        hinted = Selector(types=("Room",), hint=listing.hint_for([parse_q("group==3")]))
        where = _Where("", hinted)
        async with store.pool.acquire() as conn:
            await conn.execute("SET enable_seqscan = off")
            await conn.execute("ANALYZE entities")
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN SELECT raw FROM entities WHERE {where.sql} ORDER BY seq", *where.params))
        assert "entities_attr_" in plan, plan
        assert [e["id"] for e in await store.find("", hinted)] == [f"E{i}" for i in range(3, 200, 10)]
    finally:
        await store.close()
