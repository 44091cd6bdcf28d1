"""The rules service's PEP: the guard of every other service, plus the notice signature.

``-guard security.pep:rules_guard``. Requests are read with the rules service's route table
(``security.authz.rules``: reading rules is ``read``, writing them ``admin`` of the tenant,
``/notices`` an append of the notified entities) and decided as every PEP decides.

One more way in, on ``POST /notices`` only: the rules' own subscriptions carry the header
``Waziup-Notice-Signature``, an HMAC-SHA256 of the notification's tenant under the notice
key (``WAZIUP_RULES_NOTICE_KEY``, which ``waziup run -auth`` makes and gives to the rules
service alone; ``analytics.rules.service.subscriptions.notice_signature`` computes it). A
notification carrying it is admitted when it matches and refused (401) when it does not,
whatever token comes with it: the broker passes on the ``X-Auth-Token`` of the request that
caused a change (Orion's rule), and the writer's token may not allow an append of every
notified attribute, or be absent (``Authorization: Bearer``, the IoT agent's). Without the
header, a token is decided as any other request (the broker's service account, or a user
who may append the notified entities, passes).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from ngsi.server.guards import Guard, Incoming, Verdict, reject

from .replies import Refusal, Replies, invalid

NOTICE_HEADER: Final = "waziup-notice-signature"
NOTICES: Final = "/notices"
_NOTICE_DOMAIN: Final = b"waziup-rules-notices\n"


def notice_signature(key: str, tenant: str) -> str:
    """The signature of ``tenant``'s notifications under ``key``."""
    return hmac.new(key.encode(), _NOTICE_DOMAIN + tenant.encode(), hashlib.sha256).hexdigest()


class NoticeSignature:
    """A guard in front of the PEP (``pep``): signed notices pass, or are refused; the rest
    go to the PEP."""

    def __init__(self, pep: Guard, key: str, replies: Replies) -> None:
        self.pep = pep
        self.key = key
        self.replies = replies

    async def __call__(self, request: Incoming) -> Verdict | None:
        given = request.headers.get(NOTICE_HEADER)
        if given is None or not self.key or request.path.rstrip("/") != NOTICES or request.method != "POST":
            return await self.pep(request)
        expected = notice_signature(self.key, request.ctx.tenant)
        if hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode()):
            return None  # the broker, for a subscription of the rules service: no caller to record
        refusal: Refusal = invalid("The notice signature does not match")
        return reject(self.replies.reply(refusal))
