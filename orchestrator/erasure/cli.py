"""``waziup erase device ID``, ``waziup erase owner NAME`` and ``waziup consent ID
withdraw|give``: the orchestrator's ``/erasure`` routes (``-url``, default
``$WAZIUP_ORCH_URL`` or ``http://127.0.0.1:8080``), the report printed as JSON.

Exit status 0 when every step went through, 1 when one failed (the report's ``errors``)
or the orchestrator could not be reached, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO
from urllib.parse import quote

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-url", "--url", default=os.environ.get("WAZIUP_ORCH_URL", DEFAULT_URL),
                        help="the orchestrator's service (default $WAZIUP_ORCH_URL or %(default)s)")
    parser.add_argument("-service", "--service", default=os.environ.get("WAZIUP_SERVICE"),
                        help="the tenant (Fiware-Service; default $WAZIUP_SERVICE; none: the default tenant)")
    parser.add_argument("-servicePath", "--servicePath", default="/",
                        help="the service path (Fiware-ServicePath; default %(default)s)")
    parser.add_argument("-token", "--token", default=os.environ.get("WAZIUP_TOKEN"),
                        help="an access token, for an orchestrator behind the PEP (default $WAZIUP_TOKEN)")


def _erase_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="waziup erase", description="Erase a device's or an owner's data "
                                     "(docs/lifecycle.md).")
    _common(parser)
    what = parser.add_subparsers(dest="what", required=True)
    what.add_parser("device", help="a device: provisioning, pending commands, entity, history").add_argument("id")
    what.add_parser("owner", help="every device of a user or an organization").add_argument("name")
    return parser


def _consent_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="waziup consent", description="Withdraw or give a device's consent "
                                     "(docs/lifecycle.md).")
    _common(parser)
    parser.add_argument("id", help="the device id")
    parser.add_argument("decision", choices=("withdraw", "give"))
    return parser


def _send(args: argparse.Namespace, method: str, path: str, body: object, out: TextIO, err: TextIO) -> int:
    headers = {"Fiware-ServicePath": args.servicePath}
    if args.service:
        headers["Fiware-Service"] = args.service
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    try:
        with httpx.Client(base_url=args.url.rstrip("/"), timeout=300, trust_env=False, headers=headers) as client:
            answer = client.request(method, path, json=body)
    except httpx.TransportError as exc:
        print(f"error: the orchestrator at {args.url} is not reachable: {exc}", file=err)
        return 1
    try:
        print(json.dumps(answer.json(), indent=2), file=out)
    except ValueError:
        print(f"error: HTTP {answer.status_code}: {answer.text[:500]}", file=err)
        return 1
    return 0 if answer.status_code == 200 else 1


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    try:
        return parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return int(exc.code or 0)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``waziup erase device ID`` / ``waziup erase owner NAME``."""
    args = _parse(_erase_parser(), argv)
    if isinstance(args, int):
        return args
    name = args.id if args.what == "device" else args.name
    path = f"/erasure/{'devices' if args.what == 'device' else 'owners'}/{quote(name, safe='')}"
    return _send(args, "POST", path, None, out or sys.stdout, err or sys.stderr)


def consent_main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``waziup consent ID withdraw|give``."""
    args = _parse(_consent_parser(), argv)
    if isinstance(args, int):
        return args
    return _send(args, "PUT", f"/erasure/devices/{quote(args.id, safe='')}/consent",
                 {"consent": args.decision == "give"}, out or sys.stdout, err or sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
