"""Token validation for PEPs: ``GET /user``; Keyrock's payload-level PDP: ``POST /pdp/open_policy_agent``.

Reference: ``reference/keyrock/oauth_documentation.md`` "Validate Access Tokens", "Get user
information and roles", "Validate authorization"; ``security-history-orchestration.md`` §1
"Token validation for PEPs" and "Decision logic", §2 (what Wilma sends: ``app_id``,
``action``, ``resource``, ``authorization_service_header``).

``/user`` answers the user object (``userinfo.py``) of a live access token (opaque or
JWT), ``{}`` for a client's own token (client credentials), 401 ``{"error":
"invalid_token"}`` otherwise. With ``action`` and ``resource`` it also decides
(``authorization_decision`` ``Permit``/``Deny``) with ``security.authz.keyrock.decide`` at
the configured level (``-pdpLevel``); at ``payload`` level the request's entity ids,
attribute names and types come as comma-separated ``ids``, ``attrs``, ``types`` (an
extension: Keyrock's own ``/user`` has no way to pass them).

Every answer carries ``X-Policy-Version``: the number that moves whenever roles,
permissions or memberships change, for PEPs that cache decisions.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from security.authz.keyrock import PAYLOAD, decide

from ..http import KeyrockError, json, json_body, query_pairs, service
from . import route_table

log = logging.getLogger("waziup.idm.user")
POLICY_HEADER = "X-Policy-Version"


def _invalid(version: int) -> Response:
    return json({"error": "invalid_token"}, 401, {POLICY_HEADER: str(version), "WWW-Authenticate": 'Bearer error="invalid_token"'})


def _names(raw: str | None) -> list[str]:
    return [part for part in (raw or "").split(",") if part]


async def user(request: Request) -> Response:
    the_service = service(request)
    version = await the_service.store.policy_version()
    headers = {POLICY_HEADER: str(version), "Cache-Control": "no-store"}
    query = dict(query_pairs(request))
    value = query.get("access_token")
    if not value:
        auth = request.headers.get("authorization", "")
        value = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    if not value:
        return json({"error": "invalid_request", "error_description": "access_token missing"}, 400, headers)
    action, resource = query.get("action"), query.get("resource")
    if query.get("authzforce") in ("true", "True", "1") and (action or resource):
        return json({"error": "Cannot handle 2 authentications levels at the same time"}, 400, headers)
    resolved = await the_service.resolve_access(value)
    if resolved is None:
        return _invalid(version)
    app_id = resolved.token.client_id or ""
    asked = query.get("app_id")
    if asked and asked != app_id:
        log.info("token of application %s presented for application %s: refused", app_id, asked)
        return _invalid(version)
    if resolved.user is None:
        return json({}, 200, headers)  # client credentials: no user (oauth_documentation.md, warning)
    held = await the_service.grants_of(resolved.user.id, app_id)
    decision = ""
    if action and resource is not None:
        permissions = await the_service.permissions(app_id, held.all_role_ids())
        verdict = decide(
            [p.as_policy() for p in permissions], action=action, resource=resource,
            tenant=query.get("authorization_service_header"), ids=_names(query.get("ids")),
            attrs=_names(query.get("attrs")), types=_names(query.get("types")), level=the_service.config.pdp_level,
        )
        decision = "Permit" if verdict.allow else "Deny"
        headers["X-Decision-Reason"] = verdict.reason.encode("ascii", "replace").decode()[:500]
    body = await the_service.user_object(resolved.user, app_id, held=held, decision=decision)
    return json(body, 200, headers)


def _strings(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise KeyrockError(400, f"{name} must be a list of strings")
    return value


async def open_policy_agent(request: Request) -> Response:
    """Keyrock's payload-level PDP for Wilma's ``opa`` plug-in: the input (bare or in
    OPA's ``{"input": ...}``) ``{appId, resource, action, roles, tenant, ids, idPatterns,
    attrs, types}``; the answer ``{"allow": bool}``. An id pattern can satisfy no
    ``regex_entity_ids`` (which ids it covers is unknown), so a permission that restricts
    ids never allows a request that names one."""
    try:
        body = await json_body(request)
        data = body.get("input", body)
        if not isinstance(data, dict):
            raise KeyrockError(400, "input must be an object")
        app_id, action, resource = data.get("appId"), data.get("action"), data.get("resource")
        if not isinstance(app_id, str) or not isinstance(action, str) or not isinstance(resource, str):
            raise KeyrockError(400, "appId, action and resource are required strings")
        tenant = data.get("tenant")
        if tenant is not None and not isinstance(tenant, str):
            raise KeyrockError(400, "tenant must be a string")
        roles = _strings(data.get("roles"), "roles")
        ids, patterns = _strings(data.get("ids"), "ids"), _strings(data.get("idPatterns"), "idPatterns")
        attrs, types = _strings(data.get("attrs"), "attrs"), _strings(data.get("types"), "types")
    except KeyrockError as exc:
        return exc.response()
    the_service = service(request)
    permissions = [p.as_policy() for p in await the_service.permissions(app_id, roles)]
    if patterns:
        permissions = [p for p in permissions if not p.get("regex_entity_ids")]
    verdict = decide(permissions, action=action, resource=resource, tenant=tenant or None, ids=ids, attrs=attrs,
                     types=types, level=PAYLOAD)
    version = await the_service.store.policy_version()
    return json({"allow": verdict.allow}, 200, {POLICY_HEADER: str(version),
                                                "X-Decision-Reason": verdict.reason.encode("ascii", "replace").decode()[:500]})


ROUTES = route_table({"/user": {"GET": user}, "/pdp/open_policy_agent": {"POST": open_policy_agent}})
