"""Run the broker under uvicorn, speaking HTTP/1.1 the way Orion does.

Orion's reason phrases follow RFC 9110 ("422 Unprocessable Content", "413 Content Too
Large"); Python 3.11's http.HTTPStatus still has the older ones, and clients and Orion's
tests compare status lines, so uvicorn's tables are set to Orion's phrases here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import signal
import sys

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .app import create_app
from .config import Config, ConfigError

ORION_PHRASES = {413: "Content Too Large", 422: "Unprocessable Content"}


def _use_orion_phrases() -> None:
    from uvicorn.protocols.http import h11_impl, httptools_impl

    for status, phrase in ORION_PHRASES.items():
        httptools_impl.STATUS_LINE[status] = f"HTTP/1.1 {status} {phrase}\r\n".encode()
        h11_impl.STATUS_PHRASES[status] = phrase.encode()


_COMMON_METHODS = (b"GET ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ", b"OPTIONS ", b"HEAD ")
_METHOD_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32} ")


class OrionHttpProtocol(HttpToolsProtocol):
    """httptools, but a request with a method llhttp does not know still reaches the app.

    llhttp refuses unknown methods (``BADVERB /v2/entities``) with uvicorn's bare 400;
    Orion answers them like any method a resource does not support: 405 with ``Allow``.
    The method token of a request that starts a data chunk is swapped for GET while
    parsing and put back in the ASGI scope.
    """

    _at_message_start = True
    _real_method: str | None = None

    def data_received(self, data: bytes) -> None:
        if self._at_message_start and not data.startswith(_COMMON_METHODS):
            match = _METHOD_TOKEN.match(data)
            if match is not None:
                self._real_method = match.group()[:-1].decode("ascii")
                data = b"GET " + data[match.end() :]
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._at_message_start = False
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self._real_method is not None:
            self.scope["method"] = self._real_method  # the app task has not run yet
            self._real_method = None

    def on_message_complete(self) -> None:
        self._at_message_start = True
        super().on_message_complete()


# The configuration reaches worker processes (spawned by uvicorn, which imports the app
# by name) through this environment variable, as JSON.
WORKER_CONFIG_VARIABLE = "WAZIUP_WORKER_CONFIG"
SHARED_SCHEMES = ("postgresql", "postgres")


def check_workers(config: Config) -> None:
    """Several workers need a database they can all share and tell each other about changes."""
    if config.workers < 1:
        raise ConfigError(f"option -workers: {config.workers} is not a positive number")
    scheme = config.store_url.split(":", 1)[0].split("+", 1)[0]
    if config.workers > 1 and scheme not in SHARED_SCHEMES:
        raise ConfigError(
            f"option -workers {config.workers} needs a PostgreSQL database (-dbURI postgresql://...): "
            f"with {scheme} each worker would keep its own copy of the subscriptions and registrations "
            "and its own write path, so workers would miss each other's changes"
        )


def _configure_logging(config: Config) -> None:
    level = config.log_level.upper()
    logging.basicConfig(
        level=logging.WARNING if level == "WARN" else getattr(logging, level, logging.WARNING),
        format="time=%(asctime)s | lvl=%(levelname)s | comp=%(name)s | msg=%(message)s",
    )


def _die_with_parent() -> None:
    """A worker whose supervisor was killed (``kill -9``) must not serve on alone (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the supervisor's own shutdown still stops workers
        pass


def worker_app() -> object:
    """uvicorn's app factory in each worker process: the Config comes from the supervisor."""
    fields = json.loads(os.environ[WORKER_CONFIG_VARIABLE])
    fields["ignored"] = tuple(fields.get("ignored", ()))
    config = Config(**fields)
    _die_with_parent()
    _configure_logging(config)
    _use_orion_phrases()
    return create_app(config)


def serve(config: Config) -> None:
    try:
        check_workers(config)
    except ConfigError as exc:
        sys.exit(f"waziup broker: {exc}")
    options: dict[str, object] = dict(
        host=config.host,
        port=config.port,
        http=OrionHttpProtocol,
        loop="uvloop",
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="on",
    )
    _configure_logging(config)
    _use_orion_phrases()
    if config.workers > 1:
        # N processes accept on one socket bound by uvicorn's supervisor, which restarts a
        # worker that dies; they share state through PostgreSQL (LISTEN/NOTIFY, row locks).
        os.environ[WORKER_CONFIG_VARIABLE] = json.dumps(dataclasses.asdict(config))
        uvicorn.run("broker.server:worker_app", factory=True, workers=config.workers, **options)  # type: ignore[arg-type]
        return
    uvicorn.run(create_app(config), **options)  # type: ignore[arg-type]
