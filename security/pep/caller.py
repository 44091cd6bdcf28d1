"""Who a token belongs to, from Keyrock's user object (pure).

The identity manager describes a token's user in one shape, whether it comes from ``GET
/user`` or is the payload of a JWT (reference ``security-history-orchestration.md`` §1:
``{"id", "username", "displayName", "email", "app_id", "roles": [{"id", "name"}],
"organizations": [{"id", "name", "roles": [...]}], ...}``; a client's own token: ``{}`` or
``{"app_id", "type": "app"}``). :func:`caller_from_user` turns it into a :class:`Caller`:

* ``identity``, the :class:`~ngsi.context.Identity` the request context carries: its
  ``roles`` hold the ids *and* names of the user's roles in the application, own and
  through organizations (an organization's roles count as its members', as in Keyrock's
  decisions), and ``organizations`` their ids and names, so that policies may name either;
* ``role_ids``, what Wilma sends to AuthZForce and OPA (role ids, own and organizations');
* ``headers``, what Wilma adds to the request it forwards (``setHeaders``): ``X-Nick-Name``
  (the user's id), ``X-Display-Name``, ``X-Roles`` and ``X-Organizations`` (the JSON of the
  user object's lists), ``X-App-Id``, and ``X-Eidas-Profile`` when the user object has one.

A user object that is not in that shape raises :class:`BadUserInfo` (the PEP answers 500:
the identity manager said something it should not). Values that would break a header
(control characters) are dropped from the headers' text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ngsi.context import Identity

WILMA_HEADERS: Final = ("x-nick-name", "x-display-name", "x-roles", "x-organizations", "x-app-id", "x-eidas-profile")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BadUserInfo(ValueError):
    """The identity manager's user object is not in Keyrock's shape."""


@dataclass(frozen=True, slots=True)
class Caller:
    identity: Identity
    role_ids: tuple[str, ...] = ()
    organization_ids: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    azf_domain: str = ""  # Keyrock's app_azf_domain, for the azf PDP


def _text(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadUserInfo(f"{key} is not a string")
    return value


def _named(items: Any, where: str) -> list[tuple[str, str]]:
    """(id, name) of a list of ``{"id", "name"}`` objects."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise BadUserInfo(f"{where} is not a list")
    found = []
    for item in items:
        if not isinstance(item, dict):
            raise BadUserInfo(f"{where} holds something that is not an object")
        found.append((_text(item, "id"), _text(item, "name")))
    return found


def _unique(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def header_text(value: str) -> str:
    return _CONTROL.sub("", value)


def caller_from_user(info: Any) -> Caller:
    """The caller a user object describes (see the module docstring)."""
    if not isinstance(info, dict):
        raise BadUserInfo("the user information is not a JSON object")
    roles = _named(info.get("roles"), "roles")
    organizations = info.get("organizations")
    orgs = _named(organizations, "organizations")
    org_roles: list[tuple[str, str]] = []
    for org in organizations or ():
        org_roles += _named(org.get("roles"), "organizations[].roles")
    user_id = _text(info, "id")
    app_id = _text(info, "app_id")
    identity = Identity(
        user_id=user_id,
        username=_text(info, "username"),
        email=_text(info, "email"),
        display_name=_text(info, "displayName"),
        app_id=app_id,
        roles=_unique([part for pair in roles + org_roles for part in pair]),
        organizations=_unique([part for pair in orgs for part in pair]),
    )
    role_ids = _unique([i for i, _ in roles + org_roles])
    headers: list[tuple[str, str]] = []
    if user_id:
        headers += [
            ("X-Nick-Name", header_text(user_id)),
            ("X-Display-Name", header_text(identity.display_name or identity.username)),
            ("X-Roles", json.dumps(info.get("roles") or [], separators=(",", ":"))),
            ("X-Organizations", json.dumps(organizations or [], separators=(",", ":"))),
        ]
    if app_id:
        headers.append(("X-App-Id", header_text(app_id)))
    if info.get("eidas_profile") is not None:
        headers.append(("X-Eidas-Profile", json.dumps(info["eidas_profile"], separators=(",", ":"))))
    domain = info.get("app_azf_domain")
    return Caller(
        identity=identity,
        role_ids=role_ids,
        organization_ids=_unique([i for i, _ in orgs]),
        headers=tuple(headers),
        azf_domain=domain if isinstance(domain, str) else "",
    )
