"""ISO 8601 durations (``PT1H``, ``P1D``, ``P1M``) and flooring instants to them.

A period is either a number of calendar months (``P1M``, ``P3M``, ``P1Y``) or a fixed
number of seconds (``PT15M``, ``PT1H``, ``P1D``, ``P1W``), never both: ``P1M1D`` has no
single floor. Fixed periods count from Monday 1970-01-05T00:00Z so that a week starts on
a Monday, as people expect, and days, hours and minutes fall where the epoch puts them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

_DURATION = re.compile(r"^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
ORIGIN = datetime(1970, 1, 5, tzinfo=timezone.utc)  # a Monday
_ORIGIN_SECONDS = int(ORIGIN.timestamp())


@dataclass(frozen=True, slots=True)
class Period:
    """``months`` or ``seconds``, exactly one of them positive."""

    months: int = 0
    seconds: int = 0
    text: str = ""

    def floor(self, instant: datetime) -> datetime:
        """The start of the period that holds ``instant`` (an aware datetime), in UTC."""
        instant = instant.astimezone(timezone.utc)
        if self.months:
            total = instant.year * 12 + instant.month - 1
            total -= total % self.months
            return datetime(total // 12, total % 12 + 1, 1, tzinfo=timezone.utc)
        elapsed = instant - ORIGIN
        whole = elapsed.days * 86400 + elapsed.seconds
        return ORIGIN + timedelta(seconds=whole - whole % self.seconds)

    def end(self, start: datetime) -> datetime:
        """The start of the next period, given the start of one."""
        if self.months:
            total = start.year * 12 + start.month - 1 + self.months
            return datetime(total // 12, total % 12 + 1, 1, tzinfo=timezone.utc)
        return start + timedelta(seconds=self.seconds)

    def floor_seconds(self, now: float) -> float:
        """``floor`` for epoch seconds (the budget's clock)."""
        if not self.months:
            whole = int(now // 1) - _ORIGIN_SECONDS
            return float(_ORIGIN_SECONDS + whole - whole % self.seconds)
        return self.floor(datetime.fromtimestamp(now, timezone.utc)).timestamp()


def parse_period(text: str) -> Period:
    """The period an ISO 8601 duration names; ValueError says why it is not one."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not an ISO 8601 duration (PnYnMnWnDTnHnMnS)")
    y, mo, w, d, h, mi, s = (int(g) if g else 0 for g in match.groups())
    months = y * 12 + mo
    seconds = w * 604800 + d * 86400 + h * 3600 + mi * 60 + s
    if months and seconds:
        raise ValueError(f"{text!r} mixes months or years with days or time: it has no single start")
    if not months and not seconds:
        raise ValueError(f"{text!r} is an empty duration")
    return Period(months, seconds, text)
