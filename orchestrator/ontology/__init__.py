"""WAZIUP's ontologies, shared by the WAZIUP API's ``/ontologies`` routes and sensor discovery."""

from __future__ import annotations

from orchestrator.ontology.load import (
    WAZIUP_FIELDS,
    actuating_device_for,
    actuating_devices,
    names_of,
    normalize,
    quantity_kind_for,
    quantity_kinds,
    sensing_device_for,
    sensing_devices,
    unit_for,
    units,
)

__all__ = [
    "WAZIUP_FIELDS",
    "actuating_device_for",
    "actuating_devices",
    "names_of",
    "normalize",
    "quantity_kind_for",
    "quantity_kinds",
    "sensing_device_for",
    "sensing_devices",
    "unit_for",
    "units",
]
