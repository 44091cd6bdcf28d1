"""The JSON answers of QuantumLeap 1.0's query routes, built from an ``engine.Answer``.

Shapes follow quantumleap.yml's response *schemas*, with the key names FiLiP's
QuantumLeapClient reads (``entityId``, ``entityType``; the spec's examples write ``id``
and ``type``: docs/history.md, "Choices"). Instants are QuantumLeap's text
(``2018-01-05T15:44:34.000+00:00``); an aggregate without ``aggrPeriod`` has an empty
index and one value, as QuantumLeap's ``query_1T1E1A`` answers.

Route names are QuantumLeap's modules': 1T1E1A = one type, one entity, one attribute;
NTNENA = any types, entities and attributes; ``_value`` drops the wrappers.
"""

from __future__ import annotations

from typing import Any

from .engine import Answer, Block, LastValue
from .instants import format_instant


def _index(block: Block) -> list[str]:
    return [format_instant(t) for t in block.index if t is not None]


def _attributes(block: Block) -> list[dict[str, Any]]:
    return [{"attrName": attr, "values": values} for attr, values in block.values.items()]


def _only(answer: Answer) -> Block:
    return answer.blocks[0]


def entity_attr(answer: Answer, attr: str) -> dict[str, Any]:
    """``/v2/entities/{id}/attrs/{attr}``"""
    block = _only(answer)
    return {"entityId": block.entity_id, "entityType": block.entity_type, "attrName": attr, "index": _index(block),
            "values": block.values.get(attr, [])}


def entity_attr_value(answer: Answer, attr: str) -> dict[str, Any]:
    """``/v2/entities/{id}/attrs/{attr}/value``"""
    block = _only(answer)
    return {"index": _index(block), "values": block.values.get(attr, [])}


def entity(answer: Answer) -> dict[str, Any]:
    """``/v2/entities/{id}``"""
    block = _only(answer)
    return {"entityId": block.entity_id, "entityType": block.entity_type, "index": _index(block),
            "attributes": _attributes(block)}


def entity_value(answer: Answer) -> dict[str, Any]:
    """``/v2/entities/{id}/value``"""
    block = _only(answer)
    return {"index": _index(block), "values": _attributes(block)}


def _entity_series(block: Block, attr: str) -> dict[str, Any]:
    """One entity's values of one attribute: only the rows where it has one."""
    values = block.values.get(attr, [])
    kept = block.rows_of(attr)
    return {"entityId": block.entity_id, "index": [format_instant(t) for i in kept if (t := block.index[i]) is not None],
            "values": [values[i] for i in kept]}


def type_attr(answer: Answer, entity_type: str, attr: str) -> dict[str, Any]:
    """``/v2/types/{type}/attrs/{attr}``"""
    return {"entityType": entity_type, "attrName": attr,
            "entities": [_entity_series(b, attr) for b in answer.blocks if attr in b.values]}


def type_attr_value(answer: Answer, attr: str) -> dict[str, Any]:
    """``/v2/types/{type}/attrs/{attr}/value``"""
    return {"values": [_entity_series(b, attr) for b in answer.blocks if attr in b.values]}


def _entity_rows(block: Block) -> dict[str, Any]:
    return {"entityId": block.entity_id, "index": _index(block), "attributes": _attributes(block)}


def type_entities(answer: Answer, entity_type: str) -> dict[str, Any]:
    """``/v2/types/{type}``"""
    return {"entityType": entity_type, "entities": [_entity_rows(b) for b in answer.blocks]}


def type_entities_value(answer: Answer) -> dict[str, Any]:
    """``/v2/types/{type}/value``"""
    return {"values": [_entity_rows(b) for b in answer.blocks]}


def _types_of(answer: Answer, attr: str) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for block in answer.blocks:
        if attr in block.values:
            groups.setdefault(block.entity_type, []).append(_entity_series(block, attr))
    return [{"entityType": t, "entities": entities} for t, entities in groups.items()]


def attr(answer: Answer, name: str) -> dict[str, Any]:
    """``/v2/attrs/{attr}``"""
    return {"attrName": name, "types": _types_of(answer, name)}


def attr_value(answer: Answer, name: str) -> dict[str, Any]:
    """``/v2/attrs/{attr}/value``"""
    return {"values": _types_of(answer, name)}


def attrs(answer: Answer) -> dict[str, Any]:
    """``/v2/attrs``"""
    return {"attrs": [{"attrName": a, "types": _types_of(answer, a)} for a in answer.attrs if _types_of(answer, a)]}


def attrs_value(answer: Answer) -> dict[str, Any]:
    """``/v2/attrs/value``"""
    return {"values": [{"attrName": a, "types": _types_of(answer, a)} for a in answer.attrs if _types_of(answer, a)]}


def entity_list(listed: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """``/v2/entities``"""
    return [{"entityId": eid, "entityType": etype, "index": format_instant(t)} for etype, eid, t in listed]


def last(grouped: list[tuple[tuple[str, str], list[LastValue]]]) -> list[dict[str, Any]]:
    """``/v2/last`` (ours): per entity, every attribute's last value and last arrival."""
    return [
        {"entityId": eid, "entityType": etype, "attributes": [
            {"attrName": v.attr, "attrType": v.attr_type, "value": v.value, "index": format_instant(v.t),
             "lastSeen": format_instant(v.seen)} for v in values]}
        for (etype, eid), values in grouped
    ]
