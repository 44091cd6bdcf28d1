"""``AuditLog`` from asyncio: concurrent records, fail-open by default, strict on demand."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from security.audit.log import AuditLog
from security.audit.store import AuditError

pytestmark = pytest.mark.anyio


async def test_concurrent_records_make_a_gap_free_chain(tmp_path: Path) -> None:
    audit = AuditLog.open(tmp_path)
    done = await asyncio.gather(*(audit.record(actor=f"u{i}", action="signin", source="192.0.2.1") for i in range(100)))
    assert sorted(r.seq for r in done if r) == list(range(1, 101))
    report = await audit.verify()
    assert report.ok and report.count == 100
    assert [r.seq for r in await audit.query(action="signin", limit=3)] == [1, 2, 3]
    audit.close()


async def test_a_failure_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    audit = AuditLog.open(tmp_path)
    audit.close()  # every write now fails
    with caplog.at_level(logging.ERROR, logger="waziup.audit"):
        assert await audit.record(actor="alice", action="signin") is None
        assert await audit.record(actor="alice", action="") is None  # a bad event is not the caller's crash either
    assert audit.lost == 2
    assert "AUDIT RECORD LOST" in caplog.text


async def test_strict_raises(tmp_path: Path) -> None:
    audit = AuditLog.open(tmp_path, strict=True)
    assert (await audit.record(actor="alice", action="export")) is not None
    audit.close()
    with pytest.raises(AuditError):
        await audit.record(actor="alice", action="export")


async def test_pseudonymize_through_the_log(tmp_path: Path) -> None:
    audit = AuditLog.open(tmp_path)
    await audit.record(actor="alice", action="signin")
    done = await audit.pseudonymize("alice", "pseudonym:1", by="admin")
    assert done.details["seqs"] == [1]
    assert (await audit.query(actor="pseudonym:1"))[0].seq == 1
    assert (await audit.verify()).ok
    audit.close()


async def test_strict_wraps_a_bad_event(tmp_path: Path) -> None:
    audit = AuditLog.open(tmp_path, strict=True)
    with pytest.raises(AuditError, match="actor_kind"):
        await audit.record(actor="alice", action="signin", actor_kind="robot")
    audit.close()
