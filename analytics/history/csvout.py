"""CSV answers (``Accept: text/csv``), beyond QuantumLeap: every query, one value a line.

One long format for every route, so that a spreadsheet or ``pandas.read_csv`` reads any
answer the same way: ``entityId,entityType,attrName,index,value`` (RFC 4180, CRLF,
quoted where needed). ``index`` is empty for an aggregate without ``aggrPeriod``; a null
is an empty field; booleans are ``true``/``false``; structured values are their JSON.
The entity list and the last values have their own columns (``entity_list``, ``last``).
Under a caller's release (``ngsi/release.py``) the routes write the rows it gave back
with :func:`records`, through the same writer.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
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


HISTORY_COLUMNS = ("entityId", "entityType", "attrName", "index", "value")
ENTITY_LIST_COLUMNS = ("entityId", "entityType", "index")
LAST_COLUMNS = ("entityId", "entityType", "attrName", "attrType", "index", "value", "lastSeen")


def _history_rows(answer: Answer) -> Iterator[list[Any]]:
    """The long-format rows of a history answer, in ``HISTORY_COLUMNS`` order."""
    for block in answer.blocks:
        for attr, values in block.values.items():
            for i in block.rows_of(attr):
                t = block.index[i]
                yield [block.entity_id, block.entity_type, attr, None if t is None else format_instant(t), values[i]]


def history(answer: Answer) -> bytes:
    return _table(HISTORY_COLUMNS, _history_rows(answer))


def history_records(answer: Answer) -> list[dict[str, Any]]:
    """The same rows as dicts (what ``ngsi.release.Release.table`` takes)."""
    return [dict(zip(HISTORY_COLUMNS, row)) for row in _history_rows(answer)]


def records(header: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> bytes:
    """Dict rows under ``header`` (a key a row lacks is an empty field, others are ignored):
    the rows a release gave back, through the same writer."""
    return _table(header, ([row.get(name) for name in header] for row in rows))


def entity_list(listed: list[tuple[str, str, int]]) -> bytes:
    return _table(ENTITY_LIST_COLUMNS, ([eid, etype, format_instant(t)] for etype, eid, t in listed))


def last(grouped: list[tuple[tuple[str, str], list[LastValue]]]) -> bytes:
    return _table(
        LAST_COLUMNS,
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
