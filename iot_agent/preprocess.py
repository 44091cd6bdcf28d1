"""Measure pre-processing: our extension, run on codec output before mapping.

A device or group may carry ``"preprocess": [step, ...]`` (stored as posted).
Steps run in order on each measure dict (names as the device sends them,
i.e. ``object_id``s).  Each step names the measures it touches with ``attrs``
(a list) or ``attr`` (one name); without them it touches every measure except
``TimeInstant``.  Numeric steps leave non-numbers (and booleans) alone.

=============  ===============================================================
``range``      ``min``/``max``; ``action``: ``reject`` (default) or ``clamp``
``type``       ``type`` Number/Integer/Boolean/Text/Array/Object; ``cast``
               (default true) converts text such as ``"21.5"`` first
``outlier``    ``method`` ``zscore`` (default, ``threshold`` 3) or ``mad``
               (modified z-score, ``threshold`` 3.5) over the last ``window``
               (20) accepted values, once ``min_samples`` (5) are known;
               ``reset_after`` (3) consecutive rejections accept the value
               and restart the window (a real level change)
``convert``    ``from``/``to`` units (table below, UN/CEFACT codes too) or
               ``scale``/``offset`` (``v * scale + offset``); ``round`` digits
``calibrate``  two-point linear: ``points: [[sensor, real], [sensor, real]]``
               or WAZIUP's ``value_min``/``value_max`` ``{sensor_value, real_value}``
``average``    moving average of the last ``window`` values (sliding)
``aggregate``  tumbling window of ``count`` readings or ``period`` seconds;
               ``functions`` among count/sum/min/max/avg (default avg); one
               function keeps the name, several give ``<name>_<fn>``; the
               measure is held until the window closes (a ``period`` window
               closes with the first reading of the next one)
``extrapolate`` a listed measure missing from a reading (absent or rejected
               by an earlier step) is filled linearly from the last two
               values; at most ``max_consecutive`` (1) in a row
=============  ===============================================================

Rejected readings are dropped from the measure (a measure left with nothing
but ``TimeInstant`` is dropped) and counted in the state.  The state is a
small object passed in by the caller (one per device), JSON-serialisable with
``to_dict``/``from_dict`` so a store can keep it; there are no globals.  A state
with an ``on_change`` callback gets it called once per ``apply`` that changed it
(a stateful step ran, or a value was rejected or extrapolated): the agent saves
it there (``provisioning.state``), so windows survive a restart.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from iot_agent.errors import WrongSyntax

__all__ = ["Pipeline", "PreprocessState", "parse_config", "preprocess", "UNITS", "convert_unit"]

TIMESTAMP = "TimeInstant"

# unit -> (dimension, add, mul): base = (v + add) * mul
_U: list[tuple[tuple[str, ...], str, str, str]] = [
    (("degC", "°C", "CEL", "celsius"), "temperature", "0", "1"),
    (("degF", "°F", "FAH", "fahrenheit"), "temperature", "-32", "5/9"),
    (("K", "KEL", "kelvin"), "temperature", "-273.15", "1"),
    (("m", "MTR"), "length", "0", "1"),
    (("cm", "CMT"), "length", "0", "1/100"),
    (("mm", "MMT"), "length", "0", "1/1000"),
    (("km", "KMT"), "length", "0", "1000"),
    (("in", "INH"), "length", "0", "0.0254"),
    (("ft", "FOT"), "length", "0", "0.3048"),
    (("yd", "YRD"), "length", "0", "0.9144"),
    (("mi", "SMI"), "length", "0", "1609.344"),
    (("Pa", "PAL"), "pressure", "0", "1"),
    (("hPa", "A97"), "pressure", "0", "100"),
    (("kPa", "KPA"), "pressure", "0", "1000"),
    (("mbar", "MBR"), "pressure", "0", "100"),
    (("bar", "BAR"), "pressure", "0", "100000"),
    (("psi", "PS"), "pressure", "0", "6894.757293168361"),
    (("atm", "ATM"), "pressure", "0", "101325"),
    (("mmHg", "HN"), "pressure", "0", "133.322387415"),
    (("m/s", "MTS"), "speed", "0", "1"),
    (("km/h", "KMH"), "speed", "0", "5/18"),
    (("mph", "HM"), "speed", "0", "0.44704"),
    (("kn", "KNT"), "speed", "0", "1852/3600"),
    (("kg", "KGM"), "mass", "0", "1"),
    (("g", "GRM"), "mass", "0", "1/1000"),
    (("lb", "LBR"), "mass", "0", "0.45359237"),
    (("oz", "ONZ"), "mass", "0", "0.028349523125"),
    (("J", "JOU"), "energy", "0", "1"),
    (("Wh", "WHR"), "energy", "0", "3600"),
    (("kWh", "KWH"), "energy", "0", "3600000"),
    (("W", "WTT"), "power", "0", "1"),
    (("kW", "KWT"), "power", "0", "1000"),
    (("m3", "MTQ"), "volume", "0", "1"),
    (("L", "LTR"), "volume", "0", "1/1000"),
    (("mL", "MLT"), "volume", "0", "1/1000000"),
    (("gal", "GLL"), "volume", "0", "0.003785411784"),
    (("%", "P1", "percent"), "ratio", "0", "1/100"),
    (("ratio",), "ratio", "0", "1"),
]
UNITS: dict[str, tuple[str, Fraction, Fraction]] = {
    name: (dim, Fraction(add), Fraction(mul)) for names, dim, add, mul in _U for name in names
}


def _frac(v: float) -> Fraction:
    """The decimal a float prints as (1013.2 -> 10132/10), so conversions land on round results."""
    return Fraction(repr(v)) if isinstance(v, float) else Fraction(v)


def convert_unit(value: float, src: str, dst: str) -> float:
    """``value`` from ``src`` to ``dst`` units, computed exactly (50 degF -> 10.0 degC)."""
    d1, a1, m1 = UNITS[src]
    d2, a2, m2 = UNITS[dst]
    if d1 != d2:
        raise ValueError(f"cannot convert {src} ({d1}) to {dst} ({d2})")
    base = (_frac(value) + a1) * m1
    return float(base / m2 - a2)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _out(x: float) -> int | float:
    return int(x) if isinstance(x, float) and x.is_integer() and abs(x) < 2**53 else x


# ---------------------------------------------------------------- state


@dataclass
class PreprocessState:
    """Windows and counters of one device; the caller keeps it between readings."""

    series: dict[str, list[Any]] = field(default_factory=dict)  # "<step>:<attr>" -> values / pairs
    rejected: dict[str, int] = field(default_factory=dict)  # "<kind>" -> count
    rejected_by_attr: dict[str, int] = field(default_factory=dict)
    extrapolated: int = 0
    # Called after a reading changed the state, so a store can keep it (not serialised).
    on_change: Callable[[PreprocessState], None] | None = field(default=None, repr=False, compare=False)

    def reject(self, kind: str, attr: str) -> None:
        self.rejected[kind] = self.rejected.get(kind, 0) + 1
        self.rejected_by_attr[attr] = self.rejected_by_attr.get(attr, 0) + 1

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "series": self.series,
            "rejected": self.rejected,
            "rejected_by_attr": self.rejected_by_attr,
            "extrapolated": self.extrapolated,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> PreprocessState:
        d = d or {}
        return cls(
            series={k: list(v) for k, v in dict(d.get("series") or {}).items()},
            rejected=dict(d.get("rejected") or {}),
            rejected_by_attr=dict(d.get("rejected_by_attr") or {}),
            extrapolated=int(d.get("extrapolated") or 0),
        )


# ---------------------------------------------------------------- config


def _bad(i: int, msg: str) -> WrongSyntax:
    return WrongSyntax(f"preprocess[{i}]: {msg}")


def _number(step: dict[str, Any], key: str, i: int, default: Any = None, *, positive: bool = False) -> Any:
    v = step.get(key, default)
    if v is None:
        return None
    if not _is_num(v) or (positive and v <= 0):
        raise _bad(i, f"'{key}' must be a {'positive ' if positive else ''}number")
    return v


def _int(step: dict[str, Any], key: str, i: int, default: int) -> int:
    v = step.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise _bad(i, f"'{key}' must be a positive integer")
    return v


# Steps that keep values between readings.
_STATEFUL = ("outlier", "average", "aggregate", "extrapolate")
_KINDS = ("range", "type", "outlier", "convert", "calibrate", "average", "aggregate", "extrapolate")
_TYPES = ("Number", "Integer", "Float", "Boolean", "Text", "Array", "Object")
_FUNCS = ("count", "sum", "min", "max", "avg")


@dataclass
class Step:
    index: int
    kind: str
    attrs: list[str] | None
    p: dict[str, Any]

    def targets(self, measure: dict[str, Any]) -> list[str]:
        if self.attrs is None:
            return [k for k in measure if k != TIMESTAMP]
        return [a for a in self.attrs if a in measure]

    def key(self, attr: str) -> str:
        return f"{self.index}:{attr}"


def _parse_step(i: int, raw: Any) -> Step:
    if not isinstance(raw, dict):
        raise _bad(i, "a step must be an object")
    kind = raw.get("step")
    if kind not in _KINDS:
        raise _bad(i, f"'step' must be one of {', '.join(_KINDS)}")
    attrs: list[str] | None
    if "attrs" in raw:
        attrs = raw["attrs"]
        if not isinstance(attrs, list) or not attrs or not all(isinstance(a, str) and a for a in attrs):
            raise _bad(i, "'attrs' must be a non-empty array of names")
    elif "attr" in raw:
        if not isinstance(raw["attr"], str) or not raw["attr"]:
            raise _bad(i, "'attr' must be a name")
        attrs = [raw["attr"]]
    else:
        attrs = None
    p: dict[str, Any] = {}
    if kind == "range":
        p["min"], p["max"] = _number(raw, "min", i), _number(raw, "max", i)
        if p["min"] is None and p["max"] is None:
            raise _bad(i, "range needs 'min' and/or 'max'")
        if p["min"] is not None and p["max"] is not None and p["min"] > p["max"]:
            raise _bad(i, "'min' is above 'max'")
        p["action"] = raw.get("action", "reject")
        if p["action"] not in ("reject", "clamp"):
            raise _bad(i, "'action' must be 'reject' or 'clamp'")
    elif kind == "type":
        p["type"] = raw.get("type")
        if p["type"] not in _TYPES:
            raise _bad(i, f"'type' must be one of {', '.join(_TYPES)}")
        p["cast"] = raw.get("cast", True)
        if not isinstance(p["cast"], bool):
            raise _bad(i, "'cast' must be a boolean")
    elif kind == "outlier":
        p["method"] = raw.get("method", "zscore")
        if p["method"] not in ("zscore", "mad"):
            raise _bad(i, "'method' must be 'zscore' or 'mad'")
        p["threshold"] = _number(raw, "threshold", i, 3 if p["method"] == "zscore" else 3.5, positive=True)
        p["window"] = _int(raw, "window", i, 20)
        p["min_samples"] = _int(raw, "min_samples", i, 5)
        p["reset_after"] = _int(raw, "reset_after", i, 3)
    elif kind == "convert":
        if "from" in raw or "to" in raw:
            src, dst = raw.get("from"), raw.get("to")
            if src not in UNITS or dst not in UNITS:
                raise _bad(i, "unknown unit in 'from'/'to'")
            if UNITS[src][0] != UNITS[dst][0]:
                raise _bad(i, f"cannot convert {src} to {dst}")
            p["from"], p["to"] = src, dst
        else:
            p["scale"] = _number(raw, "scale", i, 1)
            p["offset"] = _number(raw, "offset", i, 0)
        r = raw.get("round")
        if r is not None and (isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= 15):
            raise _bad(i, "'round' must be an integer 0-15")
        p["round"] = r
    elif kind == "calibrate":
        pts = raw.get("points")
        if pts is None and isinstance(raw.get("value_min"), dict) and isinstance(raw.get("value_max"), dict):
            pts = [
                [raw["value_min"].get("sensor_value"), raw["value_min"].get("real_value")],
                [raw["value_max"].get("sensor_value"), raw["value_max"].get("real_value")],
            ]
        if (
            not isinstance(pts, list)
            or len(pts) != 2
            or not all(isinstance(x, list) and len(x) == 2 and all(_is_num(y) for y in x) for x in pts)
            or pts[0][0] == pts[1][0]
        ):
            raise _bad(i, "calibrate needs two points [[sensor, real], [sensor, real]] with distinct sensor values")
        p["points"] = pts
    elif kind == "average":
        p["window"] = _int(raw, "window", i, 5)
    elif kind == "aggregate":
        if ("count" in raw) == ("period" in raw):
            raise _bad(i, "aggregate needs exactly one of 'count' or 'period'")
        p["count"] = _int(raw, "count", i, 1) if "count" in raw else None
        p["period"] = _number(raw, "period", i, positive=True) if "period" in raw else None
        fns = raw.get("functions", ["avg"])
        if isinstance(fns, str):
            fns = [fns]
        if not isinstance(fns, list) or not fns or not all(f in _FUNCS for f in fns):
            raise _bad(i, f"'functions' must be among {', '.join(_FUNCS)}")
        p["functions"] = list(dict.fromkeys(fns))
    elif kind == "extrapolate":
        if attrs is None:
            raise _bad(i, "extrapolate needs 'attrs' (the measures expected in every reading)")
        p["max_consecutive"] = _int(raw, "max_consecutive", i, 1)
    return Step(i, kind, attrs, p)


def parse_config(raw: Any) -> list[Step]:
    """Validate a ``preprocess`` value; ``WrongSyntax`` on anything wrong (provisioning time)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise WrongSyntax("preprocess must be an array of steps")
    return [_parse_step(i, s) for i, s in enumerate(raw)]


# ---------------------------------------------------------------- steps


def _reading_time(measure: dict[str, Any], now: float) -> float:
    ts = measure.get(TIMESTAMP)
    if isinstance(ts, str):
        try:
            d = _dt.datetime.fromisoformat(ts.strip().replace("Z", "+00:00"))
        except ValueError:
            return now
        if d.tzinfo is None:
            d = d.replace(tzinfo=_dt.timezone.utc)
        return d.timestamp()
    return now


def _cast(v: Any, t: str) -> tuple[bool, Any]:
    """(accepted, value) for the ``type`` step."""
    if t in ("Number", "Float"):
        if _is_num(v):
            return True, v
        if isinstance(v, str):
            try:
                x = float(v)
            except ValueError:
                return False, v
            return (True, _out(x)) if math.isfinite(x) else (False, v)
        return False, v
    if t == "Integer":
        if _is_num(v) and float(v).is_integer():
            return True, int(v)
        if isinstance(v, str):
            try:
                return True, int(v.strip())
            except ValueError:
                return False, v
        return False, v
    if t == "Boolean":
        if isinstance(v, bool):
            return True, v
        if isinstance(v, str) and v.strip().lower() in ("true", "false"):
            return True, v.strip().lower() == "true"
        return False, v
    if t == "Text":
        return isinstance(v, str), v
    want = list if t == "Array" else dict
    if isinstance(v, want):
        return True, v
    if isinstance(v, str):
        try:
            x = json.loads(v)
        except ValueError:
            return False, v
        return isinstance(x, want), x
    return False, v


def _aggregate(values: list[float], fn: str) -> int | float:
    if fn == "count":
        return len(values)
    if fn == "sum":
        return _out(math.fsum(values))
    if fn == "min":
        return min(values)
    if fn == "max":
        return max(values)
    return _out(math.fsum(values) / len(values))


class Pipeline:
    """A validated ``preprocess`` configuration."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.stateful = any(step.kind in _STATEFUL for step in steps)

    @classmethod
    def parse(cls, raw: Any) -> Pipeline:
        return cls(parse_config(raw))

    def apply(self, measures: list[dict[str, Any]], state: PreprocessState, now: float) -> list[dict[str, Any]]:
        """The measures after every step, readings in the order given."""
        out = []
        counters = (state.rejected_total, state.extrapolated)
        for m in measures:
            m = dict(m)
            t = _reading_time(m, now)
            for step in self.steps:
                snapshot = dict(m)
                try:
                    getattr(self, f"_{step.kind}")(step, m, state, t)
                except (OverflowError, ZeroDivisionError, ValueError):
                    # a value too large for the arithmetic: the step's values are rejected
                    m.clear()
                    m.update({k: v for k, v in snapshot.items() if k not in step.targets(snapshot)})
                    for a in step.targets(snapshot):
                        state.reject("overflow", a)
            if any(k != TIMESTAMP for k in m):
                out.append(m)
        if state.on_change is not None and measures and (self.stateful or counters != (state.rejected_total, state.extrapolated)):
            state.on_change(state)
        return out

    # Each step edits the measure dict in place.

    def _range(self, s: Step, m: dict[str, Any], st: PreprocessState, t: float) -> None:
        lo, hi = s.p["min"], s.p["max"]
        for a in s.targets(m):
            v = m[a]
            if not _is_num(v):
                continue
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                if s.p["action"] == "clamp":
                    m[a] = lo if lo is not None and v < lo else hi
                else:
                    del m[a]
                    st.reject("range", a)

    def _type(self, s: Step, m: dict[str, Any], st: PreprocessState, t: float) -> None:
        for a in s.targets(m):
            ok, v = _cast(m[a], s.p["type"])
            if ok and not s.p["cast"] and isinstance(m[a], str) and s.p["type"] != "Text":
                ok = False  # without cast, text is not a number/boolean/array
            if ok:
                m[a] = v
            else:
                del m[a]
                st.reject("type", a)

    def _outlier(self, s: Step, m: dict[str, Any], st: PreprocessState, t: float) -> None:
        for a in s.targets(m):
            v = m[a]
            if not _is_num(v):
                continue
            series = st.series.setdefault(s.key(a), [0, []])  # [consecutive rejections, window]
            rejected_run, window = series
            if len(window) >= s.p["min_samples"] and self._is_outlier(v, window, s.p["method"], s.p["threshold"]):
                if rejected_run + 1 < s.p["reset_after"]:
                    series[0] = rejected_run + 1
                    del m[a]
                    st.reject("outlier", a)
                    continue
                window.clear()  # persistent change: accept and start over
            series[0] = 0
            window.append(v)
            del window[: -s.p["window"]]

    @staticmethod
    def _is_outlier(v: float, window: list[float], method: str, threshold: float) -> bool:
        if method == "zscore":
            mean = statistics.fmean(window)
            sd = statistics.pstdev(window)
            return sd > 0 and abs(v - mean) / sd > threshold
        med = statistics.median(window)
        mad = statistics.median([abs(x - med) for x in window])
        return mad > 0 and 0.6745 * abs(v - med) / mad > threshold

    def _convert(self, s: Step, m: dict[str, Any], st: PreprocessState, t: float) -> None:
        for a in s.targets(m):
            v = m[a]
            if not _is_num(v):
                continue
            if "from" in s.p:
                x = convert_unit(v, s.p["from"], s.p["to"])
            else:
                x = float(_frac(v) * _frac(s.p["scale"]) + _frac(s.p["offset"]))
            if s.p["round"] is not None:
                x = round(x, s.p["round"])
            m[a] = _out(x)

    def _calibrate(self, s: Step, m: dict[str, Any], st: PreprocessState, t: float) -> None:
        (s1, r1), (s2, r2) = s.p["points"]
        for a in s.targets(m):
            v = m[a]
            if _is_num(v):
                x = _frac(r1) + (_frac(v) - _frac(s1)) * (_frac(r2) - _frac(r1)) / (_frac(s2) - _frac(s1))
                m[a] = _out(float(x))

    def _average(self, s: Step, m: dict[str, Any], st: PreprocessState, t: float) -> None:
        for a in s.targets(m):
            v = m[a]
            if not _is_num(v):
                continue
            window = st.series.setdefault(s.key(a), [])
            window.append(v)
            del window[: -s.p["window"]]
            m[a] = _out(math.fsum(window) / len(window))

    def _aggregate(self, s: Step, m: dict[str, Any], st: PreprocessState, t: float) -> None:
        for a in s.targets(m):
            v = m[a]
            if not _is_num(v):
                continue
            buf = st.series.setdefault(s.key(a), [None, []])  # [window start, values]
            del m[a]
            if s.p["count"] is not None:
                buf[1].append(v)
                if len(buf[1]) >= s.p["count"]:
                    self._emit(s, m, a, buf[1])
                    buf[1] = []
            else:
                start = math.floor(t / s.p["period"]) * s.p["period"]
                if buf[0] is not None and start != buf[0] and buf[1]:
                    self._emit(s, m, a, buf[1])
                    buf[1] = []
                buf[0] = start
                buf[1].append(v)

    @staticmethod
    def _emit(s: Step, m: dict[str, Any], a: str, values: list[float]) -> None:
        fns = s.p["functions"]
        if len(fns) == 1:
            m[a] = _aggregate(values, fns[0])
        else:
            for fn in fns:
                m[f"{a}_{fn}"] = _aggregate(values, fn)

    def _extrapolate(self, s: Step, m: dict[str, Any], st: PreprocessState, t: float) -> None:
        for a in s.attrs or []:
            hist = st.series.setdefault(s.key(a), [0, []])  # [consecutive fills, [[t, v], [t, v]]]
            v = m.get(a)
            if _is_num(v):
                hist[0] = 0
                hist[1].append([t, v])
                del hist[1][:-2]
                continue
            if a in m or len(hist[1]) < 2 or hist[0] >= s.p["max_consecutive"]:
                continue
            (t1, v1), (t2, v2) = hist[1]
            x = v2 if t2 == t1 else v2 + (v2 - v1) * (t - t2) / (t2 - t1)
            if not math.isfinite(x):
                continue
            m[a] = _out(float(x))
            hist[0] += 1
            st.extrapolated += 1


def preprocess(measures: list[dict[str, Any]], config: Any, state: PreprocessState, now: float) -> list[dict[str, Any]]:
    """Parse ``config`` (``WrongSyntax`` if invalid) and apply it; no config -> measures unchanged."""
    if not config:
        return measures
    return Pipeline.parse(config).apply(measures, state, now)
