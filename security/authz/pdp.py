"""The policy decision point over HTTP: ``POST /pdp/decide`` and Keyrock's ``POST
/pdp/open_policy_agent``, as plain async handlers (JSON value in, (status, JSON value)
out) and the Starlette routes that serve them. The identity manager's app mounts the
routes; who may call them (PEPs with their own credentials) is its business.

``POST /pdp/decide`` takes the subject and either the request as the PEP saw it::

    {"subject": {...}, "method": "PATCH", "path": "/v2/entities/f1/attrs",
     "query": "type=Field", "headers": {"fiware-service": "coop", ...},
     "body": {...parsed JSON...} | "rawBody": "...text..."}

(``"service": "history"`` when the request went to the history service, whose paths mean
other things: ``security.authz.history``; the broker's table otherwise) or an NGSI description the PEP built itself::

    {"subject": {...}, "resource": {"actions": ["update"], "tenant": "coop",
     "servicePaths": ["/farm1"], "entities": [{"id": "f1", "type": "Field", "attrs": ["moisture"]}],
     "filterAttrs": [], "options": []}}

and answers :meth:`Decision.to_json` plus the request's ``actions`` and ``tenant``. The
subject is ``{"user_id", "app_id", "roles", "organizations"}`` (camelCase accepted), or
the user info Keyrock's ``GET /user`` returns (reference security-history-orchestration.md
§1: ``id``, ``app_id``, ``roles`` and ``organizations`` as objects with ``id``/``name``,
organizations with their own ``roles``, which count as the user's, as in Keyrock's
``user_permissions``).

``POST /pdp/open_policy_agent`` takes what Wilma's ``opa`` PDP plug-in sends (§2:
``{appId, resource, roles, action, tenant, ids, idPatterns, attrs, types}``), bare or
wrapped as Open Policy Agent's ``{"input": {...}}``. The reference gives two readings of
the answer, Keyrock's ``/pdp/open_policy_agent`` returning ``{"allow": bool}`` (§1) and
Wilma reading ``result.allow`` (§2), so the answer carries both: ``{"allow": b,
"result": {"allow": b}}``. Wilma's input has no user, organizations or service path; we
accept ``userId``, ``organizations`` and ``servicePath`` beside them (a PEP of ours
sends them). Without them a bound tenant is closed, and requests are taken at the root path
(every path for a read), so only policies covering it apply.
Wilma cannot filter a response, so a read that needs a projection is answered false.
Wilma's payload analysis puts the ``:attr`` of ``/v2/entities/:id/attrs/:attr`` into
``ids`` (§2, a known bug): when the path names the entity, its ids are ignored.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ngsi.errors import NGSIError
from ngsi.servicepath import Scope, parse_scopes

from .decide import Decision, decide
from .policy import PolicySet, Subject
from .request import (
    ACTIONS,
    MAX_TARGETS,
    NO_ENTITY,
    UNSEEN,
    SERVICES,
    RequestResource,
    Target,
    describe,
)

PolicySource = Callable[[], PolicySet | Awaitable[PolicySet]]
"""Where the PDP gets the current policies and bindings (e.g. the identity manager's
store); called once per decision, so a change applies to the next one."""

Answer = tuple[int, dict[str, Any]]


class BadPDPRequest(ValueError):
    """A PDP request that is not in any accepted shape (a 400, unlike a bad NGSI request
    inside it, which is decided: denied)."""


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadPDPRequest(f"{where} must be a list of strings")
    return value


def _names(value: Any, where: str) -> set[str]:
    """Ids and names from a list of strings or of Keyrock's ``{"id", "name"}`` objects."""
    if value is None:
        return set()
    if not isinstance(value, list):
        raise BadPDPRequest(f"{where} must be a list")
    names: set[str] = set()
    for item in value:
        if isinstance(item, str):
            names.add(item)
        elif isinstance(item, dict):
            names.update(v for k in ("id", "name") if isinstance(v := item.get(k), str) and v)
        else:
            raise BadPDPRequest(f"{where} must hold strings or objects with id/name")
    return names


def subject_from_json(doc: Any) -> Subject:
    """A subject from our JSON shape or Keyrock's ``GET /user`` answer."""
    if not isinstance(doc, dict):
        raise BadPDPRequest("subject must be a JSON object")
    user = doc.get("user_id", doc.get("userId", doc.get("id", "")))
    app = doc.get("app_id", doc.get("appId", ""))
    if not isinstance(user, str) or not isinstance(app, str):
        raise BadPDPRequest("subject user and application ids must be strings")
    roles = _names(doc.get("roles"), "subject.roles")
    organizations = _names(doc.get("organizations"), "subject.organizations")
    for org in doc.get("organizations") or ():
        if isinstance(org, dict):
            roles |= _names(org.get("roles"), "subject.organizations[].roles")
    return Subject(user, app, frozenset(roles), frozenset(organizations))


def _scope(text: Any, where: str) -> tuple[Scope, ...]:
    if not isinstance(text, str):
        raise BadPDPRequest(f"{where} must be strings")
    try:
        return parse_scopes(text)
    except NGSIError as exc:
        raise BadPDPRequest(f"{where}: {exc.description}") from None


def resource_from_json(doc: Any) -> RequestResource:
    """A request resource from the PEP's own NGSI description."""
    if not isinstance(doc, dict):
        raise BadPDPRequest("resource must be a JSON object")
    actions = _strings(doc.get("actions"), "resource.actions")
    if not actions or any(a not in ACTIONS for a in actions):
        raise BadPDPRequest(f"resource.actions must list some of {', '.join(ACTIONS)}")
    tenant = doc.get("tenant", "")
    if not isinstance(tenant, str):
        raise BadPDPRequest("resource.tenant must be a string")
    paths = _strings(doc.get("servicePaths"), "resource.servicePaths") or ["/#"]
    scopes = tuple(s for p in paths for s in _scope(p, "resource.servicePaths"))
    entities = doc.get("entities")
    targets: list[Target] = []
    if entities is None:
        targets.append(NO_ENTITY)
    elif not isinstance(entities, list):
        raise BadPDPRequest("resource.entities must be a list")
    for item in entities or ():
        if not isinstance(item, dict):
            raise BadPDPRequest("resource.entities items must be objects")
        fields = {k: item.get(k) for k in ("id", "idPattern", "type", "typePattern")}
        if any(v is not None and not isinstance(v, str) for v in fields.values()):
            raise BadPDPRequest("resource.entities ids, types and patterns must be strings")
        attrs = item.get("attrs")
        targets.append(
            Target(
                id=fields["id"], id_pattern=fields["idPattern"], type=fields["type"], type_pattern=fields["typePattern"],
                attrs=None if attrs is None else frozenset(_strings(attrs, "resource.entities[].attrs")),
            )
        )
    filters = doc.get("filterAttrs", [])
    return RequestResource(
        actions=frozenset(actions),
        tenant=tenant.lower(),
        scopes=scopes,
        targets=tuple(targets) or (NO_ENTITY,),
        filter_attrs=None if filters is None else frozenset(_strings(filters, "resource.filterAttrs")),
        options=frozenset(_strings(doc.get("options"), "resource.options")),
        route="the described request",
    )


def resource_from_request(doc: Mapping[str, Any]) -> RequestResource:
    """A request resource from the request as the PEP saw it."""
    method, path = doc.get("method"), doc.get("path")
    if not isinstance(method, str) or not isinstance(path, str):
        raise BadPDPRequest("method and path must be strings")
    query = doc.get("query", "")
    if isinstance(query, dict):
        if not all(isinstance(v, str) for v in query.values()):
            raise BadPDPRequest("query values must be strings")
    elif not isinstance(query, str):
        raise BadPDPRequest("query must be a string or an object")
    headers = doc.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise BadPDPRequest("headers must be an object of strings")
    if "rawBody" in doc:
        body = doc["rawBody"]
        if not isinstance(body, str):
            raise BadPDPRequest("rawBody must be a string")
    else:
        body = doc.get("body", b"")
    multiservice = doc.get("multiservice", True)
    service = doc.get("service", "broker")
    if service != "broker" and service not in SERVICES:
        raise BadPDPRequest(f"service must be one of {', '.join(['broker', *sorted(SERVICES)])}")
    return describe(
        method, path, query, {str(k).lower(): v for k, v in headers.items()}, body, multiservice=bool(multiservice),
        service=service,
    )


async def _current(source: PolicySource | PolicySet) -> PolicySet:
    if isinstance(source, PolicySet):
        return source
    found = source()
    if inspect.isawaitable(found):
        found = await found
    return found


def opa_resource(data: Mapping[str, Any]) -> RequestResource:
    """The request Wilma's OPA input describes (see the module docstring)."""
    action, resource = data.get("action"), data.get("resource")
    if not isinstance(action, str) or not isinstance(resource, str):
        raise BadPDPRequest("input.action and input.resource must be strings")
    tenant = data.get("tenant") or ""
    service_path = data.get("servicePath")
    if not isinstance(tenant, str) or (service_path is not None and not isinstance(service_path, str)):
        raise BadPDPRequest("input.tenant and input.servicePath must be strings")
    ids = _strings(data.get("ids"), "input.ids")
    patterns = _strings(data.get("idPatterns"), "input.idPatterns")
    types = _strings(data.get("types"), "input.types")
    attrs = frozenset(_strings(data.get("attrs"), "input.attrs")) or None
    parts = urlsplit(resource)
    headers = {"fiware-service": tenant}
    if service_path is not None:
        headers["fiware-servicepath"] = service_path
    described = describe(action, parts.path, parts.query, headers, UNSEEN)
    if described.public or described.unknown:
        return described
    named = [t for t in described.targets if t.id is not None]
    # Wilma's attrs name what a read asks for or a PATCH/POST writes; a DELETE or PUT of
    # the entity's attributes touches them all, whatever it lists.
    takes_attrs = action.upper() in ("GET", "POST", "PATCH")
    if named:  # the path names the entity: Wilma's ids may hold the attribute (its bug)
        targets = [
            Target(t.id, None, t.type, None, attrs) if t.attrs is None and attrs is not None and takes_attrs else t
            for t in named
        ]
    elif ids or patterns or types:
        selections: list[tuple[str | None, str | None]] = [(i, None) for i in ids] + [(None, p) for p in patterns]
        kinds: list[str | None] = list(types) or [None]
        selections = selections or [(None, None)]
        if len(selections) * len(kinds) > MAX_TARGETS:
            raise BadPDPRequest(f"more than {MAX_TARGETS} entity selections")
        targets = [Target(id=i, id_pattern=p, type=t, attrs=attrs) for (i, p), t in itertools.product(selections, kinds)]
    elif attrs is not None and takes_attrs and any(not t.entityless for t in described.targets):
        targets = [Target(t.id, t.id_pattern, t.type, t.type_pattern, attrs, t.entityless) for t in described.targets]
    else:
        targets = list(described.targets)
    return RequestResource(
        actions=described.actions,
        tenant=described.tenant,
        scopes=described.scopes,
        targets=tuple(targets),
        filter_attrs=described.filter_attrs,
        options=described.options,
        route=described.route,
    )


class PDP:
    """The PDP's handlers over one policy source."""

    def __init__(self, source: PolicySource | PolicySet) -> None:
        self.source = source

    async def decide(self, body: Any) -> Answer:
        """``POST /pdp/decide``: (200, the decision) or (400, what is wrong)."""
        try:
            if not isinstance(body, dict):
                raise BadPDPRequest("the body must be a JSON object")
            subject = subject_from_json(body.get("subject"))
            request = resource_from_json(body["resource"]) if "resource" in body else resource_from_request(body)
        except BadPDPRequest as exc:
            return 400, {"error": "BadRequest", "description": str(exc)}
        decision = decide(subject, request, await _current(self.source))
        answer = decision.to_json()
        answer["actions"] = [a for a in ACTIONS if a in request.actions]
        answer["tenant"] = request.tenant
        return 200, answer

    async def open_policy_agent(self, body: Any) -> Answer:
        """``POST /pdp/open_policy_agent``: (200, ``{"allow", "result": {"allow"}}``)."""
        try:
            data = body.get("input", body) if isinstance(body, dict) else None
            if not isinstance(data, dict):
                raise BadPDPRequest("the body must be a JSON object (or {\"input\": {...}})")
            roles = _names(data.get("roles"), "input.roles")
            app, user = data.get("appId", ""), data.get("userId", "")
            if not isinstance(app, str) or not isinstance(user, str):
                raise BadPDPRequest("input.appId and input.userId must be strings")
            organizations = _names(data.get("organizations"), "input.organizations")
            subject = Subject(user, app, frozenset(roles), frozenset(organizations))
            request = opa_resource(data)
        except BadPDPRequest as exc:
            return 400, {"error": "BadRequest", "description": str(exc)}
        decision = decide(subject, request, await _current(self.source))
        allow = opa_allows(decision)
        return 200, {"allow": allow, "result": {"allow": allow}}

    def routes(self, prefix: str = "/pdp") -> list[Route]:
        """Starlette routes for both handlers, to mount in the identity manager's app."""
        return [
            Route(f"{prefix}/decide", _endpoint(self.decide), methods=["POST"]),
            Route(f"{prefix}/open_policy_agent", _endpoint(self.open_policy_agent), methods=["POST"]),
        ]


def opa_allows(decision: Decision) -> bool:
    """What an OPA caller is told: it cannot filter a response, so a projection is a no."""
    return decision.allow and not decision.projected


_JSON: Final = "application/json"


def _endpoint(handler: Callable[[Any], Awaitable[Answer]]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            status, answer = 400, {"error": "ParseError", "description": "the body is not valid JSON"}
        else:
            status, answer = await handler(body)
        return Response(orjson.dumps(answer), status_code=status, media_type=_JSON)

    return endpoint


__all__ = ["PDP", "BadPDPRequest", "PolicySource", "opa_allows", "opa_resource", "resource_from_json", "subject_from_json"]
