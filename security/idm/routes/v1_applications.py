"""Applications of the /v1 API, their roles, permissions and role assignments.

Reference: ``reference/keyrock/apiary.apib``: "Applications", "Application", "Roles",
"Role", "Permissions", "Permission", "Role - Permission Relationships", "Authorized users
in an application", "Roles of User in an Application", "Role - User Relationship",
"Authorized Organizations in an application", "Roles of Organization in an Application",
"Role - Organization Relationship"; ``security-history-orchestration.md`` §1.

Who may do what, as Keyrock decides it from its internal permissions (``model.py``): an
admin does everything; otherwise the caller's roles in the application (own, or through
an organization) give internal permissions: 2 "Manage the application" (change, delete),
3 "Manage roles" (roles, permissions and which role has which), 1 "assign internal roles",
5 "assign public roles", 6 "assign the public roles one holds". Whoever creates an
application gets its ``provider`` role (all six); any role in it lets one read it.

Differences from Keyrock: the client secret is shown once, when the application is
created (it is kept as a hash); ``client_type`` (``confidential``|``public``) and
``jwt_algorithm`` (``HS256`` with ``jwt_secret``, or the identity manager's key) are
extra fields; ``redirect_uri`` may also be a list of URIs.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from ngsi.regex import compile_pattern

from ..credentials import digest, new_token
from ..http import KeyrockError, api_caller, json, service, text_field, wrapped_body
from ..model import (
    GRANT_TYPES,
    ORGANIZATION_ROLES,
    TOKEN_TYPES,
    Application,
    OrganizationRole,
    Permission,
    Role,
    User,
    UserRole,
)
from ..sqlstore import AppItems
from ..store import IdmStore
from . import RouteTable, audited, route_table

FORBIDDEN = "User not allowed to perform the action"
_APP = "/applications/{application_id}"
_BAD_SCHEMES = ("javascript", "data", "vbscript", "file")
_Item = TypeVar("_Item", Role, Permission)


# -- rendering -------------------------------------------------------------------------------


def _csv(values: tuple[str, ...]) -> str:
    return ",".join(values)


def app_json(app: Application, *, secret: str | None = None) -> dict[str, Any]:
    return {
        "id": app.id, "name": app.name, "description": app.description, "secret": secret, "url": app.url,
        "redirect_uri": app.redirect_uris[0] if len(app.redirect_uris) == 1 else list(app.redirect_uris) or None,
        "redirect_sign_out_uri": app.redirect_sign_out_uri, "image": "default", "grant_type": _csv(app.grant_types),
        "response_type": "code" if "authorization_code" in app.grant_types else "",
        "token_types": _csv(app.token_types), "jwt_secret": app.jwt_secret, "jwt_algorithm": app.jwt_algorithm,
        "client_type": app.client_type, "scope": None, "extra": None,
    }


def role_json(role: Role, app_id: str) -> dict[str, Any]:
    return {"id": role.id, "name": role.name, "is_internal": role.is_internal, "oauth_client_id": role.app_id or app_id}


PERMISSION_FIELDS = ("description", "action", "resource", "xml", "is_regex", "authorization_service_header",
                     "use_authorization_service_header", "regex_entity_ids", "regex_attributes", "regex_types", "ngsi")


def permission_json(permission: Permission, app_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": permission.id, "name": permission.name, "is_internal": permission.is_internal}
    out.update({name: getattr(permission, name) for name in PERMISSION_FIELDS})
    out["oauth_client_id"] = permission.app_id or app_id
    return out


# -- checks ----------------------------------------------------------------------------------


async def _application(request: Request) -> tuple[User, Application]:
    caller = await api_caller(request)
    app = await service(request).store.get_application(request.path_params["application_id"])
    if app is None:
        raise KeyrockError(404, "Application not found")
    return caller, app


async def _allowed(request: Request, caller: User, app: Application, *needed: str) -> set[str]:
    """The caller's internal permissions in the application; 403 unless one of ``needed``
    (none given: any role in the application lets one read it)."""
    held = await service(request).internal_permissions(caller, app.id)
    if caller.admin:
        return held
    if needed:
        if not held & set(needed):
            raise KeyrockError(403, FORBIDDEN)
        return held
    grants = await service(request).grants_of(caller.id, app.id)
    if not grants.all_role_ids():
        raise KeyrockError(403, FORBIDDEN)
    return held


async def _app_for(request: Request, *needed: str) -> Application:
    """The path's application, once :func:`_allowed` lets the caller act on it."""
    return (await _caller_app_for(request, *needed))[1]


async def _caller_app_for(request: Request, *needed: str) -> tuple[User, Application]:
    """The caller and the path's application, once :func:`_allowed` lets the caller act on
    it (the caller is the actor of a change's audit event)."""
    caller, app = await _application(request)
    await _allowed(request, caller, app, *needed)
    return caller, app


def _uris(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value] if value is not None else []
    uris = []
    for item in items:
        if not isinstance(item, str) or not item or len(item) > 2048:
            raise KeyrockError(400, "redirect_uri must be a URI or a list of URIs")
        parts = urlsplit(item)
        if not parts.scheme or parts.scheme.lower() in _BAD_SCHEMES or parts.fragment or any(c.isspace() for c in item):
            raise KeyrockError(400, f"redirect_uri {item!r} is not an absolute URI without fragment")
        uris.append(item)
    return tuple(uris)


def _choices(value: Any, allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise KeyrockError(400, f"{name} must be a list of strings")
    for item in items:
        if item.strip() not in allowed:
            raise KeyrockError(400, f"{name}: unknown value {item!r} (known: {', '.join(allowed)})")
    return tuple(dict.fromkeys(i.strip() for i in items))


def _app_fields(request: Request, body: dict[str, Any], app: Application) -> tuple[Application, dict[str, Any]]:
    """The application with the body's changes, and the changes as Keyrock shows them."""
    changes: dict[str, Any] = {}
    shown: dict[str, Any] = {}
    for name in ("name", "description", "url", "redirect_sign_out_uri"):
        if name in body:
            changes[name] = shown[name] = text_field(body, name, required=name == "name", limit=2048) or ""
    if "redirect_uri" in body:
        changes["redirect_uris"] = _uris(body["redirect_uri"])
        shown["redirect_uri"] = body["redirect_uri"]
    if "grant_type" in body:
        changes["grant_types"] = _choices(body["grant_type"], GRANT_TYPES, "grant_type")
        shown["grant_type"] = _csv(changes["grant_types"])
    if "token_types" in body:
        types = _choices(body["token_types"], TOKEN_TYPES, "token_types")
        changes["token_types"] = ("bearer", *[t for t in types if t != "bearer"])
        shown["token_types"] = _csv(changes["token_types"])
    if "client_type" in body:
        if body["client_type"] not in ("confidential", "public"):
            raise KeyrockError(400, "client_type is confidential or public")
        changes["client_type"] = shown["client_type"] = body["client_type"]
    if "jwt_algorithm" in body:
        allowed = ("HS256", request.app.state.config.signing_algorithm)
        if body["jwt_algorithm"] not in allowed:
            raise KeyrockError(400, f"jwt_algorithm is one of {', '.join(allowed)}")
        changes["jwt_algorithm"] = shown["jwt_algorithm"] = body["jwt_algorithm"]
    updated = app.replace(**changes)
    wants_jwt = "jwt" in updated.token_types
    if wants_jwt and not updated.jwt_secret:
        updated = updated.replace(jwt_secret=secrets.token_hex(16))
        shown["jwt_secret"] = updated.jwt_secret
    elif not wants_jwt and updated.jwt_secret:
        updated = updated.replace(jwt_secret=None)
        shown["jwt_secret"] = None
    if updated.public and "client_credentials" in updated.grant_types:
        raise KeyrockError(400, "a public client cannot use client_credentials")
    return updated, shown


# -- applications ----------------------------------------------------------------------------


async def list_applications(request: Request) -> Response:
    caller = await api_caller(request)
    the_service = service(request)
    apps = await the_service.store.list_applications()
    if not caller.admin:
        mine = []
        for app in apps:
            if (await the_service.grants_of(caller.id, app.id)).all_role_ids():
                mine.append(app)
        apps = mine
    out = []
    for app in apps:
        item = app_json(app)
        for hidden in ("secret", "jwt_secret", "scope", "extra"):
            item.pop(hidden)
        out.append(item)
    return json({"applications": out})


async def create_application(request: Request) -> Response:
    caller = await api_caller(request)
    body = await wrapped_body(request, "application")
    text_field(body, "name", required=True)
    the_service = service(request)
    secret = new_token()
    blank = Application(str(uuid.uuid4()), "", digest(secret), grant_types=("authorization_code",),
                        created_at=the_service.now())
    app, _ = _app_fields(request, body, blank)
    if "authorization_code" in app.grant_types and not app.redirect_uris:
        raise KeyrockError(400, "Missing parameter redirect_uri in body")
    await the_service.store.create_application(app, caller.id)
    await audited(request, caller.id, "application.created", target=app.id, details={"name": app.name})
    return json({"application": app_json(app, secret=None if app.public else secret)}, 201)


async def read_application(request: Request) -> Response:
    caller, app = await _application(request)
    held = await _allowed(request, caller, app)
    out = app_json(app)
    if not (caller.admin or "2" in held):
        out["jwt_secret"] = None
    return json({"application": out})


async def update_application(request: Request) -> Response:
    caller, app = await _caller_app_for(request, "2")
    updated, shown = _app_fields(request, await wrapped_body(request, "application"), app)
    await service(request).store.save_application(updated)
    await audited(request, caller.id, "application.updated", target=app.id, details={"fields": sorted(shown)})
    return json({"values_updated": shown})


async def delete_application(request: Request) -> Response:
    caller, app = await _caller_app_for(request, "2")
    await service(request).store.delete_application(app.id)
    await audited(request, caller.id, "application.deleted", target=app.id, details={"name": app.name})
    return Response(status_code=204)


# -- roles and permissions -------------------------------------------------------------------


def _role_fields(body: dict[str, Any], role: Role) -> tuple[Role, dict[str, Any]]:
    name = text_field(body, "name", required=True, limit=256) or ""
    return role.replace(name=name), {"name": name}


def _pattern(body: dict[str, Any], name: str) -> str | None:
    value = text_field(body, name, limit=1024)
    if value and compile_pattern(value) is None:
        raise KeyrockError(400, f"{name}: {value!r} is not a valid regular expression")
    return value or None


def _permission_fields(body: dict[str, Any], permission: Permission) -> tuple[Permission, dict[str, Any]]:
    changes: dict[str, Any] = {}
    for name in ("name", "description", "action", "resource", "xml", "authorization_service_header"):
        if name in body:
            changes[name] = text_field(body, name, required=name == "name", limit=4096)
    for name in ("is_regex", "use_authorization_service_header"):
        if name in body:
            if not isinstance(body[name], bool):
                raise KeyrockError(400, f"Parameter {name} must be a boolean")
            changes[name] = body[name]
    for name in ("regex_entity_ids", "regex_attributes", "regex_types"):
        if name in body:
            changes[name] = _pattern(body, name)
    if "ngsi" in body:
        changes["ngsi"] = body["ngsi"]
    updated = permission.replace(**changes)
    if updated.action is not None:
        action = updated.action.strip().upper()
        if not action or not action.isalpha() or len(action) > 16:
            raise KeyrockError(400, "action must be an HTTP verb")
        updated = updated.replace(action=action)
    if not updated.xml and (not updated.action or updated.resource is None):
        raise KeyrockError(400, "Missing parameters action and resource (or xml) in body")
    if updated.is_regex and updated.resource and compile_pattern("(?i)" + updated.resource) is None:
        raise KeyrockError(400, f"resource {updated.resource!r} is not a valid regular expression")
    return updated, changes


@dataclass(frozen=True)
class _Kind(Generic[_Item]):
    """What differs between an application's roles and its permissions: Keyrock's API lists,
    creates, reads, changes and deletes both alike, so one set of handlers serves both."""

    name: str  # "role" | "permission": the body's and the answer's key, the path's ``{name}_id``
    title: str  # "Role" | "Permission", as 404 names it
    name_limit: int  # the longest name a new item may have
    new: Callable[[str, str], _Item]  # a blank item, of (id, app_id)
    fields: Callable[[dict[str, Any], _Item], tuple[_Item, dict[str, Any]]]  # the body applied, and what it changed
    listed: Callable[[_Item, str], dict[str, Any]]  # an item as the list shows it, of (item, app_id)
    shown: Callable[[_Item, str], dict[str, Any]]  # an item as the other answers show it
    items: Callable[[IdmStore], AppItems[_Item]]  # the store's items of this kind


_ROLES = _Kind(
    name="role", title="Role", name_limit=256, new=lambda item_id, app_id: Role(item_id, "", app_id), fields=_role_fields,
    listed=lambda role, _: {"id": role.id, "name": role.name}, shown=role_json, items=lambda store: store.roles,
)
_PERMISSIONS = _Kind(
    name="permission", title="Permission", name_limit=1024, new=lambda item_id, app_id: Permission(item_id, "", app_id),
    fields=_permission_fields, listed=permission_json, shown=permission_json, items=lambda store: store.permissions,
)


async def _item(request: Request, app: Application, kind: _Kind[_Item]) -> _Item:
    """The path's role or permission of the application (an internal one too), or 404."""
    found = await kind.items(service(request).store).get(app.id, request.path_params[f"{kind.name}_id"])
    if found is None:
        raise KeyrockError(404, f"{kind.title} not found")
    return found


async def _changeable_item(request: Request, kind: _Kind[_Item], doing: str) -> tuple[User, Application, _Item]:
    """The caller, the application and the path's item, for a caller who manages roles (3),
    unless the item is internal: those are Keyrock's seeded ones, shared by every
    application, and nobody changes or deletes them."""
    caller, app = await _caller_app_for(request, "3")
    item = await _item(request, app, kind)
    if item.is_internal:
        raise KeyrockError(403, f"Internal {kind.name}s cannot be {doing}")
    return caller, app, item


async def _audit_item(request: Request, caller: User, kind: _Kind[_Item], item: _Item, done: str) -> None:
    """``role.created``, ``permission.deleted``...: what decides PEP answers changed."""
    await audited(request, caller.id, f"{kind.name}.{done}", target=item.id,
                  details={"app_id": item.app_id, "name": item.name})


async def list_items(kind: _Kind[_Item], request: Request) -> Response:
    app = await _app_for(request)
    found = await kind.items(service(request).store).in_app(app.id)
    return json({f"{kind.name}s": [kind.listed(item, app.id) for item in found]})


async def create_item(kind: _Kind[_Item], request: Request) -> Response:
    caller, app = await _caller_app_for(request, "3")
    body = await wrapped_body(request, kind.name)
    text_field(body, "name", required=True, limit=kind.name_limit)
    item, _ = kind.fields(body, kind.new(str(uuid.uuid4()), app.id))
    await kind.items(service(request).store).create(item)
    await _audit_item(request, caller, kind, item, "created")
    return json({kind.name: kind.shown(item, app.id)}, 201)


async def read_item(kind: _Kind[_Item], request: Request) -> Response:
    app = await _app_for(request)
    return json({kind.name: kind.shown(await _item(request, app, kind), app.id)})


async def update_item(kind: _Kind[_Item], request: Request) -> Response:
    caller, _, item = await _changeable_item(request, kind, "changed")
    updated, changes = kind.fields(await wrapped_body(request, kind.name), item)
    await kind.items(service(request).store).save(updated)
    await _audit_item(request, caller, kind, updated, "updated")
    return json({"values_updated": changes})


async def delete_item(kind: _Kind[_Item], request: Request) -> Response:
    caller, app, item = await _changeable_item(request, kind, "deleted")
    await kind.items(service(request).store).delete(app.id, item.id)
    await _audit_item(request, caller, kind, item, "deleted")
    return Response(status_code=204)


def _item_routes(kind: _Kind[Any]) -> RouteTable:
    """``/applications/{application_id}/roles[/{role_id}]``, or the same of permissions."""
    items = f"{_APP}/{kind.name}s"
    return {
        items: {"GET": partial(list_items, kind), "POST": partial(create_item, kind)},
        f"{items}/{{{kind.name}_id}}": {
            "GET": partial(read_item, kind), "PATCH": partial(update_item, kind), "DELETE": partial(delete_item, kind),
        },
    }


# -- role <-> permission ---------------------------------------------------------------------


async def role_permissions(request: Request) -> Response:
    app = await _app_for(request)
    role = await _item(request, app, _ROLES)
    found = await service(request).store.permissions_of_roles([role.id])
    out = []
    for p in found:
        item = permission_json(p, app.id)
        item.pop("oauth_client_id")
        out.append(item)
    return json({"role_permission_assignments": out})


async def _role_and_permission(request: Request) -> tuple[User, Role, Permission]:
    caller, app = await _caller_app_for(request, "3")
    role, permission = await _item(request, app, _ROLES), await _item(request, app, _PERMISSIONS)
    if role.is_internal or permission.is_internal:
        raise KeyrockError(403, "Internal roles and permissions cannot be reassigned")
    return caller, role, permission


async def _audit_role_permission(request: Request, caller: User, role: Role, permission: Permission,
                                 done: str) -> None:
    await audited(request, caller.id, f"permission.{done}", target=permission.id,
                  details={"app_id": permission.app_id, "role_id": role.id})


async def assign_permission(request: Request) -> Response:
    caller, role, permission = await _role_and_permission(request)
    await service(request).store.put_role_permission(role.id, permission.id)
    await _audit_role_permission(request, caller, role, permission, "assigned")
    return json({"role_permission_assignments": {"role_id": role.id, "permission_id": permission.id}}, 201)


async def remove_permission(request: Request) -> Response:
    caller, role, permission = await _role_and_permission(request)
    if not await service(request).store.delete_role_permission(role.id, permission.id):
        raise KeyrockError(404, "The role does not have this permission")
    await _audit_role_permission(request, caller, role, permission, "unassigned")
    return Response(status_code=204)


# -- role assignments to users and organizations ----------------------------------------------


async def _may_assign(request: Request, caller: User, app: Application, role: Role) -> None:
    """Keyrock's rule: internal roles need permission 1; other roles 5, or 6 for a role the caller holds."""
    held = await service(request).internal_permissions(caller, app.id)
    if role.is_internal:
        if "1" not in held:
            raise KeyrockError(403, FORBIDDEN)
        return
    if "5" in held:
        return
    if "6" in held and role.id in (await service(request).grants_of(caller.id, app.id)).all_role_ids():
        return
    raise KeyrockError(403, FORBIDDEN)


# The path parameters that name who holds a role: what 404 says when it is nobody, how to find them.
_HOLDERS: dict[str, tuple[str, Callable[[IdmStore, str], Awaitable[object | None]]]] = {
    "user_id": ("User not found", lambda store, user_id: store.get_user(user_id)),
    "organization_id": ("Organization not found", lambda store, org_id: store.get_organization(org_id)),
}


async def _holder_exists(request: Request, param: str) -> None:
    """404 unless the user or organization that the path parameter ``param`` names (if the
    path has it) exists."""
    holder_id = request.path_params.get(param)
    if holder_id is None:
        return
    missing, find = _HOLDERS[param]
    if await find(service(request).store, holder_id) is None:
        raise KeyrockError(404, missing)


async def user_assignments(request: Request) -> Response:
    app = await _app_for(request)
    await _holder_exists(request, "user_id")
    found = await service(request).store.user_roles(app_id=app.id, user_id=request.path_params.get("user_id"))
    return json({"role_user_assignments": [{"user_id": a.user_id, "role_id": a.role_id} for a in found]})


async def _user_role(request: Request) -> tuple[User, Application, UserRole]:
    caller, app = await _application(request)
    role = await _item(request, app, _ROLES)
    await _holder_exists(request, "user_id")
    await _may_assign(request, caller, app, role)
    return caller, app, UserRole(app.id, request.path_params["user_id"], role.id)


async def _audit_assignment(request: Request, caller: User, done: str, holder: str, holder_id: str, app_id: str,
                            role_id: str, **more: str) -> None:
    """``role.assigned`` / ``role.unassigned``: to whom (a user or an organization) is the target."""
    await audited(request, caller.id, f"role.{done}", target=holder_id,
                  details={"holder": holder, "app_id": app_id, "role_id": role_id, **more})


async def assign_user_role(request: Request) -> Response:
    caller, app, assignment = await _user_role(request)
    await service(request).store.put_user_role(assignment)
    await _audit_assignment(request, caller, "assigned", "user", assignment.user_id, app.id, assignment.role_id)
    return json({"role_user_assignments": {"role_id": assignment.role_id, "user_id": assignment.user_id,
                                           "oauth_client_id": app.id}}, 201)


async def remove_user_role(request: Request) -> Response:
    caller, app, assignment = await _user_role(request)
    if not await service(request).store.delete_user_role(assignment):
        raise KeyrockError(404, "The user does not have this role")
    await _audit_assignment(request, caller, "unassigned", "user", assignment.user_id, app.id, assignment.role_id)
    return Response(status_code=204)


async def organization_assignments(request: Request) -> Response:
    app = await _app_for(request)
    await _holder_exists(request, "organization_id")
    org_id = request.path_params.get("organization_id")
    found = await service(request).store.organization_roles(app_id=app.id, organization_id=org_id)
    if org_id is not None:
        out = [{"organization_id": a.organization_id, "role_id": a.role_id} for a in found]
    else:
        out = [{"organization_id": a.organization_id, "role_organization": a.organization_role, "role_id": a.role_id}
               for a in found]
    return json({"role_organization_assignments": out})


async def _organization_role(request: Request) -> tuple[User, Application, OrganizationRole]:
    caller, app = await _application(request)
    role = await _item(request, app, _ROLES)
    await _holder_exists(request, "organization_id")
    org_id = request.path_params["organization_id"]
    org_role = request.path_params["organization_role_id"]
    if org_role not in ORGANIZATION_ROLES:
        raise KeyrockError(404, "Organization role not found: it is owner or member")
    await _may_assign(request, caller, app, role)
    return caller, app, OrganizationRole(app.id, org_id, role.id, org_role)


async def assign_organization_role(request: Request) -> Response:
    caller, app, a = await _organization_role(request)
    await service(request).store.put_organization_role(a)
    await _audit_assignment(request, caller, "assigned", "organization", a.organization_id, app.id, a.role_id,
                            organization_role=a.organization_role)
    return json({"role_organization_assignments": {"role_id": a.role_id, "organization_id": a.organization_id,
                                                   "oauth_client_id": app.id, "role_organization": a.organization_role}},
                201)


async def remove_organization_role(request: Request) -> Response:
    caller, app, a = await _organization_role(request)
    if not await service(request).store.delete_organization_role(a):
        raise KeyrockError(404, "The organization does not have this role")
    await _audit_assignment(request, caller, "unassigned", "organization", a.organization_id, app.id, a.role_id,
                            organization_role=a.organization_role)
    return Response(status_code=204)


_ORG_ROLE = _APP + "/organizations/{organization_id}/roles/{role_id}/organization_roles/{organization_role_id}"

ROUTES = route_table({
    "/applications": {"GET": list_applications, "POST": create_application},
    _APP: {"GET": read_application, "PATCH": update_application, "DELETE": delete_application},
    **_item_routes(_ROLES),
    **_item_routes(_PERMISSIONS),
    _APP + "/roles/{role_id}/permissions": {"GET": role_permissions},
    _APP + "/roles/{role_id}/permissions/{permission_id}": {
        "PUT": assign_permission, "POST": assign_permission, "DELETE": remove_permission,
    },
    _APP + "/users": {"GET": user_assignments},
    _APP + "/users/{user_id}/roles": {"GET": user_assignments},
    _APP + "/users/{user_id}/roles/{role_id}": {"PUT": assign_user_role, "POST": assign_user_role, "DELETE": remove_user_role},
    _APP + "/organizations": {"GET": organization_assignments},
    _APP + "/organizations/{organization_id}/roles": {"GET": organization_assignments},
    _ORG_ROLE: {"PUT": assign_organization_role, "POST": assign_organization_role, "DELETE": remove_organization_role},
})
