from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from security.privacy.policy import (
    SCHEMA, Consumer, Drop, Generalize, Noise, PolicyError, Pseudonymize, conflicts, parse_policies, parse_policy,
    select,
)

from .strategies import policy_docs

EXAMPLE: dict[str, Any] = {
    "id": "household-hourly", "consumer": {"kind": "user", "id": "bob"},
    "tenant": "energy", "servicePath": "/homes/#", "entityType": "Meter",
    "attributes": {"power": [{"transform": "noise", "epsilon": 0.5, "sensitivity": 100}],
                   "location": [{"transform": "generalize", "geohash": 5}],
                   "owner": [{"transform": "pseudonymize"}], "serial": [{"transform": "drop"}],
                   "dateObserved": [{"transform": "generalize", "period": "PT1H"}], "*": []},
    "idTransform": {"transform": "pseudonymize"}, "budget": {"epsilon": 5.0, "period": "P1D"}, "kAnonymity": 5,
    "aggregation": {"methods": ["avg"], "period": "hour"},
}


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(EXAMPLE)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


def test_the_schema_file_is_the_one_read() -> None:
    path = Path(__file__).parents[3] / "security" / "privacy" / "schema.json"
    assert json.loads(path.read_text()) == SCHEMA


def test_the_issue_example_reads() -> None:
    policy = parse_policy(EXAMPLE)
    assert policy.consumer == Consumer("user", "bob")
    assert policy.tenant == "energy" and policy.service_path == ("/homes", True) and policy.entity_type == "Meter"
    assert policy.steps("power") == (Noise(0.5, 100.0),)
    assert policy.steps("owner") == (Pseudonymize(),)
    assert policy.steps("serial") == (Drop(),)
    assert policy.steps("location") == (Generalize(geohash=5),)
    assert policy.steps("anythingElse") == ()
    assert policy.pseudonymize_ids and policy.k_anonymity is not None and policy.k_anonymity.k == 5
    assert policy.budget is not None and policy.budget.period.seconds == 86400
    assert policy.epsilon_of(["power", "power", "serial"]) == 0.5
    assert policy.drops("serial") and not policy.drops("power")
    assert len({policy, parse_policy(EXAMPLE)}) == 1  # hashable, by id and consumer


@pytest.mark.parametrize(("path", "value", "error"), [
    (("attributes", "power", 0, "epsilon"), -1, "attributes/power/0/epsilon:"),
    (("attributes", "power", 0, "sensitivity"), ..., "attributes/power/0: 'sensitivity' is a required property"),
    (("attributes", "location", 0, "grid"), 1000, "attributes/location/0: generalize takes exactly one of"),
    (("attributes", "location", 0, "geohash"), 13, "attributes/location/0/geohash:"),
    (("attributes", "serial", 0, "transform"), "blur", "attributes/serial/0/transform:"),
    (("attributes", "serial", 0, "extra"), 1, "attributes/serial/0:"),
    (("attributes", "dateObserved", 0, "period"), "P1M1D", "attributes/dateObserved/0/period:"),
    (("attributes", "dateObserved", 0, "period"), "1 hour", "attributes/dateObserved/0/period:"),
    (("attributes", "id"), [], "attributes:"),
    (("consumer", "kind"), "robot", "consumer/kind:"),
    (("consumer", "id"), ..., "consumer: 'id' is a required property"),
    (("servicePath",), "/a b/#", "servicePath:"),
    (("servicePath",), "homes", "servicePath:"),
    (("tenant",), "en-ergy", "tenant:"),
    (("budget",), ..., "budget: a policy that adds noise needs a budget"),
    (("budget", "period"), "P1Y1D", "budget/period:"),
    (("kAnonymity",), 1, "kAnonymity:"),
    (("idTransform", "transform"), "drop", "idTransform/transform:"),
    (("aggregation", "methods"), ["median"], "aggregation/methods/0:"),
    (("surprise",), 1, "(document):"),
])
def test_errors_name_the_field(path: tuple[Any, ...], value: Any, error: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(_with(path, value))
    assert str(caught.value).startswith(error), str(caught.value)


def test_public_has_no_id_and_others_need_one() -> None:
    assert parse_policy(_with(("consumer",), {"kind": "public"})).consumer == Consumer("public")
    with pytest.raises(PolicyError, match="^consumer"):
        parse_policy(_with(("consumer",), {"kind": "public", "id": "x"}))


def test_several_policies_name_the_index_and_refuse_twins() -> None:
    with pytest.raises(PolicyError, match="^1/consumer/kind"):
        parse_policies([EXAMPLE, _with(("consumer", "kind"), "robot")])
    with pytest.raises(PolicyError, match="^1/id: 'household-hourly' is used twice"):
        parse_policies([EXAMPLE, EXAMPLE])


@given(policy_docs())
def test_generated_documents_read(doc: dict[str, Any]) -> None:
    policy = parse_policy(doc)
    assert set(policy.attributes) == set(doc["attributes"])


def _policy(pid: str, kind: str = "user", cid: str = "bob", **fields: Any) -> Any:
    doc: dict[str, Any] = {"id": pid, "consumer": {"kind": kind} if kind == "public" else {"kind": kind, "id": cid},
                           "attributes": {}}
    doc.update(fields)
    return parse_policy(doc)


BOB, ACME, APP = Consumer("user", "bob"), Consumer("organization", "acme"), Consumer("application", "dash")


def test_select_needs_a_matching_consumer_tenant_path_and_type() -> None:
    only = _policy("p", tenant="energy", servicePath="/homes/#", entityType="Meter")
    assert select([only], BOB, "energy", "/homes/h1", "Meter") is only
    assert select([only], BOB, "Energy", "/homes", "Meter") is only  # tenants fold to lowercase
    assert select([only], ACME, "energy", "/homes/h1", "Meter") is None
    assert select([only], BOB, "water", "/homes/h1", "Meter") is None
    assert select([only], BOB, "energy", "/homesick", "Meter") is None
    assert select([only], BOB, "energy", "/homes/h1", "Valve") is None


def test_the_most_specific_policy_wins() -> None:
    public = _policy("a-public", "public")
    org = _policy("b-org", "organization", "acme")
    user_any = _policy("c-user")
    user_typed = _policy("d-user-typed", entityType="Meter")
    user_deep = _policy("e-user-deep", entityType="Meter", servicePath="/homes/#")
    user_exact = _policy("f-user-exact", entityType="Meter", servicePath="/homes")
    app = _policy("g-app", "application", "dash")
    everything = [public, org, user_any, user_typed, user_deep, user_exact, app]
    assert select(everything, [BOB, ACME], "t", "/homes", "Meter") is user_exact
    assert select(everything, [BOB, ACME], "t", "/homes/h1", "Meter") is user_deep
    assert select(everything, [BOB, ACME], "t", "/", "Meter") is user_typed
    assert select(everything, [BOB, ACME], "t", "/", "Valve") is user_any
    assert select(everything, ACME, "t", "/", "Valve") is org
    assert select(everything, Consumer("user", "eve"), "t", "/", "Valve") is public
    assert select(everything, [BOB, APP], "t", "/homes", "Meter") is app


def test_ties_go_to_the_smaller_id_and_are_reported() -> None:
    b, a = _policy("b"), _policy("a")
    assert select([b, a], BOB, "t", "/", "X") is a
    assert conflicts([b, a, _policy("c", tenant="t")]) == [("a", "b")]
