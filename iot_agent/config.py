"""IoT agent configuration: command-line flags, then ``IOTA_*`` environment variables, then defaults.

The variables carry the names the FIWARE IoT agents read (``IOTA_NORTH_PORT``,
``IOTA_CB_HOST``, ``IOTA_PROVIDER_URL``...), so a docker-compose written for
iotagent-ul/iotagent-json runs this agent unchanged. Each option also has a ``--kebab-case``
flag. A bad value stops start-up with a message naming the option and the value.
The options are one table, ``OPTIONS`` (``ngsi.settings``), which ``waziup iot-agent --help`` prints.
"""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ngsi.settings import (
    FLAG, PORT, Choice, Int, Prefix, Repeated, SettingsError, Table, Text, command_line, data_dir_option,
    destination_rules, guards_option, log_level_option, option,
)
from ngsi.tls import check_key_and_cert, trust_context

DEFAULT_DATA_DIR = "data"


ConfigError = SettingsError  # a flag or environment variable without a valid value

# The log levels iotagent-node-lib takes (iotagent-node-lib-api.md, "Log operations";
# logops, its logger, says WARN), by the logging level each stands for.
LOG_LEVELS: dict[str, int] = {"FATAL": 50, "ERROR": 40, "WARNING": 30, "WARN": 30, "INFO": 20, "DEBUG": 10}


@dataclass(frozen=True)
class Config:
    # north port: provisioning API and NGSI context provider
    north_host: str = "0.0.0.0"
    north_port: int = 4041
    # south HTTP port: /iot/d (UL), /iot/json
    http_host: str = "0.0.0.0"
    http_port: int = 7896
    # MQTT southbound (disabled while mqtt_host is empty)
    mqtt_host: str = ""
    mqtt_port: int = 1883
    mqtt_username: str = ""
    mqtt_password: str = ""
    mqtt_qos: int = 0
    mqtt_retain: bool = False
    mqtt_client_id: str = ""
    mqtt_uri: str = ""  # mqtt://[user:password@]host[:port]: sets the four above (-mqttURI)
    # the groups' MQTT accounts (iot_agent/mqtt_auth.py): Mosquitto's password file, its pid file
    mqtt_passwd_file: str = ""
    mqtt_broker_pidfile: str = ""
    # context broker
    cb_host: str = "localhost"
    cb_port: int = 1026
    cb_url: str = ""  # overrides cb_host/cb_port when set (IOTA_CB_URL)
    cb_flow_control: bool = False
    cb_ca: str = ""  # PEM CA certificates trusted for an https broker, besides the system's
    # iotagent-node-lib's ``authentication`` block (IOTA_AUTH_*): a token for a broker behind a PEP
    auth_enabled: bool = False
    auth_type: str = "oauth2"  # oauth2 (client credentials) | keystone (user and password)
    auth_header: str = "Authorization"
    auth_url: str = ""  # the identity manager; or auth_host/auth_port (http)
    auth_host: str = ""
    auth_port: int = 3005
    auth_user: str = ""
    auth_password: str = ""
    auth_client_id: str = ""
    auth_client_secret: str = ""
    auth_token_path: str = "/oauth2/token"
    auth_permanent_token: bool = False
    # The destination policy (ngsi/destinations.py) for device endpoints (HTTP commands):
    # loopback/private ones allowed only when listed; link-local/metadata never.
    allowed_destinations: tuple[str, ...] = ()
    provider_url: str = "http://localhost:4041"  # https://... with --https unless given
    # TLS on the north and south HTTP ports (no plain HTTP then)
    https: bool = False
    https_key: str = ""
    https_cert: str = ""
    # provisioning defaults
    default_resource: str = "/iot/d"
    default_key: str = ""
    default_transport: str = "MQTT"
    default_type: str = "Thing"
    default_entity_name_conjunction: str = ":"
    timestamp: bool = False
    autocast: bool = True
    explicit_attrs: bool = False
    cmd_mode: str = "legacy"
    polling_expiration: int = 0  # ms; 0: poll commands never expire
    polling_daemon_frequency: int = 0  # ms
    # persistence: "sqlite" (file under data_dir) or "memory"; "mongodb" is read as "sqlite"
    registry_type: str = "sqlite"
    data_dir: str = DEFAULT_DATA_DIR
    log_level: str = "INFO"
    # the request seam: guards as "module:factory", as the broker's (ngsi/server/guards.py)
    guards: tuple[str, ...] = field(default_factory=tuple)

    @property
    def broker_url(self) -> str:
        return (self.cb_url or f"http://{self.cb_host}:{self.cb_port}").rstrip("/")

    def tls_options(self) -> dict[str, str]:
        """uvicorn.Config's keyword arguments of every listener: its key and certificate with
        ``--https`` (absolute: the process may change directory later), none otherwise."""
        if not self.https:
            return {}
        return {"ssl_keyfile": os.path.abspath(self.https_key), "ssl_certfile": os.path.abspath(self.https_cert)}

    def broker_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of the NGSI client to an https broker with ``--cb-ca``: the
        system's CAs plus that file's, which may be a private CA or the broker's own
        (self-signed) certificate. None without ``--cb-ca``: the client's default (the
        system's CAs, host name checked). Raises ConfigError for an unreadable file."""
        return trust_context("--cb-ca", self.cb_ca) if self.cb_ca else None

    @property
    def registry_path(self) -> str | None:
        """SQLite file of the provisioning registry, or None to keep it in memory."""
        if self.registry_type == "memory":
            return None
        return os.path.join(self.data_dir, "iot_agent.db")


def _mqtt_uri(uri: str) -> dict[str, Any]:
    """``mqtt://user:password@host:1883`` -> mqtt_host/port/username/password ({} for ""; ValueError
    for what is not such a URI)."""
    if not uri:
        return {}
    parts = urlsplit(uri if "://" in uri else "mqtt://" + uri)
    try:
        port = parts.port or 1883
    except ValueError:
        raise ValueError(f"{uri!r} has no valid port") from None
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"{uri!r} is not mqtt://host[:port]")
    out: dict[str, Any] = {"mqtt_host": parts.hostname, "mqtt_port": port}
    if parts.username:
        out["mqtt_username"] = parts.username
        out["mqtt_password"] = parts.password or ""
    return out


IOTA = Prefix("IOTA_")  # iotagent-node-lib's variables: IOTA_ and the field in capitals (IOTA_NORTH_PORT)

OPTIONS = Table(
    Config,
    option("--north-host", type=Text("ADDRESS"), env=IOTA,
           help="address of the north port (provisioning API, context provider)"),
    option("--north-port", type=PORT, env=IOTA, help="north port"),
    option("--http-host", type=Text("ADDRESS"), env=IOTA, help="address of the device HTTP port (/iot/d, /iot/json)"),
    option("--http-port", type=PORT, env=IOTA, help="device HTTP port"),
    option("--mqtt-host", type=Text("HOST"), env=IOTA, help="MQTT broker of the devices (none: no MQTT)"),
    option("--mqtt-port", type=PORT, env=IOTA, help="its port"),
    option("--mqtt-username", env=IOTA, help="MQTT user name"),
    option("--mqtt-password", env=IOTA, help="MQTT password"),
    option("--mqtt-qos", type=Int(0, 2), env=IOTA, help="QoS of subscriptions and commands"),
    option("--mqtt-retain", type=FLAG, env=IOTA, help="commands published retained"),
    option("--mqtt-client-id", env=IOTA, shown="waziup-iota-<random>", help="MQTT client id"),
    option("--mqtt-uri", "-mqttURI", type=Text("URI"), env=IOTA,
           check=_mqtt_uri, help="mqtt://[user:password@]host[:port], instead of the four above"),
    option("--mqtt-passwd-file", type=Text("FILE"), env=IOTA,
           help="Mosquitto password file where the agent keeps one account per group apikey (username = apikey; "
           "docs/iot_agent.md, MQTT credentials), below its marker line; none: no accounts"),
    option("--mqtt-broker-pidfile", type=Text("FILE"), env=IOTA,
           help="pid file of that Mosquitto, sent SIGHUP after every change of the password file so that it "
           "rereads it; none: it rereads at its next reload"),
    option("--cb-host", type=Text("HOST"), env=IOTA, help="context broker host"),
    option("--cb-port", type=PORT, env=IOTA, help="context broker port"),
    option("--cb-url", type=Text("URL"), env=IOTA, help="context broker URL, instead of the two above"),
    option("--cb-ca", type=Text("FILE"), env=IOTA,
           help="PEM file of CA certificates trusted for an https broker (--cb-url https://...), besides the "
           "system's: a private CA, or the broker's self-signed certificate"),
    option("--auth-enabled", type=FLAG, env=IOTA,
           help="send the broker a token of the identity manager (a broker behind a PEP)"),
    option("--auth-type", type=Choice("oauth2", "keystone"), env=IOTA,
           help="oauth2: client credentials (clientId/clientSecret); keystone: user and password (/v3/auth/tokens)"),
    option("--auth-header", type=Text("NAME"), env=IOTA,
           help="Authorization (Bearer <token>) or another header given the token alone, e.g. X-Auth-Token"),
    option("--auth-url", type=Text("URL"), env=IOTA, help="the identity manager"),
    option("--auth-host", type=Text("HOST"), env=IOTA, help="the identity manager's host, when no --auth-url (http)"),
    option("--auth-port", type=PORT, env=IOTA, help="its port, with --auth-host"),
    option("--auth-user", type=Text("NAME"), env=IOTA,
           help="keystone: the user; oauth2: a service account (the password grant) instead of client credentials"),
    option("--auth-password", type=Text("PASSWORD"), env=IOTA,
           shown="none", help="the user's password (better in the environment than on a command line)"),
    option("--auth-client-id", type=Text("ID"), env=IOTA, help="oauth2: the agent's OAuth client id"),
    option("--auth-client-secret", type=Text("SECRET"), env=IOTA,
           shown="none", help="oauth2: its secret (better in the environment)"),
    option("--auth-token-path", type=Text("PATH"), env=IOTA, help="oauth2: the token endpoint's path"),
    option("--auth-permanent-token", type=FLAG, env=IOTA,
           help="oauth2: a permanent token (Keyrock's scope=permanent), fetched once"),
    option("--allowed-destinations", type=Repeated(), env=IOTA, check=destination_rules,
           help="a loopback or private device endpoint HTTP commands may go to: host, host:port, "
           "host:port/path-prefix or a network (192.168.0.0/16); repeatable or comma-separated"),
    option("--cb-flow-control", type=FLAG, env=IOTA,
           help="updates with Orion's flowControl (useCBflowControl default)"),
    option("--provider-url", type=Text("URL"), env=IOTA, shown="http://localhost:4041 (https://... with --https)",
           help="the URL the broker reaches the north port at"),
    option("--https", type=FLAG, env=IOTA,
           help="serve HTTPS only on the north and device HTTP ports (needs --key and --cert)"),
    option("--key", field="https_key", type=Text("FILE"), env=IOTA,
           help="--https: the private key, PEM, not encrypted"),
    option("--cert", field="https_cert", type=Text("FILE"), env=IOTA,
           help="--https: the certificate, PEM, followed by any intermediate CA certificates"),
    option("--default-resource", type=Text("PATH"), env=IOTA, help="resource of groups provisioned without one"),
    option("--default-key", type=Text("APIKEY"), env=IOTA, help="apikey of devices without group"),
    option("--default-transport", env=IOTA, help="transport of devices without one"),
    option("--default-type", env=IOTA, help="entity type of devices without one"),
    option("--default-entity-name-conjunction", env=IOTA, help="between type and device id in default entity names"),
    option("--timestamp", type=FLAG, env=IOTA, help="add TimeInstant to measures (timestamp default)"),
    option("--autocast", type=FLAG, env=IOTA, help="cast text values to their attribute's type"),
    option("--explicit-attrs", type=FLAG, env=IOTA,
           help="send only the attributes provisioned (explicitAttrs default)"),
    option("--cmd-mode", type=Choice("legacy", "notification", "advancedNotification"), env=IOTA,
           help="how the broker sends commands"),
    option("--polling-expiration", type=Int(metavar="MS"), env=IOTA, help="poll commands expire after this (0: never)"),
    option("--polling-daemon-frequency", type=Int(metavar="MS"), env="IOTA_POLLING_DAEMON_FREQ",
           help="how often expired commands are looked for (0: the expiration)"),
    option("--registry-type", type=Choice("sqlite", "memory", "mongodb"), env=IOTA,
           help="provisioning registry: an SQLite file under the data directory, or memory (mongodb: sqlite)"),
    data_dir_option("--data-dir", help="data directory"),
    log_level_option("--log-level", env="IOTA_LOG_LEVEL"),
    guards_option("--guard"),
    about="Options carry the FIWARE IoT agents' variable names (IOTA_*), so a docker-compose written "
    "for iotagent-ul/iotagent-json runs this agent unchanged.",
)


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Config:
    """A Config from ``--flag value`` / ``--flag=value`` words and the environment (flags win)."""
    values = OPTIONS.parse(argv, os.environ if environ is None else environ)
    values.update(_mqtt_uri(values.get("mqtt_uri", "")))
    level = values.get("log_level")
    if level is not None and str(level).strip().upper() not in LOG_LEVELS:
        raise ConfigError(f"option --log-level (IOTA_LOG_LEVEL): {level!r} is not one of {', '.join(LOG_LEVELS)}")
    if values.get("registry_type") == "mongodb":
        values["registry_type"] = "sqlite"
    if values.get("https"):
        missing = [name for name, key in (("--key", "https_key"), ("--cert", "https_cert")) if not values.get(key)]
        if missing:
            raise ConfigError(
                "option --https needs --key FILE and --cert FILE (or IOTA_HTTPS_KEY, IOTA_HTTPS_CERT): "
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing"
            )
        if "provider_url" not in values:  # the default must name the port as it now speaks
            values["provider_url"] = "https" + Config.provider_url.removeprefix("http")
    return Config(**values)


def check_files(config: Config) -> Config:
    """The TLS files, loaded once at start-up: a missing, unreadable, encrypted or
    mismatched file is an error naming it, not uvicorn's traceback on the first listener."""
    config.broker_ssl_context()
    if config.https:
        check_key_and_cert("--key", config.https_key, "--cert", config.https_cert)
    return config


def from_command_line(argv: Sequence[str] | None = None) -> Config:
    """``waziup iot-agent``: the Config, or the help (exit 0), or the error (exit 1).
    The TLS files are checked here, before anything starts (``serve`` is the runtime's)."""
    return command_line(
        OPTIONS, lambda words: check_files(parse(words)), sys.argv[1:] if argv is None else argv,
        prog="waziup iot-agent", show=print,
    )
