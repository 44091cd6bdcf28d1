"""The entity side of the broker: every read and write of the /v2 entity API, over a Store.

Routes parse HTTP; this module applies NGSI semantics (Orion's update actions, partial
failures, dates, expiry, locations) with pure ``ngsi`` code, and persists through the
store. Every write ends in ``_emit``, where subscriptions hook in: one place sees each
create, update and delete, whatever endpoint caused it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ngsi.context import RequestContext, internal
from ngsi.errors import (
    ATTRIBUTE_NOT_FOUND,
    ENTITY_NOT_FOUND,
    TOO_MANY_ENTITIES,
    BadRequest,
    NGSIError,
    NotFound,
    PartialUpdate,
    TooManyResults,
    Unprocessable,
)
from ngsi.geo import entity_location
from ngsi.model import DATE_TYPES, DEFAULT_ENTITY_TYPE, make_attr
from ngsi.operators import ABSENT, OperatorError, is_operation
from ngsi.operators import apply as apply_operators

from .changes import Change, ChangeListener
from .store import AlreadyExists, Selector, Store, StoreError
from .store.base import Write

Entity = dict[str, Any]

APPEND = "append"
APPEND_STRICT = "appendStrict"
UPDATE = "update"
REPLACE = "replace"
DELETE = "delete"
ACTIONS = (APPEND, APPEND_STRICT, UPDATE, DELETE, REPLACE)


def _now() -> float:
    return time.time()


def _label(entity_id: str, entity_type: str | None) -> str:
    return entity_id if entity_type is None else f"{entity_id}/{entity_type}"


@dataclass
class Outcome:
    """Per-entity failures of a multi-part write, rendered as Orion renders them."""

    kind: str  # "do not exist" or "already exist"
    succeeded: bool = False
    failures: list[tuple[str, list[str] | None]] = field(default_factory=list)  # None: entity itself
    # A context provider failed to take its attributes: the partial update is then a 404
    # ("due to failing or missing CPrs, a 404 Not Found", context_providers.md), not a 422.
    provider_failed: bool = False

    def fail(self, label: str, attrs: list[str] | None) -> None:
        self.failures.append((label, attrs))

    def raise_if_failed(self) -> None:
        if not self.failures:
            return
        parts = []
        for i, (label, attrs) in enumerate(self.failures):
            if attrs is None:
                parts.append(f"{label} - [entity itself]" if i == 0 else f"{label} [entity itself]")
            else:
                parts.append(f"{label} - [ {', '.join(attrs)} ]")
        prefix = "do not exist: " if self.kind == "do not exist" else (
            "one or more of the attributes in the request already exist: "
        )
        description = prefix + ", ".join(parts)
        if self.succeeded:
            raise PartialUpdate(description, status=404 if self.provider_failed else None)
        if all(attrs is None for _, attrs in self.failures):
            raise NotFound(description)
        raise Unprocessable(description)


def _locate(entity: Entity, previous: dict[str, Any] | None = None) -> None:
    """Recompute the entity's location from its attributes."""
    location = entity_location(entity["attrs"], previous)
    if location is None:
        entity.pop("location", None)
    else:
        entity["location"] = location


def _take_expiry(entity: Entity, attrs: dict[str, Any]) -> None:
    """dateExpires is a builtin: kept as the entity's expDate, not as an attribute."""
    attr = attrs.pop("dateExpires", None)
    if attr is None:
        return
    if attr["value"] is None:
        entity.pop("expDate", None)
        return
    if attr["type"] not in DATE_TYPES:
        raise BadRequest("error processing date expiration attribute, see log traces")
    entity["expDate"] = attr["value"]


# Orion's key of an entity (id, type, service path) was a MongoDB index key, limited to
# 1024 bytes with the document's own overhead; Orion refuses longer combinations. The
# overhead is approximate (no case pins it closer than "somewhere below 1022").
MAX_KEY_LENGTH = 1000
KEY_TOO_LONG = "Too long entity id/type/servicePath combination"


def _operator_error(message: str) -> BadRequest:
    """A refused update operator. Orion passes MongoDB's refusal on as a 500; bad input here
    is a 400 with the same explanation (our rule: client mistakes never look like crashes)."""
    return BadRequest(f"invalid update operator: {message}")


def _operated(name: str, attr: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """An attribute whose value is an update operator, with the value worked out.

    None: the attribute is not to exist (e.g. ``$unset`` or ``$pull`` of an attribute
    that had no value). Plain values come back unchanged.
    """
    if not is_operation(attr["value"]):
        return attr
    # A new attribute starts from the manual's reference values, 0 for $min/$max on a
    # number, which for a DateTime (epoch seconds) is the epoch: {"$min": date} gives 1970.
    current = ABSENT if previous is None else previous.get("value")
    try:
        value = apply_operators(attr["value"], current, base=f"attrs.{name}.value")
    except OperatorError as exc:
        raise _operator_error(str(exc)) from None
    if value is ABSENT:
        return None
    return dict(attr, value=value)


def _stamp(attr: dict[str, Any], now: float, previous: dict[str, Any] | None, override_md: bool) -> dict[str, Any]:
    attr = dict(attr)
    if previous is not None:
        attr["creDate"] = previous.get("creDate", now)
        if not override_md:
            merged = dict(previous.get("md") or {})
            merged.update(attr["md"])
            attr["md"] = merged
    else:
        attr["creDate"] = now
    attr["modDate"] = now
    return attr


class EntityService:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.listeners: list[ChangeListener] = []

    async def _emit(
        self, ctx: RequestContext, action: str, before: Entity | None, after: Entity | None, changed: list[str],
        *, operated: bool = False,
    ) -> None:
        """Tell the listeners. ``operated``: an update operator wrote; Orion cannot compare
        the values it hands to MongoDB, so such an update always counts as a change."""
        if not self.listeners:
            return
        change = Change(ctx, action, before, after, tuple(changed), forced=operated or ctx.forced)
        for listener in self.listeners:
            await listener(change)

    # -- reads ---------------------------------------------------------------------------

    async def find_one(
        self, ctx: RequestContext, scopes: tuple[tuple[str, bool], ...], entity_id: str, entity_type: str | None
    ) -> Entity:
        return released(ctx, visible_to(ctx, await self._find_one(ctx, scopes, entity_id, entity_type)))

    async def _find_one(
        self, ctx: RequestContext, scopes: tuple[tuple[str, bool], ...], entity_id: str, entity_type: str | None
    ) -> Entity:
        selector = Selector(ids=(entity_id,), types=None if entity_type is None else (entity_type,), service_paths=scopes)
        found = await self.store.find(ctx.tenant, selector, limit=2)
        if not found:
            raise NotFound(ENTITY_NOT_FOUND)
        if len(found) > 1:
            raise TooManyResults(TOO_MANY_ENTITIES)
        return found[0]

    async def find(
        self, ctx: RequestContext, selector: Selector, *, limit: int | None = None, offset: int = 0
    ) -> list[Entity]:
        """The entities a read selects, each reduced to what the caller may see (the
        projection an authorization guard put in the context; queries then filter on
        visible attributes only, so a hidden value cannot be probed with ``q``)."""
        found = await self.store.find(ctx.tenant, selector, limit=limit, offset=offset)
        if ctx.attrs_visible is None and not ctx.attrs_hidden:
            return found
        return [visible_to(ctx, entity) for entity in found]

    async def count(self, ctx: RequestContext, selector: Selector) -> int:
        return await self.store.count(ctx.tenant, selector)

    # -- creation ------------------------------------------------------------------------

    def _new_entity(self, parsed: Entity, service_path: str, now: float) -> Entity:
        entity_type = parsed["type"] if parsed.get("type") else DEFAULT_ENTITY_TYPE
        if len(parsed["id"].encode()) + len(entity_type.encode()) + len(service_path.encode()) > MAX_KEY_LENGTH:
            raise BadRequest(KEY_TOO_LONG)
        entity: Entity = {
            "id": parsed["id"],
            "type": parsed["type"] if parsed.get("type") else DEFAULT_ENTITY_TYPE,
            "servicePath": service_path,
            "attrs": {},
            "creDate": now,
            "modDate": now,
        }
        attrs = dict(parsed["attrs"])
        _take_expiry(entity, attrs)
        entity["attrs"] = _fresh_attrs(attrs, now)
        _locate(entity)
        return entity

    async def create(
        self, ctx: RequestContext, service_path: str, parsed: Entity, *, upsert: bool = False
    ) -> tuple[Entity, bool]:
        """POST /v2/entities: returns (entity, created). With upsert an existing entity gets an append."""
        tenant = ctx.tenant
        now = _now()
        entity = self._new_entity(parsed, service_path, now)
        entity_type = entity["type"]
        if upsert:
            existing = await self.store.find(
                tenant, Selector(ids=(entity["id"],), types=(entity_type,), service_paths=((service_path, False),)), limit=1
            )
            if existing:
                await self.write(ctx, ((service_path, False),), parsed | {"type": entity_type}, APPEND, label_type=True)
                return existing[0], False
        try:
            await self.store.insert(tenant, entity)
        except AlreadyExists:
            raise Unprocessable("Already Exists") from None
        await self._emit(ctx, "create", None, entity, list(entity["attrs"]))
        return entity, True

    # -- updates -------------------------------------------------------------------------

    def _apply(self, entity: Entity, attrs: dict[str, Any], action: str, outcome: Outcome, label: str, now: float,
               override_md: bool) -> list[str]:
        """Apply one action to an entity in place; returns changed attribute names, records failures."""
        attrs = dict(attrs)
        if "dateExpires" in attrs:
            if action == DELETE:
                attrs.pop("dateExpires")
                entity.pop("expDate", None)
            else:
                _take_expiry(entity, attrs)
        current = entity["attrs"]
        previous_attrs = dict(current)
        changed: list[str] = []
        missing: list[str] = []
        if action == REPLACE:
            entity["attrs"] = _fresh_attrs(attrs, now)
            changed = list(entity["attrs"])
        elif action == DELETE:
            for name in attrs:
                if name in current:
                    del current[name]
                    changed.append(name)
                else:
                    missing.append(name)
        else:
            for name, attr in attrs.items():
                exists = name in current
                if action == UPDATE and not exists:
                    missing.append(name)
                    continue
                if action == APPEND_STRICT and exists:
                    missing.append(name)
                    continue
                operated = _operated(name, attr, current.get(name))
                if operated is None:
                    continue
                current[name] = _stamp(operated, now, current.get(name), override_md)
                changed.append(name)
        if missing:
            outcome.fail(label, missing)
        if changed or action == REPLACE or "dateExpires" in attrs:
            outcome.succeeded = outcome.succeeded or bool(changed) or action == REPLACE
        entity["modDate"] = now
        _locate(entity, previous_attrs)
        return changed

    def _write_step(
        self, scopes: tuple[tuple[str, bool], ...], parsed: Entity, action: str, *, label_type: bool,
        override_md: bool, create_path: str | None,
    ) -> _WriteStep:
        return _WriteStep(self, scopes, parsed, action, label_type, override_md, create_path)

    async def write(
        self,
        ctx: RequestContext,
        scopes: tuple[tuple[str, bool], ...],
        parsed: Entity,
        action: str,
        *,
        label_type: bool = False,
        override_md: bool = False,
        outcome: Outcome | None = None,
        create_path: str | None = None,
    ) -> Outcome:
        """Apply an update action to the entity ``parsed`` names (id, optional type, attrs).

        Failures are collected in ``outcome`` so that batch operations report them all;
        a single-entity request raises at the end (``raise_if_failed``).
        """
        outcome = outcome if outcome is not None else Outcome(_outcome_kind(action))
        step = self._write_step(
            scopes, parsed, action, label_type=label_type, override_md=override_md, create_path=create_path
        )
        await self.store.modify(ctx.tenant, step.selector, step)
        await self._finish(ctx, step, outcome)
        return outcome

    async def write_many(
        self,
        ctx: RequestContext,
        scopes: tuple[tuple[str, bool], ...],
        entities: list[Entity],
        action: str,
        outcome: Outcome,
        *,
        override_md: bool = False,
        create_path: str | None = None,
    ) -> None:
        """``write`` for each entity of a batch, in order, as one store call (``modify_many``:
        one transaction on PostgreSQL); listeners hear of each write in order once it is
        stored. A step that raises (an ambiguous entity) ends the batch after the writes
        before it, as a loop of ``write`` would."""
        steps = [
            self._write_step(
                scopes, parsed, action, label_type=bool(parsed.get("type")), override_md=override_md,
                create_path=create_path,
            )
            for parsed in entities
        ]
        try:
            await self.store.modify_many(ctx.tenant, [(step.selector, step) for step in steps])
        except StoreError:
            raise  # what was stored is unknown: nothing to tell
        except Exception:
            for step in steps:  # a step raised: those before it are stored
                if step.finished:
                    await self._finish(ctx, step, outcome)
            raise
        for step in steps:
            await self._finish(ctx, step, outcome)

    async def _finish(self, ctx: RequestContext, step: _WriteStep, outcome: Outcome) -> None:
        """Merge what the last run of ``step`` decided into ``outcome``; tell the listeners."""
        if step.trial is not None:
            outcome.failures.extend(step.trial.failures)
            outcome.succeeded = outcome.succeeded or step.trial.succeeded
        if step.done is not None:
            what, before, after, changed, operated = step.done
            if what != "update":
                outcome.succeeded = True
            await self._emit(ctx, what, before, after, changed, operated=operated)

    async def _modify_one(
        self, ctx: RequestContext, scopes: tuple[tuple[str, bool], ...], entity_id: str, entity_type: str | None,
        change: Callable[[Entity], None],
    ) -> tuple[Entity, Entity]:
        """``find_one``, ``change`` in place, save: one atomic store step. Returns (before, after)."""
        selector = Selector(ids=(entity_id,), types=None if entity_type is None else (entity_type,), service_paths=scopes)
        pair: list[tuple[Entity, Entity]] = []

        def step(found: list[Entity]) -> Write:
            if not found:
                raise NotFound(ENTITY_NOT_FOUND)
            if len(found) > 1:
                raise TooManyResults(TOO_MANY_ENTITIES)
            entity = found[0]
            before = _copy_entity(entity)
            change(entity)
            pair[:] = [(before, entity)]
            return ("save", entity)

        await self.store.modify(ctx.tenant, selector, step)
        return pair[0]

    async def update_attr_value(
        self, ctx: RequestContext, scopes: tuple[tuple[str, bool], ...], entity_id: str, entity_type: str | None, name: str,
        value: Any,
    ) -> None:
        """PUT /v2/entities/{id}/attrs/{name}/value: the value changes, type and metadata stay."""
        def change(entity: Entity) -> None:
            attr = entity["attrs"].get(name)
            if attr is None:
                raise NotFound(ATTRIBUTE_NOT_FOUND)
            checked = make_attr(attr["type"], value, attr.get("md") or {})
            operated = _operated(name, checked, attr)
            now = _now()
            attr["value"] = None if operated is None else operated["value"]
            attr["modDate"] = now
            entity["modDate"] = now
            _locate(entity)

        before, entity = await self._modify_one(ctx, scopes, entity_id, entity_type, change)
        await self._emit(ctx, "update", before, entity, [name], operated=is_operation(value))

    async def put_attr(
        self, ctx: RequestContext, scopes: tuple[tuple[str, bool], ...], entity_id: str, entity_type: str | None, name: str,
        attr: dict[str, Any], *, override_md: bool = False,
    ) -> None:
        """PUT /v2/entities/{id}/attrs/{name}: the attribute must exist."""
        changed: list[str] = []

        def change(entity: Entity) -> None:
            if name not in entity["attrs"] and not (name == "dateExpires" and "expDate" in entity):
                raise NotFound(ATTRIBUTE_NOT_FOUND)
            outcome = Outcome("do not exist")
            changed[:] = self._apply(entity, {name: attr}, UPDATE, outcome, entity_id, _now(), override_md)

        before, entity = await self._modify_one(ctx, scopes, entity_id, entity_type, change)
        await self._emit(ctx, "update", before, entity, changed, operated=is_operation(attr["value"]))

    async def delete_attr(
        self, ctx: RequestContext, scopes: tuple[tuple[str, bool], ...], entity_id: str, entity_type: str | None, name: str
    ) -> None:
        def change(entity: Entity) -> None:
            if name == "dateExpires" and "expDate" in entity and name not in entity["attrs"]:
                del entity["expDate"]
            elif name in entity["attrs"]:
                del entity["attrs"][name]
            else:
                raise NotFound(ATTRIBUTE_NOT_FOUND)
            entity["modDate"] = _now()
            _locate(entity)

        before, entity = await self._modify_one(ctx, scopes, entity_id, entity_type, change)
        await self._emit(ctx, "update", before, entity, [name])

    async def delete(
        self, ctx: RequestContext, scopes: tuple[tuple[str, bool], ...], entity_id: str, entity_type: str | None
    ) -> None:
        entity = await self._find_one(ctx, scopes, entity_id, entity_type)
        await self.store.delete(ctx.tenant, entity)
        await self._emit(ctx, "delete", entity, None, list(entity["attrs"]))

    async def purge_expired(self) -> int:
        purged = await self.store.purge_expired(_now())
        for tenant, entity in purged:
            await self._emit(internal(tenant), "delete", entity, None, list(entity["attrs"]))
        return len(purged)


def released(ctx: RequestContext, entity: Entity) -> Entity:
    """The entity as a read answers it to this caller: through the caller's privacy
    release when a guard set one (``ngsi/release.py``), as it is otherwise. Reads only:
    what is written back is never a released copy."""
    if ctx.release is None:
        return entity
    return ctx.release.entity(ctx.tenant, entity)


def visible_to(ctx: RequestContext, entity: Entity) -> Entity:
    visible, hidden = ctx.attrs_visible, ctx.attrs_hidden
    if visible is None and not hidden:
        return entity
    kept = {
        name: attr for name, attr in entity["attrs"].items()
        if (visible is None or name in visible) and name not in hidden
    }
    return dict(entity, attrs=kept)


def _uses_operators(attrs: dict[str, Any]) -> bool:
    return any(is_operation(attr["value"]) for attr in attrs.values())


def _fresh_attrs(attrs: dict[str, Any], now: float) -> dict[str, Any]:
    """Attributes of a new (or replaced) entity: operators work on absent values."""
    result: dict[str, Any] = {}
    for name, attr in attrs.items():
        operated = _operated(name, attr, None)
        if operated is not None:
            result[name] = _stamp(operated, now, None, True)
    return result


def _copy_entity(entity: Entity) -> Entity:
    copy = dict(entity)
    copy["attrs"] = {name: dict(attr) for name, attr in entity["attrs"].items()}
    return copy


__all__ = ["ACTIONS", "EntityService", "NGSIError", "Outcome"]


def _outcome_kind(action: str) -> str:
    return "already exist" if action == APPEND_STRICT else "do not exist"


class _WriteStep:
    """The read-modify-write step of one entity update, handed to ``Store.modify``: the
    store may run it more than once (a PostgreSQL write that lost a race runs again on the
    row as it is now), so each run starts afresh and only the last one counts: ``trial``
    (its failures) and ``done`` (what to tell the listeners) are read once the store
    returns; ``finished`` says that run ended without raising."""

    def __init__(
        self, service: EntityService, scopes: tuple[tuple[str, bool], ...], parsed: Entity, action: str,
        label_type: bool, override_md: bool, create_path: str | None,
    ) -> None:
        self.service = service
        self.parsed = parsed
        self.action = action
        self.override_md = override_md
        self.create_path = create_path
        self.entity_type = parsed.get("type") or None
        self.label = _label(parsed["id"], self.entity_type if label_type else None)
        self.selector = Selector(
            ids=(parsed["id"],), types=None if self.entity_type is None else (self.entity_type,), service_paths=scopes
        )
        self.trial: Outcome | None = None
        self.done: tuple[Any, ...] | None = None
        self.finished = False

    def __call__(self, found: list[Entity]) -> Write:
        self.trial = Outcome(_outcome_kind(self.action))
        self.done = None
        self.finished = False
        write = self._decide(found, self.trial)
        self.finished = True
        return write

    def _decide(self, found: list[Entity], outcome: Outcome) -> Write:
        parsed, action = self.parsed, self.action
        now = _now()
        if not found:
            if action in (APPEND, APPEND_STRICT) and self.create_path is not None:
                new = dict(parsed)
                new["type"] = self.entity_type or DEFAULT_ENTITY_TYPE
                entity = self.service._new_entity(new, self.create_path, now)
                self.done = ("create", None, entity, list(entity["attrs"]), False)
                return ("insert", entity)
            outcome.fail(self.label, None)
            return None
        if len(found) > 1:
            raise TooManyResults(TOO_MANY_ENTITIES)
        entity = found[0]
        if action == DELETE and not parsed["attrs"]:
            self.done = ("delete", entity, None, list(entity["attrs"]), False)
            return ("delete", entity)
        before = _copy_entity(entity)
        changed = self.service._apply(entity, parsed["attrs"], action, outcome, self.label, now, self.override_md)
        if changed or action == REPLACE or entity.get("expDate") != before.get("expDate"):
            self.done = ("update", before, entity, changed, _uses_operators(parsed["attrs"]))
            return ("save", entity)
        return None
