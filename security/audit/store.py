"""The audit log's SQLite store: ``<data>/audit.db``, append-only.

WAL with ``synchronous=FULL`` (an appended record survives a power cut once ``append``
returns) and ``secure_delete`` (the bytes a pseudonymization replaces are zeroed, not left
in free pages). Appends take ``BEGIN IMMEDIATE`` under a lock, so one writer at a time
extends the chain, across threads and processes alike. Triggers refuse DELETE, and any
UPDATE but the pseudonymization's (salt dropped, hashed columns untouched): they catch
bugs, not an attacker with the file, whom verification is for (docs/audit.md).

After each append the head (seq, hash) is written to ``<data>/audit.head``: a log cut
short behind the store's back then fails verification as ``truncated``.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .record import PSEUDONYMIZED, Anchor, Event, Record, format_time, mentions, pseudonymized, seal

log = logging.getLogger("waziup.audit")

DB_FILE, KEY_FILE, HEAD_FILE = "audit.db", "audit.key", "audit.head"
MAX_LIMIT = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_records (
    seq INTEGER PRIMARY KEY, time TEXT NOT NULL, actor TEXT NOT NULL, actor_kind TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL, tenant TEXT NOT NULL, source TEXT NOT NULL,
    decision TEXT NOT NULL, reason TEXT NOT NULL, details TEXT NOT NULL, salt TEXT,
    commitment TEXT NOT NULL, hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_actor ON audit_records (actor, seq);
CREATE INDEX IF NOT EXISTS audit_by_action ON audit_records (action, seq);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit_records (time);
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit_records
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_only_pseudonymize BEFORE UPDATE ON audit_records
WHEN NEW.salt IS NOT NULL OR NEW.seq IS NOT OLD.seq OR NEW.time IS NOT OLD.time
  OR NEW.actor_kind IS NOT OLD.actor_kind OR NEW.action IS NOT OLD.action OR NEW.tenant IS NOT OLD.tenant
  OR NEW.decision IS NOT OLD.decision OR NEW.reason IS NOT OLD.reason OR NEW.commitment IS NOT OLD.commitment
  OR NEW.hash IS NOT OLD.hash
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only (only pseudonymization may change a record)'); END;
"""
COLUMNS = ("seq", "time", "actor", "actor_kind", "action", "target", "tenant", "source", "decision", "reason",
            "details", "salt", "commitment", "hash")


class AuditError(Exception):
    """The audit store cannot be opened or written."""


def load_key(path: Path, *, create: bool) -> bytes | None:
    """The chain's HMAC key: 32 random bytes, hex, in a file only its owner reads (0600).
    Made on first use when ``create``; None when absent and not ``create`` (unkeyed chain)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        if not create:
            return None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # made by another process meanwhile
            return load_key(path, create=False)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
        text = path.read_text()
    if os.stat(path).st_mode & 0o077:
        log.warning("audit key %s is readable by others than its owner: whoever reads it can rebuild the chain", path)
    try:
        key = bytes.fromhex(text.strip())
    except ValueError as exc:
        raise AuditError(f"audit key {path}: expected hex digits") from exc
    if len(key) < 16:
        raise AuditError(f"audit key {path}: too short ({len(key)} bytes, 16 at least)")
    return key


def read_anchor(data_dir: Path) -> Anchor | None:
    try:
        found = json.loads((data_dir / HEAD_FILE).read_text())
        return Anchor(int(found["seq"]), str(found["hash"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise AuditError(f"{data_dir / HEAD_FILE}: not an audit head ({exc})") from exc


def utcnow() -> str:
    return format_time(datetime.datetime.now(datetime.UTC))


def row_record(row: sqlite3.Row | tuple[Any, ...]) -> Record:
    values = dict(zip(COLUMNS, row, strict=True))
    try:
        details = json.loads(values["details"])
    except (TypeError, ValueError):
        details = None
    # A row edited by hand may hold anything: kept visible, it fails its commitment.
    values["details"] = details if isinstance(details, dict) else {"unreadable": str(values["details"])}
    return Record(**values)


def details_text(details: Mapping[str, Any]) -> str:
    """How ``details`` are stored (ASCII JSON, which ``mention_filter`` searches)."""
    return json.dumps(dict(details), sort_keys=True)


def mention_filter(names: Iterable[str], find: str = "instr") -> tuple[str, list[str]]:
    """A WHERE clause (``?`` parameters) narrowing to rows naming one of ``names`` in
    actor, target or details; :func:`~.record.mentions` decides on each row found. ``find``
    is the substring function (SQLite's ``instr``, PostgreSQL's ``strpos``)."""
    wanted = sorted(names)
    clause = " OR ".join(["actor = ?", "target = ?", f"{find}(details, ?) > 0"] * len(wanted))
    return clause, [v for n in wanted for v in (n, n, json.dumps(n)[1:-1])]


def where(actor: str | None, action: str | None, tenant: str | None, since: str | None,
          until: str | None) -> tuple[str, list[str]]:
    """The WHERE clause (``?`` parameters, or "") of a query's filters."""
    terms, args = [], []
    for column, value, op in (("actor", actor, "="), ("action", action, "="), ("tenant", tenant, "="),
                              ("time", since, ">="), ("time", until, "<")):
        if value is not None:
            terms.append(f"{column} {op} ?")
            args.append(value)
    return (" WHERE " + " AND ".join(terms) if terms else ""), args


class AuditStore:
    """The records of one data directory. Thread-safe (one connection, one lock)."""

    def __init__(self, data_dir: str | os.PathLike[str], *, keyed: bool = True, create: bool = True,
                 clock: Callable[[], str] = utcnow) -> None:
        self.data_dir = Path(data_dir)
        path = self.data_dir / DB_FILE
        if not create and not path.exists():
            raise AuditError(f"no audit log at {path}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.key = load_key(self.data_dir / KEY_FILE, create=create and keyed) if keyed else None
        self._clock = clock
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            for pragma in ("synchronous=FULL", "secure_delete=ON", "busy_timeout=30000"):
                self._db.execute(f"PRAGMA {pragma}")
            if create:
                self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise AuditError(f"audit log {path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _insert(self, event: Event) -> Record:
        """Within a write transaction: the next record, sealed and inserted."""
        last = self._db.execute("SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1").fetchone()
        seq, previous = (last[0] + 1, last[1]) if last else (1, "00" * 32)
        record = seal(event, seq, self._clock(), previous, self.key)
        row = [getattr(record, c) for c in COLUMNS]
        row[COLUMNS.index("details")] = details_text(record.details)
        self._db.execute(f"INSERT INTO audit_records VALUES ({', '.join('?' * len(COLUMNS))})", row)
        return record

    def _write_head(self, record: Record) -> None:
        """After the commit: the record is stored whatever happens here, so a failure is
        only logged (verification then checks against an older head, which is weaker)."""
        temporary = self.data_dir / f".{HEAD_FILE}.{os.getpid()}.{threading.get_ident()}"
        try:
            temporary.write_text(json.dumps({"seq": record.seq, "hash": record.hash}) + "\n")
            os.replace(temporary, self.data_dir / HEAD_FILE)
        except OSError as exc:
            log.error("audit head %s not updated to record %d: %s", self.data_dir / HEAD_FILE, record.seq, exc)

    def append(self, event: Event) -> Record:
        """Seal and store ``event`` as the chain's next record (durable on return)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    record = self._insert(event)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._write_head(record)
            except sqlite3.Error as exc:
                raise AuditError(f"audit append failed: {exc}") from exc
        return record

    def query(self, *, actor: str | None = None, action: str | None = None, tenant: str | None = None,
              since: str | None = None, until: str | None = None, limit: int = 100, offset: int = 0) -> list[Record]:
        """Records matching every filter given, oldest first; ``since``/``until`` are record
        times (``record.parse_time``), ``since`` inclusive, ``until`` exclusive."""
        clause, args = where(actor, action, tenant, since, until)
        sql = f"SELECT * FROM audit_records{clause} ORDER BY seq LIMIT ? OFFSET ?"
        return self._read(sql, [*args, max(0, min(limit, MAX_LIMIT)), max(0, offset)])

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Record]:
        try:
            with self._lock:
                rows = self._db.execute(sql, args).fetchall()
            return [row_record(r) for r in rows]
        except (sqlite3.Error, TypeError, ValueError) as exc:  # a row of another shape
            raise AuditError(f"audit log unreadable: {exc}") from exc

    def records(self) -> list[Record]:
        """Every record in stored order (what verification reads)."""
        return self._read("SELECT * FROM audit_records ORDER BY rowid")

    def anchor(self) -> Anchor | None:
        return read_anchor(self.data_dir)

    def pseudonymize(self, actor_id: str, pseudonym: str, *, aliases: Iterable[str] = (), by: str = "",
                     by_kind: str = "service") -> Record:
        """Replace ``actor_id`` (and ``aliases``: a username, an e-mail) in every record
        about it by ``pseudonym``, blank those records' source addresses and drop their
        salts, then append an ``audit.pseudonymized`` record listing their seqs (by
        ``by``). The chain verifies as before; the original values are gone from the file
        and its WAL once this returns. Returns the appended record."""
        names = {actor_id, *aliases} - {""}
        if not names or pseudonym in names:
            raise ValueError("pseudonymize needs an id and a different pseudonym")
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    # SQL narrows to rows naming one of ``names`` somewhere; ``mentions`` decides.
                    clause, args = mention_filter(names)
                    found = [row_record(r) for r in self._db.execute(
                        f"SELECT * FROM audit_records WHERE {clause} ORDER BY seq", args)]
                    changed = [pseudonymized(r, names, pseudonym) for r in found if mentions(r, names)]
                    for r in changed:
                        self._db.execute(
                            "UPDATE audit_records SET actor = ?, target = ?, source = ?, details = ?, salt = NULL "
                            "WHERE seq = ?", (r.actor, r.target, r.source, details_text(r.details), r.seq))
                    record = self._insert(Event(by or "audit", PSEUDONYMIZED, actor_kind=by_kind, target=pseudonym,
                                                details={"pseudonym": pseudonym, "seqs": [r.seq for r in changed]}))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._write_head(record)
                # The old values may still sit in WAL frames: copy the WAL in and empty it.
                busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                if busy:
                    log.warning("audit pseudonymization: another reader kept the WAL; old values stay in "
                                "%s-wal until the next checkpoint", self.data_dir / DB_FILE)
            except sqlite3.Error as exc:
                raise AuditError(f"audit pseudonymization failed: {exc}") from exc
        return record
