"""What a subscription's creator may read, for the broker's notifier (``-notifFilter``).

The broker keeps the creator of a subscription made behind the PEP (``_owner``: user,
application, roles, organizations) and, before it decides whether the subscription fires
and what it sends, asks this filter for the changed entity as that creator may see it
(``broker/subscriptions/sender.py``): the attributes the NGSI policies let the creator
read at that moment, or nothing. So a subscription never becomes a way around the
policies; Orion has no such rule.

The notifier calls it synchronously, once per change and creator, on the event loop: the
policy set is fetched beforehand, by a task polling the identity manager's policy version
every ``policy_poll_ms`` and fetching the set again when it moved, and by the PEP guard of
the same process, which confirms the version before each decision: both publish what they
read on one board (``policyboard.py``), so a grant that admitted a subscription is the one
its notifications are filtered with. Until the first set arrives, nothing is visible (the
filter fails closed). Configured as the PEP guard is
(``WAZIUP_IDM_URL``, ``WAZIUP_PEP_*``: the PEP's account reads the policies).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from ngsi.client.http11 import HTTPClient
from ngsi.tls import trust_context
from security.authz.policy import PolicySet, Subject
from security.authz.visibility import visible

from .idm import IdMClient, IdMError
from .policyboard import board_for
from .settings import Settings, from_environ

log = logging.getLogger("waziup.security.pep")


class NotificationFilter:
    def __init__(self, settings: Settings, idm: IdMClient | None = None) -> None:
        self.settings = settings
        self.idm = idm if idm is not None else IdMClient(
            settings.idm_url,
            transport=HTTPClient(
                max_per_host=4,
                ssl_context=trust_context("WAZIUP_PEP_IDM_CA", settings.idm_ca) if settings.idm_ca else None,
            ),
            timeout=settings.idm_timeout_ms / 1000.0, username=settings.username, password=settings.password,
        )
        # the newest set read in this process, by this filter or by the PEP guard (policyboard.py)
        self.board = board_for(settings.idm_url, settings.app_id)
        self._task: asyncio.Task[None] | None = None

    @property
    def policy_set(self) -> PolicySet | None:
        return self.board.policy_set

    def __call__(self, owner: dict[str, Any], tenant: str, entity: dict[str, Any]) -> dict[str, Any] | None:
        self._start()
        policy_set = self.policy_set
        if policy_set is None:
            return None  # the policies are not known yet: fail closed
        subject = Subject(
            user_id=str(owner.get("user_id") or ""), app_id=str(owner.get("app_id") or ""),
            roles=frozenset(owner.get("roles") or ()), organizations=frozenset(owner.get("organizations") or ()),
        )
        return visible(subject, entity, tenant, policy_set, policy_set.bindings)

    def _start(self) -> None:
        if self._task is None:
            try:
                self._task = asyncio.get_running_loop().create_task(self._follow())
            except RuntimeError:  # no loop yet: the next call starts it
                pass

    async def _follow(self) -> None:
        """Fetch the policy set, then again whenever the policy version moves."""
        interval = self.settings.policy_poll_ms / 1000.0
        while True:
            try:
                version = await self.idm.policy_version()
                if self.board.policy_set is None or version is None or version != self.board.version:
                    self.board.publish(*await self.idm.ngsi_policies(self.settings.app_id))
            except (IdMError, OSError) as exc:
                log.warning("notification filter: the policies could not be read: %s", exc)
            except Exception:
                log.exception("notification filter: the policies could not be read")
            await asyncio.sleep(interval)


def notification_filter(config: Any) -> NotificationFilter:
    """``-notifFilter security.pep.notifications:notification_filter``; starts following the
    policies at once when called on the event loop (the broker's start-up is)."""
    settings = dataclasses.replace(from_environ(), multiservice=bool(getattr(config, "multiservice", False)))
    found = NotificationFilter(settings)
    found._start()
    return found
