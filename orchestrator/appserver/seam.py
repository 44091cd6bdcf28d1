"""The request seam of the orchestrator's service (:8080), and its answers for what never
reaches a route: every error, its own or the seam's, is ``{"error", "description"}``
(Orion's and QuantumLeap's shape), JSON."""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse, Response

from ngsi.server.guards import BodyTimeout, PayloadTooLarge
from ngsi.server.reply import Reply, json_reply
from ngsi.server.service import Seam


def error_response(error: str, description: str, status: int) -> Response:
    return JSONResponse({"error": error, "description": description}, status)


def too_large(exc: PayloadTooLarge) -> Reply:
    return json_reply({"error": "PayloadTooLarge",
                       "description": f"the body has {exc.size} bytes or more, at most {exc.limit} are accepted"}, 413)


def timed_out(exc: BodyTimeout) -> Reply:
    return json_reply({"error": "RequestTimeout", "description": str(exc)}, 408)


def internal_error() -> Response:
    return error_response("InternalError", "internal error", 500)


SEAM = Seam(too_large, timed_out, internal_error, logging.getLogger("waziup.orchestrator"),
            protocol="OrchestratorHttpProtocol")
