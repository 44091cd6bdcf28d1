"""Derived entities: one entity kept as an aggregate of many, e.g. the average
``temperature`` of every ``Field`` under ``/farm1/#``.

The state holds the latest numeric value of each attribute the aggregates read, per
member entity (a notification that omits an attribute keeps its previous value; one
that carries a non-numeric value removes it). After each change the engine asks for
the entity to write. Aggregates run over members, not over time: ``count`` is the
number of members that have the attribute; an aggregate with no member is written as
``null`` so that a stale average never outlives its last member.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import Derive
from .nosignal import EntityKey
from .windows import aggregate, numeric


@dataclass
class DerivedState:
    """Latest values of the members of one derived entity (per tenant)."""

    members: dict[EntityKey, dict[str, float]] = field(default_factory=dict)
    last: dict[str, dict[str, Any]] | None = None  # the attributes last handed out for writing

    def update(self, key: EntityKey, values: Mapping[str, Any]) -> None:
        """Merge a member's notified ``{attribute: value}``."""
        current = self.members.setdefault(key, {})
        for attribute, value in values.items():
            number = numeric(value)
            if number is None:
                current.pop(attribute, None)
            else:
                current[attribute] = number

    def remove(self, key: EntityKey) -> bool:
        """Forget a member (deleted, or no longer matching); True if it was one."""
        return self.members.pop(key, None) is not None

    def to_dict(self) -> dict[str, Any]:
        return {"members": [{"key": list(k), "values": v} for k, v in self.members.items()], "last": self.last}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> DerivedState:
        return cls({(str(m["key"][0]), str(m["key"][1]), str(m["key"][2])): {a: float(v) for a, v in m["values"].items()}
                    for m in doc.get("members", [])}, doc.get("last"))


def compute(derive: Derive, state: DerivedState) -> dict[str, float | int | None]:
    """Each derived attribute's value over the current members (None when undefined)."""
    out: dict[str, float | int | None] = {}
    for name, (function, attribute) in derive.attributes.items():
        # Members in key order: the same members give the same float sums.
        values = [(0.0, m[attribute]) for _, m in sorted(state.members.items()) if attribute in m]
        out[name] = aggregate(function, values)
    return out


def derived_attributes(derive: Derive, state: DerivedState) -> dict[str, dict[str, Any]]:
    """The derived entity's attributes in normalized form, ready for an update."""
    return {name: {"type": "Number", "value": value} for name, value in compute(derive, state).items()}
