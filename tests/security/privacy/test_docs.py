"""docs/privacy.md's policies are valid, and its two worked examples do what it says."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from security.privacy.budget import Budget
from security.privacy.engine import apply, apply_history_series, history_query_refusal, k_anonymize
from security.privacy.keys import KeyRing
from security.privacy.policy import PUBLIC, Consumer, Policy, parse_policy

DOC = (Path(__file__).parents[3] / "docs" / "privacy.md").read_text()
POLICIES = {d["id"]: d for d in (json.loads(b) for b in re.findall(r"```json\n(.*?)```", DOC, re.S))}
KEYS = KeyRing.generate(b"d" * 32)


@pytest.mark.parametrize("pid", sorted(POLICIES))
def test_every_policy_in_the_guide_is_valid(pid: str) -> None:
    assert isinstance(parse_policy(POLICIES[pid]), Policy)


def test_the_analyst_gets_noised_hourly_averages_within_a_budget() -> None:
    policy = parse_policy(POLICIES["analyst-household"])
    analyst = Consumer("user", "analyst-7")
    assert history_query_refusal(policy, None, None) and history_query_refusal(policy, "avg", "minute")
    assert history_query_refusal(policy, "avg", "hour") is None
    assert policy.budget is not None
    budget = Budget(policy.budget.epsilon, policy.budget.period)
    now = 1_704_110_400.0  # 2024-01-01T12:00Z
    granted = [budget.spend(analyst.key, policy.epsilon_of(["power"]), now + i) for i in range(11)]
    assert granted == [True] * 10 + [False]
    answer = {"entityId": "urn:meter:1", "entityType": "Meter", "index": ["2024-01-01T10:00:00.000+00:00"],
              "attributes": [{"attrName": "power", "values": [812.5]}, {"attrName": "owner", "values": ["ann"]}]}
    out = apply_history_series(policy, answer, keys=KEYS, consumer=analyst, rng=random.Random(7))
    assert out["entityId"].startswith("pz:") and [a["attrName"] for a in out["attributes"]] == ["power"]
    assert out["attributes"][0]["values"][0] != 812.5


def test_the_public_map_shows_kilometre_cells() -> None:
    policy = parse_policy(POLICIES["public-map"])
    station = {"id": "urn:aq:1", "type": "AirQualityObserved", "location": "45.0703,7.6869",
               "dateObserved": "2024-01-01T10:33:00Z", "owner": "ann", "refDevice": "urn:dev:9", "no2": 41}
    out: dict[str, Any] = apply(policy, station, keys=KEYS, consumer=PUBLIC, key_values=True)
    assert set(out) == {"id", "type", "location", "dateObserved", "no2"}
    lat, lon = (float(x) for x in out["location"].split(","))
    assert abs(lat - 45.0703) < 0.0091 and abs(lon - 7.6869) < 0.0128  # within a 1 km cell
    assert out["dateObserved"] == "2024-01-01T10:00:00Z" and out["no2"] == 41
    assert policy.k_anonymity is not None
    rows = [out] * 4 + [apply(policy, {**station, "location": "45.2,7.9"}, keys=KEYS, consumer=PUBLIC,
                              key_values=True)] * 5
    kept = k_anonymize(rows, policy.k_anonymity.quasi_identifiers, policy.k_anonymity.k)
    assert len(kept) == 5 and all(r["location"] != out["location"] for r in kept)
