"""Each privacy transform as a pure function of one value.

The transforms fail closed: a value a transform cannot read (a text under ``noise``, a
number under a location precision) comes out as ``None``, never unchanged, because a
policy that names an attribute means that attribute must not leave as it is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import random
from datetime import datetime, timezone
from decimal import ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from typing import Any

from shapely.geometry import shape  # type: ignore[import-untyped]

from . import geo
from .periods import Period

PREFIX = "pz:"


# -- pseudonyms ------------------------------------------------------------------------------


def pseudonymize(value: Any, key: bytes, consumer: str) -> str:
    """``pz:`` and 24 base32 characters of HMAC-SHA256(key, consumer NUL value).

    The consumer is in the message so that two consumers get different pseudonyms for one
    id and cannot join what they were given; the same (key, consumer) always gives the
    same pseudonym, so one consumer can still follow an entity and its references.
    """
    text = value if isinstance(value, str) else repr(value)
    digest = hmac.new(key, f"{consumer}\x00{text}".encode(), hashlib.sha256).digest()
    out = PREFIX + base64.b32encode(digest[:15]).decode().lower()
    # 120 bits make a fixed point unthinkable; the check makes "never the input" a fact.
    return out if out != text else PREFIX + out


# -- generalization --------------------------------------------------------------------------


def _point_text(text: str) -> tuple[float, float] | None:
    parts = text.split(",")
    if len(parts) != 2:
        return None
    try:
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


def location_point(value: Any) -> tuple[float, float] | None:
    """(lat, lon) of an NGSI location: ``"lat,lon"``, a list of them (``geo:line``,
    ``geo:box``, ``geo:polygon``: the mean of the distinct vertices), a GeoJSON geometry
    or Feature (its centroid); None for anything else."""
    if isinstance(value, str):
        return _point_text(value)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        points = [_point_text(v) for v in value]
        if any(p is None for p in points):
            return None
        distinct = list(dict.fromkeys(p for p in points if p is not None))
        return sum(p[0] for p in distinct) / len(distinct), sum(p[1] for p in distinct) / len(distinct)
    if isinstance(value, dict):
        if value.get("type") == "Feature":
            return location_point(value.get("geometry"))
        try:
            geometry = shape(value)
            if geometry.is_empty:
                return None
            point = geometry.centroid
        except Exception:  # shapely raises several types for malformed GeoJSON
            return None
        lat, lon = float(point.y), float(point.x)
        if not (-90 <= lat <= 90 and -180 <= lon <= 180) or math.isnan(lat) or math.isnan(lon):
            return None
        return lat, lon
    return None


def _render_point(value: Any, lat: float, lon: float) -> Any:
    """The point in the value's own notation: text stays text, GeoJSON becomes a Point."""
    if isinstance(value, (str, list)):
        return f"{lat},{lon}"
    point = {"type": "Point", "coordinates": [lon, lat]}
    if isinstance(value, dict) and value.get("type") == "Feature":
        return {"type": "Feature", "geometry": point, "properties": {}}
    return point


def generalize_geohash(value: Any, precision: int) -> Any:
    """The centre of the geohash cell of the location (None when not a location)."""
    point = location_point(value)
    if point is None:
        return None
    lat, lon = geo.centre(geo.geohash_bounds(geo.geohash(point[0], point[1], precision)))
    return _render_point(value, lat, lon)


def generalize_grid(value: Any, metres: float) -> Any:
    """The centre of the grid cell of ``metres`` of the location (None when not one)."""
    point = location_point(value)
    if point is None:
        return None
    lat, lon = geo.centre(geo.grid_cell(point[0], point[1], metres))
    return _render_point(value, lat, lon)


def parse_instant(value: Any) -> datetime | None:
    """An ISO 8601 date-time (``Z``, an offset, or none: UTC, as Orion reads it)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        return None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=timezone.utc)


def generalize_period(value: Any, period: Period) -> Any:
    """The start of the period holding the instant, in UTC, written as the input was
    (``Z`` or ``+00:00`` or no offset; milliseconds if it had a fraction)."""
    instant = parse_instant(value)
    if instant is None:
        return None
    start = period.floor(instant)
    text = start.strftime("%Y-%m-%dT%H:%M:%S")
    if "." in value[10:]:
        text += ".000"
    if value.endswith(("Z", "z")):
        return text + "Z"
    if parse_instant(value + "Z") is None:  # it had an offset of its own
        return text + "+00:00"
    return text


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def generalize_bucket(value: Any, size: float) -> Any:
    """The lower bound of the bucket of ``size`` that holds the number.

    Decimal arithmetic on the numbers as written, so that 0.3 with buckets of 0.1 is in
    [0.3, 0.4), not [0.2, 0.3) as binary floats would have it. Integers stay integers.
    """
    if not _number(value):
        return None
    try:
        with localcontext(prec=800):  # exact for any float quotient: no rounding across a bound
            exact, step = Decimal(repr(value)), Decimal(repr(size))
            lower = (exact / step).to_integral_value(rounding=ROUND_FLOOR) * step
    except InvalidOperation:
        return None
    if isinstance(value, int) and isinstance(size, int):
        return int(lower)
    return float(lower)


# -- noise -----------------------------------------------------------------------------------


def laplace(scale: float, rng: random.Random) -> float:
    """One draw of Laplace(0, scale): the difference of two exponentials of mean scale."""
    return scale * (rng.expovariate(1.0) - rng.expovariate(1.0))


def noise(value: Any, epsilon: float, sensitivity: float, rng: random.Random) -> Any:
    """The Laplace mechanism: value + Laplace(sensitivity / epsilon); a float. Not a
    number: None."""
    if not _number(value):
        return None
    return float(value) + laplace(sensitivity / epsilon, rng)
