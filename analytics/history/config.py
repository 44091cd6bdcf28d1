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

from ngsi.settings import (
    FLAG,
    PORT,
    Int,
    Repeated,
    SettingsError,
    Table,
    Text,
    command_line,
    guards_option,
    option,
)
from ngsi.tls import check_https_files

from .retention import Policy, parse_rule

DEFAULT_PORT = 8668  # QuantumLeap's
ConfigError = SettingsError


@dataclass(frozen=True)
class Config:
    port: int = DEFAULT_PORT
    host: str = "0.0.0.0"
    data_dir: str = "data"
    db_uri: str = ""  # empty: sqlite file <data_dir>/history.db
    log_level: str = "INFO"
    default_limit: int = 10000  # QuantumLeap's DEFAULT_LIMIT: rows one answer holds at most
    max_body: int = 8 * 1024 * 1024  # bytes of a notification
    req_timeout: int = 30  # seconds for a request's head, and for its body
    retention_days: int = 0
    retention: tuple[str, ...] = field(default_factory=tuple)
    retention_interval: int = 3600
    hourly_retention_days: int = 0  # 0: hourly roll-ups kept for ever
    guards: tuple[str, ...] = field(default_factory=tuple)
    https: bool = False  # TLS only on -port
    https_key: str = ""  # the private key (PEM, not encrypted)
    https_cert: str = ""  # the certificate, then any intermediate CA certificates (PEM)

    @property
    def store_url(self) -> str:
        return self.db_uri or f"sqlite:///{os.path.abspath(os.path.join(self.data_dir, 'history.db'))}"

    @property
    def policy(self) -> Policy:
        return Policy.of(self.retention_days, self.retention, self.hourly_retention_days)


def _db_uri(value: str) -> None:
    if value and not value.startswith(("sqlite:///", "postgresql://", "postgres://", "postgresql+asyncpg://")):
        raise ValueError(f"{value!r} is not sqlite:///FILE or postgresql://...")


def _level(value: str) -> None:
    if value.upper() not in ("DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError(f"{value!r} is not DEBUG, INFO, WARNING or ERROR")


OPTIONS = Table(
    Config,
    option("-port", field="port", type=PORT, env="WAZIUP_HISTORY_PORT", help="HTTP port"),
    option("-host", field="host", type=Text("ADDRESS"), env="WAZIUP_HISTORY_HOST", help="address to listen on"),
    option("-data", field="data_dir", type=Text("DIR"), env="WAZIUP_DATA_DIR", help="where history.db goes"),
    option("-dbURI", field="db_uri", type=Text("URL"), env="WAZIUP_HISTORY_DB_URI", check=_db_uri,
           shown="sqlite:///<-data>/history.db",
           help="store: sqlite:///relative.db, sqlite:////absolute.db, postgresql://user:password@host/db"),
    option("-logLevel", field="log_level", type=Text("LEVEL"), env=("WAZIUP_LOG_LEVEL", "LOGLEVEL"), check=_level,
           help="log level"),
    option("-defaultLimit", field="default_limit", type=Int(1, 1_000_000), env="DEFAULT_LIMIT",
           help="most rows an answer holds (a larger limit is cut to it)"),
    option("-maxBody", field="max_body", type=Int(1024, 1 << 30, metavar="BYTES"), env="WAZIUP_HISTORY_MAX_BODY",
           help="largest notification accepted (413 beyond)"),
    option("-reqTimeout", field="req_timeout", type=Int(0, 3600, metavar="SECONDS"), env="WAZIUP_HISTORY_REQ_TIMEOUT",
           help="seconds a request's head, then its body, may take (0: no limit)"),
    option("-retentionDays", field="retention_days", type=Int(0, 36600, metavar="DAYS"),
           env="WAZIUP_HISTORY_RETENTION_DAYS", help="days raw values are kept (0: for ever); roll-ups stay"),
    option("-hourlyRetentionDays", field="hourly_retention_days", type=Int(0, 36600, metavar="DAYS"),
           env="WAZIUP_HISTORY_HOURLY_RETENTION_DAYS",
           help="days hourly roll-ups are kept (0: for ever; at least the raw retention); daily roll-ups stay"),
    option("-retention", field="retention", type=Repeated(metavar="TENANT/TYPE=DAYS"), env="WAZIUP_HISTORY_RETENTION",
           check=parse_rule, help="retention of one tenant and/or type (*: any), overriding -retentionDays; repeatable"),
    option("-retentionInterval", field="retention_interval", type=Int(1, 86400 * 7, metavar="SECONDS"),
           env="WAZIUP_HISTORY_RETENTION_INTERVAL", help="seconds between retention passes"),
    option("-https", type=FLAG, env="WAZIUP_HISTORY_HTTPS", help="serve HTTPS only, on -port (needs -key and -cert)"),
    option("-key", field="https_key", type=Text("FILE"), env="WAZIUP_HISTORY_HTTPS_KEY",
           help="-https: the private key, PEM, not encrypted"),
    option("-cert", field="https_cert", type=Text("FILE"), env="WAZIUP_HISTORY_HTTPS_CERT",
           help="-https: the certificate, PEM, followed by any intermediate CA certificates"),
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
    if config.https:
        check_https_files(config.https_key, config.https_cert)
    problem = config.policy.problem()
    if problem is not None:
        raise ConfigError(problem)
    return config


def from_command_line(argv: Sequence[str] | None = None) -> Config:
    """``python -m analytics.history``: the Config, or the help (exit 0), or the error (exit 1)."""
    return command_line(OPTIONS, parse, sys.argv[1:] if argv is None else argv, prog="waziup history", show=print)
