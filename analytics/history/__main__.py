"""``python -m analytics.history -port 8668 -data data``: run the history service."""

from __future__ import annotations

from .config import from_command_line
from .server import serve


def main() -> None:
    serve(from_command_line())


if __name__ == "__main__":
    main()
