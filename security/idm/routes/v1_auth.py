"""The /v1 API's tokens and the policy version: ``/v1/auth/tokens``, ``/v1/policy_version``,
``/v1/service_providers/configs``.

Reference: ``reference/keyrock/apiary.apib`` "Authentication [/v1/auth/tokens]" and
"Service Provider"; ``security-history-orchestration.md`` §1 "Management REST API" and §2
(Wilma logs in here at start-up with ``POST /v3/auth/tokens`` and keeps ``X-Subject-Token``).
``/v1/policy_version`` is ours: ``{"policy_version": N}``, the number that moves whenever a
role, permission, assignment or membership changes (also sent as ``X-Policy-Version`` on
``/user``), for PEPs that cache decisions; it needs no token, like ``/user``'s header.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..credentials import digest
from ..http import (
    KeyrockError,
    api_caller,
    client_address,
    iso,
    json,
    json_body,
    service,
    text_field,
)
from ..model import API
from . import route_table


def user_json(user: object) -> dict[str, object]:
    u = user
    return {"id": u.id, "username": u.username, "email": u.email, "date_password": iso(u.date_password),  # type: ignore[attr-defined]
            "enabled": u.enabled, "admin": u.admin}  # type: ignore[attr-defined]


async def create_token(request: Request) -> Response:
    the_service = service(request)
    body = await json_body(request)
    if "token" in body:
        value = text_field(body, "token", required=True)
        found = await the_service.api_token(value)
        if found is None:
            raise KeyrockError(401, "Invalid token")
        user, methods = found[1], ["token"]
    else:
        name = text_field(body, "name", required=True) or ""
        password = text_field(body, "password", required=True) or ""
        result = await the_service.login(name, password, client_address(request))
        if result.locked:
            seconds = int(result.locked) + 1
            raise KeyrockError(429, f"Account temporarily locked after repeated failed logins: retry in {seconds} s",
                               {"Retry-After": str(seconds)})
        if result.user is None:
            raise KeyrockError(401, "Invalid email or password")
        user, methods = result.user, ["password"]
    value, expires = await the_service.issue_api_token(user)
    return json({"token": {"methods": methods, "expires_at": iso(expires)}}, 201, {"X-Subject-Token": value})


async def _subject(request: Request) -> tuple[object, str]:
    caller = await api_caller(request)
    subject = request.headers.get("x-subject-token", "")
    if not subject:
        raise KeyrockError(400, "Expecting to find X-Subject-token in requests")
    return caller, subject


async def token_info(request: Request) -> Response:
    caller, subject = await _subject(request)
    the_service = service(request)
    token = await the_service.store.get_token(digest(subject))
    if token is None or token.kind != API or token.user_id is None:
        raise KeyrockError(404, "Token not found")
    if token.user_id != caller.id and not caller.admin:  # type: ignore[attr-defined]
        raise KeyrockError(403, "User not allowed to perform the action")
    user = await the_service.store.get_user(token.user_id)
    if user is None:
        raise KeyrockError(404, "Token not found")
    return json({"access_token": subject, "expires": iso(token.expires_at), "valid": token.live(the_service.now()),
                 "User": user_json(user)})


async def delete_token(request: Request) -> Response:
    caller, subject = await _subject(request)
    the_service = service(request)
    token = await the_service.store.get_token(digest(subject))
    if token is None or token.kind != API:
        raise KeyrockError(404, "Token not found")
    if token.user_id != caller.id and not caller.admin:  # type: ignore[attr-defined]
        raise KeyrockError(403, "User not allowed to perform the action")
    await the_service.store.revoke_token(token.hash)
    return Response(status_code=204)


async def policy_version(request: Request) -> Response:
    version = await service(request).store.policy_version()
    return json({"policy_version": version}, headers={"X-Policy-Version": str(version), "Cache-Control": "no-store"})


async def service_provider(request: Request) -> Response:
    await api_caller(request)
    store = service(request).store
    return json({"information": {"totalUsers": len(await store.list_users()),
                                 "totalOrganizations": len(await store.list_organizations()),
                                 "totalApplications": len(await store.list_applications())}})


ROUTES = route_table({
    "/auth/tokens": {"POST": create_token, "GET": token_info, "DELETE": delete_token},
    "/policy_version": {"GET": policy_version},
    "/service_providers/configs": {"GET": service_provider},
})
