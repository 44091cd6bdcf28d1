"""``python -m broker -port 1026 -dbURI sqlite:///data/broker.db``: run the context broker."""

from __future__ import annotations

from .config import from_command_line
from .server import serve


def main() -> None:
    serve(from_command_line())


if __name__ == "__main__":
    main()
