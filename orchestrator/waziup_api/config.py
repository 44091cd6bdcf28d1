"""The WAZIUP API's options: one table (``ngsi.settings``), ``WAZIUP_API_*`` variables.

Default port 8800: the reference serves on 800, which only root may bind; docs/waziup-api.md
says how to serve 800 without running as root. MQTT on 3883, as the reference.

Secrets come from the environment only: the OAuth client the API logs users in as
(``WAZIUP_API_CLIENT_ID`` / ``WAZIUP_API_CLIENT_SECRET``, the platform's application),
the administrator's credentials it reads accounts with (``WAZIUP_API_ADMIN_USER`` /
``WAZIUP_API_ADMIN_PASSWORD``), and, behind a PEP, the service account it reaches the
broker and the history with (``WAZIUP_API_AUTH_USER`` / ``WAZIUP_API_AUTH_PASSWORD``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from ngsi.service_options import (
    ServiceConfig, check_store_url, https_options, known_log_level, request_limit_options, with_secrets,
)
from ngsi.settings import (
    PORT, Int, Prefix, SettingsError, Table, Text, command_line, data_dir_option, guards_option, http_url,
    listen_option, log_level_option, option,
)

DEFAULT_PORT: Final = 8800
ConfigError = SettingsError
SECRETS: Final = (("client_secret", "WAZIUP_API_CLIENT_SECRET"), ("admin_password", "WAZIUP_API_ADMIN_PASSWORD"),
                  ("auth_password", "WAZIUP_API_AUTH_PASSWORD"))


@dataclass(frozen=True)
class Config(ServiceConfig):
    STORE_FILE = "waziup-api.db"

    port: int = DEFAULT_PORT
    broker_url: str = "http://localhost:1026"
    history_url: str = "http://localhost:8668"  # "": no history (values are not kept)
    idm_url: str = ""  # "": no accounts, everyone is the guest
    service: str = "waziup"  # the tenant of the devices (Fiware-Service), as the reference
    mqtt_port: int = 3883  # 0: no MQTT
    mqtt_host: str = ""  # "": -host
    ca_file: str = ""  # PEM CA certificates trusted for https services, besides the system's
    max_body: int = 1024 * 1024
    req_timeout: int = 30
    guards: tuple[str, ...] = field(default_factory=tuple)
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    admin_user: str = ""
    admin_password: str = field(default="", repr=False)
    auth_user: str = ""  # a service account for a broker and history behind a PEP
    auth_password: str = field(default="", repr=False)


API = Prefix("WAZIUP_API_")

OPTIONS = Table(
    Config,
    option("-port", type=PORT, env=API, help="HTTP port of /api/v2 (the reference uses 800: see docs/waziup-api.md)"),
    listen_option("-host", env=API),
    data_dir_option("-data", help="where waziup-api.db (gateways, projects, notifications, socials) goes"),
    option("-dbURI", type=Text("URL"), env=API, shown="sqlite:///<-data>/waziup-api.db",
           help="the API's own store (gateways, projects, notifications): sqlite:///FILE or "
           "postgresql://user:password@host/db"),
    option("-brokerURL", type=Text("URL"), env=API, check=http_url, help="the context broker (devices)"),
    option("-historyURL", type=Text("URL"), env=API,
           help="the history service (QuantumLeap's API: datapoints); empty: none"),
    option("-idmURL", type=Text("URL"), env=API,
           help="the identity manager (accounts and tokens); empty: none, everyone is the guest"),
    option("-service", type=Text("TENANT"), env=API, help="the tenant (Fiware-Service) of the devices"),
    option("-mqttPort", type=Int(0, 65535, metavar="PORT"), env=API, help="the MQTT port (0: no MQTT)"),
    option("-mqttHost", type=Text("ADDRESS"), env=API, shown="-host", help="the address MQTT listens on"),
    option("-caFile", type=Text("FILE"), env=API, help="PEM CA certificates trusted for https services"),
    option("-clientId", type=Text("ID"), env=API,
           help="the OAuth client users log in as (its secret: WAZIUP_API_CLIENT_SECRET, environment only)"),
    option("-adminUser", type=Text("NAME"), env=API,
           help="the account that reads users (its password: WAZIUP_API_ADMIN_PASSWORD, environment only)"),
    option("-authUser", type=Text("NAME"), env=API,
           help="a broker and history behind a PEP: the service account (password grant of -clientId; its "
           "password: WAZIUP_API_AUTH_PASSWORD)"),
    log_level_option("-logLevel", env=("WAZIUP_LOG_LEVEL",), check=known_log_level),
    *request_limit_options(API, body="request"),
    *https_options(API),
    guards_option("-guard"),
    about="The WAZIUP cloud API v2 (/api/v2: devices, sensors, actuators, gateways, projects, notifications, "
    "socials, users, ontologies) over the broker, the history and the identity manager, with its MQTT broker.",
)


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    config = with_secrets(OPTIONS.build(argv, environ), environ, SECRETS)
    config.check_https()
    check_store_url(config, ConfigError)
    if config.idm_url and not (config.client_id and config.client_secret):
        raise ConfigError("option -idmURL needs -clientId (WAZIUP_API_CLIENT_ID) and WAZIUP_API_CLIENT_SECRET")
    if config.auth_user and not config.auth_password:
        raise ConfigError("option -authUser needs the variable WAZIUP_API_AUTH_PASSWORD")
    return config


def from_command_line(argv: Sequence[str] | None = None) -> Config:
    """``waziup api``: the Config, or the help (exit 0), or the error (exit 1)."""
    return command_line(OPTIONS, parse, sys.argv[1:] if argv is None else argv, prog="waziup api", show=print)
