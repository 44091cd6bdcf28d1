"""The HTTP routes: read the request, call the engine or the store, render the answer.

Thin on purpose: parsing (``params.py``, ``notification.py``), querying (``engine.py``)
and rendering (``render.py``, ``csvout.py``) are pure or store-bound modules of their
own; a route only wires one request through them. QuantumLeap 1.0's routes, plus
``GET /v2/last`` (every attribute's last value and last arrival) and ``/v2/retention``
(a tenant's own retention rules).

When a privacy guard put a release on the request's context (``ctx.release``), every
query's answer goes through it before it is rendered (``release.py``); otherwise nothing
changes, at the cost of one truth test.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ngsi.release import Release
from ngsi.server.asgi import context_of
from ngsi.server.service import request_tenant

from . import csvout, engine, release, render, retention
from .errors import BadRequest
from .notification import parse_notification
from .params import Query, parse_flag, parse_query
from .store.base import HistoryStore, StoreError

log = logging.getLogger("waziup.history")

VERSION = "1.0.0"  # the QuantumLeap API this service answers
IMPLEMENTATION = "waziup-history 0.1.0"
NOTIFIED = "Notification successfully processed"


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _store(request: Request) -> HistoryStore:
    return request.app.state.store  # type: ignore[no-any-return]


def _tenant(request: Request) -> str:
    return request_tenant(request, BadRequest)


def _query(request: Request, **path: str) -> Query:
    """The request's query, with the projection a guard (the PEP) put in its context."""
    ctx = context_of(request.scope)
    return parse_query(request.query_params, tenant=_tenant(request), service_path=ctx.service_path,
                       max_limit=request.app.state.config.default_limit, visible=ctx.attrs_visible,
                       hidden=ctx.attrs_hidden, **path)


def _clock(request: Request) -> int:
    return int(request.app.state.clock() * 1000)


# -- meta ------------------------------------------------------------------------------------


async def version(request: Request) -> Response:
    return json_response({"version": VERSION, "implementation": IMPLEMENTATION})


async def health(request: Request) -> Response:
    """rfc-healthcheck's draft, as QuantumLeap: pass (200), or fail (424) with the database's error."""
    try:
        await _store(request).ping()
    except StoreError as exc:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return json_response({"status": "fail", "details": {"database": {"status": "fail", "time": now,
                                                                         "output": str(exc)}}}, 424)
    return json_response({"status": "pass"})


async def api_list(request: Request) -> Response:
    return json_response({"notify_url": "/v2/notify", "entities_url": "/v2/entities", "types_url": "/v2/types",
                          "attributes_url": "/v2/attrs", "last_url": "/v2/last"})


# -- ingestion -------------------------------------------------------------------------------


async def notify(request: Request) -> Response:
    headers = request.headers
    tenant = _tenant(request)
    body = await request.body()
    started = time.perf_counter()
    batch = parse_notification(
        body, tenant=tenant, service_path=headers.get("fiware-servicepath"),
        time_index_attribute=headers.get("fiware-timeindex-attribute"), sequence=headers.get("waziup-sequence"),
        now=_clock(request),
    )
    ingested = await _store(request).ingest(batch)  # returns once committed: only then the 200
    log.log(logging.INFO if ingested.skipped else logging.DEBUG,
            "notification tenant=%s subscription=%s stored=%d skipped=%d values=%d ms=%.1f correlator=%s",
             tenant or "-", batch.subscription or "-", ingested.elements, ingested.skipped, ingested.values,
             (time.perf_counter() - started) * 1000, context_of(request.scope).correlator)
    return Response(NOTIFIED, media_type="text/plain")


# -- queries ---------------------------------------------------------------------------------

Renderer = Callable[[engine.Answer], Any]


def _csv(body: bytes) -> Response:
    return Response(body, media_type=csvout.MEDIA_TYPE)


async def _origin(request: Request, query: Query) -> release.Origin:
    """Where the query's entities are stored (service paths, attribute types): read again
    from the series, only for an answer that goes through a release."""
    return release.Origin.of(await engine.select(_store(request), query))


async def _history(request: Request, renderer: Renderer, **path: str) -> Response:
    query = _query(request, **path)
    answer = await engine.history(_store(request), query)
    out = context_of(request.scope).release
    if out is not None:
        answer = await release.history(out, query.tenant, answer, await _origin(request, query),
                                       method=query.method, period=query.period)
    if csvout.wanted(request.headers.get("accept")):
        if out is not None:
            rows = release.table(out, query.tenant, csvout.history_records(answer))
            return _csv(csvout.records(csvout.HISTORY_COLUMNS, rows))
        return _csv(csvout.history(answer))
    return json_response(renderer(answer))


def _route(renderer: Callable[..., Any], *path_names: str, passed: tuple[str, ...] = ()) -> Callable[
        [Request], Awaitable[Response]]:
    """An endpoint: ``path_names`` go to the query (entity_id, entity_type, attr), those in
    ``passed`` to the renderer too."""
    names = {"entityId": "entity_id", "entityType": "entity_type", "attrName": "attr"}

    async def endpoint(request: Request) -> Response:
        path = {names[n]: request.path_params[n] for n in path_names}
        extra = [request.path_params[n] for n in passed]
        return await _history(request, lambda answer: renderer(answer, *extra), **path)

    return endpoint


async def entities(request: Request) -> Response:
    query = _query(request)
    listed = await engine.entity_list(_store(request), query)
    out = context_of(request.scope).release
    if out is not None:
        return await _released_entities(request, out, query, listed)
    if csvout.wanted(request.headers.get("accept")):
        return _csv(csvout.entity_list(listed))
    return json_response(render.entity_list(listed))


async def _released_entities(request: Request, out: Release, query: Query,
                             listed: list[tuple[str, str, int]]) -> Response:
    rendered = await release.entity_list(out, query.tenant, listed, await _origin(request, query))
    if csvout.wanted(request.headers.get("accept")):
        return _csv(csvout.records(csvout.ENTITY_LIST_COLUMNS, release.table(out, query.tenant, rendered)))
    return json_response(rendered)


async def last(request: Request) -> Response:
    query = _query(request)
    grouped = await engine.last_values(_store(request), query)
    out = context_of(request.scope).release
    if out is not None:
        return await _released_last(request, out, query, grouped)
    if csvout.wanted(request.headers.get("accept")):
        return _csv(csvout.last(grouped))
    return json_response(render.last(grouped))


async def _released_last(request: Request, out: Release, query: Query, grouped: release.Grouped) -> Response:
    rendered = await release.last(out, query.tenant, grouped, await _origin(request, query))
    if csvout.wanted(request.headers.get("accept")):
        rows = release.table(out, query.tenant, release.last_rows(rendered))
        return _csv(csvout.records(csvout.LAST_COLUMNS, rows))
    return json_response(rendered)


# -- deletes ---------------------------------------------------------------------------------


async def delete_entity(request: Request) -> Response:
    query = _query(request, entity_id=request.path_params["entityId"])
    deleted = await engine.delete(_store(request), query)
    log.info("delete entity=%s tenant=%s points=%d", request.path_params["entityId"], query.tenant or "-", deleted)
    return Response(status_code=204)


async def delete_type(request: Request) -> Response:
    parse_flag(request.query_params, "dropTable")  # accepted: every value of the type goes either way
    query = _query(request, entity_type=request.path_params["entityType"])
    deleted = await engine.delete(_store(request), query)
    log.info("delete type=%s tenant=%s points=%d", request.path_params["entityType"], query.tenant or "-", deleted)
    return Response(status_code=204)


# -- retention rules of a tenant ------------------------------------------------------------------


def _stored_rules(rows: list[tuple[str, str, int]]) -> list[retention.Rule]:
    return [retention.Rule(*row) for row in rows]


async def get_retention(request: Request) -> Response:
    """The tenant's own retention rules, and the flags' that apply to it."""
    tenant = _tenant(request)
    stored = _stored_rules(await _store(request).retention_rules(tenant))
    return json_response(retention.described(request.app.state.config.policy, tenant, stored))


async def put_retention(request: Request) -> Response:
    """Replace the tenant's own retention rules (the next retention pass applies them)."""
    tenant = _tenant(request)
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not JSON") from None
    try:
        rules = retention.parse_stored(tenant, data)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    problem = request.app.state.config.policy.stored_problem(rules)
    if problem is not None:
        raise BadRequest(problem)
    await _store(request).replace_retention_rules(tenant, [(r.entity_type, r.days) for r in rules])
    log.info("retention rules tenant=%s rules=%d correlator=%s", tenant or "-", len(rules),
             context_of(request.scope).correlator)
    return Response(status_code=204)


ROUTES = [
    Route("/version", version, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
    Route("/v2", api_list, methods=["GET"]),
    Route("/v2/", api_list, methods=["GET"]),
    Route("/v2/notify", notify, methods=["POST"]),
    Route("/v2/last", last, methods=["GET"]),
    Route("/v2/retention", get_retention, methods=["GET"]),
    Route("/v2/retention", put_retention, methods=["PUT"]),
    Route("/v2/entities", entities, methods=["GET"]),
    Route("/v2/entities/{entityId}", _route(render.entity, "entityId"), methods=["GET"]),
    Route("/v2/entities/{entityId}", delete_entity, methods=["DELETE"]),
    Route("/v2/entities/{entityId}/value", _route(render.entity_value, "entityId"), methods=["GET"]),
    Route("/v2/entities/{entityId}/attrs/{attrName}",
          _route(render.entity_attr, "entityId", "attrName", passed=("attrName",)), methods=["GET"]),
    Route("/v2/entities/{entityId}/attrs/{attrName}/value",
          _route(render.entity_attr_value, "entityId", "attrName", passed=("attrName",)), methods=["GET"]),
    Route("/v2/types/{entityType}", _route(render.type_entities, "entityType", passed=("entityType",)),
          methods=["GET"]),
    Route("/v2/types/{entityType}", delete_type, methods=["DELETE"]),
    Route("/v2/types/{entityType}/value", _route(render.type_entities_value, "entityType"), methods=["GET"]),
    Route("/v2/types/{entityType}/attrs/{attrName}",
          _route(render.type_attr, "entityType", "attrName", passed=("entityType", "attrName")), methods=["GET"]),
    Route("/v2/types/{entityType}/attrs/{attrName}/value",
          _route(render.type_attr_value, "entityType", "attrName", passed=("attrName",)), methods=["GET"]),
    Route("/v2/attrs", _route(render.attrs), methods=["GET"]),
    Route("/v2/attrs/value", _route(render.attrs_value), methods=["GET"]),
    Route("/v2/attrs/{attrName}", _route(render.attr, "attrName", passed=("attrName",)), methods=["GET"]),
    Route("/v2/attrs/{attrName}/value", _route(render.attr_value, "attrName", passed=("attrName",)), methods=["GET"]),
]
