"""The MQTT binding (its own asyncio client), with the topics of iotagent-ul and iotagent-json.

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

The connection is the project's MQTT client (``ngsi.client.mqtt``) on the agent's event loop. A measure of a device
already known (``Southbound.cached``) is parsed, mapped and queued for the broker
(``south.batch``) right in the socket's read callback: no task, no lock, no waiting for
the broker. Anything else (an unknown device, a command result, a configuration request,
a LoRaWAN uplink) runs as a task, behind the device's earlier messages still in progress,
so a device's messages are always handled in arrival order. A bad message is logged and
dropped: MQTT has nobody to answer.
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

from ..codecs import jsonmeasure, payload_text, ul
from ..commands.payload import command_payload, parse_results
from ..config import Config
from ..device import JSON, RESOURCE_OF, UL, apikey_of, entity_of, payload_format, tenant_of
from ..errors import IoTAError
from .ingest import Southbound
from ngsi.client.mqtt import MQTT_3_1_1, MqttClient, MqttError, topic_matches

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
# (device, group, command, result) -> None: a device's answer to a command (``Commands.result``)
OnResult = Callable[[Doc, Doc | None, str, Any], Awaitable[None]]


class MqttSouth:
    """The agent's MQTT client: subscribes, dispatches, publishes commands.

    Command results go to ``on_result``; ``deliver`` is the commands' MQTT ``Deliver``
    (the runtime wires both, so this module needs nothing of the commands but their
    wire format)."""

    def __init__(self, config: Config, south: Southbound, on_result: OnResult) -> None:
        self.config = config
        self.south = south
        self.on_result = on_result
        self.extra: list[tuple[list[str], Handler]] = []  # (topic filters, handler) e.g. LoRaWAN
        # Devices (or topics) with a message handled by a task: the next ones queue behind it
        # (asyncio locks are FIFO), so the last reading published is the last one written.
        self._order: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._extra_of: dict[str, Handler | None] = {}  # topic -> its extra handler, None: none
        self._tasks: set[asyncio.Task[None]] = set()
        self.client = MqttClient(
            config.mqtt_host,
            config.mqtt_port,
            client_id=config.mqtt_client_id or f"waziup-iota-{uuid.uuid4().hex[:12]}",
            username=config.mqtt_username or None,
            password=config.mqtt_password or None,
            protocol=MQTT_3_1_1,
            keepalive=60,
            on_message=self._on_message,
        )
        self.connected = self.client.connected

    def add_handler(self, filters: list[str], handler: Handler) -> None:
        self.extra.append((filters, handler))
        self._extra_of.clear()

    # -- life cycle -------------------------------------------------------------------------

    async def start(self, timeout: float = 10.0) -> None:
        """Connect (retrying in the background if the broker is not up yet)."""
        filters = SUBSCRIPTIONS + [f for fs, _ in self.extra for f in fs]
        for topic_filter in filters:  # not connected yet: made at (every) connect
            await self.client.subscribe(topic_filter, self.config.mqtt_qos)
        self.client.start()
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except asyncio.TimeoutError:
            log.warning("MQTT broker %s:%s not reachable yet; retrying in the background", self.config.mqtt_host, self.config.mqtt_port)

    async def stop(self) -> None:
        await self.client.close()

    # -- incoming ----------------------------------------------------------------------------

    def _extra_for(self, topic: str) -> Handler | None:
        try:
            return self._extra_of[topic]
        except KeyError:
            pass
        found = next((h for filters, h in self.extra if any(topic_matches(f, topic) for f in filters)), None)
        if len(self._extra_of) > 100_000:
            self._extra_of.clear()
        self._extra_of[topic] = found
        return found

    def _on_message(self, topic: str, payload: bytes, properties: Any = None) -> None:
        """From the socket's read callback: a known device's measure at once, the rest as a task."""
        parsed = parse_topic(topic)
        key = f"{parsed.apikey}/{parsed.device_id}" if parsed is not None else topic
        if key not in self._order and parsed is not None and self._extra_for(topic) is None and self._fast(topic, parsed, payload):
            return
        self._spawn(key, topic, payload)

    def _fast(self, name: str, topic: Topic, payload: bytes) -> bool:
        """Handle a measure of a known device synchronously; False: it needs the slow path."""
        if topic.kind != "attrs" and topic.kind != "attr":
            return False
        found = self.south.cached(topic.apikey, topic.device_id, RESOURCE_OF.get(topic.protocol or ""))
        if found is None:
            return False
        device, group = found
        try:
            self.south.submit(device, group, self._measures(topic, device, group, payload), wait=False)
        except IoTAError as exc:
            log.warning("MQTT message on %s dropped: %s %s", name, exc.name, exc.message)
        except Exception:
            log.exception("MQTT message on %s failed", name)
        return True

    def _spawn(self, key: str, topic: str, payload: bytes) -> None:
        entry = self._order.get(key)
        if entry is None:
            entry = self._order[key] = (asyncio.Lock(), [0])
        entry[1][0] += 1
        task = asyncio.get_running_loop().create_task(self.dispatch(topic, payload, key, entry))
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    async def dispatch(self, topic: str, payload: bytes, key: str | None = None, entry: tuple[asyncio.Lock, list[int]] | None = None) -> None:
        if key is None or entry is None:
            parsed = parse_topic(topic)
            key = f"{parsed.apikey}/{parsed.device_id}" if parsed is not None else topic
            entry = self._order.get(key)
            if entry is None:
                entry = self._order[key] = (asyncio.Lock(), [0])
            entry[1][0] += 1
        lock, waiting = entry
        try:
            async with lock:
                await self._dispatch(topic, payload)
        finally:
            waiting[0] -= 1
            if not waiting[0] and self._order.get(key) is entry:
                del self._order[key]

    async def _dispatch(self, topic: str, payload: bytes) -> None:
        started = time.perf_counter()
        try:
            handler = self._extra_for(topic)
            if handler is not None and await handler(topic, payload):
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
                await self.on_result(device, group, name, result)
            return
        if topic.kind == "configuration":
            await self._configuration(topic, device, group, fmt, payload)
            return
        self.south.submit(device, group, self._measures(topic, device, group, payload), wait=False)

    def _measures(self, topic: Topic, device: Doc, group: Doc | None, payload: bytes) -> list[Doc]:
        fmt = topic.protocol or payload_format(device, group) or sniff(payload)
        if topic.kind == "attr":
            assert topic.attr is not None
            if fmt == JSON:
                value = jsonmeasure.parse_attribute_value(payload)
            else:
                value = ul.parse_value(payload_text(payload))
            return [{topic.attr: value}]
        if fmt == JSON:
            return jsonmeasure.parse_measures(payload)
        return ul.parse_measures(payload)

    async def _configuration(self, topic: Topic, device: Doc, group: Doc | None, fmt: str, payload: bytes) -> None:
        """Answer a configuration request with the entity's current values of the fields."""
        if fmt == JSON:
            kind, fields = jsonmeasure.parse_configuration(payload)
        else:
            kind, fields = ul.parse_configuration(payload)
        entity_id, entity_type = entity_of(device, group, self.config)
        try:
            entity = await self.south.client_for(group).get_entity(
                entity_id, entity_type, attrs=fields, key_values=True, **tenant_of(device)
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
        await self.publish(f"/{topic.apikey}/{topic.device_id}/configuration/values", body)

    # -- outgoing ----------------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes, qos: int | None = None, retain: bool | None = None) -> None:
        try:
            await self.client.publish(
                topic, payload, qos=self.config.mqtt_qos if qos is None else qos,
                retain=self.config.mqtt_retain if retain is None else retain,
            )
        except MqttError as exc:
            raise IoTAError(f"MQTT publish on {topic} failed: {exc}") from None

    async def deliver(self, device: Doc, group: Doc | None, name: str, value: Any) -> None:
        """Push a command: ``/<apikey>/<device>/cmd``; the status stays PENDING until cmdexe."""
        options = _command_options(device, group, name)
        await self.publish(
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
