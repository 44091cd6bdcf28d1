"""What every bench script does around its measurements: free loopback ports, servers
started and waited for, and the machine the numbers were taken on (bench/run.py for the
broker, bench/iot_agent.py for the IoT agent; the same in both, so written once)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import client  # bench/client.py

ROOT = Path(__file__).resolve().parents[1]


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_ready(
    proc: subprocess.Popen[bytes], host: str, port: int, ready_path: str | None, log: Path, what: str
) -> None:
    """Until the server just started as ``proc`` answers GET ``ready_path`` with 200, or
    accepts connections when that is None (a server with no such path). A server that dies
    at start-up or does not come up within 30 s ends the run with the tail of its ``log``,
    rather than with numbers of a bench that never really ran."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench: {what} exited at start-up:\n{log.read_text()[-3000:]}")
        try:
            if ready_path is None:
                socket.create_connection((host, port), timeout=1).close()
                return
            if asyncio.run(client.call(host, port, "GET", ready_path))[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit(f"bench: {what} did not come up:\n{log.read_text()[-3000:]}")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all it started, from /proc: its own, that of its
    reaped children (``cutime``/``cstime``) and that of its live ones, recursively. Counting the
    reaped ones keeps the figure growing when children come and go: PostgreSQL's backends exit
    during a run, and summing the live processes only once gave -260%."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    total = sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")
    return total + sum(cpu_seconds(int(child)) for child in children)


def machine() -> dict[str, Any]:
    """The CPU, its cores, the commit measured (``-dirty`` with uncommitted changes) and the
    load while measuring: what a reader needs to compare two reports."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {"cpu": model, "cores": os.cpu_count(), "commit": commit + ("-dirty" if dirty else ""),
            "load_average": os.getloadavg()}
