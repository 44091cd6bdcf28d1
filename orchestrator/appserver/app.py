"""The orchestrator's service (:8080): one Starlette app behind the request seam, serving
the parts ``Component`` describes: sensor discovery (``/discovery``), apps (``/apps``) and
external data sources (``/sources``).

The lifespan opens the shared document store (``-dbURI``; apps and sources persist there),
then discovery (the apps part asks it for the sensors a manifest needs), then apps, then
sources; and closes them in reverse. Starlette's own 404/405 answer in the service's shape.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ngsi.server.guards import Guard
from orchestrator.waziup_api.store import Store, StoreError, open_store

from .component import Component
from .config import Config
from .seam import SEAM, error_response

log = logging.getLogger("waziup.orchestrator")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    name = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "BadRequest")
    return error_response(name, str(exc.detail), exc.status_code)


async def _store_error(request: Request, exc: Exception) -> Response:
    log.error("store error method=%s path=%s error=%s", request.method, request.url.path, exc)
    return error_response("ServiceUnavailable", "the orchestrator's store is not available", 503)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("waziup")
    except PackageNotFoundError:
        return "0"


def components(config: Config, store: Store) -> list[Component]:
    """The parts, in the order they open."""
    from orchestrator.apps.component import AppsComponent
    from orchestrator.discovery.component import DiscoveryComponent
    from orchestrator.erasure.routes import ErasureComponent
    from orchestrator.sources.component import SourcesComponent

    named = [t.strip() for given in config.discovery_tenants for t in given.split(",")]
    tenants = tuple(dict.fromkeys("" if t in ("''", '""') else t for t in named)) if named else (config.service,)
    discovery = DiscoveryComponent(config, tenants=tenants, interval=config.discovery_interval)
    if config.backend == "kubernetes":  # apps as Deployments of a cluster (docs/kubernetes.md)
        from orchestrator.apps.kubernetes.adapter import cluster_backend

        apps = AppsComponent(config, store=store, discovery=discovery,
                             backend=cluster_backend(config, store, discovery))
    else:
        apps = AppsComponent(config, store=store, discovery=discovery)
    return [discovery, apps, SourcesComponent(config, store=store), ErasureComponent(config)]


def create_app(config: Config | None = None, *, guards: Sequence[Guard] | None = None,
               parts: Sequence[Component] | None = None, store: Store | None = None) -> Starlette:
    """The app; ``parts`` and ``store`` replace what ``config`` names (tests)."""
    config = config or Config()
    the_store = store or open_store(config.store_url)
    the_parts = list(parts) if parts is not None else components(config, the_store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await the_store.open()
        opened: list[Component] = []
        try:
            for part in the_parts:
                await part.open()
                opened.append(part)
            log.info("orchestrator port=%d broker=%s history=%s iota=%s idm=%s parts=%s", config.port,
                     config.broker_url, config.history_url or "-", config.iota_url or "-", config.idm_url or "-",
                     ",".join(type(p).__name__ for p in the_parts))
            yield
        finally:
            for part in reversed(opened):
                try:
                    await part.close()
                except Exception:  # one part failing to close must not keep the others open
                    log.exception("closing %s", type(part).__name__)
            await the_store.close()

    async def index(request: Request) -> Response:
        return JSONResponse({"apps": "/apps", "discovery": "/discovery/sensors", "sources": "/sources"})

    async def version(request: Request) -> Response:
        return JSONResponse({"name": "waziup-orchestrator", "version": _version(),
                             "backend": getattr(config, "backend", "local")})

    routes: list[BaseRoute] = [Route("/", index, methods=["GET"]), Route("/version", version, methods=["GET"])]
    for part in the_parts:
        routes.extend(part.routes())
    return SEAM.app(config, guards, routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error, StoreError: _store_error})
