"""The broker most manual modules run against: one per module and store kind, SQLite and
PostgreSQL (``store``, named so that tests/broker/conftest.py puts the PostgreSQL runs on
one xdist worker), allowed to call the tests' own receivers and providers on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker.api_client import ApiClient, broker_client

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
