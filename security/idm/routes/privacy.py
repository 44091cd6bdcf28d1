"""Privacy policies, managed through the API and stored with the identity data (issue 18;
docs/privacy.md "The policy API"): ``/v1/privacy/policies[/{id}]``, the export the
platform's services poll (``/v1/privacy/export``: policies, the pseudonyms' key ring and
``X-Policy-Version``), the key rotation and the epsilon ledger
(``/v1/privacy/budget[/spend]``).

Admins only, as ``/v1/ngsi_policies`` without ``app_id`` is: the export holds the keys
that undo pseudonyms, and the services log in with the admin's credentials as the PEP
does. 401 and 403 in Keyrock's shape. Documents are validated by
``security.privacy.policy.parse_policy`` (its message, which names the field at fault, is
the 400's) and stored as they were sent; ``conflicts`` with the stored set is a 409, checked
in the transaction that writes (``sqlstore.PrivacyStore``). Every change is recorded in the
audit trail, with the caller as its actor.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from security.privacy.keys import KeyRing
from security.privacy.policy import KINDS, Policy, PolicyError, conflicts, parse_policy

from ..http import KeyrockError, api_caller, json, json_body, query_pairs, service
from ..model import User
from ..sqlstore import BUDGET_TOLERANCE, PolicyCheck, PolicyConflict, PrivacyStore
from ..store import Conflict
from . import audited, route_table
from .user import POLICY_HEADER

log = logging.getLogger("waziup.idm.privacy")

FORBIDDEN = "User not allowed to perform the action"
NOT_FOUND = "Privacy policy not found"
_BASE = "/v1/privacy"


async def _admin(request: Request) -> User:
    caller = await api_caller(request)
    if not caller.admin:
        raise KeyrockError(403, FORBIDDEN)
    return caller


def _store(request: Request) -> PrivacyStore:
    return service(request).store.privacy


def _parsed(doc: Any) -> Policy:
    try:
        return parse_policy(doc)
    except PolicyError as exc:
        raise KeyrockError(400, str(exc)) from None


def _no_conflict(policy: Policy) -> PolicyCheck:
    """The check of ``policy`` against the others stored: a tie names the other policy.
    A stored document that no longer parses (a schema change) cannot tie: it is skipped."""

    def check(others: list[dict[str, Any]]) -> str | None:
        stored = []
        for doc in others:
            try:
                stored.append(parse_policy(doc))
            except PolicyError as exc:
                log.warning("stored privacy policy %r does not parse: %s", doc.get("id"), exc)
        for pair in conflicts([*stored, policy]):
            if policy.id in pair:
                other = pair[1] if pair[0] == policy.id else pair[0]
                return (f"Privacy policy {policy.id!r} has the same consumer, tenant, servicePath and entityType "
                        f"as privacy policy {other!r}: only one of them would ever apply")
        return None

    return check


def _consumer_details(policy: Policy) -> dict[str, str]:
    """The consumer as two values, so that a pseudonymization of its id finds it."""
    return {"consumer_kind": policy.consumer.kind, "consumer_id": policy.consumer.id}


# -- the policies ------------------------------------------------------------------------------


async def list_policies(request: Request) -> Response:
    await _admin(request)
    return json({"policies": await _store(request).policies()})


async def create_policy(request: Request) -> Response:
    caller = await _admin(request)
    doc = await json_body(request)
    policy = _parsed(doc)
    try:
        await _store(request).create(policy.id, doc, _no_conflict(policy))
    except (Conflict, PolicyConflict) as exc:
        raise KeyrockError(409, str(exc)) from None
    await audited(request, caller.id, "privacy.policy.created", target=policy.id, details=_consumer_details(policy))
    return json(doc, 201)


async def read_policy(request: Request) -> Response:
    await _admin(request)
    doc = await _store(request).policy(request.path_params["policy_id"])
    if doc is None:
        raise KeyrockError(404, NOT_FOUND)
    return json(doc)


async def replace_policy(request: Request) -> Response:
    caller = await _admin(request)
    policy_id = request.path_params["policy_id"]
    doc = await json_body(request)
    if doc.setdefault("id", policy_id) != policy_id:
        raise KeyrockError(400, f"id: the document's id must be the path's ({policy_id!r}) or absent")
    policy = _parsed(doc)
    try:
        if not await _store(request).replace(policy_id, doc, _no_conflict(policy)):
            raise KeyrockError(404, NOT_FOUND)
    except (Conflict, PolicyConflict) as exc:
        raise KeyrockError(409, str(exc)) from None
    await audited(request, caller.id, "privacy.policy.updated", target=policy_id, details=_consumer_details(policy))
    return json(doc)


async def delete_policy(request: Request) -> Response:
    caller = await _admin(request)
    policy_id = request.path_params["policy_id"]
    if not await _store(request).delete(policy_id):
        raise KeyrockError(404, NOT_FOUND)
    await audited(request, caller.id, "privacy.policy.deleted", target=policy_id)
    return Response(status_code=204)


# -- the export and the keys -------------------------------------------------------------------


async def key_ring(store: PrivacyStore) -> dict[str, Any]:
    """The stored ring (``KeyRing.to_dict()``), made on first need."""
    return await store.key_ring(lambda: KeyRing.generate().to_dict())


async def export(request: Request) -> Response:
    """What a service applying the policies needs, with the version it is as recent as (read
    first, as ``/v1/ngsi_policies`` does: a poller keeping it until the number moves never
    keeps it past a change)."""
    await _admin(request)
    the_store = service(request).store
    version = await the_store.policy_version()
    body = {"policy_version": version, "policies": await the_store.privacy.policies(),
            "keys": await key_ring(the_store.privacy)}
    return json(body, headers={POLICY_HEADER: str(version), "Cache-Control": "no-store"})


async def rotate_keys(request: Request) -> Response:
    caller = await _admin(request)
    previous: list[str] = []

    def rotated(ring: dict[str, Any] | None) -> dict[str, Any]:
        """The ring with a new current key (a first ring when there was none)."""
        if ring is None:
            return KeyRing.generate().to_dict()
        old = KeyRing.from_dict(ring)
        previous.append(old.current)
        return old.rotate().to_dict()

    ring = await _store(request).rotate_keys(rotated)
    await audited(request, caller.id, "privacy.keys.rotated",
                  details={"current": ring["current"], "previous": previous[0] if previous else None})
    return json({"current": ring["current"]})


# -- the budget ------------------------------------------------------------------------------


def _consumer(value: Any) -> str:
    """A ``Consumer.key`` (``user:bob``, ``public:``), or 400."""
    kind, sep, _ = value.partition(":") if isinstance(value, str) else ("", "", "")
    if not sep or kind not in KINDS or len(value) > 512:
        raise KeyrockError(400, f"consumer must be kind:id with a kind of {', '.join(KINDS)} (e.g. user:bob)")
    return str(value)


def _epsilon(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise KeyrockError(400, "epsilon must be a non-negative number")
    return float(value)


async def _budgeted(request: Request, policy_id: Any) -> Policy:
    """The stored policy ``policy_id`` (404), which must have a budget (400)."""
    if not isinstance(policy_id, str) or not policy_id:
        raise KeyrockError(400, "policy must be a privacy policy's id")
    doc = await _store(request).policy(policy_id)
    if doc is None:
        raise KeyrockError(404, NOT_FOUND)
    policy = _parsed(doc)
    if policy.budget is None:
        raise KeyrockError(400, f"Privacy policy {policy_id!r} has no budget")
    return policy


def _ledger(policy: Policy, spent: float) -> dict[str, Any]:
    """What is left (a float sum's dust within the tolerance counts as nothing left)."""
    assert policy.budget is not None
    allowance = policy.budget.epsilon
    remaining = allowance - spent
    return {"remaining": remaining if remaining > BUDGET_TOLERANCE else 0.0, "epsilon": allowance,
            "period": policy.budget.period.text}


async def spend(request: Request) -> Response:
    """Charge a release to the consumer's budget under the policy: granted, or refused (and
    nothing charged) when it would pass the allowance of the current calendar period."""
    caller = await _admin(request)
    body = await json_body(request)
    consumer, epsilon = _consumer(body.get("consumer")), _epsilon(body.get("epsilon"))
    policy = await _budgeted(request, body.get("policy"))
    assert policy.budget is not None
    start = policy.budget.period.floor_seconds(service(request).now())
    granted, spent = await _store(request).spend(consumer, policy.id, epsilon, policy.budget.epsilon, start)
    out = {"granted": granted, **_ledger(policy, spent)}
    if not granted:
        kind, _, consumer_id = consumer.partition(":")
        await audited(request, caller.id, "privacy.budget.refused", target=consumer_id or consumer,
                      reason="over the budget", details={"consumer_kind": kind, "policy": policy.id, "epsilon": epsilon,
                                                         "remaining": out["remaining"]})
    return json(out)


async def balance(request: Request) -> Response:
    await _admin(request)
    params = dict(query_pairs(request))
    consumer = _consumer(params.get("consumer"))
    policy = await _budgeted(request, params.get("policy"))
    assert policy.budget is not None
    start = policy.budget.period.floor_seconds(service(request).now())
    spent = await _store(request).spent(consumer, policy.id, start)
    return json({"consumer": consumer, "policy": policy.id, "spent": spent, **_ledger(policy, spent)})


ROUTES = route_table({
    f"{_BASE}/policies": {"GET": list_policies, "POST": create_policy},
    f"{_BASE}/policies/{{policy_id}}": {"GET": read_policy, "PUT": replace_policy, "DELETE": delete_policy},
    f"{_BASE}/export": {"GET": export},
    f"{_BASE}/keys/rotate": {"POST": rotate_keys},
    f"{_BASE}/budget/spend": {"POST": spend},
    f"{_BASE}/budget": {"GET": balance},
})
