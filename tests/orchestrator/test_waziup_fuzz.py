"""Never a 500: every route of the WAZIUP API v2 under random methods, path segments (odd
ids, unicode, very long), query strings and bodies (random bytes, random JSON, wrong content
types), with and without a token, on ``waziup run`` (one platform for the module).

The answer is never 5xx (a 503 would mean a backend is down, which must not happen here) and
an error always says something (contract §1: free text, but text). The one 5xx allowed is
``GET /gateways/{id}/vpn``'s deliberate 501 (there is no VPN server on this platform, §7)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.waziup_api.routes import routes
from tests.orchestrator.test_waziup_api import Subscriber, admin, http, platform, users

__all__ = ["admin", "http", "platform", "users"]  # module-scoped fixtures, re-used here

PREFIX = "/api/v2"
# (path under /api/v2, its methods): the client's base URL is /api/v2
ROUTES = sorted((r.path.removeprefix(PREFIX), tuple(sorted(r.methods)))  # type: ignore[attr-defined]
                for r in routes() if r.path.startswith(PREFIX))  # type: ignore[attr-defined]
ROUTES += [("/{x}", ("GET",)), ("/devices/{device}/{x}/{y}/{z}/{w}", ("PUT",))]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
FIELDS = ["name", "meta", "location", "gateway_id", "owner", "visibility", "deployed", "domain", "unit",
          "sensor_kind", "quantity_kind", "calib", "value_type", "actuator_kind", "value", "status", "heartbeat",
          "device_ids", "gateway_ids", "sms_credit", "vpn"]
KNOWN = {"device": ["FZ-Dev", "FZ-Priv"], "member": ["S1", "A1"], "gateway": ["FZ-GW"], "field": FIELDS,
         "kind": ["devices", "gateways", "projects"], "name": ["units", "sensor_kinds"]}
QUERY_KEYS = ["limit", "offset", "q", "sort", "date_from", "date_to", "calibrated", "full", "device_id",
              "sensor_id", "username"]
CONTENT_TYPES = [None, "application/json", "text/plain", "text/plain;charset=utf-8", "text/plain;charset=nope",
                 "application/json; charset=latin-1", "application/x-www-form-urlencoded", "multipart/form-data",
                 "application/ld+json", "text/csv", "bogus"]
ACCEPTS = [None, "text/csv", "application/json", "*/*", "text/html"]
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
odd_segments = st.sampled_from(["", ".", "..", "%", "%00", "=", '["a","b"]', "undefined", "null", "123",
                                "a" * 24, "0" * 24, "x" * 300, "a b", "é", "日本", "\u202e", "#", "?", "&", "+",
                                "%2F", "-1", "true", "{}", "\\", "'", '"'])
segments = st.one_of(odd_segments, st.text(min_size=1, max_size=40), st.text(max_size=3000).filter(bool))
json_or_text = st.one_of(json_values, segments)
shaped = st.fixed_dictionaries({}, optional={  # objects shaped like the API's, with odd members
    "value": json_values, "timestamp": st.one_of(json_values, st.sampled_from(
        ["2016-06-08T18:20:27.873Z", "2016-13-40T99:99:99Z", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59",
         "2016-06-08 18:20", "2016-06-08T18:20:27,5+0100"])),
    "id": json_or_text, "name": json_or_text, "condition": json_values, "action": json_values,
    "username": st.one_of(st.sampled_from(["alice", "bob", "admin", "nobody"]), json_or_text),
    "password": json_or_text, "channel": st.one_of(st.sampled_from(["none", "sms", "twitter", "voice"]), json_values),
    "message": json_or_text, "sensors": st.lists(st.fixed_dictionaries({"id": json_or_text}, optional={
        "name": json_values, "unit": json_values, "calib": json_values, "meta": json_values}), max_size=3),
    "actuators": st.lists(st.fixed_dictionaries({"id": json_or_text}, optional={
        "actuator_value_type": json_or_text, "value": json_values}), max_size=3),
    "location": st.one_of(json_values, st.fixed_dictionaries({"latitude": json_values, "longitude": json_values})),
    "device_ids": json_values, "gateway_ids": json_values, "visibility": json_or_text, "deployed": json_values,
    "usernames": json_values, "channels": json_values, "throttling": json_values, "expires": json_values,
    "status": json_or_text, "sms_credit": json_values, "email": json_or_text, "meta": json_values,
    "linear": st.fixed_dictionaries({"enabled": json_values, "value_min": json_values, "value_max": json_values}),
    "function": json_values,
})
notif_like = st.fixed_dictionaries({
    "condition": st.fixed_dictionaries({"devices": st.just(["FZ-Dev"]), "sensors": st.just(["S1"]),
                                        "expression": st.one_of(st.text(max_size=30), st.sampled_from(
                                            ["S1>1", "S1==a;S1!=b", "S1>=", ">", "S1~=x", "S1==1..3", "S1=='x'"]))}),
    "action": st.one_of(
        st.fixed_dictionaries({"type": st.just("ActuationAction"), "value": st.fixed_dictionaries(
            {"device_id": st.sampled_from(["FZ-Dev", "missing"]), "actuator_id": st.sampled_from(["A1", "S1", "x"]),
             "actuator_value": json_values})}),
        st.fixed_dictionaries({"type": st.just("SocialAction"), "value": st.fixed_dictionaries(
            {"usernames": st.lists(st.sampled_from(["alice", "nobody", ""]), max_size=2),
             "channels": st.lists(st.sampled_from(["none", "sms", "twitter", "voice"]), max_size=2),
             "message": st.text(max_size=20)})})),
    "throttling": st.one_of(st.integers(), st.floats(allow_nan=False)),
    "expires": st.sampled_from(["2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z", "soon"]),
})
bodies = st.one_of(
    st.none(),
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    shaped.map(lambda v: json.dumps(v).encode()),
    st.lists(shaped, max_size=3).map(lambda v: json.dumps(v).encode()),
    notif_like.map(lambda v: json.dumps(v).encode()),
    st.text(max_size=100).map(str.encode),
    st.sampled_from([b"NaN", b"[1e999]", b"{\"value\": Infinity}", b"[" * 5000, b"\"" + b"\\ud800" + b"\"",
                     b"\xff\xfe", b"{\"value\": 1}" * 2]),
)
queries = st.dictionaries(st.sampled_from(QUERY_KEYS), st.one_of(odd_segments, st.text(max_size=30)), max_size=4)


def _path(template: str, draw: st.DrawFn, *, known: bool) -> str:
    parts = []
    for part in template.split("/"):
        if part.startswith("{"):
            name = part[1:-1]
            if known and name in KNOWN:
                value = draw(st.sampled_from(KNOWN[name]))
            else:
                value = draw(st.one_of(st.sampled_from(KNOWN.get(name, ["x"])), segments))
            part = quote(value, safe="") if draw(st.booleans()) or "/" in value or "?" in value or "#" in value \
                else quote(value, safe="[]\"{}'=&+,;:@!$*()")
        parts.append(part)
    return "/".join(parts)


@st.composite
def requests(draw: st.DrawFn, *, known: bool) -> dict[str, Any]:
    template, allowed = draw(st.sampled_from(ROUTES))
    headers: dict[str, str] = {}
    kind = draw(st.sampled_from(CONTENT_TYPES))
    if kind is not None:
        headers["Content-Type"] = kind
    accept = draw(st.sampled_from(ACCEPTS))
    if accept is not None:
        headers["Accept"] = accept
    if known:  # the right method, as the owner or the admin, mostly with a JSON or text body
        method = draw(st.sampled_from(allowed))
        who = draw(st.sampled_from(["alice", "alice", "admin", "bob", "guest"]))
        if draw(st.integers(0, 9)) < 8:
            headers["Content-Type"] = draw(st.sampled_from(["application/json", "text/plain;charset=utf-8"]))
    else:
        method = draw(st.sampled_from(allowed)) if draw(st.integers(0, 9)) < 8 else draw(st.sampled_from(METHODS))
        who = draw(st.sampled_from(["guest", "alice", "bob", "admin", "garbage", "empty"]))
    return {"method": method, "path": _path(template, draw, known=known),
            "params": draw(queries), "content": draw(bodies), "headers": headers,
            "who": who}


@pytest.fixture(scope="module")
def callers(http: httpx.Client, admin: dict[str, str], users: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Who calls, and the resources the known ids name (alice's)."""
    alice = users["alice"]
    for doc in ({"id": "FZ-Dev", "sensors": [{"id": "S1"}], "actuators": [{"id": "A1"}]},
                {"id": "FZ-Priv", "visibility": "private", "sensors": [{"id": "S1"}], "actuators": [{"id": "A1"}]}):
        assert http.post("/devices", headers=alice, json=doc).status_code == 204
    assert http.post("/devices/FZ-Dev/sensors/S1/value", headers=alice, json={"value": 1}).status_code == 204
    assert http.post("/gateways", headers=alice, json={"id": "FZ-GW", "name": "g"}).status_code in (200, 204)
    return {"guest": {}, "alice": alice, "bob": users["bob"], "admin": admin,
            "garbage": {"Authorization": "Bearer garbage.token.x"}, "empty": {"Authorization": "Bearer"}}


def _restore(http: httpx.Client, callers: dict[str, dict[str, str]]) -> None:
    """The known resources back as they were (alice's), should an example have deleted them
    or given them away, so that the next examples reach past the existence checks."""
    admin, alice = callers["admin"], callers["alice"]
    for doc in ({"id": "FZ-Dev", "sensors": [{"id": "S1"}], "actuators": [{"id": "A1"}]},
                {"id": "FZ-Priv", "visibility": "private", "sensors": [{"id": "S1"}], "actuators": [{"id": "A1"}]}):
        got = http.get(f"/devices/{doc['id']}", headers=admin)
        if got.status_code == 404:
            assert http.post("/devices", headers=alice, json=doc).status_code == 204
            continue
        if got.json().get("owner") != "alice":
            assert http.put(f"/devices/{doc['id']}/owner", headers=admin, json="alice").status_code == 204
        for kind, member in (("sensors", "S1"), ("actuators", "A1")):
            if http.get(f"/devices/{doc['id']}/{kind}/{member}", headers=admin).status_code == 404:
                assert http.post(f"/devices/{doc['id']}/{kind}", headers=admin, json={"id": member}
                                 ).status_code == 204
    got = http.get("/gateways/FZ-GW", headers=admin)
    if got.status_code == 404:
        assert http.post("/gateways", headers=alice, json={"id": "FZ-GW", "name": "g"}).status_code in (200, 204)
    elif got.json().get("owner") != "alice":
        assert http.put("/gateways/FZ-GW/owner", headers=admin, json="alice").status_code == 204


def _check(http: httpx.Client, callers: dict[str, dict[str, str]], request: dict[str, Any]) -> None:
    headers = {**request["headers"], **callers[request["who"]]}
    if request["content"] is None:
        headers.pop("Content-Type", None)
    try:
        answer = http.request(request["method"], request["path"], params=request["params"],
                              content=request["content"], headers=headers, timeout=10)
    except httpx.RemoteProtocolError as exc:  # a dropped connection is no answer at all
        raise AssertionError(f"no answer to {request}: {exc}") from None
    vpn = request["method"] in ("GET", "HEAD") and request["path"].endswith("/vpn") and answer.status_code == 501
    shown = {**request, "content": (request["content"] or b"")[:200], "path": request["path"][:200]}
    assert answer.status_code < 500 or vpn, f"{answer.status_code} {answer.text[:300]!r} for {shown!r}"
    if answer.status_code >= 400 and request["method"] != "HEAD":
        assert answer.content, f"empty {answer.status_code} for {shown!r}"


@SETTINGS
@given(request=requests(known=False))
def test_any_route_never_500(http: httpx.Client, callers: dict[str, dict[str, str]], request: dict[str, Any]) -> None:
    """Random paths, methods, queries and bodies: never a 5xx, never an empty error."""
    _check(http, callers, request)


@settings(SETTINGS, max_examples=400)
@given(request=requests(known=True))
def test_known_resources_never_500(http: httpx.Client, callers: dict[str, dict[str, str]],
                                   request: dict[str, Any]) -> None:
    """The same on existing devices, sensors, actuators and gateways, so that bodies reach
    the code past the existence and permission checks."""
    _check(http, callers, request)
    if request["method"] in ("DELETE", "PUT"):
        _restore(http, callers)


NASTY = [b"[" * 5000, b"{\"a\":" * 3000, b"NaN", b"[1e999]", b"-Infinity", b"\"\\ud800\"", b"\xff\xfe\x00",
         b"", b"null", b"{\"value\": NaN}", b"{\"id\": \"" + b"x" * 5000 + b"\"}"]


@pytest.mark.parametrize("body", NASTY, ids=range(len(NASTY)))
def test_nasty_bodies_on_every_route(http: httpx.Client, callers: dict[str, dict[str, str]], body: bytes) -> None:
    """Deterministic: bodies the parsers choke on (nested past the recursion limit, NaN,
    1e999, lone surrogates, not UTF-8), as JSON and as text, on every route as the owner."""
    for template, methods in ROUTES:
        path = template
        for name, values in KNOWN.items():
            path = path.replace("{" + name + "}", values[0])
        path = path.replace("{notif}", "a" * 24).replace("{project}", "x").replace("{social}", "x")
        path = path.replace("{user}", "x").replace("{x}", "x").replace("{y}", "y").replace("{z}", "z")
        path = path.replace("{w}", "w")
        for method in methods:
            for kind in ("application/json", "text/plain"):
                _check(http, callers, {"method": method, "path": path, "params": {}, "content": body,
                                       "headers": {"Content-Type": kind}, "who": "alice"})
        _restore(http, callers)


@pytest.fixture(scope="module")
def publisher(platform: Any, callers: dict[str, dict[str, str]]) -> Iterator[Subscriber]:
    """alice on MQTT (subscribed to nothing: relayed payloads need not be JSON)."""
    client = Subscriber(platform.mqtt, "", username="alice", password="alice-Pa55word")
    try:
        yield client
    finally:
        client.close()


@settings(SETTINGS, max_examples=100)
@given(topic=st.sampled_from(["devices/FZ-Dev/sensors/S1/value", "devices/FZ-Dev/actuators/A1/value",
                              "devices/FZ-Priv/sensors/S1/value", "devices/FZ-Dev/sensors/NOPE/value",
                              "devices/NOPE/sensors/S1/value", "other/topic"]),
       payload=st.one_of(bodies.filter(lambda b: b is not None), shaped.map(lambda v: json.dumps(v).encode())))
def test_mqtt_publish_always_acknowledged(http: httpx.Client, publisher: Subscriber, topic: str,
                                          payload: bytes) -> None:
    """§6: whatever a QoS 1 publish on a device topic carries, it is acknowledged (stored or
    dropped) and the connection goes on; the HTTP side still answers."""
    info = publisher.client.publish(topic, payload, qos=1)
    info.wait_for_publish(timeout=5)
    assert info.is_published() and publisher.client.is_connected()


def test_restore_known_resources(http: httpx.Client, callers: dict[str, dict[str, str]]) -> None:
    """After the fuzzing the platform still answers (no wedged lock, no dead broker)."""
    assert http.get("/devices", headers=callers["admin"], timeout=10).status_code == 200
    assert http.get("/notifications", timeout=10).status_code == 200
