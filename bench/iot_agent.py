"""The IoT agent benchmark: ``make bench-iot`` (``BENCH_SECONDS=2 BENCH_DEVICES=100`` for a quick run).

MQTT Ultralight measures end to end into the context broker. Starts, as subprocesses on
loopback with fresh data dirs: Mosquitto on a free port, the context broker (SQLite,
``-multiservice``) and the IoT agent (``waziup iot-agent``, ``IOTA_*`` settings pointing at
both). Provisions a group (``t`` -> temperature, ``h`` -> humidity) and N devices, sends
one measure per device (so every entity exists: the run measures updates, not creates),
then a separate publisher process (paho, QoS 0) publishes ``t|<seq>|h|<µs>`` on
``/ul/<apikey>/dev<i>/attrs``, round robin over the devices, for BENCH_SECONDS: closed loop
(at most BENCH_WINDOW measures published but not yet seen in the broker) or at a fixed
BENCH_RATE.

Counting what reached the broker: one catch-all subscription (keyValues, the two attributes)
notifies over MQTT to a topic of the same Mosquitto, read by this process. MQTT rather than
HTTP notifications because the instrument must cost the broker little: an httpx POST per
notification would cost it about as much as the update itself, and the notifications of one
subscription go out one at a time. ``seq`` (temperature) names each measure exactly: lost =
published - notified; ``µs`` (humidity, microseconds since the run's epoch) gives the latency
from publish to notification. The broker's own count (the subscription's ``timesSent``, at
trigger time) is reported too. CPU is each process's user + system time over the window.

Writes bench/results/<date>-iot.json and the IoT section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import mmap
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
SERVICE, SERVICE_PATH = "bench", "/"
APIKEY = "benchkey"
ENTITY_TYPE = "Thing"
NOTIFY_TOPIC = "bench/notify"
TENANT = f"Fiware-Service: {SERVICE}\r\nFiware-ServicePath: {SERVICE_PATH}\r\n"
COUNTER = struct.Struct("<q")  # the notified count, shared with the publisher through an mmap'ed file

sys.path.insert(0, str(HERE))
import client  # noqa: E402  (bench/client.py)
import harness  # noqa: E402
import pyspy  # noqa: E402  (bench/pyspy.py)
from harness import HOST, PY, ROOT  # noqa: E402


def device_id(i: int) -> str:
    return f"dev{i:05d}"


# --- the publisher process ------------------------------------------------------------------


def publisher(args: argparse.Namespace) -> None:
    """``bench/iot_agent.py --publisher``: publishes, then prints a JSON summary on stdout.

    Closed loop (rate 0): publishes while fewer than ``window`` measures are in flight
    (published, not yet notified: the count is read from the shared counter file). If
    nothing comes back for 2 s the in-flight ones are written off (lost measures would
    otherwise stop the run). Fixed rate: publishes on schedule, in 1 ms ticks.
    """
    import paho.mqtt.client as paho

    topics = [f"/ul/{APIKEY}/{device_id(i)}/attrs" for i in range(args.devices)]
    with open(args.counter, "r+b") as f:
        counter = mmap.mmap(f.fileno(), COUNTER.size)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect(HOST, args.mqtt_port)
    client.loop_start()
    if not connected.wait(10):
        sys.exit("publisher: no CONNACK")
    epoch = args.epoch_ns
    seq = args.first_seq
    sent = 0
    written_off = 0
    deadline = time.perf_counter() + args.seconds
    began, began_ns = time.perf_counter(), time.time_ns()
    last_seen, last_progress = 0, began
    while (now := time.perf_counter()) < deadline and not (args.count and sent >= args.count):
        if args.rate:
            budget = int(args.rate * (now - began)) - sent
        else:
            seen = COUNTER.unpack_from(counter)[0]
            if seen != last_seen:
                last_seen, last_progress = seen, now
            elif now - last_progress > 2:
                written_off = sent - seen  # presumed lost: make room
                last_progress = now
            budget = args.window - (sent - seen - written_off)
        if budget <= 0:
            time.sleep(0.0005)
            continue
        if args.count:
            budget = min(budget, args.count - sent)
        for _ in range(min(budget, 200)):
            stamp = (time.time_ns() - epoch) // 1000
            client.publish(topics[seq % args.devices], b"t|%d|h|%d" % (seq, stamp), qos=0)
            seq += 1
            sent += 1
        if args.rate:
            time.sleep(0.001)
    elapsed, ended_ns = time.perf_counter() - began, time.time_ns()
    # QoS 0: publish() only queues; wait until paho's thread has written everything out
    while client.want_write() and time.perf_counter() - began < elapsed + 10:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"published": sent, "first_seq": args.first_seq, "seconds": elapsed,
                      "began_ns": began_ns, "ended_ns": ended_ns, "cpu_seconds": time.process_time()}), flush=True)


# --- the receiver (in this process) ---------------------------------------------------------


class Receiver:
    """Reads the broker's MQTT notifications: which seqs arrived, and when."""

    def __init__(self, mqtt_port: int, counter: mmap.mmap, epoch_ns: int) -> None:
        import paho.mqtt.client as paho

        self.counter, self.epoch_ns = counter, epoch_ns
        self.lock = threading.Lock()
        self.reset()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-recv-{os.getpid()}")
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe(NOTIFY_TOPIC, qos=0)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self.on_message
        self.client.connect(HOST, mqtt_port)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            sys.exit("bench: the receiver could not subscribe")

    def reset(self) -> None:
        with self.lock:
            self.seqs: list[int] = []
            self.latencies_us: list[int] = []
            self.arrivals: list[int] = []  # time_ns of each notification
            self.bad = 0
            COUNTER.pack_into(self.counter, 0, 0)

    def on_message(self, client: Any, userdata: Any, message: Any) -> None:
        now_us = (time.time_ns() - self.epoch_ns) // 1000
        arrived = time.time_ns()
        try:
            data = orjson.loads(message.payload)["data"]
            pairs = [(int(e["temperature"]), int(e["humidity"])) for e in data]
        except (ValueError, KeyError, TypeError):
            self.bad += 1
            return
        with self.lock:
            for seq, stamp in pairs:
                self.seqs.append(seq)
                self.latencies_us.append(now_us - stamp)
                self.arrivals.append(arrived)
            COUNTER.pack_into(self.counter, 0, len(self.seqs))

    def count(self) -> int:
        with self.lock:
            return len(self.seqs)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --- orchestration ------------------------------------------------------------------------------


cpu_seconds = harness.cpu_seconds


async def http(port: int, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], bytes]:
    conn = client.Connection(HOST, port)
    try:
        payload = b"" if body is None else orjson.dumps(body)
        return await conn.request(method, path, payload, TENANT)
    finally:
        await conn.close()


def call(port: int, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200, 201, 204)) -> tuple[dict[str, str], bytes]:
    for attempt in range(5):
        try:
            status, headers, data = asyncio.run(http(port, method, path, body))
            break
        except OSError as exc:
            if attempt == 4:
                sys.exit(f"bench: {method} {path} on port {port}: {exc} (a server died? --keep keeps the logs)")
            time.sleep(0.5)
    if status not in expect:
        sys.exit(f"bench: {method} {path} answered {status}: {data[:300]!r}")
    return headers, data


def wait_port(proc: subprocess.Popen[bytes], port: int, log: Path, what: str, path: str | None = None) -> None:
    harness.wait_ready(proc, HOST, port, path, log, what)


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None)
    if found is None:
        subprocess.run([str(ROOT / "scripts" / "install-mosquitto.sh")], check=True)
        found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return found


def percentile(ordered: list[int], pct: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] / 1000 if ordered else 0.0


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.ports = {name: harness.free_port(HOST) for name in ("mqtt", "broker", "north", "http")}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.epoch_ns = time.time_ns()
        (work / "counter").write_bytes(bytes(COUNTER.size))
        self.counter_file = (work / "counter").open("r+b")
        self.counter = mmap.mmap(self.counter_file.fileno(), COUNTER.size)

    def spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = self.work / f"{name}.log"
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})
        self.procs[name] = proc
        return proc

    def start(self) -> None:
        p, work = self.ports, self.work
        conf = work / "mosquitto.conf"
        conf.write_text(f"listener {p['mqtt']} {HOST}\nallow_anonymous true\npersistence false\n"
                        "max_queued_messages 0\nlog_dest stdout\nlog_type error\nlog_type warning\n")
        wait_port(self.spawn("mosquitto", [mosquitto_binary(), "-c", str(conf)]), p["mqtt"], work / "mosquitto.log", "mosquitto")
        (work / "broker").mkdir()
        broker = self.spawn("broker", [PY, "-m", "broker", "-localIp", HOST, "-port", str(p["broker"]),
                                       "-data", str(work / "broker"), "-multiservice",
                                       # the counting subscription notifies the bench's own Mosquitto on loopback
                                       "-notifAllowedHosts", f"mqtt://{HOST}:{p['mqtt']}"])
        wait_port(broker, p["broker"], work / "broker.log", "the context broker", "/version")
        agent_env = {
            "IOTA_NORTH_HOST": HOST, "IOTA_NORTH_PORT": str(p["north"]),
            "IOTA_HTTP_HOST": HOST, "IOTA_HTTP_PORT": str(p["http"]),
            "IOTA_CB_URL": f"http://{HOST}:{p['broker']}", "IOTA_PROVIDER_URL": f"http://{HOST}:{p['north']}",
            "IOTA_MQTT_HOST": HOST, "IOTA_MQTT_PORT": str(p["mqtt"]), "IOTA_MQTT_QOS": "0",
            "WAZIUP_DATA_DIR": str(work / "agent"), "IOTA_LOG_LEVEL": "WARNING",
        }
        waziup = Path(PY).parent / "waziup"
        cmd = [str(waziup), "iot-agent"] if waziup.exists() else [PY, "-m", "orchestrator.cli", "iot-agent"]
        wait_port(self.spawn("agent", cmd, agent_env), p["north"], work / "agent.log", "the IoT agent", "/iot/about")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def provision(self) -> None:
        north = self.ports["north"]
        call(north, "POST", "/iot/groups", {"groups": [{
            "apikey": APIKEY, "resource": "/iot/d", "entity_type": ENTITY_TYPE,
            "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"},
                           {"object_id": "h", "name": "humidity", "type": "Number"}],
        }]})
        began = time.perf_counter()
        for start in range(0, self.args.devices, 500):
            devices = [{"device_id": device_id(i), "entity_name": f"{ENTITY_TYPE}:{device_id(i)}", "entity_type": ENTITY_TYPE,
                        "apikey": APIKEY, "protocol": "IoTA-UL", "transport": "MQTT"}
                       for i in range(start, min(start + 500, self.args.devices))]
            call(north, "POST", "/iot/devices", {"devices": devices})
        print(f"provisioned 1 group and {self.args.devices} devices in {time.perf_counter() - began:.1f} s", flush=True)

    def warm_up(self) -> float:
        """One measure per device (rate-limited), until every entity exists in the broker."""
        began = time.perf_counter()
        self.publish(seconds=600, rate=2000, first_seq=0, count=self.args.devices)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            headers, _ = call(self.ports["broker"], "GET", f"/v2/entities?type={ENTITY_TYPE}&limit=1&options=count")
            if int(headers.get("fiware-total-count", "0")) >= self.args.devices:
                took = time.perf_counter() - began
                print(f"warm-up: {self.args.devices} entities in {took:.1f} s", flush=True)
                return took
            time.sleep(0.2)
        sys.exit(f"bench: only {headers.get('fiware-total-count')} of {self.args.devices} entities after the warm-up")

    def publish(self, *, seconds: float, rate: int, first_seq: int, count: int = 0) -> subprocess.Popen[bytes]:
        """Start the publisher; with ``count``, publish that many measures and wait for it."""
        cmd = [PY, str(Path(__file__).resolve()), "--publisher", "--mqtt-port", str(self.ports["mqtt"]),
               "--devices", str(self.args.devices), "--seconds", str(seconds), "--count", str(count),
               "--rate", str(rate), "--window", str(self.args.window), "--first-seq", str(first_seq),
               "--epoch-ns", str(self.epoch_ns), "--counter", str(self.work / "counter")]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=None)
        if count:
            proc.communicate()
        return proc

    def settle(self) -> None:
        """Wait until broker and agent are idle (the warm-up's tail)."""
        pids = [self.procs["broker"].pid, self.procs["agent"].pid]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            before = sum(map(cpu_seconds, pids))
            time.sleep(0.5)
            if sum(map(cpu_seconds, pids)) - before < 0.05:
                return

    def profile(self) -> list[subprocess.Popen[bytes]]:
        """py-spy (bench/pyspy.py) on the broker and the agent over the window."""
        out = Path(self.args.profile).resolve()
        return [pyspy.spy(self.procs[name].pid, self.args.seconds, out / f"{name}.txt") for name in ("agent", "broker")]

    def subscribe(self) -> str:
        headers, _ = call(self.ports["broker"], "POST", "/v2/subscriptions", {
            "description": "bench-iot catch-all",
            "subject": {"entities": [{"idPattern": ".*", "type": ENTITY_TYPE}]},
            "notification": {"mqtt": {"url": f"mqtt://{HOST}:{self.ports['mqtt']}", "topic": NOTIFY_TOPIC},
                             "attrs": ["temperature", "humidity"], "attrsFormat": "keyValues"},
        })
        return headers.get("location", "").rsplit("/", 1)[-1]

    def run(self) -> dict[str, Any]:
        a = self.args
        self.start()
        self.provision()
        warm = self.warm_up()
        receiver = Receiver(self.ports["mqtt"], self.counter, self.epoch_ns)
        sub_id = self.subscribe()
        self.settle()
        receiver.reset()
        first_seq = a.devices
        pids = {name: proc.pid for name, proc in self.procs.items()}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        own_before = time.process_time()
        began = time.perf_counter()
        pub = self.publish(seconds=a.seconds, rate=a.rate, first_seq=first_seq)
        pids["publisher"] = pub.pid
        profilers = self.profile() if a.profile else []
        pub_cpu = 0.0
        while pub.poll() is None:  # sample the publisher's CPU while it exists
            try:
                pub_cpu = cpu_seconds(pub.pid)
            except (OSError, IndexError):
                break
            time.sleep(0.05)
        out, _ = pub.communicate()
        ended = time.perf_counter()
        for profiler in profilers:
            profiler.wait()
        cpu_after = {name: cpu_seconds(pid) for name, pid in pids.items() if name != "publisher"}
        own_cpu = time.process_time() - own_before
        summary = json.loads(out.decode().strip().splitlines()[-1])
        window_s = summary["seconds"]
        with receiver.lock:
            in_window = sum(1 for t in receiver.arrivals if t <= summary["ended_ns"])
        # drain: wait for what is still in flight, until all arrived or nothing came for 3 s
        last, quiet = -1, time.monotonic()
        while (n := receiver.count()) < summary["published"] and time.monotonic() - quiet < 3:
            if n != last:
                last, quiet = n, time.monotonic()
            time.sleep(0.1)
        drained_s = time.perf_counter() - ended
        cpu_drained = {name: cpu_seconds(pid) for name, pid in pids.items() if name != "publisher"}
        own_drained = time.process_time() - own_before
        _, sub_body = call(self.ports["broker"], "GET", f"/v2/subscriptions/{sub_id}")
        times_sent = orjson.loads(sub_body).get("notification", {}).get("timesSent", 0)
        receiver.close()
        with receiver.lock:
            seqs, latencies = list(receiver.seqs), sorted(receiver.latencies_us)
        published = set(range(first_seq, first_seq + summary["published"]))
        got = set(seqs)
        sampled_s = ended - began  # the publisher's life: start-up, window, flush
        cpu = {name: 100 * (cpu_after[name] - cpu_before[name]) / sampled_s for name in cpu_after}
        cpu["publisher"] = 100 * max(pub_cpu, summary.get("cpu_seconds", 0)) / sampled_s
        cpu["receiver (bench)"] = 100 * own_cpu / sampled_s
        per_measure = {name: cpu_drained[name] - cpu_before[name] for name in cpu_drained}
        per_measure["publisher"] = cpu["publisher"] / 100 * sampled_s
        per_measure["receiver (bench)"] = own_drained
        return {
            "devices": a.devices, "seconds": window_s, "mode": f"fixed rate {a.rate}/s" if a.rate else f"closed loop, window {a.window}",
            "published": summary["published"], "publish_rate": summary["published"] / window_s,
            "accepted": len(got & published), "accepted_in_window": in_window,
            "accepted_per_second": in_window / window_s,
            "accepted_total_per_second": len(got & published) / window_s,
            "lost": len(published - got), "duplicates": len(seqs) - len(got), "unreadable": receiver.bad,
            "broker_times_sent": times_sent, "drain_seconds": drained_s,
            "latency_p50_ms": percentile(latencies, 50), "latency_p99_ms": percentile(latencies, 99),
            "latency_max_ms": percentile(latencies, 100),
            "cpu_pct": cpu, "warm_up_seconds": warm,
            # CPU per measure that reached the broker (µs): from the start to the end of the drain
            "cpu_us_per_measure": {name: 1e6 * used / max(1, len(got & published)) for name, used in per_measure.items()},
        }


def describe(r: dict[str, Any]) -> str:
    cpu = ", ".join(f"{k} {v:.0f}%" for k, v in r["cpu_pct"].items())
    return (f"{r['devices']} devices, {r['mode']}, {r['seconds']:.1f} s: published {r['published']} "
            f"({r['publish_rate']:.0f}/s), in the broker {r['accepted_per_second']:.0f} measures/s "
            f"({r['accepted']} in all, broker timesSent {r['broker_times_sent']}), lost {r['lost']}, "
            f"latency p50 {r['latency_p50_ms']:.1f} ms p99 {r['latency_p99_ms']:.1f} ms max {r['latency_max_ms']:.1f} ms\n"
            f"CPU (100% = one core): {cpu}\n"
            f"CPU per measure: " + ", ".join(f"{k} {v:.0f} µs" for k, v in r["cpu_us_per_measure"].items()))


def write_markdown(report: dict[str, Any]) -> None:
    """Replace the IoT results of BENCHMARKS.md (between their markers) with this run's."""
    m, r = report["machine"], report["result"]
    lines = [
        harness.run_line(report, f"broker on SQLite, {r['devices']} devices, {r['mode']}, {r['seconds']:.0f} s, ",
                         m["load_average"][0], "a loaded machine"),
        "",
        "| measures/s into the broker | published/s | lost | latency p50 ms | p99 ms | max ms | "
        + " | ".join(f"CPU {k}" for k in r["cpu_pct"]) + " |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in r["cpu_pct"]) + " |",
        f"| {r['accepted_per_second']:.0f} | {r['publish_rate']:.0f} | {r['lost']} | {r['latency_p50_ms']:.1f} | "
        f"{r['latency_p99_ms']:.1f} | {r['latency_max_ms']:.1f} | " + " | ".join(f"{v:.0f}%" for v in r["cpu_pct"].values()) + " |",
    ]
    lines += ["", "CPU per measure into the broker: "
              + ", ".join(f"{k} {v:.0f} µs" for k, v in r["cpu_us_per_measure"].items()) + "."]
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if "<!-- iot-results -->" not in text:
        text += "\n## IoT agent: MQTT measures into the broker\n\n<!-- iot-results -->\n<!-- /iot-results -->\n"
    head, _, rest = text.partition("<!-- iot-results -->")
    _, _, tail = rest.partition("<!-- /iot-results -->")
    path.write_text(f"{head}<!-- iot-results -->\n{chr(10).join(lines)}\n<!-- /iot-results -->{tail}")


def main() -> None:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=float(env("BENCH_SECONDS", 10)))
    parser.add_argument("--devices", type=int, default=int(env("BENCH_DEVICES", 1000)))
    parser.add_argument("--rate", type=int, default=int(env("BENCH_RATE", 0)), help="measures/s; 0: closed loop")
    parser.add_argument("--window", type=int, default=int(env("BENCH_WINDOW", 200)),
                        help="closed loop: measures in flight at most")
    parser.add_argument("--profile", metavar="DIR", default=env("BENCH_PROFILE", ""),
                        help="also record py-spy profiles of the agent and the broker (collapsed stacks) into DIR")
    parser.add_argument("--no-markdown", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs) and print its path")
    # the publisher process
    parser.add_argument("--publisher", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mqtt-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--first-seq", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--epoch-ns", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--counter", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publisher:
        publisher(args)
        return

    work = Path(tempfile.mkdtemp(prefix="waziup-bench-iot-"))
    bench = Bench(args, work)
    try:
        result = bench.run()
    finally:
        bench.stop()
        if args.keep:
            print(f"work dir: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(describe(result), flush=True)
    now = datetime.datetime.now()
    report = {"date": now.isoformat(timespec="seconds"), "machine": harness.machine(), "result": result}
    harness.save_report(report, f"{now:%Y-%m-%d-%H%M%S}-iot.json")
    if not args.no_markdown:
        write_markdown(report)


if __name__ == "__main__":
    main()
