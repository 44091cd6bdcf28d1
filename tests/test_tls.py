"""TLS on every listener, against real processes: the broker (``-https -key -cert``, Orion's
options), the IoT agent's north and device ports (``--https --key --cert``), ``waziup run
-tls`` with its development certificate, and https notifications to a receiver of a
private CA (``-notifCaFile``). Clients verify certificates: httpx, the project's own
NGSIClient over http11, curl-like urllib, each trusting only the test CA.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker import config as broker_config
from iot_agent import config as agent_config
from ngsi.client import HTTPClient, NGSIClient
from ngsi.settings import SettingsError
from ngsi.tls import check_key_and_cert, trust_context
from orchestrator import run_all, tls
from tests.conftest import ROOT, BrokerProcess, free_port, line_within, stop_process, wait_until_answering



# -- a private CA and its certificates -------------------------------------------------------


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *, names: tuple[str, ...] = (),
) -> x509.Certificate:
    """A CA certificate (``issuer`` None: self-signed) or a server certificate for ``names``."""
    now = datetime.datetime.now(datetime.UTC)
    signer = key if issuer is None else issuer[1]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(subject) if issuer is None else issuer[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        sans = [tls._general_name(name) for name in names]
        builder = (
            builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        )
    return builder.sign(signer, hashes.SHA256())


def _pem_key(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


@dataclass(frozen=True)
class PrivateCA:
    ca: Path  # the CA certificate clients trust
    cert: Path  # a server certificate it signed, for localhost and 127.0.0.1
    key: Path
    other_key: Path  # not the certificate's
    encrypted_key: Path  # the right key, under a passphrase
    stranger_ca: Path  # another CA, which signed nothing here

    def trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, server_key, other, stranger_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    ca = _issue("waziup test CA", ca_key, None)
    server = _issue("localhost", server_key, (ca, ca_key), names=("localhost", "127.0.0.1"))
    files = {
        "ca.pem": ca.public_bytes(serialization.Encoding.PEM),
        "server.pem": server.public_bytes(serialization.Encoding.PEM),
        "server.key": _pem_key(server_key),
        "other.key": _pem_key(other),
        "encrypted.key": _pem_key(server_key, b"secret"),
        "stranger.pem": _issue("stranger CA", stranger_key, None).public_bytes(serialization.Encoding.PEM),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return PrivateCA(*(folder / n for n in ("ca.pem", "server.pem", "server.key", "other.key", "encrypted.key",
                                             "stranger.pem")))


# -- processes -------------------------------------------------------------------------------


def _environ(extra: Mapping[str, str] = {}) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ORION_", "WAZIUP_", "IOTA_"))}
    return {**clean, **extra}


def _start(argv: list[str], env: Mapping[str, str] = {}) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *argv], cwd=ROOT, env=_environ(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


@pytest.fixture
def started() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Processes a test starts, stopped after it."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], env: Mapping[str, str] = {}) -> subprocess.Popen[bytes]:
        procs.append(_start(argv, env))
        return procs[-1]

    yield start
    for proc in procs:
        stop_process(proc)


def _fails_cleanly(procs: list[tuple[subprocess.Popen[bytes], str]]) -> None:
    """Each process exits non-zero, without a traceback, with the expected message (started
    together: each pays its own start-up, in parallel)."""
    for proc, message in procs:
        try:
            _, err = proc.communicate(timeout=30)
        finally:
            stop_process(proc)
        text = err.decode()
        assert proc.returncode != 0 and message in text and "Traceback" not in text, (message, text)


# -- the broker ------------------------------------------------------------------------------


def test_broker_https_options_and_variables() -> None:
    config = broker_config.parse(["-https", "-key", "k.pem", "-cert=c.pem", "-notifCaFile", "ca.pem"], {})
    assert (config.https, config.https_key, config.https_cert, config.notif_ca_file) == (True, "k.pem", "c.pem", "ca.pem")
    env = {"ORION_HTTPS": "true", "ORION_HTTPS_KEYFILE": "k", "ORION_HTTPS_CERTFILE": "c", "WAZIUP_NOTIF_CA_FILE": "a"}
    config = broker_config.parse([], env)
    assert (config.https, config.https_key, config.https_cert, config.notif_ca_file) == (True, "k", "c", "a")
    assert config.ignored == () and broker_config.parse(["-key", "k"], {}).https is False  # Orion: -key alone, no https
    with pytest.raises(broker_config.ConfigError, match="-https needs -key FILE and -cert FILE .*: -cert is missing"):
        broker_config.parse(["-https", "-key", "k"], {})


def test_broker_serves_https_only(pki: PrivateCA, started: Callable[..., subprocess.Popen[bytes]]) -> None:
    port = free_port()
    env = {"ORION_HTTPS": "1", "ORION_HTTPS_KEYFILE": str(pki.key), "ORION_HTTPS_CERTFILE": str(pki.cert)}
    proc = started(["-m", "broker", "-localIp", "127.0.0.1", "-port", str(port), "-dbURI", "memory://"], env)
    url = f"https://localhost:{port}"
    wait_until_answering(proc, url + "/version", "broker", 30, verify=pki.trust())

    async def through_ngsi_client() -> dict[str, Any]:
        async with NGSIClient(f"https://127.0.0.1:{port}", transport=HTTPClient(ssl_context=pki.trust())) as client:
            await client.create_entity({"id": "Room1", "type": "Room", "t": {"value": 21, "type": "Number"}})
            return await client.get_entity("Room1", key_values=True)

    assert asyncio.run(through_ngsi_client()) == {"id": "Room1", "type": "Room", "t": 21}
    assert httpx.get(url + "/v2/entities/Room1", verify=pki.trust()).json()["t"]["value"] == 21
    with pytest.raises(httpx.TransportError):  # plain HTTP on the HTTPS port: no answer
        httpx.get(f"http://127.0.0.1:{port}/version", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):  # a client not trusting the CA
        httpx.get(url + "/version", verify=ssl.create_default_context(cafile=str(pki.stranger_ca)))


def test_broker_https_with_workers(
    pki: PrivateCA, started: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    port = free_port()
    proc = started([
        "-m", "broker", "-localIp", "127.0.0.1", "-port", str(port), "-workers", "2",
        "-dbURI", f"sqlite:///{tmp_path / 'broker.db'}", "-https", "-key", str(pki.key), "-cert", str(pki.cert),
    ])
    url = f"https://localhost:{port}"
    wait_until_answering(proc, url + "/version", "broker with 2 workers", 60, verify=pki.trust())
    with httpx.Client(verify=pki.trust()) as client:
        entity = {"id": "W1", "type": "T", "n": {"value": 1, "type": "Number"}}
        assert client.post(url + "/v2/entities", json=entity).status_code == 201
        for _ in range(4):  # new connections: whichever worker accepts them
            with httpx.Client(verify=pki.trust()) as fresh:
                assert fresh.get(url + "/v2/entities/W1").status_code == 200


def test_broker_tls_startup_errors(pki: PrivateCA, tmp_path: Path) -> None:
    def broker(*args: str, env: Mapping[str, str] = {}) -> subprocess.Popen[bytes]:
        """``waziup broker``: checks before importing the server (quick)."""
        return _start(["-m", "orchestrator.cli", "broker", "-port", str(free_port()), "-dbURI", "memory://", *args],
                      env)

    key, cert = str(pki.key), str(pki.cert)
    _fails_cleanly([
        (_start(["-m", "broker", "-https", "-cert", cert]), "option -https needs -key FILE and -cert FILE"),
        (broker(env={"ORION_HTTPS": "true"}), "-key and -cert are missing"),
        (broker("-https", "-key", str(tmp_path / "nope.pem"), "-cert", cert), "option -key: cannot read"),
        (broker("-https", "-key", str(pki.other_key), "-cert", cert), "is not the key of the certificate"),
        (broker("-https", "-key", str(pki.encrypted_key), "-cert", cert), "is encrypted"),
        (broker("-https", "-key", key, "-cert", key), "option -cert: " + repr(key) + " holds no PEM certificate"),
        (broker("-https", "-key", cert, "-cert", cert), "holds no PEM private key"),
        (broker("-notifCaFile", str(tmp_path / "nope.pem")), "option -notifCaFile: cannot read"),
    ])


# -- the IoT agent ---------------------------------------------------------------------------


def _agent(broker_url: str, *args: str) -> tuple[list[str], int, int]:
    north, south = free_port(), free_port()
    argv = [
        "-m", "orchestrator.cli", "iot-agent", "--registry-type", "memory",
        "--north-host", "127.0.0.1", "--north-port", str(north), "--http-host", "127.0.0.1", "--http-port", str(south),
        "--cb-url", broker_url, *args,
    ]
    return argv, north, south


def test_agent_tls_options() -> None:
    config = agent_config.parse(["--https", "--key", "k", "--cert", "c", "--cb-ca", "ca"], {})
    assert (config.https, config.https_key, config.https_cert, config.cb_ca) == (True, "k", "c", "ca")
    assert config.provider_url == "https://localhost:4041"  # the default follows the port's scheme
    assert config.tls_options() == {"ssl_keyfile": os.path.abspath("k"), "ssl_certfile": os.path.abspath("c")}
    env = {"IOTA_HTTPS": "yes", "IOTA_HTTPS_KEY": "k", "IOTA_HTTPS_CERT": "c", "IOTA_CB_CA": "ca",
           "IOTA_PROVIDER_URL": "https://agent:4041"}
    config = agent_config.parse([], env)
    assert (config.https, config.cb_ca, config.provider_url) == (True, "ca", "https://agent:4041")
    assert agent_config.parse([], {}).tls_options() == {} and agent_config.Config().broker_ssl_context() is None
    with pytest.raises(agent_config.ConfigError, match="--https needs --key FILE and --cert FILE .*: --key is missing"):
        agent_config.parse(["--https", "--cert", "c"], {})


def test_agent_north_and_south_over_https(
    pki: PrivateCA, broker_process: Callable[[list[str]], BrokerProcess],
    started: Callable[..., subprocess.Popen[bytes]],
) -> None:
    broker = broker_process(["-multiservice", "-dbURI", "memory://"])
    argv, north, south = _agent(broker.url, "--https", "--key", str(pki.key), "--cert", str(pki.cert))
    proc = started(argv)
    wait_until_answering(proc, f"https://localhost:{north}/iot/about", "the IoT agent", 30, verify=pki.trust())
    with httpx.Client(verify=pki.trust()) as client:
        assert client.get(f"https://127.0.0.1:{north}/iot/about").json()["port"] == north
        group = {"apikey": "tlskey", "resource": "/iot/d", "entity_type": "Thing"}
        service = {"fiware-service": "tls", "fiware-servicepath": "/"}
        assert client.post(f"https://localhost:{north}/iot/groups", json={"groups": [group]},
                           headers=service).status_code == 201
        answer = client.post(f"https://localhost:{south}/iot/d", params={"k": "tlskey", "i": "d1"}, content="t|20",
                             headers={"content-type": "text/plain"})
        assert answer.status_code == 200, answer.text
    for port in (north, south):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/iot/about", timeout=5)
    entity = httpx.get(broker.url + "/v2/entities/Thing:d1", headers={"fiware-service": "tls"}).json()
    assert entity["t"]["value"] == 20


def test_agent_tls_startup_errors(pki: PrivateCA, tmp_path: Path) -> None:
    def agent(*args: str, env: Mapping[str, str] = {}) -> subprocess.Popen[bytes]:
        return _start(_agent("http://127.0.0.1:1", *args)[0], env)

    _fails_cleanly([
        (agent("--https", "--key", str(pki.key)), "option --https needs --key FILE and --cert FILE"),
        (agent(env={"IOTA_HTTPS": "on", "IOTA_HTTPS_KEY": str(pki.other_key), "IOTA_HTTPS_CERT": str(pki.cert)}),
         "is not the key of the certificate"),
        (agent("--cb-ca", str(tmp_path / "none.pem")), "option --cb-ca: cannot read"),
    ])


def test_file_checks_name_the_option_given(pki: PrivateCA, tmp_path: Path) -> None:
    """ngsi/tls.py, which both services' start-up checks are: each error names the option
    (under the caller's spelling) and the file, in process (the two tests above run the
    same checks through each command line)."""
    key, cert, missing = str(pki.key), str(pki.cert), str(tmp_path / "nope.pem")
    check_key_and_cert("--k", key, "--c", cert)  # the right pair
    for (key_file, cert_file), message in [
        ((missing, cert), f"option --k: cannot read {missing!r}: "),
        ((key, missing), f"option --c: cannot read {missing!r}: "),
        ((key, key), f"option --c: {key!r} holds no PEM certificate"),
        ((str(pki.encrypted_key), cert), f"option --k: {str(pki.encrypted_key)!r} is encrypted"),
        ((str(pki.other_key), cert), f"option --k: {str(pki.other_key)!r} is not the key of the certificate {cert!r} (--c)"),
        ((cert, cert), f"option --k: {cert!r} holds no PEM private key"),
    ]:
        with pytest.raises(SettingsError) as raised:
            check_key_and_cert("--k", key_file, "--c", cert_file)
        assert str(raised.value).startswith(message), (message, str(raised.value))
    assert trust_context("--ca", str(pki.ca)).verify_flags & ssl.VERIFY_X509_PARTIAL_CHAIN
    with pytest.raises(SettingsError, match=f"option --ca: cannot read {missing!r}"):
        trust_context("--ca", missing)
    with pytest.raises(SettingsError, match="option --ca: .* holds no PEM certificate"):
        trust_context("--ca", key)


def test_agent_reaches_an_https_broker_of_a_private_ca(
    pki: PrivateCA, started: Callable[..., subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    broker = started(["-m", "broker", "-localIp", "127.0.0.1", "-port", str(port), "-dbURI", "memory://",
                      "-multiservice", "-https", "-key", str(pki.key), "-cert", str(pki.cert)])
    broker_url = f"https://localhost:{port}"
    wait_until_answering(broker, broker_url + "/version", "broker", 30, verify=pki.trust())
    argv, north, south = _agent(broker_url, "--cb-ca", str(pki.ca))
    agent = started(argv)
    wait_until_answering(agent, f"http://127.0.0.1:{north}/iot/about", "the IoT agent", 30, verify=pki.trust())
    service = {"fiware-service": "tlsca", "fiware-servicepath": "/"}
    group = {"apikey": "cakey", "resource": "/iot/d", "entity_type": "Thing"}
    assert httpx.post(f"http://127.0.0.1:{north}/iot/groups", json={"groups": [group]}, headers=service).status_code == 201
    answer = httpx.post(f"http://127.0.0.1:{south}/iot/d", params={"k": "cakey", "i": "d2"}, content="t|5",
                        headers={"content-type": "text/plain"})
    assert answer.status_code == 200, answer.text
    got = httpx.get(broker_url + "/v2/entities/Thing:d2", headers=service, verify=pki.trust())
    assert got.status_code == 200 and got.json()["t"]["value"] == 5


# -- waziup run -tls --------------------------------------------------------------------------


def test_development_certificate(tmp_path: Path) -> None:
    names = tls.machine_names(["10.0.0.7"])
    assert names[:3] == ["localhost", "127.0.0.1", "::1"] and names[-1] == "10.0.0.7"
    cert_pem, key_pem = tls.self_signed(names)
    assert all(tls.covers(cert_pem, name) for name in names) and not tls.covers(cert_pem, "example.org")
    assert serialization.load_pem_private_key(key_pem, None).public_key() == x509.load_pem_x509_certificate(
        cert_pem
    ).public_key()
    first = tls.development_files(tmp_path / "tls", names)
    again = tls.development_files(tmp_path / "tls", names)
    assert first.created and not again.created and (first.key.stat().st_mode & 0o777) == 0o600
    assert (tmp_path / "tls").stat().st_mode & 0o777 == 0o700
    first.key.chmod(0o644)
    assert not tls.development_files(tmp_path / "tls", names).created and first.key.stat().st_mode & 0o777 == 0o600
    assert tls.development_files(tmp_path / "tls", [*names, "new-name"]).created  # a new name: a new certificate
    expiring, key = tls.self_signed(names, days=2)
    first.cert.write_bytes(expiring)
    first.key.write_bytes(key)
    assert tls.development_files(tmp_path / "tls", names).created  # renewed a week before it expires


def test_run_tls_options() -> None:
    assert run_all.parse(["-tls"]).tls and not run_all.parse([]).tls
    options = run_all.parse(["-cert", "c.pem", "-key", "k.pem"])
    assert (options.tls, options.cert, options.key) == (True, "c.pem", "k.pem")
    with pytest.raises(run_all.SettingsError, match="option -cert needs -key"):
        run_all.parse(["-tls", "-cert", "c.pem"])


@dataclass
class Platform:
    data: Path
    port: int
    north: int
    south: int
    mqtt: int
    history: int = 0
    rules: int = 0
    dashboard: int = 0
    api: int = 0
    api_mqtt: int = 0
    idm: int = 0
    apps: int = 0
    proc: subprocess.Popen[bytes] | None = None
    banner: str = ""

    def start(self) -> Platform:
        argv = [
            sys.executable, "-m", "orchestrator.cli", "run", "-tls", "-host", "127.0.0.1", "-data", str(self.data),
            "-port", str(self.port), "-northPort", str(self.north), "-httpPort", str(self.south),
            "-mqttPort", str(self.mqtt), "-mqttTlsPort", str(free_port()), "-historyPort", str(self.history),
            "-rulesPort", str(self.rules), "-dashboardPort", str(self.dashboard), "-apiPort", str(self.api),
            "-apiMqttPort", str(self.api_mqtt), "-idmPort", str(self.idm), "-appsPort", str(self.apps),
        ]
        with open(self.data / "run.log", "ab") as log:  # the children's logs, never a full pipe
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=_environ(), stdout=subprocess.PIPE, stderr=log)
        lines: list[str] = []
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:  # its stdout: the certificate line, then the ready line
            line = self.proc.stdout.readline().decode()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops" in line:
                self.banner = "".join(lines)
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # never a full pipe
                return self
        self.stop()
        raise RuntimeError(f"waziup run -tls did not start: {''.join(lines)}{(self.data / 'run.log').read_text()}")

    def trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.data / "tls" / "cert.pem"))

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    port, north, south, mqtt, history, rules, dashboard, api, api_mqtt, idm, apps = (free_port() for _ in range(11))
    running = Platform(tmp_path_factory.mktemp("run-tls"), port, north, south, mqtt, history, rules, dashboard, api,
                       api_mqtt, idm, apps).start()
    yield running
    running.stop()


def test_run_tls_serves_https_everywhere(platform: Platform) -> None:
    cert = platform.data / "tls" / "cert.pem"
    assert f"development certificate {cert} (created" in platform.banner
    assert f"curl --cacert {cert} https://localhost:{platform.port}/version" in platform.banner
    assert f"context broker https://localhost:{platform.port}, IoT agent https://localhost:{platform.north}" in (
        platform.banner
    )
    assert ((platform.data / "tls" / "key.pem").stat().st_mode & 0o777) == 0o600
    with httpx.Client(verify=platform.trust()) as client:
        broker = f"https://localhost:{platform.port}"
        entity = {"id": "Lamp1", "type": "Lamp", "on": {"value": True, "type": "Boolean"}}
        assert client.post(broker + "/v2/entities", json=entity).status_code == 201
        assert client.get(f"https://127.0.0.1:{platform.port}/v2/entities/Lamp1").json()["on"]["value"] is True
        assert client.get(f"https://localhost:{platform.north}/iot/about").status_code == 200
        assert client.get(f"https://localhost:{platform.south}/iot/d").status_code in (400, 404)  # no apikey
    for port in (platform.port, platform.north, platform.south):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=5)


def _https_only(platform: Platform, name: str, port: int) -> str:
    """The service's URL as the banner shows it: https, and nothing answers plain HTTP there."""
    url = f"https://localhost:{port}"
    assert f"{name} {url}" in platform.banner
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    return url


def test_run_tls_waziup_api_over_https_and_mqtt_over_tls(platform: Platform) -> None:
    """The WAZIUP API (docs/waziup-api.md) under -tls: HTTPS only, and its MQTT port speaks
    TLS with the platform's certificate; a value pushed over MQTT is stored."""
    import paho.mqtt.client as mqtt

    api = _https_only(platform, "WAZIUP API", platform.api) + "/api/v2"
    with httpx.Client(verify=platform.trust(), timeout=10) as client:
        assert client.post(api + "/devices", json={"id": "Tls-1", "sensors": [{"id": "S"}]}).status_code == 204
        publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        publisher.tls_set_context(platform.trust())
        assert publisher.connect("localhost", platform.api_mqtt) == 0
        publisher.loop_start()
        try:
            sent = publisher.publish("devices/Tls-1/sensors/S/value", json.dumps({"value": 5}), qos=1)
            sent.wait_for_publish(timeout=5)
            assert sent.is_published()  # acknowledged after storing (§6)
        finally:
            publisher.disconnect()
            publisher.loop_stop()
        assert client.get(api + "/devices/Tls-1/sensors/S").json()["value"]["value"] == 5
    plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    with pytest.raises(Exception):  # noqa: B017 (plain MQTT on a TLS port: the handshake never completes)
        plain.connect("localhost", platform.api_mqtt, keepalive=2)
        plain.loop_start()
        deadline = time.monotonic() + 3
        while not plain.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        plain.loop_stop()
        assert plain.is_connected()


def test_run_tls_dashboard_page_and_live_feed_over_https(platform: Platform) -> None:
    """The dashboard's page is HTTPS only; it reaches the broker over HTTPS (-caFile), and
    the broker notifies its live feed over HTTPS (-notifCaFile)."""
    page = _https_only(platform, "dashboard", platform.dashboard)
    service = {"fiware-service": "dash", "fiware-servicepath": "/"}
    with httpx.Client(verify=platform.trust(), timeout=15) as client:
        assert "waziup dashboard" in client.get(page + "/").text
        with client.stream("GET", page + "/api/events?service=dash&servicepath=/") as feed:
            lines = feed.iter_lines()
            assert line_within(lines, lambda line: line.startswith("event:"), 20, "the feed's first event") == (
                "event: ready")
            entity = {"id": "Sensor9", "type": "Sensor", "t": {"value": 5, "type": "Number"}}
            assert client.post(f"https://localhost:{platform.port}/v2/entities", json=entity,
                               headers=service).status_code == 201
            event = line_within(lines, lambda line: line.startswith("data:") and "Sensor9" in line, 20, "Sensor9, live")
            assert json.loads(event[5:])["entity"]["t"]["value"] == 5
        got = client.get(page + "/api/broker/v2/entities/Sensor9", headers=service)
        assert got.status_code == 200 and got.json()["t"]["value"] == 5


def test_run_tls_agent_reaches_the_broker(platform: Platform) -> None:
    service = {"fiware-service": "runtls", "fiware-servicepath": "/"}
    group = {"apikey": "runkey", "resource": "/iot/d", "entity_type": "Thing"}
    with httpx.Client(verify=platform.trust(), timeout=10) as client:
        assert client.post(f"https://localhost:{platform.north}/iot/groups", json={"groups": [group]},
                           headers=service).status_code == 201
        answer = client.post(f"https://localhost:{platform.south}/iot/d", params={"k": "runkey", "i": "s1"},
                             content="t|7", headers={"content-type": "text/plain"})
        assert answer.status_code == 200, answer.text
        got = client.get(f"https://localhost:{platform.port}/v2/entities/Thing:s1", headers=service)
        assert got.status_code == 200 and got.json()["t"]["value"] == 7


def test_run_tls_broker_forwards_commands_to_the_agent(platform: Platform) -> None:
    """The broker trusts the agent's north port (its -notifCaFile): a command reaches it."""
    service = {"fiware-service": "runcmd", "fiware-servicepath": "/"}
    group = {"apikey": "cmdkey", "resource": "/iot/d", "entity_type": "Robot"}
    device = {"device_id": "poll1", "apikey": "cmdkey", "entity_type": "Robot", "transport": "HTTP",
              "commands": [{"name": "open", "type": "command"}]}
    north, south = f"https://localhost:{platform.north}", f"https://localhost:{platform.south}"
    with httpx.Client(verify=platform.trust(), timeout=10) as client:
        assert client.post(north + "/iot/groups", json={"groups": [group]}, headers=service).status_code == 201
        assert client.post(north + "/iot/devices", json={"devices": [device]}, headers=service).status_code == 201
        sent = client.put(f"https://localhost:{platform.port}/v2/entities/Robot:poll1/attrs/open", params={"type": "Robot"},
                          json={"type": "command", "value": "now"}, headers=service)
        assert sent.status_code == 204, sent.text
        polled = client.get(south + "/iot/d", params={"i": "poll1", "k": "cmdkey", "getCmd": "1"})
        assert polled.text == "poll1@open|now"


def test_run_tls_history_is_https_only_and_fed_over_tls(platform: Platform) -> None:
    """The history serves the platform's certificate, and the broker's feed trusts it (-notifCaFile)."""
    history = _https_only(platform, "history", platform.history)
    service = {"fiware-service": "runhist", "fiware-servicepath": "/"}
    with httpx.Client(verify=platform.trust(), timeout=10) as client:
        assert client.get(history + "/version").status_code == 200
        entity = {"id": "Meter1", "type": "Meter", "kwh": {"value": 5, "type": "Number"}}
        assert client.post(f"https://localhost:{platform.port}/v2/entities", json=entity, headers=service).status_code == 201
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the feed delivers asynchronously
            answer = client.get(history + "/v2/entities/Meter1/attrs/kwh/value", headers=service)
            if answer.status_code == 200:
                break
            time.sleep(0.1)
    assert answer.status_code == 200 and answer.json()["values"] == [5], (platform.data / "run.log").read_text()[-3000:]


def test_run_tls_rules_are_https_only_and_fire_over_tls(platform: Platform) -> None:
    """The rules service serves the platform's certificate; the broker notifies its /notices
    over HTTPS (-notifCaFile) and it writes back to the broker over HTTPS (-brokerCa)."""
    rules = _https_only(platform, "rules", platform.rules)
    service = {"fiware-service": "runrules", "fiware-servicepath": "/"}
    rule = {"name": "hot", "condition": {"type": "Boiler", "q": "t>40"},
            "action": {"type": "update", "parameters": {"attributes": [
                {"name": "alarm", "type": "Boolean", "value": "true"}]}}}
    broker = f"https://localhost:{platform.port}"
    with httpx.Client(verify=platform.trust(), timeout=10) as client:
        assert client.get(rules + "/version").status_code == 200
        made = client.post(rules + "/rules", json=rule, headers=service)
        assert made.status_code == 200 and made.json()["data"]["subscriptionId"], made.text
        entity = {"id": "B1", "type": "Boiler", "t": {"value": 55, "type": "Number"}}
        assert client.post(broker + "/v2/entities", json=entity, headers=service).status_code == 201
        deadline = time.monotonic() + 30
        alarm = None
        while alarm is None and time.monotonic() < deadline:
            alarm = client.get(broker + "/v2/entities/B1?options=keyValues", headers=service).json().get("alarm")
            time.sleep(0.1)
    assert alarm is True, (platform.data / "run.log").read_text()[-3000:]


def test_run_tls_reuses_its_certificate(platform: Platform) -> None:
    """Last of the module: restarts the platform on the same data directory."""
    cert = platform.data / "tls" / "cert.pem"
    before = cert.read_bytes()
    platform.stop()
    platform.start()
    assert f"development certificate {cert} (reused" in platform.banner and cert.read_bytes() == before
    served = ssl.get_server_certificate(("127.0.0.1", platform.port))
    assert x509.load_pem_x509_certificate(served.encode()) == x509.load_pem_x509_certificate(before)


# -- notifications to a private CA's receiver ------------------------------------------------


class TLSReceiver:
    """An https server of the private CA recording the bodies POSTed to it."""

    def __init__(self, pki: PrivateCA) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.cert, pki.key)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)  # failed handshakes: skipped
        self.url = f"https://localhost:{self.server.server_address[1]}/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(pki: PrivateCA) -> Iterator[TLSReceiver]:
    server = TLSReceiver(pki)
    yield server
    server.close()


def _notify_once(broker: BrokerProcess, receiver: TLSReceiver) -> dict[str, Any]:
    """Subscribe the receiver, write an entity; the subscription's notification status once
    it has sent or failed."""
    entity_id = "N" + uuid.uuid4().hex[:8]
    subscription = {"subject": {"entities": [{"id": entity_id}]}, "notification": {"http": {"url": receiver.url}}}
    created = httpx.post(broker.url + "/v2/subscriptions", json=subscription)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    entity = {"id": entity_id, "type": "T", "v": {"value": 1, "type": "Number"}}
    assert httpx.post(broker.url + "/v2/entities", json=entity).status_code == 201
    deadline = time.monotonic() + 10
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = httpx.get(broker.url + location).json()["notification"]
        if "lastFailure" in status or "lastSuccess" in status:
            break
        time.sleep(0.05)
    return status


def test_https_notification_to_a_private_ca_fails_without_notif_ca_file(
    broker_process: Callable[[list[str]], BrokerProcess], receiver: TLSReceiver
) -> None:
    status = _notify_once(broker_process(["-dbURI", "memory://"]), receiver)
    assert "lastFailure" in status and "lastSuccess" not in status, status
    assert receiver.received == []


def test_https_notification_to_a_private_ca_with_notif_ca_file(
    pki: PrivateCA, broker_process: Callable[[list[str]], BrokerProcess], receiver: TLSReceiver
) -> None:
    status = _notify_once(broker_process(["-dbURI", "memory://", "-notifCaFile", str(pki.ca)]), receiver)
    assert "lastSuccess" in status and status.get("lastSuccessCode") == 200, status
    assert receiver.received and receiver.received[0]["data"][0]["v"]["value"] == 1


def test_run_tls_orchestrator_over_https(platform: Platform) -> None:
    """The orchestrator (apps, discovery, sources) under -tls: HTTPS only, with the platform's
    certificate; its discovery reads the broker over HTTPS (it trusts the same certificate):
    an entity created on the broker is found."""
    apps = _https_only(platform, "apps", platform.apps)
    with httpx.Client(verify=platform.trust(), timeout=10) as client:
        assert client.get(apps + "/version").json()["name"] == "waziup-orchestrator"
        broker = f"https://localhost:{platform.port}"
        entity = {"id": "Probe-tls", "type": "Probe", "temperature": {"value": 21, "type": "Number"}}
        assert client.post(broker + "/v2/entities", json=entity).status_code == 201
        assert client.post(apps + "/discovery/refresh").status_code == 200
        hits = client.get(apps + "/discovery/sensors", params={"q": "temperature"}).json()
        assert any(hit["entityId"] == "Probe-tls" for hit in hits)
