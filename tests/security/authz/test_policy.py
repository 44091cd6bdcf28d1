"""The policy model: JSON documents validated against the schema, the attribute-set
algebra projections rest on, and what a policy covers (scopes, entities, subjects)."""

from __future__ import annotations

from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from hypothesis import given
from hypothesis import strategies as st

from security.authz.policy import (
    SCHEMA,
    AttrSet,
    PolicyError,
    Subject,
    load_policy_set,
    parse_policy,
    parse_policy_set,
    policy_json,
)
from security.authz.request import ACTIONS, Target

from .strategies import ATTRS, policy_docs

FARMER = {
    "id": "farmers-fields",
    "description": "Farmers read and update the fields of farm 1, not their owner",
    "subject": {"roles": ["farmer"]},
    "actions": ["read", "update"],
    "tenant": "coop",
    "servicePaths": ["/farm1/#"],
    "entities": {"types": ["Field"], "idPattern": "^urn:ngsi-ld:Field:"},
    "attrs": {"deny": ["owner"]},
}


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_the_farmer_policy_parses() -> None:
    policy = parse_policy(FARMER)
    assert policy.id == "farmers-fields"
    assert policy.subject.roles == {"farmer"}
    assert policy.actions == {"read", "update"}
    assert policy.tenant == "coop"
    assert policy.service_paths == (("/farm1", True),)
    assert policy.types == frozenset({"Field"}) and policy.id_pattern == "^urn:ngsi-ld:Field:"
    assert "owner" not in policy.visible and "moisture" in policy.visible


def test_a_policy_set_with_bindings_a_list_and_a_single_policy() -> None:
    policy_set = parse_policy_set({"policies": [FARMER], "tenantBindings": {"Coop": "coop-org"}})
    assert policy_set.bindings == {"coop": "coop-org"}
    assert parse_policy_set([FARMER]).policies == policy_set.policies == parse_policy_set(FARMER).policies
    assert load_policy_set(b'{"policies": []}').policies == ()


def test_defaults_are_every_path_entity_and_attribute_and_star_is_every_action() -> None:
    policy = parse_policy({"id": "p", "subject": {"authenticated": True}, "actions": ["*"], "tenant": "*"})
    assert policy.actions == frozenset(ACTIONS)
    assert policy.service_paths == (("/", True),)
    assert policy.types is None and policy.id_pattern is None and policy.visible.is_all
    assert policy.grants_everything(frozenset(ACTIONS), "anything")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"actions": ["write"]}, "actions/0"),
        ({"actions": []}, "actions"),
        ({"subject": {}}, "subject"),
        ({"subject": {"roles": []}}, "subject/roles"),
        ({"subject": {"authenticated": False}}, "subject/authenticated"),
        ({"subject": {"group": ["x"]}}, "subject"),
        ({"tenant": "bad-name"}, "tenant"),
        ({"tenant": None}, "tenant"),
        ({"servicePaths": ["farm1"]}, "servicePaths/0"),
        ({"servicePaths": ["/farm 1"]}, "illegal character"),
        ({"servicePaths": ["/a,/b"]}, "one service path per item"),
        ({"entities": {"idPattern": "(a"}}, "idPattern"),
        ({"entities": {"idPattern": "(?=a)"}}, "RE2"),
        ({"entities": {"types": [""]}}, "entities/types/0"),
        ({"attrs": {"hide": ["owner"]}}, "attrs"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_policies_say_where_and_why(change: dict[str, Any], fragment: str) -> None:
    with pytest.raises(PolicyError, match=fragment.replace("(", r"\(")):
        parse_policy({**FARMER, **change})


def test_missing_fields_and_duplicate_ids_are_refused() -> None:
    doc = dict(FARMER)
    del doc["tenant"]
    with pytest.raises(PolicyError, match="tenant"):
        parse_policy(doc)
    with pytest.raises(PolicyError, match="used twice"):
        parse_policy_set([FARMER, FARMER])
    with pytest.raises(PolicyError, match="not JSON"):
        load_policy_set("{")


@given(policy_docs())
def test_policy_json_round_trips(doc: dict[str, Any]) -> None:
    policy = parse_policy(doc)
    assert parse_policy(policy_json(policy)) == policy


# -- attribute sets -----------------------------------------------------------------------------

UNIVERSE = [*ATTRS, "other"]
attr_sets = st.builds(AttrSet, st.frozensets(st.sampled_from(ATTRS)), st.booleans())


def members(s: AttrSet) -> set[str]:
    return {name for name in UNIVERSE if name in s}


@given(attr_sets, attr_sets)
def test_union_and_intersection_agree_with_membership(a: AttrSet, b: AttrSet) -> None:
    assert members(a.union(b)) == members(a) | members(b)
    assert members(a.intersection(b)) == members(a) & members(b)


@given(attr_sets, st.none() | st.frozensets(st.sampled_from(UNIVERSE)))
def test_covers_and_restrict(a: AttrSet, attrs: frozenset[str] | None) -> None:
    if attrs is None:
        assert a.covers(None) == a.is_all
        assert a.restrict(None) == a
    else:
        assert a.covers(attrs) == (attrs <= members(a))
        assert members(a.restrict(attrs)) == attrs & members(a)


# -- coverage ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("granted", "covered", "not_covered"),
    [
        ("/farm1/#", [("/farm1", True), ("/farm1", False), ("/farm1/a", False), ("/farm1/a", True)], [("/farm10", False), ("/", True)]),
        ("/farm1", [("/farm1", False)], [("/farm1", True), ("/farm1/a", False)]),
        ("/#", [("/", True), ("/x/y", False)], []),
        ("/", [("/", False)], [("/", True)]),
    ],
)
def test_service_path_coverage(
    granted: str, covered: list[tuple[str, bool]], not_covered: list[tuple[str, bool]]
) -> None:
    """A granted path against request scopes (path, subtree): the ones it covers, and near misses."""
    policy = parse_policy({**FARMER, "servicePaths": [granted]})
    assert [scope for scope in covered + not_covered if policy.covers_scope(scope)] == covered


@pytest.mark.parametrize(
    ("entities", "target", "fragment"),
    [
        ({"types": ["Field"]}, Target(type="Field"), None),
        ({"types": ["Field"]}, Target(type="Sensor"), "type Sensor is not among Field"),
        ({"types": ["Field"]}, Target(), "does not name the type"),
        ({"types": ["Field"]}, Target(type_pattern="F.*"), "not typePattern F.*"),
        ({}, Target(type_pattern="F.*"), None),
        ({"idPattern": "^f"}, Target(id="f1"), None),
        ({"idPattern": "^f"}, Target(id="s1"), "id s1 does not match ^f"),
        ({"idPattern": "^f"}, Target(), "names no id"),
        ({"idPattern": "^f"}, Target(id_pattern="^f"), None),
        ({"idPattern": "^f"}, Target(id_pattern="^f.*"), "not idPattern ^f.*"),
        ({"types": ["Field"], "idPattern": "^f"}, Target(entityless=True), None),
    ],
)
def test_entity_coverage(entities: dict[str, Any], target: Target, fragment: str | None) -> None:
    policy = parse_policy({**FARMER, "entities": entities})
    why = policy.entity_mismatch(target)
    assert why is None if fragment is None else fragment in (why or "")


@pytest.mark.parametrize(
    ("match", "subject", "fragment"),
    [
        ({"roles": ["farmer"]}, Subject("u1", roles=frozenset({"farmer"})), None),
        ({"roles": ["farmer"]}, Subject("u1", roles=frozenset({"viewer"})), "needs role farmer"),
        ({"roles": ["farmer"]}, Subject(roles=frozenset({"farmer"})), "authenticated"),
        ({"roles": ["farmer"], "organizations": ["coop-org"]}, Subject("u1", roles=frozenset({"farmer"})), "membership of coop-org"),
        ({"users": ["u1"]}, Subject("u1"), None),
        ({"users": ["u1"]}, Subject("u2"), "users u1"),
        ({"apps": ["a1"]}, Subject(app_id="a1"), None),
        ({"apps": ["a1"]}, Subject("u1", "a2"), "applications a1"),
        ({"authenticated": True}, Subject(app_id="a1"), None),
        ({"authenticated": True}, Subject(), "authenticated"),
    ],
)
def test_subject_matching(match: dict[str, Any], subject: Subject, fragment: str | None) -> None:
    why = parse_policy({**FARMER, "subject": match}).subject.mismatch(subject)
    assert why is None if fragment is None else fragment in (why or "")
