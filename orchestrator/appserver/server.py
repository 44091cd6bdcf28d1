"""Run the orchestrator's service under uvicorn (``waziup orchestrator``)."""

from __future__ import annotations

from ngsi.server.service import configure_logging, run

from .app import create_app
from .config import Config
from .seam import SEAM


def serve(config: Config) -> None:
    configure_logging(config.log_level)
    run(create_app(config), host=config.host, port=config.port, http=SEAM.http_protocol(config),
        tls=(config.https_key, config.https_cert) if config.https else None)
