"""The API's parts put together: devices (``backend``), notifications and socials
(``notifier``), accounts (``accounts``, the identity manager), and the gateways and projects
kept in the API's own store (``store``), with the MQTT broker's view of who is connected.
Routes (``routes/``) and the MQTT hooks (``mqtt_hooks``) call this object only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from . import devices as model
from .accounts import Accounts, AccountsError
from .backend import Backend
from .caller import GUEST, Caller
from .errors import ApiError, bad_request, forbidden, not_found
from .notifications import new_id
from .notifier import Notifier
from .permissions import may, owns
from .store import Store
from .values import iso_ms

log = logging.getLogger("waziup.api")


class WaziupApi:
    def __init__(self, backend: Backend, store: Store, accounts: Accounts | None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self.store = store
        self.accounts = accounts
        self.clock = clock
        self.notifier = Notifier(store, backend, users=self.user_by_username, clock=clock)
        backend.after_value = self.notifier.on_value
        backend.watched = self.notifier.watching
        self.connected: set[str] = set()  # MQTT client ids connected now (gateway presence)
        # Gateways and projects are updated by reading the document and writing it back
        # whole: two concurrent updates (a PUT name and a heartbeat or an MQTT connection)
        # would each write back what they read and undo the other, and an update racing a
        # DELETE would write the document back. One lock for those read-modify-writes.
        self._docs_lock = asyncio.Lock()

    async def open(self) -> None:
        await self.notifier.load()

    # -- accounts --------------------------------------------------------------------------

    async def accounts_caller(self, authorization: str | None) -> Caller:
        if self.accounts is None or not authorization:
            return GUEST
        return await self.accounts.caller(authorization)

    def _accounts(self) -> Accounts:
        if self.accounts is None:
            raise ApiError(503, "no identity manager is configured (-idmURL): accounts are not available")
        return self.accounts

    async def token(self, body: Any) -> str:
        if not isinstance(body, dict) or not isinstance(body.get("username"), str) \
                or not isinstance(body.get("password"), str):
            raise bad_request('the body must be {"username": "...", "password": "..."}')
        token = await self._accounts().token(body["username"], body["password"])
        if token is None:
            raise ApiError(401, "wrong username or password")
        return token

    async def user_by_username(self, username: str) -> dict[str, Any] | None:
        if self.accounts is None:
            return None
        return await self.accounts.user_by_username(username)

    async def users(self, caller: Caller, *, limit: int | None, offset: int, username: str | None) -> list[dict[str, Any]]:
        found = await self._accounts().users(limit=limit, offset=offset, username=username)
        return [_visible_user(caller, u) for u in found]

    async def user(self, caller: Caller, user_id: str) -> dict[str, Any]:
        found = await self._accounts().user(user_id)
        if found is None:
            raise not_found(f"user {user_id} not found")
        return _visible_user(caller, found)

    async def me(self, caller: Caller) -> dict[str, Any]:
        if caller.guest or not caller.user_id:
            return {"id": "guest", "username": caller.username, "admin": False}
        return await self.user(caller, caller.user_id)

    async def create_user(self, caller: Caller, body: Any) -> str:
        if not caller.admin:
            raise forbidden("only the administrator may create users")
        try:
            return await self._accounts().create_user(body)
        except AccountsError as exc:
            raise ApiError(exc.status, exc.text) from None

    async def set_sms_credit(self, caller: Caller, user_id: str, credit: Any) -> None:
        if not caller.admin:
            raise forbidden("only the administrator may change SMS credits")
        if isinstance(credit, str) and credit.strip().lstrip("-").isdigit():
            credit = int(credit)
        if isinstance(credit, bool) or not isinstance(credit, int):
            raise bad_request("sms_credit must be an integer")
        if await self._accounts().user(user_id) is None:
            raise not_found(f"user {user_id} not found")
        await self._accounts().set_sms_credit(user_id, credit)

    # -- gateways --------------------------------------------------------------------------

    def _now(self) -> str:
        return iso_ms(int(self.clock() * 1000))

    async def _gateway(self, caller: Caller, gateway_id: str, scope: str) -> dict[str, Any]:
        doc = await self.store.get("gateways", gateway_id)
        if doc is None:
            raise not_found(f"gateway {gateway_id} not found")
        if not may(caller, "gateways:view", doc) or not may(caller, scope, doc):
            raise forbidden(f"{caller.username} may not {scope.split(':')[1]} gateway {gateway_id}")
        return doc

    async def gateway_json(self, caller: Caller, doc: dict[str, Any], full: bool) -> dict[str, Any]:
        out = {**doc, "connected": doc["id"] in self.connected}
        if full:
            out["devices"] = await self.backend.list(caller, q=f"gateway_id=={doc['id']}", limit=None, offset=0)
        return out

    async def gateways(self, caller: Caller, full: bool) -> list[dict[str, Any]]:
        docs = [d for d in await self.store.list("gateways") if may(caller, "gateways:view", d)]
        return [await self.gateway_json(caller, d, full) for d in docs]

    async def gateway(self, caller: Caller, gateway_id: str, full: bool) -> dict[str, Any]:
        return await self.gateway_json(caller, await self._gateway(caller, gateway_id, "gateways:view"), full)

    async def create_gateway(self, caller: Caller, body: Any) -> None:
        if not isinstance(body, dict):
            raise bad_request("a gateway must be a JSON object")
        if "id" not in body:
            raise bad_request("the gateway has no id")
        doc: dict[str, Any] = {"id": model.check_id(body["id"])}
        for name in ("name", "visibility", "location"):
            if name in body:
                doc[name] = _gateway_field(name, body[name])
        now = self._now()
        doc.update(owner=caller.username, date_created=now, date_modified=now)
        if not await self.store.insert("gateways", doc["id"], doc):
            raise ApiError(422, f"gateway {doc['id']} already exists")
        log.info("gateway created id=%s owner=%s", doc["id"], caller.username)

    async def delete_gateway(self, caller: Caller, gateway_id: str) -> None:
        async with self._docs_lock:
            await self._gateway(caller, gateway_id, "gateways:delete")
            await self.store.delete("gateways", gateway_id)

    async def set_gateway_field(self, caller: Caller, gateway_id: str, name: str, value: Any) -> None:
        async with self._docs_lock:
            doc = await self._gateway(caller, gateway_id, "gateways:update")  # 404, 403 before 400 (§2)
            doc[name] = _gateway_field(name, value)
            if name == "owner":
                doc["visibility"] = "private"  # the reference does this (contract §3)
            await self._touch(doc)

    async def heartbeat(self, caller: Caller, gateway_id: str) -> None:
        async with self._docs_lock:
            doc = await self._gateway(caller, gateway_id, "gateways:update")
            doc["last_seen"] = self._now()
            await self._touch(doc)

    async def _touch(self, doc: dict[str, Any]) -> None:
        doc["date_modified"] = self._now()
        await self.store.put("gateways", doc["id"], doc)

    async def presence(self, client_id: str, connected: bool) -> None:
        """An MQTT client came or went: a gateway of that id is connected while it is."""
        if connected:
            self.connected.add(client_id)
        else:
            self.connected.discard(client_id)
        async with self._docs_lock:
            doc = await self.store.get("gateways", client_id)
            if doc is not None:
                doc["last_seen"] = self._now()
                await self.store.put("gateways", client_id, doc)

    # -- projects --------------------------------------------------------------------------

    async def _project(self, caller: Caller, project_id: str) -> dict[str, Any]:
        doc = await self.store.get("projects", project_id)
        if doc is None:
            raise not_found(f"project {project_id} not found")
        if not owns(caller, doc):
            raise forbidden(f"{caller.username} may not use project {project_id}")
        return doc

    async def project_json(self, caller: Caller, doc: dict[str, Any], full: bool) -> dict[str, Any]:
        if not full:
            return doc
        devices, gateways = [], []
        for device_id in doc.get("device_ids", []):
            try:
                devices.append(model.device_json(await self.backend.readable(caller, device_id)))
            except ApiError:
                continue  # gone, or not the caller's to see
        for gateway_id in doc.get("gateway_ids", []):
            try:
                gateways.append(await self.gateway(caller, gateway_id, False))
            except ApiError:
                continue
        return {**doc, "devices": devices, "gateways": gateways}

    async def projects(self, caller: Caller, full: bool) -> list[dict[str, Any]]:
        docs = [d for d in await self.store.list("projects") if owns(caller, d)]
        return [await self.project_json(caller, d, full) for d in docs]

    async def project(self, caller: Caller, project_id: str, full: bool) -> dict[str, Any]:
        return await self.project_json(caller, await self._project(caller, project_id), full)

    async def create_project(self, caller: Caller, body: Any) -> str:
        if not isinstance(body, dict):
            raise bad_request("a project must be a JSON object")
        doc: dict[str, Any] = {"id": new_id(), "name": _project_field("name", body.get("name", ""))}
        doc["owner"] = caller.username
        doc["device_ids"] = _project_field("device_ids", body.get("device_ids", []))
        doc["gateway_ids"] = _project_field("gateway_ids", body.get("gateway_ids", []))
        await self.store.insert("projects", doc["id"], doc)
        return str(doc["id"])

    async def delete_project(self, caller: Caller, project_id: str) -> None:
        async with self._docs_lock:
            await self._project(caller, project_id)
            await self.store.delete("projects", project_id)

    async def set_project_field(self, caller: Caller, project_id: str, name: str, value: Any) -> None:
        async with self._docs_lock:
            doc = await self._project(caller, project_id)  # 404, 403 before 400 (§2)
            doc[name] = _project_field(name, value)
            await self.store.put("projects", project_id, doc)

    # -- permissions -----------------------------------------------------------------------

    async def resources(self, caller: Caller, kind: str) -> list[dict[str, Any]]:
        """What ``GET /auth/permissions/{kind}`` weighs: every device, gateway or project."""
        if kind == "devices":
            return await self.backend.all_permissions()
        return await self.store.list(kind)


def _gateway_field(name: str, value: Any) -> Any:
    if name == "location":
        model.location_attr(value)  # checked the same way as a device's
        return value
    if name == "visibility" and value not in model.VISIBILITIES:
        raise bad_request("visibility must be public or private")
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string")
    return value


def _project_field(name: str, value: Any) -> Any:
    if name == "name":
        if not isinstance(value, str):
            raise bad_request("name must be a string")
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"{name} must be a list of ids")
    return value


def _visible_user(caller: Caller, user: dict[str, Any]) -> dict[str, Any]:
    """All of a user for the administrator and the user; the public part for others (an
    e-mail address, a phone number and an SMS credit are nobody else's business)."""
    if caller.admin or (caller.user_id and caller.user_id == user.get("id")):
        return user
    return {k: v for k, v in user.items() if k in ("id", "username", "first_name", "last_name")}
