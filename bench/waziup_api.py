"""The WAZIUP cloud API v2's benchmark: ``make bench-api`` (also run at the end of ``make bench``);
``BENCH_SECONDS=2 bench/waziup_api.py --publishers 4 --no-markdown`` for a quick run.

A real broker (``python -m broker``, a fresh SQLite file, as bench/run.py starts it), the history
service (``python -m analytics.history``, a fresh SQLite store), the API
(``python -m orchestrator.waziup_api`` over both, with its MQTT broker, no ``-idmURL``: every
caller is the guest) and the bare Starlette yardstick (bench/baseline_app.py), all subprocesses on
loopback; 100 public devices ``BenchDev0`` .. ``BenchDev99``, each with a sensor ``TC1``, created
through ``POST /api/v2/devices`` as the guest, then:

* **A0 baseline**: wrk (bench/lua/baseline.lua) on the yardstick, same connections and seconds:
  every row is also given as a ratio to it.
* **A1 value push**: wrk (bench/lua/waziup_value.lua) POSTs ``{"value": n}`` to
  ``/api/v2/devices/<d>/sensors/TC1/value`` on a random device per request. A push stores the
  value in the broker (the sensor's current value) and in the history, publishes it on MQTT and
  evaluates the notifications before it is answered (contract §3), so once the processes are idle
  the history must hold every value answered 2xx: *lost* = 2xx answers - values stored (counted
  by the history's own ``aggrMethod=count`` on ``Device``/``TC1`` in tenant ``waziup``, before and
  after the row; must be 0). *extra* = stored - 2xx: requests wrk had in flight when it stopped,
  stored but never answered to it (at most the connections).
* **A2 device read**: wrk GETs ``/api/v2/devices/<d>`` (random device of the 100).
* **A3 MQTT push**: ``--publishers`` (16) MQTT 3.1.1 clients (the project's own,
  ``ngsi.client.mqtt``), each publishing at QoS 1 on ``devices/<random d>/sensors/TC1/value`` the
  payload ``{"value": seq}`` (seq unique over the run) and the next one as soon as its PUBACK
  arrives, for the run's seconds; one subscriber on ``devices/#`` (QoS 1, in a process of its own,
  so that reading the deliveries neither delays the publishes nor the arrival times) times each
  delivery. The API stores a value before its PUBACK (contract §6), so: rate = values stored per
  second (history count, as A1), p50/p99 = the delay from a publish's send to its delivery to the
  subscriber, *lost* = acknowledged publishes - values stored (must be 0); the notes give the
  PUBACK times, the deliveries missing at the subscriber and the client processes' CPU.

Writes bench/results/waziup-api-<date>.json (not <date>-....json: bench/quick.py takes every
results file starting with a digit for a broker run) and the "WAZIUP API" table of BENCHMARKS.md
(between ``<!-- waziup-api-results -->`` and ``<!-- /waziup-api-results -->``) unless ``--no-markdown``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import multiprocessing
import os
import random
import resource
import sys
import tempfile
import time
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import client
import harness  # (also puts the repository root on sys.path: ngsi.client.mqtt)
import run  # (bench/run.py: server start-up, CPU accounting)
from ratio_bench import RatioBench, expect
from harness import HOST, PY, ROOT

TENANT, ETYPE, SENSOR, DEVICES, PREFIX = "waziup", "Device", "TC1", 100, "BenchDev"
HISTORY_HEADERS = f"Fiware-Service: {TENANT}\r\nFiware-ServicePath: /\r\n"
COUNT_PATH = f"/v2/types/{ETYPE}/attrs/{SENSOR}/value?aggrMethod=count"
READY_PATH = "/api/v2/devices?limit=1"
DRAIN_IDLE, DRAIN_MAX = 5.0, 120.0  # after A3's load, the subscriber waits until idle that long, or at most
MEASURED = ("api", "broker", "history")  # the processes whose CPU every row gives
WHO = "the subscriber"  # the helper process, as errors name it
MARKERS = ("<!-- waziup-api-results -->", "<!-- /waziup-api-results -->")


def topic(device: int) -> str:
    return f"devices/{PREFIX}{device}/sensors/{SENSOR}/value"


# -- the subscriber (A3), in a process of its own -------------------------------------------------


class Subscriber:
    """One MQTT client on ``devices/#`` (QoS 1): each delivery's seq and arrival time (ns)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seqs: list[int] = []
        self.arrivals: list[int] = []
        self.bad = 0
        self.last_seen = time.monotonic()

    def on_message(self, _topic: str, payload: bytes, _props: Any) -> None:
        now = time.time_ns()
        try:
            seq = orjson.loads(payload)["value"]
        except (ValueError, KeyError, TypeError):
            self.bad += 1
            return
        if not isinstance(seq, int):
            self.bad += 1
            return
        self.seqs.append(seq)
        self.arrivals.append(now)
        self.last_seen = time.monotonic()

    async def run(self, pipe: Pipe) -> None:
        """Subscribe, say ``ready``, read until the parent sends how many publishes were
        acknowledged and that many arrived (or none came for ``DRAIN_IDLE`` s), send them back."""
        from ngsi.client.mqtt import MqttClient

        mqtt = MqttClient(HOST, self.port, client_id="bench-subscriber", on_message=self.on_message)
        try:
            await mqtt.connect()
            granted = await mqtt.subscribe("devices/#", qos=1)
            pipe.send({"ready": True, "granted": granted})
            acked = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
            began = self.last_seen = time.monotonic()
            while (len(self.seqs) < acked and time.monotonic() - self.last_seen < DRAIN_IDLE
                   and time.monotonic() - began < DRAIN_MAX):
                await asyncio.sleep(0.05)
            pipe.send({"seqs": self.seqs, "arrivals_ns": self.arrivals, "bad": self.bad,
                       "drain_s": time.monotonic() - began})
        except Exception as exc:  # noqa: BLE001 (told to the parent, which ends the run)
            pipe.send({"error": repr(exc)})
        finally:
            await mqtt.close()


def subscriber_process(port: int, pipe: Pipe) -> None:
    """The subscriber's process (spawned: a fresh interpreter, none of the parent's state)."""
    sys.path.insert(0, str(ROOT))
    asyncio.run(Subscriber(port).run(pipe))


# -- the publishers (A3) ----------------------------------------------------------------------------


class Publishers:
    """``count`` MQTT clients, each with one QoS 1 publish in flight: the next leaves when the
    PUBACK of the last arrives, until ``seconds`` pass (the one in flight then is waited for)."""

    def __init__(self, port: int, count: int, seconds: float) -> None:
        self.port, self.count, self.seconds = port, count, seconds
        self.sent_ns: dict[int, int] = {}
        self.acked: list[int] = []
        self.pubacks: list[float] = []
        self.failed = 0

    async def run(self) -> float:
        from ngsi.client.mqtt import MqttClient, MqttError

        clients = [MqttClient(HOST, self.port, client_id=f"bench-publisher-{p}") for p in range(self.count)]
        for mqtt in clients:
            await mqtt.connect()
        deadline = time.perf_counter() + self.seconds
        rng = random.Random(3)

        async def publisher(p: int, mqtt: MqttClient) -> None:
            k = 0
            while time.perf_counter() < deadline:
                seq = k * self.count + p
                k += 1
                payload = orjson.dumps({"value": seq})
                self.sent_ns[seq] = time.time_ns()
                start = time.perf_counter()
                try:
                    await mqtt.publish(topic(rng.randrange(DEVICES)), payload, qos=1)
                except MqttError:
                    self.failed += 1
                    continue
                self.pubacks.append(time.perf_counter() - start)
                self.acked.append(seq)

        began = time.perf_counter()
        try:
            await asyncio.gather(*(publisher(p, mqtt) for p, mqtt in enumerate(clients)))
        finally:
            seconds = time.perf_counter() - began
            for mqtt in clients:
                await mqtt.close()
        return seconds


# -- the run -------------------------------------------------------------------------------------


class ApiBench(RatioBench):
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        super().__init__(args, work, ("broker", "history", "api", "mqtt"), MEASURED, describe)

    # -- processes ---------------------------------------------------------------------------------

    def start_all(self) -> None:
        """Yardstick, broker, history, then the API over both."""
        p, w = self.ports, self.work
        for name in ("broker", "history", "api"):
            (w / name).mkdir()
        self.start("baseline", [PY, str(HERE / "baseline_app.py"), str(p["baseline"])], "/")
        self.start("broker", [PY, "-m", "broker", "-localIp", HOST, "-port", str(p["broker"]),
                               "-data", str(w / "broker")], "/version")
        self.start("history", [PY, "-m", "analytics.history", "-host", HOST, "-port", str(p["history"]),
                                "-data", str(w / "history"), "-logLevel", "WARNING"], "/version")
        self.start("api", [PY, "-m", "orchestrator.waziup_api", "-host", HOST, "-port", str(p["api"]),
                            "-brokerURL", f"http://{HOST}:{p['broker']}",
                            "-historyURL", f"http://{HOST}:{p['history']}", "-mqttPort", str(p["mqtt"]),
                            "-data", str(w / "api"), "-logLevel", "WARNING"], READY_PATH)

    # -- setup and counts ------------------------------------------------------------------------------

    async def setup(self) -> None:
        """The devices, as the guest: public, one sensor each; then one push and one read,
        which must answer as the contract says (else the rows would measure errors)."""
        for i in range(DEVICES):
            device = {"id": f"{PREFIX}{i}", "name": f"bench device {i}", "visibility": "public",
                      "sensors": [{"id": SENSOR, "name": "temperature", "quantity_kind": "AirTemperature",
                                   "unit": "DegreeCelsius"}]}
            status, data = await self.call("api", "POST", "/api/v2/devices", orjson.dumps(device))
            if status != 204:
                sys.exit(f"bench: POST /api/v2/devices answered {status}: {data[:300]!r}")
        path = f"/api/v2/devices/{PREFIX}0"
        pushed = await self.call("api", "POST", f"{path}/sensors/{SENSOR}/value", b'{"value": -1}')
        read = await self.call("api", "GET", path)
        if pushed[0] != 204 or read[0] != 200 or orjson.loads(read[1])["sensors"][0]["value"]["value"] != -1:
            sys.exit(f"bench: the first push answered {pushed[0]} {pushed[1][:200]!r}, "
                     f"the read {read[0]} {read[1][:300]!r}")
        if await self.stored() != 1:
            sys.exit("bench: the history does not hold the first pushed value")

    async def stored(self) -> int:
        """TC1 values in the history, all devices (its own count aggregate; 404: none yet)."""
        status, data = await self.call("history", "GET", COUNT_PATH, headers=HISTORY_HEADERS)
        if status == 404:
            return 0
        if status != 200:
            sys.exit(f"bench: the history's count answered {status}: {data[:300]!r}")
        return int(sum(v for e in orjson.loads(data)["values"] for v in e["values"] if v))

    # -- rows ------------------------------------------------------------------------------------------

    def push(self) -> None:
        """A1: values over HTTP, then the history's count against the 2xx answers."""
        self.settle()
        before = asyncio.run(self.stored())
        r = self.measure("waziup_value.lua", ["post", DEVICES, PREFIX], "api")
        self.settle()  # the requests wrk abandoned at its end, before counting
        stored = asyncio.run(self.stored()) - before
        acked = r["requests"] - r["non2xx"]
        r.update(acked=acked, stored=stored, lost=max(0, acked - stored), extra=max(0, stored - acked),
                 stored_per_s=stored / r["seconds"])
        self.record("A1 value push (HTTP)", r)

    def read(self) -> None:
        self.record("A2 device read", self.measure("waziup_value.lua", ["get", DEVICES, PREFIX], "api"))

    def mqtt_push(self) -> None:
        """A3: the subscriber in its own process, the publishers in this one."""
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        sub = context.Process(target=subscriber_process, args=(self.ports["mqtt"], theirs), daemon=True)
        sub.start()
        pid = sub.pid or 0
        try:
            expect(ours, 60, "ready", WHO)
            self.settle()
            stored_before = asyncio.run(self.stored())
            before = self.cpu() | {"subscriber": run.cpu_seconds(pid), "publishers": self_cpu()}
            began_ns = time.time_ns()
            pubs = Publishers(self.ports["mqtt"], self.args.publishers, self.args.seconds)
            seconds = asyncio.run(pubs.run())
            after = self.cpu() | {"subscriber": run.cpu_seconds(pid), "publishers": self_cpu()}
            ours.send(len(pubs.acked))
            got = expect(ours, DRAIN_MAX + 30, "seqs", WHO)
        finally:
            sub.join(5)
            if sub.is_alive():
                sub.kill()
        self.settle()
        stored = asyncio.run(self.stored()) - stored_before
        r = mqtt_figures(pubs, seconds, began_ns, stored, got)
        cpu = {k: 100 * (after[k] - before[k]) / seconds for k in after}
        r.update(subscriber_cpu_pct=cpu.pop("subscriber"), publishers_cpu_pct=cpu.pop("publishers"), cpu_pct=cpu)
        self.record(f"A3 MQTT push, {self.args.publishers} publishers", r)

    def run(self) -> dict[str, Any]:
        load = os.getloadavg()
        self.start_all()
        try:
            began = time.perf_counter()
            asyncio.run(self.setup())
            setup_s = time.perf_counter() - began
            self.yardstick("A0 bare Starlette")
            for part, measure in (("A1", self.push), ("A2", self.read), ("A3", self.mqtt_push)):
                if harness.selected(self.args.only, part):
                    measure()
        finally:
            self.stop_all()
        return {"load_average": load, "setup_s": setup_s, "results": self.results}


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def mqtt_figures(pubs: Publishers, seconds: float, began_ns: int, stored: int, got: dict[str, Any]) -> dict[str, Any]:
    """A3's row: a delivery is the subscriber's first copy of an acknowledged publish; others
    (a second copy, an unacknowledged publish's) are *extra*."""
    acked = set(pubs.acked)
    first: dict[int, int] = {}
    for seq, arrival in zip(got["seqs"], got["arrivals_ns"], strict=True):
        first.setdefault(seq, arrival)
    delivered = {seq: t for seq, t in first.items() if seq in acked}
    delays = sorted((t - pubs.sent_ns[seq]) / 1e6 for seq, t in delivered.items())
    pubacks = sorted(pubs.pubacks)
    last = max(delivered.values(), default=began_ns)
    return {
        "requests": len(pubs.acked) + pubs.failed, "seconds": seconds, "rps": stored / seconds,
        "rate": stored / seconds, "unit": "values stored/s", "publishers": pubs.count,
        "acked": len(acked), "failed": pubs.failed, "stored": stored, "lost": max(0, len(acked) - stored),
        "stored_beyond_acked": max(0, stored - len(acked)), "delivered": len(delivered),
        "undelivered": len(acked) - len(delivered), "extra_deliveries": len(got["seqs"]) - len(delivered),
        "bad": got["bad"], "drain_s": got["drain_s"],
        "delivered_per_s": len(delivered) / ((last - began_ns) / 1e9) if last > began_ns else 0.0,
        "p50_ms": client._percentile(delays, 50), "p99_ms": client._percentile(delays, 99),
        "max_ms": delays[-1] if delays else 0.0,
        "puback_p50_ms": client._percentile(pubacks, 50) * 1000,
        "puback_p99_ms": client._percentile(pubacks, 99) * 1000,
    }


# -- output ----------------------------------------------------------------------------------------


def row_notes(r: dict[str, Any]) -> str:
    notes = []
    if "stored_per_s" in r:
        notes.append(f"{r['acked']} answered 2xx, {r['stored']} stored in the history, lost {r['lost']}"
                     + (" (NOT 0: values missing)" if r["lost"] else "")
                     + (f", extra {r['extra']} (in flight when wrk stopped)" if r["extra"] else ""))
    if "delivered" in r:
        text = (f"{r['acked']} publishes acknowledged, {r['stored']} stored, lost {r['lost']}"
                + (" (NOT 0: values missing)" if r["lost"] else "")
                + f"; {r['delivered']} delivered to the subscriber (missing {r['undelivered']}"
                + (f", extra {r['extra_deliveries']}" if r["extra_deliveries"] else "") + ")"
                + f", delay max {r['max_ms']:.1f} ms; PUBACK p50 {r['puback_p50_ms']:.2f} ms "
                f"p99 {r['puback_p99_ms']:.2f} ms; publishers CPU {r['publishers_cpu_pct']:.0f}%, "
                f"subscriber CPU {r['subscriber_cpu_pct']:.0f}%")
        notes.append(text + "".join(f", {k} {r[k]}" for k in ("failed", "bad", "stored_beyond_acked") if r[k]))
    if r.get("non2xx") or r.get("socket_errors"):
        notes.append(f"non-2xx {r.get('non2xx', 0)}, socket errors {r.get('socket_errors', 0)}")
    return "; ".join(notes)


def describe(name: str, r: dict[str, Any]) -> str:
    text = f"{name:<28} {r['rate']:9.0f} {r['unit']:<16} p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms"
    if "vs_bare" in r:
        v = r["vs_bare"]
        text += f"  | x{v['rate']:.3f} rate  x{v['p50']:.1f} p50  x{v['p99']:.1f} p99"
    text += "  | " + "  ".join(f"{k} CPU {v:.0f}%" for k, v in r["cpu_pct"].items())
    notes = row_notes(r)
    return text + (f"\n{'':<28} {notes}" if notes else "")


def table(report: dict[str, Any]) -> str:
    """The "WAZIUP API" block of BENCHMARKS.md: the run's line, then a row per measured row."""
    run_ = report["run"]
    details = (f"{report['seconds']} s per row, wrk {report['connections']} connections, A3 {report['publishers']} "
               f"MQTT publishers, {DEVICES} public devices (created in {run_['setup_s']:.1f} s), ")
    rows = [harness.ratio_cells(name, r, MEASURED, row_notes(r)) for name, r in run_["results"].items()]
    return harness.ratio_table(report, details, ("API", "broker", "history"), rows)


def write_markdown(report: dict[str, Any]) -> None:
    """Replace the table between the "WAZIUP API" markers of BENCHMARKS.md."""
    harness.write_block(MARKERS, table(report))


# (flag, type, environment variable, default, help)
OPTIONS: tuple[tuple[str, type, str, str, str], ...] = (
    ("--seconds", int, "BENCH_SECONDS", "10", "seconds of each row's load"),
    ("--connections", int, "BENCH_CONNECTIONS", "16", "wrk connections of A0, A1 and A2"),
    ("--publishers", int, "BENCH_API_PUBLISHERS", "16", "A3's MQTT publishers (one QoS 1 publish in flight each)"),
    ("--only", str, "BENCH_ONLY", "", "A1, A2 and/or A3, comma-separated (figures on screen only)"),
)


def options() -> argparse.Namespace:
    parser, args = harness.parse_options(__doc__.split("\n")[0], OPTIONS)
    if args.publishers < 1 or args.seconds < 1 or args.connections < 1:
        parser.error("--publishers, --connections and --seconds: at least 1")
    return args


def main() -> None:
    """Measure; with every row (no ``--only``), keep the report and, unless told not to, its table."""
    args = options()
    now = datetime.datetime.now()
    settings = {key: getattr(args, key) for key in ("seconds", "connections", "publishers")}
    report: dict[str, Any] = {"date": now.isoformat(timespec="seconds"), "machine": harness.machine(), **settings,
                              "devices": DEVICES}
    with tempfile.TemporaryDirectory(prefix="waziup-bench-api-") as tmp:
        report["run"] = ApiBench(args, Path(tmp)).run()
    if not args.only:
        harness.save_report(report, f"waziup-api-{now:%Y-%m-%d-%H%M%S}.json")
        if not args.no_markdown:
            write_markdown(report)


if __name__ == "__main__":
    main()
