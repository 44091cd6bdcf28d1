"""A subscription keeps its creator, and its notifications show only what the creator may read.

Orion notifies whatever a subscription selects; behind a PEP that would make a
subscription a way around the read policies. The broker stores the creator's identity
(``_owner``, never rendered) and, when the orchestrator plugs in an authorization filter
(``Notifier.visibility``, ``-notifFilter``), sees each change through it before deciding
whether the subscription fires and what it sends. Here the filter is a stand-in written
for the test: the real one is security/'s.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from starlette.testclient import TestClient

from broker.app import create_app
from broker.config import Config
from ngsi.context import Identity
from ngsi.server.guards import Incoming, Verdict, admit


async def who(request: Incoming) -> Verdict | None:
    user = request.headers.get("x-user")
    return admit(request.ctx.with_identity(Identity(user_id=user))) if user else None


def bobs_view(owner: dict[str, Any], tenant: str, entity: dict[str, Any]) -> dict[str, Any] | None:
    """bob may not see Secret entities, nor the owner attribute of anything."""
    if owner["user_id"] != "bob":
        return entity
    if entity["type"] == "Secret":
        return None
    return dict(entity, attrs={n: a for n, a in entity["attrs"].items() if n != "owner"})


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                owner.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def setup() -> Iterator[tuple[TestClient, Receiver]]:
    receiver = Receiver()
    config = Config(db_uri="memory://", notif_allowed_hosts=("127.0.0.1",))
    with TestClient(create_app(config, guards=[who], visibility=bobs_view)) as client:
        yield client, receiver
    receiver.server.shutdown()


def subscribe(client: TestClient, receiver: Receiver, user: str | None, **subject: Any) -> str:
    body = {"subject": {"entities": [{"idPattern": ".*"}], **subject}, "notification": {"http": {"url": receiver.url}}}
    answer = client.post("/v2/subscriptions", json=body, headers={"x-user": user} if user else {})
    assert answer.status_code == 201
    return answer.headers["Location"].rsplit("/", 1)[1]


def settle(receiver: Receiver, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while len(receiver.bodies) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # and nothing more comes
    return receiver.bodies


def test_the_creators_view(setup: tuple[TestClient, Receiver]) -> None:
    client, receiver = setup
    subscribe(client, receiver, "bob")
    client.post("/v2/entities?options=keyValues", json={"id": "F1", "type": "Field", "crop": "wheat", "owner": "alice"})
    client.post("/v2/entities?options=keyValues", json={"id": "S1", "type": "Secret", "x": 1})
    client.patch("/v2/entities/F1/attrs?options=keyValues", json={"owner": "carol"})  # only what bob can't see
    client.patch("/v2/entities/F1/attrs?options=keyValues", json={"crop": "rye"})
    bodies = settle(receiver, 2)
    assert [body["data"][0]["id"] for body in bodies] == ["F1", "F1"]
    for body in bodies:
        assert "owner" not in body["data"][0]
    assert bodies[1]["data"][0]["crop"]["value"] == "rye"


def test_conditions_are_evaluated_on_that_view(setup: tuple[TestClient, Receiver]) -> None:
    client, receiver = setup
    subscribe(client, receiver, "bob", condition={"attrs": ["owner"]})
    subscribe(client, receiver, "bob", condition={"expression": {"q": "owner==alice"}})
    client.post("/v2/entities?options=keyValues", json={"id": "F2", "type": "Field", "crop": "oat", "owner": "alice"})
    client.patch("/v2/entities/F2/attrs?options=keyValues", json={"owner": "alice2"})
    assert settle(receiver, 1) == []


def test_anonymous_subscriptions_and_rendering(setup: tuple[TestClient, Receiver]) -> None:
    client, receiver = setup
    sub_id = subscribe(client, receiver, None)
    bobs = subscribe(client, receiver, "bob")
    client.post("/v2/entities?options=keyValues", json={"id": "S2", "type": "Secret", "x": 2})
    bodies = settle(receiver, 1)
    assert len(bodies) == 1 and bodies[0]["subscriptionId"] == sub_id and bodies[0]["data"][0]["x"]["value"] == 2
    assert "_owner" not in json.dumps(client.get(f"/v2/subscriptions/{bobs}").json())
