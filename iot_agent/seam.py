"""The request seam on the agent's ports: every request gets a request context, then the
guards the orchestrator configured (``Config.guards``, ``--guard module:factory``) run
before routing (``ngsi/server/asgi.py`` ``GuardLayer``). Both the north app (4041) and
the south one (7896) install it the same way, through ``guard_layer``.

The layer also bounds every request's body, whoever reads it: at most MAX_BODY bytes (the
broker's limit; 413 REQUEST_TOO_LARGE), arriving within the request timeout (408
REQUEST_TIMEOUT and the connection closed), so that a huge or stalled upload cannot hold
the agent's memory or a connection. Starlette's plain-text 404/405 (no such path, method)
are rewritten as ``{"name", "message"}``, the shape of every other answer."""

from __future__ import annotations

import os
from collections.abc import Sequence

import orjson

from starlette.middleware import Middleware
from starlette.types import Message, Receive, Scope, Send

from ngsi.numbers import parse_uint
from ngsi.server.asgi import GuardedHttpProtocol, GuardLayer, raw_response
from ngsi.server.guards import BodyTimeout, Guard, PayloadTooLarge, load_guards
from ngsi.server.reply import Reply, json_reply

from .config import Config
from .errors import PayloadTooLarge as TooLarge
from .errors import RequestTimeout

MAX_BODY = 1024 * 1024  # bytes of a request body (the broker's limit)
DEFAULT_REQ_TIMEOUT = 30  # seconds for a body to arrive, as the broker's -reqTimeout
REQ_TIMEOUT_VARIABLE = "IOTA_REQ_TIMEOUT"  # until the agent's option table has one


def too_large(exc: PayloadTooLarge) -> Reply:
    error = TooLarge(exc.size, exc.limit)
    return json_reply(error.body(), error.code)


def timed_out(exc: BodyTimeout) -> Reply:
    error = RequestTimeout(f"{exc.seconds:g}")
    return json_reply(error.body(), error.code)


def request_timeout(config: Config) -> float:
    """Seconds a request body may take: the config's ``req_timeout`` when it has one, else
    ``IOTA_REQ_TIMEOUT`` (seconds, 0: no limit), else DEFAULT_REQ_TIMEOUT."""
    configured = getattr(config, "req_timeout", None)
    if isinstance(configured, (int, float)):
        return float(configured)
    raw = os.environ.get(REQ_TIMEOUT_VARIABLE, "").strip()
    value = parse_uint(raw, cap=86400) if raw else None
    return float(DEFAULT_REQ_TIMEOUT if value is None else value)


# Starlette's own answers for a path no route has and a method a route does not take:
# plain text, where every other answer of the agent is {"name", "message"}.
_ROUTING_ERRORS = {
    (404, b"Not Found"): {"name": "NOT_FOUND", "message": "Not Found"},
    (405, b"Method Not Allowed"): {"name": "METHOD_NOT_ALLOWED", "message": "Method Not Allowed"},
}


def agent_shaped(send: Send) -> Send:
    """``send``, with Starlette's plain-text 404 and 405 (unknown path, unsupported method)
    rewritten in the agents' error shape; every other message passes unchanged."""
    held: Message | None = None

    async def sending(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start" and message["status"] in (404, 405):
            content_type = dict(message.get("headers") or []).get(b"content-type", b"")
            if content_type.startswith(b"text/plain"):
                held = message
                return
        if held is not None and message["type"] == "http.response.body":
            start, held = held, None
            body = message.get("body", b"")
            shaped = _ROUTING_ERRORS.get((start["status"], body))
            if shaped is None or message.get("more_body", False):
                await send(start)
                await send(message)
                return
            reply = json_reply(shaped, start["status"])
            kept = [(k, v) for k, v in start.get("headers") or [] if k not in (b"content-type", b"content-length")]
            await reply.send(send, kept)
            return
        await send(message)

    return sending


class AgentLayer(GuardLayer):
    """The seam's GuardLayer, answering routing errors in the agents' shape too."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, agent_shaped(send) if scope["type"] == "http" else send)


def guard_layer(config: Config, guards: Sequence[Guard] | None = None) -> Middleware:
    """The middleware entry: ``guards`` when given (in-process composition, tests), else the
    ones ``config.guards`` names."""
    chosen = list(guards) if guards is not None else load_guards(config.guards, config)
    return Middleware(
        AgentLayer, guards=chosen, too_large=too_large, max_body=MAX_BODY,
        timed_out=timed_out, body_timeout=request_timeout(config),
    )


_PARSE_ERRORS = {400: "BAD_REQUEST", 408: "REQUEST_TIMEOUT", 431: "REQUEST_TOO_LARGE"}


class AgentHttpProtocol(GuardedHttpProtocol):
    """uvicorn's protocol for the agent's ports (``uvicorn.Config(http=...)``): a deadline
    and a bound for request heads, and what llhttp cannot parse answered as
    ``{"name", "message"}`` (see ``ngsi.server.asgi.GuardedHttpProtocol``)."""

    def refusal(self, status: int, description: str) -> bytes:
        return raw_response(status, orjson.dumps({"name": _PARSE_ERRORS[status], "message": description}))


def http_protocol(config: Config) -> type[AgentHttpProtocol]:
    """The protocol class for the agent's uvicorn servers, its head deadline the request
    timeout (``request_timeout``)."""
    return type("AgentHttpProtocol", (AgentHttpProtocol,), {"head_timeout": request_timeout(config)})
