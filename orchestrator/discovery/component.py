"""Sensor discovery as a part of the orchestrator's :8080 service (``appserver.Component``).

``GET /discovery/sensors`` searches the registry's index (parameters: ``api.py``);
``POST /discovery/refresh`` reads the platform again now and says what it found. ``find``
is the same search for the apps part (an app manifest's sensor needs). The registry is
refreshed every ``interval`` seconds in the background from ``open`` to ``close``.

A query never waits for the platform: it searches the index in memory, in the event loop
(a few milliseconds, ``BENCHMARKS.md``). Errors are Orion's ``{"error", "description"}``:
400 for a parameter the route cannot read, never a 500 for what a caller sends.

Permissions: tenants as the request asks (``tenant``, else ``Fiware-Service``), which the
service's guards vouch for; a private WAZIUP device's sensors only for its owner (the
identity the guards put in the request's context) and administrators, as the WAZIUP API
shows devices (the guest, and everyone while security is off, sees public ones only).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ngsi.client import HTTPClient, NGSIClient
from ngsi.client.credentials import OAuth2ClientCredentials
from ngsi.server.asgi import context_of
from ngsi.tls import trust_context

from ..appserver.config import Config
from . import api
from .model import Hit, Query
from .registry import Registry

DEFAULT_INTERVAL = 60.0  # seconds between two reads of the platform
STARTUP_WAIT = 5.0  # seconds ``open`` waits for the first read before serving anyway


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


class DiscoveryComponent:
    """Built from the service's ``Config``: the broker at ``broker_url``, the IoT agent at
    ``iota_url`` (none when empty), the tenants ``tenants`` (default: ``config.service``, the
    service's own tenant). ``broker`` and ``agent`` are NGSI clients to use instead (tests,
    in-process services); the component closes only the clients it made. Behind a PEP
    (``auth_user``) the clients it makes carry the service account's token (from
    ``idm_url``'s ``/oauth2/token``)."""

    def __init__(
        self, config: Config, *, broker: NGSIClient | None = None, agent: NGSIClient | None = None,
        tenants: Sequence[str] | None = None, interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.time, startup_wait: float = STARTUP_WAIT,
    ) -> None:
        self.config = config
        self._given = (broker, agent)
        self.tenants = tuple(tenants) if tenants is not None else (config.service,)
        self.interval = interval
        self.clock = clock
        self.startup_wait = startup_wait
        self.registry = Registry(broker, agent, tenants=self.tenants, interval=interval, clock=clock)
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Future[Any] | None = None
        self._owned: list[NGSIClient] = []
        self._transports: list[HTTPClient] = []

    async def open(self) -> None:
        broker, agent = self._given
        config = self.config
        context = trust_context("-caFile", config.ca_file) if config.ca_file else None
        credentials = None
        if config.auth_user and (broker is None or agent is None):  # services behind a PEP: the service account
            token_client = HTTPClient(max_per_host=1, ssl_context=context)
            self._transports.append(token_client)
            credentials = OAuth2ClientCredentials(
                token_client, config.idm_url.rstrip("/") + "/oauth2/token", config.client_id, config.client_secret,
                username=config.auth_user, password=config.auth_password,
            )
        if broker is None:
            broker = NGSIClient(config.broker_url, transport=HTTPClient(ssl_context=context), credentials=credentials)
            self._owned.append(broker)
        if agent is None and config.iota_url:
            agent = NGSIClient(config.iota_url, transport=HTTPClient(ssl_context=context), credentials=credentials)
            self._owned.append(agent)
        self.registry.broker, self.registry.agent = broker, agent
        # The first answers should have the platform's sensors, but a platform slow to answer
        # must not hold the whole service's start: wait for the first read a while only.
        first = self._first = asyncio.ensure_future(self.registry.refresh())
        await asyncio.wait({first}, timeout=self.startup_wait)
        self._task = asyncio.create_task(self._loop(first))

    async def _loop(self, first: asyncio.Future[Any]) -> None:
        with contextlib.suppress(Exception):  # logged by the registry; the next round may do better
            await first
        await asyncio.sleep(self.interval)
        await self.registry.run()

    async def close(self) -> None:
        for task in (self._task, self._first):  # the first read too: the loop may not have started
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = self._first = None
        for client in self._owned:
            await client.aclose()
        for transport in self._transports:
            await transport.aclose()
        self._owned.clear()
        self._transports.clear()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/discovery/sensors", self._sensors, methods=["GET"]),
            Route("/discovery/refresh", self._refresh, methods=["POST"]),
        ]

    async def find(self, query: Query) -> list[Hit]:
        """The sensors ``query`` asks for, best first (``now`` 0: the current time)."""
        if not query.now:
            query = replace(query, now=self.clock())
        return self.registry.search(query)

    # -- endpoints ----------------------------------------------------------------------------

    async def _sensors(self, request: Request) -> Response:
        identity = context_of(request.scope).identity  # as the service's guards left it
        try:
            query = api.parse_query(request.query_params.multi_items(), request.headers.get("fiware-service"),
                                    self.clock(), viewer=None if identity.admin else identity.username)
        except api.BadParam as exc:
            return _json({"error": "BadRequest", "description": str(exc)}, 400)
        return _json([api.render(hit) for hit in self.registry.search(query)])

    async def _refresh(self, request: Request) -> Response:
        status = await self.registry.refresh()
        return _json({"sensors": status.sensors, "seconds": round(status.took, 3), "problems": status.problems})
