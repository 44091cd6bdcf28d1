"""The IoT agent's north app (port 4041): provisioning API, plus the routes the caller adds:
``Commands.routes()`` gives the NGSI context provider endpoints (/v2/op/update,
/v2/op/query) through which the broker forwards commands, and /notify where it notifies
them for ``cmdMode: notification``.

The registry and the NGSI client to the context broker live in the lifespan and reach
handlers through ``app.state`` (``registry``, ``ngsi``, ``config``,
``provisioning_listeners``). ``/admin/log`` (iot_agent/admin.py) reads and sets the log
level, as node-lib's agents serve it. Agent errors become ``{"name", "message"}`` with
their code; anything unexpected a 500 of the same shape, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from ngsi.client import HTTPClient, NGSIClient
from ngsi.server.guards import Guard

from . import admin, seam
from .config import Config
from .errors import IoTAError
from .http_errors import LastResort, error_response
from .provisioning import routes as provisioning
from .provisioning.store import ProvisioningStore, open_registry
from .seam import guard_layer

log = logging.getLogger("waziup.iot_agent")


async def _agent_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IoTAError)
    return error_response(exc)


def create_app(
    config: Config | None = None,
    *,
    registry: ProvisioningStore | None = None,
    ngsi: NGSIClient | None = None,
    routes: Iterable[BaseRoute] = (),
    guards: Sequence[Guard] | None = None,
) -> Starlette:
    """The north app; ``registry`` and ``ngsi`` override what ``config`` names (tests),
    ``routes`` adds endpoints (commands, context provider), ``guards`` the request seam's
    list (default: those ``config.guards`` names)."""
    config = config or Config()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        the_registry = registry if registry is not None else open_registry(config.registry_path)
        await the_registry.open()
        client = ngsi if ngsi is not None else NGSIClient(
            config.broker_url, transport=HTTPClient(ssl_context=config.broker_ssl_context())
        )
        app.state.registry = the_registry
        app.state.ngsi = client
        log.info("IoT agent north port %s, broker %s", config.north_port, config.broker_url)
        try:
            yield
        finally:
            if ngsi is None:
                await client.aclose()
            await the_registry.close()

    app = Starlette(
        routes=[*routes, *provisioning.ROUTES, *admin.ROUTES],
        middleware=[Middleware(LastResort, log=log), guard_layer(config, guards)],
        exception_handlers={IoTAError: _agent_error},
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.provisioning_listeners = []
    return app


def serve(config: Config, *, extra: Iterable[tuple[ASGIApp, str, int]] = ()) -> None:
    """Run the north app (and any ``extra`` (app, host, port), e.g. the south HTTP port)
    under uvicorn in one event loop until interrupted."""
    level = config.log_level.upper()
    logging.basicConfig(
        level=getattr(logging, "WARNING" if level == "WARN" else level, logging.INFO),
        format="time=%(asctime)s | lvl=%(levelname)s | comp=%(name)s | msg=%(message)s",
    )
    apps = [(create_app(config), config.north_host, config.north_port), *extra]
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                app, host=host, port=port, log_level="warning", access_log=False, server_header=False, lifespan="on",
                http=seam.http_protocol(config), **config.tls_options(),
            )
        )
        for app, host, port in apps
    ]

    async def run() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    asyncio.run(run())
