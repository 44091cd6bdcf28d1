"""Fixtures shared by every test: a clean environment and factories for brokers."""

from __future__ import annotations

import os
import random
import signal
import shutil
import socket
import ssl
import subprocess
import tempfile
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Orion-style variables from the developer's shell must not leak into tests."""
    for name in list(os.environ):
        if name.startswith(("ORION_", "WAZIUP_")):
            monkeypatch.delenv(name, raising=False)


_PORTS = range(20000, 32768)  # below the kernel's ephemeral range (32768-60999) and above the Orion kit's (<= 18883)
_next_port: list[int] = []


def free_port() -> int:
    """A loopback port nothing listens on, for a service a test starts and that binds it later.

    Not port 0's pick: that comes from the ephemeral range, where every outgoing connection
    of every process also takes its local port, so a port found free could be taken before
    the service binds it (a whole ``waziup run`` binds ten). Ports come from below that range,
    each pytest-xdist worker from its own slice, in turn, so no other test or connection
    is handed the same one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    size = len(_PORTS) // max(workers, 1)
    start = _PORTS.start + int(worker or 0) % max(workers, 1) * size
    if not _next_port:
        _next_port.append(random.randrange(size))  # two runs one after the other start in different places
    for _ in range(size):
        port = start + _next_port[0] % size
        _next_port[0] += 1
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}-{start + size - 1}")


def wait_until_answering(
    proc: subprocess.Popen[bytes], url: str, what: str, seconds: float = 20, *, verify: ssl.SSLContext | bool = True
) -> None:
    """Wait until a service we started answers ``url`` (over TLS checked with ``verify`` for
    https); fail with its stderr if it exits."""
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            httpx.get(url, verify=verify, timeout=1)
            return
        except httpx.TransportError as exc:
            last = exc
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited: {proc.stderr.read().decode() if proc.stderr else ''}") from None
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer {url} within {seconds:g} s\n{_why_silent(proc, url, last)}")


def _why_silent(proc: subprocess.Popen[bytes], url: str, last: Exception | None) -> str:
    """What a service that never answered was doing, for the failure message (a start-up that
    hangs once in many runs is diagnosed from this alone): the last probe's error, who listens
    on the port, the process tree, then the service's output once it is stopped."""
    port = httpx.URL(url).port
    lines = [f"last probe: {last!r}"]
    for argv in (["ss", "-ltnp", f"sport = :{port}"], ["ps", "-o", "pid,ppid,stat,etime,time,wchan:20,args", "-p", str(proc.pid), "--ppid", str(proc.pid)]):
        try:
            lines.append(subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip())
        except (OSError, subprocess.TimeoutExpired) as exc:
            lines.append(f"{argv[0]}: {exc}")
    stop_process(proc, timeout=5)
    for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        if stream is not None:
            lines.append(f"{name}: {stream.read().decode(errors='replace')[-4000:]}")
    return "\n".join(lines)


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL what is still running after ``timeout`` seconds: a process a
    test started never outlives the test, however it hangs."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ServiceProcess:
    """A service a test runs as a real process of this interpreter, as users start it, on
    loopback ports: started by ``launch`` once it answers, stopped by ``stop``. Subclasses
    say what to run; how to start, wait and stop is the same for all."""

    proc: subprocess.Popen[bytes] | None = None
    startup_seconds: float = 20  # more where start-up is slow (spawned workers on a loaded machine)
    new_session: bool = False  # a process group of its own, for a ``kill -9`` of its children too

    def launch(self, argv: list[str], probe: str, what: str) -> None:
        """``python argv...``, its stderr kept in a file (a pipe nobody reads would block the
        service once full) and shown if it exits before ``probe`` answers."""
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, *argv], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log,
            start_new_session=self.new_session,
        )
        try:
            wait_until_answering(self.proc, probe, what, self.startup_seconds)
        except RuntimeError as exc:
            self.log.seek(0)
            raise RuntimeError(f"{exc}\n{self.log.read().decode(errors='replace')[-4000:]}") from None

    def stop(self) -> None:
        stop_process(self.proc)

    def kill(self) -> None:
        """SIGKILL, nothing flushed, nothing closed: of the whole process group when it has one."""
        if self.proc is None:
            return
        if self.new_session:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            self.proc.kill()
        self.proc.wait()


# The receivers, providers and agents tests start listen on loopback: a broker a test starts
# may call them (the destination policy refuses loopback unless allowed; tests of the policy
# itself start brokers with ``allow_loopback=False``).
LOOPBACK_ALLOWED = ["-notifAllowedHosts", "127.0.0.1,localhost,[::1]"]


class BrokerProcess(ServiceProcess):
    """A broker started as a real process (``python -m broker``) on a loopback port."""

    def __init__(self, args: list[str], *, allow_loopback: bool = True) -> None:
        self.port = free_port()
        self.args = [*LOOPBACK_ALLOWED, *args] if allow_loopback else args
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self.launch(["-m", "broker", "-localIp", "127.0.0.1", "-port", str(self.port), *self.args],
                    self.url + "/version", "broker")
        return self


@pytest.fixture
def broker_process() -> Iterator[Callable[[list[str]], BrokerProcess]]:
    started: list[BrokerProcess] = []

    def factory(args: list[str]) -> BrokerProcess:
        broker = BrokerProcess(args).start()
        started.append(broker)
        return broker

    yield factory
    for broker in started:
        broker.stop()


MOSQUITTO_USER, MOSQUITTO_PASSWD = "waziup", "s3cret"


class Mosquitto:
    """A Mosquitto broker on loopback: ``port`` takes anonymous clients, ``auth_port``
    only ``MOSQUITTO_USER``/``MOSQUITTO_PASSWD``."""

    def __init__(self, workdir: Path) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.auth_port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(binary):
            raise RuntimeError("mosquitto is not installed: run scripts/install-mosquitto.sh")
        passwords = self.workdir / "passwd"
        subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), MOSQUITTO_USER, MOSQUITTO_PASSWD],
                       check=True, capture_output=True)
        passwords.chmod(0o600)
        config = self.workdir / "mosquitto.conf"
        # As root, mosquitto would switch to user "mosquitto", who can't read pytest's tmp dirs.
        as_user = "user root\n" if os.geteuid() == 0 else ""
        config.write_text(
            f"{as_user}per_listener_settings true\npersistence false\nlog_dest stderr\n"
            f"listener {self.port} {self.host}\nallow_anonymous true\n"
            f"listener {self.auth_port} {self.host}\nallow_anonymous false\npassword_file {passwords}\n"
        )
        log = open(self.workdir / "mosquitto.log", "wb")
        self.proc = subprocess.Popen([binary, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {(self.workdir / 'mosquitto.log').read_text()}")
            try:
                for port in (self.port, self.auth_port):
                    socket.create_connection((self.host, port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("mosquitto did not listen within 10 s")

    def stop(self) -> None:
        stop_process(self.proc, timeout=5)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A real MQTT broker for the whole session; FAILS (never skips) when it can't start."""
    try:
        broker = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"Mosquitto could not start: {exc}", pytrace=False)
    yield broker
    broker.stop()


def line_within(lines: Iterator[str], wanted: Callable[[str], bool], seconds: float, what: str) -> str:
    """The first of a stream's ``lines`` (server-sent events) that is ``wanted``, within
    ``seconds``: a stream kept open by keep-alive comments must fail the test, not hang it.
    (Checked at each line: the dashboard's feed sends one at least every 15 s.)"""
    deadline = time.monotonic() + seconds
    seen: list[str] = []
    for line in lines:
        if wanted(line):
            return line
        seen.append(line)
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"{what}: not within {seconds:g} s; the stream said {seen[-10:]!r}")
