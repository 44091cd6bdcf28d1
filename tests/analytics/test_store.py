"""The history store contract, on SQLite and PostgreSQL alike (``store/``): ingestion in
one transaction, reads in time order both ways, roll-ups equal to the raw aggregates,
last values, the Waziup-Sequence cursor, deletes, retention."""

from __future__ import annotations

import asyncio
import random

import pytest

from analytics.history import engine, retention
from analytics.history.instants import DAY, HOUR, MAX_MS, MIN_MS, parse_instant
from analytics.history.model import Batch, Element, Partial, Sample, SeriesFilter
from analytics.history.params import Query
from analytics.history.store import HistoryStore, StoreError, open_store
from analytics.history.store.base import merge

pytestmark = pytest.mark.anyio

T0 = parse_instant("2024-01-01T00:00:00Z") or 0


def element(eid: str, t: int, *samples: Sample, path: str = "/", etype: str = "Room", seq: int | None = None) -> Element:
    return Element(eid, etype, path, t, samples, seq)


def num(attr: str, value: float | None, kind: str = "Number") -> Sample:
    return Sample(attr, kind, value, None)


def batch(*elements: Element, tenant: str = "t", sub: str = "", received: int = 0, sequenced: bool = False) -> Batch:
    return Batch(tenant, sub, tuple(elements), received, sequenced)


async def series_of(store: HistoryStore, tenant: str = "t", **kw: object) -> dict[tuple[str, str], int]:
    return {(s.entity_id, s.attr): s.id for s in await store.find_series(SeriesFilter(tenant, **kw))}  # type: ignore[arg-type]


async def test_points_in_time_order_both_ways(store: HistoryStore) -> None:
    await store.ingest(batch(*(element("R", T0 + i * 1000, num("x", float(i))) for i in range(0, 50, 2))))
    await store.ingest(batch(*(element("R", T0 + i * 1000, num("x", float(i))) for i in range(1, 50, 2))))
    sid = (await series_of(store))[("R", "x")]
    forward = (await store.points([sid], MIN_MS, MAX_MS, descending=False, limit=10))[sid]
    assert [p.num for p in forward] == [float(i) for i in range(10)]
    backward = (await store.points([sid], MIN_MS, MAX_MS, descending=True, limit=3))[sid]
    assert [p.num for p in backward] == [49.0, 48.0, 47.0]
    rest = await store.more_points(sid, MIN_MS, MAX_MS, descending=True, limit=100, after=(backward[-1].t, backward[-1].rid))
    assert [p.num for p in rest] == [float(i) for i in range(46, -1, -1)]
    ranged = (await store.points([sid], T0 + 10_000, T0 + 12_000, descending=False, limit=100))[sid]
    assert [p.num for p in ranged] == [10.0, 11.0, 12.0]


async def test_rollups_equal_raw_aggregates(store: HistoryStore) -> None:
    rng = random.Random(7)
    for _ in range(6):  # several notifications land in the same hours
        await store.ingest(batch(*(
            element(f"R{rng.randrange(3)}", T0 + rng.randrange(0, 30 * HOUR), num("x", rng.choice([None, rng.uniform(-50, 50)])),
                    Sample("label", "Text", None, rng.choice([None, "a"])))
            for _ in range(40))))
    ids = list((await series_of(store)).values())
    hourly = await store.aggregate_hourly(ids, MIN_MS, MAX_MS)
    raw = await store.aggregate_raw(ids, MIN_MS, MAX_MS, HOUR)
    as_dict = lambda rows: {(s, h): p for s, h, p in rows}
    expected, got = as_dict(raw), as_dict(hourly)
    assert expected.keys() == got.keys()
    for key, p in expected.items():
        q = got[key]
        assert (q.cnt, q.low, q.high) == (p.cnt, p.low, p.high)
        assert q.total == pytest.approx(p.total)


async def test_partials_mix_rollups_and_edges(store: HistoryStore) -> None:
    await store.ingest(batch(*(element("R", T0 + i * 60_000, num("x", 1.0)) for i in range(180))))  # 3 hours, 1/min
    sid = list((await series_of(store)).values())
    lo, hi = T0 + 30 * 60_000, T0 + 150 * 60_000 - 1  # 00:30 .. 02:29:59.999
    for period, buckets in ((None, {None: 120}), ("hour", {T0: 30, T0 + HOUR: 60, T0 + 2 * HOUR: 30}),
                            ("minute", None)):
        got: dict[object, Partial] = {}
        for _, slot, p in await engine.partials(store, sid, lo, hi, period):
            got[slot] = merge(got[slot], p) if slot in got else p
        if buckets is None:
            assert len(got) == 120 and all(p.cnt == 1 for p in got.values())
        else:
            assert {k: p.cnt for k, p in got.items()} == buckets


async def test_latest_follows_the_time_index_and_arrival(store: HistoryStore) -> None:
    await store.ingest(batch(element("R", T0 + 5000, num("x", 5.0)), received=100))
    await store.ingest(batch(element("R", T0 + 1000, num("x", 1.0)), received=200))  # older value, later arrival
    sid = (await series_of(store))[("R", "x")]
    (last,) = await store.latest([sid])
    assert (last.t, last.num, last.seen) == (T0 + 5000, 5.0, 200)


async def test_sequences_store_each_element_once(store: HistoryStore) -> None:
    def delivery(*seqs: int, sub: str = "s1", tenant: str = "t") -> Batch:
        return batch(*(element(f"E{s}", T0 + s, num("x", float(s)), seq=s) for s in seqs), tenant=tenant, sub=sub,
                     sequenced=True)

    assert (await store.ingest(delivery(1, 2, 3))).elements == 3
    assert (await store.ingest(delivery(1, 2, 3))).skipped == 3  # the same batch again
    overlapping = await store.ingest(delivery(2, 3, 4, 5))  # batched differently, partly new
    assert (overlapping.elements, overlapping.skipped) == (2, 2)
    assert (await store.ingest(delivery(1, 2, sub="s2"))).elements == 2  # a cursor per subscription
    assert (await store.ingest(delivery(1, tenant="u"))).elements == 1  # and per tenant
    plain = batch(element("E1", T0 + 1, num("x", 1.0)))
    await store.ingest(plain)  # no header: everything stored, as QuantumLeap
    ids = await series_of(store)
    counts = {eid: len((await store.points([sid], MIN_MS, MAX_MS, descending=False, limit=100))[sid])
              for (eid, _), sid in ids.items()}
    assert counts == {"E1": 3, "E2": 2, "E3": 1, "E4": 1, "E5": 1}


async def test_concurrent_overlapping_deliveries(store: HistoryStore) -> None:
    """Retries racing each other (several connections on PostgreSQL), as a sender that timed
    out resends from its oldest unacknowledged row, more or fewer rows each time: whatever
    order they commit in, every element is stored once. (Sequences that skip ahead of an
    unstored one are never sent: the broker's feed delivers in order.)"""
    deliveries = [batch(*(element(f"E{s}", T0 + s, num("x", 1.0), seq=s) for s in range(1, 1 + length)),
                        sub="s", sequenced=True) for length in (5, 5, 8, 3, 10, 10, 1)]
    await asyncio.gather(*(store.ingest(d) for d in deliveries))
    ids = await series_of(store)
    for sid in ids.values():
        assert len((await store.points([sid], MIN_MS, MAX_MS, descending=False, limit=10))[sid]) == 1
    assert len(ids) == 10


async def test_concurrent_notifications_of_new_series_are_all_stored(store: HistoryStore) -> None:
    """Notifications arriving together (written in one transaction on SQLite, a savepoint
    each) that create the same new series and new ones of their own: every value is there,
    in one series per attribute, and each answer counts its own values."""
    answers = await asyncio.gather(*(
        store.ingest(batch(element("Shared", T0 + i, num("x", float(i))), element(f"Own{i}", T0 + i, num("x", 1.0))))
        for i in range(30)
    ))
    assert [a.values for a in answers] == [2] * 30
    ids = await series_of(store)
    assert len(ids) == 31
    shared = (await store.points([ids[("Shared", "x")]], MIN_MS, MAX_MS, descending=False, limit=100))[ids[("Shared", "x")]]
    assert [p.num for p in shared] == [float(i) for i in range(30)]


async def test_series_selection(store: HistoryStore) -> None:
    await store.ingest(batch(element("A", T0, num("x", 1.0), path="/a"), element("B", T0, num("x", 1.0), path="/a/b"),
                             element("C", T0, num("y", 1.0), path="/c", etype="Car")))
    await store.ingest(batch(element("A", T0, num("x", 1.0)), tenant="other"))
    names = lambda found: sorted(k[0] for k in found)
    assert names(await series_of(store)) == ["A", "B", "C"]
    assert names(await series_of(store, scopes=(("/a", False),))) == ["A"]
    assert names(await series_of(store, scopes=(("/a", True),))) == ["A", "B"]
    assert names(await series_of(store, scopes=(("/a/b", False), ("/c", False)))) == ["B", "C"]
    assert names(await series_of(store, entity_types=("Car",))) == ["C"]
    assert names(await series_of(store, entity_ids=("A", "C"), attrs=("x",))) == ["A"]
    assert names(await series_of(store, "other")) == ["A"]


async def test_delete_keeps_rollups_and_latest_right(store: HistoryStore) -> None:
    await store.ingest(batch(*(element("R", T0 + i * 60_000, num("x", float(i))) for i in range(120))))
    sid = (await series_of(store))[("R", "x")]
    lo, hi = T0 + 30 * 60_000, T0 + 150 * 60_000  # 00:30 .. 02:30: the rest of hour 0, all of hour 1
    assert await store.delete([sid], lo, hi) == 90
    hours = {h: p.cnt for _, h, p in await store.aggregate_hourly([sid], MIN_MS, MAX_MS)}
    assert hours == {T0: 30}
    (last,) = await store.latest([sid])
    assert last.num == 29.0
    assert await store.delete([sid], MIN_MS, MAX_MS) == 30
    assert await store.latest([sid]) == [] and await store.aggregate_hourly([sid], MIN_MS, MAX_MS) == []


async def test_retention_purges_raw_values_only(store: HistoryStore) -> None:
    day = 24 * HOUR
    await store.ingest(batch(*(element("R", T0 + d * day, num("x", 1.0)) for d in range(10)),
                             element("C", T0, num("x", 1.0), etype="Car")))
    policy = retention.Policy.of(0, ["t/Room=3"])
    swept = await retention.apply(store, policy, T0 + 10 * day)
    assert (swept.points, swept.hours, swept.days) == (7, 0, 11)  # 11 daily rows: 10 days of R, 1 of C
    ids = await series_of(store)
    room, car = ids[("R", "x")], ids[("C", "x")]
    assert len((await store.points([room], MIN_MS, MAX_MS, descending=False, limit=100))[room]) == 3
    assert len((await store.points([car], MIN_MS, MAX_MS, descending=False, limit=100))[car]) == 1
    assert sum(p.cnt for _, _, p in await store.aggregate_hourly([room], MIN_MS, MAX_MS)) == 10


async def test_hourly_retention_keeps_daily_rows(store: HistoryStore) -> None:
    await store.ingest(batch(*(element("R", T0 + h * HOUR, num("x", float(h))) for h in range(72))))
    sid = (await series_of(store))[("R", "x")]
    swept = await retention.apply(store, retention.Policy(2, (), 2), T0 + 4 * DAY + HOUR)
    # raw values go to the ms (those before day 2 01:00), hourly rows by whole days (days 0 and 1)
    assert (swept.days, swept.points, swept.hours) == (3, 49, 48)
    assert {h for _, h, _ in await store.aggregate_hourly([sid], MIN_MS, MAX_MS)} == {T0 + h * HOUR
                                                                                     for h in range(48, 72)}
    days = {d: p for _, d, p in await store.aggregate_daily([sid], MIN_MS, MAX_MS)}
    assert days == {T0: Partial(24, 276.0, 0.0, 23.0), T0 + DAY: Partial(24, 852.0, 24.0, 47.0),
                    T0 + 2 * DAY: Partial(24, 1428.0, 48.0, 71.0)}


async def test_roll_up_moves_the_mark_forward_and_late_values_join_daily(store: HistoryStore) -> None:
    await store.ingest(batch(*(element("R", T0 + d * DAY + h * HOUR, num("x", 1.0)) for d in range(3)
                               for h in range(0, 24, 6))))
    sid = (await series_of(store))[("R", "x")]
    assert await store.roll_up(T0 + 2 * DAY + 5 * HOUR) == 2  # days 0 and 1 closed; day 2 is open
    assert await store.roll_up(T0 + 2 * DAY) == 0 and await store.roll_up(T0) == 0  # never back
    await store.ingest(batch(element("R", T0 + 7 * HOUR, num("x", 5.0)),  # late, into a rolled-up day
                             element("R", T0 + 2 * DAY + 7 * HOUR, num("x", 5.0))))
    # hourly rows go only before the mark, whatever the cut asked for: day 2 has no daily row
    assert await store.purge_hourly([sid], T0 + 10 * DAY) == 9
    days = {d: (p.cnt, p.total, p.high) for _, d, p in await store.aggregate_daily([sid], MIN_MS, MAX_MS)}
    assert days == {T0: (5, 9.0, 5.0), T0 + DAY: (4, 4.0, 1.0), T0 + 2 * DAY: (5, 9.0, 5.0)}
    assert {d for _, d, _ in await store.aggregate_daily([sid], T0 + DAY, T0 + 2 * DAY)} == {T0 + DAY}


async def test_deletes_after_retention_keep_what_cannot_be_told_apart(store: HistoryStore) -> None:
    """Two values an hour, at :00 and :45, for three days; days rolled up; raw values
    before day 1 12:00 and the hourly rows of day 0 aged out."""
    await store.ingest(batch(*(element("R", T0 + d * DAY + h * HOUR + m * 60_000, num("x", 1.0))
                               for d in range(3) for h in range(24) for m in (0, 45))))
    sid = (await series_of(store))[("R", "x")]
    await store.roll_up(T0 + 3 * DAY)
    await store.purge([sid], T0 + DAY + 12 * HOUR)
    await store.purge_hourly([sid], T0 + DAY)

    def cut(t: int) -> int:
        return t - 1

    # day 0 in part (its hourly rows are gone: its daily row stays as it was), hours 0-5 of day 1
    # whole, the :00 value of 06:00 (its raw values are gone: its hourly row stays, and day 1 is
    # summed from its hourly rows)
    assert await store.delete([sid], T0 + 6 * HOUR, T0 + DAY + 6 * HOUR + 30 * 60_000) == 0
    hours = {h: p.cnt for _, h, p in await store.aggregate_hourly([sid], T0, T0 + 2 * DAY)}
    assert hours == {T0 + DAY + h * HOUR: 2 for h in range(6, 24)}
    days = {d: p.cnt for _, d, p in await store.aggregate_daily([sid], MIN_MS, MAX_MS)}
    assert days == {T0: 48, T0 + DAY: 36, T0 + 2 * DAY: 48}
    # where the raw values are all there, a partly deleted hour is summed from what is left
    assert await store.delete([sid], T0 + 2 * DAY + 3 * HOUR + 30 * 60_000, cut(T0 + 2 * DAY + 4 * HOUR + 60_000)) == 2
    hours = {h: p.cnt for _, h, p in await store.aggregate_hourly([sid], T0 + 2 * DAY, T0 + 3 * DAY)}
    assert hours[T0 + 2 * DAY + 3 * HOUR] == 1 and hours[T0 + 2 * DAY + 4 * HOUR] == 1
    days = {d: p.cnt for _, d, p in await store.aggregate_daily([sid], MIN_MS, MAX_MS)}
    assert days == {T0: 48, T0 + DAY: 36, T0 + 2 * DAY: 46}
    # a delete that covers a day whole removes its daily row, aged out or not
    await store.delete([sid], T0, cut(T0 + DAY))
    assert {d for _, d, _ in await store.aggregate_daily([sid], MIN_MS, MAX_MS)} == {T0 + DAY, T0 + 2 * DAY}


async def test_answer_of_an_empty_notification(store: HistoryStore) -> None:
    assert (await store.ingest(batch())).elements == 0
    assert (await store.ingest(batch(element("R", T0)))).values == 0
    await store.ping()


async def test_history_query_on_the_store(store: HistoryStore) -> None:
    await store.ingest(batch(element("R", T0, num("x", 1.0), num("y", 2.0)), element("R", T0 + 1, num("x", 3.0))))
    answer = await engine.history(store, Query("t", entity_ids=("R",)))
    (block,) = answer.blocks
    assert block.index == [T0, T0 + 1] and block.values == {"x": [1.0, 3.0], "y": [2.0, None]}
    assert block.rows_of("y") == [0]


async def test_unreachable_or_bad_urls_are_store_errors(anyio_backend: str) -> None:
    with pytest.raises(StoreError):
        await open_store("postgresql://nobody@127.0.0.1:9/none").open()
    with pytest.raises(StoreError):
        open_store("sqlite://")
    with pytest.raises(StoreError):
        open_store("mongodb://x")
