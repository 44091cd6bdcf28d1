"""``GET /discovery/sensors``'s parameters and answer (pure): query string -> ``Query``,
``Hit`` -> JSON.

Parameters: ``q`` (the text, required), ``near=lat,lon,metres`` (or Orion's
``georel=near;maxDistance:M&geometry=point&coords=lat,lon``), ``within=lat,lon;lat,lon;...``
(a polygon, at least three corners; Orion's ``georel=coveredBy&geometry=polygon`` too),
``seen=MINUTES`` (seen within), ``tenant`` (repeated or a comma list; else the
``Fiware-Service`` header; else every tenant), ``limit`` (1-1000, 20 by default). Anything
else wrong is a ``BadParam`` the route answers 400, in Orion's shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ngsi.dates import format_datetime

from .model import Hit, Query

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
MAX_TEXT = 256
MAX_CORNERS = 1000


class BadParam(ValueError):
    """A parameter the route cannot read: its text is the 400's description."""


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadParam(f"{what}: not a number: {text[:40]!r}") from None
    if not math.isfinite(value):
        raise BadParam(f"{what}: not a finite number: {text[:40]!r}")
    return value


def _point(text: str, what: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise BadParam(f"{what}: a point is lat,lon: {text[:40]!r}")
    lat, lon = _number(parts[0], what), _number(parts[1], what)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise BadParam(f"{what}: latitude within ±90 and longitude within ±180: {text[:40]!r}")
    return lat, lon


def parse_near(text: str) -> tuple[float, float, float]:
    """``lat,lon,metres``."""
    parts = text.split(",")
    if len(parts) != 3:
        raise BadParam(f"near: lat,lon,metres: {text[:40]!r}")
    lat, lon = _point(",".join(parts[:2]), "near")
    metres = _number(parts[2], "near")
    if metres <= 0:
        raise BadParam("near: the distance must be positive")
    return lat, lon, metres


def parse_polygon(text: str, what: str = "within") -> tuple[tuple[float, float], ...]:
    """``lat,lon;lat,lon;...``: at least three corners (a closing repeat of the first is fine)."""
    corners = [_point(part, what) for part in text.split(";") if part.strip()]
    if len(corners) > 1 and corners[0] == corners[-1]:
        corners.pop()
    if not 3 <= len(corners) <= MAX_CORNERS:
        raise BadParam(f"{what}: a polygon of 3 to {MAX_CORNERS} corners lat,lon;lat,lon;...")
    return tuple(corners)


Near = tuple[float, float, float]
Polygon = tuple[tuple[float, float], ...]


def _orion_geo(params: Mapping[str, str]) -> tuple[Near | None, Polygon | None]:
    """Orion's ``georel``/``geometry``/``coords``: near a point, or covered by a polygon."""
    georel, geometry, coords = params.get("georel"), params.get("geometry"), params.get("coords")
    if georel is None and geometry is None and coords is None:
        return None, None
    if not georel or not geometry or not coords:
        raise BadParam("georel, geometry and coords go together")
    rel, *modifiers = georel.split(";")
    if rel == "near" and geometry == "point":
        distance = [m.split(":", 1)[1] for m in modifiers if m.startswith("maxDistance:")]
        if len(distance) != 1:
            raise BadParam("georel=near needs maxDistance:M")
        lat, lon = _point(coords, "coords")
        metres = _number(distance[0], "maxDistance")
        if metres <= 0:
            raise BadParam("maxDistance must be positive")
        return (lat, lon, metres), None
    if rel in ("coveredBy", "intersects") and geometry == "polygon":
        return None, parse_polygon(coords, "coords")
    raise BadParam("georel: near with a point, or coveredBy with a polygon")


def parse_query(params: Sequence[tuple[str, str]], header_tenant: str | None, now: float,
                viewer: str | None = None) -> Query:
    """The query the request's parameters (as a list of pairs: ``tenant`` may repeat) ask,
    for ``viewer`` (``Query.viewer``)."""
    single: dict[str, str] = {}
    tenants: list[str] = []
    for name, value in params:
        if name == "tenant":
            tenants += [t.strip() for t in value.split(",") if t.strip()]
        elif name in single:
            raise BadParam(f"{name} given twice")
        else:
            single[name] = value
    unknown = set(single) - {"q", "near", "within", "seen", "limit", "georel", "geometry", "coords"}
    if unknown:
        raise BadParam(f"unknown parameter: {sorted(unknown)[0][:40]}")
    text = single.get("q", "")
    if len(text) > MAX_TEXT:
        raise BadParam(f"q: at most {MAX_TEXT} characters")
    near = parse_near(single["near"]) if "near" in single else None
    within = parse_polygon(single["within"]) if "within" in single else None
    orion_near, orion_within = _orion_geo(single)
    if (near and orion_near) or (within and orion_within):
        raise BadParam("near or within, and georel: one of them")
    seen = None
    if "seen" in single:
        seen = _number(single["seen"], "seen")
        if seen <= 0:
            raise BadParam("seen: minutes, positive")
    limit = DEFAULT_LIMIT
    if "limit" in single:
        raw = single["limit"].lstrip("0") or "0"
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 4 or not 1 <= int(raw) <= MAX_LIMIT:
            raise BadParam(f"limit: an integer from 1 to {MAX_LIMIT}")
        limit = int(raw)
    if not tenants and header_tenant is not None:
        tenants = [header_tenant.lower()]  # Orion keeps tenants lower-case
    if not text.strip():
        raise BadParam("q: what to look for (tempreature, soil moisture...)")
    return Query(
        text, near=near or orion_near, within=within or orion_within,
        seen_within=None if seen is None else seen * 60.0, now=now,
        tenants=frozenset(tenants) if tenants else None, limit=limit, viewer=viewer,
    )


def render(hit: Hit) -> dict[str, Any]:
    """One hit as the route answers it."""
    s = hit.sensor
    return {
        "tenant": s.tenant, "servicePath": s.service_path, "entityId": s.entity_id, "entityType": s.entity_type,
        "attr": s.attr, "unit": s.unit,
        "location": None if s.lat is None or s.lon is None else {"lat": s.lat, "lon": s.lon},
        "seen": None if s.seen is None else format_datetime(s.seen), "owner": s.owner, "source": s.source,
        "score": hit.score, "reasons": list(hit.reasons),
    }
