"""The identity manager's NGSI policy export (``GET /v1/ngsi_policies``) and its NGSI-aware PDP
(``/pdp/ngsi/*``): the data model (policies in permissions' ``ngsi`` field, subjects from the
roles holding them), who may read them, and a document that cannot be read failing closed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from security.authz.policy import parse_policy_set
from security.idm.model import Permission
from security.idm.routes.policies import Held, policy_document

from .conftest import World

pytestmark = pytest.mark.anyio


async def login(world: World, user: str) -> dict[str, str]:
    from .conftest import PASSWORDS

    return {"X-Auth-Token": await world.idm.login(user, PASSWORDS[user])}


async def test_the_export_of_an_application(world: World) -> None:
    r = await world.idm.http.get("/v1/ngsi_policies", params={"app_id": world.app["id"]},
                                 headers=await login(world, "pep"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["x-policy-version"] == str(body["policy_version"])
    assert body["tenantBindings"] == {"coop": "coop-org"} and body["skipped"] == []
    policies = {p["id"]: p for p in body["policies"]}
    assert set(policies) == {"farmers-fields", "town-viewers"}
    farmers = policies["farmers-fields"]
    assert farmers["subject"] == {"roles": [world.roles["farmer"]["id"]], "apps": [world.app["id"]]}
    assert farmers["attrs"] == {"deny": ["owner"]} and farmers["servicePaths"] == ["/farm1/#"]
    parse_policy_set({"policies": body["policies"], "tenantBindings": body["tenantBindings"]})


async def test_who_may_read_the_policies(world: World) -> None:
    http, app_id = world.idm.http, world.app["id"]
    r = await http.get("/v1/ngsi_policies", params={"app_id": app_id})
    assert r.status_code == 401 and set(r.json()["error"]) == {"message", "code", "title"}
    assert (await http.get("/v1/ngsi_policies", params={"app_id": app_id}, headers=await login(world, "carol"))
            ).status_code == 403
    assert (await http.get("/v1/ngsi_policies", headers=await login(world, "pep"))).status_code == 403  # all: admins
    everything = await http.get("/v1/ngsi_policies", headers=world.idm.admin())
    assert everything.status_code == 200 and len(everything.json()["policies"]) == 2
    unknown = await http.get("/v1/ngsi_policies", params={"app_id": "nope"}, headers=world.idm.admin())
    assert unknown.status_code == 404


async def test_a_bad_document_is_skipped_but_its_bindings_close_their_tenant(world: World) -> None:
    broken = {"policies": [{"id": "x", "actions": ["fly"]}], "tenantBindings": {"town": "org2"}}
    await world.permission("broken", broken, "viewer")
    await world.idm.http.post(f"{world.a()}/permissions", headers=world.idm.admin(), json={"permission": {
        "name": "unassigned", "action": "NGSI", "resource": "ngsi", "ngsi": {"id": "nobody", "actions": ["read"]}}})
    r = await world.idm.http.get("/v1/ngsi_policies", params={"app_id": world.app["id"]},
                                 headers=await login(world, "pep"))
    body = r.json()
    assert body["tenantBindings"] == {"coop": "coop-org", "town": "org2"}
    assert [s["reason"][:10] for s in body["skipped"]] == ["policies/0"]
    assert "nobody" not in {p["id"] for p in body["policies"]}  # held by no role: grants nothing


async def test_the_pdp_decides_for_authenticated_peps_only(world: World) -> None:
    alice = {"user_id": world.users["alice"]["id"], "app_id": world.app["id"],
             "roles": [world.roles["farmer"]["id"]], "organizations": ["coop-org"]}
    request = {"subject": alice, "method": "GET", "path": "/v2/entities", "query": "type=Field",
               "headers": {"fiware-service": "coop", "fiware-servicepath": "/farm1"}}
    http, params = world.idm.http, {"app_id": world.app["id"]}
    assert (await http.post("/pdp/ngsi/decide", params=params, json=request)).status_code == 401
    assert (await http.post("/pdp/ngsi/decide", params=params, json=request, headers=await login(world, "carol"))
            ).status_code == 403
    r = await http.post("/pdp/ngsi/decide", params=params, json=request, headers=await login(world, "pep"))
    assert r.status_code == 200, r.text
    assert r.json()["allow"] is True and r.json()["denied_attrs"] == ["owner"] and "x-policy-version" in r.headers
    opa = {"input": {"appId": world.app["id"], "userId": alice["user_id"], "roles": alice["roles"],
                     "organizations": ["coop-org"], "action": "GET",
                     "resource": "/v2/entities/f1/attrs/crop?type=Field",
                     "tenant": "coop", "servicePath": "/farm1", "types": ["Field"]}}
    r = await http.post("/pdp/ngsi/open_policy_agent", params=params, json=opa, headers=await login(world, "pep"))
    assert r.status_code == 200 and r.json()["allow"] is True
    assert (await http.post("/pdp/open_policy_agent", json=opa)).status_code == 200  # Keyrock's own, untouched


def held(doc: Any, roles: tuple[str, ...] = ("r1",), pid: str = "p1") -> Held:
    return Held(Permission(id=pid, name=pid, app_id="a1", action="NGSI", resource="ngsi", ngsi=doc), roles)


def test_ids_are_made_unique_and_subjects_come_from_the_roles() -> None:
    doc, skipped = policy_document([
        held({"id": "p", "actions": ["read"], "tenant": "t", "subject": {"roles": ["ignored"], "users": ["u1"]}},
             ("r1", "r2")),
        held([{"id": "p", "actions": ["read"], "tenant": "t"}, {"actions": ["update"], "tenant": "t"}], ("r3",),
             pid="p2"),
    ])
    assert skipped == []
    assert [p["id"] for p in doc["policies"]] == ["p", "p2/p", "p2"]
    assert doc["policies"][0]["subject"] == {"roles": ["r1", "r2"], "users": ["u1"], "apps": ["a1"]}


@given(st.lists(st.tuples(
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                     st.sampled_from(["id", "actions", "tenant", "subject", "policies", "tenantBindings", "attrs",
                                      "servicePaths", "x"]), inner, max_size=4)),
    st.lists(st.sampled_from(["r1", "r2"]), max_size=2)), max_size=4))
def test_any_documents_make_a_valid_policy_set(docs: list[tuple[Any, list[str]]]) -> None:
    document, _ = policy_document(held(doc, tuple(roles), pid=f"p{i}") for i, (doc, roles) in enumerate(docs))
    parse_policy_set(document)  # never invalid, whatever the permissions hold


async def test_the_pdp_reads_a_history_request_with_the_historys_routes(world: World) -> None:
    """``"service": "history"``: QuantumLeap's ``GET /v2/attrs/{attr}`` is a read of that attribute
    (security.authz.history), which the broker's table does not know (denied)."""
    alice = {"user_id": world.users["alice"]["id"], "app_id": world.app["id"],
             "roles": [world.roles["farmer"]["id"]], "organizations": ["coop-org"]}
    request = {"subject": alice, "method": "GET", "path": "/v2/attrs/crop", "query": "type=Field",
               "headers": {"fiware-service": "coop", "fiware-servicepath": "/farm1"}}
    http, params, pep = world.idm.http, {"app_id": world.app["id"]}, await login(world, "pep")
    r = await http.post("/pdp/ngsi/decide", params=params, json=request, headers=pep)
    assert r.status_code == 200 and r.json()["allow"] is False
    r = await http.post("/pdp/ngsi/decide", params=params, json={**request, "service": "history"}, headers=pep)
    assert r.status_code == 200 and r.json()["allow"] is True, r.text
    owner = {**request, "path": "/v2/attrs/owner", "service": "history"}  # the policy denies that attribute
    assert (await http.post("/pdp/ngsi/decide", params=params, json=owner, headers=pep)).json()["allow"] is False
    r = await http.post("/pdp/ngsi/decide", params=params, json={**request, "service": "mars"}, headers=pep)
    assert r.status_code == 400 and "service must be one of broker, history" in r.text
