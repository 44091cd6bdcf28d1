"""Bad input never hurts the history service: generated query parameters, headers and
bodies on every route (hypothesis, in-process on SQLite). Every answer is below 500 and,
as an error, in QuantumLeap's shape ``{"error", "description"}``."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.history.app import create_app
from analytics.history.config import Config

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROUTES = ["/v2/entities", "/v2/entities/R1", "/v2/entities/R1/value", "/v2/entities/R1/attrs/t",
          "/v2/entities/R1/attrs/t/value", "/v2/types/Room", "/v2/types/Room/value", "/v2/types/Room/attrs/t",
          "/v2/types/Room/attrs/t/value", "/v2/attrs", "/v2/attrs/value", "/v2/attrs/t", "/v2/attrs/t/value",
          "/v2/last", "/v2/entities/%E2%9C%93/attrs/%00"]
NAMES = ["type", "id", "idPattern", "attrs", "fromDate", "toDate", "lastN", "limit", "offset", "aggrMethod",
         "aggrPeriod", "aggrScope", "options", "georel", "geometry", "coords", "dropTable"]
VALUES = st.text(max_size=30) | st.sampled_from([
    "1", "0", "-1", "99999999999999999999999", "١٢", "avg", "count", "sum", "hour", "month", "second", "entity",
    "global", "2024-01-01T10:00:00", "2024-01-01", "9999-12-31T23:59:59-05:00", "point", "box", "polygon",
    "near;maxDistance:1000", "coveredBy", "40,2", "39,1;41,3", "1,1;1,2;2,2;1,1", ".*", "(", "R1,R2", "t,u",
    "keyValues", "true"])


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    path: Path = tmp_path_factory.mktemp("fuzz")
    with TestClient(create_app(Config(db_uri=f"sqlite:///{path}/h.db", max_body=4096))) as client:
        data = [{"id": "R1", "type": "Room", "t": {"type": "Number", "value": i}, "u": "x",
                 "location": {"type": "geo:point", "value": f"40.{i}, 2"},
                 "TimeInstant": f"2024-01-01T1{i}:00:00Z"} for i in range(5)]
        assert client.post("/v2/notify", json={"data": data}).status_code == 200
        yield client


def check(answer: Any) -> None:
    assert answer.status_code < 500, (answer.status_code, answer.text)
    if answer.status_code >= 400:
        body = answer.json()
        assert set(body) == {"error", "description"} and all(isinstance(v, str) for v in body.values())


@settings(max_examples=400, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(ROUTES), st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=5),
       st.sampled_from(["GET", "DELETE"]),
       st.fixed_dictionaries({}, optional={"fiware-servicepath": st.text(max_size=12) | st.just("/#"),
                                           "fiware-service": st.text(max_size=12),
                                           "accept": st.sampled_from(["text/csv", "*/*", "text/csv;q=0"])}))
def test_any_query_is_answered_below_500(client: TestClient, route: str, params: dict[str, str], method: str,
                                         headers: dict[str, str]) -> None:
    safe = {k: v.encode("utf-8").replace(b"\r", b"").replace(b"\n", b"") for k, v in headers.items()}
    if method == "DELETE" and not route.startswith(("/v2/entities/R1", "/v2/types/Room")):
        return
    if method == "DELETE":
        params = {**params, "fromDate": "2030-01-01T00:00:00"}  # nothing the other examples read goes away
    check(client.request(method, route, params=params, headers=safe))


notify_bodies = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(
        ["data", "id", "type", "value", "metadata", "subscriptionId", "TimeInstant", "x"]), children, max_size=4),
    max_leaves=15)


@settings(max_examples=200, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(notify_bodies, st.sampled_from([None, "1", "1,2", "x", "/a,/b", "/#"]))
def test_any_notification_is_answered_below_500(client: TestClient, body: Any, header: str | None) -> None:
    headers = {} if header is None else {"waziup-sequence": header, "fiware-servicepath": header}
    import json

    raw = json.dumps(body, allow_nan=True).encode()  # NaN and Infinity too: not JSON, a 400
    check(client.post("/v2/notify", content=raw, headers={"content-type": "application/json", **headers}))
