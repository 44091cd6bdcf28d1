"""Concurrent writes cut by ``kill -9``: the load the durability tests of the broker and of
the history service check (every write acknowledged before the kill is there after a restart)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

# One write by one thread: ``client`` to the service, ``i`` the thread's write count (from
# 1), ``name`` unique to the write; answers the list to record ``name`` in, once the service
# acknowledged it, or None if it did not.
Write = Callable[[httpx.Client, int, str], list[str] | None]


def writes_until_killed(url: str, threads: int, write: Write, enough: Callable[[], bool],
                        kill: Callable[[], None], *, settle: float = 0, poll: float = 0.05) -> None:
    """``threads`` clients write to ``url`` until ``enough`` holds (``settle`` seconds at
    least, a minute at most), then ``kill`` stops the service in the middle of the load;
    a write the kill cut short was never acknowledged, so is recorded nowhere."""
    lock = threading.Lock()
    stop = threading.Event()

    def hammer(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=5) as client:
            i = 0
            while not stop.is_set():
                i += 1
                name = f"w{worker}x{i}"
                try:
                    target = write(client, i, name)
                except httpx.TransportError:
                    return  # the service is gone: this write was never acknowledged
                if target is not None:
                    with lock:
                        target.append(name)

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(hammer, w) for w in range(threads)]
        try:
            time.sleep(settle)
            deadline = time.monotonic() + 60
            while not enough() and time.monotonic() < deadline:
                time.sleep(poll)
            kill()
        finally:
            stop.set()  # else the pool would wait for the threads for ever
        for future in futures:
            future.result()
