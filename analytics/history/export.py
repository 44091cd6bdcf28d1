"""``waziup history export``: the stored history as one long CSV table, read from the store
itself (the service may be running or not), streamed series by series, page by page.

One line per value: ``tenant,servicePath,entityType,entityId,attrName,attrType,timeIndex,value``,
in (series, time) order; the values rendered as the query API's CSV renders them
(``csvout.cell``). Progress goes to stderr every few seconds, so a long export of millions
of values shows it is moving. Parquet is not offered: pyarrow would weigh more than the rest
of the platform, and every tool that reads Parquet reads CSV too.
"""

from __future__ import annotations

import asyncio
import csv
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO

from ngsi.settings import Repeated, Table, Text, command_line, option

from .csvout import cell
from .instants import format_instant, parse_instant
from .model import Point, Series
from .store import HistoryStore, open_store
from .values import decode

PAGE = 10_000  # points read at a time
HEADER = ("tenant", "servicePath", "entityType", "entityId", "attrName", "attrType", "timeIndex", "value")
FOREVER = (-(2**62), 2**62)


@dataclass
class Options:
    data: str = "data"
    db_uri: str = ""  # empty: <data>/history.db
    service: str = ""  # a tenant; empty: every tenant
    type: tuple[str, ...] = field(default_factory=tuple)
    id: tuple[str, ...] = field(default_factory=tuple)
    attrs: tuple[str, ...] = field(default_factory=tuple)
    from_date: str = ""
    to_date: str = ""
    output: str = "-"

    @property
    def store_url(self) -> str:
        return self.db_uri or f"sqlite:///{os.path.abspath(os.path.join(self.data, 'history.db'))}"


def _instant(value: str) -> None:
    if value and parse_instant(value) is None:
        raise ValueError(f"{value!r} is not an ISO 8601 date")


OPTIONS = Table(
    Options,
    option("-data", type=Text("DIR"), env="WAZIUP_DATA_DIR", help="where history.db is"),
    option("-dbURI", type=Text("URL"), env="WAZIUP_HISTORY_DB_URI", shown="sqlite:///<-data>/history.db",
           help="the history service's store (sqlite:///FILE or postgresql://...)"),
    option("-service", type=Text("TENANT"), help="only this tenant (Fiware-Service); default every tenant"),
    option("-type", type=Repeated(), help="only these entity types; repeatable or comma-separated"),
    option("-id", type=Repeated(), help="only these entity ids; repeatable or comma-separated"),
    option("-attrs", type=Repeated(), help="only these attributes; repeatable or comma-separated"),
    option("-fromDate", type=Text("ISO8601"), check=_instant, help="values at or after this instant"),
    option("-toDate", type=Text("ISO8601"), check=_instant, help="values at or before this instant"),
    option("-o", field="output", type=Text("FILE"), shown="- (standard output)", help="where the CSV goes"),
    about="The stored history as CSV, one line per value, straight from the store.",
)


def _items(values: Sequence[str]) -> set[str]:
    return {item.strip() for value in values for item in value.split(",") if item.strip()}


def chosen(series: Sequence[Series], options: Options) -> list[Series]:
    """The series the options select, in a stable order (tenant, path, type, id, attribute)."""
    types, ids, attrs = _items(options.type), _items(options.id), _items(options.attrs)
    tenant = options.service.lower()
    picked = [
        s for s in series
        if (not options.service or s.tenant == tenant)
        and (not types or s.entity_type in types)
        and (not ids or s.entity_id in ids)
        and (not attrs or s.attr in attrs)
    ]
    return sorted(picked, key=lambda s: (s.tenant, s.service_path, s.entity_type, s.entity_id, s.attr, s.attr_type))


class AsyncPages:
    """The points of one series in [lo, hi], oldest first, a page at a time."""

    def __init__(self, store: HistoryStore, series: int, lo: int, hi: int) -> None:
        self.store, self.series, self.lo, self.hi = store, series, lo, hi

    def __aiter__(self) -> "AsyncPages":
        self._after: tuple[int, int] | None = None
        self._done = False
        return self

    async def __anext__(self) -> list[Point]:
        if self._done:
            raise StopAsyncIteration
        if self._after is None:
            page = (await self.store.points([self.series], self.lo, self.hi, descending=False, limit=PAGE)).get(
                self.series, []
            )
        else:
            page = await self.store.more_points(
                self.series, self.lo, self.hi, descending=False, limit=PAGE, after=self._after
            )
        if len(page) < PAGE:
            self._done = True
        if not page:
            raise StopAsyncIteration
        self._after = (page[-1].t, page[-1].rid)
        return page


async def export(
    store: HistoryStore, options: Options, out: IO[str], progress: Callable[[str], object] | None = None
) -> int:
    """Write the CSV; the number of values written."""
    lo = parse_instant(options.from_date) if options.from_date else FOREVER[0]
    hi = parse_instant(options.to_date) if options.to_date else FOREVER[1]
    assert lo is not None and hi is not None
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    series = chosen(await store.all_series(), options)
    written, shown = 0, time.monotonic()
    for done, one in enumerate(series, start=1):
        prefix = (one.tenant, one.service_path, one.entity_type, one.entity_id, one.attr, one.attr_type)
        async for page in AsyncPages(store, one.id, lo, hi):
            writer.writerows(
                (*prefix, format_instant(p.t), cell(decode(one.attr_type, p.num, p.txt))) for p in page
            )
            written += len(page)
        if progress is not None and time.monotonic() - shown > 2:
            shown = time.monotonic()
            progress(f"export: {done}/{len(series)} series, {written} values")
    if progress is not None:
        progress(f"export: {len(series)} series, {written} values")
    return written


async def run(options: Options) -> int:
    url = options.store_url
    if url.startswith("sqlite:///") and not os.path.exists(url[len("sqlite:///"):]):
        raise SystemExit(f"waziup history export: no history store at {url[len('sqlite:///'):]} (see -data, -dbURI)")
    store = open_store(url)
    await store.open()
    try:
        if options.output == "-":
            return await export(store, options, sys.stdout, lambda line: print(line, file=sys.stderr, flush=True))
        with open(options.output, "w", newline="", encoding="utf-8") as out:
            return await export(store, options, out, lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        await store.close()


def main(argv: Sequence[str]) -> None:
    options = command_line(OPTIONS, lambda args: OPTIONS.build(args, os.environ), argv, prog="waziup history export",
                           show=print)
    try:
        asyncio.run(run(options))
    except BrokenPipeError:  # `| head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

