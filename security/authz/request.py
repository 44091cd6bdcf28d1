"""What one request asks to do, for authorization: its NGSI actions and the resource it touches.

Keyrock decides on the raw verb and path (and, at its ``payload`` level, regexes over the
ids, types and attributes Wilma pulls out of the body: reference
security-history-orchestration.md §1-2). A policy such as "farmers may update ``Field``
entities under ``/farm1/#`` but not their ``owner``" needs more: which NGSI operation a
request is (a ``POST /v2/op/update`` may create, update or delete, according to its
``actionType``) and exactly which entities, service paths and attributes it reaches. This
module answers that from the request alone (method, path, query, headers, body), without
I/O, for every route the broker (``broker/front.py``) and the IoT agent's north and south
ports serve. Steelskin's NGSI action table (§2) is the inspiration; where our broker
behaves differently, the broker wins (``/v2/op/notify`` is an *append*: it creates missing
entities, so it needs ``create`` as well as ``update``).

The answer is a :class:`RequestResource`: the set of actions the request needs (all of
them must be granted), the tenant, the service-path scopes it reaches, the entities it
touches as :class:`Target` values (one per entity, selector or id x type combination,
each with the attributes it touches), and the attributes its filters look at.

Three rules keep the decision safe without seeing the data:

* What the request does not say is taken at its widest: no ``type`` means any type, no
  ``attrs`` means every attribute, no ``Fiware-ServicePath`` on a read means every path.
  A type-restricted policy therefore does not grant a request that omits the type.
* Whatever cannot be read (bad JSON, a bad service path, an unknown route or method,
  a conflicting repeated parameter) is recorded in ``unknown``, never raised: the broker
  answers its own 400 later, and the decision denies unless a policy grants everything.
* Operations on a subscription, registration or device by its id, and listings of them,
  touch no entity we can name here (the entities are in the store): they carry the
  single target :data:`NO_ENTITY`, which only the action, tenant and service path of a
  policy constrain.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson

from ngsi.errors import NGSIError
from ngsi.query import parse_mq, parse_q
from ngsi.servicepath import (
    Scope,
    parse_scopes,
    parse_subscription_path,
    parse_tenant,
    parse_write_path,
)

ACTIONS: Final = ("read", "create", "update", "delete", "subscribe", "register", "provision", "admin")
"""Every action a request may need and a policy may grant, in the order answers list them."""
READ, CREATE, UPDATE, DELETE, SUBSCRIBE, REGISTER, PROVISION, ADMIN = ACTIONS  # one name each, listed once

MAX_TARGETS: Final = 10_000
"""Targets one request may expand to (``id=`` x ``type=`` lists, batch entities); past
it the request is marked unknown rather than decided entity by entity."""

EVERY_PATH: Final[Scope] = ("/", True)


@dataclass(frozen=True, slots=True)
class Target:
    """Entities one part of a request touches, and which of their attributes.

    ``id`` / ``id_pattern`` and ``type`` / ``type_pattern`` select as NGSI selectors do
    (all None: any entity). ``attrs`` None means every attribute (a whole-entity read,
    delete or replace). ``entityless`` marks :data:`NO_ENTITY`: the operation names no
    entity (a subscription by id, a device listing), so entity rules do not apply.
    """

    id: str | None = None
    id_pattern: str | None = None
    type: str | None = None
    type_pattern: str | None = None
    attrs: frozenset[str] | None = None
    entityless: bool = False

    def label(self) -> str:
        """How explanations name it: ``type Field``, ``entity urn:f1 of type Field``..."""
        if self.entityless:
            text = "no particular entity"
        else:
            who = _first_named(("entity", self.id), ("entities matching idPattern", self.id_pattern))
            kind = _first_named(("type", self.type), ("typePattern", self.type_pattern)) or "any type"
            text = f"{who} of {kind}" if who else kind
        if self.attrs:
            text += " (attributes " + ", ".join(sorted(self.attrs)) + ")"
        return text


def _first_named(*choices: tuple[str, str | None]) -> str:
    """``"<what> <value>"`` of the first choice that has a value ("" if none): a selector's
    exact id or type is what it selects by, before its pattern."""
    return next((f"{what} {value}" for what, value in choices if value is not None), "")


NO_ENTITY: Final = Target(entityless=True, attrs=frozenset())
ANY_ENTITY: Final = Target()


@dataclass(frozen=True, slots=True)
class RequestResource:
    """What a request needs granted: every action in ``actions``, on every target, in
    every scope, within ``tenant``.

    ``filter_attrs`` are the attributes a read's filters (``q``, ``mq``, ``orderBy``, the
    legacy ``attributes``) or a subscription's condition look at: a filter on a hidden
    attribute would reveal it, so they must be readable, not just projected away. None
    means a filter that may look at any attribute (a geographical query).
    ``unknown`` lists what could not be read; ``public`` requests need no grant.
    ``options`` are the request's NGSI options (``values`` responses carry no attribute
    names, so a projection cannot be applied to them). ``route`` names the route in
    explanations (``PATCH /v2/entities/{id}/attrs``).
    """

    actions: frozenset[str]
    tenant: str = ""
    scopes: tuple[Scope, ...] = (EVERY_PATH,)
    targets: tuple[Target, ...] = (NO_ENTITY,)
    filter_attrs: frozenset[str] | None = frozenset()
    unknown: tuple[str, ...] = ()
    public: bool = False
    options: frozenset[str] = frozenset()
    route: str = ""


class _Unseen:
    """The body was not given to the analysis (see :data:`UNSEEN`)."""

    def __repr__(self) -> str:
        return "UNSEEN"


UNSEEN: Final = _Unseen()
"""Pass as ``body`` when the payload is not available (Wilma's OPA input carries ids,
types and attributes instead of the body): the actions a payload or ``options`` would
choose between are then all required (``POST /v2/op/update`` needs create, update and
delete), and its entities are any entity."""

_NOTHING: Final = object()  # no body at all

# Orion's administrative routes: none is served by our broker, all are administration.
_ADMIN_PATHS = ("/admin", "/log", "/statistics", "/cache", "/exit", "/leak")

_BATCH_ACTIONS: Final = {
    "append": frozenset({CREATE, UPDATE}),
    "appendStrict": frozenset({CREATE}),
    "update": frozenset({UPDATE}),
    "replace": frozenset({UPDATE}),
    "delete": frozenset({DELETE}),
}
# NGSIv1's spellings, which the broker still accepts as their counterparts (Orion's deprecated.md)
_V1_BATCH_ACTIONS: Final = {
    "APPEND": "append", "APPEND_STRICT": "appendStrict", "UPDATE": "update", "DELETE": "delete", "REPLACE": "replace",
}
_ENTITY_KEYS = frozenset({"id", "type"})
_BUILTIN_ORDER = frozenset({"id", "type", "servicePath", "dateCreated", "dateModified", "dateExpires"})
_GEO_PARAMS = ("georel", "geometry", "coords")
_DEFAULT_TYPE = "Thing"  # ngsi.model.DEFAULT_ENTITY_TYPE: what a creation without a type gets


# Services whose routes share the broker's paths but not their meaning, each with the
# function that reads their requests; they register themselves here (``history.py``, which
# extends ``_Analysis``; the package's ``__init__`` imports it), so that this module does not
# import them back.
SERVICES: dict[str, Callable[[str, str, Any, Mapping[str, str], Any, bool], RequestResource]] = {}


def describe(
    method: str,
    path: str,
    query: str | bytes | Mapping[str, str] = b"",
    headers: Mapping[str, str] | None = None,
    body: Any = b"",
    *,
    multiservice: bool = True,
    service: str = "broker",
) -> RequestResource:
    """The actions and resource of one request; never raises.

    ``path`` is decoded (as ASGI's ``scope["path"]``); ``query`` the raw query string or
    its parameters; ``headers`` have lowercase names; ``body`` the raw bytes (or text),
    already parsed JSON, or :data:`UNSEEN`. ``multiservice`` False: the service ignores
    ``Fiware-Service``, so the tenant is the default one whatever the header says.
    ``service`` ``"history"``: a request to the history service, whose routes share paths
    with the broker's but not their meaning (``history.py``); any other service (the
    broker, the IoT agent, the PEP proxy): this module's table.
    """
    try:
        other = SERVICES.get(service)
        if other is not None:
            return other(method, path, query, headers or {}, body, multiservice)
        return _Analysis(method, path, query, headers or {}, body, multiservice).run()
    except Exception as exc:  # noqa: BLE001 (a bug here must not become a 500 in the PEP: deny instead)
        return RequestResource(
            actions=frozenset(ACTIONS),
            tenant="",
            unknown=(f"the request could not be analysed ({type(exc).__name__})",),
            route=f"{method} {path}",
        )


class _Analysis:
    """One request being read; ``unknown`` collects what could not be."""

    def __init__(
        self, method: str, path: str, query: str | bytes | Mapping[str, str], headers: Mapping[str, str],
        body: Any, multiservice: bool,
    ) -> None:
        self.method = str(method).upper()
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]  # the broker ignores one trailing slash
        self.path = path
        self.headers = headers
        self.raw_body = body
        self.multiservice = multiservice
        self.unknown: list[str] = []
        self.params = self._params(query)
        self.route = f"{self.method} {path}"

    # -- inputs ---------------------------------------------------------------------------

    def _params(self, query: str | bytes | Mapping[str, str]) -> dict[str, str]:
        """Parameters as Starlette reads them (the last value wins); a parameter repeated
        with different values is unknown, since not every hop agrees on which one wins."""
        if isinstance(query, Mapping):
            return {str(k): str(v) for k, v in query.items()}
        text = query.decode("latin-1") if isinstance(query, (bytes, bytearray)) else str(query)
        params: dict[str, str] = {}
        for name, value in parse_qsl(text, keep_blank_values=True):
            if name in params and params[name] != value:
                self.unknown.append(f"URI parameter {name} given twice with different values")
            params[name] = value
        return params

    def param(self, name: str) -> str | None:
        return self.params.get(name)

    def list_param(self, name: str) -> tuple[str, ...] | None:
        raw = self.params.get(name)
        return None if raw is None else tuple(raw.split(","))

    def options(self) -> frozenset[str]:
        raw = self.params.get("options")
        return frozenset() if raw is None else frozenset(w.strip() for w in raw.split(","))

    def payload(self) -> Any:
        """The parsed body, ``_NOTHING`` without one, :data:`UNSEEN` when not given."""
        body = self.raw_body
        if body is UNSEEN:
            return UNSEEN
        if isinstance(body, (bytes, bytearray, memoryview, str)):
            raw = bytes(body) if not isinstance(body, str) else body.encode("utf-8", "surrogatepass")
            if not raw.strip():
                return _NOTHING
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError:
                self.unknown.append("the body is not valid JSON")
                return _NOTHING
        return body  # already parsed

    def bad(self, what: str) -> None:
        self.unknown.append(what)

    # -- tenant and service paths -----------------------------------------------------------

    def tenant(self) -> str:
        """The broker's tenant (``ngsi.context.from_headers``): lowercased, validated."""
        raw = self.headers.get("fiware-service")
        if not self.multiservice or not raw:
            return ""
        try:
            return parse_tenant(raw)
        except NGSIError as exc:
            self.bad(f"Fiware-Service: {exc.description}")
            return str(raw).strip().lower()

    def agent_tenant(self) -> str:
        """The IoT agent's tenant: a mandatory header, lowercased, not validated."""
        raw = self.headers.get("fiware-service")
        if not raw:
            self.bad("the IoT agent requires Fiware-Service")
            return ""
        return str(raw).lower()

    def read_scopes(self) -> tuple[Scope, ...]:
        try:
            return parse_scopes(self.headers.get("fiware-servicepath"))
        except NGSIError as exc:
            self.bad(f"Fiware-ServicePath: {exc.description}")
            return (EVERY_PATH,)

    def write_scopes(self, operation: str) -> tuple[Scope, ...]:
        try:
            return ((parse_write_path(self.headers.get("fiware-servicepath"), operation=operation), False),)
        except NGSIError as exc:
            self.bad(f"Fiware-ServicePath: {exc.description}")
            return (EVERY_PATH,)

    def subscription_scopes(self) -> tuple[Scope, ...]:
        try:
            path = parse_subscription_path(self.headers.get("fiware-servicepath"))
        except NGSIError as exc:
            self.bad(f"Fiware-ServicePath: {exc.description}")
            return (EVERY_PATH,)
        if path is None:
            return (EVERY_PATH,)
        if path.endswith("/#"):
            return (("/" if path == "/#" else path[:-2], True),)
        return ((path, False),)

    def agent_scopes(self) -> tuple[Scope, ...]:
        header = self.headers.get("fiware-servicepath")
        if not header:
            self.bad("the IoT agent requires Fiware-ServicePath")
            return (EVERY_PATH,)
        if header == "/*":  # the agent's "every subservice"
            return (EVERY_PATH,)
        try:
            scopes = parse_scopes(header)
        except NGSIError as exc:
            self.bad(f"Fiware-ServicePath: {exc.description}")
            return (EVERY_PATH,)
        if len(scopes) != 1:
            self.bad("the IoT agent takes one Fiware-ServicePath")
            return (EVERY_PATH,)
        return scopes

    # -- routing --------------------------------------------------------------------------

    def result(
        self, actions: Iterable[str], tenant: str, scopes: tuple[Scope, ...], targets: Iterable[Target] = (NO_ENTITY,),
        filter_attrs: frozenset[str] | None = frozenset(), *, public: bool = False, route: str | None = None,
    ) -> RequestResource:
        unique = tuple(dict.fromkeys(targets))
        if len(unique) > MAX_TARGETS:
            self.bad(f"more than {MAX_TARGETS} entity selections")
            unique = (ANY_ENTITY,)
        return RequestResource(
            actions=frozenset(actions),
            tenant=tenant,
            scopes=tuple(dict.fromkeys(scopes)),
            targets=unique or (NO_ENTITY,),
            filter_attrs=filter_attrs,
            unknown=tuple(dict.fromkeys(self.unknown)),
            public=public,
            options=self.options(),
            route=route or self.route,
        )

    def run(self) -> RequestResource:
        path, method = self.path, self.method
        if method == "OPTIONS" and path != "" and not path.startswith(_ADMIN_PATHS):
            return self.result({READ}, "", (EVERY_PATH,), public=True)  # CORS preflight: no token, reveals nothing
        if path in ("/version", "/v2", "/iot/about"):
            if method not in ("GET", "HEAD"):
                self.bad(f"{method} is not served on {path}")
                return self.result({ADMIN}, self.tenant(), (EVERY_PATH,))
            return self.result({READ}, "", (EVERY_PATH,), public=True)
        parts = path.split("/")
        if len(parts) >= 2 and parts[0] == "" and parts[1] == "v2":
            return self.ngsi(parts)
        if len(parts) >= 2 and parts[0] == "" and parts[1] == "iot":
            return self.agent(parts)
        if path == "/notify":
            return self.notify(agent=True)
        if any(path == p or path.startswith(p + "/") for p in _ADMIN_PATHS):
            return self.result({ADMIN}, self.tenant(), (EVERY_PATH,), route=f"{method} {path} (administration)")
        self.bad(f"{path} is not a route of the platform")
        return self.result({ADMIN}, self.tenant(), (EVERY_PATH,))

    def not_served(self, allowed: str) -> RequestResource:
        self.bad(f"{self.method} is not served on {self.path} (allowed: {allowed})")
        return self.result(ACTIONS, self.tenant(), (EVERY_PATH,), (ANY_ENTITY,))

    def ngsi(self, parts: list[str]) -> RequestResource:
        n, method = len(parts), self.method
        collection = parts[2] if n > 2 else ""
        if n == 3:
            if collection == "entities":
                if method == "GET":
                    return self.list_entities()
                if method == "POST":
                    return self.create_entity()
                return self.not_served("GET, POST")
            if collection == "types":
                return self.types(None) if method == "GET" else self.not_served("GET")
            if collection == "subscriptions":
                if method in ("GET", "POST"):
                    return self.subscription(method)
                return self.not_served("GET, POST")
            if collection == "registrations":
                if method in ("GET", "POST"):
                    return self.registration(method)
                return self.not_served("GET, POST")
        if n == 4 and collection == "op":
            if method != "POST":
                return self.not_served("POST")
            if parts[3] == "update":
                return self.op_update()
            if parts[3] == "query":
                return self.op_query()
            if parts[3] == "notify":
                return self.notify(agent=False)
        if n == 4 and collection == "types":
            return self.types(parts[3]) if method == "GET" else self.not_served("GET")
        if n == 4 and collection == "subscriptions":
            if method in ("GET", "DELETE", "PATCH"):
                return self.subscription(method)
            return self.not_served("GET, DELETE, PATCH")
        if n == 4 and collection == "registrations" and parts[3]:
            if method in ("GET", "DELETE"):
                return self.registration(method)
            return self.not_served("GET, DELETE")
        if collection == "entities" and n >= 4:
            return self.entity(parts)
        self.bad(f"{self.path} is not a route of the platform")
        return self.result({ADMIN}, self.tenant(), (EVERY_PATH,))

    # -- /v2/entities ---------------------------------------------------------------------

    def query_filters(self) -> frozenset[str] | None:
        """Attributes the URI filters of a read look at (None: a geographical filter)."""
        names: set[str] = set()
        for name, parse in (("q", parse_q), ("mq", parse_mq)):
            text = self.param(name)
            if text is None:
                continue
            try:
                names.update(item.target.attr for item in parse(text).items if item.target.attr is not None)
            except NGSIError as exc:
                self.bad(f"{name}: {exc.description}")
        order = self.param("orderBy")
        if order:
            for token in order.split(","):
                key = token.removeprefix("!")
                if key and key not in _BUILTIN_ORDER:
                    names.add(key)
                    names.add(key.split(".")[0])
        if any(self.param(p) is not None for p in _GEO_PARAMS):
            return None
        return frozenset(names)

    def asked_attrs(self) -> frozenset[str] | None:
        """``attrs=`` of a read (None: every attribute, also for ``*``)."""
        attrs = self.list_param("attrs")
        if attrs is None or "*" in attrs or attrs == ("",):
            return None
        legacy = {name for name in ("dateCreated", "dateModified") if name in self.options()}
        return frozenset(attrs) | legacy

    def list_entities(self) -> RequestResource:
        ids, id_pattern = self.list_param("id"), self.param("idPattern")
        types, type_pattern = self.list_param("type"), self.param("typePattern")
        if id_pattern == ".*":
            id_pattern = None
        attrs = self.asked_attrs()
        id_choices: list[tuple[str | None, str | None]] = (
            [(i, None) for i in ids] if ids is not None else [(None, id_pattern)]
        )
        type_choices: list[tuple[str | None, str | None]] = (
            [(t, None) for t in types] if types is not None else [(None, type_pattern)]
        )
        if len(id_choices) * len(type_choices) > MAX_TARGETS:
            self.bad(f"more than {MAX_TARGETS} entity selections")
            targets = [Target(attrs=attrs)]
        else:
            targets = [
                Target(id=i, id_pattern=ip, type=t, type_pattern=tp, attrs=attrs)
                for (i, ip), (t, tp) in itertools.product(id_choices, type_choices)
            ]
        return self.result({READ}, self.tenant(), self.read_scopes(), targets, self.query_filters(), route="GET /v2/entities")

    def create_entity(self) -> RequestResource:
        upsert = "upsert" in self.options()
        actions = {CREATE, UPDATE} if upsert else {CREATE}
        payload = self.payload()
        tenant, scopes = self.tenant(), self.write_scopes("update")
        if payload is UNSEEN:
            return self.result({CREATE, UPDATE}, tenant, scopes, (ANY_ENTITY,), route="POST /v2/entities")
        target = self.entity_item(payload, default_type=None if upsert else _DEFAULT_TYPE)
        return self.result(actions, tenant, scopes, [target] if target else [ANY_ENTITY], route="POST /v2/entities")

    def entity_item(self, item: Any, *, default_type: str | None, whole: bool = False) -> Target | None:
        """One entity of a payload: its id, type and the attributes it carries (every one
        when ``whole``: a replace, or a delete naming none)."""
        if not isinstance(item, dict):
            self.bad("an entity is not a JSON object")
            return None
        entity_id, entity_type = item.get("id"), item.get("type", default_type)
        if not isinstance(entity_id, str) or not entity_id:
            self.bad("an entity has no id")
            return None
        if entity_type is not None and (not isinstance(entity_type, str) or not entity_type):
            self.bad(f"entity {entity_id} has a bad type")
            entity_type = None
        names = frozenset(k for k in item if k not in _ENTITY_KEYS)
        return Target(id=entity_id, type=entity_type, attrs=None if whole else names)

    def entity(self, parts: list[str]) -> RequestResource:
        n, method = len(parts), self.method
        entity_id = parts[3]
        if not entity_id:
            self.bad("empty entity id")
        entity_type = self.param("type") or None
        tenant = self.tenant()
        if n == 4:
            route = "/v2/entities/{id}"
            if method == "GET":
                target = Target(id=entity_id, type=entity_type, attrs=self.asked_attrs())
                return self.result({READ}, tenant, self.read_scopes(), [target], route=f"GET {route}")
            if method == "DELETE":
                target = Target(id=entity_id, type=entity_type)
                return self.result({DELETE}, tenant, self.write_scopes("delete"), [target], route=f"DELETE {route}")
            return self.not_served("GET, DELETE")
        if parts[4] != "attrs" or n > 7 or (n == 7 and parts[6] != "value"):
            self.bad(f"{self.path} is not a route of the platform")
            return self.result({ADMIN}, tenant, (EVERY_PATH,))
        if n == 5:
            route = "/v2/entities/{id}/attrs"
            if method == "GET":
                target = Target(id=entity_id, type=entity_type, attrs=self.asked_attrs())
                return self.result({READ}, tenant, self.read_scopes(), [target], route=f"GET {route}")
            if method in ("POST", "PATCH", "PUT"):
                payload = self.payload()
                if payload is UNSEEN or method == "PUT":  # PUT replaces every attribute
                    names = None
                elif isinstance(payload, dict):
                    names = frozenset(payload)
                else:
                    self.bad("the attributes are not a JSON object")
                    names = None
                target = Target(id=entity_id, type=entity_type, attrs=names)
                return self.result({UPDATE}, tenant, self.write_scopes("patch"), [target], route=f"{method} {route}")
            return self.not_served("GET, PATCH, POST, PUT")
        name = parts[5]
        if not name:
            self.bad("empty attribute name")
        target = Target(id=entity_id, type=entity_type, attrs=frozenset({name}))
        if n == 6:
            route = "/v2/entities/{id}/attrs/{name}"
            if method == "GET":
                return self.result({READ}, tenant, self.read_scopes(), [target], route=f"GET {route}")
            if method == "PUT":
                return self.result({UPDATE}, tenant, self.write_scopes("patch"), [target], route=f"PUT {route}")
            if method == "DELETE":
                return self.result({DELETE}, tenant, self.write_scopes("delete"), [target], route=f"DELETE {route}")
            return self.not_served("GET, PUT, DELETE")
        route = "/v2/entities/{id}/attrs/{name}/value"
        if method == "GET":
            return self.result({READ}, tenant, self.read_scopes(), [target], route=f"GET {route}")
        if method == "PUT":
            return self.result({UPDATE}, tenant, self.write_scopes("patch"), [target], route=f"PUT {route}")
        return self.not_served("GET, PUT")

    def types(self, name: str | None) -> RequestResource:
        if name == "":
            self.bad("empty entity type")
        # The answer lists attribute names (and their types) of the entities of the type(s).
        target = Target(type=name or None)
        route = "GET /v2/types" if name is None else "GET /v2/types/{type}"
        return self.result({READ}, self.tenant(), self.read_scopes(), [target], route=route)

    # -- /v2/op -----------------------------------------------------------------------------

    def op_update(self) -> RequestResource:
        payload = self.payload()
        tenant = self.tenant()
        route = "POST /v2/op/update"
        if payload is UNSEEN:
            actions = frozenset({CREATE, UPDATE, DELETE})
            return self.result(actions, tenant, self.read_scopes(), (ANY_ENTITY,), route=route)
        if not isinstance(payload, dict):
            self.bad("the batch is not a JSON object")
            return self.result({CREATE, UPDATE, DELETE}, tenant, self.read_scopes(), (ANY_ENTITY,), route=route)
        action_type = payload.get("actionType")
        if isinstance(action_type, str):
            action_type = _V1_BATCH_ACTIONS.get(action_type, action_type)
        chosen = _BATCH_ACTIONS.get(action_type) if isinstance(action_type, str) else None
        if chosen is None:
            self.bad(f"actionType {action_type!r} is not one of {', '.join(_BATCH_ACTIONS)}")
            chosen = frozenset({CREATE, UPDATE, DELETE})
        actions = chosen
        route = f"{route} ({action_type})" if isinstance(action_type, str) else route
        # As the broker: appends go to the one write path; the others reach the read scopes.
        appending = action_type in ("append", "appendStrict")
        scopes = self.write_scopes("update") if appending else self.read_scopes()
        entities = payload.get("entities")
        if not isinstance(entities, list) or not entities:
            self.bad("the batch has no entities vector")
            return self.result(actions, tenant, scopes, (ANY_ENTITY,), route=route)
        default_type = _DEFAULT_TYPE if action_type == "appendStrict" else None
        targets: list[Target] = []
        for item in entities:
            whole = action_type == "replace" or (
                action_type == "delete" and isinstance(item, dict) and not (set(item) - _ENTITY_KEYS)
            )
            target = self.entity_item(item, default_type=default_type, whole=whole)
            targets.append(target if target is not None else ANY_ENTITY)
        return self.result(actions, tenant, scopes, targets, route=route)

    def selectors(self, items: Any, attrs: frozenset[str] | None, where: str) -> list[Target]:
        """The targets of an ``entities`` list of selectors (any entity when empty)."""
        if items is None:
            return [Target(attrs=attrs)]
        if not isinstance(items, list):
            self.bad(f"{where} is not a JSON array")
            return [Target(attrs=attrs)]
        if not items:
            return [Target(attrs=attrs)]
        targets: list[Target] = []
        for item in items:
            if not isinstance(item, dict):
                self.bad(f"an item of {where} is not a JSON object")
                targets.append(Target(attrs=attrs))
                continue
            fields: dict[str, str | None] = {}
            for key in ("id", "idPattern", "type", "typePattern"):
                value = item.get(key)
                if value is not None and (not isinstance(value, str) or value == ""):
                    self.bad(f"{where}: {key} must be a non-empty string")
                    value = None
                fields[key] = value
            if fields["idPattern"] == ".*":
                fields["idPattern"] = None
            if fields["typePattern"] == ".*":
                fields["typePattern"] = None
            if fields["id"] is not None and fields["idPattern"] is not None:
                self.bad(f"{where}: both id and idPattern")
            targets.append(
                Target(
                    id=fields["id"], id_pattern=fields["idPattern"] if fields["id"] is None else None,
                    type=fields["type"], type_pattern=fields["typePattern"] if fields["type"] is None else None,
                    attrs=attrs,
                )
            )
        return targets

    def names(self, value: Any, where: str) -> frozenset[str] | None:
        """A JSON list of attribute names (None when absent or not a list of strings)."""
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.bad(f"{where} is not a list of strings")
            return None
        return frozenset(value)

    def expression_filters(self, expression: Any, where: str) -> frozenset[str] | None:
        """Attributes an ``expression`` (q, mq, geo) looks at; None for a geo filter."""
        if expression is None:
            return frozenset()
        if not isinstance(expression, dict):
            self.bad(f"{where} is not a JSON object")
            return frozenset()
        names: set[str] = set()
        for key, parse in (("q", parse_q), ("mq", parse_mq)):
            text = expression.get(key)
            if text is None:
                continue
            if not isinstance(text, str):
                self.bad(f"{where}.{key} is not a string")
                continue
            try:
                names.update(item.target.attr for item in parse(text).items if item.target.attr is not None)
            except NGSIError as exc:
                self.bad(f"{where}.{key}: {exc.description}")
        if any(expression.get(k) is not None for k in _GEO_PARAMS):
            return None
        return frozenset(names)

    def op_query(self) -> RequestResource:
        payload = self.payload()
        tenant, scopes = self.tenant(), self.read_scopes()
        route = "POST /v2/op/query"
        filters = self.query_filters()
        if payload is UNSEEN:
            return self.result({READ}, tenant, scopes, (ANY_ENTITY,), filters, route=route)
        if not isinstance(payload, dict):
            self.bad("the query is not a JSON object")
            return self.result({READ}, tenant, scopes, (ANY_ENTITY,), filters, route=route)
        attrs = self.names(payload.get("attrs"), "attrs")
        legacy = self.names(payload.get("attributes"), "attributes")
        if attrs is None and legacy:
            attrs = legacy
        if attrs is not None and not attrs:
            attrs = None  # [] is every attribute
        expression = self.expression_filters(payload.get("expression"), "expression")
        if filters is not None and expression is not None:
            filters = filters | expression | (legacy or frozenset())  # `attributes` selects on them
        else:
            filters = None
        targets = self.selectors(payload.get("entities"), attrs, "entities")
        return self.result({READ}, tenant, scopes, targets, filters, route=route)

    def notify(self, *, agent: bool) -> RequestResource:
        """A notification received (``/v2/op/notify``, the agent's ``/notify``): an append of
        each entity of ``data``, creating missing ones."""
        route = "POST /notify" if agent else "POST /v2/op/notify"
        if self.method != "POST":
            return self.not_served("POST")
        tenant, scopes = self.tenant(), self.write_scopes("update")
        payload = self.payload()
        actions = {CREATE, UPDATE}
        if payload is UNSEEN:
            return self.result(actions, tenant, scopes, (ANY_ENTITY,), route=route)
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list) or not data:
            self.bad("the notification has no data vector")
            return self.result(actions, tenant, scopes, (ANY_ENTITY,), route=route)
        targets = [self.entity_item(item, default_type=None) or ANY_ENTITY for item in data]
        return self.result(actions, tenant, scopes, targets, route=route)

    # -- subscriptions and registrations ----------------------------------------------------

    def subscription(self, method: str) -> RequestResource:
        one = self.path.count("/") == 3
        route = f"{method} /v2/subscriptions" + ("/{id}" if one else "")
        tenant, scopes = self.tenant(), self.subscription_scopes()
        if method in ("GET", "DELETE"):
            return self.result({SUBSCRIBE}, tenant, scopes, route=route)
        payload = self.payload()
        if payload is UNSEEN:
            return self.result({SUBSCRIBE}, tenant, scopes, (ANY_ENTITY,), None, route=route)
        if not isinstance(payload, dict):
            self.bad("the subscription is not a JSON object")
            return self.result({SUBSCRIBE}, tenant, scopes, (ANY_ENTITY,), None, route=route)
        notified: frozenset[str] | None = None
        notification = payload.get("notification")
        if isinstance(notification, dict):
            if notification.get("exceptAttrs") is not None:
                self.names(notification.get("exceptAttrs"), "notification.exceptAttrs")
            else:
                notified = self.names(notification.get("attrs"), "notification.attrs")
            if notified is not None and not notified:
                notified = None  # [] notifies every attribute
        elif notification is not None:
            self.bad("notification is not a JSON object")
        filters: frozenset[str] | None = frozenset()
        subject = payload.get("subject")
        if isinstance(subject, dict):
            condition = subject.get("condition")
            if isinstance(condition, dict):
                watched = self.names(condition.get("attrs"), "subject.condition.attrs") or frozenset()
                expression = self.expression_filters(condition.get("expression"), "subject.condition.expression")
                filters = None if expression is None else watched | expression
            elif condition is not None:
                self.bad("subject.condition is not a JSON object")
            if method == "PATCH" and "entities" not in subject:
                targets = [Target(entityless=True, attrs=notified or frozenset())]
            else:
                targets = self.selectors(subject.get("entities"), notified, "subject.entities")
        elif subject is None and method == "PATCH":
            # The subscription's entities are in the store: only what the patch names here.
            targets = [Target(entityless=True, attrs=notified or frozenset())]
        else:
            if subject is not None:
                self.bad("subject is not a JSON object")
            targets = [Target(attrs=notified)]
        return self.result({SUBSCRIBE}, tenant, scopes, targets, filters, route=route)

    def registration(self, method: str) -> RequestResource:
        one = self.path.count("/") == 3
        route = f"{method} /v2/registrations" + ("/{id}" if one else "")
        tenant = self.tenant()
        if method in ("GET", "DELETE"):
            return self.result({REGISTER}, tenant, self.read_scopes(), route=route)
        scopes = self.write_scopes("update")
        payload = self.payload()
        if payload is UNSEEN:
            return self.result({REGISTER}, tenant, scopes, (ANY_ENTITY,), route=route)
        provided = payload.get("dataProvided") if isinstance(payload, dict) else None
        if not isinstance(provided, dict):
            self.bad("the registration has no dataProvided object")
            return self.result({REGISTER}, tenant, scopes, (ANY_ENTITY,), route=route)
        attrs = self.names(provided.get("attrs"), "dataProvided.attrs")
        if attrs is not None and not attrs:
            attrs = None  # a registration without attrs provides every attribute
        targets = self.selectors(provided.get("entities"), attrs, "dataProvided.entities")
        return self.result({REGISTER}, tenant, scopes, targets, route=route)

    # -- the IoT agent ------------------------------------------------------------------------

    def agent(self, parts: list[str]) -> RequestResource:
        path, method = self.path, self.method
        south = {"/iot/d": "GET, POST", "/iot/json": "GET, POST", "/iot/json/commands": "POST", "/iot/waziup": "POST"}
        if path in south or (len(parts) == 5 and parts[2] == "json" and parts[3] == "attrs"):
            # Measures: devices authenticate with their API key; the entity is in the agent's registry.
            self.bad("a south-port measure: its entity is known only to the agent's device registry")
            return self.result({UPDATE}, "", (EVERY_PATH,), (ANY_ENTITY,), route=f"{method} {path} (south)")
        if path in ("/iot/groups", "/iot/services"):
            if method not in ("GET", "POST", "PUT", "DELETE"):
                return self.not_served("GET, POST, PUT, DELETE")
            return self.provision_groups(parts[2])
        if path == "/iot/devices":
            if method not in ("GET", "POST"):
                return self.not_served("GET, POST")
            return self.provision_devices(many=True)
        if len(parts) == 4 and parts[2] == "devices" and parts[3]:
            if method not in ("GET", "PUT", "DELETE"):
                return self.not_served("GET, PUT, DELETE")
            return self.provision_devices(many=False)
        if path == "/iot/op/delete":
            if method != "POST":
                return self.not_served("POST")
            return self.result({PROVISION}, self.agent_tenant(), self.agent_scopes(), route="POST /iot/op/delete")
        self.bad(f"{path} is not a route of the platform")
        return self.result({ADMIN}, self.tenant(), (EVERY_PATH,))

    def mapped_attrs(self, item: dict[str, Any]) -> frozenset[str]:
        """The entity attributes a group or device maps measures, commands and statics to."""
        names: set[str] = set()
        for key in ("attributes", "lazy", "commands", "static_attributes"):
            value = item.get(key)
            if value is None:
                continue
            if not isinstance(value, list):
                self.bad(f"{key} is not a JSON array")
                continue
            for attr in value:
                name = attr.get("name", attr.get("object_id")) if isinstance(attr, dict) else None
                if isinstance(name, str) and name:
                    names.add(name)
                else:
                    self.bad(f"an item of {key} has no name")
        return frozenset(names)

    def provision_item(self, item: Any, *, device: bool) -> Target:
        if not isinstance(item, dict):
            self.bad("a provisioning item is not a JSON object")
            return ANY_ENTITY
        entity_type = item.get("entity_type")
        entity_id = item.get("entity_name") if device else None
        if entity_type is not None and not isinstance(entity_type, str):
            self.bad("entity_type is not a string")
            entity_type = None
        if entity_id is not None and not isinstance(entity_id, str):
            self.bad("entity_name is not a string")
            entity_id = None
        return Target(id=entity_id or None, type=entity_type or None, attrs=self.mapped_attrs(item))

    def provision_groups(self, key: str) -> RequestResource:
        tenant, scopes = self.agent_tenant(), self.agent_scopes()
        route = f"{self.method} /iot/{key}"
        if self.method in ("GET", "DELETE"):
            return self.result({PROVISION}, tenant, scopes, route=route)
        payload = self.payload()
        if payload is UNSEEN:
            return self.result({PROVISION}, tenant, scopes, (ANY_ENTITY,), route=route)
        if self.method == "PUT":  # one group's new fields
            return self.result({PROVISION}, tenant, scopes, [self.provision_item(payload, device=False)], route=route)
        items = payload.get(key) if isinstance(payload, dict) else None
        if not isinstance(items, list) or not items:
            self.bad(f"the body has no {key} array")
            return self.result({PROVISION}, tenant, scopes, (ANY_ENTITY,), route=route)
        targets = [self.provision_item(item, device=False) for item in items]
        return self.result({PROVISION}, tenant, scopes, targets, route=route)

    def provision_devices(self, *, many: bool) -> RequestResource:
        tenant, scopes = self.agent_tenant(), self.agent_scopes()
        route = f"{self.method} /iot/devices" + ("" if many else "/{device_id}")
        if self.method in ("GET", "DELETE"):
            return self.result({PROVISION}, tenant, scopes, route=route)
        payload = self.payload()
        if payload is UNSEEN:
            return self.result({PROVISION}, tenant, scopes, (ANY_ENTITY,), route=route)
        if not many:  # PUT: the fields to change; entity ones only when given
            if not isinstance(payload, dict):
                self.bad("the device is not a JSON object")
                return self.result({PROVISION}, tenant, scopes, (ANY_ENTITY,), route=route)
            target = self.provision_item(payload, device=True)
            if target.id is None and target.type is None:
                target = Target(entityless=True, attrs=target.attrs)
            return self.result({PROVISION}, tenant, scopes, [target], route=route)
        items = payload.get("devices") if isinstance(payload, dict) else None
        if not isinstance(items, list) or not items:
            self.bad("the body has no devices array")
            return self.result({PROVISION}, tenant, scopes, (ANY_ENTITY,), route=route)
        targets = [self.provision_item(item, device=True) for item in items]
        return self.result({PROVISION}, tenant, scopes, targets, route=route)
