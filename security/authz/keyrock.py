"""Keyrock's built-in PDP as a pure function: which permission, if any, lets a request through.

Keyrock (ging/fiware-idm, ``models/model_oauth_server.js`` ``user_permissions``; reference
``security-history-orchestration.md`` §1 "Decision logic") decides a PEP's question "may
this user do ACTION on RESOURCE in application APP?" from the permissions of the roles the
user holds in the application (directly and through organizations). The caller gathers
those permissions (the identity manager's store knows roles and assignments); this module
only decides, so that the identity manager's ``/user`` and ``/pdp/open_policy_agent``,
a PEP guard deciding from a cached permission list and the tests all apply one logic.

A permission permits when all of these hold (first match wins, in the order given):

* it is not internal (Keyrock's internal permissions manage the identity manager itself
  and carry no action nor resource);
* ``action`` equals the request's verb (compared without regard to case: HTTP verbs);
* ``resource`` equals the request's path exactly, or, when ``is_regex``, is a regular
  expression found in it, case-insensitively (JavaScript's ``new RegExp(r, 'i').test``:
  a search, not anchored; write ``^...$`` to anchor). Exact means exact: Keyrock does not
  add the leading slash Wilma's ``req.path`` has, and neither does this;
* with ``use_authorization_service_header``, ``authorization_service_header`` equals the
  request's tenant (``Fiware-Service``); a request without a tenant never matches;
* at level ``payload``, each of ``regex_entity_ids``, ``regex_attributes`` and
  ``regex_types`` that is set is found in every one of the request's ids, attribute names
  and types respectively. A set regex with nothing of that kind in the request does NOT
  match (fail closed: "any entity" is not "the entities this regex allows"; Keyrock's
  behaviour for that case is undocumented).

Patterns come from application administrators and run on every PEP question, so they are
compiled by ``ngsi.regex`` (RE2: linear time, no catastrophic backtracking, bounded
cache). A pattern RE2 refuses never matches, and the decision's reason says so; nothing
here raises for bad data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ngsi.regex import compile_pattern

BASIC = "basic"
PAYLOAD = "payload"
LEVELS = (BASIC, PAYLOAD)  # Keyrock's "advanced" is XACML with AuthZForce, which this does not do


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer: ``allow``; ``reason`` says which permission matched or why none did;
    ``permission_id`` is the matching permission's id (None on a deny)."""

    allow: bool
    reason: str
    permission_id: str | None = None


def _text(permission: Mapping[str, Any], key: str) -> str:
    value = permission.get(key)
    return value if isinstance(value, str) else ""


def _flag(permission: Mapping[str, Any], key: str) -> bool:
    value = permission.get(key)
    return value is True or value == 1 or (isinstance(value, str) and value.lower() in ("true", "1"))


def _search(pattern: str, text: str, *, ignore_case: bool = False) -> bool | None:
    """Whether ``pattern`` is found in ``text``; None when the pattern does not compile."""
    compiled = compile_pattern(("(?i)" if ignore_case else "") + pattern)
    if compiled is None:
        return None
    return compiled.search(text) is not None


def _label(permission: Mapping[str, Any]) -> str:
    name = _text(permission, "name")
    return f"permission {_text(permission, 'id') or '?'}" + (f" ({name!r})" if name else "")


def _resource_mismatch(permission: Mapping[str, Any], resource: str) -> str | None:
    """None when the permission's resource covers ``resource``, else why not."""
    wanted = permission.get("resource")
    if not isinstance(wanted, str):
        return f"{_label(permission)}: has no resource"
    if _flag(permission, "is_regex"):
        found = _search(wanted, resource, ignore_case=True)
        if found is None:
            return f"{_label(permission)}: resource regex {wanted!r} is not a valid pattern"
        return None if found else f"{_label(permission)}: resource regex {wanted!r} not found in {resource!r}"
    return None if wanted == resource else f"{_label(permission)}: resource {wanted!r} is not {resource!r}"


def _tenant_mismatch(permission: Mapping[str, Any], tenant: str | None) -> str | None:
    if not _flag(permission, "use_authorization_service_header"):
        return None
    wanted = _text(permission, "authorization_service_header")
    if tenant is None:
        return f"{_label(permission)}: needs tenant {wanted!r}, the request names none"
    return None if tenant == wanted else f"{_label(permission)}: tenant {tenant!r} is not {wanted!r}"


_PAYLOAD_FIELDS = (("regex_entity_ids", "entity id"), ("regex_attributes", "attribute"), ("regex_types", "type"))


def _payload_mismatch(
    permission: Mapping[str, Any], ids: Sequence[str], attrs: Sequence[str], types: Sequence[str]
) -> str | None:
    for (key, what), values in zip(_PAYLOAD_FIELDS, (ids, attrs, types)):
        pattern = _text(permission, key)
        if not pattern:
            continue
        if not values:
            return f"{_label(permission)}: restricts {what}s to {pattern!r}, the request names no {what}"
        for value in values:
            found = _search(pattern, value)
            if found is None:
                return f"{_label(permission)}: {key} {pattern!r} is not a valid pattern"
            if not found:
                return f"{_label(permission)}: {what} {value!r} does not match {pattern!r}"
    return None


def decide(
    permissions: Iterable[Mapping[str, Any]],
    *,
    action: str,
    resource: str,
    tenant: str | None = None,
    ids: Sequence[str] = (),
    attrs: Sequence[str] = (),
    types: Sequence[str] = (),
    level: str = BASIC,
) -> Decision:
    """Permit when one of ``permissions`` (Keyrock's permission fields, as a mapping each)
    covers the request; ``level`` is Keyrock's ``config.authorization.level`` (``basic``:
    verb, path and tenant; ``payload``: also entity ids, attribute names and types)."""
    if level not in LEVELS:
        return Decision(False, f"unknown authorization level {level!r} (known: {', '.join(LEVELS)})")
    verb = action.upper()
    same_action = 0
    last_reason = ""
    for permission in permissions:
        if _flag(permission, "is_internal"):
            continue
        if _text(permission, "action").upper() != verb or not verb:
            continue
        same_action += 1
        reason = _resource_mismatch(permission, resource) or _tenant_mismatch(permission, tenant)
        if reason is None and level == PAYLOAD:
            reason = _payload_mismatch(permission, ids, attrs, types)
        if reason is None:
            permission_id = _text(permission, "id") or None
            return Decision(True, f"{_label(permission)} allows {verb} {resource!r}", permission_id)
        last_reason = reason
    if same_action == 0:
        return Decision(False, f"no permission for action {verb or action!r}")
    if same_action == 1:
        return Decision(False, last_reason)
    return Decision(False, f"none of {same_action} permissions for {verb} allows {resource!r} (last: {last_reason})")
