"""One consumer's release (security/privacy/release.py): which policy, refusals before
charges, the budget spent once per query and policy, k-anonymity on CSV records."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngsi.context import Identity
from ngsi.release import Block, Refused
from security.privacy.keys import KeyRing
from security.privacy.policy import Consumer, parse_policies
from security.privacy.release import ConsumerRelease, Snapshot, consumers_of, trusted_ids

ANALYST = {
    "id": "analyst", "consumer": {"kind": "user", "id": "u-analyst"}, "tenant": "energy", "entityType": "Meter",
    "attributes": {"power": [{"transform": "noise", "epsilon": 0.5, "sensitivity": 3000}],
                   "TimeInstant": [{"transform": "generalize", "period": "PT1H"}], "*": [{"transform": "drop"}]},
    "idTransform": {"transform": "pseudonymize"},
    "aggregation": {"methods": ["avg"], "period": "hour"}, "budget": {"epsilon": 1.0, "period": "P1D"},
}
MAP = {
    "id": "map", "consumer": {"kind": "organization", "id": "o-city"}, "entityType": "Air",
    "attributes": {"location": [{"transform": "generalize", "grid": 1000}]},
    "kAnonymity": {"k": 2, "quasiIdentifiers": ["location", "TimeInstant"]},
}


class Ledger:
    def __init__(self, allowance: float) -> None:
        self.allowance, self.spent, self.calls = allowance, 0.0, 0

    async def __call__(self, consumer: str, policy: str, epsilon: float) -> bool:
        self.calls += 1
        if self.spent + epsilon > self.allowance + 1e-9:
            return False
        self.spent += epsilon
        return True


def release(ledger: Ledger | None = None, *consumers: Consumer) -> ConsumerRelease:
    snapshot = Snapshot(3, parse_policies([ANALYST, MAP]), KeyRing.generate())
    return ConsumerRelease(snapshot, consumers or (Consumer("user", "u-analyst"),), ledger, random.Random(7))


def meter(entity_id: str = "M1") -> Block:
    return Block(entity_id, "Meter", "/", ["2026-12-04T10:00:00.000+00:00", "2026-12-04T11:00:00.000+00:00"],
                 {"power": [800.0, 900.0], "owner": ["alice", "alice"]}, {"power": "Number", "owner": "Text"})


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_aggregates_only_then_charged_then_refused_once_spent() -> None:
    ledger = Ledger(1.0)
    mine = release(ledger)
    with pytest.raises(Refused, match="aggregates only"):
        run(mine.history("energy", [meter()], aggr_method=None, aggr_period=None))
    with pytest.raises(Refused, match="aggrPeriod hour or coarser"):
        run(mine.history("energy", [meter()], aggr_method="avg", aggr_period="minute"))
    assert ledger.calls == 0  # refused answers cost nothing
    for _ in range(2):  # 0.5 each, once per query however many meters
        out = run(mine.history("energy", [meter("M1"), meter("M2")], aggr_method="avg", aggr_period="hour"))
        assert [b.entity_id.startswith("pz:") for b in out] == [True, True]
        assert all(set(b.values) == {"power"} for b in out)  # owner dropped by "*"
        assert out[0].values["power"] != [800.0, 900.0]  # noised
    assert ledger.spent == pytest.approx(1.0)
    with pytest.raises(Refused, match="budget of user:u-analyst under policy analyst is spent"):
        run(mine.history("energy", [meter()], aggr_method="avg", aggr_period="day"))


def test_no_spender_refuses_noise_and_others_are_untouched() -> None:
    with pytest.raises(Refused):
        run(release(None).history("energy", [meter()], aggr_method="avg", aggr_period="hour"))
    other = release(Ledger(1), Consumer("user", "someone-else"))
    assert run(other.history("energy", [meter()], aggr_method=None, aggr_period=None))[0].values["owner"] == ["alice"] * 2
    assert run(release(Ledger(1)).history("other-tenant", [meter()], aggr_method=None, aggr_period=None))[0].entity_id == "M1"


def test_k_anonymity_on_records() -> None:
    city = release(None, Consumer("organization", "o-city"))
    # three stations, two in the same 1 km cell at 10:00, the third alone in its cell
    blocks = [Block(f"S{i}", "Air", "/", ["2026-12-04T10:00:00Z"], {"location": [loc], "pm10": [i]})
              for i, loc in enumerate(["5.3001,4.0001", "5.3002,4.0002", "5.4,4.1"])]
    out = run(city.history("", blocks, aggr_method=None, aggr_period=None))
    rows = [{"entityId": b.entity_id, "entityType": "Air", "attrName": name, "index": b.index[0], "value": v[0]}
            for b in out for name, v in b.values.items()]
    kept = city.table("", rows)
    assert sorted({r["entityId"] for r in kept}) == ["S0", "S1"] and len(kept) == 4


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["power", "owner", "serial"]), st.floats(0, 5000)), min_size=1, max_size=6))
def test_a_dropped_attribute_never_leaves(values: list[tuple[str, float]]) -> None:
    block = Block("M1", "Meter", "/", ["2026-12-04T10:00:00Z"], {name: [v] for name, v in values})
    out = run(release(Ledger(100)).history("energy", [block], aggr_method="avg", aggr_period="hour"))
    assert set(out[0].values) <= {"power"}


def test_consumers_and_trusted_ids() -> None:
    identity = Identity(user_id="u1", app_id="a1", organizations=("o1",))
    assert consumers_of(identity) == (Consumer("user", "u1"), Consumer("application", "a1"), Consumer("organization", "o1"))
    assert trusted_ids({"WAZIUP_PRIVACY_TRUSTED": " a, b ,,"}) == frozenset({"a", "b"})
