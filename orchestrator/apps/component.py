"""``/apps`` of the orchestrator's service (``orchestrator/appserver``): deploy, list,
status, logs, restart, scale and undeploy, over the local back end (``local.py``).

A deploy streams its progress as it happens, one line each (``text/plain``, or one JSON
object a line with ``Accept: application/x-ndjson``), because a build can take minutes;
the last line is the result: ``deployed <name>`` and the status, or ``error: ...`` with
why (the build log's tail, the failing health check). The HTTP status is sent before the
build starts, so it is 200 for a deploy that began; failures found before (a bad body, an
unknown content type) are 4xx with the usual ``{"error", "description"}``.

A request with ``Fiware-Service`` (the tenant the PEP decided it for) sees and acts on
that tenant's apps only; a deploy puts the app there, and one whose manifest names another
tenant is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ngsi.client import HTTPClient, HTTPError
from orchestrator.appserver.config import Config
from orchestrator.audit_client import AuditClient
from orchestrator.waziup_api.store import Store, StoreError, open_store

from .local import AppError, LocalBackend
from .source import is_url, under

_TARBALL_TYPES = ("application/gzip", "application/x-gzip", "application/x-tar", "application/octet-stream",
                  "application/x-compressed-tar")
_DONE = object()
_FORWARDED = frozenset({"content-type", "accept", "fiware-service", "fiware-servicepath", "fiware-correlator",
                        "ngsiv2-attrsformat"})


def scope_of(request: Request) -> str | None:
    """The caller's tenant (``Fiware-Service``), which the PEP judged the request for: it
    sees and acts on that tenant's apps only. No header: every app (the service unguarded,
    or a caller the PEP let act on the default tenant)."""
    value = request.headers.get("fiware-service")
    return value.strip() if value is not None else None


def error(status: int, name: str, description: str) -> JSONResponse:
    return JSONResponse({"error": name, "description": description}, status_code=status)


class AppsComponent:
    """The apps part of the :8080 service (``appserver.component.Component``)."""

    def __init__(self, config: Config, store: Store | None = None, discovery: Any = None, *, backend: Any = None,
                 **options: Any) -> None:
        """``backend``: another back end with ``LocalBackend``'s methods (``open``, ``close``,
        ``deploy(source, progress, label, scope)``, ``list(scope)``, ``status``/``restart``/
        ``undeploy(name, scope)``, ``scale(name, n, scope)``, ``logs(name, tail, follow, scope)``,
        ``endpoint_of(name, key)``); else a ``LocalBackend`` given ``options``."""
        self.config = config
        self._own_store = store is None
        self.store = store if store is not None else open_store(config.store_url)
        self.backend = backend if backend is not None else LocalBackend(config, self.store, discovery=discovery,
                                                                        **options)
        self._deploys: set[asyncio.Task[Any]] = set()
        self._forward: HTTPClient | None = None
        self.audit = AuditClient.from_config(config)  # app.deployed / app.undeployed (None: no identity manager)

    async def open(self) -> None:
        if self._own_store:
            await self.store.open()
        self._forward = HTTPClient()
        await self.backend.open()

    async def close(self) -> None:
        for task in list(self._deploys):
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(task), 30)
        await self.backend.close()
        if self._forward is not None:
            await self._forward.aclose()
            self._forward = None
        if self._own_store:
            await self.store.close()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/apps", self.list_or_deploy, methods=["GET", "POST"]),
            Route("/apps/{name}", self.one, methods=["GET", "DELETE"]),
            Route("/apps/{name}/logs", self.logs, methods=["GET"]),
            Route("/apps/{name}/restart", self.restart, methods=["POST"]),
            Route("/apps/{name}/scale", self.scale, methods=["POST"]),
            Route("/ingress/{name}/{key}/{path:path}", self.ingress, methods=["POST", "PUT", "PATCH", "GET"]),
        ]

    async def ingress(self, request: Request) -> Response:
        """A notification of one of an app's subscriptions, forwarded to the app. The path's
        key (made at deploy, never shown) is what proves it comes from a subscription the
        platform made: anything else is 404, as if there were no such app."""
        params = request.path_params
        try:
            endpoint = await self.backend.endpoint_of(params["name"], params["key"])
        except StoreError as exc:
            return error(503, "StoreUnavailable", str(exc))
        if endpoint is None:
            return error(404, "NotFound", "no such app endpoint")
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        headers = [(name, value) for name, value in request.headers.items() if name in _FORWARDED]
        url = f"{endpoint}/{params['path']}" + (f"?{request.url.query}" if request.url.query else "")
        assert self._forward is not None
        try:
            answer = await self._forward.request(request.method, url, headers, body, 30.0)
        except HTTPError as exc:
            return error(503, "AppUnavailable", f"the app {params['name']} did not answer: {exc}")
        kept = {name: value for name, value in answer.headers if name.lower() == "content-type"}
        return Response(bytes(answer.body), status_code=answer.status, headers=kept)

    # -- endpoints ------------------------------------------------------------------------

    async def list_or_deploy(self, request: Request) -> Response:
        if request.method == "GET":
            return await self._guard(self._list(scope_of(request)))
        return await self.deploy(request)

    async def _list(self, scope: str | None) -> Response:
        return JSONResponse(await self.backend.list(scope))

    async def _guard(self, work: Any) -> Response:
        """Run an operation; AppError and store failures as JSON errors."""
        try:
            result: Response = await work
            return result
        except AppError as exc:
            return error(exc.status, exc.error, exc.description)
        except StoreError as exc:
            return error(503, "StoreUnavailable", str(exc))

    async def one(self, request: Request) -> Response:
        name = request.path_params["name"]
        if request.method == "DELETE":
            async def undeploy() -> Response:
                tenant = scope_of(request)
                if self.audit is not None and tenant is None:  # the app's own tenant, for the trail
                    tenant = (await self.backend.status(name, None)).get("tenant")
                await self.backend.undeploy(name, scope_of(request))
                await self._audit(request, "app.undeployed", name, tenant)
                return Response(status_code=204)
            return await self._guard(undeploy())

        async def status() -> Response:
            return JSONResponse(await self.backend.status(name, scope_of(request)))
        return await self._guard(status())

    async def restart(self, request: Request) -> Response:
        async def work() -> Response:
            return JSONResponse(await self.backend.restart(request.path_params["name"], scope_of(request)))
        return await self._guard(work())

    async def scale(self, request: Request) -> Response:
        try:
            body = await request.json()
            replicas = body["replicas"]
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return error(400, "BadRequest", 'the body is {"replicas": N}, N a whole number >= 0')

        async def work() -> Response:
            return JSONResponse(await self.backend.scale(request.path_params["name"], replicas, scope_of(request)))
        return await self._guard(work())

    async def logs(self, request: Request) -> Response:
        name = request.path_params["name"]
        follow = request.query_params.get("follow", "false").lower() in ("true", "1", "yes")
        try:
            lines = int(request.query_params.get("tail", "100"))
            if lines < 0:
                raise ValueError
        except ValueError:
            return error(400, "BadRequest", "tail: a whole number of lines >= 0")
        scope = scope_of(request)
        try:
            await self.backend.status(name, scope)
        except AppError as exc:
            return error(exc.status, exc.error, exc.description)

        async def stream() -> AsyncIterator[bytes]:
            async for line in self.backend.logs(name, lines, follow, scope):
                yield (line + "\n").encode()
        return StreamingResponse(stream(), media_type="text/plain; charset=utf-8")

    async def deploy(self, request: Request) -> Response:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        source: str | bytes
        if kind in _TARBALL_TYPES:
            body = await self._body(request)
            if isinstance(body, Response):
                return body
            source = body
        elif kind == "application/json":
            body = await self._body(request)
            if isinstance(body, Response):
                return body
            try:
                doc = json.loads(body)
                source = doc["source"]
                if not isinstance(source, str) or not source:
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                return error(400, "BadRequest", 'the body is {"source": "<folder, git URL or tarball>"}')
            if not is_url(source) and not under(Path(source), self.config.apps_dirs):
                # a caller names no file of this host but those the operator put under -appsDir
                return error(403, "Forbidden", f"{source}: a path on the orchestrator's host is deployed only from "
                             "its -appsDir folders; upload the folder instead (waziup apps deploy does)")
        else:
            return error(415, "UnsupportedMediaType",
                         'send {"source": ...} as application/json, or a tarball as application/gzip')
        label = request.headers.get("x-waziup-source", "")[:500] or None  # what an upload was (the CLI's path)
        scope = scope_of(request)
        ndjson = "application/x-ndjson" in request.headers.get("accept", "")
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def run() -> None:
            try:
                status = await self.backend.deploy(source, queue.put_nowait, label, scope)
                await self._audit(request, "app.deployed", str(status.get("name", "")), status.get("tenant"),
                                  {"source": status.get("source"), "backend": status.get("backend")})
                queue.put_nowait({"done": True, "status": status})
            except AppError as exc:
                queue.put_nowait({"done": True, "error": exc.error, "description": exc.description})
            except Exception as exc:  # noqa: BLE001  (the client is told; the log has the trace)
                import logging
                logging.getLogger("waziup.apps").exception("deploy failed")
                queue.put_nowait({"done": True, "error": "InternalError", "description": f"{type(exc).__name__}: {exc}"})
            finally:
                queue.put_nowait(_DONE)

        task = asyncio.create_task(run())  # goes on if the client leaves
        self._deploys.add(task)
        task.add_done_callback(self._deploys.discard)

        async def stream() -> AsyncIterator[bytes]:
            while (item := await queue.get()) is not _DONE:
                yield _render(item, ndjson)

        return StreamingResponse(stream(), media_type="application/x-ndjson" if ndjson else "text/plain; charset=utf-8")

    async def _audit(self, request: Request, action: str, name: str, tenant: Any,
                     details: dict[str, Any] | None = None) -> None:
        """``app.deployed``/``app.undeployed`` in the identity manager's trail, the caller (as
        the PEP found them) the actor; fail-open: a trail that is away is a logged warning."""
        if self.audit is None:
            return
        identity = getattr(getattr(request.state, "ctx", None), "identity", None)
        actor = str(getattr(identity, "user_id", "") or getattr(identity, "app_id", "") or "")
        await self.audit.record(action, target=name, tenant=str(tenant or ""), actor=actor,
                                actor_kind="user" if actor else "service", decision="allow",
                                details={k: v for k, v in (details or {}).items() if v is not None})

    async def _body(self, request: Request) -> bytes | Response:
        data = b""
        async for chunk in request.stream():
            data += chunk
            if len(data) > self.config.max_body:
                return error(413, "RequestEntityTooLarge", f"the body is larger than {self.config.max_body} bytes")
        return data


def _render(item: Any, ndjson: bool) -> bytes:
    if ndjson:
        doc = {"progress": item} if isinstance(item, str) else item
        return (json.dumps(doc) + "\n").encode()
    if isinstance(item, str):
        return (item + "\n").encode()
    if "error" in item:
        return f"error: {item['error']}: {item['description']}\n".encode()
    return ("status: " + json.dumps(item["status"]) + "\n").encode()
