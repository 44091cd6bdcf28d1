"""The NGSI-v2 client: one class, one ``httpx.AsyncClient``, every call a coroutine.

Tenancy: ``service`` (Fiware-Service) and ``service_path`` (Fiware-ServicePath) are set per
client and can be overridden per call; ``None`` sends no header (Orion's default tenant and
path). The IoT agent passes the correlator of the request it is serving with
``correlator=`` so that Orion's logs and notifications tie back to the device's message.

Listing calls page through Orion's results (at most 1000 per request) with
``options=count``, so callers get every match, or at most ``limit`` of them, without
thinking about pages.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from .errors import NGSIClientError, NGSIConnectionError

MAX_PAGE = 1000  # Orion's largest accepted limit


class _Default(enum.Enum):
    DEFAULT = "default"


DEFAULT = _Default.DEFAULT
"""Per-call marker: use the client's own service / service path / correlator."""

Tenant = str | None | _Default

# Python keyword -> Orion query parameter, for GET /v2/entities.
_QUERY_NAMES = {
    "id": "id",
    "type": "type",
    "id_pattern": "idPattern",
    "type_pattern": "typePattern",
    "q": "q",
    "mq": "mq",
    "attrs": "attrs",
    "metadata": "metadata",
    "georel": "georel",
    "geometry": "geometry",
    "coords": "coords",
    "order_by": "orderBy",
}


@dataclass(frozen=True)
class Page:
    """One page of a listing: the items and Orion's total count of matches."""

    items: list[Any]
    total: int


def _csv(value: str | Iterable[str]) -> str:
    return value if isinstance(value, str) else ",".join(value)


def _path(*segments: str) -> str:
    return "/".join(quote(s, safe="") for s in segments)


def _options(*flags: tuple[bool, str], extra: str | Iterable[str] | None = None) -> str | None:
    names = [name for on, name in flags if on]
    if extra:
        names.extend(_csv(extra).split(","))
    return ",".join(names) or None


class NGSIClient:
    """Async client for an NGSI-v2 context broker (Orion or waziup's own).

    Use as ``async with NGSIClient(url) as ngsi: ...`` or call ``aclose()``.
    """

    def __init__(
        self,
        base_url: str = "http://localhost:1026",
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        service: str | None = None,
        service_path: str | None = None,
        correlator: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.service = service
        self.service_path = service_path
        self.correlator = correlator
        self._http = httpx.AsyncClient(
            base_url=self.base_url, transport=transport, headers=dict(headers or {}), timeout=timeout
        )

    async def __aenter__(self) -> NGSIClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- plumbing ------------------------------------------------------------------------

    def _headers(self, service: Tenant, service_path: Tenant, correlator: Tenant) -> dict[str, str]:
        headers: dict[str, str] = {}
        svc = self.service if service is DEFAULT else service
        path = self.service_path if service_path is DEFAULT else service_path
        corr = self.correlator if correlator is DEFAULT else correlator
        if svc is not None:
            headers["Fiware-Service"] = svc
        if path is not None:
            headers["Fiware-ServicePath"] = path
        if corr is not None:
            headers["Fiware-Correlator"] = corr
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        service: Tenant = DEFAULT,
        service_path: Tenant = DEFAULT,
        correlator: Tenant = DEFAULT,
    ) -> httpx.Response:
        """One request; a 4xx/5xx answer or a transport failure raises NGSIClientError."""
        headers = self._headers(service, service_path, correlator)
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self._http.request(method, path, params=clean, json=json, headers=headers)
        except httpx.TransportError as exc:
            raise NGSIConnectionError(f"{method} {self.base_url}{path}: {exc!r}") from exc
        if response.status_code >= 400:
            raise _error(response)
        return response

    # -- entities ------------------------------------------------------------------------

    async def create_entity(
        self,
        entity: Mapping[str, Any],
        *,
        upsert: bool = False,
        key_values: bool = False,
        service: Tenant = DEFAULT,
        service_path: Tenant = DEFAULT,
        correlator: Tenant = DEFAULT,
    ) -> str | None:
        """POST /v2/entities; returns Orion's Location header (``/v2/entities/<id>?type=<type>``)."""
        response = await self.request(
            "POST",
            "/v2/entities",
            params={"options": _options((upsert, "upsert"), (key_values, "keyValues"))},
            json=entity,
            service=service,
            service_path=service_path,
            correlator=correlator,
        )
        return response.headers.get("location")

    async def get_entity(
        self,
        id: str,
        type: str | None = None,
        attrs: str | Iterable[str] | None = None,
        *,
        key_values: bool = False,
        metadata: str | Iterable[str] | None = None,
        service: Tenant = DEFAULT,
        service_path: Tenant = DEFAULT,
        correlator: Tenant = DEFAULT,
    ) -> dict[str, Any]:
        """GET /v2/entities/{id}; a missing entity raises NGSIClientError(404, "NotFound", ...)."""
        response = await self.request(
            "GET",
            "/v2/entities/" + _path(id),
            params={
                "type": type,
                "attrs": None if attrs is None else _csv(attrs),
                "metadata": None if metadata is None else _csv(metadata),
                "options": _options((key_values, "keyValues")),
            },
            service=service,
            service_path=service_path,
            correlator=correlator,
        )
        result: dict[str, Any] = response.json()
        return result

    async def query_page(
        self,
        *,
        limit: int = MAX_PAGE,
        offset: int = 0,
        key_values: bool = False,
        options: str | Iterable[str] | None = None,
        service: Tenant = DEFAULT,
        service_path: Tenant = DEFAULT,
        correlator: Tenant = DEFAULT,
        **params: Any,
    ) -> Page:
        """One GET /v2/entities page with its total count; ``params`` as in ``query``."""
        query = _query_params(params)
        query.update(
            limit=limit, offset=offset or None, options=_options((True, "count"), (key_values, "keyValues"), extra=options)
        )
        response = await self.request(
            "GET", "/v2/entities", params=query, service=service, service_path=service_path, correlator=correlator
        )
        return Page(response.json(), int(response.headers.get("fiware-total-count", "0")))

    async def iter_query(
        self, *, limit: int | None = None, offset: int = 0, page_size: int = MAX_PAGE, **params: Any
    ) -> AsyncIterator[Any]:
        """Every matching entity (or the first ``limit``), fetched page by page."""
        async for item in _paged(lambda lim, off: self.query_page(limit=lim, offset=off, **params), limit, offset, page_size):
            yield item

    async def query(
        self, *, limit: int | None = None, offset: int = 0, page_size: int = MAX_PAGE, **params: Any
    ) -> list[Any]:
        """GET /v2/entities across pages.

        Keywords: ``id, type, id_pattern, type_pattern, q, mq, attrs, metadata, georel,
        geometry, coords, order_by`` (lists allowed where Orion takes commas),
        ``key_values``, ``options``, tenant keywords; any other keyword is sent as is.
        """
        return [item async for item in self.iter_query(limit=limit, offset=offset, page_size=page_size, **params)]

    async def count(self, **params: Any) -> int:
        """Number of entities matching ``params`` (same keywords as ``query``)."""
        return (await self.query_page(limit=1, **params)).total

    async def update_attrs(
        self,
        id: str,
        attrs: Mapping[str, Any],
        type: str | None = None,
        *,
        existing_only: bool = False,
        append_only: bool = False,
        key_values: bool = False,
        service: Tenant = DEFAULT,
        service_path: Tenant = DEFAULT,
        correlator: Tenant = DEFAULT,
    ) -> None:
        """POST /v2/entities/{id}/attrs (update or append); ``existing_only`` uses PATCH
        (Orion's "update existing attributes", 422 on a missing one); ``append_only`` adds
        ``options=append`` (422 on an existing one)."""
        await self.request(
            "PATCH" if existing_only else "POST",
            f"/v2/entities/{_path(id)}/attrs",
            params={"type": type, "options": _options((append_only, "append"), (key_values, "keyValues"))},
            json=attrs,
            service=service,
            service_path=service_path,
            correlator=correlator,
        )

    async def replace_attrs(
        self,
        id: str,
        attrs: Mapping[str, Any],
        type: str | None = None,
        *,
        key_values: bool = False,
        service: Tenant = DEFAULT,
        service_path: Tenant = DEFAULT,
        correlator: Tenant = DEFAULT,
    ) -> None:
        """PUT /v2/entities/{id}/attrs: the entity keeps exactly ``attrs``."""
        await self.request(
            "PUT",
            f"/v2/entities/{_path(id)}/attrs",
            params={"type": type, "options": _options((key_values, "keyValues"))},
            json=attrs,
            service=service,
            service_path=service_path,
            correlator=correlator,
        )

    async def update_attr(
        self,
        id: str,
        name: str,
        attr: Mapping[str, Any],
        type: str | None = None,
        *,
        service: Tenant = DEFAULT,
        service_path: Tenant = DEFAULT,
        correlator: Tenant = DEFAULT,
    ) -> None:
        """PUT /v2/entities/{id}/attrs/{name}: how a command is triggered (update semantics)."""
        await self.request(
            "PUT",
            f"/v2/entities/{_path(id)}/attrs/{_path(name)}",
            params={"type": type},
            json=attr,
            service=service,
            service_path=service_path,
            correlator=correlator,
        )

    async def delete_entity(
        self,
        id: str,
        type: str | None = None,
        *,
        service: Tenant = DEFAULT,
        service_path: Tenant = DEFAULT,
        correlator: Tenant = DEFAULT,
    ) -> None:
        await self.request(
            "DELETE",
            "/v2/entities/" + _path(id),
            params={"type": type},
            service=service,
            service_path=service_path,
            correlator=correlator,
        )

    # -- batch ---------------------------------------------------------------------------

    async def op_update(
        self,
        action: str,
        entities: Iterable[Mapping[str, Any]],
        *,
        key_values: bool = False,
        options: str | Iterable[str] | None = None,
        service: Tenant = DEFAULT,
        service_path: Tenant = DEFAULT,
        correlator: Tenant = DEFAULT,
    ) -> None:
        """POST /v2/op/update with actionType ``action`` (append, appendStrict, update, delete, replace)."""
        await self.request(
            "POST",
            "/v2/op/update",
            params={"options": _options((key_values, "keyValues"), extra=options)},
            json={"actionType": action, "entities": list(entities)},
            service=service,
            service_path=service_path,
            correlator=correlator,
        )

    async def op_query_page(
        self,
        body: Mapping[str, Any],
        *,
        limit: int = MAX_PAGE,
        offset: int = 0,
        key_values: bool = False,
        order_by: str | None = None,
        service: Tenant = DEFAULT,
        service_path: Tenant = DEFAULT,
        correlator: Tenant = DEFAULT,
    ) -> Page:
        response = await self.request(
            "POST",
            "/v2/op/query",
            params={
                "limit": limit,
                "offset": offset or None,
                "orderBy": order_by,
                "options": _options((True, "count"), (key_values, "keyValues")),
            },
            json=body,
            service=service,
            service_path=service_path,
            correlator=correlator,
        )
        return Page(response.json(), int(response.headers.get("fiware-total-count", "0")))

    async def op_query(
        self,
        body: Mapping[str, Any],
        *,
        limit: int | None = None,
        offset: int = 0,
        page_size: int = MAX_PAGE,
        **kwargs: Any,
    ) -> list[Any]:
        """POST /v2/op/query across pages (``{"entities": [...], "attrs": [...], "expression": {...}}``)."""
        fetch = lambda lim, off: self.op_query_page(body, limit=lim, offset=off, **kwargs)  # noqa: E731
        return [item async for item in _paged(fetch, limit, offset, page_size)]

    # -- subscriptions and registrations -------------------------------------------------

    async def create_subscription(self, body: Mapping[str, Any], **tenant: Any) -> str:
        """POST /v2/subscriptions; returns the new id (from Location)."""
        response = await self.request("POST", "/v2/subscriptions", json=body, **tenant)
        return _last_segment(response)

    async def get_subscription(self, id: str, **tenant: Any) -> dict[str, Any]:
        result: dict[str, Any] = (await self.request("GET", "/v2/subscriptions/" + _path(id), **tenant)).json()
        return result

    async def list_subscriptions(self, **tenant: Any) -> list[dict[str, Any]]:
        fetch = lambda lim, off: self._list_page("/v2/subscriptions", lim, off, tenant)  # noqa: E731
        return [item async for item in _paged(fetch, None, 0, MAX_PAGE)]

    async def update_subscription(self, id: str, body: Mapping[str, Any], **tenant: Any) -> None:
        await self.request("PATCH", "/v2/subscriptions/" + _path(id), json=body, **tenant)

    async def delete_subscription(self, id: str, **tenant: Any) -> None:
        await self.request("DELETE", "/v2/subscriptions/" + _path(id), **tenant)

    async def create_registration(self, body: Mapping[str, Any], **tenant: Any) -> str:
        """POST /v2/registrations; returns the new id (from Location)."""
        response = await self.request("POST", "/v2/registrations", json=body, **tenant)
        return _last_segment(response)

    async def get_registration(self, id: str, **tenant: Any) -> dict[str, Any]:
        result: dict[str, Any] = (await self.request("GET", "/v2/registrations/" + _path(id), **tenant)).json()
        return result

    async def list_registrations(self, **tenant: Any) -> list[dict[str, Any]]:
        fetch = lambda lim, off: self._list_page("/v2/registrations", lim, off, tenant)  # noqa: E731
        return [item async for item in _paged(fetch, None, 0, MAX_PAGE)]

    async def delete_registration(self, id: str, **tenant: Any) -> None:
        await self.request("DELETE", "/v2/registrations/" + _path(id), **tenant)

    async def _list_page(self, path: str, limit: int, offset: int, tenant: Mapping[str, Any]) -> Page:
        response = await self.request(
            "GET", path, params={"limit": limit, "offset": offset or None, "options": "count"}, **tenant
        )
        return Page(response.json(), int(response.headers.get("fiware-total-count", "0")))

    # -- misc ----------------------------------------------------------------------------

    async def version(self) -> dict[str, Any]:
        """GET /version (no tenant headers)."""
        result: dict[str, Any] = (await self.request("GET", "/version", service=None, service_path=None)).json()
        return result


async def _paged(fetch: Any, limit: int | None, offset: int, page_size: int) -> AsyncIterator[Any]:
    """Yield items from ``fetch(limit, offset) -> Page`` until ``limit`` items or the end."""
    page_size = max(1, min(page_size, MAX_PAGE))
    fetched = 0
    while limit is None or fetched < limit:
        want = page_size if limit is None else min(page_size, limit - fetched)
        page: Page = await fetch(want, offset)
        for item in page.items:
            yield item
        fetched += len(page.items)
        offset += len(page.items)
        if len(page.items) < want or offset >= page.total:
            return


def _query_params(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        name = _QUERY_NAMES.get(key, key)
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        else:
            out[name] = value if isinstance(value, (str, int, float)) else _csv(value)
    return out


def _last_segment(response: httpx.Response) -> str:
    location = response.headers.get("location", "")
    return location.rstrip("/").rsplit("/", 1)[-1]


def _error(response: httpx.Response) -> NGSIClientError:
    """Orion's ``{"error", "description"}``; any other body keeps its text as description."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        description = body.get("description")
        return NGSIClientError(response.status_code, body["error"], description if isinstance(description, str) else "")
    return NGSIClientError(response.status_code, response.reason_phrase or "Error", response.text)
