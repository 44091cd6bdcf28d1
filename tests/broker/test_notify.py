"""Notifications: which subscriptions fire (matcher) and the requests they send (notify), pure."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.changes import Change
from broker.routes.notify import parse_notification
from broker.subscriptions.matcher import (
    ENTITY_CHANGE,
    ENTITY_CREATE,
    ENTITY_DELETE,
    ENTITY_UPDATE,
    alteration_type,
    alteration_wanted,
    fires,
    same_value,
    service_path_covers,
)
from broker.subscriptions.notify import build, substitute
from ngsi.context import RequestContext
from ngsi.errors import BadRequest
from tests.loopback_receiver import LoopbackReceiver

NOW = 1_700_000_000.0


def attr(value: Any, type_: str = "Number", md: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": type_, "value": value, "md": md or {}, "creDate": NOW, "modDate": NOW}


def entity(attrs: dict[str, Any], id_: str = "E1", type_: str = "T", path: str = "/") -> dict[str, Any]:
    return {"id": id_, "type": type_, "servicePath": path, "attrs": attrs, "creDate": NOW, "modDate": NOW}


def sub(**notification: Any) -> dict[str, Any]:
    subject = notification.pop("subject", {"entities": [{"idPattern": ".*"}], "condition": {}})
    base: dict[str, Any] = {
        "id": "5f0000000000000000000001",
        "subject": subject,
        "notification": {"http": {"url": "http://localhost:1/notify"}, "attrsFormat": "normalized", **notification},
        "status": "active",
        "_servicePath": "/#",
    }
    return base


def update(before: dict[str, Any], after_attrs: dict[str, Any], touched: list[str], forced: bool = False) -> Change:
    after = dict(before, attrs=after_attrs)
    return Change(CTX, "update", before, after, tuple(touched), forced=forced)


CTX = RequestContext(correlator="c0rr")


def body(n: Any) -> Any:
    return json.loads(n.body)




# -- matcher ---------------------------------------------------------------------------------


def test_alteration_types() -> None:
    e = entity({"A": attr(1)})
    assert alteration_type(Change(CTX, "create", None, e, ("A",))) == ENTITY_CREATE
    assert alteration_type(Change(CTX, "delete", e, None, ("A",))) == ENTITY_DELETE
    assert alteration_type(update(e, {"A": attr(1)}, ["A"])) == ENTITY_UPDATE
    assert alteration_type(update(e, {"A": attr(1)}, ["A"], forced=True)) == ENTITY_CHANGE
    assert alteration_type(update(e, {"A": attr(2)}, ["A"])) == ENTITY_CHANGE
    md_only = update(e, {"A": attr(1, md={"m": {"type": "Text", "value": "x"}})}, ["A"])
    assert alteration_type(md_only) == ENTITY_CHANGE
    assert alteration_type(md_only, notify_on_metadata_change=False) == ENTITY_UPDATE


def test_default_alterations_are_create_and_change() -> None:
    assert alteration_wanted(None, ENTITY_CREATE)
    assert alteration_wanted(None, ENTITY_CHANGE)
    assert not alteration_wanted(None, ENTITY_UPDATE)
    assert not alteration_wanted(None, ENTITY_DELETE)
    assert alteration_wanted([ENTITY_UPDATE], ENTITY_CHANGE)
    assert not alteration_wanted([ENTITY_CHANGE], ENTITY_UPDATE)


def test_same_value_keeps_json_types_apart() -> None:
    assert same_value(1, 1.0)
    assert not same_value(True, 1)
    assert not same_value("1", 1)
    assert same_value({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
    assert not same_value({"a": [1]}, {"a": [True]})


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=3),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=2), kids, max_size=3)))
def test_same_value_is_reflexive(value: Any) -> None:
    assert same_value(value, value)


def test_service_paths() -> None:
    assert service_path_covers("/#", "/a/b")
    assert service_path_covers(None, "/a")
    assert service_path_covers("/a/#", "/a")
    assert service_path_covers("/a/#", "/a/b")
    assert not service_path_covers("/a/#", "/ab")
    assert service_path_covers("/a", "/a")
    assert not service_path_covers("/a", "/a/b")


def test_fires_checks_subject_condition_expression_and_status() -> None:
    e = entity({"A": attr(1), "B": attr(5)})
    created = Change(CTX, "create", None, e, ("A", "B"))
    s = sub(subject={"entities": [{"id": "E1", "type": "T"}], "condition": {"attrs": ["B"]}})
    assert fires(s, created, NOW) == ENTITY_CREATE
    assert fires(s, update(e, {"A": attr(2), "B": attr(5)}, ["A"]), NOW) is None
    assert fires(s, update(e, {"A": attr(1), "B": attr(6)}, ["B"]), NOW) == ENTITY_CHANGE
    s["subject"]["condition"]["expression"] = {"q": "B>10"}
    assert fires(s, created, NOW) is None
    s["subject"]["condition"]["expression"] = {"q": "B<10"}
    assert fires(s, created, NOW) == ENTITY_CREATE
    s["subject"]["entities"] = [{"id": "E1", "type": "Other"}]
    assert fires(s, created, NOW) is None
    s["subject"]["entities"] = [{"idPattern": "^E", "typePattern": "^T$"}]
    assert fires(s, created, NOW) == ENTITY_CREATE
    s["status"] = "inactive"
    assert fires(s, created, NOW) is None
    s["status"] = "active"
    s["expires"] = NOW - 1
    assert fires(s, created, NOW) is None
    del s["expires"]
    s["throttling"] = 10
    s["notification"]["lastNotification"] = NOW - 5
    assert fires(s, created, NOW) is None
    assert fires(s, created, NOW + 6) == ENTITY_CREATE


# -- notify ---------------------------------------------------------------------------------


def test_normalized_payload_and_headers() -> None:
    e = entity({"A": attr(1), "B": attr("x", "Text")})
    n = build(sub(), Change(CTX, "create", None, e, ("A", "B")), ENTITY_CREATE, 1)
    assert n is not None
    assert n.body == (
        b'{"subscriptionId":"5f0000000000000000000001","data":[{"id":"E1","type":"T",'
        b'"A":{"type":"Number","value":1,"metadata":{}},"B":{"type":"Text","value":"x","metadata":{}}}]}'
    )
    headers = dict(n.headers)
    assert headers == {
        "Fiware-Servicepath": "/",
        "Content-Type": "application/json; charset=utf-8",
        "Accept": "application/json",
        "User-Agent": "orion/4.1.0",
        "Ngsiv2-AttrsFormat": "normalized",
        "Fiware-Correlator": "c0rr; cbnotif=1",
    }
    assert n.method == "POST" and n.url == "http://localhost:1/notify"


def test_fiware_service_is_the_tenant_or_the_propagated_header() -> None:
    e = entity({"A": attr(1)})
    n = build(sub(), Change(RequestContext(tenant="t1", correlator="c0rr"), "create", None, e, ("A",)), ENTITY_CREATE, 1)
    assert dict(n.headers)["Fiware-Service"] == "t1"  # type: ignore[union-attr]
    n = build(sub(), Change(CTX, "create", None, e, ("A",)), ENTITY_CREATE, 1)
    assert "Fiware-Service" not in dict(n.headers)  # type: ignore[union-attr]
    # without -multiservice Orion still propagates the request's header (1898)
    ctx = RequestContext(correlator="c", service="abc")
    n = build(sub(), Change(ctx, "create", None, e, ("A",)), ENTITY_CREATE, 1)
    assert dict(n.headers)["Fiware-Service"] == "abc"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("keyValues", {"subscriptionId": "5f0000000000000000000001", "data": [{"id": "E1", "type": "T", "B": 2, "A": 1}]}),
        ("values", {"subscriptionId": "5f0000000000000000000001", "data": [[2, 1]]}),
        ("simplifiedKeyValues", {"id": "E1", "type": "T", "B": 2, "A": 1}),
        ("simplifiedNormalized", {"id": "E1", "type": "T", "B": {"type": "Number", "value": 2, "metadata": {}},
                                  "A": {"type": "Number", "value": 1, "metadata": {}}}),
    ],
)
def test_formats_follow_attrs_order(fmt: str, expected: Any) -> None:
    e = entity({"A": attr(1), "B": attr(2), "C": attr(3)})
    n = build(sub(attrs=["B", "A"], attrsFormat=fmt), Change(CTX, "create", None, e, ("A", "B", "C")), ENTITY_CREATE, 1)
    assert n is not None
    assert body(n) == expected
    assert list(body(n)["data"][0] if "data" in body(n) else body(n)) == list(
        expected["data"][0] if "data" in expected else expected)
    assert dict(n.headers)["Ngsiv2-AttrsFormat"] == fmt


def test_except_attrs_only_changed_and_covered() -> None:
    before = entity({"A": attr(1), "B": attr(2), "C": attr(3)})
    change = update(before, {"A": attr(10), "B": attr(2), "C": attr(3)}, ["A", "B"])
    n = build(sub(exceptAttrs=["B"], attrsFormat="keyValues"), change, ENTITY_CHANGE, 1)
    assert body(n)["data"] == [{"id": "E1", "type": "T", "A": 10, "C": 3}]
    n = build(sub(onlyChangedAttrs=True, attrsFormat="keyValues"), change, ENTITY_CHANGE, 1)
    assert body(n)["data"] == [{"id": "E1", "type": "T", "A": 10, "B": 2}]
    n = build(sub(attrs=["A", "Z"], covered=True), change, ENTITY_CHANGE, 1)
    assert body(n)["data"][0]["Z"] == {"type": "None", "value": None, "metadata": {}}


def test_builtin_metadata_and_attrs() -> None:
    before = entity({"A": attr(1), "B": attr(2)})
    change = update(before, {"A": attr(1), "B": attr(20), "N": attr(7)}, ["B", "N"])
    s = sub(attrs=["A", "B", "N", "alterationType"], metadata=["previousValue", "actionType"])
    data = body(build(s, change, ENTITY_CHANGE, 1))["data"][0]
    assert data["A"]["metadata"] == {"previousValue": {"type": "Number", "value": 1}}
    assert data["B"]["metadata"] == {
        "previousValue": {"type": "Number", "value": 2}, "actionType": {"type": "Text", "value": "update"}}
    assert data["N"]["metadata"] == {"actionType": {"type": "Text", "value": "append"}}
    assert data["alterationType"] == {"type": "Text", "value": "entityChange", "metadata": {}}


def test_http_custom_text_payload_headers_qs() -> None:
    e = entity({"A1": attr("a1", "Text"), "A3": attr(13)})
    s = sub()
    s["notification"] = {
        "httpCustom": {
            "url": "http://localhost:1/${id}",
            "method": "PUT",
            "payload": "{ %22A1%22: %22${A1}%22, %22A4%22: %22${A4}%22 }",
            "qs": {"b": "${A3}", "a": "${A4}", "c": "x"},
            "headers": {"content-type": "user/type", "H": "${A1}", "Missing": "${A4}", "accept": ""},
        },
        "attrsFormat": "normalized",
    }
    n = build(s, Change(CTX, "create", None, e, ("A1", "A3")), ENTITY_CREATE, 3)
    assert n is not None
    assert n.method == "PUT"
    assert n.url == "http://localhost:1/E1?b=13&c=x"
    assert n.body == b'{ "A1": "a1", "A4": "null" }'
    headers = dict(n.headers)
    assert headers["content-type"] == "user/type" and "Content-Type" not in headers
    assert headers["H"] == "a1" and "Missing" not in headers
    assert "Accept" not in headers and "accept" not in headers
    assert headers["Ngsiv2-AttrsFormat"] == "custom"
    assert headers["Fiware-Correlator"] == "c0rr; cbnotif=3"


def test_http_custom_json_keeps_types_and_ngsi_patches_entity() -> None:
    e = entity({"A": attr(1), "S": attr("x", "Text")})
    change = Change(CTX, "create", None, e, ("A", "S"))
    s = sub()
    s["notification"] = {"httpCustom": {"url": "http://h/", "json": {"a": "${A}", "s": "v=${S}", "l": ["${S}"]}}}
    assert body(build(s, change, ENTITY_CREATE, 1)) == {"a": 1, "s": "v=x", "l": ["x"]}
    s["notification"] = {
        "httpCustom": {"url": "http://h/", "ngsi": {"id": "${id}-x", "B": {"value": "${A}", "type": "Number"}}},
        "attrsFormat": "normalized",
    }
    data = body(build(s, change, ENTITY_CREATE, 1))["data"][0]
    assert data["id"] == "E1-x"
    assert data["B"] == {"type": "Number", "value": 1, "metadata": {}}
    assert data["A"]["value"] == 1


@given(st.text(alphabet="ab${}", max_size=12))
def test_substitute_never_raises(template: str) -> None:
    substitute(template, {"a": 1}, "")
    substitute(template, {"a": 1})


# -- /v2/op/notify ---------------------------------------------------------------------------


def test_parse_notification() -> None:
    parsed = parse_notification({"subscriptionId": "1", "data": [{"id": "E", "type": "T", "A": {"value": 1}}]})
    assert parsed[0]["id"] == "E" and parsed[0]["attrs"]["A"]["value"] == 1
    with pytest.raises(BadRequest):
        parse_notification({"subscriptionId": "1", "data": [{"id": "E", "A": {"value": "(x)", "type": "Number"}}]})
    with pytest.raises(BadRequest):
        parse_notification([])


# -- sender ----------------------------------------------------------------------------------


class FakeRegistry:
    def __init__(self, subs: list[dict[str, Any]]) -> None:
        self.subs = subs
        self.events: list[tuple[Any, ...]] = []

    def for_tenant(self, tenant: str) -> list[dict[str, Any]]:
        return self.subs

    def record_sent(self, tenant: str, sub_id: str, when: float) -> None:
        self.events.append(("sent", sub_id))

    def record_success(self, tenant: str, sub_id: str, when: float, code: int) -> None:
        self.events.append(("success", sub_id, code))

    def record_failure(self, tenant: str, sub_id: str, when: float, reason: str) -> None:
        self.events.append(("failure", sub_id, reason))


def values(receiver: LoopbackReceiver, attr_name: str = "A") -> list[Any]:
    return [json.loads(r[2])["data"][0][attr_name]["value"] for r in receiver.requests]


def test_notifier_delivers_in_order_and_records_outcomes() -> None:
    import asyncio

    from broker.subscriptions.sender import Notifier

    async def scenario() -> tuple[FakeRegistry, LoopbackReceiver]:
        async with LoopbackReceiver() as receiver:
            registry = FakeRegistry([sub(http={"url": receiver.url})])
            notifier = Notifier(registry, connections=2, queue_size=2)
            await notifier.start()
            ctx = RequestContext(correlator="cc")
            for value in (1, 2, 3):
                e = entity({"A": attr(value)})
                notifier.dispatch(Change(ctx, "create", None, e, ("A",)))
            await notifier.drain()
            await notifier.stop()
            return registry, receiver

    registry, receiver = asyncio.run(scenario())
    # queue of 2: the third notification is dropped and recorded as a failure
    assert values(receiver) == [1, 2]
    line, headers, _ = receiver.requests[0]
    assert line == "POST /notify HTTP/1.1"
    assert [r[1]["fiware-correlator"] for r in receiver.requests] == ["cc; cbnotif=1", "cc; cbnotif=2"]
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["user-agent"] == "orion/4.1.0" and headers["ngsiv2-attrsformat"] == "normalized"
    assert "accept-encoding" not in headers
    assert registry.events.count(("success", "5f0000000000000000000001", 200)) == 2
    assert ("failure", "5f0000000000000000000001", "notification queue is full") in registry.events


def test_notifier_parallel_across_entities_ordered_per_entity() -> None:
    """One catch-all subscription: different entities go out on several connections at
    once, the updates of one entity strictly one after the other, in trigger order."""
    import asyncio
    import time as clock

    from broker.subscriptions.sender import Notifier

    async def scenario() -> tuple[LoopbackReceiver, float]:
        async with LoopbackReceiver(delay=0.1) as receiver:
            registry = FakeRegistry([sub(http={"url": receiver.url})])
            notifier = Notifier(registry, connections=8)
            await notifier.start()
            ctx = RequestContext(correlator="cc")
            began = clock.monotonic()
            for value in range(3):
                for i in range(8):
                    e = entity({"A": attr(value)}, id_=f"E{i}")
                    notifier.dispatch(Change(ctx, "create", None, e, ("A",)))
            await notifier.drain()
            took = clock.monotonic() - began
            await notifier.stop()
            return receiver, took

    receiver, took = asyncio.run(scenario())
    assert len(receiver.requests) == 24
    assert 2 <= receiver.most_in_flight <= 8
    assert took < 1.5  # 24 x 0.1 s one at a time would take 2.4 s
    per_entity: dict[str, list[Any]] = {}
    for _, _, data in receiver.requests:
        item = json.loads(data)["data"][0]
        per_entity.setdefault(item["id"], []).append(item["A"]["value"])
    assert per_entity == {f"E{i}": [0, 1, 2] for i in range(8)}


def test_notifier_opens_connections_to_a_receiver_as_it_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst of 7 notifications to one receiver that is slow to answer: at most RAMP (4)
    connections wait for a first answer at a time, and each answer lets one more open. A
    receiver with Python's listen backlog of 5 that is slow to accept drops connections
    beyond it, and the kernel tries them again a second later: Orion's case
    2015_notification_templates then read its receiver before the last notification came."""
    import asyncio
    import socket

    from broker.subscriptions import sender
    from broker.subscriptions.sender import Notifier

    monkeypatch.setattr(sender, "RESPONSIVE", 60.0)  # no regrowth by time: only answers count
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.setblocking(False)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/notify"
    accepted: list[socket.socket] = []

    async def settle() -> int:
        """Accept what the broker has connected until nothing new comes for 0.3 s."""
        quiet_since = asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - quiet_since < 0.3:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            conn.setblocking(False)
            accepted.append(conn)
            quiet_since = asyncio.get_running_loop().time()
        return len(accepted)

    async def answer(conn: socket.socket) -> bool:
        """Read one request on ``conn`` and answer it (keep-alive); False once it is closed."""
        data = b""
        while b"\r\n\r\n" not in data:
            try:
                chunk = conn.recv(65536)
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            if not chunk:
                return False
            data += chunk
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        return True

    async def serve(conn: socket.socket) -> None:
        while await answer(conn):
            pass

    async def scenario() -> tuple[list[int], FakeRegistry]:
        subs = [dict(sub(http={"url": url}), id=f"5f000000000000000000000{i}") for i in range(7)]
        registry = FakeRegistry(subs)
        notifier = Notifier(registry)
        await notifier.start()
        notifier.dispatch(Change(CTX, "create", None, entity({"A": attr(1)}), ("A",)))
        counts = [await settle()]
        await answer(accepted[0])
        counts.append(await settle())
        servers = [asyncio.ensure_future(serve(conn)) for conn in accepted]
        while notifier.outstanding:  # answer everything from now on
            before = len(accepted)
            await settle()
            servers += [asyncio.ensure_future(serve(conn)) for conn in accepted[before:]]
        counts.append(len(accepted))
        await notifier.drain()
        await notifier.stop()
        for task in servers:
            task.cancel()
        return counts, registry

    try:
        counts, registry = asyncio.run(scenario())
    finally:
        for conn in accepted:
            conn.close()
        listener.close()
    assert counts[:2] == [4, 5]
    assert counts[-1] <= 7  # keep-alive connections carry the rest
    assert sum(1 for e in registry.events if e[0] == "success") == 7


def test_notifier_back_pressure_waits_instead_of_dropping() -> None:
    """A receiver that answers but slower than updates come: writers wait while the
    backlog is above the busy mark, nothing is dropped, the backlog stays bounded."""
    import asyncio

    from broker.subscriptions.sender import Notifier

    async def scenario() -> tuple[LoopbackReceiver, FakeRegistry, int]:
        async with LoopbackReceiver(delay=0.005) as receiver:
            registry = FakeRegistry([sub(http={"url": receiver.url})])
            notifier = Notifier(registry, connections=2, queue_size=40, busy_mark=5, busy_wait=5.0)
            await notifier.start()
            # one notification delivered first: the destination is known to answer
            await notifier.listener(Change(CTX, "create", None, entity({"A": attr(-1)}, id_="E0"), ("A",)))
            await notifier.drain()
            highest = 0
            for value in range(100):
                await notifier.listener(Change(CTX, "create", None, entity({"A": attr(value)}, id_=f"E{value}"), ("A",)))
                highest = max(highest, notifier.outstanding)
            await notifier.drain()
            await notifier.stop()
            return receiver, registry, highest

    receiver, registry, highest = asyncio.run(scenario())
    assert len(receiver.requests) == 101  # 100 updates with a queue of 40: none dropped
    assert not [e for e in registry.events if e[0] == "failure"]
    assert highest <= 5 + 1 + 2  # the mark, the one just added, those in flight


def test_notifier_dead_receiver_fails_fast_with_orion_reason() -> None:
    import asyncio
    import socket

    from broker.subscriptions.sender import Notifier

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens there

    async def scenario() -> FakeRegistry:
        registry = FakeRegistry([sub(http={"url": f"http://127.0.0.1:{port}/notify"})])
        notifier = Notifier(registry)
        await notifier.start()
        await notifier.listener(Change(CTX, "create", None, entity({"A": attr(1)}), ("A",)))
        await notifier.drain()
        await notifier.stop()
        return registry

    registry = asyncio.run(scenario())
    assert registry.events == [
        ("sent", "5f0000000000000000000001"),
        ("failure", "5f0000000000000000000001", "Could not connect to server"),
    ]


def test_index_finds_subscriptions_by_entity_id_in_creation_order() -> None:
    """1,000 per-entity subscriptions and a pattern one: a write looks at its own and the pattern."""
    from broker.subscriptions.sender import _Index

    class Registry:
        def __init__(self, subs: list[dict[str, Any]]) -> None:
            self._tenants = {"": {s["id"]: s for s in subs}}
            self.listeners: list[Any] = []

        def for_tenant(self, tenant: str) -> list[dict[str, Any]]:
            return list(self._tenants.get(tenant, {}).values())

        def get(self, tenant: str, sub_id: str) -> dict[str, Any] | None:
            return self._tenants.get(tenant, {}).get(sub_id)

    def one(sub_id: str, entities: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": sub_id, "subject": {"entities": entities}}

    subs = [one(f"s{i:04d}", [{"id": f"R{i}", "type": "Room"}]) for i in range(500)]
    subs.append(one("pattern", [{"idPattern": "^R1"}]))
    subs += [one(f"s{i:04d}", [{"id": f"R{i}"}, {"id": "R7"}]) for i in range(500, 1000)]
    registry = Registry(subs)
    index = _Index(registry)
    assert [s["id"] for s in index.candidates("", "R3")] == ["s0003", "pattern"]
    assert [s["id"] for s in index.candidates("", "R7")][:2] == ["s0007", "pattern"]
    assert len(index.candidates("", "R7")) == 2 + 500
    assert [s["id"] for s in index.candidates("", "R600")] == ["pattern", "s0600"]
    assert [s["id"] for s in index.candidates("", "X")] == ["pattern"]
    # a change announced by the registry is seen at once
    registry._tenants[""]["late"] = one("late", [{"id": "X"}])
    for listener in registry.listeners:
        listener("", "create", registry._tenants[""]["late"])
    assert [s["id"] for s in index.candidates("", "X")] == ["pattern", "late"]
    # a full reload (a new mapping) too
    registry._tenants = {"": {"only": one("only", [{"id": "X"}])}}
    assert [s["id"] for s in index.candidates("", "X")] == ["only"]


def test_notification_mode_option() -> None:
    """Orion's -notificationMode threadpool:q:n sizes the queue and the connections."""
    from broker.config import ConfigError, parse
    from broker.subscriptions.sender import notification_mode

    assert notification_mode("threadpool:100:10") == {"queue_size": 100, "connections": 10}
    assert notification_mode("transient") == notification_mode("") == {}
    assert parse(["-notificationMode", "threadpool:5:2"]).notification_mode == "threadpool:5:2"
    for bad in ("threadpool:0:1", "threadpool:x:1", "pool:1:1", "threadpool:10"):
        with pytest.raises(ConfigError):
            parse(["-notificationMode", bad])
