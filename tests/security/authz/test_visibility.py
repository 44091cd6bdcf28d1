"""visible(): what a subscription's creator may see of an entity when it is notified."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ngsi.regex import search
from security.authz.policy import Policy, Subject, parse_policy_set
from security.authz.request import READ
from security.authz.visibility import visible

from .strategies import (
    ATTRS,
    IDS,
    TYPES,
    bindings,
    member_subjects,
    policy_lists,
    subjects,
)

POLICIES = parse_policy_set({
    "policies": [
        {"id": "farmers", "subject": {"roles": ["farmer"]}, "actions": ["read"], "tenant": "coop",
         "servicePaths": ["/farm1/#"], "entities": {"types": ["Field"]}, "attrs": {"deny": ["owner"]}},
        {"id": "viewers", "subject": {"roles": ["viewer"]}, "actions": ["read"], "tenant": "coop",
         "attrs": {"allow": ["temperature"]}},
    ],
    "tenantBindings": {"coop": "coop-org"},
})
FARMER = Subject("u1", roles=frozenset({"farmer"}), organizations=frozenset({"coop-org"}))


def field(path: str = "/farm1/a", entity_type: str = "Field", **attrs: Any) -> dict[str, Any]:
    attrs = attrs or {"moisture": {"type": "Number", "value": 0.3}, "owner": {"type": "Text", "value": "Ana"}}
    return {"id": "urn:Field:1", "type": entity_type, "servicePath": path, "attrs": attrs, "creDate": 1.0}


def test_the_farmer_sees_the_field_without_its_owner() -> None:
    shown = visible(FARMER, field(), "coop", POLICIES)
    assert shown == {**field(), "attrs": {"moisture": {"type": "Number", "value": 0.3}}}


def test_nothing_outside_the_grant_is_shown() -> None:
    assert visible(FARMER, field(path="/farm2"), "coop", POLICIES) is None
    assert visible(FARMER, field(entity_type="Barn"), "coop", POLICIES) is None
    assert visible(FARMER, field(), "other", POLICIES) is None


def test_an_entity_whose_attributes_are_all_hidden_is_not_shown() -> None:
    assert visible(FARMER, field(owner={"value": "Ana"}), "coop", POLICIES) is None


def test_a_readable_entity_without_attributes_is_shown() -> None:
    entity = {"id": "urn:Field:1", "type": "Field", "servicePath": "/farm1", "attrs": {}}
    assert visible(FARMER, entity, "coop", POLICIES) == entity


def test_bindings_apply_at_notification_time() -> None:
    former_member = Subject("u1", roles=frozenset({"farmer"}))
    assert visible(former_member, field(), "coop", POLICIES) is None
    assert visible(former_member, field(), "coop", POLICIES, {}) is not None  # bindings given override the set's


def test_allow_lists_reduce_to_the_listed_attributes() -> None:
    viewer = Subject("u3", roles=frozenset({"viewer"}), organizations=frozenset({"coop-org"}))
    shown = visible(viewer, field(temperature={"value": 20}, owner={"value": "Ana"}), "COOP", POLICIES)
    assert shown is not None and set(shown["attrs"]) == {"temperature"}


def test_entities_not_in_the_internal_form_are_not_shown() -> None:
    entity: Any
    for entity in [None, [], {"type": "Field"}, {"id": 3}, {"id": "e", "attrs": []}, {"id": "e", "type": 5}]:
        assert visible(FARMER, entity, "coop", POLICIES) is None


def readable(policy: Policy, subject: Subject, entity: dict[str, Any], tenant: str, name: str) -> bool:
    """Does this policy, alone, let the subject read attribute ``name`` of the entity?"""
    return (
        policy.subject.mismatch(subject) is None
        and policy.covers_tenant(tenant)
        and READ in policy.actions
        and policy.covers_scope((entity["servicePath"], False))
        and (policy.types is None or entity["type"] in policy.types)
        and (policy.id_pattern is None or search(policy.id_pattern, entity["id"]))
        and name in policy.visible
    )


entities: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries({
    "id": st.sampled_from(IDS),
    "type": st.sampled_from(TYPES),
    "servicePath": st.sampled_from(["/", "/farm1", "/farm1/a", "/farm2"]),
    "attrs": st.dictionaries(st.sampled_from([*ATTRS, "other"]), st.just({"value": 1}), max_size=5),
})


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(member_subjects, subjects), entities, st.sampled_from(["coop", "other", ""]), policy_lists(), bindings)
def test_a_denied_attribute_never_appears(
    subject: Subject, entity: dict[str, Any], tenant: str, policies: list[Policy], tenant_bindings: dict[str, str]
) -> None:
    shown = visible(subject, entity, tenant, policies, tenant_bindings)
    bound = tenant_bindings.get(tenant)
    closed = bound is not None and bound not in subject.organizations
    expected = {
        name for name in entity["attrs"]
        if not closed and any(readable(p, subject, entity, tenant, name) for p in policies)
    }
    if shown is None:
        assert not expected
    else:
        assert set(shown["attrs"]) == expected
        assert all(shown["attrs"][name] == entity["attrs"][name] for name in expected)
        assert {k: v for k, v in shown.items() if k != "attrs"} == {k: v for k, v in entity.items() if k != "attrs"}
