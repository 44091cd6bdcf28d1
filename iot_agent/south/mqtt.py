"""The MQTT binding (paho-mqtt), with the topics of iotagent-ul and iotagent-json.

Subscribed (``<proto>`` is ``ul`` or ``json``; the legacy forms without it, and every form
without the leading slash, are read too, as the agents do):

* ``/<proto>/<apikey>/<device>/attrs``: measures (UL ``t|25|h|60``, JSON object or array);
* ``/<proto>/<apikey>/<device>/attrs/<attr>``: one value;
* ``/<proto>/<apikey>/<device>/cmdexe``: command results (``dev@cmd|result``, ``{"cmd": r}``);
* ``/<proto>/<apikey>/<device>/configuration/commands``: configuration requests, answered
  on ``/<apikey>/<device>/configuration/values`` with the entity's current values;
* LoRaWAN network-server uplinks, handed to ``south.lora``.

Published: commands on ``/<apikey>/<device>/cmd``. Without a protocol prefix the format
is the device's (protocol) or its group's (resource ``/iot/d`` or ``/iot/json``), else
sniffed: a JSON object or array is JSON, anything else UL.

paho runs its network loop in its own thread; each message is handed to the agent's
event loop, where all the work happens. A bad message is logged and dropped: MQTT has
nobody to answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import paho.mqtt.client as paho

from ..codecs import jsonmeasure, ul
from ..commands import Commands, command_payload, parse_results
from ..config import Config
from ..errors import IoTAError
from .measures import JSON, RESOURCE_OF, UL, Southbound, apikey_of, entity_of, payload_format

log = logging.getLogger("waziup.iot_agent.mqtt")

Doc = dict[str, Any]
PROTOCOLS = (UL, JSON)
PROTOCOL_NAMES = {UL: "IoTA-UL", JSON: "IoTA-JSON"}
KINDS = ("attrs", "attr", "cmdexe", "configuration")

# Every (prefixed, legacy) x (leading slash or not) form; the level counts keep them apart.
SUBSCRIPTIONS = [
    f"{prefix}{tail}"
    for tail in ("/attrs", "/attrs/+", "/cmdexe", "/configuration/commands")
    for prefix in ("+/+", "+/+/+", "+/+/+/+")
]


@dataclass(frozen=True)
class Topic:
    protocol: str | None  # "ul", "json" or None (legacy topic)
    apikey: str
    device_id: str
    kind: str  # attrs | attr | cmdexe | configuration
    attr: str | None = None


def parse_topic(topic: str) -> Topic | None:
    """The parts of a device topic, or None for a topic that is not one."""
    levels = topic.split("/")
    if levels and levels[0] == "":
        levels = levels[1:]
    attr = None
    if len(levels) >= 3 and levels[-1] == "attrs":
        kind, head = "attrs", levels[:-1]
    elif len(levels) >= 4 and levels[-2] == "attrs":
        kind, head, attr = "attr", levels[:-2], levels[-1]
    elif len(levels) >= 3 and levels[-1] == "cmdexe":
        kind, head = "cmdexe", levels[:-1]
    elif len(levels) >= 4 and levels[-2:] == ["configuration", "commands"]:
        kind, head = "configuration", levels[:-2]
    else:
        return None
    if len(head) == 3 and head[0] in PROTOCOLS:
        protocol, apikey, device_id = head
    elif len(head) == 2:
        protocol, (apikey, device_id) = None, head
    else:
        return None
    if not device_id or (attr is not None and not attr):
        return None
    return Topic(protocol, apikey, device_id, kind, attr)


def sniff(payload: bytes) -> str:
    stripped = payload.lstrip()
    return JSON if stripped[:1] in (b"{", b"[") else UL


Handler = Callable[[str, bytes], Awaitable[bool]]


class MqttSouth:
    """The agent's MQTT client: subscribes, dispatches, publishes commands."""

    def __init__(self, config: Config, south: Southbound, commands: Commands) -> None:
        self.config = config
        self.south = south
        self.commands = commands
        self.extra: list[tuple[list[str], Handler]] = []  # (topic filters, handler) e.g. LoRaWAN
        self.loop: asyncio.AbstractEventLoop | None = None
        # One lock per device (or topic): its messages are handled in arrival order, so the
        # last reading published is the last one written (asyncio locks are FIFO).
        self._order: dict[str, asyncio.Lock] = {}
        self.connected = asyncio.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=config.mqtt_client_id or f"waziup-iota-{uuid.uuid4().hex[:12]}",
            clean_session=True,
        )
        if config.mqtt_username:
            self.client.username_pw_set(config.mqtt_username, config.mqtt_password or None)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 30)
        commands.push["mqtt"] = self.deliver

    def add_handler(self, filters: list[str], handler: Handler) -> None:
        self.extra.append((filters, handler))

    # -- life cycle -------------------------------------------------------------------------

    async def start(self, timeout: float = 10.0) -> None:
        """Connect (retrying in the background if the broker is not up yet)."""
        self.loop = asyncio.get_running_loop()
        self.client.connect_async(self.config.mqtt_host, self.config.mqtt_port, keepalive=60)
        self.client.loop_start()
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except asyncio.TimeoutError:
            log.warning("MQTT broker %s:%s not reachable yet; retrying in the background", self.config.mqtt_host, self.config.mqtt_port)

    async def stop(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT connection refused: %s", reason)
            return
        filters = SUBSCRIPTIONS + [f for fs, _ in self.extra for f in fs]
        client.subscribe([(f, self.config.mqtt_qos) for f in filters])
        log.info("MQTT connected to %s:%s", self.config.mqtt_host, self.config.mqtt_port)
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.connected.set)

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.connected.clear)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if self.loop is None or self.loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.dispatch(message.topic, bytes(message.payload)), self.loop)

    # -- incoming ----------------------------------------------------------------------------

    async def dispatch(self, topic: str, payload: bytes) -> None:
        parsed = parse_topic(topic)
        key = f"{parsed.apikey}/{parsed.device_id}" if parsed is not None else topic
        lock = self._order.get(key)
        if lock is None:
            lock = self._order[key] = asyncio.Lock()
        async with lock:
            await self._dispatch(topic, payload)

    async def _dispatch(self, topic: str, payload: bytes) -> None:
        started = time.perf_counter()
        try:
            for filters, handler in self.extra:
                if any(paho.topic_matches_sub(f, topic) for f in filters):
                    if await handler(topic, payload):
                        return
            parsed = parse_topic(topic)
            if parsed is None:
                return
            await self.handle(parsed, payload)
        except IoTAError as exc:
            log.warning("MQTT message on %s dropped: %s %s", topic, exc.name, exc.message)
        except Exception:
            log.exception("MQTT message on %s failed", topic)
        finally:
            log.debug("MQTT %s handled in %.1f ms", topic, (time.perf_counter() - started) * 1000)

    async def handle(self, topic: Topic, payload: bytes) -> None:
        resource = RESOURCE_OF.get(topic.protocol or "")
        protocol_name = PROTOCOL_NAMES.get(topic.protocol or "")
        device, group = await self.south.resolve(
            topic.apikey, topic.device_id, resource=resource, protocol=protocol_name, transport="MQTT"
        )
        fmt = topic.protocol or payload_format(device, group) or sniff(payload)
        if topic.kind == "cmdexe":
            for name, result in parse_results({**device, "protocol": PROTOCOL_NAMES[fmt]}, group, payload):
                await self.commands.result(device, group, name, result)
            return
        if topic.kind == "configuration":
            await self._configuration(topic, device, group, fmt, payload)
            return
        if topic.kind == "attr":
            assert topic.attr is not None
            if fmt == JSON:
                value = jsonmeasure.parse_attribute_value(payload)
            else:
                value = ul.parse_value(ul._text(payload))
            measures: list[Doc] = [{topic.attr: value}]
        elif fmt == JSON:
            measures = jsonmeasure.parse_measures(payload)
        else:
            measures = ul.parse_measures(payload)
        await self.south.send(device, group, measures)

    async def _configuration(self, topic: Topic, device: Doc, group: Doc | None, fmt: str, payload: bytes) -> None:
        """Answer a configuration request with the entity's current values of the fields."""
        if fmt == JSON:
            kind, fields = jsonmeasure.parse_configuration(payload)
        else:
            kind, fields = ul.parse_configuration(payload)
        entity_id, entity_type = entity_of(device, group, self.config)
        try:
            entity = await self.south.client_for(group).get_entity(
                entity_id, entity_type, attrs=fields, key_values=True,
                service=device.get("service") or None, service_path=device.get("service_path") or None,
            )
        except Exception as exc:
            log.warning("configuration request of %s: %s", device.get("device_id"), exc)
            return
        values = {name: entity.get(name) for name in fields if name in entity}
        now = time.time()
        if fmt == JSON:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
            body = orjson.dumps({**values, "dt": stamp})
        else:
            body = ul.format_configuration(str(device["device_id"]), values, now).encode()
        self.publish(f"/{topic.apikey}/{topic.device_id}/configuration/values", body)

    # -- outgoing ----------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int | None = None, retain: bool | None = None) -> None:
        info = self.client.publish(
            topic, payload, qos=self.config.mqtt_qos if qos is None else qos,
            retain=self.config.mqtt_retain if retain is None else retain,
        )
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise IoTAError(f"MQTT publish on {topic} failed: {paho.error_string(info.rc)}")

    async def deliver(self, device: Doc, group: Doc | None, name: str, value: Any) -> None:
        """Push a command: ``/<apikey>/<device>/cmd``; the status stays PENDING until cmdexe."""
        options = _command_options(device, group, name)
        self.publish(
            f"/{apikey_of(device, group)}/{device['device_id']}/cmd",
            command_payload(device, group, name, value),
            qos=options.get("qos"),
            retain=options.get("retain"),
        )


def _command_options(device: Doc, group: Doc | None, name: str) -> dict[str, Any]:
    """A command's ``mqtt: {qos, retain}`` options, when provisioned."""
    for source in (device, group or {}):
        for item in source.get("commands") or ():
            if isinstance(item, dict) and item.get("name") == name and isinstance(item.get("mqtt"), dict):
                return {k: v for k, v in item["mqtt"].items() if k in ("qos", "retain")}
    return {}
