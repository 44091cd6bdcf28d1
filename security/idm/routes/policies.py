"""NGSI-aware policies for PEPs: ``GET /v1/ngsi_policies`` exports them, ``POST
/pdp/ngsi/decide`` and ``POST /pdp/ngsi/open_policy_agent`` decide with them
(``security.authz.pdp``; docs/authorization.md).

**Where the policies live.** In the ``ngsi`` field of a Keyrock permission (``model.py``
``Permission.ngsi``), not in a table of their own: a permission already reaches users the
way an NGSI grant must (through the roles it is assigned to, own or an organization's),
already moves the policy version when it changes, and is already managed with Keyrock's
API (``POST /v1/applications/{id}/permissions``; Keyrock requires ``action`` and
``resource`` beside it: give a verb no request uses, e.g. ``"action": "NGSI", "resource":
"ngsi"``, so that the permission grants nothing at Keyrock's own levels). The field holds
what ``security.authz.policy.parse_policy_set`` reads: one policy, a list, or ``{"policies",
"tenantBindings"}``. When exported:

* a policy's ``subject.roles`` becomes the ids of the roles the permission is assigned to
  (whatever the document says: Keyrock's role links decide who holds a permission), and
  ``subject.apps`` the permission's application (role ids are unique, so a policy of one
  application never matches another's token; ``apps`` says so twice). A permission
  assigned to no role grants nothing and is left out. Other subject fields
  (``organizations``, ``users``) narrow it further;
* its ``id`` is the document's (else the permission's), made unique with the
  permission id when two collide;
* ``tenantBindings`` of every permission of the application count, assigned or not (they
  only close tenants); the first binding of a tenant wins, in creation order. A document
  that does not validate is skipped and listed in ``skipped`` (with the reason), but its
  bindings are still taken when they are strings: skipping a grant fails closed,
  skipping a binding would open a tenant.

**Who may read them.** A PEP, logged in at ``/v1/auth/tokens`` (or ``/v3``, as Wilma
does) with ``X-Auth-Token``: with ``?app_id=A`` the policies and bindings of application
``A``, for an admin or a user who manages ``A`` (Keyrock's internal permission 2,
"Manage the application", e.g. its provider); without, every application's, for admins
only. The PDP routes take the same ``?app_id`` and the same rule, and decide against that
set. 401 and 403 in Keyrock's shape.

The export is built once per policy version and application, and carries
``X-Policy-Version`` (and ``policy_version`` in the body): a PEP caches it until the
version moves.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from security.authz.pdp import PDP
from security.authz.policy import PolicyError, PolicySet, parse_policy, parse_policy_set, policy_json

from ..http import KeyrockError, api_caller, json, query_pairs, service
from ..model import Permission
from ..service import IdentityService
from .user import POLICY_HEADER

log = logging.getLogger("waziup.idm.policies")

FORBIDDEN = "User not allowed to perform the action"
MANAGE_APPLICATION = "2"  # Keyrock's internal permission "Manage the application"


@dataclass(frozen=True, slots=True)
class Held:
    """A permission with an NGSI document, and the ids of the roles it is assigned to."""

    permission: Permission
    role_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Export:
    """What ``/v1/ngsi_policies`` answers for one application (or all) at one version."""

    version: int
    document: dict[str, Any]
    policy_set: PolicySet
    skipped: tuple[dict[str, str], ...]

    def body(self) -> dict[str, Any]:
        return {"policy_version": self.version, **self.document, "skipped": list(self.skipped)}


def _items(doc: Any) -> tuple[list[Any], Any]:
    """(policies, bindings) of one ``ngsi`` value, whatever its accepted shape."""
    if isinstance(doc, dict) and "policies" in doc:
        items = doc.get("policies")
        return (items if isinstance(items, list) else [items]), doc.get("tenantBindings")
    return (doc if isinstance(doc, list) else [doc]), None


def policy_document(held: Iterable[Held]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The policy set JSON (``{"policies", "tenantBindings"}``) the permissions make, and
    what was skipped and why (pure; see the module docstring)."""
    policies: list[dict[str, Any]] = []
    bindings: dict[str, str] = {}
    skipped: list[dict[str, str]] = []
    used: set[str] = set()
    for item in held:
        permission = item.permission
        items, raw_bindings = _items(permission.ngsi)
        if isinstance(raw_bindings, dict):
            for tenant, organization in raw_bindings.items():
                if not isinstance(tenant, str) or not isinstance(organization, str) or not organization:
                    skipped.append({"permission": permission.id, "reason": f"tenantBindings/{tenant}: not a string"})
                    continue
                known = bindings.setdefault(tenant.lower(), organization)
                if known != organization:
                    skipped.append({"permission": permission.id,
                                    "reason": f"tenantBindings/{tenant}: already bound to {known}"})
        elif raw_bindings is not None:
            skipped.append({"permission": permission.id, "reason": "tenantBindings: not an object"})
        for index, doc in enumerate(items):
            if not isinstance(doc, dict):
                skipped.append({"permission": permission.id, "reason": f"policies/{index}: not an object"})
                continue
            if not item.role_ids:
                continue  # assigned to no role: grants nothing
            subject = doc.get("subject")
            subject = dict(subject) if isinstance(subject, dict) else {}
            subject["roles"] = sorted(set(item.role_ids))
            subject["apps"] = [permission.app_id]
            own = doc.get("id")
            policy_id = own if isinstance(own, str) and own else permission.id
            if policy_id in used:
                policy_id = f"{permission.id}/{policy_id}"
            while policy_id in used:
                policy_id += f"#{index}"
            candidate = {**doc, "id": policy_id, "subject": subject}
            try:
                parsed = parse_policy(candidate)
            except PolicyError as exc:
                skipped.append({"permission": permission.id, "reason": f"policies/{index}: {exc}"})
                continue
            used.add(policy_id)
            policies.append(policy_json(parsed))
    return {"policies": policies, "tenantBindings": bindings}, skipped


async def _held(the_service: IdentityService, app_id: str) -> list[Held]:
    store = the_service.store
    permissions = [p for p in await store.permissions.in_app(app_id) if p.ngsi is not None and not p.is_internal]
    if not permissions:
        return []
    links: dict[str, list[str]] = {}
    for role in await store.roles.in_app(app_id):
        if role.is_internal:
            continue
        for permission in await store.permissions_of_roles([role.id]):
            links.setdefault(permission.id, []).append(role.id)
    return [Held(p, tuple(links.get(p.id, ()))) for p in permissions if p.app_id == app_id]


async def export(the_service: IdentityService, app_id: str | None, cache: dict[str, Export]) -> Export:
    """The export for one application (None: all), from ``cache`` while the version holds.

    The version is read before the data: what is exported is at least that recent, so a
    PEP that keeps it until the number moves never keeps it past a change."""
    version = await the_service.store.policy_version()
    key = app_id or ""
    found = cache.get(key)
    if found is not None and found.version == version:
        return found
    if app_id is not None:
        held = await _held(the_service, app_id)
    else:
        held = [h for app in await the_service.store.list_applications() for h in await _held(the_service, app.id)]
    document, skipped = policy_document(held)
    for problem in skipped:
        log.warning("NGSI policy of permission %s skipped: %s", problem["permission"], problem["reason"])
    made = Export(version, document, parse_policy_set(document), tuple(skipped))
    if len(cache) > 1024:
        cache.clear()
    cache[key] = made
    return made


def _cache(request: Request) -> dict[str, Export]:
    state = request.app.state
    cache: dict[str, Export] | None = getattr(state, "ngsi_policy_cache", None)
    if cache is None:
        cache = state.ngsi_policy_cache = {}
    return cache


async def authorized_export(request: Request) -> Export:
    """The caller's export (``?app_id``), or KeyrockError 401/403/404."""
    caller = await api_caller(request)
    the_service = service(request)
    app_id = dict(query_pairs(request)).get("app_id") or None
    if app_id is None:
        if not caller.admin:
            raise KeyrockError(403, FORBIDDEN)
    else:
        if await the_service.store.get_application(app_id) is None:
            raise KeyrockError(404, "Application not found")
        if not caller.admin and MANAGE_APPLICATION not in await the_service.internal_permissions(caller, app_id):
            raise KeyrockError(403, FORBIDDEN)
    return await export(the_service, app_id, _cache(request))


async def ngsi_policies(request: Request) -> Response:
    found = await authorized_export(request)
    return json(found.body(), headers={POLICY_HEADER: str(found.version), "Cache-Control": "no-store"})


# -- the PDP, on the caller's policies -----------------------------------------------------------

_CURRENT: ContextVar[PolicySet] = ContextVar("ngsi_policy_set")
_PDP = PDP(lambda: _CURRENT.get())


def _scoped(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """The PDP endpoint, for authenticated PEPs, deciding against the caller's export."""

    async def scoped(request: Request) -> Response:
        found = await authorized_export(request)
        token = _CURRENT.set(found.policy_set)
        try:
            response = await endpoint(request)
        finally:
            _CURRENT.reset(token)
        response.headers[POLICY_HEADER] = str(found.version)
        return response

    return scoped


def _pdp_routes() -> list[Route]:
    routes = []
    for route in _PDP.routes("/pdp/ngsi"):
        routes.append(Route(route.path, _scoped(route.endpoint), methods=sorted((route.methods or set()) - {"HEAD"})))
    return routes


ROUTES = [Route("/v1/ngsi_policies", ngsi_policies, methods=["GET"]), *_pdp_routes()]

