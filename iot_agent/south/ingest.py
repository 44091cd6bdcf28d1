"""The one path from a decoded measure to the context broker, shared by every transport.

HTTP (/iot/d, /iot/json), MQTT, LoRaWAN and the WAZIUP gateway all end here:

1. ``resolve``: the device by (apikey, device_id), else a device of that id provisioned
   without apikey; else, when the apikey names a group that allows it (``autoprovision``
   not false), a new device is provisioned (``model.complete_device`` +
   ``registry.insert_devices``), holding only what the FIWARE agents store for it (id,
   apikey, tenant, protocol, transport, entity type and name): everything else is
   inherited from the group at run time.
   Found (device, group) pairs are cached until the next provisioning change (the north
   API's listeners, ``on_provisioning``, and the writes made here), so a measure costs no
   registry query.
2. ``send``: the device's pre-processing pipeline (``iot_agent.preprocess``, state kept per
   device here), ``mapping.build_entities``, then ``south.batch``: alone, one entity is
   an upsert (``POST /v2/entities?options=upsert``), several a ``POST /v2/op/update``
   ``append``, as iotagent-node-lib sends them; readings of many devices that arrive
   together share one ``append``. A group's ``cbHost`` sends to that broker instead.
   A device provisioned with ``consent: false`` stops here: its measures are dropped,
   counted (``withheld``) and logged at most once a minute (docs/lifecycle.md).

Failures are ``iot_agent.errors`` exceptions: the HTTP binding renders them, the MQTT one
logs them (there is nobody to answer).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ngsi.client import NGSIClient
from ngsi.client.credentials import Credentials
from ngsi.client.http11 import HTTPClient

from .. import mapping
from ..config import Config
from ..errors import DeviceGroupNotFound, DeviceNotFound
from ..preprocess import PreprocessState, preprocess
from ..provisioning import model
from ..provisioning.state import persisted_preprocess_state
from ..provisioning.store import Conflict, DeviceKey, ProvisioningStore, device_key
from .batch import Batcher, Poster, http11_poster

log = logging.getLogger("waziup.iot_agent.south")

Doc = dict[str, Any]
WITHHELD_LOG_SECONDS = 60.0
ProvisionHook = Callable[[Doc, Doc | None], Awaitable[None]]


class Southbound:
    """Device lookup, autoprovisioning and measure delivery (see the module doc)."""

    def __init__(
        self,
        registry: ProvisioningStore,
        ngsi: NGSIClient,
        config: Config,
        *,
        max_in_flight: int = 0,
        poster: Poster | None = None,
        lanes: int = 2,
        credentials: Credentials | None = None,
    ) -> None:
        self.registry = registry
        self.ngsi = ngsi
        self.config = config
        self.provision_hooks: list[ProvisionHook] = []
        self._states: dict[DeviceKey, PreprocessState] = {}
        self._clients: dict[str, NGSIClient] = {}
        self._resolved: dict[tuple[str, str, str | None], tuple[Doc, Doc | None]] = {}
        self._infos: dict[tuple[int, int], tuple[Doc, Doc | None, Doc]] = {}  # see _info
        self._generation = 0  # bumped by every provisioning change: a lookup begun before is not cached
        self._http: Any = None
        if poster is None:
            # at most this many broker requests at once (0: no bound): see runtime.BROKER_CONNECTIONS
            self._http = HTTPClient(max_per_host=max_in_flight or 16, ssl_context=config.broker_ssl_context())
            poster = http11_poster(self._http, timeout=10.0, credentials=credentials)
        self.credentials = credentials
        self.withheld: dict[DeviceKey, int] = {}  # measures dropped per device: its consent is withdrawn
        self._withheld_logged: dict[DeviceKey, float] = {}
        self.batcher = Batcher(poster, lanes=lanes, max_in_flight=max_in_flight)

    async def aclose(self) -> None:
        await self.batcher.close()
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        if self._http is not None:
            await self._http.aclose()

    # -- the cache of (device, group) ---------------------------------------------------------

    def invalidate(self) -> None:
        self._generation += 1
        self._resolved.clear()
        self._infos.clear()

    async def on_provisioning(self, event: str, old: Doc | None, new: Doc | None) -> None:
        """A provisioning listener (north API): any group or device change empties the cache."""
        self.invalidate()

    def forget(self, key: DeviceKey) -> None:
        """A deleted device: its pre-processor state goes (the store's copy is the caller's)."""
        self._states.pop(key, None)

    def cached(self, apikey: str, device_id: str, resource: str | None = None) -> tuple[Doc, Doc | None] | None:
        """(device, group) as ``resolve`` last found them, if nothing was provisioned since."""
        return self._resolved.get((apikey, device_id, resource))

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
        key = (apikey, device_id, resource)
        found = self._resolved.get(key)
        if found is not None:
            return found
        generation = self._generation
        group = await self.find_group(apikey, resource)
        device = await self.find_device(apikey, device_id, group)
        if device is not None:
            found = device, group if group is not None else await self.group_for(device)
        elif group is None:
            raise DeviceGroupNotFound(["resource", "apikey"], [resource or "", apikey])
        elif group.get("autoprovision") is False:
            raise DeviceNotFound(device_id)
        else:
            found = await self.autoprovision(group, device_id, protocol=protocol, transport=transport), group
            generation = self._generation
        if generation == self._generation:
            self._resolved[key] = found
        return found

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
            self.invalidate()
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
            client = self._clients[host] = NGSIClient(
                host, transport=HTTPClient(ssl_context=self.config.broker_ssl_context()), credentials=self.credentials
            )
        return client

    def state_of(self, device: Doc) -> PreprocessState:
        key = device_key(device)
        state = self._states.get(key)
        if state is None:
            # as last saved in the registry's store, and saved there after each change
            state = self._states[key] = persisted_preprocess_state(self.registry.state, key)
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
            info=self._info(device, group),
        )

    def _info(self, device: Doc, group: Doc | None) -> Doc:
        """``merge_type_information`` of a (device, group), kept for as long as the docs are cached."""
        key = (id(device), id(group))
        kept = self._infos.get(key)
        if kept is not None and kept[0] is device and kept[1] is group:
            return kept[2]
        info = mapping.merge_type_information(device, group)
        if len(self._infos) > 50_000:
            self._infos.clear()
        self._infos[key] = (device, group, info)
        return info

    async def send(self, device: Doc, group: Doc | None, measures: list[Doc], *, now: float | None = None) -> list[Doc]:
        """Map ``measures`` and send them; returns the entities sent once the broker took them.

        A refusal is logged and raised as ``CBRequestError``.
        """
        entities, accepted = self.submit(device, group, measures, now=now)
        if accepted is not None:
            await accepted
        return entities

    def submit(
        self, device: Doc, group: Doc | None, measures: list[Doc], *, now: float | None = None, wait: bool = True
    ) -> tuple[list[Doc], asyncio.Future[None] | None]:
        """Map ``measures`` and queue them for the broker, without waiting (MQTT has nobody to answer).

        Returns the entities and, with ``wait``, a future that ends when the broker took them.
        """
        if device.get("consent") is False:
            self.withhold(device, len(measures), time.time() if now is None else now)
            return [], None
        entities = self.build(device, group, measures, now)
        if not entities:
            return entities, None
        return entities, self.write(device, group, entities, wait=wait)

    def withhold(self, device: Doc, count: int, now: float) -> None:
        """A device whose consent is withdrawn (``consent: false``): its measures are neither
        forwarded nor stored, only counted, and said at most once a minute per device (a chatty
        device must not flood the log)."""
        key = device_key(device)
        self.withheld[key] = self.withheld.get(key, 0) + count
        if now - self._withheld_logged.get(key, float("-inf")) >= WITHHELD_LOG_SECONDS:
            self._withheld_logged[key] = now
            log.info("device %s: consent withdrawn, measures dropped (%d so far)", device.get("device_id"),
                     self.withheld[key])

    def write(self, device: Doc, group: Doc | None, entities: list[Doc], *, wait: bool = True) -> asyncio.Future[None] | None:
        """Queue entities for the device's broker and tenant (``south.batch``)."""
        flow = bool(device.get("useCBflowControl", (group or {}).get("useCBflowControl", self.config.cb_flow_control)))
        service, service_path = device.get("service") or None, device.get("service_path") or None
        device_id = str(device.get("device_id"))
        return self.batcher.submit(
            self.client_for(group).base_url, service, service_path, flow, (device_id, device.get("apikey")),
            entities, device_id, wait=wait,
        )

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
