"""``/v1/privacy/...``: privacy policies managed through the identity manager's API and
stored with the identity data, the key ring, the epsilon ledger, and their audit events
(a real identity manager in-process over httpx; SQLite, and PostgreSQL for the ledger's
concurrency)."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path
from typing import Any

import pytest

from devtools.pg_cluster import Cluster
from security.audit.log import AuditLog

from .conftest import ADMIN_PASSWORD, Clock, IdM, make_config, running

pytestmark = pytest.mark.anyio

BASE = "/v1/privacy"


def policy(pid: str = "analyst", user: str = "bob", *, allowance: float = 1.0, **more: Any) -> dict[str, Any]:
    return {"id": pid, "consumer": {"kind": "user", "id": user}, "tenant": "energy", "entityType": "Meter",
            "attributes": {"power": [{"transform": "noise", "epsilon": 0.25, "sensitivity": 100}],
                           "owner": [{"transform": "pseudonymize"}]},
            "budget": {"epsilon": allowance, "period": "P1D"}, **more}


def plain(pid: str, user: str) -> dict[str, Any]:
    """A policy without noise, so without a budget."""
    return {"id": pid, "consumer": {"kind": "user", "id": user}, "attributes": {"serial": [{"transform": "drop"}]}}


async def admin_id(idm: IdM) -> str:
    users = (await idm.http.get("/v1/users", headers=idm.admin())).json()["users"]
    return next(u["id"] for u in users if u["email"] == "admin@test.com")


def audit_of(idm: IdM) -> AuditLog:
    log: AuditLog = idm.app.state.audit
    return log


async def spend(idm: IdM, epsilon: Any, consumer: str = "user:bob", pid: str = "analyst") -> Any:
    return await idm.http.post(f"{BASE}/budget/spend", headers=idm.admin(),
                               json={"consumer": consumer, "policy": pid, "epsilon": epsilon})


async def test_an_admin_creates_reads_replaces_and_deletes_policies(idm: IdM) -> None:
    first, second = policy(), plain("serials", "carol")
    r = await idm.http.post(f"{BASE}/policies", headers=idm.admin(), json=first)
    assert r.status_code == 201 and r.json() == first
    assert (await idm.http.post(f"{BASE}/policies", headers=idm.admin(), json=second)).status_code == 201
    r = await idm.http.get(f"{BASE}/policies", headers=idm.admin())
    assert r.json() == {"policies": [first, second]}  # creation order
    assert (await idm.http.get(f"{BASE}/policies/serials", headers=idm.admin())).json() == second

    changed = {k: v for k, v in plain("serials", "carol").items() if k != "id"} | {"description": "no serials"}
    r = await idm.http.put(f"{BASE}/policies/serials", headers=idm.admin(), json=changed)
    assert r.status_code == 200 and r.json() == {"id": "serials", **changed}
    assert (await idm.http.get(f"{BASE}/policies/serials", headers=idm.admin())).json()["description"] == "no serials"
    r = await idm.http.put(f"{BASE}/policies/serials", headers=idm.admin(), json=plain("other", "carol"))
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("id: ")
    r = await idm.http.put(f"{BASE}/policies/nothing", headers=idm.admin(), json=plain("nothing", "dan"))
    assert r.status_code == 404 and r.json()["error"]["message"] == "Privacy policy not found"

    assert (await idm.http.delete(f"{BASE}/policies/serials", headers=idm.admin())).status_code == 204
    assert (await idm.http.get(f"{BASE}/policies/serials", headers=idm.admin())).status_code == 404
    assert (await idm.http.delete(f"{BASE}/policies/serials", headers=idm.admin())).status_code == 404
    assert (await idm.http.get(f"{BASE}/policies", headers=idm.admin())).json() == {"policies": [first]}


@pytest.mark.parametrize(("doc", "message"), [
    ({**policy(), "attributes": {"power": [{"transform": "noise", "epsilon": -1, "sensitivity": 1}]}},
     "attributes/power/0/epsilon: "),
    ({k: v for k, v in policy().items() if k != "budget"}, "budget: a policy that adds noise needs a budget"),
    ({"id": "x"}, ": 'consumer' is a required property"),
])
async def test_an_invalid_document_is_400_with_the_field_at_fault(idm: IdM, doc: Any, message: str) -> None:
    r = await idm.http.post(f"{BASE}/policies", headers=idm.admin(), json=doc)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == 400 and error["title"] == "Bad Request" and message in error["message"], error
    assert (await idm.http.get(f"{BASE}/policies", headers=idm.admin())).json() == {"policies": []}


async def test_a_body_that_is_not_an_object_is_400(idm: IdM) -> None:
    r = await idm.http.post(f"{BASE}/policies", headers=idm.admin(), json=[policy()])
    assert r.status_code == 400 and r.json()["error"]["message"] == "Expected a JSON object"


async def test_a_taken_id_or_a_tie_is_409(idm: IdM) -> None:
    assert (await idm.http.post(f"{BASE}/policies", headers=idm.admin(), json=policy())).status_code == 201
    r = await idm.http.post(f"{BASE}/policies", headers=idm.admin(), json=policy(user="eve"))
    assert r.status_code == 409 and "already exists" in r.json()["error"]["message"]
    r = await idm.http.post(f"{BASE}/policies", headers=idm.admin(), json=policy("twin"))
    assert r.status_code == 409 and "'analyst'" in r.json()["error"]["message"]
    # a replacement that would tie is refused too, and leaves the policy as it was
    assert (await idm.http.post(f"{BASE}/policies", headers=idm.admin(), json=policy("other", "eve"))).status_code == 201
    r = await idm.http.put(f"{BASE}/policies/other", headers=idm.admin(), json=policy("other", "bob"))
    assert r.status_code == 409 and "'analyst'" in r.json()["error"]["message"]
    assert (await idm.http.get(f"{BASE}/policies/other", headers=idm.admin())).json()["consumer"]["id"] == "eve"
    # a policy may be replaced by itself changed (it does not tie with its old self)
    r = await idm.http.put(f"{BASE}/policies/analyst", headers=idm.admin(), json=policy(allowance=2.0))
    assert r.status_code == 200


async def test_only_admins_may_call(idm: IdM) -> None:
    user = await idm.user("carol")
    token = {"X-Auth-Token": await idm.login(user["email"], "pa55word-long")}
    calls = [("GET", f"{BASE}/policies"), ("POST", f"{BASE}/policies"), ("GET", f"{BASE}/policies/analyst"),
             ("PUT", f"{BASE}/policies/analyst"), ("DELETE", f"{BASE}/policies/analyst"), ("GET", f"{BASE}/export"),
             ("POST", f"{BASE}/keys/rotate"), ("POST", f"{BASE}/budget/spend"), ("GET", f"{BASE}/budget")]
    for method, path in calls:
        r = await idm.http.request(method, path, headers=token, json=policy())
        assert r.status_code == 403, (method, path)
        assert r.json()["error"] == {"message": "User not allowed to perform the action", "code": 403,
                                     "title": "Forbidden"}
        assert (await idm.http.request(method, path, json=policy())).status_code == 401, (method, path)


async def test_the_export_carries_policies_keys_and_the_version(idm: IdM) -> None:
    r = await idm.http.get(f"{BASE}/export", headers=idm.admin())
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    first = r.json()
    assert first["policies"] == [] and first["keys"]["current"] == "k1" and len(first["keys"]["keys"]) == 1
    assert r.headers["x-policy-version"] == str(first["policy_version"])
    again = (await idm.http.get(f"{BASE}/export", headers=idm.admin())).json()
    assert again == first  # the ring is made once, and nothing changed

    await idm.http.post(f"{BASE}/policies", headers=idm.admin(), json=policy())
    created = (await idm.http.get(f"{BASE}/export", headers=idm.admin())).json()
    assert created["policy_version"] > first["policy_version"] and created["policies"] == [policy()]

    await idm.http.put(f"{BASE}/policies/analyst", headers=idm.admin(), json=policy(allowance=3.0))
    updated = (await idm.http.get(f"{BASE}/export", headers=idm.admin())).json()
    assert updated["policy_version"] > created["policy_version"]

    r = await idm.http.post(f"{BASE}/keys/rotate", headers=idm.admin())
    assert r.status_code == 200 and r.json() == {"current": "k2"}
    rotated = (await idm.http.get(f"{BASE}/export", headers=idm.admin())).json()
    assert rotated["policy_version"] > updated["policy_version"]
    assert rotated["keys"]["current"] == "k2" and rotated["keys"]["keys"]["k1"] == first["keys"]["keys"]["k1"]
    assert rotated["keys"]["keys"]["k2"] != rotated["keys"]["keys"]["k1"]

    await idm.http.delete(f"{BASE}/policies/analyst", headers=idm.admin())
    deleted = (await idm.http.get(f"{BASE}/export", headers=idm.admin())).json()
    assert deleted["policy_version"] > rotated["policy_version"] and deleted["policies"] == []

    # a budget spend is not a policy change
    await idm.http.post(f"{BASE}/policies", headers=idm.admin(), json=policy())
    before = (await idm.http.get(f"{BASE}/export", headers=idm.admin())).json()["policy_version"]
    assert (await spend(idm, 0.25)).json()["granted"] is True
    assert (await idm.http.get(f"{BASE}/export", headers=idm.admin())).json()["policy_version"] == before


async def test_a_rotation_without_a_ring_makes_the_first(idm: IdM) -> None:
    r = await idm.http.post(f"{BASE}/keys/rotate", headers=idm.admin())
    assert r.json() == {"current": "k1"}
    assert (await idm.http.post(f"{BASE}/keys/rotate", headers=idm.admin())).json() == {"current": "k2"}


async def test_spending_until_refused_then_a_new_day(idm: IdM, clock: Clock) -> None:
    clock.now = datetime.datetime(2023, 11, 14, 22, 30, tzinfo=datetime.UTC).timestamp()  # just after the login
    await idm.http.post(f"{BASE}/policies", headers=idm.admin(), json=policy())
    answers = [(await spend(idm, 0.3)).json() for _ in range(4)]
    assert [a["granted"] for a in answers] == [True, True, True, False]
    assert answers[-1]["remaining"] == pytest.approx(0.1)
    assert answers[0] | {"remaining": 0} == {"granted": True, "remaining": 0, "epsilon": 1.0, "period": "P1D"}
    assert (await spend(idm, 0.1)).json()["granted"] is True  # 0.3 * 3 + 0.1 fits 1.0 (the tolerance)
    assert (await spend(idm, 0.0)).json() == {"granted": True, "remaining": 0.0, "epsilon": 1.0, "period": "P1D"}
    assert (await spend(idm, 0.01)).json()["granted"] is False
    assert (await spend(idm, 0.5, consumer="user:carol")).json()["granted"] is True  # a ledger per consumer

    r = await idm.http.get(f"{BASE}/budget", headers=idm.admin(), params={"consumer": "user:bob", "policy": "analyst"})
    assert r.status_code == 200 and r.json()["spent"] == pytest.approx(1.0) and r.json()["remaining"] == 0.0

    clock.advance(3600)  # 23:30: the same day
    idm.admin_token = await idm.login("admin@test.com", ADMIN_PASSWORD)
    assert (await spend(idm, 0.3)).json()["granted"] is False
    clock.advance(3600)  # 00:30 the next day: a new period
    idm.admin_token = await idm.login("admin@test.com", ADMIN_PASSWORD)
    fresh = (await spend(idm, 0.3)).json()
    assert fresh["granted"] is True and fresh["remaining"] == pytest.approx(0.7)
    r = await idm.http.get(f"{BASE}/budget", headers=idm.admin(), params={"consumer": "user:bob", "policy": "analyst"})
    assert r.json() | {"spent": 0, "remaining": 0} == {"consumer": "user:bob", "policy": "analyst", "spent": 0,
                                                       "remaining": 0, "epsilon": 1.0, "period": "P1D"}
    assert r.json()["spent"] == pytest.approx(0.3)


async def test_concurrent_spends_never_pass_the_allowance(idm: IdM) -> None:
    await idm.http.post(f"{BASE}/policies", headers=idm.admin(), json=policy())
    answers = await asyncio.gather(*(spend(idm, 0.25) for _ in range(12)))
    assert sum(a.json()["granted"] for a in answers) == 4


@pytest.mark.parametrize(("body", "status"), [
    ({"consumer": "user:bob", "policy": "nothing", "epsilon": 0.1}, 404),
    ({"consumer": "user:bob", "policy": "serials", "epsilon": 0.1}, 400),  # no budget
    ({"consumer": "user:bob", "policy": "analyst", "epsilon": -0.1}, 400),
    ({"consumer": "user:bob", "policy": "analyst", "epsilon": "0.1"}, 400),
    ({"consumer": "user:bob", "policy": "analyst", "epsilon": True}, 400),
    ({"consumer": "user:bob", "policy": "analyst"}, 400),
    ({"consumer": "bob", "policy": "analyst", "epsilon": 0.1}, 400),
    ({"consumer": "user:bob", "epsilon": 0.1}, 400),
])
async def test_bad_spends(idm: IdM, body: dict[str, Any], status: int) -> None:
    await idm.http.post(f"{BASE}/policies", headers=idm.admin(), json=policy())
    await idm.http.post(f"{BASE}/policies", headers=idm.admin(), json=plain("serials", "carol"))
    r = await idm.http.post(f"{BASE}/budget/spend", headers=idm.admin(), json=body)
    assert r.status_code == status and r.json()["error"]["code"] == status, r.text


async def test_every_change_is_audited_and_no_key_is(idm: IdM, tmp_path: Path) -> None:
    me = await admin_id(idm)
    await idm.http.post(f"{BASE}/policies", headers=idm.admin(), json=policy())
    await idm.http.put(f"{BASE}/policies/analyst", headers=idm.admin(), json=policy(allowance=0.5))
    await idm.http.get(f"{BASE}/export", headers=idm.admin())  # makes k1
    await idm.http.post(f"{BASE}/keys/rotate", headers=idm.admin())
    await spend(idm, 0.5)
    await spend(idm, 0.5)  # refused
    await idm.http.delete(f"{BASE}/policies/analyst", headers=idm.admin())
    found = [r for r in await audit_of(idm).query(limit=1000) if r.action.startswith("privacy.")]
    assert [(r.action, r.actor, r.target) for r in found] == [
        ("privacy.policy.created", me, "analyst"), ("privacy.policy.updated", me, "analyst"),
        ("privacy.keys.rotated", me, ""), ("privacy.budget.refused", me, "bob"), ("privacy.policy.deleted", me, "analyst")]
    assert all(r.source == "192.0.2.10" for r in found)
    assert found[0].details == {"consumer_kind": "user", "consumer_id": "bob"}
    assert found[2].details == {"current": "k2", "previous": "k1"}
    assert found[3].details == {"consumer_kind": "user", "policy": "analyst", "epsilon": 0.5, "remaining": 0.0}
    keys = (await idm.http.get(f"{BASE}/export", headers=idm.admin())).json()["keys"]["keys"]
    raw = b"".join(f.read_bytes() for f in tmp_path.glob("audit.db*"))
    assert not any(key.encode() in raw for key in keys.values())
    assert (await idm.http.get("/audit/verify", headers=idm.admin())).json()["ok"] is True


async def test_policies_keys_and_ledger_outlive_a_restart(tmp_path: Path, clock: Clock) -> None:
    config = make_config(tmp_path)
    async with running(config, clock) as idm:
        await idm.http.post(f"{BASE}/policies", headers=idm.admin(), json=policy())
        await spend(idm, 0.75)
        keys = (await idm.http.get(f"{BASE}/export", headers=idm.admin())).json()["keys"]
    async with running(config, clock) as idm:
        again = (await idm.http.get(f"{BASE}/export", headers=idm.admin())).json()
        assert again["keys"] == keys and again["policies"] == [policy()]
        assert (await spend(idm, 0.5)).json()["granted"] is False


async def test_on_postgresql(tmp_path: Path, clock: Clock, idm_pg_cluster: Cluster, idm_pg_url: str) -> None:
    """The same store on PostgreSQL: CRUD, a conflict, the ring, and spends that really run
    at once (a pool of connections) yet never pass the allowance."""
    idm_pg_cluster.psql("DROP TABLE IF EXISTS idm_privacy_policies, idm_privacy_state, idm_privacy_budget",
                        database="waziup_idm_test")
    async with running(make_config(tmp_path, idm_pg_url), clock) as idm:
        assert (await idm.http.post(f"{BASE}/policies", headers=idm.admin(), json=policy())).status_code == 201
        assert (await idm.http.post(f"{BASE}/policies", headers=idm.admin(), json=policy("twin"))).status_code == 409
        assert (await idm.http.put(f"{BASE}/policies/analyst", headers=idm.admin(),
                                   json=policy(allowance=2.0))).status_code == 200
        first = (await idm.http.get(f"{BASE}/export", headers=idm.admin())).json()
        assert first["keys"]["current"] == "k1" and first["policies"] == [policy(allowance=2.0)]
        rotations = await asyncio.gather(*(idm.http.post(f"{BASE}/keys/rotate", headers=idm.admin()) for _ in range(3)))
        assert sorted(r.json()["current"] for r in rotations) == ["k2", "k3", "k4"]
        answers = await asyncio.gather(*(spend(idm, 0.25) for _ in range(20)))
        assert sum(a.json()["granted"] for a in answers) == 8
        assert (await idm.http.delete(f"{BASE}/policies/analyst", headers=idm.admin())).status_code == 204
        assert (await idm.http.get(f"{BASE}/export", headers=idm.admin())).json()["policy_version"] > first["policy_version"]
