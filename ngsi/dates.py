"""ISO 8601 dates as Orion reads and writes them.

Orion stores a DateTime (attribute or metadata value, ``dateExpires``,
subscription ``expires``, dates in ``q``) as epoch seconds and always renders it
as ``YYYY-MM-DDThh:mm:ss.sssZ`` in UTC with milliseconds.

What Orion accepts, as the functional test cases show:

* the date in extended form; reduced precision ``YYYY``/``YYYY-MM`` and time
  of day in extended (``hh``, ``hh:mm``, ``hh:mm:ss``) or basic (``hhmm``,
  ``hhmmss``) form, seconds with a ``.`` fraction (2631_partial_datetimes);
* no timezone (UTC), ``Z``, ``+hh:mm``, ``+hhmm``, ``+hh`` (2632_timezones),
  and ``+hh.mm`` too (2303 subs_with_invalid_expires_dates, step 04);
* rejected: a ``,`` fraction separator or other stray characters (2303),
  month 13, day 34, hour 25, minute 65, second 63, year 1899, a year not of four
  digits (4541_wrong_date_values_in_subscription, 2106, 4585 errors).

A fraction of seconds may have any number of digits (kept exactly up to the 40th, the
rest only rounds); the parse never converts more than that, however long the text.
"""

from __future__ import annotations

import re

__all__ = ["parse_datetime", "format_datetime"]

_TIME_EXT = r"(?P<h>\d\d)(?::(?P<m>\d\d)(?::(?P<s>\d\d)(?:\.(?P<f>\d+))?)?)?"
_TIME_BASIC = r"(?P<h2>\d\d)(?:(?P<m2>\d\d)(?:(?P<s2>\d\d)(?:\.(?P<f2>\d+))?)?)?"
_TZ = r"(?P<tz>Z|(?P<sign>[+-])(?P<tzh>\d\d)(?:[:.]?(?P<tzm>\d\d))?)?"
_ISO = re.compile(
    rf"(?P<y>\d{{4}})(?:-(?P<mo>\d\d)(?:-(?P<d>\d\d)(?:T(?:{_TIME_EXT}|{_TIME_BASIC}){_TZ})?)?)?",
    re.ASCII,
)

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_FRACTION_DIGITS = 40  # far beyond a double's precision for any date: the rest only rounds
_MIN_YEAR = 1900  # 1899 is refused (4541 step 06): Orion's struct tm years start at 1900


def _leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


def parse_datetime(text: str) -> float | None:
    """Epoch seconds (UTC) of an ISO 8601 text as Orion accepts it, else None.

    Missing parts default to their start (``2016-10-01`` is midnight UTC). The
    fraction is kept exactly (one rounding), so ``format_datetime`` gives the
    milliseconds back.
    """
    m = _ISO.fullmatch(text)
    if m is None:
        return None
    g = m.group
    y = int(g("y"))
    mo = int(g("mo") or 1)
    d = int(g("d") or 1)
    h = g("h") or g("h2")
    mi = g("m") or g("m2")
    s = g("s") or g("s2")
    frac = g("f") or g("f2")
    hh, mm, ss = int(h or 0), int(mi or 0), int(s or 0)
    if y < _MIN_YEAR or not 1 <= mo <= 12 or hh > 23 or mm > 59 or ss > 59:
        return None
    if not 1 <= d <= (29 if mo == 2 and _leap(y) else _DAYS_IN_MONTH[mo - 1]):
        return None
    offset = 0
    if g("sign"):
        tzh, tzm = int(g("tzh")), int(g("tzm") or 0)
        if tzh > 23 or tzm > 59:
            return None
        offset = (tzh * 3600 + tzm * 60) * (1 if g("sign") == "+" else -1)
    whole = _days_from_civil(y, mo, d) * 86400 + hh * 3600 + mm * 60 + ss - offset
    if not frac:
        return float(whole)
    if len(frac) > _FRACTION_DIGITS:
        # Any length is accepted, as before, but int() refuses numerals past 4,300 digits
        # (a ValueError: a 500 for one long DateTime) and a long one costs quadratic time:
        # digits past the 40th only tell whether something follows, which a sticky 1 keeps.
        frac = frac[:_FRACTION_DIGITS] + ("1" if frac[_FRACTION_DIGITS:].strip("0") else "")
    scale = 10 ** len(frac)
    return (whole * scale + int(frac)) / scale  # int / int: correctly rounded


def format_datetime(seconds: float) -> str:
    """Orion's rendering of epoch seconds: UTC, milliseconds, ``Z``.

    Rounded to the nearest millisecond, so that a parsed ``.456`` (stored as
    the nearest double, maybe 0.4559999...) renders as ``.456`` again.
    """
    total_ms = round(seconds * 1000)
    secs, ms = divmod(total_ms, 1000)
    days, rem = divmod(secs, 86400)
    y, mo, d = _civil_from_days(days)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    return f"{y:04d}-{mo:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{ms:03d}Z"
