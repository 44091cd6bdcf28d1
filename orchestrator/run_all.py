"""``waziup run``: the whole platform on one machine, with nothing else to install.

Five child processes, started in this order and each waited for (all listening on ``-host``:
127.0.0.1 by default, 0.0.0.0 with ``-auth``; a warning when the platform is reachable from
other machines without ``-auth``):

1. an MQTT broker on ``-mqttPort`` (1883), unless ``-mqttURI`` names one already running:
   Mosquitto when it is installed (``orchestrator/mosquitto.py``: its files under
   ``<data>/mqtt``, device accounts per group kept by the agent), else the embedded amqtt
   (``python -m orchestrator.run_all mqtt-broker``: open, plain, MQTT 3.1.1 only);
2. the history service (``waziup history``, ``analytics/history``) on ``-historyPort`` (8668),
   its store beside the broker's (``-historyDbURI``);
3. the context broker (``waziup broker -multiservice``) on ``-port`` (1026), data under ``-data``,
   its change feed (``-feedURL``, broker/feed.py) pointed at the history's ``/v2/notify``;
4. the rules service (``waziup rules``, ``analytics/rules/service``) on ``-rulesPort`` (9090,
   Perseo's), once the broker answers: its rules' subscriptions notify its ``/notices``,
   which the broker may reach (``-notifAllowedHosts``); its store is ``<data>/rules.db``, or the
   broker's PostgreSQL database when it runs on one;
5. the IoT agent (``waziup iot-agent``): north 4041, south HTTP 7896, MQTT client;
6. the dashboard (``waziup dashboard``, ``analytics/dashboard``) on ``-dashboardPort`` (3000),
   a web page calling the others; its live feed is a broker subscription notifying its
   ``/notify/...`` (``-notifAllowedHosts``).

7. the WAZIUP cloud API v2 (``waziup api``, ``orchestrator/waziup_api``) on ``-apiPort`` (8800)
   with its MQTT broker on ``-apiMqttPort`` (3883): devices in the broker's tenant ``waziup``
   (which the feed then leaves to it: it hands its datapoints to the history itself),
   accounts at the identity manager.

8. the orchestrator's service (``waziup orchestrator``, ``orchestrator/appserver``) on
   ``-appsPort`` (8080): apps deployed from source, sensor discovery, external data sources;
   apps' notifications reach it on ``/ingress``, which it forwards to the app.

With ``-auth``, or when the WAZIUP API runs, the identity manager (``waziup idm``,
``-idmPort``) starts first, and ``platform_auth`` makes the accounts the services use;
without ``-auth`` only the WAZIUP API takes its tokens.

SIGINT/SIGTERM stop them in reverse order (SIGTERM, then SIGKILL after 10 s); if one dies,
the others are stopped too and ``waziup run`` exits non-zero.

``-tls``: the broker, both ports of the agent, the history service, the rules service and
the identity manager and the dashboard speak HTTPS only, with ``-cert``/``-key`` or else a development
certificate made once under ``<data>/tls`` (``orchestrator/tls.py``); the agent trusts that
certificate to reach the broker, the broker to reach the agent, to feed the history and to
notify the rules service (its ``-notifCaFile``), the rules service to reach the broker
(``-brokerCa``), the dashboard to reach all of them (``-caFile``).
Mosquitto serves MQTT over TLS on ``-mqttTlsPort`` (8883) with the same certificate, and its
plain port listens on loopback only, for the agent (as HTTP, plain MQTT is not offered
to the network).

``-auth`` (``WAZIUP_AUTH``): the broker, the agent's ports, the history service and the
rules service are behind the PEP (``security.pep:*_guard``, the callers' tokens decided
against the identity manager's NGSI policies) and a per-caller rate limit; ``/version``
(and the history's ``/health``) stay public. The agent and the rules service reach the
broker, and the broker's feed the history, with service accounts of their own
(``waziup-iot-agent``; ``waziup-rules``; ``waziup-broker``, which may only create and
update); the broker's notifications to the rules service's ``/notices`` carry the broker's
own token (``-notifTokenFor``), which its PEP admits. The dashboard signs its users in at the identity manager
(authorization code with PKCE, as the platform's application ``waziup``) and calls the
services with the user's token. Mosquitto refuses anonymous clients; devices log in
with their group's account. Without ``-auth`` MQTT is open, as the broker is without a PEP.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ngsi.settings import (
    FLAG,
    PORT,
    Choice,
    Int,
    Repeated,
    SettingsError,
    Table,
    Text,
    command_line,
    option,
)

from . import mosquitto, platform_auth


@dataclass
class Options:
    port: int = 1026
    data: str = "data"
    mqtt_port: int = 1883
    mqtt_uri: str = ""
    mqtt_broker: str = "auto"  # auto | mosquitto | amqtt
    mqtt_tls_port: int = 8883
    mqtt_strict: bool = False
    mqtt_lora_user: str = ""
    auth: bool = False
    north_port: int = 4041
    http_port: int = 7896
    idm_port: int = 3005
    history_port: int = 8668  # 0: no history service
    history_db_uri: str = ""  # "": the broker's PostgreSQL database when it runs on one, else <data>/history.db
    history_tenants: tuple[str, ...] = field(default_factory=tuple)
    history_types: tuple[str, ...] = field(default_factory=tuple)
    rules_port: int = 9090  # 0: no rules service
    dashboard_port: int = 3000  # 0: no dashboard
    api_port: int = 8800  # 0: no WAZIUP API
    api_mqtt_port: int = 3883  # 0: the WAZIUP API without MQTT
    apps_port: int = 8080  # 0: no orchestrator service (apps, discovery, sources)
    host: str = ""  # "": 127.0.0.1, or 0.0.0.0 with -auth (see parse)
    tls: bool = False
    cert: str = ""  # empty with tls: the development certificate under <data>/tls
    key: str = ""
    broker_args: list[str] = field(default_factory=list)


OPTIONS = Table(
    Options,
    option("-port", type=PORT, help="the context broker's HTTP port"),
    option("-data", type=Text("DIR"), help="data directory of the broker and the IoT agent"),
    option("-mqttPort", type=PORT, help="port of the MQTT broker started (plain MQTT)"),
    option("-mqttURI", type=Text("URI"),
           help="mqtt://host:port of an MQTT broker already running, instead of starting one (its accounts "
           "are yours to keep)"),
    option("-mqttBroker", type=Choice("auto", "mosquitto", "amqtt"),
           help="the MQTT broker started: Mosquitto, or the embedded amqtt (open to anyone, plain, MQTT 3.1.1 only); "
           "auto: Mosquitto when installed (scripts/install-mosquitto.sh)"),
    option("-mqttTlsPort", type=PORT,
           help="-tls: Mosquitto's MQTT over TLS port, with the services' certificate (the plain -mqttPort then "
           "listens on loopback only)"),
    option("-mqttStrict", type=FLAG,
           help="a device reads only the commands of the device its MQTT client id names (client id = device id); "
           "else any device of a group reads the group's commands"),
    option("-mqttLoraUser", type=Text("NAME"),
           help="an MQTT account for a LoRaWAN network server (ChirpStack and The Things Stack topics only); its "
           "password is made once in <data>/mqtt/lora.secret"),
    option("-auth", type=FLAG, env="WAZIUP_AUTH",
           help="security on: the identity manager runs (-idmPort), the broker, the agent's ports and the history "
           "take only its tokens (PEP) and limit each caller's rate, MQTT refuses anonymous clients (needs Mosquitto). "
           "Without it the platform is open, as Orion is: it then listens on 127.0.0.1 unless -host says otherwise"),
    option("-idmPort", type=PORT, help="-auth: the identity manager's port (Keyrock's)"),
    option("-historyPort", type=Int(0, 65535, metavar="PORT"),
           help="the history service's port (QuantumLeap's API; fed by the broker's change feed); 0: none"),
    option("-historyDbURI", type=Text("URL"),
           shown="the broker's -dbURI when PostgreSQL, else sqlite:///<-data>/history.db",
           help="the history service's store"),
    option("-historyTenants", type=Repeated(),
           help="the tenants (Fiware-Service) whose changes the history keeps; repeatable or comma-separated; "
           "default all"),
    option("-historyTypes", type=Repeated(),
           help="the entity types whose changes the history keeps; repeatable or comma-separated; default all"),
    option("-rulesPort", type=Int(0, 65535, metavar="PORT"),
           help="the rules service's port (Perseo's API; its rules subscribe to the broker); 0: none"),
    option("-dashboardPort", type=Int(0, 65535, metavar="PORT"),
           help="the dashboard's port (a web page: entities live, plots, map, devices, rules); 0: none"),
    option("-apiPort", type=Int(0, 65535, metavar="PORT"),
           help="the WAZIUP cloud API v2's port (/api/v2; the reference's 800 needs root: docs/waziup-api.md); it "
           "needs the identity manager, which then runs without -auth too; 0: none"),
    option("-apiMqttPort", type=Int(0, 65535, metavar="PORT"),
           help="the WAZIUP API's MQTT port (devices/{id}/sensors/{id}/value...); 0: none"),
    option("-appsPort", type=Int(0, 65535, metavar="PORT"),
           help="the orchestrator's service: apps deployed from source (/apps), sensor discovery (/discovery/sensors), "
           "external data sources (/sources); 0: none"),
    option("-northPort", type=PORT, help="the IoT agent's north port (provisioning API)"),
    option("-httpPort", type=PORT, help="the IoT agent's device HTTP port"),
    option("-host", type=Text("ADDRESS"), shown="127.0.0.1; 0.0.0.0 with -auth",
           help="address every service listens on: the broker, the agent's two ports, the history, the MQTT broker. "
           "Without -auth anyone who reaches them may read and change everything: a warning says so when it is not "
           "loopback"),
    option("-tls", type=FLAG,
           help="HTTPS only on the broker, the agent's two ports, the history and the rules service; without "
           "-cert/-key, a self-signed certificate made under <data>/tls (clients must trust it: curl --cacert <data>/tls/cert.pem)"),
    option("-cert", type=Text("FILE"),
           help="-tls: certificate (PEM) of every service, valid for the address they reach each other at "
           "(127.0.0.1, or -host); implies -tls"),
    option("-key", type=Text("FILE"), help="-tls: its private key (PEM, not encrypted); implies -tls"),
    rest="broker_args",
    usage="[options] [-- broker options...]",
    about="The context broker (-multiservice), the IoT agent and an embedded MQTT broker, on this machine; "
    "words after -- go to the broker (waziup broker --help lists them).",
)


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Options:
    options = OPTIONS.build(argv, os.environ if environ is None else environ)
    if bool(options.cert) != bool(options.key):
        raise SettingsError(f"option {'-cert' if options.cert else '-key'} needs {'-key' if options.cert else '-cert'}")
    if options.cert:
        options.tls = True
    if not options.host:
        options.host = "0.0.0.0" if options.auth else "127.0.0.1"
    return options


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator.cli", *args]


# MQTT 3.1.1 CONNECT (clean session, keep-alive 10 s, empty client id) and DISCONNECT: a
# polite probe, where a bare TCP connect would make the broker log a protocol error.
_MQTT_CONNECT = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 10, 0, 0])
_MQTT_DISCONNECT = bytes([0xE0, 0])


def reachable(host: str) -> str:
    """The address a client on this machine reaches a server listening on ``host`` at."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


def _http(host: str, port: int, scheme: str = "http") -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


@dataclass(frozen=True)
class _TLS:
    """The files every service serves, and the context clients of this machine trust them with."""

    cert: str
    key: str
    trust: ssl.SSLContext


def _tls(options: Options, local: str) -> _TLS:
    """-cert/-key, or the development certificate (made or reused); says where it is."""
    from . import tls  # the cryptography package only for -tls

    if options.cert:
        cert, key = os.path.abspath(options.cert), os.path.abspath(options.key)
        try:
            valid = tls.covers(Path(cert).read_bytes(), local)
        except OSError as exc:
            raise RuntimeError(f"option -cert: cannot read {cert}: {exc.strerror}") from None
        except ValueError:
            raise RuntimeError(f"option -cert: {cert} holds no PEM certificate") from None
        if not valid:
            raise RuntimeError(
                f"option -cert: {cert} is not valid for {local}, where the services reach each other (-host names it)"
            )
    else:
        try:
            files = tls.development_files(os.path.join(options.data, "tls"), tls.machine_names([local]))
        except OSError as exc:
            raise RuntimeError(f"cannot write the development certificate under {options.data}: {exc}") from None
        cert, key = str(files.cert.resolve()), str(files.key.resolve())
        print(
            f"waziup: TLS with the development certificate {cert} ({'created' if files.created else 'reused'}; "
            f"its key {key}): clients must trust it, e.g. curl --cacert {cert} "
            f"{_http('localhost', options.port, 'https')}/version",
            flush=True,
        )
    trust = ssl.create_default_context(cafile=cert)
    trust.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # as the agent's --cb-ca and the broker's -notifCaFile
    return _TLS(cert, key, trust)


def _mqtt_ready(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(_MQTT_CONNECT)
            ack = sock.recv(4)
            sock.sendall(_MQTT_DISCONNECT)
            return ack[:1] == b"\x20"
    except OSError:
        return False


def _wait_mqtt(host: str, port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        if _mqtt_ready(port, host):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not accept MQTT connections on port {port} within {timeout:.0f} s")


def _wait_http(
    url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 30, context: ssl.SSLContext | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1, context=context):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s")


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class _Mqtt:
    """The MQTT broker as the agent is to use it, and as the summary line shows it."""

    agent_args: list[str]
    agent_env: dict[str, str]  # its account (the environment: not on a command line others can read)
    shown: str


def _start_mqtt(
    options: Options, local: str, shown: str, tls: _TLS | None, children: list[tuple[str, subprocess.Popen[bytes]]]
) -> _Mqtt:
    """Start the MQTT broker the options ask for (or none, with -mqttURI) and say which runs."""
    if options.mqtt_uri:
        if options.auth:
            print("waziup run: -auth: the MQTT broker of -mqttURI is yours to secure; its accounts are not kept",
                  file=sys.stderr, flush=True)
        return _Mqtt(["-mqttURI", options.mqtt_uri], {}, options.mqtt_uri)
    binary = None if options.mqtt_broker == "amqtt" else mosquitto.find_binary()
    if binary is None:
        if options.mqtt_broker == "mosquitto":
            raise RuntimeError("-mqttBroker mosquitto: mosquitto is not installed (scripts/install-mosquitto.sh)")
        if options.auth:
            raise RuntimeError(
                "-auth needs Mosquitto as the MQTT broker (scripts/install-mosquitto.sh), or -mqttURI: the embedded "
                "amqtt takes anyone"
            )
        why = "-mqttBroker amqtt" if options.mqtt_broker == "amqtt" else "mosquitto is not installed: scripts/install-mosquitto.sh"
        print(f"waziup: MQTT broker: the embedded amqtt ({why}): open to anyone, MQTT 3.1.1 only"
              + (", no TLS" if tls else ""), flush=True)
        proc = subprocess.Popen([sys.executable, "-m", "orchestrator.run_all", "mqtt-broker", options.host, str(options.mqtt_port)])
        children.append(("MQTT broker", proc))
        _wait_mqtt(local, options.mqtt_port, proc, "the MQTT broker")
        return _Mqtt(["--mqtt-host", local, "--mqtt-port", str(options.mqtt_port)], {}, f"{shown}:{options.mqtt_port}")
    # -tls: plain MQTT for the agent only, on loopback; devices use the TLS port
    plain = ("::1" if local == "::1" else "127.0.0.1") if tls else local
    listeners = [mosquitto.Listener(options.mqtt_port, plain if tls else options.host)]
    if tls:
        listeners.append(mosquitto.Listener(options.mqtt_tls_port, options.host, tls.cert, tls.key))
    try:
        prepared = mosquitto.prepare(
            options.data, listeners, auth=options.auth, strict=options.mqtt_strict, lora_user=options.mqtt_lora_user
        )
    except (ValueError, OSError) as exc:
        raise RuntimeError(f"MQTT broker: {exc}") from None
    layout = prepared.layout
    proc = mosquitto.start(binary, layout)
    children.append(("MQTT broker", proc))
    try:
        _wait_mqtt(plain, options.mqtt_port, proc, "the MQTT broker (Mosquitto)")
    except RuntimeError as exc:
        tail = mosquitto.log_tail(layout)
        raise RuntimeError(f"{exc}" + (f"; {layout.log} ends with:\n{tail}" if tail else "")) from None
    print(
        f"waziup: MQTT broker: Mosquitto ({binary}), "
        + ("anonymous clients refused (-auth)" if options.auth else "open to anonymous clients (no -auth)")
        + f"; devices log in as their group (docs/iot_agent.md, MQTT credentials); files and log under {layout.directory}",
        flush=True,
    )
    if options.mqtt_lora_user:
        print(f"waziup: MQTT account {options.mqtt_lora_user} for a LoRaWAN network server: its password is in "
              f"{layout.lora_secret}", flush=True)
    where = f"{shown}:{options.mqtt_port}" if not tls else f"TLS {shown}:{options.mqtt_tls_port}"
    return _Mqtt(
        ["--mqtt-host", plain, "--mqtt-port", str(options.mqtt_port),
         "--mqtt-passwd-file", str(layout.passwd), "--mqtt-broker-pidfile", str(layout.pid)],
        {"IOTA_MQTT_USERNAME": prepared.agent_user, "IOTA_MQTT_PASSWORD": prepared.agent_password},
        where,
    )


RATE_LIMIT = "100"  # -auth: requests per second of one caller, unless WAZIUP_RATE_LIMIT says otherwise


def _start_security(
    options: Options, local: str, scheme: str, tls: _TLS | None, children: list[tuple[str, subprocess.Popen[bytes]]],
    waits: dict[str, Any], dashboard_url: str,
) -> platform_auth.PlatformAuth:
    """-auth: the identity manager, then the accounts the platform's services use (and the
    dashboard's way back from sign-in, at ``dashboard_url`` as browsers reach it)."""
    tls_args = ["-https", "-key", tls.key, "-cert", tls.cert] if tls else []
    url = _http(local, options.idm_port, scheme)
    proc = subprocess.Popen(
        _cli("idm", "-host", options.host, "-port", str(options.idm_port), "-data", options.data, "-issuer", url,
             *tls_args)
    )
    children.append(("identity manager", proc))
    _wait_http(url + "/.well-known/openid-configuration", proc, "the identity manager", **waits)
    try:
        security = platform_auth.setup(url, options.data, tls.trust if tls else None, dashboard_url)
    except platform_auth.SetupError as exc:
        raise RuntimeError(str(exc)) from None
    rate = {"WAZIUP_RATE_LIMIT": os.environ.get("WAZIUP_RATE_LIMIT", RATE_LIMIT)}
    if tls:  # the PEPs trust the identity manager's certificate (the services' own)
        rate["WAZIUP_PEP_IDM_CA"] = tls.cert
    print(f"waziup: identity manager {url} (Keyrock's API; the administrator's password: WAZIUP_ADMIN_PASSWORD, "
          f"or {os.path.join(options.data, 'admin-password')}); "
          + ("every API takes its tokens" if options.auth else "the WAZIUP API's accounts"), flush=True)
    # the history's probes (/version, /health) are never limited: a 429 to a health check restarts a healthy service
    history_rate = {**rate, "WAZIUP_RATE_EXEMPT": os.environ.get("WAZIUP_RATE_EXEMPT", "/version,/health")}
    # the rules' notices come from the broker (its token): never limited, as the feed to the history is not by address
    rules_rate = {**rate, "WAZIUP_RATE_EXEMPT": os.environ.get("WAZIUP_RATE_EXEMPT", "/version,/notices")}
    return platform_auth.PlatformAuth({**security.broker_env, **rate}, {**security.agent_env, **rate},
                                      {**security.history_env, **history_rate}, {**security.rules_env, **rules_rate},
                                      {**security.dashboard_env, "WAZIUP_DASHBOARD_IDM_URL": url},
                                      security.api_env, security.orch_env)


def _guards(security: platform_auth.PlatformAuth | None) -> tuple[list[str], list[str], list[str], list[str]]:
    """-auth: the PEP first (the caller's identity), then the rate limit (per caller), then
    the privacy guard (the caller's release, security/privacy): the broker's, the agent's,
    the history service's and the rules service's options."""
    if security is None:
        return [], [], [], []
    return (
        ["-guard", "security.pep:broker_guard", "-guard", "security.ratelimit:broker_guard",
         "-guard", "security.privacy:broker_guard",
         "-notifFilter", "security.privacy.notifications:notification_filter"],
        ["--guard", "security.pep:agent_guard", "--guard", "security.ratelimit:agent_guard"],
        ["-guard", "security.pep:history_guard", "-guard", "security.ratelimit:broker_guard",
         "-guard", "security.privacy:history_guard"],
        ["-guard", "security.pep:rules_guard", "-guard", "security.ratelimit:broker_guard"],
    )


def _broker_db_uri(broker_args: Sequence[str]) -> str:
    """The -dbURI among the words after -- (either spelling), or ""."""
    for i, word in enumerate(broker_args):
        name, eq, value = word.lstrip("-").partition("=")
        if name == "dbURI":
            return value if eq else (broker_args[i + 1] if i + 1 < len(broker_args) else "")
    return ""


def _start_history(
    options: Options, local: str, tls: _TLS | None, security: platform_auth.PlatformAuth | None,
    guards: Sequence[str], children: list[tuple[str, subprocess.Popen[bytes]]],
) -> list[str]:
    """The history service, on -host as every service, and the broker options that feed it
    every change (broker/feed.py). -tls: HTTPS only, with the platform's certificate, which
    the broker's -notifCaFile trusts for the feed. -auth: behind its PEP and rate limit
    (``guards``); the feed authenticates with the broker's service account (the broker's
    environment, platform_auth)."""
    db_uri = options.history_db_uri
    if not db_uri and _broker_db_uri(options.broker_args).startswith(("postgresql://", "postgres://")):
        db_uri = _broker_db_uri(options.broker_args)
    tls_args = ["-https", "-key", tls.key, "-cert", tls.cert] if tls else []
    proc = subprocess.Popen(
        _cli("history", "-host", options.host, "-port", str(options.history_port), "-data", options.data,
             *(["-dbURI", db_uri] if db_uri else []), *tls_args, *guards),
        env={**os.environ, **security.history_env} if security else None,
    )
    children.append(("history service", proc))
    url = _http(local, options.history_port, "https" if tls else "http")
    _wait_http(url + "/version", proc, "the history service", **({"context": tls.trust} if tls else {}))
    feed = ["-feedURL", url + "/v2/notify"]
    for tenant in options.history_tenants:
        feed += ["-feedTenants", tenant]
    for entity_type in options.history_types:
        feed += ["-feedTypes", entity_type]
    return feed


def _rules_wanted(options: Options) -> bool:
    """Whether ``waziup run`` starts the rules service."""
    return bool(options.rules_port)


def _start_rules(
    options: Options, local: str, tls: _TLS | None, security: platform_auth.PlatformAuth | None,
    guards: Sequence[str], children: list[tuple[str, subprocess.Popen[bytes]]],
) -> str:
    """The rules service, on -host as every service, pointed at the broker; its rules'
    subscriptions notify it at the address the broker reaches it at. -tls: HTTPS only with
    the platform's certificate (the broker's -notifCaFile trusts it), and it trusts the
    same for the broker (-brokerCa). -auth: behind its PEP and rate limit (``guards``), its
    broker calls with the service account ``waziup-rules`` (its environment, platform_auth);
    the broker's notices to it carry the broker's token (``-notifTokenFor``). Its URL."""
    scheme = "https" if tls else "http"
    url = _http(local, options.rules_port, scheme)
    db_uri = _broker_db_uri(options.broker_args)  # beside the broker's data when that is PostgreSQL
    tls_args = ["-https", "-key", tls.key, "-cert", tls.cert, "-brokerCa", tls.cert] if tls else []
    proc = subprocess.Popen(
        _cli("rules", "-host", options.host, "-port", str(options.rules_port), "-data", options.data,
             "-brokerURL", _http(local, options.port, scheme), "-notifyURL", url + "/notices",
             *(["-dbURI", db_uri] if db_uri.startswith(("postgresql://", "postgres://")) else []),
             *tls_args, *guards),
        env={**os.environ, **security.rules_env} if security else None,
    )
    children.append(("rules service", proc))
    _wait_http(url + "/version", proc, "the rules service", **({"context": tls.trust} if tls else {}))
    return url


def _dashboard_url(options: Options, shown: str) -> str:
    """The dashboard as browsers reach it ("": none runs): HTTPS with -tls, as every service."""
    if not options.dashboard_port:
        return ""
    return _http(shown, options.dashboard_port, "https" if options.tls else "http")


def _start_dashboard(
    options: Options, local: str, scheme: str, tls: _TLS | None, security: platform_auth.PlatformAuth | None,
    public_url: str, children: list[tuple[str, subprocess.Popen[bytes]]],
) -> None:
    """The dashboard, on -host, calling the services at the addresses they reach each other
    at; the broker notifies its live feed there too. -tls: its page over HTTPS with the
    platform's certificate, which it also trusts for the services. -auth: users sign in at
    the identity manager (its URL, and the platform application's client id and secret, in
    the dashboard's environment: platform_auth)."""
    url = _http(local, options.dashboard_port, scheme)
    tls_args = ["-https", "-key", tls.key, "-cert", tls.cert, "-caFile", tls.cert] if tls else []
    proc = subprocess.Popen(
        _cli("dashboard", "-host", options.host, "-port", str(options.dashboard_port),
             "-brokerURL", _http(local, options.port, scheme),
             "-historyURL", _http(local, options.history_port, scheme) if options.history_port else "",
             "-agentURL", _http(local, options.north_port, scheme),
             "-rulesURL", _http(local, options.rules_port, scheme) if options.rules_port else "",
             "-notifyURL", url, "-publicURL", public_url, *tls_args),
        env={**os.environ, **security.dashboard_env, "WAZIUP_DASHBOARD_IDM_PUBLIC_URL": _http(
            urlsplit(public_url).hostname or local, options.idm_port, scheme)} if security else None,
    )
    children.append(("dashboard", proc))
    _wait_http(url + "/api/config", proc, "the dashboard", **({"context": tls.trust} if tls else {}))


API_TENANT = "waziup"  # the WAZIUP API's devices, as the reference kept them in Orion


def _start_api(
    options: Options, local: str, scheme: str, tls: _TLS | None, accounts: platform_auth.PlatformAuth, auth: bool,
    children: list[tuple[str, subprocess.Popen[bytes]]],
) -> None:
    """The WAZIUP cloud API v2 (``orchestrator/waziup_api``) and its MQTT broker, on -host:
    devices in the broker's tenant ``waziup``, datapoints in the history, accounts at the
    identity manager (users log in as the platform's application). -tls: HTTPS and MQTT
    over TLS with the platform's certificate, which it trusts for the services. -auth:
    it reaches the broker and the history as the service account ``waziup-api``, and its
    callers are rate-limited; its own permission model (owner, public, admin, guest) holds
    either way."""
    url = _http(local, options.api_port, scheme)
    db_uri = _broker_db_uri(options.broker_args)  # beside the broker's data when that is PostgreSQL
    tls_args = ["-https", "-key", tls.key, "-cert", tls.cert, "-caFile", tls.cert] if tls else []
    env = {**os.environ, **accounts.api_env}
    if auth:
        env["WAZIUP_RATE_LIMIT"] = os.environ.get("WAZIUP_RATE_LIMIT", RATE_LIMIT)
    proc = subprocess.Popen(
        _cli("api", "-host", options.host, "-port", str(options.api_port), "-data", options.data,
             "-brokerURL", _http(local, options.port, scheme),
             "-historyURL", _http(local, options.history_port, scheme) if options.history_port else "",
             "-idmURL", _http(local, options.idm_port, scheme), "-clientId", accounts.api_env["WAZIUP_API_CLIENT_ID"],
             "-adminUser", accounts.api_env["WAZIUP_API_ADMIN_USER"], "-service", API_TENANT,
             "-mqttPort", str(options.api_mqtt_port),
             *(["-dbURI", db_uri] if db_uri.startswith(("postgresql://", "postgres://")) else []),
             *(["-authUser", platform_auth.API_USER, "-guard", "security.ratelimit:broker_guard"] if auth else []),
             *tls_args),
        env=env,
    )
    children.append(("WAZIUP API", proc))
    _wait_http(url + "/api/v2/ontologies/units", proc, "the WAZIUP API", **({"context": tls.trust} if tls else {}))


def _start_orchestrator(
    options: Options, local: str, scheme: str, tls: _TLS | None, accounts: platform_auth.PlatformAuth | None,
    auth: bool, mqtt_url: str, children: list[tuple[str, subprocess.Popen[bytes]]],
) -> None:
    """The orchestrator's service (``orchestrator/appserver``): apps, discovery, sources, on
    -host. Apps' notifications come in on its ``/ingress`` (the one destination the broker
    is allowed for them). With the identity manager it issues each app an account as the
    administrator; -auth: behind its PEP and rate limit, and it reaches the services as
    ``waziup-orchestrator``. -tls: HTTPS with the platform's certificate, trusted for the
    services too."""
    url = _http(local, options.apps_port, scheme)
    db_uri = _broker_db_uri(options.broker_args)
    tls_args = ["-https", "-key", tls.key, "-cert", tls.cert, "-caFile", tls.cert] if tls else []
    env = {**os.environ, **(accounts.orch_env if accounts else {})}
    if auth:
        env["WAZIUP_RATE_LIMIT"] = os.environ.get("WAZIUP_RATE_LIMIT", RATE_LIMIT)
        env["WAZIUP_RATE_EXEMPT"] = os.environ.get("WAZIUP_RATE_EXEMPT", "/version,/ingress/*")
    idm = ["-idmURL", _http(local, options.idm_port, scheme), "-clientId", accounts.orch_env["WAZIUP_ORCH_CLIENT_ID"],
           "-adminUser", accounts.orch_env["WAZIUP_ORCH_ADMIN_USER"]] if accounts and accounts.orch_env else []
    proc = subprocess.Popen(
        _cli("orchestrator", "-host", options.host, "-port", str(options.apps_port), "-data", options.data,
             "-brokerURL", _http(local, options.port, scheme),
             "-historyURL", _http(local, options.history_port, scheme) if options.history_port else "",
             "-iotaURL", _http(local, options.north_port, scheme), "-ingressURL", url, "-mqttURL", mqtt_url,
             "-discoveryTenants", "''" + (f",{API_TENANT}" if options.api_port else ""),
             *idm,
             *(["-dbURI", db_uri] if db_uri.startswith(("postgresql://", "postgres://")) else []),
             *(["-authUser", platform_auth.ORCH_USER, "-guard", "security.pep:orchestrator_guard",
                "-guard", "security.ratelimit:broker_guard"] if auth else []),
             *tls_args),
        env=env,
    )
    children.append(("orchestrator", proc))
    _wait_http(url + "/version", proc, "the orchestrator's service", **({"context": tls.trust} if tls else {}))


def _stop(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for _, proc in reversed(children):
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 10
    for what, proc in reversed(children):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"waziup run: {what} did not stop, killing it", file=sys.stderr)
            proc.kill()
            proc.wait()


def run(options: Options) -> int:
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if not options.auth and not _loopback(options.host):
        print(
            f"waziup run: WARNING: listening on {options.host} without -auth: anyone who reaches this machine may "
            "read and change every entity, device and subscription",
            file=sys.stderr, flush=True,
        )
    local = reachable(options.host)  # where the children reach each other
    shown = "localhost" if local in ("127.0.0.1", "::1") else local
    scheme = "http"
    broker_tls: list[str] = []
    agent_tls: list[str] = []
    waits: dict[str, Any] = {}  # _wait_http's context
    files: _TLS | None = None
    try:
        if options.tls:
            files = _tls(options, local)
            scheme, waits = "https", {"context": files.trust}
            # each trusts the other's certificate (the same): the agent its broker, the broker
            # the agent's north port (commands forwarded, notifications of cmdMode notification)
            broker_tls = ["-https", "-key", files.key, "-cert", files.cert, "-notifCaFile", files.cert]
            agent_tls = ["--https", "--key", files.key, "--cert", files.cert, "--cb-ca", files.cert]
        mqtt = _start_mqtt(options, local, shown, files, children)
        dashboard_url = _dashboard_url(options, shown)
        accounts = _start_security(options, local, scheme, files, children, waits, dashboard_url) \
            if options.auth or options.api_port else None
        security = accounts if options.auth else None  # without -auth the identity manager serves the WAZIUP API only
        broker_guards, agent_guards, history_guards, rules_guards = _guards(security)
        feed = _start_history(options, local, files, security, history_guards, children) if options.history_port else []
        if options.api_port and feed:  # the WAZIUP API hands its datapoints to the history itself
            feed += ["-feedSkipTenants", API_TENANT]
        # the broker may call the agent's north port (forwarded commands, notifications), and nothing
        # else on loopback or private networks unless the words after -- allow it
        allowed = ["-notifAllowedHosts", _hostport(local, options.north_port)]
        rules = _rules_wanted(options)
        if rules:  # and the rules service's notices, which carry the broker's own token under -auth
            allowed += ["-notifAllowedHosts", f"{_hostport(local, options.rules_port)}/notices"]
            if security:
                allowed += ["-notifTokenFor", _http(local, options.rules_port, scheme) + "/notices"]
        dashboard = bool(dashboard_url)
        if dashboard:  # and the dashboard's live feed
            allowed += ["-notifAllowedHosts", f"{_hostport(local, options.dashboard_port)}/notify"]
        if options.apps_port:  # and the apps' notifications, through the orchestrator's ingress
            allowed += ["-notifAllowedHosts", f"{_hostport(local, options.apps_port)}/ingress"]
        if not options.mqtt_uri:  # and MQTT notifications to the platform's own MQTT broker
            allowed += ["-notifAllowedHosts", f"mqtt://{_hostport(local, options.mqtt_port)}",
                        "-notifAllowedHosts", f"mqtt://localhost:{options.mqtt_port}"]
        proc = subprocess.Popen(
            _cli("broker", "-host", options.host, "-port", str(options.port), "-data", options.data, "-multiservice",
                 *broker_tls, *allowed, *broker_guards, *feed, *options.broker_args),
            env={**os.environ, **security.broker_env} if security else None,
        )
        children.append(("context broker", proc))
        _wait_http(_http(local, options.port, scheme) + "/version", proc, "the context broker", **waits)
        if rules:
            _start_rules(options, local, files, security, rules_guards, children)
        proc = subprocess.Popen(
            _cli(
                "iot-agent",
                "--north-host", options.host, "--north-port", str(options.north_port),
                "--http-host", options.host, "--http-port", str(options.http_port),
                "--cb-url", _http(local, options.port, scheme),
                "--provider-url", _http(local, options.north_port, scheme),
                "--data-dir", options.data,
                *agent_tls,
                *mqtt.agent_args,
                *agent_guards,
            ),
            env={**os.environ, **mqtt.agent_env, **(security.agent_env if security else {})}
            if mqtt.agent_env or security else None,
        )
        children.append(("IoT agent", proc))
        _wait_http(_http(local, options.north_port, scheme) + "/iot/about", proc, "the IoT agent", **waits)
        if dashboard:
            _start_dashboard(options, local, scheme, files, security, dashboard_url, children)
        if options.api_port and accounts is not None:
            _start_api(options, local, scheme, files, accounts, bool(security), children)
        if options.apps_port:
            _start_orchestrator(options, local, scheme, files, accounts, bool(security),
                                options.mqtt_uri or f"mqtt://{_hostport(local, options.mqtt_port)}", children)
        print(
            f"waziup: context broker {_http(shown, options.port, scheme)}, "
            f"IoT agent {_http(shown, options.north_port, scheme)}, "
            + (f"history {_http(shown, options.history_port, scheme)} " if options.history_port else "")
            + (f"rules {_http(shown, options.rules_port, scheme)} " if rules else "")
            + (f"dashboard {dashboard_url} " if dashboard else "")
            + (f"WAZIUP API {_http(shown, options.api_port, scheme)}/api/v2 " if options.api_port else "")
            + (f"(MQTT :{options.api_mqtt_port}) " if options.api_port and options.api_mqtt_port else "")
            + (f"apps {_http(shown, options.apps_port, scheme)}/apps " if options.apps_port else "")
            + f"(devices: {scheme.upper()} :{options.http_port}, MQTT {mqtt.shown}); "
            "Ctrl-C stops",
            flush=True,
        )
        while not stopping:
            for what, child in children:
                if child.poll() is not None:
                    print(f"waziup run: {what} exited with status {child.returncode}", file=sys.stderr)
                    return 1
            time.sleep(0.2)
        return 0
    except RuntimeError as exc:
        print(f"waziup run: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        _stop(children)


# -- the embedded MQTT broker ---------------------------------------------------------------


def mqtt_broker_config(host: str, port: int) -> dict[str, object]:
    """amqtt: one TCP listener, anonymous clients allowed (a local development broker)."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


async def serve_mqtt(host: str, port: int) -> None:
    from amqtt.broker import Broker

    broker = Broker(mqtt_broker_config(host, port))
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await broker.shutdown()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["mqtt-broker"]:
        logging.basicConfig(level=logging.WARNING)
        host, port = (args[1:3] + ["0.0.0.0", "1883"][len(args[1:3]) :])[:2]
        asyncio.run(serve_mqtt(host, int(port)))
        return
    options = command_line(OPTIONS, parse, args, prog="waziup run", show=print)
    os.makedirs(options.data, exist_ok=True)
    sys.exit(run(options))


if __name__ == "__main__":
    main()
