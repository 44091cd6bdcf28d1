"""The dashboard's options: one table (``ngsi.settings``), ``WAZIUP_DASHBOARD_*`` variables.

The dashboard calls four services on the caller's behalf (the broker, the history, the
IoT agent's north port, the rules service): an empty URL leaves that part of the page
out. ``-caFile`` trusts a private CA (``waziup run -tls``: the development certificate) for
https service URLs. ``-notifyURL`` is where the broker reaches the dashboard's live feed
(``/notify/...``): by default its own port on loopback.

Sign-in (``signin.py``): ``-idmURL`` turns it on. The dashboard is then a confidential
OAuth2 client of the identity manager (``-clientId``; its secret in the environment only,
``WAZIUP_DASHBOARD_CLIENT_SECRET``, as a command line is visible to every local user), and
browsers come back to ``<-publicURL>/auth/callback``, which must be one of the client's
redirect URIs (``waziup run -auth`` registers it). ``-https`` serves the page over TLS.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from ngsi.settings import (
    PORT, Int, Prefix, Repeated, SettingsError, Table, Text, command_line, guards_option, http_url, listen_option,
    environment_secret, log_level_option, option,
)
from ngsi.service_options import https_options
from ngsi.tls import check_https_files, trust_context

DEFAULT_PORT = 3000
DEFAULT_EXPECTED = 300  # seconds between two reports of a device when nothing else says
ConfigError = SettingsError


@dataclass(frozen=True)
class Config:
    port: int = DEFAULT_PORT
    host: str = "0.0.0.0"
    broker_url: str = "http://127.0.0.1:1026"
    history_url: str = "http://127.0.0.1:8668"
    agent_url: str = "http://127.0.0.1:4041"
    rules_url: str = "http://127.0.0.1:9090"
    notify_url: str = ""  # "": http://127.0.0.1:<port>
    expected: tuple[str, ...] = field(default_factory=tuple)  # TYPE=SECONDS (or *=SECONDS)
    ca_file: str = ""  # PEM CA certificates trusted for the https services, besides the system's
    log_level: str = "INFO"
    guards: tuple[str, ...] = field(default_factory=tuple)
    max_body: int = 1024 * 1024  # bytes of a call the page makes (a device, a rule)
    max_notification: int = 8 * 1024 * 1024  # bytes of a broker notification to the live feed
    req_timeout: int = 30
    https: bool = False  # the page and its API over TLS only, on -port
    https_key: str = ""
    https_cert: str = ""
    idm_url: str = ""  # "": no sign-in (the platform runs without -auth)
    idm_public_url: str = ""  # "": -idmURL
    public_url: str = ""  # "": http(s)://localhost:<port>
    client_id: str = ""
    client_secret: str = field(default="", repr=False)  # WAZIUP_DASHBOARD_CLIENT_SECRET only
    tenants: tuple[str, ...] = field(default_factory=tuple)  # offered at sign-in if the user may read them

    @property
    def notify_base(self) -> str:
        return (self.notify_url or f"http://127.0.0.1:{self.port}").rstrip("/")

    @property
    def page_url(self) -> str:
        """This dashboard as browsers reach it."""
        return (self.public_url or f"{'https' if self.https else 'http'}://localhost:{self.port}").rstrip("/")

    @property
    def expected_intervals(self) -> dict[str, int]:
        """``-expect`` as {type (or ``*``): seconds}."""
        return {rule.partition("=")[0]: int(rule.partition("=")[2]) for rule in self.expected}


def _expect(value: str) -> None:
    name, eq, seconds = value.partition("=")
    if not eq or not name or not seconds.isdigit() or int(seconds) < 1:
        raise ValueError(f"{value!r} is not TYPE=SECONDS")


DASHBOARD = Prefix("WAZIUP_DASHBOARD_")  # WAZIUP_DASHBOARD_ and the field: WAZIUP_DASHBOARD_PORT...

OPTIONS = Table(
    Config,
    option("-port", type=PORT, env=DASHBOARD, help="HTTP port of the page and its API"),
    listen_option("-host", env=DASHBOARD),
    option("-brokerURL", type=Text("URL"), env=DASHBOARD, check=http_url, help="the context broker"),
    option("-historyURL", type=Text("URL"), env=DASHBOARD, check=http_url,
           help="the history service (QuantumLeap's API); empty: no plots"),
    option("-agentURL", type=Text("URL"), env=DASHBOARD, check=http_url,
           help="the IoT agent's north port (provisioning API); empty: no devices page"),
    option("-rulesURL", type=Text("URL"), env=DASHBOARD, check=http_url,
           help="the rules service (Perseo's API); empty: no rules page"),
    option("-notifyURL", type=Text("URL"), env=DASHBOARD, check=http_url, shown="http://127.0.0.1:<-port>",
           help="where the broker reaches this service's live feed"),
    option("-expect", field="expected", type=Repeated(metavar="TYPE=SECONDS"), env="WAZIUP_DASHBOARD_EXPECT",
           check=_expect, help="expected reporting interval of an entity type (*: every type), for the freshness "
           "status; repeatable; default: learnt from the history, else 300 s"),
    option("-caFile", type=Text("FILE"), env=DASHBOARD,
           help="PEM CA certificates trusted for https service URLs, besides the system's"),
    log_level_option("-logLevel", env="WAZIUP_LOG_LEVEL"),
    option("-reqTimeout", type=Int(1, 3600, metavar="SECONDS"), env=DASHBOARD,
           help="seconds a call to another service may take"),
    *https_options(DASHBOARD),
    option("-idmURL", type=Text("URL"), env=DASHBOARD, check=http_url,
           help="the identity manager: turns sign-in on (authorization code with PKCE); empty: no sign-in"),
    option("-idmPublicURL", type=Text("URL"), env=DASHBOARD, check=http_url, shown="<-idmURL>",
           help="the identity manager as browsers reach it (its sign-in page)"),
    option("-publicURL", type=Text("URL"), env=DASHBOARD, check=http_url, shown="http(s)://localhost:<-port>",
           help="this dashboard as browsers reach it (sign-in comes back to <URL>/auth/callback)"),
    option("-clientId", type=Text("ID"), env=DASHBOARD,
           help="-idmURL: the OAuth2 client (its secret: WAZIUP_DASHBOARD_CLIENT_SECRET, environment only)"),
    option("-tenants", type=Repeated(metavar="TENANT"), env="WAZIUP_DASHBOARD_TENANTS",
           help="tenants offered at sign-in besides the default one and the user's organizations, each only "
           "if the broker lets the user read it; repeatable"),
    guards_option("-guard"),
    about="The platform's dashboard (:3000): the web page, its live feed (server-sent events fed by broker "
    "subscriptions) and the calls it makes to the broker, the history, the IoT agent and the rules service.",
)


SECRET_VARIABLE = "WAZIUP_DASHBOARD_CLIENT_SECRET"


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    config = replace(OPTIONS.build(argv, environ), client_secret=environment_secret(environ, SECRET_VARIABLE))
    if config.idm_url and not (config.client_id and config.client_secret):
        raise ConfigError(f"option -idmURL needs -clientId (WAZIUP_DASHBOARD_CLIENT_ID) and the variable {SECRET_VARIABLE}")
    if config.https:
        check_https_files(config.https_key, config.https_cert)
    if config.ca_file:
        trust_context("-caFile", config.ca_file)  # a bad file stops start-up here, named
    return config


def from_command_line(argv: Sequence[str] | None = None) -> Config:
    """``python -m analytics.dashboard``: the Config, or the help (exit 0), or the error (exit 1)."""
    return command_line(OPTIONS, parse, sys.argv[1:] if argv is None else argv, prog="waziup dashboard", show=print)
