"""The request seam of the history service, and its answers for what never reaches a route.

``GuardLayer`` (``ngsi/server/asgi.py``) gives every request its context (tenant,
service path, correlator) and runs the guards the platform configures (``-guard``); it
also bounds each body (``-maxBody``: 413) and the time it may take (``-reqTimeout``:
408), and ``GuardedHttpProtocol`` bounds the request head; a bug answers 500. All of them
answer in QuantumLeap's error shape, ``{"error": <HTTP reason>, "description"}``, which is
also the protocol's default refusal. ``SEAM`` holds these answers for the shell the
services share (``ngsi/server/service.py``).
"""

from __future__ import annotations

import logging

from starlette.responses import Response

from ngsi.server.guards import BodyTimeout, PayloadTooLarge
from ngsi.server.reply import Reply, json_reply
from ngsi.server.service import Seam

from .routes import json_response


def too_large(exc: PayloadTooLarge) -> Reply:
    return json_reply({"error": "Payload Too Large",
                       "description": f"the body has {exc.size} bytes or more, at most {exc.limit} are accepted"}, 413)


def timed_out(exc: BodyTimeout) -> Reply:
    return json_reply({"error": "Request Timeout", "description": str(exc)}, 408)


def internal_error() -> Response:
    return json_response({"error": "Internal Server Error", "description": "internal error"}, 500)


SEAM = Seam(too_large, timed_out, internal_error, logging.getLogger("waziup.history"), protocol="HistoryHttpProtocol")
