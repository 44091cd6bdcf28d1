"""Anomaly detectors: rolling mean and deviation, EWMA."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.rules.anomaly import DetectorState, baseline, observe
from analytics.rules.model import Detector

ROLLING = Detector("Field", "temperature", method="rolling", window=20, threshold=3.0, min_samples=5)
EWMA = Detector("Field", "temperature", method="ewma", alpha=0.2, threshold=3.0, min_samples=5)


@pytest.mark.parametrize("detector", [ROLLING, EWMA], ids=["rolling", "ewma"])
def test_a_spike_after_warm_up_is_an_outlier(detector: Detector) -> None:
    state = DetectorState()
    flags = [observe(detector, state, v) for v in [20, 21, 19, 20, 21, 19, 20]]
    assert not any(f.outlier for f in flags)
    spike = observe(detector, state, 60)
    assert spike.outlier and spike.score > 3
    assert 19 <= spike.mean <= 21


@pytest.mark.parametrize("detector", [ROLLING, EWMA], ids=["rolling", "ewma"])
def test_no_flag_before_min_samples(detector: Detector) -> None:
    state = DetectorState()
    flags = [observe(detector, state, v) for v in [20, 21, 500, -300]]
    assert not any(f.outlier for f in flags)


def test_min_deviation_keeps_a_flat_sensor_from_flagging_small_steps() -> None:
    strict = Detector("F", "t", min_samples=3)
    lenient = Detector("F", "t", min_samples=3, min_deviation=1.0)
    s1, s2 = DetectorState(), DetectorState()
    for _ in range(5):
        observe(strict, s1, 10)
        observe(lenient, s2, 10)
    assert observe(strict, s1, 10.5).outlier  # deviation 0: any change is infinitely far
    assert not observe(lenient, s2, 10.5).outlier


def test_a_level_shift_stops_being_flagged() -> None:
    state = DetectorState()
    for v in [20, 21, 19, 20, 21, 19, 20, 20, 21, 19]:
        observe(ROLLING, state, v)
    flags = [observe(ROLLING, state, 50 + (i % 2)) for i in range(25)]
    assert flags[0].outlier and not flags[-1].outlier


readings = st.lists(st.floats(-1e6, 1e6), max_size=60)


@settings(max_examples=150, deadline=None)
@given(readings)
def test_rolling_baseline_is_the_last_window_readings(values: list[float]) -> None:
    state = DetectorState()
    for i, v in enumerate(values):
        n, mean, std = baseline(ROLLING, state)
        last = values[max(0, i - ROLLING.window):i]
        assert n == len(last)
        if last:
            m = math.fsum(last) / len(last)
            assert mean == pytest.approx(m, rel=1e-9, abs=1e-6)
            assert std == pytest.approx(math.sqrt(math.fsum((x - m) ** 2 for x in last) / len(last)), rel=1e-6, abs=1e-6)
        flag = observe(ROLLING, state, v)
        assert flag.outlier == (n >= ROLLING.min_samples and flag.score > ROLLING.threshold)


@settings(max_examples=100, deadline=None)
@given(readings, st.sampled_from([ROLLING, EWMA]))
def test_detector_state_round_trips(values: list[float], detector: Detector) -> None:
    state = DetectorState()
    for v in values:
        observe(detector, state, v)
    copy = DetectorState.from_dict(state.to_dict())
    assert copy == state
    assert observe(detector, copy, 1.0) == observe(detector, state, 1.0)
