"""The broker's change feed to a secured history (broker/feed.py, broker/config.py): over
https it trusts what it is given (the broker's -notifCaFile), and behind a PEP it sends the
token of its account, fetching a new one when the receiver refuses it. A real https
receiver on loopback; the token source is a stub (the real identity manager's tokens are
exercised by tests/test_auth_platform.py)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest

from broker import config as broker_config
from broker.changes import Change
from broker.feed import Feed, feed_credentials
from broker.store.memory import MemoryStore
from ngsi.client.credentials import OAuth2ClientCredentials
from ngsi.client.http11 import CertificateError
from ngsi.context import RequestContext
from ngsi.tls import trust_context
from orchestrator import tls
from tests.loopback_receiver import LoopbackReceiver

NOW = 1_700_000_000.0


def _change(value: int) -> Change:
    entity = {"id": "R1", "type": "Room", "servicePath": "/", "creDate": NOW, "modDate": NOW,
              "attrs": {"t": {"type": "Number", "value": value, "md": {}, "creDate": NOW, "modDate": NOW}}}
    return Change(RequestContext(tenant="coop"), "update", entity, entity, ("t",))


class Tokens:
    """A token source: token n until the receiver refuses it (``expired``), then n + 1."""

    def __init__(self) -> None:
        self.n = 1

    async def headers(self) -> list[tuple[str, str]]:
        return [("X-Auth-Token", f"token-{self.n}")]

    async def expired(self) -> None:
        self.n += 1


def receiver_for(context: ssl.SSLContext | None, accepted: str = "") -> LoopbackReceiver:
    """An https (or http) receiver answering 401 to every token but ``accepted``."""
    return LoopbackReceiver(
        context=context, host="localhost", path="/v2/notify",
        answer=lambda headers: 200 if not accepted or headers.get("x-auth-token") == accepted else 401,
    )


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(the receiver's server context, a client context trusting it), as waziup run -tls makes them."""
    folder = tmp_path_factory.mktemp("feed-tls")
    cert, key = tls.self_signed(["localhost", "127.0.0.1"])
    (folder / "cert.pem").write_bytes(cert)
    (folder / "key.pem").write_bytes(key)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return server, trust_context("-notifCaFile", str(folder / "cert.pem"))


def test_the_feed_trusts_what_it_is_given_and_nothing_else(certificate: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server, trust = certificate

    async def scenario() -> tuple[LoopbackReceiver, BaseException | None]:
        async with receiver_for(server) as receiver:
            failure: BaseException | None = None
            for value, context in ((1, None), (2, trust)):  # the system's CAs only, then the given file's
                store = MemoryStore()
                await store.open()
                feed = Feed(store, receiver.url, ssl_context=context)
                await feed.listener(_change(value))
                try:
                    assert await feed.deliver_once()
                except CertificateError as exc:
                    failure = exc
                await feed.stop()
            return receiver, failure

    receiver, failure = asyncio.run(scenario())
    assert failure is not None
    assert [e["t"]["value"] for body in receiver.bodies() for e in body["data"]] == [2]


def test_a_refused_token_is_fetched_again_and_the_rows_delivered() -> None:
    async def scenario() -> tuple[LoopbackReceiver, list[Any]]:
        store = MemoryStore()
        await store.open()
        async with receiver_for(None, accepted="token-2") as receiver:
            feed = Feed(store, receiver.url, credentials=Tokens())
            await feed.listener(_change(1))
            with pytest.raises(RuntimeError, match="HTTP 401"):
                await feed.deliver_once()  # token-1 refused: kept in the outbox, token dropped
            assert await feed.deliver_once()
            left = await store.outbox_read(feed.feed_id, 10)
            await feed.stop()
            return receiver, left

    receiver, left = asyncio.run(scenario())
    assert [r[1].get("x-auth-token") for r in receiver.requests] == ["token-1", "token-2"]
    assert left == [] and len(receiver.bodies()) == 1


def test_feed_account_options_and_secrets() -> None:
    env = {"WAZIUP_FEED_TOKEN_URL": "http://idm:3005/oauth2/token", "WAZIUP_FEED_CLIENT_ID": "app",
           "WAZIUP_FEED_CLIENT_SECRET": "s3cret", "WAZIUP_FEED_USER": "waziup-broker", "WAZIUP_FEED_PASSWORD": "pw"}
    config = broker_config.parse([], env)
    assert (config.feed_token_url, config.feed_client_id, config.feed_client_secret, config.feed_user,
            config.feed_password) == ("http://idm:3005/oauth2/token", "app", "s3cret", "waziup-broker", "pw")
    assert "s3cret" not in repr(config) and "pw'" not in repr(config)  # never in a log line of the Config
    credentials = feed_credentials(config.feed_token_url, config.feed_client_id, config.feed_client_secret,
                                   user=config.feed_user, password=config.feed_password)
    assert isinstance(credentials, OAuth2ClientCredentials) and credentials.header == "X-Auth-Token"
    assert feed_credentials("", "app", "s3cret") is None
    with pytest.raises(broker_config.ConfigError, match="WAZIUP_FEED_CLIENT_SECRET"):
        broker_config.parse(["-feedTokenURL", "http://idm/oauth2/token", "-feedClientId", "app"], {})
    with pytest.raises(broker_config.ConfigError, match="WAZIUP_FEED_PASSWORD"):
        broker_config.parse(["-feedUser", "u"], {k: v for k, v in env.items() if k != "WAZIUP_FEED_PASSWORD"})
    with pytest.raises(broker_config.ConfigError, match="option -feedTokenURL: 'idm:3005' is not"):
        broker_config.parse(["-feedTokenURL", "idm:3005"], env)
    with pytest.raises(broker_config.ConfigError):  # a secret is never an option: the process list shows options
        broker_config.parse(["-feedClientSecret", "s3cret"], {})


def test_history_https_options(tmp_path: Path) -> None:
    from analytics.history.config import ConfigError, parse

    cert, key = tls.self_signed(["localhost"])
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    config = parse(["-https", "-key", str(tmp_path / "k.pem"), "-cert", str(tmp_path / "c.pem")], {})
    assert (config.https, config.https_key, config.https_cert) == (True, str(tmp_path / "k.pem"), str(tmp_path / "c.pem"))
    env = {"WAZIUP_HISTORY_HTTPS": "true", "WAZIUP_HISTORY_HTTPS_KEY": str(tmp_path / "k.pem"),
           "WAZIUP_HISTORY_HTTPS_CERT": str(tmp_path / "c.pem")}
    assert parse([], env).https and not parse([], {}).https
    with pytest.raises(ConfigError, match="-https needs -key FILE and -cert FILE: -cert missing"):
        parse(["-https", "-key", "k.pem"], {})
    with pytest.raises(ConfigError, match="option -key: cannot read"):
        parse(["-https", "-key", str(tmp_path / "nope.pem"), "-cert", str(tmp_path / "c.pem")], {})
    with pytest.raises(ConfigError, match="is not the key of the certificate"):
        other_cert, _ = tls.self_signed(["localhost"])
        (tmp_path / "other.pem").write_bytes(other_cert)
        parse(["-https", "-key", str(tmp_path / "k.pem"), "-cert", str(tmp_path / "other.pem")], {})
