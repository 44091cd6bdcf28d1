"""Entity listing as a client sees it: GET /v2/entities (selection, q, mq, geo-queries,
ordering, paging, projections) and GET /v2/types, /v2/types/{type}.

Every test writes into a tenant of its own (``Fiware-Service``), so a listing sees only
that test's entities. The module runs twice: on the in-memory store and on SQLite, whose
store does the paging and part of the filtering itself (broker/listing.py hands it over).
Each group cites the section of Orion's NGSI-v2 manual (orion-api.md) it follows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.broker.api_client import ApiClient, broker_client, error_of, ids_of, new_id


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiClient]:
    if request.param == "memory":
        uri = "memory://"
    else:
        uri = f"sqlite:///{Path(tmp_path_factory.mktemp('listing')) / 'broker.db'}"
    with broker_client(db_uri=uri) as c:
        yield c


class Tenant:
    """A tenant of one test: its entities are created in order (creation order matters)."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.headers = {"Fiware-Service": new_id("t").lower()}

    def add(self, *entities: dict[str, Any], path: str | None = None) -> None:
        headers = dict(self.headers, **({"Fiware-ServicePath": path} if path else {}))
        for entity in entities:
            response = self.client.post("/v2/entities", json=entity, headers=headers)
            assert response.status_code == 201, response.text

    def batch(self, entities: list[dict[str, Any]]) -> None:
        for start in range(0, len(entities), 500):
            response = self.client.post("/v2/op/update", headers=self.headers,
                                        json={"actionType": "append", "entities": entities[start:start + 500]})
            assert response.status_code == 204, response.text

    def get(self, path: str = "/v2/entities", **params: str) -> Any:
        return self.client.get(path, params=params, headers=self.headers)

    def ids(self, **params: str) -> list[str]:
        return ids_of(self.get(**params))


@pytest.fixture
def tenant(client: ApiClient) -> Tenant:
    return Tenant(client)


@pytest.fixture
def rooms(tenant: Tenant) -> Tenant:
    """R1..R3 (Room), C1, C2 (Car), created in that order."""
    tenant.add(
        {"id": "R1", "type": "Room", "temperature": {"value": 20}, "name": {"value": "alpha"},
         "color": {"value": "red"}, "tags": {"value": ["a", "b"]}, "st": {"value": {"a": {"b": 5}, "c.d": 1}},
         "seen": {"value": "2020-01-01T00:00:00Z", "type": "DateTime"}},
        {"id": "R2", "type": "Room", "temperature": {"value": 25, "metadata": {"accuracy": {"value": 0.8}}},
         "name": {"value": "beta"}, "color": {"value": "blue"},
         "seen": {"value": "2021-06-01T00:00:00Z", "type": "DateTime"}},
        {"id": "R3", "type": "Room", "temperature": {"value": 30, "metadata": {"accuracy": {"value": 0.95}}},
         "name": {"value": "gamma"}, "color": {"value": "light,green"}},
        {"id": "C1", "type": "Car", "speed": {"value": 100}, "name": {"value": "20"}},
        {"id": "C2", "type": "Car", "speed": {"value": 20}, "name": {"value": 20}},
    )
    return tenant


# --- List Entities `GET /v2/entities`: id, type, idPattern, typePattern --------------------


def test_empty_tenant_lists_nothing(tenant: Tenant) -> None:
    response = tenant.get()
    assert (response.status_code, response.headers["content-type"], response.json()) == (200, "application/json", [])


def test_default_order_is_creation_order(rooms: Tenant) -> None:
    assert rooms.ids() == ["R1", "R2", "R3", "C1", "C2"]


@pytest.mark.parametrize(("params", "expected"), [
    ({"id": "R1,C1"}, ["R1", "C1"]),
    ({"id": "R2"}, ["R2"]),
    ({"id": "nothing"}, []),
    ({"idPattern": "^R[12]"}, ["R1", "R2"]),
    ({"idPattern": "2$"}, ["R2", "C2"]),
    ({"idPattern": ".*"}, ["R1", "R2", "R3", "C1", "C2"]),
    ({"type": "Car"}, ["C1", "C2"]),
    ({"type": "Car,Room"}, ["R1", "R2", "R3", "C1", "C2"]),
    ({"typePattern": "^C"}, ["C1", "C2"]),
    ({"typePattern": "o+m"}, ["R1", "R2", "R3"]),
    ({"idPattern": "1$", "type": "Car"}, ["C1"]),
    ({"id": "R1,C1", "typePattern": "Ro"}, ["R1"]),
])
def test_selection(rooms: Tenant, params: dict[str, str], expected: list[str]) -> None:
    assert rooms.ids(**params) == expected


@pytest.mark.parametrize(("params", "description"), [
    ({"id": "R1", "idPattern": "R"}, "Incompatible parameters: id, IdPattern"),
    ({"type": "Car", "typePattern": "C"}, "Incompatible parameters: type, typePattern"),
    ({"idPattern": "["}, "Invalid regex for entity idPattern"),
    ({"typePattern": "(x"}, "Invalid regex for entity typePattern"),
])
def test_selection_errors(rooms: Tenant, params: dict[str, str], description: str) -> None:
    error_of(rooms.get(**params), 400, "BadRequest", description)


# --- Simple Query Language (q) -------------------------------------------------------------


@pytest.mark.parametrize(("q", "expected"), [
    ("temperature>20", ["R2", "R3"]),
    ("temperature>=25", ["R2", "R3"]),
    ("temperature<25", ["R1"]),
    ("temperature<=25", ["R1", "R2"]),
    ("temperature==25", ["R2"]),
    ("temperature:25", ["R2"]),  # ':' is '=='
    ("temperature!=25", ["R1", "R3"]),
    ("temperature==20..26", ["R1", "R2"]),
    ("temperature!=20..26", ["R3"]),
    ("temperature==20,30", ["R1", "R3"]),
    ("temperature!=20,30", ["R2"]),
    ("temperature>=25;color==blue", ["R2"]),  # ';' is AND
    ("color==red,blue", ["R1", "R2"]),
    ("color=='light,green'", ["R3"]),  # quotes disable the comma
    ("name==alpha..beta", ["R1", "R2"]),  # string range
    ("name==20", ["C2"]),  # a number
    ("name=='20'", ["C1"]),  # quotes force a string
    ("name~=^g", ["R3"]),
    ("name~=a$", ["R1", "R2", "R3"]),
    ("name>alpha", ["R2", "R3"]),
    ("temperature", ["R1", "R2", "R3"]),  # unary: exists
    ("!temperature", ["C1", "C2"]),  # negated unary: does not exist
    ("tags==a", ["R1"]),  # an array value includes the value
    ("tags!=c", ["R1"]),
    ("st.a.b==5", ["R1"]),  # path into a structured value
    ("st.'c.d'==1", ["R1"]),  # quoted token holding a dot
    ("seen>2020-06-01", ["R2"]),  # DateTime comparisons
    ("seen<2020-06-01T00:00:00Z", ["R1"]),
    ("seen==2019-01-01..2020-12-31", ["R1"]),
    ("speed>50;!temperature", ["C1"]),
    ("nothing==1", []),
])
def test_q_filters(rooms: Tenant, q: str, expected: list[str]) -> None:
    assert rooms.ids(q=q) == expected


def test_q_on_builtin_dates(rooms: Tenant) -> None:
    # Builtin Attributes: they can be used in q filters
    assert rooms.ids(q="dateCreated>2000-01-01", type="Car") == ["C1", "C2"]
    assert rooms.ids(q="dateModified<2000-01-01") == []


def test_builtins_in_q_and_order_by(tenant: Tenant) -> None:
    # Builtin Attributes: usable in q and orderBy; alterationType only in notifications
    tenant.add({"id": "Deep"}, path="/z/y")
    tenant.add({"id": "Root"})
    assert tenant.ids(q="servicePath==/z/y") == ["Deep"]
    assert tenant.ids(orderBy="servicePath") == ["Root", "Deep"]
    assert tenant.ids(orderBy="!servicePath") == ["Deep", "Root"]
    assert tenant.get(attrs="alterationType", options="keyValues").json() == [
        {"id": "Deep", "type": "Thing"}, {"id": "Root", "type": "Thing"},
    ]


def test_null_datetime_is_left_out_of_filters(tenant: Tenant) -> None:
    # Datetime support: "A DateTime attribute with null value will not be taken into account in filters"
    tenant.add({"id": "Null", "ts": {"value": None, "type": "DateTime"}},
               {"id": "Set", "ts": {"value": "2020-01-01", "type": "DateTime"}})
    assert tenant.ids(q="ts>2000-01-01") == ["Set"]
    assert tenant.ids(q="ts<2030-01-01") == ["Set"]


@pytest.mark.parametrize(("q", "description"), [
    ("temperature>>3", "forbidden characters in String Filter"),
    ("", "Empty right-hand-side for URI param /q/"),
])
def test_q_errors(rooms: Tenant, q: str, description: str) -> None:
    error_of(rooms.get(q=q), 400, "BadRequest", description)


@pytest.mark.parametrize(("mq", "expected"), [
    ("temperature.accuracy", ["R2", "R3"]),
    ("!temperature.accuracy", ["R1", "C1", "C2"]),
    ("temperature.accuracy>0.9", ["R3"]),
    ("temperature.accuracy<0.9", ["R2"]),
    ("temperature.accuracy==0.8", ["R2"]),
    ("temperature.accuracy==0.7..0.9", ["R2"]),
])
def test_mq_filters(rooms: Tenant, mq: str, expected: list[str]) -> None:
    assert rooms.ids(mq=mq) == expected


def test_q_mq_and_selection_combine(rooms: Tenant) -> None:
    assert rooms.ids(q="temperature>10", mq="temperature.accuracy>0.5", idPattern="3$") == ["R3"]


# --- Geographical Queries; Geospatial properties of entities ------------------------------


@pytest.fixture
def places(tenant: Tenant) -> Tenant:
    """Madrid (point), a square around Madrid (polygon), Barcelona (point), nowhere."""
    tenant.add(
        {"id": "Madrid", "type": "P",
         "location": {"type": "geo:json", "value": {"type": "Point", "coordinates": [-3.7, 40.4]}}},
        {"id": "Square", "type": "P", "location": {"type": "geo:json", "value": {"type": "Polygon", "coordinates": [
            [[-3.8, 40.3], [-3.6, 40.3], [-3.6, 40.5], [-3.8, 40.5], [-3.8, 40.3]]]}}},
        {"id": "Barcelona", "type": "P",
         "location": {"type": "geo:json", "value": {"type": "Point", "coordinates": [2.17, 41.38]}}},
        {"id": "Nowhere", "type": "P"},
    )
    return tenant


@pytest.mark.parametrize(("georel", "geometry", "coords", "expected"), [
    ("near;maxDistance:1000", "point", "40.4,-3.7", ["Madrid", "Square"]),
    ("near;maxDistance:25000", "point", "40.5,-3.9", ["Madrid", "Square"]),
    ("near;maxDistance:1000", "point", "41.38,2.17", ["Barcelona"]),
    ("near;minDistance:1000", "point", "40.4,-3.7", ["Barcelona"]),
    ("near;minDistance:1000;maxDistance:1000000", "point", "40.4,-3.7", ["Barcelona"]),
    ("coveredBy", "polygon", "40,-4;41,-4;41,-3;40,-3;40,-4", ["Madrid", "Square"]),
    ("coveredBy", "polygon", "40.35,-3.75;40.45,-3.75;40.45,-3.65;40.35,-3.65;40.35,-3.75", ["Madrid"]),
    ("coveredBy", "box", "40,-4;41,-3", ["Madrid", "Square"]),
    ("intersects", "point", "40.4,-3.7", ["Madrid", "Square"]),
    ("intersects", "point", "40.31,-3.79", ["Square"]),
    ("intersects", "polygon", "40.35,-3.75;40.45,-3.75;40.45,-3.65;40.35,-3.65;40.35,-3.75", ["Madrid", "Square"]),
    ("intersects", "polygon", "41,2;42,2;42,3;41,3;41,2", ["Barcelona"]),
    ("intersects", "line", "40.0,-3.7;40.35,-3.7", ["Square"]),
    ("disjoint", "point", "40.4,-3.7", ["Barcelona", "Nowhere"]),
    ("equals", "point", "40.4,-3.7", ["Madrid"]),
])
def test_geo_queries(places: Tenant, georel: str, geometry: str, coords: str, expected: list[str]) -> None:
    assert places.ids(georel=georel, geometry=geometry, coords=coords) == expected


def test_near_order_by_distance(places: Tenant) -> None:
    # Ordering Results: geo:distance with georel=near
    params = {"georel": "near;maxDistance:2000000", "geometry": "point", "coords": "41.3,2.1"}
    assert places.ids(**params) == ["Madrid", "Square", "Barcelona"]  # creation order
    assert places.ids(**params, orderBy="geo:distance") == ["Barcelona", "Square", "Madrid"]


def test_geo_query_with_other_filters(places: Tenant) -> None:
    assert places.ids(georel="near;maxDistance:1000", geometry="point", coords="40.4,-3.7", idPattern="^S") == ["Square"]


@pytest.mark.parametrize(("params", "description"), [
    ({"georel": "near;maxDistance:1000", "geometry": "point"},
     "partial geo expression: geometry, georel and coords have to be provided together"),
    ({"georel": "coveredBy", "geometry": "point", "coords": "40.4,-3.7"},
     "Invalid query: point geometry cannot be used with coveredBy georel"),
    ({"georel": "bogus", "geometry": "point", "coords": "1,2"}, "Invalid query: Invalid modifier in georel parameter"),
])
def test_geo_query_errors(places: Tenant, params: dict[str, str], description: str) -> None:
    error_of(places.get(**params), 400, "BadRequest", description)


@pytest.mark.parametrize("params", [
    {"georel": "near;maxDistance:1000", "geometry": "circle", "coords": "1,2"},
    {"georel": "near;maxDistance:1000", "geometry": "point", "coords": "1,x"},
])
def test_bad_geometry_or_coords(places: Tenant, params: dict[str, str]) -> None:
    error_of(places.get(**params), 400, "BadRequest")


def test_second_location_needs_ignore_type(tenant: Tenant) -> None:
    # Geospatial properties of entities: one location per entity (413 NoResourcesAvailable), unless ignoreType
    point = {"type": "geo:json", "value": {"type": "Point", "coordinates": [1, 1]}}
    response = tenant.client.post("/v2/entities", headers=tenant.headers,
                                  json={"id": new_id(), "location": point, "other": point})
    error_of(response, 413, "NoResourcesAvailable")
    tenant.add({"id": "Two", "location": point, "other": dict(point, metadata={"ignoreType": {"value": True}})})
    assert tenant.ids(georel="near;maxDistance:10", geometry="point", coords="1,1") == ["Two"]


# --- Ordering Results ---------------------------------------------------------------------


@pytest.mark.parametrize(("order", "expected"), [
    ("temperature", ["R1", "R2", "R3"]),
    ("!temperature", ["R3", "R2", "R1"]),
    ("id", ["R1", "R2", "R3"]),
    ("!id", ["R3", "R2", "R1"]),
    ("dateCreated", ["R1", "R2", "R3"]),
    ("!dateCreated", ["R3", "R2", "R1"]),
    ("!name", ["R3", "R2", "R1"]),
])
def test_order_by_one_key(rooms: Tenant, order: str, expected: list[str]) -> None:
    assert rooms.ids(type="Room", orderBy=order) == expected


def test_order_by_several_keys(tenant: Tenant) -> None:
    tenant.add(*({"id": f"E{i}", "type": t, "colour": {"value": c}, "n": {"value": n}}
                 for i, (t, c, n) in enumerate([("A", "red", 1), ("B", "blue", 2), ("A", "blue", 3), ("B", "red", 4)])))
    assert tenant.ids(orderBy="colour,!n") == ["E2", "E1", "E3", "E0"]
    assert tenant.ids(orderBy="type,!id") == ["E2", "E0", "E3", "E1"]
    assert tenant.ids(orderBy="!colour,dateCreated") == ["E0", "E3", "E1", "E2"]


def test_order_by_date_modified(tenant: Tenant) -> None:
    tenant.add({"id": "First"}, {"id": "Second"})
    response = tenant.client.patch("/v2/entities/First/attrs", json={"x": {"value": 1}}, headers=tenant.headers)
    assert response.status_code == 422  # x does not exist: nothing changes
    response = tenant.client.post("/v2/entities/First/attrs", json={"x": {"value": 1}}, headers=tenant.headers)
    assert response.status_code == 204
    assert tenant.ids(orderBy="dateModified") == ["Second", "First"]
    assert tenant.ids(orderBy="!dateModified") == ["First", "Second"]


def test_order_by_mixed_json_types(tenant: Tenant) -> None:
    # Ordering Results: Null < Number < String < Object < Array < Boolean
    values = [True, [1], {"a": 1}, "s", 5, None]
    tenant.add(*({"id": f"M{i}", "v": {"value": v}} for i, v in enumerate(values)))
    assert tenant.ids(orderBy="v") == ["M5", "M4", "M3", "M2", "M1", "M0"]
    assert tenant.ids(orderBy="!v") == ["M0", "M1", "M2", "M3", "M4", "M5"]


@pytest.mark.parametrize("order", ["age,age", "!age,!age", "age,!age", "age,name,age", "age,name,!age"])
def test_repeated_order_token_is_refused(rooms: Tenant, order: str) -> None:
    error_of(rooms.get(orderBy=order), 400, "BadRequest", "duplicate orderBy token detected")


# --- Pagination -----------------------------------------------------------------------------


def test_limit_offset_and_count(rooms: Tenant) -> None:
    response = rooms.get(limit="2", offset="2", options="count")
    assert ids_of(response) == ["R3", "C1"]
    assert response.headers["fiware-total-count"] == "5"
    response = rooms.get(offset="100", options="count")
    assert (response.json(), response.headers["fiware-total-count"]) == ([], "5")
    assert "fiware-total-count" not in rooms.get(limit="2").headers
    response = rooms.get(limit="0", options="count")
    assert (response.json(), response.headers["fiware-total-count"]) == ([], "5")


def test_count_follows_the_filters(rooms: Tenant) -> None:
    response = rooms.get(q="temperature>20", limit="1", options="count")
    assert (ids_of(response), response.headers["fiware-total-count"]) == (["R2"], "2")
    response = rooms.get(type="Car", options="count,keyValues")
    assert response.headers["fiware-total-count"] == "2"


def test_paging_with_order(rooms: Tenant) -> None:
    assert rooms.ids(orderBy="!id", limit="2") == ["R3", "R2"]
    assert rooms.ids(orderBy="!id", limit="2", offset="2") == ["R1", "C2"]


@pytest.mark.parametrize(("limit", "description"), [
    ("1001", "Bad pagination limit: /1001/ [max: 1000]"),
    ("-1", "Bad pagination limit: /-1/ [must be a decimal number]"),
    ("abc", "Bad pagination limit: /abc/ [must be a decimal number]"),
])
def test_bad_limits(rooms: Tenant, limit: str, description: str) -> None:
    error_of(rooms.get(limit=limit), 400, "BadRequest", description)


def test_bad_offset(rooms: Tenant) -> None:
    error_of(rooms.get(offset="-1"), 400, "BadRequest", "Bad pagination offset: /-1/ [must be a decimal number]")


def test_paging_past_1000(tenant: Tenant) -> None:
    total = 1205
    tenant.batch([{"id": f"P{i:05d}", "type": "Pg", "n": {"value": i}} for i in range(total)])
    assert len(tenant.ids()) == 20  # the default limit
    seen: list[str] = []
    for offset in range(0, 2000, 1000):
        response = tenant.get(limit="1000", offset=str(offset), options="count,keyValues", attrs="n")
        assert response.headers["fiware-total-count"] == str(total)
        seen += ids_of(response)
    assert seen == [f"P{i:05d}" for i in range(total)]
    assert tenant.ids(offset="1200", limit="10") == [f"P{i:05d}" for i in range(1200, total)]
    assert tenant.ids(offset="1100", limit="3", q="n>=1000") == []  # only 205 matches
    assert tenant.ids(offset="200", limit="3", q="n>=1000") == ["P01200", "P01201", "P01202"]
    assert tenant.ids(offset="1202", limit="3", orderBy="!n") == ["P00002", "P00001", "P00000"]


# --- Filtering out attributes and metadata; Simplified Entity Representation (lists) -------


def test_attrs_projection_in_lists(rooms: Tenant) -> None:
    response = rooms.get(type="Car", attrs="speed", options="keyValues")
    assert response.json() == [{"id": "C1", "type": "Car", "speed": 100}, {"id": "C2", "type": "Car", "speed": 20}]
    response = rooms.get(type="Car", attrs="nothing")
    assert response.json() == [{"id": "C1", "type": "Car"}, {"id": "C2", "type": "Car"}]
    response = rooms.get(id="C2", attrs="speed,dateCreated")
    assert set(response.json()[0]) == {"id", "type", "speed", "dateCreated"}


def test_list_representations(rooms: Tenant) -> None:
    assert rooms.get(type="Room", attrs="name,temperature", options="values").json() == [
        ["alpha", 20], ["beta", 25], ["gamma", 30],
    ]
    assert rooms.get(id="C2", attrs="speed,name", options="unique").json() == [[20]]
    normalized = rooms.get(id="C2").json()
    assert normalized == [{"id": "C2", "type": "Car", "name": {"type": "Number", "value": 20, "metadata": {}},
                           "speed": {"type": "Number", "value": 20, "metadata": {}}}]


def test_metadata_projection_in_lists(rooms: Tenant) -> None:
    body = rooms.get(id="R2", attrs="temperature", metadata="nothing").json()
    assert body[0]["temperature"]["metadata"] == {}
    body = rooms.get(id="R2", attrs="temperature", metadata="accuracy").json()
    assert body[0]["temperature"]["metadata"] == {"accuracy": {"type": "Number", "value": 0.8}}


# --- Service path in listings ----------------------------------------------------------------


def test_listing_by_service_path(tenant: Tenant) -> None:
    tenant.add({"id": "A1"}, path="/a")
    tenant.add({"id": "A2"}, path="/a/b")
    tenant.add({"id": "B1"}, path="/b")

    def ids(path: str) -> list[str]:
        return ids_of(tenant.client.get("/v2/entities", headers={**tenant.headers, "Fiware-ServicePath": path}))

    assert ids("/a") == ["A1"]
    assert ids("/a/#") == ["A1", "A2"]
    assert ids("/a,/b") == ["A1", "B1"]
    assert tenant.ids() == ["A1", "A2", "B1"]


# --- List Entity Types `GET /v2/types`; Retrieve entity information for a given type ---------


@pytest.fixture
def typed(tenant: Tenant) -> Tenant:
    tenant.add(
        {"id": "a1", "type": "Room", "temperature": {"value": 1}, "pressure": {"value": "x"}},
        {"id": "a2", "type": "Room", "temperature": {"value": "hot", "type": "Text"}},
        {"id": "a3", "type": "Car", "speed": {"value": 1}},
    )
    tenant.add({"id": "a4", "type": "Bike"}, path="/x")
    return tenant


def test_list_types(typed: Tenant) -> None:
    response = typed.get("/v2/types")
    assert (response.status_code, response.headers["content-type"]) == (200, "application/json")
    assert "fiware-total-count" not in response.headers
    assert response.json() == [  # ordered by type name
        {"type": "Bike", "attrs": {}, "count": 1},
        {"type": "Car", "attrs": {"speed": {"types": ["Number"]}}, "count": 1},
        {"type": "Room", "attrs": {"pressure": {"types": ["Text"]}, "temperature": {"types": ["Number", "Text"]}},
         "count": 2},
    ]


def test_list_types_values_count_and_paging(typed: Tenant) -> None:
    response = typed.get("/v2/types", options="values,count")
    assert (response.json(), response.headers["fiware-total-count"]) == (["Bike", "Car", "Room"], "3")
    response = typed.get("/v2/types", options="count", limit="1", offset="1")
    assert ([t["type"] for t in response.json()], response.headers["fiware-total-count"]) == (["Car"], "3")
    response = typed.get("/v2/types", options="count", limit="0")
    assert (response.json(), response.headers["fiware-total-count"]) == ([], "3")
    assert typed.get("/v2/types", options="values", offset="5").json() == []
    error_of(typed.get("/v2/types", limit="1001"), 400, "BadRequest", "Bad pagination limit: /1001/ [max: 1000]")


def test_list_types_no_attr_detail(typed: Tenant) -> None:
    body = typed.get("/v2/types", options="noAttrDetail").json()
    assert body[2] == {"type": "Room", "attrs": {"pressure": {"types": []}, "temperature": {"types": []}}, "count": 2}


def test_types_follow_service_path_and_tenant(typed: Tenant) -> None:
    response = typed.client.get("/v2/types", headers={**typed.headers, "Fiware-ServicePath": "/x"})
    assert response.json() == [{"type": "Bike", "attrs": {}, "count": 1}]
    assert typed.client.get("/v2/types", headers={"Fiware-Service": new_id("t").lower()}).json() == []


def test_get_one_type(typed: Tenant) -> None:
    response = typed.get("/v2/types/Room")
    assert response.status_code == 200
    assert response.json() == {
        "attrs": {"pressure": {"types": ["Text"]}, "temperature": {"types": ["Number", "Text"]}}, "count": 2,
    }
    assert typed.get("/v2/types/Room", options="noAttrDetail").json() == {
        "attrs": {"pressure": {"types": []}, "temperature": {"types": []}}, "count": 2,
    }
    error_of(typed.get("/v2/types/Nope"), 404, "NotFound", "Entity type not found")
    response = typed.client.get("/v2/types/Bike", headers={**typed.headers, "Fiware-ServicePath": "/other"})
    error_of(response, 404, "NotFound", "Entity type not found")
