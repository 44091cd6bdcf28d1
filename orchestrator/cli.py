"""The ``waziup`` command: ``waziup broker [Orion options]`` runs the context broker,
``waziup iot-agent [options]`` the IoT agent, ``waziup run`` both with an embedded MQTT
broker (``orchestrator.run_all``), ``waziup gw-post`` is the WAZIUP LoRa gateway's cloud script."""

from __future__ import annotations

import sys

USAGE = "usage: waziup broker [-port N] [-dbURI URL] [-multiservice] [-corsOrigin O] ...\n       waziup iot-agent [--north-port N] [--cb-url URL] [-mqttURI URI] ... (waziup iot-agent --help)\n       waziup run [-port 1026] [-data DIR] [-mqttPort 1883] ... (waziup run --help)\n       waziup gw-post LDATA PDATA RDATA TDATA GWID"


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
    if command == "run":
        from orchestrator.run_all import main as run_all

        run_all(rest)
        return
    if command == "gw-post":
        from iot_agent.south.gateway import main as gw_post

        sys.exit(gw_post(rest))
    if command == "iot-agent":
        from iot_agent.south.runtime import serve as serve_agent
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


if __name__ == "__main__":
    main()
