"""Entity locations and geo-queries, the way Orion does them.

Orion gives an entity at most one location: the GeoJSON (lon/lat order) of its one
attribute typed ``geo:point``, ``geo:line``, ``geo:box``, ``geo:polygon`` or ``geo:json``,
unless that attribute carries the metadata ``ignoreType: true`` or a null value. MongoDB
keeps it under a 2dsphere index, and geo-queries (``georel``/``geometry``/``coords``) are
MongoDB geo operators on it. Here the GeoJSON is computed from the attributes, and queries
are evaluated with shapely's planar predicates on lon/lat, which agree with MongoDB's
spherical ones for shapes of city or country size; ``near`` uses great-circle metres with
MongoDB's earth radius, because the cases put entities a few hundred metres either side
of the limit.

Error texts are Orion's. Those the functional tests show are exact; the few marked
"(guess)" are not in any case and are Orion-like wording.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from ngsi.errors import BadRequest, RequestEntityTooLarge

GEO_TYPES = frozenset({"geo:point", "geo:line", "geo:box", "geo:polygon", "geo:json"})
GEORELS = ("near", "coveredBy", "intersects", "disjoint", "equals")
GEOMETRIES = ("point", "line", "polygon", "box")

# MongoDB's kRadiusOfEarthInMeters (geoconstants.h), used by $near on GeoJSON points.
EARTH_RADIUS_M = 6378.1 * 1000

MORE_THAN_ONE_LOCATION = (
    "You cannot use more than one geo location attribute when creating an entity. "
    "Use ignoreType metadata if you want to add additional informative locations."
)
GEOJSON_NOT_OBJECT = "geo:json needs an object or null as value"
# What Orion answers when MongoDB refuses to index a location (#3949).
WRONG_GEOJSON = "Wrong GeoJson"
PARTIAL_GEO_EXPRESSION = "partial geo expression: geometry, georel and coords have to be provided together"

_LOC_PREFIX = "error parsing location attribute: "
_LOC_PREFIX_EXISTING = "error parsing location attribute for existing attribute: "
_NEEDS_ARRAY = "geo:line, geo:box and geo:polygon needs array of strings as value"
_FORMAT_ERROR = "geo coordinates format error [see Orion user manual]: "

_QUERY_PREFIX = {"query": "Invalid query: ", "subscription": "error parsing geo-query fields: "}
# Subscriptions check coords with their own parser and text (1678 geosubscriptions_errors).
_INVALID_COORDS = {"query": "invalid coordinates", "subscription": "invalid point in URI param /coords/"}

# What C's strtod() takes once Orion's wsStrip() has removed surrounding blanks
# (hexadecimal floats aside): "1", "-1.5", ".5", "5.", "1e3", "inf", "nan".
_STRTOD = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)", re.IGNORECASE | re.ASCII
)


class _GeoError(Exception):
    """A location parse error; the caller adds the prefix that depends on the write."""


# ---------------------------------------------------------------------------
# Entity side
# ---------------------------------------------------------------------------


def is_location_attr(attr: dict) -> bool:
    """Whether ``attr`` would be the entity's location: geo-typed, not null, no ignoreType.

    Null is allowed in geo attributes but leaves the entity unlocated (#3533), and
    ``ignoreType: true`` marks extra, informative locations (4032_extra_locs).
    """
    if attr.get("type") not in GEO_TYPES or attr.get("value") is None:
        return False
    ignore = (attr.get("md") or {}).get("ignoreType")
    return not (isinstance(ignore, dict) and ignore.get("value") is True)


def entity_location(attrs: dict, previous: dict | None = None) -> dict | None:
    """The entity's location ``{"attr": name, "geometry": GeoJSON}``, or None when it has none.

    ``attrs`` is the attrs dict after the write; ``previous`` the attrs dict before it (None
    on creation). ``previous`` decides two things Orion derives from the stored entity:

    * which attribute already was the location, so that a second geo attribute is the one
      refused with 413 (1038 errors_geo*: the new one fails even when its value is bad);
    * the text prefix: Orion says "for existing attribute" when the written attribute was
      stored as a geo attribute with a null value, and not when it held a real location
      (3533 null_in_geo_*, 4114 geojson_feature_errors).

    Raises BadRequest for bad values, and RequestEntityTooLarge (413,
    ``NoResourcesAvailable``) for more than one location attribute.
    """
    for attr in attrs.values():
        if attr.get("type") == "geo:json" and not isinstance(attr.get("value"), (dict, type(None))):
            raise BadRequest(GEOJSON_NOT_OBJECT)
    names = [name for name, attr in attrs.items() if is_location_attr(attr)]
    if not names:
        return None
    if previous:
        before = next((n for n, a in previous.items() if is_location_attr(a)), None)
        if before in names:
            names.remove(before)
            names.insert(0, before)
    name = names[0]
    try:
        geometry = _attr_geometry(attrs[name])
    except _GeoError as exc:
        old = (previous or {}).get(name)
        existing = old is not None and old.get("type") in GEO_TYPES and old.get("value") is None
        raise BadRequest((_LOC_PREFIX_EXISTING if existing else _LOC_PREFIX) + str(exc)) from None
    if len(names) > 1:
        raise RequestEntityTooLarge(MORE_THAN_ONE_LOCATION, error="NoResourcesAvailable")
    return {"attr": name, "geometry": geometry}


def _attr_geometry(attr: dict) -> dict:
    """The GeoJSON geometry (lon/lat) of one geo attribute with a non-null value.

    Raises _GeoError with Orion's detail text, or BadRequest("Wrong GeoJson") for a shape
    MongoDB would not index (out-of-range coordinates, broken GeoJSON, invalid polygon).
    """
    kind, value = attr.get("type"), attr.get("value")
    if kind == "geo:point":
        text = value if isinstance(value, str) else ""
        lat, lon = _coords_or_error(text)
        geometry = {"type": "Point", "coordinates": [lon, lat]}
    elif kind == "geo:json":
        geometry = copy.deepcopy(_unwrap_feature(value))
    else:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise _GeoError(_NEEDS_ARRAY)
        points = [_coords_or_error(item) for item in value]
        geometry = _list_geometry(kind, points)
    geojson_shape(geometry)
    return geometry


def _coords_or_error(text: str) -> tuple[float, float]:
    coords = parse_coords(text)
    if coords is None:
        raise _GeoError(_FORMAT_ERROR + text)
    return coords


def _list_geometry(kind: str, points: list[tuple[float, float]]) -> dict:
    """GeoJSON for geo:line, geo:box and geo:polygon, checked as Orion checks them."""
    ring = [[lon, lat] for lat, lon in points]
    if kind == "geo:line":
        if len(points) < 2:
            raise _GeoError("geo:line uses at least 2 coordinates")
        return {"type": "LineString", "coordinates": ring}
    if kind == "geo:box":
        if len(points) != 2:
            raise _GeoError("geo:box uses exactly 2 coordinates")
        (lat1, lon1), (lat2, lon2) = points
        if lat1 == lat2 or lon1 == lon2:
            raise _GeoError("geo:box coordinates are not defining an actual box")
        return box_geojson(min(lat1, lat2), min(lon1, lon2), max(lat1, lat2), max(lon1, lon2))
    if len(points) < 4:
        raise _GeoError("geo:polygon uses at least 4 coordinates")
    if points[0] != points[-1]:
        raise _GeoError("geo:polygon first and last coordinates must match")
    return {"type": "Polygon", "coordinates": [ring]}


def box_geojson(min_lat: float, min_lon: float, max_lat: float, max_lon: float) -> dict:
    """The polygon of a box, one fixed vertex order so that ``equals`` can compare boxes."""
    ring = [[min_lon, min_lat], [max_lon, min_lat], [max_lon, max_lat], [min_lon, max_lat], [min_lon, min_lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def _unwrap_feature(value: dict) -> Any:
    """The geometry of a geo:json value, taken out of a Feature or a one-Feature collection (#4114)."""
    if value.get("type") == "FeatureCollection":
        if "features" not in value:
            raise _GeoError("features field not found in FeatureCollection")
        features = value["features"]
        if not isinstance(features, list):
            raise _GeoError("features in FeatureCollection is not an array")
        if not features:
            raise _GeoError("features in FeatureCollection has 0 items")
        if len(features) > 1:
            raise _GeoError("features in FeatureCollection has more than 1 item")
        value = features[0] if isinstance(features[0], dict) else {}
        return _feature_geometry(value)
    if value.get("type") == "Feature":
        return _feature_geometry(value)
    return value


def _feature_geometry(feature: dict) -> Any:
    if "geometry" not in feature:
        raise _GeoError("geometry in Feature not found")
    if not isinstance(feature["geometry"], dict):
        raise _GeoError("geometry in Feature is not an object")
    return feature["geometry"]


# ---------------------------------------------------------------------------
# GeoJSON checking, as MongoDB's 2dsphere index does when it stores a location
# ---------------------------------------------------------------------------

_DEPTH = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2, "MultiPolygon": 3}


def geojson_shape(geometry: Any) -> BaseGeometry:
    """The shapely shape of a GeoJSON geometry; BadRequest("Wrong GeoJson") when MongoDB would refuse it."""
    try:
        return _shape_of(geometry)
    except (ValueError, TypeError, KeyError, AttributeError, shapely.errors.ShapelyError):
        raise BadRequest(WRONG_GEOJSON) from None


def _shape_of(geometry: Any) -> BaseGeometry:
    if not isinstance(geometry, dict):
        raise ValueError("not an object")
    kind = geometry.get("type")
    # GeometryCollection is "the only GeoJSON type not supported at all" (orion-api.md,
    # "GeoJSON"): Orion fails to store it, so it is refused like any shape MongoDB refuses.
    if kind not in _DEPTH:
        raise ValueError("unknown type")
    coords = _flat_coords(geometry.get("coordinates"), _DEPTH[kind])
    geom = shape({"type": kind, "coordinates": coords})
    if kind in ("LineString", "MultiLineString"):
        lines = [coords] if kind == "LineString" else coords
        if any(len(line) < 2 for line in lines):
            raise ValueError("line with less than 2 points")
    if kind in ("Polygon", "MultiPolygon"):
        polygons = [coords] if kind == "Polygon" else coords
        for rings in polygons:
            if not rings or any(len(ring) < 4 or ring[0] != ring[-1] for ring in rings):
                raise ValueError("ring not closed or too short")
        if not geom.is_valid:
            raise ValueError("invalid polygon")
    return geom


def _flat_coords(coords: Any, depth: int) -> Any:
    """The coordinates as 2D lon/lat lists, checked for type and range."""
    if not isinstance(coords, list):
        raise ValueError("coordinates is not an array")
    if depth == 0:
        if len(coords) < 2 or not all(_is_number(c) for c in coords):
            raise ValueError("bad position")
        lon, lat = float(coords[0]), float(coords[1])
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise ValueError("out of bounds")
        return [lon, lat]
    return [_flat_coords(item, depth - 1) for item in coords]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------------------
# Coordinates
# ---------------------------------------------------------------------------


def parse_coords(text: str) -> tuple[float, float] | None:
    """``"lat, lon"`` as (lat, lon), or None: Orion's string2coords (split at the first comma, strtod both sides)."""
    lat_text, comma, lon_text = text.partition(",")
    if not comma:
        return None
    lat, lon = _strtod(lat_text), _strtod(lon_text)
    if lat is None or lon is None:
        return None
    return lat, lon


def _strtod(text: str) -> float | None:
    text = text.strip(" \t\n\r\f\v")
    if not _STRTOD.fullmatch(text):
        return None
    return float(text)


def haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres on MongoDB's sphere."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


# ---------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------


@dataclass
class GeoQuery:
    """A parsed geo-query; ``coords`` are (lat, lon) pairs as the user gave them."""

    georel: str
    geometry: str
    coords: list[tuple[float, float]]
    max_distance: float | None = None
    min_distance: float | None = None
    geojson: dict = field(init=False)
    shape: BaseGeometry = field(init=False, repr=False)

    def __post_init__(self) -> None:
        lonlat = [[lon, lat] for lat, lon in self.coords]
        if self.geometry == "point":
            self.geojson = {"type": "Point", "coordinates": lonlat[0]}
        elif self.geometry == "line":
            self.geojson = {"type": "LineString", "coordinates": lonlat}
        elif self.geometry == "box":
            (lat1, lon1), (lat2, lon2) = self.coords
            self.geojson = box_geojson(min(lat1, lat2), min(lon1, lon2), max(lat1, lat2), max(lon1, lon2))
        else:
            # Orion hands the ring to MongoDB as given; closing it here spares an error
            # for rings the user forgot to close.
            if lonlat[0] != lonlat[-1]:
                lonlat = lonlat + [lonlat[0]]
            self.geojson = {"type": "Polygon", "coordinates": [lonlat]}
        geom = shape(self.geojson)
        self.shape = geom if geom.is_valid else shapely.make_valid(geom)

    def matches(self, location: dict | None) -> bool:
        """Whether an entity with ``location`` (from entity_location) is selected.

        An entity without location matches only ``disjoint``: Orion queries
        ``{$not: {$geoIntersects: ...}}``, which MongoDB also fulfils for documents
        without the field.
        """
        if location is None:
            return self.georel == "disjoint"
        geometry = location["geometry"]
        if self.georel == "equals":
            return _same_geojson(geometry, self.geojson)
        if self.georel == "near":
            distance = self.distance(location)
            if self.max_distance is not None and distance > self.max_distance:
                return False
            return self.min_distance is None or distance >= self.min_distance
        target = _location_shape(geometry)
        if self.georel == "coveredBy":
            return bool(self.shape.covers(target))
        intersects = bool(self.shape.intersects(target))
        return intersects if self.georel == "intersects" else not intersects

    def distance(self, location: dict | None) -> float:
        """Metres from the query's first coordinate to the nearest point of ``location``.

        Used for ``near`` and for ``orderBy=geo:distance``; Orion returns near results in
        creation order otherwise (1038 geoquery_circle_geopoint). ``inf`` without location.
        """
        if location is None:
            return math.inf
        lat, lon = self.coords[0]
        geometry = location["geometry"]
        if geometry.get("type") == "Point":
            g_lon, g_lat = geometry["coordinates"][:2]
            return haversine(lat, lon, g_lat, g_lon)
        target, origin = _location_shape(geometry), Point(lon, lat)
        if target.is_empty:
            return math.inf
        if target.covers(origin):
            return 0.0
        nearest = nearest_points(target, origin)[0]
        return haversine(lat, lon, nearest.y, nearest.x)


def _location_shape(geometry: dict) -> BaseGeometry:
    """The shape of a stored location (checked when it was stored, so no checks again)."""
    try:
        return shape(geometry)
    except (ValueError, TypeError, KeyError, AttributeError, shapely.errors.ShapelyError):
        return shapely.GeometryCollection()


def _same_geojson(a: Any, b: Any) -> bool:
    """MongoDB's equality of the stored GeoJSON with the query's (numbers compare by value)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.get("type") == b.get("type") and _same_coords(a.get("coordinates"), b.get("coordinates"))
    return False


def _same_coords(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_coords(x, y) for x, y in zip(a, b))
    return _is_number(a) and _is_number(b) and a == b


def parse_geo_query(
    georel: str | None, geometry: str | None, coords: str | None, *, context: str = "query"
) -> GeoQuery | None:
    """The geo-query of URL params ``georel``, ``geometry`` and ``coords``; None when none is given.

    Checks in Orion's order (Scope::fill): geometry, coords, then georel, so that bad
    coordinates are reported even when georel is missing (1306 string2double).
    ``context`` is "query" (GET /v2/entities, POST /v2/op/query: "Invalid query: ...")
    or "subscription" ("error parsing geo-query fields: ..."). Raises BadRequest.
    """
    if georel is None and geometry is None and coords is None:
        return None
    prefix = _QUERY_PREFIX[context]

    def fail(text: str) -> BadRequest:
        return BadRequest(prefix + text)

    if geometry is not None and geometry not in GEOMETRIES:
        raise fail("error parsing geometry: Invalid selector in geometry specification")
    points: list[tuple[float, float]] = []
    if coords is not None:
        for item in coords.split(";"):
            point = parse_coords(item)
            if point is None or not all(map(math.isfinite, point)):
                raise fail(_INVALID_COORDS[context])
            points.append(point)
    if georel is None or geometry is None or coords is None:
        raise BadRequest(PARTIAL_GEO_EXPRESSION)
    # orion-api.md, "Geographical Queries": one pair for a point, a list for a line, two for
    # a box, "at least four pairs" for a polygon.
    counts_ok = {
        "point": len(points) == 1,
        "line": len(points) >= 2,
        "box": len(points) == 2,
        "polygon": len(points) >= 4,
    }
    if not counts_ok[geometry]:
        raise fail(f"invalid number of coordinates for {geometry}")  # (guess)
    kind, max_distance, min_distance = _parse_georel(georel, fail)
    if kind == "near" and geometry != "point":
        raise fail("georel /near/ used with geometry different than point")  # (guess)
    if kind == "coveredBy" and geometry in ("point", "line"):
        raise fail(f"{geometry} geometry cannot be used with coveredBy georel")
    return GeoQuery(kind, geometry, points, max_distance, min_distance)


def _parse_georel(georel: str, fail: Any) -> tuple[str, float | None, float | None]:
    """``near;maxDistance:M;minDistance:M`` or a bare relation, as Orion's Georel::parse."""
    kind: str | None = None
    distances: dict[str, float] = {}
    for item in georel.split(";"):
        if item in GEORELS:
            if kind is not None:
                raise fail("Multiple georel types in georel parameter")  # (guess)
            kind = item
            continue
        name, colon, number = item.partition(":")
        if colon and name in ("maxDistance", "minDistance"):
            value = _strtod(number)
            if value is None or not math.isfinite(value) or value < 0:
                raise fail(f"Invalid number for {name}")  # (guess)
            distances[name] = value
            continue
        raise fail("Invalid modifier in georel parameter")
    if kind is None:
        raise fail("Missing type in georel parameter")  # (guess)
    if distances and kind != "near":
        raise fail("Invalid modifier in georel parameter")
    return kind, distances.get("maxDistance"), distances.get("minDistance")


def parse_geo_expression(expression: dict, *, context: str = "query") -> GeoQuery | None:
    """The geo part of a JSON expression (POST /v2/op/query, subscription subject.condition).

    Checks each field's JSON type and emptiness with Orion's texts (1080
    batch_query_context_error_conditions), then that the three come together
    (1678 geosubscriptions_errors), then parses as parse_geo_query does.
    """
    values: dict[str, str] = {}
    for name in ("georel", "geometry", "coords"):
        if name not in expression:
            continue
        value = expression[name]
        if not isinstance(value, str):
            raise BadRequest(f"{name} is not a string")
        if value == "":
            raise BadRequest(f"{name} is empty")
        values[name] = value
    if not values:
        return None
    if len(values) != 3:
        raise BadRequest(PARTIAL_GEO_EXPRESSION)
    return parse_geo_query(values["georel"], values["geometry"], values["coords"], context=context)
