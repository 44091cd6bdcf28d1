"""The same log on PostgreSQL (the session's throw-away cluster, ``tests/pg.py``) and on
SQLite, through ``AuditLog``: appends from concurrent tasks, queries, pseudonymization,
the append-only trigger, and ``waziup audit verify -dbURI`` on a tampered row."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from devtools.pg_cluster import Cluster
from security.audit.log import AuditLog
from security.audit.postgres import PgAuditStore
from security.audit.record import Event
from tests.pg import session_cluster

pytestmark = pytest.mark.anyio
_DATABASE = "waziup_audit_test"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[Cluster]:
    yield from session_cluster(_DATABASE)


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    pg_cluster.psql("DROP TABLE IF EXISTS audit_records", database=_DATABASE)
    return pg_cluster.url_of(_DATABASE)


@pytest.fixture(params=["sqlite", "postgresql"])
async def audit(request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str) -> AsyncIterator[AuditLog]:
    url = "" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    log = await AuditLog.connect(tmp_path, url)
    yield log
    await log.aclose()


async def test_concurrent_records_chain_and_verify(audit: AuditLog) -> None:
    done = await asyncio.gather(*(audit.record(actor=f"u{i % 5}", action="token.issued", tenant="farm")
                                  for i in range(60)))
    assert sorted(r.seq for r in done if r) == list(range(1, 61))
    mine = sorted(r.seq for r in done if r and r.actor == "u1")
    assert [r.seq for r in await audit.query(actor="u1", limit=3)] == mine[:3]
    report = await audit.verify()
    assert report.ok and report.count == 60


async def test_pseudonymization_keeps_the_chain(audit: AuditLog) -> None:
    await audit.record(actor="victim", action="signin", source="198.51.100.7")
    await audit.record(actor="admin", action="role.changed", target="victim", details={"user": "victim"})
    await audit.record(actor="other", action="signin", source="198.51.100.8")
    done = await audit.pseudonymize("victim", "pseudonym:9", by="admin")
    assert done.details["seqs"] == [1, 2]
    rows = await audit.query()
    assert [(r.actor, r.target, r.source) for r in rows[:3]] == [
        ("pseudonym:9", "", ""), ("admin", "pseudonym:9", ""), ("other", "", "198.51.100.8")]
    assert (await audit.verify()).ok


async def test_postgres_refuses_updates_and_deletes(tmp_path: Path, pg_url: str) -> None:
    store = PgAuditStore(pg_url, tmp_path)
    await store.open()
    await store.append(Event("a", "signin"))
    await store.close()
    db = await asyncpg.connect(pg_url)
    try:
        for sql in ("DELETE FROM audit_records", "UPDATE audit_records SET action = 'export'",
                    "UPDATE audit_records SET actor = 'mallory'"):
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await db.execute(sql)
    finally:
        await db.close()


async def test_the_cli_names_a_tampered_row_on_postgres(tmp_path: Path, pg_url: str) -> None:
    log = await AuditLog.connect(tmp_path, pg_url)
    for i in range(4):
        await log.record(actor=f"user{i}", action="signin")
    await log.aclose()

    def verify() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "security.audit.cli", "verify", "-data", str(tmp_path),
                               "-dbURI", pg_url], cwd=ROOT, capture_output=True, text=True, timeout=60)

    done = await asyncio.to_thread(verify)
    assert done.returncode == 0 and done.stdout.startswith("chain intact: 4 records"), done.stdout + done.stderr
    db = await asyncpg.connect(pg_url)
    await db.execute("ALTER TABLE audit_records DISABLE TRIGGER audit_append_only;"
                     "UPDATE audit_records SET reason = 'forged' WHERE seq = 3")
    await db.close()
    done = await asyncio.to_thread(verify)
    assert done.returncode == 1 and done.stdout.startswith("chain BROKEN at record 3 (altered)"), done.stdout
