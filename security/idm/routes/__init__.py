"""The identity manager's HTTP routes, one module per group of Keyrock's API.

Each module lists its routes as a :data:`RouteTable` that :func:`route_table` turns into
Starlette routes, so none repeats the ``Route(...)`` construction for every handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..http import client_address, service

Endpoint = Callable[[Request], Awaitable[Response]]
# A module's routes: path -> HTTP method -> the handler that answers it.
RouteTable = dict[str, dict[str, Endpoint]]


def route_table(table: RouteTable) -> list[Route]:
    """The routes of ``table``, in its order: one route per path and handler, with every
    method the handler answers on that path.

    The order is kept because Starlette answers a method no route of a path takes with 405
    and the ``Allow`` header of that path's first route."""
    out: list[Route] = []
    for path, handlers in table.items():
        methods_of: dict[Endpoint, list[str]] = {}
        for method, endpoint in handlers.items():
            methods_of.setdefault(endpoint, []).append(method)
        out.extend(Route(path, endpoint, methods=methods) for endpoint, methods in methods_of.items())
    return out


async def audited(request: Request, actor: str, action: str, *, target: str = "", actor_kind: str = "user",
                  reason: str = "", details: Mapping[str, Any] | None = None) -> None:
    """Record a change made through the API in the audit trail: by ``actor`` (the caller),
    from the request's address. One record per event, fail-open (``IdentityService.audit_event``)."""
    await service(request).audit_event(actor, action, actor_kind=actor_kind, source=client_address(request),
                                       target=target, reason=reason, details=details)
