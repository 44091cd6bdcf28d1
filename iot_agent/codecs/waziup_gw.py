"""The WAZIUP low-cost LoRa gateway format (CongducPham/LowCostLoRaGw
``post_processing_gw.py``, ``CloudWAZIUP.py``).

Data lines: an optional action prefix (``\\!`` upload to clouds, ``\\$`` log
locally), then ``TC/22.5/HU/85`` nomenclature/value pairs split on ``/``,
optionally preceded by ``project#servicetree#`` (or one ``servicetree#``);
a lone value (``22.5``) gets the nomenclature ``DEF``.  Values read as numbers
when they are numbers, text otherwise.  Empty project / service tree mean the
gateway's defaults (``None`` here).

Control lines from the low-level program: ``^p<dst>,<ptype>,<src>,<seq>,<len>,<SNR>,<RSSI>``,
``^r<bw>,<cr>,<sf>[,<freq>]``, ``^t<ISO time>``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from iot_agent.codecs import payload_text
from iot_agent.errors import ParseError

__all__ = ["GatewayPrefix", "parse_payload", "format_payload", "parse_control_line", "device_id"]

_NUM_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME_RE = re.compile(r"[^/#\s]+")


@dataclass(frozen=True)
class GatewayPrefix:
    """What precedes the pairs: the action and the WAZIUP project / service tree."""

    action: str | None = None  # "upload" (\!), "log" ($), None (no prefix)
    project: str | None = None
    service_tree: str | None = None


def _number(text: str) -> Any:
    if _NUM_RE.fullmatch(text):
        v = float(text)
        if not math.isfinite(v):
            return text
        if re.fullmatch(r"[+-]?[0-9]+", text):
            return int(text)
        return v
    return text


def parse_payload(text: str | bytes) -> tuple[GatewayPrefix, dict[str, Any]]:
    """``'\\!proj#-tree#TC/22.5/HU/85'`` -> (GatewayPrefix("upload","proj","-tree"), {"TC": 22.5, "HU": 85})."""
    data = payload_text(text).replace("\r", "").replace("\n", "").replace("\0", "")
    action = None
    if data.startswith("\\!"):
        action, data = "upload", data[2:]
    elif data.startswith("\\$"):
        action, data = "log", data[2:]
    parts = data.split("#")
    if len(parts) == 1:
        project, tree, body = "", "", parts[0]
    elif len(parts) == 2:
        project, tree, body = "", parts[0], parts[1]
    elif len(parts) == 3:
        project, tree, body = parts
    else:
        raise ParseError("too many '#' prefixes")
    fields = body.split("/")
    if len(fields) == 1:
        fields = ["DEF", fields[0]]
    if len(fields) % 2:
        raise ParseError(f"odd number of '/' fields in '{body}'")
    out: dict[str, Any] = {}
    for i in range(0, len(fields), 2):
        name, raw = fields[i].strip(), fields[i + 1].strip()
        if not _NAME_RE.fullmatch(name) or raw == "":
            raise ParseError(f"bad nomenclature/value pair '{fields[i]}/{fields[i + 1]}'")
        out[name] = _number(raw)
    prefix = GatewayPrefix(action, project or None, tree or None)
    return prefix, out


def format_payload(measures: dict[str, Any], prefix: GatewayPrefix | None = None) -> str:
    """The inverse of ``parse_payload`` (simulators, tests).  ``ValueError`` on unwritable names/values."""
    fields = []
    for k, v in measures.items():
        sv = str(v) if not isinstance(v, bool) else str(v).lower()
        if not _NAME_RE.fullmatch(k) or sv == "" or any(c in sv for c in "/#\r\n\0") or sv != sv.strip():
            raise ValueError(f"cannot write {k!r}={v!r} in the gateway format")
        fields += [k, sv]
    if not fields:
        raise ValueError("no measures")
    body = "/".join(fields)
    head = ""
    if prefix is not None:
        if prefix.action == "upload":
            head = "\\!"
        elif prefix.action == "log":
            head = "\\$"
        if prefix.project is not None:
            head += f"{prefix.project}#{prefix.service_tree or ''}#"
        elif prefix.service_tree is not None:
            head += f"{prefix.service_tree}#"
    return head + body


def parse_control_line(line: str) -> tuple[str, dict[str, Any]]:
    """``^p...`` -> ("packet", {dst, ptype, src, seq, len, snr, rssi}); ``^r`` -> ("radio", ...); ``^t`` -> ("time", ...)."""
    if not isinstance(line, str) or len(line) < 2 or line[0] != "^":
        raise ParseError("not a gateway control line")
    kind, rest = line[1], line[2:].strip()
    try:
        if kind == "p":
            vals = [int(x) for x in rest.split(",")]
            if len(vals) != 7:
                raise ParseError("^p needs 7 fields")
            keys = ("dst", "ptype", "src", "seq", "len", "snr", "rssi")
            return "packet", dict(zip(keys, vals))
        if kind == "r":
            rv = [int(x) for x in rest.split(",")]
            if len(rv) not in (3, 4):
                raise ParseError("^r needs 3 or 4 fields")
            return "radio", dict(zip(("bw", "cr", "sf", "freq"), rv))
        if kind == "t":
            if not rest:
                raise ParseError("^t without time")
            return "time", {"time": rest}
    except ValueError:
        raise ParseError(f"bad number in control line '{line}'") from None
    raise ParseError(f"unknown control line '^{kind}'")


def device_id(organization: str, service_tree: str | None, sensor_name: str, src: int | str) -> str:
    """The WAZIUP device id ``organization + service_tree + "_" + sensor_name + src`` (``UPPA-TESTS_Sensor2``)."""
    return f"{organization}{service_tree or ''}_{sensor_name}{src}"
