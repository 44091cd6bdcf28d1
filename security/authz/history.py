"""What a request to the history service asks to do, for authorization (``request.describe``
with ``service="history"``).

The history service (``analytics/history``, QuantumLeap 1.0's API) serves paths the broker
serves too, with other meanings: ``GET /v2/entities/{id}`` is a time series, not an entity;
``DELETE /v2/types/{type}`` exists; ``POST /v2/notify`` is its ingestion. So its requests
are read with this route table instead of the broker's, by the same rules (request.py):

* Every query route is a ``read`` of the entities, types and attributes it names: from its
  path first, else from its ``id``, ``type``, ``idPattern`` and ``attrs`` parameters, read
  exactly as the history reads them (``analytics/history/params.py``: comma lists, blanks
  around items and empty items dropped, the path's name winning over the parameter).
  What is not named is taken at its widest: no ``type`` is any type, no ``attrs`` every
  attribute, no ``Fiware-ServicePath`` every path; a geographical filter may look at any
  attribute (it reads the entity's location).
* ``DELETE /v2/entities/{id}`` and ``DELETE /v2/types/{type}`` are a ``delete`` of what
  the same request would read: the history deletes in every path its headers cover, as a
  read does (not the one write path of the broker's deletes).
* ``POST /v2/notify`` is a ``create`` and an ``update`` of each entity of its ``data``
  (the broker's ``/v2/op/notify``), under the service paths of the notification: one for
  every entity, or one per entity as Orion sends them.
* ``GET /v2/retention`` is a ``read`` and ``PUT /v2/retention`` an ``admin`` of the tenant,
  every path (the tenant's own retention rules: administration of its whole history);
* ``/version``, ``/health`` and ``/v2`` are public; other methods and paths are unknown
  (only a policy granting everything lets them through, to the history's own 404/405).

A read allowed with a projection is projected by the history itself, on the series it
selects, before any rendering: every answer shape (``options=values`` included) can hold
it, so the request's ``options`` never make a projection impossible here.
"""

from __future__ import annotations

import itertools
from typing import Any, Final

from ngsi.errors import NGSIError
from ngsi.servicepath import MAX_PATHS, Scope, parse_scopes

from .request import (
    _GEO_PARAMS,
    _NOTHING,
    ADMIN,
    ANY_ENTITY,
    CREATE,
    DELETE,
    EVERY_PATH,
    MAX_TARGETS,
    NO_ENTITY,
    READ,
    SERVICES,
    UNSEEN,
    UPDATE,
    RequestResource,
    Target,
)
from .routed import Route, RoutedAnalysis, route_table

# (method, path template, action), in the order of the history's routes
# (analytics/history/routes.py), read as routed.py says.
ROUTES: Final[tuple[tuple[str, str, str], ...]] = (
    ("GET", "/v2/last", READ),
    ("GET", "/v2/retention", READ),
    ("PUT", "/v2/retention", ADMIN),
    ("GET", "/v2/entities", READ),
    ("GET", "/v2/entities/{id}", READ),
    ("DELETE", "/v2/entities/{id}", DELETE),
    ("GET", "/v2/entities/{id}/value", READ),
    ("GET", "/v2/entities/{id}/attrs/{attr}", READ),
    ("GET", "/v2/entities/{id}/attrs/{attr}/value", READ),
    ("GET", "/v2/types/{type}", READ),
    ("DELETE", "/v2/types/{type}", DELETE),
    ("GET", "/v2/types/{type}/value", READ),
    ("GET", "/v2/types/{type}/attrs/{attr}", READ),
    ("GET", "/v2/types/{type}/attrs/{attr}/value", READ),
    ("GET", "/v2/attrs", READ),
    ("GET", "/v2/attrs/value", READ),
    ("GET", "/v2/attrs/{attr}", READ),
    ("GET", "/v2/attrs/{attr}/value", READ),
)
PUBLIC: Final[tuple[str, ...]] = ("/version", "/health", "/v2")
NOTIFY: Final = "/v2/notify"
RETENTION: Final = "/v2/retention"


def names(raw: str | None) -> tuple[str, ...] | None:
    """A comma-separated parameter as the history reads it (``params._names``): blanks
    around items and empty items dropped, duplicates once; None when absent or empty."""
    if raw is None:
        return None
    items = tuple(dict.fromkeys(item.strip() for item in raw.split(",") if item.strip()))
    return items or None


class HistoryAnalysis(RoutedAnalysis):
    """One request to the history service being read (see the module docstring)."""

    SERVICE = "history"
    PUBLIC = PUBLIC
    NOTIFICATIONS = NOTIFY
    TABLE = route_table(ROUTES)

    def options(self) -> frozenset[str]:
        return frozenset()  # the history projects series, not rendered entities

    def routed(self, route: Route, path: dict[str, str], name: str) -> RequestResource:
        if route.template == RETENTION:
            return self.result({route.action}, self.tenant(), (EVERY_PATH,), route=name)
        return self.selection(route.action, path, name)

    def selection(self, action: str, path: dict[str, str], route: str) -> RequestResource:
        """A query (``read``) or a delete of the series the path and parameters select."""
        ids = (path["id"],) if "id" in path else names(self.param("id"))
        types = (path["type"],) if "type" in path else names(self.param("type"))
        listed = (path["attr"],) if "attr" in path else names(self.param("attrs"))
        attrs = None if listed is None else frozenset(listed)
        pattern = self.param("idPattern") if ids is None else None  # with an id: the history's 400
        if pattern == ".*":
            pattern = None
        id_choices: list[tuple[str | None, str | None]] = [(i, None) for i in ids] if ids else [(None, pattern)]
        type_choices: list[str | None] = list(types) if types else [None]
        if len(id_choices) * len(type_choices) > MAX_TARGETS:
            self.bad(f"more than {MAX_TARGETS} entity selections")
            targets = [Target(attrs=attrs)]
        else:
            targets = [Target(id=i, id_pattern=p, type=t, attrs=attrs)
                       for (i, p), t in itertools.product(id_choices, type_choices)]
        geo = any(self.param(name) is not None for name in _GEO_PARAMS)
        filters: frozenset[str] | None = None if geo and action == READ else frozenset()
        return self.result({action}, self.tenant(), self.read_scopes(), targets, filters, route=route)

    def ingestion(self, route: str = f"POST {NOTIFY} (history)") -> RequestResource:
        """``POST /v2/notify``: an append of each entity of ``data``, creating its series
        (the rules service's ``/notices`` is read the same way: ``rules.py``)."""
        actions = {CREATE, UPDATE}
        tenant = self.tenant()
        payload = self.payload()
        if payload is UNSEEN:
            return self.result(actions, tenant, self.notified_scopes(None), (ANY_ENTITY,), route=route)
        data = payload.get("data") if isinstance(payload, dict) else None
        if payload is _NOTHING or not isinstance(data, list):
            self.bad("the notification has no data vector")
            return self.result(actions, tenant, self.notified_scopes(None), (ANY_ENTITY,), route=route)
        if not data:  # stores nothing (the history's 200)
            return self.result(actions, tenant, self.notified_scopes(None), (NO_ENTITY,), route=route)
        targets = [self.entity_item(item, default_type=None) or ANY_ENTITY for item in data]
        return self.result(actions, tenant, self.notified_scopes(len(data)), targets, route=route)

    def notified_scopes(self, count: int | None) -> tuple[Scope, ...]:
        """The paths a notification writes to (``notification.service_paths``): "/" without
        a header, else its one path or its comma list of one path per entity."""
        header = self.headers.get("fiware-servicepath")
        if header is None or not header.strip():
            return (("/", False),)
        items = [item.strip() for item in header.split(",")]
        if count is not None and len(items) not in (1, count):
            self.bad(f"Fiware-ServicePath has {len(items)} paths for {count} entities")
        paths: dict[Scope, None] = {}
        for item in items:
            try:
                scope = parse_scopes(item)[0]
            except NGSIError as exc:
                self.bad(f"Fiware-ServicePath: {exc.description}")
                return (EVERY_PATH,)
            if scope[1]:
                self.bad("Fiware-ServicePath: a notification names paths, not #")
                return (EVERY_PATH,)
            paths[(scope[0], False)] = None
        if len(paths) > MAX_PATHS:
            self.bad(f"Fiware-ServicePath names more than {MAX_PATHS} different paths")
            return (EVERY_PATH,)
        return tuple(paths)


def describe_history(
    method: str, path: str, query: Any, headers: Any, body: Any, multiservice: bool
) -> RequestResource:
    """``request.describe`` of a request to the history service (which calls it, and turns
    any exception into an unknown request)."""
    return HistoryAnalysis(method, path, query, headers, body, multiservice).run()


SERVICES["history"] = describe_history
