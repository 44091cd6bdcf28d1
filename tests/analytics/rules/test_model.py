"""Rule documents: what parses, and the messages of what does not."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.rules.model import (
    MAX_CHECK_MINUTES,
    MIN_CHECK_MINUTES,
    RuleError,
    parse_detector,
    parse_rule,
)

POST = {"type": "post", "parameters": {"url": "http://example.org/${id}"}}


def rule(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": "r1", "action": POST}
    doc.update(fields)
    return doc


def test_plain_rule_parses_with_its_subject() -> None:
    r = parse_rule(rule(condition={"type": "Room", "idPattern": "^Room", "servicePath": "/farm1/#",
                                   "q": "temperature>30"}))
    assert r.kind == "match"
    assert r.subject.type == "Room"
    assert r.subject.id_pattern == "^Room"
    assert r.subject.scopes == (("/farm1", True),)
    assert r.subject.q is not None and r.subject.q.render() == "temperature>30"


def test_window_rule_keeps_its_aggregates() -> None:
    r = parse_rule(rule(condition={"window": {"minutes": 10, "aggregates": {"avgT": {"avg": "temperature"},
                                                                            "slope": {"rate": "temperature"}},
                                              "q": "avgT>30"}}))
    assert r.kind == "window"
    assert r.window is not None and r.window.aggregates == {"avgT": ("avg", "temperature"),
                                                            "slope": ("rate", "temperature")}


def test_nosignal_fields_follow_perseo_and_check_interval_is_truncated() -> None:
    """plain_rules.md, "No signal conditions": checkInterval is truncated to [0.5, 35791]."""
    low = parse_rule(rule(condition={"nosignal": {"attribute": "t", "reportInterval": "5", "checkInterval": "0.1"}}))
    high = parse_rule(rule(condition={"nosignal": {"attribute": "t", "reportInterval": 5, "checkInterval": 99999}}))
    assert low.nosignal is not None and low.nosignal.check_interval == MIN_CHECK_MINUTES
    assert low.nosignal.report_interval == 5.0
    assert high.nosignal is not None and high.nosignal.check_interval == MAX_CHECK_MINUTES
    assert low.nosignal.max_time_detection == 30 * 86400


def test_action_array_and_interval_as_perseo_writes_it() -> None:
    """plain_rules.md, "Introduction" (action arrays) and "Actions" (``"interval": "30e3"``)."""
    r = parse_rule(rule(action=[dict(POST, interval="30e3"),
                                {"type": "email", "template": "x", "parameters": {"to": "a@b"}}]))
    assert [a.type for a in r.actions] == ["post", "email"]
    assert r.actions[0].interval == 30000.0
    assert r.actions[1].interval is None


def test_derive_defaults_its_service_path_to_the_watched_scope() -> None:
    r = parse_rule({"name": "farm", "condition": {"type": "Field", "servicePath": "/farm1/#"},
                    "derive": {"id": "Farm1", "type": "FarmStats", "attributes": {"avgT": {"avg": "temperature"}}}})
    assert r.kind == "derive"
    assert r.derive is not None and r.derive.service_path == "/farm1"


def test_to_dict_gives_the_document_back() -> None:
    doc = rule(condition={"type": "Room"}, interval=1000)
    r = parse_rule(doc)
    assert r.to_dict() == doc
    assert parse_rule(json.loads(json.dumps(r.to_dict()))) == r


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (rule(name="has space"), "name: 'has space' does not match"),
        (rule(name="x" * 51), "name:"),
        ({"name": "r1"}, "a rule needs an action or a derive"),
        (rule(action={"type": "sms", "parameters": {}}), "action/type: 'sms' is not one of"),
        (rule(action=[POST, {"type": "post", "parameters": {}}]), "action/1/parameters: 'url' is a required"),
        (rule(condition={"id": "a", "idPattern": "b"}), "condition: give id or idPattern, not both"),
        (rule(condition={"idPattern": "(a"}), "condition/idPattern: invalid regular expression"),
        (rule(condition={"servicePath": "farm"}), "condition/servicePath: Only /absolute/"),
        (rule(condition={"q": "temperature>"}), "condition/q: empty right-hand-side in q-item"),
        (rule(condition={"window": {"minutes": 1, "aggregates": {"a": {"avg": "t"}}, "q": "a<>1"}}),
         "condition/window/q:"),
        (rule(condition={"window": {"minutes": 1, "aggregates": {"a": {"median": "t"}}}}), "condition/window"),
        (rule(condition={"window": {"minutes": 1, "aggregates": {"id": {"avg": "t"}}}}), "id and type cannot"),
        (rule(condition={"anomaly": "t", "nosignal": {"attribute": "t", "reportInterval": 1}}),
         "nosignal and anomaly cannot be combined"),
        (rule(condition={"nosignal": {"attribute": "t", "reportInterval": "soon"}}), "reportInterval"),
        (rule(interval="-5"), "interval"),
        (rule(action={"type": "update", "parameters": {"attributes": [{"name": "id", "value": 1}]}}),
         "action/parameters/attributes/0/name: id and type cannot be updated"),
        (rule(action={"type": "update", "parameters": {"attributes": [{"name": "a"}]}}), "'value' is a required"),
        (rule(action={"type": "email", "template": "x", "parameters": {"to": "a@b", "smtp": {}}}),
         "action/parameters: Additional properties"),
        ({"name": "d", "action": POST, "derive": {"id": "a", "type": "b", "attributes": {"n": {"count": "t"}}}},
         "derive: a derived entity rule has no action"),
        ({"name": "d", "condition": {"anomaly": "t"}, "derive": {"id": "a", "type": "b",
                                                               "attributes": {"n": {"count": "t"}}}},
         "cannot have a anomaly condition"),
        ({"name": "d", "derive": {"id": "a", "type": "b", "servicePath": "/x/#", "attributes": {"n": {"count": "t"}}}},
         "derive/servicePath"),
    ],
)
def test_bad_documents_name_the_field(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_rule(doc)
    assert message in str(info.value)


def test_detector_defaults_and_round_trip() -> None:
    d = parse_detector({"type": "Field", "attribute": "temperature", "method": "ewma", "alpha": 0.2})
    assert (d.method, d.alpha, d.threshold, d.min_samples) == ("ewma", 0.2, 3.0, 10)
    assert parse_detector(d.to_dict()) == d
    with pytest.raises(RuleError, match="method"):
        parse_detector({"type": "Field", "attribute": "t", "method": "magic"})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
rule_like = st.fixed_dictionaries(
    {"name": st.sampled_from(["r", "bad name"])},
    optional={
        "condition": st.dictionaries(st.sampled_from(["type", "id", "idPattern", "servicePath", "q", "window",
                                                      "nosignal", "anomaly"]), json_values | st.text(max_size=12)),
        "action": json_values | st.just(POST),
        "derive": json_values,
        "interval": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(rule_like)
def test_parse_rule_fails_only_with_rule_error(doc: dict[str, Any]) -> None:
    """Whatever a client posts, the answer is a Rule or a RuleError with a message."""
    try:
        parse_rule(doc)
    except RuleError as exc:
        assert str(exc)


def test_the_examples_of_docs_rules_md_parse() -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "rules.md").read_text(encoding="utf-8")
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.DOTALL)]
    assert len(blocks) == 3
    kinds = [parse_rule(b).kind for b in blocks]
    assert kinds == ["match", "derive", "match"]
