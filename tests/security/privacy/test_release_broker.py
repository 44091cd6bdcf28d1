"""Privacy policies at the broker's two ways out, in-process with a real receiver and a
real Mosquitto: reads through the privacy guard (``ctx.release``) and notifications to a
subscription's owner (``security.privacy.notifications``, the notifier's ``release``).

alice has a policy (drop ``serial``, ``location`` to a 5-character geohash, times to the
hour, ids pseudonymized); bob has none and sees the raw data. The feed is given its
snapshot directly: the identity manager's export is tested in tests/security/idm.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from broker.app import create_app
from broker.config import Config
from ngsi.context import Identity
from ngsi.server.guards import Incoming, Verdict, admit
from security.pep.replies import Replies
from security.privacy.feed import GivenFeed
from security.privacy.guard import PrivacyGuard
from security.privacy.keys import KeyRing
from security.privacy.notifications import PrivateNotificationFilter
from security.privacy.policy import parse_policies
from security.privacy.release import Snapshot
from tests.broker.conftest import MqttListener
from tests.conftest import Mosquitto
from tests.security.privacy.receiver import Receiver

POLICY = {
    "id": "alice-meters", "consumer": {"kind": "user", "id": "alice"}, "entityType": "Meter",
    "attributes": {"serial": [{"transform": "drop"}], "location": [{"transform": "generalize", "geohash": 5}],
                   "TimeInstant": [{"transform": "generalize", "period": "PT1H"}]},
    "idTransform": {"transform": "pseudonymize"},
}
METER = {"id": "M1", "type": "Meter", "power": {"type": "Number", "value": 812},
         "serial": {"type": "Text", "value": "SN-4471"},
         "location": {"type": "geo:point", "value": "5.30123,4.00311",
                      "metadata": {"TimeInstant": {"type": "DateTime", "value": "2026-12-04T10:41:27.000Z"}}}}


async def who(request: Incoming) -> Verdict | None:
    user = request.headers.get("x-user")
    return admit(request.ctx.with_identity(Identity(user_id=user))) if user else None


@pytest.fixture
def setup() -> Iterator[tuple[TestClient, Receiver, KeyRing]]:
    keys = KeyRing.generate()
    feed = GivenFeed(Snapshot(1, parse_policies([POLICY]), keys))
    guard = PrivacyGuard(feed, None, Replies("http://idm"))
    receiver = Receiver()
    config = Config(db_uri="memory://", notif_allowed_hosts=("127.0.0.1", "mqtt://127.0.0.1"))
    app = create_app(config, guards=[who, guard], visibility=PrivateNotificationFilter(None, feed))
    with TestClient(app) as client:
        yield client, receiver, keys
    receiver.close()


def subscribe(client: TestClient, user: str, notification: dict[str, Any], **condition: Any) -> None:
    body = {"subject": {"entities": [{"idPattern": ".*", "type": "Meter"}], **condition}, "notification": notification}
    answer = client.post("/v2/subscriptions", json=body, headers={"x-user": user})
    assert answer.status_code == 201, answer.text


PSEUDONYM = re.compile(r"^pz:[a-z2-7]{24}$")


def test_notifications_reads_and_custom_payloads(setup: tuple[TestClient, Receiver, KeyRing]) -> None:
    client, receiver, _ = setup
    subscribe(client, "alice", {"http": {"url": receiver.url + "/alice"}})
    subscribe(client, "bob", {"http": {"url": receiver.url + "/bob"}})
    # a custom payload: the macros are expanded from the released entity
    subscribe(client, "alice", {"httpCustom": {"url": receiver.url + "/custom",
                                               "payload": "${id} ${serial} ${location}"}})
    assert client.post("/v2/entities", json=METER).status_code == 201
    got = dict(receiver.wait(3))
    alice, bob = json.loads(got["/alice"])["data"][0], json.loads(got["/bob"])["data"][0]
    assert bob["id"] == "M1" and bob["serial"]["value"] == "SN-4471" and bob["location"]["value"] == "5.30123,4.00311"
    assert PSEUDONYM.match(alice["id"]) and "serial" not in alice
    assert alice["location"]["value"] != METER["location"]["value"]
    lat, lon = (float(x) for x in alice["location"]["value"].split(","))
    assert abs(lat - 5.30123) < 0.03 and abs(lon - 4.00311) < 0.03  # the centre of its 4.9 km cell
    assert alice["location"]["metadata"]["TimeInstant"]["value"] == "2026-12-04T10:00:00.000Z"
    assert alice["power"]["value"] == 812
    # no serial (a macro of a missing attribute gives null, as Orion), the same pseudonym
    assert got["/custom"] == f"{alice['id']} null {alice['location']['value']}"
    # reads: the same release for alice, raw for bob
    mine = client.get("/v2/entities?type=Meter&options=keyValues", headers={"x-user": "alice"}).json()
    assert mine == [{"id": alice["id"], "type": "Meter", "power": 812, "location": alice["location"]["value"]}]
    one = client.get("/v2/entities/M1?options=keyValues", headers={"x-user": "alice"}).json()
    assert one == mine[0]
    raw = client.get("/v2/entities/M1?options=keyValues", headers={"x-user": "bob"}).json()
    assert raw["serial"] == "SN-4471" and raw["id"] == "M1"


def test_a_condition_cannot_probe_a_dropped_attribute(setup: tuple[TestClient, Receiver, KeyRing]) -> None:
    client, receiver, _ = setup
    subscribe(client, "alice", {"http": {"url": receiver.url + "/probe"}}, condition={"expression": {"q": "serial==SN-4471"}})
    subscribe(client, "bob", {"http": {"url": receiver.url + "/bob"}}, condition={"expression": {"q": "serial==SN-4471"}})
    assert client.post("/v2/entities", json=METER).status_code == 201
    assert [path for path, _ in receiver.wait(1)] == ["/bob"]


def test_mqtt_notifications_are_released_too(setup: tuple[TestClient, Receiver, KeyRing], mosquitto: Mosquitto) -> None:
    client, _, _ = setup
    url = f"mqtt://{mosquitto.host}:{mosquitto.port}"
    listener = MqttListener(mosquitto.host, mosquitto.port, "privacy/#", 1)
    try:
        subscribe(client, "alice", {"mqtt": {"url": url, "topic": "privacy/alice", "qos": 1}})
        subscribe(client, "bob", {"mqtt": {"url": url, "topic": "privacy/bob", "qos": 1}})
        assert client.post("/v2/entities", json=METER).status_code == 201
        got = dict((topic, json.loads(payload)) for topic, payload, _, _ in (listener.next(), listener.next()))
    finally:
        listener.close()
    alice, bob = got["privacy/alice"]["data"][0], got["privacy/bob"]["data"][0]
    assert PSEUDONYM.match(alice["id"]) and "serial" not in alice
    assert alice["location"]["metadata"]["TimeInstant"]["value"] == "2026-12-04T10:00:00.000Z"
    assert bob["id"] == "M1" and bob["serial"]["value"] == "SN-4471"


def test_no_snapshot_no_notification_and_trusted_owners_get_it_raw() -> None:
    keys = KeyRing.generate()
    feed = GivenFeed(Snapshot(1, parse_policies([{**POLICY, "consumer": {"kind": "public"}}]), keys))
    released = PrivateNotificationFilter(None, feed, trusted=frozenset({"platform"}))
    stored = {"id": "M1", "type": "Meter", "servicePath": "/",
              "attrs": {"serial": {"type": "Text", "value": "x", "md": {}}}}
    assert released({"user_id": "platform"}, "", stored) == stored
    assert released.release({"user_id": "platform"}, "", stored) == stored
    assert released({"user_id": "anyone"}, "", stored)["attrs"] == {}
    assert PSEUDONYM.match(released.release({"user_id": "anyone"}, "", stored)["id"])
    feed.snapshot = None
    assert released({"user_id": "anyone"}, "", stored) is None


def test_a_policy_for_one_subscription(setup: tuple[TestClient, Receiver, KeyRing]) -> None:
    """A subscription-kind policy applies to that subscription's notifications only; the
    owner's other subscription keeps the owner's own policy (here: none, so raw)."""
    client, receiver, _ = setup
    subscribe(client, "bob", {"http": {"url": receiver.url + "/watched"}})
    subscribe(client, "bob", {"http": {"url": receiver.url + "/plain"}})
    watched = client.get("/v2/subscriptions").json()
    sub_id = next(s["id"] for s in watched if s["notification"]["http"]["url"].endswith("/watched"))
    feed = client.app.state.notifier.visibility.feed  # type: ignore[attr-defined]
    feed.snapshot = Snapshot(2, parse_policies([{"id": "one-sub", "consumer": {"kind": "subscription", "id": sub_id},
                                                 "attributes": {"serial": [{"transform": "drop"}]}}]), feed.snapshot.keys)
    assert client.post("/v2/entities", json=METER).status_code == 201
    got = dict(receiver.wait(2))
    assert "serial" not in json.loads(got["/watched"])["data"][0]
    assert json.loads(got["/plain"])["data"][0]["serial"]["value"] == "SN-4471"
