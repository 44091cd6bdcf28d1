"""The ``waziup`` command: ``waziup broker [Orion options]`` runs the context broker,
``waziup iot-agent [options]`` the IoT agent, ``waziup history`` the history service,
``waziup rules`` the rules service, ``waziup dashboard`` the dashboard,
``waziup run`` the broker and the agent with an embedded MQTT broker
(``orchestrator.run_all``), ``waziup gw-post`` is the WAZIUP LoRa gateway's cloud script.
Each command's options are a table (``ngsi.settings``): ``waziup COMMAND --help`` prints it."""

from __future__ import annotations

import sys

USAGE = """usage: waziup COMMAND [options]; waziup COMMAND --help lists a command's options

  waziup broker [Orion options]                  the context broker
  waziup iot-agent [options]                     the IoT agent
  waziup run [options] [-- broker options...]    both, with an embedded MQTT broker
  waziup idm [options]                           the identity manager (Keyrock-compatible, :3005)
  waziup pep [-config FILE] [options]            a PEP proxy in front of an NGSI server (Wilma-compatible, :1027)
  waziup history [options]                       the history service (QuantumLeap-compatible, :8668)
  waziup history export [options]                its stored values as CSV
  waziup rules [options]                         the rules service (Perseo-compatible, :9090)
  waziup dashboard [options]                     the dashboard, a web page (:3000)
  waziup gw-post LDATA PDATA RDATA TDATA GWID    the WAZIUP LoRa gateway's cloud script"""


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "-help", "--help", "help"):
        print(USAGE)
        return
    command, rest = args[0], args[1:]
    if command == "broker":
        from broker.config import from_command_line as broker_config

        config = broker_config(rest)  # before importing the server: --help and errors stay quick
        from broker.server import serve

        serve(config)
    elif command == "iot-agent":
        from iot_agent.config import from_command_line as agent_config

        agent = agent_config(rest)
        from iot_agent.south.runtime import serve as serve_agent

        serve_agent(agent)
    elif command == "run":
        from orchestrator.run_all import main as run_all

        run_all(rest)
    elif command == "idm":
        from security.idm.config import from_command_line as idm_config

        idm = idm_config(rest)
        from security.idm.server import serve as serve_idm

        serve_idm(idm)
    elif command == "pep":
        from security.pep.config import from_command_line as pep_config

        pep = pep_config(rest)
        from security.pep.proxy import serve as serve_pep

        serve_pep(pep)
    elif command == "history" and rest[:1] == ["export"]:
        from analytics.history.export import main as export_history

        export_history(rest[1:])
    elif command == "history":
        from analytics.history.config import from_command_line as history_config

        history = history_config(rest)
        from analytics.history.server import serve as serve_history

        serve_history(history)
    elif command == "rules":
        from analytics.rules.service.config import from_command_line as rules_config

        rules = rules_config(rest)
        from analytics.rules.service.server import serve as serve_rules

        serve_rules(rules)
    elif command == "dashboard":
        from analytics.dashboard.config import from_command_line as dashboard_config

        dashboard = dashboard_config(rest)
        from analytics.dashboard.server import serve as serve_dashboard

        serve_dashboard(dashboard)
    elif command == "gw-post":
        from iot_agent.south.gateway import main as gw_post

        sys.exit(gw_post(rest))
    else:
        sys.exit(f"waziup: unknown command {command!r}\n{USAGE}")


if __name__ == "__main__":
    main()
