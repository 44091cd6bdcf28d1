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

from typing import ClassVar


class ServiceError(Exception):
    """An error a service answers itself: an HTTP status, the error's name and a text.

    Orion's errors (``NGSIError``: ``status``, ``error``, ``description``) and the IoT
    agents' (``iot_agent.errors.IoTAError``: ``code``, ``name``, ``message``) are this one
    thing in two vocabularies: each kind of error is a subclass that sets the status and
    the name, one raise may override either, and the answer's JSON body is the name and
    the text. ``FIELDS`` names the three attributes (status, name, text); the body's keys
    are the last two."""

    FIELDS: ClassVar[tuple[str, str, str]]

    def __init__(self, text: str, status: int | None = None, name: str | None = None) -> None:
        super().__init__(text)
        status_field, name_field, text_field = self.FIELDS
        setattr(self, text_field, text)
        if status is not None:
            setattr(self, status_field, status)
        if name is not None:
            setattr(self, name_field, name)

    def body(self) -> dict[str, str]:
        """The answer's JSON body: the name and the text, under the service's own keys."""
        _, name_field, text_field = self.FIELDS
        return {name_field: getattr(self, name_field), text_field: getattr(self, text_field)}

    def __repr__(self) -> str:
        status, name, text = (getattr(self, field) for field in self.FIELDS)
        return f"{type(self).__name__}({status}, {name!r}, {text!r})"


class NGSIError(ServiceError):
    """An error with Orion's status code, ``error`` name and ``description``."""

    FIELDS = ("status", "error", "description")
    status: int = 500
    error: str = "InternalServerError"
    description: str

    def __init__(self, description: str, *, error: str | None = None, status: int | None = None) -> None:
        super().__init__(description, status, error)


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
