"""A write is answered only once the notifications it caused are on the wire.

Orion's functional cases (and clients like them) read their receiver right after the
update's answer: ``2015_notification_templates`` creates one entity that fires seven
subscriptions and dumps the accumulator at once. If the broker answered first and sent
afterwards, a loaded machine could deschedule it between the two, and the receiver would
be read before the notifications left (the case failed about one run in four with two
busy cores). This checks the guarantee itself, without timing: when the 201 arrives, the
request bytes of every notification are already in the receiver's socket buffers (on
loopback a write lands in the peer's buffer before it returns), so non-blocking
``accept``/``recv`` find them all with no waiting at all.
"""

from __future__ import annotations

import socket
from typing import Any

import httpx

SUBSCRIPTIONS = 7


def _requests_already_there(listener: socket.socket) -> int:
    """Notification requests readable right now, without waiting (the receiver never answers,
    so each one came on a connection of its own)."""
    count = 0
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return count
        conn.setblocking(False)
        data = b""
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        except BlockingIOError:
            pass
        count += data.count(b" HTTP/1.1\r\n")
        conn.close()


def test_notifications_are_sent_before_the_answer(broker_process: Any, tmp_path: Any) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    broker = broker_process(["-data", str(tmp_path)])
    with httpx.Client(base_url=broker.url, timeout=10) as client:
        for step in range(SUBSCRIPTIONS):
            body = {
                "subject": {"entities": [{"id": "E1"}]},
                "notification": {"httpCustom": {"url": f"http://127.0.0.1:{port}/notify", "qs": {"step": str(step)}}},
            }
            assert client.post("/v2/subscriptions", json=body).status_code == 201
        created = client.post("/v2/entities?options=keyValues", json={"id": "E1", "type": "T", "A1": 1})
        assert created.status_code == 201
        assert _requests_already_there(listener) == SUBSCRIPTIONS
    listener.close()
