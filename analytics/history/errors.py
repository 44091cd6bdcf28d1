"""Errors as QuantumLeap renders them: ``{"error": <HTTP reason>, "description": ...}``.

Pure code raises a :class:`HistoryError`; the app renders it in one place
(``app.py``). QuantumLeap names most errors by the HTTP reason phrase ("Bad Request",
"Not Found") and a few by their exception class (``AmbiguousNGSIIdError``), so the name
is data, not derived from the class.

    HistoryError
     +-- BadRequest       400  Bad Request
     +-- Forbidden        403  Forbidden (the caller's privacy policy refused the answer)
     +-- NotFound         404  Not Found (no records: NO_RECORDS)
     +-- Ambiguous        409  AmbiguousNGSIIdError
     +-- Unavailable      503  Service Unavailable (the database)
"""

from __future__ import annotations

NO_RECORDS = "No records were found for such query."


class HistoryError(Exception):
    """An answer other than success: status, ``error`` name and ``description``."""

    status = 500
    error = "Internal Server Error"

    def __init__(self, description: str, *, error: str | None = None, status: int | None = None) -> None:
        super().__init__(description)
        self.description = description
        if error is not None:
            self.error = error
        if status is not None:
            self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "description": self.description}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.error!r}, {self.description!r})"


class BadRequest(HistoryError):
    status = 400
    error = "Bad Request"


class Forbidden(HistoryError):
    """The answer may not leave for this caller (``ngsi.release.Refused``: a privacy
    policy allows only some aggregates, or the caller's privacy budget is spent)."""

    status = 403
    error = "Forbidden"


class NotFound(HistoryError):
    """Nothing matched: QuantumLeap 1.0's documented 404 (FiLiP pages until it sees one)."""

    status = 404
    error = "Not Found"

    def __init__(self, description: str = NO_RECORDS) -> None:
        super().__init__(description)


class Ambiguous(HistoryError):
    """An entity id that names entities of several types, and no type to choose."""

    status = 409
    error = "AmbiguousNGSIIdError"


class Unavailable(HistoryError):
    status = 503
    error = "Service Unavailable"
