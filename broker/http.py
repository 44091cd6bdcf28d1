"""The HTTP plumbing shared by every route: resources, request parsing, responses.

A ``Resource`` is one URL of the API with a handler per method. It answers unknown
methods with Orion's 405 and ``Allow`` list, and enforces Orion's request rules
(Accept, Content-Type, empty payloads, payload size) before a handler runs, so that
handlers deal only with NGSI. The body is read within ``-reqTimeout`` seconds (a
client stalled mid-body gets 408 and the connection closes) and never past the size
limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Union

from starlette.datastructures import QueryParams
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope

from ngsi.errors import (
    NGSIError,
    BadRequest,
    LengthRequired,
    MethodNotAllowed,
    NotAcceptable,
    RequestEntityTooLarge,
    UnsupportedMediaType,
)
from ngsi.context import RequestContext
from ngsi.numbers import parse_uint
from ngsi.server.guards import BodyTimeout, timed
from ngsi.server.reply import JSON as _JSON
from ngsi.server.reply import TEXT as _TEXT
from ngsi.server.reply import Reply
from ngsi.server.reply import raw_headers as _raw
from ngsi.servicepath import Scope as PathScope

from . import jsonio
from .cors import ALLOWED_HEADERS, EXPOSED, allowed_origin


AnyResponse = Union[Reply, Response]
Handler = Callable[["Call"], Awaitable[AnyResponse]]
_NO_QUERY = QueryParams("")
_CLOSE = {"Connection": "close"}


@dataclass(slots=True, eq=False, repr=False)
class Call:
    """One request as handlers see it: its context, the body, the path parameters.

    ``ctx`` is the request context (tenant, service path, correlator, identity, options),
    which handlers pass on to the domain layer. ``headers`` maps lowercase names to the
    first value given. ``request`` (a Starlette Request) is built only for code that asks
    for it. A slotted dataclass: one is built per request, and slots make that and each
    attribute read cheaper; compared by identity, as requests are.
    """

    scope: Scope
    receive: Receive
    headers: dict[str, str]
    ctx: RequestContext
    body: bytes
    path_params: dict[str, str]
    state: Any
    _query: QueryParams | None = field(default=None, init=False)  # parsed when first asked for
    _request: Request | None = field(default=None, init=False)

    @property
    def tenant(self) -> str:
        return self.ctx.tenant

    @property
    def options(self) -> frozenset[str]:
        return self.ctx.options

    @property
    def query(self) -> QueryParams:
        if self._query is None:
            raw = self.scope.get("query_string", b"")
            self._query = QueryParams(raw) if raw else _NO_QUERY
        return self._query

    def param(self, name: str) -> str | None:
        """A URI parameter (the last one given under that name), None when absent."""
        if not self.scope.get("query_string"):
            return None
        return self.query.get(name)

    @property
    def request(self) -> Request:
        if self._request is None:
            self._request = Request(self.scope, self.receive)
            self._request._body = self.body  # already read: the stream is consumed
        return self._request

    def scopes(self) -> tuple[PathScope, ...]:
        return self.ctx.scopes()

    def write_path(self) -> str:
        return self.ctx.write_path()

    def content_type(self) -> str:
        # With the header given twice, the last one counts (as in Orion's HTTP library).
        value = None
        for name, raw in self.scope["headers"]:
            if name == b"content-type":
                value = raw
        return value.decode("latin-1").split(";")[0].strip().lower() if value is not None else ""

    def json(self) -> Any:
        content_type = self.content_type()
        if content_type != "application/json":
            raise UnsupportedMediaType(f"not supported content type: {content_type}")
        return jsonio.loads(self.body)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    body = jsonio.dumps(data)
    raw = _raw(headers)
    raw.append((b"content-length", str(len(body)).encode()))
    raw.append(_JSON)
    return Reply(status, raw, body)


def no_content(headers: dict[str, str] | None = None) -> Reply:
    return Reply(204, _raw(headers))


def created(location: str) -> Reply:
    """201 with Orion's raw Location: no percent-encoding; non-ASCII goes out as UTF-8 bytes."""
    return Reply(201, [(b"location", location.encode("utf-8")), (b"content-length", b"0")])


def text_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    """A text/plain answer; Orion's Content-Type has no charset parameter (Starlette would add one)."""
    raw = [(k, v) for k, v in _raw(headers) if k != b"content-type"]
    raw.append(_TEXT)
    raw.append((b"content-length", str(len(body)).encode()))
    return Reply(status, raw, body)


def prefers_text(accept: str | None) -> bool:
    """True when the Accept header admits text/plain but not JSON: Orion then sends errors as text/plain."""
    if not accept:
        return False
    types = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    if types & {"application/json", "application/*", "*/*"}:
        return False
    return bool(types & {"text/plain", "text/*"})


_JSON_RANGES = frozenset({"application/json", "application/*", "*/*"})
_TEXT_RANGES = frozenset({"text/plain", "text/*"})
JSON_ONLY = "accepted MIME types: application/json"
JSON_OR_TEXT = "accepted MIME types: application/json, text/plain"


def accepted_types(accept: str) -> set[str]:
    """The media ranges of an Accept header, lower-case, parameters (``q``...) dropped."""
    return {part.split(";", 1)[0].strip().lower() for part in accept.split(",")} - {""}


def json_accepted(accept: str | None) -> bool:
    """Does the Accept header admit ``application/json`` (no header, or an empty one, does)?"""
    if accept is None:
        return True
    types = accepted_types(accept)
    return not types or bool(types & _JSON_RANGES)


def check_accept(accept: str | None, *, value: bool = False) -> None:
    """Orion's rule (orion-api.md, "MIME Types"): response payloads are ``application/json``,
    and ``text/plain`` for an attribute's value; "clients issuing HTTP requests with accept
    types different than those will get a 406 Not Acceptable error". Checked before the
    request is served: an Accept header that admits none of them (``application/*``,
    ``text/*``, ``*/*`` included) is 406. A text-only Accept passes here (errors then go out
    as text/plain, see ``prefers_text``); outside an attribute's value (``value``) a JSON
    payload is refused after the read (``Resource.handle``)."""
    if json_accepted(accept) or accepted_types(accept or "") & _TEXT_RANGES:
        return
    raise NotAcceptable(JSON_OR_TEXT if value else JSON_ONLY)


def _json_payload(response: Any) -> bool:
    """Is ``response`` a success with a JSON payload (what a text-only client cannot take)?"""
    if not 200 <= response.status_code < 300 or not response.body:
        return False
    return any(name == b"content-type" and value.startswith(b"application/json") for name, value in response.raw_headers)


def error_response(exc: Any, headers: dict[str, str] | None = None, *, accept: str | None = None) -> Reply:
    """Orion's error body; its Content-Type follows the Accept header (``accept``) of the request."""
    if prefers_text(accept):
        return text_response(jsonio.dumps(exc.body()), status=exc.status, headers=headers)
    return json_response(exc.body(), status=exc.status, headers=headers)


_OPTION_WORDS = {
    "count", "keyValues", "values", "unique", "append", "upsert", "noAttrDetail", "overrideMetadata",
    "skipForwarding", "forcedUpdate", "flowControl", "normalized", "simplifiedNormalized",
    "simplifiedKeyValues", "skipInitialNotification", "fullCounters",
    "dateCreated", "dateModified",  # deprecated: same as naming them in attrs
}
# Render modes: a request may ask for one at most.
_EXCLUSIVE_OPTIONS = frozenset({"keyValues", "values", "unique"})


def parse_options(raw: str | None) -> frozenset[str]:
    if raw is None:
        return frozenset()
    words = [w.strip() for w in raw.split(",")]
    for word in words:
        if word not in _OPTION_WORDS:
            raise BadRequest("Invalid value for URI param /options/")
    if len(_EXCLUSIVE_OPTIONS.intersection(words)) > 1:
        raise BadRequest("Invalid value for URI param /options/")
    return frozenset(words)


class Resource:
    """One URL of the API: ``Resource("GET, DELETE", GET=get_entity, DELETE=delete_entity)``.

    ``allow`` is Orion's Allow header text for this URL, in Orion's order. The front end
    (``broker/front.py``) routes to it and sends what ``respond`` returns.
    """

    def __init__(self, allow: str, *, negotiates: bool = False, **handlers: Handler) -> None:
        self.allow = allow
        self.handlers = handlers
        # True: the handlers apply the Accept rules themselves (/attrs/{name}/value, the
        # only resource whose values may be text/plain); else ``check_accept``.
        self.negotiates = negotiates

    async def respond(
        self, scope: Scope, receive: Receive, headers: dict[str, str], ctx: RequestContext,
        path_params: dict[str, str], state: Any,
    ) -> AnyResponse:
        try:
            return await self.handle(scope, receive, headers, ctx, path_params, state)
        except NGSIError as exc:
            # After a 408 the rest of the body may still come: the connection is not reused.
            extra = _CLOSE if exc.status == 408 else None
            return error_response(exc, extra, accept=headers.get("accept"))

    def preflight(self, headers: dict[str, str], config: Any) -> Reply:
        """OPTIONS with CORS on: the methods of this URL, GET first as Orion lists them."""
        methods = [m.strip() for m in self.allow.split(",")]
        methods.sort(key=lambda m: m != "GET")
        origin = allowed_origin(config.cors_origin, headers.get("origin"))
        if origin is None:  # no Origin, or one not allowed: Orion adds no CORS header at all
            return Reply(200, [(b"content-length", b"0")])
        raw = _raw({
            "Access-Control-Allow-Methods": ", ".join(methods + ["OPTIONS"]),
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Expose-Headers": EXPOSED.decode(),
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": str(config.cors_max_age),
        })
        raw.append((b"content-length", b"0"))
        return Reply(200, raw)

    async def handle(
        self, scope: Scope, receive: Receive, headers: dict[str, str], ctx: RequestContext,
        path_params: dict[str, str], state: Any,
    ) -> AnyResponse:
        method = scope["method"]
        handler = self.handlers.get(method)
        config = state.config
        if method == "OPTIONS" and config.cors_origin:
            return self.preflight(headers, config)
        if not self.negotiates:
            check_accept(headers.get("accept"))
        # Orion checks the tenant name even without -multiservice (the request then goes
        # to the default service), and the payload rules before the method.
        ctx.checked_tenant()
        body = b""
        timeout = config.req_timeout
        if method == "POST" or method == "PUT" or method == "PATCH":
            length = headers.get("content-length")
            declared = None if length is None else parse_uint(length, cap=2**64)
            if declared is not None and declared > config.payload_max:
                raise RequestEntityTooLarge(f"payload size: {declared}, max size supported: {config.payload_max}")
            body = await read_body(receive, timeout, config.payload_max)
            if len(body) > config.payload_max:
                raise RequestEntityTooLarge(f"payload size: {len(body)}, max size supported: {config.payload_max}")
            if not body:
                raise LengthRequired("Zero/No Content-Length in PUT/POST/PATCH request")
        elif (method == "GET" or method == "DELETE") and "content-type" in headers and not await read_body(
            receive, timeout, config.payload_max
        ):
            # A payload sent anyway is ignored (3842: DELETE /v2/subscriptions/{id} with one is 204).
            raise BadRequest(
                "Orion accepts no payload for GET/DELETE requests. HTTP header Content-Type is thus forbidden"
            )
        if handler is None:
            allow = self.allow + (", OPTIONS" if config.cors_origin else "")
            exc = MethodNotAllowed("method not allowed")
            return error_response(exc, {"Allow": allow}, accept=headers.get("accept"))
        call = Call(scope, receive, headers, ctx, body, path_params, state)
        if scope.get("query_string"):
            options = parse_options(call.query.get("options"))
            if options:
                call.ctx = ctx.with_options(options)
        response = await handler(call)
        if not self.negotiates and not json_accepted(headers.get("accept")) and _json_payload(response):
            # A text-only Accept: errors went out as text/plain (``prefers_text``), but a JSON
            # payload is not what the client takes (orion-api.md "MIME Types": text/plain
            # only for an attribute's value). Only reads have one: nothing was written.
            raise NotAcceptable(JSON_ONLY)
        return response


def request_timeout(seconds: float) -> NGSIError:
    """The 408 of a body that did not arrive in time (``-reqTimeout``), in Orion's error shape."""
    return NGSIError(
        f"request payload not received within {seconds:g} seconds", error="RequestTimeout", status=408
    )


async def read_body(receive: Receive, timeout: float = 0.0, limit: int | None = None) -> bytes:
    """The whole request body (as Starlette's ``Request.body``), within ``timeout`` seconds
    (0: no limit; past it Orion-shaped 408, see ``request_timeout``). With ``limit``, reading
    stops as soon as the body is longer: what follows is not kept in memory."""
    chunks: list[bytes] = []
    size = 0
    timed_receive = timed(receive, timeout)
    while True:
        try:
            message = await timed_receive()
        except BodyTimeout:
            raise request_timeout(timeout) from None
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
                size += len(chunk)
                if limit is not None and size > limit:
                    break  # the caller answers 413 with this size
            if not message.get("more_body", False):
                break
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
