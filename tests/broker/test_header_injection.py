"""Notifications cannot be turned into header injection or request smuggling.

``httpCustom`` header names and values, the URL, ``qs`` and ``${attr}`` macros used to be
written into the outgoing request unchecked: a value with CR/LF, stored by any client (or
by a device through the IoT agent: ``{"x": "v\\r\\nX-From-Device: injected"}`` is a valid
measure), became extra headers, or a second request, at the subscriber. Now:

* at creation, header names and values with control characters are refused (400);
* at send time, a macro that yields CR/LF makes the notification fail (the HTTP client
  refuses to write such a header: ``lastFailureReason``), and the receiver gets nothing;
* URL and query text is percent-encoded, never written raw;
* an MQTT topic built by a macro with wildcards or control characters is not published.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import BrokerProcess


class RawReceiver:
    """A TCP listener that keeps the raw bytes of each connection (and answers 204)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.raw: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
            while len(rest) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                rest += chunk
                data += chunk
            self.raw.append(data)
            conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")  # no reuse: more bytes = smuggled
            time.sleep(0.2)  # a smuggled second request would arrive on this connection now
            conn.settimeout(0.3)
            try:
                more = conn.recv(65536)
                if more:
                    self.raw.append(b"SMUGGLED:" + more)
            except OSError:
                pass
        except OSError:
            pass
        finally:
            conn.close()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, RawReceiver]]:
    receiver = RawReceiver()
    broker = BrokerProcess(["-data", str(tmp_path_factory.mktemp("inj"))]).start()
    try:
        with httpx.Client(base_url=broker.url, timeout=10) as client:
            yield client, receiver
    finally:
        broker.stop()
        receiver.sock.close()


def subscribe(client: httpx.Client, entity: str, custom: dict[str, Any]) -> str:
    body = {"subject": {"entities": [{"id": entity}]}, "notification": {"httpCustom": custom}}
    answer = client.post("/v2/subscriptions", json=body)
    assert answer.status_code == 201, answer.text
    return answer.headers["Location"].rsplit("/", 1)[1]


def failure(client: httpx.Client, sub_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        notification = client.get(f"/v2/subscriptions/{sub_id}").json()["notification"]
        if notification.get("failsCounter") or notification.get("lastSuccess"):
            return notification
        time.sleep(0.05)
    raise AssertionError("no outcome")


@pytest.mark.parametrize(
    "headers", [{"X": "a\r\nB: c"}, {"X\r\nY": "v"}, {"X": "v\x00"}, {"X Y": "v"}, {"X:Y": "v"}]
)
def test_refused_at_creation(setup: tuple[httpx.Client, RawReceiver], headers: dict[str, str]) -> None:
    client, receiver = setup
    body = {
        "subject": {"entities": [{"id": "E0"}]},
        "notification": {"httpCustom": {"url": f"http://127.0.0.1:{receiver.port}/n", "headers": headers}},
    }
    answer = client.post("/v2/subscriptions", json=body)
    assert answer.status_code == 400 and "invalid header" in answer.json()["description"]


def test_a_macro_cannot_inject_a_header(setup: tuple[httpx.Client, RawReceiver]) -> None:
    client, receiver = setup
    sub_id = subscribe(client, "E1", {"url": f"http://127.0.0.1:{receiver.port}/n", "headers": {"X-Val": "${x}"}})
    before = len(receiver.raw)
    value = "v\r\nX-From-Device: injected\r\n\r\nPOST /smuggled HTTP/1.1\r\nHost: x"
    assert client.post("/v2/entities?options=keyValues", json={"id": "E1", "type": "T", "x": value}).status_code == 201
    outcome = failure(client, sub_id)
    assert outcome["failsCounter"] == 1 and "header" in outcome["lastFailureReason"].lower()
    time.sleep(0.3)
    assert len(receiver.raw) == before  # nothing reached the receiver


def test_url_and_query_macros_are_encoded(setup: tuple[httpx.Client, RawReceiver]) -> None:
    client, receiver = setup
    subscribe(client, "E2", {"url": f"http://127.0.0.1:{receiver.port}/n/${{p}}", "qs": {"q": "${p}"}})
    assert client.post("/v2/entities?options=keyValues", json={"id": "E2", "type": "T", "p": "a b&c"}).status_code == 201
    deadline = time.monotonic() + 10
    while not any(b"/n/" in raw for raw in receiver.raw) and time.monotonic() < deadline:
        time.sleep(0.05)
    raw = next(raw for raw in receiver.raw if b"/n/" in raw)
    assert raw.split(b"\r\n", 1)[0].startswith(b"POST /n/a%20b&c?q=a%20b&c HTTP/1.1")


def test_control_characters_in_a_url_macro_stay_in_the_request_line(setup: tuple[httpx.Client, RawReceiver]) -> None:
    client, receiver = setup
    subscribe(client, "E4", {"url": f"http://127.0.0.1:{receiver.port}/m/${{p}}"})
    value = "a\r\nX-Injected: yes"
    assert client.post("/v2/entities?options=keyValues", json={"id": "E4", "type": "T", "p": value}).status_code == 201
    deadline = time.monotonic() + 10
    while not any(b"/m/" in raw for raw in receiver.raw) and time.monotonic() < deadline:
        time.sleep(0.05)
    raw = next(raw for raw in receiver.raw if b"/m/" in raw)
    line, _, headers = raw.split(b"\r\n\r\n", 1)[0].partition(b"\r\n")
    assert line.startswith(b"POST /m/a") and line.endswith(b" HTTP/1.1") and line.count(b" ") == 2
    assert b"x-injected" not in headers.lower()
    time.sleep(0.3)
    assert not any(raw.startswith(b"SMUGGLED:") for raw in receiver.raw)


def test_an_mqtt_topic_from_a_macro(setup: tuple[httpx.Client, RawReceiver], mosquitto: Any) -> None:
    client, _ = setup
    body = {
        "subject": {"entities": [{"id": "E3"}]},
        "notification": {"mqttCustom": {"url": f"mqtt://{mosquitto.host}:{mosquitto.port}", "topic": "t/${d}"}},
    }
    created = client.post("/v2/subscriptions", json=body)
    assert created.status_code == 201
    sub_id = created.headers["Location"].rsplit("/", 1)[1]
    assert client.post("/v2/entities?options=keyValues", json={"id": "E3", "type": "T", "d": "x/#"}).status_code == 201
    assert failure(client, sub_id)["failsCounter"] == 1
