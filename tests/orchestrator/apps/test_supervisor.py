"""The supervisor (``orchestrator/apps/supervisor.py``) with real processes: restarts with
back-off, health checks, rotating logs, limits, and a stop that ends the whole group."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.apps.manifest import Health
from orchestrator.apps.supervisor import Launch, Supervisor, address_space_limit, backoff, tail


def launch(tmp_path: Path, command: list[str], **fields: object) -> Launch:
    return Launch(command=command, cwd=tmp_path, env={"PATH": os.environ["PATH"]}, log_dir=tmp_path / "logs",
                  **fields)  # type: ignore[arg-type]


async def until(check: Callable[[], bool], seconds: float = 30, what: Callable[[], str] = lambda: "") -> None:
    """Wait for ``check``: generous, since under a loaded CI machine (two xdist workers on two
    cores) starting a process can take seconds; a condition that never comes still fails,
    saying ``what()``."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out {what()}"
        await asyncio.sleep(0.05)


def run(work: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(work, 90))  # type: ignore[arg-type]


@given(st.integers(0, 100), st.floats(0.01, 10), st.floats(1, 600))
def test_backoff_doubles_and_is_capped(failures: int, base: float, most: float) -> None:
    delay = backoff(failures, base, most)
    assert 0 <= delay <= most
    if failures >= 1:
        assert delay == min(most, base * 2 ** (failures - 1))
        assert backoff(failures + 1, base, most) >= delay


def test_a_crashing_app_is_restarted_with_backoff(tmp_path: Path) -> None:
    async def work() -> None:
        sup = Supervisor("crash", launch(tmp_path, ["sh", "-c", "echo running; exit 3"]), backoff_base=0.1)
        await sup.start()
        await until(lambda: sup.restarts >= 3)
        await sup.stop()
        text = "\n".join(tail(tmp_path / "logs", 100))
        assert "exited with status 3" in text
        assert "restarting in 0.1 s" in text and "restarting in 0.2 s" in text and "restarting in 0.4 s" in text
        assert text.count("running") >= 3
        # the last exit is its own (3), or the stop's signal when stop() found it just (re)started
        assert sup.last_exit in (3, -signal.SIGTERM, -signal.SIGKILL) and sup.state == "stopped"
    run(work())


def test_a_failing_health_check_is_reported_then_restarts(tmp_path: Path) -> None:
    async def work() -> None:
        health = Health(command="echo not ready; exit 1", interval=0.1, timeout=1, grace=0)
        sup = Supervisor("sick", launch(tmp_path, ["sleep", "60"], health=health), backoff_base=0.1)
        await sup.start()
        await until(lambda: sup.state == "unhealthy")
        assert sup.healthy is False and "not ready" in (sup.health_failure or "")
        await until(lambda: sup.restarts >= 1)  # three failures in a row restart it
        await sup.stop()
        assert "restarting: the health check keeps failing" in "\n".join(tail(tmp_path / "logs", 100))
    run(work())


def test_http_health_check(tmp_path: Path) -> None:
    async def work() -> None:
        port = free()
        server = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
        (tmp_path / "health").write_text("ok")
        ok = Supervisor("web", launch(tmp_path, server, health=Health(path="/health", interval=0.2, grace=10),
                                      health_port=port))
        await ok.start()
        await until(lambda: ok.healthy is True)
        await ok.stop()
        missing = Supervisor("web2", launch(tmp_path, server, health=Health(path="/nothing", interval=0.2, grace=0),
                                            health_port=port))
        await missing.start()
        # the first probes may find nothing listening yet ("Could not connect"): wait for the 404's
        await until(lambda: "answered 404" in (missing.health_failure or ""))
        assert missing.healthy is False
        await missing.stop()
    run(work())


def test_logs_rotate(tmp_path: Path) -> None:
    async def work() -> None:
        script = "for i in $(seq 1 400); do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxx; done; sleep 60"
        sup = Supervisor("chatty", launch(tmp_path, ["sh", "-c", script]), log_max_bytes=2000, log_backups=2)
        await sup.start()
        await until(lambda: "line-400-" in "".join(tail(tmp_path / "logs", 5)))
        await sup.stop()
        logs = tmp_path / "logs"
        assert (logs / "app.log.1").exists() and (logs / "app.log.2").exists()
        assert not (logs / "app.log.3").exists()
        assert all(path.stat().st_size < 2100 for path in logs.iterdir())
    run(work())


def test_stop_kills_the_whole_group(tmp_path: Path) -> None:
    async def work() -> None:
        script = 'trap "" TERM; sleep 300 & echo $! > child.pid; wait'  # both ignore SIGTERM
        sup = Supervisor("stubborn", launch(tmp_path, ["sh", "-c", script]), stop_timeout=0.5)
        await sup.start()
        await until(lambda: (tmp_path / "child.pid").exists() and (tmp_path / "child.pid").read_text().strip() != "")
        child = int((tmp_path / "child.pid").read_text())
        parent = sup.proc.pid if sup.proc else 0
        await sup.stop()
        await until(lambda: not alive(child) and not alive(parent),
                    what=lambda: f"child {child} {state(child)[:60]}, parent {parent} {state(parent)[:60]}, sup {sup.state} "
                    f"log {tail(tmp_path / 'logs', 20)}")
    run(work())


def test_memory_limit(tmp_path: Path) -> None:
    async def work() -> None:
        hog = [sys.executable, "-c", "x = bytearray(1024 * 1024 * 1024); print('allocated')"]
        sup = Supervisor("hog", launch(tmp_path, hog, memory_bytes=64 * 1024 * 1024), backoff_base=5)
        await sup.start()
        await until(lambda: sup.last_exit is not None)
        await sup.stop()
        text = "\n".join(tail(tmp_path / "logs", 50))
        assert "MemoryError" in text and "allocated" not in text
    run(work())
    assert address_space_limit(64 * 1024 * 1024) == 256 * 1024 * 1024


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its parent counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text()
    except OSError as exc:
        return str(exc)


def free() -> int:
    from tests.conftest import free_port

    return free_port()
