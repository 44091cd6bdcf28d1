"""``python -m analytics.rules.service -port 9090 -brokerURL http://localhost:1026``: run the rules service."""

from __future__ import annotations

from .config import from_command_line
from .server import serve


def main() -> None:
    serve(from_command_line())


if __name__ == "__main__":
    main()
