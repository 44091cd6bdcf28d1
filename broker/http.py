"""The HTTP plumbing shared by every route: resources, request parsing, responses.

A ``Resource`` is one URL of the API with a handler per method. It answers unknown
methods with Orion's 405 and ``Allow`` list, and enforces Orion's request rules
(Content-Type, empty payloads, payload size) before a handler runs, so that handlers
deal only with NGSI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ngsi.errors import (
    NGSIError,
    BadRequest,
    LengthRequired,
    MethodNotAllowed,
    RequestEntityTooLarge,
    UnsupportedMediaType,
)
from ngsi.servicepath import Scope as PathScope
from ngsi.servicepath import parse_scopes, parse_tenant, parse_write_path

from . import jsonio
from .middleware.cors import ALLOWED_HEADERS, EXPOSED, allowed_origin

Handler = Callable[["Call"], Awaitable[Response]]


@dataclass
class Call:
    """One request as handlers see it: the Starlette request plus the NGSI headers, parsed once."""

    request: Request
    tenant: str
    body: bytes
    options: frozenset[str]

    @property
    def query(self) -> Any:
        return self.request.query_params

    @property
    def path_params(self) -> dict[str, str]:
        return self.request.path_params

    @property
    def state(self) -> Any:
        return self.request.app.state

    def scopes(self) -> tuple[PathScope, ...]:
        return parse_scopes(self.request.headers.get("fiware-servicepath"))

    def write_path(self) -> str:
        return parse_write_path(self.request.headers.get("fiware-servicepath"))

    def content_type(self) -> str:
        # With the header given twice, the last one counts (as in Orion's HTTP library).
        values = self.request.headers.getlist("content-type")
        return values[-1].split(";")[0].strip().lower() if values else ""

    def json(self) -> Any:
        if self.content_type() != "application/json":
            raise UnsupportedMediaType(f"not supported content type: {self.content_type()}")
        return jsonio.loads(self.body)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(jsonio.dumps(data), status_code=status, headers=headers, media_type="application/json")


def no_content() -> Response:
    return Response(status_code=204)


def created(location: str) -> Response:
    """201 with Orion's raw Location: no percent-encoding; non-ASCII goes out as UTF-8 bytes."""
    return Response(status_code=201, headers={"Location": location.encode("utf-8").decode("latin-1")})


def text_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A text/plain answer; Orion's Content-Type has no charset parameter (Starlette would add one)."""
    return Response(body, status_code=status, headers={**(headers or {}), "Content-Type": "text/plain"})


def prefers_text(accept: str | None) -> bool:
    """True when the Accept header admits text/plain but not JSON: Orion then sends errors as text/plain."""
    if not accept:
        return False
    types = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    if types & {"application/json", "application/*", "*/*"}:
        return False
    return bool(types & {"text/plain", "text/*"})


def error_response(exc: Any, headers: dict[str, str] | None = None, *, accept: str | None = None) -> Response:
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
    """An ASGI app for one URL: ``Resource("GET, DELETE", GET=get_entity, DELETE=delete_entity)``.

    ``allow`` is Orion's Allow header text for this URL, in Orion's order.
    """

    def __init__(self, allow: str, **handlers: Handler) -> None:
        self.allow = allow
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self.handle(request)
        except NGSIError as exc:
            response = error_response(exc, accept=request.headers.get("accept"))
        await response(scope, receive, send)

    def preflight(self, request: Request) -> Response:
        """OPTIONS with CORS on: the methods of this URL, GET first as Orion lists them."""
        config = request.app.state.config
        methods = [m.strip() for m in self.allow.split(",")]
        methods.sort(key=lambda m: m != "GET")
        origin = allowed_origin(config.cors_origin, request.headers.get("origin"))
        if origin is None:  # no Origin, or one not allowed: Orion adds no CORS header at all
            return Response(status_code=200)
        headers = {
            "Access-Control-Allow-Methods": ", ".join(methods + ["OPTIONS"]),
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Expose-Headers": EXPOSED.decode(),
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": str(config.cors_max_age),
        }
        return Response(status_code=200, headers=headers)

    async def handle(self, request: Request) -> Response:
        method = request.method
        handler = self.handlers.get(method)
        config = request.app.state.config
        if method == "OPTIONS" and config.cors_origin:
            return self.preflight(request)
        # Orion checks the tenant name even without -multiservice (the request then goes
        # to the default service), and the payload rules before the method.
        tenant = parse_tenant(request.headers.get("fiware-service"))
        if not config.multiservice:
            tenant = ""
        body = b""
        if method in ("POST", "PUT", "PATCH"):
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > config.payload_max:
                raise RequestEntityTooLarge(
                    f"payload size: {int(length)}, max size supported: {config.payload_max}"
                )
            body = await request.body()
            if len(body) > config.payload_max:
                raise RequestEntityTooLarge(f"payload size: {len(body)}, max size supported: {config.payload_max}")
            if not body:
                raise LengthRequired("Zero/No Content-Length in PUT/POST/PATCH request")
        elif method in ("GET", "DELETE") and "content-type" in request.headers and not await request.body():
            # A payload sent anyway is ignored (3842: DELETE /v2/subscriptions/{id} with one is 204).
            raise BadRequest(
                "Orion accepts no payload for GET/DELETE requests. HTTP header Content-Type is thus forbidden"
            )
        if handler is None:
            allow = self.allow + (", OPTIONS" if config.cors_origin else "")
            exc = MethodNotAllowed("method not allowed")
            return error_response(exc, {"Allow": allow}, accept=request.headers.get("accept"))
        options = parse_options(request.query_params.get("options"))
        _set_notification_context(request, tenant, options)
        return await handler(Call(request, tenant, body, options))


def _set_notification_context(request: Request, tenant: str, options: frozenset[str]) -> None:
    """What notifications caused by this request carry (correlator, X-Auth-Token, forcedUpdate)."""
    from .subscriptions.matcher import CURRENT, RequestContext

    state = request.scope.get("state") or {}
    correlator = state.get("correlator")
    CURRENT.set(
        RequestContext(
            **({"correlator": correlator} if correlator else {}),
            service=tenant or (request.headers.get("fiware-service") or "").strip(),
            auth_token=request.headers.get("x-auth-token"),
            forced="forcedUpdate" in options,
        )
    )
