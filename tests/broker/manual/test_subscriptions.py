"""Subscriptions and HTTP notifications as Orion's manual describes them (issue 13).

Written from /work/shared/reference/orion/orion-api.md: the sections 'Subscriptions
Operations' (payload datamodel, list, create, retrieve, update, delete), 'Notification
Triggering', 'Notification Messages', 'Custom Notifications', 'Oneshot Subscriptions',
'Covered Subscriptions', 'Subscriptions based in alteration type', 'Builtin Attributes',
'Builtin Metadata', 'Pagination' and 'Service path in subscriptions and registrations'.
Each test cites the section it follows; where the manual gives no text or status, the
test follows Orion's functional test cases (named).

The whole broker runs in-process (tests/broker/api_client.py) on SQLite and on PostgreSQL
(subscriptions and their counters are written through to the store); notifications go to
a real HTTP server on loopback that keeps every request. Each test works in a tenant of
its own, so tests share one broker per store.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.broker.api_client import ApiClient, broker_client, error_of, new_id

from .conftest import LOOPBACK, LoopbackServer, TenantApi

SUB_ID = re.compile(r"^[0-9a-f]{24}$")
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
NOT_FOUND = "The requested subscription has not been found. Check id"


# --------------------------------------------------------------------------- the receiver


@dataclass
class Request:
    """One request the receiver got; header names in lower case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Capture(LoopbackServer):
    """A keep-alive HTTP server on loopback keeping every request. A path starting with
    ``/status/<code>/`` is answered with that status, one starting with ``/slow/`` one
    second late; anything else 200."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        capture = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with capture.lock:
                    capture.requests.append(Request(self.command, self.path, headers, body))
                parts = self.path.split("/")
                status = int(parts[2]) if len(parts) > 3 and parts[1] == "status" else 200
                if len(parts) > 2 and parts[1] == "slow":
                    time.sleep(1)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_TRACE = handle_any

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)

    def under(self, prefix: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == prefix or r.path.startswith(prefix + "/")
                    or r.path.startswith(prefix + "?")]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def capture() -> Iterator[Capture]:
    with Capture() as c:
        yield c


class Api(TenantApi):
    """One test's view of the broker: its own tenant and its own paths on the receiver."""

    def __init__(self, client: ApiClient, capture: Capture, tenant: str) -> None:
        super().__init__(client, tenant)
        self.capture = capture

    def url(self, suffix: str = "") -> str:
        """A receiver URL for this test (``suffix`` like "/a" to tell subscriptions apart)."""
        return self.capture.base + self.prefix + suffix

    def request(self, method: str, url: str, *, service_path: str | None = None, token: str | None = None,
                **kwargs: Any) -> httpx.Response:
        auth = {} if token is None else {"X-Auth-Token": token}
        return self.client.request(method, url, headers=self.headers(service_path, **auth), **kwargs)

    # -- subscriptions

    def post_sub(self, body: Any, service_path: str | None = None) -> httpx.Response:
        return self.request("POST", "/v2/subscriptions", json=body, service_path=service_path)

    def subscribe(self, notification: dict[str, Any] | None = None, *, entities: list[dict[str, str]] | None = None,
                  condition: dict[str, Any] | None = None, service_path: str | None = None, **top: Any) -> str:
        """A subscription that must be created; its id."""
        subject: dict[str, Any] = {"entities": entities or [{"idPattern": ".*"}]}
        if condition is not None:
            subject["condition"] = condition
        body = {"subject": subject, "notification": notification or {"http": {"url": self.url()}}, **top}
        response = self.post_sub(body, service_path)
        assert response.status_code == 201, response.text
        return str(response.headers["location"].rsplit("/", 1)[1])

    def refused(self, body: Any, description: str | None = None, *, error: str = "BadRequest",
                status: int = 400) -> dict[str, Any]:
        """POST /v2/subscriptions answered with Orion's error body."""
        return error_of(self.post_sub(body), status, error, description)

    def get_sub(self, sub_id: str) -> dict[str, Any]:
        response = self.request("GET", f"/v2/subscriptions/{sub_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def patch_sub(self, sub_id: str, body: Any) -> httpx.Response:
        return self.request("PATCH", f"/v2/subscriptions/{sub_id}", json=body)

    def wait_sub(self, sub_id: str, check: Callable[[dict[str, Any]], bool], timeout: float = 10) -> dict[str, Any]:
        """GET the subscription until ``check`` holds (counters are updated as answers come)."""
        deadline = time.monotonic() + timeout
        while True:
            sub = self.get_sub(sub_id)
            if check(sub):
                return sub
            assert time.monotonic() < deadline, f"condition never held: {sub}"
            time.sleep(0.02)

    # -- entities

    def write(self, method: str, url: str, body: Any = None, *, service_path: str | None = None,
              token: str | None = None, **params: str) -> None:
        response = self.request(method, url, json=body, params=params or None, service_path=service_path, token=token)
        assert response.status_code in (201, 204), (method, url, response.status_code, response.text)

    def create(self, entity_id: str = "Room1", entity_type: str = "Room", **attrs: Any) -> None:
        """POST /v2/entities; keyword arguments are attributes (a dict is the whole attribute)."""
        body: dict[str, Any] = {"id": entity_id, "type": entity_type}
        body.update({k: v if isinstance(v, dict) else {"value": v} for k, v in attrs.items()})
        self.write("POST", "/v2/entities", body)

    def update(self, entity_id: str = "Room1", **attrs: Any) -> None:
        """PATCH /v2/entities/{id}/attrs (update of existing attributes)."""
        body = {k: v if isinstance(v, dict) else {"value": v} for k, v in attrs.items()}
        self.write("PATCH", f"/v2/entities/{entity_id}/attrs", body)

    # -- notifications

    def pump(self, seconds: float) -> None:
        """Let the in-process broker run (its event loop runs while a request runs)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.client.get("/version")
            time.sleep(0.01)

    def notifications(self, n: int, suffix: str = "", timeout: float = 10) -> list[Request]:
        """Exactly ``n`` notifications arrived at ``url(suffix)`` (none more within a moment)."""
        prefix = self.prefix + suffix
        deadline = time.monotonic() + timeout
        while len(self.capture.under(prefix)) < n and time.monotonic() < deadline:
            self.pump(0.02)
        self.pump(0.15)
        got = self.capture.under(prefix)
        assert len(got) == n, f"{len(got)} notifications, {n} expected: {got}"
        return got

    def notification(self, suffix: str = "") -> Request:
        """The one notification at ``url(suffix)``."""
        return self.notifications(1, suffix)[0]

    def data(self, suffix: str = "", n: int = 1) -> list[dict[str, Any]]:
        """The ``data`` entities of the ``n`` notifications at ``url(suffix)``, in arrival order."""
        return [r.json()["data"][0] for r in self.notifications(n, suffix)]


@pytest.fixture
def api(client: ApiClient, capture: Capture) -> Api:
    return Api(client, capture, new_id("t"))


def normalized(value: Any, attr_type: str = "Number", metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": attr_type, "value": value, "metadata": metadata or {}}


# =========================================================================== Create Subscription


MANUAL_EXAMPLE = {  # orion-api.md, 'Create Subscription', "Example using attribute filter"
    "description": "One subscription to rule them all",
    "subject": {
        "entities": [{"idPattern": ".*", "type": "Room"}],
        "condition": {"attrs": ["temperature"], "expression": {"q": "temperature>40"}},
    },
    "notification": {"http": {"url": "http://localhost:1234"}, "attrs": ["temperature", "humidity"]},
    "expires": "2050-04-05T14:00:00.00Z",
}


def test_create_answers_201_with_location_and_get_returns_the_subscription(api: Api) -> None:
    """orion-api.md, 'Create Subscription `POST /v2/subscriptions`' (201, Location) and
    'Retrieve Subscription' (the JSON subscription representation, defaults filled in:
    `subscription` status active, `subscription.notification` attrsFormat normalized,
    onlyChangedAttrs and covered false, condition notifyOnMetadataChange true)."""
    body = json.loads(json.dumps(MANUAL_EXAMPLE))
    body["notification"]["http"]["url"] = api.url()
    response = api.post_sub(body)
    assert response.status_code == 201 and response.content == b""
    location = response.headers["location"]
    assert location.startswith("/v2/subscriptions/") and SUB_ID.match(location.rsplit("/", 1)[1])
    sub_id = location.rsplit("/", 1)[1]
    got = api.client.get(location, headers=api.headers())
    assert got.status_code == 200 and got.headers["content-type"] == "application/json"
    assert got.json() == {
        "id": sub_id,
        "description": "One subscription to rule them all",
        "subject": {"entities": [{"idPattern": ".*", "type": "Room"}],
                    "condition": {"attrs": ["temperature"], "expression": {"q": "temperature>40"},
                                  "notifyOnMetadataChange": True}},
        "notification": {"attrs": ["temperature", "humidity"], "attrsFormat": "normalized",
                         "http": {"url": api.url()}, "onlyChangedAttrs": False, "covered": False},
        "expires": "2050-04-05T14:00:00.000Z",
        "status": "active",
    }


def test_geoquery_condition_example_is_accepted_and_kept(api: Api) -> None:
    """orion-api.md, 'Create Subscription', "Example using geoquery as condition"."""
    expression = {"georel": "near;maxDistance:15000", "geometry": "point", "coords": "37.407804,-6.004552"}
    sub_id = api.subscribe(entities=[{"idPattern": ".*", "type": "Room"}],
                           condition={"attrs": ["temperature"], "expression": expression})
    assert api.get_sub(sub_id)["subject"]["condition"]["expression"] == expression


def test_id_is_created_by_the_broker_and_retrieval_only_fields_are_ignored(api: Api) -> None:
    """orion-api.md, `subscription`: id "Automatically created at creation time";
    `subscription.notification`: timesSent, lastNotification, lastFailure, lastSuccess,
    lastFailureReason, lastSuccessCode, failsCounter are "Not editable, only present in GET"."""
    given = "0123456789abcdef01234567"
    sub_id = api.subscribe({"http": {"url": api.url()}, "timesSent": 7, "lastNotification": "2020-01-01T00:00:00Z",
                            "lastFailure": "2020-01-01T00:00:00Z", "lastSuccess": "2020-01-01T00:00:00Z",
                            "lastFailureReason": "x", "lastSuccessCode": 200, "failsCounter": 3},
                           id=given)
    assert sub_id != given
    notification = api.get_sub(sub_id)["notification"]
    for key in ("timesSent", "lastNotification", "lastFailure", "lastSuccess", "lastFailureReason",
                "lastSuccessCode", "failsCounter"):
        assert key not in notification


def test_no_notification_on_creation(api: Api) -> None:
    """orion-api.md, 'Notification Messages' NOTE: the "initial notification" was removed in
    Orion 3.2.0: creating a subscription on existing entities sends nothing."""
    api.create(temperature=20)
    api.subscribe({"http": {"url": api.url()}})
    api.notifications(0)


# =========================================================================== `subscription`


def test_description_is_at_most_1024_characters(api: Api) -> None:
    """orion-api.md, `subscription` > description: "Maximum lenght is 1024 character"
    (characters, so 1024 non-ASCII ones fit). Text: Orion's parseSubscription."""
    for description in ("d" * 1024, "é" * 1024):
        sub_id = api.subscribe(description=description)
        assert api.get_sub(sub_id)["description"] == description
    api.refused({"description": "d" * 1025, "subject": {"entities": [{"id": "E"}]},
                 "notification": {"http": {"url": api.url()}}}, "max description length exceeded")


def test_description_follows_general_syntax_restrictions(api: Api) -> None:
    """orion-api.md, 'General syntax restrictions': forbidden characters in any request."""
    api.refused({"description": "a<b", "subject": {"entities": [{"id": "E"}]},
                 "notification": {"http": {"url": api.url()}}}, "forbidden characters in description")


def test_status_values(api: Api) -> None:
    """orion-api.md, `subscription` > status: active (the default), inactive, oneshot; an
    inactive subscription sends nothing; other values are refused ("expired" is only shown)."""
    active = api.subscribe({"http": {"url": api.url("/active")}})
    inactive = api.subscribe({"http": {"url": api.url("/inactive")}}, status="inactive")
    assert api.get_sub(active)["status"] == "active"
    assert api.get_sub(inactive)["status"] == "inactive"
    api.create(temperature=1)
    api.notifications(1, "/active")
    api.notifications(0, "/inactive")
    for status in ("expired", "failed", "ACTIVE"):
        api.refused({"subject": {"entities": [{"id": "E"}]}, "notification": {"http": {"url": api.url()}},
                     "status": status}, "status is not valid: it has to be either active, inactive or oneshot")


def test_expired_status_whatever_the_client_sets(api: Api) -> None:
    """orion-api.md, `subscription` > status: "For expired subscriptions, this attribute is
    set to `expired` (no matter if the client updates it to `active`/`inactive`)"; an
    expired subscription sends nothing."""
    sub_id = api.subscribe(expires="2001-01-01T00:00:00.00Z")
    assert api.get_sub(sub_id)["status"] == "expired"
    assert api.patch_sub(sub_id, {"status": "active"}).status_code == 204
    assert api.get_sub(sub_id)["status"] == "expired"
    api.create(temperature=1)
    api.notifications(0)
    assert api.patch_sub(sub_id, {"expires": "2050-01-01T00:00:00.00Z"}).status_code == 204
    assert api.get_sub(sub_id)["status"] == "active"


def test_expires_is_iso8601_and_permanent_subscriptions_omit_it(api: Api) -> None:
    """orion-api.md, `subscription` > expires: "ISO8601. Permanent subscriptions must omit this
    field"; an invalid date is refused (text: Orion's case 2303 subs_with_invalid_expires_dates)."""
    permanent = api.subscribe()
    assert "expires" not in api.get_sub(permanent)
    dated = api.subscribe(expires="2040-05-06T07:08:09Z")
    assert api.get_sub(dated)["expires"] == "2040-05-06T07:08:09.000Z"
    body = {"subject": {"entities": [{"id": "E"}]}, "notification": {"http": {"url": api.url()}}}
    api.refused(body | {"expires": "tomorrow"}, "expires has an invalid format")
    api.refused(body | {"expires": True}, "expires is not a string")


def test_throttling_discards_notifications_in_the_guard_period(api: Api) -> None:
    """orion-api.md, `subscription` > throttling: "Minimal period of time in seconds which
    must elapse between two consecutive notifications ... discarding notifications during
    the throttling guard period"."""
    sub_id = api.subscribe(throttling=60)
    api.create(temperature=1)
    api.update(temperature=2)
    api.update(temperature=3)
    assert [e["temperature"]["value"] for e in api.data()] == [1]
    sub = api.get_sub(sub_id)
    assert sub["throttling"] == 60 and sub["notification"]["timesSent"] == 1


# =========================================================================== `subscription.subject`


def _body(api: Api, subject: Any) -> dict[str, Any]:
    return {"subject": subject, "notification": {"http": {"url": api.url()}}}


def test_entities_need_id_or_id_pattern_not_both(api: Api) -> None:
    """orion-api.md, `subscription.subject` > entities: "id or idPattern ... Both cannot be
    used at the same time, but one of them must be present"; "type or typePattern ... Both
    cannot be used at the same time". Texts: Orion's case 4499 (no entities)."""
    api.refused(_body(api, {"entities": [{"type": "Room"}]}))
    api.refused(_body(api, {"entities": [{"id": "R", "idPattern": "R.*"}]}))
    api.refused(_body(api, {"entities": [{"id": "R", "type": "Room", "typePattern": "R.*"}]}))
    api.refused(_body(api, {"condition": {"attrs": ["a"]}}), "no subject entities specified")
    api.refused(_body(api, {"entities": []}), "subject entities is empty")


def test_entities_follow_the_identifier_restrictions(api: Api) -> None:
    """orion-api.md, `subscription.subject` > entities: "should follow the restrictions for IDs
    and types, be a valid regex (if pattern ...), and be not empty"; 'Identifiers syntax
    restrictions': 1 to 256 characters of plain ASCII without whitespace, &, ?, / and #."""
    for entity in ({"id": "a" * 256}, {"id": "E", "type": "t" * 256}):
        api.subscribe(entities=[entity])
    error_of(api.post_sub(_body(api, {"entities": [{"id": "a" * 257}]})), 400, "BadRequest",
             "entity id length: 257, max length supported: 256")
    error_of(api.post_sub(_body(api, {"entities": [{"id": "E", "type": "t" * 257}]})), 400, "BadRequest",
             "entity type length: 257, max length supported: 256")
    for bad in ("a b", "a#b", "a/b", "a?b", "a&b", "né"):
        api.refused(_body(api, {"entities": [{"id": bad}]}), "forbidden characters in /entities/ vector item /id/")
    api.refused(_body(api, {"entities": [{"id": "E", "type": "a b"}]}),
                "forbidden characters in /entities/ vector item /type/")
    api.refused(_body(api, {"entities": [{"id": ""}]}))
    api.refused(_body(api, {"entities": [{"idPattern": "(("}]}), "Invalid regex for entity idPattern")
    api.refused(_body(api, {"entities": [{"id": "E", "typePattern": "[a"}]}), "Invalid regex for entity typePattern")


def test_entities_without_type_match_any_type_and_patterns_match(api: Api) -> None:
    """orion-api.md, `subscription.subject` > entities: type "If omitted, it means any entity
    type"; idPattern/typePattern select by regex (user/regex.md)."""
    api.subscribe({"http": {"url": api.url("/any")}}, entities=[{"id": "Room1"}])
    api.subscribe({"http": {"url": api.url("/pattern")}}, entities=[{"idPattern": "^Ro+m", "typePattern": "^Ha"}])
    api.create("Room1", "Hall", t=1)
    api.create("Room1", "Room", t=1)
    api.create("Room2", "Hallway", t=1)
    assert [(e["id"], e["type"]) for e in api.data("/any", 2)] == [("Room1", "Hall"), ("Room1", "Room")]
    # Two entities: the notifier keeps order per entity only (each entity its own lane to a
    # destination), so which of them arrives first is not defined, as in Orion.
    assert sorted((e["id"], e["type"]) for e in api.data("/pattern", 2)) == [("Room1", "Hall"), ("Room2", "Hallway")]


def test_condition_must_have_content(api: Api) -> None:
    """orion-api.md, `subscription.subject` > condition: "If present it must have a content,
    i.e. {} is not allowed"; `subscription.subject.condition` > expression: "`{}` or `""` is
    not allowed. georel, geometry and coords have to be used together" (texts: Orion's for
    the same checks in POST /v2/op/query, case 1080, and case 1678 geosubscriptions)."""
    entities = [{"id": "E"}]
    api.refused(_body(api, {"entities": entities, "condition": {}}))
    api.refused(_body(api, {"entities": entities, "condition": {"expression": {}}}), "expression is empty")
    for key in ("q", "mq"):
        api.refused(_body(api, {"entities": entities, "condition": {"expression": {key: ""}}}), f"{key} is empty")
    api.refused(_body(api, {"entities": entities, "condition": {"expression": {"georel": "near;maxDistance:5",
                                                                               "geometry": "point"}}}),
                "partial geo expression: geometry, georel and coords have to be provided together")
    api.refused(_body(api, {"entities": entities, "condition": {"expression": {"q": "a>>"}}}))


def test_triggering_with_attrs_and_expression(api: Api) -> None:
    """orion-api.md, 'Notification Triggering': "If attrs and expressions are used, a
    notification is sent whenever one of the attributes in the attrs list changes (or is
    deleted) and at the same time expressions match"."""
    api.create(temperature=10, humidity=50, pressure=1)
    api.subscribe(condition={"attrs": ["temperature", "humidity"], "expression": {"q": "pressure>5"}})
    api.update(temperature=11)  # expression false
    api.update(pressure=6)  # not a condition attribute
    api.notifications(0)
    api.update(temperature=12)
    api.write("DELETE", "/v2/entities/Room1/attrs/humidity")
    data = api.data(n=2)
    assert data[0]["temperature"]["value"] == 12 and "humidity" not in data[1]


def test_triggering_with_attrs_only(api: Api) -> None:
    """orion-api.md, 'Notification Triggering': "If attrs is used and expressions are not used,
    a notification is sent whenever any of the attributes in the attrs list changes (or is
    deleted)"."""
    api.create(temperature=10, humidity=50)
    api.subscribe(condition={"attrs": ["temperature"]})
    api.update(humidity=51)
    api.update(temperature=10)  # not a change
    api.notifications(0)
    api.update(temperature=11)
    api.write("DELETE", "/v2/entities/Room1/attrs/temperature")
    api.notifications(2)


def test_triggering_with_expression_only(api: Api) -> None:
    """orion-api.md, 'Notification Triggering': "If attrs is not used and expressions are used,
    a notification is sent whenever any of the attributes of the entity change (or is
    deleted) and at the same time expressions match"."""
    api.create(temperature=10, humidity=50)
    api.subscribe(condition={"expression": {"q": "temperature>20"}})
    api.update(humidity=51)
    api.notifications(0)
    api.update(temperature=25)
    api.update(humidity=52)
    api.write("DELETE", "/v2/entities/Room1/attrs/humidity")
    api.notifications(3)


def test_triggering_without_attrs_nor_expression_and_metadata_changes(api: Api) -> None:
    """orion-api.md, 'Notification Triggering': "If neither attrs nor expressions are used, a
    notification is sent whenever any of the attributes of the entity changes (or is
    deleted). Note that changing the metadata of a given attribute is considered a change"."""
    api.subscribe()
    api.create(temperature=10)
    api.update(temperature={"value": 10, "metadata": {"unit": {"value": "C"}}})
    api.update(temperature={"value": 10, "metadata": {"unit": {"value": "C"}}})  # no change at all
    api.notifications(2)


def test_triggering_with_expression_and_jexl_expression_both_must_match(api: Api) -> None:
    """orion-api.md, 'Notification Triggering': "If both are used (i.e. expression and a
    jexlExpression at the same time) both must match"; `subscription.subject.condition` >
    jexlExpression: "the notification is triggered only when the expression evaluates to true"."""
    api.create(a=1, b=1)
    api.subscribe(condition={"expression": {"q": "a>5"}, "jexlExpression": "b>5"})
    api.update(a=10)  # q true, jexl false
    api.update(a=1, b=10)  # q false, jexl true
    api.notifications(0)
    api.update(a=10, b=10)
    api.notifications(1)


def test_notify_on_metadata_change(api: Api) -> None:
    """orion-api.md, `subscription.subject.condition` > notifyOnMetadataChange: with false "if
    the value doesn't change but the metadata changes, then a notification is not
    triggered"; true is the default."""
    api.create(temperature=10)
    api.subscribe({"http": {"url": api.url("/default")}})
    off = api.subscribe({"http": {"url": api.url("/off")}}, condition={"notifyOnMetadataChange": False})
    assert api.get_sub(off)["subject"]["condition"]["notifyOnMetadataChange"] is False
    api.update(temperature={"value": 10, "metadata": {"unit": {"value": "C"}}})
    api.notifications(1, "/default")
    api.notifications(0, "/off")
    api.update(temperature=11)
    api.notifications(1, "/off")


# --------------------------------------------------------------------------- alteration types


def test_default_alteration_types_are_create_and_change(api: Api) -> None:
    """orion-api.md, 'Subscriptions based in alteration type': "Default alterationTypes ... is
    ["entityCreate", "entityChange"]"."""
    api.subscribe({"http": {"url": api.url()}, "attrs": ["alterationType"]})
    api.create(t=1)
    api.update(t=1)  # entityUpdate: not notified
    api.update(t=2)
    api.write("DELETE", "/v2/entities/Room1")
    assert [e["alterationType"]["value"] for e in api.data(n=2)] == ["entityCreate", "entityChange"]


@pytest.mark.parametrize("types, expected", [
    (["entityCreate"], ["entityCreate"]),
    (["entityChange"], ["entityChange", "entityChange"]),
    (["entityUpdate"], ["entityUpdate", "entityChange", "entityChange"]),
    (["entityUpdate", "entityChange"], ["entityUpdate", "entityChange", "entityChange"]),
    (["entityDelete"], ["entityDelete"]),
    (["entityCreate", "entityDelete"], ["entityCreate", "entityDelete"]),
])
def test_alteration_types(api: Api, types: list[str], expected: list[str]) -> None:
    """orion-api.md, 'Subscriptions based in alteration type': entityUpdate "no matter if the
    entity actually changed or not", entityChange "actually changes (or ... forcedUpdate)",
    entityCreate, entityDelete; OR semantics; entityUpdate takes precedence over
    entityChange; 'Builtin Attributes' > alterationType gives the type in notifications."""
    api.subscribe({"http": {"url": api.url()}, "attrs": ["alterationType"]}, condition={"alterationTypes": types})
    api.create(t=1)
    api.update(t=1)  # entityUpdate
    api.update(t=2)  # entityChange
    api.write("PATCH", "/v2/entities/Room1/attrs", {"t": {"value": 2}}, options="forcedUpdate")  # entityChange
    api.write("DELETE", "/v2/entities/Room1")
    assert [e["alterationType"]["value"] for e in api.data(n=len(expected))] == expected


def test_entity_delete_ignores_condition_attrs(api: Api) -> None:
    """orion-api.md, 'Subscriptions based in alteration type' > entityDelete: "the attrs field
    within condition is ignored"."""
    api.create(t=1)
    api.subscribe(condition={"attrs": ["other"], "alterationTypes": ["entityDelete"]})
    api.write("DELETE", "/v2/entities/Room1")
    api.notifications(1)


def test_unknown_alteration_type_is_refused(api: Api) -> None:
    """orion-api.md, 'Subscriptions based in alteration type': "the following alteration types
    are supported" (four); another is an error."""
    api.refused(_body(api, {"entities": [{"id": "E"}], "condition": {"alterationTypes": ["entityMove"]}}),
                "unknown subscription alterationType: entityMove")


# =========================================================================== `subscription.notification`


def test_attrs_and_except_attrs(api: Api) -> None:
    """orion-api.md, `subscription.notification` > attrs or exceptAttrs: "Both cannot be used
    at the same time"; exceptAttrs "must be a non-empty list"; attrs empty or neither: all
    attributes (texts: Orion's case 2064 attrs_blacklist_subs)."""
    entities = {"entities": [{"id": "E"}]}
    api.refused({"subject": entities, "notification": {"http": {"url": api.url()}, "attrs": ["a"],
                                                       "exceptAttrs": ["b"]}},
                "http notification has attrs and exceptAttrs")
    api.refused({"subject": entities, "notification": {"http": {"url": api.url()}, "exceptAttrs": []}},
                "http notification has exceptAttrs is empty")
    api.subscribe({"http": {"url": api.url("/except")}, "exceptAttrs": ["b"]})
    api.subscribe({"http": {"url": api.url("/empty")}, "attrs": []})
    api.subscribe({"http": {"url": api.url("/none")}})
    api.subscribe({"http": {"url": api.url("/some")}, "attrs": ["b", "missing"]})
    api.create(a=1, b=2, c=3)
    assert set(api.data("/except")[0]) == {"id", "type", "a", "c"}
    assert set(api.data("/empty")[0]) == set(api.data("/none")[0]) == {"id", "type", "a", "b", "c"}
    assert set(api.data("/some")[0]) == {"id", "type", "b"}


def test_one_channel_exactly(api: Api) -> None:
    """orion-api.md, `subscription.notification` > http, httpCustom, mqtt...: "One of them
    must be present, but not more than one at the same time" (texts: Orion's case 2015)."""
    entities = {"entities": [{"id": "E"}]}
    api.refused({"subject": entities, "notification": {"attrs": []}},
                "http, httpCustom, mqtt, mqttCustom, kafka or kafkaCustom is missing")
    api.refused({"subject": entities, "notification": {"http": {"url": api.url()}, "httpCustom": {"url": api.url()}}},
                "only one of http, httpCustom, mqtt, mqttCustom, kafka or kafkaCustom is allowed")


def test_kafka_is_refused(api: Api) -> None:
    """orion-api.md, `subscription.notification.kafka` / kafkaCustom: this broker has no Kafka
    client, so it refuses these subscriptions (400) instead of keeping ones that never notify."""
    for channel in ("kafka", "kafkaCustom"):
        body = {"subject": {"entities": [{"id": "E"}]},
                "notification": {channel: {"url": "kafka://localhost:9092", "topic": "t"}}}
        assert "not supported" in api.refused(body)["description"]


@pytest.mark.parametrize("fmt", ["legacy", "unique", "NORMALIZED", "xml", ""])
def test_attrs_format_other_values_are_errors(api: Api, fmt: str) -> None:
    """orion-api.md, `subscription.notification` > attrsFormat: "If attrsFormat takes any value
    different than those, an error is raised" (legacy: removed in Orion 4.0.0, deprecated.md)."""
    api.refused({"subject": {"entities": [{"id": "E"}]},
                 "notification": {"http": {"url": api.url()}, "attrsFormat": fmt}})


def test_only_changed_attrs_manual_example(api: Api) -> None:
    """orion-api.md, `subscription.notification` > onlyChangedAttrs: "if attrs is [A, B, C] ...
    (when onlyChangedAttrs is false) and the triggering update modified only A, then A, B and
    C are notified ... if onlyChangedAttrs is true ... then only A"."""
    api.create(A=1, B=2, C=3, D=4)
    api.subscribe({"http": {"url": api.url("/all")}, "attrs": ["A", "B", "C"]})
    only = api.subscribe({"http": {"url": api.url("/only")}, "attrs": ["A", "B", "C"], "onlyChangedAttrs": True})
    assert api.get_sub(only)["notification"]["onlyChangedAttrs"] is True
    api.update(A=10)
    assert set(api.data("/all")[0]) == {"id", "type", "A", "B", "C"}
    assert set(api.data("/only")[0]) == {"id", "type", "A"}
    api.update(D=5)  # fires both, but nothing of attrs changed for /only: nothing sent there
    api.notifications(2, "/all")
    api.notifications(1, "/only")


def test_covered_manual_example(api: Api) -> None:
    """orion-api.md, 'Covered Subscriptions': missing attributes of attrs are notified with
    null value of type "None"; covered with an empty attrs list is a 400 with the manual's text."""
    api.subscribe({"http": {"url": api.url()}, "attrs": ["temperature", "humidity", "brightness"], "covered": True})
    api.create(temperature=20, humidity=40)
    assert api.data()[0] == {"id": "Room1", "type": "Room", "temperature": normalized(20),
                             "humidity": normalized(40), "brightness": normalized(None, "None")}
    error_of(api.post_sub({"subject": {"entities": [{"id": "E"}]},
                           "notification": {"http": {"url": api.url()}, "attrs": [], "covered": True}}),
             400, "BadRequest", "covered true cannot be used if notification attributes list is empty")


def test_metadata_filter_and_builtin_metadata(api: Api) -> None:
    """orion-api.md, `subscription.notification` > metadata and 'Builtin Metadata':
    previousValue (only in notifications, the previous type/value), actionType (update,
    append, delete; only for attributes of the request), dateCreated/dateModified; builtins
    only when listed, '*' for all user metadata ('Filtering out attributes and metadata')."""
    api.create(A={"value": 1, "metadata": {"unit": {"value": "C"}, "acc": {"value": 0.5}}})
    api.subscribe({"http": {"url": api.url("/unit")}, "metadata": ["unit"]},
                  condition={"alterationTypes": ["entityUpdate"]})
    api.subscribe({"http": {"url": api.url("/builtin")}, "metadata": ["previousValue", "actionType", "*"]},
                  condition={"alterationTypes": ["entityUpdate"]})
    api.subscribe({"http": {"url": api.url("/dates")}, "metadata": ["dateCreated", "dateModified"]},
                  condition={"alterationTypes": ["entityUpdate"]})
    api.write("POST", "/v2/entities/Room1/attrs", {"A": {"value": "x", "type": "Text"}, "B": {"value": 2}})
    assert api.data("/unit")[0]["A"]["metadata"] == {"unit": {"type": "Text", "value": "C"}}
    builtin = api.data("/builtin")[0]
    assert builtin["A"]["metadata"] == {
        "unit": {"type": "Text", "value": "C"}, "acc": {"type": "Number", "value": 0.5},
        "previousValue": {"type": "Number", "value": 1}, "actionType": {"type": "Text", "value": "update"},
    }
    assert builtin["B"]["metadata"] == {"actionType": {"type": "Text", "value": "append"}}
    dates = api.data("/dates")[0]["A"]["metadata"]
    assert set(dates) == {"dateCreated", "dateModified"} and all(ISO.match(d["value"]) for d in dates.values())
    assert {d["type"] for d in dates.values()} == {"DateTime"}


def test_counters_of_a_receiver_that_answers(api: Api) -> None:
    """orion-api.md, `subscription.notification`: timesSent, lastNotification, lastSuccess and
    lastSuccessCode ("the HTTP code (200, 400, 404, 500, etc.) returned by receiving endpoint")
    in GET; lastFailure, lastFailureReason, failsCounter absent when nothing failed."""
    ok = api.subscribe({"http": {"url": api.url("/ok")}})
    missing = api.subscribe({"http": {"url": api.capture.base + "/status/404" + api.prefix}})
    api.create(t=1)
    api.update(t=2)
    api.notifications(2, "/ok")
    for sub_id, code in ((ok, 200), (missing, 404)):
        sub = api.wait_sub(sub_id, lambda s: s["notification"].get("lastSuccessCode") is not None)
        notification = sub["notification"]
        assert notification["timesSent"] == 2 and notification["lastSuccessCode"] == code
        assert ISO.match(notification["lastNotification"]) and ISO.match(notification["lastSuccess"])
        for absent in ("lastFailure", "lastFailureReason", "failsCounter"):
            assert absent not in notification


def test_counters_of_failures_and_max_fails_limit(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    """orion-api.md, `subscription.notification`: lastFailure, lastFailureReason ("Describes the
    cause of the last failure"), failsCounter ("consecutive failing notifications"); past
    maxFailsLimit the subscription becomes inactive with Orion's WARN trace, and a PATCH
    makes it active again; a success resets failsCounter ("ommitted in this case")."""
    dead = "http://127.0.0.1:9/x"  # the discard port: nothing listens on loopback
    sub_id = api.subscribe({"http": {"url": dead}, "maxFailsLimit": 2})
    caplog.set_level(logging.WARNING, logger="waziup.subscriptions")
    api.create(t=1)
    for value in (2, 3):
        api.update(t=value)
    sub = api.wait_sub(sub_id, lambda s: s["notification"].get("failsCounter") == 3)
    notification = sub["notification"]
    assert sub["status"] == "inactive" and notification["maxFailsLimit"] == 2
    assert notification["lastFailureReason"] == "Could not connect to server"  # Orion's (libcurl's) text, case 1960
    assert ISO.match(notification["lastFailure"]) and "lastSuccess" not in notification
    assert f"Subscription {sub_id} automatically disabled due to failsCounter (3) overpasses maxFailsLimit (2)" \
        in caplog.text
    api.update(t=4)  # inactive: nothing triggered
    api.pump(0.2)
    assert api.get_sub(sub_id)["notification"]["timesSent"] == 3
    assert api.patch_sub(sub_id, {"status": "active",
                                  "notification": {"http": {"url": api.url()}, "maxFailsLimit": 2}}).status_code == 204
    api.update(t=5)
    api.notifications(1)
    sub = api.wait_sub(sub_id, lambda s: "lastSuccess" in s["notification"])
    assert sub["status"] == "active" and "failsCounter" not in sub["notification"]
    assert sub["notification"]["lastFailureReason"] == "Could not connect to server"  # kept, with lastFailure
    for limit in (0, -1):
        api.refused({"subject": {"entities": [{"id": "E"}]},
                     "notification": {"http": {"url": api.url()}, "maxFailsLimit": limit}},
                    "maxFailsLimit must be greater than zero")


# --------------------------------------------------------------------------- http and httpCustom


def test_http_url_must_be_a_valid_url(api: Api) -> None:
    """orion-api.md, `subscription.notification.http` > url: "It must follow a valid URL
    format" (texts: Orion's case 2009 check_of_notification_http_url)."""
    for url in ("localhost:1234", "ftp://host/x", "http://", "http://host:99999/x", "http://a b/x"):
        api.refused({"subject": {"entities": [{"id": "E"}]}, "notification": {"http": {"url": url}}},
                    "Invalid URL parsing notification url")
    api.refused({"subject": {"entities": [{"id": "E"}]}, "notification": {"http": {}}},
                "url http notification is missing")


def test_timeout_up_to_30_minutes(api: Api) -> None:
    """orion-api.md, `subscription.notification.http` and httpCustom > timeout: milliseconds,
    "The maximum value allowed for this parameter is 1800000"; 0 means -httpTimeout (texts:
    Orion's case 3842 per_sub_httpTimeout)."""
    for channel in ("http", "httpCustom"):
        sub_id = api.subscribe({channel: {"url": api.url(), "timeout": 1800000}})
        assert api.get_sub(sub_id)["notification"][channel]["timeout"] == 1800000
        for bad in (1800001, -1):
            api.refused({"subject": {"entities": [{"id": "E"}]}, "notification": {channel: {"url": api.url(),
                                                                                            "timeout": bad}}},
                        "timeout field must be an integer between 0 and 1800000")
    sub_id = api.subscribe({"http": {"url": api.url(), "timeout": 0}})
    assert "timeout" not in api.get_sub(sub_id)["notification"]["http"]


def test_timeout_bounds_the_wait_for_the_answer(api: Api) -> None:
    """orion-api.md, `subscription.notification.http` > timeout: "Maximum time (in
    milliseconds) the subscription waits for the response" (reason: libcurl's text, as Orion)."""
    sub_id = api.subscribe({"http": {"url": api.capture.base + "/slow" + api.prefix, "timeout": 200}})
    api.create(t=1)
    sub = api.wait_sub(sub_id, lambda s: "lastFailure" in s["notification"])
    assert sub["notification"]["lastFailureReason"] == "Timeout was reached"


def test_http_custom_fields_and_methods(api: Api) -> None:
    """orion-api.md, `subscription.notification.httpCustom`: headers and qs "Must not be
    empty"; method "Only valid HTTP methods are allowed. On specifying an invalid HTTP method,
    a 400 Bad Request error is returned"; 'Custom Notifications' > 'Macro substitution': GET,
    PUT, POST, DELETE, PATCH, HEAD, OPTIONS, TRACE, and CONNECT."""
    entities = {"entities": [{"id": "E"}]}
    for field in ("headers", "qs"):
        api.refused({"subject": entities, "notification": {"httpCustom": {"url": api.url(), field: {}}}})
    api.refused({"subject": entities, "notification": {"httpCustom": {"url": api.url(), "method": "FETCH"}}},
                "unknown method httpCustom notification")
    for method in ("GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT"):
        sub_id = api.subscribe({"httpCustom": {"url": api.url(), "method": method}})
        assert api.get_sub(sub_id)["notification"]["httpCustom"]["method"] == method


def test_http_custom_forbidden_characters(api: Api) -> None:
    """orion-api.md, 'General syntax restrictions' apply to httpCustom fields (url, headers,
    qs, payload: 'Headers special treatment', 'Text based payload'); the exceptions are
    quotes in header values and anything within ngsi (texts: Orion's case 2015)."""
    entities = {"entities": [{"id": "E"}]}

    def custom(**fields: Any) -> dict[str, Any]:
        return {"subject": entities, "notification": {"httpCustom": {"url": api.url(), **fields}}}

    api.refused(custom(qs={"a": "x<y"}), "forbidden characters in custom notification httpCustom qs")
    api.refused(custom(headers={"a": "x<y"}), "forbidden characters in custom notification httpCustom headers")
    api.refused(custom(payload="a=b"), "forbidden characters in custom /payload/")
    api.refused({"subject": entities, "notification": {"httpCustom": {"url": api.url() + "?a=(b)"}}},
                "forbidden characters in custom /url/")
    api.refused(custom(headers={"a'": "x"}), "forbidden characters in custom notification httpCustom headers")
    api.subscribe({"httpCustom": {"url": api.url("/ngsi"), "ngsi": {"A": {"value": "it's (=) <ok>", "type": "Text"}}}})
    api.subscribe({"httpCustom": {"url": api.url("/quotes"), "headers": {"X-Quote": "it's \"q\"",
                                                                        "X-Jexl": "${'lit' + id}"}}})
    api.create("Room1")
    assert api.notification("/ngsi").json()["data"][0]["A"]["value"] == "it's (=) <ok>"
    headers = api.notification("/quotes").headers
    assert headers["x-quote"] == "it's \"q\"" and headers["x-jexl"] == "litRoom1"


# =========================================================================== Notification Messages


@pytest.mark.parametrize("fmt, expected", [
    ("normalized", {"subscriptionId": "SUB", "data": [{"id": "Room1", "type": "Room",
                                                       "temperature": normalized(23),
                                                       "humidity": normalized(70, "percentage")}]}),
    (None, {"subscriptionId": "SUB", "data": [{"id": "Room1", "type": "Room", "temperature": normalized(23),
                                               "humidity": normalized(70, "percentage")}]}),
    ("simplifiedNormalized", {"id": "Room1", "type": "Room", "temperature": normalized(23),
                              "humidity": normalized(70, "percentage")}),
    ("keyValues", {"subscriptionId": "SUB", "data": [{"id": "Room1", "type": "Room", "temperature": 23,
                                                      "humidity": 70}]}),
    ("simplifiedKeyValues", {"id": "Room1", "type": "Room", "temperature": 23, "humidity": 70}),
    ("values", {"subscriptionId": "SUB", "data": [[23, 70]]}),
])
def test_notification_formats(api: Api, fmt: str | None, expected: dict[str, Any]) -> None:
    """orion-api.md, 'Notification Messages': the body of each attrsFormat (the manual's
    examples) and the Ngsiv2-AttrsFormat header naming it; one entity per notification."""
    notification: dict[str, Any] = {"http": {"url": api.url()}, "attrs": ["temperature", "humidity"]}
    if fmt is not None:
        notification["attrsFormat"] = fmt
    sub_id = api.subscribe(notification)
    api.create(temperature=23, humidity={"value": 70, "type": "percentage"})
    got = api.notification()
    assert got.method == "POST"
    assert got.headers["ngsiv2-attrsformat"] == (fmt or "normalized")
    assert got.headers["content-type"].startswith("application/json")
    assert got.json() == json.loads(json.dumps(expected).replace('"SUB"', json.dumps(sub_id)))


def test_values_follow_the_order_of_attrs(api: Api) -> None:
    """orion-api.md, `subscription.notification` > attrs: "It also defines the order in which
    attributes must appear in notifications when attrsFormat value is used"."""
    api.subscribe({"http": {"url": api.url()}, "attrs": ["c", "a", "b"], "attrsFormat": "values"})
    api.create(a=1, b=2, c=3)
    assert api.notification().json()["data"] == [[3, 1, 2]]


# =========================================================================== Builtin Attributes


def test_builtin_attributes_only_when_listed(api: Api) -> None:
    """orion-api.md, 'Builtin Attributes': dateCreated, dateModified, dateExpires (DateTime),
    alterationType and servicePath (Text) are "not rendered by default"; listed in
    notification attrs they are; '*' stands for all user attributes ('Filtering out
    attributes and metadata')."""
    api.subscribe({"http": {"url": api.url("/default")}})
    api.subscribe({"http": {"url": api.url("/listed")},
                   "attrs": ["dateCreated", "dateModified", "dateExpires", "alterationType", "servicePath", "*"]})
    api.write("POST", "/v2/entities", {"id": "Room1", "type": "Room", "t": {"value": 1},
                                       "dateExpires": {"value": "2050-01-01T00:00:00.000Z", "type": "DateTime"}},
              service_path="/floor1/east")
    assert set(api.data("/default")[0]) == {"id", "type", "t"}
    listed = api.data("/listed")[0]
    assert listed["servicePath"] == normalized("/floor1/east", "Text")
    assert listed["alterationType"] == normalized("entityCreate", "Text")
    assert listed["dateExpires"] == normalized("2050-01-01T00:00:00.000Z", "DateTime")
    assert listed["dateCreated"]["type"] == listed["dateModified"]["type"] == "DateTime"
    assert ISO.match(listed["dateCreated"]["value"]) and listed["t"] == normalized(1)


def test_builtin_service_path_in_q_of_a_subscription(api: Api) -> None:
    """orion-api.md, 'Builtin Attributes': "Like regular attributes, they can be used in q
    filters" (servicePath here)."""
    api.subscribe(condition={"expression": {"q": "servicePath==/a"}})
    api.write("POST", "/v2/entities", {"id": "R1", "type": "Room"}, service_path="/a")
    api.write("POST", "/v2/entities", {"id": "R2", "type": "Room"}, service_path="/b")
    assert [e["id"] for e in api.data()] == ["R1"]


def test_only_changed_attrs_keeps_some_builtins(api: Api) -> None:
    """orion-api.md, 'Builtin Attributes': alterationType, dateCreated and dateModified "are
    included in notifications (if added to attrs ...) even when onlyChangedAttrs is set to
    true" (servicePath, not in that list, is not)."""
    api.create(A=1, B=2)
    api.subscribe({"http": {"url": api.url()}, "onlyChangedAttrs": True,
                   "attrs": ["A", "B", "alterationType", "dateCreated", "dateModified", "servicePath"]})
    api.update(B=3)
    assert set(api.data()[0]) == {"id", "type", "B", "alterationType", "dateCreated", "dateModified"}


def test_user_attribute_named_like_a_builtin_wins(api: Api) -> None:
    """orion-api.md, 'User attributes or metadata matching builtin name': "the user defined
    attribute/metadata will take preference over the builtin even when declared explicitly"."""
    api.subscribe({"http": {"url": api.url()}, "attrs": ["dateModified", "servicePath"]})
    api.create(dateModified={"value": "2050-01-01", "type": "Text"}, servicePath={"value": "mine", "type": "Text"})
    data = api.data()[0]
    assert data["dateModified"] == normalized("2050-01-01", "Text")
    assert data["servicePath"] == normalized("mine", "Text")


# =========================================================================== Custom Notifications


def test_macro_substitution_manual_example(api: Api) -> None:
    """orion-api.md, 'Custom Notifications' > 'Macro substitution': url, qs and json
    templated, method PUT; a macro covering a whole json string keeps the value's type."""
    api.subscribe({"httpCustom": {"url": api.url("/entity/${id}"), "method": "PUT", "qs": {"type": "${type}"},
                                  "json": {"t": "${temperature}", "unit": "degress"}}})
    api.create("DC_S1-D41", "Room", temperature=23.4)
    got = api.notification()
    assert (got.method, got.path) == ("PUT", api.prefix + "/entity/DC_S1-D41?type=Room")
    assert got.json() == {"t": 23.4, "unit": "degress"}
    assert got.headers["content-type"].startswith("application/json")


def test_macro_identifiers(api: Api) -> None:
    """orion-api.md, 'Macro substitution': id, type, service, servicePath and authToken (the
    headers of the triggering update), all the entity's attributes; "In the rare case an
    attribute was named in the same way of the service, servicePath or authToken ... the
    attribute value takes precedence"."""
    api.subscribe({"httpCustom": {"url": api.url("/ids"),
                                  "payload": "${id}|${type}|${service}|${servicePath}|${authToken}|${A}"}})
    api.subscribe({"httpCustom": {"url": api.url("/clash"), "payload": "${service}|${servicePath}"}},
                  entities=[{"id": "Clash"}])
    api.write("POST", "/v2/entities", {"id": "E1", "type": "T", "A": {"value": 5}}, service_path="/x/y", token="tk")
    assert api.notification("/ids").body.decode() == f"E1|T|{api.tenant}|/x/y|tk|5"
    api.create("Clash", service={"value": "s", "type": "Text"}, servicePath={"value": "p", "type": "Text"})
    assert api.notification("/clash").body.decode() == "s|p"


def test_correlator_and_attrs_format_headers_cannot_be_overwritten(api: Api) -> None:
    """orion-api.md, 'Macro substitution': "Fiware-Correlator and Ngsiv2-AttrsFormat headers
    cannot be overwritten in custom notifications. Any attempt of doing so ... will be
    ignored"; other headers are added with macros in name and value."""
    api.subscribe({"httpCustom": {"url": api.url(), "headers": {"Fiware-Correlator": "foo",
                                                                 "Ngsiv2-AttrsFormat": "bar",
                                                                 "X-${type}": "v-${id}"}}})
    api.create()
    headers = api.notification().headers
    assert headers["fiware-correlator"] != "foo" and headers["fiware-correlator"].endswith("; cbnotif=1")
    assert headers["ngsiv2-attrsformat"] == "normalized"
    assert headers["x-room"] == "v-Room1"


def test_headers_special_treatment_manual_example(api: Api) -> None:
    """orion-api.md, 'Headers special treatment': URL-encoded characters of headers are
    decoded at notification time; the example's qs and null payload (Content-Length 0)."""
    api.subscribe({"httpCustom": {"url": api.url("/entity/${id}"), "headers": {"Authorization": "Basic ABC...ABC%3D%3D"},
                                  "method": "PUT", "qs": {"type": "${type}", "t": "${temperature}"},
                                  "payload": None}})
    api.create("DC_S1-D41", "Room", temperature=23.4)
    got = api.notification()
    assert got.method == "PUT" and got.path == api.prefix + "/entity/DC_S1-D41?t=23.4&type=Room"
    assert got.headers["authorization"] == "Basic ABC...ABC=="
    assert got.headers["content-length"] == "0" and got.body == b""


def test_remove_headers_with_empty_values(api: Api) -> None:
    """orion-api.md, 'Remove headers': "An empty string value for a header key in the headers
    object will remove that header from notifications", e.g. Accept, or x-auth-token to cut
    its propagation from the update."""
    api.subscribe({"httpCustom": {"url": api.url("/kept")}})
    api.subscribe({"httpCustom": {"url": api.url("/removed"), "headers": {"x-auth-token": "", "Accept": ""}}})
    api.write("POST", "/v2/entities", {"id": "Room1", "type": "Room"}, token="secret")
    kept = api.notification("/kept").headers
    assert kept["x-auth-token"] == "secret" and kept["accept"] == "application/json"
    removed = api.notification("/removed").headers
    assert "x-auth-token" not in removed and "accept" not in removed


def test_text_payload_manual_example(api: Api) -> None:
    """orion-api.md, 'Text based payload': URL-encoded characters decoded at notification time,
    Content-Type text/plain unless headers overwrite it."""
    payload = "the value of the %22temperature%22 attribute %28of type Number%29 is ${temperature}"
    api.subscribe({"httpCustom": {"url": api.url("/entity/${id}"), "method": "PUT", "qs": {"type": "${type}"},
                                  "payload": payload}})
    api.subscribe({"httpCustom": {"url": api.url("/csv"), "payload": "${temperature}",
                                  "headers": {"Content-Type": "text/csv"}}})
    api.create("DC_S1-D41", "Room", temperature=23.4)
    got = api.notification("/entity")
    assert got.path == api.prefix + "/entity/DC_S1-D41?type=Room"
    assert got.body.decode() == 'the value of the "temperature" attribute (of type Number) is 23.4'
    assert got.headers["content-type"].split(";")[0] == "text/plain"
    assert got.headers["ngsiv2-attrsformat"] == "custom"
    assert api.notification("/csv").headers["content-type"] == "text/csv"


def test_json_payload_rules(api: Api) -> None:
    """orion-api.md, 'JSON payloads': a macro covering a whole string keeps the JSON type of
    the value, a partial one casts to string (arrays and objects stringified), a missing
    attribute gives null, no macros in keys, Content-Type application/json,
    Ngsiv2-AttrsFormat custom ('Additional considerations')."""
    api.subscribe({"httpCustom": {"url": api.url(), "json": {
        "t": "${temperature}", "s": "${name}", "h": ["${humidityMin}", "${humidityMax}"], "v": 4,
        "text": "Temperature is: ${temperature}", "list": "L ${list}", "missing": "${nope}", "${id}": 1}}})
    api.create(temperature=10, name="ten", humidityMin=5, humidityMax=9, list=[1, 2])
    got = api.notification()
    body = got.json()
    assert body == {"t": 10, "s": "ten", "h": [5, 9], "v": 4, "text": "Temperature is: 10", "list": "L [1,2]",
                    "missing": None, "${id}": 1}
    assert got.headers["content-type"].startswith("application/json")
    assert got.headers["ngsiv2-attrsformat"] == "custom"


def test_json_must_be_object_or_array(api: Api) -> None:
    """orion-api.md, 'JSON payloads': "The value of the json field must be an array or object.
    Although a simple string or number is also a valid JSON ... these cases are not
    supported" (text: Orion's case 2560 custom_notification_http_json_errors)."""
    for value in ("text", 1, True, None):
        api.refused({"subject": {"entities": [{"id": "E"}]},
                     "notification": {"httpCustom": {"url": api.url(), "json": value}}},
                    "json fields in httpCustom, mqttCustom or kafkaCustom must be object or array")
    sub_id = api.subscribe({"httpCustom": {"url": api.url(), "json": [1, "${id}"]}})
    assert api.get_sub(sub_id)["notification"]["httpCustom"]["json"] == [1, "${id}"]


def test_payload_json_and_ngsi_are_mutually_exclusive(api: Api) -> None:
    """orion-api.md, `subscription.notification.httpCustom`: "payload, json or ngsi cannot be
    used at the same time, they are mutually exclusive" (text: Orion's case 4085)."""
    combinations: list[dict[str, Any]] = [{"payload": "x", "json": {}}, {"json": {}, "ngsi": {}},
                                          {"payload": "x", "ngsi": {}}]
    for fields in combinations:
        api.refused({"subject": {"entities": [{"id": "E"}]},
                     "notification": {"httpCustom": {"url": api.url(), **fields}}},
                    "only one of payload, json or ngsi fields accepted at the same time in httpCustom, mqttCustom "
                    "or kafkaCustom")


def test_ngsi_patching_manual_example(api: Api) -> None:
    """orion-api.md, 'NGSI payload patching': id, type and attributes patched (update or
    append), the normalized format, Ngsiv2-AttrsFormat normalized ('Additional
    considerations')."""
    sub_id = api.subscribe({"httpCustom": {"url": api.url(), "ngsi": {
        "id": "prefix:${id}", "type": "newType",
        "originalService": {"value": "${service}", "type": "Text"},
        "originalServicePath": {"value": "${servicePath}", "type": "Text"}}}})
    api.write("POST", "/v2/entities", {"id": "Room1", "type": "Room", "temperature": {"value": 21}},
              service_path="/zone")
    got = api.notification()
    assert got.headers["ngsiv2-attrsformat"] == "normalized"
    assert got.json() == {"subscriptionId": sub_id, "data": [{
        "id": "prefix:Room1", "type": "newType", "temperature": normalized(21),
        "originalService": normalized(api.tenant, "Text"), "originalServicePath": normalized("/zone", "Text")}]}


def test_ngsi_patching_rules(api: Api) -> None:
    """orion-api.md, 'NGSI payload patching': id and type not mandatory; a missing attribute
    type takes the default of 'Partial Representations' (for the value given, at creation:
    a template is a string, so Text, as Orion's case 4085 attr_no_type shows it in GET);
    attrs filtering "after applying the NGSI patching"; no macros in attribute types; a
    whole macro keeps the value's JSON type but id and type are always strings; a missing
    attribute gives null; `{}` is no patching."""
    sub_id = api.subscribe({"httpCustom": {"url": api.url("/rules"), "ngsi": {
        "type": "${n}",
        "n": {"value": "${n}", "type": "Number"}, "s": {"value": "n is ${n}"}, "o": {"value": {"k": "${n}"}},
        "missing": {"value": "${nope}", "type": "Number"}, "typed": {"value": 1, "type": "${type}"},
        "dropped": {"value": 1}}},
        "attrs": ["n", "s", "o", "missing", "typed"]})
    ngsi = api.get_sub(sub_id)["notification"]["httpCustom"]["ngsi"]
    assert ngsi["s"] == {"type": "Text", "value": "n is ${n}"} and ngsi["dropped"] == {"type": "Number", "value": 1}
    api.subscribe({"httpCustom": {"url": api.url("/empty"), "ngsi": {}}})
    api.create(n=7, other=1)
    data = api.data("/rules")[0]
    assert data == {"id": "Room1", "type": "7", "n": normalized(7), "s": normalized("n is 7", "Text"),
                    "o": normalized({"k": 7}, "StructuredValue"), "missing": normalized(None),
                    "typed": normalized(1, "${type}")}
    assert api.data("/empty")[0] == {"id": "Room1", "type": "Room", "n": normalized(7), "other": normalized(1)}


def test_ngsi_must_be_an_entity_representation(api: Api) -> None:
    """orion-api.md, 'NGSI payload patching': "The value of the ngsi field must be a valid JSON
    Entity Representation": attributes are objects, names and types follow 'Identifiers
    syntax restrictions' (texts: Orion's for entities)."""
    def ngsi(value: Any) -> dict[str, Any]:
        return {"subject": {"entities": [{"id": "E"}]},
                "notification": {"httpCustom": {"url": api.url(), "ngsi": value}}}

    api.refused(ngsi([]))
    api.refused(ngsi({"A": 1}), "attribute must be a JSON object, unless keyValues option is used")
    api.refused(ngsi({"A#": {"value": 1}}), "Invalid characters in attribute name")
    api.refused(ngsi({"a" * 257: {"value": 1}}), "attribute name length: 257, max length supported: 256")
    api.refused(ngsi({"A": {"value": 1, "type": "a b"}}), "Invalid characters in attribute type")
    api.refused(ngsi({"id": 5}), "Invalid JSON type for entity id")


def test_omitting_payload(api: Api) -> None:
    """orion-api.md, 'Omitting payload': payload null sends no payload (content-length 0);
    "" or no payload field send the normalized notification."""
    api.subscribe({"httpCustom": {"url": api.url("/null"), "payload": None}})
    empty = api.subscribe({"httpCustom": {"url": api.url("/empty"), "payload": ""}})
    api.create(t=1)
    null = api.notification("/null")
    assert null.body == b"" and null.headers["content-length"] == "0"
    assert api.notification("/empty").json() == {"subscriptionId": empty,
                                                 "data": [{"id": "Room1", "type": "Room", "t": normalized(1)}]}


def test_disable_custom_notifications(capture: Capture) -> None:
    """orion-api.md, 'Additional considerations': with -disableCustomNotifications
    "httpCustom is interpreted as http, i.e. all sub-fields except url are ignored" and no
    macro substitution is performed."""
    with broker_client("memory://", notif_allowed_hosts=LOOPBACK, disable_custom_notifications=True) as client:
        api = Api(client, capture, new_id("t"))
        sub_id = api.subscribe({"httpCustom": {"url": api.url(), "method": "PUT", "qs": {"a": "${id}"},
                                               "headers": {"X-A": "b"}, "payload": "${id}"}})
        api.create(t=1)
        got = api.notification()
        assert (got.method, got.path) == ("POST", api.prefix)
        assert "x-a" not in got.headers and got.headers["ngsiv2-attrsformat"] == "normalized"
        assert got.json() == {"subscriptionId": sub_id, "data": [{"id": "Room1", "type": "Room", "t": normalized(1)}]}


def test_malformed_url_after_substitution_sends_nothing(api: Api) -> None:
    """orion-api.md, 'Additional considerations': "if the resulting URL after applying the
    template is malformed, then no notification is sent": the write succeeds, nothing goes
    out, and the next notification, whose URL is valid, is sent."""
    api.subscribe({"httpCustom": {"url": "${target}"}})
    api.create(target={"value": "nonsense", "type": "Text"})
    api.update(target={"value": api.url("/built"), "type": "Text"})
    api.notifications(1)
    assert api.notification("/built").json()["data"][0]["target"]["value"] == api.url("/built")


def test_fiware_service_and_service_path_headers(api: Api) -> None:
    """orion-api.md, 'Multi tenancy': with -multiservice notifications carry Fiware-Service
    (the tenant in lowercase: "notifications related with that tenant will be sent with
    myservice"), except for the default tenant, "in which case the header is not present";
    'Entity service path': "Fiware-ServicePath header is included in notification requests"."""
    tenant = api.tenant.lower()
    sub = {"subject": {"entities": [{"id": "Room1"}]}, "notification": {"http": {"url": api.url("/tenant")}}}
    assert api.client.post("/v2/subscriptions", json=sub, headers={"Fiware-Service": tenant}).status_code == 201
    api.client.post("/v2/entities", json={"id": "Room1", "type": "Room"},
                    headers={"Fiware-Service": tenant.upper(), "Fiware-ServicePath": "/Floor1"})
    got = api.notification("/tenant").headers
    assert got["fiware-service"] == tenant and got["fiware-servicepath"] == "/Floor1"
    marker = new_id("Default")  # the default tenant: no Fiware-Service header anywhere
    sub = {"subject": {"entities": [{"id": marker}]}, "notification": {"http": {"url": api.url("/default")}}}
    assert api.client.post("/v2/subscriptions", json=sub).status_code == 201
    assert api.client.post("/v2/entities", json={"id": marker, "type": "Room"}).status_code == 201
    assert "fiware-service" not in api.notification("/default").headers


# =========================================================================== Oneshot Subscriptions


def test_oneshot_fires_once_and_can_be_rearmed(api: Api) -> None:
    """orion-api.md, 'Oneshot Subscriptions': one notification, then status inactive; PATCH
    status oneshot repeats the behaviour (the manual's example subscription)."""
    api.create(temperature=20, pressure=1)
    sub_id = api.subscribe({"http": {"url": api.url()}, "attrs": ["temperature"]},
                           entities=[{"id": "Room1", "type": "Room"}], condition={"attrs": ["pressure"]},
                           status="oneshot", description="A subscription to get info about Room1")
    assert api.get_sub(sub_id)["status"] == "oneshot"
    api.update(pressure=2)
    api.update(pressure=3)
    api.notifications(1)
    assert api.data()[0] == {"id": "Room1", "type": "Room", "temperature": normalized(20)}
    assert api.get_sub(sub_id)["status"] == "inactive"
    assert api.patch_sub(sub_id, {"status": "oneshot"}).status_code == 204
    api.update(pressure=4)
    api.update(pressure=5)
    api.notifications(2)
    assert api.get_sub(sub_id)["status"] == "inactive"


# =========================================================================== List, PATCH, DELETE


def test_list_pagination_and_count(api: Api) -> None:
    """orion-api.md, 'List Subscriptions' and 'Pagination': limit, offset, options=count
    (Fiware-Total-Count), creation order; limit at most 1000."""
    ids = [api.subscribe(description=f"s{i}") for i in range(5)]
    listed = api.request("GET", "/v2/subscriptions")
    assert listed.status_code == 200 and [s["id"] for s in listed.json()] == ids
    assert "fiware-total-count" not in listed.headers
    page = api.request("GET", "/v2/subscriptions", params={"limit": "2", "offset": "1", "options": "count"})
    assert [s["id"] for s in page.json()] == ids[1:3]
    assert page.headers["fiware-total-count"] == "5"
    assert api.request("GET", "/v2/subscriptions", params={"offset": "10"}).json() == []
    error_of(api.request("GET", "/v2/subscriptions", params={"limit": "1001"}), 400, "BadRequest")


def test_list_is_narrowed_to_the_exact_service_path(api: Api) -> None:
    """orion-api.md, 'Service path in subscriptions and registrations': the header "is taken
    into account in GET /v2/subscriptions in order to narrow down the results to
    subscriptions ... that use exactly that service path"; without it, all are listed."""
    a = api.subscribe(service_path="/a")
    a_all = api.subscribe(service_path="/a/#")
    b = api.subscribe(service_path="/b")

    def listed(path: str | None) -> list[str]:
        return [s["id"] for s in api.request("GET", "/v2/subscriptions", service_path=path).json()]

    assert listed("/a") == [a]
    assert listed("/a/#") == [a_all]
    assert listed(None) == [a, a_all, b]


def test_subscriptions_with_a_service_path_notify_on_entities_under_it(api: Api) -> None:
    """orion-api.md, 'Service path in subscriptions and registrations': the service path of a
    subscription "is the expression of the query associated to the subscription"
    ('Entity service path': /a/# covers /a and what is under it)."""
    api.subscribe({"http": {"url": api.url("/exact")}}, service_path="/a")
    api.subscribe({"http": {"url": api.url("/tree")}}, service_path="/a/#")
    for path in ("/a", "/a/b", "/c"):
        api.write("POST", "/v2/entities", {"id": "E" + path.replace("/", "_"), "type": "T"}, service_path=path)
    assert [e["id"] for e in api.data("/exact")] == ["E_a"]
    assert sorted(e["id"] for e in api.data("/tree", 2)) == ["E_a", "E_a_b"]


def test_patch_updates_only_the_fields_given(api: Api) -> None:
    """orion-api.md, 'Update Subscription `PATCH /v2/subscriptions/{subscriptionId}`': "Only
    the fields included in the request are updated" (the manual's expires example); 204."""
    sub_id = api.subscribe({"http": {"url": api.url()}, "attrs": ["A"]}, description="d", throttling=5)
    before = api.get_sub(sub_id)
    response = api.patch_sub(sub_id, {"expires": "2050-04-05T14:00:00.00Z"})
    assert response.status_code == 204 and response.content == b""
    after = api.get_sub(sub_id)
    assert after.pop("expires") == "2050-04-05T14:00:00.000Z"
    assert after == before
    assert api.patch_sub(sub_id, {"description": "new"}).status_code == 204
    assert api.get_sub(sub_id)["description"] == "new" and api.get_sub(sub_id)["throttling"] == 5


def test_patch_checks_like_create(api: Api) -> None:
    """orion-api.md, 'Update Subscription': the payload follows the datamodel; the errors of
    creation apply ('Error Responses': 400 BadRequest, ParseError for bad JSON)."""
    sub_id = api.subscribe()
    error_of(api.patch_sub(sub_id, {"status": "paused"}), 400, "BadRequest",
             "status is not valid: it has to be either active, inactive or oneshot")
    error_of(api.patch_sub(sub_id, {"notification": {"http": {"url": api.url()}, "attrsFormat": "legacy"}}),
             400, "BadRequest")
    error_of(api.patch_sub(sub_id, {"subject": {"entities": [{"id": "E"}], "condition": {}}}), 400, "BadRequest")
    bad_json = api.client.patch(f"/v2/subscriptions/{sub_id}", content=b"{", headers={
        **api.headers(), "Content-Type": "application/json"})
    error_of(bad_json, 400, "ParseError")
    assert api.get_sub(sub_id)["status"] == "active"


def test_unknown_subscription_is_404(api: Api) -> None:
    """orion-api.md, 'Retrieve', 'Update' and 'Delete subscription': 'Error Responses':
    NotFound (404) when the resource is not found (text: Orion's case 1654 del_subs_v2)."""
    missing = "0123456789abcdef01234567"
    for method in ("GET", "DELETE"):
        error_of(api.request(method, f"/v2/subscriptions/{missing}"), 404, "NotFound", NOT_FOUND)
    error_of(api.patch_sub(missing, {"status": "active"}), 404, "NotFound", NOT_FOUND)


def test_delete_cancels_the_subscription(api: Api) -> None:
    """orion-api.md, 'Delete subscription': "Cancels subscription", 204; no more notifications."""
    sub_id = api.subscribe()
    response = api.request("DELETE", f"/v2/subscriptions/{sub_id}")
    assert response.status_code == 204
    error_of(api.request("GET", f"/v2/subscriptions/{sub_id}"), 404, "NotFound", NOT_FOUND)
    api.create(t=1)
    api.notifications(0)


def test_subscriptions_belong_to_the_tenant(api: Api) -> None:
    """orion-api.md, 'Service path in subscriptions and registrations': "subscriptions ...
    belong only to the service" ('Multi tenancy')."""
    sub_id = api.subscribe()
    other = {"Fiware-Service": new_id("o")}
    error_of(api.client.get(f"/v2/subscriptions/{sub_id}", headers=other), 404, "NotFound", NOT_FOUND)
    assert api.client.get("/v2/subscriptions", headers=other).json() == []
    api.client.post("/v2/entities", json={"id": "Room1", "type": "Room"}, headers=other)
    api.notifications(0)


def test_subscription_and_counters_survive_a_restart(store: str, capture: Capture, tmp_path: Path) -> None:
    """orion-api.md, 'Retrieve Subscription': what GET shows (the subscription and its
    counters) is the same after the broker restarts on its store (SQLite or PostgreSQL)."""
    uri = f"sqlite:///{tmp_path}/restart.db" if store.startswith("sqlite") else store
    with broker_client(uri, notif_allowed_hosts=LOOPBACK) as client:
        api = Api(client, capture, new_id("t"))
        sub_id = api.subscribe({"httpCustom": {"url": api.url(), "headers": {"X-A": "1"}}, "attrs": ["t"],
                                "maxFailsLimit": 3}, condition={"attrs": ["t"], "alterationTypes": ["entityUpdate"]},
                               description="kept", throttling=1, expires="2050-01-01T00:00:00Z")
        api.create(t=1)
        api.update(t=2)
        api.notifications(1)
        before = api.wait_sub(sub_id, lambda s: "lastSuccess" in s["notification"])
        api.pump(0.6)  # counters reach the store within FLUSH_DELAY; closing flushes too
    with broker_client(uri, notif_allowed_hosts=LOOPBACK) as client:
        api = Api(client, capture, api.tenant)
        assert api.get_sub(sub_id) == before
