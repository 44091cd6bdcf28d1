"""Perseo's ``${...}`` substitution (plain_rules.md, "String substitution syntax")."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.rules.templates import (
    UNKNOWN,
    cast_text,
    event_vars,
    lookup,
    render_json_text,
    render_text,
    render_value,
    to_text,
)

ENTITY = {
    "id": "bloodm1",
    "type": "BloodMeter",
    "BloodPressure": {"type": "Number", "value": 2, "metadata": {"crs": {"type": "Object", "value": {"system": "WGS84"}}}},
    "myObj": {"type": "StructuredValue", "value": {"a": 1, "b": {"c": "deep"}}},
    "myArray": {"type": "StructuredValue", "value": ["green", "blue"]},
    "ratio": {"type": "Number", "value": 0.25},
}
VARS = event_vars(ENTITY, {"ruleName": "r1"})


def test_id_type_and_attribute_values() -> None:
    assert render_text("${id} (${type}) has ${BloodPressure} by ${ruleName}", VARS) == "bloodm1 (BloodMeter) has 2 by r1"


def test_metadata_object_and_array_fields() -> None:
    """"Metadata values" and "JSON and Array fields in attributes"."""
    assert render_text("${BloodPressure__metadata__crs__system}", VARS) == "WGS84"
    assert render_text("${myObj__a}/${myObj__b__c}/${myArray__1}", VARS) == "1/deep/blue"
    assert render_text("${myObj}", VARS) == '{"a":1,"b":{"c":"deep"}}'


def test_unknown_variables_render_as_perseo_does() -> None:
    assert render_text("x=${nothing} y=${myArray__7}", VARS) == f"x={UNKNOWN} y={UNKNOWN}"


def test_attribute_names_with_double_underscore_are_found() -> None:
    variables = event_vars({"id": "e", "type": "T", "a__b": {"value": {"c": 5}}})
    assert lookup(variables, "a__b__c") == 5


def test_numbers_print_as_javascript_does() -> None:
    assert [to_text(v) for v in (42.0, 0.5, True, None, 3)] == ["42", "0.5", "true", "null", "3"]


def test_render_value_keeps_numbers_and_booleans_native() -> None:
    """"expanded to numerical, boolean or JSON stringyfied values instead of string values"."""
    template = {"a": "${BloodPressure}", "b": "${myObj}", "c": "p=${BloodPressure}", "${id}": "${ratio}", "n": 7}
    assert render_value(template, VARS) == {"a": 2, "b": '{"a":1,"b":{"c":"deep"}}', "c": "p=2", "bloodm1": 0.25,
                                            "n": 7}


def test_cast_text_reads_json_scalars_only() -> None:
    assert [cast_text(s) for s in ("32.12", "12", "true", "null", "1e3", "0x10", "abc", "")] == [
        32.12, 12, True, None, 1000.0, "0x10", "abc", ""]


def test_json_template_escapes_inside_strings_and_writes_literals_outside() -> None:
    variables = event_vars({"id": 'a"b\\c', "type": "T", "t": {"value": 21.5}, "s": {"value": "x y"}})
    body = render_json_text('{"id": "${id}", "t": ${t}, "s": ${s}, "m": ${missing}, "k": "${missing}"}', variables)
    assert json.loads(body) == {"id": 'a"b\\c', "t": 21.5, "s": "x y", "m": None, "k": UNKNOWN}


def test_json_template_respects_escaped_quotes_in_the_template() -> None:
    body = render_json_text('{"a": "say \\"${t}\\"", "b": ${t}}', {"t": "hi"})
    assert json.loads(body) == {"a": 'say "hi"', "b": "hi"}


names = st.text(alphabet=st.characters(blacklist_characters="{}", blacklist_categories=["Cs"]), min_size=1, max_size=10)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
attributes = st.dictionaries(names.filter(lambda n: n not in ("id", "type")),
                             st.fixed_dictionaries({"type": st.text(max_size=5), "value": values},
                                                   optional={"metadata": st.dictionaries(names, st.fixed_dictionaries({"value": values}), max_size=2)}),
                             max_size=4)
entities = st.builds(lambda i, t, a: {"id": i, "type": t, **a}, st.text(max_size=10), st.text(max_size=10), attributes)


@settings(max_examples=300, deadline=None)
@given(entities, st.lists(st.one_of(st.text(max_size=6), names.map(lambda n: "${" + n + "}"),
                                   st.sampled_from(["${id}", "${type}", '"', "\\", "${x__0}"])), max_size=8))
def test_templates_never_raise_on_any_entity(entity: dict[str, Any], pieces: list[str]) -> None:
    variables = event_vars(entity, {"ruleName": "r"})
    template = "".join(pieces)
    assert isinstance(render_text(template, variables), str)
    assert render_text(template.replace("$", ""), variables) == template.replace("$", "")
    assert render_text("<${id}>", variables) == f"<{to_text(entity['id'])}>"
    rendered = render_value({"k": template, "l": [template]}, variables)
    assert set(rendered) == {"k", "l"} and len(rendered["l"]) == 1
    assert isinstance(render_json_text(template, variables), str)


@settings(max_examples=300, deadline=None)
@given(entities, st.lists(names, min_size=1, max_size=4))
def test_json_templates_stay_json_whatever_the_values(entity: dict[str, Any], keys: list[str]) -> None:
    """A JSON template with placeholders as values and inside strings renders to valid JSON."""
    variables = event_vars(entity)
    attrs = [k for k in entity if k not in ("id", "type")] + keys
    template = "{" + ", ".join(f'"k{i}": ${{{a}}}, "s{i}": "<${{{a}}}>"' for i, a in enumerate(attrs)) + "}"
    parsed = json.loads(render_json_text(template, variables))
    assert len(parsed) == 2 * len(attrs)
    for i, a in enumerate(attrs):
        value = lookup(variables, a)
        if isinstance(value, (int, str, bool)) or value is None:
            assert parsed[f"k{i}"] == value
        if isinstance(value, float) and math.isfinite(value):
            assert parsed[f"k{i}"] == value
