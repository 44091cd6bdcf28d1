"""``make bench-quick``: every broker workload for a few seconds, compared with the last
recorded run of the same backend (bench/compare.py says which rows moved by more than
15%). The run is recorded too (bench/results/<date>-quick.json), so the next quick run
compares with this one; BENCHMARKS.md is left alone. Exit status 1 when a row dropped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import compare

RESULTS = HERE / "results"


def broker_runs() -> list[Path]:
    """Results files of bench/run.py (not the history or IoT agent benches), oldest first."""
    return sorted(p for p in RESULTS.glob("*.json") if p.name[:1].isdigit() and not p.stem.endswith("-iot"))


def last_with(backends: list[str], before: list[Path]) -> tuple[Path, dict[str, Any]] | None:
    for path in reversed(before):
        report = json.loads(path.read_text())
        if all(b in report.get("backends", {}) for b in backends):
            return path, report
    return None


def main() -> int:
    backends = (os.environ.get("BENCH_BACKENDS") or "sqlite").replace(",", " ").split()
    seconds = os.environ.get("BENCH_SECONDS") or "2"
    earlier = broker_runs()
    cmd = [sys.executable, str(HERE / "run.py"), "--seconds", seconds, "--backend", ",".join(backends), "--tag", "quick",
           "--only", os.environ.get("BENCH_ONLY") or "baseline,W1,W2 GET n,W2 GET k,W3,W4,W5"]
    print("bench-quick:", " ".join(cmd[1:]), flush=True)
    if subprocess.call(cmd) != 0:
        return 2
    new = [p for p in broker_runs() if p not in earlier]
    if not new:
        print("bench-quick: the run wrote no results", file=sys.stderr)
        return 2
    now = json.loads(new[-1].read_text())
    found = last_with(backends, earlier)
    if found is None:
        print("bench-quick: no earlier run of these backends to compare with; this one is the reference now")
        return 0
    path, before = found
    print(f"\ncompared with {path.relative_to(HERE.parent)} ({before.get('date')}, {before.get('seconds')} s per workload):")
    every, moved = compare.compare(before, now)
    print(compare.render(every, moved))
    return 1 if any(m.change < 0 for m in moved) else 0


if __name__ == "__main__":
    sys.exit(main())
