"""Subscriptions: payload parsing (Orion's texts), PATCH merging, rendering, the registry.

The property tests throw random JSON (and random changes of a valid payload) at the
parser: whatever comes in, it answers with a subscription or an NGSIError, never with
another exception (which the broker would turn into a 500).
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.store.memory import MemoryStore
from broker.subscriptions.model import (
    apply_update,
    check_sub_id,
    effective_status,
    parse_subscription,
    parse_url,
    render_subscription,
    valid_hostname,
)
from broker.subscriptions.registry import SubscriptionRegistry, new_sub_id
from ngsi.errors import BadRequest, NGSIError, NotFound

NOW = 2_000_000_000.0  # 2033


def valid() -> dict[str, Any]:
    return {
        "description": "A subscription",
        "subject": {
            "entities": [{"idPattern": ".*", "type": "Room"}],
            "condition": {
                "attrs": ["temperature"],
                "expression": {"q": "temperature>40", "geometry": "point", "coords": "-40.4,-3.5",
                               "georel": "near;minDistance:5000"},
            },
        },
        "notification": {"http": {"url": "http://localhost:1234"}, "attrs": ["temperature", "humidity"]},
        "throttling": 5,
        "expires": "2050-04-05T14:00:00.00Z",
    }


def with_id(sub: dict[str, Any]) -> dict[str, Any]:
    return {"id": "5" * 24, **sub, "_servicePath": "/#", "_tenant": ""}


# --------------------------------------------------------------------------- happy paths


def test_defaults_and_rendering_like_orion() -> None:
    """2280 custom_url_validity_check, step 04: the defaults Orion fills in."""
    body = {"subject": {"entities": [{"id": "E1"}], "condition": {"attrs": []}},
            "notification": {"httpCustom": {"method": "PUT", "url": "${abc}"}}}
    sub = with_id(parse_subscription(body))
    assert render_subscription(sub, NOW) == {
        "id": "5" * 24,
        "subject": {"entities": [{"id": "E1"}], "condition": {"attrs": [], "notifyOnMetadataChange": True}},
        "notification": {"attrs": [], "attrsFormat": "normalized", "httpCustom": {"url": "${abc}", "method": "PUT"},
                         "onlyChangedAttrs": False, "covered": False},
        "status": "active",
    }


def test_full_payload_round_trip() -> None:
    sub = with_id(parse_subscription(valid()))
    out = render_subscription(sub, NOW)
    assert list(out) == ["id", "description", "subject", "notification", "expires", "status", "throttling"]
    assert out["expires"] == "2050-04-05T14:00:00.000Z"
    assert out["throttling"] == 5
    assert out["subject"]["condition"]["expression"] == valid()["subject"]["condition"]["expression"]
    assert "_servicePath" not in out and "_tenant" not in out


def test_expired_overrides_any_status() -> None:
    """1328 pause_subscriptions: an expired inactive subscription shows "expired"."""
    body = valid() | {"expires": "1991-04-05T14:00:00.00Z", "status": "inactive"}
    sub = with_id(parse_subscription(body))
    assert effective_status(sub, NOW) == "expired"
    assert render_subscription(sub, NOW)["status"] == "expired"


def test_expires_keeps_whole_seconds_and_time_zones() -> None:
    """2303 step 04: +01.00 is a time zone; Orion keeps whole seconds."""
    sub = parse_subscription(valid() | {"expires": "2016-04-05T14:10:00.999+01.00"})
    assert render_subscription(with_id(sub), NOW)["expires"] == "2016-04-05T13:10:00.000Z"


def test_counters_render_only_when_set() -> None:
    sub = with_id(parse_subscription(valid()))
    sub["notification"].update(timesSent=2, lastNotification=NOW, lastFailure=NOW - 10,
                               lastFailureReason="Could not connect to server", failsCounter=1)
    out = render_subscription(sub, NOW)["notification"]
    assert out["timesSent"] == 2 and out["failsCounter"] == 1
    assert out["lastNotification"].endswith(".000Z")
    assert "lastSuccess" not in out and "lastSuccessCode" not in out


def test_custom_payloads() -> None:
    """3272 null_payload_get: "" is no payload, null is kept; 4085: ngsi attrs get default types."""
    def custom(extra: dict[str, Any]) -> dict[str, Any]:
        body = valid()
        body["notification"] = {"httpCustom": {"url": "http://localhost:1234", **extra}}
        return render_subscription(with_id(parse_subscription(body)), NOW)["notification"]["httpCustom"]

    assert "payload" not in custom({"payload": ""})
    assert custom({"payload": None})["payload"] is None
    assert custom({"json": [1, 2]})["json"] == [1, 2]
    ngsi = custom({"ngsi": {"id": "E1", "B": {"value": 1}, "E": {"value": [1, 2]}}})["ngsi"]
    assert ngsi == {"id": "E1", "B": {"type": "Number", "value": 1}, "E": {"type": "StructuredValue", "value": [1, 2]}}


def test_jexl_expression_sits_in_condition() -> None:
    body = valid()
    body["subject"]["condition"] = {"attrs": [], "jexlExpression": "c|parseFloat"}
    out = render_subscription(with_id(parse_subscription(body)), NOW)
    assert out["subject"]["condition"] == {"attrs": [], "jexlExpression": "c|parseFloat", "notifyOnMetadataChange": True}


# --------------------------------------------------------------------------- errors


def _set(path: str, value: Any) -> dict[str, Any]:
    body = valid()
    *parents, last = path.split(".")
    target = body
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return body


_DELETE = object()

ERRORS = [
    ("expires", True, "expires is not a string"),
    ("expires", "just a string", "expires has an invalid format"),
    ("expires", "2016-04-05T14:10:00.,00L", "expires has an invalid format"),
    ("expires", "2022-12-21T17:16:63.00Z", "expires has an invalid format"),
    ("expires", "1899-12-21T17:16:23.00Z", "expires has an invalid format"),
    ("status", 4, "status is not a string"),
    ("status", "foobar", "status is not valid: it has to be either active, inactive or oneshot"),
    ("subject", {}, "no subject entities specified"),
    ("subject.entities", [], "subject entities is empty"),
    ("subject.entities", [{"id": ""}], "/entities/ element id is empty"),
    ("subject.entities", [{"type": "T"}], "/entities/ vector item does not have /id/ nor /idPattern/"),
    ("subject.entities", [{"id": "ID", "type": "Olé"}], "forbidden characters in /entities/ vector item /type/"),
    ("subject.entities", [{"idPattern": "[.*"}], "Invalid regex for entity idPattern"),
    ("subject.condition.attrs", ["p", "p"], "duplicated item /p/ in array"),
    ("subject.condition.alterationTypes", ["entityFoo"], "unknown subscription alterationType: entityFoo"),
    ("subject.condition.notifyOnMetadataChange", "foo", "notifyOnMetadataChange is not a bool"),
    ("subject.condition.expression", {"q": "house<flat>"}, "forbidden characters in String Filter"),
    ("subject.condition.expression", {"q": "<speed"}, "empty left-hand-side in q-item"),
    ("subject.condition.expression", {"georel": "near;maxDistance:100"},
     "partial geo expression: geometry, georel and coords have to be provided together"),
    ("subject.condition.expression", {"georel": "near", "geometry": "xxx", "coords": "1,2"},
     "error parsing geo-query fields: error parsing geometry: Invalid selector in geometry specification"),
    ("notification", {}, "http, httpCustom, mqtt, mqttCustom, kafka or kafkaCustom is missing"),
    ("notification", {"http": {"url": "http://a"}, "httpCustom": {"url": "http://a"}},
     "only one of http, httpCustom, mqtt, mqttCustom, kafka or kafkaCustom is allowed"),
    ("notification.http", {"abc": "123"}, "url http notification is missing"),
    ("notification.http", {"url": "http://127.0.0.1:1234/()"}, "forbidden characters in http field /url/"),
    ("notification.http", {"url": "http://localhost:900000"}, "Invalid URL parsing notification url"),
    ("notification.http", {"url": "http://local_host/a"}, "Invalid URL parsing notification url"),
    ("notification.http", {"url": "//"}, "Invalid URL parsing notification url"),
    ("notification.http", {"url": "http://a", "timeout": -1},
     "timeout field must be an integer between 0 and 1800000"),
    ("notification.http", {"url": "http://a", "timeout": "x"}, "timeout is not an int"),
    ("notification.exceptAttrs", [], "http notification has attrs and exceptAttrs"),
    ("notification.attrs", ["t", "t"], "duplicated item /t/ in array"),
    ("notification.onlyChangedAttrs", "foo", "onlyChangedAttrs is not a bool"),
    ("notification.covered", 1, "covered is not a bool"),
    ("notification.maxFailsLimit", "foo", "maxFailsLimit is not an int"),
    ("notification.maxFailsLimit", 0, "maxFailsLimit must be greater than zero"),
]


@pytest.mark.parametrize(("path", "value", "description"), ERRORS)
def test_orion_error_texts(path: str, value: Any, description: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_subscription(_set(path, value))
    assert info.value.description == description


CUSTOM_ERRORS = [
    ({}, "url httpCustom notification is missing"),
    ({"url": "http://a", "method": "PUTTY"}, "unknown method httpCustom notification"),
    ({"url": ""}, "invalid custom /url/"),
    ({"url": "abc"}, "invalid custom /url/"),
    ({"url": "http://a/()"}, "forbidden characters in custom /url/"),
    ({"url": "http://a", "payload": "{ \"a1\": \"()\" }"}, "forbidden characters in custom /payload/"),
    ({"url": "http://a", "qs": {"id": "()"}}, "forbidden characters in custom notification httpCustom qs"),
    ({"url": "http://a", "headers": {"id": "()"}}, "forbidden characters in custom notification httpCustom headers"),
    ({"url": "http://a", "json": {}, "payload": "x"},
     "only one of payload, json or ngsi fields accepted at the same time in httpCustom, mqttCustom or kafkaCustom"),
    ({"url": "http://a", "json": "s"}, "json fields in httpCustom, mqttCustom or kafkaCustom must be object or array"),
    ({"url": "http://a", "ngsi": {"A": {"value": 1, "metadata": {"evalPriority": {"value": 0}}}}},
     "evalPriority metadata minimum priority is 1"),
]


@pytest.mark.parametrize(("custom", "description"), CUSTOM_ERRORS)
def test_custom_notification_errors(custom: dict[str, Any], description: str) -> None:
    body = valid()
    body["notification"] = {"httpCustom": custom}
    with pytest.raises(BadRequest) as info:
        parse_subscription(body)
    assert info.value.description == description


def test_first_error_wins_in_orion_order() -> None:
    """2106: a bad q is reported before a bad expires; 1964: subject before notification."""
    body = _set("subject.condition.expression", {"q": "<speed"}) | {"expires": "205604-05T14:00:00.00Z"}
    with pytest.raises(BadRequest, match="empty left-hand-side"):
        parse_subscription(body)
    body = _set("subject.entities", [{"id": "ID", "type": "Ol="}]) | {"notification": {"callback": "x"}}
    with pytest.raises(BadRequest, match="/type/"):
        parse_subscription(body)


def test_patch_errors_and_empty_payloads() -> None:
    with pytest.raises(BadRequest, match="no subject entities specified"):
        parse_subscription({"subject": {}}, update=True)
    with pytest.raises(BadRequest):
        parse_subscription({}, update=True)
    with pytest.raises(NGSIError):
        parse_subscription([1], update=True)


def test_sub_ids() -> None:
    with pytest.raises(BadRequest, match="bad length - 24 chars expected"):
        check_sub_id("")
    check_sub_id(new_sub_id())
    ids = [new_sub_id() for _ in range(50)]
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids) and len(set(ids)) == 50


def test_urls() -> None:
    assert parse_url("http://localhost:1234/notify", ("http", "https")) == ("http", "localhost", 1234, "/notify")
    assert parse_url("https://[::1]:8443", ("http", "https")) == ("https", "[::1]", 8443, "/")
    assert parse_url("http:///a", ("http", "https")) is None
    assert parse_url("http://localhost:dsfsdf", ("http", "https")) is None
    assert parse_url("ftp://host", ("http", "https")) is None
    assert valid_hostname("a-b.example.com") and valid_hostname("10.0.0.1")
    for bad in (".local.host", "local.host.", "local..host", "-local.host", "local.-host", "local.host-", "a" * 64):
        assert not valid_hostname(bad)


# --------------------------------------------------------------------------- PATCH


def test_patch_replaces_parts_and_keeps_counters() -> None:
    stored = with_id(parse_subscription(valid() | {"notification": {"http": {"url": "http://a"},
                                                                      "attrsFormat": "keyValues"}}))
    stored["notification"]["timesSent"] = 3
    patch = parse_subscription({"notification": {"http": {"url": "http://b"}}, "expires": ""}, update=True)
    merged = apply_update(stored, patch)
    assert merged["notification"]["http"] == {"url": "http://b"}
    assert merged["notification"]["attrsFormat"] == "normalized"  # 2163: reset with the notification
    assert merged["notification"]["timesSent"] == 3
    assert "expires" not in merged  # 1949: "" makes it permanent again
    assert stored["notification"]["http"] == {"url": "http://a"}  # the stored one is untouched
    throttled = apply_update(merged, parse_subscription({"throttling": 0}, update=True))
    assert "throttling" not in render_subscription(throttled, NOW)  # 2030


# --------------------------------------------------------------------------- registry


def test_registry_crud_counters_and_persistence() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        registry = SubscriptionRegistry(store)
        await registry.load()
        sub = await registry.create("t", "/a", parse_subscription(valid() | {"notification": {
            "http": {"url": "http://a"}, "maxFailsLimit": 2}}))
        other = await registry.create("t", "/#", parse_subscription(valid()))
        assert [s["id"] for s in registry.for_tenant("t")] == [sub["id"], other["id"]]
        assert registry.for_tenant("u") == []
        assert registry.select("t", "/a") == [sub]
        with pytest.raises(NotFound):
            registry.find("t", sub["id"], "/b")
        registry.record_sent("t", sub["id"], NOW + 0.7)
        registry.record_failure("t", sub["id"], NOW, "Could not connect to server")
        registry.record_sent("t", sub["id"], NOW)
        registry.record_failure("t", sub["id"], NOW, "Could not connect to server")
        assert registry.get("t", sub["id"])["status"] == "active"
        registry.record_failure("t", sub["id"], NOW, "Could not connect to server")
        live = registry.get("t", sub["id"])
        assert live["status"] == "inactive" and live["notification"]["failsCounter"] == 3
        assert live["notification"]["timesSent"] == 2 and live["notification"]["lastNotification"] == NOW
        registry.record_success("t", other["id"], NOW, 200)
        assert "failsCounter" not in registry.get("t", other["id"])["notification"]
        await registry.update("t", sub["id"], parse_subscription({"status": "active"}, update=True), "/b")
        assert registry.get("t", sub["id"])["notification"]["timesSent"] == 2
        assert registry.get("t", sub["id"])["_servicePath"] == "/b"
        await registry.close()  # flushes the counters
        reloaded = SubscriptionRegistry(store)
        await reloaded.load()
        assert reloaded.get("t", sub["id"]) == registry.get("t", sub["id"])
        assert reloaded.get("t", other["id"])["notification"]["lastSuccessCode"] == 200
        await reloaded.delete("t", other["id"])
        with pytest.raises(NotFound):
            await reloaded.delete("t", other["id"])
        assert [doc["id"] for _, doc in await store.load_docs("subscription")] == [sub["id"]]

    asyncio.run(scenario())


# --------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)
keys = st.sampled_from([
    "description", "subject", "entities", "condition", "attrs", "expression", "q", "mq", "georel", "geometry",
    "coords", "alterationTypes", "notifyOnMetadataChange", "notification", "http", "httpCustom", "mqtt",
    "mqttCustom", "kafka", "url", "method", "headers", "qs", "payload", "json", "ngsi", "timeout", "exceptAttrs",
    "attrsFormat", "metadata", "onlyChangedAttrs", "covered", "maxFailsLimit", "expires", "status", "throttling",
    "id", "idPattern", "type", "typePattern", "jexlExpression", "topic", "qos",
])
shaped = st.recursive(
    json_values,
    lambda children: st.dictionaries(keys, children, max_size=5) | st.lists(children, max_size=3),
    max_leaves=30,
)


def _parse_and_render(body: Any, update: bool) -> None:
    try:
        sub = parse_subscription(body, update=update)
    except NGSIError:
        return
    if not update:
        out = render_subscription(with_id(sub), NOW)
        orjson.dumps(out)  # storable and renderable


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=shaped, update=st.booleans())
def test_random_json_only_raises_ngsi_errors(body: Any, update: bool) -> None:
    _parse_and_render(body, update)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, prefix + (index,))
    return found


_VALID_PATHS = _paths(valid())[1:]


@settings(max_examples=200, deadline=None)
@given(path=st.sampled_from(_VALID_PATHS), value=json_values, update=st.booleans())
def test_mutated_valid_payload_only_raises_ngsi_errors(path: tuple[Any, ...], value: Any, update: bool) -> None:
    body = copy.deepcopy(valid())
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    _parse_and_render(body, update)
