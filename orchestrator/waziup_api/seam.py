"""The request seam of the WAZIUP API, and its answers for what never reaches a route:
``GuardLayer`` (``ngsi/server/asgi.py``) runs the guards the platform configures
(``-guard``), bounds each body (``-maxBody``: 413) and the time it may take
(``-reqTimeout``: 408). Every refusal is free text (contract §1), ``text/plain``."""

from __future__ import annotations

import logging

from starlette.responses import Response

from ngsi.server.guards import BodyTimeout, PayloadTooLarge
from ngsi.server.reply import TEXT, Reply
from ngsi.server.service import Seam


def text_reply(text: str, status: int) -> Reply:
    body = text.encode()
    return Reply(status, [TEXT, (b"content-length", str(len(body)).encode())], body)


def too_large(exc: PayloadTooLarge) -> Reply:
    return text_reply(f"the body has {exc.size} bytes or more, at most {exc.limit} are accepted", 413)


def timed_out(exc: BodyTimeout) -> Reply:
    return text_reply(str(exc), 408)


def internal_error() -> Response:
    return Response("internal error", 500, media_type="text/plain")


SEAM = Seam(too_large, timed_out, internal_error, logging.getLogger("waziup.api"), protocol="WaziupApiHttpProtocol")
