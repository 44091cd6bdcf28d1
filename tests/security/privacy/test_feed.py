"""The privacy feed (security/privacy/feed.py): what it keeps when the identity manager's
export changes, breaks or never comes, and the guard's refusal without policies."""

from __future__ import annotations

import asyncio
from typing import Any

from ngsi.context import RequestContext
from ngsi.server.guards import Incoming
from security.pep.replies import Replies
from security.privacy.feed import PrivacyFeed
from security.privacy.guard import PrivacyGuard
from security.privacy.keys import KeyRing

POLICY = {"id": "p", "consumer": {"kind": "user", "id": "u"}, "attributes": {"x": [{"transform": "drop"}]}}


class Exports:
    """An identity manager's side of the feed: the exports it answers, in turn."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.base_url = "http://idm"

    async def privacy_export(self) -> dict[str, Any]:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]


def test_a_newer_export_replaces_a_broken_one_never_does() -> None:
    keys = KeyRing.generate().to_dict()
    idm = Exports({"policy_version": 4, "policies": [POLICY], "keys": keys},
                  {"policy_version": 5, "policies": [{"id": "broken"}], "keys": keys},
                  {"policy_version": 3, "policies": [], "keys": keys},
                  {"policy_version": 6, "policies": [], "keys": keys})
    feed = PrivacyFeed(idm)  # type: ignore[arg-type]

    async def run() -> list[Any]:
        seen = []
        for _ in range(4):
            await feed.refresh()
            assert feed.snapshot is not None
            seen.append((feed.snapshot.version, [p.id for p in feed.snapshot.policies]))
        return seen

    assert asyncio.run(run()) == [(4, ["p"]), (4, ["p"]), (4, ["p"]), (6, [])]


def test_an_export_without_keys_is_refused_and_keyrock_has_no_policies() -> None:
    feed = PrivacyFeed(Exports({"policy_version": 1, "policies": [POLICY]}))  # type: ignore[arg-type]
    asyncio.run(feed.refresh())
    assert feed.snapshot is None
    # what IdMClient.privacy_export makes of Keyrock's 404: nothing to apply, known at once
    keyrock = PrivacyFeed(Exports({"policy_version": None, "policies": [], "keys": None}))  # type: ignore[arg-type]
    asyncio.run(keyrock.refresh())
    assert keyrock.snapshot is not None and keyrock.snapshot.policies == ()


def test_the_guard_fails_closed_without_policies() -> None:
    class Never(PrivacyFeed):
        async def current(self, wait: float = 5.0) -> None:
            return None

    guard = PrivacyGuard(Never(Exports()), None, Replies("http://idm"))  # type: ignore[arg-type]
    incoming = Incoming("GET", "/v2/entities", b"", {}, ("127.0.0.1", 1), RequestContext(), None, 0, 0)  # type: ignore[arg-type]
    verdict = asyncio.run(guard(incoming))
    assert verdict is not None and verdict.reply is not None and verdict.reply.status_code == 500
    assert b"InternalServerError" in verdict.reply.body
