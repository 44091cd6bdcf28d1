"""The agent as the broker's context provider, on the north port.

* ``POST /v2/op/update``: the broker forwards an update of command attributes
  (``cmdMode: legacy``); an attribute that is neither a command nor a lazy attribute of
  the device is ``CommandNotFound``.
* ``POST /notify``: a notification of a command subscription (``cmdMode: notification``);
  every non-null command attribute it carries is a command (a ``null`` one is the entity
  as provisioning made it).
* ``POST /v2/op/query``: lazy attributes. The agents (UL, JSON) have no device to ask, so,
  like node-lib without a query handler, they come back with an empty value.

The commands found are handed to ``accept`` (store, then run) before the 204 goes out.
Picking the commands out of an entity is pure (``update_orders``, ``notified_orders``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..config import Config
from ..device import attribute_names, entity_of, lazy_type
from ..errors import CommandNotFound, DeviceNotFound, WrongSyntax
from ..south.ingest import Southbound
from .persistence import Order

Doc = dict[str, Any]
Accept = Callable[[list[Order]], None]
# (device, group, entity) -> the commands the entity carries for the device
Pick = Callable[[Doc, Doc | None, Doc], list[Order]]


def attribute_value(attr: Any) -> Any:
    """The value of an NGSI attribute, normalized (``{"value": ...}``) or keyValues."""
    return attr.get("value") if isinstance(attr, dict) else attr


def update_orders(device: Doc, group: Doc | None, entity: Doc) -> list[Order]:
    """The commands of a forwarded update; lazy attributes are skipped, others refused."""
    commands = attribute_names(device, group, "commands")
    lazy = attribute_names(device, group, "lazy")
    orders = []
    for name, attr in entity.items():
        if name in ("id", "type"):
            continue
        if name in commands:
            orders.append(Order(device, group, name, attribute_value(attr)))
        elif name not in lazy:
            raise CommandNotFound(name)
    return orders


def notified_orders(device: Doc, group: Doc | None, entity: Doc) -> list[Order]:
    """The commands of a notified entity: its command attributes that are not null."""
    commands = attribute_names(device, group, "commands")
    return [
        Order(device, group, name, attribute_value(attr))
        for name, attr in entity.items()
        if name in commands and attribute_value(attr) is not None
    ]


def lazy_entity(device: Doc, group: Doc | None, entity_id: str, entity_type: str, attrs: Any) -> Doc:
    """A query's answer for one entity: the asked (else every lazy) attribute, empty."""
    names = attrs if isinstance(attrs, list) and attrs else attribute_names(device, group, "lazy")
    doc: Doc = {"id": entity_id, "type": entity_type}
    for name in names:
        if isinstance(name, str):
            doc[name] = {"type": lazy_type(device, group, name), "value": "", "metadata": {}}
    return doc


def _body(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise WrongSyntax("the body is not valid JSON") from None


async def _list_field(request: Request, name: str, expected: str) -> tuple[Any, list[Any]]:
    """The JSON body and its list field ``name``; WrongSyntax(``expected``) without one."""
    body = _body(await request.body())
    items = body.get(name) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise WrongSyntax(expected)
    return body, items


class ProviderRoutes:
    """The context provider endpoints (see the module doc)."""

    def __init__(self, south: Southbound, config: Config, accept: Accept) -> None:
        self.south = south
        self.config = config
        self.accept = accept

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v2/op/update", self.op_update, methods=["POST"]),
            Route("/v2/op/query", self.op_query, methods=["POST"]),
            Route("/notify", self.notify, methods=["POST"]),
        ]

    async def device_of_entity(self, request: Request, entity: Any) -> tuple[Doc, Doc | None]:
        """The (device, group) whose entity this is, in the request's tenant."""
        if not isinstance(entity, dict) or not isinstance(entity.get("id"), str):
            raise WrongSyntax("entities must be objects with an id")
        service = (request.headers.get("fiware-service") or "").lower()
        subservice = request.headers.get("fiware-servicepath") or "/"
        candidates = await self.south.registry.find_devices(service=service or None)
        for device in candidates:
            if device.get("service_path", "/") not in (subservice, "") and subservice != "/#":
                continue
            group = await self.south.group_for(device)
            entity_id, entity_type = entity_of(device, group, self.config)
            if entity_id == entity["id"] and entity.get("type") in (None, entity_type):
                return device, group
        raise DeviceNotFound(str(entity["id"]))

    async def _accept_entities(self, request: Request, entities: list[Any], pick: Pick) -> Response:
        orders: list[Order] = []
        for entity in entities:
            device, group = await self.device_of_entity(request, entity)
            orders.extend(pick(device, group, entity))
        self.accept(orders)
        return Response(status_code=204)

    async def op_update(self, request: Request) -> Response:
        _, entities = await _list_field(request, "entities", "expected {actionType, entities}")
        return await self._accept_entities(request, entities, update_orders)

    async def notify(self, request: Request) -> Response:
        """A notification of a subscription made for ``cmdMode: notification``."""
        _, data = await _list_field(request, "data", "expected a notification {subscriptionId, data}")
        return await self._accept_entities(request, data, notified_orders)

    async def op_query(self, request: Request) -> Response:
        body, wanted = await _list_field(request, "entities", "expected {entities, attrs}")
        attrs = body.get("attrs")
        out = []
        for entity in wanted:
            device, group = await self.device_of_entity(request, entity)
            entity_id, entity_type = entity_of(device, group, self.config)
            out.append(lazy_entity(device, group, entity_id, entity_type, attrs))
        return Response(orjson.dumps(out), media_type="application/json")
