"""Entity queries: index-served selection in the store, then q / mq / geo, order and paging here.

How it scales: the store narrows by tenant, id, idPattern, type, typePattern and service
path with its indexes, and by one item of ``q`` handed over as a ``ValueHint`` (an
equality, list, range or comparison on a top-level attribute value): a store with
an index for that attribute reads only the candidates (broker/store/sqlquery.py). ``q``,
``mq`` and geo filters are then evaluated exactly, in Python, on what is left, so the
hint never decides a match. Without residual filters and with the default order, paging
runs in the store (by id from a cached id list for large offsets on SQLite) and counting
is the store's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cmp_to_key
from typing import Any

import dataclasses
import math

from ngsi import query as ql
from ngsi.context import RequestContext
from ngsi.errors import BadRequest
from ngsi.numbers import parse_uint
from ngsi.ordering import compare as compare_values
from ngsi.render import Projection

from .entities import EntityService, released
from .store import Selector
from .store.base import ValueHint

Entity = dict[str, Any]
MAX_LIMIT = 1000
MAX_OFFSET = 2**62  # larger offsets are read as this one: past the end of any result
DEFAULT_LIMIT = 20


@dataclass
class EntityQuery:
    selectors: list[Selector]
    filters: list[Any] = field(default_factory=list)  # objects with matches(entity)
    geo: Any = None  # ngsi.geo.GeoQuery
    order: list[tuple[str, bool]] = field(default_factory=list)  # (key, descending)
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    projection: Projection = Projection()


def parse_limit(raw: str | None) -> int:
    """``limit``: ASCII digits only (``str.isdigit`` would let "²" through to a 500), at
    most MAX_LIMIT; a numeral of any length is read without converting it in full."""
    if raw is None:
        return DEFAULT_LIMIT
    value = parse_uint(raw, cap=MAX_LIMIT + 1)
    if value is None:
        raise BadRequest(f"Bad pagination limit: /{raw}/ [must be a decimal number]")
    if value > MAX_LIMIT:
        raise BadRequest(f"Bad pagination limit: /{raw.lstrip('0')}/ [max: {MAX_LIMIT}]")
    return value


def parse_offset(raw: str | None) -> int:
    """``offset``: ASCII digits only; past MAX_OFFSET (beyond any result, and what a
    store's 64-bit OFFSET takes) it is MAX_OFFSET: an empty page, as any offset past the
    end."""
    if raw is None:
        return 0
    value = parse_uint(raw, cap=MAX_OFFSET)
    if value is None:
        raise BadRequest(f"Bad pagination offset: /{raw}/ [must be a decimal number]")
    return value


def parse_order(raw: str | None) -> list[tuple[str, bool]]:
    if raw is None or raw == "":
        return []
    order: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for token in raw.split(","):
        descending = token.startswith("!")
        key = token[1:] if descending else token
        if key in seen:
            raise BadRequest("duplicate orderBy token detected")
        seen.add(key)
        order.append((key, descending))
    return order


def _sort_key_value(entity: Entity, key: str) -> Any:
    if key == "id":
        return entity["id"]
    if key == "type":
        return entity["type"]
    if key == "servicePath":
        return entity.get("servicePath")
    if key == "dateCreated":
        return entity.get("creDate")
    if key == "dateModified":
        return entity.get("modDate")
    attr = entity["attrs"].get(key)
    if attr is None:
        return None
    return attr.get("value")


def sort_entities(entities: list[Entity], order: list[tuple[str, bool]], geo: Any = None) -> list[Entity]:
    if not order:  # Orion keeps creation order, even for near; geo:distance must be asked for
        return entities

    def compare(a: Entity, b: Entity) -> int:
        for key, descending in order:
            if key == "geo:distance" and geo is not None:
                da, db = geo.distance(a.get("location")), geo.distance(b.get("location"))
                result = (da > db) - (da < db)
            else:
                result = compare_values(_sort_key_value(a, key), _sort_key_value(b, key))
            if result:
                return -result if descending else result
        return 0

    return sorted(entities, key=cmp_to_key(compare))


_KINDS = {ql.NUM: "number", ql.DATE: "number", ql.STR: "string"}
_MAX_POINTS = 100


def _bound(value: ql.Value, kind: str) -> Any:
    """The value of a bound of ``kind``, or None when it can't be one (NaN, infinity...)."""
    if _KINDS.get(value.kind) != kind:
        return None
    if kind == "number" and not math.isfinite(value.value):
        return None
    return value.value


def _item_hint(item: ql.Item) -> ValueHint | None:
    """A ValueHint keeping every entity ``item`` matches, for the items a store can narrow by."""
    t = item.target
    if t.attr is None or t.md is not None or t.builtin is not None or t.path:
        return None
    operand = item.operand
    if item.op == ql.EQ:
        if isinstance(operand, ql.Value):
            kind = _KINDS.get(operand.kind)
            x = None if kind is None else _bound(operand, kind)
            return None if x is None else ValueHint(t.attr, kind, ((x, x),))  # type: ignore[arg-type]
        if isinstance(operand, ql.ValueList) and len(operand.items) <= _MAX_POINTS:
            kind = _KINDS.get(operand.items[0].kind)
            if kind is None:
                return None
            points = [_bound(v, kind) for v in operand.items]
            if any(x is None for x in points):  # mixed kinds, null, non-finite
                return None
            return ValueHint(t.attr, kind, tuple((x, x) for x in points))
        if isinstance(operand, ql.Range):
            kind = _KINDS.get(operand.lo.kind)
            lo = None if kind is None else _bound(operand.lo, kind)
            hi = None if kind is None else _bound(operand.hi, kind)
            if lo is None or hi is None:
                return None
            return ValueHint(t.attr, kind, ((lo, hi),))  # type: ignore[arg-type]
        return None
    if item.op in (ql.GT, ql.GE, ql.LT, ql.LE) and isinstance(operand, ql.Value):
        kind = _KINDS.get(operand.kind)
        x = None if kind is None else _bound(operand, kind)
        if x is None:
            return None
        # Inclusive even for > and <: the exact test is the broker's.
        interval = (x, None) if item.op in (ql.GT, ql.GE) else (None, x)
        return ValueHint(t.attr, kind, (interval,))  # type: ignore[arg-type]
    return None


def hint_for(filters: list[Any]) -> ValueHint | None:
    """The most selective hint of the ``q`` filters: equalities first, then ranges, then
    one-sided comparisons."""
    best: tuple[int, ValueHint] | None = None
    for f in filters:
        if not isinstance(f, ql.Query) or f.kind != "q":
            continue
        for item in f.items:
            hint = _item_hint(item)
            if hint is None:
                continue
            rank = 0 if all(lo == hi for lo, hi in hint.intervals) else 1 if None not in hint.intervals[0] else 2
            if best is None or rank < best[0]:
                best = (rank, hint)
    return None if best is None else best[1]


async def run(
    service: EntityService, ctx: RequestContext, query: EntityQuery, *, count: bool = False
) -> tuple[list[Entity], int]:
    """The page of entities a query asks for, and the total count of matches."""
    simple = not query.filters and query.geo is None and not query.order and len(query.selectors) == 1
    if simple:
        selector = query.selectors[0]
        page = await service.find(ctx, selector, limit=query.limit, offset=query.offset) if query.limit else []
        total = await service.count(ctx, selector) if count else 0
        return _released(ctx, page), total
    matched: list[Entity] = []
    seen: set[tuple[str, str, str]] = set()
    hint = hint_for(query.filters)
    for selector in query.selectors:
        if hint is not None and selector.ids is None:
            selector = dataclasses.replace(selector, hint=hint)
        for entity in await service.find(ctx, selector):
            key = (entity["id"], entity["type"], entity["servicePath"])
            if key in seen:
                continue
            if all(f.matches(entity) for f in query.filters) and (
                query.geo is None or query.geo.matches(entity.get("location"))
            ):
                seen.add(key)
                matched.append(entity)
    if len(query.selectors) > 1:
        matched.sort(key=lambda e: e.get("creDate", 0))
    matched = sort_entities(matched, query.order, query.geo)
    return _released(ctx, matched[query.offset : query.offset + query.limit]), len(matched)


def _released(ctx: RequestContext, page: list[Entity]) -> list[Entity]:
    """The page as this caller may have it (``ngsi/release.py``); filters, geo and order
    ran on the stored values before."""
    if ctx.release is None:
        return page
    return [released(ctx, entity) for entity in page]
