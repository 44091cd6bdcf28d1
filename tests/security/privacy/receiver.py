"""A notification receiver on loopback for the privacy tests: every POST kept as (path, text)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[tuple[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                owner.bodies.append((self.path, raw.decode()))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, seconds: float = 10) -> list[tuple[str, str]]:
        """The bodies once ``count`` arrived (and a moment passed for any extra), by path."""
        deadline = time.monotonic() + seconds
        while len(self.bodies) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        return sorted(self.bodies)

    def json_of(self, path: str) -> list[Any]:
        return [json.loads(text) for p, text in self.bodies if p == path]

    def close(self) -> None:
        self.server.shutdown()
