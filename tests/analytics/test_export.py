"""``waziup history export``: what was stored comes out as CSV, one line per value, filtered
by tenant, type, id, attributes and dates, from the store of a stopped service."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import httpx

from tests.analytics.conftest import HistoryProcess

ROOT = Path(__file__).resolve().parents[2]


def _export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", "history", "export", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_export_writes_every_selected_value_in_time_order(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/history.db"
    service = HistoryProcess(["-dbURI", db]).start()
    try:
        for tenant in ("acme", "other"):
            for minute, value in ((1, 20.5), (2, 21), (3, "n/a")):
                entity = {"id": "Room1", "type": "Room", "TimeInstant": {"type": "DateTime", "value": f"2026-01-01T00:0{minute}:00Z"},
                          "temperature": {"type": "Number" if value != "n/a" else "Text", "value": value},
                          "humidity": {"type": "Number", "value": 50}}
                answer = httpx.post(f"{service.url}/v2/notify", json={"subscriptionId": "s", "data": [entity]},
                                    headers={"Fiware-Service": tenant}, timeout=10)
                assert answer.status_code == 200, answer.text
    finally:
        service.stop()
    done = _export("-dbURI", db, "-service", "ACME", "-attrs", "temperature", "-fromDate", "2026-01-01T00:02:00Z")
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == ["tenant", "servicePath", "entityType", "entityId", "attrName", "attrType", "timeIndex", "value"]
    assert [(r[0], r[4], r[5], r[6], r[7]) for r in rows[1:]] == [
        ("acme", "temperature", "Number", "2026-01-01T00:02:00.000+00:00", "21.0"),
        ("acme", "temperature", "Text", "2026-01-01T00:03:00.000+00:00", "n/a"),  # a type change: a series of its own
    ]
    out = tmp_path / "all.csv"
    assert _export("-dbURI", db, "-o", str(out)).returncode == 0
    assert len(out.read_text().splitlines()) == 1 + 2 * 3 * 3  # 2 tenants x 3 notifications x 3 attributes
    missing = _export("-data", str(tmp_path / "nowhere"))
    assert missing.returncode != 0 and "no history store" in missing.stderr
