"""Which rows of a benchmark run moved against an earlier run (``make bench-quick``).

Pure: two results documents of bench/run.py in, rows out. A row is compared on its rate
and on its rate as a share of the bare Starlette baseline of the same run; the share is
what decides, since it cancels how busy or fast the machine was in each run (a slower
machine slows the baseline too). A row moved when its share changed by more than
``threshold`` (15%) either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

THRESHOLD = 0.15


@dataclass(frozen=True)
class Moved:
    backend: str
    row: str
    rate_before: float
    rate_now: float
    share_before: float
    share_now: float

    @property
    def change(self) -> float:
        """Relative change of the share of the baseline (+0.2: 20% better)."""
        return self.share_now / self.share_before - 1.0


def rows(report: dict[str, Any], backend: str) -> dict[str, tuple[float, float]]:
    """(rate, share of the baseline) of each measured row of one backend."""
    results = report.get("backends", {}).get(backend, {}).get("results", {})
    out = {}
    for name, row in results.items():
        share = row.get("vs_baseline", {}).get("rate") if isinstance(row, dict) else None
        if isinstance(share, (int, float)) and share > 0 and "rate" in row:
            out[name] = (float(row["rate"]), float(share))
    return out


def compare(before: dict[str, Any], now: dict[str, Any], threshold: float = THRESHOLD) -> tuple[list[Moved], list[Moved]]:
    """(every row both runs measured, those that moved by more than ``threshold``)."""
    every: list[Moved] = []
    for backend in now.get("backends", {}):
        old = rows(before, backend)
        for name, (rate, share) in rows(now, backend).items():
            if name in old:
                every.append(Moved(backend, name, old[name][0], rate, old[name][1], share))
    return every, [m for m in every if abs(m.change) > threshold]


def render(every: list[Moved], moved: list[Moved], threshold: float = THRESHOLD) -> str:
    lines = [f"{'backend':<11} {'row':<26} {'rate before':>12} {'rate now':>10} {'share before':>13} {'share now':>10} {'change':>8}"]
    for m in every:
        flag = "  <- moved" if m in moved else ""
        lines.append(
            f"{m.backend:<11} {m.row:<26} {m.rate_before:12.0f} {m.rate_now:10.0f} {m.share_before:13.3f} "
            f"{m.share_now:10.3f} {m.change:+8.1%}{flag}"
        )
    if moved:
        lines.append(f"{len(moved)} row(s) moved by more than {threshold:.0%} of their share of the baseline: "
                     + ", ".join(f"{m.backend}/{m.row} {m.change:+.0%}" for m in moved))
    else:
        lines.append(f"no row moved by more than {threshold:.0%}")
    return "\n".join(lines)
