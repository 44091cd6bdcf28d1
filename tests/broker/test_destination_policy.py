"""The destination policy on the broker (ngsi/destinations.py; -notifAllowedHosts).

Orion sends notifications and forwards requests to any URL a client gives it, so a
client can aim it at the platform's own services or a cloud metadata endpoint. Tried
against this broker before the policy: a subscription to ``169.254.169.254``, to the IoT
agent's provisioning API on ``[::1]:4041`` or to ``2130706433`` (127.0.0.1) was
accepted, and an ``httpCustom`` subscription with ``"method": "DELETE"`` deleted the
agent's groups. Now such destinations are refused at creation with a 400 that says
why, and at send time (a URL built by macros) with a failure the subscription shows.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ngsi.destinations import Gate, Policy, Refused
from tests.conftest import BrokerProcess, free_port


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A broker with no allowed destination (what `waziup broker` starts with)."""
    broker = BrokerProcess(["-data", str(tmp_path_factory.mktemp("closed"))], allow_loopback=False).start()
    try:
        with httpx.Client(base_url=broker.url, timeout=10) as client:
            yield client
    finally:
        broker.stop()


def subscription(url: str, **custom: Any) -> dict[str, Any]:
    channel = {"httpCustom": {"url": url, **custom}} if custom else {"http": {"url": url}}
    return {"subject": {"entities": [{"idPattern": ".*"}]}, "notification": channel}


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local/cloud-metadata"),
        ("http://[::1]:4041/iot/groups", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://0x7f000001:1026/", "loopback"),
        ("http://127.1/", "loopback"),
        ("http://localhost:4041/", "loopback"),
        ("http://foo.localhost/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://192.168.1.10:8080/", "private"),
        ("http://[fd00::1]/", "unique-local"),
        ("mqtt://127.0.0.1:1883", "loopback"),
    ],
)
def test_refused_at_creation(closed: httpx.Client, url: str, reason: str) -> None:
    body = subscription(url)
    if url.startswith("mqtt"):
        body["notification"] = {"mqtt": {"url": url, "topic": "t"}}
    answer = closed.post("/v2/subscriptions", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "BadRequest"
    assert reason in answer.json()["description"]


def test_the_provisioning_api_cannot_be_reached_with_a_custom_delete(closed: httpx.Client) -> None:
    body = subscription("http://127.0.0.1:4041/iot/groups", method="DELETE", qs={"resource": "/iot/d", "apikey": "k"})
    answer = closed.post("/v2/subscriptions", json=body)
    assert answer.status_code == 400
    assert "not in the allowed destinations (-notifAllowedHosts)" in answer.json()["description"]


def test_registrations_too(closed: httpx.Client) -> None:
    body = {
        "dataProvided": {"entities": [{"id": "E1", "type": "T"}], "attrs": ["a"]},
        "provider": {"http": {"url": "http://127.0.0.1:4041/v2"}},
    }
    answer = closed.post("/v2/registrations", json=body)
    assert answer.status_code == 400 and "loopback" in answer.json()["description"]


def test_public_and_unresolved_names_are_accepted(closed: httpx.Client) -> None:
    for url in ("http://8.8.8.8/notify", "http://nohost.invalid/notify"):
        assert closed.post("/v2/subscriptions", json=subscription(url)).status_code == 201


class Receiver:
    """A loopback HTTP receiver counting what reaches it."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.paths.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def wait_for(check: Any, seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    return check()


def test_an_allow_listed_receiver_works_and_nothing_else_of_that_host(tmp_path: Any) -> None:
    receiver = Receiver()
    allowed = f"127.0.0.1:{receiver.port}/notify"
    broker = BrokerProcess(["-data", str(tmp_path), "-notifAllowedHosts", allowed], allow_loopback=False).start()
    try:
        with httpx.Client(base_url=broker.url, timeout=10) as client:
            ok = client.post("/v2/subscriptions", json=subscription(f"http://{allowed}"))
            assert ok.status_code == 201
            other_path = client.post("/v2/subscriptions", json=subscription(f"http://127.0.0.1:{receiver.port}/admin"))
            assert other_path.status_code == 400
            # A URL made by a macro is decided when sent: the entity names the address.
            sneaky = subscription("http://${target}/admin", method="POST")
            sneaky["subject"] = {"entities": [{"id": "S1"}]}
            created = client.post("/v2/subscriptions", json=sneaky)
            assert created.status_code == 201
            sneaky_id = created.headers["Location"].rsplit("/", 1)[1]
            client.post("/v2/entities?options=keyValues", json={"id": "E1", "type": "T", "n": 1})
            assert wait_for(lambda: receiver.paths) == ["/notify"]
            client.post("/v2/entities?options=keyValues", json={"id": "S1", "type": "T", "target": f"127.0.0.1:{receiver.port}"})

            def failed() -> dict[str, Any] | None:
                notification = client.get(f"/v2/subscriptions/{sneaky_id}").json()["notification"]
                return notification if notification.get("failsCounter") else None

            notification = wait_for(failed)
            assert notification is not None and notification["failsCounter"] == 1
            assert "loopback address not in the allowed destinations" in notification["lastFailureReason"]
            time.sleep(0.3)
            assert receiver.paths == ["/notify", "/notify"]  # the S1 create notified the catch-all only
    finally:
        broker.stop()
        receiver.close()


def test_a_name_that_changes_its_answer_reaches_nothing_it_should_not() -> None:
    """DNS rebinding: the request was checked with the public answer; the connection is
    checked again, and made to the address that was checked."""
    answers = [["8.8.8.8"], ["127.0.0.1"]]

    async def resolver(host: str, port: int) -> list[str]:
        return answers[0] if len(answers) == 1 else answers.pop(0)

    async def scenario() -> None:
        gate = Gate(Policy([]), resolver=resolver, ttl=60)
        assert (await gate.check("http://rebind.example/x")).allowed  # first answer: public
        with pytest.raises(Refused, match="loopback"):
            await gate.connect_to("http", "rebind.example", 80)  # second answer: loopback

    asyncio.run(scenario())


def test_the_http_client_connects_only_where_the_gate_says(tmp_path: Any) -> None:
    from ngsi.client.http11 import DestinationRefused, HTTPClient

    receiver = Receiver()

    async def scenario() -> None:
        closed_client = HTTPClient(gate=Gate(Policy([])))
        with pytest.raises(DestinationRefused) as refused:
            await closed_client.request("POST", f"http://127.0.0.1:{receiver.port}/notify", {}, b"{}")
        assert "loopback" in refused.value.reason
        await closed_client.aclose()
        open_client = HTTPClient(gate=Gate(Policy([f"127.0.0.1:{receiver.port}"])))
        answer = await open_client.request("POST", f"http://127.0.0.1:{receiver.port}/notify", {}, b"{}")
        assert answer.status == 204
        await open_client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        receiver.close()
    assert receiver.paths == ["/notify"]
    assert free_port()  # (the helper is shared with the other process tests)
