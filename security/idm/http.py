"""What every route of the identity manager shares: JSON out, forms and JSON in, Keyrock's
error shape, the caller's address and the /v1 caller.

Errors of the /v1 API are Keyrock's: ``{"error": {"message", "code", "title"}}`` with the
code as HTTP status (``reference/keyrock/apiary.apib``). A body that is not what a route
takes is a 400 in that shape, never a 500.
"""

from __future__ import annotations

import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .model import User
from .service import IdentityService

MAX_BODY = 64 * 1024  # bytes: no form or JSON body of this API is anywhere near it
JSON = "application/json; charset=utf-8"


class KeyrockError(Exception):
    """An error answered in Keyrock's /v1 shape."""

    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> Response:
        title = HTTPStatus(self.code).phrase
        body = {"error": {"message": self.message, "code": self.code, "title": title}}
        return json(body, self.code, self.headers)


def json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


async def body_bytes(request: Request) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise KeyrockError(413, "Request body too large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise KeyrockError(413, "Request body too large")
        chunks.append(chunk)
    return b"".join(chunks)


async def form_pairs(request: Request) -> list[tuple[str, str]]:
    """An ``application/x-www-form-urlencoded`` body as (name, value) pairs (undecodable
    bytes replaced); another content type gives no pairs."""
    raw = await body_bytes(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded" or not raw:
        return []
    return parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=100)


def query_pairs(request: Request) -> list[tuple[str, str]]:
    return parse_qsl(request.url.query, keep_blank_values=True, max_num_fields=100)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await body_bytes(request)
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise KeyrockError(400, "Invalid JSON body") from None
    if not isinstance(body, dict):
        raise KeyrockError(400, "Expected a JSON object")
    return body


async def wrapped_body(request: Request, name: str) -> dict[str, Any]:
    """The object a /v1 body wraps under ``name`` (Keyrock's ``{"user": {...}}``), or 400."""
    body = (await json_body(request)).get(name)
    if not isinstance(body, dict):
        raise KeyrockError(400, f"Missing parameter {name} in body")
    return body


def client_address(request: Request) -> str:
    if request.app.state.config.trust_forwarded:
        forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
        if forwarded:
            return forwarded
    return request.client.host if request.client else "unknown"


def service(request: Request) -> IdentityService:
    the_service: IdentityService = request.app.state.service
    return the_service


async def api_caller(request: Request) -> User:
    """The user of the /v1 call's ``X-Auth-Token`` (Keyrock's header; ``Authorization:
    Bearer`` accepted too), or 401 in Keyrock's shape."""
    value = request.headers.get("x-auth-token")
    if value is None:
        auth = request.headers.get("authorization", "")
        value = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    if not value:
        raise KeyrockError(401, "Expecting to find X-Auth-token in requests")
    found = await service(request).api_token(value)
    if found is None:
        raise KeyrockError(401, "Invalid token")
    return found[1]


def text_field(body: dict[str, Any], name: str, *, required: bool = False, limit: int = 1024) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise KeyrockError(400, f"Missing parameter {name} in body")
        return None
    if not isinstance(value, str):
        raise KeyrockError(400, f"Parameter {name} must be a string")
    if required and not value.strip():
        raise KeyrockError(400, f"Missing parameter {name} in body")
    if len(value) > limit:
        raise KeyrockError(400, f"Parameter {name} is too long")
    return value


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
