"""The request seam on the broker: guards configured at start-up run before routing.

A guard can reject a request (its reply goes out as it is, with the correlator), add a
header to whatever the route answers, put an identity into the request context (which
reaches the domain layer: the change hook sees it), and read the body without taking it
from the route.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from broker.app import create_app
from broker.changes import Change
from broker.config import Config
from ngsi.context import Identity
from ngsi.server.guards import Incoming, Verdict, admit, reject
from ngsi.server.reply import json_reply

seen: list[Incoming] = []
contexts: list[Any] = []  # the context each request arrived at needs_key with


async def needs_key(request: Incoming) -> Verdict | None:
    """Rejects requests without X-Key; otherwise the caller becomes user "u1"."""
    seen.append(request)
    contexts.append(request.ctx)
    if request.path == "/version":
        return None
    if request.headers.get("x-key") != "open-sesame":
        return reject(json_reply({"error": "Unauthorized", "description": "no key"}, 401, {"WWW-Authenticate": "Key"}))
    return admit(request.ctx.with_identity(Identity(user_id="u1", username="alice")))


async def stamps(request: Incoming) -> Verdict | None:
    return admit(headers=[(b"x-guarded", b"yes")])


async def reads_body(request: Incoming) -> Verdict | None:
    if request.method == "POST" and b"forbidden-word" in await request.body():
        return reject(json_reply({"error": "Forbidden", "description": "bad word"}, 403))
    return None


def factory(config: Config) -> Any:
    """A guard named by ``config.guards`` ("tests.broker.test_guards:factory")."""
    assert isinstance(config, Config)
    return stamps


@pytest.fixture
def client() -> Iterator[TestClient]:
    seen.clear()
    contexts.clear()
    app = create_app(Config(db_uri="memory://", multiservice=True), guards=[stamps, reads_body, needs_key])
    with TestClient(app) as test_client:
        yield test_client


KEY = {"X-Key": "open-sesame"}


def test_rejection_is_sent_as_the_guard_made_it(client: TestClient) -> None:
    response = client.get("/v2/entities", headers={"Fiware-Correlator": "c-1"})
    assert response.status_code == 401
    assert response.json() == {"error": "Unauthorized", "description": "no key"}
    assert response.headers["www-authenticate"] == "Key"
    assert response.headers["fiware-correlator"] == "c-1"  # the front's headers still come
    assert response.headers["x-guarded"] == "yes"  # and those of the guards before it


def test_admitted_request_gets_the_added_header(client: TestClient) -> None:
    response = client.get("/version")
    assert response.status_code == 200 and "orion" in response.json()
    assert response.headers["x-guarded"] == "yes"
    response = client.get("/v2/entities", headers=KEY)
    assert response.status_code == 200 and response.json() == []
    assert response.headers["x-guarded"] == "yes"


def test_guards_run_before_routing_and_see_the_context(client: TestClient) -> None:
    response = client.get("/no/such/path")
    assert response.status_code == 401  # not "service not found": the guard came first
    request = seen[-1]
    assert request.method == "GET" and request.path == "/no/such/path"
    client.get("/v2/entities", headers={**KEY, "Fiware-Service": "Farm1", "Fiware-ServicePath": "/a/#"})
    ctx = contexts[-1]
    assert ctx.tenant == "farm1" and ctx.service_path == "/a/#" and ctx.identity.anonymous


def test_identity_reaches_the_domain_layer(client: TestClient) -> None:
    changes: list[Change] = []

    async def capture(change: Change) -> None:
        changes.append(change)

    client.app.state.entities.listeners.append(capture)  # type: ignore[attr-defined]
    body = {"id": "R1", "type": "Room", "t": {"value": 1, "type": "Number"}}
    response = client.post("/v2/entities", json=body, headers={**KEY, "Fiware-Correlator": "c-2"})
    assert response.status_code == 201
    assert len(changes) == 1
    ctx = changes[0].ctx
    assert ctx.identity == Identity(user_id="u1", username="alice")
    assert ctx.correlator == "c-2"


def test_a_guard_may_read_the_body_and_the_route_still_gets_it(client: TestClient) -> None:
    bad = {"id": "forbidden-word", "type": "T"}
    response = client.post("/v2/entities", json=bad, headers=KEY)
    assert response.status_code == 403
    good = {"id": "fine", "type": "T", "a": {"value": "x", "type": "Text"}}
    response = client.post("/v2/entities", json=good, headers=KEY)
    assert response.status_code == 201
    assert client.get("/v2/entities/fine", headers=KEY).json()["a"]["value"] == "x"


def test_a_guard_reading_a_too_large_body_gets_orions_413() -> None:
    app = create_app(Config(db_uri="memory://", payload_max=100), guards=[reads_body])
    with TestClient(app) as client:
        response = client.post("/v2/entities", content=json.dumps({"id": "x" * 200}), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "RequestEntityTooLarge"


def test_guards_named_in_the_config_are_loaded() -> None:
    config = Config(db_uri="memory://", guards=("tests.broker.test_guards:factory",))
    with TestClient(create_app(config)) as client:
        assert client.get("/version").headers["x-guarded"] == "yes"


def test_no_guards_no_change() -> None:
    with TestClient(create_app(Config(db_uri="memory://"))) as client:
        response = client.get("/version")
    assert response.status_code == 200 and "x-guarded" not in response.headers
