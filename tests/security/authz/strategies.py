"""Hypothesis strategies shared by the authorization tests: policies over a small world
(two tenants, a few paths, types, ids and attributes, so that random policies and
requests meet often), subjects, and requests from well-formed to garbage."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import strategies as st

from security.authz.policy import Policy, Subject, parse_policy_set
from security.authz.request import ACTIONS

TENANTS = ["coop", "other", ""]
PATHS = ["/#", "/farm1/#", "/farm1", "/farm2", "/farm1/a", "/"]
TYPES = ["Field", "Sensor", "Thing"]
IDS = ["f1", "f2", "s1", "urn:Field:1"]
ID_PATTERNS = ["^f", "^s", "1$", "^urn:"]
ATTRS = ["temperature", "humidity", "owner", "moisture"]
ROLES = ["farmer", "viewer", "admin"]
ORGS = ["coop-org", "x-org"]
USERS = ["u1", "u2"]


def _subset(values: list[str], min_size: int = 1) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(values), min_size=min_size, max_size=len(values), unique=True)


policy_subjects = st.one_of(
    st.fixed_dictionaries({"roles": _subset(ROLES)}),
    st.fixed_dictionaries({"organizations": _subset(ORGS)}),
    st.fixed_dictionaries({"users": _subset(USERS)}),
    st.just({"authenticated": True}),
    st.fixed_dictionaries({"roles": _subset(ROLES), "organizations": _subset(ORGS)}),
)


@st.composite
def policy_docs(draw: st.DrawFn, policy_id: str = "p") -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": policy_id,
        "subject": draw(policy_subjects),
        "actions": draw(st.one_of(_subset(list(ACTIONS)), st.just(["*"]))),
        "tenant": draw(st.sampled_from([*TENANTS, "*"])),
    }
    if draw(st.booleans()):
        doc["servicePaths"] = draw(_subset(PATHS))
    entities: dict[str, Any] = {}
    if draw(st.booleans()):
        entities["types"] = draw(_subset(TYPES, 0))
    if draw(st.booleans()):
        entities["idPattern"] = draw(st.sampled_from(ID_PATTERNS))
    if entities:
        doc["entities"] = entities
    attrs: dict[str, Any] = {}
    if draw(st.booleans()):
        attrs["allow"] = draw(_subset(ATTRS, 0))
    if draw(st.booleans()):
        attrs["deny"] = draw(_subset(ATTRS, 0))
    if attrs:
        doc["attrs"] = attrs
    return doc


@st.composite
def policy_lists(draw: st.DrawFn, max_size: int = 5, prefix: str = "p") -> list[Policy]:
    n = draw(st.integers(min_value=0, max_value=max_size))
    docs = [draw(policy_docs(f"{prefix}{i}")) for i in range(n)]
    return list(parse_policy_set(docs).policies)


def one_policy(policy_id: str) -> st.SearchStrategy[Policy]:
    return policy_docs(policy_id).map(lambda doc: parse_policy_set(doc).policies[0])


subjects = st.builds(
    Subject,
    user_id=st.sampled_from(["", *USERS]),
    app_id=st.sampled_from(["", "app"]),
    roles=st.frozensets(st.sampled_from(ROLES)),
    organizations=st.frozensets(st.sampled_from(ORGS)),
)

bindings: st.SearchStrategy[dict[str, str]] = st.one_of(st.just({}), st.just({"coop": "coop-org"}), st.just({"coop": "coop-org", "other": "x-org"}))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)

names = st.sampled_from([*ATTRS, "id", "type", "", "a.b"])


@st.composite
def entity_docs(draw: st.DrawFn) -> Any:
    doc: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        doc["id"] = draw(st.sampled_from(IDS) | st.text(max_size=5) | json_values)
    if draw(st.booleans()):
        doc["type"] = draw(st.sampled_from(TYPES) | json_values)
    for name in draw(st.lists(names, max_size=3)):
        doc[name] = draw(st.one_of(st.just({"value": 1}), json_values))
    return doc


@st.composite
def selector_lists(draw: st.DrawFn) -> Any:
    items = []
    for _ in range(draw(st.integers(0, 3))):
        item: dict[str, Any] = {}
        key = draw(st.sampled_from(["id", "idPattern", None]))
        if key:
            item[key] = draw(st.sampled_from([*IDS, *ID_PATTERNS, ".*"]) | json_values)
        tkey = draw(st.sampled_from(["type", "typePattern", None]))
        if tkey:
            item[tkey] = draw(st.sampled_from([*TYPES, "F.*"]) | json_values)
        items.append(item)
    return items


ngsi_payloads = st.one_of(
    entity_docs(),
    st.fixed_dictionaries(
        {"actionType": st.sampled_from(["append", "appendStrict", "update", "replace", "delete", "bogus"]) | json_values,
         "entities": st.lists(entity_docs(), max_size=4) | json_values}
    ),
    st.fixed_dictionaries({"entities": selector_lists(), "attrs": st.lists(names, max_size=3) | json_values}),
    st.fixed_dictionaries(
        {"subject": st.fixed_dictionaries(
            {"entities": selector_lists(),
             "condition": st.fixed_dictionaries({"attrs": st.lists(names, max_size=2)}) | json_values}),
         "notification": st.fixed_dictionaries({"attrs": st.lists(names, max_size=3)}) | json_values}
    ),
    st.fixed_dictionaries({"dataProvided": st.fixed_dictionaries({"entities": selector_lists(), "attrs": st.lists(names, max_size=2)})}),
    st.fixed_dictionaries({"subscriptionId": st.just("s"), "data": st.lists(entity_docs(), max_size=3)}),
    st.fixed_dictionaries({"devices": st.lists(st.fixed_dictionaries(
        {"device_id": st.just("d1"), "entity_name": st.sampled_from(IDS), "entity_type": st.sampled_from(TYPES),
         "attributes": st.lists(st.fixed_dictionaries({"object_id": st.just("t"), "name": names}), max_size=2)}), max_size=2)}),
    json_values,
)

bodies = st.one_of(
    st.just(b""),
    ngsi_payloads.map(lambda v: orjson.dumps(v)),
    ngsi_payloads,
    st.binary(max_size=30),
    st.text(max_size=30),
)

ngsi_paths = st.one_of(
    st.sampled_from([
        "/v2/entities", "/v2/entities/f1", "/v2/entities/f1/attrs", "/v2/entities/f1/attrs/owner",
        "/v2/entities/f1/attrs/temperature/value", "/v2/entities/s1/attrs/humidity", "/v2/types", "/v2/types/Field",
        "/v2/op/update", "/v2/op/query", "/v2/op/notify", "/v2/subscriptions", "/v2/subscriptions/abc",
        "/v2/registrations", "/v2/registrations/r1", "/iot/devices", "/iot/devices/d1", "/iot/services",
        "/iot/groups", "/iot/op/delete", "/iot/about", "/iot/d", "/notify", "/version", "/v2", "/admin/log",
        "/v2/entities/", "/v2/entities//attrs", "/v2/op", "/", "",
    ]),
    st.text(max_size=20),
)

queries = st.one_of(
    st.dictionaries(
        st.sampled_from(["type", "id", "idPattern", "typePattern", "attrs", "q", "mq", "options", "orderBy", "georel"]),
        st.sampled_from(["Field", "Sensor", "Field,Sensor", "f1", "f1,s1", "^f", "owner", "temperature,owner",
                         "owner==x", "temperature>3;humidity", "upsert", "append", "keyValues", "values", "!owner",
                         "near;maxDistance:10", "", "*", "'a"]),
        max_size=4,
    ),
    st.text(max_size=20),
    st.binary(max_size=20),
)

header_sets = st.fixed_dictionaries(
    {},
    optional={
        "fiware-service": st.sampled_from(["coop", "COOP", "other", "", "bad name!", "x" * 60]),
        "fiware-servicepath": st.sampled_from(["/farm1", "/farm1/#", "/farm2", "/#", "/", "bad", "/farm1,/farm2", "/*", "/a//b"]),
    },
)

methods = st.sampled_from(["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS", "HEAD", "get", "BREW"])


@st.composite
def well_formed_requests(draw: st.DrawFn) -> tuple[str, str, str, dict[str, str], bytes]:
    """(method, path, query, headers, body) of a valid request over the small world, so
    that random policies often grant it (partly or wholly)."""
    headers = {"fiware-service": draw(st.sampled_from(TENANTS))}
    write_path = draw(st.sampled_from(["/farm1", "/farm2", "/farm1/a", "/"]))
    read_path = draw(st.sampled_from(["/farm1", "/farm1/#", "/farm2", "/#", "/farm1/a"]))
    entity_type = draw(st.sampled_from(TYPES))
    entity_id = draw(st.sampled_from(IDS))
    attrs = draw(_subset(ATTRS))
    kind = draw(st.integers(0, 9))
    if kind == 0:
        query = f"type={entity_type}"
        if draw(st.booleans()):
            query += "&attrs=" + ",".join(attrs)
        if draw(st.booleans()):
            query += f"&q={draw(st.sampled_from(ATTRS))}==1"
        return "GET", "/v2/entities", query, headers | {"fiware-servicepath": read_path}, b""
    if kind == 1:
        query = f"type={entity_type}" + ("&attrs=" + ",".join(attrs) if draw(st.booleans()) else "")
        return "GET", f"/v2/entities/{entity_id}", query, headers | {"fiware-servicepath": write_path}, b""
    if kind == 2:
        body = orjson.dumps({a: {"value": 1} for a in attrs})
        return "PATCH", f"/v2/entities/{entity_id}/attrs", f"type={entity_type}", headers | {"fiware-servicepath": write_path}, body
    if kind == 3:
        return "DELETE", f"/v2/entities/{entity_id}", f"type={entity_type}", headers | {"fiware-servicepath": write_path}, b""
    if kind == 4:
        body = orjson.dumps({"id": entity_id, "type": entity_type} | {a: {"value": 1} for a in attrs})
        return "POST", "/v2/entities", "", headers | {"fiware-servicepath": write_path}, body
    if kind == 5:
        action = draw(st.sampled_from(["append", "appendStrict", "update", "replace", "delete"]))
        entities: list[dict[str, Any]] = [
            {"id": draw(st.sampled_from(IDS)), "type": draw(st.sampled_from(TYPES))} | {a: {} for a in draw(_subset(ATTRS, 0))}
            for _ in range(draw(st.integers(1, 3)))
        ]
        path = write_path if action.startswith("append") else read_path
        return "POST", "/v2/op/update", "", headers | {"fiware-servicepath": path}, orjson.dumps({"actionType": action, "entities": entities})
    if kind == 6:
        body = orjson.dumps({"entities": [{"idPattern": ".*", "type": entity_type}], "attrs": attrs})
        return "POST", "/v2/op/query", "", headers | {"fiware-servicepath": read_path}, body
    if kind == 7:
        body = orjson.dumps({
            "subject": {"entities": [{"id": entity_id, "type": entity_type}]},
            "notification": {"http": {"url": "http://x"}, "attrs": attrs if draw(st.booleans()) else []},
        })
        return "POST", "/v2/subscriptions", "", headers | {"fiware-servicepath": read_path}, body
    if kind == 8:
        return "GET", "/v2/subscriptions", "", headers | {"fiware-servicepath": read_path}, b""
    return "GET", "/iot/devices", "", headers | {"fiware-servicepath": write_path}, b""


# Subjects that random policies often apply to.
member_subjects = st.builds(
    Subject,
    user_id=st.sampled_from(USERS),
    roles=st.frozensets(st.sampled_from(ROLES), min_size=1),
    organizations=st.frozensets(st.sampled_from(ORGS), min_size=1),
)
