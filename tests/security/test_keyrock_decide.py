"""Keyrock's PDP decision (``security/authz/keyrock.py``), reference
``security-history-orchestration.md`` §1 "Decision logic (models/model_oauth_server.js)":
examples of each rule, then properties over generated permissions and requests."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from security.authz.keyrock import Decision, decide


def perm(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "p1", "name": "read", "action": "GET", "resource": "/v2/entities", "is_regex": False}
    base.update(fields)
    return base


# -- basic level: verb + path (+ tenant) -----------------------------------------------


def test_exact_resource_permits_and_names_the_permission() -> None:
    decision = decide([perm()], action="GET", resource="/v2/entities")
    assert decision == Decision(True, decision.reason, "p1")
    assert "p1" in decision.reason


def test_exact_resource_is_exact_no_leading_slash_added() -> None:
    assert not decide([perm(resource="v2/entities")], action="GET", resource="/v2/entities").allow
    assert not decide([perm()], action="GET", resource="/v2/entities/x").allow


def test_action_must_match_case_insensitively() -> None:
    assert decide([perm()], action="get", resource="/v2/entities").allow
    denied = decide([perm()], action="POST", resource="/v2/entities")
    assert not denied.allow and "no permission for action 'POST'" in denied.reason


def test_regex_resource_is_a_case_insensitive_search() -> None:
    p = perm(resource="^/v2/entities/room[0-9]+$", is_regex=True)
    assert decide([p], action="GET", resource="/v2/entities/ROOM12").allow
    assert not decide([p], action="GET", resource="/v2/entities/room12/attrs").allow
    unanchored = perm(resource="entities", is_regex=True)
    assert decide([unanchored], action="GET", resource="/v2/entities/x").allow  # JavaScript's RegExp.test


def test_invalid_regex_never_matches_and_says_why() -> None:
    decision = decide([perm(resource="(a", is_regex=True)], action="GET", resource="(a")
    assert not decision.allow and "not a valid pattern" in decision.reason


def test_internal_permissions_are_ignored() -> None:
    assert not decide([perm(is_internal=True)], action="GET", resource="/v2/entities").allow


def test_tenant_header_checked_only_when_used() -> None:
    p = perm(use_authorization_service_header=True, authorization_service_header="smartcity")
    assert decide([p], action="GET", resource="/v2/entities", tenant="smartcity").allow
    assert not decide([p], action="GET", resource="/v2/entities", tenant="other").allow
    assert not decide([p], action="GET", resource="/v2/entities").allow
    unused = perm(use_authorization_service_header=False, authorization_service_header="smartcity")
    assert decide([unused], action="GET", resource="/v2/entities", tenant="other").allow


def test_first_matching_permission_wins() -> None:
    first, second = perm(id="a", resource="/x"), perm(id="b")
    assert decide([first, second, perm(id="c")], action="GET", resource="/v2/entities").permission_id == "b"


# -- payload level ------------------------------------------------------------------------


def test_payload_regexes_on_ids_attrs_types() -> None:
    p = perm(regex_entity_ids="^room", regex_attributes="^(temperature|humidity)$", regex_types="^Room$")
    ok = decide([p], action="GET", resource="/v2/entities", ids=["room1"], attrs=["temperature"], types=["Room"], level="payload")
    assert ok.allow
    for kwargs in (
        {"ids": ["car1"], "attrs": ["temperature"], "types": ["Room"]},
        {"ids": ["room1"], "attrs": ["pressure"], "types": ["Room"]},
        {"ids": ["room1"], "attrs": ["temperature"], "types": ["Car"]},
        {"ids": ["room1", "car1"], "attrs": ["temperature"], "types": ["Room"]},
    ):
        assert not decide([p], action="GET", resource="/v2/entities", level="payload", **kwargs).allow  # type: ignore[arg-type]


def test_payload_regex_with_nothing_named_fails_closed() -> None:
    p = perm(regex_entity_ids="^room")
    decision = decide([p], action="GET", resource="/v2/entities", level="payload")
    assert not decision.allow and "names no entity id" in decision.reason


def test_payload_regexes_ignored_at_basic_level() -> None:
    p = perm(regex_entity_ids="^room")
    assert decide([p], action="GET", resource="/v2/entities", ids=["car"], level="basic").allow


def test_unknown_level_denies() -> None:
    assert not decide([perm()], action="GET", resource="/v2/entities", level="advanced").allow


# -- properties -------------------------------------------------------------------------

words = st.text(alphabet="abcXYZ/_-.0", min_size=0, max_size=12)
verbs = st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT", "get", ""])
permissions = st.fixed_dictionaries(
    {
        "id": st.text(alphabet="0123456789abcdef", min_size=1, max_size=4),
        "action": st.one_of(verbs, st.none(), st.integers()),
        "resource": st.one_of(words, st.none(), st.just("(")),
        "is_regex": st.one_of(st.booleans(), st.none(), st.just("true")),
        "is_internal": st.booleans(),
        "use_authorization_service_header": st.booleans(),
        "authorization_service_header": st.one_of(words, st.none()),
        "regex_entity_ids": st.one_of(st.none(), words, st.just("[")),
        "regex_attributes": st.one_of(st.none(), words),
        "regex_types": st.one_of(st.none(), words),
    }
)
lists = st.lists(words, max_size=3)


@settings(max_examples=300)
@given(st.lists(permissions, max_size=5), verbs, words, st.one_of(st.none(), words), lists, lists, lists,
       st.sampled_from(["basic", "payload", "advanced", ""]))
def test_decide_never_raises_and_an_allow_names_a_matching_permission(
    perms: list[dict[str, Any]], action: str, resource: str, tenant: str | None,
    ids: list[str], attrs: list[str], types: list[str], level: str,
) -> None:
    decision = decide(perms, action=action, resource=resource, tenant=tenant, ids=ids, attrs=attrs, types=types, level=level)
    assert isinstance(decision.reason, str) and decision.reason
    if not decision.allow:
        assert decision.permission_id is None
        return
    matching = [p for p in perms if p["id"] == decision.permission_id]
    assert matching, "the allow names one of the given permissions"
    p = matching[0]
    assert not p["is_internal"]
    assert isinstance(p["action"], str) and p["action"].upper() == action.upper() and action
    if p["is_regex"] in (True, "true"):
        assert re.search(p["resource"], resource, re.IGNORECASE)
    else:
        assert p["resource"] == resource
    if p["use_authorization_service_header"]:
        assert tenant is not None and tenant == p["authorization_service_header"]


@given(st.lists(permissions, max_size=5), verbs, words, lists)
def test_payload_level_never_allows_more_than_basic(
    perms: list[dict[str, Any]], action: str, resource: str, ids: list[str]
) -> None:
    payload = decide(perms, action=action, resource=resource, ids=ids, level="payload")
    if payload.allow:
        assert decide(perms, action=action, resource=resource, ids=ids, level="basic").allow


@given(st.lists(permissions, max_size=5), verbs, words)
def test_adding_a_permission_never_turns_an_allow_into_a_deny(
    perms: list[dict[str, Any]], action: str, resource: str
) -> None:
    before = decide(perms, action=action, resource=resource)
    after = decide([*perms, perm(id="extra", action="OPTIONS")], action=action, resource=resource)
    assert not before.allow or after.allow
