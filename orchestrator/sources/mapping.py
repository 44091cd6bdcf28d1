"""Records to NGSI-v2 entities, by the JMESPath expressions of a connector's ``entity`` block.

Pure. The expressions are compiled once per source (``Mapper``), then each record is one
entity or is skipped: a record without an id or a type the broker accepts can't become an
entity, so it is counted (``Mapped.skipped``, with a few reasons kept for the status)
instead of failing the whole batch. A value that can't be read as its declared type, or
that holds characters the broker refuses in text (``<>"'=;()``), would make the broker
refuse the whole batch: that attribute alone is left out and counted (``Mapped.dropped``).

Coercions: CSV cells are strings, so ``Number`` and ``Boolean`` read numbers and booleans
from text; ``geo:point`` is built as the broker wants it, ``"lat,lon"``, from a GeoJSON-order
pair ``[lon, lat]``, from ``{lat, lon}`` / ``{latitude, longitude}`` or from a ``"lat,lon"``
text; ``DateTime`` values and the record's timestamp are normalised to ISO 8601 UTC
(from ISO text with any offset, or epoch seconds or milliseconds). The timestamp becomes
the entity's ``TimeInstant`` attribute and each attribute's ``TimeInstant`` metadata, as
the IoT agent writes them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import jmespath
import jmespath.exceptions
from jmespath.parser import ParsedResult

from ngsi.dates import format_datetime, parse_datetime
from ngsi.model import infer_type
from ngsi.names import MAX_NAME_LENGTH, forbidden_id_chars, forbidden_value_chars

from .definition import EntitySpec

MAX_REASONS: Final = 5
_EPOCH_RANGE: Final = (-2208988800.0, 253402300799.0)  # 1900-01-01 .. 9999-12-31
_MILLIS: Final = 1e11  # an epoch number beyond this is milliseconds (1e11 s is the year 5138)
_NUMERIC: Final = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})


class Unreadable(ValueError):
    """A value that can't be read as its declared type (the attribute is left out)."""


@dataclass(frozen=True)
class Mapped:
    entities: list[dict[str, Any]]
    skipped: int = 0  # records that gave no entity
    dropped: int = 0  # attribute values left out
    reasons: tuple[str, ...] = ()  # the first few reasons records were skipped


@dataclass(frozen=True)
class _Attr:
    name: str
    value: ParsedResult
    type: str
    unit_code: str


class Mapper:
    """One source's ``entity`` block, compiled: ``map(records)`` gives the entities."""

    def __init__(self, spec: EntitySpec) -> None:
        self.id = jmespath.compile(spec.id)
        self.type = jmespath.compile(spec.type)
        self.timestamp = jmespath.compile(spec.timestamp) if spec.timestamp else None
        self.attrs = tuple(_Attr(a.name, jmespath.compile(a.value), a.type, a.unit_code) for a in spec.attrs)

    def map(self, records: Iterable[Any]) -> Mapped:
        entities: list[dict[str, Any]] = []
        skipped = dropped = 0
        reasons: list[str] = []
        for number, record in enumerate(records):
            try:
                entity, left_out = self.entity(record)
            except Unreadable as exc:
                skipped += 1
                if len(reasons) < MAX_REASONS:
                    reasons.append(f"record {number}: {exc}")
                continue
            entities.append(entity)
            dropped += left_out
        return Mapped(entities, skipped, dropped, tuple(reasons))

    def entity(self, record: Any) -> tuple[dict[str, Any], int]:
        """The entity of one record and the number of values left out; Unreadable: skip it."""
        entity_id = _name("id", _search(self.id, record))
        entity_type = _name("type", _search(self.type, record))
        stamp = None
        if self.timestamp is not None:
            found = _search(self.timestamp, record)
            stamp = normalise_timestamp(found)
            if found is not None and stamp is None:
                raise Unreadable(f"timestamp {_short(found)} is no date")
        entity: dict[str, Any] = {"id": entity_id, "type": entity_type}
        dropped = 0
        for attr in self.attrs:
            try:
                raw = attr.value.search(record)
            except jmespath.exceptions.JMESPathError:
                dropped += 1
                continue
            if raw is None or (isinstance(raw, list) and raw and all(item is None for item in raw)):
                continue  # missing (a multi-select like [lon, lat] of missing fields too)
            try:
                attr_type, value = coerce(raw, attr.type)
            except Unreadable:
                dropped += 1
                continue
            metadata: dict[str, Any] = {}
            if attr.unit_code:
                metadata["unitCode"] = {"type": "Text", "value": attr.unit_code}
            if stamp is not None:
                metadata["TimeInstant"] = {"type": "DateTime", "value": stamp}
            entity[attr.name] = {"type": attr_type, "value": value, "metadata": metadata}
        if stamp is not None:
            entity["TimeInstant"] = {"type": "DateTime", "value": stamp}
        return entity, dropped


def select_records(expression: ParsedResult | None, document: Any) -> list[Any]:
    """The records of a fetched document: what ``expression`` selects (a list, or one
    record), the document itself without one. None selects nothing."""
    found = document if expression is None else expression.search(document)
    if found is None:
        return []
    return list(found) if isinstance(found, list) else [found]


def _search(expression: ParsedResult, record: Any) -> Any:
    try:
        return expression.search(record)
    except jmespath.exceptions.JMESPathError as exc:
        raise Unreadable(str(exc).splitlines()[0]) from None


def _name(what: str, value: Any) -> str:
    """An entity id or type: text (numbers are written out) the broker accepts as a name."""
    if value is None or value == "":
        raise Unreadable(f"no entity {what}")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Unreadable(f"entity {what} {_short(value)} is no text")
    text = _number_text(value) if not isinstance(value, str) else value
    if len(text.encode()) > MAX_NAME_LENGTH or forbidden_id_chars(text):
        raise Unreadable(f"entity {what} {_short(text)} has characters the broker refuses")
    return text


def _number_text(value: int | float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- coercions


def coerce(value: Any, declared: str) -> tuple[str, Any]:
    """(type, value) of an attribute: ``value`` read as ``declared`` ("": guessed)."""
    if declared in ("Number", "Integer", "Float"):
        return declared, to_number(value)
    if declared == "Boolean":
        return declared, to_boolean(value)
    if declared == "geo:point":
        return declared, to_point(value)
    if declared == "DateTime":
        stamp = normalise_timestamp(value)
        if stamp is None:
            raise Unreadable("no date")
        return declared, stamp
    if declared == "geo:json":
        if not isinstance(value, dict) or not isinstance(value.get("type"), str):
            raise Unreadable("no GeoJSON geometry")
        return declared, _checked_text(value)
    if declared == "Text":
        if isinstance(value, (dict, list)):
            raise Unreadable("no text")
        text = value if isinstance(value, str) else _scalar_text(value)
        return declared, _checked_text(text)
    if not declared:
        declared = infer_type(value)  # as Orion types a value given without one
        if declared == "Number" and not math.isfinite(value):
            raise Unreadable("not a finite number")
    return declared, _checked_text(value)


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _number_text(value) if isinstance(value, (int, float)) else str(value)


def _checked_text(value: Any) -> Any:
    """``value`` if no string in it holds a character the broker refuses."""
    if isinstance(value, str):
        if forbidden_value_chars(value):
            raise Unreadable("characters the broker refuses")
    elif isinstance(value, list):
        for item in value:
            _checked_text(item)
    elif isinstance(value, dict):
        for item in value.values():
            _checked_text(item)
    elif isinstance(value, float) and not math.isfinite(value):
        raise Unreadable("not a finite number")
    return value


def to_number(value: Any) -> int | float:
    """A finite number, from a number or its text (``"21.5"``, ``" 3 "``, ``"1e3"``)."""
    if isinstance(value, bool):
        raise Unreadable("a boolean is no number")
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 64 or not _NUMERIC.fullmatch(text):  # (int() refuses over 4300 digits, slowly)
            raise Unreadable(f"{_short(value)} is no number")
        number: int | float = int(text) if text.lstrip("+-").isdigit() else float(text)
    elif isinstance(value, (int, float)):
        number = value
    else:
        raise Unreadable("no number")
    if isinstance(number, float) and not math.isfinite(number):
        raise Unreadable("not a finite number")
    return number


def to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise Unreadable("no boolean")


def to_point(value: Any) -> str:
    """``"lat,lon"`` from ``[lon, lat]`` (GeoJSON order), ``{lat, lon}`` or ``"lat,lon"``."""
    if isinstance(value, list) and len(value) in (2, 3):
        lon, lat = value[0], value[1]
    elif isinstance(value, dict):
        lat = value.get("lat", value.get("latitude"))
        lon = value.get("lon", value.get("lng", value.get("longitude")))
    elif isinstance(value, str) and value.count(",") == 1:
        lat, lon = value.split(",")
    else:
        raise Unreadable("no point")
    if lat is None or lon is None:
        raise Unreadable("no point")
    lat_n, lon_n = to_number(lat), to_number(lon)
    if not (-90 <= lat_n <= 90 and -180 <= lon_n <= 180):
        raise Unreadable("coordinates out of range")
    return f"{_number_text(lat_n)},{_number_text(lon_n)}"


def normalise_timestamp(value: Any) -> str | None:
    """ISO 8601 UTC with milliseconds (``2024-05-01T10:00:00.000Z``) from ISO text (any
    offset; ``T`` or a space between date and time) or epoch seconds or milliseconds
    (numbers or their text); None when it is no date (or before 1900 or after 9999)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= 64 and _NUMERIC.fullmatch(text):
            return normalise_timestamp(float(text))
        if len(text) > 10 and text[10] == " ":
            text = text[:10] + "T" + text[11:]
        seconds = parse_datetime(text) if len(text) <= 64 else None
        if seconds is None:
            return None
    elif isinstance(value, (int, float)):
        if not math.isfinite(value):
            return None
        seconds = value / 1000 if abs(value) >= _MILLIS else float(value)
    else:
        return None
    if not _EPOCH_RANGE[0] <= seconds <= _EPOCH_RANGE[1]:
        return None
    return format_datetime(seconds)
