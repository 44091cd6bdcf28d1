"""A source's status: what the API shows and what the ``DataSource`` entity holds.

Kept in memory by the runner and rewritten after every run; the entity lets dashboards
and subscriptions watch sources as they watch any other entity, in the source's tenant.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from ngsi.dates import format_datetime

State = Literal["starting", "ok", "failing", "stopped"]
MAX_ERROR = 1000  # characters of an error kept: a server's whole error page is no status


@dataclass
class Status:
    state: State = "starting"
    last_run: float | None = None  # epoch seconds
    last_success: float | None = None
    last_error: str = ""
    last_error_at: float | None = None
    records_written: int = 0  # in total, since the source was (re)started
    records_skipped: int = 0
    values_dropped: int = 0
    runs: int = 0
    consecutive_failures: int = 0
    next_run: float | None = None  # epoch seconds; for a failing source, after its back-off
    retry_in: float = 0.0  # the back-off delay chosen after the last failure (0: none)
    skip_reasons: tuple[str, ...] = ()

    def succeeded(self, written: int, skipped: int, dropped: int, reasons: tuple[str, ...], now: float) -> None:
        self.state = "ok"
        self.runs += 1
        self.last_run = self.last_success = now
        self.records_written += written
        self.records_skipped += skipped
        self.values_dropped += dropped
        if reasons:
            self.skip_reasons = reasons
        self.consecutive_failures = 0
        self.retry_in = 0.0

    def failed(self, error: str, now: float, written: int = 0) -> None:
        self.state = "failing"
        self.runs += 1
        self.last_run = self.last_error_at = now
        self.last_error = error[:MAX_ERROR]
        self.records_written += written
        self.consecutive_failures += 1

    def to_json(self) -> dict[str, Any]:
        """The API's view (camelCase, ISO dates)."""
        return {
            "state": self.state,
            "lastRun": _date(self.last_run),
            "lastSuccess": _date(self.last_success),
            "lastError": self.last_error or None,
            "lastErrorAt": _date(self.last_error_at),
            "recordsWritten": self.records_written,
            "recordsSkipped": self.records_skipped,
            "valuesDropped": self.values_dropped,
            "runs": self.runs,
            "consecutiveFailures": self.consecutive_failures,
            "nextRun": _date(self.next_run),
            "retryIn": round(self.retry_in, 3),
            "skipReasons": list(self.skip_reasons),
        }

    def to_entity(self, entity_id: str, kind: str) -> dict[str, Any]:
        """The ``DataSource`` entity (normalized NGSI-v2); dates not yet known are left out."""
        entity: dict[str, Any] = {
            "id": entity_id,
            "type": "DataSource",
            "kind": {"type": "Text", "value": kind},
            "state": {"type": "Text", "value": self.state},
            "recordsWritten": {"type": "Number", "value": self.records_written},
            "recordsSkipped": {"type": "Number", "value": self.records_skipped},
            "consecutiveFailures": {"type": "Number", "value": self.consecutive_failures},
            "lastError": {"type": "Text", "value": _text(self.last_error)},
        }
        for name, value in (("lastRun", self.last_run), ("lastSuccess", self.last_success),
                            ("nextRun", self.next_run)):
            if value is not None:
                entity[name] = {"type": "DateTime", "value": format_datetime(value)}
        return entity


def now() -> float:
    return time.time()


def _date(value: float | None) -> str | None:
    return None if value is None else format_datetime(value)


def _text(value: str) -> str:
    """An error as broker text: the characters Orion refuses in values are replaced."""
    return value.translate(str.maketrans({c: " " for c in "<>\"'=;()"}))[:MAX_ERROR]
