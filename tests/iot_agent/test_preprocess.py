"""The pre-processing pipeline: each step, the state, config validation, properties; and
the agent refusing a bad pipeline when it is provisioned (against the agent process)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from iot_agent.errors import WrongSyntax
from iot_agent.preprocess import (
    Pipeline,
    PreprocessState,
    convert_unit,
    parse_config,
    preprocess,
)

from .conftest import AgentStack, MqttDevice, new_service, tenant

T0 = 1577836800.0  # 2020-01-01T00:00:00Z


def run(cfg: list[dict[str, object]], measures: list[dict[str, object]], state: PreprocessState | None = None) -> list[dict[str, object]]:
    return preprocess(measures, cfg, state or PreprocessState(), T0)


def test_no_config_is_identity() -> None:
    ms = [{"t": 1}]
    assert preprocess(ms, None, PreprocessState(), T0) is ms


def test_range_reject_and_clamp() -> None:
    st_ = PreprocessState()
    assert run([{"step": "range", "attr": "t", "min": -40, "max": 85}], [{"t": 20, "h": 1}, {"t": 120, "h": 2}, {"t": 130}], st_) == [
        {"t": 20, "h": 1},
        {"h": 2},
    ]
    assert st_.rejected == {"range": 2} and st_.rejected_by_attr == {"t": 2} and st_.rejected_total == 2
    assert run([{"step": "range", "min": 0, "max": 10, "action": "clamp"}], [{"a": -5, "b": 50, "c": "x"}]) == [{"a": 0, "b": 10, "c": "x"}]


def test_type_check() -> None:
    st_ = PreprocessState()
    assert run([{"step": "type", "attrs": ["t", "on"], "type": "Number"}], [{"t": "21.5", "on": "yes"}], st_) == [{"t": 21.5}]
    assert st_.rejected == {"type": 1}
    assert run([{"step": "type", "attr": "t", "type": "Number", "cast": False}], [{"t": "21.5", "x": 1}]) == [{"x": 1}]
    assert run([{"step": "type", "attr": "on", "type": "Boolean"}], [{"on": "TRUE"}]) == [{"on": True}]


def test_outlier_zscore_and_level_change() -> None:
    cfg = [{"step": "outlier", "attr": "t", "window": 10, "min_samples": 5, "threshold": 3, "reset_after": 3}]
    st_ = PreprocessState()
    base = [{"t": v} for v in (20, 21, 20, 19, 20, 21)]
    assert run(cfg, base, st_) == base
    assert run(cfg, [{"t": 80}], st_) == []  # spike rejected
    assert st_.rejected == {"outlier": 1}
    assert run(cfg, [{"t": 20.5}], st_) == [{"t": 20.5}]
    # a lasting change is accepted after reset_after consecutive rejections
    assert run(cfg, [{"t": 50}, {"t": 50}, {"t": 50}], st_) == [{"t": 50}]


def test_outlier_mad() -> None:
    cfg = [{"step": "outlier", "attr": "t", "method": "mad", "min_samples": 5}]
    assert run(cfg, [{"t": v} for v in (10, 11, 12, 11, 10, 11, 100)]) == [{"t": v} for v in (10, 11, 12, 11, 10, 11)]


def test_unit_conversion() -> None:
    assert run([{"step": "convert", "attr": "t", "from": "degF", "to": "degC"}], [{"t": 50}, {"t": 212}]) == [{"t": 10}, {"t": 100}]
    assert run([{"step": "convert", "attr": "p", "from": "hPa", "to": "kPa"}], [{"p": 1013.2}]) == [{"p": 101.32}]
    assert run([{"step": "convert", "attr": "t", "from": "K", "to": "degC", "round": 1}], [{"t": 300}]) == [{"t": 26.9}]
    assert run([{"step": "convert", "attr": "v", "scale": 0.1, "offset": -5}], [{"v": 100}]) == [{"v": 5}]
    assert convert_unit(1, "km/h", "m/s") == pytest.approx(1 / 3.6)


def test_calibrate_two_points_waziup_style() -> None:
    cfg = [{"step": "calibrate", "attr": "TC", "value_min": {"sensor_value": 0, "real_value": -10}, "value_max": {"sensor_value": 100, "real_value": 40}}]
    assert run(cfg, [{"TC": 50}]) == [{"TC": 15}]


def test_moving_average() -> None:
    st_ = PreprocessState()
    out = run([{"step": "average", "attr": "t", "window": 3}], [{"t": 3}, {"t": 6}, {"t": 9}, {"t": 12}], st_)
    assert [m["t"] for m in out] == [3, 4.5, 6, 9]


def test_aggregate_by_count() -> None:
    st_ = PreprocessState()
    cfg = [{"step": "aggregate", "attr": "t", "count": 3, "functions": ["min", "max", "avg", "count", "sum"]}]
    assert run(cfg, [{"t": 1}, {"t": 5, "h": 1}], st_) == [{"h": 1}]
    assert run(cfg, [{"t": 3}], st_) == [{"t_min": 1, "t_max": 5, "t_avg": 3, "t_count": 3, "t_sum": 9}]
    assert run([{"step": "aggregate", "attr": "t", "count": 2}], [{"t": 1}, {"t": 2}]) == [{"t": 1.5}]


def test_aggregate_by_period() -> None:
    cfg = [{"step": "aggregate", "attr": "t", "period": 60, "functions": "max"}]
    ms = [
        {"t": 1, "TimeInstant": "2020-01-01T00:00:10Z"},
        {"t": 7, "TimeInstant": "2020-01-01T00:00:50Z"},
        {"t": 2, "TimeInstant": "2020-01-01T00:01:05Z"},
    ]
    assert run(cfg, ms) == [{"t": 7, "TimeInstant": "2020-01-01T00:01:05Z"}]


def test_extrapolate_missing_or_rejected_reading() -> None:
    cfg = [{"step": "range", "attr": "t", "max": 100}, {"step": "extrapolate", "attrs": ["t"], "max_consecutive": 1}]
    st_ = PreprocessState()
    ms = [
        {"t": 10, "TimeInstant": "2020-01-01T00:00:00Z"},
        {"t": 12, "TimeInstant": "2020-01-01T00:01:00Z"},
        {"t": 999, "TimeInstant": "2020-01-01T00:02:00Z"},  # rejected, then filled: 14
        {"h": 1, "TimeInstant": "2020-01-01T00:03:00Z"},  # second in a row: not filled
    ]
    out = run(cfg, ms, st_)
    assert [m.get("t") for m in out] == [10, 12, 14, None]
    assert st_.extrapolated == 1 and st_.rejected == {"range": 1}


def test_state_round_trips_through_json() -> None:
    st_ = PreprocessState()
    cfg = [{"step": "average", "attr": "t", "window": 2}, {"step": "range", "attr": "t", "max": 5}]
    run(cfg, [{"t": 4}, {"t": 100}], st_)
    again = PreprocessState.from_dict(json.loads(json.dumps(st_.to_dict())))
    assert again == st_
    assert run(cfg, [{"t": 6}], again) == []  # average of 100 and 6 is rejected


@pytest.mark.parametrize(
    "bad",
    [
        {},
        [1],
        [{"step": "nope"}],
        [{"step": "range"}],
        [{"step": "range", "min": 5, "max": 1}],
        [{"step": "range", "min": "1"}],
        [{"step": "type", "type": "Float64"}],
        [{"step": "convert", "from": "degC", "to": "m"}],
        [{"step": "convert", "from": "furlong", "to": "m"}],
        [{"step": "calibrate", "points": [[1, 2], [1, 3]]}],
        [{"step": "aggregate", "count": 2, "period": 5}],
        [{"step": "aggregate", "count": 0}],
        [{"step": "aggregate", "count": 2, "functions": ["median"]}],
        [{"step": "extrapolate"}],
        [{"step": "average", "attrs": []}],
        [{"step": "outlier", "method": "iqr"}],
    ],
)
def test_bad_config(bad: object) -> None:
    with pytest.raises(WrongSyntax):
        parse_config(bad)


_num = st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False), st.floats(allow_nan=False, allow_infinity=False))
_val = st.one_of(_num, st.text(max_size=4), st.booleans(), st.none())
_step = st.sampled_from(
    [
        {"step": "range", "min": -50, "max": 50},
        {"step": "type", "attr": "a", "type": "Number"},
        {"step": "outlier", "attr": "a", "window": 5, "min_samples": 3},
        {"step": "outlier", "method": "mad", "min_samples": 3},
        {"step": "convert", "attr": "b", "from": "degF", "to": "K"},
        {"step": "calibrate", "points": [[0, 1], [10, 3]]},
        {"step": "average", "attr": "a", "window": 3},
        {"step": "aggregate", "attr": "b", "count": 2, "functions": ["avg", "max"]},
        {"step": "aggregate", "attr": "a", "period": 30},
        {"step": "extrapolate", "attrs": ["a", "b"], "max_consecutive": 2},
    ]
)


@given(st.lists(_step, max_size=5), st.lists(st.dictionaries(st.sampled_from(["a", "b", "c"]), _val, max_size=3), max_size=8))
def test_pipeline_never_fails_and_keeps_json(cfg: list[dict[str, object]], measures: list[dict[str, object]]) -> None:
    state = PreprocessState()
    pipe = Pipeline.parse(cfg)
    out = pipe.apply(measures, state, T0)
    json.dumps(out, allow_nan=False)
    assert all(m for m in out)
    json.dumps(state.to_dict(), allow_nan=False)


# -- validated at provisioning -------------------------------------------------------------

BAD_PIPELINE = [{"step": "range", "attr": "t", "min": 10, "max": 0}]  # min above max
GOOD_PIPELINE = [{"step": "range", "attr": "t", "min": -40, "max": 85}]


def _refused(response: httpx.Response, where: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["name"] == "WRONG_SYNTAX"
    assert f"{where}: preprocess[0]: 'min' is above 'max'" in body["message"], body


@pytest.mark.parametrize("path", ["groups", "services"])
def test_a_bad_group_pipeline_is_refused_at_provisioning(stack: AgentStack, path: str) -> None:
    """iotagent-node-lib-api.md, "Create config group `POST /iot/groups`": 400 WRONG_SYNTAX
    when the body does not comply with the schema. ``preprocess`` is our extension
    (docs/iot_agent.md, "Pre-processor"): a pipeline that does not parse is part of the
    body's schema, refused with the group, which is not stored."""
    service = new_service()
    group = {"apikey": "k" + service, "resource": "/iot/d", "entity_type": "Thing", "preprocess": BAD_PIPELINE}
    ok = {"apikey": "k2" + service, "resource": "/iot/d", "entity_type": "Thing"}
    _refused(httpx.post(f"{stack.north}/iot/{path}", json={path: [ok, group]}, headers=tenant(service)), f"{path}[1]")
    assert httpx.get(f"{stack.north}/iot/{path}", headers=tenant(service)).json()["count"] == 0


def test_a_bad_device_pipeline_is_refused_at_provisioning(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "Create config group `POST /iot/groups`" (400 WRONG_SYNTAX
    for a body off the schema), applied to devices too: the device with a bad
    ``preprocess`` is not provisioned, so no reading can reach a pipeline that fails."""
    service = new_service()
    devices = [{"device_id": "d1", "entity_type": "Thing", "preprocess": BAD_PIPELINE}]
    _refused(httpx.post(stack.north + "/iot/devices", json={"devices": devices}, headers=tenant(service)), "devices[0] (d1)")
    assert httpx.get(stack.north + "/iot/devices/d1", headers=tenant(service)).status_code == 404
    not_pipelines: list[object] = ["range", {"step": "range"}, [1]]
    for not_a_pipeline in not_pipelines:
        devices = [{"device_id": "d2", "entity_type": "Thing", "preprocess": not_a_pipeline}]
        response = httpx.post(stack.north + "/iot/devices", json={"devices": devices}, headers=tenant(service))
        assert response.status_code == 400 and response.json()["name"] == "WRONG_SYNTAX", response.text


def test_a_bad_pipeline_is_refused_by_put_and_the_old_one_kept(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "Modify config group `PUT /iot/groups`" and "Modify device
    `PUT /iot/devices/:deviceId`": an update whose ``preprocess`` does not parse changes
    nothing (400 WRONG_SYNTAX); the pipeline in force stays."""
    service = new_service()
    key = "k" + service
    stack.provision(
        service,
        groups=[{"apikey": key, "resource": "/iot/d", "entity_type": "Thing", "preprocess": GOOD_PIPELINE}],
        devices=[{"device_id": "d1", "apikey": key, "entity_type": "Thing", "preprocess": GOOD_PIPELINE}],
    )
    params = {"apikey": key, "resource": "/iot/d"}
    _refused(httpx.put(stack.north + "/iot/groups", params=params, json={"preprocess": BAD_PIPELINE}, headers=tenant(service)), f"group {key}")
    _refused(httpx.put(stack.north + "/iot/devices/d1", json={"preprocess": BAD_PIPELINE}, headers=tenant(service)), "device d1")
    group = httpx.get(stack.north + "/iot/groups", params=params, headers=tenant(service)).json()["groups"][0]
    device = httpx.get(stack.north + "/iot/devices/d1", headers=tenant(service)).json()
    assert group.get("preprocess") == GOOD_PIPELINE and device.get("preprocess") == GOOD_PIPELINE


def test_a_valid_pipeline_provisioned_runs_on_mqtt_readings(stack: AgentStack, device: MqttDevice) -> None:
    """docs/iot_agent.md, "Pre-processor": a pipeline that passed provisioning runs on the
    readings of every transport, here Ultralight over MQTT (iotagent-node-lib-api.md and
    the UL agent's topic ``/ul/<apikey>/<device>/attrs``): 120 is out of range, rejected."""
    service = new_service()
    key = "k" + service
    stack.provision(service, groups=[{"apikey": key, "resource": "/iot/d", "entity_type": "Thing", "preprocess": GOOD_PIPELINE,
                                      "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}]}])
    device.publish(f"/ul/{key}/m1/attrs", "t|120|h|1")
    entity: dict[str, Any] = stack.wait_entity(service, "Thing:m1", lambda e: "h" in e)
    assert "temperature" not in entity and entity["h"]["value"] == 1
