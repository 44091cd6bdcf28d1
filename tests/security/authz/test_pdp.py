"""The PDP endpoints: /pdp/decide (raw requests and NGSI descriptions, Keyrock user info
as subject) and Keyrock's /pdp/open_policy_agent in the shapes Wilma sends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from security.authz.pdp import PDP, opa_resource
from security.authz.policy import PolicySet, parse_policy_set
from security.authz.request import Target

POLICIES = parse_policy_set({
    "policies": [
        {"id": "farmers-fields", "subject": {"roles": ["farmer"]}, "actions": ["read", "update"], "tenant": "coop",
         "servicePaths": ["/farm1/#"], "entities": {"types": ["Field"]}, "attrs": {"deny": ["owner"]}},
        {"id": "readers", "subject": {"roles": ["reader-role-id"]}, "actions": ["read"], "tenant": "open"},
        {"id": "gateways", "subject": {"apps": ["gw"]}, "actions": ["update"], "tenant": "open"},
    ],
    "tenantBindings": {"coop": "coop-org"},
})
FARMER = {"user_id": "u1", "roles": ["farmer"], "organizations": ["coop-org"]}


@pytest.fixture
def client() -> TestClient:
    return TestClient(Starlette(routes=PDP(POLICIES).routes()))


def test_decide_a_raw_request(client: TestClient) -> None:
    answer = client.post("/pdp/decide", json={
        "subject": FARMER, "method": "PATCH", "path": "/v2/entities/f1/attrs", "query": "type=Field",
        "headers": {"Fiware-Service": "coop", "Fiware-ServicePath": "/farm1"}, "body": {"moisture": {"value": 1}},
    })
    assert answer.status_code == 200
    assert answer.json() == {
        "allow": True, "reason": "policy farmers-fields grants update in tenant coop (PATCH /v2/entities/{id}/attrs)",
        "policy_id": "farmers-fields", "granted_by": ["farmers-fields"], "allowed_attrs": None, "denied_attrs": [],
        "actions": ["update"], "tenant": "coop",
    }


def test_decide_with_a_raw_body_and_a_projection(client: TestClient) -> None:
    answer = client.post("/pdp/decide", json={
        "subject": FARMER, "method": "POST", "path": "/v2/op/query", "headers": {"fiware-service": "coop", "fiware-servicepath": "/farm1/#"},
        "rawBody": '{"entities": [{"idPattern": ".*", "type": "Field"}]}',
    }).json()
    assert answer["allow"] and answer["denied_attrs"] == ["owner"] and answer["allowed_attrs"] is None


def test_decide_an_ngsi_description(client: TestClient) -> None:
    resource = {"actions": ["update"], "tenant": "Coop", "servicePaths": ["/farm2"],
                "entities": [{"id": "f1", "type": "Field", "attrs": ["moisture"]}]}
    answer = client.post("/pdp/decide", json={"subject": FARMER, "resource": resource}).json()
    assert not answer["allow"]
    assert "no policy grants update on entity f1 of type Field (attributes moisture) under /farm2 in tenant coop" in answer["reason"]


def test_the_subject_may_be_keyrock_user_info_with_organization_roles(client: TestClient) -> None:
    user = {
        "id": "u1", "app_id": "app", "username": "u1", "email": "u1@example.org",
        "roles": [], "organizations": [{"id": "org-id", "name": "coop-org", "roles": [{"id": "r1", "name": "farmer"}]}],
    }
    answer = client.post("/pdp/decide", json={
        "subject": user, "method": "GET", "path": "/v2/entities", "query": {"type": "Field"},
        "headers": {"fiware-service": "coop", "fiware-servicepath": "/farm1"},
    }).json()
    assert answer["allow"], answer["reason"]


def test_a_bad_ngsi_request_is_decided_not_refused(client: TestClient) -> None:
    answer = client.post("/pdp/decide", json={
        "subject": FARMER, "method": "POST", "path": "/v2/op/update", "headers": {"fiware-service": "coop"}, "rawBody": "{",
    })
    assert answer.status_code == 200 and not answer.json()["allow"]
    assert "could not be fully analysed" in answer.json()["reason"]


@pytest.mark.parametrize(
    "body",
    [
        [], {"method": "GET", "path": "/v2/entities"}, {"subject": "u1", "method": "GET", "path": "/"},
        {"subject": FARMER, "path": "/v2/entities"}, {"subject": FARMER, "method": "GET", "path": "/", "headers": {"a": 1}},
        {"subject": FARMER, "resource": {"actions": ["write"]}}, {"subject": FARMER, "resource": {"actions": ["read"], "servicePaths": ["x"]}},
        {"subject": {"roles": "farmer"}, "method": "GET", "path": "/"},
    ],
)
def test_malformed_pdp_requests_are_400(client: TestClient, body: Any) -> None:
    answer = client.post("/pdp/decide", json=body)
    assert answer.status_code == 400 and answer.json()["error"] == "BadRequest"


def test_a_body_that_is_not_json_is_400(client: TestClient) -> None:
    answer = client.post("/pdp/decide", content=b"{")
    assert answer.status_code == 400 and answer.json()["error"] == "ParseError"


# -- Keyrock's /pdp/open_policy_agent ------------------------------------------------------------

OPA_INPUT = {
    "appId": "app", "resource": "/v2/entities", "roles": ["reader-role-id"], "action": "GET", "tenant": "open",
    "ids": [], "idPatterns": [], "attrs": ["temperature"], "types": ["Field"],
}


@pytest.mark.parametrize("wrapped", [True, False])
def test_opa_answers_both_shapes(client: TestClient, wrapped: bool) -> None:
    body = {"input": OPA_INPUT} if wrapped else OPA_INPUT
    answer = client.post("/pdp/open_policy_agent", json=body)
    assert answer.status_code == 200 and answer.json() == {"allow": True, "result": {"allow": True}}


def test_opa_denies(client: TestClient) -> None:
    answer = client.post("/pdp/open_policy_agent", json={**OPA_INPUT, "action": "DELETE", "resource": "/v2/entities/f1"}).json()
    assert answer == {"allow": False, "result": {"allow": False}}


def test_opa_cannot_filter_so_a_projection_is_a_no(client: TestClient) -> None:
    farmer = {**OPA_INPUT, "roles": ["farmer"], "tenant": "coop", "userId": "u1", "organizations": ["coop-org"],
              "servicePath": "/farm1", "attrs": []}
    assert client.post("/pdp/open_policy_agent", json=farmer).json()["allow"] is False  # owner would be hidden
    assert client.post("/pdp/open_policy_agent", json={**farmer, "attrs": ["moisture"]}).json()["allow"] is True


def test_opa_without_organizations_cannot_enter_a_bound_tenant(client: TestClient) -> None:
    farmer = {**OPA_INPUT, "roles": ["farmer"], "tenant": "coop", "servicePath": "/farm1", "attrs": ["moisture"]}
    assert client.post("/pdp/open_policy_agent", json=farmer).json()["allow"] is False


def test_opa_payload_without_the_body_requires_every_possible_action(client: TestClient) -> None:
    batch = {**OPA_INPUT, "appId": "gw", "roles": [], "action": "POST", "resource": "/v2/op/update", "ids": ["s1"], "types": ["Sensor"]}
    assert client.post("/pdp/open_policy_agent", json=batch).json()["allow"] is False  # might create or delete
    patch = {**batch, "action": "PATCH", "resource": "/v2/entities/s1/attrs", "attrs": ["t"]}
    assert client.post("/pdp/open_policy_agent", json=patch).json()["allow"] is True


def test_opa_ignores_the_ids_wilma_misreads_from_the_attribute_path() -> None:
    data = {**OPA_INPUT, "action": "PUT", "resource": "/v2/entities/f1/attrs/temperature", "ids": ["f1", "temperature"], "attrs": []}
    assert opa_resource(data).targets == (Target(id="f1", attrs=frozenset({"temperature"})),)


def test_opa_ids_and_types_become_targets() -> None:
    data = {**OPA_INPUT, "ids": ["a"], "idPatterns": ["^b"], "types": ["T1", "T2"]}
    assert set(opa_resource(data).targets) == {
        Target(id=i, id_pattern=p, type=t, attrs=frozenset({"temperature"})) for i, p in [("a", None), (None, "^b")] for t in ("T1", "T2")
    }


def test_opa_resource_with_a_query_string() -> None:
    data = {**OPA_INPUT, "resource": "/v2/entities?type=Field&q=owner==x", "types": [], "attrs": []}
    assert opa_resource(data).filter_attrs == frozenset({"owner"})


@pytest.mark.parametrize("body", [[], {"input": []}, {"action": 1, "resource": "/"}, {**OPA_INPUT, "roles": "r"}, {**OPA_INPUT, "ids": [1]}])
def test_malformed_opa_inputs_are_400(client: TestClient, body: Any) -> None:
    assert client.post("/pdp/open_policy_agent", json=body).status_code == 400


# -- policy sources ---------------------------------------------------------------------------


def test_policies_come_from_the_source_at_each_decision() -> None:
    asyncio.run(_policies_come_from_the_source_at_each_decision())


async def _policies_come_from_the_source_at_each_decision() -> None:
    current = {"set": PolicySet()}

    async def source() -> PolicySet:
        return current["set"]

    pdp = PDP(source)
    status, answer = await pdp.open_policy_agent(OPA_INPUT)
    assert status == 200 and answer["allow"] is False
    current["set"] = POLICIES
    status, answer = await pdp.open_policy_agent(OPA_INPUT)
    assert answer["allow"] is True
    sync = PDP(lambda: POLICIES)
    assert (await sync.open_policy_agent(OPA_INPUT))[1]["allow"] is True
