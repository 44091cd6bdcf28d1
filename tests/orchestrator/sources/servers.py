"""Real parts for the sources' tests: a loopback HTTP server serving JSON and CSV, and a
broker (the real app, in-process through ``ngsi.client.ASGITransport``)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from broker.app import create_app
from broker.config import Config as BrokerConfig
from ngsi.client import ASGITransport, NGSIClient
from tests.conftest import free_port

# path -> (status, content type, body), or a function of the query giving one
Answer = tuple[int, str, bytes]
Route = Answer | Callable[[dict[str, list[str]]], Answer]


class Served:
    """A stdlib HTTP server in a thread; ``routes`` may be changed while it runs."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: list[tuple[str, dict[str, str]]] = []  # (path with query, headers)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                parts = urlsplit(self.path)
                served.hits.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                route = served.routes.get(parts.path)
                if route is None:
                    status, kind, body = 404, "text/plain", b"not here"
                elif callable(route):
                    status, kind, body = route(parse_qs(parts.query))
                else:
                    status, kind, body = route
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def json(self, path: str, document: Any, status: int = 200) -> None:
        self.routes[path] = (status, "application/json", json.dumps(document).encode())

    def csv(self, path: str, text: str) -> None:
        self.routes[path] = (200, "text/csv", text.encode())

    def __enter__(self) -> Served:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def served() -> Iterator[Served]:
    with Served() as server:
        yield server


@contextlib.asynccontextmanager
async def broker() -> AsyncIterator[NGSIClient]:
    """A client of a fresh in-process broker (memory store, multi-tenant)."""
    app = create_app(BrokerConfig(db_uri="memory://", multiservice=True))
    async with NGSIClient("http://broker", transport=ASGITransport(app, lifespan=True)) as client:
        yield client
