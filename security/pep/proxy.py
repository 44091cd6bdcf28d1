"""``waziup pep``: a Wilma-compatible reverse proxy in front of any NGSI server (ours, Orion,
or anything HTTP), with the PEP guard's code (``guard.PEP``) deciding.

Each request: the request context is built as the broker's front end builds it, the PEP
admits it or answers Wilma's refusal, then it is forwarded to the protected service
(``config.upstream``) with the project's HTTP client (``ngsi.client.http11``; one request,
one answer, keep-alive; bodies up to 1 MiB, the broker's limit: 413 past it, in Orion's
shape). What is forwarded, as Wilma's ``setHeaders``:

* the client's headers, but: the hop-by-hop ones; ``Host`` (the service's own is sent); any
  second value of a header the decision read (``Fiware-Service``, ``Fiware-ServicePath``,
  ``Authorization``...: the PEP decides on the first, as Orion reads it, and a service
  reading another must not get one); any ``X-Nick-Name``, ``X-Display-Name``, ``X-Roles``,
  ``X-Organizations``, ``X-App-Id`` or ``X-Eidas-Profile`` the client sent (Wilma passes
  those through; a client could then claim to be anyone to a service that trusts them).
  ``Authorization`` and ``X-Auth-Token`` go on, as with Wilma (Orion passes
  ``X-Auth-Token`` to providers);
* Wilma's headers for the caller, and ``X-Forwarded-For`` with the client's address;
* the path as the PEP decided on it (decoded, then percent-encoded again), and the query
  as received.

The answer comes back as the service gave it (hop-by-hop headers left out); for a read the
policies project, the hidden attributes are taken out of it (``projection.py``), since a
service behind a proxy does not read our request context. With ``auth_for_nginx`` an
admitted request is answered 204 (with Wilma's headers, for ``auth_request_set``) instead
of being forwarded, and a read that would need a projection is denied: nginx cannot apply
it. ``magic_key`` (off unless configured) lets a request through unchecked, as Wilma's.
A service that cannot be reached is 500 InternalServerError in Wilma's shape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import quote

import orjson
from starlette.types import Receive, Scope, Send

from ngsi.client.http11 import HTTPClient, HTTPError
from ngsi.client.transport import Transport
from ngsi.context import from_headers
from ngsi.server.correlator import first_values, new_correlator
from ngsi.server.guards import BodyTimeout, ClientGone, Incoming, PayloadTooLarge
from ngsi.server.reply import Reply

from .caller import WILMA_HEADERS
from .config import ProxyConfig, from_command_line
from .guard import PEP, Admission
from .projection import Unprojectable, project
from .replies import INVALID_ROLE, Refusal, unavailable

log = logging.getLogger("waziup.security.pep")

MAX_BODY: Final = 1 << 20  # the broker's (and Orion's) payload limit
BODY_TIMEOUT: Final = 30.0
HOP_BY_HOP: Final = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "proxy-connection",
})
_DROPPED_REQUEST: Final = HOP_BY_HOP | {"host", "content-length", "expect", *WILMA_HEADERS, "x-forwarded-for"}
_DROPPED_RESPONSE: Final = HOP_BY_HOP | {"content-length"}
# Headers a decision reads: only their first value (the one decided on, Orion's rule) is forwarded
_SINGLE: Final = frozenset({"fiware-service", "fiware-servicepath", "ngsild-tenant", "content-type", "authorization",
                            "x-auth-token"})
_PATH_SAFE: Final = "/:@!$&'()*+,;=~-._"


def _orion_error(status: int, error: str, description: str, extra: Iterable[tuple[bytes, bytes]] = ()) -> Reply:
    body = orjson.dumps({"error": error, "description": description})
    return Reply(status, [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                          *extra], body)


class Proxy:
    """The ASGI app of ``waziup pep``."""

    def __init__(self, config: ProxyConfig, *, pep: PEP | None = None, upstream: Transport | None = None) -> None:
        self.config = config
        self.pep = pep if pep is not None else PEP(config, service="proxy", routes=config.app_routes)
        self.upstream: Transport = upstream if upstream is not None else HTTPClient(max_per_host=64)
        self.base = config.upstream.rstrip("/")
        self.single = _SINGLE | {config.tenant_header.lower(), config.organizations_header.lower()}
        self.timeout = config.upstream_timeout_ms / 1000.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        reply = await self._answer(scope, receive)
        if reply is not None:
            await reply.send(send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                for name in self.config.ignored:
                    log.warning("Wilma setting %s is not applied by this PEP (see docs/security.md)", name)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.upstream.aclose()
                await self.pep.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _answer(self, scope: Scope, receive: Receive) -> Reply | None:
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        headers = first_values(raw_headers)
        ctx = from_headers(headers, headers.get("fiware-correlator") or new_correlator(),
                           multiservice=self.config.multiservice)
        incoming = Incoming(scope["method"], scope["path"], scope.get("query_string", b""), headers,
                            scope.get("client"), ctx, receive, MAX_BODY, BODY_TIMEOUT)
        try:
            admission = await self.pep.admit(incoming)
            if self.config.auth_for_nginx:
                return self._nginx(admission)
            body = await incoming.body() if scope["method"] not in ("GET", "HEAD", "DELETE", "OPTIONS") else b""
        except Refusal as refusal:
            return self.pep.replies.reply(refusal)
        except PayloadTooLarge as exc:
            return _orion_error(413, "RequestEntityTooLarge", str(exc))
        except BodyTimeout as exc:
            return _orion_error(408, "RequestTimeout", str(exc), [(b"connection", b"close")])
        except ClientGone:
            return None
        return await self._forward(scope, raw_headers, body, admission)

    def _nginx(self, admission: Admission) -> Reply:
        outcome = admission.outcome
        if outcome.visible is not None or outcome.hidden:
            raise Refusal(self.config.deny_status, INVALID_ROLE,
                          "This read is allowed only without some attributes, which nginx cannot take out")
        caller = admission.caller
        return Reply(204, [(k.lower().encode(), v.encode("utf-8")) for k, v in caller.headers] if caller else [])

    async def _forward(self, scope: Scope, raw_headers: list[tuple[bytes, bytes]], body: bytes,
                       admission: Admission) -> Reply:
        sent: list[tuple[str, str]] = []
        seen: set[str] = set()
        for name, value in raw_headers:
            key = name.decode("latin-1").lower()
            if key in _DROPPED_REQUEST or (key in self.single and key in seen):
                continue  # a repeated decision header: the service gets the value decided on (the first)
            seen.add(key)
            sent.append((key, value.decode("latin-1")))
        if admission.caller is not None:
            sent.extend(admission.caller.headers)
        client = scope.get("client")
        forwarded = [v.decode("latin-1") for k, v in raw_headers if k.lower() == b"x-forwarded-for"]
        if client:
            forwarded.append(client[0])
        if forwarded:
            sent.append(("X-Forwarded-For", ", ".join(forwarded)))
        url = self.base + quote(scope["path"], safe=_PATH_SAFE)
        query = scope.get("query_string", b"")
        if query:
            url += "?" + query.decode("latin-1")
        method = scope["method"]
        try:
            response = await self.upstream.request(method, url, sent, body, self.timeout)
        except HTTPError as exc:
            log.warning("the protected service did not answer %s %s: %s", method, scope["path"], exc.reason)
            return self.pep.replies.reply(unavailable("The protected service"))
        answer = response.body
        outcome = admission.outcome
        if outcome.visible is not None or outcome.hidden:
            try:
                answer = project(method, scope["path"], response.status, answer, outcome.visible, outcome.hidden)
            except Unprojectable as exc:
                log.warning("%s", exc)
                return self.pep.replies.reply(unavailable("A filtered answer of the protected service"))
        out = [(k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in response.headers
               if k not in _DROPPED_RESPONSE]
        if response.status not in (204, 304) and method != "HEAD":
            out.append((b"content-length", str(len(answer)).encode()))
        elif method == "HEAD":
            length = response.header("content-length")
            if length is not None:
                out.append((b"content-length", length.encode("latin-1")))
        return Reply(response.status, out, answer if method != "HEAD" else b"")


def create_app(config: ProxyConfig, **kwargs: Any) -> Proxy:
    return Proxy(config, **kwargs)


def serve(config: ProxyConfig) -> None:
    """Run the proxy under uvicorn until stopped."""
    from ngsi.server.service import configure_logging, run  # uvicorn: only to serve

    configure_logging(config.log_level)
    log.info("PEP proxy on port %s for %s: identity manager %s, application %s, PDP %s", config.port,
             config.upstream or "nginx (auth_for_nginx)", config.idm_url, config.app_id or "(any)", config.pdp)
    run(create_app(config), host=config.host, port=config.port, date_header=False,
        tls=(config.https_key, config.https_cert) if config.https else None)


def main(argv: list[str] | None = None) -> None:
    """``waziup pep [options]`` (and ``python -m security.pep``)."""
    serve(from_command_line(argv))


__all__ = ["Proxy", "create_app", "main", "serve"]
