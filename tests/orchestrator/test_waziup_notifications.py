"""The notifications' pure rules against waziup-api-v2.md (§3 routes, §4 Notif shape, §5 semantics)."""

from __future__ import annotations

import copy
import json
import operator
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.waziup_api.notifications import (
    CLIENT_FIELDS,
    NotifError,
    creation_match,
    current_values,
    due,
    expression_problem,
    fired,
    holds,
    iso,
    new_id,
    patch,
    render,
    substitute,
    triggered,
    validate,
    watches,
    well_formed_id,
)

SOCIAL = {"type": "SocialAction", "value": {"usernames": ["cdupont"], "channels": ["twitter", "sms"], "message": "hot"}}
ACTUATION = {"type": "ActuationAction", "value": {"device_id": "D1", "actuator_id": "A1", "actuator_value": "${TC1}"}}


def notif(**fields: Any) -> dict:
    """A posted Notif, as the reference's tests write them."""
    body: dict[str, Any] = {
        "description": "too hot",
        "condition": {"devices": ["D1"], "sensors": ["TC1"], "expression": "TC1>40"},
        "action": copy.deepcopy(SOCIAL),
        "throttling": 1,
    }
    body.update(fields)
    return body


# --------------------------------------------------------------------------- §3/§4 validate


def test_s3_status_defaults_to_active() -> None:
    assert validate(notif())["status"] == "active"


def test_s4_client_fields_round_trip_exactly() -> None:
    body = notif(expires="2030-01-01T00:00:00.5+02:00", throttling=1, action=copy.deepcopy(ACTUATION))
    shown = render(validate(body), "a" * 24)
    for name in ("description", "condition", "action", "expires", "throttling"):
        assert shown[name] == body[name]
    assert shown["expires"] == "2030-01-01T00:00:00.5+02:00"  # §4: the same string
    assert shown["throttling"] == 1  # §4: not clamped


def test_s4_no_keys_added_inside_condition_and_action() -> None:
    body = notif(condition={"devices": ["D1"], "sensors": ["TC1"]})  # no expression: none added
    stored = validate(body)
    assert stored["condition"] == {"devices": ["D1"], "sensors": ["TC1"]}
    assert stored["action"] == SOCIAL


def test_s4_unknown_keys_inside_condition_and_action_are_kept() -> None:
    action = {"type": "SocialAction", "value": {**SOCIAL["value"], "extra": 1}, "note": "x"}
    assert validate(notif(action=action))["action"] == action


def test_s4_server_fields_id_and_private_keys_from_the_client_are_ignored() -> None:
    body = notif(id="x", times_sent=99, last_notif="2020-01-01T00:00:00Z", last_success_code=500, _last_value_fire=9)
    body["unknown_top_level"] = True
    assert set(validate(body)) == {"description", "condition", "action", "throttling", "status"}


def test_validate_copies_the_body() -> None:
    body = notif()
    stored = validate(body)
    body["condition"]["devices"].append("D2")
    assert stored["condition"]["devices"] == ["D1"]


def test_null_optional_fields_mean_absent() -> None:
    stored = validate(notif(description=None, throttling=None, status=None, expires=None))
    assert set(stored) == {"condition", "action", "status"} and stored["status"] == "active"


@pytest.mark.parametrize(
    "body",
    [
        [],
        "x",
        {"action": SOCIAL},
        notif(condition=None),
        notif(action=None),
        notif(description=3),
        notif(condition={"devices": "D1", "sensors": ["TC1"], "expression": ""}),
        notif(condition={"devices": ["D1"], "sensors": [1], "expression": ""}),
        notif(condition={"sensors": ["TC1"], "expression": ""}),
        notif(condition={"devices": ["D1"], "sensors": ["TC1"], "expression": 4}),
        notif(condition={"devices": ["D1"], "sensors": ["TC1"], "expression": "TC1>"}),
        notif(condition={"devices": ["D1"], "sensors": ["TC1"], "expression": "TC1<>3"}),
        notif(action={"type": "Other", "value": {}}),
        notif(action={"type": "SocialAction"}),
        notif(action={"type": "SocialAction", "value": {"usernames": ["a"], "channels": ["fax"], "message": "m"}}),
        notif(action={"type": "SocialAction", "value": {"usernames": ["a"], "channels": ["sms"]}}),
        notif(action={"type": "SocialAction", "value": {"usernames": "a", "channels": ["sms"], "message": "m"}}),
        notif(action={"type": "ActuationAction", "value": {"device_id": "D1", "actuator_id": "A1"}}),
        notif(action={"type": "ActuationAction", "value": {"device_id": 1, "actuator_id": "A1", "actuator_value": 1}}),
        notif(throttling=-1),
        notif(throttling=True),
        notif(throttling="10"),
        notif(throttling=float("nan")),
        notif(status="paused"),
        notif(expires="tomorrow"),
        notif(expires=1893456000),
    ],
)
def test_s3_malformed_notif_is_refused(body: Any) -> None:
    with pytest.raises(NotifError) as info:
        validate(body)
    assert str(info.value)  # a reason for the 400 body


def test_malformed_expression_reason_is_given() -> None:
    with pytest.raises(NotifError, match="right-hand-side"):
        validate(notif(condition={"devices": ["D1"], "sensors": ["TC1"], "expression": "TC1>"}))


def test_actuator_value_may_be_any_json_including_null() -> None:
    for value in (None, False, 56.6, "x", [1], {"a": None}):
        action = {"type": "ActuationAction", "value": {"device_id": "D", "actuator_id": "A", "actuator_value": value}}
        assert validate(notif(action=action))["action"] == action


# --------------------------------------------------------------------------- §3 PATCH


def test_s3_patch_replaces_fields_and_keeps_counters() -> None:
    stored = fired(validate(notif(expires="2030-01-01T00:00:00Z")), 100.0, on_value=True, ok=True)
    new_condition = {"devices": ["D2"], "sensors": ["TC2"], "expression": ""}
    patched = patch(stored, {"condition": new_condition, "description": "cold", "times_sent": 0, "id": "x"})
    assert patched["condition"] == new_condition and patched["description"] == "cold"
    assert patched["times_sent"] == 1 and patched["_last_value_fire"] == 100.0
    assert patched["expires"] == "2030-01-01T00:00:00Z" and patched["action"] == SOCIAL
    assert "id" not in patched


def test_s3_patch_status_only_serves_put_status() -> None:
    stored = validate(notif())
    assert patch(stored, {"status": "inactive"})["status"] == "inactive"
    assert stored["status"] == "active"  # not modified in place
    with pytest.raises(NotifError):
        patch(stored, {"status": "off"})


def test_patch_refuses_a_non_object_and_a_bad_field() -> None:
    stored = validate(notif())
    for body in ("inactive", None, {"throttling": -2}, {"action": {"type": "X", "value": {}}}):
        with pytest.raises(NotifError):
            patch(stored, body)


# --------------------------------------------------------------------------- §1/§4 render


def test_s4_render_id_first_counters_only_when_set() -> None:
    shown = render(validate(notif()), "0123456789abcdef01234567")
    assert next(iter(shown)) == "id"
    assert shown["times_sent"] == 0  # always shown, 0 before any firing (module docstring)
    for name in ("last_notif", "last_success", "last_success_code", "last_failure", "last_failure_reason"):
        assert name not in shown


def test_s1_render_has_no_private_keys_and_no_nulls() -> None:
    stored = fired(validate(notif()), 5.0, on_value=True, ok=False, reason="no twitter credentials")
    stored["description"] = None
    shown = render(stored, "i")
    assert not any(k.startswith("_") for k in shown)
    assert None not in shown.values()
    assert shown["last_failure_reason"] == "no twitter credentials" and shown["times_sent"] == 1


# --------------------------------------------------------------------------- §5 matching


def test_s5_watches_the_listed_devices_and_sensors() -> None:
    n = validate(notif(condition={"devices": ["D1", "D2"], "sensors": ["TC1", "TC2"], "expression": ""}))
    assert watches(n, "D2", "TC1")
    assert not watches(n, "D3", "TC1") and not watches(n, "D1", "TC3")


def test_s5_empty_expression_is_always_true() -> None:
    assert holds("", {}) and expression_problem("") is None


@pytest.mark.parametrize(
    ("expression", "values", "expected"),
    [
        ("TC1>40", {"TC1": 41}, True),
        ("TC1>40", {"TC1": 40}, False),
        ("TC1<40", {"TC1": 39.5}, True),
        ("TC1>=40", {"TC1": 40}, True),
        ("TC1<=40", {"TC1": 40.1}, False),
        ("TC1==40", {"TC1": 40.0}, True),
        ("TC1!=40", {"TC1": 41}, True),
        ("TC1>40;TC2<10", {"TC1": 41, "TC2": 5}, True),  # ";" is AND
        ("TC1>40;TC2<10", {"TC1": 41, "TC2": 11}, False),
        ("TC1>40", {}, False),  # a sensor without a value: the comparison is false
        ("TC1!=40", {}, False),
        ("TC1==1..3", {"TC1": 2}, True),  # Orion extras the parser gives
        ("TC1==a,b", {"TC1": "b"}, True),
        ("TC1~=^ho", {"TC1": "hot"}, True),
        ("TC1", {"TC1": 0}, True),
        ("!TC1", {"TC2": 0}, True),
        ("TC1==true", {"TC1": True}, True),
        ("TC1==on", {"TC1": "on"}, True),
        ("TC1>20", {"TC1": "26.6"}, False),  # Orion's typing: a text/plain push is a string
        ("TC1>40", {"TC1": [10, 50]}, True),  # arrays match on any element, as in Orion
    ],
)
def test_s5_expression_syntax(expression: str, values: dict, expected: bool) -> None:
    assert holds(expression, values) is expected


@pytest.mark.parametrize("expression", ["TC1>", "TC1<>3", "  ", ">3", "TC1>true", "a==1..b"])
def test_expression_problem_names_the_fault(expression: str) -> None:
    assert expression_problem(expression)


def test_current_values_reads_the_sensor_json() -> None:
    sensors = [
        {"id": "TC1", "value": {"value": 26.5, "date_received": "x"}},
        {"id": "TC2"},
        {"id": "S", "value": {"value": None}},
    ]
    assert current_values(sensors) == {"TC1": 26.5, "S": None}


# --------------------------------------------------------------------------- §5 rules


def test_s5_rule2_creation_fires_once_when_the_condition_already_holds() -> None:
    n = validate(notif(condition={"devices": ["D0", "D1"], "sensors": ["TC1"], "expression": "TC1>40"}))
    assert creation_match(n, {"D0": {"TC1": 10}, "D1": {"TC1": 50}}, 0.0) == "D1"
    assert creation_match(n, {"D1": {"TC1": 10}}, 0.0) is None
    assert creation_match(n, {"D1": {"OTHER": 50}}, 0.0) is None  # no watched sensor has a value


def test_s5_rule2_then_inactive_then_push_leaves_times_sent_1() -> None:
    n = validate(notif())
    n = fired(n, 0.0, on_value=False, ok=True)
    n = patch(n, {"status": "inactive"})
    assert not triggered(n, "D1", "TC1", {"TC1": 50}, 1.0)
    assert render(n, "i")["times_sent"] == 1


def test_s5_rule3_creation_firing_does_not_delay_the_first_value_firing() -> None:
    n = fired(validate(notif(throttling=3600)), 0.0, on_value=False, ok=True)
    assert "_last_value_fire" not in n
    assert due(n, 0.5, on_value=True)
    n = fired(n, 0.5, on_value=True, ok=True)
    assert not due(n, 10.0, on_value=True)
    assert due(n, 3600.5, on_value=True)


def test_s5_rule3_throttling_1_and_0() -> None:
    n = fired(validate(notif(throttling=1)), 10.0, on_value=True, ok=True)
    assert not due(n, 10.9, on_value=True) and due(n, 11.0, on_value=True)
    z = fired(validate(notif(throttling=0)), 10.0, on_value=True, ok=True)
    assert due(z, 10.0, on_value=True) and due(z, 9.0, on_value=True)  # 0 never blocks


def test_s5_rule4_every_firing_counts_and_stamps() -> None:
    n = validate(notif())
    once = fired(n, 1465410027.873, on_value=True, ok=True)
    assert n.get("times_sent") is None  # a new dict
    assert once["times_sent"] == 1 and once["last_notif"] == "2016-06-08T18:20:27.873Z"
    assert once["last_success"] == once["last_notif"] and once["last_success_code"] == 204
    twice = fired(once, 1465410030.0, on_value=True, ok=False, reason="no SMS credentials")
    assert twice["times_sent"] == 2 and twice["last_failure"] == "2016-06-08T18:20:30.000Z"
    assert twice["last_failure_reason"] == "no SMS credentials" and twice["last_success_code"] == 204


def test_s5_rule6_placeholder_becomes_the_value_as_text() -> None:
    assert substitute("${TC1}", {"TC1": 100}) == "100"  # §5 rule 6: "${TC1}" with TC1=100 gives "100"
    assert substitute("${TC1}", {"TC1": 26.5}) == "26.5"
    assert substitute("${TC1}", {"TC1": 100.0}) == "100"
    assert substitute("t=${TC1}C, ${S}", {"TC1": 26.5, "S": "on"}) == "t=26.5C, on"
    assert substitute("${B}", {"B": True}) == "true"
    assert substitute("${O}", {"O": {"a": [1, None]}}) == '{"a":[1,null]}'


def test_s5_rule6_constants_are_set_as_is() -> None:
    assert substitute("MyVal1", {"TC1": 1}) == "MyVal1"
    for constant in (56.6, False, None, [1, "${TC1}"], {"v": "${TC1}"}):
        assert substitute(constant, {"TC1": 1}) == constant


def test_s5_rule6_unknown_sensor_gives_empty_text_as_orion() -> None:
    assert substitute("v=${NOPE}", {"TC1": 1}) == "v="


def test_s5_rule7_inactive_never_fires() -> None:
    n = validate(notif(status="inactive"))
    assert not due(n, 0.0, on_value=True) and not due(n, 0.0, on_value=False)
    assert creation_match(n, {"D1": {"TC1": 50}}, 0.0) is None


def test_s5_expired_never_fires() -> None:
    n = validate(notif(expires="2016-06-08T18:20:27Z"))
    assert due(n, 1465410026.0, on_value=True)
    assert not due(n, 1465410028.0, on_value=True) and not due(n, 1465410028.0, on_value=False)


def test_s5_triggered_needs_every_condition() -> None:
    n = validate(notif())
    assert triggered(n, "D1", "TC1", {"TC1": 41}, 0.0)
    assert not triggered(n, "D1", "TC1", {"TC1": 40}, 0.0)
    assert not triggered(n, "D2", "TC1", {"TC1": 41}, 0.0)


# --------------------------------------------------------------------------- §3 ids, §1 times


def test_s3_ids_are_24_hex() -> None:
    ids = {new_id() for _ in range(50)}
    assert len(ids) == 50 and all(well_formed_id(i) and i == i.lower() for i in ids)
    for bad in ("123", "undefined", "g" * 24, "a" * 25, "a" * 24 + "\n", "", '["a"]'):
        assert not well_formed_id(bad)
    assert well_formed_id("5B0D" + "0" * 20)


def test_s1_iso_is_utc_z_with_milliseconds() -> None:
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(1465410027.873) == "2016-06-08T18:20:27.873Z"


# --------------------------------------------------------------------------- properties

names = st.text(st.sampled_from("ABCTXYZ0123_-"), min_size=1, max_size=6)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**9), 10**9)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
extras = st.dictionaries(st.sampled_from(["note", "x", "y_z"]), json_values, max_size=2)
expressions = st.sampled_from(["", "TC1>40", "TC1>=1;TC2<2", "A==1..3", "S==on,off", "!TC9", "X~=^a"])
conditions = st.builds(
    lambda d, s, e, x: {**x, "devices": d, "sensors": s, **({} if e is None else {"expression": e})},
    st.lists(names, max_size=3), st.lists(names, max_size=3), st.none() | expressions, extras,
)
socials = st.builds(
    lambda u, c, m, x: {"type": "SocialAction", "value": {**x, "usernames": u, "channels": c, "message": m}},
    st.lists(names, max_size=3), st.lists(st.sampled_from(["twitter", "sms", "voice", "none"]), max_size=4),
    st.text(max_size=20), extras,
)
actuations = st.builds(
    lambda d, a, v, x: {
        "type": "ActuationAction",
        "value": {**x, "device_id": d, "actuator_id": a, "actuator_value": v},
    },
    names, names, json_values, extras,
)
optional_fields = st.fixed_dictionaries(
    {},
    optional={
        "description": st.text(max_size=20),
        "throttling": st.integers(0, 10**6) | st.floats(0, 1e6),
        "status": st.sampled_from(["active", "inactive"]),
        "expires": st.sampled_from(
            ["2030-01-01T00:00:00Z", "2016-06-08T18:20:27.873Z", "2030-01-01", "2030-01-01T00:00:00+02:00"]
        ),
    },
)
notifs = st.builds(
    lambda c, a, o: {"condition": c, "action": a, **o}, conditions, socials | actuations, optional_fields
)


@given(notifs)
def test_prop_validate_render_round_trips_client_fields(body: dict) -> None:
    stored = validate(body)
    shown = render(stored, "f" * 24)
    for name in CLIENT_FIELDS:
        expected = body.get(name, "active" if name == "status" else None)
        assert shown.get(name) == expected
        assert json.dumps(shown.get(name), sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert validate(shown) == stored  # a client may post back what it read


@given(st.dictionaries(names, json_values, max_size=5))
def test_prop_empty_expression_always_holds(values: dict) -> None:
    assert holds("", values)


ORDER: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}
numbers = st.integers(-(10**15), 10**15) | st.floats(allow_nan=False, allow_infinity=False)


@given(numbers, st.sampled_from(sorted(ORDER)), numbers)
def test_prop_comparison_agrees_with_python(a: float, op: str, x: float) -> None:
    literal = float(repr(float(x)))
    assert holds(f"A{op}{float(x)!r}", {"A": a}) is ORDER[op](a, literal)


@settings(max_examples=200)
@given(
    st.integers(0, 100) | st.floats(0, 100),
    st.lists(st.floats(0, 50, allow_nan=False), min_size=1, max_size=30),
    st.booleans(),
)
def test_prop_throttling_spaces_value_firings(throttling: float, steps: list[float], created: bool) -> None:
    now = 1_000_000.0
    n = validate(notif(throttling=throttling))
    if created:  # §5 rule 3: a creation firing never blocks the next value firing
        n = fired(n, now, on_value=False, ok=True)
        assert due(n, now, on_value=True)
    times: list[float] = []
    for step in steps:
        now += step
        if due(n, now, on_value=True):
            n = fired(n, now, on_value=True, ok=True)
            times.append(now)
    assert all(b - a >= throttling for a, b in zip(times, times[1:]))
    assert times and times[0] == 1_000_000.0 + steps[0]  # the first value firing is never held back
    assert n["times_sent"] == len(times) + created


@given(st.text(max_size=30), st.dictionaries(names, json_values, max_size=3))
def test_prop_substitute_keeps_strings_strings(text: str, values: dict) -> None:
    assert isinstance(substitute(text, values), str)
    if "${" not in text:
        assert substitute(text, values) == text
