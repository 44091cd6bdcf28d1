"""What discovery knows of a sensor, and what a query asks (plain, frozen data)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Sensor:
    """One measured attribute of one entity (a broker attribute, an agent device's attribute)."""

    tenant: str
    entity_id: str
    entity_type: str
    attr: str
    unit: str | None = None  # unitCode metadata or the device attribute's unit, as given
    lat: float | None = None
    lon: float | None = None
    seen: float | None = None  # epoch seconds of the last value
    owner: str | None = None
    service_path: str = "/"


@dataclass(frozen=True)
class Query:
    """``text``: what is looked for (``tempreature``, ``soil moisture %``); the filters are
    all optional: ``near`` (lat, lon, metres), ``within`` a polygon of (lat, lon) corners,
    ``seen_within`` seconds before ``now``, ``tenants`` the caller may read."""

    text: str
    near: tuple[float, float, float] | None = None
    within: tuple[tuple[float, float], ...] | None = None
    seen_within: float | None = None
    now: float = 0.0
    tenants: frozenset[str] | None = None
    limit: int = 20


@dataclass(frozen=True)
class Hit:
    sensor: Sensor
    score: float  # 0-100
    reasons: tuple[str, ...] = field(default_factory=tuple)
