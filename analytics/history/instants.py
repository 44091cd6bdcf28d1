"""Instants as the history service keeps them: integer milliseconds since the epoch, UTC.

Integers make the index exact (no float rounding between what a notification said and
what a ``fromDate`` compares with) and cheap to compare, bucket and partition by, in
SQLite and PostgreSQL alike. Text in: ISO 8601 as Orion reads it (``ngsi.dates``), plus
a space instead of the ``T`` (what ``dateutil``, QuantumLeap's parser, also takes). Text
out: QuantumLeap's rendering, UTC with milliseconds and ``+00:00``.

Periods (``aggrPeriod``) are calendar periods in UTC; a bucket is named by its start.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from typing import Final

from ngsi.dates import parse_datetime

SECOND: Final = 1000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR
PERIODS: Final = ("year", "month", "day", "hour", "minute", "second")
FIXED: Final = {"second": SECOND, "minute": MINUTE, "hour": HOUR, "day": DAY}
# Bounds of every stored instant (years 1900..9999 are what the parser accepts): SQL
# range conditions use them for "no bound", so that one statement serves every query.
MIN_MS: Final = -(2**62)
MAX_MS: Final = 2**62
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TEXT = 100  # characters of a date worth parsing; ISO 8601 instants are ~30
_FIRST = -2208988800000  # 1900-01-01T00:00:00Z, the first instant Orion's parser takes
_LAST = 253402300799999  # 9999-12-31T23:59:59.999Z


def parse_instant(text: str) -> int | None:
    """Milliseconds of an ISO 8601 text (no zone: UTC), None when it is not one."""
    if not isinstance(text, str) or len(text) > _MAX_TEXT:
        return None
    text = text.strip()
    if len(text) > 10 and text[10] == " ":
        text = text[:10] + "T" + text[11:]
    seconds = parse_datetime(text)
    if seconds is None:
        return None
    ms = round(seconds * 1000)
    # a zone can push 9999-12-31T23:59 past the year 9999, which nothing can render
    return ms if _FIRST <= ms <= _LAST else None


def _datetime(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def format_instant(ms: int) -> str:
    """QuantumLeap's rendering: ``2018-01-05T15:44:34.000+00:00``."""
    moment = _datetime(ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+00:00"


def floor(ms: int, step: int) -> int:
    """The start of the ``step``-long slot holding ``ms`` (towards the past for negatives)."""
    return ms - ms % step


def whole(lo: int, hi: int, step: int) -> tuple[int, int]:
    """The ``step``-long slots lying wholly inside [lo, hi], as [first, end) (empty when
    first >= end); MIN_MS and MAX_MS, "no bound", stay as they are. Aggregates read roll-ups
    for these slots and finer data for the rest."""
    first = lo if lo == MIN_MS else -(-lo // step) * step
    end = hi if hi == MAX_MS else floor(hi + 1, step)
    return first, end


def edges(lo: int, hi: int, step: int) -> list[int]:
    """The ``step``-long slots [lo, hi] covers only in part (at most its first and its last)."""
    found = []
    if lo > MIN_MS and lo % step != 0:
        found.append(floor(lo, step))
    if hi < MAX_MS and (hi + 1) % step != 0 and floor(hi, step) not in found:
        found.append(floor(hi, step))
    return found


def bucket(ms: int, period: str) -> int:
    """The start of the UTC calendar ``period`` (an ``aggrPeriod``) holding ``ms``."""
    step = FIXED.get(period)
    if step is not None:
        return floor(ms, step)
    moment = _datetime(ms)
    start = moment.replace(month=1 if period == "year" else moment.month, day=1, hour=0, minute=0, second=0,
                           microsecond=0)
    return (start - _EPOCH) // timedelta(milliseconds=1)


def month_bounds(ms: int) -> tuple[int, int]:
    """The UTC month holding ``ms``, as [start, end) milliseconds (PostgreSQL partitions)."""
    moment = _datetime(ms)
    start = bucket(ms, "month")
    return start, start + calendar.monthrange(moment.year, moment.month)[1] * DAY  # in ms: December 9999 has an end


def month_name(ms: int) -> str:
    """``y2024m05``: the suffix of the partition holding ``ms``."""
    moment = _datetime(ms)
    return f"y{moment.year:04d}m{moment.month:02d}"
