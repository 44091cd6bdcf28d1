"""The project's MQTT client: one asyncio session, MQTT 3.1.1 or 5, QoS 0/1/2, TLS, reconnects.

Why asyncio and not paho's network thread: paho reads one packet per turn of its
select loop, and each turn gives up and takes back the GIL from the event loop that
does the real work. Under load a message then waits for a GIL switch interval (5 ms),
which held the IoT agent near 100 messages/s. Here the socket is an asyncio transport
and :class:`_Connection` an ``asyncio.Protocol``: one ``data_received`` call parses
every complete packet of the chunk read and hands each PUBLISH to
``on_message(topic, payload, properties)`` synchronously, on the loop thread, with no
thread hop and no task or future per message. The acknowledgements of a whole chunk
(PUBACK, PUBREC, PUBCOMP) go out in one write at its end, and what the application
sends within one turn of the loop is written once too.

The session (:class:`MqttClient`) outlives connections. It keeps:

- the subscriptions, made again after every reconnect (with MQTT 5 ``retain_handling``
  1, so that a broker that kept the subscription does not send retained messages again);
- the QoS 1/2 messages not yet acknowledged ("in flight"), resent after a reconnect;
- the QoS 1/2 messages waiting to be sent (while disconnected, or beyond the broker's
  receive maximum), in a bounded queue (``max_queued``; full -> :class:`MqttError`);
- the packet identifiers of incoming QoS 2 messages between PUBREC and PUBREL, so that
  a message the broker sends again is not delivered twice (exactly once).

Resending after a reconnect needs the broker to keep its side of the session: MQTT
3.1.1 ``clean=False``, MQTT 5 ``session_expiry`` > 0 (seconds). When the broker says
it has the session (CONNACK "session present"), each in-flight PUBLISH is sent again
with the DUP flag and the same packet identifier, and a PUBREL again for each QoS 2
message that had its PUBREC: QoS 1 is then at least once and QoS 2 exactly once across
the drop. When it has no session (a clean session, or it expired or was lost), the
messages not yet acknowledged are published again as new ones (still at least once),
and a QoS 2 message that had its PUBREC counts as delivered (the broker had taken it).

A QoS 0 message published while disconnected raises :class:`MqttError`: QoS 0 promises
nothing, and a caller that wants a message kept until the broker has it uses QoS 1.

What it does not do: MQTT 5 enhanced authentication (AUTH packets) and outgoing topic
aliases; incoming topic aliases are resolved when ``connect_properties`` sets
``topic_alias_maximum``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as _ssl
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from .packets import (
    DISCONNECT,
    MQTT_3_1_1,
    MQTT_5,
    NO_PROPERTIES,
    PACKET_NAMES,
    PINGREQ_PACKET,
    PUBACK_HEAD,
    PUBCOMP_HEAD,
    PUBLISH,
    PUBREC_HEAD,
    PUBREL_HEAD,
    SUBACK,
    Auth,
    Connack,
    Connect,
    Disconnect,
    MqttError,
    MqttProtocolError,
    Pingresp,
    Puback,
    Pubcomp,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
    decode_packet,
    encode_properties,
    encode_publish,
    parse_publish,
    reason_text,
    topic_filter_problem,
    topic_name_problem,
)

log = logging.getLogger("waziup.mqtt")

#: ``on_message(topic, payload, properties)``: called on the loop thread, must not block.
#: ``properties`` are the MQTT 5 message properties (read-only and empty with 3.1.1).
MessageHandler = Callable[[str, bytes, Mapping[str, Any]], None]

_monotonic = time.monotonic
_RESUBSCRIBE_BATCH = 100  # topic filters per SUBSCRIBE when subscribing again after a reconnect


# eq=False: the queue finds (and withdraws) a message by identity; repr=False: no payloads in logs.
@dataclass(slots=True, eq=False, repr=False)
class _Outgoing:
    """A QoS 1/2 message of the application, from ``publish`` to its PUBACK or PUBCOMP."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Mapping[str, Any] | None
    future: asyncio.Future[None]
    packet_id: int = 0  # given when sent, kept for a resend after a reconnect
    released: bool = False  # QoS 2: PUBREC received, PUBREL sent


def _settle(future: asyncio.Future[Any], error: BaseException | None = None, result: Any = None) -> None:
    """Complete a future unless its waiter gave up on it (cancelled) or it is already done."""
    if not future.done():
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: frames packets, answers acks, writes in batches.

    The per-connection state lives here (receive buffer, write buffer, keepalive clocks,
    incoming topic aliases); everything that must survive a reconnect is the client's.
    """

    def __init__(self, client: MqttClient) -> None:
        self.client = client
        self.level = client.protocol
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.wbuf = bytearray()
        self.flush_pending = False
        self.connack: asyncio.Future[Connack] = self.loop.create_future()
        # Nobody may be waiting any more when the connection dies before CONNACK: no warning then.
        self.connack.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.closed: asyncio.Future[None] = self.loop.create_future()
        now = _monotonic()
        self.last_received = now
        self.last_sent = now
        self.ping_sent: float | None = None
        self.dead = False
        self.paused = False
        self.writable: asyncio.Future[None] | None = None
        self.aliases: dict[int, str] = {}
        self.alias_maximum = int(client.connect_properties.get("topic_alias_maximum", 0))
        self.incoming_qos2 = client._incoming_qos2  # the session's set, shared (never rebound)

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check here
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.dead = True
        if not self.connack.done():
            self.connack.set_exception(MqttError(
                f"connection to {self.client._where} closed before CONNACK{f': {exc}' if exc else ''}"))
        self._wake_writers()
        self.client._lost(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake_writers()

    def data_received(self, data: bytes) -> None:
        if self.dead:
            return
        self.last_received = _monotonic()
        self.ping_sent = None  # anything from the broker shows it is alive
        buffer = self.buffer
        chunk: bytes | bytearray = data
        if buffer:
            buffer += data
            chunk = buffer
        size = len(chunk)
        pos = 0
        try:
            while size - pos >= 2:
                first = chunk[pos]
                length = chunk[pos + 1]
                start = pos + 2
                if length & 0x80:  # a remaining length of 2 to 4 bytes
                    # packets.split_packet inline: calling it costs ~20% on a chunk of
                    # publishes of 128 bytes and more, and this loop is the subscriber's hot path.
                    length &= 0x7F
                    shift = 7
                    while True:
                        if start >= size:
                            length = -1
                            break
                        byte = chunk[start]
                        start += 1
                        length |= (byte & 0x7F) << shift
                        if byte < 0x80:
                            break
                        shift += 7
                        if shift > 21:
                            raise MqttProtocolError("remaining length longer than 4 bytes")
                    if length < 0:
                        break
                end = start + length
                if end > size:
                    break
                if first & 0xF0 == 0x30:
                    self._publish(chunk, first, start, end)
                else:
                    self._control(first, bytes(chunk[start:end]))
                pos = end
                if self.dead:
                    return
        except MqttProtocolError as exc:
            self._fail(exc)
            return
        except Exception as exc:  # a bug here must not leave a half-read stream behind
            log.exception("MQTT %s: cannot handle a packet", self.client._where)
            self._fail(MqttProtocolError(f"internal error: {exc}", 0x83))
            return
        if chunk is buffer:
            if pos:
                del buffer[:pos]
        elif pos < size:
            buffer += memoryview(data)[pos:]
        if self.wbuf:
            self.flush()

    # -- incoming packets ---------------------------------------------------------------------

    def _publish(self, chunk: bytes | bytearray, first: int, start: int, end: int) -> None:
        topic, payload, qos, _retain, _dup, packet_id, props = parse_publish(chunk, first, start, end, self.level)
        if props is not NO_PROPERTIES:
            alias = props.get("topic_alias")
            if alias is not None:
                if not 0 < alias <= self.alias_maximum:
                    raise MqttProtocolError(f"topic alias {alias} over our maximum {self.alias_maximum}", 0x94)
                if topic:
                    self.aliases[alias] = topic
                else:
                    known = self.aliases.get(alias)
                    if known is None:
                        raise MqttProtocolError(f"unknown topic alias {alias}", 0x82)
                    topic = known
        if not self.connack.done():
            raise MqttProtocolError("PUBLISH before CONNACK", 0x82)
        if qos == 0:
            self._deliver(topic, payload, props)
        elif qos == 1:
            self._deliver(topic, payload, props)
            self.wbuf += PUBACK_HEAD + packet_id.to_bytes(2, "big")
        else:
            incoming = self.incoming_qos2
            if packet_id not in incoming:  # else: sent again before our PUBREC arrived, delivered already
                incoming.add(packet_id)
                self._deliver(topic, payload, props)
            self.wbuf += PUBREC_HEAD + packet_id.to_bytes(2, "big")

    def _deliver(self, topic: str, payload: bytes, props: Mapping[str, Any]) -> None:
        handler = self.client.on_message
        if handler is not None:
            try:
                handler(topic, payload, props)
            except Exception:
                log.exception("MQTT message handler failed on %s", topic)

    def _control(self, first: int, body: bytes) -> None:
        packet = decode_packet(first, body, self.level)
        client = self.client
        if isinstance(packet, Connack):
            if self.connack.done():
                raise MqttProtocolError("second CONNACK", 0x82)
            if packet.reason_code == 0:
                client._session_start(self, packet)
            self.connack.set_result(packet)
            return
        if not self.connack.done():
            raise MqttProtocolError(f"{PACKET_NAMES[first >> 4]} before CONNACK", 0x82)
        if isinstance(packet, Puback):
            client._on_puback(packet)
        elif isinstance(packet, Pubrec):
            client._on_pubrec(self, packet)
        elif isinstance(packet, Pubcomp):
            client._on_pubcomp(packet)
        elif isinstance(packet, Pubrel):
            packet_id = packet.packet_id
            if packet_id in self.incoming_qos2:
                self.incoming_qos2.discard(packet_id)
                self.wbuf += PUBCOMP_HEAD + packet_id.to_bytes(2, "big")
            else:  # completed already (our PUBCOMP was lost): complete again
                self.wbuf += Pubcomp(packet_id, 0x92 if self.level == MQTT_5 else 0).encode(self.level)
        elif isinstance(packet, Suback):
            client._on_suback(packet)
        elif isinstance(packet, Unsuback):
            client._on_unsuback(packet)
        elif isinstance(packet, Pingresp):
            pass  # last_received is already noted
        elif isinstance(packet, Disconnect):
            reason = packet.properties.get("reason_string")
            log.warning("MQTT %s disconnected us: %s%s", client._where,
                        reason_text(packet.reason_code, self.level, DISCONNECT), f" ({reason})" if reason else "")
            self.close()
        elif isinstance(packet, Auth):
            raise MqttProtocolError("AUTH, but enhanced authentication is not supported", 0x82)
        else:
            raise MqttProtocolError(f"{PACKET_NAMES[first >> 4]} from a broker", 0x82)

    # -- writing ------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Queue bytes; they are written once at the end of this turn of the loop."""
        self.wbuf += data
        if not self.flush_pending:
            self.flush_pending = True
            self.loop.call_soon(self.flush)

    def send_now(self, data: bytes) -> None:
        self.wbuf += data
        self.flush()

    def flush(self) -> None:
        self.flush_pending = False
        data = self.wbuf
        if not data:
            return
        self.wbuf = bytearray()  # the transport may keep a view of ``data``: never touch it again
        transport = self.transport
        if transport is None or self.dead or transport.is_closing():
            return
        transport.write(data)
        self.last_sent = _monotonic()

    async def wait_writable(self) -> None:
        """Wait while the transport's buffer is over its high-water mark (or the connection ends)."""
        if not self.paused or self.dead:
            return
        if self.writable is None:
            self.writable = self.loop.create_future()
        await asyncio.shield(self.writable)

    def _wake_writers(self) -> None:
        if self.writable is not None:
            _settle(self.writable)
            self.writable = None

    # -- ending -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close after writing what is buffered."""
        self.flush()
        self.dead = True
        self.client._lost(self)
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection now (the broker is gone: nothing is worth writing)."""
        self.dead = True
        self.client._lost(self)
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: MqttProtocolError) -> None:
        log.warning("MQTT %s: %s; reconnecting", self.client._where, exc)
        self.buffer.clear()
        self.wbuf.clear()
        if self.level == MQTT_5 and self.transport is not None and not self.transport.is_closing():
            self.wbuf += Disconnect(exc.reason_code or 0x81).encode(MQTT_5)
        self.close()


class MqttClient:
    """An MQTT session: connects, stays connected (reconnecting), publishes and subscribes.

    ``protocol`` is 4 (MQTT 3.1.1) or 5. ``clean``: start without the broker's earlier
    session of this client id (3.1.1: a clean session on every connect, so the broker
    keeps nothing across a drop; MQTT 5: clean start on the first connect only, and
    ``session_expiry`` seconds say how long the broker keeps the session after a drop).
    ``ssl``: an ``ssl.SSLContext``, or True for a default verifying one;
    ``server_hostname`` the name the certificate must have (default ``host``).
    ``reconnect_delay`` (first, maximum) seconds: the delay doubles after each failed
    attempt, up to the maximum, and starts again from the first after a success.
    ``max_inflight``: QoS 1/2 messages sent and not yet acknowledged (MQTT 5 also
    honours the broker's receive maximum). The default, 20, is Mosquitto's
    ``max_inflight_messages``: a 3.1.1 client cannot learn the broker's limit, and
    Mosquitto drops one that has more incoming QoS 2 messages pending.
    ``max_queued``: messages waiting beyond them.
    ``connect_properties``: more MQTT 5 CONNECT properties (``receive_maximum``,
    ``topic_alias_maximum``, ``user_property``...). ``on_connect()`` runs after each
    successful CONNACK, on the loop thread.

    Use ``await connect()`` (raises :class:`MqttError` when the first attempt fails) or
    ``start()`` (keeps trying in the background), or ``async with MqttClient(...)``.
    """

    def __init__(
        self,
        host: str,
        port: int = 1883,
        *,
        client_id: str = "",
        protocol: int = MQTT_3_1_1,
        username: str | None = None,
        password: str | bytes | None = None,
        ssl: _ssl.SSLContext | bool | None = None,
        server_hostname: str | None = None,
        keepalive: int = 60,
        will: Will | None = None,
        clean: bool = True,
        session_expiry: int = 0,
        connect_properties: Mapping[str, Any] | None = None,
        reconnect_delay: tuple[float, float] = (1.0, 30.0),
        connect_timeout: float = 10.0,
        max_inflight: int = 20,
        max_queued: int = 1000,
        on_message: MessageHandler | None = None,
        on_connect: Callable[[], None] | None = None,
    ) -> None:
        if protocol not in (MQTT_3_1_1, MQTT_5):
            raise ValueError(f"protocol must be 4 (MQTT 3.1.1) or 5 (MQTT 5), not {protocol!r}")
        if session_expiry and protocol != MQTT_5:
            raise ValueError("session_expiry needs MQTT 5 (with 3.1.1, clean=False keeps the session)")
        if connect_properties and protocol != MQTT_5:
            raise ValueError("connect_properties need MQTT 5")
        if connect_properties and "authentication_method" in connect_properties:
            raise ValueError("MQTT 5 enhanced authentication is not supported")
        if not 0 <= keepalive <= 0xFFFF:
            raise ValueError("keepalive must be 0..65535 seconds")
        if not 1 <= max_inflight <= 60000:
            raise ValueError("max_inflight must be 1..60000")
        if max_queued < 0:
            raise ValueError("max_queued must be >= 0")
        if not 0 < reconnect_delay[0] <= reconnect_delay[1]:
            raise ValueError("reconnect_delay must be (first, maximum) with 0 < first <= maximum")
        self.host = host
        self.port = port
        self.client_id = client_id
        self.protocol = protocol
        self.username = username
        self.password = password.encode() if isinstance(password, str) else password
        self.ssl: _ssl.SSLContext | None = _ssl.create_default_context() if ssl is True else (ssl or None)
        self.server_hostname = server_hostname
        self.keepalive = keepalive
        self.will = will
        self.clean = clean
        self.session_expiry = session_expiry
        self.connect_properties: dict[str, Any] = dict(connect_properties or {})
        self.reconnect_delay = reconnect_delay
        self.connect_timeout = connect_timeout
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self.on_message = on_message
        self.on_connect = on_connect
        #: Set while connected (after CONNACK), cleared when the connection drops.
        self.connected = asyncio.Event()
        #: Whether the broker resumed a session at the last CONNACK.
        self.session_present = False
        self._where = f"{host}:{port}"
        self._connection: _Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._had_session = False
        self._connect_packet()  # fail here, not at every attempt, on what CONNECT cannot carry
        self._last_id = 0
        # Session state, kept across connections.
        self._subscriptions: dict[str, Subscription] = {}
        self._sub_waiters: dict[str, list[asyncio.Future[int]]] = {}
        self._unsubscribing: dict[str, list[asyncio.Future[None]]] = {}
        self._queue: deque[_Outgoing] = deque()
        self._inflight: dict[int, _Outgoing] = {}
        self._incoming_qos2: set[int] = set()
        # Per connection: SUBSCRIBE/UNSUBSCRIBE awaiting their ack, and what the broker allows.
        self._sub_pending: dict[int, list[str]] = {}
        self._unsub_pending: dict[int, list[str]] = {}
        self._window = max_inflight
        self._maximum_qos = 2
        self._retain_available = True
        self._maximum_packet_size = 0
        self._keepalive_now = keepalive

    # -- life cycle ----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect now; raises :class:`MqttError` (unreachable, TLS, refused by the broker) if that fails.

        Once connected, the connection is kept: dropped connections are reopened in
        the background until :meth:`close`. On a client already started (``start()``
        or an earlier ``connect()``), waits until it is connected.
        """
        if self._task is not None:
            await self.connected.wait()
            return
        self._closed = False
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = self._task = asyncio.get_running_loop().create_task(self._run(first), name=f"mqtt-{self._where}")
        try:
            await asyncio.shield(first)
        except BaseException:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self._task is task:
                self._task = None
            raise

    def start(self) -> None:
        """Connect in the background, trying again (with back-off) until it works, and after every drop."""
        if self._task is None:
            self._closed = False
            self._task = asyncio.get_running_loop().create_task(self._run(None), name=f"mqtt-{self._where}")

    async def close(self) -> None:
        """DISCONNECT (so the broker drops the will), stop reconnecting, fail what still waits.

        QoS 1/2 messages not yet acknowledged fail with :class:`MqttError` (the broker
        may or may not have them); so do subscriptions waiting for their SUBACK.
        """
        self._closed = True
        task, self._task = self._task, None
        connection = self._connection
        if connection is not None:
            connection.send_now(Disconnect().encode(self.protocol))
            connection.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(connection.closed), 2.0)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.connected.clear()
        error = MqttError("MQTT client closed")
        for out in [*self._queue, *self._inflight.values()]:
            _settle(out.future, error)
        self._queue.clear()
        self._inflight.clear()
        for sub_waiters in self._sub_waiters.values():
            for sub_waiter in sub_waiters:
                _settle(sub_waiter, error)
        for unsub_waiters in self._unsubscribing.values():
            for unsub_waiter in unsub_waiters:
                _settle(unsub_waiter, error)
        self._sub_waiters.clear()
        self._unsubscribing.clear()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- publishing -----------------------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        payload: bytes | bytearray | memoryview | str = b"",
        qos: int = 0,
        retain: bool = False,
        *,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish; at QoS 1/2, return when the broker has the message (PUBACK / PUBCOMP).

        QoS 0: written now if connected, else :class:`MqttError` (not queued). QoS 1/2:
        queued when disconnected or when ``max_inflight`` messages await their ack, and
        sent as soon as possible; :class:`MqttError` when ``max_queued`` are queued
        already, when the broker refuses the message (MQTT 5 reason code) or the client
        is closed. Cancelling the wait withdraws the message if it was not sent yet.
        ``properties``: MQTT 5 message properties (``message_expiry_interval``,
        ``content_type``, ``user_property``...).
        """
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        elif type(payload) is not bytes:
            payload = bytes(payload)
        if qos not in (0, 1, 2):
            raise MqttError(f"QoS {qos!r} is not 0, 1 or 2")
        problem = topic_name_problem(topic, alias=False)
        if problem:
            raise MqttError(f"cannot publish: {problem}")
        if properties:
            if self.protocol != MQTT_5:
                raise MqttError("message properties need MQTT 5")
            if "topic_alias" in properties:
                raise MqttError("outgoing topic aliases are not supported")
            encode_properties(properties, PUBLISH)  # raises MqttError on what cannot be sent
        if qos == 0:
            connection = self._connection
            if connection is None:
                raise MqttError(f"not connected to {self._where}: QoS 0 message on {topic!r} not sent")
            if connection.paused:
                await connection.wait_writable()
                connection = self._connection
                if connection is None:
                    raise MqttError(f"connection to {self._where} lost: QoS 0 message on {topic!r} not sent")
            if retain and not self._retain_available:
                raise MqttError(f"{self._where} does not support retained messages")
            data = encode_publish(topic, payload, 0, retain, False, 0, properties, self.protocol)
            if self._maximum_packet_size and len(data) > self._maximum_packet_size:
                raise MqttError(f"message of {len(data)} bytes over the broker's maximum packet size")
            connection.send(data)
            return
        if self._closed:
            raise MqttError("MQTT client closed")
        if len(self._queue) >= self.max_queued:
            raise MqttError(f"{len(self._queue)} MQTT messages already wait to be sent (max_queued)")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        out = _Outgoing(topic, payload, qos, retain, properties, future)
        self._queue.append(out)
        self._drain()
        try:
            await future
        except asyncio.CancelledError:
            if not out.packet_id:  # still queued: withdrawn, its place freed now
                with contextlib.suppress(ValueError):
                    self._queue.remove(out)
            raise

    def _drain(self) -> None:
        """Send queued QoS 1/2 messages while connected and within the in-flight window."""
        connection = self._connection
        if connection is None:
            return
        queue, inflight = self._queue, self._inflight
        while queue and len(inflight) < self._window:
            out = queue.popleft()
            if out.future.done():  # its publisher gave up before it was sent
                continue
            if out.qos > self._maximum_qos:
                out.future.set_exception(MqttError(f"{self._where} accepts QoS {self._maximum_qos} at most"))
                continue
            if out.retain and not self._retain_available:
                out.future.set_exception(MqttError(f"{self._where} does not support retained messages"))
                continue
            packet_id = self._new_packet_id()
            data = encode_publish(out.topic, out.payload, out.qos, out.retain, False, packet_id,
                                  out.properties, self.protocol)
            if self._maximum_packet_size and len(data) > self._maximum_packet_size:
                out.future.set_exception(MqttError(f"message of {len(data)} bytes over the broker's maximum"))
                continue
            out.packet_id = packet_id
            inflight[packet_id] = out
            connection.send(data)

    def _new_packet_id(self) -> int:
        for _ in range(65535):
            self._last_id = self._last_id % 65535 + 1
            packet_id = self._last_id
            if packet_id not in self._inflight and packet_id not in self._sub_pending \
                    and packet_id not in self._unsub_pending:
                return packet_id
        raise MqttError("no free packet identifier")  # pragma: no cover - max_inflight keeps ids free

    def _ended(self, packet: Puback | Pubcomp, qos: int) -> _Outgoing | None:
        """The in-flight message at ``qos`` that ``packet`` ends (PUBACK: QoS 1, PUBCOMP:
        QoS 2), out of the window now; None, logged, when the identifier is not one of ours."""
        out = self._inflight.get(packet.packet_id)
        if out is None or out.qos != qos:
            log.debug("MQTT %s: %s for unknown packet %d", self._where, PACKET_NAMES[packet.TYPE], packet.packet_id)
            return None
        del self._inflight[packet.packet_id]
        return out

    def _on_puback(self, packet: Puback) -> None:
        out = self._ended(packet, 1)
        if out is not None:
            self._acknowledged(out, packet.reason_code, packet.properties)
            self._drain()

    def _on_pubrec(self, connection: _Connection, packet: Pubrec) -> None:
        out = self._inflight.get(packet.packet_id)
        if out is None or out.qos != 2:
            # Not ours (any more): release it all the same so that the broker's side ends.
            code = 0x92 if self.protocol == MQTT_5 else 0
            connection.send(Pubrel(packet.packet_id, code).encode(self.protocol))
            return
        if packet.reason_code >= 0x80:  # refused: the exchange ends here, without PUBREL
            del self._inflight[packet.packet_id]
            self._acknowledged(out, packet.reason_code, packet.properties)
            self._drain()
            return
        out.released = True
        connection.send(PUBREL_HEAD + packet.packet_id.to_bytes(2, "big"))

    def _on_pubcomp(self, packet: Pubcomp) -> None:
        out = self._ended(packet, 2)
        if out is not None:
            # 0x92 (identifier not found): the broker completed it already; the message is delivered.
            _settle(out.future)
            self._drain()

    def _acknowledged(self, out: _Outgoing, code: int, props: Mapping[str, Any]) -> None:
        if code >= 0x80:
            why = props.get("reason_string")
            _settle(out.future, MqttError(
                f"{self._where} refused the message on {out.topic!r}: {reason_text(code)}"
                + (f" ({why})" if why else ""), code))
        else:
            _settle(out.future)

    # -- subscriptions ------------------------------------------------------------------------------

    async def subscribe(
        self,
        topic_filter: str,
        qos: int = 0,
        *,
        no_local: bool = False,
        retain_as_published: bool = False,
        retain_handling: int = 0,
    ) -> int | None:
        """Subscribe, now and after every reconnect; returns the QoS the broker granted.

        Returns None without waiting when not connected: the subscription is made at
        the next connect (a refusal then is logged and the subscription dropped).
        :class:`MqttError` when the broker refuses it (SUBACK 0x80 and up); then it is
        not kept. The options after ``qos`` are MQTT 5's.
        """
        problem = topic_filter_problem(topic_filter)
        if problem:
            raise MqttError(problem)
        subscription = Subscription(topic_filter, qos, no_local, retain_as_published, retain_handling)
        subscription.options(self.protocol)  # raises MqttError on options the version lacks
        self._subscriptions[topic_filter] = subscription
        connection = self._connection
        if connection is None:
            return None
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._sub_waiters.setdefault(topic_filter, []).append(waiter)
        self._send_subscribe(connection, [subscription])
        return await waiter

    async def unsubscribe(self, topic_filter: str) -> None:
        """Stop a subscription (it is not made again after reconnects); waits for UNSUBACK when connected."""
        self._subscriptions.pop(topic_filter, None)
        for sub_waiter in self._sub_waiters.pop(topic_filter, []):
            _settle(sub_waiter, MqttError(f"unsubscribed from {topic_filter!r} before the SUBACK"))
        waiters = self._unsubscribing.setdefault(topic_filter, [])
        connection = self._connection
        if connection is None:
            return  # sent after the reconnect if the broker kept the session
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        self._send_unsubscribe(connection, [topic_filter])
        await waiter

    @property
    def subscriptions(self) -> list[Subscription]:
        """The subscriptions made again after every reconnect."""
        return list(self._subscriptions.values())

    def _send_subscribe(self, connection: _Connection, subscriptions: list[Subscription]) -> None:
        packet_id = self._new_packet_id()
        self._sub_pending[packet_id] = [sub.topic_filter for sub in subscriptions]
        connection.send(Subscribe(packet_id, subscriptions).encode(self.protocol))

    def _send_unsubscribe(self, connection: _Connection, topic_filters: list[str]) -> None:
        packet_id = self._new_packet_id()
        self._unsub_pending[packet_id] = topic_filters
        connection.send(Unsubscribe(packet_id, topic_filters).encode(self.protocol))

    def _on_suback(self, packet: Suback) -> None:
        filters = self._sub_pending.pop(packet.packet_id, None)
        if filters is None:
            log.debug("MQTT %s: SUBACK for unknown packet %d", self._where, packet.packet_id)
            return
        if len(filters) != len(packet.reason_codes):
            raise MqttProtocolError(f"SUBACK has {len(packet.reason_codes)} codes for {len(filters)} filters", 0x82)
        for topic_filter, code in zip(filters, packet.reason_codes):
            waiters = self._sub_waiters.pop(topic_filter, [])
            if code < 0x80:
                for waiter in waiters:
                    _settle(waiter, result=code)
                continue
            self._subscriptions.pop(topic_filter, None)
            why = packet.properties.get("reason_string")
            error = MqttError(f"{self._where} refused the subscription to {topic_filter!r}: "
                              f"{reason_text(code, self.protocol, SUBACK)}" + (f" ({why})" if why else ""), code)
            if not waiters:
                log.warning("MQTT %s", error)
            for waiter in waiters:
                _settle(waiter, error)

    def _on_unsuback(self, packet: Unsuback) -> None:
        filters = self._unsub_pending.pop(packet.packet_id, None)
        if filters is None:
            log.debug("MQTT %s: UNSUBACK for unknown packet %d", self._where, packet.packet_id)
            return
        codes = packet.reason_codes or [0] * len(filters)  # MQTT 3.1.1 has none
        if len(codes) != len(filters):
            raise MqttProtocolError(f"UNSUBACK has {len(codes)} codes for {len(filters)} filters", 0x82)
        for topic_filter, code in zip(filters, codes):
            error = None
            if code >= 0x80:  # 0x11 "no subscription existed" is fine
                error = MqttError(f"{self._where} refused to unsubscribe from {topic_filter!r}: "
                                  f"{reason_text(code)}", code)
            for waiter in self._unsubscribing.pop(topic_filter, []):
                _settle(waiter, error)

    # -- connections ----------------------------------------------------------------------------

    def _connect_packet(self) -> bytes:
        props = dict(self.connect_properties)
        if self.session_expiry:
            props["session_expiry_interval"] = self.session_expiry
        # MQTT 5: clean start once; later connects resume what the broker kept (session_expiry).
        clean = self.clean if self.protocol == MQTT_3_1_1 or not self._had_session else False
        return Connect(self.client_id, clean, self.keepalive, self.username, self.password, self.will,
                       props).encode(self.protocol)

    async def _run(self, first: asyncio.Future[None] | None) -> None:
        """Connect, keep alive, reconnect with back-off; ``first`` gets the outcome of the first attempt."""
        low, high = self.reconnect_delay
        delay = low
        while not self._closed:
            try:
                connection = await self._open()
            except (OSError, MqttError) as exc:
                error = exc if isinstance(exc, MqttError) else MqttError(
                    f"cannot connect to {self._where}: {exc or type(exc).__name__}")
                if error is not exc:
                    error.__cause__ = exc
                if first is not None:
                    _settle(first, error)
                    return
                log.warning("MQTT %s; retrying in %.3g s", error, delay)
            else:
                if first is not None:
                    _settle(first)
                    first = None
                since = _monotonic()
                log.info("MQTT connected to %s (session %s)", self._where,
                         "resumed" if self.session_present else "new")
                await self._keep_alive(connection)
                if _monotonic() - since >= high:  # a broker that drops us at once gets no hammering
                    delay = low
                if self._closed:
                    return
                log.warning("MQTT connection to %s lost; reconnecting in %.3g s", self._where, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, high)

    async def _open(self) -> _Connection:
        """One attempt: TCP (+TLS), CONNECT, CONNACK. The session restarts in ``_session_start``."""
        loop = asyncio.get_running_loop()
        tls: dict[str, Any] = {}
        if self.ssl is not None:
            tls = {"ssl": self.ssl, "server_hostname": self.server_hostname or self.host}
        transport, connection = await asyncio.wait_for(
            loop.create_connection(lambda: _Connection(self), self.host, self.port, **tls), self.connect_timeout
        )
        try:
            connection.send_now(self._connect_packet())
            try:
                connack = await asyncio.wait_for(asyncio.shield(connection.connack), self.connect_timeout)
            except TimeoutError:
                raise MqttError(f"no CONNACK from {self._where} within {self.connect_timeout:g} s") from None
        except BaseException:
            transport.abort()
            raise
        if connack.reason_code:
            transport.abort()
            why = connack.properties.get("reason_string")
            raise MqttError(f"{self._where} refused the connection: {reason_text(connack.reason_code, self.protocol)}"
                            + (f" ({why})" if why else ""), connack.reason_code)
        return connection

    def _session_start(self, connection: _Connection, connack: Connack) -> None:
        """On CONNACK success, before any later packet of the same chunk: restore the session."""
        props = connack.properties
        present = self.session_present = connack.session_present
        self._had_session = True
        if "assigned_client_identifier" in props:
            self.client_id = props["assigned_client_identifier"]  # to resume this session later
        self._keepalive_now = props.get("server_keep_alive", self.keepalive)
        self._window = min(self.max_inflight, props.get("receive_maximum", 65535))
        self._maximum_qos = props.get("maximum_qos", 2)
        self._retain_available = bool(props.get("retain_available", 1))
        self._maximum_packet_size = props.get("maximum_packet_size", 0)
        self._connection = connection
        self._sub_pending.clear()
        self._unsub_pending.clear()
        if not present:
            self._incoming_qos2.clear()
            for packet_id, out in list(self._inflight.items()):
                if out.released:  # the broker had taken it (PUBREC) before the session was lost
                    del self._inflight[packet_id]
                    _settle(out.future)
            # New messages for the new session: beyond its window they wait their turn again.
            for packet_id in list(self._inflight)[self._window :][::-1]:
                out = self._inflight.pop(packet_id)
                out.packet_id = 0
                self._queue.appendleft(out)
            for waiters in self._unsubscribing.values():  # a new session has no subscriptions
                for waiter in waiters:
                    _settle(waiter)
            self._unsubscribing.clear()
        elif self._unsubscribing:
            self._send_unsubscribe(connection, list(self._unsubscribing))
        if self._subscriptions:
            subs = list(self._subscriptions.values())
            if self.protocol == MQTT_5:  # a subscription the broker kept: no retained messages again
                subs = [Subscription(s.topic_filter, s.qos, s.no_local, s.retain_as_published,
                                     s.retain_handling or 1) for s in subs]
            for i in range(0, len(subs), _RESUBSCRIBE_BATCH):
                self._send_subscribe(connection, subs[i : i + _RESUBSCRIBE_BATCH])
        for out in self._inflight.values():
            if out.released:
                connection.send(PUBREL_HEAD + out.packet_id.to_bytes(2, "big"))
            else:
                connection.send(encode_publish(out.topic, out.payload, out.qos, out.retain, present,
                                               out.packet_id, out.properties, self.protocol))
        self._drain()
        self.connected.set()
        if self.on_connect is not None:
            try:
                self.on_connect()
            except Exception:
                log.exception("MQTT on_connect callback failed")

    def _lost(self, connection: _Connection) -> None:
        """The connection is gone (or going): stop using it at once. Messages in flight stay."""
        if self._connection is connection:
            self._connection = None
            self.connected.clear()
            self._sub_pending.clear()  # their waiters stay: the re-subscription answers them
            self._unsub_pending.clear()

    async def _keep_alive(self, connection: _Connection) -> None:
        """Until the connection closes: PINGREQ when idle for half the keepalive, and drop
        the connection when the broker stays silent for another half after it."""
        keepalive = self._keepalive_now
        if not keepalive:
            await asyncio.shield(connection.closed)
            return
        half = keepalive / 2
        while not connection.closed.done():
            now = _monotonic()
            if connection.ping_sent is not None:
                deadline = connection.ping_sent + half
                if now >= deadline:
                    log.warning("MQTT %s: no answer to PINGREQ within %.3g s", self._where, half)
                    connection.abort()
                    await asyncio.shield(connection.closed)
                    return
                wait = deadline - now
            else:
                due = min(connection.last_sent, connection.last_received) + half
                if now >= due:
                    connection.send_now(PINGREQ_PACKET)
                    connection.ping_sent = now
                    continue
                wait = due - now
            await asyncio.wait((connection.closed,), timeout=wait)
