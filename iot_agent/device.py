"""What a provisioned device says about itself, read together with its group.

Pure functions of the two provisioning documents (the device's own field wins, then its
group's, then the agent's default): which entity it feeds, its apikey and tenant, the
payload format and transport it speaks, its commands and lazy attributes, its LoRaWAN
settings. The south transports and the commands both read devices this way, so these
answers live here, below both, and neither has to import the other to get them.
"""

from __future__ import annotations

from typing import Any

from .config import Config
from .provisioning import model

Doc = dict[str, Any]

UL = "ul"
JSON = "json"
RESOURCE_OF = {UL: "/iot/d", JSON: "/iot/json"}

LEGACY, NOTIFICATION = "legacy", "notification"

LORA, MQTT, HTTP_PUSH, POLL = "lora", "mqtt", "http-push", "http-poll"


def payload_format(device: Doc | None, group: Doc | None) -> str | None:
    """``ul`` or ``json`` from the device's protocol or its group's resource, None when unknown."""
    protocol = str((device or {}).get("protocol") or "").upper()
    if "JSON" in protocol:
        return JSON
    if "UL" in protocol or "ULTRALIGHT" in protocol:
        return UL
    resource = (group or {}).get("resource")
    if resource == RESOURCE_OF[JSON]:
        return JSON
    if resource == RESOURCE_OF[UL]:
        return UL
    return None


def entity_of(device: Doc, group: Doc | None, config: Config) -> tuple[str, str]:
    """(entity id, entity type) of a device, as provisioning named it."""
    entity_type = device.get("entity_type") or (group or {}).get("entity_type") or config.default_type
    name = device.get("entity_name")
    if not name:
        joint = (group or {}).get("defaultEntityNameConjunction") or config.default_entity_name_conjunction
        name = f"{entity_type}{joint}{device['device_id']}"
    return str(name), str(entity_type)


def apikey_of(device: Doc, group: Doc | None) -> str:
    return str(device.get("apikey") or (group or {}).get("apikey") or "")


def tenant_of(device: Doc) -> dict[str, Any]:
    """The device's tenant as ``NGSIClient`` keyword arguments (``service``, ``service_path``)."""
    return {"service": device.get("service") or None, "service_path": device.get("service_path") or None}


def fiware_headers(device: Doc) -> dict[str, str]:
    """The device's tenant as ``Fiware-Service``/``-ServicePath`` headers (only those it has)."""
    headers = {}
    if device.get("service"):
        headers["fiware-service"] = str(device["service"])
    if device.get("service_path"):
        headers["fiware-servicepath"] = str(device["service_path"])
    return headers


def attribute_names(device: Doc, group: Doc | None, kind: str) -> list[str]:
    """Names of the device's ``commands`` or ``lazy`` attributes, its own first, then its group's."""
    names: list[str] = []
    for source in (device, group or {}):
        items = source.get(kind)
        if isinstance(items, list):
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"] not in names:
                    names.append(item["name"])
    return names


def lazy_type(device: Doc, group: Doc | None, name: str, kind: str = "lazy", default: str = "Text") -> str:
    """The provisioned type of a lazy attribute (or, with ``kind="commands"``, a command)."""
    for source in (device, group or {}):
        for item in source.get(kind) or ():
            if isinstance(item, dict) and item.get("name") == name:
                return str(item.get("type") or default)
    return default


def cmd_mode(device: Doc, group: Doc | None, default: str = LEGACY) -> str:
    """``legacy`` or ``notification``: the device's ``cmdMode``, else its group's, else the
    agent's (``IOTA_CMD_MODE``). ``advancedNotification`` (a draft node-lib does not
    implement) and unknown values run as legacy."""
    for source in (device, group or {}):
        value = source.get("cmdMode")
        if isinstance(value, str) and value:
            return NOTIFICATION if value == NOTIFICATION else LEGACY
    return NOTIFICATION if default == NOTIFICATION else LEGACY


def lorawan_config(doc: Doc | None) -> Doc | None:
    """The ``lorawan`` object of a device's or group's ``internal_attributes``."""
    internal = (doc or {}).get("internal_attributes")
    if isinstance(internal, dict) and isinstance(internal.get("lorawan"), dict):
        return internal["lorawan"]
    if isinstance(internal, list):
        for item in internal:
            if isinstance(item, dict) and isinstance(item.get("lorawan"), dict):
                return item["lorawan"]
    return None


def transport_of(device: Doc, group: Doc | None, default_transport: str) -> str:
    """How a command reaches the device: ``lora``, ``mqtt``, ``http-push`` or ``http-poll``.
    ``default_transport`` is the agent's (``IOTA_DEFAULT_TRANSPORT``)."""
    if lorawan_config(device) is not None or lorawan_config(group) is not None:
        return LORA
    transport = str(device.get("transport") or (group or {}).get("transport") or "").upper()
    if transport == "HTTP" or (not transport and (device.get("endpoint") or device.get("polling") is True)):
        return POLL if model.is_polling(device, group) else HTTP_PUSH
    if not transport:
        transport = default_transport.upper()
    if transport == "HTTP":
        return POLL if model.is_polling(device, group) else HTTP_PUSH
    return MQTT
