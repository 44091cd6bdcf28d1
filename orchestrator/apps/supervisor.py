"""One app's process, kept running: started in a process group of its own, restarted with
exponential back-off when it exits or fails its health check, its output in rotating log
files, its memory bounded where the OS allows.

Limits: ``resources.memory`` becomes ``RLIMIT_AS`` (the address space: a little generous
for runtimes that reserve much and touch little, so it is doubled with a 256 MiB floor);
``resources.cpu`` cannot be a fraction of a core with rlimits (``RLIMIT_CPU`` kills after
a number of CPU seconds), so locally it only lowers the priority (``nice`` 10 below one
core); Kubernetes enforces it.

Stopping sends SIGTERM to the whole group, then SIGKILL after ``stop_timeout``: a shell
entry's children go with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ngsi.client import HTTPClient, HTTPError

from .manifest import Health

log = logging.getLogger("waziup.apps.supervisor")

LOG_FILE: Final = "app.log"
FAILURES_BEFORE_RESTART: Final = 3  # failing health checks in a row that restart the app


def backoff(failures: int, base: float, most: float) -> float:
    """Seconds to wait before restart number ``failures`` (1, 2, ...): doubling, capped."""
    if failures <= 0:
        return 0.0
    return float(min(most, base * 2 ** min(failures - 1, 30)))


def address_space_limit(memory_bytes: int) -> int:
    """The RLIMIT_AS given for a memory limit: virtual memory is much larger than what is
    used (thread stacks, mapped libraries), so twice the limit, at least 256 MiB."""
    return max(2 * memory_bytes, 256 * 1024 * 1024)


def nice_for(cpu: float | None) -> int:
    """Locally a CPU limit below one core only lowers the priority."""
    return 10 if cpu is not None and cpu < 1 else 0


class RotatingLog:
    """Lines appended to ``<dir>/app.log``, moved to ``app.log.1`` ... ``app.log.<backups>``
    when the file passes ``max_bytes``."""

    def __init__(self, folder: Path, max_bytes: int = 1024 * 1024, backups: int = 3) -> None:
        self.folder = folder
        self.path = folder / LOG_FILE
        self.max_bytes = max_bytes
        self.backups = backups
        folder.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")  # noqa: SIM115  (kept open while the app runs)

    def write(self, line: bytes) -> None:
        if not line.endswith(b"\n"):
            line += b"\n"
        self._file.write(line)
        self._file.flush()
        if self._file.tell() >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._file.close()
        for n in range(self.backups - 1, 0, -1):
            older = self.folder / f"{LOG_FILE}.{n}"
            if older.exists():
                os.replace(older, self.folder / f"{LOG_FILE}.{n + 1}")
        if self.backups > 0:
            os.replace(self.path, self.folder / f"{LOG_FILE}.1")
        else:
            self.path.unlink(missing_ok=True)
        self._file = open(self.path, "ab")  # noqa: SIM115

    def close(self) -> None:
        self._file.close()


def tail(folder: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of an app's log (rotated files included)."""
    found: list[str] = []
    for path in [folder / LOG_FILE, *(folder / f"{LOG_FILE}.{n}" for n in range(1, 10))]:
        if len(found) >= lines or not path.exists():
            break
        text = path.read_text(errors="replace").splitlines()
        found = text + found
    return found[-lines:] if lines > 0 else []


@dataclass(frozen=True)
class Launch:
    """What the supervisor runs: the command in ``cwd`` with ``env`` (the whole environment)."""

    command: Sequence[str]
    cwd: Path
    env: Mapping[str, str]
    log_dir: Path
    health: Health | None = None
    health_port: int | None = None  # the host port of an HTTP health check
    memory_bytes: int | None = None
    cpu: float | None = None
    pid_file: Path | None = None  # the running process's id, for ``kill_leftover`` after a crash of ours


def kill_leftover(pid_file: Path, cwd: Path) -> int | None:
    """Kill the process group an earlier run of the platform left (it was killed without
    stopping its apps): the one whose id ``pid_file`` holds, if it still runs in ``cwd``
    (so an unrelated process that got the id since is left alone). Its id, or None."""
    try:
        pid = int(pid_file.read_text().strip())
        running_in = Path(os.readlink(f"/proc/{pid}/cwd"))
    except (OSError, ValueError):
        return None
    if running_in.resolve() != cwd.resolve():
        return None
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    return pid


class Supervisor:
    """Keeps one process running (``start``/``stop``); ``status()`` says how it is doing."""

    def __init__(self, name: str, launch: Launch, *, backoff_base: float = 1.0, backoff_max: float = 60.0,
                 stable_after: float = 60.0, stop_timeout: float = 10.0, log_max_bytes: int = 1024 * 1024,
                 log_backups: int = 3, on_event: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.launch = launch
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.stop_timeout = stop_timeout
        self.log = RotatingLog(launch.log_dir, log_max_bytes, log_backups)
        self.on_event = on_event
        self.state = "stopped"  # starting | running | unhealthy | backoff | stopped
        self.healthy: bool | None = None  # None: no check yet (or none declared)
        self.health_failure: str | None = None
        self.restarts = 0
        self.failures = 0  # consecutive exits or health restarts, for the back-off
        self.last_exit: int | None = None
        self.started_at: float | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._restart_now = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._stopping = False
        self.state = "starting"
        self._task = asyncio.create_task(self._run(), name=f"app {self.name}")

    async def stop(self) -> None:
        self._stopping = True
        self._restart_now.set()
        await self._kill()
        if self._task is not None:
            # The loop ends by itself once it sees _stopping: a process it was spawning just now
            # is killed as soon as it is known. Cancelling it mid-spawn would lose that process
            # (it runs, and nothing holds it any more), so cancel only a loop that hangs.
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.stop_timeout + 15)
            except (asyncio.TimeoutError, Exception):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
            self._task = None
        await self._kill()
        self.state = "stopped"
        if self.launch.pid_file is not None:
            self.launch.pid_file.unlink(missing_ok=True)
        self.log.close()

    async def restart(self) -> None:
        """Stop the process now and start it again at once (no back-off)."""
        self.failures = 0
        self._restart_now.set()
        await self._kill()

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "pid": self.proc.pid if self.proc and self.proc.returncode is None else None,
                "healthy": self.healthy, "healthFailure": self.health_failure, "restarts": self.restarts,
                "lastExit": self.last_exit,
                "uptime": round(time.time() - self.started_at, 1) if self.started_at and self.state != "backoff"
                else None}

    def event(self, text: str) -> None:
        """A line of the supervisor's own in the app's log (exits, restarts, health failures)."""
        self.log.write(f"[waziup] {time.strftime('%Y-%m-%dT%H:%M:%S')} {text}".encode())
        log.info("app %s: %s", self.name, text)
        if self.on_event is not None:
            self.on_event(text)

    # -- the loop ------------------------------------------------------------------------

    def _preexec(self) -> None:  # runs in the child, after fork
        if self.launch.memory_bytes:
            limit = address_space_limit(self.launch.memory_bytes)
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        niceness = nice_for(self.launch.cpu)
        if niceness:
            with contextlib.suppress(OSError):
                os.nice(niceness)

    async def _spawn(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *self.launch.command, cwd=str(self.launch.cwd), env=dict(self.launch.env),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True, preexec_fn=self._preexec)

    async def _pump(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            try:
                line = await proc.stdout.readline()
            except ValueError:  # a line longer than the stream's limit: take what is there
                line = await proc.stdout.read(64 * 1024)
            if not line:
                return
            self.log.write(line)

    async def _run(self) -> None:
        while not self._stopping:
            self.state = "starting"
            self.healthy = None
            self.health_failure = None
            self._restart_now.clear()
            try:
                proc = await self._spawn()
            except OSError as exc:
                self.event(f"cannot start {self.launch.command[0]}: {exc}")
                proc = None
            if proc is not None:
                self.proc = proc
                if self._stopping:  # stop() came while it was being spawned: it must not outlive the stop
                    await self._kill()
                self.started_at = time.time()
                if self.launch.pid_file is not None:
                    self.launch.pid_file.write_text(str(proc.pid))
                self.event(f"started (pid {proc.pid})")
                if self.launch.health is None:
                    self.state = "running"
                pump = asyncio.create_task(self._pump(proc))
                checks = asyncio.create_task(self._check_health(proc)) if self.launch.health else None
                code = await proc.wait()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(pump, 2)
                if checks is not None:
                    checks.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await checks
                self.last_exit = code
                if self._stopping:
                    break
                ran = time.time() - (self.started_at or time.time())
                if ran >= self.stable_after:
                    self.failures = 0
                self.event(f"exited with {_exit_text(code)} after {ran:.1f} s")
            if self._stopping:
                break
            if self._restart_now.is_set():
                self.restarts += 1
                continue
            self.failures += 1
            delay = backoff(self.failures, self.backoff_base, self.backoff_max)
            self.state = "backoff"
            self.event(f"restarting in {delay:g} s")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._restart_now.wait(), delay)
            self.restarts += 1
        self.state = "stopped"

    async def _kill(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.stop_timeout)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        # what the group left behind (a shell's children that ignored SIGTERM)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    async def _check_health(self, proc: asyncio.subprocess.Process) -> None:
        health = self.launch.health
        assert health is not None
        started = time.monotonic()
        failing = 0
        await asyncio.sleep(min(1.0, health.interval))
        while proc.returncode is None:
            failure = await self._probe(health)
            in_grace = time.monotonic() - started < health.grace
            if failure is None:
                if not self.healthy:
                    self.event("health check passed")
                self.healthy, self.health_failure, failing = True, None, 0
                self.state = "running"
            elif not in_grace or self.healthy:
                failing += 1
                self.healthy, self.health_failure = False, failure
                self.state = "unhealthy"
                self.event(f"health check failed ({failing}/{FAILURES_BEFORE_RESTART}): {failure}")
                if failing >= FAILURES_BEFORE_RESTART:
                    self.event("restarting: the health check keeps failing")
                    self.health_failure = failure
                    await self._kill()
                    return
            else:
                self.health_failure = failure  # shown, not counted, during the grace period
            # every second until healthy (a deploy waits for it), then every ``interval``
            await asyncio.sleep(health.interval if self.healthy else min(1.0, health.interval))

    async def _probe(self, health: Health) -> str | None:
        """None when healthy, else why not."""
        if health.command:
            try:
                check = await asyncio.create_subprocess_exec(
                    "/bin/sh", "-c", health.command, cwd=str(self.launch.cwd), env=dict(self.launch.env),
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
            except OSError as exc:
                return f"command {health.command!r}: {exc}"
            try:
                out, _ = await asyncio.wait_for(check.communicate(), health.timeout)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(check.pid, signal.SIGKILL)
                await check.wait()
                return f"command {health.command!r} took longer than {health.timeout:g} s"
            if check.returncode != 0:
                return f"command {health.command!r} exited with {check.returncode}: {out.decode(errors='replace')[-300:].strip()}"
            return None
        url = f"http://127.0.0.1:{self.launch.health_port}{health.path}"
        client = HTTPClient(max_per_host=1)
        try:
            answer = await client.request("GET", url, [], b"", health.timeout)
        except HTTPError as exc:
            return f"GET {url}: {exc}"
        finally:
            await client.aclose()
        if answer.status >= 400:
            return f"GET {url} answered {answer.status}"
        return None


def _exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"status {code}"
