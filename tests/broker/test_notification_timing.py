"""A write is answered only once the notifications it caused are on the wire.

Orion's functional cases (and clients like them) read their receiver right after the
update's answer: ``2015_notification_templates`` creates one entity that fires seven
subscriptions and dumps the accumulator at once. If the broker answered first and sent
afterwards, a loaded machine could deschedule it between the two, and the receiver would
be read before the notifications left (the case failed about one run in four with two
busy cores). This checks the guarantee itself, without timing: when the 201 arrives, the
request bytes of every notification are already in the receiver's socket buffers (on
loopback a write lands in the peer's buffer before it returns), so the receiver, stopped
then, has answered them or finds them with non-blocking ``accept``/``recv``. The receiver
answers at once, as the kit's accumulator does: the broker opens at most four connections
to a receiver before its first answer (``sender.RAMP``), and keep-alive carries the rest.
"""

from __future__ import annotations

import select
import socket
import threading
from typing import Any

import httpx

SUBSCRIPTIONS = 7


class _Receiver(threading.Thread):
    """Answers every request at once (keep-alive, as Orion's accumulator does) until stopped;
    ``count`` then adds the requests still unread in its connections' buffers."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.answered = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        pending: dict[socket.socket, bytes] = {}
        while not self.stopping.is_set():
            readable, _, _ = select.select([self.listener, *self.conns], [], [], 0.01)
            for sock in readable:
                if self.stopping.is_set():
                    return
                if sock is self.listener:
                    conn, _ = self.listener.accept()
                    self.conns.append(conn)
                    continue
                data = pending.get(sock, b"") + sock.recv(65536)
                while b"\r\n\r\n" in data:  # bodies here are small and come whole
                    head, _, data = data.partition(b"\r\n\r\n")
                    length = int(next((v for k, _, v in (l.partition(b":") for l in head.split(b"\r\n"))
                                       if k.strip().lower() == b"content-length"), b"0"))
                    data = data[length:]
                    self.answered += 1
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                pending[sock] = data

    def count(self) -> int:
        """Stop answering; the requests answered plus those readable right now, without waiting."""
        self.stopping.set()
        self.join()
        self.listener.setblocking(False)
        count = self.answered
        while True:
            try:
                conn, _ = self.listener.accept()
            except BlockingIOError:
                break
            self.conns.append(conn)
        for conn in self.conns:
            conn.setblocking(False)
            data = b""
            try:
                while chunk := conn.recv(65536):
                    data += chunk
            except BlockingIOError:
                pass
            count += data.count(b" HTTP/1.1\r\n")
            conn.close()
        self.listener.close()
        return count


def test_notifications_are_sent_before_the_answer(broker_process: Any, tmp_path: Any) -> None:
    receiver = _Receiver()
    receiver.start()
    port = receiver.port
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
        assert receiver.count() == SUBSCRIPTIONS
