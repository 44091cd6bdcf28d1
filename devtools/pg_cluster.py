"""A throw-away PostgreSQL cluster on a free loopback port, for tests, benchmarks and local runs.

``initdb`` + ``pg_ctl`` from the Debian packages (``scripts/install-postgres.sh``),
data in a fresh temporary directory, trust authentication on 127.0.0.1 only. No fsync
(tests), or ``durable=True`` (benchmarks): fsync on, ``synchronous_commit=off``, the
durability of the SQLite store's ``synchronous=NORMAL`` (a commit survives the broker's
crash; the last ones may be lost on power loss).
A cluster whose creating process died without its teardown (a killed test run) is
stopped and removed by the next one that starts.
PostgreSQL refuses to run as root, so under root the server runs as the ``postgres``
user (created by the Debian package) through ``runuser``.

Used by the PostgreSQL test fixtures (``tests/broker/conftest.py``), the Orion cases on
PostgreSQL (``tests/orion_compat``) and ``bench/run.py --backend postgresql``; it lives
outside ``tests/`` so that the benchmark does not import the test suite.

Also a command for running the broker on PostgreSQL by hand (the Orion cases with
``WAZIUP_FT_DB``): ``python -m devtools.pg_cluster`` starts a cluster, prints
its URL, and removes it on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

INSTALL_HINT = "install PostgreSQL with scripts/install-postgres.sh"


class ClusterError(RuntimeError):
    """The cluster could not be created or started."""


def find_bindir() -> Path:
    """The bin directory of the newest installed PostgreSQL server."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        out = ""
    if out and (Path(out) / "initdb").exists():
        return Path(out)
    raise ClusterError(f"no PostgreSQL server (initdb) found: {INSTALL_HINT}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_orphans(bindir: Path) -> None:
    """Stop and remove the clusters left by test runs that were killed before their teardown."""
    for root in Path(tempfile.gettempdir()).glob(_PREFIX + "*"):
        try:
            owner = int((root / "owner").read_text())
        except (OSError, ValueError):
            continue  # being created, or not ours
        if _alive(owner):
            continue
        if (root / "data" / "postmaster.pid").exists():
            cmd = [str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "-w", "-t", "30", "stop"]
            if os.geteuid() == 0:
                cmd = ["runuser", "-u", "postgres", "--", *cmd]
            subprocess.run(cmd, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


_PREFIX = "waziup-pg-"


class Cluster:
    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        self.bindir = find_bindir()
        reap_orphans(self.bindir)
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix=_PREFIX))
        (self.root / "owner").write_text(str(os.getpid()))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise ClusterError(f"running as root and there is no 'postgres' user: {INSTALL_HINT}") from None
            self.user = "postgres"
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def start(self) -> Cluster:
        result = self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"
        )
        if result.returncode != 0:
            raise ClusterError(f"initdb failed ({result.returncode}): {result.stderr or result.stdout}")
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{self.root}'"
            " -c synchronous_commit=off -c max_connections=200"
        )
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off"
        result = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise ClusterError(f"pg_ctl start failed ({result.returncode}): {result.stderr or result.stdout}\n{log}")
        return self

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with psql (no driver needed); raises ClusterError on failure."""
        result = self._run(
            "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
            "-U", "postgres", "-d", database, "-c", sql,
        )
        if result.returncode != 0:
            raise ClusterError(f"psql failed: {result.stderr}")
        return result.stdout

    def url_of(self, database: str) -> str:
        return self.url.rsplit("/", 1)[0] + "/" + database

    def create_database(self, database: str, postgis: bool = True) -> str:
        """Create a database (with PostGIS when asked and installed) and return its URL.

        Done here rather than by the broker because ``CREATE EXTENSION postgis`` takes seconds.
        """
        self.psql(f"CREATE DATABASE {database}")
        if postgis and self.psql("SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'").strip() != "0":
            self.psql("CREATE EXTENSION postgis", database=database)
        return self.url_of(database)

    def postmaster_pid(self) -> int | None:
        """The server's main process (its backends are its children), None when not running."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def version(self) -> str:
        return self.psql("SHOW server_version").strip()

    def stop(self) -> None:
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop", timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Cluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def loopback_up() -> None:
    """Bring ``lo`` up: a fresh network namespace (``unshare -n``) starts with it down."""
    import fcntl
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        flags = struct.unpack("16sh", fcntl.ioctl(sock, siocgifflags, struct.pack("16sh", b"lo", 0)))[1]
        if not flags & iff_up:
            fcntl.ioctl(sock, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def main(argv: list[str] | None = None) -> int:
    """``python -m devtools.pg_cluster``: print the URL, wait for Ctrl-C / SIGTERM.

    ``python -m devtools.pg_cluster [--loopback-up] [--env NAME] -- COMMAND...`` runs COMMAND
    with the URL in ``$NAME`` (default ``DATABASE_URL``) and exits with its status; with
    ``unshare -n`` in front and ``--loopback-up``, cluster and command share a private network
    (how the Orion cases run on PostgreSQL beside another run of the kit on the same ports).
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m devtools.pg_cluster", description=main.__doc__)
    parser.add_argument("--env", default="DATABASE_URL", help="variable that gives COMMAND the cluster URL")
    parser.add_argument("--loopback-up", action="store_true", help="bring lo up first (in a new network namespace)")
    parser.add_argument("command", nargs="*", help="command to run (after --)")
    args = parser.parse_args(argv)
    if args.loopback_up:
        loopback_up()
    try:
        cluster = Cluster()
    except (ClusterError, OSError) as exc:
        print(f"PostgreSQL could not start: {exc}", file=sys.stderr, flush=True)
        return 3
    try:
        try:
            cluster.start()
        except (ClusterError, OSError) as exc:
            print(f"PostgreSQL could not start: {exc}", file=sys.stderr, flush=True)
            return 3
        if args.command:
            child = subprocess.Popen(args.command, env={**os.environ, args.env: cluster.url})

            def forward(signum: int, frame: object) -> None:
                child.send_signal(signum)

            signal.signal(signal.SIGTERM, forward)
            signal.signal(signal.SIGINT, forward)
            return child.wait()
        print(cluster.url, flush=True)
        # Blocked, Ctrl-C and SIGTERM are only waited for (no KeyboardInterrupt, no polling);
        # either one ends the wait, and the cluster is removed below.
        stopping = {signal.SIGTERM, signal.SIGINT}
        signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
        signal.sigwait(stopping)
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
