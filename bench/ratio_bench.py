"""What the service benches measured against the bare Starlette yardstick share (the
dashboard's, bench/dashboard.py, and the WAZIUP API's, bench/waziup_api.py): their
processes (started as bench/run.py starts servers, stopped in reverse order), CPU
accounting, wrk rows with their ratios to the yardstick, one-off HTTP calls, and the
messages of a helper process."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import client
import harness
import history  # (stop, settle, wrk)
import run  # (server start-up, CPU accounting)
from harness import HOST


def ratios(r: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
    return {"rate": r["rps"] / base["rps"], "p50": r["p50_ms"] / base["p50_ms"], "p99": r["p99_ms"] / base["p99_ms"]}


class RatioBench:
    """``measured``: the processes whose CPU every row gives; ``describe``: a row's screen line."""

    def __init__(self, args: argparse.Namespace, work: Path, servers: tuple[str, ...], measured: tuple[str, ...],
                 describe: Callable[[str, dict[str, Any]], str]) -> None:
        self.args = args
        self.work = work
        self.ports = {name: harness.free_port(HOST) for name in (*servers, "baseline")}
        self.measured = measured
        self.describe = describe
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.baseline: dict[str, Any] | None = None

    # -- processes ---------------------------------------------------------------------------------

    def start(self, name: str, cmd: list[str], ready: str) -> None:
        self.procs[name] = run.start(cmd, self.ports[name], ready, self.log(name))

    def log(self, name: str) -> Path:
        return self.work / f"{name}.log"

    def stop_all(self) -> None:
        """In the reverse order of start: a service before the services it calls."""
        for name, proc in reversed(list(self.procs.items())):
            history.stop(proc, self.log(name))

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of the processes measured (the yardstick's own rows aside)."""
        return {name: run.cpu_seconds(self.procs[name].pid) for name in self.measured}

    def settle(self) -> None:
        history.settle([self.procs[name].pid for name in self.measured])

    async def call(self, server: str, method: str, path: str, body: bytes = b"",
                   headers: str = "") -> tuple[int, bytes]:
        """One request on a connection of its own: (status, body)."""
        conn = client.Connection(HOST, self.ports[server])
        try:
            status, _, data = await conn.request(method, path, body, headers)
        finally:
            await conn.close()
        return status, data

    # -- rows ------------------------------------------------------------------------------------------

    def record(self, name: str, result: dict[str, Any]) -> None:
        if self.baseline is not None:
            result["vs_bare"] = ratios(result, self.baseline)
        self.results[name] = result
        print(self.describe(name, result), flush=True)

    def measure(self, script: str, script_args: list[str | int], server: str) -> dict[str, Any]:
        """One wrk row, with the measured processes' CPU over it."""
        self.settle()
        before = self.cpu()
        r = history.wrk(script, script_args, self.ports[server], self.args.connections, self.args.seconds)
        after = self.cpu()
        rps = r["requests"] / r["seconds"]
        r.update(rps=rps, rate=rps, unit="req/s",
                 cpu_pct={k: 100 * (after[k] - before[k]) / r["seconds"] for k in after})
        return r

    def yardstick(self, name: str) -> None:
        self.baseline = self.measure("baseline.lua", [], "baseline")
        self.record(name, self.baseline)


def expect(pipe: Pipe, seconds: float, key: str, who: str) -> dict[str, Any]:
    """The helper process's next message, which must carry ``key``; the run ends otherwise."""
    if not pipe.poll(seconds):
        sys.exit(f"bench: {who} said nothing for {seconds:.0f} s")
    message: dict[str, Any] = pipe.recv()
    if key not in message:
        sys.exit(f"bench: {who}: {message.get('error', message)}")
    return message
