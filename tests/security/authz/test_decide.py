"""decide(): a table of tenants x subjects x actions x resources, the farmer example end
to end from real NGSI requests, tenant bindings, projections, and the properties every
decision keeps (default deny, monotonic in the policies, nothing granted without a
granting policy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ngsi.context import Identity
from security.authz.decide import Decision, decide
from security.authz.policy import Policy, PolicySet, Subject, parse_policy_set
from security.authz.request import READ, RequestResource, Target, describe

from .strategies import (
    ATTRS,
    bindings,
    bodies,
    header_sets,
    member_subjects,
    methods,
    ngsi_paths,
    one_policy,
    policy_lists,
    queries,
    subjects,
    well_formed_requests,
)

POLICIES = parse_policy_set({
    "policies": [
        {"id": "farmers-fields", "subject": {"roles": ["farmer"]}, "actions": ["read", "update"], "tenant": "coop",
         "servicePaths": ["/farm1/#"], "entities": {"types": ["Field"]}, "attrs": {"deny": ["owner"]}},
        {"id": "farmers-subscribe", "subject": {"roles": ["farmer"]}, "actions": ["subscribe"], "tenant": "coop",
         "servicePaths": ["/farm1/#"], "entities": {"types": ["Field"]}, "attrs": {"deny": ["owner"]}},
        {"id": "viewers", "subject": {"roles": ["viewer"]}, "actions": ["read"], "tenant": "coop",
         "attrs": {"allow": ["temperature", "humidity"]}},
        {"id": "coop-admins", "subject": {"roles": ["admin"]}, "actions": ["*"], "tenant": "coop"},
        {"id": "installers", "subject": {"roles": ["installer"]}, "actions": ["provision"], "tenant": "coop",
         "servicePaths": ["/farm1/#"]},
        {"id": "sensor-writers", "subject": {"apps": ["gateway"]}, "actions": ["create", "update"], "tenant": "coop",
         "servicePaths": ["/farm1"], "entities": {"types": ["Sensor"], "idPattern": "^urn:Sensor:"}},
        {"id": "ops", "subject": {"users": ["ops"]}, "actions": ["admin"], "tenant": "*"},
        {"id": "other-readers", "subject": {"authenticated": True}, "actions": ["read"], "tenant": "other"},
    ],
    "tenantBindings": {"coop": "coop-org"},
})

SUBJECTS = {
    "farmer": Subject("u1", roles=frozenset({"farmer"}), organizations=frozenset({"coop-org"})),
    "outsider-farmer": Subject("u2", roles=frozenset({"farmer"}), organizations=frozenset({"x-org"})),
    "viewer": Subject("u3", roles=frozenset({"viewer"}), organizations=frozenset({"coop-org"})),
    "admin": Subject("u4", roles=frozenset({"admin"}), organizations=frozenset({"coop-org"})),
    "outsider-admin": Subject("u5", roles=frozenset({"admin"})),
    "installer": Subject("u6", roles=frozenset({"installer"}), organizations=frozenset({"coop-org"})),
    "gateway": Subject(app_id="gateway", organizations=frozenset({"coop-org"})),
    "ops": Subject("ops"),
    "anonymous": Subject(),
}


def coop(path: str = "/farm1") -> dict[str, str]:
    return {"fiware-service": "coop", "fiware-servicepath": path}


def j(value: Any) -> bytes:
    return orjson.dumps(value)


# subject, method, path, query, headers, body, allowed, reason fragment
MATRIX = [
    # the farmer: read and update Field under /farm1/#, never owner
    ("farmer", "GET", "/v2/entities", "type=Field", coop("/farm1/#"), b"", True, "hidden: owner"),
    ("farmer", "GET", "/v2/entities", "type=Field&attrs=moisture", coop("/farm1/#"), b"", True, "policy farmers-fields grants read"),
    ("farmer", "GET", "/v2/entities", "type=Field", coop("/farm2"), b"", False, "/farm2 is not within /farm1/#"),
    ("farmer", "GET", "/v2/entities", "type=Field", {"fiware-service": "coop"}, b"", False, "/# is not within /farm1/#"),
    ("farmer", "GET", "/v2/entities", "", coop(), b"", False, "does not name the type"),
    ("farmer", "GET", "/v2/entities", "type=Sensor", coop(), b"", False, "type Sensor is not among Field"),
    ("farmer", "GET", "/v2/entities/f1/attrs/owner", "type=Field", coop(), b"", False, "none of the attributes asked for may be read"),
    ("farmer", "GET", "/v2/entities", "type=Field&q=owner==bob", coop(), b"", False, "filter or condition looks at attribute(s) owner"),
    ("farmer", "GET", "/v2/entities", "type=Field&georel=near;maxDistance:5&geometry=point&coords=1,2", coop(), b"", False, "geographical filter"),
    ("farmer", "PATCH", "/v2/entities/f1/attrs", "type=Field", coop(), j({"moisture": {"value": 1}}), True, "farmers-fields"),
    ("farmer", "PATCH", "/v2/entities/f1/attrs", "type=Field", coop(), j({"owner": {"value": "me"}}), False, "owner, which may not be written"),
    ("farmer", "PATCH", "/v2/entities/f1/attrs", "", coop(), j({"moisture": {"value": 1}}), False, "does not name the type"),
    ("farmer", "PUT", "/v2/entities/f1/attrs", "type=Field", coop(), j({"moisture": {"value": 1}}), False, "may not be written"),
    ("farmer", "DELETE", "/v2/entities/f1", "type=Field", coop(), b"", False, "does not grant delete"),
    ("farmer", "POST", "/v2/entities", "", coop(), j({"id": "f9", "type": "Field"}), False, "does not grant create"),
    ("farmer", "GET", "/v2/entities", "type=Field", {"fiware-service": "other"}, b"", True, "other-readers"),
    ("farmer", "POST", "/v2/subscriptions", "", coop("/farm1/#"),
     j({"subject": {"entities": [{"idPattern": ".*", "type": "Field"}]}, "notification": {"http": {"url": "http://x"}}}), True, "farmers-subscribe"),
    ("farmer", "DELETE", "/v2/subscriptions/abc", "", coop("/farm1"), b"", True, "farmers-subscribe"),
    ("farmer", "GET", "/v2/subscriptions", "", {"fiware-service": "coop"}, b"", False, "/# is not within /farm1/#"),
    ("farmer", "POST", "/v2/registrations", "", coop(), j({"dataProvided": {"entities": [{"id": "f1", "type": "Field"}]}}), False, "does not grant register"),
    ("farmer", "GET", "/iot/devices", "", coop(), b"", False, "does not grant provision"),
    ("farmer", "GET", "/admin/log", "", {}, b"", False, "no policy applies to user u1"),
    # tenant binding: a farmer from elsewhere, an admin who is not a member
    ("outsider-farmer", "GET", "/v2/entities", "type=Field", coop("/farm1/#"), b"", False, "policy farmers-fields: tenant coop is bound to organization coop-org and user u2 is not a member"),
    ("outsider-admin", "DELETE", "/v2/entities/f1", "", coop(), b"", False, "tenant coop is bound to organization coop-org and user u5 is not a member"),
    ("outsider-farmer", "GET", "/v2/entities", "type=Field", {"fiware-service": "other"}, b"", True, "other-readers"),
    # the viewer: every path of coop, two attributes only
    ("viewer", "GET", "/v2/entities", "", {"fiware-service": "coop"}, b"", True, "hidden: all but humidity, temperature"),
    ("viewer", "GET", "/v2/entities/f1", "attrs=temperature,owner", {"fiware-service": "coop"}, b"", True, "hidden: all but temperature"),
    ("viewer", "GET", "/v2/entities/f1", "attrs=temperature", {"fiware-service": "coop"}, b"", True, "viewers grants read"),
    ("viewer", "GET", "/v2/entities", "options=values", {"fiware-service": "coop"}, b"", False, "carries no attribute names"),
    ("viewer", "PATCH", "/v2/entities/f1/attrs", "", coop(), j({"temperature": {}}), False, "does not grant update"),
    ("viewer", "GET", "/v2/types", "", {"fiware-service": "coop"}, b"", True, "projection"),
    # the tenant's admin: everything in coop
    ("admin", "DELETE", "/v2/entities/f1", "", coop(), b"", True, "coop-admins"),
    ("admin", "POST", "/v2/op/update", "", coop(), b"{not json", True, "could not be fully analysed"),
    ("admin", "GET", "/v2/entities", "", {"fiware-service": "other"}, b"", True, "other-readers"),
    ("admin", "DELETE", "/v2/entities/f1", "", {"fiware-service": "other", "fiware-servicepath": "/"}, b"", False, "does not grant delete"),
    # installers provision under /farm1/#
    ("installer", "POST", "/iot/devices", "", coop("/farm1/a"), j({"devices": [{"device_id": "d1", "entity_type": "Field"}]}), True, "installers"),
    ("installer", "DELETE", "/iot/devices/d1", "", coop("/farm2"), b"", False, "/farm2 is not within /farm1/#"),
    ("installer", "GET", "/iot/devices", "", coop("/*"), b"", False, "/# is not within /farm1/#"),
    # an application: create/update Sensor entities by id pattern
    ("gateway", "POST", "/v2/op/update", "", coop(), j({"actionType": "append", "entities": [{"id": "urn:Sensor:1", "type": "Sensor", "t": {}}]}), True, "sensor-writers"),
    ("gateway", "POST", "/v2/op/update", "", coop(), j({"actionType": "append", "entities": [{"id": "urn:Field:1", "type": "Sensor"}]}), False, "id urn:Field:1 does not match ^urn:Sensor:"),
    ("gateway", "POST", "/v2/op/update", "", coop(), j({"actionType": "delete", "entities": [{"id": "urn:Sensor:1", "type": "Sensor"}]}), False, "does not grant delete"),
    ("gateway", "POST", "/v2/op/notify", "", coop(), j({"subscriptionId": "s", "data": [{"id": "urn:Sensor:2", "type": "Sensor"}]}), True, "sensor-writers"),
    # platform operators: administration anywhere, nothing else
    ("ops", "PUT", "/admin/log", "level=DEBUG", {}, b"", True, "ops grants admin"),
    ("ops", "GET", "/v2/entities", "", {}, b"", False, "does not grant read"),
    ("ops", "GET", "/elsewhere", "", {}, b"", True, "could not be fully analysed"),
    # anonymous callers: public routes only
    ("anonymous", "GET", "/version", "", {}, b"", True, "public"),
    ("anonymous", "GET", "/v2/entities", "", {"fiware-service": "other"}, b"", False, "needs an authenticated caller"),
    ("anonymous", "OPTIONS", "/v2/entities", "", {}, b"", True, "public"),
]


@pytest.mark.parametrize(("who", "method", "path", "query", "headers", "body", "allowed", "fragment"), MATRIX)
def test_matrix(who: str, method: str, path: str, query: str, headers: dict[str, str], body: bytes, allowed: bool, fragment: str) -> None:
    decision = decide(SUBJECTS[who], describe(method, path, query, headers, body), POLICIES)
    assert decision.allow is allowed, decision.reason
    assert fragment in decision.reason


# -- the farmer, end to end ------------------------------------------------------------------


def farmer_decides(method: str, path: str, body: Any = b"", query: str = "", service_path: str = "/farm1") -> Decision:
    payload = body if isinstance(body, bytes) else j(body)
    return decide(SUBJECTS["farmer"], describe(method, path, query, coop(service_path), payload), POLICIES)


def test_a_batch_mixing_granted_and_denied_entities_is_denied_naming_the_denied_one() -> None:
    batch = {
        "actionType": "update",
        "entities": [
            {"id": "urn:Field:1", "type": "Field", "moisture": {"value": 0.3}},
            {"id": "urn:Field:2", "type": "Field", "moisture": {"value": 0.4}},
            {"id": "urn:Barn:1", "type": "Barn", "temperature": {"value": 9}},
        ],
    }
    decision = farmer_decides("POST", "/v2/op/update", batch)
    assert not decision.allow
    assert "no policy grants update on entity urn:Barn:1 of type Barn" in decision.reason
    assert "type Barn is not among Field" in decision.reason
    batch["entities"] = batch["entities"][:2]
    assert farmer_decides("POST", "/v2/op/update", batch).allow


def test_a_batch_touching_a_denied_attribute_is_denied() -> None:
    batch = {"actionType": "append", "entities": [{"id": "urn:Field:1", "type": "Field", "owner": {"value": "me"}}]}
    decision = farmer_decides("POST", "/v2/op/update", batch)
    assert not decision.allow and "does not grant create" in decision.reason
    batch["actionType"] = "update"
    decision = farmer_decides("POST", "/v2/op/update", batch)
    assert not decision.allow and "owner, which may not be written" in decision.reason


def test_subscriptions_whose_subject_covers_denied_types_are_denied() -> None:
    def subscription(entities: list[dict[str, str]], **notification: Any) -> dict[str, Any]:
        return {"subject": {"entities": entities}, "notification": {"http": {"url": "http://farm.example/n"}, **notification}}

    assert farmer_decides("POST", "/v2/subscriptions", subscription([{"id": "urn:Field:1", "type": "Field"}]), service_path="/farm1/#").allow
    for entities, fragment in [
        ([{"idPattern": ".*"}], "does not name the type"),
        ([{"idPattern": ".*", "typePattern": "F.*"}], "not typePattern F.*"),
        ([{"id": "urn:Field:1", "type": "Field"}, {"id": "b", "type": "Barn"}], "type Barn is not among Field"),
    ]:
        decision = farmer_decides("POST", "/v2/subscriptions", subscription(entities), service_path="/farm1/#")
        assert not decision.allow and fragment in decision.reason
    notified_owner = subscription([{"id": "urn:Field:1", "type": "Field"}], attrs=["moisture", "owner"])
    decision = farmer_decides("POST", "/v2/subscriptions", notified_owner, service_path="/farm1/#")
    assert not decision.allow and "would notify attribute(s) owner" in decision.reason
    on_owner = subscription([{"id": "urn:Field:1", "type": "Field"}]) | {
        "subject": {"entities": [{"id": "urn:Field:1", "type": "Field"}], "condition": {"attrs": ["owner"]}}
    }
    decision = farmer_decides("POST", "/v2/subscriptions", on_owner, service_path="/farm1/#")
    assert not decision.allow and "condition looks at attribute(s) owner" in decision.reason


def test_reading_all_attributes_is_a_projection_not_a_denial() -> None:
    decision = farmer_decides("GET", "/v2/entities/urn:Field:1", query="type=Field")
    assert decision.allow and decision.projected
    assert decision.allowed_attrs is None and decision.denied_attrs == {"owner"}
    assert decision.attr_visible("moisture") and not decision.attr_visible("owner")


def test_op_query_with_a_denied_attribute_among_those_asked_is_projected() -> None:
    query = {"entities": [{"idPattern": ".*", "type": "Field"}], "attrs": ["moisture", "owner"]}
    decision = farmer_decides("POST", "/v2/op/query", query, service_path="/farm1/#")
    assert decision.allow and decision.allowed_attrs == frozenset({"moisture"})


def test_an_identity_can_be_given_instead_of_a_subject() -> None:
    identity = Identity(user_id="u1", roles=("farmer",), organizations=("coop-org",))
    assert decide(identity, describe("GET", "/v2/entities", "type=Field", coop()), POLICIES).allow


# -- projections over several policies --------------------------------------------------------


def resource(attrs: frozenset[str] | None = None, **changes: Any) -> RequestResource:
    return RequestResource(
        actions=frozenset({READ}), tenant="t", scopes=(("/", False),),
        targets=(Target(id="e1", type="T", attrs=attrs),), **changes,
    )


def policies(*attr_rules: dict[str, list[str]]) -> PolicySet:
    return parse_policy_set([
        {"id": f"p{i}", "subject": {"authenticated": True}, "actions": ["read"], "tenant": "t", **({"attrs": rule} if rule else {})}
        for i, rule in enumerate(attr_rules)
    ])


@pytest.mark.parametrize(
    ("rules", "asked", "allowed", "denied"),
    [
        (({"deny": ["owner"]},), None, None, {"owner"}),
        (({"deny": ["owner"]}, {}), None, None, set()),  # another policy shows everything
        (({"deny": ["owner", "price"]}, {"deny": ["owner"]}), None, None, {"owner"}),
        (({"allow": ["a", "b"]}, {"allow": ["c"]}), None, {"a", "b", "c"}, set()),
        (({"allow": ["a", "b"]}, {"deny": ["a"]}), None, None, set()),  # together: everything
        (({"allow": ["a", "owner"], "deny": ["owner"]},), None, {"a"}, set()),
        (({"deny": ["owner"]},), {"a", "owner"}, {"a"}, set()),
        (({"deny": ["owner"]},), {"a"}, None, set()),
    ],
)
def test_projection_is_the_union_of_what_granting_policies_show(
    rules: tuple[dict[str, list[str]], ...], asked: set[str] | None, allowed: set[str] | None, denied: set[str]
) -> None:
    decision = decide(Subject("u"), resource(None if asked is None else frozenset(asked)), policies(*rules))
    assert decision.allow
    assert decision.allowed_attrs == (None if allowed is None else frozenset(allowed))
    assert decision.denied_attrs == denied


def test_a_policy_showing_no_attribute_grants_no_read() -> None:
    decision = decide(Subject("u"), resource(), policies({"allow": []}))
    assert not decision.allow and "none of the attributes asked for may be read" in decision.reason


def test_explanations_are_bounded() -> None:
    many = parse_policy_set([
        {"id": f"p{i}", "subject": {"authenticated": True}, "actions": ["update"], "tenant": "t"} for i in range(30)
    ])
    decision = decide(Subject("u"), resource(), many)
    assert not decision.allow and "and 22 more" in decision.reason


# -- properties ---------------------------------------------------------------------------------

requests = st.one_of(
    well_formed_requests().map(lambda r: describe(*r)),
    well_formed_requests().map(lambda r: describe(*r)),
    st.builds(describe, methods, ngsi_paths, queries, header_sets, bodies),
)
callers = st.one_of(member_subjects, subjects)
PROBES = [*ATTRS, "other"]


def visible_names(decision: Decision) -> set[str]:
    return {name for name in PROBES if decision.attr_visible(name)}


@dataclass(frozen=True)
class Case:
    """One decision the properties look at: who asks for what, given which policies and bindings."""

    subject: Subject
    request: RequestResource
    granted: list[Policy]
    tenant_bindings: dict[str, str]

    def decide(self, policies: list[Policy] | None = None) -> Decision:
        """The decision with the granted policies, or with ``policies`` instead."""
        return decide(self.subject, self.request, self.granted if policies is None else policies, self.tenant_bindings)


cases = st.builds(Case, callers, requests, policy_lists(), bindings)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(callers, requests, bindings)
def test_default_deny(subject: Subject, request: RequestResource, tenant_bindings: dict[str, str]) -> None:
    assert decide(subject, request, [], tenant_bindings).allow is request.public


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(callers, requests, policy_lists(), one_policy("extra"), bindings)
def test_adding_a_policy_never_takes_anything_away(
    subject: Subject, request: RequestResource, before: list[Policy], extra: Policy, tenant_bindings: dict[str, str]
) -> None:
    first = decide(subject, request, before, tenant_bindings)
    second = decide(subject, request, [*before, extra], tenant_bindings)
    if first.allow:
        assert second.allow, (first.reason, second.reason)
        assert visible_names(second) >= visible_names(first)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(cases)
def test_removing_the_granting_policies_denies(case: Case) -> None:
    decision = case.decide()
    if decision.allow and not case.request.public:
        assert decision.granted_by and decision.policy_id == decision.granted_by[0]
        assert not case.decide([p for p in case.granted if p.id not in decision.granted_by]).allow


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(callers, requests, policy_lists())
def test_a_bound_tenant_is_closed_to_non_members(subject: Subject, request: RequestResource, granted: list[Policy]) -> None:
    decision = decide(subject, request, granted, {request.tenant: "members-only"})
    if "members-only" not in subject.organizations:
        assert decision.allow is request.public
        if not request.public:
            assert "is bound to organization members-only" in decision.reason


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(cases)
def test_unknown_requests_pass_only_a_policy_granting_everything(case: Case) -> None:
    decision, request = case.decide(), case.request
    if request.unknown and decision.allow and not request.public:
        assert any(
            p.id == decision.policy_id and p.grants_everything(request.actions, request.tenant) for p in case.granted
        )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(cases)
def test_every_decision_explains_itself(case: Case) -> None:
    decision = case.decide()
    assert decision.reason
    if decision.allow and decision.policy_id:
        assert decision.policy_id in decision.reason
    if not decision.allow:
        assert decision.allowed_attrs is None and not decision.denied_attrs and not decision.granted_by


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(member_subjects, requests, policy_lists(), bindings)
def test_a_policy_granting_everything_allows_whatever_the_bindings_let_through(
    subject: Subject, request: RequestResource, granted: list[Policy], tenant_bindings: dict[str, str]
) -> None:
    everything = parse_policy_set(
        {"id": "root", "subject": {"users": [subject.user_id]}, "actions": ["*"], "tenant": "*"}
    ).policies[0]
    decision = decide(subject, request, [*granted, everything], tenant_bindings)
    bound = tenant_bindings.get(request.tenant)
    assert decision.allow is (request.public or bound is None or bound in subject.organizations), decision.reason
    if decision.allow:
        assert not decision.projected


def test_bindings_given_by_hand_apply_whatever_the_case_of_their_tenant_names() -> None:
    request = describe("GET", "/v2/entities", "type=Field", coop("/farm1"))
    decision = decide(SUBJECTS["outsider-farmer"], request, POLICIES.policies, {"COOP": "coop-org"})
    assert not decision.allow and "is bound to organization coop-org" in decision.reason
