"""An in-process broker for the API behaviour tests (tests/broker/test_api_*.py).

``broker_client`` runs the whole ASGI app (``broker.app.create_app``) with its lifespan
(store, subscriptions, notifier, expiry purge) and hands back a synchronous client whose
requests go through the same front end, resources and guards as over the network, without
a socket. Unlike Starlette's TestClient, which hops to a portal thread several times per
request (milliseconds each on a busy machine), it drives the app in an event loop of the
calling thread: the loop runs while a request runs, and background tasks (the purge loop,
the notifier) advance then.

Each test module builds its own client (a module-scoped fixture) and tests use unique entity
ids or tenants (``new_id``), so tests don't depend on each other or on their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx

from broker.app import create_app
from broker.config import Config

_counter = itertools.count(1)


def new_id(prefix: str = "E") -> str:
    """An id no other test uses (unique within the process; also fit for a tenant name)."""
    return f"{prefix}{os.getpid()}x{next(_counter)}"


class ApiClient:
    """A synchronous HTTP client on an ASGI app, in an event loop of its own (see the module doc)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._loop = asyncio.new_event_loop()
        self._http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        self._to_app: asyncio.Queue[dict[str, Any]] | None = None
        self._from_app: asyncio.Queue[dict[str, Any]] | None = None
        self._lifespan: asyncio.Future[Any] | None = None

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    async def _lifespan_event(self, event: str) -> None:
        """Send lifespan.<event> and wait for the app's answer (ASGI lifespan protocol)."""
        assert self._to_app is not None and self._from_app is not None and self._lifespan is not None
        await self._to_app.put({"type": f"lifespan.{event}"})
        answer = asyncio.ensure_future(self._from_app.get())
        await asyncio.wait({answer, self._lifespan}, return_when=asyncio.FIRST_COMPLETED)
        if not answer.done():
            answer.cancel()
            self._lifespan.result()  # the app's exception, if any
            raise RuntimeError(f"the app ended its lifespan during {event}")
        message = answer.result()
        if message["type"] != f"lifespan.{event}.complete":
            raise RuntimeError(f"lifespan {event} failed: {message.get('message', message)}")

    def start(self) -> ApiClient:
        async def startup() -> None:
            self._to_app, self._from_app = asyncio.Queue(), asyncio.Queue()
            scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
            self._lifespan = asyncio.ensure_future(self.app(scope, self._to_app.get, self._from_app.put))
            await self._lifespan_event("startup")

        self._run(startup())
        return self

    def close(self) -> None:
        try:
            if self._lifespan is not None and not self._lifespan.done():
                self._run(self._lifespan_event("shutdown"))
            self._run(self._http.aclose())
        finally:
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            if pending:
                self._run(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._run(self._http.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


@contextlib.contextmanager
def broker_client(db_uri: str = "memory://", **config: Any) -> Iterator[ApiClient]:
    """A client on a fresh broker (``multiservice`` on unless told otherwise)."""
    config.setdefault("multiservice", True)
    client = ApiClient(create_app(Config(db_uri=db_uri, **config))).start()
    try:
        yield client
    finally:
        client.close()


def create(client: ApiClient, entity: dict[str, Any], *, options: str | None = None,
           headers: dict[str, str] | None = None) -> httpx.Response:
    """POST /v2/entities that must succeed (201, or 204 with upsert)."""
    params = {"options": options} if options else None
    response = client.post("/v2/entities", json=entity, params=params, headers=headers)
    assert response.status_code in (201, 204), (response.status_code, response.text)
    return response


def error_of(response: httpx.Response, status: int, error: str, description: str | None = None) -> dict[str, Any]:
    """Assert that ``response`` is Orion's error body ``{"error", "description"}``; returns it."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    body = json.loads(response.content)
    assert set(body) <= {"error", "description"}, body
    assert body["error"] == error, body
    if description is not None:
        assert body.get("description") == description, body
    return body


def ids_of(response: httpx.Response) -> list[str]:
    """The entity ids of a listing answer, in the order given."""
    assert response.status_code == 200, (response.status_code, response.text)
    return [entity["id"] for entity in response.json()]
