"""LoRaWAN through the network server's MQTT integration: ChirpStack v4 (and v3) and The
Things Stack v3, as the FIWARE LoRaWAN agent (Atos IoTagent-LoRaWAN) provisions them.

A device carries ``internal_attributes.lorawan`` (an object, as that agent documents it,
or an item of an ``internal_attributes`` array)::

    {"application_server": {"provider": "chirpstack"|"TTN", ...},
     "dev_eui": "1119343755556A14", "application_id": "app", "data_model": "cayennelpp"}

Uplinks (``application/<app>/device/<devEui>/event/up``, ``v3/<app>[@tenant]/devices/<dev>/up``)
are matched by the topic's application and device: a device whose ``application_id`` (its
own, else its group's) is that application, with that DevEUI (any case) or, on The Things
Stack, that device id; two tenants' devices with one DevEUI never mix. An unknown device
of a LoRaWAN group (``internal_attributes.lorawan`` with the ``application_id``, or
``resource`` = the application id / AppEUI, with or without ``/``) is autoprovisioned with
its DevEUI, its entity named ``<device_id>:<entity_type>`` as that agent names it. The payload
is decoded per ``data_model`` (``codecs.lorawan.measures_from_uplink``) and sent on the
common path; the strongest gateway's ``rssi``/``snr`` are not sent (they are radio
metadata, not measures) unless the device lists them as attributes. A GPS reading for a
``geo:point`` attribute is sent as ``"lat,lon"``.

Commands to a LoRaWAN device are downlinks: the value as bytes (a hex string is decoded,
other text is UTF-8, a ``{"fport": n, "payload": hex}`` object picks the port), published
on the network server's downlink topic (on The Things Stack, with the tenant of the
application the device's uplinks came on); the status becomes OK once the network server
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
from ..provisioning import model
from ..provisioning.store import Conflict, DeviceKey, device_key
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


def topic_ids(topic: str) -> tuple[str, str, bool] | None:
    """(application, device, is TTS) of an uplink topic, None for other events.

    ChirpStack ``application/{app}/device/{devEui}/event/up`` gives the DevEUI in upper
    case; The Things Stack ``v3/{app}[@{tenant}]/devices/{device_id}/up`` gives the
    application with its tenant, which downlinks must keep."""
    parts = topic.split("/")
    if len(parts) == 6 and parts[0] == "application" and parts[2] == "device" and parts[4:] == ["event", "up"]:
        return parts[1], parts[3].upper(), False
    if len(parts) == 5 and parts[0] == "v3" and parts[2] == "devices" and parts[4] == "up":
        return parts[1], parts[3], True
    return None


def same_application(configured: str, topic_app: str) -> bool:
    """A provisioned ``application_id`` names the topic's application: equal, or equal
    but for a ``@tenant`` only one of them carries (the manual's N.B. on TTN v3)."""
    if not configured or not topic_app:
        return False
    if configured == topic_app:
        return True
    if "@" in configured and "@" in topic_app:
        return False
    return configured.split("@")[0] == topic_app.split("@")[0]


def group_serves(group: Doc, app: str) -> bool:
    """A LoRaWAN group serves an application named by its ``application_id``, its
    ``app_eui``, or its ``resource`` (the manual's AppEUI, with or without a ``/``)."""
    config = lorawan_config(group)
    if config is None:
        return False
    base = app.split("@")[0]
    return (
        same_application(str(config.get("application_id") or ""), app)
        or str(config.get("app_eui") or "").upper() == base.upper() != ""
        or str(group.get("resource") or "").lstrip("/") in (app, base)
    )


def device_matches(device: Doc, app_id: str, app: str, dev: str, tts: bool, payload_eui: str | None) -> bool:
    """An uplink of ``app`` for ``dev`` (the topic's) is this device's: same application
    (``app_id``, the device's own or its group's), and, within it, the same DevEUI
    (ChirpStack's topic, or the TTS payload's) or the same device id (TTS's topic)."""
    if not same_application(app_id, app):
        return False
    eui = str((lorawan_config(device) or {}).get("dev_eui") or "").upper()
    if tts:
        return device.get("device_id") == dev or (bool(eui) and eui == (payload_eui or "").upper())
    return (eui or str(device.get("device_id") or "").upper()) == dev


def geo_points(measures: Doc, attributes: list[Doc]) -> Doc:
    """Measures for ``geo:point`` attributes as Orion's ``"lat,lon"`` text.

    A GPS reading (CayenneLPP ``gps_<n>``, or a decoded ``{latitude, longitude}``) becomes
    ``"lat,lon"``; one that is no point (out of range, not numbers, not text) is dropped
    with a warning, as the broker would refuse it and with it every other measure."""
    out = dict(measures)
    for attr in attributes:
        if not isinstance(attr, dict) or str(attr.get("type") or "") != "geo:point":
            continue
        key = str(attr.get("object_id") or attr.get("name") or "")
        if key not in out or isinstance(out[key], str):
            continue
        value = out[key]
        lat = value.get("latitude", value.get("lat")) if isinstance(value, dict) else None
        lon = value.get("longitude", value.get("lon")) if isinstance(value, dict) else None
        if _coordinate(lat, 90) and _coordinate(lon, 180):
            out[key] = f"{lat},{lon}"
        else:
            log.warning("LoRaWAN measure %s dropped: %r is no geo:point", key, value)
            del out[key]
    return out


def _coordinate(v: Any, limit: int) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and -limit <= v <= limit


class LoraSouth:
    """Uplinks in through ``mqtt``; ``downlink`` is the commands' LoRaWAN ``Deliver``, which
    reports the status through ``set_status`` (``Commands.set_status``)."""

    def __init__(self, south: Southbound, mqtt: MqttSouth, set_status: SetStatus) -> None:
        self.south = south
        self.mqtt = mqtt
        self.set_status = set_status
        self.applications: dict[DeviceKey, str] = {}  # the last uplink's application (TTS: with its tenant)
        mqtt.add_handler(UPLINK_TOPICS, self.uplink)

    async def find(self, uplink: lorawan.Uplink, app: str, dev: str, tts: bool) -> tuple[Doc, Doc | None]:
        """The device of the topic's application and device, else one autoprovisioned by the
        LoRaWAN group of that application; DEVICE_GROUP_NOT_FOUND when there is none."""
        for device in await self.south.registry.find_devices():
            config = lorawan_config(device)
            if config is None:
                continue
            app_id = str(config.get("application_id") or "")
            group = None
            if not app_id:
                group = await self.south.group_for(device)
                app_id = str((lorawan_config(group) or {}).get("application_id") or "")
            if device_matches(device, app_id, app, dev, tts, uplink.dev_eui):
                return device, await self._group(app, device) or group or await self.south.group_for(device)
        group = await self._group(app)
        eui = uplink.dev_eui or ("" if tts else dev)
        if group is None:
            raise DeviceGroupNotFound(["application_id", "dev_eui"], [app, eui])
        device_id = dev if tts else (uplink.device_id or eui)
        return await self._autoprovision(group, device_id, app, eui), group

    async def _group(self, app: str, device: Doc | None = None) -> Doc | None:
        """The LoRaWAN group serving ``app`` (in ``device``'s tenant, when given)."""
        for group in await self.south.registry.find_groups():
            if device is not None and (group.get("service"), group.get("subservice")) != (
                device.get("service"),
                device.get("service_path"),
            ):
                continue
            if group_serves(group, app):
                return group
        return None

    async def _autoprovision(self, group: Doc, device_id: str, app: str, eui: str) -> Doc:
        """A device of ``group``, named ``<device_id>:<entity_type>`` as the FIWARE LoRaWAN
        agent names them (its manual, §Send a message to the MQTT...), so entity ids survive a
        migration; it keeps the group's ``lorawan`` settings with its application and DevEUI."""
        lora = {**(lorawan_config(group) or {}), "application_id": app}
        if eui:
            lora["dev_eui"] = eui
        doc: Doc = {
            "device_id": device_id,
            "service": group.get("service", ""),
            "service_path": group.get("subservice", ""),
            "protocol": "IoTA-LoRaWAN",
            "transport": "MQTT",
            "internal_attributes": {"lorawan": lora},
        }
        if group.get("apikey"):
            doc["apikey"] = group["apikey"]
        config = self.south.config
        entity_type = group.get("entity_type") or config.default_type
        joint = group.get("defaultEntityNameConjunction") or config.default_entity_name_conjunction
        if entity_type:
            doc["entity_name"] = f"{device_id}{joint}{entity_type}"
        doc = model.complete_device(doc, group, default_type=config.default_type, conjunction=joint)
        try:
            await self.south.registry.insert_devices([doc])
            self.south.invalidate()
        except Conflict:  # another uplink provisioned it first
            found = await self.south.find_device(str(doc.get("apikey", "")), device_id, group)
            if found is not None:
                return found
            raise
        log.info("autoprovisioned LoRaWAN device %s of %s", device_id, app)
        for hook in self.south.provision_hooks:
            try:
                await hook(doc, group)
            except Exception:
                log.exception("provisioning hook failed for %s", device_id)
        return doc

    async def uplink(self, topic: str, payload: bytes) -> bool:
        """An uplink event: decode it and send its measures (True: the message was ours)."""
        ids = topic_ids(topic)
        if ids is None:
            return True  # join, status, ack... events: nothing to measure
        app, dev, tts = ids
        try:
            uplink = lorawan.parse_uplink(payload)
        except ParseError as exc:
            log.warning("LoRaWAN uplink on %s dropped: %s", topic, exc.message)
            return True
        if uplink.application_id is None:
            uplink.application_id = app.split("@")[0]
        device, group = await self.find(uplink, app, dev, tts)
        self.applications[device_key(device)] = app
        config = lorawan_config(device) or lorawan_config(group) or {}
        measures = lorawan.measures_from_uplink(uplink, config.get("data_model"))
        attributes = [*(device.get("attributes") or []), *((group or {}).get("attributes") or [])]
        measures = geo_points(measures, attributes)
        if not measures:
            return True
        await self.south.send(device, group, [measures])
        return True

    async def downlink(self, device: Doc, group: Doc | None, name: str, value: Any) -> None:
        config = {**(lorawan_config(group) or {}), **(lorawan_config(device) or {})}
        payload, fport = downlink_bytes(value)
        fport = fport or int(config.get("fport") or 1)
        # the application the uplinks came on: on The Things Stack it carries the tenant
        app = self.applications.get(device_key(device)) or str(config.get("application_id") or "")
        if _provider(config) == "tts":
            topic = lorawan.tts_downlink_topic(app, str(device["device_id"]))
            body = lorawan.tts_downlink(fport, payload)
        else:
            eui = str(config.get("dev_eui") or device["device_id"])
            topic = lorawan.chirpstack_downlink_topic(app, eui)
            body = lorawan.chirpstack_downlink(eui, fport, payload)
        await self.mqtt.publish(topic, lorawan.dumps(body))
        await self.set_status(device, group, name, "OK", binascii.hexlify(payload).decode())
