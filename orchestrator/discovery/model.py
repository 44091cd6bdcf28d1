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
    source: str = "broker"  # where it was found: broker, iot-agent, registration
    kind: str | None = None  # what its metadata says it measures (quantity_kind, sensor_kind), if anything
    private: bool = False  # its entity's ``visibility`` is ``private`` (WAZIUP): for its owner only


@dataclass(frozen=True)
class Query:
    """``text``: what is looked for (``tempreature``, ``soil moisture %``); the filters are
    all optional: ``near`` (lat, lon, metres), ``within`` a polygon of (lat, lon) corners,
    ``seen_within`` seconds before ``now``, ``tenants`` the caller may read; ``viewer``:
    who asks (a username: private sensors of others are left out; ``None``: an
    administrator or the platform itself, everything)."""

    text: str
    near: tuple[float, float, float] | None = None
    within: tuple[tuple[float, float], ...] | None = None
    seen_within: float | None = None
    now: float = 0.0
    tenants: frozenset[str] | None = None
    limit: int = 20
    viewer: str | None = None


@dataclass(frozen=True)
class Hit:
    """A sensor a query found, how well (0-100) and why, in words a person can check."""

    sensor: Sensor
    score: float  # 0-100
    reasons: tuple[str, ...] = field(default_factory=tuple)
