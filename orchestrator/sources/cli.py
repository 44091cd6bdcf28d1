"""``waziup sources``: the client of the orchestrator's ``/sources`` routes.

    waziup sources add weather.yaml [-replace]   declare a source (PUT with -replace)
    waziup sources list                         every source, its state and counts
    waziup sources status NAME                  its definition and status (JSON)
    waziup sources run NAME                     run it now, print the status after the run
    waziup sources remove NAME                  stop and forget it (its entities stay)

``-url`` is the orchestrator's service (http://127.0.0.1:8080). The command only calls
the HTTP routes: what it shows is the service's answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .definition import DefinitionError, load_document

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT = 150.0  # a run may take its time (the service waits up to 120 s)


class _Failed(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="waziup sources", description="External data sources: HTTP JSON APIs, "
                                     "CSV tables and MQTT topics mapped to entities.")
    parser.add_argument("-url", default=DEFAULT_URL, help=f"the orchestrator's service ({DEFAULT_URL})")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="declare a source from a JSON or YAML file")
    add.add_argument("file", type=Path)
    add.add_argument("-replace", action="store_true", help="replace a source of that name (PUT)")
    commands.add_parser("list", help="every source and its status")
    for name, text in (("status", "a source's definition and status"), ("run", "run a source now"),
                       ("remove", "stop and forget a source (its entities stay)")):
        command = commands.add_parser(name, help=text)
        command.add_argument("name")
    for command in commands.choices.values():
        command.add_argument("-url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _call(method: str, url: str, body: bytes | None = None, content_type: str = "") -> Any:
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            data = response.read()
    except urllib.error.HTTPError as exc:
        try:
            description = json.loads(exc.read()).get("description", exc.reason)
        except (ValueError, AttributeError):
            description = exc.reason
        raise _Failed(f"{exc.code}: {description}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise _Failed(f"{url}: {getattr(exc, 'reason', exc)}") from None
    return json.loads(data) if data else None


def table(sources: list[dict[str, Any]]) -> str:
    """One line per source: name, kind, state, counts, last error."""
    if not sources:
        return "no source"
    lines = []
    for source in sources:
        status = source["status"]
        line = (f"{source['name']}  {source['kind']}  {status['state']}  written {status['recordsWritten']}"
                f"  skipped {status['recordsSkipped']}  last run {status['lastRun'] or '-'}")
        if status["state"] == "failing":
            line += f"\n    error: {status['lastError']} (retry in {status['retryIn']} s)"
        lines.append(line)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """0: done; 1: the service refused or could not be reached, or the file is no definition."""
    out = out or sys.stdout
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    base = args.url.rstrip("/") + "/sources"
    try:
        if args.command == "add":
            text = args.file.read_bytes()
            name = load_document(text).get("name")  # the file is read here, so its errors name it
            if args.replace:
                if not isinstance(name, str) or not name:
                    raise _Failed(f"{args.file}: name: a source needs a name")
                shown = _call("PUT", f"{base}/{urllib.parse.quote(name, safe='')}", text, "application/yaml")
            else:
                shown = _call("POST", base, text, "application/yaml")
            print(f"source {shown['name']}: {shown['status']['state']}", file=out)
        elif args.command == "list":
            print(table(_call("GET", base)), file=out)
        elif args.command == "remove":
            _call("DELETE", f"{base}/{urllib.parse.quote(args.name, safe='')}")
            print(f"source {args.name} removed", file=out)
        else:
            suffix = "/run" if args.command == "run" else ""
            shown = _call("POST" if suffix else "GET", f"{base}/{urllib.parse.quote(args.name, safe='')}{suffix}",
                          b"" if suffix else None)
            print(json.dumps(shown, indent=2), file=out)
            if args.command == "run" and shown["status"]["state"] == "failing":
                return 1
    except _Failed as exc:
        print(f"waziup sources: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"waziup sources: {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except DefinitionError as exc:
        print(f"waziup sources: {args.file}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
