"""What the PEP guard costs a request, in µs: ``python -m tests.security.pep.cost``.

The guard is called directly, as the broker's front end calls it, on a warm cache (the
answers docs/security.md quotes), and compared with a guard that does nothing. The world is
conftest.py's, in a real identity manager in-process; the broker is not involved (its own
cost does not change with the guard)."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ngsi.client.asgi import ASGITransport
from security.pep.guard import PEP
from tests.security.idm.conftest import Clock, make_config, running

from .conftest import IDM_URL, CountingTransport, Monotonic, World, incoming

ROUNDS, CALLS = 7, 5000


async def per_call(make: Callable[[], Any], guard: Callable[[Any], Awaitable[Any]]) -> float:
    """The least over rounds of the µs per call (the machine's other work only adds; the
    request objects are made outside the timing)."""
    results = []
    for _ in range(ROUNDS):
        requests = [make() for _ in range(CALLS)]
        start = time.perf_counter()
        for request in requests:
            await guard(request)
        results.append((time.perf_counter() - start) / CALLS * 1e6)
    return min(results)


async def nothing(request: Any) -> None:
    return None


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with running(make_config(Path(tmp), issuer=IDM_URL), Clock()) as idm:
            world = await World(idm).build()
            tokens = {"jwt": await world.token("alice", jwt=True), "opaque": await world.token("alice")}
            headers = {"fiware-service": "coop", "fiware-servicepath": "/farm1"}
            rows = []
            for pdp in ("none", "ours"):
                transport = CountingTransport(ASGITransport(idm.app))
                pep = PEP(world.settings(pdp=pdp), transport=transport, now=idm.clock, monotonic=Monotonic())
                for kind, token in tokens.items():
                    sent = {**headers, "authorization": f"Bearer {token}"}

                    def make(sent: dict[str, str] = sent) -> Any:
                        return incoming("GET", "/v2/entities", sent, query=b"type=Field")

                    verdict = await pep(make())  # warm: the one call of each kind
                    assert verdict is not None and verdict.reply is None, verdict
                    calls = transport.total()
                    base = await per_call(make, nothing)
                    cost = await per_call(make, pep)
                    assert transport.total() == calls, "a warm cache made a call"
                    rows.append((pdp, kind, "GET (repeated)", cost - base))
                if pdp == "ours":  # a write: described and decided on every request
                    body = b'{"crop": {"value": "rye"}}'
                    sent = {**headers, "authorization": f"Bearer {tokens['opaque']}", "content-type": "application/json"}

                    def write(sent: dict[str, str] = sent, body: bytes = body) -> Any:
                        return incoming("PATCH", "/v2/entities/urn:ngsi-ld:Field:1/attrs", sent, body, b"type=Field")

                    verdict = await pep(write())
                    assert verdict is not None and verdict.reply is None, verdict
                    rows.append((pdp, "opaque", "PATCH", await per_call(write, pep) - await per_call(write, nothing)))
            cold = PEP(world.settings(pdp="none"), transport=CountingTransport(ASGITransport(idm.app)), now=idm.clock,
                       monotonic=Monotonic())
            await cold(incoming("GET", "/v2/entities", {"authorization": f"Bearer {tokens['jwt']}"}))
            fresh = [await world.token("alice", jwt=True) for _ in range(200)]
            start = time.perf_counter()
            for token in fresh:
                await cold(incoming("GET", "/v2/entities", {"authorization": f"Bearer {token}"}))
            first_use = (time.perf_counter() - start) / len(fresh) * 1e6
    print(f"python {sys.version.split()[0]}; µs per request above a guard that does nothing (warm cache):")
    for pdp, kind, what, cost in rows:
        print(f"  pdp {pdp:4}  {kind:6}  {what:14}  {cost:6.1f}")
    print(f"  first use of a JWT (RS256 signature, claims, caching): {first_use:.0f}")


if __name__ == "__main__":
    asyncio.run(main())
