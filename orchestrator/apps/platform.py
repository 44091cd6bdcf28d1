"""What the platform makes for an app, from its manifest, and takes back on undeploy:

* broker subscriptions notifying the app's endpoint (``http://127.0.0.1:<port><endpoint>``
  locally), in the app's tenant and service path, each described ``waziup-app:<name>`` so
  that leftovers of a crash are found and removed by that description too;
* when an identity manager is configured (``-idmURL``, the administrator and the
  platform's OAuth client): a role of the platform's application scoped to what the
  manifest asked for (an NGSI grant, ``security/authz/policy.py``), and a service account
  holding it. The app gets its tokens with the password grant through the platform's
  client (``WAZIUP_TOKEN_URL``, ``WAZIUP_CLIENT_ID``/``SECRET``, ``WAZIUP_USERNAME``/
  ``PASSWORD``): the PEP judges a token by the roles of its user, so a service account is
  what lets the app's rights be exactly its role's.

The grants (pure: ``grants``) give ``read`` and ``subscribe`` in the app's tenant and
service path, ``create``/``update`` of the app's own entities (ids beginning
``urn:waziup:<name>:``, given to the app as ``WAZIUP_ENTITY_PREFIX``), history ``read``
(``read``) or ``write`` (also ``create``/``update``/``delete`` there), and ``update`` of
entities of each type in ``needs.commands`` (a command is an attribute update).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final

from ngsi.client import NGSIClient, NGSIClientError, Transport

from .manifest import Manifest, SubscriptionNeed

TOKEN_PATH: Final = "/oauth2/token"


class PlatformError(Exception):
    """The broker or the identity manager refused what the app needs (the message says which)."""


def description(name: str) -> str:
    return f"waziup-app:{name}"


def entity_prefix(name: str) -> str:
    """The ids of the entities an app may create: its own namespace."""
    return f"urn:waziup:{name}:"


def subscription_body(name: str, need: SubscriptionNeed, url_base: str) -> dict[str, Any]:
    """The NGSI-v2 subscription of ``need``, notifying ``url_base + endpoint``."""
    subject: dict[str, Any] = {"entities": [e.ngsi() for e in need.entities]}
    if need.condition:
        subject["condition"] = {"attrs": list(need.condition)}
    notification: dict[str, Any] = {"http": {"url": url_base.rstrip("/") + need.endpoint}}
    if need.attrs:
        notification["attrs"] = list(need.attrs)
    body: dict[str, Any] = {"description": description(name), "subject": subject, "notification": notification}
    if need.throttling:
        body["throttling"] = need.throttling
    return body


def _paths(service_path: str) -> list[str]:
    return ["/#"] if service_path == "/" else [service_path.rstrip("/") + "/#"]


def grants(name: str, manifest: Manifest, tenant: str) -> list[dict[str, Any]]:
    """The NGSI grants (permissions' ``ngsi`` field) of the app's role."""
    paths = _paths(manifest.service_path)
    out: list[dict[str, Any]] = [
        {"id": f"app-{name}-read", "actions": ["read", "subscribe"], "tenant": tenant, "servicePaths": paths},
        {"id": f"app-{name}-own", "actions": ["create", "update"], "tenant": tenant, "servicePaths": paths,
         "entities": {"idPattern": "^" + entity_prefix(name)}},
    ]
    types = sorted({c.type for c in manifest.needs.commands})
    if types:
        out.append({"id": f"app-{name}-commands", "actions": ["update"], "tenant": tenant, "servicePaths": paths,
                    "entities": {"types": types}})
    if manifest.needs.history == "write":  # the history's routes: read, and deletes of series
        out.append({"id": f"app-{name}-history", "actions": ["read", "delete"], "tenant": tenant,
                    "servicePaths": paths})
    return out


# -- subscriptions ----------------------------------------------------------------------------


async def create_subscriptions(client: NGSIClient, name: str, manifest: Manifest, tenant: str | None,
                               url_base: str) -> list[str]:
    """Make the app's subscriptions (those made are removed again if one is refused)."""
    made: list[str] = []
    for i, need in enumerate(manifest.needs.subscriptions):
        try:
            made.append(await client.create_subscription(subscription_body(name, need, url_base), service=tenant,
                                                         service_path=manifest.service_path))
        except NGSIClientError as exc:
            await delete_subscriptions(client, name, made, tenant, manifest.service_path)
            raise PlatformError(f"needs.subscriptions[{i}]: the broker refused it: {exc.description or exc}") from None
    return made


async def delete_subscriptions(client: NGSIClient, name: str, ids: list[str], tenant: str | None,
                               service_path: str) -> None:
    """Remove the app's subscriptions: those recorded, and any other of its description."""
    found = set(ids)
    try:
        for sub in await client.list_subscriptions(service=tenant, service_path=service_path):
            if sub.get("description") == description(name):
                found.add(sub["id"])
    except NGSIClientError:
        pass  # the broker is away: at least the recorded ones are tried
    for sub_id in found:
        try:
            await client.delete_subscription(sub_id, service=tenant, service_path=service_path)
        except NGSIClientError as exc:
            if exc.status != 404:
                raise PlatformError(f"subscription {sub_id} could not be removed: {exc}") from None


# -- identity ---------------------------------------------------------------------------------


@dataclass
class Issued:
    """What the identity manager holds for one app (persisted with the app, to remove it)."""

    username: str
    password: str
    user_id: str
    role_id: str
    permission_ids: list[str] = field(default_factory=list)
    app_id: str = ""  # the app's own OAuth client (its application at the identity manager); "": none (older deploys)
    app_secret: str = ""

    def env(self, idm_url: str, client_id: str, client_secret: str) -> dict[str, str]:
        """The app's credentials: its own OAuth client when it has one (``client_id`` and
        ``client_secret``, the platform's, only for what older deploys recorded)."""
        return {"WAZIUP_TOKEN_URL": idm_url.rstrip("/") + TOKEN_PATH, "WAZIUP_CLIENT_ID": self.app_id or client_id,
                "WAZIUP_CLIENT_SECRET": self.app_secret or client_secret, "WAZIUP_USERNAME": self.username,
                "WAZIUP_PASSWORD": self.password}


class Identity:
    """Issues and revokes apps' accounts through the identity manager's Keyrock API, as
    its administrator, in the platform's application ``app_id``."""

    def __init__(self, url: str, admin_user: str, admin_password: str, app_id: str, app_secret: str,
                 transport: Transport | None = None) -> None:
        self.url = url.rstrip("/")
        self.admin_user = admin_user
        self.admin_password = admin_password
        self.app_id = app_id
        self.app_secret = app_secret
        self.transport = transport

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[NGSIClient]:
        """A client of the identity manager; a transport given to the constructor stays open."""
        client = NGSIClient(self.url, transport=self.transport, timeout=15)
        try:
            yield client
        finally:
            if self.transport is None:
                await client.aclose()

    async def _login(self, client: NGSIClient) -> str:
        try:
            answer = await client.send("POST", "/v1/auth/tokens",
                                       json={"name": self.admin_user, "password": self.admin_password})
        except NGSIClientError as exc:
            raise PlatformError(f"identity manager {self.url}: {exc}") from None
        token = answer.headers.get("x-subject-token")
        if answer.status_code != 201 or not token:
            raise PlatformError(f"identity manager: the administrator {self.admin_user} could not log in "
                                f"({answer.status_code})")
        return token

    async def _call(self, client: NGSIClient, token: str, method: str, path: str, body: Any = None,
                    ok: tuple[int, ...] = (200, 201, 204)) -> Any:
        try:
            answer = await client.send(method, path, headers={"X-Auth-Token": token}, json=body)
        except NGSIClientError as exc:
            raise PlatformError(f"identity manager: {method} {path}: {exc}") from None
        if answer.status_code not in ok:
            raise PlatformError(f"identity manager: {method} {path} answered {answer.status_code}: "
                                f"{answer.text[:300]}")
        return answer.json() if answer.content and answer.status_code < 300 else None

    async def issue(self, name: str, manifest: Manifest, tenant: str) -> Issued:
        """The app's own OAuth client (an application ``app-<name>`` at the identity manager,
        password grant only), a role of that application scoped to the manifest, and a service
        account holding it. Its tokens are issued to its own client, so the PEP judges them by
        that role alone, and the app never holds the platform's client secret (which signs
        users in to the dashboard)."""
        async with self.client() as client:
            token = await self._login(client)
            issued = Issued(username=f"app-{name}", password=secrets.token_urlsafe(24), user_id="", role_id="")
            try:
                made_app = await self._call(client, token, "POST", "/v1/applications", {"application": {
                    "name": f"app-{name}", "description": f"the app {name} (waziup apps)", "url": "http://localhost",
                    "redirect_uri": "http://localhost/callback", "grant_type": ["password", "refresh_token"]}})
                issued.app_id, issued.app_secret = made_app["application"]["id"], made_app["application"]["secret"]
                app = f"/v1/applications/{issued.app_id}"
                role = await self._call(client, token, "POST", f"{app}/roles", {"role": {"name": f"app-{name}"}})
                issued.role_id = role["role"]["id"]
                for grant in grants(name, manifest, tenant):
                    made = await self._call(client, token, "POST", f"{app}/permissions", {"permission": {
                        "name": f"{grant['id']}", "action": "NGSI", "resource": "ngsi", "ngsi": grant}})
                    issued.permission_ids.append(made["permission"]["id"])
                    await self._call(client, token, "PUT",
                                     f"{app}/roles/{issued.role_id}/permissions/{made['permission']['id']}")
                users = (await self._call(client, token, "GET", "/v1/users"))["users"]
                stale = next((u for u in users if u.get("username") == issued.username), None)
                if stale is not None:  # a deploy that crashed half-way: its account is replaced
                    await self._call(client, token, "DELETE", f"/v1/users/{stale['id']}", ok=(200, 204, 404))
                user = await self._call(client, token, "POST", "/v1/users", {"user": {
                    "username": issued.username, "email": f"{issued.username}@apps.waziup.local",
                    "password": issued.password}})
                issued.user_id = user["user"]["id"]
                await self._call(client, token, "PUT", f"{app}/users/{issued.user_id}/roles/{issued.role_id}")
            except PlatformError:
                await self._revoke(client, token, issued)
                raise
        return issued

    async def revoke(self, issued: Issued) -> None:
        async with self.client() as client:
            await self._revoke(client, await self._login(client), issued)

    async def _revoke(self, client: NGSIClient, token: str, issued: Issued) -> None:
        gone = (200, 204, 404)
        if issued.user_id:
            await self._call(client, token, "DELETE", f"/v1/users/{issued.user_id}", ok=gone)
        app = f"/v1/applications/{issued.app_id or self.app_id}"  # older deploys: in the platform's application
        for permission in issued.permission_ids:
            await self._call(client, token, "DELETE", f"{app}/permissions/{permission}", ok=gone)
        if issued.role_id:
            await self._call(client, token, "DELETE", f"{app}/roles/{issued.role_id}", ok=gone)
        if issued.app_id:  # the app's own OAuth client, and with it every token it was issued
            await self._call(client, token, "DELETE", app, ok=gone)
