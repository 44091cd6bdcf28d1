"""The history service's benchmark: ``make bench-history`` (also run by ``make bench``, after
bench/run.py); ``BENCH_SECONDS=2 BENCH_HISTORY_VALUES=200000`` for a quick run.

On each store of ``BENCH_BACKENDS`` (a fresh SQLite file, or a throw-away PostgreSQL cluster
started for the run: ``devtools/pg_cluster.py``, as bench/run.py does), with the history service
(``python -m analytics.history``) as a subprocess on loopback and the load from this process or
wrk:

* **H1 ingestion**, ``POST /v2/notify``: QuantumLeap-style notifications (no Waziup-Sequence) of
  100 entities x 10 Number attributes (1,000 values) and of 1 entity x 1 attribute (the worst
  case), from ``BENCH_HISTORY_CONNECTIONS`` keep-alive connections of the asyncio client
  (bench/client.py: it waits for every answer, so the set of acknowledged notifications is exact;
  wrk abandons those in flight). Attribute ``a0`` of every entity carries the request's sequence
  number, so after the run the stored values are counted (``aggrMethod=count``, the service's
  roll-ups; and the raw rows, straight from the store) and checksummed (``aggrMethod=sum`` of a0)
  against what was acknowledged: *lost* must be 0. 100x10 is run again on a store already
  holding ``BENCH_HISTORY_GROWN`` values (2,000,000) of the same series, loaded in this process
  through the store's ``ingest`` (a fresh store hides what each value costs once the B-trees
  outgrow the caches). The same loads go to a QuantumLeap-like baseline (bench/ql_baseline.py:
  one INSERT per entity into a wide per-type table, a commit per notification, on the same
  database), and the bare Starlette yardstick (bench/baseline_app.py) is measured with wrk as in
  every bench table.
* **H2 end to end**: the broker with ``-feedURL`` to the history service, 10,000 Rooms preloaded
  (and drained into the history), then W1's PATCH load (wrk, bench/lua/patch.lua) for
  ``BENCH_SECONDS``; then the time until the history holds every acknowledged update (the broker's
  outbox empty, the history's count of the Rooms' temperature values polled straight from its
  store). Broker updates/s, history values/s end to end (load + drain), the lag, lost.
* **H3 queries** on ``BENCH_HISTORY_VALUES`` stored values: 10 entities x 10 attributes (100
  series), one value a minute from 2026-01-01, loaded before the service starts by the store's own
  ``ingest`` in this process (``BENCH_HISTORY_LOAD=store``, 12,000 values per transaction; ``http``
  sends the same batches as notifications), then with wrk (bench/lua/history_query.lua) on random
  series: ``lastN=100``, one UTC day by hour (``aggrMethod=avg&aggrPeriod=hour``), and 24 hours
  from half past an hour (edge hours read raw), each on 1 connection (the latency the targets are
  about) and on ``BENCH_HISTORY_CONNECTIONS``. The store's size per million values: the SQLite
  file and its WAL, or ``pg_total_relation_size`` of the ``history_*`` tables.

Writes bench/results/history-<date>.json and the "History service" section of BENCHMARKS.md (one
block per store, between its markers: a run of one store keeps the other's).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import client  # noqa: E402
import harness  # noqa: E402  (also puts the repository root on sys.path: analytics.history)
import run  # noqa: E402  (bench/run.py: server start-up, CPU accounting, wrk, the preload)
from harness import HOST, PY, ROOT, replace_block  # noqa: E402

from analytics.history.model import Batch, Element, Sample  # noqa: E402

SHAPES = {  # H1 notification shapes: entities per notification, attributes per entity, entity type
    "100x10": (100, 10, "H1Batch"),
    "1x1": (1, 1, "H1Single"),
}
H1_ENTITIES = 1000  # H1 notifications rotate over Sensor0..Sensor999 of each type
H3_TYPE, H3_PREFIX, H3_ENTITIES, H3_ATTRS = "Meter", "Meter", 10, 10  # 100 series
H3_T0 = int(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC).timestamp())  # seconds
H3_BATCH_MINUTES = 120  # per transaction: 120 minutes x 100 series = 12,000 values, whole hours
H3_QUERIES = {  # wrk mode -> row name
    "lastN": "H3 lastN=100",
    "day": "H3 1 day by hour (avg)",
    "shifted": "H3 24 h by hour, unaligned",
}
TARGETS = {"h1_values": 10_000, "lastN_p50_ms": 10.0, "day_p50_ms": 20.0}
BACKEND_TITLES = run.BACKEND_TITLES


# -- processes, CPU, load generators -----------------------------------------------------------


def stop(proc: subprocess.Popen[bytes] | None, log: Path | None = None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    if proc.returncode not in (0, -15) and log is not None and log.exists():
        print(log.read_text()[-3000:], file=sys.stderr)


def settle(pids: list[int], limit: float = 120) -> None:
    """Until the processes are idle (requests a load generator abandoned are still being run)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = sum(run.cpu_seconds(p) for p in pids)
        time.sleep(0.5)
        if sum(run.cpu_seconds(p) for p in pids) - before < 0.05:
            return
    print(f"bench: still busy after {limit:.0f} s; measuring anyway", flush=True)


def wrk(script: str, args: list[str | int], port: int, connections: int, seconds: float) -> dict[str, Any]:
    """bench/run.py's wrk run (one thread), with this run's connections and duration."""
    options = argparse.Namespace(threads=1, connections=connections, seconds=seconds)
    return run.Bench.wrk(SimpleNamespace(args=options, port=port), script, args, port)  # type: ignore[arg-type]


class Probe:
    """Plain SQL on a store from this process: counts while the service runs, sizes. Counting
    here rather than through the service keeps the polls of H2 off the service's CPU."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite:///")
        self.prefix = "" if self.sqlite else "history_"
        if self.sqlite:
            self.path = Path(url[len("sqlite:///"):])
            self.db = sqlite3.connect(self.path, timeout=30)
        else:
            import asyncpg

            self.loop = asyncio.new_event_loop()
            self.conn = self.loop.run_until_complete(asyncpg.connect(url))

    def scalar(self, sql: str) -> Any:
        if self.sqlite:
            return self.db.execute(sql).fetchone()[0]
        return self.loop.run_until_complete(self.conn.fetchval(sql))

    def _series(self, entity_type: str, attr: str | None) -> str:
        where = f"etype = '{entity_type}'" + (f" AND attr = '{attr}'" if attr else "")
        return f"SELECT id FROM {self.prefix}series WHERE {where}"

    def points(self, entity_type: str, attr: str | None = None) -> int:
        """Raw values stored of a type (one attribute of it)."""
        return int(self.scalar(f"SELECT count(*) FROM {self.prefix}points WHERE series IN "
                               f"({self._series(entity_type, attr)})"))

    def rolled_up(self, entity_type: str, attr: str | None = None) -> int:
        """The same from the hourly roll-ups (written in the same transaction; cheaper to poll)."""
        return int(self.scalar(f"SELECT coalesce(sum(cnt), 0) FROM {self.prefix}hourly WHERE series IN "
                               f"({self._series(entity_type, attr)})"))

    def size(self) -> dict[str, int]:
        """Bytes of the store: the SQLite file and its WAL, or the history tables with their indexes."""
        if self.sqlite:
            wal = self.path.with_name(self.path.name + "-wal")
            return {"file": self.path.stat().st_size, "wal": wal.stat().st_size if wal.exists() else 0}
        total = self.scalar("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
                            "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' "
                            "AND c.relname LIKE 'history\\_%'")
        return {"tables": int(total or 0)}

    def close(self) -> None:
        if self.sqlite:
            self.db.close()
        else:
            self.loop.run_until_complete(self.conn.close())
            self.loop.close()


def get_json(port: int, path: str) -> Any:
    status, _, data = asyncio.run(client.call(HOST, port, "GET", path))
    if status == 404:
        return None
    if status != 200:
        sys.exit(f"bench: GET {path} answered {status}: {data[:300]!r}")
    return orjson.loads(data)


# -- one backend's run --------------------------------------------------------------------------


class HistoryBench:
    def __init__(self, args: argparse.Namespace, backend: str, work: Path, yardstick_port: int) -> None:
        self.args = args
        self.backend = backend
        self.work = work / backend
        self.work.mkdir(parents=True)
        self.yardstick_port = yardstick_port
        self.cluster: Any = None
        self.store = "SQLite (WAL, synchronous=NORMAL, fresh files)"
        self.results: dict[str, dict[str, Any]] = {}
        self.baseline: dict[str, Any] | None = None
        self.h3: dict[str, Any] = {}
        self.h1_grown: dict[str, Any] | None = None

    # -- setup ------------------------------------------------------------------------------------

    def start_cluster(self) -> None:
        from devtools.pg_cluster import Cluster, ClusterError

        try:
            self.cluster = Cluster(durable=True).start()
        except (ClusterError, OSError) as exc:
            if self.cluster is not None:
                self.cluster.stop()
            sys.exit(f"bench: PostgreSQL could not start ({exc}): install it with scripts/install-postgres.sh")
        self.store = (f"PostgreSQL {self.cluster.version()} (throw-away cluster on loopback, fsync on, "
                      "synchronous_commit off)")

    def db_url(self, name: str, postgis: bool = False) -> str:
        """A fresh database (or SQLite file) named ``name``."""
        if self.cluster is None:
            return f"sqlite:///{self.work / name}.db"
        return self.cluster.create_database(name, postgis=postgis)

    @property
    def db_pid(self) -> int | None:
        return self.cluster.postmaster_pid() if self.cluster is not None else None

    def start_history(self, name: str, url: str) -> tuple[subprocess.Popen[bytes], int, Path]:
        port = harness.free_port(HOST)
        log = self.work / f"{name}.log"
        proc = run.start([PY, "-m", "analytics.history", "-host", HOST, "-port", str(port), "-dbURI", url,
                          "-logLevel", "WARNING"], port, "/version", log)
        return proc, port, log

    # -- recording --------------------------------------------------------------------------------

    def with_db(self, procs: dict[str, int]) -> dict[str, int]:
        """The processes whose CPU a row reports: those named, and the PostgreSQL server's."""
        return {**procs, "PostgreSQL": self.db_pid} if self.db_pid else procs

    def measure(self, name: str, unit: str, procs: dict[str, int], work: Callable[[], dict[str, Any]],
                values_per_request: int = 1) -> dict[str, Any]:
        """Run one workload once the processes are idle; their CPU over it (100% = one core), up
        to the end of its load (``cpu_at_end`` in its result, when it goes on after that)."""
        procs = self.with_db(procs)
        settle(list(procs.values()))
        before = {k: run.cpu_seconds(p) for k, p in procs.items()}
        result = work()
        seconds = result["seconds"]
        after = result.pop("cpu_at_end", None) or {k: run.cpu_seconds(p) for k, p in procs.items()}
        result["cpu_pct"] = {k: 100 * (after[k] - before[k]) / seconds for k in procs}
        result["rps"] = result["requests"] / seconds
        result["rate"], result["unit"] = result["rps"] * values_per_request, unit
        if self.baseline is not None:
            result["vs_bare"] = {"rps": result["rps"] / self.baseline["rps"],
                                 "p50": result["p50_ms"] / self.baseline["p50_ms"]}
        self.results[name] = result
        print(describe(name, result), flush=True)
        return result

    def selected(self, part: str) -> bool:
        return harness.selected(self.args.only, part)

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        load = os.getloadavg()
        if self.backend == "postgresql":
            self.start_cluster()
        print(f"== {self.backend}: {self.store}", flush=True)
        try:
            self.measure("baseline (bare Starlette)", "req/s", {},
                         lambda: wrk("baseline.lua", [], self.yardstick_port, self.args.connections, self.args.seconds))
            self.baseline = self.results["baseline (bare Starlette)"]
            for part, measure in (("H1", self.ingestion), ("H2", self.end_to_end), ("H3", self.queries)):
                if self.selected(part):
                    measure()
        finally:
            if self.cluster is not None:
                self.cluster.stop()
        return {"store": self.store, "load_average": load, "results": self.results, "h1_grown": self.h1_grown,
                "h3": self.h3}

    # -- H1 -----------------------------------------------------------------------------------------

    def ingestion(self) -> None:
        for shape in SHAPES:  # each on fresh stores
            self.h1_pair(shape, f"history_h1_{shape}", f"ql_h1_{shape}", 0)
        if self.args.grown:
            self.h1_pair("100x10", "history_h1_grown", "ql_h1_grown", self.args.grown)

    def h1_pair(self, shape: str, history_db: str, ql_db: str, grown: int) -> None:
        """One H1 shape on the history service and on the QL-like baseline, each on its store
        (first filled with ``grown`` values of the same series, for the grown-store row)."""
        entities, attrs, etype = SHAPES[shape]
        url, ql_url = self.db_url(history_db), self.db_url(ql_db)
        preloaded = 0
        if grown:
            sweeps = max(1, grown // (H1_ENTITIES * attrs))
            loaded = asyncio.run(load_in_process(url, grown_batches(etype, attrs, sweeps), sweeps * H1_ENTITIES * attrs,
                                                 "H1 grown store"))
            preloaded = loaded["values"]
            self.h1_grown = loaded
        history, port, log = self.start_history(history_db, url)
        ql_port = harness.free_port(HOST)
        ql_log = self.work / f"{ql_db}.log"
        ql = run.start([PY, str(HERE / "ql_baseline.py"), str(ql_port), ql_url], ql_port, None, ql_log)
        probe = Probe(url)
        suffix = f", store of {preloaded / 1e6:g}M values" if grown else ""
        try:
            ql_preloaded = 0
            if grown:
                ql_preloaded = asyncio.run(fill(ql_port, etype, attrs, preloaded // (H1_ENTITIES * attrs),
                                                "H1 grown store, QL-like"))
                preloaded += asyncio.run(fill(port, etype, attrs, 1, "H1 grown store, warm-up"))
            ours = self.measure(f"H1 notify {shape}{suffix}", "values/s", {"history": history.pid},
                                lambda: self.notify_load(port, shape), entities * attrs)
            ours.update(self.count_history(port, probe, shape, ours, preloaded))
            print(lost_line(ours), flush=True)
            theirs = self.measure(f"H1 notify {shape}{suffix}, QL-like", "values/s", {"QL-like": ql.pid},
                                  lambda: self.notify_load(ql_port, shape), entities * attrs)
            theirs.update(self.count_ql(ql_port, shape, theirs, ql_preloaded))
            print(lost_line(theirs), flush=True)
            ours["vs_ql"] = ours["rate"] / theirs["rate"] if theirs["rate"] else None
            if ours["vs_ql"] is not None:
                print(f"{'':<34} ours / QL-like: x{ours['vs_ql']:.2f} values/s", flush=True)
        finally:
            probe.close()
            stop(ql, ql_log)
            stop(history, log)

    def notify_load(self, port: int, shape: str) -> dict[str, Any]:
        """Closed-loop notifications of one shape; a0 of every entity = the request's number."""
        entities, attrs, etype = SHAPES[shape]
        rng = random.Random(7)
        templates = []  # consecutive requests go to other entities: concurrent ones do not wait on each other's rows
        for _variant in range(4 if entities > 1 else 1):
            for window in range(H1_ENTITIES // entities):
                data = []
                for i in range(window * entities, (window + 1) * entities):
                    entity: dict[str, Any] = {"id": f"Sensor{i}", "type": etype, "a0": {"type": "Number", "value": "@SEQ@"}}
                    for j in range(1, attrs):
                        entity[f"a{j}"] = {"type": "Number", "value": round(rng.uniform(0, 1000), 2)}
                    data.append(entity)
                templates.append(orjson.dumps({"subscriptionId": "bench-h1", "data": data}))
        acked = {"count": 0, "sum": 0}

        def make(seq: int) -> tuple[str, str, bytes]:
            return "POST", "/v2/notify", templates[seq % len(templates)].replace(b'"@SEQ@"', b"%d" % seq)

        def done(seq: int, status: int, latency: float) -> None:
            if 200 <= status < 300:
                acked["count"] += 1
                acked["sum"] += seq

        cpu = time.process_time()
        result = asyncio.run(client.drive(HOST, port, self.args.history_connections, self.args.seconds, make, done))
        result["client_cpu_pct"] = 100 * (time.process_time() - cpu) / result["seconds"]
        result["notifications_per_s"] = result["requests"] / result["seconds"]
        result["acked_values"] = acked["count"] * entities * attrs
        result["acked_checksum"] = acked["sum"] * entities
        return result

    def count_history(self, port: int, probe: Probe, shape: str, r: dict[str, Any], preloaded: int) -> dict[str, Any]:
        """What the history stored of the run (beyond ``preloaded``, whose a0 values are 0), by
        its own queries and straight from the store."""
        _, _, etype = SHAPES[shape]
        counted = get_json(port, f"/v2/types/{etype}/value?aggrMethod=count") or {"values": []}
        stored = sum(v for e in counted["values"] for a in e["attributes"] for v in a["values"] if v)
        summed = get_json(port, f"/v2/types/{etype}/attrs/a0/value?aggrMethod=sum") or {"values": []}
        checksum = sum(v for e in summed["values"] for v in e["values"] if v)
        return accounting(r, int(stored) - preloaded, int(checksum), raw=probe.points(etype) - preloaded)

    def count_ql(self, port: int, shape: str, r: dict[str, Any], preloaded: int) -> dict[str, Any]:
        _, attrs, etype = SHAPES[shape]
        stats = get_json(port, f"/stats?type={etype}&sum=a0")
        return accounting(r, stats["rows"] * attrs - preloaded, int(stats["sum"]))

    # -- H2 -----------------------------------------------------------------------------------------

    def end_to_end(self) -> None:
        history_url = self.db_url("history_h2")
        history, history_port, history_log = self.start_history("history-h2", history_url)
        broker_port = harness.free_port(HOST)
        broker_log = self.work / "broker.log"
        broker_url = self.db_url("broker", postgis=True) if self.cluster is not None else ""
        cmd = [PY, "-m", "broker", "-localIp", HOST, "-port", str(broker_port), "-data", str(self.work / "broker"),
               "-feedURL", f"http://{HOST}:{history_port}/v2/notify"]
        if broker_url:
            cmd += ["-dbURI", broker_url]
        broker = run.start(cmd, broker_port, "/version", broker_log)
        probe = Probe(history_url)
        outbox = Probe(broker_url or f"sqlite:///{self.work / 'broker' / 'broker.db'}")
        procs = self.with_db({"broker": broker.pid, "history": history.pid})
        try:
            options = argparse.Namespace(only="H2", items=0, threads=1, connections=self.args.connections,
                                         seconds=self.args.seconds)
            feeder = run.Bench(options, broker, broker_port, 0, 0)
            feeder.preload()
            began = time.monotonic()
            while probe.rolled_up("Room", "temperature") < run.ROOMS:
                if time.monotonic() - began > 300:
                    sys.exit("bench: the preload did not reach the history within 300 s")
                time.sleep(0.2)
            print(f"preload in the history {time.monotonic() - began:.1f} s after the broker's last answer", flush=True)
            self.measure("H2 PATCH via broker + feed", "updates/s", procs,
                         lambda: self.feed_load(feeder, probe, outbox, procs))
            print(lost_line(self.results["H2 PATCH via broker + feed"]), flush=True)
        finally:
            probe.close()
            outbox.close()
            stop(broker, broker_log)
            stop(history, history_log)

    def feed_load(self, feeder: run.Bench, probe: Probe, outbox: Probe, procs: dict[str, int]) -> dict[str, Any]:
        updates0, values0 = probe.points("Room", "temperature"), probe.rolled_up("Room")
        began = time.monotonic()
        result = feeder.wrk("patch.lua", [run.ROOMS])
        ended = time.monotonic()
        cpu_at_end = {k: run.cpu_seconds(p) for k, p in procs.items()}
        at_end = probe.rolled_up("Room", "temperature") - updates0
        acked = result["requests"] - result["non2xx"]
        deadline = ended + max(120.0, 20 * self.args.seconds)
        lag = None
        while time.monotonic() < deadline:  # every acknowledged update in the history, and the outbox empty
            stored = probe.rolled_up("Room", "temperature") - updates0
            if lag is None and stored >= acked:
                lag = time.monotonic() - ended
            if lag is not None and outbox.scalar("SELECT count(*) FROM outbox") == 0:
                break
            time.sleep(0.05)
        drained = time.monotonic()
        stored = probe.points("Room", "temperature") - updates0
        values = probe.rolled_up("Room") - values0
        drain_cpu = {k: 100 * (run.cpu_seconds(p) - cpu_at_end[k]) / max(drained - ended, 1e-3)
                     for k, p in procs.items()}
        result.update({
            "acked_updates": acked, "stored_updates": stored, "lost": max(0, acked - stored),
            "unacknowledged_stored": max(0, stored - acked),  # PATCHes wrk left in flight at its end
            "stored_during_load": at_end, "lag_s": lag, "drained_s": drained - ended,
            "history_values": values, "values_per_update": values / stored if stored else None,
            "history_values_per_s": values / (drained - began),
            "drain_cpu_pct": drain_cpu, "cpu_at_end": cpu_at_end,
        })
        return result

    # -- H3 -----------------------------------------------------------------------------------------

    def queries(self) -> None:
        args = self.args
        minutes = args.history_values // (H3_ENTITIES * H3_ATTRS)
        values = minutes * H3_ENTITIES * H3_ATTRS
        url = self.db_url("history_h3")
        if args.load == "store":
            loaded = asyncio.run(load_in_process(url, meter_batches(minutes), values, "H3 load"))
            loaded["how"] += f" ({H3_BATCH_MINUTES * H3_ENTITIES * H3_ATTRS:,} values per transaction)"
        else:
            proc, port, log = self.start_history("history-h3-load", url)
            try:
                loaded = asyncio.run(load_over_http(port, minutes))
            finally:
                stop(proc, log)
        probe = Probe(url)
        try:
            if not probe.sqlite:
                probe.scalar("ANALYZE")  # what autovacuum does after a bulk load, now rather than at random
            size = probe.size()
            stored = probe.points(H3_TYPE)
        finally:
            probe.close()
        total = sum(size.values())
        self.h3 = {"values": values, "series": H3_ENTITIES * H3_ATTRS, "minutes": minutes, "stored": stored,
                   "load": loaded, "size": size, "bytes_per_million": total * 1e6 / stored if stored else None}
        print(f"H3 store: {stored:,} values, {total / 1e6:.1f} MB ({' + '.join(f'{k} {v / 1e6:.1f} MB' for k, v in size.items())})"
              f", {total / stored:.1f} bytes per value", flush=True)
        if stored != values:
            print(f"bench: H3 stored {stored} values of {values}", flush=True)
        history, port, log = self.start_history("history-h3", url)
        try:
            self.check_answers(port)
            for mode, name in H3_QUERIES.items():
                wargs: list[str | int] = [mode, H3_TYPE, H3_PREFIX, H3_ENTITIES, H3_ATTRS, H3_T0, minutes]
                wrk("history_query.lua", wargs, port, 1, min(2, args.seconds))  # warm-up: the service's caches
                for connections in sorted({1, args.history_connections}):
                    self.measure(f"{name}, {connections} conn", "queries/s", {"history": history.pid},
                                 lambda w=wargs, c=connections: wrk("history_query.lua", w, port, c, args.seconds))
        finally:
            stop(history, log)

    def check_answers(self, port: int) -> None:
        """One query of each kind answers what it should (else the timings mean nothing)."""
        day = datetime.datetime.fromtimestamp(H3_T0, datetime.UTC)
        base = f"/v2/entities/{H3_PREFIX}3/attrs/a7?type={H3_TYPE}"
        last = get_json(port, base + "&lastN=100")
        hours = get_json(port, base + f"&aggrMethod=avg&aggrPeriod=hour&fromDate={day:%Y-%m-%d}T00:00:00.000Z"
                                      f"&toDate={day:%Y-%m-%d}T23:59:59.999Z")
        shifted = get_json(port, base + f"&aggrMethod=avg&aggrPeriod=hour&fromDate={day:%Y-%m-%d}T00:30:00.000Z"
                                        f"&toDate={day + datetime.timedelta(days=1):%Y-%m-%d}T00:29:59.999Z")
        counts = [len(answer["values"]) if answer else 0 for answer in (last, hours, shifted)]
        if counts != [100, 24, 25]:
            sys.exit(f"bench: H3 answers have {counts} values, not [100, 24, 25]")


def accounting(r: dict[str, Any], stored: int, checksum: int, raw: int | None = None) -> dict[str, Any]:
    """Stored against acknowledged: lost (acknowledged, not stored), extra (stored, never acknowledged)."""
    found = {"stored_values": stored, "lost": max(0, r["acked_values"] - stored),
             "extra": max(0, stored - r["acked_values"]), "checksum_ok": checksum == r["acked_checksum"]}
    if raw is not None:
        found["raw_values"] = raw
        found["lost"] = max(found["lost"], r["acked_values"] - raw)
    return found


# -- H3 loading ---------------------------------------------------------------------------------


def h3_value(minute: int, entity: int, attr: int) -> float:
    return 20 + ((minute * 7919 + entity * 104729 + attr * 31) % 1000) / 100


class Progress:
    """Progress lines of a long load, every 10 s."""

    def __init__(self, total: int, what: str) -> None:
        self.total, self.done, self.what = total, 0, what
        self.began = self.last = time.monotonic()

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= 10 or self.done >= self.total:
            self.last = now
            rate = self.done / (now - self.began)
            print(f"{self.what}: {self.done:,} of {self.total:,} values, {rate:,.0f} values/s"
                  + (f", about {(self.total - self.done) / rate:.0f} s left" if self.done < self.total else ""),
                  flush=True)

    def summary(self, how: str) -> dict[str, Any]:
        seconds = time.monotonic() - self.began
        return {"how": how, "values": self.done, "seconds": seconds, "values_per_s": self.done / seconds}


def meter_batches(minutes: int) -> Iterator[Batch]:
    """The H3 data set: 120 minutes of the 100 series per batch (whole hours)."""
    names = [f"a{j}" for j in range(H3_ATTRS)]
    for first in range(0, minutes, H3_BATCH_MINUTES):
        elements = []
        for m in range(first, min(first + H3_BATCH_MINUTES, minutes)):
            t = (H3_T0 + 60 * m) * 1000
            for e in range(H3_ENTITIES):
                samples = tuple(Sample(names[j], "Number", h3_value(m, e, j), None) for j in range(H3_ATTRS))
                elements.append(Element(f"{H3_PREFIX}{e}", H3_TYPE, "/", t, samples))
        yield Batch("", "", tuple(elements), int(time.time() * 1000))


def grown_batches(etype: str, attrs: int, sweeps: int) -> Iterator[Batch]:
    """The grown H1 store: ``sweeps`` values of each of H1's series (Sensor0..999 x a0..), one
    sweep a minute up to now, a0 = 0 (the run's checksum stays that of its own requests)."""
    names = [f"a{j}" for j in range(attrs)]
    now = int(time.time() * 1000)
    for k in range(sweeps):
        t = now - (sweeps - k) * 60_000
        yield Batch("", "", tuple(
            Element(f"Sensor{i}", etype, "/", t, tuple(
                Sample(names[j], "Number", 0.0 if j == 0 else float((i * 31 + j * 7 + k) % 1000), None)
                for j in range(attrs)))
            for i in range(H1_ENTITIES)), now)


async def load_in_process(url: str, batches: Iterable[Batch], total: int, what: str) -> dict[str, Any]:
    """Batches through the store's own ``ingest`` (what /v2/notify calls after parsing), in this
    process, before the service starts; two in flight (one is built while the other is written)."""
    from analytics.history.store import open_store

    store = open_store(url)
    await store.open()
    progress = Progress(total, what)
    pending: set[asyncio.Task[Any]] = set()
    try:
        for batch in batches:
            if len(pending) >= 2:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    progress.add(task.result().values)
            pending.add(asyncio.create_task(store.ingest(batch)))
        for task in asyncio.as_completed(pending):
            progress.add((await task).values)
    finally:
        await store.close()
    return progress.summary("in process, the store's ingest")


async def fill(port: int, etype: str, attrs: int, sweeps: int, what: str) -> int:
    """``sweeps`` values of each H1 series as notifications of 1,000 entities, a0 = 0: the QL-like
    baseline's grown table (it has no in-process path; it takes them fast enough), and the
    history service's warm-up on its grown store (it learns the ids of the series it did not
    create)."""
    progress = Progress(sweeps * H1_ENTITIES * attrs, what)

    def job(k: int) -> Callable[[], Any]:
        async def send() -> None:
            data = [{"id": f"Sensor{i}", "type": etype,
                     **{f"a{j}": {"type": "Number", "value": 0.0 if j == 0 else float((i * 31 + j * 7 + k) % 1000)}
                        for j in range(attrs)}} for i in range(H1_ENTITIES)]
            status, _, answer = await client.call(HOST, port, "POST", "/v2/notify",
                                                  orjson.dumps({"subscriptionId": "fill", "data": data}))
            if status != 200:
                sys.exit(f"bench: filling the QL-like baseline answered {status}: {answer[:300]!r}")
            progress.add(H1_ENTITIES * attrs)
        return send

    await client.gather_limited([job(k) for k in range(sweeps)], 2)
    return progress.done


async def load_over_http(port: int, minutes: int) -> dict[str, Any]:
    """The same batches as notifications (the time index in a0's TimeInstant metadata), two in flight."""
    progress = Progress(minutes * H3_ENTITIES * H3_ATTRS, "H3 load")

    def job(first: int) -> Callable[[], Any]:
        async def send() -> None:
            data = []
            for m in range(first, min(first + H3_BATCH_MINUTES, minutes)):
                instant = datetime.datetime.fromtimestamp(H3_T0 + 60 * m, datetime.UTC).strftime(
                    "%Y-%m-%dT%H:%M:%S.000Z")
                for e in range(H3_ENTITIES):
                    entity: dict[str, Any] = {"id": f"{H3_PREFIX}{e}", "type": H3_TYPE}
                    for j in range(H3_ATTRS):
                        entity[f"a{j}"] = {"type": "Number", "value": h3_value(m, e, j)}
                    entity["a0"]["metadata"] = {"TimeInstant": {"type": "DateTime", "value": instant}}
                    data.append(entity)
            body = orjson.dumps({"subscriptionId": "bench-h3", "data": data})
            status, _, answer = await client.call(HOST, port, "POST", "/v2/notify", body)
            if status != 200:
                sys.exit(f"bench: H3 load answered {status}: {answer[:300]!r}")
            progress.add(len(data) * H3_ATTRS)
        return send

    await client.gather_limited([job(first) for first in range(0, minutes, H3_BATCH_MINUTES)], 2)
    return progress.summary("over HTTP, POST /v2/notify (12,000 values per notification, 2 in flight)")


# -- reporting ----------------------------------------------------------------------------------


def cpu_text(cpu: dict[str, float]) -> str:
    return "  ".join(f"{k} CPU {v:.0f}%" for k, v in cpu.items())


def describe(name: str, r: dict[str, Any]) -> str:
    text = f"{name:<34} {r['rate']:9.0f} {r['unit']:<10} p50 {r['p50_ms']:8.2f} ms  p99 {r['p99_ms']:8.2f} ms"
    if r["unit"] != "req/s" and "vs_bare" in r:
        text += f"  | {r['rps']:.0f} req/s, x{r['vs_bare']['rps']:.3f} of bare"
    text += f"  | {cpu_text(r['cpu_pct'])}"
    if "client_cpu_pct" in r:
        text += f"  client CPU {r['client_cpu_pct']:.0f}%"
    if r.get("non2xx") or r.get("socket_errors"):
        text += f"  | non-2xx {r['non2xx']} socket errors {r.get('socket_errors', 0)}"
    return text


def lost_line(r: dict[str, Any]) -> str:
    if "acked_updates" in r:
        lag = "never" if r["lag_s"] is None else f"{r['lag_s']:.2f} s"
        return (f"{'':<34} acked {r['acked_updates']} updates, stored {r['stored_updates']} (lost {r['lost']}, "
                f"{r['unacknowledged_stored']} left in flight by wrk); {r['stored_during_load']} in the history when "
                f"the load stopped, all {lag} later; {r['history_values_per_s']:.0f} history values/s end to end "
                f"({r['values_per_update'] or 0:.1f} per update); drain: {cpu_text(r['drain_cpu_pct'])}")
    raw = f", raw rows {r['raw_values']}" if "raw_values" in r else ""
    return (f"{'':<34} acked {r['acked_values']} values, stored {r['stored_values']}{raw}: lost {r['lost']}, "
            f"extra {r['extra']}, checksum {'ok' if r['checksum_ok'] else 'WRONG'}")


def row_notes(name: str, r: dict[str, Any], results: dict[str, dict[str, Any]]) -> str:
    notes = []
    if "acked_values" in r:
        notes.append(f"lost {r['lost']} of {r['acked_values']} acknowledged values"
                     + ("" if r["checksum_ok"] else ", checksum WRONG"))
        notes.append(f"client CPU {r['client_cpu_pct']:.0f}%")
    if r.get("vs_ql"):
        notes.append(f"**x{r['vs_ql']:.2f} of QL-like**")
    if "acked_updates" in r:
        lag = "never" if r["lag_s"] is None else f"{r['lag_s']:.2f} s"
        notes.append(f"{r['history_values_per_s']:.0f} history values/s end to end; all in the history {lag} "
                     f"after the load ({r['stored_during_load']} of {r['acked_updates']} at its end); lost {r['lost']}; "
                     f"drain: {cpu_text(r['drain_cpu_pct'])}")
    if r.get("non2xx"):
        notes.append(f"non-2xx {r['non2xx']}")
    other = {k: v for k, v in r["cpu_pct"].items() if k not in ("history", "PostgreSQL")}
    if other:
        notes.append(cpu_text(other))
    return "; ".join(notes)


def verdicts(run_: dict[str, Any]) -> str:
    """The paragraph: what the figures mean, the targets met or not."""
    res = run_["results"]
    parts = []
    h1, ql = res.get("H1 notify 100x10"), res.get("H1 notify 100x10, QL-like")
    if h1:
        met = "met" if h1["rate"] >= TARGETS["h1_values"] else "**not met**"
        parts.append(f"Ingestion in notifications of 1,000 values: {h1['rate']:,.0f} values/s "
                     f"(target {TARGETS['h1_values']:,}: {met})"
                     + (f", x{h1['rate'] / ql['rate']:.2f} of the QuantumLeap-like baseline on the same store" if ql else "")
                     + f", the service at {h1['cpu_pct'].get('history', 0):.0f}% CPU.")
    grown = next((r for n, r in res.items() if n.startswith("H1 notify 100x10, store of") and "QL-like" not in n), None)
    if grown:
        met = "met" if grown["rate"] >= TARGETS["h1_values"] else "**not met**"
        parts.append(f"On a store already holding {run_['h1_grown']['values'] / 1e6:g}M values of the same series: "
                     f"{grown['rate']:,.0f} values/s ({met})"
                     + (f", x{grown['vs_ql']:.2f} of the baseline" if grown.get("vs_ql") else "") + ".")
    worst, worst_ql = res.get("H1 notify 1x1"), res.get("H1 notify 1x1, QL-like")
    if worst:
        parts.append(f"One value per notification, the worst case, is bound by the per-request cost: "
                     f"{worst['rps']:,.0f} notifications/s (x{worst['vs_bare']['rps']:.2f} of the bare app's requests/s"
                     + (f", x{worst['rate'] / worst_ql['rate']:.2f} of the baseline" if worst_ql else "") + ").")
    lost = [(n, r["lost"]) for n, r in res.items() if "lost" in r]
    if lost:
        bad = [f"{n}: {k}" for n, k in lost if k]
        parts.append("Nothing acknowledged was lost." if not bad else f"**Lost values**: {', '.join(bad)}.")
    h2 = res.get("H2 PATCH via broker + feed")
    if h2:
        lag = "never reached" if h2["lag_s"] is None else f"{h2['lag_s']:.1f} s"
        parts.append(f"End to end, the broker took {h2['rate']:,.0f} PATCH/s with its feed on, the history held "
                     f"{h2['stored_during_load'] / max(h2['acked_updates'], 1):.0%} of them when the load stopped and "
                     f"all of them {lag} later ({h2['history_values_per_s']:,.0f} values/s end to end).")
    last_n, day = res.get(f"{H3_QUERIES['lastN']}, 1 conn"), res.get(f"{H3_QUERIES['day']}, 1 conn")
    if last_n and day:
        def verdict(r: dict[str, Any], target: float) -> str:
            return f"p50 {r['p50_ms']:.1f} ms (target {target:g}: {'met' if r['p50_ms'] <= target else '**not met**'})"
        h3 = run_["h3"]
        parts.append(f"On {h3['stored']:,} stored values, lastN=100 answers in {verdict(last_n, TARGETS['lastN_p50_ms'])}"
                     f" and a day by hour in {verdict(day, TARGETS['day_p50_ms'])} on one connection; the store takes "
                     f"{h3['bytes_per_million'] / 1e6:.0f} MB per million values.")
    return " ".join(parts)


INTRO = """`make bench-history` runs `bench/history.py` (also run by `make bench`, after `bench/run.py`):

    make bench-history                                          # both stores, 10 s per workload, 10,000,000 values for H3
    make bench-history BENCH_SECONDS=2 BENCH_HISTORY_VALUES=200000   # quick run
    make bench-history BENCH_BACKENDS=sqlite

Other knobs: `BENCH_HISTORY_CONNECTIONS` (4: H1 and the H3 throughput rows), `BENCH_HISTORY_GROWN`
(2,000,000: the values already stored for the grown-store H1 row; 0: no such row), `BENCH_CONNECTIONS`
(16: the yardstick and H2's PATCH load), `BENCH_HISTORY_LOAD` (`store`: the H3 data set through
the store's own `ingest` in the bench process, 12,000 values per transaction; `http`: the same
batches as notifications), `BENCH_ONLY` (`H1`, `H2`, `H3`: figures on screen only). For each
store the history service (`python -m analytics.history`) runs as a subprocess on a fresh SQLite
file or database of a throw-away PostgreSQL cluster (as for the broker's tables above), and:

| rows | what |
| --- | --- |
| H1 notify 100x10 / 1x1 | `POST /v2/notify` of 100 entities x 10 Number attributes (1,000 values), or 1 x 1, QuantumLeap-style (no `Waziup-Sequence`), from the asyncio client (it waits for every answer, so the acknowledged set is exact); rate in attribute values/s. After the run, what the service stored (its `aggrMethod=count`, and the raw rows read from the store) and the sum of `a0`, which carries each request's number, are checked against what was acknowledged: *lost* must be 0 |
| H1 notify 100x10, store of 2M values | the same on a store already holding `BENCH_HISTORY_GROWN` values (2,000,000; 0: no such row) of the same 10,000 series, loaded in the bench process through the store's `ingest` before the service starts: each value of a notification lands in another series, so on a grown store each costs a page of its own (WAL and cache), which a fresh store hides |
| ..., QL-like | the same load on `bench/ql_baseline.py`: a bare Starlette app on the same stack and store doing what QuantumLeap does per notification (one INSERT per entity into a wide per-type table, one commit per notification), leaner than QuantumLeap (no metadata table, columns cached) |
| H2 PATCH via broker + feed | the broker with `-feedURL` to the service, 10,000 Rooms preloaded and drained, W1's PATCH load (wrk, `BENCH_CONNECTIONS`) for the run time; then the time until the history holds as many updates as wrk saw acknowledged, and until the broker's outbox is empty (every write the broker committed is in the history); history values/s end to end = values stored / (load + drain), counted straight from the store. *lost* = acknowledged PATCHes not in the history; the PATCHes wrk abandons in flight at its end (at most one per connection) may still be applied, and are counted apart |
| H3 ... | wrk on random series of 10 entities x 10 attributes holding one value a minute (`BENCH_HISTORY_VALUES` in all): `lastN=100`; one UTC day at `aggrMethod=avg&aggrPeriod=hour`; 24 hours from half past an hour (partial edge hours read raw); on 1 connection (the latency the targets are about) and on `BENCH_HISTORY_CONNECTIONS` |

"req/s vs bare" is the row's requests (notifications, PATCHes, queries) per second against the
bare Starlette app's; "history CPU" the service's process (100% = one core: its SQLite writer
thread runs beside the event loop, so it can exceed 100%). Full results:
`bench/results/history-<date>.json`.
"""


def write_markdown(report: dict[str, Any], backend: str) -> None:
    """Replace the "History service" section's description and this store's block (adding the
    section after everything else the first time); the other sections and the other store's
    block stay."""
    run_ = report["backends"][backend]
    db = backend == "postgresql"
    lines = [
        harness.run_line(
            report,
            f"{run_['store']}, {report['seconds']} s per workload, H1/H3 {report['history_connections']} connections, "
            f"wrk {report['connections']} connections, ",
            run_["load_average"][0], "a loaded machine: these figures show the suite works, not what the service can do"),
        "",
        "| row | rate | unit | p50 ms | p99 ms | req/s | req/s vs bare | history CPU |"
        + (" PostgreSQL CPU |" if db else "") + " notes |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if db else "") + " --- |",
    ]
    for name, r in run_["results"].items():
        cpu = r["cpu_pct"]
        lines.append(
            f"| {name} | {r['rate']:.0f} | {r['unit']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rps']:.0f} | "
            f"{r.get('vs_bare', {}).get('rps', 1):.3f} | "
            + (f"{cpu['history']:.0f}%" if "history" in cpu else "") + " |"
            + (f" {cpu.get('PostgreSQL', 0):.0f}% |" if db else "") + f" {row_notes(name, r, run_['results'])} |")
    grown = run_.get("h1_grown")
    if grown:
        lines += ["", f"Grown store: {grown['values']:,} values of the 10,000 series of H1 100x10 (a sweep a minute), "
                  f"loaded {grown['how']} in {grown['seconds']:.0f} s ({grown['values_per_s']:,.0f} values/s) before "
                  "the service started; the QL-like table got the same through its /v2/notify."]
    h3 = run_.get("h3")
    if h3:
        load = h3["load"]
        size = ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in h3["size"].items())
        lines += ["", f"H3 data set: {h3['stored']:,} values in {h3['series']} series ({h3['minutes']:,} minutes each), "
                  f"loaded {load['how']} in {load['seconds']:.0f} s ({load['values_per_s']:,.0f} values/s); store "
                  f"{size}: **{h3['bytes_per_million'] / 1e6:.1f} MB per million values**"
                  + (" (after ANALYZE)." if db else ".")]
    lines += ["", verdicts(run_)]
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    intro = ("<!-- history-intro -->", "<!-- /history-intro -->")
    text = replace_block(text, *intro, INTRO.rstrip("\n")) or (
        text.rstrip("\n") + f"\n\n## History service\n\n{intro[0]}\n{INTRO.rstrip()}\n{intro[1]}\n")
    path.write_text(harness.set_backend_block(text, "history-results", backend, BACKEND_TITLES.get(backend, backend), lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", 10)))
    parser.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", 16)),
                        help="wrk connections of the yardstick and of H2's PATCH load")
    parser.add_argument("--history-connections", type=int,
                        default=int(os.environ.get("BENCH_HISTORY_CONNECTIONS", 4)),
                        help="connections of H1's notifications and of the H3 throughput rows")
    parser.add_argument("--backend", default=os.environ.get("BENCH_BACKENDS", "") or "sqlite",
                        help="stores to measure one after the other: sqlite and/or postgresql")
    parser.add_argument("--history-values", type=int,
                        default=int(os.environ.get("BENCH_HISTORY_VALUES", 10_000_000)),
                        help="values stored for the H3 queries (at least 147,000: a day and a half of 100 series)")
    parser.add_argument("--grown", type=int, default=int(os.environ.get("BENCH_HISTORY_GROWN", 2_000_000)),
                        help="values already in the store of the grown-store H1 row (0: no such row)")
    parser.add_argument("--load", choices=("store", "http"), default=os.environ.get("BENCH_HISTORY_LOAD", "store"),
                        help="how H3's data set is loaded")
    parser.add_argument("--only", default=os.environ.get("BENCH_ONLY", ""),
                        help="H1, H2 and/or H3, comma-separated (figures on screen only)")
    parser.add_argument("--no-markdown", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()
    backends = list(dict.fromkeys(b for b in args.backend.replace(",", " ").split() if b))
    if not backends or any(b not in ("sqlite", "postgresql") for b in backends):
        parser.error(f"--backend: sqlite and/or postgresql, not {args.backend!r}")
    if args.history_values < 1470 * H3_ENTITIES * H3_ATTRS:
        parser.error("--history-values: at least 147,000 (the H3 queries need 24.5 hours of each series)")

    now = datetime.datetime.now()
    report: dict[str, Any] = {
        "date": now.isoformat(timespec="seconds"), "machine": harness.machine(), "seconds": args.seconds,
        "connections": args.connections, "history_connections": args.history_connections,
        "history_values": args.history_values, "grown": args.grown, "targets": TARGETS, "backends": {},
    }
    with tempfile.TemporaryDirectory(prefix="waziup-bench-history-") as tmp:
        work = Path(tmp)
        port = harness.free_port(HOST)
        yardstick = run.start([PY, str(HERE / "baseline_app.py"), str(port)], port, "/", work / "baseline.log")
        try:
            for backend in backends:
                report["backends"][backend] = HistoryBench(args, backend, work, port).run()
        finally:
            stop(yardstick)

    if args.only:
        return
    harness.save_report(report, f"history-{now:%Y-%m-%d-%H%M%S}.json")
    if not args.no_markdown:
        for backend in backends:
            write_markdown(report, backend)


if __name__ == "__main__":
    main()
