"""Daily and hourly roll-ups through the service, on SQLite and PostgreSQL: aggregates
equal those computed from the raw values, wherever the roll-up mark falls and whatever
arrives late; they stay right by day and coarser once retention removed the raw values
and the hourly roll-ups; deletes with dates keep the roll-ups equal to what they sum.

One app per backend for the module, driven through HTTP (TestClient); the maintenance
pass (``retention.apply``) runs in the app's own event loop. Each hypothesis example
writes under a tenant of its own, in a span of days ("era") after the previous
example's, so that the roll-up mark, which only moves forward, starts before its values.
Values are multiples of 1/4 below 2^10: every sum is exact, so answers must be *equal*
to the expected ones, whatever order the store adds them in.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.history import retention
from analytics.history.app import create_app
from analytics.history.config import Config
from analytics.history.instants import DAY, HOUR, MAX_MS, MIN_MS, bucket, floor, format_instant, parse_instant
from analytics.history.model import Partial
from analytics.history.store import HistoryStore
from analytics.history.store.base import ROLLED, merge
from analytics.history.store.postgres import PostgresStore
from analytics.history.store.sqlite import SQLiteStore

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

EPOCH = parse_instant("2024-01-01T00:00:00Z") or 0
SPAN = 4 * DAY  # the values of one example lie in [era, era + SPAN)
ERA = 8 * DAY  # room for the span, the passes after it, and a margin
ERAS = itertools.count(1)
ENTITIES = ("E0", "E1")
PERIODS = (None, "hour", "day", "month", "year")
METHODS = ("count", "sum", "avg", "min", "max")
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Clock:
    """The app's clock (seconds), set by the tests: the first pass sees the year 2000."""

    def __init__(self) -> None:
        self.now = 946684800.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Service:
    client: TestClient
    store: HistoryStore

    def apply(self, policy: retention.Policy, now_ms: int) -> retention.Swept:
        """A maintenance pass at ``now_ms``, in the app's loop (where the store lives)."""
        return self.client.portal.call(retention.apply, self.store, policy, now_ms)  # type: ignore[union-attr]

    def rows(self, sqlite_sql: str, postgres_sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """A query on the store's tables, straight, in the app's loop."""
        return self.client.portal.call(_rows, self.store, sqlite_sql, postgres_sql, args)  # type: ignore[union-attr]

    def tables(self, table: str) -> dict[tuple[int, int], Partial]:
        """A roll-up table as stored: (series, slot) -> aggregates."""
        sql = f"SELECT series, {'h' if table == 'hourly' else 'd'}, cnt, vsum, vmin, vmax FROM "
        return {(row[0], row[1]): Partial(*row[2:]) for row in self.rows(sql + table, sql + "history_" + table)}

    def mark(self) -> int:
        (row,) = self.rows("SELECT value FROM meta WHERE key = ?", "SELECT value FROM history_meta WHERE key = $1",
                           ROLLED)
        return int(row[0])


async def _rows(store: HistoryStore, sqlite_sql: str, postgres_sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    if isinstance(store, SQLiteStore):
        return await store._read(store._all, sqlite_sql, args)
    assert isinstance(store, PostgresStore)
    return [tuple(row) for row in await store.pool.fetch(postgres_sql, *args)]


@pytest.fixture(scope="module")
def service(module_store_url: str) -> Iterator[Service]:
    app = create_app(Config(db_uri=module_store_url), clock=Clock())
    with TestClient(app) as client:
        yield Service(client, app.state.store)


# -- what the answers must be, from the raw values -------------------------------------------------

Value = tuple[str, int, float | None]  # entity, time index, value (None: a null)


def expected(values: list[Value], method: str, period: str | None, lo: int, hi: int) -> dict[str, Any]:
    """Per entity, {"index": [...], "values": [...]} as the service renders an aggregate."""
    cells: dict[str, dict[int | None, list[float]]] = {}
    for entity, t, value in values:
        if value is not None and lo <= t <= hi:
            cells.setdefault(entity, {}).setdefault(None if period is None else bucket(t, period), []).append(value)
    answer = {}
    for entity, buckets in sorted(cells.items()):
        index, results = [], []
        for start in sorted(buckets, key=lambda b: MIN_MS if b is None else b):
            numbers = buckets[start]
            result = {"count": len(numbers), "sum": sum(numbers), "avg": sum(numbers) / len(numbers),
                      "min": min(numbers), "max": max(numbers)}[method]
            results.append(result)
            if start is not None:
                index.append(format_instant(start))
        answer[entity] = {"index": index, "values": results}
    return answer


def answered(service: Service, tenant: str, method: str, period: str | None, lo: int, hi: int) -> dict[str, Any]:
    query = f"aggrMethod={method}" + (f"&aggrPeriod={period}" if period else "")
    if lo != MIN_MS:
        query += "&fromDate=" + quote(format_instant(lo))
    if hi != MAX_MS:
        query += "&toDate=" + quote(format_instant(hi))
    answer = service.client.get(f"/v2/types/Room/attrs/x?{query}", headers={"fiware-service": tenant})
    if answer.status_code == 404:
        return {}
    assert answer.status_code == 200, answer.text
    return {e["entityId"]: {"index": e["index"], "values": e["values"]} for e in answer.json()["entities"]}


def check(service: Service, tenant: str, values: list[Value], windows: list[tuple[int, int]],
          periods: tuple[str | None, ...] = PERIODS) -> None:
    for lo, hi in windows:
        for period in periods:
            for method in METHODS:
                got = answered(service, tenant, method, period, lo, hi)
                assert got == expected(values, method, period, lo, hi), (method, period, lo, hi)


def check_tables(service: Service) -> None:
    """Every daily row sums the hourly rows of its day, where those are all kept (a daily
    row whose day has no hourly row left aged out: nothing to compare), and none lies at
    or after the mark."""
    hourly, daily, mark = service.tables("hourly"), service.tables("daily"), service.mark()
    summed: dict[tuple[int, int], Partial] = {}
    for (series, hour), part in hourly.items():
        key = (series, floor(hour, DAY))
        summed[key] = merge(summed[key], part) if key in summed else part
    for key, part in daily.items():
        assert key[1] < mark, key
        if key in summed:
            assert part == summed[key], key
    for key, part in summed.items():
        if key[1] < mark:
            assert daily.get(key) == part, key


def notify(service: Service, tenant: str, values: list[Value]) -> None:
    data = [{"id": entity, "type": "Room", "TimeInstant": {"type": "DateTime", "value": format_instant(t)},
             "x": {"type": "Number", "value": value}} for entity, t, value in values]
    for start in range(0, len(data), 40):
        answer = service.client.post("/v2/notify", json={"subscriptionId": "s", "data": data[start:start + 40]},
                                     headers={"fiware-service": tenant})
        assert answer.status_code == 200, answer.text


# -- strategies ------------------------------------------------------------------------------------

quarters = st.integers(-4000, 4000).map(lambda q: q / 4)
offsets = st.one_of(st.integers(0, SPAN - 1),  # anywhere, or on and next to hour and day boundaries
                    st.tuples(st.integers(0, 4 * 24 - 1), st.sampled_from([0, 1, HOUR - 1])).map(
                        lambda hm: hm[0] * HOUR + hm[1]))
samples = st.lists(st.tuples(st.sampled_from(ENTITIES), offsets, st.none() | quarters), min_size=1, max_size=60)
bound = st.one_of(st.none(), offsets.map(lambda o: o - HOUR), st.integers(0, 5).map(lambda d: d * DAY),
                  st.integers(0, 5).map(lambda d: d * DAY - 1))
windows = st.lists(st.tuples(bound, bound), min_size=1, max_size=2)


def absolute(era: int, window: tuple[int | None, int | None]) -> tuple[int, int]:
    lo = MIN_MS if window[0] is None else era + window[0]
    hi = MAX_MS if window[1] is None else era + window[1]
    return (lo, hi) if lo <= hi else (hi, lo)


def placed(era: int, drawn: list[tuple[str, int, float | None]]) -> list[Value]:
    return [(entity, era + offset, value) for entity, offset, value in drawn]


# -- properties ------------------------------------------------------------------------------------


@SLOW
@given(first=samples, late=samples, rolled_days=st.none() | st.integers(0, 4), drawn_windows=windows)
def test_aggregates_equal_the_raw_values_and_survive_retention(
    service: Service, first: list[tuple[str, int, float | None]], late: list[tuple[str, int, float | None]],
    rolled_days: int | None, drawn_windows: list[tuple[int | None, int | None]],
) -> None:
    """Values, a roll-up pass somewhere in their span (or none), more values, some of them
    before the mark (late): every aggregate by hour, day, month, year and none, over random
    windows, equals the raw values'. Then raw values and hourly roll-ups age out: day and
    coarser aggregates over whole days are unchanged, hourly ones give what is left."""
    era, tenant = EPOCH + next(ERAS) * ERA, f"p{next(ERAS)}"
    values = placed(era, first)
    notify(service, tenant, values)
    if rolled_days is not None:
        service.apply(retention.Policy(), era + rolled_days * DAY)
        assert service.mark() == era + rolled_days * DAY
    values += placed(era, late)
    notify(service, tenant, placed(era, late))
    check_tables(service)
    check(service, tenant, values, [absolute(era, w) for w in drawn_windows] + [(MIN_MS, MAX_MS)])

    swept = service.apply(retention.Policy(1, (), 1), era + SPAN + 2 * DAY)
    assert swept.points >= len(values) and swept.hours > 0
    whole_days = [(era, MAX_MS), (MIN_MS, MAX_MS), (era + DAY, era + 3 * DAY - 1)]
    check(service, tenant, values, whole_days, (None, "day", "month", "year"))
    assert answered(service, tenant, "count", "hour", MIN_MS, MAX_MS) == {}  # its hourly rows are gone
    check_tables(service)


@SLOW
@given(drawn=samples, rolled_days=st.integers(0, 4), drawn_windows=windows.filter(lambda w: len(w) == 2))
def test_deletes_with_dates_keep_the_rollups_consistent(
    service: Service, drawn: list[tuple[str, int, float | None]], rolled_days: int,
    drawn_windows: list[tuple[int | None, int | None]],
) -> None:
    """A DELETE of E0 between random dates (whole, partial and edge hours and days, before
    and after the mark): the roll-ups sum what is left, and so do the answers."""
    era, tenant = EPOCH + next(ERAS) * ERA, f"d{next(ERAS)}"
    values = placed(era, drawn)
    notify(service, tenant, values)
    service.apply(retention.Policy(), era + rolled_days * DAY)
    lo, hi = absolute(era, drawn_windows[0])
    query = "&".join(f"{name}={quote(format_instant(t))}" for name, t, edge in (("fromDate", lo, MIN_MS),
                                                                               ("toDate", hi, MAX_MS)) if t != edge)
    answer = service.client.delete(f"/v2/entities/E0?type=Room&{query}", headers={"fiware-service": tenant})
    gone = [v for v in values if v[0] == "E0" and lo <= v[1] <= hi]
    assert answer.status_code == (204 if gone else 404), answer.text
    values = [v for v in values if v not in gone]
    check_tables(service)
    check(service, tenant, values, [absolute(era, drawn_windows[1]), (MIN_MS, MAX_MS)])
