"""LoRaWAN through the network server's MQTT integration: ChirpStack v4 (and v3) and The
Things Stack v3, as the FIWARE LoRaWAN agent (Atos IoTagent-LoRaWAN) provisions them.

A device carries ``internal_attributes.lorawan`` (an object, as that agent documents it,
or an item of an ``internal_attributes`` array)::

    {"application_server": {"provider": "chirpstack"|"TTN", ...},
     "dev_eui": "1119343755556A14", "application_id": "app", "data_model": "cayennelpp"}

Uplinks (``application/<app>/device/<devEui>/event/up``, ``v3/<app>[@tenant]/devices/<dev>/up``)
are matched to a device by DevEUI (any case), else by its ``device_id``; an unknown device
of a LoRaWAN group (``internal_attributes.lorawan`` with the ``application_id``, or
``resource`` = the application id / AppEUI) is autoprovisioned with its DevEUI. The payload
is decoded per ``data_model`` (``codecs.lorawan.measures_from_uplink``) and sent on the
common path; the strongest gateway's ``rssi``/``snr`` are not sent (they are radio
metadata, not measures) unless the device lists them as attributes.

Commands to a LoRaWAN device are downlinks: the value as bytes (a hex string is decoded,
other text is UTF-8, a ``{"fport": n, "payload": hex}`` object picks the port), published
on the network server's downlink topic; the status becomes OK once the network server
has it, as the agent cannot see the radio acknowledgement.

The agent listens on its own MQTT broker (``IOTA_MQTT_HOST``): point the network server's
MQTT integration there (ChirpStack ``integration.mqtt.server``, TTS MQTT bridge).
"""

from __future__ import annotations

import binascii
import logging
from typing import Any

from ..codecs import lorawan
from ..commands.status import SetStatus
from ..device import lorawan_config
from ..errors import DeviceGroupNotFound, ParseError
from ..provisioning.store import device_key
from .ingest import Southbound
from .mqtt import MqttSouth

log = logging.getLogger("waziup.iot_agent.lora")

Doc = dict[str, Any]
UPLINK_TOPICS = [lorawan.chirpstack_uplink_topic(), "v3/+/devices/+/up"]


def _provider(config: Doc) -> str:
    server = config.get("application_server")
    name = str((server or {}).get("provider") or "") if isinstance(server, dict) else ""
    return "tts" if name.upper() in ("TTN", "TTS", "TTI") else "chirpstack"


def downlink_bytes(value: Any) -> tuple[bytes, int | None]:
    """(payload, fport or None) of a command value."""
    fport = None
    if isinstance(value, dict):
        fport = value.get("fport") if isinstance(value.get("fport"), int) else None
        value = value.get("payload", value.get("data", ""))
    if isinstance(value, (bytes, bytearray)):
        return bytes(value), fport
    text = value if isinstance(value, str) else str(value)
    try:
        if text and len(text) % 2 == 0:
            return bytes.fromhex(text), fport
    except ValueError:
        pass
    return text.encode("utf-8"), fport


class LoraSouth:
    """Uplinks in through ``mqtt``; ``downlink`` is the commands' LoRaWAN ``Deliver``, which
    reports the status through ``set_status`` (``Commands.set_status``)."""

    def __init__(self, south: Southbound, mqtt: MqttSouth, set_status: SetStatus) -> None:
        self.south = south
        self.mqtt = mqtt
        self.set_status = set_status
        mqtt.add_handler(UPLINK_TOPICS, self.uplink)

    async def find(self, uplink: lorawan.Uplink) -> tuple[Doc, Doc | None]:
        devices = await self.south.registry.find_devices()
        eui = (uplink.dev_eui or "").upper()
        for device in devices:
            config = lorawan_config(device)
            if config is not None and eui and str(config.get("dev_eui") or "").upper() == eui:
                return device, await self.south.group_for(device)
        for device in devices:
            if lorawan_config(device) is not None and uplink.device_id and device.get("device_id") == uplink.device_id:
                return device, await self.south.group_for(device)
        group = await self._group(uplink)
        if group is None:
            raise DeviceGroupNotFound(["application_id", "dev_eui"], [uplink.application_id or "", eui])
        device_id = uplink.device_id or eui
        doc = await self.south.autoprovision(group, device_id, protocol="IoTA-LoRaWAN", transport="MQTT")
        if lorawan_config(doc) is None and eui:
            stored = dict(doc)
            stored["internal_attributes"] = {"lorawan": {**(lorawan_config(group) or {}), "dev_eui": eui}}
            await self.south.registry.replace_device(device_key(doc), stored)
            self.south.invalidate()
            doc = stored
        return doc, group

    async def _group(self, uplink: lorawan.Uplink) -> Doc | None:
        for group in await self.south.registry.find_groups():
            config = lorawan_config(group)
            if config is None:
                continue
            if uplink.application_id and uplink.application_id in (config.get("application_id"), config.get("app_eui")):
                return group
            if uplink.application_id and group.get("resource") in (uplink.application_id, "/" + uplink.application_id):
                return group
        return None

    async def uplink(self, topic: str, payload: bytes) -> bool:
        """An uplink event: decode it and send its measures (True: the message was ours)."""
        if not (topic.endswith("/event/up") or (topic.startswith("v3/") and topic.endswith("/up"))):
            return True  # join, status, ack... events: nothing to measure
        try:
            uplink = lorawan.parse_uplink(payload)
        except ParseError as exc:
            log.warning("LoRaWAN uplink on %s dropped: %s", topic, exc.message)
            return True
        if uplink.application_id is None:
            parts = topic.split("/")
            uplink.application_id = parts[1].split("@")[0] if len(parts) > 1 else None
        device, group = await self.find(uplink)
        config = lorawan_config(device) or lorawan_config(group) or {}
        measures = lorawan.measures_from_uplink(uplink, config.get("data_model"))
        if not measures:
            return True
        await self.south.send(device, group, [measures])
        return True

    async def downlink(self, device: Doc, group: Doc | None, name: str, value: Any) -> None:
        config = {**(lorawan_config(group) or {}), **(lorawan_config(device) or {})}
        payload, fport = downlink_bytes(value)
        fport = fport or int(config.get("fport") or 1)
        app = str(config.get("application_id") or "")
        if _provider(config) == "tts":
            topic = lorawan.tts_downlink_topic(app, str(device["device_id"]))
            body = lorawan.tts_downlink(fport, payload)
        else:
            eui = str(config.get("dev_eui") or device["device_id"])
            topic = lorawan.chirpstack_downlink_topic(app, eui)
            body = lorawan.chirpstack_downlink(eui, fport, payload)
        await self.mqtt.publish(topic, lorawan.dumps(body))
        await self.set_status(device, group, name, "OK", binascii.hexlify(payload).decode())
