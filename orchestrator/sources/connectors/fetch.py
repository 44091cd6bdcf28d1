"""One HTTP GET of a source's URL, through the destination policy, with its credentials.

The URL is checked (``Gate.check``: path rules, names resolved) before the request, and
the client (``HTTPClient(gate=...)``) checks the addresses again when it connects, so a
name that changes its answer in between (DNS rebinding) reaches nothing internal.
Redirects are not followed (each hop would be a new destination): a 3xx is a failure.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from ngsi.client.http11 import HTTPError

from ..definition import Auth, Definition
from .base import Context, SourceError, secret

MAX_BODY = 64 * 1024 * 1024  # bytes of one page kept; a larger answer fails the run


def auth_headers(auth: Auth | None, environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """The request headers of ``auth``, its secret read from ``environ`` now."""
    if auth is None:
        return []
    value = secret(environ, auth.env)
    if auth.scheme == "bearer":
        return [("Authorization", f"Bearer {value}")]
    if auth.scheme == "basic":
        token = base64.b64encode(f"{auth.user}:{value}".encode()).decode("ascii")
        return [("Authorization", f"Basic {token}")]
    return [(auth.header, value)]


async def get(definition: Definition, context: Context, url: str, accept: str) -> bytes:
    """The body of a 2xx answer to ``GET url``; SourceError otherwise."""
    decision = await context.gate.check(url)
    if not decision.allowed:
        raise SourceError(f"refused by the destination policy: {decision.failure}")
    headers = [("Accept", accept), ("User-Agent", "waziup-sources"), *definition.headers,
               *auth_headers(definition.auth, context.environ)]
    try:
        response = await context.http.request("GET", url, headers, b"", timeout=definition.timeout)
    except HTTPError as exc:
        raise SourceError(f"GET {url}: {exc}") from None
    if not 200 <= response.status < 300:
        snippet = response.body[:200].decode("utf-8", "replace").strip()
        raise SourceError(f"GET {url} answered {response.status}" + (f": {snippet}" if snippet else ""))
    if len(response.body) > MAX_BODY:
        raise SourceError(f"GET {url}: the answer is larger than {MAX_BODY} bytes")
    return bytes(response.body)
