"""The orchestrator's service (:8080) benchmark: ``make bench-orchestrator``;
``BENCH_SECONDS=2 bench/orchestrator.py --entities 500 --records 1000 --no-markdown`` for a quick run.

A real broker (``python -m broker``, a fresh SQLite file, ``-notifAllowedHosts 127.0.0.1`` so that
it takes subscriptions notifying the orchestrator on loopback), the orchestrator's service
(``python -m orchestrator.appserver`` over it, its own fresh store, ``-allowedHosts 127.0.0.1``
so that a source may be fetched on loopback, ``-appsDir`` a folder of the run's, where O2's app
is written) and the bare Starlette yardstick (bench/baseline_app.py), all subprocesses on
loopback; then:

* **O0 baseline**: wrk (bench/lua/baseline.lua) on the yardstick, same connections and seconds:
  every row is also given as a ratio to it.
* **O1 discovery**: ``--entities`` (2,000) entities of 5 measured attributes each (and a
  location), in the default tenant, created through ``POST /v2/op/update`` batches of 500;
  ``POST /discovery/refresh`` (its seconds and sensors read are in the row's notes, and must
  find every sensor); then wrk (bench/lua/fixed_get.lua) GETs
  ``/discovery/sensors?q=tempreature&limit=20`` (checked first to answer 20 hits).
* **O2 apps' ingress**: a minimal app written in the run's folder (runtime python, a stdlib
  ``http.server`` answering 204 to ``POST /notify`` on HTTP/1.1 keep-alive, a health path, one
  subscription notifying ``/notify``) deployed through ``POST /apps``. The ingress key is never
  shown by the API, so the notification URL is read where the platform put it: the broker's
  subscription described ``waziup-app:<name>``. wrk POSTs one NGSI notification body
  (a script written in the run's folder) to the app's port straight (``endpoint`` of
  ``GET /apps/<name>``), then to that ingress path: their ratio is what the ingress costs.
  The app is a child of the orchestrator's process: its CPU is given apart ("app") and taken
  out of the orchestrator's.
* **O3 sources**: a helper process serves one JSON page of ``--records`` (5,000) records over
  stdlib ``http.server`` (three variants in turn, so that values change); an ``http-json``
  source (``enabled: false``: it runs only when asked; batches of 500) is defined through
  ``POST /sources`` and run once (the entities created; that run's time is in the notes),
  then ``POST /sources/<name>/run`` one after the other for the run's seconds. Rate = records
  written per second (the status' ``recordsWritten``, before and after); p50/p99 = a run's
  duration (the POST's time: fetch, map, write in batches, status entity).

Writes bench/results/orchestrator-<date>.json (not <date>-....json: bench/quick.py takes every
results file starting with a digit for a broker run) and the "Orchestrator" table of BENCHMARKS.md
(between ``<!-- orchestrator-results -->`` and ``<!-- /orchestrator-results -->``) unless ``--no-markdown``.

(This file's name shadows the project's ``orchestrator`` package inside the bench's own process,
bench/ being first on its ``sys.path``: the bench imports none of it; its servers are
subprocesses started from the repository's root.)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import multiprocessing
import os
import random
import sys
import tempfile
import time
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import client
import harness
import history  # (settle)
import run  # (bench/run.py: CPU accounting)
from ratio_bench import RatioBench, expect, ratios
from harness import HOST, PY

QUERY_PATH = "/discovery/sensors?q=tempreature&limit=20"
APP, SOURCE, RECORDS_PATH = "bench-app", "bench-source", "/records.json"
TENANT_HEADERS = "Fiware-Service: \r\nFiware-ServicePath: /\r\n"  # the default tenant, as fixed_get.lua sends it
BATCH = 500  # entities per /v2/op/update, the setup's and the source's
MEASURED = ("orchestrator", "broker", "app")  # the processes whose CPU every row gives
WHO = "the source server"  # the helper process, as errors name it
MARKERS = ("<!-- orchestrator-results -->", "<!-- /orchestrator-results -->")
# (entity type, its 5 measured attributes): a fifth of the sensors mean a temperature
KINDS = (("Room", ("temperature", "humidity", "co2", "luminosity", "pressure")),
         ("WeatherStation", ("airTemperature", "relativeHumidity", "windSpeed", "precipitation", "pressure")),
         ("Field", ("soilMoisture", "soilTemperature", "leafWetness", "batteryLevel", "conductivity")),
         ("Tank", ("level", "waterTemperature", "batteryLevel", "pressure", "flow")))

APP_MANIFEST = f"""name: {APP}
runtime: python
entry: app.py
ports: [{{name: http, port: 8000}}]
health: {{path: /health, port: http, interval: 1, timeout: 2, grace: 10}}
needs:
  subscriptions:
    - entities: [{{idPattern: ".*", type: BenchNotified}}]
      attrs: [temperature]
      endpoint: /notify
"""
APP_CODE = '''"""The bench's app: 204 to POST /notify, 200 to GET /health, HTTP/1.1 keep-alive."""
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204 if self.path == "/notify" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
'''
POST_LUA = """-- O2 (bench/orchestrator.py, written in the run's folder): POST BODY to PATH, as the broker notifies.
-- args: PATH BODY
local common = require("common")
local req

function init(args)
  req = wrk.format("POST", args[1], {["Content-Type"] = "application/json", ["Fiware-ServicePath"] = "/"}, args[2])
end

function request()
  return req
end

setup = common.setup
done = common.done
"""


# -- the source server (O3), in a process of its own ---------------------------------------------


def page(records: int, variant: int) -> bytes:
    """One page of ``records`` weather observations (``variant``: other values, same stations)."""
    rng = random.Random(variant)
    now = int(time.time())
    return orjson.dumps({"records": [
        {"station": f"S{i:05d}", "temp": round(rng.uniform(-5, 40), 1), "hum": rng.randint(10, 100),
         "lat": 14.0 + (i % 100) / 100, "lon": -17.0 + (i // 100) / 100, "observed_at": now - rng.randint(0, 600)}
        for i in range(records)]})


def source_process(port: int, records: int, pipe: Pipe) -> None:
    """Serve ``GET /records.json`` (three pre-built variants in turn) until killed."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    pages = [page(records, v) for v in range(3)]
    served = iter(range(1 << 62))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = pages[next(served) % len(pages)] if self.path == RECORDS_PATH else b"{}"
            self.send_response(200 if self.path == RECORDS_PATH else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    try:
        server = ThreadingHTTPServer((HOST, port), Handler)
        server.daemon_threads = True
    except OSError as exc:
        pipe.send({"error": repr(exc)})
        return
    pipe.send({"ready": True, "bytes": len(pages[0])})
    server.serve_forever()


def source_definition(port: int) -> dict[str, Any]:
    return {
        "name": SOURCE, "kind": "http-json", "url": f"http://{HOST}:{port}{RECORDS_PATH}", "enabled": False,
        "timeout": 60, "records": "records[]", "batch": BATCH,
        "entity": {"id": "join(':', ['urn:ngsi-ld:BenchObserved', station])", "type": "'BenchObserved'",
                   "attrs": {"temperature": {"value": "temp", "type": "Number", "unitCode": "CEL"},
                             "humidity": {"value": "hum", "type": "Number"},
                             "location": {"value": "[lon, lat]", "type": "geo:point"}},
                   "timestamp": "observed_at"},
    }


# -- the run -------------------------------------------------------------------------------------


class OrchestratorBench(RatioBench):
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        super().__init__(args, work, ("broker", "orchestrator", "source"), MEASURED, describe)
        self.app_pid = self.source_pid = 0
        self.notes: dict[str, Any] = {}

    # -- processes ---------------------------------------------------------------------------------

    def start_all(self) -> None:
        """Yardstick, broker, then the orchestrator's service over it."""
        p, w = self.ports, self.work
        for name in ("broker", "orchestrator"):
            (w / name).mkdir()
        self.start("baseline", [PY, str(HERE / "baseline_app.py"), str(p["baseline"])], "/")
        self.start("broker", [PY, "-m", "broker", "-localIp", HOST, "-port", str(p["broker"]),
                               "-dbURI", f"sqlite:///{w / 'broker' / 'broker.db'}", "-notifAllowedHosts", HOST],
                   "/version")
        self.start("orchestrator", [PY, "-m", "orchestrator.appserver", "-host", HOST, "-port", str(p["orchestrator"]),
                                     "-data", str(w / "orchestrator"), "-brokerURL", f"http://{HOST}:{p['broker']}",
                                     "-allowedHosts", HOST, "-appsDir", str(w / "app-sources"), "-logLevel", "WARNING"],
                   "/version")

    def cpu(self) -> dict[str, float]:
        """The app (a child of the orchestrator, which ``cpu_seconds`` would count) apart."""
        app = run.cpu_seconds(self.app_pid) if self.app_pid else 0.0
        return {"orchestrator": run.cpu_seconds(self.procs["orchestrator"].pid) - app,
                "broker": run.cpu_seconds(self.procs["broker"].pid), "app": app}

    def settle(self) -> None:
        history.settle([self.procs["orchestrator"].pid, self.procs["broker"].pid])  # (the app with the first)

    async def json_call(self, server: str, method: str, path: str, body: Any = None,
                        expected: tuple[int, ...] = (200,), headers: str = "") -> Any:
        status, data = await self.call(server, method, path, b"" if body is None else orjson.dumps(body), headers)
        if status not in expected:
            sys.exit(f"bench: {method} {path} answered {status}: {data[:500]!r}")
        return orjson.loads(data) if data else None

    # -- O1 discovery ----------------------------------------------------------------------------------

    async def discovery_setup(self) -> None:
        """The entities in batches, a refresh that must read all their sensors, one query."""
        began = time.perf_counter()
        for first in range(0, self.args.entities, BATCH):
            entities = []
            for i in range(first, min(first + BATCH, self.args.entities)):
                kind, attrs = KINDS[i % len(KINDS)]
                entity: dict[str, Any] = {"id": f"{kind}{i}", "type": kind, "location": {
                    "type": "geo:point", "value": f"{14 + (i % 50) / 50:.4f},{-17 + (i // 50) / 50:.4f}"}}
                entity.update({a: {"type": "Number", "value": (i * 7 + k) % 50} for k, a in enumerate(attrs)})
                entities.append(entity)
            await self.json_call("broker", "POST", "/v2/op/update", {"actionType": "append", "entities": entities},
                                 (204,))
        created = time.perf_counter() - began
        refresh = await self.json_call("orchestrator", "POST", "/discovery/refresh")
        sensors = self.args.entities * 5
        if refresh["sensors"] < sensors or refresh["problems"]:
            sys.exit(f"bench: the refresh read {refresh['sensors']} sensors of {sensors}: {refresh}")
        hits = await self.json_call("orchestrator", "GET", QUERY_PATH, headers=TENANT_HEADERS)  # as wrk sends it
        if len(hits) != 20:
            sys.exit(f"bench: {QUERY_PATH} answered {len(hits)} hits, not 20: {hits[:2]}")
        self.notes["O1"] = {"entities": self.args.entities, "created_s": created, "sensors": refresh["sensors"],
                            "refresh_s": refresh["seconds"], "hits": len(hits)}

    def discovery(self) -> None:
        asyncio.run(self.discovery_setup())
        r = self.measure("fixed_get.lua", [QUERY_PATH, ""], "orchestrator")  # (the default tenant, "")
        r.update(self.notes["O1"])
        self.record("O1 discovery query", r)

    # -- O2 ingress --------------------------------------------------------------------------------------

    async def deploy(self) -> dict[str, Any]:
        """Write the app, deploy it, find its ingress path; the app's status with ``ingress``."""
        folder = self.work / "app-sources" / APP  # (deployed by path: under the orchestrator's -appsDir)
        folder.mkdir(parents=True)
        (folder / "waziup-app.yaml").write_text(APP_MANIFEST)
        (folder / "app.py").write_text(APP_CODE)
        began = time.perf_counter()
        status, data = await self.call("orchestrator", "POST", "/apps", orjson.dumps({"source": str(folder)}),
                                       "Accept: application/x-ndjson\r\n")
        lines = [orjson.loads(line) for line in data.splitlines() if line.strip()]
        if status != 200 or not lines or "status" not in lines[-1]:
            sys.exit(f"bench: POST /apps answered {status}: {data[-1500:]!r}")
        deploy_s = time.perf_counter() - began
        app = await self.json_call("orchestrator", "GET", f"/apps/{APP}")
        subs = await self.json_call("broker", "GET", "/v2/subscriptions?limit=1000")
        urls = [s["notification"]["http"]["url"] for s in subs if s.get("description") == f"waziup-app:{APP}"]
        if len(urls) != 1 or not app.get("endpoint") or not app.get("pid"):
            sys.exit(f"bench: the app's subscription URLs {urls}, its status {app}")
        url = urlsplit(urls[0])
        if url.port != self.ports["orchestrator"]:
            sys.exit(f"bench: the app's subscription notifies {urls[0]}, not the orchestrator")
        app.update(ingress=url.path, deploy_s=deploy_s, port=urlsplit(app["endpoint"]).port)
        return app

    def ingress(self) -> None:
        """O2: the same notification POSTed to the app straight, then through the ingress."""
        app = asyncio.run(self.deploy())
        self.app_pid = int(app["pid"])
        self.ports["app"] = int(app["port"])
        body = orjson.dumps({"subscriptionId": "0" * 24, "data": [
            {"id": "Notified1", "type": "BenchNotified",
             "temperature": {"type": "Number", "value": 21.5, "metadata": {}}}]}).decode()
        script = self.work / "notify.lua"
        script.write_text(POST_LUA)
        for path in ("/notify", app["ingress"]):  # both must answer the app's 204
            status, data = asyncio.run(self.call("app" if path == "/notify" else "orchestrator", "POST", path,
                                                 body.encode(), "Fiware-ServicePath: /\r\n"))
            if status != 204:
                sys.exit(f"bench: POST {path} answered {status}: {data[:300]!r}")
        straight = self.measure(str(script), ["/notify", body], "app")
        straight["deploy_s"] = app["deploy_s"]
        self.record("O2 notify, app straight", straight)
        forwarded = self.measure(str(script), [app["ingress"], body], "orchestrator")
        forwarded["vs_app"] = ratios(forwarded, straight)
        self.record("O2 notify via ingress", forwarded)

    # -- O3 sources --------------------------------------------------------------------------------------

    async def run_source(self) -> tuple[float, dict[str, Any]]:
        began = time.perf_counter()
        view = await self.json_call("orchestrator", "POST", f"/sources/{SOURCE}/run")
        return time.perf_counter() - began, view["status"]

    async def source_runs(self) -> dict[str, Any]:
        await self.json_call("orchestrator", "POST", "/sources", source_definition(self.ports["source"]), (201,))
        first_s, status = await self.run_source()
        if status["state"] != "ok" or status["recordsWritten"] != self.args.records:
            sys.exit(f"bench: the source's first run: {status}")
        self.settle()
        before, cpu_before, src_before = status["recordsWritten"], self.cpu(), run.cpu_seconds(self.source_pid)
        durations, failed = [], 0
        began = time.perf_counter()
        while time.perf_counter() - began < self.args.seconds:
            took, status = await self.run_source()
            durations.append(took)
            failed += status["state"] != "ok"
        seconds = time.perf_counter() - began
        cpu_after, src_after = self.cpu(), run.cpu_seconds(self.source_pid)
        written = status["recordsWritten"] - before
        durations.sort()
        return {"requests": len(durations), "seconds": seconds, "rps": written / seconds, "rate": written / seconds,
                "unit": "records/s", "runs": len(durations), "failed_runs": failed, "written": written,
                "records": self.args.records, "skipped": status["recordsSkipped"], "dropped": status["valuesDropped"],
                "p50_ms": client._percentile(durations, 50) * 1000, "p99_ms": client._percentile(durations, 99) * 1000,
                "max_ms": durations[-1] * 1000, "first_run_ms": first_s * 1000,
                "cpu_pct": {k: 100 * (cpu_after[k] - cpu_before[k]) / seconds for k in cpu_after},
                "source_server_cpu_pct": 100 * (src_after - src_before) / seconds}

    def sources(self) -> None:
        """O3: the page server in its own process, runs asked one after the other from this one."""
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        server = context.Process(target=source_process, args=(self.ports["source"], self.args.records, theirs),
                                 daemon=True)
        server.start()
        self.source_pid = server.pid or 0
        try:
            served = expect(ours, 60, "ready", WHO)
            r = asyncio.run(self.source_runs())
            r["page_bytes"] = served["bytes"]
        finally:
            server.kill()
            server.join(5)
        self.record(f"O3 source runs, {self.args.records} records", r)

    def run(self) -> dict[str, Any]:
        load = os.getloadavg()
        self.start_all()
        try:
            self.yardstick("O0 bare Starlette")
            for part, measure in (("O1", self.discovery), ("O2", self.ingress), ("O3", self.sources)):
                if harness.selected(self.args.only, part):
                    measure()
        finally:
            self.stop_all()
        return {"load_average": load, "results": self.results}


# -- output ----------------------------------------------------------------------------------------


def row_notes(r: dict[str, Any]) -> str:
    notes = []
    if "refresh_s" in r:
        notes.append(f"{r['entities']} entities x 5 attributes ({r['created_s']:.1f} s to create); refresh read "
                     f"{r['sensors']} sensors in {r['refresh_s']:.2f} s; {r['hits']} hits per query")
    if "deploy_s" in r:
        notes.append(f"deploy (build, start, health, subscription) {r['deploy_s']:.1f} s")
    if "vs_app" in r:
        v = r["vs_app"]
        notes.append(f"x{v['rate']:.3f} the app's req/s straight, p50 x{v['p50']:.2f}, p99 x{v['p99']:.2f} "
                     "(what the ingress costs)")
    if "runs" in r:
        notes.append(f"{r['runs']} runs of {r['records']} records ({r['page_bytes'] / 1e6:.1f} MB page, batches of "
                     f"{BATCH}), {r['written']} written" + (f", {r['failed_runs']} failed" if r["failed_runs"] else "")
                     + (f", {r['skipped']} skipped" if r["skipped"] else "")
                     + f"; p50/p99 = one run's duration, max {r['max_ms']:.0f} ms; first run (creates) "
                     f"{r['first_run_ms']:.0f} ms; source server CPU {r['source_server_cpu_pct']:.0f}%")
    if r.get("non2xx") or r.get("socket_errors"):
        notes.append(f"non-2xx {r.get('non2xx', 0)}, socket errors {r.get('socket_errors', 0)}")
    return "; ".join(notes)


def describe(name: str, r: dict[str, Any]) -> str:
    text = f"{name:<30} {r['rate']:9.0f} {r['unit']:<10} p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms"
    if "vs_bare" in r:
        v = r["vs_bare"]
        text += f"  | x{v['rate']:.3f} rate  x{v['p50']:.1f} p50  x{v['p99']:.1f} p99"
    text += "  | " + "  ".join(f"{k} CPU {v:.0f}%" for k, v in r["cpu_pct"].items())
    notes = row_notes(r)
    return text + (f"\n{'':<30} {notes}" if notes else "")


def table(report: dict[str, Any]) -> str:
    """The "Orchestrator" block of BENCHMARKS.md: the run's line, then a row per measured row."""
    run_ = report["run"]
    details = (f"{report['seconds']} s per row, wrk {report['connections']} connections, O1 {report['entities']} "
               f"entities, O3 {report['records']} records per run, ")
    rows = [harness.ratio_cells(name, r, MEASURED, row_notes(r)) for name, r in run_["results"].items()]
    return harness.ratio_table(report, details, ("orchestrator", "broker", "app"), rows)


def write_markdown(report: dict[str, Any]) -> None:
    """Replace the table between the "Orchestrator" markers of BENCHMARKS.md."""
    harness.write_block(MARKERS, table(report))


# (flag, type, environment variable, default, help)
OPTIONS: tuple[tuple[str, type, str, str, str], ...] = (
    ("--seconds", int, "BENCH_SECONDS", "10", "seconds of each row's load"),
    ("--connections", int, "BENCH_CONNECTIONS", "16", "wrk connections of O0, O1 and O2"),
    ("--entities", int, "BENCH_ORCH_ENTITIES", "2000", "O1's entities in the broker (5 sensors each)"),
    ("--records", int, "BENCH_ORCH_RECORDS", "5000", "O3's records per page (one page per run)"),
    ("--only", str, "BENCH_ONLY", "", "O1, O2 and/or O3, comma-separated (figures on screen only)"),
)


def options() -> argparse.Namespace:
    parser, args = harness.parse_options(__doc__.split("\n")[0], OPTIONS)
    if args.seconds < 1 or args.connections < 1 or args.records < 1 or args.entities < 20:
        parser.error("--seconds, --connections and --records: at least 1; --entities: at least 20")
    return args


def main() -> None:
    """Measure; with every row (no ``--only``), keep the report and, unless told not to, its table."""
    args = options()
    now = datetime.datetime.now()
    settings = {key: getattr(args, key) for key in ("seconds", "connections", "entities", "records")}
    report: dict[str, Any] = {"date": now.isoformat(timespec="seconds"), "machine": harness.machine(), **settings}
    with tempfile.TemporaryDirectory(prefix="waziup-bench-orchestrator-") as tmp:
        report["run"] = OrchestratorBench(args, Path(tmp)).run()
    if not args.only:
        harness.save_report(report, f"orchestrator-{now:%Y-%m-%d-%H%M%S}.json")
        if not args.no_markdown:
            write_markdown(report)


if __name__ == "__main__":
    main()
