"""``waziup run -auth``: the whole platform behind the identity manager and the PEP.

As a FIWARE user would with Keyrock and Wilma: the administrator creates an application,
a role with an NGSI policy and users through Keyrock's ``/v1`` API, a user gets a token
with the password grant, and:

* ``GET /v2/entities`` without a token answers 401 (Wilma's body, ``WWW-Authenticate``),
  with the token of a user holding the role 200, with another user's 403;
* ``GET /user?access_token=`` answers Keyrock's shape;
* the IoT agent's provisioning API takes the same tokens, and the agent itself reaches the
  broker with its own service account (a measure becomes an entity);
* a command reaches the agent through the broker, with the caller's token forwarded;
* the history service is behind the same PEP: anonymous queries get Wilma's 401, a user
  reads the history of the tenants its policies grant and no other, and the broker's
  change feed delivers every update with its own service account's token;
* the rules service is behind the same PEP: a rule is refused without a token and to a
  reader, accepted with the administrator's, and fires: its update reaches the broker with
  the rules service's own account, fed by notifications the PEP of ``/notices`` admits;
* the dashboard signs a user in through the identity manager's sign-in page (authorization
  code with PKCE), offers the tenants the user may read, calls the broker and feeds the page
  live with the user's token, and signs out.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, line_within, stop_process
from tests.run_platform import start_run

ADMIN_PASSWORD = "Adm1n-pass-for-tests"
TENANT = {"Fiware-Service": "coop", "Fiware-ServicePath": "/"}


class Platform:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.ports = {name: free_port() for name in ("port", "northPort", "httpPort", "mqttPort", "idmPort", "historyPort",
                                                     "rulesPort", "dashboardPort", "apiPort", "apiMqttPort", "appsPort")}
        self.broker = f"http://127.0.0.1:{self.ports['port']}"
        self.north = f"http://127.0.0.1:{self.ports['northPort']}"
        self.south = f"http://127.0.0.1:{self.ports['httpPort']}"
        self.idm = f"http://127.0.0.1:{self.ports['idmPort']}"
        self.history = f"http://127.0.0.1:{self.ports['historyPort']}"
        self.rules = f"http://127.0.0.1:{self.ports['rulesPort']}"
        self.dashboard = f"http://localhost:{self.ports['dashboardPort']}"  # as browsers reach it
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Platform:
        options = ["-auth", "-host", "127.0.0.1", "-data", str(self.data)]
        for name, port in self.ports.items():
            options += [f"-{name}", str(port)]
        options += ["--", "-notifAllowedHosts", "127.0.0.1"]  # the test's receiver
        self.proc, _ = start_run(options, self.data, {"WAZIUP_ADMIN_PASSWORD": ADMIN_PASSWORD}, seconds=60)
        return self

    def stop(self) -> None:
        stop_process(self.proc, timeout=20)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    running = Platform(tmp_path_factory.mktemp("auth")).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def keyrock(platform: Platform) -> Iterator[dict[str, Any]]:
    """An application with a role ``reader`` (NGSI: read tenant coop), alice holding it, bob not."""
    with httpx.Client(base_url=platform.idm, timeout=10) as idm:
        login = idm.post("/v1/auth/tokens", json={"name": "admin@localhost", "password": ADMIN_PASSWORD})
        assert login.status_code == 201
        h = {"X-Auth-Token": login.headers["X-Subject-Token"]}
        app = idm.post("/v1/applications", headers=h, json={"application": {
            "name": "farm", "redirect_uri": "http://farm.test/cb", "url": "http://farm.test", "grant_type": ["password"],
        }}).json()["application"]
        base = f"/v1/applications/{app['id']}"
        role = idm.post(f"{base}/roles", headers=h, json={"role": {"name": "reader"}}).json()["role"]
        permission = idm.post(f"{base}/permissions", headers=h, json={"permission": {
            "name": "read coop", "action": "NGSI", "resource": "ngsi",
            "ngsi": {"id": "read-coop", "actions": ["read"], "tenant": "coop"},
        }}).json()["permission"]
        assert idm.put(f"{base}/roles/{role['id']}/permissions/{permission['id']}", headers=h).status_code in (200, 201, 204)
        # carol may read and subscribe to Fields, but not see their owner
        field_role = idm.post(f"{base}/roles", headers=h, json={"role": {"name": "field-reader"}}).json()["role"]
        fields = idm.post(f"{base}/permissions", headers=h, json={"permission": {
            "name": "fields but their owner", "action": "NGSI", "resource": "ngsi",
            "ngsi": {"id": "fields", "actions": ["read", "subscribe"], "tenant": "coop",
                     "entities": {"types": ["Field"]}, "attrs": {"deny": ["owner"]}},
        }}).json()["permission"]
        assert idm.put(f"{base}/roles/{field_role['id']}/permissions/{fields['id']}", headers=h).status_code in (200, 201, 204)
        users = {}
        for name in ("alice", "bob", "carol"):
            users[name] = idm.post("/v1/users", headers=h, json={"user": {
                "username": name, "email": f"{name}@test.com", "password": f"{name}-pass-1234",
            }}).json()["user"]
        assert idm.put(f"{base}/users/{users['alice']['id']}/roles/{role['id']}", headers=h).status_code in (200, 201, 204)
        assert idm.put(f"{base}/users/{users['carol']['id']}/roles/{field_role['id']}", headers=h).status_code in (200, 201, 204)

        def token(name: str) -> str:
            answer = idm.post("/oauth2/token", auth=(app["id"], app["secret"]), data={
                "grant_type": "password", "username": f"{name}@test.com", "password": f"{name}-pass-1234",
            })
            assert answer.status_code == 200, answer.text
            return str(answer.json()["access_token"])

        yield {"app": app, "alice": token("alice"), "bob": token("bob"), "carol": token("carol")}


def bearer(token: str) -> dict[str, str]:
    return {**TENANT, "Authorization": f"Bearer {token}"}


def test_the_broker_takes_only_tokens_and_decides(platform: Platform, keyrock: dict[str, Any]) -> None:
    refused = httpx.get(platform.broker + "/v2/entities", headers=TENANT)
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert refused.json()["type"] == "urn:dx:as:MissingAuthenticationToken"
    assert httpx.get(platform.broker + "/v2/entities", headers=bearer(keyrock["alice"])).status_code == 200
    denied = httpx.get(platform.broker + "/v2/entities", headers=bearer(keyrock["bob"]))
    assert denied.status_code == 403 and denied.json()["type"] == "urn:dx:as:InvalidRole"
    write = httpx.post(platform.broker + "/v2/entities", headers=bearer(keyrock["alice"]), json={"id": "x", "type": "T"})
    assert write.status_code == 403  # alice may read, not create
    assert httpx.get(platform.broker + "/version").status_code == 200  # public


def test_user_answers_keyrocks_shape(platform: Platform, keyrock: dict[str, Any]) -> None:
    user = httpx.get(platform.idm + "/user", params={"access_token": keyrock["alice"]}).json()
    assert user["username"] == "alice" and user["email"] == "alice@test.com"
    assert user["app_id"] == keyrock["app"]["id"] and user["roles"][0]["name"] == "reader"
    assert {"id", "displayName", "organizations", "authorization_decision", "isGravatarEnabled"} <= set(user)
    assert httpx.get(platform.idm + "/user", params={"access_token": "nope"}).status_code == 401


def test_the_agent_behind_the_pep_and_its_own_account(platform: Platform) -> None:
    state = json.loads((platform.data / "platform-auth.json").read_text())
    assert oct((platform.data / "platform-auth.json").stat().st_mode & 0o777) == "0o600"
    admin = httpx.post(platform.idm + "/oauth2/token", auth=(state["app_id"], state["app_secret"]), data={
        "grant_type": "password", "username": "admin@localhost", "password": ADMIN_PASSWORD,
    }).json()["access_token"]
    group = {"apikey": "k1", "resource": "/iot/d", "entity_type": "Thing",
             "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}]}
    assert httpx.post(platform.north + "/iot/groups", headers=TENANT, json={"groups": [group]}).status_code == 401
    created = httpx.post(platform.north + "/iot/groups", headers=bearer(admin), json={"groups": [group]})
    assert created.status_code == 201
    assert httpx.get(platform.south + "/iot/d", params={"i": "d1", "k": "k1", "d": "t|21"}).status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the agent wrote it with its service account's token
        entity = httpx.get(platform.broker + "/v2/entities/Thing:d1?options=keyValues", headers=bearer(admin))
        if entity.status_code == 200:
            break
        time.sleep(0.1)
    assert entity.json() == {"id": "Thing:d1", "type": "Thing", "temperature": 21}
    # a command: the broker forwards it to the agent with the caller's token
    device = {"device_id": "r1", "apikey": "k1", "entity_type": "Robot", "commands": [{"name": "ring", "type": "command"}]}
    assert httpx.post(platform.north + "/iot/devices", headers=bearer(admin), json={"devices": [device]}).status_code == 201
    deadline = time.monotonic() + 10
    while httpx.get(platform.broker + "/v2/registrations", headers=bearer(admin)).json() == [] and time.monotonic() < deadline:
        time.sleep(0.1)
    # ?type: a registration with a type matches an update that names it (context_providers.md)
    ring = httpx.patch(platform.broker + "/v2/entities/Robot:r1/attrs?type=Robot", headers=bearer(admin),
                       json={"ring": {"type": "command", "value": "x"}})
    assert ring.status_code == 204
    robot = httpx.get(platform.broker + "/v2/entities/Robot:r1?options=keyValues", headers=bearer(admin)).json()
    assert robot["ring_status"] == "PENDING"


def admin_token(platform: Platform) -> str:
    state = json.loads((platform.data / "platform-auth.json").read_text())
    return str(httpx.post(platform.idm + "/oauth2/token", auth=(state["app_id"], state["app_secret"]), data={
        "grant_type": "password", "username": "admin@localhost", "password": ADMIN_PASSWORD,
    }).json()["access_token"])


def test_a_subscription_notifies_only_what_its_creator_may_read(platform: Platform, keyrock: dict[str, Any]) -> None:
    """carol may read Fields but not their owner: her subscription's notifications never carry it."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        body = {"subject": {"entities": [{"idPattern": ".*", "type": "Field"}]},
                "notification": {"http": {"url": f"http://127.0.0.1:{server.server_address[1]}/n"}}}
        created = httpx.post(platform.broker + "/v2/subscriptions", headers=bearer(keyrock["carol"]), json=body)
        assert created.status_code == 201, created.text
        admin = bearer(admin_token(platform))
        field = {"id": "F1", "type": "Field", "crop": "wheat", "owner": "alice"}
        assert httpx.post(platform.broker + "/v2/entities?options=keyValues", headers=admin, json=field).status_code == 201
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received, "no notification"
        notified = received[0]["data"][0]
        assert notified["id"] == "F1" and notified["crop"]["value"] == "wheat" and "owner" not in notified
        # and what she reads herself: the same projection
        read = httpx.get(platform.broker + "/v2/entities/F1?type=Field&options=keyValues", headers=bearer(keyrock["carol"]))
        assert read.json() == {"id": "F1", "type": "Field", "crop": "wheat"}
    finally:
        server.shutdown()


def test_the_history_behind_the_pep_fed_by_the_brokers_account(platform: Platform, keyrock: dict[str, Any]) -> None:
    """alice may read tenant coop (not other): so in the history too; the feed's token is the broker's own."""
    refused = httpx.get(platform.history + "/v2/entities", headers=TENANT)
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert set(refused.json()) == {"type", "title", "detail"}  # Wilma's shape
    assert refused.json()["type"] == "urn:dx:as:MissingAuthenticationToken"
    assert httpx.get(platform.history + "/version").status_code == 200  # public, as /health
    admin = admin_token(platform)
    for tenant in ("coop", "other"):
        meter = {"id": "M1", "type": "Meter", "kwh": 7}
        written = httpx.post(platform.broker + "/v2/entities?options=keyValues", json=meter,
                             headers={"Fiware-Service": tenant, "Authorization": f"Bearer {admin}"})
        assert written.status_code == 201, written.text
    deadline = time.monotonic() + 30
    stored: dict[str, httpx.Response] = {}
    while len(stored) < 2 and time.monotonic() < deadline:  # the feed delivers asynchronously
        for tenant in ("coop", "other"):
            answer = httpx.get(platform.history + "/v2/entities/M1/attrs/kwh/value",
                               headers={"Fiware-Service": tenant, "Authorization": f"Bearer {admin}"})
            if answer.status_code == 200:
                stored[tenant] = answer
        time.sleep(0.1)
    assert {t: a.json()["values"] for t, a in stored.items()} == {"coop": [7], "other": [7]}, (
        (platform.data / "run.log").read_text()[-3000:])
    mine = httpx.get(platform.history + "/v2/entities/M1/attrs/kwh/value", headers=bearer(keyrock["alice"]))
    assert mine.status_code == 200 and mine.json()["values"] == [7]
    other = httpx.get(platform.history + "/v2/entities/M1/attrs/kwh/value",
                      headers={"Fiware-Service": "other", "Authorization": f"Bearer {keyrock['alice']}"})
    assert other.status_code == 403 and other.json()["type"] == "urn:dx:as:InvalidRole"
    assert httpx.get(platform.history + "/v2/entities", headers=bearer(keyrock["bob"])).status_code == 403
    # alice may not feed the history: appends need create and update
    notification = {"subscriptionId": "x", "data": [{"id": "M1", "type": "Meter", "kwh": 9}]}
    assert httpx.post(platform.history + "/v2/notify", json=notification,
                      headers=bearer(keyrock["alice"])).status_code == 403
    state = json.loads((platform.data / "platform-auth.json").read_text())
    logged = (platform.data / "run.log").read_text()
    assert state["feed_password"] not in logged and state["app_secret"] not in logged


def test_the_waziup_api_behind_the_pep_with_its_own_account(platform: Platform, keyrock: dict[str, Any]) -> None:
    """The WAZIUP API (docs/waziup-api.md) under -auth: WAZIUP tokens are the identity
    manager's, its devices reach the broker and its datapoints the history, both behind their
    PEP, with the service account ``waziup-api``; the broker's feed leaves its tenant out."""
    api = f"http://127.0.0.1:{platform.ports['apiPort']}/api/v2"
    token = httpx.post(api + "/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert token.status_code == 200 and token.headers["content-type"].startswith("text/plain")
    mine = {"Authorization": "Bearer " + token.text}
    assert httpx.post(api + "/auth/token", json={"username": "admin", "password": "wrong"}).status_code == 401
    assert httpx.post(api + "/devices", headers=mine, json={"id": "Auth-1", "sensors": [{"id": "TC1"}]}).status_code == 204
    assert httpx.post(api + "/devices/Auth-1/sensors/TC1/value", json={"value": 3}).status_code == 204  # guest, public
    admin = {"Fiware-Service": "waziup", "Authorization": f"Bearer {admin_token(platform)}"}
    entity = httpx.get(platform.broker + "/v2/entities/Auth-1?options=keyValues", headers=admin).json()
    assert entity["TC1"] == 3 and entity["owner"] == "admin"
    assert httpx.get(platform.broker + "/v2/entities/Auth-1", headers={"Fiware-Service": "waziup"}).status_code == 401
    history = httpx.get(platform.history + "/v2/entities/Auth-1/attrs/TC1", headers=admin).json()
    assert history["values"] == [3]  # once: the API's own datapoint, not the feed's copy as well
    points = httpx.get(api + "/sensors_data", params={"device_id": "Auth-1"}).json()
    assert [p["value"] for p in points] == [3]
    state = json.loads((platform.data / "platform-auth.json").read_text())
    assert state["api_password"] not in (platform.data / "run.log").read_text()


def test_rules_behind_the_pep_fire_with_the_rules_account(platform: Platform, keyrock: dict[str, Any]) -> None:
    """No token: 401; a reader: may list, not create; the administrator creates a rule, and
    a device-like update (the agent's Bearer token, not forwarded) makes it fire: the broker's
    notice carries the broker's own token (``-notifTokenFor``), which the PEP admits, and the
    update goes in with waziup-rules. A subscriber's ``httpCustom`` notice to the same URL
    gets no such token, and is refused: the broker vouches only for what it wrote."""
    rule = {"name": "hot", "condition": {"type": "Boiler", "q": "t>40"},
            "action": {"type": "update", "parameters": {"attributes": [
                {"name": "alarm", "type": "Boolean", "value": "true"}]}}}
    refused = httpx.post(platform.rules + "/rules", json=rule, headers=TENANT)
    assert refused.status_code == 401 and refused.json()["type"] == "urn:dx:as:MissingAuthenticationToken"
    assert httpx.get(platform.rules + "/version").status_code == 200  # public
    assert httpx.get(platform.rules + "/rules", headers=bearer(keyrock["alice"])).status_code == 200  # read coop
    denied = httpx.post(platform.rules + "/rules", json=rule, headers=bearer(keyrock["alice"]))
    assert denied.status_code == 403 and denied.json()["type"] == "urn:dx:as:InvalidRole"
    admin = admin_token(platform)
    made = httpx.post(platform.rules + "/rules", json=rule, headers=bearer(admin))
    assert made.status_code == 200, made.text
    assert made.json()["data"]["subscriptionId"], made.text  # made in the broker with the rules' account
    # a forged notice: no signature, no token
    forged = {"subscriptionId": made.json()["data"]["subscriptionId"], "data": [{"id": "B1", "type": "Boiler"}]}
    assert httpx.post(platform.rules + "/notices", json=forged, headers=TENANT).status_code == 401
    bad = httpx.post(platform.rules + "/notices", json=forged, headers={**TENANT, "Waziup-Notice-Signature": "00"})
    assert bad.status_code == 401
    # a subscriber's own words to /notices (httpCustom): sent without the broker's token, refused
    custom = httpx.post(platform.broker + "/v2/subscriptions", headers=bearer(admin), json={
        "subject": {"entities": [{"idPattern": ".*", "type": "Boiler"}]},
        "notification": {"httpCustom": {"url": platform.rules + "/notices", "json": forged}}})
    assert custom.status_code == 201, custom.text
    written = httpx.post(platform.broker + "/v2/entities", headers=bearer(admin),
                         json={"id": "B1", "type": "Boiler", "t": {"type": "Number", "value": 55}})
    assert written.status_code == 201, written.text
    deadline = time.monotonic() + 30
    alarm = None
    while alarm is None and time.monotonic() < deadline:
        entity = httpx.get(platform.broker + "/v2/entities/B1?options=keyValues", headers=bearer(admin)).json()
        alarm = entity.get("alarm")
        time.sleep(0.1)
    assert alarm is True, (platform.data / "run.log").read_text()[-3000:]
    firings = httpx.get(platform.rules + "/rules/hot/firings", headers=bearer(admin)).json()["data"]
    assert firings and firings[0]["actions"][0]["outcome"] == {"ok": True}
    custom_url = platform.broker + custom.headers["location"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = httpx.get(custom_url, headers=bearer(admin)).json()["notification"]
        if "lastSuccessCode" in status:
            break
        time.sleep(0.1)
    assert status.get("lastSuccessCode") == 401, status  # the rules service's PEP refused the custom notice
    state = json.loads((platform.data / "platform-auth.json").read_text())
    logged = (platform.data / "run.log").read_text()
    assert state["rules_password"] not in logged and state["feed_password"] not in logged


def _sign_in(browser: httpx.Client, dashboard: str, login: str, password: str) -> httpx.Response:
    """What a browser does: the page sends it to the identity manager's sign-in form, the
    user fills it in and allows, the identity manager sends it back to the dashboard."""
    page = browser.get(dashboard + "/?service=coop")  # redirects: /auth/login, then /oauth2/authorize
    assert page.status_code == 200 and "<form" in page.text, page.text[:500]
    assert page.url.path == "/oauth2/authorize"  # the identity manager's page, not the dashboard's
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    assert fields["code_challenge_method"] == "S256" and fields["code_challenge"]
    form = {k: html.unescape(v) for k, v in fields.items()} | {"username": login, "password": password,
                                                               "decision": "allow"}
    return browser.post(str(page.url.copy_with(query=None)), data=form)  # back to the dashboard's page


def organization_viewer(platform: Platform, user: str, tenant: str) -> None:
    """``user`` (password ``<user>-pass-1234``), a member of organization ``tenant``, which
    holds a role reading and watching tenant ``tenant`` in the platform's application
    ``waziup`` (Keyrock's way: the role is the organization's, for its members): who may use
    the dashboard on that tenant."""
    with httpx.Client(base_url=platform.idm, timeout=10) as idm:
        login = idm.post("/v1/auth/tokens", json={"name": "admin@localhost", "password": ADMIN_PASSWORD})
        h = {"X-Auth-Token": login.headers["X-Subject-Token"]}
        waziup = next(a for a in idm.get("/v1/applications", headers=h).json()["applications"] if a["name"] == "waziup")
        base = f"/v1/applications/{waziup['id']}"
        role = idm.post(f"{base}/roles", headers=h, json={"role": {"name": f"{tenant}-viewer"}}).json()["role"]
        permission = idm.post(f"{base}/permissions", headers=h, json={"permission": {
            "name": f"read and watch {tenant}", "action": "NGSI", "resource": "ngsi",
            "ngsi": {"id": f"{tenant}-viewer", "actions": ["read", "subscribe"], "tenant": tenant},
        }}).json()["permission"]
        assert idm.put(f"{base}/roles/{role['id']}/permissions/{permission['id']}", headers=h).status_code < 300
        member = idm.post("/v1/users", headers=h, json={"user": {
            "username": user, "email": f"{user}@test.com", "password": f"{user}-pass-1234"}}).json()["user"]
        org = idm.post("/v1/organizations", headers=h, json={"organization": {"name": tenant}}).json()["organization"]
        assert idm.put(f"/v1/organizations/{org['id']}/users/{member['id']}/organization_roles/member",
                       headers=h).status_code < 300
        assert idm.put(f"{base}/organizations/{org['id']}/roles/{role['id']}/organization_roles/member",
                       headers=h).status_code < 300


def test_the_dashboard_signs_a_user_in_and_acts_with_their_token(platform: Platform) -> None:
    organization_viewer(platform, "dave", "coop")
    admin = admin_token(platform)
    with httpx.Client(timeout=15, follow_redirects=True) as browser:
        assert browser.get(platform.dashboard + "/api/broker/v2/entities").status_code == 401  # not signed in
        page = _sign_in(browser, platform.dashboard, "dave@test.com", "dave-pass-1234")
        assert page.status_code == 200 and "waziup dashboard" in page.text
        assert str(page.url) == platform.dashboard + "/?service=coop"  # where the user was going
        me = browser.get(platform.dashboard + "/auth/me").json()
        assert me["username"] == "dave"
        assert me["tenants"] == ["coop"]  # not the default tenant: coop, his organization's
        api = platform.dashboard + "/api/broker/v2/entities"
        assert browser.get(api, headers={"Fiware-Service": "coop"}).status_code == 200
        assert browser.get(api).status_code == 403  # the default tenant: the broker's PEP refuses dave
        # the live feed: dave's own subscription, fed what he may read
        with browser.stream("GET", platform.dashboard + "/api/events?service=coop&servicepath=/%23") as feed:
            lines = feed.iter_lines()
            assert line_within(lines, lambda line: line.startswith("event:"), 20, "the feed's first event") == (
                "event: ready")
            made = httpx.post(platform.broker + "/v2/entities", headers={**bearer(admin)},
                              json={"id": "Dash1", "type": "Room", "t": {"value": 21, "type": "Number"}})
            assert made.status_code == 201, made.text
            # dave's role is a second old: the broker's notification filter must already use the policy
            # set that admitted his subscription (security/pep/policyboard.py)
            data = line_within(lines, lambda line: line.startswith("data:") and "Dash1" in line, 20, "Dash1, live")
            assert json.loads(data[5:])["entity"]["t"]["value"] == 21
        assert browser.post(platform.dashboard + "/auth/logout").status_code == 204
        assert browser.get(platform.dashboard + "/auth/me").status_code == 401
        assert browser.get(api, headers={"Fiware-Service": "coop"}).status_code == 401
