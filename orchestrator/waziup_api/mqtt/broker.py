"""An MQTT 3.1.1 broker embedded in the WAZIUP API process, with permission hooks.

Why embedded rather than a proxy in front of Mosquitto (contract §6): every delivery has
to be filtered per subscriber anyway (devices-data:view), values the HTTP API publishes
reach subscribers without a second hop, and its topic space stays apart from the
platform's Mosquitto used by the IoT agent.

What the WAZIUP API decides goes through :class:`Hooks`: who a login is, whether a
published message is kept (and stored: ``on_publish`` runs before the PUBACK), who may
receive a message, and gateway presence. The broker itself only speaks MQTT: QoS 0 and 1
delivery (QoS 2 accepted from publishers), retained messages, wills, keepalive,
persistent sessions held in memory.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from typing import Protocol

from ngsi.client.mqtt.packets import (
    CONNECT, MQTT_3_1_1, PUBACK_HEAD, PUBCOMP_HEAD, PUBLISH, PUBREC_HEAD, SUBSCRIBE, Connack, Connect,
    Disconnect, MqttError, MqttProtocolError, Packet, Pingreq, Puback, Pubcomp, Pubrec, Pubrel, Suback,
    Unsuback, Unsubscribe, decode_packet, parse_publish, split_packet, topic_matches, topic_name_problem,
)

from orchestrator.waziup_api.caller import Caller
from orchestrator.waziup_api.mqtt.session import Message, Outbox, Session
from orchestrator.waziup_api.mqtt.topics import SubscriptionIndex
from orchestrator.waziup_api.mqtt.wire import (
    ACCEPTED, BAD_CREDENTIALS, BAD_PROTOCOL, ID_REJECTED, NOT_AUTHORIZED, SUBACK_FAILURE, connect_level,
    declared_size, packet_id_bytes, parse_subscribe,
)

log = logging.getLogger("waziup.api.mqtt")

PINGRESP_PACKET = b"\xd0\x00"


class Hooks(Protocol):
    """What the WAZIUP API decides for the broker."""

    async def authenticate(self, username: str | None, password: str | None) -> Caller | None:
        """The caller a login acts as (GUEST when anonymous), or None to refuse it."""
        ...

    async def on_publish(self, caller: Caller, topic: str, payload: bytes) -> bool:
        """Before the acknowledgement: True to relay to subscribers, False to drop silently."""
        ...

    async def may_receive(self, caller: Caller, topic: str) -> bool:
        """Per (subscriber, message) on delivery: False keeps it from that subscriber."""
        ...

    def on_connect(self, client_id: str) -> None: ...

    def on_disconnect(self, client_id: str) -> None: ...


class MqttBroker:
    """The server: listeners, the sessions by client id, retained messages, and routing."""

    CONNECT_TIMEOUT = 10.0  # seconds a socket may stay open without sending CONNECT
    WINDOW = 100  # QoS 1 messages in flight per session before the rest queue
    QUEUE_LIMIT = 1000  # QoS 1 messages queued per session (offline or window full); oldest dropped
    OUTBOX_SOFT = 1000  # packets waiting on a socket before its QoS 0 messages are dropped
    OUTBOX_HARD = 20_000  # packets waiting on a socket before it is closed as not reading

    def __init__(
        self, hooks: Hooks, *, host: str = "127.0.0.1", port: int = 3883,
        ssl_context: ssl.SSLContext | None = None, max_packet: int = 1 << 20,
    ) -> None:
        self.hooks = hooks
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.max_packet = max_packet
        self.index = SubscriptionIndex()
        self.sessions: dict[str, Session] = {}
        self.connections: dict[str, Connection] = {}  # client id -> the connection that has it
        self.retained: dict[str, tuple[bytes, int]] = {}  # topic -> (payload, qos)
        self._all: set[Connection] = set()
        self._server: asyncio.AbstractServer | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; with port 0, ``self.port`` is the port the system chose."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("mqtt listening host=%s port=%s tls=%s", self.host, self.port, self.ssl_context is not None)

    async def stop(self) -> None:
        """Stop listening and close every client (on_disconnect for each, no wills)."""
        if self._server is not None:
            self._server.close()
        await asyncio.gather(*(conn.shutdown("server stopping", will=False) for conn in list(self._all)))
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        log.info("mqtt stopped port=%s", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(self, reader, writer)
        self._all.add(conn)
        try:
            await conn.run()
        finally:
            self._all.discard(conn)

    # -- publishing -----------------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        """Publish from inside the process (the HTTP API's values), routed like a client's message."""
        problem = topic_name_problem(topic)
        if problem:
            raise ValueError(problem)
        if qos not in (0, 1, 2):
            raise ValueError(f"QoS {qos!r} is not 0, 1 or 2")
        await self.route(topic, bytes(payload), qos, retain)

    async def check_publish(self, caller: Caller, topic: str, payload: bytes) -> bool:
        """``on_publish``, with a failing hook counted as a refusal (logged, the message dropped)."""
        try:
            return bool(await self.hooks.on_publish(caller, topic, payload))
        except Exception:
            log.exception("mqtt on_publish failed user=%s topic=%s", caller.username, topic)
            return False

    async def route(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """Hand a message to every subscriber that may receive it (retain flag 0: a live message)."""
        if retain:
            self._keep_retained(topic, payload, qos)
        targets = [(self.sessions[cid], granted) for cid, granted in self.index.match(topic).items()
                   if cid in self.sessions]
        if not targets:
            return
        allowed = await asyncio.gather(*(self.may_receive(s.caller, topic) for s, _ in targets))
        for (session, granted), ok in zip(targets, allowed):
            if ok:
                session.deliver(Message(topic, payload, min(qos, granted), False))

    async def may_receive(self, caller: Caller, topic: str) -> bool:
        try:
            return bool(await self.hooks.may_receive(caller, topic))
        except Exception:
            log.exception("mqtt may_receive failed user=%s topic=%s", caller.username, topic)
            return False

    def _keep_retained(self, topic: str, payload: bytes, qos: int) -> None:
        if payload:
            self.retained[topic] = (payload, qos)
        else:
            self.retained.pop(topic, None)

    async def send_retained(self, session: Session, topic_filter: str, granted: int) -> None:
        """The retained messages a new subscription matches, those the subscriber may receive."""
        matching = [(t, p, q) for t, (p, q) in self.retained.items() if topic_matches(topic_filter, t)]
        if not matching:
            return
        allowed = await asyncio.gather(*(self.may_receive(session.caller, t) for t, _, _ in matching))
        for (topic, payload, qos), ok in zip(matching, allowed):
            if ok:
                session.deliver(Message(topic, payload, min(qos, granted), True))

    # -- sessions -------------------------------------------------------------------------------

    def open_session(self, client_id: str, clean: bool, caller: Caller) -> tuple[Session, bool]:
        """The session for a new connection, and whether it is a resumed one (session present)."""
        old = self.sessions.get(client_id)
        if old is not None and not clean and not old.clean:
            old.caller = caller
            return old, True
        if old is not None:
            self.drop_session(old)
        session = Session(client_id, clean, caller, window=self.WINDOW, queue_limit=self.QUEUE_LIMIT)
        self.sessions[client_id] = session
        return session, False

    def drop_session(self, session: Session) -> None:
        for topic_filter in session.subscriptions:
            self.index.remove(topic_filter, session.client_id)
        session.subscriptions.clear()
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]

    def subscribe(self, session: Session, topic_filter: str, qos: int) -> int:
        """Add a subscription; the granted QoS is at most 1 (QoS 2 is not delivered)."""
        granted = min(qos, 1)
        session.subscriptions[topic_filter] = granted
        self.index.add(topic_filter, session.client_id, granted)
        return granted

    def unsubscribe(self, session: Session, topic_filter: str) -> None:
        if session.subscriptions.pop(topic_filter, None) is not None:
            self.index.remove(topic_filter, session.client_id)

    def presence(self, client_id: str, connected: bool) -> None:
        """on_connect / on_disconnect, a failing hook logged and never fatal to the connection."""
        try:
            (self.hooks.on_connect if connected else self.hooks.on_disconnect)(client_id)
        except Exception:
            log.exception("mqtt presence hook failed client=%s connected=%s", client_id, connected)


class Connection:
    """One client socket: reads and handles packets in order, writes through an :class:`Outbox`."""

    def __init__(self, broker: MqttBroker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.broker = broker
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.outbox = Outbox(broker.OUTBOX_SOFT, broker.OUTBOX_HARD)
        self.client_id = ""
        self.caller: Caller | None = None
        self.session: Session | None = None
        self.connect: Connect | None = None
        self.keepalive = 0
        self.accepted = False  # CONNACK 0 sent and on_connect called
        self.graceful = False  # DISCONNECT received: no will
        self._finished = False
        self._finish_done = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None

    # -- life -----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Read packets until the socket closes, a timeout, or a protocol error; then clean up."""
        self._writer_task = asyncio.create_task(self._write_loop())
        reason = "socket closed"
        try:
            reason = await self._read_loop()
        except _Refused:
            reason = "refused"
        except MqttProtocolError as exc:
            reason = f"protocol error: {exc}"
        except TimeoutError:
            reason = "keepalive timeout" if self.accepted else "no CONNECT in time"
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            reason = f"socket error: {exc.__class__.__name__}"
        except Exception:
            log.exception("mqtt connection failed client=%s peer=%s", self.client_id, self.peer)
            reason = "internal error"
        finally:
            await self.shutdown(reason)

    async def shutdown(self, reason: str, *, will: bool = True) -> None:
        """Close the socket and end the connection: will (unless graceful), session detach, on_disconnect.

        Idempotent; a second caller waits for the first to finish, so a takeover sees
        the old connection's on_disconnect before the new one's on_connect.
        """
        if self._finished:
            await self._finish_done.wait()
            return
        self._finished = True
        try:
            self.outbox.close()
            self.writer.transport.abort()
            if self._writer_task is not None:
                self._writer_task.cancel()
            await self._release(reason, will)
        finally:
            self._finish_done.set()

    async def _release(self, reason: str, will: bool) -> None:
        if not self.accepted:
            log.debug("mqtt closed peer=%s reason=%s", self.peer, reason)
            return
        broker, session = self.broker, self.session
        if broker.connections.get(self.client_id) is self:
            del broker.connections[self.client_id]
            if session is not None:
                session.detach()
                if session.clean:
                    broker.drop_session(session)
        log.info("mqtt disconnect client=%s user=%s reason=%s", self.client_id, self._user(), reason)
        if will and not self.graceful:
            await self._publish_will()
        broker.presence(self.client_id, False)

    async def _publish_will(self) -> None:
        connect = self.connect
        if connect is None or connect.will is None or self.caller is None:
            return
        w = connect.will
        if await self.broker.check_publish(self.caller, w.topic, w.payload):
            log.info("mqtt will client=%s topic=%s", self.client_id, w.topic)
            await self.broker.route(w.topic, w.payload, w.qos, w.retain)

    def _user(self) -> str:
        return self.caller.username if self.caller else "-"

    # -- writing --------------------------------------------------------------------------------

    def send(self, data: bytes, *, droppable: bool = False) -> None:
        """Queue a packet; a peer so far behind that even acknowledgements pile up is closed."""
        if not self.outbox.put(data, droppable=droppable):
            log.warning("mqtt client not reading, closing client=%s", self.client_id)
            self.outbox.close()
            self.writer.transport.abort()

    async def _write_loop(self) -> None:
        try:
            while True:
                data = await self.outbox.take()
                if not data:
                    return
                self.writer.write(data)
                await self.writer.drain()
        except (ConnectionError, OSError):
            self.writer.transport.abort()

    # -- reading --------------------------------------------------------------------------------

    async def _read_loop(self) -> str:
        buf = bytearray()
        while True:
            async with asyncio.timeout(self._read_timeout()):
                chunk = await self.reader.read(65536)
            if not chunk:
                return "socket closed"
            buf += chunk
            if await self._handle_buffer(buf):
                return "DISCONNECT"

    def _read_timeout(self) -> float | None:
        if not self.accepted:
            return self.broker.CONNECT_TIMEOUT
        return self.keepalive * 1.5 if self.keepalive else None

    async def _handle_buffer(self, buf: bytearray) -> bool:
        """Handle every complete packet in ``buf`` and remove it; True once DISCONNECT came."""
        pos = 0
        try:
            while True:
                size = declared_size(buf, pos)
                if size is not None and size > self.broker.max_packet:
                    raise MqttProtocolError(f"packet of {size} bytes over the maximum of {self.broker.max_packet}")
                where = split_packet(buf, pos)
                if where is None:
                    return False
                first, start, end = where
                pos = end
                if await self._handle(first, buf, start, end):
                    return True
        finally:
            del buf[:pos]

    async def _handle(self, first: int, buf: bytearray, start: int, end: int) -> bool:
        """One packet; True when it was DISCONNECT."""
        kind = first >> 4
        if not self.accepted:
            if kind != CONNECT or self.connect is not None:
                raise MqttProtocolError("first packet is not CONNECT")
            await self._on_connect(first, bytes(buf[start:end]))
            return False
        session = self.session
        assert session is not None
        if kind == PUBLISH:
            await self._on_publish(session, first, buf, start, end)
        elif kind == SUBSCRIBE:
            if first & 0x0F != 0x02:
                raise MqttProtocolError("invalid SUBSCRIBE flags")
            await self._on_subscribe(session, bytes(buf[start:end]))
        else:
            return self._on_control(session, decode_packet(first, bytes(buf[start:end]), MQTT_3_1_1))
        return False

    def _on_control(self, session: Session, packet: Packet) -> bool:
        """The packets handled without awaiting anything; True for DISCONNECT."""
        if isinstance(packet, Pingreq):
            self.send(PINGRESP_PACKET)
        elif isinstance(packet, Puback):
            session.acked(packet.packet_id)
        elif isinstance(packet, Pubrel):
            session.incoming_qos2.discard(packet.packet_id)
            self.send(PUBCOMP_HEAD + packet_id_bytes(packet.packet_id))
        elif isinstance(packet, Unsubscribe):
            for topic_filter in packet.topic_filters:
                self.broker.unsubscribe(session, topic_filter)
            self.send(Unsuback(packet.packet_id).encode(MQTT_3_1_1))
        elif isinstance(packet, Disconnect):
            self.graceful = True
            return True
        elif not isinstance(packet, (Pubrec, Pubcomp)):  # never sent QoS 2: a stray PUBREC/PUBCOMP is ignored
            raise MqttProtocolError(f"unexpected {type(packet).__name__} from a client")
        return False

    # -- CONNECT --------------------------------------------------------------------------------

    async def _on_connect(self, first: int, body: bytes) -> None:
        if first != CONNECT << 4:
            raise MqttProtocolError("invalid CONNECT flags")
        level, body4 = connect_level(body)
        if body4 is None:
            log.info("mqtt refused peer=%s reason=protocol level %s", self.peer, level)
            await self._refuse(BAD_PROTOCOL)
            return
        connect = decode_packet(first, body4, MQTT_3_1_1)
        assert isinstance(connect, Connect)
        self.connect = connect
        if not connect.client_id and not connect.clean:
            await self._refuse(ID_REJECTED)
            return
        caller = await self._authenticate(connect)
        if caller is None:
            await self._refuse(BAD_CREDENTIALS if connect.username is not None else NOT_AUTHORIZED)
            return
        await self._accept(connect, caller)

    async def _authenticate(self, connect: Connect) -> Caller | None:
        password = None if connect.password is None else connect.password.decode("utf-8", "surrogateescape")
        try:
            caller = await self.broker.hooks.authenticate(connect.username, password)
        except Exception:
            log.exception("mqtt authenticate failed user=%s", connect.username)
            caller = None
        if caller is None:
            log.info("mqtt refused peer=%s client=%s user=%s reason=credentials",
                     self.peer, connect.client_id, connect.username)
        return caller

    async def _refuse(self, code: int) -> None:
        """CONNACK with a refusal code, written before the socket is closed."""
        try:
            self.writer.write(Connack(False, code).encode(MQTT_3_1_1))
            await asyncio.wait_for(self.writer.drain(), 1.0)
        except (ConnectionError, OSError, TimeoutError):
            pass
        raise _Refused()

    async def _accept(self, connect: Connect, caller: Caller) -> None:
        broker = self.broker
        self.client_id = self.outbox.owner = connect.client_id or f"auto-{uuid.uuid4().hex}"
        self.caller, self.keepalive = caller, connect.keepalive
        while (old := broker.connections.get(self.client_id)) is not None and old is not self:
            await old.shutdown("taken over")
        if self._finished:  # the broker stopped while the old connection was closing
            raise _Refused()
        broker.connections[self.client_id] = self
        session, present = broker.open_session(self.client_id, connect.clean, caller)
        self.session, self.accepted = session, True
        self.send(Connack(present, ACCEPTED).encode(MQTT_3_1_1))
        log.info("mqtt connect client=%s user=%s peer=%s clean=%s keepalive=%s session_present=%s",
                 self.client_id, caller.username, self.peer, connect.clean, connect.keepalive, present)
        broker.presence(self.client_id, True)
        session.attach(self)

    # -- PUBLISH, SUBSCRIBE ---------------------------------------------------------------------

    async def _on_publish(self, session: Session, first: int, buf: bytearray, start: int, end: int) -> None:
        """on_publish before the acknowledgement (the value is stored by then), relay after it."""
        topic, payload, qos, retain, _dup, packet_id, _ = parse_publish(buf, first, start, end, MQTT_3_1_1)
        caller = self.caller
        assert caller is not None
        if qos == 2 and packet_id in session.incoming_qos2:
            self.send(PUBREC_HEAD + packet_id_bytes(packet_id))  # a resent QoS 2 message: already handled
            return
        keep = await self.broker.check_publish(caller, topic, payload)
        if qos == 1:
            self.send(PUBACK_HEAD + packet_id_bytes(packet_id))
        elif qos == 2:
            session.incoming_qos2.add(packet_id)
            self.send(PUBREC_HEAD + packet_id_bytes(packet_id))
        if keep and not self._finished:
            await self.broker.route(topic, payload, qos, retain)
        elif not keep:
            log.debug("mqtt publish dropped client=%s user=%s topic=%s", self.client_id, caller.username, topic)

    async def _on_subscribe(self, session: Session, body: bytes) -> None:
        packet_id, entries = parse_subscribe(body)
        codes: list[int] = []
        granted_filters: list[tuple[str, int]] = []
        for topic_filter, qos in entries:
            if qos is None:
                log.info("mqtt bad filter client=%s filter=%r", self.client_id, topic_filter)
                codes.append(SUBACK_FAILURE)
                continue
            granted = self.broker.subscribe(session, topic_filter, qos)
            codes.append(granted)
            granted_filters.append((topic_filter, granted))
        self.send(Suback(packet_id, codes).encode(MQTT_3_1_1))
        log.info("mqtt subscribe client=%s user=%s filters=%s", self.client_id, self._user(),
                 [f for f, _ in entries])
        for topic_filter, granted in granted_filters:
            await self.broker.send_retained(session, topic_filter, granted)


class _Refused(MqttError):
    """A CONNECT answered with a refusal: the connection ends without the rest of the cleanup."""

    def __init__(self) -> None:
        super().__init__("connection refused")

