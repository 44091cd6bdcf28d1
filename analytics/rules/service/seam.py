"""The request seam of the rules service, and its answers for what never reaches a route.

As the history service's (``analytics/history/seam.py``): ``GuardLayer``
(``ngsi/server/asgi.py``) gives every request its context (tenant, service path,
correlator) and runs the guards the platform configures (``-guard``: the orchestrator
puts the PEP there when security is on; nothing here imports ``security/``); it bounds
each body (``-maxBody``: 413) and the time it may take (``-reqTimeout``: 408), and
``GuardedHttpProtocol`` bounds the request head; a bug answers 500. Refusals are in
Perseo's shape, ``{"error": <text>, "data": null}`` (``error``), held in ``SEAM`` for the
shell the services share (``ngsi/server/service.py``).
"""

from __future__ import annotations

import logging

import orjson
from starlette.responses import Response

from ngsi.server.guards import BodyTimeout, PayloadTooLarge
from ngsi.server.reply import Reply, json_reply
from ngsi.server.service import Seam


def too_large(exc: PayloadTooLarge) -> Reply:
    return json_reply({"error": f"the body has {exc.size} bytes or more, at most {exc.limit} are accepted",
                       "data": None}, 413)


def timed_out(exc: BodyTimeout) -> Reply:
    return json_reply({"error": str(exc), "data": None}, 408)


def error(message: str, status: int) -> Response:
    """An answer in Perseo's error shape."""
    return Response(orjson.dumps({"error": message, "data": None}), status_code=status, media_type="application/json")


def internal_error() -> Response:
    return error("internal error", 500)


SEAM = Seam(too_large, timed_out, internal_error, logging.getLogger("waziup.rules"), protocol="RulesHttpProtocol")
