"""The privacy rows of ``make bench``: W4 notifications whose subscription owner has a
3-transform privacy policy, against the same owner with no policy, in the same run.

The broker is restarted on the same data with two components named here:
``owner_guard`` (every request is the bench consumer's, as the PEP would make it: the
subscription keeps it as its owner) and ``notification_filter`` (the privacy notification
filter of ``security/privacy/notifications.py``, its policies given here instead of read
from the identity manager). ``BENCH_PRIVACY=policy`` gives the consumer the policy
(pseudonymized ids, ``group`` dropped, ``temperature`` in buckets of 5; ``pressure``
carries the bench's stamp and stays), ``none`` an empty set. Issue 18's target: at least
0.8x of the run without.
"""

from __future__ import annotations

import os
from typing import Any

from ngsi.context import Identity
from ngsi.server.guards import Incoming, Verdict, admit
from security.privacy.feed import GivenFeed
from security.privacy.keys import KeyRing
from security.privacy.notifications import PrivateNotificationFilter
from security.privacy.policy import parse_policies
from security.privacy.release import Snapshot

CONSUMER = "bench-consumer"
POLICY = {
    "id": "bench-3-transforms", "consumer": {"kind": "user", "id": CONSUMER}, "entityType": "Room",
    "attributes": {"group": [{"transform": "drop"}], "temperature": [{"transform": "generalize", "bucket": 5}]},
    "idTransform": {"transform": "pseudonymize"},
}
_IDENTITY = Identity(user_id=CONSUMER)


async def _owner(request: Incoming) -> Verdict | None:
    return admit(request.ctx.with_identity(_IDENTITY))


def owner_guard(config: Any) -> Any:
    """``-guard bench.privacy:owner_guard``."""
    return _owner


def notification_filter(config: Any) -> PrivateNotificationFilter:
    """``-notifFilter bench.privacy:notification_filter``."""
    policies = parse_policies([POLICY]) if os.environ.get("BENCH_PRIVACY") == "policy" else ()
    return PrivateNotificationFilter(None, GivenFeed(Snapshot(1, policies, KeyRing.generate())))


def broker_args() -> list[str]:
    return ["-guard", "bench.privacy:owner_guard", "-notifFilter", "bench.privacy:notification_filter"]
