"""The history's answers through a caller's release (``ngsi/release.py``): a guard puts a
release on the context, every route hands its answer to it and answers what comes back
(analytics/history/release.py); without one, every answer is as before."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.history.app import create_app
from analytics.history.config import Config
from ngsi.release import Block, Refused
from ngsi.server.guards import Incoming, Verdict, admit

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TENANT, PATH = "coop", "/farm1"
SECRET = "secret"  # the attribute the test policy drops; its values all hold "s3cr3t"
CSV = {"accept": "text/csv"}


def _hour(instant: str | None) -> str | None:
    """An instant floored to its hour (in another ISO 8601 spelling than the service's)."""
    if instant is None:
        return None
    return datetime.fromisoformat(instant).replace(minute=0, second=0, microsecond=0).isoformat()


class Privacy:
    """A small release: drops SECRET, pseudonymizes ids ("pz:" + id), floors instants to the
    hour; ``aggregates_only`` refuses raw answers. It records what it was handed."""

    def __init__(self, *, aggregates_only: bool = False) -> None:
        self.aggregates_only = aggregates_only
        self.calls: list[tuple[str, list[Block], str | None, str | None]] = []
        self.tables: list[list[dict[str, Any]]] = []

    def entity(self, tenant: str, service_path: str, entity: dict[str, Any], *, key_values: bool) -> dict[str, Any]:
        return entity

    async def history(self, tenant: str, blocks: list[Block], *, aggr_method: str | None,
                      aggr_period: str | None) -> list[Block]:
        self.calls.append((tenant, blocks, aggr_method, aggr_period))
        if self.aggregates_only and aggr_method is None:
            raise Refused("only hourly averages may leave")
        return [Block("pz:" + b.entity_id, b.entity_type, b.service_path, [_hour(t) for t in b.index],
                      {a: v for a, v in b.values.items() if a != SECRET},
                      {a: t for a, t in b.attr_types.items() if a != SECRET}) for b in blocks]

    def table(self, tenant: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.tables.append(rows)
        return [row for row in rows if row.get("attrName") != SECRET]


PRIVACY = Privacy()
STRICT = Privacy(aggregates_only=True)
CONSUMERS = {"bob": PRIVACY, "carol": STRICT}


async def privacy_guard(incoming: Incoming) -> Verdict | None:
    """A test guard: callers named by X-Consumer get their release on the context."""
    release = CONSUMERS.get(incoming.headers.get("x-consumer", ""))
    return None if release is None else admit(incoming.ctx.replaced(release=release))


def room(eid: str, at: str, temperature: float, secret: str) -> dict[str, Any]:
    stamp = {"TimeInstant": {"type": "DateTime", "value": at}}  # metadata: no attribute holds the instant
    return {"id": eid, "type": "Room", "temperature": {"type": "Number", "value": temperature, "metadata": stamp},
            SECRET: {"type": "Text", "value": f"s3cr3t-{secret}"}}


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, TestClient]]:
    """The app with the privacy guard, and one without guards on the same database."""
    url = f"sqlite:///{tmp_path_factory.mktemp('release')}/history.db"
    guarded = create_app(Config(db_uri=url), guards=[privacy_guard], clock=lambda: 1_700_000_000.0)
    plain = create_app(Config(db_uri=url), clock=lambda: 1_700_000_000.0)
    with TestClient(guarded) as client, TestClient(plain) as other:
        headers = {"fiware-service": TENANT, "fiware-servicepath": PATH}
        for data in ([room("R1", "2024-01-01T10:15:00Z", 20.0, "a"), room("R2", "2024-01-01T10:30:00Z", 25.0, "c")],
                     [room("R1", "2024-01-01T11:45:00Z", 22.0, "b")]):
            assert client.post("/v2/notify", json={"subscriptionId": "s", "data": data},
                               headers=headers).status_code == 200
        yield client, other


@pytest.fixture(scope="module")
def client(clients: tuple[TestClient, TestClient]) -> TestClient:
    return clients[0]


def get(client: TestClient, url: str, consumer: str | None = "bob", **headers: str) -> Any:
    sent = {"fiware-service": TENANT, **headers}
    if consumer is not None:
        sent["x-consumer"] = consumer
    return client.get(url, headers=sent)


def ok(client: TestClient, url: str, consumer: str | None = "bob") -> Any:
    answer = get(client, url, consumer)
    assert answer.status_code == 200, answer.text
    return answer.json()


def iso(hour: int, minute: int = 0) -> str:
    return f"2024-01-01T{hour:02d}:{minute:02d}:00.000+00:00"


# -- history routes --------------------------------------------------------------------------------


def test_an_entity_leaves_pseudonymous_hourly_and_without_the_dropped_attribute(client: TestClient) -> None:
    PRIVACY.calls.clear()
    assert ok(client, "/v2/entities/R1") == {
        "entityId": "pz:R1", "entityType": "Room", "index": [iso(10), iso(11)],
        "attributes": [{"attrName": "temperature", "values": [20.0, 22.0]}]}
    (tenant, blocks, method, period), = PRIVACY.calls
    assert tenant == TENANT and method is None and period is None
    (block,) = blocks
    assert block.entity_id == "R1" and block.service_path == PATH and block.index == [iso(10, 15), iso(11, 45)]
    assert block.attr_types == {SECRET: "Text", "temperature": "Number"}
    assert block.values == {SECRET: ["s3cr3t-a", "s3cr3t-b"], "temperature": [20.0, 22.0]}


def test_without_a_release_the_entity_is_as_stored(client: TestClient) -> None:
    assert ok(client, "/v2/entities/R1", consumer=None) == {
        "entityId": "R1", "entityType": "Room", "index": [iso(10, 15), iso(11, 45)],
        "attributes": [{"attrName": SECRET, "values": ["s3cr3t-a", "s3cr3t-b"]},
                       {"attrName": "temperature", "values": [20.0, 22.0]}]}


def test_type_and_attribute_routes(client: TestClient) -> None:
    kind = ok(client, "/v2/types/Room")
    assert [(e["entityId"], e["index"], [a["attrName"] for a in e["attributes"]]) for e in kind["entities"]] == [
        ("pz:R1", [iso(10), iso(11)], ["temperature"]), ("pz:R2", [iso(10)], ["temperature"])]
    assert ok(client, "/v2/types/Room/attrs/temperature/value") == {"values": [
        {"entityId": "pz:R1", "index": [iso(10), iso(11)], "values": [20.0, 22.0]},
        {"entityId": "pz:R2", "index": [iso(10)], "values": [25.0]}]}
    assert [a["attrName"] for a in ok(client, "/v2/attrs")["attrs"]] == ["temperature"]
    assert ok(client, "/v2/entities/R1/attrs/temperature/value") == {"index": [iso(10), iso(11)],
                                                                     "values": [20.0, 22.0]}


def test_a_dropped_attribute_asked_by_name_is_not_found(client: TestClient) -> None:
    for url in ("/v2/entities/R1/attrs/secret", "/v2/attrs/secret/value", "/v2/types/Room/attrs/secret"):
        answer = get(client, url)
        assert answer.status_code == 404 and answer.json()["error"] == "Not Found", url
        assert get(client, url, consumer=None).status_code == 200


def test_aggregates_pass_the_query_method_and_period(client: TestClient) -> None:
    PRIVACY.calls.clear()
    answer = ok(client, "/v2/entities/R1?aggrMethod=count&aggrPeriod=hour")
    assert answer["index"] == [iso(10), iso(11)] and answer["attributes"] == [
        {"attrName": "temperature", "values": [1, 1]}]
    assert [(c[2], c[3]) for c in PRIVACY.calls] == [("count", "hour")]
    whole = ok(client, "/v2/entities/R1?aggrMethod=avg")
    assert whole["index"] == [] and whole["attributes"] == [{"attrName": "temperature", "values": [21.0]}]
    assert PRIVACY.calls[-1][1][0].index == [None]


def test_a_refused_answer_is_403_in_quantumleaps_shape(client: TestClient) -> None:
    for url in ("/v2/entities/R1", "/v2/types/Room/value", "/v2/attrs", "/v2/entities", "/v2/last"):
        for extra in ({}, CSV):
            answer = get(client, url, "carol", **extra)
            assert answer.status_code == 403, url
            assert answer.json() == {"error": "Forbidden", "description": "only hourly averages may leave"}
    assert get(client, "/v2/entities/R1?aggrMethod=avg&aggrPeriod=hour", "carol").status_code == 200


# -- CSV -------------------------------------------------------------------------------------------


def test_csv_rows_go_through_the_table(client: TestClient) -> None:
    PRIVACY.tables.clear()
    answer = get(client, "/v2/types/Room", **CSV)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.text.split("\r\n") == [
        "entityId,entityType,attrName,index,value",
        f"pz:R1,Room,temperature,{iso(10)},20.0", f"pz:R1,Room,temperature,{iso(11)},22.0",
        f"pz:R2,Room,temperature,{iso(10)},25.0", ""]
    (rows,) = PRIVACY.tables
    assert rows[0] == {"entityId": "pz:R1", "entityType": "Room", "attrName": "temperature", "index": iso(10),
                       "value": 20.0}


def test_csv_without_a_release_is_unchanged(clients: tuple[TestClient, TestClient]) -> None:
    guarded, plain = clients
    for url in ("/v2/types/Room", "/v2/entities", "/v2/last", "/v2/attrs/secret"):
        mine = get(guarded, url, consumer=None, **CSV)
        assert mine.status_code == 200 and mine.content == get(plain, url, consumer=None, **CSV).content
        assert ("s3cr3t" in mine.text) == (url != "/v2/entities")  # the entity list has no values


# -- the entity list and last values ---------------------------------------------------------------


def test_the_entity_list(client: TestClient) -> None:
    assert ok(client, "/v2/entities") == [{"entityId": "pz:R1", "entityType": "Room", "index": iso(11)},
                                          {"entityId": "pz:R2", "entityType": "Room", "index": iso(10)}]
    assert ok(client, "/v2/entities", consumer=None)[0] == {"entityId": "R1", "entityType": "Room",
                                                            "index": iso(11, 45)}
    assert get(client, "/v2/entities", **CSV).text.split("\r\n") == [
        "entityId,entityType,index", f"pz:R1,Room,{iso(11)}", f"pz:R2,Room,{iso(10)}", ""]


def test_last_values(client: TestClient) -> None:
    assert ok(client, "/v2/last") == [
        {"entityId": "pz:R1", "entityType": "Room", "attributes": [
            {"attrName": "temperature", "attrType": "Number", "value": 22.0, "index": iso(11), "lastSeen": None}]},
        {"entityId": "pz:R2", "entityType": "Room", "attributes": [
            {"attrName": "temperature", "attrType": "Number", "value": 25.0, "index": iso(10), "lastSeen": None}]}]
    assert get(client, "/v2/last", **CSV).text.split("\r\n")[:2] == [
        "entityId,entityType,attrName,attrType,index,value,lastSeen", f"pz:R1,Room,temperature,Number,{iso(11)},22.0,"]
    plain = ok(client, "/v2/last", consumer=None)
    assert [a["attrName"] for a in plain[0]["attributes"]] == [SECRET, "temperature"]
    assert plain[0]["attributes"][1]["index"] == iso(11, 45)


# -- without a release, nothing changes ----------------------------------------------------------

ROUTES = ["/v2/entities", "/v2/last", "/v2/entities/R1", "/v2/entities/R1/value", "/v2/entities/R1/attrs/secret",
          "/v2/entities/R1/attrs/temperature/value", "/v2/types/Room", "/v2/types/Room/value",
          "/v2/types/Room/attrs/secret", "/v2/types/Room/attrs/temperature/value", "/v2/attrs", "/v2/attrs/value",
          "/v2/attrs/secret", "/v2/attrs/temperature/value"]
QUERIES = ["", "?lastN=1", "?aggrMethod=count", "?aggrMethod=count&aggrPeriod=hour", "?attrs=secret,temperature",
           "?fromDate=2024-01-01T11:00:00Z", "?offset=1"]


def test_every_route_without_a_release_answers_as_an_app_without_guards(
        clients: tuple[TestClient, TestClient]) -> None:
    guarded, plain = clients
    for url in ROUTES:
        for query in QUERIES[:3]:
            mine, theirs = get(guarded, url + query, None), get(plain, url + query, None)
            assert (mine.status_code, mine.content) == (theirs.status_code, theirs.content), url + query


@settings(max_examples=60, deadline=None)
@given(url=st.sampled_from(ROUTES), query=st.sampled_from(QUERIES), csv=st.booleans())
def test_a_dropped_attribute_never_leaves(client: TestClient, url: str, query: str, csv: bool) -> None:
    answer = get(client, url + query, **(CSV if csv else {}))
    assert answer.status_code in (200, 404), answer.text
    assert SECRET not in answer.text and "s3cr3t" not in answer.text
    if answer.status_code == 200:
        assert re.search(r"(?<!pz:)R[12]", answer.text) is None  # ids only as pseudonyms
        assert ":15:00" not in answer.text and ":45:00" not in answer.text  # instants only by the hour

