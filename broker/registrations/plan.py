"""Which context providers a query or an update involves, and what each is asked: pure code.

The matching rule is context_providers.md's: "any type of entity in the NGSIv2
update/query matches registrations without entity type. However, the opposite doesn't
work, so if you have registrations with types, then you must use ``?type``". The type an
entity has in the broker counts as given: Orion looks the registrations of an entity it
found up with the type it found.

A query involves a provider in two ways:

* a *completion*: an entity of the local page lacks attributes a registration provides:
  they are asked of the provider (never paginated) and added to the entity; a
  registration of all attributes (no ``attrs``) completes only the attributes the request
  names, since the entity itself was found (context_providers.md: Orion forwards what "it
  cannot find ... locally");
* a *discovery*: an entity the broker does not hold at all: asked with the request's
  ``limit``/``offset`` shifted past the local entities, providers in registration order
  (context_providers.md, "Pagination with Context Providers").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ngsi.regex import search

from ..store import Selector

Entity = dict[str, Any]
Reg = dict[str, Any]
Spec = dict[str, str]  # {"id" | "idPattern", "type"? | "typePattern"?}
Key = tuple[str, str]  # (entity id, entity type)


def spec_covers(spec: Spec, entity_id: str, entity_type: str | None) -> bool:
    """Does an entity spec (a registration's or a forwarded request's) take this entity?
    ``entity_type`` None (a request without type) is taken only by specs without type."""
    if "id" in spec and spec["id"] != entity_id:
        return False
    if "idPattern" in spec and not search(spec["idPattern"], entity_id):
        return False
    return _type_ok(spec, entity_type)


def _type_ok(spec: Spec, entity_type: str | None) -> bool:
    if "type" in spec:
        return entity_type == spec["type"]
    if "typePattern" in spec:
        return entity_type is not None and search(spec["typePattern"], entity_type)
    return True


def reg_covers(reg: Reg, entity_id: str, entity_type: str | None) -> bool:
    return any(spec_covers(spec, entity_id, entity_type) for spec in reg["dataProvided"]["entities"])


def provided(reg: Reg, wanted: list[str] | None) -> list[str] | None:
    """The attributes to ask a registration for: None means all it has, [] means none."""
    reg_attrs = list(reg["dataProvided"]["attrs"])
    if wanted is None:
        return reg_attrs or None
    if not reg_attrs:
        return list(wanted)
    return [a for a in wanted if a in reg_attrs]


@dataclass
class Ask:
    """One forwarded query: a provider, the entities and the attributes (None: all) asked."""

    reg: Reg
    attrs: list[str] | None
    paged: bool  # a discovery (paginated), else a completion
    entities: list[Spec] = field(default_factory=list)

    def takes(self, entity_id: str, entity_type: str | None) -> bool:
        """Is an answered entity one this ask (and its registration) covers?"""
        return any(spec_covers(s, entity_id, entity_type) for s in self.entities) and reg_covers(
            self.reg, entity_id, entity_type
        )

    @property
    def single_type(self) -> str | None:
        """The type an answer without type gets: the one all asked entities share, if any."""
        types = {s.get("type") for s in self.entities}
        return next(iter(types)) if len(types) == 1 else None


class _Asks:
    """Asks grouped per (registration, attributes, kind), in first-use order."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, tuple[str, ...] | None, bool], Ask] = {}

    def add(self, reg: Reg, attrs: list[str] | None, paged: bool, spec: Spec) -> None:
        key = (reg["id"], None if attrs is None else tuple(attrs), paged)
        ask = self.items.get(key)
        if ask is None:
            ask = self.items[key] = Ask(reg, attrs, paged)
        if spec not in ask.entities:
            ask.entities.append(spec)


def _present(key_id: str, key_type: str | None, keys: set[Key]) -> bool:
    if key_type is not None:
        return (key_id, key_type) in keys
    return any(i == key_id for i, _ in keys)


def _entity_spec(entity_id: str, entity_type: str | None) -> Spec:
    return {"id": entity_id} | ({"type": entity_type} if entity_type else {})


def _pattern_specs(selector: Selector, spec: Spec) -> list[Spec]:
    """What to ask a registration's spec for under a listing/pattern selector ([]: nothing)."""
    if "id" in spec:
        if selector.id_pattern is not None and not search(selector.id_pattern, spec["id"]):
            return []
        ids: Spec = {"id": spec["id"]}
    else:  # a registration by pattern (Orion supports ".*" only): ask the request's
        ids = {"idPattern": selector.id_pattern or spec["idPattern"]}
    if "type" in spec or "typePattern" in spec:
        if selector.types is not None:
            return [ids | {"type": t} for t in selector.types if _type_ok(spec, t)]
        reg_type = spec.get("type")
        if selector.type_pattern is not None and reg_type is not None and search(selector.type_pattern, reg_type):
            return [ids | {"type": reg_type}]
        return []  # no type asked: a registration with types does not match
    if selector.types is not None:
        return [ids | {"type": t} for t in selector.types]
    if selector.type_pattern is not None:
        return [ids | {"typePattern": selector.type_pattern}]
    return [ids]


def plan_query(
    regs: list[Reg], selectors: list[Selector], page: list[Entity], elsewhere: set[Key], wanted: list[str] | None
) -> list[Ask]:
    """The asks of a query: completions of ``page`` (the local result), then discoveries,
    registration by registration. ``elsewhere`` holds the local entities the request
    selects that are not on the page (they are no provider's to discover)."""
    on_page: set[Key] = {(e["id"], e["type"]) for e in page}
    local = on_page | elsewhere
    asks = _Asks()
    for reg in regs:
        everything = provided(reg, wanted)
        for entity in page:
            if not reg_covers(reg, entity["id"], entity["type"]):
                continue
            if everything is None:
                continue  # the entity was found here; a registration of "all" adds nothing
            missing = [a for a in everything if a not in entity["attrs"]]
            if missing:
                asks.add(reg, missing, False, _entity_spec(entity["id"], entity["type"]))
        if everything == []:
            continue
        for selector in selectors:
            if selector.ids is not None and selector.id_pattern is None:
                for entity_id in selector.ids:
                    for entity_type in selector.types or (None,):
                        if _present(entity_id, entity_type, local):
                            continue
                        if reg_covers(reg, entity_id, entity_type):
                            asks.add(reg, everything, True, _entity_spec(entity_id, entity_type))
                continue
            for spec in reg["dataProvided"]["entities"]:
                for asked in _pattern_specs(selector, spec):
                    if "id" in asked and _present(asked["id"], asked.get("type"), local):
                        continue
                    asks.add(reg, everything, True, asked)
    return list(asks.items.values())


__all__ = ["Ask", "plan_query", "provided", "reg_covers", "spec_covers"]
