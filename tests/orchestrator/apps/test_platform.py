"""The subscriptions made for an app (``orchestrator/apps/platform.py``), as pure data."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.apps.manifest import parse_manifest
from orchestrator.apps.platform import description, subscription_body

words = st.from_regex(r"^[A-Za-z][A-Za-z0-9_]{0,8}$", fullmatch=True)


@given(st.lists(words, max_size=3), st.lists(words, max_size=3), st.integers(0, 1000), words,
       st.sampled_from(["/", "/notify", "/a/b"]))
def test_subscription_body_follows_the_need(attrs: list[str], condition: list[str], throttling: int, kind: str,
                                             endpoint: str) -> None:
    doc: dict[str, Any] = {"name": "my-app", "runtime": "shell", "entry": "x", "ports": [{"name": "http", "port": 1}],
                           "needs": {"subscriptions": [{"entities": [{"idPattern": ".*", "type": kind}], "attrs": attrs,
                                                        "condition": condition, "endpoint": endpoint,
                                                        "throttling": throttling}]}}
    need = parse_manifest(doc).needs.subscriptions[0]
    body = subscription_body("my-app", need, "http://127.0.0.1:4000/")
    assert body["description"] == description("my-app") == "waziup-app:my-app"
    assert body["subject"]["entities"] == [{"idPattern": ".*", "type": kind}]
    assert body["notification"]["http"]["url"] == "http://127.0.0.1:4000" + endpoint
    assert body["notification"].get("attrs", []) == attrs
    assert body["subject"].get("condition", {}).get("attrs", []) == condition
    assert body.get("throttling", 0) == throttling


def _decide(method: str, path: str, body: Any = b"", query: str = "", path_header: str = "/") -> bool:
    from ngsi.context import Identity
    from security.authz.decide import decide
    from security.authz.policy import parse_policy_set
    from security.authz.request import describe

    from orchestrator.apps.platform import grants

    manifest = parse_manifest({"name": "average-app", "runtime": "python", "entry": "app.py", "tenant": "farm7",
                               "needs": {"commands": [{"type": "Pump"}]}})
    policies = parse_policy_set({"policies": [{**grant, "subject": {"roles": ["r1"]}}
                                              for grant in grants("average-app", manifest, "farm7")]})
    headers = {"fiware-service": "farm7", "fiware-servicepath": path_header, "content-type": "application/json"}
    request = describe(method, path, query, headers, body)
    return decide(Identity(user_id="u", roles=("r1",)), request, policies).allow


def test_the_grants_allow_what_the_app_needs_and_nothing_more() -> None:
    import json

    own = {"actionType": "append", "entities": [{"id": "urn:waziup:average-app:r1", "type": "Average",
                                                 "average": {"type": "Number", "value": 1}}]}
    other = {"actionType": "append", "entities": [{"id": "r1", "type": "Room", "temperature": {"value": 1}}]}
    pump = {"actionType": "update", "entities": [{"id": "p1", "type": "Pump", "on": {"value": True}}]}
    sub = {"subject": {"entities": [{"idPattern": ".*", "type": "Room"}]},
           "notification": {"http": {"url": "http://127.0.0.1:1/notify"}}}
    assert _decide("POST", "/v2/op/update", json.dumps(own).encode())
    assert _decide("GET", "/v2/entities", query="type=Room")
    assert _decide("POST", "/v2/subscriptions", json.dumps(sub).encode())
    assert _decide("POST", "/v2/op/update", json.dumps(pump).encode())
    assert not _decide("POST", "/v2/op/update", json.dumps(other).encode())
    assert not _decide("DELETE", "/v2/entities/r1")
