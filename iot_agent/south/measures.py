"""The one path from a decoded measure to the context broker, shared by every transport.

HTTP (/iot/d, /iot/json), MQTT, LoRaWAN and the WAZIUP gateway all end here:

1. ``resolve``: the device by (apikey, device_id), else a device of that id provisioned
   without apikey; else, when the apikey names a group that allows it (``autoprovision``
   not false), a new device is provisioned (``model.complete_device`` +
   ``registry.insert_devices``), holding only what the FIWARE agents store for it (id,
   apikey, tenant, protocol, transport, entity type and name): everything else is
   inherited from the group at run time.
2. ``send``: the device's pre-processing pipeline (``iot_agent.preprocess``, state kept per
   device here), ``measures.build_entities``, then the NGSI client: one entity is an upsert
   (``POST /v2/entities?options=upsert``), several a ``POST /v2/op/update`` ``append``, as
   iotagent-node-lib sends them. A group's ``cbHost`` sends to that broker instead.

Failures are ``iot_agent.errors`` exceptions: the HTTP binding renders them, the MQTT one
logs them (there is nobody to answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ngsi.client import NGSIClient, NGSIClientError

from .. import measures as mapping
from ..config import Config
from ..errors import CBRequestError, DeviceGroupNotFound, DeviceNotFound
from ..preprocess import PreprocessState, preprocess
from ..provisioning import model
from ..provisioning.store import Conflict, DeviceKey, ProvisioningStore, device_key

log = logging.getLogger("waziup.iot_agent.south")

Doc = dict[str, Any]
ProvisionHook = Callable[[Doc, Doc | None], Awaitable[None]]

UL = "ul"
JSON = "json"
RESOURCE_OF = {UL: "/iot/d", JSON: "/iot/json"}


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


class Southbound:
    """Device lookup, autoprovisioning and measure delivery (see the module doc)."""

    def __init__(self, registry: ProvisioningStore, ngsi: NGSIClient, config: Config, *, max_in_flight: int = 0) -> None:
        self.registry = registry
        self.ngsi = ngsi
        self.config = config
        self.provision_hooks: list[ProvisionHook] = []
        self._states: dict[DeviceKey, PreprocessState] = {}
        self._clients: dict[str, NGSIClient] = {}
        # at most this many broker requests at once (0: no bound): see runtime.BROKER_CONNECTIONS
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight > 0 else None

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    # -- lookup ------------------------------------------------------------------------------

    async def find_group(self, apikey: str, resource: str | None = None) -> Doc | None:
        """The group of an apikey; with several (one per resource), ``resource`` picks."""
        found = await self.registry.find_groups(apikey=apikey)
        if not found:
            return None
        if resource is not None:
            for group in found:
                if group.get("resource") == resource:
                    return group
        return found[0]

    async def group_for(self, device: Doc) -> Doc | None:
        """A device's group: its tenant's group with its apikey (any of the tenant without one)."""
        found = await self.registry.find_groups(
            service=device.get("service"), subservice=device.get("service_path"), apikey=device.get("apikey") or None
        )
        if not found and device.get("apikey"):
            found = await self.registry.find_groups(apikey=device["apikey"])
        return found[0] if found else None

    async def find_device(self, apikey: str, device_id: str, group: Doc | None) -> Doc | None:
        for key in (apikey, ""):
            found = await self.registry.find_devices(device_id=device_id, apikey=key)
            if group is not None and len(found) > 1:
                same = [d for d in found if d.get("service") == group.get("service") and d.get("service_path") == group.get("subservice")]
                found = same or found
            if found:
                return found[0]
        return None

    async def resolve(
        self,
        apikey: str,
        device_id: str,
        *,
        resource: str | None = None,
        protocol: str | None = None,
        transport: str | None = None,
    ) -> tuple[Doc, Doc | None]:
        """(device, group) for a message, provisioning the device when its group allows it."""
        group = await self.find_group(apikey, resource)
        device = await self.find_device(apikey, device_id, group)
        if device is not None:
            return device, group if group is not None else await self.group_for(device)
        if group is None:
            raise DeviceGroupNotFound(["resource", "apikey"], [resource or "", apikey])
        if group.get("autoprovision") is False:
            raise DeviceNotFound(device_id)
        return await self.autoprovision(group, device_id, protocol=protocol, transport=transport), group

    async def autoprovision(self, group: Doc, device_id: str, *, protocol: str | None = None, transport: str | None = None) -> Doc:
        doc: Doc = {"device_id": device_id, "service": group.get("service", ""), "service_path": group.get("subservice", "")}
        if group.get("apikey"):
            doc["apikey"] = group["apikey"]
        if protocol:
            doc["protocol"] = protocol
        if transport:
            doc["transport"] = transport
        doc = model.complete_device(
            doc, group, default_type=self.config.default_type, conjunction=self.config.default_entity_name_conjunction
        )
        try:
            await self.registry.insert_devices([doc])
        except Conflict:  # another message provisioned it first
            found = await self.find_device(str(doc.get("apikey", "")), device_id, group)
            if found is not None:
                return found
            raise
        log.info("autoprovisioned device %s (apikey %s)", device_id, group.get("apikey"))
        for hook in self.provision_hooks:
            try:
                await hook(doc, group)
            except Exception:
                log.exception("provisioning hook failed for %s", device_id)
        return doc

    # -- delivery ----------------------------------------------------------------------------

    def client_for(self, group: Doc | None) -> NGSIClient:
        """The broker of a group with its own ``cbHost``, else the agent's."""
        host = str((group or {}).get("cbHost") or "").rstrip("/")
        if not host:
            return self.ngsi
        if "://" not in host:
            host = "http://" + host
        if host == self.ngsi.base_url:
            return self.ngsi
        client = self._clients.get(host)
        if client is None:
            client = self._clients[host] = NGSIClient(host)
        return client

    def state_of(self, device: Doc) -> PreprocessState:
        key = device_key(device)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = PreprocessState()
        return state

    def build(self, device: Doc, group: Doc | None, measures: list[Doc], now: float | None = None) -> list[Doc]:
        """Pre-process and map: the entities to send (``[]``: nothing)."""
        now = time.time() if now is None else now
        steps = device.get("preprocess") or (group or {}).get("preprocess")
        if steps:
            measures = preprocess(measures, steps, self.state_of(device), now)
        if not measures:
            return []
        return mapping.build_entities(
            measures,
            device,
            group,
            now,
            timestamp_default=self.config.timestamp,
            autocast=self.config.autocast,
            conjunction=self.config.default_entity_name_conjunction,
        )

    async def send(self, device: Doc, group: Doc | None, measures: list[Doc], *, now: float | None = None) -> list[Doc]:
        """Map ``measures`` and send them; returns the entities sent."""
        entities = self.build(device, group, measures, now)
        if entities:
            flow = bool(device.get("useCBflowControl", (group or {}).get("useCBflowControl", self.config.cb_flow_control)))
            await self.write(device, group, entities, flow_control=flow)
        return entities

    async def write(self, device: Doc, group: Doc | None, entities: list[Doc], *, flow_control: bool = False) -> None:
        """Upsert one entity, or append several in one batch, in the device's tenant."""
        client = self.client_for(group)
        tenant = {"service": device.get("service") or None, "service_path": device.get("service_path") or None}
        try:
            async with self._slots or contextlib.nullcontext():
                if len(entities) == 1:
                    options = "upsert,flowControl" if flow_control else "upsert"
                    await client.request("POST", "/v2/entities", params={"options": options}, json=entities[0], **tenant)
                else:
                    await client.op_update("append", entities, options="flowControl" if flow_control else None, **tenant)
        except NGSIClientError as exc:
            log.warning("the context broker refused measures of %s: %s", device.get("device_id"), exc)
            raise CBRequestError(str(exc)) from None

    async def measure(
        self,
        apikey: str,
        device_id: str,
        measures: list[Doc],
        *,
        resource: str | None = None,
        protocol: str | None = None,
        transport: str | None = None,
    ) -> tuple[Doc, Doc | None]:
        """resolve + send; returns (device, group)."""
        device, group = await self.resolve(apikey, device_id, resource=resource, protocol=protocol, transport=transport)
        await self.send(device, group, measures)
        return device, group
