"""The agent's log administration on the north port, as iotagent-node-lib serves it
(iotagent-node-lib-api.md, "Log operations"): ``GET /admin/log`` answers
``{"level": "INFO"}``, ``PUT /admin/log?level=DEBUG`` changes the level of every later log
line of the process, and answers 200 with an empty body. FIWARE tools (FiLiP's
``IoTAClient.get_loglevel_of_agent`` / ``change_loglevel_of_agent``) call these.

The level is set on the ``waziup`` logger, the parent of every logger of the agent (and of
the seam and MQTT client it runs), rather than on the root logger: the handlers sit on the
root and let through whatever a ``waziup.*`` logger emits, so this moves the agent's own
verbosity without touching that of uvicorn or of a host process embedding the app.
"""

from __future__ import annotations

import logging

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .config import LOG_LEVELS as LEVELS
from .errors import WrongSyntax

LOGGER = "waziup"


def parse_level(raw: str | None) -> str:
    """The level named by ``raw`` (the ``level`` query parameter), upper-cased, as
    node-lib compares it; WrongSyntax (400) when it is absent or not one of LEVELS."""
    if raw is None or not raw.strip():
        raise WrongSyntax("log level missing")
    level = raw.strip().upper()
    if level not in LEVELS:
        raise WrongSyntax(f"invalid log level {raw!r}, expected one of {', '.join(LEVELS)}")
    return level


def apply_level(level: str) -> None:
    """Make ``level`` (one of LEVELS) the agent's logging threshold from now on."""
    logging.getLogger(LOGGER).setLevel(LEVELS[level])


def current_level(request: Request) -> str:
    """The level last set through PUT, else the one the agent started with (``log_level``)."""
    level = getattr(request.app.state, "log_level", None)
    if level is None:
        config = getattr(request.app.state, "config", None)
        level = str(getattr(config, "log_level", "INFO")).upper()
    return level


async def log_level(request: Request) -> Response:
    if request.method == "GET":
        return Response(orjson.dumps({"level": current_level(request)}), media_type="application/json")
    level = parse_level(request.query_params.get("level"))
    apply_level(level)
    request.app.state.log_level = level
    return Response(b"", status_code=200)


ROUTES = [Route("/admin/log", log_level, methods=["GET", "PUT"])]
