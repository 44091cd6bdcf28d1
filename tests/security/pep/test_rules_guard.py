"""The rules service's guard (what ``security.pep:rules_guard`` builds: the notice signature in
front of ``PEP(service="rules")``) in front of the real rules service, asking the real
identity manager (both in-process; the farmer world of conftest.py, plus a role that may
administer tenant town): Wilma's refusals, the public version, ``read`` to list rules,
``admin`` to write them, and ``/notices`` taking the subscriptions' signature or an
append."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from analytics.rules.service import subscriptions
from analytics.rules.service.app import create_app
from analytics.rules.service.config import Config
from ngsi.client.asgi import ASGITransport
from security.pep import rules_guard
from security.pep.guard import PEP
from security.pep.replies import INVALID, INVALID_ROLE, MISSING
from security.pep.rules import NoticeSignature, notice_signature

from .conftest import CountingTransport, Monotonic, World

pytestmark = pytest.mark.anyio

KEY = "the-notice-key"
RULE = {"name": "hot", "condition": {"type": "Boiler", "q": "t>40"},
        "action": {"type": "update", "parameters": {"attributes": [{"name": "alarm", "type": "Boolean", "value": "true"}]}}}
NOTICE = {"subscriptionId": "s1", "data": [{"id": "B1", "type": "Boiler", "t": {"type": "Number", "value": 55}}]}


@pytest.fixture
async def service(world: World) -> AsyncIterator[httpx.AsyncClient]:
    """The rules app (memory store, no broker to reach) behind the guard; bob's role
    ``viewer`` may also administer tenant town."""
    await world.permission("town-rules", {"id": "town-rules", "actions": ["admin"], "tenant": "town"}, "viewer")
    pep = PEP(world.settings(), service="rules", transport=CountingTransport(ASGITransport(world.idm.app)),
              now=world.idm.clock, monotonic=Monotonic())
    guard = NoticeSignature(pep, KEY, pep.replies)
    app = create_app(Config(db_uri="memory://", broker_url="http://127.0.0.1:9", action_timeout=1), guards=[guard])
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rules.test")
    async with app.router.lifespan_context(app), client:
        yield client


def asked(token: str | None, tenant: str = "town", **extra: str) -> dict[str, str]:
    headers = {"Fiware-Service": tenant, "Fiware-ServicePath": "/", **extra}
    return headers | ({"Authorization": f"Bearer {token}"} if token else {})


def test_both_sides_sign_alike() -> None:
    for tenant in ("", "coop", "town"):
        assert subscriptions.notice_signature(KEY, tenant) == notice_signature(KEY, tenant)
    assert notice_signature(KEY, "coop") != notice_signature(KEY, "town") != notice_signature("other", "town")


def test_the_factory_reads_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAZIUP_IDM_URL", "http://idm.test")
    monkeypatch.setenv("WAZIUP_PEP_PDP", "none")
    monkeypatch.setenv("WAZIUP_RULES_NOTICE_KEY", KEY)
    guard = rules_guard(Config())
    assert isinstance(guard, NoticeSignature) and guard.key == KEY
    assert isinstance(guard.pep, PEP) and guard.pep.public.exact == {"/version", "/version/"}


async def test_rules_need_a_token_reading_is_read_writing_is_admin(world: World, service: httpx.AsyncClient) -> None:
    refused = await service.post("/rules", json=RULE, headers=asked(None))
    assert refused.status_code == 401 and refused.json()["type"] == MISSING  # Wilma's shape, not Perseo's
    assert (await service.get("/version")).status_code == 200
    bob = await world.token("bob")  # reads anything in town, and administers it
    made = await service.post("/rules", json=RULE, headers=asked(bob))
    assert made.status_code == 200, made.text
    assert (await service.get("/rules/hot", headers=asked(bob))).status_code == 200
    assert (await service.post("/rules/hot/disable", headers=asked(bob))).status_code == 200
    assert (await service.get("/rules", headers=asked(bob, tenant="coop"))).status_code == 403
    alice = await world.token("alice")  # Fields of coop under /farm1 only: not every path of the tenant
    for denied in (service.get("/rules", headers=asked(alice, tenant="coop")),
                   service.post("/rules", json=RULE, headers=asked(alice, tenant="coop")),
                   service.delete("/rules/hot", headers=asked(alice))):
        answer = await denied
        assert answer.status_code == 403 and answer.json()["type"] == INVALID_ROLE, answer.text
    assert (await service.delete("/rules/hot", headers=asked(bob))).status_code == 200


async def test_notices_take_the_signature_of_their_tenant_or_an_append(world: World, service: httpx.AsyncClient) -> None:
    assert (await service.post("/notices", json=NOTICE, headers=asked(None))).status_code == 401
    signed = await service.post("/notices", json=NOTICE,
                                headers=asked(None, **{"Waziup-Notice-Signature": notice_signature(KEY, "town")}))
    assert signed.status_code == 200, signed.text
    bob = await world.token("bob")
    for wrong in (notice_signature(KEY, "coop"), notice_signature("other", "town"), "00"):
        forged = await service.post("/notices", json=NOTICE, headers=asked(bob, **{"Waziup-Notice-Signature": wrong}))
        assert forged.status_code == 401 and forged.json()["type"] == INVALID, wrong  # a token does not save it
    # the signature is for /notices only
    elsewhere = await service.post("/rules", json=RULE,
                                   headers=asked(None, **{"Waziup-Notice-Signature": notice_signature(KEY, "town")}))
    assert elsewhere.status_code == 401
    # without a signature, a token is decided as an append: bob may read and administer town, not create
    assert (await service.post("/notices", json=NOTICE, headers=asked(bob))).status_code == 403
