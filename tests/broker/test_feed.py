"""The change feed (broker/feed.py): what a write puts in the outbox, how rows are batched,
and delivery through a real HTTP receiver with failures, restarts and a second worker."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.changes import Change
from broker.feed import BATCH, Feed, batches, feed_entity, notification_of
from broker.store.memory import MemoryStore
from ngsi.context import RequestContext
from tests.loopback_receiver import LoopbackReceiver

NOW = 1_700_000_000.5


def _entity(attrs: dict[str, Any], type_: str = "Room", path: str = "/") -> dict[str, Any]:
    return {
        "id": "Room1", "type": type_, "servicePath": path, "creDate": NOW - 10, "modDate": NOW,
        "attrs": {n: {"type": "Number", "value": v, "md": {}, "creDate": NOW - 10, "modDate": NOW} for n, v in attrs.items()},
    }


def _change(touched: tuple[str, ...], tenant: str = "", action: str = "update", **attrs: Any) -> Change:
    entity = _entity(attrs or {"temperature": 21, "humidity": 40})
    return Change(RequestContext(tenant=tenant), action, None if action == "create" else entity, entity, touched)


def test_feed_entity_holds_the_written_attributes_with_their_date_modified() -> None:
    row = json.loads(feed_entity(_change(("temperature",))) or b"null")
    assert set(row) == {"id", "type", "temperature"}  # not humidity: the request did not write it
    assert row["temperature"]["value"] == 21
    assert row["temperature"]["metadata"]["dateModified"] == {"type": "DateTime", "value": "2023-11-14T22:13:20.500Z"}


def test_feed_entity_leaves_out_deletions_and_writes_of_nothing() -> None:
    assert feed_entity(_change(("temperature",), action="delete")) is None
    assert feed_entity(_change(("gone",))) is None  # a deleted attribute: not in the entity any more


OutboxRows = st.lists(
    st.tuples(st.sampled_from(["", "t1"]), st.sampled_from(["/", "/a"]), st.binary(min_size=1, max_size=50)),
    max_size=60,
)


@given(OutboxRows)
def test_batches_keep_order_and_group_one_tenant_and_path(raw: list[tuple[str, str, bytes]]) -> None:
    rows = [(seq, tenant, path, payload) for seq, (tenant, path, payload) in enumerate(raw, start=1)]
    out = batches(rows)
    assert [row for batch in out for row in batch] == rows
    for batch in out:
        assert len({row[1:3] for row in batch}) == 1 and 0 < len(batch) <= BATCH


def test_notification_carries_one_sequence_per_entity_and_the_tenant() -> None:
    headers, body = notification_of("feed-1", [(7, "t1", "/a", b'{"id":"E1"}'), (9, "t1", "/a", b'{"id":"E2"}')])
    assert dict(headers)["Waziup-Sequence"] == "7,9"
    assert dict(headers)["Fiware-Service"] == "t1" and dict(headers)["Fiware-Servicepath"] == "/a"
    assert json.loads(body) == {"subscriptionId": "feed-1", "data": [{"id": "E1"}, {"id": "E2"}]}
    headers, _ = notification_of("feed-1", [(1, "", "/", b"{}")])
    assert "Fiware-Service" not in dict(headers)


def sequences(receiver: LoopbackReceiver) -> list[int]:
    return [int(s) for _, headers, _ in receiver.acknowledged for s in headers["waziup-sequence"].split(",")]


def test_delivery_retries_failures_in_order_and_removes_only_what_was_acknowledged() -> None:
    async def scenario() -> tuple[LoopbackReceiver, list[Any]]:
        store = MemoryStore()
        await store.open()
        async with LoopbackReceiver(statuses=[500, 503], path="/v2/notify") as receiver:
            feed = Feed(store, receiver.url)
            for value in range(5):
                await feed.listener(_change(("temperature",), temperature=value))
            await feed.listener(_change(("temperature",), tenant="t1", temperature=99))
            for _ in range(2):  # two failures: nothing removed, the same rows again
                with pytest.raises(RuntimeError):
                    await feed.deliver_once()
            assert await feed.deliver_once()
            left = await store.outbox_read(feed.feed_id, 100)
            await feed.stop()
            return receiver, left

    receiver, left = asyncio.run(scenario())
    assert left == []
    assert sequences(receiver) == [1, 2, 3, 4, 5, 6]
    (_, first, _), (_, second, _) = receiver.acknowledged
    assert [e["temperature"]["value"] for e in receiver.bodies()[0]["data"]] == [0, 1, 2, 3, 4]
    assert "fiware-service" not in first and second["fiware-service"] == "t1"


def test_only_the_lease_holder_delivers() -> None:
    async def scenario() -> tuple[bool, bool, LoopbackReceiver]:
        store = MemoryStore()
        await store.open()
        async with LoopbackReceiver(path="/v2/notify") as receiver:
            one, two = Feed(store, receiver.url), Feed(store, receiver.url)
            await one.listener(_change(("temperature",)))
            first = await one.deliver_once()
            await two.listener(_change(("temperature",)))
            second = await two.deliver_once()  # one holds the lease
            await one.deliver_once()
            await one.stop()
            await two.stop()
            return first, second, receiver

    first, second, receiver = asyncio.run(scenario())
    assert first and not second
    assert sequences(receiver) == [1, 2]


def test_tenants_and_types_filter_what_is_fed() -> None:
    feed = Feed(MemoryStore(), "http://127.0.0.1:1/", tenants=["t1"], types=["Room"])
    assert feed.wanted(_change(("temperature",), tenant="t1"))
    assert not feed.wanted(_change(("temperature",), tenant="t2"))
