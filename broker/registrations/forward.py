"""Request forwarding to context providers (CPrs), the way Orion 4.x does it
(user/context_providers.md; orion-api.md, "Registration Operations").

Queries (``plan.py`` decides who is asked what): attributes a registration provides that
the local entities lack are asked of the provider with ``POST <url>/op/query?limit=..
&offset=..&options=count`` (body ``{"entities": [...], "attrs": [...]}``, only the
attributes wanted: 3068 check_no_overquerying), and entities the broker does not hold are
discovered there, after the local ones and provider by provider in registration order,
``limit``/``offset`` shifted accordingly; ``Fiware-Total-Count`` adds up the local count
and the providers' (context_providers.md, "Pagination with Context Providers").
Completions go out together, discoveries one after the other (each needs the counts
before it). A provider that fails (connection error, timeout, non-2xx, an answer that is
not an entity list) is left out: the client gets the rest (3068
query_cpr_fail_but_local_results, 3363). Queries with q/mq/geo filters are not forwarded:
Orion forwards them without the filter and returns what providers answer unfiltered
(context_providers.md calls it unsupported, issue 2282); the broker returns only entities
that match.

Updates: the attributes an update would not find locally (``update``, ``replace`` and
``delete`` of an entity the broker does not hold) and that a registration provides are
sent with ``POST <url>/op/update`` (``{"actionType", "entities"}``) and not stored; a
failing provider makes them "not found" in Orion's update report. Updates that create
(append) stay local, and ``options=skipForwarding`` does not apply to them
(context_providers.md).

A registration with ``legacyForwarding: true`` is asked with NGSIv1 instead
(``legacy.py``: ``/queryContext``, ``/updateContext``, no pagination parameters). Only
registrations with ``status`` active, not expired, whose service path the request covers,
and whose ``supportedForwardingMode`` allows the operation take part. Every request sent
counts in the registration's ``forwardingInformation`` (``registry.record``).

Forwarded requests carry ``Fiware-Service``/``Fiware-ServicePath``, ``X-Auth-Token``
when the client sent one, and the request's correlator with ``; cbfwd=1`` (Orion's
marker against forwarding loops).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Any

from ngsi.errors import ENTITY_NOT_FOUND, NGSIError, NotFound
from ngsi.model import BUILTIN_ATTRS, parse_entity
from ngsi.render import render_attr

from ngsi.client import HTTPClient, NGSIClient
from ngsi.context import RequestContext
from ngsi.destinations import Gate

from .. import jsonio
from ..entities import APPEND, APPEND_STRICT, DELETE, REPLACE, UPDATE, EntityService, Outcome, visible_to
from ..listing import MAX_LIMIT
from ..store import Selector
from . import legacy
from .plan import Ask, Key, plan_query, reg_covers
from .registry import RegistrationRegistry, Scopes

log = logging.getLogger("waziup.forward")

Entity = dict[str, Any]
Reg = dict[str, Any]
DEFAULT_TIMEOUT = 5.0  # seconds, Orion's default -httpTimeout
USER_AGENT = "orion/4.1.0"
FIND_LIMIT = 20  # what GET /v2/entities/{id} asks with: Orion's default page
_QUERY_MODES = ("all", "query")
_UPDATE_MODES = ("all", "update")


class ProviderError(Exception):
    """A provider did not answer, or not with a 2xx."""


class Forwarder:
    def __init__(
        self, registry: RegistrationRegistry, entities: EntityService, timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.registry = registry
        self.entities = entities
        self.timeout = timeout or DEFAULT_TIMEOUT
        self.gate = gate
        transport = HTTPClient(max_per_host=64, max_idle=16, ssl_context=ssl_context, gate=gate)
        self.client = NGSIClient(transport=transport, timeout=self.timeout)

    async def close(self) -> None:
        await self.registry.close()  # the forwarding counters not written yet
        await self.client.aclose()

    def enabled(self, ctx: RequestContext) -> bool:
        """Query forwarding: on unless ``options=skipForwarding`` or no registration."""
        return "skipForwarding" not in ctx.options and self.registry.has_any(ctx.tenant)

    def _regs(self, tenant: str, scopes: Scopes, modes: tuple[str, ...]) -> list[Reg]:
        return [r for r in self.registry.active(tenant, scopes) if r["provider"]["supportedForwardingMode"] in modes]

    # -- HTTP -----------------------------------------------------------------------------

    def _headers(self, ctx: RequestContext, reg: Reg) -> dict[str, str]:
        headers: dict[str, str] = {}
        if ctx.tenant:
            headers["Fiware-Service"] = ctx.tenant
        headers["Fiware-ServicePath"] = self._service_path(ctx, reg)
        if ctx.credential is not None:  # the caller's token: a provider behind a PEP decides with it
            headers["X-Auth-Token"] = ctx.credential
        headers["User-Agent"] = USER_AGENT
        headers["Accept"] = "application/json"
        headers["Content-Type"] = "application/json; charset=utf-8"
        correlator = ctx.correlator
        if correlator:
            headers["Fiware-Correlator"] = f"{correlator.split(';')[0].strip()}; cbfwd=1"
        return headers

    @staticmethod
    def _service_path(ctx: RequestContext, reg: Reg) -> str:
        """The request's own path when it names one, else the registration's."""
        header = ctx.service_path
        if header is not None and header.strip() and "," not in header and "#" not in header:
            return header.strip()
        return str(reg.get("_servicePath") or "/")

    async def _post(self, ctx: RequestContext, reg: Reg, op: str, body: Any, params: str = "") -> tuple[Any, Any]:
        """POST to the provider: (decoded JSON answer or None when empty, headers). Raises
        ProviderError; the caller records the outcome."""
        url = reg["provider"]["http"]["url"].rstrip("/") + op + params
        if self.gate is not None:
            decision = await self.gate.check(url)
            if not decision.allowed:
                raise ProviderError(decision.failure)
        try:
            response = await self.client.send("POST", url, headers=self._headers(ctx, reg), body=jsonio.dumps(body))
        except Exception as exc:
            raise ProviderError(str(exc)) from exc
        if not 200 <= response.status_code < 300:
            raise ProviderError(f"provider answered {response.status_code}")
        try:
            answer = jsonio.loads(response.content) if response.content else None
        except Exception as exc:
            raise ProviderError("provider answered no JSON") from exc
        return answer, response.headers

    def _record(self, ctx: RequestContext, reg: Reg, sent: float, ok: bool) -> None:
        self.registry.record(ctx.tenant, reg["id"], sent, ok, time.time())

    # -- queries ----------------------------------------------------------------------------

    async def _ask(self, ctx: RequestContext, ask: Ask, limit: int, offset: int) -> tuple[list[Entity], int]:
        """The entities a provider answers (already past ``offset``, at most ``limit``), and
        how many it holds in all; ([], 0) when it fails."""
        reg = ask.reg
        legacy_mode = bool(reg["provider"].get("legacyForwarding"))
        sent = time.time()
        try:
            if legacy_mode:
                answer, _ = await self._post(ctx, reg, legacy.QUERY_OP, legacy.query_body(ask.entities, ask.attrs))
                if not isinstance(answer, dict):
                    raise ProviderError("not a queryContext answer")
                items = legacy.query_entities(answer)
            else:
                body: dict[str, Any] = {"entities": ask.entities}
                if ask.attrs is not None:
                    body["attrs"] = ask.attrs
                params = f"?limit={limit}&offset={offset}&options=count"
                answer, headers = await self._post(ctx, reg, "/op/query", body, params)
                if not isinstance(answer, list):
                    raise ProviderError("not an entity list")
                items = answer
        except ProviderError as exc:  # a failing provider leaves the rest of the result alone (3363)
            log.info("query forwarding to %s failed: %s", reg["provider"]["http"]["url"], exc)
            self._record(ctx, reg, sent, False)
            return [], 0
        self._record(ctx, reg, sent, True)
        found = [entity for entity in (self._read(ask, item) for item in items) if entity is not None]
        if legacy_mode or not ask.paged:
            return found[offset : offset + limit] if ask.paged else found, len(found)
        total = _count(headers.get("fiware-total-count"))
        return found[:limit], total if total is not None else offset + len(found)

    @staticmethod
    def _read(ask: Ask, item: Any) -> Entity | None:
        """An answered entity in the model's form, if it is one the ask covers."""
        try:
            entity = parse_entity(item)
        except (NGSIError, RecursionError):
            return None
        entity["type"] = entity.get("type") or ask.single_type or ""
        if not ask.takes(entity["id"], entity["type"] or None):
            return None
        if ask.attrs is not None:
            entity["attrs"] = {n: a for n, a in entity["attrs"].items() if n in ask.attrs}
        entity["servicePath"] = ask.reg.get("_servicePath", "/")
        return entity

    async def _local_keys(self, ctx: RequestContext, ids: set[str]) -> set[Key]:
        """(id, type) of the local entities with these ids the request may see."""
        if not ids:
            return set()
        found = await self.entities.find(ctx, Selector(ids=tuple(sorted(ids)), service_paths=ctx.scopes()))
        return {(e["id"], e["type"]) for e in found}

    async def _complete(
        self, ctx: RequestContext, selectors: list[Selector], attrs: tuple[str, ...] | None, page: list[Entity],
        local_total: int, *, limit: int, offset: int,
    ) -> tuple[list[Entity], int]:
        """``page`` (the local result) completed and extended by the providers; the total count."""
        regs = self._regs(ctx.tenant, ctx.scopes(), _QUERY_MODES)
        if not regs:
            return page, local_total
        wanted = None if attrs is None or "*" in attrs else [a for a in attrs if a not in BUILTIN_ATTRS]
        elsewhere: set[Key] = set()
        if offset > 0 or len(page) >= limit:  # local entities the page does not show
            named = {i for s in selectors if s.ids is not None for i in s.ids}
            named |= {
                spec["id"] for reg in regs for spec in reg["dataProvided"]["entities"] if "id" in spec
            } if any(s.ids is None for s in selectors) else set()
            elsewhere = await self._local_keys(ctx, named - {e["id"] for e in page})
        asks = plan_query(regs, selectors, page, elsewhere, wanted)
        if not asks:
            return page, local_total
        result = _Result([visible_to(ctx, e) for e in page])
        completions = [a for a in asks if not a.paged]
        answers = await asyncio.gather(
            *(self._ask(ctx, a, min(MAX_LIMIT, max(limit, len(a.entities), FIND_LIMIT)), 0) for a in completions)
        )
        for found, _ in answers:
            for remote in found:
                result.merge(visible_to(ctx, remote))  # what the caller may see of it
        need = max(0, limit - len(page))
        remote_offset = max(0, offset - local_total)
        total = local_total
        for ask in (a for a in asks if a.paged):
            if need == 0 and "count" not in ctx.options:
                break  # nothing more to show, no count to give
            found, count = await self._ask(ctx, ask, need, remote_offset)
            found = [e for e in (visible_to(ctx, e) for e in found) if not result.merge(e)]
            if any("id" not in s for s in ask.entities):  # by pattern: the local ones count as local
                local = await self._local_keys(ctx, {e["id"] for e in found})
                found = [e for e in found if (e["id"], e["type"]) not in local]
            for entity in found[:need]:
                result.add(entity)
            need -= min(need, len(found))
            total += count
            remote_offset = max(0, remote_offset - count)
        return result.entities, total

    async def query(self, ctx: RequestContext, query: Any, entities: list[Entity], total: int) -> tuple[list[Entity], int]:
        """GET /v2/entities and POST /v2/op/query: the listing.EntityQuery's page, completed.

        ``total`` is the local count when the request asked for it (``listing.run``)."""
        if not self.enabled(ctx) or query.filters or query.geo is not None:
            return entities, total  # providers could not be asked the filter: their answers would not match it
        if "count" in ctx.options:
            local_total = total
        elif entities or query.offset == 0:
            local_total = query.offset + len(entities)  # all that the providers' offset depends on
        elif len(query.selectors) == 1:
            local_total = await self.entities.count(ctx, query.selectors[0])
        else:
            local_total = total
        return await self._complete(
            ctx, list(query.selectors), query.projection.attrs, entities, local_total,
            limit=query.limit, offset=query.offset,
        )

    async def find_one(
        self, ctx: RequestContext, entity_id: str, entity_type: str | None, attrs: tuple[str, ...] | None = None
    ) -> Entity:
        """GET /v2/entities/{id} and its sub-resources: the local entity, completed by providers.

        An entity only a provider holds is found too; one held nowhere is Orion's 404.
        """
        service = self.entities
        if not self.enabled(ctx):
            return await service.find_one(ctx, ctx.scopes(), entity_id, entity_type)
        try:
            page = [await service.find_one(ctx, ctx.scopes(), entity_id, entity_type)]
        except NotFound:
            page = []
        selector = Selector(
            ids=(entity_id,), types=None if entity_type is None else (entity_type,), service_paths=ctx.scopes()
        )
        merged, _ = await self._complete(ctx, [selector], attrs, page, len(page), limit=FIND_LIMIT, offset=0)
        if not merged:
            raise NotFound(ENTITY_NOT_FOUND)
        return merged[0]

    # -- updates ----------------------------------------------------------------------------

    def may_forward(self, ctx: RequestContext, action: str) -> bool:
        """Whether ``update`` could forward any part of an update with ``action``; when not,
        it hands every entity back untouched, and a batch may write them all in one go."""
        return action not in (APPEND, APPEND_STRICT) and self.registry.has_any(ctx.tenant)

    async def update(
        self, ctx: RequestContext, scopes: Scopes, parsed: Entity, action: str, outcome: Outcome, *, label_type: bool = False,
        single: bool = False,
    ) -> Entity | None:
        """Forward the registered part of an update; returns what is left to write locally.

        ``parsed`` is {"id", "type", "attrs"} as EntityService.write takes it. None means
        nothing is left for the local store (the entity is not here and everything was
        forwarded). Provider failures land in ``outcome`` as attributes not found; with
        ``single`` (a request on one entity URL) an entity that is not here and whose
        providers all failed is Orion's plain 404.
        """
        if parsed.get("id") is None or not self.may_forward(ctx, action):
            return parsed
        entity_id, entity_type = parsed["id"], parsed.get("type") or None
        candidates = [
            reg for reg in self._regs(ctx.tenant, scopes, _UPDATE_MODES)
            if any(s.get("id", entity_id) == entity_id for s in reg["dataProvided"]["entities"])
        ]
        if not candidates:
            return parsed
        selector = Selector(ids=(entity_id,), types=None if entity_type is None else (entity_type,), service_paths=scopes)
        found = await self.entities.find(ctx, selector, limit=1)
        here = found[0] if found else None
        if here is not None and action != UPDATE:
            return parsed  # replace/delete of a local entity stay local
        known_type = entity_type or (here["type"] if here is not None else None)
        regs = [reg for reg in candidates if reg_covers(reg, entity_id, known_type)]
        local_attrs = dict(parsed["attrs"])
        plans: list[tuple[Reg, dict[str, Any]]] = []
        for reg in regs:
            reg_attrs = reg["dataProvided"]["attrs"]
            chosen = {
                name: attr for name, attr in local_attrs.items()
                if (not reg_attrs or name in reg_attrs) and (here is None or name not in here["attrs"])
            }
            if not chosen:
                continue
            for name in chosen:
                del local_attrs[name]
            plans.append((reg, chosen))
        if not plans:
            return parsed
        results = await asyncio.gather(
            *(self._send_update(ctx, reg, entity_id, known_type, attrs, action) for reg, attrs in plans)
        )
        if single and here is None and not any(results):
            raise NotFound(ENTITY_NOT_FOUND)
        label = entity_id if not (label_type and entity_type) else f"{entity_id}/{entity_type}"
        for (reg, attrs), ok in zip(plans, results):
            if ok:
                outcome.succeeded = True
            else:
                outcome.fail(label, list(attrs))
                outcome.provider_failed = True
        if here is None and not local_attrs:
            return None
        return parsed | {"attrs": local_attrs}

    async def update_attr(
        self, ctx: RequestContext, scopes: Scopes, entity_id: str, entity_type: str | None, name: str, attr: dict[str, Any]
    ) -> bool:
        """PUT /v2/entities/{id}/attrs/{name}[/value]: True when a provider took the attribute."""
        outcome = Outcome("do not exist")
        parsed = {"id": entity_id, "type": entity_type, "attrs": {name: attr}}
        left = await self.update(ctx, scopes, parsed, UPDATE, outcome, single=True)
        if left is not None and left["attrs"]:
            return False
        outcome.raise_if_failed()
        return True

    async def _send_update(
        self, ctx: RequestContext, reg: Reg, entity_id: str, entity_type: str | None, attrs: dict[str, Any], action: str
    ) -> bool:
        action = action if action in (UPDATE, REPLACE, DELETE) else UPDATE
        sent = time.time()
        try:
            if reg["provider"].get("legacyForwarding"):
                answer, _ = await self._post(
                    ctx, reg, legacy.UPDATE_OP, legacy.update_body(entity_id, entity_type, attrs, action)
                )
                if not legacy.update_succeeded(answer):
                    raise ProviderError("updateContext refused")
            else:
                entity: dict[str, Any] = {"id": entity_id}
                if entity_type:
                    entity["type"] = entity_type
                for name, attr in attrs.items():
                    entity[name] = render_attr(attr)
                await self._post(ctx, reg, "/op/update", {"actionType": action, "entities": [entity]})
        except ProviderError as exc:
            log.info("update forwarding to %s failed: %s", reg["provider"]["http"]["url"], exc)
            self._record(ctx, reg, sent, False)
            return False
        self._record(ctx, reg, sent, True)
        return True


class _Result:
    """A query's entities, local then remote, with the providers' attributes merged in."""

    def __init__(self, entities: list[Entity]) -> None:
        self.entities = entities
        self._at: dict[Key, list[int]] = {}
        for i, entity in enumerate(entities):
            self._at.setdefault((entity["id"], entity["type"]), []).append(i)

    def add(self, entity: Entity) -> None:
        self._at.setdefault((entity["id"], entity["type"]), []).append(len(self.entities))
        self.entities.append(entity)

    def merge(self, remote: Entity) -> bool:
        """Add a provider's attributes the entity lacks; False when the result has no such entity.
        The entity is copied first: it may be the store's own object."""
        places = self._at.get((remote["id"], remote["type"]))
        if not places:
            return False
        for i in places:
            here = self.entities[i]
            new = {n: a for n, a in remote["attrs"].items() if n not in here["attrs"]}
            if new:
                self.entities[i] = dict(here, attrs={**here["attrs"], **new})
        return True


def _count(raw: str | None) -> int | None:
    if raw is None or not raw.strip().isascii() or not raw.strip().isdigit():
        return None
    return min(int(raw.strip()[:12]), 10**12)


__all__ = ["Forwarder", "ProviderError"]
