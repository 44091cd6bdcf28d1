"""CSV answers (``Accept: text/csv``), beyond QuantumLeap: every query, one value a line.

One long format for every route, so that a spreadsheet or ``pandas.read_csv`` reads any
answer the same way: ``entityId,entityType,attrName,index,value`` (RFC 4180, CRLF,
quoted where needed). ``index`` is empty for an aggregate without ``aggrPeriod``; a null
is an empty field; booleans are ``true``/``false``; structured values are their JSON.
The entity list and the last values have their own columns (``entity_list``, ``last``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from .engine import Answer, LastValue
from .instants import format_instant

MEDIA_TYPE = "text/csv; charset=utf-8"


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([cell(v) for v in row] for row in rows)
    return out.getvalue().encode()


def history(answer: Answer) -> bytes:
    def rows() -> Iterable[list[Any]]:
        for block in answer.blocks:
            for attr, values in block.values.items():
                for i in block.rows_of(attr):
                    t = block.index[i]
                    yield [block.entity_id, block.entity_type, attr, "" if t is None else format_instant(t), values[i]]

    return _table(("entityId", "entityType", "attrName", "index", "value"), rows())


def entity_list(listed: list[tuple[str, str, int]]) -> bytes:
    return _table(("entityId", "entityType", "index"), ([eid, etype, format_instant(t)] for etype, eid, t in listed))


def last(grouped: list[tuple[tuple[str, str], list[LastValue]]]) -> bytes:
    return _table(
        ("entityId", "entityType", "attrName", "attrType", "index", "value", "lastSeen"),
        ([eid, etype, v.attr, v.attr_type, format_instant(v.t), v.value, format_instant(v.seen)]
         for (etype, eid), values in grouped for v in values),
    )


def wanted(accept: str | None) -> bool:
    """Does the Accept header ask for CSV (``text/csv`` among its types, not with q=0)?"""
    if not accept:
        return False
    for item in accept.split(","):
        media, *parameters = item.split(";")
        if media.strip().lower() != "text/csv":
            continue
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q" and value.strip().strip("0.") == "" and value.strip()[:1] == "0":
                return False
        return True
    return False
