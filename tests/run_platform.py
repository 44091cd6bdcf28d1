"""``waziup run`` started as users start it, for the suites that test the whole platform
(``tests/test_auth_platform.py``, ``tests/orchestrator/test_waziup_api.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.conftest import ROOT, stop_process


def start_run(options: Sequence[str], data: Path, env: Mapping[str, str], *,
              seconds: float = 90) -> tuple[subprocess.Popen[bytes], str]:
    """``waziup run <options>`` with a clean environment plus ``env``, its children's logs in
    ``<data>/run.log``; returns once it says it is ready (its banner), or raises with what it
    printed. Its standard output is drained from then on, so a full pipe never blocks it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("WAZIUP_", "IOTA_", "ORION_", "IDM_"))}
    argv = [sys.executable, "-m", "orchestrator.cli", "run", *options]
    with open(data / "run.log", "ab") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env={**clean, **env}, stdout=subprocess.PIPE, stderr=log)
    assert proc.stdout is not None
    deadline = time.monotonic() + seconds
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops" in line:
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, "".join(lines)
    stop_process(proc, timeout=20)
    raise RuntimeError(f"waziup run did not start: {''.join(lines)}{(data / 'run.log').read_text()[-3000:]}")
