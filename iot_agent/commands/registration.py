"""Making the broker send a device's commands to the agent, and undoing it.

* ``cmdMode: legacy``: one registration of the device's commands and lazy attributes,
  provider URL ``IOTA_PROVIDER_URL`` + ``/v2``; the broker forwards a command update as
  ``POST <provider>/op/update``.
* ``cmdMode: notification``: the entity, every command ``null``, and one subscription per
  command notifying ``IOTA_PROVIDER_URL`` + ``/notify``; lazy attributes are still
  registered.

The ids made are kept in the agent's state (``provisioning.state`` links) so deleting the
device deletes exactly those, even after a restart; a device provisioned before the
state kept them loses any registration or subscription of ours naming its entity.
The request bodies are built by pure functions; ``Registrar`` only sends them.
"""

from __future__ import annotations

import logging
from typing import Any

from ngsi.client import NGSIClientError

from ..config import Config
from ..device import NOTIFICATION, attribute_names, cmd_mode, entity_of, lazy_type, tenant_of
from ..provisioning.state import REGISTRATION, SUBSCRIPTION, AgentState
from ..provisioning.store import device_key
from ..south.ingest import Southbound

log = logging.getLogger("waziup.iot_agent.commands")

Doc = dict[str, Any]


def registration_body(entity_id: str, entity_type: str, attrs: list[str], provider_url: str) -> Doc:
    """The agent as context provider of ``attrs`` of one entity."""
    return {
        "dataProvided": {"entities": [{"id": entity_id, "type": entity_type}], "attrs": attrs},
        "provider": {"http": {"url": provider_url}},
    }


def command_entity(device: Doc, group: Doc | None, entity_id: str, entity_type: str, commands: list[str]) -> Doc:
    """The entity of a notification-mode device as provisioning creates it: commands at null."""
    entity: Doc = {"id": entity_id, "type": entity_type}
    for name in commands:
        entity[name] = {"type": lazy_type(device, group, name, "commands", "command"), "value": None}
    return entity


def subscription_body(entity_id: str, entity_type: str, name: str, notify_url: str) -> Doc:
    """A subscription to one command of one entity, notifying the agent."""
    return {
        "description": f"IoT agent: command {name} of {entity_id}",
        "subject": {
            "entities": [{"id": entity_id, "type": entity_type}],
            # entityUpdate: the same value sent twice is two commands, as with forwarding
            "condition": {"attrs": [name], "alterationTypes": ["entityUpdate"]},
        },
        "notification": {"http": {"url": notify_url}, "attrs": [name], "onlyChangedAttrs": True},
    }


def links_of_entity(
    entity_id: str, registrations: list[Doc], subscriptions: list[Doc], provider_url: str, notify_url: str
) -> list[tuple[str, str]]:
    """(kind, id) of the registrations and subscriptions of ours that name the entity."""
    found: list[tuple[str, str]] = []
    for reg in registrations:
        provided = reg.get("dataProvided", {}).get("entities", [])
        url = reg.get("provider", {}).get("http", {}).get("url")
        if url == provider_url and any(e.get("id") == entity_id for e in provided):
            found.append((REGISTRATION, reg["id"]))
    for sub in subscriptions:
        subject = sub.get("subject", {}).get("entities", [])
        url = sub.get("notification", {}).get("http", {}).get("url")
        if url == notify_url and any(e.get("id") == entity_id for e in subject):
            found.append((SUBSCRIPTION, sub["id"]))
    return found


class Registrar:
    """Registrations and subscriptions of devices in their broker (see the module doc)."""

    def __init__(self, south: Southbound, config: Config, state: AgentState) -> None:
        self.south = south
        self.config = config
        self.state = state

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
        body = registration_body(entity_id, entity_type, attrs, self.provider_url())
        client = self.south.client_for(group)
        try:
            reg_id = await client.create_registration(body, **tenant_of(device))
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
        tenant = tenant_of(device)
        entity = command_entity(device, group, entity_id, entity_type, commands)
        try:
            await client.request("POST", "/v2/entities", params={"options": "upsert"}, json=entity, **tenant)
        except NGSIClientError as exc:
            log.warning("could not create the entity %s of a notification-mode device: %s", entity_id, exc)
        ids = []
        for name in commands:
            body = subscription_body(entity_id, entity_type, name, self.notify_url())
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
        tenant = tenant_of(device)
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
        tenant = tenant_of(device)
        registrations: list[Doc] = []
        subscriptions: list[Doc] = []
        try:
            registrations = await client.list_registrations(**tenant)
            subscriptions = await client.list_subscriptions(**tenant)
        except NGSIClientError as exc:  # what was listed before the failure still counts
            log.warning("could not list registrations and subscriptions: %s", exc)
        return links_of_entity(entity_id, registrations, subscriptions, self.provider_url(), self.notify_url())
