"""The NGSI-v2 client: one class over one transport, every call a coroutine.

The transport (``transport.Transport``) is ``http11.HTTPClient`` by default: keep-alive
HTTP/1.1 pools, ``max_per_host`` connections per destination. ``asgi.ASGITransport``
calls an ASGI app (the broker's own) in-process. Every call returns or raises in the same
way over either: a ``response.Response`` (``status_code``, ``headers.get()``,
``content``, ``text``, ``json()``), ``NGSIClientError`` for a 4xx/5xx answer,
``NGSIConnectionError`` when there is no answer. Redirects are never followed.

``send`` is the raw call: any URL (a provider, a device's endpoint), headers and body as
given, every answer returned whatever its status (registration forwarding, commands
pushed to devices, pre-encoded batches).

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
import json as _json
import re
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack
from urllib.parse import quote, quote_plus

import orjson

from .credentials import AuthError, Credentials
from .errors import NGSIClientError, NGSIConnectionError
from .http11 import HTTPClient, HTTPError, remember
from .response import Response
from .transport import Transport

MAX_PAGE = 1000  # Orion's largest accepted limit


class _Default(enum.Enum):
    DEFAULT = "default"


DEFAULT = _Default.DEFAULT
"""Per-call marker: use the client's own service / service path / correlator."""

Tenant = str | None | _Default


class TenantOptions(TypedDict, total=False):
    """The per-call tenant keywords of every broker call (``DEFAULT``: the client's own).

    One declaration for all the calls, which pass them on to ``NGSIClient.request``
    untouched: a new tenant header is added here and in ``request`` only."""

    service: Tenant
    service_path: Tenant
    correlator: Tenant


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

    Use as ``async with NGSIClient(url) as ngsi: ...`` or call ``aclose()`` (which closes
    the transport too, given or not).

    ``transport``: any ``transport.Transport``; by default an ``http11.HTTPClient`` with
    ``max_per_host`` connections per destination (``verify=False``: no TLS checks).
    ``headers`` go with every request to the broker (not with ``send`` to other URLs);
    ``timeout`` (seconds, ``None``: none) bounds each request, overridable per call.
    ``credentials`` (``credentials.py``): a token for a broker behind a PEP, added to every
    request to the broker; a 401 fetches a new one and the request is made once more.
    """

    def __init__(
        self,
        base_url: str = "http://localhost:1026",
        *,
        transport: Transport | None = None,
        service: str | None = None,
        service_path: str | None = None,
        correlator: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = 10.0,
        max_per_host: int = 16,
        verify: bool = True,
        credentials: Credentials | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.service = service
        self.service_path = service_path
        self.correlator = correlator
        self.timeout = timeout
        if transport is None:
            transport = HTTPClient(max_per_host=max_per_host, verify=verify)
        elif not callable(getattr(transport, "request", None)) or hasattr(transport, "handle_async_request"):
            raise TypeError(
                f"{type(transport).__name__} is not an ngsi.client transport (request(method, url, headers, body,"
                " timeout)); httpx transports are not accepted: use ngsi.client.HTTPClient(max_per_host=...)"
                " or ngsi.client.ASGITransport(app)"
            )
        self.transport: Transport = transport
        self.headers: list[tuple[str, str]] = list((headers or {}).items())
        self._header_names = frozenset(name.lower() for name, _ in self.headers)

    async def __aenter__(self) -> NGSIClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.transport.aclose()

    # -- plumbing ------------------------------------------------------------------------

    def _headers(self, service: Tenant, service_path: Tenant, correlator: Tenant) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        svc = self.service if service is DEFAULT else service
        path = self.service_path if service_path is DEFAULT else service_path
        corr = self.correlator if correlator is DEFAULT else correlator
        if svc is not None:
            headers.append(("Fiware-Service", svc))
        if path is not None:
            headers.append(("Fiware-ServicePath", path))
        if corr is not None:
            headers.append(("Fiware-Correlator", corr))
        return headers

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """The URL of ``path`` (relative to ``base_url``, or absolute) with ``params``
        encoded as httpx encodes them (``urlencode``: ``a%2Cb``, ``+`` for spaces, ``true``
        for True, a list repeats its key; ``None`` values left out). Unlike httpx, a query
        already in ``path`` is kept (``params`` are appended to it)."""
        if path.startswith("/"):
            url = self.base_url + path
        elif "://" in path:
            url = path
        else:
            url = self.base_url + "/" + path
        if _UNSAFE_PATH.search(url) is not None:
            url = _quote_url(url)
        if params:
            query = _encode_params(params)
            if query:
                url += ("&" if "?" in url else "?") + query
        return url

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        service: Tenant = DEFAULT,
        service_path: Tenant = DEFAULT,
        correlator: Tenant = DEFAULT,
        timeout: float | None | _Default = DEFAULT,
    ) -> Response:
        """One request to the broker; a 4xx/5xx answer raises NGSIClientError (with Orion's
        error and description), no answer NGSIConnectionError.

        ``json`` is sent as ``application/json`` (``content``: a body as is); ``headers``
        are added to (and override) the client's and the tenant headers."""
        url = self.url(path, params)
        sent = self._headers(service, service_path, correlator)
        body = b""
        if json is not None:
            body = _dumps(json)
            sent.append(("Content-Type", "application/json"))
        elif content is not None:
            body = content.encode("utf-8") if isinstance(content, str) else content
        if headers:
            extra = list(headers.items() if isinstance(headers, Mapping) else headers)
            names = {name.lower() for name, _ in extra}
            sent = [h for h in sent if h[0].lower() not in names] + extra
        if self.headers:
            if self._header_names.isdisjoint(name.lower() for name, _ in sent):
                sent = self.headers + sent
            else:  # a per-call header replaces the client's header of that name
                names = {name.lower() for name, _ in sent}
                sent = [h for h in self.headers if h[0].lower() not in names] + sent
        response = await self._exchange(method, url, sent, body, self.timeout if timeout is DEFAULT else timeout)
        if response.status >= 400:
            raise _error(response)
        return response

    async def _exchange(
        self, method: str, url: str, sent: list[tuple[str, str]], body: bytes, timeout: float | None
    ) -> Response:
        """One request to the broker, with the credentials' token when there are some."""
        for attempt in (0, 1):
            headers = sent
            if self.credentials is not None:
                try:
                    headers = sent + await self.credentials.headers()
                except AuthError as exc:
                    raise NGSIConnectionError(f"{method} {url}: {exc}", "Could not get a token") from exc
            try:
                response = await self.transport.request(method, url, headers, body, timeout)
            except HTTPError as exc:
                raise NGSIConnectionError(f"{method} {url}: {exc}", exc.reason) from exc
            if response.status != 401 or self.credentials is None or attempt:
                return response
            await self.credentials.expired()  # revoked or expired early: a new token, once
        raise AssertionError("unreachable")

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        body: bytes | str = b"",
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | None | _Default = DEFAULT,
    ) -> Response:
        """The raw call: ``method url`` with exactly ``headers`` (plus ``Host``,
        ``Content-Length``, and ``Content-Type: application/json`` for ``json`` unless
        given), returning the answer whatever its status (3xx are not followed).

        ``url`` is absolute (a context provider, a device) or a path on the broker
        (``/v2/op/update?options=upsert``), which alone also gets the client's own
        ``headers``: the broker's credentials do not go to other servers. No tenant headers
        are added: the caller sends the ones it means. No answer raises NGSIConnectionError
        (``reason``: libcurl's text, ``__cause__``: the transport's ``HTTPError``)."""
        own = url.startswith("/")
        if own or params:
            url = self.url(url, params)
        if json is not None:
            body = _dumps(json)
        elif isinstance(body, str):
            body = body.encode("utf-8")
        sent: Any = () if headers is None else headers
        if json is not None:
            sent = list(sent.items() if isinstance(sent, Mapping) else sent)
            if not any(name.lower() == "content-type" for name, _ in sent):
                sent.append(("Content-Type", "application/json"))
        if own and self.headers:
            sent = list(sent.items() if isinstance(sent, Mapping) else sent)
            names = {name.lower() for name, _ in sent}
            sent = [h for h in self.headers if h[0].lower() not in names] + sent
        wait = self.timeout if timeout is DEFAULT else timeout
        if own:
            return await self._exchange(method, url, list(sent.items() if isinstance(sent, Mapping) else sent), body, wait)
        try:
            return await self.transport.request(method, url, sent, body, wait)
        except HTTPError as exc:
            raise NGSIConnectionError(f"{method} {url}: {exc}", exc.reason) from exc

    # -- entities ------------------------------------------------------------------------
    # Every broker call takes the tenant keywords of ``TenantOptions`` (``service``,
    # ``service_path``, ``correlator``) and passes them to ``request`` as they are.

    async def create_entity(
        self, entity: Mapping[str, Any], *, upsert: bool = False, key_values: bool = False,
        **tenant: Unpack[TenantOptions],
    ) -> str | None:
        """POST /v2/entities; returns Orion's Location header (``/v2/entities/<id>?type=<type>``)."""
        response = await self.request(
            "POST",
            "/v2/entities",
            params={"options": _options((upsert, "upsert"), (key_values, "keyValues"))},
            json=entity,
            **tenant,
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
        **tenant: Unpack[TenantOptions],
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
            **tenant,
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
        """One GET /v2/entities page with its total count; ``params`` as in ``query``.

        The tenant keywords are named here, not in ``**tenant``: every other keyword is a
        query parameter."""
        query = _query_params(params)
        query.update(
            limit=limit, offset=offset or None, options=_options((True, "count"), (key_values, "keyValues"), extra=options)
        )
        response = await self.request(
            "GET", "/v2/entities", params=query, service=service, service_path=service_path, correlator=correlator
        )
        return _page(response)

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
        **tenant: Unpack[TenantOptions],
    ) -> None:
        """POST /v2/entities/{id}/attrs (update or append); ``existing_only`` uses PATCH
        (Orion's "update existing attributes", 422 on a missing one); ``append_only`` adds
        ``options=append`` (422 on an existing one)."""
        options = _options((append_only, "append"), (key_values, "keyValues"))
        await self._write_attrs("PATCH" if existing_only else "POST", id, attrs, type, options, tenant)

    async def replace_attrs(
        self, id: str, attrs: Mapping[str, Any], type: str | None = None, *, key_values: bool = False,
        **tenant: Unpack[TenantOptions],
    ) -> None:
        """PUT /v2/entities/{id}/attrs: the entity keeps exactly ``attrs``."""
        await self._write_attrs("PUT", id, attrs, type, _options((key_values, "keyValues")), tenant)

    def _write_attrs(
        self, method: str, id: str, attrs: Mapping[str, Any], type: str | None, options: str | None,
        tenant: TenantOptions,
    ) -> Coroutine[Any, Any, Response]:
        """The request of update_attrs and replace_attrs, which differ by verb and options only.

        A plain function handing back ``request``'s coroutine: the caller awaits that one,
        with no coroutine of this helper in between (half a microsecond a call)."""
        return self.request(
            method, f"/v2/entities/{_path(id)}/attrs", params={"type": type, "options": options}, json=attrs, **tenant
        )

    async def update_attr(
        self, id: str, name: str, attr: Mapping[str, Any], type: str | None = None, **tenant: Unpack[TenantOptions]
    ) -> None:
        """PUT /v2/entities/{id}/attrs/{name}: how a command is triggered (update semantics)."""
        await self.request(
            "PUT", f"/v2/entities/{_path(id)}/attrs/{_path(name)}", params={"type": type}, json=attr, **tenant
        )

    async def delete_entity(self, id: str, type: str | None = None, **tenant: Unpack[TenantOptions]) -> None:
        await self.request("DELETE", "/v2/entities/" + _path(id), params={"type": type}, **tenant)

    # -- batch ---------------------------------------------------------------------------

    async def op_update(
        self,
        action: str,
        entities: Iterable[Mapping[str, Any]],
        *,
        key_values: bool = False,
        options: str | Iterable[str] | None = None,
        **tenant: Unpack[TenantOptions],
    ) -> None:
        """POST /v2/op/update with actionType ``action`` (append, appendStrict, update, delete, replace)."""
        await self.request(
            "POST",
            "/v2/op/update",
            params={"options": _options((key_values, "keyValues"), extra=options)},
            json={"actionType": action, "entities": list(entities)},
            **tenant,
        )

    async def op_query_page(
        self,
        body: Mapping[str, Any],
        *,
        limit: int = MAX_PAGE,
        offset: int = 0,
        key_values: bool = False,
        order_by: str | None = None,
        **tenant: Unpack[TenantOptions],
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
            **tenant,
        )
        return _page(response)

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

    async def create_subscription(self, body: Mapping[str, Any], **tenant: Unpack[TenantOptions]) -> str:
        """POST /v2/subscriptions; returns the new id (from Location)."""
        response = await self.request("POST", "/v2/subscriptions", json=body, **tenant)
        return _last_segment(response)

    async def get_subscription(self, id: str, **tenant: Unpack[TenantOptions]) -> dict[str, Any]:
        result: dict[str, Any] = (await self.request("GET", "/v2/subscriptions/" + _path(id), **tenant)).json()
        return result

    async def list_subscriptions(self, **tenant: Unpack[TenantOptions]) -> list[dict[str, Any]]:
        return await self._list_all("/v2/subscriptions", tenant)

    async def update_subscription(self, id: str, body: Mapping[str, Any], **tenant: Unpack[TenantOptions]) -> None:
        await self.request("PATCH", "/v2/subscriptions/" + _path(id), json=body, **tenant)

    async def delete_subscription(self, id: str, **tenant: Unpack[TenantOptions]) -> None:
        await self.request("DELETE", "/v2/subscriptions/" + _path(id), **tenant)

    async def create_registration(self, body: Mapping[str, Any], **tenant: Unpack[TenantOptions]) -> str:
        """POST /v2/registrations; returns the new id (from Location)."""
        response = await self.request("POST", "/v2/registrations", json=body, **tenant)
        return _last_segment(response)

    async def get_registration(self, id: str, **tenant: Unpack[TenantOptions]) -> dict[str, Any]:
        result: dict[str, Any] = (await self.request("GET", "/v2/registrations/" + _path(id), **tenant)).json()
        return result

    async def list_registrations(self, **tenant: Unpack[TenantOptions]) -> list[dict[str, Any]]:
        return await self._list_all("/v2/registrations", tenant)

    async def delete_registration(self, id: str, **tenant: Unpack[TenantOptions]) -> None:
        await self.request("DELETE", "/v2/registrations/" + _path(id), **tenant)

    async def _list_all(self, path: str, tenant: TenantOptions) -> list[dict[str, Any]]:
        """Every subscription or registration, page by page (``options=count`` gives the total)."""

        async def fetch(limit: int, offset: int) -> Page:
            params = {"limit": limit, "offset": offset or None, "options": "count"}
            return _page(await self.request("GET", path, params=params, **tenant))

        return [item async for item in _paged(fetch, None, 0, MAX_PAGE)]

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


def _page(response: Response) -> Page:
    """A listing's answer: the items, and the total Orion counts with ``options=count``."""
    return Page(response.json(), int(response.headers.get("fiware-total-count", "0")))


def _last_segment(response: Response) -> str:
    location = response.headers.get("location", "")
    return location.rstrip("/").rsplit("/", 1)[-1]


def _error(response: Response) -> NGSIClientError:
    """Orion's ``{"error", "description"}``; any other body keeps its text as description."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        description = body.get("description")
        return NGSIClientError(response.status_code, body["error"], description if isinstance(description, str) else "")
    return NGSIClientError(response.status_code, response.reason_phrase or "Error", response.text)


# -- encoding ------------------------------------------------------------------------------


def _dumps(value: Any) -> bytes:
    """JSON as httpx sends it (compact, UTF-8), through orjson; the standard library for what
    orjson refuses (non-string keys, Mapping types that are not dicts)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        if isinstance(value, Mapping) and not isinstance(value, dict):
            value = dict(value)
        return _json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _text(value: Any) -> str:
    """httpx's ``primitive_value_to_str``."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    return str(value)


def _encode_params(params: Mapping[str, Any]) -> str:
    """Query parameters as httpx's ``QueryParams`` encodes them (``urlencode``, that is
    ``quote_plus`` of each key and value); ``None`` values dropped."""
    parts: list[str] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, str):
            parts.append(_pair(key, value))
        elif isinstance(value, (list, tuple)):
            parts.extend(_pair(key, _text(v)) for v in value)
        else:
            parts.append(_pair(key, _text(value)))
    return "&".join(parts)


_PAIRS: dict[tuple[str, str], str] = {}  # (key, value) -> "key=value" encoded: they repeat a lot


def _pair(key: str, value: str) -> str:
    pair = _PAIRS.get((key, value))
    if pair is None:
        pair = remember(_PAIRS, (key, value), quote_plus(str(key)) + "=" + quote_plus(value))
    return pair


# httpx's path percent-encode set (space " # < > ? ` { } and anything not printable ASCII),
# checked over the whole URL: "?" and "#" only matter in the path, handled by _quote_url.
_UNSAFE_PATH = re.compile(r"[^!-~]|[\"<>`{}#]")
_PATH_SAFE = "!$&'()*+,;=:@/%[]\\^|"  # kept as is in a path, as httpx keeps them
_QUERY_SAFE = _PATH_SAFE + "?`{}"


def _quote_url(url: str) -> str:
    """Percent-encode the path and query of ``url`` as httpx does (existing ``%xx`` kept);
    a fragment is dropped (it is never sent)."""
    url = url.split("#", 1)[0]
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    slash = rest.find("/")
    if slash < 0:
        return url
    authority, target = rest[:slash], rest[slash:]
    path, qmark, query = target.partition("?")
    path = quote(path, safe=_PATH_SAFE)
    if qmark:
        query = quote(query, safe=_QUERY_SAFE)
    return f"{scheme}{sep}{authority}{path}{qmark}{query}"
