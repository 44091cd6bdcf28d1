"""Users of the /v1 API: ``/v1/users[/{user_id}]``.

Reference: ``reference/keyrock/apiary.apib`` "Users [/v1/users]", "User [/v1/users/{user_id}]".
Rules (Keyrock's): an admin lists, creates and changes every user; a user reads, changes
and deletes their own account; only an admin grants ``admin`` or disables an account.
Changing a password revokes the user's OAuth tokens and codes (Keyrock keeps them).
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..credentials import hash_password
from ..http import (
    KeyrockError,
    api_caller,
    iso,
    json,
    service,
    text_field,
    wrapped_body,
)
from ..model import ACCESS, CODE, REFRESH, User
from ..store import Conflict
from . import audited, route_table

FORBIDDEN = "User not allowed to perform the action"


def listed(user: User) -> dict[str, Any]:
    """Keyrock's list item, plus ``admin`` (an extension: the WAZIUP API lists users with
    their admin flag, which would otherwise take one more call per user)."""
    return {"id": user.id, "username": user.username, "email": user.email, "enabled": user.enabled, "gravatar": False,
            "date_password": iso(user.date_password), "description": user.description, "website": user.website,
            "admin": user.admin}


def detailed(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "email": user.email, "enabled": user.enabled, "admin": user.admin,
            "image": "default", "gravatar": False, "date_password": iso(user.date_password),
            "description": user.description, "website": user.website}


def valid_email(email: str) -> str:
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in email):
        raise KeyrockError(400, "Invalid email")
    return email.lower()


async def list_users(request: Request) -> Response:
    caller = await api_caller(request)
    if not caller.admin:
        raise KeyrockError(403, FORBIDDEN)
    return json({"users": [listed(u) for u in await service(request).store.list_users()]})


async def create_user(request: Request) -> Response:
    caller = await api_caller(request)
    if not caller.admin:
        raise KeyrockError(403, FORBIDDEN)
    body = await wrapped_body(request, "user")
    username = text_field(body, "username", required=True, limit=64) or ""
    email = valid_email(text_field(body, "email", required=True, limit=254) or "")
    password = text_field(body, "password", required=True) or ""
    the_service = service(request)
    now = the_service.now()
    user = User(str(uuid.uuid4()), username, email, hash_password(password), enabled=True,
                admin=body.get("admin") is True, date_password=now, created_at=now,
                description=text_field(body, "description"), website=text_field(body, "website"))
    try:
        await the_service.store.create_user(user)
    except Conflict:
        raise KeyrockError(409, "Email or username already used") from None
    await audited(request, caller.id, "user.created", target=user.id, details={"admin": user.admin})
    out = {"id": user.id, "image": "default", "gravatar": False, "enabled": True, "admin": user.admin,
           "username": user.username, "email": user.email, "date_password": iso(now)}
    return json({"user": out}, 201)


async def _target(request: Request) -> tuple[User, User]:
    caller = await api_caller(request)
    user = await service(request).store.get_user(request.path_params["user_id"])
    if user is None:
        raise KeyrockError(404, "User not found")
    if caller.id != user.id and not caller.admin:
        raise KeyrockError(403, FORBIDDEN)
    return caller, user


async def read_user(request: Request) -> Response:
    _, user = await _target(request)
    return json({"user": detailed(user)})


async def update_user(request: Request) -> Response:
    caller, user = await _target(request)
    body = await wrapped_body(request, "user")
    the_service = service(request)
    changes: dict[str, Any] = {}
    shown: dict[str, Any] = {}
    for name in ("username", "description", "website"):
        if name in body:
            changes[name] = shown[name] = text_field(body, name, required=name == "username", limit=1024)
    if "email" in body:
        changes["email"] = shown["email"] = valid_email(text_field(body, "email", required=True, limit=254) or "")
    for flag in ("enabled", "admin"):
        if flag in body:
            if not isinstance(body[flag], bool):
                raise KeyrockError(400, f"Parameter {flag} must be a boolean")
            if not caller.admin:
                raise KeyrockError(403, FORBIDDEN)
            changes[flag] = shown[flag] = body[flag]
    password_changed = "password" in body
    if password_changed:
        changes["password_hash"] = hash_password(text_field(body, "password", required=True) or "")
        changes["date_password"] = the_service.now()
    try:
        await the_service.store.save_user(user.replace(**changes))
    except Conflict:
        raise KeyrockError(409, "Email or username already used") from None
    if password_changed or changes.get("enabled") is False:
        await the_service.store.revoke_user_tokens(user.id, kinds=(ACCESS, REFRESH, CODE))
    await _audit_update(request, caller, user, changes)
    return json({"values_updated": shown})


async def _audit_update(request: Request, caller: User, user: User, changes: dict[str, Any]) -> None:
    """``user.updated``: the names of the fields changed (never their values, but the two
    flags that decide access); ``role.assigned``/``role.unassigned`` of ``admin`` too."""
    fields = sorted("password" if name in ("password_hash", "date_password") else name for name in changes)
    flags = {name: changes[name] for name in ("enabled", "admin") if name in changes}
    await audited(request, caller.id, "user.updated", target=user.id,
                  details={"fields": list(dict.fromkeys(fields)), **flags})
    if "admin" in changes and changes["admin"] != user.admin:
        await audited(request, caller.id, "role.assigned" if changes["admin"] else "role.unassigned", target=user.id,
                      details={"holder": "user", "role_id": "admin"})


async def delete_user(request: Request) -> Response:
    caller, user = await _target(request)
    await service(request).store.delete_user(user.id)
    await audited(request, caller.id, "user.deleted", target=user.id)
    return Response(status_code=204)


ROUTES = route_table({
    "/users": {"GET": list_users, "POST": create_user},
    "/users/{user_id}": {"GET": read_user, "PATCH": update_user, "DELETE": delete_user},
})
