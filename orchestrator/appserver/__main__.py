"""``python -m orchestrator.appserver -port 8080``: run the orchestrator's service."""

from __future__ import annotations

from .config import from_command_line
from .server import serve


def main() -> None:
    serve(from_command_line())


if __name__ == "__main__":
    main()
