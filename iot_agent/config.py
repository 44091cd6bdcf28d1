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

from ngsi.destinations import parse_rules
from ngsi.settings import (
    FLAG, PORT, Choice, Int, Repeated, SettingsError, Table, Text, command_line, guards_option, option,
)


def _destination_rules(value: object) -> None:
    for item in value if isinstance(value, tuple) else (value,):
        parse_rules(str(item))  # ValueError names the bad rule
from ngsi.tls import check_key_and_cert, trust_context

DEFAULT_DATA_DIR = "data"


ConfigError = SettingsError  # a flag or environment variable without a valid value


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


OPTIONS = Table(
    Config,
    option("--north-host", field="north_host", type=Text("ADDRESS"), env="IOTA_NORTH_HOST",
           help="address of the north port (provisioning API, context provider)"),
    option("--north-port", field="north_port", type=PORT, env="IOTA_NORTH_PORT",
           help="north port"),
    option("--http-host", field="http_host", type=Text("ADDRESS"), env="IOTA_HTTP_HOST",
           help="address of the device HTTP port (/iot/d, /iot/json)"),
    option("--http-port", field="http_port", type=PORT, env="IOTA_HTTP_PORT",
           help="device HTTP port"),
    option("--mqtt-host", field="mqtt_host", type=Text("HOST"), env="IOTA_MQTT_HOST",
           help="MQTT broker of the devices (none: no MQTT)"),
    option("--mqtt-port", field="mqtt_port", type=PORT, env="IOTA_MQTT_PORT",
           help="its port"),
    option("--mqtt-username", field="mqtt_username", env="IOTA_MQTT_USERNAME",
           help="MQTT user name"),
    option("--mqtt-password", field="mqtt_password", env="IOTA_MQTT_PASSWORD",
           help="MQTT password"),
    option("--mqtt-qos", field="mqtt_qos", type=Int(0, 2), env="IOTA_MQTT_QOS",
           help="QoS of subscriptions and commands"),
    option("--mqtt-retain", field="mqtt_retain", type=FLAG, env="IOTA_MQTT_RETAIN",
           help="commands published retained"),
    option("--mqtt-client-id", field="mqtt_client_id", env="IOTA_MQTT_CLIENT_ID", shown="waziup-iota-<random>",
           help="MQTT client id"),
    option("--mqtt-uri", "-mqttURI", field="mqtt_uri", type=Text("URI"), env="IOTA_MQTT_URI", check=_mqtt_uri,
           help="mqtt://[user:password@]host[:port], instead of the four above"),
    option("--mqtt-passwd-file", field="mqtt_passwd_file", type=Text("FILE"), env="IOTA_MQTT_PASSWD_FILE",
           help="Mosquitto password file where the agent keeps one account per group apikey (username = apikey; "
           "docs/iot_agent.md, MQTT credentials), below its marker line; none: no accounts"),
    option("--mqtt-broker-pidfile", field="mqtt_broker_pidfile", type=Text("FILE"), env="IOTA_MQTT_BROKER_PIDFILE",
           help="pid file of that Mosquitto, sent SIGHUP after every change of the password file so that it "
           "rereads it; none: it rereads at its next reload"),
    option("--cb-host", field="cb_host", type=Text("HOST"), env="IOTA_CB_HOST",
           help="context broker host"),
    option("--cb-port", field="cb_port", type=PORT, env="IOTA_CB_PORT",
           help="context broker port"),
    option("--cb-url", field="cb_url", type=Text("URL"), env="IOTA_CB_URL",
           help="context broker URL, instead of the two above"),
    option("--cb-ca", field="cb_ca", type=Text("FILE"), env="IOTA_CB_CA",
           help="PEM file of CA certificates trusted for an https broker (--cb-url https://...), besides the "
           "system's: a private CA, or the broker's self-signed certificate"),
    option("--auth-enabled", field="auth_enabled", type=FLAG, env="IOTA_AUTH_ENABLED",
           help="send the broker a token of the identity manager (a broker behind a PEP)"),
    option("--auth-type", field="auth_type", type=Choice("oauth2", "keystone"), env="IOTA_AUTH_TYPE",
           help="oauth2: client credentials (clientId/clientSecret); keystone: user and password (/v3/auth/tokens)"),
    option("--auth-header", field="auth_header", type=Text("NAME"), env="IOTA_AUTH_HEADER",
           help="Authorization (Bearer <token>) or another header given the token alone, e.g. X-Auth-Token"),
    option("--auth-url", field="auth_url", type=Text("URL"), env="IOTA_AUTH_URL", help="the identity manager"),
    option("--auth-host", field="auth_host", type=Text("HOST"), env="IOTA_AUTH_HOST",
           help="the identity manager's host, when no --auth-url (http)"),
    option("--auth-port", field="auth_port", type=PORT, env="IOTA_AUTH_PORT", help="its port, with --auth-host"),
    option("--auth-user", field="auth_user", type=Text("NAME"), env="IOTA_AUTH_USER",
           help="keystone: the user; oauth2: a service account (the password grant) instead of client credentials"),
    option("--auth-password", field="auth_password", type=Text("PASSWORD"), env="IOTA_AUTH_PASSWORD",
           shown="none", help="the user's password (better in the environment than on a command line)"),
    option("--auth-client-id", field="auth_client_id", type=Text("ID"), env="IOTA_AUTH_CLIENT_ID",
           help="oauth2: the agent's OAuth client id"),
    option("--auth-client-secret", field="auth_client_secret", type=Text("SECRET"), env="IOTA_AUTH_CLIENT_SECRET",
           shown="none", help="oauth2: its secret (better in the environment)"),
    option("--auth-token-path", field="auth_token_path", type=Text("PATH"), env="IOTA_AUTH_TOKEN_PATH",
           help="oauth2: the token endpoint's path"),
    option("--auth-permanent-token", field="auth_permanent_token", type=FLAG, env="IOTA_AUTH_PERMANENT_TOKEN",
           help="oauth2: a permanent token (Keyrock's scope=permanent), fetched once"),
    option("--allowed-destinations", field="allowed_destinations", type=Repeated(), env="IOTA_ALLOWED_DESTINATIONS",
           check=_destination_rules,
           help="a loopback or private device endpoint HTTP commands may go to: host, host:port, "
           "host:port/path-prefix or a network (192.168.0.0/16); repeatable or comma-separated"),
    option("--cb-flow-control", field="cb_flow_control", type=FLAG, env="IOTA_CB_FLOW_CONTROL",
           help="updates with Orion's flowControl (useCBflowControl default)"),
    option("--provider-url", field="provider_url", type=Text("URL"), env="IOTA_PROVIDER_URL",
           shown="http://localhost:4041 (https://... with --https)",
           help="the URL the broker reaches the north port at"),
    option("--https", field="https", type=FLAG, env="IOTA_HTTPS",
           help="serve HTTPS only on the north and device HTTP ports (needs --key and --cert)"),
    option("--key", field="https_key", type=Text("FILE"), env="IOTA_HTTPS_KEY",
           help="--https: the private key, PEM, not encrypted"),
    option("--cert", field="https_cert", type=Text("FILE"), env="IOTA_HTTPS_CERT",
           help="--https: the certificate, PEM, followed by any intermediate CA certificates"),
    option("--default-resource", field="default_resource", type=Text("PATH"), env="IOTA_DEFAULT_RESOURCE",
           help="resource of groups provisioned without one"),
    option("--default-key", field="default_key", type=Text("APIKEY"), env="IOTA_DEFAULT_KEY",
           help="apikey of devices without group"),
    option("--default-transport", field="default_transport", env="IOTA_DEFAULT_TRANSPORT",
           help="transport of devices without one"),
    option("--default-type", field="default_type", env="IOTA_DEFAULT_TYPE",
           help="entity type of devices without one"),
    option("--default-entity-name-conjunction", field="default_entity_name_conjunction",
           env="IOTA_DEFAULT_ENTITY_NAME_CONJUNCTION", help="between type and device id in default entity names"),
    option("--timestamp", field="timestamp", type=FLAG, env="IOTA_TIMESTAMP",
           help="add TimeInstant to measures (timestamp default)"),
    option("--autocast", field="autocast", type=FLAG, env="IOTA_AUTOCAST",
           help="cast text values to their attribute's type"),
    option("--explicit-attrs", field="explicit_attrs", type=FLAG, env="IOTA_EXPLICIT_ATTRS",
           help="send only the attributes provisioned (explicitAttrs default)"),
    option("--cmd-mode", field="cmd_mode", type=Choice("legacy", "notification", "advancedNotification"),
           env="IOTA_CMD_MODE", help="how the broker sends commands"),
    option("--polling-expiration", field="polling_expiration", type=Int(metavar="MS"), env="IOTA_POLLING_EXPIRATION",
           help="poll commands expire after this (0: never)"),
    option("--polling-daemon-frequency", field="polling_daemon_frequency", type=Int(metavar="MS"),
           env="IOTA_POLLING_DAEMON_FREQ", help="how often expired commands are looked for (0: the expiration)"),
    option("--registry-type", field="registry_type", type=Choice("sqlite", "memory", "mongodb"),
           env="IOTA_REGISTRY_TYPE",
           help="provisioning registry: an SQLite file under the data directory, or memory (mongodb: sqlite)"),
    option("--data-dir", field="data_dir", type=Text("DIR"), env="WAZIUP_DATA_DIR",
           help="data directory"),
    option("--log-level", field="log_level", type=Text("LEVEL"), env="IOTA_LOG_LEVEL",
           help="log level"),
    guards_option("--guard"),
    about="Options carry the FIWARE IoT agents' variable names (IOTA_*), so a docker-compose written "
    "for iotagent-ul/iotagent-json runs this agent unchanged.",
)


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Config:
    """A Config from ``--flag value`` / ``--flag=value`` words and the environment (flags win)."""
    values = OPTIONS.parse(argv, os.environ if environ is None else environ)
    values.update(_mqtt_uri(values.get("mqtt_uri", "")))
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
