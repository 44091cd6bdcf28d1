"""Errors of the NGSI client: the broker's own error, carried as it answered it.

Orion answers every failure with ``{"error": ..., "description": ...}``; callers branch on
``status`` and ``error`` (e.g. 404 ``NotFound``, 422 ``Unprocessable``) instead of parsing
texts. A broker that cannot be reached is the same kind of error with status 0, so the IoT
agent and the apps handle "the broker said no" and "no broker" in one ``except``.
"""

from __future__ import annotations


class NGSIClientError(Exception):
    """A request the broker refused (4xx/5xx) or could not receive (status 0)."""

    def __init__(self, status: int, error: str, description: str = "") -> None:
        super().__init__(f"{status} {error}: {description}" if description else f"{status} {error}")
        self.status = status
        self.error = error
        self.description = description

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status!r}, {self.error!r}, {self.description!r})"


class NGSIConnectionError(NGSIClientError):
    """No answer: connection refused, timeout, broken transport.

    ``reason`` is libcurl's text for it, as Orion reports it (``lastFailureReason``):
    "Could not connect to server", "Timeout was reached", "Could not resolve hostname"...
    The transport's own exception (``http11.HTTPError``) is the ``__cause__``.
    """

    def __init__(self, description: str, reason: str = "Could not connect to server") -> None:
        super().__init__(0, "ConnectionError", description)
        self.reason = reason
