"""The change feed: every update of the chosen tenants and types, delivered to one URL, at
least once and in order, whatever is killed when. It feeds the history service
(``waziup run`` points it there); any NGSI-v2 notification receiver can take it.

Why not a subscription: Orion's notifications live in memory. A broker killed after it
acknowledged a write, or a receiver killed before it committed what it was sent, loses
them, and a time series with holes is worth little (QuantumLeap's issue #722). The feed
keeps an outbox in the broker's own store instead:

1. **Append** (``listener``, the entity service's change hook, awaited before the write is
   answered): the attributes the request wrote (``TimeInstant`` among them when it wrote
   it), as one entity in Orion's normalized notification form, each attribute with its
   metadata and ``dateModified``, becomes a row of the store's outbox, committed before the client hears "done".
   So an acknowledged write is in the outbox, even if the broker dies right after.
2. **Deliver** (one task per broker; with ``-workers N`` the one holding the store's lease
   for the feed): the oldest rows, rows of one tenant and service path together, go out
   as one notification ``{"subscriptionId": <feed id>, "data": [...]}`` with the header
   ``Waziup-Sequence: s1,s2,...`` (one outbox sequence number per element of ``data``).
   Rows are removed only after a 2xx answer; any failure is retried, with back-off, for
   ever, in order.
3. **Exactly once** is the receiver's half: a sequence number it has committed is never
   stored again (the history service keeps the highest one per feed in the same
   transaction as the values; ``analytics/history``). Sequence numbers grow in commit
   order (the PostgreSQL store serializes appends with a transaction lock), so "highest
   committed" is a sound cursor.

The receiver may be secured as any service of the platform: an https URL is checked against
``ssl_context`` (the broker's ``-notifCaFile`` trust, which ``waziup run -tls`` points at the
platform's certificate), and ``credentials`` (``-feedTokenURL``: an OAuth2 token of the
broker's service account) put an ``X-Auth-Token`` on every delivery for a receiver behind
a PEP. A 401 drops the token, so the retry fetches a new one; tokens are fetched again
before they expire (``ngsi.client.credentials``) and never logged.

What it does not do: feed deletions (a history keeps what was), nor changes of tenants or
types left out by ``-feedTenants`` / ``-feedTypes``, nor of the tenants ``-feedSkipTenants``
names (the WAZIUP API's, which hands its datapoints to the history itself, in the request).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from collections.abc import Sequence

from ngsi import jsonout
from ngsi.client import http11
from ngsi.client.credentials import Credentials, OAuth2ClientCredentials
from ngsi.destinations import Gate

from .changes import DELETE, Change
from .store.base import Store
from .subscriptions.notify import USER_AGENT, notified_attrs, notified_metadata, render_notified_entity

log = logging.getLogger("waziup.feed")

BATCH = 500  # rows at most in one notification
BATCH_BYTES = 1 << 20  # and about this many bytes of entities
LEASE = 10.0  # seconds a worker holds the feed without renewing it
IDLE_POLL = 1.0  # seconds between looks at the outbox when nothing was appended here
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0  # seconds between tries after a failure
TIMEOUT = 30.0  # seconds for the receiver to answer one batch
SEQUENCE_HEADER = "Waziup-Sequence"

OutboxRow = tuple[int, str, str, bytes]  # (sequence, tenant, service path, entity JSON)


def feed_entity(change: Change) -> bytes | None:
    """What the feed records of ``change``: the written attributes of the entity, normalized,
    with their metadata and ``dateModified``; None when there is nothing to record."""
    if change.action == DELETE or change.after is None:
        return None
    entity = change.after
    written = [name for name in change.touched if name in entity["attrs"]]
    if not written:
        return None
    # dateModified as metadata of each attribute, not as an attribute: the receiver takes it for
    # the time index (QuantumLeap's order: TimeInstant first), without storing a series of it.
    sub = {"id": "feed", "notification": {"attrs": written, "metadata": ["dateModified", "*"]}}
    attrs = notified_attrs(sub, change, "entityUpdate")
    mds = [notified_metadata(sub, change, name, attr) for name, attr in attrs]
    return jsonout.dumps(render_notified_entity(entity["id"], entity["type"], attrs, mds, "normalized"))


def batches(rows: Sequence[OutboxRow]) -> list[list[OutboxRow]]:
    """Consecutive rows of one (tenant, service path), at most BATCH rows / about
    BATCH_BYTES each, in outbox order: one notification each."""
    out: list[list[OutboxRow]] = []
    size = 0
    for row in rows:
        current = out[-1] if out else None
        if (
            current is None
            or current[-1][1:3] != row[1:3]
            or len(current) >= BATCH
            or size + len(row[3]) > BATCH_BYTES
        ):
            out.append([row])
            size = len(row[3])
        else:
            current.append(row)
            size += len(row[3])
    return out


def notification_of(feed_id: str, batch: Sequence[OutboxRow]) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and body of one batch."""
    _, tenant, service_path, _ = batch[0]
    headers = [("Content-Type", "application/json; charset=utf-8"), ("User-Agent", USER_AGENT)]
    if tenant:
        headers.append(("Fiware-Service", tenant))
    headers += [
        ("Fiware-Servicepath", service_path),
        ("Ngsiv2-AttrsFormat", "normalized"),
        (SEQUENCE_HEADER, ",".join(str(row[0]) for row in batch)),
    ]
    body = b'{"subscriptionId":' + jsonout.dumps(feed_id) + b',"data":[' + b",".join(row[3] for row in batch) + b"]}"
    return headers, body


class Feed:
    """The outbox's two halves; ``listener`` goes into EntityService.listeners."""

    def __init__(
        self,
        store: Store,
        url: str,
        *,
        feed_id: str = "waziup-feed",
        tenants: Sequence[str] = (),
        types: Sequence[str] = (),
        skip_tenants: Sequence[str] = (),
        gate: Gate | None = None,
        client: http11.HTTPClient | None = None,
        ssl_context: ssl.SSLContext | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.store = store
        self.url = url
        self.feed_id = feed_id
        self.tenants = frozenset(t.lower() for t in tenants)  # Fiware-Service, as the broker keeps it
        self.types = frozenset(types)
        self.skip_tenants = frozenset(t.lower() for t in skip_tenants)  # tenants whose writer feeds the history itself
        self.gate = gate
        self.ssl_context = ssl_context  # None: the system's CAs
        self.credentials = credentials  # None: no token sent
        self._client = client
        self._own_client = client is None
        self._holder = secrets.token_hex(8)  # this process, for the store's lease
        self._appended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0  # rows acknowledged by the receiver (tests, logs)

    # -- append ------------------------------------------------------------------------------

    def wanted(self, change: Change) -> bool:
        entity = change.entity
        return (
            (not self.tenants or change.tenant in self.tenants) and change.tenant not in self.skip_tenants
            and (not self.types or entity["type"] in self.types)
        )

    async def listener(self, change: Change) -> None:
        if not self.wanted(change):
            return
        payload = feed_entity(change)
        if payload is None:
            return
        entity = change.entity
        await self.store.outbox_append(self.feed_id, [(change.tenant, entity.get("servicePath", "/"), payload)])
        self._appended.set()

    # -- deliver -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._deliver_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        if self._client is not None and self._own_client:
            await self._client.aclose()
            self._client = None

    async def _deliver_forever(self) -> None:
        backoff = BACKOFF_FIRST
        while True:
            try:
                progressed = await self.deliver_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("feed to %s: %s; trying again in %.1f s", self.url, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_FIRST
            if not progressed:
                self._appended.clear()
                try:
                    await asyncio.wait_for(self._appended.wait(), IDLE_POLL)
                except asyncio.TimeoutError:
                    pass

    async def deliver_once(self) -> bool:
        """Deliver what the outbox holds now (if this process holds the lease); True when
        something was delivered. Raises on a failed delivery (the caller backs off)."""
        if not await self.store.outbox_lease(self.feed_id, self._holder, LEASE):
            return False
        rows = await self.store.outbox_read(self.feed_id, BATCH * 4)
        if not rows:
            return False
        for batch in batches(rows):
            await self._send(batch)
            await self.store.outbox_remove(self.feed_id, batch[-1][0])
            self.delivered += len(batch)
        return True

    async def _send(self, batch: list[OutboxRow]) -> None:
        if self._client is None:
            self._client = http11.HTTPClient(max_per_host=1, gate=self.gate, ssl_context=self.ssl_context)
        if self.gate is not None:
            decision = await self.gate.check(self.url)
            if not decision.allowed:
                raise RuntimeError(f"destination refused: {decision.reason}")
        headers, body = notification_of(self.feed_id, batch)
        if self.credentials is not None:
            headers += await self.credentials.headers()  # AuthError: retried like any failure
        response = await self._client.request("POST", self.url, headers, body, TIMEOUT)
        if response.status == 401 and self.credentials is not None:
            await self.credentials.expired()  # the retry fetches a new token
        if not 200 <= response.status < 300:
            raise RuntimeError(f"HTTP {response.status} for rows {batch[0][0]}..{batch[-1][0]}")


def feed_credentials(
    token_url: str, client_id: str, client_secret: str, *, user: str = "", password: str = "",
    ssl_context: ssl.SSLContext | None = None,
) -> Credentials | None:
    """The feed's token source (``-feedTokenURL``), None without a token URL: the password
    grant of a service account when ``user`` is given, else client_credentials; the token
    goes in ``X-Auth-Token`` (what the platform's PEP reads first, as Wilma)."""
    if not token_url:
        return None
    transport = http11.HTTPClient(max_per_host=1, ssl_context=ssl_context)
    return OAuth2ClientCredentials(transport, token_url, client_id, client_secret, header="X-Auth-Token",
                                   username=user, password=password)


def parse_list(text: str) -> list[str]:
    """A comma-separated option (``-feedTenants a,b``); blanks dropped."""
    return [item.strip() for item in text.split(",") if item.strip()]


