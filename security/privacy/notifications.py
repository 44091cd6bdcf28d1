"""The broker's notification filter with privacy: ``-notifFilter
security.privacy.notifications:notification_filter`` (in place of the PEP's).

A subscription's owner (``_owner``, kept by the broker when it was created behind the PEP)
is the consumer of its notifications. Two stages, as the notifier calls them
(``broker/subscriptions/sender.py``):

* ``__call__`` (before the subscription's conditions are evaluated): what the NGSI
  policies let the owner read (``security.pep.notifications``), less the attributes the
  owner's privacy policy drops, so a condition or ``q`` cannot probe a dropped value;
* ``release`` (once it fires, before the body and any custom payload's macros are
  built): the whole policy, pseudonyms, generalizations and noise included
  (:class:`~security.privacy.release.ConsumerRelease` on the broker's internal form).

Both fail closed: until the privacy policies are known, nothing is sent to owners. A
policy for one ``subscription`` (its id) applies at the second stage: the notifier then
releases per subscription instead of per owner (``per_subscription``).
Conditions see generalized or noised attributes as stored (documented in
docs/privacy.md): a policy that must hide a value entirely drops it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from security.pep.notifications import NotificationFilter
from security.pep.settings import from_environ

from .feed import PrivacyFeed, feed_for
from .guard import idm_client
from .policy import Consumer
from .release import ConsumerRelease, consumers_of, trusted_ids


MAX_HELD = 100_000  # owners' releases remembered by object, forgotten all at once beyond


class PrivateNotificationFilter:
    def __init__(self, access: Any, feed: PrivacyFeed, trusted: frozenset[str] = frozenset()) -> None:
        self.access = access  # (owner, tenant, entity) -> entity | None: the NGSI policies
        self.feed = feed
        self.trusted = trusted  # the platform's own accounts (WAZIUP_PRIVACY_TRUSTED)
        self._releases: dict[str, ConsumerRelease | None] = {}
        self._held: dict[int, tuple[dict[str, Any], ConsumerRelease | None]] = {}
        self._version: object = None

    def _release_of(self, owner: dict[str, Any]) -> ConsumerRelease | None:
        snapshot = self.feed.snapshot
        if snapshot is not self._version or len(self._held) > MAX_HELD:
            self._releases.clear()
            self._held.clear()
            self._version = snapshot
        held = self._held.get(id(owner))  # the subscription's own owner dict: its release, without a key to build
        if held is not None and held[0] is owner:
            return held[1]
        key = repr(sorted(owner.items()))  # with "subscription" when the notifier adds it (per_subscription)
        if key not in self._releases:
            assert snapshot is not None
            user_id = str(owner.get("user_id") or "")
            consumers = () if user_id in self.trusted else consumers_of(
                user_id=user_id, app_id=str(owner.get("app_id") or ""),
                organizations=[str(o) for o in owner.get("organizations") or ()])
            if consumers and owner.get("subscription"):
                consumers = (*consumers, Consumer("subscription", str(owner["subscription"])))
            self._releases[key] = (ConsumerRelease(snapshot, consumers)
                                   if consumers and snapshot.concerns(consumers) else None)
        self._held[id(owner)] = (owner, self._releases[key])
        return self._releases[key]

    @property
    def per_subscription(self) -> bool:
        """True when some policy names a subscription: the notifier then asks ``release``
        with the subscription's id in the owner (``"subscription"``)."""
        snapshot = self.feed.snapshot
        return snapshot is not None and any(p.consumer.kind == "subscription" for p in snapshot.policies)

    def __call__(self, owner: dict[str, Any], tenant: str, entity: dict[str, Any]) -> dict[str, Any] | None:
        self.feed.start()
        if self.feed.snapshot is None:
            return None
        shown = self.access(owner, tenant, entity) if self.access is not None else entity
        if shown is None:
            return None
        release = self._release_of(owner)
        if release is None:
            return shown
        policy = release.policy(tenant, shown.get("servicePath") or "/", shown.get("type") or "")
        attrs = shown.get("attrs", {})
        if policy is None or not any(policy.drops(n) for n in attrs):
            return shown
        return {**shown, "attrs": {n: a for n, a in attrs.items() if not policy.drops(n)}}

    def release(self, owner: dict[str, Any], tenant: str, entity: dict[str, Any]) -> dict[str, Any] | None:
        if self.feed.snapshot is None:
            return None
        release = self._release_of(owner)
        return entity if release is None else release.entity(tenant, entity)


def notification_filter(config: Any) -> PrivateNotificationFilter:
    """The factory ``-notifFilter`` names; configured as the PEP is (``WAZIUP_PEP_*``)."""
    settings = dataclasses.replace(from_environ(), multiservice=bool(getattr(config, "multiservice", False)))
    access = NotificationFilter(settings)
    access._start()
    feed = feed_for(idm_client(settings), settings.policy_poll_ms / 1000.0)
    feed.start()
    return PrivateNotificationFilter(access, feed, trusted_ids())
