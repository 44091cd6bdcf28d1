"""The WAZIUP API's embedded MQTT broker (contract §6), driven by paho-mqtt and raw sockets.

The broker runs on an event loop in a thread of its own, so the tests stay synchronous
and a real client library (paho, with its own network thread) talks to it as a device
would. Raw sockets built with the project's codec cover what paho hides or refuses to
send: bad filters, protocol levels, keepalive silence, garbage bytes. Every wait is on
an event with a timeout.
"""

from __future__ import annotations

import asyncio
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from ngsi.client.mqtt.packets import (
    MQTT_3_1_1, MQTT_5, Connack, Connect, Disconnect, Packet, Pingreq, Pingresp, Puback, Publish, Suback,
    Subscribe, Subscription, Will, decode_packet, encode_publish, split_packet,
)
from orchestrator.tls import development_files
from orchestrator.waziup_api.caller import GUEST, Caller
from orchestrator.waziup_api.mqtt import MqttBroker, SubscriptionIndex

T = TypeVar("T")
WAIT = 5.0
USERS = {"alice": "alice-pw", "bob": "bob-pw"}


# -- the hooks, recording what the broker asked ------------------------------------------------


class RecordingHooks:
    """Hooks with fixed rules: ``drop/`` topics are refused, ``boom/`` ones raise, ``private/``
    ones reach alice only, ``gate/`` ones wait for the test to open the gate."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.published: list[tuple[str, str, bytes]] = []
        self.presence_log: list[tuple[str, str]] = []
        self.presence: dict[str, bool] = {}
        self.gate_entered = threading.Event()
        self.gate: asyncio.Event | None = None  # created on the broker's loop
        self.order: list[str] = []

    async def authenticate(self, username: str | None, password: str | None) -> Caller | None:
        if username is None:
            return GUEST
        if USERS.get(username) == password:
            return Caller(username, user_id=f"id-{username}")
        return None

    async def on_publish(self, caller: Caller, topic: str, payload: bytes) -> bool:
        if topic.startswith("gate/"):
            self.gate_entered.set()
            assert self.gate is not None
            await self.gate.wait()
            self._note("hook returned")
        with self.cond:
            self.published.append((caller.username, topic, payload))
            self.cond.notify_all()
        if topic.startswith("boom/"):
            raise RuntimeError("hook failure")
        return not topic.startswith("drop/")

    async def may_receive(self, caller: Caller, topic: str) -> bool:
        return not topic.startswith("private/") or caller.username == "alice"

    def on_connect(self, client_id: str) -> None:
        self._presence(client_id, True)

    def on_disconnect(self, client_id: str) -> None:
        self._presence(client_id, False)

    def _presence(self, client_id: str, connected: bool) -> None:
        with self.cond:
            self.presence_log.append(("connect" if connected else "disconnect", client_id))
            self.presence[client_id] = connected
            self.cond.notify_all()

    def _note(self, what: str) -> None:
        with self.cond:
            self.order.append(what)
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, timeout), "timed out waiting on the hooks"


# -- the broker in a thread --------------------------------------------------------------------


class BrokerThread:
    """An MqttBroker on port 0, on an event loop running in a daemon thread."""

    def __init__(self, hooks: RecordingHooks, **kwargs: Any) -> None:
        self.hooks = hooks
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.broker = MqttBroker(hooks, port=0, **kwargs)
        self.call(self.broker.start())
        self.port = self.broker.port

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT)

    def close(self) -> None:
        self.call(self.broker.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks()


@pytest.fixture
def server(hooks: RecordingHooks) -> Iterator[BrokerThread]:
    thread = BrokerThread(hooks)
    yield thread
    thread.close()


# -- clients -----------------------------------------------------------------------------------


class PahoClient:
    """A paho-mqtt 3.1.1 client whose messages land in a queue."""

    def __init__(self, port: int, client_id: str = "", *, clean: bool = True, user: str | None = None,
                 password: str | None = None, keepalive: int = 60) -> None:
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.acked: set[int] = set()
        self.ack_event = threading.Condition()
        self.session_present: bool | None = None
        self.reason: Any = None
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean,
                                  protocol=paho.MQTTv311, reconnect_on_failure=False)
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.on_subscribe = lambda c, u, mid, codes, props: self.subscribed.set()
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port, keepalive)
        self.client.loop_start()

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.session_present, self.reason = flags.session_present, reason
        self.connected.set()

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self.ack_event:
            self.acked.add(mid)
            self.ack_event.notify_all()

    def wait_connected(self) -> PahoClient:
        assert self.connected.wait(WAIT), "no CONNACK"
        assert not self.reason.is_failure, self.reason
        return self

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, qos)
        assert self.subscribed.wait(WAIT), "no SUBACK"

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> int:
        info = self.client.publish(topic, payload, qos, retain)
        return info.mid

    def wait_acked(self, mid: int) -> None:
        with self.ack_event:
            assert self.ack_event.wait_for(lambda: mid in self.acked, WAIT), "publish not acknowledged"

    def next(self, timeout: float = WAIT) -> paho.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator[Callable[..., PahoClient]]:
    made: list[PahoClient] = []

    def make(port: int, client_id: str = "", **kwargs: Any) -> PahoClient:
        client = PahoClient(port, client_id, **kwargs).wait_connected()
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


class RawClient:
    """A socket speaking MQTT through the project's codec, for what paho will not send."""

    opened: list[socket.socket] = []  # closed after each test by _close_raw_sockets

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.opened.append(self.sock)
        self.buf = bytearray()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def connect(self, client_id: str = "", **kwargs: Any) -> Connack:
        self.send(Connect(client_id, **kwargs).encode(MQTT_3_1_1))
        packet = self.recv()
        assert isinstance(packet, Connack)
        return packet

    def recv(self, timeout: float = WAIT) -> Packet | None:
        """The next packet, or None when the broker closed the socket."""
        self.sock.settimeout(timeout)
        while (where := split_packet(self.buf)) is None:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        first, start, end = where
        packet = decode_packet(first, bytes(self.buf[start:end]), MQTT_3_1_1)
        del self.buf[:end]
        return packet

    def closed_by_broker(self) -> bool:
        try:
            return self.recv() is None
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def raw_subscribe(packet_id: int, filters: list[tuple[str, int]]) -> bytes:
    """A SUBSCRIBE built by hand, invalid filters included."""
    body = packet_id.to_bytes(2, "big")
    for topic_filter, qos in filters:
        raw = topic_filter.encode()
        body += len(raw).to_bytes(2, "big") + raw + bytes((qos,))
    return bytes((0x82, len(body))) + body


@pytest.fixture(autouse=True)
def _close_raw_sockets() -> Iterator[None]:
    yield
    while RawClient.opened:
        RawClient.opened.pop().close()


# -- connecting --------------------------------------------------------------------------------


def test_anonymous_and_user_logins(server: BrokerThread, clients: Callable[..., PahoClient],
                                   hooks: RecordingHooks) -> None:
    anon = clients(server.port, "anon")
    alice = clients(server.port, "al", user="alice", password="alice-pw")
    anon.subscribe("t/#")
    alice.wait_acked(alice.publish("t/1", b"x", qos=1))
    anon.wait_acked(anon.publish("t/2", b"y", qos=1))
    assert ("alice", "t/1", b"x") in hooks.published
    assert ("guest", "t/2", b"y") in hooks.published


def test_bad_credentials_refused(server: BrokerThread) -> None:
    raw = RawClient(server.port)
    assert raw.connect("c", username="alice", password=b"wrong").reason_code == 4
    assert raw.closed_by_broker()
    client = PahoClient(server.port, "p", user="bob", password="nope")
    assert client.connected.wait(WAIT)
    assert client.reason.is_failure
    client.client.loop_stop()
    sock = client.client.socket()
    if sock is not None:
        sock.close()


def test_connect_rules(server: BrokerThread) -> None:
    """Empty id + clean session gets one; empty id without clean session, level 5 and a first
    packet that is not CONNECT are refused."""
    assert RawClient(server.port).connect("", clean=True).reason_code == 0
    assert RawClient(server.port).connect("", clean=False).reason_code == 2
    raw = RawClient(server.port)
    raw.send(Connect("five").encode(MQTT_5))
    packet = raw.recv()
    assert isinstance(packet, Connack) and packet.reason_code == 1
    raw = RawClient(server.port)
    raw.send(Pingreq().encode(MQTT_3_1_1))
    assert raw.closed_by_broker()


def test_mqtt_3_1_client_accepted(server: BrokerThread) -> None:
    """paho speaking MQTT 3.1 (``MQIsdp``, level 3): connects and publishes."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="old31", protocol=paho.MQTTv31,
                         reconnect_on_failure=False)
    connected = threading.Event()
    client.on_connect = lambda c, u, flags, reason, props: connected.set() if not reason.is_failure else None
    client.connect("127.0.0.1", server.port, 30)
    client.loop_start()
    try:
        assert connected.wait(WAIT)
        client.publish("t31", b"x", qos=1).wait_for_publish(WAIT)
        assert ("guest", "t31", b"x") in server.hooks.published
    finally:
        client.disconnect()
        client.loop_stop()


def test_tls_listener(tmp_path: Path) -> None:
    files = development_files(tmp_path, ["127.0.0.1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert, files.key)
    hooks = RecordingHooks()
    thread = BrokerThread(hooks, ssl_context=context)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="tls", protocol=paho.MQTTv311,
                         reconnect_on_failure=False)
    client.tls_set(ca_certs=str(files.cert))
    connected = threading.Event()
    client.on_connect = lambda c, u, flags, reason, props: connected.set() if not reason.is_failure else None
    try:
        client.connect("127.0.0.1", thread.port, 30)
        client.loop_start()
        assert connected.wait(WAIT)
        hooks.wait(lambda: hooks.presence.get("tls") is True)
    finally:
        client.disconnect()
        client.loop_stop()
        thread.close()


# -- publishing --------------------------------------------------------------------------------


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_roundtrip(server: BrokerThread, clients: Callable[..., PahoClient], qos: int) -> None:
    sub = clients(server.port, "sub")
    sub.subscribe("devices/+/sensors/+/value", qos=2)
    pub = clients(server.port, "pub")
    mid = pub.publish("devices/d1/sensors/s1/value", b'{"value": 1}', qos=qos)
    if qos:
        pub.wait_acked(mid)
    msg = sub.next()
    assert (msg.topic, msg.payload, msg.qos) == ("devices/d1/sensors/s1/value", b'{"value": 1}', min(qos, 1))


def test_qos2_subscription_granted_1(server: BrokerThread) -> None:
    raw = RawClient(server.port)
    raw.connect("g")
    raw.send(raw_subscribe(1, [("a", 2), ("a/#/b", 1), ("b", 0)]))  # the codec refuses to encode a/#/b
    packet = raw.recv()
    assert isinstance(packet, Suback) and packet.reason_codes == [1, 0x80, 0]


def test_on_publish_runs_before_puback(server: BrokerThread, hooks: RecordingHooks) -> None:
    hooks.gate = server.call(_make_event())
    raw = RawClient(server.port)
    raw.connect("gated")
    raw.send(encode_publish("gate/x", b"v", 1, False, False, 7, None, MQTT_3_1_1))
    assert hooks.gate_entered.wait(WAIT)
    with pytest.raises(TimeoutError):  # the hook holds the acknowledgement back
        raw.recv(timeout=0.3)
    server.loop.call_soon_threadsafe(hooks.gate.set)
    packet = raw.recv()
    assert isinstance(packet, Puback) and packet.packet_id == 7
    assert hooks.order == ["hook returned"]


async def _make_event() -> asyncio.Event:
    return asyncio.Event()


def test_dropped_and_failing_publishes_acked_not_relayed(
        server: BrokerThread, clients: Callable[..., PahoClient]) -> None:
    sub = clients(server.port, "sub")
    sub.subscribe("#")
    pub = clients(server.port, "pub")
    pub.wait_acked(pub.publish("drop/x", b"secret", qos=1))
    pub.wait_acked(pub.publish("boom/x", b"secret", qos=1))
    pub.wait_acked(pub.publish("drop/q2", b"secret", qos=2))
    pub.wait_acked(pub.publish("ok/x", b"fine", qos=1))
    msg = sub.next()  # the same publisher's messages are relayed in order: nothing came before
    assert (msg.topic, msg.payload) == ("ok/x", b"fine")
    assert sub.messages.empty()


def test_publish_to_wildcard_topic_closes(server: BrokerThread) -> None:
    raw = RawClient(server.port)
    raw.connect("w")
    body = b"\x00\x03a/+" + b"x"
    raw.send(bytes((0x30, len(body))) + body)
    assert raw.closed_by_broker()


def test_oversized_packet_closes() -> None:
    hooks = RecordingHooks()
    thread = BrokerThread(hooks, max_packet=1000)
    try:
        raw = RawClient(thread.port)
        raw.connect("big")
        raw.send(encode_publish("t", b"x" * 2000, 0, False, False, 0, None, MQTT_3_1_1)[:100])
        assert raw.closed_by_broker()
        hooks.wait(lambda: hooks.presence.get("big") is False)
    finally:
        thread.close()


# -- delivery ----------------------------------------------------------------------------------


def test_may_receive_filters_per_subscriber(server: BrokerThread, clients: Callable[..., PahoClient]) -> None:
    alice = clients(server.port, "a", user="alice", password="alice-pw")
    bob = clients(server.port, "b", user="bob", password="bob-pw")
    alice.subscribe("+/d1")
    bob.subscribe("+/d1")
    pub = clients(server.port, "pub")
    pub.wait_acked(pub.publish("private/d1", b"p", qos=1))
    pub.wait_acked(pub.publish("public/d1", b"q", qos=1))
    assert [alice.next().topic, alice.next().topic] == ["private/d1", "public/d1"]
    assert bob.next().topic == "public/d1"
    assert bob.messages.empty()


def test_wildcards_and_dollar_topics(server: BrokerThread, clients: Callable[..., PahoClient]) -> None:
    hash_sub = clients(server.port, "h")
    hash_sub.subscribe("#")
    plus = clients(server.port, "p")
    plus.subscribe("a/+/c")
    dollar = clients(server.port, "d")
    dollar.subscribe("$app/#")
    pub = clients(server.port, "pub")
    for topic in ("$app/x", "a/b/c", "a/b/c/d", "end"):
        pub.wait_acked(pub.publish(topic, b"1", qos=1))
    assert [hash_sub.next().topic for _ in range(3)] == ["a/b/c", "a/b/c/d", "end"]
    assert plus.next().topic == "a/b/c"
    assert dollar.next().topic == "$app/x"
    assert plus.messages.empty() and dollar.messages.empty()


def test_retained_messages(server: BrokerThread, clients: Callable[..., PahoClient]) -> None:
    pub = clients(server.port, "pub")
    pub.wait_acked(pub.publish("r/1", b"kept", qos=1, retain=True))
    pub.wait_acked(pub.publish("private/r", b"hidden", qos=1, retain=True))
    pub.wait_acked(pub.publish("r/2", b"gone", qos=1, retain=True))
    pub.wait_acked(pub.publish("r/2", b"", qos=1, retain=True))
    sub = clients(server.port, "sub", user="bob", password="bob-pw")
    sub.subscribe("#")
    msg = sub.next()
    assert (msg.topic, msg.payload, msg.retain) == ("r/1", b"kept", True)
    pub.wait_acked(pub.publish("r/1", b"live", qos=1, retain=True))
    msg = sub.next()
    assert (msg.topic, msg.payload, msg.retain) == ("r/1", b"live", False)
    assert sub.messages.empty()


def test_in_process_publish(server: BrokerThread, clients: Callable[..., PahoClient]) -> None:
    sub = clients(server.port, "sub", user="bob", password="bob-pw")
    sub.subscribe("devices/+/actuators/+/value")
    sub.subscribe("private/#")
    server.call(server.broker.publish("private/x", b"no", qos=1))
    server.call(server.broker.publish("devices/d/actuators/a/value", b"50", qos=1))
    msg = sub.next()
    assert (msg.topic, msg.payload, msg.qos) == ("devices/d/actuators/a/value", b"50", 1)
    with pytest.raises(ValueError):
        server.call(server.broker.publish("bad/+", b""))


def test_persistent_session_queues_while_offline(server: BrokerThread, clients: Callable[..., PahoClient]) -> None:
    first = PahoClient(server.port, "keeper", clean=False).wait_connected()
    assert not first.session_present
    first.subscribe("q/#", qos=1)
    first.close()
    pub = clients(server.port, "pub")
    for i in range(3):
        pub.wait_acked(pub.publish(f"q/{i}", str(i).encode(), qos=1))
    pub.publish("q/zero", b"lost", qos=0)
    again = clients(server.port, "keeper", clean=False)
    assert again.session_present
    assert [again.next().payload for _ in range(3)] == [b"0", b"1", b"2"]
    again.close()
    clean = clients(server.port, "keeper", clean=True)
    assert not clean.session_present


def test_unacked_qos1_resent_with_dup(server: BrokerThread, clients: Callable[..., PahoClient]) -> None:
    raw = RawClient(server.port)
    raw.connect("forgetful", clean=False)
    raw.send(Subscribe(1, [Subscription("u", 1)]).encode(MQTT_3_1_1))
    assert isinstance(raw.recv(), Suback)
    server.call(server.broker.publish("u", b"m", qos=1))
    first = raw.recv()
    assert isinstance(first, Publish) and not first.dup
    raw.close()  # no PUBACK
    raw = RawClient(server.port)
    assert raw.connect("forgetful", clean=False).session_present
    again = raw.recv()
    assert isinstance(again, Publish) and again.dup and again.packet_id == first.packet_id
    raw.send(Puback(again.packet_id).encode(MQTT_3_1_1))
    raw.send(Disconnect().encode(MQTT_3_1_1))


def test_unsubscribe(server: BrokerThread, clients: Callable[..., PahoClient]) -> None:
    sub = clients(server.port, "sub")
    sub.subscribe("x")
    sub.subscribe("y")
    done = threading.Event()
    sub.client.on_unsubscribe = lambda *args: done.set()
    sub.client.unsubscribe("x")
    assert done.wait(WAIT)
    server.call(server.broker.publish("x", b"1"))
    server.call(server.broker.publish("y", b"2"))
    assert sub.next().topic == "y"
    assert sub.messages.empty()


def test_slow_subscriber_does_not_block_others() -> None:
    """A subscriber that never reads loses QoS 0 messages; the others get every one."""
    hooks = RecordingHooks()
    thread = BrokerThread(hooks)
    thread.broker.OUTBOX_SOFT = 10
    try:
        stuck = RawClient(thread.port)
        stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect("stuck")
        stuck.send(Subscribe(1, [Subscription("s", 0)]).encode(MQTT_3_1_1))
        assert isinstance(stuck.recv(), Suback)
        fast = PahoClient(thread.port, "fast").wait_connected()
        fast.subscribe("s", qos=0)
        for _ in range(400):
            thread.call(thread.broker.publish("s", b"z" * 20_000))
        assert all(fast.next().payload for _ in range(400))
        assert thread.broker.connections["stuck"].outbox.dropped > 0
        fast.close()
    finally:
        thread.close()


# -- presence, wills, keepalive ----------------------------------------------------------------


def test_takeover_presence(server: BrokerThread, hooks: RecordingHooks) -> None:
    old = RawClient(server.port)
    old.connect("gw1")
    new = RawClient(server.port)
    assert new.connect("gw1").reason_code == 0
    assert old.closed_by_broker()
    assert hooks.presence_log == [("connect", "gw1"), ("disconnect", "gw1"), ("connect", "gw1")]
    assert hooks.presence["gw1"] is True
    new.send(Disconnect().encode(MQTT_3_1_1))
    hooks.wait(lambda: hooks.presence["gw1"] is False)


def test_socket_close_ends_presence_and_sends_will(server: BrokerThread, hooks: RecordingHooks,
                                                   clients: Callable[..., PahoClient]) -> None:
    sub = clients(server.port, "sub")
    sub.subscribe("wills/#")
    raw = RawClient(server.port)
    raw.connect("gw2", will=Will("wills/gw2", b"gone", 1))
    raw.close()
    hooks.wait(lambda: hooks.presence.get("gw2") is False)
    msg = sub.next()
    assert (msg.topic, msg.payload) == ("wills/gw2", b"gone")
    assert ("guest", "wills/gw2", b"gone") in hooks.published


def test_clean_disconnect_sends_no_will(server: BrokerThread, hooks: RecordingHooks,
                                        clients: Callable[..., PahoClient]) -> None:
    sub = clients(server.port, "sub")
    sub.subscribe("#")
    raw = RawClient(server.port)
    raw.connect("polite", will=Will("wills/polite", b"gone"))
    raw.send(Disconnect().encode(MQTT_3_1_1))
    hooks.wait(lambda: hooks.presence.get("polite") is False)
    assert "polite" not in server.broker.sessions  # a clean session ends with its connection
    server.call(server.broker.publish("marker", b""))
    assert sub.next().topic == "marker"


def test_keepalive_timeout(server: BrokerThread, hooks: RecordingHooks) -> None:
    raw = RawClient(server.port)
    raw.connect("sleepy", keepalive=1)
    start = time.monotonic()
    raw.send(Pingreq().encode(MQTT_3_1_1))
    assert isinstance(raw.recv(), Pingresp)
    hooks.wait(lambda: hooks.presence.get("sleepy") is False, timeout=4)
    elapsed = time.monotonic() - start
    assert 1.2 <= elapsed <= 3.0, elapsed
    assert raw.closed_by_broker()


def test_stop_disconnects_everyone(hooks: RecordingHooks) -> None:
    thread = BrokerThread(hooks)
    raw = RawClient(thread.port)
    raw.connect("last")
    thread.close()
    assert hooks.presence["last"] is False
    assert raw.closed_by_broker()


# -- robustness --------------------------------------------------------------------------------


def _framed(kind: int, flags: int, body: bytes) -> bytes:
    """A packet with a correct fixed header around a random body: reaches the decoders."""
    size, length = len(body), bytearray()
    while True:
        byte, size = size & 0x7F, size >> 7
        length.append(byte | 0x80 if size else byte)
        if not size:
            return bytes((kind << 4 | flags,)) + bytes(length) + body


_GARBAGE = st.one_of(
    st.binary(min_size=1, max_size=200),
    st.lists(st.builds(_framed, st.integers(0, 15), st.sampled_from([0, 2]) | st.integers(0, 15), st.binary(max_size=60)),
             min_size=1, max_size=5).map(b"".join),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=_GARBAGE)
def test_fuzz_after_connect(server: BrokerThread, garbage: bytes) -> None:
    """Whatever follows a valid CONNECT, the broker handles it and still serves a new client."""
    raw = RawClient(server.port)
    raw.connect("fuzz")
    raw.send(garbage)
    raw.sock.shutdown(socket.SHUT_WR)
    while True:  # until the broker has read everything and closed its side
        try:
            raw.sock.settimeout(WAIT)
            if not raw.sock.recv(65536):
                break
        except ConnectionResetError:
            break
    raw.close()
    probe = RawClient(server.port)
    assert probe.connect("probe").reason_code == 0
    probe.send(Pingreq().encode(MQTT_3_1_1))
    assert isinstance(probe.recv(), Pingresp)
    probe.close()


def test_subscription_index() -> None:
    index = SubscriptionIndex()
    index.add("a/+/c", "x", 0)
    index.add("a/#", "x", 1)
    index.add("#", "y", 0)
    index.add("$s/#", "z", 1)
    assert index.match("a/b/c") == {"x": 1, "y": 0}
    assert index.match("a") == {"x": 1, "y": 0}
    assert index.match("$s/q") == {"z": 1}
    index.remove("a/#", "x")
    index.remove("a/+/c", "x")
    index.remove("nothing/here", "x")
    assert index.match("a/b/c") == {"y": 0}
    index.remove("#", "y")
    index.remove("$s/#", "z")
    assert index._root.children == {}
