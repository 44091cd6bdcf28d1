"""Running a query on a store: which series, which rows, which aggregates.

Raw values: the points of the selected series are merged in time order (a k-way merge
of each series' index range, fetched in chunks, so only about as many points as the
answer needs are read), grouped into rows (the attributes one notification gave one
entity), optionally filtered by the entity's location, then ``offset`` and ``limit``
(or ``lastN``) are applied to those rows, as QuantumLeap applies them to its table's
rows. ``lastN`` reads backwards from the end and gives the rows oldest first.

Aggregates (``aggrMethod``, ``aggrPeriod``): per entity and attribute, per UTC period.
Days, months, years and "everything" are summed from the daily roll-ups for the whole
days inside [fromDate, toDate], the hourly ones for the whole hours of its partial days,
and the raw values of its partial hours; hours the same without the days; seconds and
minutes from the raw values. Each layer is read only where it holds every value, so the
answer is the one the raw values give, and day and coarser answers stay right once
retention removed raw values and hourly roll-ups (of the whole days inside the range).
Sum, avg, min and max take the numeric series only (``Number``, ``Integer``); count takes
every series.

Every function raises ``NotFound`` when nothing matches (QuantumLeap 1.0's 404).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ngsi.regex import compile_pattern

from .errors import Ambiguous, NotFound
from .instants import DAY, FIXED, HOUR, MAX_MS, MIN_MS, bucket, whole
from .model import Partial, Point, Series, SeriesFilter
from .params import Query
from .store.base import HistoryStore, merge
from .values import GEO_TYPES, NUMERIC, decode, location

CHUNK = 2000  # points read from one series at a time
LOCATION = "location"  # the preferred location attribute when an entity has several

Entity = tuple[str, str]  # (type, id)


@dataclass(slots=True)
class Block:
    """The answer for one entity: an index (ms; None for an aggregate without period)
    and, per attribute, the values parallel to it."""

    entity_type: str
    entity_id: str
    index: list[int | None] = field(default_factory=list)
    values: dict[str, list[Any]] = field(default_factory=dict)
    # per attribute, the rows it has no value in (its nulls there only align it with the others)
    missing: dict[str, set[int]] = field(default_factory=dict)

    def rows_of(self, attr: str) -> list[int]:
        """The rows where ``attr`` has a value (a stored null included)."""
        gaps = self.missing.get(attr, set())
        return [i for i in range(len(self.index)) if i not in gaps]


@dataclass(slots=True)
class Answer:
    blocks: list[Block]  # sorted by (type, id)
    attrs: list[str]  # the attributes, in the order the answer gives them


@dataclass(slots=True)
class _Row:
    t: int
    rid: int
    entity: Entity
    values: dict[str, Any]


async def select(store: HistoryStore, query: Query) -> list[Series]:
    """The series a query covers (the id pattern applied here, with RE2), less those of
    attributes the caller's projection hides: every answer, raw, aggregated, listed or
    last, is built from these, so a hidden attribute reaches none of them."""
    found = await store.find_series(SeriesFilter(query.tenant, query.scopes, query.entity_ids, query.entity_types,
                                                 query.attrs))
    if query.visible is not None or query.hidden:
        found = [s for s in found if query.shows(s.attr)]
    if query.id_pattern is not None:
        pattern = compile_pattern(query.id_pattern)
        found = [s for s in found if pattern is not None and pattern.search(s.entity_id) is not None]
    return found


def _check_one_entity(query: Query, series: list[Series]) -> None:
    types = {s.entity_type for s in series}
    if query.one_entity and len(types) > 1:
        raise Ambiguous(f"There are entities of several types ({', '.join(sorted(types))}) with the id "
                        f"{series[0].entity_id!r}: give the type (type=...) to choose one.")


def _attr_order(query: Query, series: list[Series]) -> list[str]:
    present = {s.attr for s in series}
    if query.attrs is not None:
        return [a for a in query.attrs if a in present]
    return sorted(present)


async def history(store: HistoryStore, query: Query) -> Answer:
    """The rows, or aggregates, a query asks for."""
    series = await select(store, query)
    if not series:
        raise NotFound()
    _check_one_entity(query, series)
    if query.method is not None:
        return await _aggregates(store, query, series)
    return await _raw(store, query, series)


# -- raw values ------------------------------------------------------------------------------


class _Feed:
    """One series' points, fetched a chunk at a time."""

    __slots__ = ("buffer", "exhausted", "position", "series")

    def __init__(self, series: Series, buffer: list[Point], asked: int) -> None:
        self.series = series
        self.buffer = buffer
        self.position = 0
        self.exhausted = len(buffer) < asked


async def _raw(store: HistoryStore, query: Query, series: list[Series]) -> Answer:
    descending = query.last_n is not None
    need = query.offset + query.count
    accept = await _geo_filter(store, query, series) if query.geo is not None else None
    rows = await _merged_rows(store, series, query.lo, query.hi, descending, need, accept)
    rows = rows[query.offset:need]
    if descending:
        rows.reverse()
    if not rows:
        raise NotFound()
    attrs = _attr_order(query, series)
    blocks: dict[Entity, Block] = {}
    for row in rows:
        block = blocks.get(row.entity)
        if block is None:
            block = blocks[row.entity] = Block(row.entity[0], row.entity[1])
        position = len(block.index)
        block.index.append(row.t)
        for attr, value in row.values.items():
            column = block.values.get(attr)
            if column is None:
                column = block.values[attr] = [None] * position
                block.missing[attr] = set(range(position))
            column.append(value)
        for attr, column in block.values.items():
            if len(column) <= position:
                column.append(None)
                block.missing[attr].add(position)
    for block in blocks.values():
        block.values = {a: block.values[a] for a in attrs if a in block.values}
        block.missing = {a: gaps for a, gaps in block.missing.items() if gaps}
    return Answer([blocks[e] for e in sorted(blocks)], attrs)


async def _merged_rows(
    store: HistoryStore, series: list[Series], lo: int, hi: int, descending: bool, need: int,
    accept: Callable[[_Row], bool] | None,
) -> list[_Row]:
    """The first ``need`` rows in time order (backwards when ``descending``)."""
    if need <= 0:
        return []
    # need + 1: a row closes when the next point comes, and a series holds one point per row,
    # so lastN=100 reads 101 points of each series instead of 100 and then a whole CHUNK more.
    first = min(need + 1, CHUNK)
    fetched = await store.points([s.id for s in series], lo, hi, descending=descending, limit=first)
    feeds = {s.id: _Feed(s, fetched.get(s.id, []), first) for s in series}
    sign = -1 if descending else 1
    heap = [((sign * f.buffer[0].t, sign * f.buffer[0].rid), sid) for sid, f in feeds.items() if f.buffer]
    heapq.heapify(heap)
    rows: list[_Row] = []
    current: _Row | None = None
    while heap:
        _, sid = heapq.heappop(heap)
        feed = feeds[sid]
        point = feed.buffer[feed.position]
        feed.position += 1
        if feed.position == len(feed.buffer) and not feed.exhausted:
            feed.buffer = await store.more_points(sid, lo, hi, descending=descending, limit=CHUNK,
                                                  after=(point.t, point.rid))
            feed.position = 0
            feed.exhausted = len(feed.buffer) < CHUNK
        if feed.position < len(feed.buffer):
            head = feed.buffer[feed.position]
            heapq.heappush(heap, ((sign * head.t, sign * head.rid), sid))
        if current is None or current.rid != point.rid:
            if current is not None and (accept is None or accept(current)):
                rows.append(current)
                if len(rows) >= need:
                    return rows
            current = _Row(point.t, point.rid, feed.series.entity, {})
        current.values[feed.series.attr] = decode(feed.series.attr_type, point.num, point.txt)
    if current is not None and (accept is None or accept(current)):
        rows.append(current)
    return rows


async def _geo_filter(store: HistoryStore, query: Query, series: list[Series]) -> Callable[[_Row], bool]:
    """Whether a row's entity was where the geo-query asks, at the row's time: its
    location is the last value of its geo attribute (``location`` if it has several)
    at or before the row, so that attributes notified without the location are judged
    by where the entity last was."""
    assert query.geo is not None
    geo = query.geo
    entities = {s.entity for s in series}
    candidates = await store.find_series(SeriesFilter(query.tenant, query.scopes, query.entity_ids,
                                                      query.entity_types, None))
    chosen: dict[Entity, list[Series]] = {}
    for s in candidates:
        if s.entity in entities and s.attr_type in GEO_TYPES:
            chosen.setdefault(s.entity, []).append(s)
    timelines: dict[Entity, tuple[list[tuple[int, int]], list[bool]]] = {}
    for entity, geo_series in chosen.items():
        name = LOCATION if any(s.attr == LOCATION for s in geo_series) else min(s.attr for s in geo_series)
        wanted = [s for s in geo_series if s.attr == name]
        fetched = await store.points([s.id for s in wanted], MIN_MS, query.hi, descending=False, limit=2**31 - 1)
        moments = sorted(
            ((p.t, p.rid), geo.matches(_as_location(location(s.attr_type, p.txt))))
            for s in wanted for p in fetched.get(s.id, [])
        )
        timelines[entity] = ([m[0] for m in moments], [m[1] for m in moments])

    def accept(row: _Row) -> bool:
        timeline = timelines.get(row.entity)
        if timeline is None:
            return geo.matches(None)
        keys, verdicts = timeline
        at = bisect.bisect_right(keys, (row.t, row.rid)) - 1
        return verdicts[at] if at >= 0 else geo.matches(None)

    return accept


def _as_location(geometry: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if geometry is None else {"attr": LOCATION, "geometry": geometry}


# -- aggregates ------------------------------------------------------------------------------


def _value(method: str, partial: Partial) -> Any:
    if method == "count":
        return partial.cnt
    if method == "sum":
        return partial.total
    if method == "avg":
        return None if partial.total is None else partial.total / partial.cnt
    return partial.low if method == "min" else partial.high


async def partials(store: HistoryStore, ids: Sequence[int], lo: int, hi: int,
                   period: str | None) -> list[tuple[int, int | None, Partial]]:
    """(series, bucket start or None, aggregates) of the values in [lo, hi]."""
    if period in ("second", "minute"):
        return [(s, slot, p) for s, slot, p in await store.aggregate_raw(ids, lo, hi, FIXED[period])]
    first, end = whole(lo, hi, HOUR)
    if first >= end:
        pieces = await store.aggregate_raw(ids, lo, hi, HOUR)
    else:
        hours = [(first, end)]
        pieces = []
        if period != "hour":
            first_day, end_day = whole(lo, hi, DAY)
            if first_day < end_day:
                pieces += await store.aggregate_daily(ids, first_day, end_day)
                hours = [(first, first_day), (end_day, end)]
        for start, stop in hours:
            if start < stop:
                pieces += await store.aggregate_hourly(ids, start, stop)
        if lo < first:
            pieces += await store.aggregate_raw(ids, lo, first - 1, HOUR)
        if end <= hi and end != MAX_MS:
            pieces += await store.aggregate_raw(ids, end, hi, HOUR)
    return [(s, None if period is None else bucket(start, period), p) for s, start, p in pieces]


async def _partials_of(store: HistoryStore, query: Query,
                       series: list[Series]) -> list[tuple[Entity, str, int | None, Partial]]:
    """(entity, attribute, bucket, aggregates): from the roll-ups and raw values, or, with
    a geo-query, from the raw rows it keeps (the location is a property of each row)."""
    if query.geo is None:
        by_id = {s.id: s for s in series}
        return [(by_id[sid].entity, by_id[sid].attr, slot, p)
                for sid, slot, p in await partials(store, list(by_id), query.lo, query.hi, query.period)]
    accept = await _geo_filter(store, query, series)
    rows = await _merged_rows(store, series, query.lo, query.hi, False, 2**62, accept)
    numeric = {s.attr for s in series if s.attr_type in NUMERIC}
    found = []
    for row in rows:
        slot = None if query.period is None else bucket(row.t, query.period)
        for attr, value in row.values.items():
            if value is None:
                continue
            number = float(value) if attr in numeric and not isinstance(value, bool) else None
            found.append((row.entity, attr, slot, Partial(1, number, number, number)))
    return found


async def _aggregates(store: HistoryStore, query: Query, series: list[Series]) -> Answer:
    assert query.method is not None
    usable = series if query.method == "count" else [s for s in series if s.attr_type in NUMERIC]
    if not usable:
        raise NotFound(f"AggrMethod cannot be applied: {query.method} needs numeric values")
    merged: dict[tuple[Entity, int | None], dict[str, Partial]] = {}
    for entity, attr, slot, partial in await _partials_of(store, query, usable):
        cell = merged.setdefault((entity, slot), {})
        cell[attr] = merge(cell[attr], partial) if attr in cell else partial
    rows = sorted(
        ((slot if slot is not None else MIN_MS, entity), {a: _value(query.method, p) for a, p in cells.items()
                                                          if p.cnt > 0})
        for (entity, slot), cells in merged.items()
    )
    rows = [row for row in rows if row[1]]
    if query.last_n is not None:
        rows = rows[max(0, len(rows) - query.offset - query.count):max(0, len(rows) - query.offset)]
    else:
        rows = rows[query.offset:query.offset + query.count]
    if not rows:
        raise NotFound()
    attrs = _attr_order(query, usable)
    blocks: dict[Entity, Block] = {}
    for (slot, entity), values in rows:
        block = blocks.setdefault(entity, Block(entity[0], entity[1], [], {a: [] for a in attrs}))
        block.index.append(None if query.period is None else slot)
        for attr in attrs:
            if attr not in values:
                block.missing.setdefault(attr, set()).add(len(block.values[attr]))
            block.values[attr].append(values.get(attr))
    for block in blocks.values():
        block.values = {a: column for a, column in block.values.items() if len(block.missing.get(a, ())) < len(column)}
    return Answer([blocks[e] for e in sorted(blocks)], attrs)


# -- entity lists, last values, deletes --------------------------------------------------------


async def entity_list(store: HistoryStore, query: Query) -> list[tuple[str, str, int]]:
    """(type, id, last time index) of the entities with values in the range."""
    series = await select(store, query)
    if query.lo == MIN_MS and query.hi == MAX_MS:
        last = {row.series: row.t for row in await store.latest([s.id for s in series])}
    else:
        last = await store.last_in_range([s.id for s in series], query.lo, query.hi)
    newest: dict[Entity, int] = {}
    for s in series:
        t = last.get(s.id)
        if t is not None and t > newest.get(s.entity, MIN_MS):
            newest[s.entity] = t
    listed = [(e[0], e[1], t) for e, t in sorted(newest.items())]
    listed = listed[query.offset:query.offset + query.limit]
    if not listed:
        raise NotFound()
    return listed


@dataclass(slots=True)
class LastValue:
    attr: str
    attr_type: str
    value: Any
    t: int
    seen: int


async def last_values(store: HistoryStore, query: Query) -> list[tuple[Entity, list[LastValue]]]:
    """Per entity, the last value of each attribute and when it was last notified."""
    series = await select(store, query)
    by_id = {s.id: s for s in series}
    best: dict[tuple[Entity, str], LastValue] = {}
    for row in await store.latest(list(by_id)):
        s = by_id[row.series]
        value = LastValue(s.attr, s.attr_type, decode(s.attr_type, row.num, row.txt), row.t, row.seen)
        old = best.get((s.entity, s.attr))
        if old is None or (value.t, value.seen) > (old.t, old.seen):
            best[(s.entity, s.attr)] = value
    grouped: dict[Entity, list[LastValue]] = {}
    order = {a: i for i, a in enumerate(query.attrs or ())}
    for (entity, attr), value in sorted(best.items(), key=lambda item: (item[0][0], order.get(item[0][1], len(order)),
                                                                         item[0][1])):
        grouped.setdefault(entity, []).append(value)
    return sorted(grouped.items())[query.offset:query.offset + query.limit]


async def delete(store: HistoryStore, query: Query) -> int:
    """Delete the values the query covers; NotFound when there were none."""
    series = await select(store, query)
    _check_one_entity(query, series)
    deleted = await store.delete([s.id for s in series], query.lo, query.hi) if series else 0
    if deleted == 0:
        raise NotFound()
    return deleted
