"""The history API, on SQLite and PostgreSQL: every route's answer against QuantumLeap
1.0's response schemas (quantumleap.yml, with the entityId/entityType names its schemas
and FiLiP use), notifications, aggregates, date bounds, paging, tenants, service paths,
deletes, CSV, Waziup-Sequence, errors.

One app per backend for the module; each test writes under a tenant of its own.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from analytics.history.app import create_app
from analytics.history.config import Config

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# -- QuantumLeap 1.0's response schemas (quantumleap.yml definitions and responses) ----------------
INDEX = {"type": "array", "items": {"type": "string"}}
VALUES = {"type": "array"}
ATTRIBUTE_VALUES = {"type": "object", "required": ["attrName", "values"],
                    "properties": {"attrName": {"type": "string"}, "values": VALUES}}
ENTITY_INDEXED = {"type": "object", "required": ["entityId", "index", "values"],
                  "properties": {"entityId": {"type": "string"}, "index": INDEX, "values": VALUES}}
ENTITY_ROWS = {"type": "object", "required": ["entityId", "index", "attributes"],
               "properties": {"entityId": {"type": "string"}, "index": INDEX,
                              "attributes": {"type": "array", "items": ATTRIBUTE_VALUES}}}
TYPES = {"type": "array", "items": {"type": "object", "required": ["entityType", "entities"], "properties": {
    "entityType": {"type": "string"}, "entities": {"type": "array", "items": ENTITY_INDEXED}}}}


def obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


SCHEMAS = {
    "/v2/entities": {"type": "array", "items": obj(entityId={"type": "string"}, entityType={"type": "string"},
                                                   index={"type": "string"})},
    "/v2/entities/R1": obj(entityId={"type": "string"}, entityType={"type": "string"}, index=INDEX,
                           attributes={"type": "array", "items": ATTRIBUTE_VALUES}),
    "/v2/entities/R1/value": obj(index=INDEX, values={"type": "array", "items": ATTRIBUTE_VALUES}),
    "/v2/entities/R1/attrs/temperature": obj(entityId={"type": "string"}, entityType={"type": "string"},
                                             attrName={"type": "string"}, index=INDEX, values=VALUES),
    "/v2/entities/R1/attrs/temperature/value": obj(index=INDEX, values=VALUES),
    "/v2/types/Room": obj(entityType={"type": "string"}, entities={"type": "array", "items": ENTITY_ROWS}),
    "/v2/types/Room/value": obj(values={"type": "array", "items": ENTITY_ROWS}),
    "/v2/types/Room/attrs/temperature": obj(entityType={"type": "string"}, attrName={"type": "string"},
                                            entities={"type": "array", "items": ENTITY_INDEXED}),
    "/v2/types/Room/attrs/temperature/value": obj(values={"type": "array", "items": ENTITY_INDEXED}),
    "/v2/attrs": obj(attrs={"type": "array", "items": obj(attrName={"type": "string"}, types=TYPES)}),
    "/v2/attrs/value": obj(values={"type": "array", "items": obj(attrName={"type": "string"}, types=TYPES)}),
    "/v2/attrs/temperature": obj(attrName={"type": "string"}, types=TYPES),
    "/v2/attrs/temperature/value": obj(values=TYPES),
}
ERROR = obj(error={"type": "string"}, description={"type": "string"})
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")


@pytest.fixture(scope="module")
def backend(module_store_url: str) -> Iterator[TestClient]:
    app = create_app(Config(db_uri=module_store_url, max_body=64 * 1024), clock=lambda: 1_700_000_000.0)
    with TestClient(app) as client:
        yield client


class Api:
    """The client, speaking for one tenant."""

    def __init__(self, client: TestClient, tenant: str) -> None:
        self.client, self.tenant = client, tenant

    def headers(self, path: str | None = None, **extra: str) -> dict[str, str]:
        headers = {"fiware-service": self.tenant, **extra}
        if path is not None:
            headers["fiware-servicepath"] = path
        return headers

    def notify(self, *entities: dict[str, Any], path: str | None = None, sub: str = "s1", **extra: str) -> Any:
        return self.client.post("/v2/notify", json={"subscriptionId": sub, "data": list(entities)},
                                headers=self.headers(path, **extra))

    def get(self, url: str, path: str | None = None, **extra: str) -> Any:
        return self.client.get(url, headers=self.headers(path, **extra))

    def json(self, url: str, path: str | None = None) -> Any:
        answer = self.get(url, path)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def delete(self, url: str, path: str | None = None) -> Any:
        return self.client.delete(url, headers=self.headers(path))


@pytest.fixture
def api(backend: TestClient, request: pytest.FixtureRequest) -> Api:
    tenant = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:50]
    return Api(backend, tenant)


def room(eid: str, at: str, temperature: Any = 21.0, **attrs: Any) -> dict[str, Any]:
    entity: dict[str, Any] = {"id": eid, "type": "Room", "TimeInstant": {"type": "DateTime", "value": at}}
    if temperature is not None:
        entity["temperature"] = {"type": "Number", "value": temperature, "metadata": {}}
    for name, value in attrs.items():
        entity[name] = value
    return entity


def at(hour: int, minute: int = 0, day: int = 1) -> str:
    return f"2024-01-{day:02d}T{hour:02d}:{minute:02d}:00.000Z"


def iso(hour: int, minute: int = 0, day: int = 1) -> str:
    return f"2024-01-{day:02d}T{hour:02d}:{minute:02d}:00.000+00:00"


def fill(api: Api) -> None:
    assert api.notify(room("R1", at(10), 20.0, pressure={"type": "Integer", "value": 700}),
                      room("R2", at(10), 25.0)).status_code == 200
    assert api.notify(room("R1", at(11), 21.0, colour={"type": "Text", "value": "red"}),
                      {"id": "D1", "type": "Device", "temperature": 30.5, "TimeInstant": at(12)}).status_code == 200
    assert api.notify(room("R1", at(12), 22.0, pressure={"type": "Integer", "value": 710})).status_code == 200


# -- notifications ---------------------------------------------------------------------------------


def test_notify_answers_like_quantumleap(api: Api) -> None:
    answer = api.notify(room("R1", at(10)))
    assert answer.status_code == 200 and answer.text == "Notification successfully processed"
    for body in ({"data": "x"}, [], {"data": [{"id": "R"}]}):
        bad = api.client.post("/v2/notify", json=body, headers=api.headers())
        assert bad.status_code == 400
        jsonschema.validate(bad.json(), ERROR)
    assert api.client.post("/v2/notify", content=b"{", headers=api.headers()).status_code == 400
    huge = api.client.post("/v2/notify", content=b"x" * 70_000, headers=api.headers())
    assert huge.status_code == 413 and huge.json()["error"] == "Payload Too Large"
    assert api.notify(room("R1", at(10)), **{"fiware-service": "bad-tenant!"}).status_code == 400


def test_every_route_has_its_spec_shape(api: Api) -> None:
    fill(api)
    for url, schema in SCHEMAS.items():
        body = api.json(url)
        jsonschema.validate(body, schema)
        text = str(body)
        assert all(ISO.fullmatch(i) for i in re.findall(r"'(\d{4}-[^']*)'", text) if "T" in i), (url, text)
    assert api.json("/v2/entities/R1/attrs/temperature") == {
        "entityId": "R1", "entityType": "Room", "attrName": "temperature",
        "index": [iso(10), iso(11), iso(12)], "values": [20.0, 21.0, 22.0]}
    assert api.json("/v2/entities/R1?attrs=pressure,temperature") == {
        "entityId": "R1", "entityType": "Room", "index": [iso(10), iso(11), iso(12)],
        "attributes": [{"attrName": "pressure", "values": [700, None, 710]},
                       {"attrName": "temperature", "values": [20.0, 21.0, 22.0]}]}
    assert api.json("/v2/types/Room/attrs/temperature/value") == {"values": [
        {"entityId": "R1", "index": [iso(10), iso(11), iso(12)], "values": [20.0, 21.0, 22.0]},
        {"entityId": "R2", "index": [iso(10)], "values": [25.0]}]}
    assert api.json("/v2/attrs/temperature") == {"attrName": "temperature", "types": [
        {"entityType": "Device", "entities": [{"entityId": "D1", "index": [iso(12)], "values": [30.5]}]},
        {"entityType": "Room", "entities": [
            {"entityId": "R1", "index": [iso(10), iso(11), iso(12)], "values": [20.0, 21.0, 22.0]},
            {"entityId": "R2", "index": [iso(10)], "values": [25.0]}]}]}
    pressure = [a for a in api.json("/v2/attrs?attrs=pressure,colour")["attrs"]]
    assert pressure == [
        {"attrName": "pressure", "types": [{"entityType": "Room", "entities": [
            {"entityId": "R1", "index": [iso(10), iso(12)], "values": [700, 710]}]}]},
        {"attrName": "colour", "types": [{"entityType": "Room", "entities": [
            {"entityId": "R1", "index": [iso(11)], "values": ["red"]}]}]}]
    assert api.json("/v2/entities") == [
        {"entityId": "D1", "entityType": "Device", "index": iso(12)},
        {"entityId": "R1", "entityType": "Room", "index": iso(12)},
        {"entityId": "R2", "entityType": "Room", "index": iso(10)}]
    assert api.json("/v2/entities?type=Room&idPattern=^R2") == [{"entityId": "R2", "entityType": "Room",
                                                                 "index": iso(10)}]


def test_meta_routes(api: Api) -> None:
    assert api.json("/version")["version"] == "1.0.0"
    assert api.json("/health") == {"status": "pass"}
    assert api.json("/v2/")["notify_url"] == "/v2/notify"
    missing = api.get("/v2/nothing")
    assert missing.status_code == 404 and missing.json()["error"] == "Not Found"
    assert api.client.put("/v2/entities/x", headers=api.headers()).status_code == 405


def test_no_records_is_quantumleaps_404(api: Api) -> None:
    for url in ("/v2/entities", "/v2/entities/R9", "/v2/types/Room/attrs/temperature", "/v2/attrs",
                "/v2/entities/R9/attrs/x/value"):
        answer = api.get(url)
        assert answer.status_code == 404
        assert answer.json() == {"error": "Not Found", "description": "No records were found for such query."}


def test_an_id_of_two_types_is_ambiguous(api: Api) -> None:
    api.notify(room("X", at(10)), {"id": "X", "type": "Car", "speed": 3, "TimeInstant": at(10)})
    answer = api.get("/v2/entities/X")
    assert answer.status_code == 409 and answer.json()["error"] == "AmbiguousNGSIIdError"
    assert api.json("/v2/entities/X?type=Car")["entityType"] == "Car"


# -- dates, paging ---------------------------------------------------------------------------------


def test_date_bounds_are_inclusive(api: Api) -> None:
    fill(api)
    body = api.json("/v2/entities/R1/attrs/temperature?fromDate=2024-01-01T11:00:00&toDate=2024-01-01T12:00:00Z")
    assert body["values"] == [21.0, 22.0]
    body = api.json("/v2/entities/R1/attrs/temperature?toDate=2024-01-01T11:00:00.000%2B00:00")
    assert body["values"] == [20.0, 21.0]
    assert api.get("/v2/entities/R1?fromDate=2024-01-01T12:00:01").status_code == 404
    assert api.get("/v2/entities/R1?fromDate=tomorrow").status_code == 400


def test_last_n_limit_and_offset(api: Api) -> None:
    api.notify(*(room("R1", at(h), float(h)) for h in range(10)))
    values = lambda query: api.json(f"/v2/entities/R1/attrs/temperature?{query}")["values"]
    assert values("lastN=3") == [7.0, 8.0, 9.0]
    assert values("limit=3") == [0.0, 1.0, 2.0]
    assert values("limit=3&offset=2") == [2.0, 3.0, 4.0]
    assert values("lastN=3&offset=2") == [5.0, 6.0, 7.0]  # FiLiP pages lastN backwards with offset
    assert values("lastN=5&limit=2") == [8.0, 9.0]
    assert api.get("/v2/entities/R1/attrs/temperature?offset=10").status_code == 404
    rows = api.json("/v2/types/Room?lastN=2")["entities"][0]
    assert rows["index"] == [iso(8), iso(9)]


# -- aggregates ------------------------------------------------------------------------------------


def test_aggregates(api: Api) -> None:
    api.notify(*(room("R1", at(h, m), float(h * 10 + m // 30)) for h in (10, 11) for m in (0, 30)),
               room("R2", at(10), 100.0, colour={"type": "Text", "value": "red"}))
    url = "/v2/entities/R1/attrs/temperature"
    assert api.json(f"{url}?aggrMethod=avg&aggrPeriod=hour") == {
        "entityId": "R1", "entityType": "Room", "attrName": "temperature", "index": [iso(10), iso(11)],
        "values": [100.5, 110.5]}
    for method, expected in (("count", 4), ("sum", 422.0), ("avg", 105.5), ("min", 100.0), ("max", 111.0)):
        body = api.json(f"{url}?aggrMethod={method}")
        assert body["index"] == [] and body["values"] == [expected], method
    assert api.json(f"{url}?aggrMethod=max&aggrPeriod=day")["values"] == [111.0]
    assert api.json(f"{url}?aggrMethod=count&aggrPeriod=minute&fromDate=2024-01-01T10:15:00")["values"] == [1, 1, 1]
    assert api.json(f"{url}?aggrMethod=sum&aggrPeriod=hour&lastN=1")["index"] == [iso(11)]
    by_type = api.json("/v2/types/Room/attrs/temperature?aggrMethod=max")
    assert [(e["entityId"], e["values"]) for e in by_type["entities"]] == [("R1", [111.0]), ("R2", [100.0])]
    several = api.json("/v2/entities/R2?aggrMethod=avg")  # the text attribute is left out
    assert [a["attrName"] for a in several["attributes"]] == ["temperature"]
    assert api.json("/v2/entities/R2/attrs/colour?aggrMethod=count")["values"] == [1]
    text = api.get("/v2/entities/R2/attrs/colour?aggrMethod=avg")
    assert text.status_code == 404 and "AggrMethod cannot be applied" in text.json()["description"]
    assert api.get(f"{url}?aggrPeriod=hour").status_code == 400
    assert api.get(f"{url}?aggrMethod=median").status_code == 400


# -- tenants, service paths ------------------------------------------------------------------------


def test_tenants_are_apart(api: Api) -> None:
    api.notify(room("R1", at(10)))
    other = Api(api.client, api.tenant[:40] + "_other")
    assert other.get("/v2/entities/R1").status_code == 404
    assert Api(api.client, api.tenant.upper()).json("/v2/entities/R1")["entityId"] == "R1"  # lower-cased, as Orion


def test_service_paths_as_the_broker_reads_them(api: Api) -> None:
    api.notify(room("A", at(10)), path="/city/north")
    api.notify(room("B", at(10)), room("C", at(10)), path="/city/south, /other")
    ids = lambda path: [e["entityId"] for e in api.json("/v2/entities", path)]
    assert ids("/city/#") == ["A", "B"]
    assert api.get("/v2/entities", "/city").status_code == 404  # that path itself, not its subtree
    assert api.get("/v2/entities", "/").status_code == 404
    assert ids("/city/north, /other") == ["A", "C"]
    assert ids("/#") == ids(None) == ["A", "B", "C"]  # type: ignore[arg-type]
    assert api.get("/v2/entities", "city").status_code == 400
    assert api.notify(room("D", at(10)), room("E", at(10)), path="/a,/b,/c").status_code == 400


# -- deletes ---------------------------------------------------------------------------------------


def test_deletes(api: Api) -> None:
    fill(api)
    assert api.delete("/v2/entities/R1?fromDate=2024-01-01T11:00:00&toDate=2024-01-01T11:30:00").status_code == 204
    assert api.json("/v2/entities/R1/attrs/temperature")["values"] == [20.0, 22.0]
    assert api.delete("/v2/entities/R1?fromDate=2024-01-01T11:00:00&toDate=2024-01-01T11:30:00").status_code == 404
    assert api.delete("/v2/entities/R1").status_code == 204
    assert api.get("/v2/entities/R1").status_code == 404
    assert api.delete("/v2/types/Room?dropTable=true").status_code == 204
    assert [e["entityId"] for e in api.json("/v2/entities")] == ["D1"]
    assert api.delete("/v2/types/Room").status_code == 404
    assert api.delete("/v2/types/Device?dropTable=maybe").status_code == 400


# -- beyond QuantumLeap: CSV, last values ----------------------------------------------------------


def test_csv_answers(api: Api) -> None:
    fill(api)
    answer = api.get("/v2/entities/R1", accept="text/csv")
    assert answer.headers["content-type"].startswith("text/csv")
    lines = answer.text.splitlines()
    assert lines[0] == "entityId,entityType,attrName,index,value"
    assert f"R1,Room,colour,{iso(11)},red" in lines and f"R1,Room,pressure,{iso(12)},710" in lines
    assert len(lines) == 1 + 3 + 2 + 1 + 3  # TimeInstant, pressure, colour, temperature
    aggregated = api.get("/v2/types/Room/attrs/temperature?aggrMethod=max", accept="text/csv").text.splitlines()
    assert aggregated[1:] == ["R1,Room,temperature,,22.0", "R2,Room,temperature,,25.0"]
    listed = api.get("/v2/entities", accept="text/csv").text.splitlines()
    assert listed[0] == "entityId,entityType,index" and len(listed) == 4
    assert api.get("/v2/last?type=Device", accept="text/csv").text.splitlines()[1].startswith("D1,Device,TimeInstant,")
    assert api.get("/v2/entities/R1", accept="application/json").headers["content-type"] == "application/json"


def test_last_values(api: Api) -> None:
    fill(api)
    api.notify(room("R1", at(9), 5.0))  # an older value, arriving last
    (entity,) = api.json("/v2/last?type=Room&id=R1&attrs=temperature,pressure")
    assert entity["entityId"] == "R1" and [a["attrName"] for a in entity["attributes"]] == ["temperature", "pressure"]
    temperature = entity["attributes"][0]
    assert (temperature["value"], temperature["index"], temperature["attrType"]) == (22.0, iso(12), "Number")
    assert ISO.fullmatch(temperature["lastSeen"])
    assert api.json("/v2/last?type=Nothing") == []


# -- exactly-once (Waziup-Sequence) ----------------------------------------------------------------


def test_waziup_sequence_stores_each_element_once(api: Api) -> None:
    first = [room(f"R{i}", at(10), float(i)) for i in range(1, 4)]
    assert api.notify(*first, **{"waziup-sequence": "1,2,3"}).status_code == 200
    assert api.notify(*first, **{"waziup-sequence": "1,2,3"}).status_code == 200  # the same batch again
    again = [room("R3", at(10), 3.0), room("R4", at(10), 4.0)]
    assert api.notify(*again, **{"waziup-sequence": "3,4"}).status_code == 200  # overlapping
    counts = {e["entityId"]: len(e["values"]) for e in api.json("/v2/types/Room/attrs/temperature")["entities"]}
    assert counts == {"R1": 1, "R2": 1, "R3": 1, "R4": 1}
    assert api.notify(room("R5", at(10)), **{"waziup-sequence": "x"}).status_code == 400
    assert api.notify(room("R5", at(10)), **{"waziup-sequence": "5,6"}).status_code == 400
    api.notify(room("R1", at(10), 1.0), sub="plain")
    api.notify(room("R1", at(10), 1.0), sub="plain")  # no header: stored each time, as QuantumLeap
    assert len(api.json("/v2/entities/R1/attrs/temperature")["values"]) == 3


# -- time index, geo -------------------------------------------------------------------------------


def test_time_index_header(api: Api) -> None:
    entity = {"id": "R1", "type": "Room", "t": 1, "when": {"type": "DateTime", "value": at(5)},
              "TimeInstant": {"type": "DateTime", "value": at(6)}}
    api.notify(entity, **{"fiware-timeindex-attribute": "when"})
    api.notify({"id": "R1", "type": "Room", "t": 2})  # no date at all: the arrival time
    assert api.json("/v2/entities/R1/attrs/t") | {"entityId": "R1"} == {
        "entityId": "R1", "entityType": "Room", "attrName": "t", "values": [2, 1],
        "index": ["2023-11-14T22:13:20.000+00:00", iso(5)]}


def test_geo_queries(api: Api) -> None:
    def car(at_: str, lat: float, speed: float) -> dict[str, Any]:
        return {"id": "C1", "type": "Car", "speed": speed, "TimeInstant": at_,
                "location": {"type": "geo:point", "value": f"{lat}, 2.0"}}

    api.notify(car(at(10), 40.0, 1.0), car(at(11), 45.0, 2.0))
    api.notify({"id": "C1", "type": "Car", "speed": 3.0, "TimeInstant": at(12)})  # still at 45
    near = "georel=near;maxDistance:1000&geometry=point&coords=45.0,2.0"
    assert api.json(f"/v2/entities/C1/attrs/speed?{near}")["values"] == [2.0, 3.0]
    box = "georel=coveredBy&geometry=box&coords=39,1;41,3"
    assert api.json(f"/v2/types/Car/attrs/speed/value?{box}")["values"][0]["values"] == [1.0]
    assert api.get("/v2/entities/C1?georel=near&geometry=point&coords=1,2").status_code == 400
    assert api.json(f"/v2/entities/C1/attrs/speed?aggrMethod=sum&{near}")["values"] == [5.0]
    assert api.json(f"/v2/entities/C1/attrs/speed?aggrMethod=count&aggrPeriod=hour&{near}")["index"] == [
        iso(11), iso(12)]
    assert api.get("/v2/entities/C1/attrs/speed?aggrMethod=sum&georel=disjoint&geometry=point&coords=0,0")\
        .status_code == 200
