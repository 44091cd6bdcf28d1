"""The history service's values: what ingestion hands the store and what queries read.

A *series* is the history of one attribute of one entity, under one tenant and service
path, with one effective NGSI type (``values.py``): its points are (time index, row,
value). A *row* numbers one entity of one notification: the attributes an entity
notified together share it, so that queries of several attributes line them up on the
same index, as QuantumLeap's one-row-per-notification tables do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class SeriesKey(NamedTuple):
    tenant: str
    service_path: str
    entity_type: str
    entity_id: str
    attr: str
    attr_type: str


@dataclass(frozen=True, slots=True)
class Series:
    """A stored series: its key and its number in the store."""

    id: int
    tenant: str
    service_path: str
    entity_type: str
    entity_id: str
    attr: str
    attr_type: str

    @property
    def entity(self) -> tuple[str, str]:
        """(type, id): what queries group by; the same entity in two service paths is one."""
        return (self.entity_type, self.entity_id)


class Sample(NamedTuple):
    """One attribute value of one notified entity, cast and ready to store (a tuple:
    ingestion makes one per value)."""

    attr: str
    attr_type: str
    num: float | None
    txt: str | None


@dataclass(frozen=True, slots=True)
class Element:
    """One entity of a notification (one element of ``data``)."""

    entity_id: str
    entity_type: str
    service_path: str
    time_index: int  # ms
    samples: tuple[Sample, ...]
    sequence: int | None = None  # Waziup-Sequence of this element, when the broker sent one


@dataclass(frozen=True, slots=True)
class Batch:
    """A whole notification: stored in one transaction, or not at all."""

    tenant: str
    subscription: str
    elements: tuple[Element, ...]
    received: int  # ms, the arrival time ("last seen")
    sequenced: bool = False  # Waziup-Sequence given: exactly-once by the subscription's cursor

    @property
    def values(self) -> int:
        return sum(len(e.samples) for e in self.elements)


@dataclass(frozen=True, slots=True)
class Ingested:
    """What a committed notification changed."""

    elements: int  # stored
    values: int
    skipped: int = 0  # elements at or below the subscription's cursor (already stored)


class Point(NamedTuple):
    t: int  # time index, ms
    rid: int  # row
    num: float | None
    txt: str | None


class Partial(NamedTuple):
    """Aggregates of some values, mergeable: non-null count, then over the numbers."""

    cnt: int
    total: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True, slots=True)
class Latest:
    """The last value of a series by time index, and when the series was last notified."""

    series: int
    t: int
    rid: int
    num: float | None
    txt: str | None
    seen: int  # ms, arrival time of its last notification


@dataclass(frozen=True, slots=True)
class SeriesFilter:
    """Which series a query or a delete covers (the id pattern is applied by the caller)."""

    tenant: str
    scopes: tuple[tuple[str, bool], ...] = (("/", True),)
    entity_ids: tuple[str, ...] | None = None
    entity_types: tuple[str, ...] | None = None
    attrs: tuple[str, ...] | None = None
