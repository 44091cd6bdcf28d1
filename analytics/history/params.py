"""Query parameters of the history API, read into a :class:`Query` (pure).

QuantumLeap 1.0's parameters (quantumleap.yml): ``type``, ``id``, ``idPattern``,
``attrs``, ``fromDate``, ``toDate``, ``lastN``, ``limit``, ``offset``, ``aggrMethod``,
``aggrPeriod``, ``aggrScope``, ``options``, ``georel``/``geometry``/``coords``; the route's
path gives the entity id, type or attribute instead of the parameter. Every value a
client can send either reads or is a 400 :class:`BadRequest` naming the parameter:
numbers through ``ngsi.numbers`` (no ``int()`` of a client's text), regular expressions
through RE2 (``ngsi.regex``), geometries through ``ngsi.geo``, service paths through
``ngsi.servicepath``. Unknown parameters are ignored, as QuantumLeap ignores them (FiLiP
sends ``aggr_scope``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ngsi.errors import NGSIError
from ngsi.geo import GeoQuery, parse_geo_query
from ngsi.numbers import parse_uint
from ngsi.regex import compile_pattern
from ngsi.servicepath import Scope, parse_scopes

from .errors import BadRequest
from .instants import MAX_MS, MIN_MS, PERIODS, parse_instant

METHODS: Final = ("count", "sum", "avg", "min", "max")
SCOPES: Final = ("entity", "global")
OPTIONS: Final = frozenset({"keyValues", "values"})  # accepted and ignored, as by QuantumLeap
DEFAULT_LIMIT: Final = 10000
MAX_COUNT: Final = 2**31 - 1  # lastN and offset saturate here: no result is that long


@dataclass(frozen=True, slots=True)
class Query:
    """One read (or delete) of the history, as the engine runs it."""

    tenant: str
    scopes: tuple[Scope, ...] = (("/", True),)
    entity_ids: tuple[str, ...] | None = None
    entity_types: tuple[str, ...] | None = None
    id_pattern: str | None = None
    attrs: tuple[str, ...] | None = None
    lo: int = MIN_MS  # inclusive bounds of the time index
    hi: int = MAX_MS
    last_n: int | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    method: str | None = None
    period: str | None = None
    geo: GeoQuery | None = None
    one_entity: bool = False  # /v2/entities/{id}...: an id of several types is ambiguous
    # The caller's projection (the PEP's decision, ``RequestContext.attrs_visible`` /
    # ``attrs_hidden``): the attributes a read may show. None / empty: every attribute.
    visible: frozenset[str] | None = None
    hidden: frozenset[str] = frozenset()

    def shows(self, attr: str) -> bool:
        """May the answer hold ``attr``? (The projection; always true without one.)"""
        return (self.visible is None or attr in self.visible) and attr not in self.hidden

    @property
    def count(self) -> int:
        """How many rows (or buckets) the answer holds at most."""
        return self.limit if self.last_n is None else min(self.last_n, self.limit)


def _names(raw: str | None) -> tuple[str, ...] | None:
    """A comma-separated list (blanks around items and empty items dropped); None when absent or empty."""
    if raw is None:
        return None
    items = tuple(dict.fromkeys(item.strip() for item in raw.split(",") if item.strip()))
    return items or None


def _count(params: Mapping[str, str], name: str, low: int) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    value = parse_uint(raw.strip(), cap=MAX_COUNT)
    if value is None or value < low:
        raise BadRequest(f"{name} must be an integer of at least {low}, not {raw[:40]!r}")
    return value


def _instant(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return None
    value = parse_instant(raw)
    if value is None:
        raise BadRequest(f"{name} must be an ISO 8601 date and time (e.g. 2018-01-05T15:44:34), not {raw[:40]!r}")
    return value


def _choice(params: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}, not {raw[:40]!r}")
    return raw


def parse_scopes_header(header: str | None) -> tuple[Scope, ...]:
    """The service paths a request covers (Orion's rules: absent is every path, ``/a/#``
    a subtree, a comma list several)."""
    try:
        return parse_scopes(header)
    except NGSIError as exc:
        raise BadRequest(f"Fiware-ServicePath: {exc.description}") from None


def parse_query(
    params: Mapping[str, str],
    *,
    tenant: str,
    service_path: str | None = None,
    entity_id: str | None = None,
    entity_type: str | None = None,
    attr: str | None = None,
    max_limit: int = DEFAULT_LIMIT,
    visible: frozenset[str] | None = None,
    hidden: frozenset[str] = frozenset(),
) -> Query:
    """The query of a request: its parameters, its path's id/type/attribute, its headers,
    and the projection its authorization came with (``visible``, ``hidden``)."""
    ids = (entity_id,) if entity_id is not None else _names(params.get("id"))
    types = (entity_type,) if entity_type is not None else _names(params.get("type"))
    attrs = (attr,) if attr is not None else _names(params.get("attrs"))
    pattern = params.get("idPattern")
    if pattern is not None:
        if ids is not None:
            raise BadRequest("idPattern is incompatible with id")
        if compile_pattern(pattern) is None:
            raise BadRequest(f"idPattern is not a valid regular expression: {pattern[:40]!r}")
    lo, hi = _instant(params, "fromDate"), _instant(params, "toDate")
    last_n = _count(params, "lastN", 1)
    limit = _count(params, "limit", 1)
    offset = _count(params, "offset", 0)
    method = _choice(params, "aggrMethod", METHODS)
    period = _choice(params, "aggrPeriod", PERIODS)
    if period is not None and method is None:
        raise BadRequest("aggrPeriod needs an aggrMethod")
    if _choice(params, "aggrScope", SCOPES) == "global":
        raise BadRequest("aggrScope=global is not supported: aggregates are computed per entity")
    options = _names(params.get("options")) or ()
    unknown = [o for o in options if o not in OPTIONS]
    if unknown:
        raise BadRequest(f"options must be among {', '.join(sorted(OPTIONS))}, not {unknown[0][:40]!r}")
    try:
        geo = parse_geo_query(params.get("georel"), params.get("geometry"), params.get("coords"))
    except NGSIError as exc:
        raise BadRequest(exc.description) from None
    if geo is not None and geo.georel == "near" and geo.max_distance is None and geo.min_distance is None:
        raise BadRequest("georel=near needs maxDistance or minDistance (near;maxDistance:METRES)")
    return Query(
        tenant=tenant,
        scopes=parse_scopes_header(service_path),
        entity_ids=ids,
        entity_types=types,
        id_pattern=pattern,
        attrs=attrs,
        lo=MIN_MS if lo is None else lo,
        hi=MAX_MS if hi is None else hi,
        last_n=last_n,
        limit=min(limit if limit is not None else max_limit, max_limit),
        offset=offset or 0,
        method=method,
        period=period,
        geo=geo,
        one_entity=entity_id is not None,
        visible=visible,
        hidden=hidden,
    )


def parse_flag(params: Mapping[str, str], name: str) -> bool:
    """A boolean parameter (``dropTable``): true/false in any case, absent is false."""
    raw = params.get(name)
    if raw is None:
        return False
    if raw.strip().lower() not in ("true", "false"):
        raise BadRequest(f"{name} must be true or false, not {raw[:40]!r}")
    return raw.strip().lower() == "true"
