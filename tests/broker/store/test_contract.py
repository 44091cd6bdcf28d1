"""One behaviour suite for every store backend: memory, SQLite (a file), PostgreSQL.

The memory store is the reference (``Selector.matches`` is the contract's filter); the
others must answer the same. The PostgreSQL cases need the session's throw-away
cluster (conftest.py) and fail when it can't start.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import asyncpg
import pytest

from broker.store import AlreadyExists, DocKind, Selector, Store, StoreError, open_store
from broker.store import postgres as pg_backend
from broker.store import sqlite as sqlite_backend
from broker.store.memory import MemoryStore
from broker.store.postgres import PostgresStore

pytestmark = pytest.mark.anyio



def entity(eid: str, etype: str = "T", sp: str = "/", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": eid,
        "type": etype,
        "servicePath": sp,
        "attrs": {"z": {"type": "Number", "value": 1, "md": {}}, "a": {"type": "Text", "value": "x", "md": {}}},
        "creDate": 1700000000.5,
        "modDate": 1700000000.5,
    }
    doc.update(extra)
    return doc


async def ids(store: Store, tenant: str = "", selector: Selector | None = None, **kw: Any) -> list[str]:
    return [e["id"] for e in await store.find(tenant, selector or Selector(), **kw)]


# -- writes -----------------------------------------------------------------------------


async def test_insert_then_find_returns_the_same_document(store: Store) -> None:
    doc = entity(
        "E1",
        # Key order is rendering order, nested values included; unicode and floats kept.
        attrs={"b": {"type": "X", "value": {"z": 1, "a": [1.5, None, "é€😀"]}, "md": {"m2": {}, "m1": {}}}, "a": {}},
    )
    await store.insert("", doc)
    (found,) = await store.find("", Selector())
    assert found == doc
    assert list(found["attrs"]) == ["b", "a"]
    assert list(found["attrs"]["b"]["value"]) == ["z", "a"]
    assert list(found["attrs"]["b"]["md"]) == ["m2", "m1"]


async def test_document_with_nul_character_round_trips(store: Store) -> None:
    doc = entity("E1", attrs={"a": {"type": "Text", "value": "a\u0000b", "md": {}}})
    await store.insert("", doc)
    assert await store.find("", Selector()) == [doc]


async def test_insert_existing_key_raises_already_exists(store: Store) -> None:
    await store.insert("", entity("E1"))
    with pytest.raises(AlreadyExists):
        await store.insert("", entity("E1", attrs={}))
    assert isinstance(AlreadyExists(), StoreError)
    # Another type or service path is another entity.
    await store.insert("", entity("E1", "U"))
    await store.insert("", entity("E1", sp="/a"))
    assert await store.count("", Selector()) == 3
    assert (await store.find("", Selector(types=("T",)), limit=1))[0]["attrs"]["z"]["value"] == 1


async def test_save_replaces_and_keeps_creation_order(store: Store) -> None:
    for eid in ("A", "B", "C"):
        await store.insert("", entity(eid))
    await store.save("", entity("B", attrs={"new": {"type": "T", "value": 2, "md": {}}}))
    await store.save("", entity("D"))
    found = await store.find("", Selector())
    assert [e["id"] for e in found] == ["A", "B", "C", "D"]
    assert list(found[1]["attrs"]) == ["new"]


async def test_delete(store: Store) -> None:
    await store.insert("", entity("E1"))
    await store.insert("", entity("E2"))
    assert await store.delete("", entity("E1")) is True
    assert await store.delete("", entity("E1")) is False
    assert await store.delete("", entity("E2", "Other")) is False
    assert await ids(store) == ["E2"]


async def test_insert_after_delete_goes_last(store: Store) -> None:
    for eid in ("A", "B"):
        await store.insert("", entity(eid))
    await store.delete("", entity("A"))
    await store.insert("", entity("A"))
    assert await ids(store) == ["B", "A"]


# -- reads ------------------------------------------------------------------------------


async def _fill(store: Store) -> None:
    rows = [
        ("Room1", "Room", "/"),
        ("Room2", "Room", "/a"),
        ("Car1", "Car", "/a/b"),
        ("Room3", "Room", "/ab"),
        ("Car2", "Car", "/a/b/c"),
        ("room4", "SmallRoom", "/b"),
        ("E.1", "T", "/a"),
    ]
    for eid, etype, sp in rows:
        await store.insert("", entity(eid, etype, sp))


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (Selector(), ["Room1", "Room2", "Car1", "Room3", "Car2", "room4", "E.1"]),
        (Selector(ids=("Car2", "Room1", "nope")), ["Room1", "Car2"]),
        (Selector(id_pattern="^Room"), ["Room1", "Room2", "Room3"]),
        (Selector(id_pattern="[0-9]$"), ["Room1", "Room2", "Car1", "Room3", "Car2", "room4", "E.1"]),
        (Selector(id_pattern=r"\d"), ["Room1", "Room2", "Car1", "Room3", "Car2", "room4", "E.1"]),
        (Selector(id_pattern=r"\."), ["E.1"]),
        (Selector(id_pattern="oo"), ["Room1", "Room2", "Room3", "room4"]),
        (Selector(types=("Car", "T")), ["Car1", "Car2", "E.1"]),
        (Selector(type_pattern="Room$"), ["Room1", "Room2", "Room3", "room4"]),
        (Selector(type_pattern="^Room$", id_pattern="[12]"), ["Room1", "Room2"]),
        (Selector(ids=("Room1", "Room2"), types=("Room",), service_paths=(("/a", False),)), ["Room2"]),
        # Service path scopes: exact, subtree (not /ab), several, the root.
        (Selector(service_paths=(("/a", False),)), ["Room2", "E.1"]),
        (Selector(service_paths=(("/a", True),)), ["Room2", "Car1", "Car2", "E.1"]),
        (Selector(service_paths=(("/a/b", True),)), ["Car1", "Car2"]),
        (Selector(service_paths=(("/a/b", False), ("/b", False))), ["Car1", "room4"]),
        (Selector(service_paths=(("/ab", True), ("/b", True))), ["Room3", "room4"]),
        (Selector(service_paths=(("/", False),)), ["Room1"]),
        (Selector(service_paths=(("/x", True), ("/", True))), ["Room1", "Room2", "Car1", "Room3", "Car2", "room4", "E.1"]),
        (Selector(service_paths=(("/nope", True),)), []),
    ],
)
async def test_find_filters(store: Store, selector: Selector, expected: list[str]) -> None:
    await _fill(store)
    assert await ids(store, selector=selector) == expected
    assert await store.count("", selector) == len(expected)


# Patterns PostgreSQL's regexes and RE2 (ngsi/regex.py) read differently, or that only one
# of them accepts: every backend must answer as the memory store does.
PATTERNS = [r"\ARoom", r"\bRoom", r"(?P<x>Room)1", "(?i)room", "(?i:r)oom", "[[:digit:]]", "a{", r"\w\.\d", "Room|Car"]


@pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")
@pytest.mark.parametrize("pattern", PATTERNS)
async def test_patterns_answer_as_python_re(store: Store, pattern: str) -> None:
    await _fill(store)
    reference = MemoryStore()
    await _fill(reference)
    for selector in (Selector(id_pattern=pattern), Selector(type_pattern=pattern)):
        assert await ids(store, selector=selector) == await ids(reference, selector=selector)
        assert await store.count("", selector) == await reference.count("", selector)
        assert await ids(store, selector=selector, limit=1, offset=1) == await ids(reference, selector=selector, limit=1, offset=1)


@pytest.mark.parametrize("pattern", ["(", r"(?=Car)C", r"(a)\1", r"^(a+)(a+)\2$"])
async def test_invalid_pattern_raises_store_error(store: Store, pattern: str) -> None:
    """Lookarounds and backreferences are refused everywhere (RE2: linear time), though
    PostgreSQL could run them."""
    await _fill(store)
    with pytest.raises(StoreError):
        await store.find("", Selector(id_pattern=pattern))


async def test_limit_offset(store: Store) -> None:
    for i in range(10):
        await store.insert("", entity(f"E{i}"))
    assert await ids(store, limit=3) == ["E0", "E1", "E2"]
    assert await ids(store, limit=3, offset=8) == ["E8", "E9"]
    assert await ids(store, offset=7) == ["E7", "E8", "E9"]
    assert await ids(store, limit=0) == []
    assert await ids(store, offset=20) == []
    assert await ids(store, selector=Selector(id_pattern="[13579]"), limit=2, offset=1) == ["E3", "E5"]
    assert await store.count("", Selector()) == 10


async def test_tenants_are_isolated(store: Store) -> None:
    await store.insert("", entity("E1"))
    await store.insert("t1", entity("E1"))  # same key, another tenant
    await store.insert("t1", entity("E2"))
    assert await ids(store, "") == ["E1"]
    assert await ids(store, "t1") == ["E1", "E2"]
    assert await ids(store, "t2") == []
    assert await store.count("t1", Selector()) == 2
    assert await store.delete("t2", entity("E1")) is False
    assert await store.delete("t1", entity("E1")) is True
    assert await ids(store, "") == ["E1"]


async def test_purge_expired(store: Store) -> None:
    await store.insert("", entity("gone", expDate=100.0))
    await store.insert("", entity("stays", expDate=300.0))
    await store.insert("", entity("forever"))
    await store.insert("t1", entity("gone2", expDate=150.0))
    purged = await store.purge_expired(200.0)
    assert sorted((tenant, e["id"]) for tenant, e in purged) == [("", "gone"), ("t1", "gone2")]
    assert purged[0][1] == entity("gone", expDate=100.0) or purged[1][1] == entity("gone", expDate=100.0)
    assert await ids(store) == ["stays", "forever"]
    assert await store.purge_expired(200.0) == []
    # save() moves the expiry with the document.
    await store.save("", entity("stays", expDate=1000.0))
    assert await store.purge_expired(500.0) == []


@pytest.mark.parametrize("kind", ["subscription", "registration"])
async def test_subscriptions_and_registrations(store: Store, kind: DocKind) -> None:
    first = {"id": "f" * 24, "subject": {"entities": [{"idPattern": ".*"}]}, "notification": {"httpCustom": {"json": {"z": 1, "a": 2}}}}
    await store.save_doc(kind, "", first)
    await store.save_doc(kind, "t1", {"id": "b" * 24})
    await store.save_doc(kind, "", {"id": "0" * 24, "x": "a\u0000b"})
    first["status"] = "inactive"
    await store.save_doc(kind, "", first)  # an upsert keeps its place
    loaded = await store.load_docs(kind)
    assert loaded == [("", first), ("t1", {"id": "b" * 24}), ("", {"id": "0" * 24, "x": "a\u0000b"})]
    assert list(loaded[0][1]["notification"]["httpCustom"]["json"]) == ["z", "a"]
    assert await store.get_doc(kind, "t1", "b" * 24) == {"id": "b" * 24}
    assert await store.get_doc(kind, "", "b" * 24) is None  # another tenant's
    assert await store.delete_doc(kind, "", "b" * 24) is False  # another tenant's
    assert await store.delete_doc(kind, "t1", "b" * 24) is True
    assert await store.delete_doc(kind, "t1", "b" * 24) is False
    assert [doc["id"] for _, doc in await store.load_docs(kind)] == ["f" * 24, "0" * 24]


# -- PostgreSQL specifics ---------------------------------------------------------------


async def test_outbox_keeps_order_across_removals_and_never_reuses_a_number(store: Store) -> None:
    """The change feed's outbox (broker/store/outbox.py): rows in commit order, removal up to
    a number, and numbers that keep growing after the last rows are removed (the receiver's
    cursor would skip a reused one)."""
    await store.outbox_append("f", [("", "/", b"1"), ("t1", "/a", b"2")])
    await store.outbox_append("other", [("", "/", b"x")])
    await store.outbox_append("f", [("", "/", b"3")])
    rows = await store.outbox_read("f", 10)
    assert [(t, p, d) for _, t, p, d in rows] == [("", "/", b"1"), ("t1", "/a", b"2"), ("", "/", b"3")]
    seqs = [s for s, *_ in rows]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert [d for *_, d in await store.outbox_read("f", 2)] == [b"1", b"2"]
    await store.outbox_remove("f", seqs[-1])
    assert await store.outbox_read("f", 10) == []
    assert [d for *_, d in await store.outbox_read("other", 10)] == [b"x"]
    await store.outbox_append("f", [("", "/", b"4")])
    (again,) = await store.outbox_read("f", 10)
    assert again[0] > seqs[-1]


async def test_outbox_lease_has_one_holder_until_it_runs_out(store: Store) -> None:
    assert await store.outbox_lease("f", "w1", 30)
    assert not await store.outbox_lease("f", "w2", 30)
    assert await store.outbox_lease("f", "w1", 30)  # renewed
    assert await store.outbox_lease("g", "w2", 30)  # another stream
    assert await store.outbox_lease("f", "w1", -1)  # renewed into the past: expired
    assert await store.outbox_lease("f", "w2", 30)


async def test_postgres_geometry_column(pg_url: str, anyio_backend: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    try:
        assert store.postgis, "the test cluster has PostGIS (scripts/install-postgres.sh installs it)"
        point = {"attr": "loc", "geometry": {"type": "Point", "coordinates": [2.5, 48.8]}}
        await store.insert("", entity("P", location=point))
        await store.insert("", entity("N"))
        # A geometry PostGIS refuses is stored without geom, not refused.
        await store.insert("", entity("B", location={"attr": "loc", "geometry": {"type": "Nope"}}))
        rows = await store.pool.fetch("SELECT id, ST_AsText(geom) AS wkt, ST_SRID(geom) AS srid FROM entities ORDER BY seq")
        assert [(r["id"], r["wkt"], r["srid"]) for r in rows] == [("P", "POINT(2.5 48.8)", 4326), ("N", None, None), ("B", None, None)]
        await store.save("", entity("P", location={"attr": "loc", "geometry": {"type": "Point", "coordinates": [1, 2]}}))
        assert await store.pool.fetchval("SELECT ST_AsText(geom) FROM entities WHERE id = 'P'") == "POINT(1 2)"
        doc = await store.pool.fetchval("SELECT doc->'attrs'->'z'->>'value' FROM entities WHERE id = 'P'")
        assert doc == "1"  # the jsonb copy, for queries pushed down later
    finally:
        await store.close()


async def test_open_store_knows_postgres_urls(pg_url: str, anyio_backend: str) -> None:
    for scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        store = open_store(scheme + pg_url[len("postgresql") :])
        assert isinstance(store, PostgresStore)
        async with store:
            await store.insert("", entity(scheme))
    store = PostgresStore(pg_url + "?pool_size=2&application_name=waziup")
    assert store.pool_size == 2 and "pool_size" not in store.dsn
    async with store:
        assert await ids(store) == ["postgresql", "postgres", "postgresql+asyncpg"]


async def test_postgres_unreachable_is_a_store_error(anyio_backend: str) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(StoreError):
        await PostgresStore(f"postgresql://postgres@127.0.0.1:{port}/x").open()
    with pytest.raises(StoreError):
        await PostgresStore(f"postgresql://postgres@127.0.0.1:{port}/x").find("", Selector())  # not open


# -- driver errors ----------------------------------------------------------------------


def _instances(base: type[BaseException]) -> list[BaseException]:
    """One instance of the class and of each of its subclasses (the ones we can build)."""
    found, todo = [], [base]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        try:
            found.append(cls("boom"))
        except TypeError:
            continue
    return found


@pytest.mark.parametrize(
    ("module", "bases", "already"),
    [
        (sqlite_backend, (sqlite3.Error,), sqlite3.IntegrityError),
        (pg_backend, pg_backend.CAUGHT, asyncpg.UniqueViolationError),
    ],
    ids=["sqlite", "postgresql"],
)
def test_every_caught_driver_error_maps_to_store_error(module: Any, bases: tuple[type[BaseException], ...], already: type) -> None:
    assert asyncpg.PostgresError in pg_backend.CAUGHT and asyncpg.InterfaceError in pg_backend.CAUGHT
    checked = 0
    for base in bases:
        for exc in _instances(base):
            with pytest.raises(StoreError) as caught:
                with module._mapped_errors:
                    raise exc
            assert caught.value.__cause__ is exc
            assert isinstance(caught.value, AlreadyExists) == isinstance(exc, already)
            checked += 1
    assert checked > (20 if module is pg_backend else 5)
