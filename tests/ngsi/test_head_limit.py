"""The request head bound of the seam's uvicorn protocol (``GuardedHttpProtocol``), fed
directly: a head over the limit gets 431 whether it comes in pieces or whole in one chunk
(the chunk a head starts in is not counted as it arrives; a clean-clone run once saw a
200 KB header accepted when the kernel handed it over in one read)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from ngsi.server.asgi import GuardedHttpProtocol

HEAD = b"GET /version HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = b""
        self.closed = False

    def write(self, data: Any) -> None:
        self.out += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 1), "peername": ("127.0.0.1", 2)}.get(name, default)


@pytest.mark.parametrize("pieces", [1, 4, 100], ids=["whole", "4 pieces", "100 pieces"])
def test_a_head_over_the_limit_gets_431(pieces: int) -> None:
    called: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope)

    async def feed() -> Transport:
        config = Config(app=app, lifespan="off")
        config.load()
        protocol = GuardedHttpProtocol(config=config, server_state=ServerState(), app_state={})
        transport = Transport()
        protocol.connection_made(transport)
        size = -(-len(HEAD) // pieces)
        for start in range(0, len(HEAD), size):
            if transport.closed:
                break
            protocol.data_received(HEAD[start:start + size])
        await asyncio.sleep(0)
        return transport

    transport = asyncio.run(feed())
    assert transport.out.startswith(b"HTTP/1.1 431 ") and transport.closed
    assert not called
