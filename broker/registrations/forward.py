"""Request forwarding to context providers (CPrs), the way Orion 4.x does it with NGSIv2.

Queries: for the entities a query names by id, the attributes that a registration
provides and that the broker does not hold locally are asked of the provider with
``POST <url>/op/query?limit=..&offset=..&options=count`` (body ``{"entities": [...],
"attrs": [...]}``, 3068 check_no_overquerying); what it answers is merged into the local
result. A provider that fails (connection error, non-2xx, not a JSON array) is ignored:
the local result is what the client gets (3068 query_cpr_fail_but_local_results, 3363).

Updates: the attributes an update action would not find locally (``update`` and
``replace``/``delete`` of an entity the broker does not hold) and that a registration
provides are sent with ``POST <url>/op/update`` (``{"actionType", "entities"}``) and not
stored; a failing provider makes them "not found" in Orion's partial-update report.

Only registrations with ``status`` active, not expired, whose service path the request
covers, and whose ``supportedForwardingMode`` allows the operation take part. Queries
by pattern (or without ids) are not forwarded unless the registration itself uses an
idPattern: fanning every listing out to every provider would make plain listings as
slow as the slowest provider; nor are queries with q/mq/geo filters, whose filter the
provider would not apply. ``options=skipForwarding`` turns forwarding off.

Forwarded requests carry ``Fiware-Service``/``Fiware-ServicePath``, ``X-Auth-Token``
when the client sent one, and the request's correlator with ``; cbfwd=1`` (Orion's
marker against forwarding loops).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any

from ngsi.errors import ENTITY_NOT_FOUND, NGSIError, NotFound
from ngsi.model import BUILTIN_ATTRS, parse_entity
from ngsi.render import render_attr
from ngsi.selectors import selector_covers

from ngsi.client import HTTPClient, NGSIClient
from ngsi.context import RequestContext
from ngsi.destinations import Gate

from .. import jsonio
from ..entities import APPEND, APPEND_STRICT, DELETE, REPLACE, UPDATE, EntityService, Outcome, visible_to
from ..store import Selector
from .registry import RegistrationRegistry, Scopes

log = logging.getLogger("waziup.forward")

Entity = dict[str, Any]
Reg = dict[str, Any]
DEFAULT_TIMEOUT = 5.0  # seconds, Orion's default -httpTimeout
USER_AGENT = "orion/4.1.0"
_QUERY_MODES = ("all", "query")
_UPDATE_MODES = ("all", "update")

def _provided(reg: Reg, wanted: list[str] | None) -> list[str] | None:
    """The attributes to ask a registration for: None means all it has, [] means none."""
    reg_attrs = [a for a in reg["dataProvided"]["attrs"]]
    if wanted is None:
        return reg_attrs or None
    if not reg_attrs:
        return list(wanted)
    return [a for a in wanted if a in reg_attrs]


@dataclass
class _Ask:
    """One forwarded query: a provider, an entity and the attributes wanted of it."""

    reg: Reg
    entity: dict[str, str]  # {"id", "type"?}
    attrs: list[str] | None


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
        await self.client.aclose()

    def enabled(self, ctx: RequestContext) -> bool:
        return "skipForwarding" not in ctx.options and self.registry.has_any(ctx.tenant)

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

    async def _post(self, ctx: RequestContext, reg: Reg, op: str, body: Any, params: str = "") -> Any:
        """POST to the provider; the decoded JSON answer (None when empty), raises on failure."""
        url = reg["provider"]["http"]["url"].rstrip("/") + op + params
        if self.gate is not None:
            decision = await self.gate.check(url)
            if not decision.allowed:
                raise ConnectionError(decision.failure)
        response = await self.client.send("POST", url, headers=self._headers(ctx, reg), body=jsonio.dumps(body))
        if not 200 <= response.status_code < 300:
            raise ConnectionError(f"provider answered {response.status_code}")
        return jsonio.loads(response.content) if response.content else None

    # -- queries ----------------------------------------------------------------------------

    def _asks(
        self, ctx: RequestContext, wanted_entities: list[tuple[str, str | None]], attrs: list[str] | None,
        local: dict[tuple[str, str | None], Entity],
    ) -> list[_Ask]:
        asks: list[_Ask] = []
        for reg in self.registry.active(ctx.tenant, ctx.scopes()):
            if reg["provider"]["supportedForwardingMode"] not in _QUERY_MODES:
                continue
            for entity_id, entity_type in wanted_entities:
                spec = next((s for s in reg["dataProvided"]["entities"] if selector_covers(s, entity_id, entity_type)), None)
                if spec is None:
                    continue
                provided = _provided(reg, attrs)
                here = local.get((entity_id, entity_type)) or local.get((entity_id, None))
                if provided is not None and here is not None:
                    provided = [a for a in provided if a not in here["attrs"]]
                if provided == []:
                    continue
                ask_type = entity_type or spec.get("type")
                entity = {"id": entity_id} | ({"type": ask_type} if ask_type else {})
                asks.append(_Ask(reg, entity, provided))
        return asks

    async def _ask(self, ctx: RequestContext, ask: _Ask, limit: int, offset: int) -> list[Entity]:
        body: dict[str, Any] = {"entities": [ask.entity]}
        if ask.attrs is not None:
            body["attrs"] = ask.attrs
        params = f"?limit={limit}&offset={offset}&options=count"
        try:
            answer = await self._post(ctx, ask.reg, "/op/query", body, params)
        except Exception as exc:  # a failing provider leaves the local result alone (3363)
            log.info("query forwarding to %s failed: %s", ask.reg["provider"]["http"]["url"], exc)
            return []
        if not isinstance(answer, list):
            return []
        found: list[Entity] = []
        for item in answer:
            try:
                entity = parse_entity(item)
            except (NGSIError, RecursionError):
                continue
            if entity["id"] != ask.entity["id"]:
                continue
            entity["type"] = entity.get("type") or ask.entity.get("type") or ""
            if ask.attrs is not None:
                entity["attrs"] = {n: a for n, a in entity["attrs"].items() if n in ask.attrs}
            entity["servicePath"] = ask.reg.get("_servicePath", "/")
            found.append(entity)
        return found

    async def merge(
        self, ctx: RequestContext, wanted_entities: list[tuple[str, str | None]], attrs: tuple[str, ...] | None,
        entities: list[Entity], *, limit: int = 20, offset: int = 0,
    ) -> tuple[list[Entity], int]:
        """``entities`` (the local result) completed with what providers answer; and how many were added."""
        if not wanted_entities or not self.enabled(ctx):
            return entities, 0
        wanted_attrs = None if attrs is None or "*" in attrs else [a for a in attrs if a not in BUILTIN_ATTRS]
        local: dict[tuple[str, str | None], Entity] = {}
        for entity in entities:
            local.setdefault((entity["id"], entity["type"]), entity)
            local.setdefault((entity["id"], None), entity)
        asks = self._asks(ctx, wanted_entities, wanted_attrs, local)
        if not asks:
            return entities, 0
        answers = await asyncio.gather(*(self._ask(ctx, ask, limit, offset) for ask in asks))
        answers = [[visible_to(ctx, remote) for remote in found] for found in answers]  # the caller's projection
        merged = list(entities)
        added = 0
        for found in answers:
            for remote in found:
                here = local.get((remote["id"], remote["type"])) or local.get((remote["id"], None))
                if here is None:
                    merged.append(remote)
                    local[(remote["id"], remote["type"])] = local[(remote["id"], None)] = remote
                    added += 1
                    continue
                for name, attr in remote["attrs"].items():
                    here["attrs"].setdefault(name, attr)
        return merged, added

    async def query(self, ctx: RequestContext, query: Any, entities: list[Entity], total: int) -> tuple[list[Entity], int]:
        """GET /v2/entities and POST /v2/op/query: the listing.EntityQuery's page, completed."""
        if not self.enabled(ctx) or query.filters or query.geo is not None:
            return entities, total  # providers could not be asked the filter: their answers would not match it
        wanted: list[tuple[str, str | None]] = []
        for selector in query.selectors:
            if selector.ids is None or selector.id_pattern is not None:
                continue
            types: tuple[str | None, ...] = selector.types if selector.types else (None,)
            wanted.extend((i, t) for i in selector.ids for t in types)
        merged, added = await self.merge(
            ctx, wanted, query.projection.attrs, entities, limit=query.limit, offset=query.offset
        )
        return merged[: max(query.limit, len(entities))], total + added

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
            local = [await service.find_one(ctx, ctx.scopes(), entity_id, entity_type)]
        except NotFound:
            local = []
        merged, _ = await self.merge(ctx, [(entity_id, entity_type)], attrs, local, limit=20, offset=0)
        if not merged:
            raise NotFound(ENTITY_NOT_FOUND)
        return merged[0]

    # -- updates ----------------------------------------------------------------------------

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
        if not self.enabled(ctx) or action in (APPEND, APPEND_STRICT) or parsed.get("id") is None:
            return parsed
        entity_id, entity_type = parsed["id"], parsed.get("type") or None
        regs = [
            reg for reg in self.registry.active(ctx.tenant, scopes)
            if reg["provider"]["supportedForwardingMode"] in _UPDATE_MODES
            and any(selector_covers(s, entity_id, entity_type) for s in reg["dataProvided"]["entities"])
        ]
        if not regs:
            return parsed
        selector = Selector(ids=(entity_id,), types=None if entity_type is None else (entity_type,), service_paths=scopes)
        found = await self.entities.find(ctx, selector, limit=1)
        here = found[0] if found else None
        if here is not None and action != UPDATE:
            return parsed  # replace/delete of a local entity stay local
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
        spec_type = entity_type or next(
            (s.get("type") for reg, _ in plans for s in reg["dataProvided"]["entities"] if s.get("type")), None
        )
        results = await asyncio.gather(
            *(self._send_update(ctx, reg, entity_id, spec_type, attrs, action) for reg, attrs in plans)
        )
        if single and here is None and not any(results):
            raise NotFound(ENTITY_NOT_FOUND)
        label = entity_id if not (label_type and entity_type) else f"{entity_id}/{entity_type}"
        for (reg, attrs), ok in zip(plans, results):
            if ok:
                outcome.succeeded = True
            else:
                outcome.fail(label, list(attrs))
        if here is None and not local_attrs:
            return None
        return parsed | {"attrs": local_attrs}

    async def update_attr(
        self, ctx: RequestContext, scopes: Scopes, entity_id: str, entity_type: str | None, name: str, attr: dict[str, Any]
    ) -> bool:
        """PUT /v2/entities/{id}/attrs/{name}[/value]: True when a provider took the attribute."""
        if not self.enabled(ctx):
            return False
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
        entity: dict[str, Any] = {"id": entity_id}
        if entity_type:
            entity["type"] = entity_type
        for name, attr in attrs.items():
            entity[name] = render_attr(attr)
        body = {"actionType": action if action in (UPDATE, REPLACE, DELETE) else UPDATE, "entities": [entity]}
        try:
            await self._post(ctx, reg, "/op/update", body)
        except Exception as exc:
            log.info("update forwarding to %s failed: %s", reg["provider"]["http"]["url"], exc)
            return False
        return True


__all__ = ["Forwarder"]
