"""Async NGSI-v2 client used by the IoT agent, analytics and apps.

One ``NGSIClient`` over one ``httpx.AsyncClient``: network by default, or any httpx
transport, e.g. ``httpx.ASGITransport(app=broker_app)`` to talk to an in-process broker
without a socket. Failures raise ``NGSIClientError(status, error, description)``.
"""

from __future__ import annotations

from .client import DEFAULT, NGSIClient, Page
from .errors import NGSIClientError, NGSIConnectionError

__all__ = ["DEFAULT", "NGSIClient", "NGSIClientError", "NGSIConnectionError", "Page"]
