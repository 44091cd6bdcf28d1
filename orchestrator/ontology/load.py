"""The WAZIUP ontologies: sensing devices, actuating devices, quantity kinds and units.

WAZIUP's cloud API serves four dictionaries under ``/api/v2/ontologies/…`` (contract §3, §7),
and sensor discovery uses the same ones as a synonym graph (sensor kind → quantity kind → units,
labels and aliases as synonyms). Both read them from here so that they never disagree.

Each entry keeps WAZIUP's own fields exactly (``id``, ``label``, and ``qk`` or ``units``). The
extras that discovery needs sit in separate keys (``symbols``, ``aliases``, ``ucum``,
``unece``), so the API can serve the WAZIUP shape by passing ``extras=False``.
"""

from __future__ import annotations

import copy
import json
import unicodedata
from functools import cache
from importlib import resources
from typing import Any

#: The fields each file has in WAZIUP's own ``ontologies/*.json``.
WAZIUP_FIELDS: dict[str, tuple[str, ...]] = {
    "sensing_devices": ("id", "label", "qk"),
    "actuating_devices": ("id", "label", "qk"),
    "quantity_kinds": ("id", "label", "units"),
    "units": ("id", "label"),
}

# The keys whose strings name an entry, in every file.
_NAME_KEYS = ("id", "label", "ucum", "unece")
_NAME_LISTS = ("symbols", "aliases")


def sensing_devices(*, extras: bool = True) -> list[dict[str, Any]]:
    """Sensor kinds (``{"id","label","qk"}``), a fresh copy the caller may change."""
    return _entries("sensing_devices", extras)


def actuating_devices(*, extras: bool = True) -> list[dict[str, Any]]:
    """Actuator kinds (``{"id","label","qk"}``), a fresh copy."""
    return _entries("actuating_devices", extras)


def quantity_kinds(*, extras: bool = True) -> list[dict[str, Any]]:
    """Quantity kinds (``{"id","label","units"}``), a fresh copy."""
    return _entries("quantity_kinds", extras)


def units(*, extras: bool = True) -> list[dict[str, Any]]:
    """Units (``{"id","label"}`` plus symbols, aliases, UCUM and UN/CEFACT codes), a fresh copy."""
    return _entries("units", extras)


def unit_for(text: str) -> dict[str, Any] | None:
    """The unit that ``text`` names (id, label, symbol, alias, UCUM or UN/CEFACT code), any case."""
    return _lookup("units", text)


def quantity_kind_for(text: str) -> dict[str, Any] | None:
    """The quantity kind that ``text`` names (id, label or alias such as ``TC``), any case."""
    return _lookup("quantity_kinds", text)


def sensing_device_for(text: str) -> dict[str, Any] | None:
    """The sensor kind that ``text`` names, including the names gateways give sensors (``TC``)."""
    return _lookup("sensing_devices", text)


def actuating_device_for(text: str) -> dict[str, Any] | None:
    """The actuator kind that ``text`` names (id, label or alias), any case."""
    return _lookup("actuating_devices", text)


def normalize(text: str) -> str:
    """The form names are compared in: NFKC (so ``µ``/``μ``, ``m³``/``m3`` and ``℃``/``°C``
    meet), case-folded, with runs of whitespace made one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def names_of(entry: dict[str, Any]) -> list[str]:
    """Every string that names ``entry``: what the lookups and a discovery index match on."""
    names = [entry[k] for k in _NAME_KEYS if isinstance(entry.get(k), str)]
    for key in _NAME_LISTS:
        names.extend(entry.get(key, ()))
    return names


def _entries(name: str, extras: bool) -> list[dict[str, Any]]:
    """A deep copy, so that no caller can change what the next one reads."""
    if extras:
        return copy.deepcopy(list(_load(name)))
    keep = WAZIUP_FIELDS[name]
    return [{k: copy.deepcopy(e[k]) for k in keep if k in e} for e in _load(name)]


def _lookup(name: str, text: str) -> dict[str, Any] | None:
    found = _index(name).get(normalize(text))
    return None if found is None else copy.deepcopy(found)


@cache
def _load(name: str) -> tuple[dict[str, Any], ...]:
    """Read a data file once; it ships inside the package (see pyproject's package-data)."""
    raw = resources.files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return tuple(json.loads(raw))


@cache
def _index(name: str) -> dict[str, dict[str, Any]]:
    """Normalized name -> entry. The first entry wins a clash; the tests forbid clashes."""
    index: dict[str, dict[str, Any]] = {}
    for entry in _load(name):
        for key in names_of(entry):
            index.setdefault(normalize(key), entry)
    return index
