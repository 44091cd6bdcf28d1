"""Who may do what (contract §2, the reference's ``Auth.hs``): a pure table of scopes.

"Public" means ``visibility != "private"`` (missing is public). Anyone, guest included, may
create devices, gateways and projects. The admin and the owner hold every scope on a
resource; anyone else holds the view and data scopes of a public device or gateway, and
nothing on a project (projects have no visibility).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .caller import Caller

DEVICE_SCOPES = ("devices:update", "devices:view", "devices:delete", "devices-data:create", "devices-data:view")
PUBLIC_DEVICE_SCOPES = ("devices:view", "devices-data:create", "devices-data:view")
GATEWAY_SCOPES = ("gateways:update", "gateways:view", "gateways:delete")
PUBLIC_GATEWAY_SCOPES = ("gateways:view",)
PROJECT_SCOPES = ("projects:update", "projects:view", "projects:delete")

_ALL = {"devices": DEVICE_SCOPES, "gateways": GATEWAY_SCOPES, "projects": PROJECT_SCOPES}
_PUBLIC = {"devices": PUBLIC_DEVICE_SCOPES, "gateways": PUBLIC_GATEWAY_SCOPES, "projects": ()}


def public(resource: Mapping[str, Any]) -> bool:
    return resource.get("visibility") != "private"


def owns(caller: Caller, resource: Mapping[str, Any]) -> bool:
    return caller.admin or resource.get("owner") == caller.username


def scopes(caller: Caller, kind: str, resource: Mapping[str, Any]) -> tuple[str, ...]:
    """The scopes ``caller`` holds on ``resource`` of ``kind`` (devices, gateways, projects)."""
    if owns(caller, resource):
        return _ALL[kind]
    return _PUBLIC[kind] if public(resource) else ()


def may(caller: Caller, scope: str, resource: Mapping[str, Any]) -> bool:
    """Whether ``caller`` holds ``scope`` (``devices-data:create``: a device scope)."""
    return scope in scopes(caller, scope.split(":")[0].removesuffix("-data"), resource)


def permissions(caller: Caller, kind: str, resources: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``GET /auth/permissions/{kind}``: one entry per resource the caller holds a scope on."""
    return [{"resource": r["id"], "scopes": list(held)} for r in resources if (held := scopes(caller, kind, r))]
