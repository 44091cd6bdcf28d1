"""Errors as Orion renders them.

Every failure the broker reports is an ``NGSIError``: an HTTP status, Orion's
``error`` name and its ``description`` text. Pure code raises them; the broker
renders them in one place as ``{"error": ..., "description": ...}``.

    NGSIError
     +-- BadRequest             400  BadRequest
     +-- NotFound               404  NotFound
     +-- MethodNotAllowed       405  MethodNotAllowed
     +-- NotAcceptable          406  NotAcceptable
     +-- TooManyResults         409  TooManyResults
     +-- LengthRequired         411  ContentLengthRequired
     +-- RequestEntityTooLarge  413  RequestEntityTooLarge
     +-- UnsupportedMediaType   415  UnsupportedMediaType
     +-- Unprocessable          422  Unprocessable
     +-- PartialUpdate          422  PartialUpdate
     +-- InternalError          500  InternalServerError
"""

from __future__ import annotations


class NGSIError(Exception):
    """An error with Orion's status code, ``error`` name and ``description``."""

    status: int = 500
    error: str = "InternalServerError"

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


class BadRequest(NGSIError):
    status = 400
    error = "BadRequest"


class NotFound(NGSIError):
    status = 404
    error = "NotFound"


class MethodNotAllowed(NGSIError):
    status = 405
    error = "MethodNotAllowed"


class NotAcceptable(NGSIError):
    status = 406
    error = "NotAcceptable"


class TooManyResults(NGSIError):
    status = 409
    error = "TooManyResults"


class LengthRequired(NGSIError):
    status = 411
    error = "ContentLengthRequired"


class RequestEntityTooLarge(NGSIError):
    status = 413
    error = "RequestEntityTooLarge"


class UnsupportedMediaType(NGSIError):
    status = 415
    error = "UnsupportedMediaType"


class Unprocessable(NGSIError):
    status = 422
    error = "Unprocessable"


class PartialUpdate(NGSIError):
    status = 422
    error = "PartialUpdate"


class InternalError(NGSIError):
    status = 500
    error = "InternalServerError"


# Texts Orion uses in several places.
ENTITY_NOT_FOUND = "The requested entity has not been found. Check type and id"
ATTRIBUTE_NOT_FOUND = "The entity does not have such an attribute"
TOO_MANY_ENTITIES = "More than one matching entity. Please refine your query"
INVALID_CHARS_URI = "invalid character in URI parameter"
