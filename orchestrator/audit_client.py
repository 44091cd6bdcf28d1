"""The orchestrator's way into the audit log: the identity manager's ``POST /audit/events``
and ``POST /audit/pseudonymize`` (docs/audit.md), called as its administrator.

The log lives in the identity manager; the orchestrator never opens it itself (packages
talk over HTTP). Both calls fail open: an identity manager that is away or refuses is a
logged warning and a ``False`` answer, never an exception, so an app deploy does not fail
because the trail could not be written; erasure reads the answer and says so in its report.
"""

from __future__ import annotations

import logging
from typing import Any

from ngsi.client import HTTPClient, NGSIClient, NGSIClientError, Transport

log = logging.getLogger("waziup.orchestrator.audit")

EVENTS_PATH = "/audit/events"
PSEUDONYMIZE_PATH = "/audit/pseudonymize"


class AuditClient:
    """Records events and pseudonymizes names at the identity manager ``url``, logged in as
    ``admin_user`` (only administrators may write the trail)."""

    def __init__(self, url: str, admin_user: str, admin_password: str, *, transport: Transport | None = None,
                 ssl_context: Any = None) -> None:
        self.url = url.rstrip("/")
        self.admin_user = admin_user
        self.admin_password = admin_password
        self.transport = transport
        self.ssl_context = ssl_context
        self._token: str | None = None
        self.last_error = ""  # why the last call failed ("" after a success)

    @classmethod
    def from_config(cls, config: Any, transport: Transport | None = None) -> AuditClient | None:
        """The client of a service ``Config`` with ``idm_url``, ``admin_user`` and
        ``admin_password``; None when one is missing (no identity manager, no trail)."""
        if not (getattr(config, "idm_url", "") and getattr(config, "admin_user", "")
                and getattr(config, "admin_password", "")):
            return None
        context = None
        if getattr(config, "ca_file", "") and transport is None:
            from ngsi.tls import trust_context

            context = trust_context("-caFile", config.ca_file)
        return cls(config.idm_url, config.admin_user, config.admin_password, transport=transport,
                   ssl_context=context)

    async def record(self, action: str, *, target: str = "", tenant: str = "", actor: str = "",
                     actor_kind: str = "service", decision: str = "", reason: str = "",
                     details: dict[str, Any] | None = None) -> bool:
        """Append one record; False (and a warning) when it could not be written."""
        body: dict[str, Any] = {"action": action, "target": target, "tenant": tenant, "decision": decision,
                                "reason": reason, "details": dict(details or {}), "actor_kind": actor_kind}
        if actor:
            body["actor"] = actor
            body["details"].setdefault("actor", actor)  # kept even if the identity manager records its caller
        return await self._post(EVENTS_PATH, body, f"audit record {action} on {target!r}")

    async def pseudonymize(self, names: list[str]) -> bool:
        """Replace ``names`` (ids, usernames) by a pseudonym throughout the trail."""
        wanted = [name for name in dict.fromkeys(names) if name]
        if not wanted:
            return True
        return await self._post(PSEUDONYMIZE_PATH, {"names": wanted}, f"pseudonymization of {len(wanted)} name(s)")

    async def _post(self, path: str, body: dict[str, Any], what: str) -> bool:
        client = NGSIClient(self.url, transport=self.transport or HTTPClient(ssl_context=self.ssl_context), timeout=15)
        try:
            for attempt in (0, 1):
                token = self._token or await self._login(client)
                answer = await client.send("POST", path, headers={"X-Auth-Token": token}, json=body)
                if answer.status_code == 401 and attempt == 0:  # expired: log in again, once
                    self._token = None
                    continue
                if answer.status_code in (200, 201, 204):
                    self.last_error = ""
                    return True
                return self._failed(what, f"{path} answered {answer.status_code}: {answer.text[:200]}")
            return self._failed(what, f"{path}: the administrator's token is refused")
        except (NGSIClientError, OSError, ValueError) as exc:
            return self._failed(what, str(exc))
        finally:
            if self.transport is None:
                await client.aclose()

    async def _login(self, client: NGSIClient) -> str:
        answer = await client.send("POST", "/v1/auth/tokens",
                                   json={"name": self.admin_user, "password": self.admin_password})
        token = answer.headers.get("x-subject-token")
        if answer.status_code != 201 or not token:
            raise ValueError(f"the administrator {self.admin_user} could not log in ({answer.status_code})")
        self._token = token
        return token

    def _failed(self, what: str, why: str) -> bool:
        self.last_error = f"identity manager {self.url}: {why}"
        log.warning("AUDIT NOT RECORDED: %s: %s", what, self.last_error)
        return False
