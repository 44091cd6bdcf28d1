"""Perseo's no-signal rules (plain_rules.md, "No signal conditions")."""

from __future__ import annotations

import json

from analytics.rules.model import NoSignal
from analytics.rules.nosignal import NoSignalState, nosignal_vars

RULE = NoSignal(attribute="temperature", report_interval=300, check_interval=1, max_time_detection=3600)
KEY = ("/", "Room", "Room1")


def reading(value: float = 20) -> dict[str, object]:
    return {"id": "Room1", "type": "Room", "temperature": {"type": "Number", "value": value}}


def test_silent_only_after_report_interval_and_before_max_time() -> None:
    state = NoSignalState()
    state.seen(KEY, reading(), "temperature", 0)
    assert state.check(RULE, 300) == []  # exactly reportInterval: not yet
    assert [k for k, _ in state.check(RULE, 361)] == [KEY]
    assert [k for k, _ in state.check(RULE, 3600)] == [KEY]
    assert state.check(RULE, 3661) == [] and KEY not in state.watches  # dead: forgotten


def test_checks_run_every_check_interval() -> None:
    state = NoSignalState()
    state.seen(KEY, reading(), "temperature", 0)
    assert state.check(RULE, 400) != []
    assert state.check(RULE, 430) == []  # next check at 460
    assert state.check(RULE, 460) != []


def test_only_the_watched_attribute_resets_the_silence() -> None:
    state = NoSignalState()
    state.seen(KEY, {"id": "Room1", "type": "Room", "humidity": {"value": 1}}, "temperature", 0)
    assert KEY not in state.watches  # never spoke the attribute: not watched
    state.seen(KEY, reading(), "temperature", 0)
    state.seen(KEY, {"id": "Room1", "type": "Room", "humidity": {"value": 2}}, "temperature", 200)
    assert state.watches[KEY].last == 0
    assert state.watches[KEY].entity["humidity"] == {"value": 2}  # but the snapshot follows
    state.seen(KEY, reading(21), "temperature", 250)
    assert state.check(RULE, 500) == []


def test_intervals_can_come_from_the_entity() -> None:
    rule = NoSignal(attribute="temperature", report_interval=300, report_interval_attr="silence")
    state = NoSignalState()
    state.seen(KEY, {**reading(), "silence": {"type": "Number", "value": 30}}, "temperature", 0)
    assert state.check(rule, 31) != []
    watch = state.watches[KEY]
    values = nosignal_vars(rule, watch, 31)
    assert values["reportInterval"] == 30 and values["reportIntervalAttr"] == "silence"
    assert values["lastTime"] == "1970-01-01T00:00:00.000Z"


def test_state_round_trips_through_json() -> None:
    state = NoSignalState()
    state.seen(KEY, reading(), "temperature", 10)
    state.check(RULE, 20)
    copy = NoSignalState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert copy == state
    assert [k for k, _ in copy.check(RULE, 400)] == [KEY]
