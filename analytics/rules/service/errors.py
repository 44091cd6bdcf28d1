"""Errors as Perseo answers them: ``{"error": "<text>", "data": null}`` with the status.

Perseo's API (reference/perseo/api.md): every answer is JSON with an ``error`` field, a
string describing the error or ``null`` when everything worked. Routes and the service
only raise a :class:`RulesError`; the app renders it in one place (``app.py``).

    RulesError
     +-- BadRequest       400  a bad rule document, header, parameter or notification
     +-- NotFound         404  no such rule
     +-- Conflict         400  a rule of that name exists (Perseo answers 400 too)
     +-- Unavailable      503  the store or the broker cannot be reached
"""

from __future__ import annotations

from typing import Any


class RulesError(Exception):
    """An answer other than success: ``status`` and the text of ``error``."""

    status = 500

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "data": None}


class BadRequest(RulesError):
    status = 400


class NotFound(RulesError):
    status = 404


class Conflict(RulesError):
    status = 400


class Unavailable(RulesError):
    status = 503
