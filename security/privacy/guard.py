"""The privacy guard on the request seam: ``-guard security.privacy:broker_guard`` (and
``history_guard``), placed after the PEP, whose identity it reads.

For a caller some policy may concern (:meth:`Snapshot.concerns`: a policy names one of
the caller's identities, or is ``public``), it puts a :class:`ConsumerRelease` on the
request's context (``ctx.release``, ``ngsi/release.py``), which the service applies to
what it answers; for everyone else it does nothing. Budgets are spent at the identity
manager (``POST /v1/privacy/budget/spend``), where every service's spending meets.

Fails closed: when the policies cannot be read, the request is refused (500, Wilma's
``InternalServerError``, as the PEP answers when the identity manager is down), since
answering raw data to a consumer who must not have it cannot be undone.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from ngsi.client.http11 import HTTPClient
from ngsi.server.guards import Incoming, Verdict, admit, reject
from ngsi.tls import trust_context
from security.pep.denials import DenialReporter
from security.pep.idm import IdMClient, IdMError
from security.pep.replies import Replies, unavailable
from security.pep.settings import Settings, from_environ

from .feed import PrivacyFeed, feed_for
from .release import ConsumerRelease, Spend, consumers_of, trusted_ids

log = logging.getLogger("waziup.privacy")


def idm_client(settings: Settings) -> IdMClient:
    """A client of the identity manager with the PEP's account (``WAZIUP_PEP_*``)."""
    return IdMClient(
        settings.idm_url,
        transport=HTTPClient(
            max_per_host=8,
            ssl_context=trust_context("WAZIUP_PEP_IDM_CA", settings.idm_ca) if settings.idm_ca else None,
        ),
        timeout=settings.idm_timeout_ms / 1000.0, username=settings.username, password=settings.password,
    )


def idm_spend(idm: IdMClient) -> Spend:
    async def spend(consumer: str, policy_id: str, epsilon: float) -> bool:
        try:
            return bool((await idm.privacy_spend(consumer, policy_id, epsilon))["granted"])
        except (IdMError, OSError) as exc:
            log.warning("privacy: the budget could not be charged, the answer is refused: %s", exc)
            return False

    return spend


class PrivacyGuard:
    def __init__(self, feed: PrivacyFeed, spend: Spend | None, replies: Replies,
                 trusted: frozenset[str] = frozenset(), exports: DenialReporter | None = None) -> None:
        self.feed = feed
        self.trusted = trusted
        self.exports = exports  # the history's: CSV answers are exports, recorded in the audit trail
        self.spend = spend
        self.replies = replies

    async def __call__(self, incoming: Incoming) -> Verdict | None:
        snapshot = await self.feed.current()
        if snapshot is None:
            return reject(self.replies.reply(unavailable("the identity manager's privacy policies")))
        if not snapshot.policies:
            return None
        ctx = incoming.ctx
        if self.exports is not None and incoming.method == "GET" and "text/csv" in incoming.headers.get("accept", ""):
            self._exported(incoming)
        if ctx.identity.user_id and ctx.identity.user_id in self.trusted:
            return None
        consumers = consumers_of(ctx.identity)
        if not snapshot.concerns(consumers):
            return None
        return admit(ctx.replaced(release=ConsumerRelease(snapshot, consumers, self.spend)))


    def _exported(self, incoming: Incoming) -> None:
        assert self.exports is not None
        identity = incoming.ctx.identity
        self.exports.record({
            "action": "export", "target": f"history {incoming.path}", "tenant": incoming.ctx.tenant,
            "decision": "allow", "reason": "CSV answer",
            "details": {"user": identity.user_id or identity.app_id, "query": incoming.query_string[:500].decode("latin-1"),
                        "source": incoming.client[0] if incoming.client else ""}})


def _guard(config: Any, service: str) -> PrivacyGuard:
    settings = dataclasses.replace(from_environ(), multiservice=bool(getattr(config, "multiservice", False)))
    idm = idm_client(settings)
    feed = feed_for(idm, settings.policy_poll_ms / 1000.0)
    log.info("privacy policies applied to answers: identity manager %s", settings.idm_url)
    replies = Replies(settings.idm_url, settings.error_template, settings.error_content_type)
    exports = DenialReporter(feed.idm, service) if service == "history" and settings.audit else None
    return PrivacyGuard(feed, idm_spend(feed.idm), replies, trusted_ids(), exports)


def broker_guard(config: Any) -> PrivacyGuard:
    """``-guard security.privacy:broker_guard``, after ``security.pep:broker_guard``."""
    return _guard(config, "broker")


def history_guard(config: Any) -> PrivacyGuard:
    """``-guard security.privacy:history_guard``, after ``security.pep:history_guard``; with
    ``WAZIUP_PEP_AUDIT``, CSV answers are recorded as exports in the audit trail."""
    return _guard(config, "history")
