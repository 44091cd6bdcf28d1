"""The dashboard's benchmark: ``make bench-dashboard`` (also run at the end of ``make bench``);
``BENCH_SECONDS=2 bench/dashboard.py --pages 5 --rate 50 --no-markdown`` for a quick run.

A real broker (``python -m broker``, a fresh SQLite file, ``-notifAllowedHosts 127.0.0.1`` so that
it may notify the dashboard on loopback), the dashboard (``python -m analytics.dashboard``, the
broker its only service) and the bare Starlette yardstick (bench/baseline_app.py), all
subprocesses on loopback; 100 entities created in tenant ``bench`` (one batch), then:

* **D0 baseline**: wrk (bench/lua/baseline.lua) on the yardstick, same connections and seconds:
  every row is also given as a ratio to it.
* **D1 forwarding**: wrk (bench/lua/fixed_get.lua) GETs ``/v2/entities?limit=20&options=keyValues``
  in tenant ``bench`` straight from the broker, then the same through the dashboard's
  ``/api/broker/...`` (checked first to answer the same): every call of a page takes that path,
  so the ratio of the two rows is what the forwarding costs.
* **D2 live feed**: ``--pages`` (20) server-sent-event streams on
  ``/api/events?service=bench&servicepath=/`` (the first one makes the hub subscribe to the
  tenant), then PATCHes to the broker at ``--rate`` per second (200, open loop) for the run's
  seconds, each setting an entity's ``stamp`` to "<seq> <send time ns>". The pages run in a
  process of their own, so that parsing thousands of events a second neither delays the sends
  nor the arrival times, and time each event on arrival: the delay from the PATCH's send to each
  page (p50, p99, max over all receipts), the events/s delivered in all, and *lost* =
  acknowledged PATCHes x pages - receipts (must be 0; a page that falls 1,000 events behind is
  sent ``overflow`` instead, counted apart).

Writes bench/results/dashboard-<date>.json (not <date>-dashboard.json: bench/quick.py takes every
results file starting with a digit for a broker run) and the "Dashboard" table of BENCHMARKS.md
(between ``<!-- dashboard-results -->`` and ``<!-- /dashboard-results -->``) unless ``--no-markdown``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import client
import harness
import rules  # (describe, row_notes: the same screen line and error notes as the rules bench's)
import run  # (bench/run.py: server start-up, CPU accounting)
from ratio_bench import RatioBench, expect, ratios
from harness import HOST, PY

TENANT, ETYPE, ENTITIES = "bench", "BenchSensor", 100
TENANT_HEADERS = f"Fiware-Service: {TENANT}\r\nFiware-ServicePath: /\r\n"
D1_PATH = "/v2/entities?limit=20&options=keyValues"
EVENTS_PATH = f"/api/events?service={TENANT}&servicepath=/"
DRAIN_IDLE, DRAIN_MAX = 5.0, 120.0  # after the load, pages wait for events until idle that long, or at most
MEASURED = ("dashboard", "broker")  # the processes whose CPU every row gives
WHO = "the pages"  # the helper process, as errors name it
MARKERS = ("<!-- dashboard-results -->", "<!-- /dashboard-results -->")


# -- the pages (D2), in a process of their own ------------------------------------------------------


class Pages:
    """``count`` live-feed streams read in one event loop, each event timed when its last byte
    arrives. Receipts are kept per page as seqs and delays (ns); the subscription's first
    notification (the entities as created, stamp seq -1) is not one."""

    def __init__(self, port: int, count: int) -> None:
        self.port, self.count = port, count
        self.seqs: list[list[int]] = [[] for _ in range(count)]
        self.delays: list[list[int]] = [[] for _ in range(count)]
        self.ready: list[asyncio.Event] = []
        self.overflows = self.bad = self.last_ns = 0
        self.last_seen = time.monotonic()

    async def stream(self, page: int) -> None:
        """One page's ``EventSource``: the stream's chunks (uvicorn sends it chunked) cut into events."""
        reader, writer = await asyncio.open_connection(HOST, self.port)
        writer.write(f"GET {EVENTS_PATH} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200") or b"chunked" not in head.lower():
                raise RuntimeError(f"page {page}: /api/events answered {head[:300]!r}")
            pending = b""
            while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                pending += (await reader.readexactly(size + 2))[:-2]
                now = time.time_ns()
                *events, pending = pending.split(b"\n\n")
                for event in events:
                    self.on_event(page, event, now)
        finally:
            writer.close()

    def on_event(self, page: int, event: bytes, now: int) -> None:
        kind, _, data = event.partition(b"\ndata: ")
        if kind == b"event: ready":
            self.ready[page].set()
        elif kind == b"event: overflow":
            self.overflows += 1
        elif kind == b"event: unavailable":
            raise RuntimeError(f"page {page}: the feed is unavailable: {data[:300]!r}")
        elif kind == b"event: entity":
            try:
                seq, sent = map(int, orjson.loads(data)["entity"]["stamp"]["value"].split(" "))
            except (ValueError, KeyError, TypeError, AttributeError):
                self.bad += 1
                return
            if seq >= 0:
                self.seqs[page].append(seq)
                self.delays[page].append(now - sent)
                self.last_ns, self.last_seen = now, time.monotonic()

    async def run(self, pipe: Pipe) -> None:
        """Open the pages, say ``ready`` once all are, read until the parent sends how many PATCHes
        were acknowledged and all their events arrived (or none came for ``DRAIN_IDLE`` s), then
        send the receipts back."""
        self.ready = [asyncio.Event() for _ in range(self.count)]
        tasks = [asyncio.create_task(self.stream(page)) for page in range(self.count)]
        try:
            pipe.send(await self._all_ready(tasks))
            acked = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
            pipe.send(await self._drain(acked))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _all_ready(self, tasks: list[asyncio.Task[None]]) -> dict[str, Any]:
        every = asyncio.ensure_future(asyncio.gather(*(flag.wait() for flag in self.ready)))
        waited: list[asyncio.Future[Any]] = [every, *tasks]
        await asyncio.wait(waited, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if every.done():
            return {"ready": True}
        every.cancel()
        failed = [repr(task.exception()) for task in tasks if task.done() and task.exception()]
        return {"error": "; ".join(failed) or "not every page had its ready event within 30 s"}

    async def _drain(self, acked: int) -> dict[str, Any]:
        began = self.last_seen = time.monotonic()
        while (sum(map(len, self.seqs)) < acked * self.count and time.monotonic() - self.last_seen < DRAIN_IDLE
               and time.monotonic() - began < DRAIN_MAX):
            await asyncio.sleep(0.05)
        return {"seqs": self.seqs, "delays_ns": self.delays, "overflows": self.overflows, "bad": self.bad,
                "last_ns": self.last_ns, "drain_s": time.monotonic() - began}


def pages_process(port: int, count: int, pipe: Pipe) -> None:
    """The pages' process (spawned: a fresh interpreter, none of the parent's state)."""
    asyncio.run(Pages(port, count).run(pipe))


# -- the updates (D2) -----------------------------------------------------------------------------


class Patcher:
    """D2's sender: PATCHes on a pool of keep-alive connections (one more is opened whenever all
    are busy, so that a slow answer delays no later send); which seqs were acknowledged."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[client.Connection] = []
        self.acked: list[int] = []
        self.latencies: list[float] = []
        self.failed = 0

    async def send(self, seq: int) -> None:
        conn = self.idle.pop() if self.idle else client.Connection(HOST, self.port)
        body = orjson.dumps({"stamp": {"type": "Text", "value": f"{seq} {time.time_ns()}"}})
        start = time.perf_counter()
        try:
            status = (await conn.request("PATCH", f"/v2/entities/Sensor{seq % ENTITIES}/attrs", body,
                                         TENANT_HEADERS))[0]
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.failed += 1
            await conn.close()
            return
        self.latencies.append(time.perf_counter() - start)
        self.idle.append(conn)
        if status < 300:
            self.acked.append(seq)
        else:
            self.failed += 1

    async def close(self) -> None:
        for conn in self.idle:
            await conn.close()


async def paced(rate: float, total: int, job: Callable[[int], Coroutine[Any, Any, None]]) -> float:
    """Open loop: job ``seq`` starts ``seq / rate`` s after the first whatever the earlier ones
    are doing (a closed loop would slow down with the server and hide its delays); returns the
    seconds from the first start to the last end."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    async with asyncio.TaskGroup() as group:
        for seq in range(total):
            await asyncio.sleep(max(0.0, began + seq / rate - loop.time()))
            group.create_task(job(seq))
    return loop.time() - began


def feed_figures(patcher: Patcher, seconds: float, began_ns: int, got: dict[str, Any]) -> dict[str, Any]:
    """D2's row from the sender's side and the pages': a receipt is a page's first event of an
    acknowledged PATCH; others (a second copy, an unacknowledged PATCH's) are *extra*."""
    acked = set(patcher.acked)
    pages = len(got["seqs"])
    delays = sorted(d / 1e6 for seqs, ds in zip(got["seqs"], got["delays_ns"], strict=True)
                    for s, d in zip(seqs, ds, strict=True) if s in acked)
    receipts = sum(len(set(seqs) & acked) for seqs in got["seqs"])
    sent = len(patcher.latencies) + patcher.failed
    latencies = sorted(patcher.latencies)
    span = (got["last_ns"] - began_ns) / 1e9
    return {
        "requests": sent, "seconds": seconds, "rps": sent / seconds, "rate": sent / seconds, "unit": "updates/s",
        "non2xx": patcher.failed, "p50_ms": client._percentile(delays, 50), "p99_ms": client._percentile(delays, 99),
        "max_ms": delays[-1] if delays else 0.0, "pages": pages, "acked": len(acked), "receipts": receipts,
        "expected_receipts": len(acked) * pages, "lost": len(acked) * pages - receipts,
        "extra": sum(map(len, got["seqs"])) - receipts, "overflows": got["overflows"], "bad": got["bad"],
        "delivered_per_s": receipts / span if span > 0 else 0.0, "drain_s": got["drain_s"],
        "patch_p50_ms": client._percentile(latencies, 50) * 1000,
        "patch_p99_ms": client._percentile(latencies, 99) * 1000,
    }


# -- the run -------------------------------------------------------------------------------------


class DashboardBench(RatioBench):
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        super().__init__(args, work, ("broker", "dashboard"), MEASURED, describe)

    # -- processes ---------------------------------------------------------------------------------

    def start_all(self) -> None:
        """Yardstick, broker, then the dashboard with the broker as its only service."""
        p, broker_url = self.ports, f"http://{HOST}:{self.ports['broker']}"
        (self.work / "broker").mkdir()
        self.start("baseline", [PY, str(HERE / "baseline_app.py"), str(p["baseline"])], "/")
        self.start("broker", [PY, "-m", "broker", "-localIp", HOST, "-port", str(p["broker"]),
                               "-data", str(self.work / "broker"), "-notifAllowedHosts", HOST], "/version")
        self.start("dashboard", [PY, "-m", "analytics.dashboard", "-host", HOST, "-port", str(p["dashboard"]),
                                  "-brokerURL", broker_url, "-historyURL", "", "-agentURL", "", "-rulesURL", "",
                                  "-notifyURL", f"http://{HOST}:{p['dashboard']}", "-logLevel", "WARNING"],
                    "/api/config")

    # -- setup -----------------------------------------------------------------------------------------

    async def setup(self) -> None:
        """The entities (one batch), then D1's request asked of both: the same answer, or no D1."""
        entities = [{"id": f"Sensor{i}", "type": ETYPE, "temperature": {"type": "Number", "value": 20 + i % 10},
                     "stamp": {"type": "Text", "value": "-1 0"}} for i in range(ENTITIES)]
        body = orjson.dumps({"actionType": "append", "entities": entities})
        status, data = await self.call("broker", "POST", "/v2/op/update", body, TENANT_HEADERS)
        if status != 204:
            sys.exit(f"bench: POST /v2/op/update answered {status}: {data[:300]!r}")
        straight = await self.call("broker", "GET", D1_PATH, headers=TENANT_HEADERS)
        forwarded = await self.call("dashboard", "GET", "/api/broker" + D1_PATH, headers=TENANT_HEADERS)
        if straight[0] != 200 or forwarded != straight or len(orjson.loads(straight[1])) != 20:
            sys.exit(f"bench: D1's GET answered {straight[0]} {straight[1][:200]!r} straight, "
                     f"{forwarded[0]} {forwarded[1][:200]!r} through the dashboard")

    # -- rows ------------------------------------------------------------------------------------------

    def forwarding(self) -> None:
        """D1: the same GET straight to the broker, then through the dashboard."""
        straight = self.measure("fixed_get.lua", [D1_PATH, TENANT], "broker")
        self.record("D1 GET, broker straight", straight)
        forwarded = self.measure("fixed_get.lua", ["/api/broker" + D1_PATH, TENANT], "dashboard")
        forwarded["vs_broker"] = ratios(forwarded, straight)
        self.record("D1 GET via dashboard", forwarded)

    def live_feed(self) -> None:
        """D2: the pages in their own process, PATCHes to the broker from this one."""
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        pages = context.Process(target=pages_process, args=(self.ports["dashboard"], self.args.pages, theirs),
                                daemon=True)
        pages.start()
        pid = pages.pid or 0
        try:
            expect(ours, 60, "ready", WHO)
            self.settle()  # the subscription's first notification, sent to every page
            before = self.cpu() | {"pages": run.cpu_seconds(pid)}
            patcher, seconds, began_ns = asyncio.run(self._patches())
            after = self.cpu() | {"pages": run.cpu_seconds(pid)}
            ours.send(len(patcher.acked))
            got = expect(ours, DRAIN_MAX + 30, "seqs", WHO)
        finally:
            pages.join(5)
            if pages.is_alive():
                pages.kill()
        r = feed_figures(patcher, seconds, began_ns, got)
        cpu = {k: 100 * (after[k] - before[k]) / seconds for k in after}
        r.update(pages_cpu_pct=cpu.pop("pages"), cpu_pct=cpu)
        self.record(f"D2 live feed, {self.args.pages} pages", r)

    async def _patches(self) -> tuple[Patcher, float, int]:
        patcher = Patcher(self.ports["broker"])
        began_ns = time.time_ns()
        seconds = await paced(self.args.rate, int(self.args.rate * self.args.seconds), patcher.send)
        await patcher.close()
        return patcher, seconds, began_ns

    def run(self) -> dict[str, Any]:
        load = os.getloadavg()
        self.start_all()
        try:
            asyncio.run(self.setup())
            self.yardstick("D0 bare Starlette")
            for part, measure in (("D1", self.forwarding), ("D2", self.live_feed)):
                if harness.selected(self.args.only, part):
                    measure()
        finally:
            self.stop_all()
        return {"load_average": load, "results": self.results}


# -- output ----------------------------------------------------------------------------------------


def own_notes(r: dict[str, Any]) -> str:
    if "vs_broker" in r:
        v = r["vs_broker"]
        return (f"x{v['rate']:.3f} the broker's req/s straight, p50 x{v['p50']:.2f}, p99 x{v['p99']:.2f} "
                "(what forwarding costs)")
    if "receipts" not in r:
        return ""
    text = (f"{r['receipts']} receipts of {r['acked']} acknowledged PATCHes x {r['pages']} pages, "
            f"lost {r['lost']}" + (" (NOT 0: events missing)" if r["lost"] else ""))
    text += "".join(f", {k} {r[k]}" for k in ("extra", "overflows", "bad") if r[k])
    return text + (f"; {r['delivered_per_s']:.0f} events/s delivered; delay max {r['max_ms']:.1f} ms; "
                   f"PATCH p50 {r['patch_p50_ms']:.2f} ms p99 {r['patch_p99_ms']:.2f} ms; "
                   f"pages CPU {r['pages_cpu_pct']:.0f}%")


def describe(name: str, r: dict[str, Any]) -> str:
    """The rules bench's screen line (rates, latencies, ratios, CPU, errors), then this row's notes."""
    notes = own_notes(r)
    return rules.describe(name, r) + (f"\n{'':<26} {notes}" if notes else "")


def row_notes(r: dict[str, Any]) -> str:
    return "; ".join(note for note in (own_notes(r), rules.row_notes(r)) if note)


def table(report: dict[str, Any]) -> str:
    """The "Dashboard" block of BENCHMARKS.md: the run's line, then a row per measured row."""
    run_ = report["run"]
    details = (f"{report['seconds']} s per row, wrk {report['connections']} connections, D2 {report['pages']} pages "
               f"at {report['rate']:g} updates/s on {ENTITIES} entities, ")
    rows = [harness.ratio_cells(name, r, MEASURED, row_notes(r)) for name, r in run_["results"].items()]
    return harness.ratio_table(report, details, ("dashboard", "broker"), rows)


def write_markdown(report: dict[str, Any]) -> None:
    """Replace the table between the "Dashboard" markers of BENCHMARKS.md."""
    harness.write_block(MARKERS, table(report))


# (flag, type, environment variable, default, help)
OPTIONS: tuple[tuple[str, type, str, str, str], ...] = (
    ("--seconds", int, "BENCH_SECONDS", "10", "seconds of each row's load"),
    ("--connections", int, "BENCH_CONNECTIONS", "16", "wrk connections of D0 and D1"),
    ("--pages", int, "BENCH_DASHBOARD_PAGES", "20", "D2's live-feed listeners"),
    ("--rate", float, "BENCH_DASHBOARD_RATE", "200", "D2's PATCHes per second (open loop)"),
    ("--only", str, "BENCH_ONLY", "", "D1 and/or D2, comma-separated (figures on screen only)"),
)


def options() -> argparse.Namespace:
    parser, args = harness.parse_options(__doc__.split("\n")[0], OPTIONS)
    if args.pages < 1 or args.rate <= 0 or args.seconds < 1:
        parser.error("--pages and --seconds: at least 1; --rate: above 0")
    return args


def main() -> None:
    """Measure; with every row (no ``--only``), keep the report and, unless told not to, its table."""
    args = options()
    now = datetime.datetime.now()
    settings = {key: getattr(args, key) for key in ("seconds", "connections", "pages", "rate")}
    report: dict[str, Any] = {"date": now.isoformat(timespec="seconds"), "machine": harness.machine(), **settings,
                              "entities": ENTITIES}
    with tempfile.TemporaryDirectory(prefix="waziup-bench-dashboard-") as tmp:
        report["run"] = DashboardBench(args, Path(tmp)).run()
    if not args.only:
        harness.save_report(report, f"dashboard-{now:%Y-%m-%d-%H%M%S}.json")
        if not args.no_markdown:
            write_markdown(report)


if __name__ == "__main__":
    main()
