"""The history store's interface, and what every backend computes the same way.

A backend (``sqlite.py``, ``postgres.py``) keeps these tables (``docs/history.md``):

* ``series``: one row per (tenant, service path, entity type, entity id, attribute,
  effective type), numbered;
* ``points``: (series, t, rid, num, txt), keyed (series, t, rid): one index range gives
  an attribute's values in time order, forwards (``limit``) or backwards (``lastN``);
* ``hourly``: per (series, hour) the count, sum, min and max, kept up to date by every
  ingestion, so that aggregates by hour and coarser read one row per hour instead of
  every value, and survive the retention of raw values;
* ``daily``: the same per (series, UTC day), for the days before the *roll-up mark*
  (``meta``'s ``daily_upto``, a day start): the maintenance pass (:meth:`roll_up`) sums
  the hourly rows of the days that closed since; an ingestion adds to it only the values
  it stores before the mark (late ones). Live values, the bulk, therefore cost no daily
  write, and day, month and year aggregates read one row per day (the days from the mark
  on, from ``hourly``), which stays right once hourly rows age out;
* ``latest``: per series the last value by time index and the last arrival ("last
  seen"), for ``/v2/last`` and the entity list, without a scan;
* ``cursors``: per (tenant, subscription) the highest ``Waziup-Sequence`` stored;
* ``retention_rules``: per (tenant, entity type or ``*``) the days of raw values its
  administrators keep (``PUT /v2/retention``; ``retention.py`` merges them with the flags).

One notification is one transaction: the cursor is read (locked), the elements above it
kept, the rows of the data tables written, the cursor moved, then COMMIT, and only then
does the service answer. :func:`plan` computes those rows, the same for every backend.

A roll-up equals what it sums (``hourly``: the raw values of its hour, ``daily``: the
hourly rows of its day) until retention removes some of these: a DELETE with dates
recomputes a partly covered hour or day only while that holds (checked by the count, since
a roll-up of count 0 sums nothing), and otherwise leaves it as it is.

Every failure of a backend's driver is raised as :class:`StoreError` (the app answers
503): nothing else leaves a store.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..instants import DAY, HOUR, MIN_MS, edges
from ..model import Batch, Element, Ingested, Latest, Partial, Point, Series, SeriesFilter, SeriesKey
from ..values import NUMERIC

ROW_BITS = 20  # a row number is (notification number << ROW_BITS) | element index
ROLLED = "daily_upto"  # meta key of the roll-up mark: days before it are in ``daily``
NOTHING_ROLLED = MIN_MS  # the mark of a store whose first pass has not run


class StoreError(Exception):
    """The database failed or is unreachable."""


def keep_after(batch: Batch, cursor: int | None) -> tuple[tuple[Element, ...], int | None]:
    """The elements of a sequenced batch above ``cursor`` (None: none stored yet), and
    the cursor once they are stored (None: unchanged). Unsequenced: everything, None."""
    if not batch.sequenced:
        return batch.elements, None
    floor_ = -1 if cursor is None else cursor
    kept = tuple(e for e in batch.elements if e.sequence is not None and e.sequence > floor_)
    top = max((e.sequence for e in kept if e.sequence is not None), default=None)
    return kept, top


def series_keys(tenant: str, elements: Iterable[Element]) -> set[SeriesKey]:
    """The keys of the series the elements write (plain tuples: equal to SeriesKeys)."""
    keys: set[SeriesKey] = set()
    for e in elements:
        prefix = (tenant, e.service_path, e.entity_type, e.entity_id)
        keys.update(prefix + (s.attr, s.attr_type) for s in e.samples)  # type: ignore[misc]
    return keys


PointRow = tuple[int, int, int, float | None, str | None]  # series, t, rid, num, txt
HourRow = tuple[int, int, int, float | None, float | None, float | None]  # series, h, cnt, sum, min, max
DayRow = HourRow  # series, day start, cnt, sum, min, max
LatestRow = tuple[int, int, int, float | None, str | None, int]  # series, t, rid, num, txt, seen
RetentionRow = tuple[str, str, int]  # tenant, entity type (or "*"), days


@dataclass(slots=True)
class Plan:
    points: list[PointRow]
    hourly: list[HourRow]  # sorted by (series, h): concurrent upserts lock in one order
    latest: list[LatestRow]  # sorted by series, for the same reason

    def daily(self, rolled: int) -> list[DayRow]:
        """The daily rows to add, for the values before the roll-up mark ``rolled`` (the
        later days are summed by the next pass): none at all for live values."""
        return days_of(self.hourly, rolled)


def days_of(hourly: Sequence[HourRow], before: int) -> list[DayRow]:
    """Hourly rows before ``before`` summed per (series, UTC day), in key order."""
    days: dict[tuple[int, int], Partial] = {}
    for series, hour, cnt, total, low, high in hourly:
        if hour < before:
            key, part = (series, hour - hour % DAY), Partial(cnt, total, low, high)
            days[key] = merge(days[key], part) if key in days else part
    return [(key[0], key[1], *part) for key, part in sorted(days.items())]


def plan(batch: Batch, elements: Sequence[Element], ids: dict[SeriesKey, int], number: int) -> Plan:
    """The rows one notification writes; ``number`` is the notification's, from the store
    (its daily rows, if any, come from :meth:`Plan.daily` once the store knows its mark)."""
    points: list[PointRow] = []
    hours: dict[tuple[int, int], list[Any]] = {}  # (series, hour) -> [cnt, sum, min, max]
    latest: dict[int, LatestRow] = {}
    base = number << ROW_BITS
    index = {id(e): i for i, e in enumerate(batch.elements)}
    received = batch.received
    for element in elements:
        rid = base | index[id(element)]
        t = element.time_index
        hour = t - t % HOUR
        prefix = (batch.tenant, element.service_path, element.entity_type, element.entity_id)
        for attr, attr_type, num, txt in element.samples:
            series = ids[prefix + (attr, attr_type)]  # type: ignore[index]
            points.append((series, t, rid, num, txt))
            old = latest.get(series)
            if old is None or (t, rid) >= (old[1], old[2]):
                latest[series] = (series, t, rid, num, txt, received)
            present = num is not None or txt is not None
            value = num if attr_type in NUMERIC else None
            slot = hours.get((series, hour))
            if slot is None:
                hours[(series, hour)] = [1 if present else 0, value, value, value]
            elif present:
                slot[0] += 1
                if value is not None:
                    slot[1] = value if slot[1] is None else slot[1] + value
                    slot[2] = value if slot[2] is None else min(slot[2], value)
                    slot[3] = value if slot[3] is None else max(slot[3], value)
    hourly = [(key[0], key[1], slot[0], slot[1], slot[2], slot[3]) for key, slot in sorted(hours.items())]
    points.sort()  # in key order: B-tree inserts next to each other
    return Plan(points, hourly, [latest[k] for k in sorted(latest)])


@dataclass(frozen=True, slots=True)
class Level:
    """A roll-up table and what it sums, in one backend's SQL: what a DELETE needs to drop
    and sum again the roll-ups of the slots it touches."""

    table: str
    key: str  # its time column
    step: int  # ms per row
    source: str  # the table it sums
    time: str  # the source's time column
    count: str  # the source's count (0 when empty): the roll-up is complete when its cnt equals it
    sums: str  # cnt, vsum, vmin, vmax summed from the source


def merge(a: Partial, b: Partial) -> Partial:
    """Two partial aggregates of disjoint values as one."""
    def pick(x: float | None, y: float | None, f: object) -> float | None:
        if x is None:
            return y
        if y is None:
            return x
        return f(x, y)  # type: ignore[operator, no-any-return]

    return Partial(a.cnt + b.cnt, pick(a.total, b.total, lambda x, y: x + y), pick(a.low, b.low, min),
                   pick(a.high, b.high, max))


class HistoryStore(abc.ABC):
    """What the service asks of a database. Instants are ms; ``lo``/``hi`` are inclusive
    bounds (``instants.MIN_MS``/``MAX_MS`` for none)."""

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raises StoreError when the database does not answer."""

    @abc.abstractmethod
    async def ingest(self, batch: Batch) -> Ingested:
        """Store a notification in one transaction, committed when this returns."""

    @abc.abstractmethod
    async def find_series(self, selection: SeriesFilter) -> list[Series]: ...

    @abc.abstractmethod
    async def all_series(self) -> list[Series]: ...

    @abc.abstractmethod
    async def points(self, series: Sequence[int], lo: int, hi: int, *, descending: bool,
                     limit: int) -> dict[int, list[Point]]:
        """Up to ``limit`` points of each series in [lo, hi], in (t, rid) order."""

    @abc.abstractmethod
    async def more_points(self, series: int, lo: int, hi: int, *, descending: bool, limit: int,
                          after: tuple[int, int]) -> list[Point]:
        """The next ``limit`` points of one series past ``after`` (t, rid) in that order."""

    @abc.abstractmethod
    async def aggregate_raw(self, series: Sequence[int], lo: int, hi: int,
                            step: int) -> list[tuple[int, int, Partial]]:
        """(series, slot start, aggregates) of the points in [lo, hi], by ``step`` ms slots."""

    @abc.abstractmethod
    async def aggregate_hourly(self, series: Sequence[int], first: int,
                               end: int) -> list[tuple[int, int, Partial]]:
        """(series, hour, aggregates) of the hours in [first, end) from the roll-ups."""

    @abc.abstractmethod
    async def aggregate_daily(self, series: Sequence[int], first: int,
                              end: int) -> list[tuple[int, int, Partial]]:
        """(series, day, aggregates) of the UTC days in [first, end) (day starts): from
        ``daily`` for the days before the roll-up mark, summed from ``hourly`` for the
        others, both read in one snapshot (a pass moving the mark in between changes
        nothing)."""

    @abc.abstractmethod
    async def latest(self, series: Sequence[int]) -> list[Latest]: ...

    @abc.abstractmethod
    async def last_in_range(self, series: Sequence[int], lo: int, hi: int) -> dict[int, int]:
        """The last time index of each series in [lo, hi] (series without any: absent)."""

    @abc.abstractmethod
    async def delete(self, series: Sequence[int], lo: int, hi: int) -> int:
        """Delete the points in [lo, hi]; roll-ups and last values follow. The count.

        The hourly and daily rows of the hours and days [lo, hi] covers whole go. A partly
        covered hour (day) is summed again from the raw values (hourly rows) left, if its
        roll-up still equalled what they held: once retention took some of them, the part
        to remove cannot be told apart, and the roll-up stays as it was."""

    @abc.abstractmethod
    async def purge(self, series: Sequence[int], before: int) -> int:
        """Retention: delete raw points older than ``before``, keeping roll-ups and last
        values. The count."""

    @abc.abstractmethod
    async def roll_up(self, before: int) -> int:
        """Move the roll-up mark to the day of ``before`` (never back), summing the hourly
        rows of the days it passes into ``daily``, a day per transaction (ingestion goes on
        between). The daily rows written."""

    @abc.abstractmethod
    async def purge_hourly(self, series: Sequence[int], before: int) -> int:
        """Retention of roll-ups: delete hourly rows older than ``before`` (a day start),
        never at or past the roll-up mark (those days have no daily row). The count."""

    @abc.abstractmethod
    async def retention_rules(self, tenant: str | None = None) -> list[RetentionRow]:
        """The stored retention rules (of one tenant, or of all), by tenant and type."""

    @abc.abstractmethod
    async def replace_retention_rules(self, tenant: str, rules: Sequence[tuple[str, int]]) -> None:
        """Replace a tenant's stored rules, (entity type or ``*``, days) each, in one transaction."""


def chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def edge_hours(lo: int, hi: int) -> list[int]:
    """The hours [lo, hi] covers only in part (at most its first and its last)."""
    return edges(lo, hi, HOUR)


def edge_days(lo: int, hi: int) -> list[int]:
    """The UTC days [lo, hi] covers only in part."""
    return edges(lo, hi, DAY)
