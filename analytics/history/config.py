"""The history service's options: one table (``ngsi.settings``).

Variables: QuantumLeap's where it has one for the same setting (``LOGLEVEL``,
``DEFAULT_LIMIT``; ``QL_DEFAULT_DB=timescale`` with ``POSTGRES_HOST``, ``POSTGRES_PORT``,
``POSTGRES_DB_NAME``, ``POSTGRES_DB_USER``, ``POSTGRES_DB_PASS`` names a PostgreSQL
database when ``-dbURI`` is not given), ``WAZIUP_HISTORY_*`` otherwise.

``-https -key FILE -cert FILE`` are the broker's and the identity manager's options: the
port then speaks TLS only. The files are loaded here (``ngsi.tls``), so that a missing,
encrypted or mismatched one stops start-up with a message naming the option, not with a
traceback from uvicorn.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import quote

from ngsi.service_options import ServiceConfig, https_options, known_log_level, request_limit_options
from ngsi.settings import (
    PORT, Int, Prefix, Repeated, SettingsError, Table, Text, command_line, data_dir_option, guards_option,
    listen_option, log_level_option, option,
)

from .retention import Policy, parse_rule

DEFAULT_PORT = 8668  # QuantumLeap's
ConfigError = SettingsError


@dataclass(frozen=True)
class Config(ServiceConfig):
    STORE_FILE = "history.db"

    port: int = DEFAULT_PORT
    default_limit: int = 10000  # QuantumLeap's DEFAULT_LIMIT: rows one answer holds at most
    max_body: int = 8 * 1024 * 1024  # bytes of a notification
    req_timeout: int = 30  # seconds for a request's head, and for its body
    retention_days: int = 0
    retention: tuple[str, ...] = field(default_factory=tuple)
    retention_interval: int = 3600
    hourly_retention_days: int = 0  # 0: hourly roll-ups kept for ever
    guards: tuple[str, ...] = field(default_factory=tuple)

    @property
    def policy(self) -> Policy:
        return Policy.of(self.retention_days, self.retention, self.hourly_retention_days)


def _db_uri(value: str) -> None:
    if value and not value.startswith(("sqlite:///", "postgresql://", "postgres://", "postgresql+asyncpg://")):
        raise ValueError(f"{value!r} is not sqlite:///FILE or postgresql://...")


HISTORY = Prefix("WAZIUP_HISTORY_")  # WAZIUP_HISTORY_ and the field (WAZIUP_HISTORY_PORT), where QuantumLeap has none

OPTIONS = Table(
    Config,
    option("-port", type=PORT, env=HISTORY, help="HTTP port"),
    listen_option("-host", env=HISTORY),
    data_dir_option("-data", help="where history.db goes"),
    option("-dbURI", type=Text("URL"), env=HISTORY, check=_db_uri, shown="sqlite:///<-data>/history.db",
           help="store: sqlite:///relative.db, sqlite:////absolute.db, postgresql://user:password@host/db"),
    log_level_option("-logLevel", env=("WAZIUP_LOG_LEVEL", "LOGLEVEL"), check=known_log_level),
    option("-defaultLimit", type=Int(1, 1_000_000), env="DEFAULT_LIMIT",
           help="most rows an answer holds (a larger limit is cut to it)"),
    *request_limit_options(HISTORY, body="notification"),
    option("-retentionDays", type=Int(0, 36600, metavar="DAYS"), env=HISTORY,
           help="days raw values are kept (0: for ever); roll-ups stay"),
    option("-hourlyRetentionDays", type=Int(0, 36600, metavar="DAYS"), env=HISTORY,
           help="days hourly roll-ups are kept (0: for ever; at least the raw retention); daily roll-ups stay"),
    option("-retention", type=Repeated(metavar="TENANT/TYPE=DAYS"), env=HISTORY, check=parse_rule,
           help="retention of one tenant and/or type (*: any), overriding -retentionDays; repeatable"),
    option("-retentionInterval", type=Int(1, 86400 * 7, metavar="SECONDS"), env=HISTORY,
           help="seconds between retention passes"),
    *https_options(HISTORY),
    guards_option("-guard"),
    about="The history service (QuantumLeap 1.0-compatible): POST /v2/notify stores NGSI-v2 notifications, "
    "/v2/entities, /v2/types and /v2/attrs query them.",
)


def _timescale_url(environ: Mapping[str, str]) -> str:
    """QuantumLeap's PostgreSQL variables as a URL (QL_DEFAULT_DB=timescale)."""
    user = quote(environ.get("POSTGRES_DB_USER", "quantumleap"), safe="")
    password = environ.get("POSTGRES_DB_PASS", "")
    credentials = user + (":" + quote(password, safe="") if password else "")
    host, port = environ.get("POSTGRES_HOST", "localhost"), environ.get("POSTGRES_PORT", "5432")
    database = quote(environ.get("POSTGRES_DB_NAME", "quantumleap"), safe="")
    return f"postgresql://{credentials}@{host}:{port}/{database}"


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    config = OPTIONS.build(argv, environ)
    if not config.db_uri and environ.get("QL_DEFAULT_DB", "").strip().lower() == "timescale":
        config = replace(config, db_uri=_timescale_url(environ))
    config.check_https()
    problem = config.policy.problem()
    if problem is not None:
        raise ConfigError(problem)
    return config


def from_command_line(argv: Sequence[str] | None = None) -> Config:
    """``python -m analytics.history``: the Config, or the help (exit 0), or the error (exit 1)."""
    return command_line(OPTIONS, parse, sys.argv[1:] if argv is None else argv, prog="waziup history", show=print)
