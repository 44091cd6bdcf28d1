"""One HTTP/1.1 receiver on loopback for the notifier's and the change feed's tests: a real
server (asyncio streams, keep-alive, TLS when given a context) that records every request
and answers what the test chooses."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from typing import Any, Self

Request = tuple[str, dict[str, str], bytes]  # (request line, lowercase headers, body)


class LoopbackReceiver:
    """Records each request in ``requests``; answers ``answer(headers)`` (default 200, or the
    next of ``statuses`` while there are some) after ``delay`` seconds; the 2xx ones are also
    in ``acknowledged``."""

    def __init__(
        self,
        delay: float = 0.0,
        *,
        statuses: list[int] | None = None,
        answer: Callable[[dict[str, str]], int] | None = None,
        context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        path: str = "/notify",
    ) -> None:
        self.delay = delay
        self.statuses = list(statuses or [])
        self.answer = answer
        self.context = context
        self.host, self.path = host, path
        self.requests: list[Request] = []
        self.acknowledged: list[Request] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.context else 'http'}://{self.host}:{port}{self.path}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    def _status(self, headers: dict[str, str]) -> int:
        if self.statuses:
            return self.statuses.pop(0)
        return self.answer(headers) if self.answer is not None else 200

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                    return
                lines = head.decode().split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
                if self.delay:
                    await asyncio.sleep(self.delay)
                self.in_flight -= 1
                request = (lines[0], headers, body)
                self.requests.append(request)
                status = self._status(headers)
                if 200 <= status < 300:
                    self.acknowledged.append(request)
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            return
        finally:
            writer.close()

    def bodies(self) -> list[Any]:
        """The JSON bodies of the acknowledged requests."""
        return [json.loads(body) for _, _, body in self.acknowledged]
