"""The WAZIUP low-cost LoRa gateway format (CongducPham/LowCostLoRaGw
``post_processing_gw.py``, ``CloudWAZIUP.py``).

Data lines: an optional action prefix (``\\!`` upload to clouds, ``\\$`` log
locally), then ``TC/22.5/HU/85`` nomenclature/value pairs split on ``/``,
optionally preceded by ``project#servicetree#`` (or one ``servicetree#``);
a lone value (``22.5``) gets the nomenclature ``DEF``.  A prefix shorter than
MIN_PREFIX (3) characters is ignored, as ``CloudWAZIUP.py`` ignores it: ``a#TC/21``
has no service tree, so a device's one-letter slip does not become a service path.  Values read as numbers
when they are numbers, text otherwise.  Empty project / service tree mean the
gateway's defaults (``None`` here).

Control lines from the low-level program: ``^p<dst>,<ptype>,<src>,<seq>,<len>,<SNR>,<RSSI>``,
``^r<bw>,<cr>,<sf>[,<freq>]``, ``^t<ISO time>``.  A packet whose ``dst`` is 256 is a
LoRaWAN frame the gateway relayed: its ``src`` is the node's DevAddr, which the cloud
script writes in hex (``0x26011DB8``, so the device is ``Sensor0x26011DB8``), where a
native LoRa node keeps its decimal address (``Sensor3``): see ``source_address``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from iot_agent.codecs import payload_text
from iot_agent.errors import ParseError

__all__ = [
    "GatewayPrefix",
    "device_id",
    "format_payload",
    "packet_source",
    "parse_control_line",
    "parse_payload",
    "source_address",
]

MIN_PREFIX = 3  # characters: a shorter project or service tree is the gateway's default
LORAWAN_DST = 256  # the ^p destination the gateway gives LoRaWAN frames

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


def _prefix(text: str) -> str | None:
    return text if len(text) >= MIN_PREFIX else None


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
    prefix = GatewayPrefix(action, _prefix(project), _prefix(tree))
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
        for given in (prefix.project, prefix.service_tree):
            if given is not None and len(given) < MIN_PREFIX:
                raise ValueError(f"prefix {given!r} is shorter than {MIN_PREFIX} characters: the gateway ignores it")
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


def source_address(dst: int, src: int) -> str:
    """The sender as the cloud script names it: ``0x%08X`` for a LoRaWAN frame
    (``dst`` 256, ``src`` the DevAddr: ``0x26011DB8``), else decimal (``3``)."""
    if dst == LORAWAN_DST:
        return f"0x{src & 0xFFFFFFFF:08X}"
    return str(src)


def packet_source(pdata: Any) -> str:
    """The sender named by the gateway's ``pdata`` (``dst,ptype,src,seq,len,snr,rssi``,
    the fields of ``^p``), as ``source_address`` writes it; ``"0"`` when ``pdata`` carries
    no readable ``src``."""
    if not isinstance(pdata, str):
        return "0"
    fields = [field.strip() for field in pdata.split(",")]
    src = _address(fields[2]) if len(fields) >= 3 else None
    if src is None:
        return "0"
    dst = _address(fields[0])
    return source_address(dst if dst is not None else 0, src)


def _address(text: str) -> int | None:
    """An address field: ASCII digits (an optional ``-``), at most 32 bits."""
    digits = text.removeprefix("-")
    if not digits.isascii() or not digits.isdigit() or len(digits) > 10 or int(digits) >= 2**32:
        return None
    return -int(digits) if text.startswith("-") else int(digits)
