"""Loopback notification receiver for W4: counts notifications and timestamps them on arrival.

``python bench/receiver.py PORT``. Any POST is a notification: each entity in its ``data``
carries the value "<seq> <send time ns>" in its STAMP attribute, put there by the load client, so the
receiver records the latency (arrival - send) and which sequence numbers arrived.
``GET /stats`` returns the totals, ``POST /reset`` clears them. A raw asyncio protocol keeps
the receiver's own cost far below the broker's, so it never is the bottleneck.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson

STAMP = "pressure"  # the attribute whose value W4's updates set to "<seq> <send time ns>"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class Stats:
    def __init__(self) -> None:
        self.notifications = 0
        self.latencies: list[int] = []  # ns, one per notified entity
        self.seqs: list[int] = []
        self.bad = 0  # notifications without a readable stamp
        self.first = self.last = 0  # arrival times, ns

    def record(self, body: bytes, now: int) -> None:
        self.notifications += 1
        self.first, self.last = self.first or now, now
        try:
            for entity in orjson.loads(body)["data"]:
                stamp = entity[STAMP]["value"]
                seq, sent = stamp.split(" ")
                self.seqs.append(int(seq))
                self.latencies.append(now - int(sent))
        except (ValueError, KeyError, TypeError, AttributeError):
            self.bad += 1

    def report(self) -> bytes:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] / 1e6 if ordered else 0.0

        return orjson.dumps({
            "notifications": self.notifications, "entities": len(self.seqs), "bad": self.bad,
            "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": pct(100), "seqs": self.seqs,
            "per_second": len(self.seqs) / ((self.last - self.first) / 1e9) if self.last > self.first else 0.0,
        })


STATS = Stats()


class Server(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (request := self._next_request()) is not None:
            method, path, body, close = request
            if method == "POST" and path.startswith("/reset"):
                global STATS
                STATS = Stats()
                self.transport.write(OK)
            elif method == "GET" and path.startswith("/stats"):
                payload = STATS.report()
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
            else:
                STATS.record(body, time.time_ns())
                self.transport.write(OK)
            if close:
                self.transport.close()
                return

    def _next_request(self) -> tuple[str, str, bytes, bool] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip().lower()
        rest = self.buffer[end + 4:]
        if fields.get("transfer-encoding") == "chunked":
            body, pos = b"", 0
            while True:
                eol = rest.find(b"\r\n", pos)
                if eol < 0:
                    return None
                size = int(rest[pos:eol].split(b";")[0], 16)
                if len(rest) < eol + 2 + size + 2:
                    return None
                body += rest[eol + 2:eol + 2 + size]
                pos = eol + 2 + size + 2
                if size == 0:
                    break
            self.buffer = rest[pos:]
        else:
            length = int(fields.get("content-length", "0"))
            if len(rest) < length:
                return None
            body, self.buffer = rest[:length], rest[length:]
        return method, path, body, fields.get("connection") == "close"


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Server, "127.0.0.1", port, backlog=1024)
    print("receiver ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1])))
