"""The notifier's fast path (``stored.apply_stored``, on the broker's internal form) gives
the same release as the engine on the rendered entity (``apply_rendered``), for any
policy and entity: both rendered as a reply would, with the same noise draws."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ngsi.render import render_entity
from security.privacy.keys import KeyRing
from security.privacy.policy import parse_policy
from security.privacy.stored import apply_rendered, apply_stored
from tests.security.privacy.strategies import NAMES, policy_docs, values

KEYS = KeyRing.generate()


@st.composite
def stored_entities(draw: st.DrawFn) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES))):
        kind = draw(st.sampled_from(["Number", "Text", "Relationship", "DateTime", "geo:point"]))
        if kind == "DateTime":
            value: Any = draw(st.floats(0, 4e9))
        elif kind == "geo:point":
            value = f"{draw(st.floats(-80, 80)):.5f},{draw(st.floats(-170, 170)):.5f}"
        else:
            value = draw(values)
        mds = {md: ({"type": "DateTime", "value": draw(st.floats(0, 4e9))} if md == "TimeInstant"
                    else {"type": "Text", "value": draw(values)})
               for md in draw(st.lists(st.sampled_from([*NAMES, "previousValue"]), unique=True, max_size=3))}
        attrs[name] = {"type": kind, "value": value, "md": mds, "creDate": 1.0, "modDate": 2.0}
    return {"id": draw(st.text(min_size=1, max_size=10)), "type": "Meter", "servicePath": "/", "attrs": attrs,
            "creDate": 1.0, "modDate": 2.0}


@settings(max_examples=300, deadline=None)
@given(policy_docs(), stored_entities(), st.integers(0, 2**32))
def test_the_fast_path_releases_what_the_engine_releases(doc: dict[str, Any], entity: dict[str, Any], seed: int) -> None:
    policy = parse_policy(doc)
    fast = apply_stored(policy, entity, keys=KEYS, consumer=policy.consumer, rng=random.Random(seed))
    reference = apply_rendered(policy, entity, keys=KEYS, consumer=policy.consumer, rng=random.Random(seed))
    assert render_entity(fast) == render_entity(reference)
    assert fast["servicePath"] == "/" and entity["attrs"] is not fast["attrs"]  # the input is left alone
