"""Run the dashboard under uvicorn (``python -m analytics.dashboard``, ``waziup dashboard``)."""

from __future__ import annotations

from ngsi.server.service import configure_logging, run

from .app import create_app
from .config import Config


def serve(config: Config) -> None:
    configure_logging(config.log_level)
    run(create_app(config), host=config.host, port=config.port,
        tls=(config.https_key, config.https_cert) if config.https else None)
