"""The history's answers through the caller's release (``ngsi/release.py``, ``ctx.release``).

A privacy guard puts a ``Release`` on the request's context when the caller has a privacy
policy; the routes then hand each answer over, in the seam's plain shapes, and answer
what comes back. ``ctx.release`` is None for everyone else, and nothing here runs. This
module only converts; it imports ``ngsi.release``, never ``security``.

How each route maps:

* The history routes (``/v2/entities/{id}...``, ``/v2/types/...``, ``/v2/attrs...``): one
  ``Block`` per entity of the engine's answer (its index as ISO 8601 instants, None for an
  aggregate without ``aggrPeriod``; its values per attribute; its service path and
  attribute types from the series it was read from), one ``history()`` call with the
  query's ``aggrMethod`` and ``aggrPeriod``, then back: instants parsed to milliseconds
  (one the service cannot read back, or None, is left out of the index, as an aggregate
  without period is), ids and types as released (pseudonyms), an attribute the release
  left out gone from the answer and its attribute list, an entity left with no attribute
  gone; no entity left is the usual 404. Rendered as usual. A CSV answer's rows then go
  through ``table()`` (k-anonymity) and are written as they come back.
* ``/v2/entities``: one ``Block`` per entity with its last instant as the index and no
  values; back: id, type and instant as released.
* ``/v2/last``: one ``Block`` per entity with one row per attribute (its last instant; the
  attribute's value in its row, None in the others); back: each attribute's value and
  instant from its row. ``lastSeen`` (the arrival time) is not an instant a release
  generalizes, so it is null under a release. CSV: rows through ``table()`` as above.

An entity stored under several service paths (the same type and id notified under two
paths, which queries merge) is released under the first of them in sorted order.
:class:`Refused` is raised as :class:`Forbidden` (403).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ngsi.release import Block as Out
from ngsi.release import Refused, Release

from . import engine
from .errors import Forbidden, NotFound
from .instants import format_instant, parse_instant
from .model import Series

Entity = tuple[str, str]  # (type, id)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an answer's entities are stored: the series it was read from, per entity."""

    paths: dict[Entity, str]
    types: dict[Entity, dict[str, str]]

    @classmethod
    def of(cls, series: Iterable[Series]) -> Origin:
        paths: dict[Entity, str] = {}
        types: dict[Entity, dict[str, str]] = {}
        for s in sorted(series, key=lambda s: (s.service_path, s.attr_type)):
            paths.setdefault(s.entity, s.service_path)
            types.setdefault(s.entity, {}).setdefault(s.attr, s.attr_type)
        return cls(paths, types)

    def block(self, entity: Entity, index: list[str | None], values: dict[str, list[Any]]) -> Out:
        return Out(entity[1], entity[0], self.paths.get(entity, "/"), index, values,
                   {a: t for a, t in self.types.get(entity, {}).items() if a in values})


def _text(t: int | None) -> str | None:
    return None if t is None else format_instant(t)


def _ms(text: Any) -> int | None:
    return parse_instant(text) if isinstance(text, str) else None


def _again(text: Any) -> str | None:
    """A released instant in the service's own rendering (None when it cannot be read)."""
    return _text(_ms(text))


async def _history(release: Release, tenant: str, blocks: list[Out], method: str | None,
                   period: str | None) -> list[Out]:
    try:
        return await release.history(tenant, blocks, aggr_method=method, aggr_period=period)
    except Refused as exc:
        raise Forbidden(str(exc)) from None


def table(release: Release, tenant: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """CSV rows as the caller may have them."""
    try:
        return release.table(tenant, rows)
    except Refused as exc:
        raise Forbidden(str(exc)) from None


def _partners(sent: Sequence[Entity], released: Sequence[Out]) -> list[int | None]:
    """For each released block, the position of the entity it was made from (``sent``):
    the same position when as many came back, else the same (type, id), else None."""
    if len(sent) == len(released):
        return list(range(len(sent)))
    where = {entity: i for i, entity in enumerate(sent)}
    return [where.get((b.entity_type, b.entity_id)) for b in released]


def _fit(column: list[Any], n: int) -> list[Any]:
    return column[:n] + [None] * (n - len(column))


# -- history answers ---------------------------------------------------------------------------


def blocks_of(answer: engine.Answer, origin: Origin) -> list[Out]:
    return [origin.block((b.entity_type, b.entity_id), [_text(t) for t in b.index],
                         {a: list(column) for a, column in b.values.items()}) for b in answer.blocks]


def _back(original: engine.Block | None, out: Out) -> engine.Block:
    index = [_ms(t) for t in out.index]
    values = {a: _fit(list(column), len(index)) for a, column in out.values.items()}
    if original is not None and len(original.index) == len(index):
        missing = {a: set(gaps) for a, gaps in original.missing.items() if a in values}
    else:  # rows changed: a null is all that tells a gap
        missing = {a: {i for i, v in enumerate(column) if v is None} for a, column in values.items()}
    return engine.Block(out.entity_type, out.entity_id, index, values, {a: g for a, g in missing.items() if g})


def answer_of(answer: engine.Answer, released: list[Out]) -> engine.Answer:
    """The engine's answer made of the released blocks (see the module docstring)."""
    partners = _partners([(b.entity_type, b.entity_id) for b in answer.blocks], released)
    blocks = [_back(None if p is None else answer.blocks[p], out) for p, out in zip(partners, released)]
    blocks = [b for b in blocks if b.values]
    if not blocks:
        raise NotFound()
    present = dict.fromkeys(a for b in blocks for a in b.values)
    attrs = [a for a in answer.attrs if a in present] + [a for a in present if a not in answer.attrs]
    return engine.Answer(blocks, attrs)


async def history(release: Release, tenant: str, answer: engine.Answer, origin: Origin, *,
                  method: str | None, period: str | None) -> engine.Answer:
    """A history answer as the caller may have it."""
    released = await _history(release, tenant, blocks_of(answer, origin), method, period)
    return answer_of(answer, released)


# -- the entity list -----------------------------------------------------------------------------


async def entity_list(release: Release, tenant: str, listed: list[tuple[str, str, int]], origin: Origin,
                      ) -> list[dict[str, Any]]:
    """``/v2/entities`` as the caller may have it: rendered (``entityId``, ``entityType``, ``index``)."""
    sent = [origin.block((etype, eid), [_text(t)], {}) for etype, eid, t in listed]
    released = await _history(release, tenant, sent, None, None)
    found = [{"entityId": b.entity_id, "entityType": b.entity_type, "index": _again(b.index[0]) if b.index else None}
             for b in released]
    if not found:
        raise NotFound()
    return found


# -- last values ---------------------------------------------------------------------------------


Grouped = list[tuple[Entity, list[engine.LastValue]]]


def _last_block(origin: Origin, entity: Entity, values: list[engine.LastValue]) -> Out:
    n = len(values)
    columns = {v.attr: [None] * i + [v.value] + [None] * (n - i - 1) for i, v in enumerate(values)}
    return origin.block(entity, [_text(v.t) for v in values], columns)


def _row_of(attr: str, column: list[Any], positions: dict[str, int] | None) -> int | None:
    if positions is not None:
        return positions.get(attr)
    return next((i for i, v in enumerate(column) if v is not None), None)


def _last_attributes(out: Out, original: list[engine.LastValue] | None) -> list[dict[str, Any]]:
    positions = None if original is None else {v.attr: i for i, v in enumerate(original)}
    types = {} if original is None else {v.attr: v.attr_type for v in original}
    found = []
    for attr, column in out.values.items():
        row = _row_of(attr, column, positions)
        if row is None or row >= len(column) or row >= len(out.index):
            continue
        found.append({"attrName": attr, "attrType": out.attr_types.get(attr, types.get(attr, "")),
                      "value": column[row], "index": _again(out.index[row]), "lastSeen": None})
    return found


async def last(release: Release, tenant: str, grouped: Grouped, origin: Origin) -> list[dict[str, Any]]:
    """``/v2/last`` as the caller may have it, rendered as ``render.last`` renders it."""
    if not grouped:
        return []  # nothing to release (an empty answer charges no budget)
    sent = [_last_block(origin, entity, values) for entity, values in grouped]
    released = await _history(release, tenant, sent, None, None)
    found = []
    for p, out in zip(_partners([entity for entity, _ in grouped], released), released):
        attributes = _last_attributes(out, None if p is None else grouped[p][1])
        if attributes:
            found.append({"entityId": out.entity_id, "entityType": out.entity_type, "attributes": attributes})
    return found


def last_rows(rendered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rendered last values as CSV rows (``csvout.LAST_COLUMNS``)."""
    return [{"entityId": e["entityId"], "entityType": e["entityType"], **a}
            for e in rendered for a in e["attributes"]]
