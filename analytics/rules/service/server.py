"""Run the rules service under uvicorn (``python -m analytics.rules.service``, ``waziup rules``).

With ``-https`` the port speaks TLS only, with the files ``config.parse`` already checked.
"""

from __future__ import annotations

import logging
import os

import uvicorn

from .app import create_app
from .config import Config
from .seam import http_protocol


def serve(config: Config) -> None:
    level = config.log_level.upper()
    logging.basicConfig(
        level=getattr(logging, "WARNING" if level == "WARN" else level, logging.INFO),
        format="time=%(asctime)s | lvl=%(levelname)s | comp=%(name)s | msg=%(message)s",
    )
    options: dict[str, object] = {
        "host": config.host, "port": config.port, "log_level": "warning", "access_log": False, "server_header": False,
        "lifespan": "on", "proxy_headers": False, "http": http_protocol(config),
    }
    if config.https:
        options.update(ssl_keyfile=os.path.abspath(config.https_key), ssl_certfile=os.path.abspath(config.https_cert))
    uvicorn.run(create_app(config), **options)  # type: ignore[arg-type]
