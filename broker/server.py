"""Run the broker under uvicorn, speaking HTTP/1.1 the way Orion does.

Orion's reason phrases follow RFC 9110 ("422 Unprocessable Content", "413 Content Too
Large"); Python 3.11's http.HTTPStatus still has the older ones, and clients and Orion's
tests compare status lines, so uvicorn's tables are set to Orion's phrases here.
"""

from __future__ import annotations

import logging

import uvicorn

from .app import create_app
from .config import Config

ORION_PHRASES = {413: "Content Too Large", 422: "Unprocessable Content"}


def _use_orion_phrases() -> None:
    from uvicorn.protocols.http import h11_impl, httptools_impl

    for status, phrase in ORION_PHRASES.items():
        httptools_impl.STATUS_LINE[status] = f"HTTP/1.1 {status} {phrase}\r\n".encode()
        h11_impl.STATUS_PHRASES[status] = phrase.encode()


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
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="on",
    )
