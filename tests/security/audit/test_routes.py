"""``/audit`` and ``/audit/verify`` mounted in a real identity manager (SQLite, in-process
over httpx), guarded as its admin-only routes are."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from security.audit.log import AuditLog
from security.audit.routes import routes
from tests.security.idm.conftest import Clock, IdM, make_config, running

pytestmark = pytest.mark.anyio


@pytest.fixture
async def audit(tmp_path: Path, anyio_backend: str) -> AsyncIterator[AuditLog]:
    log = AuditLog.open(tmp_path / "audit")
    yield log
    log.close()


@pytest.fixture
async def idm(tmp_path: Path, audit: AuditLog) -> AsyncIterator[IdM]:
    server = running(make_config(tmp_path), Clock())
    server.app.router.routes[:0] = routes(audit)  # before the app's own (its lifespan's log): this test's log
    async with server as the_idm:
        yield the_idm


async def test_an_admin_lists_and_filters(idm: IdM, audit: AuditLog) -> None:
    for actor, action in [("alice", "signin"), ("bob", "signin.failed"), ("alice", "export")]:
        await audit.record(actor=actor, action=action, tenant="farm", source="192.0.2.9")
    r = await idm.http.get("/audit", headers=idm.admin())
    assert r.status_code == 200 and [x["seq"] for x in r.json()] == [1, 2, 3]
    r = await idm.http.get("/audit", params={"actor": "alice", "action": "export"}, headers=idm.admin())
    assert [(x["seq"], x["actor"], x["source"], x["pseudonymized"]) for x in r.json()] == [
        (3, "alice", "192.0.2.9", False)]
    r = await idm.http.get("/audit", params={"limit": "1", "offset": "1", "since": "2000-01-01"}, headers=idm.admin())
    assert [x["seq"] for x in r.json()] == [2]


async def test_an_admin_verifies(idm: IdM, audit: AuditLog) -> None:
    last = await audit.record(actor="alice", action="signin")
    assert last is not None
    r = await idm.http.get("/audit/verify", headers=idm.admin())
    assert r.status_code == 200
    assert r.json() | {"last_hash": None} == {"ok": True, "count": 1, "last_seq": 1, "last_hash": None, "keyed": True,
                                               "pseudonymized": 0, "bad_seq": None, "problem": None, "message": ""}
    assert r.json()["last_hash"] == last.hash
    r = await idm.http.get("/audit/verify", params={"anchor": "2:" + "ab" * 32}, headers=idm.admin())
    assert (r.json()["ok"], r.json()["bad_seq"], r.json()["problem"]) == (False, 2, "truncated")


async def test_others_are_refused_and_recorded(idm: IdM, audit: AuditLog) -> None:
    assert (await idm.http.get("/audit")).status_code == 401
    assert (await idm.http.get("/audit/verify", headers={"X-Auth-Token": "nonsense"})).status_code == 401
    user = await idm.user("carol")
    token = await idm.login(user["email"], "pa55word-long")
    r = await idm.http.get("/audit", headers={"X-Auth-Token": token})
    assert r.status_code == 403 and r.json()["error"]["code"] == 403
    denied = await audit.query(action="request.denied")
    assert [(d.actor, d.target, d.decision, d.source) for d in denied] == [(user["id"], "/audit", "deny", "192.0.2.10")]


@pytest.mark.parametrize("params", [{"limit": "x"}, {"limit": "100000"}, {"since": "yesterday"},
                                    {"offset": "-1"}])
async def test_bad_parameters_are_400(idm: IdM, params: dict[str, str]) -> None:
    r = await idm.http.get("/audit", params=params, headers=idm.admin())
    assert r.status_code == 400, r.text


async def test_a_bad_anchor_is_400(idm: IdM) -> None:
    r = await idm.http.get("/audit/verify", params={"anchor": "x"}, headers=idm.admin())
    assert r.status_code == 400


async def test_the_log_may_come_from_the_app_state(tmp_path: Path, audit: AuditLog) -> None:
    """The wiring for an app that opens its log in its lifespan."""
    server = running(make_config(tmp_path / "other"), Clock())
    async with server as idm:
        await idm.app.state.audit.record(actor="alice", action="export")
        r = await idm.http.get("/audit", params={"action": "export"}, headers=idm.admin())
        assert [x["actor"] for x in r.json()] == ["alice"]


async def test_the_identity_manager_records_sign_ins_and_failures(tmp_path: Path) -> None:
    """create_app's own log (``<data>/audit.db``): every login, right or wrong, with its
    address and reason, never the password; an admin reads them at /audit, and the chain
    verifies."""
    async with running(make_config(tmp_path), Clock()) as idm:
        user = await idm.user("dora")
        await idm.login(user["email"], "pa55word-long")
        wrong = await idm.http.post("/v1/auth/tokens", json={"name": user["email"], "password": "not-hers-1234"})
        assert wrong.status_code == 401
        await idm.http.post("/v1/auth/tokens", json={"name": "nobody@test.com", "password": "whatever-1234"})
        answer = await idm.http.get("/audit", params={"limit": "1000"}, headers=idm.admin())
        events = [(x["actor"], x["action"], x["reason"]) for x in answer.json()]
        assert (user["id"], "signin", "password") in events
        assert (user["id"], "signin.failed", "wrong password") in events
        assert ("nobody@test.com", "signin.failed", "no such account") in events
        assert (await idm.http.get("/audit/verify", headers=idm.admin())).json()["ok"] is True
    raw = b"".join(f.read_bytes() for f in tmp_path.glob("audit.db*"))
    assert b"not-hers-1234" not in raw and b"pa55word-long" not in raw
