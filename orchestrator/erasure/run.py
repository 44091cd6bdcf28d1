"""Erasure and consent carried out over HTTP, with the orchestrator's clients and token
(its service account behind the PEPs): the IoT agent's provisioning API, the broker, the
history service, and the identity manager's audit log (``orchestrator/audit_client.py``).

A failing step does not stop the others: it is listed in the report's ``errors`` and the
answer is then 502 (``plan.status_of``). A missing thing (the entity already gone, no
history) is not an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ngsi.client import NGSIClient, NGSIClientError

from ..audit_client import AuditClient
from . import plan
from .plan import Doc, Target

log = logging.getLogger("waziup.orchestrator.erasure")

PAGE = 1000


@dataclass
class Services:
    """The clients an erasure uses; ``agent``/``history``/``audit`` None when not configured."""

    broker: NGSIClient
    agent: NGSIClient | None = None
    history: NGSIClient | None = None
    audit: AuditClient | None = None


def _headers(tenant: str, service_path: str) -> dict[str, str]:
    headers = {"Fiware-ServicePath": service_path or "/"}
    if tenant:
        headers["Fiware-Service"] = tenant
    return headers


def _why(answer: Any) -> str:
    try:
        doc = answer.json()
        if isinstance(doc, dict):
            text = doc.get("description") or doc.get("message") or doc.get("detail") or doc.get("error") or doc
            return f"{answer.status_code} {text}"
    except ValueError:
        pass
    return f"{answer.status_code} {answer.text[:200]}"


class Eraser:
    """Erases devices and owners' devices, and sets devices' consent (docs/lifecycle.md)."""

    def __init__(self, services: Services) -> None:
        self.s = services
        self._listed: tuple[tuple[str, str], list[Doc]] | None = None  # the last agent listing (owners)

    # -- one device --------------------------------------------------------------------------

    async def _call(self, client: NGSIClient | None, method: str, path: str, headers: dict[str, str],
                    params: dict[str, str] | None = None, json: Any = None) -> Any:
        assert client is not None
        return await client.send(method, path, headers=headers, params=params or None, json=json)

    async def find(self, device_id: str, tenant: str, service_path: str, errors: list[str]) -> Target:
        """The device as the agent knows it; else the broker's entity of that id."""
        headers = _headers(tenant, service_path)
        record = None
        if self.s.agent is not None:
            try:
                answer = await self._call(self.s.agent, "GET", f"/iot/devices/{device_id}", headers)
                if answer.status_code == 200:
                    record = answer.json()
                elif answer.status_code != 404:
                    errors.append(f"agent: GET /iot/devices/{device_id}: {_why(answer)}")
            except NGSIClientError as exc:
                errors.append(f"agent: GET /iot/devices/{device_id}: {exc}")
        entity = None
        if record is None:
            entity = await self._entity(device_id, None, headers, errors)
        return plan.target_of(device_id, tenant, service_path, record, entity)

    async def _entity(self, entity_id: str, entity_type: str | None, headers: dict[str, str],
                      errors: list[str]) -> Doc | None:
        params = {"type": entity_type} if entity_type else None
        try:
            answer = await self._call(self.s.broker, "GET", f"/v2/entities/{entity_id}", headers, params)
        except NGSIClientError as exc:
            errors.append(f"broker: GET /v2/entities/{entity_id}: {exc}")
            return None
        if answer.status_code == 200:
            found: Doc = answer.json()
            return found
        if answer.status_code != 404:
            errors.append(f"broker: GET /v2/entities/{entity_id}: {_why(answer)}")
        return None

    async def erase_device(self, device_id: str, tenant: str, service_path: str, *, actor: str = "",
                           keep_provisioning: bool = False, audit_action: str | None = "erasure.device") -> Doc:
        """Delete the device's provisioning (and with it its pending commands), its entity and
        its history; record ``audit_action`` and pseudonymize the device's id in the trail."""
        errors: list[str] = []
        target = await self.find(device_id, tenant, service_path, errors)
        report = plan.new_report(target)
        report["errors"] = errors
        await self._erase(target, report, keep_provisioning=keep_provisioning)
        if audit_action is not None:
            await self._audit(audit_action, report, actor, names=[device_id, target.entity_id])
        return report

    async def _erase(self, target: Target, report: Doc, *, keep_provisioning: bool) -> None:
        headers = _headers(target.tenant, target.service_path)
        deleted, errors = report["deleted"], report["errors"]
        if target.entity_type is not None:
            entity = await self._entity(target.entity_id, target.entity_type, headers, errors)
            if target.provisioned:
                deleted[plan.PENDING_COMMANDS] = plan.pending_commands(entity)
        for step in plan.steps(target, keep_provisioning=keep_provisioning):
            client = {"agent": self.s.agent, "broker": self.s.broker, "history": self.s.history}[step.service]
            if client is None:
                if step.service == "history":
                    report.setdefault("notes", []).append("no history service configured")
                continue
            where = f"{step.service}: {step.method} {step.path}"
            had_points = await self._has_history(client, step, headers) if step.name == plan.HISTORY else True
            try:
                answer = await self._call(client, step.method, step.path, headers, dict(step.params))
            except NGSIClientError as exc:
                errors.append(f"{where}: {exc}")
                continue
            done = answer.status_code in (200, 204)
            if not done and answer.status_code != 404:
                errors.append(f"{where}: {_why(answer)}")
                continue
            if step.name == plan.HISTORY:
                deleted[plan.HISTORY] = "deleted" if done and had_points else "none"
            else:
                deleted[step.name] = done
            if step.name == plan.PROVISIONING and done:
                await self._check_gone(target, headers, errors)

    async def _has_history(self, client: NGSIClient, step: plan.Step, headers: dict[str, str]) -> bool:
        """Whether the history holds points of the entity (its DELETE answers 204 either way)."""
        try:
            answer = await self._call(client, "GET", step.path, headers, {**dict(step.params), "lastN": "1"})
        except NGSIClientError:
            return True  # the DELETE will say
        return answer.status_code != 404

    async def _check_gone(self, target: Target, headers: dict[str, str], errors: list[str]) -> None:
        """The agent drops a device's stored commands with it: a device it no longer finds
        has none left (it has no API listing them)."""
        try:
            answer = await self._call(self.s.agent, "GET", f"/iot/devices/{target.device}", headers)
        except NGSIClientError as exc:
            errors.append(f"agent: GET /iot/devices/{target.device} after the deletion: {exc}")
            return
        if answer.status_code != 404:
            errors.append(f"agent: the device {target.device} is still provisioned after its deletion")

    async def _audit(self, action: str, report: Doc, actor: str, *, names: list[str],
                     target: str | None = None) -> None:
        """Record ``action`` with the report, then pseudonymize ``names`` in the trail. The
        report says how it went (``audit``), and a failure is one of its errors."""
        audit = self.s.audit
        if audit is None:
            report["audit"] = "not configured"
            return
        details = {k: v for k, v in report.items() if k != "audit"}
        recorded = await audit.record(action, target=target or report.get("device") or report.get("owner", ""),
                                      tenant=report.get("tenant", ""), actor=actor,
                                      actor_kind="user" if actor else "service",
                                      decision="allow", details=details)
        if not recorded:
            report["audit"] = "failed"
            report["errors"].append(f"audit: the {action} record was not written: {audit.last_error}")
            return
        report["audit"] = "recorded"
        if names:
            if await audit.pseudonymize(names):
                report["pseudonymized"] = True
            else:
                report["pseudonymized"] = False
                report["errors"].append(f"audit: pseudonymization failed: {audit.last_error}")

    # -- consent -----------------------------------------------------------------------------

    async def set_consent(self, device_id: str, tenant: str, service_path: str, consent: bool, *,
                          actor: str = "") -> Doc:
        """``consent`` at the agent (``PUT /iot/devices/{id}``); withdrawn, the device's data
        (entity and history) is erased too, its provisioning kept so that the flag holds."""
        headers = _headers(tenant, service_path)
        report: Doc = {"device": device_id, "tenant": tenant, "servicePath": service_path, "consent": consent,
                       "errors": []}
        if self.s.agent is None:
            report["errors"].append("no IoT agent configured (-iotaURL): consent is kept in the device's provisioning")
            return report
        try:
            answer = await self._call(self.s.agent, "PUT", f"/iot/devices/{device_id}", headers,
                                      json={"consent": consent})
            if answer.status_code == 404:
                report["errors"].append(f"agent: no device {device_id} in {tenant or 'the default tenant'}"
                                        f" {service_path}")
                report["status"] = 404
                return report
            if answer.status_code not in (200, 204):
                report["errors"].append(f"agent: PUT /iot/devices/{device_id}: {_why(answer)}")
        except NGSIClientError as exc:
            report["errors"].append(f"agent: PUT /iot/devices/{device_id}: {exc}")
        if not consent:
            erased = await self.erase_device(device_id, tenant, service_path, actor=actor, keep_provisioning=True,
                                             audit_action=None)
            report["entity"], report["deleted"] = erased["entity"], erased["deleted"]
            report["errors"].extend(erased["errors"])
            names = [device_id, erased["entity"]["id"]]
        else:
            names = []
        await self._audit("consent.withdrawn" if not consent else "consent.given", report, actor,
                          names=names, target=device_id)
        return report

    # -- owners ------------------------------------------------------------------------------

    async def erase_owner(self, owner: str, tenant: str, service_path: str, *, actor: str = "") -> Doc:
        """Every device of ``owner`` (a static ``owner`` of its provisioning, or an ``owner``
        attribute of its entity), erased one by one; then ``owner`` pseudonymized in the trail."""
        report = plan.new_owner_report(owner, tenant, service_path)
        scope = _headers(tenant, service_path)
        devices: dict[str, tuple[str, str]] = {}  # device id -> (its path, where it was found)
        entities_fed: set[str] = set()
        if self.s.agent is not None:
            for record in await self._agent_devices(tenant, service_path, report["errors"]):
                target = plan.target_of(str(record.get("device_id")), tenant, service_path, record)
                entities_fed.add(target.entity_id)
                if plan.record_owner(record) == owner:
                    devices[target.device] = (target.service_path, "agent")
        for entity in await self._owned_entities(owner, scope, report["errors"]):
            entity_id = str(entity.get("id"))
            if entity_id in entities_fed:  # fed by a provisioned device: erase that device
                for record in await self._agent_devices(tenant, service_path, report["errors"], cached=True):
                    target = plan.target_of(str(record.get("device_id")), tenant, service_path, record)
                    if target.entity_id == entity_id:
                        devices.setdefault(target.device, (target.service_path, "agent"))
            else:
                devices.setdefault(entity_id, (str(entity.get("servicePath") or service_path), "broker"))
        for device_id, (path, _) in sorted(devices.items()):
            erased = await self.erase_device(device_id, tenant, path, actor=actor, audit_action=None)
            report["devices"].append(erased)
        await self._audit("erasure.owner", report, actor, names=[owner, *devices], target=owner)
        return report

    async def _agent_devices(self, tenant: str, service_path: str, errors: list[str], *,
                             cached: bool = False) -> list[Doc]:
        key = (tenant, service_path)
        if cached and self._listed is not None and self._listed[0] == key:
            return self._listed[1]
        headers = _headers(tenant, "/*" if service_path in ("/", "/#", "") else service_path)
        found: list[Doc] = []
        offset = 0
        while True:
            try:
                answer = await self._call(self.s.agent, "GET", "/iot/devices", headers,
                                          {"limit": str(PAGE), "offset": str(offset)})
            except NGSIClientError as exc:
                errors.append(f"agent: GET /iot/devices: {exc}")
                break
            if answer.status_code != 200:
                errors.append(f"agent: GET /iot/devices: {_why(answer)}")
                break
            page = answer.json().get("devices") or []
            found.extend(page)
            offset += len(page)
            if len(page) < PAGE:
                break
        self._listed = (key, found)
        return found

    async def _owned_entities(self, owner: str, headers: dict[str, str], errors: list[str]) -> list[Doc]:
        """The broker's entities whose ``owner`` is ``owner`` (every path under the scope)."""
        path = headers.get("Fiware-ServicePath", "/")
        scoped = {**headers, "Fiware-ServicePath": "/#" if path in ("/", "") else path.rstrip("/") + "/#"}
        found: list[Doc] = []
        offset = 0
        while True:
            params = {"q": plan.owner_query(owner), "attrs": "owner", "limit": str(PAGE), "offset": str(offset),
                      "options": "keyValues"}
            try:
                answer = await self._call(self.s.broker, "GET", "/v2/entities", scoped, params)
            except NGSIClientError as exc:
                errors.append(f"broker: GET /v2/entities?q=owner: {exc}")
                break
            if answer.status_code != 200:
                errors.append(f"broker: GET /v2/entities?q=owner: {_why(answer)}")
                break
            page = answer.json()
            found.extend(e for e in page if plan.entity_owner(e) == owner)
            offset += len(page)
            if len(page) < PAGE:
                break
        return found
