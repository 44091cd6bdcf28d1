"""The rules service's benchmark: ``make bench-rules`` (also run at the end of ``make bench``);
``BENCH_SECONDS=2 bench/rules.py --rules 50 --no-markdown`` for a quick run.

A real broker (``python -m broker``, a fresh SQLite file, as bench/run.py starts it), the rules
service (``python -m analytics.rules.service``, a fresh SQLite store, ``-allowedHosts 127.0.0.1``
so that its post actions may reach the bench's receiver), the notification receiver
(bench/receiver.py) and the bare Starlette yardstick (bench/baseline_app.py), all subprocesses on
loopback; ``--rules`` rules (1,000) are created through ``POST /rules``, each with its broker
subscription, then:

* **R1 rule evaluations**: wrk (bench/lua/notices.lua) posts NGSI-v2 notifications straight to
  ``/notices``, as the broker sends them (one normalized entity, ``alterationType``), each from the
  subscription of a random rule and about an entity that rule watches. The service feeds a notice
  to the one rule owning its subscription (docs/rules.md, "Subscriptions"), so a notice is one
  rule evaluation: evaluations/s = notices/s x 1, and the figure says so rather than multiplying
  by the rule count (an update that several rules watch reaches the service as one notice per
  rule). The rule mix: 60% ``temperature>T`` on one Room, 20% ``temperature>T;pressure<P`` on an
  ``idPattern``, 10% 5-minute windows (avg and max, ``avgT>30``), all throttled at one action a
  minute per entity, and 10% ``temperature>48`` unthrottled; every action posts to the receiver.
* **R2 update -> action**: ``--r2-sensors`` entities (10) each watched by a ``temperature>40``
  rule whose action posts to the receiver a body templated with the entity's ``pressure``, which
  the bench sets to "<seq> <send time ns>"; PATCHes go to the broker at ``--r2-rate`` per second
  (open loop, 100), half of them above the threshold. The receiver times each action on arrival:
  the delay from the PATCH's send to the action (p50, p99, max). *lost* = accepted PATCHes above
  the threshold whose action never arrived (must be 0: these rules are not throttled); *extra* =
  actions of updates below it, or of PATCHes not acknowledged.

Writes bench/results/rules-<date>.json (not <date>-rules.json: bench/quick.py takes every results
file starting with a digit for a broker run) and the "Rules service" table of BENCHMARKS.md
(between ``<!-- rules-results -->`` and ``<!-- /rules-results -->``) unless ``--no-markdown``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import client
import harness
import history  # (stop, settle, wrk: the same as the history bench's)
import run  # (bench/run.py: server start-up, CPU accounting)
from harness import HOST, PY, ROOT

R1_TYPE, R2_TYPE = "Room", "R2Sensor"
R2_HOT, R2_COLD, R2_THRESHOLD = 50, 20, 40
MARKERS = ("<!-- rules-results -->", "<!-- /rules-results -->")
POST_HEADERS = {"Content-Type": "application/json"}


# -- rule documents ------------------------------------------------------------------------------


def r1_rule(i: int, action_url: str) -> tuple[dict[str, Any], str]:
    """The ``i``-th rule of R1's mix, and the id of an entity it watches (what its notices carry).
    The kind of rule cycles over i % 10 so that any ``--rules`` keeps the proportions."""
    kind = i % 10
    action: dict[str, Any] = {"type": "post", "template": '{"data": []}',
                              "parameters": {"url": action_url, "headers": POST_HEADERS}}
    entity = f"Room{i}"
    if kind < 6:
        condition: dict[str, Any] = {"type": R1_TYPE, "id": entity, "q": f"temperature>{20 + i % 20}"}
    elif kind < 8:
        entity = f"Room{i}-a"
        condition = {"type": R1_TYPE, "idPattern": f"^Room{i}-",
                     "q": f"temperature>{25 + i % 15};pressure<{1000 + i % 50}"}
    elif kind == 8:
        condition = {"type": R1_TYPE, "id": entity,
                     "window": {"minutes": 5, "aggregates": {"avgT": {"avg": "temperature"},
                                                             "maxT": {"max": "temperature"}}, "q": "avgT>30"}}
    else:
        condition = {"type": R1_TYPE, "id": entity, "q": "temperature>48"}
    if kind < 9:
        action["interval"] = 60_000  # one action a minute per rule and entity, as alarms are written
    return {"name": f"r1_{i}", "condition": condition, "action": action}, entity


def r2_rule(k: int, action_url: str) -> dict[str, Any]:
    """R2's rule of sensor ``k``: its action carries the update's stamp to the receiver."""
    return {"name": f"r2_hot_{k}",
            "condition": {"type": R2_TYPE, "id": f"Sensor{k}", "q": f"temperature>{R2_THRESHOLD}"},
            "action": {"type": "post", "template": '{"data": [{"pressure": {"value": "${pressure}"}}]}',
                       "parameters": {"url": action_url, "headers": POST_HEADERS}}}


# -- the run -------------------------------------------------------------------------------------


class RulesBench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.ports = {name: harness.free_port(HOST) for name in ("broker", "rules", "receiver", "baseline")}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.baseline: dict[str, Any] | None = None
        self.setup: dict[str, Any] = {}
        self.targets = work / "targets.txt"  # notices.lua's rules: "<subscription> <entity> <type>"

    # -- processes ---------------------------------------------------------------------------------

    def start_all(self) -> None:
        """Yardstick, receiver, broker, then the rules service pointed at the broker."""
        p, w = self.ports, self.work
        self._start("baseline", [PY, str(HERE / "baseline_app.py"), str(p["baseline"])], "/")
        self._start("receiver", [PY, str(HERE / "receiver.py"), str(p["receiver"])], None)
        self._start("broker", [PY, "-m", "broker", "-localIp", HOST, "-port", str(p["broker"]), "-data", str(w / "broker"),
                               "-notifAllowedHosts", HOST], "/version")  # the rules' /notices is on loopback
        self._start("rules", [PY, "-m", "analytics.rules.service", "-host", HOST, "-port", str(p["rules"]),
                              "-dbURI", f"sqlite:///{w / 'rules.db'}", "-brokerURL", f"http://{HOST}:{p['broker']}",
                              "-allowedHosts", HOST, "-logLevel", "WARNING"], "/version")

    def _start(self, name: str, cmd: list[str], ready: str | None) -> None:
        (self.work / "broker").mkdir(exist_ok=True)
        self.procs[name] = run.start(cmd, self.ports[name], ready, self.work / f"{name}.log")

    def stop_all(self) -> None:
        for name in ("rules", "broker", "receiver", "baseline"):  # the service first: it unsubscribes nothing at stop
            if name in self.procs:
                history.stop(self.procs[name], self.work / f"{name}.log")

    def cpu(self) -> dict[str, float]:
        return {name: run.cpu_seconds(self.procs[name].pid) for name in ("rules", "broker")}

    def settle(self) -> None:
        history.settle([self.procs["rules"].pid, self.procs["broker"].pid])

    # -- setup ---------------------------------------------------------------------------------------

    def create_rules(self) -> None:
        """R1's rules (their subscription ids and entities written for notices.lua), R2's, and
        R2's entities: all through the APIs, as a user would."""
        began = time.perf_counter()
        action = f"http://{HOST}:{self.ports['receiver']}/r1"
        docs = [r1_rule(i, action) for i in range(self.args.rules)]
        subs = asyncio.run(self._post_rules([doc for doc, _ in docs]))
        lines = [f"{sub} {entity} {R1_TYPE}" for sub, (_, entity) in zip(subs, docs, strict=True)]
        self.targets.write_text("\n".join(lines) + "\n")
        seconds = time.perf_counter() - began
        self.setup = {"rules": self.args.rules, "create_seconds": seconds, "rules_per_s": self.args.rules / seconds}
        print(f"{self.args.rules} rules created in {seconds:.1f} s ({self.args.rules / seconds:.0f}/s)", flush=True)
        asyncio.run(self._r2_setup())

    async def _post_rules(self, docs: list[dict[str, Any]]) -> list[str]:
        """Create the rules (4 at a time: the service makes them one by one anyway) and return
        their subscription ids, in order; a rule without one ends the run (its notices would be
        ignored, and measure nothing)."""
        subs: list[str] = [""] * len(docs)

        def job(i: int) -> Any:
            async def create() -> None:
                status, _, data = await client.call(HOST, self.ports["rules"], "POST", "/rules", orjson.dumps(docs[i]))
                sub = orjson.loads(data).get("data", {}).get("subscriptionId") if status == 200 else None
                if not sub:
                    sys.exit(f"bench: POST /rules {docs[i]['name']} answered {status}, no subscription: {data[:300]!r}")
                subs[i] = sub
            return create

        await client.gather_limited([job(i) for i in range(len(docs))], 4)
        return subs

    async def _r2_setup(self) -> None:
        for k in range(self.args.r2_sensors):
            entity = {"id": f"Sensor{k}", "type": R2_TYPE, "temperature": {"type": "Number", "value": R2_COLD},
                      "pressure": {"type": "Text", "value": "-1 0"}}
            status, _, data = await client.call(HOST, self.ports["broker"], "POST", "/v2/entities", orjson.dumps(entity))
            if status != 201:
                sys.exit(f"bench: POST /v2/entities answered {status}: {data[:300]!r}")
        await self._post_rules([r2_rule(k, f"http://{HOST}:{self.ports['receiver']}/r2")
                                for k in range(self.args.r2_sensors)])

    # -- rows ------------------------------------------------------------------------------------------

    def record(self, name: str, result: dict[str, Any]) -> None:
        if self.baseline is not None:
            b = self.baseline
            result["vs_bare"] = {"rate": result["rps"] / b["rps"], "p50": result["p50_ms"] / b["p50_ms"],
                                 "p99": result["p99_ms"] / b["p99_ms"]}
        self.results[name] = result
        print(describe(name, result), flush=True)

    def yardstick(self) -> None:
        a = self.args
        r = history.wrk("baseline.lua", [], self.ports["baseline"], a.connections, a.seconds)
        r.update(rps=r["requests"] / r["seconds"], rate=r["requests"] / r["seconds"], unit="req/s",
                 cpu_pct={"rules": 0.0, "broker": 0.0})
        self.baseline = r
        self.record("baseline (bare Starlette)", r)

    def evaluations(self) -> None:
        """R1: notices straight to /notices, each evaluated by the one rule of its subscription."""
        self.settle()
        asyncio.run(client.call(HOST, self.ports["receiver"], "POST", "/reset"))
        before = self.cpu()
        r = history.wrk("notices.lua", [str(self.targets)], self.ports["rules"], self.args.connections, self.args.seconds)
        after = self.cpu()
        self.settle()  # the queued actions, before counting them
        stats = orjson.loads(asyncio.run(client.call(HOST, self.ports["receiver"], "GET", "/stats"))[2])
        rps = r["requests"] / r["seconds"]
        r.update(rps=rps, rate=rps, unit="rule evaluations/s", notices_per_s=rps, evaluations_per_notice=1,
                 actions=stats["notifications"], actions_per_s=stats["notifications"] / r["seconds"],
                 cpu_pct={k: 100 * (after[k] - before[k]) / r["seconds"] for k in after})
        self.record(f"R1 notices, {self.args.rules:,} rules", r)

    def update_to_action(self) -> None:
        """R2: PATCHes to the broker at a steady rate, actions timed at the receiver."""
        self.settle()
        asyncio.run(client.call(HOST, self.ports["receiver"], "POST", "/reset"))
        before = self.cpu()
        load = asyncio.run(self._r2_load())
        after = self.cpu()
        drained = asyncio.run(self._r2_drain(len(load["expected"])))
        arrived = set(drained.pop("seqs"))
        expected = load.pop("expected")
        seconds = load["seconds"]
        r = {**load, "rps": load["requests"] / seconds, "rate": load["requests"] / seconds, "unit": "updates/s",
             "patch_p50_ms": load["p50_ms"], "patch_p99_ms": load["p99_ms"],
             "p50_ms": drained["p50_ms"], "p99_ms": drained["p99_ms"], "max_ms": drained["max_ms"],
             "expected_actions": len(expected), "actions": len(arrived), "lost": len(expected - arrived),
             "extra": len(arrived - expected), "bad": drained["bad"], "drain_s": drained["drain_s"],
             "cpu_pct": {k: 100 * (after[k] - before[k]) / seconds for k in after}}
        self.record("R2 update -> action", r)

    async def _r2_load(self) -> dict[str, Any]:
        """Open loop: PATCH number ``seq`` leaves at ``seq / rate`` whatever the answers, on a
        pool of keep-alive connections (more are opened when all are busy, so a slow answer
        delays no later send)."""
        rate, total = self.args.r2_rate, int(self.args.r2_rate * self.args.seconds)
        rng = random.Random(1)
        pool: list[client.Connection] = []
        expected: set[int] = set()
        latencies: list[float] = []
        errors = 0

        async def patch(seq: int, hot: bool) -> None:
            nonlocal errors
            conn = pool.pop() if pool else client.Connection(HOST, self.ports["broker"])
            body = orjson.dumps({"temperature": {"type": "Number", "value": R2_HOT if hot else R2_COLD},
                                 "pressure": {"type": "Text", "value": f"{seq} {time.time_ns()}"}})
            start = time.perf_counter()
            status, _, _ = await conn.request("PATCH", f"/v2/entities/Sensor{seq % self.args.r2_sensors}/attrs", body)
            latencies.append(time.perf_counter() - start)
            pool.append(conn)
            if status >= 300:
                errors += 1
            elif hot:
                expected.add(seq)

        began = time.perf_counter()
        tasks = []
        for seq in range(total):
            delay = began + seq / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(patch(seq, rng.random() < 0.5)))
        await asyncio.gather(*tasks)
        seconds = time.perf_counter() - began
        for conn in pool:
            await conn.close()
        latencies.sort()
        return {"requests": total, "seconds": seconds, "non2xx": errors, "expected": expected, "connections": len(pool),
                "p50_ms": client._percentile(latencies, 50) * 1000, "p99_ms": client._percentile(latencies, 99) * 1000}

    async def _r2_drain(self, expected: int) -> dict[str, Any]:
        """The receiver's figures once every expected action arrived, or none came for 5 s."""
        began = last_change = time.perf_counter()
        count = -1
        while True:
            stats = orjson.loads((await client.call(HOST, self.ports["receiver"], "GET", "/stats"))[2])
            now = time.perf_counter()
            if stats["entities"] != count:
                count, last_change = stats["entities"], now
            if count >= expected or now - last_change > 5:
                return stats | {"drain_s": now - began}
            await asyncio.sleep(0.2)

    def selected(self, row: str) -> bool:
        return harness.selected(self.args.only, row)

    def run(self) -> dict[str, Any]:
        load = os.getloadavg()
        self.start_all()
        try:
            self.create_rules()
            self.yardstick()
            for part, measure in (("R1", self.evaluations), ("R2", self.update_to_action)):
                if self.selected(part):
                    measure()
        finally:
            self.stop_all()
        return {"load_average": load, "setup": self.setup, "results": self.results}


# -- output ----------------------------------------------------------------------------------------


def describe(name: str, r: dict[str, Any]) -> str:
    text = f"{name:<26} {r['rate']:9.0f} {r['unit']:<19} p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms"
    if "vs_bare" in r:
        v = r["vs_bare"]
        text += f"  | x{v['rate']:.3f} rate  x{v['p50']:.1f} p50  x{v['p99']:.1f} p99"
    text += "  | " + "  ".join(f"{k} CPU {v:.0f}%" for k, v in r["cpu_pct"].items())
    notes = row_notes(r)
    return text + (f"\n{'':<26} {notes}" if notes else "")


def row_notes(r: dict[str, Any]) -> str:
    notes = []
    if "notices_per_s" in r:
        notes.append(f"{r['notices_per_s']:.0f} notices/s x {r['evaluations_per_notice']} rule per notice "
                     f"(the one owning its subscription); {r['actions_per_s']:.1f} actions/s at the receiver")
    if "expected_actions" in r:
        notes.append(f"delay update -> action max {r['max_ms']:.1f} ms; PATCH p50 {r['patch_p50_ms']:.2f} ms "
                     f"p99 {r['patch_p99_ms']:.2f} ms; {r['expected_actions']} updates above the threshold, "
                     f"lost {r['lost']}, extra {r['extra']}" + (f", unreadable {r['bad']}" if r["bad"] else ""))
    if r.get("non2xx") or r.get("socket_errors"):
        notes.append(f"non-2xx {r['non2xx']}, socket errors {r.get('socket_errors', 0)}")
    return "; ".join(notes)


def write_markdown(report: dict[str, Any]) -> None:
    """Replace the table between the "Rules service" markers of BENCHMARKS.md."""
    run_ = report["run"]
    lines = [
        harness.run_line(
            report,
            f"{report['seconds']} s per row, {report['rules']:,} rules (created in "
            f"{run_['setup']['create_seconds']:.1f} s), wrk {report['connections']} connections, "
            f"R2 at {report['r2_rate']} updates/s on {report['r2_sensors']} entities, ",
            run_["load_average"][0], "a loaded machine: these figures show the suite works, not what the service can do"),
        "",
        "| row | rate | unit | p50 ms | p99 ms | rate vs bare | p50 vs bare | p99 vs bare | rules CPU | broker CPU | notes |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, r in run_["results"].items():
        v = r.get("vs_bare", {"rate": 1.0, "p50": 1.0, "p99": 1.0})
        lines.append(f"| {name} | {r['rate']:.0f} | {r['unit']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{v['rate']:.3f} | {v['p50']:.1f} | {v['p99']:.1f} | {r['cpu_pct']['rules']:.0f}% | "
                     f"{r['cpu_pct']['broker']:.0f}% | {row_notes(r)} |")
    path = ROOT / "BENCHMARKS.md"
    text = harness.replace_block(path.read_text(), *MARKERS, "\n".join(lines))
    if text is None:
        sys.exit(f"bench: BENCHMARKS.md has no {MARKERS[0]} ... {MARKERS[1]} block")
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "10")))
    parser.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", "16")),
                        help="wrk connections of the yardstick and of R1")
    parser.add_argument("--rules", type=int, default=int(os.environ.get("BENCH_RULES", "1000")),
                        help="R1's rules (1,000: the issue's figure)")
    parser.add_argument("--r2-rate", type=float, default=float(os.environ.get("BENCH_RULES_RATE", "100")),
                        help="R2's PATCHes per second (open loop)")
    parser.add_argument("--r2-sensors", type=int, default=10, help="R2's entities, one rule each")
    parser.add_argument("--only", default=os.environ.get("BENCH_ONLY", ""),
                        help="R1 and/or R2, comma-separated (figures on screen only)")
    parser.add_argument("--no-markdown", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()
    if args.rules < 1 or args.r2_sensors < 1 or args.r2_rate <= 0:
        parser.error("--rules and --r2-sensors: at least 1; --r2-rate: above 0")

    now = datetime.datetime.now()
    report: dict[str, Any] = {
        "date": now.isoformat(timespec="seconds"), "machine": harness.machine(), "seconds": args.seconds,
        "connections": args.connections, "rules": args.rules, "r2_rate": args.r2_rate, "r2_sensors": args.r2_sensors,
    }
    with tempfile.TemporaryDirectory(prefix="waziup-bench-rules-") as tmp:
        report["run"] = RulesBench(args, Path(tmp)).run()
    if args.only:
        return
    harness.save_report(report, f"rules-{now:%Y-%m-%d-%H%M%S}.json")
    if not args.no_markdown:
        write_markdown(report)


if __name__ == "__main__":
    main()
