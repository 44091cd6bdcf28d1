"""CORS as Orion does it (-corsOrigin, -corsMaxAge): headers on responses to requests with an Origin.

The front end (``broker/front.py``) adds them to answers; preflight (OPTIONS) answers come
from the resources themselves, which know their methods.
"""

from __future__ import annotations

EXPOSED = b"Fiware-Correlator, Fiware-Total-Count, Location"
ALLOWED_HEADERS = (
    "Content-Type, Fiware-Service, Fiware-Servicepath, Ngsiv2-AttrsFormat, Fiware-Correlator, "
    "X-Forwarded-For, X-Real-IP, X-Auth-Token, Authorization"
)


def allowed_origin(configured: str | None, origin: str | None) -> str | None:
    """The Access-Control-Allow-Origin value for a request, None when CORS does not apply."""
    if not configured or origin is None:
        return None
    if configured == "__ALL":
        return "*"
    return configured if origin == configured else None
