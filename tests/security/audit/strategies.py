"""Hypothesis strategies for audit events and sealed chains."""

from __future__ import annotations

from hypothesis import strategies as st

from security.audit.record import ACTIONS, ACTOR_KINDS, GENESIS, Event, Record, seal

names = st.text(st.characters(codec="utf-8"), max_size=12)
values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), names)
details = st.dictionaries(names, st.one_of(values, st.lists(values, max_size=3)), max_size=3)

events = st.builds(
    Event, actor=names, action=st.sampled_from(ACTIONS[:-1]), actor_kind=st.sampled_from(sorted(ACTOR_KINDS)),
    target=names, tenant=names, source=st.sampled_from(["", "192.0.2.1", "2001:db8::1"]),
    decision=st.sampled_from(["", "allow", "deny"]), reason=names, details=details,
)
keys = st.one_of(st.none(), st.binary(min_size=32, max_size=32))


def chain(batch: list[Event], key: bytes | None) -> list[Record]:
    out: list[Record] = []
    previous = GENESIS
    for seq, event in enumerate(batch, start=1):
        record = seal(event, seq, f"2026-01-01T00:00:{seq % 60:02d}.000000Z", previous, key)
        out.append(record)
        previous = record.hash
    return out
