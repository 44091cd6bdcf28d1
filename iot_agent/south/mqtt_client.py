"""A small MQTT 3.1.1 client on the agent's event loop (QoS 0, 1 and 2; no TLS, no will).

Why not paho's network thread: paho reads one packet per turn of its select loop, and
each turn gives up and takes back the GIL from the event loop that does the real work.
Under load a measure then waits for a GIL switch interval (5 ms) per packet, which held
the agent near 100 messages/s. Here the socket is an asyncio transport: one
``data_received`` call parses every complete packet of the chunk read, and hands each
PUBLISH to ``on_message(topic, payload)`` synchronously, on the loop thread, with no
thread hop, no future and no task per message.

What it does: CONNECT (client id, clean session, keepalive, username/password),
SUBSCRIBE (again after every reconnect), PUBLISH in and out at QoS 0/1/2 (incoming QoS 1
is acknowledged, QoS 2 goes through PUBREC/PUBREL/PUBCOMP), PINGREQ when idle, and
reconnects with a doubling delay (``reconnect_delay``). A QoS 1/2 message published
while disconnected is refused (``MqttError``), not queued; in-flight ones are not sent
again after a reconnect (clean session).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable

log = logging.getLogger("waziup.iot_agent.mqtt")

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14
PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"
_U16 = struct.Struct(">H")
CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}

MessageHandler = Callable[[str, bytes], None]


class MqttError(Exception):
    """Not connected, refused, or a broken packet."""


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _string(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return _U16.pack(len(raw)) + raw


def packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + _remaining_length(len(body)) + body


def connect_packet(client_id: str, keepalive: int, username: str | None, password: str | None, clean: bool = True) -> bytes:
    flags = 0x02 if clean else 0
    payload = _string(client_id)
    if username:
        flags |= 0x80
        payload += _string(username)
        if password:
            flags |= 0x40
            payload += _string(password)
    return packet(CONNECT << 4, _string("MQTT") + bytes((4, flags)) + _U16.pack(keepalive) + payload)


def publish_packet(topic: str, payload: bytes, qos: int = 0, retain: bool = False, packet_id: int = 0) -> bytes:
    first = (PUBLISH << 4) | (qos << 1) | (1 if retain else 0)
    head = _string(topic) + (_U16.pack(packet_id) if qos else b"")
    return packet(first, head + payload)


class _Protocol(asyncio.Protocol):
    """One connection: frames packets and passes them to the client."""

    def __init__(self, client: MqttClient) -> None:
        self.client = client
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.connack: asyncio.Future[int] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.last_received = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connack.done():
            self.connack.set_exception(MqttError(f"connection lost before CONNACK: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise MqttError("not connected")
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        buffer = self.buffer
        buffer += data
        size = len(buffer)
        pos = 0
        while size - pos >= 2:
            length, shift, i, complete = 0, 0, pos + 1, False
            while i < size:
                byte = buffer[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    complete = True
                    break
                shift += 7
                if shift > 21:
                    self._broken("remaining length over 4 bytes")
                    return
            if not complete:
                break  # the length itself is incomplete
            end = i + length
            if end > size:
                break
            first = buffer[pos]
            body = bytes(buffer[i:end])
            pos = end
            try:
                self._packet(first, body)
            except MqttError as exc:
                self._broken(str(exc))
                return
        if pos:
            del buffer[:pos]

    def _broken(self, why: str) -> None:
        log.warning("MQTT: %s; reconnecting", why)
        self.buffer.clear()
        if self.transport is not None:
            self.transport.close()

    def _packet(self, first: int, body: bytes) -> None:
        kind = first >> 4
        if kind == PUBLISH:
            qos = (first >> 1) & 3
            if len(body) < 2:
                raise MqttError("short PUBLISH")
            end = 2 + _U16.unpack_from(body)[0]
            try:
                topic = body[2:end].decode("utf-8")
            except UnicodeDecodeError:
                raise MqttError("PUBLISH topic is not UTF-8") from None
            if qos:
                packet_id = _U16.unpack_from(body, end)[0]
                end += 2
                self.write(bytes((PUBACK << 4 if qos == 1 else PUBREC << 4, 2)) + _U16.pack(packet_id))
            self.client.deliver(topic, body[end:])
        elif kind == PUBREL:
            self.write(bytes((PUBCOMP << 4, 2)) + body[:2])
        elif kind == PUBREC:  # our QoS 2 publish: release it
            self.write(bytes(((PUBREL << 4) | 2, 2)) + body[:2])
        elif kind == CONNACK:
            if not self.connack.done():
                self.connack.set_result(body[1] if len(body) > 1 else 255)
        elif kind == SUBACK:
            refused = [i for i, code in enumerate(body[2:]) if code == 0x80]
            if refused:
                log.warning("MQTT broker refused %d subscriptions", len(refused))
        # PUBACK, PUBCOMP, PINGRESP, UNSUBACK: nothing to do (last_received already noted)


class MqttClient:
    """Connects, keeps the connection (reconnecting), subscribes and publishes."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str,
        on_message: MessageHandler,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 60,
        reconnect_delay: tuple[float, float] = (1.0, 30.0),
        on_connect: Callable[[], None] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.client_id = client_id
        self.username, self.password = username, password
        self.keepalive = keepalive
        self.reconnect_delay = reconnect_delay
        self.on_message = on_message
        self.on_connect = on_connect
        self.subscriptions: list[tuple[str, int]] = []
        self.connected = asyncio.Event()
        self._protocol: _Protocol | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._next_id = 0

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (and again whenever the connection drops)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="mqtt-client")

    async def stop(self) -> None:
        self._stopping = True
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None and not protocol.transport.is_closing():
            with contextlib.suppress(MqttError):
                protocol.write(DISCONNECT_PACKET)
            protocol.transport.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.connected.clear()

    async def _run(self) -> None:
        delay = self.reconnect_delay[0]
        loop = asyncio.get_running_loop()
        while not self._stopping:
            protocol: _Protocol | None = None
            try:
                _, protocol = await asyncio.wait_for(
                    loop.create_connection(lambda: _Protocol(self), self.host, self.port), 10
                )
                protocol.write(connect_packet(self.client_id, self.keepalive, self.username, self.password))
                code = await asyncio.wait_for(asyncio.shield(protocol.connack), 10)
                if code != 0:
                    raise MqttError(f"connection refused: {CONNACK_REASONS.get(code, code)}")
                self._protocol = protocol
                if self.subscriptions:
                    protocol.write(self._subscribe_packet(self.subscriptions))
                self.connected.set()
                delay = self.reconnect_delay[0]
                log.info("MQTT connected to %s:%s", self.host, self.port)
                if self.on_connect is not None:
                    self.on_connect()
                await self._keep_alive(protocol)
                if not self._stopping:
                    log.warning("MQTT connection to %s:%s lost; reconnecting", self.host, self.port)
            except (OSError, asyncio.TimeoutError, MqttError) as exc:
                log.warning("MQTT broker %s:%s: %s; retrying in %.0f s", self.host, self.port, exc or type(exc).__name__, delay)
            finally:
                self.connected.clear()
                self._protocol = None
                if protocol is not None and protocol.transport is not None:
                    protocol.transport.close()
            if self._stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_delay[1])

    async def _keep_alive(self, protocol: _Protocol) -> None:
        """PINGREQ every keepalive/2 s; a broker silent for 1.5 keepalives is gone."""
        period = max(1.0, self.keepalive / 2)
        while not protocol.closed.done():
            done, _ = await asyncio.wait([protocol.closed], timeout=period)
            if done:
                return
            if time.monotonic() - protocol.last_received > 1.5 * self.keepalive:
                log.warning("MQTT broker %s:%s silent for %.0f s", self.host, self.port, 1.5 * self.keepalive)
                assert protocol.transport is not None
                protocol.transport.close()
                return
            with contextlib.suppress(MqttError):
                protocol.write(PINGREQ_PACKET)

    # -- messages ------------------------------------------------------------------------------

    def deliver(self, topic: str, payload: bytes) -> None:
        try:
            self.on_message(topic, payload)
        except Exception:
            log.exception("MQTT message on %s failed", topic)

    def _packet_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def _subscribe_packet(self, filters: list[tuple[str, int]]) -> bytes:
        body = _U16.pack(self._packet_id()) + b"".join(_string(f) + bytes((qos,)) for f, qos in filters)
        return packet((SUBSCRIBE << 4) | 2, body)

    def subscribe(self, filters: list[tuple[str, int]]) -> None:
        """Subscribe now if connected, and after every (re)connection."""
        self.subscriptions.extend(filters)
        if self._protocol is not None and self.connected.is_set():
            self._protocol.write(self._subscribe_packet(filters))

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        if not topic or "+" in topic or "#" in topic:
            raise MqttError(f"invalid topic to publish on: {topic!r}")
        protocol = self._protocol
        if protocol is None or not self.connected.is_set():
            raise MqttError("not connected")
        protocol.write(publish_packet(topic, payload, qos, retain, self._packet_id() if qos else 0))


def topic_matches(filter: str, topic: str) -> bool:
    """MQTT filter matching (``+`` one level, ``#`` the rest); ``$`` topics need an explicit first level."""
    if topic.startswith("$") and filter[:1] in ("+", "#"):
        return False
    parts, levels = filter.split("/"), topic.split("/")
    for i, part in enumerate(parts):
        if part == "#":
            return True
        if i >= len(levels) or (part != "+" and part != levels[i]):
            return False
    return len(parts) == len(levels)
