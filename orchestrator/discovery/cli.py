"""``waziup discover QUERY``: ask the orchestrator's ``GET /discovery/sensors`` and print
the hits, a table with each one's score and reasons (or the JSON, ``-json``).

    waziup discover tempreature -near 5.30,4.00,2000 -seen 60
    waziup discover "soil moisture" -tenant farm -url http://orchestrator:8080 -json

``-url`` defaults to ``$WAZIUP_ORCH_URL``, ``-service`` (the ``Fiware-Service`` asked as) to
``$WAZIUP_SERVICE`` and ``-token`` (behind the PEP) to ``$WAZIUP_TOKEN``, as ``waziup apps``.

It only calls the HTTP route: the answer is the service's, whoever asks (a script, the
dashboard, this command).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any, TextIO

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT = 30.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="waziup discover", description="Find the platform's sensors by what they "
                                     "measure (typos and synonyms welcome), near a place, seen lately.")
    parser.add_argument("query", nargs="+", help="what to look for: tempreature, soil moisture, PM2.5...")
    parser.add_argument("-near", "--near", metavar="LAT,LON,M",
                        help="within M metres of a point (a negative latitude: -near=-5.3,4,100)")
    parser.add_argument("-within", "--within", metavar="LAT,LON;LAT,LON;...", help="inside a polygon")
    parser.add_argument("-seen", "--seen", metavar="MIN", help="seen within the last MIN minutes")
    parser.add_argument("-tenant", "--tenant", action="append", metavar="T", help="only this tenant (repeatable)")
    parser.add_argument("-limit", "--limit", metavar="N", help="at most N hits (20)")
    parser.add_argument("-url", "--url", default=os.environ.get("WAZIUP_ORCH_URL", DEFAULT_URL),
                        help="the orchestrator's service (default $WAZIUP_ORCH_URL or %(default)s)")
    parser.add_argument("-service", "--service", default=os.environ.get("WAZIUP_SERVICE"),
                        help="the tenant (Fiware-Service) asked as (default $WAZIUP_SERVICE; none: every tenant)")
    parser.add_argument("-token", "--token", default=os.environ.get("WAZIUP_TOKEN"),
                        help="an access token, for an orchestrator behind the PEP (default $WAZIUP_TOKEN)")
    parser.add_argument("-json", "--json", action="store_true", help="print the answer's JSON")
    return parser


def request_url(args: argparse.Namespace) -> str:
    """The route's URL for the command's arguments."""
    params: list[tuple[str, str]] = [("q", " ".join(args.query))]
    for name in ("near", "within", "seen", "limit"):
        value = getattr(args, name)
        if value is not None:
            params.append((name, value))
    params += [("tenant", t) for t in args.tenant or ()]
    return args.url.rstrip("/") + "/discovery/sensors?" + urllib.parse.urlencode(params)


def table(hits: list[dict[str, Any]]) -> str:
    """The hits as lines a person reads: score, tenant, entity, attribute, unit, where,
    when, then the reasons indented below."""
    if not hits:
        return "no sensor found"
    lines = []
    for hit in hits:
        where = hit.get("location")
        place = f"{where['lat']:.5f},{where['lon']:.5f}" if where else "-"
        lines.append(
            f"{hit['score']:5.1f}  {hit['tenant'] or '(default)'}  {hit['entityId']} ({hit['entityType']})  "
            f"{hit['attr']}  [{hit.get('unit') or '-'}]  at {place}  seen {hit.get('seen') or '-'}  via {hit['source']}"
        )
        lines += [f"       - {reason}" for reason in hit.get("reasons", ())]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """0: hits printed (maybe none); 1: the service refused the query or could not be reached."""
    out = out or sys.stdout
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    headers = {"Accept": "application/json"}
    if args.service is not None:
        headers["Fiware-Service"] = args.service
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(request_url(args), headers=headers),
                                    timeout=TIMEOUT) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            description = json.loads(exc.read()).get("description", exc.reason)
        except (ValueError, AttributeError):
            description = exc.reason
        print(f"waziup discover: {exc.code}: {description}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"waziup discover: {args.url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    print(json.dumps(body, indent=2) if args.json else table(body), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
