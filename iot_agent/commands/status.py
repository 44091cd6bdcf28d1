"""A command's progress as the broker shows it: ``<cmd>_status`` and ``<cmd>_info``.

Every step of a command (accepted, delivered, answered, failed, expired) ends here, so
the attribute shapes are built in one place (``status_entity``, pure) and written in one
place (``StatusWriter``). The other command modules get the writer as a ``SetStatus``
callback and never talk to the broker about statuses themselves.
"""

from __future__ import annotations

import json
import re
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ngsi.client import NGSIClientError

from ..config import Config
from ..device import entity_of, tenant_of
from ..south.ingest import Southbound

log = logging.getLogger("waziup.iot_agent.commands")

Doc = dict[str, Any]
# (device, group, command, status, info) -> None
SetStatus = Callable[[Doc, Doc | None, str, str, Any], Awaitable[None]]

PENDING, DELIVERED, OK, ERROR = "PENDING", "DELIVERED", "OK", "ERROR"
_FORBIDDEN = re.compile(r"""[<>"'=;()]""")
EXPIRED = "EXPIRED"
STATUS_TYPE, INFO_TYPE = "commandStatus", "commandResult"


def status_entity(entity_id: str, entity_type: str, name: str, status: str, info: Any = None) -> Doc:
    """The entity fragment to append: ``<cmd>_status``, and ``<cmd>_info`` once the command
    has ended (a PENDING or DELIVERED command has no result yet)."""
    entity: Doc = {"id": entity_id, "type": entity_type, f"{name}_status": {"type": STATUS_TYPE, "value": status}}
    if status != PENDING and status != DELIVERED:
        value = info if isinstance(info, (str, int, float, bool, dict, list)) else json.dumps(info)
        if status == ERROR and isinstance(value, str):
            value = _FORBIDDEN.sub(" ", value)  # our own error texts: the broker refuses <>"'=;() in values
        entity[f"{name}_info"] = {"type": INFO_TYPE, "value": value}
    return entity


class StatusWriter:
    """Writes statuses with ``POST /v2/op/update`` ``append`` to the device's broker and
    tenant; a refusal is logged, never raised (the command's fate does not depend on it)."""

    def __init__(self, south: Southbound, config: Config) -> None:
        self.south = south
        self.config = config

    async def __call__(self, device: Doc, group: Doc | None, name: str, status: str, info: Any = None) -> None:
        entity_id, entity_type = entity_of(device, group, self.config)
        entity = status_entity(entity_id, entity_type, name, status, info)
        try:
            await self.south.client_for(group).op_update("append", [entity], **tenant_of(device))
        except NGSIClientError as exc:
            log.warning("could not write %s_status %s of %s: %s", name, status, entity_id, exc)
