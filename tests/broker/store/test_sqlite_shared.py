"""An SQLite file shared by several processes (``-workers N``; ``?shared=1``).

Two stores on one file are two workers: the change log hands each the subscription and
registration changes of the other at its next ``sync`` (its own are not handed back);
a worker that fell behind the pruned log reloads everything; read-modify-writes from two
real processes at once lose nothing (writer lock + ``BEGIN IMMEDIATE``); a failing
read-modify-write leaves nothing behind and the lock free.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from broker.store import Selector, StoreError
from broker.store import sqlite as sqlite_backend
from broker.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, SQLiteStore, list[tuple[str, str, str]]]]:
    """Two stores on one file; what ``b`` is told of ``a``'s changes."""
    url = f"sqlite:///{tmp_path}/b.db?shared=1"
    a, b = SQLiteStore(url), SQLiteStore(url)
    await a.open()
    await b.open()
    told: list[tuple[str, str, str]] = []
    await a.listen(lambda *change: None)
    await b.listen(lambda *change: told.append(change))
    try:
        yield a, b, told
    finally:
        await a.close()
        await b.close()


async def test_changes_reach_the_other_store_at_its_next_sync(pair: Any) -> None:
    a, b, told = pair
    await b.sync()
    assert told == []
    await a.save_doc("subscription", "t1", {"id": "s1", "n": 1})
    await a.save_doc("registration", "t1", {"id": "r1"})
    assert told == []  # nothing is pushed: the reader catches up when asked
    await b.sync()
    assert told == [("subscription", "t1", "s1"), ("registration", "t1", "r1")]
    assert await b.get_doc("subscription", "t1", "s1") == {"id": "s1", "n": 1}
    await b.save_doc("subscription", "t1", {"id": "s2"})  # b's own change: not handed back to b
    await a.modify_subscription("t1", "s1", lambda doc: dict(doc, n=doc["n"] + 1))
    assert await a.delete_doc("registration", "t1", "r1")
    assert not await a.delete_doc("registration", "t1", "r1")  # nothing deleted, nothing logged
    await b.sync()
    assert told[2:] == [("subscription", "t1", "s1"), ("registration", "t1", "r1")]
    assert (await b.get_doc("subscription", "t1", "s1") or {})["n"] == 2
    await b.sync()
    assert len(told) == 4


async def test_a_store_behind_the_pruned_log_reloads_everything(pair: Any) -> None:
    a, b, told = pair
    for i in range(sqlite_backend.CHANGES_KEPT + 150):
        await a.save_doc("subscription", "", {"id": "s1", "i": i})
    await b.sync()
    assert told == [("*", "", "")]
    await a.delete_doc("subscription", "", "s1")
    await b.sync()
    assert told[-1] == ("subscription", "", "s1")


async def test_failed_modify_rolls_back_and_frees_the_lock(pair: Any) -> None:
    a, b, _ = pair
    await a.insert("", {"id": "E", "type": "T", "servicePath": "/", "attrs": {}, "n": 0})

    def broken(found: list[dict[str, Any]]) -> Any:
        raise ValueError("no")

    with pytest.raises(ValueError):
        await a.modify("", Selector(ids=("E",)), broken)
    # b can write at once: a holds neither the lock nor a transaction.
    await asyncio.wait_for(b.modify("", Selector(ids=("E",)), lambda found: ("save", dict(found[0], n=1))), 5)
    assert (await a.find("", Selector(ids=("E",))))[0]["n"] == 1


def test_shared_needs_a_file() -> None:
    with pytest.raises(StoreError):
        SQLiteStore("sqlite://?shared=1")


def _bump(url: str, times: int, start: Any) -> None:
    async def main() -> None:
        store = SQLiteStore(url)
        await store.open()
        start.wait()

        def step(found: list[dict[str, Any]]) -> Any:
            entity = found[0]
            entity["n"] += 1
            time.sleep(0.0005)  # widens the read-write window a lost update needs
            return ("save", entity)

        for _ in range(times):
            await store.modify("", Selector(ids=("E",)), step)
            await store.modify_subscription("", "s", lambda doc: dict(doc, n=doc["n"] + 1))
        await store.close()

    asyncio.run(main())


async def test_read_modify_writes_of_two_processes_add_up(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/b.db?shared=1"
    store = SQLiteStore(url)
    await store.open()
    await store.insert("", {"id": "E", "type": "T", "servicePath": "/", "attrs": {}, "n": 0})
    await store.save_doc("subscription", "", {"id": "s", "n": 0})
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [context.Process(target=_bump, args=(url, 300, start)) for _ in range(2)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    assert (await store.find("", Selector(ids=("E",))))[0]["n"] == 600
    assert (await store.get_doc("subscription", "", "s") or {})["n"] == 600
    await store.close()
