"""Async NGSI-v2 client used by the IoT agent, analytics and apps: the one outbound HTTP
stack of the platform.

One ``NGSIClient`` over one transport (``transport.Transport``): the network by default
(``http11.HTTPClient``, keep-alive HTTP/1.1), or ``ASGITransport(broker_app)`` to talk to
an in-process broker without a socket. Answers are ``Response`` objects; failures raise
``NGSIClientError(status, error, description)``, ``NGSIConnectionError`` (status 0) when
there is no answer. ``NGSIClient.send`` is the raw call to any URL, whatever the status.
"""

from __future__ import annotations

from .asgi import ASGITransport, LifespanError
from .client import DEFAULT, NGSIClient, Page, TenantOptions
from .errors import NGSIClientError, NGSIConnectionError
from .http11 import HTTPClient, HTTPError
from .response import Headers, Response
from .transport import Transport

__all__ = [
    "ASGITransport",
    "DEFAULT",
    "HTTPClient",
    "HTTPError",
    "Headers",
    "LifespanError",
    "NGSIClient",
    "NGSIClientError",
    "NGSIConnectionError",
    "Page",
    "Response",
    "TenantOptions",
    "Transport",
]
