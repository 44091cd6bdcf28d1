"""The ``waziup`` command: ``waziup broker [Orion options]`` runs the context broker."""

from __future__ import annotations

import sys

USAGE = "usage: waziup broker [-port N] [-dbURI URL] [-multiservice] [-corsOrigin O] ..."


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, rest = args[0], args[1:]
    if command == "broker":
        from broker.config import ConfigError, parse
        from broker.server import serve

        try:
            config = parse(rest)
        except ConfigError as exc:
            sys.exit(f"waziup broker: {exc}")
        serve(config)
        return
    sys.exit(f"waziup: unknown command {command!r}\n{USAGE}")
