"""``waziup run -auth``: the identity manager's accounts the platform itself needs.

Started with ``-auth``, the platform runs the identity manager (``security/idm``) and puts
the PEP guard (``security/pep``) on the broker and both ports of the IoT agent. Before the
broker and the agent start, this module makes sure the identity manager holds (through its
Keyrock API, as an administrator would, and idempotently: a restart reuses them):

* the application ``waziup`` (an OAuth client of the platform's own services), with the
  role ``platform-service`` granting every NGSI action on every tenant
  (``security/authz`` policy in a permission's ``ngsi`` field), and the role
  ``platform-admin`` (the same) given to the administrator;
* the service account ``waziup-iot-agent``, holding ``platform-service``: the agent gets
  its tokens with the password grant (``IOTA_AUTH_*``) and sends them to the broker;
* the dashboard's way back from sign-in (``<dashboard>/auth/callback``) among the
  application's redirect URIs: the dashboard signs users in as this application
  (authorization code with PKCE, analytics/dashboard/signin.py), so the tokens it gets
  are judged by the roles users hold in ``waziup``;
* the service account ``waziup-api`` (the WAZIUP API, ``orchestrator/waziup_api``), holding
  ``platform-service``: behind the PEP it reaches the broker and the history with it; its
  users log in as the application ``waziup`` (the password grant) and it reads accounts as
  the administrator;
* the service account ``waziup-orchestrator`` (apps, discovery and sources,
  ``orchestrator/appserver``), holding ``platform-service``: behind the PEP it reaches the
  broker, the history and the agent with it; it issues apps their own accounts as the
  administrator;
* the service account ``waziup-broker``, holding only ``platform-feed`` (``create`` and
  ``update`` on every tenant, every path, every entity): the broker's change feed gets
  its tokens with the password grant (``WAZIUP_FEED_*``, broker/feed.py) and sends them to
  the history service's ``/v2/notify``, which its PEP decides as an append of the
  notified entities. Least privilege: the feed cannot read or delete anything.

Secrets made here (the application's secret, the service accounts' passwords) are kept in
``<data>/platform-auth.json``, mode 0600, and reach the children through their
environment, never a command line. The PEP of the broker, the agent and the history
service reads the NGSI policies of every application with the administrator's
credentials (``WAZIUP_PEP_*``).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ngsi.client import NGSIClient

APP_NAME = "waziup"
AGENT_USER = "waziup-iot-agent"
FEED_USER = "waziup-broker"
RULES_USER = "waziup-rules"
API_USER = "waziup-api"
ORCH_USER = "waziup-orchestrator"
ALL_ACTIONS = ["read", "create", "update", "delete", "subscribe", "register", "provision", "admin"]
EVERYTHING = {"id": "platform", "actions": ALL_ACTIONS, "tenant": "*"}
FEED = {"id": "platform-feed", "actions": ["create", "update"], "tenant": "*"}
# The application's roles and the NGSI grant of each (roles sharing a grant share its permission).
ROLES = {"platform-service": EVERYTHING, "platform-admin": EVERYTHING, "platform-feed": FEED}
STATE_FILE = "platform-auth.json"
TOKEN_PATH = "/oauth2/token"  # Keyrock's OAuth2 token endpoint


class SetupError(RuntimeError):
    """The identity manager refused or did not answer as expected."""


@dataclass(frozen=True)
class PlatformAuth:
    """What the children need: environment variables for the broker (its PEP and its feed's
    account), the agent, and the history service (its PEP)."""

    broker_env: dict[str, str]
    agent_env: dict[str, str]
    history_env: dict[str, str] = field(default_factory=dict)
    rules_env: dict[str, str] = field(default_factory=dict)
    dashboard_env: dict[str, str] = field(default_factory=dict)
    api_env: dict[str, str] = field(default_factory=dict)
    orch_env: dict[str, str] = field(default_factory=dict)


def admin_credentials(data: str) -> tuple[str, str]:
    """The administrator's e-mail and password: from the environment (``WAZIUP_ADMIN_*``)
    or, for the password, the file the identity manager wrote at its first start."""
    email = os.environ.get("WAZIUP_ADMIN_EMAIL") or "admin@localhost"
    password = os.environ.get("WAZIUP_ADMIN_PASSWORD") or os.environ.get("IDM_ADMIN_PASS")
    if not password:
        try:
            password = Path(data, "admin-password").read_text().strip()
        except OSError as exc:
            raise SetupError(f"no administrator password: WAZIUP_ADMIN_PASSWORD, or {data}/admin-password ({exc})")
    return email, password


class _Api:
    """The Keyrock API of the identity manager, as an administrator."""

    def __init__(self, client: NGSIClient, token: str) -> None:
        self.client = client
        self.token = token

    async def call(self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200, 201, 204)) -> Any:
        answer = await self.client.send(method, path, headers={"X-Auth-Token": self.token}, json=body)
        if answer.status_code not in expect:
            raise SetupError(f"identity manager: {method} {path} answered {answer.status_code}: {answer.text[:300]}")
        return answer.json() if answer.content else None


async def _login(client: NGSIClient, email: str, password: str) -> str:
    answer = await client.send("POST", "/v1/auth/tokens", json={"name": email, "password": password})
    token = answer.headers.get("x-subject-token")
    if answer.status_code != 201 or not token:
        raise SetupError(f"the administrator {email} could not log in to the identity manager ({answer.status_code})")
    return token


PLATFORM_REDIRECT = "http://localhost/callback"  # the application's first redirect URI (none of ours)


async def _redirects(api: _Api, app_path: str, wanted: list[str]) -> None:
    """Add the redirect URIs in ``wanted`` the application lacks (what others added stays)."""
    shown = (await api.call("GET", app_path))["application"].get("redirect_uri") or []
    have = [shown] if isinstance(shown, str) else list(shown)
    missing = [uri for uri in wanted if uri not in have]
    if missing:
        await api.call("PATCH", app_path, {"application": {"redirect_uri": have + missing}})


async def _setup(url: str, data: str, ssl_context: Any = None, dashboard_url: str = "") -> PlatformAuth:
    from ngsi.client import HTTPClient

    email, password = admin_credentials(data)
    state_path = Path(data, STATE_FILE)
    async with NGSIClient(url, transport=HTTPClient(ssl_context=ssl_context), timeout=15) as client:
        api = _Api(client, await _login(client, email, password))
        me = await client.send("GET", "/v1/auth/tokens", headers={"X-Auth-Token": api.token, "X-Subject-Token": api.token})
        admin_id = me.json()["User"]["id"]
        state = _read_state(state_path)
        apps = (await api.call("GET", "/v1/applications"))["applications"]
        app = next((a for a in apps if a["id"] == state.get("app_id")), None)
        if app is None:  # first start (or the identity manager's store was replaced)
            app = (await api.call("POST", "/v1/applications", {"application": {
                "name": APP_NAME, "description": "the platform's own services", "url": "http://localhost",
                "redirect_uri": PLATFORM_REDIRECT,
                "grant_type": ["password", "client_credentials", "refresh_token", "authorization_code"],
            }}))["application"]
            state = {"app_id": app["id"], "app_secret": app["secret"], "agent_password": secrets.token_urlsafe(24)}
            _write_state(state_path, state)
        added = False
        for key in ("feed_password", "rules_password", "api_password", "orch_password"):  # a platform set up before these existed
            if key not in state:
                state[key] = secrets.token_urlsafe(24)
                added = True
        if added:
            _write_state(state_path, state)
        app_path = f"/v1/applications/{state['app_id']}"
        if dashboard_url:
            await _redirects(api, app_path, [dashboard_url.rstrip("/") + "/auth/callback"])
        roles = {r["name"]: r["id"] for r in (await api.call("GET", f"{app_path}/roles"))["roles"]}
        permissions: dict[str, str] = {}  # grant id -> the permission made for it here
        for name, grant in ROLES.items():
            if name in roles:
                continue
            roles[name] = (await api.call("POST", f"{app_path}/roles", {"role": {"name": name}}))["role"]["id"]
            grant_id = str(grant["id"])
            if grant_id not in permissions:
                permissions[grant_id] = (await api.call("POST", f"{app_path}/permissions", {"permission": {
                    "name": "every NGSI action" if grant is EVERYTHING else "the change feed's appends",
                    "action": "NGSI", "resource": "ngsi", "ngsi": grant,
                }}))["permission"]["id"]
            await api.call("PUT", f"{app_path}/roles/{roles[name]}/permissions/{permissions[grant_id]}")
        users = (await api.call("GET", "/v1/users"))["users"]
        service_ids: list[str] = []
        for username, password_key, role in ((AGENT_USER, "agent_password", "platform-service"),
                                             (FEED_USER, "feed_password", "platform-feed"),
                                             (RULES_USER, "rules_password", "platform-service"),
                                             (API_USER, "api_password", "platform-service"),
                                             (ORCH_USER, "orch_password", "platform-service")):
            account = next((u for u in users if u.get("username") == username), None)
            if account is None:
                account = (await api.call("POST", "/v1/users", {"user": {
                    "username": username, "email": f"{username}@waziup.local", "password": state[password_key],
                }}))["user"]
            await api.call("PUT", f"{app_path}/users/{account['id']}/roles/{roles[role]}")
            service_ids.append(account["id"])
        await api.call("PUT", f"{app_path}/users/{admin_id}/roles/{roles['platform-admin']}")
    # the platform's own accounts get data as it is: privacy policies are for consumers
    # (security/privacy/guard.py), and the services apply them to their own users
    pep = {"WAZIUP_IDM_URL": url, "WAZIUP_PEP_USERNAME": email, "WAZIUP_PEP_PASSWORD": password,
           "WAZIUP_PRIVACY_TRUSTED": ",".join([*service_ids, admin_id]), "WAZIUP_PEP_AUDIT": "true"}
    feed = {
        "WAZIUP_FEED_TOKEN_URL": url + TOKEN_PATH, "WAZIUP_FEED_CLIENT_ID": state["app_id"],
        "WAZIUP_FEED_CLIENT_SECRET": state["app_secret"], "WAZIUP_FEED_USER": FEED_USER,
        "WAZIUP_FEED_PASSWORD": state["feed_password"],
    }
    agent_env = {
        **pep,
        "IOTA_AUTH_ENABLED": "true", "IOTA_AUTH_TYPE": "oauth2", "IOTA_AUTH_URL": url,
        "IOTA_AUTH_CLIENT_ID": state["app_id"], "IOTA_AUTH_CLIENT_SECRET": state["app_secret"],
        "IOTA_AUTH_USER": AGENT_USER, "IOTA_AUTH_PASSWORD": state["agent_password"],
    }
    rules_env = {
        **pep,
        "WAZIUP_RULES_AUTH_TOKEN_URL": url + TOKEN_PATH, "WAZIUP_RULES_AUTH_CLIENT_ID": state["app_id"],
        "WAZIUP_RULES_AUTH_CLIENT_SECRET": state["app_secret"], "WAZIUP_RULES_AUTH_USER": RULES_USER,
        "WAZIUP_RULES_AUTH_PASSWORD": state["rules_password"],
    }
    dashboard_env = {"WAZIUP_DASHBOARD_CLIENT_ID": state["app_id"],
                     "WAZIUP_DASHBOARD_CLIENT_SECRET": state["app_secret"]} if dashboard_url else {}
    api_env = {  # the WAZIUP API: users log in as the application; it reads accounts as the administrator
        "WAZIUP_API_CLIENT_ID": state["app_id"], "WAZIUP_API_CLIENT_SECRET": state["app_secret"],
        "WAZIUP_API_ADMIN_USER": email, "WAZIUP_API_ADMIN_PASSWORD": password,
        "WAZIUP_API_AUTH_PASSWORD": state["api_password"],  # used with -authUser waziup-api (behind the PEP)
    }
    orch_env = {  # the orchestrator's service: it issues apps their accounts as the administrator
        **pep,
        "WAZIUP_ORCH_CLIENT_ID": state["app_id"], "WAZIUP_ORCH_CLIENT_SECRET": state["app_secret"],
        "WAZIUP_ORCH_ADMIN_USER": email, "WAZIUP_ORCH_ADMIN_PASSWORD": password,
        "WAZIUP_ORCH_AUTH_PASSWORD": state["orch_password"],  # used with -authUser waziup-orchestrator (behind PEPs)
    }
    return PlatformAuth(broker_env={**pep, **feed}, agent_env=agent_env, history_env=dict(pep), rules_env=rules_env,
                        dashboard_env=dashboard_env, api_env=api_env, orch_env=orch_env)


def _read_state(path: Path) -> dict[str, str]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _write_state(path: Path, state: dict[str, str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(state, out)
    os.chmod(path, 0o600)


def setup(url: str, data: str, ssl_context: Any = None, dashboard_url: str = "") -> PlatformAuth:
    """Make sure the accounts exist; the children's environment (SetupError otherwise).
    ``dashboard_url``: the dashboard as browsers reach it ("": none runs)."""
    return asyncio.run(_setup(url, data, ssl_context, dashboard_url))
