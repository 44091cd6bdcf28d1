"""Commands and lazy attributes, as iotagent-node-lib runs them (``cmdMode`` legacy and
notification).

* ``cmdMode: legacy`` (the default, ``IOTA_CMD_MODE``; device > group > agent). Provisioning
  a device with ``commands`` or ``lazy`` attributes (its own or its group's) registers the
  agent as their context provider: ``POST /v2/registrations`` with the device's entity and
  those names, provider URL ``IOTA_PROVIDER_URL`` + ``/v2``. The broker forwards a
  ``PUT/PATCH`` of a command attribute as ``POST <provider>/op/update``.
* ``cmdMode: notification``. Provisioning creates the entity at once, every command
  attribute ``null``, and subscribes the agent to each command: ``POST /v2/subscriptions``
  with condition attrs ``[cmd]`` and URL ``IOTA_PROVIDER_URL`` + ``/notify``. A ``PUT`` of
  the command updates the entity, and the broker notifies the agent. Lazy attributes are
  still registered. ``advancedNotification`` is a draft in node-lib, not implemented
  there: such devices run as legacy ones.
* Either way the agent writes the command to its store (``provisioning.state``), answers
  2xx, and then, outside the broker's request, writes ``<cmd>_status`` PENDING and delivers:

  - MQTT: publish ``dev@cmd|value`` (UL) or ``{"cmd": value}`` (JSON) on
    ``/<apikey>/<device>/cmd``; the device answers on ``.../cmdexe``;
  - HTTP push (device ``endpoint``): POST the same payload; the response is the result;
  - HTTP poll (no endpoint): kept until the device asks with ``getCmd=1``, then DELIVERED;
  - LoRaWAN: a downlink through the network server (``south.lora``).

* A result sets ``<cmd>_status`` OK (or ERROR) and ``<cmd>_info``; a poll command not
  picked up within ``IOTA_POLLING_EXPIRATION`` ms ends ERROR / ``EXPIRED``.
  Both are written with ``POST /v2/op/update`` ``append``; ``<cmd>`` itself never changes.
* A command stays in the store until it ends (pushes: until handed to the transport), so
  after a restart, even a kill -9, poll commands wait for their device again and pushes
  not yet made are made (``start``).
* Deleting a device deletes its registrations and subscriptions (ids kept in the store;
  without them, any of ours naming its entity).
* ``/v2/op/query`` answers lazy attributes: the agents (UL, JSON) have no device to ask,
  so, like node-lib without a query handler, they come back with an empty value.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ngsi.client import NGSIClientError

from .codecs import jsonmeasure, ul
from .config import Config
from .errors import CommandNotFound, DeviceNotFound, IoTAError, ParseError, WrongSyntax
from .provisioning import model
from .provisioning.state import REGISTRATION, SUBSCRIPTION, AgentState, StoredCommand
from .provisioning.store import DeviceKey, device_key
from .south.measures import JSON, UL, Southbound, apikey_of, entity_of, payload_format

log = logging.getLogger("waziup.iot_agent.commands")

Doc = dict[str, Any]
# (device, group, command, value) -> None: a transport's delivery of a pushed command.
Deliver = Callable[[Doc, Doc | None, str, Any], Awaitable[None]]

PENDING, DELIVERED, OK, ERROR = "PENDING", "DELIVERED", "OK", "ERROR"
EXPIRED = "EXPIRED"
STATUS_TYPE, INFO_TYPE = "commandStatus", "commandResult"
LEGACY, NOTIFICATION = "legacy", "notification"
POLL = "http-poll"
# After a restart, how long a push that cannot go out yet (MQTT still connecting) is retried.
RESUME_RETRY_SECONDS = 15.0


@dataclass
class PollCommand:
    name: str
    value: Any
    created: float
    delivered: bool = False
    id: str = ""


@dataclass
class _DeviceQueue:
    device: Doc
    group: Doc | None
    commands: dict[str, PollCommand] = field(default_factory=dict)


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


def command_payload(device: Doc, group: Doc | None, name: str, value: Any) -> bytes:
    """What the device receives: ``dev@cmd|value`` (UL) or ``{"cmd": value}`` (JSON)."""
    if payload_format(device, group) == JSON:
        return orjson.dumps(jsonmeasure.format_command(name, value))
    return ul.format_command(str(device["device_id"]), name, value).encode()


def parse_results(device: Doc, group: Doc | None, payload: bytes | str) -> list[tuple[str, Any]]:
    """(command, result) pairs of a device's answer, UL or JSON (sniffed when unknown)."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, (bytes, bytearray)) else payload
    fmt = payload_format(device, group)
    if fmt is None:
        fmt = JSON if text.lstrip().startswith("{") else UL
    if fmt == JSON:
        return jsonmeasure.parse_command_results(text)
    results = []
    for part in text.split("#"):
        _, name, result = ul.parse_command_result(part)
        results.append((name, result))
    return results


class Commands:
    """Registrations, subscriptions, forwarded updates, delivery and results (see the module doc)."""

    def __init__(self, south: Southbound, config: Config) -> None:
        self.south = south
        self.config = config
        self.push: dict[str, Deliver] = {}  # "mqtt", "lora" -> delivery, set by those transports
        self.queues: dict[DeviceKey, _DeviceQueue] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._daemon: asyncio.Task[None] | None = None
        # poll command id -> set once its PENDING is written (DELIVERED must come after it)
        self._pending_written: dict[str, asyncio.Event] = {}

    @property
    def state(self) -> AgentState:
        return self.south.registry.state

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Take back the commands stored by an earlier run (the registry is open): poll
        commands are queued before this returns, so a device polling right after the
        restart gets them; pushes are retried in the background."""
        await self.resume()
        if self.config.polling_expiration > 0:
            self._daemon = asyncio.create_task(self._expire_loop())

    async def stop(self) -> None:
        if self._daemon is not None:
            self._daemon.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *([self._daemon] if self._daemon else []), return_exceptions=True)
        self._tasks.clear()

    def spawn(self, coroutine: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await coroutine
            except Exception:
                log.exception("command task failed")

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait for the background work started so far (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def resume(self) -> None:
        stored = self.state.load_commands()
        gone: list[str] = []
        for command in stored:
            service, subservice, device_id, apikey = command.key
            found = await self.south.registry.find_devices(
                service=service, subservice=subservice, device_id=device_id, apikey=apikey, limit=1
            )
            if not found:
                gone.append(command.id)
                continue
            device = found[0]
            group = await self.south.group_for(device)
            if self.transport_of(device, group) == POLL:
                self._queue(device, group, command)
            else:
                self.spawn(self.execute(device, group, command, retry_for=RESUME_RETRY_SECONDS))
        self.state.drop_commands(gone)
        if stored:
            log.info("resumed %d stored command(s), %d of deleted devices dropped", len(stored) - len(gone), len(gone))

    # -- registrations and subscriptions ------------------------------------------------------

    async def on_provisioning(self, event: str, old: Doc | None, new: Doc | None) -> None:
        """Provisioning listener: (un)register a device's commands and lazy attributes."""
        if event != "device":
            return
        try:
            if old is not None:
                await self.unregister(old)
                if new is None or device_key(new) != device_key(old):
                    self.forget(old)
            if new is not None:
                group = await self.south.group_for(new)
                queue = self.queues.get(device_key(new))
                if queue is not None:
                    queue.device, queue.group = new, group
                await self.register(new, group)
        except Exception:
            log.exception("context provider registration failed")

    async def on_autoprovision(self, device: Doc, group: Doc | None) -> None:
        await self.register(device, group)

    def forget(self, device: Doc) -> None:
        """A deleted device: its waiting commands and pre-processor state go."""
        key = device_key(device)
        self.queues.pop(key, None)
        self.state.forget_device(key)
        states = getattr(self.south, "_states", None)
        if isinstance(states, dict):
            states.pop(key, None)

    def provider_url(self) -> str:
        return self.config.provider_url.rstrip("/") + "/v2"

    def notify_url(self) -> str:
        return self.config.provider_url.rstrip("/") + "/notify"

    async def register(self, device: Doc, group: Doc | None) -> str | None:
        """Legacy: one registration of commands and lazy attributes. Notification: the entity
        with its commands at null, one subscription per command, and a registration of the
        lazy attributes if any. Returns the registration id (None when none was made)."""
        commands = attribute_names(device, group, "commands")
        lazy = attribute_names(device, group, "lazy")
        notification = cmd_mode(device, group, self.config.cmd_mode) == NOTIFICATION
        if notification and commands:
            await self._subscribe(device, group, commands)
        attrs = lazy if notification else commands + lazy
        if not attrs:
            return None
        entity_id, entity_type = entity_of(device, group, self.config)
        body = {
            "dataProvided": {"entities": [{"id": entity_id, "type": entity_type}], "attrs": attrs},
            "provider": {"http": {"url": self.provider_url()}},
        }
        client = self.south.client_for(group)
        try:
            reg_id = await client.create_registration(body, **_tenant(device))
        except NGSIClientError as exc:
            log.warning("could not register %s as context provider: %s", entity_id, exc)
            return None
        self.state.add_link(device_key(device), REGISTRATION, reg_id)
        log.info("registered %s %s as provider of %s (%s)", entity_id, entity_type, attrs, reg_id)
        return reg_id

    async def _subscribe(self, device: Doc, group: Doc | None, commands: list[str]) -> list[str]:
        """cmdMode notification: create the entity (commands null), subscribe to each command."""
        entity_id, entity_type = entity_of(device, group, self.config)
        client = self.south.client_for(group)
        tenant = _tenant(device)
        entity: Doc = {"id": entity_id, "type": entity_type}
        for name in commands:
            entity[name] = {"type": lazy_type(device, group, name, "commands", "command"), "value": None}
        try:
            await client.request("POST", "/v2/entities", params={"options": "upsert"}, json=entity, **tenant)
        except NGSIClientError as exc:
            log.warning("could not create the entity %s of a notification-mode device: %s", entity_id, exc)
        ids = []
        for name in commands:
            body = {
                "description": f"IoT agent: command {name} of {entity_id}",
                "subject": {
                    "entities": [{"id": entity_id, "type": entity_type}],
                    # entityUpdate: the same value sent twice is two commands, as with forwarding
                    "condition": {"attrs": [name], "alterationTypes": ["entityUpdate"]},
                },
                "notification": {"http": {"url": self.notify_url()}, "attrs": [name], "onlyChangedAttrs": True},
            }
            try:
                sub_id = await client.create_subscription(body, **tenant)
            except NGSIClientError as exc:
                log.warning("could not subscribe to command %s of %s: %s", name, entity_id, exc)
                continue
            self.state.add_link(device_key(device), SUBSCRIPTION, sub_id)
            ids.append(sub_id)
        log.info("subscribed to commands %s of %s %s (%s)", commands, entity_id, entity_type, ids)
        return ids

    async def unregister(self, device: Doc) -> None:
        """Delete the device's registrations and subscriptions: those recorded in the store,
        else any of ours naming its entity (a device provisioned before the store kept them)."""
        group = await self.south.group_for(device)
        client = self.south.client_for(group)
        tenant = _tenant(device)
        key = device_key(device)
        links = self.state.links(key)
        if not links and (attribute_names(device, group, "commands") or attribute_names(device, group, "lazy")):
            links = await self._find_links(device, group)
        for kind, ident in links:
            try:
                if kind == SUBSCRIPTION:
                    await client.delete_subscription(ident, **tenant)
                else:
                    await client.delete_registration(ident, **tenant)
            except NGSIClientError as exc:
                log.warning("could not delete %s %s: %s", kind, ident, exc)
        self.state.drop_links(key)

    async def _find_links(self, device: Doc, group: Doc | None) -> list[tuple[str, str]]:
        entity_id, _ = entity_of(device, group, self.config)
        client = self.south.client_for(group)
        tenant = _tenant(device)
        found: list[tuple[str, str]] = []
        try:
            for reg in await client.list_registrations(**tenant):
                provided = reg.get("dataProvided", {}).get("entities", [])
                url = reg.get("provider", {}).get("http", {}).get("url")
                if url == self.provider_url() and any(e.get("id") == entity_id for e in provided):
                    found.append((REGISTRATION, reg["id"]))
            for sub in await client.list_subscriptions(**tenant):
                subject = sub.get("subject", {}).get("entities", [])
                url = sub.get("notification", {}).get("http", {}).get("url")
                if url == self.notify_url() and any(e.get("id") == entity_id for e in subject):
                    found.append((SUBSCRIPTION, sub["id"]))
        except NGSIClientError as exc:
            log.warning("could not list registrations and subscriptions: %s", exc)
        return found

    # -- north: the broker forwards, or notifies ---------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v2/op/update", self._op_update, methods=["POST"]),
            Route("/v2/op/query", self._op_query, methods=["POST"]),
            Route("/notify", self._notify, methods=["POST"]),
        ]

    async def _device_of_entity(self, request: Request, entity: Any) -> tuple[Doc, Doc | None]:
        if not isinstance(entity, dict) or not isinstance(entity.get("id"), str):
            raise WrongSyntax("entities must be objects with an id")
        service = (request.headers.get("fiware-service") or "").lower()
        subservice = request.headers.get("fiware-servicepath") or "/"
        candidates = await self.south.registry.find_devices(service=service or None)
        for device in candidates:
            if device.get("service_path", "/") not in (subservice, "") and subservice != "/#":
                continue
            group = await self.south.group_for(device)
            entity_id, entity_type = entity_of(device, group, self.config)
            if entity_id == entity["id"] and entity.get("type") in (None, entity_type):
                return device, group
        raise DeviceNotFound(str(entity["id"]))

    async def _op_update(self, request: Request) -> Response:
        body = _body(await request.body())
        entities = body.get("entities") if isinstance(body, dict) else None
        if not isinstance(entities, list):
            raise WrongSyntax("expected {actionType, entities}")
        work: list[tuple[Doc, Doc | None, str, Any]] = []
        for entity in entities:
            device, group = await self._device_of_entity(request, entity)
            commands = attribute_names(device, group, "commands")
            lazy = attribute_names(device, group, "lazy")
            for name, attr in entity.items():
                if name in ("id", "type"):
                    continue
                if name in commands:
                    work.append((device, group, name, _value(attr)))
                elif name not in lazy:
                    raise CommandNotFound(name)
        self.accept(work)
        return Response(status_code=204)

    async def _notify(self, request: Request) -> Response:
        """A notification of a subscription made for ``cmdMode: notification``: every command
        attribute it carries is a command (a ``null`` one is the entity as provisioning made it)."""
        body = _body(await request.body())
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise WrongSyntax("expected a notification {subscriptionId, data}")
        work: list[tuple[Doc, Doc | None, str, Any]] = []
        for entity in data:
            device, group = await self._device_of_entity(request, entity)
            commands = attribute_names(device, group, "commands")
            for name, attr in entity.items():
                if name in commands and _value(attr) is not None:
                    work.append((device, group, name, _value(attr)))
        self.accept(work)
        return Response(status_code=204)

    def accept(self, work: list[tuple[Doc, Doc | None, str, Any]]) -> None:
        """Store the commands (durably: the broker gets its 2xx after this), then run them."""
        now = time.time()
        stored = [
            (device, group, StoredCommand(device_key(device), name, value, now, self.transport_of(device, group)))
            for device, group, name, value in work
        ]
        self.state.put_commands([command for _, _, command in stored])
        for device, group, command in stored:
            if command.how == POLL:  # pollable as soon as the broker has its answer
                self._pending_written[command.id] = asyncio.Event()
                self._queue(device, group, command)
            self.spawn(self.execute(device, group, command))

    async def _op_query(self, request: Request) -> Response:
        body = _body(await request.body())
        wanted = body.get("entities") if isinstance(body, dict) else None
        attrs = body.get("attrs") if isinstance(body, dict) else None
        if not isinstance(wanted, list):
            raise WrongSyntax("expected {entities, attrs}")
        out = []
        for entity in wanted:
            device, group = await self._device_of_entity(request, entity)
            entity_id, entity_type = entity_of(device, group, self.config)
            names = attrs if isinstance(attrs, list) and attrs else attribute_names(device, group, "lazy")
            doc: Doc = {"id": entity_id, "type": entity_type}
            for name in names:
                if isinstance(name, str):
                    doc[name] = {"type": lazy_type(device, group, name), "value": "", "metadata": {}}
            out.append(doc)
        return Response(orjson.dumps(out), media_type="application/json")

    # -- execution ---------------------------------------------------------------------------

    def transport_of(self, device: Doc, group: Doc | None) -> str:
        """``lora``, ``mqtt``, ``http-push`` or ``http-poll``."""
        if _lorawan(device) or _lorawan(group):
            return "lora"
        transport = str(device.get("transport") or (group or {}).get("transport") or "").upper()
        if transport == "HTTP" or (not transport and (device.get("endpoint") or device.get("polling") is True)):
            return POLL if model.is_polling(device, group) else "http-push"
        if not transport:
            transport = self.config.default_transport.upper()
        if transport == "HTTP":
            return POLL if model.is_polling(device, group) else "http-push"
        return "mqtt"

    def _queue(self, device: Doc, group: Doc | None, command: StoredCommand) -> None:
        queue = self.queues.setdefault(device_key(device), _DeviceQueue(device, group))
        queue.commands[command.name] = PollCommand(command.name, command.value, command.created, command.delivered, command.id)

    async def execute(self, device: Doc, group: Doc | None, command: StoredCommand, *, retry_for: float = 0) -> None:
        """PENDING, then the delivery (a poll command is already queued: it only waits).
        ``retry_for`` seconds: a push that fails is tried again (after a restart, MQTT may
        still be connecting)."""
        name, value = command.name, command.value
        try:
            await self.set_status(device, group, name, PENDING)
        finally:
            written = self._pending_written.pop(command.id, None)
            if written is not None:
                written.set()
        how = self.transport_of(device, group)
        if how == POLL:
            return
        deadline = time.monotonic() + retry_for
        try:
            while True:
                try:
                    if how == "http-push":
                        await self._http_push(device, group, name, value)
                    else:
                        deliver = self.push.get(how)
                        if deliver is None:
                            raise IoTAError(f"no {how} transport to deliver command {name}")
                        await deliver(device, group, name, value)
                    return
                except Exception as exc:
                    if time.monotonic() < deadline:
                        await asyncio.sleep(0.5)
                        continue
                    log.warning("command %s of %s failed: %s", name, device.get("device_id"), exc)
                    await self.set_status(device, group, name, ERROR, str(exc))
                    return
        finally:
            self.state.drop_commands([command.id])

    async def _http_push(self, device: Doc, group: Doc | None, name: str, value: Any) -> None:
        endpoint = device.get("endpoint") or (group or {}).get("endpoint")
        payload = command_payload(device, group, name, value)
        is_json = payload_format(device, group) == JSON
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                str(endpoint),
                content=payload,
                headers={"content-type": "application/json" if is_json else "text/plain", **_fiware_headers(device)},
            )
        if response.status_code >= 300:
            await self.set_status(device, group, name, ERROR, f"device answered {response.status_code}")
            return
        try:
            results = parse_results(device, group, response.content) if response.content else [(name, "")]
        except ParseError:
            results = [(name, response.text)]
        for cmd, result in results:
            await self.set_status(device, group, cmd, OK, result)

    def poll(self, device: Doc) -> list[PollCommand]:
        """The device's commands waiting to be polled; they become DELIVERED (status written
        by the caller through ``delivered``)."""
        queue = self.queues.get(device_key(device))
        if queue is None:
            return []
        fresh = [c for c in queue.commands.values() if not c.delivered]
        for command in fresh:
            command.delivered = True
        self.state.set_delivered([c.id for c in fresh])
        return fresh

    async def delivered(self, device: Doc, group: Doc | None, commands: list[PollCommand]) -> None:
        for command in commands:
            written = self._pending_written.get(command.id)
            if written is not None:  # polled before its PENDING reached the broker
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(written.wait(), 10)
            await self.set_status(device, group, command.name, DELIVERED)

    async def result(self, device: Doc, group: Doc | None, name: str, result: Any, status: str = OK) -> None:
        """A device's answer to a command (cmdexe, /iot/json/commands, a UL result measure)."""
        if name not in attribute_names(device, group, "commands"):
            raise CommandNotFound(name)
        queue = self.queues.get(device_key(device))
        if queue is not None:
            done = queue.commands.pop(name, None)
            if done is not None:
                self.state.drop_commands([done.id])
        await self.set_status(device, group, name, status, result)

    async def set_status(self, device: Doc, group: Doc | None, name: str, status: str, info: Any = None) -> None:
        entity_id, entity_type = entity_of(device, group, self.config)
        entity: Doc = {"id": entity_id, "type": entity_type, f"{name}_status": {"type": STATUS_TYPE, "value": status}}
        if status != PENDING and status != DELIVERED:
            entity[f"{name}_info"] = {"type": INFO_TYPE, "value": info if isinstance(info, (str, int, float, bool, dict, list)) else json.dumps(info)}
        try:
            await self.south.client_for(group).op_update("append", [entity], **_tenant(device))
        except NGSIClientError as exc:
            log.warning("could not write %s_status %s of %s: %s", name, status, entity_id, exc)

    async def expire(self, now: float | None = None) -> None:
        """Poll commands older than IOTA_POLLING_EXPIRATION end ERROR / EXPIRED."""
        limit = self.config.polling_expiration / 1000
        if limit <= 0:
            return
        now = time.time() if now is None else now
        for key, queue in list(self.queues.items()):
            for name, command in list(queue.commands.items()):
                if now - command.created >= limit:
                    queue.commands.pop(name, None)
                    self.state.drop_commands([command.id])
                    await self.set_status(queue.device, queue.group, name, ERROR, EXPIRED)
            if not queue.commands:
                self.queues.pop(key, None)

    async def _expire_loop(self) -> None:
        period = (self.config.polling_daemon_frequency or self.config.polling_expiration) / 1000
        while True:
            await asyncio.sleep(max(period, 0.05))
            try:
                await self.expire()
            except Exception:
                log.exception("command expiry failed")


def _value(attr: Any) -> Any:
    """The value of an NGSI attribute, normalized (``{"value": ...}``) or keyValues."""
    return attr.get("value") if isinstance(attr, dict) else attr


def _lorawan(doc: Doc | None) -> bool:
    from .south.lora import lorawan_config

    return lorawan_config(doc) is not None


def _tenant(device: Doc) -> dict[str, Any]:
    return {"service": device.get("service") or None, "service_path": device.get("service_path") or None}


def _fiware_headers(device: Doc) -> dict[str, str]:
    headers = {}
    if device.get("service"):
        headers["fiware-service"] = str(device["service"])
    if device.get("service_path"):
        headers["fiware-servicepath"] = str(device["service_path"])
    return headers


def _body(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise WrongSyntax("the body is not valid JSON") from None


__all__ = ["Commands", "PollCommand", "attribute_names", "cmd_mode", "command_payload", "parse_results", "apikey_of"]
