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

from ngsi.settings import (
    FLAG,
    PORT,
    Int,
    Repeated,
    SettingsError,
    Table,
    Text,
    command_line,
    destination_rules,
    guards_option,
    http_url,
    option,
)
from ngsi.tls import check_https_files

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
class Config:
    port: int = DEFAULT_PORT
    host: str = "0.0.0.0"
    data_dir: str = "data"
    db_uri: str = ""  # empty: sqlite file <data_dir>/rules.db
    broker_url: str = "http://localhost:1026"
    notify_url: str = ""  # empty: http://127.0.0.1:<port>/notices
    log_level: str = "INFO"
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
    https: bool = False  # TLS only on -port
    https_key: str = ""  # the private key (PEM, not encrypted)
    https_cert: str = ""  # the certificate, then any intermediate CA certificates (PEM)
    broker_ca: str = ""  # PEM CA certificates trusted for an https broker, besides the system's
    auth_token_url: str = ""  # the identity manager's OAuth2 token endpoint: a token on every broker call
    auth_client_id: str = ""
    auth_client_secret: Secret = field(default_factory=Secret)
    auth_user: str = ""  # a service account (the password grant); else client_credentials
    auth_password: Secret = field(default_factory=Secret)
    notice_key: Secret = field(default_factory=Secret)  # signs the rules' notifications (the PEP checks it)

    @property
    def store_url(self) -> str:
        return self.db_uri or f"sqlite:///{os.path.abspath(os.path.join(self.data_dir, 'rules.db'))}"

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


def _level(value: str) -> None:
    if value.upper() not in ("DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError(f"{value!r} is not DEBUG, INFO, WARNING or ERROR")


OPTIONS = Table(
    Config,
    option("-port", field="port", type=PORT, env=("WAZIUP_RULES_PORT", "PERSEO_ENDPOINT_PORT"), help="HTTP port"),
    option("-host", field="host", type=Text("ADDRESS"), env=("WAZIUP_RULES_HOST", "PERSEO_ENDPOINT_HOST"),
           help="address to listen on"),
    option("-data", field="data_dir", type=Text("DIR"), env="WAZIUP_DATA_DIR", help="where rules.db goes"),
    option("-dbURI", field="db_uri", type=Text("URL"), env="WAZIUP_RULES_DB_URI", check=_db_uri,
           shown="sqlite:///<-data>/rules.db",
           help="store of rules, engine state and firings: sqlite:///relative.db, sqlite:////absolute.db, "
           "postgresql://user:password@host/db, memory:// (nothing kept)"),
    option("-brokerURL", field="broker_url", type=Text("URL"), env=("WAZIUP_RULES_BROKER_URL", "PERSEO_ORION_URL"),
           check=http_url, help="the context broker: subscriptions, update and command actions"),
    option("-notifyURL", field="notify_url", type=Text("URL"), env="WAZIUP_RULES_NOTIFY_URL", check=http_url,
           shown="http://127.0.0.1:<-port>/notices",
           help="the URL of this service's /notices as the broker reaches it (put in the rules' subscriptions)"),
    option("-logLevel", field="log_level", type=Text("LEVEL"), env=("WAZIUP_LOG_LEVEL", "PERSEO_LOG_LEVEL"),
           check=_level, help="log level"),
    option("-allowedHosts", field="allowed_hosts", type=Repeated(metavar="HOST[:PORT][/PATH]"),
           env="WAZIUP_RULES_ALLOWED_HOSTS", check=destination_rules,
           help="loopback or private destinations post actions may reach (ngsi/destinations.py rules); repeatable"),
    option("-tickInterval", field="tick_interval", type=Int(10, 3_600_000, metavar="MS"),
           env="WAZIUP_RULES_TICK_INTERVAL", help="milliseconds between no-signal checks"),
    option("-saveInterval", field="save_interval", type=Int(1, 86400, metavar="SECONDS"),
           env="WAZIUP_RULES_SAVE_INTERVAL",
           help="seconds between snapshots of the engine's state (windows, no-signal, throttles): what a kill may lose"),
    option("-resubscribeInterval", field="resubscribe_interval", type=Int(1, 86400, metavar="SECONDS"),
           env="WAZIUP_RULES_RESUBSCRIBE_INTERVAL",
           help="seconds between checks that every rule's broker subscription exists"),
    option("-queueSize", field="queue_size", type=Int(1, 1_000_000), env="WAZIUP_RULES_QUEUE_SIZE",
           help="firings waiting for execution; beyond it a firing is dropped and its actions count as failed"),
    option("-workers", field="workers", type=Int(1, 256), env="WAZIUP_RULES_WORKERS",
           help="firings executed at once"),
    option("-actionTimeout", field="action_timeout", type=Int(1, 600, metavar="SECONDS"),
           env="WAZIUP_RULES_ACTION_TIMEOUT", help="seconds one action (request, e-mail) may take"),
    option("-firingsKept", field="firings_kept", type=Int(0, 1_000_000), env="WAZIUP_RULES_FIRINGS_KEPT",
           help="firings kept per rule (the most recent)"),
    option("-maxBody", field="max_body", type=Int(1024, 1 << 30, metavar="BYTES"), env="WAZIUP_RULES_MAX_BODY",
           help="largest request accepted (413 beyond)"),
    option("-reqTimeout", field="req_timeout", type=Int(0, 3600, metavar="SECONDS"), env="WAZIUP_RULES_REQ_TIMEOUT",
           help="seconds a request's head, then its body, may take (0: no limit)"),
    option("-smtpHost", field="smtp_host", type=Text("HOST"), env=("WAZIUP_RULES_SMTP_HOST", "PERSEO_SMTP_HOST"),
           help="the SMTP server of email actions (none: email actions fail)"),
    option("-smtpPort", field="smtp_port", type=PORT, env=("WAZIUP_RULES_SMTP_PORT", "PERSEO_SMTP_PORT"),
           help="its port"),
    option("-smtpUser", field="smtp_user", type=Text("NAME"), env=("WAZIUP_RULES_SMTP_USER", "PERSEO_SMTP_AUTH_USER"),
           help="the SMTP account (its password: WAZIUP_RULES_SMTP_PASSWORD or PERSEO_SMTP_AUTH_PASS, environment only)"),
    option("-smtpFrom", field="smtp_from", type=Text("ADDRESS"), env="WAZIUP_RULES_SMTP_FROM",
           help="sender of email actions that name none"),
    option("-smtpStartTLS", field="smtp_starttls", type=FLAG, env="WAZIUP_RULES_SMTP_STARTTLS",
           help="STARTTLS before logging in"),
    option("-smtpTLS", field="smtp_tls", type=FLAG, env=("WAZIUP_RULES_SMTP_TLS", "PERSEO_SMTP_SECURE"),
           help="implicit TLS (SMTPS, port 465)"),
    option("-https", type=FLAG, env="WAZIUP_RULES_HTTPS", help="serve HTTPS only, on -port (needs -key and -cert)"),
    option("-key", field="https_key", type=Text("FILE"), env="WAZIUP_RULES_HTTPS_KEY",
           help="-https: the private key, PEM, not encrypted"),
    option("-cert", field="https_cert", type=Text("FILE"), env="WAZIUP_RULES_HTTPS_CERT",
           help="-https: the certificate, PEM, followed by any intermediate CA certificates"),
    option("-brokerCa", field="broker_ca", type=Text("FILE"), env="WAZIUP_RULES_BROKER_CA",
           help="PEM CA certificates trusted for an https -brokerURL, besides the system's"),
    option("-authTokenURL", field="auth_token_url", type=Text("URL"), env="WAZIUP_RULES_AUTH_TOKEN_URL",
           check=http_url,
           help="a broker behind a PEP: the identity manager's token endpoint (e.g. http://idm:3005/oauth2/token); "
           "needs -authClientId and WAZIUP_RULES_AUTH_CLIENT_SECRET"),
    option("-authClientId", field="auth_client_id", type=Text("ID"), env="WAZIUP_RULES_AUTH_CLIENT_ID",
           help="-authTokenURL: the OAuth2 client (its secret: WAZIUP_RULES_AUTH_CLIENT_SECRET, environment only)"),
    option("-authUser", field="auth_user", type=Text("NAME"), env="WAZIUP_RULES_AUTH_USER",
           help="-authTokenURL: a service account, whose password is WAZIUP_RULES_AUTH_PASSWORD (the password "
           "grant); else the client's own token (client_credentials)"),
    guards_option("-guard"),
    about="The rules service (Perseo-compatible API): POST/GET/PUT/DELETE /rules, POST /notices (broker "
    "notifications), GET /rules/{name}/firings, GET /version.",
)


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    config = OPTIONS.build(argv, environ)
    password = next((environ[v] for v in PASSWORD_VARIABLES if environ.get(v)), "")
    if password:
        config = replace(config, smtp_password=Secret(password))
    found: dict[str, Any] = {name: Secret(environ[variable]) for name, variable in SECRET_VARIABLES
                             if environ.get(variable)}
    if found:
        config = replace(config, **found)
    if config.https:
        check_https_files(config.https_key, config.https_cert)
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
