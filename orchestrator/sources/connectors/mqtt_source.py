"""A subscription to an external MQTT topic: messages gathered until the runner takes them.

The broker's address is checked by the destination policy (``Gate.connect_to``: every
address the name resolves to) and the client connects to the checked address (the name
kept for TLS), so reconnections reach the same place. Messages arrive on the event loop
(``ngsi.client.mqtt.MqttClient``); each JSON payload gives records (``records`` over it,
else the payload itself); a dict record gets the message's topic as ``_topic`` unless it
has one, so ids can come from topic levels (``split('/', _topic)`` is not JMESPath, but
``_topic`` can be matched or joined). Payloads that are not JSON are counted as skipped.
At most ``MAX_BUFFERED`` records wait: beyond, the oldest are dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any

import jmespath
import jmespath.exceptions
import orjson

from ngsi.client.mqtt import MqttClient, MqttError
from ngsi.destinations import Refused

from ..definition import Definition, MqttSettings
from ..mapping import select_records
from .base import Context, SourceError, secret

MAX_BUFFERED = 100_000


class MqttFeed:
    """The records of one source's topic; ``start()`` connects, ``take()`` empties the buffer."""

    def __init__(self, definition: Definition, context: Context) -> None:
        assert definition.mqtt is not None
        self.definition = definition
        self.settings: MqttSettings = definition.mqtt
        self.context = context
        self.records_expr = jmespath.compile(definition.records) if definition.records else None
        self.buffer: deque[Any] = deque()
        self.skipped = 0
        self.reasons: list[str] = []
        self.arrived = asyncio.Event()  # set when the buffer holds a whole batch
        self.client: MqttClient | None = None

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected.is_set()

    async def start(self) -> None:
        """Connect and subscribe; SourceError when refused or unreachable."""
        settings = self.settings
        scheme = "mqtts" if settings.tls else "mqtt"
        try:
            addresses = await self.context.gate.connect_to(scheme, settings.host, settings.port)
        except Refused as exc:
            raise SourceError(f"refused by the destination policy: {exc.reason}") from None
        username = password = None
        if settings.username_env:
            username = secret(self.context.environ, settings.username_env)
        if settings.password_env:
            password = secret(self.context.environ, settings.password_env)
        client = MqttClient(
            addresses[0], settings.port, client_id=f"waziup-source-{uuid.uuid4().hex[:12]}",
            username=username, password=password, ssl=ssl.create_default_context() if settings.tls else None,
            server_hostname=settings.host if settings.tls else None, on_message=self._on_message,
            connect_timeout=self.definition.timeout, reconnect_delay=(1.0, 30.0),
        )
        try:
            await client.connect()
            await client.subscribe(settings.topic, qos=settings.qos)
        except (MqttError, OSError) as exc:
            await client.close()
            raise SourceError(f"MQTT {settings.url}: {exc}") from None
        self.client = client

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(MqttError, OSError):
                await client.close()

    def take(self, most: int | None = None) -> list[Any]:
        """The records waiting (at most ``most``), oldest first."""
        count = len(self.buffer) if most is None else min(most, len(self.buffer))
        taken = [self.buffer.popleft() for _ in range(count)]
        if len(self.buffer) < self.definition.batch:
            self.arrived.clear()
        return taken

    def give_back(self, records: list[Any]) -> None:
        """Records a failed write could not deliver: first in line for the next one."""
        self.buffer.extendleft(reversed(records))
        self._trim()

    def take_skipped(self) -> tuple[int, tuple[str, ...]]:
        skipped, reasons = self.skipped, tuple(self.reasons)
        self.skipped, self.reasons = 0, []
        return skipped, reasons

    def _on_message(self, topic: str, payload: bytes, properties: Mapping[str, Any]) -> None:
        try:
            document = orjson.loads(payload)
            found = select_records(self.records_expr, document)
        except (orjson.JSONDecodeError, jmespath.exceptions.JMESPathError) as exc:
            self._skip(f"message on {topic}: not JSON ({str(exc).splitlines()[0]})")
            return
        for record in found:
            if isinstance(record, dict) and "_topic" not in record:
                record["_topic"] = topic
            self.buffer.append(record)
        self._trim()
        if len(self.buffer) >= self.definition.batch:
            self.arrived.set()

    def _trim(self) -> None:
        while len(self.buffer) > MAX_BUFFERED:
            self.buffer.popleft()
            self._skip("records dropped: more than %d waiting" % MAX_BUFFERED)

    def _skip(self, reason: str) -> None:
        self.skipped += 1
        if len(self.reasons) < 5:
            self.reasons.append(reason)
