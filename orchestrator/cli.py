"""The ``waziup`` command: ``waziup broker [Orion options]`` runs the context broker,
``waziup iot-agent [options]`` the IoT agent, ``waziup history`` the history service,
``waziup rules`` the rules service, ``waziup dashboard`` the dashboard, ``waziup api`` the
WAZIUP cloud API, ``waziup orchestrator`` the apps, discovery and sources service, whose
clients are ``waziup apps``, ``waziup discover`` and ``waziup sources``,
``waziup users import`` a Keycloak realm's users,
``waziup run`` the broker and the agent with an embedded MQTT broker
(``orchestrator.run_all``), ``waziup gw-post`` is the WAZIUP LoRa gateway's cloud script.
Each command's options are a table (``ngsi.settings``): ``waziup COMMAND --help`` prints it."""

from __future__ import annotations

import importlib
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
  waziup api [options]                           the WAZIUP cloud API v2 (/api/v2 :8800, MQTT :3883)
  waziup orchestrator [options]                  apps, sensor discovery and external sources (:8080)
  waziup apps deploy|list|status|logs|restart|scale|undeploy ...   apps deployed from source
  waziup discover QUERY [options]                find sensors by what they measure
  waziup sources add|list|status|run|remove ...  external data sources
  waziup erase device ID | erase owner NAME [options]   erase a device's or an owner's data (-url, -service, -servicePath, -token)
  waziup consent ID withdraw|give [options]      a device's consent: withdrawn, its data is erased and its measures dropped
  waziup audit verify|list [-data DIR] ...        the audit trail: check its chain, list its records
  waziup users import FILE [options]             users of a Keycloak realm export into the identity manager
  waziup gw-post LDATA PDATA RDATA TDATA GWID    the WAZIUP LoRa gateway's cloud script"""


# The servers a command starts: the module whose ``from_command_line`` reads the options, and
# the module whose ``serve`` runs the server, imported only then, so that --help and errors
# stay quick.
SERVERS: dict[str, tuple[str, str]] = {
    "broker": ("broker.config", "broker.server"),
    "iot-agent": ("iot_agent.config", "iot_agent.south.runtime"),
    "idm": ("security.idm.config", "security.idm.server"),
    "pep": ("security.pep.config", "security.pep.proxy"),
    "history": ("analytics.history.config", "analytics.history.server"),
    "rules": ("analytics.rules.service.config", "analytics.rules.service.server"),
    "dashboard": ("analytics.dashboard.config", "analytics.dashboard.server"),
    "api": ("orchestrator.waziup_api.config", "orchestrator.waziup_api.server"),
    "orchestrator": ("orchestrator.appserver.config", "orchestrator.appserver.server"),
}

# The clients of the orchestrator's service: the module whose ``main(argv) -> int`` runs them.
CLIENTS: dict[str, str] = {
    "apps": "orchestrator.apps.cli",
    "discover": "orchestrator.discovery.cli",
    "sources": "orchestrator.sources.cli",
    "audit": "security.audit.cli",
    "erase": "orchestrator.erasure.cli",
}


def serve(command: str, argv: list[str]) -> None:
    """``waziup COMMAND argv`` of a server: its options read (the help, or an error, exits),
    then the server run."""
    config_module, server_module = SERVERS[command]
    config = importlib.import_module(config_module).from_command_line(argv)
    importlib.import_module(server_module).serve(config)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "-help", "--help", "help"):
        print(USAGE)
        return
    command, rest = args[0], args[1:]
    if command == "history" and rest[:1] == ["export"]:
        from analytics.history.export import main as export_history

        export_history(rest[1:])
    elif command == "users" and rest[:1] == ["import"]:
        from orchestrator.waziup_api.users_cli import main as import_users

        sys.exit(import_users(rest))
    elif command == "consent":
        from orchestrator.erasure.cli import consent_main

        sys.exit(consent_main(rest))
    elif command in CLIENTS:
        sys.exit(importlib.import_module(CLIENTS[command]).main(rest))
    elif command in SERVERS:
        serve(command, rest)
    elif command == "run":
        from orchestrator.run_all import main as run_all

        run_all(rest)
    elif command == "gw-post":
        from iot_agent.south.gateway import main as gw_post

        sys.exit(gw_post(rest))
    else:
        sys.exit(f"waziup: unknown command {command!r}\n{USAGE}")


if __name__ == "__main__":
    main()
