"""``python -m orchestrator.waziup_api -port 8800``: run the WAZIUP API."""

from __future__ import annotations

from .config import from_command_line
from .server import serve


def main() -> None:
    serve(from_command_line())


if __name__ == "__main__":
    main()
