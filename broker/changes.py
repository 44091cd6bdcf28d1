"""One entity write as the rest of the broker sees it: the change hook's value.

The entity service (``broker/entities.py``) ends every create, update and delete by
handing a :class:`Change` to its listeners (the notifier, and whatever the orchestrator
plugs in later: history capture, rules). It carries the request's context, so a listener
knows which tenant, which correlator and whose request caused it without asking anyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from ngsi.context import RequestContext

Entity = dict[str, Any]

CREATE = "create"
UPDATE = "update"
DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Change:
    """``before``/``after`` are the stored entity around the write (None when absent);
    ``touched`` the attribute names the request named; ``forced`` makes an update count
    as a change (``options=forcedUpdate``, or an update operator wrote)."""

    ctx: RequestContext
    action: str  # CREATE | UPDATE | DELETE
    before: Entity | None
    after: Entity | None
    touched: tuple[str, ...]
    forced: bool = False

    @property
    def tenant(self) -> str:
        return self.ctx.tenant

    @property
    def entity(self) -> Entity:
        entity = self.after if self.after is not None else self.before
        assert entity is not None
        return entity


ChangeListener = Callable[[Change], Awaitable[None]]
