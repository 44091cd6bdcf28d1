"""``python -m analytics.dashboard -port 3000``: run the dashboard."""

from __future__ import annotations

from .config import from_command_line
from .server import serve


def main() -> None:
    serve(from_command_line())


if __name__ == "__main__":
    main()
