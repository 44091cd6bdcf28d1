"""Each rule's broker subscription: made with the rule, removed with it, checked at start-up.

A rule is fed by one NGSI-v2 subscription of its own (``POST /v2/subscriptions`` through
``ngsi.client``, in the rule's tenant) that notifies this service's ``/notices``. Its
subject is the rule's entities (``id`` or ``idPattern``, ``type``) and service path; the
rule's ``q``, windows and the rest are the engine's business, since no-signal, window and
derived rules need every update, matching or not. It asks for:

* ``alterationTypes`` create, update and delete, ``entityUpdate`` rather than Orion's
  default ``entityChange``: an update that repeats a value is still a reading (a no-signal
  rule must see it, a throttled rule counts it);
* ``condition.attrs``: the attributes the rule reads (its ``q``, window aggregates,
  no-signal or anomaly attribute, derived aggregates), when it reads named attributes
  only: an update of other attributes cannot make it fire, and a rule that writes to
  the entity it watches (``temperature>40`` -> ``alarm=true``) does not notify itself
  again. A rule without ``q`` fires on any update (its own included: its ``interval``
  bounds such a loop);
* ``attrs: ["*", "alterationType"]``: every attribute (the templates may use any), and
  the builtin that tells a deletion; ``attrsFormat: normalized``.

Behind a PEP (``-guard``), the service's ``/notices`` needs to know the notification comes
from the broker: with a notice key (``WAZIUP_RULES_NOTICE_KEY``), the subscription sends it
through ``httpCustom`` with the header ``Waziup-Notice-Signature``, an HMAC-SHA256 of the
tenant under that key (:func:`notice_signature`), which the PEP checks (``security.pep``
computes the same). The signature is per tenant: whoever may read a tenant's subscriptions
may send notices to its rules (a broker that signed its notifications itself would need no
such header).

A disabled rule keeps its subscription, ``inactive``. The description
(``waziup-rules <name>``) and the notification URL mark the subscriptions this service
owns, so that start-up can remove the ones no rule references (a crash between making a
subscription and storing its rule).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any, Final

from ngsi.client import NGSIClient, NGSIClientError
from ngsi.query import Query

from ..model import Rule

log = logging.getLogger("waziup.rules")

MARK: Final = "waziup-rules "
ALTERATIONS: Final = ["entityCreate", "entityUpdate", "entityDelete"]
NOTICE_HEADER: Final = "Waziup-Notice-Signature"
_NOTICE_DOMAIN: Final = b"waziup-rules-notices\n"  # what the key signs, besides the tenant


def notice_signature(key: str, tenant: str) -> str:
    """The header value that proves a notification of ``tenant`` comes from a subscription
    this service made (pure; ``security.pep.rules`` checks it the same way)."""
    return hmac.new(key.encode(), _NOTICE_DOMAIN + tenant.encode(), hashlib.sha256).hexdigest()


def subscription_path(rule: Rule) -> str:
    """The Fiware-ServicePath the subscription is made with: the rule's one scope, or every
    path (``/#``) for several, which the engine then tells apart."""
    if len(rule.subject.scopes) != 1:
        return "/#"
    path, subtree = rule.subject.scopes[0]
    if not subtree:
        return path
    return "/#" if path == "/" else path + "/#"


def _query_attrs(query: Query | None, aliases: frozenset[str] = frozenset()) -> set[str] | None:
    """The attributes a ``q`` reads; None when it reads a builtin (any update may matter)."""
    names: set[str] = set()
    for item in query.items if query is not None else ():
        if item.target.attr is None:
            return None
        if item.target.attr not in aliases:
            names.add(item.target.attr)
    return names


def trigger_attrs(rule: Rule) -> list[str] | None:
    """The attributes whose updates can make the rule fire; None: any update."""
    wanted = _query_attrs(rule.subject.q)
    if wanted is None:
        return None
    if rule.window is not None:
        window = _query_attrs(rule.window.q, frozenset(rule.window.aggregates))
        if window is None:
            return None
        wanted |= window | {attribute for _, attribute in rule.window.aggregates.values()}
    elif rule.nosignal is not None:
        ns = rule.nosignal
        wanted |= {a for a in (ns.attribute, ns.report_interval_attr, ns.max_time_detection_attr) if a}
    elif rule.anomaly is not None:
        wanted.add(rule.anomaly)
    elif rule.derive is not None:
        wanted |= {attribute for _, attribute in rule.derive.attributes.values()}
    elif rule.subject.q is None:
        return None  # a plain rule without q fires on every update
    return sorted(wanted)


def subscription_body(rule: Rule, notify_url: str, active: bool = True, signature: str = "") -> dict[str, Any]:
    """The subscription of ``rule`` (pure); with a ``signature``, sent in its header."""
    subject = rule.subject
    entity: dict[str, str] = {"id": subject.id} if subject.id else {"idPattern": subject.id_pattern or ".*"}
    if subject.type:
        entity["type"] = subject.type
    condition: dict[str, Any] = {"alterationTypes": ALTERATIONS}
    attrs = trigger_attrs(rule)
    if attrs:
        condition["attrs"] = attrs
    target: dict[str, Any] = {"http": {"url": notify_url}}
    if signature:
        target = {"httpCustom": {"url": notify_url, "headers": {NOTICE_HEADER: signature}}}
    return {
        "description": MARK + rule.name,
        "subject": {"entities": [entity], "condition": condition},
        "notification": {**target, "attrs": ["*", "alterationType"], "attrsFormat": "normalized"},
        "status": "active" if active else "inactive",
    }


def _target(sub: dict[str, Any]) -> dict[str, Any]:
    notification = sub.get("notification") or {}
    return notification.get("httpCustom") or notification.get("http") or {}


def _service(tenant: str) -> str | None:
    return tenant or None


class Subscriber:
    """The rules' subscriptions in the broker, through the platform's NGSI client."""

    def __init__(self, client: NGSIClient, notify_url: str, notice_key: str = "") -> None:
        self.client = client
        self.notify_url = notify_url
        self.notice_key = notice_key

    def signature(self, tenant: str) -> str:
        return notice_signature(self.notice_key, tenant) if self.notice_key else ""

    def current(self, tenant: str, sub: dict[str, Any]) -> bool:
        """Whether an owned subscription notifies as this service's are made now (the
        notice key may have changed, or appeared)."""
        headers = _target(sub).get("headers") or {}
        return (headers.get(NOTICE_HEADER) or "") == self.signature(tenant)

    async def create(self, tenant: str, rule: Rule, active: bool = True) -> str:
        """The new subscription's id; NGSIClientError (the broker refused) or
        NGSIConnectionError (no broker) otherwise."""
        sub_id = await self.client.create_subscription(
            subscription_body(rule, self.notify_url, active, self.signature(tenant)), service=_service(tenant),
            service_path=subscription_path(rule))
        log.info("subscription created tenant=%s rule=%s subscription=%s", tenant or "-", rule.name, sub_id)
        return sub_id

    async def delete(self, tenant: str, sub_id: str) -> None:
        """Remove it; one already gone is fine."""
        try:
            await self.client.delete_subscription(sub_id, service=_service(tenant), service_path=None)
        except NGSIClientError as exc:
            if exc.status != 404:
                raise
        log.info("subscription deleted tenant=%s subscription=%s", tenant or "-", sub_id)

    async def set_active(self, tenant: str, sub_id: str, active: bool) -> None:
        await self.client.update_subscription(sub_id, {"status": "active" if active else "inactive"},
                                              service=_service(tenant), service_path=None)

    async def owned(self, tenant: str) -> dict[str, dict[str, Any]]:
        """This service's subscriptions in ``tenant``, by id."""
        subs = await self.client.list_subscriptions(service=_service(tenant), service_path=None)
        return {s["id"]: s for s in subs if str(s.get("description", "")).startswith(MARK)
                and _target(s).get("url") == self.notify_url}
