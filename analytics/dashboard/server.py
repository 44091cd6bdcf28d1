"""Run the dashboard under uvicorn (``python -m analytics.dashboard``, ``waziup dashboard``)."""

from __future__ import annotations

import logging

import uvicorn

from .app import create_app
from .config import Config


def serve(config: Config) -> None:
    level = config.log_level.upper()
    logging.basicConfig(
        level=getattr(logging, "WARNING" if level == "WARN" else level, logging.INFO),
        format="time=%(asctime)s | lvl=%(levelname)s | comp=%(name)s | msg=%(message)s",
    )
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="warning", access_log=False,
                server_header=False, lifespan="on", proxy_headers=False)
