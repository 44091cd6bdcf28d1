"""The benchmark suite: ``make bench`` (``BENCH_SECONDS=2`` for a quick run).

Starts the broker as a subprocess on a fresh data dir, a bare Starlette app on the same server
stack (the yardstick every figure is also given as a ratio to) and a notification receiver,
preloads entities, then runs each workload for a fixed time from a separate load process on
loopback: wrk with bench/lua/*.lua, except W4, which needs exact per-request accounting to count
lost notifications and uses the asyncio client in bench/client.py. Writes
bench/results/<date>.json and the results table of BENCHMARKS.md.

``--backend sqlite,postgresql`` measures both stores one after the other (``make bench`` does):
PostgreSQL runs on a throw-away cluster started for the run (``devtools/pg_cluster.py``), whose
CPU is reported beside the broker's.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import client  # noqa: E402
import harness  # noqa: E402  (also puts the repository root on sys.path: devtools.pg_cluster)
import pyspy  # noqa: E402
from harness import HOST, PY, ROOT  # noqa: E402

ROOMS = 10_000  # W1/W2/W3-q/W4/W5 entities: Room0..Room9999, attributes temperature, pressure, group
GROUPS = 1_000  # group = i % GROUPS, so a q=group==G query returns 10 Rooms
ITEMS = 100_000  # W3 paging: Item0..Item99999
PER_ENTITY_SUBS = 1_000
PRELOAD_BATCH = 1_000


def start(
    cmd: list[str], port: int, ready_path: str | None, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a server and wait until it answers (``ready_path``) or accepts connections."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    harness.wait_ready(proc, HOST, port, ready_path, log, str(cmd[:3]))
    return proc


cpu_seconds = harness.cpu_seconds


class Bench:
    def __init__(self, args: argparse.Namespace, broker: subprocess.Popen[bytes], broker_port: int,
                 baseline_port: int, receiver_port: int, db_pid: int | None = None, backend: str = "") -> None:
        self.args = args
        self.backend = backend
        self.broker, self.port = broker, broker_port
        self.db_pid = db_pid  # the PostgreSQL server's main process: its CPU is counted apart
        self.baseline_port, self.receiver_port = baseline_port, receiver_port
        self.results: dict[str, dict[str, Any]] = {}
        self.baseline: dict[str, Any] | None = None

    # --- running one workload -------------------------------------------------------------
    def wrk(self, script: str, args: list[str | int], port: int | None = None) -> dict[str, Any]:
        a = self.args
        cmd = ["wrk", "-t", str(a.threads), "-c", str(a.connections), "-d", f"{a.seconds}s", "--timeout", "10s",
               "-s", script, f"http://{HOST}:{port or self.port}/", "--", *map(str, args)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(cmd, cwd=HERE / "lua", capture_output=True, text=True, check=True).stdout
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        line = next((x for x in out.splitlines() if x.startswith("BENCH ")), None)
        if line is None:
            sys.exit(f"bench: no summary from wrk {script}:\n{out}")
        raw = json.loads(line[6:])
        seconds = raw["duration_us"] / 1e6
        return {
            "requests": raw["requests"], "seconds": seconds, "non2xx": raw["non2xx"],
            "socket_errors": raw["socket_errors"], "p50_ms": raw["p50_us"] / 1000, "p99_ms": raw["p99_us"] / 1000,
            "client_cpu_pct": 100 * (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / seconds,
        }

    def _record(self, name: str, unit: str, per_request: int, run: Callable[[], dict[str, Any]]) -> None:
        """Run a workload, adding broker CPU, rates and ratios to the yardstick; print a line."""
        self.settle()
        cpu = cpu_seconds(self.broker.pid)
        db_cpu = cpu_seconds(self.db_pid) if self.db_pid else 0.0
        spy = None
        if self.args.profile and name != "baseline (bare Starlette)":
            slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
            spy = pyspy.spy(self.broker.pid, self.args.seconds, Path(self.args.profile) / f"{self.backend}-{slug}.txt")
        result = run()
        if spy is not None:
            spy.wait()
        if "skipped" in result:
            self.results[name] = result
            print(f"{name:<24} skipped: {result['skipped']}", flush=True)
            return
        result["broker_cpu_pct"] = 100 * (cpu_seconds(self.broker.pid) - cpu) / result["seconds"]
        if self.db_pid:
            result["db_cpu_pct"] = 100 * (cpu_seconds(self.db_pid) - db_cpu) / result["seconds"]
        result["rps"] = result["requests"] / result["seconds"]
        result["rate"], result["unit"] = result["rps"] * per_request, unit
        if self.baseline is not None:
            result["vs_baseline"] = {
                "rate": result["rate"] / self.baseline["rps"],
                "p50": result["p50_ms"] / self.baseline["p50_ms"],
                "p99": result["p99_ms"] / self.baseline["p99_ms"],
            }
        self.results[name] = result
        print(describe(name, result), flush=True)

    def settle(self) -> None:
        """Wait until the broker (and its database server) is idle: wrk stops with requests in flight,
        and the broker still runs them."""
        def busy() -> float:
            return cpu_seconds(self.broker.pid) + (cpu_seconds(self.db_pid) if self.db_pid else 0.0)

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            before = busy()
            time.sleep(0.5)
            if busy() - before < 0.05:
                return
        print("bench: the broker is still busy after 120 s; measuring anyway", flush=True)

    # --- setup ------------------------------------------------------------------------------
    def preload(self) -> None:
        def room(i: int) -> dict[str, Any]:
            return {"id": f"Room{i}", "type": "Room", "temperature": {"value": 20, "type": "Number"},
                    "pressure": {"value": 1000, "type": "Number"}, "group": {"value": i % GROUPS, "type": "Number"}}

        def item(i: int) -> dict[str, Any]:
            return {"id": f"Item{i}", "type": "Item", "n": {"value": i, "type": "Number"}}

        jobs = [self._batch_job([room(i) for i in range(s, min(s + PRELOAD_BATCH, ROOMS))]) for s in range(0, ROOMS, PRELOAD_BATCH)]
        items = self.args.items if self.selected("W3 page") else 0
        jobs += [self._batch_job([item(i) for i in range(s, min(s + PRELOAD_BATCH, items))])
                 for s in range(0, items, PRELOAD_BATCH)]
        began = time.perf_counter()
        asyncio.run(client.gather_limited(jobs, 2))
        took = time.perf_counter() - began
        print(f"preloaded {ROOMS} Rooms and {items} Items in {took:.1f} s "
              f"({(ROOMS + items) / took:.0f} entities/s)", flush=True)
        self.results["preload"] = {"entities": ROOMS + items, "seconds": took}

    def _batch_job(self, entities: list[dict[str, Any]]) -> Callable[[], Any]:
        async def job() -> None:
            body = orjson.dumps({"actionType": "append", "entities": entities})
            status, _, data = await client.call(HOST, self.port, "POST", "/v2/op/update", body)
            if status != 204:
                sys.exit(f"bench: preload failed: {status} {data[:300]!r}")
        return job

    async def subscribe(self, subject: dict[str, Any], description: str = "bench") -> tuple[int, str]:
        """POST /v2/subscriptions notifying the receiver; (status, id)."""
        body = orjson.dumps({"description": description, "subject": subject,
                             "notification": {"http": {"url": f"http://{HOST}:{self.receiver_port}/notify"}}})
        status, headers, _ = await client.call(HOST, self.port, "POST", "/v2/subscriptions", body)
        return status, headers.get("location", "").rsplit("/", 1)[-1]

    async def unsubscribe(self, ids: list[str]) -> None:
        for sub_id in ids:
            await client.call(HOST, self.port, "DELETE", f"/v2/subscriptions/{sub_id}")

    # --- W4 -----------------------------------------------------------------------------------
    def notifications(self, per_entity: bool) -> dict[str, Any]:
        return asyncio.run(self._notifications(per_entity))

    async def _notifications(self, per_entity: bool) -> dict[str, Any]:
        if per_entity:
            subjects = [{"entities": [{"id": f"Room{i}", "type": "Room"}]} for i in range(PER_ENTITY_SUBS)]
            targets = PER_ENTITY_SUBS
        else:
            subjects, targets = [{"entities": [{"idPattern": ".*", "type": "Room"}]}], ROOMS
        ids: list[str] = []
        for subject in subjects:
            status, sub_id = await self.subscribe(subject)
            if 400 <= status < 500:
                await self.unsubscribe(ids)
                return {"skipped": "subscriptions not available"}
            if status != 201:
                sys.exit(f"bench: POST /v2/subscriptions answered {status}")
            ids.append(sub_id)
        await client.call(HOST, self.receiver_port, "POST", "/reset")
        accepted: set[int] = set()

        def make(seq: int) -> tuple[str, str, bytes]:
            # the send time rides in an attribute value; the receiver compares it on arrival
            body = b'{"temperature":{"value":%d,"type":"Number"},"pressure":{"value":"%d %d","type":"Text"}}' % (
                random.randint(0, 40), seq, time.time_ns())
            return "PATCH", f"/v2/entities/Room{random.randrange(targets)}/attrs", body

        def done(seq: int, status: int, latency: float) -> None:
            if status < 300:
                accepted.add(seq)

        result = await client.drive(HOST, self.port, self.args.connections, self.args.seconds, make, done)
        stats = await self._drain(len(accepted))
        received = set(stats["seqs"])
        await self.unsubscribe(ids)
        result.update({
            "subscriptions": len(ids), "notified_entities": stats["entities"], "lost": len(accepted - received),
            "duplicates": stats["entities"] - len(received), "unreadable": stats["bad"],
            "notify_per_second": stats["per_second"], "notify_p50_ms": stats["p50_ms"], "notify_p99_ms": stats["p99_ms"], "notify_max_ms": stats["max_ms"],
        })
        return result

    async def _drain(self, expected: int) -> dict[str, Any]:
        """Receiver stats once every accepted update is notified, or nothing arrived for 3 s."""
        last, quiet_since = -1, time.monotonic()
        while True:
            stats = orjson.loads((await client.call(HOST, self.receiver_port, "GET", "/stats"))[2])
            if stats["entities"] >= expected:
                return stats
            if stats["entities"] != last:
                last, quiet_since = stats["entities"], time.monotonic()
            elif time.monotonic() - quiet_since > 3:
                return stats
            await asyncio.sleep(0.2)

    # --- W5 -----------------------------------------------------------------------------------
    def mixed(self) -> dict[str, Any]:
        async def subscribe_some() -> list[str]:
            ids = []
            for k in range(10):  # fire on created Tmp entities only: a realistic trickle
                status, sub_id = await self.subscribe({"entities": [{"idPattern": "^Tmp-", "type": "Tmp"}]}, f"w5 {k}")
                if status != 201:
                    break
                ids.append(sub_id)
            return ids

        ids = asyncio.run(subscribe_some())
        try:
            return self.wrk("mixed.lua", [ROOMS, GROUPS, ",".join(ids) or "-"]) | {"subscriptions": len(ids)}
        finally:
            asyncio.run(self.unsubscribe(ids))

    # --- which load generator -------------------------------------------------------------
    def compare_clients(self) -> None:
        """wrk vs the asyncio client on the yardstick: requests per second and client CPU."""
        async def load() -> dict[str, Any]:
            return await client.drive(HOST, self.baseline_port, self.args.connections, self.args.seconds,
                                      lambda seq: ("GET", "/", b""))

        cpu = time.process_time()
        own = asyncio.run(load())
        own["client_cpu_pct"] = 100 * (time.process_time() - cpu) / own["seconds"]
        wrk = self.wrk("baseline.lua", [], self.baseline_port)
        for name, r in (("wrk", wrk), ("asyncio client", own)):
            rps = r["requests"] / r["seconds"]
            r["rps"] = rps
            print(f"client {name:<16} {rps:8.0f} req/s  client CPU {r['client_cpu_pct']:5.1f}%  "
                  f"({r['client_cpu_pct'] * 10_000 / rps:.0f} us CPU per request)", flush=True)
        self.results["client_comparison"] = {"wrk": wrk, "asyncio": own}

    def selected(self, name: str) -> bool:
        return harness.selected(self.args.only, name)

    def record(self, name: str, unit: str, per_request: int, run: Callable[[], dict[str, Any]]) -> None:
        if self.selected(name):
            self._record(name, unit, per_request, run)

    def run(self) -> None:
        self.record("baseline (bare Starlette)", "req/s", 1, lambda: self.wrk("baseline.lua", [], self.baseline_port))
        self.baseline = self.results.get("baseline (bare Starlette)")
        if self.args.compare_clients:
            self.compare_clients()
        self.preload()
        self.record("W1 PATCH attrs", "req/s", 1, lambda: self.wrk("patch.lua", [ROOMS]))
        self.record("W1 batch update x100", "entity-updates/s", 100, lambda: self.wrk("batch.lua", [ROOMS, 100]))
        self.record("W2 GET normalized", "req/s", 1, lambda: self.wrk("get.lua", [ROOMS, "normalized"]))
        self.record("W2 GET keyValues+attrs", "req/s", 1, lambda: self.wrk("get.lua", [ROOMS, "keyValues"]))
        self.record("W3 query type+q", "req/s", 1, lambda: self.wrk("query.lua", ["q", GROUPS]))
        self.record("W3 page 20 of 100k", "req/s", 1, lambda: self.wrk("query.lua", ["page", self.args.items]))
        self.record("W4 notify catch-all", "req/s", 1, lambda: self.notifications(per_entity=False))
        self.record("W4 notify 1000 subs", "req/s", 1, lambda: self.notifications(per_entity=True))
        self.record("W5 mixed", "req/s", 1, self.mixed)


def describe(name: str, r: dict[str, Any]) -> str:
    text = f"{name:<26} {r['rate']:9.0f} {r['unit']:<16} p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms"
    if "vs_baseline" in r:
        v = r["vs_baseline"]
        text += f"  | x{v['rate']:.3f} rate  x{v['p50']:.1f} p50  x{v['p99']:.1f} p99"
    text += f"  | broker CPU {r['broker_cpu_pct']:.0f}%"
    if "db_cpu_pct" in r:
        text += f"  PostgreSQL CPU {r['db_cpu_pct']:.0f}%"
    if r["non2xx"] or r.get("socket_errors"):
        text += f"  | non-2xx {r['non2xx']} socket errors {r.get('socket_errors', 0)}"
    if "lost" in r:
        text += (f"\n{'':<26} notifications {r['notified_entities']} ({r['notify_per_second']:.0f}/s)  lost {r['lost']}  "
                 f"latency p50 {r['notify_p50_ms']:.2f} ms  p99 {r['notify_p99_ms']:.2f} ms")
    return text


BACKEND_TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "memory": "memory"}


def backend_name(db_uri: str) -> str:
    scheme = db_uri.split(":", 1)[0].split("+", 1)[0]
    return "postgresql" if scheme in ("postgres", "postgresql") else scheme


def write_markdown(report: dict[str, Any], backend: str) -> None:
    """Replace one backend's results table of BENCHMARKS.md (between its markers) with this run's.

    Each backend has its own markers, so a run of one backend keeps the other's latest table.
    """
    run = report["backends"][backend]
    lines = [
        harness.run_line(
            report,
            f"{run['store']}, {report['seconds']} s per workload, {report['connections']} connections, "
            f"broker workers {report['workers']}, "
            + (f"{report['items']} Items (not {ITEMS}), " if report["items"] != ITEMS else ""),
            run["load_average"][0], "a loaded machine: these figures show the suite works, not what the broker can do"),
        "",
    ]
    db = any("db_cpu_pct" in r for r in run["results"].values())
    lines += [
        "| workload | rate | unit | p50 ms | p99 ms | rate vs bare | p50 vs bare | p99 vs bare | broker CPU |"
        + (" PostgreSQL CPU |" if db else "") + " notes |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if db else "") + " --- |",
    ]
    for name, r in run["results"].items():
        if "skipped" in r:
            lines.append(f"| {name} | | | | | | | | |{' |' if db else ''} skipped: {r['skipped']} |")
        elif "rate" in r:
            v = r.get("vs_baseline", {"rate": 1, "p50": 1, "p99": 1})
            notes = []
            if "lost" in r:
                notes.append(f"lost {r['lost']}, {r['notify_per_second']:.0f} notified/s, notify p50 {r['notify_p50_ms']:.1f} ms p99 {r['notify_p99_ms']:.1f} ms")
            if r["non2xx"]:
                notes.append(f"non-2xx {r['non2xx']}")
            if not r["requests"]:
                notes.append("no request completed within the run time")
            lines.append(f"| {name} | {r['rate']:.0f} | {r['unit']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                         f"{v['rate']:.3f} | {v['p50']:.1f} | {v['p99']:.1f} | {r['broker_cpu_pct']:.0f}% |"
                         + (f" {r['db_cpu_pct']:.0f}% |" if db else "") + f" {'; '.join(notes)} |")
    if "preload" in run["results"]:
        pre = run["results"]["preload"]
        lines += ["", f"Preload: {pre['entities']} entities in {pre['seconds']:.1f} s ({pre['entities'] / pre['seconds']:.0f} entities/s)."]
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n## Latest runs\n"
    path.write_text(harness.set_backend_block(text, "results", backend, BACKEND_TITLES.get(backend, backend), lines))


def run_backend(args: argparse.Namespace, backend: str, db_uri: str, work: Path,
                ports: dict[str, int]) -> dict[str, Any]:
    """One backend's run: a fresh broker (and for ``postgresql`` without --db-uri a throw-away
    cluster of its own, started and removed here); the receiver and yardstick are shared."""
    cluster = None
    data = work / backend / "data"
    data.mkdir(parents=True)
    store = backend
    if backend == "postgresql" and not db_uri:
        from devtools.pg_cluster import (  # only this backend needs it
            Cluster,
            ClusterError,
        )
        try:
            cluster = Cluster(durable=True).start()
            db_uri = cluster.create_database("bench")
        except (ClusterError, OSError) as exc:
            if cluster is not None:
                cluster.stop()
            sys.exit(f"bench: PostgreSQL could not start ({exc}): install it with scripts/install-postgres.sh")
        store = (f"PostgreSQL {cluster.version()} (throw-away cluster on loopback, fsync on, synchronous_commit off"
                 f"{', PostGIS' if 'postgis' in cluster.psql('SELECT extname FROM pg_extension', database='bench') else ''})")
    elif backend == "sqlite" and not db_uri:
        store = "SQLite (WAL, synchronous=NORMAL, fresh file)"
    elif db_uri:
        store = f"{backend} at {db_uri.split('@')[-1]}"
    broker_cmd = [PY, "-m", "broker", "-localIp", HOST, "-port", str(ports["broker"]), "-data", str(data),
                  "-notifAllowedHosts", HOST]  # the bench's receiver listens on loopback
    if db_uri:
        broker_cmd += ["-dbURI", db_uri]
    if args.workers != 1:
        broker_cmd += ["-workers", str(args.workers)]
    log = work / backend / "broker.log"
    broker = None
    print(f"== {backend}: {store}", flush=True)
    load = os.getloadavg()
    try:
        broker = start(broker_cmd, ports["broker"], "/version", log)
        bench = Bench(args, broker, ports["broker"], ports["baseline"], ports["receiver"],
                      cluster.postmaster_pid() if cluster else None, backend)
        bench.run()
        if bench.selected("W2 GET via PEP"):
            broker = _pep_rows(bench, broker, broker_cmd, work / backend, ports)
        if bench.selected("W4 privacy"):
            broker = _privacy_rows(bench, broker, broker_cmd, work / backend, ports)
    finally:
        if broker is not None:
            broker.terminate()
            try:
                broker.wait(10)
            except subprocess.TimeoutExpired:
                broker.kill()
            if broker.returncode not in (0, -15, None):
                print(log.read_text()[-3000:], file=sys.stderr)
        if cluster is not None:
            cluster.stop()
    for r in bench.results.values():
        r.pop("seqs", None)
    return {"store": store, "load_average": load, "results": bench.results}


def _privacy_rows(bench: Bench, broker: subprocess.Popen[bytes], broker_cmd: list[str], work: Path,
                  ports: dict[str, int]) -> subprocess.Popen[bytes]:
    """W4 catch-all again on a restarted broker (same data) whose subscription has an owner,
    first with no privacy policy, then with a 3-transform one (bench/privacy.py)."""
    import privacy  # bench/privacy.py

    rows = {"none": "W4 privacy: owner, no policy", "policy": "W4 privacy: 3-transform policy"}
    for mode, name in rows.items():
        broker.terminate()
        broker.wait(10)
        broker = start([*broker_cmd, *privacy.broker_args()], ports["broker"], "/version", work / f"broker-privacy-{mode}.log",
                       env={**os.environ, "BENCH_PRIVACY": mode, "PYTHONPATH": str(ROOT)})
        bench.broker = broker
        seconds, bench.args.seconds = bench.args.seconds, 5
        bench.notifications(per_entity=False)  # warm-up, the same for both: they start cold
        bench.args.seconds = seconds
        bench._record(name, "req/s", 1, lambda: bench.notifications(per_entity=False))
    without, with_policy = bench.results.get(rows["none"]), bench.results.get(rows["policy"])
    if without and with_policy:
        with_policy["vs_no_policy"] = with_policy["notify_per_second"] / without["notify_per_second"]
        print(f"{rows['policy']}: {with_policy['vs_no_policy']:.2f}x the notifications of {rows['none']}", flush=True)
    return broker


def _pep_rows(bench: Bench, broker: subprocess.Popen[bytes], broker_cmd: list[str], work: Path,
              ports: dict[str, int]) -> subprocess.Popen[bytes]:
    """W2 GET again on a restarted broker (same data), first without a guard, then behind the
    PEP guard with a JWT and with an opaque token. Like is compared with like: both brokers
    start cold (SQLite's page cache, the interpreter's) and get the same warm-up, so the
    ratio measures the PEP, not the first broker's caches, warm from the preload."""
    import pep  # bench/pep.py: the identity manager's side

    idm_port = harness.free_port(HOST)
    idm = pep.start_idm(work, idm_port, HOST, start)
    try:
        idm_url = f"http://{HOST}:{idm_port}"
        jwt, opaque = pep.tokens(idm_url)
        plain = "W2 GET restarted, no PEP"
        for name, guard, token in ((plain, [], ""), ("W2 GET via PEP", ["-guard", "security.pep:broker_guard"], jwt)):
            broker.terminate()
            broker.wait(10)
            broker = start([*broker_cmd, *guard], ports["broker"], "/version", work / f"broker-{len(guard)}.log",
                           env={**os.environ, **pep.guarded_env(idm_url)})
            bench.broker = broker
            args = [ROOMS, "normalized", *([token] if token else [])]
            seconds, bench.args.seconds = bench.args.seconds, 5
            bench.wrk("get.lua", args)  # warm-up, the same for both
            bench.args.seconds = seconds
            if not guard:
                bench._record(plain, "req/s", 1, lambda: bench.wrk("get.lua", args))
        bench.record("W2 GET via PEP (JWT)", "req/s", 1, lambda: bench.wrk("get.lua", [ROOMS, "normalized", jwt]))
        bench.record("W2 GET via PEP (opaque)", "req/s", 1, lambda: bench.wrk("get.lua", [ROOMS, "normalized", opaque]))
        without = bench.results.get(plain)
        for name in ("W2 GET via PEP (JWT)", "W2 GET via PEP (opaque)"):
            if without and name in bench.results:
                bench.results[name]["vs_no_pep"] = bench.results[name]["rate"] / without["rate"]
                print(f"{name}: {bench.results[name]['vs_no_pep']:.2f}x of {plain}", flush=True)
        return broker
    finally:
        idm.terminate()
        idm.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", 10)))
    parser.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", 16)))
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (the broker is one process)")
    parser.add_argument("--backend", default=os.environ.get("BENCH_BACKENDS", "") or "sqlite",
                        help="stores to measure one after the other, comma- or space-separated: sqlite (a fresh file), "
                             "postgresql (a throw-away cluster started for the run); default sqlite")
    parser.add_argument("--db-uri", default=os.environ.get("BENCH_DB_URI", ""),
                        help="broker -dbURI of an existing store instead (one run; its database gets Room*/Item*/Tmp-* entities)")
    parser.add_argument("--items", type=int, default=int(os.environ.get("BENCH_ITEMS", ITEMS)), help="entities for the paging workload")
    parser.add_argument("--compare-clients", action="store_true", help="also measure wrk vs the asyncio client")
    parser.add_argument("--no-markdown", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument("--only", default=os.environ.get("BENCH_ONLY", ""),
                        help="comma-separated workload name prefixes to run, e.g. 'W1 PATCH,W4' (prints only: no results file, no BENCHMARKS.md)")
    parser.add_argument("--profile", metavar="DIR", default=os.environ.get("BENCH_PROFILE", ""),
                        help="record py-spy profiles of the broker (collapsed stacks) per workload into DIR; "
                             "read them with bench/pyspy.py")
    parser.add_argument("--tag", default="", help="name the results file <date>-<tag>.json and leave BENCHMARKS.md alone "
                        "(recorded even with --only)")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", 1)), help="broker -workers")
    args = parser.parse_args()
    if args.db_uri:
        backends = [backend_name(args.db_uri)]
    else:
        backends = list(dict.fromkeys(b for b in args.backend.replace(",", " ").split() if b))
        unknown = [b for b in backends if b not in ("sqlite", "postgresql")]
        if unknown or not backends:
            parser.error(f"--backend: sqlite and/or postgresql, not {args.backend!r}")

    now = datetime.datetime.now()
    report: dict[str, Any] = {
        "date": now.isoformat(timespec="seconds"), "machine": harness.machine(),
        "seconds": args.seconds, "connections": args.connections, "wrk_threads": args.threads, "workers": args.workers,
        "rooms": ROOMS, "items": args.items, "backends": {},
    }
    with tempfile.TemporaryDirectory(prefix="waziup-bench-") as tmp:
        work = Path(tmp)
        ports = {name: harness.free_port(HOST) for name in ("broker", "baseline", "receiver")}
        procs = []
        try:
            procs.append(start([PY, str(HERE / "receiver.py"), str(ports["receiver"])], ports["receiver"], None, work / "receiver.log"))
            procs.append(start([PY, str(HERE / "baseline_app.py"), str(ports["baseline"])], ports["baseline"], "/", work / "baseline.log"))
            for backend in backends:
                report["backends"][backend] = run_backend(args, backend, args.db_uri, work, ports)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()

    if args.only and not args.tag:  # a partial run: figures on screen only
        return
    harness.save_report(report, f"{now:%Y-%m-%d-%H%M%S}{'-' + args.tag if args.tag else ''}.json")
    if not args.no_markdown and not args.tag:
        for backend in backends:
            write_markdown(report, backend)


if __name__ == "__main__":
    main()
