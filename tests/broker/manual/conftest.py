"""The broker most manual modules run against: one per module and store kind, SQLite and
PostgreSQL (``store``, named so that tests/broker/conftest.py puts the PostgreSQL runs on
one xdist worker), allowed to call the tests' own receivers and providers on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import httpx
import pytest

from tests.broker.api_client import ApiClient, broker_client, new_id

LOOPBACK = ("127.0.0.1",)  # -notifAllowedHosts: the tests' receivers and context providers


def fresh_store(request: pytest.FixtureRequest, kind: str, directory: Path, suffix: str = "") -> str:
    """The -dbURI of an empty store: an SQLite file in ``directory``, or a database of the
    test module's own (plus ``suffix``) on the session's PostgreSQL (``pg_url``'s is emptied
    by other tests)."""
    if kind == "sqlite":
        return f"sqlite:///{directory / 'broker.db'}"
    cluster = request.getfixturevalue("pg_cluster")
    name = "manual_" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_") + suffix
    cluster.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return str(cluster.create_database(name))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return fresh_store(request, request.param, tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def client(store: str) -> Iterator[ApiClient]:
    with broker_client(store, notif_allowed_hosts=LOOPBACK) as c:
        yield c


class LoopbackServer:
    """An HTTP server of a test's own on a free loopback port (``base``), a thread per
    request; a context manager that shuts it down. The receivers and context providers
    subclass it with the handler that keeps and answers their requests."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TenantApi:
    """One test's view of the broker: a tenant of its own, so that tests share one broker
    per store, and ``prefix``, the test's paths on its loopback servers."""

    def __init__(self, client: ApiClient, tenant: str) -> None:
        self.client, self.tenant = client, tenant
        self.prefix = "/" + tenant

    def headers(self, service_path: str | None = None, **extra: str) -> dict[str, str]:
        headers = {"Fiware-Service": self.tenant}
        if service_path is not None:
            headers["Fiware-ServicePath"] = service_path
        headers.update(extra)
        return headers


class TenantEntities:
    """The entities of one test, in a tenant of its own (named by ``headers``, from
    ``prefix``), created in the order given."""

    def __init__(self, client: ApiClient, prefix: str) -> None:
        self.client = client
        self.headers = {"Fiware-Service": new_id(prefix).lower()}

    def add(self, *entities: dict[str, Any], options: str | None = None) -> None:
        """POST /v2/entities of each entity (``options``: "keyValues", "upsert"...), which must be created."""
        params = {"options": options} if options else None
        for entity in entities:
            response = self.client.post("/v2/entities", json=entity, params=params, headers=self.headers)
            assert response.status_code == 201, response.text

    def get(self, path: str = "/v2/entities", accept: str | None = None, **params: str) -> httpx.Response:
        headers = dict(self.headers, **({"Accept": accept} if accept is not None else {}))
        return self.client.get(path, params=params, headers=headers)
