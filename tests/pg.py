"""The throw-away PostgreSQL cluster of a test session (``devtools/pg_cluster.py``), shared by
the conftests that need one: started once, with a database of the suite's own, and FAILING
the tests that need it when PostgreSQL can't start (never a skip: a machine without
PostgreSQL must not pass the suite silently)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.pg_cluster import Cluster, ClusterError


def session_cluster(database: str, *, postgis: bool = False) -> Iterator[Cluster]:
    """Body of a session fixture: the running cluster with ``database`` (PostGIS in it when
    asked for and installed; CREATE EXTENSION takes seconds, so once here)."""
    try:
        cluster = Cluster().start()
    except (ClusterError, OSError) as exc:
        pytest.fail(f"PostgreSQL could not start: {exc}", pytrace=False)
    try:
        cluster.psql(f"CREATE DATABASE {database}")
        if postgis:
            available = cluster.psql("SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'").strip()
            if available != "0":
                cluster.psql("CREATE EXTENSION postgis", database=database)
        yield cluster
    finally:
        cluster.stop()
