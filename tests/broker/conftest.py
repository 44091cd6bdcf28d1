"""PostgreSQL fixtures for every broker test (store contract, workers, durability).

One throw-away cluster per test session (``devtools/pg_cluster.py``), its test database
emptied for each test. The cluster FAILS the tests that need it when PostgreSQL can't
start (never a skip): a machine without PostgreSQL must not pass the suite silently.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.pg_cluster import Cluster, ClusterError

_DATABASE = "waziup_test"
# What a PostgresStore creates; dropped before each test instead of a database per test,
# which costs seconds and ~10 MB each (PostGIS's spatial_ref_sys) on a busy machine.
_RESET = "DROP TABLE IF EXISTS entities, subscriptions, registrations CASCADE; DROP FUNCTION IF EXISTS waziup_geom(text)"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A running cluster with a test database that has PostGIS when installed."""
    try:
        cluster = Cluster().start()
    except (ClusterError, OSError) as exc:
        pytest.fail(f"PostgreSQL could not start: {exc}", pytrace=False)
    try:
        cluster.psql(f"CREATE DATABASE {_DATABASE}")
        available = cluster.psql("SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'").strip()
        if available != "0":
            # Created once here: CREATE EXTENSION postgis takes seconds.
            cluster.psql("CREATE EXTENSION postgis", database=_DATABASE)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    """URL of the test database, emptied of what earlier tests stored."""
    pg_cluster.psql(_RESET, database=_DATABASE)
    return pg_cluster.url.rsplit("/", 1)[0] + "/" + _DATABASE


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``pytest -n N --dist loadgroup`` the PostgreSQL tests share one worker, so one cluster."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = "pg_url" in getattr(item, "fixturenames", ()) or (
            callspec is not None and callspec.params.get("store") == "postgresql"
        )
        if on_postgres:
            item.add_marker(pytest.mark.xdist_group("postgresql"))
