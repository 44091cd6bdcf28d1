"""What ``NGSIClient`` needs of a transport: one request in, one response out.

Two implementations ship with ``ngsi.client``:

* ``http11.HTTPClient``: the network, keep-alive HTTP/1.1 pools per destination (the
  default: ``NGSIClient(url)`` makes one, ``max_per_host`` connections per host);
* ``asgi.ASGITransport``: an ASGI app called in-process, no socket (tests, a broker and
  its clients in one process).

A transport returns every HTTP answer, whatever its status, and follows no redirect. It
raises ``http11.HTTPError`` (or a subclass: ``ConnectError``, ``Timeout``...) when there is
no answer; ``NGSIClient`` turns that into ``NGSIConnectionError``. ``headers`` are sent as
given (names in any case; pairs or a mapping) plus ``Host`` and ``Content-Length`` when
missing; ``timeout`` (seconds, ``None``: none) bounds the whole exchange.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from .response import Response

__all__ = ["Transport", "Response"]


@runtime_checkable
class Transport(Protocol):
    async def request(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]] | Mapping[str, str],
        body: bytes,
        timeout: float | None,
    ) -> Response: ...

    async def aclose(self) -> None: ...
