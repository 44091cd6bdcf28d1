"""Run the broker under uvicorn, speaking HTTP/1.1 the way Orion does.

Orion's reason phrases follow RFC 9110 ("422 Unprocessable Content", "413 Content Too
Large"); Python 3.11's http.HTTPStatus still has the older ones, and clients and Orion's
tests compare status lines, so uvicorn's tables are set to Orion's phrases here.
"""

from __future__ import annotations

import logging
import re

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .app import create_app
from .config import Config

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


def serve(config: Config) -> None:
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper(), logging.WARNING) if config.log_level.upper() != "WARN" else logging.WARNING,
        format="time=%(asctime)s | lvl=%(levelname)s | comp=%(name)s | msg=%(message)s",
    )
    _use_orion_phrases()
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        http=OrionHttpProtocol,
        loop="uvloop",
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="on",
    )
