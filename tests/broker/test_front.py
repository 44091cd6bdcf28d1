"""The HTTP front end (broker/front.py) and the server's one-write responses (broker/server.py).

Routing is a hand-written table now: it must send every path where Starlette's routes
sent it. Responses leave in one socket write: pipelined requests, HEAD and 204 answers
must still come out whole and in order.
"""

from __future__ import annotations

import re
import socket
from typing import Any, Callable

import pytest
from starlette.routing import Match, Route

from broker import front
from broker.routes import entities, registrations, subscriptions, types

# The routes as Starlette declared them before the table ("segment": may be empty).
STARLETTE_SHAPES = [
    ("/v2/entities/{id:segment}", entities.ENTITY),
    ("/v2/entities/{id}/attrs", entities.ATTRS),
    ("/v2/entities/{id}/attrs/{name:segment}", entities.ATTR),
    ("/v2/entities/{id}/attrs/{name}/value", entities.ATTR_VALUE),
    ("/v2/types/{type:segment}", types.TYPE),
    ("/v2/subscriptions/{id:segment}", subscriptions.SUBSCRIPTION),
    ("/v2/registrations/{id}", registrations.REGISTRATION),
]


def _starlette_route(path: str) -> tuple[Any, dict[str, str]] | None:
    if path in front.FIXED:
        return front.FIXED[path], {}
    for shape, resource in STARLETTE_SHAPES:
        # {x:segment} is [^/]*, {x} is [^/]+ (Starlette's default "str" convertor)
        regex = re.sub(r"\{(\w+):segment\}", r"(?P<\1>[^/]*)", shape)
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
        match = re.fullmatch(regex, path)
        if match:
            return resource, match.groupdict()
    return None


PATHS = [
    "/version", "/v2", "/v2/entities", "/v2/entities/E1", "/v2/entities/", "/v2/entities/E1/attrs",
    "/v2/entities//attrs", "/v2/entities/E1/attrs/A", "/v2/entities/E1/attrs/", "/v2/entities/E1/attrs/A/value",
    "/v2/entities/E1/attrs//value", "/v2/entities/E1/attrs/A/other", "/v2/entities/E1/other",
    "/v2/entities/E1/attrs/A/value/x", "/v2/types", "/v2/types/T", "/v2/types/", "/v2/types/T/x",
    "/v2/subscriptions/", "/v2/subscriptions/abc", "/v2/registrations/abc", "/v2/registrations/",
    "/v2/op/update", "/v2/op/query", "/v2/op/notify", "/v2/op", "/v1/entities/E1", "/", "/v2/unknown/x",
    "/v2/entities/E 1", "/v2/entities/É/attrs/ñ/value", "v2/entities/E1", "//v2/entities/E1",
]


@pytest.mark.parametrize("path", PATHS)
def test_routes_match_the_starlette_shapes(path: str) -> None:
    assert front.route(path) == _starlette_route(path)
    # Sanity check of the reference itself against Starlette's own matcher where it applies.
    for shape, _ in STARLETTE_SHAPES:
        route = Route(shape.replace(":segment", ""), endpoint=lambda: None)
        scope = {"type": "http", "path": path, "method": "GET", "root_path": ""}
        if route.matches(scope)[0] == Match.FULL:
            assert _starlette_route(path) is not None


def test_correlators_are_uuid_shaped_and_unique() -> None:
    made = [front.new_correlator() for _ in range(10_000)]
    assert len(set(made)) == len(made)
    pattern = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    assert all(pattern.match(c) for c in made)


def _read_response(sock: socket.socket, buffer: bytearray, head_only: bool = False) -> tuple[str, dict[str, str], bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-response"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = 0 if head_only else int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    buffer[:] = rest[length:]
    return lines[0], headers, rest[:length]


def test_pipelined_requests_get_whole_answers_in_order(broker_process: Callable[[list[str]], Any]) -> None:
    broker = broker_process(["-dbURI", "memory://"])
    body = b'{"id":"E1","type":"T","A":{"value":1,"type":"Number"}}'
    patch = b'{"A":{"value":2}}'
    requests = (
        b"POST /v2/entities HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        + b"GET /v2/entities/E1?options=keyValues HTTP/1.1\r\nHost: x\r\nFiware-Correlator: abc\r\n\r\n"
        + b"HEAD /version HTTP/1.1\r\nHost: x\r\n\r\n"
        + b"PATCH /v2/entities/E1/attrs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(patch), patch)
        + b"GET /v2/nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as sock:
        sock.sendall(requests)
        buffer = bytearray()
        status, headers, content = _read_response(sock, buffer)
        assert status == "HTTP/1.1 201 Created"
        assert headers["location"] == "/v2/entities/E1?type=T"
        assert re.match(r"^[0-9a-f-]{36}$", headers["fiware-correlator"])
        status, headers, content = _read_response(sock, buffer)
        assert status == "HTTP/1.1 200 OK"
        assert headers["fiware-correlator"] == "abc"
        assert content == b'{"id":"E1","type":"T","A":1}'
        status, headers, content = _read_response(sock, buffer, head_only=True)
        assert status == "HTTP/1.1 405 Method Not Allowed" and int(headers["content-length"]) > 0  # no body: HEAD
        status, headers, content = _read_response(sock, buffer)
        assert status == "HTTP/1.1 204 No Content" and content == b""
        status, headers, content = _read_response(sock, buffer)
        assert status == "HTTP/1.1 400 Bad Request"
        assert content == b'{"error":"BadRequest","description":"Service not found. Check your URL as probably it is wrong."}'
