"""Organizations of the /v1 API and their members: ``/v1/organizations[/{organization_id}]``,
``.../users``, ``.../users/{user_id}/organization_roles[/{owner|member}]``.

Reference: ``reference/keyrock/apiary.apib`` "Organizations", "Organization", "Members of an
organization", "User - Organization Relationships", "User - Organization Relationship".
Rules (Keyrock's): whoever creates an organization owns it; its owners (and admins)
change it, delete it and manage its members; its members (and admins) read it. The list
is the caller's organizations, each with the caller's role.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..http import KeyrockError, api_caller, json, service, text_field, wrapped_body
from ..model import ORGANIZATION_ROLES, Membership, Organization, User
from . import audited, route_table

FORBIDDEN = "User not allowed to perform the action"


def shown(org: Organization) -> dict[str, Any]:
    return {"id": org.id, "name": org.name, "description": org.description, "website": org.website, "image": "default"}


async def _organization(request: Request, *, owner: bool) -> tuple[User, Organization]:
    """The organization of the path, if the caller may read it (or, ``owner``, manage it)."""
    caller = await api_caller(request)
    store = service(request).store
    org = await store.get_organization(request.path_params["organization_id"])
    if org is None:
        raise KeyrockError(404, "Organization not found")
    if not caller.admin:
        roles = {m.role for m in await store.memberships(organization_id=org.id, user_id=caller.id)}
        if ("owner" not in roles) if owner else not roles:
            raise KeyrockError(403, FORBIDDEN)
    return caller, org


async def list_organizations(request: Request) -> Response:
    caller = await api_caller(request)
    store = service(request).store
    out = []
    for m in await store.memberships(user_id=caller.id):
        org = await store.get_organization(m.organization_id)
        if org is not None:
            out.append({"role": m.role, "Organization": shown(org)})
    return json({"organizations": out})


async def create_organization(request: Request) -> Response:
    caller = await api_caller(request)
    body = await wrapped_body(request, "organization")
    the_service = service(request)
    org = Organization(str(uuid.uuid4()), text_field(body, "name", required=True, limit=256) or "",
                       text_field(body, "description"), text_field(body, "website"), the_service.now())
    await the_service.store.create_organization(org, caller.id)
    await audited(request, caller.id, "organization.created", target=org.id, details={"name": org.name})
    return json({"organization": {"id": org.id, "image": "default", "name": org.name, "description": org.description}}, 201)


async def read_organization(request: Request) -> Response:
    _, org = await _organization(request, owner=False)
    return json({"organization": shown(org)})


async def update_organization(request: Request) -> Response:
    _, org = await _organization(request, owner=True)
    body = await wrapped_body(request, "organization")
    changes = {}
    for name in ("name", "description", "website"):
        if name in body:
            changes[name] = text_field(body, name, required=name == "name")
    await service(request).store.save_organization(org.replace(**changes))
    return json({"values_updated": changes})


async def delete_organization(request: Request) -> Response:
    caller, org = await _organization(request, owner=True)
    await service(request).store.delete_organization(org.id)
    await audited(request, caller.id, "organization.deleted", target=org.id, details={"name": org.name})
    return Response(status_code=204)


async def members(request: Request) -> Response:
    _, org = await _organization(request, owner=False)
    found = await service(request).store.memberships(organization_id=org.id)
    return json({"organization_users": [{"user_id": m.user_id, "organization_id": m.organization_id, "role": m.role}
                                        for m in found]})


async def _member_user(request: Request) -> User:
    user = await service(request).store.get_user(request.path_params["user_id"])
    if user is None:
        raise KeyrockError(404, "User not found")
    return user


async def member(request: Request) -> Response:
    _, org = await _organization(request, owner=False)
    user = await _member_user(request)
    found = await service(request).store.memberships(organization_id=org.id, user_id=user.id)
    if not found:
        raise KeyrockError(404, "User is not a member of the organization")
    best = next((m for m in found if m.role == "owner"), found[0])
    return json({"organization_user": {"user_id": user.id, "organization_id": org.id, "role": best.role}})


def _organization_role(request: Request) -> str:
    role = request.path_params["organization_role_id"]
    if role not in ORGANIZATION_ROLES:
        raise KeyrockError(404, "Organization role not found: it is owner or member")
    return role


async def _audit_membership(request: Request, caller: User, done: str, org: Organization, user: User, role: str) -> None:
    """A membership is a role in the organization (owner, member): ``role.assigned`` or
    ``role.unassigned`` to the user, with the organization (no application) in details."""
    await audited(request, caller.id, f"role.{done}", target=user.id,
                  details={"holder": "user", "organization_id": org.id, "organization_role": role})


async def add_member(request: Request) -> Response:
    caller, org = await _organization(request, owner=True)
    role = _organization_role(request)
    user = await _member_user(request)
    await service(request).store.put_membership(Membership(org.id, user.id, role))
    await _audit_membership(request, caller, "assigned", org, user, role)
    return json({"user_organization_assignments": {"role": role, "user_id": user.id, "organization_id": org.id}}, 201)


async def remove_member(request: Request) -> Response:
    caller, org = await _organization(request, owner=True)
    role = _organization_role(request)
    user = await _member_user(request)
    if not await service(request).store.delete_membership(org.id, user.id, role):
        raise KeyrockError(404, "User is not in the organization with this role")
    await _audit_membership(request, caller, "unassigned", org, user, role)
    return Response(status_code=204)


_ORGANIZATION = "/organizations/{organization_id}"

ROUTES = route_table({
    "/organizations": {"GET": list_organizations, "POST": create_organization},
    _ORGANIZATION: {"GET": read_organization, "PATCH": update_organization, "DELETE": delete_organization},
    _ORGANIZATION + "/users": {"GET": members},
    _ORGANIZATION + "/users/{user_id}/organization_roles": {"GET": member},
    _ORGANIZATION + "/users/{user_id}/organization_roles/{organization_role_id}": {"PUT": add_member, "DELETE": remove_member},
})
