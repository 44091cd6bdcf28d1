"""What the platform's HTTP services (the history, the rules service, the identity manager)
configure alike: the first fields of their ``Config`` and the rows of their tables
(``ngsi.settings``) that differ only by the service's variables.

Each service keeps its own option names, variables and help texts; what is the same is
written here once, so that, say, the TLS options of the history and of the rules service
cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from .settings import FLAG, Int, Option, Prefix, Text, option
from .tls import check_https_files

_LOG_LEVELS = ("DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class ServiceConfig:
    """The fields every such service starts with: where it listens, where its store is, its
    log level and TLS. A subclass gives ``port`` its default and names its SQLite file."""

    STORE_FILE: ClassVar[str]  # the SQLite file under data_dir when db_uri is empty, e.g. "history.db"

    port: int
    host: str = "0.0.0.0"
    data_dir: str = "data"
    db_uri: str = ""  # empty: sqlite file <data_dir>/<STORE_FILE>
    log_level: str = "INFO"
    https: bool = False  # TLS only on -port
    https_key: str = ""  # the private key (PEM, not encrypted)
    https_cert: str = ""  # the certificate, then any intermediate CA certificates (PEM)

    @property
    def store_url(self) -> str:
        return self.db_uri or f"sqlite:///{os.path.abspath(os.path.join(self.data_dir, self.STORE_FILE))}"

    def check_https(self) -> None:
        """With ``-https``: ``-key`` and ``-cert`` given and fit (``ngsi.tls``), so that a bad
        file stops start-up with a message naming its option, not a traceback from uvicorn."""
        if self.https:
            check_https_files(self.https_key, self.https_cert)


def known_log_level(value: str) -> None:
    """``check`` of ``-logLevel``: a level Python's logging knows, in any case."""
    if value.upper() not in _LOG_LEVELS:
        raise ValueError(f"{value!r} is not DEBUG, INFO, WARNING or ERROR")


def request_limit_options(env: Prefix, body: str) -> tuple[Option, Option]:
    """``-maxBody`` and ``-reqTimeout``: how large a ``body`` (what the service receives) may
    be, and how long a request may take to arrive."""
    return (
        option("-maxBody", type=Int(1024, 1 << 30, metavar="BYTES"), env=env,
               help=f"largest {body} accepted (413 beyond)"),
        option("-reqTimeout", type=Int(0, 3600, metavar="SECONDS"), env=env,
               help="seconds a request's head, then its body, may take (0: no limit)"),
    )


def https_options(env: Prefix) -> tuple[Option, Option, Option]:
    """``-https``, ``-key`` and ``-cert`` (the fields of :class:`ServiceConfig`)."""
    return (
        option("-https", type=FLAG, env=env, help="serve HTTPS only, on -port (needs -key and -cert)"),
        option("-key", field="https_key", type=Text("FILE"), env=env,
               help="-https: the private key, PEM, not encrypted"),
        option("-cert", field="https_cert", type=Text("FILE"), env=env,
               help="-https: the certificate, PEM, followed by any intermediate CA certificates"),
    )


C = TypeVar("C", bound=ServiceConfig)


def with_secrets(config: C, environ: Mapping[str, str], secrets: Sequence[tuple[str, str]]) -> C:
    """``config`` with the secrets the environment holds (``(field, variable)`` pairs): a
    secret never comes from the command line, where every local user sees it."""
    found = {name: environ[variable] for name, variable in secrets if environ.get(variable)}
    return dataclasses.replace(config, **found) if found else config


def check_store_url(config: ServiceConfig, error: type[Exception]) -> None:
    """``-dbURI``: empty (the SQLite file under ``-data``), ``sqlite:///FILE`` or PostgreSQL."""
    if config.db_uri and not config.db_uri.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise error("option -dbURI: sqlite:///FILE or postgresql://user:password@host/db")
