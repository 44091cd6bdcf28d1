"""MQTT notifications: the message a subscription publishes, and the connections to brokers.

Orion publishes a notification to ``notification.mqtt`` (or ``mqttCustom``) as an MQTT
3.1.1 message: the body is the one an HTTP notification would carry (or the custom
payload/json/ngsi, with the macros of httpCustom), the topic is ``topic`` (macros too
for mqttCustom), with the subscription's ``qos`` and ``retain``. MQTT has no headers.

Counters follow Orion's doNotifyMqtt: a message handed to the broker connection is a
success (``lastSuccess``, but no ``lastSuccessCode``), a broker that cannot be reached
(or refuses the credentials) is a failure (``lastFailure``, ``failsCounter``, but no
``lastFailureReason``).

:class:`MqttPublisher` keeps one paho client per (host, port, user, password, TLS),
opened on first use and reused, as Orion's MqttConnectionManager does. Each client runs
paho's network thread (``loop_start``), so publishing from the event loop only queues
the packet; the blocking TCP connect runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ngsi import jsonout

from ..changes import Change
from .macros import substitute, substitute_json
from .model import parse_url
from .notify import notified_metadata, prepare, render_notified_entity, wrap

log = logging.getLogger("waziup.notify.mqtt")

CONNECT_TIMEOUT = 5.0  # seconds to get the broker's CONNACK
MAX_AGE = 3600.0  # seconds an unused connection is kept (Orion's -mqttMaxAge default, 60 min)
KEEPALIVE = 60

Sub = dict[str, Any]


@dataclass
class MqttMessage:
    """One MQTT publication to make."""

    sub_id: str
    tenant: str
    url: str
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    user: str | None = None
    passwd: str | None = None


def build_mqtt(sub: Sub, change: Change, alteration: str, *, custom_enabled: bool = True) -> MqttMessage | None:
    """The message for one (subscription, change) pair; None without an MQTT target.

    ``custom_enabled`` False (-disableCustomNotifications): mqttCustom is published as
    plain mqtt (no macros, the normal body).
    """
    notification = sub.get("notification") or {}
    plain = notification.get("mqtt")
    custom = notification.get("mqttCustom")
    if plain is None and custom is None:
        return None
    target: dict[str, Any] = plain if plain is not None else custom
    if not custom_enabled:
        custom = None
    prepared = prepare(sub, change, alteration, custom)
    if prepared is None:
        return None
    fmt, entity, context, attrs = prepared
    if custom is not None and "payload" in custom and custom.get("json") is None:
        payload = custom["payload"]
        body = substitute(unquote(payload), context, "null").encode() if isinstance(payload, str) else b""
    elif custom is not None and custom.get("json") is not None:
        body = jsonout.dumps(substitute_json(custom["json"], context))
    else:
        mds = [notified_metadata(sub, change, name, attr) for name, attr in attrs]
        rendered = render_notified_entity(entity["id"], entity["type"], attrs, mds, fmt)
        body = jsonout.dumps(wrap(sub["id"], rendered, fmt))
    topic = str(target.get("topic", ""))
    if custom is not None:
        topic = substitute(topic, context, "")
    return MqttMessage(
        sub_id=sub["id"],
        tenant=change.tenant,
        url=str(target.get("url", "")),
        topic=topic,
        payload=body,
        qos=int(target.get("qos") or 0),
        retain=bool(target.get("retain", False)),
        user=target.get("user"),
        passwd=target.get("passwd"),
    )


class MqttError(Exception):
    """A message could not be handed to its broker (unreachable, refused, bad topic)."""


_Key = tuple[str, str, int, str | None, str | None]


class _Connection:
    """One paho client and its network thread; ``connected`` follows CONNACK/disconnect."""

    def __init__(self, key: _Key) -> None:
        import paho.mqtt.client as paho

        scheme, host, port, user, passwd = key
        self.host, self.port = host.strip("[]"), port
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        if user is not None:
            self.client.username_pw_set(user, passwd)
        if scheme == "mqtts":
            self.client.tls_set()
        self.connected = threading.Event()
        self.last_used = time.monotonic()
        self._connack: tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]] | None = None
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        ok = not getattr(reason, "is_failure", False)
        if ok:
            self.connected.set()
        if self._connack is not None:
            loop, future = self._connack
            loop.call_soon_threadsafe(lambda: future.done() or future.set_result(reason))

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected.clear()

    async def open(self) -> None:
        """TCP connect in a thread, then wait for the broker's CONNACK."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._connack = (loop, future)
        try:
            await asyncio.to_thread(self.client.connect, self.host, self.port, KEEPALIVE)
        except (OSError, ValueError) as exc:
            raise MqttError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        self.client.loop_start()
        try:
            reason = await asyncio.wait_for(future, CONNECT_TIMEOUT)
        except asyncio.TimeoutError:
            await asyncio.to_thread(self.close)
            raise MqttError(f"no CONNACK from {self.host}:{self.port}") from None
        if getattr(reason, "is_failure", False):
            await asyncio.to_thread(self.close)
            raise MqttError(f"{self.host}:{self.port} refused the connection: {reason}")

    def publish(self, message: MqttMessage) -> None:
        import paho.mqtt.client as paho

        try:
            info = self.client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        except ValueError as exc:  # empty topic, wildcards
            raise MqttError(str(exc)) from exc
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise MqttError(paho.error_string(info.rc))

    def close(self) -> None:
        try:
            self.client.disconnect()
        except Exception:
            pass
        self.client.loop_stop()


class MqttPublisher:
    """Publishes MqttMessages over connections kept open per broker and credentials."""

    def __init__(self, max_age: float = MAX_AGE) -> None:
        self.max_age = max_age
        self._connections: dict[_Key, _Connection] = {}
        self._locks: dict[_Key, asyncio.Lock] = {}

    async def publish(self, message: MqttMessage) -> None:
        """Hand the message to its broker's connection; raises MqttError when it can't."""
        parsed = parse_url(message.url, ("mqtt", "mqtts"))
        if parsed is None:
            raise MqttError(f"invalid MQTT URL {message.url!r}")
        scheme, host, port, _path = parsed
        key: _Key = (scheme, host, port, message.user, message.passwd)
        connection = await self._connection(key)
        connection.last_used = time.monotonic()
        try:
            connection.publish(message)
        except MqttError:
            if not connection.connected.is_set():
                self._drop(key, connection)
            raise

    async def _connection(self, key: _Key) -> _Connection:
        self._expire()
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            connection = self._connections.get(key)
            if connection is not None and connection.connected.is_set():
                return connection
            if connection is not None:  # lost: start afresh rather than queue behind paho's retries
                self._drop(key, connection)
            connection = _Connection(key)
            await connection.open()
            self._connections[key] = connection
            return connection

    def _expire(self) -> None:
        """Close the connections unused for ``max_age`` (brokers of changed or deleted subscriptions)."""
        limit = time.monotonic() - self.max_age
        for key, connection in list(self._connections.items()):
            if connection.last_used < limit:
                self._drop(key, connection)

    def _drop(self, key: _Key, connection: _Connection) -> None:
        """Forget a lost connection; paho's thread is joined in a worker thread."""
        if self._connections.get(key) is connection:
            del self._connections[key]
        asyncio.get_running_loop().run_in_executor(None, connection.close)

    async def aclose(self) -> None:
        connections, self._connections = self._connections, {}
        for connection in connections.values():
            await asyncio.to_thread(connection.close)
