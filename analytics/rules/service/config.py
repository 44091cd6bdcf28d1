"""The rules service's options: one table (``ngsi.settings``).

Names: Perseo's variables where Perseo has the setting (``PERSEO_ENDPOINT_PORT``,
``PERSEO_ORION_URL``, ``PERSEO_LOG_LEVEL``, ``PERSEO_SMTP_HOST``, ``PERSEO_SMTP_PORT``,
``PERSEO_SMTP_AUTH_USER``, ``PERSEO_SMTP_AUTH_PASS``), ``WAZIUP_RULES_*`` beside them and
for the rest. Flags are the history service's where the setting is the same (``-port``,
``-host``, ``-data``, ``-dbURI``, ``-logLevel``, ``-guard``, ``-maxBody``,
``-reqTimeout``).

``-https -key FILE -cert FILE`` are the history service's options: the port then speaks TLS
only (the files are checked here, ``ngsi.tls``). ``-brokerCa FILE`` trusts more CA
certificates for an https broker (as the broker's ``-notifCaFile``).

Behind a PEP (``waziup run -auth``), the service authenticates to the broker with a service
account (``WAZIUP_RULES_AUTH_*``: ``ngsi.client.credentials``, the IoT agent's way), and
its subscriptions carry a notice signature (``WAZIUP_RULES_NOTICE_KEY``) the PEP of its
``/notices`` checks.

Secrets are read from the environment only (the SMTP password ``WAZIUP_RULES_SMTP_PASSWORD``
or ``PERSEO_SMTP_AUTH_PASS``, ``WAZIUP_RULES_AUTH_CLIENT_SECRET``,
``WAZIUP_RULES_AUTH_PASSWORD``, ``WAZIUP_RULES_NOTICE_KEY``): a command line is visible to
every user of the machine. They are kept in a :class:`Secret`, which never shows its value
in ``repr`` or logs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from ngsi.service_options import ServiceConfig, https_options, known_log_level, request_limit_options
from ngsi.settings import (
    FLAG, PORT, Int, Prefix, Repeated, SettingsError, Table, Text, command_line, data_dir_option, destination_rules,
    environment_secret, guards_option, http_url, listen_option, log_level_option, option,
)

DEFAULT_PORT: Final = 9090  # Perseo's
PASSWORD_VARIABLES: Final = ("WAZIUP_RULES_SMTP_PASSWORD", "PERSEO_SMTP_AUTH_PASS")
# environment only: (field, variable)
SECRET_VARIABLES: Final = (("auth_client_secret", "WAZIUP_RULES_AUTH_CLIENT_SECRET"),
                           ("auth_password", "WAZIUP_RULES_AUTH_PASSWORD"),
                           ("notice_key", "WAZIUP_RULES_NOTICE_KEY"))
ConfigError = SettingsError


@dataclass(frozen=True)
class Secret:
    """A value kept out of ``repr`` and logs (starlette's ``Secret``)."""

    value: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return "Secret('**********')" if self.value else "Secret('')"

    def __bool__(self) -> bool:
        return bool(self.value)


@dataclass(frozen=True)
class Config(ServiceConfig):
    STORE_FILE = "rules.db"

    port: int = DEFAULT_PORT
    broker_url: str = "http://localhost:1026"
    notify_url: str = ""  # empty: http://127.0.0.1:<port>/notices
    allowed_hosts: tuple[str, ...] = field(default_factory=tuple)  # destinations of post actions
    tick_interval: int = 5000  # ms between no-signal checks and state expiry
    save_interval: int = 10  # seconds between engine state snapshots
    resubscribe_interval: int = 60  # seconds between checks of the rules' broker subscriptions
    queue_size: int = 1000  # firings waiting for a worker; beyond, dropped (and logged)
    workers: int = 4  # firings executed at once
    action_timeout: int = 10  # seconds one action may take
    firings_kept: int = 1000  # per rule, most recent first
    max_body: int = 8 * 1024 * 1024
    req_timeout: int = 30
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: Secret = field(default_factory=Secret)
    smtp_from: str = "waziup-rules@localhost"
    smtp_starttls: bool = False
    smtp_tls: bool = False  # implicit TLS (port 465)
    guards: tuple[str, ...] = field(default_factory=tuple)
    broker_ca: str = ""  # PEM CA certificates trusted for an https broker, besides the system's
    auth_token_url: str = ""  # the identity manager's OAuth2 token endpoint: a token on every broker call
    auth_client_id: str = ""
    auth_client_secret: Secret = field(default_factory=Secret)
    auth_user: str = ""  # a service account (the password grant); else client_credentials
    auth_password: Secret = field(default_factory=Secret)
    notice_key: Secret = field(default_factory=Secret)  # signs the rules' notifications (the PEP checks it)

    @property
    def notices_url(self) -> str:
        """Where the broker sends the rules' notifications."""
        if self.notify_url:
            return self.notify_url
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"{'https' if self.https else 'http'}://{host}:{self.port}/notices"


def _db_uri(value: str) -> None:
    if value and not value.startswith(("sqlite:///", "postgresql://", "postgres://", "memory://")):
        raise ValueError(f"{value!r} is not sqlite:///FILE, postgresql://... or memory://")


RULES = Prefix("WAZIUP_RULES_")  # WAZIUP_RULES_ and the field (WAZIUP_RULES_PORT): before Perseo's name, if any

OPTIONS = Table(
    Config,
    option("-port", type=PORT, env=(RULES, "PERSEO_ENDPOINT_PORT"), help="HTTP port"),
    listen_option("-host", env=(RULES, "PERSEO_ENDPOINT_HOST")),
    data_dir_option("-data", help="where rules.db goes"),
    option("-dbURI", type=Text("URL"), env=RULES, check=_db_uri, shown="sqlite:///<-data>/rules.db",
           help="store of rules, engine state and firings: sqlite:///relative.db, sqlite:////absolute.db, "
           "postgresql://user:password@host/db, memory:// (nothing kept)"),
    option("-brokerURL", type=Text("URL"), env=(RULES, "PERSEO_ORION_URL"), check=http_url,
           help="the context broker: subscriptions, update and command actions"),
    option("-notifyURL", type=Text("URL"), env=RULES, check=http_url, shown="http://127.0.0.1:<-port>/notices",
           help="the URL of this service's /notices as the broker reaches it (put in the rules' subscriptions)"),
    log_level_option("-logLevel", env=("WAZIUP_LOG_LEVEL", "PERSEO_LOG_LEVEL"), check=known_log_level),
    option("-allowedHosts", type=Repeated(metavar="HOST[:PORT][/PATH]"), env=RULES, check=destination_rules,
           help="loopback or private destinations post actions may reach (ngsi/destinations.py rules); repeatable"),
    option("-tickInterval", type=Int(10, 3_600_000, metavar="MS"), env=RULES,
           help="milliseconds between no-signal checks"),
    option("-saveInterval", type=Int(1, 86400, metavar="SECONDS"), env=RULES,
           help="seconds between snapshots of the engine's state (windows, no-signal, throttles): what a kill may lose"),
    option("-resubscribeInterval", type=Int(1, 86400, metavar="SECONDS"), env=RULES,
           help="seconds between checks that every rule's broker subscription exists"),
    option("-queueSize", type=Int(1, 1_000_000), env=RULES,
           help="firings waiting for execution; beyond it a firing is dropped and its actions count as failed"),
    option("-workers", type=Int(1, 256), env=RULES, help="firings executed at once"),
    option("-actionTimeout", type=Int(1, 600, metavar="SECONDS"), env=RULES,
           help="seconds one action (request, e-mail) may take"),
    option("-firingsKept", type=Int(0, 1_000_000), env=RULES, help="firings kept per rule (the most recent)"),
    *request_limit_options(RULES, body="request"),
    option("-smtpHost", type=Text("HOST"), env=(RULES, "PERSEO_SMTP_HOST"),
           help="the SMTP server of email actions (none: email actions fail)"),
    option("-smtpPort", type=PORT, env=(RULES, "PERSEO_SMTP_PORT"), help="its port"),
    option("-smtpUser", type=Text("NAME"), env=(RULES, "PERSEO_SMTP_AUTH_USER"),
           help="the SMTP account (its password: WAZIUP_RULES_SMTP_PASSWORD or PERSEO_SMTP_AUTH_PASS, environment only)"),
    option("-smtpFrom", type=Text("ADDRESS"), env=RULES, help="sender of email actions that name none"),
    option("-smtpStartTLS", field="smtp_starttls", type=FLAG, env=RULES, help="STARTTLS before logging in"),
    option("-smtpTLS", type=FLAG, env=(RULES, "PERSEO_SMTP_SECURE"), help="implicit TLS (SMTPS, port 465)"),
    *https_options(RULES),
    option("-brokerCa", type=Text("FILE"), env=RULES,
           help="PEM CA certificates trusted for an https -brokerURL, besides the system's"),
    option("-authTokenURL", type=Text("URL"), env=RULES, check=http_url,
           help="a broker behind a PEP: the identity manager's token endpoint (e.g. http://idm:3005/oauth2/token); "
           "needs -authClientId and WAZIUP_RULES_AUTH_CLIENT_SECRET"),
    option("-authClientId", type=Text("ID"), env=RULES,
           help="-authTokenURL: the OAuth2 client (its secret: WAZIUP_RULES_AUTH_CLIENT_SECRET, environment only)"),
    option("-authUser", type=Text("NAME"), env=RULES,
           help="-authTokenURL: a service account, whose password is WAZIUP_RULES_AUTH_PASSWORD (the password "
           "grant); else the client's own token (client_credentials)"),
    guards_option("-guard"),
    about="The rules service (Perseo-compatible API): POST/GET/PUT/DELETE /rules, POST /notices (broker "
    "notifications), GET /rules/{name}/firings, GET /version.",
)


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    config = OPTIONS.build(argv, environ)
    password = environment_secret(environ, *PASSWORD_VARIABLES)
    if password:
        config = replace(config, smtp_password=Secret(password))
    found: dict[str, Any] = {name: Secret(environ[variable]) for name, variable in SECRET_VARIABLES
                             if environ.get(variable)}
    if found:
        config = replace(config, **found)
    config.check_https()
    if config.auth_token_url and not (config.auth_client_id and config.auth_client_secret):
        raise ConfigError("option -authTokenURL needs -authClientId (WAZIUP_RULES_AUTH_CLIENT_ID) and the variable "
                          "WAZIUP_RULES_AUTH_CLIENT_SECRET")
    if config.auth_user and not config.auth_password:
        raise ConfigError("option -authUser needs the variable WAZIUP_RULES_AUTH_PASSWORD")
    if config.smtp_starttls and config.smtp_tls:
        raise ConfigError("options -smtpStartTLS and -smtpTLS exclude each other")
    return config


def from_command_line(argv: Sequence[str] | None = None) -> Config:
    """``python -m analytics.rules.service``: the Config, or the help (exit 0), or the error (exit 1)."""
    return command_line(OPTIONS, parse, sys.argv[1:] if argv is None else argv, prog="waziup rules", show=print)
