"""The ``waziup`` command: ``waziup broker [Orion options]`` runs the context broker,
``waziup iot-agent [options]`` the IoT agent."""

from __future__ import annotations

import sys

USAGE = "usage: waziup broker [-port N] [-dbURI URL] [-multiservice] [-corsOrigin O] ...\n       waziup iot-agent [--north-port N] [--cb-url URL] ... (waziup iot-agent --help)"


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
    if command == "iot-agent":
        from iot_agent.app import serve as serve_agent
        from iot_agent.config import ConfigError as AgentConfigError
        from iot_agent.config import parse as parse_agent
        from iot_agent.config import usage

        if rest and rest[0] in ("-h", "--help"):
            print(usage())
            return
        try:
            agent_config = parse_agent(rest)
        except AgentConfigError as exc:
            sys.exit(f"waziup iot-agent: {exc}")
        serve_agent(agent_config)
        return
    sys.exit(f"waziup: unknown command {command!r}\n{USAGE}")
