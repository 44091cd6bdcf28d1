"""Denied requests to the audit trail (security/pep/denials.py): queued off the request
path, sent one by one, bounded, and the overflow counted in one summary event."""

from __future__ import annotations

import asyncio
from typing import Any

from security.pep.denials import DenialReporter
from security.pep.idm import IdMError


class Trail:
    def __init__(self, fail: int = 0) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail = fail
        self.open = asyncio.Event()

    async def audit_event(self, event: dict[str, Any]) -> None:
        await self.open.wait()
        if self.fail:
            self.fail -= 1
            raise IdMError("audit_event: status 500")
        self.events.append(event)


def test_events_overflow_and_failures() -> None:
    async def run() -> tuple[Trail, DenialReporter]:
        trail = Trail(fail=1)
        reporter = DenialReporter(trail, "broker", capacity=3)  # type: ignore[arg-type]
        for n in range(6):  # one is taken by the sender at once, three wait, two overflow
            reporter.report(user=f"u{n}", method="GET", path="/v2/entities", tenant="coop", source="10.0.0.1",
                            reason="no policy grants read")
            await asyncio.sleep(0)
        trail.open.set()
        for _ in range(100):
            await asyncio.sleep(0.01)
        return trail, reporter

    trail, reporter = asyncio.run(run())
    users = [e["details"]["user"] for e in trail.events if e["action"] == "request.denied"]
    assert users == ["u1", "u2", "u3"]  # u0's post failed (logged), u4 and u5 overflowed
    assert trail.events[-1] == {"action": "request.denied.dropped", "target": "broker", "decision": "deny",
                                "reason": "2 denied requests not recorded: the queue was full"}
    assert trail.events[0]["target"] == "broker GET /v2/entities" and trail.events[0]["tenant"] == "coop"
