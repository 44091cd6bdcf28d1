"""The broker's HTTP front end: one ASGI callable per request, no middleware layers.

It does in one pass what Orion does around every request: the ``Fiware-Correlator``
(the request's own, or a new UUID) on every answer; CORS headers (``-corsOrigin``); the
request context (``ngsi.context``) and the guards configured at start-up (the request
seam, ``ngsi.server.guards``: authentication, authorization and the like plug in
there, before routing); Orion's URL check (a forbidden character anywhere in the decoded path is a 400,
whatever the resource, and so is an encoded ``/``, which would otherwise split an id;
one trailing slash is ignored); routing to a ``Resource``; and
the last line of defence: any unexpected exception becomes Orion's 500 JSON body,
logged. The response is sent once, as two ASGI messages, with the extra headers added
to the resource's own list instead of wrapping ``send`` once per concern.

Routing is a dict lookup for fixed paths and a split for the ones with an id, in the
same shape Starlette's routes had: ``{id}`` is a non-empty segment, ``{id:segment}``
may be empty (Orion answers ``/v2/entities//`` about an empty id, not "service not
found").
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.types import Receive, Scope, Send

from ngsi.context import from_headers
from ngsi.errors import BadRequest, InternalError, RequestEntityTooLarge
from ngsi.names import forbidden_uri_chars
from ngsi.server.correlator import first_values, new_correlator
from ngsi.server.guards import BodyTimeout, ClientGone, Incoming, PayloadTooLarge, run_guards

from . import jsonio
from .cors import EXPOSED, allowed_origin
from .http import Resource, error_response, request_timeout
from .routes import admin, batch, entities, notify, registrations, subscriptions, types, version

log = logging.getLogger("waziup.broker")

FIXED: dict[str, Resource] = {
    "/version": version.VERSION,
    "/openapi.json": version.OPENAPI,
    "/v2": version.ENTRY_POINTS,
    "/v2/entities": entities.ENTITIES,
    "/v2/types": types.TYPES,
    "/v2/op/update": batch.OP_UPDATE,
    "/v2/op/query": batch.OP_QUERY,
    "/v2/op/notify": notify.OP_NOTIFY,
    "/v2/subscriptions": subscriptions.SUBSCRIPTIONS,
    "/v2/registrations": registrations.REGISTRATIONS,
    **admin.FIXED,  # Orion's administration API (admin/statistics.md, admin/management_api.md)
}
# /v2/<collection>/{param}: (resource, parameter name, may the segment be empty)
_ONE: dict[str, tuple[Resource, str, bool]] = {
    "entities": (entities.ENTITY, "id", True),
    "types": (types.TYPE, "type", True),
    "subscriptions": (subscriptions.SUBSCRIPTION, "id", True),
    "registrations": (registrations.REGISTRATION, "id", False),
}


def encoded_slash(scope: Scope) -> bool:
    """True when the raw path has a percent-encoded ``/``: the path uvicorn gives is
    decoded, so ``/v2/entities/a%2Fattrs`` would be split (and routed) as
    ``/v2/entities/a/attrs``. A ``/`` is never part of an id or name (Orion's
    forbiddenIdChars), so it is refused like the other forbidden characters."""
    raw = scope.get("raw_path")
    if raw is None or b"%" not in raw:
        return False
    raw = raw.partition(b"?")[0]  # some ASGI clients (httpx) put the query in raw_path too
    return b"%2f" in raw or b"%2F" in raw


def route(path: str) -> tuple[Resource, dict[str, str]] | None:
    """The resource of a (decoded, trailing-slash-trimmed) path and its path parameters."""
    resource = FIXED.get(path)
    if resource is not None:
        return resource, {}
    parts = path.split("/")
    n = len(parts)
    if n == 4 and parts[1] == "log" and parts[2] == "trace" and parts[3] and parts[0] == "":
        return admin.LOG_TRACE_LEVELS, {"levels": parts[3]}  # admin/management_api.md, "Trace levels"
    if n < 4 or parts[0] != "" or parts[1] != "v2":
        return None
    if n == 4:
        one = _ONE.get(parts[2])
        if one is None or not (parts[3] or one[2]):
            return None
        return one[0], {one[1]: parts[3]}
    if parts[2] != "entities" or parts[4] != "attrs" or not parts[3]:
        return None
    if n == 5:
        return entities.ATTRS, {"id": parts[3]}
    if n == 6:
        return entities.ATTR, {"id": parts[3], "name": parts[5]}
    if n == 7 and parts[5] and parts[6] == "value":
        return entities.ATTR_VALUE, {"id": parts[3], "name": parts[5]}
    return None


_INTERNAL = jsonio.dumps(InternalError("internal error").body())
_NOT_FOUND = "Service not found. Check your URL as probably it is wrong."


async def serve_http(app: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one HTTP request (``app`` is the Starlette app: its ``state`` and config)."""
    headers = first_values(scope["headers"])
    correlator = headers.get("fiware-correlator")
    if correlator is None:
        correlator = new_correlator()
    state = app.state
    config = state.config
    ctx = from_headers(headers, correlator, multiservice=config.multiservice)
    extra = [(b"fiware-correlator", correlator.encode("latin-1"))]
    if config.cors_origin and scope["method"] != "OPTIONS":
        allow = allowed_origin(config.cors_origin, headers.get("origin"))
        if allow is not None:
            extra = [(b"access-control-allow-origin", allow.encode()), (b"access-control-expose-headers", EXPOSED)] + extra
    try:
        store = getattr(state, "store", None)
        if store is not None and store.shared:
            await store.sync()  # workers sharing a store: take in what the others changed first
        path = scope["path"]
        guards = state.guards
        if guards:  # the request seam (ngsi/server/guards.py): authentication, authorization...
            incoming = Incoming(
                scope["method"], path, scope.get("query_string", b""), headers, scope.get("client"), ctx, receive,
                config.payload_max, config.req_timeout,
            )
            try:
                rejection, added = await run_guards(guards, incoming)
            except PayloadTooLarge as exc:
                rejection, added = error_response(RequestEntityTooLarge(str(exc)), accept=headers.get("accept")), []
            except BodyTimeout as exc:
                timeout = error_response(request_timeout(exc.seconds), {"Connection": "close"}, accept=headers.get("accept"))
                rejection, added = timeout, []
            if added:
                extra = added + extra
            if rejection is not None:
                await send({
                    "type": "http.response.start", "status": rejection.status_code,
                    "headers": rejection.raw_headers + extra,
                })
                await send({"type": "http.response.body", "body": rejection.body})
                return
            ctx = incoming.ctx
            receive = incoming.receive()
        if forbidden_uri_chars(path) or encoded_slash(scope):
            response: Any = error_response(BadRequest("invalid character in URI"), accept=headers.get("accept"))
        else:
            if len(path) > 1 and path[-1] == "/":
                # Orion ignores one trailing slash: GET /v2/entities/ is GET /v2/entities (3867).
                path = scope["path"] = path[:-1]
            found = route(path)
            if found is None:
                response = error_response(BadRequest(_NOT_FOUND), accept=headers.get("accept"))
            else:
                resource, params = found
                scope["path_params"] = params
                response = await resource.respond(scope, receive, headers, ctx, params, state)
    except ClientGone:
        return
    except Exception:
        log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
        await send({
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(_INTERNAL)).encode()), extra[-1],
            ],
        })
        await send({"type": "http.response.body", "body": _INTERNAL})
        return
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers + extra})
    await send({"type": "http.response.body", "body": response.body})
