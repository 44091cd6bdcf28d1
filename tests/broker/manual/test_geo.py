"""Locations and geo-queries as Orion's manual describes them, against the real broker.

Written from orion-api.md: "Geospatial properties of entities", "GeoJSON", "Special
Attribute Types" (``geo:json``), "Special Metadata Types" (``ignoreType``), "Geographical
Queries" and its "Query Resolution", "Ordering Results" (``geo:distance``), "General syntax
restrictions" (``georel``/``coords`` allow ``;``), and deprecated.md for the deprecated
Simple Location Format types (``geo:point``, ``geo:line``, ``geo:box``, ``geo:polygon``). Each
test's docstring cites the section it follows; where the manual gives no error text, the
text is the one Orion's functional tests show.

The module runs on SQLite and on PostgreSQL with PostGIS: the location is stored with the
entity (and in PostGIS's ``geom`` column) and read back for every query. Each test works in
a tenant of its own, so a query sees that test's entities only.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.broker.api_client import ApiClient, error_of, ids_of
from tests.broker.conftest import Receiver

from .conftest import TenantEntities

GEOJSON_TYPES = {
    "Point": [-3.7, 40.4],
    "MultiPoint": [[-3.7, 40.4], [-3.6, 40.5]],
    "LineString": [[-3.7, 40.4], [-3.6, 40.5]],
    "MultiLineString": [[[-3.7, 40.4], [-3.6, 40.5]], [[-3.65, 40.45], [-3.62, 40.42]]],
    "Polygon": [[[-3.7, 40.4], [-3.6, 40.4], [-3.6, 40.5], [-3.7, 40.5], [-3.7, 40.4]]],
    "MultiPolygon": [[[[-3.7, 40.4], [-3.6, 40.4], [-3.6, 40.5], [-3.7, 40.4]]],
                     [[[-3.5, 40.4], [-3.4, 40.4], [-3.4, 40.5], [-3.5, 40.4]]]],
}
# A box (lat,lon;lat,lon) around all of GEOJSON_TYPES, and one far from them.
AROUND_MADRID = "40,-4;41,-3"
FAR_AWAY = "10,10;11,11"


class Tenant(TenantEntities):
    """A test's entities, and ``post`` for those that may be refused."""

    def post(self, entity: dict[str, Any], path: str = "/v2/entities") -> httpx.Response:
        return self.client.post(path, json=entity, headers=self.headers)

    def ids(self, **params: str) -> list[str]:
        return ids_of(self.get(**params))

    def query(self, georel: str, geometry: str, coords: str, **params: str) -> list[str]:
        return self.ids(georel=georel, geometry=geometry, coords=coords, **params)

    def value(self, entity_id: str, attr: str) -> Any:
        response = self.get(f"/v2/entities/{entity_id}")
        assert response.status_code == 200, response.text
        return response.json()[attr]["value"]


@pytest.fixture
def tenant(client: ApiClient) -> Tenant:
    return Tenant(client, "geo")


def geojson(kind: str, coordinates: Any, **metadata: Any) -> dict[str, Any]:
    attr: dict[str, Any] = {"type": "geo:json", "value": {"type": kind, "coordinates": coordinates}}
    if metadata:
        attr["metadata"] = {name: {"type": "Boolean", "value": value} for name, value in metadata.items()}
    return attr


def feature(geometry: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


# --- Geospatial properties of entities ------------------------------------------------------


def test_a_geojson_attribute_is_the_location_queries_use(tenant: Tenant) -> None:
    """orion-api.md, "Geospatial properties of entities": a geo:json attribute (typically named
    ``location``, any name will do) gives the entity the geospatial property geo-queries use."""
    tenant.add({"id": "Madrid", "type": "City", "position": geojson("Point", [-3.7038, 40.4168])},
               {"id": "Paris", "type": "City", "position": geojson("Point", [2.3522, 48.8566])})
    assert tenant.query("near;maxDistance:1000", "point", "40.4168,-3.7038") == ["Madrid"]
    assert tenant.query("coveredBy", "box", AROUND_MADRID) == ["Madrid"]


def test_a_second_location_is_413_no_resources_available(tenant: Tenant) -> None:
    """orion-api.md, "Geospatial properties of entities": more than one location attribute is
    refused with 413 and the error ``NoResourcesAvailable``; nothing is written."""
    point = geojson("Point", [1, 1])
    error_of(tenant.post({"id": "E", "a": point, "b": point}), 413, "NoResourcesAvailable")
    error_of(tenant.get("/v2/entities/E"), 404, "NotFound")
    tenant.add({"id": "E", "a": point})
    response = tenant.client.post("/v2/entities/E/attrs", json={"b": point}, headers=tenant.headers)
    error_of(response, 413, "NoResourcesAvailable")
    assert "b" not in tenant.get("/v2/entities/E").json()


def test_ignore_type_marks_an_extra_informative_location(tenant: Tenant) -> None:
    """orion-api.md, "Geospatial properties of entities" (the Hospital example) and "Special
    Metadata Types" > ``ignoreType``: an attribute with ``ignoreType: true`` does not count
    towards the limit and takes no part in geo-queries; the other one is the location."""
    service_area = [[[-3.69807, 40.49029], [-3.68640, 40.49100], [-3.68602, 40.50456],
                     [-3.71192, 40.50420], [-3.69807, 40.49029]]]
    tenant.add({
        "id": "Hospital1", "type": "Hospital",
        "location": geojson("Point", [-3.68666, 40.48108]),
        "serviceArea": geojson("Polygon", service_area, ignoreType=True),
    })
    assert tenant.query("near;maxDistance:10", "point", "40.48108,-3.68666") == ["Hospital1"]
    # A box around the service area only: the service area is no location.
    assert tenant.query("coveredBy", "box", "40.489,-3.72;40.51,-3.68") == []
    assert tenant.query("intersects", "point", "40.5,-3.7") == []
    assert tenant.value("Hospital1", "serviceArea") == {"type": "Polygon", "coordinates": service_area}


def test_only_ignore_type_locations_leave_the_entity_unlocated(tenant: Tenant) -> None:
    """orion-api.md, "Geospatial properties of entities": locations with ``ignoreType`` set to
    true "are ignored by Orion", so several of them are fine and none is queried."""
    tenant.add({"id": "E", "a": geojson("Point", [1, 1], ignoreType=True),
                "b": geojson("Point", [2, 2], ignoreType=True)})
    assert tenant.query("intersects", "box", "0,0;3,3") == []


def test_a_null_geojson_is_no_location_and_does_not_count(tenant: Tenant) -> None:
    """orion-api.md, "Special Attribute Types" > ``geo:json``: attributes with null value are
    not taken into account in geo-queries and do not count towards the one-location limit."""
    tenant.add({"id": "E", "empty": {"type": "geo:json", "value": None}, "location": geojson("Point", [1, 1])},
               {"id": "Unset", "empty": {"type": "geo:json", "value": None}})
    assert tenant.value("E", "empty") is None
    assert tenant.query("intersects", "box", "0,0;3,3") == ["E"]
    assert tenant.query("near;maxDistance:100000000", "point", "0,0") == ["E"]


def test_the_location_follows_updates(tenant: Tenant) -> None:
    """orion-api.md, "Geospatial properties of entities": the location is the attribute's
    value, so updating it moves the entity and nulling it removes the location."""
    tenant.add({"id": "E", "location": geojson("Point", [1, 1])})
    patch = {"location": geojson("Point", [20, 20])}
    assert tenant.client.patch("/v2/entities/E/attrs", json=patch, headers=tenant.headers).status_code == 204
    assert tenant.query("intersects", "box", "0,0;3,3") == []
    assert tenant.query("intersects", "box", "19,19;21,21") == ["E"]
    nulled = {"location": {"type": "geo:json", "value": None}}
    assert tenant.client.patch("/v2/entities/E/attrs", json=nulled, headers=tenant.headers).status_code == 204
    assert tenant.query("intersects", "box", "19,19;21,21") == []


# --- GeoJSON ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(GEOJSON_TYPES))
def test_supported_geojson_types_are_stored_rendered_and_queried(tenant: Tenant, kind: str) -> None:
    """orion-api.md, "GeoJSON": Point, MultiPoint, LineString, MultiLineString, Polygon and
    MultiPolygon are supported; the value reads back as given."""
    value = {"type": kind, "coordinates": GEOJSON_TYPES[kind]}
    tenant.add({"id": "E", "location": {"type": "geo:json", "value": value}})
    assert tenant.value("E", "location") == value
    assert tenant.query("intersects", "box", AROUND_MADRID) == ["E"]
    assert tenant.query("coveredBy", "box", AROUND_MADRID) == ["E"]
    assert tenant.query("intersects", "box", FAR_AWAY) == []


def test_longitude_comes_before_latitude(tenant: Tenant) -> None:
    """orion-api.md, "GeoJSON" (the Barcelona example): "longitude comes before latitude in
    GeoJSON coordinates", while ``coords`` of a query are latitude,longitude pairs."""
    tenant.add({"id": "Barcelona", "location": geojson("Point", [2.186447514, 41.3763726])})
    assert tenant.query("near;maxDistance:10", "point", "41.3763726,2.186447514") == ["Barcelona"]
    assert tenant.query("near;maxDistance:10", "point", "2.186447514,41.3763726") == []


def test_point_altitude_is_kept(tenant: Tenant) -> None:
    """orion-api.md, "GeoJSON": GeoJSON allows "the representation of point altitudes"."""
    tenant.add({"id": "Peak", "location": geojson("Point", [-3.7, 40.4, 2430])})
    assert tenant.value("Peak", "location") == {"type": "Point", "coordinates": [-3.7, 40.4, 2430]}
    assert tenant.query("near;maxDistance:10", "point", "40.4,-3.7") == ["Peak"]


def test_geometry_collection_is_not_supported(tenant: Tenant) -> None:
    """orion-api.md, "GeoJSON": "The only GeoJSON type not supported at all is
    GeometryCollection". Orion fails storing it; here it is a 400 (nothing is stored)."""
    collection = {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [1, 2]}]}
    response = tenant.post({"id": "E", "location": {"type": "geo:json", "value": collection}})
    error_of(response, 400, "BadRequest", "Wrong GeoJson")
    error_of(tenant.get("/v2/entities/E"), 404, "NotFound")


@pytest.mark.parametrize("value", [
    {"type": "Point", "coordinates": [200, 10]},  # longitude out of range
    {"type": "Point", "coordinates": ["1", "2"]},
    {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0]]]},  # ring not closed
    {"type": "Circle", "coordinates": [1, 2]},
    {"coordinates": [1, 2]},
], ids=["out-of-range", "strings", "open-ring", "unknown-type", "no-type"])
def test_a_value_that_is_no_valid_geojson_is_refused(tenant: Tenant, value: dict[str, Any]) -> None:
    """orion-api.md, "GeoJSON": "The attribute value must be a valid GeoJSON object"; Orion
    answers 400 ``Wrong GeoJson`` (its functional test 3949) and stores nothing."""
    error_of(tenant.post({"id": "E", "location": {"type": "geo:json", "value": value}}), 400, "BadRequest",
             "Wrong GeoJson")
    error_of(tenant.get("/v2/entities/E"), 404, "NotFound")


@pytest.mark.parametrize("value", ["40.4, -3.7", 5, [1, 2], True])
def test_a_geojson_attribute_needs_an_object(tenant: Tenant, value: Any) -> None:
    """orion-api.md, "GeoJSON": the value must be a GeoJSON object (or null, "Special
    Attribute Types"); the text is Orion's (functional test 3533 null_in_geo_json)."""
    error_of(tenant.post({"id": "E", "location": {"type": "geo:json", "value": value}}), 400, "BadRequest",
             "geo:json needs an object or null as value")


# --- GeoJSON: Feature and FeatureCollection ----------------------------------------------


POINT = {"type": "Point", "coordinates": [-3.61, 40.54]}


def _all_renderings(tenant: Tenant, entity_id: str) -> list[Any]:
    """The value of ``location`` in every GET that shows it."""
    found = [
        tenant.get(f"/v2/entities/{entity_id}").json()["location"]["value"],
        tenant.get(f"/v2/entities/{entity_id}", options="keyValues").json()["location"],
        tenant.get(f"/v2/entities/{entity_id}", options="values", attrs="location").json()[0],
        tenant.get(f"/v2/entities/{entity_id}/attrs").json()["location"]["value"],
        tenant.get(f"/v2/entities/{entity_id}/attrs/location").json()["value"],
        tenant.get(f"/v2/entities/{entity_id}/attrs/location/value").json(),
        tenant.get("/v2/entities", id=entity_id).json()[0]["location"]["value"],
    ]
    query = tenant.client.post("/v2/op/query", json={"entities": [{"id": entity_id}]}, headers=tenant.headers)
    found.append(query.json()[0]["location"]["value"])
    return found


def test_a_feature_shows_only_its_geometry(tenant: Tenant) -> None:
    """orion-api.md, "GeoJSON": a ``Feature`` may create or update a geo:json attribute, and
    "when the attribute value is retrieved (GET responses or notifications) you will get only
    the content of the geometry field"; the geometry is the entity's location."""
    tenant.add({"id": "E", "location": {"type": "geo:json", "value": feature(POINT, label="here")}})
    assert _all_renderings(tenant, "E") == [POINT] * 8
    assert tenant.query("near;maxDistance:1", "point", "40.54,-3.61") == ["E"]


def test_a_feature_collection_shows_the_geometry_of_its_feature(tenant: Tenant) -> None:
    """orion-api.md, "GeoJSON": a ``FeatureCollection`` shows "the geometry field of the first
    item of the features array", and that geometry is the location."""
    collection = {"type": "FeatureCollection", "features": [feature(POINT, label="here")]}
    tenant.add({"id": "E", "location": {"type": "geo:json", "value": collection}})
    assert _all_renderings(tenant, "E") == [POINT] * 8
    assert tenant.query("near;maxDistance:1", "point", "40.54,-3.61") == ["E"]


def test_a_feature_collection_needs_exactly_one_feature(tenant: Tenant) -> None:
    """orion-api.md, "GeoJSON": a FeatureCollection "is only accepted at creation/update time
    only if it contains a single Feature ... Otherwise, Orion would return an BadRequest error"
    (texts of Orion's functional test 4114 geojson_feature_errors)."""
    two = {"type": "FeatureCollection", "features": [feature(POINT), feature(POINT)]}
    none: dict[str, Any] = {"type": "FeatureCollection", "features": []}
    error_of(tenant.post({"id": "E", "location": {"type": "geo:json", "value": two}}), 400, "BadRequest",
             "error parsing location attribute: features in FeatureCollection has more than 1 item")
    error_of(tenant.post({"id": "E", "location": {"type": "geo:json", "value": none}}), 400, "BadRequest",
             "error parsing location attribute: features in FeatureCollection has 0 items")
    error_of(tenant.get("/v2/entities/E"), 404, "NotFound")


def test_the_whole_feature_is_stored(tenant: Tenant) -> None:
    """orion-api.md, "GeoJSON": "actually Orion stores the full value used at Feature or
    FeatureCollection creation/updating time": a filter on its properties finds it."""
    tenant.add({"id": "E", "location": {"type": "geo:json", "value": feature(POINT, label="here")}},
               {"id": "F", "location": {"type": "geo:json", "value": feature(POINT, label="there")}})
    assert tenant.ids(q="location.properties.label==here") == ["E"]


def test_ignore_type_shows_the_whole_feature_and_drops_the_location(tenant: Tenant) -> None:
    """orion-api.md, "GeoJSON": ``ignoreType`` disables the special processing of Feature,
    "but in that case also entity location will be ignored"."""
    value = feature(POINT, label="here")
    attr = {"type": "geo:json", "value": value, "metadata": {"ignoreType": {"type": "Boolean", "value": True}}}
    tenant.add({"id": "E", "location": attr})
    assert _all_renderings(tenant, "E") == [value] * 8
    assert tenant.query("near;maxDistance:1", "point", "40.54,-3.61") == []


def test_a_feature_is_notified_as_its_geometry(tenant: Tenant, receiver: Receiver) -> None:
    """orion-api.md, "GeoJSON": the geometry only, in notifications too."""
    subscription = {"subject": {"entities": [{"idPattern": ".*"}]}, "notification": {"http": {"url": receiver.url}}}
    created = tenant.client.post("/v2/subscriptions", json=subscription, headers=tenant.headers)
    assert created.status_code == 201, created.text
    tenant.add({"id": "E", "location": {"type": "geo:json", "value": feature(POINT, label="here")}})
    deadline = time.monotonic() + 10
    while receiver.count() < 1 and time.monotonic() < deadline:
        tenant.client.get("/version")  # the in-process broker sends while it serves a request
    receiver.wait_for(1)
    _, body = receiver.received[0]
    assert body["data"][0]["location"] == {"type": "geo:json", "value": POINT, "metadata": {}}


# --- Geographical Queries ------------------------------------------------------------------


@pytest.fixture
def around(tenant: Tenant) -> Tenant:
    """Three points due north of the manual's reference point (lat -40.4, lon -3.5), at
    about 500 m, 3 km and 10 km (one degree of latitude is about 111.3 km), and one entity
    without location."""
    tenant.add(
        {"id": "At500m", "location": geojson("Point", [-3.5, -40.3955])},
        {"id": "At3km", "location": geojson("Point", [-3.5, -40.373])},
        {"id": "At10km", "location": geojson("Point", [-3.5, -40.31])},
        {"id": "Nowhere", "temperature": {"value": 1}},
    )
    return tenant


def test_near_max_distance(around: Tenant) -> None:
    """orion-api.md, "Geographical Queries": ``georel=near;maxDistance:1000&geometry=point&
    coords=-40.4,-3.5``: "Matching entities must be located (at most) 1000 meters from the
    reference point"."""
    assert around.query("near;maxDistance:1000", "point", "-40.4,-3.5") == ["At500m"]
    assert around.query("near;maxDistance:5000", "point", "-40.4,-3.5") == ["At500m", "At3km"]


def test_near_min_distance(around: Tenant) -> None:
    """orion-api.md, "Geographical Queries": ``georel=near;minDistance:5000``: "Matching
    entities must be (at least) 5000 meters from the reference point"."""
    assert around.query("near;minDistance:5000", "point", "-40.4,-3.5") == ["At10km"]


def test_near_both_distances(around: Tenant) -> None:
    """orion-api.md, "Geographical Queries": ``near`` takes the two modifiers together."""
    assert around.query("near;minDistance:1000;maxDistance:5000", "point", "-40.4,-3.5") == ["At3km"]


def test_order_by_geo_distance(around: Tenant) -> None:
    """orion-api.md, "Ordering Results": ``geo:distance`` orders by distance to the reference
    point of a ``near`` query."""
    ordered = around.query("near;maxDistance:20000", "point", "-40.3,-3.5", orderBy="geo:distance")
    assert ordered == ["At10km", "At3km", "At500m"]


def test_geo_query_combines_with_other_filters(around: Tenant) -> None:
    """orion-api.md, "List Entities": "A given entity has to match all the criteria"."""
    assert around.query("near;maxDistance:5000", "point", "-40.4,-3.5", idPattern="km$") == ["At3km"]
    assert around.query("near;maxDistance:5000", "point", "-40.4,-3.5", q="temperature") == []


def test_geo_query_counts_and_pages(around: Tenant) -> None:
    """orion-api.md, "Pagination": ``options=count`` counts the entities the geo-query
    matches, ``limit``/``offset`` page through them."""
    response = around.get(georel="near;maxDistance:20000", geometry="point", coords="-40.4,-3.5",
                          options="count", limit="1", offset="1")
    assert ids_of(response) == ["At3km"]
    assert response.headers["Fiware-Total-Count"] == "3"


@pytest.fixture
def caribbean(tenant: Tenant) -> Tenant:
    """Entities around the manual's polygon (Miami, San Juan, Bermuda)."""
    tenant.add(
        {"id": "Inside", "location": geojson("Point", [-70.35, 25.52])},
        {"id": "Miami", "location": geojson("Point", [-80.190, 25.774])},  # a vertex: on the border
        {"id": "Crossing", "location": geojson("LineString", [[-70.35, 25.52], [-60.0, 20.0]])},
        {"id": "InnerLine", "location": geojson("LineString", [[-70.35, 25.52], [-70.0, 26.0]])},
        {"id": "Madrid", "location": geojson("Point", [-3.7, 40.4])},
        {"id": "Nowhere", "temperature": {"value": 1}},
    )
    return tenant


BERMUDA = "25.774,-80.190;18.466,-66.118;32.321,-64.757;25.774,-80.190"


def test_covered_by_polygon_includes_the_border(caribbean: Tenant) -> None:
    """orion-api.md, "Geographical Queries": ``coveredBy`` (the manual's polygon example):
    entities "that exist entirely within the reference geometry", "the border of the shape
    must be considered to be part of the shape"."""
    assert caribbean.query("coveredBy", "polygon", BERMUDA) == ["Inside", "Miami", "InnerLine"]


def test_intersects_polygon(caribbean: Tenant) -> None:
    """orion-api.md, "Geographical Queries": ``intersects``: entities intersecting with the
    reference geometry, partly inside ones too."""
    assert caribbean.query("intersects", "polygon", BERMUDA) == ["Inside", "Miami", "Crossing", "InnerLine"]


def test_disjoint_polygon(caribbean: Tenant) -> None:
    """orion-api.md, "Geographical Queries": ``disjoint``: entities **not** intersecting with
    the reference geometry. Unlike "Query Resolution" (an entity without location matches no
    geo-query), Orion's ``disjoint`` is MongoDB's ``$not: {$geoIntersects}``, which also
    selects entities without location; the broker does as Orion does."""
    assert caribbean.query("disjoint", "polygon", BERMUDA) == ["Madrid", "Nowhere"]


@pytest.mark.parametrize(("georel", "geometry", "coords"), [
    ("near;maxDistance:100000000", "point", "0,0"),
    ("coveredBy", "box", "-90,-180;90,180"),
    ("intersects", "box", "-90,-180;90,180"),
    ("equals", "point", "25.52,-70.35"),
])
def test_an_entity_without_location_matches_no_other_geo_query(
    caribbean: Tenant, georel: str, geometry: str, coords: str
) -> None:
    """orion-api.md, "Query Resolution": an entity without a location attribute "will not
    match any geographical query" (for ``disjoint`` see test_disjoint_polygon)."""
    assert "Nowhere" not in caribbean.query(georel, geometry, coords)


def test_equals(tenant: Tenant) -> None:
    """orion-api.md, "Geographical Queries": ``equals``: "The geometry associated to the
    position of matching entities and the reference geometry must be exactly the same"."""
    ring = [[0, 0], [0, 6], [6, 6], [6, 0], [0, 0]]  # lon,lat
    tenant.add({"id": "P", "location": geojson("Point", [15, 15])},
               {"id": "Square", "location": geojson("Polygon", [ring])},
               {"id": "Line", "location": geojson("LineString", [[5, 5], [5, 9]])})
    assert tenant.query("equals", "point", "15,15") == ["P"]
    assert tenant.query("equals", "point", "15,15.0001") == []
    assert tenant.query("equals", "polygon", "0,0;6,0;6,6;0,6;0,0") == ["Square"]
    assert tenant.query("equals", "line", "5,5;9,5") == ["Line"]
    assert tenant.query("equals", "line", "9,5;5,5") == []


def test_line_and_box_reference_shapes(tenant: Tenant) -> None:
    """orion-api.md, "Geographical Queries": ``geometry=line`` (a list of pairs) and
    ``geometry=box`` (two pairs: opposite corners, in either order)."""
    tenant.add({"id": "A", "location": geojson("Point", [5, 5])},
               {"id": "B", "location": geojson("Point", [20, 20])})
    assert tenant.query("intersects", "line", "0,0;10,10") == ["A"]
    assert tenant.query("intersects", "line", "0,0;10,10;30,30") == ["A", "B"]
    assert tenant.query("coveredBy", "box", "0,0;10,10") == ["A"]
    assert tenant.query("coveredBy", "box", "10,10;0,0") == ["A"]
    assert tenant.query("coveredBy", "box", "0,10;10,0") == ["A"]
    assert tenant.query("disjoint", "box", "0,0;10,10") == ["B"]


def test_georel_and_coords_may_hold_semicolons(tenant: Tenant) -> None:
    """orion-api.md, "General syntax restrictions": "URL parameter georel and coords allow
    ;" (other forbidden characters stay forbidden in them, but ``=``, which Orion lets the
    georel parser refuse: its case 2174)."""
    tenant.add({"id": "A", "location": geojson("Point", [5, 5])})
    assert tenant.query("near;minDistance:0;maxDistance:10", "point", "5,5") == ["A"]
    for params in ({"georel": "near;maxDistance:10'", "coords": "5,5"},
                   {"georel": "near;maxDistance:10", "coords": "5,5("},
                   {"georel": "near;maxDistance:10", "coords": "5,5", "geometry": "point;"}):
        query = {"geometry": "point", **params}
        error_of(tenant.get(**query), 400, "BadRequest", "invalid character in URI parameter")
    query = {"georel": "near;maxDistance=10", "geometry": "point", "coords": "5,5"}
    error_of(tenant.get(**query), 400, "BadRequest", "Invalid query: Invalid modifier in georel parameter")


# --- Geographical Queries: errors ---------------------------------------------------------


@pytest.mark.parametrize(("params", "description"), [
    # "geometry, georel and coords have to be provided together" (orion-api.md, subscription
    # ``expression``); the text is Orion's.
    ({"georel": "near;maxDistance:1000", "geometry": "point"},
     "partial geo expression: geometry, georel and coords have to be provided together"),
    ({"georel": "near;maxDistance:1000", "coords": "1,2"},
     "partial geo expression: geometry, georel and coords have to be provided together"),
    ({"geometry": "point", "coords": "1,2"},
     "partial geo expression: geometry, georel and coords have to be provided together"),
    # Only point, line, polygon and box are geometries.
    ({"georel": "intersects", "geometry": "circle", "coords": "1,2"},
     "Invalid query: error parsing geometry: Invalid selector in geometry specification"),
    # coords: latitude,longitude pairs.
    ({"georel": "intersects", "geometry": "point", "coords": "1"}, "Invalid query: invalid coordinates"),
    ({"georel": "intersects", "geometry": "point", "coords": "1,x"}, "Invalid query: invalid coordinates"),
    ({"georel": "intersects", "geometry": "line", "coords": "1,2;3"}, "Invalid query: invalid coordinates"),
    # georel: a relation name, then modifiers (only near takes any).
    ({"georel": "bogus", "geometry": "point", "coords": "1,2"}, "Invalid query: Invalid modifier in georel parameter"),
    ({"georel": "intersects;maxDistance:10", "geometry": "point", "coords": "1,2"},
     "Invalid query: Invalid modifier in georel parameter"),
    # coveredBy needs a shape with an inside.
    ({"georel": "coveredBy", "geometry": "point", "coords": "1,2"},
     "Invalid query: point geometry cannot be used with coveredBy georel"),
    ({"georel": "coveredBy", "geometry": "line", "coords": "1,2;3,4"},
     "Invalid query: line geometry cannot be used with coveredBy georel"),
])
def test_geo_query_errors_with_orion_texts(tenant: Tenant, params: dict[str, str], description: str) -> None:
    """orion-api.md, "Geographical Queries": the parameters and their values; malformed ones
    are 400 with the texts Orion's functional tests show (1177 geometry_and_coords,
    1306 string2double, 1678 geosubscriptions_errors)."""
    error_of(tenant.get(**params), 400, "BadRequest", description)


@pytest.mark.parametrize(("georel", "geometry", "coords"), [
    ("near;maxDistance:1000", "point", "1,2;3,4"),  # a point is one pair
    ("intersects", "line", "1,2"),  # a line is a list of pairs
    ("intersects", "box", "1,2"),  # a box is two pairs
    ("intersects", "box", "1,2;3,4;5,6"),
    ("intersects", "polygon", "1,2;3,4;1,2"),  # a polygon is at least four pairs
    ("intersects", "polygon", "1,2;3,4;5,6"),
    ("near;maxDistance:1000", "box", "1,2;3,4"),  # near: a distance to a point
    ("near;maxDistance:x", "point", "1,2"),  # distances are numbers of metres
    ("near;maxDistance:-5", "point", "1,2"),
])
def test_coords_must_fit_the_geometry(tenant: Tenant, georel: str, geometry: str, coords: str) -> None:
    """orion-api.md, "Geographical Queries": point: "a pair"; line: "a list of pairs"; polygon:
    "at least four pairs"; box: "two pairs"; near's distances are metres. The manual gives no
    text for these: they are 400 BadRequest "Invalid query: ..."."""
    body = error_of(tenant.get(georel=georel, geometry=geometry, coords=coords), 400, "BadRequest")
    assert body["description"].startswith("Invalid query: ")


# --- Simple Location Format (deprecated.md) ------------------------------------------------


def test_deprecated_simple_location_types_still_locate(tenant: Tenant) -> None:
    """deprecated.md: ``geo:point``, ``geo:line``, ``geo:box`` and ``geo:polygon`` are deprecated
    (use geo:json) but not removed; their values are "lat, lon" strings, kept as given."""
    tenant.add(
        {"id": "Point", "location": {"type": "geo:point", "value": "40.418889, -3.691944"}},
        {"id": "Line", "location": {"type": "geo:line", "value": ["10, 10", "12, 12"]}},
        {"id": "Box", "location": {"type": "geo:box", "value": ["20, 20", "22, 22"]}},
        {"id": "Polygon", "location": {"type": "geo:polygon", "value": ["30, 30", "32, 30", "32, 32", "30, 30"]}},
    )
    assert tenant.value("Point", "location") == "40.418889, -3.691944"
    assert tenant.value("Box", "location") == ["20, 20", "22, 22"]
    assert tenant.query("near;maxDistance:100", "point", "40.418889,-3.691944") == ["Point"]
    assert tenant.query("intersects", "box", "11,10;11.5,10.5") == []
    assert tenant.query("intersects", "line", "9,11;13,11") == ["Line"]
    assert tenant.query("coveredBy", "box", "19,19;23,23") == ["Box"]
    assert tenant.query("intersects", "point", "31,31") == ["Polygon"]
