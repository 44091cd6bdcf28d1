"""MQTT that is not open: ``waziup run`` with Mosquitto, device accounts per group, topic ACLs.

Against real processes: ``waziup run -auth -tls -mqttStrict`` (its Mosquitto, broker and
agent) on spare loopback ports with a temporary data directory, once for the module; a
second platform for what survives a restart and for the open mode. Clients: paho-mqtt with
MQTT 5 and 3.1.1, and the project's own ``ngsi.client.mqtt.MqttClient``. What a client
must not get is checked where it matters: a refused publish leaves the entity unchanged,
a refused read delivers nothing (Mosquitto's ACL file grants every SUBSCRIBE and filters
what is delivered). The pure parts (hashes, ACL lines, ``waziup run``'s wiring) first.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import signal
import ssl
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker import config as broker_config
from iot_agent import config as agent_config
from iot_agent import mqtt_auth
from ngsi.client.mqtt import MQTT_3_1_1, MQTT_5, MqttClient, MqttError
from orchestrator import mosquitto, platform_auth, run_all
from tests.conftest import ROOT, free_port, stop_process

pytestmark = pytest.mark.xdist_group("mqtt_security")  # one platform for the module's tests

TENANT = {"fiware-service": "mqttsec", "fiware-servicepath": "/"}
ADMIN_PASSWORD = "Adm1n-pass-for-mqtt-tests"
SOON = 2.0  # seconds: a change of the accounts reaches Mosquitto within this
needs_mosquitto = pytest.mark.skipif(mosquitto.find_binary() is None, reason="never: make test installs mosquitto")


# -- pure parts -----------------------------------------------------------------------------------


def test_password_hashes_are_mosquittos() -> None:
    ours = mqtt_auth.hash_password("a long enough password")
    assert ours.startswith(f"$7${mqtt_auth.ITERATIONS}$")
    assert mqtt_auth.check_password("a long enough password", ours)
    assert not mqtt_auth.check_password("another password", ours)
    assert not mqtt_auth.check_password("x", "$6$not$ours")
    passwd_tool = shutil.which("mosquitto_passwd")
    if passwd_tool:  # the same format as the tool's (Mosquitto itself accepting ours: the tests below)
        tool = subprocess.run([passwd_tool, "-b", "-c", "/dev/stdout", "u", "s3cret"], capture_output=True, text=True, check=False)
        if tool.returncode == 0 and ":" in tool.stdout:
            assert mqtt_auth.check_password("s3cret", tool.stdout.strip().split(":", 1)[1])


def test_password_file_keeps_what_is_above_the_marker(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text("# an operator's\nops:$7$1$x$y\n")
    kept, accounts = mqtt_auth.read_passwd(path)
    assert (kept, accounts) == (["# an operator's", "ops:$7$1$x$y"], {})
    mqtt_auth.write_private(path, mqtt_auth.passwd_text(kept, {"K2": "h2", "K1": "h1"}))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().splitlines() == ["# an operator's", "ops:$7$1$x$y", mqtt_auth.MARKER, "K1:h1", "K2:h2"]
    assert mqtt_auth.read_passwd(path) == (kept, {"K1": "h1", "K2": "h2"})
    assert mqtt_auth.users_of(kept) == {"ops"}


@pytest.mark.parametrize("name", ["", "ul", "json", "a/b", "a+", "#", "a:b", "a b", "a\nb"])
def test_apikeys_that_cannot_be_accounts(name: str) -> None:
    assert mqtt_auth.username_problem(name) is not None
    assert mqtt_auth.username_problem("4jggokgpepnvsb2uv4s40d59ov") is None


def test_device_acl_follows_the_agents_topics() -> None:
    group, strict = mqtt_auth.device_patterns(False), mqtt_auth.device_patterns(True)
    assert "pattern write /ul/%u/+/attrs" in group and "pattern write %u/+/attrs/+" in group
    assert "pattern write /json/%u/+/configuration/commands" in group
    assert len([line for line in group if line.startswith("pattern write")]) == 4 * 3 * 2
    assert [line for line in group if " read " in line] == ["pattern read /%u/+/cmd", "pattern read /%u/+/configuration/values"]
    assert [line for line in strict if " read " in line] == ["pattern read /%u/%c/cmd", "pattern read /%u/%c/configuration/values"]
    assert not any("#" in line for line in group + strict)
    acl = mosquitto.acl_text(agent_user="agent", lora_user="ns", anonymous=False, strict=True)
    assert "topic readwrite #" in acl.split("user agent", 1)[1].split("user ns", 1)[0]
    assert acl.split("user", 1)[0].count("topic") == 0  # nothing for anonymous clients
    assert mosquitto.acl_text(agent_user="agent", anonymous=True, strict=False).split("user", 1)[0].count("topic readwrite #") == 1


class _Child:
    """subprocess.Popen's stand-in: records what would run, then 'exits'."""

    started: ClassVar[list[tuple[list[str], dict[str, Any]]]] = []
    returncode = 0
    pid = 0

    def __init__(self, argv: list[str], **kwargs: Any) -> None:
        self.started.append((argv, kwargs))

    def poll(self) -> int:
        return 0

    def wait(self, timeout: float | None = None) -> int:
        return 0


@pytest.fixture
def fake_children(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, Any]]]:
    _Child.started = []
    monkeypatch.setattr(subprocess, "Popen", _Child)  # run_all's and mosquitto's: the same module
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    monkeypatch.setattr(run_all, "_wait_mqtt", lambda *args: None)
    monkeypatch.setattr(run_all, "_wait_http", lambda *args, **kwargs: None)
    # -auth's identity manager and accounts: tests/test_auth_platform.py; here only the MQTT side
    api_env = {"WAZIUP_API_CLIENT_ID": "app", "WAZIUP_API_ADMIN_USER": "admin@localhost"}  # and secrets
    orch_env = {"WAZIUP_ORCH_CLIENT_ID": "app", "WAZIUP_ORCH_ADMIN_USER": "admin@localhost"}  # and secrets
    monkeypatch.setattr(run_all, "_start_security", lambda *args: platform_auth.PlatformAuth(
        {}, {}, api_env=api_env, orch_env=orch_env))
    return _Child.started


@needs_mosquitto
def test_run_wires_mosquitto_and_the_agent(fake_children: list[tuple[list[str], dict[str, Any]]], tmp_path: Path) -> None:
    """-tls -host 10.1.2.3: TLS for devices on that address, plain MQTT on loopback for the
    agent, which gets the account files and its password in its environment only."""
    options = run_all.parse(["-host", "10.1.2.3", "-data", str(tmp_path), "-tls", "-auth", "-mqttLoraUser", "chirpstack"], {})
    assert run_all.run(options) == 1  # the fake children "exit"
    (mqtt, mqtt_kw), (history, _), (broker, _), (rules, _), (agent, agent_kw), (dashboard, _), (api, _), (orch, orch_kw) = (
        fake_children)
    assert {"-https", "-caFile", "-authUser", "waziup-orchestrator", "security.pep:orchestrator_guard",
            "security.ratelimit:broker_guard"} <= set(orch)
    assert orch[orch.index("-ingressURL") + 1] == "https://10.1.2.3:8080"
    assert orch_kw["env"]["WAZIUP_RATE_EXEMPT"] == "/version,/ingress/*"  # the broker's notifications to apps
    assert {"-https", "-caFile", "-authUser", "waziup-api", "security.ratelimit:broker_guard"} <= set(api)
    assert api[api.index("-host") + 1] == "10.1.2.3" and api[api.index("-service") + 1] == "waziup"
    assert {"-https", "-idmURL"} & set(dashboard) == {"-https"}  # its sign-in comes in its environment
    assert history[history.index("-host") + 1] == "10.1.2.3"
    assert {"-https", "security.pep:history_guard"} <= set(history)  # TLS and the PEP, as every service
    assert rules[rules.index("-host") + 1] == "10.1.2.3"
    assert {"-https", "-brokerCa", "security.pep:rules_guard"} <= set(rules)
    assert mqtt[1:] == ["-c", str(tmp_path / "mqtt" / "mosquitto.conf")] and not mqtt_kw
    conf = (tmp_path / "mqtt" / "mosquitto.conf").read_text().splitlines()
    assert "allow_anonymous false" in conf
    assert conf[-4:] == ["listener 1883 127.0.0.1", "listener 8883 10.1.2.3",
                         f"certfile {tmp_path / 'tls' / 'cert.pem'}", f"keyfile {tmp_path / 'tls' / 'key.pem'}"]
    config = agent_config.parse(agent[agent.index("iot-agent") + 1 :], agent_kw["env"])
    assert (config.mqtt_host, config.mqtt_port) == ("127.0.0.1", 1883)
    assert config.mqtt_passwd_file == str(tmp_path / "mqtt" / "passwd")
    assert config.mqtt_broker_pidfile == str(tmp_path / "mqtt" / "mosquitto.pid")
    assert config.mqtt_username == mosquitto.AGENT_USER
    assert config.mqtt_password == (tmp_path / "mqtt" / "agent.secret").read_text().strip()
    assert config.mqtt_password not in " ".join(agent)
    account = {"WAZIUP_FEED_TOKEN_URL": "https://10.1.2.3:3005/oauth2/token", "WAZIUP_FEED_CLIENT_ID": "a",
               "WAZIUP_FEED_CLIENT_SECRET": "s"}  # the broker's account, in its environment (platform_auth)
    wired = broker_config.parse(broker[broker.index("broker") + 1 :], account)
    assert wired.notif_allowed_hosts == (
        "10.1.2.3:4041", "10.1.2.3:9090/notices", "10.1.2.3:3000/notify", "10.1.2.3:8080/ingress",
        "mqtt://10.1.2.3:1883", "mqtt://localhost:1883",
    )  # the agent, the rules service's notices, the dashboard's live feed, the apps' ingress, and the MQTT broker
    assert wired.notif_token_for == ("https://10.1.2.3:9090/notices",)  # the broker vouches for its notices
    kept, _ = mqtt_auth.read_passwd(tmp_path / "mqtt" / "passwd")
    assert mqtt_auth.users_of(kept) == {mosquitto.AGENT_USER, "chirpstack"}
    for name in ("mosquitto.conf", "acl", "passwd", "agent.secret", "lora.secret"):
        assert stat.S_IMODE((tmp_path / "mqtt" / name).stat().st_mode) == 0o600, name


def test_run_amqtt_only_without_auth(
    fake_children: list[tuple[list[str], dict[str, Any]]], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert run_all.run(run_all.parse(["-data", str(tmp_path), "-mqttBroker", "amqtt", "-auth"], {})) == 1
    assert not fake_children and "-auth needs Mosquitto" in capfd.readouterr().err
    assert run_all.run(run_all.parse(["-data", str(tmp_path), "-mqttBroker", "amqtt"], {})) == 1
    assert fake_children[0][0][-3:] == ["mqtt-broker", "127.0.0.1", "1883"]  # without -auth: loopback only
    api = fake_children[-1][0]
    assert "-authUser" not in api and "-guard" not in api  # its own permissions only, on an open platform
    assert "the embedded amqtt" in capfd.readouterr().out
    assert run_all.parse([], {"WAZIUP_AUTH": "on"}).auth


# -- a platform -------------------------------------------------------------------------------------


@dataclass
class Platform:
    """``waziup run`` on loopback ports; ``tls``: its development certificate, trusted."""

    data: Path
    args: list[str]
    port: int = 0
    north: int = 0
    http: int = 0
    mqtt: int = 0
    mqtt_tls: int = 0
    idm: int = 0
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""  # -auth: the administrator's, for the APIs behind the PEP

    def __post_init__(self) -> None:
        self.port, self.north, self.http, self.mqtt, self.mqtt_tls, self.idm, self.history, self.rules = (
            free_port() for _ in range(8)
        )

    @property
    def tls(self) -> bool:
        return "-tls" in self.args

    @property
    def cert(self) -> str:
        return str(self.data / "tls" / "cert.pem")

    def trust(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.cert)
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        return context

    def url(self, port: int) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"

    def start(self) -> Platform:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ORION_", "WAZIUP_", "IOTA_", "IDM_"))}
        env["WAZIUP_ADMIN_PASSWORD"] = ADMIN_PASSWORD
        argv = [sys.executable, "-m", "orchestrator.cli", "run", "-host", "127.0.0.1", "-data", str(self.data),
                "-port", str(self.port), "-northPort", str(self.north), "-httpPort", str(self.http),
                "-mqttPort", str(self.mqtt), "-mqttTlsPort", str(self.mqtt_tls), "-idmPort", str(self.idm),
                "-historyPort", str(self.history), "-rulesPort", str(self.rules), "-dashboardPort", "0", "-apiPort", "0", "-appsPort", "0",
                *self.args]
        self.output = open(self.data.parent / f"{self.data.name}.log", "ab")  # noqa: SIM115 (open while it runs)
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"waziup run exited: {self.log()}")
            try:
                httpx.get(self.url(self.north) + "/iot/about", verify=self.trust() if self.tls else True, timeout=1)
                if "-auth" in self.args:
                    self.token = self._admin_token()
                return self
            except (httpx.TransportError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"waziup run did not start within 60 s: {self.log()}")

    def _admin_token(self) -> str:
        """The administrator's token for the platform's application (``platform-auth.json``)."""
        import json

        state = json.loads((self.data / "platform-auth.json").read_text())
        answer = httpx.post(self.url(self.idm) + "/oauth2/token", auth=(state["app_id"], state["app_secret"]), data={
            "grant_type": "password", "username": "admin@localhost", "password": ADMIN_PASSWORD,
        }, verify=self.trust() if self.tls else True, timeout=10)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def log(self) -> str:
        return (self.data.parent / f"{self.data.name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        stop_process(self.proc, timeout=15)
        self.output.close()

    # -- HTTP -------------------------------------------------------------------------------

    def client(self) -> httpx.Client:
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(verify=self.trust() if self.tls else True, timeout=10, headers={**TENANT, **auth})

    def group(self, apikey: str, **extra: Any) -> None:
        with self.client() as http:
            answer = http.post(self.url(self.north) + "/iot/groups", json={"groups": [{
                "apikey": apikey, "resource": "/iot/d", "entity_type": "Thing", "protocol": "IoTA-UL", "transport": "MQTT",
                "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}], **extra}]})
        assert (answer.status_code, answer.json()) == (201, {})  # as iotagent-node-lib: nothing else in the answer

    def credentials(self, apikey: str, method: str = "GET", **body: Any) -> httpx.Response:
        with self.client() as http:
            if method == "GET":
                return http.get(self.url(self.north) + "/iot/mqtt/credentials", params={"apikey": apikey})
            return http.post(self.url(self.north) + "/iot/mqtt/credentials", json={"apikey": apikey, **body})

    def password(self, apikey: str) -> str:
        answer = self.credentials(apikey)
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        assert answer.json()["username"] == apikey
        return str(answer.json()["password"])

    def entity(self, entity_id: str) -> dict[str, Any] | None:
        with self.client() as http:
            answer = http.get(self.url(self.port) + f"/v2/entities/{entity_id}", params={"options": "keyValues"})
        return answer.json() if answer.status_code == 200 else None

    def temperature_becomes(self, entity_id: str, value: float, timeout: float = 5) -> None:
        eventually(lambda: (self.entity(entity_id) or {}).get("temperature") == value, timeout,
                   lambda: f"{entity_id}: {self.entity(entity_id)}")


def eventually(check: Callable[[], bool], timeout: float, say: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {say()}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    if mosquitto.find_binary() is None:
        pytest.fail("mosquitto is not installed: scripts/install-mosquitto.sh", pytrace=False)
    started = Platform(tmp_path_factory.mktemp("secured") / "data", ["-auth", "-tls", "-mqttStrict"]).start()
    yield started
    started.stop()


# -- MQTT clients -----------------------------------------------------------------------------------


class Paho:
    """A paho client on a thread of its own: CONNACK, SUBACKs and messages queued."""

    def __init__(self, port: int, *, username: str | None = None, password: str | None = None,
                 client_id: str = "", v5: bool = True, trust: ssl.SSLContext | None = None) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{uuid.uuid4().hex[:8]}",
                                  protocol=paho.MQTTv5 if v5 else paho.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        if trust is not None:
            self.client.tls_set_context(trust)
        self.connacks: queue.Queue[Any] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client.on_connect = lambda c, u, flags, reason, props: self.connacks.put(reason)
        self.client.on_message = lambda c, u, message: self.messages.put((message.topic, bytes(message.payload)))
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()

    def connack(self) -> Any:
        """The reason code of the CONNACK (then no reconnection on a refusal)."""
        try:
            reason = self.connacks.get(timeout=5)
        except queue.Empty:
            raise AssertionError("no CONNACK within 5 s") from None
        if reason.is_failure:
            self.close()
        return reason

    def subscribe(self, *filters: str) -> None:
        for topic_filter in filters:
            self.client.subscribe(topic_filter, qos=1)

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)  # the broker has handled it

    def received(self, wait: float) -> list[tuple[str, bytes]]:
        got: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + wait
        while True:
            try:
                got.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator[Callable[..., Paho]]:
    made: list[Paho] = []

    def make(*args: Any, **kwargs: Any) -> Paho:
        made.append(Paho(*args, **kwargs))
        return made[-1]

    yield make
    for client in made:
        client.close()


def logs_in(clients: Callable[..., Paho], port: int, apikey: str, password: str, **kwargs: Any) -> Paho:
    """A client of ``apikey`` once its account works: an account made or changed a moment ago
    needs Mosquitto's reload (the agent's SIGHUP), which must take at most SOON seconds."""
    deadline = time.monotonic() + SOON
    while True:
        client = clients(port, username=apikey, password=password, **kwargs)
        reason = client.connack()
        if not reason.is_failure:
            return client
        if time.monotonic() > deadline:
            raise AssertionError(f"{apikey} refused ({reason}) {SOON} s after its account changed")
        time.sleep(0.1)


def refused(clients: Callable[..., Paho], port: int, **kwargs: Any) -> str:
    reason = clients(port, **kwargs).connack()
    assert reason.is_failure, reason
    return str(reason)


# -- with -auth ---------------------------------------------------------------------------------


def test_anonymous_clients_are_refused(platform: Platform, clients: Callable[..., Paho]) -> None:
    assert refused(clients, platform.mqtt) == "Not authorized"
    assert refused(clients, platform.mqtt, v5=False) == "Not authorized"
    assert refused(clients, platform.mqtt_tls, trust=platform.trust()) == "Not authorized"

    async def project_client() -> None:
        with pytest.raises(MqttError, match="(?i)not authori"):
            async with MqttClient("127.0.0.1", platform.mqtt, protocol=MQTT_5, reconnect_delay=(0.1, 0.1)):
                pass

    asyncio.run(project_client())


def test_a_new_group_logs_in_and_its_measures_arrive(platform: Platform, clients: Callable[..., Paho]) -> None:
    created = time.monotonic()
    platform.group("gNew")
    password = platform.password("gNew")
    assert len(password) >= mqtt_auth.MIN_PASSWORD
    again = platform.credentials("gNew")  # read once
    assert (again.status_code, again.json()["name"]) == (404, "MQTT_CREDENTIALS_NOT_AVAILABLE")
    logs_in(clients, platform.mqtt, "gNew", password)  # MQTT 5
    assert time.monotonic() - created < 2 * SOON
    v311 = logs_in(clients, platform.mqtt, "gNew", password, v5=False)
    assert refused(clients, platform.mqtt, username="gNew", password=password[::-1]) == "Not authorized"
    v311.publish("/ul/gNew/s311/attrs", "t|3.5")
    platform.temperature_becomes("Thing:s311", 3.5)

    async def project_client() -> None:
        async with MqttClient("127.0.0.1", platform.mqtt, protocol=MQTT_3_1_1, username="gNew", password=password) as mqtt:
            await mqtt.publish("/gNew/sOwn/attrs", b"t|7", qos=1)  # legacy topic, no /ul

    asyncio.run(project_client())
    platform.temperature_becomes("Thing:sOwn", 7)
    passwd = (platform.data / "mqtt" / "passwd").read_text()
    assert password not in passwd and "gNew:$7$" in passwd


def test_a_device_cannot_publish_as_another_group(platform: Platform, clients: Callable[..., Paho]) -> None:
    platform.group("gOwner")
    platform.group("gIntruder")
    owner = logs_in(clients, platform.mqtt, "gOwner", platform.password("gOwner"))
    intruder = logs_in(clients, platform.mqtt, "gIntruder", platform.password("gIntruder"))
    owner.publish("/ul/gOwner/victim/attrs", "t|10")
    platform.temperature_becomes("Thing:victim", 10)
    for topic in ("/ul/gOwner/victim/attrs", "/gOwner/victim/attrs", "gOwner/victim/attrs", "/json/gOwner/victim/attrs",
                  "/ul/gOwner/victim/attrs/t"):
        intruder.publish(topic, "99" if topic.endswith("/t") else "t|99")
    # its own measure, published after, arrives; by then the others would have too
    intruder.publish("/ul/gIntruder/marker/attrs", "t|1")
    platform.temperature_becomes("Thing:marker", 1)
    time.sleep(0.3)
    assert platform.entity("Thing:victim")["temperature"] == 10  # type: ignore[index]


def test_commands_reach_their_device_only(platform: Platform, clients: Callable[..., Paho]) -> None:
    """-mqttStrict: a device reads the commands of its own client id; nobody reads ``#``."""
    platform.group("gCmd")
    platform.group("gOther")
    password = platform.password("gCmd")
    with platform.client() as http:
        answer = http.post(platform.url(platform.north) + "/iot/devices", json={"devices": [
            {"device_id": name, "entity_name": f"Robot:{name}", "entity_type": "Robot", "apikey": "gCmd",
             "transport": "MQTT", "protocol": "IoTA-UL", "commands": [{"name": "turn", "type": "command"}]}
            for name in ("robotA", "robotB")]})
    assert answer.status_code == 201, answer.text
    target = logs_in(clients, platform.mqtt, "gCmd", password, client_id="robotB", v5=False)
    target.subscribe("/gCmd/robotB/cmd")
    neighbour = logs_in(clients, platform.mqtt, "gCmd", password, client_id="robotA")
    neighbour.subscribe("/gCmd/robotB/cmd", "/gCmd/+/cmd", "#", "/#")
    stranger = logs_in(clients, platform.mqtt, "gOther", platform.password("gOther"))
    stranger.subscribe("#", "/gCmd/robotB/cmd")
    time.sleep(0.3)  # the SUBSCRIBEs are in
    with platform.client() as http:
        answer = http.put(platform.url(platform.port) + "/v2/entities/Robot:robotB/attrs/turn", params={"type": "Robot"},
                          json={"type": "command", "value": "left"})
    assert answer.status_code == 204, answer.text
    deadline = time.monotonic() + 5
    got: list[tuple[str, bytes]] = []
    while not got and time.monotonic() < deadline:
        got = target.received(0.1)
    assert got == [("/gCmd/robotB/cmd", b"robotB@turn|left")]
    target.publish("/ul/gCmd/robotB/cmdexe", "robotB@turn|done")
    eventually(lambda: (platform.entity("Robot:robotB") or {}).get("turn_status") == "OK", 5)
    assert neighbour.received(0.3) == [] and stranger.received(0) == []
    # robotA reads its own commands
    neighbour.subscribe("/gCmd/robotA/cmd")
    time.sleep(0.2)
    with platform.client() as http:
        http.put(platform.url(platform.port) + "/v2/entities/Robot:robotA/attrs/turn", params={"type": "Robot"},
                 json={"type": "command", "value": "right"})
    eventually(lambda: ("/gCmd/robotA/cmd", b"robotA@turn|right") in neighbour.received(0.1), 5)
    assert stranger.received(0) == [] and target.received(0) == []


def test_a_new_password_and_a_deleted_group(platform: Platform, clients: Callable[..., Paho]) -> None:
    platform.group("gRotate")
    first = platform.password("gRotate")
    logs_in(clients, platform.mqtt, "gRotate", first)
    short = platform.credentials("gRotate", "POST", password="too short")
    assert short.status_code == 400
    assert platform.credentials("nobody's", "POST").status_code == 404
    chosen = "a chosen password, long enough"
    answer = platform.credentials("gRotate", "POST", password=chosen)
    assert (answer.status_code, answer.json()) == (200, {"username": "gRotate", "password": chosen})
    logs_in(clients, platform.mqtt, "gRotate", chosen)
    assert refused(clients, platform.mqtt, username="gRotate", password=first) == "Not authorized"
    with platform.client() as http:  # another tenant's group of the same apikey: nobody may touch its password
        other = {**TENANT, "fiware-service": "othertenant"}
        answer = http.post(platform.url(platform.north) + "/iot/groups", headers=other,
                           json={"groups": [{"apikey": "gRotate", "resource": "/iot/json"}]})
        assert answer.status_code == 201
        assert http.get(platform.url(platform.north) + "/iot/mqtt/credentials", params={"apikey": "gRotate"},
                        headers=other).status_code == 409
        assert platform.credentials("gRotate", "POST").status_code == 409
        http.delete(platform.url(platform.north) + "/iot/groups", params={"resource": "/iot/json", "apikey": "gRotate"},
                    headers=other)
    logs_in(clients, platform.mqtt, "gRotate", chosen)  # the account stayed: the first tenant's group has it
    generated = platform.credentials("gRotate", "POST").json()["password"]
    logs_in(clients, platform.mqtt, "gRotate", generated, v5=False)
    with platform.client() as http:
        deleted = http.delete(platform.url(platform.north) + "/iot/groups", params={"resource": "/iot/d", "apikey": "gRotate"})
    assert deleted.status_code == 204
    eventually(lambda: clients(platform.mqtt, username="gRotate", password=generated).connack().is_failure, SOON)


def test_tls_with_the_development_certificate(platform: Platform, clients: Callable[..., Paho]) -> None:
    platform.group("gTls")
    password = platform.password("gTls")
    device = logs_in(clients, platform.mqtt_tls, "gTls", password, trust=platform.trust())
    device.publish("/ul/gTls/overTls/attrs", "t|12")
    platform.temperature_becomes("Thing:overTls", 12)

    async def project_client() -> None:
        async with MqttClient("127.0.0.1", platform.mqtt_tls, protocol=MQTT_5, username="gTls", password=password,
                              ssl=platform.trust()) as mqtt:
            await mqtt.publish("/ul/gTls/overTls/attrs", b"t|13", qos=1)
        with pytest.raises(MqttError):  # a client that does not trust the certificate
            await MqttClient("127.0.0.1", platform.mqtt_tls, username="gTls", password=password, ssl=True,
                             reconnect_delay=(0.1, 0.1)).connect()

    asyncio.run(project_client())
    platform.temperature_becomes("Thing:overTls", 13)


def test_secrets_stay_private(platform: Platform) -> None:
    folder = platform.data / "mqtt"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("passwd", "acl", "mosquitto.conf", "agent.secret"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    secret = (folder / "agent.secret").read_text().strip()
    assert secret not in platform.log() and secret not in (folder / "mosquitto.log").read_text()


# -- a restart, and the open mode -------------------------------------------------------------------


@needs_mosquitto
def test_accounts_survive_a_restart_and_no_auth_stays_open(tmp_path: Path, clients: Callable[..., Paho]) -> None:
    first = Platform(tmp_path / "data", ["-auth"]).start()
    try:
        first.group("gKept")
        password = first.password("gKept")
        logs_in(clients, first.mqtt, "gKept", password)
    finally:
        first.stop()
    second = Platform(tmp_path / "data", []).start()  # the same data, without -auth
    try:
        assert "MQTT broker: Mosquitto" in second.log()
        logs_in(clients, second.mqtt, "gKept", password, v5=False)  # the group's account is kept
        v5 = clients(second.mqtt)  # anonymous: MQTT 5 and 3.1.1 (amqtt refused MQTT 5)
        v311 = clients(second.mqtt, v5=False)
        assert not v5.connack().is_failure and not v311.connack().is_failure
        v311.subscribe("#")
        time.sleep(0.2)
        v5.publish("/ul/gKept/anonymous/attrs", "t|4")
        assert ("/ul/gKept/anonymous/attrs", b"t|4") in v311.received(1)
        second.temperature_becomes("Thing:anonymous", 4)
    finally:
        second.stop()
