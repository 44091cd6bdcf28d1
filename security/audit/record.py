"""Audit records and their hash chain: pure logic, no I/O.

A record's hash covers its public fields (seq, time, actor kind, action, tenant, decision,
reason) and a *commitment* to its personal fields (actor, target, source address, details),
never the personal fields themselves::

    commitment_n = SHA-256(salt_n || canonical(personal_n))
    h_n          = SHA-256(h_{n-1} || canonical(public_n + commitment_n))   (unkeyed)
    h_n          = HMAC-SHA-256(key, h_{n-1} || canonical(...))            (keyed)

with ``h_0`` 32 zero bytes. While the salt is kept, verification recomputes the commitment
from the stored personal fields, so altering them is detected. Pseudonymization (erasure of
a user) replaces the personal fields and drops the salt: the commitment, and so the chain,
is unchanged, and without the salt the commitment no longer links the record to the
original values. A record without salt is accepted only if a later (chained)
``audit.pseudonymized`` record lists its seq, so dropping a salt to hide an alteration is
detected too.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

GENESIS = "00" * 32
PSEUDONYMIZED = "audit.pseudonymized"  # the action of the record a pseudonymization appends
ACTOR_KINDS = frozenset({"user", "app", "service", "anonymous"})
# The actions services record (others are accepted: the list documents, it does not restrict).
ACTIONS = (
    "signin", "signin.failed", "token.issued", "token.revoked", "request.denied", "policy.changed",
    "role.changed", "export", "erasure", "app.deployed", "app.undeployed", PSEUDONYMIZED,
)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class Event:
    """What a service reports: who (``actor`` and its kind), did what (``action``) to what
    (``target``), in which tenant, from where (``source``: the client's address), with
    which ``decision`` (e.g. ``allow``/``deny``) and why (``reason``)."""

    actor: str
    action: str
    actor_kind: str = "user"
    target: str = ""
    tenant: str = ""
    source: str = ""
    decision: str = ""
    reason: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.action:
            raise ValueError("an audit event needs an action")
        if self.actor_kind not in ACTOR_KINDS:
            raise ValueError(f"actor_kind {self.actor_kind!r}: expected one of {sorted(ACTOR_KINDS)}")


@dataclass(frozen=True)
class Record:
    """A sealed event: its place in the chain (``seq``, ``hash``), the time, the event's
    fields and the commitment to its personal fields (``salt`` is None once pseudonymized)."""

    seq: int
    time: str
    actor: str
    actor_kind: str
    action: str
    target: str
    tenant: str
    source: str
    decision: str
    reason: str
    details: Mapping[str, Any]
    salt: str | None
    commitment: str
    hash: str

    def as_json(self) -> dict[str, Any]:
        """The record for the API and ``-json`` (the salt left out: it is what would let a
        reader test guesses against a pseudonymized record's commitment)."""
        out = {name: getattr(self, name) for name in _SHOWN}
        out["details"] = dict(self.details)
        out["pseudonymized"] = self.salt is None
        return out


_SHOWN = ("seq", "time", "actor", "actor_kind", "action", "target", "tenant", "source", "decision", "reason",
          "details", "commitment", "hash")


def canonical(value: Any) -> bytes:
    """The one serialization that is hashed: JSON, keys sorted, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def personal(actor: str, target: str, source: str, details: Mapping[str, Any]) -> dict[str, Any]:
    return {"actor": actor, "target": target, "source": source, "details": dict(details)}


def commit(salt: str, fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + canonical(fields)).hexdigest()


def public(record: Record) -> dict[str, Any]:
    """What the chain hash covers besides the previous hash."""
    return {"seq": record.seq, "time": record.time, "actor_kind": record.actor_kind, "action": record.action,
            "tenant": record.tenant, "decision": record.decision, "reason": record.reason,
            "commitment": record.commitment}


def chain_hash(previous: str, record: Record, key: bytes | None) -> str:
    message = bytes.fromhex(previous) + canonical(public(record))
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def format_time(moment: datetime.datetime) -> str:
    """Fixed width, UTC: records' times compare as strings (the store's ``since``/``until``)."""
    return moment.astimezone(datetime.UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> str:
    """An ISO 8601 date or time (naive means UTC) in the records' format, for queries."""
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return format_time(moment)


def seal(event: Event, seq: int, time: str, previous: str, key: bytes | None, salt: str | None = None) -> Record:
    """The record of ``event`` at ``seq`` after the record hashed ``previous``."""
    salt = salt if salt is not None else secrets.token_hex(16)
    details = json.loads(canonical(dict(event.details)))  # JSON values only, and a copy the caller cannot change
    commitment = commit(salt, personal(event.actor, event.target, event.source, details))
    draft = Record(seq, time, event.actor, event.actor_kind, event.action, event.target, event.tenant,
                   event.source, event.decision, event.reason, details, salt, commitment, "")
    return replace(draft, hash=chain_hash(previous, draft, key))


def _replaced(value: Any, names: frozenset[str], pseudonym: str) -> Any:
    if isinstance(value, str):
        return pseudonym if value in names else value
    if isinstance(value, list):
        return [_replaced(item, names, pseudonym) for item in value]
    if isinstance(value, dict):
        return {_replaced(k, names, pseudonym): _replaced(v, names, pseudonym) for k, v in value.items()}
    return value


def mentions(record: Record, names: Iterable[str]) -> bool:
    """Whether ``record`` is about one of ``names`` (actor, target, or a value in details)."""
    wanted = frozenset(names)
    return (record.actor in wanted or record.target in wanted
            or _replaced(dict(record.details), wanted, "\0") != dict(record.details))


def pseudonymized(record: Record, names: Iterable[str], pseudonym: str) -> Record:
    """``record`` with every personal value in ``names`` replaced by ``pseudonym``, its
    source address blanked when the actor is one of ``names`` (the address is the actor's)
    and its salt dropped; its commitment and hash are unchanged."""
    wanted = frozenset(names)
    return replace(record, actor=_replaced(record.actor, wanted, pseudonym),
                   target=_replaced(record.target, wanted, pseudonym),
                   source="" if record.actor in wanted else record.source,
                   details=_replaced(dict(record.details), wanted, pseudonym), salt=None)


@dataclass(frozen=True)
class Anchor:
    """A (seq, hash) kept apart from the log (``audit.head``, or written down by an admin):
    a log that ends before ``seq``, or has another hash there, was truncated or rebuilt."""

    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Anchor:
        seq, _, digest = text.strip().partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise ValueError(f"anchor {text!r}: expected SEQ:HASH (64 hex digits)")
        return cls(int(seq), digest.lower())


@dataclass(frozen=True)
class Report:
    """The outcome of :func:`verify`: ``bad_seq`` is the first record found wrong and
    ``problem`` one of ``altered``, ``removed``, ``reordered``, ``inserted``, ``truncated``,
    ``unexplained-pseudonym`` (None when the chain is intact)."""

    count: int
    last_seq: int
    last_hash: str
    keyed: bool
    pseudonymized: int = 0
    bad_seq: int | None = None
    problem: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.problem is None


def _covered(records: Sequence[Record]) -> set[int]:
    out: set[int] = set()
    for record in records:
        if record.action == PSEUDONYMIZED:
            seqs = record.details.get("seqs", [])
            out.update(s for s in seqs if isinstance(s, int))
    return out


def verify(records: Sequence[Record], key: bytes | None = None, anchor: Anchor | None = None) -> Report:
    """Check ``records`` (in stored order) form the chain from seq 1: every hash recomputed,
    every salted commitment recomputed, seqs consecutive. Names the first bad seq."""
    covered = _covered(records)
    seen = {r.seq for r in records}
    previous, expected, pseudo = GENESIS, 1, 0

    def bad(seq: int, problem: str, why: str) -> Report:
        return Report(expected - 1, expected - 1, previous, key is not None, pseudo, seq, problem, why)

    for record in records:
        if record.seq != expected:
            if record.seq < expected:
                return bad(record.seq, "inserted", f"record {record.seq} appears again after record {expected - 1}")
            if expected in seen:
                return bad(expected, "reordered", f"record {record.seq} stands where record {expected} should")
            return bad(expected, "removed", f"record {expected} is missing (next is {record.seq})")
        if record.salt is None:
            if record.seq not in covered:
                return bad(record.seq, "unexplained-pseudonym",
                           f"record {record.seq} has no salt and no pseudonymization record lists it")
            pseudo += 1
        try:
            committed = record.salt is None or commit(
                record.salt, personal(record.actor, record.target, record.source, record.details)) == record.commitment
            digest = chain_hash(previous, record, key)
            matches = hmac.compare_digest(digest, record.hash)
        except (TypeError, ValueError) as exc:  # a field of the wrong type or not hex: edited by hand
            return bad(record.seq, "altered", f"record {record.seq} is malformed ({exc})")
        if not committed:
            return bad(record.seq, "altered", f"record {record.seq}: its personal fields do not match its commitment")
        if not matches:
            return bad(record.seq, "altered", f"record {record.seq}: its hash does not match its content")
        if anchor is not None and record.seq == anchor.seq and digest != anchor.hash:
            return bad(record.seq, "altered", f"record {record.seq}: its hash differs from the anchor's")
        previous, expected = digest, expected + 1
    if anchor is not None and expected - 1 < anchor.seq:
        return bad(expected, "truncated",
                   f"the log ends at record {expected - 1}, the anchor names record {anchor.seq}")
    return Report(expected - 1, expected - 1, previous, key is not None, pseudo)
