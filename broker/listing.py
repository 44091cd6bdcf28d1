"""Entity queries: index-served selection in the store, then q / mq / geo, order and paging here.

How it scales: the store narrows by tenant, id, idPattern, type, typePattern and service
path with its indexes. ``q``, ``mq`` and geo filters are evaluated in Python on what is
left, so their cost grows with the number of entities the index-served filters let
through. Without residual filters and with the default order, paging runs in the store
(LIMIT/OFFSET) and counting is a SQL count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cmp_to_key
from typing import Any

from ngsi.errors import BadRequest
from ngsi.ordering import compare as compare_values
from ngsi.render import Projection

from .entities import EntityService
from .store import Selector

Entity = dict[str, Any]
MAX_LIMIT = 1000
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
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit():
        raise BadRequest(f"Bad pagination limit: /{raw}/ [must be a decimal number]")
    value = int(raw)
    if value > MAX_LIMIT:
        raise BadRequest(f"Bad pagination limit: /{value}/ [max: {MAX_LIMIT}]")
    return value


def parse_offset(raw: str | None) -> int:
    if raw is None:
        return 0
    if not raw.isdigit():
        raise BadRequest(f"Bad pagination offset: /{raw}/ [must be a decimal number]")
    return int(raw)


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


async def run(service: EntityService, tenant: str, query: EntityQuery, *, count: bool = False) -> tuple[list[Entity], int]:
    """The page of entities a query asks for, and the total count of matches."""
    simple = not query.filters and query.geo is None and not query.order and len(query.selectors) == 1
    if simple:
        selector = query.selectors[0]
        page = await service.find(tenant, selector, limit=query.limit, offset=query.offset) if query.limit else []
        total = await service.store.count(tenant, selector) if count else 0
        return page, total
    matched: list[Entity] = []
    seen: set[tuple[str, str, str]] = set()
    for selector in query.selectors:
        for entity in await service.find(tenant, selector):
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
    return matched[query.offset : query.offset + query.limit], len(matched)
