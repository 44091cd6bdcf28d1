"""Bad input never yields a 500: random JSON, headers and query strings against the API.

Every answer must be a success or a well-formed Orion error: a JSON object with exactly
``error`` and ``description`` strings and a 4xx status.
"""

from __future__ import annotations

import json
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from starlette.testclient import TestClient

from broker.app import create_app
from broker.config import Config
from broker.store.memory import MemoryStore

PATHS = [
    "/v2", "/v2/entities", "/v2/entities/E1", "/v2/entities/E1/attrs", "/v2/entities/E1/attrs/A",
    "/v2/entities/E1/attrs/A/value", "/v2/types", "/v2/types/T", "/v2/op/update", "/v2/op/query", "/version",
]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
PARAMS = ["id", "type", "idPattern", "typePattern", "q", "mq", "attrs", "metadata", "options", "limit",
          "offset", "orderBy", "georel", "geometry", "coords"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Payloads shaped like NGSI ones reach deeper code than arbitrary JSON does.
attr_like = st.fixed_dictionaries({}, optional={"type": json_values, "value": json_values, "metadata": json_values})
entity_like = st.dictionaries(
    st.sampled_from(["id", "type", "A", "B", "location", "dateExpires", "actionType", "entities"]) | st.text(max_size=6),
    json_values | attr_like | st.text(max_size=10),
    max_size=5,
)
bodies = st.one_of(json_values.map(json.dumps), entity_like.map(json.dumps), st.text(max_size=40))
headers = st.dictionaries(
    st.sampled_from(["Fiware-Service", "Fiware-ServicePath", "Accept", "Content-Type", "Fiware-Correlator"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
    max_size=3,
)
queries = st.dictionaries(st.sampled_from(PARAMS), st.text(max_size=15), max_size=3)


@pytest.fixture(scope="module")
def client() -> Any:
    app = create_app(Config(multiservice=True), store=MemoryStore())
    with TestClient(app, raise_server_exceptions=False) as c:
        c.post("/v2/entities", json={"id": "E1", "type": "T", "A": {"value": 1}, "B": {"value": "x"}})
        yield c


def _check(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "description"}, body
        assert isinstance(body["error"], str) and isinstance(body["description"], str)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(METHODS), path=st.sampled_from(PATHS), body=bodies, headers=headers, params=queries)
def test_random_requests_get_orion_answers(client: Any, method: str, path: str, body: str,
                                           headers: dict[str, str], params: dict[str, str]) -> None:
    send_body = method in ("POST", "PUT", "PATCH")
    if send_body:
        headers = {"Content-Type": "application/json", **headers}
    response = client.request(method, path, content=body.encode() if send_body else None, headers=headers, params=params)
    _check(response)
