"""The chain's pure logic: any appended sequence verifies, any single tampering is named."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from security.audit.record import (
    PSEUDONYMIZED, Anchor, Event, canonical, mentions, parse_time, pseudonymized, seal, verify,
)

from .strategies import chain, events, keys, names

batches = st.lists(events, min_size=1, max_size=8)


@settings(deadline=None)  # the chains are quick, but the suite may run beside heavy tests
@given(batches, keys)
def test_any_appended_sequence_verifies(batch: list[Event], key: bytes | None) -> None:
    records = chain(batch, key)
    report = verify(records, key, Anchor(records[-1].seq, records[-1].hash))
    assert report.ok, report
    assert (report.count, report.last_hash, report.keyed) == (len(batch), records[-1].hash, key is not None)


def test_the_empty_log_verifies() -> None:
    assert verify([]).ok and verify([]).count == 0


_FIELDS = ("time", "actor", "actor_kind", "action", "target", "tenant", "source", "decision", "reason", "details")


@settings(deadline=None)
@given(batches, keys, st.data())
def test_a_changed_field_is_named(batch: list[Event], key: bytes | None, data: st.DataObject) -> None:
    records = chain(batch, key)
    i = data.draw(st.integers(0, len(records) - 1))
    name = data.draw(st.sampled_from(_FIELDS))
    old = getattr(records[i], name)
    new: Any = data.draw(st.dictionaries(names, names, min_size=1) if name == "details" else names)
    assume(new != old and canonical(new) != canonical(old))
    records[i] = replace(records[i], **{name: new})
    report = verify(records, key)
    assert (report.bad_seq, report.problem, report.count) == (i + 1, "altered", i)


@settings(deadline=None)
@given(batches, keys, st.data())
def test_a_removed_record_is_named(batch: list[Event], key: bytes | None, data: st.DataObject) -> None:
    records = chain(batch, key)
    anchor = Anchor(records[-1].seq, records[-1].hash)
    i = data.draw(st.integers(0, len(records) - 1))
    del records[i]
    report = verify(records, key, anchor)
    expected = "truncated" if i == len(records) else "removed"
    assert (report.bad_seq, report.problem) == (i + 1, expected)


@settings(deadline=None)
@given(st.lists(events, min_size=2, max_size=8), keys, st.data())
def test_two_swapped_records_are_named(batch: list[Event], key: bytes | None, data: st.DataObject) -> None:
    records = chain(batch, key)
    i = data.draw(st.integers(0, len(records) - 2))
    j = data.draw(st.integers(i + 1, len(records) - 1))
    records[i], records[j] = records[j], records[i]
    report = verify(records, key)
    assert (report.bad_seq, report.problem) == (i + 1, "reordered")


@settings(deadline=None)
@given(batches, st.binary(min_size=32, max_size=32), events, st.data())
def test_an_inserted_record_is_named(batch: list[Event], key: bytes, forged: Event, data: st.DataObject) -> None:
    """The forger renumbers what follows but lacks the key, so the forged record fails."""
    records = chain(batch, key)
    i = data.draw(st.integers(0, len(records)))
    previous = records[i - 1].hash if i else "00" * 32
    fake = seal(forged, i + 1, "2026-01-01T00:00:00.000000Z", previous, b"not the key")
    records = records[:i] + [fake] + [replace(r, seq=r.seq + 1) for r in records[i:]]
    report = verify(records, key)
    assert (report.bad_seq, report.problem) == (i + 1, "altered")


def test_a_duplicated_record_is_caught() -> None:
    records = chain([Event("a", "signin"), Event("b", "signin")], None)
    report = verify([*records, records[0]])
    assert (report.bad_seq, report.problem) == (1, "inserted")


def test_an_unkeyed_chain_fails_with_a_key() -> None:
    records = chain([Event("a", "signin")], None)
    assert verify(records, b"k" * 32).problem == "altered"


def _strings(value: object) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return set().union(*map(_strings, value))
    if isinstance(value, dict):
        return set(value) | set().union(*map(_strings, value.values()))
    return set()


@settings(deadline=None)
@given(batches, keys, names.filter(bool), st.data())
def test_pseudonymization_keeps_the_chain_and_drops_the_name(
    batch: list[Event], key: bytes | None, victim: str, data: st.DataObject
) -> None:
    batch = [replace(e, actor=victim) if data.draw(st.booleans()) else e for e in batch]
    records = chain(batch, key)
    pseudonym = "pseudonym:0001"
    assume(victim != pseudonym)
    hit = [r.seq for r in records if mentions(r, [victim])]
    out = [pseudonymized(r, [victim], pseudonym) if r.seq in hit else r for r in records]
    out.append(seal(Event("admin", PSEUDONYMIZED, details={"seqs": hit}), len(out) + 1, "2026-01-02T00:00:00.000000Z",
                    out[-1].hash, key))
    report = verify(out, key)
    assert report.ok and report.pseudonymized == len(hit), report
    for r in out[:-1]:
        if r.seq in hit:
            assert victim not in (r.actor, r.target) and victim not in _strings(r.details)
            assert r.salt is None


def test_a_dropped_salt_without_a_pseudonymization_record_is_named() -> None:
    records = chain([Event("a", "signin"), Event("b", "signin")], None)
    records[1] = replace(records[1], actor="someone else", salt=None)
    report = verify(records)
    assert (report.bad_seq, report.problem) == (2, "unexplained-pseudonym")


def test_an_anchor_with_another_hash_is_named() -> None:
    records = chain([Event("a", "signin"), Event("b", "signin")], None)
    report = verify(records, None, Anchor(1, "ab" * 32))
    assert (report.bad_seq, report.problem) == (1, "altered")


@pytest.mark.parametrize("text", ["1:abc", "x:" + "a" * 64, ""])
def test_a_bad_anchor_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Anchor.parse(text)


def test_events_are_checked() -> None:
    with pytest.raises(ValueError):
        Event("a", "")
    with pytest.raises(ValueError):
        Event("a", "signin", actor_kind="robot")


def test_query_times_are_normalised_to_utc() -> None:
    assert parse_time("2026-12-04") == "2026-12-04T00:00:00.000000Z"
    assert parse_time("2026-12-04T10:00:00+02:00") == "2026-12-04T08:00:00.000000Z"
