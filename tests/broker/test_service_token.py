"""``-notifTokenFor``: the broker's own token on its notifications to the platform's
receivers behind a PEP (broker/subscriptions/service_token.py), against a real receiver on
loopback: in place of the writer's token, only on covered URLs, never on ``httpCustom``
notifications, fetched again after a 401. The whole path (the rules service's PEP admitting
it, refusing a subscriber's custom notice) is in tests/test_auth_platform.py."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.changes import Change
from broker.config import ConfigError, parse
from broker.subscriptions.sender import Notifier
from broker.subscriptions.service_token import ServiceToken, covered
from ngsi.context import RequestContext
from tests.broker.test_notify import FakeRegistry, attr, entity, sub
from tests.loopback_receiver import LoopbackReceiver


class Account:
    """A token source that counts its tokens (the real one asks the identity manager)."""

    def __init__(self) -> None:
        self.issued = 1
        self.refused = 0

    async def headers(self) -> list[tuple[str, str]]:
        return [("X-Auth-Token", f"broker-token-{self.issued}")]

    async def expired(self) -> None:
        self.refused += 1
        self.issued += 1


@pytest.mark.parametrize(("url", "yes"), [
    ("http://h:9090/notices", True), ("http://h:9090/notices?x=1", True), ("http://h:9090/notices/a", True),
    ("http://h:9090/noticesX", False), ("http://h:90901/notices", False), ("http://h:9090/other", False),
    ("https://h:9090/notices", False),
])
def test_covered_at_a_boundary_only(url: str, yes: bool) -> None:
    assert covered(url, ["http://h:9090/notices"]) is yes


@given(st.text(max_size=30), st.text(max_size=30))
def test_a_covered_url_extends_its_prefix_at_a_boundary(prefix: str, rest: str) -> None:
    url = prefix + rest
    if covered(url, [prefix]):
        assert url == prefix or prefix.endswith("/") or rest[0] in "/?#"
    assert not covered(url, [])


def test_the_option_needs_the_brokers_account() -> None:
    with pytest.raises(ConfigError, match="-notifTokenFor needs"):
        parse(["-notifTokenFor", "http://127.0.0.1:9090/notices"], {})
    config = parse(["-notifTokenFor", "http://127.0.0.1:9090/notices", "-feedTokenURL", "http://idm/oauth2/token",
                    "-feedClientId", "app"], {"WAZIUP_FEED_CLIENT_SECRET": "s"})
    assert config.notif_token_for == ("http://127.0.0.1:9090/notices",)


def test_the_broker_vouches_for_its_own_notifications_only() -> None:
    async def scenario() -> tuple[LoopbackReceiver, LoopbackReceiver, Account]:
        account = Account()
        async with LoopbackReceiver(path="/notices", statuses=[401]) as platform, LoopbackReceiver() as other:
            registry = FakeRegistry([
                sub(http={"url": platform.url}),  # the broker's words: vouched for
                sub(httpCustom={"url": platform.url, "json": {"forged": True}}),  # a subscriber's: not
                sub(http={"url": other.url}),  # another receiver: never sent the broker's token
            ])
            notifier = Notifier(registry, service_token=ServiceToken((platform.url,), account))  # type: ignore[arg-type]
            await notifier.start()
            ctx = RequestContext(correlator="c", auth_token="writers-token")
            for value in (1, 2):
                notifier.dispatch(Change(ctx, "create", None, entity({"A": attr(value)}), ("A",)))
                await notifier.drain()
            await notifier.stop()
            return platform, other, account

    platform, other, account = asyncio.run(scenario())
    tokens = sorted((r[1].get("x-auth-token", ""), r[1].get("ngsiv2-attrsformat")) for r in platform.requests)
    # the first vouched notice was refused (401): the token was fetched again for the second
    assert tokens == [("broker-token-1", "normalized"), ("broker-token-2", "normalized"),
                      ("writers-token", "custom"), ("writers-token", "custom")]
    assert account.refused == 1
    assert [r[1]["x-auth-token"] for r in other.requests] == ["writers-token", "writers-token"]  # Orion's rule
