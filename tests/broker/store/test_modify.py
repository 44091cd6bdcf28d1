"""Read-modify-writes on every backend (``Store.modify``, ``Store.modify_many``), and what
PostgreSQL's lock-free path (a row cache, ``UPDATE ... WHERE seq AND ver``) must keep when
another process writes the same rows: no lost update, no answer decided on a stale row."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from broker.store import Selector, Store
from broker.store.base import Entity, Write
from broker.store.postgres import PostgresStore

from .test_contract import entity, ids

pytestmark = pytest.mark.anyio


def bump(name: str = "n") -> Callable[[list[Entity]], Write]:
    """A step adding 1 to attribute ``name`` of the one entity found (0 when absent)."""

    def step(found: list[Entity]) -> Write:
        (doc,) = found
        attr = doc["attrs"].setdefault(name, {"type": "Number", "value": 0, "md": {}})
        attr["value"] += 1
        return ("save", doc)

    return step


async def value(store: Store, eid: str, name: str = "n", tenant: str = "") -> Any:
    (doc,) = await store.find(tenant, Selector(ids=(eid,)))
    return doc["attrs"][name]["value"]


async def test_modify_many_steps_see_the_writes_before_them(store: Store) -> None:
    await store.insert("", entity("A"))
    await store.insert("", entity("B"))
    by_a = Selector(ids=("A",))
    await store.modify_many("", [(by_a, bump()), (Selector(ids=("B",)), bump()), (by_a, bump())])
    assert await value(store, "A") == 2
    assert await value(store, "B") == 1
    assert await ids(store) == ["A", "B"]  # saves keep the creation order


async def test_modify_many_creates_in_step_order_and_a_recreated_entity_goes_last(store: Store) -> None:
    await store.insert("", entity("A"))
    await store.insert("", entity("B"))

    def create(eid: str) -> Callable[[list[Entity]], Write]:
        return lambda found: None if found else ("insert", entity(eid))

    def drop(found: list[Entity]) -> Write:
        return ("delete", found[0])

    await store.modify_many("", [
        (Selector(ids=("D",)), create("D")),
        (Selector(ids=("A",)), drop),
        (Selector(ids=("C",)), create("C")),
        (Selector(ids=("A",)), create("A")),  # gone a step ago: created anew, at the end
        (Selector(ids=("C",)), bump()),
    ])
    assert await ids(store) == ["B", "D", "C", "A"]
    assert await value(store, "C") == 1


async def test_modify_many_keeps_the_writes_before_a_step_that_raises(store: Store) -> None:
    await store.insert("", entity("A"))
    await store.insert("", entity("B"))
    ran: list[str] = []

    def boom(found: list[Entity]) -> Write:
        raise LookupError("ambiguous")

    def never(found: list[Entity]) -> Write:
        ran.append("never")
        return ("delete", found[0])

    with pytest.raises(LookupError):
        await store.modify_many("", [(Selector(ids=("A",)), bump()), (Selector(ids=("B",)), boom), (Selector(ids=("B",)), never)])
    assert await value(store, "A") == 1
    assert ran == []
    assert await ids(store) == ["A", "B"]


async def test_modify_many_scopes_and_types_select_as_find_does(store: Store) -> None:
    await store.insert("", entity("E", "T", "/a"))
    await store.insert("", entity("E", "U", "/b"))
    seen: list[list[tuple[str, str]]] = []

    def look(found: list[Entity]) -> Write:
        seen.append([(doc["type"], doc["servicePath"]) for doc in found])
        return None

    await store.modify_many("", [
        (Selector(ids=("E",)), look),
        (Selector(ids=("E",), types=("U",)), look),
        (Selector(ids=("E",), service_paths=(("/a", False),)), look),
        (Selector(ids=("E",), service_paths=(("/c", True),)), look),
    ])
    assert seen == [[("T", "/a"), ("U", "/b")], [("U", "/b")], [("T", "/a")], []]


# -- PostgreSQL: two stores on one database, as two workers -------------------------------


async def test_postgres_write_after_another_process_wrote_starts_from_its_row(two: tuple[PostgresStore, PostgresStore]) -> None:
    a, b = two
    await a.insert("", entity("E"))
    await a.modify("", Selector(ids=("E",)), bump())  # a now holds E's row in its cache
    await b.modify("", Selector(ids=("E",)), bump())
    await a.modify("", Selector(ids=("E",)), bump())
    assert await value(a, "E") == 3


async def test_postgres_write_after_another_process_recreated_the_entity(two: tuple[PostgresStore, PostgresStore]) -> None:
    a, b = two
    await a.insert("", entity("E"))
    await a.modify("", Selector(ids=("E",)), bump())
    await b.delete("", entity("E"))
    await b.insert("", entity("E"))  # same key, another row
    await a.modify("", Selector(ids=("E",)), bump())
    assert await value(a, "E") == 1
    await b.delete("", entity("E"))
    seen: list[int] = []
    await a.modify("", Selector(ids=("E",)), lambda found: seen.append(len(found)))  # type: ignore[func-returns-value]
    assert seen[-1] == 0  # gone for a too, though its cache held a row


async def test_postgres_no_decision_on_a_stale_row(two: tuple[PostgresStore, PostgresStore]) -> None:
    """A step that writes nothing, or fails, because of what a cached row lacks runs again on
    the database's row: the answer never rests on another process's old state."""
    a, b = two
    await a.insert("", entity("E"))
    await a.modify("", Selector(ids=("E",)), bump("other"))  # cached in a, without "n"
    await b.modify("", Selector(ids=("E",)), bump("n"))  # b adds "n"

    def only_if_present(found: list[Entity]) -> Write:
        doc = found[0]
        if "n" not in doc["attrs"]:
            return None
        doc["attrs"]["n"]["value"] += 10
        return ("save", doc)

    def fail_if_absent(found: list[Entity]) -> Write:
        if "n" not in found[0]["attrs"]:
            raise KeyError("n")
        return None

    await a.modify("", Selector(ids=("E",)), fail_if_absent)  # would raise on the cached row
    await a.modify("", Selector(ids=("E",)), only_if_present)
    assert await value(a, "E") == 11


async def test_postgres_concurrent_writes_of_two_processes_lose_nothing(two: tuple[PostgresStore, PostgresStore]) -> None:
    a, b = two
    await a.insert("", entity("E"))
    await a.insert("", entity("F"))
    rounds = 40
    await asyncio.gather(
        *(s.modify("", Selector(ids=("E",)), bump()) for _ in range(rounds) for s in (a, b)),
        *(s.modify_many("", [(Selector(ids=("E",)), bump()), (Selector(ids=("F",)), bump())]) for _ in range(rounds // 4) for s in (a, b)),
    )
    assert await value(a, "E") == 2 * rounds + 2 * (rounds // 4)
    assert await value(b, "F") == 2 * (rounds // 4)


async def test_postgres_simple_write_is_one_round_trip_once_the_row_is_known(two: tuple[PostgresStore, PostgresStore]) -> None:
    a, _ = two
    await a.insert("", entity("E"))
    await a.modify("", Selector(ids=("E",)), bump())  # reads E once
    statements: list[str] = []

    def log(record: Any) -> None:
        statements.append(record.query)

    # Every connection of the pool (test instrumentation of asyncpg's pool internals).
    for con in {holder._con for holder in a.pool._holders if holder._con is not None}:
        con.add_query_logger(log)
    statements.clear()
    for _ in range(5):
        await a.modify("", Selector(ids=("E",)), bump())
    assert len(statements) == 5, statements
    assert all(s.startswith("UPDATE entities SET") and "ver = $2" in s for s in statements)
    assert await value(a, "E") == 6
