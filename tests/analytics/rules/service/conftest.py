"""The rules service's test harness: the app served in the test's event loop by uvicorn
on a loopback port, fed by a REAL broker process (``tests/conftest.py`` ``broker_process``,
which may notify loopback receivers), with a clock the test can move forward."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from analytics.rules.service.app import create_app
from analytics.rules.service.config import Config
from analytics.rules.service.store import RulesStore
from tests.conftest import BrokerProcess, free_port

TENANT = "openiot"
HEADERS = {"Fiware-Service": TENANT, "Fiware-ServicePath": "/"}
PG_DATABASE = "waziup_history_test"  # made by tests/analytics/conftest.py's pg_cluster


class Clock:
    """Wall time plus ``offset``: a test makes a minute pass with ``clock.offset += 60``."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    """One broker for a module: its tests keep apart by entity ids and rule names."""
    process = BrokerProcess(["-multiservice", "-dbURI", "memory://"]).start()
    yield process
    process.stop()


@pytest.fixture
def config(tmp_path: Path, broker: BrokerProcess) -> Config:
    port = free_port()
    return Config(port=port, host="127.0.0.1", db_uri=f"sqlite:///{tmp_path}/rules.db", broker_url=broker.url,
                  tick_interval=100, save_interval=3600, resubscribe_interval=3600, action_timeout=5)


class Running:
    def __init__(self, url: str, app: Any) -> None:
        self.url = url
        self.app = app
        self.http = httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=10)

    @property
    def service(self) -> Any:
        return self.app.state.service


@asynccontextmanager
async def serve(config: Config, clock: Callable[[], float] = time.time,
                store: RulesStore | None = None) -> AsyncIterator[Running]:
    """The service on ``config.port`` until the block ends (a clean shutdown: state saved)."""
    app = create_app(config, clock=clock, store=store)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=config.port, log_level="warning",
                                           lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the rules service did not start")
        await asyncio.sleep(0.01)
    running = Running(f"http://127.0.0.1:{config.port}", app)
    try:
        yield running
    finally:
        await running.http.aclose()
        server.should_exit = True
        await task


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ngsi(broker: BrokerProcess) -> Iterator[httpx.Client]:
    """A plain client of the broker, in the test tenant."""
    with httpx.Client(base_url=broker.url, headers=HEADERS, timeout=10) as client:
        yield client


async def eventually(check: Callable[[], Any], timeout: float = 5.0, every: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(every)


def with_port(config: Config) -> Config:
    return replace(config, port=free_port())


@pytest.fixture
def rules_pg_url(pg_cluster: Any) -> str:
    """The analytics tests' PostgreSQL database (``tests/analytics/conftest.py``), emptied of
    the rules service's tables."""
    pg_cluster.psql("DROP TABLE IF EXISTS rule_documents, rule_engine_state, rule_firings", database=PG_DATABASE)
    return str(pg_cluster.url_of(PG_DATABASE))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL of each persistent backend (PostgreSQL started only when asked for)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/rules.db"
    return str(request.getfixturevalue("rules_pg_url"))
