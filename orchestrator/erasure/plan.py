"""What erasing a device means, as data (pure, no I/O): which entity it feeds, the steps
that remove it, and the report that says what was done.

A device is known to the platform in three places, each reached over its own API:

* the IoT agent's provisioning record (``GET /iot/devices/{id}``), with its pending
  commands (the agent keeps them with the device and drops them when it is deleted);
* the broker's entity the device feeds (the record's ``entity_name``/``entity_type``);
* the history of that entity (QuantumLeap's ``DELETE /v2/entities/{id}?type=``).

A WAZIUP device (``orchestrator/waziup_api``) has no agent record: its entity is the
device, named by its id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

Doc = dict[str, Any]

DEFAULT_TYPE: Final = "Thing"  # the agents' default entity type (IOTA_DEFAULT_RESOURCE's devices)
CONJUNCTION: Final = ":"
OPEN_COMMAND_STATES: Final = frozenset({"PENDING", "DELIVERED"})  # not ended: still held by the agent
COMMAND_STATUS_TYPE: Final = "commandStatus"

PROVISIONING, PENDING_COMMANDS, ENTITY, HISTORY = "provisioning", "pendingCommands", "entity", "historyPoints"


@dataclass(frozen=True)
class Target:
    """One device to erase: where it is and the entity it feeds."""

    device: str
    tenant: str
    service_path: str
    entity_id: str
    entity_type: str | None  # None: not known (a WAZIUP device not found at the broker)
    provisioned: bool  # the agent holds a record of it


@dataclass(frozen=True)
class Step:
    """One HTTP call of an erasure: ``service`` is ``agent``, ``broker`` or ``history``."""

    name: str
    service: str
    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()


def target_of(device_id: str, tenant: str, service_path: str, record: Doc | None,
              entity: Doc | None = None) -> Target:
    """The device as the agent's ``record`` describes it (``None``: not provisioned there,
    its entity is then the one named ``device_id``, of the type ``entity`` shows)."""
    if record is None:
        kind = entity.get("type") if isinstance(entity, dict) else None
        return Target(device_id, tenant, service_path, device_id, str(kind) if kind else None, False)
    entity_type = str(record.get("entity_type") or DEFAULT_TYPE)
    name = str(record.get("entity_name") or f"{entity_type}{CONJUNCTION}{device_id}")
    return Target(device_id, str(record.get("service") or tenant), str(record.get("service_path") or service_path),
                  name, entity_type, True)


def steps(target: Target, *, keep_provisioning: bool = False) -> list[Step]:
    """The deletions, in order: the agent first (so no new measure recreates the entity),
    then the broker's entity, then its history (last: the broker's feed may still be
    delivering the entity's last changes)."""
    typed = (("type", target.entity_type),) if target.entity_type else ()
    out: list[Step] = []
    if target.provisioned and not keep_provisioning:
        out.append(Step(PROVISIONING, "agent", "DELETE", f"/iot/devices/{target.device}"))
    out.append(Step(ENTITY, "broker", "DELETE", f"/v2/entities/{target.entity_id}", typed))
    out.append(Step(HISTORY, "history", "DELETE", f"/v2/entities/{target.entity_id}", typed))
    return out


def pending_commands(entity: Doc | None) -> int:
    """Commands not yet ended, as the broker shows them (``<cmd>_status`` PENDING or
    DELIVERED, in normalized or keyValues form)."""
    if not isinstance(entity, dict):
        return 0
    count = 0
    for name, attr in entity.items():
        if not name.endswith("_status"):
            continue
        value = attr.get("value") if isinstance(attr, dict) else attr
        kind = attr.get("type") if isinstance(attr, dict) else COMMAND_STATUS_TYPE
        if kind == COMMAND_STATUS_TYPE and value in OPEN_COMMAND_STATES:
            count += 1
    return count


def new_report(target: Target) -> Doc:
    """The report of one device's erasure, before any step ran."""
    return {"device": target.device, "tenant": target.tenant, "servicePath": target.service_path,
            "entity": {"id": target.entity_id, "type": target.entity_type},
            "deleted": {PROVISIONING: False, PENDING_COMMANDS: 0, ENTITY: False, HISTORY: "none"},
            "errors": []}


def status_of(report: Doc) -> int:
    """200 when every step went through, 502 when one failed (the report says which)."""
    if report.get("errors"):
        return 502
    return 200 if all(status_of(d) == 200 for d in report.get("devices", ())) else 502


# -- owners --------------------------------------------------------------------------------------


def _value(attr: Any) -> Any:
    return attr.get("value") if isinstance(attr, dict) and "value" in attr else attr


def record_owner(record: Doc) -> str | None:
    """The ``owner`` a provisioning record carries as a static attribute, if any."""
    for item in record.get("static_attributes") or ():
        if isinstance(item, dict) and item.get("name") == "owner" and isinstance(item.get("value"), str):
            return str(item["value"])
    return None


def entity_owner(entity: Doc) -> str | None:
    """The ``owner`` attribute of an entity (WAZIUP devices have one), normalized or keyValues."""
    value = _value(entity.get("owner"))
    return value if isinstance(value, str) else None


def owner_query(owner: str) -> str:
    """The broker's ``q`` for entities whose ``owner`` is ``owner`` (quoted: any text)."""
    return "owner=='" + owner.replace("'", "") + "'"


SUBSCRIPTIONS_NOT_COVERED: Final = (
    "not covered: the broker does not show who created a subscription, so an owner's subscriptions "
    "cannot be told from others through its API; an administrator removes them by id")


def new_owner_report(owner: str, tenant: str, service_path: str) -> Doc:
    return {"owner": owner, "tenant": tenant, "servicePath": service_path, "devices": [],
            "subscriptions": SUBSCRIPTIONS_NOT_COVERED,
            "account": "kept: an administrator deletes it with the identity manager's API (DELETE /v1/users/{id})",
            "errors": []}
