"""request.describe: every route's actions, the resource read from path, query, headers
and NGSI payloads, and the promise that no input makes it raise."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from security.authz.request import (
    ADMIN,
    CREATE,
    DELETE,
    EVERY_PATH,
    MAX_TARGETS,
    NO_ENTITY,
    PROVISION,
    READ,
    REGISTER,
    SUBSCRIBE,
    UNSEEN,
    UPDATE,
    Target,
    describe,
)

from .strategies import bodies, header_sets, json_values, methods, ngsi_paths, queries

COOP = {"fiware-service": "coop", "fiware-servicepath": "/farm1"}


def body(value: Any) -> bytes:
    return orjson.dumps(value)


# -- the action table ----------------------------------------------------------------------

ACTION_TABLE = [
    # method, path, query, body, actions
    ("GET", "/v2/entities", "", b"", {READ}),
    ("POST", "/v2/entities", "", body({"id": "f1", "type": "Field"}), {CREATE}),
    ("POST", "/v2/entities", "options=upsert", body({"id": "f1", "type": "Field"}), {CREATE, UPDATE}),
    ("GET", "/v2/entities/f1", "", b"", {READ}),
    ("DELETE", "/v2/entities/f1", "", b"", {DELETE}),
    ("GET", "/v2/entities/f1/attrs", "", b"", {READ}),
    ("POST", "/v2/entities/f1/attrs", "", body({"a": {}}), {UPDATE}),
    ("POST", "/v2/entities/f1/attrs", "options=append", body({"a": {}}), {UPDATE}),
    ("PATCH", "/v2/entities/f1/attrs", "", body({"a": {}}), {UPDATE}),
    ("PUT", "/v2/entities/f1/attrs", "", body({"a": {}}), {UPDATE}),
    ("GET", "/v2/entities/f1/attrs/a", "", b"", {READ}),
    ("PUT", "/v2/entities/f1/attrs/a", "", body({"value": 1}), {UPDATE}),
    ("DELETE", "/v2/entities/f1/attrs/a", "", b"", {DELETE}),
    ("GET", "/v2/entities/f1/attrs/a/value", "", b"", {READ}),
    ("PUT", "/v2/entities/f1/attrs/a/value", "", b"3", {UPDATE}),
    ("GET", "/v2/types", "", b"", {READ}),
    ("GET", "/v2/types/Field", "", b"", {READ}),
    ("POST", "/v2/op/update", "", body({"actionType": "append", "entities": [{"id": "f1"}]}), {CREATE, UPDATE}),
    ("POST", "/v2/op/update", "", body({"actionType": "appendStrict", "entities": [{"id": "f1"}]}), {CREATE}),
    ("POST", "/v2/op/update", "", body({"actionType": "update", "entities": [{"id": "f1"}]}), {UPDATE}),
    ("POST", "/v2/op/update", "", body({"actionType": "replace", "entities": [{"id": "f1"}]}), {UPDATE}),
    ("POST", "/v2/op/update", "", body({"actionType": "delete", "entities": [{"id": "f1"}]}), {DELETE}),
    ("POST", "/v2/op/query", "", body({"entities": [{"idPattern": ".*"}]}), {READ}),
    ("POST", "/v2/op/notify", "", body({"subscriptionId": "s", "data": [{"id": "f1", "type": "Field"}]}), {CREATE, UPDATE}),
    ("GET", "/v2/subscriptions", "", b"", {SUBSCRIBE}),
    ("POST", "/v2/subscriptions", "", body({"subject": {"entities": [{"id": "f1"}]}}), {SUBSCRIBE}),
    ("GET", "/v2/subscriptions/abc", "", b"", {SUBSCRIBE}),
    ("PATCH", "/v2/subscriptions/abc", "", body({"throttling": 5}), {SUBSCRIBE}),
    ("DELETE", "/v2/subscriptions/abc", "", b"", {SUBSCRIBE}),
    ("GET", "/v2/registrations", "", b"", {REGISTER}),
    ("POST", "/v2/registrations", "", body({"dataProvided": {"entities": [{"id": "f1"}]}}), {REGISTER}),
    ("GET", "/v2/registrations/r1", "", b"", {REGISTER}),
    ("DELETE", "/v2/registrations/r1", "", b"", {REGISTER}),
    ("GET", "/iot/devices", "", b"", {PROVISION}),
    ("POST", "/iot/devices", "", body({"devices": [{"device_id": "d1", "entity_type": "Field"}]}), {PROVISION}),
    ("GET", "/iot/devices/d1", "", b"", {PROVISION}),
    ("PUT", "/iot/devices/d1", "", body({"entity_name": "f1"}), {PROVISION}),
    ("DELETE", "/iot/devices/d1", "", b"", {PROVISION}),
    ("GET", "/iot/services", "", b"", {PROVISION}),
    ("POST", "/iot/groups", "", body({"groups": [{"apikey": "k", "entity_type": "Field"}]}), {PROVISION}),
    ("PUT", "/iot/services", "resource=/iot/d&apikey=k", body({"entity_type": "Field"}), {PROVISION}),
    ("DELETE", "/iot/groups", "resource=/iot/d&apikey=k", b"", {PROVISION}),
    ("POST", "/iot/op/delete", "", body({"devices": [{"deviceId": "d1", "apikey": "k"}]}), {PROVISION}),
    ("POST", "/notify", "", body({"subscriptionId": "s", "data": [{"id": "f1", "type": "Field"}]}), {CREATE, UPDATE}),
    ("GET", "/admin/log", "", b"", {ADMIN}),
    ("PUT", "/admin/log", "level=DEBUG", b"", {ADMIN}),
    ("GET", "/statistics", "", b"", {ADMIN}),
]


@pytest.mark.parametrize(("method", "path", "query", "payload", "actions"), ACTION_TABLE)
def test_every_route_maps_to_its_actions(method: str, path: str, query: str, payload: bytes, actions: set[str]) -> None:
    headers = {"fiware-service": "coop", "fiware-servicepath": "/farm1"}
    resource = describe(method, path, query, headers, payload)
    assert resource.actions == frozenset(actions)
    assert resource.unknown == ()
    assert not resource.public


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/version"), ("GET", "/v2"), ("GET", "/iot/about"), ("OPTIONS", "/v2/entities")]
)
def test_version_entry_points_and_preflights_are_public(method: str, path: str) -> None:
    resource = describe(method, path)
    assert resource.public and resource.actions == {READ}


@pytest.mark.parametrize(
    ("method", "path", "fragment"),
    [
        ("PUT", "/v2/entities", "PUT is not served on /v2/entities"),
        ("POST", "/v2/entities/f1", "POST is not served"),
        ("PATCH", "/v2/registrations/r1", "PATCH is not served"),
        ("GET", "/v2/op/update", "GET is not served"),
        ("GET", "/v2/nothing", "/v2/nothing is not a route"),
        ("GET", "/v2/entities/f1/other", "is not a route"),
        ("GET", "/elsewhere", "/elsewhere is not a route"),
        ("GET", "/v2/entities//attrs", "empty entity id"),
        ("POST", "/version", "POST is not served on /version"),
        ("POST", "/iot/d", "south-port measure"),
    ],
)
def test_unserved_methods_and_unknown_routes_are_unknown(method: str, path: str, fragment: str) -> None:
    resource = describe(method, path, "", COOP, b"")
    assert any(fragment in u for u in resource.unknown), resource.unknown


def test_a_trailing_slash_is_ignored_as_by_the_broker() -> None:
    assert describe("GET", "/v2/entities/").route == "GET /v2/entities"


# -- tenant and service paths ------------------------------------------------------------


def test_tenant_is_lowercased_and_ignored_without_multiservice() -> None:
    assert describe("GET", "/v2/entities", "", {"fiware-service": "Coop"}).tenant == "coop"
    assert describe("GET", "/v2/entities", "", {"fiware-service": "Coop"}, multiservice=False).tenant == ""
    assert describe("GET", "/v2/entities").tenant == ""


def test_a_bad_tenant_is_unknown() -> None:
    resource = describe("GET", "/v2/entities", "", {"fiware-service": "bad-name"})
    assert any("Fiware-Service" in u for u in resource.unknown)


@pytest.mark.parametrize(
    ("method", "path", "header", "scopes"),
    [
        ("GET", "/v2/entities", None, (EVERY_PATH,)),
        ("GET", "/v2/entities", "/farm1/#", (("/farm1", True),)),
        ("GET", "/v2/entities", "/farm1,/farm2/#", (("/farm1", False), ("/farm2", True))),
        ("POST", "/v2/entities", None, (("/", False),)),
        ("POST", "/v2/entities", "/farm1", (("/farm1", False),)),
        ("PATCH", "/v2/entities/f1/attrs", "/farm1", (("/farm1", False),)),
        ("DELETE", "/v2/entities/f1", "/farm1", (("/farm1", False),)),
        ("POST", "/v2/subscriptions", "/farm1/#", (("/farm1", True),)),
        ("POST", "/v2/subscriptions", None, (EVERY_PATH,)),
        ("GET", "/iot/devices", "/*", (EVERY_PATH,)),
        ("GET", "/iot/devices", "/farm1", (("/farm1", False),)),
    ],
)
def test_service_path_scopes(method: str, path: str, header: str | None, scopes: tuple[Any, ...]) -> None:
    headers = {"fiware-service": "coop"} | ({"fiware-servicepath": header} if header else {})
    payload = body({"id": "f1", "type": "Field"}) if method == "POST" else b'{"a": {}}'
    if path == "/v2/subscriptions":
        payload = body({"subject": {"entities": [{"id": "f1"}]}})
    assert describe(method, path, "", headers, payload).scopes == scopes


@pytest.mark.parametrize(
    ("method", "path", "header", "fragment"),
    [
        ("PATCH", "/v2/entities/f1/attrs", "/farm1/#", "wildcard"),
        ("DELETE", "/v2/entities/f1", "/a,/b", "more than one"),
        ("GET", "/v2/entities", "farm1", "absolute"),
        ("POST", "/v2/subscriptions", "/a,/b", "max one service-path"),
        ("GET", "/iot/devices", None, "requires Fiware-ServicePath"),
    ],
)
def test_bad_service_paths_are_unknown(method: str, path: str, header: str | None, fragment: str) -> None:
    headers = {"fiware-service": "coop"} | ({"fiware-servicepath": header} if header else {})
    resource = describe(method, path, "", headers, b'{"a": {}}')
    assert any(fragment in u for u in resource.unknown), resource.unknown


def test_batch_updates_reach_the_read_scopes_and_appends_the_write_path() -> None:
    headers = {"fiware-service": "coop", "fiware-servicepath": "/farm1/#"}
    update = describe("POST", "/v2/op/update", "", headers, body({"actionType": "update", "entities": [{"id": "f1"}]}))
    assert update.scopes == (("/farm1", True),) and not update.unknown
    append = describe("POST", "/v2/op/update", "", headers, body({"actionType": "append", "entities": [{"id": "f1"}]}))
    assert any("wildcard" in u for u in append.unknown)


# -- targets --------------------------------------------------------------------------------


def test_list_query_expands_ids_by_types_with_asked_attrs_and_filters() -> None:
    resource = describe("GET", "/v2/entities", "id=f1,f2&type=Field,Sensor&attrs=temperature&q=owner==x;humidity>2&orderBy=!moisture")
    assert set(resource.targets) == {
        Target(id=i, type=t, attrs=frozenset({"temperature"})) for i in ("f1", "f2") for t in ("Field", "Sensor")
    }
    assert resource.filter_attrs == frozenset({"owner", "humidity", "moisture"})


def test_list_patterns_and_wildcards() -> None:
    resource = describe("GET", "/v2/entities", "idPattern=^f&typePattern=F.*&attrs=*")
    assert resource.targets == (Target(id_pattern="^f", type_pattern="F.*"),)
    assert describe("GET", "/v2/entities", "idPattern=.*").targets == (Target(),)


def test_geographical_filters_may_look_at_any_attribute() -> None:
    resource = describe("GET", "/v2/entities", "georel=near;maxDistance:10&geometry=point&coords=1,2")
    assert resource.filter_attrs is None


def test_a_bad_q_is_unknown() -> None:
    assert describe("GET", "/v2/entities", "q=").unknown


def test_conflicting_repeated_parameters_are_unknown_and_equal_ones_are_not() -> None:
    assert describe("GET", "/v2/entities", "type=Field&type=Secret").unknown
    assert not describe("GET", "/v2/entities", "type=Field&type=Field").unknown


def test_create_without_type_creates_a_thing_but_an_upsert_may_update_any_type() -> None:
    created = describe("POST", "/v2/entities", "", COOP, body({"id": "f1", "temperature": {"value": 1}}))
    assert created.targets == (Target(id="f1", type="Thing", attrs=frozenset({"temperature"})),)
    upsert = describe("POST", "/v2/entities", "options=upsert", COOP, body({"id": "f1"}))
    assert upsert.targets == (Target(id="f1", attrs=frozenset()),)


def test_entity_routes_name_id_type_and_attributes() -> None:
    assert describe("PATCH", "/v2/entities/f1/attrs", "type=Field", COOP, body({"a": {}, "b": {}})).targets == (
        Target(id="f1", type="Field", attrs=frozenset({"a", "b"})),
    )
    assert describe("PUT", "/v2/entities/f1/attrs", "", COOP, body({"a": {}})).targets == (Target(id="f1"),)
    assert describe("DELETE", "/v2/entities/f1", "type=Field", COOP).targets == (Target(id="f1", type="Field"),)
    assert describe("GET", "/v2/entities/f1/attrs/a/value").targets == (Target(id="f1", attrs=frozenset({"a"})),)
    assert describe("GET", "/v2/entities/f1", "attrs=a,b").targets == (Target(id="f1", attrs=frozenset({"a", "b"})),)


def test_batch_entities_each_become_a_target() -> None:
    payload = {"actionType": "delete", "entities": [{"id": "f1", "type": "Field"}, {"id": "f2", "type": "Field", "owner": {}}]}
    resource = describe("POST", "/v2/op/update", "", COOP, body(payload))
    assert resource.targets == (Target(id="f1", type="Field"), Target(id="f2", type="Field", attrs=frozenset({"owner"})))
    replace = describe("POST", "/v2/op/update", "", COOP, body({"actionType": "replace", "entities": [{"id": "f1", "a": {}}]}))
    assert replace.targets == (Target(id="f1"),)
    strict = describe("POST", "/v2/op/update", "", COOP, body({"actionType": "appendStrict", "entities": [{"id": "f1"}]}))
    assert strict.targets == (Target(id="f1", type="Thing", attrs=frozenset()),)


@pytest.mark.parametrize(("v1", "v2"), [("APPEND", "append"), ("APPEND_STRICT", "appendStrict"),
                                        ("UPDATE", "update"), ("DELETE", "delete"), ("REPLACE", "replace")])
def test_ngsiv1_action_types_are_read_as_their_counterparts(v1: str, v2: str) -> None:
    """Orion's deprecated.md: ``/v2/op/update`` still takes NGSIv1's upper-case action types,
    each as its lower-case counterpart (the broker does: broker/routes/batch.py)."""
    entities = [{"id": "f1", "type": "Field", "a": {}}]
    old = describe("POST", "/v2/op/update", "", COOP, body({"actionType": v1, "entities": entities}))
    new = describe("POST", "/v2/op/update", "", COOP, body({"actionType": v2, "entities": entities}))
    assert not old.unknown and (old.actions, old.targets, old.scopes) == (new.actions, new.targets, new.scopes)
    assert describe("POST", "/v2/op/update", "", COOP, body({"actionType": "Append", "entities": entities})).unknown


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"entities": [{"id": "f1"}]}, "actionType"),
        ({"actionType": "update"}, "no entities"),
        ({"actionType": "update", "entities": []}, "no entities"),
        ({"actionType": "update", "entities": ["f1"]}, "not a JSON object"),
        ({"actionType": "update", "entities": [{"idPattern": "^f"}]}, "no id"),
        ([1, 2], "not a JSON object"),
    ],
)
def test_bad_batches_are_unknown(payload: Any, fragment: str) -> None:
    resource = describe("POST", "/v2/op/update", "", COOP, body(payload))
    assert any(fragment in u for u in resource.unknown), resource.unknown


def test_op_query_selectors_attrs_and_expression() -> None:
    payload = {
        "entities": [{"idPattern": "^f", "type": "Field"}, {"id": "s1", "typePattern": "S.*"}],
        "attrs": ["temperature"],
        "expression": {"q": "owner==bob", "mq": "humidity.accuracy>1"},
    }
    resource = describe("POST", "/v2/op/query", "", COOP, body(payload))
    assert resource.targets == (
        Target(id_pattern="^f", type="Field", attrs=frozenset({"temperature"})),
        Target(id="s1", type_pattern="S.*", attrs=frozenset({"temperature"})),
    )
    assert resource.filter_attrs == frozenset({"owner", "humidity"})
    legacy = describe("POST", "/v2/op/query", "", COOP, body({"attributes": ["owner"]}))
    assert legacy.targets == (Target(attrs=frozenset({"owner"})),) and legacy.filter_attrs == frozenset({"owner"})


def test_subscription_subject_notification_and_condition() -> None:
    payload = {
        "subject": {
            "entities": [{"idPattern": ".*", "type": "Field"}],
            "condition": {"attrs": ["moisture"], "expression": {"q": "temperature>30"}},
        },
        "notification": {"http": {"url": "http://x"}, "attrs": ["temperature", "moisture"]},
    }
    resource = describe("POST", "/v2/subscriptions", "", COOP, body(payload))
    assert resource.targets == (Target(type="Field", attrs=frozenset({"temperature", "moisture"})),)
    assert resource.filter_attrs == frozenset({"moisture", "temperature"})
    every = describe("POST", "/v2/subscriptions", "", COOP, body({"subject": {"entities": [{"id": "f1"}]}, "notification": {"exceptAttrs": ["owner"]}}))
    assert every.targets == (Target(id="f1"),)


def test_a_subscription_patch_without_entities_names_no_entity() -> None:
    resource = describe("PATCH", "/v2/subscriptions/abc", "", COOP, body({"notification": {"attrs": ["owner"]}}))
    assert resource.targets == (Target(entityless=True, attrs=frozenset({"owner"})),)
    assert describe("DELETE", "/v2/subscriptions/abc", "", COOP).targets == (NO_ENTITY,)


def test_registration_data_provided() -> None:
    payload = {"dataProvided": {"entities": [{"id": "f1", "type": "Field"}], "attrs": ["temperature"]}, "provider": {}}
    resource = describe("POST", "/v2/registrations", "", COOP, body(payload))
    assert resource.targets == (Target(id="f1", type="Field", attrs=frozenset({"temperature"})),)
    every = describe("POST", "/v2/registrations", "", COOP, body({"dataProvided": {"entities": [{"id": "f1"}]}}))
    assert every.targets == (Target(id="f1"),)


def test_notifications_received_are_appends_of_their_data() -> None:
    payload = {"subscriptionId": "s", "data": [{"id": "f1", "type": "Field", "temperature": {"value": 3}}]}
    resource = describe("POST", "/v2/op/notify", "", COOP, body(payload))
    assert resource.targets == (Target(id="f1", type="Field", attrs=frozenset({"temperature"})),)


def test_provisioning_names_entities_and_mapped_attributes() -> None:
    payload = {"devices": [{"device_id": "d1", "entity_name": "f1", "entity_type": "Field",
                            "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}],
                            "static_attributes": [{"name": "owner", "type": "Text", "value": "x"}]}]}
    resource = describe("POST", "/iot/devices", "", COOP, body(payload))
    assert resource.targets == (Target(id="f1", type="Field", attrs=frozenset({"temperature", "owner"})),)
    group = describe("POST", "/iot/services", "", COOP, body({"services": [{"apikey": "k", "entity_type": "Field"}]}))
    assert group.targets == (Target(type="Field", attrs=frozenset()),)


def test_a_missing_agent_tenant_is_unknown() -> None:
    assert describe("GET", "/iot/devices", "", {"fiware-servicepath": "/"}).unknown


def test_too_many_targets_are_unknown() -> None:
    ids = ",".join(f"e{i}" for i in range(200))
    types = ",".join(f"T{i}" for i in range(MAX_TARGETS // 200 + 1))
    assert describe("GET", "/v2/entities", f"id={ids}&type={types}").unknown


def test_unseen_bodies_require_every_action_a_payload_could_choose() -> None:
    assert describe("POST", "/v2/op/update", "", COOP, UNSEEN).actions == {CREATE, UPDATE, DELETE}
    assert describe("POST", "/v2/entities", "", COOP, UNSEEN).actions == {CREATE, UPDATE}
    assert describe("PATCH", "/v2/entities/f1/attrs", "", COOP, UNSEEN).targets == (Target(id="f1"),)
    assert not describe("POST", "/v2/op/update", "", COOP, UNSEEN).unknown


@pytest.mark.parametrize("payload", [b"{", b"\xff\xfe", b"[1,", "not json"])
def test_bodies_that_are_not_json_are_unknown(payload: bytes | str) -> None:
    assert "the body is not valid JSON" in describe("POST", "/v2/entities", "", COOP, payload).unknown


def test_parsed_json_bodies_are_taken_as_they_are() -> None:
    resource = describe("POST", "/v2/entities", "", COOP, {"id": "f1", "type": "Field", "a": {}})
    assert resource.targets == (Target(id="f1", type="Field", attrs=frozenset({"a"})),)


# -- never raises ---------------------------------------------------------------------------


@settings(max_examples=600)
@given(methods, ngsi_paths, queries, header_sets, bodies)
def test_no_request_makes_describe_raise(method: str, path: str, query: Any, headers: dict[str, str], payload: Any) -> None:
    resource = describe(method, path, query, headers, payload)
    assert resource.actions
    assert resource.targets and resource.scopes
    assert not any("could not be analysed" in u for u in resource.unknown), resource.unknown


@settings(max_examples=300)
@given(st.text(max_size=30), st.text(max_size=40), st.text(max_size=40), st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=3), json_values)
def test_arbitrary_text_never_raises(method: str, path: str, query: str, headers: dict[str, str], payload: Any) -> None:
    resource = describe(method, path, query, headers, payload)
    assert not any("could not be analysed" in u for u in resource.unknown), resource.unknown


def test_the_safety_net_turns_a_bug_into_an_unknown_request() -> None:
    class Hostile(dict[str, str]):  # headers whose lookups fail
        def get(self, *args: Any) -> Any:
            raise RuntimeError("boom")

    resource = describe("GET", "/v2/entities", "", Hostile({"fiware-service": "coop"}))
    assert resource.unknown and "could not be analysed" in resource.unknown[0]
