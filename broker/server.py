"""Run the broker under uvicorn, speaking HTTP/1.1 the way Orion does.

Orion's reason phrases follow RFC 9110 ("422 Unprocessable Content", "413 Content Too
Large"); Python 3.11's http.HTTPStatus still has the older ones, and clients and Orion's
tests compare status lines, so uvicorn's tables are set to Orion's phrases here.

Below the app, ``OrionHttpProtocol`` bounds what a connection may hold before a request
reaches it (``ngsi.server.asgi.GuardedHttpProtocol``): its head must arrive within
``-reqTimeout`` seconds (from the connection, or from the previous response: an idle
connection is closed, a slowloris head gets 408) and within 64 KiB (431); what llhttp
cannot parse gets Orion's JSON 400 instead of uvicorn's text/plain one. uvicorn's own
``timeout_keep_alive`` (5 s) still closes a keep-alive connection idle after a response.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import signal
import sys
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from ngsi.server.asgi import GuardedHttpProtocol, raw_response
from ngsi.server.correlator import new_correlator

from .app import create_app
from .config import Config, ConfigError, check_files

ORION_PHRASES = {413: "Content Too Large", 422: "Unprocessable Content"}


def configure_protocol(config: Config) -> None:
    """The protocol's settings from the Config (uvicorn builds one protocol object per
    connection from the class; each worker process calls this for itself)."""
    OrionHttpProtocol.head_timeout = float(config.req_timeout)


def _use_orion_phrases() -> None:
    from uvicorn.protocols.http import h11_impl, httptools_impl

    for status, phrase in ORION_PHRASES.items():
        httptools_impl.STATUS_LINE[status] = f"HTTP/1.1 {status} {phrase}\r\n".encode()
        h11_impl.STATUS_PHRASES[status] = phrase.encode()


_COMMON_METHODS = (b"GET ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ", b"OPTIONS ", b"HEAD ")
_METHOD_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32} ")


class _Buffered:
    """Stands in for the transport while uvicorn writes one response: collects the writes
    and hands them to the real transport as one (``flush``); ``close`` flushes first."""

    __slots__ = ("transport", "chunks")

    def __init__(self, transport: Any, chunks: list[bytes] | None = None) -> None:
        self.transport = transport
        self.chunks: list[bytes] = chunks if chunks is not None else []

    def write(self, data: bytes) -> None:
        if data:
            self.chunks.append(data)

    def flush(self) -> None:
        if self.chunks:
            self.transport.write(self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks))
            self.chunks = []

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return bool(self.transport.is_closing())


class _CoalescingCycle(RequestResponseCycle):
    """uvicorn writes a response's head and its body separately: two socket sends (and, on
    loopback, two wake-ups of the client) per request. This holds the head back until the
    first body message and sends both in one write: about a fifth less CPU per small
    request. Streaming bodies (``more_body``) go out as before after the first part."""

    _held: list[bytes] | None = None

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start" and not self.response_started:
            buffer = _Buffered(self.transport)
            self.transport = buffer  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = buffer.transport
            self._held = buffer.chunks
            return
        held, self._held = self._held, None
        if held is None:
            await super().send(message)
            return
        buffer = _Buffered(self.transport, held)
        self.transport = buffer  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = buffer.transport
            if not self.disconnected:
                buffer.flush()


class OrionHttpProtocol(GuardedHttpProtocol):
    """httptools with the seam's head deadline and bounds (``GuardedHttpProtocol``:
    ``-reqTimeout`` for a request's head, 64 KiB at most, parse errors answered), in
    Orion's error shape, and a request with a method llhttp does not know still reaches
    the app.

    llhttp refuses unknown methods (``BADVERB /v2/entities``) with uvicorn's bare 400;
    Orion answers them like any method a resource does not support: 405 with ``Allow``.
    The method token of a request that starts a data chunk is swapped for GET while
    parsing and put back in the ASGI scope.
    """

    _real_method: str | None = None

    def data_received(self, data: bytes) -> None:
        if self._at_message_start and not data.startswith(_COMMON_METHODS):
            match = _METHOD_TOKEN.match(data)
            if match is not None:
                self._real_method = match.group()[:-1].decode("ascii")
                data = b"GET " + data[match.end() :]
        super().data_received(data)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if type(self.cycle) is RequestResponseCycle:
            self.cycle.__class__ = _CoalescingCycle  # its task has not run yet: every send coalesces
        if self._real_method is not None:
            self.scope["method"] = self._real_method  # the app task has not run yet
            self._real_method = None

    def refusal(self, status: int, description: str) -> bytes:
        """Orion's ``{"error", "description"}``, with a Fiware-Correlator as on every answer."""
        body = json.dumps({"error": _ERROR_NAMES[status], "description": description}, separators=(",", ":"))
        return raw_response(status, body.encode(), [(b"fiware-correlator", new_correlator().encode())])


_ERROR_NAMES = {400: "BadRequest", 408: "RequestTimeout", 431: "RequestHeaderFieldsTooLarge"}


# The configuration reaches worker processes (spawned by uvicorn, which imports the app
# by name) through this environment variable, as JSON.
WORKER_CONFIG_VARIABLE = "WAZIUP_WORKER_CONFIG"
SHARED_SCHEMES = ("postgresql", "postgres", "sqlite")
WORKER_HEALTHCHECK_TIMEOUT = 60  # seconds


def check_workers(config: Config) -> None:
    """Several workers need a database they can all share and tell each other about changes:
    PostgreSQL, or an SQLite file (see ``shared_store_url``); not memory."""
    if config.workers < 1:
        raise ConfigError(f"option -workers: {config.workers} is not a positive number")
    if config.workers == 1:
        return
    url = config.store_url
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    in_memory = scheme == "sqlite" and not url.partition("?")[0][len("sqlite:///") :]
    if scheme not in SHARED_SCHEMES or in_memory:
        raise ConfigError(
            f"option -workers {config.workers} needs a database file or server (-dbURI sqlite:///file.db or "
            f"postgresql://...): with {'an in-memory database' if in_memory else scheme} each worker would keep "
            "its own data, subscriptions and registrations, so workers would miss each other's changes"
        )


def shared_store_url(url: str) -> str:
    """The URL workers open: an SQLite file marked ``shared=1`` (writer lock, atomic
    read-modify-writes, change log; broker/store/sqlite.py). One worker keeps the plain
    store, which needs none of that."""
    if not url.startswith("sqlite:") or "shared=" in url.partition("?")[2]:
        return url
    return url + ("&" if "?" in url else "?") + "shared=1"


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
    fields = {name: tuple(value) if isinstance(value, list) else value for name, value in fields.items()}  # JSON lists
    config = Config(**fields)
    _die_with_parent()
    _configure_logging(config)
    _use_orion_phrases()
    configure_protocol(config)
    return create_app(config)


def serve(config: Config) -> None:
    try:
        check_workers(config)
        check_files(config)  # from_command_line did; a Config built elsewhere has not
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
        proxy_headers=False,  # nothing reads the client address; saves a middleware per request
        lifespan="on",
    )
    if config.https:  # Orion's -https: this port speaks TLS only; each worker loads the files
        options.update(ssl_keyfile=os.path.abspath(config.https_key), ssl_certfile=os.path.abspath(config.https_cert))
    _configure_logging(config)
    _use_orion_phrases()
    configure_protocol(config)
    if config.workers > 1:
        # N processes accept on one socket bound by uvicorn's supervisor, which restarts a
        # worker that dies; they share state through the database: PostgreSQL (LISTEN/NOTIFY,
        # row locks) or an SQLite file (writer lock, transactions, change log).
        config = dataclasses.replace(config, db_uri=shared_store_url(config.store_url))
        os.environ[WORKER_CONFIG_VARIABLE] = json.dumps(dataclasses.asdict(config))
        # uvicorn kills a worker that does not answer its health check within the timeout
        # (default 5 s) and starts another: on a loaded machine a freshly spawned worker can
        # take longer than that to import, and would be killed over and over.
        options["timeout_worker_healthcheck"] = WORKER_HEALTHCHECK_TIMEOUT
        uvicorn.run("broker.server:worker_app", factory=True, workers=config.workers, **options)  # type: ignore[arg-type]
        return
    uvicorn.run(create_app(config), **options)  # type: ignore[arg-type]
