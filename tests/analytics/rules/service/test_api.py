"""The HTTP API as Perseo's: rules CRUD, enable/disable, listings, firings, notices, errors
(400 with a message naming the field, never a 500 for bad input), subscriptions made and
removed in a real broker with the rules."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx
import pytest

from analytics.rules.service.config import Config
from analytics.rules.service.store import StoredRule, StoreError
from analytics.rules.service.store.memory import MemoryStore
from tests.conftest import free_port

from .conftest import TENANT, eventually, serve

pytestmark = pytest.mark.anyio

RULE = {"name": "cold", "condition": {"type": "Room", "q": "temperature<5"},
        "action": {"type": "update", "parameters": {"attributes": [{"name": "frost", "type": "Boolean", "value": "true"}]}}}


def _subscriptions(ngsi: httpx.Client) -> dict[str, dict[str, Any]]:
    answer = httpx.get(ngsi.base_url.join("/v2/subscriptions"), headers={"Fiware-Service": TENANT})
    return {s["id"]: s for s in answer.json()}


async def test_version(config: Config) -> None:
    async with serve(config) as svc:
        answer = await svc.http.get("/version")
        assert answer.status_code == 200
        assert answer.json()["error"] is None and answer.json()["data"]["name"] == "waziup-rules"


async def test_a_rule_lives_with_its_subscription(config: Config, ngsi: httpx.Client) -> None:
    async with serve(config) as svc:
        created = await svc.http.post("/rules", json=RULE)
        assert created.status_code == 200 and created.json()["error"] is None
        data = created.json()["data"]
        assert data["name"] == "cold" and data["enabled"] is True and data["service"] == TENANT
        sub = _subscriptions(ngsi)[data["subscriptionId"]]
        assert sub["description"] == "waziup-rules cold"
        assert sub["notification"]["http"]["url"] == config.notices_url
        assert sub["subject"]["condition"]["attrs"] == ["temperature"]

        got = await svc.http.get("/rules/cold")
        assert got.json()["data"]["condition"] == RULE["condition"]
        listed = await svc.http.get("/rules", params={"options": "count"})
        assert [r["name"] for r in listed.json()["data"]] == ["cold"] and listed.headers["fiware-total-count"] == "1"
        # another tenant does not see it
        other = await svc.http.get("/rules", headers={"Fiware-Service": "elsewhere"})
        assert other.json()["data"] == []

        disabled = await svc.http.post("/rules/cold/disable")
        assert disabled.json()["data"]["enabled"] is False
        assert _subscriptions(ngsi)[data["subscriptionId"]]["status"] == "inactive"
        assert svc.service.engine.get_rule(TENANT, "cold") is None
        enabled = await svc.http.post("/rules/cold/enable")
        assert enabled.json()["data"]["enabled"] is True
        assert _subscriptions(ngsi)[data["subscriptionId"]]["status"] == "active"

        replaced = await svc.http.put("/rules/cold", json={**RULE, "condition": {"type": "Fridge", "q": "t<5"}})
        assert replaced.status_code == 200
        new_sub = replaced.json()["data"]["subscriptionId"]
        subs = _subscriptions(ngsi)
        assert new_sub != data["subscriptionId"] and data["subscriptionId"] not in subs
        assert subs[new_sub]["subject"]["entities"] == [{"idPattern": ".*", "type": "Fridge"}]

        deleted = await svc.http.delete("/rules/cold")
        assert deleted.status_code == 200 and deleted.json() == {"error": None, "data": None}
        assert new_sub not in _subscriptions(ngsi)
        assert (await svc.http.get("/rules/cold")).status_code == 404


async def test_listings_page_as_perseo(config: Config) -> None:
    async with serve(config) as svc:
        for i in range(5):
            doc = {**RULE, "name": f"r{i}"}
            assert (await svc.http.post("/rules", json=doc, headers={"Fiware-Service": "paging"})).status_code == 200
        page = await svc.http.get("/rules", params={"limit": 2, "offset": 1, "options": "count"},
                                  headers={"Fiware-Service": "paging"})
        assert [r["name"] for r in page.json()["data"]] == ["r1", "r2"]
        assert page.headers["fiware-total-count"] == "5"
        bad = await svc.http.get("/rules", params={"limit": "0"})
        assert bad.status_code == 400 and "limit" in bad.json()["error"]


@pytest.mark.parametrize(("doc", "message"), [
    ({"condition": {"type": "Room"}, "action": RULE["action"]}, "'name' is a required property"),
    ({**RULE, "name": "bad name!"}, "name"),
    ({**RULE, "condition": {"type": "Room", "q": "temperature>>"}}, "condition/q"),
    ({**RULE, "condition": {"id": "a", "idPattern": "b"}}, "give id or idPattern"),
    ({**RULE, "action": {"type": "post", "parameters": {}}}, "action/parameters"),
    ({**RULE, "action": {"type": "sms", "parameters": {}}}, "action"),
    ({**RULE, "surprise": 1}, "surprise"),
    ({"name": "no_action", "condition": {}}, "a rule needs an action"),
    ([1, 2], "(document)"),
])
async def test_bad_rule_documents_get_400_naming_the_field(config: Config, doc: Any, message: str) -> None:
    async with serve(config) as svc:
        answer = await svc.http.post("/rules", json=doc)
        assert answer.status_code == 400, answer.text
        assert answer.json()["data"] is None and message in answer.json()["error"]


async def test_bad_requests_get_perseo_errors(config: Config) -> None:
    async with serve(config) as svc:
        http = svc.http
        cases = [
            (await http.post("/rules", content=b"{not json"), 400, "not valid JSON"),
            (await http.post("/rules", content=b""), 400, "no body"),
            (await http.post("/rules", json=RULE, headers={"Fiware-Service": "bad-tenant!"}), 400, "Fiware-Service"),
            (await http.get("/rules/missing"), 404, "not found"),
            (await http.delete("/rules/missing"), 404, "not found"),
            (await http.put("/rules/missing", json={**RULE, "name": "missing"}), 404, "not found"),
            (await http.get("/rules/missing/firings"), 404, "not found"),
            (await http.patch("/rules/x", json={}), 405, "Method Not Allowed"),
            (await http.get("/nothing"), 404, "Not Found"),
            (await http.post("/notices", content=b"[]"), 400, "data array"),
            (await http.post("/notices", content=b"nope"), 400, "not valid JSON"),
            (await http.post("/notices", json={"data": [{"id": "a"}]}), 400, "data[0]"),
            (await http.post("/notices", json={"data": [{"id": "a", "type": "T"}]},
                             headers={"Fiware-ServicePath": "nope"}), 400, "Fiware-ServicePath"),
        ]
        assert (await http.post("/rules", json=RULE)).status_code == 200
        cases += [
            (await http.post("/rules", json=RULE), 400, "exists"),
            (await http.put("/rules/cold", json={**RULE, "name": "other"}), 400, "name"),
            (await http.get("/rules/cold/firings", params={"fromDate": "yesterday"}), 400, "fromDate"),
        ]
        for answer, status, text in cases:
            assert answer.status_code == status, (answer.request.url, answer.text)
            body = answer.json()
            assert body["data"] is None and text in body["error"], body


async def test_firings_are_kept_and_queryable_by_time(config: Config, ngsi: httpx.Client) -> None:
    async with serve(config) as svc:
        rule = {**RULE, "name": "freezer", "condition": {"type": "Freezer", "q": "t>-10"}}
        assert (await svc.http.post("/rules", json=rule)).status_code == 200
        for i in range(3):
            ngsi.post("/v2/entities", json={"id": f"F{i}", "type": "Freezer", "t": {"value": 0, "type": "Number"}})
            await asyncio.sleep(0.05)  # apart by more than the answer's millisecond

        async def three() -> Any:
            answer = await svc.http.get("/rules/freezer/firings", params={"options": "count"})
            return answer if answer.headers["fiware-total-count"] == "3" else None

        answer = await eventually(three)
        records = answer.json()["data"]
        assert [r["entity"]["id"] for r in records] == ["F2", "F1", "F0"]  # most recent first
        assert records[0]["reason"] == "match" and records[0]["actions"][0]["type"] == "update"
        middle = records[1]["time"]
        since = await svc.http.get("/rules/freezer/firings", params={"fromDate": middle})
        assert [r["entity"]["id"] for r in since.json()["data"]] == ["F2", "F1"]
        until = await svc.http.get("/rules/freezer/firings", params={"toDate": middle, "limit": 1})
        assert [r["entity"]["id"] for r in until.json()["data"]] == ["F1"]


async def test_a_notice_from_a_subscription_no_rule_owns_is_ignored(config: Config) -> None:
    async with serve(config) as svc:
        assert (await svc.http.post("/rules", json=RULE)).status_code == 200
        notice = {"subscriptionId": "000000000000000000000000",
                  "data": [{"id": "R", "type": "Room", "temperature": {"value": 1, "type": "Number"}}]}
        answer = await svc.http.post("/notices", json=notice)
        assert answer.status_code == 200 and answer.json()["data"] == {"firings": 0}
        own = svc.service.rules[(TENANT, "cold")].subscription
        answer = await svc.http.post("/notices", json={**notice, "subscriptionId": own})
        assert answer.json()["data"] == {"firings": 1}


async def test_a_rule_made_while_the_broker_is_away_gets_its_subscription_later(config: Config) -> None:
    away = replace(config, broker_url=f"http://127.0.0.1:{free_port()}", action_timeout=1)
    async with serve(away) as svc:
        created = await svc.http.post("/rules", json=RULE)
        assert created.status_code == 200 and created.json()["data"]["subscriptionId"] is None
    async with serve(config) as svc:  # the broker is back: the start-up check makes it
        await eventually(lambda: svc.service.rules[(TENANT, "cold")].subscription)


JUNK = [b"", b"null", b"1", b'"x"', b"[]", b"{}", b'{"name": null}', b'{"name": "x", "action": []}',
        b'{"name": "x", "action": {"type": "update", "parameters": {"attributes": "no"}}}',
        b'{"name": "x", "condition": {"q": "\\u0000"}, "action": {"type": "email", "parameters": {"to": 1}}}',
        b'{"name": "x", "condition": {"idPattern": "(("}, "action": {"type": "post", "parameters": {"url": "x"}}}',
        b'{"name": "x", "interval": "1e999", "action": {"type": "post", "parameters": {"url": "http://a"}}}',
        b'{"data": [{"id": "a", "type": "T", "t": {"value": 123456789012345678901234567890}}]}',
        b'{"data": null}', b'{"data": [[]]}', b"\xff\xfe", b'{"data": [], "subscriptionId": 5}']


async def test_junk_never_gets_a_500(config: Config) -> None:
    async with serve(config) as svc:
        for body in JUNK:
            for method, path in (("POST", "/rules"), ("PUT", "/rules/x"), ("POST", "/notices")):
                answer = await svc.http.request(method, path, content=body)
                assert answer.status_code < 500, (method, path, body, answer.text)
                assert "error" in answer.json()
        for params in ({"limit": "²"}, {"offset": "-1"}, {"limit": "9" * 50}, {"options": "count,x"}):
            assert (await svc.http.get("/rules", params=params)).status_code in (200, 400)


class BrokenStore(MemoryStore):
    async def put_rule(self, rule: StoredRule) -> None:
        raise StoreError("disk on fire")


async def test_a_rule_the_store_refuses_leaves_nothing_behind(config: Config, ngsi: httpx.Client) -> None:
    async with serve(config, store=BrokenStore()) as svc:
        answer = await svc.http.post("/rules", json={**RULE, "name": "unwritten"})
        assert answer.status_code == 503 and answer.json() == {"error": "the rules database is not available",
                                                               "data": None}
        assert (await svc.http.get("/rules/unwritten")).status_code == 404
        assert not [s for s in _subscriptions(ngsi).values() if s["description"].endswith(" unwritten")]
