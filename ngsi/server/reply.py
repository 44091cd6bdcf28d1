"""A response as a front end sends it: status, raw headers, body. One object, two ASGI messages.

Lighter than a Starlette ``Response`` (which handlers may still return: front ends read
the same three attributes of either). Headers follow Starlette's rules, so clients see the
same bytes: content-length unless 204/304, content-type when given.
"""

from __future__ import annotations

from typing import Any

import orjson

from starlette.types import Send

RawHeaders = list[tuple[bytes, bytes]]

JSON = (b"content-type", b"application/json")
TEXT = (b"content-type", b"text/plain")


class Reply:
    __slots__ = ("status_code", "raw_headers", "body")

    def __init__(self, status_code: int, raw_headers: RawHeaders, body: bytes = b"") -> None:
        self.status_code = status_code
        self.raw_headers = raw_headers
        self.body = body

    async def send(self, send: Send, extra: RawHeaders | None = None) -> None:
        """Send as ASGI messages, with ``extra`` headers after the reply's own."""
        headers = self.raw_headers + extra if extra else self.raw_headers
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def raw_headers(headers: dict[str, str] | None) -> RawHeaders:
    if not headers:
        return []
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    """JSON with orjson's defaults (services with their own JSON rules, such as the
    broker's Orion-exact numbers, build the body themselves)."""
    body = orjson.dumps(data)
    raw = raw_headers(headers)
    raw.append((b"content-length", str(len(body)).encode()))
    raw.append(JSON)
    return Reply(status, raw, body)
