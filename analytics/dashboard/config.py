"""The dashboard's options: one table (``ngsi.settings``), ``WAZIUP_DASHBOARD_*`` variables.

The dashboard calls four services on the caller's behalf (the broker, the history, the
IoT agent's north port, the rules service): an empty URL leaves that part of the page
out. ``-caFile`` trusts a private CA (``waziup run -tls``: the development certificate) for
https service URLs. ``-notifyURL`` is where the broker reaches the dashboard's live feed
(``/notify/...``): by default its own port on loopback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ngsi.settings import (
    PORT,
    Int,
    Repeated,
    SettingsError,
    Table,
    Text,
    command_line,
    guards_option,
    http_url,
    log_level_option,
    option,
)
from ngsi.tls import trust_context

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

    @property
    def notify_base(self) -> str:
        return (self.notify_url or f"http://127.0.0.1:{self.port}").rstrip("/")

    @property
    def expected_intervals(self) -> dict[str, int]:
        """``-expect`` as {type (or ``*``): seconds}."""
        return {rule.partition("=")[0]: int(rule.partition("=")[2]) for rule in self.expected}


def _expect(value: str) -> None:
    name, eq, seconds = value.partition("=")
    if not eq or not name or not seconds.isdigit() or int(seconds) < 1:
        raise ValueError(f"{value!r} is not TYPE=SECONDS")


OPTIONS = Table(
    Config,
    option("-port", type=PORT, env="WAZIUP_DASHBOARD_PORT", help="HTTP port of the page and its API"),
    option("-host", type=Text("ADDRESS"), env="WAZIUP_DASHBOARD_HOST", help="address to listen on"),
    option("-brokerURL", field="broker_url", type=Text("URL"), env="WAZIUP_DASHBOARD_BROKER_URL", check=http_url,
           help="the context broker"),
    option("-historyURL", field="history_url", type=Text("URL"), env="WAZIUP_DASHBOARD_HISTORY_URL", check=http_url,
           help="the history service (QuantumLeap's API); empty: no plots"),
    option("-agentURL", field="agent_url", type=Text("URL"), env="WAZIUP_DASHBOARD_AGENT_URL", check=http_url,
           help="the IoT agent's north port (provisioning API); empty: no devices page"),
    option("-rulesURL", field="rules_url", type=Text("URL"), env="WAZIUP_DASHBOARD_RULES_URL", check=http_url,
           help="the rules service (Perseo's API); empty: no rules page"),
    option("-notifyURL", field="notify_url", type=Text("URL"), env="WAZIUP_DASHBOARD_NOTIFY_URL", check=http_url,
           shown="http://127.0.0.1:<-port>", help="where the broker reaches this service's live feed"),
    option("-expect", field="expected", type=Repeated(metavar="TYPE=SECONDS"), env="WAZIUP_DASHBOARD_EXPECT",
           check=_expect, help="expected reporting interval of an entity type (*: every type), for the freshness "
           "status; repeatable; default: learnt from the history, else 300 s"),
    option("-caFile", field="ca_file", type=Text("FILE"), env="WAZIUP_DASHBOARD_CA_FILE",
           help="PEM CA certificates trusted for https service URLs, besides the system's"),
    log_level_option("-logLevel", env="WAZIUP_LOG_LEVEL"),
    option("-reqTimeout", field="req_timeout", type=Int(1, 3600, metavar="SECONDS"),
           env="WAZIUP_DASHBOARD_REQ_TIMEOUT", help="seconds a call to another service may take"),
    guards_option("-guard"),
    about="The platform's dashboard (:3000): the web page, its live feed (server-sent events fed by broker "
    "subscriptions) and the calls it makes to the broker, the history, the IoT agent and the rules service.",
)


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Config:
    config = OPTIONS.build(argv, os.environ if environ is None else environ)
    if config.ca_file:
        trust_context("-caFile", config.ca_file)  # a bad file stops start-up here, named
    return config


def from_command_line(argv: Sequence[str] | None = None) -> Config:
    """``python -m analytics.dashboard``: the Config, or the help (exit 0), or the error (exit 1)."""
    return command_line(OPTIONS, parse, sys.argv[1:] if argv is None else argv, prog="waziup dashboard", show=print)
