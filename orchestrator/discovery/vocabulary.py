"""The words discovery understands, from WAZIUP's ontology: each quantity kind (air
temperature...) is a *concept*, named by its id, label and aliases, by the aliases of the
sensor kinds that measure only it, and reached through its units (``degC`` hints at a
temperature). Pure, built once."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cache

from orchestrator import ontology


@dataclass(frozen=True)
class Term:
    text: str  # normalized
    concepts: frozenset[str]  # quantity kind ids
    why: str  # "alias of AirTemperature", "unit of AirTemperature, SoilTemperature"
    by_unit: bool = False


def words(text: str) -> list[str]:
    """Lower-case words of a name: ``soilMoisture`` and ``soil_moisture`` both give
    ``soil moisture``; digits split off (``TC1`` -> ``tc``, ``1``)."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    return [w for w in re.split(r"[^0-9a-zA-Z°%µμ/]+|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])",
                                ontology.normalize(spaced)) if w]


@cache
def terms() -> dict[str, Term]:
    """Normalized term -> what it means. A term naming several concepts means all of them."""
    concepts: dict[str, set[str]] = defaultdict(set)
    units: dict[str, set[str]] = defaultdict(set)
    for qk in ontology.quantity_kinds():
        for name in ontology.names_of(qk):
            key = ontology.normalize(name)
            concepts[key].add(qk["id"])
        for unit in qk.get("units", ()):
            units[unit].add(qk["id"])
    for device in ontology.sensing_devices():
        for name in ontology.names_of(device):
            key = ontology.normalize(name)
            concepts[key].update(device.get("qk", ()))
    out = {key: Term(key, frozenset(found), f"names {', '.join(sorted(found))}") for key, found in concepts.items()}
    for unit in ontology.units():
        kinds = frozenset(units.get(unit["id"], ()))
        for name in ontology.names_of(unit):
            key = ontology.normalize(name)
            if kinds and key not in out:
                out[key] = Term(key, kinds, f"unit {unit['id']} of {', '.join(sorted(kinds))}", by_unit=True)
    return out


def concepts_of(
    attr: str, entity_type: str, unit: str | None, kind: str | None = None
) -> tuple[frozenset[str], tuple[str, ...]]:
    """The concepts a sensor's names mean exactly, and why: the kind its metadata gives (a
    WAZIUP sensor's ``quantity_kind``: said on purpose, so it comes first), else its
    attribute's name, else its entity type;
    its unit only when none means anything and the unit is telling (``%`` is a unit of a
    dozen quantities, ``degC`` of temperatures only)."""
    table = terms()
    # the entity type speaks for an attribute that names nothing itself (a TemperatureSensor's
    # `value`), not for one that names something else (a TemperatureAlert's `active`)
    typed = entity_type if _generic(attr) else ""
    for name in (kind or "", attr, typed):
        if not name:
            continue
        for key in dict.fromkeys([ontology.normalize(name), *words(name), " ".join(words(name))]):
            term = table.get(key)
            if term is not None and not term.by_unit:
                return term.concepts, (f"`{name}`: {term.why}",)
    term = table.get(ontology.normalize(unit)) if unit else None
    if term is not None and len(term.concepts) <= MOST_CONCEPTS_OF_A_UNIT:
        return term.concepts, (f"`{unit}`: {term.why}",)
    return frozenset(), ()


MOST_CONCEPTS_OF_A_UNIT = 3
GENERIC_NAMES = frozenset({"value", "val", "v", "reading", "measure", "measurement", "data", "current", "raw", "level",
                           "sensor", "sample", "observation", "result", "x"})


def _generic(attr: str) -> bool:
    """An attribute name that says nothing of what is measured: ``value``, ``reading``, a one- or
    two-letter name the vocabulary does not know (``s1``), or none."""
    key = ontology.normalize(attr) if attr else ""
    return not key or key in GENERIC_NAMES or (len(key) <= 2 and key not in terms())
