"""The request seam of the rules service, and its answers for what never reaches a route.

As the history service's (``analytics/history/seam.py``): ``GuardLayer``
(``ngsi/server/asgi.py``) gives every request its context (tenant, service path,
correlator) and runs the guards the platform configures (``-guard``: the orchestrator
puts the PEP there when security is on; nothing here imports ``security/``); it bounds
each body (``-maxBody``: 413) and the time it may take (``-reqTimeout``: 408), and
``GuardedHttpProtocol`` bounds the request head. Refusals are in Perseo's shape,
``{"error": <text>, "data": null}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.middleware import Middleware

from ngsi.server.asgi import GuardedHttpProtocol, GuardLayer
from ngsi.server.guards import BodyTimeout, Guard, PayloadTooLarge, load_guards
from ngsi.server.reply import Reply, json_reply


def too_large(exc: PayloadTooLarge) -> Reply:
    return json_reply({"error": f"the body has {exc.size} bytes or more, at most {exc.limit} are accepted",
                       "data": None}, 413)


def timed_out(exc: BodyTimeout) -> Reply:
    return json_reply({"error": str(exc), "data": None}, 408)


def guard_layer(config: Any, guards: Sequence[Guard] | None = None) -> Middleware:
    """The middleware entry: ``guards`` when given (tests, in-process composition), else
    those ``config.guards`` names."""
    chosen = list(guards) if guards is not None else load_guards(config.guards, config)
    return Middleware(GuardLayer, guards=chosen, too_large=too_large, max_body=config.max_body,
                      timed_out=timed_out, body_timeout=float(config.req_timeout))


def http_protocol(config: Any) -> type[GuardedHttpProtocol]:
    """uvicorn's protocol class for the service: the head deadline is ``-reqTimeout``."""
    return type("RulesHttpProtocol", (GuardedHttpProtocol,), {"head_timeout": float(config.req_timeout)})
