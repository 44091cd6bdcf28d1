"""Keyrock's user object, the body of ``GET /user`` and the payload of its JWTs (pure).

Shape and key order as ``reference/keyrock/oauth_documentation.md`` "Get user information
and roles" shows it (and §1 of ``security-history-orchestration.md``)::

    {"organizations": [{"id", "name", "description", "website", "roles": [{"id", "name"}]}],
     "displayName", "roles": [{"id", "name"}], "app_id", "trusted_apps": [], "isGravatarEnabled",
     "email", "id", "authorization_decision": "" | "Permit" | "Deny", "app_azf_domain", "username"}

``roles`` are the user's own roles in the application; ``organizations`` the user's
organizations that hold roles in it (for the user's role in the organization: a role
given to an organization's members reaches its members, one given to its owners its
owners), each with those roles. Internal roles (provider, purchaser) administer the
identity manager itself and are not listed, as in Keyrock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .model import Membership, Organization, OrganizationRole, Role, User, UserRole


@dataclass(frozen=True)
class Grants:
    """What a user holds in one application: own role ids, and role ids per organization."""

    role_ids: tuple[str, ...]
    organizations: tuple[tuple[str, tuple[str, ...]], ...]

    def all_role_ids(self) -> list[str]:
        seen: dict[str, None] = dict.fromkeys(self.role_ids)
        for _, ids in self.organizations:
            seen.update(dict.fromkeys(ids))
        return list(seen)


def grants(
    user_roles: Iterable[UserRole], memberships: Iterable[Membership], organization_roles: Iterable[OrganizationRole]
) -> Grants:
    """The roles of one user in one application (the arguments already narrowed to them)."""
    own = tuple(dict.fromkeys(a.role_id for a in user_roles))
    held = {(m.organization_id, m.role) for m in memberships}
    per_org: dict[str, list[str]] = {}
    for a in organization_roles:
        if (a.organization_id, a.organization_role) in held and a.role_id not in per_org.get(a.organization_id, []):
            per_org.setdefault(a.organization_id, []).append(a.role_id)
    return Grants(own, tuple((org, tuple(ids)) for org, ids in per_org.items()))


def user_object(
    user: User,
    app_id: str,
    held: Grants,
    roles: Mapping[str, Role],
    organizations: Mapping[str, Organization],
    *,
    decision: str = "",
) -> dict[str, Any]:
    def listed(ids: Sequence[str]) -> list[dict[str, str]]:
        return [{"id": r.id, "name": r.name} for r in (roles.get(i) for i in ids) if r is not None and not r.is_internal]

    orgs = []
    for org_id, ids in held.organizations:
        org = organizations.get(org_id)
        org_roles = listed(ids)
        if org is not None and org_roles:
            orgs.append({"id": org.id, "name": org.name, "description": org.description, "website": org.website,
                         "roles": org_roles})
    return {
        "organizations": orgs,
        "displayName": user.username,
        "roles": listed(held.role_ids),
        "app_id": app_id,
        "trusted_apps": [],
        "isGravatarEnabled": False,
        "email": user.email,
        "id": user.id,
        "authorization_decision": decision,
        "app_azf_domain": "",
        "username": user.username,
    }
