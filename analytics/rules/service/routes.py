"""The HTTP routes (Perseo's API, reference/perseo/api.md): read the request, call the
service, answer ``{"error": null, "data": ...}``.

Rules are per tenant (``Fiware-Service``); ``Fiware-ServicePath`` does not scope them (a
rule's paths are its ``condition.servicePath``). Listings page as Perseo's: ``limit``
(default 20, at most 1000), ``offset``, ``options=count`` (``Fiware-Total-Count``).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ngsi.dates import format_datetime, parse_datetime
from ngsi.server.asgi import context_of
from ngsi.server.service import request_tenant

from .errors import BadRequest
from .notices import parse_notice
from .service import RulesService
from .store import StoredRule

log = logging.getLogger("waziup.rules")

VERSION: Final = "0.1.0"
DEFAULT_LIMIT: Final = 20  # Perseo's
MAX_LIMIT: Final = 1000
_DIGITS: Final = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also takes "²", which int() refuses


def reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps({"error": None, "data": data}), status_code=status, media_type="application/json",
                    headers=headers)


def _service(request: Request) -> RulesService:
    return request.app.state.service  # type: ignore[no-any-return]


def _tenant(request: Request) -> str:
    return request_tenant(request, BadRequest)


async def _json(request: Request) -> Any:
    body = await request.body()
    if not body.strip():
        raise BadRequest("the request has no body: a JSON rule document is expected")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if _DIGITS.fullmatch(text.strip()) is None:
        raise BadRequest(f"{name}: {text[:40]!r} is not a non-negative integer")
    value = int(text.strip()[:12])  # more digits are out of range anyway
    if not low <= value <= high:
        raise BadRequest(f"{name}: must be between {low} and {high}")
    return value


def _page(request: Request) -> tuple[int, int, bool]:
    limit = _int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int(request, "offset", 0, 0, 2**31 - 1)
    count = "count" in request.query_params.get("options", "").split(",")
    return limit, offset, count


def _time(request: Request, name: str) -> float | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    seconds = parse_datetime(text.strip())
    if seconds is None:
        raise BadRequest(f"{name}: {text[:60]!r} is not an ISO 8601 date and time")
    return seconds


def shown(rule: StoredRule) -> dict[str, Any]:
    """A rule as answered: its document, its tenant, whether it runs, its subscription."""
    return {**rule.doc, "service": rule.tenant, "enabled": rule.enabled, "subscriptionId": rule.subscription,
            "created": format_datetime(rule.created), "modified": format_datetime(rule.modified)}


# -- meta ------------------------------------------------------------------------------------


async def version(request: Request) -> Response:
    return reply({"name": "waziup-rules", "description": "rules engine, Perseo-compatible API", "version": VERSION})


# -- rules -----------------------------------------------------------------------------------


async def list_rules(request: Request) -> Response:
    limit, offset, count = _page(request)
    rules = _service(request).of_tenant(_tenant(request))
    headers = {"Fiware-Total-Count": str(len(rules))} if count else None
    return reply([shown(r) for r in rules[offset:offset + limit]], headers=headers)


async def create_rule(request: Request) -> Response:
    tenant = _tenant(request)
    stored = await _service(request).create(tenant, await _json(request))
    return reply(shown(stored), 200, {"Location": f"/rules/{stored.name}"})


async def get_rule(request: Request) -> Response:
    return reply(shown(_service(request).get(_tenant(request), request.path_params["name"])))


async def replace_rule(request: Request) -> Response:
    tenant = _tenant(request)
    stored = await _service(request).replace(tenant, request.path_params["name"], await _json(request))
    return reply(shown(stored))


async def delete_rule(request: Request) -> Response:
    await _service(request).delete(_tenant(request), request.path_params["name"])
    return reply(None)


async def enable_rule(request: Request) -> Response:
    return reply(shown(await _service(request).set_enabled(_tenant(request), request.path_params["name"], True)))


async def disable_rule(request: Request) -> Response:
    return reply(shown(await _service(request).set_enabled(_tenant(request), request.path_params["name"], False)))


async def firings(request: Request) -> Response:
    limit, offset, count = _page(request)
    since, until = _time(request, "fromDate"), _time(request, "toDate")
    records, total = await _service(request).firings(_tenant(request), request.path_params["name"], since, until,
                                                     limit, offset)
    headers = {"Fiware-Total-Count": str(total)} if count else None
    return reply([r.to_dict() for r in records], headers=headers)


# -- notices ---------------------------------------------------------------------------------


async def notices(request: Request) -> Response:
    tenant = _tenant(request)
    started = time.perf_counter()
    notice = parse_notice(await request.body(), request.headers.get("fiware-servicepath"))
    fired = _service(request).notice(tenant, notice)
    log.debug("notice tenant=%s subscription=%s entities=%d firings=%d ms=%.2f correlator=%s", tenant or "-",
              notice.subscription or "-", len(notice.changes), fired, (time.perf_counter() - started) * 1000,
              context_of(request.scope).correlator)
    return reply({"firings": fired})


ROUTES = [
    Route("/version", version, methods=["GET"]),
    Route("/notices", notices, methods=["POST"]),
    Route("/rules", list_rules, methods=["GET"]),
    Route("/rules", create_rule, methods=["POST"]),
    Route("/rules/{name}", get_rule, methods=["GET"]),
    Route("/rules/{name}", replace_rule, methods=["PUT"]),
    Route("/rules/{name}", delete_rule, methods=["DELETE"]),
    Route("/rules/{name}/enable", enable_rule, methods=["POST"]),
    Route("/rules/{name}/disable", disable_rule, methods=["POST"]),
    Route("/rules/{name}/firings", firings, methods=["GET"]),
]
