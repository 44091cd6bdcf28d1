"""py-spy around a benchmark window, and what the collapsed stacks say.

``spy`` records a process for a few seconds (200 Hz, non-blocking, collapsed stacks, one
line per distinct stack with its sample count). ``summary`` folds such a file into the
share of samples spent in each function (inclusive: anywhere on the stack) and on its own
(self: at the top), which is what BENCHMARKS.md quotes as "where the time goes".
``python bench/pyspy.py FILE [N]`` prints the N heaviest of both.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

PY = sys.executable


def spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    exe = Path(PY).parent / "py-spy"
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(exe if exe.exists() else "py-spy"), "record", "--nonblocking", "-r", "200", "-d", str(max(1, int(seconds))),
         "-f", "raw", "-o", str(out), "-p", str(pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def frame_name(frame: str) -> str:
    """``handle (broker/http.py:120)`` -> ``broker/http.py:handle`` (lines dropped, so that a
    function counts once however many of its lines were sampled)."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0].rstrip(")")
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{name}"


def summary(lines: list[str]) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, inclusive samples per function, self samples per function)."""
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_name(f) for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
        total += n
        for name in set(frames):
            inclusive[name] += n
        if frames:
            own[frames[-1]] += n
    return total, inclusive, own


def main() -> None:
    path, top = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 25
    total, inclusive, own = summary(path.read_text().splitlines())
    print(f"{total} samples")
    for title, counts in (("inclusive", inclusive), ("self", own)):
        print(f"-- {title}")
        for name, n in counts.most_common(top):
            print(f"{100 * n / max(total, 1):5.1f}%  {name}")


if __name__ == "__main__":
    main()
