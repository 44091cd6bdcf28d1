"""``/sources`` of the orchestrator's :8080 service (an ``appserver.component.Component``).

    POST   /sources              a definition (JSON or YAML body) -> 201, the source running
    GET    /sources              every source with its status
    GET    /sources/{name}       its definition and status
    PUT    /sources/{name}       replace (or create) it, restarted
    DELETE /sources/{name}       stop it; its entities stay, its DataSource entity goes
    POST   /sources/{name}/run   run it now; answers the status after the run

Errors are ``{"error": ..., "description": ...}``: 400 for a document that is no valid
definition (the description names the field), 404, 409 for a name taken, 413 for a
body over ``MAX_DOCUMENT``, 503 when the store fails. Bad input never makes a 500.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ngsi.client import NGSIClient
from ngsi.client.credentials import OAuth2ClientCredentials
from ngsi.client.http11 import HTTPClient
from ngsi.destinations import Gate, Policy
from orchestrator.appserver.config import Config
from orchestrator.waziup_api.store import Store, StoreError, open_store

from .connectors import Context
from .definition import DefinitionError, load_document, parse_definition, parse_text
from .service import Conflict, NotFound, Sources, view

MAX_DOCUMENT: Final = 1024 * 1024
RUN_WAIT: Final = 120.0  # seconds POST /sources/{name}/run waits for the run to end
Handler = Callable[[Request], Awaitable[Response]]


class SourcesComponent:
    """External data sources. ``store`` and ``broker`` are the service's (shared with the
    other parts) or, when not given, opened from ``config`` and closed here."""

    def __init__(self, config: Config, store: Store | None = None, broker: NGSIClient | None = None, *,
                 environ: Mapping[str, str] | None = None, files: Path | None = None) -> None:
        self.config = config
        self._own_store = store is None
        self.store = store if store is not None else open_store(config.store_url)
        self._own_broker = broker is None
        self.broker = broker if broker is not None else _broker(config)
        # the refusals name the option that would allow a destination
        policy = Policy(config.destinations().rules, setting="-allowedHosts")
        self.gate = Gate(policy)
        self.http = HTTPClient(max_per_host=4, gate=self.gate, ssl_context=_ssl_context(config.ca_file))
        self.files = files if files is not None else config.data / "sources"
        context = Context(self.gate, self.http, os.environ if environ is None else environ, self.files)
        self.sources = Sources(self.store, self.broker, context, config.service or None)

    async def open(self) -> None:
        if self._own_store:
            await self.store.open()
        self.files.mkdir(parents=True, exist_ok=True)
        await self.sources.open()

    async def close(self) -> None:
        await self.sources.close()
        await self.http.aclose()
        if self._own_broker:
            await self.broker.aclose()
        if self._own_store:
            await self.store.close()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/sources", _guarded(self.create), methods=["POST"]),
            Route("/sources", _guarded(self.list_sources), methods=["GET"]),
            Route("/sources/{name}", _guarded(self.read), methods=["GET"]),
            Route("/sources/{name}", _guarded(self.replace), methods=["PUT"]),
            Route("/sources/{name}", _guarded(self.delete), methods=["DELETE"]),
            Route("/sources/{name}/run", _guarded(self.run), methods=["POST"]),
        ]

    # -- handlers --------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        definition = parse_text(await _body(request))
        runner = await self.sources.add(definition)
        return JSONResponse(view(runner), 201, headers={"Location": f"/sources/{definition.name}"})

    async def list_sources(self, request: Request) -> Response:
        return JSONResponse([view(runner, full=False) for runner in self.sources.all()])

    async def read(self, request: Request) -> Response:
        return JSONResponse(view(self.sources.get(request.path_params["name"])))

    async def replace(self, request: Request) -> Response:
        name = request.path_params["name"]
        document = load_document(await _body(request))
        document.setdefault("name", name)
        if document["name"] != name:
            raise DefinitionError("name", f"{document['name']!r} is not the name in the URL ({name!r})")
        runner, created = await self.sources.replace(parse_definition(document))
        return JSONResponse(view(runner), 201 if created else 200)

    async def delete(self, request: Request) -> Response:
        await self.sources.remove(request.path_params["name"])
        return Response(status_code=204)

    async def run(self, request: Request) -> Response:
        runner = self.sources.get(request.path_params["name"])
        await runner.run_now(RUN_WAIT)
        return JSONResponse(view(runner))


class _TooLarge(Exception):
    pass


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_DOCUMENT:
        raise _TooLarge()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_DOCUMENT:
            raise _TooLarge()
    return bytes(body)


def error(status: int, name: str, description: str) -> JSONResponse:
    return JSONResponse({"error": name, "description": description}, status)


def _guarded(handler: Handler) -> Handler:
    """The handler, with the failures callers cause (or the store) answered as JSON errors."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except DefinitionError as exc:
            return error(400, "BadRequest", str(exc))
        except NotFound as exc:
            return error(404, "NotFound", f"no source {exc}")
        except Conflict as exc:
            return error(409, "AlreadyExists", f"a source {exc} exists already")
        except _TooLarge:
            return error(413, "RequestEntityTooLarge", f"a definition is at most {MAX_DOCUMENT} bytes")
        except StoreError as exc:
            return error(503, "ServiceUnavailable", f"the store failed: {exc}")

    guarded.__name__ = handler.__name__
    return guarded


def _broker(config: Config) -> NGSIClient:
    """The broker as the service reaches it (behind a PEP: its service account's token)."""
    credentials = None
    if config.auth_user and config.idm_url:
        credentials = OAuth2ClientCredentials(
            HTTPClient(max_per_host=1), config.idm_url.rstrip("/") + "/oauth2/token", config.client_id,
            config.client_secret, username=config.auth_user, password=config.auth_password)
    return NGSIClient(config.broker_url, credentials=credentials, timeout=30)


def _ssl_context(ca_file: str) -> ssl.SSLContext | None:
    """The system's CAs (sources are public APIs), plus ``-caFile``'s for the platform's own."""
    if not ca_file:
        return None
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=ca_file)
    return context
