"""The PEP guard (``service="history"``, what ``security.pep:history_guard`` builds) in front of
the real history service, asking the real identity manager (both in-process; the farmer
world of conftest.py): Wilma's refusals, public probes, tenants and service paths, and the
projection, which the history applies to every answer it builds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from analytics.history.app import create_app
from analytics.history.config import Config
from analytics.history.notification import parse_notification
from ngsi.client.asgi import ASGITransport
from security.pep.guard import PEP
from security.pep.replies import INVALID_ROLE, MISSING

from .conftest import CountingTransport, Monotonic, World

pytestmark = pytest.mark.anyio

FIELDS = {"data": [
    {"id": "F1", "type": "Field", "crop": {"type": "Text", "value": "wheat"}, "owner": {"type": "Text", "value": "al"},
     "TimeInstant": {"type": "DateTime", "value": "2024-05-01T10:00:00Z"}},
]}


@pytest.fixture
async def history(world: World, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The history app behind the PEP, holding F1 of tenant coop at /farm1 (and the same
    entity in tenant town), stored directly: the test is about reading."""
    pep = PEP(world.settings(), service="history", transport=CountingTransport(ASGITransport(world.idm.app)),
              now=world.idm.clock, monotonic=Monotonic())
    app = create_app(Config(db_uri=f"sqlite:///{tmp_path}/h.db"), guards=[pep])
    async with app.router.lifespan_context(app):
        for tenant in ("coop", "town"):
            await app.state.store.ingest(parse_notification(orjson.dumps(FIELDS), tenant=tenant, service_path="/farm1",
                                                            time_index_attribute=None, sequence=None, now=0))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://history.test") as client:
            yield client


def asked(token: str | None, tenant: str = "coop", path: str = "/farm1") -> dict[str, str]:
    headers = {"Fiware-Service": tenant, "Fiware-ServicePath": path}
    return headers | ({"Authorization": f"Bearer {token}"} if token else {})


async def test_the_history_behind_the_pep(world: World, history: httpx.AsyncClient) -> None:
    refused = await history.get("/v2/entities/F1", params={"type": "Field"}, headers=asked(None))
    assert refused.status_code == 401 and refused.json()["type"] == MISSING  # Wilma's shape, not QuantumLeap's
    assert refused.headers["www-authenticate"].startswith("Bearer realm=")
    assert (await history.get("/version")).status_code == 200 and (await history.get("/health")).status_code == 200
    for method, path in (("GET", "/v2/entities?lastN=x"), ("POST", "/v2/notify"), ("GET", "/nowhere")):
        answer = await history.request(method, path)  # what the history would refuse needs a token first
        assert answer.status_code == 401, (method, path)

    alice = await world.token("alice")  # a farmer: Fields of coop under /farm1/#, never their owner
    read = await history.get("/v2/entities/F1", params={"type": "Field"}, headers=asked(alice))
    assert read.status_code == 200, read.text
    assert [a["attrName"] for a in read.json()["attributes"]] == ["TimeInstant", "crop"]  # owner projected away
    last = await history.get("/v2/last", params={"type": "Field"}, headers=asked(alice))
    assert last.status_code == 200 and "owner" not in last.text and "wheat" in last.text
    owner = await history.get("/v2/entities/F1/attrs/owner", params={"type": "Field"}, headers=asked(alice))
    assert owner.status_code == 403 and owner.json()["type"] == INVALID_ROLE

    for denied in (
        history.get("/v2/entities/F1", headers=asked(alice)),  # no type: any type, not only Fields
        history.get("/v2/entities/F1", params={"type": "Field"}, headers=asked(alice, path="/farm2")),
        history.get("/v2/entities/F1", params={"type": "Field"}, headers=asked(alice, tenant="town")),
        history.delete("/v2/types/Field", headers=asked(alice)),  # read and update only
        history.post("/v2/notify", headers=asked(alice), json=FIELDS),  # no create
    ):
        answer = await denied
        assert answer.status_code == 403, answer.text

    bob = await world.token("bob")  # reads anything in town, nothing in coop
    town = await history.get("/v2/entities/F1", headers=asked(bob, tenant="town"))
    assert town.status_code == 200 and {a["attrName"] for a in town.json()["attributes"]} == {"TimeInstant", "crop",
                                                                                               "owner"}
    assert (await history.get("/v2/entities/F1", headers=asked(bob))).status_code == 403

