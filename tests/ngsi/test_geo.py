"""ngsi.geo against the behaviour Orion's functional tests show (case names in comments)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngsi.errors import BadRequest, NGSIError, RequestEntityTooLarge
from ngsi.geo import (
    EARTH_RADIUS_M,
    GeoQuery,
    entity_location,
    haversine,
    parse_coords,
    parse_geo_expression,
    parse_geo_query,
)

IGNORE = {"ignoreType": {"type": "Boolean", "value": True}}


def attr(type_: str, value: object, md: dict | None = None) -> dict:
    return {"type": type_, "value": value, "md": md or {}}


def location(type_: str, value: object, md: dict | None = None) -> dict | None:
    return entity_location({"location": attr(type_, value, md)})


def error(exc_info: pytest.ExceptionInfo) -> tuple[int, str, str]:
    exc = exc_info.value
    return exc.status, exc.error, exc.description


# ---------------------------------------------------------------------------
# entity_location: values
# ---------------------------------------------------------------------------


def test_geo_point_is_lon_lat_point():
    assert location("geo:point", "40.418889, -3.691944") == {
        "attr": "location",
        "geometry": {"type": "Point", "coordinates": [-3.691944, 40.418889]},
    }


def test_geo_point_without_blank():  # 3533 null_in_geo_point
    assert location("geo:point", "-3.5,45.20")["geometry"]["coordinates"] == [45.2, -3.5]


@pytest.mark.parametrize("value", ["foo", "1, 2, 3", "1;2", "", "a, 1", "1, b", 5])
def test_geo_point_format_error(value):
    with pytest.raises(BadRequest) as exc:
        location("geo:point", value)
    text = value if isinstance(value, str) else ""
    assert error(exc) == (
        400, "BadRequest", "error parsing location attribute: geo coordinates format error [see Orion user manual]: " + text
    )


def test_geo_line_and_box_and_polygon():
    assert location("geo:line", ["4, 3", "6, 6"])["geometry"] == {"type": "LineString", "coordinates": [[3, 4], [6, 6]]}
    box = location("geo:box", ["6, 6", "4, 3"])["geometry"]
    assert box["type"] == "Polygon"
    assert sorted(map(tuple, box["coordinates"][0][:4])) == [(3, 4), (3, 6), (6, 4), (6, 6)]
    polygon = location("geo:polygon", ["20, 20", "30, 30", "30, 20", "20, 20"])["geometry"]
    assert polygon == {"type": "Polygon", "coordinates": [[[20, 20], [30, 30], [20, 30], [20, 20]]]}


NEEDS_ARRAY = "error parsing location attribute: geo:line, geo:box and geo:polygon needs array of strings as value"


@pytest.mark.parametrize(
    "type_, value, description",
    [  # 1038 errors_geobox, errors_geoline, errors_geopolygon
        ("geo:box", "0, 0", NEEDS_ARRAY),
        ("geo:box", ["0, 0"], "error parsing location attribute: geo:box uses exactly 2 coordinates"),
        ("geo:box", ["0, 0", "10, 10", "20, 20"], "error parsing location attribute: geo:box uses exactly 2 coordinates"),
        ("geo:box", ["0, 0", "0, 10"], "error parsing location attribute: geo:box coordinates are not defining an actual box"),
        ("geo:line", "10, 10", NEEDS_ARRAY),
        ("geo:line", ["10, 10"], "error parsing location attribute: geo:line uses at least 2 coordinates"),
        ("geo:polygon", "10, 10", NEEDS_ARRAY),
        ("geo:polygon", ["10, 10"], "error parsing location attribute: geo:polygon uses at least 4 coordinates"),
        (
            "geo:polygon",
            ["10, 10", "20, 20", "20, 10", "10, 0"],
            "error parsing location attribute: geo:polygon first and last coordinates must match",
        ),
        ("geo:line", [1, 2], NEEDS_ARRAY),
        ("geo:line", {"a": 1}, NEEDS_ARRAY),
        (
            "geo:line",
            ["1, 1", "bar"],
            "error parsing location attribute: geo coordinates format error [see Orion user manual]: bar",
        ),
    ],
)
def test_list_type_errors(type_, value, description):
    with pytest.raises(BadRequest) as exc:
        location(type_, value)
    assert error(exc) == (400, "BadRequest", description)


def test_geo_json_point_and_polygon():  # 1920_geojson
    value = {"type": "Polygon", "coordinates": [[[3, 4], [6, 6], [3, 7], [3, 4]]]}
    loc = location("geo:json", value)
    assert loc == {"attr": "location", "geometry": value}
    assert loc["geometry"] is not value  # a copy: later edits of the attribute don't move the entity


@pytest.mark.parametrize("value", ["foo", "bar", 1, [1, 2], True])
def test_geo_json_needs_object(value):  # 3533 null_in_geo_json
    with pytest.raises(BadRequest) as exc:
        location("geo:json", value)
    assert error(exc) == (400, "BadRequest", "geo:json needs an object or null as value")


POINT = {"type": "Point", "coordinates": [-3.6127119138731127, 40.53901978067972]}


@pytest.mark.parametrize(
    "value, detail",
    [  # 4114 geojson_feature_errors
        ({"type": "Feature", "properties": {}}, "geometry in Feature not found"),
        ({"type": "Feature", "geometry": "foo"}, "geometry in Feature is not an object"),
        ({"type": "FeatureCollection"}, "features field not found in FeatureCollection"),
        ({"type": "FeatureCollection", "features": {}}, "features in FeatureCollection is not an array"),
        ({"type": "FeatureCollection", "features": []}, "features in FeatureCollection has 0 items"),
        (
            {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": POINT}] * 2},
            "features in FeatureCollection has more than 1 item",
        ),
        ({"type": "FeatureCollection", "features": [{"type": "Feature"}]}, "geometry in Feature not found"),
        (
            {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": []}]},
            "geometry in Feature is not an object",
        ),
    ],
)
def test_feature_errors(value, detail):
    with pytest.raises(BadRequest) as exc:
        location("geo:json", value)
    assert error(exc) == (400, "BadRequest", "error parsing location attribute: " + detail)
    # the same text when the attribute already was the (valid) location
    with pytest.raises(BadRequest) as exc:
        entity_location({"location": attr("geo:json", value)}, previous={"location": attr("geo:json", POINT)})
    assert exc.value.description == "error parsing location attribute: " + detail


def test_feature_and_collection_give_their_geometry():  # 4114
    feature = {"type": "Feature", "geometry": POINT, "properties": {"label": "x"}}
    assert location("geo:json", feature)["geometry"] == POINT
    collection = {"type": "FeatureCollection", "features": [feature]}
    assert location("geo:json", collection)["geometry"] == POINT


@pytest.mark.parametrize(
    "value",
    [
        {"type": "Point", "coordinates": ["-0.042202", "31.976196"]},  # 3949
        {"type": "Point", "coordinates": [200, 0]},
        {"type": "Point", "coordinates": [0, 91]},
        {"type": "Point", "coordinates": [1]},
        {"type": "Point"},
        {"coordinates": [1, 2]},
        {"type": "Circle", "coordinates": [1, 2]},
        {"type": "LineString", "coordinates": [[1, 2]]},
        {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0]]]},
        {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]},  # bow tie
        {"type": "Point", "coordinates": [True, 1]},
    ],
)
def test_wrong_geojson(value):
    with pytest.raises(BadRequest) as exc:
        location("geo:json", value)
    assert error(exc) == (400, "BadRequest", "Wrong GeoJson")


def test_wrong_geojson_for_out_of_range_point():
    with pytest.raises(BadRequest) as exc:
        location("geo:point", "100, 0")
    assert exc.value.description == "Wrong GeoJson"


def test_geojson_other_types_accepted():
    for value in [
        {"type": "MultiPoint", "coordinates": [[1, 2], [3, 4]]},
        {"type": "MultiLineString", "coordinates": [[[1, 2], [3, 4]]]},
        {"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]]]},
        {"type": "Point", "coordinates": [1, 2, 300]},
    ]:
        assert location("geo:json", value)["geometry"] == value


def test_geometry_collection_is_refused():
    # orion-api.md, "GeoJSON": "The only GeoJSON type not supported at all is GeometryCollection"
    value = {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [1, 2]}]}
    with pytest.raises(BadRequest) as exc:
        location("geo:json", value)
    assert error(exc) == (400, "BadRequest", "Wrong GeoJson")


# ---------------------------------------------------------------------------
# entity_location: which attribute, null, ignoreType, more than one
# ---------------------------------------------------------------------------


def test_no_geo_attribute_no_location():
    assert entity_location({}) is None
    assert entity_location({"a": attr("Text", "40, 3")}) is None


@pytest.mark.parametrize("type_", ["geo:point", "geo:line", "geo:box", "geo:polygon", "geo:json"])
def test_null_value_is_no_location(type_):  # 3533
    assert location(type_, None) is None


def test_ignore_type_is_no_location():  # 4114 ignoretype, 4032 extra_locs
    feature = {"type": "Feature", "geometry": POINT}
    assert location("geo:json", feature, IGNORE) is None
    assert location("geo:point", "not even coordinates", IGNORE) is None
    not_true = {"ignoreType": {"type": "Boolean", "value": False}}
    assert location("geo:point", "1, 2", not_true) is not None


def test_extra_locations_with_ignore_type():  # 4032 extra_locs
    attrs = {
        "L1": attr("geo:json", {"type": "Point", "coordinates": [10, 10]}),
        "L2": attr("geo:json", {"type": "Point", "coordinates": [20, 20]}, IGNORE),
        "L3": attr("geo:json", {"type": "Point", "coordinates": [30, 30]}, IGNORE),
    }
    assert entity_location(attrs)["attr"] == "L1"
    attrs["L2"]["md"] = {}
    with pytest.raises(RequestEntityTooLarge):
        entity_location(attrs, previous=attrs)


MORE_THAN_ONE = (
    413,
    "NoResourcesAvailable",
    "You cannot use more than one geo location attribute when creating an entity. "
    "Use ignoreType metadata if you want to add additional informative locations.",
)


def test_two_locations_on_creation():  # 1038 errors_geobox 05
    attrs = {"attr1": attr("geo:box", ["0, 0", "10, 10"]), "attr2": attr("geo:box", ["20, 20", "30, 30"])}
    with pytest.raises(RequestEntityTooLarge) as exc:
        entity_location(attrs)
    assert error(exc) == MORE_THAN_ONE


def test_second_location_refused_even_with_bad_value():  # 1038 errors_geopolygon 07
    previous = {"attr1": attr("geo:polygon", ["-15, -15", "-25, -25", "-25, -15", "-15, -15"])}
    after = {**previous, "attr2": attr("geo:polygon", "20, 20")}
    with pytest.raises(RequestEntityTooLarge) as exc:
        entity_location(after, previous)
    assert error(exc) == MORE_THAN_ONE


def test_type_change_to_geo_with_another_location():  # 1038 errors_geobox 13
    previous = {"attr2": attr("no-geopoint", "foo"), "attr3": attr("geo:box", ["-10, 0", "7, 7"])}
    after = {"attr2": attr("geo:box", ["-20, 0", "8, 9"]), "attr3": previous["attr3"]}
    with pytest.raises(RequestEntityTooLarge):
        entity_location(after, previous)


def test_location_moves_when_old_one_is_gone():  # 1038 errors_geobox 09-12
    assert entity_location({"attr2": attr("geo:box", ["50, 50", "60, 60"])}, {})["attr"] == "attr2"
    assert entity_location({"attr2": attr("no-geopoint", "foo")}) is None
    after = {"attr2": attr("no-geopoint", "foo"), "attr3": attr("geo:box", ["-10, 0", "7, 7"])}
    assert entity_location(after, {"attr2": attr("no-geopoint", "foo")})["attr"] == "attr3"


def test_null_locations_and_the_limit_of_one():  # 3533 null_in_geo_more_than_one
    p = {"type": "Point", "coordinates": [-4, 36]}
    s0 = {"loc1": attr("geo:json", None), "loc2": attr("geo:json", None)}
    assert entity_location(s0) is None
    s1 = {**s0, "loc1": attr("geo:json", p)}
    assert entity_location(s1, s0)["attr"] == "loc1"
    with pytest.raises(RequestEntityTooLarge):
        entity_location({**s1, "loc2": attr("geo:json", p)}, s1)
    s2 = {**s1, "loc1": attr("geo:json", None)}
    assert entity_location(s2, s1) is None
    s3 = {**s2, "loc2": attr("geo:json", p)}
    assert entity_location(s3, s2)["attr"] == "loc2"
    with pytest.raises(RequestEntityTooLarge):
        entity_location({**s3, "loc1": attr("geo:json", p)}, s3)


@pytest.mark.parametrize(
    "type_, good, bad, detail",
    [  # 3533 null_in_geo_point, _box, _line
        ("geo:point", "-3.5,45.20", "foo", "geo coordinates format error [see Orion user manual]: foo"),
        ("geo:box", ["2, 2", "7, 7"], "foo", "geo:line, geo:box and geo:polygon needs array of strings as value"),
        ("geo:line", ["2, 2", "7, 7"], "foo", "geo:line, geo:box and geo:polygon needs array of strings as value"),
    ],
)
def test_prefix_for_existing_attribute(type_, good, bad, detail):
    # E1: stored null (was the location once), written bad -> "for existing attribute"
    with pytest.raises(BadRequest) as exc:
        entity_location({"loc": attr(type_, bad)}, {"loc": attr(type_, None)})
    assert exc.value.description == "error parsing location attribute for existing attribute: " + detail
    # E2: stored a real location, written bad -> plain prefix
    with pytest.raises(BadRequest) as exc:
        entity_location({"loc": attr(type_, bad)}, {"loc": attr(type_, good)})
    assert exc.value.description == "error parsing location attribute: " + detail


def test_replace_location_with_non_location():  # 1142
    previous = {"A1": attr("geo:point", "-5, 2"), "A2": attr("TA2", "noloc")}
    assert entity_location({"A1": attr("TA1", "noLoc")}, previous) is None
    assert entity_location({"A1": attr("geo:point", "2, -4")}, previous)["geometry"]["coordinates"] == [-4, 2]


# ---------------------------------------------------------------------------
# parse_geo_query: errors
# ---------------------------------------------------------------------------


def test_no_geo_params():
    assert parse_geo_query(None, None, None) is None
    assert parse_geo_expression({"q": "t<3"}) is None


@pytest.mark.parametrize(
    "georel, geometry, coords, description",
    [
        ("near;maxDistance=1000", "point", "43.42015,-2.761160", "Invalid query: Invalid modifier in georel parameter"),  # 2174
        ("near;maxDistance:10", "point", "B,5", "Invalid query: invalid coordinates"),  # 1306
        ("near;maxDistance:10", "point", "5,B", "Invalid query: invalid coordinates"),
        (None, "polygon", "B,1.2;2.1,2.2;3.1,3.2", "Invalid query: invalid coordinates"),
        (None, "polygon", "1.1,B;2.1,2.2;3.1,3.2", "Invalid query: invalid coordinates"),
        ("coveredBy", "point", "5,5", "Invalid query: point geometry cannot be used with coveredBy georel"),  # 1677
        ("coveredBy", "line", "5,5;9,5", "Invalid query: line geometry cannot be used with coveredBy georel"),
        ("near;maxDistance:10", "xxx", "1,2", "Invalid query: error parsing geometry: Invalid selector in geometry specification"),
        ("far", "point", "1,2", "Invalid query: Invalid modifier in georel parameter"),
        ("intersects;maxDistance:10", "point", "1,2", "Invalid query: Invalid modifier in georel parameter"),
        ("near;maxDistance:100", None, None, "partial geo expression: geometry, georel and coords have to be provided together"),
    ],
)
def test_query_errors(georel, geometry, coords, description):
    with pytest.raises(BadRequest) as exc:
        parse_geo_query(georel, geometry, coords)
    assert error(exc) == (400, "BadRequest", description)


@pytest.mark.parametrize(
    "georel, geometry, coords",
    [
        ("near", "point", "1,2;3,4"),
        ("near;maxDistance:10", "box", "1,2;3,4"),
        ("intersects", "box", "1,2"),
        ("intersects", "line", "1,2"),
        ("intersects", "polygon", "1,2;3,4;1,2"),
        ("intersects", "polygon", "1,2;3,4;5,2"),  # three pairs, even unclosed: "at least four pairs"
        ("near;maxDistance:x", "point", "1,2"),
        ("near;maxDistance:-1", "point", "1,2"),
        ("maxDistance:1", "point", "1,2"),
        ("near;near", "point", "1,2"),
        ("", "point", "1,2"),
        ("near;maxDistance:1", "point", ""),
    ],
)
def test_other_malformed_queries_are_bad_requests(georel, geometry, coords):
    with pytest.raises(BadRequest) as exc:
        parse_geo_query(georel, geometry, coords)
    assert exc.value.description.startswith("Invalid query: ")


@pytest.mark.parametrize(
    "expression, description",
    [  # 1080 batch_query_context_error_conditions
        ({"georel": 42}, "georel is not a string"),
        ({"georel": ""}, "georel is empty"),
        ({"geometry": 42}, "geometry is not a string"),
        ({"geometry": ""}, "geometry is empty"),
        ({"coords": 42}, "coords is not a string"),
        ({"coords": ""}, "coords is empty"),
        ({"geometry": "point", "coords": "1,2"}, "partial geo expression: geometry, georel and coords have to be provided together"),
        ({"georel": "near;maxDistance:100"}, "partial geo expression: geometry, georel and coords have to be provided together"),
    ],
)
def test_expression_errors(expression, description):
    with pytest.raises(BadRequest) as exc:
        parse_geo_expression(expression)
    assert error(exc) == (400, "BadRequest", description)


def test_subscription_texts():  # 1678 geosubscriptions_errors, 1658 patch_subscriptions
    with pytest.raises(BadRequest) as exc:
        parse_geo_expression(
            {"georel": "near;maxDistance:100000", "geometry": "xxx", "coords": "40.418889,-3.691944"}, context="subscription"
        )
    assert exc.value.description == "error parsing geo-query fields: error parsing geometry: Invalid selector in geometry specification"
    with pytest.raises(BadRequest) as exc:
        parse_geo_expression({"georel": "far;maxDistance:2", "geometry": "rectangles", "coords": "-4.41,-31.51"}, context="subscription")
    assert exc.value.description == "error parsing geo-query fields: error parsing geometry: Invalid selector in geometry specification"
    with pytest.raises(BadRequest) as exc:
        parse_geo_expression(
            {"georel": "near;maxDistance:100", "geometry": "point", "coords": "36.532787, -6.297897, -23.242"}, context="subscription"
        )
    assert exc.value.description == "error parsing geo-query fields: invalid point in URI param /coords/"


def test_parse_fields():
    q = parse_geo_query("near;minDistance:5000;maxDistance:9000", "point", "-40.4,-3.5")
    assert (q.georel, q.geometry, q.coords, q.min_distance, q.max_distance) == ("near", "point", [(-40.4, -3.5)], 5000, 9000)
    assert q.geojson == {"type": "Point", "coordinates": [-3.5, -40.4]}
    assert parse_geo_expression({"georel": "near;maxDistance:2000", "geometry": "point", "coords": "40.31,-3.75"}).max_distance == 2000


# ---------------------------------------------------------------------------
# GeoQuery.matches: the cases' scenarios
# ---------------------------------------------------------------------------


def select(entities: dict[str, dict | None], georel: str, geometry: str, coords: str) -> list[str]:
    query = parse_geo_query(georel, geometry, coords)
    return [name for name, loc in entities.items() if query.matches(loc)]


CITIES = {  # creation order, as Orion returns them
    "Madrid": location("geo:point", "40.418889, -3.691944"),
    "Alcobendas": location("geo:point", "40.533333, -3.633333"),
    "Leganes": location("geo:point", "40.316667, -3.75"),
}
MADRID = "40.418889,-3.691944"


def test_near():  # 1038 geoquery_circle_geopoint, 1177 geometry_and_coords
    assert select(CITIES, "near;maxDistance:13500", "point", MADRID) == ["Madrid", "Leganes"]
    assert select(CITIES, "near;maxDistance:15000", "point", MADRID) == ["Madrid", "Alcobendas", "Leganes"]
    assert select(CITIES, "near;maxDistance:1000", "point", MADRID) == ["Madrid"]
    assert select(CITIES, "near;minDistance:13500", "point", MADRID) == ["Alcobendas"]
    assert select(CITIES, "near;minDistance:1000", "point", MADRID) == ["Alcobendas", "Leganes"]
    assert select(CITIES, "near;minDistance:0", "point", MADRID) == ["Madrid", "Alcobendas", "Leganes"]


def test_near_one_metre():  # 4114 geojson_feature_support_ignoretype 06
    loc = location("geo:json", {"type": "Point", "coordinates": [3.6127119138731127, 42.53901978067972]})
    assert parse_geo_query("near;maxDistance:1", "point", "42.539019,3.612711").matches(loc)


def test_distance_order():  # 1103 order_by_proximity
    cities = {
        "Barcelona": "41.3825, 2.176944",
        "Guadalajara": "40.633333, -3.166667",
        "Lleida": "41.616667, 0.633333",
        "Madrid": "40.418889, -3.691944",
        "Zaragoza": "41.65, -0.883333",
    }
    query = parse_geo_query("near;maxDistance:700000", "point", "40.641944,-4.155278")
    locs = {name: location("geo:point", value) for name, value in cities.items()}
    assert all(query.matches(loc) for loc in locs.values())
    ordered = sorted(locs, key=lambda name: query.distance(locs[name]))
    assert ordered == ["Madrid", "Guadalajara", "Zaragoza", "Lleida", "Barcelona"]


def test_polygons_around_cities():  # 1177 geometry_and_coords
    leganes = "40.316667,-3.65;40.216667,-3.85;40.416667,-3.85;40.316667,-3.65"
    alcobendas = "40.533333,-3.533333;40.433333,-3.733333;40.633333,-3.733333;40.533333,-3.533333"
    madrid = "40.418889,-3.591944;40.318889,-3.791944;40.518889,-3.791944;40.418889,-3.591944"
    wide = "40,-3;36,-4;44,-4;40,-3"
    for coords, inside in [(leganes, ["Leganes"]), (alcobendas, ["Alcobendas"]), (madrid, ["Madrid"]), (wide, list(CITIES))]:
        assert select(CITIES, "coveredBy", "polygon", coords) == inside
        assert select(CITIES, "disjoint", "polygon", coords) == [c for c in CITIES if c not in inside]


B1, B2, B3 = "3,2;10,8", "5,4;8,7", "11,4;14,7"


@pytest.mark.parametrize(
    "loc",
    [  # 1038 geoquery_box_geobox, geoquery_box_geoline; 1920 geoquery_box_geojson
        location("geo:box", ["4, 3", "6, 6"]),
        location("geo:line", ["4, 3", "6, 6"]),
        location("geo:json", {"type": "Polygon", "coordinates": [[[3, 4], [6, 6], [3, 7], [3, 4]]]}),
    ],
)
def test_boxes(loc):
    entities = {"A": loc}
    expected = {
        (B1, "coveredBy"): True, (B1, "intersects"): True, (B1, "disjoint"): False,
        (B2, "coveredBy"): False, (B2, "intersects"): True, (B2, "disjoint"): False,
        (B3, "coveredBy"): False, (B3, "intersects"): False, (B3, "disjoint"): True,
    }  # fmt: skip
    for (box, georel), hit in expected.items():
        assert select(entities, georel, "box", box) == (["A"] if hit else []), (box, georel)


def test_polygon_geopoint():  # 1038 geoquery_polygon_geopoint
    points = {name: location("geo:point", value) for name, value in [("A", "3, 2"), ("B", "5, 5"), ("C", "7, 4")]}
    rect_ab, rect_bc, triangle = "0,0;0,6;6,6;6,0;0,0", "3,3;3,8;11,8;11,3;3,3", "0,0;0,6;6,0;0,0"
    assert select(points, "coveredBy", "polygon", rect_ab) == ["A", "B"]
    assert select(points, "coveredBy", "polygon", rect_bc) == ["B", "C"]
    assert select(points, "coveredBy", "polygon", triangle) == ["A"]
    assert select(points, "disjoint", "polygon", rect_bc) == ["A"]
    assert select(points, "disjoint", "polygon", triangle) == ["B", "C"]


def test_all_georels():  # 1677 geoquery_points
    points = {
        name: location("geo:point", value)
        for name, value in [("A", "5, 5"), ("B", "9, 5"), ("C", "15, 5"), ("D", "15, 15"), ("E", "-4, 10")]
    }
    tri = "0,0;24,0;0,20;0,0"
    for box in ("-5,0;6,11", "-5,11;6,0"):
        assert select(points, "coveredBy", "box", box) == ["A", "E"]
        assert select(points, "intersects", "box", box) == ["A", "E"]
        assert select(points, "disjoint", "box", box) == ["B", "C", "D"]
        assert select(points, "equals", "box", box) == []
    assert select(points, "coveredBy", "polygon", tri) == ["A", "B", "C"]
    assert select(points, "intersects", "point", "5,5") == ["A"]
    assert select(points, "intersects", "line", "5,5;9,5") == ["A", "B"]
    assert select(points, "intersects", "polygon", tri) == ["A", "B", "C"]
    assert select(points, "disjoint", "point", "5,5") == ["B", "C", "D", "E"]
    assert select(points, "disjoint", "line", "5,5;9,5") == ["C", "D", "E"]
    assert select(points, "disjoint", "polygon", tri) == ["D", "E"]
    assert select(points, "equals", "point", "15,15") == ["D"]
    assert select(points, "equals", "line", "5,5;9,5") == []
    assert select(points, "equals", "polygon", tri) == []


def test_equals_same_shape():
    box = location("geo:box", ["1, 2", "3, 4"])
    assert parse_geo_query("equals", "box", "3,4;1,2").matches(box)
    line = location("geo:line", ["1, 2", "3, 4"])
    assert parse_geo_query("equals", "line", "1,2;3,4").matches(line)
    assert not parse_geo_query("equals", "line", "3,4;1,2").matches(line)


def test_hemisphere_box():  # 3533 null_in_geo_*: located entities only
    query = parse_geo_query("coveredBy", "box", "-90,-90;90,90")
    assert query.matches(location("geo:point", "-3.5,45.20"))
    assert query.matches(location("geo:json", {"type": "Point", "coordinates": [-4, 36]}))
    assert query.matches(location("geo:box", ["2, 2", "7, 7"]))
    assert not query.matches(None)


def test_unlocated_entities():
    assert not parse_geo_query("near;maxDistance:1", "point", "1,1").matches(None)
    assert not parse_geo_query("intersects", "point", "1,1").matches(None)
    assert not parse_geo_query("equals", "point", "1,1").matches(None)
    assert parse_geo_query("disjoint", "point", "1,1").matches(None)  # MongoDB's $not
    assert parse_geo_query("near;maxDistance:1", "point", "1,1").distance(None) == math.inf


def test_distance_to_shapes():
    query = parse_geo_query("near;maxDistance:200000", "point", "0,0")
    square = location("geo:box", ["1, 1", "2, 2"])
    assert query.distance(square) == pytest.approx(haversine(0, 0, 1, 1), rel=1e-6)
    inside = location("geo:box", ["-1, -1", "1, 1"])
    assert query.distance(inside) == 0
    assert query.matches(square) and not parse_geo_query("near;maxDistance:100000", "point", "0,0").matches(square)


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

lats = st.floats(-80, 80, allow_nan=False)
lons = st.floats(-170, 170, allow_nan=False)
points = st.tuples(lats, lons)


def fmt(point: tuple[float, float]) -> str:
    return f"{point[0]!r}, {point[1]!r}"


@given(points)
def test_point_round_trip(point):
    assert parse_coords(fmt(point)) == point
    loc = location("geo:point", fmt(point))
    assert loc["geometry"]["coordinates"] == [point[1], point[0]]


@given(points, points)
def test_haversine_symmetric_and_bounded(a, b):
    d = haversine(*a, *b)
    assert d == pytest.approx(haversine(*b, *a), abs=1e-6)
    assert 0 <= d <= math.pi * EARTH_RADIUS_M + 1e-6
    assert haversine(*a, *a) == 0


@settings(max_examples=50)
@given(points, points, points)
def test_relations_are_consistent(a, b, p):
    if a[0] == b[0] or a[1] == b[1]:
        return
    box = f"{a[0]!r},{a[1]!r};{b[0]!r},{b[1]!r}"
    loc = location("geo:point", fmt(p))
    covered = parse_geo_query("coveredBy", "box", box).matches(loc)
    intersects = parse_geo_query("intersects", "box", box).matches(loc)
    disjoint = parse_geo_query("disjoint", "box", box).matches(loc)
    assert intersects != disjoint
    assert not covered or intersects
    inside = min(a[0], b[0]) < p[0] < max(a[0], b[0]) and min(a[1], b[1]) < p[1] < max(a[1], b[1])
    outside = not (min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1]))
    if inside:
        assert covered
    if outside:
        assert disjoint


@settings(max_examples=50)
@given(points, points, st.floats(0, 3e6, allow_nan=False))
def test_near_max_and_min_split_everything(center, p, radius):
    coords = f"{center[0]!r},{center[1]!r}"
    loc = location("geo:point", fmt(p))
    near = parse_geo_query(f"near;maxDistance:{radius!r}", "point", coords)
    far = parse_geo_query(f"near;minDistance:{radius!r}", "point", coords)
    assert near.matches(loc) or far.matches(loc)
    if near.distance(loc) != radius:
        assert near.matches(loc) != far.matches(loc)


@given(points, points)
def test_box_corner_order_does_not_matter(a, b):
    if a[0] == b[0] or a[1] == b[1]:
        return
    one = location("geo:box", [fmt(a), fmt(b)])
    other = location("geo:box", [fmt((a[0], b[1])), fmt((b[0], a[1]))])
    assert one == other


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(["type", "coordinates", "geometry", "features", "geometries", "x"]), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200)
@given(st.sampled_from(["geo:point", "geo:line", "geo:box", "geo:polygon", "geo:json"]), json_values)
def test_any_value_gives_location_or_ngsi_error(type_, value):
    try:
        loc = location(type_, value)
    except NGSIError as exc:
        assert exc.status == 400
    else:
        assert loc is None or loc["geometry"]["type"] in {
            "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"
        }  # fmt: skip


geo_text = st.text(alphabet="nearmxDistancoveredByintsjqlpgb;:,.-0123456789 ", max_size=30)


@settings(max_examples=300)
@given(st.none() | geo_text, st.none() | st.sampled_from(["point", "line", "polygon", "box", "circle"]) | geo_text, st.none() | geo_text)
def test_any_params_give_query_or_bad_request(georel, geometry, coords):
    try:
        query = parse_geo_query(georel, geometry, coords)
    except BadRequest:
        return
    if query is None:
        assert georel is None and geometry is None and coords is None
        return
    assert isinstance(query, GeoQuery)
    query.matches(None)
    query.matches(location("geo:point", "1, 1"))
    query.matches(location("geo:box", ["1, 1", "2, 2"]))
