"""``waziup audit verify|list``: the audit log of a data directory, read on this machine.

``verify`` exits 0 with "chain intact: N records, last hash H", 1 naming the first bad
record, 2 on a usage error or a missing log. It uses ``<data>/audit.key`` when present
(else checks an unkeyed chain) and ``<data>/audit.head`` as the anchor unless ``-anchor
SEQ:HASH`` gives one kept elsewhere (the stronger check: see docs/audit.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from .record import Anchor, Record, parse_time, verify
from .postgres import PgAuditStore
from .store import KEY_FILE, AuditError, AuditStore, load_key


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="waziup audit", description="The audit trail (docs/audit.md).")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="check the hash chain; exit 1 naming the first bad record")
    listing = commands.add_parser("list", help="the records, oldest first")
    for sub in (check, listing):
        sub.add_argument("-data", "--data", default=os.environ.get("WAZIUP_DATA_DIR") or "data",
                         help="the data directory (default $WAZIUP_DATA_DIR or %(default)s)")
        sub.add_argument("-dbURI", "--dbURI", default="",
                         help="a postgresql:// URL when the log is on PostgreSQL (default: <data>/audit.db)")
    check.add_argument("-key", "--key", help=f"the HMAC key file (default <data>/{KEY_FILE} when present)")
    check.add_argument("-anchor", "--anchor", type=Anchor.parse, help="SEQ:HASH the log must contain")
    for name in ("actor", "action", "tenant"):
        listing.add_argument(f"-{name}", f"--{name}")
    listing.add_argument("-since", "--since", type=parse_time, help="ISO 8601 time (UTC if none given), inclusive")
    listing.add_argument("-until", "--until", type=parse_time, help="ISO 8601 time, exclusive")
    listing.add_argument("-limit", "--limit", type=int, default=100)
    listing.add_argument("-offset", "--offset", type=int, default=0)
    listing.add_argument("-json", "--json", action="store_true", help="one JSON object per line")
    return parser


def _line(record: Record) -> str:
    parts = [f"{record.seq:>6} {record.time} {record.action:<16} {record.actor_kind}:{record.actor}"]
    for label, value in (("target", record.target), ("tenant", record.tenant), ("from", record.source),
                         ("decision", record.decision), ("reason", record.reason)):
        if value:
            parts.append(f"{label}={value}")
    if record.details:
        parts.append(json.dumps(dict(record.details), sort_keys=True))
    return " ".join(parts)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    options = _parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        if options.dbURI:
            return asyncio.run(_on_postgres(options, out, err))
        store = AuditStore(options.data, keyed=False, create=False)
    except AuditError as exc:
        print(f"waziup audit: {exc}", file=err)
        return 2
    try:
        return _run(options, store.records, store.query, store.anchor(), out, err)
    except AuditError as exc:
        print(f"waziup audit: {exc}", file=err)
        return 2
    finally:
        store.close()


async def _on_postgres(options: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """The same commands on PostgreSQL: the rows fetched first, then the sync code runs."""
    store = PgAuditStore(options.dbURI, options.data, keyed=False, create=False)
    await store.open()
    try:
        if options.command == "verify":
            records = await store.records()
            return _run(options, lambda: records, lambda **_: [], store.anchor(), out, err)
        found = await store.query(**_filters(options))
        return _run(options, list, lambda **_: found, None, out, err)
    finally:
        await store.close()


def _filters(options: argparse.Namespace) -> dict[str, Any]:
    return {"actor": options.actor, "action": options.action, "tenant": options.tenant, "since": options.since,
            "until": options.until, "limit": options.limit, "offset": options.offset}


def _run(options: argparse.Namespace, records: Callable[[], list[Record]], query: Callable[..., list[Record]],
         anchor: Anchor | None, out: TextIO, err: TextIO) -> int:
    if options.command == "verify":
        key_file = options.key or os.path.join(options.data, KEY_FILE)
        key = load_key(Path(key_file), create=False)
        if options.key and key is None:
            print(f"waziup audit: no key at {options.key}", file=err)
            return 2
        report = verify(records(), key, options.anchor or anchor)
        kind = "keyed" if report.keyed else "UNKEYED"
        if report.ok:
            print(f"chain intact: {report.count} records, last hash {report.last_hash} ({kind}"
                  f"{f', {report.pseudonymized} pseudonymized' if report.pseudonymized else ''})", file=out)
            return 0
        print(f"chain BROKEN at record {report.bad_seq} ({report.problem}): {report.message}; "
              f"{report.count} records verified before it", file=out)
        return 1
    for record in query(**_filters(options)):
        print(json.dumps(record.as_json(), sort_keys=True) if options.json else _line(record), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
