"""request.describe(service="history"): the history service's routes (security/authz/history.py)
as NGSI actions, read exactly as the history reads its parameters, and decided by the same
policies as the broker's requests. Pure: no service runs here."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from analytics.history.params import _names as history_names
from analytics.history.routes import ROUTES as HISTORY_ROUTES
from security.authz.decide import decide
from security.authz.history import ROUTES, names
from security.authz.policy import Subject, parse_policy_set
from security.authz.request import (
    ACTIONS,
    ADMIN,
    ANY_ENTITY,
    CREATE,
    DELETE,
    EVERY_PATH,
    NO_ENTITY,
    READ,
    UNSEEN,
    UPDATE,
    Target,
    describe,
)

from .strategies import header_sets, json_values, methods, queries

COOP = {"fiware-service": "Coop", "fiware-servicepath": "/farm1"}


def history(method: str, path: str, query: str = "", headers: dict[str, str] | None = None, body: Any = b"") -> Any:
    return describe(method, path, query, headers or {}, body, service="history")


def test_the_table_covers_every_route_the_history_serves() -> None:
    """Drift check: each of the history's routes maps to its action, and the table has no other."""
    served = []
    for route in HISTORY_ROUTES:
        assert isinstance(route, Route) and route.methods
        concrete = route.path.replace("{entityId}", "R1").replace("{entityType}", "Room").replace("{attrName}", "t")
        for method in sorted(route.methods - {"HEAD"}):
            resource = history(method, concrete, body=orjson.dumps({"data": [{"id": "R1", "type": "Room"}]}))
            assert not resource.unknown, (method, route.path, resource.unknown)
            if route.path in ("/version", "/health", "/v2", "/v2/"):
                assert resource.public
            elif route.path == "/v2/notify":
                assert resource.actions == {CREATE, UPDATE}
            elif route.path == "/v2/retention":  # the tenant's rules: anyone who reads may see them, admins set them
                assert resource.actions == ({ADMIN} if method == "PUT" else {READ}), method
                served.append((method, route.path))
            else:
                assert resource.actions == ({DELETE} if method == "DELETE" else {READ}), route.path
                served.append((method, route.path.replace("{entityId}", "{id}").replace("{entityType}", "{type}")
                               .replace("{attrName}", "{attr}")))
    assert sorted(served) == sorted((method, template) for method, template, _ in ROUTES)


def test_queries_name_ids_by_types_from_the_path_first_then_the_parameters() -> None:
    resource = history("GET", "/v2/entities/R1/attrs/t/value", "id=x&type=Room, Hall,&attrs=h", COOP)
    assert resource.actions == {READ} and resource.tenant == "coop" and resource.scopes == (("/farm1", False),)
    assert resource.targets == (Target(id="R1", type="Room", attrs=frozenset({"t"})),
                                Target(id="R1", type="Hall", attrs=frozenset({"t"})))
    listed = history("GET", "/v2/types/Room/value", "type=Other&id=a,b&attrs=t,,h ")
    assert listed.targets == (Target(id="a", type="Room", attrs=frozenset({"t", "h"})),
                              Target(id="b", type="Room", attrs=frozenset({"t", "h"})))
    assert history("GET", "/v2/attrs/t").targets == (Target(attrs=frozenset({"t"})),)
    assert history("GET", "/v2/last", "idPattern=^R").targets == (Target(id_pattern="^R"),)


def test_what_a_query_does_not_name_is_taken_at_its_widest() -> None:
    for path in ("/v2/entities", "/v2/attrs", "/v2/attrs/value", "/v2/last", "/v2/entities/R1"):
        resource = history("GET", path)
        assert resource.scopes == (EVERY_PATH,)  # no Fiware-ServicePath: every path
        (target,) = resource.targets
        assert target.type is None and target.attrs is None and target.id_pattern is None  # any type, every attribute
    assert history("GET", "/v2/entities", "idPattern=.*").targets == (ANY_ENTITY,)
    assert history("GET", "/v2/entities", "id=&attrs=").targets == (ANY_ENTITY,)
    assert history("GET", "/v2/last", "georel=near;maxDistance:5").filter_attrs is None  # a geo filter reads the location
    assert history("GET", "/v2/last", "aggrMethod=avg").filter_attrs == frozenset()


def test_parameters_are_split_as_the_history_splits_them() -> None:
    for raw in ("a,b", " a , b ", "a,,a", ",", "", " ", "a, ,b,"):
        assert names(raw) == history_names(raw)
    assert names(None) is None


def test_deletes_cover_what_the_same_headers_would_read() -> None:
    entity = history("DELETE", "/v2/entities/R1", "type=Room&fromDate=2020-01-01")
    assert entity.actions == {DELETE} and entity.scopes == (EVERY_PATH,)
    assert entity.targets == (Target(id="R1", type="Room"),)  # every attribute
    kind = history("DELETE", "/v2/types/Room", "attrs=t&dropTable=true", {"fiware-servicepath": "/farm1/#"})
    assert kind.scopes == (("/farm1", True),) and kind.targets == (Target(type="Room", attrs=frozenset({"t"})),)


def test_a_notification_appends_each_entity_under_its_paths() -> None:
    data = {"subscriptionId": "s", "data": [{"id": "R1", "type": "Room", "t": {"value": 1}}, {"id": "R2", "h": 2}]}
    one = history("POST", "/v2/notify", "", COOP, orjson.dumps(data))
    assert one.actions == {CREATE, UPDATE} and one.tenant == "coop" and one.scopes == (("/farm1", False),)
    assert one.targets == (Target(id="R1", type="Room", attrs=frozenset({"t"})), Target(id="R2", attrs=frozenset({"h"})))
    each = history("POST", "/v2/notify", "", {"fiware-servicepath": "/a, /b"}, orjson.dumps(data))
    assert each.scopes == (("/a", False), ("/b", False)) and not each.unknown
    assert history("POST", "/v2/notify", body=orjson.dumps(data)).scopes == (("/", False),)
    assert history("POST", "/v2/notify", body=UNSEEN).targets == (ANY_ENTITY,)
    assert history("POST", "/v2/notify", body=b'{"data": []}').targets == (NO_ENTITY,)  # stores nothing


@pytest.mark.parametrize(("headers", "body", "fragment"), [
    ({"fiware-servicepath": "/a,/b,/c"}, {"data": [{"id": "x"}, {"id": "y"}]}, "3 paths for 2 entities"),
    ({"fiware-servicepath": "/a/#"}, {"data": [{"id": "x"}]}, "not #"),
    ({"fiware-servicepath": "a"}, {"data": [{"id": "x"}]}, "Fiware-ServicePath"),
    ({"fiware-service": "bad name!"}, {"data": [{"id": "x"}]}, "Fiware-Service"),
    ({}, {"nodata": 1}, "no data vector"),
    ({}, {"data": [{"type": "T"}]}, "no id"),
])
def test_bad_notifications_are_unknown(headers: dict[str, str], body: Any, fragment: str) -> None:
    resource = history("POST", "/v2/notify", "", headers, orjson.dumps(body))
    assert any(fragment in u for u in resource.unknown), resource.unknown


def test_public_probes_head_and_unknown_routes_and_methods() -> None:
    for path in ("/version", "/health", "/v2", "/v2/"):
        assert history("GET", path).public and history("HEAD", path).public
    assert history("HEAD", "/v2/entities/R1").actions == {READ}
    for method, path in (("POST", "/v2/entities"), ("DELETE", "/v2/attrs/value"), ("GET", "/v2/notify"),
                         ("PUT", "/v2/types/Room"), ("DELETE", "/health")):
        resource = history(method, path)
        assert resource.unknown and "is not served" in resource.unknown[0] and resource.actions == set(ACTIONS)
    for path in ("/v2/op/update", "/v2/subscriptions", "/v2/entities//attrs/t", "/v2/types", "/notify"):
        resource = history("GET", path)
        assert resource.unknown and resource.actions == {ADMIN}, path


def test_the_broker_table_is_unchanged_for_the_same_paths() -> None:
    assert describe("POST", "/v2/notify", "", {}, b"{}").actions == {ADMIN}  # not a broker route
    assert describe("GET", "/v2/types/Room/value").unknown  # nor this
    assert not history("GET", "/v2/types/Room/value").unknown


POLICIES = parse_policy_set([
    {"id": "rooms", "subject": {"roles": ["reader"]}, "actions": ["read"], "tenant": "coop",
     "entities": {"types": ["Room"]}, "attrs": {"deny": ["owner"]}},
    {"id": "feed", "subject": {"roles": ["feed"]}, "actions": ["create", "update"], "tenant": "*"},
])


def test_policies_decide_history_requests_as_broker_ones() -> None:
    reader, feed = Subject(user_id="u", roles=frozenset({"reader"})), Subject(user_id="f", roles=frozenset({"feed"}))
    coop = {"fiware-service": "coop"}
    assert not decide(reader, history("GET", "/v2/entities/R1", "", coop), POLICIES).allow  # the type is not named
    shown = decide(reader, history("GET", "/v2/entities/R1", "type=Room", coop), POLICIES)
    assert shown.allow and shown.denied_attrs == {"owner"}  # the history applies the projection
    values = decide(reader, history("GET", "/v2/entities/R1/value", "type=Room&options=values", coop), POLICIES)
    assert values.allow and values.denied_attrs == {"owner"}  # projected on series: any shape can hold it
    assert not decide(reader, history("GET", "/v2/types/Room", "", {"fiware-service": "town"}), POLICIES).allow
    assert not decide(reader, history("GET", "/v2/types/Room", "georel=near;maxDistance:5", coop), POLICIES).allow
    assert not decide(reader, history("DELETE", "/v2/types/Room", "", coop), POLICIES).allow
    notified = orjson.dumps({"data": [{"id": "R1", "type": "Room", "t": {"value": 1}}]})
    assert decide(feed, history("POST", "/v2/notify", "", {"fiware-servicepath": "/a"}, notified), POLICIES).allow
    assert decide(feed, history("POST", "/v2/notify", "", coop, notified), POLICIES).allow
    assert not decide(feed, history("GET", "/v2/entities", "", coop), POLICIES).allow  # the feed cannot read
    assert not decide(reader, history("POST", "/v2/notify", "", coop, notified), POLICIES).allow


history_paths = st.one_of(
    st.sampled_from([
        "/v2/entities", "/v2/entities/R1", "/v2/entities/R1/value", "/v2/entities/R1/attrs/t",
        "/v2/entities/R1/attrs/t/value", "/v2/types/Room", "/v2/types/Room/attrs/t/value", "/v2/attrs",
        "/v2/attrs/value", "/v2/attrs/t", "/v2/last", "/v2/notify", "/version", "/health", "/v2", "/", "",
        "/v2/entities/", "/v2/types//attrs/t",
    ]),
    st.text(max_size=20),
)
history_bodies = st.one_of(
    st.just(b""), st.binary(max_size=30), json_values,
    st.fixed_dictionaries({"data": st.lists(st.dictionaries(st.sampled_from(["id", "type", "t"]), json_values),
                                            max_size=3) | json_values}).map(orjson.dumps),
)


@settings(max_examples=200)
@given(methods, history_paths, queries, header_sets, history_bodies)
def test_no_request_makes_the_history_table_raise(method: str, path: str, query: Any, headers: dict[str, str],
                                                  payload: Any) -> None:
    resource = history(method, path, query, headers, payload)
    assert resource.actions and resource.targets and resource.scopes
    assert not any("could not be analysed" in u for u in resource.unknown), resource.unknown
