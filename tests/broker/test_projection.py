"""An authorization projection in the request context hides attributes from every read.

A guard (the PEP) that allows a read "but not the ``owner`` attribute" puts that in the
context (``RequestContext.attrs_hidden`` / ``attrs_visible``); the broker's reads apply it
in one place (``EntityService.find``/``find_one``): entity, listing, attribute and value
routes, batch queries and type summaries never show the attribute, and a ``q`` filter
on it matches nothing, so its value cannot be probed either.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from broker.app import create_app
from broker.config import Config
from ngsi.server.guards import Incoming, Verdict, admit

HIDE = {"x-hide": "owner"}


async def projecting(request: Incoming) -> Verdict | None:
    hidden = request.headers.get("x-hide")
    only = request.headers.get("x-only")
    if hidden is None and only is None:
        return None
    ctx = dataclasses.replace(
        request.ctx,
        attrs_hidden=frozenset(hidden.split(",")) if hidden else frozenset(),
        attrs_visible=frozenset(only.split(",")) if only else None,
    )
    return admit(ctx)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Config(db_uri="memory://"), guards=[projecting])) as test_client:
        body = {"id": "F1", "type": "Field", "crop": {"value": "wheat"}, "owner": {"value": "alice"}}
        assert test_client.post("/v2/entities", json=body).status_code == 201
        yield test_client


def test_entity_and_listing_hide_the_attribute(client: TestClient) -> None:
    assert set(client.get("/v2/entities/F1?options=keyValues").json()) == {"id", "type", "crop", "owner"}
    assert client.get("/v2/entities/F1?options=keyValues", headers=HIDE).json() == {"id": "F1", "type": "Field", "crop": "wheat"}
    listed = client.get("/v2/entities?options=keyValues", headers=HIDE).json()
    assert listed == [{"id": "F1", "type": "Field", "crop": "wheat"}]
    queried = client.post("/v2/op/query?options=keyValues", json={"entities": [{"idPattern": ".*"}]}, headers=HIDE)
    assert queried.json() == [{"id": "F1", "type": "Field", "crop": "wheat"}]


def test_attribute_routes_answer_as_if_absent(client: TestClient) -> None:
    assert client.get("/v2/entities/F1/attrs/owner", headers=HIDE).status_code == 404
    assert client.get("/v2/entities/F1/attrs/owner/value", headers=HIDE).status_code == 404
    assert set(client.get("/v2/entities/F1/attrs", headers=HIDE).json()) == {"crop"}


def test_a_hidden_value_cannot_be_probed_with_q(client: TestClient) -> None:
    assert client.get("/v2/entities?q=owner==alice").json() != []
    assert client.get("/v2/entities?q=owner==alice", headers=HIDE).json() == []
    assert client.get("/v2/entities?q=owner", headers=HIDE).json() == []


def test_types_and_an_allow_list(client: TestClient) -> None:
    types = client.get("/v2/types", headers=HIDE).json()
    assert types == [{"type": "Field", "attrs": {"crop": {"types": ["Text"]}}, "count": 1}]
    only = client.get("/v2/entities/F1?options=keyValues", headers={"x-only": "owner"}).json()
    assert only == {"id": "F1", "type": "Field", "owner": "alice"}
