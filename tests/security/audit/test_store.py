"""The SQLite store on real files: appends, queries, the append-only triggers, the key,
pseudonymization down to the file's bytes, and concurrent writers (threads and processes)."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from security.audit.record import Event, verify
from security.audit.store import DB_FILE, KEY_FILE, AuditError, AuditStore

from .strategies import events

ROOT = Path(__file__).resolve().parents[3]


def test_appends_chain_and_survive_a_reopen(tmp_path: Path) -> None:
    store = AuditStore(tmp_path)
    first = store.append(Event("alice", "signin", source="192.0.2.1", decision="allow"))
    second = store.append(Event("bob", "signin.failed", source="192.0.2.2", decision="deny", reason="bad password"))
    store.close()
    assert (first.seq, second.seq) == (1, 2)
    store = AuditStore(tmp_path, create=False)
    assert [r.hash for r in store.records()] == [first.hash, second.hash]
    assert store.anchor() is not None and store.anchor().seq == 2  # type: ignore[union-attr]
    assert verify(store.records(), store.key, store.anchor()).ok
    store.close()


def test_the_key_is_made_once_and_private(tmp_path: Path) -> None:
    AuditStore(tmp_path).close()
    key_file = tmp_path / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    before = key_file.read_text()
    store = AuditStore(tmp_path)
    assert key_file.read_text() == before and store.key == bytes.fromhex(before.strip())
    store.close()


def test_an_unkeyed_store_has_no_key_file(tmp_path: Path) -> None:
    store = AuditStore(tmp_path, keyed=False)
    record = store.append(Event("a", "export"))
    assert store.key is None and not (tmp_path / KEY_FILE).exists()
    assert verify([record]).ok
    store.close()


def test_opening_a_missing_log_without_create_fails(tmp_path: Path) -> None:
    with pytest.raises(AuditError):
        AuditStore(tmp_path / "nothing", create=False)


def test_queries_filter_and_page(tmp_path: Path) -> None:
    times = iter(f"2026-01-0{d}T00:00:00.000000Z" for d in range(1, 10))
    store = AuditStore(tmp_path, clock=lambda: next(times))
    for actor, action, tenant in [("a", "signin", "t1"), ("b", "signin", "t2"), ("a", "export", "t1"),
                                  ("a", "signin", "t2"), ("c", "erasure", "t1")]:
        store.append(Event(actor, action, tenant=tenant))

    def seqs(**filters: Any) -> list[int]:
        return [r.seq for r in store.query(**filters)]

    assert seqs(actor="a") == [1, 3, 4]
    assert seqs(actor="a", action="signin") == [1, 4]
    assert seqs(tenant="t1") == [1, 3, 5]
    assert seqs(since="2026-01-02T00:00:00.000000Z", until="2026-01-04T00:00:00.000000Z") == [2, 3]
    assert seqs(limit=2, offset=1) == [2, 3]
    store.close()


def test_updates_and_deletes_are_refused(tmp_path: Path) -> None:
    store = AuditStore(tmp_path)
    store.append(Event("alice", "signin"))
    store.close()
    db = sqlite3.connect(tmp_path / DB_FILE)
    for sql in ("DELETE FROM audit_records", "UPDATE audit_records SET action = 'export'",
                "UPDATE audit_records SET actor = 'mallory'"):  # a personal field, salt kept
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(sql)
    db.close()


def test_pseudonymization_keeps_the_chain_and_erases_the_bytes(tmp_path: Path) -> None:
    victim, email = "user-7f3a9c1e-victim", "victim.person@example.org"
    store = AuditStore(tmp_path)
    for i in range(50):
        store.append(Event("someone-else", "export", target="urn:ngsi:Device:1", details={"n": i}))
        store.append(Event(victim, "signin", source="198.51.100.77", details={"email": email}))
        store.append(Event("admin", "role.changed", target=victim, details={"role": "owner", "of": victim}))
    done = store.pseudonymize(victim, "pseudonym:41", aliases=[email], by="admin")
    assert done.details["seqs"] == [s for s in range(1, 151) if s % 3 != 1]
    report = verify(store.records(), store.key, store.anchor())
    assert report.ok and report.pseudonymized == 100, report
    assert [r.seq for r in store.query(actor=victim)] == []
    assert len(store.query(actor="pseudonym:41")) == 50
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(DB_FILE))
    for secret in (victim, email, "198.51.100.77"):
        assert secret.encode() not in raw, secret
    assert b"urn:ngsi:Device:1" in raw  # what is not about the victim stays


def test_a_second_pseudonymization_leaves_the_first_alone(tmp_path: Path) -> None:
    store = AuditStore(tmp_path)
    store.append(Event("u1", "signin"))
    store.append(Event("u2", "signin", target="u1"))
    store.pseudonymize("u1", "p1")
    store.pseudonymize("u2", "p2")
    assert [(r.actor, r.target) for r in store.records()[:2]] == [("p1", ""), ("p2", "p1")]
    assert verify(store.records(), store.key).ok
    store.close()


def test_concurrent_threads_make_a_gap_free_chain(tmp_path: Path) -> None:
    store = AuditStore(tmp_path)

    def work(n: int) -> None:
        for i in range(25):
            store.append(Event(f"t{n}", "token.issued", details={"i": i}))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = store.records()
    assert [r.seq for r in records] == list(range(1, 201))
    assert verify(records, store.key, store.anchor()).ok
    store.close()


_WRITER = """
import sys
from security.audit.record import Event
from security.audit.store import AuditStore
store = AuditStore(sys.argv[1])
for i in range(40):
    store.append(Event(sys.argv[2], "request.denied", decision="deny", details={"i": i}))
store.close()
"""


def test_concurrent_processes_make_a_gap_free_chain(tmp_path: Path) -> None:
    AuditStore(tmp_path).close()  # the key made before the writers race for it
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), f"p{n}"], cwd=ROOT) for n in range(4)]
    assert [w.wait(timeout=60) for w in writers] == [0] * 4
    store = AuditStore(tmp_path, create=False)
    records = store.records()
    assert [r.seq for r in records] == list(range(1, 161))
    assert verify(records, store.key, store.anchor()).ok
    store.close()


_COLUMNS = st.sampled_from(["time", "actor", "actor_kind", "action", "target", "tenant", "source", "decision",
                            "reason", "details", "commitment"])


@settings(max_examples=25, deadline=None)
@given(st.lists(events, min_size=1, max_size=6), st.data())
def test_any_sql_edit_of_a_stored_record_is_named(batch: list[Event], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = AuditStore(folder)
        for event in batch:
            store.append(event)
        assert verify(store.records(), store.key, store.anchor()).ok
        seq = data.draw(st.integers(1, len(batch)))
        column = data.draw(_COLUMNS)
        value = '{"forged": true}' if column == "details" else "forged-value"
        db = sqlite3.connect(Path(folder) / DB_FILE)
        db.executescript("DROP TRIGGER audit_only_pseudonymize")
        changed = db.execute(f"UPDATE audit_records SET {column} = ? WHERE seq = ? AND {column} != ?",
                             (value, seq, value)).rowcount
        db.commit()
        db.close()
        report = verify(store.records(), store.key, store.anchor())
        store.close()
        assert report.ok if not changed else (report.bad_seq, report.problem) == (seq, "altered")


@settings(max_examples=10, deadline=None)
@given(st.lists(events, min_size=1, max_size=8), st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=16,
                                                          max_size=24), st.data())
def test_any_pseudonymized_id_leaves_the_file_and_the_chain_holds(
    batch: list[Event], victim: str, data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = AuditStore(folder)
        for event in batch:
            role = data.draw(st.sampled_from(["actor", "target", "details", "none"]))
            if role == "details":
                event = Event(event.actor, event.action, details={"user": victim, **event.details})
            elif role != "none":
                event = Event(**{**event.__dict__, role: victim})
            store.append(event)
        store.pseudonymize(victim, "pseudonym:x", by="admin")
        assert verify(store.records(), store.key, store.anchor()).ok
        store.close()
        raw = b"".join(p.read_bytes() for p in Path(folder).iterdir() if p.name.startswith(DB_FILE))
        assert victim.encode() not in raw
