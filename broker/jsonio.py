"""JSON in and out of the broker, Orion's way: one import point for routes (see ngsi.jsonout)."""

from __future__ import annotations

from ngsi.jsonout import dumps, loads

__all__ = ["dumps", "loads"]
