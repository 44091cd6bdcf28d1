"""The release seam: how data leaves the platform for the caller of one request.

Access control decides *whether* a caller may read something; a privacy policy decides
*in what form* (``docs/privacy.md``): dropped attributes, pseudonymous ids, coarser
locations and times, noised numbers, refused answers once a privacy budget is spent. The
services do not know the policies. A guard of the request seam (``security/privacy``)
puts a :class:`Release` on the request's context (``ctx.release``) when the caller has a
policy, and a service hands what it is about to answer to it, in the plain shapes below,
and answers what comes back. ``ctx.release`` is None for everyone else: one truth test.

Services never import ``security``; they import this protocol only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class Refused(Exception):
    """The consumer may not have this answer (the policy allows only some aggregates, or
    its privacy budget is spent): the service answers 403 with ``str(exc)``."""


@dataclass(slots=True)
class Block:
    """One entity's history as it is about to leave: ``index`` holds ISO 8601 instants
    (None for an aggregate over the whole range) and ``values``, per attribute, the
    values parallel to it; ``attr_types`` the NGSI type of each attribute."""

    entity_id: str
    entity_type: str
    service_path: str
    index: list[str | None]
    values: dict[str, list[Any]]
    attr_types: dict[str, str] = field(default_factory=dict)


class Release(Protocol):
    """One caller's way out (see the module docstring)."""

    def entity(self, tenant: str, entity: dict[str, Any]) -> dict[str, Any]:
        """An entity in the platform's internal form (``{"id", "type", "servicePath",
        "attrs": {name: {"type", "value", "md"}}}``, as the broker stores it), as the caller
        may have it; the input is not modified."""
        ...

    async def history(self, tenant: str, blocks: list[Block], *, aggr_method: str | None,
                      aggr_period: str | None) -> list[Block]:
        """A history answer as the caller may have it; raises :class:`Refused` when the
        caller may not have it at all (and charges the caller's privacy budget when the
        answer is noised)."""
        ...

    def table(self, tenant: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows of a CSV answer (one value each: ``entityId``, ``entityType``,
        ``attrName``, ``index``, ``value``), already transformed by :meth:`history`, with
        k-anonymity applied where the caller's policy asks for it."""
        ...
