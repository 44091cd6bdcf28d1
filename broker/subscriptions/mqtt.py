"""MQTT notifications: the message a subscription publishes, and the connections to brokers.

Orion publishes a notification to ``notification.mqtt`` (or ``mqttCustom``) as an MQTT
3.1.1 message: the body is the one an HTTP notification would carry (or the custom
payload/json/ngsi, with the macros of httpCustom), the topic is ``topic`` (macros too
for mqttCustom), with the subscription's ``qos`` and ``retain``. MQTT has no headers.

Counters follow Orion's doNotifyMqtt: a message handed to the broker connection is a
success (``lastSuccess``, but no ``lastSuccessCode``), a broker that cannot be reached
(or refuses the credentials) is a failure (``lastFailure``, ``failsCounter``, but no
``lastFailureReason``).

:class:`MqttPublisher` keeps one session of the project's MQTT client
(``ngsi.client.mqtt``, on the event loop) per (host, port, user, password, TLS), opened on
first use and reused, as Orion's MqttConnectionManager does. A QoS 1/2 publish counts as
sent once the broker acknowledged it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ngsi import jsonout
from ngsi.client.mqtt import MQTT_3_1_1, MqttClient, MqttError

from ..changes import Change
from .macros import substitute, substitute_json
from .model import parse_url
from .notify import notified_metadata, prepare, render_notified_entity, wrap

log = logging.getLogger("waziup.notify.mqtt")

CONNECT_TIMEOUT = 5.0  # seconds to get the broker's CONNACK
ACK_TIMEOUT = 5.0  # seconds to get the PUBACK/PUBCOMP of a QoS 1/2 notification
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


_Key = tuple[str, str, int, str | None, str | None]


class _Connection:
    """One MQTT 3.1.1 session (``ngsi.client.mqtt``) to a broker with given credentials."""

    def __init__(self, key: _Key) -> None:
        scheme, host, port, user, passwd = key
        self.host, self.port = host.strip("[]"), port
        self.client = MqttClient(
            self.host, port, protocol=MQTT_3_1_1, username=user, password=passwd,
            ssl=True if scheme == "mqtts" else None, keepalive=KEEPALIVE, connect_timeout=CONNECT_TIMEOUT,
        )
        self.last_used = time.monotonic()

    @property
    def connected(self) -> bool:
        return self.client.connected.is_set()

    async def open(self) -> None:
        try:
            await self.client.connect()
        except MqttError as exc:
            await self.client.close()
            raise MqttError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc

    async def publish(self, message: MqttMessage) -> None:
        """QoS 0: handed to the socket; QoS 1/2: acknowledged by the broker within ACK_TIMEOUT
        (a broker that stops answering must not hold a notification worker for ever)."""
        try:
            await asyncio.wait_for(
                self.client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain), ACK_TIMEOUT
            )
        except asyncio.TimeoutError:
            raise MqttError(f"no acknowledgement from {self.host}:{self.port} within {ACK_TIMEOUT:g} s") from None

    async def close(self) -> None:
        await self.client.close()


class MqttPublisher:
    """Publishes MqttMessages over connections kept open per broker and credentials."""

    def __init__(self, max_age: float = MAX_AGE) -> None:
        self.max_age = max_age
        self._connections: dict[_Key, _Connection] = {}
        self._locks: dict[_Key, asyncio.Lock] = {}
        self._closing: set[asyncio.Task[None]] = set()

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
            await connection.publish(message)
        except MqttError:
            if not connection.connected:
                self._drop(key, connection)
            raise

    async def _connection(self, key: _Key) -> _Connection:
        self._expire()
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            connection = self._connections.get(key)
            if connection is not None and connection.connected:
                return connection
            if connection is not None:  # lost: start afresh rather than queue behind its reconnects
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
        """Forget a lost connection (closed in the background)."""
        if self._connections.get(key) is connection:
            del self._connections[key]
        task = asyncio.get_running_loop().create_task(connection.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        connections, self._connections = self._connections, {}
        for connection in connections.values():
            await connection.close()
        for task in list(self._closing):
            await task
