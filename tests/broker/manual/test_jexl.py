"""JEXL in subscriptions, end to end, from Orion's manual (orion-api.md): "Custom Notifications"
(macro substitution in url, headers, qs, payload, json and ngsi), "JEXL support in custom
notifications" (usage example, metadata, evaluation priority, transformations, failsafe cases,
known limitations) and ``subject.condition.jexlExpression``.

Each test creates a real subscription on the whole broker app (``broker_client``), writes
entities, and reads what a real HTTP receiver got. The receiver is the ``Receiver`` of
tests/broker/conftest.py, recording every request whole (method, path and query, headers,
raw body), since custom notifications may be a PUT, carry text or nothing. The module runs
on SQLite and PostgreSQL: the context the expressions see (attribute values and their JSON
types, metadata, previous values, dates) is what the store gives back.

The evaluator's own behaviour (every transformation, operators, wrong types) is tested without
a broker in tests/ngsi/test_jexl.py. Tests marked ``xfail(strict=True)`` state where the
broker differs from the manual today.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.broker.api_client import ApiClient, broker_client, create
from tests.broker.conftest import Receiver

# -- a receiver that keeps whole requests ---------------------------------------------------


@dataclass
class Request:
    method: str
    path: str  # with the query string
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def entity(self) -> dict[str, Any]:
        """The one entity of a normalized notification."""
        body = self.json()
        assert len(body["data"]) == 1, body
        entity: dict[str, Any] = body["data"][0]
        return entity


class FullReceiver(Receiver):
    """``Receiver`` with a handler recording every method and the request as it came."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Request] = []
        requests, lock = self.requests, self.lock

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def record(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    requests.append(Request(self.command, self.path, self.headers, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = do_PATCH = do_DELETE = do_GET = record

            def log_message(self, *args: object) -> None:
                pass

        # The server reads this attribute for each connection; none came before this line.
        self.server.RequestHandlerClass = Handler

    def count(self) -> int:
        with self.lock:
            return len(self.requests)


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The broker's -dbURI (named ``store`` so conftest groups the PostgreSQL runs on one worker)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/broker.db"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def client(store: str) -> Iterator[ApiClient]:
    with broker_client(db_uri=store, notif_allowed_hosts=("127.0.0.1",)) as c:
        yield c


@pytest.fixture(scope="module")
def _receiver() -> Iterator[FullReceiver]:
    r = FullReceiver()  # one per module: closing one waits for its poll interval (0.5 s)
    yield r
    r.close()


@pytest.fixture
def rx(_receiver: FullReceiver) -> FullReceiver:
    """The module's receiver, emptied (each test has a broker of its own, closed after it)."""
    with _receiver.lock:
        _receiver.requests.clear()
    return _receiver


def pump(client: ApiClient, seconds: float) -> None:
    """Let the broker's loop run (the notifier sends from it) for ``seconds``."""
    client._run(asyncio.sleep(seconds))


def notified(client: ApiClient, rx: FullReceiver, n: int, timeout: float = 10) -> list[Request]:
    """Exactly ``n`` notifications received so far (waiting for them), in arrival order."""
    deadline = time.monotonic() + timeout
    while rx.count() < n and time.monotonic() < deadline:
        pump(client, 0.02)
    pump(client, 0.1)  # one too many would show now
    assert rx.count() == n, [(r.method, r.path, r.body) for r in rx.requests]
    return list(rx.requests)


def subscribe(client: ApiClient, notification: dict[str, Any], *, entity: str = "E1",
              condition: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> str:
    subject: dict[str, Any] = {"entities": [{"id": entity}]}
    if condition is not None:
        subject["condition"] = condition
    response = client.post("/v2/subscriptions", json={"subject": subject, "notification": notification},
                           headers=headers)
    assert response.status_code == 201, response.text
    return response.headers["location"].rsplit("/", 1)[1]


def update(client: ApiClient, attrs: dict[str, Any], *, entity: str = "E1",
           headers: dict[str, str] | None = None, append: bool = False) -> None:
    """PATCH the entity's attributes (POST, update or append, with ``append``)."""
    method = client.post if append else client.patch
    response = method(f"/v2/entities/{entity}/attrs", json=attrs, headers=headers)
    assert response.status_code == 204, response.text


def ngsi_values(client: ApiClient, rx: FullReceiver, attrs: dict[str, Any], ngsi: dict[str, Any],
                **extra: Any) -> dict[str, Any]:
    """Create E1 with ``attrs`` under a subscription patching ``ngsi``: the notified values."""
    subscribe(client, {"httpCustom": {"url": rx.url, "ngsi": ngsi}, **extra})
    create(client, {"id": "E1", "type": "T", **attrs})
    entity = notified(client, rx, 1)[0].entity()
    return {name: body["value"] for name, body in entity.items() if name not in ("id", "type")}


def json_payload(client: ApiClient, rx: FullReceiver, attrs: dict[str, Any], template: Any) -> Any:
    """Create E1 with ``attrs`` under a subscription with ``json`` ``template``: the body sent."""
    subscribe(client, {"httpCustom": {"url": rx.url, "json": template}})
    create(client, {"id": "E1", "type": "T", **attrs})
    return notified(client, rx, 1)[0].json()


# -- "Custom Notifications" > "Macro substitution" ---------------------------------------------


def test_macro_substitution_example_url_method_qs_and_json(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Custom Notifications' > 'Macro substitution': the example (url
    ``.../entity/${id}``, PUT, qs ``type=${type}``, json ``"t": "${temperature}"``) gives
    ``PUT .../entity/DC_S1-D41?type=Room`` with ``{"t": 23.4, "unit": "degress"}``."""
    subscribe(client, {"httpCustom": {
        "url": rx.base + "/entity/${id}", "method": "PUT", "qs": {"type": "${type}"},
        "json": {"t": "${temperature}", "unit": "degress"},
    }}, entity="DC_S1-D41")
    create(client, {"id": "DC_S1-D41", "type": "Room", "temperature": {"value": 23.4, "type": "Number"}})
    [sent] = notified(client, rx, 1)
    assert (sent.method, sent.path) == ("PUT", "/entity/DC_S1-D41?type=Room")
    assert sent.headers["Content-Type"].startswith("application/json")
    assert sent.json() == {"t": 23.4, "unit": "degress"}


def test_context_holds_id_type_service_service_path_and_auth_token(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Macro substitution': "id", "type", "service" and "servicePath" (the
    fiware-service/-servicepath of the update request), "authToken" (its x-auth-token)."""
    tenant = {"Fiware-Service": "smartcity", "Fiware-ServicePath": "/parks/north"}
    subscribe(client, {"httpCustom": {
        "url": rx.url, "payload": "${id} ${type} ${service} ${servicePath} ${authToken}",
    }}, headers=tenant)
    create(client, {"id": "E1", "type": "T", "A": {"value": 1}}, headers={**tenant, "X-Auth-Token": "tok42"})
    [sent] = notified(client, rx, 1)
    assert sent.body == b"E1 T smartcity /parks/north tok42"


def test_every_entity_attribute_is_in_context_not_only_the_updated_ones(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Macro substitution': "All the attributes in the entity triggering the
    notification (included in the update triggering the notification or not)"."""
    create(client, {"id": "E1", "type": "T", "A": {"value": 1}, "B": {"value": "kept"}})
    subscribe(client, {"httpCustom": {"url": rx.url, "json": {"a": "${A}", "b": "${B}"}}})
    update(client, {"A": {"value": 2}})
    assert notified(client, rx, 1)[0].json() == {"a": 2, "b": "kept"}


def test_attribute_named_service_service_path_or_auth_token_takes_precedence(
    client: ApiClient, rx: FullReceiver
) -> None:
    """orion-api.md, 'Macro substitution': "In the rare case an attribute was named in the same
    way of the service, servicePath or authToken ... then the attribute value takes precedence"."""
    subscribe(client, {"httpCustom": {"url": rx.url, "json": ["${service}", "${servicePath}", "${authToken}"]}},
              headers={"Fiware-Service": "smartcity"})
    create(client, {"id": "E1", "type": "T", "service": {"value": "s-attr"}, "servicePath": {"value": "sp-attr"},
                    "authToken": {"value": "t-attr"}}, headers={"Fiware-Service": "smartcity", "X-Auth-Token": "x"})
    assert notified(client, rx, 1)[0].json() == ["s-attr", "sp-attr", "t-attr"]


def test_url_macros(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Macro substitution': "url" can be templatized, with any JEXL expression."""
    subscribe(client, {"httpCustom": {"url": rx.base + "/${type|lowercase}/${id}/${n+1}"}})
    create(client, {"id": "E1", "type": "T", "n": {"value": 41}})
    assert notified(client, rx, 1)[0].path == "/t/E1/42"


# -- "Headers special treatment", "Remove headers" ---------------------------------------------


def test_headers_special_treatment_example(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Headers special treatment': url-encoded characters of header values are
    decoded at notification time; qs ``t=${temperature}`` gives ``t=23.4``; ``"payload": null``
    sends no payload (Content-Length: 0)."""
    subscribe(client, {"httpCustom": {
        "url": rx.base + "/entity/${id}", "method": "PUT",
        "headers": {"Authorization": "Basic ABC...ABC%3D%3D"},
        "qs": {"type": "${type}", "t": "${temperature}"}, "payload": None,
    }}, entity="DC_S1-D41")
    create(client, {"id": "DC_S1-D41", "type": "Room", "temperature": {"value": 23.4, "type": "Number"}})
    [sent] = notified(client, rx, 1)
    assert sent.method == "PUT"
    path, _, query = sent.path.partition("?")
    assert path == "/entity/DC_S1-D41"
    assert sorted(query.split("&")) == ["t=23.4", "type=Room"]
    assert sent.headers["Authorization"] == "Basic ABC...ABC=="
    assert sent.headers["Content-Length"] == "0" and sent.body == b""


def test_header_and_qs_names_and_values_take_macros(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Macro substitution': "headers (both header name and value can be
    templatized)", "qs (both parameter name and value can be templatized)"."""
    subscribe(client, {"httpCustom": {
        "url": rx.url, "headers": {"X-${kind}": "${level*10}"}, "qs": {"${kind}": "${level+1}"},
    }})
    create(client, {"id": "E1", "type": "T", "kind": {"value": "Alarm"}, "level": {"value": 2}})
    [sent] = notified(client, rx, 1)
    assert sent.headers["X-Alarm"] == "20"
    assert sent.path == "/notify?Alarm=3"


def test_header_values_may_quote_jexl_string_literals(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'General syntax restrictions': "HTTP and Kafka custom header values allow
    the ' and \" quote characters to support quoted string literals in JEXL expressions"."""
    subscribe(client, {"httpCustom": {"url": rx.url, "headers": {"X-Level": "${level||'none'}", "X-Q": '${"q"}'}}})
    create(client, {"id": "E1", "type": "T", "other": {"value": 1}})
    [sent] = notified(client, rx, 1)
    assert (sent.headers["X-Level"], sent.headers["X-Q"]) == ("none", "q")


def test_quotes_stay_forbidden_in_qs_values(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'General syntax restrictions': the quote exception is for header values
    only; a qs value with ``'`` is a 400 like any forbidden character."""
    response = client.post("/v2/subscriptions", json={
        "subject": {"entities": [{"id": "E1"}]},
        "notification": {"httpCustom": {"url": rx.url, "qs": {"q": "${A||'x'}"}}},
    })
    assert response.status_code == 400
    assert response.json()["error"] == "BadRequest"


def test_empty_header_value_removes_the_header(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Remove headers': "An empty string value for a header key in the headers
    object will remove that header from notifications" (e.g. the propagated x-auth-token)."""
    subscribe(client, {"httpCustom": {"url": rx.url, "headers": {"x-auth-token": "", "X-Who": "${authToken}"}}})
    create(client, {"id": "E1", "type": "T", "A": {"value": 1}}, headers={"X-Auth-Token": "secret"})
    [sent] = notified(client, rx, 1)
    assert sent.headers.get("X-Auth-Token") is None
    assert sent.headers["X-Who"] == "secret"


# -- "Text based payload" ---------------------------------------------------------------------


def test_text_payload_example(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Text based payload': the url-encoded payload is decoded at notification
    time, macros replaced, Content-Type text/plain (the example: Content-Length 65)."""
    subscribe(client, {"httpCustom": {
        "url": rx.base + "/entity/${id}", "method": "PUT", "qs": {"type": "${type}"},
        "payload": "the value of the %22temperature%22 attribute %28of type Number%29 is ${temperature}",
    }}, entity="DC_S1-D41")
    create(client, {"id": "DC_S1-D41", "type": "Room", "temperature": {"value": 23.4, "type": "Number"}})
    [sent] = notified(client, rx, 1)
    assert (sent.method, sent.path) == ("PUT", "/entity/DC_S1-D41?type=Room")
    assert sent.body == b'the value of the "temperature" attribute (of type Number) is 23.4'
    assert sent.headers["Content-Length"] == "65"
    assert sent.headers["Content-Type"].startswith("text/plain")
    assert sent.headers["Ngsiv2-AttrsFormat"] == "custom"


def test_text_payload_quotes_jexl_strings_url_encoded(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Text based payload': forbidden characters (quotes, parentheses) are written
    url-encoded and decoded before the macros are evaluated, so JEXL strings work in a payload."""
    subscribe(client, {"httpCustom": {"url": rx.url, "payload": "${name|replaceStr%28%27o%27,%27u%27%29}!"}})
    create(client, {"id": "E1", "type": "T", "name": {"value": "foobar"}})
    assert notified(client, rx, 1)[0].body == b"fuubar!"


def test_text_payload_renders_values_as_text(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Text based payload' with 'Failsafe cases': strings raw, numbers and
    booleans as JSON, arrays and objects as compact JSON, null (and failures) as ``null``."""
    subscribe(client, {"httpCustom": {"url": rx.url, "payload": "${s}|${n}|${b}|${a}|${o}|${z}|${missing}|${s|nope}"}})
    create(client, {"id": "E1", "type": "T", "s": {"value": "txt"}, "n": {"value": 1.5}, "b": {"value": True},
                    "a": {"value": [1, "x"]}, "o": {"value": {"k": 1}}, "z": {"value": None}})
    assert notified(client, rx, 1)[0].body == b'txt|1.5|true|[1,"x"]|{"k":1}|null|null|null'


# -- "JSON payloads" ----------------------------------------------------------------------------


def test_json_payload_example(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'JSON payloads': the example ``{"t": "${temperature}", "h": [...], "v": 4}``;
    Content-Type application/json; 'Additional considerations': Ngsiv2-AttrsFormat custom."""
    subscribe(client, {"httpCustom": {"url": rx.url, "json": {
        "t": "${temperature}", "h": ["${humidityMin}", "${humidityMax}"], "v": 4}}})
    create(client, {"id": "E1", "type": "T", "temperature": {"value": 10}, "humidityMin": {"value": 40},
                    "humidityMax": {"value": 60.5}})
    [sent] = notified(client, rx, 1)
    assert sent.json() == {"t": 10, "h": [40, 60.5], "v": 4}
    assert sent.headers["Content-Type"].startswith("application/json")
    assert sent.headers["Ngsiv2-AttrsFormat"] == "custom"


def test_json_whole_macro_keeps_the_json_type(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'JSON payloads': a macro covering the whole string takes the value's JSON
    nature ("t": 10 for a number, "t": "10" for a string), arrays and objects included."""
    body = json_payload(client, rx, {
        "num": {"value": 10}, "str": {"value": "10"}, "bool": {"value": False},
        "arr": {"value": [1, {"x": 2}]}, "obj": {"value": {"x": [1, 2]}}, "nul": {"value": None},
    }, {"num": "${num}", "str": "${str}", "bool": "${bool}", "arr": "${arr}", "obj": "${obj}", "nul": "${nul}",
        "calc": "${{sum: num + 1, list: [str, num]}}"})
    assert body == {"num": 10, "str": "10", "bool": False, "arr": [1, {"x": 2}], "obj": {"x": [1, 2]},
                    "nul": None, "calc": {"sum": 11, "list": ["10", 10]}}


def test_json_partial_macro_is_cast_to_string(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'JSON payloads': a macro that is only part of the string is cast to string
    ("Temperature is: 10"), arrays and objects stringified."""
    body = json_payload(client, rx, {"temperature": {"value": 10}, "arr": {"value": [1, "a"]}},
                        {"t": "Temperature is: ${temperature}", "a": "a=${arr}", "deep": {"list": ["<${temperature}>"]}})
    assert body == {"t": "Temperature is: 10", "a": 'a=[1,"a"]', "deep": {"list": ["<10>"]}}


def test_json_missing_attribute_is_null_and_keys_are_not_templates(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'JSON payloads': "If the attribute doesn't exist in the entity, then null
    value is used"; macros "cannot be used in the key part of JSON objects"."""
    body = json_payload(client, rx, {"A": {"value": 1}}, {"m": "${missing}", "${A}": 10, "p": "x${missing}"})
    assert body == {"m": None, "${A}": 10, "p": "xnull"}


# -- "NGSI payload patching" -------------------------------------------------------------------


def test_ngsi_patching_example(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'NGSI payload patching': the example (id ``prefix:${id}``, type ``newType``,
    ``originalService``/``originalServicePath`` from ``${service}``/``${servicePath}``): the
    patched entity in normalized format, Ngsiv2-AttrsFormat normalized."""
    tenant = {"Fiware-Service": "smartcity", "Fiware-ServicePath": "/a"}
    subscribe(client, {"httpCustom": {"url": rx.url, "ngsi": {
        "id": "prefix:${id}", "type": "newType",
        "originalService": {"value": "${service}", "type": "Text"},
        "originalServicePath": {"value": "${servicePath}", "type": "Text"},
    }}}, headers=tenant)
    create(client, {"id": "E1", "type": "T", "A": {"value": 1, "type": "Number"}}, headers=tenant)
    [sent] = notified(client, rx, 1)
    assert sent.headers["Ngsiv2-AttrsFormat"] == "normalized"
    assert sent.headers["Content-Type"].startswith("application/json")
    assert sent.entity() == {
        "id": "prefix:E1", "type": "newType",
        "A": {"type": "Number", "value": 1, "metadata": {}},
        "originalService": {"type": "Text", "value": "smartcity", "metadata": {}},
        "originalServicePath": {"type": "Text", "value": "/a", "metadata": {}},
    }


def test_ngsi_whole_macro_keeps_type_but_id_and_type_are_cast_to_string(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'NGSI payload patching': ``"value": "${temperature}"`` resolves to 10 (a
    number) or "10" (a string); "Exception to this is id and type ... always casted to string";
    a partial macro is cast to string; a missing attribute gives null."""
    subscribe(client, {"httpCustom": {"url": rx.url, "ngsi": {
        "id": "${n}", "type": "${flag}",
        "N": {"value": "${n}", "type": "Calc"}, "S": {"value": "${s}", "type": "Calc"},
        "P": {"value": "Temperature is: ${n}", "type": "Calc"}, "M": {"value": "${missing}", "type": "Calc"},
    }}})
    create(client, {"id": "E1", "type": "T", "n": {"value": 10}, "s": {"value": "10"}, "flag": {"value": True}})
    entity = notified(client, rx, 1)[0].entity()
    assert (entity["id"], entity["type"]) == ("10", "true")
    assert [entity[k]["value"] for k in ("N", "S", "P", "M")] == [10, "10", "Temperature is: 10", None]


def test_ngsi_empty_object_sends_the_original_notification(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'NGSI payload patching': "{} is a valid value for the ngsi field, in which
    case no patching is done and the original notification is sent"."""
    subscribe(client, {"httpCustom": {"url": rx.url, "ngsi": {}}})
    create(client, {"id": "E1", "type": "T", "A": {"value": 1, "type": "Number"}})
    [sent] = notified(client, rx, 1)
    assert sent.entity() == {"id": "E1", "type": "T", "A": {"type": "Number", "value": 1, "metadata": {}}}
    assert sent.headers["Ngsiv2-AttrsFormat"] == "normalized"


def test_ngsi_attrs_filter_applies_after_patching(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'NGSI payload patching': "If notification.attrs is used, the attribute
    filtering is done after applyig the NGSI patching"; patching is "update or append"."""
    subscribe(client, {"httpCustom": {"url": rx.url, "ngsi": {
        "A": {"value": "${A*10}", "type": "Number"}, "New": {"value": "${B}", "type": "Text"},
    }}, "attrs": ["A", "New"]})
    create(client, {"id": "E1", "type": "T", "A": {"value": 2}, "B": {"value": "b"}})
    entity = notified(client, rx, 1)[0].entity()
    assert entity == {"id": "E1", "type": "T", "A": {"type": "Number", "value": 20, "metadata": {}},
                      "New": {"type": "Text", "value": "b", "metadata": {}}}


def test_ngsi_attribute_type_takes_no_macro(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'NGSI payload patching': macros "cannot be used in the attribute type. Only
    in the value macro replacements can be done"."""
    values = ngsi_values(client, rx, {"kind": {"value": "K"}}, {"X": {"value": 1, "type": "${kind}"}})
    assert values["X"] == 1
    entity = rx.requests[0].entity()
    assert entity["X"]["type"] == "${kind}"


# -- "JEXL support in custom notifications" -----------------------------------------------------


def test_relative_humidity_and_basic_replacement(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'JEXL support in custom notifications': ``${humidity/100}`` with humidity
    84.4 gives 0.844; ``${humidity}`` alone is the "basic replacement"."""
    values = ngsi_values(client, rx, {"humidity": {"value": 84.4, "type": "Number"}}, {
        "relativeHumidity": {"value": "${humidity/100}", "type": "Calculated"},
        "originalHumidity": {"value": "${humidity}", "type": "Calculated"},
    })
    assert values["relativeHumidity"] == 0.844
    assert values["originalHumidity"] == 84.4


USAGE_TEMPLATE = {
    "speed": {"value": "${(speed|split(' '))[0]|parseInt}", "type": "Calculated"},
    "ratio": {"value": "${count.sum/count.count}", "type": "Calculated"},
    "code": {"value": "${code||'invalid'}", "type": "Calculated"},
    "alert": {"value": "${(value>max)?'nok':'ok'}", "type": "Calculated"},
    "count": {"value": "${{count:count.count+1, sum:count.sum+((speed|split(' '))[0]|parseInt)}}", "type": "Calculated"},
}


def test_jexl_usage_example(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'JEXL usage example': both updates and the notifications they trigger.

    No evalPriority here, so all five are one level ('Evaluation priority': "Orion does not
    guarantee a given evaluation order"); the documented result is the one where each sees
    the entity's own values (ratio before count, count before speed). Evaluating a level
    against the context as it was before it, results joining after, always gives that."""
    subscribe(client, {"httpCustom": {"url": rx.url, "ngsi": USAGE_TEMPLATE}})
    create(client, {"id": "E1", "type": "T", "other": {"value": 0}})
    notified(client, rx, 1)
    first = {"speed": {"value": "10 m/s", "type": "Text"},
             "count": {"value": {"count": 5, "sum": 100}, "type": "StructuredValue"},
             "code": {"value": None, "type": "Number"}, "value": {"value": 14, "type": "Number"},
             "max": {"value": 50, "type": "Number"}}
    second = {"speed": {"value": "30 m/s", "type": "Text"},
              "count": {"value": {"count": 5, "sum": 500}, "type": "StructuredValue"},
              "code": {"value": 456, "type": "Number"}, "value": {"value": 75, "type": "Number"},
              "max": {"value": 50, "type": "Number"}}
    update(client, first, append=True)
    update(client, second, append=True)
    _, one, two = notified(client, rx, 3)
    expected_one = {"speed": 10, "ratio": 20, "code": "invalid", "alert": "ok", "count": {"count": 6, "sum": 110}}
    expected_two = {"speed": 30, "ratio": 100, "code": 456, "alert": "nok", "count": {"count": 6, "sum": 530}}
    for sent, expected in ((one, expected_one), (two, expected_two)):
        entity = sent.entity()
        assert {k: entity[k] for k in expected} == {
            k: {"metadata": {}, "type": "Calculated", "value": v} for k, v in expected.items()}


def test_metadata_in_context(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Metadata support': ``${metadata.A.MD1}`` is the value of metadata MD1 of
    attribute A; an attribute named ``metadata`` does not replace the metadata context key."""
    values = ngsi_values(client, rx, {
        "A": {"value": 1, "metadata": {"MD1": {"value": "m1", "type": "Text"}, "unit": {"value": {"u": "C"}}}},
        "B": {"value": 2, "metadata": {"MD2": {"value": 5, "type": "Number"}}},
        "metadata": {"value": {"A": {"MD1": "from-attribute"}}},
    }, {
        "R1": {"value": "${metadata.A.MD1}", "type": "Calc"},
        "R2": {"value": "${metadata.B.MD2 * 2}", "type": "Calc"},
        "R3": {"value": "${metadata.A.unit.u}", "type": "Calc"},
        "R4": {"value": "${metadata.C.MD1}", "type": "Calc"},
    })
    assert [values[k] for k in ("R1", "R2", "R3", "R4")] == ["m1", 10, "C", None]


def test_builtin_metadata_in_context(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Metadata support': "builtin metadata are automatically added to the
    metadata context key"; ``${A-metadata.A.previousValue}`` is the difference with the value
    before the update ('Builtin Metadata': previousValue, actionType, dateCreated, dateModified)."""
    subscribe(client, {"httpCustom": {"url": rx.url, "json": {
        "diff": "${A-metadata.A.previousValue}", "action": "${metadata.A.actionType}",
        "actionB": "${metadata.B.actionType}",
        "created": "${metadata.A.dateCreated|getTime}", "modified": "${metadata.A.dateModified|getTime}",
    }}})
    before = time.time()
    create(client, {"id": "E1", "type": "T", "A": {"value": 1}, "B": {"value": 1}})
    update(client, {"A": {"value": 4}})
    update(client, {"A": {"value": 2}, "C": {"value": 0}}, append=True)
    created, first, second = (r.json() for r in notified(client, rx, 3))
    assert (created["diff"], created["action"], created["actionB"]) == (None, "append", "append")
    assert (first["diff"], first["action"], first["actionB"]) == (3, "update", None)
    assert (second["diff"], second["action"]) == (-2, "update")
    assert before - 1 <= created["created"] == first["created"] <= time.time() + 1
    assert first["modified"] >= first["created"]


def test_eval_priority_example(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Evaluation priority': each evaluated expression joins the context; with
    ``evalPriority`` 1 on A (``${16|sqrt}``), B (``${A/100}``) is 0.04; only B is notified
    (``attrs: ["B"]``); id and type are evaluated last (priority 100001)."""
    subscribe(client, {"httpCustom": {"url": rx.url, "ngsi": {
        "id": "${B*100}",
        "A": {"value": "${16|sqrt}", "type": "Calculated", "metadata": {"evalPriority": {"value": 1, "type": "Number"}}},
        "B": {"value": "${A/100}", "type": "Calculated"},
    }}, "attrs": ["B"]})
    create(client, {"id": "E1", "type": "T", "A": {"value": 0}})
    entity = notified(client, rx, 1)[0].entity()
    assert entity == {"id": "4", "type": "T", "B": {"type": "Calculated", "value": 0.04, "metadata": {}}}


def test_eval_priority_orders_a_chain(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Evaluation priority': "Expressions are evaluated in incresing order of
    priority"; without evalPriority, 100000 (last)."""
    values = ngsi_values(client, rx, {"x": {"value": 1}}, {
        "C": {"value": "${B+1}", "type": "N"},
        "B": {"value": "${A+1}", "type": "N", "metadata": {"evalPriority": {"value": 99999, "type": "Number"}}},
        "A": {"value": "${x+1}", "type": "N", "metadata": {"evalPriority": {"value": 2, "type": "Number"}}},
    })
    assert (values["A"], values["B"], values["C"]) == (2, 3, 4)


# -- "Available Transformations", end to end ----------------------------------------------------


def test_manual_transformation_examples_end_to_end(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Available Transformations': each example's context stored as attributes
    and its expression in a json payload; the documented result comes back."""
    attrs = {
        "s": {"value": "fooBAR"}, "csv": {"value": "foo,bar,zzz"}, "fx": {"value": "fooxybar"},
        "padded": {"value": "  foo  bar  "}, "word": {"value": "foobar"}, "i25": {"value": "25"},
        "f25": {"value": "25.33"}, "n23": {"value": 23}, "js": {"value": "[1,2]"}, "pi": {"value": 3.14},
        "f318": {"value": 3.18}, "digits": {"value": "aba1234aba786aba"}, "mixed": {"value": "abc1234fgh897hyt"},
        "fr": {"value": "fr"}, "n20": {"value": 20}, "half": {"value": 0.5}, "obj": {"value": {"x": 1, "y": "foo"}},
        "pair": {"value": [1, 5]}, "odd": {"value": [1, 3, 3, 6, 7, 8, 9]}, "even": {"value": [1, 2, 3, 4, 5, 6, 8, 9]},
        "unsorted": {"value": [3, 1, 3, 9, 7, 8, 6]}, "epoch": {"value": 1720606949},
        "iso": {"value": "2024-07-10T10:22:29+00:00"},
    }
    template = {
        "uppercase": "${s|uppercase}", "lowercase": "${s|lowercase}", "split": "${csv|split(',')}",
        "indexOf": "${fx|indexOf('xy')}", "len": "${word|len}", "trim": "${padded|trim}",
        "substring": "${word|substring(3,5)}", "includes": "${word|includes('ba')}", "isNaN": "${word|isNaN}",
        "parseInt": "${i25|parseInt}", "parseFloat": "${f25|parseFloat}", "typeOf": "${n23|typeOf}",
        "toString": "${n23|toString}", "toJson": "${js|toJson}", "floor": "${pi|floor}", "ceil": "${pi|ceil}",
        "round": "${pi|round}", "toFixed": "${f318|toFixed(1)}", "sqrt": "${16|sqrt}",
        "replaceStr": "${word|replaceStr('o','u')}", "replaceRegex": "${digits|replaceRegex('\\d+','X')}",
        "matchRegex": "${mixed|matchRegex('\\d+')}",
        "mapper": "${fr|mapper(['es', 'fr', 'de'], ['Spain', 'France', 'Germany'])}",
        "nMapper": "${n20|nMapper([10, 20, 30], ['low', 'medium', 'high'])}",
        "thMapper": "${half|thMapper([0-1, 1], ['low', 'medium', 'high'])}",
        "values": "${obj|values}", "keys": "${obj|keys}", "arrSum": "${pair|arrSum}", "arrAvg": "${pair|arrAvg}",
        "arrMax": "${pair|arrMax}", "arrMin": "${pair|arrMin}", "arrMedOdd": "${odd|arrMed}",
        "arrMedEven": "${even|arrMed}", "arrSort": "${unsorted|arrSort}", "arrReverse": "${unsorted|arrReverse}",
        "toIsoString": "${epoch|toIsoString}", "getTime": "${iso|getTime}",
    }
    body = json_payload(client, rx, attrs, template)
    assert body == {
        "uppercase": "FOOBAR", "lowercase": "foobar", "split": ["foo", "bar", "zzz"], "indexOf": 3, "len": 6,
        "trim": "foo  bar", "substring": "ba", "includes": True, "isNaN": True, "parseInt": 25,
        "parseFloat": 25.33, "typeOf": "Number", "toString": "23", "toJson": [1, 2], "floor": 3, "ceil": 4,
        "round": 3, "toFixed": 3.2, "sqrt": 4, "replaceStr": "fuubar", "replaceRegex": "abaXabaXaba",
        "matchRegex": ["1234", "897"], "mapper": "France", "nMapper": "medium", "thMapper": "medium",
        "values": [1, "foo"], "keys": ["x", "y"], "arrSum": 6, "arrAvg": 3, "arrMax": 5, "arrMin": 1,
        "arrMedOdd": 6, "arrMedEven": 4.5, "arrSort": [1, 3, 3, 6, 7, 8, 9], "arrReverse": [6, 8, 7, 9, 3, 1, 3],
        "toIsoString": "2024-07-10T10:22:29+00:00", "getTime": 1720606949,
    }


def test_now_is_the_current_epoch_time(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Available Transformations' > 'now': the current time plus the input, in
    seconds since the Unix epoch."""
    before = int(time.time())
    body = json_payload(client, rx, {"A": {"value": 1}}, {"now": "${0|now}", "later": "${60|now}"})
    assert before <= body["now"] <= time.time()
    assert body["later"] - body["now"] in (60, 61)


# -- "Failsafe cases", "Known limitations" -------------------------------------------------------


def test_failsafe_cases(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Failsafe cases': an unknown transformation, an operation on an identifier
    not in the context (``(A==null)?0:A``), a syntax error (``A[0|uppercase``) give null;
    ``A||0`` gives 0 and ``A != null ? 1: 0`` gives 0 when A is not in the context."""
    body = json_payload(client, rx, {"X": {"value": ["a"]}}, {
        "unknown": "${X|undefinedExpression}", "eq": "${(A==null)?0:A}", "syntax": "${X[0|uppercase}",
        "or": "${A||0}", "ne": "${A != null ? 1: 0}", "ne_present": "${X != null ? 1: 0}",
    })
    assert body == {"unknown": None, "eq": None, "syntax": None, "or": 0, "ne": 0, "ne_present": 1}


def test_known_limitations(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Known limitations': ``A||-1`` fails to null, ``A||0-1`` and
    ``A||('-1'|parseInt)`` work; ``!`` is not supported (null); ``temperature-basic`` is
    ``temperature`` minus ``basic`` (null when one is missing), not the attribute so named."""
    body = json_payload(client, rx, {"temperature-basic": {"value": 3}, "temperature": {"value": 20},
                                     "flag": {"value": True}}, {
        "minus": "${A||-1}", "zero_minus": "${A||0-1}", "parsed": "${A||('-1'|parseInt)}", "not": "${!flag}",
        "dash": "${temperature-basic}",
    })
    assert body == {"minus": None, "zero_minus": -1, "parsed": -1, "not": None, "dash": None}


def test_dash_in_a_name_is_a_subtraction(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Identifiers syntax restrictions': ``${lower-temperature}`` is the value of
    ``lower`` minus ``temperature``, not the attribute ``lower-temperature``."""
    body = json_payload(client, rx, {"lower-temperature": {"value": 1}, "lower": {"value": 10},
                                     "temperature": {"value": 4}}, {"v": "${lower-temperature}"})
    assert body == {"v": 6}


# -- subscription.subject.condition.jexlExpression --------------------------------------------


def _condition_run(client: ApiClient, rx: FullReceiver, condition: dict[str, Any],
                   updates: list[dict[str, Any]]) -> list[Any]:
    """A subscription with ``condition`` (to /tested, payload ``${A}``); E1 created with A=0,
    B=0, then each update: the A values notified. A second subscription (to /marker) fires on
    a last update (A=-1, which no condition here accepts, and ``marker``) and bounds the wait."""
    subscribe(client, {"httpCustom": {"url": rx.base + "/tested", "payload": "${A}"}}, condition=condition)
    subscribe(client, {"httpCustom": {"url": rx.base + "/marker", "payload": "end"}},
              condition={"jexlExpression": "marker == true"})
    create(client, {"id": "E1", "type": "T", "A": {"value": 0}, "B": {"value": 0}, "marker": {"value": False}})
    for attrs in updates:
        update(client, attrs)
    update(client, {"A": {"value": -1}, "marker": {"value": True}})
    deadline = time.monotonic() + 10
    while not any(r.path == "/marker" for r in rx.requests) and time.monotonic() < deadline:
        pump(client, 0.02)
    pump(client, 0.2)
    assert [r.path for r in rx.requests].count("/marker") == 1
    return [json.loads(r.body) for r in rx.requests if r.path == "/tested"]


def test_condition_notifies_only_when_true(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'subscription.subject.condition': "the notification is triggered only when
    the expression evaluates to true" (a number or a string result is not true)."""
    got = _condition_run(client, rx, {"jexlExpression": "A > 2"},
                         [{"A": {"value": 1}}, {"A": {"value": 3}}, {"A": {"value": 2}}, {"A": {"value": 5}}])
    assert got == [3, 5]


def test_condition_non_boolean_result_does_not_notify(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'subscription.subject.condition': only ``true`` triggers; ``A`` (a
    non-zero number) and ``'yes'`` do not."""
    got = _condition_run(client, rx, {"jexlExpression": "A == 7 || (A == 8 && 'yes') || (A == 9 && A)"},
                         [{"A": {"value": 8}}, {"A": {"value": 9}}, {"A": {"value": 7}}])
    assert got == [7]


def test_condition_failures_do_not_notify(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Failsafe cases' applied to conditions ("It works in the same way as the
    JEXL expressions in custom notifications"): a syntax error or an unknown transformation
    is null, never true; the subscription is still accepted."""
    got = _condition_run(client, rx, {"jexlExpression": "A|nosuch == 1 || (A == 2 && B[0|len)"},
                         [{"A": {"value": 1}}, {"A": {"value": 2}}])
    assert got == []


def test_condition_and_expression_both_must_match(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Notification Triggering': "If both are used (i.e. expression and a
    jexlExpresion at the same time) both must match"."""
    got = _condition_run(client, rx, {"jexlExpression": "A > 2", "expression": {"q": "B==1"}},
                         [{"A": {"value": 3}}, {"B": {"value": 1}}, {"A": {"value": 1}}, {"A": {"value": 4}}])
    assert got == [3, 4]


def test_condition_attrs_and_jexl_expression(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'Notification Triggering': "If attrs and expressions are used, a
    notification is sent whenever one of the attributes in the attrs list changes ... and at
    the same time expressions match"."""
    got = _condition_run(client, rx, {"jexlExpression": "A > 2", "attrs": ["A"]},
                         [{"B": {"value": 5}}, {"A": {"value": 3}}, {"B": {"value": 6}}])
    assert got == [3]


def test_condition_sees_metadata_and_special_names(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'subscription.subject.condition': the condition "works in the same way as
    the JEXL expressions in custom notifications", so its context has id, type and metadata
    ('Metadata support', previousValue included)."""
    got = _condition_run(client, rx, {
        "jexlExpression": "id == 'E1' && type == 'T' && A - metadata.A.previousValue >= 10"},
        [{"A": {"value": 5}}, {"A": {"value": 20}}, {"A": {"value": 25}}, {"A": {"value": 40}}])
    assert got == [20, 40]


def test_condition_on_plain_http_subscription(client: ApiClient, rx: FullReceiver) -> None:
    """orion-api.md, 'subscription.subject.condition': jexlExpression is a condition field, not
    a custom notification one: it filters a plain ``http`` subscription too."""
    subscribe(client, {"http": {"url": rx.url}, "attrs": ["A"]}, condition={"jexlExpression": "A|len > 3"})
    create(client, {"id": "E1", "type": "T", "A": {"value": "ab"}})
    update(client, {"A": {"value": "abcd"}})
    [sent] = notified(client, rx, 1)
    assert sent.entity()["A"]["value"] == "abcd"
