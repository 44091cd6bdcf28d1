"""A minimal asyncio HTTP/1.1 keep-alive client for the bench: preloading, W4, client comparison.

wrk drives most workloads (it costs far less CPU per request, see BENCHMARKS.md), but it
cannot tell which of its requests succeeded, and W4 must count lost notifications exactly:
this client knows the sequence number of every accepted update. It speaks only what the
broker answers (Content-Length or chunked bodies), nothing more.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Response = tuple[int, dict[str, str], bytes]


class Connection:
    """One keep-alive connection; requests on it are sequential."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"", headers: str = "") -> Response:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{headers}"
        if body or method in ("POST", "PUT", "PATCH"):
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                fields[name.strip().lower()] = value.strip()
        if fields.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
                data += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readuntil(b"\r\n")
        else:
            length = int(fields.get("content-length", "0"))
            data = await self.reader.readexactly(length) if length else b""
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, fields, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = self.reader = None


async def call(host: str, port: int, method: str, path: str, body: bytes = b"") -> Response:
    """One request on a fresh connection (setup and checks, not load)."""
    conn = Connection(host, port)
    try:
        return await conn.request(method, path, body)
    finally:
        await conn.close()


async def drive(
    host: str,
    port: int,
    connections: int,
    seconds: float,
    make: Callable[[int], tuple[str, str, bytes]],
    on_done: Callable[[int, int, float], None] | None = None,
) -> dict[str, object]:
    """Closed-loop load: each connection sends ``make(seq)`` until ``seconds`` pass.

    ``on_done(seq, status, latency_s)`` sees every answered request. Returns wrk-like totals.
    """
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    counter = iter(range(1 << 62))
    errors = 0

    async def worker() -> None:
        nonlocal errors
        conn = Connection(host, port)
        try:
            while time.perf_counter() < deadline:
                seq = next(counter)
                method, path, body = make(seq)
                start = time.perf_counter()
                status, _, _ = await conn.request(method, path, body)
                latency = time.perf_counter() - start
                latencies.append(latency)
                if status >= 400:
                    errors += 1
                if on_done is not None:
                    on_done(seq, status, latency)
        finally:
            await conn.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "non2xx": errors,
        "p50_ms": _percentile(latencies, 50) * 1000,
        "p99_ms": _percentile(latencies, 99) * 1000,
    }


def _percentile(ordered: list[float], pct: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


async def gather_limited(jobs: list[Callable[[], Awaitable[None]]], limit: int) -> None:
    """Run ``jobs`` with at most ``limit`` at a time (preloading)."""
    queue = list(reversed(jobs))

    async def worker() -> None:
        while queue:
            await queue.pop()()

    await asyncio.gather(*(worker() for _ in range(limit)))
