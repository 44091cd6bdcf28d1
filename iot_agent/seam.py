"""The request seam on the agent's ports: every request gets a request context, then the
guards the orchestrator configured (``Config.guards``, ``--guard module:factory``) run
before routing (``ngsi/server/asgi.py`` ``GuardLayer``). Both the north app (4041) and
the south one (7896) install it the same way, through ``guard_layer``."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware import Middleware

from ngsi.server.asgi import GuardLayer
from ngsi.server.guards import Guard, PayloadTooLarge, load_guards
from ngsi.server.reply import Reply, json_reply

from .config import Config

MAX_BODY = 1024 * 1024  # a guard reading the body reads at most this much (the broker's limit)


def too_large(exc: PayloadTooLarge) -> Reply:
    return json_reply({"name": "REQUEST_TOO_LARGE", "message": str(exc)}, 413)


def guard_layer(config: Config, guards: Sequence[Guard] | None = None) -> Middleware:
    """The middleware entry: ``guards`` when given (in-process composition, tests), else the
    ones ``config.guards`` names."""
    chosen = list(guards) if guards is not None else load_guards(config.guards, config)
    return Middleware(GuardLayer, guards=chosen, too_large=too_large, max_body=MAX_BODY)
