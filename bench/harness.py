"""What every bench script does around its measurements: free loopback ports, servers
started and waited for, the machine the numbers were taken on, and the report written to
bench/results/ and BENCHMARKS.md (bench/run.py for the broker, bench/iot_agent.py for the IoT
agent, bench/history.py and bench/rules.py for the analytics services; the same in all, so
written once). Importing it also puts the repository root on ``sys.path``, for the scripts
that import the project's own packages (``devtools.pg_cluster``, ``analytics.history``)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import client  # bench/client.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))
HOST = "127.0.0.1"  # every server of a bench listens on loopback
PY = sys.executable  # and runs on the bench's own interpreter
RESULTS = Path(__file__).resolve().parent / "results"


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


def selected(only: str, name: str) -> bool:
    """Whether ``--only`` (comma-separated name prefixes, any case; empty: everything) keeps the
    row or part ``name``."""
    return not only or any(name.lower().startswith(o.strip().lower()) for o in only.split(","))


def save_report(report: dict[str, Any], name: str) -> None:
    """Write ``report`` as bench/results/``name`` (JSON) and say where, before BENCHMARKS.md
    is touched: the figures are kept even if their table cannot be written."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / name
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {out.relative_to(ROOT)}")


def run_line(report: dict[str, Any], details: str, load: float, loaded: str) -> str:
    """The line that opens a block of BENCHMARKS.md: when, on which CPU and commit, the run's
    ``details`` (ending in ", "), and the load average at start, with ``loaded`` (why the
    figures then say less) when it was above the number of cores."""
    m = report["machine"]
    return (f"Run {report['date']}: {m['cpu']}, {m['cores']} cores, commit {m['commit']}, {details}"
            f"load average at start {load:.1f}" + (f" ({loaded})." if load > m["cores"] else "."))


def replace_block(text: str, begin: str, end: str, content: str) -> str | None:
    """``text`` with what lies between the markers replaced (None when they are not there)."""
    if begin not in text or end not in text:
        return None
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    return f"{head}{begin}\n{content}\n{end}{tail}"


def set_backend_block(text: str, kind: str, backend: str, title: str, lines: list[str]) -> str:
    """``text`` (BENCHMARKS.md) with one store's block of ``kind`` results, between
    ``<!-- kind:backend -->`` and ``<!-- /kind:backend -->``, set to ``lines``. A store without a
    block yet gets one under ``### title``: after the last block of that kind, or at the end.
    The other store's block stays, so a run of one store keeps the figures of the other."""
    begin, end = f"<!-- {kind}:{backend} -->", f"<!-- /{kind}:{backend} -->"
    replaced = replace_block(text, begin, end, "\n".join(lines))
    if replaced is not None:
        return replaced
    block = f"### {title}\n\n{begin}\n" + "\n".join(lines) + f"\n{end}"
    last = text.rfind(f"<!-- /{kind}:")
    if last < 0:
        return text.rstrip("\n") + "\n\n" + block + "\n"
    cut = text.index("-->", last) + 3
    return text[:cut] + "\n\n" + block + text[cut:]


# -- the ratio tables (rows measured against the bare Starlette yardstick) ----------------------

LOADED = "a loaded machine: these figures show the suite works, not what the service can do"


def ratio_cells(name: str, r: dict[str, Any], measured: tuple[str, ...], notes: str) -> list[str]:
    """A row of a ratio table: rate, latencies, their ratios to the yardstick (1 for it), the
    CPU of each ``measured`` process, and ``notes``."""
    v = r.get("vs_bare", {"rate": 1.0, "p50": 1.0, "p99": 1.0})
    return [name, f"{r['rate']:.0f}", r["unit"], f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{v['rate']:.3f}",
            f"{v['p50']:.1f}", f"{v['p99']:.1f}", *(f"{r['cpu_pct'][k]:.0f}%" for k in measured), notes]


def ratio_table(report: dict[str, Any], details: str, cpu_titles: tuple[str, ...], rows: list[list[str]]) -> str:
    """A block of BENCHMARKS.md: the run's line (``details`` ending in ", "), then the table of
    ``rows`` (``ratio_cells``) under its columns, a CPU column per title."""
    columns = ("row", "rate", "unit", "p50 ms", "p99 ms", "rate vs bare", "p50 vs bare", "p99 vs bare",
               *(f"{title} CPU" for title in cpu_titles), "notes")
    align = ("---", "---:", "---", *("---:",) * (5 + len(cpu_titles)), "---")
    run_ = report["run"]
    return "\n".join([run_line(report, details, run_["load_average"][0], LOADED), "",
                      *("| " + " | ".join(row) + " |" for row in (columns, align, *rows))])


def write_block(markers: tuple[str, str], content: str) -> None:
    """Replace what lies between ``markers`` in BENCHMARKS.md (exit when they are missing)."""
    path = ROOT / "BENCHMARKS.md"
    if (text := replace_block(path.read_text(), *markers, content)) is None:
        sys.exit(f"bench: BENCHMARKS.md has no {markers[0]} ... {markers[1]} block")
    path.write_text(text)


def parse_options(about: str, rows: tuple[tuple[str, type, str, str, str], ...]) -> tuple[Any, Any]:
    """A bench's options: ``rows`` of (flag, type, environment variable, default, help), each
    defaulting to its variable, and ``--no-markdown``; (parser, parsed arguments)."""
    import argparse
    import os

    parser = argparse.ArgumentParser(description=about)
    for flag, kind, variable, default, text in rows:
        parser.add_argument(flag, type=kind, default=kind(os.environ.get(variable, default)), help=text)
    parser.add_argument("--no-markdown", action="store_true", help="do not update BENCHMARKS.md")
    return parser, parser.parse_args()
