"""``waziup apps``: deploy, list, status, logs, restart, scale and undeploy apps through the
orchestrator's service (``/apps``, ``-url``, default ``$WAZIUP_ORCH_URL`` or
``http://127.0.0.1:8080``).

A folder or a tarball on this machine is uploaded as a tarball (so the orchestrator may
run elsewhere); a URL (git or tarball) is sent as is, for the orchestrator to fetch. The
deploy's progress is printed as it comes; the exit status is 0 on success, 1 on a failure
(its explanation printed), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import httpx

from .source import is_tarball_name, is_url

DEFAULT_URL = "http://127.0.0.1:8080"
_SKIPPED = {".git", ".venv", "node_modules", "__pycache__"}


def pack(folder: Path) -> bytes:
    """A gzip tarball of ``folder`` (build leftovers left out), members relative to it."""
    buffer = io.BytesIO()

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        return None if _SKIPPED.intersection(parts) or info.issym() or info.islnk() else info

    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for child in sorted(folder.iterdir()):
            archive.add(child, arcname=child.name, filter=keep)
    return buffer.getvalue()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="waziup apps", description="Apps deployed from source (docs/apps.md).")
    parser.add_argument("-url", "--url", default=os.environ.get("WAZIUP_ORCH_URL", DEFAULT_URL),
                        help="the orchestrator's service (default $WAZIUP_ORCH_URL or %(default)s)")
    parser.add_argument("-service", "--service", default=os.environ.get("WAZIUP_SERVICE"),
                        help="the tenant (Fiware-Service) acted in: its apps only (default $WAZIUP_SERVICE; none: all)")
    parser.add_argument("-token", "--token", default=os.environ.get("WAZIUP_TOKEN"),
                        help="an access token, for an orchestrator behind the PEP (default $WAZIUP_TOKEN)")
    commands = parser.add_subparsers(dest="command", required=True)
    deploy = commands.add_parser("deploy", help="build, start and wire an app: a folder, a tarball, a git URL")
    deploy.add_argument("source")
    commands.add_parser("list", help="the deployed apps")
    for name, text in (("status", "an app's state, ports, subscriptions"), ("restart", "restart an app's process"),
                       ("undeploy", "stop an app and remove its subscriptions and credentials")):
        commands.add_parser(name, help=text).add_argument("name")
    logs = commands.add_parser("logs", help="an app's output")
    logs.add_argument("name")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("-n", "--tail", type=int, default=100, help="lines from the end (default %(default)s)")
    scale = commands.add_parser("scale", help="replicas (Kubernetes only)")
    scale.add_argument("name")
    scale.add_argument("replicas", type=int)
    return parser


def _label(path: Path) -> str:
    """What the orchestrator shows as an upload's source: where it came from (ASCII, for a header)."""
    return f"{socket.gethostname()}:{path.resolve()}".encode("ascii", "replace").decode()


def _failed(answer: httpx.Response, err: TextIO) -> int:
    try:
        doc = answer.json()
        print(f"error: {doc.get('error')}: {doc.get('description')}", file=err)
    except ValueError:
        print(f"error: HTTP {answer.status_code}: {answer.text[:500]}", file=err)
    return 1


def _deploy(client: httpx.Client, source: str, out: TextIO, err: TextIO) -> int:
    path = Path(source).expanduser()
    if not is_url(source) and path.is_dir():
        request: dict[str, Any] = {"content": pack(path), "headers": {"Content-Type": "application/gzip",
                                                                      "X-Waziup-Source": _label(path)}}
    elif not is_url(source) and path.is_file() and is_tarball_name(path.name):
        request = {"content": path.read_bytes(), "headers": {"Content-Type": "application/gzip",
                                                             "X-Waziup-Source": _label(path)}}
    elif is_url(source):
        request = {"json": {"source": source}}
    else:
        print(f"error: {source}: no such folder or tarball, and not a URL", file=err)
        return 1
    request["headers"] = {**request.get("headers", {}), "Accept": "application/x-ndjson"}
    with client.stream("POST", "/apps", timeout=httpx.Timeout(30, read=None), **request) as answer:
        if answer.status_code != 200:
            answer.read()
            return _failed(answer, err)
        for line in answer.iter_lines():
            if not line.strip():
                continue
            doc = json.loads(line)
            if "progress" in doc:
                print(doc["progress"], file=out, flush=True)
            elif "error" in doc:
                print(f"error: {doc['error']}: {doc['description']}", file=err)
                return 1
            elif "status" in doc:
                status = doc["status"]
                print(f"{status['name']} is {status['state']} (endpoint {status.get('endpoint') or 'none'})",
                      file=out)
                return 0
    print("error: the orchestrator ended the deploy without a result", file=err)
    return 1


def _show_list(apps: list[dict[str, Any]], out: TextIO) -> None:
    if not apps:
        print("no apps deployed", file=out)
        return
    rows = [("NAME", "RUNTIME", "STATE", "HEALTHY", "RESTARTS", "ENDPOINT")]
    rows += [(a["name"], a["runtime"], a["state"], str(a.get("healthy")), str(a.get("restarts", 0)),
              a.get("endpoint") or "-") for a in apps]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip(), file=out)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        headers = {}
        if args.service is not None:
            headers["Fiware-Service"] = args.service
        if args.token:
            headers["Authorization"] = f"Bearer {args.token}"
        with httpx.Client(base_url=args.url.rstrip("/"), timeout=60, trust_env=False, headers=headers) as client:
            if args.command == "deploy":
                return _deploy(client, args.source, out, err)
            if args.command == "list":
                answer = client.get("/apps")
                if answer.status_code != 200:
                    return _failed(answer, err)
                _show_list(answer.json(), out)
                return 0
            if args.command == "logs":
                params = {"tail": str(args.tail), "follow": "true" if args.follow else "false"}
                with client.stream("GET", f"/apps/{args.name}/logs", params=params,
                                   timeout=httpx.Timeout(30, read=None)) as answer:
                    if answer.status_code != 200:
                        answer.read()
                        return _failed(answer, err)
                    for line in answer.iter_lines():
                        print(line, file=out, flush=True)
                return 0
            if args.command == "undeploy":
                answer = client.delete(f"/apps/{args.name}")
                if answer.status_code != 204:
                    return _failed(answer, err)
                print(f"{args.name} undeployed", file=out)
                return 0
            if args.command == "status":
                answer = client.get(f"/apps/{args.name}")
            elif args.command == "restart":
                answer = client.post(f"/apps/{args.name}/restart")
            else:
                answer = client.post(f"/apps/{args.name}/scale", json={"replicas": args.replicas})
            if answer.status_code != 200:
                return _failed(answer, err)
            print(json.dumps(answer.json(), indent=2), file=out)
            return 0
    except httpx.TransportError as exc:
        print(f"error: the orchestrator at {args.url} is not reachable: {exc}", file=err)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
