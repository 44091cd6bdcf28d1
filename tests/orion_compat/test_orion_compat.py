"""Orion's own functional test cases, run against our broker by ../shared/orion-ft.

``passing.txt`` lists the cases we pass; this test fails when one of them regresses.
To measure every case and refresh the list: ``make orion-ft-measure``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KIT = Path(os.environ.get("ORION_FT", ROOT.parent / "shared" / "orion-ft"))
PASSING = Path(__file__).with_name("passing.txt")
JOBS = os.environ.get("ORION_FT_JOBS", "2")


def _cases() -> list[str]:
    return [line.strip() for line in PASSING.read_text().splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.slow
@pytest.mark.xdist_group("orion-ft")
def test_passing_cases_still_pass(tmp_path: Path) -> None:
    assert (KIT / "run").exists(), f"Orion's conformance kit is missing at {KIT}"
    cases = _cases()
    report = tmp_path / "report.json"
    completed = subprocess.run(
        [
            str(KIT / "run"),
            "--broker-cmd", "scripts/orion-ft-broker",
            "--only-from", str(PASSING),
            "--jobs", JOBS,
            "--keep-going",
            "--tries", "3",
            "--timeout", "300",
            "--report", str(report),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3000,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    results = json.loads(report.read_text())
    failed = {case: r.get("diff", "")[-1500:] for case, r in results.items() if r["status"] != "PASS"}
    missing = [case for case in cases if case not in results]
    assert not missing, f"cases listed in passing.txt but not run: {missing[:20]}"
    assert not failed, "regressed Orion cases:\n" + "\n".join(f"--- {c}\n{d}" for c, d in failed.items())


def test_passing_list_names_given_cases() -> None:
    given = set((KIT / "given.txt").read_text().split())
    listed = _cases()
    assert len(listed) == len(set(listed)), "passing.txt lists a case twice"
    unknown = [case for case in listed if case not in given]
    assert not unknown, f"passing.txt names cases the kit does not have: {unknown[:10]}"
