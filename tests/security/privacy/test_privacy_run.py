"""Issue 18's privacy "done when", on ``waziup run -auth`` as a user runs it.

alice's privacy policy (made by the administrator through the identity manager's
``/v1/privacy/policies``) drops a meter's ``serial``, generalizes its ``location`` to a
5-character geohash and its times to the hour, and pseudonymizes its id. Her
subscriptions' notifications (HTTP to a receiver of hers, MQTT to a Mosquitto of hers),
her reads, her history queries and her CSV export all show those transforms, also
through the dashboard's forwarding; bob, with no
policy, sees the raw data everywhere. carol may have only hourly averages of ``power``,
noised, from a budget of epsilon 1 a day at 0.5 a query: the third query is refused.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.broker.conftest import MqttListener
from tests.conftest import Mosquitto, free_port, stop_process
from tests.run_platform import start_run
from tests.security.privacy.receiver import Receiver

ADMIN_PASSWORD = "Adm1n-pass-for-privacy"
TENANT = {"Fiware-Service": "coop", "Fiware-ServicePath": "/"}
PSEUDONYM = re.compile(r"^pz:[a-z2-7]{24}$")
NAMES = ("port", "northPort", "httpPort", "mqttPort", "idmPort", "historyPort", "rulesPort", "dashboardPort",
         "apiPort", "apiMqttPort", "appsPort")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("privacy")
    ports = {name: free_port() for name in NAMES}
    options = ["-auth", "-host", "127.0.0.1", "-data", str(data)]
    for name, port in ports.items():
        options += [f"-{name}", str(port)]
    options += ["--", "-notifAllowedHosts", "127.0.0.1", "-notifAllowedHosts", "mqtt://127.0.0.1"]  # the users' own
    proc, _ = start_run(options, data, {"WAZIUP_ADMIN_PASSWORD": ADMIN_PASSWORD}, seconds=60)
    try:
        yield {**{n: f"http://127.0.0.1:{p}" for n, p in ports.items()}, "data": data}
    finally:
        stop_process(proc, timeout=20)


@pytest.fixture(scope="module")
def people(platform: dict[str, Any]) -> dict[str, Any]:
    """alice, bob and carol may read and subscribe in tenant coop; alice and carol have policies."""
    state = json.loads((platform["data"] / "platform-auth.json").read_text())
    with httpx.Client(base_url=platform["idmPort"], timeout=10) as idm:
        login = idm.post("/v1/auth/tokens", json={"name": "admin@localhost", "password": ADMIN_PASSWORD})
        h = {"X-Auth-Token": login.headers["X-Subject-Token"]}
        base = f"/v1/applications/{state['app_id']}"
        role = idm.post(f"{base}/roles", headers=h, json={"role": {"name": "coop-reader"}}).json()["role"]
        permission = idm.post(f"{base}/permissions", headers=h, json={"permission": {
            "name": "read coop", "action": "NGSI", "resource": "ngsi",
            "ngsi": {"id": "read-coop", "actions": ["read", "subscribe"], "tenant": "coop"}}}).json()["permission"]
        assert idm.put(f"{base}/roles/{role['id']}/permissions/{permission['id']}", headers=h).status_code < 300
        users = {}
        for name in ("alice", "bob", "carol"):
            users[name] = idm.post("/v1/users", headers=h, json={"user": {
                "username": name, "email": f"{name}@test.com", "password": f"{name}-pass-1234"}}).json()["user"]
            assert idm.put(f"{base}/users/{users[name]['id']}/roles/{role['id']}", headers=h).status_code < 300
        policies = [
            {"id": "alice-meters", "consumer": {"kind": "user", "id": users["alice"]["id"]}, "tenant": "coop",
             "entityType": "Meter",
             "attributes": {"serial": [{"transform": "drop"}], "location": [{"transform": "generalize", "geohash": 5}],
                            "TimeInstant": [{"transform": "generalize", "period": "PT1H"}]},
             "idTransform": {"transform": "pseudonymize"}},
            {"id": "carol-averages", "consumer": {"kind": "user", "id": users["carol"]["id"]}, "tenant": "coop",
             "entityType": "Meter",
             "attributes": {"power": [{"transform": "noise", "epsilon": 0.5, "sensitivity": 3000}],
                            "*": [{"transform": "drop"}]},
             "idTransform": {"transform": "pseudonymize"},
             "aggregation": {"methods": ["avg"], "period": "hour"}, "budget": {"epsilon": 1.0, "period": "P1D"}},
        ]
        for policy in policies:
            made = idm.post("/v1/privacy/policies", headers=h, json=policy)
            assert made.status_code == 201, made.text

        def token(name: str) -> str:
            answer = idm.post("/oauth2/token", auth=(state["app_id"], state["app_secret"]), data={
                "grant_type": "password", "username": f"{name}@test.com", "password": f"{name}-pass-1234"})
            assert answer.status_code == 200, answer.text
            return str(answer.json()["access_token"])

        admin = idm.post("/oauth2/token", auth=(state["app_id"], state["app_secret"]), data={
            "grant_type": "password", "username": "admin@localhost", "password": ADMIN_PASSWORD}).json()["access_token"]
        return {"admin": admin, "keyrock": h, **{name: token(name) for name in users}}


def bearer(token: str) -> dict[str, str]:
    return {**TENANT, "Authorization": f"Bearer {token}"}


def until(what: str, check: Callable[[], Any], seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


METER = {"id": "M1", "type": "Meter", "power": {"type": "Number", "value": 800},
         "serial": {"type": "Text", "value": "SN-4471"},
         "location": {"type": "geo:point", "value": "5.30123,4.00311"},
         "TimeInstant": {"type": "DateTime", "value": "2026-12-04T10:41:27.000Z"}}


def test_notifications_history_and_exports_per_consumer(platform: dict[str, Any], people: dict[str, Any],
                                                        mosquitto: Mosquitto) -> None:
    broker, history = platform["port"], platform["historyPort"]
    # a policy applies within the services' -policyPoll (1 s) of its creation: wait for it
    seed = httpx.post(broker + "/v2/entities?options=keyValues", headers=bearer(people["admin"]),
                      json={"id": "M0", "type": "Meter", "power": 1})
    assert seed.status_code == 201, seed.text
    until("alice's policy at the broker", lambda: httpx.get(
        broker + "/v2/entities?type=Meter&options=keyValues", headers=bearer(people["alice"])).json()[0]["id"] != "M0")
    receiver = Receiver()
    mqtt = MqttListener(mosquitto.host, mosquitto.port, "coop/#", 1)
    try:
        for name in ("alice", "bob"):
            for notification in ({"http": {"url": f"{receiver.url}/{name}"}},
                                 {"mqtt": {"url": f"mqtt://{mosquitto.host}:{mosquitto.port}", "topic": f"coop/{name}",
                                           "qos": 1}}):
                made = httpx.post(broker + "/v2/subscriptions", headers=bearer(people[name]), json={
                    "subject": {"entities": [{"idPattern": ".*", "type": "Meter"}]}, "notification": notification})
                assert made.status_code == 201, made.text
        written = httpx.post(broker + "/v2/entities", headers=bearer(people["admin"]), json=METER)
        assert written.status_code == 201, written.text
        receiver.wait(2)
        mqtt_bodies = {topic: json.loads(payload) for topic, payload, _, _ in (mqtt.next(10), mqtt.next(10))}
    finally:
        mqtt.close()
        receiver.close()

    alice_http, bob_http = receiver.json_of("/alice")[0]["data"][0], receiver.json_of("/bob")[0]["data"][0]
    for alice in (alice_http, mqtt_bodies["coop/alice"]["data"][0]):
        assert PSEUDONYM.match(alice["id"]) and "serial" not in alice
        assert alice["location"]["value"] == "5.2954102,4.0209961"  # the centre of geohash s0bf4... cell
        assert alice["TimeInstant"]["value"] == "2026-12-04T10:00:00.000Z" and alice["power"]["value"] == 800
    for bob in (bob_http, mqtt_bodies["coop/bob"]["data"][0]):
        assert bob["id"] == "M1" and bob["serial"]["value"] == "SN-4471" and bob["location"]["value"] == "5.30123,4.00311"
    pseudonym = alice_http["id"]

    # reads: the same release
    mine = httpx.get(broker + "/v2/entities?id=M1&options=keyValues", headers=bearer(people["alice"])).json()
    assert mine == [{"id": pseudonym, "type": "Meter", "power": 800, "location": "5.2954102,4.0209961",
                     "TimeInstant": "2026-12-04T10:00:00.000Z"}]

    # the dashboard's calls go through the same guards with the caller's token
    shown = httpx.get(platform["dashboardPort"] + "/api/broker/v2/entities?id=M1&options=keyValues",
                      headers=bearer(people["alice"]))
    assert shown.status_code == 200 and shown.json() == mine, shown.text

    # the history: the same transforms in JSON and in CSV; bob's raw
    until("the history of M1", lambda: httpx.get(history + "/v2/entities/M1", headers=bearer(people["admin"])).status_code == 200)
    until("alice's policy at the history", lambda: "M1" not in httpx.get(
        history + "/v2/types/Meter", headers=bearer(people["alice"])).text)
    answer = httpx.get(history + "/v2/types/Meter?id=M1", headers=bearer(people["alice"]))
    assert answer.status_code == 200, answer.text
    entity = answer.json()["values"][0] if "values" in answer.json() else answer.json()["entities"][0]
    assert entity["entityId"] == pseudonym
    names = {a["attrName"] for a in entity["attributes"]}
    assert "serial" not in names and "location" in names
    location = next(a for a in entity["attributes"] if a["attrName"] == "location")
    assert location["values"] == ["5.2954102,4.0209961"]
    assert all(t.startswith("2026-12-04T10:00:00") or t.endswith(":00:00.000+00:00") for t in entity["index"])
    through_dashboard = httpx.get(platform["dashboardPort"] + "/api/history/v2/types/Meter?id=M1",
                                  headers=bearer(people["alice"]))
    assert through_dashboard.status_code == 200 and "M1" not in through_dashboard.text
    assert pseudonym in through_dashboard.text and "SN-4471" not in through_dashboard.text
    exported = httpx.get(history + "/v2/types/Meter?id=M1", headers={**bearer(people["alice"]), "Accept": "text/csv"})
    assert exported.status_code == 200, exported.text
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert rows and {r["entityId"] for r in rows} == {pseudonym}
    assert "serial" not in {r["attrName"] for r in rows} and "SN-4471" not in exported.text
    assert {r["value"] for r in rows if r["attrName"] == "location"} == {"5.2954102,4.0209961"}
    raw = httpx.get(history + "/v2/types/Meter", headers={**bearer(people["bob"]), "Accept": "text/csv"})
    assert "SN-4471" in raw.text and "M1" in raw.text and "5.30123,4.00311" in raw.text
    # both exports are in the audit trail, with who asked
    alice_id, bob_id = _user_id(platform, people, "alice"), _user_id(platform, people, "bob")

    def exports() -> set[str]:
        found = httpx.get(platform["idmPort"] + "/audit", headers=people["keyrock"], params={"action": "export"})
        return {r["details"].get("user", "") for r in found.json() if r["target"] == "history /v2/types/Meter"}

    until("both exports audited", lambda: {alice_id, bob_id} <= exports())


def test_a_noised_aggregate_spends_the_budget_then_is_refused(platform: dict[str, Any], people: dict[str, Any]) -> None:
    broker, history = platform["port"], platform["historyPort"]
    written = httpx.post(broker + "/v2/entities?options=upsert", headers=bearer(people["admin"]),
                         json={"id": "M2", "type": "Meter", "power": {"type": "Number", "value": 1200}})
    assert written.status_code in (201, 204), written.text
    until("the history of M2", lambda: httpx.get(history + "/v2/entities/M2", headers=bearer(people["admin"])).status_code == 200)
    carol = bearer(people["carol"])
    raw = httpx.get(history + "/v2/types/Meter/attrs/power", headers=carol)
    assert raw.status_code == 403 and "aggregates only" in raw.json()["description"]
    query = "/v2/types/Meter/attrs/power?aggrMethod=avg&aggrPeriod=hour"
    for _ in range(2):
        answer = httpx.get(history + query, headers=carol)
        assert answer.status_code == 200, answer.text
        assert "1200" not in answer.text  # noised (Laplace of scale 6000: never exactly the value)
    refused = httpx.get(history + query, headers=carol)
    assert refused.status_code == 403 and "budget" in refused.json()["description"]
    # the budget is the identity manager's: its ledger says so, and the refusal is audited
    spent = httpx.get(platform["idmPort"] + "/v1/privacy/budget", headers=people["keyrock"],
                      params={"consumer": f"user:{_user_id(platform, people, 'carol')}", "policy": "carol-averages"})
    assert spent.status_code == 200 and spent.json()["remaining"] == pytest.approx(0.0)
    audit = httpx.get(platform["idmPort"] + "/audit", headers=people["keyrock"], params={"action": "privacy.budget.refused"})
    assert audit.status_code == 200 and audit.json()


def _user_id(platform: dict[str, Any], people: dict[str, Any], name: str) -> str:
    users = httpx.get(platform["idmPort"] + "/v1/users", headers=people["keyrock"]).json()["users"]
    return str(next(u["id"] for u in users if u["username"] == name))


def test_a_denied_request_is_in_the_audit_trail(platform: dict[str, Any], people: dict[str, Any]) -> None:
    """The broker's PEP records what it denies (WAZIUP_PEP_AUDIT, set by waziup run -auth)."""
    denied = httpx.get(platform["port"] + "/v2/entities", headers={**bearer(people["bob"]), "Fiware-Service": "other"})
    assert denied.status_code == 403
    bob = _user_id(platform, people, "bob")

    def recorded() -> list[dict[str, Any]]:
        found = httpx.get(platform["idmPort"] + "/audit", headers=people["keyrock"], params={"action": "request.denied"})
        return [r for r in found.json() if r.get("tenant") == "other" and bob in json.dumps(r)]

    record = until("the denial in the audit trail", recorded)[0]
    assert record["target"] == "broker GET /v2/entities" and record["decision"] == "deny"
    verified = httpx.get(platform["idmPort"] + "/audit/verify", headers=people["keyrock"]).json()
    assert verified["ok"] is True

