"""A real client of the QuantumLeap API, FiLiP's ``QuantumLeapClient`` (PyPI ``filip``),
against the history service: notifications posted with it, every query shape it reads,
delete. FiLiP pins older pydantic, paho-mqtt and requests than this project uses, so it
lives in a venv of its own, ``.venv-filip``, which ``make test`` installs (Makefile); the
client runs there (``filip_session.py``) and prints what it got."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.analytics.conftest import HistoryProcess

ROOT = Path(__file__).resolve().parents[2]
FILIP_PYTHON = ROOT / ".venv-filip" / "bin" / "python"


def test_filip_quantumleap_client_reads_what_it_wrote(tmp_path: Path) -> None:
    if not FILIP_PYTHON.exists():
        pytest.fail(f"{FILIP_PYTHON} is missing: `make test` installs FiLiP there", pytrace=False)
    service = HistoryProcess(["-dbURI", f"sqlite:///{tmp_path}/history.db"]).start()
    try:
        run = subprocess.run(
            [str(FILIP_PYTHON), str(Path(__file__).with_name("filip_session.py")), service.url, "acme"],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        service.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    entity = out["entity"]
    assert (entity["entityId"], entity["entityType"], len(entity["index"])) == ("Room1", "Room", 3)
    by_name = {a["attrName"]: a["values"] for a in entity["attributes"]}
    assert by_name == {"temperature": [20.0, 21.0, 22.0], "humidity": [60.0, 61.0, 62.0]}
    assert out["last"]["attributes"] == [{"attrName": "temperature", "values": [22.0]}]
    assert [(s["entityId"], len(s["index"])) for s in out["by_type"]] == [("Room1", 3)]
    assert [(e["entityId"], e["entityType"]) for e in out["entities"]] == [("Room1", "Room")]
    assert out["after_delete"] == 404  # QuantumLeap 1.0's "no records", which FiLiP pages on
