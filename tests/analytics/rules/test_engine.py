"""The engine end to end: changes and ticks in, firings out, state across restarts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.rules import Engine, Firing, parse_detector, parse_rule

HOOK = {"type": "post", "parameters": {"url": "http://hook/${id}"}}


def field(entity_id: str, temperature: Any, **attrs: Any) -> dict[str, Any]:
    out = {"id": entity_id, "type": "Field", "temperature": {"type": "Number", "value": temperature, "metadata": {}}}
    out.update({k: {"type": "Number", "value": v, "metadata": {}} for k, v in attrs.items()})
    return out


def engine_with(*docs: dict[str, Any], tenant: str = "farm") -> Engine:
    engine = Engine()
    for doc in docs:
        engine.put_rule(tenant, parse_rule(doc))
    return engine


def ids(firings: list[Firing]) -> list[tuple[str, str]]:
    return [(f.rule, f.entity["id"]) for f in firings]


def test_a_matching_change_fires_with_rendered_actions() -> None:
    engine = engine_with({"name": "hot", "condition": {"type": "Field", "q": "temperature>40"}, "action": HOOK})
    [firing] = engine.on_change("farm", "/farm1", field("F1", 41), now=0)
    assert firing.reason == "match" and firing.service_path == "/farm1"
    assert firing.actions == ({"type": "post", "method": "POST", "url": "http://hook/F1", "headers":
                               {"Content-Type": "text/plain; charset=utf-8"}, "qs": {}, "body": ""},)
    assert engine.on_change("farm", "/farm1", field("F1", 39), now=1) == []
    assert engine.on_change("other", "/farm1", field("F1", 41), now=2) == []  # rules belong to a tenant


def test_action_interval_is_per_entity_and_rule_interval_is_per_rule() -> None:
    engine = engine_with({"name": "a", "action": dict(HOOK, interval=60e3)},
                         {"name": "r", "interval": 60e3, "action": HOOK})
    assert ids(engine.on_change("farm", "/", field("F1", 1), 0)) == [("a", "F1"), ("r", "F1")]
    assert ids(engine.on_change("farm", "/", field("F2", 1), 1)) == [("a", "F2")]
    assert ids(engine.on_change("farm", "/", field("F1", 1), 2)) == []
    assert ids(engine.on_change("farm", "/", field("F1", 1), 61)) == [("a", "F1"), ("r", "F1")]


def test_a_failed_action_does_not_hold_the_next_one_back() -> None:
    engine = engine_with({"name": "a", "action": [HOOK, dict(HOOK, interval=60e3)]})
    [firing] = engine.on_change("farm", "/", field("F1", 1), 0)
    assert firing.indexes == (0, 1)
    [firing] = engine.on_change("farm", "/", field("F1", 1), 1)
    assert firing.indexes == (0,)  # the throttled second action is left out
    engine.action_failed(engine.on_change("farm", "/", field("F1", 1), 2)[0], 0)  # not throttled: no effect
    engine2 = engine_with({"name": "a", "action": dict(HOOK, interval=60e3)})
    first = engine2.on_change("farm", "/", field("F1", 1), 0)[0]
    engine2.action_failed(first, 0)
    assert ids(engine2.on_change("farm", "/", field("F1", 1), 1)) == [("a", "F1")]


def test_window_rule_fires_on_the_average() -> None:
    engine = engine_with({"name": "warm", "condition": {"type": "Field", "window": {
        "minutes": 10, "aggregates": {"avgT": {"avg": "temperature"}, "n": {"count": "temperature"}},
        "q": "avgT>30;n>=3"}}, "action": {"type": "email", "template": "${id}: ${avgT} over ${n}",
                                          "parameters": {"to": "ops@farm"}}})
    assert engine.on_change("farm", "/", field("F1", 40), 0) == []
    assert engine.on_change("farm", "/", field("F1", 35), 60) == []  # only two readings
    assert engine.on_change("farm", "/", field("F1", 10), 120) == []  # avg 28.3
    [firing] = engine.on_change("farm", "/", field("F1", 50), 180)  # avg 33.75
    assert firing.actions[0]["body"] == "F1: 33.75 over 4" and firing.values == {"avgT": 33.75, "n": 4}
    assert engine.on_change("farm", "/", field("F1", 20), 900) == []  # 40 and 35 left the window: avg 26.7


def test_nosignal_rule_fires_on_tick_and_forgets_deleted_entities() -> None:
    engine = engine_with({"name": "silent", "condition": {"type": "Field", "nosignal": {
        "attribute": "temperature", "reportInterval": 300, "checkInterval": 1}},
        "action": {"type": "email", "template": "${id} silent since ${lastTime} (${ruleName}, ${subservice})",
                   "parameters": {"to": "ops@farm"}}})
    engine.on_change("farm", "/farm1", field("F1", 20), 0)
    engine.on_change("farm", "/farm1", field("F2", 20), 0)
    assert engine.tick(200) == []
    engine.on_change("farm", "/farm1", field("F2", 21), 250)
    [firing] = engine.tick(400)
    assert firing.entity == {"id": "F1", "type": "Field"} and firing.reason == "nosignal"
    assert firing.actions[0]["body"] == "F1 silent since 1970-01-01T00:00:00.000Z (silent, /farm1)"
    engine.on_delete("farm", "/farm1", "Field", "F1", 450)
    assert ids(engine.tick(600)) == [("silent", "F2")]


def test_anomaly_rule_uses_the_types_detector() -> None:
    doc = {"name": "odd", "condition": {"type": "Field", "anomaly": "temperature"},
           "action": {"type": "update", "parameters": {"attributes": [
               {"name": "alert", "type": "Text", "value": "${anomalyAttribute} ${anomalyValue}"}]}}}
    engine = engine_with(doc)
    engine.put_detector("farm", parse_detector({"type": "Field", "attribute": "temperature", "minSamples": 3,
                                                "threshold": 4}))
    for i, v in enumerate([20, 21, 20, 21, 20]):
        assert engine.on_change("farm", "/", field("F1", v), i) == []
    assert engine.on_change("farm", "/", field("F2", 60), 5) == []  # F2 has its own (empty) baseline
    [firing] = engine.on_change("farm", "/", field("F1", 60), 6)
    assert firing.reason == "anomaly" and firing.values["anomalyScore"] > 4
    assert firing.actions[0]["attributes"] == {"alert": {"type": "Text", "value": "temperature 60"}}


def test_derived_entity_averages_fields_under_a_service_path() -> None:
    engine = engine_with({"name": "farm1", "condition": {"type": "Field", "servicePath": "/farm1/#"},
                          "derive": {"id": "Farm1", "type": "FarmStats",
                                     "attributes": {"avgT": {"avg": "temperature"}, "n": {"count": "temperature"}}}})
    [f1] = engine.on_change("farm", "/farm1/north", field("F1", 10), 0)
    assert f1.actions[0] == {"type": "update", "actionType": "append", "entity": {"id": "Farm1", "type": "FarmStats"},
                             "attributes": {"avgT": {"type": "Number", "value": 10.0},
                                            "n": {"type": "Number", "value": 1}},
                             "service": "farm", "servicePath": "/farm1"}
    [f2] = engine.on_change("farm", "/farm1/south", field("F2", 20), 1)
    assert f2.values == {"avgT": 15.0, "n": 2}
    assert engine.on_change("farm", "/farm2", field("F3", 90), 2) == []  # not under /farm1
    assert engine.on_change("farm", "/farm1/south", field("F2", 20), 3) == []  # nothing changed
    [f3] = engine.on_delete("farm", "/farm1/north", "Field", "F1", 4)
    assert f3.values == {"avgT": 20.0, "n": 1}


def test_replacing_a_rule_resets_its_state() -> None:
    doc = {"name": "w", "condition": {"window": {"minutes": 5, "aggregates": {"n": {"count": "temperature"}},
                                                 "q": "n>=2"}}, "action": HOOK}
    engine = engine_with(doc)
    engine.on_change("farm", "/", field("F1", 1), 0)
    engine.put_rule("farm", parse_rule(doc))
    assert engine.on_change("farm", "/", field("F1", 1), 1) == []
    assert engine.delete_rule("farm", "w") and not engine.delete_rule("farm", "w")
    assert engine.rules("farm") == []


def test_tick_forgets_idle_windows() -> None:
    engine = engine_with({"name": "w", "condition": {"window": {"minutes": 1, "aggregates": {
        "n": {"count": "temperature"}}}}, "action": HOOK})
    engine.on_change("farm", "/", field("F1", 1), 0)
    assert engine.state()["windows"]
    engine.tick(61)
    assert engine.state()["windows"] == []


def test_load_state_refuses_an_unknown_version() -> None:
    with pytest.raises(ValueError, match="version"):
        Engine().load_state({"version": 99})


RULES: list[dict[str, Any]] = [
    {"name": "hot", "condition": {"q": "temperature>25"}, "action": dict(HOOK, interval=90e3)},
    {"name": "trend", "interval": 120e3, "condition": {"window": {"minutes": 3, "aggregates": {
        "slope": {"rate": "temperature"}, "hi": {"max": "temperature"}}, "q": "slope>1"}},
     "action": {"type": "email", "template": "${id} ${slope} ${hi}", "parameters": {"to": "a@b"}}},
    {"name": "quiet", "condition": {"nosignal": {"attribute": "temperature", "reportInterval": 120,
                                                 "checkInterval": 1}},
     "action": {"type": "command", "parameters": {"command": "ping"}, "interval": 200e3}},
    {"name": "odd", "condition": {"anomaly": "temperature"}, "action": HOOK},
    {"name": "stats", "condition": {"servicePath": "/a/#"},
     "derive": {"id": "S", "type": "Stats", "attributes": {"avg": {"avg": "temperature"}, "n": {"count": "temperature"}}}},
]

events = st.lists(
    st.tuples(
        st.floats(0, 150),  # seconds since the previous event
        st.sampled_from(["change", "change", "change", "tick", "delete"]),
        st.sampled_from(["/a", "/a/b", "/c"]),
        st.sampled_from(["E1", "E2", "E3"]),
        st.integers(0, 40),
    ),
    max_size=40,
)


def fresh() -> Engine:
    engine = engine_with(*RULES, tenant="t")
    engine.put_detector("t", parse_detector({"type": "Thing", "attribute": "temperature", "minSamples": 3,
                                             "threshold": 0.5, "method": "ewma", "alpha": 0.3}))
    return engine


def run(engine: Engine, steps: list[tuple[float, str, str, str, int]], start: float) -> tuple[list[dict[str, Any]], float]:
    now = start
    out: list[dict[str, Any]] = []
    for dt, what, path, entity_id, value in steps:
        now += dt
        if what == "change":
            fired = engine.on_change("t", path, {"id": entity_id, "type": "Thing",
                                                 "temperature": {"type": "Number", "value": value}}, now)
        elif what == "tick":
            fired = engine.tick(now)
        else:
            fired = engine.on_delete("t", path, "Thing", entity_id, now)
        out.extend(f.to_dict() for f in fired)
    return out, now


@settings(max_examples=100, deadline=None)
@given(events, st.integers(0, 40))
def test_a_restart_from_state_changes_nothing(steps: list[tuple[float, str, str, str, int]], cut: int) -> None:
    """Window, no-signal, anomaly, derived and throttle state survive ``state()`` through JSON."""
    expected, _ = run(fresh(), steps, 1000.0)
    first = fresh()
    got, now = run(first, steps[:cut], 1000.0)
    restarted = Engine()
    restarted.load_state(json.loads(json.dumps(first.state())))
    assert restarted.state() == first.state()
    rest, _ = run(restarted, steps[cut:], now)
    assert got + rest == expected
