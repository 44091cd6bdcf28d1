"""Devices, sensors, actuators and values: the contract's operations on the platform.

Devices live in the broker (``devices.py`` says how), datapoints in the history service
(``history.py``), values are mirrored on the API's MQTT broker, and notifications fire
(``notifier.py``) before the answer. The permission checks follow the contract's order
(§2): existence first, then view, then the specific scope.

Writes to one device are serialized by a lock per device (this process is the only writer
of its devices): a field update reads the attribute and writes it back whole, and a value
replaces its attribute's value and current-value metadata, so two concurrent requests must
not interleave. Notifications run after the lock is released (an actuation may write to
the same device) and before the answer.

The owner and visibility of devices are cached for ``CACHE_SECONDS``: every MQTT delivery
asks whether its subscriber may view the device. The API's own writes update the cache;
a change made behind its back (an NGSI client rewriting ``owner``) is seen within that time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ngsi.client import NGSIClient
from ngsi.client.mqtt.packets import topic_name_problem
from ngsi.client.errors import NGSIClientError, NGSIConnectionError
from ngsi.release import Block

from . import devices as model
from .caller import Caller
from .errors import ApiError, bad_request, forbidden, not_found
from .history import STAMP, History, Window
from .permissions import may, owns
from .values import calibrate, current_timestamp, iso_ms

if TYPE_CHECKING:
    from .privacy import ApiPrivacy

log = logging.getLogger("waziup.api")
CACHE_SECONDS = 2.0
ATTRS = "*,dateCreated,dateModified"
Publish = Callable[[str, bytes], Awaitable[None]]


def sensor_topic(device_id: str, sensor_id: str) -> str:
    return f"devices/{device_id}/sensors/{sensor_id}/value"


def actuator_topic(device_id: str, actuator_id: str) -> str:
    return f"devices/{device_id}/actuators/{actuator_id}/value"


def _broker_error(exc: NGSIClientError) -> ApiError:
    if isinstance(exc, NGSIConnectionError) or exc.status >= 500:
        return ApiError(503, f"the context broker is not available: {exc}")
    return ApiError(exc.status if exc.status in (400, 404, 422) else 400, exc.description or exc.error)


class Backend:
    def __init__(self, broker: NGSIClient, history: History | None, *, tenant: str = "waziup",
                 clock: Callable[[], float] = time.time) -> None:
        self.broker = broker
        self.history = history
        self.tenant = {"service": tenant, "service_path": "/"}
        self.clock = clock
        self.publish: Publish | None = None  # the MQTT broker's, once it runs
        self.after_value: Callable[[str, str, dict[str, Any]], Awaitable[None]] | None = None  # notifications
        self.watched: Callable[[str, str], bool] = lambda device_id, sensor_id: True  # does one watch it?
        self._locks: dict[str, asyncio.Lock] = {}
        self._perms: dict[str, tuple[float, dict[str, Any]]] = {}
        self.privacy: ApiPrivacy | None = None  # privacy policies on what callers read (privacy.py)

    # -- reading ---------------------------------------------------------------------------

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return await self.broker.request(method, path, **self.tenant, **kwargs)
        except NGSIClientError as exc:
            raise _broker_error(exc) from None

    async def entity(self, device_id: str) -> dict[str, Any]:
        """The device's entity (404 when there is none)."""
        try:
            answer = await self.broker.request(
                "GET", f"/v2/entities/{quote(device_id, safe='')}",
                params={"type": model.ENTITY_TYPE, "attrs": ATTRS, "metadata": "*"}, **self.tenant)
        except NGSIClientError as exc:
            if exc.status == 404:
                self._perms.pop(device_id, None)
                raise not_found(f"device {device_id} not found") from None
            raise _broker_error(exc) from None
        entity = answer.json()
        self._remember(entity)
        return entity

    def _remember(self, entity: Mapping[str, Any], *, whole: bool = False) -> dict[str, Any]:
        """Cache the device's owner and visibility, and its sensors and actuators when the
        entity is ``whole`` (read with every attribute, or just created)."""
        perm = {"id": entity["id"]}
        for name in ("owner", "visibility"):
            attr = entity.get(name)
            if isinstance(attr, Mapping) and attr.get("value") is not None:
                perm[name] = attr["value"]
        if whole or "dateCreated" in entity:  # the whole device: its members are known too
            for kind in (model.SENSOR_TYPE, model.ACTUATOR_TYPE):
                perm[kind] = frozenset(model.members(entity, kind))
        self._perms[entity["id"]] = (self.clock() + CACHE_SECONDS, perm)
        return perm

    async def permission_of(self, device_id: str) -> dict[str, Any] | None:
        """{id, owner, visibility} of a device (cached), None when it does not exist."""
        cached = self._perms.get(device_id)
        if cached and cached[0] > self.clock():
            return cached[1]
        try:
            entity = await self.entity(device_id)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return self._remember(entity)

    async def viewable(self, caller: Caller, device_id: str, scope: str = "devices:view") -> dict[str, Any]:
        """The device's entity, if it exists (404) and the caller holds ``scope`` (403)."""
        entity = await self.entity(device_id)
        perm = self._remember(entity)
        if not may(caller, "devices:view", perm) or not may(caller, scope, perm):
            raise forbidden(f"{caller.username} may not {scope.split(':')[1]} device {device_id}")
        return entity

    async def readable(self, caller: Caller, device_id: str, scope: str = "devices:view") -> dict[str, Any]:
        """:meth:`viewable`, as the caller may read it (privacy policies: ``privacy.py``)."""
        return (await self.shown(caller, [await self.viewable(caller, device_id, scope)]))[0]

    async def shown(self, caller: Caller, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Device entities as the caller may read them (raw without privacy policies)."""
        if self.privacy is None or not entities:
            return entities
        return await self.privacy.entities(caller, entities)

    async def _entities(self, **params: Any) -> list[dict[str, Any]]:
        """Every device entity matching ``params``, page by page (the NGSI client's paging)."""
        try:
            return await self.broker.query(type=model.ENTITY_TYPE, **params, **self.tenant)
        except NGSIClientError as exc:
            raise _broker_error(exc) from None

    async def list(self, caller: Caller, *, q: str | None, limit: int | None, offset: int) -> list[dict[str, Any]]:
        """The devices the caller may view, matching ``q``; offset first, then limit."""
        found = await self._entities(attrs=ATTRS, metadata="*", **({"q": q} if q else {}))
        seen = [entity for entity in found if may(caller, "devices:view", self._remember(entity))]
        chosen = seen[offset:] if limit is None else seen[offset:offset + limit]
        return [model.device_json(e) for e in await self.shown(caller, chosen)]

    async def all_permissions(self) -> list[dict[str, Any]]:
        """{id, owner, visibility} of every device."""
        return [self._remember(entity) for entity in await self._entities(attrs="owner,visibility")]

    # -- devices -------------------------------------------------------------------------

    async def create(self, caller: Caller, doc: Any) -> None:
        entity = model.device_entity(doc, caller.username)
        try:
            await self.broker.request("POST", "/v2/entities", json=entity, **self.tenant)
        except NGSIClientError as exc:
            if exc.status == 422:
                raise ApiError(422, f"device {entity['id']} already exists") from None
            raise _broker_error(exc) from None
        self._remember(entity, whole=True)
        log.info("device created id=%s owner=%s", entity["id"], caller.username)

    async def delete(self, caller: Caller, device_id: str) -> None:
        async with self._lock(device_id):
            await self.viewable(caller, device_id, "devices:delete")
            await self._call("DELETE", f"/v2/entities/{quote(device_id, safe='')}",
                             params={"type": model.ENTITY_TYPE})
            self._perms.pop(device_id, None)
        if self.history is not None:
            await self.history.forget(device_id)
        log.info("device deleted id=%s by=%s", device_id, caller.username)

    async def set_field(self, caller: Caller, device_id: str, name: str, value: Any) -> None:
        attr = model.field_attr(name, value)
        async with self._lock(device_id):
            await self.viewable(caller, device_id, "devices:update")
            await self._write_attrs(device_id, {name: attr})

    async def _write_attrs(self, device_id: str, attrs: dict[str, Any], *, replace: bool = False) -> None:
        options = "overrideMetadata,forcedUpdate" if replace else "forcedUpdate"
        await self._call("POST", f"/v2/entities/{quote(device_id, safe='')}/attrs",
                         params={"type": model.ENTITY_TYPE, "options": options}, json=attrs)
        self._perms.pop(device_id, None)

    def _lock(self, device_id: str) -> asyncio.Lock:
        lock = self._locks.get(device_id)
        if lock is None:
            if len(self._locks) > 10_000:  # forget idle locks
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            lock = self._locks[device_id] = asyncio.Lock()
        return lock

    # -- sensors and actuators ------------------------------------------------------------

    async def members(self, caller: Caller, device_id: str, kind: str) -> list[dict[str, Any]]:
        entity = await self.readable(caller, device_id)
        render = model.sensor_json if kind == model.SENSOR_TYPE else model.actuator_json
        return [render(mid, attr) for mid, attr in model.members(entity, kind).items()]

    async def member(self, caller: Caller, device_id: str, kind: str, member_id: str) -> dict[str, Any]:
        entity = await self.readable(caller, device_id)
        attr = model.members(entity, kind).get(member_id)
        if attr is None:
            raise not_found(f"{_what(kind)} {member_id} not found on device {device_id}")
        return (model.sensor_json if kind == model.SENSOR_TYPE else model.actuator_json)(member_id, attr)

    async def upsert_member(self, caller: Caller, device_id: str, kind: str, doc: Any) -> None:
        """POST a sensor or actuator: a new one, or one that replaces the one of that id."""
        member_id, attr = (model.sensor_attr if kind == model.SENSOR_TYPE else model.actuator_attr)(doc)
        async with self._lock(device_id):
            entity = await self.viewable(caller, device_id, "devices:update")
            other = entity.get(member_id)
            if isinstance(other, Mapping):
                if other.get("type") != kind:
                    raise bad_request(f"{member_id!r} is already an id of another sensor or actuator of the device")
                _keep_value(other, attr)
            await self._write_attrs(device_id, {member_id: attr}, replace=True)

    async def delete_member(self, caller: Caller, device_id: str, kind: str, member_id: str) -> None:
        async with self._lock(device_id):
            entity = await self.viewable(caller, device_id, "devices:update")
            if member_id not in model.members(entity, kind):
                raise not_found(f"{_what(kind)} {member_id} not found on device {device_id}")
            await self._call("DELETE", f"/v2/entities/{quote(device_id, safe='')}/attrs/{quote(member_id, safe='')}",
                             params={"type": model.ENTITY_TYPE})
            self._perms.pop(device_id, None)
        if kind == model.SENSOR_TYPE and self.history is not None:
            await self.history.forget(device_id, member_id)

    async def set_member_field(self, caller: Caller, device_id: str, kind: str, member_id: str, name: str,
                               value: Any) -> None:
        """PUT one field of a sensor or actuator (a metadata of its attribute)."""
        async with self._lock(device_id):
            entity = await self.viewable(caller, device_id, "devices:update")
            attr = model.members(entity, kind).get(member_id)
            if attr is None:
                raise not_found(f"{_what(kind)} {member_id} not found on device {device_id}")
            metadata = dict(attr.get("metadata") or {})
            metadata[name] = {"type": "StructuredValue" if name in ("calib", "meta") else "Text", "value": value}
            await self._put_attr(device_id, member_id, {"type": kind, "value": attr.get("value"),
                                                        "metadata": metadata})

    async def _put_attr(self, device_id: str, name: str, attr: dict[str, Any]) -> None:
        """Replace one attribute whole, metadata included (Orion merges metadata otherwise,
        and a value pushed without a timestamp must not keep the previous one's)."""
        await self._call("PUT", f"/v2/entities/{quote(device_id, safe='')}/attrs/{quote(name, safe='')}",
                         params={"type": model.ENTITY_TYPE, "options": "overrideMetadata,forcedUpdate"}, json=attr)

    # -- values ----------------------------------------------------------------------------

    async def push(self, caller: Caller | None, device_id: str, sensor_id: str, value: dict[str, Any], *,
                   publish: bool = True) -> None:
        """Store a sensor value (contract §3): the sensor's current value in the broker, a
        datapoint in the history, the MQTT mirror (``publish``: not for a value that came
        over MQTT, which the MQTT broker relays itself), then the notifications.
        ``caller`` None: the platform itself (no permission check).

        The hot path of gateways: the device's owner, visibility and sensors come from the
        cache (read again when it does not know the sensor), the broker gets one update of
        the attribute's value and current-value metadata (merged with the sensor's other
        metadata; a value without a timestamp writes a null one over the last), and the
        device is read whole only when a notification watches this sensor."""
        async with self._lock(device_id):
            await self._member_write(caller, device_id, model.SENSOR_TYPE, sensor_id, {
                "type": model.SENSOR_TYPE, "value": value["value"], "metadata": {
                    "timestamp": {"type": "Text", "value": value["timestamp"]} if "timestamp" in value
                    else {"type": "None", "value": None},
                    "date_received": {"type": "DateTime", "value": iso_ms(value["date_received"])}}})
            if self.history is not None:
                await self.history.append(device_id, sensor_id, value)
        if publish and self.publish is not None:
            shown: dict[str, Any] = {"value": value["value"]}
            if "timestamp" in value:
                shown["timestamp"] = current_timestamp(value["timestamp"])
            await self._mirror(sensor_topic(device_id, sensor_id), json.dumps(shown).encode())
        if self.after_value is not None and self.watched(device_id, sensor_id):
            current = await self.current_values(device_id) or {}
            await self.after_value(device_id, sensor_id, {**current, sensor_id: value["value"]})

    async def actuate(self, caller: Caller | None, device_id: str, actuator_id: str, value: Any, *,
                      publish: bool = True) -> None:
        """Set an actuator's value and mirror it on MQTT. The reference checks nothing here;
        we ask devices-data:create, which its clients pass too (contract §3)."""
        async with self._lock(device_id):
            await self._member_write(caller, device_id, model.ACTUATOR_TYPE, actuator_id, {
                "type": model.ACTUATOR_TYPE, "value": value,
                "metadata": {"has_value": {"type": "Boolean", "value": True}}})
        if publish and self.publish is not None:
            await self._mirror(actuator_topic(device_id, actuator_id), json.dumps(value).encode())

    async def _member_write(self, caller: Caller | None, device_id: str, kind: str, member_id: str,
                            attr: dict[str, Any]) -> None:
        """Update a sensor's or actuator's value (metadata merged), after checking that the
        device and the member exist and ``caller`` holds devices-data:create."""
        facts = await self._facts(device_id)
        if caller is not None and not (may(caller, "devices:view", facts) and may(caller, "devices-data:create", facts)):
            raise forbidden(f"{caller.username} may not create data on device {device_id}")
        if member_id not in facts.get(kind, ()):
            facts = await self._facts(device_id, fresh=True)  # made since the cache read it?
            if member_id not in facts.get(kind, ()):
                raise not_found(f"{_what(kind)} {member_id} not found on device {device_id}")
        try:
            await self.broker.request(
                "PATCH", f"/v2/entities/{quote(device_id, safe='')}/attrs",
                params={"type": model.ENTITY_TYPE, "options": "forcedUpdate"}, json={member_id: attr}, **self.tenant)
        except NGSIClientError as exc:
            self._perms.pop(device_id, None)
            if exc.status in (404, 422):  # gone behind the cache's back
                raise not_found(f"{_what(kind)} {member_id} not found on device {device_id}") from None
            raise _broker_error(exc) from None

    async def _facts(self, device_id: str, *, fresh: bool = False) -> dict[str, Any]:
        """What a write checks: the device's owner, visibility, sensors and actuators, from
        the cache unless ``fresh`` or unknown there (404 when there is no device)."""
        cached = self._perms.get(device_id)
        if not fresh and cached and cached[0] > self.clock() and model.SENSOR_TYPE in cached[1]:
            return cached[1]
        await self.entity(device_id)
        return self._perms[device_id][1]

    async def _mirror(self, topic: str, payload: bytes) -> None:
        """Publish a stored value on MQTT (§6). An id may hold ``+`` (Orion's rules allow it),
        which no MQTT topic name may: such a value is stored but cannot be mirrored, and
        raising here would answer 500 after storing it and skip its notifications."""
        assert self.publish is not None
        problem = topic_name_problem(topic)
        if problem:
            log.info("value not published on MQTT topic=%s reason=%s", topic, problem)
            return
        await self.publish(topic, payload)

    async def datapoints(self, caller: Caller, window: Window, *, calibrated: bool = True) -> list[dict[str, Any]]:
        """``/sensors_data`` and ``…/values``: devices-data:view on each device, then its
        datapoints, calibrated (``calibrated``) and then released to the caller (privacy
        policies: the sensors a policy drops are not listed, the values go through its
        steps; the caller's own devices as they are)."""
        if self.history is None:
            raise bad_request("no history service is configured (-historyURL)")
        entities: dict[str, dict[str, Any]] = {}
        for device_id in window.devices:
            if device_id not in entities:
                entities[device_id] = await self.viewable(caller, device_id, "devices-data:view")
        shown = await self.shown(caller, list(entities.values()))
        sensors_of = {device_id: list(model.members(entity, model.SENSOR_TYPE))
                      for device_id, entity in zip(entities, shown, strict=True)}
        owned = {device_id for device_id, entity in entities.items() if owns(caller, self._remember(entity))}

        async def prepare(blocks: list[Block]) -> list[Block]:
            if calibrated:
                for block in blocks:
                    _calibrate(block, entities.get(block.entity_id))
            if self.privacy is not None:
                blocks = await self.privacy.history(caller, blocks, owned)
            return blocks

        return await self.history.datapoints(window, sensors_of, prepare=prepare)

    async def current_values(self, device_id: str) -> dict[str, Any] | None:
        """The device's current sensor values, None when there is no such device. An id no
        device can have (a notification's condition may name anything) is no device: asking
        the broker would get a 400 that failed the notification's creation after storing it."""
        if model.id_problem(device_id) is not None:
            return None
        try:
            return model.sensor_values(await self.entity(device_id))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def now_ms(self) -> int:
        return int(self.clock() * 1000)


def _keep_value(old: Mapping[str, Any], new: dict[str, Any]) -> None:
    """A replaced sensor or actuator keeps its current value (gateways post their sensors
    again on every sync; that must not lose what they pushed), unless the new one sets one."""
    if new["type"] == model.ACTUATOR_TYPE and "has_value" in new["metadata"]:
        return
    new["value"] = old.get("value")
    for name in ("timestamp", "date_received", "has_value"):
        if name in (old.get("metadata") or {}):
            new["metadata"][name] = old["metadata"][name]


def _calibrate(block: Block, entity: Mapping[str, Any] | None) -> None:
    """A history block's values through their sensors' calibrations (in place)."""
    for sensor_id, attr in model.members(entity or {}, model.SENSOR_TYPE).items():
        calib = (attr.get("metadata") or {}).get("calib")
        column = block.values.get(sensor_id)
        if isinstance(calib, Mapping) and calib.get("value") and column is not None and not sensor_id.endswith(STAMP):
            block.values[sensor_id] = [calibrate(value, calib["value"]) for value in column]


def _what(kind: str) -> str:
    return "sensor" if kind == model.SENSOR_TYPE else "actuator"
