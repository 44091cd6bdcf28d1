"""Rules, engine state and firings survive a restart of the service; rules are written
before the API answers; subscriptions are checked again at start-up."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from analytics.rules.service.config import Config
from analytics.rules.service.store import FiringRecord, StoredRule, open_store
from analytics.rules.service.subscriptions import MARK
from tests.analytics.conftest import AnalyticsProcess
from tests.conftest import free_port

from .conftest import TENANT, eventually, serve

pytestmark = pytest.mark.anyio

WINDOW = {"name": "third_reading", "condition": {"type": "Meter", "window": {
              "minutes": 10, "aggregates": {"n": {"count": "power"}, "avg": {"avg": "power"}}, "q": "n>=3"}},
          "action": {"type": "update", "parameters": {"attributes": [
              {"name": "busy", "type": "Number", "value": "${avg}"}]}}}


def _attr(ngsi: httpx.Client, entity: str, name: str) -> Any:
    answer = ngsi.get(f"/v2/entities/{entity}/attrs/{name}/value")
    return answer.json() if answer.status_code == 200 else None


def _samples(svc: Any) -> int:
    """Readings of ``power`` in the window rule's state."""
    windows = [w for w in svc.service.engine.state()["windows"] if w["rule"] == "third_reading"]
    return sum(len(w["state"]["samples"].get("power", [])) for w in windows)


async def test_a_rule_survives_a_restart_with_its_window(config: Config, ngsi: httpx.Client, store_url: str) -> None:
    config = replace(config, db_uri=store_url)
    meter = "M1" if store_url.startswith("sqlite") else "M2"
    async with serve(config) as svc:
        assert (await svc.http.post("/rules", json=WINDOW)).status_code == 200
        ngsi.post("/v2/entities", json={"id": meter, "type": "Meter", "power": {"value": 1, "type": "Number"}})
        ngsi.patch(f"/v2/entities/{meter}/attrs", json={"power": {"value": 2, "type": "Number"}})
        await eventually(lambda: _samples(svc) == 2)
        before = svc.service.engine.state()["windows"]
        assert _attr(ngsi, meter, "busy") is None
    async with serve(config) as svc:  # a new process would do the same: everything comes from the store
        assert (await svc.http.get("/rules/third_reading")).status_code == 200
        assert svc.service.engine.state()["windows"] == before
        ngsi.patch(f"/v2/entities/{meter}/attrs", json={"power": {"value": 6, "type": "Number"}})
        await eventually(lambda: _attr(ngsi, meter, "busy") == 3)  # (1 + 2 + 6) / 3: the window held 1 and 2


async def test_a_rule_is_stored_before_the_answer(config: Config) -> None:
    """What a kill -9 right after the answer would leave: the rule is in the file."""
    async with serve(config) as svc:
        assert (await svc.http.post("/rules", json={**WINDOW, "name": "kept"})).status_code == 200
        store = open_store(config.store_url)
        await store.open()
        try:
            assert [(r.tenant, r.name) for r in await store.rules()] == [(TENANT, "kept")]
        finally:
            await store.close()


async def test_subscriptions_are_checked_at_start_up(config: Config, ngsi: httpx.Client) -> None:
    # every service path: no Fiware-ServicePath header
    subscriptions = httpx.Client(base_url=ngsi.base_url, headers={"Fiware-Service": TENANT})
    async with serve(config) as svc:
        created = await svc.http.post("/rules", json={**WINDOW, "name": "resubscribed"})
        lost = created.json()["data"]["subscriptionId"]
    # meanwhile: the broker lost the rule's subscription, and an orphan of ours appeared
    assert subscriptions.delete(f"/v2/subscriptions/{lost}").status_code == 204
    orphan = subscriptions.post("/v2/subscriptions", json={
        "description": MARK + "ghost", "subject": {"entities": [{"idPattern": ".*"}]},
        "notification": {"http": {"url": config.notices_url}}})
    assert orphan.status_code == 201
    orphan_id = orphan.headers["location"].rsplit("/", 1)[-1]
    async with serve(config) as svc:  # the check runs as the service starts
        async def resubscribed() -> str | None:
            rule = await svc.http.get("/rules/resubscribed")
            sub_id = rule.json()["data"]["subscriptionId"]
            return sub_id if sub_id != lost else None

        fresh = await eventually(resubscribed)

        def ids() -> set[str]:
            return {s["id"] for s in subscriptions.get("/v2/subscriptions").json()}

        await eventually(lambda: orphan_id not in ids())  # the same check, a moment later
        assert fresh in ids() and lost not in ids()
    subscriptions.close()


@pytest.mark.parametrize("kind", ["memory", "persistent"])
async def test_the_store_contract(kind: str, store_url: str) -> None:
    store = open_store(store_url if kind == "persistent" else "memory://")
    await store.open()
    try:
        await store.put_rule(StoredRule("t", "a", {"name": "a"}, True, "s1", 1.0, 1.0))
        await store.put_rule(StoredRule("t", "a", {"name": "a", "x": 1}, False, "s2", 1.0, 2.0))
        assert await store.rules() == [StoredRule("t", "a", {"name": "a", "x": 1}, False, "s2", 1.0, 2.0)]
        assert await store.load_state() is None
        await store.save_state({"version": 1, "rules": []})
        assert await store.load_state() == {"version": 1, "rules": []}
        await store.add_firings([FiringRecord("t", "a", float(i), {"i": i}, [{"ok": True}]) for i in range(5)])
        page, total = await store.firings("t", "a", 1.0, 3.0, 2, 0)
        assert total == 3 and [r.firing["i"] for r in page] == [3, 2]
        await store.prune_firings(2)
        page, total = await store.firings("t", "a", None, None, 10, 0)
        assert total == 2 and [r.firing["i"] for r in page] == [4, 3]
        await store.delete_rule("t", "a")
        assert await store.rules() == [] and (await store.firings("t", "a", None, None, 10, 0))[1] == 0
    finally:
        await store.close()


class RulesProcess(AnalyticsProcess):
    module = "analytics.rules.service"
    what = "rules service"


async def test_a_kill_loses_at_most_the_last_save_interval(tmp_path: Path, broker: Any, ngsi: httpx.Client) -> None:
    args = ["-dbURI", f"sqlite:///{tmp_path}/rules.db", "-brokerURL", broker.url, "-saveInterval", "1",
            "-logLevel", "WARNING"]
    port = free_port()
    process = RulesProcess(args, port).start()
    rules = httpx.Client(headers={"Fiware-Service": TENANT})
    try:
        rule = {**WINDOW, "name": "killed"}
        assert rules.post(process.url + "/rules", json=rule).status_code == 200
        ngsi.post("/v2/entities", json={"id": "K1", "type": "Meter", "power": {"value": 1, "type": "Number"}})
        ngsi.patch("/v2/entities/K1/attrs", json={"power": {"value": 2, "type": "Number"}})
        await asyncio.sleep(1.6)  # a snapshot was taken since
    finally:
        process.kill()
    process = RulesProcess(args, port).start()
    try:
        assert rules.get(process.url + "/rules/killed").status_code == 200
        ngsi.patch("/v2/entities/K1/attrs", json={"power": {"value": 6, "type": "Number"}})
        await eventually(lambda: _attr(ngsi, "K1", "busy") == 3)
    finally:
        process.stop()
        rules.close()
