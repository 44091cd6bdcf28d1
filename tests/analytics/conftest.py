"""Fixtures of the history service's tests: PostgreSQL, stores of both backends, apps,
and the service as a real process.

One throw-away PostgreSQL cluster per test session (``devtools/pg_cluster.py``), with a
database of its own; its tables are dropped before each test that asks for ``pg_url``
(or each module, ``pg_module_url``, whose tests keep apart by tenant). The cluster FAILS
the tests that need it when PostgreSQL can't start (never a skip).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Self

import pytest

from analytics.history.store import HistoryStore, open_store
from devtools.pg_cluster import Cluster
from tests.pg import session_cluster
from tests.conftest import ServiceProcess, free_port

_DATABASE = "waziup_history_test"
# What a PostgreSQL history store creates, dropped instead of a database per test.
_RESET = ("DROP TABLE IF EXISTS history_series, history_points, history_hourly, history_daily, history_latest, "
          "history_cursors, history_meta, history_retention_rules CASCADE; DROP SEQUENCE IF EXISTS history_notifications")
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    yield from session_cluster(_DATABASE)


def _emptied(cluster: Cluster) -> str:
    cluster.psql(_RESET, database=_DATABASE)
    return cluster.url_of(_DATABASE)


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    """URL of the test database, emptied of what earlier tests stored."""
    return _emptied(pg_cluster)


@pytest.fixture(scope="module")
def pg_module_url(pg_cluster: Cluster) -> str:
    """The same, emptied once for a module whose tests each use a tenant of their own."""
    return _emptied(pg_cluster)


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/history.db"
    return str(request.getfixturevalue("pg_url"))  # asked for only here: SQLite runs start no PostgreSQL


@pytest.fixture(scope="module", params=BACKENDS)
def module_store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store URL of each backend for a module whose tests each use a tenant of their own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('history')}/history.db"
    return str(request.getfixturevalue("pg_module_url"))


@pytest.fixture
async def store(store_url: str, anyio_backend: str) -> AsyncIterator[HistoryStore]:
    the_store = open_store(store_url)
    await the_store.open()
    try:
        yield the_store
    finally:
        await the_store.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``pytest -n N --dist loadgroup`` the PostgreSQL tests share one worker, so one cluster."""
    for item in items:
        if not str(item.fspath).startswith(str(Path(__file__).parent)):
            continue
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        names = set(getattr(item, "fixturenames", ()))
        if "postgresql" in params.values() or {"pg_url", "pg_module_url", "pg_cluster"} & names:
            item.add_marker(pytest.mark.xdist_group("postgresql"))


class AnalyticsProcess(ServiceProcess):
    """``python -m <module>`` on a loopback port, as users start an analytics service
    (``port``: the same again after a restart; a free one by default)."""

    module: str
    what: str  # in start-up errors

    def __init__(self, args: list[str], port: int | None = None) -> None:
        self.port = free_port() if port is None else port
        self.args = args
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self.launch(["-m", self.module, "-host", "127.0.0.1", "-port", str(self.port), *self.args],
                    self.url + "/version", self.what)
        return self


class HistoryProcess(AnalyticsProcess):
    """The history service, in a process group of its own (``kill -9`` reaches everything
    it started)."""

    module = "analytics.history"
    what = "history service"
    new_session = True
