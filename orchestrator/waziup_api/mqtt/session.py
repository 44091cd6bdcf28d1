"""Sessions (what outlives a connection) and outboxes (what a connection has yet to write).

Why apart from the connection: a persistent session (clean session 0) keeps its
subscriptions, its unacknowledged QoS 1 messages and a queue of the messages that came
while it was offline; the connection is only the socket it is reached through now.
Delivery to a session never awaits: the router hands a message to every subscriber in
turn, and one slow socket must not hold up the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import NamedTuple, Protocol

from ngsi.client.mqtt.packets import MAX_PACKET_ID, encode_publish, MQTT_3_1_1

from orchestrator.waziup_api.caller import Caller

log = logging.getLogger("waziup.api.mqtt")


class Message(NamedTuple):
    """One message as delivered to one subscriber (QoS already lowered to the granted one)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


def publish_bytes(message: Message, packet_id: int = 0, dup: bool = False) -> bytes:
    """The PUBLISH packet that carries ``message`` (MQTT 3.1.1)."""
    return encode_publish(
        message.topic, message.payload, message.qos, message.retain, dup, packet_id, None, MQTT_3_1_1
    )


class Outbox:
    """A connection's outgoing packets, written by one task so no sender ever waits on a socket.

    Bounded two ways: QoS 0 messages are dropped once ``soft_limit`` packets are waiting
    (a slow subscriber loses what it could lose anyway); anything else (acknowledgements,
    QoS 1 within the in-flight window) past ``hard_limit`` packets means the peer does not
    read at all, and ``put`` answers False so the connection is closed.
    """

    def __init__(self, soft_limit: int, hard_limit: int) -> None:
        self._queue: deque[bytes] = deque()
        self._ready = asyncio.Event()
        self._soft, self._hard = soft_limit, hard_limit
        self.closed = False
        self.dropped = 0
        self.owner = ""  # the client id, for the log

    def put(self, data: bytes, *, droppable: bool = False) -> bool:
        """Queue ``data``; False when the peer is hopelessly behind (the caller closes it)."""
        if self.closed:
            return True
        size = len(self._queue)
        if droppable and size >= self._soft:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("mqtt slow subscriber client=%s qos0_dropped=%s", self.owner, self.dropped)
            return True
        if size >= self._hard:
            return False
        self._queue.append(data)
        self._ready.set()
        return True

    async def take(self) -> bytes:
        """Everything queued, as one chunk, once there is something (empty once closed)."""
        while not self._queue and not self.closed:
            self._ready.clear()
            await self._ready.wait()
        data = b"".join(self._queue)
        self._queue.clear()
        return data

    def close(self) -> None:
        self.closed = True
        self._queue.clear()
        self._ready.set()


class Link(Protocol):
    """What a session needs of the connection it is attached to."""

    def send(self, data: bytes, *, droppable: bool = False) -> None: ...


class Session:
    """A client id's MQTT session: subscriptions, QoS 1 state, and the queue while offline."""

    def __init__(self, client_id: str, clean: bool, caller: Caller, *, window: int, queue_limit: int) -> None:
        self.client_id = client_id
        self.clean = clean
        self.caller = caller  # of the last connection: may_receive applies to queued messages too
        self.subscriptions: dict[str, int] = {}
        self.inflight: dict[int, Message] = {}  # packet id -> QoS 1 message sent, not yet PUBACKed
        self.pending: deque[Message] = deque(maxlen=queue_limit)
        self.incoming_qos2: set[int] = set()  # packet ids PUBRECed, awaiting PUBREL
        self.link: Link | None = None
        self.dropped = 0  # QoS 1 messages lost to a full queue (the oldest go first)
        self._window = window
        self._next_id = 0

    def deliver(self, message: Message) -> None:
        """Send ``message`` now, or queue it (QoS 1 only) until the window or the client is back."""
        if message.qos == 0:
            if self.link is not None:
                self.link.send(publish_bytes(message), droppable=True)
            return
        if self.link is not None and len(self.inflight) < self._window and not self.pending:
            self._send_new(message)
            return
        if len(self.pending) == self.pending.maxlen:
            self.dropped += 1
            if self.dropped % 1000 == 1:  # the first drop, then one line per thousand
                log.warning("mqtt queue full client=%s dropped=%s", self.client_id, self.dropped)
        self.pending.append(message)

    def acked(self, packet_id: int) -> None:
        """A PUBACK: free the slot and send what waited for one."""
        self.inflight.pop(packet_id, None)
        self._fill()

    def attach(self, link: Link) -> None:
        """Resume on a new connection: resend the unacknowledged messages (DUP), then the queue."""
        self.link = link
        for packet_id, message in self.inflight.items():
            link.send(publish_bytes(message, packet_id, dup=True))
        self._fill()

    def detach(self) -> None:
        self.link = None

    def _fill(self) -> None:
        while self.link is not None and self.pending and len(self.inflight) < self._window:
            self._send_new(self.pending.popleft())

    def _send_new(self, message: Message) -> None:
        packet_id = self._packet_id()
        self.inflight[packet_id] = message
        assert self.link is not None
        self.link.send(publish_bytes(message, packet_id))

    def _packet_id(self) -> int:
        """The next packet identifier not in flight (the window is far below 65,535)."""
        while True:
            self._next_id = self._next_id % MAX_PACKET_ID + 1
            if self._next_id not in self.inflight:
                return self._next_id
