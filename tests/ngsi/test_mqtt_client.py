"""The asyncio MQTT client against real brokers: Mosquitto, paho-mqtt as the other side, and TLS.

Reconnect cases put a TCP proxy of ours between the client and Mosquitto: it records
every packet the client sends, can drop chosen packets the broker sends (a PUBACK that
never arrives keeps a message in flight), cut the connections and refuse new ones. So
"in flight when the connection dropped" is a state the test makes, not a race it hopes
for. What no real broker does on demand (a server keepalive, a receive maximum of 2, a
malformed packet, topic aliases) is played by a scripted broker: a socket server whose
every packet the test writes and reads.

Every wait is on an event or a condition with a timeout; nothing sleeps and hopes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties

from ngsi.client.mqtt import MqttClient, MqttError, Will
from ngsi.client.mqtt.packets import (
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBREC,
    Connack,
    Connect,
    Disconnect,
    MqttProtocolError,
    Packet,
    Pingreq,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    decode_packet,
    split_packet,
)
from tests.conftest import Mosquitto, free_port

pytestmark = pytest.mark.anyio

HOST = "127.0.0.1"
WAIT = 5.0  # seconds any single expected event may take


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def uid() -> str:
    return uuid.uuid4().hex[:10]


class Inbox:
    """``on_message`` that records messages and lets a test wait for the n-th."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, dict[str, Any]]] = []
        self._changed: asyncio.Event | None = None

    def __call__(self, topic: str, payload: bytes, properties: Any) -> None:
        self.messages.append((topic, payload, dict(properties)))
        if self._changed is not None:
            self._changed.set()

    @property
    def payloads(self) -> list[bytes]:
        return [payload for _, payload, _ in self.messages]

    async def wait(self, count: int, timeout: float = WAIT) -> list[tuple[str, bytes, dict[str, Any]]]:
        if self._changed is None:
            self._changed = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                while len(self.messages) < count:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{len(self.messages)} of {count} messages after {timeout} s: {self.payloads}") from None
        return self.messages

    async def expect(self, *payloads: bytes) -> None:
        """Wait for as many messages as ``payloads``: they must be these, in this order."""
        await self.wait(len(payloads))
        assert self.payloads == list(payloads)


class Connects:
    """``on_connect`` that counts CONNACKs and lets a test wait for the n-th."""

    def __init__(self) -> None:
        self.count = 0
        self._changed: asyncio.Event | None = None

    def __call__(self) -> None:
        self.count += 1
        if self._changed is not None:
            self._changed.set()

    async def reach(self, count: int, timeout: float = WAIT) -> None:
        if self._changed is None:
            self._changed = asyncio.Event()
        async with asyncio.timeout(timeout):
            while self.count < count:
                self._changed.clear()
                await self._changed.wait()


async def until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait until a condition on state the test cannot subscribe to holds (checked every 10 ms)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


MakeClient = Callable[..., MqttClient]


@pytest.fixture
async def make_client(anyio_backend: str) -> AsyncIterator[MakeClient]:
    """``make_client(port, **options)``: MqttClients with fast reconnects, all closed at the end of the test."""
    made: list[MqttClient] = []

    def make(port: int, **options: Any) -> MqttClient:
        options.setdefault("client_id", f"test-{uid()}")
        options.setdefault("reconnect_delay", (0.05, 0.2))
        options.setdefault("connect_timeout", WAIT)
        client = MqttClient(HOST, port, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@dataclass
class Clients:
    """A test's clients of one broker: ``clients(**options)`` makes one (see ``make_client``);
    ``listening`` and ``watching`` connect one with an inbox, the other end that shows what
    the broker really delivered."""

    port: int
    make: MakeClient

    def __call__(self, **options: Any) -> MqttClient:
        return self.make(self.port, **options)

    def at(self, port: int) -> Clients:
        """The same clients, of another server (a proxy in front of this broker)."""
        return Clients(port, self.make)

    async def listening(self, **options: Any) -> tuple[MqttClient, Inbox]:
        """A connected client, and the inbox of what it receives."""
        inbox = Inbox()
        client = self(on_message=inbox, **options)
        await client.connect()
        return client, inbox

    async def watching(self, topic_filter: str, qos: int, **options: Any) -> tuple[MqttClient, Inbox]:
        """A connected client subscribed to ``topic_filter``, and the inbox of what it receives."""
        client, inbox = await self.listening(**options)
        await client.subscribe(topic_filter, qos)
        return client, inbox


@pytest.fixture
def on_mosquitto(mosquitto: Mosquitto, make_client: MakeClient) -> Clients:
    """Clients of the session's Mosquitto."""
    return Clients(mosquitto.port, make_client)


@pytest.fixture
def topic() -> str:
    """A topic of the test's own: the tests share one Mosquitto."""
    return f"test/{uid()}"


# -- servers of the test's own ---------------------------------------------------------------


class LocalServer:
    """A TCP server on a free loopback port while in ``async with``: each connection is
    ``serve``d, and whatever is still open when the block ends is ``end``ed."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self.serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        self.end()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def end(self) -> None:
        raise NotImplementedError


# -- a proxy we can cut ------------------------------------------------------------------------


class Proxy(LocalServer):
    """TCP between a client and a broker; records the client's packets, drops chosen broker packets."""

    def __init__(self, target_port: int, protocol: int) -> None:
        super().__init__()
        self.target_port = target_port
        self.protocol = protocol
        self.sent: list[Packet] = []  # by the client, decoded
        self.drop: set[int] = set()  # packet types from the broker not passed on
        self.dropped: list[int] = []
        self.refuse = False  # close new connections at once
        self.refused = 0
        self._links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []

    def cut(self) -> None:
        """Abort every open connection, both sides (the broker sees a connection reset)."""
        for client_side, broker_side in list(self._links):
            client_side.transport.abort()
            broker_side.transport.abort()

    end = cut

    def sent_of(self, kind: type[Any], payload: bytes | None = None) -> list[Any]:
        return [p for p in self.sent if isinstance(p, kind) and (payload is None or p.payload == payload)]

    async def wait_sent(self, kind: type[Any], count: int = 1, payload: bytes | None = None) -> list[Any]:
        await until(lambda: len(self.sent_of(kind, payload)) >= count)
        return self.sent_of(kind, payload)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Link a new client connection to the broker (or refuse it)."""
        if self.refuse:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        link = (writer, up_writer)
        self._links.append(link)
        try:
            await asyncio.gather(self._pump(reader, up_writer, True), self._pump(up_reader, writer, False),
                                 return_exceptions=True)
        finally:
            writer.transport.abort()
            up_writer.transport.abort()
            self._links.remove(link)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, from_client: bool) -> None:
        buffer = bytearray()
        while data := await reader.read(65536):
            buffer += data
            out = bytearray()
            while (where := split_packet(buffer)) is not None:
                first, start, end = where
                if from_client:
                    self.sent.append(decode_packet(first, bytes(buffer[start:end]), self.protocol))
                    out += buffer[:end]
                elif first >> 4 in self.drop:
                    self.dropped.append(first >> 4)
                else:
                    out += buffer[:end]
                del buffer[:end]
            if out and not writer.transport.is_closing():
                writer.write(bytes(out))
        writer.transport.abort()


# -- a broker whose every packet the test writes -------------------------------------------------


class Peer:
    """One client connection to the scripted broker."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: int) -> None:
        self.reader, self.writer, self.protocol = reader, writer, protocol
        self.buffer = bytearray()

    async def read(self, timeout: float = WAIT) -> Packet:
        async with asyncio.timeout(timeout):
            while True:
                where = split_packet(self.buffer)
                if where is not None:
                    first, start, end = where
                    packet = decode_packet(first, bytes(self.buffer[start:end]), self.protocol)
                    del self.buffer[:end]
                    return packet
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError("the client closed the connection")
                self.buffer += data

    async def expect(self, kind: type[Any]) -> Any:
        packet = await self.read()
        assert isinstance(packet, kind), f"expected {kind.__name__}, got {packet!r}"
        return packet

    def send(self, *packets: Packet | bytes) -> None:
        self.writer.write(b"".join(p if isinstance(p, bytes) else p.encode(self.protocol) for p in packets))

    async def closed_by_client(self) -> None:
        async with asyncio.timeout(WAIT):
            while await self.reader.read(65536):
                pass

    def abort(self) -> None:
        self.writer.transport.abort()


class ScriptedBroker(LocalServer):
    def __init__(self, protocol: int) -> None:
        super().__init__()
        self.protocol = protocol
        self.peers: asyncio.Queue[Peer] = asyncio.Queue()
        self._peers: list[Peer] = []

    def end(self) -> None:
        for peer in self._peers:
            peer.abort()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A new client connection: a peer for the test to script."""
        peer = Peer(reader, writer, self.protocol)
        self._peers.append(peer)
        await self.peers.put(peer)

    async def accept(self, connack: Connack | None = None) -> tuple[Peer, Connect]:
        """The next connection and its CONNECT, answered with ``connack`` (success by default)."""
        async with asyncio.timeout(WAIT):
            peer = await self.peers.get()
        connect = await peer.expect(Connect)
        peer.send(connack or Connack())
        return peer, connect

    async def connect(self, client: MqttClient, connack: Connack | None = None) -> tuple[Peer, Connect]:
        """``client.connect()`` to this broker, answered with ``connack`` (success by default):
        the connection's peer and the CONNECT, once the client is connected."""
        connecting = asyncio.create_task(client.connect())
        peer, connect = await self.accept(connack)
        await connecting
        return peer, connect


# -- a Mosquitto of this module: TLS, ACL, passwords ----------------------------------------------


DYNSEC_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")  # ships with Debian's mosquitto
DYNSEC_CONFIG = {  # anonymous clients may neither subscribe to denied/# nor publish to readonly/#
    "defaultACLAccess": {"publishClientSend": True, "publishClientReceive": True, "subscribe": True,
                         "unsubscribe": True},
    "clients": [],
    "groups": [{"groupname": "anonymous", "roles": [{"rolename": "limited"}], "clients": []}],
    "roles": [{"rolename": "limited", "acls": [
        {"acltype": "subscribePattern", "topic": "denied/#", "priority": 0, "allow": False},
        {"acltype": "publishClientSend", "topic": "readonly/#", "priority": 0, "allow": False},
    ]}],
    "anonymousGroup": "anonymous",
}


@dataclass
class SecureMosquitto:
    acl_port: int  # anonymous; denied/# cannot be subscribed to, readonly/# not published to
    tls_port: int  # anonymous, TLS with a certificate for localhost and 127.0.0.1
    password_port: int  # alice / wonderland only
    ca: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(name: str, cwd: Path) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=cwd)


@pytest.fixture(scope="module")
def secure_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureMosquitto]:
    """A throw-away CA and server certificate (openssl), a password file, access rules, and Mosquitto on them."""
    work = tmp_path_factory.mktemp("mosquitto-secure")
    _make_ca("test-ca", work)
    _make_ca("other-ca", work)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=work)
    (work / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "test-ca.crt", "-CAkey", "test-ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext", cwd=work)
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(work / "passwd"), "alice", "wonderland"],
                   check=True, capture_output=True)
    (work / "passwd").chmod(0o600)
    (work / "dynsec.json").write_text(json.dumps(DYNSEC_CONFIG))
    plugin = shutil.which("mosquitto_dynamic_security.so") or str(DYNSEC_PLUGIN)
    ports = SecureMosquitto(free_port(), free_port(), free_port(), work / "test-ca.crt", work / "other-ca.crt")
    as_user = "user root\n" if os.geteuid() == 0 else ""  # see tests/conftest.py
    (work / "mosquitto.conf").write_text(
        f"{as_user}per_listener_settings true\npersistence false\nlog_dest stderr\n"
        f"listener {ports.acl_port} {HOST}\nallow_anonymous true\n"
        f"plugin {plugin}\nplugin_opt_config_file {work / 'dynsec.json'}\n"
        f"listener {ports.tls_port} {HOST}\nallow_anonymous true\n"
        f"cafile {work / 'test-ca.crt'}\ncertfile {work / 'server.crt'}\nkeyfile {work / 'server.key'}\n"
        f"listener {ports.password_port} {HOST}\nallow_anonymous false\npassword_file {work / 'passwd'}\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    log = open(work / "mosquitto.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen([binary, "-c", str(work / "mosquitto.conf")], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mosquitto exited: {(work / 'mosquitto.log').read_text()}", pytrace=False)
            try:
                for port in (ports.acl_port, ports.tls_port, ports.password_port):
                    socket.create_connection((HOST, port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("mosquitto did not listen within 10 s", pytrace=False)
                time.sleep(0.05)
        yield ports
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def persistent(protocol: int) -> dict[str, Any]:
    """Options under which the broker keeps the session across a drop (needed to resend in flight)."""
    return {"clean": False} if protocol == 4 else {"session_expiry": 60}


both = pytest.mark.parametrize("protocol", [4, 5], ids=["mqtt311", "mqtt5"])


@asynccontextmanager
async def through_a_proxy(
    clients: Clients, protocol: int, topic: str, qos: int, **options: Any
) -> AsyncIterator[tuple[Proxy, MqttClient, Inbox]]:
    """A client connected through a :class:`Proxy` (to cut and drop), and the inbox of a watcher
    subscribed to ``topic`` on the broker itself: what really got delivered across the cuts."""
    _, inbox = await clients.watching(topic, qos, protocol=protocol)
    async with Proxy(clients.port, protocol) as proxy:
        client = clients.at(proxy.port)(protocol=protocol, **options)
        await client.connect()
        yield proxy, client, inbox


async def publish_across_a_cut(proxy: Proxy, publish: Coroutine[Any, Any, None], lost: int) -> None:
    """Publish while the proxy drops the ``lost`` acknowledgement, then cut the connection: the
    publish must still be waiting, and complete once the client has reconnected and resent."""
    proxy.drop = {lost}
    publishing = asyncio.create_task(publish)
    await until(lambda: proxy.dropped == [lost])
    assert not publishing.done()
    proxy.drop = set()
    proxy.cut()
    await asyncio.wait_for(publishing, WAIT)


# -- round trips with Mosquitto ---------------------------------------------------------------


@both
async def test_publish_and_subscribe_at_every_qos(on_mosquitto: Clients, protocol: int, topic: str) -> None:
    sub, inbox = await on_mosquitto.listening(protocol=protocol)
    pub = on_mosquitto(protocol=protocol)
    await pub.connect()
    assert sub.connected.is_set()
    assert await sub.subscribe(f"{topic}/#", qos=2) == 2
    for qos in (0, 1, 2):
        await pub.publish(f"{topic}/q{qos}", f"m{qos}", qos=qos)  # returns after PUBACK / PUBCOMP
    messages = await inbox.wait(3)
    assert sorted((t, p) for t, p, _ in messages) == [(f"{topic}/q{q}", f"m{q}".encode()) for q in (0, 1, 2)]
    if protocol == 5:
        await pub.publish(f"{topic}/props", b"{}", qos=1, properties={
            "content_type": "application/json", "user_property": [("device", "t1")], "message_expiry_interval": 60})
        _, payload, props = (await inbox.wait(4))[3]
        assert payload == b"{}" and props["content_type"] == "application/json"
        assert props["user_property"] == [("device", "t1")]
    # Retained: a later subscriber gets it.
    await pub.publish(f"{topic}/retained", b"kept", qos=1, retain=True)
    _, late_inbox = await on_mosquitto.watching(f"{topic}/retained", 1, protocol=protocol)
    assert (await late_inbox.wait(1))[0][:2] == (f"{topic}/retained", b"kept")
    await pub.publish(f"{topic}/retained", b"", qos=1, retain=True)  # clears it


@both
async def test_unsubscribe_stops_the_messages(on_mosquitto: Clients, protocol: int, topic: str) -> None:
    client, inbox = await on_mosquitto.listening(protocol=protocol)
    await client.subscribe(f"{topic}/a", 1)
    await client.subscribe(f"{topic}/b", 1)
    await client.unsubscribe(f"{topic}/a")
    assert [s.topic_filter for s in client.subscriptions] == [f"{topic}/b"]
    await client.publish(f"{topic}/a", b"not for us", qos=1)
    await client.publish(f"{topic}/b", b"marker", qos=1)  # processed after the first: it arrives, the first never
    await inbox.expect(b"marker")


async def test_connect_errors_are_clear(make_client: MakeClient) -> None:
    client = make_client(free_port())
    with pytest.raises(MqttError, match=r"cannot connect to 127\.0\.0\.1:\d+"):
        await client.connect()
    assert not client.connected.is_set()
    with pytest.raises(MqttError, match="not connected"):
        await client.publish("a", b"x", qos=0)
    with pytest.raises(MqttError, match="wildcard"):
        await client.publish("a/#", b"x", qos=1)
    with pytest.raises(MqttError, match="need MQTT 5"):
        await client.publish("a", b"x", properties={"content_type": "x"})
    with pytest.raises(ValueError, match="session_expiry needs MQTT 5"):
        MqttClient(HOST, 1883, protocol=4, session_expiry=10)


# -- paho-mqtt, a client users have, on the other side -------------------------------------------


class PahoClient:
    """paho in its own network thread, as a user's device or app would run it."""

    def __init__(self, port: int, protocol: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.inbox = Inbox()
        version = paho.MQTTv5 if protocol == 5 else paho.MQTTv311
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"paho-{uid()}", protocol=version)
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.client.on_connect = lambda *args: self.connected.set()
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = self._on_message
        self.port = port

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        props = getattr(message, "properties", None)
        user = list(getattr(props, "UserProperty", []) or [])
        extra: dict[str, Any] = {"user_property": user, "qos": message.qos} if user else {"qos": message.qos}
        self.loop.call_soon_threadsafe(self.inbox, message.topic, bytes(message.payload), extra)

    async def start(self) -> None:
        self.client.connect(HOST, self.port)
        self.client.loop_start()
        assert await asyncio.to_thread(self.connected.wait, WAIT)

    async def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=2)
        assert await asyncio.to_thread(self.subscribed.wait, WAIT)

    async def publish(self, topic: str, payload: bytes, qos: int, properties: PahoProperties | None = None) -> None:
        info = self.client.publish(topic, payload, qos=qos, properties=properties)
        await asyncio.to_thread(info.wait_for_publish, WAIT)
        assert info.is_published()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@both
async def test_paho_publishes_to_our_subscription(on_mosquitto: Clients, protocol: int, topic: str) -> None:
    _, inbox = await on_mosquitto.watching(f"{topic}/+", 2, protocol=protocol)
    device = PahoClient(on_mosquitto.port, protocol)
    await device.start()
    try:
        props = None
        if protocol == 5:
            props = PahoProperties(PacketTypes.PUBLISH)
            props.UserProperty = [("from", "paho")]
        for qos in (0, 1, 2):
            await device.publish(f"{topic}/q{qos}", b"x" * 200 + bytes([qos]), qos, props)  # 2-byte lengths
        messages = await inbox.wait(3)
    finally:
        device.stop()
    assert sorted((t, p) for t, p, _ in messages) == [(f"{topic}/q{q}", b"x" * 200 + bytes([q])) for q in (0, 1, 2)]
    for _, _, got in messages:
        assert got == ({"user_property": [("from", "paho")]} if protocol == 5 else {})


@both
async def test_we_publish_to_a_paho_subscription(on_mosquitto: Clients, protocol: int, topic: str) -> None:
    app = PahoClient(on_mosquitto.port, protocol)
    await app.start()
    try:
        await app.subscribe(f"{topic}/#")
        ours = on_mosquitto(protocol=protocol)
        await ours.connect()
        props = {"user_property": [("from", "waziup")]} if protocol == 5 else None
        for qos in (0, 1, 2):
            await ours.publish(f"{topic}/q{qos}", f"m{qos}", qos=qos, properties=props)
        messages = await app.inbox.wait(3)
    finally:
        app.stop()
    assert sorted((t, p, m["qos"]) for t, p, m in messages) == [(f"{topic}/q{q}", f"m{q}".encode(), q) for q in (0, 1, 2)]
    if protocol == 5:
        assert all(m["user_property"] == [("from", "waziup")] for _, _, m in messages)


# -- TLS, passwords, refusals -----------------------------------------------------------------


async def test_tls_with_a_verified_certificate(secure_mosquitto: SecureMosquitto, make_client: MakeClient) -> None:
    context = ssl.create_default_context(cafile=str(secure_mosquitto.ca))
    topic = f"allowed/{uid()}"
    inbox = Inbox()
    client = make_client(secure_mosquitto.tls_port, protocol=5, ssl=context, on_message=inbox)
    await client.connect()
    await client.subscribe(topic, 1)
    await client.publish(topic, b"over TLS", qos=1)
    assert (await inbox.wait(1))[0][1] == b"over TLS"
    by_name = make_client(secure_mosquitto.tls_port, protocol=4, ssl=context, server_hostname="localhost")
    await by_name.connect()


async def test_tls_refuses_a_wrong_ca_or_name(secure_mosquitto: SecureMosquitto, make_client: MakeClient) -> None:
    wrong_ca = ssl.create_default_context(cafile=str(secure_mosquitto.other_ca))
    with pytest.raises(MqttError, match="certificate verify failed"):
        await make_client(secure_mosquitto.tls_port, ssl=wrong_ca).connect()
    right_ca = ssl.create_default_context(cafile=str(secure_mosquitto.ca))
    with pytest.raises(MqttError, match="certificate verify failed.*(?i:hostname)"):
        await make_client(secure_mosquitto.tls_port, ssl=right_ca, server_hostname="elsewhere.test").connect()
    with pytest.raises(MqttError, match="certificate verify failed"):  # True: the system's CAs, which lack ours
        await make_client(secure_mosquitto.tls_port, ssl=True).connect()


@both
async def test_user_name_and_password(
    secure_mosquitto: SecureMosquitto, make_client: MakeClient, protocol: int
) -> None:
    good = make_client(secure_mosquitto.password_port, protocol=protocol, username="alice", password="wonderland")
    await good.connect()
    await good.publish("anything", b"x", qos=1)
    for username, password in (("alice", "wrong"), (None, None)):
        bad = make_client(secure_mosquitto.password_port, protocol=protocol, username=username, password=password)
        with pytest.raises(MqttError, match="refused the connection") as refused:
            await bad.connect()
        # Mosquitto says "not authorized"; either way the words of the reason code are in the message.
        if protocol == 5:
            assert refused.value.reason_code in (0x86, 0x87)
            assert ("Bad User Name or Password" in str(refused.value)) or ("Not authorized" in str(refused.value))
        else:
            assert refused.value.reason_code in (4, 5)
            assert ("bad user name or password" in str(refused.value)) or ("not authorized" in str(refused.value))
        assert not bad.connected.is_set()


@both
async def test_a_refused_subscription_raises_and_is_not_kept(
    secure_mosquitto: SecureMosquitto, make_client: MakeClient, protocol: int
) -> None:
    client = make_client(secure_mosquitto.acl_port, protocol=protocol)
    await client.connect()
    with pytest.raises(MqttError, match="refused the subscription to 'denied/x'") as refused:
        await client.subscribe("denied/x", 1)
    assert refused.value.reason_code is not None and refused.value.reason_code >= 0x80
    assert await client.subscribe("allowed/x", 1) == 1
    assert [s.topic_filter for s in client.subscriptions] == ["allowed/x"]


async def test_a_message_the_broker_refuses_raises(secure_mosquitto: SecureMosquitto, make_client: MakeClient) -> None:
    """MQTT 5 only: a 3.1.1 broker has no way to say no to a PUBLISH."""
    client = make_client(secure_mosquitto.acl_port, protocol=5)
    await client.connect()
    for qos in (1, 2):
        with pytest.raises(MqttError, match=r"refused the message on 'readonly/x': Not authorized \(0x87\)"):
            await client.publish("readonly/x", b"no", qos=qos)
    await client.publish("allowed/x", b"yes", qos=2)  # the session goes on


# -- last will ------------------------------------------------------------------------------


@both
async def test_last_will_when_the_connection_dies(on_mosquitto: Clients, protocol: int, topic: str) -> None:
    watcher, inbox = await on_mosquitto.watching(f"{topic}/#", 1, protocol=protocol)
    props = {"content_type": "text/plain", "user_property": [("why", "gone")]} if protocol == 5 else {}
    async with Proxy(on_mosquitto.port, protocol) as proxy:
        dying = on_mosquitto.at(proxy.port)(protocol=protocol, will=Will(f"{topic}/dying", b"offline", 1, False, props))
        await dying.connect()
        proxy.refuse = True
        proxy.cut()  # no DISCONNECT: the broker must publish the will
        _, payload, got = (await inbox.wait(1))[0]
        assert payload == b"offline"
        if protocol == 5:
            assert got["content_type"] == "text/plain" and got["user_property"] == [("why", "gone")]
    # A clean close sends DISCONNECT: no will.
    polite = on_mosquitto(protocol=protocol, will=Will(f"{topic}/polite", b"offline", 1))
    await polite.connect()
    await polite.close()
    await watcher.publish(f"{topic}/marker", b"after", qos=1)
    await inbox.expect(b"offline", b"after")


# -- reconnects: in-flight, queued, re-subscribed ---------------------------------------------


@both
async def test_qos1_in_flight_is_resent_with_dup_after_a_reconnect(
    on_mosquitto: Clients, protocol: int, topic: str
) -> None:
    connects = Connects()
    options = {"on_connect": connects, **persistent(protocol)}
    async with through_a_proxy(on_mosquitto, protocol, topic, 1, **options) as (proxy, client, inbox):
        # The broker has the message, the client never hears it: resent, acknowledged this time.
        await publish_across_a_cut(proxy, client.publish(topic, b"one", qos=1), PUBACK)
        await inbox.wait(1)
        await connects.reach(2)
        assert client.session_present
        first, again = proxy.sent_of(Publish, b"one")
        assert (first.dup, again.dup) == (False, True)
        assert again.packet_id == first.packet_id and again.qos == 1
    assert set(inbox.payloads) == {b"one"}  # at least once (QoS 1 may deliver the resent copy too)


@both
@pytest.mark.parametrize("lost", [PUBREC, PUBCOMP], ids=["pubrec-lost", "pubcomp-lost"])
async def test_qos2_in_flight_completes_exactly_once_after_a_reconnect(
    on_mosquitto: Clients, protocol: int, topic: str, lost: int
) -> None:
    async with through_a_proxy(on_mosquitto, protocol, topic, 2, **persistent(protocol)) as (proxy, client, inbox):
        await publish_across_a_cut(proxy, client.publish(topic, b"exactly once", qos=2), lost)
        [first, *again] = proxy.sent_of(Publish, b"exactly once")
        releases = proxy.sent_of(Pubrel)
        if lost == PUBREC:  # PUBLISH again, with DUP and the same identifier
            assert len(again) == 1 and again[0].dup and again[0].packet_id == first.packet_id
        else:  # PUBREL again, same identifier, no second PUBLISH
            assert again == [] and len(releases) == 2
        assert {r.packet_id for r in releases} == {first.packet_id}
        await client.publish(topic, b"marker", qos=2)  # everything before it has been delivered
    await inbox.expect(b"exactly once", b"marker")


@both
async def test_messages_published_while_disconnected_are_queued(
    on_mosquitto: Clients, protocol: int, topic: str
) -> None:
    async with through_a_proxy(on_mosquitto, protocol, topic, 2, max_queued=2) as (proxy, client, inbox):
        proxy.refuse = True
        proxy.cut()
        await until(lambda: not client.connected.is_set())
        with pytest.raises(MqttError, match="not connected"):
            await client.publish(topic, b"qos0 is not queued", qos=0)
        queued = [asyncio.create_task(client.publish(topic, f"q{qos}", qos=qos)) for qos in (1, 2)]
        await asyncio.sleep(0)  # let both tasks run to their first wait: they are in the queue now
        with pytest.raises(MqttError, match="max_queued"):
            await client.publish(topic, b"one too many", qos=1)
        assert not any(task.done() for task in queued)
        await until(lambda: proxy.refused >= 1)  # a reconnect failed meanwhile: the queue stays
        assert not any(task.done() for task in queued)
        proxy.refuse = False
        await asyncio.wait_for(asyncio.gather(*queued), WAIT)
    await inbox.expect(b"q1", b"q2")


async def test_a_cancelled_publish_is_withdrawn_while_queued(on_mosquitto: Clients, topic: str) -> None:
    watcher, inbox = await on_mosquitto.watching(topic, 1)
    client = on_mosquitto(max_queued=1)  # not connected yet: QoS 1 is queued
    withdrawn = asyncio.create_task(client.publish(topic, b"withdrawn", qos=1))
    await asyncio.sleep(0)  # the task runs to its wait: queued
    withdrawn.cancel()
    kept = asyncio.create_task(client.publish(topic, b"kept", qos=1))  # the only queue place is free again
    await asyncio.sleep(0)
    assert not kept.done()
    await client.connect()
    await asyncio.wait_for(kept, WAIT)
    await watcher.publish(topic, b"marker", qos=1)
    await inbox.expect(b"kept", b"marker")
    assert withdrawn.cancelled()


@both
async def test_subscriptions_are_made_again_after_a_reconnect(on_mosquitto: Clients, protocol: int, topic: str) -> None:
    connects = Connects()
    async with Proxy(on_mosquitto.port, protocol) as proxy:
        client, inbox = await on_mosquitto.at(proxy.port).watching(topic, 1, protocol=protocol, on_connect=connects)
        proxy.cut()  # a clean session: the new connection starts without the subscription
        await connects.reach(2)
        assert not client.session_present
        # Our SUBSCRIBE went out on the new connection before this PUBLISH: the broker has it again.
        await client.publish(topic, b"after the reconnect", qos=1)
        await inbox.wait(1)
        assert len(proxy.sent_of(Subscribe)) == 2


async def test_start_before_the_broker_answers(on_mosquitto: Clients, topic: str) -> None:
    """``start()`` keeps trying; a subscription made meanwhile is made at the connect."""
    inbox = Inbox()
    async with Proxy(on_mosquitto.port, 5) as proxy:
        proxy.refuse = True
        client = on_mosquitto.at(proxy.port)(protocol=5, on_message=inbox)
        client.start()
        assert await client.subscribe(topic, 1) is None  # not connected: registered for later
        await until(lambda: proxy.refused >= 2)  # it tries again after a failure
        assert not client.connected.is_set()
        proxy.refuse = False
        await asyncio.wait_for(client.connected.wait(), WAIT)
        await client.publish(topic, b"hello", qos=1)
        await inbox.wait(1)


async def test_keepalive_pings_and_drops_a_silent_broker(on_mosquitto: Clients) -> None:
    connects = Connects()
    async with Proxy(on_mosquitto.port, 4) as proxy:
        client = on_mosquitto.at(proxy.port)(keepalive=1, on_connect=connects)
        await client.connect()
        await proxy.wait_sent(Pingreq)  # idle for half the keepalive: PINGREQ
        proxy.drop = {PINGRESP}  # from now on the broker seems gone
        await connects.reach(2)  # no PINGRESP: connection dropped, and a new one made
        proxy.drop = set()
        assert PINGRESP in proxy.dropped


# -- protocol details, with a scripted broker ---------------------------------------------------


async def test_a_chunk_of_packets_split_anywhere_is_delivered_once(make_client: MakeClient) -> None:
    inbox = Inbox()
    async with ScriptedBroker(5) as broker:
        client = make_client(broker.port, protocol=5, on_message=inbox)
        peer, _ = await broker.connect(client)
        burst = b"".join([
            Publish("a", b"0", 0).encode(5),
            Publish("b", b"1" * 300, 1, packet_id=1).encode(5),
            Publish("c", b"2", 2, packet_id=2, properties={"user_property": [("k", "v")]}).encode(5),
            Publish("c", b"2", 2, dup=True, packet_id=2).encode(5),  # sent again before PUBREL: not delivered
            *(Publish("d", bytes([i]), 0).encode(5) for i in range(50)),
        ])
        for i in range(0, len(burst), 7):  # 7-byte pieces: lengths and headers split everywhere
            peer.send(burst[i : i + 7])
            await peer.writer.drain()
        messages = await inbox.wait(53)
        assert [t for t, _, _ in messages[:3]] == ["a", "b", "c"] and messages[2][2] == {"user_property": [("k", "v")]}
        assert [p for _, p, _ in messages[3:]] == [bytes([i]) for i in range(50)]
        assert await peer.read() == Puback(1)
        assert await peer.read() == Pubrec(2)
        assert await peer.read() == Pubrec(2)
        peer.send(Pubrel(2))
        assert await peer.read() == Pubcomp(2)
        peer.send(Publish("c", b"2", 2, packet_id=2))  # a new message with the identifier released
        assert await peer.read() == Pubrec(2)
        assert len(await inbox.wait(54)) == 54


async def test_the_brokers_receive_maximum_is_honoured(make_client: MakeClient) -> None:
    async with ScriptedBroker(5) as broker:
        client = make_client(broker.port, protocol=5)
        peer, _ = await broker.connect(client, Connack(properties={"receive_maximum": 2}))
        sending = [asyncio.create_task(client.publish("t", bytes([i]), qos=1)) for i in range(4)]
        first = [await peer.expect(Publish), await peer.expect(Publish)]
        # A barrier: our PUBLISH is answered after everything the client wrote before it.
        peer.send(Publish("barrier", b"", 1, packet_id=99))
        assert await peer.read() == Puback(99)  # not a third PUBLISH: the window is full
        peer.send(Puback(first[0].packet_id))
        third = await peer.expect(Publish)
        assert third.payload == b"\x02"
        await asyncio.wait_for(sending[0], WAIT)
        peer.send(Puback(first[1].packet_id), Puback(third.packet_id, 0x10))  # 0x10 "no subscribers" is success
        fourth = await peer.expect(Publish)
        peer.send(Puback(fourth.packet_id, 0x87, {"reason_string": "no"}))
        await asyncio.wait_for(asyncio.gather(*sending[:3]), WAIT)
        with pytest.raises(MqttError, match=r"refused the message on 't': Not authorized \(0x87\) \(no\)"):
            await sending[3]


@pytest.mark.parametrize("present", [True, False], ids=["session-present", "new-session"])
async def test_in_flight_messages_after_a_reconnect(make_client: MakeClient, present: bool) -> None:
    """With the broker's session: DUP and PUBREL again. Without: PUBLISH anew; PUBREC'd QoS 2 is done."""
    async with ScriptedBroker(4) as broker:
        client = make_client(broker.port, clean=not present)
        peer, connect = await broker.connect(client)
        assert connect.clean is not present
        one = asyncio.create_task(client.publish("t", b"one", qos=1))
        two = asyncio.create_task(client.publish("t", b"two", qos=2))
        p1, p2 = await peer.expect(Publish), await peer.expect(Publish)
        peer.send(Pubrec(p2.packet_id))
        assert await peer.read() == Pubrel(p2.packet_id)
        peer.abort()
        peer, _ = await broker.accept(Connack(session_present=present))
        again = await peer.expect(Publish)
        assert (again.payload, again.packet_id, again.dup) == (b"one", p1.packet_id, present)
        if present:
            assert await peer.read() == Pubrel(p2.packet_id)
            assert not two.done()
            peer.send(Pubcomp(p2.packet_id))
        await asyncio.wait_for(two, WAIT)  # without a session, the broker had taken it at PUBREC
        peer.send(Puback(again.packet_id))
        await asyncio.wait_for(one, WAIT)


async def test_server_keepalive_and_assigned_client_id(make_client: MakeClient) -> None:
    async with ScriptedBroker(5) as broker:
        client = make_client(broker.port, protocol=5, client_id="", keepalive=60, session_expiry=30)
        peer, connect = await broker.connect(client, Connack(properties={
            "assigned_client_identifier": "given-by-broker", "server_keep_alive": 1}))
        assert connect.client_id == "" and connect.clean and connect.properties == {"session_expiry_interval": 30}
        assert await peer.read(timeout=2) == Pingreq()  # after 0.5 s, not 30
        # No PINGRESP: the client gives up on this connection and connects again, as the id it was given.
        await peer.closed_by_client()
        peer, connect = await broker.accept()
        assert connect.client_id == "given-by-broker" and not connect.clean  # resumes its session


async def test_a_malformed_packet_ends_the_connection_with_a_reason(make_client: MakeClient) -> None:
    connects = Connects()
    async with ScriptedBroker(5) as broker:
        client = make_client(broker.port, protocol=5, on_connect=connects)
        peer, _ = await broker.connect(client)
        peer.send(b"\x36\x03\x00\x01a")  # PUBLISH at QoS 3
        assert await peer.read() == Disconnect(0x81)
        await peer.closed_by_client()
        await broker.accept()
        await connects.reach(2)


async def test_incoming_topic_aliases(make_client: MakeClient) -> None:
    inbox = Inbox()
    async with ScriptedBroker(5) as broker:
        client = make_client(broker.port, protocol=5, on_message=inbox, connect_properties={"topic_alias_maximum": 5})
        peer, connect = await broker.connect(client)
        assert connect.properties == {"topic_alias_maximum": 5}
        peer.send(Publish("long/topic/name", b"1", properties={"topic_alias": 3}),
                  Publish("", b"2", properties={"topic_alias": 3}))
        assert [(t, p) for t, p, _ in await inbox.wait(2)] == [("long/topic/name", b"1"), ("long/topic/name", b"2")]
        peer.send(Publish("", b"3", properties={"topic_alias": 4}))  # never set: a protocol error
        assert await peer.read() == Disconnect(0x82)


@pytest.mark.parametrize(("protocol", "code", "words"), [
    (4, 2, "identifier rejected (2)"), (5, 0x8A, "Banned (0x8A)"), (5, 0x9C, "Use another server (0x9C)"),
])
async def test_connack_refusals_name_their_reason(
    make_client: MakeClient, protocol: int, code: int, words: str
) -> None:
    async with ScriptedBroker(protocol) as broker:
        client = make_client(broker.port, protocol=protocol)
        connecting = asyncio.create_task(client.connect())
        await broker.accept(Connack(reason_code=code))
        with pytest.raises(MqttError) as refused:
            await connecting
    assert str(refused.value) == f"127.0.0.1:{broker.port} refused the connection: {words}"
    assert refused.value.reason_code == code


async def test_a_broker_suback_count_mismatch_is_a_protocol_error(make_client: MakeClient) -> None:
    connects = Connects()
    async with ScriptedBroker(4) as broker:
        client = make_client(broker.port, on_connect=connects)
        peer, _ = await broker.connect(client)
        subscribing = asyncio.create_task(client.subscribe("x", 1))
        sub = await peer.expect(Subscribe)
        peer.send(Suback(sub.packet_id, [1, 1]))
        await peer.closed_by_client()
        # The subscription waits for the next connection's SUBACK.
        peer, _ = await broker.accept()
        sub = await peer.expect(Subscribe)
        peer.send(Suback(sub.packet_id, [1]))
        assert await asyncio.wait_for(subscribing, WAIT) == 1


def test_protocol_errors_are_mqtt_errors() -> None:
    assert issubclass(MqttProtocolError, MqttError)
