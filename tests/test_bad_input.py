"""Bad input never hurts: a probe of a real broker and a real IoT agent.

Hundreds of bad requests (bad JSON, wrong types, huge values, deep nesting, forbidden and
non-ASCII characters, NUL bytes, bad headers, tenants and service paths, wrong methods,
bad query parameters, huge numbers and Unicode digits, malformed HTTP) go to the services
as users start them (``python -m broker``, ``waziup iot-agent``). Every answer must be
below 500 and in the service's error shape (the broker's ``{"error", "description"}``,
the agent's ``{"name", "message"}``); while slow or malicious clients hold connections
(a body stalled mid-way, a slowloris head, a catastrophic-backtracking ``idPattern``), a
concurrent ``GET /version`` still answers within a second; and afterwards both still
serve and nothing written before was lost.

Both run with a 2 s request timeout (``-reqTimeout 2``, ``IOTA_REQ_TIMEOUT=2``) so that
the stalled clients are answered 408 within the module's time.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import BrokerProcess
from tests.iot_agent.conftest import AgentStack

pytestmark = pytest.mark.xdist_group("bad_input")  # one broker and one agent for the module

TIMEOUT = 2  # seconds: the services' request timeout in this module
TENANT = {"fiware-service": "probe", "fiware-servicepath": "/"}
AGENT_TENANT = {"fiware-service": "probe", "fiware-servicepath": "/"}
JSON = {"content-type": "application/json"}
TEXT = {"content-type": "text/plain"}
BIG_DIGITS = "1" * 5000  # past Python's 4,300-digit int conversion limit
LONG_FRACTION = "2030-01-01T00:00:00." + "7" * 5000 + "Z"


@dataclass
class Services:
    broker: BrokerProcess
    agent: AgentStack


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    data = tmp_path_factory.mktemp("bad_input")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IOTA_REQ_TIMEOUT", str(TIMEOUT))  # read by the agent process at start-up
        broker = BrokerProcess(["-multiservice", "-data", str(data), "-reqTimeout", str(TIMEOUT)]).start()
        try:
            agent = AgentStack(broker, "", 1883, []).start()  # no MQTT host: MQTT off
        except BaseException:
            broker.stop()
            raise
    try:
        yield Services(broker, agent)
    finally:
        agent.stop()
        broker.stop()


# -- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One request: ``body`` a JSON value, or bytes/str as they are; ``ok`` lets a well-formed
    answer (2xx) through for inputs that are odd but acceptable (a huge offset, a long fraction)."""

    name: str
    method: str
    path: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    ok: bool = False
    status: int | None = None  # the exact status expected, when it matters


def _content(body: Any) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def _send(client: httpx.Client, case: Case, tenant: dict[str, str]) -> httpx.Response:
    headers = {**tenant, **case.headers}
    content = _content(case.body)
    if content is not None and not any(k.lower() == "content-type" for k in case.headers):
        headers["content-type"] = "application/json"
    raw = {k: v.encode("utf-8") for k, v in headers.items() if v is not None}  # non-ASCII values as UTF-8 bytes
    return client.request(case.method, case.path, content=content, headers=raw)


def _probe_one(client: httpx.Client, case: Case, tenant: dict[str, str], keys: set[str]) -> str:
    try:
        response = _send(client, case, tenant)
    except httpx.HTTPError as exc:
        return f"{case.name}: no answer ({exc!r})"
    return _problem(case, response.status_code, response.content, keys) or ""


def _problem(case: Case, status: int, body: bytes, keys: set[str]) -> str | None:
    """What is wrong with an answer, None when nothing is."""
    if status >= 500 or status == 0:
        return f"{case.name}: {status} {body[:300]!r}"
    if case.status is not None and status != case.status:
        return f"{case.name}: {status}, expected {case.status}: {body[:300]!r}"
    if status < 400:
        return None if case.ok or case.status is not None else f"{case.name}: accepted ({status}) {body[:300]!r}"
    try:
        parsed = json.loads(body)
    except ValueError:
        return f"{case.name}: {status} not JSON: {body[:300]!r}"
    if not isinstance(parsed, dict) or set(parsed) != keys or not all(isinstance(parsed[k], str) for k in keys):
        return f"{case.name}: {status} not the error shape: {parsed}"
    return None


def raw_request(port: int, data: bytes, wait: float = 5.0) -> tuple[int, bytes]:
    """Send ``data`` as it is; (status, body) of the answer (0 when none came)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass  # refused while sending (a head too large): the answer may still be there
        received = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
                head, sep, rest = received.partition(b"\r\n\r\n")
                if sep:
                    length = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
                    if length and len(rest) >= int(length[0].split(b":", 1)[1]):
                        break
        except OSError:
            pass  # a reset after the answer
    return _status_and_body(received)


def _status_and_body(received: bytes) -> tuple[int, bytes]:
    """An answer read off a socket as (status, body); status 0 when none came."""
    head, _, body = received.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), body


# -- the broker's cases -------------------------------------------------------------------------

ENTITY = "/v2/entities"
E = "probeE"  # an entity the probe's updates aim at (created by the fixture below)


def _bad_json_cases() -> list[Case]:
    bodies = {
        "open brace": "{", "open bracket": "[", "missing value": '{"id":}', "trailing comma": '{"id":"a",}',
        "NaN": '{"id":"a","type":"T","x":NaN}', "Infinity": '{"id":"a","type":"T","x":{"value":Infinity}}',
        "extra brace": '{"id":"a"}}', "single quotes": "{'id':'a'}", "bad escape": '{"id":"a\\x"}',
        "trailing text": '{"id":"a","type":"T"} x', "invalid utf-8": b'{"id":"\xff\xfe"}',
        "utf-16": '{"id":"a"}'.encode("utf-16"), "control char in string": b'{"id":"a\x01b","type":"T"}',
        "bare word": "hello",
    }
    cases = [Case(f"bad JSON ({name}) on POST entities", "POST", ENTITY, body) for name, body in bodies.items()]
    elsewhere = [
        ("POST", "/v2/subscriptions"), ("POST", "/v2/registrations"), ("POST", "/v2/op/update"),
        ("POST", "/v2/op/query"), ("PATCH", f"{ENTITY}/{E}/attrs"), ("PUT", f"{ENTITY}/{E}/attrs/A"),
        ("POST", f"{ENTITY}/{E}/attrs"), ("PUT", f"{ENTITY}/{E}/attrs"), ("PATCH", "/v2/subscriptions/5e0f0a0a0a0a0a0a0a0a0a0a"),
    ]
    for method, path in elsewhere:
        for name in ("open brace", "NaN", "invalid utf-8"):
            cases.append(Case(f"bad JSON ({name}) on {method} {path}", method, path, bodies[name]))
    return cases


def _wrong_type_cases() -> list[Case]:
    entities = {
        "id a number": {"id": 1, "type": "T"}, "id null": {"id": None, "type": "T"}, "id a list": {"id": [], "type": "T"},
        "type an object": {"id": "a", "type": {}}, "attr type a number": {"id": "a", "type": "T", "x": {"value": 1, "type": 5}},
        "metadata a list": {"id": "a", "type": "T", "x": {"value": 1, "metadata": []}},
        "metadata item a number": {"id": "a", "type": "T", "x": {"value": 1, "metadata": {"m": 5}}},
        "metadata type a list": {"id": "a", "type": "T", "x": {"value": 1, "metadata": {"m": {"value": 1, "type": []}}}},
        "body a list": [], "body empty": {}, "no id": {"type": "T"}, "body a string": "just text",
        "attr a list": {"id": "a", "type": "T", "x": [1]},
        "dateExpires a number": {"id": "a", "type": "T", "dateExpires": {"value": 5, "type": "DateTime"}},
        "DateTime a bad date": {"id": "a", "type": "T", "d": {"value": "2020-13-45", "type": "DateTime"}},
        "geo:json a string": {"id": "a", "type": "T", "l": {"value": "nowhere", "type": "geo:json"}},
        "geo:point out of range": {"id": "a", "type": "T", "l": {"value": "91,500", "type": "geo:point"}},
    }
    cases = [Case(f"entity with {name}", "POST", ENTITY, body) for name, body in entities.items()]
    subscriptions = {
        "subject a string": {"subject": "x", "notification": {"http": {"url": "http://127.0.0.1:1/"}}},
        "notification a list": {"subject": {"entities": [{"id": "a"}]}, "notification": []},
        "no notification": {"subject": {"entities": [{"id": "a"}]}},
        "expires a number": {"subject": {"entities": [{"id": "a"}]}, "notification": {"http": {"url": "http://127.0.0.1:1/"}}, "expires": 5},
        "throttling a string": {"subject": {"entities": [{"id": "a"}]}, "notification": {"http": {"url": "http://127.0.0.1:1/"}}, "throttling": "x"},
        "throttling negative": {"subject": {"entities": [{"id": "a"}]}, "notification": {"http": {"url": "http://127.0.0.1:1/"}}, "throttling": -1},
        "throttling huge": {"subject": {"entities": [{"id": "a"}]}, "notification": {"http": {"url": "http://127.0.0.1:1/"}}, "throttling": 1e300},
        "url not a URL": {"subject": {"entities": [{"id": "a"}]}, "notification": {"http": {"url": "not a url"}}},
        "expires not a date": {"subject": {"entities": [{"id": "a"}]}, "notification": {"http": {"url": "http://127.0.0.1:1/"}}, "expires": "soon"},
    }
    cases += [Case(f"subscription with {name}", "POST", "/v2/subscriptions", body) for name, body in subscriptions.items()]
    registrations = {
        "dataProvided a number": {"dataProvided": 5, "provider": {"http": {"url": "http://127.0.0.1:1"}}},
        "no provider": {"dataProvided": {"entities": [{"id": "a", "type": "T"}]}},
        "provider url a number": {"dataProvided": {"entities": [{"id": "a", "type": "T"}]}, "provider": {"http": {"url": 5}}},
    }
    cases += [Case(f"registration with {name}", "POST", "/v2/registrations", body) for name, body in registrations.items()]
    batches = {
        "actionType a number": {"actionType": 5, "entities": [{"id": "a", "type": "T"}]},
        "unknown actionType": {"actionType": "explode", "entities": [{"id": "a", "type": "T"}]},
        "entities an object": {"actionType": "append", "entities": {}},
        "entities empty": {"actionType": "append", "entities": []},
        "entity a string": {"actionType": "append", "entities": ["a"]},
    }
    cases += [Case(f"op/update with {name}", "POST", "/v2/op/update", body) for name, body in batches.items()]
    queries = {
        "entities a string": {"entities": "x"}, "attrs of numbers": {"attrs": [1]}, "expression a list": {"expression": []},
        "unknown field": {"bogus": 1}, "q not a string": {"expression": {"q": 5}},
    }
    cases += [Case(f"op/query with {name}", "POST", "/v2/op/query", body) for name, body in queries.items()]
    cases += [
        Case("PATCH attrs with a list", "PATCH", f"{ENTITY}/{E}/attrs", []),
        Case("PUT attr with a number", "PUT", f"{ENTITY}/{E}/attrs/A", 5),
        Case("PUT value JSON a number", "PUT", f"{ENTITY}/{E}/attrs/A/value", "5"),
    ]
    return cases


def _huge_cases() -> list[Case]:
    return [
        Case("id of 257 characters", "POST", ENTITY, {"id": "i" * 257, "type": "T"}),
        Case("type of 257 characters", "POST", ENTITY, {"id": "a", "type": "t" * 257}),
        Case("attribute name of 300 characters", "POST", ENTITY, {"id": "a", "type": "T", "n" * 300: {"value": 1}}),
        Case("body of 2 MiB", "POST", ENTITY, {"id": "a", "type": "T", "x": {"value": "v" * (2 << 20)}}, status=413),
        Case("number 1e400", "POST", ENTITY, '{"id":"a","type":"T","x":{"value":1e400}}'),
        Case("integer of 5000 digits", "POST", ENTITY, '{"id":"a","type":"T","x":{"value":' + BIG_DIGITS + "}}"),
        Case("nesting 100000 deep", "POST", ENTITY, '{"id":"a","type":"T","x":{"value":' + "[" * 100000 + "]" * 100000 + "}}"),
        Case("unbalanced nesting 50000 deep", "POST", ENTITY, "[" * 50000),
        Case("$inc overflowing a double", "PATCH", f"{ENTITY}/{E}/attrs", {"big": {"value": {"$inc": 1e308}}}),
        Case("$mul overflowing a double", "PATCH", f"{ENTITY}/{E}/attrs", {"big": {"value": {"$mul": 1e300}}}),
        Case("$inc with a string", "PATCH", f"{ENTITY}/{E}/attrs", {"big": {"value": {"$inc": "1"}}}),
        Case("$push onto a number", "PATCH", f"{ENTITY}/{E}/attrs", {"big": {"value": {"$push": 1}}}),
        Case("DateTime with a 5000-digit fraction", "POST", ENTITY,
             {"id": "longfrac1", "type": "T", "d": {"value": LONG_FRACTION, "type": "DateTime"}}, status=201),
        Case("metadata DateTime with a 5000-digit fraction", "POST", ENTITY,
             {"id": "longfrac2", "type": "T", "x": {"value": 1, "metadata": {"m": {"value": LONG_FRACTION, "type": "DateTime"}}}}, status=201),
        Case("dateExpires with a 5000-digit fraction", "POST", ENTITY,
             {"id": "longfrac3", "type": "T", "dateExpires": {"value": LONG_FRACTION, "type": "DateTime"}}, status=201),
        Case("subscription expires with a 5000-digit fraction", "POST", "/v2/subscriptions",
             # never notified (no entity matches); a loopback URL would need -notifAllowedHosts
             {"subject": {"entities": [{"idPattern": "^nomatch$"}]}, "notification": {"http": {"url": "http://example.org/"}},
              "expires": LONG_FRACTION}, status=201),
        Case("q on a date with a 5000-digit fraction", "GET", f"{ENTITY}?q=d>2020-01-01T00:00:00.{'9' * 5000}", ok=True),
        Case("ten thousand attributes", "POST", ENTITY, {"id": "many", "type": "T", **{f"a{i}": {"value": i} for i in range(10000)}}, ok=True),
        Case("URL of 60 KB", "GET", f"{ENTITY}?attrs={'a' * 60000}", ok=True),
    ]


def _forbidden_cases() -> list[Case]:
    return [
        Case("id with <", "POST", ENTITY, {"id": "a<b", "type": "T"}),
        Case("id with a space", "POST", ENTITY, {"id": "a b", "type": "T"}),
        Case("id with /", "POST", ENTITY, {"id": "a/b", "type": "T"}),
        Case("id with a NUL", "POST", ENTITY, {"id": "a\u0000b", "type": "T"}),
        Case("id with a lone surrogate", "POST", ENTITY, '{"id":"\\ud800","type":"T"}'),
        Case("id non-ASCII", "POST", ENTITY, {"id": "café", "type": "T"}),
        Case("type with (", "POST", ENTITY, {"id": "a", "type": "T("}),
        Case("attribute name with =", "POST", ENTITY, {"id": "a", "type": "T", "a=b": {"value": 1}}),
        Case("string value with '", "POST", ENTITY, {"id": "a", "type": "T", "x": {"value": "it's"}}),
        Case("nested value with <", "POST", ENTITY, {"id": "a", "type": "T", "x": {"value": {"k": ["<script>"]}}}),
        Case("metadata name with ;", "POST", ENTITY, {"id": "a", "type": "T", "x": {"value": 1, "metadata": {";": {"value": 1}}}}),
        Case("path id with <", "GET", f"{ENTITY}/a%3Cb"),
        Case("path id with a quote", "GET", f"{ENTITY}/a%22b"),
        Case("path with ( anywhere", "GET", "/v2/entit(ies"),
        Case("attribute name in path with =", "GET", f"{ENTITY}/{E}/attrs/a%3Db"),
        Case("query type with ;", "GET", f"{ENTITY}?type=a;b"),
        Case("query attrs with (", "GET", f"{ENTITY}?attrs=a(b"),
        Case("query with an empty value", "GET", f"{ENTITY}?type="),
        Case("encoded / in an id", "GET", f"{ENTITY}/a%2Fb"),
        Case("encoded / routing to attrs", "GET", f"{ENTITY}/{E}%2Fattrs"),
        Case("encoded / in attrs path", "PATCH", f"{ENTITY}/a%2Fb/attrs", {"x": {"value": 1}}),
        Case("encoded / in attr name", "GET", f"{ENTITY}/{E}/attrs/a%2fb/value"),
        Case("NUL in a query value", "GET", f"{ENTITY}?id=a%00b", ok=True),
        Case("NUL in the path", "GET", f"{ENTITY}/a%00b"),
        Case("id of 10000 characters in the path", "GET", f"{ENTITY}/{'x' * 10000}"),
    ]


def _header_cases() -> list[Case]:
    return [
        Case("Content-Type text/xml", "POST", ENTITY, "<e/>", headers={"content-type": "text/xml"}),
        Case("Content-Type text/plain on entities", "POST", ENTITY, '{"id":"a","type":"T"}', headers=TEXT),
        Case("Content-Type with a bad charset", "POST", ENTITY, '{"id":"a"}', headers={"content-type": "application/json; charset=klingon"}, ok=True),
        Case("Content-Type on a GET", "GET", ENTITY, headers=JSON),
        Case("empty body on POST", "POST", ENTITY, b"", status=411),
        Case("Accept image/png", "GET", ENTITY, headers={"accept": "image/png"}, status=406),
        Case("Accept text/html", "GET", "/version", headers={"accept": "text/html"}, status=406),
        Case("Accept text/* on a missing entity", "GET", f"{ENTITY}/nobody", headers={"accept": "text/*"}, status=404),
        Case("Accept text/plain on a JSON listing", "GET", "/v2/types", headers={"accept": "text/plain"}, status=406),
        Case("Accept image/png on a value", "GET", f"{ENTITY}/{E}/attrs/A/value", headers={"accept": "image/png"}, status=406),
        Case("Accept image/png on a POST", "POST", ENTITY, {"id": "acc", "type": "T"}, headers={"accept": "image/png"}, status=406),
        Case("tenant with ;", "GET", ENTITY, headers={"fiware-service": "a;b<"}),
        Case("tenant with -", "GET", ENTITY, headers={"fiware-service": "bad-name"}),
        Case("tenant of 60 characters", "GET", ENTITY, headers={"fiware-service": "t" * 60}),
        Case("tenant non-ASCII", "GET", ENTITY, headers={"fiware-service": "caf\u00e9"}),
        Case("service path relative", "GET", ENTITY, headers={"fiware-servicepath": "a"}),
        Case("service path with an empty component", "GET", ENTITY, headers={"fiware-servicepath": "/a//b"}),
        Case("service path of 11 levels", "GET", ENTITY, headers={"fiware-servicepath": "/a" * 11}),
        Case("service path component of 51 characters", "GET", ENTITY, headers={"fiware-servicepath": "/" + "c" * 51}),
        Case("eleven service paths", "GET", ENTITY, headers={"fiware-servicepath": ",".join(f"/p{i}" for i in range(11))}),
        Case("service path with ;", "GET", ENTITY, headers={"fiware-servicepath": "/a;b"}),
        Case("service path # on a creation", "POST", ENTITY, {"id": "sp", "type": "T"}, headers={"fiware-servicepath": "/a/#"}),
        Case("two service paths on a creation", "POST", ENTITY, {"id": "sp", "type": "T"}, headers={"fiware-servicepath": "/a,/b"}),
        Case("service path # on a delete", "DELETE", f"{ENTITY}/{E}", headers={"fiware-servicepath": "/#"}),
        Case("two service paths on a subscription", "POST", "/v2/subscriptions", {"subject": {"entities": [{"id": "a"}]}}, headers={"fiware-servicepath": "/a,/b"}),
    ]


def _method_cases() -> list[Case]:
    pairs = [
        ("PATCH", ENTITY), ("DELETE", ENTITY), ("PUT", ENTITY), ("PUT", "/v2/types"), ("POST", "/v2/types/T"),
        ("DELETE", "/version"), ("POST", "/version"), ("PUT", "/v2/subscriptions"), ("PATCH", "/v2/registrations/x"),
        ("POST", f"{ENTITY}/{E}"), ("PATCH", f"{ENTITY}/{E}/attrs/A"), ("DELETE", f"{ENTITY}/{E}/attrs/A/value"),
        ("TRACE", ENTITY), ("BADVERB", ENTITY), ("PROPFIND", "/v2"), ("GET", "/v2/op/update"), ("DELETE", "/v2/op/query"),
    ]
    # A body where one is needed: Orion checks the payload (411 without one) before the method.
    cases = [Case(f"{method} {path}", method, path, {} if method in ("POST", "PUT", "PATCH") else None, status=405)
             for method, path in pairs]
    cases += [
        Case("an unknown path", "GET", "/v3/entities", status=400),
        Case("an unknown collection", "GET", "/v2/things/x", status=400),
        Case("too deep a path", "GET", f"{ENTITY}/{E}/attrs/A/value/more", status=400),
    ]
    return cases


def _query_cases() -> list[Case]:
    cases: list[Case] = []
    listings = [("GET", ENTITY), ("GET", "/v2/types"), ("GET", "/v2/subscriptions"), ("GET", "/v2/registrations")]
    for name, value in [("superscript two", "%C2%B2"), ("Arabic-Indic three", "%D9%A3"), ("5000 digits", BIG_DIGITS),
                        ("negative", "-1"), ("a fraction", "1.5"), ("over the maximum", "1001")]:
        for method, path in listings:
            cases.append(Case(f"limit {name} on {path}", method, f"{path}?limit={value}", status=400))
        cases.append(Case(f"limit {name} on op/query", "POST", f"/v2/op/query?limit={value}", {"entities": [{"idPattern": ".*"}]}, status=400))
    for name, value in [("superscript two", "%C2%B2"), ("full-width one", "%EF%BC%91"), ("a word", "abc")]:
        for method, path in listings:
            cases.append(Case(f"offset {name} on {path}", method, f"{path}?offset={value}", status=400))
    for method, path in listings:
        cases.append(Case(f"offset of 5000 digits on {path}", method, f"{path}?offset={BIG_DIGITS}", ok=True))
    refused = {  # GET /v2/entities followed by these: an error in the broker's shape
        "options unknown": "?options=bogus",
        "options keyValues and values": "?options=keyValues,values",
        "orderBy duplicated": "?orderBy=a,a",
        "georel without geometry": "?georel=near;maxDistance:10",
        "geometry without coords": "?georel=near;maxDistance:10&geometry=point",
        "coords not numbers": "?georel=near;maxDistance:10&geometry=point&coords=a,b",
        "maxDistance not a number": "?georel=near;maxDistance:far&geometry=point&coords=1,2",
        "georel unknown": "?georel=inside&geometry=point&coords=1,2",
        "q unbalanced": "?q=a==",
        "q with a paren": "?q=(a==1",
        "mq unbalanced": "?mq=a.b==",
        "idPattern invalid": "?idPattern=(",
        "typePattern invalid": "?typePattern=[a",
        "idPattern with a backreference": "?idPattern=(a)%5C1",
        "id and idPattern": "?id=a&idPattern=b",
        "type and typePattern": "?type=a&typePattern=b",
        "attrs empty": "?attrs=",
        "metadata empty": f"/{E}?metadata=",
        "type empty on one entity": f"/{E}?type=",
    }
    accepted = {  # odd but acceptable: a 2xx
        # ngsi/geo.py reads coordinates with float(), which takes "٣" as 3: accepted, not a 500.
        "coords Unicode digits": "?georel=near;maxDistance:10&geometry=point&coords=%D9%A3,%D9%A3",
        "maxDistance of 5000 digits": f"?georel=near;maxDistance:{BIG_DIGITS}&geometry=point&coords=1,2",
        "q with a 5000-digit number": f"?q=a=={BIG_DIGITS}",
        "q range of huge numbers": f"?q=a=={BIG_DIGITS}..{BIG_DIGITS}9",
        "q with Unicode digits": "?q=a%3E%D9%A3",
        "mq without a metadata": "?mq=a==1",
        "an empty parameter name": "?=x",
    }
    cases += [Case(name, "GET", ENTITY + query) for name, query in refused.items()]
    cases += [Case(name, "GET", ENTITY + query, ok=True) for name, query in accepted.items()]
    return cases


def _text_value_cases() -> list[Case]:
    values = {"inf": "inf", "nan": "nan", "Arabic-Indic three": "٣", "superscript two": "²", "underscore": "1_0",
              "1e400": "1e400", "400 digits": "1" + "0" * 400, "5000 digits": BIG_DIGITS, "hex": "0x10",
              "unterminated string": '"abc', "empty": " "}
    return [Case(f"text/plain value {name}", "PUT", f"{ENTITY}/{E}/attrs/A/value", text, headers=TEXT)
            for name, text in values.items()]


BROKER_CASES = (
    _bad_json_cases() + _wrong_type_cases() + _huge_cases() + _forbidden_cases() + _header_cases()
    + _method_cases() + _query_cases() + _text_value_cases()
)

# What llhttp itself refuses: sent on a socket as they are.
BROKER_RAW = {
    "a bad request line": b"GET /v2/entities HTTP/1.1 garbage\r\n\r\n",
    "a non-ASCII byte in the path": "GET /v2/entities/é HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "a NUL in the path": b"GET /v2/entities/a\x00b HTTP/1.1\r\nHost: x\r\n\r\n",
    "a DEL in a header": b"GET /version HTTP/1.1\r\nHost: x\r\nFiware-Correlator: a\x7fb\r\n\r\n",
    "a control character in a header": b"GET /version HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "a header without colon": b"GET /version HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
    "a bad chunk size": b"POST /v2/entities HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
    "a bad Content-Length": b"POST /v2/entities HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "two Content-Lengths": b"POST /v2/entities HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "Content-Length and chunked": b"POST /v2/entities HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "a Content-Length of 30 digits": b"POST /v2/entities HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 30 + b"\r\n\r\n",
    "HTTP/9.9": b"GET /version HTTP/9.9\r\nHost: x\r\n\r\n",
    "a header of 200 KB": b"GET /version HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
    "a URL of 200 KB": b"GET /v2/entities?q=" + b"a" * 200_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "a declared length of 2 MiB": b"POST /v2/entities HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                  b"Content-Length: 2097152\r\n\r\n{}",
}


def _prepare_broker(services: Services) -> None:
    """What the probe's updates aim at, and what must survive it."""
    with httpx.Client(base_url=services.broker.url, timeout=10) as client:
        for entity in (
            {"id": E, "type": "T", "A": {"value": 1}, "big": {"value": 1e308}},
            {"id": "keeper", "type": "T", "n": {"value": 42}, "s": {"value": "kept"}},
            {"id": "a" * 29 + "!", "type": "T"},  # 30 characters for ^(a+)+$ to chew on
        ):
            response = client.post(ENTITY, json=entity, headers=TENANT)
            assert response.status_code in (201, 204), response.text


def test_overflowing_inc_keeps_the_value(services: Services) -> None:
    """The refused $inc left the attribute as it was (a null was stored before)."""
    with httpx.Client(base_url=services.broker.url, timeout=10) as client:
        response = client.post(ENTITY, json={"id": "incr", "type": "T", "c": {"value": 1e308}}, headers=TENANT)
        assert response.status_code == 201
        refused = client.patch(f"{ENTITY}/incr/attrs", json={"c": {"value": {"$inc": 1e308}}}, headers=TENANT)
        assert refused.status_code == 400 and "overflows" in refused.json()["description"]
        assert client.get(f"{ENTITY}/incr/attrs/c", headers=TENANT).json()["value"] == 1e308


# -- slow and malicious clients -------------------------------------------------------------------


class SlowClients:
    """Connections held open the way attackers hold them, each in a thread, answers kept."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.answers: dict[str, tuple[int, bytes]] = {}
        self.stop = threading.Event()

    def _run(self, name: str, port: int, first: bytes, drip: bytes = b"") -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT + 8) as sock:
            sock.sendall(first)
            sock.settimeout(0.3)
            received = b""
            deadline = time.monotonic() + TIMEOUT + 8
            while time.monotonic() < deadline and not self.stop.is_set():
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    if drip:
                        try:
                            sock.sendall(drip)  # one more byte of a head that never ends
                        except OSError:
                            break
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                received += chunk
        self.answers[name] = _status_and_body(received)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def start(self, name: str, port: int, first: bytes, drip: bytes = b"") -> None:
        self._spawn(self._run, name, port, first, drip)

    def hammer(self, name: str, url: str, headers: dict[str, str], seconds: float) -> None:
        """Requests one after the other for ``seconds`` (a pathological query)."""

        def run() -> None:
            statuses = []
            with httpx.Client(timeout=10) as client:
                end = time.monotonic() + seconds
                while time.monotonic() < end and not self.stop.is_set():
                    statuses.append(client.get(url, headers=headers).status_code)
            self.answers[name] = (max(statuses, default=0), b"")

        self._spawn(run)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(TIMEOUT + 10)
        self.stop.set()


def _assert_responsive(url: str, seconds: float = 2.5) -> None:
    """``url`` answers within a second, request after request, for ``seconds`` (generous: a
    few ms when nothing blocks the event loop)."""
    measured = []
    with httpx.Client(timeout=10) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.monotonic()
            assert client.get(url).status_code == 200
            measured.append(time.monotonic() - started)
            time.sleep(0.05)
    print(f"GET {urlsplit(url).path} under attack: max {max(measured) * 1000:.0f} ms over {len(measured)} requests")
    assert max(measured) < 1.0


STALLED_BODY = (b"POST /v2/entities HTTP/1.1\r\nHost: x\r\nFiware-Service: probe\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n{\"id\":\"st")
SLOW_HEAD = b"GET /v2/entities HTTP/1.1\r\nHost: x\r\nX-Slow: a"


def test_slow_clients_do_not_stall_the_broker(services: Services, probe: Probe) -> None:
    slow = SlowClients()
    broker = services.broker
    slow.start("stalled body", broker.port, STALLED_BODY)
    slow.start("slowloris head", broker.port, SLOW_HEAD, drip=b"a")
    slow.start("idle connection", broker.port, b"")
    redos = f"{broker.url}/v2/entities?idPattern=%5E(a%2B)%2B%24&limit=1000"
    slow.hammer("catastrophic idPattern", redos, TENANT, 2.5)
    slow.hammer("catastrophic q", f"{broker.url}/v2/entities?q=x~=%5E(a%2Ba%2B)%2B%24", TENANT, 2.5)
    _assert_responsive(broker.url + "/version")
    slow.join()
    for name in ("stalled body", "slowloris head"):
        status, body = slow.answers[name]
        assert status == 408 and json.loads(body)["error"] == "RequestTimeout", name
    assert slow.answers["idle connection"] == (0, b"")  # closed without an answer
    assert 0 < slow.answers["catastrophic idPattern"][0] < 500
    assert 0 < slow.answers["catastrophic q"][0] < 500


def test_slow_clients_do_not_stall_the_agent(services: Services, probe: Probe) -> None:
    slow = SlowClients()
    agent = services.agent
    north = int(agent.north.rsplit(":", 1)[1])
    south = int(agent.south.rsplit(":", 1)[1])
    stalled = (b"POST /iot/groups HTTP/1.1\r\nHost: x\r\nFiware-Service: probe\r\nFiware-ServicePath: /\r\n"
               b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"gro")
    slow.start("north stalled body", north, stalled)
    slow.start("south stalled body", south, b"POST /iot/d?k=kept&i=keptdev HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                                            b"Content-Length: 1000\r\n\r\nt|1")
    slow.start("north slowloris head", north, b"GET /iot/groups HTTP/1.1\r\nHost: x\r\nX-Slow: a", drip=b"a")
    _assert_responsive(agent.north + "/iot/about")
    slow.stop.set()  # the agent's heads have no deadline until its server uses seam.http_protocol
    slow.join()
    for name in ("north stalled body", "south stalled body"):
        status, body = slow.answers[name]
        assert status == 408 and json.loads(body) == {
            "name": "REQUEST_TIMEOUT", "message": f"request body not received within {TIMEOUT} seconds"
        }, name


# -- the agent's cases ----------------------------------------------------------------------------


def _agent_cases() -> list[Case]:
    cases: list[Case] = []
    for path in ("/iot/groups", "/iot/services", "/iot/devices", "/iot/op/delete"):
        for name, body in (("open brace", "{"), ("NaN", '{"x":NaN}'), ("invalid utf-8", b'{"\xff"}')):
            cases.append(Case(f"bad JSON ({name}) on POST {path}", "POST", path, body))
    group = {"apikey": "kbad", "resource": "/iot/bad"}
    groups = {
        "groups not a list": {"groups": {}}, "a group a string": {"groups": ["g"]},
        "no apikey": {"groups": [{"resource": "/r"}]}, "no resource": {"groups": [{"apikey": "k"}]},
        "resource without /": {"groups": [{**group, "resource": "r"}]},
        "attributes not a list": {"groups": [{**group, "attributes": {}}]},
        "attribute without name": {"groups": [{**group, "attributes": [{"type": "T"}]}]},
        "attribute name with <": {"groups": [{**group, "attributes": [{"name": "a<", "type": "T"}]}]},
        "static without value": {"groups": [{**group, "static_attributes": [{"name": "s", "type": "T"}]}]},
        "explicitAttrs a number": {"groups": [{**group, "explicitAttrs": 5}]},
        "timestamp a string": {"groups": [{**group, "timestamp": "yes"}]},
        "entity_type with ?": {"groups": [{**group, "entity_type": "T?"}]},
        "apikey a number": {"groups": [{**group, "apikey": 5}]},
        "5 MiB group": {"groups": [{**group, "description": "d" * (5 << 20)}]},
    }
    cases += [Case(f"group: {name}", "POST", "/iot/groups", body, status=413 if "MiB" in name else None)
              for name, body in groups.items()]
    cases += [
        Case("PUT group without resource and apikey", "PUT", "/iot/groups", {"entity_type": "X"}, status=400),
        Case("PUT group without resource", "PUT", "/iot/groups?apikey=kept", {"entity_type": "X"}, status=400),
        Case("PUT group without apikey", "PUT", "/iot/groups?resource=/iot/d", {"entity_type": "X"}, status=400),
        Case("DELETE group without resource and apikey", "DELETE", "/iot/groups", status=400),
        Case("DELETE group without apikey", "DELETE", "/iot/groups?resource=/iot/d", status=400),
        Case("DELETE service without resource and apikey", "DELETE", "/iot/services", status=400),
        Case("PUT group of 2 MiB", "PUT", "/iot/groups?resource=/iot/d&apikey=kept", {"description": "d" * (2 << 20)}, status=413),
    ]
    headers = {
        "no fiware-service": {"fiware-service": None}, "no fiware-servicepath": {"fiware-servicepath": None},
        "service a;b<": {"fiware-service": "a;b<"}, "service of 60 characters": {"fiware-service": "s" * 60},
        "service with -": {"fiware-service": "a-b"}, "service path relative": {"fiware-servicepath": "nope"},
        "two service paths": {"fiware-servicepath": "/a,/b"}, "service path /#": {"fiware-servicepath": "/#"},
        "service path component of 51": {"fiware-servicepath": "/" + "c" * 51},
        "service path with a space": {"fiware-servicepath": "/a b"},
    }
    cases += [Case(f"GET devices with {name}", "GET", "/iot/devices", headers=h) for name, h in headers.items()]
    cases += [Case(f"POST groups with {name}", "POST", "/iot/groups", {"groups": [group]}, headers=h)
              for name, h in list(headers.items())[2:6]]
    cases.append(Case("POST devices with service path /*", "POST", "/iot/devices", {"devices": [{"device_id": "d"}]},
                      headers={"fiware-servicepath": "/*"}))
    devices = {
        "id with <": "d<1", "id with /": "a/b", "id with a space": "a b", "id of 300 characters": "d" * 300,
        "id empty": "", "id non-ASCII": "dé", "id with a NUL": "a\u0000b", "id with #": "a#b",
    }
    cases += [Case(f"device {name}", "POST", "/iot/devices", {"devices": [{"device_id": device_id}]})
              for name, device_id in devices.items()]
    cases += [
        Case("device entity_name with ?", "POST", "/iot/devices", {"devices": [{"device_id": "d", "entity_name": "e?"}]}),
        Case("device entity_type with (", "POST", "/iot/devices", {"devices": [{"device_id": "d", "entity_type": "T("}]}),
        Case("device id a number", "POST", "/iot/devices", {"devices": [{"device_id": 5}]}),
        Case("devices not a list", "POST", "/iot/devices", {"devices": "d"}),
        Case("device update with entity_name <", "PUT", "/iot/devices/keptdev", {"entity_name": "e<"}),
        Case("op/delete with deviceId a number", "POST", "/iot/op/delete", {"devices": [{"deviceId": 5}]}),
        Case("devices offset of 5000 digits", "GET", f"/iot/devices?offset={BIG_DIGITS}", ok=True),
        Case("devices limit of 5000 digits", "GET", f"/iot/devices?limit={BIG_DIGITS}", ok=True),
        Case("devices limit superscript two", "GET", "/iot/devices?limit=%C2%B2", status=400),
        Case("devices offset Arabic-Indic three", "GET", "/iot/devices?offset=%D9%A3", status=400),
        Case("devices limit negative", "GET", "/iot/devices?limit=-1", status=400),
        Case("groups limit a fraction", "GET", "/iot/groups?limit=1.5", status=400),
        Case("an unknown path", "GET", "/iot/nothing", status=404),
        Case("PATCH groups", "PATCH", "/iot/groups", status=405),
        Case("DELETE about", "DELETE", "/iot/about", status=405),
        Case("a missing device", "GET", "/iot/devices/nobody", status=404),
    ]
    return cases


AGENT_CASES = _agent_cases()
SOUTH_CASES = [
    Case("UL without parameters", "POST", "/iot/d", "t|1", headers=TEXT),
    Case("UL with an unknown apikey", "POST", "/iot/d?k=nokey&i=dev", "t|1", headers=TEXT),
    Case("JSON measure not JSON", "POST", "/iot/json?k=kept&i=keptdev", "{"),
    Case("JSON measure of 2 MiB", "POST", "/iot/json?k=kept&i=keptdev", {"t": "x" * (2 << 20)}, status=413),
    Case("an unknown path on the south port", "GET", "/iot/nothing", status=404),
    Case("PUT on UL", "PUT", "/iot/d?k=kept&i=keptdev", "t|1", headers=TEXT, status=405),
]
# Raw requests the agent's app answers (llhttp parses them).
AGENT_RAW_APP = {
    "a declared length of 2 MiB": b"POST /iot/devices HTTP/1.1\r\nHost: x\r\nFiware-Service: probe\r\n"
                                  b"Fiware-ServicePath: /\r\nContent-Length: 2097152\r\n\r\n{}",
}
AGENT_RAW = {
    "a bad request line": b"GET /iot/groups HTTP/1.1 garbage\r\n\r\n",
    "a non-ASCII byte in the path": "GET /iot/é HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "a bad chunk size": b"POST /iot/groups HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
}


def _prepare_agent(services: Services) -> None:
    with httpx.Client(base_url=services.agent.north, timeout=10) as client:
        group = {"apikey": "kept", "resource": "/iot/d", "entity_type": "Kept"}
        assert client.post("/iot/groups", json={"groups": [group]}, headers=AGENT_TENANT).status_code == 201
        device = {"device_id": "keptdev", "apikey": "kept", "entity_type": "Kept"}
        assert client.post("/iot/devices", json={"devices": [device]}, headers=AGENT_TENANT).status_code == 201


@dataclass
class Probe:
    """Every case sent once: how many, and what was wrong, per service."""

    broker_sent: int = 0
    agent_sent: int = 0
    broker_problems: list[str] = field(default_factory=list)
    agent_problems: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def probe(services: Services) -> Probe:
    """The probe, run once before any test that looks at its results or at what survived it."""
    result = Probe()
    _prepare_broker(services)
    _prepare_agent(services)
    broker_keys, agent_keys = {"error", "description"}, {"name", "message"}
    with httpx.Client(base_url=services.broker.url, timeout=15) as client:
        for case in BROKER_CASES:
            result.broker_problems.append(_probe_one(client, case, TENANT, broker_keys))
    for name, data in BROKER_RAW.items():
        status, body = raw_request(services.broker.port, data)
        result.broker_problems.append(_problem(Case(f"raw: {name}", "RAW", "/"), status, body, broker_keys) or "")
    with httpx.Client(base_url=services.agent.north, timeout=15) as client:
        for case in AGENT_CASES:
            result.agent_problems.append(_probe_one(client, case, AGENT_TENANT, agent_keys))
    with httpx.Client(base_url=services.agent.south, timeout=15) as client:
        for case in SOUTH_CASES:
            result.agent_problems.append(_probe_one(client, case, {}, agent_keys))
    north = int(services.agent.north.rsplit(":", 1)[1])
    for name, data in AGENT_RAW_APP.items():
        status, body = raw_request(north, data)
        result.agent_problems.append(_problem(Case(f"raw: {name}", "RAW", "/", status=413), status, body, agent_keys) or "")
    result.broker_sent, result.agent_sent = len(result.broker_problems), len(result.agent_problems)
    result.broker_problems = [p for p in result.broker_problems if p]
    result.agent_problems = [p for p in result.agent_problems if p]
    return result


def test_broker_answers_every_bad_request_below_500_in_its_shape(probe: Probe) -> None:
    assert probe.broker_sent >= 150
    assert not probe.broker_problems, "\n".join(probe.broker_problems)


def test_agent_answers_every_bad_request_below_500_in_its_shape(probe: Probe) -> None:
    assert probe.agent_sent >= 50
    assert not probe.agent_problems, "\n".join(probe.agent_problems)


def test_agent_answers_malformed_http_in_its_shape(services: Services) -> None:
    north = int(services.agent.north.rsplit(":", 1)[1])
    problems = []
    for name, data in AGENT_RAW.items():
        status, body = raw_request(north, data)
        problems.append(_problem(Case(f"raw: {name}", "RAW", "/"), status, body, {"name", "message"}))
    assert not any(problems), problems


# 500s this probe found once, each fixed at its root:
@pytest.mark.parametrize("digits", [400, 5000])
def test_deep_json_with_a_huge_integer(services: Services, digits: int) -> None:
    body = '{"id":"deep","type":"T","x":{"value":' + "[" * 1100 + "1" * digits + "]" * 1100 + "}}"
    response = httpx.post(services.broker.url + ENTITY, content=body, headers={**TENANT, **JSON}, timeout=10)
    assert response.status_code < 500, response.text


def test_subscription_url_with_a_huge_port(services: Services) -> None:
    body = {"subject": {"entities": [{"id": "a"}]}, "notification": {"http": {"url": "http://h:" + BIG_DIGITS + "/"}}}
    response = httpx.post(services.broker.url + "/v2/subscriptions", json=body, headers=TENANT, timeout=10)
    assert response.status_code < 500, response.text


@pytest.mark.parametrize("src", ["²", BIG_DIGITS])
def test_gateway_upload_with_a_bad_source_address(services: Services, probe: Probe, src: str) -> None:
    body = {"ldata": "TC/22.5", "pdata": f"1,16,{src},3,4,5,6"}
    response = httpx.post(services.agent.south + "/iot/waziup?k=kept", json=body, timeout=10)
    assert response.status_code < 500, response.text


def test_after_the_probe_nothing_was_lost(services: Services, probe: Probe) -> None:
    """Both services still serve, and what they acknowledged before the probe is still
    there, unchanged."""
    assert probe.broker_sent and probe.agent_sent
    with httpx.Client(timeout=10) as client:
        assert client.get(services.broker.url + "/version").status_code == 200
        keeper = client.get(f"{services.broker.url}{ENTITY}/keeper?options=keyValues", headers=TENANT)
        assert keeper.status_code == 200 and keeper.json() == {"id": "keeper", "type": "T", "n": 42, "s": "kept"}
        probe = client.get(f"{services.broker.url}{ENTITY}/{E}?options=keyValues", headers=TENANT).json()
        assert probe["big"] == 1e308  # the refused $inc/$mul changed nothing
        assert isinstance(probe["A"], (int, str))  # text/plain puts: a number or a string, never null
        listing = client.get(f"{services.broker.url}{ENTITY}?limit=1000", headers=TENANT)
        assert listing.status_code == 200  # no stored value breaks a listing
        assert client.get(services.agent.north + "/iot/about").status_code == 200
        groups = client.get(services.agent.north + "/iot/groups", headers=AGENT_TENANT).json()
        assert [(g["resource"], g["apikey"], g["entity_type"]) for g in groups["groups"]] == [("/iot/d", "kept", "Kept")]
        device = client.get(services.agent.north + "/iot/devices/keptdev", headers=AGENT_TENANT)
        assert device.status_code == 200 and device.json()["entity_name"] == "Kept:keptdev"


def test_module_cases_are_many_and_distinct() -> None:
    """The probe's size, as the issue asks: 150+ broker requests, 50+ agent requests."""
    assert len(BROKER_CASES) + len(BROKER_RAW) >= 150
    assert len(AGENT_CASES) + len(SOUTH_CASES) + len(AGENT_RAW_APP) >= 50
    for cases in (BROKER_CASES, AGENT_CASES + SOUTH_CASES):
        names = [case.name for case in cases]
        assert len(set(names)) == len(names)
